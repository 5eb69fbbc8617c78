"""Mineral abundance: closure-constrained abundance ensembles (regression on spectra whose
predictions are projected onto the simplex), their training, ONNX export and maps.

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``geochemistry``, ``sentinel2``) and never qgis. Pieces it shares with hyperspectral mapping
(the FCLS solver, spectral preprocessing, the 1D CNN network) live in the engine.
"""
