"""oremap:train_mine_segmentation - a U-Net mapping mine footprints in Sentinel-2 images, from polygons."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .base import OreMapAlgorithm, split_names
from .s2_indices import S2_INPUT_HELP, add_s2_input, cloud_mask, s2_input_path


def polygon_geometries(alg, parameters, name, context, crs, feedback=None):
    """Shapely polygons (in ``crs``) of a polygon-layer parameter, invalid ones included.

    Mine outlines are often invalid in the strict sense (rings touching themselves after a union);
    the core repairs them (``buffer(0)``) instead of Processing refusing the layer.
    """
    from shapely import wkb

    source = alg.parameterAsSource(parameters, name, context)
    if source is None:
        raise alg.fail(name, "No mine polygons were given.", "Choose a polygon layer of mine footprints.")
    geometries, skipped = [], 0
    for _, geometry in alg.source_features(source, context, crs, skip_validity=True, name=name):
        if geometry is None:
            skipped += 1
            continue
        geometries.append(wkb.loads(bytes(geometry.asWkb())))
    if skipped and feedback is not None:
        feedback.warning(f"{skipped} features without a geometry were left out.")
    if not geometries:
        raise alg.empty_layer(parameters, name, context, "The layer holds no polygons.",
                              "Choose a polygon layer of mine footprints.")
    return geometries


class TrainMineSegmentation(OreMapAlgorithm):
    NAME = "train_mine_segmentation"
    DISPLAY_NAME = "Train a mine segmentation U-Net (Sentinel-2)"
    GROUP = "sentinel2"
    TAGS = "sentinel-2,s2,mine,mining,open pit,tailings,segmentation,u-net,unet,cnn,deep learning,footprint,onnx"
    REQUIRES = ("torch", "onnx", "onnxruntime")
    HELP = (
        "Trains a small U-Net to map mine footprints (open pits, waste dumps, tailings ponds ...) pixel by pixel "
        "in a Sentinel-2 scene, from polygons of known mines, and saves it as an OreMap ONNX model for 'Detect "
        "mines in a Sentinel-2 scene'.\n\n"
        "The scene is cut into square tiles; the polygons are rasterised onto each tile (a pixel is mine when its "
        "centre lies inside a polygon). Every tile holding mine pixels is used, with a number of random tiles "
        "without mines. The network sees the reflectance of the chosen bands plus spectral indices, standardised "
        "with statistics of the training tiles (stored in the model); it learns with a BCE + Dice loss, random "
        "flips and 90 degree rotations. The same seed gives the same model.\n\n"
        "Training data are one raster with mine polygons, or many chips: a folder of image chips with a folder "
        "of mask chips. Background tiles that do not fit in the memory budget are streamed: a fresh draw of "
        "them at every epoch.\n\n"
        "Accuracy is measured on held-out tiles: the tile grid is grouped into square blocks and some blocks "
        "(with and without mines) are kept out of training, so held-out tiles share no pixel with training "
        "tiles (with chips, whole chips are held out). The report gives IoU, F1, precision and recall of the "
        "mine class on them, learning curves, the tile layout and an example tile with the reference and "
        "predicted outlines.")
    PARAM_HELP = {
        **S2_INPUT_HELP,
        "POLYGONS": "Polygons of known mine footprints (any CRS: transformed to the raster's). Pixels outside "
                    "them are taken as 'no mine', so map every mine of the area you train on.",
        "CHIP_FOLDER": "Instead of a raster with polygons: a folder of image chips (GeoTIFF, any CRS and band set "
                       "the chips share), as mine datasets are published. Each chip is cut into tiles; whole chips "
                       "are held out.",
        "MASK_FOLDER": "The mask chips: one per image chip, of the same size, named like it (a suffix or prefix "
                       "such as _mask, _label or gt_ is allowed); non-zero pixels are mine. A mask with a "
                       "georeference must lie on its chip's grid (same CRS, origin and pixel size).",
        "BANDS": "S2 bands fed to the network, from RGB ('B2, B3, B4') to all 12; empty = every L2A band the "
                 "input has. The model records them, and detection asks for exactly these bands.",
        "INDICES": "Spectral indices added as input channels, computed from the chosen bands: indices needing "
                   "another band are left out (the log lists them).",
        "TILE": "Tile side in pixels (a multiple of 2 to the power of the depth); 128 = 1.28 km. A tile needs half "
                "its pixels valid to be trained on: with chips, choose a tile that fits them (at most their size, best "
                "a divisor of it), or the tiles reaching over a chip's edge are left out (the log and report count "
                "those holding mines).",
        "DEPTH": "Poolings of the U-Net (3 or 4 usual).",
        "WIDTH": "Channels of the first level, doubled at each level.",
        "EPOCHS": "Passes over the training tiles.",
        "BATCH_SIZE": "Tiles per training step.",
        "LEARNING_RATE": "Initial Adam learning rate (cosine decay to 1 % of it).",
        "WEIGHT_DECAY": "L2 penalty on the weights.",
        "DICE_WEIGHT": "Weight of the Dice term next to the BCE (Dice counters the rarity of mine pixels).",
        "AUGMENT": "Flips and 90 degree rotations (default), or those plus a random brightness (x 0.85-1.15) and "
                   "haze (up to 0.03 reflectance in the blue, less at longer wavelengths) per tile, for scenes "
                   "from other dates or calibrations than the training scene.",
        "CLASS_WEIGHT": "Weigh mine pixels in the BCE by the ratio of background to mine pixels (at most 20).",
        "INIT_WEIGHTS": "Start from these weights instead of random ones: a .pt file written by an earlier "
                        "training (Network weights output) with the same bands, indices, depth and width. "
                        "Nothing is downloaded.",
        "NEGATIVES_PER_POSITIVE": "Tiles without mines drawn per tile with mines (per split); -1 = all.",
        "BLOCK_TILES": "Side of a spatial hold-out block, in tiles. Chips are held out whole (chips that share "
                       "ground as one); where chips overlap in chains (cut from one scene with a stride below the "
                       "chip size), by blocks of ground of this side, a training tile that overlaps a held-out one "
                       "left out of training.",
        "VAL_FRACTION": "Share of the blocks held out (as many of those with mines as of the others).",
        "THRESHOLD": "Probability from which a pixel counts as mine (for the metrics; stored as the model's "
                     "default threshold).",
        "SEED": "Random seed: the same seed and data give the same model.",
    }
    OUTPUT_HELP = {
        "OUTPUT_MODEL": "The model: ONNX with OreMap metadata (bands, indices, normalisation, tile size, "
                        "threshold, held-out metrics).",
        "OUTPUT_REPORT": "HTML training report: IoU and F1, learning curves, tile layout, example tile.",
        "OUTPUT_WEIGHTS": "Optional: the network's weights (torch state dict) to start another training from.",
        "IOU": "Intersection over union of the mine class on the held-out tiles' pixels (NaN without held-out "
               "mines).",
        "F1": "F1 score of the mine class on the held-out tiles' pixels.",
        "PRECISION": "Precision of the mine class on the held-out tiles' pixels.",
        "RECALL": "Recall of the mine class on the held-out tiles' pixels.",
    }
    REFERENCES = [
        "Ronneberger, O., Fischer, P. and Brox, T. (2015). U-Net: convolutional networks for biomedical image "
        "segmentation. MICCAI, LNCS 9351, 234-241.",
        "Milletari, F., Navab, N. and Ahmadi, S.-A. (2016). V-Net: fully convolutional neural networks for "
        "volumetric medical image segmentation (Dice loss). 3DV, 565-571.",
        "Maus, V. et al. (2022). An update on global mining land use. Scientific Data 9, 433.",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "polygons": "POLYGONS", "chips": "CHIP_FOLDER", "masks": "MASK_FOLDER", "bands": "BANDS",
        "indices": "INDICES", "band_map": "BAND_MAP", "tile": "TILE", "augment": "AUGMENT",
        "init_weights": "INIT_WEIGHTS", "weights": "OUTPUT_WEIGHTS",
        "depth": "DEPTH", "width": "WIDTH", "epochs": "EPOCHS", "batch_size": "BATCH_SIZE",
        "learning_rate": "LEARNING_RATE", "block_tiles": "BLOCK_TILES", "val_fraction": "VAL_FRACTION",
        "threshold": "THRESHOLD", "output": "OUTPUT_MODEL", "report": "OUTPUT_REPORT",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..core.sentinel2.mine_segmentation import DEFAULT_INDICES
        from ..core.sentinel2.sentinel2 import INDEX_NAMES

        add_s2_input(self)
        self._add(QgsProcessingParameterFeatureSource("POLYGONS", self.tr("Mine polygons"),
                                                      [QgsProcessing.TypeVectorPolygon], optional=True))
        self._add(QgsProcessingParameterFile("CHIP_FOLDER", self.tr("Or a folder of image chips"),
                                             behavior=QgsProcessingParameterFile.Folder, optional=True))
        self._add(QgsProcessingParameterFile("MASK_FOLDER", self.tr("with a folder of mask chips"),
                                             behavior=QgsProcessingParameterFile.Folder, optional=True))
        self._add(QgsProcessingParameterString("BANDS", self.tr("Bands (empty = all the input has)"), optional=True),
                  advanced=True)
        self._add(QgsProcessingParameterEnum(
            "INDICES", self.tr("Spectral indices as extra channels"), options=INDEX_NAMES, allowMultiple=True,
            optional=True, defaultValue=[INDEX_NAMES.index(i) for i in DEFAULT_INDICES]))
        self.add_number("TILE", "Tile size (pixels)", 128, 16, 512, integer=True)
        self.add_number("DEPTH", "U-Net depth (poolings)", 4, 1, 6, integer=True)
        self.add_number("WIDTH", "U-Net width (channels of the first level)", 16, 2, 128, integer=True)
        self.add_number("EPOCHS", "Epochs", 30, 1, 1000, integer=True)
        self.add_number("NEGATIVES_PER_POSITIVE", "Background tiles per mine tile (-1 = all)", 1.0, -1.0)
        self.add_number("BLOCK_TILES", "Hold-out block size (tiles)", 4, 1, 1000, integer=True)
        self.add_number("VAL_FRACTION", "Share of blocks held out", 0.25, 0.0, 0.9)
        self.add_number("THRESHOLD", "Probability threshold", 0.5, 0.01, 0.99)
        self.add_number("SEED", "Random seed", 0, 0, integer=True)
        self.add_number("BATCH_SIZE", "Batch size", 8, 2, 256, integer=True, advanced=True)
        self.add_number("LEARNING_RATE", "Learning rate", 0.002, 1e-6, 1.0, advanced=True)
        self.add_number("WEIGHT_DECAY", "Weight decay", 1e-4, 0.0, 1.0, advanced=True)
        self.add_number("DICE_WEIGHT", "Dice weight", 1.0, 0.0, 100.0, advanced=True)
        self._add(QgsProcessingParameterEnum(
            "AUGMENT", self.tr("Augmentation"),
            options=["Flips and rotations", "Flips, rotations, brightness and haze"], defaultValue=0), advanced=True)
        self._add(QgsProcessingParameterBoolean("CLASS_WEIGHT", self.tr("Weigh mine pixels by their rarity"),
                                                defaultValue=False), advanced=True)
        self._add(QgsProcessingParameterFile("INIT_WEIGHTS", self.tr("Initial weights (.pt)"), extension="pt",
                                             optional=True), advanced=True)
        self.add_file_output("OUTPUT_MODEL", "Model file", "ONNX models (*.onnx)")
        self.add_report_output("OUTPUT_REPORT", "Training report")
        self.add_file_output("OUTPUT_WEIGHTS", "Network weights (.pt, to start another training from)",
                             "Torch weights (*.pt)", optional=True)
        self.add_value_output("IOU", "Held-out IoU (mine)")
        self.add_value_output("F1", "Held-out F1 (mine)")
        self.add_value_output("PRECISION", "Held-out precision (mine)")
        self.add_value_output("RECALL", "Held-out recall (mine)")

    def chips(self, parameters, context, feedback):
        """The chips of CHIP_FOLDER paired with the masks of MASK_FOLDER, or None when no chip folder is given."""
        from ..core.sentinel2.chip_sets import find_chip_pairs

        folder = self.parameterAsFile(parameters, "CHIP_FOLDER", context)
        masks = self.parameterAsFile(parameters, "MASK_FOLDER", context)
        if not folder:
            if masks:
                raise self.fail("CHIP_FOLDER", "A mask folder was given without a chip folder.",
                                "Choose the folder of image chips too.")
            return None
        if self.parameterAsRasterLayer(parameters, "INPUT", context) is not None or \
                self.parameterAsFile(parameters, "INPUT_FOLDER", context):
            raise self.fail("CHIP_FOLDER", "Both chips and a Sentinel-2 input were given.",
                            "Train from the chips or from one raster with polygons: leave the other empty.")
        if not masks:
            raise self.fail("MASK_FOLDER", "Chips need a folder of mask chips.",
                            "Choose the folder of masks (one per chip, same name, mine pixels non-zero).")
        self._parameter_overrides["raster"] = "CHIP_FOLDER"  # errors of a chip name the chip folder
        self._parameter_overrides["polygons"] = "MASK_FOLDER"  # the mines of chips are their masks
        return find_chip_pairs(folder, masks, feedback)

    def process(self, parameters, context, feedback):
        from ..core.sentinel2.mine_segmentation import train_mine_segmentation
        from ..core.sentinel2.sentinel2 import INDEX_NAMES

        chips = self.chips(parameters, context, feedback)
        if chips:
            path, geometries = None, None
            band_map = self.parameterAsString(parameters, "BAND_MAP", context) or None
        else:
            path, band_map, crs = s2_input_path(self, parameters, context)
            geometries = polygon_geometries(self, parameters, "POLYGONS", context, crs, feedback)
        model_path = self.output_path(parameters, "OUTPUT_MODEL", context, feedback)
        report_path = self.output_path(parameters, "OUTPUT_REPORT", context, feedback)
        bands = split_names(self.parameterAsString(parameters, "BANDS", context)) or None
        indices = [INDEX_NAMES[i] for i in sorted(set(self.parameterAsEnums(parameters, "INDICES", context)))]
        number = lambda name: self.parameterAsDouble(parameters, name, context)  # noqa: E731
        integer = lambda name: self.parameterAsInt(parameters, name, context)  # noqa: E731
        result = train_mine_segmentation(
            path, geometries, model_path, report_path, bands=bands, indices=indices, band_map=band_map,
            tile=integer("TILE"), depth=integer("DEPTH"), width=integer("WIDTH"), epochs=integer("EPOCHS"),
            batch_size=integer("BATCH_SIZE"), lr=number("LEARNING_RATE"), weight_decay=number("WEIGHT_DECAY"),
            dice_weight=number("DICE_WEIGHT"), negatives_per_positive=number("NEGATIVES_PER_POSITIVE"),
            block_tiles=integer("BLOCK_TILES"), val_fraction=number("VAL_FRACTION"), threshold=number("THRESHOLD"),
            seed=integer("SEED"), memory_mb=self.memory_mb(), feedback=feedback,
            mask_clouds=cloud_mask(self, parameters, context), chips=chips,
            augment=("geometric", "photometric")[self.parameterAsEnum(parameters, "AUGMENT", context)],
            class_weight=self.parameterAsBoolean(parameters, "CLASS_WEIGHT", context),
            init_weights=self.parameterAsFile(parameters, "INIT_WEIGHTS", context) or None)
        weights_path = self.output_path(parameters, "OUTPUT_WEIGHTS", context, feedback)
        if weights_path:
            result.save_weights(weights_path)
        m = result.metrics
        return {"OUTPUT_MODEL": model_path, "OUTPUT_REPORT": report_path, "OUTPUT_WEIGHTS": weights_path,
                "IOU": m["val_iou"], "F1": m["val_f1"],
                "PRECISION": m["val_precision"], "RECALL": m["val_recall"]}
