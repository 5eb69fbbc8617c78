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
from conftest import USGS_LIBRARY
from oremap.core.abundance import abundance as ab
from oremap.core.abundance import abundance_report
from oremap.core.abundance import abundance_map
from oremap.core.abundance import members as ab_members
from oremap.core.engine import onnx_ensemble
from oremap.core.engine.compositional import ilr_basis, ilr_inverse, project_simplex
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.wavelengths import band_info_from_raster
from oremap.core.hyperspectral.spectral_library import read_library

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
    assert [w for w in pct.warnings if "left out" not in w] == []  # 110 %: rounding or a lab's totals, not a unit mistake


def test_lab_tables_rounding_an_own_remainder_and_mixed_units():
    """Totals of 96-104 % on both sides of 100 are a lab's rounding: closed, no spurious 'Other' (it took 0.7 % and
    flattered the mean RMSE); a table's own 'Unclassified' column takes the remainder (a column 'Other' was refused,
    and renaming it made two); fractions among percentages are warned of; all-zero rows are named."""
    rounded = ab.prepare_compositions([[48.0, 49.0], [52.0, 51.0], [30.0, 70.0]], ["Kaolinite", "Quartz"])
    assert not rounded.other_added and rounded.names == ["Kaolinite", "Quartz"]
    np.testing.assert_allclose(rounded.values, [[4800 / 97, 4900 / 97], [5200 / 103, 5100 / 103], [30, 70]])
    assert any("read as rounding and closed to 100 %" in m for m in rounded.messages)
    own = ab.prepare_compositions([[40.0, 30.0, 10.0], [50.0, 45.0, 5.0]], ["Kaolinite", "Quartz", "Unclassified"])
    assert own.names == ["Kaolinite", "Quartz", "Unclassified"] and not own.other_added
    np.testing.assert_allclose(own.values, [[40, 30, 30], [50, 45, 5]])
    mixed = ab.prepare_compositions([[60.0, 40.0], [0.6, 0.4], [30.0, 70.0]], ["A", "B"])
    assert mixed.warnings == ["1 ROIs sum to at most 1.00 % while others reach 100 %: they look like fractions (0-1) "
                              "among percentages. Write them in per cent."]
    with pytest.raises(OreMapError) as err:
        ab.prepare_compositions([[60.0, 40.0], [0.0, 0.0]], ["A", "B"], add_other=False)
    assert err.value.message == "1 ROIs have every chosen mineral at zero (rows 2)."


def test_a_lab_tables_text_and_a_sample_split_in_parts(run_alg, tmp_path):
    """XRD tables write 'nd', 'tr', '<1' and decimal commas: read (six ROIs were left out with one line that named
    none); a sample split into two polygons is one cross-validation group (its halves validated each other)."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    from oremap.algorithms.base import abundance_number

    assert [abundance_number(v) for v in ("nd", "-", "tr", "<1", "12,5", " 7.5 ", None)][:6] == \
        [0.0, 0.0, 0.0, 0.5, 12.5, 7.5]
    scene = make_scene(str(tmp_path), n_rows=3, n_cols=4, roi_size=3, seed=5)
    rois = gpd.read_file(scene["rois"])
    fields = [m.lower() for m in LISTED]
    text = rois.copy()
    for f in fields:
        text[f] = [f"{v:g}".replace(".", ",") for v in rois[f]]
    text.loc[0, fields[0]], text.loc[1, fields[1]] = "nd", "tr"
    _, log = _train_logged(scene, text, fields, tmp_path / "text.gpkg")
    assert "108 pixels in 12 ROIs." in log.infos and not [w for w in log.warnings if "left out" in w]
    halves = []
    for _, row in rois.iterrows():
        x0, y0, x1, y1 = row.geometry.bounds
        for part in (box(x0, y0, (x0 + x1) / 2, y1), box((x0 + x1) / 2, y0, x1, y1)):
            halves.append({**row.drop("geometry").to_dict(), "geometry": part})
    out, log = _train_logged(scene, gpd.GeoDataFrame(pd.DataFrame(halves), crs=rois.crs), fields,
                             tmp_path / "halves.gpkg")
    assert ("24 ROIs hold 12 distinct compositions: the ROIs of one mixed composition (one sample split into parts, "
            "replicate points) stay on one side of every cross-validation split, as one group.") in log.infos
    training = abundance_map.AbundanceModel(out["OUTPUT_MODEL"]).info.training
    assert (training["n_rois"], training["n_groups"]) == (24, 12)   # ROIs counted as ROIs, groups as groups
    assert any(m.startswith("108 pixels from 24 ROIs in 12 groups (ROIs of one sample together)") for m in log.infos)


def _train_logged(scene, rois, fields, path, **params):
    """Write ``rois`` (a GeoDataFrame) to ``path`` and train on it quickly (ridge, 3 folds) with a recorder:
    ``(results, log)``."""
    import processing

    from conftest import warning_recorder

    rois.to_file(str(path), driver="GPKG")
    log = warning_recorder()
    out = processing.run("oremap:train_abundance_model", {
        "INPUT": scene["raster"], "ROIS": str(path), "FIELDS": fields, "FAMILIES": [1], "FOLDS": 3,
        "OUTPUT_MODEL": str(path)[:-5] + ".onnx", **params}, feedback=log)
    return out, log


def test_minerals_the_rois_hardly_sample_and_too_few_pixels_for_intervals(run_alg, tmp_path):
    """A mineral at 0 in every ROI flattered the mean RMSE and coverage, one in a single ROI cannot be
    cross-validated, and 5 point ROIs give 0-100 % intervals while the log said 100 % coverage: all said."""
    import geopandas as gpd

    scene = make_scene(str(tmp_path), n_rows=3, n_cols=4, roi_size=3, seed=5)
    rois = gpd.read_file(scene["rois"])
    fields = [m.lower() for m in LISTED]
    rois["pyrite"] = 0.0
    rois["gypsum"] = 0.0
    rois.loc[3, "gypsum"] = 8.0
    _, log = _train_logged(scene, rois, fields + ["pyrite", "gypsum"], tmp_path / "sparse.gpkg")
    assert ("Minerals the ROIs hardly sample: absent from every ROI: pyrite (predicted 0 everywhere; its figures "
            "flatter the means); in one ROI only: gypsum (cross-validation cannot test it). Leave them out of FIELDS "
            "or add ROIs holding them.") in log.warnings
    # 12 ROIs give the model 90 % intervals, but each of 3 folds is checked with the 8 ROIs outside it
    assert ("In 3 of 3 folds fewer than 9 ROIs were left to calibrate the held-out ROIs' 90 % intervals: those were "
            "0-100 %, so the coverage above overstates the model's (add ROIs to check it).") in log.warnings
    points = rois.iloc[:5].copy()
    points["geometry"] = points.geometry.centroid
    _, log = _train_logged(scene, points, fields, tmp_path / "five.gpkg")
    assert ("Too few ROIs to calibrate 90 % intervals: the pixels of one ROI share its lab composition, so the ROIs, "
            "not the pixels, are the calibration units, and a conformal interval at that level needs at least 9 ROIs "
            "(5 here). Every interval is 0-100 %. Add ROIs, or lower the level to at most 83 %. The coverage above "
            "says nothing.") in log.warnings


def test_a_unit_the_values_contradict_is_refused_or_warned():
    """Percent data declared as fractions (sums up to 9990 %) is refused naming UNITS; fractions declared as
    percent (the minerals would cover 1 % of the ROIs, 'Other' the rest) are trained with a warning; sums far
    beyond 100 % under Percent are warned, not only logged."""
    with pytest.raises(OreMapError) as err:
        ab.prepare_compositions([[10.8, 20.0], [30.0, 50.0]], ["A", "B"], units="fraction")
    assert err.value.parameter == "units" and "up to 80" in err.value.message and "Percent" in err.value.fix
    assert ab.prepare_compositions([[0.5, 0.52]], ["A", "B"], units="fraction").warnings == []  # 1.02: rounding
    low = ab.prepare_compositions([[0.2, 0.3], [0.5, 0.5]], ["A", "B"], units="percent")
    assert low.names == ["A", "B", "Other"] and low.values[1].tolist() == pytest.approx([0.5, 0.5, 99.0])
    assert low.warnings == ["The abundances were read as percentages, but no value exceeds 1 (the chosen minerals "
                            "cover at most 1.00 % of any ROI): if they are fractions (0-1), choose Fractions or "
                            "Detect."]
    assert low.warnings[0] in low.messages  # in the report's notes too
    detected = ab.prepare_compositions([[0.6, 0.55], [0.5, 0.5]], ["A", "B"], units="auto")
    assert detected.units == "percent" and detected.warnings[0].endswith("choose Fractions.")
    # detected as fractions, but the minerals cover under half of every ROI: per cents of minor minerals?
    minor = ab.prepare_compositions([[0.2, 0.1], [0.1, 0.15]], ["A", "B"], units="auto")
    assert minor.units == "fraction" and minor.warnings == [
        "The abundances were read as fractions (no value exceeds 1), but the chosen minerals cover at most 30 % of "
        "any ROI: if they are percentages, choose Percent."]
    assert ab.prepare_compositions([[0.2, 0.3], [0.5, 0.5]], ["A", "B"]).warnings == []
    with pytest.raises(OreMapError) as err:  # a fraction above 1 is no fraction
        ab.prepare_compositions([[1.3, 0.1]], ["A", "B"], units="fraction")
    assert err.value.parameter == "units" and "reach 1.3" in err.value.message
    twice = ab.prepare_compositions([[60.0, 90.0], [40.0, 60.0]], ["A", "B"], units="percent")
    assert twice.warnings == ["1 ROIs sum to more than 100 % (up to 150.0 %); they were closed to 100 %. Check the "
                              "unit and that no field is counted twice."]


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


def test_conformal_quantile_counts_each_roi_once():
    """Every pixel of an ROI carries its one lab composition, so the residuals of an ROI go together and n pixels
    are not n exchangeable calibration scores: 3 ROIs of 60 pixels gave 90 % intervals that held 77 % of new ROIs'
    pixels. The ROIs are the units: each weighs one, a level needs conformal_minimum ROIs, one pixel per ROI is the
    plain split-conformal rank."""
    three = np.repeat([1.0, 2.0, 3.0], 60)
    assert ab.conformal_quantile(three, 0.9) == 3.0   # the 163rd of 180 pixels
    assert ab.conformal_quantile(three, 0.9, np.repeat([0, 1, 2], 60)) == np.inf   # 9 ROIs needed for 90 %
    # pooled weight 1/3, 2/3 reaches 0.5 x 4/3: the 2nd ROI, as the 2nd of 3 single scores
    assert ab.conformal_quantile(three, 0.5, np.repeat([0, 1, 2], 60)) == 2.0 == ab.conformal_quantile([1, 2, 3], 0.5)
    # one big ROI of 100 pixels at 1 and nine one-pixel ROIs at 2..10: pixel-wise the big one is the quantile; ROI-wise
    # it weighs 1/10 and 90 % needs weight 0.9 x 11/10 = 0.99 (the 10th ROI), 80 % 0.88 (the 9th)
    scores, groups = np.r_[np.ones(100), np.arange(2.0, 11.0)], np.r_[np.zeros(100), np.arange(1, 10)]
    assert ab.conformal_quantile(scores, 0.9) == 1.0 and ab.conformal_quantile(scores, 0.9, groups) == 10.0
    assert ab.conformal_quantile(scores, 0.8, groups) == 9.0
    # one score per ROI: the rank ceil((n + 1) level), whatever the order or level
    rng = np.random.default_rng(0)
    for n, level in [(9, 0.9), (10, 0.9), (37, 0.95), (200, 0.8), (19, 0.95), (3, 0.5)]:
        x = rng.random(n)
        assert ab.conformal_quantile(x, level, rng.permutation(n)) == ab.conformal_quantile(x, level)
    # a new ROI's pixels inside the interval, when ROIs differ more than their pixels: with 4 ROIs of 30 pixels the
    # pixel-wise quantile held about 83 % (the ROI-wise one makes no promise: 0-100 %); with 10 or 20 ROIs the
    # ROI-wise quantile holds at least 90 % on average (a guarantee for exchangeable ROIs)
    rng = np.random.default_rng(0)
    for k in (4, 10, 20):
        old, new = [], []
        for _ in range(1000):
            s = np.abs(rng.standard_normal((k + 1, 1)) + 0.2 * rng.standard_normal((k + 1, 30)))
            old.append((s[k] <= ab.conformal_quantile(s[:k].ravel(), 0.9)).mean())
            new.append((s[k] <= ab.conformal_quantile(s[:k].ravel(), 0.9, np.repeat(np.arange(k), 30))).mean())
        if k == 4:
            assert np.mean(old) < 0.86 and np.mean(new) == 1.0, np.mean(old)
        else:
            assert np.mean(new) >= 0.9, (k, np.mean(new))


def test_few_rois_give_0_100_intervals_with_warnings(tmp_path):
    """4 ROIs of 9 pixels: 36 pixels made 90 % intervals finite (they held about 83 % of new ROIs' pixels). The ROIs
    are the calibration units: 90 % needs 9, so the intervals are 0-100 % and the report says why; a prediction at a
    level the model cannot give warns (it wrote 0-100 % silently), naming the ROIs needed and the levels that work."""
    scene = make_scene(str(tmp_path), n_rows=2, n_cols=2, roi_size=3, seed=3)
    X, lab, ids = roi_pixels(scene)
    result = ab.train_abundance_model(X, lab, ids, ["Kaolinite", "Muscovite", "Calcite", "Goethite", "Quartz"],
                                      families=["ridge"], n_folds=4, fcls=False, seed=0)
    assert np.isinf(result.quantiles).all() and result.coverage["all"] == 1.0
    warning = ("Too few ROIs to calibrate 90 % intervals: the pixels of one ROI share its lab composition, so the "
               "ROIs, not the pixels, are the calibration units, and a conformal interval at that level needs at least "
               "9 ROIs (4 here). Every interval is 0-100 %. Add ROIs, or lower the level to at most 80 %.")
    assert ab.calibration_warning(4, 0.9) == warning and ab.calibration_warning(9, 0.9) is None
    assert warning in abundance_report.training_report(result)
    path = str(tmp_path / "four.onnx")
    result.save(path)
    model = abundance_map.AbundanceModel(path)
    assert model.n_calibration == 4 and model.grouped
    _, lo, hi = model.predict(X, 0.9)
    assert (lo == 0).all() and (hi == 100).all()
    _, lo, hi = model.predict(X, 0.8)   # 4 ROIs: 80 % is the highest level with a finite quantile
    assert (hi - lo).max() < 100

    from conftest import core_warnings

    log = core_warnings()
    abundance_map.predict_abundance_map(scene["raster"], path, str(tmp_path / "a.tif"), str(tmp_path / "i.tif"),
                                        level=0.95, feedback=log)
    assert log.warnings == [warning.replace("90 %", "95 %").replace("least 9 ROIs", "least 19 ROIs")]
    with rasterio.open(str(tmp_path / "i.tif")) as ds:
        bounds = ds.read()
        valid = bounds[0] != ds.nodata
        assert (bounds[:5, valid] == 0).all() and (bounds[5:, valid] == 100).all()
    log.warnings.clear()
    abundance_map.predict_abundance_map(scene["raster"], path, str(tmp_path / "b.tif"), level=0.8, feedback=log)
    assert log.warnings == []
    # a model saved before ROIs counted once (its n_calibration counts pixels) keeps its pixel-wise reading
    model.grouped, model.n_calibration = False, 36
    assert np.isfinite(model.quantiles(0.9)).all() and model.calibration_warning(0.99).startswith(
        "Too few calibration pixels to calibrate 99 % intervals: a conformal interval at that level needs at least 99 "
        "calibration pixels (36 here).")


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


def test_pls_member_exports_without_the_coef_future_warning():
    """The PLS member is converted by OreMap (``predict`` only), not skl2onnx (which reads the deprecated
    ``coef_``: a FutureWarning in the user's log). On exactly linear data with as many components as bands,
    PLS is least squares: the ONNX graph gives X @ B + c."""
    import warnings

    import onnxruntime as ort

    rng = np.random.default_rng(3)
    X = rng.uniform(0.1, 0.6, (40, 4))
    B = np.array([[10.0, -5.0], [0.0, 20.0], [30.0, 5.0], [-10.0, 0.0]])
    c = np.array([40.0, 30.0])
    member = ab_members.make_member("pls", 40, 4, 2, options={"n_components": 4}).fit(X.astype(np.float32), X @ B + c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        graph = ab_members.member_onnx("pls", member, 4)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x0 = np.array([[0.2, 0.4, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0]], np.float32)
    # row 1: 2 + 0 + 9 - 5 + 40 = 46, -1 + 8 + 1.5 + 0 + 30 = 38.5; row 2: the intercept
    assert np.allclose(session.run(None, {"X": x0})[0], [[46.0, 38.5], [40.0, 30.0]], atol=1e-3)
    # a whole training with the PLS member: no FutureWarning either
    scene_X = rng.uniform(0.1, 0.6, (60, 6)).astype(np.float32)
    groups = np.repeat(np.arange(6), 10)
    a = scene_X[:, 0].astype(np.float64) * 50 + 20
    Y = np.column_stack([a, 100 - a])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        result = ab.train_abundance_model(scene_X, Y, groups, ["A", "B"], families=["pls"], n_folds=3, fcls=False,
                                          seed=0)
    assert result.metrics["PLS regression"]["mean_rmse"] < 0.1


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
# Pixels under two ROIs (or two class polygons)
# ---------------------------------------------------------------------------
def _grid_raster(path, rows=4, cols=6):
    """One band, pixel (r, c) = 10 r + c; 1 m pixels, the top-left corner at (0, rows)."""
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                       crs="EPSG:32611", transform=Affine(1.0, 0, 0, 0, -1.0, rows)) as ds:
        ds.write((10.0 * np.arange(rows)[:, None] + np.arange(cols)[None, :]).astype(np.float32)[None])
    return path


def _cells(c0, c1, r0, r1, rows=4):
    """A box over the centres of columns c0..c1, rows r0..r1 of :func:`_grid_raster`."""
    from shapely.geometry import box

    return box(c0 + 0.25, rows - r1 - 0.75, c1 + 0.75, rows - r0 - 0.25)


def test_pixels_in_two_rois_are_left_out_and_named(tmp_path):
    from oremap.core.engine.raster import RasterSource
    from oremap.core.engine.sampling import labelled_pixels

    path = _grid_raster(str(tmp_path / "grid.tif"))
    rois = [_cells(0, 2, 0, 1),   # R0: columns 0-2, rows 0-1
            _cells(2, 3, 0, 1),   # R1: columns 2-3, rows 0-1: shares column 2 (pixels 2, 12) with R0
            _cells(5, 5, 0, 3),   # R2: column 5
            _cells(5, 5, 1, 2),   # R3: inside R2: every pixel shared
            _cells(0, 1, 3, 3)]   # R4: alone
    with RasterSource(path) as src:
        out = labelled_pixels(src, rois, np.arange(5))
    got = sorted(zip(out.values[:, 0].astype(int).tolist(), out.groups.tolist()))
    assert got == [(0, 0), (1, 0), (3, 1), (5, 2), (10, 0), (11, 0), (13, 1), (30, 4), (31, 4), (35, 2)]
    assert out.overlaps.n_ambiguous == 4 and out.overlaps.groups == {(0, 1): 2, (2, 3): 2}
    assert out.overlaps.emptied == [3] and out.covering.tolist() == [0, 1, 2, 3, 4]
    warnings, infos = out.overlaps.messages(["S01", "S02", "S03", "S04", "S05"], noun="ROIs", what="composition",
                                            each_own=True)
    assert warnings == [
        "4 pixels lie in more than one of the ROIs and were left out (their composition is ambiguous): "
        "S01 and S02 (2 pixels); S03 and S04 (2 pixels). Make the ROIs disjoint to keep them.",
        "1 of the ROIs lost every pixel to overlaps and was left out: S04."] and infos == []


def test_class_polygons_overlapping_keep_same_class_pixels_once(tmp_path):
    """The same sampling serves oremap:train_spectral_cnn: a pixel under polygons of two classes is left out,
    under two polygons of one class it is used once (for the first polygon)."""
    from conftest import core_warnings
    from oremap.core.engine.raster import RasterSource
    from oremap.core.engine.sampling import training_pixels
    from oremap.core.hyperspectral.training import image_training_set

    path = _grid_raster(str(tmp_path / "grid.tif"))
    polygons = [_cells(0, 2, 0, 0),   # "clay": pixels 0, 1, 2
                _cells(2, 3, 0, 0),   # "calcite": pixels 2, 3 (2 is ambiguous)
                _cells(1, 1, 0, 1),   # "clay" again: pixels 1 (already clay: used once) and 11
                _cells(4, 4, 2, 2)]   # "calcite": pixel 24
    labels = ["clay", "calcite", "clay", "calcite"]
    log = core_warnings()
    with RasterSource(path) as src:
        X, y, groups = training_pixels(src, polygons, labels, feedback=log, names=["a", "b", "c", "d"])
    got = sorted(zip(X[:, 0].astype(int).tolist(), y.tolist(), groups.tolist()))
    assert got == [(0, "clay", 0), (1, "clay", 0), (3, "calcite", 1), (11, "clay", 2), (24, "calcite", 3)]
    assert log.warnings == ["1 pixel lies in features of different classes and was left out (their class is "
                            "ambiguous): a and b (1 pixel). Make the features disjoint to keep them."]
    assert log.infos == ["1 pixel lies in several features of the same class: each is used once."]
    with RasterSource(path) as src:
        data = image_training_set(src, polygons, labels)
    assert data.class_names == ["calcite", "clay"]
    assert sorted(zip(data.X[:, 0].astype(int).tolist(), data.y.tolist())) == [(0, 1), (1, 1), (3, 0), (11, 1),
                                                                                (24, 0)]
    # features off the raster (a wrong CRS or extent) are said, with their names; they were dropped silently
    log = core_warnings()
    from shapely.geometry import Point, box

    with RasterSource(path) as src:
        X, y, groups = training_pixels(src, polygons + [_cells(50, 51, 0, 0), Point(100000.5, 0.5)],
                                       labels + ["clay", "calcite"], feedback=log, names=list("abcdef"))
    assert y.size == 5 and log.warnings[-1] == (
        "2 of 6 training features cover no valid pixel of the raster and are left out (e, f): they lie outside it "
        "or on nodata. Check the layer's CRS and extent if they should be on it.")
    # a polygon inside one pixel, away from its centre: said as smaller than a pixel, not as off the raster
    tiny = box(5.05, 2.05, 5.15, 2.15)
    log = core_warnings()
    with RasterSource(path) as src:
        X, y, groups = training_pixels(src, polygons + [tiny], labels + ["clay"], feedback=log, names=list("abcde"))
    assert y.size == 5 and log.warnings[-1] == (
        "1 of 5 training features lie on the raster but cover no pixel centre (smaller than a pixel) and are left "
        "out (e): use points or larger polygons for them.")
    log = core_warnings()   # a polygon over a nodata pixel is on nodata, not smaller than a pixel
    with RasterSource(path, nodata=12.0) as src:
        training_pixels(src, polygons + [_cells(2, 2, 1, 1)], labels + ["clay"], feedback=log, names=list("abcde"))
    assert log.warnings[-1].startswith("1 of 5 training features cover no valid pixel of the raster and are left "
                                       "out (e): they lie outside it or on nodata.")
    with RasterSource(path) as src, pytest.raises(OreMapError) as err:
        training_pixels(src, [tiny], ["clay"])
    assert err.value.message.startswith("No training pixel: the 1 training polygons lie on the raster but cover no "
                                        "pixel centre")
    # every pixel ambiguous: an error, not an empty training set
    with RasterSource(path) as src, pytest.raises(OreMapError) as err:
        training_pixels(src, [_cells(0, 1, 0, 0), _cells(0, 1, 0, 0)], ["clay", "calcite"])
    assert "more than one of them" in err.value.message and err.value.parameter == "training"


def test_training_algorithm_leaves_out_pixels_of_overlapping_rois(run_alg, tmp_path):
    import geopandas as gpd
    import pandas as pd
    import processing
    from shapely.geometry import box

    from conftest import warning_recorder

    scene = make_scene(str(tmp_path), n_rows=3, n_cols=4, roi_size=3, seed=5)  # 12 ROIs of 3 x 3 pixels, gaps of 2
    rois = gpd.read_file(scene["rois"])
    # S01 reaches 3 pixels further right: over the 2-pixel gap and S02's first column (3 pixels shared)
    g = rois.geometry[0]
    rois.loc[0, "geometry"] = box(g.bounds[0], g.bounds[1], g.bounds[2] + 1.5, g.bounds[3])  # 0.5 m pixels
    # S13 lies inside S03: all its 4 pixels shared
    g = rois.geometry[2]
    extra = rois.iloc[[2]].copy()
    extra["sample"] = "S13"
    extra["geometry"] = [box(g.bounds[0], g.bounds[1], g.bounds[0] + 1.0, g.bounds[1] + 1.0)]
    rois = gpd.GeoDataFrame(pd.concat([rois, extra], ignore_index=True), crs=rois.crs)
    path = str(tmp_path / "overlapping.gpkg")
    rois.to_file(path, driver="GPKG")
    log = warning_recorder()
    out = processing.run("oremap:train_abundance_model", {
        "INPUT": scene["raster"], "ROIS": path, "FIELDS": [m.lower() for m in LISTED], "FAMILIES": [1], "FOLDS": 3,
        "OUTPUT_MODEL": str(tmp_path / "m.onnx")}, feedback=log)
    assert "7 pixels lie in more than one of the ROIs and were left out (their composition is ambiguous): " \
           "S03 and S13 (4 pixels); S01 and S02 (3 pixels). Make the ROIs disjoint to keep them." in log.warnings
    assert "1 of the ROIs lost every pixel to overlaps and was left out: S13." in log.warnings
    # 12 x 9 ROI pixels + the 6 gap pixels S01 now covers, less the 7 shared ones; S13 is gone
    assert "107 pixels in 12 ROIs." in log.infos
    # progress runs once from 0 to 100 (the pixel sampling ran its own 0-100 before training started over)
    assert log.progress[-1] == 100.0 and all(b >= a for a, b in zip(log.progress, log.progress[1:]))
    training = abundance_map.AbundanceModel(out["OUTPUT_MODEL"]).info.training
    assert training["n_samples"] == 107 and training["n_rois"] == 12


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


def test_zone_statistics_by_hand(tmp_path):
    """Per-zone rows hold every column of the whole-raster rows: on a 3 x 4 raster of 2 m pixels (4 m2) the
    answers are counted by hand."""
    from affine import Affine
    from shapely.geometry import box

    nd = -9999.0
    A = np.array([[70, 60, 20, 10], [80, 40, 30, 55], [90, 10, 25, nd]], np.float32)
    B = np.where(A == nd, nd, 100 - A).astype(np.float32)
    wA = np.array([[10, 12, 2, 4], [14, 16, 6, 8], [0, 0, 10, nd]], np.float32)
    wB = np.array([[4, 4, 1, 1], [4, 8, 1, 1], [0, 0, 6, nd]], np.float32)
    profile = dict(driver="GTiff", width=4, height=3, dtype="float32", crs="EPSG:32611", nodata=nd,
                   transform=Affine(2.0, 0, 0, 0, -2.0, 6.0))
    abundance_path, interval_path = str(tmp_path / "a.tif"), str(tmp_path / "ci.tif")
    with rasterio.open(abundance_path, "w", count=2, **profile) as ds:
        ds.write(np.stack([A, B]))
    low = lambda X: np.where(X == nd, nd, X - 1)  # noqa: E731
    with rasterio.open(interval_path, "w", count=4, **profile) as ds:
        ds.write(np.stack([low(A), low(B), np.where(A == nd, nd, A - 1 + wA), np.where(B == nd, nd, B - 1 + wB)]))
    zones = [box(0.5, 2.5, 3.5, 5.5),   # Z1: columns 0-1, rows 0-1
             box(4.5, 0.5, 7.5, 5.5),   # Z2: columns 2-3, rows 0-2 (one nodata pixel)
             box(2.5, 2.5, 5.5, 5.5),   # Z3: columns 1-2, rows 0-1 (overlaps Z1 and Z2: counted in each)
             box(100, 100, 101, 101)]   # far: no pixel
    rows = abundance_map.zone_statistics(abundance_path, zones, ["Z1", "Z2", "Z3", "far"], ["A", "B"],
                                         interval_path=interval_path)
    got = {(r["zone"], r["mineral"]): r for r in rows}
    assert list(rows[0]) == ["zone", "pixels", "mineral", "mean_percent", "sd_percent", "area_share_percent",
                             "dominant_share_percent", "dominant_area", "mean_interval_width"]
    expected = {  # pixels, mean, sd, dominant share, dominant area (m2), mean interval width
        ("Z1", "A"): (4, 62.5, np.sqrt(218.75), 75.0, 12.0, 13.0),  # sd: squares 56.25 6.25 306.25 506.25 / 4
        ("Z1", "B"): (4, 37.5, np.sqrt(218.75), 25.0, 4.0, 5.0),
        ("Z2", "A"): (5, 28.0, np.std([20, 10, 30, 55, 25]), 20.0, 4.0, 6.0),
        ("Z2", "B"): (5, 72.0, np.std([20, 10, 30, 55, 25]), 80.0, 16.0, 2.0),
        ("Z3", "A"): (4, 37.5, np.std([60, 20, 40, 30]), 25.0, 4.0, 9.0),
        ("Z3", "B"): (4, 62.5, np.std([60, 20, 40, 30]), 75.0, 12.0, 3.5)}
    for key, (n, mean, sd, share, area, width) in expected.items():
        r = got[key]
        assert r["pixels"] == n and r["mean_percent"] == pytest.approx(mean)
        assert r["area_share_percent"] == pytest.approx(mean) and r["sd_percent"] == pytest.approx(sd)
        assert r["dominant_share_percent"] == pytest.approx(share) and r["dominant_area"] == pytest.approx(area)
        assert r["mean_interval_width"] == pytest.approx(width), key
    far = got[("far", "A")]
    assert far["pixels"] == 0 and far["dominant_area"] == 0.0 and np.isnan(far["mean_percent"]) \
        and np.isnan(far["mean_interval_width"])
    # without the interval raster: the same rows, the width unknown
    rows = abundance_map.zone_statistics(abundance_path, zones, ["Z1", "Z2", "Z3", "far"], ["A", "B"])
    assert rows[0]["dominant_area"] == pytest.approx(12.0) and all(np.isnan(r["mean_interval_width"]) for r in rows)


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
    rows = list(csv.DictReader(open(pred["OUTPUT_TABLE"], encoding="utf-8-sig")))
    overall = {r["mineral"]: r for r in rows if r["zone"] == "all"}
    assert np.isclose(float(overall["calcite"]["mean_percent"]), A[2].mean(), rtol=1e-4)
    s01 = {r["mineral"]: r for r in rows if r["zone"] == "S01"}
    inside = test["roi_id"] == 0
    assert int(s01["goethite"]["pixels"]) == inside.sum()
    assert np.isclose(float(s01["goethite"]["mean_percent"]), A[3][inside].mean(), rtol=1e-4)
    # ... with the interval width and the dominant area as in the 'all' rows (0.5 m pixels: 0.25 m2), not NaN
    assert np.isclose(float(s01["goethite"]["mean_interval_width"]), (ci[8] - ci[3])[inside].mean(), rtol=1e-4)
    for j, mineral in enumerate(info.class_names):
        assert float(s01[mineral]["dominant_area"]) == pytest.approx(0.25 * (dom[inside] == j + 1).sum(), rel=1e-5)
        assert float(overall[mineral]["dominant_area"]) == pytest.approx(0.25 * (dom == j + 1).sum(), rel=1e-5)
    assert np.isclose(float(overall["goethite"]["mean_interval_width"]), (ci[8] - ci[3]).mean(), rtol=1e-4)
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


def test_ilr_targets_of_pure_minerals_stay_pure(tmp_path):
    """A table of whole per cents put a zero at 0.65 x its smallest value (30 %): a pure mineral's target became
    61 / 19.5 / 19.5 % and an ILR model predicted about 76 % for its own noise-free spectrum. Zeros are now 0.65 %
    (below a 1 % detection limit). Kaolinite, calcite and goethite of the USGS library, mixed linearly."""
    library = read_library(USGS_LIBRARY)
    names = ["Kaolinite CM9", "Calcite WS272", "Goethite WS222"]
    E = library.subset(names).spectra
    parts = np.array([[100, 0, 0], [0, 100, 0], [0, 0, 100], [50, 50, 0], [30, 30, 40], [0, 50, 50], [50, 0, 50],
                      [20, 40, 40]], float)
    targets = ab._to_targets(parts, "ilr")
    np.testing.assert_allclose(ilr_inverse(targets, 100.0)[0], [98.7, 0.65, 0.65])
    ids = np.repeat(np.arange(len(parts)), 20)
    X = (parts[ids] / 100) @ E + 0.003 * np.random.default_rng(0).standard_normal((ids.size, E.shape[1]))
    result = ab.train_abundance_model(X, parts[ids], ids, names, families=["ridge"], n_folds=4, space="ilr",
                                      fcls=False, seed=0)
    path = str(tmp_path / "ilr.onnx")
    result.save(path)
    model = abundance_map.AbundanceModel(path)
    A, lo, hi = model.predict(E, 0.85)   # 8 ROIs: 90 % would need 9
    assert np.diag(A).min() > 98.0 and np.diag(A).max() < 99.5   # 76 % before; 98.7 % is the target itself
    assert (lo <= A).all() and (A <= hi).all() and (hi - lo).max() < 100
    # too few calibration pixels for the level: no finite conformal quantile, as in training (it took the largest
    # score instead, a narrower interval than the training report's)
    model.n_calibration = 5
    assert np.isinf(model.quantiles(0.9)).all() and np.isfinite(model.quantiles(0.8)).all()
    A5, lo5, hi5 = model.predict(E, 0.9)
    assert (lo5 == 0).all() and (hi5 == 100).all() and np.array_equal(A5, A)


def test_the_help_gives_the_ilr_target_of_a_pure_mineral():
    """The SPACE help said a pure mineral is predicted 'near 99 %' in log-ratio space; its target is
    100 - 0.65 (k - 1) %: 98.7 % with 3 parts, 97.4 % with 5 (the usual 4 minerals and Other), 94.2 % with 10."""
    from oremap.algorithms.train_abundance_model import TrainAbundanceModel

    text = TrainAbundanceModel.PARAM_HELP["SPACE"]
    assert "100 - 0.65 (k - 1) %" in text
    for k in (3, 5, 10):
        pure = np.zeros((1, k))
        pure[0, 0] = 100.0
        target = ilr_inverse(ab._to_targets(pure, "ilr"), 100.0)[0, 0]
        assert target == pytest.approx(100 - 0.65 * (k - 1)) and f"{target:.1f} % with {k}" in text


def test_the_summary_table_leaves_missing_values_empty(tmp_path):
    """The help says a skipped column is empty in the zone rows: NaN and None are written as empty cells."""
    from oremap.core.abundance import abundance_report

    path = str(tmp_path / "t.csv")
    abundance_report.write_table_csv(path, [
        {"zone": "all", "mineral": "kaolinite", "mean_percent": 10.37231, "mean_interval_width": 4.5},
        {"zone": "S01", "mineral": "kaolinite", "mean_percent": 9.5, "mean_interval_width": float("nan")},
        {"zone": "S02", "mineral": "kaolinite", "mean_percent": None, "mean_interval_width": np.float64("nan")}])
    assert open(path, encoding="utf-8-sig").read() == ("zone,mineral,mean_percent,mean_interval_width\n"
                                                   "all,kaolinite,10.3723,4.5\nS01,kaolinite,9.5,\nS02,kaolinite,,\n")


def test_rois_left_out_for_a_missing_value_are_named_once():
    """An ROI with an empty cell is left out, named in one warning (also a report note) with the fix; core no longer
    says it a second time in other words."""
    values = [[60.0, 40.0], [np.nan, 50.0], [70.0, 30.0], [55.0, np.nan]]
    comp = ab.prepare_compositions(values, ["Kaolinite", "Alunite"], row_names=["S01", "S02", "S03", "S04"])
    assert comp.kept.tolist() == [True, False, True, False]
    expected = ("2 ROIs lack a value for some chosen mineral and are left out: S02, S04. An empty cell reads as "
                "'not measured': write 0 (or 'nd') where a mineral was looked for and not found.")
    assert comp.warnings == [expected]
    assert [m for m in comp.messages if "left out" in m] == [expected]


def test_pixels_without_a_finite_prediction_are_nodata_and_out_of_the_statistics(scenes, tmp_path, monkeypatch):
    """A prediction that is not finite (a spectrum far outside anything the model saw) went into the rasters as NaN
    and made every mean of the scene's table NaN. Such pixels are now nodata in every output, out of the
    statistics, and counted in a warning."""
    from conftest import core_warnings

    original = abundance_map.AbundanceModel.predict

    def spoiled(self, X, level, **kw):
        A, lo, hi = original(self, X, level, **kw)
        A = A.copy()
        A[::97] = np.nan     # every 97th pixel of each block
        return A, lo, hi

    monkeypatch.setattr(abundance_map.AbundanceModel, "predict", spoiled)
    log = core_warnings()
    out = [str(tmp_path / n) for n in ("a.tif", "i.tif", "d.tif")]
    stats = abundance_map.predict_abundance_map(scenes["test"]["raster"], scenes["model"], *out, feedback=log)
    with rasterio.open(out[0]) as a, rasterio.open(out[1]) as i, rasterio.open(out[2]) as d:
        A, ci, dom = a.read(), i.read(), d.read(1)
        dom_nodata = d.nodata
    bad = (A == -9999.0).all(axis=0)
    assert bad.sum() > 0 and np.isfinite(A).all()
    assert (ci[:, bad] == -9999.0).all() and (dom[bad] == dom_nodata).all() and (dom[~bad] != dom_nodata).all()
    assert all(np.isfinite(row["mean_percent"]) for row in stats["table"])
    assert np.isclose(stats["table"][2]["mean_percent"], A[2][~bad].mean(), rtol=1e-4)
    assert log.warnings == [f"{int(bad.sum())} pixels gave no finite abundance (spectra far outside any reflectance "
                            "the model saw): nodata in every output and left out of the statistics."]


def test_a_model_without_wavelengths_finds_its_bands_by_name(tmp_path):
    """A model trained on a raster without wavelengths records its band names ('Band 1: Blue', as QGIS names them),
    but was given the raster's bands by position: the same six bands stored NIR, SWIR1, SWIR2, Blue, Green, Red gave
    other abundances, without a word (up to 100 points). Named bands are now found by name, in any order; a band
    of another name is refused; bands without names are read in order, and the log says so."""
    from affine import Affine
    from conftest import core_warnings

    from oremap.core.hyperspectral.mapping import model_input

    names = ["Blue", "Green", "Red", "NIR", "SWIR1", "SWIR2"]
    rng = np.random.default_rng(4)
    members = np.array([[0.05, 0.08, 0.10, 0.45, 0.30, 0.20], [0.20, 0.25, 0.30, 0.35, 0.40, 0.38],
                        [0.10, 0.12, 0.20, 0.25, 0.15, 0.08]])
    comps = rng.dirichlet(np.ones(3), 25) * 100.0                 # 25 ROIs of 2 x 2 pixels on a 10 x 10 raster
    rows, cols = np.mgrid[0:10, 0:10]
    roi = ((rows // 2) * 5 + cols // 2).ravel()
    X = (comps[roi] @ members / 100.0 + rng.normal(0.0, 0.002, (100, 6))).astype(np.float32)
    result = ab.train_abundance_model(X, comps[roi], roi, ["A", "B", "C"], band_names=[
        f"Band {i}: {n}" for i, n in enumerate(names, start=1)], families=["ridge"], n_folds=3, fcls=False, seed=0)
    model_path = str(tmp_path / "named.onnx")
    result.save(model_path)
    model = abundance_map.AbundanceModel(model_path)
    assert model.info.wavelengths is None

    def raster(name, order, descriptions):
        path = str(tmp_path / name)
        with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=6, dtype="float32", crs="EPSG:32633",
                           transform=Affine(10, 0, 500000, 0, -10, 4000000)) as ds:
            ds.write(X.T.reshape(6, 10, 10)[order])
            for b, text in enumerate(descriptions, start=1):
                ds.set_band_description(b, text)
        return path

    def predict(path, log):
        bands, matrix = model_input(path, model.info, None, log)
        out = str(tmp_path / ("A_" + os.path.basename(path)))
        abundance_map.predict_abundance_map(path, model_path, out, image_bands=bands, resampler=matrix, feedback=log)
        with rasterio.open(out) as ds:
            return bands, ds.read()

    order = [3, 4, 5, 0, 1, 2]
    same = raster("same.tif", list(range(6)), names)
    moved = raster("moved.tif", order, [names[i] for i in order])
    bands, expected = predict(same, core_warnings())
    assert bands is None
    log = core_warnings()
    bands, got = predict(moved, log)
    assert bands == [4, 5, 6, 1, 2, 3]
    np.testing.assert_array_equal(got, expected)
    assert any("matched to the model's by name: bands 4, 5, 6, 1, 2, 3" in line for line in log.infos)
    other = raster("other.tif", list(range(6)), names[:5] + ["Thermal"])
    with pytest.raises(OreMapError) as err:
        model_input(other, model.info, None, core_warnings())
    assert err.value.parameter == "raster" and "none is named 'SWIR2'" in err.value.message
    unnamed = raster("unnamed.tif", list(range(6)), [""] * 6)
    log = core_warnings()
    assert model_input(unnamed, model.info, None, log) == (None, None)
    assert log.infos == ["The raster's bands have no names (band descriptions): they are read in order as the "
                         "model's Blue, Green, Red, NIR, SWIR1, SWIR2."]
