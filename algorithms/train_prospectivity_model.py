"""oremap:train_prospectivity_model - prospectivity models side by side under one spatial cross-validation."""

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
)

from .base import OreMapAlgorithm, require_fields
from .evaluate_prospectivity import refuse_geographic_raster
from .train_prospectivity_cnn import DEPTHS, add_window_and_fold_parameters

METHODS = [("logistic", "Logistic regression"), ("random_forest", "Random forest"),
           ("gradient_boosting", "Gradient boosting"), ("mlp", "MLP (multilayer perceptron)"),
           ("resnet", "ResNet on the windows")]


class TrainProspectivityModel(OreMapAlgorithm):
    NAME = "train_prospectivity_model"
    DISPLAY_NAME = "Compare prospectivity models (spatial cross-validation)"
    GROUP = "geochemistry"
    REQUIRES = ("onnx", "skl2onnx", "sklearn")
    RECOMMENDS = {"torch": "the ResNet row (the other models train without it)"}
    TAGS = ("prospectivity,logistic regression,random forest,gradient boosting,mlp,resnet,ensemble,baseline,"
            "spatial cross-validation,model comparison,deposits,onnx")
    HELP = (
        "Trains the models analysts use for prospectivity - logistic regression, random forest, gradient "
        "boosting and a multilayer perceptron - and the ResNet of 'Train a prospectivity ResNet on geochemical "
        "grids', and judges them side by side under one honest protocol, with the best single element grid as "
        "a baseline and a rank-mean ensemble of the models.\n\n"
        "All models use the ResNet trainer's spatial cross-validation: the same deposit windows (with the same "
        "shifted copies), background windows, blocks, folds and exclusion zones; each fold's models learn from "
        "its training windows only. The scikit-learn models see three statistics of each element per window: "
        "the value at the centre cell, the mean and the maximum of the window's valid cells. The baseline row "
        "is the element whose grid value at the centre cell ranks the validation windows best (chosen on the "
        "validation folds, which can only favour it). The ensemble averages each model's share of the fold's "
        "training background windows that score lower, so the validated fold takes no part in it.\n\n"
        "The HTML report gives, per model, ROC-AUC mean +/- sd over the folds, a deposit-level AUC with a "
        "bootstrap interval over deposits, average precision, the success-rate AUC of the out-of-fold map and the "
        "deposits validated; ROC and success-rate curves of every model on one plot; which differences between "
        "models are not significant (paired bootstrap over deposits), with a plain warning under 15 deposits; "
        "and every deposit off the grid or on nodata by name, with its distance to the nearest valid cell and "
        "sample. Each model, fitted on all windows afterwards, is saved in the output folder as an OreMap "
        "model (&lt;model&gt;.onnx, and ensemble.onnx) for 'Prospectivity map from a ResNet'.")
    PARAM_HELP = {
        "INPUT": "Element stack: one band per element, band descriptions = element names (e.g. from 'IDW "
                 "interpolation of geochemical samples'). Read whole into memory.",
        "DEPOSITS": "Known deposits or occurrences as points, in any CRS.",
        "DEPOSIT_NAME": "Optional field naming each deposit in the report and log (default: the feature id).",
        "SAMPLES": "Optional: the survey's sample points. Deposits off the grid or on nodata are then listed with "
                   "their distance to the nearest sample, to show how far the extent or the IDW reach must grow.",
        "METHODS": "The models to compare (all by default). The ensemble is made when two or more are chosen.",
        "WINDOW": "Side of a window in cells (8-256), for every model.",
        "DEPTH": "ResNet depth: 18 and 34 (basic blocks), 50 (bottleneck blocks).",
        "WIDTH": "ResNet width (channels of the first stage).",
        "EPOCHS": "ResNet epochs per fold and for the final model.",
        "FOLDS": "Spatial cross-validation folds (at least 2). Fewer when fewer blocks hold deposits.",
        "BLOCK_SIZE": "Side of the square blocks dealt to the folds, in map units. 0 = automatic.",
        "MIN_DISTANCE": "A background window's centre lies at least this far from every deposit (map units). "
                        "0 = one window width.",
        "NEGATIVES_PER_POSITIVE": "Background windows drawn per deposit.",
        "JITTER_COPIES": "Shifted copies of each training deposit window (training side only, every model).",
        "SEED": "Random seed: the same seed and data give the same folds, models and figures.",
        "BATCH_SIZE": "ResNet windows per training step.",
        "LEARNING_RATE": "ResNet initial SGD learning rate (cosine decay).",
        "MAX_NODATA": "Windows with a larger share of nodata cells are not used, and not scored when mapping.",
        "BOOTSTRAP": "Bootstrap draws over deposits for the intervals and the model differences.",
        "NODATA": "A value to treat as nodata in addition to the raster's own.",
        "THREADS": "Threads torch may use; 0 = its default.",
    }
    OUTPUT_HELP = {
        "OUTPUT_FOLDER": "Folder for the models: logistic.onnx, random_forest.onnx, gradient_boosting.onnx, mlp.onnx, "
                         "resnet.onnx and ensemble.onnx (those chosen). Files of these names are replaced.",
        "OUTPUT_REPORT": "HTML report: the table, ROC and success-rate curves, uncertainty, unused deposits, folds.",
        "BEST_MODEL": "The model with the highest mean fold ROC-AUC.",
        "BEST_MODEL_FILE": "Its .onnx file in the model folder, for a next step such as oremap:prospectivity_map "
                           "(in the Graphical Modeler: its Model file). Empty when no model could be scored.",
        "BEST_AUC_MEAN": "The best model's mean ROC-AUC over the spatial folds.",
        "BEST_AUC_SD": "The best model's sample standard deviation of the ROC-AUC over the folds.",
        "BASELINE_ELEMENT": "The element whose grid value alone ranks the validation windows best.",
        "BASELINE_AUC_MEAN": "The best single element's mean fold ROC-AUC.",
        "DEPOSITS_VALIDATED": "Deposits validated by the spatial cross-validation.",
    }
    REFERENCES = [
        "Roberts, D. R. et al. (2017). Cross-validation strategies for data with temporal, spatial, hierarchical, "
        "or phylogenetic structure. Ecography 40, 913-929.",
        "Rodriguez-Galiano, V. et al. (2015). Machine learning predictive models for mineral prospectivity: an "
        "evaluation of neural networks, random forest, regression trees and support vector machines. Ore Geology "
        "Reviews 71, 804-818.",
        "Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.",
        "EIS Toolkit: a Python package for mineral prospectivity mapping (logistic regression, random forest, "
        "gradient boosting, MLP), developed in the EU Horizon Europe project EIS (Exploration Information "
        "System) and maintained by GispoCoding; EUPL-1.2; github.com/GispoCoding/eis_toolkit.",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "deposits": "DEPOSITS", "window": "WINDOW", "depth": "DEPTH", "width": "WIDTH", "epochs": "EPOCHS",
        "folds": "FOLDS", "block_size": "BLOCK_SIZE", "min_distance": "MIN_DISTANCE", "methods": "METHODS",
        "negatives_per_positive": "NEGATIVES_PER_POSITIVE", "jitter_copies": "JITTER_COPIES",
        "max_nodata": "MAX_NODATA", "learning_rate": "LEARNING_RATE", "batch_size": "BATCH_SIZE",
        "output": "OUTPUT_FOLDER", "report": "OUTPUT_REPORT", "raster": "INPUT",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input("INPUT", "Element stack (one band per element)")
        self._add(QgsProcessingParameterFeatureSource("DEPOSITS", self.tr("Known deposits"),
                                                      [QgsProcessing.TypeVectorPoint]))
        self._add(QgsProcessingParameterField("DEPOSIT_NAME", self.tr("Deposit name field"),
                                              parentLayerParameterName="DEPOSITS", optional=True))
        self._add(QgsProcessingParameterFeatureSource("SAMPLES", self.tr("Sample points (for distances)"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self._add(QgsProcessingParameterEnum("METHODS", self.tr("Models"), options=[m[1] for m in METHODS],
                                             allowMultiple=True, defaultValue=list(range(len(METHODS)))))
        add_window_and_fold_parameters(self, window=16, min_folds=2, learning_rate=0.05)
        self.add_number("MAX_NODATA", "Largest nodata share of a window", 0.5, 0.0, 0.99, advanced=True)
        self.add_number("BOOTSTRAP", "Bootstrap draws over deposits", 2000, 100, 100000, integer=True, advanced=True)
        self.add_nodata_parameter()
        self.add_number("THREADS", "Threads (0 = all)", 0, 0, 256, integer=True, advanced=True)
        self._add(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Model folder")))
        self.add_report_output("OUTPUT_REPORT", "Comparison report")
        self.add_value_output("BEST_MODEL", "Best model", kind="string")
        self.add_value_output("BEST_MODEL_FILE", "Best model file", kind="file")
        self.add_value_output("BEST_AUC_MEAN", "Best model's spatial CV AUC (mean)")
        self.add_value_output("BEST_AUC_SD", "Best model's spatial CV AUC (sd)")
        self.add_value_output("BASELINE_ELEMENT", "Best single element", kind="string")
        self.add_value_output("BASELINE_AUC_MEAN", "Best single element's spatial CV AUC (mean)")
        self.add_value_output("DEPOSITS_VALIDATED", "Deposits validated by the spatial CV")

    def process(self, parameters, context, feedback):
        import numpy as np

        from ..core.geochemistry.model_comparison import compare_models, model_keys

        raster, layer = self.raster_path(parameters, "INPUT", context, require_crs=True)
        refuse_geographic_raster(self, "INPUT", layer)  # block sizes and distances are in map units
        crs = layer.crs()
        source = self.parameterAsSource(parameters, "DEPOSITS", context)
        if source is None:
            raise self.fail("DEPOSITS", "No deposit layer was given.", "Choose a point layer of known deposits.")
        name_field = self.parameterAsString(parameters, "DEPOSIT_NAME", context)
        if name_field:   # a name typed in qgis_process that the layer lacks gave a KeyError traceback
            require_fields(self, source, [name_field], "DEPOSIT_NAME", "the deposits' name field")
        xy, names = [], []
        for feature, geometry in self.source_features(source, context, crs, name="DEPOSITS"):
            if geometry is None:
                continue
            label = feature[name_field] if name_field else None
            label = str(feature.id()) if label in (None, "") or str(label) == "NULL" else str(label)
            for point in geometry.vertices():
                xy.append((point.x(), point.y()))
                names.append(label)
        if not xy:
            raise self.empty_layer(parameters, "DEPOSITS", context, "The deposit layer holds no points.",
                                   "Choose a point layer of known deposits.")
        samples = None
        if self.parameterAsSource(parameters, "SAMPLES", context) is not None:
            sx, sy, _ = self.layer_points(parameters, "SAMPLES", context, crs, feedback=feedback)
            samples = np.column_stack([sx, sy]) if sx else None
        chosen = self.parameterAsEnums(parameters, "METHODS", context) or list(range(len(METHODS)))
        folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        if not folder:
            raise self.fail("OUTPUT_FOLDER", "No model folder was given.", "Choose a folder for the models.")
        if os.path.exists(folder) and not os.path.isdir(folder):   # 'File exists' after the cross-validation
            raise self.fail("OUTPUT_FOLDER", f"'{folder}' is a file, not a folder.", "Choose a folder for the models.")
        if os.path.isdir(folder) and not os.access(folder, os.W_OK):   # before the cross-validation, not after
            raise self.fail("OUTPUT_FOLDER", f"Folder '{folder}' is not writable.", "Choose a folder you can write to.")
        keys = model_keys([METHODS[i][0] for i in chosen])
        taken = [f"{m}.onnx" for m in keys if os.path.exists(os.path.join(folder, f"{m}.onnx"))]
        if taken:
            feedback.warning(f"Model folder: replacing {', '.join(taken)} in {folder}")
        for key in keys:   # the models go under the run's guard: a cancel or error puts the folder back as it was
            self._guard_file(os.path.join(folder, f"{key}.onnx"), feedback)
        report_path = self.output_path(parameters, "OUTPUT_REPORT", context, feedback)
        number = lambda name: self.parameterAsDouble(parameters, name, context)  # noqa: E731
        integer = lambda name: self.parameterAsInt(parameters, name, context)  # noqa: E731
        nodata = parameters.get("NODATA")
        nodata = None if nodata in (None, "") else number("NODATA")
        result = compare_models(
            raster, np.asarray(xy, dtype=np.float64), names, samples, out_dir=folder, report_path=report_path,
            methods=[METHODS[i][0] for i in chosen], window=integer("WINDOW"),
            depth=DEPTHS[self.parameterAsEnum(parameters, "DEPTH", context)], width=integer("WIDTH"),
            epochs=integer("EPOCHS"), batch_size=integer("BATCH_SIZE"), lr=number("LEARNING_RATE"),
            n_folds=integer("FOLDS"), block_size=number("BLOCK_SIZE") or None,
            min_distance=number("MIN_DISTANCE") or None, negatives_per_positive=number("NEGATIVES_PER_POSITIVE"),
            jitter_copies=integer("JITTER_COPIES"), max_nodata=number("MAX_NODATA"), seed=integer("SEED"),
            n_bootstrap=integer("BOOTSTRAP"), nodata=nodata, memory_mb=self.memory_mb(),
            threads=integer("THREADS") or None, feedback=feedback)
        models = [r for r in result.rows if r["key"] != "baseline" and np.isfinite(r["auc_mean"])]
        best = max(models, key=lambda r: r["auc_mean"]) if models else result.rows[0]
        base = result.row("baseline")
        best_file = os.path.join(folder, f"{best['key']}.onnx") if models else None
        return {"OUTPUT_FOLDER": folder, "OUTPUT_REPORT": report_path, "BEST_MODEL": best["key"],
                "BEST_MODEL_FILE": best_file if best_file and os.path.isfile(best_file) else None,
                "BEST_AUC_MEAN": best["auc_mean"], "BEST_AUC_SD": best["auc_sd"],
                "BASELINE_ELEMENT": base["element"], "BASELINE_AUC_MEAN": base["auc_mean"],
                "DEPOSITS_VALIDATED": base["n_deposits"]}
