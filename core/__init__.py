"""OreMap science core.

Everything here works on numpy arrays, files and GeoDataFrames and never imports
``qgis`` (``test/test_core_isolation.py`` enforces this), so it can be used and
tested from plain Python.
"""

__all__ = [
    "colors", "errors", "feedback", "mapping", "raster", "sam", "spectral_library", "unmixing", "wavelengths",
]
