"""Training the mine U-Net from many chips (issue 21, point 3): a folder of image chips with a folder of mask chips,
or several scenes each with its own polygon layer in its own CRS; hold-out grouped by chip; background tiles
streamed past the memory budget.

The chips are cut from a test scene of ``s2_scene`` (synthetic mines painted into real BigEarthNet backgrounds).
The known answer of the main test: training from the chip folder gives the very model that training from the same
chips pasted side by side into one raster (with polygons of the same mine pixels) gives.
"""

import os
import re

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from oremap.core.engine.errors import OreMapError
from oremap.core.sentinel2 import chip_sets as cs
from oremap.core.sentinel2 import mine_segmentation as ms
from oremap.core.sentinel2 import segmentation_data as sd

TRAIN = dict(tile=64, depth=2, width=4, epochs=3, lr=0.005, seed=0, threads=1, val_fraction=0.25)


def _write(path, data, transform, crs, descriptions=None, dtype=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=dtype or data.dtype, crs=crs, transform=transform) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)
    return str(path)


@pytest.fixture(scope="module")
def chipset(tmp_path_factory):
    """10 chips of 64 x 64 (2 rows x 5 columns of a 128 x 320 scene) with mask chips, and the same chips pasted in
    one row (64 x 640) with polygons of their mine pixels."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    from oremap.core.sentinel2.sentinel2 import S2_BANDS
    from s2_scene import make_scene

    root = tmp_path_factory.mktemp("chips")
    scene = make_scene(str(root / "scene"), seed=4, size=(128, 320), n_mines=4)
    images, masks = root / "images", root / "masks"
    os.makedirs(images)
    os.makedirs(masks)
    label = sd.rasterise_window(list(gpd.read_file(scene["mines"]).geometry), scene["transform"], 0, 0, 128, 320)
    pasted = np.zeros((12, 64, 640), dtype=np.uint16)
    pasted_mask = np.zeros((64, 640), dtype=np.uint8)
    with rasterio.open(scene["raster"]) as ds:
        k = 0
        for r in range(2):
            for c in range(5):
                window = Window(c * 64, r * 64, 64, 64)
                dn = ds.read(window=window)
                t = ds.window_transform(window)
                _write(images / f"site_{k:02d}.tif", dn, t, ds.crs, S2_BANDS)
                mask = label[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] * 255  # published masks: 0 / 255
                _write(masks / f"site_{k:02d}_mask.tif", mask, t, ds.crs)
                pasted[:, :, k * 64:(k + 1) * 64] = dn
                pasted_mask[:, k * 64:(k + 1) * 64] = mask > 0
                k += 1
        crs = ds.crs
    t_pasted = Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0)
    raster = _write(root / "pasted.tif", pasted, t_pasted, crs, S2_BANDS)
    polygons = [shape(g) for g, v in shapes(pasted_mask, mask=pasted_mask > 0, transform=t_pasted) if v == 1]
    mines = str(root / "pasted_mines.gpkg")
    gpd.GeoDataFrame({"id": range(len(polygons))}, geometry=polygons, crs=crs.to_wkt()).to_file(mines, driver="GPKG")
    n_mine_chips = int(sum(pasted_mask[:, k * 64:(k + 1) * 64].any() for k in range(10)))
    return dict(images=str(images), masks=str(masks), raster=raster, mines=mines, scene=scene, root=root,
                n_mine_chips=n_mine_chips, pasted_mask=pasted_mask)


def test_chips_and_masks_are_paired_by_name(chipset, tmp_path):
    chips = cs.find_chip_pairs(chipset["images"], chipset["masks"])
    assert [c.name for c in chips] == [f"site_{k:02d}" for k in range(10)]
    assert [os.path.basename(c.mask) for c in chips] == [f"site_{k:02d}_mask.tif" for k in range(10)]
    assert cs._stem_key("mask_site_03.png") == cs._stem_key("site_03_gt.tif") == "site_03"
    # a chip without its mask is refused, naming it and the masks parameter
    os.makedirs(tmp_path / "m")
    for k in range(9):
        os.link(os.path.join(chipset["masks"], f"site_{k:02d}_mask.tif"), tmp_path / "m" / f"site_{k:02d}_mask.tif")
    with pytest.raises(OreMapError) as err:
        cs.find_chip_pairs(chipset["images"], str(tmp_path / "m"))
    assert err.value.parameter == "masks" and "site_09.tif" in str(err.value)
    # images and masks in one folder, given as both: the names say which are masks (it said 'two masks match')
    both = tmp_path / "both"
    os.makedirs(both)
    for folder in (chipset["images"], chipset["masks"]):
        for name in os.listdir(folder):
            os.link(os.path.join(folder, name), both / name)
    together = cs.find_chip_pairs(str(both), str(both))
    assert [(c.name, os.path.basename(c.mask)) for c in together] == [(c.name, os.path.basename(c.mask)) for c in chips]
    # an image whose own name holds a mask word: the file of its chip with more such words is the mask
    os.link(both / "site_00.tif", both / "seg 02.tif")
    os.link(both / "site_00_mask.tif", both / "seg 02_mask.tif")
    named = {c.name: os.path.basename(c.mask) for c in cs.find_chip_pairs(str(both), str(both))}
    assert named["seg 02"] == "seg 02_mask.tif" and len(named) == 11


def test_training_from_a_chip_folder_equals_training_from_the_chips_pasted_into_one_raster(chipset):
    chips = cs.find_chip_pairs(chipset["images"], chipset["masks"])
    from_chips = ms.train_mine_segmentation(None, None, chips=chips, negatives_per_positive=-1, **TRAIN)
    pasted = ms.train_mine_segmentation(chipset["raster"], chipset["mines"], block_tiles=1, negatives_per_positive=-1,
                                        **TRAIN)
    a, b = from_chips.plan, pasted.plan
    assert a.info["n_mine_tiles"] == b.info["n_mine_tiles"] == chipset["n_mine_chips"] >= 3
    assert list(a.split) == list(b.split) and list(a.mine_pixels) == list(b.mine_pixels)
    assert list(a.rows) == list(b.cols)  # chip k is tile (0, k) of the pasted raster
    assert a.info["n_val_mine_tiles"] >= 1
    for key in ("val_iou", "val_f1", "train_iou"):
        assert from_chips.metrics[key] == pytest.approx(pasted.metrics[key], abs=1e-6)
    assert from_chips.onnx_bytes == pasted.onnx_bytes
    assert from_chips.info.training["source"] == "10 chips"


def test_hold_out_is_grouped_by_chip_and_backgrounds_are_streamed_past_the_budget(chipset):
    """Chips of four 32-pixel tiles: every chip's tiles fall in one split. A budget holding the mine tiles and a few
    background tiles: those few slots see a fresh draw of backgrounds at every epoch, no tile is lost."""
    from oremap.core.engine.feedback import Feedback
    from oremap.core.sentinel2.segmentation_network import fill_nodata

    class Recorder(Feedback):
        def __init__(self):
            self.lines = []

        def info(self, message):
            self.lines.append(message)

        def warning(self, message):
            self.lines.append("WARNING " + message)

    chips = cs.find_chip_pairs(chipset["images"], chipset["masks"])
    with cs.ChipTiles(chips, None, [], tile=32) as source:
        n_mine_tiles = len(source.masks)
        per_tile_mb = (12 * 4 + 2) * 32 * 32 / 2 ** 20
        budget = 2 * per_tile_mb * (n_mine_tiles + 4) + 1e-9  # mine tiles plus 4 background slots
        fb = Recorder()
        plan, X, Y, V = source.select(0.25, 3.0, 0.5, 0, budget, fb)
        chip_of, split = plan.rows, plan.split
        for k in set(chip_of.tolist()):
            assert len(set(split[chip_of == k])) == 1
        assert plan.stream is not None and len(plan.stream.slots) == 4
        assert any("fit in the memory budget at a time" in line and "streamed" in line for line in fb.lines)
        slots = plan.stream.slots
        before = X[slots].copy()
        assert plan.stream.refill(X, V, Y) == len(slots)
        refs = plan.stream.order[plan.stream.next - len(slots):plan.stream.next]
        fresh, _ = source.read(refs, None)
        np.testing.assert_array_equal(X[slots], fill_nodata(fresh))  # filled as training fills the first draw
        assert not np.array_equal(np.nan_to_num(before, nan=-1), np.nan_to_num(X[slots], nan=-1))
        assert (Y[slots] == 0).all()
    # through training: each epoch after the first draws a new set into the slots
    result = ms.train_mine_segmentation(None, None, chips=chips, tile=32, depth=2, width=4, epochs=3, seed=0,
                                        threads=1, negatives_per_positive=3.0, memory_mb=budget, indices=[])
    stream = result.plan.stream
    assert stream is not None and stream.seen == 3 * len(stream.slots)


def test_several_scenes_each_with_polygons_in_its_own_crs(chipset, tmp_path):
    """Two scenes: one with its polygons in its UTM zone, one with them in EPSG:4326; labels as rasterised in the
    scene's own CRS."""
    import geopandas as gpd

    scene = chipset["scene"]
    mines = gpd.read_file(scene["mines"])
    geo = str(tmp_path / "mines_4326.gpkg")
    mines.to_crs("EPSG:4326").to_file(geo, driver="GPKG")
    chips = cs.chips_from_scenes([(scene["raster"], scene["mines"]), (scene["raster"], geo)])
    with cs.ChipTiles(chips, None, [], tile=64) as source:
        expected = sd.mine_pixels_per_tile(list(mines.geometry), scene["transform"], 128, 320, 64)
        a = {key[1:]: m for key, m in source.masks.items() if key[0] == 0}
        b = {key[1:]: m for key, m in source.masks.items() if key[0] == 1}
        assert sorted(a) == sorted(expected)
        assert all(np.array_equal(a[k], expected[k]) for k in expected)
        agree = np.mean([np.mean(b.get(k, 0) == expected[k]) for k in expected])
        # the two chips are one raster: one ground, one group (chips sharing ground never sit on both sides); that
        # group holds every mine, so the tiles are held out by blocks of ground, a tile's twin in its block
        assert agree > 0.999 and set(source.groups.tolist()) == {0}
        assert all(source.block((1, i, j)) == source.block((0, i, j)) for _, i, j in source.refs())
        assert len({source.block(ref) for ref in source.refs()}) > 1


def test_chip_folders_through_processing(run_alg, chipset, tmp_path):
    from qgis.core import QgsProcessingException

    from oremap.core.engine.model_format import read_model_info

    result = run_alg("train_mine_segmentation", {
        "CHIP_FOLDER": chipset["images"], "MASK_FOLDER": chipset["masks"], "TILE": 64, "DEPTH": 2, "WIDTH": 4,
        "EPOCHS": 1, "INDICES": [], "OUTPUT_MODEL": str(tmp_path / "m.onnx"), "OUTPUT_REPORT": str(tmp_path / "m.html"),
        "OUTPUT_WEIGHTS": str(tmp_path / "m.pt")})
    info = read_model_info(result["OUTPUT_MODEL"])
    assert info.training["source"] == "10 chips" and info.training["metrics"]["n_val_mine_tiles"] >= 1
    assert info.band_names == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
    assert os.path.getsize(str(tmp_path / "m.pt")) > 1000
    # the report describes chips, not one raster of the first chip's size in blocks of tiles
    html = open(str(tmp_path / "m.html"), encoding="utf-8").read()
    assert "10 chips of 64 pixels a side: site_00, site_01, site_02" in html and "Raster" not in html
    assert "chips held out whole" in html and "blocks of" not in html
    assert re.search(r"Example held-out tile \(chip site_\d\d, its tile 1\)", html)
    message = ""
    try:
        run_alg("train_mine_segmentation", {"CHIP_FOLDER": chipset["images"], "OUTPUT_MODEL": str(tmp_path / "x.onnx"),
                                             "OUTPUT_REPORT": str(tmp_path / "x.html")})
    except QgsProcessingException as exc:
        message = str(exc)
    assert "(MASK_FOLDER)" in message and not os.path.exists(str(tmp_path / "x.onnx"))


def test_the_patch_classifier_trains_from_chips_with_folds_grouped_by_chip(run_alg, chipset, tmp_path):
    """Patches of 32 pixels cut from the 10 chips: labels from the masks' share of mine pixels, one group per chip;
    through Processing every held-out fold is made of whole chips."""
    from oremap.core.engine.model_format import read_model_info
    from oremap.core.sentinel2 import patch_sets
    from oremap.core.sentinel2.mine_classifier import cross_validate
    from oremap.core.sentinel2.patch_models import make_model_factory

    chips = cs.find_chip_pairs(chipset["images"], chipset["masks"])
    ps = patch_sets.patches_from_chips(chips, patch_size=32, min_overlap=0.05, bands=["B2", "B3", "B4", "B8"])
    expected, groups = [], []
    for k in range(10):
        mask = chipset["pasted_mask"][:, k * 64:(k + 1) * 64]
        for r in (0, 32):
            for c in (0, 32):
                share = mask[r:r + 32, c:c + 32].mean()
                if share == 0 or share >= 0.05:
                    expected.append(int(share >= 0.05))
                    groups.append(k)
    assert ps.labels.tolist() == expected and ps.groups.tolist() == groups and ps.n_positive >= 3
    cv = cross_validate(ps.features, ps.labels, ps.groups, make_model_factory("hgb", 0), n_folds=3, inner_folds=2)
    for fold in cv["folds"]:
        assert not set(ps.groups[fold["test"]]) & set(ps.groups[fold["train"]])
    result = run_alg("train_mine_classifier", {
        "CHIP_FOLDER": chipset["images"], "MASK_FOLDER": chipset["masks"], "PATCH_SIZE": 32, "MIN_OVERLAP": 0.05,
        "FOLDS": 3, "BANDS": "B2, B3, B4, B8", "OUTPUT_MODEL": str(tmp_path / "c.onnx"),
        "OUTPUT_REPORT": str(tmp_path / "c.html")})
    info = read_model_info(result["OUTPUT_MODEL"])
    assert info.extra["mine_classifier"]["bands"] == ["B2", "B3", "B4", "B8"]
    assert info.training["n_samples"] == len(expected)


def test_a_mask_whose_nodata_is_its_mine_value_keeps_its_mine_pixels(chipset, tmp_path):
    """0/255 masks saved with nodata 255: every mine pixel was read as nodata, so their chips trained as mine-free
    ground, silently. The nodata is taken for the mine value, with a warning; a real nodata beside mine values
    (0/1 masks with nodata 255) still leaves its pixels out."""
    from types import SimpleNamespace

    from conftest import core_warnings

    values = np.array([[0, 255, 255], [0, 0, 255]], dtype=np.uint8)
    log = core_warnings()
    assert cs.mine_pixels(values, 255, "m.tif", log, nodata_is_mine=True).tolist() == [[False, True, True],
                                                                                      [False, False, True]]
    assert log.warnings == ["The mask m.tif declares its only non-zero value (255) as nodata: those pixels are taken "
                            "as mine pixels. Clear the mask's nodata value to silence this."]
    log = core_warnings()
    ones = np.array([[0, 1, 255], [1, 0, 0]], dtype=np.uint8)
    assert cs.mine_pixels(ones, 255, "n.tif", log).tolist() == [[False, True, False], [True, False, False]]
    assert cs.mine_pixels(values, None, "m.tif", log).sum() == 3 and log.warnings == []
    # a chip's published 0/255 mask re-saved with nodata 255 gives the tiles it gives without
    name = next(n for n in sorted(os.listdir(chipset["masks"])) if rasterio.open(os.path.join(chipset["masks"], n))
                .read(1).any())
    with rasterio.open(os.path.join(chipset["masks"], name)) as ds:
        profile, mask = ds.profile, ds.read(1)
    tagged = str(tmp_path / name)
    with rasterio.open(tagged, "w", **dict(profile, nodata=255)) as dst:
        dst.write(mask, 1)
    reader = SimpleNamespace(width=mask.shape[1], height=mask.shape[0])
    log = core_warnings()
    plain = cs._mask_tiles(os.path.join(chipset["masks"], name), reader, 32, name)
    assert cs.nodata_is_mine_value([tagged])
    again = cs._mask_tiles(tagged, reader, 32, name, log, nodata_is_mine=True)
    assert plain and sorted(plain) == sorted(again) and all(np.array_equal(plain[k], again[k]) for k in plain)
    assert len(log.warnings) == 1 and "declares its only non-zero value (255) as nodata" in log.warnings[0]


def test_nodata_is_the_mine_value_only_when_the_whole_mask_set_says_so(chipset, tmp_path):
    """0/1 masks saved with nodata 255, one chip with mines and one mine-free chip with a nodata edge: the edge was
    taken for mine pixels (its chip's only non-zero value); decided over the set, it stays nodata. A set of 0/255
    masks with nodata 255 keeps 255 as its mine value; a negative or fractional nodata never is one."""
    from conftest import core_warnings

    def write(name, values, nodata, profile=None):
        path = str(tmp_path / name)
        profile = dict(profile or dict(driver="GTiff", width=values.shape[1], height=values.shape[0], count=1),
                       dtype=values.dtype, nodata=nodata)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(values, 1)
        return path

    # the known answers of mine_pixels and of the set-level decision on tiny masks
    edge = np.array([[0, 0, 255], [0, 0, 255]], dtype=np.uint8)
    with_mines = write("a_mask.tif", np.array([[0, 1, 255], [1, 0, 255]], dtype=np.uint8), 255)
    mine_free = write("b_mask.tif", edge, 255)
    assert not cs.nodata_is_mine_value([with_mines, mine_free])
    log = core_warnings()
    assert cs.mine_pixels(edge, 255, "b_mask.tif", log).sum() == 0 and log.warnings == []
    assert cs.mine_pixels(edge, 255, "b_mask.tif", log, nodata_is_mine=False).sum() == 0 and log.warnings == []
    tagged = write("c_mask.tif", np.array([[0, 255, 0], [0, 0, 0]], dtype=np.uint8), 255)
    assert cs.nodata_is_mine_value([tagged, write("d_mask.tif", np.zeros((2, 3), np.uint8), 255)])
    assert cs.nodata_is_mine_value([tagged, write("d0_mask.tif", np.zeros((2, 3), np.uint8), None)])
    assert not cs.nodata_is_mine_value([tagged, write("d1_mask.tif", np.eye(2, 3, dtype=np.uint8), None)])
    # one 0/255 set saved both ways (with and without nodata 255): 255 is the mine value of both; lost before
    both = np.array([[0, 255, 255], [0, 0, 255]], dtype=np.uint8)
    assert cs.nodata_is_mine_value([write("g_mask.tif", both, None), write("h_mask.tif", both, 255)])
    assert not cs.nodata_is_mine_value([write("i_mask.tif", both * 0 + np.uint8(7) * (both > 0), None),
                                        write("j_mask.tif", both, 255)])  # 7 where the other set says 255
    assert not cs.nodata_is_mine_value([tagged, write("k_mask.tif", both, 254)])  # two nodata values
    assert not cs.nodata_is_mine_value([write("d2_mask.tif", np.zeros((2, 3), np.uint8), 255)])  # never held
    minus = np.array([[0, -9999.0, -9999.0]], np.float32)
    assert not cs.nodata_is_mine_value([write("e_mask.tif", minus, -9999.0)])
    assert not cs.nodata_is_mine_value([write("f_mask.tif", np.array([[0, 2.5]], np.float32), 2.5)])
    log = core_warnings()
    assert cs.mine_pixels(minus, -9999.0, "e_mask.tif", log, nodata_is_mine=True).sum() == 0 and log.warnings == []

    # through ChipTiles: a chip with mines and a mine-free one, both with a nodata edge in their last 8 columns
    def read(name):
        with rasterio.open(os.path.join(chipset["masks"], name)) as ds:
            return ds.profile, ds.read(1)

    names = sorted(os.listdir(chipset["masks"]))
    mined = max(names, key=lambda n: int((read(n)[1][:, :-8] > 0).sum()))  # mines off the nodata edge
    bare = next(n for n in names if not read(n)[1].any())
    profile, truth = read(mined)[0], read(mined)[1] > 0
    for folder in ("ones", "tagged"):
        os.makedirs(tmp_path / folder)
    sets = {}
    for folder, value in (("ones", 1), ("tagged", 255)):
        paths = []
        for n in (mined, bare):
            m = read(n)[1].astype(np.uint8) // 255 * value
            if folder == "ones":
                m[:, -8:] = 255  # a nodata edge
            paths.append(write(os.path.join(folder, n), m, 255, read(n)[0]))
        sets[folder] = [cs.Chip(name=os.path.splitext(n)[0].replace("_mask", ""),
                                raster=os.path.join(chipset["images"], n.replace("_mask", "")), mask=p)
                        for n, p in zip((mined, bare), paths)]
    expected = truth.copy()
    expected[:, -8:] = False
    assert expected.any()
    log = core_warnings()
    with cs.ChipTiles(sets["ones"], None, [], tile=32, feedback=log) as source:
        got = np.zeros((64, 64), bool)
        for (k, i, j), m in source.masks.items():
            assert k == 0  # the mine-free chip's nodata edge is no mine
            got[i * 32:(i + 1) * 32, j * 32:(j + 1) * 32] = m > 0
    # the chips' own warnings (their processing baseline is unknown) are said once for all; none about the masks
    assert [w for w in log.warnings if not w.startswith("All 2 chips: ")] == []
    assert np.array_equal(got, expected)
    log = core_warnings()
    with cs.ChipTiles(sets["tagged"], None, [], tile=32, feedback=log) as source:
        got = np.zeros((64, 64), bool)
        for (k, i, j), m in source.masks.items():
            assert k == 0
            got[i * 32:(i + 1) * 32, j * 32:(j + 1) * 32] = m > 0
    assert np.array_equal(got, truth) and truth.any()
    masks_said = [w for w in log.warnings if not w.startswith("All 2 chips: ")]
    assert len(masks_said) == 1 and "declares its only non-zero value (255) as nodata" in masks_said[0]


def test_mine_tiles_reaching_over_a_chip_edge_are_said_and_a_tile_larger_than_the_chips_is_named(run_alg, chipset,
                                                                                                 tmp_path):
    """Tiles of 48 pixels on 64-pixel chips: a chip's second tile on either axis holds 16 of its 48 rows or columns
    (a third of it valid, at most), under the half a training tile needs, so mines there were never trained on, and
    the log and report said nothing. Tiles of 128 pixels (twice the chips) were refused blaming the raster's nodata;
    every mine tile dropped was blamed on the polygons, which a chip folder does not have."""
    from qgis.core import QgsProcessingException

    import rasterio as rio
    from conftest import warning_recorder

    dropped = 0
    for name in sorted(os.listdir(chipset["masks"])):
        with rio.open(os.path.join(chipset["masks"], name)) as ds:
            mine = ds.read(1) > 0
        dropped += sum(bool(mine[r * 48:(r + 1) * 48, c * 48:(c + 1) * 48].any())
                       for r in range(2) for c in range(2) if (r, c) != (0, 0))
    assert dropped >= 1
    import processing

    said = warning_recorder()
    result = processing.run("oremap:train_mine_segmentation", {
        "CHIP_FOLDER": chipset["images"], "MASK_FOLDER": chipset["masks"], "TILE": 48, "DEPTH": 2, "WIDTH": 4,
        "EPOCHS": 1, "INDICES": [], "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
        "OUTPUT_REPORT": str(tmp_path / "m.html")}, feedback=said)
    note = [w for w in said.warnings if "tiles holding mines have fewer than 50% valid pixels" in w]
    assert len(note) == 1 and note[0].startswith(f"{dropped} of the ") and "TILE" in note[0]
    html = open(result["OUTPUT_REPORT"], encoding="utf-8").read()
    assert (f"{dropped} tile(s) holding mines left out, with under 50 % valid pixels ({dropped} over a chip's or the "
            "raster's edge)") in html.replace("&#x27;", "'")
    message = ""
    try:
        run_alg("train_mine_segmentation", {
            "CHIP_FOLDER": chipset["images"], "MASK_FOLDER": chipset["masks"], "TILE": 128, "DEPTH": 2, "WIDTH": 4,
            "EPOCHS": 1, "OUTPUT_MODEL": str(tmp_path / "x.onnx"), "OUTPUT_REPORT": str(tmp_path / "x.html")})
    except QgsProcessingException as exc:
        message = str(exc)
    assert "(TILE)" in message and "No tile of 128 x 128 pixels has 50% valid pixels (the best 25%)" in message
    assert not os.path.exists(str(tmp_path / "x.onnx"))
    # every mine in a chip's last corner: each tile holding one is a ninth valid, so none is left: TILE is named
    corner = tmp_path / "corner_masks"
    os.makedirs(corner)
    for name in sorted(os.listdir(chipset["masks"])):
        with rio.open(os.path.join(chipset["masks"], name)) as ds:
            profile = ds.profile
        mask = np.zeros((64, 64), dtype=profile["dtype"])
        mask[52:60, 52:60] = 255
        with rio.open(corner / name, "w", **profile) as dst:
            dst.write(mask, 1)
    message = ""
    try:
        run_alg("train_mine_segmentation", {
            "CHIP_FOLDER": chipset["images"], "MASK_FOLDER": str(corner), "TILE": 48, "DEPTH": 2, "WIDTH": 4,
            "EPOCHS": 1, "OUTPUT_MODEL": str(tmp_path / "y.onnx"), "OUTPUT_REPORT": str(tmp_path / "y.html")})
    except QgsProcessingException as exc:
        message = str(exc)
    assert "(TILE)" in message and "Each of the 10 tiles holding mines has fewer than 50% valid pixels" in message
