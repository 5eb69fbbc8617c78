"""The block engine: many blocks equal one block bit for bit; nodata, CRS, transform carried."""

import os

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import core_warnings

from oremap.core.engine.errors import Cancelled, OreMapError
from oremap.core.engine.feedback import Feedback
from oremap.core.engine.raster import (
    OutputSpec,
    RasterSource,
    block_windows,
    check_output_path,
    detect_scale,
    report_fill,
    run_pixelwise,
    scale_note_kind,
    vrt_type,
)
from rasterio.windows import Window

TRANSFORM = Affine.translation(724440.0, 4077192.0) * Affine.rotation(75.0) * Affine.scale(1.1, -1.1)


def write_cube(path, data, nodata=None, dtype="float32", crs="EPSG:32612", transform=TRANSFORM, **tags):
    bands, height, width = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=bands, dtype=dtype,
                       crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data.astype(dtype))
        if tags:
            ds.update_tags(**tags)
    return path


@pytest.fixture
def cube(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.uniform(0.05, 0.6, size=(5, 37, 53)).astype(np.float32)
    data[:, 3, 4] = -9999.0          # nodata pixel (all bands)
    data[2, 10, 11] = -9999.0        # nodata in one band only
    data[1, 20, 30] = np.nan         # NaN
    return write_cube(str(tmp_path / "cube.tif"), data, nodata=-9999.0), data


def features(pixels):
    """A per-pixel function with two outputs: band sums and a class code."""
    total = pixels.sum(axis=1)
    return np.column_stack([total, pixels[:, 0] * pixels[:, 1]]), (total > 1.5).astype(np.uint8) + 1


def run(src_path, tmp_path, tag, memory_mb, feedback=None):
    outs = [OutputSpec(str(tmp_path / f"feat_{tag}.tif"), ["sum", "product"], "float32", -1.0),
            OutputSpec(str(tmp_path / f"cls_{tag}.tif"), ["class"], "uint8", 255,
                       colormap={1: (255, 0, 0), 2: (0, 0, 255)})]
    with RasterSource(src_path) as src:
        stats = run_pixelwise(src, outs, features, memory_mb=memory_mb, feedback=feedback)
    return outs, stats


def test_many_blocks_equal_one_block_bit_for_bit(cube, tmp_path):
    path, data = cube
    big, big_stats = run(path, tmp_path, "one", memory_mb=512)
    small, small_stats = run(path, tmp_path, "many", memory_mb=0.002)  # a few hundred bytes per block
    assert big_stats["blocks"] == 1
    assert small_stats["blocks"] > 30
    for a, b in zip(big, small):
        with rasterio.open(a.path) as da, rasterio.open(b.path) as db:
            assert np.array_equal(da.read(), db.read())
    # known values and nodata where any band was nodata or NaN
    with rasterio.open(big[0].path) as ds:
        out = ds.read()
        assert ds.nodata == -1.0
        assert ds.descriptions == ("sum", "product")
        assert ds.crs.to_epsg() == 32612
        assert ds.transform.almost_equals(TRANSFORM)
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
    for r, c in [(3, 4), (10, 11), (20, 30)]:
        assert np.all(out[:, r, c] == -1.0)
    np.testing.assert_allclose(out[0, 0, 0], data[:, 0, 0].sum(), rtol=1e-6)
    np.testing.assert_allclose(out[1, 7, 9], data[0, 7, 9] * data[1, 7, 9], rtol=1e-6)
    assert big_stats["valid_pixels"] == 37 * 53 - 3
    with rasterio.open(big[1].path) as ds:
        assert ds.colormap(1)[2] == (0, 0, 255, 255)
        assert ds.read(1)[3, 4] == 255


def test_block_windows_cover_raster_once():
    cases = [(53, 37, 100, 0.002), (1000, 700, 4000, 1.0), (5000, 3, 10 ** 6, 1.0), (600, 700, 100, 2.44),
             (2000, 1500, 1400, 128), (700, 900, 10, 512)]
    for width, height, bpp, mb in cases:
        count = np.zeros((height, width), int)
        for w in block_windows(width, height, bpp, mb):
            count[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
            assert w.width * w.height * bpp <= max(mb * 2 ** 20, bpp * 256) or w.height == 1
        assert np.all(count == 1)
    # whole 256 x 256 tiles whenever the budget holds one
    assert all(w.row_off % 256 == 0 and w.col_off % 256 == 0 for w in block_windows(2000, 1500, 1400, 128))
    assert len(block_windows(700, 900, 10, 512)) == 1


def test_integer_reflectance_scaled(tmp_path):
    data = np.array([[[1000, 2500]], [[5000, 0]]], dtype=np.uint16)  # 2 bands, 1 x 2 pixels
    path = write_cube(str(tmp_path / "int.tif"), data, nodata=0, dtype="uint16")
    with RasterSource(path) as src:  # automatic: integer values > 100 -> / 10000
        values, valid = src.read(rasterio.windows.Window(0, 0, 2, 1))
    np.testing.assert_allclose(values[0, 0], [0.1, 0.5])
    assert valid.tolist() == [[True, False]]
    with RasterSource(path, scale=5000) as src:
        values, _ = src.read(rasterio.windows.Window(0, 0, 2, 1))
    np.testing.assert_allclose(values[0, 0], [0.2, 1.0])


def test_gdal_scale_offset_metadata(tmp_path):
    data = np.array([[[100, 200]]], dtype=np.int16)
    path = str(tmp_path / "scaled.tif")
    with rasterio.open(path, "w", driver="GTiff", width=2, height=1, count=1, dtype="int16") as ds:
        ds.write(data)
        ds.scales = (0.001,)
        ds.offsets = (0.05,)
    with RasterSource(path) as src:
        values, _ = src.read(rasterio.windows.Window(0, 0, 2, 1))
    np.testing.assert_allclose(values[0, :, 0], [0.15, 0.25], rtol=1e-6)


def test_per_band_scale_offset_metadata(tmp_path):
    """One gain and offset per band (an ENVI header's 'data gain values', per-band GeoTIFF scales) are each
    applied to their band, by read and read_nan alike, whichever bands are read; they were refused."""
    data = np.array([[[1000, 2000]], [[1000, 2000]], [[500, 1000]]], dtype=np.int16)  # 3 bands, 1 x 2 pixels
    path = str(tmp_path / "perband.tif")
    with rasterio.open(path, "w", driver="GTiff", width=2, height=1, count=3, dtype="int16") as ds:
        ds.write(data)
        ds.scales = (1e-4, 2e-4, 4e-4)
        ds.offsets = (0.0, 0.0, 0.01)
    log = core_warnings()
    with RasterSource(path, feedback=log) as src:
        values, _ = src.read(rasterio.windows.Window(0, 0, 2, 1))
        nan = src.read_nan(rasterio.windows.Window(0, 0, 2, 1))
    expected = [[0.1, 0.2, 0.21], [0.2, 0.4, 0.41]]
    np.testing.assert_allclose(values[0], expected, rtol=1e-6)
    np.testing.assert_allclose(nan[0], expected, rtol=1e-12)
    assert log.infos == ["Reflectance = value x gain + offset of each band (raster scale/offset metadata: gains "
                         "0.0001-0.0004, offsets 0-0.01)."]
    with RasterSource(path, bands=[3, 1]) as src:
        values, _ = src.read(rasterio.windows.Window(0, 0, 2, 1))
    np.testing.assert_allclose(values[0], [[0.21, 0.1], [0.41, 0.2]], rtol=1e-6)


def test_user_nodata_and_huge_nodata_value(tmp_path):
    data = np.full((2, 2, 2), 0.3, np.float32)
    data[:, 0, 0] = -3.4e38       # float32 nodata near the type's limit
    data[:, 1, 1] = 7.0           # user nodata
    path = write_cube(str(tmp_path / "nd.tif"), data, nodata=-3.4e38)
    with RasterSource(path, nodata=7.0) as src:
        _, valid = src.read(rasterio.windows.Window(0, 0, 2, 2))
    assert valid.tolist() == [[False, True], [True, False]]



def test_read_nan_masks_each_band_on_its_own(tmp_path):
    """read_nan: NaN only in the band that is nodata (read masks the whole pixel); a user nodata value an
    integer type cannot hold is ignored, not wrapped around."""
    data = np.array([[[5, 0], [7, 9]], [[0, 2], [3, 4]]], dtype=np.uint16)  # (bands, rows, cols)
    path = write_cube(str(tmp_path / "i.tif"), data, nodata=0, dtype="uint16")
    window = rasterio.windows.Window(0, 0, 2, 2)
    with RasterSource(path, nodata=-1e30, scale=1) as src:
        values = src.read_nan(window)
        _, valid = src.read(window)
    assert values.dtype == np.float64 and values.shape == (2, 2, 2)
    expected = np.array([[[5, np.nan], [np.nan, 2]], [[7, 3], [9, 4]]])
    np.testing.assert_array_equal(values, expected)
    assert valid.tolist() == [[False, False], [True, True]]
    with RasterSource(path, scale=10000) as src:  # a reflectance scale applies to every valid value
        scaled = src.read_nan(window, np.float32)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, expected / 10000, rtol=1e-6)  # NaN in the same places

class CancelAfter(Feedback):
    def __init__(self, n):
        self.n = n
        self.calls = 0

    def is_canceled(self):
        self.calls += 1
        return self.calls > self.n


def test_cancel_removes_partial_output_and_keeps_existing_file(cube, tmp_path):
    path, _ = cube
    existing = tmp_path / "feat_c.tif"
    existing.write_bytes(b"previous result")
    with pytest.raises(Cancelled):
        run(path, tmp_path, "c", memory_mb=0.002, feedback=CancelAfter(3))
    assert existing.read_bytes() == b"previous result"
    assert not any(".oremap-partial" in name for name in os.listdir(tmp_path))
    assert not (tmp_path / "cls_c.tif").exists()


def test_error_in_function_leaves_nothing(cube, tmp_path):
    path, _ = cube

    def broken(pixels):
        raise ValueError("boom")

    with RasterSource(path) as src, pytest.raises(ValueError):
        run_pixelwise(src, [OutputSpec(str(tmp_path / "x.tif"), ["a"])], broken)
    assert os.listdir(tmp_path) == ["cube.tif"]


def test_all_nodata_raster_is_refused(tmp_path):
    data = np.full((3, 4, 4), -9999.0, np.float32)
    path = write_cube(str(tmp_path / "empty.tif"), data, nodata=-9999.0)
    with RasterSource(path) as src, pytest.raises(OreMapError) as err:
        run_pixelwise(src, [OutputSpec(str(tmp_path / "o.tif"), ["a"])], lambda p: p[:, 0])
    assert err.value.parameter == "raster" and "nodata" in err.value.message
    assert not (tmp_path / "o.tif").exists()


def test_output_path_checks(tmp_path):
    assert check_output_path(str(tmp_path / "new.tif")) is False
    (tmp_path / "old.tif").write_text("x")
    assert check_output_path(str(tmp_path / "old.tif")) is True
    with pytest.raises(OreMapError):
        check_output_path(str(tmp_path / "old.tif"), overwrite=False)
    with pytest.raises(OreMapError) as err:
        check_output_path(str(tmp_path / "missing" / "a.tif"))
    assert "does not exist" in err.value.message
    if os.getuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(OreMapError):
            check_output_path(str(ro / "a.tif"))


def test_gemm_gives_the_bits_of_a_python_process_where_gsl_cblas_is_loaded_first(tmp_path):
    """QGIS loads GSL's CBLAS before numpy, whose ``@`` then runs on it: other last bits (and 20 times slower). The
    same process imitated with LD_PRELOAD: ``@`` changes, ``compute.gemm`` gives this process's ``a @ b``."""
    import subprocess
    import sys

    from conftest import ROOT

    gsl = "/lib/x86_64-linux-gnu/libgslcblas.so.0"
    if not os.path.exists(gsl):
        pytest.skip("GSL's CBLAS is not installed (QGIS depends on it on Debian)")
    rng = np.random.default_rng(0)
    a, b = rng.random((300, 200)).astype(np.float32), rng.random((200, 90)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    from oremap.core.engine.compute import gemm

    assert np.array_equal(gemm(a, b), a @ b)
    script = ("import importlib.util, sys, numpy as np; "  # the plugin as conftest loads it, whatever its folder
              f"spec = importlib.util.spec_from_file_location('oremap', {os.path.join(ROOT, '__init__.py')!r}, "
              f"submodule_search_locations=[{ROOT!r}]); "
              "module = importlib.util.module_from_spec(spec); sys.modules['oremap'] = module; "
              "spec.loader.exec_module(module); "
              "from oremap.core.engine.compute import gemm; "
              f"a, b = np.load({str(tmp_path / 'a.npy')!r}), np.load({str(tmp_path / 'b.npy')!r}); "
              f"np.save({str(tmp_path / 'at.npy')!r}, a @ b); np.save({str(tmp_path / 'g.npy')!r}, gemm(a, b))")
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ, LD_PRELOAD=gsl))
    if int(np.__version__.split(".")[0]) < 2:  # Debian 12's numpy calls the cblas_sgemm loaded first; Debian 13's not
        assert not np.array_equal(np.load(tmp_path / "at.npy"), a @ b)  # numpy's @ on GSL
    assert np.array_equal(np.load(tmp_path / "g.npy"), a @ b)


def test_the_scale_of_a_file_is_the_same_whichever_bands_are_read(tmp_path):
    """The 0-10000 test looked at the bands read: a short-wave subset of a scene of dark water (below 100 DN there,
    not in the visible) was taken as reflectance, and its land came out as 3007, not 0.3007."""
    from conftest import core_warnings

    wavelengths = np.linspace(400, 2500, 100)
    water = np.clip(600 * np.exp(-(wavelengths - 400) / 150), 1, None)    # bright blue, near 0 in the SWIR
    soil = 3000 + 200 * (wavelengths - 400) / 2100
    data = np.repeat(water[:, None, None], 40, axis=1).repeat(40, axis=2)
    data[:, :4, :] = soil[:, None, None]                                  # 10 % land
    path = write_cube(str(tmp_path / "lake.tif"), np.round(data), dtype="int16")
    swir = [int(b) + 1 for b in np.flatnonzero(wavelengths >= 2000)]
    for bands in (None, swir):
        with RasterSource(path, bands=bands) as src:
            assert src.gain == pytest.approx(1e-4), bands
            values, valid = src.read(rasterio.windows.Window(0, 0, 40, 40))
        assert values[0, 0, -1] == pytest.approx(soil[-1] / 10000, rel=1e-3)


@pytest.mark.parametrize("dtype, values, words", [
    ("int16", 30.0, "99 % of a sample lie below 30"),          # reflectance in per cent
    ("float32", 3000.0, "99 % of a sample lie below 3000"),    # floats x 10000, no scale factor
])
def test_values_that_are_not_reflectance_are_warned_of(tmp_path, dtype, values, words):
    from conftest import core_warnings

    path = write_cube(str(tmp_path / "x.tif"), np.full((4, 20, 20), values), dtype=dtype)
    log = core_warnings()
    with RasterSource(path, feedback=log) as src:
        assert src.gain == 1.0
    assert len(log.warnings) == 1 and log.warnings[0].startswith("The values are not reflectance of 0-1: " + words)
    assert "give the reflectance scale factor 100" in log.warnings[0]
    log = core_warnings()
    with RasterSource(path, feedback=log, scale=100.0 if dtype == "int16" else 10000.0) as src:
        assert log.warnings == [] and src.gain == pytest.approx(0.01 if dtype == "int16" else 1e-4)
    log = core_warnings()
    with RasterSource(write_cube(str(tmp_path / "r.tif"), np.full((4, 20, 20), 0.3)), feedback=log):
        assert log.warnings == [] and log.infos == []


def test_bad_band_runs_of_overlapping_detectors_give_their_span():
    from oremap.core.engine.bad_bands import _ranges

    centers = np.array([650.0, 660.0, 677.0, 674.0, 676.0, 680.0])
    assert _ranges([2, 3, 4], centers) == "3-5 (674-677 nm)"


def _spectra_cube(rng, bands=12, size=6):
    """Reflectance-like spectra (0.05-0.6, varying band to band) of ``size`` x ``size`` pixels."""
    return (0.05 + 0.55 * rng.random((bands, size, size))).astype("float32")


def test_gdal_masks_and_alpha_bands_are_nodata(tmp_path):
    """A per-dataset mask (cloud, outside the footprint) and an alpha band (gdalwarp -dstalpha): the masked pixels
    held real-looking values and were classified, unmixed and scored. They are now nodata, and the alpha band is no
    spectral band."""
    from rasterio.enums import ColorInterp

    rng = np.random.default_rng(3)
    cube = _spectra_cube(rng)
    masked = np.zeros((6, 6), bool)
    masked[:2, :3] = True
    path = str(tmp_path / "masked.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=6, height=6, count=12, dtype="float32",
                           crs="EPSG:32612", transform=TRANSFORM) as dst:
            dst.write(cube)
            dst.write_mask(np.where(masked, 0, 255).astype("uint8"))
    with RasterSource(path, fill_spectra=True) as source:
        _, valid = source.read(Window(0, 0, 6, 6))
        assert source.n_bands == 12 and (valid == ~masked).all()
    alpha_path = str(tmp_path / "alpha.tif")
    with rasterio.open(alpha_path, "w", driver="GTiff", width=6, height=6, count=13, dtype="float32",
                       crs="EPSG:32612", transform=TRANSFORM) as dst:
        dst.write(cube, indexes=list(range(1, 13)))
        dst.write(np.where(masked, 0, 1).astype("float32"), 13)
        dst.colorinterp = [ColorInterp.gray] * 12 + [ColorInterp.alpha]
    with RasterSource(alpha_path, fill_spectra=True) as source:
        data, valid = source.read(Window(0, 0, 6, 6))
        assert source.n_bands == 12 and data.shape == (6, 6, 12) and (valid == ~masked).all()
        np.testing.assert_allclose(data[~masked], np.moveaxis(cube, 0, -1)[~masked])


def test_a_nodata_zero_spectrum_clipped_at_zero_is_kept(tmp_path):
    """uint16 reflectance x 10000 with nodata 0 and negatives clipped to 0: a pixel with its two dark blue bands at 0
    was nodata (half the scene's pixels, a whole mineral, gone without a word). A few zero bands (at most 10 %) are
    now a clipped spectrum, kept and counted; a detector empty at the swath's edge (a block of bands at 0) is still
    nodata, as is a pixel of any other nodata value in any band."""
    rng = np.random.default_rng(4)
    cube = (_spectra_cube(rng, bands=60) * 10000).astype("uint16")
    cube[:2, 0, 0] = 0        # clipped blue bands: kept
    cube[:6, 0, 1] = 0        # 10 %: kept
    cube[:20, 0, 2] = 0       # the VNIR detector empty at the edge: nodata
    cube[:, 0, 3] = 0         # outside the scene
    path = write_cube(tmp_path / "u16.tif", cube, nodata=0, dtype="uint16")
    with RasterSource(path, fill_spectra=True) as source:
        data, valid = source.read(Window(0, 0, 6, 6))
        assert valid[0, :4].tolist() == [True, True, False, False] and valid.sum() == 34
        assert source.zero_band_pixels == 2 and data[0, 0, 0] == 0.0
    log = core_warnings()
    report_fill(source, log)
    assert log.warnings == ["2 pixels have a few bands (at most 10 %) at the nodata value 0: kept, with those bands "
                            "read as reflectance 0 (a spectrum clipped at zero). A pixel with more zero bands is "
                            "nodata."]
    cube[0, 3, 3] = 65535
    path = write_cube(tmp_path / "u16_max.tif", cube, nodata=65535, dtype="uint16")
    with RasterSource(path, fill_spectra=True) as source:
        assert not source.read(Window(0, 0, 6, 6))[1][3, 3]


def test_absurd_values_are_nodata(tmp_path):
    """1e30 (or FLT_MAX) written for missing values in some bands went into the predictions as NaN and spoiled the
    scene's statistics; such a pixel is now nodata, in the per-band reader too."""
    rng = np.random.default_rng(5)
    cube = _spectra_cube(rng)
    cube[3, 2, 2] = 1e30
    cube[5, 4, 1] = -3.4e38
    path = write_cube(tmp_path / "huge.tif", cube)
    with RasterSource(path) as source:
        _, valid = source.read(Window(0, 0, 6, 6))
        assert (~valid).sum() == 2 and not valid[2, 2] and not valid[4, 1]
        per_band = source.read_nan(Window(0, 0, 6, 6))
        assert np.isnan(per_band[2, 2, 3]) and np.isfinite(per_band[2, 2, 2]) and np.isnan(per_band).sum() == 2


def test_an_8_bit_raster_is_doubted_as_reflectance(tmp_path):
    rng = np.random.default_rng(6)
    path = write_cube(tmp_path / "quicklook.tif", (rng.random((12, 6, 6)) * 255).astype("uint8"), dtype="uint8")
    with rasterio.open(path) as ds:
        gain, bias, note = detect_scale(ds, None, list(range(1, 13)))
    assert gain == 1e-4 and scale_note_kind(note) == "warning" and "8-bit raster (0-255)" in note


def test_an_output_that_is_a_folder_or_too_long_a_name_is_refused_before_the_run(tmp_path):
    """Both failed only when the finished result was moved into place, naming an internal temporary file."""
    with pytest.raises(OreMapError) as err:
        check_output_path(str(tmp_path), parameter="OUTPUT")
    assert err.value.parameter == "OUTPUT" and "is a folder" in err.value.message
    with pytest.raises(OreMapError) as err:
        check_output_path(str(tmp_path / ("é" * 100 + ".tif")), parameter="OUTPUT")
    assert "The file name is 204 bytes long" in err.value.message and "at most 199 bytes" in err.value.fix
    assert check_output_path(str(tmp_path / ("é" * 97 + ".tif")), parameter="OUTPUT") is False


def test_transforms_applied_and_composed_without_the_deprecated_operator_give_affines_bits():
    """affine 3 deprecates ``*`` and affine 2.4 (Debian 12) has no ``@``: core applies and composes transforms with
    ``affine_ops``, which must give the very numbers of affine's ``*`` (batch outputs are compared bit for bit)."""
    import warnings

    from affine import Affine

    from oremap.core.engine import affine_ops

    rng = np.random.default_rng(3)
    scales = np.array([1e-3, 1.0, 30.0, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        for _ in range(500):
            a, b = (Affine(*(rng.normal(size=6) * rng.choice(scales, 6))) for _ in range(2))
            x, y = rng.normal(size=2) * 1e5
            assert affine_ops.apply(a, x, y) == a * (x, y)
            assert tuple(affine_ops.compose(a, b)) == tuple(a * b)
            xs, ys = rng.normal(size=(2, 7)) * 1e4
            for mine, theirs in zip(affine_ops.apply(a, xs, ys), a * (xs, ys)):
                assert np.array_equal(mine, theirs)
    # a known answer: 30 m pixels from (500000, 4100000), cell (2, 1) to its corner and back
    t = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0)
    assert affine_ops.apply(t, 1, 2) == (500030.0, 4099940.0)
    assert affine_ops.apply(~t, 500030.0, 4099940.0) == (1.0, 2.0)
    assert tuple(affine_ops.compose(t, Affine.translation(0, 5))) == (30.0, 0.0, 500000.0, 0.0, -30.0, 4099850.0,
                                                                       0.0, 0.0, 1.0)


def _separate_vrt(tmp_path, name, bands):
    """A VRT stacking one single-band GeoTIFF per ``(array, dtype, nodata)``, each band with its own nodata and type
    (what gdalbuildvrt -separate makes of separate files)."""
    lines = [f'<VRTDataset rasterXSize="{bands[0][0].shape[1]}" rasterYSize="{bands[0][0].shape[0]}">',
             "  <GeoTransform>500000, 10, 0, 7000000, 0, -10</GeoTransform>"]
    for i, (array, dtype, nodata) in enumerate(bands, start=1):
        path = str(tmp_path / f"{name}_{i}.tif")
        write_cube(path, array[None], nodata=nodata, dtype=dtype, transform=Affine(10, 0, 500000, 0, -10, 7000000))
        lines += [f'  <VRTRasterBand dataType="{vrt_type(dtype)}" band="{i}">']
        lines += [f"    <NoDataValue>{nodata}</NoDataValue>"] if nodata is not None else []
        lines += [f'    <SimpleSource><SourceFilename relativeToVRT="0">{path}</SourceFilename>'
                  "<SourceBand>1</SourceBand></SimpleSource>", "  </VRTRasterBand>"]
    vrt = tmp_path / f"{name}.vrt"
    vrt.write_text("\n".join(lines + ["</VRTDataset>"]) + "\n")
    return str(vrt)


def test_each_band_has_its_own_nodata(tmp_path):
    """Band 1's nodata 0 and band 2's 255 were pooled and tested in every band: a pixel whose band 2 holds a valid 0
    was nodata, and in element-grid mode band 2's 0 became NaN."""
    path = _separate_vrt(tmp_path, "nd", [(np.array([[0, 7, 5, 5]]), "uint8", 0),
                                          (np.array([[9, 0, 255, 6]]), "uint8", 255)])
    window = Window(0, 0, 4, 1)
    with RasterSource(path, scale=1) as src:
        data, valid = src.read(window)
    assert valid[0].tolist() == [False, True, False, True]
    np.testing.assert_array_equal(data[0, valid[0]], [[7, 0], [5, 6]])
    with RasterSource(path, scale=1, partial=True) as src:
        data, valid = src.read(window)
    np.testing.assert_array_equal(data[0], [[np.nan, 9], [7, 0], [5, np.nan], [5, 6]])
    assert valid[0].tolist() == [True, True, True, True]
    with RasterSource(path, scale=1, nodata=7) as src:   # a user's nodata holds for every band
        assert src.read(window)[1][0].tolist() == [False, False, False, True]


def test_bands_of_several_types_are_read_into_one(tmp_path):
    """A uint16 band beside a float32 one stopped every algorithm with rasterio's 'more than one dtype found'."""
    path = _separate_vrt(tmp_path, "mixed", [(np.array([[1000, 2000, 3000, 4000]]), "uint16", None),
                                             (np.array([[0.25, 0.5, 0.75, 1.5]]), "float32", None)])
    with RasterSource(path, scale=1) as src:
        data, valid = src.read(Window(0, 0, 4, 1))
    np.testing.assert_array_equal(data[0], [[1000, 0.25], [2000, 0.5], [3000, 0.75], [4000, 1.5]])
    assert valid.all()


def test_the_scale_of_a_tile_with_data_in_one_corner(tmp_path):
    """A tile at a scene's edge, data only in its top-left 200 x 200 of 1000 x 1000: the five sample windows (centre
    and quarter points) were all nodata, so gain 1 was taken without a word and reflectance read as 500-4999."""
    data = np.zeros((2, 1000, 1000), np.uint16)
    data[:, :200, :200] = np.random.default_rng(0).integers(500, 5000, (2, 200, 200))
    path = write_cube(str(tmp_path / "corner.tif"), data, nodata=0, dtype="uint16")
    with rasterio.open(path) as ds:
        gain, bias, note = detect_scale(ds, None, [1, 2])
    assert (gain, bias) == (1e-4, 0.0) and note.startswith("Integer raster without scale metadata")


def test_a_colour_table_of_more_than_256_classes_keeps_every_colour(tmp_path):
    """rasterio writes 256 colour-table entries: a uint16 class map of 300 classes (SAM against a whole library) had
    classes 256-299 black in its file's table."""
    colours = {k: ((7 * k) % 256, (13 * k) % 256, (29 * k) % 256) for k in range(300)}
    data = np.arange(300, dtype=np.float32).reshape(1, 15, 20) / 1000 + 0.01
    path = write_cube(str(tmp_path / "classes_in.tif"), data)
    out = OutputSpec(str(tmp_path / "classes.tif"), ["class"], "uint16", 65535, colormap=colours)
    with RasterSource(path, scale=1) as src:
        run_pixelwise(src, [out], lambda p: np.rint((p[:, 0] - 0.01) * 1000).astype(np.uint16))
    with rasterio.open(out.path) as ds:
        assert ds.read(1)[14, 19] == 299
        table = ds.colormap(1)
    assert all(table[k] == colours[k] + (255,) for k in range(300))
    assert table[299] == (45, 47, 223, 255)


def test_a_raster_placed_by_gcps_only_is_refused_by_the_engine(tmp_path):
    """Processing refused a GCP-only scene, but oremap-batch (the same engine) wrote its map with no CRS on an
    identity grid and said nothing."""
    from rasterio.control import GroundControlPoint

    from oremap.core.engine.raster import RasterSource

    path = str(tmp_path / "gcps.tif")
    gcps = [GroundControlPoint(row=r, col=c, x=500000 + 30 * c, y=4000000 - 30 * r) for r, c in
            ((0, 0), (0, 9), (9, 0), (9, 9))]
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32") as ds:
        ds.write(np.ones((1, 10, 10), np.float32))
        ds.gcps = (gcps, rasterio.crs.CRS.from_epsg(32633))
    with pytest.raises(OreMapError) as err:
        RasterSource(path)
    assert "ground control points (GCPs) only" in err.value.message and "Warp it" in err.value.fix
    plain = str(tmp_path / "plain.tif")   # no georeferencing at all (a lab image): read as before
    with rasterio.open(plain, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as ds:
        ds.write(np.ones((1, 4, 4), np.float32))
    with RasterSource(plain) as src:
        assert src.width == 4


def test_scale_and_nodata_survive_a_header_line_over_10000_characters(tmp_path):
    """GDAL drops every ENVI header field after a line of over 10,000 characters (a long wavelength list written on
    one line): the wavelengths and bad bands were recovered from the header, but not the reflectance scale factor
    (reflectance / 1000 read as / 10000, 'without scale metadata') nor the data ignore value (-9999 classified)."""
    from oremap.core.engine.raster import RasterSource

    n = 1200   # bands: the wavelength line holds over 10,000 characters
    path = str(tmp_path / "long.img")
    data = np.repeat((200 + np.arange(n) % 100).astype(np.int16)[:, None, None], 12, axis=1).reshape(n, 3, 4)
    data[:, 0, 0] = -9999
    with rasterio.open(path, "w", driver="ENVI", width=4, height=3, count=n, dtype="int16") as ds:
        ds.write(data)
    wavelengths = ", ".join(f"{400 + 1.75 * i:.4f}" for i in range(n))
    with open(path[:-4] + ".hdr", "w") as fh:
        fh.write("ENVI\nsamples = 4\nlines = 3\nbands = %d\nheader offset = 0\nfile type = ENVI Standard\n"
                 "data type = 2\ninterleave = bsq\nbyte order = 0\nwavelength units = Nanometers\n"
                 "wavelength = {%s}\nreflectance scale factor = 1000\ndata ignore value = -9999\n" % (n, wavelengths))
    assert len(wavelengths) > 10000
    with rasterio.open(path) as ds:
        assert ds.nodatavals[0] is None and "reflectance_scale_factor" not in ds.tags(ns="ENVI")   # GDAL lost them
    with RasterSource(path, fill_spectra=True) as src:
        assert src.gain == pytest.approx(1e-3)
        values, valid = src.read(Window(0, 0, 4, 3))
    assert not valid[0, 0] and valid.sum() == 11
    assert values[1, 1, 0] == pytest.approx(0.2) and values[1, 1, 50] == pytest.approx(0.25)


def _long_header_cube(tmp_path, order, n=800, fwhm_line=False):
    """An 800-band float32 ENVI cube (values 0.01-0.97) whose header has a wavelength line (or, with ``fwhm_line``, an
    fwhm line) of over 10,000 characters, the fields in ``order`` ('size', 'long', 'layout')."""
    truth = (np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2) % 97) / 100.0 + 0.01
    path = tmp_path / "cube.img"
    truth.astype("<f4").tofile(path)
    wavelengths = ", ".join(f"{400 + 2.6 * i:.7f}" for i in range(n))
    parts = {"size": f"samples = 2\nlines = 2\nbands = {n}\n",
             "long": f"wavelength units = Nanometers\nwavelength = {{{wavelengths}}}\n",
             "layout": "header offset = 0\ndata type = 4\ninterleave = bsq\nbyte order = 0\n"}
    if fwhm_line:
        short = ", ".join(f"{400 + 3 * i:.1f}" for i in range(n))
        fwhm = ", ".join(f"{8 + 0.001 * i:.10f}" for i in range(n))
        parts["long"] = f"wavelength units = Nanometers\nwavelength = {{{short}}}\nfwhm = {{{fwhm}}}\n"
    (tmp_path / "cube.hdr").write_text("ENVI\n" + "".join(parts[k] for k in order))
    return str(path), truth


def test_an_envi_header_whose_layout_gdal_drops_is_refused_not_misread(tmp_path):
    """GDAL stops reading an ENVI header at a line over 10,000 characters. With the data type after it, a float32
    cube was read as bytes (values off by up to 0.97, wavelengths right, no word); with the sizes after it, GDAL's
    refusal said they were missing. Both now name the header and the fix; the fields before the line read as ever."""
    from oremap.core.engine.raster import RasterSource
    from oremap.core.engine.wavelengths import band_info_from_raster

    path, truth = _long_header_cube(tmp_path, ("size", "long", "layout"))
    with pytest.raises(OreMapError) as err:
        RasterSource(path)
    assert err.value.parameter == "raster" and "did not read data type, interleave, byte order, header offset" \
        in err.value.message and "Move the long lists" in err.value.fix
    path, _ = _long_header_cube(tmp_path, ("long", "size", "layout"))
    with pytest.raises(OreMapError) as err:
        RasterSource(path)
    assert "only up to its first line of over 10,000 characters, and samples, lines, bands come after it" \
        in err.value.message
    path, truth = _long_header_cube(tmp_path, ("size", "layout", "long"))   # the long list last: read as ever
    with RasterSource(path) as src:
        values = src.read_nan(Window(0, 0, 2, 2))
    np.testing.assert_allclose(np.moveaxis(values, -1, 0), truth, rtol=1e-6)
    assert band_info_from_raster(path).centers[1] == pytest.approx(402.6)
    # an fwhm line GDAL drops (the wavelengths before it are read): the FWHM from the header file, not none
    path, _ = _long_header_cube(tmp_path, ("size", "layout", "long"), fwhm_line=True)
    info = band_info_from_raster(path)
    assert info.fwhm is not None and info.fwhm[:2].tolist() == pytest.approx([8.0, 8.001])


def test_envi_headers_with_keys_in_any_case_are_read_not_refused(tmp_path):
    """GDAL matches ENVI keys in any case and keeps their spelling ('Data_Type'); the check for fields GDAL dropped
    compared them in lower case and refused such valid headers as cut at a long line."""
    from oremap.core.engine.raster import RasterSource

    truth = np.arange(30, dtype=np.float32).reshape(3, 2, 5) / 10
    truth.astype("<f4").tofile(tmp_path / "c.img")
    for header in ("ENVI\nSamples = 5\nLines = 2\nBands = 3\nHeader Offset = 0\nData Type = 4\nInterleave = bsq\n"
                   "Byte Order = 0\n", "ENVI\nSAMPLES = 5\nLINES = 2\nBANDS = 3\nDATA TYPE = 4\nINTERLEAVE = BSQ\n"
                   "BYTE ORDER = 0\n"):
        (tmp_path / "c.hdr").write_text(header)
        with RasterSource(str(tmp_path / "c.img")) as src:
            values = src.read_nan(Window(0, 0, 5, 2))
        np.testing.assert_allclose(np.moveaxis(values, -1, 0), truth)


def test_an_envi_header_saved_with_a_byte_order_mark_is_named(tmp_path):
    """Windows Notepad's 'UTF-8 with BOM' header: GDAL does not recognise the image ('not recognized as a supported
    file format'); the refusal now names the header and how to save it."""
    from oremap.core.engine.raster import RasterSource

    path, _ = _long_header_cube(tmp_path, ("size", "layout"))
    header = tmp_path / "cube.hdr"
    header.write_bytes(b"\xef\xbb\xbf" + header.read_bytes())
    with pytest.raises(OreMapError) as err:
        RasterSource(path)
    assert "starts with a byte-order mark" in err.value.message and "without BOM" in err.value.fix


def test_bands_empty_everywhere_are_named_when_no_pixel_is_left(tmp_path):
    """With bad-band detection off, water-vapour bands filled with NaN make every pixel nodata: the refusal blamed
    the raster and its nodata value; it now names the empty bands and the fix."""
    from oremap.core.engine.raster import RasterSource

    path = str(tmp_path / "nan_bands.tif")
    cube = np.random.default_rng(1).uniform(0.1, 0.5, (12, 8, 8)).astype(np.float32)
    cube[[4, 5]] = np.nan
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=12, dtype="float32",
                       crs="EPSG:32633", transform=Affine(30, 0, 500000, 0, -30, 4000000)) as ds:
        ds.write(cube)
    with RasterSource(path) as src, pytest.raises(OreMapError) as err:
        run_pixelwise(src, [OutputSpec(str(tmp_path / "o.tif"), ["a"])], lambda p: p[:, 0])
    assert err.value.message == ("Every pixel has a band without data: 2 of the 12 bands read hold no value where "
                                 "the others do (band 5, 6).") and "BAD_BANDS" in err.value.fix
    cube[:] = np.nan   # no data at all: the raster is blamed, as before
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=12, dtype="float32") as ds:
        ds.write(cube)
    with RasterSource(path) as src, pytest.raises(OreMapError) as err:
        run_pixelwise(src, [OutputSpec(str(tmp_path / "o.tif"), ["a"])], lambda p: p[:, 0])
    assert err.value.message.startswith("Every pixel of the raster is nodata")
