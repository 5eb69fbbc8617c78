"""Is there a mine in this Sentinel-2 patch? A patch classifier with honest cross-validation.

Two classifiers:

* ``"hgb"`` (default, fast): a HistGradientBoostingClassifier on patch statistics:
  for each band (the user's choice, RGB to all 12) and each spectral index those bands allow
  (:data:`core.sentinel2.sentinel2.INDICES`: 10 with the 12 bands, the iron oxide ratio with RGB),
  the mean, standard deviation and 10th/50th/90th percentiles over the patch's
  valid pixels, plus the fractions of pixels passing index thresholds
  (:data:`THRESHOLD_RULES`: bare soil BSI > 0.1, sparse vegetation NDVI < 0.2,
  both, open water MNDWI > 0, iron-oxide and clay ratios);
* ``"cnn"``: a small convolutional network trained from scratch on the bands
  plus the indices as channels, with random flips and rotations, deterministic
  for a seed.

Evaluation is nested cross-validation. Outer folds are stratified by label and,
when the patches' positions are known, grouped by spatial block (patch centres
binned into ``block_size`` squares, per CRS), so neighbouring patches never sit
on both sides of a split. In each outer fold the decision threshold is tuned
(maximum F1) on out-of-fold predictions of an inner cross-validation of the
training folds only; the model fitted on all training folds then predicts the
held-out fold with that threshold. The reported figures (F1, precision, recall,
accuracy, confusion matrix) pool those held-out predictions: the held-out fold
never influences its own threshold. The final model is fitted on every patch;
its threshold maximises F1 over the outer out-of-fold predictions.

Models are saved in the OreMap ONNX format (:mod:`core.engine.model_format`):

* hgb: graph input ``features`` ``(n, n_features)`` float32 (computed by
  :func:`patch_features`), output ``probabilities`` ``(n, 2)``;
* cnn: graph input ``patches`` ``(n, B, size, size)`` reflectance of the model's bands (indices,
  standardisation and NaN handling inside the graph), output ``probabilities``.

Metadata: ``task = "mine_patch_classification"``, the S2 band list, the feature
definition, the decision threshold and the patch size (under ``extra["mine_classifier"]``).
"""

import functools
import hashlib
import math

import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .sentinel2 import S2_BANDS, index_version_of
from .patch_features import feature_definition, feature_names, patch_features
from .patch_models import CLASSIFIERS, INPUT_FEATURES, INPUT_PATCHES, OUTPUT_NAME, make_model_factory
from .chip_sets import overlap_pairs, share_touching
from ..engine.model_format import build_date, build_time

TASK = "mine_patch_classification"
CLASSES = [{"name": "No mine", "color": "#1a9641"}, {"name": "Mine", "color": "#d7191c"}]

THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


# ---------------------------------------------------------------------------
# Folds, thresholds, metrics
# ---------------------------------------------------------------------------


#: Metres per degree of latitude (WGS 84, mid-latitudes); a degree of longitude is this times cos(latitude).
METRES_PER_DEGREE = 111_000.0


@functools.lru_cache(maxsize=64)
def _geographic(key):
    import pyproj

    try:
        return pyproj.CRS.from_user_input(str(key)).is_geographic
    except pyproj.exceptions.CRSError:
        return False


def metric_centres(centres, crs_keys):
    """``(centres, degree_scale)``: patch centres in metres for blocking, those in a geographic CRS converted at
    their latitude (a block of 1200 'units' was 1200 degrees: one block, no spatial cross-validation);
    ``degree_scale`` the metres per degree of longitude used (None when no CRS is geographic)."""
    centres = np.array(centres, dtype=np.float64)
    geographic = np.array([_geographic(k) for k in crs_keys], dtype=bool)
    if not geographic.any():
        return centres, None
    lat = float(np.mean(centres[geographic, 1]))
    scale = METRES_PER_DEGREE * math.cos(math.radians(lat))
    centres[geographic, 0] *= scale
    centres[geographic, 1] *= METRES_PER_DEGREE
    return centres, scale


def spatial_groups(centres, crs_keys, block_size):
    """Group id of each patch: its centre's ``block_size`` square, separately per CRS (metres for a geographic
    CRS, :func:`metric_centres`)."""
    centres, _ = metric_centres(centres, crs_keys)
    keys = [(str(k), int(math.floor(x / block_size)), int(math.floor(y / block_size)))
            for k, (x, y) in zip(crs_keys, centres)]
    lookup = {key: i for i, key in enumerate(sorted(set(keys)))}
    return np.array([lookup[k] for k in keys], dtype=np.int64)


def _groups_too_few(y, groups):
    """Whether the groups (chips, or chips sharing ground) hold the mines or the mine-free patches in fewer than two:
    every fold then holds all of that class or none, and grouped folds measure nothing."""
    y, groups = np.asarray(y), np.asarray(groups)
    return min(np.unique(groups[y == 1]).size, np.unique(groups[y == 0]).size) < 2


def _chained(ps):
    """Whether patches cut from chips need spatial blocks: the chips' groups hold the mines or the mine-free patches in
    fewer than two (:func:`_groups_too_few`) and a group holding that class joins several chips that share ground
    (overlapping in chains), and the patches' positions are known. Chips that share no ground keep their groups."""
    if ps.groups is None or ps.centres is None or ps.chips is None or not ps.pixel_size or \
            not _groups_too_few(ps.labels, ps.groups):
        return False
    y, groups, chips = np.asarray(ps.labels), np.asarray(ps.groups), np.asarray(ps.chips)
    rarer = 1 if np.unique(groups[y == 1]).size <= np.unique(groups[y == 0]).size else 0
    return any(np.unique(chips[groups == g]).size > 1 for g in np.unique(groups[y == rarer]))


def _buffered(train, test, pairs, y):
    """``train`` less the patches sharing ground (``pairs``) with a ``test`` patch, unless that leaves a class
    without training patches (then ``train`` as it is and False)."""
    if not len(pairs):
        return train, True
    held = np.zeros(y.size, dtype=bool)
    held[test] = True
    near = np.zeros(y.size, dtype=bool)
    near[pairs[held[pairs[:, 0]], 1]] = True
    near[pairs[held[pairs[:, 1]], 0]] = True
    kept = train[~near[train]]
    if np.unique(y[kept]).size < 2:
        return train, False
    return kept, True


def _cap_folds_by_groups(y, groups, k, feedback):
    """Folds ``k`` capped at the number of groups (chips, spatial blocks) holding the rarer class's patches: a
    class in fewer groups than folds leaves folds without it. Below 2 such groups every fold holds all of that class
    or none, so the held-out figures cannot be measured: ``feedback`` is warned and ``k`` is left as it is."""
    with_mine, without = np.unique(groups[y == 1]).size, np.unique(groups[y == 0]).size
    n_min = min(with_mine, without)
    if n_min == 0:   # a class without patches: refused below
        return k
    what = "mines" if with_mine <= without else "mine-free patches"
    if n_min < 2:
        feedback.warning(f"The {what} come from {n_min} chip{'s' if n_min != 1 else ''} or spatial "
                         f"block{'s' if n_min != 1 else ''}: held-out figures cannot be measured (a fold holds "
                         "them all or none of them). Give chips or areas with mines in more places.")
        return k
    if n_min < k:
        feedback.warning(f"The {what} come from {n_min} chips or spatial blocks only: {n_min} folds instead of {k}.")
        return n_min
    return k


def make_folds(y, groups, n_folds, seed, feedback=None):
    """``[(train_idx, test_idx), ...]``: stratified by label, grouped when ``groups`` is given.

    Folds are reduced (with a warning) when there are fewer groups or fewer patches
    of a class than folds. Raises when fewer than 2 folds are possible. With ``groups``, a class spreads over
    no more folds than the groups holding it: folds are capped at the number of groups holding the rarer one,
    and below 2 (the mines of one chip) the held-out figures cannot be measured, which is said (F1 0 was
    reported without a word).
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    feedback = ensure(feedback)
    y = np.asarray(y)
    n_min = int(min((y == 0).sum(), (y == 1).sum()))
    k = int(n_folds)
    if groups is not None:
        n_groups = np.unique(groups).size
        if n_groups < 2:
            feedback.warning("All patches fall in one spatial block: cross-validation is not spatially grouped.")
            groups = None
        elif n_groups < k:
            feedback.warning(f"Only {n_groups} spatial blocks: {n_groups} folds instead of {k}.")
            k = n_groups
    if groups is not None:
        k = _cap_folds_by_groups(y, np.asarray(groups), k, feedback)
    if n_min < k:
        if n_min < 2:
            raise OreMapError(f"Cross-validation needs at least 2 patches of each class (found {n_min} of the "
                              "rarer class).", "labels", "Give more labelled patches.")
        feedback.warning(f"Only {n_min} patches of the rarer class: {n_min} folds instead of {k}.")
        k = n_min
    if k < 2:
        raise OreMapError("Cross-validation needs at least 2 folds.", "folds")
    if groups is not None:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed))
        splits = splitter.split(np.zeros(y.size), y, groups)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(seed))
        splits = splitter.split(np.zeros(y.size), y)
    return [(np.sort(tr), np.sort(te)) for tr, te in splits]


def binary_metrics(y, pred):
    """F1, precision, recall, accuracy and the confusion matrix ``[[TN, FP], [FN, TP]]``."""
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    tp = int(((y == 1) & (pred == 1)).sum())
    fp = int(((y == 0) & (pred == 1)).sum())
    fn = int(((y == 1) & (pred == 0)).sum())
    tn = int(((y == 0) & (pred == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": (tp + tn) / max(y.size, 1),
            "confusion_matrix": [[tn, fp], [fn, tp]], "n": int(y.size)}


def threshold_curve(y, p, thresholds=None):
    """F1, precision and recall of ``p >= t`` for each threshold ``t``."""
    thresholds = THRESHOLD_GRID if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    f1, precision, recall = [], [], []
    for t in thresholds:
        m = binary_metrics(y, p >= t)
        f1.append(m["f1"])
        precision.append(m["precision"] if (p >= t).any() else np.nan)
        recall.append(m["recall"])
    return {"thresholds": thresholds, "f1": np.array(f1), "precision": np.array(precision), "recall": np.array(recall)}


def tune_threshold(y, p):
    """The threshold of :data:`THRESHOLD_GRID` maximising F1 of ``p >= t`` (the middle one of ties)."""
    curve = threshold_curve(y, p)
    f1 = curve["f1"]
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(curve["thresholds"][best[len(best) // 2]])


# ---------------------------------------------------------------------------
# Nested cross-validation
# ---------------------------------------------------------------------------


def _oof(data, y, groups, idx, make_model, n_folds, seed, feedback, overlaps=None):
    """Out-of-fold probabilities of the samples ``idx`` by an inner cross-validation on them alone; with
    ``overlaps``, each inner fold's training leaves out the samples sharing ground with its held-out ones, as the
    outer folds do (:func:`_buffered`; kept when leaving them out would empty a class)."""
    folds = make_folds(y[idx], None if groups is None else groups[idx], n_folds, seed, feedback=None)
    p = np.full(idx.size, np.nan)
    warned = False
    for tr, te in folds:
        feedback.check()
        train, buffered = (idx[tr], True) if overlaps is None else _buffered(idx[tr], idx[te], overlaps, y)
        if not buffered and not warned:
            warned = True
            feedback.warning("An inner fold tuning a threshold trains on patches overlapping those it scores: leaving "
                             "them out would leave a class without training patches. Its threshold may be optimistic.")
        model = make_model()
        model.fit(data[train], y[train])
        p[te] = model.predict_proba(data[idx[te]])
    return p


def cross_validate(data, y, groups, make_model, n_folds=5, inner_folds=3, seed=0, feedback=None, overlaps=None):
    """Nested cross-validation: a threshold per outer fold from the training folds only.

    Parameters
    ----------
    data : ndarray
        Model input, indexed by sample (features, or patches for the CNN).
    y : array of 0/1
    groups : array of int or None
        Spatial block of each sample (grouped folds), or None.
    make_model : callable
        Returns a new model with ``fit(data, y)`` and ``predict_proba(data) -> p``.
    overlaps : ndarray of shape (n, 2), optional
        Pairs of samples sharing ground (patches of overlapping chips): each fold leaves the training samples that
        share ground with one of its held-out samples out of its training (``n_buffered`` per fold), and so does
        each inner fold that tunes its threshold.

    Returns
    -------
    dict
        ``proba`` (held-out probability of every sample), ``fold`` (its outer fold),
        ``pred`` (0/1 at its fold's threshold), ``folds`` (per fold: ``train``,
        ``test``, ``threshold``, metrics), ``metrics`` (pooled held-out metrics),
        ``fold_f1_mean``/``fold_f1_sd``, ``curve`` (pooled threshold curve) and
        ``oof_threshold`` (F1-best threshold over all held-out probabilities: the
        final model's threshold, not used for any reported figure).
    """
    feedback = ensure(feedback)
    y = np.asarray(y).astype(np.int64)
    outer = make_folds(y, groups, n_folds, seed, feedback)
    proba = np.full(y.size, np.nan)
    pred = np.zeros(y.size, dtype=np.int64)
    fold_of = np.full(y.size, -1, dtype=np.int64)
    details = []
    for f, (train, test) in enumerate(outer):
        feedback.check()
        n_train = train.size
        if overlaps is not None:
            train, buffered = _buffered(train, test, overlaps, y)
            if not buffered:
                feedback.warning(f"Fold {f + 1}: leaving out the training patches that overlap its held-out ones "
                                 "would leave a class without training patches; this fold trains on them, and its "
                                 "figures are optimistic.")
        try:
            inner_p = _oof(data, y, groups, train, make_model, inner_folds, seed + 1 + f, feedback, overlaps)
            threshold = tune_threshold(y[train], inner_p)
            how = "inner cross-validation of the training folds"
        except OreMapError:
            threshold, how = 0.5, "default (training folds too small for an inner cross-validation)"
        model = make_model()
        model.fit(data[train], y[train])
        p = model.predict_proba(data[test])
        proba[test] = p
        pred[test] = (p >= threshold).astype(np.int64)
        fold_of[test] = f
        m = binary_metrics(y[test], pred[test])
        if not (y[test].any() or pred[test].any()):
            m["f1"] = float("nan")   # no mine and none found: F1 is 0 / 0, not 0 (it pulled the fold mean down)
        details.append(dict(fold=f + 1, train=train, test=test, threshold=threshold, tuned_on=how,
                            n_test=int(test.size), n_test_positive=int(y[test].sum()),
                            n_buffered=int(n_train - train.size), **m))
        buffer = f" ({n_train - train.size} training patches overlapping them left out)" if n_train > train.size else ""
        feedback.info(f"Fold {f + 1}/{len(outer)}: {test.size} patches held out ({int(y[test].sum())} mines){buffer}, "
                      f"threshold {threshold:.2f} from the training folds: "
                      + (f"F1 {m['f1']:.3f}, precision {m['precision']:.3f}, recall {m['recall']:.3f}."
                         if np.isfinite(m["f1"]) else "no mine held out and none found (no F1)."))
        feedback.progress(100.0 * (f + 1) / len(outer))
    f1s = np.array([d["f1"] for d in details])
    f1s = f1s[np.isfinite(f1s)]   # folds without a mine and without a mine found have no F1
    return {"proba": proba, "pred": pred, "fold": fold_of, "folds": details, "metrics": binary_metrics(y, pred),
            "fold_f1_mean": float(f1s.mean()) if f1s.size else float("nan"),
            "fold_f1_sd": float(f1s.std(ddof=1)) if f1s.size > 1 else 0.0, "n_folds_scored": int(f1s.size),
            "curve": threshold_curve(y, proba), "oof_threshold": tune_threshold(y, proba),
            "n_folds": len(outer), "grouped": groups is not None and np.unique(groups).size >= 2}


# ---------------------------------------------------------------------------
# Training, saving, prediction
# ---------------------------------------------------------------------------


def _data_hash(data, y):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(data, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def train_mine_classifier(patch_set, classifier="hgb", n_folds=5, inner_folds=3, seed=0, block_size=None,
                          model_path=None, report_path=None, cnn_options=None, feedback=None):
    """Cross-validate (nested) and train a patch classifier; save the model and the report.

    Parameters
    ----------
    patch_set : PatchSet
        From :func:`load_patch_folder` or :func:`patches_from_raster` (with
        ``keep_patches=True`` for the CNN).
    classifier : {"hgb", "cnn"}
    n_folds, inner_folds : int
        Outer and inner cross-validation folds.
    block_size : float, optional
        Side of the spatial blocks grouping the folds, in CRS units; 5 patch widths
        by default. 0 = no spatial grouping.

    Returns
    -------
    dict
        ``cv`` (see :func:`cross_validate`), ``threshold`` (of the saved model),
        ``metrics`` (pooled held-out F1, precision, recall, accuracy, confusion
        matrix), ``model_path``, ``report_path``, ``info`` (ModelInfo) and ``model``.
    """
    feedback = ensure(feedback)
    ps = patch_set
    if ps.n_positive < 2 or ps.n_negative < 2:
        raise OreMapError(f"Training needs at least 2 patches with and 2 without a mine (found {ps.n_positive} "
                          f"and {ps.n_negative}).", "labels",
                          "Label more patches (with a mine and without), or use a scene with more of both.")
    make_model = make_model_factory(classifier, seed, cnn_options, feedback, bands=ps.bands)
    probe = make_model()
    if probe.needs_patches:
        if ps.patches is None:
            raise OreMapError("The CNN needs the patches themselves.", "classifier",
                              "Load the patches with keep_patches=True.")
        data = ps.patches
    else:
        data = ps.features
    groups, block, overlaps = None, None, None
    chained = _chained(ps)
    if ps.groups is not None and not chained and (block_size is None or block_size > 0):
        groups = np.asarray(ps.groups, dtype=np.int64)
        feedback.info(f"Cross-validation grouped by chip: {np.unique(groups).size} chips or groups of chips sharing "
                      "ground, a chip's patches never on both sides of a split.")
    elif ps.centres is not None and (block_size is None or block_size > 0):
        _, degree = metric_centres(ps.centres, ps.crs_keys)
        width = (ps.patch_shape[1] if ps.patch_shape else 120) * (ps.pixel_size or 10.0) * (degree or 1.0)
        block = float(block_size) if block_size else 5.0 * width
        groups = spatial_groups(ps.centres, ps.crs_keys, block)
        feedback.info(f"Spatial cross-validation: patch centres in {np.unique(groups).size} blocks of "
                      f"{block:g} x {block:g} " + ("m (centres in degrees taken to metres at their latitude)."
                                                   if degree else "(CRS units, metres for a UTM raster)."))
        if chained:
            # chip patches are in one frame (patch_sets: the first chip's CRS): squares of the patch's side
            # (a patch's side per axis: pixels need not be square in the frame's CRS)
            rows, cols = ps.patch_shape if ps.patch_shape else (120, 120)
            px, py = ps.pixel_size_xy if ps.pixel_size_xy else (ps.pixel_size, ps.pixel_size)
            overlaps = overlap_pairs(np.asarray(ps.centres) / np.array([cols * px, rows * py]))
            share = share_touching(overlaps, groups)
            feedback.warning(
                f"The chips overlap in chains ({np.unique(ps.groups).size} group(s) of chips sharing ground): held "
                "out by chip, the mines or the mine-free patches would lie in fewer than two groups and nothing "
                "could be measured. Instead of those groups, the folds are spatial blocks of the patch centres; "
                f"{100 * share:.1f} % of the patches overlap a patch of another block, and each fold leaves the "
                "training patches that overlap one of its held-out patches out of its training (a buffer), so no "
                "held-out patch shares ground with one trained on. Chips cut side by side (a stride of the chip "
                "size) share no ground.")
    else:
        feedback.info("Patch positions unknown (or grouping off): folds are stratified but not spatially grouped.")
    cv = cross_validate(data, ps.labels, groups, make_model, n_folds, inner_folds, seed, feedback.scaled(0, 80),
                        overlaps=overlaps if chained and groups is not None else None)
    m = cv["metrics"]
    feedback.info(f"Held-out (nested) F1 {m['f1']:.3f}, precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                  f"accuracy {m['accuracy']:.3f} over {cv['n_folds']} folds.")
    final = make_model()
    final.fit(data, ps.labels)
    threshold = cv["oof_threshold"]
    feedback.progress(90)
    result = {"cv": cv, "threshold": threshold, "metrics": m, "model": final, "block_size": block,
              "classifier": classifier, "model_path": model_path, "report_path": report_path}
    info = model_info(ps, final, classifier, threshold, cv, seed, n_folds, inner_folds, block)
    result["info"] = info
    if model_path:
        from ..engine.model_format import write_model

        onnx_model = final.onnx_model(ps.features.shape[1]) if classifier == "hgb" else \
            final.onnx_model(ps.patches.shape[1:3])
        write_model(onnx_model, info, model_path)
        feedback.info(f"Model saved: {model_path} (threshold {threshold:.2f}).")
    if report_path:
        from ..engine.report import write_report

        write_report(report_path, training_report(result, ps), parameter="report")
    feedback.progress(100)
    return result


def model_info(ps, model, classifier, threshold, cv, seed, n_folds, inner_folds, block):
    from ..engine.model_format import ModelInfo

    if classifier == "hgb":
        n_input, input_spec, names = ps.features.shape[1], {"name": INPUT_FEATURES}, feature_names(ps.bands)
    else:
        n_input, names = len(ps.bands), list(ps.bands)
        input_spec = {"name": INPUT_PATCHES, "window": int(ps.patches.shape[1])}
    metrics = {k: v for k, v in cv["metrics"].items()}
    metrics.update(fold_f1_mean=cv["fold_f1_mean"], fold_f1_sd=cv["fold_f1_sd"], n_folds=cv["n_folds"],
                   fold_thresholds=[d["threshold"] for d in cv["folds"]], grouped=cv["grouped"])
    patch_shape = list(ps.patch_shape) if ps.patch_shape else None
    data = ps.features if classifier == "hgb" else ps.patches
    return ModelInfo(
        task=TASK, classes=[dict(c) for c in CLASSES], input=dict(input_spec, n_bands=int(n_input)),
        output={"name": OUTPUT_NAME, "kind": "probabilities"},
        wavelengths=None, band_names=names,
        preprocessing={"method": "s2_patch_features" if classifier == "hgb" else "s2_reflectance_patch",
                       "reflectance": "DN * scale + offset (core.sentinel2.sentinel2.open_sentinel2)"},
        training={"date": build_date(),
                  "data_hash": _data_hash(data, ps.labels), "n_samples": ps.n,
                  "metrics": metrics,
                  "parameters": {"classifier": classifier, "seed": int(seed), "n_folds": int(n_folds),
                                 "inner_folds": int(inner_folds), "block_size": block, "model": model.options(),
                                 "n_positive": ps.n_positive, "n_negative": ps.n_negative}},
        description=f"Sentinel-2 mine patch classifier ({classifier})",
        extra={"mine_classifier": {"classifier": classifier, "bands": list(ps.bands), "threshold": float(threshold),
                                   "patch_size": patch_shape, "features": feature_definition(ps.bands),
                                   "positive_class": "Mine"}, **_spatial(ps)})


def _spatial(ps):
    """``{"spatial": ...}``: the ground size of the training patches' pixels, as a segmentation model records it
    (detection warns when a raster's pixels differ by over 10 %); ``{}`` for patches without a position."""
    ground = getattr(ps, "pixel_size_m", None)
    if not ground:
        return {}
    size = float(ps.pixel_size) if ps.pixel_size else None
    return {"spatial": {"pixel_size": [size, size] if size else None, "pixel_size_m": [float(v) for v in ground],
                        "epsg": getattr(ps, "epsg", None)}}


def predict_proba(model_path, patches):
    """Mine probability of reflectance patches ``(n, rows, cols, B)`` of the model's bands (onnxruntime).

    Returns ``(p, threshold)``.
    """
    from ..engine.model_format import OnnxModel

    model = OnnxModel(model_path)
    from ..engine.model_task import check_task

    check_task(model.info, TASK, model_path)
    meta = model.info.extra.get("mine_classifier", {})
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim == 3:
        patches = patches[None]
    if meta.get("classifier") == "cnn":
        p = model.run(np.moveaxis(patches, -1, 1))[:, 1]
    else:
        p = model.run(patch_features(patches, bands=meta.get("bands") or S2_BANDS,
                                     index_version=index_version_of(meta.get("features"))))[:, 1]
    return p.astype(np.float64), float(meta.get("threshold", 0.5))


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def training_report(result, ps):
    from ..engine import report

    cv, m = result["cv"], result["metrics"]
    summary_rows = [
        ["Classifier", dict(CLASSIFIERS)[result["classifier"]]],
        ["Patches", f"{ps.n} ({ps.n_positive} with a mine, {ps.n_negative} without)"],
        ["Cross-validation", f"{cv['n_folds']} outer folds, stratified"
         + ((f", spatially grouped (blocks of {result['block_size']:g} CRS units)" if result["block_size"] else
             ", grouped by chip") if cv["grouped"] else ", not spatially grouped (positions unknown, or every patch in "
                                                     "one group: the held-out figures are optimistic)")],
        ["Threshold tuning", "per outer fold: maximum F1 on out-of-fold predictions of an inner cross-validation "
                             "of the training folds only (nested)"],
        ["F1 (held out)", m["f1"]], ["Precision", m["precision"]], ["Recall", m["recall"]],
        ["Accuracy", m["accuracy"]],
        ["F1 per fold", f"{cv['fold_f1_mean']:.3f} +/- {cv['fold_f1_sd']:.3f}"
         + (f" over the {cv['n_folds_scored']} folds with a mine held out or found"
            if cv.get("n_folds_scored", cv["n_folds"]) < cv["n_folds"] else "")],
        ["Saved model's threshold", result["threshold"]],
    ]
    fold_rows = [[d["fold"], d["n_test"], d["n_test_positive"], d["threshold"], d["f1"], d["precision"],
                  d["recall"], d["accuracy"]] for d in cv["folds"]]
    curve = cv["curve"]
    chart = report.svg_line_chart(
        [("F1", curve["thresholds"], curve["f1"], None), ("Precision", curve["thresholds"], curve["precision"], None),
         ("Recall", curve["thresholds"], curve["recall"], None)],
        "Held-out F1, precision and recall against the threshold", "Threshold on P(mine)", "Score")
    matrix = report.svg_confusion_matrix(np.asarray(m["confusion_matrix"]), ["No mine", "Mine"],
                                         "Confusion matrix (held-out folds, nested thresholds)")
    sections = [
        ("Summary", report.html_table(["", "Value"], summary_rows)),
        ("Confusion matrix", matrix + report.paragraph(
            "Rows: reference; columns: prediction. Every patch is predicted by a model that did not see its "
            "fold, at the threshold tuned on the other folds.", "note")),
        ("Threshold curve", chart + report.paragraph(
            "Pooled held-out probabilities; the thresholds actually applied were tuned without the held-out fold "
            "(see the folds below).", "note")),
        ("Folds", report.html_table(["Fold", "Patches", "Mines", "Threshold", "F1", "Precision", "Recall",
                                     "Accuracy"], fold_rows)),
    ]
    if ps.notes:
        sections.append(("Input", report.paragraph(" ".join(ps.notes))))
    return report.html_report("Mine patch classifier: training report", sections,
                              subtitle=f"{ps.source} - {build_time().date().isoformat()}")
