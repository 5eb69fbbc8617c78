"""Vector destinations as users spell them (audit of 2026-12-07): a layer of an existing GeoPackage, the Toolbox's
'Save to GeoPackage...' (``ogr:dbname=... table=...``), FlatGeobuf, and the formats QGIS would write under another
name. Before: ``y.gpkg|layername=mines`` deleted the user's y.gpkg; an ``ogr:`` destination naming the input layer
emptied it (1,392 samples to 0); a layer written into a GeoPackage replaced the user's ``y.qml`` and restyled the
file's other layers; a FlatGeobuf output got no style file; ``.json`` became ``x.json.geojson``."""

import os

import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer

from test_sink_guard import _count, _run, _survey


def _renderer(uri):
    layer = QgsVectorLayer(uri, "check", "ogr")
    return layer.renderer().type() if layer.isValid() else None


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    return _survey(folder / "survey.gpkg")


def _user_geopackage(path):
    """A GeoPackage of the user's with a layer 'other' (32 points) and the user's own style file beside it."""
    _survey(path, n=32, seed=3)
    layer = QgsVectorLayer(f"{path}|layername={os.path.splitext(os.path.basename(path))[0]}", "u", "ogr")
    assert layer.isValid()
    return str(path)


def test_a_layer_spelt_inside_a_file_is_refused_and_the_file_kept(processing_provider, inputs, tmp_path):
    user = _user_geopackage(tmp_path / "y.gpkg")
    size = os.path.getsize(user)
    with pytest.raises(QgsProcessingException, match=r"OUTPUT\): .*names a layer inside a file.*"
                                                     r"ogr:dbname='.*y\.gpkg' table=\"mines\" \(geom\)"):
        _run({"POINTS": inputs, "OUTPUT": f"{user}|layername=mines", "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert os.path.getsize(user) == size and _count(user) == 32
    assert sorted(os.listdir(tmp_path)) == ["in", "y.gpkg"]


def test_an_ogr_destination_that_is_the_input_layer_is_refused(processing_provider, inputs, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"The layer 'survey' of survey\.gpkg is also the input"):
        _run({"POINTS": inputs, "OUTPUT": f"ogr:dbname='{inputs}' table=\"survey\" (geom)",
              "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert _count(inputs) == 60
    with pytest.raises(QgsProcessingException, match=r"is also the input"):   # the input named by its layer
        _run({"POINTS": f"{inputs}|layername=survey", "OUTPUT": f"ogr:dbname='{inputs}' table=\"SURVEY\" (geom)",
              "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert _count(inputs) == 60


def test_a_layer_added_to_a_users_geopackage_keeps_its_style_inside_and_the_users_files_alone(
        processing_provider, inputs, tmp_path):
    user = _user_geopackage(tmp_path / "z.gpkg")
    (tmp_path / "z.qml").write_text("<qgis>the user's own style</qgis>")
    result = _run({"POINTS": inputs, "OUTPUT": f"ogr:dbname='{user}' table=\"scores\" (geom)",
                   "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert result["OUTPUT"] == f"{user}|layername=scores"
    assert (tmp_path / "z.qml").read_text() == "<qgis>the user's own style</qgis>"
    assert _count(f"{user}|layername=z") == 32 and _count(f"{user}|layername=scores") == 60
    assert _renderer(f"{user}|layername=scores") == "categorizedSymbol"   # the default style inside the file
    assert _renderer(f"{user}|layername=z") == "singleSymbol"
    # a second run over the same layer replaces it and its style (saving over a style did not return in QGIS 3.22)
    _run({"POINTS": inputs, "OUTPUT": f"ogr:dbname='{user}' table=\"scores\" (geom)",
          "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert _count(f"{user}|layername=scores") == 60 and _renderer(f"{user}|layername=scores") == "categorizedSymbol"


def test_a_flatgeobuf_output_gets_its_style_file(processing_provider, inputs, tmp_path):
    target = tmp_path / "scored.fgb"
    _run({"POINTS": inputs, "OUTPUT": str(target), "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert (tmp_path / "scored.qml").is_file() and "anomaly_class" in (tmp_path / "scored.qml").read_text()
    assert _renderer(str(target)) == "categorizedSymbol"


@pytest.mark.parametrize("extension", [".json", ".sqlite"])
def test_formats_written_under_another_name_or_without_a_crs_are_refused(processing_provider, inputs, tmp_path,
                                                                         extension):
    with pytest.raises(QgsProcessingException, match=f"cannot write '{extension}' files here"):
        _run({"POINTS": inputs, "OUTPUT": str(tmp_path / f"scored{extension}"), "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert sorted(os.listdir(tmp_path)) == ["in"]
