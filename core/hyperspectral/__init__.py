"""Hyperspectral mineral mapping: spectral libraries (ENVI, CSV), SAM/SID classification,
unmixing maps, training data from polygons or a library, and the 1D spectral CNN classifier
(training, evaluation report, model card).

What it may import: ``core.engine`` and itself; never another domain (``abundance``,
``geochemistry``, ``sentinel2``) and never qgis.
"""
