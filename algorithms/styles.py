"""Layer styles for OreMap outputs, saved as a ``.qml`` beside each raster.

QGIS loads ``name.qml`` as the default style of ``name.tif``, so outputs look right
wherever they are opened; when Processing loads an output into the project, a
post-processor applies the same style at once.

A style is a dict:

* ``{"kind": "classes", "legend": [{"value", "name", "color"}, ...]}`` - paletted
  class map with names;
* ``{"kind": "ramp", "band": 1, "ramp": "Viridis", "invert": False,
  "min": None, "max": None}`` - continuous band with a colour ramp, stretched to the
  given range or to the band's 2-98 % cumulative cut;
* ``{"kind": "true_colour", "bands": [r, g, b]}`` - a multiband raster (e.g. a
  reflectance cube) shown as red, green and blue from three of its bands (1-based), each
  stretched to its 2-98 % cumulative cut;
* ``{"kind": "graduated", "field": "probability", "ramp": "Magma", "invert": False,
  "classes": 5, "mode": "equal" | "quantile", "min": None, "max": None,
  "geometry": "Polygon", "opacity": 0.85}`` - vector layer, graduated by a numeric
  field: ``classes`` ranges of equal width between ``min`` and ``max`` (the field's
  range when not given) or with equal counts (quantiles, from the layer's values).
  With ``min`` and ``max`` given, the style needs no data, so it can be written
  while the output is still being filled;
* ``{"kind": "categories", "field": "anomaly_class", "legend": [{"value", "name", "color"}, ...],
  "geometry": "Point", "opacity": 1.0}`` - vector layer, one named category per class code of an
  integer field (the legend of the same classes in a raster output).

:func:`write_style` works on file paths; a temporary (memory) output gets the same
style from :class:`StylePostProcessor` when Processing loads it.
"""

import os
import re
from xml.etree import ElementTree

import numpy as np
from qgis.core import (
    QgsColorRampShader,
    QgsCategorizedSymbolRenderer,
    QgsContrastEnhancement,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsReadWriteContext,
    QgsRendererCategory,
    QgsRendererRange,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsSymbol,
    QgsProviderRegistry,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtGui import QColor

from ..core.sentinel2.mine_detection import MASK_LEGEND


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
            stats = layer.dataProvider().bandStatistics(band)  # every statistic: no flag sum (enums on Qt 6)
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


def _true_colour_renderer(layer, style):
    provider = layer.dataProvider()
    red, green, blue = (int(b) for b in style["bands"])
    renderer = QgsMultiBandColorRenderer(provider, red, green, blue)
    enhancements = []
    for band in (red, green, blue):
        lo, hi = provider.cumulativeCut(band, 0.02, 0.98)
        if not hi > lo:
            hi = lo + 1.0
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum, True)
        enhancement.setMinimumValue(lo)
        enhancement.setMaximumValue(hi)
        enhancements.append(enhancement)
    renderer.setRedContrastEnhancement(enhancements[0])
    renderer.setGreenContrastEnhancement(enhancements[1])
    renderer.setBlueContrastEnhancement(enhancements[2])
    return renderer


def graduated_breaks(style, values=()):
    """Class limits ``[b0, ..., bn]`` of a graduated style: equal widths between min and max, or
    quantiles of ``values``; ``None`` when there is nothing to classify."""
    n = max(1, int(style.get("classes", 5)))
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    lo, hi = style.get("min"), style.get("max")
    if style.get("mode", "equal") == "quantile" and values.size:
        breaks = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n + 1)))
        return [float(b) for b in breaks] if breaks.size > 1 else [float(breaks[0]), float(breaks[0]) + 1.0]
    if lo is None:
        lo = float(values.min()) if values.size else None
    if hi is None:
        hi = float(values.max()) if values.size else None
    if lo is None or hi is None:
        return None
    hi = hi if hi > lo else lo + 1.0
    return [float(b) for b in np.linspace(lo, hi, n + 1)]


def _label(lo, hi, span):
    digits = max(0, min(6, 2 - int(np.floor(np.log10(span))))) if span > 0 else 2
    return f"{lo:.{digits}f} - {hi:.{digits}f}"


def _graduated_renderer(layer, style):
    field = style["field"]
    index = layer.fields().lookupField(field)
    values = []
    if (style.get("min") is None or style.get("max") is None or style.get("mode") == "quantile") and index >= 0:
        values = [f.attribute(index) for f in layer.getFeatures()]
        values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    breaks = graduated_breaks(style, values)
    if breaks is None:
        return None
    ramp = QgsStyle.defaultStyle().colorRamp(style.get("ramp", "Magma"))
    if style.get("invert"):
        ramp.invert()
    n = len(breaks) - 1
    ranges = []
    for i in range(n):
        symbol = _vector_symbol(layer, ramp.color((i + 0.5) / n), style)
        ranges.append(QgsRendererRange(breaks[i], breaks[i + 1], symbol, _label(breaks[i], breaks[i + 1],
                                                                                 breaks[-1] - breaks[0])))
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    renderer.setSourceColorRamp(ramp.clone())
    return renderer


def _vector_symbol(layer, colour, style):
    symbol = QgsSymbol.defaultSymbol(layer.geometryType())
    symbol.setColor(QColor(colour))
    symbol.setOpacity(float(style.get("opacity", 0.85)))
    if layer.geometryType() == QgsWkbTypes.PolygonGeometry:
        symbol.symbolLayer(0).setStrokeColor(QColor(60, 60, 60))
        symbol.symbolLayer(0).setStrokeWidth(0.1)
    return symbol


def _category_renderer(layer, style):
    """A category per legend entry; with ``null_name``, also one for features whose field is NULL (samples that could
    not be scored), drawn grey: without it they were drawn not at all and missing from the legend, so the samples
    looked absent."""
    categories = [QgsRendererCategory(int(c["value"]), _vector_symbol(layer, c["color"], style), str(c["name"]))
                  for c in style["legend"]]
    if style.get("null_name"):
        symbol = _vector_symbol(layer, "#9e9e9e", style)
        symbol.symbolLayer(0).setStrokeColor(QColor("#757575"))
        # an invalid QVariant: qgis.core.NULL is a null *Int* variant, which the renderer keys as "0" (class 0)
        categories.append(QgsRendererCategory(QVariant(), symbol, str(style["null_name"])))
    return QgsCategorizedSymbolRenderer(style["field"], categories)


RENDERERS = {"classes": _class_renderer, "ramp": _ramp_renderer, "graduated": _graduated_renderer,
             "true_colour": _true_colour_renderer, "categories": _category_renderer}
VECTOR_KINDS = {"graduated", "categories"}


def apply_style(layer, style):
    """Give ``layer`` the style; False when it cannot be built (e.g. no values to classify)."""
    renderer = RENDERERS[style["kind"]](layer, style)
    if renderer is None:
        return False
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def _style_layer(path, style):
    """A layer to build the style on: the output file, or for a vector style with its range given, a
    stand-in memory layer with the field (so the file is not read while it is being written)."""
    name = os.path.basename(path)
    if style["kind"] not in VECTOR_KINDS:
        return QgsRasterLayer(path, name, "gdal")
    if style["kind"] == "categories":   # needs no data either
        return QgsVectorLayer(f"{style.get('geometry', 'Polygon')}?field={style['field']}:integer", name, "memory")
    if style.get("min") is not None and style.get("max") is not None and style.get("mode", "equal") == "equal":
        return QgsVectorLayer(f"{style.get('geometry', 'Polygon')}?field={style['field']}:double", name, "memory")
    return QgsVectorLayer(path, name, "ogr")


_STYLE_CATEGORIES = QgsMapLayer.StyleCategories(QgsMapLayer.AllStyleCategories)
if hasattr(QgsMapLayer, "Elevation"):  # QGIS 3.26 on: the profile symbols of a new layer get random colours
    _STYLE_CATEGORIES &= ~QgsMapLayer.Elevation
"""What a saved style holds: everything but the elevation profile settings, which OreMap leaves at QGIS's defaults
and which would make the same output's .qml differ from run to run."""


_RANDOM_ID = re.compile(r"^\{[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\}$")


_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"


def stable_style_text(xml_text):
    """The style document ``xml_text`` as OreMap writes it: the same output gets the same .qml in every run and
    every process, in a batch as alone.

    Two things made it differ. QGIS 3.30 and later write random ids, on every symbol layer (``<layer class=...
    id="{uuid}">``) and on every class of a graduated or categorised renderer (``<range uuid="{uuid}">``): they are
    dropped, and QGIS gives what it reads without one a new id, as it does for styles of older versions. And Qt 5's
    DOM writes an element's attributes in the order of a hash seeded anew in each process (``qgis_process`` and
    QGIS itself), so every run put them in another order: they are written sorted by name. Whitespace-only text
    becomes two-space indentation; no other text or value changes."""
    root = ElementTree.fromstring(xml_text)
    for element in root.iter():
        attributes = {name: value for name, value in element.attrib.items()
                      if not (name in ("id", "uuid") and _RANDOM_ID.match(value))}
        element.attrib.clear()
        element.attrib.update(sorted(attributes.items()))
    ElementTree.indent(root, space="  ")
    return f"{_DOCTYPE}\n{ElementTree.tostring(root, encoding='unicode')}\n"


def write_style(path, style):
    """Style the raster or vector file at ``path`` and save it as ``<path without extension>.qml``.

    QGIS loads that file as the layer's default style. Returns the .qml path, or None when ``path`` is
    not a file (a temporary layer) or cannot be opened by QGIS.

    A layer of a GeoPackage (``y.gpkg|layername=mines``, an ``ogr:`` destination) gets its style saved in the
    GeoPackage as the layer's default instead (returns None): ``y.qml`` would be every layer's default style of
    that file, the user's other layers restyled on a field they lack, and a .qml of the user's replaced.
    """
    file_path = str(path).split("|")[0]
    if not os.path.isfile(file_path):
        return None
    if "|layername=" in str(path):
        if style["kind"] in VECTOR_KINDS:
            layer = QgsVectorLayer(str(path), os.path.basename(file_path), "ogr")
            try:
                if layer.isValid() and apply_style(layer, style):
                    table = str(path).split("|layername=", 1)[1].split("|")[0]
                    # a style of that name first removed: saving over it does not return in QGIS 3.22 (headless)
                    _, ids, names, _, _ = layer.listStylesInDatabase()
                    for style_id, name in zip(ids, names):
                        if name == table:
                            QgsProviderRegistry.instance().deleteStyleById("ogr", layer.source(), style_id, "")
                    layer.saveStyleToDatabase(table, "OreMap", True, "")
            finally:
                del layer
        return None
    layer = _style_layer(file_path, style)
    try:
        if not layer.isValid() or not apply_style(layer, style):
            return None
        qml = os.path.splitext(file_path)[0] + ".qml"
        # written whole through a temporary file: two runs styling the same output never mix their files
        from qgis.PyQt.QtXml import QDomDocument

        from ..core.engine.files import write_atomic

        document = QDomDocument("qgis")
        layer.exportNamedStyle(document, QgsReadWriteContext(), _STYLE_CATEGORIES)
        write_atomic(qml, stable_style_text(document.toString(-1)))
        return qml
    finally:
        del layer


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles an output layer when Processing loads it: from the saved .qml, else from the style dict.

    Processing keeps no reference to a post-processor, and a Graphical Modeler run deletes each step's algorithm
    before its outputs load: the processors are kept here (:attr:`KEPT`, the newest :data:`KEEP`) until they have
    styled their layer, so a model's temporary outputs load styled as the algorithm's own do."""

    KEEP = 256
    KEPT = []

    def __init__(self, qml, style=None):
        super().__init__()
        self.qml = qml
        self.style = style
        StylePostProcessor.KEPT.append(self)
        del StylePostProcessor.KEPT[:-self.KEEP]

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API)
        if layer is None or not layer.isValid():
            return
        if self.qml and os.path.exists(self.qml):
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
        elif self.style is not None:
            apply_style(layer, self.style)


# --------------------------------------------------------------------------------------
# The styles of OreMap's raster outputs: one definition for an algorithm's own run and for the same output
# written by oremap:batch_on_cluster.
# --------------------------------------------------------------------------------------
def unit_ramp(ramp="Viridis"):
    """Probabilities, confidences and abundances as fractions: ``ramp`` over 0-1."""
    return {"kind": "ramp", "ramp": ramp, "min": 0.0, "max": 1.0}


def largest_band(means):
    """1-based band of the largest of ``means`` (a list, or a dict in band order): the band shown first."""
    values = list(means.values()) if isinstance(means, dict) else list(means or [])
    return 1 + max(range(len(values)), key=values.__getitem__) if values else 1


def abundance_ramp(means, maximum):
    """Abundance bands (0-``maximum``: 1 for unmixing, 100 for percentages), the most abundant shown first."""
    return {"kind": "ramp", "band": largest_band(means), "ramp": "Viridis", "min": 0.0, "max": float(maximum)}


def classes(legend):
    """A class map with its ``legend`` (``[{"value", "name", "color"}]``)."""
    return {"kind": "classes", "legend": list(legend)}


def model_classes(model_classes_):
    """The class map of a model's classes (``ModelInfo.classes``, value 1 for the first)."""
    return classes({"value": i + 1, "name": c["name"], "color": c["color"]} for i, c in enumerate(model_classes_))


def mine_mask(threshold):
    """oremap:detect_mines' mask at probability ``threshold``."""
    return classes(dict(c, name=f"mine (P >= {threshold:g})") if c["name"] == "mine" else c for c in MASK_LEGEND)


#: Band centres (nm) shown as red, green and blue by :func:`true_colour`.
TRUE_COLOUR_NM = (640.0, 550.0, 460.0)


def true_colour(centers):
    """A cube with band ``centers`` (nm, in band order) as true colour: the bands nearest 640, 550 and 460 nm;
    bands 1-3 (QGIS's own choice) when the cube does not reach the visible."""
    centers = np.asarray(centers, dtype=float)
    if centers.size >= 3 and centers.min() <= 700.0 and centers.max() >= 420.0:
        bands = [int(np.argmin(np.abs(centers - nm))) + 1 for nm in TRUE_COLOUR_NM]
    else:
        bands = [1, min(2, centers.size), min(3, centers.size)]
    return {"kind": "true_colour", "bands": bands}


ANOMALY_SCORE = {"kind": "ramp", "ramp": "Magma"}
"""A geochemical anomaly score (no fixed range)."""
