"""The plugin loads (classFactory, initProcessing, initGui, unload) and its provider is complete."""

import os

from qgis.core import QgsApplication

import oremap
from oremap.algorithms import ALGORITHMS


class FakeIface:
    """The parts of QgisInterface the plugin uses."""

    def __init__(self):
        self.menu = []
        self.toolbar = []
        self.options = []
        self.docks = []

    def mainWindow(self):  # noqa: N802
        return None

    def addPluginToMenu(self, menu, action):  # noqa: N802
        self.menu.append((menu, action.text()))

    def removePluginMenu(self, menu, action):  # noqa: N802
        self.menu.remove((menu, action.text()))

    def addToolBarIcon(self, action):  # noqa: N802
        self.toolbar.append(action.text())

    def removeToolBarIcon(self, action):  # noqa: N802
        self.toolbar.remove(action.text())

    def registerOptionsWidgetFactory(self, factory):  # noqa: N802
        self.options.append(factory.title())

    def unregisterOptionsWidgetFactory(self, factory):  # noqa: N802
        self.options.remove(factory.title())

    def addDockWidget(self, area, dock):  # noqa: N802
        self.docks.append(dock)

    def removeDockWidget(self, dock):  # noqa: N802
        self.docks.remove(dock)


def test_class_factory_init_and_unload(qgis_app):
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("oremap")
    if existing is not None:  # registered by another test module
        registry.removeProvider(existing)
    iface = FakeIface()
    plugin = oremap.classFactory(iface)
    plugin.initProcessing()
    plugin.initGui()
    provider = registry.providerById("oremap")
    assert provider is not None
    assert sorted(a.name() for a in provider.algorithms()) == sorted(m for m, _ in ALGORITHMS)
    assert ("&OreMap", "OreMap algorithms…") in iface.menu
    assert ("&OreMap", "Model library") in iface.menu and ("&OreMap", "Settings…") in iface.menu
    assert ("&OreMap", "Install optional packages…") in iface.menu
    assert len(iface.menu) == 6
    assert iface.toolbar == ["OreMap model library"] and iface.options == ["OreMap"]
    dock = plugin.show_model_library()
    assert iface.docks == [dock] and dock.objectName() == "OreMapModelLibrary"
    assert plugin.show_model_library() is dock  # one dock, shown again
    plugin.unload()
    assert registry.providerById("oremap") is None
    assert iface.menu == [] and iface.toolbar == [] and iface.options == [] and iface.docks == []
    del dock


def test_every_algorithm_documents_every_parameter(processing_provider):
    algorithms = processing_provider.algorithms()
    assert len(algorithms) == len(ALGORITHMS)
    for alg in algorithms:
        help_html = alg.shortHelpString()
        assert alg.group() in ("Hyperspectral", "Abundance", "Sentinel-2", "Geochemistry", "Evaluation", "Batch")
        assert "<h3>References</h3>" in help_html
        for definition in alg.parameterDefinitions():
            from oremap.algorithms.base import COMMON_PARAM_HELP

            texts = alg.OUTPUT_HELP if definition.isDestination() else {**COMMON_PARAM_HELP, **alg.PARAM_HELP}
            text = texts.get(definition.name())
            assert text and len(text) > 20, f"{alg.id()}: {definition.name()} has no help"
            assert definition.description() in help_html
        for output in alg.outputDefinitions():
            if alg.parameterDefinition(output.name()) is None:  # a reported value, not a file
                assert len(alg.OUTPUT_HELP.get(output.name(), "")) > 20, f"{alg.id()}: {output.name()} has no help"
                assert output.description() in help_html


def test_about_text_lists_algorithms(processing_provider):
    from oremap.ui.actions import about_text

    text = about_text(processing_provider)
    assert "oremap:sam_classify" in text and "oremap:unmix_fcls" in text


RELOAD_SCRIPT = r'''
import os, re, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import os

from qgis.core import QgsApplication
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
import qgis.utils
plugins, copy = sys.argv[1], os.path.join(sys.argv[1], "oremap")
qgis.utils.plugin_paths = [plugins]
sys.path.insert(0, plugins)
qgis.utils.updateAvailablePlugins()
assert qgis.utils.loadPlugin("oremap") and qgis.utils.startPlugin("oremap")
registry = QgsApplication.processingRegistry()
before = {a.name(): a.displayName() for a in registry.providerById("oremap").algorithms()}
for name in os.listdir(os.path.join(copy, "algorithms")):   # the upgrade: new files on disk
    path = os.path.join(copy, "algorithms", name)
    if name.endswith(".py") and name != "base.py":
        text = open(path, encoding="utf-8").read()
        open(path, "w", encoding="utf-8").write(re.sub(r'(    DISPLAY_NAME = "[^"]+)"', r'\1 v2"', text))
qgis.utils.reloadPlugin("oremap")
after = {a.name(): a.displayName() for a in registry.providerById("oremap").algorithms()}
print("ALGORITHMS", len(before), len(after))
print("OLD", sorted(n for n in after if not after[n].endswith(" v2")))
'''


def test_an_upgraded_plugin_runs_its_new_algorithms(tmp_path):
    """Plugins > Manage and Install > Upgrade (and Plugin Reloader) unload the plugin, put the new files in place and
    load it again: QGIS forgets the modules it saw imported. The provider imported the algorithm modules with
    importlib, which QGIS does not see, so 15 of the 21 algorithms ran the old code until QGIS restarted."""
    import shutil
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shutil.copytree(root, tmp_path / "oremap", ignore=shutil.ignore_patterns(
        ".venv", ".git", ".build", "test", "bench", "docs", "__pycache__", "demo_output", "dist"))
    script = tmp_path / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith(("ALGORITHMS", "OLD"))]
    assert lines == [f"ALGORITHMS {len(ALGORITHMS)} {len(ALGORITHMS)}", "OLD []"], run.stdout + run.stderr
