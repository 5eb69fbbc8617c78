"""Sentinel-2 mine detection: L2A input and spectral indices (``sentinel2``), the patch classifier
(``mine_classifier``: cross-validation and training; ``patch_features``, ``patch_sets``,
``patch_models``: gradient boosting or a small CNN), the U-Net segmentation (``mine_segmentation``:
training; ``segmentation_network``, ``segmentation_data``: features, polygons and the tile plan,
``segmentation_report``; ``chip_sets``: training from many chips or scenes), detection of mine footprints on
whole tiles (``mine_detection``), band sets from RGB to 12 bands (``band_sets``) and areas and lengths in
metres for any CRS (``ground_units``).

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``abundance``, ``geochemistry``) and never qgis.
"""
