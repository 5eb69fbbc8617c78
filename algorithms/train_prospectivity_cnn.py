"""oremap:train_prospectivity_cnn - a ResNet on geochemical grid windows around known deposits."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
)

from ..core.geochemistry import grid_meaning
from .base import OreMapAlgorithm
from .evaluate_prospectivity import refuse_geographic_raster

DEPTHS = [18, 34, 50]



def add_window_and_fold_parameters(alg, window, min_folds, learning_rate):
    """The window, ResNet size, spatial-fold and training parameters that the ResNet trainer and the model
    comparison share (same names, ranges and labels; the defaults that differ are arguments)."""
    alg.add_number("WINDOW", "Window size (cells)", window, 8, 256, integer=True)
    alg.add_enum("DEPTH", "ResNet depth", [f"ResNet-{d}" for d in DEPTHS])
    alg.add_number("WIDTH", "ResNet width (channels of the first stage)", 16, 2, 128, integer=True)
    alg.add_number("EPOCHS", "ResNet epochs", 30, 1, 1000, integer=True)
    alg.add_number("FOLDS", "Spatial cross-validation folds" + (" (0 = none)" if min_folds == 0 else ""), 5,
                   min_folds, 20, integer=True)
    alg.add_number("BLOCK_SIZE", "Block size for the folds, map units (0 = automatic)", 0.0, 0.0)
    alg.add_number("MIN_DISTANCE", "Minimum distance of background windows from deposits (0 = one window)",
                   0.0, 0.0)
    alg.add_number("NEGATIVES_PER_POSITIVE", "Background windows per deposit", 10.0, 0.1)
    alg.add_number("JITTER_COPIES", "Shifted copies per deposit window", 8, 0, 200, integer=True)
    alg.add_number("SEED", "Random seed", 42, 0, integer=True)
    alg.add_number("BATCH_SIZE", "ResNet batch size", 32, 2, 4096, integer=True, advanced=True)
    alg.add_number("LEARNING_RATE", "ResNet learning rate", learning_rate, 1e-6, 10.0, advanced=True)

class TrainProspectivityCnn(OreMapAlgorithm):
    NAME = "train_prospectivity_cnn"
    DISPLAY_NAME = "Train a prospectivity ResNet on geochemical grids"
    GROUP = "geochemistry"
    REQUIRES = ("torch", "onnx")
    TAGS = ("prospectivity,resnet,cnn,deep learning,geochemistry,deposits,targeting,windows,spatial "
            "cross-validation,onnx")
    HELP = (
        "Trains a residual network (ResNet) to recognise the multi-element geochemical pattern around known "
        "deposits, on square windows of an element stack (one band per element, e.g. IDW grids made with "
        "'IDW interpolation of geochemical samples'), and saves it as an OreMap ONNX model for 'Prospectivity "
        "map from a ResNet'.\n\n"
        "Deposit windows are centred on each deposit, with copies shifted by a few cells (augmentation); "
        "background windows are random windows whose centre lies at least the minimum distance from every "
        "deposit. Each element is z-scored with statistics of the training windows (stored in the model); "
        "nodata becomes the mean. Training uses SGD with momentum and weight decay, a class-balanced loss, "
        "random crops, mirror images and 90 degree rotations.\n\n"
        "Few deposits and neighbouring windows that share cells make ordinary validation far too optimistic. "
        "Here the area is cut into square blocks that are dealt to spatial folds before any augmentation: each "
        "fold's blocks are held out whole, and their deposits and background windows are scored by a model "
        "trained without them, without their shifted copies and without any window overlapping them (training "
        "windows that could share a cell with a validation window, crop margin included, are left out; the "
        "rest of the area stays available, so a fold holding a cluster of deposits still has the others to "
        "train on). The report gives ROC-AUC per fold with mean and standard deviation, accuracy, F1, the "
        "confusion matrix, learning curves and a map of the folds; the saved model is then trained on all "
        "windows.")
    PARAM_HELP = {
        "INPUT": "Element stack: one band per element, band descriptions = element names (the map algorithm "
                 "finds the elements by these names). Read whole into memory.",
        "DEPOSITS": "Known deposits or occurrences as points, in any CRS (transformed to the raster's). Points "
                    "off the raster only keep background windows away from them.",
        "WINDOW": "Side of a window in cells (8-256). It should hold a deposit's geochemical halo with some "
                  "background around it, and leave room for several blocks of folds: 16 (a 16 km halo on a 1 km "
                  "survey grid, as oremap:train_prospectivity_model; 64 validated no deposit on the Katanning "
                  "survey's 143 x 214 cells). The Pangxidong study used 64 on a finer grid.",
        "DEPTH": "ResNet depth: 18 and 34 (basic blocks), 50 (bottleneck blocks). Deeper needs more data.",
        "WIDTH": "Channels of the first stage (doubled at each of the 4 stages). 16 trains on a CPU; 64 is the "
                 "classic ImageNet width.",
        "EPOCHS": "Passes over the training windows, for each fold and for the final model.",
        "BATCH_SIZE": "Windows per training step.",
        "LEARNING_RATE": "Initial SGD learning rate (cosine decay to 1 % of it).",
        "MOMENTUM": "SGD (Nesterov) momentum.",
        "WEIGHT_DECAY": "L2 penalty on the weights.",
        "FOLDS": "Spatial cross-validation folds (0 = no cross-validation, only the final model). Fewer when "
                 "fewer blocks hold deposits.",
        "BLOCK_SIZE": "Side of the square blocks dealt to the folds, in map units. 0 = automatic: the larger of "
                      "two windows and an eighth of the raster's longer side.",
        "MIN_DISTANCE": "A background window's centre lies at least this far from every deposit, in map units. "
                        "0 = one window width.",
        "NEGATIVES_PER_POSITIVE": "Background windows drawn per deposit (before augmentation).",
        "JITTER_COPIES": "Shifted copies of each training deposit window (augmentation, training side only).",
        "PATIENCE": "0 = train every fold for all epochs. Otherwise stop a fold when its validation loss has not "
                    "improved for this many epochs (the validation data then steer training, so the "
                    "cross-validation figures are optimistic).",
        "MASK_CHANNEL": "Give the network an extra 0/1 band saying which cells hold data.",
        "FLIPS": "Augment training windows with mirror images and 90 degree rotations. Turn off when the "
                 "geochemical patterns have a meaningful direction (e.g. along a regional structural trend).",
        "MAX_NODATA": "Windows with a larger share of nodata cells (or cells off the raster) are not used, and "
                      "not scored when mapping.",
        "NODATA": "A value to treat as nodata in addition to the raster's own (a cell with any element equal to "
                  "it is nodata).",
        "SEED": "Random seed: the same seed and data give the same model.",
        "THREADS": "Threads torch may use; 0 = its default (all cores). 1 is often fastest for small windows or "
                   "on a busy machine.",
    }
    OUTPUT_HELP = {
        "OUTPUT_MODEL": "The model: ONNX with OreMap metadata (elements, z-score statistics, window and cell size, "
                        "CRS, cross-validation summary).",
        "OUTPUT_REPORT": "HTML training report: folds map, AUC per fold, accuracy, F1, confusion matrix, learning "
                         "curves. A temporary file when not given.",
        "CV_AUC_MEAN": "Mean ROC-AUC over the spatial folds (NaN without cross-validation).",
        "CV_AUC_SD": "Standard deviation of the ROC-AUC over the folds.",
        "CV_ACCURACY": "Accuracy of all folds' validation windows at probability 0.5.",
        "CV_F1": "F1 score of the deposit class on all folds' validation windows.",
        "DEPOSITS_USED": "Number of deposit windows (distinct deposit cells on valid data).",
        "CV_DEPOSITS_VALIDATED": "Deposits validated by the spatial cross-validation: a fold is skipped when no "
                                 "training deposit is left outside the buffer around its validation windows, "
                                 "and its deposits are then not validated.",
    }
    REFERENCES = [
        "He, K., Zhang, X., Ren, S. and Sun, J. (2016). Deep residual learning for image recognition. CVPR, "
        "770-778.",
        "Gao, L., Huang, Y., Zhang, X., Liu, Q. and Chen, Z. (2022). Prediction of prospecting target based on "
        "ResNet convolutional neural network. Applied Sciences 12(22), 11433 (Pangxidong district: 7,234 "
        "stream-sediment samples, 16 elements; 86.11 % accuracy, AUC 0.7454, F1 0.7653 on 144 test windows).",
        "Roberts, D. R. et al. (2017). Cross-validation strategies for data with temporal, spatial, hierarchical, "
        "or phylogenetic structure. Ecography 40, 913-929.",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "deposits": "DEPOSITS", "window": "WINDOW", "depth": "DEPTH", "width": "WIDTH", "epochs": "EPOCHS",
        "batch_size": "BATCH_SIZE", "learning_rate": "LEARNING_RATE", "block_size": "BLOCK_SIZE",
        "min_distance": "MIN_DISTANCE", "negatives_per_positive": "NEGATIVES_PER_POSITIVE",
        "jitter_copies": "JITTER_COPIES", "max_nodata": "MAX_NODATA", "training": "INPUT",
        "output": "OUTPUT_MODEL", "report": "OUTPUT_REPORT",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input("INPUT", "Element stack (one band per element)")
        self._add(QgsProcessingParameterFeatureSource("DEPOSITS", self.tr("Known deposits"),
                                                      [QgsProcessing.TypeVectorPoint]))
        add_window_and_fold_parameters(self, window=16, min_folds=0, learning_rate=0.05)
        self.add_number("MOMENTUM", "Momentum", 0.9, 0.0, 0.999, advanced=True)
        self.add_number("WEIGHT_DECAY", "Weight decay", 1e-4, 0.0, 1.0, advanced=True)
        self.add_number("PATIENCE", "Early-stopping patience (0 = none)", 0, 0, 1000, integer=True, advanced=True)
        self._add(QgsProcessingParameterBoolean("MASK_CHANNEL", self.tr("Add a nodata-mask channel"),
                                                defaultValue=False), advanced=True)
        self._add(QgsProcessingParameterBoolean("FLIPS", self.tr("Mirror and rotate training windows"),
                                                defaultValue=True), advanced=True)
        self.add_number("MAX_NODATA", "Largest nodata share of a window", 0.5, 0.0, 0.99, advanced=True)
        self.add_nodata_parameter()
        self.add_number("THREADS", "Threads (0 = all)", 0, 0, 256, integer=True, advanced=True)
        self.add_file_output("OUTPUT_MODEL", "Model file", "ONNX models (*.onnx)")
        self.add_report_output("OUTPUT_REPORT", "Training report")
        self.add_value_output("CV_AUC_MEAN", "Spatial CV AUC (mean)")
        self.add_value_output("CV_AUC_SD", "Spatial CV AUC (standard deviation)")
        self.add_value_output("CV_ACCURACY", "Spatial CV accuracy")
        self.add_value_output("CV_F1", "Spatial CV F1")
        self.add_value_output("DEPOSITS_USED", "Deposit windows used")
        self.add_value_output("CV_DEPOSITS_VALIDATED", "Deposits validated by the spatial CV")

    def process(self, parameters, context, feedback):
        from ..core.geochemistry.prospectivity_cnn import train_prospectivity

        raster, layer = self.raster_path(parameters, "INPUT", context, require_crs=True)
        refuse_geographic_raster(self, "INPUT", layer)  # block sizes and distances are in map units
        feedback.info(grid_meaning.describe(grid_meaning.read_meaning(raster)))  # z-scored as they are
        deposits = self.deposit_points(parameters, "DEPOSITS", context, layer.crs(), feedback)
        model_path = self.output_path(parameters, "OUTPUT_MODEL", context, feedback)
        report_path = self.output_path(parameters, "OUTPUT_REPORT", context, feedback)
        number = lambda name: self.parameterAsDouble(parameters, name, context)  # noqa: E731
        integer = lambda name: self.parameterAsInt(parameters, name, context)  # noqa: E731
        nodata = parameters.get("NODATA")
        nodata = None if nodata in (None, "") else number("NODATA")
        result = train_prospectivity(
            raster, deposits, model_path, report_path, window=integer("WINDOW"),
            depth=DEPTHS[self.parameterAsEnum(parameters, "DEPTH", context)], width=integer("WIDTH"),
            epochs=integer("EPOCHS"), batch_size=integer("BATCH_SIZE"), lr=number("LEARNING_RATE"),
            momentum=number("MOMENTUM"), weight_decay=number("WEIGHT_DECAY"), n_folds=integer("FOLDS"),
            block_size=number("BLOCK_SIZE") or None, min_distance=number("MIN_DISTANCE") or None,
            negatives_per_positive=number("NEGATIVES_PER_POSITIVE"), jitter_copies=integer("JITTER_COPIES"),
            mask_channel=self.parameterAsBool(parameters, "MASK_CHANNEL", context),
            flips=self.parameterAsBool(parameters, "FLIPS", context), max_nodata=number("MAX_NODATA"),
            patience=integer("PATIENCE"), seed=integer("SEED"), nodata=nodata, memory_mb=self.memory_mb(),
            threads=integer("THREADS") or None, feedback=feedback)
        cv = result.cv
        return {"OUTPUT_MODEL": model_path, "OUTPUT_REPORT": report_path, "CV_AUC_MEAN": cv["auc_mean"],
                "CV_AUC_SD": cv["auc_sd"], "CV_ACCURACY": cv["accuracy"], "CV_F1": cv["f1"],
                "DEPOSITS_USED": result.plan.info["n_deposits"], "CV_DEPOSITS_VALIDATED": cv["n_deposits_validated"]}
