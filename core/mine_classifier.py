"""Is there a mine in this Sentinel-2 patch? A patch classifier with honest cross-validation.

Two classifiers:

* ``"hgb"`` (default, fast): a HistGradientBoostingClassifier on patch statistics:
  for each of the 12 bands and 10 spectral indices (:data:`core.sentinel2.INDICES`),
  the mean, standard deviation and 10th/50th/90th percentiles over the patch's
  valid pixels, plus the fractions of pixels passing index thresholds
  (:data:`THRESHOLD_RULES`: bare soil BSI > 0.1, sparse vegetation NDVI < 0.2,
  both, open water MNDWI > 0, iron-oxide and clay ratios);
* ``"cnn"``: a small convolutional network trained from scratch on the 12 bands
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

Models are saved in the OreMap ONNX format (:mod:`core.model_format`):

* hgb: graph input ``features`` ``(n, n_features)`` float32 (computed by
  :func:`patch_features`), output ``probabilities`` ``(n, 2)``;
* cnn: graph input ``patches`` ``(n, 12, size, size)`` reflectance (indices,
  standardisation and NaN handling inside the graph), output ``probabilities``.

Metadata: ``task = "mine_patch_classification"``, the S2 band list, the feature
definition, the decision threshold and the patch size (under ``extra["mine_classifier"]``).
"""

import csv
import datetime
import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import compute
from .errors import OreMapError
from .feedback import ensure
from .sentinel2 import INDEX_NAMES, S2_BANDS, compute_indices, open_sentinel2

TASK = "mine_patch_classification"
CLASSES = [{"name": "No mine", "color": "#1a9641"}, {"name": "Mine", "color": "#d7191c"}]
CLASSIFIERS = [("hgb", "Gradient boosting on patch statistics (fast)"),
               ("cnn", "Small CNN trained from scratch (bands and indices as channels)")]
FEATURE_VERSION = 1
STATS = ("mean", "sd", "p2", "p10", "p50", "p90", "p98")
CHANNELS = S2_BANDS + INDEX_NAMES

#: (name, index, comparison, value): fraction of valid pixels passing the rule.
THRESHOLD_RULES = [
    ("frac_BSI_gt_0.1", "BSI", ">", 0.1),
    ("frac_NDVI_lt_0.2", "NDVI", "<", 0.2),
    ("frac_bare", "BARE", ">", 0.0),  # BSI > 0.1 and NDVI < 0.2
    ("frac_MNDWI_gt_0", "MNDWI", ">", 0.0),  # open water
    ("frac_NBR_lt_0", "NBR", "<", 0.0),  # SWIR2 above NIR: bare rock, burnt or disturbed ground
    ("frac_bare_IRON_OXIDE_gt_1.5", "BARE_IRON_OXIDE", ">", 1.5),  # bare and red (ferric iron)
    ("frac_FERROUS_IRON_gt_1", "FERROUS_IRON", ">", 1.0),
    ("frac_bare_CLAY_gt_1.5", "BARE_CLAY", ">", 1.5),  # bare with a 2.2 um (Al-OH) absorption
]
THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
INPUT_FEATURES = "features"
INPUT_PATCHES = "patches"
OUTPUT_NAME = "probabilities"
OPSET = 17


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


def feature_names():
    """Names of the patch features, in column order."""
    return [f"{c}_{s}" for c in CHANNELS for s in STATS] + [rule[0] for rule in THRESHOLD_RULES]


def feature_definition():
    """The feature definition stored in a model (enough to recompute the features)."""
    return {"version": FEATURE_VERSION, "bands": list(S2_BANDS), "indices": list(INDEX_NAMES),
            "stats": list(STATS), "percentiles": "linear interpolation over valid pixels",
            "threshold_rules": [list(r) for r in THRESHOLD_RULES], "input": "surface reflectance (0-1)",
            "names": feature_names()}


def _percentiles(values, counts, qs):
    """Linear-interpolation percentiles of each row of ``values`` (NaN = not valid; ``counts`` valid values a row).

    Returns one float64 array per percentile in ``qs``, NaN for rows without a valid value: the
    same numbers as sorting each row (NaN last) and interpolating between the ranks
    ``q / 100 * (count - 1)``. Rows that are all valid (the usual case) only need their few ranks
    in place, so they are partitioned (O(n)) rather than sorted; the others are sorted. ``values``
    may be float32: the ranks and the interpolation are computed in float64.
    """
    m, n = values.shape
    counts = np.asarray(counts)
    out = [np.full(m, np.nan) for _ in qs]
    full = counts == n
    if full.any() and n:
        pos = [(q / 100.0) * (n - 1) for q in qs]
        lo = [int(np.floor(p)) for p in pos]
        hi = [min(k + 1, n - 1) for k in lo]
        part = np.partition(values[full], sorted(set(lo + hi)), axis=1)
        for i, p in enumerate(pos):
            a = part[:, lo[i]].astype(np.float64)
            b = part[:, hi[i]].astype(np.float64)
            out[i][full] = a + (b - a) * (p - np.floor(p))
    rest = ~full & (counts > 0)
    if rest.any():
        srt = np.sort(values[rest], axis=1)
        c = counts[rest]
        for i, q in enumerate(qs):
            pos = (q / 100.0) * (c - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, c - 1)
            a = np.take_along_axis(srt, lo[:, None], axis=1)[:, 0].astype(np.float64)
            b = np.take_along_axis(srt, hi[:, None], axis=1)[:, 0].astype(np.float64)
            out[i][rest] = a + (b - a) * (pos - np.floor(pos))
    return out


def patch_channels(refl):
    """Bands and indices of pixels: ``(..., 12)`` reflectance -> ``(..., 22)``; NaN rows stay NaN."""
    refl = np.asarray(refl, dtype=np.float32)
    shape = refl.shape[:-1]
    flat = refl.reshape(-1, refl.shape[-1])
    indices, _ = compute_indices(flat, S2_BANDS)
    bad = ~np.isfinite(flat).all(axis=1)
    indices[bad] = np.nan
    return np.concatenate([flat, indices], axis=1).reshape(shape + (len(CHANNELS),))


def patch_features(patches, chunk=16):
    """Feature matrix of reflectance patches.

    Parameters
    ----------
    patches : array (n, rows, cols, 12) or (rows, cols, 12), or list of such arrays
        Reflectance in :data:`core.sentinel2.S2_BANDS` order; NaN = nodata.

    Returns
    -------
    ndarray of float32 (n, n_features)
        Columns :func:`feature_names`; NaN where a patch has no valid pixel (or an
        index none).
    """
    if isinstance(patches, np.ndarray) and patches.ndim == 3:
        patches = patches[None]
    if isinstance(patches, np.ndarray):
        groups = [patches[i:i + chunk] for i in range(0, patches.shape[0], chunk)]
    else:
        groups = [np.asarray(p, dtype=np.float32)[None] for p in patches]
    rows = []
    for group in groups:
        k = group.shape[0]
        channels32 = patch_channels(group).reshape(k, -1, len(CHANNELS))
        valid_px = np.isfinite(channels32[..., :len(S2_BANDS)]).all(axis=2)
        channels32[~valid_px] = np.nan
        channels = channels32.astype(np.float64)
        counts = np.isfinite(channels).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(channels, axis=1)
            sd = np.nanstd(channels, axis=1)
        # percentiles of each (patch, channel) row, in float32 (the values are float32; the order is the same)
        rows32 = np.ascontiguousarray(np.moveaxis(channels32, 1, 2)).reshape(k * len(CHANNELS), -1)
        p2, p10, p50, p90, p98 = (v.reshape(k, len(CHANNELS)) for v in
                                  _percentiles(rows32, counts.reshape(-1), (2, 10, 50, 90, 98)))
        stats = np.stack([mean, sd, p2, p10, p50, p90, p98], axis=2).reshape(k, -1)  # channel-major, stat-minor
        n_valid = valid_px.sum(axis=1).astype(np.float64)
        col = {name: channels[..., len(S2_BANDS) + i] for i, name in enumerate(INDEX_NAMES)}
        with np.errstate(invalid="ignore"):
            bare = (col["BSI"] > 0.1) & (col["NDVI"] < 0.2)
        col["BARE"] = np.where(bare, 1.0, 0.0)
        col["BARE_IRON_OXIDE"] = np.where(bare, col["IRON_OXIDE"], np.nan)
        col["BARE_CLAY"] = np.where(bare, col["CLAY"], np.nan)
        fracs = []
        for _name, index, op, value in THRESHOLD_RULES:
            values = col[index]
            with np.errstate(invalid="ignore"):
                hit = values > value if op == ">" else values < value
            hit &= valid_px
            fracs.append(np.where(n_valid > 0, hit.sum(axis=1) / np.maximum(n_valid, 1), np.nan))
        rows.append(np.concatenate([stats, np.stack(fracs, axis=1)], axis=1))
    return np.concatenate(rows, axis=0).astype(np.float32)


# ---------------------------------------------------------------------------
# Patch sets
# ---------------------------------------------------------------------------


@dataclass
class PatchSet:
    """Labelled patches: features always, reflectance patches when kept (for the CNN).

    ``centres`` (n, 2) map coordinates and ``crs_keys`` (one CRS text per patch) are
    ``None`` when positions are unknown; ``pixel_size`` in CRS units.
    """

    features: np.ndarray
    labels: np.ndarray
    names: list
    patches: np.ndarray = None
    centres: np.ndarray = None
    crs_keys: list = None
    pixel_size: float = None
    patch_shape: tuple = None
    source: str = ""
    notes: list = field(default_factory=list)

    @property
    def n(self):
        return int(self.labels.size)

    @property
    def n_positive(self):
        return int((self.labels == 1).sum())

    @property
    def n_negative(self):
        return int((self.labels == 0).sum())


_TRUE = {"1", "true", "yes", "y", "mine", "positive", "pos", "t"}
_FALSE = {"0", "false", "no", "n", "no mine", "no_mine", "nomine", "negative", "neg", "background", "f", "none"}
_FILE_COLUMNS = ("file", "filename", "file_name", "path", "image", "patch", "name", "id")
_LABEL_COLUMNS = ("label", "class", "mine", "target", "y", "is_mine")


def _parse_label(value, row_number):
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    try:
        number = float(text)
    except ValueError:
        number = None
    if number in (0.0, 1.0):
        return int(number)
    raise OreMapError(f"Row {row_number} of the label table has the label '{value}', not 0/1 (or mine/no mine).",
                      "labels", "Use 1 for a patch with a mine and 0 for one without.")


def read_label_table(csv_path):
    """``[(file, label), ...]`` from a CSV with a file column and a 0/1 label column."""
    if not csv_path or not os.path.isfile(csv_path):
        raise OreMapError(f"The label table '{csv_path}' does not exist.", "labels",
                          "Choose the CSV with columns file,label.")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ("\t" if sample.count("\t") > sample.count(",")
                                                                       else ",")
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = {h.strip().lower(): h for h in (reader.fieldnames or [])}
        file_col = next((header[c] for c in _FILE_COLUMNS if c in header), None)
        label_col = next((header[c] for c in _LABEL_COLUMNS if c in header), None)
        if file_col is None or label_col is None:
            raise OreMapError(f"The label table needs a file column and a label column; it has "
                              f"{', '.join(reader.fieldnames or []) or 'no header'}.", "labels",
                              "Give a CSV whose header is 'file,label'.")
        rows = []
        for i, row in enumerate(reader, start=2):
            name = (row.get(file_col) or "").strip()
            if not name:
                continue
            rows.append((name, _parse_label(row.get(label_col), i)))
    if not rows:
        raise OreMapError("The label table lists no patches.", "labels", "Fill the CSV with file,label rows.")
    return rows


def _resolve(folder, name):
    candidates = [name if os.path.isabs(name) else os.path.join(folder, name)]
    if not os.path.splitext(name)[1]:
        candidates += [candidates[0] + ext for ext in (".tif", ".tiff", ".TIF")]
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


def load_patch_folder(csv_path, folder=None, keep_patches=False, band_map=None, feedback=None, mask_clouds=True):
    """Patches listed in a label table (``file,label``), read as reflectance; see :class:`PatchSet`.

    ``folder`` holds the patch files (the CSV's folder by default). Each patch goes
    through :func:`core.sentinel2.open_sentinel2` (band names, DN scaling; ``mask_clouds``
    for patches that are folders with a scene classification).
    """
    feedback = ensure(feedback)
    rows = read_label_table(csv_path)
    folder = folder or os.path.dirname(os.path.abspath(csv_path))
    missing = [name for name, _ in rows if _resolve(folder, name) is None]
    if missing:
        raise OreMapError(f"{len(missing)} patch files of the label table are not in '{folder}' (e.g. "
                          f"{', '.join(missing[:3])}).", "labels",
                          "Put the patches next to the CSV, or choose their folder.")
    features, labels, names, kept, centres, crs_keys = [], [], [], [], [], []
    shapes, pixel_sizes, notes = set(), [], None
    for i, (name, label) in enumerate(rows):
        feedback.check()
        with open_sentinel2(_resolve(folder, name), band_map=band_map, mask_clouds=mask_clouds) as s2:
            refl = s2.read_reflectance(S2_BANDS)
            notes = notes or list(s2.notes)
            t = s2.transform
            georeferenced = s2.crs is not None and not t.is_identity
            centre = t * (s2.width / 2.0, s2.height / 2.0) if georeferenced else None
            crs_key = s2.crs.to_string() if georeferenced else None
            if georeferenced:
                pixel_sizes.append(abs(t.a))
        if not np.isfinite(refl).all(axis=2).any():
            feedback.warning(f"Patch {name} has no valid pixel: left out.")
            continue
        shapes.add(refl.shape[:2])
        features.append(patch_features(refl)[0])
        labels.append(label)
        names.append(name)
        centres.append(centre)
        crs_keys.append(crs_key)
        if keep_patches:
            kept.append(refl)
        feedback.progress(100.0 * (i + 1) / len(rows))
    if not features:
        raise OreMapError("No patch has valid pixels.", "labels", "Check the patches.")
    known = all(c is not None for c in centres)
    if not known and any(c is not None for c in centres):
        feedback.warning("Some patches are not georeferenced: cross-validation is not spatially grouped.")
    patches = None
    if keep_patches:
        if len(shapes) > 1:
            raise OreMapError(f"The patches differ in size ({', '.join(f'{r}x{c}' for r, c in sorted(shapes))}); the "
                              "CNN needs patches of one size.", "labels",
                              "Cut the patches to one size, or use the gradient boosting classifier.")
        patches = np.stack(kept).astype(np.float32)
    return PatchSet(features=np.stack(features), labels=np.asarray(labels, dtype=np.int64), names=names,
                    patches=patches, centres=np.asarray(centres, dtype=np.float64) if known else None,
                    crs_keys=crs_keys if known else None,
                    pixel_size=float(np.median(pixel_sizes)) if pixel_sizes else None,
                    patch_shape=next(iter(shapes)) if len(shapes) == 1 else None,
                    source=os.path.abspath(csv_path), notes=notes or [])


def patches_from_raster(raster, geometries, patch_size=120, stride=None, min_overlap=0.02, max_nodata=0.5,
                        keep_patches=False, band_map=None, feedback=None, mask_clouds=True):
    """Patches cut on a grid over a Sentinel-2 raster, labelled by their overlap with mine polygons.

    A patch is a mine (1) when polygons cover at least ``min_overlap`` of its area,
    no mine (0) when they do not touch it; patches in between are left out (too
    little of a mine to call either way), as are patches with more than
    ``max_nodata`` of nodata pixels (clouds included when a folder's scene
    classification masks them, ``mask_clouds``). ``geometries`` are in the raster's CRS.
    """
    from rasterio.windows import Window
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    feedback = ensure(feedback)
    size = int(patch_size)
    step = int(stride or size)
    if size < 8 or step < 1:
        raise OreMapError("The patch size must be at least 8 pixels.", "patch_size")
    if not 0.0 < float(min_overlap) <= 1.0:
        raise OreMapError("The minimum overlap must lie in (0, 1].", "min_overlap")
    geoms = [g for g in geometries if g is not None and not g.is_empty]
    if not geoms:
        raise OreMapError("No mine polygons were given.", "polygons", "Choose a layer with mine polygons.")
    mines = unary_union([g if g.is_valid else g.buffer(0) for g in geoms])
    with open_sentinel2(raster, band_map=band_map, feedback=feedback, mask_clouds=mask_clouds) as s2:
        if s2.width < size or s2.height < size:
            raise OreMapError(f"The raster ({s2.width} x {s2.height}) is smaller than one patch ({size}).",
                              "patch_size", "Choose a smaller patch size.")
        t = s2.transform
        starts = [(r, c) for r in range(0, s2.height - size + 1, step) for c in range(0, s2.width - size + 1, step)]
        boxes = []
        for r, c in starts:
            corners = [t * (c, r), t * (c + size, r), t * (c + size, r + size), t * (c, r + size)]
            boxes.append(Polygon(corners))
        overlap = np.array([mines.intersection(b).area / b.area if mines.intersects(b) else 0.0 for b in boxes])
        features, labels, names, kept, centres = [], [], [], [], []
        skipped_ambiguous = skipped_nodata = 0
        with s2.open_source(S2_BANDS) as source:
            for i, (r, c) in enumerate(starts):
                feedback.check()
                if 0.0 < overlap[i] < min_overlap:
                    skipped_ambiguous += 1
                    continue
                data, valid = source.read(Window(c, r, size, size))
                if 1.0 - valid.mean() > max_nodata:
                    skipped_nodata += 1
                    continue
                refl = np.array(data, dtype=np.float32)
                refl[~valid] = np.nan
                features.append(patch_features(refl)[0])
                labels.append(1 if overlap[i] >= min_overlap else 0)
                names.append(f"row{r}_col{c}")
                centres.append(t * (c + size / 2.0, r + size / 2.0))
                if keep_patches:
                    kept.append(refl)
                feedback.progress(100.0 * (i + 1) / len(starts))
        crs_key = s2.crs.to_string() if s2.crs is not None else None
        notes = list(s2.notes)
        pixel = abs(t.a)
    if skipped_ambiguous:
        feedback.info(f"{skipped_ambiguous} patches touch a mine polygon by less than {100 * min_overlap:g} % of their "
                      "area: left out.")
    if skipped_nodata:
        feedback.info(f"{skipped_nodata} patches are more than {100 * max_nodata:g} % nodata: left out.")
    if not features:
        raise OreMapError("No patch could be cut from the raster.", "raster", "Check the raster and the patch size.")
    labels = np.asarray(labels, dtype=np.int64)
    feedback.info(f"{labels.size} patches of {size} x {size} pixels: {int(labels.sum())} with a mine, "
                  f"{int((labels == 0).sum())} without.")
    return PatchSet(features=np.stack(features), labels=labels, names=names,
                    patches=np.stack(kept).astype(np.float32) if keep_patches else None,
                    centres=np.asarray(centres, dtype=np.float64) if crs_key else None,
                    crs_keys=[crs_key] * labels.size if crs_key else None, pixel_size=pixel,
                    patch_shape=(size, size), source=os.path.abspath(raster), notes=notes)


# ---------------------------------------------------------------------------
# Folds, thresholds, metrics
# ---------------------------------------------------------------------------


def spatial_groups(centres, crs_keys, block_size):
    """Group id of each patch: its centre's ``block_size`` square, separately per CRS."""
    centres = np.asarray(centres, dtype=np.float64)
    keys = [(str(k), int(math.floor(x / block_size)), int(math.floor(y / block_size)))
            for k, (x, y) in zip(crs_keys, centres)]
    lookup = {key: i for i, key in enumerate(sorted(set(keys)))}
    return np.array([lookup[k] for k in keys], dtype=np.int64)


def make_folds(y, groups, n_folds, seed, feedback=None):
    """``[(train_idx, test_idx), ...]``: stratified by label, grouped when ``groups`` is given.

    Folds are reduced (with a warning) when there are fewer groups or fewer patches
    of a class than folds. Raises when fewer than 2 folds are possible.
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
# Models
# ---------------------------------------------------------------------------


def _threads(n_samples):
    """OpenMP threads for one fit (see :func:`core.compute.openmp_limit`)."""
    return compute.openmp_limit(n_samples)


class HGBPatchModel:
    """HistGradientBoostingClassifier on :func:`patch_features`."""

    kind = "hgb"
    needs_patches = False

    def __init__(self, seed=0, max_iter=200, learning_rate=0.08, max_leaf_nodes=15, l2_regularization=0.1):
        self.seed = int(seed)
        self.params = dict(max_iter=int(max_iter), learning_rate=float(learning_rate),
                           max_leaf_nodes=int(max_leaf_nodes), l2_regularization=float(l2_regularization))
        self.model = None

    def fit(self, X, y):
        from sklearn.ensemble import HistGradientBoostingClassifier

        X = np.asarray(X, dtype=np.float32)
        min_leaf = int(np.clip(X.shape[0] // 10, 3, 20))
        self.model = HistGradientBoostingClassifier(
            min_samples_leaf=min_leaf, early_stopping=False, random_state=self.seed, **self.params)
        with _threads(X.shape[0]):
            self.model.fit(X.astype(np.float64), np.asarray(y).astype(int))
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        with _threads(X.shape[0]):
            return self.model.predict_proba(X)[:, 1]

    def onnx_model(self, n_features):
        from .onnx_ensemble import hgb_binary_classifier_to_onnx

        return hgb_binary_classifier_to_onnx(self.model, n_features, input_name=INPUT_FEATURES,
                                             output_name=OUTPUT_NAME)

    def options(self):
        return dict(self.params, min_samples_leaf="n // 10 clipped to 3-20", seed=self.seed)


@compute.torch_classes("train the CNN (or choose the gradient boosting classifier)")
def _torch_classes(torch, nn):
    from .sentinel2 import INDICES

    class PatchIndices(nn.Module):
        """Reflectance (n, 12, h, w) -> the indices of :data:`INDEX_NAMES` (n, 10, h, w); 0/0 -> NaN."""

        def forward(self, x):
            b = {name: x[:, i:i + 1] for i, name in enumerate(S2_BANDS)}
            out = []
            for name in INDEX_NAMES:
                kind, bands, _ = INDICES[name]
                if kind == "nd":
                    num, den = b[bands[0]] - b[bands[1]], b[bands[0]] + b[bands[1]]
                elif kind == "ratio":
                    num, den = b[bands[0]], b[bands[1]]
                else:
                    s1, s2 = b["B11"] + b["B4"], b["B8"] + b["B2"]
                    num, den = s1 - s2, s1 + s2
                value = num / torch.where(den == 0, torch.ones_like(den), den)
                out.append(torch.where(den == 0, torch.full_like(den, float("nan")), value))
            return torch.cat(out, dim=1)

    class PatchNet(nn.Module):
        def __init__(self, in_channels, width=16, dropout=0.2):
            super().__init__()
            w = int(width)
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU())
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, 1))

        def forward(self, z):
            h = self.features(z)
            pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            return self.head(pooled)[:, 0]

    class ExportModule(nn.Module):
        """Reflectance patches -> bands + indices -> clip, z-score, NaN to 0 -> net -> (1 - p, p)."""

        def __init__(self, net, mean, sd, lo, hi):
            super().__init__()
            self.indices = PatchIndices()
            self.net = net
            for name, value in (("mean", mean), ("sd", sd), ("lo", lo), ("hi", hi)):
                self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32).reshape(1, -1, 1, 1)))

        def standardise(self, x):
            z = torch.cat([x, self.indices(x)], dim=1)
            z = torch.minimum(torch.maximum(z, self.lo), self.hi)
            z = (z - self.mean) / self.sd
            return torch.where(torch.isnan(z), torch.zeros_like(z), z)

        def logits(self, x):
            return self.net(self.standardise(x))

        def forward(self, x):
            p = torch.sigmoid(self.logits(x))[:, None]
            return torch.cat([1.0 - p, p], dim=1)

    return dict(net=PatchNet, export=ExportModule)


def _small_work(X):
    """True for small trainings (under ~2 million pixels): one torch thread is faster there, and several
    are much slower on a busy machine (OpenMP threads spin waiting for cores)."""
    return X.shape[0] * X.shape[2] * X.shape[3] < 2_000_000


class CNNPatchModel:
    """A small CNN on bands + indices, trained from scratch with flips and rotations."""

    kind = "cnn"
    needs_patches = True

    def __init__(self, seed=0, epochs=30, batch_size=16, lr=2e-3, width=16, weight_decay=1e-4, feedback=None):
        self.seed = int(seed)
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.width, self.weight_decay = int(width), float(weight_decay)
        self.feedback = ensure(feedback)
        self.module = None

    def options(self):
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "width": self.width,
                "weight_decay": self.weight_decay, "seed": self.seed, "augmentation": "8 flips/rotations"}

    @staticmethod
    def to_nchw(patches):
        return np.ascontiguousarray(np.moveaxis(np.asarray(patches, dtype=np.float32), -1, 1))

    def fit(self, patches, y):
        tc = _torch_classes()
        torch = tc["torch"]
        X = self.to_nchw(patches)
        y = np.asarray(y).astype(np.float32)
        channels = patch_channels(np.moveaxis(X, 1, -1)).reshape(-1, len(CHANNELS)).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanpercentile(channels, 0.5, axis=0)
            hi = np.nanpercentile(channels, 99.5, axis=0)
            clipped = np.clip(channels, lo, hi)
            mean = np.nanmean(clipped, axis=0)
            sd = np.nanstd(clipped, axis=0)
        lo, hi = np.nan_to_num(lo, nan=-1.0), np.nan_to_num(hi, nan=1.0)
        mean, sd = np.nan_to_num(mean), np.where(np.nan_to_num(sd) > 1e-6, np.nan_to_num(sd), 1.0)
        rng = np.random.default_rng([self.seed, 7])
        n = y.size
        n_pos = max(float(y.sum()), 1.0)
        pos_weight = (n - n_pos) / n_pos if n > n_pos else 1.0
        previous = torch.are_deterministic_algorithms_enabled()
        threads = torch.get_num_threads()
        if _small_work(X):
            torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
            try:
                net = tc["net"](len(CHANNELS), self.width)
                module = tc["export"](net, mean, sd, lo, hi)
                optimiser = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
                Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
                for epoch in range(self.epochs):
                    self.feedback.check()
                    module.train()
                    order = rng.permutation(n)
                    for start in range(0, n, self.batch_size):
                        batch = order[start:start + self.batch_size]
                        if batch.size < 2:
                            continue
                        xb = Xt[torch.from_numpy(batch)]
                        k = int(rng.integers(8))
                        xb = torch.rot90(xb, k % 4, dims=(2, 3))
                        if k >= 4:
                            xb = torch.flip(xb, dims=(3,))
                        optimiser.zero_grad()
                        loss = loss_fn(module.logits(xb), yt[torch.from_numpy(batch)])
                        loss.backward()
                        optimiser.step()
                module.eval()
            finally:
                torch.use_deterministic_algorithms(previous)
                torch.set_num_threads(threads)
        self.module = module
        return self

    def predict_proba(self, patches, batch_size=64):
        torch = _torch_classes()["torch"]
        X = self.to_nchw(patches)
        threads = torch.get_num_threads()
        if _small_work(X):
            torch.set_num_threads(1)
        try:
            p = compute.torch_predict(self.module, X, batch_size, empty_shape=(0, 2))
        finally:
            torch.set_num_threads(threads)
        return p[:, 1].astype(np.float64)

    def onnx_model(self, patch_shape):
        h, w = patch_shape
        return compute.onnx_bytes(self.module, (1, len(S2_BANDS), h, w), INPUT_PATCHES, OUTPUT_NAME, opset=OPSET)


def make_model_factory(classifier, seed=0, cnn_options=None, feedback=None):
    """A function ``fold -> new unfitted model`` for :func:`cross_validate`."""
    if classifier == "hgb":
        return lambda fold=0: HGBPatchModel(seed=seed)
    if classifier == "cnn":
        return lambda fold=0: CNNPatchModel(seed=seed, feedback=feedback, **(cnn_options or {}))
    raise OreMapError(f"Unknown classifier '{classifier}'.", "classifier",
                      f"Choose one of {', '.join(k for k, _ in CLASSIFIERS)}.")


# ---------------------------------------------------------------------------
# Nested cross-validation
# ---------------------------------------------------------------------------


def _oof(data, y, groups, idx, make_model, n_folds, seed, feedback):
    """Out-of-fold probabilities of the samples ``idx`` by an inner cross-validation on them alone."""
    folds = make_folds(y[idx], None if groups is None else groups[idx], n_folds, seed, feedback=None)
    p = np.full(idx.size, np.nan)
    for tr, te in folds:
        feedback.check()
        model = make_model()
        model.fit(data[idx[tr]], y[idx[tr]])
        p[te] = model.predict_proba(data[idx[te]])
    return p


def cross_validate(data, y, groups, make_model, n_folds=5, inner_folds=3, seed=0, feedback=None):
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
        try:
            inner_p = _oof(data, y, groups, train, make_model, inner_folds, seed + 1 + f, feedback)
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
        details.append(dict(fold=f + 1, train=train, test=test, threshold=threshold, tuned_on=how,
                            n_test=int(test.size), n_test_positive=int(y[test].sum()), **m))
        feedback.info(f"Fold {f + 1}/{len(outer)}: {test.size} patches held out ({int(y[test].sum())} mines), "
                      f"threshold {threshold:.2f} from the training folds: F1 {m['f1']:.3f}, precision "
                      f"{m['precision']:.3f}, recall {m['recall']:.3f}.")
        feedback.progress(100.0 * (f + 1) / len(outer))
    f1s = np.array([d["f1"] for d in details])
    return {"proba": proba, "pred": pred, "fold": fold_of, "folds": details, "metrics": binary_metrics(y, pred),
            "fold_f1_mean": float(f1s.mean()), "fold_f1_sd": float(f1s.std(ddof=1)) if f1s.size > 1 else 0.0,
            "curve": threshold_curve(y, proba), "oof_threshold": tune_threshold(y, proba),
            "n_folds": len(outer), "grouped": groups is not None}


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
                          f"and {ps.n_negative}).", "labels", "Label more patches.")
    make_model = make_model_factory(classifier, seed, cnn_options, feedback)
    probe = make_model()
    if probe.needs_patches:
        if ps.patches is None:
            raise OreMapError("The CNN needs the patches themselves.", "classifier",
                              "Load the patches with keep_patches=True.")
        data = ps.patches
    else:
        data = ps.features
    groups, block = None, None
    if ps.centres is not None and (block_size is None or block_size > 0):
        width = (ps.patch_shape[1] if ps.patch_shape else 120) * (ps.pixel_size or 10.0)
        block = float(block_size) if block_size else 5.0 * width
        groups = spatial_groups(ps.centres, ps.crs_keys, block)
        feedback.info(f"Spatial cross-validation: patch centres in {np.unique(groups).size} blocks of "
                      f"{block:g} x {block:g} (CRS units).")
    else:
        feedback.info("Patch positions unknown (or grouping off): folds are stratified but not spatially grouped.")
    cv = cross_validate(data, ps.labels, groups, make_model, n_folds, inner_folds, seed, feedback.scaled(0, 80))
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
        from .model_format import write_model

        onnx_model = final.onnx_model(ps.features.shape[1]) if classifier == "hgb" else \
            final.onnx_model(ps.patches.shape[1:3])
        write_model(onnx_model, info, model_path)
        feedback.info(f"Model saved: {model_path} (threshold {threshold:.2f}).")
    if report_path:
        from .report import write_report

        write_report(report_path, training_report(result, ps), parameter="report")
    feedback.progress(100)
    return result


def model_info(ps, model, classifier, threshold, cv, seed, n_folds, inner_folds, block):
    from .model_format import ModelInfo

    if classifier == "hgb":
        n_input, input_spec, names = ps.features.shape[1], {"name": INPUT_FEATURES}, feature_names()
    else:
        n_input, names = len(S2_BANDS), list(S2_BANDS)
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
                       "reflectance": "DN * scale + offset (core.sentinel2.open_sentinel2)"},
        training={"date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
                  "data_hash": _data_hash(data, ps.labels), "n_samples": ps.n,
                  "metrics": metrics,
                  "parameters": {"classifier": classifier, "seed": int(seed), "n_folds": int(n_folds),
                                 "inner_folds": int(inner_folds), "block_size": block, "model": model.options(),
                                 "n_positive": ps.n_positive, "n_negative": ps.n_negative}},
        description=f"Sentinel-2 mine patch classifier ({classifier})",
        extra={"mine_classifier": {"classifier": classifier, "bands": list(S2_BANDS), "threshold": float(threshold),
                                   "patch_size": patch_shape, "features": feature_definition(),
                                   "positive_class": "Mine"}})


def predict_proba(model_path, patches):
    """Mine probability of reflectance patches ``(n, rows, cols, 12)`` with a saved model (onnxruntime).

    Returns ``(p, threshold)``.
    """
    from .model_format import OnnxModel

    model = OnnxModel(model_path)
    from .model_task import check_task

    check_task(model.info, TASK, model_path)
    meta = model.info.extra.get("mine_classifier", {})
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim == 3:
        patches = patches[None]
    if meta.get("classifier") == "cnn":
        p = model.run(np.moveaxis(patches, -1, 1))[:, 1]
    else:
        p = model.run(patch_features(patches))[:, 1]
    return p.astype(np.float64), float(meta.get("threshold", 0.5))


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def training_report(result, ps):
    from . import report

    cv, m = result["cv"], result["metrics"]
    summary_rows = [
        ["Classifier", dict(CLASSIFIERS)[result["classifier"]]],
        ["Patches", f"{ps.n} ({ps.n_positive} with a mine, {ps.n_negative} without)"],
        ["Cross-validation", f"{cv['n_folds']} outer folds, stratified"
         + (f", spatially grouped (blocks of {result['block_size']:g} CRS units)" if cv["grouped"] else
            ", not spatially grouped (positions unknown)")],
        ["Threshold tuning", "per outer fold: maximum F1 on out-of-fold predictions of an inner cross-validation "
                             "of the training folds only (nested)"],
        ["F1 (held out)", m["f1"]], ["Precision", m["precision"]], ["Recall", m["recall"]],
        ["Accuracy", m["accuracy"]],
        ["F1 per fold", f"{cv['fold_f1_mean']:.3f} +/- {cv['fold_f1_sd']:.3f}"],
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
                              subtitle=f"{ps.source} - {datetime.date.today().isoformat()}")
