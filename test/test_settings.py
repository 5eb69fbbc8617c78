"""Settings round trip (one store, two editors), the device logged by every run, and missing optional packages."""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import (AVIRIS_NG, PLUGIN_IN_SUBPROCESS, ROOT, USGS_LIBRARY, restore_settings, settings_snapshot,
                      warning_recorder)

from oremap.core.engine import compute
from oremap.core.engine.raster import MEMORY_SETTING
from oremap.processing_provider import settings

NAMES = [s.name for s in settings.SETTINGS]


@pytest.fixture
def saved_settings(processing_provider):
    """Restore every OreMap setting after the test (unstored again where it was)."""
    before = settings_snapshot(NAMES)
    yield
    restore_settings(before)


def test_settings_round_trip_through_one_store(saved_settings, tmp_path):
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsSettings

    settings.set_value(MEMORY_SETTING, 777)
    settings.set_value(compute.THREADS_SETTING, 3)
    settings.set_value(compute.DEVICE_SETTING, "CUDA")
    settings.set_value(settings.MODEL_FOLDER_SETTING, str(tmp_path / "my models"))
    assert (settings.memory_mb(), settings.threads(), settings.device(), settings.model_folder()) == (
        777.0, 3, "cuda", str(tmp_path / "my models"))
    # the Processing options page and QgsSettings see the same values (one store)
    assert int(ProcessingConfig.getSetting(MEMORY_SETTING)) == 777
    assert int(QgsSettings().value(settings.PREFIX + compute.THREADS_SETTING)) == 3
    assert QgsSettings().value(settings.PREFIX + compute.DEVICE_SETTING) == "cuda"
    # an edit in Processing's own options page is what OreMap reads
    ProcessingConfig.setSettingValue(MEMORY_SETTING, 640)
    assert settings.memory_mb() == 640.0
    settings.set_value(settings.MODEL_FOLDER_SETTING, "")
    assert settings.model_folder() == settings.default_model_folder()
    with pytest.raises(ValueError):
        settings.set_value(MEMORY_SETTING, 4)


def test_settings_widget_round_trip_and_cuda_only_when_available(saved_settings, tmp_path, monkeypatch):
    from oremap.ui.settings_dialog import SettingsWidget

    monkeypatch.setattr(compute, "cuda_support", lambda refresh=False: {"onnxruntime": False, "torch": False,
                                                                          "name": ""})
    settings.set_value(MEMORY_SETTING, 300)
    settings.set_value(compute.THREADS_SETTING, 2)
    settings.set_value(compute.DEVICE_SETTING, "cuda")  # chosen on another machine
    widget = SettingsWidget()
    try:
        widget.probe_devices()   # the Check devices button (not pressed for the user: it imports torch)
        # the stored choice stays listed, marked, so that OK does not turn it into the CPU
        assert [widget.device.itemData(i) for i in range(widget.device.count())] == ["cpu", "cuda"]
        assert widget.device.currentText() == "CUDA (NVIDIA GPU) (not available now)"
        assert widget.memory.value() == 300 and widget.threads.value() == 2
        assert "no CUDA device is available" in widget.device_note.text()
        from importlib import metadata

        assert f"<b>onnxruntime</b> {metadata.version('onnxruntime')}" in widget.status.text()
        assert "no CUDA device reported" in widget.status.text()
        widget.memory.setValue(1024)
        widget.threads.setValue(0)
        widget.folder.setFilePath(str(tmp_path))
        widget.apply()
        assert (settings.memory_mb(), settings.threads(), settings.device(), settings.model_folder()) == (
            1024.0, 0, "cuda", str(tmp_path))   # the device was not touched
    finally:
        widget.deleteLater()
        del widget
    monkeypatch.setattr(compute, "cuda_support", lambda refresh=False: {"onnxruntime": True, "torch": False,
                                                                          "name": ""})
    settings.set_value(compute.DEVICE_SETTING, "cuda")
    widget = SettingsWidget()
    try:
        widget.probe_devices()
        assert [widget.device.itemData(i) for i in range(widget.device.count())] == ["cpu", "cuda"]
        assert widget.device.currentText() == "CUDA (NVIDIA GPU)" and widget.device_note.text() == ""
        assert widget.folder.filePath() == str(tmp_path)
    finally:
        widget.deleteLater()
        del widget


def _info_log(run_alg_params, name):
    """Run ``oremap:<name>`` with a feedback that keeps the info lines; returns (infos, warnings)."""
    import processing

    feedback = warning_recorder()
    infos = []
    feedback.pushInfo = infos.append
    processing.run(f"oremap:{name}", run_alg_params, feedback=feedback)
    return infos, feedback.warnings


def test_every_run_logs_the_device_chosen_and_used(saved_settings, processing_provider, tmp_path):
    settings.set_value(compute.THREADS_SETTING, 1)
    settings.set_value(compute.DEVICE_SETTING, "cpu")
    infos, _ = _info_log({"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9; Goethite WS222",
                          "OUTPUT_CLASSES": str(tmp_path / "sam.tif")}, "sam_classify")
    assert any(line.startswith("OreMap settings: compute device CPU, threads 1, memory budget") for line in infos)
    assert "Compute device used: CPU (numpy; no neural network in this run)." in infos
    infos, _ = _info_log({"INPUT": AVIRIS_NG, "MODEL": 0, "OUTPUT_CLASSES": str(tmp_path / "cnn.tif")},
                         "classify_spectral_cnn")
    assert "Compute device used: onnxruntime: CPUExecutionProvider." in infos
    if not compute.cuda_support()["onnxruntime"] and not compute.cuda_support()["torch"]:
        settings.set_value(compute.DEVICE_SETTING, "cuda")  # chosen, but there is none here
        infos, warnings = _info_log({"INPUT": AVIRIS_NG, "MODEL": 0, "OUTPUT_CLASSES": str(tmp_path / "cnn2.tif")},
                                    "classify_spectral_cnn")
        assert any("compute device CUDA" in line for line in infos)
        assert any("running on the CPU" in w for w in warnings)
        assert "Compute device used: onnxruntime: CPUExecutionProvider." in infos


def test_compute_session_gives_onnxruntime_its_threads_and_providers(monkeypatch):
    import onnxruntime

    from oremap.core.engine.model_format import OnnxModel

    seen = {}
    real = onnxruntime.InferenceSession

    def spy(data, sess_options=None, providers=None):
        seen.update(threads=sess_options.intra_op_num_threads, providers=providers)
        return real(data, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    model = os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx")
    with compute.session("cpu", threads=2) as run:
        OnnxModel(model)
        assert seen == {"threads": 2, "providers": ["CPUExecutionProvider"]}
        OnnxModel(model, threads=1)  # the algorithm's own Threads parameter wins
        assert seen["threads"] == 1
    assert run.used == {"onnxruntime": "CPUExecutionProvider"}
    monkeypatch.setattr(compute, "cuda_support", lambda refresh=False: {"onnxruntime": True, "torch": False,
                                                                          "name": ""})
    with compute.session("cuda", threads=0) as run:
        OnnxModel(model)
        assert seen["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
        assert seen["threads"] == 0 and run.fallback_message() == ""
    with compute.session("cpu"):
        OnnxModel(model)
        assert seen["providers"] == ["CPUExecutionProvider"]


def test_missing_package_is_explained_in_help_and_refused_at_run(processing_provider, monkeypatch, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingException

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    registry = processing_provider.algorithms()
    train = next(a for a in registry if a.name() == "train_spectral_cnn")
    help_html = train.shortHelpString()
    assert help_html.startswith("<p><b>This algorithm cannot run yet.</b> Missing Python package: 'torch' trains")
    assert "python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in help_html
    ok, message = train.checkParameterValues({}, QgsProcessingContext())
    assert not ok and "pip install torch==2.13.0" in message
    abundance = next(a for a in registry if a.name() == "train_abundance_model")
    assert "<b>Some options need more:</b> 'torch' for the CNN family" in abundance.shortHelpString()
    assert "torch" not in abundance.checkParameterValues({}, QgsProcessingContext())[1]  # runs without the CNN
    sam = next(a for a in registry if a.name() == "sam_classify")
    assert "cannot run yet" not in sam.shortHelpString()
    message = ""
    try:
        processing.run("oremap:train_spectral_cnn", {"LIBRARIES": USGS_LIBRARY,
                                                       "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
                                                       "OUTPUT_REPORT": str(tmp_path / "r.html")})
    except QgsProcessingException as exc:
        message = str(exc)
    assert "pip install torch==2.13.0" in message
    assert not os.path.exists(tmp_path / "m.onnx")


def test_an_algorithm_fitting_scikit_learn_models_says_how_to_get_it(processing_provider, monkeypatch):
    """A QGIS Python without scikit-learn ran geochem_anomaly into an ImportError traceback mid-run; the four
    algorithms that fit scikit-learn models now refuse to start and name the system package (never pip's: its
    wheels replace QGIS's numpy)."""
    from qgis.core import QgsProcessingContext

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    registry = {a.name(): a for a in processing_provider.algorithms()}
    for name in ("geochem_anomaly", "train_abundance_model", "train_mine_classifier", "train_prospectivity_model"):
        ok, message = registry[name].checkParameterValues({}, QgsProcessingContext())
        assert not ok and "sudo apt install python3-sklearn" in message and "pip install scikit-learn" not in message
        assert "Do not pip-install it into QGIS" in message
        assert registry[name].shortHelpString().startswith("<p><b>This algorithm cannot run yet.</b> Missing Python "
                                                          "package: 'sklearn' fits the scikit-learn models")
    assert registry["idw_interpolate"].checkParameterValues({}, QgsProcessingContext())[1].find("sklearn") < 0


PROVIDER_WITHOUT_PACKAGES = r"""
import importlib.util, os, sys
root = sys.argv[1]
class Uninstalled:  # as if not installed: import and find_spec fail. (A None in sys.modules made scipy 1.17's
    def find_spec(self, name, path=None, target=None):  # array-API check read None.Tensor: not what a user has.)
        if name.split(".")[0] in ("torch", "onnx", "onnxruntime"):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
sys.meta_path.insert(0, Uninstalled())
""" + PLUGIN_IN_SUBPROCESS + r"""
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from oremap.processing_provider.provider import OreMapProvider
provider = OreMapProvider()
QgsApplication.processingRegistry().addProvider(provider)
names = sorted(a.name() for a in provider.algorithms())
blocked = sorted(a.name() for a in provider.algorithms() if "cannot run yet" in a.shortHelpString())
print("|".join(names))
print("|".join(blocked))
print(provider.algorithm("classify_spectral_cnn").shortHelpString().split("</p>")[0])
"""


def test_provider_loads_without_torch_onnx_and_onnxruntime(tmp_path):
    from oremap.algorithms import ALGORITHMS

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", PROVIDER_WITHOUT_PACKAGES, ROOT], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names, blocked, first = proc.stdout.strip().splitlines()[-3:]
    assert names.split("|") == sorted(m for m, _ in ALGORITHMS)
    needing = {"classify_spectral_cnn", "train_spectral_cnn", "predict_abundance", "train_abundance_model",
               "train_prospectivity_cnn", "prospectivity_map"}
    assert needing <= set(blocked.split("|")) and "sam_classify" not in blocked
    assert "'onnx' writes and reads OreMap model files" in first and "'onnxruntime' runs OreMap models" in first


PLUGIN_WITHOUT_RASTERIO = r"""
import importlib.util, os, sys
root = sys.argv[1]
sys.modules["rasterio"] = None  # import fails, find_spec says missing
spec = importlib.util.spec_from_file_location("oremap", os.path.join(root, "__init__.py"),
                                              submodule_search_locations=[root])
m = importlib.util.module_from_spec(spec); sys.modules["oremap"] = m; spec.loader.exec_module(m)
from qgis.core import QgsApplication, QgsMessageLog
app = QgsApplication([], False)
app.initQgis()
logged = []
QgsApplication.messageLog().messageReceived.connect(lambda message, tag, level: logged.append((tag, message)))
plugin = m.classFactory(None)
plugin.initGui()
app.processEvents()
print(type(plugin).__name__, "|", [a.id() for a in QgsApplication.processingRegistry().providers()
                                   if a.id() == "oremap"], "|", logged[-1][0], "|", logged[-1][1])
plugin.unload()
"""


def test_without_rasterio_the_plugin_starts_and_says_what_to_install(tmp_path):
    """A QGIS Python without rasterio (a stock Windows QGIS) made the plugin fail to start with a traceback, so the
    menu and its installer could not even be reached; now it says what to install, where it is looked for."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", PLUGIN_WITHOUT_RASTERIO, ROOT], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, providers, tag, message = [part.strip() for part in proc.stdout.strip().splitlines()[-1].split("|")]
    assert (kind, providers, tag) == ("MissingPackagesPlugin", "[]", "OreMap")
    assert message.startswith("OreMap cannot start: QGIS's Python lacks rasterio. Debian/Ubuntu: sudo apt install "
                              "python3-rasterio.") and "OSGeo4W" in message
    # the Flatpak QGIS (org.qgis.qgis) has no rasterio, scipy or pip, and apt cannot reach its sandbox
    env["FLATPAK_ID"] = "org.qgis.qgis"
    proc = subprocess.run([sys.executable, "-c", PLUGIN_WITHOUT_RASTERIO, ROOT], capture_output=True, text=True,
                          env=env, timeout=120)
    message = proc.stdout.strip().splitlines()[-1].split("|")[-1].strip()
    assert message == ("OreMap cannot start: this QGIS is the Flatpak (org.qgis.qgis), whose Python lacks rasterio and "
                       "has no pip or system packages to add them. Use QGIS from your distribution or from qgis.org's "
                       "repositories (Debian/Ubuntu: sudo apt install qgis python3-qgis python3-rasterio; Fedora: sudo "
                       "dnf install qgis python3-qgis python3-rasterio).")


def test_html_reports_reach_the_results_viewer_and_the_log(saved_settings, processing_provider, tmp_path):
    """Every HTML file destination is an HTML output (what the Results Viewer lists), and a run logs its path."""
    import rasterio
    from osgeo import ogr, osr

    reports = 0
    for alg in processing_provider.algorithms():
        for definition in alg.destinationParameterDefinitions():
            if "htm" in getattr(definition, "fileFilter", lambda: "")().lower():
                assert alg.outputDefinition(definition.name()).type() == "outputHtml", (alg.id(), definition.name())
                reports += 1
    assert reports >= 6  # training, accuracy, evaluation and selection reports
    sam = str(tmp_path / "sam.tif")
    _info_log({"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "Kaolinite CM9; Goethite WS222",
               "OUTPUT_CLASSES": sam}, "sam_classify")
    with rasterio.open(sam) as ds:
        points = [ds.transform * (c + 0.5, r + 0.5) for r, c in ((1, 1), (5, 5), (8, 2))]
    path = str(tmp_path / "reference.gpkg")
    source = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32612)
    layer = source.CreateLayer("reference", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("mineral", ogr.OFTString))
    for x, y in points:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("mineral", "goethite")
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
        feature = None
    layer = source = None
    report = str(tmp_path / "accuracy.html")
    infos, _ = _info_log({"INPUT": sam, "REFERENCE": path, "CLASS_FIELD": "mineral", "OUTPUT_HTML": report},
                         "accuracy_assessment")
    assert f"Report: {report} (opens from Processing > Results Viewer, or in a browser)." in infos
    assert os.path.exists(report)


def test_torch_classes_are_built_once_and_each_run_gets_its_threads_and_device_note():
    import torch

    calls = []

    @compute.torch_classes("test the builder")
    def classes(torch_module, nn):
        calls.append(torch_module)
        return {"Layer": nn.Linear}

    before = torch.get_num_threads()
    first = classes()
    assert calls == [torch] and first["torch"] is torch and first["Layer"] is torch.nn.Linear
    with compute.session("cpu", threads=1) as run:
        assert classes() is first and len(calls) == 1  # built once
        assert torch.get_num_threads() == 1  # the run's threads, applied on a later call too
    assert run.used == {"torch": "cpu"}
    assert torch.get_num_threads() == before  # restored when the run ends
