"""Geochemical prospectivity: survey tables (``geochem``), IDW gridding (``idw``), the
prospectivity ResNet (``prospectivity_cnn``: training; ``prospectivity_network``,
``prospectivity_data``: the element stack, ``prospectivity_folds``: windows and spatial folds,
``prospectivity_report``, ``prospectivity_mapping``: maps from a model), evaluation against
deposits (``prospectivity_eval``, ``evaluation_report``, ``element_selection``; the evaluation of
continuous maps lives here because only this domain scores maps against deposit points) and VAE
anomaly maps (``vae_anomaly``).

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``abundance``, ``sentinel2``) and never qgis.
"""
