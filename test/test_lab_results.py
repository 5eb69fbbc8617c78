"""A laboratory's results file joined to the sample points (oremap:join_lab_results, core.geochemistry.lab_results).

The certificate below follows the layout of an ALS Geochemistry CSV export: certificate lines (padded with commas to
the table's width), then a header of four rows, the method codes (under SAMPLE), the analytes (under DESCRIPTION),
the units and, unlabelled, the limits of reporting; the rows hold the samples with the laboratory's standards and
blanks among them, values below the limit ('<0.005'), over the upper limit ('>10.0', with the ore-grade re-assay in
its own column) and not sufficient sample ('NSS').
"""

import math
import os

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, warning_recorder
from spreadsheet_fixtures import Formula, Percent, write_ods, write_xlsx
from oremap.core.engine.errors import OreMapError
from oremap.core.geochemistry import lab_qc
from oremap.core.geochemistry import lab_results as lr
from oremap.core.geochemistry import survey_hygiene as sh

CERTIFICATE = """\
ALS Canada Ltd.,,,,,,,
CERTIFICATE VA26001234,,,,,,,
Client: EXAMPLE EXPLORATION,,,,,,,
Project: NORTH CREEK,,,,,,,
,,,,,,,
SAMPLE,WEI-21,Au-AA23,Au-GRA21,ME-ICP61,ME-ICP61,ME-ICP61,ME-ICP61
DESCRIPTION,Recvd Wt.,Au,Au,Ag,Cu,S,As
,kg,ppm,ppm,ppm,%,%,ppm
,0.02,0.005,0.05,0.5,0.0001,0.01,5
NC001,2.10,<0.005,,<0.5,0.0123,1.20,6
NC002,1.90,>10.0,15.20,3.1,0.85,NSS,<5
nc 003,2.00,0.456,,0.7,0.456,2.10,11
OREAS 504c,0.10,1.61,,1.1,1.10,1.00,<5
BLANK,0.10,<0.005,,<0.5,0.0002,<0.01,<5
NC004,1.00,0.100,,1.0,1.00,1.00,BDL
"""
SAMPLES = {"NC001": (500000.0, 7000000.0), "NC002": (500100.0, 7000000.0), "NC003": (500200.0, 7000000.0),
           "NC004": (500300.0, 7000000.0), "NC005": (500400.0, 7000000.0)}
AREA1 = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv")


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_an_als_certificate_is_read_header_limits_and_values(tmp_path):
    table = lr.read_lab_results(write(tmp_path, "VA26001234.csv", CERTIFICATE))
    assert (table.delimiter, table.decimal_comma) == (",", False)
    assert table.header_lines == [6, 7, 8, 9] and table.first_data_line == 10 and len(table.rows) == 6
    assert [c.name for c in table.assays] == ["Au_ppm_AA23", "Au_ppm_GRA21", "Ag_ppm", "Cu_pct", "S_pct", "As_ppm"]
    assert [c.method for c in table.assays] == ["Au-AA23", "Au-GRA21"] + ["ME-ICP61"] * 4
    assert [c.limit for c in table.assays] == [0.005, 0.05, 0.5, 0.0001, 0.01, 5.0]
    assert list(table.attributes) == ["SAMPLE / DESCRIPTION", "WEI-21 / Recvd Wt. / kg"]
    assert table.attribute_column("WEI-21 / Recvd Wt. / kg") == ("Recvd_Wt_kg", [2.1, 1.9, 2.0, 0.1, 0.1, 1.0])
    assert table.attribute_column("SAMPLE / DESCRIPTION")[1][2:4] == ["nc 003", "OREAS 504c"]
    au, _, _, _, s, arsenic = table.assays
    np.testing.assert_array_equal(table.values(au), [-0.005, 10.0, 0.456, 1.61, -0.005, 0.1])
    assert table.over_limit(au) == [1]
    np.testing.assert_array_equal(table.values(s), [1.2, np.nan, 2.1, 1.0, -0.01, 1.0])   # NSS: no result
    # 'BDL' (no limit written) takes the limit of the limits row
    np.testing.assert_array_equal(table.values(arsenic), [6.0, -5.0, 11.0, -5.0, -5.0, -5.0])
    for column in table.assays:   # every name reads back as its element and unit in the geochemistry algorithms
        parsed = sh.parse_column(column.name)
        assert (parsed.element, parsed.unit, parsed.assumed_unit) == (column.element, column.unit, False)


def test_rows_match_ids_ignoring_case_and_spaces_and_the_id_column_is_found():
    table = lr.LabTable("t", ",", False, [1], 2, [], {"Lab No": 0, "Sample": 1},
                        [["L1", "NC001"], ["L2", "nc 002"], ["L3", "STD"], ["L4", "NC001"]], [2, 3, 4, 5])
    ids = ["NC001", "NC002", "NC002", 7.0]
    assert lr.match_rows(table, ids, "Sample") == ([0, 1, -1, 0], ["NC002"])
    assert lr.match_layer(table, {"sample": ids}) == ("sample", "Sample", [0, 1, -1, 0], ["NC002"])
    assert lr.id_text(1042.0) == "1042" and lr.id_text(" A1 ") == "A1" and lr.id_text("1042.00") == "1042"
    with pytest.raises(OreMapError) as caught:
        lr.match_layer(table, {"sample": ["X1", "X2"]}, "Lab No")
    assert caught.value.parameter == "sample_field" and not isinstance(caught.value, lr.AmbiguousIds)


def test_two_header_rows_semicolons_decimal_commas_and_windows_encoding(tmp_path):
    # names and units in two rows; a second Au column (a check assay) and one without any value
    text = ("Serial No,Field ID,Au,Au Check,Ag,Al,Au,Fe2O3\n"
            ",,ppm,ppm,ppm,%,ppb,%\n"
            "1,G/051,0.08,,0.28,0.12,60,7.5\n"
            "2,G/052,<0.01,,0.49,0.10,<2,6.25\n")
    table = lr.read_lab_results(write(tmp_path, "two_rows.csv", text))
    assert [c.name for c in table.assays] == ["Au_ppm", "Ag_ppm", "Al_pct", "Au_ppb", "Fe2O3_pct"]
    assert table.notes == ["Left out, no value in any row: Au Check / ppm."]
    assert list(table.attributes) == ["Serial No", "Field ID"]
    # the same element and unit twice, no method: numbered
    dup = lr.read_lab_results(write(tmp_path, "dup.csv", "ID,Au,Au\n,ppm,ppm\nA,0.1,0.2\nB,0.3,0.4\n"))
    assert [c.name for c in dup.assays] == ["Au_ppm", "Au_ppm_2"]
    # a check assay beside its original, grams per tonne written as ppm
    check = lr.read_lab_results(write(tmp_path, "check.csv", "ID,Au,Au Check,Ag\n,g/t,g/t,ppm\nA,0.1,0.12,1\n"
                                                             "B,0.3,0.28,2\n"))
    assert [c.name for c in check.assays] == ["Au_ppm", "Au_ppm_Check", "Ag_ppm"]
    assert check.values(check.assays[1]) == [0.12, 0.28]
    # a European export: semicolons, decimal commas, a labelled limits row, units in brackets, Windows-1252 (µ)
    text = ("Probe;Au (ppb);Pt (µg/kg);Cu (mg/kg)\n"
            "LOR;1;0,5;0,2\n"
            "S-1;12,5;<0,5;1.800\n"
            "S-2;BDL;3;45,25\n")
    table = lr.read_lab_results(write(tmp_path, "eu.csv", text, "cp1252"))
    assert (table.delimiter, table.decimal_comma, table.first_data_line) == (";", True, 3)
    assert [(c.name, c.limit) for c in table.assays] == [("Au_ppb", 1.0), ("Pt_ppb", 0.5), ("Cu_ppm", 0.2)]
    assert [table.values(c) for c in table.assays] == [[12.5, -1.0], [-0.5, 3.0], [1800.0, 45.25]]


def test_files_that_are_no_results_are_refused_for_the_results_parameter(tmp_path):
    for name, content, said in (("book.xlsx", b"PK\x03\x04\x00\x00", "damaged zip package"),
                                ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "Excel 97-2003"),
                                ("image.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
                                ("portal.xls", b"<html><body><table><tr><td>Au</td></tr></table>", "web page"),
                                ("words.csv", b"a,b,c\nx,y,z\n", "No row")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(OreMapError) as caught:
            lr.read_lab_results(str(path))
        assert caught.value.parameter == "results" and said in caught.value.message
    import zipfile

    with zipfile.ZipFile(tmp_path / "book.xlsb", "w") as package:   # Excel's binary workbook
        package.writestr("xl/workbook.bin", b"\x83\x01\x00")
    with pytest.raises(OreMapError) as caught:
        lr.read_lab_results(str(tmp_path / "book.xlsb"))
    assert "(.xlsb)" in caught.value.message and ".xlsx" in caught.value.fix
    # a sheet named for a text file is said, not silently ignored
    table = lr.read_lab_results(write(tmp_path, "plain.csv", "Sample,Au_ppb\nA,5\nB,<1\n"), "Results")
    assert table.notes[0].startswith("Sheet 'Results' not used:") and table.values(table.assays[0]) == [5.0, -1.0]


def test_a_real_compilation_reads_as_one_header_row_with_its_own_names():
    # GeoChemAD's area1 (GSWA WAMEX compilation): element and oxide columns keep their names (Fe2O3_pct is an oxide,
    # not Fe), coordinates, ids, LOI and water are no assays, and the values are the file's (-9999 kept as written)
    table = lr.read_lab_results(AREA1)
    frame = pd.read_csv(AREA1)
    assert table.header_lines == [1] and table.first_data_line == 2 and len(table.rows) == len(frame) == 1392
    assert list(table.attributes) == ["X", "Y", "SAMPLEID", "SAMPLETYPE", "WAMEX_A_NO", "COMPSAMPID", "H2Oneg_pct",
                                      "H2Opos_pct", "LABnegNR_N", "LOI_pct"]
    names = [c.name for c in table.assays]
    assert len(names) == 120 and names == [c.header for c in table.assays]
    for name in ("Au_ppm", "Fe2O3_pct", "Ir_ppb"):
        column = table.assays[names.index(name)]
        np.testing.assert_allclose(table.values(column), frame[name].to_numpy(), rtol=1e-12)


def test_the_real_compilation_saved_as_a_workbook_reads_as_its_csv(tmp_path):
    # area1 as a spreadsheet program saves it (numbers as number cells, ids and codes as text): every assay column,
    # name and value and every attribute as read from the CSV file (1392 rows, 130 columns)
    import csv

    with open(AREA1, newline="") as handle:
        rows = [[_cell(c) for c in row] for row in csv.reader(handle)]
    book = lr.read_lab_results(write_xlsx(str(tmp_path / "area1.xlsx"), {"area1_sediment_au": rows}))
    text = lr.read_lab_results(AREA1)
    assert (book.sheet, len(book.rows), book.first_data_line) == ("area1_sediment_au", 1392, 2)
    assert [c.name for c in book.assays] == [c.name for c in text.assays] and len(book.assays) == 120
    for a, b in zip(book.assays, text.assays):
        np.testing.assert_array_equal(book.values(a), text.values(b))
    assert [book.attribute_column(n) for n in book.attributes] == [text.attribute_column(n) for n in text.attributes]


def _cell(text):
    """A CSV cell as a spreadsheet holds it: a number cell where it reads as one, else text (None when empty)."""
    try:
        return float(text)
    except ValueError:
        return text or None


# -- the algorithm -----------------------------------------------------------------------------------------------


def sample_points(fields=(("sample", "string"),), ids=SAMPLES):
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    spec = "&".join(f"field={name}:{kind}" for name, kind in fields)
    layer = QgsVectorLayer(f"Point?crs=EPSG:32750&{spec}", "samples", "memory")
    features = []
    for key, (x, y) in ids.items():
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes([key] + [1.5] * (len(fields) - 1))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def run_join(tmp_path, params, feedback=None):
    import processing
    from qgis.core import QgsProcessingContext, QgsVectorLayer

    params = {"RESULTS": write(tmp_path, "VA26001234.csv", CERTIFICATE), "POINTS": sample_points(),
              "OUTPUT": str(tmp_path / "joined.gpkg"), **params}
    result = processing.run("oremap:join_lab_results", params, context=QgsProcessingContext(), feedback=feedback)
    layer = QgsVectorLayer(result["OUTPUT"], "joined", "ogr")
    rows = {f["sample"]: f for f in layer.getFeatures()} if "sample" in layer.fields().names() else {}
    return result, layer, rows


def test_the_certificate_joins_to_the_points_and_the_rest_is_logged(processing_provider, tmp_path):
    feedback = warning_recorder()
    result, layer, rows = run_join(tmp_path, {}, feedback)
    assert (result["JOINED"], result["UNMATCHED"]) == (4, 2)
    # Au_ppm: the gold the geochemistry algorithms read first, Au-AA23's with its value over the limit ('>10.0') replaced
    # by the ore-grade re-assay (Au-GRA21); read as a number, the limit had hidden the re-assay from them
    assert layer.fields().names()[1:] == ["sample", "Au_ppm", "Au_ppm_AA23", "Au_ppm_GRA21", "Ag_ppm", "Cu_pct",
                                          "S_pct", "As_ppm", "Recvd_Wt_kg"]
    assert [rows[k]["Au_ppm"] for k in ("NC001", "NC002", "NC003", "NC004")] == [-0.005, 15.2, 0.456, 0.1]
    assert sorted(rows) == ["NC001", "NC002", "NC003", "NC004"]   # NC005 has no results: left out
    nc002 = rows["NC002"]
    assert (nc002["Au_ppm_AA23"], nc002["Au_ppm_GRA21"], nc002["Ag_ppm"], nc002["As_ppm"]) == (10.0, 15.2, 3.1, -5.0)
    assert nc002["S_pct"] is None or str(nc002["S_pct"]) == "NULL"
    assert rows["NC003"]["Au_ppm_AA23"] == 0.456 and rows["NC001"]["Recvd_Wt_kg"] == 2.1   # 'nc 003' is NC003
    point = rows["NC004"].geometry().asPoint()
    assert (point.x(), point.y()) == SAMPLES["NC004"]
    said = " ".join(feedback.warnings)
    assert "2 rows of the results file have no point of their id" in said and "'OREAS 504c', 'BLANK'" in said
    assert "Au_ppm_AA23: 1 value(s) over the upper limit (e.g. '>10.0')" in said and "as Au_ppm_GRA21" in said
    infos = " ".join(feedback.infos)
    assert "Au_ppm: the Au the geochemistry algorithms read" in infos and \
        "Au_ppm_AA23: 1 values over the laboratory's upper limit ('>x') replaced by the element's other assay " \
        "(Au_ppm_GRA21 1)" in infos
    assert "the points' field 'sample'" in infos and "column 'SAMPLE / DESCRIPTION'" in infos
    assert "1 of 5 points have no results" in infos and "S_pct: no value in rows reading 'NSS'" in infos


def test_the_id_column_is_named_by_a_header_cell_or_a_number_and_refused_by_name(processing_provider, tmp_path):
    from qgis.core import QgsProcessingException

    for given in ("SAMPLE", "description", "1"):
        result, _, _ = run_join(tmp_path, {"RESULT_ID": given, "POINT_ID": "sample"})
        assert result["JOINED"] == 4
    os.remove(tmp_path / "joined.gpkg")
    for given, said in (("Au", "is an assay column (Au_ppm_AA23)"), ("Hole", "The file has no column 'Hole'")):
        with pytest.raises(QgsProcessingException) as caught:
            run_join(tmp_path, {"RESULT_ID": given})
        assert "(RESULT_ID)" in str(caught.value) and said in str(caught.value)
    with pytest.raises(QgsProcessingException) as caught:   # points of other samples
        run_join(tmp_path, {"POINTS": sample_points(ids={"X1": (0.0, 0.0)})})
    assert "(POINTS)" in str(caught.value) and "matches" in str(caught.value)
    assert not os.path.exists(tmp_path / "joined.gpkg")


def test_a_field_the_points_already_have_is_written_beside_it(processing_provider, tmp_path):
    feedback = warning_recorder()
    points = sample_points(fields=(("sample", "string"), ("Ag_ppm", "double")))
    _, layer, rows = run_join(tmp_path, {"POINTS": points}, feedback)
    assert "Ag_ppm_lab" in layer.fields().names()
    assert (rows["NC002"]["Ag_ppm"], rows["NC002"]["Ag_ppm_lab"]) == (1.5, 3.1)
    assert any("already have a field 'Ag_ppm'" in w for w in feedback.warnings)


def test_headers_as_labs_write_them_and_columns_that_are_no_assays(tmp_path):
    # units glued to the symbol; a serial number 'Sr No' and a batch 'Pb Batch' are no strontium or lead assays
    text = ("Sr No,Sample,Au(ppb),Cu%,Fe2O3%,Ag[ppb],Pb Batch,Au Rpt,Zn-ppm\n"
            "1,A1,12,0.5,7.25,40,B7,11,80\n2,A2,<1,1.25,6.5,<5,B7,2,95\n")
    table = lr.read_lab_results(write(tmp_path, "glued.csv", text))
    assert [c.name for c in table.assays] == ["Au_ppb", "Cu_pct", "Fe2O3_pct", "Ag_ppb", "Au_ppm_Rpt", "Zn_ppm"]
    assert table.assays[-1].method == ""
    assert list(table.attributes) == ["Sr No", "Sample", "Pb Batch"]
    assert table.notes == ["No unit in the header of 1 assay column(s), taken as ppm: Au_ppm_Rpt."]
    # a sparse compilation's first record (3 of 12 columns filled) is a sample, not a header row
    elements = ["Au_ppb", "Ag_ppm", "As_ppm", "Bi_ppm", "Cu_ppm", "Mo_ppm", "Pb_ppm", "Sb_ppm", "W_ppm", "Zn_ppm"]
    text = ("Sample,Type," + ",".join(elements) + "\nA1,soil,5,,,,,,,,,12\nA2,soil," + ",".join(["1"] * 10) + "\n"
            "A3,soil," + ",".join(["2"] * 10) + "\n")
    table = lr.read_lab_results(write(tmp_path, "sparse.csv", text))
    assert table.first_data_line == 2 and table.attribute_values("Sample") == ["A1", "A2", "A3"]
    assert table.values(table.assays[0]) == [5.0, 1.0, 2.0] and np.isnan(table.values(table.assays[1])[0])
    # a first sample without a hole id is a sample, not ALS's unlabelled limits row
    text = "Hole ID,Sample,Au_ppm,Cu_ppm,As_ppm\n,RK001,2.5,1500,45\nDH01,S1,0.1,20,BDL\nDH01,S2,<0.01,15,<2\n"
    table = lr.read_lab_results(write(tmp_path, "blank_first.csv", text))
    assert table.first_data_line == 2 and all(c.limit != c.limit for c in table.assays)   # no limits row
    assert table.attribute_values("Sample") == ["RK001", "S1", "S2"]
    # 'BDL' takes the column's lowest written limit when there is no limits row
    assert table.values(table.assays[2]) == [45.0, -2.0, -2.0]
    # certificate lines with several cells (dates) above the header are not header rows; a date is no method
    dated = CERTIFICATE.replace("Project: NORTH CREEK,,,,,,,", "DATE RECEIVED,2026-01-05,DATE FINALIZED,2026-01-20,,,,\n"
                                "PROJECT,NORTH CREEK,,,,,,")
    table = lr.read_lab_results(write(tmp_path, "dated.csv", dated))
    assert [c.name for c in table.assays][:2] == ["Au_ppm_AA23", "Au_ppm_GRA21"]
    assert list(table.attributes)[0] == "SAMPLE / DESCRIPTION"


def test_decimal_points_and_commas_and_file_encodings(tmp_path):
    # a decimal-comma file whose Au column is written with points: 0.005 is never five thousandths of a thousand
    text = "Sample;Au_ppm;Cu_ppm\nA;0.005;12,5\nB;<0.005;1.800\nC;0.125;3,25\n"
    table = lr.read_lab_results(write(tmp_path, "mixed.csv", text))
    assert table.decimal_comma and [table.values(c) for c in table.assays] == [[0.005, -0.005, 0.125],
                                                                               [12.5, 1800.0, 3.25]]
    # quoted decimal commas in a comma-separated file
    text = 'Sample,Au_ppm\nA,"0,05"\nB,"1,250"\nC,"0,125"\n'
    table = lr.read_lab_results(write(tmp_path, "quoted.csv", text))
    assert table.values(table.assays[0]) == [0.05, 1.25, 0.125]
    # Excel's "Unicode Text": UTF-16 with a byte-order mark, tab-separated
    table = lr.read_lab_results(write(tmp_path, "unicode.txt", "Sample\tAu_ppb\nA\t5\nB\t<1\n", "utf-16"))
    assert table.delimiter == "\t" and table.values(table.assays[0]) == [5.0, -1.0]
    # ids written as floats by a database export match integer ids
    table = lr.read_lab_results(write(tmp_path, "float_ids.csv", "Sample,Au_ppm\n1042.0,0.5\n1043.0,0.7\n"))
    assert lr.match_rows(table, [1043, 1042], "Sample")[0] == [1, 0]


def test_a_running_number_gives_way_to_the_sample_ids_and_a_tie_is_the_users_choice():
    table = lr.LabTable("t", ",", False, [1], 2, [], {"Serial No": 0, "Sample": 1},
                        [["1", "NC101"], ["2", "NC102"], ["3", "OREAS 504c"], ["4", "NC103"], ["5", "BLANK"],
                         ["6", "NC104"]], [2, 3, 4, 5, 6, 7])
    points = {"id": [1, 2, 3, 4, 5, 6], "SampleID": ["NC103", "NC101", "NC104", "NC102", "NC105", "NC106"]}
    field, column, rows, _ = lr.match_layer(table, points)
    assert (field, column, rows) == ("SampleID", "Sample", [1, 3, -1, 0, -1, 2])
    # one hole's 40 intervals as points; the file holds three holes: the depth reaches the same 40 points with 120 rows
    rows = [[f"{1.5 * k:.1f}", f"D{40 * h + k + 1:04d}"] for h in range(3) for k in range(40)]
    depths = lr.LabTable("t", ",", False, [1], 2, [], {"Depth": 0, "Sample": 1}, rows, list(range(2, 122)))
    field, column, matched, _ = lr.match_layer(depths, {"Depth": [1.5 * k for k in range(40)],
                                                        "SampleID": [f"D{k + 1:04d}" for k in range(40)]})
    assert (field, column, matched[:40], matched[40:]) == ("SampleID", "Sample", list(range(40)), [-1] * 80)
    # two real id columns matching all rows to other points: the user chooses
    table.attributes = {"Lab No": 0, "Sample": 1}
    table.rows = [["L1", "NC101"], ["L2", "NC102"]]
    with pytest.raises(OreMapError) as caught:
        lr.match_layer(table, {"lab": ["L2", "L1"], "SampleID": ["NC101", "NC102"]})
    assert caught.value.parameter == "sample_field" and caught.value.message.startswith("Two ways")


def test_below_detection_without_any_limit_is_written_empty_and_said(processing_provider, tmp_path):
    feedback = warning_recorder()
    results = write(tmp_path, "bdl.csv", "sample,Au_ppm,Cu_ppm\nNC001,BDL,1\nNC002,0.02,2\nNC003,BDL,3\n")
    _, _, rows = run_join(tmp_path, {"RESULTS": results}, feedback)
    assert [str(rows[k]["Au_ppm"]) for k in ("NC001", "NC002", "NC003")] == ["NULL", "0.02", "NULL"]
    assert any(w.startswith("Au_ppm: 2 value(s) below an unwritten detection limit") for w in feedback.warnings)


def test_second_review_layouts_methods_rows_blank_lines_and_limits(tmp_path):
    # a method row of words (FA, ICP, XRF) is no units row: the units come from the row that says them
    text = "Sample,Au,Cu,Fe\nMethod,FA,ICP,XRF\nUnits,ppb,ppm,%\nA1,12,45,3.5\nA2,<1,30,4.25\n"
    table = lr.read_lab_results(write(tmp_path, "methods.csv", text))
    assert [c.name for c in table.assays] == ["Au_ppb", "Cu_ppm", "Fe_pct"]
    # a blank line between the header and the data; a units row over only the assays of a wide table
    wide = ("Hole,From,To,Sample,Batch,Weight,Type,Logger,Au,Cu,Ag\n,,,,,,,,ppb,ppm,ppm\n\n"
            "DH1,0,2,S1,B7,2.1,RC,JB,5,40,0.2\nDH1,2,4,S2,B7,2.2,RC,JB,<1,35,0.1\n")
    table = lr.read_lab_results(write(tmp_path, "wide.csv", wide))
    assert [c.name for c in table.assays] == ["Au_ppb", "Cu_ppm", "Ag_ppm"] and table.first_data_line == 4
    # Intertek's 'DETECTION' row gives the limits; a first sample with a numeric id and no hole id is a sample
    text = "Sample,Au,As\nUnits,ppm,ppm\nDETECTION,0.01,2\n1001,2.37,BDL\n1002,0.05,12\n"
    table = lr.read_lab_results(write(tmp_path, "intertek.csv", text))
    assert [c.limit for c in table.assays] == [0.01, 2.0] and table.values(table.assays[1]) == [-2.0, 12.0]
    text = "Hole,Sample,Au,Cu\n,,ppm,ppm\n,1001,2.37,1480\nDH1,1002,0.01,20\n"
    table = lr.read_lab_results(write(tmp_path, "numeric_first.csv", text))
    assert table.first_data_line == 3 and table.attribute_values("Sample") == ["1001", "1002"]
    # a semicolon file with a decimal comma in every value splits evenly at the commas too
    table = lr.read_lab_results(write(tmp_path, "every.csv", "Sample;Au_ppm;Cu_ppm\nA;0,5;1,2\nB;0,7;3,4\n"))
    assert table.delimiter == ";" and table.values(table.assays[1]) == [1.2, 3.4]
    # grams per tonne written gpt; numbered symbols (Au1, Au2: first and second assay) keep their number
    table = lr.read_lab_results(write(tmp_path, "gpt.csv", "Sample,Au_gpt,Au1,Au2\nA,1.5,1.4,1.6\nB,0.2,0.1,0.3\n"))
    assert [c.name for c in table.assays] == ["Au_gpt", "Au_ppm_1", "Au_ppm_2"]
    assert sh.parse_column("Au_gpt").unit == "gpt"
    assert table.values(table.assays[2]) == [1.6, 0.3]
    assert table.notes == ["No unit in the header of 2 assay column(s), taken as ppm: Au_ppm_1, Au_ppm_2."]
    # ... and under a units row they take its unit
    table = lr.read_lab_results(write(tmp_path, "au12.csv", "Sample,Au1,Au2,Cu\n,ppb,ppb,ppm\nA,5,7,40\nB,<1,2,35\n"))
    assert [c.name for c in table.assays] == ["Au_ppb_1", "Au_ppb_2", "Cu_ppm"] and not table.notes
    assert table.values(table.assays[0]) == [5.0, -1.0]


def test_repeats_reach_a_geopackage_and_ids_beat_running_numbers_and_repeated_values(processing_provider, tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    # 30 samples in a GeoPackage (its fid 1..30); the file: 10 of them by a running number 'No' (1..10), a 'Depth'
    # shared by many rows, and a re-assay of S05
    points = gpd.GeoDataFrame({"sample": [f"S{i:02d}" for i in range(1, 31)], "Depth": [float(i % 3) for i in range(30)]},
                              geometry=[Point(500000 + 10 * i, 7000000) for i in range(30)], crs="EPSG:32750")
    path = str(tmp_path / "samples.gpkg")
    points.to_file(path, driver="GPKG")
    rows = [(k + 1, f"S{k * 3 + 2:02d}", float(k % 3), 0.1 * (k + 1)) for k in range(10)]
    rows.append((11, "S05", 1.0, 9.9))
    text = "No,Sample,Depth,Au_ppm\n" + "".join(f"{n},{s},{d},{a:g}\n" for n, s, d, a in rows)
    feedback = warning_recorder()
    result, layer, _ = run_join(tmp_path, {"RESULTS": write(tmp_path, "repeat.csv", text), "POINTS": path}, feedback)
    assert result["JOINED"] == layer.featureCount() == 11 and "fid" in layer.fields().names()
    got = sorted((f["sample"], f["Au_ppm"]) for f in layer.getFeatures())
    assert got == sorted((s, round(a, 10)) for _, s, _, a in rows)
    assert any("the points' field 'sample'" in i for i in feedback.infos)


def test_the_geochemistry_algorithms_read_the_re_assay_of_a_joined_layer():
    """What survey hygiene makes of the joined fields: Au from the best column (15.2 where Au-AA23 said '>10.0')."""
    table = lr.LabTable("t", ",", False, [1], 2, [lr.AssayColumn(1, "Au-AA23 / Au / ppm", "Au", "ppm", "Au-AA23",
                                                                 name="Au_ppm_AA23"),
                                                  lr.AssayColumn(2, "Au-GRA21 / Au / ppm", "Au", "ppm", "Au-GRA21",
                                                                 name="Au_ppm_GRA21"),
                                                  lr.AssayColumn(3, "Ag / ppm", "Ag", "ppm", name="Ag_ppm")],
                        {"Sample": 0}, [["A", ">10.0", "15.2", "1"], ["B", "0.5", "", "2"], ["C", ">10.0", "", "3"],
                                        ["D", ">10.0", "8.1", "4"]], [2, 3, 4, 5])
    (found,) = lr.reassays(table)
    # C: no re-assay, the bound stays; D: a lower value is another method, no re-assay of this one
    assert found.name == "Au_ppm" and found.values == [15.2, 0.5, 10.0, 10.0]
    assert [n[:14] for n in found.notes] == ["Au_ppm_AA23: 1"] * 2 and "replaced" in found.notes[0] \
        and "kept at the limit" in found.notes[1]
    columns = ["Au_ppm", "Au_ppm_AA23", "Au_ppm_GRA21", "Ag_ppm"]
    values = np.column_stack([found.values] + [table.values(c) for c in table.assays])
    plan = sh.plan_elements(columns, values)
    assert plan.columns["Au"][0] == "Au_ppm"
    np.testing.assert_allclose(sh.apply_plan(plan, columns, values)[:, plan.elements.index("Au")], found.values)


def test_points_without_results_are_kept_when_asked(processing_provider, tmp_path):
    result, layer, rows = run_join(tmp_path, {"KEEP_POINTS": True})
    assert result["JOINED"] == 4 and layer.featureCount() == 5 and sorted(rows) == sorted(SAMPLES)
    assert str(rows["NC005"]["Au_ppm_AA23"]) == "NULL" and rows["NC002"]["Au_ppm"] == 15.2


def test_a_narrow_file_of_primary_assays_and_a_few_re_assays_and_a_fid_of_sample_ids(processing_provider, tmp_path):
    # id, primary assay and a re-assay column empty but for two rows: every sample is data (four had become header)
    text = "SampleID,Au_ppm,Au_ppm_GRA21\n" + "".join(
        f"NC{i:03d},{'>10.0' if i in (5, 8) else f'0.{i}'},{'14.3' if i == 5 else '22.5' if i == 8 else ''}\n"
        for i in range(1, 11))
    table = lr.read_lab_results(write(tmp_path, "narrow.csv", text))
    assert table.first_data_line == 2 and len(table.rows) == 10
    (best,) = lr.reassays(table)
    assert best.name == "Au_ppm_best" and best.values[4] == 14.3 and best.values[7] == 22.5 and best.values[0] == 0.1
    # a text field named FID holding the sample ids is the user's, not a key: kept (as fid_points)
    points = sample_points(fields=(("FID", "string"),))
    result, layer, _ = run_join(tmp_path, {"POINTS": points, "POINT_ID": "FID"})
    assert result["JOINED"] == 4 and "fid_points" in layer.fields().names()
    assert sorted(f["fid_points"] for f in layer.getFeatures()) == ["NC001", "NC002", "NC003", "NC004"]


def certificate_cells():
    """The certificate as a spreadsheet holds it: numbers as numbers, '<0.005', '>10.0', 'NSS' and ids as text, the
    certificate lines in the first column only."""
    rows = []
    for line in CERTIFICATE.splitlines():
        cells = []
        for cell in line.split(","):
            try:
                cells.append(float(cell) if cell.strip() else None)
            except ValueError:
                cells.append(cell)
        rows.append(cells)
    return rows


@pytest.mark.parametrize("writer", [write_xlsx, write_ods], ids=["xlsx", "ods"])
def test_a_workbook_reads_as_its_csv_export_and_its_sheet_is_found(tmp_path, writer):
    sheets = {"Info": [["Client", "EXAMPLE EXPLORATION"], ["Samples", 6.0]], "VA26001234": certificate_cells(),
              "QC": [["Standard", "Au", "Cu"], ["OREAS 504c", 1.61, 1.1], ["OREAS 504c", 1.58, 1.09]]}
    path = writer(str(tmp_path / f"VA26001234.{writer.__name__[-4:].strip('_')}"), sheets)
    text = lr.read_lab_results(write(tmp_path, "VA26001234.csv", CERTIFICATE))
    book = lr.read_lab_results(path)
    assert (book.sheet, book.delimiter, book.header_lines, book.first_data_line) == ("VA26001234", "", [6, 7, 8, 9], 10)
    assert book.line_numbers == text.line_numbers == [10, 11, 12, 13, 14, 15] and book.place(5) == "row 15"
    assert [(c.name, c.method, c.limit) for c in book.assays] == [(c.name, c.method, c.limit) for c in text.assays]
    for a, b in zip(book.assays, text.assays):
        np.testing.assert_array_equal(book.values(a), text.values(b))
    assert book.values(book.assays[0]) == [-0.005, 10.0, 0.456, 1.61, -0.005, 0.1]
    assert [book.attribute_column(n) for n in book.attributes] == [text.attribute_column(n) for n in text.attributes]
    assert book.other_sheets == ["Info", "QC"] and book.notes == text.notes
    # a sheet chosen by name (any case) or number
    for chosen in ("qc", "3"):
        qc = lr.read_lab_results(path, chosen)
        assert qc.sheet == "QC" and [c.name for c in qc.assays] == ["Au_ppm", "Cu_ppm"]
        assert qc.values(qc.assays[0]) == [1.61, 1.58] and qc.notes[0].startswith("No unit in the header")
    with pytest.raises(OreMapError) as caught:
        lr.read_lab_results(path, "Results")
    assert caught.value.parameter == "sheet" and "'Info', 'VA26001234', 'QC'" in caught.value.fix
    with pytest.raises(OreMapError) as caught:   # a sheet chosen that holds no results is the sheet's fault
        lr.read_lab_results(path, "Info")
    assert caught.value.parameter == "sheet" and caught.value.message.startswith("No column of Sheet 'Info'")


def test_hidden_and_chart_sheets_and_cells_formatted_beyond_the_table(tmp_path):
    # tabs: a chart, the laboratory's raw data hidden (more rows), the results; every row formatted out to column Z
    raw = certificate_cells() + [[f"NC1{i:02d}", 2.0, 0.1, None, 1.0, 0.5, 1.0, 6.0] for i in range(10)]
    path = write_xlsx(str(tmp_path / "book.xlsx"), {"Chart1": [], "Raw": raw, "Results": certificate_cells()},
                      hidden={"Raw"}, charts={"Chart1"}, pad_to="Z")
    sheets = dict(lr.workbook_sheets(path))
    assert list(sheets) == ["Raw", "Results"] and {len(r) for r in sheets["Results"]} == {8}   # not 26 wide
    table = lr.read_lab_results(path)
    assert table.sheet == "Results" and table.other_sheets == ["Chart1", "Raw (hidden)"] and len(table.rows) == 6
    assert table.values(table.assays[0]) == [-0.005, 10.0, 0.456, 1.61, -0.005, 0.1]
    # numbers are the tabs' as Excel shows them, the chart counted
    assert lr.read_lab_results(path, "2").sheet == "Raw" and lr.read_lab_results(path, "3").sheet == "Results"
    with pytest.raises(OreMapError) as caught:
        lr.read_lab_results(path, "1")
    assert caught.value.parameter == "sheet" and "('Chart1') is a chart" in caught.value.message
    # no sheet with results: each sheet's reason
    empty = write_xlsx(str(tmp_path / "empty.xlsx"), {"A": [["Client: X"]], "B": [["Note"], ["a", "b"], ["c", "d"]]})
    with pytest.raises(OreMapError) as caught:
        lr.read_lab_results(empty)
    assert caught.value.parameter == "results" and "'A': the sheet holds no table" in caught.value.message \
        and "'B': No row of the sheet reads as assay values" in caught.value.message


def test_a_decimal_comma_workbook_keeps_its_number_cells_and_reads_its_text_cells(tmp_path):
    # numbers come out of a workbook with a point whatever the language; values typed as text keep the comma
    sheets = {"Tabelle1": [["Probe", "Au (ppb)", "Cu (mg/kg)", "Cu (%)"], ["10,5", 12.5, 1.48, 1.48],
                           ["S-2", "<0,5", 1800.0, "1,2"], ["S-3", "n.a.", "1.480", "1.234,5"]]}
    for writer in (write_xlsx, write_ods):
        table = lr.read_lab_results(writer(str(tmp_path / f"eu{writer.__name__}"), sheets))
        assert [c.name for c in table.assays] == ["Au_ppb", "Cu_ppm", "Cu_pct"]
        # a point is a decimal point in a workbook, text or number: its number cells write one ('1.234' is no
        # thousands point there, as it may be in a decimal-comma CSV file)
        # ('1.234,5', typed with a thousands point and a decimal comma, is 1234.5)
        assert [table.values(c) for c in table.assays][1:] == [[1.48, 1800.0, 1.48], [1.48, 1.2, 1234.5]]
        assert table.values(table.assays[0])[:2] == [12.5, -0.5] and table.unread(table.assays[0]) == ["n.a."]
        assert table.attribute_values("Probe") == ["10,5", "S-2", "S-3"]   # an id is no value: written as given


@pytest.mark.parametrize("writer", [write_xlsx, write_ods], ids=["xlsx", "ods"])
def test_percentage_cells_merged_method_codes_and_formulas_without_values(tmp_path, writer):
    # a compilation kept in a spreadsheet: the method code typed once and merged over its three columns, copper
    # formatted as percentages (stored 0.0123, shown 1.23 %) under '%', lead so under no unit, a zinc column of formulas
    # saved by a program that does not calculate, and a comment merged over the assay columns of a data row
    rows = [["SAMPLE", "ME-ICP61", None, None, "ME-ICP61", "Au-AA23"],
            [None, "Cu", "Pb", "Zn", "Fe", "Au"],
            [None, "%", None, "ppm", "%", "ppm"],
            ["NC001", Percent(0.0123), Percent(0.0123, custom=True), Formula("=40*2"), 4.5, 0.005],
            ["NC002", Percent(0.85), Percent(0.85), Formula("=B5*100", 85), 3.2, 1.2],
            ["NC003", "not received", None, None, None, 0.1],
            ["NC004", Percent(0.001), Percent(0.001), 12, 0.5, 0.02],
            ["NC005", Percent(0.02), Percent(0.02), 30, 1.5, 0.01]]
    merged = {"Results": ["B1:D1", "B6:E6"]}
    path = writer(str(tmp_path / f"book.{'xlsx' if writer is write_xlsx else 'ods'}"), {"Results": rows},
                  merged=merged)
    table = lr.read_lab_results(path)
    assert [(c.name, c.unit, c.method) for c in table.assays] == [
        ("Cu_pct", "pct", "ME-ICP61"), ("Pb_pct", "pct", "ME-ICP61"), ("Zn_ppm", "ppm", "ME-ICP61"),
        ("Fe_pct", "pct", "ME-ICP61"), ("Au_ppm", "ppm", "Au-AA23")]
    cu, pb, zn = (table.values(c) for c in table.assays[:3])
    np.testing.assert_allclose(cu, [1.23, 85.0, np.nan, 0.1, 2.0])       # the per cent shown, not 0.0123
    np.testing.assert_allclose(pb, [1.23, 85.0, np.nan, 0.1, 2.0])   # no unit in the header: per cent
    # the comment merged over a data row stays in its cell: the other cells are not filled with it
    assert table.unread(table.assays[0]) == ["not received"] and table.rows[2][2:5] == ["", "", ""]
    percent = next(n for n in table.notes if n.startswith("Cells formatted as percentages"))
    assert percent.endswith(": Cu_pct, Pb_pct (per cent: the header gives no unit).")
    assert not any("taken as ppm" in n for n in table.notes)
    if writer is write_xlsx:
        # the formula saved without its value reads as empty and is said; the one saved with its value reads
        np.testing.assert_allclose(zn, [np.nan, 85.0, np.nan, 12.0, 30.0])
        assert ("1 cell(s) hold formulas that the workbook was saved without the values of, and read as empty: "
                "Zn_ppm (1).") in " ".join(table.notes)
    else:   # GDAL's ODS driver calculates formulas itself: nothing to say
        np.testing.assert_allclose(zn, [80.0, 85.0, np.nan, 12.0, 30.0])
        assert not any("formulas" in n for n in table.notes)
    # without the formats (as before): the method code reached the first column only, copper read 100 times low
    plain = lr._table(path, dict(lr.workbook_sheets(path))["Results"], "", False, sheet="Results")
    assert [c.method for c in plain.assays][:3] == ["ME-ICP61", "", ""] and plain.values(plain.assays[0])[0] == 0.0123


def test_titles_merged_over_the_table_summary_formulas_and_clock_times_stay_out_of_the_header_and_data(tmp_path):
    # a title merged over the table above its header stays a certificate line (filled across, it had joined the
    # header and its 'ppm unless stated' made Fe and S ppm); a mean row of formulas without values below the samples
    # is no sample's cell; Excel's empty-text formula result (an empty <v>) is calculated
    rows = [["Certificate VA26001234: multi-element results, ppm unless stated", None, None, None],
            ["SAMPLE", "Au", "Cu", "Fe"], [None, "ppm", "ppm", "%"], ["A1", 0.01, 12, 3.4], ["A2", 0.02, 15, 3.1],
            ["Mean", Formula("=AVERAGE(B4:B5)"), Formula("=AVERAGE(C4:C5)"), Formula("=AVERAGE(D4:D5)")]]
    for writer in (write_xlsx, write_ods):
        path = writer(str(tmp_path / f"title{writer.__name__}"), {"R": rows}, merged={"R": ["A1:D1"]})
        table = lr.read_lab_results(path)
        assert table.header_lines == [2, 3] and list(table.attributes) == ["SAMPLE"]
        assert [(c.name, table.values(c)) for c in table.assays] == [
            ("Au_ppm", [0.01, 0.02]), ("Cu_ppm", [12.0, 15.0]), ("Fe_pct", [3.4, 3.1])]
        assert not any("formulas" in n for n in table.notes)
    # clock times in certificate lines are no coordinates: the lines are no data
    text = ("Analysis started,08:15\nAnalysis finished,16:40\n\nSampleID,Au_ppb,Cu_ppm,Pb_ppm\n"
            "S-1,5,40,12\nS-2,3,35,10\n")
    table = lr.read_lab_results(write(tmp_path, "times.csv", text))
    assert table.first_data_line == 5 and [c.name for c in table.assays] == ["Au_ppb", "Cu_ppm", "Pb_ppm"]
    assert not any(lr._coordinate_like(t) for t in ("08:15", "1 2", "2023 05", "S1", "0-2"))
    # a seconds mark 's' after a minutes letter is no southern hemisphere; a row placed without both coordinates is
    # not counted as read from degrees
    assert lr.sexagesimal("45d30m15s", "y") == pytest.approx(45 + 30 / 60 + 15 / 3600)
    assert lr.sexagesimal("45d30m15s S", "y") == pytest.approx(-(45 + 30 / 60 + 15 / 3600))
    assert lr.sexagesimal("45°30'15S", "y") == pytest.approx(-(45 + 30 / 60 + 15 / 3600))
    text = "SampleID,Lat,Long,Au_ppb\nS1,27 07 24 S,,5\nS2,27 07 30 S,117 00 04 E,3\nS3,-27.2,117.1,4\n"
    found = lr.coordinate_columns(lr.read_lab_results(write(tmp_path, "half.csv", text)))
    assert found.located() == [1, 2] and found.written == [1]


def test_percent_number_format_codes():
    from core.geochemistry.workbooks import percent_format

    assert [percent_format(c) for c in ("0%", "0.0%", "0.00%;[Red]-0.00%", "#,##0.0 %", "General", "0.00",
                                        '0.0"%"', "0.0\\%", '"% "0.0', None)] == \
        [True, True, True, True, False, False, False, False, False, False]


def test_a_workbook_joins_and_a_missing_sheet_is_refused_for_the_sheet_parameter(processing_provider, tmp_path):
    from qgis.core import QgsProcessingException

    path = write_xlsx(str(tmp_path / "VA26001234.xlsx"), {"Notes": [["Job", "VA26001234"]],
                                                          "Results": certificate_cells()})
    feedback = warning_recorder()
    result, layer, rows = run_join(tmp_path, {"RESULTS": path}, feedback)
    assert (result["JOINED"], result["UNMATCHED"]) == (4, 2)
    # (the output opens at once: a sheet that is no table, tried first, had kept the GeoPackage locked)
    assert [rows[k]["Au_ppm"] for k in ("NC001", "NC002", "NC003", "NC004")] == [-0.005, 15.2, 0.456, 0.1]
    assert ("Results workbook: sheet 'Results' (the largest table of assays; not joined: 'Notes'); header rows 6-9; "
            "data from row 10 (6 rows).") in feedback.infos
    # (the layer and its features go before the next run: a traceback kept by pytest.raises holds this frame, and a
    # layer freed after QGIS has exited crashes the interpreter at its end)
    del layer, rows
    os.remove(tmp_path / "joined.gpkg")
    with pytest.raises(QgsProcessingException) as caught:
        run_join(tmp_path, {"RESULTS": path, "SHEET": "Sheet1"})
    assert "(SHEET)" in str(caught.value) and "'Notes', 'Results'" in str(caught.value)
    assert not os.path.exists(tmp_path / "joined.gpkg")


SOIL = ("SampleID,Latitude,Longitude,Easting,Northing,Au,Cu\n,,,,,ppb,ppm\n"
        "S1,-27.1234,117.0012,500000,7000000,5,40\nS2,-27.1234,117.0022,500100,7000000,<1,35\n"
        "S3,0,0,-9999,-9999,7,30\nOREAS 45e,,,,,50,700\n")


def test_a_file_with_its_own_coordinates_finds_them(tmp_path):
    # headers as survey exports write them; other grids, elevations, zones and counts are no coordinates
    labels = ("Easting", "MGA94_N", "GDA94_MGA50_E", "Longitude (GDA94)", "DLAT", "Northing_k", "Easting (m)", "mE",
              "X", "POINT_Y", "X_MGA", "X_LOCAL", "ORIG_EAST", "Grid_N", "NAT_GRID_E", "RL", "Zone", "N_Samples",
              "SampleID")
    assert [lr._axis(label) for label in labels] == [
        ("x", "projected", ""), ("y", "projected", "mga94"), ("x", "projected", "gda94 mga50"),
        ("x", "geographic", "gda94"), ("y", "geographic", ""), ("y", "projected", ""), ("x", "projected", ""),
        ("x", "projected", ""), ("x", "unknown", ""), ("y", "unknown", ""), ("x", "projected", "mga"), None, None,
        None, ("x", "projected", "nat grid"), None, None, None, None]
    table = lr.read_lab_results(write(tmp_path, "soil.csv", SOIL))
    # longitude and latitude by default; the projected pair when asked, never a longitude with a northing (the
    # file lists Latitude and Longitude first); 0/0 and -9999 are placeholders, the standard has none
    lonlat, projected = lr.coordinate_columns(table), lr.coordinate_columns(table, ("projected",))
    assert (lonlat.x_column, lonlat.y_column, lonlat.kind, lonlat.placeholders, lonlat.located()) == \
        ("Longitude", "Latitude", "geographic", [2], [0, 1])
    assert (projected.x_column, projected.y_column, projected.placeholders, projected.located()) == \
        ("Easting", "Northing", [2], [0, 1])
    np.testing.assert_array_equal(projected.y, [7000000.0, 7000000.0, -9999.0, np.nan])
    # thousands separators; a pair of the map beside a local grid; plain X and Y are of no known kind
    text = ("Sample,X_LOCAL,Y_LOCAL,MGA94_E,MGA94_N,Au_ppb\nA,1000,2000,\"500,000\",\"7,000,000\",5\n"
            "B,1100,2000,500100,7000100,3\n")
    mga = lr.coordinate_columns(lr.read_lab_results(write(tmp_path, "mga.csv", text)), ("projected", "unknown"))
    assert (mga.x_column, mga.x, mga.y) == ("MGA94_E", [500000.0, 500100.0], [7000000.0, 7000100.0])
    # the real compilation: X and Y (longitudes and latitudes, the header does not say so), every row located
    area1 = lr.read_lab_results(AREA1)
    assert lr.coordinate_columns(area1) is None and lr.coordinate_kinds(area1) == {"unknown"}
    found = lr.coordinate_columns(area1, ("geographic", "unknown"))
    assert (found.x_column, found.y_column, found.kind, len(found.located())) == ("X", "Y", "unknown", 1392)
    np.testing.assert_array_equal(found.x, pd.read_csv(AREA1)["X"].to_numpy())


def test_coordinates_in_degrees_minutes_and_seconds_and_metres_with_units(tmp_path):
    # the ways older compilations write them; the hemisphere gives the sign, a letter of the other axis is no
    # coordinate there, minutes and seconds under 60, decimals only in the last part
    cases = [("117°30'15.5\"E", "x", 117 + 30 / 60 + 15.5 / 3600), ("117° 30′ 15″ W", "x", -(117 + 30 / 60 + 15 / 3600)),
             ("S 32 15 30", "y", -(32 + 15 / 60 + 30 / 3600)), ("-32:15:30", "y", -(32 + 15 / 60 + 30 / 3600)),
             ("32d15.5m S", "y", -(32 + 15.5 / 60)), ("32° 15,5' S", "y", -(32 + 15.5 / 60)), ("32.25S", "y", -32.25),
             ("32 15 30", "y", 32 + 15 / 60 + 30 / 3600), ("N32°", "y", 32.0)]
    for text, axis, expected in cases:
        assert lr.sexagesimal(text, axis) == pytest.approx(expected, abs=1e-12), text
    for text, axis in (("32°15'S", "x"), ("117°E", "y"), ("32 75 00", "y"), ("32.5 15", "y"), ("117.5", "x"),
                       ("12-34", "y"), ("n.a.", "y")):
        assert math.isnan(lr.sexagesimal(text, axis)), text
    text = ("SampleID,Lat,Long,Au_ppb\nS1,\"27°07'24.2\"\"S\",\"117°00'04.3\"\"E\",5\n"
            "S2,-27.1234,117.0022,3\nS3,27 07 24 N,117 00 04 E,4\nS4,,,7\n")
    table = lr.read_lab_results(write(tmp_path, "dms.csv", text))
    found = lr.coordinate_columns(table)
    np.testing.assert_allclose(found.x[:3], [117 + 4.3 / 3600, 117.0022, 117 + 4 / 3600])
    np.testing.assert_allclose(found.y[:3], [-(27 + 7 / 60 + 24.2 / 3600), -27.1234, 27 + 7 / 60 + 24 / 3600])
    assert found.written == [0, 2] and found.located() == [0, 1, 2]
    # eastings and northings with their unit; a northing's letter on an easting is no easting
    text = "Sample,Easting,Northing,Au_ppb\nA,500000mE,7000000mN,5\nB,500100 m,7000100 m,3\nC,500200mN,7000200mN,4\n"
    found = lr.coordinate_columns(lr.read_lab_results(write(tmp_path, "units.csv", text)), ("projected",))
    np.testing.assert_array_equal(found.x, [500000.0, 500100.0, np.nan])
    assert found.y == [7000000.0, 7000100.0, 7000200.0] and found.written == [0, 1] and found.located() == [0, 1]


def test_without_points_each_row_is_written_at_its_coordinates(processing_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsVectorLayer

    path = write(tmp_path, "soil.csv", SOIL)

    def run(name, **extra):
        feedback = warning_recorder()
        result = processing.run("oremap:join_lab_results", {"RESULTS": path, "OUTPUT": str(tmp_path / name), **extra},
                                context=QgsProcessingContext(), feedback=feedback)
        layer = QgsVectorLayer(result["OUTPUT"], "soil", "ogr")
        return result, layer, feedback

    result, layer, feedback = run("projected.gpkg", CRS="EPSG:28350")   # GDA94 / MGA zone 50
    assert (result["JOINED"], result["UNMATCHED"], layer.crs().authid()) == (2, 2, "EPSG:28350")
    assert layer.fields().names()[1:] == ["SampleID", "Latitude", "Longitude", "Easting", "Northing", "Au_ppb",
                                          "Cu_ppm"]
    got = {f["SampleID"]: (f.geometry().asPoint().x(), f.geometry().asPoint().y(), f["Au_ppb"]) for f in
           layer.getFeatures()}
    assert got == {"S1": (500000.0, 7000000.0, 5.0), "S2": (500100.0, 7000000.0, -1.0)}
    assert any("1 rows of the results file have no coordinates" in w and "'OREAS 45e'" in w for w in feedback.warnings)
    assert any("1 rows of the results file have coordinates that stand for none" in w and "'S3'" in w
               for w in feedback.warnings)
    result, layer, feedback = run("lonlat.gpkg")   # no CRS: the longitude and latitude columns, in WGS 84
    assert layer.crs().authid() == "EPSG:4326"
    assert sorted((f.geometry().asPoint().x(), f.geometry().asPoint().y()) for f in layer.getFeatures()) == \
        [(117.0012, -27.1234), (117.0022, -27.1234)]
    assert any("('Longitude', 'Latitude'), in EPSG:4326 (longitude and latitude, as no CRS was given)" in i
               for i in feedback.infos)
    del layer
    # degrees, minutes and seconds are read, and the log says so with an example
    dms = write(tmp_path, "dms.csv", "SampleID,Latitude,Longitude,Au_ppb\nS1,27 07 24.2 S,117 00 04.3 E,5\n"
                                     "S2,-27.1234,117.0022,3\n")
    result, layer, feedback = run("dms.gpkg", RESULTS=dms)
    assert result["JOINED"] == 2 and ("1 rows' coordinates are written in degrees, minutes and seconds, and read so "
                                      "(e.g. S1: '117 00 04.3 E', '27 07 24.2 S' as 117.001194, -27.123389).") \
        in feedback.infos
    del layer
    # eastings, or plain X and Y (a small local grid would pass for degrees), need their CRS; a geographic CRS for a
    # file of eastings; swapped names; several zones; a file without coordinates needs points
    projected_only = write(tmp_path, "mga.csv",
                           "Sample,E_MGA94,N_MGA94,Au_ppb\nA,500000,7000000,5\nB,500010,7000000,7\n")
    swapped = write(tmp_path, "swapped.csv", "Sample,Longitude,Latitude,Au_ppb\nA,-27.1,117.0,5\nB,-27.2,117.1,7\n")
    zoned = write(tmp_path, "zones.csv",
                  "Sample,Easting,Northing,Zone,Au_ppb\nA,500000,7000000,50,5\nB,400000,7000000,51,7\n")
    for extra, said in (({"RESULTS": projected_only}, "(CRS): The results file's coordinates are eastings and "
                                                      "northings, or X and Y"),
                        ({"RESULTS": write(tmp_path, "xy.csv", "Sample,X,Y,Au_ppb\nA,110,45,5\nB,120,55,7\n")},
                         "(CRS): The results file's coordinates are eastings"),
                        ({"RESULTS": projected_only, "CRS": "EPSG:4326"}, "(CRS): EPSG:4326 is a geographic"),
                        ({"RESULTS": swapped},
                         "(RESULTS): Most rows' coordinates ('Longitude', 'Latitude') lie beyond"),
                        ({"RESULTS": zoned, "CRS": "EPSG:28350"},
                         "(CRS): The file's 'Zone' column holds 2 zones (50, 51)"),
                        ({"RESULTS": write(tmp_path, "zone51.csv", "Sample,MGA_E,MGA_N,MGA_Zone,Au_ppb\n"
                                           "A,500000,7000000,51,5\nB,500010,7000000,51,7\n"), "CRS": "EPSG:28350"},
                         "(CRS): EPSG:28350 (GDA94 / MGA zone 50) is zone 50, and the file's 'MGA_Zone' column says "
                         "zone 51"),
                        ({"RESULTS": write(tmp_path, "bare.csv", "Sample,Au_ppb\nA,5\nB,7\n")},
                         "(POINTS): No sample points were given")):
        with pytest.raises(QgsProcessingException) as caught:
            run("refused.gpkg", **extra)
        assert said in str(caught.value)
        assert not os.path.exists(tmp_path / "refused.gpkg")
    # an ArcGIS export's FID column is kept beside the GeoPackage's own feature id
    fid = write(tmp_path, "fid.csv", "FID,Sample,MGA_E,MGA_N,Au_ppb\n0,A,500000,7000000,5\n1,B,500010,7000000,7\n")
    result, layer, _ = run("fid.gpkg", RESULTS=fid, CRS="EPSG:28350")
    assert result["JOINED"] == 2 and [f["fid_results"] for f in layer.getFeatures()] == [0.0, 1.0]
    del layer


def test_thousands_separators_of_several_groups():
    # '7,000,000' (an easting or a big count formatted by a spreadsheet) reads as one number, in layers and files; in
    # a decimal-comma file it is no number; groups of other sizes are not thousands
    from core.geochemistry import assay_text

    assert [assay_text.decimal(t) for t in ("7,000,000", "-1,250,000", "1,250,000.5", "1,250", "0,05")] == \
        [7000000.0, -1250000.0, 1250000.5, 1250.0, 0.05]
    for text, comma in (("7,000,000", "decimal"), ("12,34,567", None), ("7,00,000", None)):
        with pytest.raises(ValueError):
            assay_text.decimal(text, comma)
    assert assay_text.assay_value(">1,000,000") == 1000000.0 and assay_text.assay_value("<1,000") == -1000.0


def test_a_contaminated_blank_is_found_and_warned_of(processing_provider, tmp_path):
    # the certificate's blank assays below every limit: nothing to say
    clean = lr.read_lab_results(write(tmp_path, "clean.csv", CERTIFICATE))
    assert lab_qc.contaminated_blanks(clean, clean.attribute_values("SAMPLE / DESCRIPTION")) == ([], [])
    # a blank carrying gold (0.08 ppm, 16 times the limit 0.005) and copper at 2 times the limit (no fault); a pulp
    # blank named only in a QC-type column, with arsenic over 5 times the lowest '<' limit of its column
    text = ("SAMPLE,QC,WEI-21,Au-AA23,ME-ICP61,ME-ICP61,ME-ICP61\nDESCRIPTION,TYPE,Recvd Wt.,Au,Cu,S,As\n"
            ",,kg,ppm,%,%,ppm\n,,0.02,0.005,0.0001,0.01,\n"
            "NC001,,2.10,<0.005,0.0123,1.20,6\nNC002,,1.90,0.85,0.85,0.5,<5\nBLANK,,0.10,0.08,0.0002,<0.01,<5\n"
            "NC003,,2.00,0.456,0.456,2.10,11\nNC004,,1.00,0.100,1.00,1.00,<5\n"
            "NC099,Pulp Blank,0.10,<0.005,0.0001,<0.01,40\n")
    table = lr.read_lab_results(write(tmp_path, "dirty.csv", text))
    ids = table.attribute_values(lr.id_column(table))
    found, unchecked = lab_qc.contaminated_blanks(table, ids)
    assert unchecked == [] and [(ids[i], hits) for i, hits in found] == [("BLANK", [("Au_ppm", 0.08, 0.005)]),
                                                     ("NC099", [("As_ppm", 40.0, 5.0)])]
    feedback = warning_recorder()
    result, layer, _ = run_join(tmp_path, {"RESULTS": write(tmp_path, "dirty_join.csv", text)}, feedback)
    assert result["JOINED"] == 4
    assert ("2 blank(s) assay above 5 times the limit of detection: contamination or carry-over in the laboratory, "
            "which also reaches the samples prepared or analysed after them. BLANK (line 7): Au_ppm 0.08, 16 "
            "times its limit 0.005; NC099 (line 10): As_ppm 40, 8 times its limit 5. Ask the laboratory to check the "
            "batch.") in feedback.warnings
    del layer


# certified values for the tests (invented, not any certificate's); Au in ppb to check the units
CERTIFIED = ("Standard,Element,Unit,Certified Value,1SD\nOREAS 504c,Au,ppb,1480,45\n,Cu,%,1.10,0.025\n"
             ",Ag,ppm,1.2,0.15\n,S,%,1.15,0.03\n,As,ppm,20,2\n,Mo,ppm,500,20\n,Pt,ppb,<5,\n"
             "GBM999-1,Au,ppm,0.5,0.02\n")


def test_standards_are_checked_against_their_certified_values(processing_provider, tmp_path):
    certified = lab_qc.read_certified_values(write(tmp_path, "certified.csv", CERTIFIED))
    assert [(c.standard, c.element, c.unit, c.value, c.sd) for c in certified] == [
        ("OREAS 504c", "Au", "ppb", 1480.0, 45.0), ("OREAS 504c", "Cu", "pct", 1.1, 0.025),
        ("OREAS 504c", "Ag", "ppm", 1.2, 0.15), ("OREAS 504c", "S", "pct", 1.15, 0.03),
        ("OREAS 504c", "As", "ppm", 20.0, 2.0), ("OREAS 504c", "Mo", "ppm", 500.0, 20.0),
        ("GBM999-1", "Au", "ppm", 0.5, 0.02)]   # the indicative '<5' is no certified value
    table = lr.read_lab_results(write(tmp_path, "VA26001234.csv", CERTIFICATE))
    ids = table.attribute_values("SAMPLE / DESCRIPTION")
    check = lab_qc.check_standards(table, ids, certified)
    # the standard's row (line 13): Au-AA23 1.61 ppm is 1610 ppb, +2.9 SD; Cu on the value; S 1.00 % is -5.0 SD; As
    # below 5 ppm where 20 +/- 2 is certified fails too (it should have been measured); Mo is not assayed
    got = [(r.row, r.column, round(r.measured, 6), round(r.z, 3), r.below) for r in check.results]
    assert got == [(3, "Au_ppm_AA23", 1610.0, 2.889, False), (3, "Ag_ppm", 1.1, -0.667, False),
                   (3, "Cu_pct", 1.1, 0.0, False), (3, "S_pct", 1.0, -5.0, False), (3, "As_ppm", 5.0, -7.5, True)]
    assert [r.column for r in check.failed()] == ["S_pct", "As_ppm"] and [r.column for r in check.warned()] == \
        ["Au_ppm_AA23"]
    assert check.not_in_results == ["GBM999-1"] and check.elements_missing == {"OREAS 504c": ["Mo"]}
    # a standard named with other spacing, case and hyphens is the same standard
    assert lab_qc.standard_rows(table, ["oreas-504C" if i == 3 else t for i, t in enumerate(ids)],
                                ["OREAS 504c"]) == {3: "OREAS 504c"}
    # a certificate's own table, named after its standard, without a Standard column; a workbook
    own = lab_qc.read_certified_values(write(tmp_path, "OREAS 504c.csv", "Analyte,Unit,Value,SD\nAu,ppm,1.48,0.045\n"))
    assert [(c.standard, c.element, c.value) for c in own] == [("OREAS 504c", "Au", 1.48)]
    book = write_xlsx(str(tmp_path / "crm.xlsx"), {"Notes": [["Certified values"]], "Values": [
        ["CRM", "Element", "Units", "Certified value", "Std Dev"], ["OREAS 504c", "Cu", "%", 1.1, 0.025]]})
    assert [(c.standard, c.unit, c.place) for c in lab_qc.read_certified_values(book)] == \
        [("OREAS 504c", "pct", "row 2 of sheet 'Values'")]
    with pytest.raises(OreMapError) as caught:
        lab_qc.read_certified_values(write(tmp_path, "nosd.csv", "Standard,Element,Value\nOREAS 504c,Au,1.48\n"))
    assert caught.value.parameter == "standards" and "no column of standard deviations" in caught.value.message
    # through the algorithm: the failures counted and said, the warning said; without values, the rows named
    feedback = warning_recorder()
    result, layer, _ = run_join(tmp_path, {"STANDARDS": write(tmp_path, "certified.csv", CERTIFIED)}, feedback)
    assert result["STANDARDS_FAILED"] == 2 and result["JOINED"] == 4
    assert ("OREAS 504c at line 13: S_pct 1 pct against the certified 1.15 +/- 0.03 (-5.00 SD): a failed standard, "
            "the batch's results for this element are in doubt; ask the laboratory to re-assay the batch.") \
        in feedback.warnings
    assert any(w.startswith("OREAS 504c at line 13: As_ppm below 5 ppm against the certified 20 +/- 2 (-7.50 SD)")
               for w in feedback.warnings)
    assert any(w.startswith("OREAS 504c at line 13: Au_ppm_AA23 1610 ppb against the certified 1480 +/- 45 (+2.89 SD): "
                            "beyond 2 SD") for w in feedback.warnings)
    assert "OREAS 504c, Cu_pct (1 row): mean 1.1 against 1.1 +/- 0.025 pct (bias +0.0 %); all within 2 SD." \
        in feedback.infos
    del layer
    os.remove(tmp_path / "joined.gpkg")
    feedback = warning_recorder()
    result, layer, _ = run_join(tmp_path, {}, feedback)
    assert result["STANDARDS_FAILED"] == 0 and ("1 rows look like certified reference materials ('OREAS 504c'): give "
                                                "their certified values (STANDARDS) to check them.") in feedback.infos
    del layer


def test_duplicate_pairs_and_their_precision(processing_provider, tmp_path):
    # field duplicates under their own ids (a suffix, or an 'Original' column) and a laboratory repeat under the
    # sample's id; precision only where both values are 10 times the limit or more (Au limit 0.005: 0.05)
    text = ("Sample,Original,Au_ppm,Cu_ppm\nLOR,,0.005,1\nNC001,,1.00,100\nNC001D,,1.20,110\nNC002,,0.50,40\n"
            "NC003,,0.02,60\nX77,NC002,0.40,40\nNC003,,0.03,50\nNC004,,2.0,5\n")
    table = lr.read_lab_results(write(tmp_path, "dups.csv", text))
    ids = table.attribute_values("Sample")
    pairs = lab_qc.duplicate_pairs(table, ids)
    assert pairs == [(0, 1, "id with a duplicate suffix"), (2, 4, "'Original' column"), (3, 5, "id repeated")]
    found, unknown = lab_qc.duplicate_precision(table, pairs)
    precision = {p.column: p for p in found}
    assert unknown == []
    # Au: |1.0 - 1.2| / 2.2 = 9.09 %, |0.5 - 0.4| / 0.9 = 11.1 %; NC003's 0.02 and 0.03 are under 0.05: left out
    assert precision["Au_ppm"].pairs == 2 and precision["Au_ppm"].median == pytest.approx(100 * (0.2 / 2.2 + 0.1 / 0.9) / 2)
    assert (precision["Au_ppm"].within_10, precision["Au_ppm"].within_20) == (1, 2)
    # Cu (limit 1, floor 10): 10/210, 0, 10/110
    assert precision["Cu_ppm"].pairs == 3 and precision["Cu_ppm"].median == pytest.approx(100 * 10 / 210)
    # ids that only look like a duplicate of a sample the file lacks, and a lone sample, pair with nothing; ids equal
    # but for punctuation are other samples (hole 1 sample 15, hole 11 sample 5); copies of a standard and of a
    # blank are no duplicates
    assert lab_qc.duplicate_pairs(table, ["AD", "S100R", "NC009D", "B", "C", "D", "E"]) == []
    assert lab_qc.duplicate_pairs(table, ["RC1-15", "RC11-5", "OREAS 504c", "OREAS 504c", "BLANK", "BLANK", "E"]) == []
    # a bare D or R pairs only next to its original (further away, RC123D is a hole of its own); DUP anywhere
    assert lab_qc.duplicate_pairs(table, ["RC123", "A", "B", "C", "RC123D", "RC123 DUP", "E"]) == \
        [(0, 5, "id with a duplicate suffix")]
    # a value over the upper limit is a bound: its pair is left out; a pair at exactly 10 times the limit counts; a
    # column without a known limit is not measured
    bounds = lr.read_lab_results(write(tmp_path, "dups2.csv", "Sample,Au_ppm,Cu_ppm\nA1,>10,3\nA1D,>10,4\n"
                                                              "A2,0.05,5\nA2D,0.06,6\n"))
    bounds.assays[0].limit = 0.005
    found, unknown = lab_qc.duplicate_precision(bounds, lab_qc.duplicate_pairs(bounds, bounds.attribute_values("Sample")))
    assert [(p.column, p.pairs, round(p.median, 4)) for p in found] == [("Au_ppm", 1, round(100 / 11, 4))]
    assert unknown == ["Cu_ppm"]
    feedback = warning_recorder()
    result, layer, _ = run_join(tmp_path, {"RESULTS": write(tmp_path, "dups.csv", text)}, feedback)
    assert ("3 duplicate pair(s) (1 by id with a duplicate suffix, 1 by 'Original' column, 1 by id repeated): "
            "precision as the median of half the pair's difference over its mean, for pairs at 10 times the limit "
            "of detection or more: Au_ppm 10.1 % (2 pairs, 1 within 10 %, 2 within 20 %); Cu_ppm 4.8 % (3 pairs, 3 "
            "within 10 %, 3 within 20 %).") in feedback.infos
    del layer


def test_a_result_exactly_at_3_or_2_sd_is_not_beyond_them(tmp_path):
    # (from a replay) 4.14 against 4.02 +/- 0.04 computes as 3.0000000000000027 SD: it neither fails nor did 23
    # against 20 +/- 1 (3.0 exactly); 4.10 (2.0000000000000018 SD) is within 2 SD like 22 against 20 +/- 1
    table = lr.read_lab_results(write(tmp_path, "edge.csv", "Sample,Pb_ppm,Fe_pct\nA1,5,1\nOREAS 501d,23,4.14\n"
                                                            "OREAS 501d,22,4.10\n"))
    certified = [lab_qc.CertifiedValue("OREAS 501d", "Pb", "ppm", 20.0, 1.0),
                 lab_qc.CertifiedValue("OREAS 501d", "Fe", "pct", 4.02, 0.04)]
    check = lab_qc.check_standards(table, table.attribute_values("Sample"), certified)
    assert [round(r.z, 6) for r in check.results] == [3.0, 3.0, 2.0, 2.0]
    assert check.failed() == [] and [(r.row, r.column) for r in check.warned()] == [(1, "Pb_ppm"), (1, "Fe_pct")]
    with pytest.raises(OreMapError) as caught:
        lab_qc.read_certified_values(str(tmp_path / "nothere.csv"))
    assert caught.value.parameter == "standards" and "table of certified values" in caught.value.fix \
        and "results" not in caught.value.fix


def test_certified_values_as_vendors_write_them_and_standards_as_laboratories_name_them(tmp_path):
    # (from a review) an OREAS-style table: a title, 1SD on a second header row, method section rows, 'Au, Gold';
    # an indicative section is no certified value
    rows = [["Table 1. Certified values of OREAS 504c"],
            ["Constituent", "Unit", "Certified Value", "Absolute Standard Deviations", None, "95% Confidence Limits"],
            [None, None, None, "1SD", "2SD Low", "Low"], ["Pb Fire Assay"], ["Au, Gold", "ppm", 1.48, 0.045, 1.39, 1.46],
            ["Aqua Regia Digestion"], ["Au, Gold", "ppm", 1.20, 0.05, 1.1, 1.18], ["Cu, Copper", "wt.%", 1.11, 0.025, 1.06, 1.1],
            ["Indicative Values"], ["Zn, Zinc", "ppm", 50, 10, 30, 45]]
    values = lab_qc.read_certified_values(write_xlsx(str(tmp_path / "OREAS 504c.xlsx"), {"Table 1": rows}))
    assert [(v.standard, v.element, v.unit, v.value, v.method) for v in values] == [
        ("OREAS 504c", "Au", "ppm", 1.48, "Pb Fire Assay"), ("OREAS 504c", "Au", "ppm", 1.2, "Aqua Regia Digestion"),
        ("OREAS 504c", "Cu", "pct", 1.11, "Aqua Regia Digestion")]
    # each gold column against its method's value; a column of no known method is not compared
    results = ("SAMPLE,Au-AA23,ME-MS41,Au_ppm,Cu_pct\n,Au,Au,,\n,ppm,ppm,,\nA1,0.1,0.1,0.1,0.5\n"
               "Std OREAS 504c,1.50,1.21,1.30,1.11\nOREAS-504C_2,1.46,1.19,1.20,1.12\n")
    table = lr.read_lab_results(write(tmp_path, "methods.csv", results))
    check = lab_qc.check_standards(table, table.attribute_values("SAMPLE"), values)
    assert sorted({(r.column, r.certified.value) for r in check.results}) == [
        ("Au_ppm_AA23", 1.48), ("Au_ppm_MEMS41", 1.2), ("Cu_pct", 1.11)]
    assert [r.row for r in check.results if r.column == "Cu_pct"] == [1, 2]   # 'Std ...' and '..._2' are the standard
    assert check.undecided == [("OREAS 504c", "Au_ppm_3", ["Pb Fire Assay", "Aqua Regia Digestion"])]
    # decimal commas; a unit OreMap does not convert is skipped and said; a Parameter/Value block above the table
    semi = lab_qc.read_certified_values(write(tmp_path, "semi.csv", "Standard;Element;Unit;Value;SD\n"
                                              "OREAS 504c;Au;ppm;1,48;0,045\nOREAS 504c;Ag;oz/t;0,05;0,01\n"))
    assert [(v.value, v.sd) for v in semi] == [(1.48, 0.045)] and semi.skipped == [("line 3", "Ag in 'oz/t'")]
    block = lab_qc.read_certified_values(write(tmp_path, "block.csv", "Parameter,Value\nMatrix,Soil\n\n"
                                               "Standard,Element,Unit,Value,SD\nGBM-X,Fe,%,10,0.2\n"))
    assert [(v.standard, v.element) for v in block] == [("GBM-X", "Fe")]
    # certified Fe against Fe2O3 through the oxide's ratio (14.3 % Fe2O3 is 10.0 % Fe); a standard over the upper
    # limit ('>10') far above its value fails; a block id BLK7-002 is no blank
    table = lr.read_lab_results(write(tmp_path, "ox.csv", "SAMPLE,Fe2O3_pct,Au_ppm\nA1,5,0.1\nGBM-X,14.3,>10\n"
                                                          "BLK7-002,6,2.5\nBLK-2,0.1,<0.005\n"))
    ids = table.attribute_values("SAMPLE")
    check = lab_qc.check_standards(table, ids, block + [lab_qc.CertifiedValue("GBM-X", "Au", "ppm", 1.48, 0.045)])
    assert [(r.column, round(r.measured, 3), r.above) for r in check.results] == [("Fe2O3_pct", 10.002, False),
                                                                                  ("Au_ppm", 10.0, True)]
    assert [r.column for r in check.failed()] == ["Au_ppm"]
    assert lab_qc.contaminated_blanks(table, ids) == ([], ["Fe2O3_pct"])   # BLK-2 is, without an Fe2O3 limit
    assert [lab_qc.is_blank_id(t) for t in ("BLANK", "Pulp blank", "BLK", "BLK-2", "blk 3", "BLK7-002", "Blk 4a")] \
        == [True, True, True, True, True, False, False]
    # a workbook format OreMap does not read is refused naming STANDARDS
    old = tmp_path / "crm.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    with pytest.raises(OreMapError) as caught:
        lab_qc.read_certified_values(str(old))
    assert caught.value.parameter == "standards" and "Excel 97-2003" in caught.value.message


def test_the_standards_and_blanks_of_a_workbooks_qc_sheet_are_checked_too(processing_provider, tmp_path):
    # a laboratory's workbook: the results, and a QC sheet with two standards and two blanks
    qc = [["Sample", "Au", "Cu"], [None, "ppm", "%"], ["OREAS 504c", 1.61, 1.10], ["OREAS 504c", 1.49, 1.52],
          ["BLANK", 0.09, 0.0002], ["BLANK", "<0.005", "<0.0001"]]
    path = write_xlsx(str(tmp_path / "VA26001234.xlsx"), {"Results": certificate_cells(), "QC": qc})
    table = lr.read_lab_results(path)
    assert table.sheet == "Results" and [t.sheet for t in table.other_tables] == ["QC"]
    assert lr.read_lab_results(path, "Results").other_tables[0].sheet == "QC"   # chosen by name too
    feedback = warning_recorder()
    result, layer, _ = run_join(tmp_path, {"RESULTS": path, "STANDARDS": write(tmp_path, "certified.csv", CERTIFIED)},
                                feedback)
    # the results' S and As (2) and the QC sheet's second copper (1.52 % against 1.10 +/- 0.025: +16.8 SD)
    assert result["STANDARDS_FAILED"] == 3
    assert any(i.startswith("Results workbook: sheet 'Results' (the largest table of assays; not joined: 'QC' (its "
                            "blanks and standards checked));") for i in feedback.infos)
    assert any(w.startswith("OREAS 504c at row 4 of sheet 'QC': Cu_pct 1.52 pct against the certified 1.1 +/- 0.025 "
                            "(+16.80 SD): a failed standard") for w in feedback.warnings)
    assert "OREAS 504c, Au_ppm of sheet 'QC' (2 rows): mean 1550 against 1480 +/- 45 ppb (bias +4.7 %); 1 beyond 2 SD." \
        in feedback.infos
    assert any(w.startswith("1 blank(s) assay above 5 times the limit of detection") and
               "BLANK (row 5 of sheet 'QC'): Au_ppm 0.09, 18 times its limit 0.005" in w for w in feedback.warnings)
    del layer
