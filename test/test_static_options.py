"""Static enum options (issue 25): every algorithm's MODEL list is the same whether or not onnx is installed, so
MODEL=0 in a saved .model3 or script means the same model on every machine; a bundled model that cannot run
here says why when it is chosen."""

import os
import sys

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException

from conftest import AVIRIS_NG

from oremap.algorithms import ALGORITHMS
from oremap.core.engine import bundled
from oremap.core.engine.model_format import read_model_info


def enum_options(processing_provider):
    """{algorithm: {parameter: options}} of every enum parameter of every OreMap algorithm, fresh instances."""
    found = {}
    for name, _ in ALGORITHMS:
        alg = processing_provider.algorithm(name).create()
        found[name] = {d.name(): list(d.options()) for d in alg.parameterDefinitions() if d.type() == "enum"}
    return found


@pytest.fixture
def without_onnx(monkeypatch):
    """onnx and onnxruntime made unimportable, as in a stock QGIS (find_spec sees None in sys.modules)."""
    for name in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)
    bundled._INFO_CACHE.clear()
    yield
    bundled._INFO_CACHE.clear()


def test_bundled_table_matches_the_files():
    names = sorted(n for n in os.listdir(bundled.MODELS_DIR) if n.endswith(".onnx"))
    assert sorted(bundled.BUNDLED) == names
    for name, (task, title) in bundled.BUNDLED.items():
        info = read_model_info(os.path.join(bundled.MODELS_DIR, name))
        assert (info.task, info.description) == (task, title)


def test_enum_options_do_not_depend_on_onnx(processing_provider, monkeypatch):
    with_onnx = enum_options(processing_provider)
    assert with_onnx["classify_spectral_cnn"]["MODEL"] == ["USGS minerals (splib07), 1D CNN, 430-2440 nm",
                                                           "Model file"]
    for name in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)
    bundled._INFO_CACHE.clear()
    try:
        assert enum_options(processing_provider) == with_onnx
    finally:
        bundled._INFO_CACHE.clear()


def test_chosen_bundled_model_says_why_it_cannot_run(processing_provider, without_onnx):
    alg = processing_provider.algorithm("classify_spectral_cnn").create()
    context = QgsProcessingContext()
    with pytest.raises(QgsProcessingException) as err:
        alg.model_path({"INPUT": AVIRIS_NG, "MODEL": 0}, context)
    text = str(err.value)
    assert text.startswith("Model (MODEL): The bundled model 'USGS minerals (splib07), 1D CNN, 430-2440 nm' cannot "
                           "be used here. Running it needs onnx and onnxruntime, not installed here.")
    assert "Plugins > OreMap > Install optional packages" in text
    # and the model library says what is missing instead of "unreadable"
    info, why = bundled.model_info(bundled.bundled_models()[0][1])
    assert info is None and why.startswith("Reading a model needs the Python package 'onnx'.")


def test_chosen_bundled_model_runs_with_onnx(processing_provider):
    bundled._INFO_CACHE.clear()
    alg = processing_provider.algorithm("classify_spectral_cnn").create()
    path = alg.model_path({"INPUT": AVIRIS_NG, "MODEL": 0}, QgsProcessingContext())
    assert path == os.path.join(bundled.MODELS_DIR, "usgs_minerals_cnn.onnx")
