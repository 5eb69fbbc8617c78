"""Hyperspectral mineral mapping: spectral libraries (``spectral_library``: reading and name
matching; ``library_writers``; ``library_points``: spectra under points), SAM/SID classification
(``sam``), unmixing and class maps (``mapping``), training data from polygons or a library
(``training``), and the 1D spectral CNN classifier (``spectral_cnn``; ``cnn_training``: training,
evaluation report, model card).

What it may import: ``core.engine`` and itself; never another domain (``abundance``,
``geochemistry``, ``sentinel2``) and never qgis.
"""
