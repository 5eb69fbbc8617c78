"""Prospectivity models side by side (core.geochemistry.model_comparison, prospectivity_models).

Synthetic stack: 96 x 96 cells of 250 m, three log-normal elements over smooth, correlated
background fields. Only Au carries the deposits (a Gaussian halo of 1.5 cells around each of 14
deposits, 0.8 log10 units high); As and Cu are background only. A corner lies outside the survey
(nodata), and two more deposit points lie off the grid and on that nodata corner.

Known answers are computed here independently: AUC by counting pairs, window footprints painted on
boolean masks, probabilities through onnxruntime directly.
"""

import os

import numpy as np
import pytest
import rasterio
from conftest import core_warnings
from scipy.ndimage import gaussian_filter

from oremap.core.geochemistry import model_comparison as mc
from oremap.core.geochemistry import prospectivity_cnn as pc
from oremap.core.geochemistry import prospectivity_data, prospectivity_mapping
from oremap.core.geochemistry import prospectivity_models as pm

ELEMENTS = ["Au_ppb", "As_ppm", "Cu_ppm"]
SIZE, CELL, WINDOW = 96, 250.0, 8
X0, Y0 = 400000.0, 6300000.0
SETTINGS = dict(window=WINDOW, depth=18, width=8, epochs=12, batch_size=32, lr=0.05, n_folds=3, block_size=6000.0,
                negatives_per_positive=6, jitter_copies=3, seed=5, threads=1, n_bootstrap=500, max_area_cells=400)


def to_xy(rc):
    rc = np.asarray(rc, dtype=float)
    return np.column_stack([X0 + rc[:, 1] * CELL, Y0 - rc[:, 0] * CELL])


def make_stack(path, seed=2):
    rng = np.random.default_rng(seed)
    deps = []
    while len(deps) < 14:
        p = rng.uniform(6, SIZE - 6, 2)
        if p.sum() > 40 and all(np.hypot(*(p - q)) > 14 for q in deps):
            deps.append(p)
    fields = np.stack([gaussian_filter(rng.standard_normal((SIZE, SIZE)), 4) for _ in range(3)])
    fields /= fields.std(axis=(1, 2), keepdims=True)
    fields = np.einsum("ij,jhw->ihw", np.linalg.cholesky(np.full((3, 3), 0.4) + 0.6 * np.eye(3)), fields)
    rr, cc = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    halo = sum(np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * 1.5 ** 2)) for r, c in deps)
    log10 = np.array([0.5, 1.0, 1.5])[:, None, None] + 0.2 * fields
    log10[0] += 0.8 * halo
    data = log10.astype(np.float32)
    data[:, (rr + cc) < 24] = -9999.0
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=3, dtype="float32", nodata=-9999.0,
                       crs="EPSG:32750", transform=rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)) as dst:
        dst.write(data)
        for i, name in enumerate(ELEMENTS, start=1):
            dst.set_band_description(i, name)
    extra = to_xy([[-20.0, 40.0], [3.0, 3.0]])  # off the grid; on the nodata corner
    return np.vstack([to_xy(np.asarray(deps)), extra])


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("comparison")
    path = str(tmp / "stack.tif")
    deposits = make_stack(path)
    names = [f"D{i}" for i in range(len(deposits))]
    samples = to_xy(np.array([[48.0, 48.0], [10.0, 10.0]]))
    result = mc.compare_models(path, deposits, names, samples, out_dir=str(tmp / "models"),
                               report_path=str(tmp / "report.html"), **SETTINGS)
    return result, path, deposits, tmp


def pair_auc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (pos.size * neg.size)


def test_every_model_finds_the_one_element_and_the_baseline_is_its_auc(compared):
    result, path, _, _ = compared
    plan = result.plan
    with rasterio.open(path) as src:
        au = src.read(1)
    fold_aucs = []
    for fold in plan.folds:
        val = fold["val"]
        fold_aucs.append(pair_auc(val.labels, au[val.rows, val.cols]))
    base = result.row("baseline")
    assert base["element"] == "Au_ppb"
    assert base["fold_auc"] == pytest.approx(fold_aucs, abs=1e-12)
    assert base["auc_mean"] == pytest.approx(np.mean(fold_aucs), abs=1e-12)
    assert base["auc_mean"] > 0.9
    for key in mc.METHODS + ("ensemble",):
        row = result.row(key)
        assert row["n_deposits"] == plan.info["n_deposits"] == 14
        assert row["auc_mean"] > 0.8, (key, row["fold_auc"])
        assert row["deposit_auc"] > 0.8, key
    # As and Cu carry nothing: their AUCs sit near one half
    others = {r["key"]: r["auc_mean"] for r in result.info["element_rows"]}
    assert abs(others["element:As_ppm"] - 0.5) < 0.25 and abs(others["element:Cu_ppm"] - 0.5) < 0.25
    # the logistic regression leans on Au: its largest coefficients are Au statistics
    coef = np.abs(pm.TabularMember("logistic", *_final_table(result, path)).estimator.coef_[0])
    assert np.argmax(coef) // len(pm.FEATURES) == 0


def _final_table(result, path):
    stack = pc.read_stack(path, pad=WINDOW + 4)
    X = pm.stack_features(stack, result.plan.final, WINDOW)
    return X, result.plan.final.labels


def test_resnet_row_is_the_resnet_trainers_cross_validation(compared):
    result, path, deposits, _ = compared
    s = SETTINGS
    trained = pc.train_prospectivity(path, deposits, window=WINDOW, depth=18, width=s["width"], epochs=s["epochs"],
                                     batch_size=s["batch_size"], lr=s["lr"], n_folds=s["n_folds"],
                                     block_size=s["block_size"], negatives_per_positive=s["negatives_per_positive"],
                                     jitter_copies=s["jitter_copies"], seed=s["seed"], threads=1)
    assert result.row("resnet")["fold_auc"] == pytest.approx(trained.cv["auc_per_fold"], abs=1e-6)
    for mine, theirs in zip(result.plan.folds, trained.plan.folds):
        assert np.array_equal(mine["val"].rows, theirs["val"].rows)
        assert np.array_equal(mine["train"].cols, theirs["train"].cols)


def test_no_model_ever_sees_a_validation_cell(tmp_path, monkeypatch):
    path = str(tmp_path / "stack.tif")
    deposits = make_stack(path)
    plans, active, seen, violations = [], {}, [], []
    real_plan, real_fit, real_windows, real_stats = (pc.plan_spatial_folds, mc._fit_fold, prospectivity_data.ElementStack.windows,
                                                     pc._fit_stats)

    def plan_spy(*args, **kwargs):
        plans.append(real_plan(*args, **kwargs))
        return plans[-1]

    def painted(specs, size, shape):
        mask = np.zeros(shape, bool)
        for r, c in zip(specs.rows, specs.cols):
            r0, c0 = r - size // 2, c - size // 2
            mask[max(r0, 0):max(r0 + size, 0), max(c0, 0):max(c0 + size, 0)] = True
        return mask

    def check(rows, cols, size):
        if "mask" not in active:
            return
        seen.append(len(np.atleast_1d(rows)))
        touched = painted(pc.WindowSpecs(np.atleast_1d(rows), np.atleast_1d(cols), np.zeros(0), np.zeros(0)), size,
                          active["mask"].shape)
        if (touched & active["mask"]).any():
            violations.append((active["fold"], size))

    def windows_spy(self, rows, cols, size):
        check(rows, cols, size)
        return real_windows(self, rows, cols, size)

    def stats_spy(stack, specs, size):
        check(specs.rows, specs.cols, size)
        return real_stats(stack, specs, size)

    def fit_spy(stack, train, *args, **kwargs):
        plan = plans[-1]
        fold = next((f for f in range(len(plan.folds)) if plan.folds[f]["train"] is train), None)
        if fold is not None:  # the final fit (all windows) has no validation fold
            active.update(fold=fold, mask=painted(plan.folds[fold]["val"], plan.window, (stack.height, stack.width)))
        try:
            return real_fit(stack, train, *args, **kwargs)
        finally:
            active.clear()

    monkeypatch.setattr(pc, "plan_spatial_folds", plan_spy)
    monkeypatch.setattr(mc, "_fit_fold", fit_spy)
    monkeypatch.setattr(prospectivity_data.ElementStack, "windows", windows_spy)
    monkeypatch.setattr(pc, "_fit_stats", stats_spy)
    settings = dict(SETTINGS, epochs=2)
    result = mc.compare_models(path, deposits, **settings)
    assert len(plans) == 1 and len(result.plan.folds) == 3
    assert sum(seen) > 1000  # the spy really watched the training reads (features, ResNet batches, statistics)
    assert violations == []
    # and the spy itself catches a read of a validation window
    val = plans[0].folds[0]["val"]
    active.update(fold=0, mask=painted(val, WINDOW, (SIZE, SIZE)))
    check(val.rows[:1], val.cols[:1], WINDOW)
    assert violations == [(0, WINDOW)]


def test_a_fold_without_validation_background_is_skipped_not_made_nan(tmp_path, monkeypatch):
    """A fold with validation deposits but no validation background window (few negatives per deposit) gave its
    deposits NaN shares: every deposit-level AUC, interval and paired difference was NaN and every pair "not
    significant", while the fold-AUC mean dropped the fold quietly. Now the fold is skipped and said to be."""
    path = str(tmp_path / "stack.tif")
    deposits = make_stack(path)
    real_plan = pc.plan_spatial_folds

    def plan_without_background(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        plan.folds[1]["val"] = plan.folds[1]["val"].subset(plan.folds[1]["val"].labels == 1)
        return plan

    monkeypatch.setattr(pc, "plan_spatial_folds", plan_without_background)
    log = core_warnings()
    result = mc.compare_models(path, deposits, methods=["logistic", "random_forest"], feedback=log, **SETTINGS)
    assert [f.get("skipped", False) for f in result.folds] == [False, True, False]
    assert [w for w in log.warnings if w.startswith("Fold 2 is skipped")] == [
        f"Fold 2 is skipped for every model ({result.folds[1]['n_val_positive']} deposits not validated): no "
        "validation background window (its deposits would get no AUC); more negatives per deposit give some."]
    assert [r["key"] for r in result.rows][:2] == ["logistic", "random_forest"] and result.pairs
    for row in result.rows:
        assert row["n_folds"] == 2 and row["u"].size == row["n_deposits"] > 2
        assert np.isfinite(row["deposit_auc"]) and np.isfinite(row["deposit_ci"]).all()
    for pair in result.pairs:
        assert np.isfinite(pair["difference"]) and np.isfinite(pair["ci"]).all()


def test_saved_models_map_through_prospectivity_map_and_match_in_memory(compared):
    import onnxruntime as ort

    result, path, _, tmp = compared
    assert set(result.models) == set(mc.METHODS) | {"ensemble"}
    stack = pc.read_stack(path, pad=WINDOW + 4)
    rows, cols = result.plan.negatives.rows[:40], result.plan.negatives.cols[:40]
    wins = stack.windows(rows, cols, WINDOW)
    X = pm.window_features(wins)
    # features: centre cell, mean and max of valid cells, element by element
    r0, c0 = rows[0] - WINDOW // 2 + stack.pad, cols[0] - WINDOW // 2 + stack.pad
    block = stack.data[:, r0:r0 + WINDOW, c0:c0 + WINDOW]
    expected = [block[0, WINDOW // 2, WINDOW // 2], np.nanmean(block[0]), np.nanmax(block[0])]
    assert X[0, :3] == pytest.approx(expected, rel=1e-5)
    for key, model_path in result.models.items():
        out = tmp / f"map_{key}.tif"
        mapped = prospectivity_mapping.prospectivity_map(path, model_path, str(out), mode="grid", grid=(12, 12))
        assert mapped["n_scored"] > 100
        session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        p = session.run(None, {"windows": wins})[0] if key != "resnet" else None
        if key in pm.TABULAR:
            member = pm.TabularMember(key, *_final_table(result, path), seed=SETTINGS["seed"])
            assert p[:, 1] == pytest.approx(member.predict(X), abs=2e-5)
            assert p.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
        elif key == "ensemble":
            assert ((p[:, 1] >= 0) & (p[:, 1] <= 1)).all()
            assert p[:, 1] == pytest.approx(1 - p[:, 0], abs=1e-6)


def test_maps_of_the_saved_models_do_not_depend_on_the_memory_budget(compared, tmp_path):
    """onnxruntime summed the window statistics of the tabular members in another order for another number of
    windows per call, and the calls were sized from the budget: the comparison ensemble's map of a real survey
    differed in 11 of 3,654 cells (up to 0.0024) between 12 and 512 MB. Every call now holds the same windows."""
    result, path, _, _ = compared
    for key in ("ensemble", "gradient_boosting", "logistic"):
        maps = [prospectivity_mapping.prospectivity_map(path, result.models[key], str(tmp_path / f"{key}_{mb}.tif"),
                                                        mode="sliding", stride=1, memory_mb=mb, threads=1,
                                                        max_cells=0)["probabilities"] for mb in (512, 0.3, 0.05)]
        assert np.isfinite(maps[0]).sum() > 1000
        for other in maps[1:]:
            np.testing.assert_array_equal(other, maps[0])


def test_rank_mean_graph_is_the_mean_background_share(compared):
    result, path, _, _ = compared
    import onnxruntime as ort

    stack = pc.read_stack(path, pad=WINDOW + 4)
    wins = stack.windows(result.plan.deposits.rows, result.plan.deposits.cols, WINDOW)
    models = {k: ort.InferenceSession(result.models[k], providers=["CPUExecutionProvider"]) for k in mc.METHODS}
    bg = stack.windows(result.plan.negatives.rows, result.plan.negatives.cols, WINDOW)
    shares = []
    for k, s in models.items():
        ref = s.run(None, {"windows": bg})[0][:, 1]
        p = s.run(None, {"windows": wins})[0][:, 1]
        shares.append(((ref[None, :] < p[:, None]).sum(1) + 0.5 * (ref[None, :] == p[:, None]).sum(1)) / ref.size)
    ens = ort.InferenceSession(result.models["ensemble"], providers=["CPUExecutionProvider"])
    # torch and onnxruntime may order a near-tie differently: one reference window in 80 at most
    assert ens.run(None, {"windows": wins})[0][:, 1] == pytest.approx(np.mean(shares, axis=0), abs=0.005)


def test_unused_deposits_are_listed_with_distances_and_uncertainty_is_stated(compared):
    result, path, deposits, tmp = compared
    status = {d["name"]: d for d in result.deposits}
    off, on_nodata = status["D14"], status["D15"]
    assert off["status"] == "off the grid" and on_nodata["status"] == "on nodata"
    # nearest sample: (48, 48) and (10, 10) in cells
    samples = to_xy(np.array([[48.0, 48.0], [10.0, 10.0]]))
    for d in (off, on_nodata):
        expected = np.min(np.hypot(*(samples - [d["x"], d["y"]]).T))
        assert d["distance_to_sample"] == pytest.approx(expected)
    # the nodata corner is rows + cols < 24 (cell centres): the deposit at (3, 3) is (24 - 7) / 2 cells diagonally
    # from the nearest valid cell centres
    with rasterio.open(path) as src:
        valid = src.read(1) != -9999.0
    vr, vc = np.nonzero(valid)
    centres = to_xy(np.column_stack([vr + 0.5, vc + 0.5]))
    assert on_nodata["distance_to_valid"] == pytest.approx(np.min(np.hypot(*(centres - [on_nodata["x"],
                                                                                        on_nodata["y"]]).T)))
    html = (tmp / "report.html").read_text(encoding="utf-8")
    assert "D14" in html and "D15" in html and "off the grid" in html and "on nodata" in html
    assert "Only 14 deposits were validated" in html
    assert "do not differ significantly" in html
    # a pair is not significant exactly when its bootstrap interval holds 0
    for p in result.pairs:
        assert p["significant"] == (p["ci"][0] > 0 or p["ci"][1] < 0)
    lo, hi = result.row("resnet")["deposit_ci"]
    assert lo <= result.row("resnet")["deposit_auc"] <= hi


def point_layer(xy_utm, names=None):
    """A memory point layer in the stack's CRS, with a text 'name' field."""
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsVectorLayer
    from oremap.algorithms import qt_compat as field_type

    layer = QgsVectorLayer("Point?crs=EPSG:32750", "points", "memory")
    layer.dataProvider().addAttributes([QgsField("name", field_type.STRING)])
    layer.updateFields()
    features = []
    for i, (x, y) in enumerate(xy_utm):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(x), float(y))))
        feature["name"] = names[i] if names else None
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def test_algorithm_compares_and_saves_models_through_processing(run_alg, tmp_path):
    from oremap.core.engine.model_format import read_model_info

    path = str(tmp_path / "stack.tif")
    deposits = make_stack(path)
    names = [f"Site {i}" for i in range(len(deposits))]
    result = run_alg("train_prospectivity_model", {
        "INPUT": path, "DEPOSITS": point_layer(deposits, names), "DEPOSIT_NAME": "name",
        "SAMPLES": point_layer(to_xy(np.array([[48.0, 48.0]]))), "METHODS": [0, 1],
        "WINDOW": WINDOW, "FOLDS": 3, "BLOCK_SIZE": 6000.0, "NEGATIVES_PER_POSITIVE": 6, "JITTER_COPIES": 3,
        "SEED": 5, "BOOTSTRAP": 200, "OUTPUT_FOLDER": str(tmp_path / "models"),
        "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert sorted(os.listdir(tmp_path / "models")) == ["ensemble.onnx", "logistic.onnx", "random_forest.onnx"]
    info = read_model_info(str(tmp_path / "models" / "logistic.onnx"))
    assert info.task == "prospectivity" and info.input["window"] == WINDOW and info.band_names == ELEMENTS
    assert result["BASELINE_ELEMENT"] == "Au_ppb" and result["DEPOSITS_VALIDATED"] == 14
    assert result["BEST_MODEL"] in ("logistic", "random_forest", "ensemble")
    # the best model's file, for a next step (the Graphical Modeler's prospectivity_map)
    assert result["BEST_MODEL_FILE"] == str(tmp_path / "models" / f"{result['BEST_MODEL']}.onnx")
    best = read_model_info(result["BEST_MODEL_FILE"])
    assert best.task == "prospectivity" and best.training["metrics"]["cv_auc_mean"] == pytest.approx(
        result["BEST_AUC_MEAN"])
    assert result["BEST_AUC_MEAN"] == pytest.approx(info.training["metrics"]["cv_auc_mean"]) or \
        result["BEST_MODEL"] != "logistic"
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Site 14" in html and "Site 15" in html  # off the grid, on nodata: listed by name


def test_a_missing_name_field_or_a_file_for_the_folder_is_named_before_any_training(run_alg, tmp_path):
    """A DEPOSIT_NAME the layer lacks stopped with a KeyError traceback; a file given as the model folder with
    '[Errno 17] File exists' after the cross-validation, blaming the input files."""
    from qgis.core import QgsProcessingException

    path = str(tmp_path / "stack.tif")
    deposits = point_layer(make_stack(path), [f"Site {i}" for i in range(16)])
    base = {"INPUT": path, "DEPOSITS": deposits, "METHODS": [0], "WINDOW": WINDOW, "FOLDS": 2,
            "OUTPUT_FOLDER": str(tmp_path / "models")}
    with pytest.raises(QgsProcessingException, match=r"\(DEPOSIT_NAME\): Fields not in the layer: nosuch\. .*name"):
        run_alg("train_prospectivity_model", {**base, "DEPOSIT_NAME": "nosuch"})
    (tmp_path / "taken.tif").write_bytes(b"x")
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT_FOLDER\): '.*taken\.tif' is a file, not a folder"):
        run_alg("train_prospectivity_model", {**base, "OUTPUT_FOLDER": str(tmp_path / "taken.tif")})
    assert not os.path.exists(tmp_path / "models")


def test_bad_choices_are_refused_naming_the_parameter_and_nothing_is_written(tmp_path):
    from oremap.core.engine.errors import OreMapError

    path = str(tmp_path / "stack.tif")
    deposits = make_stack(path)
    with pytest.raises(OreMapError) as err:
        mc.compare_models(path, deposits, methods=["logistic", "svm"], out_dir=str(tmp_path / "a"))
    assert err.value.parameter == "methods" and "resnet" in err.value.message
    with pytest.raises(OreMapError) as err:
        mc.compare_models(path, deposits, methods=["logistic"], n_folds=1, window=WINDOW,
                          out_dir=str(tmp_path / "b"), report_path=str(tmp_path / "b.html"))
    assert err.value.parameter == "folds"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "b.html").exists()


def test_the_resnet_trainer_and_the_comparison_skip_folds_for_the_same_reasons():
    """Both skip a fold that lacks deposits or background on either side, with one sentence for the log."""
    from types import SimpleNamespace as part

    plan = part(window=8, crop_pad=1)
    full = part(n_positive=3, n_negative=30)
    assert pc.skip_reason(plan, full, part(n_positive=0, n_negative=30)) == "no validation deposit"
    assert pc.skip_reason(plan, part(n_positive=0, n_negative=30), full).endswith("validation windows (9 cells)")
    assert pc.skip_reason(plan, part(n_positive=3, n_negative=0), full) == "no training background window is left"
    assert pc.skip_reason(plan, full, part(n_positive=3, n_negative=0)).startswith("no validation background window")
    assert pc.skip_reason(plan, full, full) is None


def test_a_late_cancel_leaves_the_model_folder_as_it_was_and_progress_moves_through_the_folds(processing_provider,
                                                                                               tmp_path):
    """The models were written into OUTPUT_FOLDER outside the run's guard: a cancel after they were written (while
    the summary was logged) said 'no output was written' but left new models behind, or replaced a kept run's
    models while putting its report back. And without the ResNet the progress bar stood at 2 % through every fold."""
    import hashlib

    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    path = str(tmp_path / "stack.tif")
    deposits = make_stack(path)
    folder, report = tmp_path / "models", tmp_path / "report.html"
    base = {"INPUT": path, "DEPOSITS": point_layer(deposits), "METHODS": [0, 1], "WINDOW": WINDOW, "FOLDS": 3,
            "BLOCK_SIZE": 6000.0, "NEGATIVES_PER_POSITIVE": 6, "JITTER_COPIES": 1, "BOOTSTRAP": 100,
            "OUTPUT_FOLDER": str(folder), "OUTPUT_REPORT": str(report)}

    class CancelAtSummary(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.percents = []
            self.progressChanged.connect(self.percents.append)

        def pushInfo(self, text):
            super().pushInfo(text)
            if "Best single element" in text:   # the summary, logged after the models are written
                self.cancel()

    digest = lambda: {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}  # noqa: E731
    late = CancelAtSummary()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("oremap:train_prospectivity_model", dict(base, SEED=5), feedback=late)
    assert not folder.exists() or list(folder.iterdir()) == []
    assert not report.exists()
    folds = [p for p in late.percents if 2.5 < p < 93]
    assert len(folds) >= 6 and folds == sorted(folds)   # two fits and the end of each of three folds
    processing.run("oremap:train_prospectivity_model", dict(base, SEED=5))   # a run the user keeps
    kept, kept_report = digest(), report.read_bytes()
    assert sorted(kept) == ["ensemble.onnx", "logistic.onnx", "random_forest.onnx"]
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("oremap:train_prospectivity_model", dict(base, SEED=6), feedback=CancelAtSummary())
    assert digest() == kept and report.read_bytes() == kept_report
