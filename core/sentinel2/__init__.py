"""Sentinel-2 mine detection: L2A input and spectral indices (``sentinel2``), the patch
classifier (gradient boosting or a small CNN), the U-Net segmentation and detection of mine
footprints on whole tiles.

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``abundance``, ``geochemistry``) and never qgis.
"""
