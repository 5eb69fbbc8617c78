"""Sentinel-2 input (core/sentinel2/sentinel2.py) on the real BigEarthNet patches, spectral indices, the mine fixture
generator (test/s2_scene.py) and oremap:s2_indices.

BigEarthNet (Sumbul et al. 2019), CDLA-Permissive-1.0; contains modified Copernicus Sentinel data 2017-2018.
The patches are read from SHARED_DATA, never copied.
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from conftest import SHARED_DATA, core_warnings
from s2_scene import patch_with_scl
from oremap.core.engine.errors import OreMapError
from oremap.core.sentinel2.sentinel2 import (
    INDEX_NAMES,
    S2_BANDS,
    compute_indices,
    convolve_to_s2,
    normalise_band_name,
    open_sentinel2,
    reflectance,
)

BEN = os.path.join(SHARED_DATA, "sentinel2", "BigEarthNet-S2-Example")
PATCH = os.path.join(BEN, "S2A_MSIL2A_20170613T101031_87_48")


def band_file(folder, band):
    return glob.glob(os.path.join(folder, f"*_{band}.tif"))[0]


def read_band(folder, band):
    with rasterio.open(band_file(folder, band)) as ds:
        return ds.read(1).astype(np.float64), ds.transform


def bilinear_upsample(src, factor):
    """Independent bilinear interpolation at the centres of a grid ``factor`` times finer (edges clamped)."""
    n_rows, n_cols = src.shape

    def axis(n_src):
        x = (np.arange(n_src * factor) + 0.5) / factor - 0.5
        x = np.clip(x, 0, n_src - 1)
        i0 = np.floor(x).astype(int)
        i1 = np.minimum(i0 + 1, n_src - 1)
        return i0, i1, x - i0

    r0, r1, wr = axis(n_rows)
    c0, c1, wc = axis(n_cols)
    rows = src[r0] * (1 - wr)[:, None] + src[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc)[None, :] + rows[:, c1] * wc[None, :]


def write_stack(path, data, descriptions=None, tags=None, band_tags=None, dtype="uint16", nodata=None):
    """A small multi-band GeoTIFF (UTM 33N, 10 m)."""
    data = np.asarray(data)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=dtype, crs=CRS.from_epsg(32633), transform=Affine(10, 0, 400000, 0, -10, 5300000),
                       nodata=nodata) as dst:
        dst.write(data.astype(dtype))
        for i in range(data.shape[0]):
            if descriptions:
                dst.set_band_description(i + 1, descriptions[i])
            if band_tags:
                dst.update_tags(i + 1, **band_tags[i])
        if tags:
            dst.update_tags(**tags)
    return str(path)


# ---------------------------------------------------------------------------
# Folders of per-band files (real BigEarthNet patches)
# ---------------------------------------------------------------------------


def test_a_cancel_while_the_opening_is_logged_leaves_no_vrt_folder(monkeypatch):
    """The notes of a folder's opening are logged after its VRT folder is made: a cancel raised there (a feedback
    whose log checks cancel) left the folder in the temporary directory."""
    import tempfile

    from oremap.core.engine.errors import Cancelled
    from oremap.core.engine.feedback import Feedback

    made = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real(*a, **k)) or made[-1])

    class CancelOnLog(Feedback):
        def info(self, message):
            raise Cancelled()

    with pytest.raises(Cancelled):
        open_sentinel2(PATCH, feedback=CancelOnLog())
    assert len(made) == 1 and not os.path.exists(made[0])


def test_folder_is_stacked_on_the_10m_grid_without_writing_into_it():
    before = sorted(os.listdir(PATCH))
    s2 = open_sentinel2(PATCH)
    try:
        assert s2.bands == S2_BANDS
        assert [s2.band_index(b) for b in ("B2", "B04", "b8a", "Band 12")] == [2, 4, 9, 12]
        assert (s2.width, s2.height) == (120, 120)
        _, t10 = read_band(PATCH, "B02")
        assert s2.transform == t10 and s2.crs.to_epsg() == 32633
        assert s2.path.endswith(".vrt") and os.path.dirname(s2.path) == s2.temp_dir
        assert sorted(s2.resampled) == sorted(["B1", "B5", "B6", "B7", "B8A", "B9", "B11", "B12"])
        assert any("resampled bilinearly" in n for n in s2.notes)
        with rasterio.open(s2.path) as ds:
            stack = ds.read().astype(np.float64)
            assert list(ds.descriptions) == S2_BANDS
        # 10 m bands pass through unchanged
        for band in ("B02", "B03", "B04", "B08"):
            raw, _ = read_band(PATCH, band)
            np.testing.assert_array_equal(stack[s2.band_index(band) - 1], raw)
    finally:
        s2.close()
    assert not os.path.exists(s2.path)  # the temporary VRT is removed
    assert sorted(os.listdir(PATCH)) == before  # nothing written next to the shared data


def test_folder_of_several_patches_or_of_none_is_refused(tmp_path):
    """The folder holding the six real patches is not one scene: it was read as the first patch's bands, silently.
    A folder without band files said 'min() arg is an empty sequence'."""
    with pytest.raises(OreMapError) as err:
        open_sentinel2(BEN)
    assert err.value.parameter == "raster" and "holds more than one Sentinel-2 product" in err.value.message
    assert "B01" in err.value.message and os.path.basename(PATCH) in err.value.message
    with pytest.raises(OreMapError, match="holds no Sentinel-2 band file"):
        open_sentinel2(str(tmp_path))


@pytest.mark.parametrize("band,factor", [("B05", 2), ("B11", 2), ("B01", 6)])
def test_coarse_bands_are_bilinear_on_the_10m_grid(band, factor):
    src, t_src = read_band(PATCH, band)
    with open_sentinel2(PATCH) as s2:
        with rasterio.open(s2.path) as ds:
            up = ds.read(s2.band_index(band)).astype(np.float64)
    assert abs(t_src.a) == 10 * factor
    expected = bilinear_upsample(src, factor)
    inner = (slice(factor, -factor), slice(factor, -factor))
    # GDAL resamples in the source type (uint16): values are rounded to whole DN (also through the VRT that declares
    # the band's nodata: a Float32 one moved the demo's patch classifier from F1 0.810 to 0.785)
    assert np.abs(up - expected)[inner].max() <= 0.5 + 1e-9 and np.array_equal(up, np.round(up))
    if factor == 2:
        # each 20 m pixel's 2 x 2 block of 10 m pixels averages to [1/8, 3/4, 1/8] x [1/8, 3/4, 1/8] of the source
        blocks = up.reshape(60, 2, 60, 2).mean(axis=(1, 3))
        k = np.array([0.125, 0.75, 0.125])
        pad = np.pad(src, 1, mode="edge")
        smooth = sum(k[i] * k[j] * pad[i:i + 60, j:j + 60] for i in range(3) for j in range(3))
        assert np.abs(blocks - smooth)[1:-1, 1:-1].max() <= 0.5 + 1e-9
        assert np.corrcoef(blocks.ravel(), src.ravel())[0, 1] > 0.97


def test_bigearthnet_dn_scaling_and_baseline_from_the_metadata_json():
    with open_sentinel2(PATCH) as s2:
        assert s2.scale == pytest.approx(1e-4) and s2.offset == 0.0
        assert s2.baseline == "02.05"  # tile_source ..._N0205_...
        refl = s2.read_reflectance(["B4"])[..., 0]
    raw, _ = read_band(PATCH, "B04")
    np.testing.assert_allclose(refl, raw / 10000.0, rtol=1e-6)
    np.testing.assert_allclose(reflectance(np.array([0, 1234]), s2), [np.nan, 0.1234], rtol=1e-6)


def test_folder_missing_bands_are_named(tmp_path):
    for path in glob.glob(os.path.join(PATCH, "*.tif")):
        if not path.endswith(("_B11.tif", "_B12.tif")):
            shutil.copy(path, tmp_path)
    with pytest.raises(OreMapError) as err:
        open_sentinel2(str(tmp_path))
    assert "B11" in err.value.message and "B12" in err.value.message and err.value.parameter == "raster"
    with open_sentinel2(str(tmp_path), required=["B2", "B3", "B4", "B8"]) as s2:  # enough for NDVI/NDWI
        assert "B11" not in s2.bands and s2.band_index("B8") == 8


def test_product_baseline_04_in_the_folder_name_applies_the_offset(tmp_path):
    folder = tmp_path / "S2B_MSIL2A_20220301T101029_N0400_R022_T33UUP_20220301T130000.SAFE"
    folder.mkdir()
    data = np.full((1, 4, 4), 2234, dtype=np.uint16)
    for band in ("B02", "B03", "B04", "B08"):
        write_stack(folder / f"T33UUP_20220301T101029_{band}_10m.tif", data)
    with open_sentinel2(str(folder), required=["B2", "B3", "B4", "B8"]) as s2:
        assert s2.baseline == "04.00" and s2.offset == pytest.approx(-0.1)
        np.testing.assert_allclose(s2.read_reflectance(["B4"]), 0.1234, rtol=1e-5)


def test_a_folder_whose_name_holds_brackets_keeps_its_metadata(tmp_path):
    """'Survey [2023]' was taken for a glob pattern when the folder's MTD_MSIL2A.xml was looked for: the -1000 offset
    it declares was not applied (every index wrong) and the log said there was no MTD_MSIL2A.xml."""
    offsets = {}
    for name in ("plain", "Survey [2023]", "tile [a-z]"):
        folder = tmp_path / name
        folder.mkdir()
        for band in ("B02", "B03", "B04", "B08"):
            write_stack(folder / f"{band}.tif", np.full((1, 4, 4), 2234, dtype=np.uint16))
        (folder / "MTD_MSIL2A.xml").write_text(
            "<n1:Level-2A_User_Product><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>"
            "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
            "<BOA_ADD_OFFSET band_id=\"0\">-1000</BOA_ADD_OFFSET></n1:Level-2A_User_Product>")
        with open_sentinel2(str(folder), required=["B2", "B3", "B4", "B8"]) as s2:
            offsets[name] = (s2.offset, float(s2.read_reflectance(["B4"])[0, 0, 0]))
    assert offsets["Survey [2023]"] == offsets["tile [a-z]"] == offsets["plain"] == (pytest.approx(-0.1),
                                                                                      pytest.approx(0.1234))


def test_a_safe_of_baseline_04_with_its_quality_masks(tmp_path):
    """From baseline 04.00 a .SAFE holds MSK_DETFOO_Bxx and MSK_QUALIT_Bxx per band in GRANULE/*/QI_DATA: they were
    taken for band files, and every such product was refused as 'more than one product'. Its MTD_MSIL2A.xml (as QGIS
    opens a product), a subdataset of it and the zipped product given instead of the folder."""
    safe = tmp_path / "S2B_MSIL2A_20220301T101029_N0400_R022_T33UUP_20220301T130000.SAFE"
    granule = safe / "GRANULE" / "L2A_T33UUP_A026000_20220301T101029"
    (granule / "IMG_DATA" / "R10m").mkdir(parents=True)
    (granule / "QI_DATA").mkdir()
    data = np.full((1, 4, 4), 2234, dtype=np.uint16)
    for band in ("B02", "B03", "B04", "B08"):
        write_stack(granule / "IMG_DATA" / "R10m" / f"T33UUP_20220301T101029_{band}_10m.tif", data)
        for mask in ("DETFOO", "QUALIT"):
            write_stack(granule / "QI_DATA" / f"MSK_{mask}_{band[:1]}{band[1:]}.tif", np.zeros((1, 4, 4), np.uint8),
                        dtype="uint8")
    (safe / "MTD_MSIL2A.xml").write_text(
        "<n1:Level-2A_User_Product><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>"
        "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
        "<BOA_ADD_OFFSET band_id=\"0\">-1000</BOA_ADD_OFFSET></n1:Level-2A_User_Product>")
    four = ["B2", "B3", "B4", "B8"]
    for given in (safe, safe / "MTD_MSIL2A.xml", f"SENTINEL2_L2A:{safe / 'MTD_MSIL2A.xml'}:10m:EPSG_32633"):
        with open_sentinel2(str(given), required=four) as s2:
            assert s2.bands == four and s2.offset == pytest.approx(-0.1)
            np.testing.assert_allclose(s2.read_reflectance(["B4"]), 0.1234, rtol=1e-5)
    (tmp_path / "product.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    for given in (tmp_path / "product.zip", f"SENTINEL2_L2A:/vsizip/{tmp_path}/product.zip/x.SAFE/MTD_MSIL2A.xml:10m"):
        with pytest.raises(OreMapError) as err:
            open_sentinel2(str(given), required=four)
        assert err.value.parameter == "raster" and "product.zip' is a zipped Sentinel-2 product" in err.value.message
        assert err.value.fix == "Unzip it and choose its .SAFE folder (the folder input)."


def test_cog_archives_name_band_files_by_band_or_common_name(tmp_path):
    """Element84's COG archive names files B02.tif ... (STAC download tools blue.tif ...); its item id carries the
    date (S2A_33UUP_20220613_0_L2A: baseline 04.00). No blue DN under 1000 here: the offset is still in."""
    data = np.full((1, 4, 4), 2500, dtype=np.uint16)
    for layout, names in (("bands", ("B02", "B03", "B04", "B08")), ("common", ("blue", "green", "red", "nir"))):
        folder = tmp_path / layout / "S2A_33UUP_20220613_0_L2A"
        folder.mkdir(parents=True)
        for name in names:
            write_stack(folder / f"{name}.tif", data)
        write_stack(folder / "visual.tif", np.zeros((3, 4, 4), np.uint8), dtype="uint8")   # the true-colour image
        with open_sentinel2(str(folder), required=["B2", "B3", "B4", "B8"]) as s2:
            assert s2.bands == ["B2", "B3", "B4", "B8"] and s2.baseline == "04.00"
            np.testing.assert_allclose(s2.read_reflectance(["B4"]), 0.15, rtol=1e-5)


def test_earth_search_items_get_the_offset_their_collection_gives_them(tmp_path):
    """Earth Search's legacy collection took the -1000 DN offset out of most items since 2022 (the date rule took it
    off a second time: 0.1 too low, dark pixels negative); its collection 1 keeps ESA's DN of a 05.00 reprocessing,
    with the offset on every date (the date rule left it in before 2022: 0.1 too high)."""
    def item(name, blue, json_flag=None):
        folder = tmp_path / name
        folder.mkdir()
        for band in ("B03", "B04", "B08"):
            write_stack(folder / f"{band}.tif", np.full((1, 64, 64), 2500, np.uint16))
        write_stack(folder / "B02.tif", blue)
        if json_flag is not None:
            (folder / f"{name}.json").write_text(json.dumps({
                "type": "Feature", "stac_version": "1.0.0", "id": name,
                "properties": {"earthsearch:boa_offset_applied": json_flag, "s2:processing_baseline": "04.00"}}))
        return str(folder)

    four = ["B2", "B3", "B4", "B8"]
    vegetation = np.where(np.arange(64 * 64).reshape(1, 64, 64) % 3 == 0, 420, 1350).astype(np.uint16)
    # taken out already: a third of the blue DN under 1000 (vegetation, 0.042)
    with open_sentinel2(item("S2A_33UUP_20220613_0_L2A", vegetation), required=four) as s2:
        assert s2.offset == 0.0 and not s2.warnings
        np.testing.assert_allclose(s2.read_reflectance(["B4"]), 0.25, rtol=1e-5)
        assert any("33.3% of its blue DN lie under 900" in n for n in s2.notes)
    # an arid scene, taken out: blue 0.15 nearly everywhere, a pond and pit shadows (0.4 % of the pixels) darker
    arid = np.full((1, 64, 64), 1500, np.uint16)
    arid[0, 30:34, 30:34] = 380
    with open_sentinel2(item("S2A_33UUP_20220616_0_L2A", arid), required=four) as s2:
        assert s2.offset == 0.0 and not s2.warnings
    # the real patches, as Earth Search would hold them (offset taken out) and with it still in, the snow scene too
    patches = sorted(glob.glob(os.path.join(SHARED_DATA, "sentinel2", "BigEarthNet-S2-Example", "S2*")))
    for k, patch in enumerate(patches):
        blue = glob.glob(os.path.join(patch, "*_B02.tif"))[0]
        with rasterio.open(blue) as src:
            dn = src.read().astype(np.int64)
        day = "2023" + os.path.basename(patch)[15:19]  # the patch's month and day, since 2022
        with open_sentinel2(item(f"S2B_33UUP_{day}_{k}_L2A", dn.astype(np.uint16)), required=four) as s2:
            assert s2.offset == 0.0, patch
        with open_sentinel2(item(f"S2B_33UUP_{day}_{k + 10}_L2A", (dn + 1000).astype(np.uint16)),
                            required=four) as s2:
            assert s2.offset == pytest.approx(-0.1), patch
    assert len(patches) == 6
    # the item's own flag decides over the data
    with open_sentinel2(item("S2B_33UUP_20220614_0_L2A", vegetation, json_flag=False), required=four) as s2:
        assert s2.offset == pytest.approx(-0.1) and s2.baseline == "04.00"
    with open_sentinel2(item("S2B_33UUP_20220615_0_L2A", np.full((1, 64, 64), 1420, np.uint16), json_flag=True),
                        required=four) as s2:
        assert s2.offset == 0.0
    # still in: every blue DN over 1000, warned
    with open_sentinel2(item("S2A_33UUP_20230613_1_L2A", np.full((1, 64, 64), 1420, np.uint16)),
                        required=four) as s2:
        assert s2.offset == pytest.approx(-0.1) and any("still in" in w for w in s2.warnings)
    # before 2022 in the legacy collection: no offset (the date rule, as before)
    with open_sentinel2(item("S2A_33UUP_20210613_0_L2A", vegetation), required=four) as s2:
        assert s2.offset == 0.0
    # collection 1 in 2021: the offset
    with open_sentinel2(item("S2B_T33UUP_20210613T101029_L2A", vegetation + 1000), required=four) as s2:
        assert s2.offset == pytest.approx(-0.1) and s2.baseline == "05.00"
        np.testing.assert_allclose(s2.read_reflectance(["B4"]), 0.15, rtol=1e-5)


def test_an_unnamed_stack_in_another_order_is_refused(tmp_path):
    """BigEarthNet's channel order (B2, B3, B4, B8, B5, B6, B7, B8A, B11, B12, B1, B9) unnamed: band 12 (B9) was
    taken for B8A on a correlation of 0.76 with band 8 (B8A), and every index came out wrong; it fits neither known
    order, so a band map is asked for."""
    refl = _patch_reflectance()
    dn = np.round(refl * 10000).astype(np.uint16).transpose(2, 0, 1)
    order = ["B2", "B3", "B4", "B8", "B5", "B6", "B7", "B8A", "B11", "B12", "B1", "B9"]
    path = write_stack(tmp_path / "ben_order.tif", np.stack([dn[S2_BANDS.index(b)] for b in order]))
    with pytest.raises(OreMapError) as err:
        open_sentinel2(path)
    assert err.value.parameter == "raster" and "follow neither the standard Sentinel-2 order" in err.value.message
    assert "Give a band map" in err.value.fix
    band_map = ", ".join(f"{b}={i}" for i, b in enumerate(order, start=1))
    with open_sentinel2(path, band_map=band_map) as s2:
        np.testing.assert_allclose(s2.read_reflectance(S2_BANDS), np.round(refl * 10000) / 10000, atol=1e-6)


def test_band_files_named_by_esa_take_the_baseline_from_their_acquisition_date(tmp_path):
    """Band files copied out of a product's IMG_DATA, without its metadata or the '_N0400_' of its name: acquired
    since 25 January 2022 they have baseline 04.00 or later, so the offset (2500 DN was 0.25, not 0.15); an older
    date, or no date, gives no offset, and an integer product of unknown baseline is warned of."""
    data = np.full((1, 4, 4), 2500, dtype=np.uint16)
    for date, offset, baseline in (("20230601", -0.1, "04.00"), ("20210601", 0.0, None), ("", 0.0, None)):
        folder = tmp_path / (date or "undated")
        folder.mkdir()
        for band in ("B02", "B03", "B04", "B08"):
            write_stack(folder / (f"T33UVP_{date}T100559_{band}_10m.tif" if date else f"scene_{band}.tif"), data)
        log = core_warnings()
        with open_sentinel2(str(folder), required=["B2", "B3", "B4", "B8"], feedback=log) as s2:
            assert s2.baseline == baseline and s2.offset == pytest.approx(offset)
            np.testing.assert_allclose(s2.read_reflectance(["B4"]), 0.25 + offset, rtol=1e-5)
        if baseline:
            assert "the acquisition date 2023-06-01 is on or after 25 January 2022" in " ".join(log.infos)
            assert log.warnings == []
        elif date:   # most likely an original product of baseline 02-03: said, not warned of
            assert "The acquisition date 2021-06-01 in the name is before processing baseline 04.00" in \
                " ".join(log.infos) and log.warnings == []
        else:
            assert len(log.warnings) == 1 and log.warnings[0].startswith("The processing baseline is unknown")
    # a multi-band export named after its product keeps the date rule; a float reflectance raster is no DN
    stack = write_stack(tmp_path / "S2B_MSIL2A_20230601T100559_stack.tif", np.full((12, 3, 3), 2500), S2_BANDS)
    with open_sentinel2(stack) as s2:
        assert s2.offset == pytest.approx(-0.1)
    log = core_warnings()
    with open_sentinel2(write_stack(tmp_path / "refl.tif", np.full((12, 3, 3), 0.2), S2_BANDS, dtype="float32"),
                        feedback=log):
        assert log.warnings == []


def test_dn_zero_is_nodata_also_where_the_file_declares_another(tmp_path):
    """A re-exported product declaring nodata 65535: its swath-edge DN 0 (the L2A NO_DATA) were read as reflectance
    -0.1 (baseline 05.09) and reached the indices and the models."""
    dn = np.full((12, 4, 5), 2000, dtype=np.uint16)
    dn[:, :, :2] = 0
    dn[:, 0, 4] = 65535
    path = write_stack(tmp_path / "S2A_MSIL2A_20240101T000000_N0509_edge.tif", dn, S2_BANDS, nodata=65535)
    with open_sentinel2(path) as s2:
        refl = s2.read_reflectance()
    assert np.isnan(refl[:, :2]).all() and np.isnan(refl[0, 4]).all()
    np.testing.assert_allclose(refl[1:, 2:], 0.1, rtol=1e-5)
    assert np.isfinite(refl).sum() == 12 * (4 * 3 - 1)


def test_coarse_bands_next_to_a_nodata_edge_are_not_mixed_with_dn_zero(tmp_path):
    """L2A JP2s and BigEarthNet's GeoTIFFs declare no nodata: GDAL resampled the 20 m and 60 m bands as if the DN 0
    of a swath edge were a value, so the first valid 10 m pixels got B11 0.225-0.2 instead of 0.3 and B1 0.017-0.083
    instead of 0.1 (three pixels deep), and passed as reflectance into the indices and the models."""
    folder = tmp_path / "S2B_MSIL2A_20230601T100559_N0509_R022_T33UUP_20230601T120000.SAFE"
    folder.mkdir()
    bands = [(b, 10, 2500) for b in ("B02", "B03", "B04", "B08")] + [
        (b, 20, 4000) for b in ("B05", "B06", "B07", "B8A", "B11", "B12")] + [(b, 60, 2000) for b in ("B01", "B09")]
    for band, res, dn in bands:
        n = 240 // res
        data = np.full((n, n), dn, np.uint16)
        data[:, :n // 2] = 0   # the left half is outside the swath
        with rasterio.open(folder / f"T33UUP_20230601T100559_{band}_{res}m.tif", "w", driver="GTiff", width=n,
                           height=n, count=1, dtype="uint16", crs="EPSG:32633",
                           transform=Affine(res, 0, 400000, 0, -res, 5000000)) as ds:
            ds.write(data, 1)
    with open_sentinel2(str(folder)) as s2:
        refl = s2.read_reflectance(["B4", "B11", "B1"])
        temp, written = s2.temp_dir, sorted(os.listdir(s2.temp_dir))
    assert s2.offset == pytest.approx(-0.1)
    assert np.isnan(refl[:, :12]).all()
    np.testing.assert_allclose(refl[:, 12:], np.broadcast_to([0.15, 0.3, 0.1], (24, 12, 3)), rtol=1e-5)
    assert written == sorted([f"{folder.name}_10m.vrt"] + [
        f"{folder.name}_{b}_nodata.vrt" for b in ("B1", "B5", "B6", "B7", "B8A", "B9", "B11", "B12")])
    assert not os.path.exists(temp)


@pytest.mark.parametrize("how", ["nodata 65535", "internal mask"])
def test_each_band_file_of_a_folder_keeps_its_own_nodata(tmp_path, how):
    """10 m files declaring nodata 0 and a 20 m B11 marking its pixel (0, 0) with nodata 65535, or with an internal
    mask: every band was given the 10 m files' nodata, so 65535 was read as reflectance (or the masked value
    resampled into the corner) and every pixel counted as valid. The 10 m pixel under it is now nodata, and its
    neighbours are the valid 20 m pixels' bilinear mix, as at a swath edge."""
    folder = tmp_path / "S2B_MSIL2A_20230601T100559_N0509_R022_T33UUP_20230601T120000.SAFE"
    folder.mkdir()
    for band, res in [(b, 10) for b in ("B02", "B03", "B04", "B08")] + [(b, 20) for b in ("B8A", "B11", "B12")]:
        n = 80 // res
        data = np.full((n, n), 3000, np.uint16)
        profile = dict(driver="GTiff", width=n, height=n, count=1, dtype="uint16", crs="EPSG:32633",
                       transform=Affine(res, 0, 400000, 0, -res, 5000000), nodata=0 if res == 10 else None)
        masked = band == "B11"
        if masked and how == "nodata 65535":
            data[0, 0], profile["nodata"] = 65535, 65535
        elif masked:
            data[0, 0] = 60000
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), \
                rasterio.open(folder / f"T33UUP_20230601T100559_{band}_{res}m.tif", "w", **profile) as ds:
            ds.write(data, 1)
            if masked and how == "internal mask":
                mask = np.full((n, n), 255, np.uint8)
                mask[0, 0] = 0
                ds.write_mask(mask)
    with open_sentinel2(str(folder), required=["B4", "B11"]) as s2:
        refl = s2.read_reflectance(["B4", "B11"])
    assert np.isnan(refl[0, 0]).all() and np.isfinite(refl).all(axis=-1).sum() == 63
    np.testing.assert_allclose(refl[1:, 1:, 1], 0.2, rtol=1e-5)   # DN 3000 with the -1000 offset of baseline 05.09


def test_a_float_band_files_nan_nodata_stays_nodata_in_a_folder(tmp_path):
    """Float32 reflectance files, the 10 m ones without a nodata value and B11 declaring NaN over its corner: the
    VRT skipped the corner and, having no nodata of its own, filled it with 0, a valid reflectance."""
    folder = tmp_path / "float_bands"
    folder.mkdir()
    for band, res in [(b, 10) for b in ("B02", "B03", "B04", "B08")] + [("B11", 20)]:
        n = 80 // res
        data = np.full((n, n), 0.3, np.float32)
        profile = dict(driver="GTiff", width=n, height=n, count=1, dtype="float32", crs="EPSG:32633",
                       transform=Affine(res, 0, 400000, 0, -res, 5000000))
        if band == "B11":
            data[:2, :2] = np.nan
            profile["nodata"] = float("nan")
        with rasterio.open(folder / f"T33UUP_{band}.tif", "w", **profile) as ds:
            ds.write(data, 1)
    with open_sentinel2(str(folder), required=["B4", "B11"]) as s2:
        refl = s2.read_reflectance(["B4", "B11"])
    b11 = refl[..., 1]
    assert np.isnan(b11[:3, :3]).all() and not (b11 == 0).any()
    np.testing.assert_allclose(b11[np.isfinite(b11)], 0.3, rtol=1e-6)
    assert np.isfinite(b11[5:, 5:]).all()


def test_scene_classification_masks_clouds_and_shadows_of_a_folder(tmp_path):
    """Pixels of 10 m whose 20 m SCL class is no data, cloud shadow, cloud or cirrus become nodata in every band
    (nearest neighbour: 2 x 2 pixels per SCL pixel); the others keep exactly their values; the log gives the
    shares. Without the mask nothing changes."""
    folder, scl = patch_with_scl(str(tmp_path))
    notes = []

    class Log:
        def info(self, text):
            notes.append(text)

        warning = info

    with open_sentinel2(folder, feedback=Log()) as s2:
        masked = s2.read_reflectance()
        with open(s2.path) as handle:  # GDAL 3.13 skipped the masked classes' 0 (nodata) in the product without it
            assert handle.read().count('<PixelFunctionArguments propagateNoData="true"/>') == len(s2.band_numbers)
    with open_sentinel2(folder, mask_clouds=False) as s2:
        plain = s2.read_reflectance()
        assert any("not used" in n for n in s2.notes)
    assert np.isfinite(plain).all()
    cloud = np.isin(np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1), [0, 1, 3, 8, 9, 10])
    assert cloud.sum() == 4 * (100 + 50 + 50 + 4)
    assert np.isnan(masked[cloud]).all() and np.isfinite(masked[~cloud]).all()
    np.testing.assert_array_equal(masked[~cloud], plain[~cloud])
    note = next(n for n in notes if n.startswith("Clouds masked"))
    assert "5.7 % of the scene" in note and "cloud, high probability 2.8 %" in note and "cloud shadow 1.4 %" in note
    # a product without SCL is read as before
    with open_sentinel2(PATCH) as s2:
        assert not any("scene classification" in n for n in s2.notes)


# ---------------------------------------------------------------------------
# Multi-band files
# ---------------------------------------------------------------------------


def test_processing_baseline_04_metadata_gives_the_minus_1000_offset(tmp_path):
    dn = np.arange(1, 13, dtype=np.uint16)[:, None, None] * 100 + 1000  # DN 1100 ... 2200
    dn = np.broadcast_to(dn, (12, 3, 3))
    new = write_stack(tmp_path / "new.tif", dn, [f"B{b[1:]}" for b in S2_BANDS], tags={"PROCESSING_BASELINE": "04.00"})
    old = write_stack(tmp_path / "old.tif", dn, S2_BANDS, tags={"PROCESSING_BASELINE": "03.01"})
    item = write_stack(tmp_path / "item.tif", dn, S2_BANDS, tags={"BOA_ADD_OFFSET": "-1000"})
    with open_sentinel2(new) as s2:
        assert s2.baseline == "04.00" and s2.scale == pytest.approx(1e-4) and s2.offset == pytest.approx(-0.1)
        refl = s2.read_reflectance()
    np.testing.assert_allclose(refl[0, 0], (np.arange(1, 13) * 100) / 10000.0, rtol=1e-5)  # (DN - 1000) / 10000
    with open_sentinel2(old) as s2:
        assert s2.baseline == "03.01" and s2.offset == 0.0
        np.testing.assert_allclose(s2.read_reflectance(["B1"])[0, 0, 0], 0.11, rtol=1e-6)
    with open_sentinel2(item) as s2:
        assert s2.offset == pytest.approx(-0.1)
        assert np.allclose(reflectance(np.array([1100.0]), s2), 0.01)


def _patch_reflectance():
    """The real patch's 12 bands on the 10 m grid, as reflectance (rows, cols, 12) in S2_BANDS order."""
    with open_sentinel2(PATCH) as s2:
        assert s2.bands == S2_BANDS
        return s2.read_reflectance()


def test_unnamed_stack_of_band_files_sorted_by_name_is_read_with_b8a_last(tmp_path):
    """gdal_merge of *_B01 ... *_B8A files sorted by name puts B8A last: its bands carry no names, and the real
    patch's data tell that layout from the standard one (band 12 follows band 8 as only B8A does)."""
    refl = _patch_reflectance()
    dn = np.round(refl * 10000).astype(np.uint16).transpose(2, 0, 1)
    by_name = S2_BANDS[:8] + ["B9", "B11", "B12", "B8A"]   # B01 ... B08, B09, B11, B12, B8A: sorted file names
    for layout, order in (("standard", S2_BANDS), ("by_name", by_name)):
        path = write_stack(tmp_path / f"{layout}.tif", np.stack([dn[S2_BANDS.index(b)] for b in order]))
        log = core_warnings()
        with open_sentinel2(path, feedback=log) as s2:
            assert s2.band_numbers == {b: order.index(b) + 1 for b in S2_BANDS}, layout
            got = s2.read_reflectance(S2_BANDS)
        np.testing.assert_allclose(got, np.round(refl * 10000) / 10000, atol=1e-6)
        # no baseline in the stack's metadata or name: that is said as well
        assert [w for w in log.warnings if w.startswith("The processing baseline is unknown")]
        band_warnings = [w for w in log.warnings if not w.startswith("The processing baseline is unknown")]
        assert len(band_warnings) == 1 and ("looks like B8A" in band_warnings[0]) == (layout == "by_name")


def test_gdal_band_scale_and_offset_are_honoured(tmp_path):
    """A uint16 stack whose bands carry GDAL's scale 0.0001 and offset -0.1 (baseline 04.00 written the GDAL way):
    reflectance = DN x 0.0001 - 0.1, whatever the metadata items say; different scales per band are refused."""
    refl = _patch_reflectance().transpose(2, 0, 1)
    dn = np.round(refl * 10000 + 1000).astype(np.uint16)
    path = write_stack(tmp_path / "gdal_scaled.tif", dn, S2_BANDS)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = [1e-4] * 12, [-0.1] * 12
    with open_sentinel2(path) as s2:
        assert s2.scale == pytest.approx(1e-4) and s2.offset == pytest.approx(-0.1)
        assert any("the bands' own scale and offset" in n for n in s2.notes)
        got = s2.read_reflectance(S2_BANDS).transpose(2, 0, 1)
    np.testing.assert_allclose(got, (dn.astype(np.float64) - 1000) / 10000, atol=1e-6)
    with rasterio.open(path, "r+") as ds:
        ds.scales = [1e-4] * 11 + [2e-4]
    with pytest.raises(OreMapError) as err:
        open_sentinel2(path)
    assert err.value.parameter == "raster" and "different scales or offsets" in str(err.value)


def test_vrt_of_band_files_names_its_bands_from_the_source_files(tmp_path):
    """gdalbuildvrt -separate of the real patch's band files in name order (B8A last): each band is named from its
    source file, so no order is assumed and no warning is given."""
    from osgeo import gdal

    files = sorted(glob.glob(os.path.join(PATCH, "*_B*.tif")))
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, files, separate=True, resolution="highest").FlushCache()
    log = core_warnings()
    with open_sentinel2(vrt, feedback=log) as s2:
        assert s2.band_numbers == {os.path.basename(f).rsplit("_", 1)[1][:-4].replace("B0", "B"): i + 1
                                   for i, f in enumerate(files)}
        assert s2.band_numbers["B8A"] == 12 and not log.warnings
        assert any("band source files (VRT)" in n for n in s2.notes)
        np.testing.assert_allclose(s2.read_reflectance(["B2"])[..., 0], read_band(PATCH, "B02")[0] / 10000.0, atol=1e-7)


def test_float_reflectance_raster_keeps_scale_one(tmp_path):
    data = np.random.default_rng(0).uniform(0.01, 0.6, (12, 8, 8)).astype(np.float32)
    path = write_stack(tmp_path / "refl.tif", data, S2_BANDS, dtype="float32")
    with open_sentinel2(path) as s2:
        assert s2.scale == 1.0 and s2.offset == 0.0 and s2.nodata is None
        np.testing.assert_allclose(np.moveaxis(s2.read_reflectance(), -1, 0), data, rtol=1e-6)


def test_band_names_in_many_spellings_and_orders(tmp_path):
    descriptions = ["B04", "Band 2 - Blue", "B8A", "B3", "red edge 1", "B06", "B7", "NIR", "Band 8A?", "B09",
                    "B11, central wavelength 1610 nm", "swir22"]
    # 'Band 8A?' duplicates B8A: refused, naming the duplicate
    path = write_stack(tmp_path / "dup.tif", np.ones((12, 2, 2)), descriptions)
    with pytest.raises(OreMapError, match="B8A"):
        open_sentinel2(path)
    descriptions[8] = "coastal"
    path = write_stack(tmp_path / "mixed.tif", np.ones((12, 2, 2)), descriptions)
    with open_sentinel2(path) as s2:
        expected = {"B4": 1, "B2": 2, "B8A": 3, "B3": 4, "B5": 5, "B6": 6, "B7": 7, "B8": 8, "B1": 9, "B9": 10,
                    "B11": 11, "B12": 12}
        assert s2.band_numbers == expected
        assert s2.bands == ["B4", "B2", "B8A", "B3", "B5", "B6", "B7", "B8", "B1", "B9", "B11", "B12"]
    assert [normalise_band_name(t) for t in ("B08", "b8a", "Band 11", "B10", "S2 B12", "green", "x")] == \
        ["B8", "B8A", "B11", "B10", "B12", "B3", None]


def test_band_map_and_wavelength_metadata_and_missing_bands(tmp_path):
    four = write_stack(tmp_path / "four.tif", np.ones((4, 2, 2)))
    with pytest.raises(OreMapError) as err:
        open_sentinel2(four)  # no names, 4 bands: nothing identified
    assert all(b in err.value.message for b in S2_BANDS)
    with open_sentinel2(four, band_map="B8=1, B4=2, B3=3, B2=4", required=["B2", "B3", "B4", "B8"]) as s2:
        assert s2.band_index("B8") == 1 and s2.band_index("B2") == 4
        with pytest.raises(OreMapError, match="B11"):
            s2.band_index("B11")
    with pytest.raises(OreMapError) as err:
        open_sentinel2(four, band_map={"B4": 7})
    assert err.value.parameter == "band_map"
    with pytest.raises(OreMapError) as err:
        open_sentinel2(four, band_map={"B4": 1}, required=["B4", "B8", "B11"])
    assert "B8, B11" in err.value.message
    tags = [{"wavelength": w, "wavelength_units": "nm"} for w in ("664.6", "832.8", "559.8", "492.4")]
    wl = write_stack(tmp_path / "wl.tif", np.ones((4, 2, 2)), band_tags=tags)
    with open_sentinel2(wl, required=["B2", "B3", "B4", "B8"]) as s2:
        assert s2.band_numbers == {"B4": 1, "B8": 2, "B3": 3, "B2": 4}


def test_unnamed_12_band_raster_is_taken_in_standard_order_with_a_warning(tmp_path):
    from conftest import core_warnings

    plain = write_stack(tmp_path / "plain.tif", np.ones((12, 2, 2)) * 500)
    numbered = write_stack(tmp_path / "numbered.tif", np.ones((12, 2, 2)) * 500, [f"Band {i}" for i in range(1, 13)])
    for path in (plain, numbered):  # 'Band 9' is the 9th band (B8A), not B9
        fb = core_warnings()
        with open_sentinel2(path, feedback=fb) as s2:
            assert s2.bands == S2_BANDS and s2.band_index("B8A") == 9
        assert fb.warnings and "standard Sentinel-2 order" in fb.warnings[0]


# ---------------------------------------------------------------------------
# Indices and band responses
# ---------------------------------------------------------------------------


def test_indices_against_hand_computed_values():
    refl = np.zeros((3, 12))
    b = {name: i for i, name in enumerate(S2_BANDS)}
    # a vegetated pixel, a bare iron-stained pixel, and a pixel with zero denominators
    veg = dict(B1=0.03, B2=0.04, B3=0.07, B4=0.05, B5=0.1, B6=0.3, B7=0.38, B8=0.40, B8A=0.42, B9=0.4, B11=0.2, B12=0.1)
    bare = dict(B1=0.1, B2=0.12, B3=0.18, B4=0.26, B5=0.28, B6=0.29, B7=0.30, B8=0.31, B8A=0.30, B9=0.3, B11=0.42,
                B12=0.36)
    for i, px in enumerate((veg, bare)):
        for name, value in px.items():
            refl[i, b[name]] = value
    values, names = compute_indices(refl, S2_BANDS)
    assert names == INDEX_NAMES
    v = dict(zip(names, values[0]))
    assert v["NDVI"] == pytest.approx((0.40 - 0.05) / 0.45, rel=1e-6)
    assert v["NDWI"] == pytest.approx((0.07 - 0.40) / 0.47, rel=1e-6)
    assert v["MNDWI"] == pytest.approx((0.07 - 0.2) / 0.27, rel=1e-6)
    assert v["BSI"] == pytest.approx(((0.2 + 0.05) - (0.4 + 0.04)) / (0.25 + 0.44), rel=1e-6)
    assert v["NBR"] == pytest.approx(0.3 / 0.5, rel=1e-6)
    assert v["NBR2"] == pytest.approx(0.1 / 0.3, rel=1e-6)
    assert v["NDMI"] == pytest.approx(0.2 / 0.6, rel=1e-6)
    assert v["IRON_OXIDE"] == pytest.approx(0.05 / 0.04, rel=1e-6)
    assert v["FERROUS_IRON"] == pytest.approx(0.2 / 0.42, rel=1e-6)   # Segal's SWIR / NIR: B11 / B8A
    assert v["CLAY"] == pytest.approx(2.0, rel=1e-6)
    w = dict(zip(names, values[1]))
    assert w["BSI"] == pytest.approx((0.68 - 0.43) / 1.11, rel=1e-6) and w["BSI"] > 0.1 and w["NDVI"] < 0.2
    assert w["IRON_OXIDE"] == pytest.approx(0.26 / 0.12, rel=1e-6)
    assert np.isnan(values[2]).all()  # 0 / 0 everywhere
    sub, sub_names = compute_indices(refl[:, [b["B3"], b["B8"], b["B4"]]], ["B3", "B08", "B4"], ["ndvi", "NDWI"])
    assert sub_names == ["NDVI", "NDWI"]
    np.testing.assert_allclose(sub[:2], values[:2, :2], rtol=1e-6)
    with pytest.raises(OreMapError, match="B11"):
        compute_indices(refl[:, :4], S2_BANDS[:4], ["BSI"])
    assert w["FERROUS_IRON"] == pytest.approx(0.42 / 0.30, rel=1e-6) and w["FERROUS_IRON"] > 1 > v["FERROUS_IRON"]


def test_negative_reflectance_counts_as_zero_in_the_indices():
    """After the baseline-04 offset dark water and shadow give reflectance below 0 (DN under 1000): NDVI of B8
    0.0003 and B4 -0.001 was -1.86, outside [-1, 1]; ratios came out negative."""
    values, names = compute_indices(np.array([[0.0003, -0.001, 0.02, -0.002], [-0.01, -0.02, 0.02, 0.03]]),
                                    ["B8", "B4", "B2", "B3"], ["NDVI", "IRON_OXIDE", "NDWI"])
    v = dict(zip(names, values[0]))
    assert v["NDVI"] == pytest.approx(1.0) and v["IRON_OXIDE"] == 0.0 and v["NDWI"] == pytest.approx(-1.0)
    w = dict(zip(names, values[1]))
    assert np.isnan(w["NDVI"]) and w["IRON_OXIDE"] == 0.0 and w["NDWI"] == pytest.approx(1.0)   # 0 / 0: no value
    assert np.nanmin(values[:, [0, 2]]) >= -1.0 and np.nanmax(values[:, [0, 2]]) <= 1.0


def test_gaussian_band_responses_of_a_linear_spectrum_give_the_centre_value():
    wl = np.arange(350.0, 2501.0, 1.0)
    centres = np.array([443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1610, 2190], float)
    linear = 0.1 + 1e-4 * (wl - 350)
    # (B12 loses a sliver of its Gaussian tail at 2500 nm: 3e-6 relative)
    np.testing.assert_allclose(convolve_to_s2(linear, wl), 0.1 + 1e-4 * (centres - 350), rtol=1e-5)
    step = np.where(wl < 1000, 0.2, 0.6)  # far from every band but B9 / B11
    out = convolve_to_s2(step, wl)
    np.testing.assert_allclose(out[[0, 1, 2, 3, 8]], 0.2, rtol=1e-9)
    np.testing.assert_allclose(out[[10, 11]], 0.6, rtol=1e-9)


# ---------------------------------------------------------------------------
# The fixture generator used by the mine tests (and by the segmentation tests)
# ---------------------------------------------------------------------------


def test_make_scene_mask_matches_its_polygons(tmp_path):
    import geopandas as gpd
    from rasterio.features import rasterize

    from s2_scene import make_scene

    scene = make_scene(str(tmp_path), seed=3, size=(240, 240))
    with open_sentinel2(scene["raster"]) as s2:
        assert s2.bands == S2_BANDS and (s2.width, s2.height) == (240, 240)
        refl = s2.read_reflectance()
    mines = gpd.read_file(scene["mines"])
    assert {"open_pit", "waste_dump", "haul_road", "mine"} <= set(mines["feature"]) and scene["n_mines"] >= 2
    outline = mines[mines["feature"] == "mine"]
    burnt = rasterize([(g, 1) for g in outline.geometry], out_shape=(240, 240), transform=s2.transform) > 0
    mask = scene["mask"]
    assert mask.sum() > 500 and (burnt == mask).mean() > 0.98
    values, _ = compute_indices(refl.reshape(-1, 12), S2_BANDS, ["NDVI", "BSI"])
    bg = scene["fraction"].ravel() == 0
    pits = rasterize([(g, 1) for g in mines[mines["feature"] == "open_pit"].geometry], out_shape=(240, 240),
                     transform=s2.transform).ravel() > 0
    # bare pit walls: low NDVI, high BSI, compared with the (mostly vegetated) real background
    assert np.nanmedian(values[pits, 0]) < 0.2 < np.nanmedian(values[bg, 0])
    assert np.nanmedian(values[pits, 1]) > np.nanmedian(values[bg, 1]) + 0.2


def test_make_patches_competition_layout(tmp_path):
    import csv

    import geopandas as gpd

    from s2_scene import make_patches

    csv_path = make_patches(str(tmp_path), 3, 2, size=64, seed=1)
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert [list(r) for r in rows[:1]] == [["file", "label"]] and sorted(int(r["label"]) for r in rows) == [0, 0, 1, 1, 1]
    for row in rows:
        with rasterio.open(tmp_path / row["file"]) as ds:
            assert ds.count == 12 and list(ds.descriptions) == S2_BANDS and ds.dtypes[0] == "uint16"
            assert (ds.width, ds.height) == (64, 64) and ds.crs is not None
        gpkg = tmp_path / row["file"].replace(".tif", "_mines.gpkg")
        assert gpkg.exists() == (row["label"] == "1")
        if gpkg.exists():
            assert len(gpd.read_file(gpkg)) >= 2


# ---------------------------------------------------------------------------
# oremap:s2_indices
# ---------------------------------------------------------------------------


def test_s2_indices_algorithm_on_a_folder_and_on_a_raster(run_alg, tmp_path):
    out = str(tmp_path / "idx.tif")
    result = run_alg("s2_indices", {"INPUT_FOLDER": PATCH, "INDICES": [0, 1], "OUTPUT": out})
    assert result["VALID_PIXELS"] == 120 * 120
    b3, b4, b8 = (read_band(PATCH, b)[0] for b in ("B03", "B04", "B08"))
    with rasterio.open(out) as ds:
        assert list(ds.descriptions) == ["NDVI", "NDWI"] and ds.nodata == -9999
        ndvi, ndwi = ds.read().astype(np.float64)
    np.testing.assert_allclose(ndvi, (b8 - b4) / (b8 + b4), atol=1e-6)
    np.testing.assert_allclose(ndwi, (b3 - b8) / (b3 + b8), atol=1e-6)
    assert os.path.exists(str(tmp_path / "idx.qml"))

    dn = np.stack([np.full((3, 4), v, dtype=np.uint16) for v in range(1000, 2200, 100)])
    dn[:, 0, 0] = 0  # nodata pixel
    dn[3, 1, 1] = 0  # B4 = 0 only: that pixel is nodata too (0 = S2 nodata)
    raster = write_stack(tmp_path / "s2.tif", dn, S2_BANDS)
    out2 = str(tmp_path / "bsi.tif")
    result = run_alg("s2_indices", {"INPUT": raster, "INDICES": [3, 8], "OUTPUT": out2})
    assert result["VALID_PIXELS"] == 10
    with rasterio.open(out2) as ds:
        assert list(ds.descriptions) == ["BSI", "FERROUS_IRON"]
        bsi, ferrous = ds.read()
    r = {name: (1000 + 100 * i) / 10000.0 for i, name in enumerate(S2_BANDS)}
    expected_bsi = ((r["B11"] + r["B4"]) - (r["B8"] + r["B2"])) / ((r["B11"] + r["B4"]) + (r["B8"] + r["B2"]))
    assert bsi[2, 3] == pytest.approx(expected_bsi, rel=1e-5) and bsi[0, 0] == -9999 and bsi[1, 1] == -9999
    assert ferrous[2, 3] == pytest.approx(r["B11"] / r["B8A"], rel=1e-5)


def test_s2_indices_algorithm_names_missing_bands(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    raster = write_stack(tmp_path / "rgbn.tif", np.ones((4, 3, 3)) * 900, ["B2", "B3", "B4", "B8"])
    ok = run_alg("s2_indices", {"INPUT": raster, "INDICES": [0], "OUTPUT": str(tmp_path / "ndvi.tif")})
    assert ok["VALID_PIXELS"] == 9
    message = ""
    try:
        run_alg("s2_indices", {"INPUT": raster, "INDICES": [2], "OUTPUT": str(tmp_path / "mndwi.tif")})
    except QgsProcessingException as exc:
        message = str(exc)
    assert "B11" in message and "INPUT" in message
    assert not os.path.exists(str(tmp_path / "mndwi.tif"))


def test_s2_indices_leave_clouds_out_unless_told(run_alg, tmp_path):
    """Through Processing: with the cloud mask (the default) the scene classification's cloud and shadow pixels are
    nodata in the indices; without it, every pixel has a value."""
    folder, scl = patch_with_scl(str(tmp_path))
    cloud = np.isin(np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1), [0, 1, 3, 8, 9, 10])
    masked = run_alg("s2_indices", {"INPUT_FOLDER": folder, "INDICES": [0], "OUTPUT": str(tmp_path / "m.tif")})
    plain = run_alg("s2_indices", {"INPUT_FOLDER": folder, "INDICES": [0], "CLOUD_MASK": False,
                                   "OUTPUT": str(tmp_path / "p.tif")})
    assert masked["VALID_PIXELS"] == 120 * 120 - cloud.sum() and plain["VALID_PIXELS"] == 120 * 120
    with rasterio.open(masked["OUTPUT"]) as a, rasterio.open(plain["OUTPUT"]) as b:
        m, p = a.read(1), b.read(1)
    assert (m[cloud] == -9999).all() and (p != -9999).all()
    np.testing.assert_array_equal(m[~cloud], p[~cloud])


def test_a_polygons_hole_is_taken_off_its_geodesic_area():
    """On a geographic CRS the hole of a footprint was added to its area, whatever the rings' winding."""
    from pyproj import Geod
    from shapely.geometry import MultiPolygon, Polygon, box

    from oremap.core.sentinel2.ground_units import GroundUnits

    units = GroundUnits(Affine(0.0001, 0, 10.0, 0, -0.0001, 60.0), "EPSG:4326")
    shell, hole = box(10.0, 59.9, 10.1, 60.0), box(10.03, 59.93, 10.06, 59.96)
    geod = Geod(ellps="WGS84")
    expected = abs(geod.geometry_area_perimeter(shell)[0]) - abs(geod.geometry_area_perimeter(hole)[0])
    for rings in ((shell.exterior.coords, [hole.exterior.coords]),
                  (shell.exterior.coords[::-1], [hole.exterior.coords[::-1]])):
        area = units.area_m2(Polygon(*rings))
        assert area == pytest.approx(expected, rel=1e-9) and 5.0e7 < area < 6.0e7
    two = MultiPolygon([Polygon(shell.exterior.coords, [hole.exterior.coords]), box(11.0, 59.9, 11.01, 59.91)])
    assert units.area_m2(two) == pytest.approx(expected + abs(geod.geometry_area_perimeter(two.geoms[1])[0]))


def test_web_mercator_areas_and_pixels_are_ground_metres():
    """In EPSG:3857 one ground metre spans 1 / cos(latitude) map metres: at 48 degrees N a 100 x 100 m footprint was
    reported as 2.2 times its area and a 10 m pixel as 15 m. Areas, perimeters and pixel sizes are now measured on
    the ellipsoid, as a local equal-area projection gives them; UTM stays map units times 1."""
    from pyproj import Transformer
    from shapely.geometry import box
    from shapely.ops import transform

    from oremap.core.sentinel2.ground_units import GroundUnits, pixel_size_m

    to_3857 = Transformer.from_crs("EPSG:32633", "EPSG:3857", always_xy=True)
    x0, y0 = 500000.0, 5316000.0                     # 15 E, 48 N in UTM 33N
    footprint = box(x0, y0, x0 + 100.0, y0 + 100.0)  # 1 ha on the ground
    merc = transform(lambda x, y, z=None: to_3857.transform(x, y), footprint)
    mx, my = to_3857.transform(x0, y0)
    size = 10.0 / np.cos(np.radians(48.0))           # a 10 m ground pixel in map metres
    units = GroundUnits(Affine(size, 0, mx, 0, -size, my + 50 * size), "EPSG:3857", width=100)
    laea = Transformer.from_crs("EPSG:3857", "+proj=laea +lat_0=48 +lon_0=15 +ellps=WGS84", always_xy=True)
    true_area = transform(lambda x, y, z=None: laea.transform(x, y), merc).area
    assert true_area == pytest.approx(10000.0, rel=2e-3)
    assert merc.area / true_area == pytest.approx(2.24, abs=0.02)          # what map units gave
    assert units.area_m2(merc) == pytest.approx(true_area, rel=1e-3)
    assert units.length_m(merc.exterior) == pytest.approx(400.0, rel=2e-3)
    assert units.row_pixel_area(0, 3) == pytest.approx([100.0] * 3, rel=2e-3)
    assert pixel_size_m(units.transform, "EPSG:3857", 100, 100) == pytest.approx((10.0, 10.0), rel=2e-3)
    utm = GroundUnits(Affine(10.0, 0, x0, 0, -10.0, y0), "EPSG:32633", width=100)
    assert utm.to_lonlat is None and utm.area_m2(footprint) == 10000.0



def test_a_footprints_holes_count_in_its_geodesic_perimeter():
    """pyproj's geometry_length of a polygon measures its exterior ring only: on a geographic CRS (and one not true to
    scale) a pit ring around an unmined pit lake had the perimeter of its outline alone, and a compactness 2.5 times
    that of the same footprint in UTM, where shapely's length counts the hole. Every ring is now measured."""
    from pyproj import Geod
    from rasterio.crs import CRS
    from shapely.geometry import MultiPolygon, Polygon, box

    from oremap.core.sentinel2 import mine_detection as md
    from oremap.core.sentinel2.ground_units import GroundUnits

    geod = Geod(ellps="WGS84")
    units = GroundUnits(Affine(0.0001, 0, 10.0, 0, -0.0001, 60.0), "EPSG:4326")
    shell, hole = box(10.0, 59.9, 10.1, 60.0), box(10.03, 59.93, 10.06, 59.96)
    ring = lambda b: geod.line_length(*b.exterior.xy)  # noqa: E731 (a polygon's outline, geodesic)
    assert ring(shell) == pytest.approx(2 * 5575.0 + 2 * 11132.0, rel=2e-3)   # 0.1 degree at 60 N: 5.6 x 11.1 km
    polygon = Polygon(shell.exterior.coords, [hole.exterior.coords])
    assert units.length_m(polygon) == pytest.approx(ring(shell) + ring(hole), rel=1e-12)
    other = box(11.0, 59.9, 11.01, 59.91)
    assert units.length_m(MultiPolygon([polygon, other])) == pytest.approx(ring(shell) + ring(hole) + ring(other),
                                                                         rel=1e-12)
    assert units.length_m(shell) == pytest.approx(ring(shell), rel=1e-12)
    assert units.length_m(shell.exterior) == pytest.approx(ring(shell), rel=1e-12)   # lines as they were
    # the same pit ring (140 x 140 pixels around an 80 x 80 lake) in UTM, in EPSG:4326 and in Web Mercator at 60 N
    mask = np.zeros((200, 200), bool)
    mask[30:170, 30:170] = True
    mask[60:140, 60:140] = False
    grids = {"EPSG:32632": Affine(10, 0, 500000, 0, -10, 6650000), "EPSG:4326": Affine(1.8e-4, 0, 9.0, 0, -9e-5, 60.0),
             "EPSG:3857": Affine(20, 0, 1000000, 0, -20, 8399737.9)}
    for crs, t in grids.items():
        f, = md.footprints(mask, np.full(mask.shape, 0.9), t, crs=CRS.from_user_input(crs))
        outline = (4 * 140 + 4 * 80) * 10.0            # 8800 m in UTM; 10 x 10 m pixels about as much elsewhere
        assert f["perimeter_m"] == pytest.approx(outline, rel=0.01)
        assert f["compactness"] == pytest.approx(4 * np.pi * 13200 * 100 / outline ** 2, rel=0.01)  # 0.214
        if crs == "EPSG:4326":
            g = f["geometry"]
            assert f["perimeter_m"] == pytest.approx(ring(g) + geod.line_length(*g.interiors[0].xy), rel=1e-9)


def test_a_projected_crs_is_judged_true_to_scale_over_the_whole_raster():
    """A Web Mercator mosaic from 1 S to 11 S was judged true to scale from its top row (scale off by 0.02 %; by
    1.9 % at its bottom) and its footprints were measured in map units, 4 % too large at 11 S; a UTM zone stretched
    over 3200 km took every pixel's area at the centre column, 6 % off at the far columns. Areas are now measured on
    the ellipsoid wherever the raster is not true to scale, and compared here with the geodesic area of the
    footprint's outline."""
    from pyproj import Transformer
    from pyproj import CRS as ProjCRS
    from rasterio.crs import CRS
    from shapely.geometry.polygon import orient
    from shapely.ops import transform

    from oremap.core.sentinel2 import mine_detection as md
    from oremap.core.sentinel2.ground_units import GroundUnits

    def geodesic_ha(geom, crs):
        c = ProjCRS.from_user_input(crs)
        to_lonlat = Transformer.from_crs(c, c.geodetic_crs, always_xy=True)
        lonlat = transform(lambda x, y, z=None: to_lonlat.transform(x, y), geom)
        return abs(c.get_geod().geometry_area_perimeter(orient(lonlat, 1.0))[0]) / 1e4

    def square(crs, t, width, height, r0, c0):
        """The footprint of 100 x 100 pixels at row r0, column c0 of a width x height raster (only its strip given)."""
        poly = md.Polygoniser(t, width, crs=CRS.from_user_input(crs), height=height)
        mask = np.zeros((100, width), bool)
        mask[:, c0:c0 + 100] = True
        poly.add(r0, mask, np.ones(mask.shape))
        return poly.close()[0]

    y_top = Transformer.from_crs(4326, 3857, always_xy=True).transform(-50.0, -1.0)[1]
    mercator = Affine(10, 0, -5565974.5, 0, -10, y_top)      # 10 map metres, 1 S to 11 S: 112,000 rows
    assert GroundUnits(mercator, "EPSG:3857", 20000).to_lonlat is None               # its first row alone
    assert GroundUnits(mercator, "EPSG:3857", 20000, 112000).to_lonlat is not None
    for r0, at_most in ((1000, 99.3), (110000, 95.9)):   # 100 map ha: about 100 cos^2(latitude) ha at 1.1 S, 10.7 S
        f = square("EPSG:3857", mercator, 20000, 112000, r0, 10000)
        assert f["area_ha"] == pytest.approx(geodesic_ha(f["geometry"], "EPSG:3857"), rel=1e-4)
        assert f["area_ha"] < at_most
    wide = Affine(10, 0, 500000 - 1600000, 0, -10, 600000)   # UTM 33N from 0.6 E to 29.4 E near the equator
    for c0 in (1000, 159950, 300000):
        f = square("EPSG:32633", wide, 320000, 1000, 0, c0)
        assert f["area_ha"] == pytest.approx(geodesic_ha(f["geometry"], "EPSG:32633"), rel=1e-3)
    # a UTM scene in its zone stays in map units
    utm = GroundUnits(Affine(10.0, 0, 300000, 0, -10.0, 7000000), "EPSG:32633", 10980, 10980)
    assert utm.to_lonlat is None and utm.pixel_areas(0, [0, 5000], [0, 10979]).tolist() == [100.0, 100.0]


def test_a_crs_assigned_in_qgis_is_written_to_the_outputs(run_alg, tmp_path):
    """A file without a CRS whose layer the user gave one in QGIS (Layer Properties > Source): the layer placed
    vector inputs by that CRS, but the outputs came out without any. They now carry it, on the input's grid."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsRasterLayer

    path = str(tmp_path / "rgbn_nocrs.tif")
    with rasterio.open(path, "w", driver="GTiff", width=3, height=3, count=4, dtype="uint16",
                       transform=Affine(10, 0, 400000, 0, -10, 5300000)) as dst:
        dst.write((np.arange(36).reshape(4, 3, 3) * 50 + 500).astype("uint16"))
        for i, band in enumerate(["B2", "B3", "B4", "B8"], start=1):
            dst.set_band_description(i, band)
    layer = QgsRasterLayer(path, "rgbn", "gdal")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32633"))
    out = run_alg("s2_indices", {"INPUT": layer, "INDICES": [0], "OUTPUT": str(tmp_path / "ndvi.tif")})
    with rasterio.open(out["OUTPUT"]) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == Affine(10, 0, 400000, 0, -10, 5300000)
    with rasterio.open(path) as ds:
        assert ds.crs is None   # the user's file is left as it was
    # without any CRS, indices are still computed (per pixel), as from a folder of band files without one; they
    # were refused as having 'no coordinate reference system, so distances ... mean nothing'
    out = run_alg("s2_indices", {"INPUT": path, "INDICES": [0], "OUTPUT": str(tmp_path / "ndvi_nocrs.tif")})
    with rasterio.open(out["OUTPUT"]) as ds, rasterio.open(str(tmp_path / "ndvi.tif")) as placed:
        assert ds.crs is None and np.array_equal(ds.read(), placed.read())


def test_an_alpha_band_is_a_mask_not_b12(tmp_path):
    """gdalwarp -dstalpha adds a 13th band: unnamed, the stack was taken as a 13-band L1C (B10, B11, B12 = the real
    B11, B12 and the alpha), and every short-wave index and the mine maps were wrong. The alpha band is now a mask:
    the 12 bands keep the L2A order and alpha 0 is nodata."""
    from rasterio.enums import ColorInterp

    from conftest import core_warnings

    refl = _patch_reflectance()
    dn = np.round(refl * 10000).astype(np.uint16).transpose(2, 0, 1)
    alpha = np.full(dn.shape[1:], 65535, np.uint16)
    alpha[:10, :] = 0
    path = write_stack(tmp_path / "warped.tif", np.concatenate([dn, alpha[None]]))
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp.gray] * 12 + [ColorInterp.alpha]
    log = core_warnings()
    with open_sentinel2(path, feedback=log) as s2:
        assert s2.bands == S2_BANDS and s2.band_index("B12") == 12
        values = s2.read_reflectance(["B11", "B12"])
    assert "standard Sentinel-2 order (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12)" in log.warnings[0]
    assert np.isnan(values[:10]).all()
    np.testing.assert_allclose(values[10:], refl[10:, :, 10:], atol=1e-4)


def test_float_reflectance_in_per_cent_and_a_zero_border(tmp_path):
    """Float reflectance in per cent was divided by 10000 (mine maps on 1/100 of the reflectance); a float stack
    warped without a nodata value scored its zero border as ground. Per cent is now read as such, with a warning,
    and a border of one value in every band is nodata."""
    from conftest import core_warnings

    refl = _patch_reflectance()
    percent = (refl * 100.0).astype(np.float32).transpose(2, 0, 1)
    percent[:, :, :6] = 0.0
    path = write_stack(tmp_path / "percent.tif", percent, descriptions=S2_BANDS, dtype="float32")
    log = core_warnings()
    with open_sentinel2(path, feedback=log) as s2:
        assert s2.scale == 0.01
        values = s2.read_reflectance()
    assert any("taken as reflectance in per cent (scale 0.01)" in w for w in log.warnings)
    assert np.isnan(values[:, :6]).all()
    np.testing.assert_allclose(values[:, 6:], refl[:, 6:], rtol=1e-5, atol=1e-6)


def test_a_self_crossing_mine_outline_keeps_both_lobes():
    """A bow-tie outline (digitised with its last vertices swapped) lost one lobe to buffer(0): half the mine was
    labelled background. Both lobes are kept."""
    from shapely.geometry import Polygon

    from oremap.core.sentinel2.segmentation_data import repaired

    bowtie = Polygon([(0, 0), (400, 200), (400, 0), (0, 200)])
    assert not bowtie.is_valid
    fixed = repaired(bowtie)
    assert fixed.is_valid and fixed.area == pytest.approx(40000.0) and bowtie.buffer(0).area == pytest.approx(20000.0)


def test_valid_pixels_leave_out_pixels_without_any_index(run_alg, tmp_path):
    """VALID_PIXELS counted pixels whose every index is undefined (nodata in every output band)."""
    data = np.full((4, 3, 3), 0.2, np.float32)
    data[2:, 0, :2] = 0.0          # B4 = B8 = 0: NDVI is 0 / 0
    raster = write_stack(tmp_path / "rgbn.tif", data, ["B2", "B3", "B4", "B8"], dtype="float32")
    out = run_alg("s2_indices", {"INPUT": raster, "INDICES": [0], "OUTPUT": str(tmp_path / "ndvi.tif")})
    with rasterio.open(out["OUTPUT"]) as ds:
        ndvi = ds.read(1)
    assert out["VALID_PIXELS"] == 7 == int((ndvi != -9999).sum())


# ---------------------------------------------------------------------------
# Exports with layers appended, Level-1C, 8-bit and cloud bands in one raster
# ---------------------------------------------------------------------------


def _patch_dn():
    """The real patch's 12 bands as uint16 DN (12, rows, cols) in S2_BANDS order."""
    return np.round(_patch_reflectance() * 10000).astype(np.uint16).transpose(2, 0, 1)


def _nbr(refl):
    b8, b12 = np.maximum(refl[..., S2_BANDS.index("B8")], 0), np.maximum(refl[..., S2_BANDS.index("B12")], 0)
    return (b8 - b12) / (b8 + b12)


def test_the_12_l2a_bands_with_scl_appended_unnamed_are_refused_with_the_band_map_that_reads_them(tmp_path):
    """openEO and Earth Engine's select(['B.*', 'SCL']) without names give 13 bands: they were read in the L1C order,
    B11 as B10, B12 as B11 and the SCL codes as B12 (NBR median 0.997 for 0.429). The SCL band (whole numbers 0-11
    where B12 is expected) and a 'B10' five times as bright as blue tell they are no L1C stack: refused, and the
    band map of the fix reads them right. A layer that is no class (aerosol optical thickness) is told by the
    'B10' alone; a 13-band L1C stack is read as before."""
    dn = _patch_dn()
    scl = np.full(dn.shape[1:], 4, np.uint16)
    scl[:40] = 9
    path = write_stack(tmp_path / "l2a_scl.tif", np.concatenate([dn, scl[None]]))
    with pytest.raises(OreMapError) as err:
        open_sentinel2(path)
    assert err.value.parameter == "raster" and "do not fit the order" in err.value.message
    assert "band 13, taken for B12, holds only whole numbers 4-9" in err.value.message
    assert "band 11, taken for B10 (cirrus, 1375 nm)" in err.value.message
    band_map = err.value.fix.split("scene classification: '")[1].split("'")[0]
    assert band_map == "B1=1, B2=2, B3=3, B4=4, B5=5, B6=6, B7=7, B8=8, B8A=9, B9=10, B11=11, B12=12"
    with open_sentinel2(path, band_map=band_map) as s2:
        refl = s2.read_reflectance(S2_BANDS)
    np.testing.assert_allclose(refl, dn.transpose(1, 2, 0) / 10000.0, atol=1e-6)
    assert np.nanmedian(_nbr(refl)) == pytest.approx(0.429, abs=0.005)
    aot = np.random.default_rng(1).normal(150, 10, dn.shape[1:]).round().astype(np.uint16)
    path = write_stack(tmp_path / "l2a_aot.tif", np.concatenate([dn, aot[None]]))
    with pytest.raises(OreMapError) as err:
        open_sentinel2(path)
    assert "band 11, taken for B10 (cirrus, 1375 nm), is 5.0 times as bright as band 2" in err.value.message
    assert "class codes" not in err.value.message
    cirrus = np.random.default_rng(2).uniform(5, 40, dn.shape[1:]).round().astype(np.uint16)  # clear-sky TOA DN
    path = write_stack(tmp_path / "l1c.tif", np.concatenate([dn[:10], cirrus[None], dn[10:]]))
    log = core_warnings()
    with open_sentinel2(path, feedback=log) as s2:
        assert s2.bands == S2_BANDS[:10] + ["B10"] + S2_BANDS[10:]
        np.testing.assert_allclose(s2.read_reflectance(["B12"])[..., 0], dn[-1] / 10000.0, atol=1e-6)
    assert any("standard Sentinel-2 order" in w for w in log.warnings)


def test_level_1c_in_one_raster_is_warned_of_as_in_a_folder(tmp_path):
    """The folder reader said that Level-1C is top-of-atmosphere reflectance; a single raster of it (an MSIL1C
    product name, bands named B10, 13 unnamed bands taken with B10) was used without a word."""
    dn = _patch_dn()
    cirrus = np.random.default_rng(2).uniform(5, 40, dn.shape[1:]).round().astype(np.uint16)
    l1c = np.concatenate([dn[:10], cirrus[None], dn[10:]])
    names = S2_BANDS[:10] + ["B10"] + S2_BANDS[10:]
    cases = {"S2B_MSIL1C_20230601T100559_N0509_R022_T33UVP_20230601T120000.tif": (dn, S2_BANDS, True),
             "named_b10.tif": (l1c, names, True), "unnamed_13.tif": (l1c, None, True),
             "S2B_MSIL2A_20230601T100559_N0509_R022_T33UVP_20230601T120000.tif": (dn, S2_BANDS, False),
             "named_12.tif": (dn, S2_BANDS, False)}
    for name, (data, descriptions, level_1c) in cases.items():
        log = core_warnings()
        with open_sentinel2(write_stack(tmp_path / name, data, descriptions), feedback=log) as s2:
            assert s2.band_index("B12") == len(data)
        assert any(w.startswith("A Level-1C product: top-of-atmosphere reflectance") for w in log.warnings) == \
            level_1c, name


def test_an_8_bit_raster_is_reflectance_times_255_as_sentinel_hub_writes_it(tmp_path):
    """Sentinel Hub's default sampleType AUTO writes reflectance 0-1 stretched to 0-255 in 8 bits; it was read as
    DN / 10000, 40 times too dark. Now value / 255, said in a warning."""
    refl = _patch_reflectance()
    stretched = np.clip(np.round(refl * 255), 1, 255).astype(np.uint8).transpose(2, 0, 1)
    path = write_stack(tmp_path / "auto.tif", stretched, [f"B{b[1:].zfill(2)}" if b != "B8A" else b for b in S2_BANDS],
                       dtype="uint8")
    log = core_warnings()
    with open_sentinel2(path, feedback=log) as s2:
        assert s2.scale == pytest.approx(1 / 255) and s2.offset == 0.0
        got = s2.read_reflectance(S2_BANDS)
    np.testing.assert_allclose(got, stretched.transpose(1, 2, 0) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(np.median(got, axis=(0, 1)), np.median(refl, axis=(0, 1)), atol=2 / 255)
    assert any("8-bit raster: taken as reflectance x 255" in w and "sampleType AUTO" in w for w in log.warnings)


def test_a_rasters_scl_band_masks_its_clouds_and_other_cloud_layers_are_said_not_to_be_used(tmp_path):
    """An Earth Engine export with SCL, MSK_CLDPRB and QA60 bands. The SCL band now masks clouds and their shadows as
    a product folder's SCL file does (before, the clouds stayed in the data with a warning); the other cloud layers
    are said not to be used; with the cloud mask off nothing is masked and the SCL band is said to be unused."""
    dn = _patch_dn()
    scl = np.full(dn.shape[1:], 4, np.uint16)
    scl[:40] = 9        # cloud, high probability
    scl[40:45] = 3      # cloud shadow
    scl[45:50] = 2      # dark area: kept
    scl[50:52] = 255    # a fill outside the classes: no data
    cloud = np.stack([scl, (scl == 9) * 95, (scl == 9) * 1024]).astype(np.uint16)
    path = write_stack(tmp_path / "gee.tif", np.concatenate([dn, cloud]), S2_BANDS + ["SCL", "MSK_CLDPRB", "QA60"])
    expected_valid = (scl == 4) | (scl == 2)
    temp = []
    for mask_clouds in (True, False):
        log = core_warnings()
        with open_sentinel2(path, feedback=log, mask_clouds=mask_clouds) as s2:
            assert s2.bands == S2_BANDS
            got = s2.read_reflectance(["B4", "B8"])
            temp.append(s2.temp_dir)
        valid = np.isfinite(got).all(axis=2)
        said = [w for w in log.warnings if "that the cloud mask does not use" in w]
        if mask_clouds:
            assert len(said) == 1 and "(band 14 'MSK_CLDPRB', band 15 'QA60')" in said[0]
            np.testing.assert_array_equal(valid, expected_valid & (dn[[3, 7]] != 0).all(axis=0))
            assert any(n.startswith("Clouds masked with the raster's scene classification band (band 13, SCL)")
                       for n in log.infos)
        else:
            assert said == [] and valid.sum() == (dn[[3, 7]] != 0).all(axis=0).sum()
            assert "The scene classification (SCL) band is not used: clouds and their shadows are not masked." \
                in log.infos
    assert temp[0] and not os.path.exists(temp[0]) and temp[1] is None
    log = core_warnings()
    with open_sentinel2(write_stack(tmp_path / "plain.tif", dn, S2_BANDS), feedback=log):
        pass
    assert not any("cloud mask" in w for w in log.warnings)


def test_a_stacks_own_mask_still_masks_when_its_scl_band_masks_clouds(tmp_path):
    """The SCL band's VRT mask replaced the file's internal mask (audit of 2026-12-07): the 25 pixels the file masks
    got index values. Now a pixel is valid only where both the file's mask and the SCL class keep it."""
    dn = _patch_dn()
    scl = np.full(dn.shape[1:], 4, np.uint16)
    scl[:10] = 9
    path = write_stack(tmp_path / "masked.tif", np.concatenate([dn, scl[None]]), S2_BANDS + ["SCL"])
    file_mask = np.full(scl.shape, 255, np.uint8)
    file_mask[60:65, 60:65] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as ds:
        ds.write_mask(file_mask)
    with open_sentinel2(path, feedback=core_warnings()) as s2:
        got = s2.read_reflectance(["B4", "B8"])
    valid = np.isfinite(got).all(axis=2)
    expected = (scl == 4) & (file_mask == 255) & (dn[[3, 7]] != 0).all(axis=0)
    assert (~expected).sum() > 25 + 10 * scl.shape[1] - 1
    np.testing.assert_array_equal(valid, expected)
