"""oremap:detect_mines - mine probability, mask and footprint polygons of a Sentinel-2 scene."""

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsWkbTypes,
)

from . import qt_compat as field_type
from ..core.sentinel2.mine_detection import DEFAULT_MIN_AREA_HA
from .base import OreMapAlgorithm
from . import styles
from .s2_indices import S2_INPUT_HELP, add_s2_input, cloud_mask, s2_input_path

FIELDS = [("id", field_type.INT), ("area_ha", field_type.DOUBLE), ("mean_prob", field_type.DOUBLE),
          ("perimeter_m", field_type.DOUBLE), ("compactness", field_type.DOUBLE)]


class DetectMines(OreMapAlgorithm):
    NAME = "detect_mines"
    LONG_FIELDS = {"OUTPUT_POLYGONS": ("perimeter_m", "compactness")}
    DISPLAY_NAME = "Detect mines in a Sentinel-2 scene"
    GROUP = "sentinel2"
    TAGS = ("sentinel-2,s2,mine,mining,open pit,tailings,detection,segmentation,u-net,patch classifier,footprint,"
            "polygons,onnx")
    REQUIRES = ("onnx", "onnxruntime")
    HELP = (
        "Maps the probability of mining over a Sentinel-2 scene of any size with a model from 'Train a mine "
        "segmentation U-Net' (pixel by pixel) or 'Train a mine patch classifier' (patch by patch), and turns it "
        "into a mask and polygons of the detected footprints.\n\n"
        "A U-Net scores overlapping square windows; each window's output is weighted by a ramp falling towards "
        "its border and the windows are averaged, so no seam shows. A patch classifier scores a patch of its "
        "training size around every grid cell (stride = patch size by default; at the raster's edges the patch is "
        "moved inside the raster) and gives the cell its probability. The scene is streamed in bands of rows under the memory budget (Processing &gt; Options &gt; "
        "OreMap), so a whole 10,980 x 10,980 tile fits in a few hundred MB.\n\n"
        "Pixels at or above the threshold form the mask; its connected regions become polygons with their area "
        "(ha), mean probability, perimeter and compactness (Polsby-Popper 4 pi A / P^2: 1 for a circle, 0.785 for "
        "a square, small for roads and rivers). Polygons smaller than the minimum area or less compact than the "
        "minimum compactness are left out of the polygon layer (the mask keeps them).")
    PARAM_HELP = {
        **S2_INPUT_HELP,
        "MODEL_FILE": "An OreMap mine model (.onnx): a segmentation U-Net or a patch classifier.",
        "THRESHOLD": "Probability from which a pixel is mine; 0 = the model's own threshold.",
        "MIN_AREA": "Polygons smaller than this (ha) are left out; 1 pixel of 10 m = 0.01 ha.",
        "MIN_COMPACTNESS": "Polygons less compact than this (Polsby-Popper, 0-1) are left out; e.g. 0.1 drops "
                           "long thin shapes such as roads.",
        "OVERLAP": "U-Net: overlap of neighbouring windows in pixels (blended); -1 = the model's (a quarter of a "
                   "window). Larger is smoother and slower.",
        "STRIDE": "Patch classifier: grid cell size in pixels, each cell scored by a patch centred on it; 0 = the "
                  "patch size (patches side by side).",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 raster of the mine probability (0-1), nodata -9999 where the scene is nodata.",
        "OUTPUT_MASK": "Mine mask: 1 = mine (probability &gt;= threshold), 0 = not, 255 = nodata.",
        "OUTPUT_POLYGONS": "Polygons of the detected footprints: id, area_ha, mean_prob, perimeter_m, compactness.",
        "N_MINES": "Number of footprint polygons kept.",
        "TOTAL_AREA_HA": "Their total area in ha.",
    }
    REFERENCES = [
        "Ronneberger, O., Fischer, P. and Brox, T. (2015). U-Net: convolutional networks for biomedical image "
        "segmentation. MICCAI, LNCS 9351, 234-241.",
        "Polsby, D. D. and Popper, R. D. (1991). The third criterion: compactness as a procedural safeguard "
        "against partisan gerrymandering. Yale Law & Policy Review 9, 301-353.",
    ]
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "band_map": "BAND_MAP", "threshold": "THRESHOLD",
                       "min_area": "MIN_AREA", "min_compactness": "MIN_COMPACTNESS", "overlap": "OVERLAP",
                       "stride": "STRIDE", "output": "OUTPUT", "mask": "OUTPUT_MASK", "polygons": "OUTPUT_POLYGONS"}

    def initAlgorithm(self, config=None):  # noqa: N802
        add_s2_input(self)
        self._add(QgsProcessingParameterFile("MODEL_FILE", self.tr("Mine model"), extension="onnx"))
        self.add_number("THRESHOLD", "Probability threshold (0 = the model's)", 0.0, 0.0, 0.99)
        self.add_number("MIN_AREA", "Minimum polygon area (ha)", DEFAULT_MIN_AREA_HA, 0.0)
        self.add_number("MIN_COMPACTNESS", "Minimum compactness (0-1)", 0.0, 0.0, 1.0)
        self.add_number("OVERLAP", "Window overlap in pixels (U-Net; -1 = model's)", -1, -1, integer=True,
                        advanced=True)
        self.add_number("STRIDE", "Cell size in pixels (patch classifier; 0 = patch)", 0, 0, integer=True,
                        advanced=True)
        self.add_raster_output("OUTPUT", "Mine probability")
        self.add_raster_output("OUTPUT_MASK", "Mine mask", optional=True, create=True)
        self._add(QgsProcessingParameterFeatureSink("OUTPUT_POLYGONS", self.tr("Mine footprints"),
                                                    QgsProcessing.TypeVectorPolygon, optional=True,
                                                    createByDefault=True))
        self.add_value_output("N_MINES", "Footprints detected")
        self.add_value_output("TOTAL_AREA_HA", "Total footprint area (ha)")

    def process(self, parameters, context, feedback):
        from ..core.sentinel2.mine_detection import detect_mines

        path, band_map, crs = s2_input_path(self, parameters, context)
        model = self.parameterAsFile(parameters, "MODEL_FILE", context)
        if not model:
            raise self.fail("MODEL_FILE", "No model file was given.", "Choose an OreMap mine model (.onnx).")
        prob_path = self.output_path(parameters, "OUTPUT", context, feedback)
        mask_path = self.output_path(parameters, "OUTPUT_MASK", context, feedback)
        threshold = self.parameterAsDouble(parameters, "THRESHOLD", context) or None
        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        result = detect_mines(
            path, model, prob_path, mask_path, threshold=threshold,
            min_area_ha=self.parameterAsDouble(parameters, "MIN_AREA", context),
            min_compactness=self.parameterAsDouble(parameters, "MIN_COMPACTNESS", context),
            memory_mb=self.memory_mb(), feedback=feedback, band_map=band_map,
            overlap=None if overlap < 0 else overlap,
            stride=self.parameterAsInt(parameters, "STRIDE", context) or None,
            mask_clouds=cloud_mask(self, parameters, context),
            crs=crs.toWkt() if crs is not None and crs.isValid() else None)
        threshold = result["threshold"]
        self.style_output(context, prob_path, styles.unit_ramp("Magma"))
        if mask_path:
            self.style_output(context, mask_path, styles.mine_mask(threshold))
        outputs = {"OUTPUT": prob_path, "OUTPUT_MASK": mask_path, "N_MINES": result["n_mines"],
                   "TOTAL_AREA_HA": result["total_area_ha"]}
        fields = QgsFields()
        for name, kind in FIELDS:
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT_POLYGONS", context, fields, QgsWkbTypes.MultiPolygon,
                                          crs)
        if sink is None:
            if not self.sink_skipped(parameters, "OUTPUT_POLYGONS", context):
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_POLYGONS"))
            return outputs
        for footprint in result["polygons"]:
            feedback.check()
            feature = QgsFeature(fields)
            geometry = QgsGeometry()
            geometry.fromWkb(footprint["geometry"].wkb)
            geometry.convertToMultiType()
            feature.setGeometry(geometry)
            feature.setAttributes([footprint["id"], footprint["area_ha"], footprint["mean_prob"],
                                   footprint["perimeter_m"], footprint["compactness"]])
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
        del sink
        outputs["OUTPUT_POLYGONS"] = dest
        self.style_output(context, dest, {"kind": "graduated", "field": "mean_prob", "ramp": "Magma", "classes": 5,
                                          "mode": "equal", "min": threshold, "max": 1.0, "geometry": "Polygon"})
        return outputs
