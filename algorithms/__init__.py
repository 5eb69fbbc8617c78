"""OreMap's Processing algorithms, one per module.

``ALGORITHMS`` lists them explicitly as (module, class); the provider imports each
on its own, so one that fails to import is reported and skipped instead of taking
the whole provider down.
"""

ALGORITHMS = [
    ("sam_classify", "SamClassify"),
    ("train_spectral_cnn", "TrainSpectralCnn"),
    ("classify_spectral_cnn", "ClassifySpectralCnn"),
    ("unmix_fcls", "UnmixFcls"),
    ("import_spectrometer_product", "ImportSpectrometerProduct"),
    ("accuracy_assessment", "AccuracyAssessment"),
    ("train_abundance_model", "TrainAbundanceModel"),
    ("predict_abundance", "PredictAbundance"),
    ("join_lab_results", "JoinLabResults"),
    ("idw_interpolate", "IdwInterpolate"),
    ("evaluate_prospectivity", "EvaluateProspectivity"),
    ("element_selection", "ElementSelection"),
    ("train_prospectivity_cnn", "TrainProspectivityCnn"),
    ("train_prospectivity_model", "TrainProspectivityModel"),
    ("prospectivity_map", "ProspectivityMap"),
    ("s2_indices", "S2Indices"),
    ("train_mine_classifier", "TrainMineClassifier"),
    ("train_mine_segmentation", "TrainMineSegmentation"),
    ("detect_mines", "DetectMines"),
    ("vae_anomaly", "VaeAnomaly"),
    ("geochem_anomaly", "GeochemAnomaly"),
    ("batch_on_cluster", "BatchOnCluster"),
]
