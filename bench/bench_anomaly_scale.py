#!/usr/bin/env python3
"""Anomaly scores on a regional compilation (core.geochemistry.anomaly_methods): time, and what fitting the
robust covariance on a subset changes.

Run from the repository root::

    .venv/bin/python bench/bench_anomaly_scale.py (or make bench) [--samples 200000] [--elements 45]

A synthetic survey of ``--samples`` samples x ``--elements`` elements (robust z-scores correlated 0.3 with each
other, at random places in a 500 km square), 200 of them enriched by 4 sd in five elements. Measured:

1. the spatial-context score (targets: under 30 s for 200,000 samples);
2. the MCD on a random :data:`MCD_FIT_MAX` (the default) against the MCD fitted on every sample: time of each, the
   largest difference of location (robust z) and of scatter (share of its largest value), the scores' Spearman
   correlation and the share of the top 1 % the two have in common. Targets: the subset's fit under 60 s, location
   within 0.03, Spearman over 0.99, top 1 % shared over 90 %, every planted sample in both top 1 %;
3. the default fusion (``score_all`` without a target) end to end: under 180 s for 200,000 samples.

Exit status 1 when a target is missed.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from core.geochemistry import anomaly_methods as am  # noqa: E402


def survey(n, m, seed=0, planted=200):
    """Robust-z-like values (n, m) correlated 0.3, the first ``planted`` rows enriched by 4 in five elements, and
    places in a 500 km square."""
    rng = np.random.default_rng(seed)
    cov = 0.3 * np.ones((m, m)) + 0.7 * np.eye(m)
    Z = rng.standard_normal((n, m)) @ np.linalg.cholesky(cov).T
    Z[:planted, :5] += 4.0
    return Z, rng.uniform(0, 5e5, n), rng.uniform(0, 5e5, n)


def main(argv=None):
    from scipy.stats import spearmanr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200000)
    parser.add_argument("--elements", type=int, default=45)
    args = parser.parse_args(argv)
    n, m, planted = args.samples, args.elements, 200
    Z, x, y = survey(n, m, planted=planted)
    failures = []

    def check(ok, what):
        print(("PASS " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    t = time.perf_counter()
    am.score_spatial(Z, x, y)
    dt = time.perf_counter() - t
    check(dt < 30 * n / 200000, f"spatial context: {dt:.1f} s for {n:,} samples")

    t = time.perf_counter()
    capped = am._mcd(Z, 0)
    capped_scores = capped.mahalanobis(Z)
    dt_capped = time.perf_counter() - t
    t = time.perf_counter()
    full = am._mcd(Z, 0, fit_max=n)
    full_scores = full.mahalanobis(Z)
    dt_full = time.perf_counter() - t
    location = float(np.abs(capped.location_ - full.location_).max())
    scatter = float(np.abs(capped.covariance_ - full.covariance_).max() / np.abs(full.covariance_).max())
    rho = float(spearmanr(capped_scores, full_scores)[0])
    k = max(1, n // 100)
    top_capped, top_full = set(np.argsort(-capped_scores)[:k]), set(np.argsort(-full_scores)[:k])
    shared = len(top_capped & top_full) / k
    print(f"MCD on {min(n, am.MCD_FIT_MAX):,} of {n:,} samples: {dt_capped:.1f} s; on every sample: {dt_full:.1f} s")
    check(dt_capped < 60, f"MCD fit on the subset and scoring: {dt_capped:.1f} s")
    check(location < 0.03, f"location within {location:.4f} robust z of the full fit's")
    print(f"scatter within {100 * scatter:.1f} % of the full fit's largest value")
    check(rho > 0.99, f"Spearman correlation with the full fit's scores {rho:.4f}")
    check(shared > 0.9, f"top 1 % shared with the full fit: {100 * shared:.1f} %")
    found = (len(top_capped & set(range(planted))), len(top_full & set(range(planted))))
    check(found == (planted, planted), f"planted samples in the top 1 %: subset fit {found[0]}, full fit {found[1]} "
                                       f"of {planted}")

    values = 10 ** (1.0 + 0.3 * Z)
    names = [f"E{i}_ppm" for i in range(m)]
    t = time.perf_counter()
    am.score_all(values, names, x, y, methods=("fusion",))
    dt = time.perf_counter() - t
    check(dt < 180 * n / 200000, f"default fusion (MCD + forest + suite, spatial support): {dt:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
