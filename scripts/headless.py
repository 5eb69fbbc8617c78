"""Standalone QGIS with OreMap's provider, for the demo scripts (``make demo``).

:func:`run_headless` starts a QGIS application without a display, initialises Processing,
registers the checkout as the plugin package ``oremap`` with its provider, calls
``work(run)`` where ``run(name, params)`` is ``processing.run("oremap:<name>", params)``,
and shuts QGIS down again; it returns what ``work`` returns.
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_plugin():
    """The checkout as the package ``oremap`` (the name QGIS gives the plugin folder)."""
    if "oremap" not in sys.modules:
        spec = importlib.util.spec_from_file_location("oremap", os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules["oremap"] = module
        spec.loader.exec_module(module)


def run_headless(work):
    """``work(run)`` inside a standalone QGIS with OreMap's provider registered; returns its result."""
    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(os.path.join(QgsApplication.prefixPath(), "share", "qgis", "python", "plugins"))
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    import_plugin()
    from oremap.processing_provider.provider import OreMapProvider

    provider = OreMapProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        return work(lambda name, params: processing.run(f"oremap:{name}", params))
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
        app.exitQgis()
