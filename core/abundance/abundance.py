"""Mineral abundance from spectra: an ensemble of regressors, closed to 100 %, with intervals.

Sites that scan rock, core or conveyor material with VNIR/SWIR cameras hold laboratory
compositions (XRD phases in %) for some samples. Here those samples are regions of
interest (ROIs) on the image, each with a measured composition; every pixel of an ROI
carries its ROI's composition and its ROI id (the group of cross-validation).

Training (:func:`train_abundance_model`):

1. the composition table is checked and put in % (fractions are detected), with an
   optional "Other" part for what the chosen minerals do not cover
   (:func:`prepare_compositions`);
2. the ROIs are split into folds (whole ROIs, never pixels: :func:`roi_folds`); inside
   each training fold the spectra are augmented (noise, brightness) *after* the split,
   preprocessed, and every model family is fitted: PLS, ridge, extra trees, gradient
   boosting and a 1D CNN (:data:`FAMILIES`);
3. out-of-fold predictions give each family's honest error and the stacking weights
   (non-negative least squares per mineral, :func:`stacking_weights`); the ensemble's
   own out-of-fold error uses weights fitted without the fold (nested);
4. closure: predictions are projected onto the simplex (non-negative, summing to
   exactly 100 %), or the models work in isometric log-ratio (ILR) space whose inverse
   is closed by construction;
5. intervals: split-conformal on the grouped out-of-fold residuals, scaled by the
   members' disagreement (the spread): ``|y - a| / (spread + floor)`` has an
   empirical quantile ``q`` per mineral, each ROI (group) weighing one, as the ROIs
   are the exchangeable units (:func:`conformal_quantile`), and the interval
   ``a -/+ q (spread + floor)`` clipped to [0, 100] holds the truth at the chosen rate
   on new ROIs; below :func:`conformal_minimum` ROIs it is 0-100 %. Its coverage
   is checked on each fold with a quantile from the other folds only;
6. a physics baseline on the same folds: endmember spectra estimated from the training
   ROIs (least squares on the compositions) and :func:`core.engine.unmixing.unmix`, so the
   report shows when plain unmixing is as good;
7. the final members are refitted on all ROIs and joined into one ONNX graph
   (:mod:`core.engine.onnx_ensemble`) with the metadata that prediction needs.

Prediction (:func:`predict_abundance_map`) streams a raster through the block engine:
abundance bands (%), lower and upper interval bands, the dominant mineral, and summary
statistics.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..engine import compositional
from ..engine.colors import class_colours, hex_colour
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, write_model
from .members import make_member, member_onnx
from ..engine.model_format import build_date

TASK = "mineral_abundance"
INPUT_NAME = "spectra"

FAMILIES = [
    ("pls", "PLS regression"),
    ("ridge", "Ridge regression"),
    ("extra_trees", "Extra trees"),
    ("hgb", "Gradient boosting (HistGradientBoosting)"),
    ("cnn", "1D CNN regressor"),
]
FAMILY_LABELS = dict(FAMILIES)
SPACES = ("simplex", "ilr")
TOTAL = 100.0

#: Probability levels at which the conformal scores are stored in the model (any level can be asked later).
_SCORE_LEVELS = np.linspace(0.0, 1.0, 1001)


# ---------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------
@dataclass
class Compositions:
    """ROI compositions ready for training: ``values`` (n_roi, k) in % summing to 100."""

    names: list
    values: np.ndarray
    units: str
    other_added: bool
    messages: list = field(default_factory=list)
    kept: np.ndarray = None  # ROIs kept (rows without missing values)
    warnings: list = field(default_factory=list)  # what the user should check (also in ``messages``)


#: Row sums of fractions beyond this are not fractions (rounding of lab reports stays far below it).
FRACTION_SUM_LIMIT = 1.5


#: Row sums within this many percent points of 100 on both sides are a lab's rounding (closed, no Other part).
ROUNDING_SLACK = 5.0
#: Names of a table's own remainder column (case ignored): the shortfall of each row goes there.
OTHER_NAMES = ("other", "others", "rest", "remainder", "unclassified", "unidentified")


def prepare_compositions(values, names, units="auto", add_other=True, tolerance=1.0, row_names=None):
    """Check a table of measured compositions and bring it to % summing to 100.

    Parameters
    ----------
    values : array (n_roi, k)
        Measured amounts per ROI (NaN = not measured: the ROI is left out).
    names : list of str
        Mineral names (k >= 1; with a single mineral, "Other" is required).
    units : {"auto", "percent", "fraction"}
        ``"auto"``: fractions when no value exceeds 1 (and rows sum to at most 1.05),
        else %. The choice is reported in ``messages``.
    add_other : bool
        Add an "Other" part, 100 - sum, when some rows sum to less than 100 - ``tolerance`` (to the table's own
        column named in :data:`OTHER_NAMES` when there is one). Without it such rows are closed (divided by their
        sum), which is reported. Sums on both sides of 100 within :data:`ROUNDING_SLACK` points are rounding:
        closed, no part added.
    tolerance : float
        Percent points of slack on the row sums (rounding of lab reports).
    row_names : list of str, optional
        One name per ROI (its label or id), to name the ROIs left out for a missing value in the warning.
    """
    values = np.asarray(values, dtype=np.float64)
    names = [str(n) for n in names]
    if values.ndim != 2 or values.shape[1] != len(names) or not names:
        raise OreMapError("The composition table must have one column per mineral.", "fields")
    if len(set(names)) != len(names):
        raise OreMapError("Mineral names must be unique.", "fields")
    messages, warnings = [], []
    kept = np.isfinite(values).all(axis=1)
    if not kept.all():
        left = np.flatnonzero(~kept)
        named = "" if row_names is None else (": " + ", ".join(str(row_names[i]) for i in left[:10])
                                              + (" ..." if left.size > 10 else ""))
        warnings.append(f"{left.size} ROIs lack a value for some chosen mineral and are left out{named}. An empty "
                        "cell reads as 'not measured': write 0 (or 'nd') where a mineral was looked for and not found.")
        messages.append(warnings[-1])
    v = values[kept]
    if v.shape[0] == 0:
        empty = [n for j, n in enumerate(names) if not np.isfinite(values[:, j]).any()]
        raise OreMapError("No ROI has a value for every chosen mineral"
                          + (f": {', '.join(empty)} {'holds' if len(empty) == 1 else 'hold'} no number in any ROI."
                             if empty else "."), "fields",
                          "Choose the fields that hold the amounts (numbers, % or fractions), or fill them."
                          if empty else "Fill the composition fields of the ROIs.")
    if (v < 0).any():
        raise OreMapError(f"Negative abundances were found (smallest {v.min():.4g}).", "fields",
                          "Abundances must be >= 0 (in % or fractions).")
    detected = units == "auto"
    if units == "auto":
        units = "fraction" if v.max() <= 1.0 + 1e-9 and v.sum(axis=1).max() <= 1.05 else "percent"
        messages.append("Abundances read as fractions (0-1) and converted to %." if units == "fraction"
                        else "Abundances read as percentages (0-100).")
    elif units == "fraction" and v.sum(axis=1).max() > FRACTION_SUM_LIMIT:
        raise OreMapError(f"The abundances were declared fractions (0-1), but ROIs sum to up to "
                          f"{v.sum(axis=1).max():.4g}: they look like percentages.", "units",
                          "Choose Percent (0-100) or Detect.")
    elif units == "fraction" and v.max() > 1.0 + 1e-9:
        raise OreMapError(f"The abundances were declared fractions (0-1), but values reach {v.max():.4g}.", "units",
                          "Choose Percent (0-100) or Detect, or correct the values above 1.")
    if units == "percent" and v.max() <= 1.0 + 1e-9:
        warnings.append(f"The abundances were read as percentages, but no value exceeds 1 (the chosen minerals "
                        f"cover at most {v.sum(axis=1).max():.2f} % of any ROI): if they are fractions (0-1), "
                        + ("choose Fractions." if detected else "choose Fractions or Detect."))
        messages.append(warnings[-1])  # in the report's notes too
    if units == "fraction" and detected and v.sum(axis=1).max() < 0.5:
        # every ROI's minerals below half of it: more likely per cents of minor minerals than fractions
        warnings.append(f"The abundances were read as fractions (no value exceeds 1), but the chosen minerals cover "
                        f"at most {100 * v.sum(axis=1).max():.0f} % of any ROI: if they are percentages, choose "
                        "Percent.")
        messages.append(warnings[-1])
    if units == "percent":
        row = v.sum(axis=1)
        small = (row >= 0.9) & (row <= 1.05)   # a fraction's row sums to about 1 (not 0: a fresh-rock row)
        if small.any() and (row >= 50.0).any():
            warnings.append(f"{int(small.sum())} ROIs sum to at most {row[small].max():.2f} % while others reach "
                            f"{row.max():.0f} %: they look like fractions (0-1) among percentages. Write them in "
                            "per cent.")
            messages.append(warnings[-1])
    if units == "fraction":
        v = v * 100.0
    elif units != "percent":
        raise OreMapError(f"Unknown unit '{units}'.", "units")
    sums = v.sum(axis=1)
    rounding = bool((sums > 100.0 + tolerance).any() and (sums < 100.0 - tolerance).any()
                    and np.all(np.abs(sums - 100.0) <= ROUNDING_SLACK) and abs(np.median(sums) - 100.0) <= tolerance)
    if rounding:   # sums on both sides of 100 and close to it: the scatter of a lab's rounding, no missing part
        messages.append(f"The ROIs sum to {sums.min():.1f}-{sums.max():.1f} %, on both sides of 100 % and within "
                        f"{ROUNDING_SLACK:g} points of it: read as rounding and closed to 100 % (no 'Other' part).")
    if (sums > 100.0 + tolerance).any() and not rounding:
        n_over = int((sums > 100.0 + tolerance).sum())
        text = f"{n_over} ROIs sum to more than 100 % (up to {sums.max():.1f} %); they were closed to 100 %."
        if sums.max() > 100.0 * FRACTION_SUM_LIMIT / 1.05:  # far beyond rounding: a unit or field mistake
            warnings.append(text + " Check the unit and that no field is counted twice.")
        messages.append(text)
    other = bool(add_other and not rounding and (sums < 100.0 - tolerance).any())
    own = next((j for j, n in enumerate(names) if n.strip().lower() in OTHER_NAMES), None)
    if other and own is not None:   # the table's own remainder column takes the shortfall
        v = v.copy()
        v[:, own] += np.clip(100.0 - sums, 0.0, None)
        other = False
        messages.append(f"The rest of each ROI (100 % minus the chosen fields, which cover "
                        f"{sums.min():.1f}-{sums.max():.1f} %) was added to the table's own '{names[own]}' column.")
    elif other:
        v = np.column_stack([v, np.clip(100.0 - sums, 0.0, None)])
        names = names + ["Other"]
        messages.append(f"An 'Other' part (100 % minus the chosen minerals) was added: the chosen minerals "
                        f"cover {sums.min():.1f}-{sums.max():.1f} % of the ROIs.")
    elif (sums < 100.0 - tolerance).any() and not rounding:
        messages.append("Rows summing to less than 100 % were closed to 100 % (no 'Other' part).")
    if len(names) < 2:
        raise OreMapError("At least two parts are needed (two minerals, or one mineral and 'Other').", "fields")
    sums = v.sum(axis=1)
    if (sums <= 0).any():
        raise OreMapError(f"{int((sums <= 0).sum())} ROIs have every chosen mineral at zero (rows "
                          + ", ".join(str(i + 1) for i in np.flatnonzero(kept)[sums <= 0][:10]) + ").", "fields",
                          "Choose the mineral they consist of too, or keep the 'Other' part (ADD_OTHER) for them.")
    v = v / sums[:, None] * 100.0
    return Compositions(names, v, units, other, messages, kept, warnings)


# ---------------------------------------------------------------------------
# Folds, stacking, metrics
# ---------------------------------------------------------------------------
def roi_folds(groups, n_folds=5, seed=0):
    """Fold number of every sample: whole groups (ROIs) per fold, groups shuffled with ``seed``.

    Groups are dealt to folds in a random order, so folds hold (nearly) equal numbers
    of ROIs. The shuffle deals the groups in the order they first appear among the samples, not by the values
    of their ids (since 0.2.17): ROI ids follow the order of the ROI layer, and the same ROIs listed in another
    order got other folds. Raises when there are fewer than 3 groups.
    """
    groups = np.asarray(groups).reshape(-1)
    unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if unique.size < 3:
        raise OreMapError(f"Cross-validation needs at least 3 ROIs; {unique.size} cover valid pixels.", "training",
                          "Digitise more ROIs with measured compositions.")
    k = int(min(max(2, n_folds), unique.size))
    appearance = np.empty(unique.size, dtype=np.int64)
    appearance[np.argsort(first)] = np.arange(unique.size)   # rank of each group by its first sample
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of_rank = np.empty(unique.size, dtype=np.int64)
    fold_of_rank[order] = np.arange(unique.size) % k
    return fold_of_rank[appearance][np.asarray(inverse).reshape(-1)], k


def stacking_weights(P, T, shared=True):
    """Non-negative stacking weights that sum to one (a convex combination of the members).

    ``P`` (n, m, d) member predictions, ``T`` (n, d) targets. With ``shared`` one weight
    vector serves every output (fewer parameters: steadier with few ROIs), else one per
    output. Solved exactly as a fully constrained least-squares problem
    (:func:`core.engine.unmixing.fcls`: the members' predictions play the endmembers). Returns (m, d).
    """
    from ..engine.unmixing import fcls

    P = np.asarray(P, np.float64)
    T = np.asarray(T, np.float64)
    n, m, d = P.shape
    if m == 1:
        return np.ones((1, d))
    if shared:
        E = P.transpose(0, 2, 1).reshape(n * d, m)
        w = np.asarray(fcls(T.reshape(1, n * d), E), np.float64).reshape(m)
        return np.repeat(w[:, None], d, axis=1)
    return np.column_stack([np.asarray(fcls(T[None, :, j], P[:, :, j]), np.float64).reshape(m)
                            for j in range(d)])


def regression_metrics(Y, A, names):
    """Per part: RMSE, bias (mean prediction - truth), R2 (1 - SSE/SST); plus the mean RMSE."""
    Y = np.asarray(Y, np.float64)
    A = np.asarray(A, np.float64)
    rows = {}
    for j, name in enumerate(names):
        e = A[:, j] - Y[:, j]
        sst = float(((Y[:, j] - Y[:, j].mean()) ** 2).sum())
        rows[name] = {"rmse": float(np.sqrt(np.mean(e ** 2))), "bias": float(e.mean()),
                      "r2": float(1.0 - (e ** 2).sum() / sst) if sst > 0 else float("nan")}
    rows["mean_rmse"] = float(np.mean([rows[n]["rmse"] for n in names]))
    return rows


def conformal_rank(n, level):
    """The rank of the split-conformal quantile among ``n`` calibration units, ``ceil((n + 1) level)``: a finite
    quantile needs it at most ``n``."""
    return int(np.ceil((int(n) + 1) * float(level)))


def conformal_quantile(scores, level, groups=None):
    """The split-conformal quantile: the ceil((n+1) level)-th smallest score (inf when n is too small).

    With ``groups`` (the ROI of each score) the calibration units are the groups, not the scores: the pixels of one
    ROI share its lab composition, so their residuals go together and n pixels are not n exchangeable draws (with
    3 ROIs of 60 pixels, 90 % intervals held 77 % of new ROIs' pixels). Each of the K groups then weighs 1 / K, shared
    by its scores, and the quantile is the smallest score whose pooled weight reaches ``level (K + 1) / K``: inf
    below :func:`conformal_minimum` groups. For a new group exchangeable with the K, the expected share of its
    pixels inside the interval is at least ``level`` (the new group's own weight, unknown, is counted as above every
    score, as split-conformal counts the new score); one score per group gives the rank above.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    if groups is not None:
        k = np.unique(np.asarray(groups).reshape(-1)).size
        if conformal_rank(k, level) > k:
            return float("inf")
        return float(pooled_quantile(scores, group_weights(groups), min(float(level) * (k + 1) / k, 1.0)))
    scores = np.sort(scores)
    n = scores.size
    rank = conformal_rank(n, level)
    return float(scores[rank - 1]) if 1 <= rank <= n else float("inf")


def group_weights(groups):
    """Weight of each score when every group (ROI) counts once: ``1 / (K n_g)``, summing to 1."""
    _, inverse, counts = np.unique(np.asarray(groups).reshape(-1), return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[np.asarray(inverse).reshape(-1)])


def pooled_quantile(scores, weights, p):
    """The smallest score whose weight with every smaller score's reaches ``p`` (scalar or array; the inverse of the
    weighted empirical distribution, a step function: no interpolation)."""
    order = np.argsort(np.asarray(scores, np.float64), kind="stable")
    s = np.asarray(scores, np.float64)[order]
    cum = np.cumsum(np.asarray(weights, np.float64)[order])
    cum /= cum[-1]   # rounding: the total is exactly 1
    i = np.searchsorted(cum, np.asarray(p, np.float64) - 1e-9, side="left")
    return s[np.minimum(i, s.size - 1)]


def conformal_minimum(level):
    """The fewest calibration scores (or groups) that give :func:`conformal_quantile` a finite value at ``level``."""
    n = 1
    while conformal_rank(n, level) > n:
        n += 1
    return n


def calibration_warning(n_units, level, unit="ROIs"):
    """What to say when ``n_units`` calibration units (``unit``: ROIs, ROI groups, or the pixels of a model made
    before ROIs counted once) are too few for a finite conformal quantile at ``level``: the intervals are then
    0-100 %. None when they are enough."""
    need = conformal_minimum(level)
    if n_units >= need:
        return None
    ok = [p for p in range(50, 100) if conformal_rank(n_units, p / 100.0) <= n_units]
    why = ("" if "pixel" in unit else f"the pixels of one ROI share its lab composition, so the {unit}, not the "
           "pixels, are the calibration units, and ")
    return (f"Too few {unit} to calibrate {round(100 * float(level), 6):g} % intervals: {why}a conformal interval at "
            f"that level needs at least {need} {unit} ({n_units} here). Every interval is 0-100 %. Add ROIs, or "
            "lower the level" + (f" to at most {ok[-1]} %." if ok else "."))


def intervals(A, spread, quantiles, floors):
    """Lower and upper bounds ``a -/+ q (spread + floor)``, clipped to [0, 100] (an infinite ``q``: 0 and 100)."""
    q = np.asarray(quantiles, np.float64)[None, :]
    with np.errstate(invalid="ignore"):   # inf x 0 (no spread, no floor) is still no bound
        half = np.where(np.isinf(q), np.inf, q * (np.asarray(spread) + np.asarray(floors)[None, :]))
    return np.clip(A - half, 0.0, TOTAL), np.clip(A + half, 0.0, TOTAL)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def augment_spectra(X, T, groups, copies, rng, snr_db=None, brightness=0.0):
    """Training spectra plus ``copies`` noisy/brightened variants of each (targets and groups repeated).

    Noise: Gaussian, standard deviation ``mean(|x|) / 10**(snr_db/20)``; brightness: a factor
    ``U(1 - brightness, 1 + brightness)`` per variant.
    """
    if copies <= 0 or (snr_db is None and brightness <= 0):
        return X, T, groups
    src = np.repeat(np.arange(X.shape[0]), int(copies))
    V = X[src].astype(np.float64)
    if brightness > 0:
        V *= rng.uniform(1.0 - brightness, 1.0 + brightness, (V.shape[0], 1))
    if snr_db is not None:
        sigma = np.mean(np.abs(V), axis=1, keepdims=True) / 10.0 ** (float(snr_db) / 20.0)
        V += sigma * rng.standard_normal(V.shape)
    return (np.concatenate([X, V.astype(X.dtype)]), np.concatenate([T, T[src]]),
            np.concatenate([groups, groups[src]]))


ZERO_ABUNDANCE = 0.65 * 0.01
"""What a zero abundance becomes before log-ratios (as a fraction): 0.65 x a detection limit of 1 %, that of
XRD and point-counting abundances. The smallest value of the table, the default of
:func:`core.engine.compositional.replace_zeros`, is no detection limit here: a table of whole per cents
made a pure mineral's target 61 / 19.5 / 19.5 %, and its predictions about 76 %."""


def _to_targets(Y, space):
    if space == "ilr":
        return compositional.ilr(compositional.replace_zeros(Y / TOTAL, delta=ZERO_ABUNDANCE))
    return Y


def _to_parts(E, space):
    """Closed compositions (%) from ensemble outputs."""
    if space == "ilr":
        return compositional.ilr_inverse(E, TOTAL)
    return compositional.project_simplex(E, TOTAL)


def _member_parts(P, space):
    """Each member's prediction in % (n, m, k) for the spread."""
    if space == "ilr":
        n, m, d = P.shape
        return compositional.ilr_inverse(P.reshape(n * m, d), TOTAL).reshape(n, m, d + 1)
    return P


def _spread(P, space):
    Q = _member_parts(P, space)
    return Q.std(axis=1)


def estimate_endmembers(X, Y):
    """Endmember spectra (k, b) that best reproduce ``X`` from the fractions ``Y / 100``
    (least squares, clipped at 0)."""
    F = np.asarray(Y, np.float64) / TOTAL
    E, *_ = np.linalg.lstsq(F, np.asarray(X, np.float64), rcond=None)
    return np.clip(E, 0.0, None)


@dataclass
class AbundanceResult:
    """What :func:`train_abundance_model` returns."""

    onnx_model: object
    info: ModelInfo
    names: list
    oof: dict            # label -> (n, k) out-of-fold predictions in %, closed
    truth: np.ndarray    # (n, k) in %
    groups: np.ndarray
    folds: np.ndarray
    metrics: dict        # label -> regression_metrics
    coverage: dict       # part -> honest coverage of the intervals
    weights: np.ndarray  # (m, d) final stacking weights
    families: list
    quantiles: np.ndarray
    floors: np.ndarray
    spread: np.ndarray   # (n, k) out-of-fold spread
    widths: dict = field(default_factory=dict)

    def save(self, path):
        return write_model(self.onnx_model, self.info, path)


def _check_inputs(X, Y, groups, k, families, space, preprocessing, level):
    """The checks of :func:`train_abundance_model` on its arrays and settings; returns the families as a list."""
    from ..engine.spectra import PREPROCESSING_METHODS

    n = X.shape[0]
    if Y.shape != (n, k) or groups.size != n:
        raise OreMapError("Spectra, compositions and ROI ids do not match.", "training")
    if not np.isfinite(X).all():
        raise OreMapError("Training spectra hold NaN or infinite values.", "training")
    if np.abs(Y.sum(axis=1) - TOTAL).max() > 1e-6 or (Y < 0).any():
        raise OreMapError("Compositions must be >= 0 and sum to 100 %.", "training")
    families = [f for f in families]
    if not families or any(f not in FAMILY_LABELS for f in families):
        raise OreMapError("Choose at least one model family.", "families",
                          "Families: " + ", ".join(FAMILY_LABELS.values()))
    if space not in SPACES:
        raise OreMapError(f"Unknown modelling space '{space}'.", "space")
    if preprocessing not in PREPROCESSING_METHODS:
        raise OreMapError(f"Unknown preprocessing '{preprocessing}'.", "preprocessing")
    if not 0.5 <= float(level) < 1.0:
        raise OreMapError("The interval level must be between 0.5 and 0.99.", "level")
    return families


def _conformal(P_oof, A_oof, Y, names, groups, folds, n_folds, space, level):
    """Conformal intervals of :func:`train_abundance_model` scaled by the members' spread: the spread,
    floors and quantiles, and the out-of-fold coverage and widths (each fold calibrated without itself).
    The calibration units are the ``groups`` (ROIs), each weighing one (:func:`conformal_quantile`)."""
    n, k = Y.shape
    m = P_oof.shape[1]
    S_oof = _spread(P_oof, space)
    floors = np.maximum(np.median(S_oof, axis=0), 0.5) if m > 1 else np.full(k, 1.0)
    R = np.abs(Y - A_oof) / (S_oof + floors)
    quantiles = np.array([conformal_quantile(R[:, j], level, groups) for j in range(k)])
    coverage, widths = {}, {}
    covered = np.zeros((n, k), bool)
    width = np.zeros((n, k))
    for f in range(n_folds):
        va, tr = folds == f, folds != f
        q = np.array([conformal_quantile(R[tr, j], level, groups[tr]) for j in range(k)])
        lo, hi = intervals(A_oof[va], S_oof[va], q, floors)
        covered[va] = (Y[va] >= lo - 1e-9) & (Y[va] <= hi + 1e-9)
        width[va] = hi - lo
    for j, name in enumerate(names):
        coverage[name] = float(covered[:, j].mean())
        widths[name] = float(width[:, j].mean())
    coverage["all"] = float(covered.mean())
    # the groups' pooled quantile curve; prediction reads it at level (K + 1) / K (AbundanceModel.quantiles)
    score_table = np.array([pooled_quantile(R[:, j], group_weights(groups), _SCORE_LEVELS) for j in range(k)])
    return S_oof, floors, quantiles, coverage, widths, score_table


def _model_info(X, Y, groups, names, wl, fwhm, band_names, metrics, coverage, widths, W, floors, score_table,
                settings, n_rois):
    """The :class:`ModelInfo` of an abundance ensemble trained by :func:`train_abundance_model`
    (``settings``: its keyword arguments that the model records)."""
    families, space, n_folds = settings["families"], settings["space"], settings["n_folds"]
    augment_copies, snr_db, brightness = settings["augment_copies"], settings["snr_db"], settings["brightness"]
    seed, member_options, level = settings["seed"], settings["member_options"], settings["level"]
    preprocessing, description = settings["preprocessing"], settings["description"]
    n, b = X.shape
    m = len(families)
    ens_label = "Ensemble" if m > 1 else FAMILY_LABELS[families[0]]
    summary_metrics = {
        "cv_rmse": {label: {nm: metrics[label][nm]["rmse"] for nm in names} for label in metrics},
        "cv_r2": {label: {nm: metrics[label][nm]["r2"] for nm in names} for label in metrics},
        "ensemble": ens_label,
        "coverage": coverage, "level": float(level), "mean_interval_width": widths,
    }
    colours = class_colours(names)
    digest = hashlib.sha256(np.ascontiguousarray(X, "<f4").tobytes() + np.ascontiguousarray(Y, "<f8").tobytes())
    info = ModelInfo(
        task=TASK,
        classes=[{"name": nm, "color": hex_colour(c)} for nm, c in zip(names, colours)],
        input={"name": INPUT_NAME, "n_bands": int(b)},
        output={"name": "abundances", "kind": "abundance_percent", "spread": "spread"},
        wavelengths=None if wl is None else [float(v) for v in wl],
        fwhm=None if fwhm is None else [float(v) for v in np.asarray(fwhm, np.float64)],
        band_names=None if band_names is None else [str(v) for v in band_names],
        preprocessing={"method": preprocessing},
        training={
            "date": build_date(),
            "data_hash": digest.hexdigest(), "n_samples": int(n), "n_rois": int(n_rois),
            "n_groups": int(np.unique(groups).size),
            "metrics": summary_metrics,
            "parameters": {"families": families, "space": space, "n_folds": int(n_folds),
                           "augment_copies": int(augment_copies), "snr_db": snr_db, "brightness": float(brightness),
                           "seed": int(seed), "weights": W.tolist(),
                           "member_options": {f: {k_: list(v) if isinstance(v, (tuple, np.ndarray)) else v
                                                  for k_, v in o.items()} for f, o in member_options.items()}},
        },
        description=str(description),
    )
    info.extra["abundance"] = {
        "space": space, "total": TOTAL, "other_part": "Other" in names,
        "conformal": {"floors": floors.tolist(), "levels": _SCORE_LEVELS.tolist(), "scores": score_table.tolist(),
                      "n_calibration": int(np.unique(groups).size), "units": "groups",
                      "default_level": float(level)},
    }
    info = ModelInfo.from_json(info.to_json())
    return info


def train_abundance_model(X, Y, groups, names, wavelengths=None, fwhm=None, band_names=None,
                          preprocessing="none", families=("pls", "ridge", "extra_trees", "hgb", "cnn"),
                          space="simplex", n_folds=5, augment_copies=0, snr_db=None, brightness=0.0,
                          level=0.9, seed=0, fcls=True, member_options=None, n_jobs=None,
                          description="", n_rois=None, feedback=None):
    # Over 100 lines by its docstring (every setting documented); the code is 86 lines.
    """Train the abundance ensemble; see the module docstring for the steps.

    Parameters
    ----------
    X : array (n, b)
        Reflectance spectra of ROI pixels (at the model's bands), in an order that does not depend on the ROIs'
        (:func:`core.engine.sampling.labelled_pixels` gives raster order): folds, augmentation and the members'
        fits follow the order of the pixels, and the folds the order in which the groups first appear
        (:func:`roi_folds`), not their ids.
    Y : array (n, k)
        Composition of each pixel's ROI in %, rows summing to 100 (see :func:`prepare_compositions`).
    groups : array (n,)
        Cross-validation group of each pixel: its ROI, or one id for ROIs of one sample (whole groups stay on one
        side of every split).
    names : list of str
        The k part names.
    preprocessing : {"none", "brightness", "continuum_removal"}
        Applied to spectra before every model (as in :func:`core.engine.spectra.preprocess`).
    families : sequence of str
        Members, from :data:`FAMILIES`.
    space : {"simplex", "ilr"}
    n_folds : int
        Grouped cross-validation folds (at most the number of ROIs).
    augment_copies, snr_db, brightness
        Augmentation of the training folds only (see :func:`augment_spectra`).
    level : float
        Interval level reported in the training summary (any level can be used at prediction).
    fcls : bool
        Also evaluate linear unmixing with endmembers estimated from the training ROIs.
    member_options : dict, optional
        ``{family: {option: value}}`` overriding a member's defaults (see :func:`make_member`).
    n_rois : int, optional
        How many ROIs the pixels come from, when ``groups`` joins some of them; default: the number of groups.
    """
    from ..engine.spectra import preprocess

    feedback = ensure(feedback)
    X = np.asarray(X, np.float32)
    Y = np.asarray(Y, np.float64)
    groups = np.asarray(groups).reshape(-1)
    names = [str(n) for n in names]
    n, b = X.shape
    k = len(names)
    families = _check_inputs(X, Y, groups, k, families, space, preprocessing, level)
    wl = None if wavelengths is None else np.asarray(wavelengths, np.float64)
    member_options = {f: dict(o) for f, o in (member_options or {}).items()}
    folds, n_folds = roi_folds(groups, n_folds, seed)
    T = _to_targets(Y, space)
    d = T.shape[1]
    m = len(families)
    P_oof = np.zeros((n, m, d))
    unmix_oof = {"fcls": np.full((n, k), np.nan), "nn_closed": np.full((n, k), np.nan)} if fcls else {}
    n_steps = n_folds + 1
    rng = np.random.default_rng([seed, 11])
    n_groups = int(np.unique(groups).size)
    n_rois = n_groups if n_rois is None else int(n_rois)
    unit = "ROIs" if n_rois == n_groups else "ROI groups"
    feedback.info(f"{n} pixels from {n_rois} ROIs"
                  + (f" in {n_groups} groups (ROIs of one sample together)" if n_rois != n_groups else "")
                  + f", {b} bands, {k} parts; {n_folds}-fold cross-validation by {unit[:-1]}; members: "
                  + ", ".join(FAMILY_LABELS[f] for f in families) + ".")

    def fit_members(Xtr, Ttr, gtr, step):
        Xa, Ta, _ = augment_spectra(Xtr, Ttr, gtr, augment_copies, rng, snr_db, brightness)
        Pa = preprocess(Xa, preprocessing, wl)
        fitted = []
        for i, family in enumerate(families):
            sub = feedback.scaled(100.0 * (step + i / m) / n_steps, 100.0 * (step + (i + 1) / m) / n_steps)
            member = make_member(family, Pa.shape[0], b, d, seed=seed, options=member_options.get(family),
                                 n_jobs=n_jobs, feedback=sub)
            feedback.check()
            member.fit(Pa, Ta)
            fitted.append(member)
        return fitted

    for f in range(n_folds):
        feedback.check()
        tr, va = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        members = fit_members(X[tr], T[tr], groups[tr], f)
        Pva = preprocess(X[va], preprocessing, wl)
        for i, member in enumerate(members):
            P_oof[va, i] = np.asarray(member.predict(Pva), np.float64).reshape(va.size, d)
        if fcls:
            from ..engine.unmixing import unmix

            E = estimate_endmembers(X[tr], Y[tr])
            for mode in unmix_oof:
                A, _ = unmix(X[va], E.T, mode=mode)
                unmix_oof[mode][va] = np.nan_to_num(A.astype(np.float64)) * TOTAL
        feedback.info(f"Fold {f + 1}/{n_folds}: {va.size} pixels of {np.unique(groups[va]).size} {unit} held out.")

    # stacking: final weights on all out-of-fold predictions; the ensemble's own OOF with nested weights
    W = stacking_weights(P_oof, T)
    E_oof = np.zeros((n, d))
    for f in range(n_folds):
        va, tr = folds == f, folds != f
        E_oof[va] = np.einsum("nmd,md->nd", P_oof[va], stacking_weights(P_oof[tr], T[tr]))
    oof = {FAMILY_LABELS[fam]: _to_parts(P_oof[:, i], space) for i, fam in enumerate(families)}
    A_oof = _to_parts(E_oof, space)
    if m > 1:
        oof["Ensemble"] = A_oof
    for mode, A in unmix_oof.items():
        oof["Unmixing (FCLS)" if mode == "fcls" else "Unmixing (NN, closed)"] = compositional.project_simplex(A, TOTAL)
    metrics = {label: regression_metrics(Y, A, names) for label, A in oof.items()}

    # conformal intervals scaled by the members' spread
    S_oof, floors, quantiles, coverage, widths, score_table = _conformal(P_oof, A_oof, Y, names, groups, folds,
                                                                         n_folds, space, level)

    # final members on everything
    feedback.info("Fitting the final members on all ROIs.")
    members = fit_members(X, T, groups, n_folds)
    from ..engine import onnx_ensemble

    graph = onnx_ensemble.combine([member_onnx(fam, mem, b) for fam, mem in zip(families, members)], W,
                                  np.zeros(d), b, k, space=space,
                                  basis=compositional.ilr_basis(k) if space == "ilr" else None)
    settings = {"families": families, "space": space, "n_folds": n_folds, "augment_copies": augment_copies,
                "snr_db": snr_db, "brightness": brightness, "seed": seed, "member_options": member_options,
                "preprocessing": preprocessing, "level": level, "description": description}
    info = _model_info(X, Y, groups, names, wl, fwhm, band_names, metrics, coverage, widths, W, floors, score_table,
                       settings, n_rois)
    feedback.progress(100.0)
    return AbundanceResult(graph, info, names, oof, Y, groups, folds, metrics, coverage, W, families, quantiles,
                           floors, S_oof, widths)


# ---------------------------------------------------------------------------
# Report and tables
# ---------------------------------------------------------------------------


