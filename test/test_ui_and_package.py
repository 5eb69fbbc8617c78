"""The spectral library viewer works in a real (offscreen) GUI; make package builds an installable zip."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import AVIRIS_NG, ROOT, USGS_LIBRARY, qgis_env

VIEWER_SCRIPT = r"""
import importlib.util, os, sys
root, library = sys.argv[1:3]
spec = importlib.util.spec_from_file_location("oremap", os.path.join(root, "__init__.py"),
                                              submodule_search_locations=[root])
m = importlib.util.module_from_spec(spec); sys.modules["oremap"] = m; spec.loader.exec_module(m)
from qgis.core import QgsApplication
app = QgsApplication([], True)
app.initQgis()
from qgis.PyQt.QtGui import QImage
from oremap.ui.library_viewer import LibraryViewerDialog
dialog = LibraryViewerDialog(None, library)
dialog.resize(800, 400)
dialog.filter_edit.setText("goethite")
visible = [dialog.names.item(i).text() for i in range(dialog.names.count()) if not dialog.names.item(i).isHidden()]
dialog.filter_edit.setText("")
for i in (0, 3):
    dialog.names.item(i).setSelected(True)
dialog.copy_names()
image = QImage(dialog.plot.size(), QImage.Format_RGB32)
dialog.plot.render(image)
coloured = sum(1 for x in range(0, image.width(), 2) for y in range(0, image.height(), 2)
               if len({image.pixelColor(x, y).red(), image.pixelColor(x, y).green(), image.pixelColor(x, y).blue()}) > 1)
print(dialog.names.count(), "|", ";".join(visible), "|", app.clipboard().text(), "|", coloured)
del dialog
app.exitQgis()
"""


def test_library_viewer_lists_filters_plots_and_copies():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", VIEWER_SCRIPT, ROOT, USGS_LIBRARY], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    count, visible, clipboard, coloured = [p.strip() for p in proc.stdout.strip().splitlines()[-1].split("|")]
    assert int(count) == 24
    assert visible == "Goethite WS222 Medium Gr. BECKa AREF"
    assert clipboard == "Kaolinite CM9 BECKb AREF; Alunite GDS84 Na03 BECKa AREF"
    assert int(coloured) > 50  # two coloured curves were drawn (kaolinite blue, alunite orange)


def test_package_zip_holds_the_plugin_only(tmp_path):
    proc = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "package.py"), "0.0.test"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    target = os.path.join(ROOT, "dist", "oremap-0.0.test.zip")
    try:
        with zipfile.ZipFile(target) as zf:
            names = zf.namelist()
    finally:
        os.remove(target)
    assert "oremap/metadata.txt" in names and "oremap/__init__.py" in names
    assert "oremap/processing_provider/provider.py" in names and "oremap/core/engine/unmixing.py" in names
    assert "oremap/LICENSE" in names
    assert "oremap/docs/user_guide.md" in names and "oremap/docs/images/mine_detection.png" in names
    assert all(n.startswith("oremap/") for n in names)
    assert not [n for n in names if "/test/" in n or "__pycache__" in n or n.endswith(".pyc") or "bench/" in n]


@pytest.mark.slow
def test_package_installs_in_a_fresh_profile_and_lists_every_algorithm(tmp_path):
    """The zip, extracted into a new profile's plugin folder as 'Install from ZIP' does, is the only OreMap
    QGIS sees; once enabled, qgis_process lists every algorithm of its provider."""
    from oremap.algorithms import ALGORITHMS

    proc = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "package.py"), "0.0.test",
                           "--dest", str(tmp_path / "dist")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    profile = tmp_path / "profile"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "dist" / "oremap-0.0.test.zip") as zf:
        zf.extractall(plugins)
    empty = tmp_path / "no_other_plugins"
    empty.mkdir()
    env = qgis_env(tmp_path)
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(profile), QGIS_PLUGINPATH=str(empty))
    exe = shutil.which("qgis_process")
    assert exe, "qgis_process is not installed: run `make setup`."
    enable = subprocess.run([exe, "plugins", "enable", "oremap"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert enable.returncode == 0, enable.stdout[-2000:] + enable.stderr[-2000:]
    listed = subprocess.run([exe, "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    ids = {line.split()[0] for line in listed.stdout.splitlines() if line.strip().startswith("oremap:")}
    assert ids == {f"oremap:{name}" for name, _ in ALGORITHMS}
    # the installed copy runs, with its bundled model (not the checkout's)
    run = subprocess.run([exe, "--json", "run", "oremap:classify_spectral_cnn", "--", f"INPUT={AVIRIS_NG}", "MODEL=0",
                          f"OUTPUT_CLASSES={tmp_path / 'classes.tif'}"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]
    assert results["MODEL_USED"] == str(plugins / "oremap" / "models" / "usgs_minerals_cnn.onnx")
