"""QGIS desktop smoke test under Xvfb: the plugin loads with a real iface, adds its menu, opens an
algorithm dialog, and an OreMap class raster loads with its legend."""

import os
import shutil
import subprocess

import pytest

from conftest import AVIRIS_NG, ROOT, USGS_LIBRARY, qgis_env

pytestmark = pytest.mark.slow

SCRIPT = r'''
import os, traceback
from qgis.utils import iface, plugins, loadPlugin, startPlugin
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
out = os.environ["OREMAP_SMOKE_OUT"]
log = open(os.path.join(out, "log.txt"), "w")
def step1():
    global dialog
    try:
        log.write(f"loaded={loadPlugin('oremap') and startPlugin('oremap')}\n")
        import processing
        from qgis.core import QgsProject, QgsRasterLayer
        layer = QgsRasterLayer(os.environ["OREMAP_SMOKE_RASTER"], "classes")
        QgsProject.instance().addMapLayer(layer)
        log.write(f"renderer={layer.renderer().type()} classes={len(layer.renderer().classes())}\n")
        log.write("menu=" + "|".join(a.text() for a in iface.pluginMenu().actions()) + "\n")
        dock = plugins["oremap"].show_model_library()
        log.write(f"dock={dock.isVisible()} models={len(dock.items())} "
                  f"toolbar={plugins['oremap'].toolbar_action.text()}\n")
        dialog = processing.createAlgorithmDialog("oremap:sam_classify", {})
        dialog.resize(900, 600)
        dialog.show()
    except Exception:
        log.write(traceback.format_exc())
    QTimer.singleShot(2000, step2)
def step2():
    try:
        dialog.grab().save(os.path.join(out, "dialog.png"))
        log.write("grabbed\n")
    except Exception:
        log.write(traceback.format_exc())
    log.close()
    QApplication.instance().exit(0)
QTimer.singleShot(2000, step1)
'''


def test_plugin_in_qgis_desktop(run_alg, tmp_path):
    if shutil.which("xvfb-run") is None or shutil.which("qgis") is None:
        pytest.fail("xvfb-run and qgis are needed: run `make setup`.")
    classes = run_alg("sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY,
                                       "SPECTRA": "Kaolinite CM9; Goethite WS222",
                                       "OUTPUT_CLASSES": str(tmp_path / "classes.tif")})["OUTPUT_CLASSES"]
    script = tmp_path / "smoke.py"
    script.write_text(SCRIPT)
    env = qgis_env(tmp_path)
    env.pop("QT_QPA_PLATFORM", None)
    env.update(OREMAP_SMOKE_OUT=str(tmp_path), OREMAP_SMOKE_RASTER=classes)
    subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "qgis", "--nologo", "--noversioncheck",
                    "--code", str(script)], env=env, capture_output=True, timeout=180, cwd=ROOT)
    log = (tmp_path / "log.txt").read_text()
    assert "loaded=True" in log, log
    assert "renderer=paletted classes=3" in log, log
    assert "&OreMap" in log, log
    bundled = len([n for n in os.listdir(os.path.join(ROOT, "models")) if n.endswith(".onnx")])
    assert f"dock=True models={bundled} toolbar=OreMap model library" in log, log  # in a real QGIS
    assert "grabbed" in log, log
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(tmp_path / "dialog.png"))
    assert image.width() >= 800 and image.height() >= 500
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20  # a drawn dialog, not a blank window
    assert os.path.exists(classes.replace(".tif", ".qml"))
