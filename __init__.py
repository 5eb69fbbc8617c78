"""OreMap: machine learning for mineral exploration, as a QGIS Processing provider."""


def classFactory(iface):  # noqa: N802 (QGIS entry point name)
    """QGIS entry point: return the plugin instance."""
    from .plugin import OreMapPlugin

    return OreMapPlugin(iface)
