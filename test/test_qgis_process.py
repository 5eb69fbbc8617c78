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
        assert a.descriptions[-1] == "RMSE"
    assert np.array_equal(cli, ref)
    np.testing.assert_allclose(cli[:-1].sum(axis=0), 1.0, atol=1e-5)
    assert (tmp_path / "abund_cli.qml").exists()


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

    from oremap.core.sentinel2.sentinel2.mine_detection import detect_mines

    scene = make_scene(str(tmp_path / "scene"), seed=2, size=(192, 192))
    model = tmp_path / "unet.onnx"
    trained = qgis_process.run_json("oremap:train_mine_segmentation", INPUT=scene["raster"], POLYGONS=scene["mines"],
                                    TILE=32, DEPTH=2, WIDTH=4, EPOCHS=2, BLOCK_TILES=2, SEED=0,
                                    OUTPUT_MODEL=str(model), OUTPUT_REPORT=str(tmp_path / "unet.html"))["results"]
    assert model.exists() and 0.0 <= trained["IOU"] <= 1.0
    out = qgis_process.run_json("oremap:detect_mines", INPUT=scene["raster"], MODEL_FILE=str(model), MIN_AREA=0,
                                OUTPUT=str(tmp_path / "p.tif"), OUTPUT_MASK=str(tmp_path / "m.tif"),
                                OUTPUT_POLYGONS=str(tmp_path / "mines.gpkg"))["results"]
    ref = detect_mines(scene["raster"], str(model), str(tmp_path / "p_core.tif"), str(tmp_path / "m_core.tif"))
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
