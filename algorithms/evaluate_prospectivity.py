"""oremap:evaluate_prospectivity - ROC-AUC, success-rate and prediction-area evaluation of a score against deposits.

The module also holds the helpers the geochemistry algorithms share: points of a
layer (with attribute values) in a CRS fit for distances in metres.
"""

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingParameterBand,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
    QgsUnitTypes,
)

from ..core.engine import map_scale
from ..core.geochemistry import geochem
from ..core.geochemistry import prospectivity_eval as pe
from ..core.geochemistry import evaluation_report
from ..core.geochemistry.distance_advice import TRADE_OFF
from .base import OreMapAlgorithm

DISTANCE_HELP = {
    "DEPOSITS": "Known deposits, mines or occurrences as points, in any CRS (transformed to the CRS of the scores).",
    "POSITIVE_RADIUS": "A place (sample or pixel centre) within this distance of a deposit is a positive. In metres.",
    "NEGATIVE_MIN_DISTANCE": "A place at least this far from every deposit is a negative candidate; places between "
                             "the positive radius and this distance are left out, so that mineralised ground just "
                             "outside the radius is not counted as barren. In metres; default twice the default "
                             "positive radius. Set it equal to the positive radius to leave nothing out. When the two "
                             "distances leave fewer than 2 positives or negatives, the error gives values that work "
                             "for the survey (from its sample spacing and its distances to the deposits). " + TRADE_OFF,
}


# --------------------------------------------------------------------------------------
# Shared helpers: CRS for distances, points and values of layers
# --------------------------------------------------------------------------------------
def metres_factor(crs):
    """Map units of ``crs`` per metre (1 for metre-based CRSs)."""
    try:
        return QgsUnitTypes.fromUnitToUnitFactor(QgsUnitTypes.DistanceMeters, crs.mapUnits())
    except Exception:  # noqa: BLE001 - unknown units: take them as metres
        return 1.0


def distance_crs_for_points(alg, source, context, feedback, name="POINTS"):
    """The CRS distances of a point layer are measured in: its own when projected in metres, else a UTM zone.

    A geographic (degree) CRS, or a projected one in other units (US survey feet of a State Plane zone), is
    replaced by the WGS84 UTM zone of the points' centroid (the rule of IDW gridding,
    :func:`core.geochemistry.geochem.utm_crs_for`), and the log says so: distances, and the messages and
    reports that give them, are then in metres. A layer without a CRS is refused (the CRS rule of
    :meth:`OreMapAlgorithm.raster_path`).
    """
    alg.require_layer_crs(name, source)
    crs = source.sourceCrs()
    in_metres = abs(metres_factor(crs) - 1.0) < 1e-9
    error = 0.0
    if not crs.isGeographic() and in_metres:
        xs, ys, _, _ = alg.source_points(source, context, crs, name=name)
        error = map_scale.scale_error(crs.toWkt(), xs, ys)
        if error <= map_scale.SCALE_TOLERANCE:
            return crs
    lons, lats, _, _ = alg.source_points(source, context, QgsCoordinateReferenceSystem("EPSG:4326"), name=name)
    if not lons:
        return crs
    target = QgsCoordinateReferenceSystem(f"EPSG:{geochem.utm_crs_for(lons, lats)}")
    kind = ("a geographic CRS" if crs.isGeographic()
            else f"a CRS whose scale is off by up to {100.0 * error:.1f} % at its points" if error
            else f"a CRS in {QgsUnitTypes.toString(crs.mapUnits())}, not metres")
    feedback.info(f"The sample layer is in {kind} ({crs.authid()}): distances are measured in "
                  f"{target.authid()} ({target.description()}), the UTM zone of its points' centroid.")
    return target


def refuse_geographic_raster(alg, name, layer):
    """Refuse a raster whose CRS cannot measure distances in metres: geographic, or projected but not true to scale
    where the raster lies (Web Mercator away from the equator, :mod:`core.engine.map_scale`)."""
    from affine import Affine

    crs = layer.crs()
    if crs.isValid() and crs.isGeographic():
        raise alg.fail(name, f"The raster is in a geographic CRS ({crs.authid()}); distances in metres need a "
                             "projected CRS.",
                       "Warp it to a projected CRS first (Raster > Projections > Warp), e.g. the local UTM zone.")
    if crs.isValid() and layer.width() and layer.height():
        extent = layer.extent()
        transform = Affine(extent.width() / layer.width(), 0.0, extent.xMinimum(), 0.0,
                           -extent.height() / layer.height(), extent.yMaximum())
        error = map_scale.raster_scale_error(crs.toWkt(), transform, layer.width(), layer.height())
        if error > map_scale.SCALE_TOLERANCE:
            raise alg.fail(name, f"The raster's CRS ({crs.authid() or crs.description()}) is not true to scale: "
                                 f"{map_scale.not_true_to_scale(error)}, so distances in metres would be wrong.",
                           "Warp it to a CRS true to scale first (Raster > Projections > Warp), e.g. the local UTM "
                           "zone.")


def add_distance_parameters(alg, default_negative=4000.0):
    alg._add(QgsProcessingParameterFeatureSource("DEPOSITS", alg.tr("Known deposits"),
                                                 [QgsProcessing.TypeVectorPoint]))
    alg.add_number("POSITIVE_RADIUS", "Positive radius around deposits (m)", 2000.0, 0.0)
    alg.add_number("NEGATIVE_MIN_DISTANCE", "Minimum distance of negatives from every deposit (m)", default_negative,
                   0.0)


# --------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------
class EvaluateProspectivity(OreMapAlgorithm):
    NAME = "evaluate_prospectivity"
    DISPLAY_NAME = "Evaluate prospectivity or anomaly scores against deposits"
    GROUP = "evaluation"
    TAGS = "roc,auc,success rate,prediction-area,p-a plot,prospectivity,anomaly,deposits,validation,zauc"
    HELP = (
        "Measures how well a score (a prospectivity map, or anomaly scores of geochemical samples) points at known "
        "deposits. Places within the positive radius of a deposit are positives; places at least the negative "
        "minimum distance from every deposit are negative candidates; places in between are left out. High scores "
        "must mean prospective.\n\n"
        "ROC-AUC and average precision are averaged over repeated random draws of negatives (as many as positives "
        "by default), so the many barren places do not swamp the few near deposits. The report adds the "
        "success-rate curve (share of deposits captured against share of the area ranked by decreasing score) and "
        "the prediction-area plot, whose intersection gives the share of deposits found in the complementary share "
        "of the area.\n\n"
        "Give either a score raster or scored points. A score raster must be in a projected CRS (in metres or feet: "
        "distances are metres either way). Points in a "
        "geographic CRS (longitude/latitude), or in a projected one in feet, are measured in the UTM zone of their "
        "centroid, as the log says. For "
        "points, the area is the set of samples and a deposit's score is that of the nearest sample within the "
        "positive radius.")
    PARAM_HELP = {
        "SCORE_RASTER": "Score raster (higher = more prospective), in a projected CRS. Leave empty for points.",
        "SCORE_BAND": "Band of the score raster.",
        "POINTS": "Instead of a raster: scored sample points (e.g. anomaly scores of geochemical samples).",
        "SCORE_FIELD": "Numeric field of the points holding the score (higher = more anomalous). Empty values are "
                       "left out. Not chosen: anomaly_score, the main score of OreMap's anomaly algorithms, when "
                       "the layer has it.",
        **DISTANCE_HELP,
        "N_DRAWS": "Number of random draws of negatives; AUC and AP are averaged over them.",
        "N_NEGATIVES": "Negatives per draw; 0 = as many as there are positives (capped at the candidates "
                       "available).",
        "SEED": "Seed of the random draws: the same seed gives the same numbers.",
    }
    OUTPUT_HELP = {
        "OUTPUT_HTML": "HTML report: summary table, ROC curves of the draws with their mean, success-rate curve, "
                       "prediction-area plot, the deposits' scores. A temporary file when not given.",
        "OUTPUT_CSV": "CSV with the same numbers: measures, per-draw AUC and AP, the curves, deposit scores.",
        "AUC_MEAN": "ROC-AUC, mean over the draws (0.5 = chance, 1 = perfect).",
        "AUC_SD": "Standard deviation of the ROC-AUC over the draws.",
        "AP_MEAN": "Average precision, mean over the draws.",
        "PA_THRESHOLD": "Score threshold at the intersection of the prediction-area curves (NaN if they do not "
                        "cross).",
    }
    REFERENCES = [
        "Hanley, J. A. and McNeil, B. J. (1982). The meaning and use of the area under a receiver operating "
        "characteristic (ROC) curve. Radiology 143, 29-36.",
        "Yousefi, M. and Carranza, E. J. M. (2015). Prediction-area (P-A) plot and C-A fractal analysis to "
        "classify and evaluate evidential maps for mineral prospectivity modeling. Computers & Geosciences 79, "
        "69-81.",
        "Agterberg, F. P. and Bonham-Carter, G. F. (2005). Measuring the performance of mineral-potential maps. "
        "Natural Resources Research 14, 1-17.",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "raster": "SCORE_RASTER", "score": "SCORE_RASTER", "deposits": "DEPOSITS",
        "positive_radius": "POSITIVE_RADIUS", "negative_min_distance": "NEGATIVE_MIN_DISTANCE",
        "n_draws": "N_DRAWS", "n_negatives": "N_NEGATIVES",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterRasterLayer("SCORE_RASTER", self.tr("Score raster"), optional=True))
        self._add(QgsProcessingParameterBand("SCORE_BAND", self.tr("Score band"), defaultValue=1,
                                             parentLayerParameterName="SCORE_RASTER", optional=True))
        self._add(QgsProcessingParameterFeatureSource("POINTS", self.tr("Scored points (instead of a raster)"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self._add(QgsProcessingParameterField("SCORE_FIELD", self.tr("Score field"), parentLayerParameterName="POINTS",
                                              type=QgsProcessingParameterField.Numeric, optional=True))
        add_distance_parameters(self)
        self.add_number("N_DRAWS", "Number of random draws of negatives", 20, 1, integer=True)
        self.add_number("N_NEGATIVES", "Negatives per draw (0 = as many as positives)", 0, 0, integer=True,
                        advanced=True)
        self.add_number("SEED", "Random seed", 0, 0, integer=True, advanced=True)
        self.add_report_output("OUTPUT_HTML", "Evaluation report")
        self.add_file_output("OUTPUT_CSV", "Evaluation table", "CSV files (*.csv)", optional=True)
        self.add_value_output("AUC_MEAN", "ROC-AUC (mean over draws)")
        self.add_value_output("AUC_SD", "ROC-AUC standard deviation")
        self.add_value_output("AP_MEAN", "Average precision (mean over draws)")
        self.add_value_output("PA_THRESHOLD", "P-A intersection threshold")

    def process(self, parameters, context, feedback):
        has_raster = parameters.get("SCORE_RASTER") not in (None, "")
        has_points = parameters.get("POINTS") not in (None, "")
        if has_raster == has_points:
            raise self.fail("SCORE_RASTER", "Give either a score raster or scored points." if not has_raster else
                            "Both a score raster and scored points were given.",
                            "Choose one of them and leave the other empty.")
        radius = self.parameterAsDouble(parameters, "POSITIVE_RADIUS", context)
        min_distance = self.parameterAsDouble(parameters, "NEGATIVE_MIN_DISTANCE", context)
        n_draws = self.parameterAsInt(parameters, "N_DRAWS", context)
        n_negatives = self.parameterAsInt(parameters, "N_NEGATIVES", context) or None
        seed = self.parameterAsInt(parameters, "SEED", context)
        html_path = self.output_path(parameters, "OUTPUT_HTML", context, feedback)
        csv_path = self.output_path(parameters, "OUTPUT_CSV", context, feedback)
        if has_raster:
            path, layer = self.raster_path(parameters, "SCORE_RASTER", context, require_crs=True)
            refuse_geographic_raster(self, "SCORE_RASTER", layer)
            band = self.parameterAsInt(parameters, "SCORE_BAND", context) or 1
            if not 1 <= band <= layer.bandCount():
                raise self.fail("SCORE_BAND", f"Band {band} does not exist; the raster has {layer.bandCount()}.",
                                "Choose an existing band.")
            crs = layer.crs()
            deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback)
            result = pe.evaluate_raster(path, deposits, radius, min_distance, n_draws=n_draws,
                                        seed=seed, feedback=feedback, memory_mb=self.memory_mb(), band=band,
                                        n_negatives=n_negatives)
            title = f"Evaluation of {os.path.basename(path)}"
            subject = f"Score raster: {path}, band {band}"
        else:
            source = self.parameterAsSource(parameters, "POINTS", context)
            field = self.parameterAsString(parameters, "SCORE_FIELD", context)
            numeric = [f.name() for f in source.fields() if f.isNumeric() and f.name().lower() != "fid"]
            main = next((f for f in ("anomaly_score", "anomaly_sc") if f in numeric), None)   # 'anomaly_sc': the
            if not field and main:   # main score of OreMap's anomaly algorithms, cut to 10 letters by a shapefile
                field = main
                feedback.info(f"Score field: {main} (none was chosen; the main score of oremap:geochem_anomaly "
                              "and oremap:vae_anomaly).")
            if not field:
                raise self.fail("SCORE_FIELD", "No score field was chosen.",
                                "Choose the numeric field holding the scores"
                                + (f": {', '.join(numeric[:12])}{' ...' if len(numeric) > 12 else ''}."
                                   if numeric else " (the layer has no numeric field)."))
            if source.fields().lookupField(field) < 0:
                raise self.fail("SCORE_FIELD", f"The score field '{field}' is not in the point layer.",
                                "Choose the numeric field holding the scores.")
            if not source.fields().field(field).isNumeric():
                raise self.fail("SCORE_FIELD", f"The score field '{field}' is not numeric "
                                               f"({source.fields().field(field).typeName()}).",
                                "Choose the numeric field holding the scores (e.g. anomaly_score).")
            self._parameter_overrides["score"] = "SCORE_FIELD"
            crs = distance_crs_for_points(self, source, context, feedback)
            xs, ys, values = self.layer_points(parameters, "POINTS", context, crs, [field], feedback)
            deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback)
            result = pe.evaluate_points(xs, ys, values[field], deposits, radius, min_distance,
                                        n_draws=n_draws, seed=seed, n_negatives=n_negatives, feedback=feedback)
            title = f"Evaluation of '{field}'"
            subject = f"Scored points: {self.source_label(parameters, 'POINTS', context, source)}, field '{field}'"
        units = f"distances in {crs.authid()}" if crs.isValid() else "distances in layer units"
        feedback.info(f"ROC-AUC {result['auc_mean']:.3f} +- {result['auc_sd']:.3f} over {n_draws} draws; "
                      f"AP {result['ap_mean']:.3f}; success-rate AUC {result['success']['auc']:.3f}.")
        evaluation_report.write_evaluation_outputs(result, title, html_path, csv_path,
                                    subtitle=f"{subject}; positive radius {radius:g} m, negatives at least "
                                             f"{min_distance:g} m from deposits ({units}).")
        out = {"OUTPUT_HTML": html_path, "AUC_MEAN": result["auc_mean"], "AUC_SD": result["auc_sd"],
               "AP_MEAN": result["ap_mean"], "PA_THRESHOLD": result["pa_threshold"]}
        if csv_path:
            out["OUTPUT_CSV"] = csv_path
        return out
