"""Benchmark :func:`core.engine.unmixing.fcls` against a per-pixel SciPy reference.

Run from the repository root::

    .venv/bin/python bench/bench_fcls.py (or make bench) [--pixels 100000]

Data: 6 USGS mineral spectra (splib07, AVIRIS-1995 resampling, 200 of the 224
channels: the two water-vapour windows are dropped), mixed with sparse
Dirichlet abundances, a brightness factor and Gaussian noise (sigma 0.005
reflectance); some pixels lie outside the simplex so that more constraints
are active.

Reference: ``scipy.optimize.nnls`` per pixel on ``[E; w 1^T] a = [x; w]``
(sum-to-one enforced by a heavily weighted extra row). Its abundances only sum
to 1 approximately, which lets it trade a little of the constraint for a
lower residual; to compare like with like its rows are rescaled to sum to
exactly 1 (a feasible point) before its residual is computed. Ours must not
be worse than that feasible reference by more than 1e-9 on any pixel; the
script exits with status 1 otherwise.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from core.hyperspectral.spectral_library import read_library  # noqa: E402
from core.engine.unmixing import fcls  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "test"))
from fcls_reference import kkt_violation, mixtures, weighted_nnls  # noqa: E402

LIBRARY = os.path.join(os.environ.get("OREMAP_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data"),
                       "hyperspectral", "s07_AV95_envi")
MINERALS = (
    "Kaolinite CM9 BECKb AREF",
    "Alunite GDS82 Na82 BECKb AREF",
    "Muscovite GDS107 BECKa AREF",
    "Calcite CO2004 BECKb AREF",
    "Goethite HS36.3 BECKb AREF",
    "Montmorillonite SAz-1 BECKb AREF",
)
WEIGHT = 1e4  # weight of the sum-to-one row in the reference
RESIDUAL_TOL = 1e-9


def endmembers():
    """Endmember matrix (200 bands x 6) and the channel wavelengths."""
    lib = read_library(LIBRARY + ".sli").subset(list(MINERALS))
    wavelengths = lib.wavelengths  # nm
    keep = ~(((wavelengths > 1340) & (wavelengths < 1440))
             | ((wavelengths > 1800) & (wavelengths < 1940)))
    E = lib.spectra.T[keep]
    assert E.shape == (200, 6), E.shape
    assert np.isfinite(E).all(), "missing values in the chosen channels"
    return E


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(20240611)
    E = endmembers()
    X = mixtures(E, args.pixels, rng, outside=0.15, extrapolate=0.5)
    n, m = X.shape

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        A = fcls(X, E)
        times.append(time.perf_counter() - t0)
    X32 = X.astype(np.float32)
    t0 = time.perf_counter()
    fcls(X32, E)
    t_f32 = time.perf_counter() - t0

    t0 = time.perf_counter()
    A_ref = weighted_nnls(X, E, WEIGHT)
    t_ref = time.perf_counter() - t0
    ref_sum_err = np.abs(A_ref.sum(axis=1) - 1).max()
    A_ref_feasible = A_ref / A_ref.sum(axis=1, keepdims=True)

    res = np.linalg.norm(X - A @ E.T, axis=1)
    res_ref = np.linalg.norm(X - A_ref_feasible @ E.T, axis=1)
    res_ref_raw = np.linalg.norm(X - A_ref @ E.T, axis=1)
    diff = res - res_ref
    active = (A == 0).any(axis=1)

    print(f"fcls benchmark: {n} pixels x {m} bands x {E.shape[1]} endmembers "
          f"({active.mean():.0%} with an active bound)")
    print(f"{'method':<34}{'us/pixel':>10}")
    print(f"{'fcls float64 (best of %d)' % args.repeats:<34}{1e6 * min(times) / n:>10.3f}")
    print(f"{'fcls float32 input':<34}{1e6 * t_f32 / n:>10.3f}")
    print(f"{'scipy nnls + weighted row':<34}{1e6 * t_ref / n:>10.3f}")
    print()
    print(f"{'check':<52}{'value':>12}")
    print(f"{'max residual diff, ours - ref (positive = worse)':<52}{diff.max():>12.3e}")
    print(f"{'min residual diff, ours - ref':<52}{diff.min():>12.3e}")
    print(f"{'max residual diff vs unrescaled ref':<52}{(res - res_ref_raw).max():>12.3e}")
    print(f"{'max |abundance diff| vs ref':<52}{np.abs(A - A_ref_feasible).max():>12.3e}")
    print(f"{'ref max |sum - 1| before rescaling':<52}{ref_sum_err:>12.3e}")
    print(f"{'ours max |sum - 1|':<52}{np.abs(A.sum(axis=1) - 1).max():>12.3e}")
    print(f"{'ours min abundance':<52}{A.min():>12.3e}")
    print(f"{'ours max relative KKT violation':<52}{kkt_violation(X, E, A).max():>12.3e}")

    ok = diff.max() <= RESIDUAL_TOL and A.min() >= 0
    if ok:
        print("\nPASS")
    else:
        print(f"\nFAIL: some residual is worse than the reference by > {RESIDUAL_TOL:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
