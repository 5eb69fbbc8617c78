"""The U-Net's aids for few labels (issue 21, point 4; core/sentinel2/augmentation.py): brightness and haze with the
indices recomputed, the class-imbalance weight, and initial weights from a user's file. Known answers from the
formulas; what they do to accuracy is measured by bench/experiment_unet_aids.py (README), not asserted here.
"""

import numpy as np
import pytest

from oremap.core.engine.errors import OreMapError
from oremap.core.sentinel2 import augmentation as au
from oremap.core.sentinel2 import mine_segmentation as ms
from oremap.core.sentinel2.sentinel2 import S2_CENTERS, compute_indices

BANDS = ["B2", "B3", "B4", "B8"]


def test_brightness_and_haze_follow_the_formula_and_the_indices_follow_the_bands():
    rng = np.random.default_rng(5)
    bands = rng.uniform(0.02, 0.4, size=(6, 4, 8, 8)).astype(np.float32)
    bands[0, :, 0, 0] = np.nan
    indices = ["NDVI", "IRON_OXIDE"]
    pixels = np.moveaxis(bands, 1, -1).reshape(-1, 4)
    x = np.concatenate([bands, np.moveaxis(compute_indices(pixels, BANDS, indices)[0].reshape(6, 8, 8, 2), -1, 1)],
                       axis=1)
    out = au.photometric(x, BANDS, indices, np.random.default_rng(1), haze_p=0.5)
    again = np.random.default_rng(1)  # the same draws, in the same order
    g = again.uniform(0.85, 1.15, size=6)
    hazy = again.random(6) < 0.5
    h = np.where(hazy, again.uniform(0.0, 0.03, size=6), 0.0)
    shape = np.array([(490.0 / S2_CENTERS[b]) ** 2 for b in BANDS])
    expected = bands * g[:, None, None, None] + h[:, None, None, None] * shape[None, :, None, None]
    np.testing.assert_allclose(out[:, :4], expected, rtol=1e-5)
    assert hazy.any() and not hazy.all()  # both kinds of tile drawn
    ndvi = (expected[:, 3] - expected[:, 2]) / (expected[:, 3] + expected[:, 2])
    np.testing.assert_allclose(out[:, 4], ndvi, rtol=1e-4)
    np.testing.assert_allclose(out[:, 5], expected[:, 2] / expected[:, 0], rtol=1e-4)
    assert np.isnan(out[0, :, 0, 0]).all()  # NaN stays
    assert np.array_equal(x[:, :4], bands, equal_nan=True)  # the input is untouched
    # haze in the blue is larger than in the NIR by (842 / 490) ** 2
    assert shape[0] / shape[3] == pytest.approx((842 / 490) ** 2)


def test_mine_pixel_weight_is_the_background_to_mine_ratio_capped():
    Y = np.zeros((3, 10, 10), np.uint8)
    V = np.ones((3, 10, 10), bool)
    Y[0, :2, :5] = 1  # 10 mine pixels among 200 valid in tiles 0 and 1
    V[1, :5] = False  # tile 1: 50 valid
    assert au.mine_pixel_weight(Y, V, [0, 1]) == pytest.approx((150 - 10) / 10)
    assert au.mine_pixel_weight(Y, V, [0, 1, 2]) == pytest.approx(min((250 - 10) / 10, 20.0))
    assert au.mine_pixel_weight(Y, V, [2]) == 1.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from s2_scene import make_scene

    return make_scene(str(tmp_path_factory.mktemp("aids") / "s"), seed=6, size=(128, 128), n_mines=2)


SMALL = dict(tile=32, depth=2, width=4, bands=["B2", "B3", "B4"], indices=[], block_tiles=2, seed=0, threads=1)


def test_training_starts_from_a_users_weights_file(scene, tmp_path):
    """Weights saved by one run start another: with a vanishing learning rate the second network is the first."""
    import torch

    first = ms.train_mine_segmentation(scene["raster"], scene["mines"], epochs=2, lr=0.01, **SMALL)
    weights = first.save_weights(str(tmp_path / "w.pt"))
    second = ms.train_mine_segmentation(scene["raster"], scene["mines"], epochs=1, lr=1e-12, init_weights=weights,
                                        **SMALL)
    assert second.info.training["parameters"]["init_weights"] == "w.pt"
    a, b = first.torch_model.net.state_dict(), second.torch_model.net.state_dict()
    for key in a:
        if a[key].dtype.is_floating_point and "running" not in key:
            torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
    other = ms.train_mine_segmentation(scene["raster"], scene["mines"], epochs=1, **SMALL)
    k0 = next(iter(a))  # without the file, the first layer starts elsewhere
    assert not torch.allclose(other.torch_model.net.state_dict()[k0], a[k0], atol=1e-3)
    # a file of another architecture is refused, naming the parameter
    with pytest.raises(OreMapError) as err:
        ms.train_mine_segmentation(scene["raster"], scene["mines"], epochs=1, init_weights=weights,
                                   **dict(SMALL, width=8))
    assert err.value.parameter == "init_weights" and "of another shape" in str(err.value)
    with pytest.raises(OreMapError) as err:
        ms.train_mine_segmentation(scene["raster"], scene["mines"], epochs=1, augment="colour", **SMALL)
    assert err.value.parameter == "augment"


def test_the_aids_are_recorded_in_the_model_and_its_report(scene, tmp_path):
    report_path = str(tmp_path / "r.html")
    result = ms.train_mine_segmentation(scene["raster"], scene["mines"], None, report_path, epochs=1,
                                        augment="photometric", class_weight=True, **SMALL)
    p = result.info.training["parameters"]
    assert p["augmentation"] == "flips and 90 degree rotations, brightness and haze"
    assert p["loss"].startswith("BCE + soft Dice over valid pixels, mine pixels weighted ")
    weight = float(p["loss"].rsplit(" ", 1)[1])
    assert 1.0 < weight <= 20.0
    # the report's training row says the same (it gave flips and rotations alone, and no weight)
    html = open(report_path, encoding="utf-8").read()
    assert f"loss BCE + 1 x soft Dice over valid pixels, mine pixels weighted {weight:.2f}; augmentation: flips and " \
           "90 degree rotations, brightness and haze" in html
