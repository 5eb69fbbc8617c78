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
(empty).
"""

import zipfile
from xml.sax.saxutils import escape, quoteattr


def _column_letters(j):
    letters = ""
    j += 1
    while j:
        j, rest = divmod(j - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def write_xlsx(path, sheets, hidden=(), charts=(), pad_to=None):
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
                else:
                    cells.append(f'<c r="{ref}"><v>{_number(cell)}</v></c>')
            if pad_to:
                cells.append(f'<c r="{pad_to}{i}" s="0"/>')
            if cells:   # Excel writes no element for an empty row
                xml_rows.append(f'<row r="{i}">{"".join(cells)}</row>')
        parts.append('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                     '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                     f'<sheetData>{"".join(xml_rows)}</sheetData></worksheet>')
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
              '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
              '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
              '<borders count="1"><border/></borders>'
              '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
              '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
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


def write_ods(path, sheets):
    tables = []
    for name, rows in sheets.items():
        width = max((len(r) for r in rows), default=1)
        xml_rows, blank = [], 0
        for row in rows:
            if all(c is None or c == "" for c in row):
                blank += 1
                continue
            if blank:
                xml_rows.append(f'<table:table-row table:number-rows-repeated="{blank}">'
                                f'<table:table-cell table:number-columns-repeated="{width}"/></table:table-row>')
                blank = 0
            cells, empty = [], 0
            for cell in list(row) + [None] * (width - len(row)):
                if cell is None or cell == "":
                    empty += 1
                    continue
                if empty:
                    cells.append(f'<table:table-cell table:number-columns-repeated="{empty}"/>')
                    empty = 0
                if isinstance(cell, str):
                    cells.append(f'<table:table-cell office:value-type="string"><text:p>{escape(cell)}</text:p>'
                                 "</table:table-cell>")
                else:
                    cells.append(f'<table:table-cell office:value-type="float" office:value="{_number(cell)}">'
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
