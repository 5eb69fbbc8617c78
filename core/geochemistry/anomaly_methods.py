"""Multivariate geochemical anomaly scores side by side: robust Mahalanobis, robust PCA residual, isolation
forest, the VAE, a spatial-context score, an enrichment index, and their rank-mean fusion.

Every score takes the same prepared table (:func:`prepare`): missing codes, values below
detection and zeros handled as everywhere in OreMap (:mod:`core.geochemistry.geochem`), log10, then each
element centred on its median and scaled by its interquartile range (robust z-scores).
Multivariate models need complete rows, so a missing element of a sample that has at
least ``min_present`` of its elements enters at the median (0); samples with fewer are not
scored (NaN). Higher is always more anomalous.

* ``mcd``: squared Mahalanobis distance from the Minimum Covariance Determinant estimate of
  location and scatter (Rousseeuw and Van Driessen 1999; scikit-learn ``MinCovDet``).
* ``rpca``: orthogonal distance to the robust principal subspace (the eigenvectors of the MCD
  scatter that explain :data:`RPCA_VARIANCE` of it), as in ROBPCA (Hubert, Rousseeuw and
  Vanden Branden 2005): what the main element associations do not explain.
* ``iforest``: isolation forest (Liu, Ting and Zhou 2008; scikit-learn), minus its score.
* ``vae``: the reconstruction error of :func:`core.geochemistry.vae_anomaly.train_vae` (Luo, Xiong and
  Zuo 2020).
* ``spatial``: how a sample departs from its ``k`` nearest neighbouring samples: per element,
  the residual against the neighbours' median in units of their spread (MAD, floored at a
  share of the element's survey-wide spread), averaged over elements as a root mean square
  of the enrichments. A sample ordinary for the survey but unlike its own catchment scores
  high; a regional trend does not.
* ``suite``: mean of the sample's :data:`SUITE_SIZE` highest robust z-scores, whichever elements they are (an
  enrichment index that picks its elements per sample).
* ``enrichment``: mean of the positive robust z-scores of the elements (an additive
  pathfinder index: the classic composite of exploration geochemistry, e.g. Garrett and Grunsky
  2001 on weighted sums).
* ``target``: robust z-score of the commodity element(s) of a target (Au for gold, the mean of the
  light rare earths for REE...): the element sought is its own first pathfinder.
* ``fusion``: mean of the per-method percentile ranks (0-1) of the fused methods: with a commodity target
  the commodity element and the pathfinder index (:data:`TARGET_FUSED`), else robust Mahalanobis distance,
  isolation forest and the element-suite index (:data:`DEFAULT_FUSED`, which says why).

A record repeated exactly (same place, same values) is scored once (:func:`distinct_records`).

With a spatial support ``support`` > 0, every score but ``spatial`` is then replaced by the mean of its
percentile ranks over the sample and its ``support`` nearest samples (:data:`DEFAULT_SUPPORT`).
"""

import numpy as np
from scipy.spatial import cKDTree

from . import geochem
from ..engine.errors import OreMapError
from ..engine.feedback import ensure

METHODS = ("fusion", "target", "enrichment", "mcd", "rpca", "iforest", "spatial", "vae", "suite")
"""Every score, the default (fusion) first (``suite`` last: the algorithm's METHOD choice keeps its indices)."""
METHOD_LABELS = {
    "fusion": "Rank-mean fusion of the scores",
    "target": "Commodity element(s) of the target (robust z)",
    "mcd": "Robust Mahalanobis distance (MCD)",
    "rpca": "Robust PCA residual (orthogonal distance)",
    "iforest": "Isolation forest",
    "enrichment": "Enrichment index (mean positive robust z)",
    "spatial": "Spatial context (residual against the k nearest samples)",
    "vae": "Variational autoencoder reconstruction error",
    "suite": "Element-suite index (mean of the sample's 3 highest robust z)",
}
DEFAULT_FUSED = ("mcd", "iforest", "suite")
"""Scores fused without a commodity target: three geometries of "unlike the survey", each blind where another sees.

Why these three (reasons that do not come from any survey's deposits):

* Robust Mahalanobis distance (MCD) is affine equivariant: it sees joint shifts and broken correlations, but
  its distance sums over every whitened direction, so an anomaly carried by a few of many elements is diluted.
* The isolation forest splits one element at a time: it sees extreme values in a few elements and is blind to
  broken correlations; a single extreme element (a nugget) isolates a sample as quickly as a suite does.
* The element-suite index (:func:`score_suite`) is additive: a sample scores high only when several elements
  are enriched together, whichever they are; a mineral system shows as a suite of pathfinders (Au-As-Sb-W-Bi,
  Cu-Mo-Ag, Ni-Cu-Co...), a nugget or a contaminated value as one element. Unlike the enrichment index over
  every element, it does not let a large element family (the 15 rare earths and Y) outvote a small suite.
* Left out: the enrichment index (see above); the robust PCA residual (a part of the MCD distance: its minor
  directions, counted twice); the spatial-context score (it rewards a sample unlike its neighbours, i.e.
  penalises the multi-sample dispersion trains that the spatial support looks for).

Measured (``bench/bench_anomaly_surveys.py``; deposits only evaluate): see the README, "anomaly"."""
SUITE_SIZE = 3
"""Elements in the element-suite index: the smallest number that makes a suite rather than a single spike. The
only value tried (not tuned on any survey)."""
TARGET_FUSED = ("target", "enrichment")
"""Scores fused with a commodity target: the commodity element itself and the pathfinder index."""
DEFAULT_SUPPORT = 8
"""Spatial support: each score is averaged (as percentile ranks) over the sample and its 8 nearest samples.

Why: a stream-sediment anomaly worth following is a dispersion train seen in several neighbouring
samples, while one high gold value alone is often the nugget effect (one particle in the aliquot). 0
scores each sample alone."""
RPCA_VARIANCE = 0.8
MCD_FIT_MAX = 50000
"""Rows the robust covariance (MCD) is fitted on: a survey with more (a regional compilation of 100,000s of samples)
is fitted on a seeded random 50,000 of them, and every sample is then scored against that fit. FastMCD itself
searches subsets of a few hundred samples (Rousseeuw and Van Driessen 1999); its final steps over every sample took
89 s for 200,000 samples of 45 elements, with no way to cancel, against 22 s on 50,000. Measured there: location
within 0.010 robust z of the full fit's (its sampling error), scatter within 1.4 %, scores' Spearman 0.9996, and
97 % of the top 1 % shared (``bench/bench_anomaly_scale.py``)."""
DEFAULT_K = 8
DEFAULT_MIN_PRESENT = 0.5
SPREAD_FLOOR = 0.25
"""A neighbourhood's spread is at least this share of the element's survey-wide robust spread (1 after
scaling): a few near-identical neighbours must not turn noise into anomalies."""


# --------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------
def prepare(values, names, below="half", zeros=geochem.DEFAULT_ZEROS, missing=-9999.0, transform="log10",
            min_present=DEFAULT_MIN_PRESENT, with_present=False):
    """Robust z-scores ``(n, m)`` of raw concentrations, missing elements at 0 (the median), and the rows scored.

    Returns ``(Z, scored, messages)``: ``scored`` is True for samples with at least
    ``min_present`` of their elements measured; their missing elements are imputed at the
    median (under ``transform="clr"`` in ppm before the log-ratios, which need every part);
    rows not scored are 0 in ``Z`` and must be ignored. The multivariate scores need whole rows;
    those that read one element at a time (the target score, the spatial context) take
    ``present`` (``with_present``: a fourth item, True where the value was measured) and leave
    the imputed values out.
    """
    names = [str(n) for n in names]
    # a centred log-ratio needs every part: the missing ones are entered at the median before it, not after
    X, scaler, messages = geochem.preprocess(values, names, below=below, transform=transform, scale="robust",
                                             missing=missing, zeros=zeros,
                                             clr_fill=min_present if transform == "clr" else None)
    present = np.isfinite(X)
    share = present.mean(axis=1) if X.shape[1] else np.zeros(X.shape[0])
    scored = share >= min_present
    if not scored.any():
        raise OreMapError(f"No sample has at least {100 * min_present:.0f} % of the {len(names)} elements measured.",
                          "fields", "Choose elements measured in most samples (or lower the coverage).")
    n_imputed = int((~present[scored]).sum())
    if n_imputed:
        messages.append(f"{n_imputed} missing values of {int(scored.sum())} scored samples entered at the element's "
                        f"median ({100 * n_imputed / max(1, present[scored].size):.1f} % of their values).")
    if (~scored).any():
        messages.append(f"{int((~scored).sum())} samples with fewer than {100 * min_present:.0f} % of the elements "
                        "are not scored.")
    Z = np.where(present, X, 0.0)
    Z[~scored] = 0.0
    if not with_present:
        return Z, scored, messages
    measured = present
    if transform == "clr":   # the log-ratios entered missing parts at the median before: measured is what came in
        measured = present & np.isfinite(geochem.below_detection(values, mode=below, missing=missing, zeros=zeros)[0])
    return Z, scored, messages, measured


def _spread_out(score, scored):
    out = np.full(scored.shape, np.nan)
    out[scored] = score
    return out


# --------------------------------------------------------------------------------------
# Scores (each on the scored rows of Z; NaN elsewhere)
# --------------------------------------------------------------------------------------
def _mcd(Z, seed, fit_max=None):
    """The fitted ``MinCovDet`` of ``Z``; on a seeded random :data:`MCD_FIT_MAX` of its rows when it has more."""
    from sklearn.covariance import MinCovDet

    n, m = Z.shape
    if n <= m + 1:
        raise OreMapError(f"A robust covariance of {m} elements needs more than {m + 1} samples (got {n}).",
                          "fields", "Choose fewer elements.")
    fit_max = MCD_FIT_MAX if fit_max is None else int(fit_max)
    if n > fit_max:
        Z = Z[np.sort(np.random.default_rng(seed).choice(n, fit_max, replace=False))]
    jitter = 1e-9 * np.random.default_rng(seed).standard_normal(Z.shape)  # breaks exact ties of detection limits
    mcd = MinCovDet(random_state=seed).fit(Z + jitter)
    return mcd


def score_mcd(Z, seed=0):
    """Squared robust Mahalanobis distance (MCD location and scatter)."""
    return _mcd(Z, seed).mahalanobis(Z)


def score_rpca(Z, seed=0, variance=RPCA_VARIANCE, mcd=None):
    """Squared orthogonal distance to the robust principal subspace (MCD scatter, ``variance`` explained).

    ``mcd``: a fitted ``MinCovDet`` of ``Z`` to reuse (fitted here otherwise)."""
    mcd = _mcd(Z, seed) if mcd is None else mcd
    evals, evecs = np.linalg.eigh(mcd.covariance_)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
    k = int(np.searchsorted(np.cumsum(evals) / max(evals.sum(), 1e-300), variance) + 1)
    k = min(max(k, 1), Z.shape[1] - 1) if Z.shape[1] > 1 else 1
    centred = Z - mcd.location_
    projected = centred @ evecs[:, :k] @ evecs[:, :k].T
    return np.sum((centred - projected) ** 2, axis=1)


def score_iforest(Z, seed=0, n_estimators=300):
    """Minus the isolation forest's score (higher = easier to isolate)."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(Z)
    return -forest.score_samples(Z)


def score_enrichment(Z):
    """Mean over elements of the positive part of the robust z-scores (an additive pathfinder index)."""
    return np.clip(Z, 0, None).mean(axis=1)


def score_suite(Z, size=SUITE_SIZE):
    """Mean of each row's ``size`` highest values of ``Z`` (robust z-scores): the sample's strongest element suite."""
    size = max(1, min(int(size), Z.shape[1]))
    return np.sort(Z, axis=1)[:, -size:].mean(axis=1)


def score_spatial(Z, x, y, k=DEFAULT_K, floor=SPREAD_FLOOR, chunk=20000, present=None):
    """Root mean square over elements of the positive residual of each sample against its ``k`` nearest samples.

    Neighbours at the sample's own location (field duplicates) are left out, so a sample is judged
    against its surroundings; residual = (value - neighbours' median) / max(1.4826 MAD, ``floor``).
    Samples with ``k`` such neighbours are scored ``chunk`` at a time, the others one by one.
    ``present`` (as ``Z``): False where a value was imputed (:func:`prepare`); such values take no
    part, in the sample or among its neighbours, and the mean is over the elements left (a sample
    not analysed for gold in a low-gold catchment was enriched in gold against its neighbours).
    """
    x = np.asarray(x, float).ravel()
    y = np.asarray(y, float).ravel()
    if present is not None and not np.all(present):
        Z = np.where(present, Z, np.nan)
    located = np.isfinite(x) & np.isfinite(y)  # a sample without a place has no neighbours: NaN
    if not located.all():
        out = np.full(Z.shape[0], np.nan)
        if located.sum() >= 3:
            out[located] = score_spatial(Z[located], x[located], y[located], k=k, floor=floor, chunk=chunk)
        return out
    n = Z.shape[0]
    if n < 3:
        raise OreMapError("The spatial-context score needs at least 3 samples.", "fields")
    pts = np.column_stack([x, y])
    tree = cKDTree(pts)
    query = min(n, k + 1 + 8)  # room for co-located duplicates
    dist, idx = tree.query(pts, k=query)
    dist, idx = dist.reshape(n, -1), idx.reshape(n, -1)
    apart = (dist > 0) & (idx != np.arange(n)[:, None]) & (idx < n)
    first = np.argsort(~apart, axis=1, kind="stable")[:, :k]      # the k nearest neighbours apart, in order
    full = apart.sum(axis=1) >= k
    out = np.empty(n)
    rows, step = np.flatnonzero(full), max(1, int(chunk))
    for start in range(0, rows.size, step):
        part = rows[start:start + step]
        out[part] = _spatial_residual(Z[part], Z[np.take_along_axis(idx[part], first[part], axis=1)], floor)
    for i in np.flatnonzero(~full):
        nb = idx[i][apart[i]][:k]
        if nb.size < 2:
            nb = idx[i][(idx[i] != i) & (idx[i] < n)][:k]
        out[i] = _spatial_residual(Z[i:i + 1], Z[nb][None], floor)[0]
    return out


def _spatial_residual(values, local, floor):
    """:func:`score_spatial` for samples ``values`` (s, m) against their neighbours ``local`` (s, k, m); NaN (not
    measured) values are left out, and a sample with no element left is NaN."""
    import warnings

    gaps = np.isnan(values).any() or np.isnan(local).any()   # the NaN-aware functions only then: they are slower
    median, mean = (np.nanmedian, np.nanmean) if gaps else (np.median, np.mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN slices: NaN, as meant
        med = median(local, axis=1)
        mad = 1.4826 * median(np.abs(local - med[:, None, :]), axis=1)
        r = (values - med) / np.maximum(mad, floor)
        return np.sqrt(mean(np.clip(r, 0, None) ** 2, axis=1))


def score_vae(values, names, scored, options=None, feedback=None):
    """The VAE reconstruction error (:func:`core.geochemistry.vae_anomaly.train_vae`) on the scored samples."""
    from . import vae_anomaly

    opts = {"max_missing": 1.0 - DEFAULT_MIN_PRESENT, "epochs": 100, "seed": 0}
    opts.update(options or {})
    result = vae_anomaly.train_vae(np.asarray(values, float)[scored], names, feedback=feedback, **opts)
    return result.scores


def score_target(Z, names, targets, present=None):
    """Mean robust z-score of the ``targets`` columns (element names, e.g. ``["Au_ppm"]``) present in ``names``,
    over those measured in the sample (``present``, :func:`prepare`): NaN where none is (a sample never analysed
    for gold got the median's score)."""
    idx = [names.index(t) for t in targets if t in names]
    if not idx:
        raise OreMapError("None of the target's commodity elements is among the elements.", "target",
                          "Choose a target whose element the survey measures, or another method.")
    if present is None:
        return Z[:, idx].mean(axis=1)
    measured = np.asarray(present)[:, idx]
    count = measured.sum(axis=1)
    total = np.where(measured, Z[:, idx], 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


#: What NaN stands for in the records compared by :func:`distinct_records` (no measured value comes near it).
_NAN_KEY = -1.2345e300


#: Significant digits a record's place and values are compared to: one measurement converted on the way (an oxide
#: merged into its element, a unit changed) differs from its copy in the last bits only.
KEY_DIGITS = 12


def _rounded(values, digits=KEY_DIGITS):
    """``values`` rounded to ``digits`` significant digits (0, NaN and infinities as they are)."""
    out = np.array(values, dtype=float)
    ok = np.isfinite(out) & (np.abs(out) >= 1e-290)   # below: 10 ** digits overflows; kept as they are
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(out[ok]))))
    out[ok] = np.round(out[ok] * scale) / scale
    return out


def _record_key(Z, x, y):
    """``(n, 2 + columns)``: each row's place and values to :data:`KEY_DIGITS` significant digits, NaN as
    :data:`_NAN_KEY` (a record and its copy converted on the way, a last bit apart, are one record)."""
    key = _rounded(np.column_stack([np.asarray(x, float), np.asarray(y, float), np.asarray(Z, float)]))
    key[np.isnan(key)] = _NAN_KEY
    return key


def canonical_rows(Z, x, y):
    """``(order, position)``: every row in the canonical order of :func:`distinct_records` (repeats kept, side by
    side), and each row's position in it."""
    order = np.lexsort(_record_key(Z, x, y).T[::-1])
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return order, position


def distinct_records(Z, x, y):
    """Rows of ``Z`` (at places ``x``, ``y``) that first hold each distinct record, and each row's record.

    Returns ``(first, copy_of)``: ``first`` the index of the first row of each distinct (x, y, values) record, the
    records in a canonical order (by x, then y, then the values), whatever order the rows come in; ``copy_of[i]``
    the position in ``first`` of row i's record, so ``score[copy_of]`` gives every row its record's score.
    Survey compilations repeat records (two of the GeoChemAD GSWA extracts repeat 38 % and 50 % of their rows);
    scored as they come, a repeated record would count twice in the fits and fill half of its own spatial support.
    Missing values and unplaced samples (NaN) compare as equal: a repeated record with an empty assay is still one
    record (``np.unique`` alone keeps every row holding a NaN).

    The canonical order makes what is fitted on the records independent of the layer's row order: seeded fits (MCD,
    isolation forest, the VAE's batches) and nearest-neighbour ties saw the rows as the file held them, and on
    area1 sorting the same rows otherwise moved the default fusion's AUC between 0.565 and 0.640."""
    key = _record_key(Z, x, y)
    if key.shape[0] == 0:
        return np.zeros(0, int), np.zeros(0, int)
    # np.unique sorts the records lexicographically by (x, y, values): that order is the canonical one
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return first, np.ravel(inverse)


def shared_places_note(x, y, sample_ids=False):
    """A log line when distinct records share a place (the ``x``, ``y`` of distinct records), else None.
    ``sample_ids``: the reports of one sample were combined by their sample id already (the line says so).

    Drill-hole composites share their collar; but a sample reported twice with other rounding (GeoChemAD's area4
    rock chips: 99 samples in two WAMEX reports, Ca 300 against 299.99998, Be 0.20 against 0.21) is no exact repeat
    and counts twice: element selection there chose 29 of 60 elements, 7 with one row per sample."""
    key = _rounded(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
    key = key[np.isfinite(key).all(axis=1)]
    if key.shape[0] < 2:
        return None
    _, counts = np.unique(key, axis=0, return_counts=True)
    shared = counts[counts > 1]
    if not shared.size:
        return None
    if sample_ids:
        return (f"{int(shared.sum())} records share {shared.size} places with a record of other values under the "
                "sample id field (other sample ids at one place, such as drill-hole composites at their collar, or "
                "reports of one id that disagree, warned about above): each counts as a sample.")
    return (f"{int(shared.sum())} records share {shared.size} places with a record of other values (drill-hole "
            "composites at their collar, or one sample reported twice with other rounding): each counts as a sample. "
            "Where they are one sample reported twice, choose the field that holds the sample id as the sample id "
            "field, which combines a sample's reports into one record, or keep one row of each (copies shrink the "
            "error of an AUC and weigh double in the fits).")


def spatial_support(score, x, y, k=DEFAULT_SUPPORT):
    """Mean percentile rank of ``score`` over each sample and its ``k`` nearest scored samples (NaN stays NaN)."""
    ranks = percentile_ranks(score)
    ok = np.isfinite(ranks) & np.isfinite(x) & np.isfinite(y)
    out = np.full(ranks.shape, np.nan)
    if k <= 0 or ok.sum() < 2:
        return ranks if k <= 0 else out
    pts = np.column_stack([np.asarray(x, float)[ok], np.asarray(y, float)[ok]])
    _, idx = cKDTree(pts).query(pts, k=min(int(k) + 1, int(ok.sum())))
    idx = idx.reshape(idx.shape[0], -1)
    # the sample itself is in its support: where more than k samples share its place (drill-hole composites at the
    # collar) the tree may return k others, the same for each of them, leaving every one the same support
    own = np.arange(idx.shape[0])
    missing = ~(idx == own[:, None]).any(axis=1)
    idx[missing, -1] = own[missing]
    out[ok] = ranks[ok][idx].mean(axis=1)
    return out


def percentile_ranks(score):
    """Ranks of the finite values scaled to (0, 1] (ties share their mean rank); NaN stays NaN."""
    from scipy.stats import rankdata

    s = np.asarray(score, float)
    out = np.full(s.shape, np.nan)
    ok = np.isfinite(s)
    if ok.any():
        out[ok] = rankdata(s[ok]) / ok.sum()
    return out


CLASS_PERCENTILES = (85.0, 95.0, 99.0)
"""Percentiles of the main score that bound the anomaly classes (0: background ... 3: top 1 %)."""


def anomaly_classes(score, percentiles=CLASS_PERCENTILES):
    """Class codes of ``score``: 0 up to its first percentile, ``i`` above percentile ``i``; -1 where NaN.

    Samples of one score share a class. The group of the highest score is in the class its top reaches, so the
    highest scores are always in the top class (ties of the spatial support or of repeated records had mean
    ranks just under 99 % and left the top class empty); any other group of equal scores is in the class of its
    middle rank, so that a large group straddling a percentile does not fill the class above it. The survey's
    lowest score is background however many samples share it (enrichment-only scores of 0).
    """
    from scipy.stats import rankdata

    s = np.asarray(score, float)
    out = np.full(s.shape, -1, dtype=np.int16)
    ok = np.isfinite(s)
    if ok.any():
        values = s[ok]
        codes = np.searchsorted(np.percentile(values, percentiles), values, side="right")
        # a group's mean rank, as a percentage: never above an untied value's own code, lower for a tie group
        # straddling a percentile
        middle = rankdata(values) / values.size * 100.0
        by_middle = np.searchsorted(np.asarray(percentiles, float), middle, side="right")
        others = values < values.max()
        codes[others] = np.minimum(codes[others], by_middle[others])
        codes[values <= values.min()] = 0
        out[ok] = codes
    return out


def fuse(scores, methods):
    """Mean percentile rank of ``scores[m]`` over the ``methods`` that scored the sample (NaN where none did: the
    target score of a sample not analysed for the commodity, the spatial context of one without a place)."""
    ranks = np.column_stack([percentile_ranks(scores[m]) for m in methods])
    count = np.isfinite(ranks).sum(axis=1)
    return np.where(count > 0, np.nansum(ranks, axis=1) / np.maximum(count, 1), np.nan)


# --------------------------------------------------------------------------------------
# All of them
# --------------------------------------------------------------------------------------
def score_all(values, names, x, y, methods=METHODS, fused=None, targets=None, pathfinders=None, below="half",
              zeros=geochem.DEFAULT_ZEROS, missing=-9999.0, transform="log10", min_present=DEFAULT_MIN_PRESENT,
              k=DEFAULT_K, support=DEFAULT_SUPPORT, seed=0, vae_options=None, once=True, feedback=None,
              sample_ids=False):
    """Every score in ``methods`` (``fusion`` fuses ``fused``, computed as needed) for raw survey values.

    ``x``, ``y``: sample coordinates in a projected CRS (the spatial score and support).
    ``targets``: the commodity element columns (the ``target`` score); ``pathfinders``: the
    columns of the enrichment index (default all). ``fused`` defaults to :data:`TARGET_FUSED`
    with targets, else :data:`DEFAULT_FUSED`. ``support``: see :func:`spatial_support`.
    ``once``: a record repeated exactly (same place, same prepared values) is scored once and its
    copies get its score (:func:`distinct_records`). ``sample_ids``: the reports of one sample were combined by
    their sample id (:func:`shared_places_note`).
    Returns ``(scores, messages)``: ``scores`` maps a method to an array (n,), NaN for samples
    not scored.
    """
    feedback = ensure(feedback)
    if fused is None:
        fused = TARGET_FUSED if targets else DEFAULT_FUSED
    methods = [m for m in methods if m != "target" or targets]
    if "target" in fused and not targets:
        raise OreMapError("The fusion includes the target score but no target element was given.", "target",
                          "Choose a commodity target.")
    unknown = [m for m in list(methods) + list(fused) if m not in METHODS] + [m for m in fused if m == "fusion"]
    if unknown:
        raise OreMapError(f"Unknown anomaly method(s): {', '.join(unknown)}.", "method",
                          f"Use: {', '.join(METHODS)}.")
    names = [str(n) for n in names]
    values = np.asarray(values, float)
    if values.ndim != 2 or values.shape[1] != len(names) or len(names) < 2:
        raise OreMapError(f"At least two elements are needed (got {len(names)}).", "fields",
                          "Choose two or more element fields.")
    # one column order whatever order the table or the user lists them in (geochem.canonical_columns)
    order = geochem.canonical_columns(names)
    values, names = values[:, order], [names[j] for j in order]
    Z, scored, messages, present = prepare(values, names, below=below, zeros=zeros, missing=missing,
                                           transform=transform, min_present=min_present, with_present=True)
    needed = [m for m in METHODS if m != "fusion" and (m in methods or ("fusion" in methods and m in fused))]
    xa, ya = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    rows = np.flatnonzero(scored)
    if once:
        first, copy_of = distinct_records(Z[rows], xa[rows], ya[rows])
        if first.size < rows.size:
            messages.append(f"{rows.size - first.size} of {rows.size} scored samples repeat another record exactly "
                            "(same place, same values to 12 significant digits: a compilation's repeated row): each "
                            "record is scored once and its copies get its score.")
    else:
        first, copy_of = canonical_rows(Z[rows], xa[rows], ya[rows])
    unique = rows[first]   # the distinct records, in their canonical order (distinct_records)
    note = shared_places_note(xa[unique], ya[unique], sample_ids) if once else None
    if note:
        messages.append(note)
    Zs, Ps = Z[unique], present[unique]
    xs, ys = xa[unique], ya[unique]
    out, distinct, fitted = {}, {}, None
    for i, method in enumerate(needed):
        feedback.check()
        feedback.info(f"Scoring: {METHOD_LABELS[method]}.")
        if method in ("mcd", "rpca") and fitted is None:
            fitted = _mcd(Zs, seed)
            if Zs.shape[0] > MCD_FIT_MAX:
                messages.append(f"Robust covariance (MCD): fitted on a random {MCD_FIT_MAX:,} of the {Zs.shape[0]:,} "
                                "distinct records (seeded), then every record scored against it.")
        if method == "mcd":
            s = fitted.mahalanobis(Zs)
        elif method == "rpca":
            s = score_rpca(Zs, seed, mcd=fitted)
        elif method == "iforest":
            s = score_iforest(Zs, seed)
        elif method == "enrichment":
            cols = [names.index(p) for p in (pathfinders or names) if p in names] or list(range(len(names)))
            s = score_enrichment(Zs[:, cols])
        elif method == "suite":
            s = score_suite(Zs)
        elif method == "target":
            s = score_target(Zs, names, list(targets), Ps)
            unanalysed = int(np.isnan(s).sum())
            if unanalysed:
                messages.append(f"Target score: {unanalysed} of {s.size} records have no {' or '.join(targets)} "
                                "value and get none (the fusion ranks them on its other scores).")
        elif method == "spatial":
            s = score_spatial(Zs, xs, ys, k=k, present=Ps)
        else:
            s = score_vae(values, names, unique, dict({"transform": transform}, **(vae_options or {}), below=below,
                                                      zeros=zeros, missing=missing),
                          feedback=feedback.scaled(100 * i / len(needed), 100 * (i + 1) / len(needed)))
        if support and method != "spatial":
            s = spatial_support(s, xs, ys, support)
        distinct[method] = s
        out[method] = _spread_out(s[copy_of], scored)
        feedback.progress(100 * (i + 1) / len(needed))
    if support:
        messages.append(f"Spatial support: every score but the spatial context is the mean percentile rank over the "
                        f"sample and its {support} nearest samples.")
    if "fusion" in methods:
        out["fusion"] = _spread_out(fuse(distinct, list(fused))[copy_of], scored)  # ranks among distinct records
        messages.append("Fusion: mean percentile rank of " + ", ".join(fused) + ".")
    return {m: out[m] for m in METHODS if m in methods or m in out}, messages
