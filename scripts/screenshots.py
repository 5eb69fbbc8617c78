#!/usr/bin/env python3
"""Regenerate the user guide's screenshots (docs/images/*.png) from a real QGIS desktop under Xvfb.

    .venv/bin/python scripts/screenshots.py                  # both phases, about 3 minutes
    .venv/bin/python scripts/screenshots.py --desktop-only   # grab again from the last outputs

Two phases, both in this file:

1. *prepare* (this Python, QGIS offscreen): runs one workflow per algorithm family on the sample data
   with Processing and writes the outputs (styled rasters and vectors, models, reports) to
   ``.build/screenshots/``; a few minutes, most of it training the small prospectivity ResNet.
2. *desktop* (``xvfb-run qgis --code scripts/screenshots.py``): loads OreMap in a throwaway profile,
   opens the model library, dialogs and output layers, runs one algorithm from its dialog so its
   HTML report reaches the Results Viewer, and grabs the windows into ``docs/images/``. Each PNG
   is kept under 150 KB (scaled, then reduced to 256 colours if needed).

Needs ``xvfb-run`` and ``qgis`` (``make setup``) and the shared data beside the checkout
(``../shared/data``, or ``OREMAP_SHARED_DATA``).
"""

import json
import os
import shutil
import subprocess
import sys
import time
import traceback

try:
    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
except NameError:  # run by `qgis --code`, which defines no __file__
    ROOT = os.environ["OREMAP_ROOT"]
WORK = os.path.join(ROOT, ".build", "screenshots")
IMAGES = os.path.join(ROOT, "docs", "images")
SHARED = os.environ.get("OREMAP_SHARED_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
DATA = os.path.join(ROOT, "test", "data")
MAX_BYTES = 150 * 1024

AVIRIS_NG = os.path.join(DATA, "ang20150420t182808_corr_v1e_img_4200-4210_70-80.img")
LIBRARY = os.path.join(DATA, "usgs_minerals.sli")
SURVEY = os.path.join(SHARED, "geochem", "area1_sediment_au.csv")
SITES = os.path.join(SHARED, "geochem", "area1_sediment_au_site.csv")
S2_PATCH = os.path.join(SHARED, "sentinel2", "BigEarthNet-S2-Example", "S2A_MSIL2A_20170613T101031_87_48")
ELEMENTS = ["Au_ppm", "As_ppm", "Cu_ppm", "Sb_ppm", "Bi_ppm", "W_ppm"]


def csv_uri(path):
    return f"file://{path}?type=csv&delimiter=,&xField=X&yField=Y&crs=EPSG:4326&detectTypes=yes&geomType=point"


# ---------------------------------------------------------------------------------------------
# Phase 1: run the workflows (QGIS offscreen)
# ---------------------------------------------------------------------------------------------
def prepare():
    """Run the workflows, return ``{name: path}`` of their outputs (also saved as outputs.json)."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ.setdefault("PROJ_DATA", "/usr/share/proj")
    sys.path.insert(0, os.path.join(ROOT, "test"))
    sys.path.append("/usr/share/qgis/python/plugins")
    import conftest  # imports the checkout as package 'oremap'

    from qgis.core import QgsApplication, QgsVectorLayer

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    conftest.ensure_provider()
    import processing

    if os.path.isdir(WORK):
        shutil.rmtree(WORK)
    models = os.path.join(WORK, "models")
    os.makedirs(models)
    out = {"work": WORK, "models": models}

    def run(name, params):
        started = time.time()
        result = processing.run(f"oremap:{name}", params)
        print(f"  {name}: {time.time() - started:.0f} s", flush=True)
        return result

    def path(name):
        out[name] = os.path.join(WORK, name)
        return out[name]

    print("Hyperspectral: SAM and the bundled CNN on the AVIRIS-NG tile", flush=True)
    run("sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": LIBRARY, "THRESHOLD": 0.25,
                         "SPECTRA": "Kaolinite CM9;Alunite GDS84;Muscovite GDS107;Calcite WS272;Goethite WS222;"
                                    "Lawn_Grass GDS91",
                         "OUTPUT_CLASSES": path("sam_classes.tif"), "OUTPUT_SCORE": path("sam_angle.tif")})
    run("classify_spectral_cnn", {"INPUT": AVIRIS_NG, "MODEL": 0, "MIN_CONFIDENCE": 0.5,
                                  "OUTPUT_CLASSES": path("cnn_classes.tif"),
                                  "OUTPUT_CONFIDENCE": path("cnn_confidence.tif")})

    print("Abundance: train on a tray of mixed USGS spectra, predict on another", flush=True)
    from abundance_scene import LISTED, make_scene

    train = make_scene(os.path.join(WORK, "tray"), seed=0, name="train")
    test = make_scene(os.path.join(WORK, "tray"), seed=1, name="test")
    out.update(tray_train=train["raster"], tray_rois=train["rois"], tray_test=test["raster"])
    run("train_abundance_model", {"INPUT": train["raster"], "ROIS": train["rois"],
                                  "FIELDS": [m.lower() for m in LISTED], "FAMILIES": [0, 1, 2], "FOLDS": 5,
                                  "SEED": 3, "OUTPUT_MODEL": os.path.join(models, "tray_abundance.onnx"),
                                  "OUTPUT_REPORT": os.path.join(models, "tray_abundance_report.html")})
    run("predict_abundance", {"INPUT": test["raster"], "MODEL_FILE": os.path.join(models, "tray_abundance.onnx"),
                              "LEVEL": 90, "OUTPUT": path("abundance.tif"), "OUTPUT_INTERVALS": path("intervals.tif"),
                              "OUTPUT_DOMINANT": path("dominant.tif"), "OUTPUT_TABLE": path("abundance.csv")})

    print("Geochemistry: IDW grids of the stream-sediment survey, a prospectivity ResNet, target cells",
          flush=True)
    samples = QgsVectorLayer(csv_uri(SURVEY), "samples", "delimitedtext")
    sites = QgsVectorLayer(csv_uri(SITES), "gold sites", "delimitedtext")
    run("idw_interpolate", {"INPUT": samples, "FIELDS": ELEMENTS, "CELL_SIZE": 500, "LOG10": True,
                            "MAX_DISTANCE": 5000, "OUTPUT": path("elements.tif")})
    run("train_prospectivity_cnn", {"INPUT": out["elements.tif"], "DEPOSITS": sites, "WINDOW": 16, "DEPTH": 0,
                                    "WIDTH": 8, "EPOCHS": 5, "FOLDS": 2, "JITTER_COPIES": 2, "SEED": 1,
                                    "OUTPUT_MODEL": os.path.join(models, "area1_prospectivity.onnx"),
                                    "OUTPUT_REPORT": os.path.join(models, "area1_prospectivity_report.html")})
    run("prospectivity_map", {"INPUT": out["elements.tif"], "DEPOSITS": sites,
                              "MODEL_FILE": os.path.join(models, "area1_prospectivity.onnx"),
                              "OUTPUT": path("probability.tif"), "OUTPUT_CELLS": path("target_cells.gpkg")})
    del samples, sites

    if QgsApplication.processingRegistry().algorithmById("oremap:s2_indices") is not None:
        print("Sentinel-2: spectral indices of a BigEarthNet patch", flush=True)
        run("s2_indices", {"INPUT_FOLDER": S2_PATCH, "OUTPUT": path("s2_indices.tif")})
    print("Sentinel-2: mine detection on synthetic mines in real backgrounds (scripts/demo_mines.py)", flush=True)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import demo_mines

    mines = demo_mines.chain(run, os.path.join(WORK, "mines"), demo_mines.FULL, log=print)
    shutil.copy(mines["paths"]["unet.onnx"], os.path.join(models, "scene_mines_unet.onnx"))
    out.update(mine_scene=mines["paths"]["unseen_scene"], mine_truth=mines["paths"]["unseen_mines"],
               mine_probability=mines["paths"]["unet_probability.tif"],
               mine_footprints=mines["paths"]["unet_mines.gpkg"])
    with open(os.path.join(WORK, "outputs.json"), "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=1)
    Processing.deinitialize()
    app.exitQgis()
    return out


def launch_desktop():
    """Run this file inside QGIS desktop under Xvfb (phase 2)."""
    for tool in ("xvfb-run", "qgis"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: run `make setup`.")
    plugins = os.path.join(ROOT, ".build", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "oremap")
    if not os.path.lexists(link):
        os.symlink(os.path.join("..", ".."), link)
    profile = os.path.join(WORK, "profile")
    shutil.rmtree(profile, ignore_errors=True)  # a fresh profile: the same windows every time
    runtime = os.path.join(WORK, "runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    os.makedirs(IMAGES, exist_ok=True)
    env = dict(os.environ, QGIS_PLUGINPATH=plugins, QGIS_CUSTOM_CONFIG_PATH=profile, XDG_RUNTIME_DIR=runtime,
               PROJ_DATA="/usr/share/proj", OREMAP_SCREENSHOTS_PHASE="desktop", OREMAP_ROOT=ROOT,
               PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ.get("PATH", ""))
    env.pop("QT_QPA_PLATFORM", None)  # a real (Xvfb) display
    subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "qgis", "--nologo", "--noversioncheck",
                    "--code", os.path.join(ROOT, "scripts", "screenshots.py")], env=env, cwd=ROOT, timeout=420,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log_path = os.path.join(WORK, "desktop_log.txt")
    log = open(log_path, encoding="utf-8").read() if os.path.exists(log_path) else "(no log)"
    print(log)
    return "finished" in log and "Traceback" not in log


def main():
    if "--desktop-only" not in sys.argv:
        prepare()
    ok = launch_desktop()
    for name in sorted(os.listdir(IMAGES)):
        print(f"  docs/images/{name}: {os.path.getsize(os.path.join(IMAGES, name)) // 1024} KB")
    sys.exit(0 if ok else 1)


# ---------------------------------------------------------------------------------------------
# Phase 2: inside QGIS desktop
# ---------------------------------------------------------------------------------------------
def save_png(image, name, max_width=1000):
    """Save a QImage as docs/images/<name>, scaled to ``max_width`` and under 150 KB."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage

    target = os.path.join(IMAGES, name)
    width = min(max_width, image.width())
    while True:
        smooth = Qt.TransformationMode.SmoothTransformation
        scaled = image.scaledToWidth(width, smooth) if width < image.width() else image
        scaled.save(target, "PNG", 9)
        if os.path.getsize(target) <= MAX_BYTES:
            return target
        dither = Qt.ImageConversionFlag.ThresholdDither | Qt.ImageConversionFlag.AutoColor
        scaled.convertToFormat(QImage.Format.Format_Indexed8, dither).save(target, "PNG", 9)
        if os.path.getsize(target) <= MAX_BYTES:
            return target
        width = int(width * 0.85)


def desktop():
    from qgis.core import (
        QgsContrastEnhancement,
        QgsCoordinateReferenceSystem,
        QgsProject,
        QgsRasterLayer,
        QgsRasterMinMaxOrigin,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QTimer
    from qgis.PyQt.QtWidgets import QApplication, QDockWidget
    from qgis.utils import iface, loadPlugin, plugins, startPlugin

    with open(os.path.join(WORK, "outputs.json"), encoding="utf-8") as handle:
        out = json.load(handle)
    log = open(os.path.join(WORK, "desktop_log.txt"), "w", encoding="utf-8")
    window = iface.mainWindow()
    state = {}

    def say(text):
        log.write(text + "\n")
        log.flush()

    def grab_window(name):
        save_png(window.grab().toImage(), name)
        say(f"saved {name}")

    def layers(*specs, zoom=None):
        """Replace the project's layers; ``specs``: (path or uri, name, provider)."""
        project = QgsProject.instance()
        project.removeAllMapLayers()
        project.setCrs(QgsCoordinateReferenceSystem())
        added = []
        for source, name, provider in specs:
            layer = QgsRasterLayer(source, name) if provider == "gdal" else QgsVectorLayer(source, name, provider)
            if not layer.isValid():
                say(f"invalid layer {source}")
                continue
            project.addMapLayer(layer)
            added.append(layer)
        canvas = iface.mapCanvas()
        target = next((lay for lay in added if lay.name() == zoom), added[-1] if added else None)
        if target is not None:
            project.setCrs(target.crs())
            canvas.setDestinationCrs(target.crs())
            canvas.setExtent(target.extent())
            canvas.zoomByFactor(1.08)
        canvas.refresh()
        return added

    def legend(layer, expanded=True, visible=True):
        """Expand or collapse, show or hide a layer's legend entry."""
        node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
        node.setItemVisibilityChecked(visible)
        node.setExpanded(expanded)
        view = iface.layerTreeView()
        view.setExpanded(view.node2index(node), expanded)

    def true_colour(layer, rgb_nm=(650, 550, 460)):
        """Show a hyperspectral layer in true colour (bands nearest to the wavelengths)."""
        from oremap.core.engine.wavelengths import band_info_from_raster
        import rasterio

        with rasterio.open(layer.source()) as ds:
            centers = list(band_info_from_raster(ds).centers)
        bands = [1 + min(range(len(centers)), key=lambda i: abs(centers[i] - nm)) for nm in rgb_nm]
        renderer = layer.renderer()
        renderer.setRedBand(bands[0])
        renderer.setGreenBand(bands[1])
        renderer.setBlueBand(bands[2])
        layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                     QgsRasterMinMaxOrigin.CumulativeCut)
        layer.triggerRepaint()

    # -- the steps, run one after the other with time to draw -----------------------------------
    def setup():
        window.resize(1280, 860)
        window.move(0, 0)
        say(f"loaded={loadPlugin('oremap') and startPlugin('oremap')}")
        from oremap.processing_provider import settings

        settings.set_value(settings.MODEL_FOLDER_SETTING, out["models"])
        for dock in window.findChildren(QDockWidget):
            if dock.objectName() in ("Browser", "Browser2"):
                dock.hide()

    def model_library():
        plugin = plugins["oremap"]
        state["dock"] = dock = plugin.show_model_library()
        cube, classes = layers((AVIRIS_NG, "AVIRIS-NG tile", "gdal"),
                               (out["cnn_classes.tif"], "Mineral classes (CNN)", "gdal"))
        true_colour(cube)
        legend(cube, expanded=False)
        state["expand"] = classes
        dock.select(os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx"))
        say(f"dock models={len(dock.items())}")

    def model_library_shot():
        grab_window("model_library.png")
        save_png(state["dock"].grab().toImage(), "model_library_dock.png", max_width=480)

    def classify_dialog():
        state["dialog"] = state["dock"].open_algorithm()
        state["dialog"].resize(980, 640)
        say(f"dialog={state['dialog'].algorithm().id()}")

    def classify_dialog_shot():
        save_png(state["dialog"].grab().toImage(), "classify_dialog.png")
        state["dialog"].close()

    def sam_dialog():
        import processing

        state["dialog"] = processing.createAlgorithmDialog("oremap:sam_classify", {
            "INPUT": AVIRIS_NG, "LIBRARY": LIBRARY, "THRESHOLD": 0.25,
            "SPECTRA": "Kaolinite CM9;Alunite GDS84;Muscovite GDS107;Calcite WS272;Goethite WS222;Lawn_Grass GDS91"})
        state["dialog"].resize(980, 640)
        state["dialog"].show()

    def sam_dialog_shot():
        save_png(state["dialog"].grab().toImage(), "sam_dialog.png")
        state["dialog"].close()

    def hyperspectral_map():
        state["dock"].hide()
        cube, angle, classes = layers((AVIRIS_NG, "AVIRIS-NG tile", "gdal"),
                                      (out["sam_angle.tif"], "Spectral angle (SAM)", "gdal"),
                                      (out["sam_classes.tif"], "Mineral classes (SAM)", "gdal"))
        true_colour(cube)
        legend(cube, expanded=False)
        legend(angle, expanded=True, visible=False)
        say(f"classes renderer={classes.renderer().type()} classes={len(classes.renderer().classes())}")

    def abundance_map():
        abundance, dominant = layers((out["abundance.tif"], "Abundances (%)", "gdal"),
                                     (out["dominant.tif"], "Dominant mineral", "gdal"))
        legend(abundance, expanded=False)
        legend(dominant)
        say(f"dominant renderer={dominant.renderer().type()}")

    def abundance_dialog():
        import processing

        state["dialog"] = processing.createAlgorithmDialog("oremap:train_abundance_model", {
            "INPUT": out["tray_train"], "ROIS": out["tray_rois"]})
        state["dialog"].resize(980, 700)
        state["dialog"].show()

    def abundance_dialog_shot():
        save_png(state["dialog"].grab().toImage(), "abundance_dialog.png")
        state["dialog"].close()

    def geochem_map():
        layers((out["elements.tif"], "Element grids (log10)", "gdal"),
               (csv_uri(SURVEY), "Stream-sediment samples", "delimitedtext"),
               zoom="Element grids (log10)")

    def prospectivity_map():
        probability, cells, sites = layers((out["probability.tif"], "Probability of a deposit", "gdal"),
                                           (out["target_cells.gpkg"], "Target cells", "ogr"),
                                           (csv_uri(SITES), "Gold sites", "delimitedtext"), zoom="Target cells")
        legend(probability, expanded=False, visible=False)
        state["expand"] = cells
        say(f"cells renderer={cells.renderer().type()}")

    def expand_legend():
        legend(state["expand"])

    def sentinel2_map():
        if "s2_indices.tif" not in out:
            say("no Sentinel-2 indices (oremap:s2_indices not available)")
            return
        indices, = layers((out["s2_indices.tif"], "Sentinel-2 indices", "gdal"))
        legend(indices)

    def sentinel2_shot():
        if "s2_indices.tif" in out:
            grab_window("sentinel2_indices.png")

    def mines_map():
        from qgis.core import QgsFillSymbol

        scene, probability, footprints, truth = layers(
            (out["mine_scene"], "Sentinel-2 scene (unseen, true colour)", "gdal"),
            (out["mine_probability"], "P(mine), U-Net", "gdal"),
            (out["mine_footprints"], "Detected mine footprints", "ogr"),
            (out["mine_truth"] + "|layername=mines|subset=\"feature\" = 'mine'", "True mine outlines", "ogr"),
            zoom="Sentinel-2 scene (unseen, true colour)")
        renderer = scene.renderer()
        renderer.setRedBand(4)  # B4, B3, B2 of the 12 L2A bands in order
        renderer.setGreenBand(3)
        renderer.setBlueBand(2)
        scene.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                     QgsRasterMinMaxOrigin.CumulativeCut)
        scene.triggerRepaint()
        truth.renderer().setSymbol(QgsFillSymbol.createSimple(
            {"color": "0,0,0,0", "outline_color": "0,229,255", "outline_width": "0.6", "outline_style": "dash"}))
        truth.triggerRepaint()
        iface.layerTreeView().refreshLayerSymbology(truth.id())
        legend(scene, expanded=False)
        legend(probability, expanded=False, visible=False)
        state["expand"] = footprints
        say(f"footprints renderer={footprints.renderer().type()} n={footprints.featureCount()}")

    def results_viewer():
        import processing

        state["waited"] = 0
        grids, sites = layers((out["elements.tif"], "Element grids (log10)", "gdal"),
                              (csv_uri(SITES), "Gold sites", "delimitedtext"), zoom="Element grids (log10)")
        state["dialog"] = dialog = processing.createAlgorithmDialog("oremap:evaluate_prospectivity", {
            "SCORE_RASTER": grids, "SCORE_BAND": 1, "DEPOSITS": sites,
            "OUTPUT_HTML": os.path.join(WORK, "au_evaluation.html")})
        dialog.show()
        dialog.runAlgorithm()

    def results_wait():
        from processing.core.ProcessingResults import resultsList

        if not resultsList.getResults() and state["waited"] < 60:
            state["waited"] += 1
            return "again"
        say("results=" + "|".join(f"{r.name}:{r.filename}" for r in resultsList.getResults()))
        return None

    def results_shot():
        from qgis.PyQt import sip

        if not sip.isdeleted(state["dialog"]):  # the dialog closes itself after a successful run
            state["dialog"].close()
        grab_window("results_viewer.png")

    def settings_dialog():
        from oremap.ui.settings_dialog import SettingsDialog

        state["dialog"] = SettingsDialog(window)
        state["dialog"].show()

    def settings_shot():
        save_png(state["dialog"].grab().toImage(), "settings.png")
        state["dialog"].close()

    steps = [(setup, 3000), (model_library, 3000), (expand_legend, 1500), (model_library_shot, 500),
             (classify_dialog, 2500),
             (classify_dialog_shot, 500), (sam_dialog, 2500), (sam_dialog_shot, 500), (hyperspectral_map, 4000),
             (lambda: grab_window("hyperspectral_map.png"), 500), (abundance_map, 4000),
             (lambda: grab_window("abundance_map.png"), 500), (abundance_dialog, 2500),
             (abundance_dialog_shot, 500), (geochem_map, 4000), (lambda: grab_window("geochemistry_idw.png"), 500),
             (prospectivity_map, 3000), (expand_legend, 1500), (lambda: grab_window("prospectivity_map.png"), 500),
             (sentinel2_map, 4000), (sentinel2_shot, 500), (mines_map, 4000), (expand_legend, 1500),
             (lambda: grab_window("mine_detection.png"), 500),
             (results_viewer, 2000), (results_wait, 1000), (results_shot, 500), (settings_dialog, 2500),
             (settings_shot, 500)]

    def next_step():
        if not steps:
            say("finished")
            log.close()
            QApplication.instance().exit(0)
            return
        function, delay = steps[0]
        try:
            again = function() == "again"
        except Exception:  # noqa: BLE001 - logged; the run goes on with the next screenshot
            say(traceback.format_exc())
            again = False
        if not again:
            steps.pop(0)
        QTimer.singleShot(delay, next_step)

    QTimer.singleShot(3000, next_step)
    QTimer.singleShot(300000, lambda: (say("timed out"), log.close(), QApplication.instance().exit(1)))


if os.environ.get("OREMAP_SCREENSHOTS_PHASE") == "desktop":
    desktop()
elif __name__ == "__main__":
    main()
