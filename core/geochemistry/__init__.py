"""Geochemical prospectivity: survey tables (``geochem``), IDW gridding (``idw``), the
prospectivity ResNet, its evaluation (spatial folds, ROC, success-rate curves; evaluation
of prospectivity maps lives here because only this domain scores continuous maps against
deposits) and VAE anomaly maps.

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``abundance``, ``sentinel2``) and never qgis.
"""
