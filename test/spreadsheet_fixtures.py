"""Spreadsheet workbooks written as the standards define them, without a spreadsheet library, for the readers' tests.

- ``write_xlsx``: Office Open XML SpreadsheetML (ECMA-376 Part 1, the package Excel writes): ``[Content_Types].xml``,
  the package and workbook relationships, ``xl/workbook.xml`` naming the sheets (``state="hidden"`` for hidden ones),
  one ``xl/worksheets/sheetN.xml`` each (a chart sheet as ``xl/chartsheets/sheetN.xml``), ``xl/styles.xml`` and
  ``xl/sharedStrings.xml``: text cells are indexes into the shared strings (``t="s"``), as Excel stores them, numbers
  are ``<v>`` values (the shortest text of the double, a whole number without a point), empty cells are absent (or,
  with ``pad_to``, empty styled cells out to that column, as a sheet formatted beyond its data holds) and each cell
  carries its A1 reference (``r``).
- ``write_ods``: OpenDocument spreadsheet (OASIS ODF 1.2, LibreOffice's format): an uncompressed ``mimetype`` entry
  first, ``META-INF/manifest.xml`` and ``content.xml`` with one ``table:table`` per sheet; numbers as
  ``office:value-type="float"`` with ``office:value``, text as ``text:p``, runs of empty cells and rows repeated
  (``number-columns-repeated``, ``number-rows-repeated``) as LibreOffice writes them.

Sheets are given as ``{name: rows}``, a row a list of cells: ``str`` (text), ``int`` or ``float`` (a number), ``None``
(empty), :class:`Percent` (a number formatted as a percentage: the fraction stored), :class:`Formula` (a formula, with
or without its saved value). ``merged`` gives each sheet's merged ranges in A1 notation (``{"Results": ["C1:E1"]}``):
SpreadsheetML's ``mergeCells``; OpenDocument's ``number-columns-spanned``/``number-rows-spanned`` on the first cell
and ``covered-table-cell`` for the others.
"""

import re
import zipfile
from xml.sax.saxutils import escape, quoteattr


class Percent(float):
    """A number cell formatted as a percentage: stored as the fraction (0.015), shown as 1.50 %. ``custom``: a
    workbook-defined format code ``0.0%`` (SpreadsheetML numFmt 164) instead of the built-in ``0.00%`` (numFmtId 10)."""

    def __new__(cls, value, custom=False):
        self = super().__new__(cls, value)
        self.custom = custom
        return self


class Formula:
    """A formula cell (``=B2*10000``), saved with its value or, ``value=None``, without it (as a program that does not
    calculate writes it)."""

    def __init__(self, formula, value=None):
        self.formula, self.value = formula, value


def _place(ref):
    letters, digits = re.fullmatch(r"([A-Z]+)(\d+)", ref).groups()
    column = 0
    for letter in letters:
        column = column * 26 + ord(letter) - 64
    return int(digits) - 1, column - 1


def _spans(ranges):
    """``{(row, column) of the first cell: (rows, columns)}`` and the set of covered places, of A1 ranges."""
    first, covered = {}, set()
    for text in ranges:
        (r0, c0), (r1, c1) = (_place(p) for p in text.split(":"))
        first[(r0, c0)] = (r1 - r0 + 1, c1 - c0 + 1)
        covered.update((r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1) if (r, c) != (r0, c0))
    return first, covered


def _column_letters(j):
    letters = ""
    j += 1
    while j:
        j, rest = divmod(j - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def write_xlsx(path, sheets, hidden=(), charts=(), pad_to=None, merged=None):
    strings, index = [], {}
    parts = []
    for name, rows in sheets.items():
        if name in charts:
            parts.append('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<chartsheet '
                         'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetViews>'
                         '<sheetView workbookViewId="0"/></sheetViews></chartsheet>')
            continue
        xml_rows = []
        for i, row in enumerate(rows, 1):
            cells = []
            for j, cell in enumerate(row):
                ref = f"{_column_letters(j)}{i}"
                if cell is None or cell == "":
                    continue
                if isinstance(cell, str):
                    if cell not in index:
                        index[cell] = len(strings)
                        strings.append(cell)
                    cells.append(f'<c r="{ref}" t="s"><v>{index[cell]}</v></c>')
                elif isinstance(cell, Formula):
                    saved = "" if cell.value is None else f"<v>{_number(cell.value)}</v>"
                    cells.append(f'<c r="{ref}"><f>{escape(cell.formula.lstrip("="))}</f>{saved}</c>')
                elif isinstance(cell, Percent):
                    cells.append(f'<c r="{ref}" s="{2 if cell.custom else 1}"><v>{_number(cell)}</v></c>')
                else:
                    cells.append(f'<c r="{ref}"><v>{_number(cell)}</v></c>')
            if pad_to:
                cells.append(f'<c r="{pad_to}{i}" s="0"/>')
            if cells:   # Excel writes no element for an empty row
                xml_rows.append(f'<row r="{i}">{"".join(cells)}</row>')
        ranges = (merged or {}).get(name, [])
        merges = (f'<mergeCells count="{len(ranges)}">' + "".join(f'<mergeCell ref="{r}"/>' for r in ranges)
                  + "</mergeCells>") if ranges else ""
        parts.append('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                     '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                     f'<sheetData>{"".join(xml_rows)}</sheetData>{merges}</worksheet>')
    names = list(sheets)
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        + "".join(f'<Override PartName="/xl/{_folder(n, charts)}/sheet{k}.xml" '
                  f'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.{_folder(n, charts)[:-1]}'
                  '+xml"/>' for k, n in enumerate(names, 1))
        + '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        + '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    root_rels = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{package}">'
                 f'<Relationship Id="rId1" Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    workbook = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{main}" '
                f'xmlns:r="{office}"><sheets>'
                + "".join(f'<sheet name={quoteattr(n)} sheetId="{k}"{_state(n, hidden)} r:id="rId{k}"/>'
                          for k, n in enumerate(names, 1))
                + "</sheets></workbook>")
    workbook_rels = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{package}">'
                     + "".join(f'<Relationship Id="rId{k}" Type="{office}/{_folder(n, charts)[:-1]}" '
                               f'Target="{_folder(n, charts)}/sheet{k}.xml"/>' for k, n in enumerate(names, 1))
                     + f'<Relationship Id="rId{len(names) + 1}" Type="{office}/sharedStrings" '
                     'Target="sharedStrings.xml"/>'
                     f'<Relationship Id="rId{len(names) + 2}" Type="{office}/styles" Target="styles.xml"/>'
                     '</Relationships>')
    styles = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{main}">'
              '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.0%"/></numFmts>'
              '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
              '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
              '<borders count="1"><border/></borders>'
              '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
              '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
              '<xf numFmtId="10" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
              '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
              "</styleSheet>")
    shared = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{main}" count="{len(strings)}" '
              f'uniqueCount="{len(strings)}">' + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", root_rels)
        z.writestr("xl/workbook.xml", workbook)
        z.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        for k, (name, part) in enumerate(zip(names, parts), 1):
            z.writestr(f"xl/{_folder(name, charts)}/sheet{k}.xml", part)
        z.writestr("xl/styles.xml", styles)
        z.writestr("xl/sharedStrings.xml", shared)
    return str(path)


def _number(value):
    """A number as both formats store it: the shortest text that reads back as the same double, a whole number
    without a point (73, not 73.0)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _folder(name, charts):
    return "chartsheets" if name in charts else "worksheets"


def _state(name, hidden):
    return ' state="hidden"' if name in hidden else ""


def write_ods(path, sheets, merged=None):
    tables = []
    for name, rows in sheets.items():
        width = max((len(r) for r in rows), default=1)
        first, covered = _spans((merged or {}).get(name, []))
        xml_rows, blank = [], 0
        for i, row in enumerate(rows):
            if all(c is None or c == "" for c in row) and not any((i, j) in covered for j in range(width)):
                blank += 1
                continue
            if blank:
                xml_rows.append(f'<table:table-row table:number-rows-repeated="{blank}">'
                                f'<table:table-cell table:number-columns-repeated="{width}"/></table:table-row>')
                blank = 0
            cells, empty = [], 0
            for j, cell in enumerate(list(row) + [None] * (width - len(row))):
                if (i, j) not in covered and (cell is None or cell == ""):
                    empty += 1
                    continue
                if empty:
                    cells.append(f'<table:table-cell table:number-columns-repeated="{empty}"/>')
                    empty = 0
                if (i, j) in covered:
                    cells.append("<table:covered-table-cell/>")
                    continue
                span = first.get((i, j))
                spanned = (f' table:number-rows-spanned="{span[0]}" table:number-columns-spanned="{span[1]}"'
                           if span else "")
                if isinstance(cell, str):
                    cells.append(f'<table:table-cell{spanned} office:value-type="string"><text:p>{escape(cell)}'
                                 "</text:p></table:table-cell>")
                elif isinstance(cell, Formula):
                    formula = quoteattr("of:" + cell.formula)
                    cells.append(f"<table:table-cell{spanned} table:formula={formula}/>" if cell.value is None else
                                 f'<table:table-cell{spanned} table:formula={formula} office:value-type="float" '
                                 f'office:value="{_number(cell.value)}"><text:p>{_number(cell.value)}</text:p>'
                                 "</table:table-cell>")
                elif isinstance(cell, Percent):
                    cells.append(f'<table:table-cell{spanned} office:value-type="percentage" '
                                 f'office:value="{_number(cell)}"><text:p>{float(cell) * 100:.2f}%</text:p>'
                                 "</table:table-cell>")
                else:
                    cells.append(f'<table:table-cell{spanned} office:value-type="float" office:value="{_number(cell)}">'
                                 f"<text:p>{_number(cell)}</text:p></table:table-cell>")
            if empty:
                cells.append(f'<table:table-cell table:number-columns-repeated="{empty}"/>')
            xml_rows.append(f'<table:table-row>{"".join(cells)}</table:table-row>')
        tables.append(f"<table:table table:name={quoteattr(name)}>"
                      f'<table:table-column table:number-columns-repeated="{width}"/>{"".join(xml_rows)}</table:table>')
    content = ('<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
               f'<office:body><office:spreadsheet>{"".join(tables)}</office:spreadsheet></office:body>'
               "</office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" manifest:version="1.2" '
                'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet",
                   compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/manifest.xml", manifest)
        z.writestr("content.xml", content)
    return str(path)
