"""Bad bands of images found without a bbl (core/engine/bad_bands.py), on real AVIRIS-NG and AVIRIS scenes."""

import os

import numpy as np
import pytest
import rasterio

from conftest import AVIRIS_NG, AVIRIS_NG_2
from oremap.core.engine import bad_bands
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.wavelengths import band_info_from_raster, band_tags
from oremap.core.hyperspectral import mapping

JASPER = AVIRIS_NG.replace("ang20150420t182808_corr_v1e_img_4200-4210_70-80.img", "jasper_ridge_40x40.tif")


def geotiff_copy(src_path, path, change=None):
    """The ENVI tile as a float32 GeoTIFF with wavelength band metadata and no bbl; ``change(cube)`` may edit it."""
    with rasterio.open(src_path) as src:
        cube = src.read().astype(np.float32)
        info = band_info_from_raster(src)
    if change is not None:
        change(cube)
    with rasterio.open(path, "w", driver="GTiff", width=cube.shape[2], height=cube.shape[1], count=cube.shape[0],
                       dtype="float32") as dst:
        dst.write(cube)
        for b, tags in enumerate(band_tags(info), start=1):
            dst.update_tags(b, **tags)
    return info


@pytest.mark.parametrize("cube, negative_nm", [(AVIRIS_NG, [381, 386, 391, 401]), (AVIRIS_NG_2, [381])])
def test_geotiff_without_bbl_gives_the_bbl_good_bands(tmp_path, cube, negative_nm):
    """Tolerance: the GeoTIFF's good bands equal those of the ENVI bbl except at most 5 bands, all within
    30 nm of a range the bbl flags, and only bands the scene shows bad (negative median reflectance)."""
    path = str(tmp_path / "tile.tif")
    envi = geotiff_copy(cube, path)
    assert envi.bad.sum() == 59  # 346-376, 1348-1428, 1779-1949 nm
    with rasterio.open(path) as ds:
        assert band_info_from_raster(ds).bad.sum() == 0  # nothing in the GeoTIFF says which bands are bad
    info = mapping.image_band_info(path)
    differ = np.flatnonzero(info.bad != envi.bad)
    assert differ.size <= 5
    assert np.all(info.bad[differ])  # every bbl band is dropped; the extra ones are ...
    assert np.min(np.abs(envi.centers[envi.bad][None, :] - envi.centers[differ][:, None]), axis=1).max() <= 30
    assert np.round(envi.centers[differ]).astype(int).tolist() == negative_nm  # ... negative in this scene
    with rasterio.open(cube) as ds:
        data = ds.read().reshape(ds.count, -1).T
    data = data[data.max(axis=1) > data.min(axis=1)]  # not the fill outside the footprint
    assert np.all(np.median(data[:, differ], axis=0) < 0)
    # the ENVI file: the bbl and the same detection
    assert np.array_equal(mapping.image_band_info(cube).bad, info.bad)
    # 'off' leaves the bbl alone; the GeoTIFF then has no bad band
    assert np.array_equal(mapping.image_band_info(cube, bad_bands="off").bad, envi.bad)
    assert mapping.image_band_info(path, bad_bands="off").bad.sum() == 0


def test_planted_constant_and_noisy_bands_are_dropped(tmp_path):
    """Real AVIRIS-NG tile as GeoTIFF with a constant band (a format's fill) and a band with sensor noise of
    0.02 reflectance (about 15x the band-to-band noise of its neighbours)."""
    rng = np.random.default_rng(0)

    def plant(cube):  # inside the footprint: the fill outside it (one value in every band) stays fill
        inside = cube.max(axis=0) > cube.min(axis=0)
        cube[99][inside] = 0.0
        cube[149][inside] += rng.normal(0.0, 0.02, int(inside.sum())).astype(np.float32)
        cube[249][inside] = 0.25

    path = str(tmp_path / "planted.tif")
    geotiff_copy(AVIRIS_NG_2, path, plant)
    clean = str(tmp_path / "clean.tif")
    geotiff_copy(AVIRIS_NG_2, clean)
    from conftest import core_warnings

    log = core_warnings()
    info = mapping.image_band_info(path, feedback=log)
    lines = log.infos
    before = mapping.image_band_info(clean)
    assert np.flatnonzero(info.bad != before.bad).tolist() == [99, 149, 249]
    assert any(line.strip().startswith("2 bands constant or missing in most pixels: 100 (") and "250 (" in line
               for line in lines)
    assert any("1 bands band-to-band noise far above" in line and ": 150 (" in line for line in lines)
    # the user keeps one back and drops another
    kept = mapping.image_band_info(path, bad_bands="keep band 150; drop 2450-2510 nm")
    assert not kept.bad[149] and kept.bad[99]
    assert np.array_equal(np.flatnonzero(kept.bad & ~info.bad), np.flatnonzero(kept.centers >= 2449.5))
    # (2449.9 nm, shown as 2450, is in the range)


def test_clean_scene_and_jasper_ridge_lose_only_the_water_windows():
    """Jasper Ridge (AVIRIS, its published 198 bands in channel order): nothing but the edges of the removed
    water windows and the edge bands where AVIRIS's spectrometers overlap (channels 31-34 near 675 nm and
    96-97 near 1260 nm: 677.17, 687.00 | 664.30, 673.87 and 1268.99 | 1252.36 nm)."""
    info = mapping.image_band_info(JASPER)
    water = np.any([(info.centers >= lo) & (info.centers <= hi) for lo, hi in bad_bands.WATER_WINDOWS], axis=0)
    overlap = np.array([r == "overlap" for r in info.bad_reason])
    assert np.array_equal(np.flatnonzero(overlap), [27, 28, 29, 30, 92, 93])
    np.testing.assert_allclose(info.centers[overlap], [677.17, 687.0, 664.3, 673.87, 1268.99, 1252.36], atol=0.01)
    assert np.array_equal(info.bad, water | overlap)
    assert water.sum() == 8


def test_noise_estimate_of_white_noise():
    """The band-to-band noise of a smooth spectrum plus white noise of sd 0.01 is 0.01 (within 5 %)."""
    rng = np.random.default_rng(1)
    wl = np.linspace(400, 2500, 200)
    smooth = 0.3 + 0.1 * np.sin(wl / 300.0)
    values = smooth[None, :] * rng.uniform(0.5, 1.5, (4000, 1)) + rng.normal(0, 0.01, (4000, 200))
    noise = bad_bands.band_noise(values, wl)
    np.testing.assert_allclose(np.median(noise), 0.01, rtol=0.05)


def test_parse_bad_bands():
    choice = bad_bands.parse_bad_bands("keep 381-401 nm; drop 2.45-2.51 um\ndrop bands 1-5; band 9; off")
    assert not choice.auto
    assert choice.keep == [("nm", 381.0, 401.0)]
    assert choice.drop == [("nm", 2450.0, 2510.0), ("band", 1.0, 5.0), ("band", 9.0, 9.0)]
    assert bad_bands.parse_bad_bands("").auto and bad_bands.parse_bad_bands(None).auto
    for wrong in ("keep 381-401", "drop bands 1.5", "everything"):
        with pytest.raises(OreMapError) as err:
            bad_bands.parse_bad_bands(wrong)
        assert err.value.parameter == "bad_bands"
    with pytest.raises(OreMapError, match="has 3 bands"):
        bad_bands.detect_bad_bands(np.ones((10, 3)), choice="drop bands 2-4")


def test_a_mineral_feature_in_some_pixels_is_not_noise(tmp_path):
    """The PRISMA L2D fixture (rows of real USGS minerals, test/sensor_fixtures.py): calcite's 2340 nm band and
    its neighbours spread the band-to-band residual over the pixels as noise would, since a quarter of the rows
    hold calcite. Their residuals rise and fall together, so they are kept (the CNN needs them to tell calcite
    from quartz-feldspar); the noisy bands at the edge of the 1400 nm water window are still dropped."""
    import sensor_fixtures as sf

    from oremap.core.hyperspectral import sensor_products

    fx = sf.make_prisma(str(tmp_path))
    tif = sensor_products.prepare_input(fx["path"], str(tmp_path))
    info = mapping.image_band_info(tif)
    calcite = (info.centers > 2300) & (info.centers < 2400)
    assert calcite.sum() >= 10 and info.bad[calcite].sum() == 0
    edge = (info.centers > 1425) & (info.centers < 1445)
    assert info.bad[edge].all()


def test_a_models_own_bands_flagged_by_this_scene_are_read_not_interpolated():
    """A model trained with the 4 bands of 381-401 nm kept (BAD_BANDS 'keep 381-401 nm', the help's example, which
    takes the band at 401.39 nm the log calls 401 nm) is applied to its own
    tile, whose statistics flag them (negative median): they are read as they are, with a warning, instead of
    being interpolated from good bands (the first model band extrapolated from 396 nm up). Bands the bbl flags stay
    out, and the model's bands on them are said to be interpolated."""
    from types import SimpleNamespace

    from conftest import core_warnings

    found = mapping.image_band_info(AVIRIS_NG)
    kept = mapping.image_band_info(AVIRIS_NG, bad_bands="keep 381-401 nm")
    negative = np.flatnonzero(found.bad & ~kept.bad)
    assert (negative + 1).tolist() == [8, 9, 10, 12] and {found.bad_reason[i] for i in negative} == {"negative"}
    # the recorded training source decides; models saved before it was recorded are told by the feature check
    assert mapping.trained_on_image(SimpleNamespace(training={"source": "image", "parameters": {}}, extra={}))
    assert not mapping.trained_on_image(SimpleNamespace(training={"source": "library",
                                                                   "parameters": {"feature_check": True}}, extra={}))
    assert not mapping.trained_on_image(SimpleNamespace(training={"parameters": {"feature_check": False}}, extra={}))
    image_trained = {"parameters": {"feature_check": True}}  # a CNN trained on labelled pixels
    model = SimpleNamespace(wavelengths=kept.centers[kept.good].tolist(), fwhm=None, training=image_trained, extra={})
    log = core_warnings()
    bands, matrix = mapping.model_input(AVIRIS_NG, model, found, log)
    assert bands == [int(i) + 1 for i in np.flatnonzero(kept.good)] and matrix is None  # the model's bands as they are
    assert log.warnings == ["4 of the model's bands are flagged bad in this scene (negative scene median: 381.4, "
                            "386.4, 391.4, 401.4 nm): they are read as they are, since the model was trained on "
                            "them. If they are noise in this scene, drop them with the bad-band parameter (they are "
                            "then interpolated) or retrain without them."]
    # a model that also lists two bbl bands (1393 and 1398 nm): those stay out, interpolated, and the log says so
    water = [i for i in np.flatnonzero(found.bad) if found.bad_reason[i] == "bbl"][16:18]
    model = SimpleNamespace(wavelengths=sorted(model.wavelengths + found.centers[water].tolist()), fwhm=None,
                            training=image_trained, extra={})
    log = core_warnings()
    bands, matrix = mapping.model_input(AVIRIS_NG, model, found, log)
    assert matrix is not None and len(bands) == len(model.wavelengths) - 2
    assert log.warnings[1] == ("2 of the model's bands are left out in this raster (1393.1, 1398.1 nm): they are "
                               "interpolated from the neighbouring good bands.")
    # following the warning's advice works: dropped by the user, scene-flagged bands are interpolated
    dropped = mapping.image_band_info(AVIRIS_NG, bad_bands="drop 386-391 nm")
    assert [dropped.bad_reason[i] for i in negative] == ["negative", "user", "user", "negative"]
    model = SimpleNamespace(wavelengths=kept.centers[kept.good].tolist(), fwhm=None, training=image_trained, extra={})
    log = core_warnings()
    bands, matrix = mapping.model_input(AVIRIS_NG, model, dropped, log)
    assert matrix is not None and bands[:3] == [8, 11, 12]
    assert log.warnings[1] == ("2 of the model's bands are left out in this raster (386.4, 391.4 nm): they are "
                               "interpolated from the neighbouring good bands.")
    # a model trained on library spectra lists a sensor's bands, not a scene's good ones: only the bands below
    # the scene's first good band (396 nm), which nothing could be interpolated from, are read; 401 nm is
    # interpolated
    library = SimpleNamespace(wavelengths=model.wavelengths, fwhm=None, training={"parameters": {}}, extra={})
    log = core_warnings()
    bands, matrix = mapping.model_input(AVIRIS_NG, library, found, log)
    assert matrix is not None and bands[:5] == [8, 9, 10, 11, 13]
    assert log.warnings[0].startswith("3 of the model's bands are flagged bad in this scene (negative scene median: "
                                      "381.4, 386.4, 391.4 nm): they are read as they are, since no good band")


def test_absorption_features_of_a_noise_free_scene_are_not_noise():
    """Library spectra at AVIRIS-Classic and EnMAP bands, four minerals at brightness 0.85-1.05 and no noise (as
    the sensor-product fixtures, or a library resampled into an image): with no noise to compare with, the
    neighbour test alone took the Al-OH and carbonate features (AVIRIS-Classic 2200-2220 nm, EnMAP 2200 and
    2340 nm) for noise; the residuals of the bands 2-6 away explain them, and they are kept. A band of white
    noise planted among them is still dropped."""
    from oremap.core.hyperspectral.sensor_presets import band_info as preset_info
    from oremap.core.hyperspectral.spectral_library import read_library
    from oremap.core.engine.wavelengths import resample_spectra

    from conftest import DATA

    lib = read_library(os.path.join(DATA, "usgs_minerals.sli")).subset(
        ["Kaolinite CM9", "Alunite GDS84", "Calcite WS272", "Muscovite GDS107"])
    rng = np.random.default_rng(0)
    for sensor in ("AVIRIS-Classic", "EnMAP"):
        info = preset_info(sensor)
        minerals = np.nan_to_num(resample_spectra(lib.spectra, lib.wavelengths, info), nan=0.05)
        cube = minerals[rng.integers(4, size=400)] * rng.uniform(0.85, 1.05, (400, 1))
        features = np.flatnonzero((info.centers > 2150) & (info.centers < 2360))
        found = bad_bands.detect_bad_bands(cube, info.centers)
        assert not (found.bad[features] & (np.array(found.reason)[features] == "noisy")).any(), sensor
        noisy = cube.copy()
        band = int(np.argmin(np.abs(info.centers - 1600)))
        noisy[:, band] += rng.normal(0, 0.05, 400)
        found = bad_bands.detect_bad_bands(noisy, info.centers)
        assert found.bad[band] and found.reason[band] == "noisy", sensor


def test_model_bands_of_another_grid_built_from_other_bands_are_named():
    """A 10 nm library model on a 5 nm scene whose first bands (381-401 nm) are negative: its 400 nm input was
    resampled from 406 nm on without a word (only 'Bad bands: 63 of 432 left out'), and 2-13 % of the classes moved
    against earlier versions. The model bands whose neighbours are left out are now named."""
    from conftest import core_warnings
    from oremap.core.engine.wavelengths import BandInfo
    from oremap.core.hyperspectral.mapping import keep_model_bands

    centers = np.arange(381.0, 501.0, 5.0)
    bad = centers <= 401.0
    info = BandInfo(centers=centers, fwhm=np.full(centers.size, 5.5), bad=bad,
                    bad_reason=["negative" if b else "" for b in bad])
    log = core_warnings()
    keep_model_bands(info, np.arange(400.0, 501.0, 10.0), log, edges_only=True)
    assert log.warnings == ["1 of the model's bands lie where this raster's bands are left out (400.0 nm): they are "
                            "resampled from the nearest good bands."]
    log = core_warnings()
    keep_model_bands(info, np.arange(410.0, 501.0, 10.0), log, edges_only=True)
    assert log.warnings == []


def test_an_alpha_band_is_no_band_with_detection_off(tmp_path):
    """With BAD_BANDS 'off' the band list was sized by every band of the file, the alpha band included: with
    wavelengths a refusal naming WAVELENGTHS ('13 bad-band flags were given for 12 bands'), without them the alpha
    band's 255 read as reflectance."""
    from oremap.core.engine.wavelengths import BandInfo

    path = str(tmp_path / "alpha.tif")
    centres = np.linspace(500.0, 1100.0, 12)
    cube = np.random.default_rng(0).uniform(0.1, 0.5, (12, 6, 6)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=6, height=6, count=13, dtype="float32",
                       crs="EPSG:32633", transform=rasterio.Affine(30, 0, 500000, 0, -30, 4000000)) as ds:
        ds.write(cube, indexes=list(range(1, 13)))
        ds.write(np.full((6, 6), 255, np.float32), 13)
        ds.colorinterp = [rasterio.enums.ColorInterp.gray] * 12 + [rasterio.enums.ColorInterp.alpha]
        for i, tags in enumerate(band_tags(BandInfo(centers=centres, fwhm=None, bad=None)), start=1):
            ds.update_tags(i, **tags)
    info = mapping.image_band_info(path, bad_bands="off")
    assert info.n_bands == 12 and not info.bad.any()
    assert list(mapping.good_band_numbers(path, None, "off")) == list(range(1, 13))


def test_jasper_ridge_with_its_bands_in_file_name_order_loses_only_the_water_windows(tmp_path):
    """Jasper Ridge with its bands, wavelengths and all, stored in the order per-band files are listed (b1, b10,
    b100, ..., b109, b11, b110, ..., b2): every drop in wavelength was taken for the edge of a detector and the
    'overlapping detectors' (bands 1-12 and 13-23 at 509.9-1451.6 nm, ...) cut away 178 of the 198 bands. Such an
    order is sorted: the 8 bands of the water windows go, as in channel order; the 6 edge bands of AVIRIS's
    spectrometers stay (once the channel order is lost nothing tells which detector a band is from)."""
    with rasterio.open(JASPER) as src:
        cube = src.read()
        tags = [{k: v for k, v in src.tags(b).items() if not k.startswith("STATISTICS")}
                for b in range(1, src.count + 1)]
        profile = dict(src.profile, tiled=False)
    order = sorted(range(len(tags)), key=lambda i: str(i + 1))
    path = str(tmp_path / "jasper_b1_b10_b100.tif")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(cube[order])
        for b, i in enumerate(order, start=1):
            dst.update_tags(b, **tags[i])
    from conftest import core_warnings

    log = core_warnings()
    info = mapping.image_band_info(path, feedback=log)
    water = np.any([(info.centers >= lo) & (info.centers <= hi) for lo, hi in bad_bands.WATER_WINDOWS], axis=0)
    assert water.sum() == 8 and np.array_equal(info.bad, water)
    assert not any("two detectors" in line for line in log.infos + log.warnings)
    assert any("not listed detector by detector" in line for line in log.infos + log.warnings)


def test_noisy_band_found_whatever_the_band_order():
    """Band-to-band noise compares a band with its neighbours in wavelength, not in the file: with the bands
    shuffled, the noise of each band and the one noisy band found are those of the bands in wavelength order."""
    rng = np.random.default_rng(3)
    wl = np.linspace(400.0, 1300.0, 100)
    values = (0.3 + 0.1 * np.sin(wl / 150.0))[None, :] * rng.uniform(0.5, 1.5, (3000, 1))
    values = values + rng.normal(0.0, 0.002, values.shape)
    values[:, 60] += rng.normal(0.0, 0.03, 3000)   # one band with 15 times the noise of the others
    order = rng.permutation(wl.size)
    np.testing.assert_allclose(bad_bands.band_noise(values[:, order], wl[order]),
                               bad_bands.band_noise(values, wl)[order])
    found = bad_bands.detect_bad_bands(values[:, order], wl[order])
    assert order[found.bad].tolist() == [60] and found.reason[int(np.flatnonzero(order == 60)[0])] == "noisy"


def test_a_wavelength_range_outside_the_raster_is_refused_not_ignored():
    # micrometres written as nm ('2450-2510 um' is 2.45e6 nm) or another sensor's range named no band and did nothing
    centers = np.linspace(400.0, 2500.0, 50)
    for choice, said in (("drop 2450-2510 um", "'drop 2450000-2510000 nm' lies outside the raster's bands (400-2500"),
                         ("keep 3000-3100 nm", "'keep 3000-3100 nm' lies outside")):
        with pytest.raises(OreMapError) as err:
            bad_bands.detect_bad_bands(np.ones((10, 50)), centers, choice=choice)
        assert err.value.parameter == "bad_bands" and said in err.value.message
    found = bad_bands.detect_bad_bands(np.ones((10, 50)), centers, choice="off; drop 2450-2510 nm")
    assert found.bad.sum() == 2 and found.bad[-2:].all()   # 2457 and 2500 nm; a range at the edge still works
