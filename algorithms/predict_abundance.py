"""oremap:predict_abundance - mineral abundance maps (%), confidence intervals and a dominant-mineral map."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
)

from ..core.abundance import abundance_report
from ..core.abundance import abundance_map
from ..core.hyperspectral.mapping import image_band_info, model_input
from .base import OreMapAlgorithm
from . import styles


class PredictAbundance(OreMapAlgorithm):
    NAME = "predict_abundance"
    DISPLAY_NAME = "Predict mineral abundances"
    GROUP = "abundance"
    REQUIRES = ("onnx", "onnxruntime")
    TAGS = "abundance,regression,ensemble,closure,confidence interval,conformal,dominant mineral,onnx"
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "level": "LEVEL", "table": "OUTPUT_TABLE"}
    HELP = (
        "Applies a model from 'Train mineral abundance model' to every pixel of a hyperspectral raster: one "
        "abundance band per mineral in %, non-negative and summing to exactly 100 %, the lower and upper bounds of "
        "a confidence interval per mineral, and the dominant mineral.\n\n"
        "The intervals are split-conformal: calibrated on ROIs held out during training, so that a 90 % interval "
        "contains the true abundance about 90 % of the time on new samples like the training ones. They are "
        "wider where the ensemble's models disagree, and stay within 0-100 %. Each training ROI counts once: a "
        "level needs enough of them (9 for 90 %, 19 for 95 %, 99 for 99 %); with fewer the intervals are 0-100 % "
        "and the log names the levels the model can give.\n\n"
        "The raster's bands are matched to the model's wavelengths (resampled when they differ); to a model trained "
        "on a raster without wavelengths, by the band names it records (band descriptions), in any order, or in "
        "order when the raster's bands have no names. A summary table "
        "gives, per mineral, the mean and standard deviation of the abundance and its area share, overall and per "
        "zone when a polygon layer is given.")
    PARAM_HELP = {
        "INPUT": "Hyperspectral reflectance raster (same sensor or wavelengths the model was trained for).",
        "MODEL_FILE": "An OreMap abundance model (.onnx).",
        "LEVEL": "Confidence level of the intervals in % (e.g. 90).",
        "ZONES": "Optional polygons (drill-core boxes, benches, samples) for per-zone statistics.",
        "ZONE_FIELD": "Field naming each zone (feature ids when empty).",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 raster, one band per mineral (band names = minerals), in %; bands sum to 100.",
        "OUTPUT_INTERVALS": "Float32 raster: the lower bounds of every mineral, then the upper bounds (band names "
                            "say which), in %.",
        "OUTPUT_DOMINANT": "Class raster of the mineral with the largest abundance (class colours of the model).",
        "OUTPUT_TABLE": "CSV summary: per mineral (and per zone) mean and sd of the abundance (%), area share (%), "
                        "share of pixels where it dominates and their area (in the raster CRS's units squared), and "
                        "mean interval width (per zone: from the confidence-interval output, empty when it is "
                        "skipped).",
        "VALID_PIXELS": "Number of valid (not nodata) pixels predicted.",
    }
    REFERENCES = [
        "Lei, J. et al. (2018). Distribution-free predictive inference for regression. JASA 113, 1094-1111.",
        "Aitchison, J. (1986). The Statistical Analysis of Compositional Data. Chapman & Hall.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input()
        self._add(QgsProcessingParameterFile("MODEL_FILE", self.tr("Abundance model"),
                                             fileFilter="ONNX models (*.onnx)"))
        self.add_number("LEVEL", "Interval level (%)", 90.0, 50.0, 99.0)
        self._add(QgsProcessingParameterFeatureSource("ZONES", self.tr("Zones for statistics"),
                                                      [QgsProcessing.TypeVectorPolygon], optional=True))
        self._add(QgsProcessingParameterField("ZONE_FIELD", self.tr("Zone name field"), parentLayerParameterName="ZONES",
                                              optional=True))
        self.add_band_parameters()
        self.add_raster_output("OUTPUT", "Abundances (%)")
        self.add_raster_output("OUTPUT_INTERVALS", "Confidence intervals (%)", optional=True, create=True)
        self.add_raster_output("OUTPUT_DOMINANT", "Dominant mineral", optional=True, create=True)
        self.add_file_output("OUTPUT_TABLE", "Summary table", "CSV files (*.csv)", optional=True, create=True)
        self.add_value_output("VALID_PIXELS", "Pixels predicted (valid pixels)")

    def process(self, parameters, context, feedback):
        path, layer = self.raster_path(parameters, "INPUT", context)
        model_path = self.parameterAsFile(parameters, "MODEL_FILE", context)
        model = abundance_map.AbundanceModel(model_path)
        wavelengths, nodata, scale = self.band_parameters(parameters, context)
        info = image_band_info(path, wavelengths, required=False, bad_bands=self.bad_bands(parameters, context),
                               nodata=nodata, scale=scale, feedback=feedback) if (model.info.wavelengths or wavelengths) else None
        bands, matrix = model_input(path, model.info, info, feedback)
        level = self.parameterAsDouble(parameters, "LEVEL", context) / 100.0
        out = self.output_path(parameters, "OUTPUT", context, feedback)
        intervals = self.output_path(parameters, "OUTPUT_INTERVALS", context, feedback)
        dominant = self.output_path(parameters, "OUTPUT_DOMINANT", context, feedback)
        table_path = self.output_path(parameters, "OUTPUT_TABLE", context, feedback)
        feedback.info(f"Model: {', '.join(model.names)}; onnxruntime on {', '.join(model.onnx.providers_used)}.")
        stats = abundance_map.predict_abundance_map(
            path, model_path, out, intervals, dominant, level=level, image_bands=bands, resampler=matrix,
            scale=scale, nodata=nodata, memory_mb=self.memory_mb(), feedback=feedback.scaled(0, 90))
        rows = [{"zone": "all", "pixels": stats["valid_pixels"], **row} for row in stats["table"]]
        for row in stats["table"]:
            feedback.info(f"  {row['mineral']}: mean {row['mean_percent']:.1f} % (sd {row['sd_percent']:.1f}), "
                          f"dominant in {row['dominant_share_percent']:.1f} % of the pixels")
        if self.parameterAsSource(parameters, "ZONES", context) is not None:
            field = self.parameterAsString(parameters, "ZONE_FIELD", context)
            if field:
                geometries, names = self.labelled_geometries(parameters, "ZONES", "ZONE_FIELD", context, layer.crs(),
                                                             feedback=feedback)
            else:
                geometries, _, names = self.features_with_values(parameters, "ZONES", [], context, layer.crs(),
                                                                 feedback=feedback)
            zone_rows = abundance_map.zone_statistics(out, geometries, names, model.names, interval_path=intervals,
                                                      feedback=feedback.scaled(90, 100))
            covered = {r["zone"] for r in zone_rows if r["pixels"] > 0}
            empty = sorted({str(n) for n in names} - covered)
            if empty and not covered:
                feedback.warning(f"None of the {len(set(map(str, names)))} zones covers a valid pixel of the raster "
                                 "(check the zones' CRS and extent): the summary table holds only the 'all' rows.")
            elif empty:
                feedback.warning(f"{len(empty)} zones cover no valid pixel of the raster (rows with 0 pixels): "
                                 + ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))
            if not intervals and covered:
                feedback.info("Per-zone mean interval widths are read from the confidence-interval output, which was "
                              "skipped: that column is empty in the zone rows.")
            rows += zone_rows
        if table_path:
            abundance_report.write_table_csv(table_path, rows, parameter="table")
        ramp = styles.abundance_ramp([row["mean_percent"] for row in stats["table"]], 100.0)
        self.style_output(context, out, ramp)
        if intervals:
            self.style_output(context, intervals, ramp)
        if dominant:
            self.style_output(context, dominant, styles.model_classes(model.info.classes))
        feedback.progress(100)
        return {"OUTPUT": out, "OUTPUT_INTERVALS": intervals, "OUTPUT_DOMINANT": dominant,
                "OUTPUT_TABLE": table_path, "VALID_PIXELS": stats["valid_pixels"]}
