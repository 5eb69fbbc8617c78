"""Compositional data: closure, projection onto the simplex, log-ratio transforms.

Mineral abundances (parts of 100 %) and element concentrations (parts per million of
a sample) are compositions: only ratios carry information, and a component cannot
grow without the others shrinking. Everything here works row-wise on 2-D arrays
``(n_samples, n_parts)`` and is vectorised.

* :func:`project_simplex`: the Euclidean projection onto ``{x >= 0, sum x = total}``,
  i.e. the closest composition to an unconstrained prediction.
* :func:`clr` / :func:`clr_inverse`: centred log-ratio (Aitchison 1986).
* :func:`ilr` / :func:`ilr_inverse`: isometric log-ratio with the balances of a
  Helmert-type orthonormal basis (Egozcue et al. 2003).
* :func:`replace_zeros`: multiplicative replacement of zeros (Martin-Fernandez et al.
  2003), needed before any log-ratio.
"""

import numpy as np

from .errors import OreMapError


def _rows(X, parameter="composition"):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2:
        raise OreMapError(f"A composition table must be 2-D, got shape {X.shape}.", parameter)
    return X


def closure(X, total=1.0):
    """Rows divided by their sum and multiplied by ``total`` (rows summing to 0 stay 0)."""
    X = _rows(X)
    s = X.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(s != 0, X / np.where(s != 0, s, 1.0) * total, 0.0)
    return out


def project_simplex(Y, total=1.0):
    """Euclidean projection of each row onto ``{x : x >= 0, sum(x) = total}``.

    The projection is ``x_i = max(y_i - tau, 0)`` with the threshold ``tau`` found from
    the sorted row (Held, Wolfe and Crowder 1974; Duchi et al. 2008): with ``u`` sorted
    in decreasing order, ``rho`` is the largest ``j`` with
    ``u_j - (sum_{i<=j} u_i - total) / j > 0`` and ``tau = (sum_{i<=rho} u_i - total) / rho``.
    NaN rows stay NaN.
    """
    Y = _rows(Y)
    if total <= 0:
        raise OreMapError("The simplex total must be positive.", "total")
    n, k = Y.shape
    if k == 0:
        return Y.copy()
    U = -np.sort(-Y, axis=1)
    css = np.cumsum(U, axis=1) - total
    j = np.arange(1, k + 1)
    cond = U - css / j > 0
    # rho: last index where cond holds (cond is true at j=1 for every finite row)
    rho = k - np.argmax(cond[:, ::-1], axis=1)
    tau = css[np.arange(n), rho - 1] / rho
    X = np.maximum(Y - tau[:, None], 0.0)
    # exact sum: put the rounding residue on the largest part
    resid = total - X.sum(axis=1)
    top = np.argmax(X, axis=1)
    X[np.arange(n), top] += resid
    X[np.arange(n), top] = np.maximum(X[np.arange(n), top], 0.0)
    bad = ~np.isfinite(Y).all(axis=1)
    if bad.any():
        X[bad] = np.nan
    return X


def zero_delta(X):
    """What :func:`replace_zeros` puts for a zero by default: 0.65 x the smallest positive value of the table, or
    None when it has none."""
    X = np.asarray(X, dtype=float)
    positive = X[np.isfinite(X) & (X > 0)]
    return float(0.65 * positive.min()) if positive.size else None


def replace_zeros(X, delta=None, total=None):
    """Multiplicative replacement of zeros (and negatives) in compositions.

    Zeros become ``delta`` (default: 0.65 x the smallest positive value of the table, a
    common stand-in for "below detection" when assays go down to their detection limits; a
    table whose smallest value is large, e.g. mineral abundances in whole per cent, should
    give ``delta`` from its detection limit instead), and the non-zero parts of the row are
    scaled down so that the row keeps its total: ratios between non-zero parts are unchanged.
    Raises :class:`OreMapError` when a row's zeros would take all of its total (parts <= 0).
    """
    X = _rows(X)
    positive = X > 0
    if positive.all():
        return X.copy()
    if not positive.any():
        raise OreMapError("Every value of the composition is zero or negative.", "composition",
                          "Check the input fields: log-ratios need positive values.")
    if delta is None:
        delta = zero_delta(X)
    row_total = X.clip(min=0).sum(axis=1, keepdims=True) if total is None else np.full((X.shape[0], 1), total)
    n_zero = (~positive).sum(axis=1, keepdims=True)
    kept = X.clip(min=0).sum(axis=1, keepdims=True)
    short = (kept > 0) & (row_total - delta * n_zero <= 0)
    if short.any():
        row = int(np.flatnonzero(short.ravel())[0])
        raise OreMapError(f"Replacing the zeros of row {row + 1} by {delta:g} would take all of its total "
                          f"({float(row_total[row, 0]):g}): its other parts would be zero or negative.", "composition",
                          "Give a smaller replacement value (below the detection limit).")
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(kept > 0, (row_total - delta * n_zero) / np.where(kept > 0, kept, 1.0), 1.0)
    return np.where(positive, X * factor, delta)


def clr(X):
    """Centred log-ratio: ``log(x) - mean(log(x))`` per row. Needs positive values
    (apply :func:`replace_zeros` first)."""
    X = _rows(X)
    if (X <= 0).any():
        raise OreMapError("The centred log-ratio needs positive values; zeros or negatives were found.",
                          "composition", "Replace values below detection first.")
    L = np.log(X)
    return L - L.mean(axis=1, keepdims=True)


def clr_inverse(Z, total=1.0):
    Z = _rows(Z)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return closure(E, total)


def ilr_basis(k):
    """Orthonormal basis (k-1 x k) of the clr plane: balances of part j+1 against parts 1..j."""
    if k < 2:
        raise OreMapError("A log-ratio transform needs at least two parts.", "composition")
    V = np.zeros((k - 1, k))
    for j in range(1, k):
        V[j - 1, :j] = 1.0 / j
        V[j - 1, j] = -1.0
        V[j - 1] *= np.sqrt(j / (j + 1.0))
    return V


def ilr(X):
    """Isometric log-ratio coordinates (n x k-1) of positive compositions."""
    Z = clr(X)
    return Z @ ilr_basis(Z.shape[1]).T


def ilr_inverse(Y, total=1.0):
    """Compositions (n x k) summing to ``total`` from ilr coordinates (n x k-1)."""
    Y = _rows(Y)
    return clr_inverse(Y @ ilr_basis(Y.shape[1] + 1), total)
