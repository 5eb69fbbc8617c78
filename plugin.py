"""The QGIS plugin object: registers the Processing provider and the GUI entries."""

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .processing_provider.provider import OreMapProvider

PLUGIN_DIR = os.path.dirname(__file__)


class OreMapPlugin:
    """Registers the ``oremap`` provider in :meth:`initProcessing` (so headless
    ``qgis_process`` sees it) and a Plugins-menu entry in :meth:`initGui`."""

    MENU = "&OreMap"

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []

    def initProcessing(self):  # noqa: N802 (QGIS API)
        if self.provider is None:
            self.provider = OreMapProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API)
        self.initProcessing()
        if self.iface is None:
            return
        icon = QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))
        entries = [
            ("OreMap algorithms…", self.show_toolbox, icon),
            ("Spectral library viewer…", self.show_library_viewer, icon),
            ("About OreMap", self.show_about, None),
        ]
        for text, slot, entry_icon in entries:
            action = QAction(entry_icon, text, self.iface.mainWindow()) if entry_icon else QAction(
                text, self.iface.mainWindow()
            )
            action.triggered.connect(slot)
            self.iface.addPluginToMenu(self.MENU, action)
            self.actions.append(action)

    def unload(self):
        for action in self.actions:
            if self.iface is not None:
                self.iface.removePluginMenu(self.MENU, action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # -- GUI actions -----------------------------------------------------------------
    def show_toolbox(self):
        """Open the Processing Toolbox filtered to OreMap's algorithms."""
        from .ui.actions import show_oremap_toolbox

        show_oremap_toolbox(self.iface)

    def show_library_viewer(self):
        from .ui.library_viewer import LibraryViewerDialog

        LibraryViewerDialog(self.iface.mainWindow()).exec_()

    def show_about(self):
        from .ui.actions import show_about

        show_about(self.iface.mainWindow(), self.provider)
