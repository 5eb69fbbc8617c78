"""OreMap: machine learning for mineral exploration, as a QGIS Processing provider."""


def packages_folder():
    """``<QGIS profile>/python/oremap-packages/<Python's cache tag>``: the optional packages installed from the
    plugin (:func:`core.engine.package_installer.folder_for_profile`)."""
    from qgis.core import QgsApplication

    from .core.engine.package_installer import folder_for_profile

    return folder_for_profile(QgsApplication.qgisSettingsDirPath())


#: Packages without which nothing of OreMap runs. They bring their own GDAL/PROJ/GEOS when installed from PyPI, which
#: crash inside QGIS: the system's or QGIS's own builds only (their package names:
#: ``core.engine.dependencies.GEO_PACKAGES``).
REQUIRED_PACKAGES = ("numpy", "scipy", "rasterio")


def missing_required():
    """The :data:`REQUIRED_PACKAGES` that QGIS's Python cannot import."""
    from .core.engine.dependencies import missing   # imports nothing of them

    return missing(list(REQUIRED_PACKAGES))


def missing_required_message(missing):
    """What to install, per platform, when ``missing`` required packages are not there."""
    import os

    from .core.engine.dependencies import GEO_PACKAGES

    debian = " ".join(GEO_PACKAGES[name][0] for name in missing)
    if os.environ.get("FLATPAK_ID") or os.path.exists("/.flatpak-info"):
        return (f"OreMap cannot start: this QGIS is the Flatpak ({os.environ.get('FLATPAK_ID') or 'sandboxed'}), "
                f"whose Python lacks {', '.join(missing)} and has no pip or system packages to add them. Use QGIS "
                "from your distribution or from qgis.org's repositories (Debian/Ubuntu: sudo apt install qgis "
                f"python3-qgis {debian}; Fedora: sudo dnf install qgis python3-qgis {debian}).")
    return (f"OreMap cannot start: QGIS's Python lacks {', '.join(missing)}. Debian/Ubuntu: sudo apt install {debian}. "
            f"Windows: run the OSGeo4W installer (Advanced Install) and add {debian} (the OSGeo4W packages use "
            "QGIS's own GDAL). macOS: use a QGIS build that ships them (QGIS 3.28 or later from qgis.org). Do not "
            "pip-install rasterio into QGIS: its wheels bring a GDAL of their own that crashes QGIS. Then restart QGIS.")


class MissingPackagesPlugin:
    """Stands in for OreMap when a required package is missing: says what to install (message bar, log,
    Plugins > OreMap) instead of a traceback, and registers no provider."""

    def __init__(self, iface, missing):
        self.iface = iface
        self.message = missing_required_message(missing)
        self.action = None
        self.logged = False

    def initProcessing(self):  # noqa: N802 (QGIS API)
        if self.logged:   # QGIS calls it, and initGui again
            return
        from qgis.core import Qgis, QgsMessageLog

        QgsMessageLog.logMessage(self.message, "OreMap", Qgis.Critical)
        self.logged = True

    def initGui(self):  # noqa: N802 (QGIS API)
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QAction, QMessageBox

        self.iface.messageBar().pushMessage("OreMap", self.message, Qgis.Critical, 0)
        self.action = QAction("Why OreMap cannot start…", self.iface.mainWindow())
        self.action.triggered.connect(lambda: QMessageBox.warning(self.iface.mainWindow(), "OreMap", self.message))
        self.iface.addPluginToMenu("&OreMap", self.action)

    def unload(self):
        if self.action is not None and self.iface is not None:
            self.iface.removePluginMenu("&OreMap", self.action)
            self.action = None


def classFactory(iface):  # noqa: N802 (QGIS entry point name)
    """QGIS entry point: put the profile's optional packages on ``sys.path``, return the plugin instance (or, when
    a required package is missing, :class:`MissingPackagesPlugin`, which says what to install)."""
    from .core.engine.package_installer import activate

    activate(packages_folder())
    missing = missing_required()
    if missing:
        return MissingPackagesPlugin(iface, missing)
    from .plugin import OreMapPlugin

    return OreMapPlugin(iface)
