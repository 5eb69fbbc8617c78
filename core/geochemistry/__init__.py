"""Geochemical prospectivity: survey tables (``geochem``), IDW gridding (``idw``), the
prospectivity ResNet (``prospectivity_cnn``: training; ``prospectivity_network``,
``prospectivity_data``: the element stack, ``prospectivity_folds``: windows and spatial folds,
``prospectivity_report``, ``prospectivity_mapping``: maps from a model), evaluation against
deposits (``prospectivity_eval``, ``evaluation_report``, ``element_selection``; the evaluation of
continuous maps lives here because only this domain scores maps against deposit points), VAE
anomaly maps (``vae_anomaly``: preprocessing, model, training, points; ``vae_network``, ``vae_raster``,
``vae_report``), survey hygiene (``survey_hygiene``, ``distance_advice``, ``pathfinders``), anomaly scores
side by side (``anomaly_methods``, ``geochem_anomaly``), transforms recorded in grids (``grid_meaning``) and
the comparison of prospectivity models (``prospectivity_models``, ``model_comparison``).

What it may import: ``core.engine`` and itself; never another domain (``hyperspectral``,
``abundance``, ``sentinel2``) and never qgis.
"""
