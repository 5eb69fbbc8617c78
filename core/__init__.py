"""OreMap science core.

Everything here works on numpy arrays, files and GeoDataFrames and never imports
``qgis`` (``test/test_core_isolation.py`` enforces this), so it can be used and
tested from plain Python.
"""

__all__ = [
    "accuracy", "bundled", "cnn_training", "colors", "errors", "feedback", "mapping", "model_format", "raster",
    "report", "sam", "sampling", "spectral_cnn", "spectral_library", "training", "unmixing", "wavelengths",
]
