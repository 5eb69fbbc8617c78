"""Known answers for recent code that a mutation audit found untested: each test pins one value or message that a
small slip in the code (a dropped exception, a flipped tie-break, a wrong constant) would change for the user."""

import os
import unicodedata

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from conftest import core_warnings
from test_chip_faults import BANDS, UTM, _at, _chip
from test_chip_mask_grids import _write
from oremap.core.sentinel2 import chip_sets as cs


# ---------------------------------------------------------------------------
# Mask chips: which pixels are labelled
# ---------------------------------------------------------------------------


def test_masks_declaring_nodata_0_label_every_pixel(tmp_path):
    """A 0/1 mask that declares nodata 0 (GDAL's default in many exports) has 0 as background: every pixel is
    labelled, and the set is not refused as 'all mine'."""
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 1
    chips = [_chip(str(tmp_path), "b0", mask, _at(0, 0), UTM, seed=1, nodata=0),
             _chip(str(tmp_path), "b1", mask.copy(), _at(0, 40), UTM, seed=2, nodata=0)]
    assert cs.labelled_pixels(mask, 0).sum() == 256
    cs.check_mask_values([c.mask for c in chips])
    with cs.ChipTiles(chips, BANDS, [], tile=16) as tiles:
        _, valid = tiles.read([(0, 0, 0)], None)
    assert int(valid.sum()) == 256


def test_masks_whose_nodata_is_their_mine_value_keep_the_mine_pixels_labelled(tmp_path):
    """0/255 masks declaring nodata 255, their only non-zero value: 255 is the mine value, so the 16 mine pixels
    stay labelled (valid) and are not dropped as unlabelled."""
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    chips = [_chip(str(tmp_path), "a0", mask, _at(0, 0), UTM, seed=1, nodata=255),
             _chip(str(tmp_path), "a1", mask.copy(), _at(0, 40), UTM, seed=2, nodata=255)]
    with cs.ChipTiles(chips, BANDS, [], tile=16) as tiles:
        assert int(tiles.masks[(0, 0, 0)].sum()) == 16
        _, valid = tiles.read([(0, 0, 0)], None)
    assert int(valid.sum()) == 256
    assert int(valid[0][4:8, 4:8].sum()) == 16


# ---------------------------------------------------------------------------
# Chips sharing ground
# ---------------------------------------------------------------------------


def test_tiles_overlapping_diagonally_are_a_pair():
    """Square tiles of side 1 whose centres are 0.75 apart in x and in y share ground (the overlap is by each axis,
    not by the distance between centres, which is 1.06)."""
    assert cs.overlap_pairs([[0.0, 0.0], [0.75, 0.75]]).tolist() == [[0, 1]]
    assert cs.overlap_pairs([[0.0, 0.0], [1.0, 0.0]]).tolist() == []


def test_chips_overlapping_by_one_column_are_one_group():
    """Two 32 x 32 chips whose origins are 31 pixels apart share one column of ground: one hold-out group. Chips
    32 pixels apart only touch: two groups."""
    grids = [(UTM, _at(0, 0), 32, 32), (UTM, _at(0, 31), 32, 32)]
    assert cs.chip_groups(["A", "B"], grids, ["", ""]).tolist() == [0, 0]
    grids = [(UTM, _at(0, 0), 32, 32), (UTM, _at(0, 32), 32, 32)]
    assert cs.chip_groups(["A", "B"], grids, ["", ""]).tolist() == [0, 1]


def test_unrelated_chips_sharing_a_black_and_a_saturated_block_stay_apart(tmp_path):
    """Two unrelated chips without georeference, each with a black (0) and a saturated (65535) block at the same
    place, share no ground: blocks of one value are not content to match on, so they stay two groups."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3000, (64, 64)).astype(np.uint16)
    b = rng.integers(0, 3000, (64, 64)).astype(np.uint16)
    for band in (a, b):
        band[:16, :16] = 0
        band[:16, 16:32] = 65535
    paths = [_write(str(tmp_path / "a.tif"), a), _write(str(tmp_path / "b.tif"), b)]
    assert cs.chip_groups(["A", "B"], [None, None], paths).tolist() == [0, 1]


def test_byte_identical_small_chips_without_georeference_are_one_group(tmp_path):
    """One 12 x 12 chip exported twice under two names (too small for content blocks) is the same ground: one
    group, so it is never on both sides of a split."""
    a = np.random.default_rng(3).integers(0, 3000, (12, 12)).astype(np.uint16)
    paths = [_write(str(tmp_path / "a.tif"), a), _write(str(tmp_path / "a_copy.tif"), a)]
    assert cs.chip_groups(["A", "Acopy"], [None, None], paths).tolist() == [0, 0]


def test_a_12_m_chip_among_10_m_chips_is_named():
    """A chip of 12 m pixels among 10 m ones (20 % off, over the 10 % tolerance) is named in one warning; the
    median stays 10 m."""
    log = core_warnings()
    size = cs.median_pixel_size(["a", "b", "c12m"], [[10.0, 10.0], [10.0, 10.0], [12.0, 12.0]], log)
    assert size == [10.0, 10.0]
    assert len(log.warnings) == 1
    assert log.warnings[0].startswith("1 of 3 chips have pixels more than 10 % from the chips' median ground size "
                                      "(10 m): c12m (12 m). ")


# ---------------------------------------------------------------------------
# Mine classifier folds
# ---------------------------------------------------------------------------


def test_folds_are_capped_at_four_when_mines_are_in_four_chips():
    """Mines in 4 chips and 5 folds asked: 4 folds, with a warning saying why (a fifth fold would hold no mine)."""
    from oremap.core.sentinel2 import mine_classifier as mc

    y = np.array([1] * 8 + [0] * 40)
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3] + list(range(4, 44)))
    log = core_warnings()
    assert mc._cap_folds_by_groups(y, groups, 5, log) == 4
    assert log.warnings == ["The mines come from 4 chips or spatial blocks only: 4 folds instead of 5."]


def test_a_buffer_that_would_leave_no_training_mine_is_not_applied():
    """When leaving out the training patches that overlap a held-out one would leave a class without training
    patches, the training set is kept as it is and the buffer is reported as not applied."""
    from oremap.core.sentinel2 import mine_classifier as mc

    y = np.array([1, 1, 0, 0, 0, 0])
    kept, applied = mc._buffered(np.array([1, 2, 3, 4]), np.array([0, 5]), np.array([[0, 1]]), y)
    assert kept.tolist() == [1, 2, 3, 4] and applied is False


# ---------------------------------------------------------------------------
# Rasters: scale/offset, band names
# ---------------------------------------------------------------------------


def test_row_vrt_takes_its_offset_from_the_bias(tmp_path):
    """A row-range VRT of a scene with gain 1e-4 and bias -0.05 reads raw 2000 as reflectance 0.15: the offset is
    the bias, not the gain."""
    from oremap.core.scaleout.batch import row_vrt

    scene = str(tmp_path / "scene.tif")
    with rasterio.open(scene, "w", driver="GTiff", width=4, height=4, count=2, dtype="uint16",
                       transform=Affine(30, 0, 500000, 0, -30, 4000000), crs=CRS.from_epsg(32611)) as dst:
        dst.write(np.full((2, 4, 4), 2000, np.uint16))
    vrt = str(tmp_path / "part.vrt")
    row_vrt(scene, 0, 2, vrt, gain=1e-4, bias=-0.05)
    with rasterio.open(vrt) as src:
        assert src.scales == (1e-4, 1e-4) and src.offsets == (-0.05, -0.05)
        assert float(src.read(1)[0, 0]) * src.scales[0] + src.offsets[0] == pytest.approx(0.15, abs=1e-12)


def test_the_scl_band_is_found_by_its_band_name_tag_alone(tmp_path):
    """A stack whose scene classification band is named only by a BAND_NAME tag (no description): band 2 is taken
    as the SCL band for the cloud mask."""
    from oremap.core.sentinel2 import sentinel2 as s2

    path = str(tmp_path / "stack.tif")
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=2, dtype="uint16") as dst:
        dst.write(np.ones((2, 8, 8), np.uint16))
        dst.update_tags(2, BAND_NAME="SCL")
    with rasterio.open(path) as src:
        assert s2._scl_band(src) == 2


def test_a_grid_sample_applies_the_bands_offset(tmp_path):
    """A grid storing 200 with GDAL scale 0.01 and offset -1 is sampled as 1.0 (200 * 0.01 - 1), offset included."""
    from oremap.core.geochemistry import grid_meaning as gm

    path = str(tmp_path / "scaled.tif")
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="int16",
                       transform=Affine(100, 0, 500000, 0, -100, 4000000), crs=CRS.from_epsg(32611)) as dst:
        dst.write(np.full((1, 64, 64), 200, np.int16))
        dst.scales = (0.01,)
        dst.offsets = (-1.0,)
    values = gm.raster_sample(path, [1])
    assert values.size > 0 and np.all(values == pytest.approx(1.0, abs=1e-12))


def test_micrograms_per_gram_is_ppm_and_per_kilogram_ppb():
    """A field named Au_ug/g holds ppm (1 ug/g = 1 ppm) and Au_ug/kg holds ppb: the grid's unit tag says so."""
    from oremap.core.geochemistry import grid_meaning as gm

    assert gm.units_from_name("Au_ug/g") == "ppm"
    assert gm.units_from_name("Au_ug/kg") == "ppb"


# ---------------------------------------------------------------------------
# VAE: samples scored with a z-score model
# ---------------------------------------------------------------------------


def test_a_z_score_model_takes_its_own_heavy_tailed_training_samples_without_a_word():
    """Samples of a lognormal survey (sigma 2.5) scored by a z-score model fitted on those very samples lie in its
    training range: measured by mean and standard deviation (the z-score's own statistics) there is no warning and
    no refusal."""
    import types

    from oremap.core.geochemistry import vae_anomaly as va

    rng = np.random.default_rng(0)
    names = ["Cu", "Pb", "Zn"]
    values = np.exp(rng.normal(3, 2.5, (2000, 3)))
    prep = va.Preprocessing(below="none", transform="none", scale="zscore", zeros="keep")
    va.prepare(values, names, prep)                      # fits the z-score scaler on these samples
    log = core_warnings()
    va._check_points_for_model(values, types.SimpleNamespace(preprocessing=prep, names=names), log)
    assert log.warnings == []


# ---------------------------------------------------------------------------
# EMIT mask granule beside the reflectance
# ---------------------------------------------------------------------------


REST = "20230101T000000_2300100_001.nc"


def test_the_newest_emit_mask_collection_is_taken(tmp_path):
    """With MASK_001 and MASK_002 beside RFL_001, the newest collection (002, as the mask is published) is read."""
    from oremap.core.hyperspectral import sensor_products as sp

    for name in (f"EMIT_L2A_RFL_001_{REST}", f"EMIT_L2A_MASK_001_{REST}", f"EMIT_L2A_MASK_002_{REST}"):
        (tmp_path / name).write_bytes(b"")
    got = sp._emit_mask(str(tmp_path / f"EMIT_L2A_RFL_001_{REST}"))
    assert got == str(tmp_path / f"EMIT_L2A_MASK_002_{REST}")


def test_a_lower_case_emit_mask_name_is_found(tmp_path):
    """Lower-case EMIT names (emit_l2a_rfl_001_..., emit_l2a_mask_002_...): the mask beside the reflectance is
    found, not a MASK_001 name that does not exist."""
    from oremap.core.hyperspectral import sensor_products as sp

    for name in (f"emit_l2a_rfl_001_{REST}", f"emit_l2a_mask_002_{REST}"):
        (tmp_path / name).write_bytes(b"")
    got = sp._emit_mask(str(tmp_path / f"emit_l2a_rfl_001_{REST}"))
    assert got == str(tmp_path / f"emit_l2a_mask_002_{REST}") and os.path.exists(got)


# ---------------------------------------------------------------------------
# Survey rows read into arrays
# ---------------------------------------------------------------------------


def test_survey_rows_are_those_filled_when_fewer_came_than_announced():
    """A provider announcing 5 features that gives 3: exactly those 3 rows come back, in order, without 2 rows of
    uninitialised memory."""
    from oremap.algorithms.survey_input import _Rows

    rows = _Rows(5, 1)
    for fid in (10, 11, 12):
        rows.next_row(fid)[:] = [float(fid)]
    ids, values = rows.arrays()
    assert ids.tolist() == [10, 11, 12]
    assert values.tolist() == [[10.0], [11.0], [12.0]]


# ---------------------------------------------------------------------------
# One spelling of a class name
# ---------------------------------------------------------------------------


def test_mixed_case_is_kept_before_all_capitals():
    """A class spelt KAOLINITE once and Kaolinite once becomes Kaolinite (mixed case before all capitals), in
    either order."""
    from oremap.core.engine.names import one_spelling

    assert one_spelling(["KAOLINITE", "Kaolinite"], "x", "") == ["Kaolinite", "Kaolinite"]
    assert one_spelling(["Kaolinite", "KAOLINITE"], "x", "") == ["Kaolinite", "Kaolinite"]


def test_a_precomposed_accent_is_kept_before_a_combining_one():
    """'Hämatit' spelt once with a combining accent and once precomposed becomes the precomposed spelling, in
    either order."""
    from oremap.core.engine.names import one_spelling

    pre = "H\u00e4matit"
    comb = unicodedata.normalize("NFD", pre)
    assert comb != pre
    assert one_spelling([comb, pre], "x", "") == [pre, pre]
    assert one_spelling([pre, comb], "x", "") == [pre, pre]


# ---------------------------------------------------------------------------
# Prospectivity maps at two memory budgets
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_prospectivity_model(tmp_path_factory):
    """A prospectivity ResNet (8-cell window, one epoch, no folds) saved for the synthetic 192 x 192 stack."""
    from test_prospectivity_cnn import make_stack
    from oremap.core.geochemistry import prospectivity_cnn as pc

    folder = tmp_path_factory.mktemp("budget_maps")
    stack, model = str(folder / "stack.tif"), str(folder / "model.onnx")
    deposits, _ = make_stack(stack)
    pc.train_prospectivity(stack, deposits, model, None, window=8, depth=18, width=4, epochs=1, batch_size=32,
                           n_folds=0, negatives_per_positive=2, jitter_copies=1, seed=0, threads=1)
    return stack, model, folder


def _budget_maps(model_setup, budgets, **options):
    from oremap.core.geochemistry import prospectivity_mapping as pm

    stack, model, folder = model_setup
    return [pm.prospectivity_map(stack, model, str(folder / f"map_{len(os.listdir(folder))}.tif"), memory_mb=mb,
                                 threads=1, max_cells=0, **options)["probabilities"] for mb in budgets]


def test_a_sliding_map_sends_the_same_onnxruntime_calls_at_any_budget(small_prospectivity_model, monkeypatch):
    """onnxruntime may sum a window's statistics in another order in a call of another size (the comparison
    ensemble's map changed with the budget): each call must hold the same windows whatever the budget. Emulated by
    a runtime whose answer depends on its call's size, with 5 windows a call, the map at 512 MB and at 0.05 MB (3
    windows cut at once) is the same."""
    from oremap.core.engine.model_format import OnnxModel
    from oremap.core.geochemistry import prospectivity_mapping as pm

    sizes = []

    class CallSized:
        def __init__(self, session):
            self._session = session

        def __getattr__(self, name):
            return getattr(self._session, name)

        def run(self, names, feeds):
            n = next(iter(feeds.values())).shape[0]
            sizes.append(n)
            return [out + np.float32(0.01 * n) for out in self._session.run(names, feeds)]

    def opened(*args, **kwargs):
        model = OnnxModel(*args, **kwargs)
        model._session = CallSized(model._session)
        return model

    monkeypatch.setattr(pm, "OnnxModel", opened)
    monkeypatch.setattr(pm, "_batch_windows", lambda model: 5)
    calls = []
    maps = []
    for mb in (512, 0.05):
        sizes.clear()
        maps += _budget_maps(small_prospectivity_model, [mb], mode="sliding", stride=2)
        calls.append(list(sizes))
    assert maps[0].shape == (96, 96) and int(np.isfinite(maps[0]).sum()) == 96 * 96 - 195
    assert calls[0] == calls[1] and set(calls[0]) <= {1, 2, 3, 4, 5} and calls[0].count(5) > 1000
    np.testing.assert_array_equal(maps[1], maps[0])


def test_whole_cell_windows_are_summed_in_the_same_row_pieces_at_any_budget(small_prospectivity_model,
                                                                             monkeypatch):
    """A whole-cell ('resize') window is summed from the raster in pieces of 8 rows counted from the cell's first
    row, whatever rows the budget lets one read hold, so the sums add in the same order: at 512 MB and at 0.05 MB
    (9 rows a read) each 16-row cell is summed as two pieces of 8 rows, and the maps are the same."""
    from oremap.core.geochemistry import prospectivity_mapping as pm

    pieces = []

    class Numpy:
        def __getattr__(self, name):
            return getattr(np, name)

        def einsum(self, subscripts, *operands, **kwargs):
            if subscripts == "ih,chw,jw->cij":
                pieces.append(operands[0].shape[1])
            return np.einsum(subscripts, *operands, **kwargs)

    monkeypatch.setattr(pm, "np", Numpy())
    heights, maps = [], []
    for mb in (512, 0.05):
        pieces.clear()
        maps += _budget_maps(small_prospectivity_model, [mb], mode="grid", grid=(12, 12), fit="resize")
        heights.append(sorted(set(pieces)))
    assert heights == [[8], [8]]
    np.testing.assert_array_equal(maps[1], maps[0])
    assert int(np.isfinite(maps[0]).sum()) == 141
