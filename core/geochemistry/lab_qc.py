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
                   "standardid", "standardname", "crmid", "crmname", "name"}
ANALYTE_COLUMN = {"element", "analyte", "constituent", "parameter", "elementunit", "analyteunit", "elements",
                  "analytes"}
VALUE_COLUMN = {"certifiedvalue", "certified", "value", "expectedvalue", "expected", "recommendedvalue",
                "recommended", "mean", "bestvalue", "target", "targetvalue", "grade"}
SD_COLUMN = {"sd", "1sd", "stdev", "stddev", "standarddeviation", "sigma", "σ", "1σ", "1sigma", "onesd", "s"}
UNIT_COLUMN = {"unit", "units", "uom"}
METHOD_COLUMN = {"method", "methods", "technique", "digestion", "methodcode", "analyticalmethod", "assaymethod"}
STATUS_COLUMN = {"status", "type", "valuetype", "category", "class", "certification"}
"""Header words (lower case, letters, digits and σ only) of the columns of a table of certified values."""

INDICATIVE = re.compile(r"indicat|provisional|informa|uncertified|not certified|for information", re.IGNORECASE)
"""A status cell or a section row that makes values no certified ones (OREAS's indicative values)."""

METHOD_FAMILIES = {
    "fire assay": (re.compile(r"fire|(?<![a-z])(pb ?)?fa(?![a-z])", re.IGNORECASE),
                   re.compile(r"(?<![a-z])fa(?![a-z])|aa2\d|gra2\d|icp2\d|fa[a-z]{0,3}\d", re.IGNORECASE)),
    "aqua regia": (re.compile(r"aqua|regia|(?<![a-z])ar(?![a-z])", re.IGNORECASE),
                   re.compile(r"(?<![a-z])ar(?![a-z])|ms41|icp41|tl4\d|ar[a-z]{0,3}\d", re.IGNORECASE)),
    "four acid": (re.compile(r"4[- ]?acid|four[- ]acid|(?<![a-z0-9])4a(?![a-z])|near[- ]total", re.IGNORECASE),
                  re.compile(r"(?<![a-z0-9])4a(?![a-z])|ms61|icp61|aa6\d", re.IGNORECASE)),
    "fusion": (re.compile(r"fusion|borate|xrf|peroxide", re.IGNORECASE),
               re.compile(r"xrf|fus|icp06|ms81|ms85", re.IGNORECASE)),
}
"""Families of assay methods: how a certificate writes them, and what a results column's header holds for them (its
method words and ALS-style codes: Au-AA23 and Au-GRA21 fire assay, ME-MS41 aqua regia, ME-ICP61 four acid, ME-XRF
fusion). A certified value and a column of one family are compared where an element has several certified values."""


def _key(text):
    return re.sub(r"[^a-z0-9σ]+", "", str(text).lower())


@dataclass
class CertifiedValue:
    """One certified value: ``element`` as assay columns write it (``Au``, ``Fe2O3``), ``unit`` (``ppm``, ``ppb``,
    ``pct``), ``value`` and ``sd`` (one standard deviation) in that unit, ``method`` as the table names it ('' when
    it does not); ``place``: where the table gives it."""
    standard: str
    element: str
    unit: str
    value: float
    sd: float
    place: str = ""
    method: str = ""


class CertifiedValues(list):
    """The certified values of a table (a list of :class:`CertifiedValue`), with ``skipped``: ``(place, why)`` of the
    rows left out for a unit OreMap does not convert."""

    def __init__(self, values=(), skipped=()):
        super().__init__(values)
        self.skipped = list(skipped)


def _column_of(header, words):
    return next((j for j, cell in enumerate(header) if cell and _key(cell) in words), None)


def _analyte(cell):
    """``(element, unit or None, words)`` of an analyte cell (``Au``, ``Au ppm``, ``Au (ppb)``, ``Cu, wt.%``, and as
    certificates write it, ``Au, Gold``), or None."""
    meaning = lr._element_of(cell)
    if meaning is None:
        head = re.split(r"[,;(]", cell, maxsplit=1)[0].strip()
        meaning = lr._element_of(head) if head and head != cell.strip() else None
    return meaning


def read_certified_values(path):
    """The certified values of a table (CSV or text, or an ``.xlsx``/``.ods`` workbook: its first sheet that reads
    as one) in long form, one row per standard and analyte: a standard column (``Standard``, ``CRM``; without one,
    every row is of the standard the file is named after, as a certificate's own table), an analyte column
    (``Element``, ``Analyte``, ``Constituent``: ``Au``, ``Au ppm``, ``Au, Gold``), a unit column (optional where the
    analyte says it; ppm where neither does), the certified value and one standard deviation (``SD``, ``1SD``, ``Std
    Dev``; also on a second header row, as OREAS's tables write it), optionally a method (a ``Method`` column, or a
    section row such as ``Pb Fire Assay`` above the values) and a status. A standard left blank under its first row
    is the row above's (a grouped table). Rows without two positive numbers, indicative values (a status or section
    saying so) and notes are skipped; rows with a unit OreMap does not convert (``oz/t``) are skipped and listed
    (``skipped``). Raises :class:`OreMapError` (parameter ``standards``)."""
    fix = ("One row per standard and analyte, with columns Standard, Element, Unit, Certified value and SD (one "
           "standard deviation), as CSV, .xlsx or .ods.")
    try:
        driver = workbook_driver(path)
        if driver is None:
            text = lr._text(path)
            sheets = [("", lr._rows(text, lr._delimiter(text)))]
        else:
            sheets = workbook_sheets(path, driver)
    except OreMapError as exc:
        raise OreMapError(exc.message.replace("results table", "table"), "standards",
                          re.sub(r"(a readable|the) results (file|table)", r"\1 table of certified values",
                                 exc.fix or fix)) from None
    reasons = []
    for sheet, rows in sheets:
        found = _certified_rows(path, sheet, rows)
        if isinstance(found, str):
            reasons.append(found)
            continue
        return found
    raise OreMapError(f"'{path}' holds no table of certified values: {'; '.join(reasons)}.", "standards", fix)


def _numbers_in(row, j):
    return j is not None and j < len(row) and lr._NUMBER.fullmatch(row[j] or "") is not None


def _certified_rows(path, sheet, rows):
    """The certified values of one sheet's rows (:class:`CertifiedValues`), or the reason there are none (a str)."""
    where = f"sheet '{sheet}'" if sheet else "the file"
    reason = (f"{where} has no header naming an analyte (Element, Analyte, Constituent) and a certified value "
              "(Certified value, Value)")
    for h, header in enumerate(rows[:lr.SNIFF_ROWS]):
        analyte, value = _column_of(header, ANALYTE_COLUMN), _column_of(header, VALUE_COLUMN)
        if analyte is None or value is None:
            continue
        below = rows[h + 1] if h + 1 < len(rows) else []
        second = below if below and not _numbers_in(below, value) and _column_of(below, SD_COLUMN) is not None \
            else None   # a second header row ('1SD' under 'Absolute Standard Deviations')
        sd = _column_of(header, SD_COLUMN)
        if sd is None and second is not None:
            sd = _column_of(second, SD_COLUMN)
        if sd is None:
            reason = (f"{where} has no column of standard deviations beside its certified values (a header such as "
                      "SD, 1SD or Std Dev)")
            continue   # (a block of Parameter / Value above the table: the table's header may come further down)
        found = _certified_body(path, sheet, rows, h + (2 if second is not None else 1), header, analyte, value, sd)
        if found:
            return found
        reason = f"no row of {where} under its header holds an analyte with a positive certified value and SD"
        if found.skipped:
            reason += " in a unit OreMap converts (ppm, ppb, %, g/t; not " + ", ".join(
                why for _, why in found.skipped[:4]) + ")"
    return reason


def _certified_body(path, sheet, rows, first, header, analyte, value, sd):
    standard = _column_of(header, STANDARD_COLUMN)
    unit_column, method_column = _column_of(header, UNIT_COLUMN), _column_of(header, METHOD_COLUMN)
    status_column = _column_of(header, STATUS_COLUMN)
    comma = "decimal" if assay_text.decimal_comma_texts(
        r[j] for r in rows[first:] for j in (value, sd) if j < len(r)) else None
    found, skipped = [], []
    current, section = os.path.splitext(os.path.basename(path))[0], ""
    for i, row in enumerate(rows[first:], first + 1):
        def cell(j):
            return row[j].strip() if j is not None and j < len(row) else ""
        filled = [c for c in row if c and c.strip()]
        if len(filled) == 1 and not lr._NUMBER.fullmatch(filled[0]):
            section = filled[0].strip()   # a section row: 'Pb Fire Assay', 'Indicative Values'
            continue
        if standard is not None and cell(standard):
            current = cell(standard)
        place = f"{'row' if sheet else 'line'} {i}" + (f" of sheet '{sheet}'" if sheet else "")
        if INDICATIVE.search(cell(status_column)) or INDICATIVE.search(section):
            continue
        meaning = _analyte(cell(analyte)) if cell(analyte) else None
        try:
            number, spread = assay_text.decimal(cell(value), comma), assay_text.decimal(cell(sd), comma)
        except ValueError:
            continue
        if meaning is None or not (number > 0 and spread > 0 and math.isfinite(number + spread)):
            continue
        element, unit, _ = meaning
        if cell(unit_column):
            unit = lr._unit_of(cell(unit_column))
            if unit is None or unit not in sh.UNIT_FACTORS:
                skipped.append((place, f"{cell(analyte)} in '{cell(unit_column)}'"))
                continue
        unit = unit or "ppm"
        found.append(CertifiedValue(current, element, unit, number, spread, place,
                                    cell(method_column) or section))
    return CertifiedValues(found, skipped)


@dataclass
class StandardResult:
    """A standard's row of the results against one certified value: ``measured`` in the certified unit (and as the
    certified element or oxide; for a result below detection the limit, ``below`` True; over the upper limit the
    bound, ``above`` True), ``z`` its distance from the certified value in standard deviations (the least it can be,
    for a bound)."""
    row: int
    standard: str
    column: str
    measured: float
    certified: CertifiedValue
    z: float
    below: bool = False
    above: bool = False


@dataclass
class StandardsCheck:
    """The standards of a results file checked (:func:`check_standards`)."""
    results: list = field(default_factory=list)            # StandardResult, in row order
    not_in_results: list = field(default_factory=list)     # standards of the certified values no row names
    elements_missing: dict = field(default_factory=dict)   # standard: certified elements without an assay column
    undecided: list = field(default_factory=list)          # (standard, column, methods): several values, none chosen

    def failed(self):
        return [r for r in self.results if beyond(r.z, FAIL_SD)]

    def warned(self):
        return [r for r in self.results if beyond(r.z, WARN_SD) and not beyond(r.z, FAIL_SD)]


def beyond(z, deviations):
    """True where ``z`` lies beyond ``deviations`` standard deviations: a result exactly at 3 SD (4.14 against
    4.02 +/- 0.04, whose z computes as 3.0000000000000027) is not beyond it."""
    return abs(z) > deviations + 1e-9


_STANDARD_WORDS = re.compile(r"(?<![a-z])(std|crm|srm|standard|ref)(?![a-z])", re.IGNORECASE)


def _id_keys(text):
    """The keys a row's id may name a standard by: as written, without the words STD, CRM, SRM or Standard and
    brackets (``Std OREAS 504c``, ``OREAS 504c (STD)``), and then without a numbering (``OREAS 504c-2``, ``_1``)."""
    keys = [_key(text)]
    bare = _STANDARD_WORDS.sub(" ", re.sub(r"[()\[\]]", " ", text)).strip(" -_")
    keys.append(_key(bare))
    numbered = re.fullmatch(r"(.*?[A-Za-z0-9])\s*[-_#]\s*\d{1,2}", bare)
    if numbered:
        keys.append(_key(numbered.group(1)))
    return keys


def standard_rows(table, ids, names):
    """``{row: standard}``: the rows of the results that name one of the standards ``names``, by their id
    (``ids[row]``) or another text cell, compared without case, spaces and punctuation ('OREAS-504c' is 'OREAS
    504c'), and without the words STD, CRM or Standard and a numbering around the name ('Std OREAS 504c',
    'OREAS 504c-2'). The name as written comes first: a standard whose name ends in a number (GBM908-10) is itself."""
    keys = {_key(n): n for n in names}
    texts = [table.attribute_values(name) for name in table.attributes]
    found = {}
    for i in range(len(table.rows)):
        for text in [ids[i]] + [t[i] for t in texts]:
            standard = next((keys[k] for k in _id_keys(text) if k in keys), None) if text else None
            if standard is not None:
                found[i] = standard
                break
    return found


def _base(element):
    """``(element symbol, element mass per mass of what is written)``: ``Fe2O3`` is Fe at 0.699, ``Fe`` is Fe at 1."""
    parsed = sh.parse_column(element)
    return (parsed.element or element), (parsed.ratio if parsed.element else 1.0)


def _family(text, which):
    return {name for name, patterns in METHOD_FAMILIES.items() if text and patterns[which].search(text)}


def check_standards(table, ids, certified):
    """Each standard row of the results (:func:`standard_rows`) against its certified values, element by element,
    for every assay column of that element (a certified gold value checks ``Au_ppm_AA23`` and ``Au_ppm_GRA21``; a
    certified Fe checks ``Fe2O3_pct`` through the oxide's ratio). Where the table certifies an element by several
    methods, a column takes the value of its method's family (:data:`METHOD_FAMILIES`), else it is not compared
    (``undecided``). Results without a value say nothing; a result below detection whose limit is under the certified
    value less :data:`FAIL_SD` deviations fails (the standard should have been measured), and one over the upper limit
    whose bound is above the certified value plus :data:`FAIL_SD` deviations fails."""
    by_standard = {}
    for c in certified:
        by_standard.setdefault(c.standard, []).append(c)
    rows = standard_rows(table, ids, list(by_standard))
    named = set(rows.values())
    check = StandardsCheck(not_in_results=[s for s in by_standard if s not in named])
    columns = [(c, _base(c.element), table.values(c), set(table.over_limit(c))) for c in table.assays]
    assayed = {base for _, (base, _), _, _ in columns}
    for standard in by_standard:
        missing = sorted({v.element for v in by_standard[standard] if _base(v.element)[0] not in assayed})
        if missing and standard in named:
            check.elements_missing[standard] = missing
    chosen = {}
    for standard in named:
        for column, (base, ratio), _, _ in columns:
            if column.unit not in sh.UNIT_FACTORS:
                continue
            values = [v for v in by_standard[standard] if _base(v.element)[0] == base]
            if len(values) > 1:
                family = _family(" ".join((column.method, column.words, column.header)), 1)
                values = [v for v in values if family & _family(v.method, 0)] if family else []
                if len(values) != 1:
                    methods = [v.method or v.place for v in by_standard[standard] if _base(v.element)[0] == base]
                    check.undecided.append((standard, column.name, methods))
                    continue
            if values:
                chosen[(standard, column.name)] = values[0]
    for i, standard in sorted(rows.items()):
        for column, (base, ratio), results, over in columns:
            value = chosen.get((standard, column.name))
            result = results[i]
            if value is None or not math.isfinite(result):
                continue
            # the column's unit and element or oxide, as the certified unit and element or oxide; below detection
            # the limit (an upper bound), over the upper limit the limit (a lower bound)
            scale = sh.UNIT_FACTORS[column.unit] / sh.UNIT_FACTORS[value.unit] * ratio / _base(value.element)[1]
            measured = abs(result) * scale
            z = (measured - value.value) / value.sd
            below, above = result < 0, i in over
            if (below and not (z < 0 and beyond(z, FAIL_SD))) or (above and not (z > 0 and beyond(z, FAIL_SD))):
                continue   # a bound that does not prove a failure says nothing
            check.results.append(StandardResult(i, standard, column.name, measured, value, z, below, above))
    return check


def likely_standards(table, ids):
    """Rows whose id looks like a certified reference material (:data:`STANDARD_NAMES`), as ``{name: count}``: when
    no certified values are given, the log says how to check them."""
    counts = {}
    for text in ids:
        if text and STANDARD_NAMES.search(text) and not is_blank_id(text):
            counts[text] = counts.get(text, 0) + 1
    return counts


QC_COLUMN_WORDS = re.compile(r"qc|qaqc|type|category|class|control|standard", re.IGNORECASE)
"""Header words of the columns that say what a row is (``QC_TYPE``, ``Sample Type``, ``Category``): where a blank is
named when its id does not say so."""


def is_blank_id(text):
    """True for a text that names a blank: the word blank (``BLANK``, ``Pulp blank``, ``Blank-3``), or ``BLK`` or
    ``BLNK`` as the whole text or with a number (``BLK-2``; ``BLK7-002`` is a block of a mine)."""
    return bool(re.search(r"(?<![a-z])blank(?![a-z])", text, re.IGNORECASE)
                or re.fullmatch(r"\s*(blk|blnk)\s*([-_#]?\s*\d+)?\s*", text, re.IGNORECASE))


def blank_rows(table, ids):
    """The rows (in order) whose id, ``ids[row]``, or a QC-type cell (:data:`QC_COLUMN_WORDS`) names a blank
    (:func:`is_blank_id`)."""
    texts = [table.attribute_values(name) for name in table.attributes if QC_COLUMN_WORDS.search(name)]
    return [i for i in range(len(table.rows)) if (ids[i] and is_blank_id(ids[i]))
            or any(t[i] and is_blank_id(t[i]) for t in texts)]


def contaminated_blanks(table, ids):
    """``(found, unchecked)``: ``found`` the blanks of the file (rows whose id, ``ids[row]``, or a QC-type cell names
    a blank: :func:`is_blank_id`, :data:`QC_COLUMN_WORDS`) that assay above :data:`BLANK_FACTOR` times an element's
    limit of detection, as ``[(row, [(assay name, value, limit)])]`` (contamination or carry-over in the preparation
    or the analysis, which reaches the samples after them); ``unchecked`` the assay columns without a known limit
    (no limits row, no '<' value), where the blanks could not be checked."""
    blanks = blank_rows(table, ids)
    if not blanks:
        return [], []
    columns = [(c.name, table.values(c), table.detection_limit(c)) for c in table.assays]
    found = []
    for i in blanks:
        hits = [(name, values[i], limit) for name, values, limit in columns
                if limit == limit and limit > 0 and math.isfinite(values[i]) and values[i] > BLANK_FACTOR * limit]
        if hits:
            found.append((i, hits))
    unchecked = [name for name, values, limit in columns
                 if not (limit == limit and limit > 0) and any(math.isfinite(values[i]) for i in blanks)]
    return found, unchecked


DUPLICATE_SUFFIX = re.compile(r"^(?P<base>.*?[0-9A-Za-z])[\s_\-/.]*(dup|dupl|duplicate|fd|fdup|d|rep|repeat|rpt|r"
                              r"|re|chk|check)\s*\d?$", re.IGNORECASE)
"""A duplicate's id written as its original's with a suffix (``NC001D``, ``NC001 DUP``, ``NC001-FD``, ``NC001_R``)."""

ADJACENT_ROWS = 2
"""A duplicate whose id is its original's with a bare ``D`` or ``R`` pairs only within this many rows of it (a
laboratory reports a duplicate right after its original; further away, ``RC123D`` is more likely a hole of its own)."""

ORIGINAL_COLUMN = {"original", "originalsample", "originalid", "originalsampleid", "orig", "origsample", "origid",
                   "parent", "parentid", "parentsample", "parentsampleid", "dupof", "duplicateof", "primary",
                   "primaryid", "primarysample", "primarysampleid", "originalno"}
"""Header words (lower case, letters and digits) of a column giving a duplicate's original sample id."""

PRECISION_FACTOR = 10.0
"""Duplicate pairs are compared where both values are at least this many times the limit of detection: nearer the
limit, the relative difference measures the limit, not the sampling (Thompson and Howarth, 1978)."""


def duplicate_pairs(table, ids, exclude=()):
    """``[(original row, duplicate row, how)]``: duplicates of the results and their originals, by a column giving the
    original's id (:data:`ORIGINAL_COLUMN`), by an id written as another row's with a duplicate suffix
    (:data:`DUPLICATE_SUFFIX`; a bare D or R only next to it, :data:`ADJACENT_ROWS`), or by an id that comes again
    (a laboratory's repeat under the sample's id). Ids are compared without case and spaces only, as the join
    compares them (``RC1-15`` is not ``RC11-5``). Blanks, standards (ids that look like one: :data:`STANDARD_NAMES`)
    and the rows of ``exclude`` (the standards found otherwise) are no duplicates nor originals: a batch holds many
    copies of one standard."""
    excluded = set(exclude) | set(blank_rows(table, ids)) | {i for i, text in enumerate(ids)
                                                             if text and STANDARD_NAMES.search(text)}
    keys = [lr._folded(t) if t and i not in excluded else "" for i, t in enumerate(ids)]
    first = {}
    for i, k in enumerate(keys):
        if k:
            first.setdefault(k, i)
    pairs, paired = [], set()
    named = next((name for name in table.attributes if _key(name.split(" / ")[-1]) in ORIGINAL_COLUMN
                  or _key(name) in ORIGINAL_COLUMN), None)
    if named is not None:
        for i, text in enumerate(table.attribute_values(named)):
            original = first.get(lr._folded(text)) if text and i not in excluded else None
            if original is not None and original != i:
                pairs.append((original, i, f"'{named}' column"))
                paired.add(i)
    for i, text in enumerate(ids):
        if i in paired or not keys[i]:
            continue
        match = DUPLICATE_SUFFIX.match(text.strip())
        original = first.get(lr._folded(match.group("base"))) if match else None
        if original is not None and len(match.group(2)) == 1 and abs(i - original) > ADJACENT_ROWS:
            original = None   # a bare D or R far from its 'original': RC123D a diamond tail of hole RC123, not a pair
        if original is not None and original != i:
            pairs.append((original, i, "id with a duplicate suffix"))
            paired.add(i)
        elif first[keys[i]] != i:
            pairs.append((first[keys[i]], i, "id repeated"))
            paired.add(i)
    return sorted(pairs, key=lambda p: p[1])


@dataclass
class Precision:
    """The precision of one assay column over duplicate pairs: ``pairs`` compared (both values at least
    :data:`PRECISION_FACTOR` times the limit), their ``median`` half absolute relative difference (HARD, per cent:
    half the difference over the pair's mean), and how many are within 10 and 20 %."""
    column: str
    pairs: int
    median: float
    within_10: int
    within_20: int


def duplicate_precision(table, pairs):
    """``(precision, unknown)``: :class:`Precision` of each assay column over ``pairs`` (:func:`duplicate_pairs`),
    for the columns where at least one pair is high enough to compare, and the columns left out for want of a known
    limit of detection (no limits row, no '<' value: pairs near the limit would decide the median). A value over the
    upper limit ('>10') is a bound, not a measurement: its pair is left out."""
    out, unknown = [], []
    for c in table.assays:
        values, limit = table.values(c), table.detection_limit(c)
        if not (limit == limit and limit > 0):
            if any(math.isfinite(values[i]) and math.isfinite(values[j]) for i, j, _ in pairs):
                unknown.append(c.name)
            continue
        floor, over = PRECISION_FACTOR * limit, set(table.over_limit(c))
        hard = []
        for i, j, _ in pairs:
            a, b = values[i], values[j]
            if i in over or j in over or not (math.isfinite(a) and math.isfinite(b)):
                continue
            if a >= floor and b >= floor:
                hard.append(100.0 * abs(a - b) / (a + b))
        if hard:
            hard.sort()
            n = len(hard)
            median = hard[n // 2] if n % 2 else 0.5 * (hard[n // 2 - 1] + hard[n // 2])
            out.append(Precision(c.name, n, median, sum(h <= 10.0 for h in hard), sum(h <= 20.0 for h in hard)))
    return out, unknown
