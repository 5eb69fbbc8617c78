"""The QGIS plugin object: registers the Processing provider and the GUI entries."""

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .processing_provider.provider import OreMapProvider

PLUGIN_DIR = os.path.dirname(__file__)


class OreMapPlugin:
    """Registers the ``oremap`` provider in :meth:`initProcessing` (so headless
    ``qgis_process`` sees it); in :meth:`initGui`, the Plugins > OreMap menu, a toolbar
    button for the model library dock, and the OreMap page of Settings > Options."""

    MENU = "&OreMap"

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.toolbar_action = None
        self.options_factory = None
        self.dock = None

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
            ("Model library", self.show_model_library, icon),
            ("Spectral library viewer…", self.show_library_viewer, icon),
            ("Settings…", self.show_settings, None),
            ("Install optional packages…", self.show_install_packages, None),
            ("About OreMap", self.show_about, None),
        ]
        for text, slot, entry_icon in entries:
            action = QAction(entry_icon, text, self.iface.mainWindow()) if entry_icon else QAction(
                text, self.iface.mainWindow()
            )
            action.triggered.connect(slot)
            self.iface.addPluginToMenu(self.MENU, action)
            self.actions.append(action)
        self.toolbar_action = QAction(icon, "OreMap model library", self.iface.mainWindow())
        self.toolbar_action.setToolTip("OreMap model library: bundled and your models, their cards and algorithms")
        self.toolbar_action.triggered.connect(self.show_model_library)
        self.iface.addToolBarIcon(self.toolbar_action)
        from .ui.settings_dialog import OreMapOptionsFactory

        self.options_factory = OreMapOptionsFactory()
        self.iface.registerOptionsWidgetFactory(self.options_factory)

    def unload(self):
        for action in self.actions:
            if self.iface is not None:
                self.iface.removePluginMenu(self.MENU, action)
            action.deleteLater()   # children of the main window: they outlived the plugin, one set per reload
        self.actions = []
        if self.iface is not None and self.toolbar_action is not None:
            self.iface.removeToolBarIcon(self.toolbar_action)
        if self.toolbar_action is not None:
            self.toolbar_action.deleteLater()
        self.toolbar_action = None
        if self.iface is not None and self.options_factory is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
        self.options_factory = None
        if self.dock is not None:
            if self.iface is not None:
                self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # -- GUI actions -----------------------------------------------------------------
    def show_toolbox(self):
        """Open the Processing Toolbox filtered to OreMap's algorithms."""
        from .ui.actions import show_oremap_toolbox

        show_oremap_toolbox(self.iface)

    def show_model_library(self):
        """Show the model library dock (created on first use, docked on the right)."""
        if self.dock is None:
            from .ui.model_library import ModelLibraryDock

            self.dock = ModelLibraryDock(self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        else:
            self.dock.refresh()
        self.dock.setUserVisible(True)
        self.dock.raise_()
        return self.dock

    def show_settings(self):
        from .ui.settings_dialog import SettingsDialog

        if SettingsDialog(self.iface.mainWindow()).exec() and self.dock is not None:
            self.dock.refresh()

    def show_install_packages(self):
        """Install onnx/onnxruntime (and on request CPU torch, skl2onnx) into the profile's packages folder."""
        from . import packages_folder
        from .ui.install_packages import InstallPackagesDialog

        InstallPackagesDialog(packages_folder(), self.iface.mainWindow()).exec()
        if self.dock is not None:
            self.dock.refresh()

    def show_library_viewer(self):
        from .ui.library_viewer import LibraryViewerDialog

        LibraryViewerDialog(self.iface.mainWindow()).exec()

    def show_about(self):
        from .ui.actions import show_about

        show_about(self.iface.mainWindow(), self.provider)
