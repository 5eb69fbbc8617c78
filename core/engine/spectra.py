"""Spectral preprocessing shared by every model that reads spectra (the spectral CNN classifier of
``core.hyperspectral`` and the abundance ensembles of ``core.abundance``): brightness
normalisation and continuum removal, the same at training and inference.
"""

import numpy as np

from .errors import OreMapError

#: Preprocessing methods understood by :func:`preprocess`, with labels for user interfaces.
PREPROCESSING = [
    ("none", "None"),
    ("brightness", "Brightness normalisation (divide by the spectrum's mean)"),
    ("continuum_removal", "Continuum removal (divide by the upper convex hull)"),
]
PREPROCESSING_METHODS = tuple(method for method, _ in PREPROCESSING)

_HULL_CHUNK = 4096
"""Rows per chunk of :func:`continuum_removal`: its hull search holds at most :data:`_HULL_BYTES` bytes per band
and row of a chunk (27 MB for 166 bands). The search loops over bands in Python, so small chunks are slow: 50,000
spectra of 166 bands (Jasper Ridge pixels) took 0.94 s of CPU in chunks of 1024 rows, 0.71 s in 2048 and 0.60 s
in 4096."""
#: Bytes per band and row of a chunk that the hull search holds (measured with tracemalloc: 21-33).
_HULL_BYTES = 40


def preprocess_bytes(method, n_bands):
    """``(bytes per row, bytes whatever the rows)`` :func:`preprocess` allocates at its peak (measured with
    tracemalloc, bench/bench_rss.py): continuum removal a float64 copy, the float64 result and its float32 copy
    (20 bytes a band) plus one chunk of its hull search; brightness normalisation 24 bytes a band; none nothing."""
    n_bands = int(n_bands)
    if method == "continuum_removal":
        return 20 * n_bands, _HULL_CHUNK * _HULL_BYTES * n_bands
    if method == "brightness":
        return 24 * n_bands, 0
    return 0, 0


def _unknown_preprocessing(method, parameter):
    return OreMapError(
        f"Unknown preprocessing '{method}' (known: {', '.join(PREPROCESSING_METHODS)}).",
        parameter=parameter,
        fix="Update OreMap: the model may come from a newer version." if parameter == "model" else "",
    )


def _as_spectra(X):
    X = np.asarray(X, dtype=np.float64)
    one_d = X.ndim == 1
    X = np.atleast_2d(X)
    if X.ndim != 2:
        raise OreMapError(f"Spectra must be a 2-D array (n_spectra, n_bands), not of shape {X.shape}.",
                          parameter="spectra")
    return X, one_d


def brightness_normalise(X):
    """Divide each spectrum by its mean over bands.

    A spectrum scaled by any positive factor (shade, illumination) gives the
    same result. Rows whose mean is zero or negative become zeros; rows
    holding NaN become NaN.
    """
    X, one_d = _as_spectra(X)
    scale = X.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(scale > 0, X / np.where(scale > 0, scale, 1.0), 0.0)
    out[np.isnan(scale[:, 0])] = np.nan
    return out[0] if one_d else out


def _hull_vertices(x, YT):
    """Upper convex hull vertices of each column of ``YT`` (bands x spectra, band-major) over increasing ``x``.

    Andrew's monotone chain run for all spectra at once: bands are visited once, in order. Every spectrum's
    last hull vertex before band ``j`` is band ``j - 1``, so the "pop while the last vertex lies on or below the
    chord to the new band" test of all spectra needs only the band-to-band differences (computed once) and each
    spectrum's last hull edge; only the spectra that pop look further down their hull. Each vertex keeps a
    pointer to the vertex below it when pushed (``below``), so the hull is a linked list, and popping one clears
    its ``vertex`` flag: no per-spectrum stack is kept.

    Returns
    -------
    vertex : ndarray of bool of shape (b, n)
        True where a band is a hull vertex of that spectrum (always the first and the last band).
    """
    b, n = YT.shape
    step = np.diff(x)
    rise = np.diff(YT, axis=0)
    vertex = np.ones((b, n), dtype=bool)
    below = np.zeros((b, n), dtype=np.int32)  # the vertex under each one when it was pushed
    edge_x, edge_y = np.full(n, step[0]), rise[0].copy()  # last hull edge of each spectrum
    top = np.empty(n, dtype=np.int32)
    lhs, rhs = np.empty(n), np.empty(n)
    for j in range(2, b):
        # the last vertex j - 1 goes when the edge j-1 -> j turns left of the last edge (cross product >= 0)
        np.multiply(rise[j - 1], edge_x, out=lhs)
        np.multiply(edge_y, step[j - 1], out=rhs)
        popped = np.flatnonzero(lhs >= rhs)
        top.fill(j - 1)
        if popped.size:
            vertex[j - 1, popped] = False
            t = below[j - 1, popped].astype(np.intp)
            yj = YT[j, popped]
            going = np.flatnonzero(t > 0)
            while going.size:
                rows, tt = popped[going], t[going]
                under = below[tt, rows]
                yt = YT[tt, rows]
                pop = (x[tt] - x[under]) * (yj[going] - yt) >= (yt - YT[under, rows]) * (x[j] - x[tt])
                going = going[pop]
                if not going.size:
                    break
                rows, tt = popped[going], t[going]
                vertex[tt, rows] = False
                t[going] = below[tt, rows]
                going = going[t[going] > 0]
            top[popped] = t
            edge_x.fill(step[j - 1])
            np.copyto(edge_y, rise[j - 1])
            edge_x[popped] = x[j] - x[t]
            edge_y[popped] = yj - YT[t, popped]
        else:
            edge_x.fill(step[j - 1])
            np.copyto(edge_y, rise[j - 1])
        below[j] = top
    return vertex


def _continuum(x, YT):
    """Upper convex hull of each column of ``YT`` (bands x spectra) evaluated at every ``x`` (increasing), band-major.

    After :func:`_hull_vertices`, one sweep down the bands carries each spectrum's next vertex (value and
    wavelength) and one sweep up its last vertex; between them the hull is the straight line. Bands of equal
    wavelength are merged by the caller before (each wavelength's highest value).
    """
    b, n = YT.shape
    vertex = _hull_vertices(x, YT)
    right_y, right_x = np.empty((b, n)), np.empty((b, n))
    right_y[b - 1], right_x[b - 1] = YT[b - 1], x[b - 1]
    for j in range(b - 2, -1, -1):
        np.copyto(right_y[j], right_y[j + 1])
        np.copyto(right_x[j], right_x[j + 1])
        np.copyto(right_y[j], YT[j], where=vertex[j])
        right_x[j][vertex[j]] = x[j]
    hull = right_y  # filled in place, band by band: row j of right_* is read before it is overwritten
    left_y, left_x = YT[0].copy(), np.full(n, x[0])
    for j in range(1, b):
        np.copyto(left_y, YT[j], where=vertex[j])
        left_x[vertex[j]] = x[j]
        width = right_x[j] - left_x
        wide = width > 0
        slope = np.where(wide, (right_y[j] - left_y) / np.where(wide, width, 1.0), 0.0)
        hull[j] = left_y + slope * (x[j] - left_x)
    return hull


def continuum_removal(X, wavelengths=None):
    """Divide each spectrum by its continuum, the upper convex hull over wavelength.

    Parameters
    ----------
    X : array-like of shape (n_spectra, n_bands) or (n_bands,)
    wavelengths : array-like of shape (n_bands,), optional
        Band centres (any unit); band numbers when ``None``. Bands need not
        be sorted.

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Values in [0, 1]: 1 on the hull, ``1 - depth / continuum`` inside an
        absorption. Where the continuum is not positive (all-zero or negative
        spectra) the value is 1; negative reflectances under a positive
        continuum are clipped to 0. Rows holding NaN or infinity are NaN.
    """
    X, one_d = _as_spectra(X)
    n, b = X.shape
    x = np.arange(b, dtype=np.float64) if wavelengths is None else np.asarray(wavelengths, np.float64).reshape(-1)
    if x.size != b:
        raise OreMapError(f"{x.size} wavelengths were given for spectra of {b} bands.", parameter="wavelengths")
    order = np.argsort(x, kind="stable")
    sorted_already = bool(np.all(order == np.arange(b)))
    xs = x[order]
    # Bands sharing a wavelength share the continuum: the highest hull value at that wavelength.
    starts = np.flatnonzero(np.r_[True, np.diff(xs) > 0])
    repeats = np.diff(np.r_[starts, b]) if starts.size < b else None
    out = np.empty((n, b), dtype=np.float64)
    for start in range(0, n, _HULL_CHUNK):
        # band-major copy of the chunk, bands in wavelength order
        YT = np.ascontiguousarray(X[start:start + _HULL_CHUNK].T) if sorted_already \
            else X[start:start + _HULL_CHUNK].T[order]
        finite = np.isfinite(YT).all(axis=0)
        if not finite.all():
            YT[:, ~finite] = 0.0
        if repeats is None:
            hull = _continuum(xs, YT) if b >= 3 else YT.copy()
        else:
            # the upper hull of bands sharing wavelengths is that of each wavelength's highest value: the hull of the
            # bands themselves lost that value when three or more shared the first wavelength (an edge of width 0)
            top = np.maximum.reduceat(YT, starts, axis=0)
            hull = np.repeat(_continuum(xs[starts], top) if starts.size >= 3 else top, repeats, axis=0)
        ratio = np.ones_like(hull)
        np.divide(YT, hull, out=ratio, where=hull > 0)
        np.clip(ratio, 0.0, 1.0, out=ratio)
        ratio[:, ~finite] = np.nan
        if sorted_already:
            out[start:start + _HULL_CHUNK] = ratio.T
        else:
            out[start:start + _HULL_CHUNK][:, order] = ratio.T
    return out[0] if one_d else out


def preprocess(X, method, wavelengths=None):
    """Preprocess spectra the way a model expects them.

    Parameters
    ----------
    X : array-like of shape (n_spectra, n_bands) or (n_bands,)
        Reflectance spectra at the model's bands.
    method : {"none", "brightness", "continuum_removal"}
        ``"none"`` leaves values as they are; ``"brightness"`` divides each
        spectrum by its mean (see :func:`brightness_normalise`);
        ``"continuum_removal"`` divides it by its upper convex hull over
        ``wavelengths`` (see :func:`continuum_removal`).
    wavelengths : array-like of shape (n_bands,), optional
        Band centres, used by continuum removal (band numbers when ``None``).

    Returns
    -------
    ndarray of float32, same shape as ``X``

    Raises
    ------
    OreMapError
        ``parameter="model"`` for an unknown method.
    """
    if method == "none":
        return np.asarray(X, dtype=np.float32)
    if method == "brightness":
        out = brightness_normalise(X)
    elif method == "continuum_removal":
        out = continuum_removal(X, wavelengths)
    else:
        raise _unknown_preprocessing(method, "model")
    return np.asarray(out, dtype=np.float32)
