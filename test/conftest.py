"""Shared test fixtures.

The repository root *is* the plugin folder, so it is imported as the package
``oremap`` (the name QGIS gives it), whatever the checkout's folder is called.
"""

import gc
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "test", "data")
# The project's shared real data (the full USGS library etc.), beside the checkout as in CI.
SHARED_DATA = os.environ.get("OREMAP_SHARED_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))


def _import_plugin_package():
    if "oremap" in sys.modules:
        return sys.modules["oremap"]
    spec = importlib.util.spec_from_file_location(
        "oremap", os.path.join(ROOT, "__init__.py"), submodule_search_locations=[ROOT])
    module = importlib.util.module_from_spec(spec)
    sys.modules["oremap"] = module
    spec.loader.exec_module(module)
    return module


_import_plugin_package()

AVIRIS_NG = os.path.join(DATA, "ang20150420t182808_corr_v1e_img_4200-4210_70-80.img")
AVIRIS_NG_2 = os.path.join(DATA, "ang20150422t163638_corr_v1e_img_4000-4010_550-560.img")
USGS_LIBRARY = os.path.join(DATA, "usgs_minerals.sli")


_KEEP_ALIVE = []


@pytest.fixture(scope="session")
def processing_initialised(qgis_app):
    from processing.core.Processing import Processing

    Processing.initialize()
    return True


def ensure_provider():
    """The registered OreMap provider, registered again if a test unloaded it."""
    from qgis.core import QgsApplication

    from oremap.processing_provider.provider import OreMapProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("oremap")
    if provider is None:
        provider = OreMapProvider()
        registry.addProvider(provider)
        _KEEP_ALIVE.append(provider)  # the registry does not keep the Python object alive
    return provider


@pytest.fixture
def processing_provider(processing_initialised):
    """QGIS Processing initialised with the OreMap provider registered. Afterwards reference cycles are collected while
    QGIS still runs: a test's frame kept by a traceback (``pytest.raises``) holds its layers and features, and one
    freed after QGIS has exited crashes the interpreter at its end (a whole run passed, then exited with a
    segmentation fault)."""
    yield ensure_provider()
    gc.collect()


def settings_snapshot(names):
    """``{name: (stored, value)}`` of OreMap settings, for :func:`restore_settings`."""
    from oremap.processing_provider import settings

    return {name: (settings.is_stored(name), settings.raw_value(name)) for name in names}


def restore_settings(snapshot):
    """Put OreMap settings back as :func:`settings_snapshot` found them, removed again where they had never been
    stored (a stored setting wins over its environment variable, so one left behind would decide later tests:
    pytest-qgis keeps its settings file between sessions)."""
    from qgis.core import QgsSettings

    from oremap.processing_provider import settings

    for name, (stored, value) in snapshot.items():
        settings.set_value(name, value)
        if not stored:
            QgsSettings().remove(settings.PREFIX + name)


@pytest.fixture
def oremap_setting(processing_provider):
    """``oremap_setting(name, value)`` stores an OreMap setting for one test, put back afterwards
    (:func:`restore_settings`)."""
    from oremap.processing_provider import settings

    before = {}

    def store(name, value):
        if name not in before:
            before.update(settings_snapshot([name]))
        settings.set_value(name, value)

    yield store
    restore_settings(before)


PLUGIN_IN_SUBPROCESS = r"""
sys.path.append("/usr/share/qgis/python/plugins")
spec = importlib.util.spec_from_file_location("oremap", os.path.join(root, "__init__.py"),
                                              submodule_search_locations=[root])
m = importlib.util.module_from_spec(spec); sys.modules["oremap"] = m; spec.loader.exec_module(m)
from qgis.core import QgsApplication
"""
"""Lines of a script run in a fresh Python (``root``: the checkout, ``importlib.util``, ``os`` and ``sys`` imported):
the checkout imported as the package ``oremap``, QGIS's Processing plugin on the path, QgsApplication imported."""


def dask_client(n_workers):
    """A local Dask cluster of ``n_workers`` processes (one thread each) prepared for OreMap's batch, as a
    generator for a fixture: the client, then the cluster closed."""
    from distributed import Client, LocalCluster

    from oremap.core.scaleout import batch

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    batch.prepare_client(client)
    yield client
    client.close()
    cluster.close()


def core_warnings():
    """A core :class:`~core.engine.feedback.Feedback` that keeps the warnings given to it in ``.warnings`` and its
    log lines in ``.infos``."""
    from oremap.core.engine.feedback import Feedback

    class Warnings(Feedback):
        def __init__(self):
            self.warnings = []
            self.infos = []

        def warning(self, message):
            self.warnings.append(message)

        def info(self, message):
            self.infos.append(message)

    return Warnings()


def warning_recorder():
    """A QgsProcessingFeedback that keeps the warnings pushed to it in ``.warnings``, its log lines in
    ``.infos`` and the progress reported from Python in ``.progress``."""
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings, self.infos, self.progress = [], [], []

        def setProgress(self, value):  # noqa: N802 (QGIS API)
            self.progress.append(float(value))
            super().setProgress(value)

        def pushWarning(self, text):  # noqa: N802 (QGIS API)
            self.warnings.append(text)

        def pushInfo(self, text):  # noqa: N802 (QGIS API)
            self.infos.append(text)

    return Recorder()


def run_oremap(name, params):
    """``oremap:<name>`` through processing.run (Processing initialised, the provider registered); its results."""
    import processing

    return processing.run(f"oremap:{name}", params)


@pytest.fixture
def run_alg(processing_provider):
    """Run ``oremap:<name>`` through processing.run and return its results."""
    return run_oremap


def load_script(name):
    """A script of ``scripts/`` (e.g. a demo) as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_env():
    """scripts/check_env.py as a module: the lock checker and the table of the systems the setup runs on."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_env", os.path.join(ROOT, "scripts", "check_env.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def qgis_env(tmp_root):
    """Environment for a ``qgis_process`` subprocess that sees this checkout as plugin ``oremap``."""
    plugins = os.path.join(ROOT, ".build", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "oremap")
    if not os.path.islink(link) and not os.path.exists(link):
        os.symlink(os.path.join("..", ".."), link)
    env = dict(os.environ)
    runtime = os.path.join(str(tmp_root), "runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    venv_bin = os.path.join(ROOT, ".venv", "bin")
    env.update(
        QT_QPA_PLATFORM="offscreen", PROJ_DATA="/usr/share/proj", XDG_RUNTIME_DIR=runtime,
        QGIS_PLUGINPATH=plugins, QGIS_CUSTOM_CONFIG_PATH=os.path.join(str(tmp_root), "profile"),
        PATH=venv_bin + os.pathsep + env.get("PATH", ""),
    )
    return env


@pytest.fixture(scope="session")
def qgis_process(tmp_path_factory):
    """Call ``qgis_process`` with a throwaway profile where OreMap is enabled."""
    exe = shutil.which("qgis_process")
    if exe is None:
        pytest.fail("qgis_process is not installed: run `make setup`.")
    env = qgis_env(tmp_path_factory.mktemp("qgis"))
    subprocess.run([exe, "plugins", "enable", "oremap"], env=env, check=True, capture_output=True, timeout=120)

    def call(*args, check=True):
        proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"qgis_process {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def run_json(algorithm, **params):
        args = ["--json", "run", algorithm, "--"] + [f"{k}={v}" for k, v in params.items()]
        proc = call(*args)
        start = proc.stdout.index("{")
        return json.loads(proc.stdout[start:])

    call.run_json = run_json
    call.exe, call.env = exe, env
    return call


def vector_classes(path, field):
    """``(renderer type, [(value, label, colour)] of its categories, {(field value, colour drawn)})`` of the vector
    file ``path`` with its saved style: plain values, the layer released before returning (a layer left to the
    garbage collector after QGIS exits crashes the test run)."""
    from qgis.core import NULL, QgsRenderContext, QgsVectorLayer

    layer = QgsVectorLayer(str(path), "styled", "ogr")
    try:
        layer.loadDefaultStyle()
        renderer = layer.renderer().clone()
        kind = renderer.type()
        if kind != "categorizedSymbol":
            return kind, [], set()
        categories = [(None if c.value() in (None, "") or c.value() == NULL else int(c.value()), c.label(),
                       c.symbol().color().name()) for c in renderer.categories()]
        context = QgsRenderContext()
        renderer.startRender(context, layer.fields())
        drawn = set()
        for f in layer.getFeatures():   # NULL as None; a feature drawn by no symbol: colour None
            symbol = renderer.symbolForFeature(f, context)
            drawn.add((None if f[field] == NULL else f[field], symbol.color().name() if symbol else None))
        renderer.stopRender(context)
        return kind, categories, drawn
    finally:
        del layer
