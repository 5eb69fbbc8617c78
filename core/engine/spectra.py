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

# Rows processed at once by the continuum removal (bounds its index arrays).
_HULL_CHUNK = 2048
"""Rows per chunk of :func:`continuum_removal`: its hull search holds about 100 bytes per band and row of a chunk
(34 MB for 166 bands, measured). The search loops over bands in Python, so small chunks are slow: 50,000 spectra
of 166 bands took 1.39 s in chunks of 1024 rows, 0.98 s in 2048 and 0.95 s in 4096 (65 MB)."""


def preprocess_bytes(method, n_bands):
    """``(bytes per row, bytes whatever the rows)`` :func:`preprocess` allocates at its peak (measured with
    tracemalloc, bench/bench_rss.py): continuum removal a float64 copy, the float64 result and its float32 copy
    (20 bytes a band) plus one chunk of its hull search; brightness normalisation 24 bytes a band; none nothing."""
    n_bands = int(n_bands)
    if method == "continuum_removal":
        return 20 * n_bands, _HULL_CHUNK * 100 * n_bands
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


def _upper_hull(x, Y):
    """Upper convex hull of each row of ``Y`` over increasing ``x``.

    Andrew's monotone chain run for all rows at once: bands are visited once,
    in order; each row keeps its own stack of hull vertex indexes, with the
    coordinates of its two top vertices cached, so the usual "pop while the
    last vertex lies on or below the chord to the new band" test costs no
    lookups; only the rows that pop read their stack again.

    Returns
    -------
    stack : ndarray of int64 of shape (n, b)
        Row ``i`` holds its hull vertex indexes, increasing, in
        ``stack[i, :size[i]]`` (always starting at 0 and ending at b - 1).
    size : ndarray of int64 of shape (n,)
    """
    n, b = Y.shape
    rows = np.arange(n)
    stack = np.zeros((n, b), dtype=np.int64)
    stack[:, 1] = 1
    size = np.full(n, 2, dtype=np.int64)
    ox, oy = np.full(n, x[0]), Y[:, 0].copy()  # second-last vertex of each row
    ax, ay = np.full(n, x[1]), Y[:, 1].copy()  # last vertex
    for j in range(2, b):
        xj, yj = x[j], Y[:, j]
        # a is popped when it lies on or below the chord from o to j (cross product >= 0).
        cand = rows[(ax - ox) * (yj - oy) >= (ay - oy) * (xj - ox)]
        while cand.size:
            size[cand] -= 1
            ax[cand], ay[cand] = ox[cand], oy[cand]
            cand = cand[size[cand] >= 2]
            if not cand.size:
                break
            o = stack[cand, size[cand] - 2]
            ox[cand], oy[cand] = x[o], Y[cand, o]
            cand = cand[(ax[cand] - ox[cand]) * (yj[cand] - oy[cand]) >= (ay[cand] - oy[cand]) * (xj - ox[cand])]
        stack[rows, size] = j
        size += 1
        ox, oy, ax, ay = ax, ay, np.full(n, xj), yj.copy()
    return stack, size


def _continuum(x, Y):
    """Upper convex hull of each row of ``Y`` evaluated at every ``x`` (increasing)."""
    n, b = Y.shape
    stack, size = _upper_hull(x, Y)
    base = (np.arange(n, dtype=np.int64) * b)[:, None]
    flat_y = Y.ravel()
    # Slope of the hull segment starting at each vertex, written at the vertex's band.
    k = np.arange(b - 1)[None, :]
    inner = k < (size - 1)[:, None]  # vertex k has a next vertex
    left, right = stack[:, :-1][inner], stack[:, 1:][inner]
    rows_base = np.broadcast_to(base, (n, b - 1))[inner]
    slope = np.zeros(n * b)
    width = x[right] - x[left]  # zero between bands of equal wavelength: a flat step, merged by the caller
    wide = width > 0
    slope[rows_base + left] = np.where(
        wide, (flat_y[rows_base + right] - flat_y[rows_base + left]) / np.where(wide, width, 1.0), 0.0)
    vertex = np.zeros(n * b, dtype=bool)
    vertex[rows_base + left] = True
    vertex = vertex.reshape(n, b)
    vertex[:, -1] = True
    # Last vertex at or before each band, then linear along that segment.
    prev = np.maximum.accumulate(np.where(vertex, np.arange(b), 0), axis=1)
    at = (base + prev).ravel()
    out = flat_y[at] + slope[at] * (np.broadcast_to(x, (n, b)).ravel() - x[prev.ravel()])
    return out.reshape(n, b)


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
    xs = x[order]
    # Bands sharing a wavelength share the continuum: the highest hull value at that wavelength.
    starts = np.flatnonzero(np.r_[True, np.diff(xs) > 0])
    repeats = np.diff(np.r_[starts, b]) if starts.size < b else None
    out = np.empty((n, b), dtype=np.float64)
    for start in range(0, n, _HULL_CHUNK):
        Y = X[start:start + _HULL_CHUNK][:, order]
        finite = np.isfinite(Y).all(axis=1)
        Yf = np.where(finite[:, None], Y, 0.0)
        if b >= 3:
            hull = _continuum(xs, Yf)
        else:
            hull = Yf.copy()
        if repeats is not None:
            hull = np.repeat(np.maximum.reduceat(hull, starts, axis=1), repeats, axis=1)
        positive = hull > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(positive, np.clip(Yf / np.where(positive, hull, 1.0), 0.0, 1.0), 1.0)
        ratio[~finite] = np.nan
        out[start:start + _HULL_CHUNK][:, order] = ratio
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
