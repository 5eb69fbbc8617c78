"""Shared by the geochemistry algorithms: read sample points and choose their element fields (survey hygiene).

Not an algorithm: helpers around :mod:`core.geochemistry.survey_hygiene` for QGIS feature sources.
"""

import re

import numpy as np
from qgis.core import NULL, QgsFeatureRequest, QgsProcessingException

from ..core.engine.feedback import ensure
from ..core.geochemistry import survey_hygiene as sh
from .base import assay_number, column_reader, over_limit, require_fields, text_numbers

COVERAGE_HELP = ("Without chosen element fields: an element enters the default set when it is measured in at least "
                 "this percentage of the samples (not missing, not a 0 read as 'not analysed'; a value below "
                 "detection counts as measured). Survey compilations hold ~120 columns, most measured in few "
                 "samples; an element with one value in every sample measured (all below one detection limit) is left "
                 "out too; the log lists what was left out and why. 0 keeps every element.")
FIELDS_HELP = ("Element fields. Empty: the survey's elements, recognised by the unit anywhere in the field name "
               "(_ppm, _ppb, _pct, e.g. Cu_ppm_511) or a bare element symbol, alone or with a method code (AU, Cu, "
               "Au_FA, Au_ME-MS61 as a shapefile cuts Au_ME-MS61_ppm; ppm assumed, but left out "
               "beside fields that state their units: choose the fields to keep it); coordinates "
               "(x, y, lat, lon, easting, northing and truncations such as Northing_k), ids and fields equal to the "
               "point geometry are never elements; an oxide field (ZnO_ppm) is merged into its element (Zn_ppm) or, "
               "without one, converted to it; only elements measured in enough samples are kept (coverage).")
SAMPLE_FIELD_HELP = ("Optional field holding the sample id (e.g. the company's sample number). Records with one id at "
                     "one place (within 1 m) are reports of one sample, as compilations that joined several reports "
                     "of a survey hold them (re-rounded or re-assayed): they are combined into one record (per "
                     "element the mean of the measured values; a measured value before one below detection; a value "
                     "over the upper limit, a lower bound, where nothing else measured it or the measured values lie "
                     "below it) that counts once, and each of their rows gets its result. Reports that disagree (over "
                     "a quarter of the elements measured in two of them differ by over 10 %) are kept apart and named "
                     "in a warning. Empty: only records repeated exactly (same place, same values) count once.")


def sample_field_parameter(alg):
    """Add the optional, advanced sample-id field SAMPLE_FIELD of the points parameter POINTS."""
    from qgis.core import QgsProcessingParameterField

    alg._add(QgsProcessingParameterField("SAMPLE_FIELD", alg.tr("Sample id field (reports of one sample combined)"),
                                         parentLayerParameterName="POINTS", optional=True), advanced=True)


def sample_field(alg, parameters, context, source):
    """The SAMPLE_FIELD the user chose (None when empty), checked against the layer ``source``."""
    if "SAMPLE_FIELD" not in parameters:
        return None
    chosen = alg.field_names(parameters, "SAMPLE_FIELD", context)
    if not chosen:
        return None
    require_fields(alg, source, chosen, "SAMPLE_FIELD", what="sample id field")
    return chosen[0]


def warn_shifted_records(source, columns, values, xs, ys, labels, missing, feedback):
    """Warn of records slipped by a column against another record at their place
    (:func:`core.geochemistry.survey_hygiene.shifted_records`), the columns taken in the layer ``source``'s order
    (FIELDS may list them otherwise), named by ``labels`` (feature ids; a MultiPoint feature's points once).
    Returns the warning as a list (empty without one), for the report."""
    if feedback is None or len(labels) < 2:
        return []
    layer = source.fields()
    order = sorted(range(len(columns)), key=lambda j: layer.lookupField(columns[j]))
    values = np.asarray(values, dtype=float).reshape(len(labels), len(columns))[:, order]
    found = sh.shifted_records([columns[j] for j in order], values, xs, ys, missing)
    pairs = {}
    for row, other, share in found:
        pairs.setdefault((int(labels[row]), int(labels[other])), (row, other, share))
    names = {row: f"feature {int(labels[row])}" for pair in pairs.values() for row in pair[:2]}
    note = sh.shifted_note(list(pairs.values()), names)
    if note:
        feedback.warning(note)
    return [note] if note else []


_QC_WORDS = re.compile(r"(?<![a-z])(qa ?/ ?qc|qaqc|qc|blank|blk|std|standard|crm|certified|duplicate|dup)(?![a-z])",
                       re.IGNORECASE)
"""Words that mark a quality-control row of a laboratory export (a blank, a certified standard, a duplicate)."""
_HEADER_UNITS = {"ppm", "ppb", "pct", "%", "ppt", "g/t", "wt%", "mg/kg", "ug/kg"}


def _header_like(values):
    """True for a row of text that reads as a header of element symbols or units (at least five values, 60 % of
    them symbols of two letters or more, or units; one-letter symbols and 'NA', 'ND', 'No' are also flags and codes)."""
    words = [v.lower() for v in values if len(v) > 1 and v.lower() not in ("na", "nd", "no")]
    hits = sum(w in sh.SYMBOLS or w in _HEADER_UNITS for w in words)
    return len(words) >= 5 and hits >= 0.6 * len(words)


def check_survey_rows(source, feedback):
    """Warn about rows that are not field samples, from the layer's text fields: quality-control rows of a laboratory
    export (blanks, certified standards, duplicates), scored and gridded as samples (a standard is high-grade: a
    false anomaly; a blank beside a sample pulls its cell down), and the second and third header rows of an ALS-style
    export (element symbols, units) read as features, whose columns then all load as text.

    Quality-control rows are a few per cent of an export: a field where a word of :data:`_QC_WORDS` marks most
    features (a province 'QC', a project 'Gold Standard') says nothing about them. Header rows come first and once: a
    pattern that repeats in later rows (unit columns, Y/N flags) is the data's own. Returns the warnings (a list,
    for the report)."""
    said = []
    if feedback is None:
        return said
    text = [f.name() for f in source.fields() if not f.isNumeric()]
    if not text:
        return said
    index = [source.fields().lookupField(f) for f in text]
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes(index)
    hits, first, later, k = {}, 0, 0, -1
    for k, feature in enumerate(source.getFeatures(request)):
        if k % PROGRESS_EVERY == 0:
            feedback.check()   # a second a 100,000 points with a few text fields: cancel stops it
        attributes = feature.attributes()
        row = [attributes[i] for i in index]   # (the request's other attributes are NULL, not left out)
        values = [v.strip() for v in row if isinstance(v, str) and v.strip()]
        if _header_like(values):
            first, later = (first + 1, later) if k < 3 else (first, later + 1)
        for f, v in zip(text, row):
            if isinstance(v, str) and _QC_WORDS.search(v):
                hits.setdefault(f, []).append((k, v.strip()))
    if first and not later:
        said.append(f"The layer's first feature{'s' if first > 1 else ''} hold{'' if first > 1 else 's'} "
                    "element symbols or units, not values: a file with several header rows (method codes, "
                    "element symbols, units, as laboratories export them) loads its first row as the field "
                    "names and the others as samples. Join the laboratory's file to the sample points with 'Join "
                    "laboratory results to sample points' (oremap:join_lab_results), which reads such a header, or "
                    "make one header row of names such as Au_ppm and Fe_pct and load the file again.")
    n = k + 1
    marks = {f: rows for f, rows in hits.items() if len(rows) <= 0.5 * n}   # a minority of the features
    qc = len({row for rows in marks.values() for row, _ in rows})
    if qc:
        named = "; ".join(f"'{f}': " + ", ".join(f"'{v}'" for v in sorted({v for _, v in rows})[:4])
                          for f, rows in marks.items())
        said.append(f"{qc} features look like quality-control rows ({named}): they are scored and gridded as "
                    "field samples (a certified standard is high-grade, a false anomaly). Filter them out before the "
                    "run (the layer's Filter..., e.g. a field <> 'QA/QC').")
    for line in said:
        feedback.warning(line)
    return said


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


READ_SHARE = (0.0, 20.0)
"""The part of a run's progress (percent: start, end) that reading the sample points takes (:func:`read_points`)."""

WRITE_SHARE = (90.0, 100.0)
"""The part of a run's progress that writing the scored points takes (:func:`features_by_id`)."""

READ_CHUNK = 4096
"""Rows added at a time to the arrays of :func:`read_points` when the provider does not know its feature count (or
has more features than it said)."""

PROGRESS_EVERY = 256
"""Features read between two progress reports (and cancel checks) of :func:`read_points` and
:func:`features_by_id`."""


class _Rows:
    """Rows of float values (and int64 feature ids) filled in place: one array of the announced size, or chunks of
    :data:`READ_CHUNK` rows when the size is unknown or turns out too small."""

    def __init__(self, expected, width):
        self._width = width
        self._chunks = []          # (ids, values) arrays, full but the last
        self._filled = 0           # rows filled in the last chunk
        self.count = 0
        self._add(expected if expected > 0 else READ_CHUNK)

    def _add(self, rows):
        self._chunks.append((np.empty(rows, dtype=np.int64), np.empty((rows, self._width), dtype=float)))
        self._filled = 0

    def next_row(self, fid):
        """The row (a view to fill) of the next feature, whose id is ``fid``."""
        ids, values = self._chunks[-1]
        if self._filled == len(ids):
            self._add(READ_CHUNK)
            ids, values = self._chunks[-1]
        ids[self._filled] = fid
        row = values[self._filled]
        self._filled += 1
        self.count += 1
        return row

    def arrays(self):
        """``(ids, values)`` of the rows filled, in the order they came (a copy only when chunks were added or the
        announced size was too large)."""
        ids, values = self._chunks[-1]
        if len(self._chunks) == 1 and self._filled == len(ids):
            return ids, values
        parts = self._chunks[:-1] + [(ids[:self._filled], values[:self._filled])]
        return (np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]).reshape(self.count, self._width))


def key_text(value):
    """A sample id as text: None for NULL or an empty value; a whole number stored as a float without its '.0'."""
    if value is None or value == NULL:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def read_points(alg, source, context, crs, fields, feedback=None, share=(0.0, 100.0), say_over=True, over=None,
                key_field=None, keys=None):
    """``(ids, xs, ys, gx, gy, values)``: the id of every feature (an int64 array, in the order the source gives
    them: :func:`features_by_id` reads them again to copy their attributes into an output), its first vertex in
    ``crs`` (NaN without a geometry) and in the layer's own CRS, and the values of ``fields`` (NaN for NULL), read
    straight into one float array (no feature is kept: a survey of 100,000 samples held 1.5 GB of features).

    ``feedback`` gets the progress of the read within ``share`` (percent of the run: start, end) and may cancel it;
    with ``say_over`` it is told how many values were over the upper limit ('>10000': read as the limit). ``over``: a
    list that gets, for every feature, the row of booleans saying which of its values were over the limit. ``keys``:
    a list that gets, for every feature, the text of its ``key_field`` (a sample id; None where NULL or empty)."""
    index = [source.fields().lookupField(f) for f in fields]
    key_index = source.fields().lookupField(key_field) if key_field is not None else -1
    expected = source.featureCount()   # -1 when the provider does not know
    rows = _Rows(expected, len(fields))
    coords = _Rows(expected, 4)        # x, y in crs; x, y in the layer's CRS
    counted = dict.fromkeys(fields, 0)
    parse = column_reader(assay_number, source, fields)   # a decimal-comma export: '1,945' is 1.945
    nan = float("nan")
    start, end = share
    for k, (feature, geometry) in enumerate(alg.source_features(source, context, crs, name="POINTS")):
        if feedback is not None and k % PROGRESS_EVERY == 0:
            feedback.check()
            if expected > 0:
                feedback.progress(start + (end - start) * min(k / expected, 1.0))
        attributes = feature.attributes()
        rows.next_row(feature.id())[:] = [parse(attributes[i]) if i >= 0 else nan for i in index]
        flags = [i >= 0 and over_limit(attributes[i]) for i in index]
        for f, flag in zip(fields, flags):
            counted[f] += flag
        if over is not None:
            over.append(flags)
        if keys is not None:
            keys.append(key_text(attributes[key_index]) if key_index >= 0 else None)
        x = y = ox = oy = nan
        if geometry is not None:
            point = next(iter(geometry.vertices()))
            x, y = point.x(), point.y()
            original = next(iter(feature.geometry().vertices()))
            ox, oy = original.x(), original.y()
        coords.next_row(feature.id())[:] = (x, y, ox, oy)
    if feedback is not None:
        feedback.check()
        feedback.progress(end)
    ids, values = rows.arrays()
    xy = coords.arrays()[1]
    counted = {f: n for f, n in counted.items() if n}
    if counted and feedback is not None and say_over:
        feedback.info(f"{sum(counted.values())} values over the laboratory's upper limit ('>x') are read as the "
                      "limit, a lower bound of the true value (replaced by another assay of the element where the "
                      "survey has one): " + ", ".join(f"{f} {n}" for f, n in counted.items()) + ".")
    return ids, xy[:, 0].copy(), xy[:, 1].copy(), xy[:, 2].copy(), xy[:, 3].copy(), values


def over_mask(rows, width):
    """The ``(n, width)`` boolean array of the over-limit flags :func:`read_points` collected (one row a feature)."""
    return np.asarray(rows, dtype=bool).reshape(len(rows), width)


def features_by_id(source, ids, feedback=None, share=None):
    """The features of ``source`` whose ids are ``ids`` (from :func:`read_points`), one at a time in that order,
    with their geometry and every attribute: what an output copies. The source is read again in its own order (the
    order :func:`read_points` met the features); a feature out of that order is asked for by its id.
    ``feedback`` may cancel, and gets the progress within ``share`` (start, end percent) when given."""
    n = len(ids)
    k = 0
    if n:
        for feature in source.getFeatures():   # as AlgorithmBase.source_features reads the source
            if feature.id() != ids[k]:
                break
            if feedback is not None and k % PROGRESS_EVERY == 0:
                feedback.check()
                if share is not None:
                    feedback.progress(share[0] + (share[1] - share[0]) * k / n)
            yield feature
            k += 1
            if k == n:
                break
    for fid in ids[k:]:   # the source gave another order (or other features): each by its id
        if feedback is not None and k % PROGRESS_EVERY == 0:
            feedback.check()
            if share is not None:
                feedback.progress(share[0] + (share[1] - share[0]) * k / n)
        feature = next(iter(source.getFeatures(QgsFeatureRequest().setFilterFid(int(fid)))), None)
        if feature is None:
            raise QgsProcessingException(f"Feature {int(fid)} of the layer is gone since it was read: the layer "
                                         "changed during the run. Run it again.")
        yield feature
        k += 1
    if feedback is not None and share is not None:
        feedback.progress(share[1])


def warn_unlocated(xs, ys, feedback, consequence="they are left out of everything that needs a place (scores "
                                                "against neighbours, positives and negatives)"):
    """Warn how many samples have no geometry (NaN coordinates from :func:`read_points`), and ``consequence``."""
    n = int(np.count_nonzero(~(np.isfinite(xs) & np.isfinite(ys))))
    if n:
        feedback.warning(f"{n} of {len(xs)} samples have no geometry: {consequence}.")
    return n


def read_survey(alg, source, context, crs, columns, missing, feedback, share=(0.0, 100.0), say_over=True,
                key_field=None):
    """Read a survey's points as every geochemistry algorithm that writes a report does: the rows checked
    (:func:`check_survey_rows`), the points read (:func:`read_points`), records slipped by a column warned about
    (:func:`warn_shifted_records`) and, with a sample-id field ``key_field``, the records that report one sample
    combined (:func:`core.geochemistry.survey_hygiene.combine_reports`; their places made one).

    Returns ``(ids, xs, ys, gx, gy, values, over, notes)``: :func:`read_points`' arrays, the over-limit flags
    (:func:`over_mask`) and what the reading said, already logged, for the report."""
    notes = check_survey_rows(source, feedback)
    over, keys = [], []
    ids, xs, ys, gx, gy, values = read_points(alg, source, context, crs, columns, feedback, share, say_over=say_over,
                                              over=over, key_field=key_field, keys=keys)
    over = over_mask(over, len(columns))
    notes += warn_shifted_records(source, columns, values, xs, ys, ids, missing, feedback)
    if key_field is None:
        return ids, xs, ys, gx, gy, values, over, notes
    elements = [sh.parse_column(c).element is not None for c in columns]
    values, xs, ys, over, summary = sh.combine_reports(values, xs, ys, keys, over, missing=missing,
                                                       elements=elements if any(elements) else None)
    info, warnings = sh.reports_note(summary, key_field)
    feedback = ensure(feedback)
    for line in info:
        feedback.info(line)
    for line in warnings:
        feedback.warning(line)
    return ids, xs, ys, gx, gy, values, over, notes + info + warnings


def survey_table(alg, source, context, crs, fields, coverage, missing=-9999.0, zeros="missing", feedback=None,
                 parameter="FIELDS", share=(0.0, 100.0), key_field=None):
    """Read the points and choose the element table: ``(ids, xs, ys, names, table, plan, notes)`` (feature ids:
    :func:`read_points`; ``share``: the read's part of the run's progress; ``notes``: what the reading said of the
    rows, records and samples, already logged, for a report).

    ``fields`` (the user's) are used as given, oxides among them merged; empty: every numeric field goes
    through :func:`core.geochemistry.survey_hygiene.plan_elements` (names, units, geometry, coverage). The choice and
    what was left out go to the log. ``key_field``: the sample-id field whose reports of one sample are combined
    (:func:`read_survey`).
    """
    require_fields(alg, source, fields, parameter, numeric=True)
    columns = list(fields) or [c for c in numeric_fields(source, feedback) if c != key_field]   # an id is no element
    ids, xs, ys, gx, gy, values, over, notes = read_survey(alg, source, context, crs, columns, missing, feedback,
                                                           share, key_field=key_field)
    if feedback is not None:
        warn_unlocated(xs, ys, feedback)
    names, table, plan = sh.survey_elements(columns, values, gx, gy, fields=list(fields) or None,
                                            coverage=coverage, missing=missing, zeros_missing=zeros == "missing",
                                            over=over)
    if feedback is not None:
        for line in plan.log:
            feedback.info(line)
    return ids, xs, ys, names, table, plan, notes
