"""Spectral Angle Mapper and Spectral Information Divergence.

Both compare every pixel spectrum with every reference spectrum and assign the
best match. SAM (Kruse et al., 1993) measures the angle between two spectra seen as
vectors, which ignores overall brightness (illumination, shade); SID (Chang, 2000)
treats each spectrum as a probability distribution over bands and measures the
symmetric Kullback-Leibler divergence between them.
"""

import numpy as np

from ..engine.compute import gemm
from ..engine.errors import OreMapError

_EPS = 1e-12


def spectral_angles(pixels, references):
    """Angle in radians between each pixel and each reference spectrum.

    Parameters
    ----------
    pixels : array (n_pixels, n_bands)
    references : array (n_refs, n_bands)

    Returns
    -------
    ndarray (n_pixels, n_refs), values in [0, pi]; NaN for an all-zero pixel.
    """
    # one pixel per contiguous row: the block engine hands whole blocks over as a band-last view of a band-first
    # read, and the BLAS product would copy such a block a second time (SAM peaked at 1.2x the memory budget)
    x = np.ascontiguousarray(pixels, dtype=np.float64)
    r = np.asarray(references, dtype=np.float64)
    xn = np.sqrt(np.einsum("ij,ij->i", x, x))  # no pixel-sized temporary (norm would square a copy of x)
    rn = np.linalg.norm(r, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = gemm(x, r.T) / (xn[:, None] * rn[None, :])
    return np.arccos(np.clip(cos, -1.0, 1.0))


def spectral_information_divergence(pixels, references):
    """Symmetric KL divergence between band-probability distributions (Chang, 2000).

    Each spectrum's negative values are set to 0 and it is divided by its sum, so that p_i = x_i / sum(x); then
    every share is raised to at least a small positive value (for the logarithms) and the shares are closed again.
    SID(x, r) = sum p log(p / q) + sum q log(q / p). It does not depend on a spectrum's brightness, also where a
    band is 0 or negative (clipped to an absolute value before the division, such a band's share shrank as the
    pixel brightened and the class could change with the reflectance scale). A pixel or reference with no positive
    value has no distribution: NaN (as its angle is in SAM), so such a reference takes no pixel.

    Returns
    -------
    ndarray (n_pixels, n_refs), >= 0, NaN for pixels without a positive value.
    """
    x = np.clip(np.ascontiguousarray(pixels, dtype=np.float64), 0.0, None)   # rows contiguous, as in SAM
    r = np.clip(np.asarray(references, dtype=np.float64), 0.0, None)
    p, q = _shares(x), _shares(r)
    logp, logq = np.log(p), np.log(q)
    # sum_i (p_i - q_i)(log p_i - log q_i), expanded so it is two matrix products.
    self_p = np.sum(p * logp, axis=1)
    self_q = np.sum(q * logq, axis=1)
    sid = self_p[:, None] + self_q[None, :] - gemm(p, logq.T) - gemm(logp, q.T)
    empty = x.max(axis=1) <= 0.0   # none was positive
    if empty.any():
        sid[empty] = np.nan
    flat = r.max(axis=1) <= 0.0   # a reference without a positive value has no distribution either: it takes none
    if flat.any():
        sid[:, flat] = np.nan
    return sid


def _shares(spectra):
    """Rows of non-negative ``spectra`` as band shares summing to 1, each at least about :data:`_EPS`."""
    total = spectra.sum(axis=1, keepdims=True)
    shares = np.clip(spectra / np.where(total > 0, total, 1.0), _EPS, None)
    return shares / shares.sum(axis=1, keepdims=True)


METHODS = {"sam": spectral_angles, "sid": spectral_information_divergence}


def work_bytes_per_pixel(n_bands, n_refs, method="sam"):
    """Peak bytes per pixel :func:`classify` allocates (measured with tracemalloc, ``bench/bench_rss.py``): SAM a
    float64 copy of the pixels, SID four (clipped values, p, log p, p log p); then about six float64 arrays of one
    value per reference (products, angles or divergences, their clipped and NaN-free copies) and the results."""
    copies = 1 if method == "sam" else 4
    return 8 * copies * int(n_bands) + 48 * int(n_refs) + 32


def classify(pixels, references, method="sam", threshold=None):
    """Assign each pixel the reference with the smallest angle or divergence.

    Parameters
    ----------
    pixels : array (n_pixels, n_bands)
    references : array (n_refs, n_bands)
    method : {"sam", "sid"}
    threshold : float, optional
        Largest angle (radians, SAM) or divergence (SID) still accepted; a pixel
        whose best score is larger is unclassified (class 0). None or 0: no limit.

    Returns
    -------
    classes : ndarray of int32 (n_pixels,)
        1-based index of the best reference, 0 when unclassified.
    score : ndarray of float32 (n_pixels,)
        The best angle or divergence.
    """
    if method not in METHODS:
        raise OreMapError(f"Unknown method '{method}'.", "method", "Use 'sam' or 'sid'.")
    scores = METHODS[method](pixels, references)
    scores = np.where(np.isnan(scores), np.inf, scores)
    best = np.argmin(scores, axis=1)
    score = scores[np.arange(scores.shape[0]), best]
    classes = best.astype(np.int32) + 1
    if threshold:
        classes[score > threshold] = 0
    classes[~np.isfinite(score)] = 0
    return classes, np.where(np.isfinite(score), score, np.nan).astype(np.float32)
