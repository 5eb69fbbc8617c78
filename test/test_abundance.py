"""Mineral abundance: compositions, grouped CV, stacking, ONNX graph, closure and conformal intervals.

The realistic case is the scene of ``abundance_scene``: real USGS spectra of kaolinite,
muscovite, calcite, goethite and quartz mixed linearly and intimately, with illumination
and noise, as 6 x 6 pixel ROIs with "laboratory" compositions. A second scene with other
ROIs (another seed) is the independent test set.
"""

import csv
import os

import numpy as np
import pytest
import rasterio

from abundance_scene import LISTED, make_scene, roi_pixels
from oremap.core.abundance import abundance as ab
from oremap.core.abundance import abundance_report
from oremap.core.abundance import abundance_map
from oremap.core.abundance import members as ab_members
from oremap.core.engine import onnx_ensemble
from oremap.core.engine.compositional import ilr_basis, ilr_inverse, project_simplex
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.wavelengths import band_info_from_raster

FAST = {"cnn": {"epochs": 4, "channels": (8, 16, 16)}, "hgb": {"max_iter": 30}, "extra_trees": {"n_estimators": 30}}


# ---------------------------------------------------------------------------
# Compositions, folds, stacking, conformal quantile
# ---------------------------------------------------------------------------
def test_prepare_compositions_units_other_and_closure():
    frac = ab.prepare_compositions([[0.2, 0.3], [0.5, 0.5]], ["Kaolinite", "Calcite"])
    assert frac.units == "fraction" and frac.other_added
    assert frac.names == ["Kaolinite", "Calcite", "Other"]
    assert np.allclose(frac.values, [[20, 30, 50], [50, 50, 0]])
    pct = ab.prepare_compositions([[20.0, 30.0], [60.0, 50.0], [np.nan, 10.0]], ["A", "B"], add_other=False)
    assert pct.units == "percent" and not pct.other_added and list(pct.kept) == [True, True, False]
    # 20/30 closed to 40/60; 60/50 (110 %) closed to 100
    assert np.allclose(pct.values, [[40, 60], [600 / 11, 500 / 11]])
    assert any("left out" in m for m in pct.messages) and any("more than 100" in m for m in pct.messages)
    with pytest.raises(OreMapError) as err:
        ab.prepare_compositions([[-1.0, 50.0]], ["A", "B"])
    assert err.value.parameter == "fields"


def test_roi_folds_keep_rois_whole():
    groups = np.repeat(np.arange(11), 7)
    folds, k = ab.roi_folds(groups, 5, seed=3)
    assert k == 5
    for g in range(11):
        assert np.unique(folds[groups == g]).size == 1
    assert sorted(np.bincount([folds[groups == g][0] for g in range(11)])) == [2, 2, 2, 2, 3]
    with pytest.raises(OreMapError):
        ab.roi_folds(np.array([0, 0, 1, 1]), 5)


def test_stacking_weights_recover_a_convex_combination():
    rng = np.random.default_rng(0)
    P = rng.normal(50, 20, (300, 3, 4))
    T = 0.3 * P[:, 0] + 0.7 * P[:, 2]
    W = ab.stacking_weights(P, T)
    assert np.allclose(W[:, 0], [0.3, 0.0, 0.7], atol=1e-9)
    W2 = ab.stacking_weights(P, T, shared=False)
    assert np.allclose(W2, np.repeat([[0.3], [0.0], [0.7]], 4, axis=1), atol=1e-9)


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1.0, 10.0)[::-1]  # 9 scores
    assert ab.conformal_quantile(scores, 0.9) == 9.0   # ceil(10 * 0.9) = 9th smallest
    assert ab.conformal_quantile(scores, 0.5) == 5.0   # ceil(10 * 0.5) = 5th
    assert ab.conformal_quantile(scores[:3], 0.9) == np.inf  # too few to promise 90 %


def test_intervals_are_clipped_to_0_100():
    lo, hi = ab.intervals(np.array([[2.0, 98.0]]), np.array([[1.0, 1.0]]), np.array([2.0, 2.0]),
                          np.array([1.0, 1.0]))
    assert np.allclose(lo, [[0.0, 94.0]]) and np.allclose(hi, [[6.0, 100.0]])


# ---------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------
def test_hgb_export_matches_scikit_learn_including_ties():
    import onnxruntime as ort
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(1)
    X = rng.integers(0, 6, (600, 5)).astype(np.float32) / 4  # many values exactly on the thresholds
    X[:, 1] += rng.normal(0, 0.01, 600).astype(np.float32)
    Y = np.column_stack([X[:, 0] * 10 + X[:, 1] ** 2, np.sin(X[:, 2] * 3) * 5 + X[:, 3]])
    models = [HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(X, Y[:, j]) for j in range(2)]
    session = ort.InferenceSession(onnx_ensemble.hgb_to_onnx(models, 5).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"X": X})[0]
    expected = np.column_stack([m.predict(X) for m in models])
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("space", ["simplex", "ilr"])
def test_ensemble_graph_matches_numpy(space):
    import onnxruntime as ort
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    X = rng.random((500, 12)).astype(np.float32)
    k = 4
    d = k if space == "simplex" else k - 1
    T = rng.normal(25, 30, (500, d))
    members = [Ridge(alpha=a).fit(X, T) for a in (0.1, 10.0, 100.0)]
    W = np.array([[0.5] * d, [0.2] * d, [0.3] * d])
    graph = onnx_ensemble.combine([onnx_ensemble.sklearn_to_onnx(m, 12) for m in members], W, np.zeros(d), 12, k,
                                  space=space, basis=ilr_basis(k) if space == "ilr" else None)
    A, S, M = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"spectra": X})
    P = np.stack([m.predict(X) for m in members], axis=1)
    E = np.einsum("nmd,md->nd", P, W)
    if space == "simplex":
        expected, parts = project_simplex(E, 100.0), P
    else:
        expected = ilr_inverse(E, 100.0)
        parts = np.stack([ilr_inverse(P[:, i], 100.0) for i in range(3)], axis=1)
    assert np.abs(A - expected).max() < 1e-3
    assert np.abs(S - parts.std(axis=1)).max() < 1e-3
    assert np.abs(M - P).max() < 1e-3
    assert np.abs(A.sum(axis=1) - 100).max() < 1e-3 and A.min() >= 0


# ---------------------------------------------------------------------------
# Grouped CV never leaks an ROI
# ---------------------------------------------------------------------------
def test_cross_validation_never_trains_on_a_held_out_roi(tmp_path, monkeypatch):
    scene = make_scene(str(tmp_path), n_rows=3, n_cols=4, roi_size=3, seed=5)
    X, lab, ids = roi_pixels(scene)
    comp = ab.prepare_compositions(scene["lab"][:, :4], LISTED)
    roi_of_row = {row.tobytes(): int(i) for row, i in zip(X, ids)}
    seen = []
    make = ab_members.make_member

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def fit(self, P, T):
            seen.append({roi_of_row[row.tobytes()] for row in np.asarray(P, np.float32)})
            self.inner.fit(P, T)
            return self

        def predict(self, P):
            return self.inner.predict(P)

    monkeypatch.setattr(ab, "make_member", lambda *a, **kw: Spy(make(*a, **kw)))
    monkeypatch.setattr(ab, "member_onnx", lambda family, member, b: onnx_ensemble.sklearn_to_onnx(member.inner, b))
    result = ab.train_abundance_model(X, comp.values[ids], ids, comp.names, families=["ridge"], n_folds=4,
                                      fcls=False, seed=1)
    folds = result.folds
    assert len(seen) == 5  # 4 folds + the final model
    for f in range(4):
        held_out = set(ids[folds == f].tolist())
        assert held_out and not (seen[f] & held_out)
        assert seen[f] | held_out == set(range(12))
    assert seen[4] == set(range(12))


# ---------------------------------------------------------------------------
# The realistic scene
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("abundance"))
    train, test = make_scene(folder, seed=0, name="train"), make_scene(folder, seed=1, name="test")
    X, lab, ids = roi_pixels(train)
    comp = ab.prepare_compositions(train["lab"][:, :4], LISTED)
    result = ab.train_abundance_model(X, comp.values[ids], ids, comp.names, families=[f for f, _ in ab.FAMILIES],
                                      member_options=FAST, seed=1, level=0.9)
    model_path = os.path.join(folder, "abundance.onnx")
    result.save(model_path)
    return {"train": train, "test": test, "result": result, "model": model_path, "comp": comp, "folder": folder}


def _rmse(A, Y):
    return np.sqrt(((A - Y) ** 2).mean(axis=0))


def test_scene_metrics_are_the_out_of_fold_errors(scenes):
    result = scenes["result"]
    assert result.names == ["Kaolinite", "Muscovite", "Calcite", "Goethite", "Other"]
    # "Other" is the quartz the lab table does not list
    assert np.allclose(result.truth[:, 4], scenes["train"]["lab"][roi_pixels(scenes["train"])[2], 4], atol=1e-9)
    for label, A in result.oof.items():
        rmse = _rmse(A, result.truth)
        assert np.allclose([result.metrics[label][n]["rmse"] for n in result.names], rmse)
        assert np.isclose(result.metrics[label]["mean_rmse"], rmse.mean())
        assert np.abs(A.sum(axis=1) - 100).max() < 1e-6 and A.min() >= 0
    singles = [ab.FAMILY_LABELS[f] for f in result.families]
    best = min(result.metrics[s]["mean_rmse"] for s in singles)
    # the ensemble, scored with weights fitted without each fold, is as good as the best single model
    # (within 3 %: with 30 ROIs the weights themselves carry noise)
    assert result.metrics["Ensemble"]["mean_rmse"] <= 1.03 * best
    assert result.metrics["Ensemble"]["mean_rmse"] < 6.0  # % points, on compositions spanning 0-100 %
    # intervals: honest coverage on held-out ROIs near the nominal 90 %
    assert 0.85 <= result.coverage["all"] <= 0.95


def test_held_out_scene_closure_coverage_and_ensemble(scenes):
    model = abundance_map.AbundanceModel(scenes["model"])
    X, lab, ids = roi_pixels(scenes["test"])
    Y = ab.prepare_compositions(scenes["test"]["lab"][:, :4], LISTED).values[ids]
    A, lo, hi, members = model.predict(X, 0.9, members=True)
    assert np.abs(A.sum(axis=1) - 100).max() < 1e-4
    assert A.min() >= 0 and lo.min() >= 0 and hi.max() <= 100
    assert (lo <= A + 1e-9).all() and (A <= hi + 1e-9).all()
    coverage = ((Y >= lo) & (Y <= hi)).mean()
    assert 0.85 <= coverage <= 0.95
    ens = _rmse(A, Y).mean()
    best = min(_rmse(members[:, i], Y).mean() for i in range(members.shape[1]))
    assert ens <= 1.03 * best
    # wider intervals at a higher level
    lo99, hi99 = model.predict(X, 0.99)[1:]
    assert ((hi99 - lo99) >= (hi - lo) - 1e-9).all() and ((Y >= lo99) & (Y <= hi99)).mean() > coverage


def test_linear_unmixing_is_compared_on_the_same_folds(scenes):
    result = scenes["result"]
    assert {"Unmixing (FCLS)", "Unmixing (NN, closed)"} <= set(result.metrics)
    html = abundance_report.training_report(result)
    assert "Unmixing (FCLS)" in html and html.count("<svg") >= 6  # bar chart + 5 scatter plots
    assert f"{100 * result.coverage['all']:.1f}" in html


def test_unmixing_wins_on_purely_linear_data(tmp_path):
    """Linear mixtures without noise (only the +/- 10 % illumination): the scale-invariant unmixing mode,
    with endmembers estimated from the training ROIs, recovers the compositions nearly exactly."""
    scene = make_scene(str(tmp_path), n_rows=3, n_cols=4, roi_size=4, seed=7, noise=0.0, nonlinear=(0.0, 0.0),
                       concentration=1e6)
    X, lab, ids = roi_pixels(scene)
    result = ab.train_abundance_model(X, lab, ids, ["Kaolinite", "Muscovite", "Calcite", "Goethite", "Quartz"],
                                      families=["ridge"], n_folds=4, seed=0)
    assert result.metrics["Unmixing (NN, closed)"]["mean_rmse"] < 1.0


def test_bad_inputs():
    X = np.ones((10, 5), np.float32)
    Y = np.full((10, 2), 50.0)
    with pytest.raises(OreMapError) as err:
        ab.train_abundance_model(X, Y, np.repeat([0, 1], 5), ["A", "B"], families=["ridge"])
    assert "at least 3 ROIs" in err.value.message
    with pytest.raises(OreMapError) as err:
        ab.train_abundance_model(X, Y, np.arange(10), ["A", "B"], families=["magic"])
    assert err.value.parameter == "families"
    with pytest.raises(OreMapError):
        ab.train_abundance_model(X, np.full((10, 2), 40.0), np.arange(10), ["A", "B"], families=["ridge"])


# ---------------------------------------------------------------------------
# Through Processing
# ---------------------------------------------------------------------------
def test_algorithms_train_and_predict(run_alg, scenes, tmp_path):
    train, test = scenes["train"], scenes["test"]
    rois = train["rois"]  # layers by path: no QGIS layer object outlives the test
    out = run_alg("train_abundance_model", {
        "INPUT": train["raster"], "ROIS": rois, "FIELDS": [m.lower() for m in LISTED], "FAMILIES": [0, 1, 2],
        "FOLDS": 5, "SEED": 3, "OUTPUT_MODEL": str(tmp_path / "m.onnx"), "OUTPUT_REPORT": str(tmp_path / "r.html")})
    assert 0.8 <= out["COVERAGE"] <= 1.0
    assert out["ENSEMBLE_RMSE"] <= 1.03 * out["BEST_SINGLE_RMSE"] and out["ENSEMBLE_RMSE"] < 6.0
    assert np.isfinite(out["UNMIXING_RMSE"])
    info = abundance_map.AbundanceModel(out["OUTPUT_MODEL"]).info
    assert info.class_names == ["kaolinite", "muscovite", "calcite", "goethite", "Other"]
    # the scene's 224 AVIRIS bands less those in the water-vapour windows (dropped as bad bands)
    with rasterio.open(train["raster"]) as ds:
        centers = band_info_from_raster(ds).centers
    water = ((centers >= 1345) & (centers <= 1430)) | ((centers >= 1775) & (centers <= 1950))
    assert len(info.wavelengths) == 224 - water.sum() == 198 and info.training["n_rois"] == 30
    assert "Predicted vs measured" in open(out["OUTPUT_REPORT"], encoding="utf-8").read()

    zones = test["rois"]
    pred = run_alg("predict_abundance", {
        "INPUT": test["raster"], "MODEL_FILE": out["OUTPUT_MODEL"], "LEVEL": 80, "ZONES": zones, "ZONE_FIELD": "sample",
        "OUTPUT": str(tmp_path / "a.tif"), "OUTPUT_INTERVALS": str(tmp_path / "ci.tif"),
        "OUTPUT_DOMINANT": str(tmp_path / "dom.tif"), "OUTPUT_TABLE": str(tmp_path / "t.csv")})
    with rasterio.open(pred["OUTPUT"]) as ds:
        A = ds.read().astype(np.float64)
        assert list(ds.descriptions) == [f"{n} (%)" for n in info.class_names]
    with rasterio.open(pred["OUTPUT_INTERVALS"]) as ds:
        ci = ds.read().astype(np.float64)
        assert ds.descriptions[0] == "kaolinite lower 80%" and ds.descriptions[5] == "kaolinite upper 80%"
    with rasterio.open(pred["OUTPUT_DOMINANT"]) as ds:
        dom = ds.read(1)
    assert pred["VALID_PIXELS"] == A.shape[1] * A.shape[2]
    assert np.abs(A.sum(axis=0) - 100).max() < 1e-3 and A.min() >= 0
    assert (ci[:5] <= A + 1e-4).all() and (A <= ci[5:] + 1e-4).all() and ci.min() >= 0 and ci.max() <= 100
    assert (dom == A.argmax(axis=0) + 1).all()
    # same numbers as the model called directly
    model = abundance_map.AbundanceModel(out["OUTPUT_MODEL"])
    with rasterio.open(test["raster"]) as ds:
        cube = np.moveaxis(ds.read(), 0, -1).reshape(-1, 224)
    direct, lo, hi = model.predict(cube[:, ~water], 0.8)
    assert np.abs(direct.T.reshape(A.shape) - A).max() < 1e-3
    # the summary table: overall means, and zone S01 from the raster's pixels under that ROI
    rows = list(csv.DictReader(open(pred["OUTPUT_TABLE"], encoding="utf-8")))
    overall = {r["mineral"]: r for r in rows if r["zone"] == "all"}
    assert np.isclose(float(overall["calcite"]["mean_percent"]), A[2].mean(), rtol=1e-4)
    s01 = {r["mineral"]: r for r in rows if r["zone"] == "S01"}
    inside = test["roi_id"] == 0
    assert int(s01["goethite"]["pixels"]) == inside.sum()
    assert np.isclose(float(s01["goethite"]["mean_percent"]), A[3][inside].mean(), rtol=1e-4)
    # zones that cover no pixel (far from the scene): the table keeps the 'all' rows and the log says why
    import geopandas as gpd
    import processing
    from shapely.geometry import box

    from conftest import warning_recorder

    with rasterio.open(test["raster"]) as ds:
        left, bottom = ds.bounds.left - 1e5, ds.bounds.bottom - 1e5
        crs = ds.crs.to_wkt() if ds.crs else None
    far = str(tmp_path / "far.gpkg")
    gpd.GeoDataFrame({"sample": ["nowhere"]}, geometry=[box(left, bottom, left + 50, bottom + 50)],
                     crs=crs).to_file(far, driver="GPKG")
    feedback = warning_recorder()
    processing.run("oremap:predict_abundance", {
        "INPUT": test["raster"], "MODEL_FILE": out["OUTPUT_MODEL"], "ZONES": far, "ZONE_FIELD": "sample",
        "OUTPUT": str(tmp_path / "a2.tif"), "OUTPUT_TABLE": str(tmp_path / "t2.csv")}, feedback=feedback)
    assert any("None of the 1 zones covers a valid pixel" in w for w in feedback.warnings), feedback.warnings


def test_algorithm_errors_name_the_parameter(run_alg, scenes, tmp_path):
    from qgis.core import QgsProcessingException

    from conftest import ROOT

    rois = scenes["train"]["rois"]
    with pytest.raises(QgsProcessingException) as err:
        run_alg("train_abundance_model", {"INPUT": scenes["train"]["raster"], "ROIS": rois, "FIELDS": ["calcite"],
                                          "ADD_OTHER": False, "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
                                          "OUTPUT_REPORT": str(tmp_path / "r.html")})
    assert "(FIELDS)" in str(err.value) and "At least two parts" in str(err.value)
    assert not os.path.exists(tmp_path / "m.onnx")
    with pytest.raises(QgsProcessingException) as err:
        run_alg("predict_abundance", {"INPUT": scenes["test"]["raster"],
                                      "MODEL_FILE": os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx"),
                                      "OUTPUT": str(tmp_path / "a.tif")})
    assert "(MODEL_FILE)" in str(err.value) and "is a mineral classification model" in str(err.value) \
        and "not a mineral abundance model" in str(err.value) and "oremap:classify_spectral_cnn" in str(err.value)
    assert not os.path.exists(tmp_path / "a.tif")


def test_ilr_space_model_is_closed_and_calibrated(scenes, tmp_path):
    X, lab, ids = roi_pixels(scenes["train"])
    comp = scenes["comp"]
    result = ab.train_abundance_model(X, comp.values[ids], ids, comp.names, families=["pls", "ridge"], space="ilr",
                                      fcls=False, seed=1)
    path = str(tmp_path / "ilr.onnx")
    result.save(path)
    Xt, _, idt = roi_pixels(scenes["test"])
    Yt = ab.prepare_compositions(scenes["test"]["lab"][:, :4], LISTED).values[idt]
    A, lo, hi = abundance_map.AbundanceModel(path).predict(Xt, 0.9)
    assert np.abs(A.sum(axis=1) - 100).max() < 1e-4 and A.min() > 0  # log-ratios never give exact zeros
    assert (lo <= A).all() and (A <= hi).all()
    assert 0.8 <= ((Yt >= lo) & (Yt <= hi)).mean() <= 0.97
    assert 0.85 <= result.coverage["all"] <= 0.95
    # the ensemble's out-of-fold predictions are the inverse ilr of the stacked coordinates: closed rows
    assert np.allclose(result.oof["Ensemble"].sum(axis=1), 100.0)
