"""Mineral abundance: closure-constrained abundance ensembles (regression on spectra whose
predictions are projected onto the simplex or modelled in ILR space): training with ROI-grouped
cross-validation, stacking and conformal intervals (``abundance``), the ensemble's members
(``members``), maps and zone statistics (``abundance_map``) and the report (``abundance_report``).

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``geochemistry``, ``sentinel2``) and never qgis. Pieces it shares with hyperspectral mapping
(the FCLS solver, spectral preprocessing, the 1D CNN network) live in the engine.
"""
