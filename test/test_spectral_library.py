"""Known-answer tests for core.engine.wavelengths and core.hyperspectral.spectral_library."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from conftest import SHARED_DATA, core_warnings
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.raster import RasterSource
from oremap.core.hyperspectral.spectral_library import (SpectralLibrary, _read_envi_cube, match_name, name_key,
                                                        parse_envi_header, read_library)
from oremap.core.hyperspectral.library_points import library_from_points
from oremap.core.hyperspectral.library_writers import write_csv_library, write_envi_library
from oremap.core.engine.wavelengths import (
    BandInfo,
    band_info_from_raster,
    band_tags,
    parse_wavelength_list,
    resample_spectra,
    to_nanometres,
)

DATA = Path(SHARED_DATA) / "hyperspectral"
USGS = DATA / "s07_AV95_envi.sli"
AVNG = DATA / "ang20150420t182808_corr_v1e_img_4200-4210_70-80.img"
needs_usgs = pytest.mark.skipif(not USGS.is_file(), reason="USGS library not available")
needs_avng = pytest.mark.skipif(not AVNG.is_file(), reason="AVIRIS-NG tile not available")

SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _header_list(path, key):
    """Numbers of ``key = {...}`` read from an ENVI header with a plain regex."""
    text = Path(path).read_text()
    body = re.search(rf"^{key}\s*=\s*\{{([^}}]*)\}}", text, re.M | re.S).group(1)
    return [float(v) for v in body.split(",")]


# ---------------------------------------------------------------------------
# wavelengths: units and parsing
# ---------------------------------------------------------------------------


def test_to_nanometres_units_and_magnitude_rule():
    assert to_nanometres([0.45, 2.5], "Micrometers").tolist() == [450.0, 2500.0]
    assert to_nanometres([0.45], "µm").tolist() == [450.0]
    assert to_nanometres([0.45], "microns").tolist() == [450.0]
    assert to_nanometres([450.0], "Nanometers").tolist() == [450.0]
    assert to_nanometres([450.0], "nm").tolist() == [450.0]
    assert to_nanometres([0.45, 2.5]).tolist() == [450.0, 2500.0]  # all < 30: micrometres
    assert to_nanometres([450.0, 2500.0], "Unknown").tolist() == [450.0, 2500.0]
    with pytest.raises(OreMapError) as err:
        to_nanometres([4000.0], "Wavenumber")
    assert err.value.parameter == "wavelengths" and "wavenumber" in str(err.value).lower()
    with pytest.raises(OreMapError):
        to_nanometres([1.0], "furlongs")


def test_parse_wavelength_list():
    assert parse_wavelength_list("450, 550.5; 650").tolist() == [450.0, 550.5, 650.0]
    assert parse_wavelength_list("450 550\t650").tolist() == [450.0, 550.0, 650.0]
    assert parse_wavelength_list("400:430:10").tolist() == [400.0, 410.0, 420.0, 430.0]
    assert parse_wavelength_list("400 : 425 : 10, 500").tolist() == [400.0, 410.0, 420.0, 500.0]
    assert parse_wavelength_list("0.45, 0.55").tolist() == [450.0, 550.0]
    # detector by detector, as AVIRIS-Classic lists them: kept in the order given, repeats too
    assert parse_wavelength_list("667.3, 677.2, 687.0, 664.3, 673.9").tolist() == [667.3, 677.2, 687.0, 664.3, 673.9]
    assert parse_wavelength_list("450, 450").tolist() == [450.0, 450.0]
    for bad in ["", "450, abc", "-450, 550", "500:400:10", "400:500:0", "450, nan"]:
        with pytest.raises(OreMapError) as err:
            parse_wavelength_list(bad)
        assert err.value.parameter == "wavelengths"


# ---------------------------------------------------------------------------
# wavelengths: resampling against analytic answers
# ---------------------------------------------------------------------------


def _absorption(wl, depth, centre, sigma):
    return 1.0 - depth * np.exp(-0.5 * ((wl - centre) / sigma) ** 2)


def test_linear_spectrum_keeps_its_line_under_gaussian_response():
    src = np.arange(350.0, 2501.0, 1.0)
    spectra = np.vstack([0.1 + 2e-4 * src, 0.9 - 1e-4 * src])
    dst = BandInfo(centers=[500.3, 1000.7, 1500.0, 2000.25], fwhm=[10.0, 25.0, 7.0, 40.0])
    out = resample_spectra(spectra, src, dst)
    expected = np.vstack([0.1 + 2e-4 * dst.centers, 0.9 - 1e-4 * dst.centers])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_uneven_source_sampling_is_weighted_by_spacing():
    # 0.25 nm steps below 1000 nm, 2 nm above: without spacing weights the
    # dense side would pull a line down by about 5e-3.
    src = np.concatenate([np.arange(900.0, 1000.0, 0.25), np.arange(1000.0, 1101.0, 2.0)])
    centers = np.array([990.0, 1000.0, 1010.0])
    out = resample_spectra(0.2 + 1e-3 * src, src, BandInfo(centers=centers, fwhm=[20.0, 20.0, 20.0]))
    np.testing.assert_allclose(out, 0.2 + 1e-3 * centers, rtol=0, atol=1e-4)


def test_gaussian_feature_matches_analytic_convolution():
    depth, centre, sigma = 0.4, 2200.0, 8.0
    fwhm = 12.0
    src = np.arange(2000.0, 2400.0 + 0.5, 1.0)
    values = _absorption(src, depth, centre, sigma)
    centers = np.arange(2150.0, 2250.0, 7.3)
    out = resample_spectra(values, src, BandInfo(centers=centers, fwhm=np.full(centers.size, fwhm)))
    # Gaussian widths add in quadrature; the depth scales by sigma / width.
    width = math.hypot(sigma, fwhm * SIGMA_PER_FWHM)
    expected = _absorption(centers, depth * sigma / width, centre, width)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)
    assert np.max(np.abs(out - expected)) < 1e-8  # in fact far better


def test_source_resolution_is_taken_into_account():
    # A source already blurred by its own 6 nm response, resampled to 15 nm,
    # must equal the feature blurred by 15 nm in total.
    depth, centre, sigma = 0.3, 1000.0, 5.0
    src_fwhm, dst_fwhm = 6.0, 15.0
    src = np.arange(800.0, 1200.5, 1.0)
    s_src = math.hypot(sigma, src_fwhm * SIGMA_PER_FWHM)
    values = _absorption(src, depth * sigma / s_src, centre, s_src)
    centers = np.array([980.0, 995.5, 1000.0, 1012.0])
    out = resample_spectra(
        values, src, BandInfo(centers=centers, fwhm=np.full(4, dst_fwhm)), src_fwhm=np.full(src.size, src_fwhm)
    )
    s_dst = math.hypot(sigma, dst_fwhm * SIGMA_PER_FWHM)
    np.testing.assert_allclose(out, _absorption(centers, depth * sigma / s_dst, centre, s_dst), atol=1e-6)


def test_source_sampled_at_its_own_resolution_gets_the_target_response():
    # AVIRIS-NG-like bands (5 nm apart, 5.5 nm wide) to a 10 nm model: the kernel (8.3 nm) spans whole 5 nm
    # intervals, which the source's own response already smooths, so the Gaussian path gives the 10 nm response.
    # Linear interpolation keeps the 5.5 nm depth: 0.012 too deep at the feature (the rule before 0.2.6).
    depth, centre, sigma = 0.3, 2205.0, 6.0
    src = np.arange(2000.0, 2400.1, 5.0) + 0.3
    s_src = math.hypot(sigma, 5.5 * SIGMA_PER_FWHM)
    values = _absorption(src, depth * sigma / s_src, centre, s_src)
    centers = np.arange(2150.0, 2260.0, 10.0)
    out = resample_spectra(
        values, src, BandInfo(centers=centers, fwhm=np.full(centers.size, 10.0)), src_fwhm=np.full(src.size, 5.5)
    )
    s_dst = math.hypot(sigma, 10.0 * SIGMA_PER_FWHM)
    np.testing.assert_allclose(out, _absorption(centers, depth * sigma / s_dst, centre, s_dst), rtol=0, atol=1e-4)
    # a source of 8 nm bands 8 nm apart is coarser than the 6 nm kernel it would need: linear, as before
    src = np.arange(2000.0, 2400.1, 8.0)
    values = _absorption(src, 0.2, centre, 9.0)
    out = resample_spectra(
        values, src, BandInfo(centers=centers, fwhm=np.full(centers.size, 10.0)), src_fwhm=np.full(src.size, 8.0)
    )
    np.testing.assert_array_equal(out, np.interp(centers, src, values))


def test_coarse_source_falls_back_to_exact_linear_interpolation():
    rng = np.random.default_rng(3)
    src = np.arange(400.0, 1001.0, 10.0)
    spectra = rng.random((3, src.size))
    centers = np.array([400.0, 405.5, 512.25, 730.0, 999.9, 1000.0])
    out = resample_spectra(spectra, src, BandInfo(centers=centers, fwhm=np.full(centers.size, 5.0)))
    expected = np.vstack([np.interp(centers, src, s) for s in spectra])
    np.testing.assert_array_equal(out, expected)
    # Unknown FWHM: linear interpolation too.
    np.testing.assert_array_equal(resample_spectra(spectra, src, centers), expected)


def test_bands_outside_the_source_are_nan():
    src = np.arange(400.0, 1000.5, 1.0)
    values = 0.5 + 0.0 * src
    dst = BandInfo(centers=[390.0, 402.0, 700.0, 997.0, 1010.0], fwhm=[10.0, 10.0, 10.0, 10.0, 10.0])
    out = resample_spectra(values, src, dst)
    # 402 +- 5 and 997 +- 5 reach beyond the source: not covered.
    assert np.isnan(out[[0, 1, 3, 4]]).all()
    assert out[2] == pytest.approx(0.5, abs=1e-12)
    linear = resample_spectra(values, src, [390.0, 400.0, 1000.0, 1000.5])
    assert np.isnan(linear[[0, 3]]).all() and linear[1] == 0.5 and linear[2] == 0.5


def test_missing_source_channels():
    src = np.arange(400.0, 1000.5, 1.0)
    values = np.full(src.size, 0.25)
    values[(src >= 600) & (src <= 620)] = np.nan  # a 22 nm gap
    values[src == 701] = np.nan  # a single missing channel
    dst = BandInfo(centers=[560.0, 590.0, 610.0, 700.0], fwhm=[10.0, 30.0, 10.0, 10.0])
    out = resample_spectra(values, src, dst)
    assert out[0] == pytest.approx(0.25, abs=1e-12)  # away from the gap
    assert np.isnan(out[1]) and np.isnan(out[2])  # the gap is wider than FWHM/2
    assert out[3] == pytest.approx(0.25, abs=1e-12)  # renormalised over finite samples


# ---------------------------------------------------------------------------
# raster band metadata
# ---------------------------------------------------------------------------


@needs_avng
def test_band_info_from_aviris_ng_envi_header():
    info = band_info_from_raster(AVNG)
    wl = _header_list(AVNG.with_suffix(".hdr"), "wavelength")
    fwhm = _header_list(AVNG.with_suffix(".hdr"), "fwhm")
    bbl = _header_list(AVNG.with_suffix(".hdr"), "bbl")
    assert info.n_bands == 432 == len(wl)
    assert info.centers[0] == wl[0] == 346.2995778
    assert info.centers[-1] == wl[-1] == 2505.0363678
    assert info.fwhm is not None and info.fwhm[0] == fwhm[0] and info.fwhm[-1] == fwhm[-1]
    assert int(info.bad.sum()) == bbl.count(0.0) == 59


def _write_tif(path, n_bands, transform=None, tags=None, descriptions=None, data=None, nodata=None):
    transform = transform or Affine.translation(0, 10) * Affine.scale(1, -1)
    data = np.ones((n_bands, 4, 5), "float32") if data is None else data
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=n_bands,
        dtype=data.dtype, crs="EPSG:32612", transform=transform, nodata=nodata,
    ) as ds:
        ds.write(data)
        for b in range(n_bands):
            if tags:
                ds.update_tags(b + 1, **tags[b])
            if descriptions:
                ds.set_band_description(b + 1, descriptions[b])
    return path


def test_band_tags_round_trip_through_geotiff(tmp_path):
    info = BandInfo(centers=[450.125, 550.0, 1650.3], fwhm=[10.5, 11.0, 20.25])
    path = _write_tif(tmp_path / "tags.tif", 3, tags=band_tags(info))
    back = band_info_from_raster(path)
    np.testing.assert_array_equal(back.centers, info.centers)
    np.testing.assert_array_equal(back.fwhm, info.fwhm)
    assert not back.bad.any()


def test_band_info_from_descriptions_imagery_and_none(tmp_path):
    path = _write_tif(tmp_path / "desc.tif", 3, descriptions=["452.3 nm", "0.55 um", "Band 3 (650 nm)"])
    np.testing.assert_allclose(band_info_from_raster(path).centers, [452.3, 550.0, 650.0])
    path = _write_tif(tmp_path / "plain.tif", 2, descriptions=["0.45", "0.65"])
    np.testing.assert_allclose(band_info_from_raster(path).centers, [450.0, 650.0])
    assert band_info_from_raster(_write_tif(tmp_path / "none.tif", 2)) is None
    assert band_info_from_raster(_write_tif(tmp_path / "num.tif", 2, descriptions=["1", "2"])) is None
    path = tmp_path / "imagery.tif"
    _write_tif(path, 2)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(1, ns="IMAGERY", CENTRAL_WAVELENGTH_UM="0.485", FWHM_UM="0.065")
        ds.update_tags(2, ns="IMAGERY", CENTRAL_WAVELENGTH_UM="0.56", FWHM_UM="0.075")
    info = band_info_from_raster(path)
    np.testing.assert_allclose(info.centers, [485.0, 560.0])
    np.testing.assert_allclose(info.fwhm, [65.0, 75.0])


def _envi_copy(tmp_path, name, edit):
    """A copy of the real AVIRIS-NG tile whose header is ``edit(header text)``."""
    import shutil

    img = tmp_path / (name + ".img")
    shutil.copyfile(AVNG, img)
    (tmp_path / (name + ".hdr")).write_text(edit(AVNG.with_suffix(".hdr").read_text()))
    return img


def _set_field(text, key, value):
    """``text`` with ENVI field ``key`` (a multi-line ``{...}`` list or one line) set to ``value`` (None: removed)."""
    text = re.sub(rf"^{key}\s*=\s*(\{{[^}}]*\}}|[^\n]*)\n", "", text, flags=re.MULTILINE | re.IGNORECASE)
    return text if value is None else text.rstrip("\n") + f"\n{key} = {value}\n"


@needs_avng
def test_band_numbers_are_no_wavelengths_from_any_source(tmp_path):
    """ENVI's 'wavelength units = Index' with 1 ... 432 (GDAL also copies them into per-band items, without
    units) and the same list with units 'Unknown' are band numbers: the band names' wavelengths are read
    instead, and without them there are none."""
    real = band_info_from_raster(AVNG)
    numbers = "{ " + " , ".join(str(i) for i in range(1, 433)) + " }"
    names = "{ " + " , ".join(f"Band {i} ({w:.4f} Nanometers)" for i, w in enumerate(real.centers, 1)) + " }"
    for units in ("Index", "Unknown"):
        def edit(text, units=units, names=None):
            text = _set_field(_set_field(_set_field(text, "wavelength", numbers), "wavelength units", units),
                              "fwhm", None)
            return text if names is None else _set_field(text, "band names", names)
        assert band_info_from_raster(_envi_copy(tmp_path, "numbers_" + units, edit)) is None
        info = band_info_from_raster(_envi_copy(tmp_path, "named_" + units, lambda t: edit(t, names=names)))
        np.testing.assert_allclose(info.centers, real.centers, atol=5e-5)
        assert info.origin == "ENVI header 'band names', units 'Nanometers'"


@needs_avng
def test_units_that_contradict_the_values_are_refused(tmp_path):
    """'Micrometers' over nanometre values (and the reverse) name the units read, where a wrong range went
    on to the algorithms before."""
    for units, shown in (("Micrometers", "read as 3.463e+05-2.505e+06 nm (ENVI header 'wavelength', units "
                                         "'Micrometers')"),
                         ("Nanometers", "")):
        edit = (lambda t, u=units: _set_field(t, "wavelength units", u))
        if units == "Nanometers":
            text = AVNG.with_suffix(".hdr").read_text()
            um = "{ " + " , ".join(f"{w / 1000:.7f}" for w in band_info_from_raster(AVNG).centers) + " }"
            edit = (lambda t, um=um: _set_field(_set_field(t, "wavelength", um), "wavelength units", "Nanometers"))
        with pytest.raises(OreMapError) as err:
            band_info_from_raster(_envi_copy(tmp_path, units, edit))
        assert err.value.parameter == "wavelengths" and f"'{units}.img'" in err.value.message
        assert shown in err.value.message and "wavelength units" in err.value.fix


@needs_avng
def test_header_line_gdal_drops_is_read_from_the_file(tmp_path):
    """GDAL drops an ENVI header line over 10,000 characters (a 432-value list written with 22 decimals) and
    every field after it; the header file itself still gives the wavelengths, and the bad-band list after them (it
    was lost: the 59 bands the tile's bbl flags went into SAM and the models)."""
    real = band_info_from_raster(AVNG)
    long = "{" + ", ".join(f"{w:.22f}" for w in real.centers) + "}"
    bbl = "{" + ", ".join("0" if b else "1" for b in real.bad) + "}"   # written after the long line
    img = _envi_copy(tmp_path, "long", lambda t: _set_field(_set_field(t, "wavelength", long), "bbl", bbl))
    with rasterio.open(img) as ds:
        assert "wavelength" not in ds.tags(ns="ENVI")
    info = band_info_from_raster(img)
    np.testing.assert_allclose(info.centers, real.centers, atol=1e-9)
    assert info.origin == "ENVI header file 'wavelength', units 'Nanometers'"
    with rasterio.open(img) as ds:
        assert "bbl" not in ds.tags(ns="ENVI")
    assert int(real.bad.sum()) == 59 and np.array_equal(info.bad, real.bad)


def test_dataset_level_wavelength_items(tmp_path):
    """A dataset-level ENVI-style list, or Band_<i> items as a copy of an ENVI file's dataset tags carries them."""
    path = _write_tif(tmp_path / "list.tif", 3)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(wavelength="{ 0.45 , 0.55 , 1.65 }", wavelength_units="Micrometers", fwhm="{ 0.01, 0.01, 0.02 }")
    info = band_info_from_raster(path)
    np.testing.assert_allclose(info.centers, [450.0, 550.0, 1650.0])
    np.testing.assert_allclose(info.fwhm, [10.0, 10.0, 20.0])
    path = _write_tif(tmp_path / "items.tif", 2)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(Band_1="346.2995778 Nanometers", Band_2="351.3082 Nanometers")
    info = band_info_from_raster(path)
    np.testing.assert_allclose(info.centers, [346.2995778, 351.3082])
    assert info.origin == "dataset metadata 'Band_1' ... 'Band_2', units 'Nanometers'"


# ---------------------------------------------------------------------------
# ENVI libraries
# ---------------------------------------------------------------------------


def _small_library():
    rng = np.random.default_rng(0)
    spectra = rng.random((3, 6)).astype(np.float32).astype(np.float64)
    spectra[1, 2] = np.nan
    return SpectralLibrary(
        names=["Kaolinite KGa-1", "Alunite GDS84", "kaolinite wxl"],
        spectra=spectra,
        wavelengths=[2100.5, 2150.0, 2200.25, 2250.0, 2300.0, 2350.125],
        fwhm=[10.0, 10.5, 11.0, 11.5, 12.0, 12.5],
        source="test",
    )


def test_envi_round_trip(tmp_path):
    lib = _small_library()
    data = write_envi_library(lib, tmp_path / "lib.sli")
    assert data.name == "lib.sli" and (tmp_path / "lib.hdr").is_file()
    for path in (data, tmp_path / "lib.hdr"):
        back = read_library(path)
        assert back.names == lib.names
        np.testing.assert_array_equal(back.spectra, lib.spectra)  # NaN in the same place
        np.testing.assert_array_equal(back.wavelengths, lib.wavelengths)
        np.testing.assert_array_equal(back.fwhm, lib.fwhm)
        assert back.n_dropped == 0


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_envi_gdal_readable_variant(tmp_path):
    lib = _small_library()
    data = write_envi_library(lib, tmp_path / "gdal.sli", gdal_readable=True)
    with rasterio.open(data) as ds:
        assert (ds.count, ds.height, ds.width) == (1, 3, 6)
        values = ds.read(1).astype(np.float64)
    values[np.isclose(values, -1.23e34, rtol=1e-6)] = np.nan
    np.testing.assert_array_equal(values, lib.spectra)
    np.testing.assert_array_equal(read_library(data).spectra, lib.spectra)


def test_envi_header_parser_and_binary_variants(tmp_path):
    header = tmp_path / "odd.hdr"
    header.write_text(
        "ENVI\n"
        "description = {\n  A library, with commas = and equals,\n  over lines}\n"
        "Samples = 3\nlines   = 2\nbands = 1\nheader offset = 8\n"
        "file type = ENVI Spectral Library\ndata type = 2\ninterleave = bil\nbyte order = 1\n"
        "wavelength units = Micrometers\nreflectance scale factor = 10000\n"
        "data ignore value = -9999\n"
        "spectra names = {\n Quartz  GDS31 ,\n Wavelengths in microns test}\n"
        "wavelength = { 0.5, 1.0,\n 1.5 }\n"
    )
    raw = np.array([[1000, -9999, 3000], [5000, 10000, 15000]], dtype=">i2")
    (tmp_path / "odd.sli").write_bytes(b"\0" * 8 + raw.tobytes())
    parsed = parse_envi_header(header)
    assert parsed["description"].startswith("A library, with commas = and equals,")
    assert parsed["samples"] == "3"
    assert parsed["wavelength"] == ["0.5", "1.0", "1.5"]
    assert parsed["spectra names"] == ["Quartz  GDS31", "Wavelengths in microns test"]
    lib = read_library(tmp_path / "odd.sli")
    assert lib.names == ["Quartz GDS31"] and lib.n_dropped == 1
    np.testing.assert_array_equal(lib.wavelengths, [500.0, 1000.0, 1500.0])
    np.testing.assert_array_equal(lib.spectra, [[0.1, np.nan, 0.3]])
    # Interleaves of a two-band cube give the same (bands, lines, samples) array.
    cube = np.arange(12, dtype="<f4").reshape(2, 2, 3)
    base = {"samples": "3", "lines": "2", "bands": "2", "data type": "4"}
    layouts = {"bsq": cube, "bil": cube.transpose(1, 0, 2), "bip": cube.transpose(1, 2, 0)}
    for name, layout in layouts.items():
        path = tmp_path / f"cube_{name}.dat"
        layout.tofile(path)
        got = _read_envi_cube(dict(base, interleave=name), path, path)
        np.testing.assert_array_equal(got, cube)


def test_envi_wavelength_record_is_not_scaled(tmp_path):
    (tmp_path / "rec.hdr").write_text(
        "ENVI\nsamples = 3\nlines = 3\nbands = 1\ndata type = 4\ninterleave = bsq\n"
        "reflectance scale factor = 10000\n"
        "spectra names = {Wavelengths in nanometers, Bandpass (FWHM) in nanometers, Calcite}\n"
    )
    raw = np.array([[400, 500, 600], [10, 10, 12], [1000, 2000, 3000]], dtype="<f4")
    raw.tofile(tmp_path / "rec.sli")
    lib = read_library(tmp_path / "rec.sli")
    assert lib.names == ["Calcite"] and lib.n_dropped == 2
    np.testing.assert_array_equal(lib.wavelengths, [400.0, 500.0, 600.0])
    np.testing.assert_array_equal(lib.fwhm, [10.0, 10.0, 12.0])
    np.testing.assert_allclose(lib.spectra, [[0.1, 0.2, 0.3]])


@needs_usgs
def test_read_usgs_splib07_library():
    lib = read_library(USGS)
    names = [" ".join(n.split()) for n in parse_envi_header(USGS.with_suffix(".hdr"))["spectra names"]]
    n_aux = sum(n.lower().startswith(("error bars", "wavelengths in", "resolution in")) for n in names)
    assert len(names) == 3139 and n_aux == 682
    assert lib.n_spectra == 3139 - 682 == 2457 and lib.n_dropped == 682
    assert lib.spectra.shape == (2457, 224)
    assert lib.wavelengths[0] == pytest.approx(383.15) and lib.wavelengths[-1] == pytest.approx(2508.2)
    assert lib.fwhm[0] == pytest.approx(9.94)
    assert "Kaolinite CM9 BECKb AREF" in lib.names
    assert not any(n.lower().startswith("error bars") for n in lib.names)
    # Missing values are NaN, everything else a plausible reflectance.
    assert np.isnan(lib.spectra).sum() == 77599
    assert np.nanmin(lib.spectra) >= 0.0 and np.nanmax(lib.spectra) < 1.5
    acti = lib.spectra[lib.names.index("Actinolite HS116.1B ASDFRb AREF")]
    assert np.isnan(acti[223]) and np.isfinite(acti[:223]).all()  # ASD stops at 2500 nm
    lib.check_unique_names()


# ---------------------------------------------------------------------------
# CSV libraries
# ---------------------------------------------------------------------------


def test_csv_micrometres_and_nanometres_give_the_same_library(tmp_path):
    (tmp_path / "um.csv").write_text(
        "Wavelength (um),Kaolinite,Alunite\n0.45,0.5,0.6\n0.55,,0.7\n0.65,0.55,n/a\n"
    )
    (tmp_path / "nm.csv").write_text(
        "nm;Kaolinite;Alunite\n650;0,55;\n450;0,5;0,6\n550;;0,7\n"  # unsorted, decimal commas
    )
    (tmp_path / "bare.txt").write_text("x\tKaolinite\tAlunite\n0.45\t0.5\t0.6\n0.55\t\t0.7\n0.65\t0.55\t\n")
    libs = [read_library(tmp_path / name) for name in ("um.csv", "nm.csv", "bare.txt")]
    expected = np.array([[0.5, np.nan, 0.55], [0.6, 0.7, np.nan]])
    for lib in libs:
        assert lib.names == ["Kaolinite", "Alunite"]
        np.testing.assert_allclose(lib.wavelengths, [450.0, 550.0, 650.0])
        np.testing.assert_array_equal(lib.spectra, expected)


def test_a_grain_size_in_a_spectrums_name_is_no_wavelength_unit(tmp_path):
    """USGS names carry grain sizes ('Kaolinite GDS11 <63um'): with an unnamed first column (pandas' index) that
    spectrum's column was taken for the wavelengths, the real wavelengths became a spectrum and the library was
    divided by 10000."""
    rows = [",Quartz GDS74 BECKb AREF,Kaolinite GDS11 <63um BECKb AREF"]
    rows += [f"{w},{0.5 + 0.0001 * w:.4f},{0.6 - 0.0001 * w:.4f}" for w in range(400, 2501, 100)]
    (tmp_path / "usgs.csv").write_text("\n".join(rows) + "\n")
    lib = read_library(tmp_path / "usgs.csv")
    assert lib.names == ["Quartz GDS74 BECKb AREF", "Kaolinite GDS11 <63um BECKb AREF"]
    np.testing.assert_allclose(lib.wavelengths, np.arange(400.0, 2501.0, 100.0))
    np.testing.assert_allclose(lib.spectra[1, :2], [0.56, 0.55])
    # a unit with nothing but wavelength words beside it still names the column, wherever it is
    (tmp_path / "later.csv").write_text("Kaolinite <2um,Band centre [nm]\n0.5,450\n0.6,550\n")
    lib = read_library(tmp_path / "later.csv")
    assert lib.names == ["Kaolinite <2um"] and lib.wavelengths.tolist() == [450.0, 550.0]


def test_csv_with_one_spectrum_per_row_as_a_spreadsheet_exports_it(tmp_path):
    """Wavelengths across the first row, a spectrum per row, ';' and decimal commas (a European spreadsheet's CSV):
    the same library as the column layout (it was refused: "wavelength 'Kaolinite ...' is not a number")."""
    (tmp_path / "rows.csv").write_text("Name;450;550;650\nKaolinite CM9;0,5;;0,55\nAlunite GDS84;0,6;0,7;\n")
    lib = read_library(tmp_path / "rows.csv")
    assert lib.names == ["Kaolinite CM9", "Alunite GDS84"]
    np.testing.assert_allclose(lib.wavelengths, [450.0, 550.0, 650.0])
    np.testing.assert_array_equal(lib.spectra, [[0.5, np.nan, 0.55], [0.6, 0.7, np.nan]])
    # spectra in columns named by sample numbers stay columns
    (tmp_path / "numbered.csv").write_text("Wavelength,101,102\n450,0.5,0.6\n550,0.52,0.7\n")
    numbered = read_library(tmp_path / "numbered.csv")
    assert numbered.names == ["101", "102"] and numbered.wavelengths.tolist() == [450.0, 550.0]
    (tmp_path / "bad.csv").write_text("Name,Kaolinite\nabc,0.5\n450,0.6\n")
    with pytest.raises(OreMapError) as err:
        read_library(tmp_path / "bad.csv")
    assert "one spectrum per row with the wavelengths across the first row" in err.value.fix


def test_csv_round_trip(tmp_path):
    lib = _small_library()
    back = read_library(write_csv_library(lib, tmp_path / "out.csv"))
    assert back.names == lib.names
    np.testing.assert_array_equal(back.spectra, lib.spectra)
    np.testing.assert_array_equal(back.wavelengths, lib.wavelengths)


def test_csv_round_trip_with_delimiters_in_names(tmp_path):
    lib = _small_library()
    lib.names = ["Kaolinite; well crystallised", "Alunite, K", "tab\tname"]
    back = read_library(write_csv_library(lib, tmp_path / "semi.csv"))
    assert back.names == lib.names
    np.testing.assert_array_equal(back.spectra, lib.spectra)
    np.testing.assert_array_equal(back.wavelengths, lib.wavelengths)
    assert not [p for p in tmp_path.iterdir() if p.name != "semi.csv"]  # no temporary file left


def test_missing_or_unknown_library_file(tmp_path):
    with pytest.raises(OreMapError) as err:
        read_library(tmp_path / "nope.sli")
    assert err.value.parameter == "library" and err.value.fix
    (tmp_path / "lib.xyz").write_text("x")
    with pytest.raises(OreMapError) as err:
        read_library(tmp_path / "lib.xyz")
    assert err.value.parameter == "library" and ".csv" in err.value.fix


# ---------------------------------------------------------------------------
# selecting spectra
# ---------------------------------------------------------------------------


def test_subset_matching_rules():
    lib = _small_library()
    assert lib.subset(["Alunite GDS84"]).names == ["Alunite GDS84"]  # exact
    assert lib.subset(["KAOLINITE  kga-1"]).names == ["Kaolinite KGa-1"]  # case, spaces
    assert lib.subset(["alun"]).names == ["Alunite GDS84"]  # unique prefix
    assert lib.subset(["wxl", "Alunite"]).names == ["kaolinite wxl", "Alunite GDS84"]  # substring, order
    sub = lib.subset(["Alunite"])
    np.testing.assert_array_equal(sub.spectra, lib.spectra[[1]])
    with pytest.raises(OreMapError) as err:
        lib.subset(["Kaolinite"])  # two names start with it
    assert err.value.parameter == "spectra" and "Kaolinite KGa-1" in str(err.value)
    with pytest.raises(OreMapError) as err:
        lib.subset(["Alunit GDS48"])
    assert err.value.parameter == "spectra" and "'Alunite GDS84'" in str(err.value)
    with pytest.raises(OreMapError) as err:
        lib.subset(["Alunite", "alun"])  # the same spectrum twice
    assert err.value.parameter == "spectra"
    assert "more than once" in str(err.value) and "'Alunite GDS84'" in str(err.value)


def test_match_name_and_name_key():
    names = ["Kaolinite KGa-1", "Alunite GDS84", "kaolinite wxl", "Alunite GDS84"]
    assert name_key("  Kaolinite \t KGa-1 ") == "kaolinite kga-1"
    assert match_name("kaolinite  KGA-1", names) == (0, [])
    assert match_name("wxl", names) == (2, [])
    assert match_name("Kaolinite", names) == (None, [0, 2])  # ambiguous prefix
    assert match_name("Alunite GDS84", names) == (None, [1, 3])  # exact, twice
    assert match_name("Quartz", names) == (None, [])
    assert match_name("  ", names) == (None, [])


def test_duplicate_names_are_reported():
    lib = SpectralLibrary(names=["A", "B", "A"], spectra=np.zeros((3, 2)), wavelengths=[500.0, 600.0])
    with pytest.raises(OreMapError) as err:
        lib.check_unique_names()
    assert "'A'" in str(err.value) and "'B'" not in str(err.value)
    with pytest.raises(OreMapError):
        lib.subset(["A"])


def test_resample_library_to_band_info():
    src = np.arange(400.0, 1001.0, 1.0)
    lib = SpectralLibrary(names=["line"], spectra=[0.2 + 1e-4 * src], wavelengths=src)
    info = BandInfo(centers=[500.0, 800.0, 1200.0], fwhm=[10.0, 10.0, 10.0])
    out = lib.resample(info)
    np.testing.assert_allclose(out.spectra[0, :2], [0.25, 0.28], atol=1e-12)
    assert np.isnan(out.spectra[0, 2])
    np.testing.assert_array_equal(out.wavelengths, info.centers)
    np.testing.assert_array_equal(out.fwhm, info.fwhm)


# ---------------------------------------------------------------------------
# endmembers from raster points
# ---------------------------------------------------------------------------


def _rotated_raster(path, nodata=None, with_wavelengths=True):
    transform = Affine.translation(500000.0, 4100000.0) * Affine.rotation(30.0) * Affine.scale(2.0, -2.0)
    bands, rows, cols = np.indices((3, 5, 6))
    data = ((bands + 1) * 1000 + rows * 10 + cols).astype("int16")
    if nodata is not None:
        data[:, 4, 5] = nodata
    info = BandInfo(centers=[450.0, 550.0, 650.0], fwhm=[20.0, 20.0, 20.0])
    tags = band_tags(info) if with_wavelengths else None
    _write_tif(path, 3, transform=transform, tags=tags, data=data, nodata=nodata)
    return transform, data


def _centre(transform, row, col):
    return transform * (col + 0.5, row + 0.5)


def _points(path, xy, names, bands=None, nodata=None, scale=None, band_info=None):
    with RasterSource(path, bands=bands, nodata=nodata, scale=scale) as src:
        return library_from_points(src, xy, names, band_info=band_info)


INFO = BandInfo(centers=[450.0, 550.0, 650.0], fwhm=[20.0, 20.0, 20.0])


def test_library_from_points_on_rotated_raster(tmp_path):
    path = tmp_path / "rot.tif"
    transform, data = _rotated_raster(path)
    cells = [(0, 0), (4, 5), (2, 3), (1, 4)]
    xy = [_centre(transform, r, c) for r, c in cells]
    lib = _points(path, xy, ["a", "b", "c", "d"], scale=1000.0, band_info=INFO)
    expected = np.array([data[:, r, c] / 1000.0 for r, c in cells])
    np.testing.assert_allclose(lib.spectra, expected, rtol=1e-6, atol=0)
    assert lib.names == ["a", "b", "c", "d"] and lib.n_points.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(lib.wavelengths, [450.0, 550.0, 650.0])
    np.testing.assert_array_equal(lib.fwhm, [20.0, 20.0, 20.0])
    assert lib.wavelengths_known
    # A subset of bands, unscaled (scale 1).
    sub = _points(path, xy[:1], ["a"], bands=[3, 1], scale=1.0, band_info=INFO)
    np.testing.assert_array_equal(sub.spectra, [[data[2, 0, 0], data[0, 0, 0]]])
    np.testing.assert_array_equal(sub.wavelengths, [650.0, 450.0])


def test_library_from_points_averages_same_names(tmp_path):
    path = tmp_path / "rot.tif"
    transform, data = _rotated_raster(path)
    xy = [_centre(transform, 1, 1), _centre(transform, 3, 2), _centre(transform, 0, 5)]
    from conftest import core_warnings

    log = core_warnings()
    with RasterSource(path, scale=1.0) as src:
        lib = library_from_points(src, xy, ["Alunite", "Kaolinite", "Alunite"], band_info=INFO, feedback=log)
    assert lib.names == ["Alunite", "Kaolinite"] and lib.n_points.tolist() == [2, 1]
    assert "Points sharing a name are averaged into one endmember: Alunite (2 points)." in log.infos
    np.testing.assert_allclose(lib.spectra[0], (data[:, 1, 1] + data[:, 0, 5]) / 2.0)
    np.testing.assert_allclose(lib.spectra[1], data[:, 3, 2])
    assert "averaged" in lib.source


def test_library_from_points_errors(tmp_path):
    path = tmp_path / "rot.tif"
    transform, _ = _rotated_raster(path, nodata=-1)
    inside = _centre(transform, 1, 1)
    # Inside the rotated footprint's bounding box but outside the grid.
    outside = _centre(transform, -1, 2)
    with pytest.raises(OreMapError) as err:
        _points(path, [inside, outside], ["ok", "far away"])
    assert err.value.parameter == "endmembers" and "point 2 'far away'" in str(err.value)
    with pytest.raises(OreMapError) as err:
        _points(path, [inside, _centre(transform, 4, 5)], ["ok", "hole"])
    assert err.value.parameter == "endmembers" and "point 2 'hole'" in str(err.value)
    with pytest.raises(OreMapError) as err:
        _points(path, [inside], ["  "])
    assert err.value.parameter == "endmembers"
    for xy, names in (([], []), (np.zeros((0, 2)), [])):
        with pytest.raises(OreMapError) as err:
            _points(path, xy, names)
        assert err.value.parameter == "endmembers" and "No endmember points" in str(err.value)
    with pytest.raises(OreMapError) as err:
        _points(path, [inside], ["ok"], band_info=BandInfo(centers=[450.0, 550.0]))
    assert err.value.parameter == "wavelengths"


def test_library_from_points_masks_raster_and_user_nodata(tmp_path):
    path = tmp_path / "rot.tif"
    transform, data = _rotated_raster(path, nodata=-1)  # pixel (4, 5) is the raster's nodata
    with rasterio.open(path, "r+") as ds:
        block = ds.read()
        block[:, 2, 3] = -7  # the user's nodata
        ds.write(block)
    xy = [_centre(transform, 1, 1), _centre(transform, 4, 5), _centre(transform, 2, 3)]
    with pytest.raises(OreMapError) as err:
        _points(path, xy, ["ok", "raster nodata", "user nodata"], nodata=-7, scale=1.0)
    message = str(err.value)
    assert err.value.parameter == "endmembers" and message.startswith("2 endmember points")
    assert "point 2 'raster nodata'" in message and "point 3 'user nodata'" in message
    # Without the user nodata, -7 is an ordinary value.
    lib = _points(path, xy[::2], ["ok", "minus seven"], scale=1.0)
    np.testing.assert_array_equal(lib.spectra, [data[:, 1, 1], [-7.0, -7.0, -7.0]])


def test_library_from_points_rejects_pixel_nodata_in_one_band(tmp_path):
    path = tmp_path / "rot.tif"
    transform, data = _rotated_raster(path, nodata=-1)
    with rasterio.open(path, "r+") as ds:
        ds.write(np.full((1, 1), -1, dtype="int16"), 2, window=rasterio.windows.Window(3, 3, 1, 1))
    xy = [_centre(transform, 1, 1), _centre(transform, 3, 3)]
    with pytest.raises(OreMapError) as err:
        _points(path, xy, ["ok", "one band missing"], scale=1.0)
    assert err.value.parameter == "endmembers" and "point 2 'one band missing'" in str(err.value)
    # Leaving that band out makes the pixel valid.
    lib = _points(path, xy, ["ok", "one band missing"], bands=[1, 3], scale=1.0, band_info=INFO)
    np.testing.assert_array_equal(lib.spectra[1], data[[0, 2], 3, 3])
    np.testing.assert_array_equal(lib.wavelengths, [450.0, 650.0])


def test_library_from_points_without_wavelengths(tmp_path):
    path = tmp_path / "plain.tif"
    transform, data = _rotated_raster(path, with_wavelengths=False)
    lib = _points(path, [_centre(transform, 2, 2)], ["x"], scale=1.0)
    assert not lib.wavelengths_known
    np.testing.assert_array_equal(lib.wavelengths, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(lib.spectra, [data[:, 2, 2]])
    with pytest.raises(OreMapError) as err:
        lib.resample(BandInfo(centers=[500.0]))
    assert err.value.parameter == "wavelengths"


def test_spectra_measured_over_part_of_the_range_are_left_out_of_the_comparison():
    """A library whose spectra mostly cover 400-2500 nm but one only 400-1000 nm (a VNIR-only record): it is left
    out and named, and the others are compared on every good band, instead of all on the VNIR overlap."""
    from oremap.core.hyperspectral.mapping import match_library

    wl = np.linspace(400.0, 2500.0, 106)
    rng = np.random.default_rng(3)
    spectra = rng.uniform(0.1, 0.6, (4, wl.size))
    spectra[2, wl > 1000.0] = np.nan
    library = SpectralLibrary(["Kaolinite", "Alunite", "Goethite VNIR only", "Calcite"], spectra, wl)
    bad = np.zeros(wl.size, bool)
    bad[[50, 51]] = True
    image = BandInfo(centers=wl.copy(), fwhm=None, bad=bad)

    log = core_warnings()
    bands, refs, kept = match_library(library, image, feedback=log, drop_partial=True)
    assert kept.names == ["Kaolinite", "Alunite", "Calcite"]
    assert bands == [b + 1 for b in range(wl.size) if b not in (50, 51)]
    np.testing.assert_allclose(refs, spectra[[0, 1, 3]][:, ~bad], rtol=1e-9)
    assert len(log.warnings) == 1
    assert log.warnings[0].startswith("1 of 4 spectra cover less than 98 % of the 104 good image bands")
    assert log.warnings[0].endswith("left out: Goethite VNIR only.")
    # spectra chosen by name (and unmixing's endmembers) are all kept, compared on the bands all of them cover,
    # and the one that narrows the comparison to the VNIR is named (it was an info line of band counts only)
    bands, refs, kept = match_library(library, image, feedback=log)
    assert kept is library and len(log.warnings) == 2
    assert bands == [b + 1 for b in range(wl.size) if wl[b] <= 1000.0 and b not in (50, 51)]
    assert log.warnings[1].startswith("Every spectrum is compared on the 31 of 104 good bands all of them cover: "
                                      "Goethite VNIR only covers less of the range than the others")
    # every spectrum complete: nothing left out, the same library back
    full = SpectralLibrary(["A", "B"], spectra[[0, 1]], wl)
    assert match_library(full, image, drop_partial=True)[2] is full


@needs_usgs
@needs_avng
def test_whole_splib07_library_is_compared_on_the_real_tile():
    """SAM's default (every spectrum) on splib07: its 871 part-range records left the other spectra no band in
    common with them ('does not overlap the image's good bands'); now they are left out and 1,586 spectra are
    compared on 354 bands."""
    from oremap.core.hyperspectral.mapping import image_band_info, match_library

    bands, refs, kept = match_library(read_library(USGS), image_band_info(str(AVNG)), drop_partial=True)
    assert refs.shape == (1586, 354) and len(bands) == 354 and len(kept.names) == 1586
    assert np.isfinite(refs).all()
    # a full-range laboratory record stays, a record of the near-infrared spectrometer alone (NIC4) goes
    assert "Kaolinite CM9 BECKb AREF" in kept.names and "Actinolite HS22.3B NIC4bbb RREF" not in kept.names


def test_csv_library_of_deleted_channels_in_per_cent(tmp_path):
    """A CSV or text library as splib07's ASCII columns paste: -1.23e34 for a deleted channel (read as a value, it
    made SAM never pick that mineral and unmixing give 0.25 everywhere) is missing; values in per cent are divided
    to 0-1 (strict unmixing took them as they were); both said in the log."""
    from oremap.core.hyperspectral.spectral_library import read_library

    text = "Wavelength (microns)\tKaolinite\tCalcite\n" + "".join(
        f"{w:.3f}\t{k}\t{c}\n" for w, k, c in ((0.40, "45.0", "60.5"), (0.50, "-1.23e34", "62.0"),
                                             (0.60, "55.5", "64.0"), (0.70, "58.0", "-1.23e+34")))
    path = tmp_path / "splib_columns.txt"
    path.write_text(text)
    log = core_warnings()
    lib = read_library(path, feedback=log)
    np.testing.assert_allclose(lib.wavelengths, [400.0, 500.0, 600.0, 700.0])
    np.testing.assert_allclose(lib.spectra, [[0.45, np.nan, 0.555, 0.58], [0.605, 0.62, 0.64, np.nan]])
    assert "splib_columns.txt: 2 values of magnitude above 1e+20 (deleted channels, such as USGS's -1.23e34) set " \
           "to missing." in log.infos
    assert "Spectral library 'splib_columns.txt': 99 % of its values lie below 63.9, read as per cent: divided by " \
           "100 to reflectance of 0-1." in log.infos


def test_a_name_two_spectra_share_is_a_library_fix():
    """Two spectra of one name: no name typed in SPECTRA can pick one, so the fix is the library's."""
    lib = SpectralLibrary(["Kaolinite CM9", "Kaolinite CM9", "Calcite"], np.full((3, 3), 0.3), [500.0, 600.0, 700.0])
    with pytest.raises(OreMapError) as err:
        lib.subset(["Kaolinite CM9"])
    assert err.value.parameter == "library" and "share the name 'Kaolinite CM9'" in err.value.message


def test_csv_with_one_spectrum_per_row_and_numeric_sample_ids(tmp_path):
    """'Sample ID,383.15,...' with rows '1001,...' (a soil library's export): the header's cells are wavelengths and
    the first column is named as IDs, so rows are spectra. It was read sideways: spectra named '383.15', ... on the
    'wavelengths' 1001-1003 nm. A table whose first column is the wavelength stays as it is."""
    (tmp_path / "ids.csv").write_text("Sample ID,450,550,650,750\n1001,0.1,0.2,0.3,0.4\n1002,0.5,0.6,0.7,0.8\n"
                                      "1003,0.2,0.2,0.2,0.2\n")
    lib = read_library(tmp_path / "ids.csv")
    assert lib.names == ["1001", "1002", "1003"]
    np.testing.assert_allclose(lib.wavelengths, [450.0, 550.0, 650.0, 750.0])
    np.testing.assert_allclose(lib.spectra[1], [0.5, 0.6, 0.7, 0.8])
    (tmp_path / "cols.csv").write_text("Wavelength (nm),1001,1002\n450,0.1,0.5\n550,0.2,0.6\n650,0.3,0.7\n")
    cols = read_library(tmp_path / "cols.csv")
    assert cols.names == ["1001", "1002"] and cols.wavelengths.tolist() == [450.0, 550.0, 650.0]


def test_a_class_table_row_takes_field_names_that_begin_with_it_and_a_separator():
    """Field-campaign names such as 'kaol_00001' were taken by no row 'kaol' (only 'kaol ' followed by a space),
    though the help says a row takes the names that begin with it. A separator or a digit must follow: 'kaol'
    does not take 'kaolinite', 'Muscovite GDS107' does not take 'Muscovite GDS1070'; the longest row wins."""
    from oremap.core.hyperspectral.training import ClassTable

    table = ClassTable({"kaol": "Kaolinite", "kaol_0002": "Dickite", "Muscovite GDS107": "White mica"})
    assert [table.label(n) for n in ("kaol_00001", "kaol-3", "kaol.7", "kaol00009", "KAOL", "kaol_0002.1",
                                     "kaolinite", "Muscovite GDS107 BECKa AREF", "Muscovite GDS1070 BECKa")] == \
        ["Kaolinite", "Kaolinite", "Kaolinite", "Kaolinite", "Kaolinite", "Dickite", None, "White mica", None]


def test_libraries_without_a_common_range_are_blamed_with_their_ranges(tmp_path):
    """A VNIR-only and a SWIR-only library: the error blamed WAVELENGTHS (left empty; the target came from REFERENCE)
    after a warning of an inverted range ('limited to 1302-1067 nm'). The libraries are at fault, each range said."""
    from oremap.core.engine.wavelengths import BandInfo
    from oremap.core.hyperspectral.training import library_training_set

    for name, lo, hi in (("vnir.csv", 400, 1000), ("swir.csv", 1300, 2500)):
        (tmp_path / name).write_text("Wavelength (nm),Mineral\n" + "".join(f"{w},0.3\n" for w in range(lo, hi + 1, 50)))
    log = core_warnings()
    with pytest.raises(OreMapError) as err:
        library_training_set([tmp_path / "vnir.csv", tmp_path / "swir.csv"],
                             BandInfo(centers=np.arange(400.0, 2501.0, 10.0), fwhm=None, bad=None), feedback=log)
    assert err.value.parameter == "libraries"
    assert "cover no common wavelength range: vnir.csv 400-1000 nm, swir.csv 1300-2500 nm" in err.value.message
    assert log.warnings == []


def test_csv_of_wavenumbers_is_refused_as_the_headed_reader_refuses_it(tmp_path):
    """An FTIR export 'Wavenumber (cm-1),...' was read as nanometres (4000 cm-1 as 4000 nm)."""
    (tmp_path / "ftir.csv").write_text("Wavenumber (cm-1),Quartz\n4000,0.2\n3000,0.3\n2000,0.4\n")
    with pytest.raises(OreMapError) as err:
        read_library(tmp_path / "ftir.csv")
    assert err.value.parameter == "library" and "gives wavenumbers (Wavenumber (cm-1))" in err.value.message
    assert "10^7 / wavenumber" in err.value.fix


def test_utf16_text_is_read_and_a_table_without_a_names_row_refused(tmp_path):
    """Excel's 'Unicode Text' (UTF-16 with a byte-order mark, and UTF-16 without one) was refused as 'wavelength
    ' ' is not a number'. A table without a names row lost its first channel and was named by a reflectance."""
    table = "Wavelength\tKaolinite CM9\r\n450\t0.5\r\n550\t0.6\r\n650\t0.7\r\n"
    for name, raw in (("bom.txt", b"\xff\xfe" + table.encode("utf-16-le")), ("be.txt", table.encode("utf-16-be")),
                      ("utf32.txt", table.encode("utf-32"))):
        (tmp_path / name).write_bytes(raw)
        lib = read_library(tmp_path / name)
        assert lib.names == ["Kaolinite CM9"] and lib.wavelengths.tolist() == [450.0, 550.0, 650.0], name
        np.testing.assert_allclose(lib.spectra[0], [0.5, 0.6, 0.7])
    (tmp_path / "headerless.txt").write_text("450\t0.5\n550\t0.6\n650\t0.7\n")
    with pytest.raises(OreMapError) as err:
        read_library(tmp_path / "headerless.txt")
    assert err.value.parameter == "library" and "has no names row: its first row (450, 0.5) is numbers" in \
        err.value.message


def test_a_csv_library_with_a_blank_top_left_cell_reads_one_spectrum_a_row(tmp_path):
    """pandas writes a table indexed by spectrum name with a blank first cell (',450,550,...'): refused as having 'no
    names row'. It reads as the same table with 'Name' in that cell."""
    from oremap.core.hyperspectral.spectral_library import read_library

    rows = ["kaolinite,0.61,0.72,0.55,0.40", "alunite,0.50,0.66,0.70,0.31"]
    blank, named = tmp_path / "pandas.csv", tmp_path / "named.csv"
    blank.write_text(",450,550,650,750\n" + "\n".join(rows) + "\n")
    named.write_text("Name,450,550,650,750\n" + "\n".join(rows) + "\n")
    a, b = read_library(str(blank)), read_library(str(named))
    assert a.names == b.names == ["kaolinite", "alunite"]
    np.testing.assert_array_equal(a.wavelengths, [450, 550, 650, 750])
    np.testing.assert_array_equal(a.spectra, [[0.61, 0.72, 0.55, 0.40], [0.50, 0.66, 0.70, 0.31]])
    # pandas' default index (0, 1, ...) under the blank cell names nothing: refused as before, not read as 4
    # 'spectra' named by the wavelengths with the index taken for micrometres
    numbered = tmp_path / "numbered.csv"
    numbered.write_text(",450,550,650,750\n0,0.61,0.72,0.55,0.40\n1,0.50,0.66,0.70,0.31\n")
    with pytest.raises(OreMapError, match="has no names row"):
        read_library(str(numbered))
    # a first cell holding ':' heads a CSV, decimal commas and all (it was taken for a spectrometer's header)
    colon = tmp_path / "colon.csv"
    colon.write_text("Wavelength: nm;Kaolinite;Alunite\n450;0,10;0,30\n550;0,20;0,40\n650;0,25;0,45\n")
    c = read_library(str(colon))
    assert c.names == ["Kaolinite", "Alunite"]
    np.testing.assert_allclose(c.spectra, [[0.10, 0.20, 0.25], [0.30, 0.40, 0.45]])
