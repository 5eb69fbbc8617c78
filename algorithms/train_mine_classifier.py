"""oremap:train_mine_classifier - is there a mine in this Sentinel-2 patch? (nested, spatial cross-validation)"""

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.sentinel2 import mine_classifier
from ..core.sentinel2 import patch_models
from ..core.sentinel2 import patch_sets
from .base import OreMapAlgorithm, split_names
from .s2_indices import S2_INPUT_HELP, add_cloud_mask, cloud_mask
from .train_mine_segmentation import polygon_geometries


class TrainMineClassifier(OreMapAlgorithm):
    NAME = "train_mine_classifier"
    DISPLAY_NAME = "Train a mine patch classifier"
    GROUP = "sentinel2"
    TAGS = "sentinel-2,mine,mining,detection,patch,classification,gradient boosting,cnn,onnx,cross-validation"
    REQUIRES = ("onnx", "onnxruntime", "sklearn")
    RECOMMENDS = {"torch": "the CNN classifier"}
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "labels": "LABELS", "polygons": "POLYGONS",
                       "chips": "CHIP_FOLDER", "masks": "MASK_FOLDER",
                       "classifier": "CLASSIFIER", "folds": "FOLDS", "patch_size": "PATCH_SIZE",
                       "min_overlap": "MIN_OVERLAP", "band_map": "BAND_MAP", "bands": "BANDS", "output": "OUTPUT_MODEL",
                       "report": "OUTPUT_REPORT"}
    HELP = (
        "Trains a classifier telling whether a Sentinel-2 patch holds a mine (open pit, waste dumps, tailings, "
        "haul roads), and saves it as an OreMap ONNX model with an HTML report.\n\n"
        "Training data are either (a) a folder of GeoTIFF patches with a label table (CSV 'file,label', 1 = "
        "mine), as in mine-detection competitions, or (b) a Sentinel-2 raster with mine polygons: the raster is "
        "cut into patches on a grid, a patch covered by polygons over at least the minimum overlap is a mine, one "
        "they do not touch is not, and those in between are left out, or (c) a folder of image chips with a "
        "folder of mask chips, cut into patches the same way (folds grouped by chip, chips that share ground as one: "
        "overlapping footprints, or for chips without georeference the same pixels; "
        "where chips overlap in chains, as cut from one scene with a stride below the chip size, by spatial block "
        "of the patch centres, each fold, and each inner fold tuning its threshold, leaving out of its training the "
        "patches that overlap its held-out ones). "
        "Bands are identified by "
        "name (or a band "
        "map) and turned into reflectance; the classifier uses the bands you choose, from RGB (B2, B3, B4) to "
        "all 12 L2A bands (by default every band the data have), and the model records them. Give many more "
        "patches without a mine than with (a real scene has far more ground without a mine than with), bare "
        "fields and dry river beds included: a classifier that has seen few bare places "
        "without mines takes them for mines.\n\n"
        "The default classifier is gradient boosting on patch statistics: per band and per spectral index (NDVI, "
        "NDWI, MNDWI, BSI, NBR, NBR2, NDMI, iron oxide, ferrous iron, clay: those the bands allow) the mean, "
        "spread and percentiles, plus the fractions of pixels that are bare (BSI &gt; 0.1, NDVI &lt; 0.2), water, "
        "iron-rich or clay-rich. The "
        "alternative is a small CNN trained from scratch on bands and indices (random flips and rotations).\n\n"
        "Accuracy is estimated by nested cross-validation: folds are stratified and, when the patches are "
        "georeferenced, grouped by spatial block so neighbouring patches never sit on both sides; each fold's "
        "decision threshold is tuned on the other folds only (an inner cross-validation), never on the fold it "
        "is scored on. The report gives F1, precision, recall, accuracy, the confusion matrix, the scores per "
        "fold and the threshold curve.")
    PARAM_HELP = {
        "LABELS": "(a) CSV with a file column and a label column (1/0, mine/no mine), e.g. 'file,label'.",
        "PATCH_FOLDER": "(a) Folder holding the patch files; by default the label table's folder.",
        "INPUT": "(b) A Sentinel-2 raster with named bands (B2, B04 ...).",
        "POLYGONS": "(b) Mine polygons over the raster (any CRS).",
        "CHIP_FOLDER": "(c) A folder of image chips (GeoTIFF), as mine datasets are published; cut into patches "
                       "on a grid. The folds are grouped by chip (chips that share ground as one; chips overlapping "
                       "in chains by spatial block, see above).",
        "MASK_FOLDER": "(c) The mask chips: one per image chip, same size and name (a suffix such as _mask is "
                       "allowed); non-zero pixels are mine. A mask with a georeference must lie on its chip's "
                       "grid (same CRS, origin and pixel size).",
        "PATCH_SIZE": "(b, c) Patch size in pixels (120 = 1.2 km at 10 m).",
        "MIN_OVERLAP": "(b, c) Share of a patch that mine polygons (or mask pixels) must cover for it to count as a "
                       "mine (0-1).",
        "CLASSIFIER": "Gradient boosting on patch statistics (fast, default) or a small CNN (needs torch).",
        "FOLDS": "Outer cross-validation folds (fewer when there are fewer spatial blocks or patches).",
        "INNER_FOLDS": "Inner folds used to tune each outer fold's threshold on its training folds.",
        "SPATIAL": "Group the folds by spatial block of the patch centres (when the patches are georeferenced).",
        "BLOCK_SIZE": "Side of the spatial blocks in metres (CRS units of a projected raster; a raster in degrees has "
                      "its patch centres taken to metres); 0 = five patch widths.",
        "EPOCHS": "CNN only: training epochs.",
        "SEED": "Random seed: the same data and seed give the same folds and model.",
        "BANDS": "S2 bands the classifier uses, from RGB ('B2, B3, B4') to all 12; empty = every L2A band of "
                 "the first patch (a) or of the raster (b). Detection then needs exactly these bands.",
        "BAND_MAP": "The raster band of each S2 band, e.g. 'B2=1, B3=2, B4=3': names unnamed bands, renames or "
                    "completes named ones.",
        "CLOUD_MASK": S2_INPUT_HELP["CLOUD_MASK"] + " Applies to patches that are folders of per-band files.",
    }
    OUTPUT_HELP = {
        "OUTPUT_MODEL": "The model (.onnx) with its metadata: bands, feature definition, threshold, patch size.",
        "OUTPUT_REPORT": "HTML report: cross-validated scores, confusion matrix, threshold curve, folds.",
        "F1": "F1 score of the mine class on the held-out folds (nested thresholds).",
        "PRECISION": "Precision of the mine class on the held-out folds.",
        "RECALL": "Recall of the mine class on the held-out folds.",
        "THRESHOLD": "Decision threshold on P(mine) stored in the model (F1-best over the held-out predictions).",
    }
    REFERENCES = [
        "Drusch, M. et al. (2012). Sentinel-2: ESA's optical high-resolution mission for GMES operational "
        "services. Remote Sensing of Environment 120, 25-36.",
        "Roberts, D. R. et al. (2017). Cross-validation strategies for data with temporal, spatial, hierarchical, "
        "or phylogenetic structure. Ecography 40, 913-929.",
        "Varma, S. and Simon, R. (2006). Bias in error estimation when using cross-validation for model "
        "selection. BMC Bioinformatics 7, 91.",
        "Sumbul, G. et al. (2019). BigEarthNet: a large-scale benchmark archive for remote sensing image "
        "understanding. IGARSS 2019.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterFile("LABELS", self.tr("Label table (a)"), extension="csv", optional=True))
        self._add(QgsProcessingParameterFile("PATCH_FOLDER", self.tr("Patch folder (a)"),
                                             behavior=QgsProcessingParameterFile.Folder, optional=True))
        self._add(QgsProcessingParameterRasterLayer("INPUT", self.tr("Sentinel-2 raster (b)"), optional=True))
        self._add(QgsProcessingParameterFeatureSource("POLYGONS", self.tr("Mine polygons (b)"),
                                                      [QgsProcessing.TypeVectorPolygon], optional=True))
        self._add(QgsProcessingParameterFile("CHIP_FOLDER", self.tr("Image chips (c)"),
                                             behavior=QgsProcessingParameterFile.Folder, optional=True))
        self._add(QgsProcessingParameterFile("MASK_FOLDER", self.tr("Mask chips (c)"),
                                             behavior=QgsProcessingParameterFile.Folder, optional=True))
        self.add_number("PATCH_SIZE", "Patch size in pixels (b, c)", 120, 8, integer=True)
        self.add_number("MIN_OVERLAP", "Minimum mine overlap of a mine patch (b, c)", 0.02, 0.0001, maximum=1.0)
        self.add_enum("CLASSIFIER", "Classifier", [label for _, label in patch_models.CLASSIFIERS])
        self.add_number("FOLDS", "Cross-validation folds", 5, 2, integer=True)
        self.add_number("INNER_FOLDS", "Inner folds (threshold tuning)", 3, 2, integer=True, advanced=True)
        self._add(QgsProcessingParameterBoolean("SPATIAL", self.tr("Spatially grouped folds"), defaultValue=True),
                  advanced=True)
        self.add_number("BLOCK_SIZE", "Spatial block size (0 = five patch widths)", 0.0, 0.0, advanced=True)
        self.add_number("EPOCHS", "CNN epochs", 30, 1, integer=True, advanced=True)
        self.add_number("SEED", "Random seed", 0, 0, integer=True, advanced=True)
        self._add(QgsProcessingParameterString("BANDS", self.tr("Bands (empty = all the input has)"),
                                               optional=True), advanced=True)
        self._add(QgsProcessingParameterString("BAND_MAP", self.tr("Band map (names, renames or completes bands)"),
                                               optional=True), advanced=True)
        add_cloud_mask(self)
        self.add_file_output("OUTPUT_MODEL", "Model file", "ONNX models (*.onnx)")
        self.add_report_output("OUTPUT_REPORT", "Training report")
        self.add_value_output("F1", "F1 (held-out folds)")
        self.add_value_output("PRECISION", "Precision (held-out folds)")
        self.add_value_output("RECALL", "Recall (held-out folds)")
        self.add_value_output("THRESHOLD", "Decision threshold of the model")

    def patch_set(self, parameters, context, feedback, keep_patches):
        labels = self.parameterAsFile(parameters, "LABELS", context)
        raster = self.parameterAsRasterLayer(parameters, "INPUT", context)
        band_map = self.parameterAsString(parameters, "BAND_MAP", context) or None
        bands = split_names(self.parameterAsString(parameters, "BANDS", context)) or None
        chip_folder = self.parameterAsFile(parameters, "CHIP_FOLDER", context)
        given = [name for name, value in (("LABELS", labels), ("INPUT", raster is not None),
                                          ("CHIP_FOLDER", chip_folder)) if value]
        if len(given) > 1:
            raise self.fail(given[-1], f"Several training sources were given ({', '.join(given)}).",
                            "Train from one source: a label table (a), a raster (b) or chips (c); leave the others "
                            "empty.")
        if chip_folder:
            from ..core.sentinel2.chip_sets import find_chip_pairs

            masks = self.parameterAsFile(parameters, "MASK_FOLDER", context)
            if not masks:
                raise self.fail("MASK_FOLDER", "Chips (c) need a folder of mask chips.",
                                "Choose the folder of masks (one per chip, same name, mine pixels non-zero).")
            self._parameter_overrides["raster"] = "CHIP_FOLDER"  # the input given: (c)
            self._parameter_overrides["labels"] = "MASK_FOLDER"  # its labels: the masks
            return patch_sets.patches_from_chips(
                find_chip_pairs(chip_folder, masks, feedback),
                patch_size=self.parameterAsInt(parameters, "PATCH_SIZE", context),
                min_overlap=self.parameterAsDouble(parameters, "MIN_OVERLAP", context), keep_patches=keep_patches,
                band_map=band_map, feedback=feedback, mask_clouds=cloud_mask(self, parameters, context), bands=bands)
        if labels:
            folder = self.parameterAsFile(parameters, "PATCH_FOLDER", context) or None
            self._parameter_overrides["raster"] = "PATCH_FOLDER" if folder else "LABELS"  # the input given: (a)
            return patch_sets.load_patch_folder(labels, folder, keep_patches=keep_patches, band_map=band_map,
                                                feedback=feedback, mask_clouds=cloud_mask(self, parameters, context),
                                                bands=bands)
        if raster is None:
            raise self.fail("LABELS", "No training data were given.",
                            "Give a label table of patches (a), a Sentinel-2 raster with mine polygons (b), or image "
                            "chips with mask chips (c).")
        path, layer = self.raster_path(parameters, "INPUT", context)
        self._parameter_overrides["labels"] = "POLYGONS"  # (b): the polygons label the patches
        if self.parameterAsSource(parameters, "POLYGONS", context) is None:
            raise self.fail("POLYGONS", "A raster needs mine polygons to label its patches.",
                            "Choose a polygon layer of the mines.")
        geometries = polygon_geometries(self, parameters, "POLYGONS", context, layer.crs(), feedback)
        return patch_sets.patches_from_raster(
            path, geometries, patch_size=self.parameterAsInt(parameters, "PATCH_SIZE", context),
            min_overlap=self.parameterAsDouble(parameters, "MIN_OVERLAP", context), keep_patches=keep_patches,
            band_map=band_map, feedback=feedback, mask_clouds=cloud_mask(self, parameters, context), bands=bands)

    def process(self, parameters, context, feedback):
        classifier = patch_models.CLASSIFIERS[self.parameterAsEnum(parameters, "CLASSIFIER", context)][0]
        model_path = self.output_path(parameters, "OUTPUT_MODEL", context, feedback)
        report_path = self.output_path(parameters, "OUTPUT_REPORT", context, feedback)
        data = self.patch_set(parameters, context, feedback.scaled(0, 35), keep_patches=classifier == "cnn")
        feedback.info(f"{data.n} patches: {data.n_positive} with a mine, {data.n_negative} without.")
        spatial = self.parameterAsBool(parameters, "SPATIAL", context)
        block = self.parameterAsDouble(parameters, "BLOCK_SIZE", context) or None
        result = mine_classifier.train_mine_classifier(
            data, classifier=classifier, n_folds=self.parameterAsInt(parameters, "FOLDS", context),
            inner_folds=self.parameterAsInt(parameters, "INNER_FOLDS", context),
            seed=self.parameterAsInt(parameters, "SEED", context), block_size=block if spatial else 0,
            model_path=model_path, report_path=report_path,
            cnn_options={"epochs": self.parameterAsInt(parameters, "EPOCHS", context)},
            feedback=feedback.scaled(35, 100))
        m = result["metrics"]
        return {"OUTPUT_MODEL": model_path, "OUTPUT_REPORT": report_path, "F1": m["f1"],
                "PRECISION": m["precision"], "RECALL": m["recall"], "THRESHOLD": result["threshold"]}
