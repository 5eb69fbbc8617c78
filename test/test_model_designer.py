"""OreMap algorithms as steps of a Graphical Modeler model and with data-defined (expression) values: what the
Toolbox refuses must be refused there too, and an output named by an expression is that file."""

import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin


def _grid(path, bands=("Au_ppm", "Hg_ppm")):
    """A small element grid in UTM (log-normal concentrations), one band per element."""
    rng = np.random.default_rng(3)
    data = np.exp(rng.normal(0.0, 1.0, (len(bands), 30, 30))).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=30, height=30, count=len(bands), dtype="float32",
                       crs="EPSG:32750", transform=from_origin(500000, 6400000, 100, 100), nodata=-9999.0) as ds:
        ds.write(data)
        for k, name in enumerate(bands, start=1):
            ds.set_band_description(k, name)
    return path


def _recorder():
    """A Processing feedback keeping its errors and warnings in ``lines``."""
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def reportError(self, text, fatalError=False):  # noqa: N802 (QGIS API)
            self.lines.append(text)

        def pushWarning(self, text):  # noqa: N802 (QGIS API)
            self.lines.append(text)

    return Recorder()


def _model_with_a_number_bound_to(algorithm, parameter, inputs):
    """A model of one step ``algorithm`` whose ``parameter`` is the model's plain Number parameter ``value`` (no
    range, as a user adds one to expose a setting) and whose other inputs are static."""
    from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterNumber)

    model = QgsProcessingModelAlgorithm("designer", "test")
    number = QgsProcessingParameterNumber("value", "Value", QgsProcessingParameterNumber.Double, 0.0)
    model.addModelParameter(number, QgsProcessingModelParameter("value"))
    step = QgsProcessingModelChildAlgorithm(algorithm)
    step.setChildId("step")
    step.addParameterSources(parameter, [QgsProcessingModelChildParameterSource.fromModelParameter("value")])
    for name, value in inputs.items():
        step.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    out = QgsProcessingModelOutput("scores", "scores")
    out.setChildId("step")
    out.setChildOutputName("OUTPUT_SCORE")
    step.setModelOutputs({"scores": out})
    model.addChildAlgorithm(step)
    return model


def test_a_models_out_of_range_number_is_refused_as_in_the_toolbox(processing_provider, tmp_path):
    """QGIS 3.22 runs a model's steps without their checkParameterValues: a classify step given a minimum
    confidence of 60 (meant as per cent) classified nothing without a word, where the algorithm alone refuses it.
    Here a negative KL weight, which the algorithm alone refuses, from the model's own Number parameter."""
    import processing
    from qgis.core import QgsProcessing, QgsProcessingException

    grid = _grid(str(tmp_path / "grid.tif"))
    model = _model_with_a_number_bound_to("oremap:vae_anomaly", "KL_WEIGHT", {"INPUT": grid, "EPOCHS": 2})
    feedback = _recorder()
    with pytest.raises(QgsProcessingException):
        processing.run(model, {"value": -5.0, "step:scores": QgsProcessing.TEMPORARY_OUTPUT}, feedback=feedback)
    definition = processing_provider.algorithm("vae_anomaly").parameterDefinition("KL_WEIGHT")
    assert any(line.startswith(f"{definition.description()} (KL_WEIGHT): -5.0 is not allowed: give a number at "
                               f"least {definition.minimum():g}") for line in feedback.lines), feedback.lines
    assert sorted(os.listdir(tmp_path)) == ["grid.tif"]


def test_a_data_defined_choice_out_of_range_is_refused(processing_provider, tmp_path):
    """A choice given as an expression was read by parameterAsEnum, which gives the default for an unknown
    option: METHOD 5 ran as method 0."""
    import processing
    from qgis.core import QgsProcessing, QgsProcessingException, QgsProperty

    grid = _grid(str(tmp_path / "grid.tif"))
    with pytest.raises(QgsProcessingException, match=r"\(ACTIVATION\): 7 is not one of the choices: 0 = "):
        processing.run("oremap:vae_anomaly", {"INPUT": grid, "EPOCHS": 2, "ACTIVATION": QgsProperty.fromExpression("3 + 4"),
                                              "OUTPUT_SCORE": QgsProcessing.TEMPORARY_OUTPUT})


def test_an_output_named_by_an_expression_is_that_file(processing_provider, tmp_path):
    """An output given as an expression counted as temporary: an output that was also the input was not refused
    (the element grid was overwritten by the scores), and a trained model went to the model library instead."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingOutputLayerDefinition, QgsProperty

    grid = _grid(str(tmp_path / "grid.tif"))
    before = open(grid, "rb").read()
    same = QgsProcessingOutputLayerDefinition(QgsProperty.fromExpression(f"'{grid}'"))
    with pytest.raises(QgsProcessingException, match=r"\(OUTPUT_SCORE\): .*grid.tif is also the input .*\(INPUT\)"):
        processing.run("oremap:vae_anomaly", {"INPUT": grid, "EPOCHS": 2, "OUTPUT_SCORE": same})
    assert open(grid, "rb").read() == before
    wanted = str(tmp_path / "vae.onnx")
    model = QgsProcessingOutputLayerDefinition(QgsProperty.fromExpression(f"'{tmp_path}' || '/vae.onnx'"))
    result = processing.run("oremap:vae_anomaly", {"INPUT": grid, "EPOCHS": 2, "OUTPUT_MODEL": model,
                                                   "OUTPUT_SCORE": str(tmp_path / "scores.tif")})
    assert result["OUTPUT_MODEL"] == wanted and os.path.getsize(wanted) > 1000


def test_a_one_band_grid_is_blamed_on_the_raster_not_on_the_point_fields(processing_provider, tmp_path):
    """vae_anomaly on a one-band grid (element selection kept one element, a model's IDW step gridded it) blamed
    Element fields (FIELDS), which belongs to the points input and was empty."""
    import processing
    from qgis.core import QgsProcessing, QgsProcessingException

    one = _grid(str(tmp_path / "one.tif"), bands=("Au_ppm",))
    with pytest.raises(QgsProcessingException, match=r"\(INPUT\): The raster gives 1 element band"):
        processing.run("oremap:vae_anomaly", {"INPUT": one, "OUTPUT_SCORE": QgsProcessing.TEMPORARY_OUTPUT})
    two = _grid(str(tmp_path / "two.tif"))
    with pytest.raises(QgsProcessingException, match=r"\(BANDS\): The raster gives 1 element band"):
        processing.run("oremap:vae_anomaly", {"INPUT": two, "BANDS": [2, 2],
                                              "OUTPUT_SCORE": QgsProcessing.TEMPORARY_OUTPUT})


def test_a_numpy_number_from_a_script_is_named_as_such(processing_provider, tmp_path):
    """A PyQGIS script passing a numpy float32 or int64 (taken from an array) was told '1 is not allowed: give a
    number at least 0', which it is; Processing cannot read a numpy value, and the message now says so."""
    import processing
    from qgis.core import QgsProcessing, QgsProcessingException

    grid = _grid(str(tmp_path / "grid.tif"))
    for value, kind in ((np.float32(0.5), "float32"), (np.int64(2), "int64")):
        with pytest.raises(QgsProcessingException, match=rf"\(KL_WEIGHT\): .* holds a numpy value \({kind}\), "
                                                        r"which Processing cannot read; give Python numbers"):
            processing.run("oremap:vae_anomaly", {"INPUT": grid, "KL_WEIGHT": value,
                                                  "OUTPUT_SCORE": QgsProcessing.TEMPORARY_OUTPUT})
