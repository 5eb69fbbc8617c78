"""Accuracy assessment of class maps against reference data.

A class raster (e.g. from SAM or a CNN) is compared with reference classes known at
points or inside polygons (field samples, mapped outcrops): every reference pixel
gives a pair (reference class, map class), and the pairs are counted in a confusion
matrix from which the usual measures follow.

Conventions
-----------
The confusion matrix has the **reference (true) classes as rows and the map
(predicted) classes as columns**, as in scikit-learn: ``cm[i, j]`` counts the
samples of reference class ``i`` mapped as class ``j``. Remote-sensing textbooks
(Congalton, 1991; Congalton & Green, 2019, *Assessing the Accuracy of Remotely Sensed
Data*, 3rd ed., CRC Press) often print the transpose (map classes as
rows); the measures are the same:

- *producer's accuracy* of a class = recall = correct / reference samples of the
  class (row total); 1 - producer's accuracy is the *omission error*;
- *user's accuracy* = precision = correct / samples mapped as the class (column
  total); 1 - user's accuracy is the *commission error*;
- F1 = harmonic mean of the two = 2 x correct / (row total + column total);
- overall accuracy = correct / all samples; Cohen's kappa = agreement beyond the
  agreement expected by chance with the same row and column totals.

A measure that divides by zero is NaN: recall of a class absent from the
reference, precision of a class the map never predicts, everything of an empty
matrix. F1 is 0 (not NaN) when a class occurs in only one of reference and map, and
NaN only when it occurs in neither. No warnings are emitted for these cases.

Pixels of one polygon are not independent samples (neighbouring pixels are alike),
so the figures describe agreement on the reference pixels; they are not an unbiased
estimate of the accuracy of the whole map.
"""

import csv
import io
import json
import math
import re

import numpy as np

from . import report
from .class_order import numeric_value
from .colors import hex_colour
from .errors import OreMapError
from .evaluation_guard import check_evaluation, read_validation
from .names import match_name, name_key
from .feedback import ensure

__all__ = [
    "confusion_matrix", "overall_accuracy", "kappa", "per_class_metrics", "summary", "metrics_table_csv",
    "accuracy_html", "write_accuracy_outputs", "ReferenceSample", "sample_reference", "match_classes",
    "legend_from_raster", "assess_class_raster", "accuracy_sections", "ClassMatch", "ReferenceTally",
    "tally_reference", "reference_window_pixels",
]


# --------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------
def _label_array(values):
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.asarray([v.item() if isinstance(v, np.generic) else v for v in arr.ravel()])
    return arr.ravel()


def confusion_matrix(y_true, y_pred, labels):
    """Count (reference, map) class pairs.

    Parameters
    ----------
    y_true : array-like (n_samples,)
        Reference classes.
    y_pred : array-like (n_samples,)
        Map classes, same length.
    labels : sequence
        The classes, in the order of the rows and columns. Samples whose reference
        or map class is not among them are left out.

    Returns
    -------
    ndarray of int64, shape (n_labels, n_labels)
        ``cm[i, j]`` = number of samples of reference class ``labels[i]`` mapped as
        ``labels[j]``.
    """
    y_true, y_pred, labs = _label_array(y_true), _label_array(y_pred), _label_array(labels)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} samples but y_pred has {y_pred.size}.")
    n = labs.size
    if n == 0:
        return np.zeros((0, 0), dtype=np.int64)
    if np.unique(labs).size != n:
        raise ValueError("Each label must be given once.")
    t, p = _indexes(y_true, labs), _indexes(y_pred, labs)
    keep = (t >= 0) & (p >= 0)
    return np.bincount(t[keep] * n + p[keep], minlength=n * n).reshape(n, n).astype(np.int64)


def _indexes(values, labels):
    """Position of each value in ``labels``, -1 where it is not there."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    numeric = labels.dtype.kind in "iufb"
    if numeric != (values.dtype.kind in "iufb") or "O" in (labels.dtype.kind, values.dtype.kind):
        # Numbers vs text (or mixed objects): compare as text, so 3 and "3" meet and nothing else does.
        labels, values = labels.astype(str), values.astype(str)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    pos = np.clip(np.searchsorted(ordered, values), 0, labels.size - 1)
    found = ordered[pos] == values
    return np.where(found, order[pos], -1).astype(np.int64)


def overall_accuracy(cm):
    """Share of samples on the diagonal; NaN for an empty matrix."""
    cm = np.asarray(cm, dtype=float)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else math.nan


def kappa(cm):
    """Cohen's kappa of a confusion matrix.

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the overall accuracy and
    ``p_e = sum_i row_i * col_i / N**2`` the agreement expected by chance from the
    row and column totals. 1 = perfect agreement, 0 = no better than chance,
    negative = worse than chance. NaN when undefined (empty matrix, or ``p_e = 1``:
    reference and map both contain a single, identical class).
    """
    cm = np.asarray(cm, dtype=float)
    total = cm.sum()
    if total <= 0:
        return math.nan
    # Integer-exact numerator and denominator (scaled by N**2) where counts allow.
    chance = float(np.dot(cm.sum(axis=1), cm.sum(axis=0)))
    denominator = total * total - chance
    if denominator == 0:
        return math.nan
    return float((total * np.trace(cm) - chance) / denominator)


def per_class_metrics(cm):
    """Per-class measures of a confusion matrix (rows = reference, columns = map).

    Returns
    -------
    dict of ndarray, each of length n_classes
        ``support`` (reference samples, row total), ``predicted`` (map samples,
        column total), ``correct`` (diagonal), ``precision`` (the user's accuracy;
        1 - precision is the commission error), ``recall`` (the producer's accuracy;
        1 - recall is the omission error) and ``f1``. See the module notes for NaN
        and zero cases.
    """
    cm = np.asarray(cm, dtype=float)
    correct = np.diag(cm).copy()
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, correct / predicted, np.nan)
        recall = np.where(support > 0, correct / support, np.nan)
        both = support + predicted
        f1 = np.where(both > 0, 2 * correct / both, np.nan)
    return {
        "support": support.astype(np.int64), "predicted": predicted.astype(np.int64),
        "correct": correct.astype(np.int64),
        "precision": precision, "recall": recall, "f1": f1,
    }


def _py(value):
    """A numpy scalar as a plain Python value (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def summary(y_true, y_pred, labels, names=None):
    """All accuracy figures of a classification, as plain Python values.

    Parameters
    ----------
    y_true, y_pred : array-like (n_samples,)
        Reference and map classes.
    labels : sequence
        The classes (rows and columns of the matrix), e.g. raster class codes.
    names : sequence of str, optional
        Display names of ``labels``; ``str(label)`` by default.

    Returns
    -------
    dict
        ``labels``, ``names``, ``matrix`` (list of lists, rows = reference),
        ``n_samples``, ``overall_accuracy``, ``kappa``, ``macro_f1`` (mean F1 over
        the classes present in the reference, so a class only the map uses, such as
        Unclassified, lowers the recall of the others but is not averaged in
        itself), ``weighted_f1`` (weighted by reference support) and ``per_class``:
        one dict per label with ``value``, ``name`` and the keys of
        :func:`per_class_metrics`.
    """
    labels = [_py(v) for v in _label_array(labels)]
    names = [str(v) for v in labels] if names is None else [str(n) for n in names]
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names were given for {len(labels)} labels.")
    return _matrix_summary(confusion_matrix(y_true, y_pred, labels), labels, names)


def _matrix_summary(cm, labels, names):
    """:func:`summary` of a confusion matrix ``cm`` (int64, rows = reference) of ``labels`` (plain Python values)
    named ``names``."""
    m = per_class_metrics(cm)
    present = m["support"] > 0
    f1 = m["f1"]
    macro = float(np.mean(f1[present])) if present.any() else math.nan
    weighted = float(np.sum(f1[present] * m["support"][present]) / m["support"].sum()) if present.any() \
        else math.nan
    per_class = []
    for i, (label, name) in enumerate(zip(labels, names)):
        row = {"value": label, "name": name}
        row.update({key: _py(values[i]) for key, values in m.items()})
        per_class.append(row)
    return {
        "labels": labels, "names": names, "matrix": cm.tolist(), "n_samples": int(cm.sum()),
        "overall_accuracy": overall_accuracy(cm), "kappa": kappa(cm),
        "macro_f1": macro, "weighted_f1": weighted, "per_class": per_class,
    }


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------
def _csv_number(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def metrics_table_csv(summary, path, parameter="table"):
    """Write the confusion matrix and per-class measures of a :func:`summary` as CSV.

    One comma-separated UTF-8 file (with a byte-order mark, so spreadsheet programs
    detect the encoding) in three blocks separated by an empty line: the confusion
    matrix with class names as header, row and column totals and producer's/user's
    accuracies; the per-class table; the overall figures. Undefined values (NaN)
    are empty cells. The file is written atomically; a folder that cannot be
    written raises :class:`OreMapError` naming ``parameter``. Returns ``path``.
    """
    names = summary["names"]
    cm = np.asarray(summary["matrix"], dtype=np.int64).reshape(len(names), len(names))
    pc = summary["per_class"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["Reference \\ Map"] + names + ["Total", "Producer's accuracy"])
    for i, name in enumerate(names):
        w.writerow([name] + [int(v) for v in cm[i]] + [int(cm[i].sum()), _csv_number(pc[i]["recall"])])
    w.writerow(["Total"] + [int(v) for v in cm.sum(axis=0)] + [int(cm.sum()), ""])
    w.writerow(["User's accuracy"] + [_csv_number(c["precision"]) for c in pc] + ["", ""])
    w.writerow([])
    w.writerow(["Class", "Code", "Reference samples", "Map samples", "Correct", "Precision (user's accuracy)",
                "Recall (producer's accuracy)", "F1"])
    for c in pc:
        w.writerow([c["name"], c["value"], c["support"], c["predicted"], c["correct"],
                    _csv_number(c["precision"]), _csv_number(c["recall"]), _csv_number(c["f1"])])
    w.writerow([])
    w.writerow(["Measure", "Value"])
    for label, key in [("Samples", "n_samples"), ("Overall accuracy", "overall_accuracy"), ("Kappa", "kappa"),
                       ("Macro F1", "macro_f1"), ("Weighted F1", "weighted_f1")]:
        w.writerow([label, _csv_number(summary.get(key))])
    return report.write_text_atomic(path, buf.getvalue(), parameter=parameter, encoding="utf-8-sig")


KAPPA_NOTE = (
    "Cohen's kappa compares the observed agreement with the agreement expected by chance from the "
    "class proportions of reference and map: 1 is perfect agreement, 0 is no better than chance, "
    "negative is worse than chance. Unlike overall accuracy it is not inflated by one dominant class."
)
SAMPLES_NOTE = (
    "Rows of the matrix are the reference classes, columns the map classes. Producer's accuracy "
    "(recall) is the share of a reference class mapped correctly; user's accuracy (precision) the share "
    "of the pixels mapped as a class that are that class. Pixels inside one reference polygon are not "
    "independent samples, so these figures describe agreement on the reference pixels."
)


def accuracy_html(summary, title, extra_sections=()):
    """A standalone HTML report of a :func:`summary` (or :func:`assess_class_raster` result).

    Sections: those of :func:`accuracy_sections`, then ``extra_sections`` (list of
    (heading, html_fragment)).

    Returns
    -------
    str
        The HTML document; save it with :func:`oremap.core.engine.report.write_report`.
    """
    sections = accuracy_sections(summary) + list(extra_sections)
    subtitle = f"Class raster: {summary['raster']}" if summary.get("raster") else None
    return report.html_report(title, sections, subtitle=subtitle)


def accuracy_sections(summary, prefix="", samples="Reference samples (pixels)"):
    """Report sections of a :func:`summary`: the overall figures with a short explanation of
    kappa, reference-data notes (for :func:`assess_class_raster` results), the per-class
    table, the confusion matrix heatmap, and user's/producer's accuracy per class as bars.
    ``prefix`` starts every heading (e.g. ``"CNN: "``); ``samples`` names what was counted."""
    names = summary["names"]
    pc = summary["per_class"]
    overall = report.html_table(["Measure", "Value"], [
        [samples, summary["n_samples"]],
        ["Classes", len(names)],
        ["Overall accuracy", summary["overall_accuracy"]],
        ["Cohen's kappa", summary["kappa"]],
        ["Macro F1 (reference classes)", summary["macro_f1"]],
        ["Weighted F1", summary["weighted_f1"]],
    ])
    sections = [("Overall accuracy", overall + "\n" + report.paragraph(KAPPA_NOTE, "note"))]
    notes = _sampling_notes(summary)
    if notes:
        sections.append(("Reference data", "\n".join(report.paragraph(t) for t in notes)))
    table = report.html_table(
        ["Class", "Code", "Reference pixels", "Map pixels", "Correct", "User's accuracy (precision)",
         "Producer's accuracy (recall)", "F1"],
        [[c["name"], c["value"], c["support"], c["predicted"], c["correct"], c["precision"],
          c["recall"], c["f1"]] for c in pc])
    sections.append(("Per-class accuracy", table))
    matrix = report.svg_confusion_matrix(summary["matrix"], names, "Confusion matrix", normalise="true")
    sections.append(("Confusion matrix", matrix + "\n" + report.paragraph(SAMPLES_NOTE, "note")))
    if names:
        bars = report.svg_bar_chart(names, [[c["precision"] for c in pc], [c["recall"] for c in pc]],
                                    ["User's accuracy", "Producer's accuracy"], "Accuracy per class", "Accuracy",
                                    colours=["#1f78b4", "#ff7f00"], y_range=(0, 1))
        sections.append(("Accuracy per class", bars))
    return [(prefix + heading, fragment) for heading, fragment in sections]


def write_accuracy_outputs(summary, title, html_path, csv_path=None, extra_sections=()):
    """Write the HTML report (:func:`accuracy_html`) and, when ``csv_path`` is given, the CSV table.

    Errors name the core keys ``"report"`` (HTML) and ``"table"`` (CSV).
    Returns ``(html_path, csv_path or None)``.
    """
    report.write_report(html_path, accuracy_html(summary, title, extra_sections), parameter="report")
    if csv_path:
        metrics_table_csv(summary, csv_path, parameter="table")
    return html_path, (csv_path or None)


def _sampling_notes(s):
    notes = []
    if "n_features" in s:
        notes.append(f"{s['n_features_used']} of {s['n_features']} reference features were used, giving "
                     f"{s['n_samples']} reference pixels.")
    if s.get("n_nodata"):
        notes.append(f"{s['n_nodata']} reference pixels were left out because the class raster has no data there.")
    if s.get("n_outside"):
        notes.append(f"{s['n_outside']} reference points lie outside the class raster.")
    if s.get("n_empty_outside"):
        notes.append(f"{s['n_empty_outside']} reference polygons or lines lie outside the class raster.")
    if s.get("n_empty_small"):   # features on nodata only and outside ones are said above
        notes.append(f"{s['n_empty_small']} reference features cover no pixel centre of the class raster (smaller "
                     "than a pixel, or on its edge).")
    if s.get("unmatched_labels"):
        notes.append("Reference classes not found in the class raster's legend (their features were left out): "
                     + ", ".join(str(v) for v in s["unmatched_labels"]) + ".")
    if s.get("match_rule") == "codes":
        notes.append("The class field holds integers that are none of the map's class names: they were read as "
                     "class codes of the raster.")
    elif s.get("match_rule") == "names":
        notes.append("Reference classes were matched to the map's class names (a number such as 3 matches the "
                     "class named \u201c3\u201d, not the class with code 3).")
    if s.get("class_mapping"):
        pairs = [f"{k} \u2192 {v}" for k, v in s["class_mapping"].items()]
        notes.append("Reference classes matched to map classes: " + "; ".join(pairs) + ".")
    notes += [f"Warning: {w}" for w in s.get("guard_warnings", [])]
    return notes


# --------------------------------------------------------------------------------------
# Reference sampling
# --------------------------------------------------------------------------------------
class ReferenceSample(tuple):
    """Result of :func:`sample_reference`: unpacks as ``(values, labels, features)``.

    Attributes
    ----------
    values : ndarray of int64
        Raster class code of each reference pixel.
    labels : ndarray
        Reference class label of each pixel (the label of its feature).
    features : ndarray of int64
        Index, in the input sequence, of the feature each pixel comes from.
    n_nodata : int
        Reference pixels left out because the raster is nodata there.
    n_outside : int
        Points (of Point/MultiPoint features) outside the raster.
    n_empty : int
        Features that gave no pixel at all (outside the raster, smaller than a
        pixel, or only nodata), of which ``n_empty_small`` cover no pixel centre inside the
        raster (smaller than a pixel, or on its edge) and ``n_empty_outside`` are polygons
        or lines wholly outside it (points outside are counted in ``n_outside``).
    n_skipped : int
        Features without a geometry or without a label (None, NaN, empty text).
    """

    def __new__(cls, values, labels, features, n_nodata=0, n_outside=0, n_empty=0, n_skipped=0, n_empty_small=0,
                n_empty_outside=0):
        self = super().__new__(cls, (values, labels, features))
        self.n_nodata, self.n_outside, self.n_empty, self.n_skipped = (
            int(n_nodata), int(n_outside), int(n_empty), int(n_skipped))
        self.n_empty_small, self.n_empty_outside = int(n_empty_small), int(n_empty_outside)
        return self

    @property
    def values(self):
        return self[0]

    @property
    def labels(self):
        return self[1]

    @property
    def features(self):
        return self[2]


def _missing_label(label):
    """True for None, NaN, pandas' NA and empty text: features without a reference class."""
    if label is None or type(label).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(label, (float, np.floating)) and not np.isfinite(label):
        return True
    return isinstance(label, str) and not label.strip()


def _check_band(path, band):
    """Raise :class:`OreMapError` unless ``band`` is a band of the class raster at ``path``."""
    from .raster import open_raster

    with open_raster(path, what="class raster") as ds:
        if not 1 <= band <= ds.count:
            raise OreMapError(f"Band {band} does not exist; the class raster has {ds.count}.", "raster",
                              "Choose band 1 of a class raster.")


def sample_reference(raster_path, geometries, classes, band=1, all_touched=False, nodata=None, feedback=None):
    """Pixels of a class raster under reference points and polygons.

    Parameters
    ----------
    raster_path : str
        Class raster (any GDAL raster; rotated geotransforms are fine).
    geometries : sequence of shapely geometries
        In the raster's CRS. A Point (or each point of a MultiPoint) gives the
        pixel containing it; a Polygon/MultiPolygon gives every pixel whose centre
        lies inside it (``all_touched=True``: every pixel it touches); a line gives
        the pixels GDAL burns along it. Only the geometry's bounding window of the
        raster is read. Pixels covered by two overlapping features are sampled for
        each of them.
    classes : sequence
        Reference class label (str or int) of each geometry.
    band : int
        1-based band of the class raster.
    all_touched : bool
        For polygons and lines: take all pixels touched instead of pixel centres.
    nodata : float, optional
        Extra value treated as nodata, besides the raster's own nodata value.

    Returns
    -------
    ReferenceSample
        ``(values, labels, features)`` arrays, one entry per reference pixel, plus
        counts of what was left out (nodata pixels, points outside, empty and
        skipped features).
    """
    from .raster import RasterSource
    from .sampling import pixels_under, read_covered

    feedback = ensure(feedback)
    geometries, classes = list(geometries), list(classes)
    if len(geometries) != len(classes):
        raise ValueError(f"{len(geometries)} geometries but {len(classes)} class labels.")
    skip = np.array([g is None or g.is_empty or _missing_label(c) for g, c in zip(geometries, classes)], bool)
    _check_band(raster_path, band)
    # the block engine's reader: source and user nodata and NaN masked, values as stored (scale 1)
    with RasterSource(raster_path, bands=[band], nodata=nodata, scale=1) as src:
        pixels = pixels_under(geometries, src.transform, src.width, src.height, all_touched=all_touched, skip=skip,
                              feedback=feedback)
        block_values, ok = read_covered(src.read, pixels)
    feats = pixels.index[ok]
    values = block_values[ok, 0].astype(np.int64) if ok.any() else np.zeros(0, np.int64)
    if feats.size:   # each feature's label once, then looked up per pixel (no Python list of every pixel)
        used, where = np.unique(feats, return_inverse=True)
        labels = _label_array([classes[i] for i in used])[where.ravel()]
    else:
        labels = np.zeros(0, np.int64)
    counts = _empty_counts(geometries, skip, np.bincount(pixels.index, minlength=len(geometries)),
                           np.bincount(feats, minlength=len(geometries)), src)
    return ReferenceSample(values, labels, feats, n_nodata=int((~ok).sum()), n_outside=pixels.n_outside, **counts)


def _empty_counts(geometries, skip, n_covered, n_valid, grid):
    """``n_empty``, ``n_skipped``, ``n_empty_small`` and ``n_empty_outside`` of :class:`ReferenceSample` from the
    pixels each feature covers (``n_covered``) and the valid ones among them (``n_valid``); ``grid`` has the
    raster's ``transform``, ``width`` and ``height``."""
    from .sampling import is_point, without_pixel_centre

    empty = ~skip & (n_valid == 0)
    # why a feature gave nothing: only nodata pixels (said with the pixels), outside the raster, or no pixel centre
    no_pixel = empty & (n_covered == 0)
    inside = np.zeros(len(geometries), bool)   # polygons and lines on the raster that cover no pixel centre
    inside[without_pixel_centre(geometries, np.flatnonzero(n_covered), grid.transform, grid.width,
                                grid.height)] = True
    inside &= ~skip
    point = np.array([g is not None and is_point(g) for g in geometries], bool)
    return {"n_empty": int(empty.sum()), "n_skipped": int(skip.sum()), "n_empty_small": int(inside.sum()),
            "n_empty_outside": int((no_pixel & ~inside & ~point).sum())}


REFERENCE_BYTES_PER_PIXEL = 64
"""Bytes per pixel of a window of :func:`tally_reference` at its peak, rounded up: the polygon's mask, the raw,
float32 and valid blocks of the read, the covered pixels' values, validity and feature index, their int64 codes
and pair keys."""

REFERENCE_SHARE = 0.25
"""Share of the memory budget one window of :func:`tally_reference` may take (GDAL's cache and the process's
other holdings need the rest)."""

REFERENCE_MASK_SHARE = 0.5
"""Share of the memory budget a polygon's mask, rasterised over its whole bounding window at once, may take while
GDAL burns it (2 bytes per pixel; 1 byte while its windows are read, beside one window)."""


def reference_window_pixels(memory_mb=None):
    """``(window, mask)``: pixels of the largest window :func:`tally_reference` reads under the memory budget
    ``memory_mb`` (MB; the run's budget by default), 2 million at the default 512 MB, and of the largest bounding
    window of a polygon or line it rasterises at once, 134 million at 512 MB (a Sentinel-2 tile); larger ones are
    rasterised window by window (:class:`~core.engine.sampling.CoveredStream`)."""
    from .raster import MB, memory_budget_mb

    budget = memory_budget_mb(memory_mb) * MB
    return (max(1 << 12, int(budget * REFERENCE_SHARE // REFERENCE_BYTES_PER_PIXEL)),
            max(1 << 12, int(budget * REFERENCE_MASK_SHARE // 2)))


class ReferenceTally:
    """Result of :func:`tally_reference`: the (reference code, map code) pairs counted, and what
    :class:`ReferenceSample` counts besides (``n_nodata``, ``n_outside``, ``n_empty``, ``n_skipped``,
    ``n_empty_small``, ``n_empty_outside``).

    Attributes
    ----------
    pairs : dict
        ``{(reference code, map code): pixels}``.
    used : ndarray of int64
        Indexes of the features that gave at least one pixel.
    n_samples : int
        Reference pixels counted.
    """

    def __init__(self, pairs, used, n_nodata=0, n_outside=0, n_empty=0, n_skipped=0, n_empty_small=0,
                 n_empty_outside=0):
        self.pairs, self.used = dict(pairs), np.asarray(used, np.int64)
        self.n_samples = int(sum(self.pairs.values()))
        self.n_nodata, self.n_outside, self.n_empty, self.n_skipped = (
            int(n_nodata), int(n_outside), int(n_empty), int(n_skipped))
        self.n_empty_small, self.n_empty_outside = int(n_empty_small), int(n_empty_outside)

    @property
    def classes(self):
        """The codes that occur in the reference or in the map, sorted (plain ints)."""
        return sorted({int(r) for r, _ in self.pairs} | {int(v) for _, v in self.pairs})

    def matrix(self, classes=None):
        """The confusion matrix (int64, rows = reference) over ``classes`` (:attr:`classes` by default); pairs of
        a code not among them are left out, as :func:`confusion_matrix` does."""
        classes = self.classes if classes is None else [int(c) for c in classes]
        at = {c: k for k, c in enumerate(classes)}
        cm = np.zeros((len(classes), len(classes)), np.int64)
        for (r, v), n in self.pairs.items():
            if r in at and v in at:
                cm[at[r], at[v]] += n
        return cm


def _count_pairs(pairs, reference, values):
    """Add the (reference, map) code pairs of one window to ``pairs`` ({(r, v): count})."""
    if reference.size == 0:
        return
    r_lo, v_lo = int(reference.min()), int(values.min())
    n_r, n_v = int(reference.max()) - r_lo + 1, int(values.max()) - v_lo + 1
    if n_r * n_v <= max(1 << 16, 4 * reference.size):   # codes of a few classes: one bincount over their span
        reference = reference - r_lo
        reference *= n_v
        reference += values
        reference -= v_lo
        counts = np.bincount(reference, minlength=n_r * n_v)
        found = np.flatnonzero(counts)
        keys = zip((found // n_v + r_lo).tolist(), (found % n_v + v_lo).tolist(), counts[found].tolist())
    else:   # codes far apart
        both, counts = np.unique(np.stack([reference, values]), axis=1, return_counts=True)
        keys = zip(both[0].tolist(), both[1].tolist(), counts.tolist())
    for r, v, n in keys:
        pairs[(r, v)] = pairs.get((r, v), 0) + n


def tally_reference(raster_path, geometries, codes, band=1, all_touched=False, nodata=None, feedback=None,
                    memory_mb=None, max_window_pixels=None):
    """Count (reference code, map code) pairs of a class raster under reference points and polygons, window by
    window.

    The pixels are those of :func:`sample_reference` (a point's pixel, a polygon's pixel centres or touched
    pixels, a pixel under two features once for each, nodata left out), read by
    :class:`~core.engine.sampling.CoveredStream` in windows of at most ``max_window_pixels``
    (:func:`reference_window_pixels` of the memory budget ``memory_mb`` by default; when given, it bounds the
    polygons' masks too): memory stays within the window and mask however many pixels the features cover. Each
    feature's code is looked up per pixel from an array of the features' codes, and each window's pairs counted
    with one bincount.

    Parameters
    ----------
    codes : sequence
        The class code (int) each geometry's pixels count as in the reference, None to leave it out.
    Others as :func:`sample_reference`.

    Returns
    -------
    ReferenceTally
    """
    from .raster import RasterSource
    from .sampling import CoveredStream

    feedback = ensure(feedback)
    geometries, codes = list(geometries), list(codes)
    if len(geometries) != len(codes):
        raise ValueError(f"{len(geometries)} geometries but {len(codes)} class labels.")
    skip = np.array([g is None or g.is_empty or _missing_label(c) for g, c in zip(geometries, codes)], bool)
    code_of = np.zeros(len(codes), np.int64)
    for i in np.flatnonzero(~skip):
        code_of[i] = int(codes[i])
    window_pixels, mask_pixels = reference_window_pixels(memory_mb)
    if max_window_pixels:
        window_pixels = mask_pixels = int(max_window_pixels)
    _check_band(raster_path, band)
    pairs = {}
    # the block engine's reader: source and user nodata and NaN masked, values as stored (scale 1)
    with RasterSource(raster_path, bands=[band], nodata=nodata, scale=1) as src:
        stream = CoveredStream(geometries, src.transform, src.width, src.height, all_touched=all_touched, skip=skip,
                               max_window_pixels=window_pixels, max_mask_pixels=mask_pixels)
        for features, values, valid in stream.blocks(src.read, feedback):
            features = features[valid]
            map_codes = values[valid, 0].astype(np.int64)
            del values, valid
            _count_pairs(pairs, code_of[features], map_codes)
        counts = _empty_counts(geometries, skip, stream.n_covered, stream.n_valid, src)
    n_nodata = int((stream.n_covered - stream.n_valid).sum())
    return ReferenceTally(pairs, np.flatnonzero(stream.n_valid), n_nodata=n_nodata, n_outside=stream.n_outside,
                          **counts)


# --------------------------------------------------------------------------------------
# Legends and class matching
# --------------------------------------------------------------------------------------
def _first_word(name):
    words = re.split(r"[\s,;()]+", name_key(name).strip(" ,;()"))
    return words[0] if words else ""


def _as_code(label):
    """An integer class code from an int, an integral float or a text like "3" or "3.0"; else None."""
    if isinstance(label, (bool, np.bool_)):
        return None
    if isinstance(label, (int, np.integer)):
        return int(label)
    if isinstance(label, (float, np.floating)):
        return int(label) if np.isfinite(label) and float(label).is_integer() else None
    if isinstance(label, str) and re.fullmatch(r"\s*[+-]?\d+(\.0*)?\s*", label):
        return int(float(label))
    return None


def _legend_pairs(legend):
    """[(code, name)] from a legend list of dicts, a {code: name} mapping or (code, name) pairs."""
    if isinstance(legend, dict):
        items = legend.items()
    else:
        items = [(e["value"], e.get("name", str(e["value"]))) if isinstance(e, dict) else tuple(e) for e in legend]
    return [(int(code), str(name)) for code, name in items]


def _match_name(label, pairs):
    """``(code, [])`` when ``label`` is the name of one legend class, else ``(None, candidate names)``.

    A label that reads as a number matches only a name with the same value ("3" and 3.0 find "3", never
    "13" or "Na03"). Text labels follow the rules of the *Spectra* parameter
    (:func:`core.engine.names.match_name`: exact, ignoring case and spaces, a unique start, a unique
    part of a name), then a legend name's first word.
    """
    value = numeric_value(label)
    if value is not None:
        hits = [code for code, name in pairs if numeric_value(name) == value]
        if len(hits) == 1:
            return hits[0], []
        return None, [name for code, name in pairs if code in hits]
    if not isinstance(label, str):
        return None, []
    names = [name for _, name in pairs]
    index, candidates = match_name(label, names)
    if index is not None:
        return pairs[index][0], []
    key = name_key(label)
    first = sorted({code for code, name in pairs if key and _first_word(name) == key})
    if len(first) == 1:
        return first[0], []
    return None, [names[i] for i in candidates] or [name for code, name in pairs if code in first]


class ClassMatch(tuple):
    """Result of :func:`match_classes`: unpacks as ``(mapping, unmatched, ambiguous)``.

    Attributes
    ----------
    rule : str
        ``"names"``: every label was matched to the legend's class names; ``"codes"``: the labels that
        read as integers were taken as class codes, because none of them is a class name and some are
        codes of the legend.
    n_code_only : int
        Labels that read as integers, are not class names but are class codes. Under the name rule they
        stay unmatched (and are counted here so the log can say so).
    """

    def __new__(cls, mapping, unmatched, ambiguous, rule="names", n_code_only=0):
        self = super().__new__(cls, (mapping, unmatched, ambiguous))
        self.rule, self.n_code_only = rule, int(n_code_only)
        return self

    @property
    def mapping(self):
        return self[0]

    @property
    def unmatched(self):
        return self[1]

    @property
    def ambiguous(self):
        return self[2]


def match_classes(raster_legend, reference_labels):
    """Map reference class labels to the class codes of a raster: by name first, always.

    Every label is first matched to the legend's class **names** as text: text labels as the
    *Spectra* parameter matches library names (exactly, ignoring case and repeated white space, by a
    unique start or a unique part: ``"Kaolinite CM9"`` finds ``"Kaolinite CM9 BECKb AREF"``), failing
    that the first word of a legend name when exactly one name has it; labels that read as numbers
    (``3``, ``3.0``, ``"3"``) match the name with that value (``"3"``; never ``"13"``). A model trained
    on a ``label_id`` field holding 0-11 has the names "0" ... "11" at the codes 1-12, so the
    reference value 0 is the class *named* "0" (code 1).

    Only when **none** of the integer labels is a class name, and some of them are codes of the legend
    (a plain class raster whose classes are "Class 1", "Class 2", ..., or codes given for named
    classes), are integer labels taken as class **codes** (``rule == "codes"``). Text labels are always
    matched by name. A legend read from the codes a plain raster holds (entries marked ``observed``,
    :func:`legend_from_raster`) lacks the classes the map never gives: under the codes rule every
    non-negative integer label is then a class, and its reference pixels count as omission errors.

    Parameters
    ----------
    raster_legend : list of dict or dict
        ``[{"value": code, "name": name, ...}, ...]`` as returned by
        :func:`legend_from_raster`, or ``{code: name}``.
    reference_labels : iterable
        Reference labels; repeats are allowed.

    Returns
    -------
    ClassMatch
        ``(mapping, unmatched, ambiguous)``: ``{reference label: raster code}`` for each label that
        matched; the labels that matched nothing, or several classes ambiguously, in order of first
        appearance; ``{label: [candidate class names]}`` for the ambiguous ones. ``rule`` and
        ``n_code_only`` say which rule applied (see :class:`ClassMatch`).
    """
    pairs = _legend_pairs(raster_legend)
    codes = {code for code, _ in pairs}
    observed = isinstance(raster_legend, list) and bool(raster_legend) and all(
        isinstance(e, dict) and e.get("observed") for e in raster_legend)
    labels, seen = [], set()
    for label in reference_labels:
        label = _py(label)
        if _missing_label(label) or label in seen:
            continue
        seen.add(label)
        labels.append(label)
    by_name = {label: _match_name(label, pairs) for label in labels}
    integers = [label for label in labels if _as_code(label) is not None]
    named_integers = [label for label in integers if by_name[label][0] is not None]
    code_only = [label for label in integers if by_name[label][0] is None and _as_code(label) in codes]
    rule = "codes" if code_only and not named_integers else "names"
    mapping, unmatched, ambiguous = {}, [], {}
    for label in labels:
        if rule == "codes" and label in integers:
            known = _as_code(label) in codes or (observed and _as_code(label) >= 0)
            code, candidates = (_as_code(label), []) if known else (None, [])
        else:
            code, candidates = by_name[label]
        if code is None:
            unmatched.append(label)
            if candidates:
                ambiguous[label] = candidates
        else:
            mapping[label] = code
    return ClassMatch(mapping, unmatched, ambiguous, rule=rule, n_code_only=0 if rule == "codes" else len(code_only))


def legend_from_raster(path, band=1):
    """The class legend of a class raster: list of ``{"value", "name", "color"}`` dicts.

    Read from the ``OREMAP_CLASSES`` metadata tag OreMap writes. For other class
    rasters the codes are the distinct values of the band (read strip by strip,
    nodata excluded), named ``"Class <code>"``, with colours from the GDAL colour
    table when there is one (else ``None``).
    """
    from rasterio.windows import Window

    from .raster import open_raster, read_window

    _check_band(path, band)
    with open_raster(path, what="class raster") as ds:
        tag = ds.tags().get("OREMAP_CLASSES")
        if tag:
            try:
                entries = json.loads(tag)
                return [{"value": int(e["value"]), "name": str(e["name"]), "color": e.get("color")}
                        for e in entries]
            except (ValueError, TypeError, KeyError):
                pass
        try:
            colormap = ds.colormap(band)
        except ValueError:
            colormap = None
        legacy = ds.tags().get("oremap_classes")
        if legacy:   # dominant-mineral rasters of OreMap 0.2.1-0.2.4: names of codes 1..n, ';'-separated
            names = [name.strip() for name in legacy.split(";")]
            return [{"value": code, "name": name, "color": hex_colour(colormap[code]) if colormap and code in colormap
                     else None}
                    for code, name in enumerate(names, start=1) if name]
        floating = not np.issubdtype(np.dtype(ds.dtypes[band - 1]), np.integer)
        nodata = ds.nodatavals[band - 1]
        rows = max(1, (1 << 22) // max(ds.width, 1))
        codes = set()
        for r in range(0, ds.height, rows):
            block = read_window(ds, band, Window(0, r, ds.width, min(rows, ds.height - r)), what="class raster")
            if floating:   # whole numbers in a float type (QGIS's Reclassify writes Float32) are class codes
                block = block[np.isfinite(block) & (block != nodata)] if nodata is not None else \
                    block[np.isfinite(block)]
                fraction = block[block != np.round(block)]
                if fraction.size:
                    raise OreMapError(f"'{path}' is not a class raster: its values are not whole numbers (e.g. "
                                      f"{float(fraction[0]):g}).", "raster",
                                      "Choose a class raster, e.g. the output of SAM classification.")
            codes.update(np.unique(block).tolist())
        codes.discard(nodata)
    codes = {int(c) for c in codes}
    names = file_class_names(path, band)
    return [{"value": c, "name": names.get(c) or f"Class {c}",
             "color": hex_colour(colormap[c]) if colormap and c in colormap else None, "observed": True}
            for c in sorted(codes)]


#: Columns of a GDAL raster attribute table that hold a class's name, lower case (besides a column of usage Name).
RAT_NAME_COLUMNS = ("class_name", "classname", "class", "name", "label", "class_names", "category")


def file_class_names(path, band=1):
    """``{code: name}`` the class raster file itself gives: a GDAL raster attribute table (a name column, with a
    ``Value`` column or row = code), else GDAL's category names (an ENVI classification's ``class names``, a GeoTIFF's
    .aux.xml). Empty when it gives none."""
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    if dataset is None:
        return {}
    source = dataset.GetRasterBand(band)
    names = {}
    rat = source.GetDefaultRAT()
    if rat is not None and rat.GetRowCount():
        columns = [(rat.GetNameOfCol(i).strip().lower(), rat.GetUsageOfCol(i)) for i in range(rat.GetColumnCount())]
        name_col = next((i for i, (n, u) in enumerate(columns) if u == gdal.GFU_Name), None)
        if name_col is None:
            name_col = next((i for i, (n, _) in enumerate(columns) if n in RAT_NAME_COLUMNS), None)
        value_col = next((i for i, (n, u) in enumerate(columns)
                          if u in (gdal.GFU_MinMax, gdal.GFU_Min) or n == "value"), None)
        if name_col is not None:
            for row in range(rat.GetRowCount()):
                code = int(rat.GetValueAsDouble(row, value_col)) if value_col is not None else row
                name = rat.GetValueAsString(row, name_col).strip()
                if name:
                    names[code] = name
    if not names:
        names = {code: name.strip() for code, name in enumerate(source.GetCategoryNames() or []) if name.strip()}
    return names


# --------------------------------------------------------------------------------------
# The whole assessment
# --------------------------------------------------------------------------------------
def assess_class_raster(raster_path, geometries, labels, band=1, all_touched=False, nodata=None, feedback=None):
    """Assess a class raster against reference geometries with class labels.

    Reference labels are matched to the raster's legend (:func:`match_classes`);
    features whose label matches nothing are left out and listed. Pixels are
    counted with :func:`tally_reference` (the pixels of :func:`sample_reference`,
    read window by window under the memory budget). The classes of the matrix are the codes
    that occur in the reference or in the map (including Unclassified, 0, when
    reference pixels were left unclassified: they count as errors).

    Parameters
    ----------
    raster_path : str
    geometries : sequence of shapely geometries, in the raster's CRS
    labels : sequence of str or int, one per geometry
    band, all_touched, nodata :
        See :func:`sample_reference`.

    Returns
    -------
    dict
        :func:`summary` plus ``raster``, ``n_features``, ``n_features_used``,
        ``n_nodata``, ``n_outside``, ``n_empty``, ``n_skipped`` (features without
        geometry or label), ``n_unmatched_features``, ``unmatched_labels`` and
        ``class_mapping`` ({reference label: map class
        name}, only where the two differ).
    """
    feedback = ensure(feedback)
    geometries, labels = list(geometries), [_py(v) for v in labels]
    if len(geometries) != len(labels):
        raise ValueError(f"{len(geometries)} geometries but {len(labels)} class labels.")
    legend = legend_from_raster(raster_path, band=band)
    names = {e["value"]: e["name"] for e in legend}
    matched = match_classes(legend, labels)
    mapping, unmatched, ambiguous = matched
    feedback.info(_rule_message(matched, labels))
    if unmatched:
        feedback.warning("Reference classes not found in the class raster's legend, left out: "
                         + ", ".join(repr(v) + (f" (could be {' or '.join(ambiguous[v][:4])})" if v in ambiguous
                                                else "") for v in unmatched) + ".")
    if not mapping:
        raise OreMapError(
            "None of the reference classes matches a class of the class raster.", "reference_field",
            "Choose the field holding the class names used in the class raster (e.g. 'Kaolinite') "
            "or its class codes. Raster classes: " + ", ".join(names[c] for c in sorted(names)) + ".")
    codes = [mapping.get(v) if not _missing_label(v) else None for v in labels]
    sample = tally_reference(raster_path, geometries, codes, band=band, all_touched=all_touched, nodata=nodata,
                             feedback=feedback)
    if sample.n_samples == 0:
        if sample.n_empty_small and not (sample.n_nodata or sample.n_outside or sample.n_empty_outside):
            raise OreMapError(
                f"No reference pixel: the {sample.n_empty_small} reference polygons or lines lie on the class raster "
                "but cover no pixel centre (they are smaller than a pixel).", "reference",
                "Use points (Vector > Geometry Tools > Centroids) or polygons larger than the raster's pixels.")
        raise OreMapError("No reference pixel falls on valid pixels of the class raster.", "reference",
                          "Check that the reference layer overlaps the class raster (same area, CRS).")
    classes = sample.classes
    result = _matrix_summary(sample.matrix(classes), classes, [names.get(c, f"Class {c}") for c in classes])
    no_geometry = [g is None or g.is_empty or _missing_label(v) for g, v in zip(geometries, labels)]
    result.update({
        "raster": str(raster_path),
        "n_features": len(labels),
        "n_features_used": len(labels) - sample.n_skipped - sample.n_empty,
        "n_nodata": sample.n_nodata, "n_outside": sample.n_outside, "n_empty": sample.n_empty,
        "n_empty_small": sample.n_empty_small, "n_empty_outside": sample.n_empty_outside,
        "n_skipped": int(sum(no_geometry)),
        "n_unmatched_features": int(sum(1 for skip, v in zip(no_geometry, labels) if not skip and v not in mapping)),
        "unmatched_labels": unmatched,
        "class_mapping": {str(k): names.get(v, f"Class {v}") for k, v in mapping.items()
                          if str(k) != names.get(v, f"Class {v}")},
    })
    result["match_rule"] = matched.rule
    feedback.info(f"{result['n_samples']} reference pixels from {result['n_features_used']} features: "
                  f"overall accuracy {result['overall_accuracy']:.3f}, kappa {result['kappa']:.3f}.")
    for note in _sampling_notes({k: result[k] for k in ("n_nodata", "n_outside", "n_empty_outside", "n_empty_small")}):
        feedback.info(note)   # what the report says of the features that gave no pixel
    _log_lost_features(sample.used, codes, no_geometry, names, feedback)
    labelled = result["n_features"] - result["n_skipped"]
    validation = read_validation(raster_path)
    result["guard_warnings"] = check_evaluation(
        "reference features with a class", labelled, result["n_features_used"],
        f"{result['n_unmatched_features']} of them have a class that matches no class of the raster, "
        f"{result['n_empty']} cover no valid pixel of it. Check that the class field is the one the map was made "
        "from (names, or codes of a plain class raster) and that the layer overlaps the raster.",
        result["overall_accuracy"], "overall accuracy", validation["value"] if validation else None,
        "the reference classes may be matched to the wrong map classes (see which rule the log names and the "
        "class mapping in the report), or the reference data differ from the training data (another area, "
        "sensor, scale or preprocessing).", feedback)
    return result


def _log_lost_features(used, codes, no_geometry, names, feedback):
    """Warn of a reference class that lost most of its features (its figures then rest on a few of them);
    ``used``: the indexes of the features that gave a pixel."""
    used = set(int(i) for i in used)
    counts = {}
    for i, code in enumerate(codes):
        if code is None or no_geometry[i]:
            continue
        total, kept = counts.get(code, (0, 0))
        counts[code] = (total + 1, kept + (i in used))
    lost = [f"{names.get(c, f'Class {c}')} {kept} of {total}" for c, (total, kept) in sorted(counts.items())
            if total >= 2 and kept < total / 2]
    if lost:
        feedback.warning("Most reference features of some classes gave no pixel, so their figures rest on the "
                         "few left: " + ", ".join(lost) + " features used. A feature gives no pixel when it covers no pixel "
                         "centre (a polygon under a pixel across), lies outside the raster or only on its nodata.")


def _rule_message(matched, labels):
    """The log line saying how reference labels were matched to the legend."""
    n_features = sum(1 for v in labels if not _missing_label(v))
    n_unmatched = sum(1 for v in labels if not _missing_label(v) and v not in matched.mapping)
    if matched.rule == "codes":
        text = ("Reference classes matched to the class raster by class code: the class field holds integers "
                "that are codes of the raster but none of its class names")
    else:
        text = "Reference classes matched to the class raster's legend by class name"
        if matched.n_code_only:
            text += (f" ({matched.n_code_only} integer values of the class field are class codes but not class "
                     "names; they are not read as codes because other values of the field are class names)")
    return f"{text}; {n_unmatched} of {n_features} reference features matched no class."
