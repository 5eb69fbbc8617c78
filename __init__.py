"""OreMap: machine learning for mineral exploration, as a QGIS Processing provider."""


def packages_folder():
    """``<QGIS profile>/python/oremap-packages``: the optional packages installed from the plugin."""
    from qgis.core import QgsApplication

    from .core.engine.package_installer import folder_for_profile

    return folder_for_profile(QgsApplication.qgisSettingsDirPath())


def classFactory(iface):  # noqa: N802 (QGIS entry point name)
    """QGIS entry point: put the profile's optional packages on ``sys.path``, return the plugin instance."""
    from .core.engine.package_installer import activate

    activate(packages_folder())
    from .plugin import OreMapPlugin

    return OreMapPlugin(iface)
