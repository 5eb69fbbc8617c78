"""Screenshot tests, checked by pixel statistics: the model library dock, a class map with its colours and
a graduated vector output, each rendered offscreen."""

import os

import numpy as np
import pytest

from conftest import DATA, USGS_LIBRARY

JASPER = os.path.join(DATA, "jasper_ridge_40x40.tif")  # real AVIRIS, 40 x 40, north-up pixel grid


def image_array(image):
    """A QImage as an (h, w, 3) uint8 array."""
    from qgis.PyQt.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGB888)
    ptr = image.constBits()
    ptr.setsize(image.byteCount())
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def render(layer, width, height, extent=None):
    """Render one layer on white at ``width`` x ``height`` pixels; returns the array."""
    from qgis.core import QgsMapRendererCustomPainterJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor, QImage, QPainter

    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent or layer.extent())
    settings.setOutputSize(QSize(width, height))
    settings.setBackgroundColor(QColor("white"))
    image = QImage(QSize(width, height), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.start()
    job.waitForFinished()
    painter.end()
    return image_array(image)


def colour_of(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_class_map_renders_its_class_colours_in_the_right_amounts(run_alg, tmp_path):
    import rasterio
    from qgis.core import QgsRasterLayer

    out = run_alg("sam_classify", {"INPUT": JASPER, "LIBRARY": USGS_LIBRARY,
                                   "SPECTRA": "Kaolinite CM9; Goethite WS222; Lawn_Grass GDS91",
                                   "OUTPUT_CLASSES": str(tmp_path / "classes.tif")})["OUTPUT_CLASSES"]
    with rasterio.open(out) as ds:
        codes = ds.read(1)
        legend = {int(k): v for k, v in ds.colormap(1).items()}
    layer = QgsRasterLayer(out, "classes", "gdal")  # loads classes.qml, the style written by the run
    try:
        assert layer.renderer().type() == "paletted"
        names = {c.value: c.label for c in layer.renderer().classes()}
        colours = {c.value: c.color.getRgb()[:3] for c in layer.renderer().classes()}
        scale = 4  # each raster cell -> 4 x 4 screen pixels
        pixels = render(layer, codes.shape[1] * scale, codes.shape[0] * scale)
    finally:
        del layer
    assert names[1].startswith("Kaolinite") and names[2].startswith("Goethite")
    present = np.unique(codes)
    assert len(present) >= 2  # the check below compares at least two classes
    flat = pixels.reshape(-1, 3)
    for value in present:
        expected = int((codes == value).sum()) * scale * scale
        rgb = colours[int(value)]
        got = int(np.all(flat == rgb, axis=1).sum())
        assert got == expected, (names.get(int(value)), got, expected)
        assert rgb == tuple(legend[int(value)][:3])  # the same colours as the GeoTIFF's own colour table


def _cells_gpkg(path, probabilities, size=10.0):
    """A row of square cells (EPSG:32750) with a probability each, written with OGR."""
    from osgeo import ogr, osr

    driver = ogr.GetDriverByName("GPKG")
    ds = driver.CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32750)
    lyr = ds.CreateLayer("cells", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("probability", ogr.OFTReal))
    for i, p in enumerate(probabilities):
        x0 = i * size
        feature = ogr.Feature(lyr.GetLayerDefn())
        feature.SetField("probability", float(p))
        feature.SetGeometry(ogr.CreateGeometryFromWkt(
            f"POLYGON(({x0} 0,{x0 + size} 0,{x0 + size} {size},{x0} {size},{x0} 0))"))
        lyr.CreateFeature(feature)
        feature = None
    ds = None


GRADUATED = {"kind": "graduated", "field": "probability", "ramp": "Magma", "min": 0.0, "max": 1.0, "classes": 5,
             "geometry": "Polygon"}


def test_graduated_vector_style_renders_one_colour_per_class(tmp_path, qgis_app):
    from qgis.core import QgsRectangle, QgsStyle, QgsVectorLayer

    from oremap.algorithms import styles

    probabilities = [0.05, 0.15, 0.3, 0.5, 0.7, 0.95, 0.99]  # classes 0, 0, 1, 2, 3, 4, 4
    path = str(tmp_path / "cells.gpkg")
    _cells_gpkg(path, probabilities)
    qml = styles.write_style(path, GRADUATED)
    assert qml == str(tmp_path / "cells.qml")
    layer = QgsVectorLayer(path, "cells", "ogr")  # the .qml beside it is its default style
    try:
        renderer = layer.renderer()
        assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "probability"
        bounds = [v for r in renderer.ranges() for v in (r.lowerValue(), r.upperValue())]
        assert bounds == pytest.approx([0.0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0])
        pixels = render(layer, 70 * 4, 10 * 4, QgsRectangle(0, 0, 70, 10))
    finally:
        del layer
    centres = [tuple(int(v) for v in pixels[20, 20 + 40 * i]) for i in range(len(probabilities))]
    ramp = QgsStyle.defaultStyle().colorRamp("Magma")
    for p, got in zip(probabilities, centres):
        k = min(int(p / 0.2), 4)
        colour = ramp.color((k + 0.5) / 5)
        expected = [0.85 * c + 0.15 * 255 for c in (colour.red(), colour.green(), colour.blue())]  # 85 % opaque
        assert got == pytest.approx(expected, abs=2), (p, got, expected)
    assert centres[0] == centres[1] and centres[5] == centres[6]
    luminance = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b in centres[1:6]]
    assert all(b > a + 10 for a, b in zip(luminance, luminance[1:]))  # magma: dark (unlikely) to bright


def test_a_style_file_is_the_same_on_every_run(tmp_path, qgis_app):
    """QGIS 3.30 and later write a random id on every symbol layer and every class of a graduated renderer, and
    3.26 and later give a new layer's elevation profile random colours, so the same output got another .qml on each
    run and a batch's styles differed from a single run's (seen on Debian 13's QGIS 3.40). The ids are dropped (QGIS
    gives what it reads without one a new id) and the elevation settings are not saved; the style still loads whole.
    Qt 5 writes attributes in the order of a hash seeded per process: they are sorted (the byte-equal .qml of a
    qgis_process run and a Python run is checked in test_qgis_process)."""
    from qgis.core import QgsVectorLayer

    from oremap.algorithms import styles

    one = ('<qgis version="3.40" minScale="1e+08"><renderer-v2 type="graduatedSymbol" attr="p"><ranges>'
           '<range symbol="0" label="low" uuid="{ab8a669a-0684-4b00-a11e-a9b8fc86361f}"/></ranges><symbols>'
           '<symbol name="0"><layer class="SimpleFill" id="{2b0b8b13-7b26-429a-aacc-e733d42be846}" enabled="1"/>'
           '</symbol></symbols></renderer-v2><layer class="SimpleLine" id="kept"/><note>a  b</note></qgis>')
    other = ('<!DOCTYPE qgis PUBLIC \'http://mrcc.com/qgis.dtd\' \'SYSTEM\'>\n<qgis minScale="1e+08" version="3.40">\n'
             '  <renderer-v2 attr="p" type="graduatedSymbol"><ranges>'
             '<range uuid="{0c1d2e3f-0684-4b00-a11e-a9b8fc863600}" label="low" symbol="0"/></ranges><symbols><symbol name="0"><layer enabled="1" '
             'id="{99999999-7b26-429a-aacc-e733d42be846}" class="SimpleFill"/></symbol></symbols></renderer-v2>'
             '<layer id="kept" class="SimpleLine"/><note>a  b</note></qgis>')
    text = styles.stable_style_text(one)
    assert text == styles.stable_style_text(other)
    assert text.splitlines()[:3] == ["<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>",
                                     '<qgis minScale="1e+08" version="3.40">',
                                     '  <renderer-v2 attr="p" type="graduatedSymbol">']
    assert '<range label="low" symbol="0" />' in text and '<layer enabled="1" class="SimpleFill"' not in text
    assert '<layer class="SimpleFill" enabled="1" />' in text and '<layer class="SimpleLine" id="kept" />' in text
    assert "<note>a  b</note>" in text and "{" not in text
    written = []
    for run in ("a", "b"):
        path = str(tmp_path / f"cells_{run}.gpkg")
        _cells_gpkg(path, [0.05, 0.5, 0.99])
        with open(styles.write_style(path, GRADUATED)) as handle:
            written.append(handle.read())
    assert written[0] == written[1] and 'id="{' not in written[0]
    layer = QgsVectorLayer(str(tmp_path / "cells_a.gpkg"), "cells", "ogr")
    try:
        assert layer.renderer().type() == "graduatedSymbol" and len(layer.renderer().ranges()) == 5
    finally:
        del layer


def test_temporary_vector_output_gets_the_style_when_loaded(processing_provider, tmp_path):
    """A memory-layer output (no file to put a .qml beside) is styled by the post-processor."""
    from qgis.core import (
        QgsFeature,
        QgsField,
        QgsGeometry,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProject,
        QgsVectorLayer,
    )
    from oremap.algorithms import qt_compat as field_type

    alg = next(a for a in processing_provider.algorithms() if a.name() == "prospectivity_map").create()
    layer = QgsVectorLayer("Polygon?crs=EPSG:32750", "cells", "memory")
    layer.dataProvider().addAttributes([QgsField("probability", field_type.DOUBLE)])
    layer.updateFields()
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((0 0,1 0,1 1,0 1,0 0))"))
    feature.setAttributes([0.5])
    layer.dataProvider().addFeature(feature)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    context.temporaryLayerStore().addMapLayer(layer)
    layer_id = layer.id()
    context.addLayerToLoadOnCompletion(layer_id, QgsProcessingContext.LayerDetails("cells", QgsProject.instance()))
    alg.style_output(context, layer_id, GRADUATED)
    # a Graphical Modeler run deletes each step's algorithm before its outputs load: the processor, kept on the
    # algorithm only, was gone and the model's temporary output loaded unstyled
    import gc

    from oremap.algorithms import styles

    del alg
    gc.collect()
    processor = context.layerToLoadOnCompletionDetails(layer_id).postProcessor()
    assert isinstance(processor, styles.StylePostProcessor) and processor.qml is None
    processor.postProcessLayer(layer, context, QgsProcessingFeedback())
    assert layer.renderer().type() == "graduatedSymbol" and len(layer.renderer().ranges()) == 5
    del layer, processor, context


def test_model_library_dock_screenshot_shows_the_class_colours(processing_provider, tmp_path):
    from oremap.core.engine.bundled import MODELS_DIR
    from oremap.core.engine.model_format import read_model_info
    from oremap.processing_provider import settings
    from oremap.ui.model_library import ModelLibraryDock

    before = settings.raw_value(settings.MODEL_FOLDER_SETTING)
    settings.set_value(settings.MODEL_FOLDER_SETTING, str(tmp_path))
    dock = ModelLibraryDock()
    try:
        dock.resize(460, 1500)
        dock.splitter.setSizes([150, 1250])
        dock.select(os.path.join(MODELS_DIR, "usgs_minerals_cnn.onnx"))
        image = dock.grab().toImage()
        image.save(str(tmp_path / "dock.png"))
        pixels = image_array(image).reshape(-1, 3)
    finally:
        dock.deleteLater()
        del dock
        settings.set_value(settings.MODEL_FOLDER_SETTING, before)
    info = read_model_info(os.path.join(MODELS_DIR, "usgs_minerals_cnn.onnx"))
    counts = {c["name"]: int(np.all(pixels == colour_of(c["color"]), axis=1).sum()) for c in info.classes}
    assert all(n >= 40 for n in counts.values()), sorted(counts.items(), key=lambda kv: kv[1])[:4]
    # a drawn panel, not a blank one: many distinct colours, mostly light background
    assert len(np.unique(pixels, axis=0)) > 60
    assert (pixels.mean(axis=1) > 200).mean() > 0.5


def test_accented_mineral_names_get_their_colour():
    from oremap.core.engine.colors import MINERAL_COLOURS, class_colours

    assert class_colours(["Hématite", "Kaolinite"]) == [MINERAL_COLOURS["hematite"], MINERAL_COLOURS["kaolinite"]]


def test_palette_colours_stay_apart_from_the_minerals_of_the_map():
    """A class without a conventional colour no longer gets the palette's blue beside kaolinite (CIE76 3.3) or its
    red beside hematite (5.3), and a mineral listed after others keeps its own colour."""
    from oremap.core.engine.colors import DISTINCT_DELTA_E, MINERAL_COLOURS, PALETTE, class_colours, delta_e

    assert delta_e(MINERAL_COLOURS["kaolinite"], PALETTE[1]) < 5
    assert delta_e(MINERAL_COLOURS["hematite"], PALETTE[0]) < 6
    colours = class_colours(["Kaolinite", "Rock A", "Rock B", "Hematite"])
    assert colours[0] == MINERAL_COLOURS["kaolinite"] and colours[3] == MINERAL_COLOURS["hematite"]
    assert colours[1:3] == [PALETTE[2], PALETTE[3]]  # red and blue skipped: too near hematite and kaolinite
    for colour in colours[1:3]:
        assert min(delta_e(colour, m) for m in (colours[0], colours[3])) >= DISTINCT_DELTA_E
    # five unknown classes first used to take alunite's orange, which then went to a palette colour
    assert class_colours(["A", "B", "C", "D", "E", "Alunite"])[-1] == MINERAL_COLOURS["alunite"]
    # past the palette its colours come round again (the first version gave every further class its red)
    many = class_colours([f"class {i}" for i in range(len(PALETTE) + 6)])
    assert len(set(many[:len(PALETTE)])) == len(PALETTE) and many[len(PALETTE):] == PALETTE[:6]


def test_unscored_samples_are_drawn_and_in_the_legend(tmp_path, qgis_app):
    """Samples that could not be scored have a NULL anomaly_class: the categories had none for NULL, so they were
    drawn not at all and missing from the legend. With null_name they are a grey 'Not scored' category."""
    from qgis.core import NULL, QgsFeature, QgsGeometry, QgsPointXY, QgsRenderContext, QgsVectorLayer

    from oremap.algorithms import styles

    layer = QgsVectorLayer("Point?crs=EPSG:32750&field=anomaly_class:integer", "scored", "memory")
    features = []
    for i, value in enumerate([0, 3, NULL]):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(500000.0 + i, 6000000.0)))
        f.setAttributes([value])
        features.append(f)
    assert layer.dataProvider().addFeatures(features)
    legend = [{"value": 0, "name": "Below", "color": "#d9d9d9"}, {"value": 3, "name": "Top 1 %", "color": "#bd0026"}]
    drawn = {}
    for null_name in (None, "Not scored"):
        style = {"kind": "categories", "field": "anomaly_class", "geometry": "Point", "legend": legend}
        if null_name:
            style["null_name"] = null_name
        assert styles.apply_style(layer, style)
        renderer, context = layer.renderer(), QgsRenderContext()
        renderer.startRender(context, layer.fields())
        symbols = [renderer.symbolForFeature(f, context) for f in layer.getFeatures()]
        renderer.stopRender(context)
        drawn[null_name] = [s.color().name() if s else None for s in symbols]
        labels = [c.label() for c in renderer.categories()]
    assert drawn[None] == ["#d9d9d9", "#bd0026", None]
    assert drawn["Not scored"] == ["#d9d9d9", "#bd0026", "#9e9e9e"] and labels == ["Below", "Top 1 %", "Not scored"]
    del layer
