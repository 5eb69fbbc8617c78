"""Element selection: which elements separate deposit samples from background samples, by the
z-score of each element's AUC (from points or from an element raster), with its HTML report and
CSV table.
"""

import csv
import io

import numpy as np

from ..engine import report
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .evaluation_report import _csv_value
from .prospectivity_eval import (DEFAULT_ZAUC_THRESHOLD, MIN_POSITIVES, _auc, _split, auc_standard_error, null_z,
                                 sample_raster_by_distance, zauc)


def element_selection(values, names, labels, threshold=DEFAULT_ZAUC_THRESHOLD, two_sided=False):
    """Rank elements by how well their values separate positives from negatives (AUC, ZAUC).

    Parameters
    ----------
    values : array (n, m)
        One column per element; NaN values are left out of that element only. An
        element with fewer than 2 positive or 2 negative values gets NaN.
    names : sequence of m str
    labels : array (n,)
        1 positive, 0 negative, anything else left out.
    threshold : float
        ZAUC needed for selection (2.58: 1 % two-sided); the z of the rank test of no
        association (:func:`~core.geochemistry.prospectivity_eval.null_z`) must reach it too.
    two_sided : bool
        False (default): only elements with high values near deposits (AUC > 0.5,
        ZAUC >= threshold) are selected and rows are sorted by ZAUC, highest first;
        elements with AUC < 0.5 are reported as negatively associated. True: also
        select those with ZAUC <= -threshold, rows sorted by |ZAUC|.

    Returns
    -------
    list of dict
        ``element``, ``auc``, ``se``, ``zauc``, ``z_null``, ``selected``, ``direction``
        (``"positive"``, ``"negative"`` or ``"none"``), ``n_pos``, ``n_neg``.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    names = [str(n) for n in names]
    labels = np.asarray(labels).ravel()
    if values.shape != (labels.size, len(names)):
        raise ValueError(f"values is {values.shape}, but there are {labels.size} labels and {len(names)} names.")
    rows = []
    for j, name in enumerate(names):
        pos, neg = _split(values[:, j], labels)
        a = _auc(pos, neg) if pos.size >= MIN_POSITIVES and neg.size >= 2 else float("nan")
        se = auc_standard_error(a, pos.size, neg.size) if np.isfinite(a) else float("nan")
        z = zauc(a, pos.size, neg.size) if np.isfinite(a) else float("nan")
        z0 = null_z(a, pos.size, neg.size) if np.isfinite(a) else float("nan")
        direction = "none" if not np.isfinite(a) or a == 0.5 else ("positive" if a > 0.5 else "negative")
        # both the ZAUC and the rank test of no association must pass: the ZAUC of a perfect split is infinite
        # however few the samples (2 against 2 values were selected first, above a real signal)
        selected = bool(not np.isnan(z) and ((min(z, z0) >= threshold) or (two_sided and max(z, z0) <= -threshold)))
        rows.append({"element": name, "auc": a, "se": se, "zauc": z, "z_null": z0, "selected": selected,
                     "direction": direction, "n_pos": int(pos.size), "n_neg": int(neg.size)})

    def key(row):
        z = row["zauc"]
        if np.isnan(z):
            return (1, 0.0)
        return (0, -abs(z) if two_sided else -z)

    return sorted(rows, key=key)


def select_elements(values, names, labels, below="half", missing=-9999.0, transform="none",
                    threshold=DEFAULT_ZAUC_THRESHOLD, two_sided=False, zeros=None):
    """Missing codes, values below detection and zeros (:func:`core.geochemistry.geochem.below_detection`), a transform,
    then :func:`element_selection`.

    ``below``: how values below detection (stored as minus the limit) are replaced
    (``"half"``, ``"limit"``, ``"nan"``, ``"drop"``; None: the values are not survey
    records, e.g. gridded log-concentrations whose negative values are real, and are
    used as they are with ``missing`` and ``zeros`` ignored); ``missing``: the missing-value
    code; ``zeros``: how exact zeros are read (``"missing"``, ``"half_min"``, ``"keep"``;
    default :data:`core.geochemistry.geochem.DEFAULT_ZEROS`, missing: survey compilations use 0 for
    "not analysed"). ``transform``: ``"none"``, ``"log10"`` or ``"clr"``. AUC depends
    only on the order of an element's values, so log10 gives the same AUCs as none
    except that values still zero or negative (log undefined) are left out; clr
    (log-ratios to the sample's geometric mean over the chosen elements) does change them.

    Returns ``(rows, notes)``: the rows of :func:`element_selection` and lines for the
    log and the report.
    """
    from . import geochem

    zeros = geochem.DEFAULT_ZEROS if zeros is None else zeros
    names = [str(n) for n in names]
    labels = np.asarray(labels).ravel()
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    if n_pos < MIN_POSITIVES:
        raise OreMapError(f"Only {n_pos} sample(s) lie within the positive radius of a deposit; at least "
                          f"{MIN_POSITIVES} are needed.", "deposits",
                          "Check that the deposits lie in the sampled area (same CRS), or enlarge the positive radius.")
    if n_neg < 2:
        raise OreMapError(f"Only {n_neg} sample(s) lie far enough from every deposit to be negatives.",
                          "negative_min_distance", "Lower the negative minimum distance.")
    if below is None:  # values that are not survey records (e.g. gridded log-concentrations): as they are
        X, notes = np.array(values, dtype=float), []
        if X.ndim == 1:
            X = X[:, None]
    else:
        X, counts = geochem.below_detection(values, mode=below, missing=missing, zeros=zeros)
        notes = geochem.value_notes(names, counts, below, zeros, per_column=False)
    if transform == "log10":
        bad = np.isfinite(X) & (X <= 0)
        if bad.any():
            worst = np.argsort(-bad.sum(axis=0))[:5]
            notes.append(f"log10: {int(bad.sum())} values that are zero or negative were left out ("
                         + ", ".join(f"{names[j]}: {int(bad[:, j].sum())}" for j in worst if bad[:, j].any())
                         + ").")
            X[bad] = np.nan
    X = geochem.transform(X, transform, names=names)
    if transform == "clr":
        incomplete = int((~np.isfinite(X).all(axis=1)).sum())
        if incomplete:
            notes.append(f"clr: {incomplete} samples with a missing element have no log-ratios and were left out.")
    rows = element_selection(X, names, labels, threshold=threshold, two_sided=two_sided)
    return rows, notes + held_back_notes(rows, threshold, two_sided)


def held_back_notes(rows, threshold=DEFAULT_ZAUC_THRESHOLD, two_sided=False):
    """A line for each element whose ZAUC reaches ``threshold`` while the rank test of no association does not."""
    notes = []
    for r in rows:
        if not r["selected"] and (r["zauc"] >= threshold or (two_sided and r["zauc"] <= -threshold)):
            notes.append(f"{r['element']}: ZAUC {r['zauc']:.2f} reaches {threshold:g}, but with {r['n_pos']} values "
                         f"near deposits and {r['n_neg']} far from them the rank test of no association gives only "
                         f"z = {r['z_null']:.2f}: not selected (a perfect split of a few samples has an infinite "
                         "ZAUC).")
    return notes


def select_elements_points(values, names, x, y, deposits_xy, positive_radius, negative_min_distance, feedback=None,
                           sample_ids=False, **options):
    """:func:`select_elements` on survey samples at ``x``, ``y`` (metres), labelled by their distance to the
    deposits (:func:`core.geochemistry.prospectivity_eval.label_by_distance`).

    A record that a compilation repeats (the same place and values, e.g. one campaign reported twice: 526 of the
    1,392 rows of the GSWA area1 extract) counts once: counted twice it shrinks the AUC's standard error, so
    raises |ZAUC| (two elements passed 2.58 only through the copies there). Distances that leave too few
    positives or negatives are refused with values that would work
    (:func:`core.geochemistry.distance_advice.check_distances`). ``sample_ids``: reports of one sample were
    combined by their sample id (:func:`core.geochemistry.anomaly_methods.shared_places_note`). ``options`` go to
    :func:`select_elements`.
    Returns ``(rows, notes, labels)``, ``labels`` those of the distinct records.
    """
    from .anomaly_methods import distinct_records, shared_places_note
    from .distance_advice import check_distances
    from .prospectivity_eval import deposit_array, label_by_distance

    feedback = ensure(feedback)
    values = np.asarray(values, dtype=float).reshape(len(x), -1)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    first = np.sort(distinct_records(values, x, y)[0])   # in the layer's order: nothing here depends on it
    if first.size < x.size:
        feedback.info(f"{x.size - first.size} of {x.size} samples repeat another record (same place and values): "
                      f"each record counts once ({first.size} samples).")
        values, x, y = values[first], x[first], y[first]
    note = shared_places_note(x, y, sample_ids)
    if note:
        feedback.info(note)
    dep = deposit_array(deposits_xy)
    check_distances(x, y, dep, positive_radius, negative_min_distance, MIN_POSITIVES, 2)
    labels = label_by_distance(x, y, dep[:, 0], dep[:, 1], positive_radius, negative_min_distance)
    unplaced = int((~(np.isfinite(x) & np.isfinite(y))).sum())
    feedback.info(f"{int((labels == 1).sum())} positive samples, {int((labels == 0).sum())} negative samples, "
                  f"{int((labels == -1).sum()) - unplaced} left out between the two distances"
                  + (f", {unplaced} without a place" if unplaced else "") + ".")
    rows, notes = select_elements(values, names, labels, **options)
    return rows, notes, labels


def select_elements_raster(path, deposits_xy, positive_radius, negative_min_distance, bands=None, seed=0,
                           max_negatives=None, feedback=None, memory_mb=None, **options):
    """:func:`select_elements` on a raster stack (one band per element, band descriptions as names).

    Positives are all valid pixels within ``positive_radius`` of a deposit, negatives a
    uniform random sample (at most ``max_negatives``, default 200,000) of the pixels at
    least ``negative_min_distance`` from every deposit (:func:`sample_raster_by_distance`);
    ``options`` go to :func:`select_elements`. Raster values are used as they are (nodata
    left out): the survey-table conventions (negative = below detection, the missing
    code, zeros) are not applied, since a gridded log-concentration is negative where the
    concentration is below 1 (``below``, ``missing`` and ``zeros`` in ``options`` are
    ignored). Returns ``(rows, notes, scan)``.
    """
    feedback = ensure(feedback)
    from ..engine.raster import band_descriptions

    names = band_descriptions(path)
    if bands is not None:
        names = [names[b - 1] for b in bands]
    scan = sample_raster_by_distance(path, deposits_xy, positive_radius, negative_min_distance, bands=bands,
                                     seed=seed, max_negatives=max_negatives or 200_000, feedback=feedback,
                                     memory_mb=memory_mb)
    if scan["n_positive"] < MIN_POSITIVES:
        raise OreMapError(f"{scan['n_positive']} valid pixel(s) lie within {positive_radius:g} m of a deposit; at least "
                          f"{MIN_POSITIVES} are needed.", "deposits",
                          "Check that the deposits overlap the raster (same area, CRS), or enlarge the positive "
                          "radius.")
    if scan["negatives"].shape[0] < 2:
        raise OreMapError("Fewer than 2 pixels lie far enough from every deposit.", "negative_min_distance",
                          "Lower the negative minimum distance.")
    values = np.concatenate([scan["positives"], scan["negatives"]])
    labels = np.r_[np.ones(scan["n_positive"], np.int8), np.zeros(scan["negatives"].shape[0], np.int8)]
    options = {k: v for k, v in options.items() if k not in ("below", "missing", "zeros")}
    rows, notes = select_elements(values, names, labels, below=None, **options)
    if scan["negatives"].shape[0] < scan["n_negative_candidates"]:
        notes.insert(0, f"Negatives: a random sample of {scan['negatives'].shape[0]} of the "
                        f"{scan['n_negative_candidates']} pixels far enough from every deposit.")
    return rows, notes, scan


def element_selection_sections(rows, threshold=DEFAULT_ZAUC_THRESHOLD, notes=(), prefix=""):
    """Report sections of :func:`element_selection` rows: selected elements, the table, ZAUC bars."""
    selected = [r["element"] for r in rows if r["selected"]]
    text = (f"{len(selected)} of {len(rows)} elements have ZAUC at or beyond {threshold:g}: "
            + (", ".join(selected) if selected else "none") + ".")
    summary = report.paragraph(text) + "".join("\n" + report.paragraph(n) for n in notes) + "\n" + report.paragraph(
        "AUC is the probability that a positive sample has a higher value than a negative one; ZAUC = (AUC - 0.5) / "
        "SE with the Hanley & McNeil (1982) standard error. An element is selected when its ZAUC and the z of the "
        "rank test of no association (Mann-Whitney; its standard error is Hanley & McNeil's at AUC 0.5) both reach "
        "the threshold. Elements with AUC below 0.5 are lower near deposits (negatively associated). Neighbouring "
        "samples (and cells of a grid) are not independent, so ZAUC overstates significance, and on a grid it grows "
        "with finer cells: use it to rank elements.", "note")
    def z_cell(z):
        return ("+\u221e" if z > 0 else "\u2212\u221e") if np.isinf(z) else z

    table = report.html_table(
        ["Element", "AUC", "SE", "ZAUC", "Rank test z", "Selected", "Direction", "Positives", "Negatives"],
        [[r["element"], r["auc"], r["se"], z_cell(r["zauc"]), r["z_null"], r["selected"], r["direction"], r["n_pos"],
          r["n_neg"]] for r in rows])
    sections = [("Selected elements", summary), ("AUC and ZAUC per element", table)]
    shown = [r for r in rows if not np.isnan(r["zauc"])]
    if len(shown) > 40:  # the strongest at both ends (rows are sorted by ZAUC, or by |ZAUC| when two-sided)
        by_z = all(a["zauc"] >= b["zauc"] for a, b in zip(shown, shown[1:]))
        shown = shown[:25] + shown[-15:] if by_z else shown[:40]
    if shown:
        # a perfect separator (AUC 0 or 1: ZAUC infinite, the strongest element) is drawn at a cap beyond the
        # largest finite bar and the threshold, and named so
        cap = 1.25 * max([abs(r["zauc"]) for r in shown if np.isfinite(r["zauc"])] + [abs(threshold), 1.0])
        infinite = [not np.isfinite(r["zauc"]) for r in shown]
        labels = [r["element"] + ((" (+\u221e)" if r["zauc"] > 0 else " (\u2212\u221e)") if inf else "")
                  for r, inf in zip(shown, infinite)]
        values = [float(np.sign(r["zauc"]) * cap) if inf else r["zauc"] for r, inf in zip(shown, infinite)]
        title = f"ZAUC per element (selection at {threshold:g})" + (
            f"; infinite ZAUC (perfect separation) drawn at {cap:.3g}" if any(infinite) else "")
        bars = report.svg_bar_chart(labels, [values], ["ZAUC"], title, "ZAUC", colours=["#1f78b4"])
        sections.append(("ZAUC", bars))
    return [(prefix + h, f) for h, f in sections]


def element_selection_report(rows, title, threshold=DEFAULT_ZAUC_THRESHOLD, notes=(), subtitle=None):
    """A standalone HTML document of :func:`element_selection_sections`."""
    return report.html_report(title, element_selection_sections(rows, threshold, notes), subtitle=subtitle)


def write_element_selection_csv(rows, path, parameter="table"):
    """Write :func:`element_selection` rows as CSV (UTF-8 with BOM), atomically. Returns ``path``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["element", "auc", "se", "zauc", "z_null", "selected", "direction", "n_pos", "n_neg"])
    for r in rows:
        w.writerow([r["element"]] + [_csv_value(r[k]) for k in ("auc", "se", "zauc", "z_null", "selected")]
                   + [r["direction"], r["n_pos"], r["n_neg"]])
    return report.write_text_atomic(path, buf.getvalue(), parameter=parameter, encoding="utf-8-sig")


def write_element_selection_outputs(rows, title, html_path, csv_path=None, threshold=DEFAULT_ZAUC_THRESHOLD, notes=(),
                                    subtitle=None):
    """Write the HTML report and, if ``csv_path``, the CSV table. Errors name ``"report"`` / ``"table"``."""
    report.write_report(html_path, element_selection_report(rows, title, threshold, notes, subtitle),
                        parameter="report")
    if csv_path:
        write_element_selection_csv(rows, csv_path, parameter="table")
    return html_path, (csv_path or None)
