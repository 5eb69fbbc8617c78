"""Reference pieces for checking fully constrained unmixing, shared by the tests and bench/bench_fcls.py."""

import numpy as np
from scipy.optimize import nnls


def mixtures(E, n, rng, outside=0.25, extrapolate=0.6, noise=0.005):
    """``n`` plausible mixed spectra of the endmembers ``E`` (n_bands x p).

    Sparse simplex abundances times a brightness in [0.8, 1.2] plus Gaussian noise. A share
    ``outside`` of the pixels is extrapolated away from a random endmember (outside the simplex, so
    constraints are active); only mixtures whose noise-free spectrum stays a plausible reflectance
    (>= 0.01 in every band) are kept.
    """
    p = E.shape[1]
    m = 3 * n
    A = rng.dirichlet(np.full(p, 0.7), size=m)
    A[rng.random((m, p)) < 0.3] = 0.0
    empty = A.sum(axis=1) == 0
    A[empty, rng.integers(0, p, empty.sum())] = 1.0
    A /= A.sum(axis=1, keepdims=True)
    out = rng.random(m) < outside
    away = np.eye(p)[rng.integers(0, p, m)]
    A[out] = (1 + extrapolate) * A[out] - extrapolate * away[out]
    X = (A @ E.T) * rng.uniform(0.8, 1.2, size=(m, 1))
    X = X[X.min(axis=1) >= 0.01][:n]
    assert len(X) == n
    return X + noise * rng.standard_normal(X.shape)


def weighted_nnls(X, E, weight=1e4):
    """SciPy NNLS per pixel with a heavily weighted sum-to-one row (the usual approximate FCLS)."""
    Ew = np.vstack([E, np.full((1, E.shape[1]), weight)])
    return np.array([nnls(Ew, np.append(x, weight))[0] for x in X])


def kkt_violation(X, E, A, sum_to_one=True):
    """Largest relative violation of the optimality (KKT) conditions, per pixel.

    The gradient comes from the residual directly. With nu the multiplier of sum(a) = 1 (0 for
    NNLS), optimality requires g_i + nu == 0 where a_i > 0 and g_i + nu >= 0 where a_i == 0.
    """
    g = (A @ E.T - X) @ E
    S = A > 0
    if sum_to_one:
        nu = -np.where(S, g, 0).sum(axis=1) / np.maximum(S.sum(axis=1), 1)
    else:
        nu = np.zeros(len(X))
    mu = g + nu[:, None]
    scale = np.abs(X @ E).max(axis=1) + np.abs(E.T @ E).max()
    return np.where(S, np.abs(mu), np.maximum(-mu, 0)).max(axis=1) / scale
