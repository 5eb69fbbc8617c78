"""Layer styles for OreMap outputs, saved as a ``.qml`` beside each raster.

QGIS loads ``name.qml`` as the default style of ``name.tif``, so outputs look right
wherever they are opened; when Processing loads an output into the project, a
post-processor applies the same style at once.

A style is a dict:

* ``{"kind": "classes", "legend": [{"value", "name", "color"}, ...]}`` - paletted
  class map with names;
* ``{"kind": "ramp", "band": 1, "ramp": "Viridis", "invert": False,
  "min": None, "max": None}`` - continuous band with a colour ramp, stretched to the
  given range or to the band's 2-98 % cumulative cut.
"""

import os

from qgis.core import (
    QgsColorRampShader,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor


def _class_renderer(layer, style):
    classes = [QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(c["color"]), str(c["name"]))
               for c in style["legend"]]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def _ramp_renderer(layer, style):
    band = int(style.get("band", 1))
    lo, hi = style.get("min"), style.get("max")
    if lo is None or hi is None:
        lo_cut, hi_cut = layer.dataProvider().cumulativeCut(band, 0.02, 0.98)
        if lo is None:
            lo = lo_cut
        if hi is None:
            hi = hi_cut
        if not (hi > lo):
            stats = layer.dataProvider().bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
            lo, hi = stats.minimumValue, stats.maximumValue
            hi = hi if hi > lo else lo + 1.0
    ramp = QgsStyle.defaultStyle().colorRamp(style.get("ramp", "Viridis"))
    if style.get("invert"):
        ramp.invert()
    shader_function = QgsColorRampShader(lo, hi, ramp)
    shader_function.classifyColorRamp(255)
    shader = QgsRasterShader(lo, hi)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    return renderer


RENDERERS = {"classes": _class_renderer, "ramp": _ramp_renderer}


def write_style(path, style):
    """Style the raster at ``path`` and save it as ``<path without extension>.qml``.

    Returns the .qml path, or None when the raster cannot be opened by QGIS.
    """
    layer = QgsRasterLayer(path, os.path.basename(path), "gdal")
    try:
        if not layer.isValid():
            return None
        layer.setRenderer(RENDERERS[style["kind"]](layer, style))
        qml = os.path.splitext(path)[0] + ".qml"
        layer.saveNamedStyle(qml)
        return qml
    finally:
        del layer


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies a saved .qml to an output layer when Processing loads it."""

    def __init__(self, qml):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API)
        if layer is not None and layer.isValid():
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
