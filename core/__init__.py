"""OreMap science core.

Everything here works on numpy arrays, files and GeoDataFrames and never imports
``qgis`` (``test/test_core_isolation.py`` enforces this), so it can be used and
tested from plain Python.

The subpackages are the architecture:

- ``engine``: the shared machinery every domain builds on (raster block engine, files,
  feedback and cancel, compute devices, torch training and inference, the model format
  and model library, reports, colours, errors, wavelengths, sampling under polygons,
  accuracy assessment, and numerical pieces several domains share);
- ``hyperspectral``: spectral libraries, SAM/SID and unmixing maps, the spectral CNN;
- ``abundance``: closure-constrained mineral abundance ensembles;
- ``geochemistry``: surveys, IDW, element selection, the prospectivity ResNet and its
  evaluation, VAE anomaly maps;
- ``sentinel2``: Sentinel-2 input and indices, the mine classifier, segmentation and detection.

Import rule (``test/test_core_layers.py`` enforces it): the engine imports no domain;
a domain imports the engine and itself, never another domain. What two domains share
belongs in the engine.
"""

__all__ = ["engine", "hyperspectral", "abundance", "geochemistry", "sentinel2"]
