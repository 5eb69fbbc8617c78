"""Positive radius and negative distance that fit a survey: checks with the values that would work.

The evaluation of a score against deposits (and element selection) labels a sample positive
within the positive radius of a deposit and negative at least the negative distance from every
deposit. Defaults made for regional surveys (2 km / 4 km) leave no negatives on a prospect-scale
survey where every sample lies within a kilometre of a known site, and no positives on a sparse
survey. :func:`check_distances` refuses such settings with values computed from the survey: the
sample spacing and the distances from the samples to their nearest deposit.
"""

import math

import numpy as np
from scipy.spatial import cKDTree

from ..engine.errors import OreMapError

TRADE_OFF = ("A larger positive radius gives more positives but counts ground farther from the deposits as "
             "mineralised; a smaller negative distance gives more negatives but counts ground nearer them as barren.")


def nice_up(value):
    """``value`` rounded up to 1, 2, 2.5 or 5 times a power of ten (e.g. 130 -> 200, 1,300 -> 2,000)."""
    if not value > 0:
        return 0.0
    p = 10.0 ** math.floor(math.log10(value))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * p >= value * (1 - 1e-12):
            return m * p
    return 10.0 * p


def nice_down(value):
    """``value`` rounded down to 1, 2, 2.5 or 5 times a power of ten."""
    if not value > 0:
        return 0.0
    p = 10.0 ** math.floor(math.log10(value))
    for m in (5.0, 2.5, 2.0, 1.0):
        if m * p <= value * (1 + 1e-12):
            return m * p
    return p


def sample_spacing(x, y):
    """Median distance from a sample location to the nearest other location (duplicates counted once)."""
    pts = np.unique(np.column_stack([np.asarray(x, float), np.asarray(y, float)]), axis=0)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.shape[0] < 2:
        return float("nan")
    d = cKDTree(pts).query(pts, k=2)[0][:, 1]
    return float(np.median(d))


def suggest_distances(x, y, deposits_xy, min_positives=2, min_negatives=2, want_positives=5, want_deposits=3):
    """``(radius, negative distance, n positives, n negatives, spacing, nearest distances)`` that work here.

    The radius is the distance at which ``want_positives`` samples (at least ``min_positives``) fall within it and
    ``want_deposits`` deposits (or all, when fewer) have a sample within it, at least one sample spacing, rounded up;
    the negative distance the largest leaving as many negatives as positives (at least ``min_negatives``), rounded
    down, and never below the radius. Where covering the deposits leaves fewer negatives than positives, or a negative
    distance under twice the radius, fewer deposits are reached (at least two), else the radius covers the samples
    only. Five samples next to one deposit made the whole evaluation: on a lithium survey with nine pegmatite
    sites the advice gave six positives, all at one site.
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    dep = np.asarray(deposits_xy, float).reshape(-1, 2)
    d = np.sort(cKDTree(dep).query(np.column_stack([x[ok], y[ok]]), k=1)[0])
    spacing = sample_spacing(x[ok], y[ok])
    n = d.size
    if n == 0:
        return float("nan"), float("nan"), 0, 0, spacing, d
    k = min(max(min_positives, want_positives), n)
    floor = max(d[k - 1], spacing if np.isfinite(spacing) else 0.0, 1e-9)
    cover = np.sort(cKDTree(np.column_stack([x[ok], y[ok]])).query(dep, k=1)[0])   # each deposit's nearest sample
    cover = cover[np.isfinite(cover)]
    # radii reaching want_deposits deposits, then fewer (at least two), then the samples' own floor
    reaches = [cover[m - 1] for m in range(min(want_deposits, cover.size), 1, -1) if cover[m - 1] > floor]
    for low in reaches + [floor]:
        radius = nice_up(low)
        n_pos = int((d <= radius).sum())
        want_neg = max(min_negatives, n_pos)
        negative = max(nice_down(d[n - want_neg]), radius) if n - want_neg >= 0 else radius
        n_neg = int((d >= negative).sum())
        # a radius reaching far deposits must leave as many negatives as positives, at least twice as far out (a
        # deposit beyond the survey's edge took the radius up to the negative distance, 95 % of samples positive)
        if low == floor or (n_neg >= want_neg and negative >= 2 * radius):
            break
    return radius, negative, n_pos, n_neg, spacing, d


def deposits_covered(x, y, deposits_xy, radius):
    """How many deposits have a sample within ``radius``."""
    ok = np.isfinite(np.asarray(x, float)) & np.isfinite(np.asarray(y, float))
    pts = np.column_stack([np.asarray(x, float)[ok], np.asarray(y, float)[ok]])
    dep = np.asarray(deposits_xy, float).reshape(-1, 2)
    if not pts.size or not dep.size:
        return 0
    return int((cKDTree(pts).query(dep, k=1)[0] <= radius).sum())


def check_distances(x, y, deposits_xy, positive_radius, negative_min_distance, min_positives=2, min_negatives=2,
                    what="sample(s)"):
    """Raise an OreMapError with distances that would work when the settings leave too few positives or negatives.

    Returns ``(n_positive, n_negative)`` otherwise.
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    dep = np.asarray(deposits_xy, float).reshape(-1, 2)
    dep = dep[np.isfinite(dep).all(axis=1)]
    if dep.shape[0] == 0 or not ok.any():
        return 0, 0
    d = cKDTree(dep).query(np.column_stack([x[ok], y[ok]]), k=1)[0]
    n_pos = int((d <= positive_radius).sum())
    n_neg = int((d >= negative_min_distance).sum())
    if n_pos >= min_positives and n_neg >= min_negatives:
        return n_pos, n_neg
    pts = np.column_stack([x[ok], y[ok]])
    extent = float(np.hypot(*(pts.max(axis=0) - pts.min(axis=0)))) if pts.shape[0] > 1 else 0.0
    # deposits farther from every sample than the survey is wide: another place or another CRS. Nearer, the
    # distances are at fault (2 and 4 typed for 2 km and 4 km were blamed on the CRS)
    if n_pos == 0 and d.min() > 10 * max(positive_radius, negative_min_distance) and d.min() > extent:
        raise OreMapError(f"Only 0 {what} lie within the positive radius ({positive_radius:g} m) of a deposit: the "
                          f"nearest deposit is {d.min() / 1000:.3g} km away.", "deposits",
                          "Check that the deposits lie in the sampled area and that both layers have the right CRS.")
    radius, negative, s_pos, s_neg, spacing, ds = suggest_distances(x[ok], y[ok], dep, min_positives, min_negatives)
    if n_pos < min_positives:
        problem = (f"Only {n_pos} {what} lie within the positive radius ({positive_radius:g} m) of a deposit; at least "
                   f"{min_positives} are needed.")
        parameter = "positive_radius"
    else:
        problem = (f"Only {n_neg} {what} lie at least the negative distance ({negative_min_distance:g} m) from every "
                   f"deposit; at least {min_negatives} are needed.")
        parameter = "negative_min_distance"
    where = (f"the median sample spacing is {spacing:.0f} m" if np.isfinite(spacing) else
             "the samples share one location (no spacing)")
    facts = (f"Here {where} and the {what} lie {ds.min():.0f} to {ds.max():.0f} m "
             f"from their nearest deposit (median {np.median(ds):.0f} m).")
    if positive_radius < 100 and np.isfinite(spacing) and positive_radius < spacing / 10:
        facts = (f"The distances are in metres ({positive_radius:g} km would be {1000 * positive_radius:g}). "
                 + facts)
    if s_pos >= min_positives and s_neg >= min_negatives:
        fix = (f"{facts} A positive radius of {radius:g} m and a negative distance of {negative:g} m give {s_pos} "
               f"positives (near {deposits_covered(x[ok], y[ok], dep, radius)} of the {dep.shape[0]} deposits) and "
               f"{s_neg} negative candidates. {TRADE_OFF}")
    else:
        hint = (f"Lower the negative minimum distance (below {ds.max():.0f} m some {what} remain)"
                if parameter == "negative_min_distance" else
                f"Enlarge the positive radius (from {ds.min():.0f} m some {what} lie within it)")
        fix = (f"{facts} {hint}; but no pair of distances gives {min_positives} positives and {min_negatives} "
               "negatives here: the survey does not reach far enough from (or near enough to) the deposits.")
    raise OreMapError(problem, parameter, fix)
