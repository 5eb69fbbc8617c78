"""Chip sets of the mine classifier and the mine U-Net (audit of chip mode): chips sharing ground across the hold-out,
masks coded 1 = background / 2 = mine, unlabelled mask pixels taken for background, chips of mixed resolution, and
mines from only one or two chips.

Each test builds a few small 4-band chips (and their masks) whose answer is known by construction.
"""

import os
import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from conftest import core_warnings
from test_chip_mask_grids import _write
from oremap.core.engine.errors import OreMapError
from oremap.core.sentinel2 import chip_sets as cs
from oremap.core.sentinel2 import mine_classifier as mc
from oremap.core.sentinel2 import patch_sets

BANDS = ["B2", "B3", "B4", "B8"]
UTM = CRS.from_epsg(32629)
ORIGIN = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def _chip(folder, name, mask, transform=None, crs=None, seed=0, nodata=None):
    """An image chip (4 bands, mine pixels bright) with its mask; mask values as given (``nodata`` declared)."""
    rng = np.random.default_rng(seed)
    mask = np.asarray(mask)
    dn = rng.integers(800, 1500, size=(len(BANDS),) + mask.shape).astype(np.uint16)
    dn[:, (mask != 0) & (mask != (nodata if nodata is not None else 0))] += 2000
    image = _write(os.path.join(folder, f"{name}.tif"), dn, transform, crs, BANDS)
    return cs.Chip(name=name, raster=image,
                   mask=_write(os.path.join(folder, f"{name}_mask.tif"), mask, transform, crs, nodata=nodata))


def _pit(size=32):
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[2:14, 2:14] = 1
    return mask


def _at(row, col):
    """The transform of a chip whose top-left pixel is ``(row, col)`` of a 10 m UTM grid."""
    return ORIGIN * Affine.translation(col, row)


# ---------------------------------------------------------------------------
# 1. Chips sharing ground are one hold-out group
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sharing(tmp_path_factory):
    """Chips A, B (B overlaps the east half of A: a stride of half a chip), C (touches B's east edge only), H (alone,
    south), D (H's ground in EPSG:4326), E and F (one chip without georeference, exported twice under two names) and
    G (another chip without georeference). Expected groups: A B | C | H D | E F | G."""
    folder = str(tmp_path_factory.mktemp("sharing"))
    chips = [_chip(folder, "A", _pit(), _at(0, 0), UTM, seed=1), _chip(folder, "B", _pit(), _at(0, 16), UTM, seed=2),
             _chip(folder, "C", _pit(), _at(0, 48), UTM, seed=3), _chip(folder, "H", _pit(), _at(64, 0), UTM, seed=4)]
    west, south, east, north = transform_bounds(UTM, "EPSG:4326", *rasterio.transform.array_bounds(32, 32, _at(64, 0)))
    geo = rasterio.transform.from_bounds(west, south, east, north, 32, 32)
    chips.append(_chip(folder, "D", _pit(), geo, CRS.from_epsg(4326), seed=5))
    chips.append(_chip(folder, "E", _pit(), seed=6))
    shutil.copyfile(chips[-1].raster, os.path.join(folder, "F.tif"))
    shutil.copyfile(chips[-1].mask, os.path.join(folder, "F_mask.tif"))
    chips.append(cs.Chip(name="F", raster=os.path.join(folder, "F.tif"), mask=os.path.join(folder, "F_mask.tif")))
    chips.append(_chip(folder, "G", _pit(), seed=7))
    return chips


EXPECTED_GROUPS = [0, 0, 1, 2, 2, 3, 3, 4]


def test_classifier_groups_chips_sharing_ground_as_one(sharing):
    """Overlapping chips (stride below the chip), the same ground in another CRS and byte-identical copies were
    grouped by chip file, so the same ground sat on both sides of a split (F1 0.988 against 0.968 by ground)."""
    log = core_warnings()
    ps = patch_sets.patches_from_chips(sharing, patch_size=16, min_overlap=0.05, bands=BANDS, feedback=log)
    chip_of = [next(k for k, c in enumerate(sharing) if name.startswith(c.name + "_")) for name in ps.names]
    assert ps.groups.tolist() == [EXPECTED_GROUPS[k] for k in chip_of]
    assert sorted(set(chip_of)) == list(range(8))          # every chip gave patches
    assert any("6 chips share ground" in w and "3 group(s)" in w for w in log.warnings)
    assert any("2 chips without georeference are byte-identical" in w for w in log.warnings)


def test_unet_blocks_are_groups_of_chips_sharing_ground(sharing):
    """The U-Net's block was the chip file: 100 % of the held-out mine pixels lay inside a training chip."""
    log = core_warnings()
    with cs.ChipTiles(sharing, BANDS, [], tile=16, feedback=log) as tiles:
        assert [tiles.block((k, 0, 0)) for k in range(8)] == [(g, 0) for g in EXPECTED_GROUPS]
        plan, _, _, _ = tiles.select(0.4, 1.0, 0.5, 0, 512)
    assert any("6 chips share ground" in w for w in log.warnings)
    assert plan.info["n_blocks"] == 5 and plan.val_blocks <= {(g, 0) for g in range(5)}


def test_chips_side_by_side_stay_apart(tmp_path):
    """A grid of chips cut side by side (touching edges) keeps one group per chip, without a warning."""
    chips = [_chip(str(tmp_path), f"s{k}", _pit(), _at(32 * (k // 2), 32 * (k % 2)), UTM, seed=k) for k in range(4)]
    log = core_warnings()
    assert cs.chip_groups([c.name for c in chips], [(UTM, _at(32 * (k // 2), 32 * (k % 2)), 32, 32)
                                                    for k in range(4)], [c.raster for c in chips], log).tolist() \
        == [0, 1, 2, 3]
    assert log.warnings == []


# ---------------------------------------------------------------------------
# 2. Masks coded 1 = background, 2 = mine
# ---------------------------------------------------------------------------


def test_masks_coded_1_and_2_are_refused_naming_the_masks(tmp_path):
    """Masks coded 1 = background, 2 = mine trained the U-Net on 'everything is mine' and the classifier blamed
    the label count (72 mine patches, 0 without)."""
    chips = [_chip(str(tmp_path), f"c{k}", _pit() + 1, _at(0, 40 * k), UTM, seed=k) for k in range(3)]
    for read in (lambda: patch_sets.patches_from_chips(chips, patch_size=16, bands=BANDS),
                 lambda: cs.ChipTiles(chips, BANDS, [], tile=16)):
        with pytest.raises(OreMapError) as err:
            read()
        assert err.value.parameter == "masks"
        assert "values found: 1, 2" in err.value.message and "0 must be background" in err.value.message
        assert "100.0 % of the labelled mask pixels are non-zero" in err.value.message


def test_mask_sets_mostly_mine_are_refused_and_one_all_mine_chip_is_not(tmp_path):
    almost = np.ones((32, 32), np.uint8)
    almost[0, :20] = 0                               # 20 of 1024 pixels background: 98.0 % mine
    with pytest.raises(OreMapError) as err:
        patch_sets.patches_from_chips([_chip(str(tmp_path), "a", almost, _at(0, 0), UTM)], patch_size=16,
                                      bands=BANDS)
    assert err.value.parameter == "masks"
    assert "98.0 %" in err.value.message and "values found: 0, 1" in err.value.message
    # one chip all mine beside one of background: the set is 50 % mine, accepted
    cs.check_mask_values([_write(str(tmp_path / "b_mask.tif"), np.full((32, 32), 255, np.uint8)),
                          _write(str(tmp_path / "c_mask.tif"), np.zeros((32, 32), np.uint8))])
    # 0/255 masks whose nodata is their mine value, unlabelled (nodata) pixels left out of the count
    ones = np.full((32, 32), 255, np.uint8)
    ones[:, :4] = 0
    cs.check_mask_values([_write(str(tmp_path / "d_mask.tif"), ones, nodata=255)])   # 0 labelled pixels are mine


# ---------------------------------------------------------------------------
# 3. Unlabelled mask pixels (the mask's nodata) are neither mine nor background
# ---------------------------------------------------------------------------


def _half_labelled(folder):
    """Chip u: 16 x 16, columns 0-3 unlabelled (nodata 255), a mine in columns 4-5 (2 of its 12 labelled columns:
    16.7 % of the labelled pixels, 12.5 % of all); chip v: 16 x 16 all labelled, a 8 x 8 mine (25 %)."""
    u = np.zeros((16, 16), np.uint8)
    u[:, :4] = 255
    u[:, 4:6] = 1
    v = np.zeros((16, 16), np.uint8)
    v[:8, :8] = 1
    return [_chip(folder, "u", u, _at(0, 0), UTM, seed=1, nodata=255),
            _chip(folder, "v", v, _at(0, 40), UTM, seed=2, nodata=255)]


def test_classifier_counts_unlabelled_pixels_as_nodata(tmp_path):
    chips = _half_labelled(str(tmp_path))
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.15, bands=BANDS)
    # the mine share of chip u over its labelled pixels is 2/12 >= 0.15: a mine (over all pixels 2/16: left out)
    assert list(zip(ps.names, ps.labels.tolist())) == [("u_row0_col0", 1), ("v_row0_col0", 1)]
    # 4 of 16 columns unlabelled = 25 % nodata: left out at max_nodata 0.2
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.05, max_nodata=0.2, bands=BANDS)
    assert ps.names == ["v_row0_col0"]


def test_unet_tiles_leave_unlabelled_pixels_out_of_the_valid_mask(tmp_path):
    chips = _half_labelled(str(tmp_path))
    with cs.ChipTiles(chips, BANDS, [], tile=16) as tiles:
        _, V = tiles.read([(0, 0, 0), (1, 0, 0)], None)
        assert int(tiles.masks[(0, 0, 0)].sum()) == 32
    assert V[0].sum() == 16 * 12 and not V[0][:, :4].any() and V[1].all()


# ---------------------------------------------------------------------------
# 4. Chips of mixed resolution
# ---------------------------------------------------------------------------


def test_chips_of_another_pixel_size_are_named_and_the_median_recorded(tmp_path):
    """A 20 m chip sorting first among 10 m chips: mixed silently, and the U-Net recorded 20 m."""
    coarse = Affine(20.0, 0.0, 500000.0, 0.0, -20.0, 3990000.0)
    chips = [_chip(str(tmp_path), "a20m", _pit(), coarse, UTM, seed=9)]
    chips += [_chip(str(tmp_path), f"b10m_{k}", _pit(), _at(0, 40 * k), UTM, seed=k) for k in range(3)]
    log = core_warnings()
    with cs.ChipTiles(chips, BANDS, [], tile=16, feedback=log) as tiles:
        assert tiles.pixel_size_m == [10.0, 10.0] and tiles.pixel_size == [10.0, 10.0]
    said = [w for w in log.warnings if "median ground size" in w]
    assert len(said) == 1 and "1 of 4 chips" in said[0] and "a20m (20 m)" in said[0] and "b10m" not in said[0]
    log = core_warnings()
    ps = patch_sets.patches_from_chips(chips, patch_size=16, bands=BANDS, feedback=log)
    assert ps.pixel_size_m == [10.0, 10.0]
    assert any("a20m (20 m)" in w for w in log.warnings)


def test_unet_from_mixed_chips_records_the_median_pixel_size(tmp_path):
    from oremap.core.sentinel2 import mine_segmentation as ms

    coarse = Affine(20.0, 0.0, 500000.0, 0.0, -20.0, 3990000.0)
    chips = [_chip(str(tmp_path), "a20m", _pit(), coarse, UTM, seed=9)]
    chips += [_chip(str(tmp_path), f"b10m_{k}", _pit(), _at(0, 40 * k), UTM, seed=k) for k in range(3)]
    result = ms.train_mine_segmentation(None, None, chips=chips, bands=BANDS, indices=[], tile=16, depth=1, width=4,
                                        epochs=1, threads=1, seed=0)
    spatial = result.info.extra["spatial"]
    assert spatial["pixel_size_m"] == [10.0, 10.0] and spatial["pixel_size"] == [10.0, 10.0]


# ---------------------------------------------------------------------------
# 5. Mines from only one or two chips
# ---------------------------------------------------------------------------


def test_folds_are_capped_at_the_chips_holding_mines():
    """Mines in 2 of 6 chips, 4 folds asked: 2 folds, each holding one chip's mines (2 of 4 folds held none)."""
    y = np.zeros(60, int)
    y[[0, 1, 2, 3, 10, 11, 12, 13]] = 1
    groups = np.repeat(np.arange(6), 10)
    log = core_warnings()
    folds = mc.make_folds(y, groups, 4, 0, log)
    assert len(folds) == 2 and sorted(int(y[te].sum()) for _, te in folds) == [4, 4]
    assert any("mines come from 2 chips or spatial blocks only: 2 folds instead of 4" in w for w in log.warnings)


def test_mines_from_one_chip_are_said_to_leave_held_out_figures_unmeasured():
    """Mines in 1 chip of 21: F1 0 was reported without a word."""
    y = np.zeros(84, int)
    y[:3] = 1
    groups = np.repeat(np.arange(21), 4)
    log = core_warnings()
    folds = mc.make_folds(y, groups, 5, 0, log)
    assert len(folds) == 3   # the 3 mine patches still cap the folds
    assert any("mines come from 1 chip or spatial block: held-out figures cannot be measured" in w
               for w in log.warnings)


# ---------------------------------------------------------------------------
# 6. Chips overlapping in a chain
# ---------------------------------------------------------------------------


def _chain(folder, stride, n=8):
    """``n`` chips of 32 x 32 pixels in a row, each ``stride`` pixels east of the last (a pit of mine pixels in each):
    one group of chips sharing ground."""
    return [_chip(folder, f"K{k}", _pit(), _at(0, stride * k), UTM, seed=10 + k) for k in range(n)]


@pytest.mark.parametrize("stride, n", [(16, 12), (8, 20)])   # 2,080 and 1,840 m of ground: three blocks
def test_chips_in_a_chain_are_held_out_by_spatial_block(tmp_path, stride, n):
    """Chips cut from one scene with a stride below the chip size are one group of chips sharing ground: held out by
    chip, every fold held all the mines or none (the folds fell back to ungrouped ones, with a warning). The folds are
    spatial blocks of the patch centres (5 patch widths) instead, and the share of patches overlapping a patch of
    another block is said: none when the patches of overlapping chips coincide (stride 16 = the patch size)."""
    chips = _chain(str(tmp_path), stride, n)
    log = core_warnings()
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.05, bands=BANDS, feedback=log)
    assert set(ps.groups.tolist()) == {0} and ps.centres.shape == (ps.n, 2) and ps.pixel_size == 10.0
    # by hand: patch squares of 160 m, blocks of 800 m; a patch overlapping one of another block
    x, y = ps.centres[:, 0], ps.centres[:, 1]
    block = [(int(np.floor(a / 800)), int(np.floor(b / 800))) for a, b in zip(x, y)]
    touching = [any(abs(x[i] - x[j]) < 160 and abs(y[i] - y[j]) < 160 and block[i] != block[j]
                    for j in range(ps.n)) for i in range(ps.n)]
    expected = 100 * np.mean(touching)
    assert (expected == 0) == (stride == 16)
    result = mc.train_mine_classifier(ps, "hgb", n_folds=3, inner_folds=2, feedback=log)
    assert len(set(block)) == 3 and result["block_size"] == 800.0 and result["cv"]["n_folds"] == 3
    said = [w for w in log.warnings if w.startswith("The chips overlap in chains (1 group(s)")]
    assert len(said) == 1 and f"; {expected:.1f} % of the patches overlap a patch of another block" in said[0]
    assert not any("not spatially grouped" in w for w in log.warnings)
    # the buffer: no fold trains on a patch that overlaps one of its held-out patches
    for fold in result["cv"]["folds"]:
        assert not any(abs(x[i] - x[j]) < 160 - 1e-6 and abs(y[i] - y[j]) < 160 - 1e-6
                       for i in fold["train"] for j in fold["test"])
        left_out = sum(any(abs(x[i] - x[j]) < 160 - 1e-6 and abs(y[i] - y[j]) < 160 - 1e-6 for j in fold["test"])
                       for i in range(ps.n) if i not in set(fold["test"]))
        assert fold["n_buffered"] == left_out and fold["train"].size + left_out + fold["test"].size == ps.n
    assert (sum(f["n_buffered"] for f in result["cv"]["folds"]) > 0) == (stride == 8)


def test_patches_of_chips_with_oblong_pixels_overlap_by_each_axis_size(tmp_path):
    """Pixels of 10 m x 20 m (chips cut southwards with a stride of 8 rows): patches of 16 pixels are 160 m wide and
    320 m tall. The overlap test took the x size for both axes, so patches 160 m apart north-south were not
    overlapping: the share said was too low and no fold left them out of its training (no buffer)."""
    t0 = Affine(10.0, 0.0, 500000.0, 0.0, -20.0, 4000000.0)
    chips = [_chip(str(tmp_path), f"S{k}", _pit(), t0 * Affine.translation(0, 8 * k), UTM, seed=30 + k)
             for k in range(20)]
    log = core_warnings()
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.05, bands=BANDS, feedback=log)
    assert ps.pixel_size_xy == [10.0, 20.0]
    x, y = ps.centres[:, 0], ps.centres[:, 1]
    result = mc.train_mine_classifier(ps, "hgb", n_folds=3, inner_folds=2, feedback=log)
    block = result["block_size"]
    blocks = [(int(np.floor(a / block)), int(np.floor(b / block))) for a, b in zip(x, y)]

    def overlap(i, j):
        return abs(x[i] - x[j]) < 160 - 1e-6 and abs(y[i] - y[j]) < 320 - 1e-6

    expected = 100 * np.mean([any(overlap(i, j) and blocks[i] != blocks[j] for j in range(ps.n))
                              for i in range(ps.n)])
    assert expected > 0
    said = [w for w in log.warnings if w.startswith("The chips overlap in chains")]
    assert len(said) == 1 and f"; {expected:.1f} % of the patches overlap a patch of another block" in said[0]
    for fold in result["cv"]["folds"]:
        assert not any(overlap(i, j) for i in fold["train"] for j in fold["test"])
    assert sum(f["n_buffered"] for f in result["cv"]["folds"]) > 0


def test_inner_folds_leave_out_training_patches_overlapping_their_held_out_ones():
    """The outer folds were buffered, but the inner folds that tune each fold's threshold trained on patches sharing
    ground with the ones they scored. A model that records what it trains on and scores shows every inner fold
    buffered too: patch k overlaps patches k - 1 and k + 1 of a chain (36 patches in 6 spatial blocks)."""
    n = 36
    y = np.tile([1, 0, 0], n // 3)
    groups = np.arange(n) // 6
    pairs = np.column_stack([np.arange(n - 1), np.arange(1, n)])
    seen = []

    class Recording:
        def fit(self, data, labels):
            self.trained = set(data[:, 0].astype(int).tolist())

        def predict_proba(self, data):
            seen.append((self.trained, set(data[:, 0].astype(int).tolist())))
            return np.full(len(data), 0.5)

    data = np.arange(n, dtype=float)[:, None]
    cv = mc.cross_validate(data, y, groups, Recording, n_folds=3, inner_folds=2, seed=0, overlaps=pairs)
    near = {(int(a), int(b)) for a, b in pairs} | {(int(b), int(a)) for a, b in pairs}
    assert len(seen) == 3 * 2 + 3   # 3 outer folds, each with 2 inner folds and its own fit
    for trained, scored in seen:
        assert not trained & scored and not any((i, j) in near for i in trained for j in scored)
    assert all(f["n_buffered"] > 0 for f in cv["folds"])


def test_unet_tiles_of_chips_in_a_chain_are_held_out_by_blocks_of_ground(tmp_path):
    """The U-Net held chips sharing ground out as one group: chips in a chain were all one group and no mine was held
    out. Its blocks are then squares of ground of block_tiles x block_tiles tiles, the overlap across them said."""
    chips = _chain(str(tmp_path), 8, 20)   # 184 pixels of ground in a row; tiles of 16: 2 per chip side
    log = core_warnings()
    with cs.ChipTiles(chips, BANDS, [], tile=16, feedback=log, chain_block_tiles=4) as tiles:
        # block of 640 m of ground, by tile centre: chip k's tile (0, j) is centred at column 8 k + 16 j + 8
        expected = {(k, i, j): (int(np.floor((500000 + 10 * (8 * k + 16 * j + 8)) / 640)),
                                int(np.floor((4000000 - 10 * (16 * i + 8)) / 640)))
                    for k in range(20) for i in range(2) for j in range(2)}
        assert {ref: tiles.block(ref) for ref in tiles.refs()} == expected
        # by hand: tiles 160 m a side overlap one of another block
        centres = {ref: (8 * ref[0] + 16 * ref[2], 16 * ref[1]) for ref in expected}
        touching = [any(abs(a[0] - b[0]) < 16 and abs(a[1] - b[1]) < 16 and expected[r] != expected[q]
                        for q, b in centres.items()) for r, a in centres.items()]
        plan, _, _, _ = tiles.select(0.4, 1.0, 0.5, 0, 512)
    said = [w for w in log.warnings if w.startswith("The chips overlap in chains (1 group(s)")]
    assert len(said) == 1 and f"; {100 * np.mean(touching):.1f} % of the tiles overlap a tile of another block" in said[0]
    assert f"({len(set(expected.values()))} blocks, " in said[0]
    assert plan.info["n_val_mine_tiles"] > 0 and plan.info["n_train_mine_tiles"] > 0
    # the buffer: no training tile shares ground with a held-out one, and those that would are counted
    chosen = [((k, c // 2, c % 2), side) for k, c, side in zip(plan.rows.tolist(), plan.cols.tolist(), plan.split)]
    train = [centres[r] for r, side in chosen if side == "train"]
    held = [centres[r] for r, side in chosen if side == "val"]
    assert train and held and not any(abs(a[0] - b[0]) < 16 and abs(a[1] - b[1]) < 16 for a in train for b in held)
    val_blocks = {expected[r] for r, side in chosen if side == "val"}
    buffer = {r for r in expected if expected[r] not in val_blocks and
              any(expected[q] in val_blocks and abs(centres[r][0] - centres[q][0]) < 16 and
                  abs(centres[r][1] - centres[q][1]) < 16 for q in expected)}
    assert plan.info["n_buffered"] == len(buffer) > 0
    assert not any("no mine is held out" in w for w in log.warnings)


def test_chips_that_share_no_ground_keep_their_groups_when_mines_are_in_one(tmp_path):
    """The chain fallback is for a group of chips sharing ground that holds every mine: mines in one chip standing
    alone (beside two chips overlapping each other) keep the chips' groups, and what is said is that the mines come
    from one chip (the fallback had said the chips overlap in chains)."""
    folder = str(tmp_path)
    free, two = np.zeros((32, 32), np.uint8), _pit()
    two[18:30, 18:30] = 1
    chips = [_chip(folder, "A", two, _at(0, 0), UTM, seed=1), _chip(folder, "B", free, _at(0, 64), UTM, seed=2),
             _chip(folder, "C", free, _at(0, 80), UTM, seed=3)] + \
        [_chip(folder, f"S{k}", free, _at(64, 64 * k), UTM, seed=4 + k) for k in range(3)]
    log = core_warnings()
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.05, bands=BANDS, feedback=log)
    assert ps.groups.tolist() == [{"A": 0, "B": 1, "C": 1, "S0": 2, "S1": 3, "S2": 4}[n.split("_")[0]] for n in ps.names]
    mc.train_mine_classifier(ps, "hgb", n_folds=3, inner_folds=2, feedback=log)
    with cs.ChipTiles(chips, BANDS, [], tile=16, feedback=log) as tiles:
        assert tiles.spatial is None and tiles.block((0, 0, 0)) == (0, 0)
    assert not any("overlap in chains" in w for w in log.warnings)
    assert any(w.startswith("The mines come from 1 chip or spatial block") for w in log.warnings)


def _cut(folder, stride, n, georeferenced=True):
    """``n`` chips of 32 x 32 pixels cut from one scene (the same pixels where they overlap), ``stride`` pixels apart
    in a row, with or without georeference; a pit of mine pixels in each."""
    rng = np.random.default_rng(40)
    width = 32 + stride * (n - 1)
    dn = rng.integers(800, 1500, size=(len(BANDS), 32, width)).astype(np.uint16)
    mask = np.zeros((32, width), np.uint8)
    for k in range(n):
        mask[2:14, stride * k + 2:stride * k + 14] = 1
    dn[:, mask == 1] += 2000
    chips = []
    for k in range(n):
        cols = slice(stride * k, stride * k + 32)
        transform, crs = (_at(0, stride * k), UTM) if georeferenced else (None, None)
        image = _write(os.path.join(folder, f"P{k}.tif"), dn[:, :, cols], transform, crs, BANDS)
        chips.append(cs.Chip(name=f"P{k}", raster=image,
                             mask=_write(os.path.join(folder, f"P{k}_mask.tif"), mask[:, cols], transform, crs)))
    return chips


def test_chips_without_georeference_cut_from_one_scene_are_one_group(tmp_path):
    """Chips without georeference were joined only when byte-identical: chips cut from one scene at half a chip's
    stride were held out one by one, their ground on both sides of every split. The same pixels in 16-pixel blocks
    join them; with every mine in that one group, the held-out figures are said to be optimistic."""
    chips = _cut(str(tmp_path), 16, 10, georeferenced=False)
    log = core_warnings()
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.05, bands=BANDS, feedback=log)
    assert set(ps.groups.tolist()) == {0} and ps.centres is None
    assert any("10 chips share ground with another chip (overlapping footprints, the same pixels, or copies" in w
               for w in log.warnings)
    result = mc.train_mine_classifier(ps, "hgb", n_folds=3, inner_folds=2, feedback=log)
    assert result["cv"]["grouped"] is False
    assert any("not spatially grouped" in w for w in log.warnings)
    # side by side (no pixel shared) they stay apart
    os.makedirs(tmp_path / "apart")
    apart = _cut(str(tmp_path / "apart"), 32, 4, georeferenced=False)
    assert cs.chip_groups([c.name for c in apart], [None] * 4, [c.raster for c in apart]).tolist() == [0, 1, 2, 3]


def test_chips_in_a_chain_in_two_crss_are_blocked_in_one(tmp_path):
    """A chain whose chips are in two CRSs: the classifier's blocks were keyed by CRS (the same ground in two blocks)
    or, with no common pixel size, the folds fell back to ungrouped ones that the report called grouped by chip; the
    U-Net held no mine out. Positions are now taken to the first chip's CRS."""
    from rasterio.warp import transform_bounds

    folder = str(tmp_path)
    chips = []
    for k in range(12):
        transform, crs = _at(0, 16 * k), UTM
        if k % 2:   # the same ground in EPSG:4326
            west, south, east, north = transform_bounds(UTM, "EPSG:4326",
                                                        *rasterio.transform.array_bounds(32, 32, transform))
            transform, crs = rasterio.transform.from_bounds(west, south, east, north, 32, 32), CRS.from_epsg(4326)
        chips.append(_chip(folder, f"M{k}", _pit(), transform, crs, seed=60 + k))
    log = core_warnings()
    ps = patch_sets.patches_from_chips(chips, patch_size=16, min_overlap=0.05, bands=BANDS, feedback=log)
    assert set(ps.groups.tolist()) == {0} and set(ps.crs_keys) == {UTM.to_string()}
    assert abs(ps.pixel_size - 10.0) < 0.5
    # a 4326 chip's patch centre lies where its UTM twin's ground is
    first = [i for i, name in enumerate(ps.names) if name.startswith("M1_row0_col0")][0]
    assert abs(ps.centres[first][0] - (500000 + 10 * (16 + 8))) < 2 and abs(ps.centres[first][1] - (4000000 - 80)) < 2
    result = mc.train_mine_classifier(ps, "hgb", n_folds=3, inner_folds=2, feedback=log)
    assert result["cv"]["grouped"] and result["block_size"] == pytest.approx(800.0, rel=1e-4)
    assert any(w.startswith("The chips overlap in chains (1 group(s)") for w in log.warnings)
    with cs.ChipTiles(chips, BANDS, [], tile=16, feedback=log, chain_block_tiles=4) as tiles:
        assert tiles.spatial is not None
        assert tiles.block((1, 0, 0)) == tiles.block((0, 0, 1))   # the same ground, one in each CRS


def test_unet_says_when_a_chip_edge_cuts_a_held_out_mine(tmp_path):
    """Side-by-side chips: a mine cut by the edge between a training chip and a held-out one was trained on in part,
    and the U-Net said nothing (only tile edges inside one chip were looked at)."""
    folder = str(tmp_path)
    left, right = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    left[10:20, 26:32] = right[10:20, 0:6] = 1          # one mine across the chips' shared edge
    left[2:6, 2:6] = right[24:30, 24:30] = 1             # one more in each chip
    chips = [_chip(folder, "L", left, _at(0, 0), UTM, seed=71), _chip(folder, "R", right, _at(0, 32), UTM, seed=72)]
    with cs.ChipTiles(chips, BANDS, [], tile=16, feedback=core_warnings()) as tiles:
        assert [tiles.ground_origin((1, i, j)) for i in range(2) for j in range(2)] == [(0, 32), (0, 48), (16, 32),
                                                                                          (16, 48)]
        plan, _, _, _ = tiles.select(0.5, 1.0, 0.5, 0, 512)
    info = plan.info
    assert info["n_val_blocks"] == 1 and info["n_val_mine_tiles"] > 0
    # the held-out chip's part of the shared mine: rows 10-19, 6 columns
    assert info["val_mine_pixels_shared"] == 60


def test_a_mine_in_two_pieces_meeting_one_piece_of_the_next_tile_is_one_mine_in_either_order():
    """Held-out tile (0, 0) holds pixels (15, 3) and (15, 5), two pieces; trained tile (1, 0) below holds (0, 4), which
    touches both diagonally: one mine, 2 held-out pixels shared. Only the higher-numbered piece was joined (the lowest
    label's spread lost its sentinel to scipy's float cval), so 1 was said, or 2 with the tiles listed the other
    way round."""
    from oremap.core.sentinel2.segmentation_data import shared_mine_pixels

    a, b = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    a[15, 3] = a[15, 5] = 1
    b[0, 4] = 1
    split_of = {(0, 0, 0): "val", (0, 1, 0): "train"}.get
    assert shared_mine_pixels({(0, 0, 0): a, (0, 1, 0): b}, split_of) == {(0, 0, 0): 2}
    assert shared_mine_pixels({(0, 1, 0): b, (0, 0, 0): a}, split_of) == {(0, 0, 0): 2}


def test_shared_mine_pixels_count_the_mine_not_the_tile():
    """A held-out tile holding the end of a trained mine and a second, untrained mine: only the first mine's pixels
    are trained on in part. Joined by tile, every pixel of the tile (and of the tiles the second mine reaches) was
    counted: a replay said 100 % where the mines said 37 %."""
    from oremap.core.sentinel2.segmentation_data import shared_mine_pixels

    train, val, beyond = (np.zeros((8, 8), np.uint8) for _ in range(3))
    train[2:4, 6:8] = 1            # a mine reaching the right edge of the training tile (0, 0) ...
    val[3:5, 0:2] = 1              # ... and on into the held-out tile (0, 1): 4 pixels
    val[5:8, 5:8] = 1              # another mine in (0, 1), 9 pixels, going on into (1, 1)
    beyond[0:2, 5:8] = 1           # its other part, held out too: 6 pixels
    masks = {(0, 0): train, (0, 1): val, (1, 1): beyond}
    split_of = lambda ref: "train" if ref == (0, 0) else "val"  # noqa: E731
    assert shared_mine_pixels(masks, split_of) == {(0, 1): 4}
    # the same two tiles in two chips side by side, on one grid of ground pixels
    chips = {(0, 0, 0): train, (1, 0, 0): val, (1, 1, 0): beyond}
    ground = {(0, 0, 0): (0, 0), (1, 0, 0): (0, 8), (1, 1, 0): (8, 8)}
    assert shared_mine_pixels(chips, lambda ref: "train" if ref[0] == 0 else "val", ground.get) == {(1, 0, 0): 4}
    assert shared_mine_pixels(chips, lambda ref: "train" if ref[0] == 0 else "val") == {}   # without the grid


def test_chips_without_georeference_sharing_only_flat_or_masked_blocks_stay_apart(tmp_path):
    """Content joining took an all-NaN block (NaN != NaN) or a block of two values (nodata and saturation) for shared
    ground: four unrelated chips with a cloud-masked corner became one group."""
    rng = np.random.default_rng(5)
    paths = []
    for k in range(4):
        band = rng.uniform(0.05, 0.4, (1, 48, 48)).astype(np.float32)
        band[0, :16, :16] = np.nan                          # masked corner
        band[0, 16:32, :16] = np.where(np.arange(16) < 8, 0.0, 1.0)[None, :]   # nodata / saturated stripes
        paths.append(_write(str(tmp_path / f"U{k}.tif"), band, None, None, ["B2"]))
    assert cs.chip_groups([f"U{k}" for k in range(4)], [None] * 4, paths).tolist() == [0, 1, 2, 3]


def test_unet_finds_mines_cut_by_chip_edges_off_the_tile_grid(tmp_path):
    """Chips whose size is not a whole number of tiles (24-pixel chips, 16-pixel tiles; 120-pixel BigEarthNet-style
    chips with 128-pixel tiles) lie on no common grid of tiles: a mine cut by the edge between two of them went
    unsaid. They lie on one grid of pixels, on which the mine's two parts touch."""
    folder = str(tmp_path)
    left, right = np.zeros((24, 24), np.uint8), np.zeros((24, 24), np.uint8)
    left[4:8, 20:24] = right[4:8, 0:4] = 1              # one mine across the chips' shared edge: 16 + 16 pixels
    left[2:5, 2:5] = right[2:5, 10:13] = 1               # one more in each chip
    chips = [_chip(folder, "L", left, _at(0, 0), UTM, seed=81), _chip(folder, "R", right, _at(0, 24), UTM, seed=82)]
    with cs.ChipTiles(chips, BANDS, [], tile=16, feedback=core_warnings()) as tiles:
        assert tiles.ground_origin((1, 0, 1)) == (0, 40)
        plan, _, _, _ = tiles.select(0.5, 1.0, 0.2, 0, 512)
    assert plan.info["n_val_blocks"] == 1 and plan.info["val_mine_pixels_shared"] == 16
