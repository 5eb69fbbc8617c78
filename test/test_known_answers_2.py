"""Known answers for science code whose results no other test pinned (second mutation round of the 2026-12-07 audit).

Each test checks values computed independently of OreMap (by hand, from a formula, a product specification or the
documented contract), in a scenario where a plausible slip in the code changes what the user sees. No QGIS.
"""

import math

import numpy as np
import pytest

from oremap.core.engine import map_scale
from oremap.core.engine.class_order import sorted_class_names
from oremap.core.engine.envi_header import parse_envi_header
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.model_format import ModelInfo, required_features


# -- core.engine ---------------------------------------------------------------------------------------------------

def test_envi_header_keys_get_single_spaces(tmp_path):
    """Keys are lower-cased with single spaces (the parser's contract): a header written with a tab or two spaces
    inside a key still gives its wavelength units and nodata value."""
    path = tmp_path / "scene.hdr"
    path.write_text("ENVI\nsamples = 2\nwavelength\tunits = Micrometers\ndata  ignore value = -9999\n"
                    "wavelength = {0.45, 0.55}\n")
    header = parse_envi_header(path)
    assert header["wavelength units"] == "Micrometers"
    assert header["data ignore value"] == "-9999"
    assert header["wavelength"] == ["0.45", "0.55"]


def test_class_names_sort_case_insensitively():
    """Class codes follow the names case-insensitively (module contract): 'alunite' before 'Calcite' before
    'kaolinite', whatever their capitals (plain text order would put 'Calcite' first)."""
    assert sorted_class_names(["kaolinite", "Calcite", "alunite", "Calcite"]) == ["alunite", "Calcite", "kaolinite"]


def test_two_classes_of_one_mineral_get_distinct_colours():
    """Two classes named after one mineral: the first gets the mineral's colour, the second the palette's first
    colour far enough from it (red against kaolinite's blue), never the same colour twice."""
    from oremap.core.engine.colors import MINERAL_COLOURS, PALETTE, class_colours

    colours = class_colours(["Kaolinite CM9", "Kaolinite KGa-1"])
    assert colours[0] == MINERAL_COLOURS["kaolinite"] == (31, 120, 180)
    assert colours[1] == PALETTE[0] == (228, 26, 28)


def test_scale_error_of_sinusoidal_uses_the_meridian_scale():
    """On a sinusoidal grid (MODIS) the parallel scale is exactly 1 and only the meridional scale is off: at 40 E,
    50 N on the sphere it is sqrt(1 + (lambda sin phi)^2) (Snyder 1987, sinusoidal projection), 13.4 % off."""
    import pyproj

    crs = pyproj.CRS.from_proj4("+proj=sinu +lon_0=0 +R=6371007.181 +units=m +no_defs")
    lon, lat = 40.0, 50.0
    x, y = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True).transform(lon, lat)
    h = math.sqrt(1.0 + (math.radians(lon) * math.sin(math.radians(lat))) ** 2)
    assert map_scale.scale_error(crs, [x], [y]) == pytest.approx(h - 1.0, rel=1e-6)
    assert h - 1.0 == pytest.approx(0.1340, abs=1e-4)


def test_a_model_trained_on_untransformed_grids_requires_the_transform_check():
    """FEATURES['input_transform_check'] guards both ways ('concentrations for a log10 model, or the reverse'):
    a model that records input_transform 'none' is written as schema 2 requiring the check, so an older OreMap
    refuses it instead of scoring a log10 grid with it."""
    info = ModelInfo(task="geochemical_anomaly", classes=[{"name": "score", "color": "#ff0000"}],
                     input={"name": "X", "n_bands": 3},
                     preprocessing={"method": "zscore", "input_transform": "none"})
    assert required_features(info) == ["input_transform_check"]
    data = info.to_dict()
    assert data["schema_version"] == 2 and data["requires"] == ["input_transform_check"]


# -- core.hyperspectral --------------------------------------------------------------------------------------------

def test_splib07_spectrum_refuses_two_wavelength_files_that_fit_equally(tmp_path):
    """Two wavelength files of as many values, neither closer to the spectrum's name: the reader refuses rather
    than take one of them silently (the two give different wavelengths)."""
    from oremap.core.hyperspectral.spectrometer_files import read_splib_ascii

    n = 6
    path = tmp_path / "s07AV95a_Kaolinite_CM9_BECKb_AREF.txt"
    path.write_text("s07_AV95 Record=100: Kaolinite CM9 BECKb AREF\n" + "\n".join(["0.5"] * n) + "\n")
    for tag, start in (("ONE", 0.40), ("TWO", 2.00)):
        (tmp_path / f"s07AV95a_Wavelengths_{tag}.txt").write_text(
            f"s07_AV95 Record=1: Wavelengths {tag}\n" + "\n".join(f"{start + 0.01 * i:.3f}" for i in range(n)) + "\n")
    with pytest.raises(OreMapError) as err:
        read_splib_ascii(path)
    assert err.value.parameter == "library" and "fit it equally" in str(err.value)



def test_splib07_bandpasses_in_micrometres_become_nanometres(tmp_path):
    """A splib07 spectrum whose wavelength and bandpass files are in micrometres: both come back in nanometres
    (0.010 um bandpass = 10 nm), so convolving it to a sensor uses 10 nm, not 0.01 nm."""
    from oremap.core.hyperspectral.spectrometer_files import read_splib_ascii

    n = 5
    path = tmp_path / "s07AV95a_Kaolinite_CM9_BECKb_AREF.txt"
    path.write_text("s07_AV95 Record=100: Kaolinite CM9 BECKb AREF\n" + "\n".join(["0.5"] * n) + "\n")
    (tmp_path / "s07AV95a_Wavelengths_BECK_microns.txt").write_text(
        "s07_AV95 Record=1: Wavelengths BECK\n" + "\n".join(f"{0.400 + 0.1 * i:.3f}" for i in range(n)) + "\n")
    (tmp_path / "s07AV95a_Bandpass_BECK_microns.txt").write_text(
        "s07_AV95 Record=2: Bandpass BECK\n" + "\n".join(f"{0.010 + 0.002 * i:.3f}" for i in range(n)) + "\n")
    library = read_splib_ascii(path)
    np.testing.assert_allclose(library.wavelengths, [400.0, 500.0, 600.0, 700.0, 800.0])
    np.testing.assert_allclose(library.fwhm, [10.0, 12.0, 14.0, 16.0, 18.0])


def test_svc_sig_reflectance_column_is_per_cent(tmp_path):
    """An SVC .sig file (wavelength, reference and target radiance, reflectance in per cent, no column names):
    45.00 in the last column is a reflectance of 0.45, read so by the file reader itself, whatever the values'
    magnitude (a dark target of 1.20 % is 0.012, not 1.2)."""
    from oremap.core.hyperspectral.spectrometer_files import read_headed_text

    path = tmp_path / "HR.000_0001.sig"
    path.write_text("/*** Spectra Vista SIG Data ***/\nname= HR.000_0001.sig\nunits= Radiance, Radiance\ndata= \n"
                    "400.0  3000.00  36.00  1.20\n500.0  3050.00  1372.50  45.00\n600.0  3100.00  1240.00  40.00\n")
    library = read_headed_text(path)
    np.testing.assert_allclose(library.wavelengths, [400.0, 500.0, 600.0])
    np.testing.assert_allclose(library.spectra[0], [0.012, 0.45, 0.40])


def test_envi_library_names_with_commas_read_back_one_name_per_spectrum(tmp_path):
    """ENVI lists cannot hold commas: a spectrum named 'Kaolinite, well crystallised' is written as 'Kaolinite;
    well crystallised' (the writer's contract), so the library reads back two names for its two spectra."""
    from oremap.core.hyperspectral.library_writers import write_envi_library
    from oremap.core.hyperspectral.spectral_library import SpectralLibrary, read_envi_library

    lib = SpectralLibrary(names=["Kaolinite, well crystallised", "Alunite {Na}"],
                          spectra=np.array([[0.5, 0.4, 0.6], [0.3, 0.35, 0.2]]),
                          wavelengths=np.array([500.0, 1000.0, 2200.0]), source="test")
    write_envi_library(lib, tmp_path / "lib.sli")
    back = read_envi_library(tmp_path / "lib.sli")
    assert back.names == ["Kaolinite; well crystallised", "Alunite (Na)"]
    np.testing.assert_allclose(back.spectra, lib.spectra, rtol=1e-6)


def test_emit_fill_value_reads_as_nan(tmp_path):
    """EMIT L2A RFL: reflectance equal to its _FillValue (-9999) is no value: the reader gives NaN there (swath
    pixel (0, 0) of the fixture, at map cell (6, 1)), the granule's reflectance elsewhere."""
    import sensor_fixtures as sf
    from oremap.core.hyperspectral import sensor_products

    fx = sf.make_emit(str(tmp_path), with_mask=False)
    product = sensor_products.open_product(fx["path"])
    try:
        block = product.read_rows(0, product.height)
    finally:
        product.close()
    assert block.shape[:2] == (8, 10)
    assert np.isnan(block[6, 1]).all()
    kept = [int(np.argmin(np.abs(fx["centers"] - c))) for c in product.band_info.centers]
    np.testing.assert_allclose(block[5, 1], fx["cube"][0, 1][kept], rtol=1e-6)   # swath line 0, sample 1



def test_sensor_preset_leaves_no_overlap_between_detectors():
    """EnMAP's VNIR detector reaches 993 nm and its SWIR detector starts at 902 nm: the preset's good bands are
    those of each detector's own range, every good VNIR band below every good SWIR band (as for PRISMA, the
    AVIRIS spectrometers and HyMap), so a model for the preset never sees interleaved detectors."""
    from oremap.core.hyperspectral import sensor_presets

    for name in ("EnMAP", "PRISMA", "AVIRIS-Classic", "HyMap"):
        preset = sensor_presets.preset(name)
        good = ~np.asarray(sensor_presets.band_info(name).bad, bool)
        detectors = np.array(preset.detectors)
        order = list(dict.fromkeys(detectors))
        for lower, upper in zip(order, order[1:]):
            assert preset.centers[good & (detectors == lower)].max() < preset.centers[good & (detectors == upper)].min()
    enmap = sensor_presets.preset("EnMAP")
    assert enmap.centers[np.array(enmap.detectors) == "VNIR"].max() > enmap.centers[np.array(enmap.detectors) == "SWIR"].min()


# -- core.geochemistry ---------------------------------------------------------------------------------------------

def test_below_detection_handling_is_kept_when_one_band_was_not_handled():
    """A raster whose first band was gridded by OreMap (survey conventions applied) and whose second was not:
    below-detection handling is still asked ('half'), since the second band's negative codes (-5 for '<5') are
    not values; the handled band holds positive concentrations, which the handling leaves as they are."""
    from oremap.core.geochemistry.grid_meaning import adapt_preprocessing

    meaning = [{"name": "Au", "transform": "none", "units": "ppb", "detection_applied": True},
               {"name": "As", "transform": "none", "units": "ppm", "detection_applied": False}]
    below, transform, _ = adapt_preprocessing(meaning, "half", "log10")
    assert (below, transform) == ("half", "log10")
    below, _, messages = adapt_preprocessing([dict(m, detection_applied=True) for m in meaning], "half", "log10")
    assert below == "none" and any("not again" in m for m in messages)


def test_element_stack_window_of_even_size_starts_half_a_window_above_its_centre():
    """A window of even size 4 centred on cell (2, 3) covers rows 0-3 and columns 1-4 (``r - size // 2`` on),
    the cells whose share of nodata the folds check (:func:`prospectivity_folds.nodata_fraction`): here the one
    NaN cell (row 0, column 1) lies inside it, 1/16 of the window."""
    from affine import Affine
    from oremap.core.geochemistry.prospectivity_data import ElementStack
    from oremap.core.geochemistry.prospectivity_folds import nodata_fraction

    grid = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    grid[0, 0, 1] = np.nan
    stack = ElementStack(data=np.pad(grid, ((0, 0), (2, 2), (2, 2)), constant_values=np.nan), pad=2,
                         names=["Cu"], transform=Affine.identity(), crs=None)
    window = stack.windows([2], [3], 4)
    expected = grid[0, 0:4, 1:5]
    np.testing.assert_array_equal(window[0, 0], expected)
    assert np.isnan(window).sum() == 1
    assert nodata_fraction(stack.valid, [2], [3], 4)[0] == pytest.approx(1.0 / 16.0)


def test_no_training_window_centre_lies_in_a_held_out_block():
    """Blocked cross-validation: a fold's held-out blocks give it no training window, shifted deposit copies
    included. Deposits one cell inside the west edge of each 20-cell block, 20 cells apart (beyond the 9 cells of
    window + crop margin): the 2-cell jitter shifts copies of a training deposit into the next block west, which
    is held out whenever it belongs to the other fold, far from that block's validation windows."""
    from affine import Affine
    from oremap.core.geochemistry.prospectivity_folds import plan_spatial_folds

    valid = np.ones((60, 60), dtype=bool)
    transform = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 60.0)
    cells = np.array([(r, c) for r in (10, 30, 50) for c in (1, 21, 41)], dtype=float) + 0.5
    xy = np.column_stack([cells[:, 1], 60.0 - cells[:, 0]])
    for seed in range(2):
        plan = plan_spatial_folds(valid, xy, transform, 8, n_folds=2, block_size=20.0, min_distance=15.0,
                                  negatives_per_positive=1, jitter_copies=30, seed=seed)
        bh, bw = plan.block_shape
        assert (bh, bw) == (20, 20) and plan.info["jitter"] == 2 and len(plan.folds) == 2
        for f, fold in enumerate(plan.folds):
            train = fold["train"]
            assert train.n_positive > 0
            assert not (plan.block_fold[train.rows // bh, train.cols // bw] == f).any()



def test_preset_lists_the_missing_pathfinders_not_only_the_commodity():
    """A survey with Au and As only: the gold preset's pathfinders it lacks are Ag, Sb, W, Bi, Te, Hg and Mo
    (its list from Eilu and Groves 2001 and practice), not nothing (the commodity, Au, is there)."""
    from oremap.core.geochemistry.pathfinders import preset_columns

    commodity, pathfinders, missing = preset_columns("Au", ["Au", "As"], ["Au_ppb", "As_ppm"])
    assert commodity == ["Au_ppb"] and pathfinders == ["Au_ppb", "As_ppm"]
    assert missing == ["Ag", "Sb", "W", "Bi", "Te", "Hg", "Mo"]



def test_a_deposit_just_off_the_rasters_north_west_corner_is_off_the_raster():
    """A deposit half a cell north of the raster's top edge (and one half a cell west of its left edge) lies on
    no cell: row -0.5 is row -1, not row 0 (truncation toward zero would put it on the raster)."""
    from affine import Affine
    from oremap.core.geochemistry.prospectivity_folds import deposit_cells

    transform = Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0)   # 10 m cells, top-left corner (1000, 5000)
    xy = [(1025.0, 5005.0), (995.0, 4975.0), (1025.0, 4975.0)]
    rows, cols, inside = deposit_cells(xy, transform, height=20, width=20)
    assert rows.tolist() == [-1, 2, 2] and cols.tolist() == [2, -1, 2]
    assert inside.tolist() == [False, False, True]


# -- core.sentinel2 ------------------------------------------------------------------------------------------------

def test_pixel_area_in_a_us_survey_foot_crs():
    """A 10 x 10 ft pixel of NAD83 / California zone 3 (ftUS, EPSG:2227, true to scale) is 100 ft2 =
    100 x 0.3048006096^2 m2 = 9.2903 m2 (the US survey foot is 1200/3937 m), not 100 x 0.3048 m2."""
    from affine import Affine
    from oremap.core.sentinel2.ground_units import GroundUnits

    transform = Affine(10.0, 0.0, 6000000.0, 0.0, -10.0, 2100000.0)
    units = GroundUnits(transform, "EPSG:2227", 100, 100)
    foot = 1200.0 / 3937.0
    np.testing.assert_allclose(units.row_pixel_area(0, 3), [100.0 * foot ** 2] * 3, rtol=1e-9)
    assert units.pixel_size_m(100, 100) == pytest.approx((10.0 * foot, 10.0 * foot), rel=1e-9)


def test_band_b10_is_refused_as_an_l2a_band():
    """Sentinel-2 Level-2A products carry 12 bands, without B10 (cirrus, Level-1C only): a band list naming it is
    refused, naming the band."""
    from oremap.core.sentinel2.band_sets import canonical_bands

    assert canonical_bands(["B02", "b8a", "B12"]) == ["B2", "B8A", "B12"]
    with pytest.raises(OreMapError) as err:
        canonical_bands(["B2", "B10"])
    assert "'B10' is not a Sentinel-2 L2A band" in str(err.value)


def test_mine_pixel_weight_counts_valid_pixels_only():
    """BCE weight of mine pixels = background / mine pixels among the valid ones: two 4 x 4 tiles, 16 + 12 valid
    pixels of which 4 + 3 mine, 1 mine pixel invalid: (28 - 7) / 7 = 3."""
    from oremap.core.sentinel2.augmentation import mine_pixel_weight

    Y = np.zeros((2, 4, 4), np.float32)
    V = np.ones((2, 4, 4), bool)
    Y[0, :2, :2] = 1.0                       # 4 mine pixels, all valid
    Y[1, 0, :4] = 1.0                        # 4 mine pixels, one of them invalid
    V[1, 0, 3] = False
    V[1, 3, :3] = False                      # 4 invalid in all
    assert mine_pixel_weight(Y, V, [0, 1]) == pytest.approx(3.0)


# -- core.abundance ------------------------------------------------------------------------------------------------

def test_grouped_conformal_quantile_uses_the_finite_sample_level():
    """Split conformal over K = 9 ROIs at 80 %: the quantile is read at level (K + 1) / K = 0.889 (Lei et al. 2018),
    the first stored level at or above it being 0.9, not at 0.8 (intervals too narrow for 80 % coverage)."""
    from oremap.core.abundance.abundance_map import AbundanceModel

    model = AbundanceModel.__new__(AbundanceModel)
    model.n_calibration, model.grouped = 9, True
    model.levels = np.array([0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99])
    model.scores = np.array([[1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
    np.testing.assert_allclose(model.quantiles(0.8), [3.5, 0.6])
    assert np.isinf(model.quantiles(0.95)).all()   # rank ceil(10 x 0.95) = 10 > 9 ROIs: 0-100 % intervals


def test_pixel_conformal_quantile_is_the_rank_th_smallest_score():
    """Split conformal over n = 19 calibration pixels at 90 %: the quantile is the ceil(20 x 0.9) = 18th smallest
    score. Scores 1, 2, ..., 19 stored as their quantile curve (linear between order statistics): 18.0 exactly."""
    from oremap.core.abundance.abundance_map import AbundanceModel

    model = AbundanceModel.__new__(AbundanceModel)
    model.n_calibration, model.grouped = 19, False
    model.levels = np.linspace(0.0, 1.0, 101)
    model.scores = np.quantile(np.arange(1.0, 20.0), model.levels)[None, :]
    np.testing.assert_allclose(model.quantiles(0.9), [18.0], rtol=1e-9)


def test_pls_member_has_at_most_n_samples_minus_one_components():
    """Six training spectra of 20 bands: centred, they span at most 5 dimensions, so the PLS member extracts
    min(12, 20, 6 - 1) = 5 components, fitted without scikit-learn's 'Y residual is constant' warning (the 6th
    to 12th components would be fitted to nothing)."""
    import warnings

    from oremap.core.abundance.members import make_member

    rng = np.random.default_rng(0)
    X, T = rng.random((6, 20)), rng.random((6, 2))
    member = make_member("pls", 6, 20, 2, seed=0)
    assert member[-1].n_components == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        member.fit(X, T)
    np.testing.assert_allclose(member.predict(X), T, atol=1e-9)   # 5 components fit 6 centred points exactly
