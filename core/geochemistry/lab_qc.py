"""Quality control of a laboratory's results: the blanks and certified reference materials inserted in the batch.

A batch of samples goes to the laboratory with **blanks** (material without the elements sought) and **certified
reference materials** (standards such as OREAS 504c, whose contents a round-robin of laboratories certified, with a
standard deviation) among the samples. The laboratory reports them as rows of the results file, under their own ids,
beside the samples:

- a blank that assays above a few times the limit of detection (:data:`BLANK_FACTOR`) shows contamination or
  carry-over in the preparation or the analysis (:func:`contaminated_blanks`);
- a standard more than 3 standard deviations from its certified value fails, between 2 and 3 it warns
  (:func:`check_standards`, against the values a user gives: :func:`read_certified_values`). A failed standard puts
  the batch's results for that element in doubt: laboratories re-assay the batch.

Pure Python (no QGIS): ``oremap:join_lab_results`` reports them in its log.
"""

import math
import os
import re
from dataclasses import dataclass, field

from ..engine.errors import OreMapError
from . import assay_text
from . import lab_results as lr
from . import survey_hygiene as sh
from .workbooks import workbook_driver, workbook_sheets

BLANK_WORDS = re.compile(r"(?<![a-z])(blank|blnk|blk)(?![a-z])", re.IGNORECASE)
"""A sample id or a QC-type cell that marks a blank (``BLANK``, ``Blank-3``, ``BLK 2``, ``Pulp blank``)."""

BLANK_FACTOR = 5.0
"""A blank above this many times its element's lower limit of detection is contaminated: a common acceptance limit
of exploration QA/QC (some programmes use 3 or 10)."""

WARN_SD = 2.0
"""A standard beyond this many standard deviations from its certified value is warned of (about 1 in 20 results of a
laboratory in control)."""

FAIL_SD = 3.0
"""A standard beyond this many standard deviations fails (about 1 in 370 results of a laboratory in control)."""

STANDARD_NAMES = re.compile(r"(?<![a-z])(oreas|cdn|gbm|geostats|amis|srm|crm|std|standard|ncs|gsd|gss|sarm|"
                            r"sy-\d|till-\d|lkc|lksd|strm)(?![a-z])", re.IGNORECASE)
"""Ids that look like a certified reference material (OREAS 504c, CDN-ME-1414, GBM908-10, AMIS0341, STD-1) when no
certified values are given: the log then says how to check them."""

STANDARD_COLUMN = {"standard", "std", "crm", "srm", "referencematerial", "certifiedreferencematerial", "material",
                   "standardid", "standardname", "crmid", "crmname", "name", "sampleid", "sample"}
ANALYTE_COLUMN = {"element", "analyte", "constituent", "parameter", "elementunit", "analyteunit", "elements",
                  "analytes"}
VALUE_COLUMN = {"certifiedvalue", "certified", "value", "expectedvalue", "expected", "recommendedvalue",
                "recommended", "mean", "bestvalue", "target", "targetvalue", "grade"}
SD_COLUMN = {"sd", "1sd", "stdev", "stddev", "standarddeviation", "sigma", "σ", "1σ", "1sigma", "onesd", "s"}
UNIT_COLUMN = {"unit", "units", "uom"}
"""Header words (lower case, letters, digits and σ only) of the columns of a table of certified values."""


def _key(text):
    return re.sub(r"[^a-z0-9σ]+", "", str(text).lower())


@dataclass
class CertifiedValue:
    """One certified value: ``element`` as assay columns write it (``Au``, ``Fe2O3``), ``unit`` (``ppm``, ``ppb``,
    ``pct``), ``value`` and ``sd`` (one standard deviation) in that unit; ``place``: where the table gives it."""
    standard: str
    element: str
    unit: str
    value: float
    sd: float
    place: str = ""


def _column_of(header, words):
    return next((j for j, cell in enumerate(header) if _key(cell) in words), None)


def read_certified_values(path):
    """The certified values of a table (CSV or text, or an ``.xlsx``/``.ods`` workbook: its first sheet that reads
    as one) in long form, one row per standard and analyte: a standard column (``Standard``, ``CRM``; without one,
    every row is of the standard the file is named after, as a certificate's own table), an analyte column
    (``Element``, ``Analyte``: ``Au``, ``Au ppm``, ``Cu_pct``), a unit column (optional where the analyte says it;
    ppm where neither does), the certified value and one standard deviation (``SD``, ``1SD``, ``Std Dev``). A
    standard left blank under its first row is the row above's (a grouped table). Rows without two positive numbers
    (indicative values, notes) are skipped. Raises :class:`OreMapError` (parameter ``standards``)."""
    driver = workbook_driver(path) if os.path.isfile(path) else None
    if driver is None:
        try:
            text = lr._text(path)
        except OreMapError as exc:
            raise OreMapError(exc.message, "standards", "Choose the table of certified values (CSV or a workbook).") \
                from None
        delimiter = lr._delimiter(text)
        sheets = [("", lr._rows(text, delimiter))]
    else:
        sheets = workbook_sheets(path, driver)
    reasons = []
    for sheet, rows in sheets:
        found = _certified_rows(path, sheet, rows)
        if isinstance(found, str):
            reasons.append(found)
            continue
        return found
    raise OreMapError(f"'{path}' holds no table of certified values: {'; '.join(reasons)}.", "standards",
                      "One row per standard and analyte, with columns Standard, Element, Unit, Certified value and "
                      "SD (one standard deviation), as the certificates of the reference materials give them.")


def _certified_rows(path, sheet, rows):
    """The certified values of one sheet's rows, or the reason there are none (a str)."""
    where = f"sheet '{sheet}'" if sheet else "the file"
    for h, header in enumerate(rows[:lr.SNIFF_ROWS]):
        analyte, value = _column_of(header, ANALYTE_COLUMN), _column_of(header, VALUE_COLUMN)
        if analyte is None or value is None:
            continue
        sd = _column_of(header, SD_COLUMN)
        if sd is None:
            return (f"{where} has no column of standard deviations beside its certified values (a header such as SD, "
                    "1SD or Std Dev)")
        standard = _column_of(header, STANDARD_COLUMN - {"sampleid", "sample"}) \
            if _column_of(header, STANDARD_COLUMN - {"sampleid", "sample"}) is not None \
            else _column_of(header, STANDARD_COLUMN)
        unit_column = _column_of(header, UNIT_COLUMN)
        named = os.path.splitext(os.path.basename(path))[0]
        found, current = [], named
        for i, row in enumerate(rows[h + 1:], h + 2):
            def cell(j):
                return row[j].strip() if j is not None and j < len(row) else ""
            if standard is not None and cell(standard):
                current = cell(standard)
            meaning = lr._element_of(cell(analyte)) if cell(analyte) else None
            try:
                number, spread = assay_text.decimal(cell(value)), assay_text.decimal(cell(sd))
            except ValueError:
                continue
            if meaning is None or not (number > 0 and spread > 0 and math.isfinite(number + spread)):
                continue
            element, unit, _ = meaning
            unit = (lr._unit_of(cell(unit_column)) if cell(unit_column) else None) or unit or "ppm"
            if unit not in sh.UNIT_FACTORS:
                continue
            found.append(CertifiedValue(current, element, unit, number, spread,
                                        f"{'row' if sheet else 'line'} {i}" + (f" of sheet '{sheet}'" if sheet else "")))
        if found:
            return found
        return f"no row of {where} under its header holds an analyte with a positive value and SD"
    return f"{where} has no header naming an analyte (Element, Analyte) and a certified value (Certified value, Value)"


@dataclass
class StandardResult:
    """A standard's row of the results against one certified value: ``measured`` in the certified unit (for a result
    below detection, the limit, with ``below`` True), ``z`` its distance from the certified value in standard
    deviations (for a result below detection, the least it can be)."""
    row: int
    standard: str
    column: str
    measured: float
    certified: CertifiedValue
    z: float
    below: bool = False


@dataclass
class StandardsCheck:
    """The standards of a results file checked (:func:`check_standards`)."""
    results: list = field(default_factory=list)            # StandardResult, in row order
    not_in_results: list = field(default_factory=list)     # standards of the certified values no row names
    elements_missing: dict = field(default_factory=dict)   # standard: certified elements without an assay column

    def failed(self):
        return [r for r in self.results if abs(r.z) > FAIL_SD]

    def warned(self):
        return [r for r in self.results if WARN_SD < abs(r.z) <= FAIL_SD]


def standard_rows(table, ids, names):
    """``{row: standard}``: the rows of the results that name one of the standards ``names``, by their id
    (``ids[row]``) or another text cell, compared without case, spaces and punctuation ('OREAS-504c' is 'OREAS 504c')."""
    keys = {_key(n): n for n in names}
    texts = [table.attribute_values(name) for name in table.attributes]
    found = {}
    for i in range(len(table.rows)):
        for text in [ids[i]] + [t[i] for t in texts]:
            standard = keys.get(_key(text)) if text else None
            if standard is not None:
                found[i] = standard
                break
    return found


def check_standards(table, ids, certified):
    """Each standard row of the results (:func:`standard_rows`) against its certified values, element by element,
    for every assay column of that element (a certified gold value checks ``Au_ppm_AA23`` and ``Au_ppm_GRA21``).
    Results without a value, over the upper limit (a lower bound) or, below detection, whose limit is above the
    certified value less :data:`FAIL_SD` deviations, say nothing; a result below detection whose limit is under it
    fails (the standard should have been measured)."""
    by_standard = {}
    for c in certified:
        by_standard.setdefault(c.standard, []).append(c)
    rows = standard_rows(table, ids, list(by_standard))
    check = StandardsCheck(not_in_results=[s for s in by_standard if s not in set(rows.values())])
    columns = [(c, table.values(c), set(table.over_limit(c))) for c in table.assays]
    for standard in by_standard:
        missing = sorted({v.element for v in by_standard[standard]
                          if not any(c.element.lower() == v.element.lower() for c, _, _ in columns)})
        if missing and standard in set(rows.values()):
            check.elements_missing[standard] = missing
    for i, standard in sorted(rows.items()):
        for value in by_standard[standard]:
            for column, values, over in columns:
                if column.element.lower() != value.element.lower() or column.unit not in sh.UNIT_FACTORS:
                    continue
                result = values[i]
                if not math.isfinite(result) or i in over:
                    continue
                scale = sh.UNIT_FACTORS[column.unit] / sh.UNIT_FACTORS[value.unit]
                if result < 0:   # below detection: the limit
                    limit = -result * scale
                    if limit < value.value - FAIL_SD * value.sd:
                        check.results.append(StandardResult(i, standard, column.name, limit, value,
                                                            (limit - value.value) / value.sd, below=True))
                    continue
                measured = result * scale
                check.results.append(StandardResult(i, standard, column.name, measured, value,
                                                    (measured - value.value) / value.sd))
    return check


def likely_standards(table, ids):
    """Rows whose id looks like a certified reference material (:data:`STANDARD_NAMES`), as ``{name: count}``: when
    no certified values are given, the log says how to check them."""
    counts = {}
    for text in ids:
        if text and STANDARD_NAMES.search(text) and not BLANK_WORDS.search(text):
            counts[text] = counts.get(text, 0) + 1
    return counts


def _column_limit(table, column):
    """A column's lower limit of detection: its limits row's, else the lowest '<' limit written in it; NaN."""
    if column.limit == column.limit:
        return column.limit
    written = [-v for v in table.values(column) if v < 0 and math.isfinite(v)]
    return min(written) if written else float("nan")


def contaminated_blanks(table, ids):
    """``[(row, [(assay name, value, limit)])]``: the blanks of the file (rows whose id, ``ids[row]``, or another text
    cell names a blank: :data:`BLANK_WORDS`) that assay above :data:`BLANK_FACTOR` times the limit of detection of an
    element: contamination or carry-over in the preparation or the analysis, which reaches the samples after them."""
    texts = [table.attribute_values(name) for name in table.attributes]
    blanks = [i for i in range(len(table.rows)) if (ids[i] and BLANK_WORDS.search(ids[i]))
              or any(len(t[i]) <= 20 and BLANK_WORDS.search(t[i]) for t in texts)]
    if not blanks:
        return []
    columns = [(c.name, table.values(c), _column_limit(table, c)) for c in table.assays]
    found = []
    for i in blanks:
        hits = [(name, values[i], limit) for name, values, limit in columns
                if limit == limit and limit > 0 and math.isfinite(values[i]) and values[i] > BLANK_FACTOR * limit]
        if hits:
            found.append((i, hits))
    return found
