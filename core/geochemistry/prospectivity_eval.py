"""Evaluation of prospectivity and anomaly scores against known deposits.

A score (a prospectivity map, an anomaly score of geochemical samples) is judged by
how well it separates places near known deposits from places far from any:

- **Labels by distance** (:func:`label_by_distance`): a sample or pixel within
  ``positive_radius`` of a deposit is *positive* (1); one at least
  ``negative_min_distance`` from every deposit is a *negative candidate* (0); one in
  between is left out (-1), so that mineralised ground just outside the radius is not
  counted as barren.
- **ROC-AUC** (:func:`roc_auc`): the probability that a random positive scores higher
  than a random negative (Mann-Whitney statistic, ties counting one half). Because
  negatives vastly outnumber positives, :func:`repeated_negative_auc` draws balanced
  sets of negatives (as many as positives by default) several times and reports the
  mean and standard deviation of the AUC and of the average precision.
- **Significance** (:func:`auc_standard_error`, :func:`zauc`, :func:`null_z`): the Hanley &
  McNeil (1982) standard error and ZAUC = (AUC - 0.5) / SE, used by :func:`element_selection`
  to pick the elements whose concentrations are associated with the deposits, with the rank
  test of no association (its z) as a second bar: the standard error of a perfect split is 0.
  Neighbouring samples and pixels are not independent, so SE and ZAUC overstate the
  significance: read them as a ranking, not as p-values.
- **Success-rate curve** (:func:`success_rate_curve`): share of the deposits captured
  against the share of the area (pixels, or samples) ranked by decreasing score; its
  AUC is the probability that a deposit scores higher than a random place.
- **Prediction-area plot** (:func:`prediction_area`, Yousefi & Carranza 2015): for
  each threshold, the share of deposits with a score at or above it (prediction rate)
  and the share of the area at or above it; where the prediction rate equals 100 minus
  the area share, the map captures that share of deposits in the complementary share
  of the area.

High scores mean prospective. Non-finite scores are left out everywhere. Every deposit counts once
in the success-rate and P-A curves, also when several lie on one pixel or share their nearest sample
(a cluster of workings, a site listed twice): that place then weighs more. The number of distinct
places is returned (``n_deposit_places``) and logged when it is smaller.

Rasters (:func:`evaluate_raster`) are streamed block by block; distances are computed
with a k-d tree of the deposits for the pixel centres of each block. Negatives for the
draws come from a uniform random sample of the negative pixels (at most a memory-sized
pool); the success-rate curve is exact; the prediction-area curves are exact when the
raster has at most ``max_area_sample`` valid pixels, else the area shares are counted
exactly at about 2,000 thresholds set at quantiles of a random sample of the pixels,
about 0.05 % of the area apart, and the P-A intersection is interpolated between them
(its error is well within 0.1 % of the area). The random samples are tied to pixel
positions, not to the block layout, so the same seed gives the same numbers.

References: Hanley, J. A. & McNeil, B. J. (1982), Radiology 143, 29-36; Yousefi, M. &
Carranza, E. J. M. (2015), Computers & Geosciences 79, 69-81; Agterberg, F. P. &
Bonham-Carter, G. F. (2005), Natural Resources Research 14, 1-17 (success-rate curves).
"""


import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import rankdata

from ..engine import affine_ops
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.evaluation_guard import check_evaluation, read_validation

__all__ = [
    "roc_auc", "roc_curve", "auc_standard_error", "zauc", "null_z", "average_precision", "nearest_distance",
    "label_by_distance", "repeated_negative_auc", "success_rate_curve", "prediction_area", "evaluate_points",
    "evaluate_raster", "deposit_array", "sample_raster_by_distance", "ROC_GRID", "ROC_CURVE_FPR",
    "DEFAULT_ZAUC_THRESHOLD",
]  # reports: evaluation_report; element selection: element_selection

ROC_GRID = np.arange(101) / 100.0   # i / 100 correctly rounded, as a curve's k / n is: 3 / 10 == 30 / 100
"""False-positive rates at which the ROC curves of the draws are sampled and averaged."""

DEFAULT_ZAUC_THRESHOLD = 2.58
"""ZAUC above which an element is selected (the two-sided 1 % point of a normal distribution)."""

MIN_POSITIVES = 2


# --------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------
def _split(scores, labels):
    """Finite scores of the positives (label 1) and of the negatives (label 0); other labels are left out."""
    scores = np.asarray(scores, dtype=float).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels.")
    finite = np.isfinite(scores)
    return scores[finite & (labels == 1)], scores[finite & (labels == 0)]


def _counts_at_thresholds(pos, neg):
    """True and false positives scoring at or above each distinct score, from the highest down.

    Returns ``(tp, fp, thresholds)`` (one entry per distinct score; tied scores enter together).
    """
    values = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    order = np.argsort(-values, kind="stable")
    values, is_pos = values[order], is_pos[order]
    ends = np.r_[np.flatnonzero(np.diff(values) != 0), values.size - 1]  # last index of each tie group
    tp = np.cumsum(is_pos)[ends]
    return tp, (ends + 1) - tp, values[ends]


def _auc(pos, neg):
    n_pos, n_neg = pos.size, neg.size
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks: ties count one half
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(scores, labels):
    """Area under the ROC curve: P(score of a positive > score of a negative) + 0.5 P(equal).

    ``labels``: 1 positive, 0 negative; anything else (e.g. -1 of
    :func:`label_by_distance`) and non-finite scores are left out. NaN when either
    class is empty.
    """
    return _auc(*_split(scores, labels))


def roc_curve(scores, labels):
    """The ROC curve: ``(fpr, tpr, thresholds)``.

    One point per distinct score, from the highest down: the share of negatives and of
    positives scoring at or above it. Starts at (0, 0) with threshold +inf and ends at
    (1, 1). Tied scores give one diagonal step.
    """
    pos, neg = _split(scores, labels)
    if pos.size == 0 or neg.size == 0:
        raise OreMapError("A ROC curve needs both positives and negatives.", "labels")
    tp, fp, thresholds = _counts_at_thresholds(pos, neg)
    return np.r_[0.0, fp / neg.size], np.r_[0.0, tp / pos.size], np.r_[np.inf, thresholds]


def _roc_at(fpr, tpr, grid, side):
    """True-positive rate of the ROC polyline at the false-positive rates ``grid``: at a vertical jump on a grid
    value, the value below it (``side="left"``) or above it (``"right"``)."""
    # the last point left of g ("left") or at or left of g ("right"), then its segment to the next one
    j = np.clip(np.searchsorted(fpr, grid, side=side) - 1, 0, fpr.size - 1)
    k = np.minimum(j + 1, fpr.size - 1)
    span = fpr[k] - fpr[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(span > 0, (grid - fpr[j]) / np.where(span > 0, span, 1.0), 0.0)
    return tpr[j] + w * (tpr[k] - tpr[j])


ROC_CURVE_FPR = np.repeat(ROC_GRID, 2)
"""False-positive rates of the ROC curves that evaluations return and plot: each :data:`ROC_GRID` value twice,
for the true-positive rate below and above a jump there (:func:`_roc_on_grid`)."""


def _roc_on_grid(fpr, tpr, grid=ROC_GRID):
    """True-positive rates of a ROC curve at :data:`ROC_CURVE_FPR`: at each ``grid`` value the value below and the
    value above a vertical jump there. The polyline through them has the curve's area whenever the curve's points
    lie on grid values (as many negatives as divide 100), where one value per grid point (the upper) overstated
    it by up to half a grid step per jump; otherwise it cuts corners both ways."""
    out = np.empty(2 * np.asarray(grid).size)
    out[0::2] = _roc_at(fpr, tpr, grid, "left")
    out[1::2] = _roc_at(fpr, tpr, grid, "right")
    return out


def auc_standard_error(auc, n_pos, n_neg):
    """Standard error of an AUC after Hanley & McNeil (1982)::

        Q1 = A / (2 - A),  Q2 = 2 A^2 / (1 + A)
        SE = sqrt((A (1 - A) + (n_pos - 1)(Q1 - A^2) + (n_neg - 1)(Q2 - A^2)) / (n_pos n_neg))

    evaluated at ``max(A, 1 - A)``: an element lower near the deposits and the same values negated are the same
    samples, with AUCs ``A`` and ``1 - A``, and one standard error. The formula, derived for ``A >= 0.5``, is not
    symmetric: at ``A`` itself a depleted element got a smaller error (0.071 against 0.093 for 0.3 and 0.7 with
    10 and 700 samples) and so a larger ``|ZAUC|``. Works on scalars and arrays.
    """
    a = np.asarray(auc, dtype=float)
    a = np.where(a < 0.5, 1.0 - a, a)
    n_pos = np.asarray(n_pos, dtype=float)
    n_neg = np.asarray(n_neg, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q1 = a / (2.0 - a)
        q2 = 2.0 * a * a / (1.0 + a)
        var = (a * (1.0 - a) + (n_pos - 1.0) * (q1 - a * a) + (n_neg - 1.0) * (q2 - a * a)) / (n_pos * n_neg)
        se = np.sqrt(np.maximum(var, 0.0))
    return float(se) if se.ndim == 0 else se


def null_z(auc, n_pos, n_neg):
    """The rank test of no association (Mann-Whitney) as a z: ``(AUC - 0.5) / SE0`` with
    ``SE0 = sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))``, Hanley & McNeil's standard error at AUC 0.5. Finite for
    a perfect split: 2 against 2 samples give 1.55, however perfect (the exact one-sided p is 1/6)."""
    a = np.asarray(auc, dtype=float)
    n_pos = np.asarray(n_pos, dtype=float)
    n_neg = np.asarray(n_neg, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (a - 0.5) / np.sqrt((n_pos + n_neg + 1.0) / (12.0 * n_pos * n_neg))
    return float(z) if np.ndim(z) == 0 else z


def zauc(auc, n_pos, n_neg):
    """ZAUC = (AUC - 0.5) / SE (Hanley & McNeil SE); +-inf for a perfect (or perfectly wrong) AUC."""
    a = np.asarray(auc, dtype=float)
    se = np.asarray(auc_standard_error(a, n_pos, n_neg))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, (a - 0.5) / np.where(se > 0, se, 1.0), np.sign(a - 0.5) * np.inf)
        z = np.where(np.isfinite(a), z, np.nan)
    return float(z) if z.ndim == 0 else z


def average_precision(scores, labels):
    """Average precision: sum over distinct thresholds (from the highest) of precision x recall gain.

    ``AP = sum_k (R_k - R_(k-1)) P_k`` where ``P_k`` and ``R_k`` are the precision and
    recall of the samples scoring at or above the k-th highest distinct score (tied
    scores enter together). Labels as in :func:`roc_auc`; NaN without positives.
    """
    pos, neg = _split(scores, labels)
    if pos.size == 0:
        return float("nan")
    tp, fp, _ = _counts_at_thresholds(pos, neg)
    return float(np.sum(np.diff(np.r_[0.0, tp / pos.size]) * tp / (tp + fp)))


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------
def deposit_array(deposits_xy):
    """(k, 2) float array of the finite deposit coordinates; OreMapError when there are none."""
    dep = np.asarray(deposits_xy, dtype=float)
    if dep.size == 0:
        raise OreMapError("No deposits were given.", "deposits", "Choose a point layer with the known deposits.")
    dep = dep.reshape(-1, 2)
    dep = dep[np.all(np.isfinite(dep), axis=1)]
    if dep.size == 0:
        raise OreMapError("The deposits have no valid coordinates.", "deposits", "Check the deposit layer.")
    return dep


def _check_distances(positive_radius, negative_min_distance):
    if not (np.isfinite(positive_radius) and positive_radius > 0):
        raise OreMapError(f"The positive radius must be positive (got {positive_radius}).", "positive_radius",
                          "Use e.g. 2000 m.")
    if not np.isfinite(negative_min_distance) or negative_min_distance < positive_radius:
        raise OreMapError(f"The negative minimum distance ({negative_min_distance:g}) is smaller than the positive "
                          f"radius ({positive_radius:g}).", "negative_min_distance",
                          "Make it at least as large as the positive radius.")


def nearest_distance(x, y, deposits_x, deposits_y, upper=np.inf):
    """Distance from each (x, y) to the nearest deposit (k-d tree); +inf beyond ``upper``."""
    tree = cKDTree(deposit_array(np.column_stack([np.ravel(deposits_x), np.ravel(deposits_y)])))
    points = np.column_stack([np.ravel(np.asarray(x, float)), np.ravel(np.asarray(y, float))])
    if points.shape[0] == 0:
        return np.zeros(0)
    return tree.query(points, k=1, distance_upper_bound=upper)[0]


def _labels_from_distance(d, positive_radius, negative_min_distance):
    labels = np.full(d.shape, -1, dtype=np.int8)
    labels[d >= negative_min_distance] = 0
    labels[d <= positive_radius] = 1
    return labels


def label_by_distance(x, y, deposits_x, deposits_y, positive_radius, negative_min_distance):
    """Label places by their distance ``d`` to the nearest deposit.

    Returns an int8 array: 1 where ``d <= positive_radius``, 0 where
    ``d >= negative_min_distance``, -1 (left out) in between. Non-finite coordinates
    get -1. Distances are in the units of the coordinates (use a projected CRS).
    """
    _check_distances(positive_radius, negative_min_distance)
    x = np.ravel(np.asarray(x, float))
    y = np.ravel(np.asarray(y, float))
    ok = np.isfinite(x) & np.isfinite(y)
    d = np.full(x.shape, np.nan)
    # a bound a little above the negative distance keeps the query fast; farther points come back as inf
    d[ok] = nearest_distance(x[ok], y[ok], deposits_x, deposits_y, upper=negative_min_distance * (1 + 1e-9) + 1e-9)
    labels = _labels_from_distance(d, positive_radius, negative_min_distance)
    labels[~ok] = -1
    return labels


# --------------------------------------------------------------------------------------
# Repeated draws of negatives
# --------------------------------------------------------------------------------------
def _sd(values):
    values = np.asarray(values, float)
    return float(np.std(values, ddof=1)) if values.size > 1 else 0.0


def _draw_measures(pos, neg):
    """AUC, average precision and the ROC curve on :data:`ROC_GRID` of one draw, from a single sort."""
    tp, fp, _ = _counts_at_thresholds(pos, neg)
    tpr, fpr = np.r_[0.0, tp / pos.size], np.r_[0.0, fp / neg.size]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # trapezoids: ties count one half
    ap = float(np.sum(np.diff(tpr) * tp / (tp + fp)))
    return auc, ap, _roc_on_grid(fpr, tpr)


def repeated_negative_auc(scores, labels, n_draws=20, n_negatives=None, seed=0):
    """ROC-AUC and average precision over repeated random draws of negatives.

    Each draw takes ``n_negatives`` negatives (default: as many as there are positives;
    at most as many as there are) at random without replacement and scores them with
    all positives. The same ``seed`` gives the same numbers.

    Returns
    -------
    dict
        ``mean``, ``sd`` (sample standard deviation over the draws, 0 for one draw) and
        ``aucs`` (per draw); ``ap_mean``, ``ap_sd``, ``aps``; ``n_positive``,
        ``n_negatives`` (per draw), ``n_candidates``; ``se`` and ``zauc`` of the mean
        AUC (Hanley & McNeil with ``n_positive`` and ``n_negatives``); ``auc_all``
        (AUC against all candidates); ``roc_fpr`` (:data:`ROC_CURVE_FPR`), ``roc_tpr``
        (one row per draw) and ``roc_tpr_mean``; ``n_draws``, ``seed``.
    """
    pos, neg = _split(scores, labels)
    n_draws = int(n_draws)
    if n_draws < 1:
        raise OreMapError("The number of draws must be at least 1.", "n_draws", "Use e.g. 20.")
    if pos.size < MIN_POSITIVES:
        raise OreMapError(f"Only {pos.size} positive(s) (scored places near a deposit); at least {MIN_POSITIVES} "
                          "are needed.", "deposits",
                          "Check that the deposits lie in the scored area (same CRS), or enlarge the positive radius.")
    if neg.size == 0:
        raise OreMapError("No negative candidates (scored places far enough from every deposit).",
                          "negative_min_distance", "Lower the negative minimum distance.")
    k = pos.size if n_negatives in (None, 0) else int(n_negatives)
    if k < 1:
        raise OreMapError("The number of negatives per draw must be at least 1.", "n_negatives")
    k = min(k, neg.size)
    rng = np.random.default_rng(seed)
    aucs, aps, tprs = [], [], []
    for _ in range(n_draws):
        a, ap, tpr = _draw_measures(pos, neg[rng.choice(neg.size, size=k, replace=False)])
        aucs.append(a)
        aps.append(ap)
        tprs.append(tpr)
    aucs, aps, tprs = np.array(aucs), np.array(aps), np.array(tprs)
    mean = float(aucs.mean())
    return {
        "mean": mean, "sd": _sd(aucs), "aucs": aucs,
        "ap_mean": float(aps.mean()), "ap_sd": _sd(aps), "aps": aps,
        "n_positive": int(pos.size), "n_negatives": int(k), "n_candidates": int(neg.size),
        "se": auc_standard_error(mean, pos.size, k), "zauc": zauc(mean, pos.size, k),
        "auc_all": _auc(pos, neg),
        "roc_fpr": ROC_CURVE_FPR.copy(), "roc_tpr": tprs, "roc_tpr_mean": tprs.mean(axis=0),
        "n_draws": n_draws, "seed": seed,
    }


# --------------------------------------------------------------------------------------
# Success-rate curve and prediction-area plot
# --------------------------------------------------------------------------------------
def _finite(values):
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _success_from_counts(deposit_scores, n_area, area_ge, area_gt):
    """Success-rate curve from the deposit scores and area counts at them.

    ``area_ge(t)`` / ``area_gt(t)``: number of area cells with score >= t / > t, for
    an array of thresholds ``t``.
    """
    dep = np.sort(deposit_scores)[::-1]
    u = np.unique(dep)[::-1]                       # distinct deposit scores, highest first
    n_dep = dep.size
    d_ge = np.searchsorted(-dep, -u, side="right")  # deposits with score >= u
    d_gt = np.searchsorted(-dep, -u, side="left")   # deposits with score > u
    a_ge, a_gt = np.asarray(area_ge(u), float), np.asarray(area_gt(u), float)
    xs = np.r_[0.0, np.column_stack([a_gt, a_ge]).ravel() / n_area, 1.0]
    ys = np.r_[0.0, np.column_stack([d_gt, d_ge]).ravel() / n_dep, 1.0]
    auc = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))
    return {"area": xs, "deposits": ys, "auc": auc, "n_area": int(n_area), "n_deposits": int(n_dep)}


def success_rate_curve(area_scores, deposit_scores):
    """Success-rate curve: share of the area (ranked by decreasing score) against share of deposits captured.

    Exact: one horizontal step per distinct deposit score, ties between area cells and
    deposits as diagonal steps, so the AUC (trapezoids) equals P(deposit score > area
    score) + 0.5 P(equal). Non-finite scores are left out.

    Returns
    -------
    dict
        ``area`` and ``deposits`` (shares 0-1, from (0, 0) to (1, 1)), ``auc``,
        ``n_area``, ``n_deposits``.
    """
    area = np.sort(_finite(area_scores))
    dep = _finite(deposit_scores)
    if area.size == 0 or dep.size == 0:
        raise OreMapError("A success-rate curve needs scored area and at least one scored deposit.", "deposits")
    n = area.size
    return _success_from_counts(dep, n, lambda t: n - np.searchsorted(area, t, side="left"),
                                lambda t: n - np.searchsorted(area, t, side="right"))


def _pa_from_counts(thresholds, area_ge_counts, n_area, deposit_scores):
    t = np.asarray(thresholds, float)
    dep = np.sort(deposit_scores)
    rate = 100.0 * (dep.size - np.searchsorted(dep, t, side="left")) / dep.size
    area_pct = 100.0 * np.asarray(area_ge_counts, float) / n_area
    f = rate + area_pct - 100.0                     # non-increasing with the threshold
    below = np.flatnonzero(f <= 0)
    if below.size == 0:
        cross = (float("nan"), float("nan"))
    else:
        i = below[0]
        if f[i] == 0 or i == 0:
            cross = (float(t[i]), float(rate[i]))
        else:
            w = f[i - 1] / (f[i - 1] - f[i])
            cross = (float(t[i - 1] + w * (t[i] - t[i - 1])), float(rate[i - 1] + w * (rate[i] - rate[i - 1])))
    return {"thresholds": t, "prediction_rate": rate, "area_percent": area_pct, "intersection": cross,
            "n_area": int(n_area), "n_deposits": int(dep.size)}


def prediction_area(area_scores, deposit_scores):
    """Prediction-area (P-A) curves and their intersection.

    For each distinct score ``t`` (of area cells or deposits, ascending): the
    prediction rate (% of deposits with score >= t) and the % of the area with score
    >= t. The intersection is where prediction rate = 100 - area %, linearly
    interpolated between the two thresholds around the crossing.

    Returns
    -------
    dict
        ``thresholds``, ``prediction_rate``, ``area_percent``, ``intersection``
        ``(threshold, rate)`` (NaNs when the curves do not cross), ``n_area``,
        ``n_deposits``.
    """
    area = np.sort(_finite(area_scores))
    dep = _finite(deposit_scores)
    if area.size == 0 or dep.size == 0:
        raise OreMapError("A prediction-area plot needs scored area and at least one scored deposit.", "deposits")
    t = np.unique(np.concatenate([area, dep]))
    return _pa_from_counts(t, area.size - np.searchsorted(area, t, side="left"), area.size, dep)


def _thin_pa(pa, max_points=1001):
    """The P-A curves at no more than ``max_points`` thresholds (evenly spread by index), for plots and tables."""
    n = pa["thresholds"].size
    if n <= max_points:
        return pa
    idx = np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))
    return {**pa, "thresholds": pa["thresholds"][idx], "prediction_rate": pa["prediction_rate"][idx],
            "area_percent": pa["area_percent"][idx]}


# --------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------
def _deposit_places(where, scored, place, feedback):
    """How many distinct places (``where``: each deposit's pixel or sample index) the ``scored`` deposits lie on,
    said when fewer than the deposits: each deposit counts in the success-rate and P-A curves, so a place holding
    several (a cluster of workings, a site listed twice) weighs more."""
    n_scored, n_places = int(np.count_nonzero(scored)), int(np.unique(np.asarray(where)[scored]).size)
    if n_places < n_scored:
        feedback.info(f"The {n_scored} deposits with a score lie on {n_places} distinct {place}s: each deposit counts "
                      f"in the success-rate and P-A curves, so a {place} holding several weighs more.")
    return n_places


def _result(kind, draws, success, pa, deposits, deposit_scores, counts, settings, approximate=False):
    out = {
        "kind": kind, "auc_mean": draws["mean"], "auc_sd": draws["sd"], "aucs": draws["aucs"],
        "ap_mean": draws["ap_mean"], "ap_sd": draws["ap_sd"], "aps": draws["aps"],
        "auc_se": draws["se"], "zauc": draws["zauc"], "auc_all": draws["auc_all"],
        "roc_fpr": draws["roc_fpr"], "roc_tpr": draws["roc_tpr"], "roc_tpr_mean": draws["roc_tpr_mean"],
        "n_positive": draws["n_positive"], "n_negatives_per_draw": draws["n_negatives"],
        "success": success, "pa": _thin_pa(pa), "pa_threshold": pa["intersection"][0],
        "pa_rate": pa["intersection"][1], "deposits_xy": deposits, "deposit_scores": deposit_scores,
        "pa_approximate": bool(approximate),
    }
    out.update(counts)
    out.update(settings)
    return out


def evaluate_points(x, y, scores, deposits_xy, positive_radius=2000.0, negative_min_distance=4000.0, n_draws=20,
                    seed=0, n_negatives=None, feedback=None):
    """Evaluate scores of sample points (e.g. anomaly scores of geochemical samples) against deposits.

    Samples within ``positive_radius`` of a deposit are positives, those at least
    ``negative_min_distance`` from every deposit negative candidates (metres: ``x``, ``y`` and the deposits in a
    CRS in metres, as the algorithms project them)
    (:func:`label_by_distance`); AUC and AP come from :func:`repeated_negative_auc`.
    The success-rate and P-A curves rank all scored samples (area share = share of
    samples); a deposit's score is that of the nearest scored sample within
    ``positive_radius`` (deposits without one are left out of those curves).
    Coordinates must be in a projected CRS (distances in its units).

    Returns
    -------
    dict
        The measures (``auc_mean``, ``auc_sd``, ``aucs``, ``ap_mean``, ``ap_sd``,
        ``auc_se``, ``zauc``, ``auc_all``, ``pa_threshold``, ``pa_rate``), curves
        (``roc_*``, ``success``, ``pa``), counts (``n_samples``, ``n_scored``,
        ``n_positive``, ``n_negative_candidates``, ``n_excluded``, ``n_deposits``, ``n_deposit_places``,
        ``n_deposits_scored``) and settings.
    """
    feedback = ensure(feedback)
    x = np.ravel(np.asarray(x, float))
    y = np.ravel(np.asarray(y, float))
    scores = np.ravel(np.asarray(scores, float))
    if not (x.size == y.size == scores.size):
        raise ValueError("x, y and scores must have the same length.")
    # the samples in one order (by x, y, score), whatever order the layer holds them in: the draws of negatives pick
    # by position and the nearest sample of a deposit breaks ties by position (sorting area1's rows otherwise moved
    # an AUC by up to 0.1 with the same seed)
    order = np.lexsort((scores, y, x))
    x, y, scores = x[order], y[order], scores[order]
    dep = deposit_array(deposits_xy)
    _check_distances(positive_radius, negative_min_distance)
    finite = np.isfinite(scores) & np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        raise OreMapError("No sample has a score.", "score", "Check the score field (it is empty or not numeric).")
    if (~finite).sum():
        feedback.warning(f"{int((~finite).sum())} of {scores.size} samples have no score (or no position) and were "
                         "left out.")
    if np.ptp(scores[finite]) == 0:   # a field holding one value (e.g. a missing code, -9999, everywhere)
        feedback.warning(f"Every scored sample has the same score ({scores[finite][0]:g}): it ranks nothing, and the "
                         "AUC is 0.5. Choose the field that holds the scores.")
    labels = label_by_distance(x, y, dep[:, 0], dep[:, 1], positive_radius, negative_min_distance)
    labels[~finite] = -1
    from .distance_advice import check_distances

    # too few positives or negatives: distances that work for this survey (or, deposits far away: the CRS)
    check_distances(x[finite], y[finite], dep, positive_radius, negative_min_distance, MIN_POSITIVES, 1,
                    what="scored samples")
    n_pos = int((labels == 1).sum())
    if n_pos == 0:
        raise OreMapError(f"No scored sample lies within {positive_radius:g} m of a deposit.", "deposits",
                          "Check that the deposits lie in the sampled area (same CRS), or enlarge the positive "
                          "radius.")
    feedback.info(f"{n_pos} positive samples, {int((labels == 0).sum())} negative candidates, "
                  f"{int((labels == -1).sum())} left out.")
    draws = repeated_negative_auc(scores, labels, n_draws=n_draws, n_negatives=n_negatives, seed=seed)
    feedback.progress(60)
    tree = cKDTree(np.column_stack([x[finite], y[finite]]))
    d, idx = tree.query(dep, k=1)
    dep_scores = np.where(d <= positive_radius, scores[finite][np.minimum(idx, finite.sum() - 1)], np.nan)
    n_dep_scored = int(np.isfinite(dep_scores).sum())
    n_places = _deposit_places(idx, np.isfinite(dep_scores), "sample", feedback)
    if n_dep_scored < dep.shape[0]:
        feedback.warning(f"{dep.shape[0] - n_dep_scored} of {dep.shape[0]} deposits have no scored sample within "
                         f"{positive_radius:g} m; they are left out of the success-rate and P-A curves.")
    success = success_rate_curve(scores[finite], dep_scores)
    pa = prediction_area(scores[finite], dep_scores)
    feedback.progress(100)
    counts = {"n_samples": int(scores.size), "n_scored": int(finite.sum()), "n_negative_candidates":
              int((labels == 0).sum()), "n_excluded": int(((labels == -1) & finite).sum()),
              "n_deposits": int(dep.shape[0]), "n_deposits_scored": n_dep_scored, "n_deposit_places": n_places}
    settings = {"positive_radius": float(positive_radius), "negative_min_distance": float(negative_min_distance),
                "n_draws": int(n_draws), "seed": seed}
    counts["guard_warnings"] = check_evaluation(
        "deposits", dep.shape[0], n_dep_scored, f"the other deposits have no scored sample within {positive_radius:g} m:"
        " they lie outside the sampled area, or the deposits' CRS or the radius units are not those of the samples.",
        feedback=feedback)
    return _result("points", draws, success, pa, dep, dep_scores, counts, settings)


# --------------------------------------------------------------------------------------
# Rasters
# --------------------------------------------------------------------------------------
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash_keys(index, salt):
    """Uniform pseudo-random uint64 keys of pixel indexes (splitmix64), independent of the block layout."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _salt(seed, stream):
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, stream]).generate_state(2, np.uint64)[0])


class _Reservoir:
    """A uniform random sample without replacement of at most ``size`` rows: the rows with the smallest keys."""

    def __init__(self, size, salt):
        self.size, self.salt = int(size), salt
        self.keys = np.zeros(0, np.uint64)
        self.rows = None
        self.seen = 0

    def add(self, index, rows):
        self.seen += index.size
        if index.size == 0 or self.size == 0:
            return
        keys = np.concatenate([self.keys, _hash_keys(index, self.salt)])
        rows = rows if self.rows is None else np.concatenate([self.rows, rows])
        if keys.size > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, rows = keys[keep], rows[keep]
        self.keys, self.rows = keys, rows

    def values(self, width):
        if self.rows is None:
            return np.zeros((0, width))  # 2-D like the rows added: a one-band scan indexes [:, 0]
        order = np.argsort(self.keys, kind="stable")  # a fixed order, whatever the block layout
        return self.rows[order]


def _pixel_centres(transform, window, rows, cols):
    c = cols + window.col_off + 0.5
    r = rows + window.row_off + 0.5
    return affine_ops.apply(transform, c, r)


def _deposit_pixels(transform, width, height, dep):
    cols, rows = affine_ops.apply(~transform, dep[:, 0], dep[:, 1])
    cols, rows = np.floor(cols).astype(np.int64), np.floor(rows).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    return rows, cols, inside


def _pool_size(memory_mb, n_bands):
    """Largest negative pool that takes about a quarter of the memory budget (8-byte key + values, merged)."""
    from ..engine.raster import memory_budget_mb

    budget = memory_budget_mb(memory_mb) * 1024 * 1024 / 4
    return int(min(20_000_000, max(100_000, budget // (3 * (8 + 8 * n_bands)))))


def _scan_raster(path, bands, dep, positive_radius, negative_min_distance, seed, memory_mb, feedback,
                 negative_pool=None, area_sample=0, nodata=None):
    """One pass over a raster: values of positive pixels, a sample of negative pixels, counts, deposit pixels.

    Returns a dict with ``positives`` (n, b), ``negatives`` (k, b) (uniform sample of
    the negative pixels), ``n_valid``, ``n_positive``, ``n_negative_candidates``,
    ``n_excluded``, ``deposit_values`` (d, b; NaN outside or on nodata), ``area``
    (a uniform sample of the valid values of band 1, at most ``area_sample``),
    ``min``/``max`` of band 1, the source's ``width``/``height`` and ``farthest`` (metres from its nearest deposit
    of the farthest valid pixel nearer than the negative distance). A pixel is
    valid where any band is; each band keeps its own NaNs.
    """
    from ..engine.raster import RasterSource, block_windows, memory_budget_mb, metres_per_unit

    feedback = ensure(feedback)
    _check_distances(positive_radius, negative_min_distance)
    tree = cKDTree(dep)
    bound = negative_min_distance * (1 + 1e-9) + 1e-9
    with RasterSource(path, bands=bands, nodata=nodata, scale="metadata") as src:
        nb = src.n_bands
        width, height, transform = src.width, src.height, src.transform
        per_unit = metres_per_unit(src.crs)  # distances are in metres; a grid in feet is measured in metres too
        if per_unit != 1.0:
            tree = cKDTree(dep * per_unit)
        pool = _Reservoir(negative_pool if negative_pool is not None else _pool_size(memory_mb, nb),
                          _salt(seed, 1))
        area = _Reservoir(area_sample, _salt(seed, 2))
        dep_rows, dep_cols, inside = _deposit_pixels(transform, width, height, dep)
        deposit_values = np.full((dep.shape[0], nb), np.nan)
        positives, n_valid, n_neg, n_excluded = [], 0, 0, 0
        lo, hi, farthest = np.inf, -np.inf, 0.0
        windows = block_windows(width, height, nb * 24 + 64, memory_budget_mb(memory_mb))
        for i, window in enumerate(windows):
            feedback.check()
            data = src.read_nan(window)
            valid = np.any(np.isfinite(data), axis=-1)
            # deposit pixels in this window
            here = inside & (dep_rows >= window.row_off) & (dep_rows < window.row_off + window.height) \
                & (dep_cols >= window.col_off) & (dep_cols < window.col_off + window.width)
            if here.any():
                deposit_values[here] = data[dep_rows[here] - window.row_off, dep_cols[here] - window.col_off]
            if not valid.any():
                feedback.progress(100.0 * (i + 1) / len(windows))
                continue
            rows, cols = np.nonzero(valid)
            values = data[rows, cols]
            x, y = _pixel_centres(transform, window, rows, cols)
            d = tree.query(np.column_stack([x, y]) * per_unit, k=1, distance_upper_bound=bound)[0]
            labels = _labels_from_distance(d, positive_radius, negative_min_distance)
            near = d[np.isfinite(d)]   # within the negative distance of a deposit (inf beyond: negatives)
            if near.size:
                farthest = max(farthest, float(near.max()))
            index = (rows + window.row_off).astype(np.int64) * width + (cols + window.col_off)
            positives.append(values[labels == 1])
            neg = labels == 0
            n_neg += int(neg.sum())
            n_excluded += int((labels == -1).sum())
            pool.add(index[neg], values[neg])
            first = values[:, 0]
            ok = np.isfinite(first)
            n_valid += int(valid.sum())
            if ok.any():
                lo, hi = min(lo, float(first[ok].min())), max(hi, float(first[ok].max()))
                area.add(index[ok], first[ok])
            feedback.progress(100.0 * (i + 1) / len(windows))
    positives = np.concatenate(positives) if positives else np.zeros((0, nb))
    return {"positives": positives, "negatives": pool.values(nb), "n_valid": n_valid,
            "n_positive": int(positives.shape[0]), "n_negative_candidates": n_neg, "n_excluded": n_excluded,
            "farthest": farthest,
            "deposit_values": deposit_values, "deposit_pixels": dep_rows * width + dep_cols,
            "area": area.values(1).ravel(), "n_area": area.seen, "min": lo, "max": hi, "width": width, "height": height}


def sample_raster_by_distance(path, deposits_xy, positive_radius, negative_min_distance, bands=None, seed=0,
                              max_negatives=None, nodata=None, feedback=None, memory_mb=None):
    """Values of the positive pixels and of a random sample of the negative pixels of a raster.

    Streams the raster block by block; a pixel is positive within ``positive_radius``
    of a deposit and a negative candidate at least ``negative_min_distance`` from every
    deposit (pixel centres; distances in metres, a CRS in feet converted). ``max_negatives`` caps the
    uniform random sample of negatives (default: from the memory budget); the sample
    depends only on ``seed``. Each band keeps its own nodata as NaN.

    Returns
    -------
    dict
        ``positives`` (n_pos, bands), ``negatives`` (k, bands), ``n_valid``,
        ``n_positive``, ``n_negative_candidates``, ``n_excluded``, ``deposit_values``.
    """
    dep = deposit_array(deposits_xy)
    return _scan_raster(path, bands, dep, positive_radius, negative_min_distance, seed, memory_mb, feedback,
                        negative_pool=max_negatives, nodata=nodata)


def _exact_counts(path, band, thresholds, nodata, memory_mb, feedback):
    """Numbers of valid pixels with value >= t and > t for each of the sorted ``thresholds`` (a second pass)."""
    from ..engine.raster import RasterSource, block_windows, memory_budget_mb

    feedback = ensure(feedback)
    t = np.asarray(thresholds, float)
    ge_hist = np.zeros(t.size + 1, np.int64)
    gt_hist = np.zeros(t.size + 1, np.int64)
    with RasterSource(path, bands=[band], nodata=nodata, scale="metadata") as src:
        windows = block_windows(src.width, src.height, 48, memory_budget_mb(memory_mb))
        for i, window in enumerate(windows):
            feedback.check()
            v = src.read_nan(window)[..., 0].ravel()
            v = v[np.isfinite(v)]
            ge_hist += np.bincount(np.searchsorted(t, v, side="right"), minlength=t.size + 1)
            gt_hist += np.bincount(np.searchsorted(t, v, side="left"), minlength=t.size + 1)
            feedback.progress(100.0 * (i + 1) / len(windows))
    # values with j thresholds <= v are >= thresholds[0..j-1]: count(>= t_k) = sum over j >= k+1
    ge = np.cumsum(ge_hist[::-1])[::-1][1:]
    gt = np.cumsum(gt_hist[::-1])[::-1][1:]
    return ge, gt


def evaluate_raster(score_path, deposits_xy, positive_radius=2000.0, negative_min_distance=4000.0, n_draws=20,
                    seed=0, feedback=None, memory_mb=None, band=1, nodata=None, n_negatives=None,
                    max_area_sample=2_000_000, max_negatives=None):
    """Evaluate a score raster (prospectivity map) against deposits.

    Positives: valid pixels whose centre is within ``positive_radius`` of a deposit;
    negative candidates: valid pixels at least ``negative_min_distance`` from every
    deposit (in metres; the raster must be projected, in metres or feet). AUC/AP from
    :func:`repeated_negative_auc` with negatives drawn from a uniform sample of at most
    ``max_negatives`` negative pixels (default from the memory budget). Success-rate
    curve (exact) and P-A plot from all valid pixels, each deposit scored by the pixel
    it falls in (deposits off the raster or on nodata are left out of those curves). The P-A
    curves are exact up to ``max_area_sample`` valid pixels; above that see the module
    notes (area shares exact at ~2,000 quantile thresholds, ``pa_approximate`` True).

    Returns
    -------
    dict
        As :func:`evaluate_points`, with ``n_valid`` (valid pixels) instead of samples.
    """
    feedback = ensure(feedback)
    dep = deposit_array(deposits_xy)
    scan = _scan_raster(score_path, [band], dep, positive_radius, negative_min_distance, seed, memory_mb,
                        feedback.scaled(0, 60), negative_pool=max_negatives, area_sample=max_area_sample,
                        nodata=nodata)
    n_pos = scan["n_positive"]
    if scan["n_valid"] == 0:
        raise OreMapError("Every pixel of the score raster is nodata.", "score", "Check the raster and its nodata.")
    if n_pos == 0:
        raise OreMapError(f"No valid pixel lies within {positive_radius:g} m of a deposit.", "deposits",
                          "Check that the deposits overlap the score raster (same area, CRS), or enlarge the "
                          "positive radius.")
    feedback.info(f"{scan['n_valid']} valid pixels: {n_pos} positive, {scan['n_negative_candidates']} negative "
                  f"candidates, {scan['n_excluded']} left out between the two distances.")
    if scan["n_negative_candidates"] == 0:
        from .distance_advice import TRADE_OFF, nice_down

        limit = nice_down(scan["farthest"])
        raise OreMapError(f"No valid pixel lies at least the negative distance ({negative_min_distance:g} m) from "
                          f"every deposit: the farthest lies {scan['farthest']:.0f} m from its nearest deposit.",
                          "negative_min_distance",
                          f"Lower the negative minimum distance to {limit:g} m or less"
                          + (" (and the positive radius below it)" if positive_radius >= limit else "")
                          + f", or score a larger area. {TRADE_OFF}")
    pos, neg = scan["positives"][:, 0], scan["negatives"][:, 0]
    if neg.size < scan["n_negative_candidates"]:
        feedback.info(f"Negatives are drawn from a random sample of {neg.size} of the "
                      f"{scan['n_negative_candidates']} negative pixels.")
    draws = repeated_negative_auc(np.r_[pos, neg], np.r_[np.ones(pos.size, np.int8), np.zeros(neg.size, np.int8)],
                                  n_draws=n_draws, n_negatives=n_negatives, seed=seed)
    feedback.progress(70)
    dep_scores = scan["deposit_values"][:, 0]
    n_dep_scored = int(np.isfinite(dep_scores).sum())
    if n_dep_scored < dep.shape[0]:
        feedback.warning(f"{dep.shape[0] - n_dep_scored} of {dep.shape[0]} deposits lie off the raster or on nodata; "
                         "they are left out of the success-rate and P-A curves.")
    if n_dep_scored == 0:
        raise OreMapError("No deposit lies on a valid pixel of the score raster.", "deposits",
                          "Check that the deposits overlap the score raster (same area, CRS).")
    dep_ok = dep_scores[np.isfinite(dep_scores)]
    n_places = _deposit_places(scan["deposit_pixels"], np.isfinite(dep_scores), "pixel", feedback)
    approximate = scan["n_area"] > scan["area"].size
    if not approximate:
        success = success_rate_curve(scan["area"], dep_ok)
        pa = prediction_area(scan["area"], dep_ok)
    else:
        sample = np.sort(scan["area"])
        # values of the map itself (not interpolated between two), so a map of few distinct values gets the
        # thresholds, and the P-A intersection, of the exact curves
        # (numpy's quantile method "inverted_cdf", written out: the keyword needs numpy 1.22, Ubuntu 22.04 has 1.21)
        levels = np.linspace(0.0, 1.0, 2001)
        grid = sample[np.clip(np.ceil(levels * sample.size).astype(np.int64) - 1, 0, sample.size - 1)]
        thresholds = np.unique(np.concatenate([grid, dep_ok, [scan["min"], scan["max"]]]))
        ge, gt = _exact_counts(score_path, band, thresholds, nodata, memory_mb, feedback.scaled(70, 100))
        n = scan["n_area"]

        def lookup(counts):
            return lambda t: counts[np.searchsorted(thresholds, t)]

        success = _success_from_counts(dep_ok, n, lookup(ge), lookup(gt))
        pa = _pa_from_counts(thresholds, ge, n, dep_ok)
    feedback.progress(100)
    counts = {"n_valid": scan["n_valid"], "n_scored": scan["n_area"], "n_negative_candidates":
              scan["n_negative_candidates"], "n_excluded": scan["n_excluded"], "n_negative_pool": int(neg.size),
              "n_deposits": int(dep.shape[0]), "n_deposits_scored": n_dep_scored, "n_deposit_places": n_places}
    settings = {"positive_radius": float(positive_radius), "negative_min_distance": float(negative_min_distance),
                "n_draws": int(n_draws), "seed": seed, "raster": str(score_path), "band": int(band)}
    validation = read_validation(score_path)
    counts["guard_warnings"] = check_evaluation(
        "deposits", dep.shape[0], n_dep_scored, "the other deposits lie off the score raster or on its nodata: "
        "another area, or the deposits' CRS is not the one they are stored in.",
        draws["mean"], "mean ROC-AUC", validation["value"] if validation else None,
        "the deposits here differ from those the model was trained on (another deposit type or area), the map "
        "was made from another element stack than the model's, or the model's own figure is optimistic (few "
        "deposits in its cross-validation).", feedback)
    return _result("raster", draws, success, pa, dep, dep_scores, counts, settings, approximate=approximate)


# --------------------------------------------------------------------------------------
# Element selection
# --------------------------------------------------------------------------------------


