"""Laboratory results as laboratories send them: assays by sample id, under a header of several rows.

A certificate export or a database extract holds one row per sample (its id, perhaps a description or a weight)
and one column per analyte, and its header often spans several rows: certificate lines (client, project, dates),
then the analyte symbols, their units, the method codes and the lower limits of detection, in any order
(``Au`` / ``ppm`` / ``Au-AA23`` / ``0.005``). Loaded as a layer, such a file keeps its first row as field names
and reads the others as samples, and every element field becomes text. Here the header is read as a whole:

- the **data** begin at the first row that fills half the table's width or more, most of whose cells read as assay
  values (:mod:`assay_text`), and that is no limits row; the header is the block of rows right above it (a shorter
  or blank row ends it), so certificate lines above are skipped;
- in each column the header cells are read for an **element** symbol or oxide (``Au``, ``Fe2O3``, ``Cu_ppm``), a
  **unit** (``ppm``, ``%``, ``g/t``), a **method** code (``ME-ICP61``, ``Au-AA23``) and other words (``Check``,
  ``Repeat``); a row whose first cell says so (``LOR``, ``DL``, ``Detection limit``) gives the **lower limits**;
- a column with an element and with values that read as assays is an **assay column**, named as OreMap's survey
  hygiene reads element fields (:func:`survey_hygiene.parse_column`): ``Au_ppm``, ``Fe_pct``, ``Au_ppb_Check``;
  units that equal another are written as it (``g/t`` and ``mg/kg`` as ``ppm``, ``%`` as ``pct``); an element
  without a unit is taken as ppm (the log says so); the same element and unit twice takes its method code or a
  number (``Au_ppm_AA23``, ``Au_ppm_2``);
- the other columns are **attributes** (sample ids, descriptions), one of which is matched to the sample points'
  ids (:func:`match_layer`).

A workbook (``.xlsx``, ``.ods``) is read the same way, sheet by sheet (:mod:`workbooks`: GDAL's drivers for the
values; cells formatted as percentages read as the per cent they show, a merged header cell names every column it
covers, formulas saved without values are said).
Pure Python and GDAL (no QGIS): ``oremap:join_lab_results`` writes the points.
"""

import collections
import csv
import io
import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..engine.errors import OreMapError
from . import assay_text
from . import survey_hygiene as sh
from .workbooks import sheet_formats, tabs, workbook_driver, workbook_sheets

#: Words of a header row's first cell that make it the row of lower limits of detection (lower case, no dots).
LIMIT_WORDS = {"lor", "dl", "ldl", "lld", "lod", "mdl", "detectionlimit", "detectionlimits", "lowerlimit",
               "limitofdetection", "limitofreporting", "reportinglimit", "lowerdetectionlimit", "detlim", "detlimit",
               "detection", "det", "nwg", "ld", "lq", "limit", "limits"}
#: ... and of the row of upper limits (read, not used: an over-limit value says its limit itself).
UPPER_WORDS = {"upperlimit", "upperlimits", "udl", "uld", "upperdetectionlimit", "overlimit", "maxlimit"}
#: Units written as another unit in field names (the value does not change).
UNIT_NAMES = {"%": "pct", "percent": "pct", "wt%": "pct", "pct": "pct", "ppm": "ppm", "g/t": "ppm", "gt": "ppm",
              "gpt": "ppm", "mg/kg": "ppm", "ug/g": "ppm", "µg/g": "ppm", "μg/g": "ppm", "ppb": "ppb", "ug/kg": "ppb",
              "µg/kg": "ppb", "μg/kg": "ppb", "ng/g": "ppb", "ppt": "ppt"}
#: Words that may follow an element symbol in an assay column's header (``Au Check``, ``Au Rpt``): a check or repeat
#: assay. Other words make the column no assay (``Sr No``, ``Pb Batch``: bookkeeping).
QUALIFIERS = {"check", "chk", "repeat", "rpt", "rep", "re", "dup", "duplicate", "orig", "original", "total", "tot",
              "final", "avg", "average", "mean", "recovery", "screen", "coarse", "fine", "assay", "grade", "ore",
              "reassay", "resplit"}
#: Share of a row's non-empty cells that must read as assay values for the row to be data.
DATA_SHARE = 0.5
#: Share of a column's non-empty data cells that must read as assay values (or words for no result) for it to be an
#: assay column.
ASSAY_SHARE = 0.8
#: Rows read to find the delimiter and the header.
SNIFF_ROWS = 200
DELIMITERS = (",", ";", "\t", "|")

_NUMBER = re.compile(r"\s*[<>]?\s*[-+]?(\d{1,3}([.,]\d{3})+([.,]\d*)?|\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?\s*")
_METHOD = re.compile(r"^[A-Za-z0-9]{1,8}([-_/][A-Za-z0-9]{1,8}){1,3}$|^[A-Za-z]{1,5}\d{1,4}[A-Za-z]?$")


@dataclass
class AssayColumn:
    """One column of assays: where it is, what its header said, and the field it becomes."""
    index: int
    header: str
    element: str
    unit: str
    method: str = ""
    words: str = ""
    limit: float = float("nan")
    unit_given: bool = True
    kept: str = ""
    name: str = ""


@dataclass
class LabTable:
    """A results file read: assay columns, attribute columns, the data rows (text cells) and what the reading found."""
    path: str
    delimiter: str
    decimal_comma: bool
    header_lines: list
    first_data_line: int
    assays: list
    attributes: dict
    rows: list
    line_numbers: list
    notes: list = field(default_factory=list)
    #: The workbook's sheet read ('' for a text file; ``delimiter`` is '' then, and line numbers are sheet rows).
    sheet: str = ""
    #: The workbook's other sheets, not read (sheet found by itself), and those hidden in the workbook.
    other_sheets: list = field(default_factory=list)
    #: The other sheets that read as tables of assays (a laboratory's QC sheet), as LabTables: their standards and
    #: blanks are checked too.
    other_tables: list = field(default_factory=list, repr=False)
    _parsed: dict = field(default_factory=dict, repr=False, compare=False)
    _limits: dict = field(default_factory=dict, repr=False, compare=False)

    def place(self, i):
        """Where data row ``i`` (0-based) stands in the file: 'line 12' of a text file, 'row 12' of a sheet."""
        return f"{'row' if self.sheet else 'line'} {self.line_numbers[i]}"

    def attribute_values(self, name):
        """The cells of attribute column ``name`` (stripped text), one per data row."""
        j = self.attributes[name]
        return [row[j].strip() if j < len(row) else "" for row in self.rows]

    @property
    def comma_mode(self):
        """The ``comma`` its cells are read with (:func:`_comma_for`): False, True (a decimal-comma text file) or
        :data:`WORKBOOK_COMMAS`."""
        return (WORKBOOK_COMMAS if self.sheet else True) if self.decimal_comma else False

    def number(self, text):
        """A plain number written in a cell of this file (decimal commas and thousands separators as the file writes
        them); ValueError for anything else."""
        return assay_text.decimal(text, _comma_for(text, self.comma_mode))

    def attribute_column(self, name):
        """``(field name, values)`` of attribute column ``name``: its header cells other than method codes joined
        (``Recvd Wt. / kg`` as ``Recvd_Wt_kg``; one cell as it is), and its values as floats where every filled
        cell is a plain number (None for an empty cell), else as text (None for an empty cell)."""
        cells = name.split(" / ")
        if len(cells) == 1:
            field_name = cells[0]
        else:
            kept = [c for c in cells if not _method_of(c)] or cells
            field_name = re.sub(r"_+", "_", re.sub(r"[^\w%]+", "_", "_".join(kept))).strip("_") or name
        texts = self.attribute_values(name)
        try:
            return field_name, [self.number(t) if t else None for t in texts]
        except ValueError:
            return field_name, [t or None for t in texts]

    def values(self, column):
        """The assay values of ``column`` (an :class:`AssayColumn`) as floats (:func:`assay_text.assay_value`:
        minus the limit below detection, the limit over range, NaN for no result). A 'BDL' (below an unwritten
        limit) becomes minus the limits row's value, else minus the lowest limit written in the column ('<0.005'),
        else stays ``-inf``. Read once per column."""
        if column.index in self._parsed:
            return list(self._parsed[column.index])
        comma = self.comma_mode
        out = []
        for row in self.rows:
            text = row[column.index].strip() if column.index < len(row) else ""
            out.append(assay_text.assay_value(text, _comma_for(text, comma)) if text else float("nan"))
        limit = column.limit
        if limit != limit:
            written = [-v for v in out if v < 0 and v != float("-inf")]
            limit = min(written) if written else float("nan")
        if limit == limit:
            out = [-abs(limit) if v == float("-inf") else v for v in out]
        self._parsed[column.index], self._limits[column.index] = out, limit
        return list(out)

    def detection_limit(self, column):
        """``column``'s lower limit of detection: its limits row's, else the lowest '<' limit written in it (the one
        a 'BDL' takes, :meth:`values`); NaN where neither is known."""
        self.values(column)
        return self._limits[column.index]

    def row_ids(self, column=None):
        """The sample id of each row, for messages: the cells of attribute column ``column``, else of the column that
        most likely holds the ids (:func:`id_column`); '' for each row without one."""
        column = column or id_column(self)
        return self.attribute_values(column) if column else [""] * len(self.rows)

    def unread(self, column):
        """The texts of ``column`` that give no value (``'NSS'``, ``'LNR'``, ``'n.a.'``): its filled cells whose value
        is NaN or infinite, 'BDL' (below an unwritten limit) excepted."""
        values = self.values(column)
        cells = [row[column.index].strip() if column.index < len(row) else "" for row in self.rows]
        return sorted({t for t, v in zip(cells, values) if t and not math.isfinite(v) and v != float("-inf")})

    def over_limit(self, column):
        """Row numbers (0-based) whose value of ``column`` is written as over the upper limit ('>10000')."""
        return [i for i, row in enumerate(self.rows)
                if column.index < len(row) and row[column.index].strip().startswith(">")]


def _text(path):
    """The file's text: UTF-16 with a byte-order mark (Excel's "Unicode Text"), UTF-8 (with or without one), else
    Windows-1252, as laboratory software on Windows writes it."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise OreMapError(f"Cannot read '{path}': {exc.strerror or exc}.", "results",
                          "Choose a readable results file (CSV or text).") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):   # Excel's "Unicode Text": UTF-16 with a byte-order mark
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw[:4096]:
        raise OreMapError(f"'{path}' is not a text file.", "results",
                          "Choose the results as CSV or text, or as an Excel (.xlsx) or OpenDocument (.ods) workbook.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _rows(text, delimiter):
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _delimiter(text):
    """The delimiter whose rows have one length most often (two cells or more); on a tie the one whose cells hold
    fewer of the other delimiters (a semicolon file whose every value has a decimal comma splits evenly at the
    commas too, into cells holding semicolons), then the longer rows."""
    head = "\n".join(text.splitlines()[:SNIFF_ROWS])
    best, score = ",", (-1.0, 0, 0)
    for delimiter in DELIMITERS:
        rows = _rows(head, delimiter)
        lengths = [len(r) for r in rows if sum(1 for c in r if c) > 1]
        if not lengths:
            continue
        width, count = collections.Counter(lengths).most_common(1)[0]
        others = [d for d in DELIMITERS if d not in (delimiter, ",")]
        foreign = sum(1 for r in rows for c in r if any(d in c for d in others))
        candidate = (count / len(lengths), -foreign, width) if width > 1 else (-1.0, 0, 0)
        if candidate > score:
            best, score = delimiter, candidate
    return best


WORKBOOK_COMMAS = "workbook"
"""``comma`` of a workbook whose text cells write decimal commas: its number cells still write a point."""


def _comma_for(cell, comma):
    """:func:`assay_text.assay_value`'s mode for one cell: every cell of a decimal-comma text file is read with decimal
    commas (a point between groups of three digits is a thousands point there); of a workbook, only the cells that hold
    a comma (text typed in a decimal-comma language, '<0,005', '1.234,5'), since its number cells write a point
    whatever the language ('1.234' is 1.234)."""
    if comma == WORKBOOK_COMMAS:
        return "decimal" if "," in cell else None
    return "decimal" if comma else None


def _is_value(cell, comma):
    if not cell:
        return False
    if assay_text.word(cell) in assay_text.BELOW_DETECTION_WORDS:
        return True
    if not _NUMBER.fullmatch(cell):
        return False
    value = assay_text.assay_value(cell, _comma_for(cell, comma))
    return value == value


def _coordinate_like(cell):
    """True for a cell that reads as a coordinate in degrees, minutes and seconds (with a hemisphere or marks:
    ``32°15'30"S``, ``117 30 15 E``) or in metres with its unit (``500000mE``): a value of a sample's row."""
    # (a sample id such as 'S1' or 'N2' would read as one degree: a coordinate here has two parts or a degree sign,
    # and metres four digits at least; a clock time '08:15' or '1 2' has no degree, minute or second mark nor a
    # hemisphere: no coordinate)
    if (len(re.findall(r"\d+", cell)) >= 2 or re.search(r"[°º˚]", cell)) and _DEGREE_MARKS.search(cell):
        return any(sexagesimal(cell, axis) == sexagesimal(cell, axis) for axis in ("x", "y"))
    return re.fullmatch(r"\s*\d{4,}([.,]\d*)?\s*(m\s*[EN]?|[EN])\s*", cell, re.IGNORECASE) is not None


def _no_result(cell):
    return assay_text.word(cell) in assay_text.NO_VALUE_WORDS


def _first_word(row):
    cell = next((c for c in row if c), "")
    return re.sub(r"[\s._:()\-]+", "", cell.lower())


def _unit_of(cell):
    """The unit a header cell names, as field names write it, or None."""
    folded = cell.strip().lower().replace(" ", "")
    if folded in UNIT_NAMES:
        return UNIT_NAMES[folded]
    parsed = sh.parse_column(f"Cu {cell}")   # a unit in brackets, '(ppm)', 'ppm.'; a method word ('FA') is none
    return _explicit_unit(parsed) if parsed.element == "Cu" else None


def _written(column):
    """The symbol of a parsed column as a field name writes it: the element, or the oxide (``Fe2O3``, ``Fe2O3T``)."""
    if column.oxide is None:
        return column.element
    return column.oxide + ("T" if column.total else "")


def _explicit_unit(column):
    """The unit a parsed column names itself (not assumed, not from a table), as field names write it, or None."""
    if column.unit and not column.assumed_unit and not column.unit_from_table:
        return UNIT_NAMES.get(column.unit, column.unit)
    return None


def _element_of(cell):
    """``(element or oxide as written, unit or None, other words)`` a header cell names, or None: a symbol or oxide
    alone (``Au``, ``Fe2O3``), with its unit (``Au_ppm``, ``Cu (ppm)``, ``Au(ppb)``, ``Cu%``), or with words that
    qualify an assay (``Au Check``, ``Au Rpt``, ``Au FA``); other words make no element (``Sr No``, ``Pb Batch``:
    bookkeeping columns)."""
    tokens = [t for t in re.split(r"[\s_]+", cell.strip()) if t]
    if not tokens:
        return None
    head = sh.parse_column(tokens[0])
    # a numbered symbol (Au1, Au2: first and second assay) keeps its number as a word: Au_ppm_1, Au_ppm_2
    number = tokens[0][-1] if head.element is not None and sh.numbered_symbol(tokens[0]) else ""
    if head.element is not None and len(tokens) == 1:
        return _written(head), _explicit_unit(head), number
    whole = sh.parse_column(cell)
    if whole.element is not None and _explicit_unit(whole):
        return _written(whole), _explicit_unit(whole), number
    if head.element is not None and head.oxide is None and len(tokens[0]) <= 2 and tokens[0][:1].isupper():
        rest = [t for t in tokens[1:] if not _unit_of(t) and not _method_of(t)]
        words = [re.sub(r"\W+", "", t) for t in rest]
        if any(w.lower() not in QUALIFIERS and w.lower() not in sh.METHOD_WORDS for w in words):
            return None
        unit = next((_unit_of(t) for t in tokens[1:] if _unit_of(t)), None)
        return _written(head), unit, "_".join(w for w in words if w)
    return None


def _method_of(cell):
    """The method code a header cell holds (``ME-ICP61``, ``Au-AA23``, ``FA50``), or None."""
    cell = cell.strip()
    if _explicit_unit(sh.parse_column(cell)) or sh.numbered_symbol(cell):
        return None   # 'Au-ppb' is gold in ppb, 'Au1' a first gold assay: no method
    return cell if _METHOD.match(cell) and any(ch.isalpha() for ch in cell) \
        and ("-" in cell or any(ch.isdigit() for ch in cell)) else None


def _column_meaning(cells):
    """``(element, unit, method, other words)`` of a column from its header cells: a method code's element
    (``Au-AA23``) only where no other cell names one."""
    element = unit = None
    method = words = ""
    coded = None
    for cell in cells:
        if not cell:
            continue
        if _method_of(cell):
            method = method or _method_of(cell)
            found = _element_of(cell)
            coded = coded or found
            continue
        found = _element_of(cell)
        if found is not None and element is None:
            element, cell_unit, words = found
            unit = unit or cell_unit
        elif unit is None and _unit_of(cell):
            unit = _unit_of(cell)
    if element is None and coded is not None:
        element, unit = coded[0], unit or coded[1]
    return element, unit, method, words


def _round(value):
    """True for a value laboratories use as a limit: 1, 2, 2.5 or 5 times a power of ten (0.005, 0.02, 0.5, 10)."""
    exponent = math.floor(math.log10(value))
    mantissa = value / 10.0 ** exponent
    return any(abs(mantissa - m) < 1e-6 for m in (1.0, 2.0, 2.5, 5.0, 10.0))


def _limits_row(rows, i, comma):
    """True when data-like row ``i`` is ALS's unlabelled row of detection limits: its first cell is empty, as is that
    of the row right above it (the units row, of units, not values), the rows below it name their samples, and its
    values are all limits (:func:`_round`: a sample's values are not all 1, 2, 2.5 or 5 times a power of ten)."""
    if i == 0 or rows[i][:1] != [""] or rows[i - 1][:1] != [""]:
        return False
    above = [c for c in rows[i - 1] if c]
    if not above or sum(_unit_of(c) is not None for c in above) < 0.5 * len(above):
        return False
    values = [assay_text.assay_value(c, _comma_for(c, comma)) for c in rows[i] if c]
    if not all(v == v and 0 < v < float("inf") and _round(v) for v in values):
        return False
    below = [r for r in rows[i + 1:i + 21] if any(r)]
    return bool(below) and sum(1 for r in below if r[:1] and r[0]) >= 0.8 * len(below)


def read_lab_results(path, sheet=None):
    """Read a laboratory results file into a :class:`LabTable`: CSV, semicolon-, tab- or bar-separated text, or a
    workbook (Excel ``.xlsx``/``.xlsm``, OpenDocument ``.ods``; :func:`workbook_sheets`).

    ``sheet``: a workbook's sheet to read (its name, or its tab's number from 1); None or '': the sheet that reads as
    the largest table of assays, visible sheets before hidden ones (the others in ``other_sheets``). Raises
    :class:`OreMapError` (parameter ``results``, or ``sheet`` for a sheet the workbook lacks or that holds no results)
    when no row reads as data or no column as assays."""
    driver = workbook_driver(path)
    wanted = str(sheet if sheet is not None else "").strip()
    if driver is None:
        text = _text(path)
        delimiter = _delimiter(text)
        rows = _rows(text, delimiter)
        # (a comma inside a cell of a comma-separated file is quoted: '"0,05"' is a decimal comma there too)
        comma = assay_text.decimal_comma_texts(c for r in rows[:SNIFF_ROWS] for c in r)
        table = _table(path, rows, delimiter, comma)
        if wanted:
            table.notes.insert(0, f"Sheet '{wanted}' not used: '{path}' is a text file, not a workbook.")
        return table
    sheets = workbook_sheets(path, driver)
    formats = sheet_formats(path, driver)
    listed_tabs = tabs(path, driver)   # the workbook's own tabs (chart sheets included) and which are hidden
    names = [name for name, _ in sheets]
    order = [t for t, _ in listed_tabs] if listed_tabs and set(names) <= {t for t, _ in listed_tabs} else names
    hidden = {t for t, h in listed_tabs if h}
    listed = ", ".join(f"'{n}'" for n in order)
    chosen = None
    if wanted:
        chosen = next((n for n in names if n == wanted), None) \
            or next((n for n in names if n.strip().casefold() == wanted.casefold()), None)
        if chosen is None and wanted.isdigit() and 1 <= int(wanted) <= len(order):
            chosen = order[int(wanted) - 1]
            if chosen not in names:
                raise OreMapError(f"Sheet {wanted} of the workbook '{path}' ('{chosen}') is a chart, not a table.",
                                  "sheet", f"Its sheets: {listed} (or their numbers from 1).")
        if chosen is None:
            raise OreMapError(f"The workbook '{path}' has no sheet '{wanted}'.", "sheet",
                              f"Its sheets: {listed} (or their numbers from 1).")
    # every sheet that reads as a table: the results, and the others (a QC sheet) for their standards and blanks
    tables, reasons = {}, {}
    for name, rows in sheets:
        try:
            tables[name] = _table(path, rows, "", _workbook_comma(rows), sheet=name, formats=formats.get(name))
        except OreMapError as exc:
            # (only the message is kept: through the exception's traceback this frame held the caller's frames, and
            # the algorithm's output with them, open until the garbage collector ran; a GeoPackage stayed locked)
            reasons[name] = exc.message
    if chosen is not None:
        if chosen not in tables:
            raise OreMapError(reasons[chosen], "sheet", f"Choose the sheet of results among {listed}.")
        best = tables[chosen]
    elif not tables:
        if len(sheets) == 1:
            raise OreMapError(reasons[names[0]], "results",
                              "Choose the laboratory's results: one row per sample, one column per element.")
        said = "; ".join(f"'{n}': " + m.replace(f"Sheet '{n}' of '{path}'", "the sheet").rstrip(".")
                         for n, m in reasons.items())
        raise OreMapError(f"No sheet of the workbook '{path}' reads as results ({said}).", "results",
                          "Choose the laboratory's results: one row per sample, one column per element.")
    else:
        # the largest table of assays: the results, not a sheet of QC or of notes with a number or two; a hidden
        # sheet (raw data a laboratory hides) only where no visible one reads
        best = max(tables.values(), key=lambda t: (t.sheet not in hidden, sum(math.isfinite(v) for c in t.assays
                                                                               for v in t.values(c)),
                                                   -order.index(t.sheet)))
        best.other_sheets = [n + (" (hidden)" if n in hidden else "") for n in order if n != best.sheet]
    best.other_tables = [t for t in tables.values() if t is not best]
    return best


def _workbook_comma(rows):
    """``comma`` for a workbook's rows: :data:`WORKBOOK_COMMAS` where its text cells write decimal commas
    (:func:`assay_text.decimal_comma_texts` over the cells without a point; number cells hold none), else False."""
    return WORKBOOK_COMMAS if assay_text.decimal_comma_texts(c for r in rows for c in r if "." not in c) else False


def _shown_percent(rows, places):
    """The number cells of ``rows`` at ``places`` (formatted as percentages) written, in place, as the per cent the
    sheet shows (0.015 as '1.5'); ``{column: [rows]}`` of the cells rewritten."""
    changed = collections.defaultdict(list)
    for i, j in places:
        if i < len(rows) and j < len(rows[i]) and rows[i][j]:
            try:
                value = float(rows[i][j])
            except ValueError:
                continue
            rows[i][j] = f"{value * 100:.15g}"
            changed[j].append(i)
    return changed


def _merged_header(rows, merged, start):
    """Fill each merged cell's value (a method code written once over its columns) across the columns it spans, in
    its first row, for rows above the data (``start``): every column it covers gets the code. A title merged over the
    table (a cell from the first column, or the only cell of its row) stays a short row, which ends the header, and
    a merged cell below the header is left as the sheet stores it."""
    filled = {r0: sum(1 for c in rows[r0] if c) for r0, _, _, _ in merged if r0 < start}   # (before any fill)
    for r0, c0, _, c1 in merged:
        if r0 < start and 0 < c0 < len(rows[r0]) and rows[r0][c0] and filled[r0] >= 2:
            for j in range(c0 + 1, min(c1, len(rows[r0]) - 1) + 1):
                rows[r0][j] = rows[r0][j] or rows[r0][c0]


def _table(path, rows, delimiter, comma, sheet="", formats=None):
    """A :class:`LabTable` of the rows of a text file or a workbook's sheet (``formats``: its
    :class:`workbooks.SheetFormats`)."""
    where = f"Sheet '{sheet}' of '{path}'" if sheet else f"'{path}'"
    percent_cells = {}
    if formats is not None:   # (the sheet's cells as it shows them, in a copy: the caller's rows stay as read)
        rows = [list(r) for r in rows]
        percent_cells = _shown_percent(rows, formats.percent)
    head = rows[:SNIFF_ROWS]
    lengths = [len(r) for r in head if sum(1 for c in r if c) > 1]
    if not lengths:
        raise OreMapError(f"{where} holds no table (no row with two values or more).", "results",
                          "Choose the laboratory's results file (CSV, text or a workbook).")
    width = collections.Counter(lengths).most_common(1)[0][0]
    # the first data row: most of its cells are values, and it is no limits row (labelled, or ALS's unlabelled one)
    start, limits_row = None, None

    def data_like(row):
        cells = [c for c in row if c]
        # (a narrow file's sample may hold one value: id, primary assay, a re-assay column still empty; a coordinate
        # in degrees and minutes or with its unit is a value too)
        values = sum(_is_value(c, comma) or _coordinate_like(c) for c in cells)
        return len(cells) >= 2 and values + sum(_no_result(c) for c in cells) >= DATA_SHARE * len(cells) \
            and values >= min(2, len(cells) - 1)

    for i, row in enumerate(rows):
        cells = [c for c in row if c]
        if len(cells) < 2:
            continue
        if _first_word(row) in LIMIT_WORDS:
            limits_row = i
            continue
        if _first_word(row) in UPPER_WORDS or not data_like(row):
            continue
        # a sample that fills under half the width (a sparse compilation's first record) is data right under a
        # header as wide as the table or when the next row is data too; a short certificate line ('# of SAMPLES,4')
        # is not
        following = next((r for r in rows[i + 1:] if any(r)), None)
        before = next((r for r in rows[i - 1::-1] if any(r)), None) if i else None
        under_header = before is not None and sum(1 for c in before if c) >= 0.5 * width and not data_like(before)
        if len(cells) < 0.5 * width and not under_header and (following is None or not data_like(following)):
            continue
        if limits_row is None and _limits_row(rows, i, comma):
            limits_row = i
            continue
        start = i
        break
    if start is None:
        raise OreMapError(f"No row of {where} reads as assay values.", "results",
                          "Choose the laboratory's results file: one row per sample, one column per element.")
    if formats is not None:
        _merged_header(rows, formats.merged, start)
    # the header: the rows above the data as wide as the table (certificate lines above are shorter)
    header = []
    for i in range(start - 1, -1, -1):   # the rows right above the data; a short or blank row ends the header
        cells = [c for c in rows[i] if c]
        if not cells and not header:      # blank lines between the header and the data
            continue
        units = sum(_unit_of(c) is not None for c in cells)
        if len(cells) < 2 or (len(cells) < 0.3 * width and units < 0.8 * len(cells)):   # a units row may be short
            break
        header.insert(0, i)
    names_rows = [i for i in header if i != limits_row and _first_word(rows[i]) not in UPPER_WORDS]
    data = [(i, r) for i, r in enumerate(rows[start:], start) if any(c for c in r)]
    # a repeated header further down (pages of a printed certificate) and trailing notes are no samples
    data = [(i, r) for i, r in data if sum(_is_value(c, comma) or _no_result(c) for c in r if c) >= 1]
    line_numbers, rows_data = [i + 1 for i, _ in data], [r for _, r in data]
    data_rows = {i for i, _ in data}
    assays, attributes, notes, empty, percent_unit = [], {}, [], [], set()
    for j in range(width):
        cells = [rows[i][j] if j < len(rows[i]) else "" for i in names_rows]
        element, unit, method, words = _column_meaning(cells)
        label = " / ".join(c for c in cells if c) or f"column {j + 1}"
        column = [r[j] if j < len(r) else "" for r in rows_data]
        filled = [c for c in column if c]
        readable = sum(_is_value(c, comma) or _no_result(c) for c in filled)
        shown = sum(1 for i in percent_cells.get(j, ()) if i in data_rows)
        if element is not None and unit is None and shown and shown >= 0.5 * len(filled):
            unit = "pct"   # the sheet shows its values as per cent: that is their unit
            percent_unit.add(j)
        if element is not None and filled and readable >= ASSAY_SHARE * len(filled):
            limit = float("nan")
            if limits_row is not None and j < len(rows[limits_row]):
                value = assay_text.assay_value(rows[limits_row][j], _comma_for(rows[limits_row][j], comma))
                limit = abs(value) if value == value and abs(value) != float("inf") else float("nan")
            assays.append(AssayColumn(j, label, element, unit or "ppm", method, words, limit, unit is not None,
                                      kept=_kept_name(cells)))
        elif filled:
            name = label if label not in attributes else f"{label} ({j + 1})"
            attributes[name] = j
        elif element is not None:
            empty.append(label)
    if not assays:
        raise OreMapError(f"No column of {where} reads as assays of an element.", "results",
                          "The header must name the elements (Au, Cu_ppm...) above columns of values.")
    _name_columns(assays)
    if empty:
        notes.append(f"Left out, no value in any row: {', '.join(empty)}.")
    bare = [c.name for c in assays if not c.unit_given]
    if bare:
        notes.append(f"No unit in the header of {len(bare)} assay column(s), taken as ppm: {', '.join(bare)}.")
    notes.extend(_format_notes(rows, data_rows, assays, attributes, percent_cells, percent_unit, formats))
    return LabTable(path, delimiter, bool(comma), [i + 1 for i in header], start + 1, assays, attributes, rows_data,
                    line_numbers, notes, sheet=sheet)


def _format_notes(rows, data_rows, assays, attributes, percent_cells, percent_unit, formats):
    """What the log says of a sheet's cell formats: the columns whose cells read as the per cent they show (and the
    unit that gave), and formulas saved without their values (read as empty)."""
    names = {c.index: c.name for c in assays}
    names.update({j: name for name, j in attributes.items()})
    notes = []
    shown = sorted(j for j, rows_changed in percent_cells.items() if any(i in data_rows for i in rows_changed))
    units = {c.index: c.unit for c in assays}
    if shown:
        said = ", ".join(names.get(j, f"column {j + 1}") + (" (per cent: the header gives no unit)"
                                                             if j in percent_unit else
                                                             f" (the header says {units[j]}: the number shown is "
                                                             f"read in {units[j]})" if units.get(j, "pct") != "pct"
                                                             else "") for j in shown)
        notes.append(f"Cells formatted as percentages read as the per cent they show (a cell showing 1.5 % stores "
                     f"0.015): {said}.")
    blank = collections.Counter(j for i, j in (formats.uncached if formats is not None else ())
                                if i in data_rows and (j >= len(rows[i]) or not rows[i][j]))
    if blank:
        said = ", ".join(f"{names.get(j, f'column {j + 1}')} ({n})" for j, n in sorted(blank.items()))
        notes.append(f"{sum(blank.values())} cell(s) hold formulas that the workbook was saved without the values of, "
                     f"and read as empty: {said}. Open the workbook in a spreadsheet program (which calculates "
                     "them), save it and choose it again.")
    return notes


def _kept_name(cells):
    """The header as the field name when it is one cell of letters, digits and underscores that names an element or
    oxide and its unit (``Au_ppm``, ``Fe2O3_pct``, ``Cu_ppm_511``: a compilation's own names), else ''."""
    filled = [c for c in cells if c]
    if len(filled) != 1 or not re.fullmatch(r"\w+", filled[0], flags=re.ASCII):
        return ""
    column = sh.parse_column(filled[0])
    return filled[0] if column.element is not None and column.unit and not column.assumed_unit \
        and not column.unit_from_table else ""


def _name_columns(assays):
    """Field names: a compilation's own (:func:`_kept_name`), else ``Element_unit[_words]``; the same name twice
    takes the method code, else a number."""
    for c in assays:
        c.name = c.kept or "_".join(p for p in (c.element, c.unit, c.words) if p)
    counts = collections.Counter(c.name for c in assays)
    seen = collections.Counter()
    for c in assays:
        if counts[c.name] > 1:
            code = re.sub(r"\W+", "", re.sub(rf"^{re.escape(c.element)}[-_]", "", c.method, flags=re.IGNORECASE))
            seen[c.name] += 1
            c.name = f"{c.name}_{code}" if code else (c.name if seen[c.name] == 1 else f"{c.name}_{seen[c.name]}")
    counts = collections.Counter(c.name for c in assays)   # methods that repeat too: numbered
    seen = collections.Counter()
    for c in assays:
        if counts[c.name] > 1:
            seen[c.name] += 1
            if seen[c.name] > 1:
                c.name = f"{c.name}_{seen[c.name]}"


def id_text(value):
    """A sample id as matched: stripped text; a whole number stored or written as a float (``1042.0``,
    ``'1042.0'``) as ``'1042'``."""
    if value is None:
        return ""
    if isinstance(value, float) and value == value and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.split(".")[0] if re.fullmatch(r"[-+]?\d+\.0+", text) else text


def _folded(key):
    return re.sub(r"\s+", "", key).casefold()


def match_rows(table, ids, column):
    """Match the rows of the table to sample ids ``ids`` (one per point, :func:`id_text`) through the attribute
    column ``column``: exactly, else ignoring case and spaces ('mu 0003' is 'MU0003'). Returns ``(point of each row
    or -1, ids used by several points)``: a row goes to the first point of its id."""
    keys = [id_text(v) for v in ids]
    exact, folded = {}, {}
    for k, key in enumerate(keys):
        if key:
            exact.setdefault(key, k)
            folded.setdefault(_folded(key), k)
    twice = sorted(key for key, n in collections.Counter(k for k in keys if k).items() if n > 1)
    values = [id_text(v) for v in table.attribute_values(column)]
    return [exact.get(v, folded.get(_folded(v), -1)) if v else -1 for v in values], twice


class AmbiguousIds(OreMapError):
    """Two pairs of points field and file column match the rows to other samples (:func:`match_layer`)."""


#: A pair of points field and file column that matches rows through a running number (1, 2, 3...: a serial column of
#: the file, a layer's feature id) gives way to a pair of real ids that matches at least this share of its samples
#: (and 3): a running number matches a layer of more samples than the file through any of them.
SERIAL_GIVES_WAY = 0.2
#: Pairs matching at least this share of the best pair's samples, but to other points, make the choice ambiguous.
AMBIGUOUS_SHARE = 0.8


def _serial(table, column, rows):
    """True when the rows of ``column`` that match are matched through a running number: whole numbers no larger
    than the number of rows (plus one)."""
    values = [id_text(v) for v, r in zip(table.attribute_values(column), rows) if r >= 0]
    if not values or not all(re.fullmatch(r"\d+", v) for v in values):
        return False
    return max(int(v) for v in values) <= len(table.rows) + 1


def match_layer(table, layer_ids, column=None):
    """Choose the points' id field and the file's id column, and match the rows.

    ``layer_ids``: ``{field: ids of the points}`` (one field when the user named it); ``column``: the file's id
    column, or None. Every pair that matches a row (:func:`match_rows`) is scored by the number of *points* its rows
    reach, less the rows beyond one per point: a column of repeated values (a depth, a batch) matches many rows to few
    points, or to as many points as the ids with more rows. Pairs matched
    through a running number give way to a pair of real ids (:data:`SERIAL_GIVES_WAY`); of the rest, the pair
    reaching the most points wins, unless another one reaches nearly as many (:data:`AMBIGUOUS_SHARE`) with other
    rows: then the choice is the user's. Returns ``(field, column, point of each row or -1, ids used by several
    points)``."""
    found = []
    for field_name, ids in layer_ids.items():
        for name in [column] if column is not None else list(table.attributes):
            rows, twice = match_rows(table, ids, name)
            matched = sum(r >= 0 for r in rows)
            if not matched:
                continue
            points = len({r for r in rows if r >= 0})
            # points reached, less the rows beyond one per point: repeats are few among sample ids (re-assays),
            # many in a column of repeated values (a depth, a batch), which reaches as many points with more rows
            found.append((points - (matched - points), matched, field_name, name, rows, twice))
    if not found:
        raise OreMapError("No sample id of the results file matches an id of the sample points.", "sample_field",
                          "Choose the points of these samples and the field holding the ids the laboratory reports.")
    serial = [f for f in found if _serial(table, f[3], f[4])]
    real = [f for f in found if not _serial(table, f[3], f[4])]
    if serial and real and max(f[0] for f in real) >= max(3, SERIAL_GIVES_WAY * max(f[0] for f in serial)):
        found = real
    found.sort(key=lambda f: (-f[0], -f[1]))
    best = found[0]
    rivals = [f for f in found[1:] if f[0] >= AMBIGUOUS_SHARE * best[0] > 0 and f[4] != best[4]]
    if rivals:
        other = rivals[0]
        raise AmbiguousIds(
            f"Two ways to match the rows give other samples: the points' '{best[2]}' with the file's '{best[3]}' "
            f"({best[1]} rows) and the points' '{other[2]}' with the file's '{other[3]}' ({other[1]} rows).",
            "sample_field", "Choose the points' id field and the file's id column.")
    return best[2], best[3], best[4], best[5]


#: Words naming a coordinate axis in a header (lower case, split at non-letters and digits kept: ``MGA94_E`` is
#: ``mga94``, ``e``): longitude and latitude, eastings and northings, and x and y, whose kind the header does not say.
LON_WORDS = {"lon", "long", "lng", "longitude", "dlong", "dlon", "declon", "declong", "londd", "longdd", "lonwgs84"}
LAT_WORDS = {"lat", "latitude", "dlat", "declat", "latdd", "latwgs84"}
EAST_WORDS = {"e", "me", "east", "easting", "eastings", "utme", "mgae", "amge", "xutm", "xmga", "mgaeast", "amgeast",
              "utmeast"}
NORTH_WORDS = {"n", "mn", "north", "northing", "northings", "utmn", "mgan", "amgn", "yutm", "ymga", "mganorth",
               "amgnorth", "utmnorth"}
XY_WORDS = {"x": "x", "xcoord": "x", "coordx": "x", "pointx": "x",
            "y": "y", "ycoord": "y", "coordy": "y", "pointy": "y"}
#: Words that may stand beside the axis word: datums, projections, zones, units, shapefile cuts (``Northing_k``).
CONTEXT_WORDS = re.compile(r"^((mga|gda|amg|agd|utm|wgs|nad|etrs|osgb|gcs|sirgas|sad|itrf|grs)\d*[a-z]?\d*|\d+[a-z]?|"
                           r"m|metres|meters|dd|deg|degrees|dec|decimal|coord|coords|coordinate|coordinates|"
                           r"collar|sample|sampled|site|pt|point|k|kk|geo|ll|proj|projected|nat|national|grid|"
                           r"field|gps|final)$")
#: Context words that do not tell a pair apart (units, shapefile cuts, generic words): ``Easting`` pairs ``Northing_k``.
PAIR_IGNORED = {"m", "metres", "meters", "k", "kk", "dd", "deg", "degrees", "dec", "decimal", "coord", "coords",
                "coordinate", "coordinates", "point", "pt", "final", "field", "gps", "geo", "ll", "proj", "projected"}
#: Words that make a coordinate column another grid's (a mine or local grid, the original survey's): never the map's.
OTHER_GRID_WORDS = {"local", "loc", "orig", "original", "mine", "minegrid", "lg", "lgrid", "old", "prev", "previous"}
#: Coordinates written for "none" (a sample not located yet): never a place.
PLACEHOLDERS = {-99.0, -999.0, -9999.0, -99999.0, -999999.0}


@dataclass
class Coordinates:
    """Where the samples of a results file lie, from its own coordinate columns (:func:`coordinate_columns`).
    ``kind``: ``"geographic"`` (longitude, latitude), ``"projected"`` (easting, northing) or ``"unknown"`` (x and y:
    the header does not say which; a CRS must)."""
    x_column: str
    y_column: str
    x: list
    y: list
    kind: str
    placeholders: list = field(default_factory=list)   # rows at 0/0 or at a missing code: not located
    out_of_range: list = field(default_factory=list)   # rows of a geographic pair beyond +/-180 and +/-90
    others: list = field(default_factory=list)          # other pairs of the file, not used ('Easting / Northing')
    written: list = field(default_factory=list)         # rows whose coordinates were written in degrees, minutes
    #                                                     and seconds, or with units ('500000mE'), and read as such

    @property
    def geographic(self):
        return self.kind == "geographic"

    def located(self):
        """Row numbers (0-based) with both coordinates, no placeholder and (longitude and latitude) in range."""
        bad = set(self.placeholders) | set(self.out_of_range)
        return [i for i, (a, b) in enumerate(zip(self.x, self.y))
                if math.isfinite(a) and math.isfinite(b) and i not in bad]


def _axis(label):
    """``(axis, kind, context)`` of a column's header, or None: axis ``'x'`` or ``'y'``, kind ``'geographic'``,
    ``'projected'`` or ``'unknown'`` (plain X and Y), context the header's other words (``MGA94_E`` and ``MGA94_N``
    share ``mga94``: a pair). A header holding a word that is neither an axis nor a datum, projection, zone or unit
    names no coordinate (``N_Samples``, ``E_value``), nor one of another grid (``X_LOCAL``, ``ORIG_EAST``), an
    elevation or a zone."""
    for cell in label.split(" / "):
        words = [w for w in re.split(r"[^a-z0-9]+", cell.lower()) if w]
        if not words or any(w in OTHER_GRID_WORDS for w in words):
            continue
        found = []
        for k, w in enumerate(words):
            if w in LON_WORDS or w.startswith("longit"):
                found.append((k, "x", "geographic"))
            elif w in LAT_WORDS or w.startswith("latit"):
                found.append((k, "y", "geographic"))
            elif w in EAST_WORDS:
                found.append((k, "x", "projected"))
            elif w in NORTH_WORDS:
                found.append((k, "y", "projected"))
            elif w in XY_WORDS:
                found.append((k, XY_WORDS[w], "unknown"))
        if len(found) != 1:
            continue
        k, axis, kind = found[0]
        rest = words[:k] + words[k + 1:]
        if not all(CONTEXT_WORDS.match(w) for w in rest):
            continue
        if "grid" in rest and not ({"nat", "national"} & set(rest)):
            continue   # a Grid_E alone is a mine grid as often as the map's
        if kind == "unknown" and any(re.match(r"(mga|amg|utm)", w) for w in rest):
            kind = "projected"   # X_MGA, Y_UTM
        return axis, kind, " ".join(w for w in rest if w not in PAIR_IGNORED)
    return None


_HEMISPHERES = {"x": {"E": 1.0, "W": -1.0}, "y": {"N": 1.0, "S": -1.0}}
_SEXAGESIMAL_MARKS = re.compile(r"\s*(?:[°º˚]|(?<=\d)(?:deg|d|min|m|sec|s)|:|''|[\"″”]|['′’])\s*|\s+",
                                re.IGNORECASE)
_DEGREE_MARKS = re.compile(r"[°º˚'′’\"″”]|\d\s*(deg|d|min|m|sec|s)(?![a-z])|^\s*[NSEW]\s*[\d+-]"
                           r"|\d[\s°º˚'′’\"″”]*[NSEW]\s*$", re.IGNORECASE)


def sexagesimal(text, axis):
    """Degrees written as degrees, minutes and seconds (``117°30'15.5"E``, ``S 32 15 30``, ``-32:15:30``,
    ``32d15.5m S``, ``32.25S``): decimal degrees, negative to the south and west; NaN for anything else. ``axis``:
    ``'x'`` (a longitude: E or W) or ``'y'`` (a latitude: N or S); a hemisphere of the other axis is no coordinate
    here. Minutes and seconds must be under 60, and only the last part may have decimals."""
    t = text.strip()
    hemisphere = None
    first = re.match(r"([NSEWnsew])\s*(?=[\d+-])", t)
    last = re.search(r"(?<=[\d°º˚'′’\"″”\s])([NSEWnsew])$", t)
    if first:
        hemisphere, t = first.group(1).upper(), t[first.end():]
    elif last and not (last.group(1) in "sS" and re.search(r"\d$", t[:last.start()])
                       and re.search(r"\d\s*(m|min)(?![a-z])", t, re.IGNORECASE)):
        # (a final s right after the seconds of a value with a minutes letter, '45d30m15s', is the seconds' mark)
        hemisphere, t = last.group(1).upper(), t[:last.start()]
    if hemisphere is not None and hemisphere not in _HEMISPHERES[axis]:
        return float("nan")
    t = t.strip()
    sign = -1.0 if t.startswith("-") else 1.0
    t = t.lstrip("+-").strip()
    if not t[:1].isdigit():
        return float("nan")
    marked = bool(re.search(r"[^\d.,]", t))
    parts = [p for p in _SEXAGESIMAL_MARKS.split(t) if p]
    if not 1 <= len(parts) <= 3 or not (marked or hemisphere) \
            or not all(re.fullmatch(r"\d+([.,]\d+)?", p) for p in parts) \
            or any(not p.isdigit() for p in parts[:-1]):
        return float("nan")
    numbers = [float(p.replace(",", ".")) for p in parts] + [0.0, 0.0]
    if numbers[1] >= 60 or numbers[2] >= 60:
        return float("nan")
    value = numbers[0] + numbers[1] / 60 + numbers[2] / 3600
    return -value if sign < 0 or (hemisphere and _HEMISPHERES[axis][hemisphere] < 0) else value


def _metres(table, text, axis):
    """A projected coordinate written with its unit or axis letter (``500000mE``, ``6500000 mN``, ``431250 m``):
    the number; NaN for anything else (a northing's letter on an easting included)."""
    match = re.fullmatch(r"\s*([-+]?\d[\d.,]*)\s*(m|metres|meters)?\s*([EN])?\s*", text, re.IGNORECASE)
    if not match or not (match.group(2) or match.group(3)) \
            or (match.group(3) and match.group(3).upper() != {"x": "E", "y": "N"}[axis]):
        return float("nan")
    try:
        return table.number(match.group(1))
    except ValueError:
        return float("nan")


def _numbers(table, name, axis=None, kind=None):
    """The values of attribute column ``name`` as floats (NaN where a cell is empty or no number), read as the file
    writes numbers: a workbook's number cells with a point, decimal commas where the file has them, thousands
    separators ('7,000,000'). For a coordinate column (``axis`` 'x' or 'y' and its ``kind``), also degrees, minutes
    and seconds (:func:`sexagesimal`, geographic) or metres with their unit (``500000mE``; projected or unknown):
    ``(values, written)``, ``written`` the rows read so."""
    out, written = [], []
    for i, t in enumerate(table.attribute_values(name)):
        try:
            out.append(table.number(t) if t else float("nan"))
        except ValueError:
            if axis is None:
                out.append(float("nan"))
                continue
            value = sexagesimal(t, axis) if kind == "geographic" else _metres(table, t, axis)
            out.append(value)
            if value == value:
                written.append(i)
    return out if axis is None else (out, written)


def coordinate_columns(table, kinds=("geographic",)):
    """The samples' coordinates from the table's own columns (a soil survey exported with its eastings and northings),
    as :class:`Coordinates`, or None where no pair of coordinate columns of one of ``kinds`` locates a row.

    Columns pair by axis and context (``MGA94_E`` with ``MGA94_N``, ``Longitude`` with ``Latitude``; never a longitude
    with a northing). Of several pairs, the one that locates the most rows is taken (the others listed). Rows at 0/0 or
    at a missing code (-9999) are placeholders, and a geographic pair's rows beyond +/-180 and +/-90 out of range: not
    located."""
    axes = _axes(table)
    pairs = []
    for xname, xkind, xcontext in axes["x"]:
        for yname, ykind, ycontext in axes["y"]:
            if xkind != ykind or xcontext != ycontext or xkind not in kinds:
                continue
            (xs, xwritten), (ys, ywritten) = _numbers(table, xname, "x", xkind), _numbers(table, yname, "y", ykind)
            found = Coordinates(xname, yname, xs, ys, xkind, written=sorted(set(xwritten) | set(ywritten)))
            for i, (a, b) in enumerate(zip(xs, ys)):
                if not (math.isfinite(a) and math.isfinite(b)):
                    continue
                if (a == 0 and b == 0) or a in PLACEHOLDERS or b in PLACEHOLDERS:
                    found.placeholders.append(i)
                elif xkind == "geographic" and (abs(a) > 180 or abs(b) > 90):
                    found.out_of_range.append(i)
            pairs.append(found)
    pairs = [p for p in pairs if p.located() or p.out_of_range]
    if not pairs:
        return None
    pairs.sort(key=lambda p: -len(p.located()))
    best = pairs[0]
    located = set(best.located())
    best.written = [i for i in best.written if i in located]   # (the rows placed so, for the log's count and example)
    best.others = [f"{p.x_column} / {p.y_column}" for p in pairs[1:]]
    return best


def _axes(table):
    """``{'x': [(column, kind, context)], 'y': [...]}``: the table's coordinate columns (:func:`_axis`)."""
    axes = {"x": [], "y": []}
    for name in table.attributes:
        meaning = _axis(name)
        if meaning is not None:
            axes[meaning[0]].append((name, meaning[1], meaning[2]))
    return axes


def coordinate_kinds(table):
    """The kinds of coordinate pairs a table's headers name (``{'projected', 'unknown'}``), values not read."""
    axes = _axes(table)
    ys = {(kind, context) for _, kind, context in axes["y"]}
    return {kind for _, kind, context in axes["x"] if (kind, context) in ys}


def id_column(table):
    """The attribute column that most likely holds the sample ids, for messages: the first one whose header reads as
    an identifier (``SampleID``, ``Sample No``) and names no coordinate, else the first that names no coordinate."""
    names = [n for n in table.attributes if _axis(n) is None]
    return next((n for n in names if any(sh.is_identifier_name(c) for c in n.split(" / "))),
                names[0] if names else next(iter(table.attributes), None))


def zones(table, rows):
    """The distinct values of a zone column (``Zone``, ``UTM_Zone``, ``MGA_Zone``) in ``rows``: several zones cannot
    share one projected CRS."""
    for name in table.attributes:
        words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
        if "zone" in words:
            values = table.attribute_values(name)
            return name, sorted({values[i] for i in rows if values[i]})
    return None, []


@dataclass
class Reassay:
    """An element's best values (:func:`reassays`), the column they are written in, and what survey hygiene said of
    the values over the upper limit (``notes``)."""
    name: str
    element: str
    values: list
    notes: list


def reassays(table):
    """For each element with several columns, one of them with values over the upper limit ('>10.0', Au-AA23): the
    element's best values as survey hygiene makes them (:func:`survey_hygiene.apply_plan`: the first column, a value
    over the limit replaced by another column's re-assay at or above it, such as Au-GRA21), where they differ from
    the first column. Named ``Element_unit`` (``Au_ppm``; ``_best`` added where a column has that name) and written
    before the element's columns, so that the geochemistry algorithms, which read an element's first column, read
    them: the flag '>' does not survive a numeric field, and the written limit (10) was read as measured and the
    re-assay (15.2) never used."""
    by_element = {}
    for column in table.assays:
        by_element.setdefault(column.element, []).append(column)
    names = {c.name for c in table.assays}
    found = []
    for element, columns in by_element.items():
        if len(columns) < 2 or not any(table.over_limit(c) for c in columns):
            continue
        fields = [c.name for c in columns]
        values = np.column_stack([table.values(c) for c in columns])
        over = np.zeros(values.shape, dtype=bool)
        for j, column in enumerate(columns):
            over[table.over_limit(column), j] = True
        plan = sh.plan_elements(fields, values, explicit=True)
        if len(plan.elements) != 1:
            continue
        best = sh.apply_plan(plan, fields, values, over=over)[:, 0]
        first = columns[fields.index(plan.columns[plan.elements[0]][0])]   # the column (and unit) the plan keeps
        if np.array_equal(best, values[:, columns.index(first)], equal_nan=True):
            continue
        name = f"{element}_{first.unit}"
        notes = [line for line in plan.log if "upper limit" in line]
        found.append(Reassay(name if name not in names else f"{name}_best", element, best.tolist(), notes))
    return found

