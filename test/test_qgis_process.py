"""Headless runs: qgis_process sees the provider, runs an algorithm and a Graphical Modeler model."""

import csv
import json
import os

import numpy as np
import pytest
import rasterio

from conftest import AVIRIS_NG, DATA, USGS_LIBRARY

pytestmark = pytest.mark.slow

SPECTRA = "Kaolinite CM9;Muscovite GDS107;Goethite WS222;Lawn_Grass GDS91"


def test_provider_and_algorithms_listed(qgis_process):
    from oremap.algorithms import ALGORITHMS

    proc = qgis_process("list")
    listing = proc.stdout
    for name, _ in ALGORITHMS:
        assert f"oremap:{name}" in listing
    assert "could not be loaded" not in listing + proc.stderr


def test_qgis_process_unmix_values(qgis_process, run_alg, tmp_path):
    out = tmp_path / "abund_cli.tif"
    result = qgis_process.run_json("oremap:unmix_fcls", INPUT=AVIRIS_NG, LIBRARY=USGS_LIBRARY, SPECTRA=SPECTRA,
                                   MODE=1, OUTPUT=str(out))
    assert result["results"]["OUTPUT"] == str(out)
    assert result["results"]["VALID_PIXELS"] == 100
    # the same run in-process gives the same numbers
    inproc = run_alg("unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": SPECTRA, "MODE": 1,
                                    "OUTPUT": str(tmp_path / "abund_inproc.tif")})
    with rasterio.open(out) as a, rasterio.open(inproc["OUTPUT"]) as b:
        cli, ref = a.read(), b.read()
        assert a.descriptions[-2:] == ("RMSE (non-negative fit)", "RMSE (closed abundances)")
    assert np.array_equal(cli, ref)
    np.testing.assert_allclose(cli[:-2].sum(axis=0), 1.0, atol=1e-5)
    # and the same style file, byte for byte: Qt 5 orders attributes by a hash seeded anew in each process
    assert (tmp_path / "abund_cli.qml").read_bytes() == (tmp_path / "abund_inproc.qml").read_bytes()


def test_qgis_process_classifies_with_the_bits_of_a_python_process(qgis_process, run_alg, tmp_path):
    """qgis_process loads GSL's reference CBLAS before numpy, so numpy's own products ran there on it (twice as slow
    for the CNN, and confidences 4e-6 off a Python run's); the per-pixel products go through core.engine.compute.gemm,
    which reaches OpenBLAS in both, and the confidence rasters are equal."""
    out = tmp_path / "conf_cli.tif"
    qgis_process.run_json("oremap:classify_spectral_cnn", INPUT=AVIRIS_NG, OUTPUT_CLASSES=str(tmp_path / "c_cli.tif"),
                          OUTPUT_CONFIDENCE=str(out), THREADS=1)
    inproc = run_alg("classify_spectral_cnn", {"INPUT": AVIRIS_NG, "OUTPUT_CLASSES": str(tmp_path / "c_in.tif"),
                                               "OUTPUT_CONFIDENCE": str(tmp_path / "conf_in.tif"), "THREADS": 1})
    with rasterio.open(out) as a, rasterio.open(inproc["OUTPUT_CONFIDENCE"]) as b:
        assert np.array_equal(a.read(), b.read())


def test_qgis_process_reports_bad_parameter(qgis_process, tmp_path):
    proc = qgis_process("run", "oremap:sam_classify", "--", f"INPUT={AVIRIS_NG}", f"LIBRARY={USGS_LIBRARY}",
                        "SPECTRA=Unobtainium", f"OUTPUT_CLASSES={tmp_path / 'x.tif'}", check=False)
    assert proc.returncode != 0
    assert "SPECTRA" in proc.stdout + proc.stderr and "Unobtainium" in proc.stdout + proc.stderr
    assert not (tmp_path / "x.tif").exists()


def test_graphical_modeler_model_chains_oremap_and_qgis(qgis_process, tmp_path):
    model = os.path.join(DATA, "sam_class_report.model3")
    counts_csv = tmp_path / "counts.csv"
    classes = tmp_path / "classes.tif"
    result = qgis_process.run_json(model, cube=AVIRIS_NG, library=USGS_LIBRARY, spectra=SPECTRA,
                                   **{"sam:classes": str(classes), "report:class_counts": str(counts_csv)})
    assert json.dumps(result["results"])  # the model reported its outputs
    with rasterio.open(classes) as ds:
        values, expected = np.unique(ds.read(1), return_counts=True)
    with open(counts_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = {int(float(r["value"])): int(float(r["count"])) for r in rows}
    assert got == dict(zip(values.tolist(), expected.tolist()))
    assert sum(got.values()) == 100


def test_qgis_process_trains_and_detects_mines_headless(qgis_process, tmp_path):
    """The Sentinel-2 chain of the user guide, headless: a U-Net trained by qgis_process on a fixture scene, then
    detection on a real BigEarthNet folder of per-band files and on the scene; the probabilities equal the
    core's on the same model, and the polygons' areas add up to the mask."""
    import geopandas as gpd

    from s2_scene import S2_FOLDER, make_scene

    from oremap.core.sentinel2.mine_detection import detect_mines

    scene = make_scene(str(tmp_path / "scene"), seed=2, size=(192, 192))
    model = tmp_path / "unet.onnx"
    trained = qgis_process.run_json("oremap:train_mine_segmentation", INPUT=scene["raster"], POLYGONS=scene["mines"],
                                    TILE=32, DEPTH=2, WIDTH=4, EPOCHS=2, BLOCK_TILES=2, SEED=0,
                                    OUTPUT_MODEL=str(model), OUTPUT_REPORT=str(tmp_path / "unet.html"))["results"]
    assert model.exists() and 0.0 <= trained["IOU"] <= 1.0
    out = qgis_process.run_json("oremap:detect_mines", INPUT=scene["raster"], MODEL_FILE=str(model), MIN_AREA=0,
                                OUTPUT=str(tmp_path / "p.tif"), OUTPUT_MASK=str(tmp_path / "m.tif"),
                                OUTPUT_POLYGONS=str(tmp_path / "mines.gpkg"))["results"]
    ref = detect_mines(scene["raster"], str(model), str(tmp_path / "p_core.tif"), str(tmp_path / "m_core.tif"),
                       min_area_ha=0)
    with rasterio.open(tmp_path / "p.tif") as a, rasterio.open(tmp_path / "p_core.tif") as b:
        assert np.array_equal(a.read(), b.read()) and a.descriptions == ("P(mine)",)
    with rasterio.open(tmp_path / "m.tif") as ds:
        mask_pixels = int((ds.read(1) == 1).sum())
    polygons = gpd.read_file(tmp_path / "mines.gpkg")
    assert out["N_MINES"] == len(polygons) == ref["n_mines"]
    assert polygons["area_ha"].sum() == pytest.approx(mask_pixels * 0.01) == pytest.approx(out["TOTAL_AREA_HA"])
    folder = os.path.join(S2_FOLDER, "S2A_MSIL2A_20170613T101031_87_48")
    real = qgis_process.run_json("oremap:detect_mines", INPUT_FOLDER=folder, MODEL_FILE=str(model),
                                 OUTPUT=str(tmp_path / "real.tif"))["results"]
    detect_mines(folder, str(model), str(tmp_path / "real_core.tif"))
    with rasterio.open(real["OUTPUT"]) as a, rasterio.open(tmp_path / "real_core.tif") as b:
        assert (a.width, a.height) == (120, 120) and a.res == (10.0, 10.0)  # the 10 m grid of B02
        assert np.array_equal(a.read(), b.read())


def test_qgis_process_geochem_anomaly_with_defaults_only(qgis_process, tmp_path):
    """Issue 15, as a new user runs it: a till survey with shapefile-truncated coordinate fields, _ppm_511 names and an
    oxide beside its element, no field and no report named; then evaluate_prospectivity without a report path."""
    import geopandas as gpd
    import pandas as pd

    from test_survey_hygiene import till_survey

    table, e, no, _ = till_survey(n=300)
    points = tmp_path / "till.gpkg"
    gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(e, no), crs="EPSG:3067").to_file(points, driver="GPKG")
    sites = tmp_path / "sites.gpkg"
    gpd.GeoDataFrame(pd.DataFrame({"id": [1, 2, 3]}), geometry=gpd.points_from_xy(e[[10, 50, 90]] + 150.0,
                                                                                  no[[10, 50, 90]]),
                     crs="EPSG:3067").to_file(sites, driver="GPKG")
    scored = tmp_path / "scored.gpkg"
    result = qgis_process.run_json("oremap:geochem_anomaly", POINTS=points, DEPOSITS=sites, OUTPUT=scored)["results"]
    assert result["ELEMENTS"] == "Cu_ppm_511;Ni_ppm_511;Co_ppm_511;Zn_ppm_511;Au_ppb_521;Fe2O3_pct"
    # the report went to a temporary file (qgis_process removes its temporary folder when it exits)
    assert result["OUTPUT_HTML"].endswith(".html") and result["N_SCORED"] == 300
    evaluated = qgis_process.run_json("oremap:evaluate_prospectivity", POINTS=scored, SCORE_FIELD="anomaly_score",
                                      DEPOSITS=sites)["results"]
    assert evaluated["OUTPUT_HTML"].endswith(".html")
    assert evaluated["AUC_MEAN"] == pytest.approx(result["AUC_MEAN"], abs=1e-9)


def test_reports_are_optional_headless(qgis_process, tmp_path):
    """Issue 23: qgis_process needs only the inputs and the main output; reports go to a temporary file."""
    import geopandas as gpd
    from affine import Affine
    from shapely.geometry import Point

    # a 10 x 10 class raster of 30 m pixels, codes 1-12 named "0"-"11" (a model trained on a label_id field)
    transform = Affine(30.0, 0, 500000.0, 0, -30.0, 7000000.0)
    codes = (np.arange(100).reshape(10, 10) % 12 + 1).astype(np.uint8)
    legend = [{"value": 0, "name": "Unclassified", "color": "#000000"}]
    legend += [{"value": v + 1, "name": str(v), "color": "#1f78b4"} for v in range(12)]
    classes = tmp_path / "classes.tif"
    with rasterio.open(classes, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32750", transform=transform) as ds:
        ds.write(codes, 1)
        ds.update_tags(OREMAP_CLASSES=json.dumps(legend))
    # 20 reference points with their label_id (integer field); 18 right, 2 wrong
    cells = [(r, c) for r in range(0, 10, 2) for c in range(0, 10, 5)] * 2
    rows = []
    for k, (r, c) in enumerate(cells):
        truth = int(codes[r, c]) - 1
        label = truth if k >= 2 else (truth + 1) % 12
        rows.append({"label_id": label, "geometry": Point(transform * (c + 0.5, r + 0.5))})
    reference = tmp_path / "reference.gpkg"
    gpd.GeoDataFrame(rows, crs="EPSG:32750").to_file(reference, driver="GPKG")
    table = tmp_path / "accuracy.csv"
    result = qgis_process.run_json("oremap:accuracy_assessment", INPUT=str(classes), REFERENCE=str(reference),
                                   CLASS_FIELD="label_id", OUTPUT_CSV=str(table))["results"]
    assert result["OVERALL_ACCURACY"] == pytest.approx(18 / 20)
    assert result["OUTPUT_CSV"] == str(table) and table.exists()
    # the report went to Processing's temporary folder (qgis_process removes it when it exits)
    assert os.path.basename(result["OUTPUT_HTML"]) == "OUTPUT_HTML.html"
    assert not result["OUTPUT_HTML"].startswith(str(tmp_path))

    # a score raster falling with the distance from two deposits, evaluated without OUTPUT_HTML or OUTPUT_CSV
    deposits = [(15, 20), (40, 35)]
    rr, cc = np.mgrid[0:60, 0:60]
    distance = np.min([np.hypot(rr - r, cc - c) for r, c in deposits], axis=0) * 100.0
    score = tmp_path / "score.tif"
    with rasterio.open(score, "w", driver="GTiff", width=60, height=60, count=1, dtype="float32", nodata=-9999,
                       crs="EPSG:32750", transform=Affine(100.0, 0, 500000.0, 0, -100.0, 7000000.0)) as ds:
        ds.write(np.exp(-distance / 1500.0).astype(np.float32), 1)
    points = [Point(500000.0 + (c + 0.5) * 100.0, 7000000.0 - (r + 0.5) * 100.0) for r, c in deposits]
    gpkg = tmp_path / "deposits.gpkg"
    gpd.GeoDataFrame({"name": ["a", "b"], "geometry": points}, crs="EPSG:32750").to_file(gpkg, driver="GPKG")
    result = qgis_process.run_json("oremap:evaluate_prospectivity", SCORE_RASTER=str(score), DEPOSITS=str(gpkg),
                                   POSITIVE_RADIUS=200, NEGATIVE_MIN_DISTANCE=1000)["results"]
    # positives (within 200 m) score above every negative (beyond 1 km): AUC 1 in every draw
    assert result["AUC_MEAN"] == pytest.approx(1.0) and result["OUTPUT_HTML"].endswith(".html")
