"""EMIT L2A RFL, EnMAP L2A and PRISMA L2D products read directly (issue 14, point 2), and the sensor presets (point 3).

The products are small files built after the product specifications (test/sensor_fixtures.py) holding real
USGS mineral spectra; the readers must place every pixel where the product says, with the product's
wavelengths, scale, bad bands and masks, and the bundled CNN must find the minerals again.
"""

import json
import os

import numpy as np
import pytest
import rasterio

import sensor_fixtures as sf

from oremap.core.hyperspectral import sensor_presets, sensor_products
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.wavelengths import band_info_from_raster


def written(product, tmp_path, name="out.tif"):
    out = str(tmp_path / name)
    sensor_products.write_geotiff(product, out)
    with rasterio.open(out) as ds:
        return ds.read(), ds.transform, ds.crs, band_info_from_raster(ds), ds.nodata


def classes_by_row(path):
    with rasterio.open(path) as ds:
        classes = ds.read(1)
        legend = {d["value"]: d["name"] for d in json.loads(ds.tags()["OREMAP_CLASSES"])}
    return np.vectorize(legend.get)(classes)


# ---------------------------------------------------------------------------
# EMIT
# ---------------------------------------------------------------------------

def test_emit_orthorectified_with_glt(tmp_path):
    fx = sf.make_emit(str(tmp_path))
    product = sensor_products.open_product(fx["path"])
    assert sensor_products.detect(f'NETCDF:"{fx["path"]}":reflectance') == sensor_products.EMIT_L2A_RFL
    data, transform, crs, info, nodata = written(product, tmp_path)
    good = fx["good"]
    assert crs.to_epsg() == 4326 and transform.to_gdal() == pytest.approx(tuple(fx["geotransform"]))
    np.testing.assert_allclose(info.centers, fx["centers"][good], atol=1e-3)
    np.testing.assert_allclose(info.fwhm, fx["fwhm"][good], atol=1e-3)
    lines, samples = fx["cube"].shape[:2]
    assert data.shape == (int(good.sum()), samples + 2, lines + 2)
    for row in range(samples + 2):
        for col in range(lines + 2):
            pixel = data[:, row, col]
            line, sample = col - 1, samples - row
            inside = 1 <= row <= samples and 1 <= col <= lines
            if not inside or (line, sample) in ((0, 0), (1, 1)):  # border, fill value, Aggregate Flag
                assert np.all(pixel == nodata), (row, col)
            else:
                np.testing.assert_allclose(pixel, fx["cube"][line, sample, good], rtol=1e-6)


def test_emit_without_mask_keeps_flagged_pixel(tmp_path):
    fx = sf.make_emit(str(tmp_path), with_mask=False)
    data, *_ = written(sensor_products.open_product(fx["path"]), tmp_path)
    samples = fx["cube"].shape[1]
    np.testing.assert_allclose(data[:, samples - 1, 2], fx["cube"][1, 1, fx["good"]], rtol=1e-6)


def test_emit_mask_of_collection_002_is_found_and_a_missing_mask_is_said(tmp_path):
    """NASA publishes the L2A mask as collection 002 beside RFL 001 (EMIT_L2A_MASK_002_...). The reader looked only
    for MASK_001, so a V002 mask was skipped without a word and a cloud pixel kept its spectrum."""
    fx = sf.make_emit(str(tmp_path))
    samples = fx["cube"].shape[1]
    newer = fx["mask"].replace("_MASK_001_", "_MASK_002_")
    os.rename(fx["mask"], newer)
    product = sensor_products.open_product(fx["path"])
    assert sensor_products.files_read(fx["path"]) == [fx["path"], newer]
    data, _, _, _, nodata = written(product, tmp_path)
    assert np.all(data[:, samples - 1, 2] == nodata)  # swath pixel (1, 1), flagged in the Aggregate Flag
    assert any(note.startswith(f"pixels flagged in the mask granule '{os.path.basename(newer)}'")
               for note in product.notes)
    os.remove(newer)
    product = sensor_products.open_product(fx["path"])
    assert any(note.startswith("no mask granule (EMIT_L2A_MASK_001_") and "not masked" in note
               for note in product.notes)


def test_emit_glt_with_declared_fill(tmp_path):
    """A GLT re-saved with _FillValue -9999 where the product has 0 places the swath as the original."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    plain = sf.make_emit(str(tmp_path / "a"), with_mask=False)
    filled = sf.make_emit(str(tmp_path / "b"), with_mask=False, glt_fill=-9999)
    a = written(sensor_products.open_product(plain["path"]), tmp_path, "a.tif")
    b = written(sensor_products.open_product(filled["path"]), tmp_path, "b.tif")
    np.testing.assert_array_equal(a[0], b[0])
    assert np.all(b[0][:, 0, :] == b[4])  # the border row: no swath pixel


def test_emit_bad_product_names_the_file(tmp_path):
    from osgeo import gdal

    path = str(tmp_path / sf.EMIT_NAME)
    ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(path)
    root = ds.GetRootGroup()
    dim = root.CreateDimension("bands", None, None, 3)
    sf._md_array(root, "wavelengths", [dim], np.arange(3.0), gdal.GDT_Float64)
    del ds
    with pytest.raises(OreMapError) as err:
        sensor_products.open_product(path)
    assert err.value.parameter == "raster" and sf.EMIT_NAME in err.value.message and "reflectance" in err.value.message


# ---------------------------------------------------------------------------
# EnMAP
# ---------------------------------------------------------------------------

def test_enmap_scale_overlap_and_masks(tmp_path):
    fx = sf.make_enmap(str(tmp_path))
    for given in (fx["xml"], fx["image"]):
        assert sensor_products.detect(given) == sensor_products.ENMAP_L2A
    data, transform, crs, info, nodata = written(sensor_products.open_product(fx["image"]), tmp_path)
    assert crs.to_epsg() == 32633 and transform == fx["transform"]
    centers = fx["centers"]
    # VNIR and SWIR overlap at 902-993 nm: cut in the middle, VNIR above and SWIR below the cut left out
    cut = (902.0 + 992.9) / 2
    expected = [i for i in range(centers.size)
                if (fx["detectors"][i] == "VNIR" and centers[i] < cut) or (fx["detectors"][i] == "SWIR" and centers[i] > cut)]
    np.testing.assert_allclose(info.centers, centers[expected], atol=1e-3)
    assert np.all(np.diff(info.centers) > 0) and len(expected) == 212
    np.testing.assert_allclose(data[:, 4, 2], fx["cube"][4, 2, expected], rtol=1e-5)
    assert np.all(data[:, 0, 0] == nodata)  # -32768 in the SPECTRAL_IMAGE
    assert np.all(data[:, 2, 3] == nodata)  # QL_QUALITY_CLOUD
    assert np.sum(np.all(data == nodata, axis=0)) == 2


def test_enmap_cirrus_levels_and_filled_bands(tmp_path):
    """Every cirrus level (1 thin to 3 thick) is nodata, the layer's fill 255 is not; bands the processor
    filled with the nodata value are left out and named in the notes."""
    levels = {(1, 1): 1, (1, 2): 2, (1, 3): 3, (1, 4): 255}
    fx = sf.make_enmap(str(tmp_path), cirrus=levels, filled_bands=(120, 121, 122))
    product = sensor_products.open_product(fx["xml"])
    data, _, _, info, nodata = written(product, tmp_path)
    for (r, c), level in levels.items():
        assert np.all(data[:, r, c] == nodata) == (level != 255), level
    assert info.n_bands == 212 - 3
    assert not np.isin(np.round(info.centers, 3), np.round(fx["centers"][[120, 121, 122]], 3)).any()
    assert any(note.startswith("3 bands hold only the nodata value (") for note in product.notes)
    assert any("every cirrus level" in note for note in product.notes)


def test_enmap_snow_is_nodata_and_haze_is_not(tmp_path):
    """Snow hides the ground and its short-wave absorptions pass for minerals': flagged pixels are nodata. Haze is
    corrected by the processor and kept."""
    fx = sf.make_enmap(str(tmp_path), snow=[(5, 1)], haze=[(6, 2)])
    product = sensor_products.open_product(fx["xml"])
    data, _, _, _, nodata = written(product, tmp_path)
    assert np.all(data[:, 5, 1] == nodata) and not np.any(data[:, 6, 2] == nodata)
    assert any("QL_QUALITY_SNOW" in note for note in product.notes)


def test_enmap_ordered_as_envi(tmp_path):
    """A product ordered as ENVI band-sequential reads as the GeoTIFF one, quality layers included."""
    (tmp_path / "tif").mkdir(), (tmp_path / "bsq").mkdir()
    tif = sf.make_enmap(str(tmp_path / "tif"))
    bsq = sf.make_enmap(str(tmp_path / "bsq"), image_format="ENVI")
    assert bsq["image"].endswith("-SPECTRAL_IMAGE.BSQ")
    for given in (bsq["xml"], bsq["image"]):
        assert sensor_products.detect(given) == sensor_products.ENMAP_L2A
    assert sensor_products.is_companion(bsq["image"][:-4] + ".HDR")
    assert not sensor_products.is_companion(bsq["image"])
    a = written(sensor_products.open_product(tif["xml"]), tmp_path, "a.tif")
    b = written(sensor_products.open_product(bsq["image"]), tmp_path, "b.tif")
    np.testing.assert_array_equal(a[0], b[0])
    assert np.all(b[0][:, 2, 3] == b[4])  # QL_QUALITY_CLOUD.BSQ


def test_enmap_metadata_errors_name_the_field(tmp_path):
    fx = sf.make_enmap(str(tmp_path))
    text = open(fx["xml"]).read().replace("<FWHMOfBand>", "<FWHM>", 1).replace("</FWHMOfBand>", "</FWHM>", 1)
    with open(fx["xml"], "w") as fh:
        fh.write(text)
    with pytest.raises(OreMapError) as err:
        sensor_products.open_product(fx["xml"])
    assert "band 1 has no FWHMOfBand" in err.value.message and "METADATA.XML" in err.value.message


# ---------------------------------------------------------------------------
# PRISMA
# ---------------------------------------------------------------------------

def test_prisma_joined_sorted_and_scaled(tmp_path):
    fx = sf.make_prisma(str(tmp_path))
    data, transform, crs, info, nodata = written(sensor_products.open_product(fx["path"]), tmp_path)
    cw_v, _, v_ref = fx["vnir"]
    cw_s, _, s_ref = fx["swir"]
    assert crs.to_epsg() == 32633
    assert transform.to_gdal() == pytest.approx((fx["ul"][0] - 15, 30.0, 0.0, fx["ul"][1] + 15, 0.0, -30.0))
    cut = (cw_s[cw_s > 0].min() + cw_v.max()) / 2
    keep_v = (cw_v > 0) & (cw_v < cut)
    keep_s = (cw_s > 0) & (cw_s > cut)
    centers = np.concatenate([cw_v[keep_v], cw_s[keep_s]])
    order = np.argsort(centers)
    np.testing.assert_allclose(info.centers, centers[order], atol=1e-3)
    assert info.n_bands == 225 and np.all(np.diff(info.centers) > 0)
    expected = np.concatenate([v_ref[3, 4, keep_v], s_ref[3, 4, keep_s]])[order]
    np.testing.assert_allclose(data[:, 3, 4], expected, rtol=1e-5)
    assert np.all(data[:, 0, 0] == nodata) and np.sum(np.all(data == nodata, axis=0)) == 1


def test_prisma_error_matrices(tmp_path):
    """A pixel flagged saturated in one kept band is nodata; a band flagged negative in every pixel (a water-vapour
    band after the atmospheric correction) is left out and named rather than taking the whole scene with it; a flag
    in a band that is left out anyway (the unused slots) changes nothing."""
    cw_v, _, _, cw_s, _, _ = sf.prisma_bands()
    band_1400 = int(np.argmin(np.abs(cw_s - 1400.0)))
    errors = {("SWIR", 5, 2, 40): 3, ("VNIR", 6, 1, 20): 1, ("SWIR", None, None, band_1400): 2,
              ("VNIR", 2, 2, int(np.flatnonzero(cw_v == 0)[0])): 1}
    clean = written(sensor_products.open_product(sf.make_prisma(str(tmp_path))["path"]), tmp_path, "a.tif")
    (tmp_path / "flagged").mkdir()
    fx = sf.make_prisma(str(tmp_path / "flagged"), errors=errors)
    product = sensor_products.open_product(fx["path"])
    data, _, _, info, nodata = written(product, tmp_path, "b.tif")
    assert info.n_bands == clean[3].n_bands - 1
    assert not np.isclose(info.centers, cw_s[band_1400], atol=1e-3).any()
    assert any(n.startswith("1 bands flagged in the error matrix") and f"{cw_s[band_1400]:.0f}" in n
               for n in product.notes)
    lost = np.all(data == nodata, axis=0)
    assert lost[5, 2] and lost[6, 1] and not lost[2, 2] and lost.sum() == 3  # and (0, 0), outside the image
    kept = np.isin(np.round(clean[3].centers, 3), np.round(info.centers, 3))
    np.testing.assert_array_equal(data[:, 3, 4], clean[0][kept, 3, 4])


def test_prisma_bands_flagged_each_in_their_own_pixels_do_not_blank_the_scene(tmp_path):
    """Two water-vapour bands negative each in 3 of 8 lines (under half the pixels, so kept), in different lines:
    every pixel they flag became nodata, 6 of 8 lines. They are now left out and named; a pixel saturated in many
    bands stays nodata (no single band gives it back). By hand: 36 + 1 of the 47 pixels with data (79 %) lost before,
    1 (2 %) after."""
    _, _, _, cw_s, _, _ = sf.prisma_bands()
    a, b = int(np.argmin(np.abs(cw_s - 1350.0))), int(np.argmin(np.abs(cw_s - 1800.0)))
    errors = {("SWIR", r, None, a): 2 for r in (1, 2, 3)}
    errors.update({("SWIR", r, None, b): 2 for r in (4, 5, 6)})
    errors.update({("SWIR", 7, 3, band): 3 for band in range(30, 60)})
    fx = sf.make_prisma(str(tmp_path), errors=errors)
    product = sensor_products.open_product(fx["path"])
    data, _, _, info, nodata = written(product, tmp_path)
    assert not np.isclose(info.centers[:, None], cw_s[[a, b]], atol=1e-3).any()
    lost = np.all(data == nodata, axis=0)
    assert lost[7, 3] and lost[0, 0] and lost.sum() == 2
    note = [n for n in product.notes
            if n.startswith("2 more bands flagged in the error matrix, each in pixels of its own")]
    assert len(note) == 1 and "would have left 79 % of the pixels as nodata (2 % without them)" in note[0]


def test_not_a_product(tmp_path):
    path = tmp_path / "scene.nc"
    path.write_bytes(b"")
    assert sensor_products.detect(str(path)) is None
    with pytest.raises(OreMapError) as err:
        sensor_products.open_product(str(path))
    assert err.value.parameter == "raster" and "scene.nc" in err.value.message


# ---------------------------------------------------------------------------
# Through the algorithms
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def products(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("products"))
    return {"EMIT": sf.make_emit(folder), "EnMAP": sf.make_enmap(folder), "PRISMA": sf.make_prisma(folder)}


@pytest.mark.parametrize("sensor,key", [("EMIT", "path"), ("EnMAP", "xml"), ("PRISMA", "path")])
def test_bundled_cnn_on_products(products, run_alg, tmp_path, sensor, key):
    fx = products[sensor]
    out = str(tmp_path / "classes.tif")
    result = run_alg("classify_spectral_cnn", {"INPUT": fx[key], "MODEL": 0, "OUTPUT_CLASSES": out})
    got = classes_by_row(out)
    if sensor == "EMIT":  # map row r, col c shows swath line c - 1
        labels = np.array(fx["labels"])
        inner = got[1:-1, 1:-1]
        expected = np.broadcast_to(labels[None, :], inner.shape)
        ok = inner == expected
        ok[-1, 0] = ok[-2, 1] = True  # fill value and masked pixel: unclassified
        assert ok.all()
        assert result["VALID_PIXELS"] == inner.size - 2
    else:
        expected = np.array(fx["labels"])[:, None]
        valid = np.ones(got.shape, bool)
        valid[0, 0] = False
        if sensor == "EnMAP":
            valid[2, 3] = False
        assert (got == expected)[valid].all()


def test_sam_and_unmix_on_prisma(products, run_alg, tmp_path):
    from conftest import USGS_LIBRARY

    fx = products["PRISMA"]
    spectra = ";".join(m for m, _ in sf.MINERALS)
    run_alg("sam_classify", {"INPUT": fx["path"], "LIBRARY": USGS_LIBRARY, "SPECTRA": spectra,
                             "OUTPUT_CLASSES": str(tmp_path / "sam.tif")})
    with rasterio.open(tmp_path / "sam.tif") as ds:
        classes = ds.read(1)
    expected = (np.arange(classes.shape[0]) % len(sf.MINERALS) + 1)[:, None]
    assert (classes == expected)[1:].all() and (classes[0, 1:] == 1).all()
    result = run_alg("unmix_fcls", {"INPUT": fx["path"], "LIBRARY": USGS_LIBRARY, "SPECTRA": spectra, "MODE": 1,
                                    "OUTPUT": str(tmp_path / "abund.tif")})
    assert result["VALID_PIXELS"] == classes.size - 1


@pytest.mark.parametrize("sensor,key,bands", [("EMIT", "path", 242), ("EnMAP", "xml", 212), ("PRISMA", "path", 225)])
def test_import_algorithm(products, run_alg, tmp_path, sensor, key, bands):
    out = str(tmp_path / f"{sensor}.tif")
    result = run_alg("import_spectrometer_product", {"INPUT": products[sensor][key], "OUTPUT": out})
    assert result["BANDS"] == bands
    with rasterio.open(out) as ds:
        info = band_info_from_raster(ds)
        assert ds.count == bands and ds.profile["tiled"] and ds.dtypes[0] == "float32"
        assert ds.tags()["OREMAP_SOURCE_PRODUCT"].startswith(sensor)
    assert info.fwhm is not None and np.all(np.diff(info.centers) > 0)
    # it loads in true colour: the bands nearest 640, 550 and 460 nm, stretched
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(out, "product", "gdal")
    renderer = layer.renderer()
    assert renderer.type() == "multibandcolor"
    shown = [renderer.redBand(), renderer.greenBand(), renderer.blueBand()]
    assert shown == [1 + int(np.argmin(np.abs(info.centers - nm))) for nm in (640, 550, 460)]
    assert [abs(info.centers[b - 1] - nm) < 10 for b, nm in zip(shown, (640, 550, 460))] == [True] * 3
    enhancement = renderer.redContrastEnhancement()
    assert 0 < enhancement.minimumValue() < enhancement.maximumValue() < 1.5


def test_import_aviris_classic_envi(run_alg, tmp_path):
    from aviris_classic import make_cube

    cube = str(tmp_path / "f950101t01p01_r01_sc01.img")
    make_cube(cube)
    out = str(tmp_path / "aviris.tif")
    result = run_alg("import_spectrometer_product", {"INPUT": cube, "OUTPUT": out})
    assert result["BANDS"] == 217  # 224 less the 7 overlap and repeated bands
    with rasterio.open(out) as ds, rasterio.open(cube) as src:
        info = band_info_from_raster(ds)
        assert np.all(np.diff(info.centers) > 0)
        # band 1 (383.15 nm) is the first output band, as reflectance
        np.testing.assert_allclose(ds.read(1), src.read(1) / 10000.0, rtol=1e-6)


def test_import_applies_the_scale_of_a_plain_raster(run_alg, tmp_path):
    """Float reflectance x 10000 without scale metadata is written as given unless SCALE says 10000; a product's
    own scale wins over SCALE."""
    cube = _write_cube(tmp_path / "x10000.tif", scale=10000.0)
    plain = run_alg("import_spectrometer_product", {"INPUT": cube, "OUTPUT": str(tmp_path / "a.tif")})
    scaled = run_alg("import_spectrometer_product", {"INPUT": cube, "SCALE": 10000, "OUTPUT": str(tmp_path / "b.tif")})
    with rasterio.open(cube) as src, rasterio.open(plain["OUTPUT"]) as a, rasterio.open(scaled["OUTPUT"]) as b:
        np.testing.assert_allclose(a.read(), src.read(), rtol=1e-6)
        np.testing.assert_allclose(b.read(), src.read() / 10000.0, rtol=1e-6)
    fx = sf.make_enmap(str(tmp_path))
    out = run_alg("import_spectrometer_product", {"INPUT": fx["xml"], "SCALE": 100, "OUTPUT": str(tmp_path / "e.tif")})
    with rasterio.open(out["OUTPUT"]) as ds:
        np.testing.assert_allclose(ds.read(1)[4, 2], fx["cube"][4, 2, 0], rtol=1e-5)


def _write_cube(path, scale):
    """A 3 x 4 x 5 float32 GeoTIFF of plausible reflectance x ``scale`` with band wavelengths, no scale metadata."""
    from oremap.core.engine.wavelengths import BandInfo, band_tags

    info = BandInfo(centers=[450.0, 550.0, 650.0, 850.0, 1650.0])
    values = (np.linspace(0.05, 0.45, 5)[:, None, None] * np.ones((5, 3, 4)) * scale).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=5, dtype="float32", crs="EPSG:32633",
                       transform=rasterio.Affine(30, 0, 500000, 0, -30, 4000000)) as ds:
        ds.write(values)
        for i, tags in enumerate(band_tags(info), start=1):
            ds.update_tags(i, **tags)
    return str(path)


@pytest.mark.slow
def test_qgis_process_classifies_emit_granule(qgis_process, products, tmp_path):
    fx = products["EMIT"]
    out = tmp_path / "emit_classes.tif"
    proc = qgis_process("run", "oremap:classify_spectral_cnn", "--", f"INPUT={fx['path']}", "MODEL=0",
                        f"OUTPUT_CLASSES={out}")
    assert "geometry lookup table" in proc.stdout + proc.stderr
    got = classes_by_row(str(out))
    assert (got[1:-3, 1:4] == np.array(fx["labels"])[None, :3]).all()  # last two rows: fill value, mask


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------

def test_presets_from_real_files():
    from aviris_classic import av95_records

    _, _, centres, fwhm = av95_records()
    classic = sensor_presets.preset("aviris-classic")
    np.testing.assert_allclose(classic.centers, centres, atol=1e-3)
    np.testing.assert_allclose(classic.fwhm, fwhm, atol=1e-3)
    info = sensor_presets.band_info("AVIRIS-Classic")
    assert (np.flatnonzero(info.bad) + 1).tolist() == [31, 32, 33, 34, 96, 97, 161]
    ng = sensor_presets.preset("AVIRIS-NG")
    with rasterio.open(sf.conftest_aviris_ng()) as ds:
        real = band_info_from_raster(ds)
    np.testing.assert_allclose(ng.centers, real.centers, atol=1e-3)
    assert (~ng.good).sum() == real.bad.sum() > 0
    for name, n in (("EMIT", 285), ("EnMAP", 224), ("PRISMA", 234), ("HyMap", 126)):
        p = sensor_presets.preset(name)
        assert p.centers.size == n and p.source and np.all(p.fwhm > 0)
    # EMIT: the centres of its L2A granules (a regular grid before 0.2.15 was up to 2.35 nm off, at band 176)
    emit = sensor_presets.preset("EMIT")
    np.testing.assert_allclose(emit.centers[[0, 175, 284]], [381.0056, 1684.9209, 2492.9238], atol=1e-3)
    assert 8.34 <= emit.fwhm.min() < emit.fwhm.max() <= 8.80
    with pytest.raises(OreMapError):
        sensor_presets.preset("Hyperion")


def test_train_from_library_for_a_sensor_preset(run_alg, tmp_path):
    from conftest import DATA

    out = str(tmp_path / "emit_model.onnx")
    result = run_alg("train_spectral_cnn", {
        "LIBRARIES": [os.path.join(DATA, "usgs_train.sli")], "SENSOR": sensor_presets.names().index("EMIT") + 1,
        "AUGMENT_COPIES": 10, "EPOCHS": 3, "OUTPUT_MODEL": out, "OUTPUT_REPORT": str(tmp_path / "r.html")})
    from oremap.core.engine.model_format import read_model_info

    info = read_model_info(out)
    emit = sensor_presets.band_info("EMIT")
    # the model's bands are EMIT's, without the water-vapour windows
    assert set(np.round(info.wavelengths, 3)) <= set(np.round(emit.centers, 3)) and len(info.wavelengths) > 200
    assert result["VALIDATION_ACCURACY"] > 0
    with pytest.raises(Exception) as err:
        run_alg("train_spectral_cnn", {"LIBRARIES": [os.path.join(DATA, "usgs_train.sli")], "SENSOR": 1,
                                       "WAVELENGTHS": "400:2500:10", "OUTPUT_MODEL": out,
                                       "OUTPUT_REPORT": str(tmp_path / "r.html")})
    assert "WAVELENGTHS" in str(err.value)


def test_import_refuses_a_raster_without_wavelengths(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    path = str(tmp_path / "plain.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=3, dtype="float32") as dst:
        dst.write(np.full((3, 4, 4), 0.2, np.float32))
    with pytest.raises(QgsProcessingException) as err:
        run_alg("import_spectrometer_product", {"INPUT": path, "OUTPUT": str(tmp_path / "out.tif")})
    assert "(INPUT)" in str(err.value) and "has no band wavelengths in its metadata" in str(err.value)
    assert not os.path.exists(tmp_path / "out.tif")


def test_an_all_nodata_raster_is_not_imported(tmp_path):
    """A raster every pixel of which is nodata (here a uint16 product with nodata 0 whose spectra are 0 in most
    bands) was written as an all-nodata GeoTIFF, rc 0; it is refused, and nothing is left behind."""
    path = str(tmp_path / "empty.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=20, dtype="uint16", nodata=0,
                       crs="EPSG:32612", transform=rasterio.Affine(30, 0, 500000, 0, -30, 4100000)) as ds:
        ds.write(np.zeros((20, 3, 4), np.uint16))
        for i in range(1, 21):
            ds.update_tags(i, wavelength=str(400 + 100 * i), wavelength_units="nm")
    out = tmp_path / "out.tif"
    with pytest.raises(OreMapError) as err:
        written(sensor_products.open_raster_product(path), tmp_path, "out.tif")
    assert "Every pixel of 'empty.tif' is nodata" in err.value.message and err.value.parameter == "raster"
    assert sorted(os.listdir(tmp_path)) == ["empty.tif"] and not out.exists()


# ---------------------------------------------------------------------------
# The GeoTIFF made on the way (audit of 0.2.14)
# ---------------------------------------------------------------------------

def test_cached_geotiff_follows_a_mask_granule_that_arrives_later(tmp_path):
    """The converted GeoTIFF was keyed on the product file alone: a mask granule put beside it after the first
    run was never applied in that session, and its cloud-flagged pixel stayed a spectrum."""
    fx = sf.make_emit(str(tmp_path))
    later = fx["mask"] + ".later"
    os.rename(fx["mask"], later)
    cache = str(tmp_path / "cache")
    first = sensor_products.prepare_input(fx["path"], cache)
    os.rename(later, fx["mask"])
    second = sensor_products.prepare_input(fx["path"], cache)
    assert second != first
    assert sensor_products.prepare_input(fx["path"], cache) == second   # reused while nothing changes
    samples = fx["cube"].shape[1]
    with rasterio.open(first) as before, rasterio.open(second) as after:
        flagged_before, flagged_after = before.read()[:, samples - 1, 2], after.read()[:, samples - 1, 2]
        nodata = after.nodata
    np.testing.assert_allclose(flagged_before, fx["cube"][1, 1, fx["good"]], rtol=1e-6)
    assert np.all(flagged_after == nodata)


def test_cached_geotiff_follows_the_enmap_quality_layers(tmp_path):
    import shutil

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    fx = sf.make_enmap(str(tmp_path / "a"), cloud=())
    cache = str(tmp_path / "cache")
    first = sensor_products.prepare_input(fx["xml"], cache)
    sf.make_enmap(str(tmp_path / "b"), snow=[(5, 1)], cloud=())
    snow = [n for n in os.listdir(tmp_path / "b") if "QL_QUALITY_SNOW" in n]
    assert len(snow) == 1
    shutil.copy(tmp_path / "b" / snow[0], tmp_path / "a" / snow[0])   # the layer arrives beside the product
    second = sensor_products.prepare_input(fx["xml"], cache)
    with rasterio.open(first) as before, rasterio.open(second) as after:
        assert not np.any(before.read()[:, 5, 1] == before.nodata)
        assert np.all(after.read()[:, 5, 1] == after.nodata)


def test_reimport_leaves_no_statistics_of_the_file_it_replaces(tmp_path):
    from osgeo import gdal

    out = str(tmp_path / "imported.tif")
    (tmp_path / "emit").mkdir(), (tmp_path / "prisma").mkdir()
    emit = sf.make_emit(str(tmp_path / "emit"))
    sensor_products.write_geotiff(sensor_products.open_product(emit["path"]), out)
    ds = gdal.Open(out)
    old = ds.GetRasterBand(1).ComputeStatistics(False)
    ds = None
    assert os.path.exists(out + ".aux.xml")
    prisma = sf.make_prisma(str(tmp_path / "prisma"))
    sensor_products.write_geotiff(sensor_products.open_product(prisma["path"]), out)
    assert not os.path.exists(out + ".aux.xml")   # the replaced file's statistics went with it
    ds = gdal.Open(out)
    band = ds.GetRasterBand(1)
    values = band.ReadAsArray()
    minimum = float(values[values != band.GetNoDataValue()].min())
    stats = band.ComputeStatistics(False)
    ds = None
    assert stats[0] == pytest.approx(minimum, rel=1e-5) and minimum != pytest.approx(old[0], rel=1e-3)


def test_conversions_of_one_product_use_their_own_partial_files(tmp_path, monkeypatch):
    """The temporary file was '.NAME.partial.tif' for every run: two conversions of one product at once
    wrote into one file, and the second crashed on the rename."""
    fx = sf.make_emit(str(tmp_path))
    used = []
    real = sensor_products.replace
    monkeypatch.setattr(sensor_products, "replace", lambda a, b: (used.append(a), real(a, b)))
    out = str(tmp_path / "out.tif")
    for _ in range(2):
        sensor_products.write_geotiff(sensor_products.open_product(fx["path"]), out)
    tmps = [u for u in used if u.endswith(".tif")]
    assert len(tmps) == 2 and tmps[0] != tmps[1] and all(".oremap-partial-" in u for u in tmps)


def test_enmap_note_names_cirrus_only_when_applied(tmp_path):
    product = sensor_products.open_product(sf.make_enmap(str(tmp_path))["xml"])
    masked = [note for note in product.notes if note.startswith("pixels flagged in")]
    assert masked and "CIRRUS" not in masked[0] and "cirrus level" not in masked[0]


# ---------------------------------------------------------------------------
# Products as delivered in their ZIP archives (audit of the EnMAP and PRISMA readers)
# ---------------------------------------------------------------------------

def _zip_enmap(folder, **kwargs):
    """An EnMAP L2A product in its delivered ZIP (``<product>.ZIP`` holding ``<product>/<product>-...``, as EnMAP-Box
    and EnPT read it), and the same product unzipped in ``folder/plain``."""
    import zipfile

    plain = os.path.join(folder, "plain")
    os.makedirs(plain)
    fx = sf.make_enmap(plain, **kwargs)
    archive = os.path.join(folder, sf.ENMAP_STEM + ".ZIP")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(os.listdir(plain)):
            zf.write(os.path.join(plain, name), f"{sf.ENMAP_STEM}/{name}")
    return archive, fx


def test_enmap_and_prisma_zips_read_as_the_unzipped_products(tmp_path):
    """The delivered ZIPs were refused ('not an EnMAP L2A ... product; choose the product as delivered'). They now
    give the same GeoTIFF as the unzipped product: values, wavelengths, grid, quality layers; the files extracted
    while reading are removed afterwards."""
    import zipfile

    archive, fx = _zip_enmap(str(tmp_path / "enmap"), cirrus={(1, 1): 2})
    px = sf.make_prisma(str(tmp_path))
    prisma_zip = str(tmp_path / (sf.PRISMA_NAME[:-4] + ".zip"))
    with zipfile.ZipFile(prisma_zip, "w") as zf:
        zf.write(px["path"], sf.PRISMA_NAME)
    for zipped, plain, kind in ((archive, fx["xml"], sensor_products.ENMAP_L2A),
                                (prisma_zip, px["path"], sensor_products.PRISMA_L2D)):
        assert sensor_products.detect(zipped) == kind
        work = tmp_path / f"work_{kind.split()[0]}"
        a = sensor_products.prepare_input(zipped, str(work / "zip"))
        b = sensor_products.prepare_input(plain, str(work / "plain"))
        with rasterio.open(a) as za, rasterio.open(b) as pb:
            np.testing.assert_array_equal(za.read(), pb.read())
            assert za.transform == pb.transform and za.crs == pb.crs and za.count == pb.count > 200
            assert band_info_from_raster(za).centers.tolist() == band_info_from_raster(pb).centers.tolist()
        assert os.listdir(work / "zip") == [os.path.basename(a)]   # nothing extracted is left
    with rasterio.open(sensor_products.prepare_input(archive, str(tmp_path / "again"))) as ds:
        data = ds.read()
        assert np.all(data[:, 1, 1] == ds.nodata) and np.all(data[:, 2, 3] == ds.nodata)   # CIRRUS and CLOUD
    # a file inside the archive, as QGIS opens it, names the product too
    inner = f"/vsizip/{archive}/{sf.ENMAP_STEM}/{sf.ENMAP_STEM}-SPECTRAL_IMAGE.TIF"
    assert sensor_products.product_file(inner) == archive and sensor_products.detect(inner) == sensor_products.ENMAP_L2A
    assert sensor_products.product_file(f"/vsizip/{{{archive}}}/x.tif") == archive
    plain_zip = str(tmp_path / "scenes.zip")   # any other ZIP stays GDAL's
    assert sensor_products.product_file(f"/vsizip/{plain_zip}/a.tif") == f"/vsizip/{plain_zip}/a.tif"
    assert sensor_products.detect(plain_zip) is None


def test_a_zip_without_one_product_or_damaged_is_refused_with_the_fix(tmp_path):
    import zipfile

    empty = str(tmp_path / (sf.ENMAP_STEM + ".ZIP"))
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no product")
    with pytest.raises(OreMapError) as err:
        sensor_products.prepare_input(empty, str(tmp_path / "work"))
    assert err.value.parameter == "raster" and "holds no EnMAP L2A product" in err.value.message
    assert "-METADATA.XML" in err.value.fix
    broken = str(tmp_path / (sf.PRISMA_NAME[:-4] + ".zip"))
    with open(broken, "wb") as fh:
        fh.write(b"PK\x03\x04 truncated download")
    with pytest.raises(OreMapError) as err:
        sensor_products.prepare_input(broken, str(tmp_path / "work"))
    assert "cannot be read" in err.value.message and "Download the product again" in err.value.fix


def test_enmap_image_without_a_nodata_tag_uses_the_l2a_fill(tmp_path):
    """An image ordered without a nodata tag (an ENVI header without 'data ignore value') kept the L2A fill -32768
    as reflectance -3.2768 in every band, and the bands the processor filled stayed in. The fill is the product's,
    not the file format's."""
    fx = sf.make_enmap(str(tmp_path), image_format="ENVI", filled_bands=(120, 121))
    header = fx["image"][:-4] + ".hdr"   # GDAL writes it in lower case
    text = open(header).read()
    assert "data ignore value" in text
    with open(header, "w") as fh:
        fh.write("\n".join(line for line in text.splitlines() if not line.startswith("data ignore value")) + "\n")
    for name in os.listdir(tmp_path):   # GDAL's side file keeps the nodata value too
        if name.endswith(".aux.xml"):
            os.remove(tmp_path / name)
    with rasterio.open(fx["image"]) as ds:
        assert ds.nodata is None
    product = sensor_products.open_product(fx["xml"])
    data, _, _, info, nodata = written(product, tmp_path)
    assert info.n_bands == 210 and np.all(data[:, 0, 0] == nodata)
    assert data[:, 2, 3].tolist() == [nodata] * 210 and np.sum(np.all(data == nodata, axis=0)) == 2
    assert any("declares no nodata value: -32768" in note for note in product.notes)


def test_import_and_batch_take_a_product_zip(run_alg, tmp_path):
    """Through Processing: the import algorithm writes the ZIP's product, and a folder of product ZIPs gives its
    scenes to a batch (it held 'no raster file')."""
    from oremap.core.scaleout import batch

    archive, fx = _zip_enmap(str(tmp_path / "enmap"))
    out = str(tmp_path / "enmap.tif")
    assert run_alg("import_spectrometer_product", {"INPUT": archive, "OUTPUT": out})["BANDS"] == 212
    with rasterio.open(out) as ds:
        assert ds.tags()["OREMAP_SOURCE_PRODUCT"].startswith("EnMAP")
        np.testing.assert_allclose(ds.read()[:, 4, 2], written(sensor_products.open_product(fx["xml"]), tmp_path)[0][:, 4, 2])
    assert batch.expand_inputs([str(tmp_path / "enmap")]) == [archive]
