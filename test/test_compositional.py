"""Closure, simplex projection and log-ratios against brute force and hand-computed values."""

import itertools

import numpy as np
import pytest

from oremap.core.engine import compositional as comp
from oremap.core.engine.errors import OreMapError


def brute_force_projection(y, total):
    """Closest point of {x >= 0, sum x = total}: try every support S, keep the best feasible one.

    On a support S the minimiser of ||x - y|| with sum x_S = total is x_S = y_S - (sum y_S - total)/|S|.
    """
    best, best_d = None, np.inf
    k = y.size
    for r in range(1, k + 1):
        for support in itertools.combinations(range(k), r):
            s = list(support)
            x = np.zeros(k)
            x[s] = y[s] - (y[s].sum() - total) / len(s)
            if (x >= -1e-12).all():
                d = np.sum((x - y) ** 2)
                if d < best_d:
                    best, best_d = x, d
    return best


@pytest.mark.parametrize("total", [1.0, 100.0])
def test_simplex_projection_matches_brute_force(total):
    rng = np.random.default_rng(3)
    Y = np.vstack([rng.normal(0, total, (200, 5)),                 # anything
                   rng.dirichlet(np.ones(5), 20) * total,          # already on the simplex: unchanged
                   rng.normal(total / 5, total / 50, (20, 5))])    # near the centre
    X = comp.project_simplex(Y, total)
    expected = np.array([brute_force_projection(y, total) for y in Y])
    assert np.abs(X - expected).max() < 1e-9 * total
    assert (X >= 0).all()
    assert np.abs(X.sum(axis=1) - total).max() < 1e-10 * total
    # points already on the simplex do not move
    assert np.abs(X[200:220] - Y[200:220]).max() < 1e-9 * total


def test_simplex_projection_known_values_and_nan():
    X = comp.project_simplex(np.array([[0.5, 0.5, 0.5], [2.0, 0.0, -1.0], [np.nan, 0.2, 0.3]]))
    assert np.allclose(X[0], [1 / 3, 1 / 3, 1 / 3])
    assert np.allclose(X[1], [1.0, 0.0, 0.0])  # tau = 1: (2-1, 0-1 -> 0, -1-1 -> 0)
    assert np.isnan(X[2]).all()


def test_clr_hand_values_and_inverse():
    z = comp.clr([[1.0, 2.0, 4.0]])
    assert np.allclose(z, [[-np.log(2), 0.0, np.log(2)]])
    assert np.allclose(comp.clr_inverse(z, 7.0), [[1.0, 2.0, 4.0]])  # 1 + 2 + 4 = 7
    with pytest.raises(OreMapError):
        comp.clr([[0.0, 1.0]])


def test_ilr_basis_orthonormal_and_isometric():
    V = comp.ilr_basis(5)
    assert np.allclose(V @ V.T, np.eye(4))
    assert np.allclose(V.sum(axis=1), 0.0)  # in the clr plane
    # first balance of 2 parts: (log x1 - log x2) / sqrt(2)
    assert np.allclose(comp.ilr([[1.0, np.e]]), [[-1 / np.sqrt(2)]])
    rng = np.random.default_rng(0)
    A, B = rng.dirichlet(np.ones(5), 30), rng.dirichlet(np.ones(5), 30)
    d_ilr = np.linalg.norm(comp.ilr(A) - comp.ilr(B), axis=1)
    d_clr = np.linalg.norm(comp.clr(A) - comp.clr(B), axis=1)
    assert np.allclose(d_ilr, d_clr)  # Aitchison distance is preserved
    assert np.allclose(comp.ilr_inverse(comp.ilr(A), 100.0), A * 100.0)


def test_replace_zeros_keeps_total_and_ratios():
    X = comp.replace_zeros([[0.0, 50.0, 50.0], [20.0, 30.0, 50.0]], delta=1.0)
    assert np.allclose(X, [[1.0, 49.5, 49.5], [20.0, 30.0, 50.0]])
    default = comp.replace_zeros([[0.0, 2.0, 8.0]])
    assert np.isclose(default[0, 0], 0.65 * 2.0)  # 0.65 x the smallest positive value
    assert np.isclose(default.sum(), 10.0) and np.isclose(default[0, 2] / default[0, 1], 4.0)
    # zeros that would take a row's whole total made its other parts negative (and the log-ratio fail later)
    with pytest.raises(OreMapError, match=r"row 1 by 0.013 would take all of its total \(0.02\)"):
        comp.replace_zeros([[0.02, 0.0, 0.0, 0.0], [0.5, 0.3, 0.1, 0.1]])


def test_closure():
    assert np.allclose(comp.closure([[1.0, 3.0], [0.0, 0.0]], 100.0), [[25.0, 75.0], [0.0, 0.0]])
