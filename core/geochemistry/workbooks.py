"""Workbooks as laboratories and compilations send them: Excel ``.xlsx``/``.xlsm`` and OpenDocument ``.ods``.

GDAL's XLSX and ODS drivers read the cells' values (:func:`workbook_sheets`); what a sheet says beyond them is read
from the package's XML (:func:`sheet_formats`): cells formatted as percentages (a '1.5 %' cell stores 0.015), merged
cells (a method code written once over the columns it covers) and formulas saved without their values (a file written
by a program that does not calculate). The format is known by the file's contents (:func:`workbook_driver`), not its
name. Pure Python and GDAL: no QGIS.
"""

import io
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from xml.etree import ElementTree

from ..engine.errors import OreMapError

#: The start of a legacy Excel file (OLE2 compound document: Excel 97-2003 ``.xls``, or an encrypted workbook).
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def workbook_driver(path):
    """``'XLSX'`` or ``'ODS'`` for a workbook (by its contents: a zip package of a workbook), None for text. A
    legacy Excel 97-2003 ``.xls`` or password-protected workbook (OLE2 compound documents), an Excel binary ``.xlsb``
    workbook, an HTML page saved as ``.xls`` or another zip archive is refused, with what to do."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(512)
    except OSError as exc:
        raise OreMapError(f"Cannot read '{path}': {exc.strerror or exc}.", "results",
                          "Choose a readable results file (CSV, text, .xlsx or .ods).") from None
    if magic[:8] == OLE2_MAGIC:
        raise OreMapError(f"'{path}' is an Excel 97-2003 workbook (.xls) or a password-protected one, which OreMap "
                          "does not read.", "results",
                          "Open it in the spreadsheet program and save it as an Excel workbook (.xlsx) without a "
                          "password, or as CSV, and choose that file.")
    if re.match(rb"\s*(<!doctype html|<html|<table|<\?xml[^>]*>\s*<html)", magic[:200].lower()):
        raise OreMapError(f"'{path}' is a web page (HTML), as portals export tables under a spreadsheet's name.",
                          "results", "Open it in the spreadsheet program and save it as .xlsx or CSV.")
    if magic[:4] != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(path) as package:
            members = set(package.namelist())
            kind = package.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in members else ""
    except (zipfile.BadZipFile, OSError) as exc:
        raise OreMapError(f"'{path}' is a damaged zip package ({exc}).", "results",
                          "Open it in the spreadsheet program and save it again, or save the sheet as CSV.") from None
    if "xl/workbook.xml" in members:
        return "XLSX"
    if kind == "application/vnd.oasis.opendocument.spreadsheet":
        return "ODS"
    if "xl/workbook.bin" in members:
        raise OreMapError(f"'{path}' is an Excel binary workbook (.xlsb), which OreMap does not read.", "results",
                          "Save it as an Excel workbook (.xlsx) or as CSV and choose that file.")
    raise OreMapError(f"'{path}' is a zip archive, not a results table or workbook.", "results",
                      "Unpack it and choose the results file (CSV, text, .xlsx or .ods).")


def tabs(path, driver):
    """``[(name, hidden)]``: an Excel workbook's tabs in order, chart sheets included (GDAL lists tables only), from
    ``xl/workbook.xml`` (``state="hidden"`` or ``"veryHidden"``); [] for OpenDocument (its tables are GDAL's) or
    where the part cannot be read."""
    if driver != "XLSX":
        return []
    try:
        with zipfile.ZipFile(path) as package:
            root = ElementTree.fromstring(package.read("xl/workbook.xml"))
    except (zipfile.BadZipFile, KeyError, OSError, ElementTree.ParseError):
        return []
    return [(e.get("name", ""), e.get("state", "visible") != "visible")
            for e in root.iter() if _local(e.tag) == "sheet"]


def workbook_sheets(path, driver=None, shown=None):
    """The sheets of a workbook as ``[(name, rows)]``, each row a list of stripped text cells ('' when empty), read by
    GDAL's XLSX or ODS driver with no header row and every cell as text (numbers as GDAL writes them: ``0.005``,
    ``1480``, ``1e-05``; a cell formatted as a percentage as its fraction, 0.03 for 3 %: :func:`sheet_formats` says
    which). Rows keep their places (a blank row stays, so line numbers are sheet rows); columns empty in every row
    are cut from the right (cells only formatted out to column Z or beyond widen GDAL's rows). ``shown``: the name
    errors give the file (a copy is read where the name's ending is not the format's)."""
    from osgeo import gdal

    driver = driver or workbook_driver(path)
    suffix = {"XLSX": (".xlsx", ".xlsm"), "ODS": (".ods",)}[driver]
    if not str(path).lower().endswith(suffix):
        # GDAL knows a workbook by its name's ending: read a copy named so (a results.dat that is a workbook)
        with tempfile.TemporaryDirectory(prefix="oremap_workbook_") as folder:
            copy = os.path.join(folder, "results" + suffix[0])
            shutil.copyfile(path, copy)
            return workbook_sheets(copy, driver, shown=path)
    # GDAL before 3.8 takes these as configuration options only (read when a sheet is first read, so they stay set
    # on this thread until the sheets are read), 3.8 on as open options too
    options = {f"OGR_{driver}_HEADERS": "DISABLE", f"OGR_{driver}_FIELD_TYPES": "STRING"}
    before = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    dataset = None
    try:
        for key, value in options.items():
            gdal.SetThreadLocalConfigOption(key, value)
        gdal.ErrorReset()
        try:
            dataset = gdal.OpenEx(str(path), gdal.OF_VECTOR | gdal.OF_READONLY, allowed_drivers=[driver])
            problem = gdal.GetLastErrorMsg()
        except RuntimeError as exc:   # where the caller turned GDAL's exceptions on
            dataset, problem = None, str(exc)
        if dataset is None:
            problem = problem.strip().rstrip(".")
            raise OreMapError(f"Cannot read the workbook '{shown or path}'" + (f": {problem}." if problem else "."),
                              "results",
                              "Open it in the spreadsheet program and save it again, or save the sheet as CSV.")
        sheets = []
        for k in range(dataset.GetLayerCount()):
            layer = dataset.GetLayer(k)
            count = layer.GetLayerDefn().GetFieldCount()
            rows = [[feature.GetFieldAsString(j).strip() if feature.IsFieldSetAndNotNull(j) else ""
                     for j in range(count)] for feature in layer]
            width = max((j + 1 for r in rows for j, c in enumerate(r) if c), default=0)
            sheets.append((layer.GetName(), [r[:width] for r in rows]))
            layer = None
    finally:
        dataset = None
        for key, value in before.items():
            gdal.SetThreadLocalConfigOption(key, value)
        gdal.PopErrorHandler()
    return sheets


@dataclass
class SheetFormats:
    """What a sheet's cells say beyond the values GDAL reads, as 0-based ``(row, column)`` places of
    :func:`workbook_sheets`'s rows (GDAL keeps a cell's place: row 1 and column A are index 0)."""
    #: Number cells formatted as percentages: the workbook stores the fraction (0.015), the sheet shows 1.5 %.
    percent: set = field(default_factory=set)
    #: Merged cells as ``(first row, first column, last row, last column)``, inclusive: the value is in the first.
    merged: list = field(default_factory=list)
    #: Formula cells saved without the value they compute.
    uncached: set = field(default_factory=set)


BUILTIN_PERCENT_FORMATS = {9, 10}
"""SpreadsheetML's built-in number formats that show a percentage (ECMA-376 Part 1, 18.8.30: ``0%``, ``0.00%``)."""

MAX_REPEATED_CELLS = 100_000
"""Cells of one OpenDocument run (a row or cell repeated) beyond which it is taken as formatting only: LibreOffice
writes a sheet's unused rows as one row repeated a million times."""


def _local(tag):
    """An element's or attribute's name without its namespace (Strict and Transitional SpreadsheetML differ there)."""
    return tag.rsplit("}", 1)[-1]


def _attribute(element, name):
    """The attribute ``name`` of ``element`` in whatever namespace."""
    return next((v for k, v in element.attrib.items() if _local(k) == name), None)


def percent_format(code):
    """True for a number format code that shows a percentage: a '%' outside quoted text and not escaped
    (``0.0%``; not ``0.0"%"`` nor ``0.0\\%``, which write the sign as text after the number itself)."""
    return "%" in re.sub(r'"[^"]*"|\\.', "", code or "")


def _cell_place(ref):
    """``(row, column)``, 0-based, of an A1 reference ('B12' is (11, 1)); None for anything else."""
    match = re.fullmatch(r"\$?([A-Za-z]{1,3})\$?(\d+)", ref or "")
    if not match:
        return None
    column = 0
    for letter in match.group(1).upper():
        column = column * 26 + ord(letter) - 64
    return int(match.group(2)) - 1, column - 1


def _xlsx_part(target):
    """A relationship's target inside the package: relative to ``xl/`` or absolute from the package's root."""
    return target.lstrip("/") if target.startswith("/") else os.path.normpath("xl/" + target).replace(os.sep, "/")


def _xlsx_formats(package):
    workbook = ElementTree.fromstring(package.read("xl/workbook.xml"))
    relations = ElementTree.fromstring(package.read("xl/_rels/workbook.xml.rels"))
    parts = {_attribute(r, "Id"): _xlsx_part(_attribute(r, "Target") or "") for r in relations.iter()
             if _local(r.tag) == "Relationship"}
    percent_styles = set()
    if "xl/styles.xml" in package.namelist():
        styles = ElementTree.fromstring(package.read("xl/styles.xml"))
        codes = {int(_attribute(e, "numFmtId")): _attribute(e, "formatCode") for e in styles.iter()
                 if _local(e.tag) == "numFmt" and (_attribute(e, "numFmtId") or "").isdigit()}
        cell_xfs = next((e for e in styles.iter() if _local(e.tag) == "cellXfs"), None)
        for k, xf in enumerate(x for x in (cell_xfs if cell_xfs is not None else []) if _local(x.tag) == "xf"):
            number_format = int(_attribute(xf, "numFmtId") or 0)
            if number_format in BUILTIN_PERCENT_FORMATS or percent_format(codes.get(number_format)):
                percent_styles.add(k)
    formats = {}
    for sheet in (e for e in workbook.iter() if _local(e.tag) == "sheet"):
        part = parts.get(_attribute(sheet, "id"))
        if not part or part not in package.namelist() or "/worksheets/" not in "/" + part:
            continue
        found = formats[_attribute(sheet, "name") or ""] = SheetFormats()
        data = package.read(part)
        used = {int(k) for k in set(re.findall(rb'\ss="(\d+)"', data))}
        if not (used & percent_styles or re.search(rb"<(\w+:)?(f|mergeCell)[\s/>]", data)):
            continue   # (nothing to find: parsing a large sheet's cells one by one takes a second)
        row, column = -1, -1
        with io.BytesIO(data) as stream:
            for event, element in ElementTree.iterparse(stream, events=("start", "end")):
                tag = _local(element.tag)
                if event == "start":
                    if tag == "row":   # (a cell without its reference is the next of its row)
                        number = _attribute(element, "r")
                        row, column = (int(number) - 1 if number and number.isdigit() else row + 1), -1
                    continue
                if tag == "c":
                    place = _cell_place(_attribute(element, "r"))
                    row, column = place if place else (max(row, 0), column + 1)
                    kind = _attribute(element, "t") or "n"
                    children = {_local(child.tag): child for child in element}
                    value = children.get("v")
                    if kind == "n" and value is not None and int(_attribute(element, "s") or 0) in percent_styles:
                        found.percent.add((row, column))
                    # (a formula whose result is empty text is saved with an empty <v>: calculated)
                    if "f" in children and value is None:
                        found.uncached.add((row, column))
                    element.clear()
                elif tag == "row":
                    element.clear()
                elif tag == "mergeCell":
                    corners = [_cell_place(p) for p in (_attribute(element, "ref") or "").split(":")]
                    if len(corners) == 2 and all(corners):
                        (r0, c0), (r1, c1) = corners
                        found.merged.append((min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)))
    return formats


_ODS_VALUES = {"value", "date-value", "time-value", "boolean-value", "string-value"}


def _ods_formats(package):
    formats, found, row = {}, None, 0
    data = package.read("content.xml")
    if not re.search(rb'value-type="percentage"|:formula=|-spanned=', data):
        return {}   # (nothing to find: parsing a large sheet's cells one by one takes a second)
    with io.BytesIO(data) as stream:
        for event, element in ElementTree.iterparse(stream, events=("start", "end")):
            tag = _local(element.tag)
            if event == "start":
                if tag == "table" and _attribute(element, "name") is not None:
                    found, row = formats.setdefault(_attribute(element, "name"), SheetFormats()), 0
                continue
            if tag != "table-row" or found is None:
                continue
            repeat = int(_attribute(element, "number-rows-repeated") or 1)
            column = 0
            for cell in element:
                if _local(cell.tag) not in ("table-cell", "covered-table-cell"):
                    continue
                across = int(_attribute(cell, "number-columns-repeated") or 1)
                if _local(cell.tag) == "table-cell" and repeat * across <= MAX_REPEATED_CELLS:
                    places = [(row + i, column + j) for i in range(repeat) for j in range(across)]
                    if _attribute(cell, "value-type") == "percentage":
                        found.percent.update(places)
                    has_value = any(_local(k) in _ODS_VALUES for k in cell.attrib) or "".join(cell.itertext()).strip()
                    if _attribute(cell, "formula") is not None and not has_value:
                        found.uncached.update(places)
                    wide = int(_attribute(cell, "number-columns-spanned") or 1)
                    tall = int(_attribute(cell, "number-rows-spanned") or 1)
                    if wide > 1 or tall > 1:
                        found.merged.extend((r, c, r + tall - 1, c + wide - 1) for r, c in places)
                column += across
            row += repeat
            element.clear()
    return formats


def sheet_formats(path, driver=None):
    """``{sheet name: SheetFormats}`` of a workbook's worksheets: cells formatted as percentages, merged cells and
    formulas without a saved value, read from the package's XML (SpreadsheetML styles, ``mergeCells`` and ``<f>``
    cells without ``<v>``, ECMA-376 Part 1 §18.3 and §18.8; OpenDocument's ``office:value-type="percentage"``,
    ``table:number-columns-spanned``/``number-rows-spanned`` and ``table:formula`` cells without ``office:value``, ODF
    1.2 Part 1 §9.1 and §19). A part that cannot be read gives no formats (the values still read): {}."""
    driver = driver or workbook_driver(path)
    try:
        with zipfile.ZipFile(path) as package:
            return _xlsx_formats(package) if driver == "XLSX" else _ods_formats(package)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, ElementTree.ParseError):
        return {}
