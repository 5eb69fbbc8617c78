"""Bad input: a QgsProcessingException naming the parameter and the fix, and no output left behind."""

import os

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException

from conftest import AVIRIS_NG, USGS_LIBRARY, warning_recorder
from test_algorithms import pixel_centre, point_layer


def expect_failure(run_alg, name, params, parameter, *words):
    with pytest.raises(QgsProcessingException) as err:
        run_alg(name, params)
    message = str(err.value)
    assert f"({parameter})" in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    for key, value in params.items():
        if key.startswith("OUTPUT") and isinstance(value, str):
            assert not os.path.exists(value), f"{value} was left behind"
            folder, base = os.path.split(value)
            if os.path.isdir(folder):
                assert not [n for n in os.listdir(folder) if n.startswith(base + ".oremap-partial")], "partial file left"
    return message


def write_csv_library(path, wavelengths, columns):
    with open(path, "w") as fh:
        fh.write("wavelength_nm," + ",".join(columns) + "\n")
        for i, wl in enumerate(wavelengths):
            fh.write(f"{wl}," + ",".join(str(0.2 + 0.01 * k + 0.001 * i) for k in range(len(columns))) + "\n")
    return str(path)


def test_library_without_overlap(run_alg, tmp_path):
    lib = write_csv_library(tmp_path / "tir.csv", np.arange(8000, 12000, 100), ["quartz", "calcite"])
    expect_failure(run_alg, "sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": lib,
                                             "OUTPUT_CLASSES": str(tmp_path / "c.tif")},
                   "LIBRARY", "does not overlap", "8000-11900 nm")


def test_endmember_points_outside_raster(run_alg, tmp_path):
    with rasterio.open(AVIRIS_NG) as ds:
        inside = pixel_centre(ds.transform, 2, 2)
    layer = point_layer([("a", inside), ("far", (inside[0] + 5000, inside[1]))])
    try:
        expect_failure(run_alg, "unmix_fcls", {"INPUT": AVIRIS_NG, "POINTS": layer, "NAME_FIELD": "mineral",
                                               "OUTPUT": str(tmp_path / "a.tif")}, "POINTS", "far", "outside")
    finally:
        del layer


def test_all_nodata_raster(run_alg, tmp_path):
    path = str(tmp_path / "empty.tif")
    with rasterio.open(AVIRIS_NG) as src:
        envi = src.tags(ns="ENVI")
        profile = dict(driver="GTiff", width=10, height=10, count=src.count, dtype="float32", nodata=-9999.0,
                       crs=src.crs, transform=src.transform)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((profile["count"], 10, 10), -9999.0, np.float32))
        dst.update_tags(ns="ENVI", **envi)
    expect_failure(run_alg, "sam_classify", {"INPUT": path, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9",
                                             "OUTPUT_CLASSES": str(tmp_path / "c.tif"),
                                             "OUTPUT_SCORE": str(tmp_path / "s.tif")}, "INPUT", "nodata")


def test_fewer_than_two_endmembers(run_alg, tmp_path):
    expect_failure(run_alg, "unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9",
                                           "OUTPUT": str(tmp_path / "a.tif")}, "SPECTRA", "at least 2")


def test_duplicate_endmember_names(run_alg, tmp_path):
    lib = write_csv_library(tmp_path / "dup.csv", np.arange(400, 2500, 10), ["kaolinite", "alunite", "kaolinite"])
    expect_failure(run_alg, "unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": lib, "OUTPUT": str(tmp_path / "a.tif")},
                   "LIBRARY", "kaolinite")


def cube_without_wavelengths(tmp_path):
    path = str(tmp_path / "nowl.tif")
    with rasterio.open(AVIRIS_NG) as src:
        data = src.read(list(range(60, 100)))
        profile = dict(driver="GTiff", width=10, height=10, count=40, dtype="float32", crs=src.crs,
                       transform=src.transform)
        centers = [float(d.split()[0]) for d in src.descriptions[59:99]]
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path, centers


def test_raster_without_wavelengths_needs_parameter(run_alg, tmp_path):
    path, centers = cube_without_wavelengths(tmp_path)
    params = {"INPUT": path, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9; Goethite WS222",
              "OUTPUT_CLASSES": str(tmp_path / "c.tif")}
    expect_failure(run_alg, "sam_classify", params, "WAVELENGTHS", "has no band wavelengths in its metadata")
    # with the wavelengths given, it gives exactly what the same cube gives with them as band metadata
    result = run_alg("sam_classify", dict(params, WAVELENGTHS=", ".join(repr(c) for c in centers),
                                          OUTPUT_SCORE=str(tmp_path / "s.tif")))
    from oremap.core.engine.wavelengths import BandInfo, band_tags

    tagged = str(tmp_path / "tagged.tif")
    with rasterio.open(path) as src, rasterio.open(tagged, "w", **src.profile) as dst:
        dst.write(src.read())
        for i, tags in enumerate(band_tags(BandInfo(centers=np.array(centers))), start=1):
            dst.update_tags(i, **tags)
    expected = run_alg("sam_classify", dict(params, INPUT=tagged, OUTPUT_CLASSES=str(tmp_path / "e.tif"),
                                            OUTPUT_SCORE=str(tmp_path / "es.tif")))
    for key in ("OUTPUT_CLASSES", "OUTPUT_SCORE"):
        with rasterio.open(result[key]) as a, rasterio.open(expected[key]) as b:
            assert np.array_equal(a.read(), b.read())
    with rasterio.open(result["OUTPUT_CLASSES"]) as ds:
        assert set(np.unique(ds.read(1))) == {1, 2}  # both minerals occur: a real classification
    with pytest.raises(QgsProcessingException) as err:
        run_alg("sam_classify", dict(params, WAVELENGTHS="500, 600", OUTPUT_CLASSES=str(tmp_path / "d.tif")))
    assert "(WAVELENGTHS)" in str(err.value) and "40 bands" in str(err.value)


def test_output_path_not_writable(run_alg, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    for target in (tmp_path / "missing" / "out.tif", tmp_path / "afile" / "out.tif"):
        expect_failure(run_alg, "unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                               "SPECTRA": "Kaolinite CM9; Goethite WS222",
                                               "OUTPUT": str(target)}, "OUTPUT", "folder")


def test_unknown_spectrum_name_suggests_matches(run_alg, tmp_path):
    message = expect_failure(run_alg, "sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                                       "SPECTRA": "Kaolinit CM9",
                                                       "OUTPUT_CLASSES": str(tmp_path / "c.tif")}, "SPECTRA")
    assert "Kaolinite CM9" in message


def test_no_references_and_both_references(run_alg, tmp_path):
    expect_failure(run_alg, "sam_classify", {"INPUT": AVIRIS_NG, "OUTPUT_CLASSES": str(tmp_path / "c.tif")},
                   "LIBRARY", "no reference spectra")
    layer = point_layer([("a", (0.0, 0.0))])
    try:
        expect_failure(run_alg, "sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "POINTS": layer,
                                                 "NAME_FIELD": "mineral", "OUTPUT_CLASSES": str(tmp_path / "c.tif")},
                       "POINTS", "both")
    finally:
        del layer


def test_existing_output_is_replaced_with_a_warning(run_alg, tmp_path):
    import processing

    target = tmp_path / "a.tif"
    target.write_bytes(b"old")

    feedback = warning_recorder()
    processing.run("oremap:unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                         "SPECTRA": "Kaolinite CM9; Goethite WS222", "OUTPUT": str(target)},
                   feedback=feedback)
    assert any("replacing existing file" in w for w in feedback.warnings)
    with rasterio.open(target) as ds:
        assert ds.count == 3


def test_cancelled_run_leaves_nothing(processing_provider, tmp_path):
    from qgis.core import QgsProcessingFeedback
    import processing

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    target = tmp_path / "a.tif"
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                             "SPECTRA": "Kaolinite CM9; Goethite WS222", "OUTPUT": str(target)},
                       feedback=feedback)
    assert "Cancelled" in str(err.value)
    assert os.listdir(tmp_path) == []


class CancelAt:
    """A feedback that cancels when progress first reaches ``percent`` (100: after the last block is written)."""

    def __new__(cls, percent):
        from qgis.core import QgsProcessingFeedback

        class Feedback(QgsProcessingFeedback):
            def setProgress(self, value):  # noqa: N802 (QGIS API)
                super().setProgress(value)
                if value >= percent:
                    self.cancel()

        return Feedback()


def test_cancel_at_the_end_keeps_the_existing_output(processing_provider, tmp_path):
    """A cancel after the engine's last block (the outputs already complete) still cancels: the file that was
    at the output path is put back, its sidecars too, and no other file is left."""
    import processing

    target = tmp_path / "a.tif"
    target.write_bytes(b"old")
    (tmp_path / "a.qml").write_text("old style")
    with pytest.raises(QgsProcessingException) as err:
        processing.run("oremap:unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                             "SPECTRA": "Kaolinite CM9; Goethite WS222", "OUTPUT": str(target)},
                       feedback=CancelAt(100))
    assert "Cancelled" in str(err.value)
    assert target.read_bytes() == b"old" and (tmp_path / "a.qml").read_text() == "old style"
    assert sorted(os.listdir(tmp_path)) == ["a.qml", "a.tif"]


def test_failed_run_puts_back_the_style_of_a_vector_output(run_alg, tmp_path, monkeypatch):
    """A vector output goes through Processing's sink, but the style OreMap writes beside it is guarded like a
    raster's: a run failing once the new style is written puts back the .qml that was there."""
    import geopandas as gpd
    from oremap.algorithms import styles
    from test_anomaly_compilations import soil_compilation

    table, _, _ = soil_compilation()
    points = tmp_path / "soil.gpkg"
    gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(table["X"], table["Y"]), crs="EPSG:4326").to_file(
        points, driver="GPKG")
    (tmp_path / "scores.qml").write_text("old style")
    written = []

    def write_then_fail(path, style, real=styles.write_style):
        written.append(open(real(path, style)).read())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(styles, "write_style", write_then_fail)
    with pytest.raises(QgsProcessingException, match="could not be read or written"):
        run_alg("geochem_anomaly", {"POINTS": str(points), "OUTPUT": str(tmp_path / "scores.gpkg")})
    assert "anomaly_class" in written[0]  # the new style was written, then the run failed
    assert (tmp_path / "scores.qml").read_text() == "old style"
    assert not any(n.startswith(".") for n in os.listdir(tmp_path))


def test_failed_run_removes_what_it_wrote(run_alg, tmp_path, monkeypatch):
    """An error after one output is complete (here the style step of a later output) removes that output."""
    from oremap.algorithms import sam_classify

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sam_classify.OreMapAlgorithm, "style_output", broken)
    with pytest.raises(QgsProcessingException, match="could not be read or written"):
        run_alg("sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                 "SPECTRA": "Kaolinite CM9; Goethite WS222",
                                 "OUTPUT_CLASSES": str(tmp_path / "c.tif"), "OUTPUT_ANGLE": str(tmp_path / "a.tif")})
    assert os.listdir(tmp_path) == []


def test_memory_budget_setting(processing_provider):
    from processing.core.ProcessingConfig import ProcessingConfig

    alg = processing_provider.algorithm("unmix_fcls")
    from oremap.core.engine.raster import DEFAULT_MEMORY_MB, MEMORY_SETTING

    old = ProcessingConfig.getSetting(MEMORY_SETTING)
    assert float(old) == DEFAULT_MEMORY_MB
    ProcessingConfig.setSettingValue(MEMORY_SETTING, 48)
    try:
        assert alg.memory_mb() == 48.0
    finally:
        ProcessingConfig.setSettingValue(MEMORY_SETTING, old)


def test_bad_band_parameter(run_alg, tmp_path):
    """An unreadable bad-band entry, and one that would leave no band, name BAD_BANDS; keeping bands works."""
    params = {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9;Alunite GDS84",
              "OUTPUT_CLASSES": str(tmp_path / "c.tif")}
    expect_failure(run_alg, "sam_classify", {**params, "BAD_BANDS": "keep 381-401"}, "BAD_BANDS", "nm")
    expect_failure(run_alg, "unmix_fcls", {**params, "BAD_BANDS": "drop 300-2600 nm",
                                           "OUTPUT": str(tmp_path / "u.tif")}, "BAD_BANDS", "every band")
    expect_failure(run_alg, "sam_classify", {**params, "BAD_BANDS": "drop bands 400-500"}, "BAD_BANDS", "432 bands")
    # the three bands at 386-401 nm dropped for their negative scene median come back when kept
    used = [run_alg("sam_classify", {**params, "BAD_BANDS": text, "OUTPUT_CLASSES": str(tmp_path / f"k{k}.tif")})
            for k, text in enumerate(["", "keep 386-402 nm"])]
    with rasterio.open(used[0]["OUTPUT_CLASSES"]) as a, rasterio.open(used[1]["OUTPUT_CLASSES"]) as b:
        assert a.shape == b.shape == (10, 10)
    from oremap.core.hyperspectral import mapping

    default = mapping.image_band_info(AVIRIS_NG)
    kept = mapping.image_band_info(AVIRIS_NG, bad_bands="keep 386-402 nm")
    assert np.flatnonzero(default.bad & ~kept.bad).tolist() == [8, 9, 11]  # bands 9, 10 and 12


@pytest.mark.parametrize("name, params, expected", [
    ("classify_spectral_cnn", {"INPUT": "MODEL"},
     "Hyperspectral raster (INPUT): 'usgs_minerals_cnn.onnx' is not a raster QGIS can open; it looks like an OreMap "
     "model (ONNX), which goes in a model parameter. Choose a GeoTIFF or an ENVI image."),
    ("sam_classify", {"INPUT": "HEADER", "LIBRARY": USGS_LIBRARY},
     "Hyperspectral raster (INPUT): 'ang20150420t182808_corr_v1e_img_4200-4210_70-80.hdr' is not a raster QGIS can "
     "open; it is an ENVI header. Give the image file beside it (.img, .dat, .bsq or no extension)."),
    ("element_selection", {"INPUT": "RASTER", "DEPOSITS": "RASTER"},
     "Known deposits (DEPOSITS): 'jasper_ridge_40x40.tif' is not a vector layer QGIS can open; it is a raster. "
     "Choose a GeoPackage, shapefile or GeoJSON file."),
    ("sam_classify", {"INPUT": "MISSING", "LIBRARY": USGS_LIBRARY},
     "Hyperspectral raster (INPUT): 'MISSING' is neither an existing file nor a layer of the project. Choose an "
     "existing raster file or a loaded layer."),
])
def test_a_file_of_the_wrong_kind_is_named_with_its_parameter(processing_provider, tmp_path, name, params, expected):
    """QGIS's own check said 'Could not load source layer for INPUT: model.onnx not found' of a file that exists."""
    from qgis.core import QgsProcessingContext

    from conftest import DATA, ROOT

    files = {"MODEL": os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx"),
             "HEADER": os.path.splitext(AVIRIS_NG)[0] + ".hdr", "RASTER": os.path.join(DATA, "jasper_ridge_40x40.tif"),
             "MISSING": str(tmp_path / "scene.tif")}
    params = {k: files.get(v, v) for k, v in params.items()}
    expected = expected.replace("'MISSING'", f"'{files['MISSING']}'")
    algorithm = next(a for a in processing_provider.algorithms() if a.name() == name)
    ok, message = algorithm.checkParameterValues({**params, "OUTPUT_CLASSES": str(tmp_path / "c.tif")},
                                                 QgsProcessingContext())
    assert not ok and message == expected


def test_an_output_loaded_in_the_project_is_refused_first_on_windows(run_alg, tmp_path, monkeypatch):
    """Windows keeps a loaded raster locked: rerunning into the map just loaded computed everything, then failed at
    the final replace with 'Access is denied ... check that the output folder is writable' and left a kept link
    behind. The loaded output is now refused before the run, naming the parameter and the layer; elsewhere (a file
    can be replaced under its readers) nothing changes."""
    from qgis.core import QgsProject, QgsRasterLayer

    from oremap.algorithms import base
    from oremap.core.engine import files

    out = tmp_path / "classes.tif"
    params = {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9;Alunite GDS84 Na03",
              "OUTPUT_CLASSES": str(out)}
    run_alg("sam_classify", params)
    before = out.read_bytes()
    layer = QgsRasterLayer(str(out), "SAM classes")
    QgsProject.instance().addMapLayer(layer)
    try:
        assert base.locked_output_problem(str(out), QgsProject.instance(), windows=False) is None
        other = tmp_path / "other.tif"
        other.write_bytes(before)   # an existing file that no layer shows: free to replace
        assert base.locked_output_problem(str(other), QgsProject.instance(), windows=True) is None
        assert base.locked_output_problem(str(out), QgsProject.instance(), windows=True)[0].startswith(
            "classes.tif is loaded in the project as the layer 'SAM classes'")
        other.unlink()
        monkeypatch.setattr(files, "WINDOWS", True)
        with pytest.raises(QgsProcessingException) as err:
            run_alg("sam_classify", params)
        message = str(err.value)
        assert "(OUTPUT_CLASSES)" in message and "loaded in the project as the layer 'SAM classes'" in message
        assert "Remove the layer from the project" in message
        assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["classes.qml", "classes.tif"]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
