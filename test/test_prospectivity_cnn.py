"""The prospectivity ResNet (core.geochemistry.prospectivity_cnn) and its two algorithms, on a synthetic element stack.

The stack is small but shaped like the real thing: four elements (Au, As, Sb, Cu) as log-normal
concentrations over smooth, correlated background fields; 12 deposits with Gaussian halos of
different widths in Au, As and Sb; 8 decoy highs in Au alone (no As/Sb halo), so a model has to use
the multi-element pattern; a corner of nodata outside the "survey". 192 x 192 cells of 100 m: a
12 x 12 grid of 16-cell windows.

Known answers are computed here independently: footprints painted on boolean masks, distances from
rasterio's cell centres, AUC by counting pairs, probabilities through onnxruntime directly.
"""

import json
import os

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProject,
    QgsVectorLayer,
)
from scipy.ndimage import gaussian_filter

from oremap.core.geochemistry import prospectivity_cnn as pc
from oremap.core.geochemistry import prospectivity_mapping as pm
from oremap.core.geochemistry import prospectivity_data as pdata
from oremap.core.geochemistry import prospectivity_folds as pf
from oremap.core.geochemistry import prospectivity_network as pn
from oremap.core.engine.errors import Cancelled, OreMapError
from oremap.core.engine.feedback import Feedback
from oremap.core.engine.model_format import read_model_info

ELEMENTS = ["Au_ppb", "As_ppm", "Sb_ppm", "Cu_ppm"]
SIZE, CELL, WINDOW = 192, 100.0, 16
X0, Y0 = 500000.0, 7000000.0
TRAIN = dict(window=WINDOW, depth=18, width=8, epochs=12, batch_size=32, lr=0.05, n_folds=3, block_size=6400.0,
             negatives_per_positive=8, jitter_copies=4, seed=1, threads=1)


def to_xy(rc):
    """Map coordinates of fractional (row, col) positions."""
    rc = np.asarray(rc, dtype=float)
    return np.column_stack([X0 + rc[:, 1] * CELL, Y0 - rc[:, 0] * CELL])


def make_stack(path, elements=ELEMENTS, seed=3):
    """Write the synthetic stack; returns deposits and decoys as map coordinates."""
    rng = np.random.default_rng(seed)
    deps, decoys = [], []
    while len(deps) < 12:
        p = rng.uniform(12, SIZE - 12, 2)
        if all(np.hypot(*(p - q)) > 30 for q in deps):
            deps.append(p)
    while len(decoys) < 8:
        p = rng.uniform(12, SIZE - 12, 2)
        if all(np.hypot(*(p - q)) > 25 for q in deps + decoys):
            decoys.append(p)
    fields = np.stack([gaussian_filter(rng.standard_normal((SIZE, SIZE)), 8) for _ in range(4)])
    fields /= fields.std(axis=(1, 2), keepdims=True)
    fields = np.einsum("ij,jhw->ihw", np.linalg.cholesky(np.full((4, 4), 0.5) + 0.5 * np.eye(4)), fields)
    rr, cc = np.mgrid[0:SIZE, 0:SIZE] + 0.5

    def halo(points, sigma):
        return sum(np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * sigma ** 2)) for r, c in points)

    log10 = np.array([0.5, 1.0, 0.0, 1.5])[:, None, None] + 0.25 * fields  # Au 3 ppb, As 10, Sb 1, Cu 30 ppm
    log10[0] += 0.9 * halo(deps, 3.0) + 0.9 * halo(decoys, 3.0)
    log10[1] += 0.7 * halo(deps, 4.0)
    log10[2] += 0.6 * halo(deps, 5.0)
    data = (10.0 ** log10).astype(np.float32)
    data[:, (rr + cc) < 40] = -9999.0  # a corner outside the survey
    keep = [ELEMENTS.index(e) for e in elements]
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(keep), dtype="float32",
                       nodata=-9999.0, crs="EPSG:32750",
                       transform=rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)) as dst:
        dst.write(data[keep])
        for i, name in enumerate(elements, start=1):
            dst.set_band_description(i, name)
    return to_xy(deps), to_xy(decoys)


def read_nan(path):
    """The stack as (bands, rows, cols) float64, NaN in every band where any band is nodata."""
    with rasterio.open(path) as ds:
        data = ds.read().astype(np.float64)
        nodata = ds.nodata
    bad = np.any(data == nodata, axis=0)
    data[:, bad] = np.nan
    return data


def onnx_proba(model_path, windows):
    """P(deposit) of windows straight through onnxruntime (no OreMap code)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return session.run(None, {"windows": np.ascontiguousarray(windows, dtype=np.float32)})[0][:, 1]


def padded_window(data, r0, c0, size=WINDOW):
    """Window of ``data`` starting at (r0, c0), NaN beyond the raster."""
    out = np.full((data.shape[0], size, size), np.nan)
    a0, a1 = max(r0, 0), min(r0 + size, data.shape[1])
    b0, b1 = max(c0, 0), min(c0 + size, data.shape[2])
    out[:, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = data[:, a0:a1, b0:b1]
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prospectivity")
    path = str(folder / "stack.tif")
    deposits, decoys = make_stack(path)
    return {"path": path, "deposits": deposits, "decoys": decoys, "folder": folder}


@pytest.fixture(scope="module")
def trained(stack):
    model = str(stack["folder"] / "model.onnx")
    report = str(stack["folder"] / "report.html")
    result = pc.train_prospectivity(stack["path"], stack["deposits"], model, report, **TRAIN)
    return {"result": result, "model": model, "report": report}


# ---------------------------------------------------------------------------------------
# The spatial split and window sampling
# ---------------------------------------------------------------------------------------
def paint(rows, cols, size, shape=(SIZE, SIZE), margin=40):
    """Boolean mask (with a margin beyond the raster) of the cells covered by windows of ``size``."""
    mask = np.zeros((shape[0] + 2 * margin, shape[1] + 2 * margin), dtype=bool)
    for r, c in zip(rows, cols):
        r0, c0 = r - size // 2 + margin, c - size // 2 + margin
        mask[r0:r0 + size, c0:c0 + size] = True
    return mask


def kept_for_training(plan, f, shape=(SIZE, SIZE)):
    """Brute force: the other folds' deposits and background centres whose training footprint (crop margin
    included), painted at their own centre, shares no cell with any of fold f's validation windows."""
    val = plan.folds[f]["val"]
    seen = paint(val.rows, val.cols, plan.window, shape)
    size, m = plan.train_size, 40 - plan.train_size // 2

    def clear(specs, fold_of):
        return {int(k) for k, r, c in zip(specs.source, specs.rows, specs.cols)
                if fold_of[k] != f and not seen[r + m:r + m + size, c + m:c + m + size].any()}

    return clear(plan.deposits, plan.deposit_fold), clear(plan.negatives, plan.negative_fold)


def test_spatial_split_keeps_copies_and_overlapping_windows_apart(trained):
    plan = trained["result"].plan
    assert len(plan.folds) == 3
    validated_deposits, validated_negatives = [], []
    for f, fold in enumerate(plan.folds):
        train, val = fold["train"], fold["val"]
        # no source (deposit or background centre) on both sides, augmented copies included
        assert not set(train.source[train.labels == 1]) & set(val.source[val.labels == 1])
        assert not set(train.source[train.labels == 0]) & set(val.source[val.labels == 0])
        # no training window, with its random-crop margin, shares a cell with any validation window
        seen = paint(val.rows, val.cols, WINDOW)
        for r, c in zip(train.rows, train.cols):
            size = plan.train_size
            m = 40 - size // 2
            assert not seen[r + m:r + m + size, c + m:c + m + size].any()
        # validation windows are centred in the held-out blocks, unaugmented
        held = np.zeros((SIZE, SIZE), dtype=bool)
        for r0, r1, c0, c1 in fold["held_out"]:
            held[r0:r1, c0:c1] = True
        assert held[val.rows, val.cols].all() and not held[train.rows, train.cols].any()
        np.testing.assert_array_equal(val.rows[val.labels == 1], plan.deposits.rows[val.source[val.labels == 1]])
        validated_deposits += list(val.source[val.labels == 1])
        validated_negatives += list(val.source[val.labels == 0])
        # the training side is augmented: more deposit windows than deposits, each holding its deposit
        n_sources = len(set(train.source[train.labels == 1]))
        assert train.n_positive > n_sources > 0
        pos = train.labels == 1
        dr, dc = plan.deposits.rows[train.source[pos]], plan.deposits.cols[train.source[pos]]
        reach = WINDOW // 2 - plan.crop_pad
        assert np.all(np.abs(train.rows[pos] - dr) <= reach) and np.all(np.abs(train.cols[pos] - dc) <= reach)
        # each deposit is validated here, trained on (with copies), or buffered out of this fold's training
        assert n_sources + fold["buffered_deposits"] + val.n_positive == len(plan.deposits)
        # the buffer is drawn around the validation windows, no wider: every other source whose own window
        # clears them is trained on
        deposits, negatives = kept_for_training(plan, f)
        assert set(train.source[pos].tolist()) == deposits
        assert set(train.source[train.labels == 0].tolist()) == negatives
        assert fold["buffered_negatives"] == int((plan.negative_fold != f).sum()) - len(negatives)
    # every deposit and background centre is validated exactly once
    assert sorted(validated_deposits) == list(range(len(plan.deposits)))
    assert sorted(validated_negatives) == list(range(len(plan.negatives)))


def test_clustered_deposits_leave_every_fold_training_deposits():
    """Most deposits in one block: a buffer around that whole block would starve its fold; drawn around the
    validation windows it leaves the fold the deposits beyond them, and every deposit is validated."""
    valid = np.ones((SIZE, SIZE), dtype=bool)
    transform = rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)
    cluster = [(r, c) for r in (76, 92, 108) for c in (76, 92, 108)][:8]  # 8 deposits in block (1, 1)
    single = [(52, 96), (96, 52), (138, 100), (100, 138)]  # 1 each in blocks (0, 1), (1, 0), (2, 1), (1, 2)
    rc = np.array(cluster + single, dtype=float) + 0.5
    # background centres at least 25 cells from every deposit: 18 cells (Chebyshev) or more, window + crop
    # margin, so no validation background window reaches a training deposit
    plan = pf.plan_spatial_folds(valid, to_xy(rc), transform, WINDOW, n_folds=3, block_size=6400.0,
                                 min_distance=2500.0, negatives_per_positive=5, jitter_copies=4, seed=7)
    assert plan.block_shape == (64, 64) and plan.crop_pad == 2 and len(plan.deposits) == 12
    key = {(r, c): k for k, (r, c) in enumerate(zip(plan.deposits.rows, plan.deposits.cols))}
    cluster_ids = {key[p] for p in cluster}
    single_ids = {key[p] for p in single}
    f_cluster = int(plan.deposit_fold[next(iter(cluster_ids))])
    assert set(np.flatnonzero(plan.deposit_fold == f_cluster)) == cluster_ids
    # the layout reproduces the trap: every other deposit lies within window + crop margin (18 cells) of the
    # cluster's block, so a buffer around the held-out blocks would leave that fold no training deposit
    reach = WINDOW + plan.crop_pad
    for k in single_ids:
        r, c = plan.deposits.rows[k], plan.deposits.cols[k]
        assert any(r0 - reach < r < r1 - 1 + reach and c0 - reach < c < c1 - 1 + reach
                   for r0, r1, c0, c1 in plan.folds[f_cluster]["held_out"])
    validated = []
    for f, fold in enumerate(plan.folds):
        train, val = fold["train"], fold["val"]
        # trained on: exactly the other folds' sources whose windows clear the validation windows
        deposits, negatives = kept_for_training(plan, f)
        assert set(train.source[train.labels == 1].tolist()) == deposits
        assert set(train.source[train.labels == 0].tolist()) == negatives
        assert train.n_positive > 0 and train.n_negative > 0 and val.n_positive > 0  # no fold is skipped
        seen = paint(val.rows, val.cols, WINDOW)
        m = 40 - plan.train_size // 2
        for r, c in zip(train.rows, train.cols):
            assert not seen[r + m:r + m + plan.train_size, c + m:c + m + plan.train_size].any()
        held = np.zeros((SIZE, SIZE), dtype=bool)
        for r0, r1, c0, c1 in fold["held_out"]:
            held[r0:r1, c0:c1] = True
        assert held[val.rows, val.cols].all() and not held[train.rows, train.cols].any()
        assert set(val.source[val.labels == 0].tolist()) == set(np.flatnonzero(plan.negative_fold == f))
        validated += val.source[val.labels == 1].tolist()
    # the cluster's fold trains on the 4 single deposits and their shifted copies (all 5 windows of each:
    # 4 cells of jitter keep them 20 cells or more from the cluster and out of its block)
    train = plan.folds[f_cluster]["train"]
    assert set(train.source[train.labels == 1].tolist()) == single_ids
    assert train.n_positive == 4 * 5 and plan.folds[f_cluster]["buffered_deposits"] == 0
    assert sorted(validated) == list(range(12))


def test_refusals_name_what_can_work():
    """Three deposits closer together than the zone kept free around validation windows: no block size can work,
    and the refusal says so (it offered a smaller block size, which then scored no fold). A grid so coarse that
    one window reaches every cell: the window is named, not the minimum distance the user left at its default."""
    valid = np.ones((SIZE, SIZE), dtype=bool)
    transform = rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)
    close = to_xy(np.array([(90, 90), (95, 100), (100, 94)], dtype=float) + 0.5)
    for fix in (None, "Compare elsewhere."):
        with pytest.raises(OreMapError) as err:
            pf.plan_spatial_folds(valid, close, transform, WINDOW, n_folds=3, block_size=2000.0, no_folds_fix=fix,
                                  negatives_per_positive=2, jitter_copies=1)
        assert err.value.parameter == "block_size"
        assert err.value.message == (
            "The 3 usable deposits lie within 1000 map units of each other, inside the zone kept free of training "
            "windows around each validation window (1800 map units: window and crop margin), so no block size "
            "gives a fold with deposits to train on and to validate.")
        assert err.value.fix == (fix or "Train without cross-validation (0 folds), or use more deposits, spread "
                                        "wider.")
    # one usable deposit: no block size helps, so the deposits are named, not BLOCK_SIZE
    with pytest.raises(OreMapError) as err:
        pf.plan_spatial_folds(valid, close[:1], transform, WINDOW, n_folds=3, block_size=2000.0,
                              negatives_per_positive=2, jitter_copies=1)
    assert err.value.parameter == "deposits" and err.value.message.startswith("Only one deposit is usable")
    apart = to_xy(np.array([(20, 20), (150, 150)], dtype=float) + 0.5)
    with pytest.raises(OreMapError) as err:
        pf.plan_spatial_folds(valid, apart, transform, WINDOW, n_folds=3, block_size=100 * SIZE * CELL,
                              negatives_per_positive=2, jitter_copies=1)
    assert err.value.message.startswith("All deposits lie in one block") and "block size below 6500" in err.value.fix
    small = np.ones((24, 24), dtype=bool)
    with pytest.raises(OreMapError) as err:
        pf.plan_spatial_folds(small, to_xy(np.array([[12.5, 12.5]])), transform, WINDOW, n_folds=0,
                              negatives_per_positive=2, jitter_copies=1)
    assert err.value.parameter == "window" and "within one window (16 cells of 100 map units: 1600)" in \
        err.value.message


def test_a_raster_smaller_than_any_window_is_not_told_to_take_a_window_it_cannot():
    """A 5 x 5 grid was told 'Choose a window of at most 5 cells', which WINDOW (8-256) then refused."""
    transform = rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)
    deposit = to_xy(np.array([[2.5, 2.5]]))
    with pytest.raises(OreMapError) as err:
        pf.plan_spatial_folds(np.ones((5, 5), bool), deposit, transform, WINDOW, n_folds=0, jitter_copies=1)
    assert err.value.parameter == "raster" and "smaller than the smallest window (8 cells)" in err.value.message
    with pytest.raises(OreMapError) as err:   # a window that can shrink to fit is still advised so
        pf.plan_spatial_folds(np.ones((12, 12), bool), deposit, transform, WINDOW, n_folds=0, jitter_copies=1)
    assert err.value.parameter == "window" and "at most 12 cells" in err.value.fix


def test_no_background_refusal_names_the_limit_that_left_none():
    """The refusal blamed the distance to deposits whatever left no background window: a count per deposit that
    rounds to none (0.1 x 4 deposits), where no distance helps, and windows that are mostly nodata."""
    valid = np.ones((SIZE, SIZE), dtype=bool)
    transform = rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)
    four = to_xy(np.array([(20, 20), (20, 150), (150, 20), (150, 150)], dtype=float) + 0.5)
    for distance in (1600.0, 1.0):
        with pytest.raises(OreMapError) as err:
            pf.plan_spatial_folds(valid, four, transform, WINDOW, n_folds=0, min_distance=distance,
                                  negatives_per_positive=0.1, jitter_copies=1)
        assert err.value.parameter == "negatives_per_positive"
        assert "asks for 0.4, which rounds to no background window" in err.value.message
        assert "at least 0.25 background windows per deposit" in err.value.fix
    assert len(pf.plan_spatial_folds(valid, four, transform, WINDOW, n_folds=0, min_distance=1600.0,
                                     negatives_per_positive=0.25, jitter_copies=1).negatives) == 1
    # data around the deposit, and far from it a strip whose windows are mostly nodata: the cells far enough away
    # are dropped for their nodata, not for their distance, and the refusal says both
    data = np.zeros((SIZE, SIZE), dtype=bool)
    data[10:40, 10:40] = True
    data[:, 150:154] = True
    with pytest.raises(OreMapError) as err:
        pf.plan_spatial_folds(data, to_xy(np.array([[25.5, 25.5]])), transform, WINDOW, n_folds=0,
                              min_distance=3000.0, negatives_per_positive=2, jitter_copies=1)
    assert err.value.parameter == "min_distance" and err.value.message.startswith(
        "No background window can be placed: every one of the ") and \
        "valid cells whose window holds at most 50% nodata is within the minimum distance (3000 map units)" in \
        err.value.message


def test_background_windows_keep_their_distance_from_every_deposit(stack):
    data = read_nan(stack["path"])
    valid = np.isfinite(data[0])
    with rasterio.open(stack["path"]) as ds:
        transform = ds.transform
    off_raster = np.array([[X0 - 300.0, Y0 - 9000.0]])  # 3 cells west of the raster: it still repels
    deposits = np.vstack([stack["deposits"], off_raster])
    plan = pf.plan_spatial_folds(valid, deposits, transform, WINDOW, n_folds=3, block_size=6400.0,
                                 min_distance=2500.0, negatives_per_positive=10, jitter_copies=2, seed=5)
    neg = plan.negatives
    assert plan.info["n_outside"] == 1 and len(plan.deposits) == 12
    assert len(neg) == 120 and len(set(zip(neg.rows, neg.cols))) == 120
    xs, ys = rasterio.transform.xy(transform, neg.rows, neg.cols)  # cell centres
    d = np.hypot(np.subtract.outer(np.asarray(xs), deposits[:, 0]), np.subtract.outer(np.asarray(ys), deposits[:, 1]))
    assert d.min() >= 2500.0
    assert d.min() < 3500.0  # the constraint is active, not vacuous
    assert valid[neg.rows, neg.cols].all()
    for r, c in zip(neg.rows, neg.cols):  # at most half of each window is nodata or off the raster
        assert np.isnan(padded_window(data, r - WINDOW // 2, c - WINDOW // 2)[0]).mean() <= 0.5
    # a larger minimum distance moves every background centre farther out
    far = pf.plan_spatial_folds(valid, deposits, transform, WINDOW, n_folds=0, min_distance=3000.0,
                                negatives_per_positive=4, jitter_copies=2, seed=5)
    xs, ys = rasterio.transform.xy(transform, far.negatives.rows, far.negatives.cols)
    assert np.hypot(np.subtract.outer(np.asarray(xs), deposits[:, 0]),
                    np.subtract.outer(np.asarray(ys), deposits[:, 1])).min() >= 3000.0
    assert far.folds == [] and far.final.n_negative == 48 and 12 < far.final.n_positive <= 36


def test_training_is_deterministic_with_a_seed(stack):
    small = dict(TRAIN, epochs=2, n_folds=2, jitter_copies=1, negatives_per_positive=3)
    a = pc.train_prospectivity(stack["path"], stack["deposits"], **small)
    b = pc.train_prospectivity(stack["path"], stack["deposits"], **small)
    c = pc.train_prospectivity(stack["path"], stack["deposits"], **dict(small, seed=2))
    assert a.onnx_bytes == b.onnx_bytes
    assert a.cv["auc_per_fold"] == b.cv["auc_per_fold"]
    assert a.onnx_bytes != c.onnx_bytes


# ---------------------------------------------------------------------------------------
# The trained model
# ---------------------------------------------------------------------------------------
def test_the_reports_mean_row_holds_the_folds_means_and_the_pooled_row_the_pooled_figures(trained):
    """The "mean +/- sd" row showed the pooled accuracy, balanced accuracy and F1 under the fold means' label."""
    import re

    result = trained["result"]
    cv = result.cv
    done = [f for f in result.folds if not f["skipped"]]
    html = open(trained["report"], encoding="utf-8").read()
    mean_row = re.search(r"<tr><td>mean \+/- sd</td>(.*?)</tr>", html).group(1)
    pooled_row = re.search(r"<tr><td>pooled \(all validation windows\)</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", mean_row)[-4:]
    for cell, key in zip(cells[1:], ("accuracy", "balanced_accuracy", "f1")):
        values = np.array([f["metrics"][key] for f in done], dtype=float)
        assert cell == f"{values.mean():.3f} &plusmn; {values.std(ddof=1):.3f}", (key, cell)
    pooled = re.findall(r"<td[^>]*>(.*?)</td>", pooled_row)[-4:]
    assert pooled[1:] == [f"{cv[k]:.3f}" for k in ("accuracy", "balanced_accuracy", "f1")], pooled


def test_onnx_export_matches_torch_and_metadata_are_complete(trained, stack):
    result = trained["result"]
    data = read_nan(stack["path"]).astype(np.float32)
    rng = np.random.default_rng(0)
    starts = list(rng.integers(-WINDOW // 2, SIZE - WINDOW // 2, size=(60, 2))) + [(-8, -8), (0, 0), (180, 184)]
    windows = np.stack([padded_window(data, r, c) for r, c in starts]).astype(np.float32)
    assert np.isnan(windows).any() and np.isfinite(windows).any()  # nodata corner and edges included
    got = onnx_proba(trained["model"], windows)
    want = pn.predict_torch(result.torch_model, windows)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert 0.0 <= got.min() and got.max() <= 1.0

    info = read_model_info(trained["model"])
    assert info.task == "prospectivity" and info.band_names == ELEMENTS
    assert info.input == {"name": "windows", "n_bands": 4, "window": WINDOW}
    assert info.class_names == ["background", "deposit"]
    assert info.extra["spatial"]["cell_size"] == [CELL, CELL] and info.extra["spatial"]["epsg"] == 32750
    metrics = info.training["metrics"]
    assert metrics["cv_auc_mean"] == pytest.approx(result.cv["auc_mean"])
    assert metrics["cv_auc_sd"] == pytest.approx(result.cv["auc_sd"])
    assert metrics["n_deposits"] == 12 and metrics["n_windows"] == len(result.plan.final)
    # z-score statistics: the valid cells under the final training windows, computed independently
    final = result.plan.final
    covered = paint(final.rows, final.cols, WINDOW)[40:40 + SIZE, 40:40 + SIZE] & np.isfinite(data[0])
    values = data[:, covered].astype(np.float64)
    np.testing.assert_allclose(info.preprocessing["mean"], values.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(info.preprocessing["sd"], values.std(axis=1), rtol=1e-4)
    html = open(trained["report"], encoding="utf-8").read()
    assert html.count("<svg") >= 6 and "Spatial cross-validation" in html and "Fold 3" in html
    assert f"{result.cv['auc_mean']:.3f} &plusmn; {result.cv['auc_sd']:.3f}" in html


def pair_auc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (pos.size * neg.size)


def test_cross_validated_model_ranks_held_out_deposits_above_background(trained, stack):
    result = trained["result"]
    aucs = []
    for fold in result.folds:
        labels, proba = fold["labels"], fold["proba"]
        assert fold["n_val_positive"] >= 3
        aucs.append(pair_auc(labels, proba))
        assert fold["metrics"]["auc"] == pytest.approx(aucs[-1])
    assert result.cv["auc_mean"] == pytest.approx(np.mean(aucs))
    assert result.cv["auc_sd"] == pytest.approx(np.std(aucs, ddof=1))
    # held-out deposit windows rank well above held-out random background
    assert result.cv["auc_mean"] > 0.8 and result.cv["pooled_auc"] > 0.8
    cm = np.array(result.cv["confusion_matrix"])
    labels = np.concatenate([f["labels"] for f in result.folds])
    pred = np.concatenate([f["proba"] for f in result.folds]) >= 0.5
    assert cm.tolist() == [[int(((labels == 0) & ~pred).sum()), int(((labels == 0) & pred).sum())],
                           [int(((labels == 1) & ~pred).sum()), int(((labels == 1) & pred).sum())]]
    assert result.cv["f1"] == pytest.approx(2 * cm[1, 1] / (2 * cm[1, 1] + cm[0, 1] + cm[1, 0]))
    # the model uses the multi-element halo: Au-only decoy highs score far below the deposits
    data = read_nan(stack["path"]).astype(np.float32)
    with rasterio.open(stack["path"]) as ds:
        centres = {k: np.array([ds.index(x, y) for x, y in stack[k]]) for k in ("deposits", "decoys")}
    p = {k: onnx_proba(trained["model"], np.stack([padded_window(data, r - 8, c - 8) for r, c in v]))
         for k, v in centres.items()}
    assert pair_auc(np.r_[np.ones(12), np.zeros(8)], np.r_[p["deposits"], p["decoys"]]) >= 0.9
    assert p["decoys"].mean() < 0.3 < 0.7 < p["deposits"].mean()


# ---------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------
def test_grid_mode_cells_hold_the_probability_of_their_window(trained, stack, tmp_path):
    out = str(tmp_path / "grid.tif")
    result = pm.prospectivity_map(stack["path"], trained["model"], out, mode="grid", grid=(12, 12),
                                  deposits_xy=stack["deposits"], threads=1)
    data = read_nan(stack["path"])
    cells = [(i, j) for i in range(12) for j in range(12)]
    windows = np.stack([data[:, 16 * i:16 * i + 16, 16 * j:16 * j + 16] for i, j in cells])
    expected = onnx_proba(trained["model"], windows)
    expected[np.isnan(windows[:, 0]).mean(axis=(1, 2)) > 0.5] = np.nan  # mostly nodata: not scored
    with rasterio.open(out) as ds:
        got = ds.read(1)
        assert ds.nodata == -9999.0 and ds.dtypes[0] == "float32" and ds.descriptions == ("P(deposit)",)
        assert ds.crs.to_epsg() == 32750 and ds.transform == rasterio.Affine(CELL, 0, X0, 0, -CELL, Y0)
    valid = np.isfinite(data[0])
    for k, (i, j) in enumerate(cells):
        block, ok = got[16 * i:16 * i + 16, 16 * j:16 * j + 16], valid[16 * i:16 * i + 16, 16 * j:16 * j + 16]
        assert np.all(block[~ok] == -9999.0)
        if np.isnan(expected[k]):
            assert np.all(block == -9999.0)
        else:
            np.testing.assert_allclose(block[ok], expected[k], atol=1e-6)
    assert 0 < np.isnan(expected).sum() < 10 and result["n_scored"] == int(np.isfinite(expected).sum())
    # ranked cells: rank 1 is the highest probability; has_deposit from the deposits' cells
    by_rank = sorted(result["cells"], key=lambda c: c["rank"])
    assert [c["rank"] for c in by_rank] == list(range(1, len(by_rank) + 1))
    assert all(a["probability"] >= b["probability"] for a, b in zip(by_rank, by_rank[1:]))
    with rasterio.open(stack["path"]) as ds:
        holding = {(r // 16, c // 16) for r, c in (ds.index(x, y) for x, y in stack["deposits"])}
    assert {(c["row"], c["col"]) for c in result["cells"] if c["has_deposit"]} == holding
    first = result["cells"][0]
    assert first["polygon"][0] == (X0 + 16 * CELL * first["col"], Y0 - 16 * CELL * first["row"])
    # the whole-cell fit is the same when a cell is exactly one window
    again = pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "resize.tif"), fit="resize",
                                 threads=1)
    np.testing.assert_allclose(again["probabilities"], result["probabilities"], atol=1e-6)


def test_sliding_mode_streams_with_a_halo_and_resize_mode_averages(trained, stack, tmp_path):
    data = read_nan(stack["path"])
    full = pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "a.tif"), mode="sliding", stride=12,
                                threads=1)
    tight = pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "b.tif"), mode="sliding", stride=12,
                                 memory_mb=0.05, threads=1)  # many bands of rows
    np.testing.assert_array_equal(full["probabilities"], tight["probabilities"])
    with rasterio.open(str(tmp_path / "a.tif")) as a, rasterio.open(str(tmp_path / "b.tif")) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    starts = np.arange(0, SIZE, 12) + 6 - WINDOW // 2  # window centred on each 12-cell stride cell
    windows = np.stack([padded_window(data, r, c) for r in starts for c in starts])
    expected = onnx_proba(trained["model"], windows).reshape(16, 16)
    expected[np.isnan(windows[:, 0]).mean(axis=(1, 2)).reshape(16, 16) > 0.5] = np.nan
    np.testing.assert_allclose(full["probabilities"], expected, atol=1e-6)
    # cancelled while writing: no output, no partial file
    class CancelWhileWriting(Feedback):
        def __init__(self):
            self.percent = 0.0

        def progress(self, percent):
            self.percent = percent

        def is_canceled(self):
            return self.percent > 90

    with pytest.raises(Cancelled):
        pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "x.tif"), mode="sliding", stride=12,
                             memory_mb=0.05, threads=1, feedback=CancelWhileWriting())
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.tif"]
    # resize: a 6 x 6 grid has 32-cell cells, averaged 2 x 2 down to the 16-cell window
    res = pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "c.tif"), grid=(6, 6), fit="resize",
                               threads=1)
    blocks = data.reshape(4, 96, 2, 96, 2)
    counts = np.isfinite(blocks[0]).sum(axis=(1, 3))
    means = np.nansum(blocks, axis=(2, 4)) / np.maximum(counts, 1)
    means[:, counts < 2] = np.nan
    windows = np.stack([means[:, 16 * i:16 * i + 16, 16 * j:16 * j + 16] for i in range(6) for j in range(6)])
    expected = onnx_proba(trained["model"], windows)
    expected[np.isnan(windows[:, 0]).mean(axis=(1, 2)) > 0.5] = np.nan
    np.testing.assert_allclose(res["probabilities"].ravel(), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Algorithms
# ---------------------------------------------------------------------------------------
def deposit_layer(xy_utm, crs="EPSG:4326"):
    """A memory point layer of the deposits, in longitude/latitude by default (the algorithms transform it)."""
    layer = QgsVectorLayer(f"Point?crs={crs}", "deposits", "memory")
    to_layer = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32750"), QgsCoordinateReferenceSystem(crs),
                                      QgsProject.instance())
    features = []
    for x, y in xy_utm:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(to_layer.transform(QgsPointXY(float(x), float(y)))))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


ALG_TRAIN = {"WINDOW": WINDOW, "DEPTH": 0, "WIDTH": 4, "EPOCHS": 3, "FOLDS": 2, "BLOCK_SIZE": 6400.0,
             "NEGATIVES_PER_POSITIVE": 3, "JITTER_COPIES": 1, "SEED": 3, "LEARNING_RATE": 0.05, "THREADS": 1}


def test_algorithms_train_and_map_through_processing(run_alg, stack, tmp_path):
    result = run_alg("train_prospectivity_cnn", {
        **ALG_TRAIN, "INPUT": stack["path"], "DEPOSITS": deposit_layer(stack["deposits"]),
        "OUTPUT_MODEL": str(tmp_path / "m.onnx"), "OUTPUT_REPORT": str(tmp_path / "r.html")})
    info = read_model_info(result["OUTPUT_MODEL"])
    assert info.band_names == ELEMENTS and info.training["parameters"]["network"] == {"depth": 18, "width": 4}
    assert result["DEPOSITS_USED"] == 12  # every lon/lat point landed on its cell
    assert result["CV_AUC_MEAN"] == pytest.approx(info.training["metrics"]["cv_auc_mean"])
    assert 0.0 <= result["CV_AUC_MEAN"] <= 1.0 and result["CV_AUC_SD"] >= 0.0
    assert os.path.getsize(result["OUTPUT_REPORT"]) > 1000

    mapped = run_alg("prospectivity_map", {
        "INPUT": stack["path"], "MODEL_FILE": result["OUTPUT_MODEL"], "MODE": 0, "GRID_ROWS": 12, "GRID_COLS": 12,
        "DEPOSITS": deposit_layer(stack["deposits"]), "THREADS": 1, "OUTPUT": str(tmp_path / "p.tif"),
        "OUTPUT_CELLS": str(tmp_path / "cells.gpkg")})
    cells = QgsVectorLayer(mapped["OUTPUT_CELLS"], "cells", "ogr")
    assert cells.isValid() and cells.featureCount() == mapped["N_CELLS"] > 130
    assert [f.name() for f in cells.fields()][-6:] == ["id", "row", "col", "probability", "rank", "has_deposit"]
    with rasterio.open(mapped["OUTPUT"]) as ds:
        raster = ds.read(1)
        validation = json.loads(ds.tags()["OREMAP_MODEL_VALIDATION"])  # for the guard of evaluate_prospectivity
    assert validation == {"model": "m.onnx", "measure": "ROC-AUC", "value": pytest.approx(result["CV_AUC_MEAN"])}
    with rasterio.open(stack["path"]) as ds:
        holding = {(r // 16, c // 16) for r, c in (ds.index(x, y) for x, y in stack["deposits"])}
    ranks, yes = [], set()
    for feature in cells.getFeatures():
        i, j = feature["row"], feature["col"]
        ranks.append(feature["rank"])
        block = raster[16 * i:16 * i + 16, 16 * j:16 * j + 16]
        assert feature["probability"] == pytest.approx(float(block[block != -9999.0][0]), abs=1e-6)
        centroid = feature.geometry().centroid().asPoint()
        assert (centroid.x(), centroid.y()) == pytest.approx((X0 + CELL * (16 * j + 8), Y0 - CELL * (16 * i + 8)))
        if feature["has_deposit"] == "yes":
            yes.add((i, j))
        else:
            assert feature["has_deposit"] == "no"
    assert sorted(ranks) == list(range(1, len(ranks) + 1)) and yes == holding
    assert mapped["DEPOSIT_CELLS"] == len(holding)
    assert os.path.exists(str(tmp_path / "p.qml"))
    # the counts are of every scored cell, not of the target-cell list (capped at its best ranked cells), and no
    # list (nor its cap's warning) is made when no target-cell layer is asked for
    few = pm.prospectivity_map(stack["path"], result["OUTPUT_MODEL"], str(tmp_path / "few.tif"), mode="grid",
                               grid=(12, 12), deposits_xy=stack["deposits"], threads=1, max_cells=5)
    assert len(few["cells"]) == 5 and few["n_scored"] == mapped["N_CELLS"]
    assert few["n_deposit_cells"] == len(holding) and few["top_probability"] == mapped["TOP_PROBABILITY"]
    bare = run_alg("prospectivity_map", {
        "INPUT": stack["path"], "MODEL_FILE": result["OUTPUT_MODEL"], "MODE": 0, "GRID_ROWS": 12, "GRID_COLS": 12,
        "DEPOSITS": deposit_layer(stack["deposits"]), "THREADS": 1, "OUTPUT": str(tmp_path / "p2.tif")})
    assert (bare["N_CELLS"], bare["DEPOSIT_CELLS"]) == (mapped["N_CELLS"], len(holding))


def test_deposits_off_the_raster_are_said(processing_provider, trained, stack, tmp_path):
    """DEPOSIT_CELLS came out 0 without a word when every deposit lay elsewhere (another area, another CRS)."""
    import processing

    from conftest import warning_recorder

    feedback = warning_recorder()
    far = np.asarray(stack["deposits"]) + np.array([400000.0, 0.0])
    result = processing.run("oremap:prospectivity_map", {
        "INPUT": stack["path"], "MODEL_FILE": trained["model"], "MODE": 0, "GRID_ROWS": 4, "GRID_COLS": 4,
        "DEPOSITS": deposit_layer(far), "THREADS": 1, "OUTPUT": str(tmp_path / "far.tif")}, feedback=feedback)
    assert result["DEPOSIT_CELLS"] == 0
    assert f"None of the {len(far)} deposits lies on the raster: the target cells hold no deposit. Check that the " \
           "deposit layer covers the same area (and its CRS)." in feedback.warnings


def test_bad_input_is_refused_with_the_parameter_and_nothing_written(run_alg, trained, stack, tmp_path):
    # a stack without Sb: the model's element is named
    partial = str(tmp_path / "no_sb.tif")
    make_stack(partial, elements=["Au_ppb", "As_ppm", "Cu_ppm"])
    with pytest.raises(QgsProcessingException, match=r"Element stack \(INPUT\).*Sb_ppm") as err:
        run_alg("prospectivity_map", {"INPUT": partial, "MODEL_FILE": trained["model"], "THREADS": 1,
                                      "OUTPUT": str(tmp_path / "p.tif")})
    assert "Au_ppb, As_ppm, Cu_ppm" in str(err.value)  # the bands it has
    with pytest.raises(OreMapError) as core_err:
        pdata.element_bands(partial, ELEMENTS)
    assert core_err.value.parameter == "raster"
    # a window larger than the raster
    with pytest.raises(QgsProcessingException, match=r"\(WINDOW\).*larger than the raster"):
        run_alg("train_prospectivity_cnn", {**ALG_TRAIN, "WINDOW": 256, "INPUT": stack["path"],
                                            "DEPOSITS": deposit_layer(stack["deposits"]),
                                            "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
                                            "OUTPUT_REPORT": str(tmp_path / "r.html")})
    # deposits that all lie off the raster
    away = stack["deposits"] + np.array([50000.0, 0.0])
    with pytest.raises(QgsProcessingException, match=r"\(DEPOSITS\).*None of the 12 deposit points"):
        run_alg("train_prospectivity_cnn", {**ALG_TRAIN, "INPUT": stack["path"],
                                            "DEPOSITS": deposit_layer(away, crs="EPSG:32750"),
                                            "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
                                            "OUTPUT_REPORT": str(tmp_path / "r.html")})
    # a model of another task
    with pytest.raises(OreMapError, match="not a prospectivity model.*oremap:classify_spectral_cnn"):
        from oremap.core.engine.bundled import bundled_models

        pm.prospectivity_map(stack["path"], bundled_models("spectral_classification")[0][1],
                             str(tmp_path / "q.tif"))
    assert sorted(os.listdir(tmp_path)) == ["no_sb.tif"]


def test_a_model_is_not_applied_to_a_grid_transformed_otherwise(trained, stack, tmp_path):
    """A model records the transform its training grid held (OREMAP_TRANSFORM band metadata; this synthetic stack
    records none, so None) and prospectivity_map refuses a grid recorded otherwise: a model trained on log10 grids
    gave P = 1.0 in every cell of a grid of concentrations."""
    import shutil

    from oremap.core.engine.model_format import write_model
    from oremap.core.geochemistry import grid_meaning as gm

    info = read_model_info(trained["model"])
    assert info.preprocessing["input_transform"] is None
    info.preprocessing["input_transform"] = "log10"
    with open(trained["model"], "rb") as f:
        graph = f.read()
    log_model = write_model(graph, info, str(tmp_path / "log10_model.onnx"))
    plain = str(tmp_path / "ppm.tif")
    shutil.copy(stack["path"], plain)
    with rasterio.open(plain, "r+") as ds:
        for b, tags in enumerate(gm.band_tags(ELEMENTS, "none"), start=1):
            ds.update_tags(b, **tags)
    with pytest.raises(OreMapError) as err:
        pm.prospectivity_map(plain, log_model, str(tmp_path / "p.tif"), threads=1)
    assert err.value.parameter == "raster" and "trained on log10 values" in str(err.value)
    assert not os.path.exists(tmp_path / "p.tif")
    pm.prospectivity_map(plain, trained["model"], str(tmp_path / "ok.tif"), threads=1)  # unrecorded: mapped


def test_a_grid_of_log10_values_is_refused_by_a_model_of_concentrations_whatever_its_metadata(trained, stack,
                                                                                               tmp_path):
    """Neither this model nor a grid made elsewhere records a transform: the log10 grid lies near the model's centre
    but spreads tens of times narrower than the concentrations it was trained on, and is refused; the training
    stack itself maps without a word."""
    from conftest import core_warnings

    log10 = str(tmp_path / "log10.tif")
    with rasterio.open(stack["path"]) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(log10, "w", **profile) as dst:
        dst.write(np.where(data > 0, np.log10(np.where(data > 0, data, 1.0)), data).astype("float32"))
        for b, name in enumerate(ELEMENTS, start=1):
            dst.set_band_description(b, name)
    with pytest.raises(OreMapError) as err:
        pm.prospectivity_map(log10, trained["model"], str(tmp_path / "p.tif"), threads=1)
    assert err.value.parameter == "raster" and "unlike those the model was trained on" in err.value.message
    assert not os.path.exists(tmp_path / "p.tif")
    log = core_warnings()
    pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "ok.tif"), threads=1, feedback=log)
    assert not any("unlike" in w or "well away" in w for w in log.warnings)


def test_mapping_with_a_model_never_validated_says_so(trained, stack, tmp_path):
    """The reported default run validated no deposit (CV AUC nan); prospectivity_map then mapped without a word."""
    from oremap.core.engine.model_format import write_model

    from conftest import core_warnings as Warnings

    info = read_model_info(trained["model"])
    assert np.isfinite(info.training["metrics"]["cv_auc_mean"])
    validated = Warnings()
    pm.prospectivity_map(stack["path"], trained["model"], str(tmp_path / "a.tif"), threads=1, feedback=validated)
    assert not any("no spatial cross-validation figure" in w for w in validated.warnings)
    info.training["metrics"]["cv_auc_mean"] = float("nan")
    with open(trained["model"], "rb") as f:
        unvalidated = write_model(f.read(), info, str(tmp_path / "unvalidated.onnx"))
    log = Warnings()
    pm.prospectivity_map(stack["path"], unvalidated, str(tmp_path / "b.tif"), threads=1, feedback=log)
    assert any(w.startswith("The model has no spatial cross-validation figure") for w in log.warnings)


def test_no_folds_means_no_cross_validation_and_the_report_says_so(stack, tmp_path):
    """FOLDS=0: the log and the report said '0 spatial folds over 18 blocks ... each held out whole', as if
    cross-validation had run."""
    from conftest import core_warnings

    log = core_warnings()
    report_path = str(tmp_path / "r.html")
    result = pc.train_prospectivity(stack["path"], stack["deposits"], report_path=report_path, feedback=log,
                                    **dict(TRAIN, epochs=1, n_folds=0, jitter_copies=1, negatives_per_positive=3))
    assert not np.isfinite(result.cv["auc_mean"])
    assert any(line.endswith("no cross-validation (0 folds): the model gets no validation figure.")
               for line in log.infos)
    html = open(report_path, encoding="utf-8").read()
    assert "none (no cross-validation was asked for): the model has no validation figure" in html
    assert "each held out whole" not in html and "Blocks coloured and numbered by fold" not in html
