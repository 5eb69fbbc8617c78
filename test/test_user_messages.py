"""What a user is told on a mistake, found by running every algorithm as a new user does (qgis_process): each
message names the parameter set and what is allowed or what to do."""

import os

import numpy as np
import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException

from conftest import core_warnings
from oremap.core.engine.errors import OreMapError


def algorithm(provider, name):
    return next(a for a in provider.algorithms() if a.name() == name).create()


def test_numbers_out_of_range_and_choices_say_what_is_allowed(processing_provider):
    """QGIS said only 'Incorrect parameter value for THRESHOLD'."""
    context = QgsProcessingContext()
    checks = [("element_selection", {"THRESHOLD": -1}, "ZAUC threshold (THRESHOLD): -1 is not allowed: give a number "
                                                       "at least 0."),
              ("geochem_anomaly", {"METHOD": 55}, "Main score (METHOD): 55 is not one of the choices: 0 = Rank-mean "
                                                  "fusion of the scores; 1 = "),
              ("s2_indices", {"INDICES": []}, "Indices (INDICES): choose at least one of: 0 = NDVI; 1 = NDWI;"),
              # a decimal comma (a German or French user's '2000,5') was blamed on the range ('give a number at
              # least 0')
              ("idw_interpolate", {"CELL_SIZE": "2000,5"}, "Cell size (metres; 0 = from the sample spacing) (CELL_SIZE): '2000,5' is "
                                                           "written with a decimal comma; parameters take a decimal "
                                                           "point: write 2000.5.")]
    for name, parameters, start in checks:
        ok, message = algorithm(processing_provider, name).checkParameterValues(parameters, context)
        assert not ok and message.startswith(start), message


def test_vector_outputs_of_a_format_oremap_does_not_write_are_refused_and_a_style_replaced_is_said(
        processing_provider, tmp_path):
    """'.txt' was written as Geoconcept ('x.txt.gxt', every field text, the scores too) and '.xyz' as 'x.xyz.gpkg',
    which a second run replaced without a word; a style file beside a new output was replaced silently."""
    alg = algorithm(processing_provider, "geochem_anomaly")
    alg._feedback = core_warnings()
    context = QgsProcessingContext()
    for name in ("scores.txt", "scores.xyz"):
        with pytest.raises(QgsProcessingException, match=r"\(OUTPUT\): OreMap cannot write '\.(txt|xyz)' files here\. "
                                                         r"Save it as a GeoPackage \(e\.g\. scores\.gpkg\)"):
            alg._check_outputs_apart({"OUTPUT": str(tmp_path / name)}, context)
    (tmp_path / "scores.qml").write_text("<qgis/>")
    alg._check_outputs_apart({"OUTPUT": str(tmp_path / "scores.gpkg")}, context)
    assert alg._feedback.warnings == [f"Scored points: replacing the existing style file {tmp_path / 'scores.qml'} "
                                      "with the output's style."]


def test_distances_typed_in_km_are_named_with_distances_that_work():
    """2 and 4 (km meant) were blamed on the deposits' CRS; far deposits still are."""
    from oremap.core.geochemistry.distance_advice import check_distances

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 20000, 400), rng.uniform(0, 20000, 400)
    deposits = np.array([[5000.0, 5000.0], [15000.0, 12000.0]])
    with pytest.raises(OreMapError) as err:
        check_distances(x, y, deposits, 2, 4)
    assert err.value.parameter == "positive_radius"
    assert "The distances are in metres (2 km would be 2000)." in err.value.fix and "A positive radius of" in \
        err.value.fix
    with pytest.raises(OreMapError) as err:
        check_distances(x, y, deposits + 5e6, 2000, 4000)
    assert err.value.parameter == "deposits" and "right CRS" in err.value.fix


def test_a_score_that_never_varies_is_said():
    """A score field holding the missing code (-9999) in every sample gave 'ROC-AUC 0.500 +- 0.000' and nothing
    more."""
    from oremap.core.geochemistry import prospectivity_eval as pe

    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 20000, 300), rng.uniform(0, 20000, 300)
    log = core_warnings()
    result = pe.evaluate_points(x, y, np.full(300, -9999.0), np.array([[5000.0, 5000.0], [15000.0, 12000.0]]),
                                2000, 4000, n_draws=3, feedback=log)
    assert result["auc_mean"] == 0.5
    assert "Every scored sample has the same score (-9999): it ranks nothing, and the AUC is 0.5. Choose the " \
           "field that holds the scores." in log.warnings


def test_a_composition_field_without_numbers_is_named():
    from oremap.core.abundance import abundance as ab

    with pytest.raises(OreMapError) as err:
        ab.prepare_compositions([[20.0, np.nan], [30.0, np.nan]], ["Kaolinite", "txt"])
    assert err.value.message == "No ROI has a value for every chosen mineral: txt holds no number in any ROI."
    assert err.value.fix.startswith("Choose the fields that hold the amounts")


def test_a_grid_larger_than_the_raster_names_rows_and_columns():
    from oremap.core.geochemistry.prospectivity_mapping import cell_edges

    with pytest.raises(OreMapError) as err:
        cell_edges(143, 214, grid=(12, 300))
    assert err.value.parameter == "grid_cols"
    assert err.value.message == "A grid of 12 rows x 300 columns of cells does not fit a raster of 143 rows x 214 " \
                                "columns."
    with pytest.raises(OreMapError) as err:
        cell_edges(143, 214, grid=(200, 12))
    assert err.value.parameter == "grid"


def test_a_reference_raster_without_band_centres_is_blamed_not_the_wavelengths(run_alg, tmp_path):
    """The error named WAVELENGTHS and said to give band centres, and giving them was then refused as a second
    target sensor."""
    import rasterio

    from conftest import USGS_LIBRARY

    reference = str(tmp_path / "nowl.tif")
    with rasterio.open(reference, "w", driver="GTiff", width=4, height=4, count=5, dtype="float32",
                       crs="EPSG:32612", transform=rasterio.Affine(30, 0, 500000, 0, -30, 4000000)) as ds:
        ds.write(np.full((5, 4, 4), 0.3, np.float32))
    with pytest.raises(QgsProcessingException, match=r"\(REFERENCE\): The target sensor raster nowl\.tif has no band "
                                                     r"centres in its metadata\. .*leave REFERENCE empty"):
        run_alg("train_spectral_cnn", {"LIBRARIES": [USGS_LIBRARY], "REFERENCE": reference, "CLASSES": "Kaolinite",
                                       "OUTPUT_MODEL": str(tmp_path / "m.onnx")})
    assert not os.path.exists(tmp_path / "m.onnx")


def test_wavelengths_given_for_a_raster_with_its_own_are_said_to_replace_them():
    """The parameter replaced the header's band centres without the log line every other source gets."""
    from conftest import AVIRIS_NG
    from oremap.core.hyperspectral.mapping import image_band_info

    log = core_warnings()
    info = image_band_info(AVIRIS_NG, wavelengths=np.linspace(400.0, 2500.0, 432), bad_bands="off", feedback=log)
    assert info.origin == "the wavelength parameter" and info.centers[0] == 400.0
    assert log.infos[0].startswith("Band centres from the wavelength parameter: 432 bands, 400-2500 nm, instead of "
                                   "those in the metadata of 'ang2015")
