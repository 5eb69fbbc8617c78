"""Shared by the geochemistry algorithms: read sample points and choose their element fields (survey hygiene).

Not an algorithm: helpers around :mod:`core.geochemistry.survey_hygiene` for QGIS feature sources.
"""

import numpy as np

from ..core.geochemistry import survey_hygiene as sh
from .base import assay_number, column_reader, require_fields, text_numbers

COVERAGE_HELP = ("Without chosen element fields: an element enters the default set when it is measured in at least "
                 "this percentage of the samples (not missing, not a 0 read as 'not analysed'; a value below "
                 "detection counts as measured). Survey compilations hold ~120 columns, most measured in few "
                 "samples; the log lists what was left out and why. 0 keeps every element.")
FIELDS_HELP = ("Element fields. Empty: the survey's elements, recognised by the unit anywhere in the field name "
               "(_ppm, _ppb, _pct, e.g. Cu_ppm_511) or a bare element symbol (AU, Cu; ppm assumed); coordinates "
               "(x, y, lat, lon, easting, northing and truncations such as Northing_k), ids and fields equal to the "
               "point geometry are never elements; an oxide field (ZnO_ppm) is merged into its element (Zn_ppm) or, "
               "without one, converted to it; only elements measured in enough samples are kept (coverage).")


NUMBER_SHARE = 0.8
"""A text field is a candidate element (:func:`numeric_fields`) when at least this share of its values read as
numbers: a compilation loaded from CSV makes a column text when some entries are '<0.5' or 'n.a.'."""


def numeric_fields(source, feedback=None):
    """The fields that hold numbers, in the layer's order: numeric fields, and text fields whose non-empty values
    read as numbers (:func:`~algorithms.base.assay_number`, '<0.5' below detection included) in at least
    :data:`NUMBER_SHARE` of the features that have one. ``feedback`` is told which fields named as elements
    (:func:`core.geochemistry.survey_hygiene.parse_column`) were left out, and why: the survey plan's log never sees
    them."""
    text = text_numbers(source, [f.name() for f in source.fields() if not f.isNumeric()])
    numbers = {name: values and read >= NUMBER_SHARE * values for name, (values, read, _) in text.items()}
    if feedback is not None:
        dropped = [(name, count) for name, count in text.items()
                   if not numbers[name] and sh.parse_column(name).element is not None]
        empty = [name for name, (values, _, _) in dropped if not values]
        if empty:
            feedback.info(f"Left out ({len(empty)}), no value in any sample: {', '.join(empty)}")
        for name, (values, read, example) in dropped:
            if values:
                feedback.warning(f"Left out: {name}, whose values read as numbers in only {read} of the {values} "
                                 f"samples that have one (e.g. '{example}'; below {NUMBER_SHARE:.0%} a field is "
                                 "taken for text). Correct those values to use it.")
    return [f.name() for f in source.fields() if f.isNumeric() or numbers[f.name()]]


def read_points(alg, source, context, crs, fields, feedback=None):
    """``(features, xs, ys, gx, gy, values)``: every feature, its first vertex in ``crs`` (NaN without a geometry)
    and in the layer's own CRS, and the values of ``fields`` (NaN for NULL). ``feedback`` is told how many values
    were over the upper limit ('>10000': read as the limit)."""
    index = [source.fields().lookupField(f) for f in fields]
    features, xs, ys, gx, gy, rows = [], [], [], [], [], []
    over = dict.fromkeys(fields, 0)
    parse = column_reader(assay_number, source, fields)   # a decimal-comma export: '1,945' is 1.945
    for feature, geometry in alg.source_features(source, context, crs, name="POINTS"):
        attributes = feature.attributes()
        rows.append([parse(attributes[i]) if i >= 0 else float("nan") for i in index])
        for f, i in zip(fields, index):
            if i >= 0 and isinstance(attributes[i], str) and attributes[i].strip().startswith(">"):
                over[f] += 1
        x = y = ox = oy = float("nan")
        if geometry is not None:
            point = next(iter(geometry.vertices()))
            x, y = point.x(), point.y()
            original = next(iter(feature.geometry().vertices()))
            ox, oy = original.x(), original.y()
        features.append(feature)
        xs.append(x)
        ys.append(y)
        gx.append(ox)
        gy.append(oy)
    values = np.array(rows, dtype=float).reshape(len(rows), len(fields))
    over = {f: n for f, n in over.items() if n}
    if over and feedback is not None:
        feedback.info(f"{sum(over.values())} values over the laboratory's upper limit ('>x') are read as the limit, "
                      "a lower bound of the true value: " + ", ".join(f"{f} {n}" for f, n in over.items()) + ".")
    return features, np.array(xs), np.array(ys), np.array(gx), np.array(gy), values


def warn_unlocated(xs, ys, feedback, consequence="they are left out of everything that needs a place (scores "
                                                "against neighbours, positives and negatives)"):
    """Warn how many samples have no geometry (NaN coordinates from :func:`read_points`), and ``consequence``."""
    n = int(np.count_nonzero(~(np.isfinite(xs) & np.isfinite(ys))))
    if n:
        feedback.warning(f"{n} of {len(xs)} samples have no geometry: {consequence}.")
    return n


def survey_table(alg, source, context, crs, fields, coverage, missing=-9999.0, zeros="missing", feedback=None,
                 parameter="FIELDS"):
    """Read the points and choose the element table: ``(features, xs, ys, names, table, plan)``.

    ``fields`` (the user's) are used as given, oxides among them merged; empty: every numeric field goes
    through :func:`core.geochemistry.survey_hygiene.plan_elements` (names, units, geometry, coverage). The choice and
    what was left out go to the log.
    """
    require_fields(alg, source, fields, parameter, numeric=True)
    columns = list(fields) or numeric_fields(source, feedback)
    features, xs, ys, gx, gy, values = read_points(alg, source, context, crs, columns, feedback)
    if feedback is not None:
        warn_unlocated(xs, ys, feedback)
    names, table, plan = sh.survey_elements(columns, values, gx, gy, fields=list(fields) or None,
                                            coverage=coverage, missing=missing, zeros_missing=zeros == "missing")
    if feedback is not None:
        for line in plan.log:
            feedback.info(line)
    return features, xs, ys, names, table, plan
