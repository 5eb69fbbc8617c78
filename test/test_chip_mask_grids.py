"""Mask chips on the grids of their image chips (audit: chip mode paired chips and masks by name and compared only
their sizes, so masks georeferenced elsewhere, 600 m east, in another UTM zone or south-up, trained on the labels
of another place without a word: U-Net IoU 0.146 -> 0.018, classifier F1 0.69 -> 0.17).

Both readers of chip mode, the segmentation's :class:`core.sentinel2.chip_sets.ChipTiles` and the classifier's
:func:`core.sentinel2.patch_sets.patches_from_chips`, go through one check,
:func:`core.sentinel2.chip_sets.check_mask_grid`: a georeferenced mask must share its chip's CRS and grid (origin to
0.01 pixel, pixel size to 1e-6); a mask without georeference is still paired by pixel position.
"""

import os

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from oremap.core.engine.errors import OreMapError
from oremap.core.sentinel2 import chip_sets as cs
from oremap.core.sentinel2 import patch_sets

BANDS = ["B2", "B3", "B4", "B8"]
SIZE = 64
CHIP_T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
UTM29 = CRS.from_epsg(32629)


def _write(path, data, transform=None, crs=None, descriptions=None, nodata=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=data.dtype)
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)
    return str(path)


def _mine():
    """A 64 x 64 mask: a bright 'pit' in the top-left quarter, the rest ground."""
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[4:28, 6:30] = 1
    return mask


# the grids a mask may be written on: (transform, crs); None = no georeference (a plain raster)
GRIDS = {
    "same": (CHIP_T, UTM29),
    "within_tolerance": (CHIP_T * Affine.translation(0.005, -0.004), UTM29),  # 5 cm: same grid
    "none": (None, None),
    "east_600m": (CHIP_T * Affine.translation(60, 0), UTM29),
    "south_west": (CHIP_T * Affine.translation(-3, 2.5), UTM29),  # 30 m west, 25 m south
    "other_zone": (CHIP_T, CRS.from_epsg(32630)),
    "south_up": (Affine(10.0, 0.0, 500000.0, 0.0, 10.0, 4000000.0 - 10.0 * SIZE), UTM29),
    "coarser": (Affine(20.0, 0.0, 500000.0, 0.0, -20.0, 4000000.0), UTM29),
}


@pytest.fixture(scope="module")
def chip_folders(tmp_path_factory):
    """One folder of two image chips (4 bands, mine pixels bright) and, per grid of ``GRIDS``, a folder of their
    masks with the same pixels written on that grid."""
    root = tmp_path_factory.mktemp("chip_grids")
    rng = np.random.default_rng(0)
    images = root / "images"
    os.makedirs(images)
    mine = _mine()
    for k in range(2):
        t = CHIP_T * Affine.translation(0, k * SIZE)  # the second chip lies south of the first
        dn = rng.integers(800, 1500, size=(len(BANDS), SIZE, SIZE)).astype(np.uint16)
        dn[:, mine > 0] += 2000
        _write(images / f"site_{k}.tif", dn, t, UTM29, BANDS)
    folders = {}
    for key, (transform, crs) in GRIDS.items():
        folder = root / f"masks_{key}"
        os.makedirs(folder)
        for k in range(2):
            t = None if transform is None else transform * Affine.translation(0, k * SIZE)
            if key == "south_up" and t is not None:  # a south-up raster of the same ground: rows run south to north
                t = transform * Affine.translation(0, -k * SIZE)
            _write(folder / f"site_{k}_mask.tif", mine[::-1] if key == "south_up" else mine, t, crs)
        folders[key] = str(folder)
    return dict(images=str(images), masks=folders)


def _segmentation(chips):
    with cs.ChipTiles(chips, BANDS, [], tile=32) as tiles:
        return sorted((k, i, j, int(m.sum())) for (k, i, j), m in tiles.masks.items())


def _classifier(chips):
    ps = patch_sets.patches_from_chips(chips, patch_size=32, min_overlap=0.05, bands=BANDS)
    return list(zip(ps.names, ps.labels.tolist()))


READERS = {"segmentation": _segmentation, "classifier": _classifier}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_masks_on_the_chips_grids_or_without_georeference_are_paired(chip_folders, reader):
    """The same grid, one within a hundredth of a pixel of it, and masks without georeference (paired by pixel
    position, as before) give the same labels; the labels hold the mine."""
    read = READERS[reader]
    labels = {key: read(cs.find_chip_pairs(chip_folders["images"], chip_folders["masks"][key]))
              for key in ("same", "within_tolerance", "none")}
    assert labels["same"] == labels["within_tolerance"] == labels["none"]
    assert labels["same"]  # mine tiles (segmentation) / patches (classifier)
    if reader == "classifier":
        assert sum(label for _, label in labels["same"]) == 2  # the top-left patch of each chip


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("key, why", [
    ("east_600m", "its origin lies 600 m east of its chip's (+60 columns, +0 rows)"),
    ("south_west", "its origin lies 30 m west and 25 m south of its chip's (-3 columns, +2.5 rows)"),
    ("other_zone", "its CRS is EPSG:32630, its chip's EPSG:32629"),
    ("south_up", "it is south-up, its chip north-up"),
    ("coarser", "its pixels are 20 m x 20 m, its chip's 10 m x 10 m"),
])
def test_masks_of_other_ground_are_refused_naming_the_mask_and_the_difference(chip_folders, reader, key, why):
    """Masks georeferenced elsewhere (they were used silently, labelling the chips with another place's mines) are
    refused by both readers, naming the mask parameter, the mask and its chip, and how the grids differ."""
    chips = cs.find_chip_pairs(chip_folders["images"], chip_folders["masks"][key])
    with pytest.raises(OreMapError) as err:
        READERS[reader](chips)
    assert err.value.parameter == "masks"
    assert err.value.message == f"Mask chip site_0_mask.tif is not on the grid of image chip site_0: {why}."
    assert "Export the masks on the chips' grids" in err.value.fix


def test_the_check_is_the_one_both_readers_use():
    """One check, in chip_sets, imported by patch_sets (no copy to drift apart)."""
    assert patch_sets.check_mask_grid is cs.check_mask_grid


def test_a_mask_of_another_size_is_still_refused(chip_folders, tmp_path):
    mask = tmp_path / "site_0_mask.tif"
    _write(mask, np.zeros((SIZE, SIZE + 1), dtype=np.uint8), CHIP_T, UTM29)
    chips = [cs.Chip(name="site_0", raster=os.path.join(chip_folders["images"], "site_0.tif"), mask=str(mask))]
    for read in READERS.values():
        with pytest.raises(OreMapError) as err:
            read(chips)
        assert err.value.parameter == "masks" and "65 x 64 pixels, its chip site_0 64 x 64" in err.value.message


@pytest.mark.parametrize("algorithm, extra", [
    ("train_mine_segmentation", {"TILE": 32, "DEPTH": 2, "WIDTH": 4, "EPOCHS": 1}),
    ("train_mine_classifier", {"PATCH_SIZE": 32, "FOLDS": 2}),
])
def test_through_processing_the_refusal_names_the_mask_folder(run_alg, chip_folders, tmp_path, algorithm, extra):
    from qgis.core import QgsProcessingException

    message = ""
    try:
        run_alg(algorithm, {"CHIP_FOLDER": chip_folders["images"], "MASK_FOLDER": chip_folders["masks"]["east_600m"],
                            "BANDS": ", ".join(BANDS), "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
                            "OUTPUT_REPORT": str(tmp_path / "m.html"), **extra})
    except QgsProcessingException as exc:
        message = str(exc)
    assert "(MASK_FOLDER)" in message and "600 m east" in message and "site_0_mask.tif" in message
    assert not os.path.exists(str(tmp_path / "m.onnx"))


def test_one_pass_mask_counts_equal_each_rule_counted_alone(tmp_path):
    """The mask scan counts labelled zero and non-zero pixels under both nodata rules in one pass (the rules differ
    only by the pixels of a nodata taken as the mine value). On random masks (nodata none, 0, 255, 1, -9999, 2.5;
    NaN in float masks; tiled and striped) its counts equal those of labelled_pixels under each rule, read whole."""
    from oremap.core.sentinel2 import chip_sets as cs

    rng = np.random.default_rng(1)
    for trial in range(40):
        paths = []
        for k in range(int(rng.integers(1, 4))):
            nodata = [None, 0, 255, 1, -9999, 2.5][int(rng.integers(0, 6))]
            dtype = "float32" if nodata in (-9999, 2.5) or rng.random() < 0.3 else "uint8"
            shape = tuple(int(v) for v in rng.integers(5, 70, 2))
            values = rng.choice([0, 0, 0, 1, 2, 255, 7] + ([np.nan] if dtype == "float32" else []), size=shape)
            path = str(tmp_path / f"m{trial}_{k}.tif")
            with rasterio.open(path, "w", driver="GTiff", height=shape[0], width=shape[1], count=1, dtype=dtype,
                               nodata=nodata, transform=Affine(1, 0, 0, 0, -1, 0), tiled=bool(rng.random() < 0.5),
                               blockxsize=16, blockysize=16) as ds:
                ds.write(values.astype(dtype), 1)
            paths.append(path)
        scan = cs._MaskScan(paths)
        for rule in (False, True):
            zero = other = 0
            for path in paths:
                with rasterio.open(path) as ds:
                    v = ds.read(1)
                    labelled = cs.labelled_pixels(v, ds.nodata, rule)
                    zero += int((labelled & (v == 0)).sum())
                    other += int((labelled & (v != 0)).sum())
            assert (scan.zero[rule], scan.other[rule]) == (zero, other), (trial, rule)


def test_masks_are_refused_as_class_codes_only_over_95_percent_non_zero(tmp_path):
    """The rule says a set over 95 % non-zero is taken for class codes; exactly 95 % was refused too."""
    from oremap.core.sentinel2 import chip_sets as cs

    for non_zero, refused in ((95, False), (96, True)):
        values = np.zeros((10, 10), np.uint8)
        values.flat[:non_zero] = 1
        path = str(tmp_path / f"m{non_zero}.tif")
        with rasterio.open(path, "w", driver="GTiff", height=10, width=10, count=1, dtype="uint8",
                           transform=Affine(1, 0, 0, 0, -1, 0)) as ds:
            ds.write(values, 1)
        if refused:
            with pytest.raises(OreMapError, match="96.0 % of the labelled mask pixels are non-zero"):
                cs.check_mask_values([path])
        else:
            cs.check_mask_values([path])
