"""A vector output (a Processing feature sink) is guarded as a raster output is: a run that fails or is cancelled
once its sink is created puts back the file that was at the output path, byte for byte, and leaves no file at a
new path; a run that completes writes its features. The guard is the base class's
(``OreMapAlgorithm.parameterAsSink``), so every algorithm with a points or polygons output has it."""

import hashlib
import os

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from oremap.algorithms import base, styles


def _md5(path):
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def _survey(path, n=60, seed=0):
    """A small point survey of three elements (GeoPackage): the input of geochem_anomaly."""
    import geopandas as gpd
    from shapely.geometry import Point

    rng = np.random.default_rng(seed)
    geometry = [Point(400000 + 97 * i, 6000000 + 53 * (i % 9)) for i in range(n)]
    gpd.GeoDataFrame({"Cu_ppm": rng.lognormal(3, 1, n), "Zn_ppm": rng.lognormal(4, 1, n),
                      "As_ppm": rng.lognormal(1, 1, n)}, geometry=geometry, crs="EPSG:32750").to_file(path)
    return str(path)


def _count(path):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(str(path), "check", "ogr")
    return layer.featureCount() if layer.isValid() else None


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    return _survey(folder / "survey.gpkg")


@pytest.fixture
def cancel_once_the_sink_exists(monkeypatch):
    """A feedback that is cancelled right after the algorithm has created its feature sink (the file exists,
    GDAL holds it open, no feature is written yet): the run stops at its next check."""
    feedback = QgsProcessingFeedback()
    created = []
    original = base.OreMapAlgorithm.parameterAsSink

    def create_then_cancel(self, *args, **kwargs):
        sink, dest = original(self, *args, **kwargs)
        created.append(dest)
        feedback.cancel()
        return sink, dest

    monkeypatch.setattr(base.OreMapAlgorithm, "parameterAsSink", create_then_cancel)
    feedback.created = created
    return feedback


def _run(parameters, feedback=None):
    import processing

    return processing.run("oremap:geochem_anomaly", parameters, feedback=feedback)


def test_a_cancelled_run_keeps_an_existing_geopackage_byte_for_byte(processing_provider, inputs, tmp_path,
                                                                    cancel_once_the_sink_exists):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "scored.gpkg"
    _survey(target, n=37, seed=1)   # the user's earlier file: 37 features
    (out / "scored.gpkg-wal").write_bytes(b"old journal")   # a journal left beside it is put back too
    before, listing = _md5(target), sorted(os.listdir(out))
    with pytest.raises(QgsProcessingException) as err:
        _run({"POINTS": inputs, "OUTPUT": str(target), "OUTPUT_HTML": str(out / "r.html")},
             cancel_once_the_sink_exists)
    assert cancel_once_the_sink_exists.created == [str(target)]   # the sink was made before the cancel
    assert str(err.value) == "Cancelled: no output was written."
    assert sorted(os.listdir(out)) == listing   # no kept copy, mark, style or report left
    assert (out / "scored.gpkg-wal").read_bytes() == b"old journal"
    assert _md5(target) == before
    os.remove(out / "scored.gpkg-wal")
    assert _count(target) == 37


def test_a_cancelled_run_leaves_no_file_at_a_new_path(processing_provider, inputs, tmp_path,
                                                      cancel_once_the_sink_exists):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match="^Cancelled: no output was written.$"):
        _run({"POINTS": inputs, "OUTPUT": str(out / "scored.gpkg"), "OUTPUT_HTML": str(out / "r.html")},
             cancel_once_the_sink_exists)
    assert cancel_once_the_sink_exists.created == [str(out / "scored.gpkg")]
    assert os.listdir(out) == []


def test_a_cancel_while_the_features_are_written_puts_the_file_back(processing_provider, inputs, tmp_path):
    """Cancelled by progress, as a user does, while the sink is written (the audit's case)."""
    from qgis.core import QgsProcessingFeedback

    target = tmp_path / "scored.gpkg"
    _survey(target, n=37, seed=1)
    before = _md5(target)
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p >= 97 else None)
    with pytest.raises(QgsProcessingException, match="^Cancelled: no output was written.$"):
        _run({"POINTS": inputs, "OUTPUT": str(target), "OUTPUT_HTML": str(tmp_path / "r.html")}, feedback)
    assert sorted(os.listdir(tmp_path)) == ["in", "scored.gpkg"]
    assert _md5(target) == before and _count(target) == 37


def test_a_failed_run_puts_back_the_geopackage_it_had_replaced(processing_provider, inputs, tmp_path, monkeypatch):
    """A failure once the features are written (the style cannot be saved: disk full) puts the old file back."""
    target = tmp_path / "scored.gpkg"
    _survey(target, n=37, seed=1)
    before = _md5(target)

    def fail(path, style):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(styles, "write_style", fail)
    with pytest.raises(QgsProcessingException, match="could not be read or written"):
        _run({"POINTS": inputs, "OUTPUT": str(target), "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert sorted(os.listdir(tmp_path)) == ["in", "scored.gpkg"]
    assert _md5(target) == before and _count(target) == 37


def test_a_completed_run_writes_its_features_over_the_earlier_file(processing_provider, inputs, tmp_path):
    import geopandas as gpd

    target = tmp_path / "scored.gpkg"
    _survey(target, n=37, seed=1)
    (tmp_path / "scored.gpkg-wal").write_bytes(b"old journal")   # the old file's: not left beside the new one
    result = _run({"POINTS": inputs, "OUTPUT": str(target), "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert result["OUTPUT"] == str(target)
    assert sorted(os.listdir(tmp_path)) == ["in", "r.html", "scored.gpkg", "scored.qml"]
    scored = gpd.read_file(target)
    assert len(scored) == 60 and scored["anomaly_score"].notna().all()


def test_a_file_the_rollback_cannot_remove_is_said_not_denied(processing_provider, inputs, tmp_path, monkeypatch,
                                                             cancel_once_the_sink_exists):
    """'no output was written' stays true: when the file the run made cannot be removed (held open on Windows),
    the cancel says so, and which file, instead."""
    from oremap.core.engine import files

    target = tmp_path / "scored.gpkg"
    real = files._remove
    monkeypatch.setattr(files, "_remove", lambda path: None if path == str(target) else real(path))
    with pytest.raises(QgsProcessingException) as err:
        _run({"POINTS": inputs, "OUTPUT": str(target), "OUTPUT_HTML": str(tmp_path / "r.html")},
             cancel_once_the_sink_exists)
    message = str(err.value)
    assert "no output was written" not in message
    assert message.startswith("Cancelled") and str(target) in message and "could not be removed" in message


def test_which_sink_destinations_are_files(processing_provider, tmp_path):
    """A plain path (or a file:// URI) is guarded; a temporary output, a memory layer, an 'ogr:' layer of a database
    or a database URI needs nothing. SQLite's journals and a shapefile's parts go with their file."""
    from qgis.core import (QgsProcessing, QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProject,
                           QgsProperty)
    from qgis.PyQt.QtCore import QUrl

    from conftest import ensure_provider

    alg = ensure_provider().algorithm("geochem_anomaly").createInstance()
    alg.initAlgorithm()
    context = QgsProcessingContext()
    path = str(tmp_path / "a.gpkg")
    found = lambda value: alg._sink_file({"OUTPUT": value}, "OUTPUT", context)  # noqa: E731
    project = QgsProject.instance()
    assert found(path) == path
    assert found(QgsProcessingOutputLayerDefinition(path, project)) == path
    assert found(QgsProcessingOutputLayerDefinition(QgsProperty.fromExpression(f"'{path}'"), project)) == path
    assert found(QUrl.fromLocalFile(path).toString()) == path
    for value in (None, QgsProcessing.TEMPORARY_OUTPUT, QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT"),
                  "memory:", f"ogr:dbname='{path}' table=\"t\" (geom)", "postgres://dbname='x' table=\"t\"",
                  QgsProcessingOutputLayerDefinition("memory:", project)):
        assert found(value) is None, value
    assert context.layersToLoadOnCompletion() == {}   # finding the file asks for no layer to be loaded
    assert base.sink_side_files("/x/a.gpkg") == ["/x/a.gpkg-wal", "/x/a.gpkg-shm", "/x/a.gpkg-journal"]
    assert base.sink_side_files("/x/a.shp")[:5] == ["/x/a.shx", "/x/a.dbf", "/x/a.prj", "/x/a.cpg", "/x/a.qix"]
    assert base.sink_side_files("/x/a.fgb") == []


def test_a_shapefile_sink_is_put_back_with_its_parts(tmp_path):
    """The guard itself (OreMap refuses shapefile outputs, but Processing could be handed one): every part of an
    existing shapefile is kept and put back, the parts the run made are removed."""
    target = tmp_path / "a.shp"
    for ext in (".shp", ".shx", ".dbf", ".prj"):
        (tmp_path / f"a{ext}").write_bytes(b"old " + ext.encode())
    guard = base.RunGuard()
    guard.add_sink(str(target), "OUTPUT")
    assert not target.exists()   # moved aside: the writer makes a new file, never rewrites the old one
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix"):
        (tmp_path / f"a{ext}").write_bytes(b"new")
    assert guard.rollback() == [] and guard.left == []
    assert sorted(os.listdir(tmp_path)) == ["a.dbf", "a.prj", "a.shp", "a.shx"]
    for ext in (".shp", ".shx", ".dbf", ".prj"):
        assert (tmp_path / f"a{ext}").read_bytes() == b"old " + ext.encode()
    guard = base.RunGuard()
    guard.add_sink(str(target), "OUTPUT")
    (tmp_path / "a.shp").write_bytes(b"new")
    guard.commit()
    assert sorted(os.listdir(tmp_path)) == ["a.shp"]


def test_provider_uri_destinations_run(run_alg, inputs, tmp_path):
    """A model's intermediate sink is 'memory:<name>' and the Toolbox's 'Save to GeoPackage...' gives
    'ogr:dbname=... table=...': both were refused as files OreMap 'cannot write' (no model could pass an OreMap vector
    output to a next step)."""
    memory = run_alg("geochem_anomaly", {"POINTS": inputs, "OUTPUT": "memory:Scored points"})
    assert memory["OUTPUT"].featureCount() == 60   # processing.run gives the memory layer itself
    target = tmp_path / "out.gpkg"
    uri = f"ogr:dbname='{target}' table=\"scores\" (geom)"
    saved = run_alg("geochem_anomaly", {"POINTS": inputs, "OUTPUT": uri})
    assert _count(f"{target}|layername=scores") == 60 and "scores" in str(saved["OUTPUT"])
