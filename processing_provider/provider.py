"""The ``oremap`` Processing provider."""

import os
import traceback

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import ALGORITHMS
from ..core.engine.version import plugin_version
from . import settings

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))


class OreMapProvider(QgsProcessingProvider):
    """Provider id ``oremap``; algorithms grouped by theme."""

    def id(self):
        return "oremap"

    def name(self):
        return "OreMap"

    def longName(self):  # noqa: N802
        return f"OreMap {plugin_version()} - machine learning for mineral exploration"

    def versionInfo(self):  # noqa: N802
        return plugin_version()

    def icon(self):
        return QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))

    def supportedOutputVectorLayerExtensions(self):  # noqa: N802 (QGIS API)
        """The formats every OreMap vector output accepts (``algorithms.base.VECTOR_OUTPUT_FORMATS``: GeoPackage,
        GeoJSON, FlatGeobuf): 'Save to File...' offered 24, of which 19 were refused at run time (a shapefile cuts
        ``anomaly_score`` to ``anomaly_sc``, a CSV loses the geometries...)."""
        from ..algorithms.base import VECTOR_OUTPUT_FORMATS

        return [e for e in super().supportedOutputVectorLayerExtensions() if f".{e.lower()}" in VECTOR_OUTPUT_FORMATS]

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802 (QGIS API)
        """GeoTIFF only (the block engine writes tiled, compressed GeoTIFF): QGIS then offers only it in 'Save to
        File...' and gives temporary outputs .tif even when Processing's default raster extension is another
        format (with 'img' every OreMap raster algorithm refused its own temporary output)."""
        return ["tif", "tiff"]

    def defaultVectorFileExtension(self, hasGeometry=True):  # noqa: N802,N803 (QGIS API)
        return "gpkg"

    def load(self):
        """Register the provider's settings (Processing > Options > Providers > OreMap; see settings.py)."""
        settings.register(self.icon())  # no-op without the Processing plugin: defaults apply
        self.refreshAlgorithms()
        return True

    def unload(self):
        settings.unregister()

    def loadAlgorithms(self):  # noqa: N802
        for module_name, class_name in ALGORITHMS:
            try:
                # an import statement's own hook (__import__), not importlib: QGIS records the plugin's modules
                # through it and forgets them on unload. Imported by importlib, 15 algorithm modules stayed in
                # sys.modules, and after an upgrade (or Plugin Reloader) they ran the old code until QGIS restarted.
                module = getattr(__import__("algorithms", globals(), locals(), [module_name], 2), module_name)
                algorithm_class = getattr(module, class_name)
                # Declare the parameters once from Python first: an exception raised inside
                # addAlgorithm (from C++) would abort QGIS instead of reaching this handler.
                algorithm_class().initAlgorithm()
                self.addAlgorithm(algorithm_class())
            except Exception:  # noqa: BLE001 - one broken algorithm must not hide the others
                QgsMessageLog.logMessage(
                    f"OreMap: algorithm '{module_name}' could not be loaded:\n{traceback.format_exc()}",
                    "OreMap", Qgis.Critical)
