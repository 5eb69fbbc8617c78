"""Reliability: concurrent runs to one output, stale partial files of killed runs, the CRS rule."""

import os
import threading
import time

import numpy as np
import pytest
import rasterio

from conftest import AVIRIS_NG, AVIRIS_NG_2, USGS_LIBRARY, core_warnings
from test_raster import write_cube

from oremap.core.engine.raster import OutputSpec, RasterSource, partial_path, remove_stale_partials, run_pixelwise


def _partials(folder):
    return sorted(n for n in os.listdir(folder) if ".oremap-partial" in n)


def test_two_runs_to_one_path_at_once_each_write_a_whole_file(tmp_path):
    """Both runs hold their output open at the same time (a barrier in the first block): with a shared temporary
    name one of them would fail moving it and the survivor could mix blocks of both; each has its own."""
    rng = np.random.default_rng(3)
    inputs = [write_cube(str(tmp_path / f"in{i}.tif"), rng.uniform(0.05, 0.6, (3, 300, 40))) for i in range(2)]
    target = str(tmp_path / "same.tif")
    barrier = threading.Barrier(2, timeout=60)
    errors = []

    def one(path):
        first = [True]

        def total(pixels):
            if first[0]:  # both runs are past opening their output before either writes a block
                first[0] = False
                barrier.wait()
            return pixels.sum(axis=1)

        try:
            with RasterSource(path) as src:  # a tiny budget: many blocks, so the two runs interleave their writes
                run_pixelwise(src, [OutputSpec(target, ["sum"])], total, memory_mb=0.05)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(p,)) for p in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with rasterio.open(target) as ds:
        written = ds.read(1)
    expected = []
    for path in inputs:
        with rasterio.open(path) as ds:
            expected.append(ds.read().astype(np.float32).sum(axis=0))
    # whole: every pixel from the same run (the last to finish), not a mix
    assert any(np.allclose(written, e, rtol=1e-6) for e in expected)
    assert _partials(tmp_path) == []


def test_partial_names_are_unique_and_beside_the_output(tmp_path):
    target = str(tmp_path / "out.tif")
    a, b = partial_path(target), partial_path(target)
    assert a != b
    assert os.path.dirname(a) == os.path.dirname(b) == str(tmp_path)
    assert os.path.basename(a).startswith("out.tif.oremap-partial-") and a.endswith(".tif")


def test_stale_partials_are_removed_and_logged(tmp_path):
    """The fixed name of older versions and a partial of a process that is gone are stale; a partial of a live
    process (this one) and files of other outputs are kept."""
    target = str(tmp_path / "grid.tif")
    old = tmp_path / "grid.tif.oremap-partial.tif"
    old.write_bytes(b"II*\0")
    dead = partial_path(target).replace(f"-{os.getpid()}-", "-999999999-")
    open(dead, "wb").close()
    live = partial_path(target)
    open(live, "wb").close()
    other = tmp_path / "grid2.tif.oremap-partial.tif"
    other.write_bytes(b"x")
    rng = np.random.default_rng(0)
    src_path = write_cube(str(tmp_path / "src.tif"), rng.uniform(0.05, 0.6, (2, 8, 8)))
    log = core_warnings()
    with RasterSource(src_path) as src:
        run_pixelwise(src, [OutputSpec(target, ["sum"])], lambda p: p.sum(axis=1), feedback=log)
    assert _partials(tmp_path) == sorted([os.path.basename(live), other.name])
    removed = [m for m in log.infos if "interrupted run" in m]
    assert sorted(m.split(": ", 1)[1] for m in removed) == sorted([str(old), dead])
    assert remove_stale_partials(target) == []


@pytest.mark.slow
def test_concurrent_qgis_process_runs(qgis_process, run_alg, tmp_path):
    """Four `qgis_process` runs at once with the bundled spectral CNN: two different cubes to one path, and one cube
    to two paths. The runs to their own paths exit 0 without a traceback and equal the in-process result. Of the two
    on one path, one that starts writing while the other writes is refused with the reason (a failure of either
    would otherwise roll back the other's file); the shared path holds one whole, correct map; no partial file or
    mark is left."""
    import subprocess

    exe, env = qgis_process.exe, qgis_process.env
    same = str(tmp_path / "same.tif")
    jobs = [(AVIRIS_NG, same), (AVIRIS_NG_2, same), (AVIRIS_NG, str(tmp_path / "a.tif")),
            (AVIRIS_NG, str(tmp_path / "b.tif"))]
    procs = [subprocess.Popen([exe, "run", "oremap:classify_spectral_cnn", "--", f"INPUT={cube}", "MODEL=0",
                               f"OUTPUT_CLASSES={out}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cube, out in jobs]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    refused = [i for i in (0, 1) if procs[i].returncode != 0]
    assert len(refused) <= 1, outputs[0][-3000:]
    for i in refused:
        assert "Mineral classes (OUTPUT_CLASSES): The output 'same.tif' is being written by another OreMap run (process " \
            in outputs[i], outputs[i][-3000:]
    for i, (proc, text) in enumerate(zip(procs, outputs)):
        if i in refused:
            continue
        assert proc.returncode == 0, text[-3000:]
        assert "Traceback" not in text and "Error" not in text.replace("OreMap", ""), text[-3000:]
    expected = {}
    for cube in (AVIRIS_NG, AVIRIS_NG_2):
        result = run_alg("classify_spectral_cnn", {"INPUT": cube, "MODEL": 0,
                                                   "OUTPUT_CLASSES": str(tmp_path / f"ref_{len(expected)}.tif")})
        with rasterio.open(result["OUTPUT_CLASSES"]) as ds:
            expected[cube] = ds.read(1)
    assert not np.array_equal(expected[AVIRIS_NG], expected[AVIRIS_NG_2])  # the shared path tells them apart
    with rasterio.open(same) as ds:
        got = ds.read(1)
    assert np.array_equal(got, expected[AVIRIS_NG]) or np.array_equal(got, expected[AVIRIS_NG_2])
    for name in ("a.tif", "b.tif"):
        with rasterio.open(tmp_path / name) as ds:
            assert np.array_equal(ds.read(1), expected[AVIRIS_NG])
    assert _partials(tmp_path) == [] and not [n for n in os.listdir(tmp_path) if ".oremap-writing-" in n]


@pytest.mark.slow
def test_memory_budget_from_the_environment_under_qgis_process(qgis_process, tmp_path):
    """OREMAP_MEMORY_MB wins over a Processing setting nobody set (issue 24): the run logs and uses it."""
    import subprocess

    env = dict(qgis_process.env, OREMAP_MEMORY_MB="77")
    proc = subprocess.run([qgis_process.exe, "run", "oremap:unmix_fcls", "--", f"INPUT={AVIRIS_NG}",
                           "LIBRARY=" + os.path.join(os.path.dirname(AVIRIS_NG), "usgs_minerals.sli"),
                           "SPECTRA=Kaolinite CM9;Goethite WS222", f"OUTPUT={tmp_path / 'a.tif'}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "memory budget 77 MB" in proc.stdout + proc.stderr


def test_memory_setting_saved_in_qgis_wins_over_the_environment(processing_provider, monkeypatch):
    from qgis.core import QgsSettings

    from oremap.processing_provider import settings

    key = settings.PREFIX + settings.MEMORY_SETTING
    stored = QgsSettings().value(key, None)
    monkeypatch.setenv(settings.MEMORY_SETTING, "77")
    try:
        QgsSettings().remove(key)
        assert settings.memory_mb() == 77.0  # not saved: the environment
        settings.set_value(settings.MEMORY_SETTING, 300)
        assert settings.memory_mb() == 300.0  # saved by the user: the setting
    finally:
        settings.set_value(settings.MEMORY_SETTING, stored if stored is not None else settings.DEFAULT_MEMORY_MB)
        if stored is None:
            QgsSettings().remove(key)


def test_gdal_block_cache_capped_during_a_run_and_restored():
    from osgeo import gdal

    from oremap.core.engine.raster import gdal_cache_limit

    before = gdal.GetCacheMax()
    with gdal_cache_limit(256):
        assert gdal.GetCacheMax() == 32 * 2 ** 20  # an eighth of the budget
    with gdal_cache_limit(64):
        assert gdal.GetCacheMax() == 16 * 2 ** 20  # never below 16 MB
    assert gdal.GetCacheMax() == before
    # two runs at once (QGIS's background tasks), the first ending first: each restoring what it found left the
    # second with the process default and the process with the first's limit for the rest of the session
    first, second = gdal_cache_limit(512), gdal_cache_limit(256)
    first.__enter__()
    second.__enter__()
    assert gdal.GetCacheMax() == (64 + 32) * 2 ** 20
    first.__exit__(None, None, None)
    assert gdal.GetCacheMax() == 32 * 2 ** 20
    second.__exit__(None, None, None)
    assert gdal.GetCacheMax() == before


def test_csv_library_text_column_is_left_out_with_a_warning(tmp_path):
    from oremap.core.hyperspectral.spectral_library import read_library

    path = tmp_path / "lib.csv"
    path.write_text("wavelength_nm,kaolinite,comment\n" + "".join(f"{w},{0.3 + w * 1e-5},ok\n"
                                                                  for w in range(400, 2500, 10)))
    log = core_warnings()
    log.warnings = []
    log.warning = log.warnings.append
    lib = read_library(str(path), feedback=log)
    assert lib.names == ["kaolinite"]
    assert lib.spectra.shape == (1, 210) and lib.spectra[0, 0] == pytest.approx(0.304)
    assert any("'comment'" in w and "left out" in w for w in log.warnings)


def test_algorithm_removes_a_stale_partial_file_and_logs_it(processing_provider, tmp_path):
    """Issue 17: `kill -9` left NAME.oremap-partial.tif beside the output; the next run to that path removes it."""
    import processing
    from qgis.core import QgsProcessingFeedback

    class Infos(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.infos = []

        def pushInfo(self, info):  # noqa: N802
            self.infos.append(info)

    target = tmp_path / "abund.tif"
    stale = tmp_path / "abund.tif.oremap-partial.tif"
    stale.write_bytes(b"II*\0 half a GeoTIFF")
    feedback = Infos()
    processing.run("oremap:unmix_fcls", {"INPUT": AVIRIS_NG,
                                         "LIBRARY": os.path.join(os.path.dirname(AVIRIS_NG), "usgs_minerals.sli"),
                                         "SPECTRA": "Kaolinite CM9;Goethite WS222", "OUTPUT": str(target)},
                   feedback=feedback)
    assert not stale.exists() and target.exists()
    assert any("Removed a partial file left by an interrupted run" in m and str(stale) in m for m in feedback.infos)
    assert _partials(tmp_path) == []


@pytest.mark.slow
def test_qgis_process_prints_a_plugin_error_as_often_as_a_qgis_error(qgis_process, tmp_path):
    """Issue 24: each plugin error appeared three times under qgis_process. All three are QGIS's own (3.22):
    ``QgsProcessingAlgorithm::run`` logs the exception to the message log (critical) and calls
    ``feedback->reportError``; qgis_process's ``ConsoleFeedback::reportError`` prints ``ERROR:\\t...`` and calls
    ``QgsProcessingFeedback::reportError``, which logs it (critical) again; qgis_process prints every critical
    log message to stderr. A native QGIS algorithm failing in its run is printed the same number of times; OreMap
    adds no copy of its own (no reportError before raising, no logging handler)."""
    csv_path = tmp_path / "pts.csv"
    csv_path.write_text("x,y,v\n1,2,3\n4,5,6\n")
    native = qgis_process("run", "native:extractbyexpression", "--",
                          f"INPUT=delimitedtext://file://{csv_path}?xField=x&yField=y", "EXPRESSION=1 +* (",
                          f"OUTPUT={tmp_path / 'n.gpkg'}", check=False)
    assert native.returncode != 0
    printed = native.stdout + native.stderr
    qgis_message = next((m for m in ("syntax error, unexpected end of file",  # QGIS 3.22
                                     "Incomplete expression.")  # QGIS 3.44
                         if m in printed), "no known parser message")
    qgis_count = printed.count(qgis_message)
    assert qgis_count >= 1

    ours = qgis_process("run", "oremap:sam_classify", "--", f"INPUT={AVIRIS_NG}", f"LIBRARY={USGS_LIBRARY}",
                        "SPECTRA=Unobtainium", f"OUTPUT_CLASSES={tmp_path / 'x.tif'}", check=False)
    assert ours.returncode != 0
    message = "Cannot select spectra: 'Unobtainium' is not in the library."
    lines = [line for line in (ours.stdout + ours.stderr).splitlines() if message in line]
    assert len(lines) == qgis_count, lines
    # the parameter is named in each copy, exactly one is qgis_process's ERROR line, none is a traceback
    assert all("(SPECTRA)" in line for line in lines)
    assert sum(line.startswith("ERROR:\t") for line in lines) == 1
    assert "Traceback" not in ours.stdout + ours.stderr
    assert message not in ours.stdout  # never echoed as progress information


def test_raster_without_crs_runs_with_a_warning_naming_the_input(processing_provider, tmp_path):
    """Issue 18: a raster without a CRS stays allowed for pixel-by-pixel work (drill-core scans), and the log says
    so plainly, naming the input and how to assign a CRS; the output has no CRS either."""
    import processing

    from conftest import DATA, warning_recorder

    jasper = os.path.join(DATA, "jasper_ridge_40x40.tif")
    with rasterio.open(jasper) as ds:
        assert ds.crs is None
    feedback = warning_recorder()
    out = tmp_path / "classes.tif"
    processing.run("oremap:sam_classify", {"INPUT": jasper, "LIBRARY": USGS_LIBRARY,
                                           "SPECTRA": "Kaolinite CM9;Goethite WS222", "OUTPUT_CLASSES": str(out)},
                   feedback=feedback)
    notes = [w for w in feedback.warnings if "no coordinate reference system" in w]
    assert len(notes) == 1, feedback.warnings
    assert notes[0].startswith("Hyperspectral raster (INPUT): 'jasper_ridge_40x40' has no coordinate reference system")
    assert "Assign Projection" in notes[0]
    with rasterio.open(out) as ds:
        assert ds.crs is None and ds.read(1).size == 1600


def test_an_output_on_an_input_file_or_on_another_output_is_refused(processing_provider, tmp_path, monkeypatch):
    """A user who names the input cube as the class map (or a point layer's GeoPackage as the scored output) lost the
    input with only a 'replacing existing file' warning; two outputs on one file lost one of them. Both are refused
    before anything is read, naming the output parameter; the input stays byte for byte."""
    import shutil

    import processing
    from qgis.core import QgsProcessingException

    from conftest import DATA

    cube = tmp_path / "cube.tif"
    shutil.copy(os.path.join(DATA, "jasper_ridge_40x40.tif"), cube)
    before = cube.read_bytes()
    library = {"INPUT": str(cube), "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9;Goethite WS222"}
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:sam_classify", {**library, "OUTPUT_CLASSES": str(cube)})
    assert str(err.value).startswith("Class raster (OUTPUT_CLASSES): ")
    assert f"{os.path.realpath(cube)} is also the input Hyperspectral raster (INPUT)" in str(err.value)
    assert cube.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["cube.tif"]
    # the same file spelt another way (relative, through a link)
    os.symlink(cube, tmp_path / "link.tif")
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT_CLASSES\).*is also the input"):
        processing.run("oremap:sam_classify", {**library, "INPUT": str(tmp_path / "link.tif"),
                                               "OUTPUT_CLASSES": os.path.relpath(cube)})
    os.remove(tmp_path / "link.tif")
    # another name of the same file, as 'Scene.tif' is of 'scene.tif' on a Mac's or Windows' case-blind file system:
    # here a hard link (same device and inode), which no comparison of names catches
    os.link(cube, tmp_path / "Cube.tif")
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT_CLASSES\).*Cube.tif is also the input"):
        processing.run("oremap:sam_classify", {**library, "OUTPUT_CLASSES": str(tmp_path / "Cube.tif")})
    os.remove(tmp_path / "Cube.tif")
    assert cube.read_bytes() == before
    # where the file system gives no file ids (some network shares report inode 0), another existing file is no
    # input: it was taken for one, since every file there shares the missing id
    from oremap.core.engine import files

    other = tmp_path / "other.tif"
    shutil.copy(cube, other)
    monkeypatch.setattr(files, "file_identity", lambda path: None)
    processing.run("oremap:sam_classify", {**library, "OUTPUT_CLASSES": str(other)})
    monkeypatch.undo()
    with rasterio.open(other) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8"   # the class map replaced the copy of the cube
    # a text parameter that happens to be the name of a project layer is no input: a field named like an element
    # grid loaded in the project does not stop a run that writes that grid
    from qgis.core import QgsProject, QgsRasterLayer

    loaded = QgsRasterLayer(str(cube), "Kaolinite CM9;Goethite WS222")
    QgsProject.instance().addMapLayer(loaded)
    try:
        copy = tmp_path / "copy.tif"
        shutil.copy(cube, copy)
        processing.run("oremap:sam_classify", {**library, "INPUT": str(copy), "OUTPUT_CLASSES": str(cube)})
        with rasterio.open(cube) as ds:
            assert ds.count == 1  # written: the SPECTRA text named a layer, not an input file
    finally:
        QgsProject.instance().removeMapLayer(loaded.id())
    shutil.copy(os.path.join(DATA, "jasper_ridge_40x40.tif"), cube)
    for name in os.listdir(tmp_path):
        if name not in ("cube.tif",):
            os.remove(tmp_path / name)
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:sam_classify", {**library, "OUTPUT_CLASSES": str(tmp_path / "same.tif"),
                                               "OUTPUT_SCORE": str(tmp_path / "same.tif")})
    assert "is also the output OUTPUT_CLASSES: one would replace the other. Give each output its own file." in \
        str(err.value)
    assert not (tmp_path / "same.tif").exists()
    # a vector output on the GeoPackage of the input points (a sink rewrites the whole file)
    import geopandas as gpd
    from shapely.geometry import Point

    points = tmp_path / "survey.gpkg"
    rng = np.random.default_rng(0)
    gpd.GeoDataFrame({"Cu_ppm": rng.lognormal(3, 1, 40), "Zn_ppm": rng.lognormal(4, 1, 40)},
                     geometry=[Point(400000 + 100 * i, 6000000 + 50 * (i % 7)) for i in range(40)],
                     crs="EPSG:32750").to_file(points, layer="samples", driver="GPKG")
    before = points.read_bytes()
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT\): .*survey.gpkg is also the input .*\(POINTS\)"):
        processing.run("oremap:geochem_anomaly", {"POINTS": f"{points}|layername=samples", "OUTPUT": str(points)})
    assert points.read_bytes() == before


def test_vector_outputs_are_not_cut_by_a_shapefile_and_replacing_one_is_said(processing_provider, tmp_path):
    """A shapefile cut anomaly_score to anomaly_sc, so the .qml written beside it (styled on anomaly_class) and a
    later evaluation by field name found nothing: refused before the run. Replacing an existing GeoPackage (all
    its layers) is said, as for rasters."""
    import processing
    from qgis.core import QgsProcessingException

    from conftest import warning_recorder

    points = _three_element_survey(tmp_path / "survey.gpkg")
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:geochem_anomaly", {"POINTS": str(points), "OUTPUT": str(tmp_path / "scored.shp")})
    assert "(OUTPUT): A shapefile cuts field names to 10 characters, and this layer's anomaly_score, " \
           "anomaly_class, score_fusion are longer" in str(err.value)    # its own fields, not another output's
    assert "Save it as a GeoPackage (.gpkg)." in str(err.value)
    assert not any(n.startswith("scored") for n in os.listdir(tmp_path))
    existing = tmp_path / "scored.gpkg"
    existing.write_bytes(points.read_bytes())
    feedback = warning_recorder()
    processing.run("oremap:geochem_anomaly", {"POINTS": str(points), "OUTPUT": str(existing)}, feedback=feedback)
    assert any(w.endswith(f"replacing existing file {existing} (all its layers).") for w in feedback.warnings)


def test_the_provider_offers_no_shapefile_output(processing_provider):
    """Processing's default vector extension (a temporary output in the Graphical Modeler, the dialog's file
    types) is GeoPackage for OreMap, and shapefiles are not offered: they would cut the outputs' field names."""
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("oremap")
    assert provider.defaultVectorFileExtension(True) == "gpkg"
    extensions = provider.supportedOutputVectorLayerExtensions()
    assert sorted(extensions) == ["fgb", "geojson", "gpkg"]   # what every OreMap vector output accepts


def test_temporary_raster_outputs_are_geotiff_whatever_processings_default_raster_format(processing_provider):
    """With Processing's default output raster extension set to another format ('img', Processing > Options >
    General), QGIS named OreMap's temporary raster outputs .img and every raster algorithm refused them. The
    provider offers GeoTIFF only, so its temporary outputs are .tif and 'Save to File...' offers what it writes."""
    import processing
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsApplication

    from conftest import USGS_LIBRARY

    provider = QgsApplication.processingRegistry().providerById("oremap")
    assert provider.supportedOutputRasterLayerExtensions() == ["tif", "tiff"]
    setting = ProcessingConfig.DEFAULT_OUTPUT_RASTER_LAYER_EXT
    before = ProcessingConfig.getSetting(setting)
    ProcessingConfig.setSettingValue(setting, ProcessingConfig.settings[setting].options.index("img"))
    try:
        assert provider.defaultRasterFileExtension() == "tif"
        result = processing.run("oremap:sam_classify", {
            "INPUT": os.path.join(os.path.dirname(__file__), "data", "jasper_ridge_40x40.tif"),
            "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9; Goethite WS222", "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"})
    finally:
        ProcessingConfig.setSettingValue(setting, before)
    assert result["OUTPUT_CLASSES"].endswith(".tif") and os.path.exists(result["OUTPUT_CLASSES"])


def test_a_csv_given_as_it_is_is_told_to_be_loaded_as_points(processing_provider, tmp_path):
    """A CSV path given straight to a point input loads as a table without geometry: the advice was to assign a
    CRS, which cannot help; now it says how to load it as points."""
    import processing
    from qgis.core import QgsProcessingException

    table = tmp_path / "sites.csv"
    table.write_text("X,Y,name\n117.9,-33.6,a\n117.95,-33.65,b\n")
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:geochem_anomaly", {"POINTS": str(table), "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert "(POINTS): The layer is a table without geometry" in str(err.value)
    assert "Add Delimited Text Layer" in str(err.value) and "delimitedtext://" in str(err.value)


def _other_host():
    from oremap.core.engine.files import host_tag

    return "0" * 6 if host_tag() != "0" * 6 else "1" * 6


def test_a_second_run_on_an_output_being_written_is_refused(tmp_path):
    """Two runs writing one output at once: when one failed, its rollback removed or replaced the other's completed
    file. The second run now stops before it writes, naming the parameter and who writes; marks of runs that are gone
    (a dead process, another machine's untouched for a day) are removed; none is left after a run."""
    import subprocess

    from oremap.core.engine.errors import OreMapError
    from oremap.core.engine.files import OutputGuard, host_tag, write_atomic

    out = tmp_path / "map.tif"
    first = OutputGuard()
    first.add(str(out), "OUTPUT_CLASSES")
    (mark,) = [n for n in os.listdir(tmp_path) if ".oremap-writing-" in n]
    assert mark.startswith(f".map.tif.oremap-writing-{host_tag()}-{os.getpid()}-")
    second = OutputGuard()
    with pytest.raises(OreMapError) as err:   # another QGIS task of this program
        second.add(str(out), "OUTPUT_CLASSES")
    assert err.value.parameter == "OUTPUT_CLASSES"
    assert err.value.message == "The output 'map.tif' is being written by another OreMap run (in this program)."
    assert err.value.fix == "Wait for it to finish, or choose another output."
    assert os.listdir(tmp_path) == [mark]   # the refused run leaves no mark of its own
    write_atomic(str(out), b"first")
    first.commit()
    assert os.listdir(tmp_path) == ["map.tif"]
    # the first run done: the second may write, and a failure rolls back only its own change
    second.add(str(out), "OUTPUT_CLASSES")
    write_atomic(str(out), b"second")
    second.rollback()
    assert out.read_bytes() == b"first" and os.listdir(tmp_path) == ["map.tif"]

    live = subprocess.Popen(["sleep", "60"])
    try:
        mark = tmp_path / f".map.tif.oremap-writing-{host_tag()}-{live.pid}-0a1b2c3d"
        mark.touch()
        with pytest.raises(OreMapError, match=rf"another OreMap run \(process {live.pid} of this machine\)") as err:
            OutputGuard().add(str(out))
        assert err.value.fix.endswith(f"If no OreMap run is going, delete its mark '{mark}'.")
        # a mark last written before its process id's live process started: a crashed run's, the id reused since
        os.utime(mark, (time.time() - 3600, time.time() - 3600))
        guard = OutputGuard()
        guard.add(str(out))
        guard.rollback()
        assert not mark.exists()
    finally:
        live.kill()
        live.wait()
    # its process gone: the mark is stale and removed; another machine's recent mark stops the run
    other = tmp_path / f".map.tif.oremap-writing-{_other_host()}-1-0a1b2c3d"
    other.touch()
    with pytest.raises(OreMapError, match="on another machine sharing the folder") as err:
        OutputGuard().add(str(out))
    assert "delete the mark (it is taken as stale after 24 h)" in err.value.fix
    assert not (tmp_path / f".map.tif.oremap-writing-{host_tag()}-{live.pid}-0a1b2c3d").exists()
    os.utime(other, (0, 0))   # untouched for a day: that run is taken as gone
    guard = OutputGuard()
    guard.add(str(out))
    guard.commit()
    assert os.listdir(tmp_path) == ["map.tif"] and out.read_bytes() == b"first"


def test_a_run_on_an_output_another_run_writes_names_the_parameter(processing_provider, tmp_path):
    """Through Processing: the error names the output parameter the user set, and the file already there is kept."""
    import subprocess

    import processing
    from qgis.core import QgsProcessingException

    from conftest import DATA
    from oremap.core.engine.files import host_tag

    out = tmp_path / "classes.tif"
    out.write_bytes(b"a finished map")
    live = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / f".classes.tif.oremap-writing-{host_tag()}-{live.pid}-0a1b2c3d").touch()
        with pytest.raises(QgsProcessingException) as err:
            processing.run("oremap:sam_classify", {"INPUT": os.path.join(DATA, "jasper_ridge_40x40.tif"),
                                                   "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9;Goethite WS222",
                                                   "OUTPUT_CLASSES": str(out)})
    finally:
        live.kill()
        live.wait()
    assert str(err.value) == (f"Class raster (OUTPUT_CLASSES): The output 'classes.tif' is being written by another "
                              f"OreMap run (process {live.pid} of this machine). Wait for it to finish, or choose "
                              "another output. If no OreMap run is going, delete its mark "
                              f"'{tmp_path / f'.classes.tif.oremap-writing-{host_tag()}-{live.pid}-0a1b2c3d'}'.")
    assert out.read_bytes() == b"a finished map"


def test_a_rename_waits_out_a_file_held_for_a_moment_on_windows(tmp_path, monkeypatch):
    """A virus scanner or OneDrive opening a file just written made the final rename fail at once with 'Access is
    denied' on Windows; it is now tried again for about a second, and gives up after that."""
    from oremap.core.engine import files

    source, target = tmp_path / "new.tif", tmp_path / "map.tif"
    source.write_bytes(b"new")
    real, calls = os.replace, []

    def busy_twice(a, b):
        calls.append(a)
        if len(calls) <= 2:
            raise PermissionError(13, "Access is denied", str(b))
        return real(a, b)

    monkeypatch.setattr(files.time, "sleep", lambda s: None)
    monkeypatch.setattr(files.os, "replace", busy_twice)
    monkeypatch.setattr(files, "WINDOWS", True)
    files.replace(str(source), str(target))
    monkeypatch.setattr(files, "WINDOWS", False)
    assert len(calls) == 3 and target.read_bytes() == b"new"
    calls.clear()
    with pytest.raises(PermissionError):   # elsewhere: one try, as before
        files.replace(str(target), str(source))
    assert len(calls) == 1


def test_reused_process_ids_and_the_files_of_live_runs(tmp_path):
    """A mark left by a crashed run whose process id is now this process's own was refused as 'another OreMap run
    (in this program)' for ever; and the process-start rule must not reach a live run's kept copy, which keeps the old
    output's time (review M4, M8)."""
    import subprocess

    from oremap.core.engine.files import _KEPT, OutputGuard, host_tag, remove_stale_kept

    out = tmp_path / "map.tif"
    out.write_bytes(b"old map")
    mark = tmp_path / f".map.tif.oremap-writing-{host_tag()}-{os.getpid()}-0a1b2c3d"
    mark.touch()
    os.utime(mark, (time.time() - 10 * 86400, time.time() - 10 * 86400))  # before this process started
    guard = OutputGuard()
    guard.add(str(out))
    guard.rollback()
    assert not mark.exists() and out.read_bytes() == b"old map"
    live = subprocess.Popen(["sleep", "60"])
    try:
        kept = tmp_path / f".map.tif{_KEPT}{host_tag()}-{live.pid}-0a1b2c3d"
        os.link(out, kept)   # the live run's copy of the old output, with the old output's time
        os.utime(kept, (time.time() - 3600, time.time() - 3600))
        remove_stale_kept(str(out))
        assert kept.exists()
    finally:
        live.kill()
        live.wait()


def test_names_are_compared_as_a_case_blind_file_system_compares_them(tmp_path, monkeypatch):
    """On macOS (APFS, HFS+) and Windows 'Out.tif' and 'out.tif' are one file: a second run's write mark, two outputs
    and two batch scenes that differ only in case are seen as one there, and kept apart elsewhere."""
    from oremap.core.engine import files
    from oremap.core.engine.errors import OreMapError
    from oremap.core.scaleout import batch

    assert files.file_key("/data/Out.tif") != files.file_key("/data/out.tif")   # Linux: case-sensitive
    monkeypatch.setattr(files, "CASE_BLIND", True)
    assert files.file_key("/data/Out.tif") == files.file_key("/data/out.tif")
    mark = files.claim(tmp_path / "out.tif", "OUTPUT")
    other = str(mark).replace(f"-{os.getpid()}-", "-1-")
    os.rename(mark, other)   # as another live run's mark on 'out.tif' (pid 1 is alive)
    with pytest.raises(OreMapError, match="'OUT.tif' is being written by another OreMap run"):
        files.claim(tmp_path / "OUT.tif", "OUTPUT")              # the same file there, spelt in capitals
    monkeypatch.setattr(files, "CASE_BLIND", False)
    files.release(files.claim(tmp_path / "OUT.tif", "OUTPUT"))   # another file on a case-sensitive system
    monkeypatch.setattr(files, "CASE_BLIND", True)
    assert files.file_key("Straße.tif") != files.file_key("STRASSE.tif")   # one character for one, as NTFS/APFS
    os.remove(other)
    import shutil

    from conftest import DATA

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "out").mkdir()
    scenes = [str(tmp_path / "a" / "Scene1.tif"), str(tmp_path / "b" / "scene1.tif")]
    for scene in scenes:
        shutil.copy(os.path.join(DATA, "jasper_ridge_40x40.tif"), scene)
    with pytest.raises(OreMapError, match=r"Two inputs would write the same outputs 'scene1\.\*'"):
        batch.plan(batch.BatchJob("unmix_fcls", USGS_LIBRARY, scenes, str(tmp_path / "out")))
    monkeypatch.setattr(files, "CASE_BLIND", False)
    assert len(batch.plan(batch.BatchJob("unmix_fcls", USGS_LIBRARY, scenes, str(tmp_path / "out")))) == 2


def test_a_mac_is_named_by_its_local_host_name_which_does_not_follow_the_network(monkeypatch):
    """macOS's host name follows the network (a laptop's 'dhcp-10-1-2-3' at work), so a crashed run's mark passed
    for another machine's and blocked its output for a day: the Mac's local host name (scutil) names it instead."""
    import subprocess

    from oremap.core.engine import files

    calls = []

    def scutil(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="Annas-MacBook-Pro\n", stderr="")

    monkeypatch.setattr(files.sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", scutil)
    monkeypatch.setattr("socket.gethostname", lambda: "dhcp-10-1-2-3.example.org")
    assert files.machine_name() == "Annas-MacBook-Pro" and calls == [["scutil", "--get", "LocalHostName"]]
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("scutil")))
    assert files.machine_name() == "dhcp-10-1-2-3.example.org"
    monkeypatch.setattr(files.sys, "platform", "linux")
    assert files.machine_name() == "dhcp-10-1-2-3.example.org"


def test_a_process_start_time_on_a_mac_comes_from_ps(monkeypatch):
    """macOS has no /proc: a reused process id kept a dead run's mark alive. ps gives the time since the start there
    (its elapsed time, not its local start time, which is ambiguous in the hour a clock goes back)."""
    import subprocess
    import time

    from oremap.core.engine import files

    seen, answers = [], iter(["1-02:03:04\n", "05:07\n", ""])

    def ps(command, **kwargs):
        seen.append((command, kwargs["env"]["LC_ALL"]))
        return subprocess.CompletedProcess(command, 0, stdout=next(answers), stderr="")

    monkeypatch.setattr(files.sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", ps)
    assert abs(files._process_start(4242) - (time.time() - 93784)) < 2.0      # 1 day, 2 h, 3 min, 4 s ago
    assert abs(files._process_start(4242) - (time.time() - 307)) < 2.0
    assert files._process_start(4242) is None                                # no such process: ps prints nothing
    assert seen[0] == (["ps", "-o", "etime=", "-p", "4242"], "C")


def test_a_package_qgis_python_lacks_is_named_with_where_to_get_it(processing_provider, tmp_path, monkeypatch):
    """qgis.org's QGIS for Ubuntu and the Flatpak do not bring shapely (the Debian machine has it through geopandas):
    a run that reads vector geometries (here SAM's endmember points) stopped with a ModuleNotFoundError traceback. It
    now names the package and the system package to install, never pip (its wheels bring their own GEOS)."""
    import sys

    import geopandas as gpd
    import processing
    from qgis.core import QgsProcessingException
    from shapely.geometry import Point

    with rasterio.open(AVIRIS_NG) as ds:   # two endmember points inside the AVIRIS-NG tile
        points = [Point(*(ds.transform * (c + 0.5, r + 0.5))) for r, c in ((2, 2), (7, 7))]
        crs = ds.crs.to_wkt()
    layer = tmp_path / "endmembers.gpkg"
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=points, crs=crs).to_file(layer, driver="GPKG")
    for name in [n for n in sys.modules if n == "shapely" or n.startswith("shapely.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "shapely", None)   # as if not installed
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:sam_classify", {"INPUT": AVIRIS_NG, "POINTS": str(layer), "NAME_FIELD": "name",
                                               "OUTPUT_CLASSES": str(tmp_path / "classes.tif")})
    assert str(err.value) == (
        "This run needs the Python package 'shapely', which QGIS's Python lacks. Debian/Ubuntu: sudo apt install "
        "python3-shapely; Fedora: sudo dnf install python3-shapely; Windows: the OSGeo4W installer (Advanced Install), "
        "package python3-shapely; then restart QGIS. Do not pip-install it into QGIS: its wheels bring their own "
        "GDAL/PROJ/GEOS or numpy, which break QGIS.")
    # a package that is there but broken is not called missing (nor sent to pip or apt)
    from oremap.core.engine.dependencies import missing_module_message

    message, fix = missing_module_message(ModuleNotFoundError("No module named 'numpy.core._x'", name="numpy.core._x"))
    assert message.startswith("The Python package 'numpy' is installed but cannot be loaded")
    assert fix.endswith("reinstall the system package python3-numpy (OSGeo4W: python3-numpy), never with pip.")
    assert not (tmp_path / "classes.tif").exists()


def test_every_vector_output_names_its_long_fields_for_the_shapefile_refusal(processing_provider):
    """The refusal of a .shp output named 'anomaly_score, probability, compactness' for every output, fields of
    other algorithms' layers; each vector output now names its own (and every one it names is over 10 characters)."""
    from qgis.core import QgsApplication, QgsProcessingParameterFeatureSink

    sinks = 0
    for alg in QgsApplication.processingRegistry().providerById("oremap").algorithms():
        for definition in alg.parameterDefinitions():
            if isinstance(definition, QgsProcessingParameterFeatureSink):
                sinks += 1
                names = alg.LONG_FIELDS.get(definition.name())
                assert names and all(len(n) > 10 for n in names), (alg.id(), definition.name())
    assert sinks == 5


def test_an_empty_batch_cell_of_the_scored_points_skips_them(processing_provider, tmp_path):
    """QGIS's Batch Processing panel passes an empty cell of an optional vector output as an output definition of '':
    geochem_anomaly and vae_anomaly refused it ('could not create destination layer') after scoring."""
    import processing
    from qgis.core import QgsProcessingOutputLayerDefinition, QgsProject

    points = _three_element_survey(tmp_path / "survey.gpkg")
    blank = QgsProcessingOutputLayerDefinition("", QgsProject.instance())
    for name, extra in (("geochem_anomaly", {}), ("vae_anomaly", {"EPOCHS": 2})):
        written = processing.run(f"oremap:{name}", {"POINTS": str(points), "OUTPUT": str(tmp_path / f"{name}.gpkg"),
                                                    **extra})
        skipped = processing.run(f"oremap:{name}", {"POINTS": str(points), "OUTPUT": blank, **extra})
        assert "OUTPUT" not in skipped and skipped["N_SCORED"] == written["N_SCORED"] == 40, name


def test_quality_control_rows_and_extra_header_rows_of_a_lab_export_are_said(processing_provider, tmp_path):
    """An ALS export as it comes: blanks and certified standards among the samples ('QA/QC', 'Blank Sample',
    'STD01'), scored and gridded as field samples without a word (a standard is high-grade: a false anomaly); its
    element-symbol and unit header rows read as features. Both are now warned about, naming what to do."""
    import geopandas as gpd
    import processing
    from shapely.geometry import Point

    from conftest import warning_recorder

    rng = np.random.default_rng(0)
    n = 40
    kind = ["Ch"] * n
    note = [""] * n
    kind[5], note[5] = "QA/QC", "Blank Sample"
    kind[9], note[9] = "QA/QC", "STD01 Standard"
    table = {"Sample_Type": kind, "Remark": note, "Cu_ppm": rng.lognormal(3, 1, n), "Zn_ppm": rng.lognormal(4, 1, n),
             "As_ppm": rng.lognormal(1, 1, n)}
    points = [Point(400000 + 100 * i, 6000000 + 50 * (i % 7)) for i in range(n)]
    gpd.GeoDataFrame(table, geometry=points, crs="EPSG:32750").to_file(tmp_path / "qc.gpkg", driver="GPKG")
    said = warning_recorder()
    result = processing.run("oremap:geochem_anomaly", {"POINTS": str(tmp_path / "qc.gpkg"),
                                                       "OUTPUT": "TEMPORARY_OUTPUT"}, feedback=said)
    qc = [w for w in said.warnings if "look like quality-control rows" in w]
    assert len(qc) == 1 and qc[0].startswith("2 features look like quality-control rows ('Sample_Type': 'QA/QC'; "
                                             "'Remark': 'Blank Sample', 'STD01 Standard')")
    # and in the report, which is what a user keeps (0.2.21)
    assert "2 features look like quality-control rows" in open(result["OUTPUT_HTML"], encoding="utf-8").read()
    assert not any("header rows" in w for w in said.warnings)
    # with the fields chosen too, in every algorithm that reads sample points
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=[Point(400000, 6000000), Point(400100, 6000050)],
                     crs="EPSG:32750").to_file(tmp_path / "sites.gpkg", driver="GPKG")
    for name, extra in (("element_selection", {"DEPOSITS": str(tmp_path / "sites.gpkg"), "POSITIVE_RADIUS": 300,
                                               "NEGATIVE_MIN_DISTANCE": 1000, "ALLOW_NONE": True}),
                        ("vae_anomaly", {"EPOCHS": 2, "OUTPUT": "TEMPORARY_OUTPUT"})):
        said = warning_recorder()
        processing.run(f"oremap:{name}", {"POINTS": str(tmp_path / "qc.gpkg"), "FIELDS": ["Cu_ppm", "Zn_ppm", "As_ppm"],
                                          **extra}, feedback=said)
        assert sum("look like quality-control rows" in w for w in said.warnings) == 1, name
    # the same survey without its QC rows: no warning (the real GSWA compilations give none either)
    clean = {k: [v for i, v in enumerate(vals) if i not in (5, 9)] for k, vals in table.items()}
    gpd.GeoDataFrame(clean, geometry=[p for i, p in enumerate(points) if i not in (5, 9)],
                     crs="EPSG:32750").to_file(tmp_path / "clean.gpkg", driver="GPKG")
    said = warning_recorder()
    processing.run("oremap:idw_interpolate", {"INPUT": str(tmp_path / "clean.gpkg"), "OUTPUT": str(tmp_path / "g.tif")},
                   feedback=said)
    assert not any("quality-control" in w or "header rows" in w for w in said.warnings)
    # a word of the QC list marking most rows is the survey's own (a Quebec survey, a project 'Gold Standard'), and
    # one-letter symbols, NA/ND and unit columns repeated on every row are no header
    ordinary = {"Province": ["QC"] * n, "Project": ["Gold Standard"] * n, "Flag1": ["Y"] * n, "Flag2": ["N"] * n,
                "Au_unit": ["ppb"] * n, "Cu_unit": ["ppm"] * n, "As_unit": ["ppm"] * n, "Lab": ["ALS"] * n,
                "Cu_ppm": rng.lognormal(3, 1, n), "Zn_ppm": rng.lognormal(4, 1, n), "As_ppm": rng.lognormal(1, 1, n)}
    gpd.GeoDataFrame(ordinary, geometry=points, crs="EPSG:32750").to_file(tmp_path / "ordinary.gpkg", driver="GPKG")
    said = warning_recorder()
    processing.run("oremap:geochem_anomaly", {"POINTS": str(tmp_path / "ordinary.gpkg"), "OUTPUT": "TEMPORARY_OUTPUT"},
                   feedback=said)
    assert not any("quality-control" in w or "header rows" in w for w in said.warnings)
    # three header rows, as ALS writes them: the element symbols and units become the first features
    header = {"Au-AA23": ["Au", "ppm"] + [f"{v:.3f}" for v in rng.lognormal(-3, 1, n)],
              **{f"ME-ICP41.{k}": [el, "ppm"] + [f"{v:.1f}" for v in rng.lognormal(2, 1, n)]
                 for k, el in enumerate(["Ag", "As", "Cu", "Pb", "Zn"])}}
    gpd.GeoDataFrame(header, geometry=[Point(400000 + 100 * i, 6000000) for i in range(n + 2)],
                     crs="EPSG:32750").to_file(tmp_path / "als.gpkg", driver="GPKG")
    said = warning_recorder()
    try:
        processing.run("oremap:idw_interpolate", {"INPUT": str(tmp_path / "als.gpkg"),
                                                  "OUTPUT": str(tmp_path / "als.tif")}, feedback=said)
    except Exception:
        pass   # what follows the warning (a refusal or a grid of the method-code columns) is not the point here
    assert any(w.startswith("The layer's first features hold element symbols or units, not values: a file with "
                            "several header rows") for w in said.warnings)


def _three_element_survey(path):
    """A GeoPackage of 40 samples (Cu, Zn, As in ppm, log-normal, seed 0) in EPSG:32750, layer 'samples'."""
    import geopandas as gpd
    from shapely.geometry import Point

    rng = np.random.default_rng(0)
    gpd.GeoDataFrame({"Cu_ppm": rng.lognormal(3, 1, 40), "Zn_ppm": rng.lognormal(4, 1, 40),
                      "As_ppm": rng.lognormal(1, 1, 40)},
                     geometry=[Point(400000 + 100 * i, 6000000 + 50 * (i % 7)) for i in range(40)],
                     crs="EPSG:32750").to_file(path, layer="samples", driver="GPKG")
    return path


def test_vae_defaults_with_one_element_advise_what_helps(processing_provider, tmp_path):
    """A lab export read with its header row as the names leaves one element: the refusal told the user to lower the
    coverage, also at COVERAGE 0, where that cannot help. It now says so only when elements were left out for it."""
    import geopandas as gpd
    import processing
    from qgis.core import QgsProcessingException
    from shapely.geometry import Point

    rng = np.random.default_rng(0)
    n = 30
    table = {"Cu_ppm": rng.lognormal(3, 1, n), "ME-ICP41": rng.lognormal(2, 1, n), "ME-ICP41.1": rng.lognormal(2, 1, n),
             "Zn_ppm": np.where(np.arange(n) < 5, rng.lognormal(4, 1, n), -9999.0)}
    points = [Point(400000 + 100 * i, 6000000) for i in range(n)]
    gpd.GeoDataFrame(table, geometry=points, crs="EPSG:32750").to_file(tmp_path / "sparse.gpkg", driver="GPKG")
    del table["Zn_ppm"]
    gpd.GeoDataFrame(table, geometry=points, crs="EPSG:32750").to_file(tmp_path / "one.gpkg", driver="GPKG")
    for name, coverage, fix in (("sparse", 80, "Lower the coverage, or choose the element fields."),
                                ("one", 0, "Choose the element fields (the log says why each field was left out).")):
        with pytest.raises(QgsProcessingException) as err:
            processing.run("oremap:vae_anomaly", {"POINTS": str(tmp_path / f"{name}.gpkg"), "COVERAGE": coverage,
                                                  "EPOCHS": 2, "OUTPUT": "TEMPORARY_OUTPUT"})
        assert "(FIELDS): Only 1 element is in the survey's default element set" in str(err.value)
        assert str(err.value).endswith(fix), coverage


def test_the_survey_row_check_honours_cancel(processing_provider, tmp_path):
    """check_survey_rows scans every text field of every feature (a second per 100,000 points with a few text
    fields): a cancel stops it."""
    import geopandas as gpd
    from qgis.core import QgsVectorLayer
    from shapely.geometry import Point

    from oremap.algorithms.survey_input import check_survey_rows

    gpd.GeoDataFrame({"Sample_Type": ["Ch"] * 600, "Cu_ppm": np.arange(600.0)},
                     geometry=[Point(400000 + i, 6000000) for i in range(600)],
                     crs="EPSG:32750").to_file(tmp_path / "many.gpkg", driver="GPKG")
    layer = QgsVectorLayer(str(tmp_path / "many.gpkg"), "many", "ogr")

    class Cancelled(Exception):
        pass

    class Feedback:
        checks = 0

        def check(self):
            self.checks += 1
            if self.checks == 2:
                raise Cancelled()

        def warning(self, message):
            raise AssertionError(message)

    said = Feedback()
    with pytest.raises(Cancelled):
        check_survey_rows(layer, said)
    assert said.checks == 2          # at the first feature and at the 257th, every 256
    del layer
