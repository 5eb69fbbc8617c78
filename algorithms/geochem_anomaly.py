"""oremap:geochem_anomaly - geochemical anomaly scores side by side (robust Mahalanobis, robust PCA, isolation
forest, enrichment index, spatial context, VAE, commodity target) and their fusion, evaluated against deposits."""

from qgis.core import (
    NULL,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterString,
)

from ..core.geochemistry import anomaly_methods as am
from ..core.geochemistry import geochem
from ..core.geochemistry import geochem_anomaly as ga
from ..core.geochemistry import pathfinders
from ..core.engine import report
from ..core.geochemistry import survey_hygiene as sh
from ..core.geochemistry.distance_advice import TRADE_OFF
from . import qt_compat as field_type
from .base import OreMapAlgorithm, require_fields, split_names
from .evaluate_prospectivity import DISTANCE_HELP, distance_crs_for_points
from .survey_input import (COVERAGE_HELP, FIELDS_HELP, READ_SHARE, SAMPLE_FIELD_HELP, WRITE_SHARE, features_by_id,
                           numeric_fields, read_survey, sample_field, sample_field_parameter, warn_unlocated)

BELOW = [("half", "Half the detection limit"), ("limit", "The detection limit"), ("nan", "Missing")]
TARGET_LABELS = [("none", "None: every element measured widely enough")] + [
    (key, f"{key}: {preset['label']}") for key, preset in pathfinders.PRESETS.items()]


class GeochemAnomaly(OreMapAlgorithm):
    NAME = "geochem_anomaly"
    LONG_FIELDS = {"OUTPUT": ("anomaly_score", "anomaly_class", "score_fusion")}
    DISPLAY_NAME = "Geochemical anomalies (robust scores, fusion, commodity presets)"
    GROUP = "geochemistry"
    REQUIRES = ("sklearn",)
    RECOMMENDS = {"torch": "the VAE score"}
    TAGS = ("anomaly,mahalanobis,mcd,robust pca,isolation forest,element suite,spatial,fusion,pathfinder,target,"
            "geochemistry,stream sediment,till,soil,vae")
    HELP = (
        "Scores every sample of a geochemical survey with several anomaly methods side by side and fuses them: "
        "robust Mahalanobis distance (Minimum Covariance Determinant), the residual to a robust principal "
        "subspace, an isolation forest, an enrichment index (mean positive robust z-score of the pathfinders), an "
        "element-suite index (mean of the sample's three highest robust z-scores), a "
        "spatial-context score (how a sample departs from its nearest neighbouring samples), optionally the "
        "variational autoencoder of 'Geochemical anomalies with a variational autoencoder', and, with a commodity "
        "target, the robust z-score of the commodity element itself.\n\n"
        "Default main score: the fusion (mean percentile rank). With a commodity target it fuses the commodity "
        "element and the pathfinder index. Without one it fuses robust Mahalanobis distance, the isolation forest "
        "and the element-suite index (mean of each sample's three highest robust z-scores, whichever elements they "
        "are), three ways of being unlike the survey whose weaknesses differ: Mahalanobis distance sees broken "
        "element correlations but is diluted when an anomaly lies in a few of many elements; the isolation forest "
        "catches extremes in a few elements, a single nugget value as readily as a suite, and misses broken "
        "correlations; the suite index needs several elements enriched together, as a mineral system's "
        "pathfinders are. The enrichment index over every element is left out of that fusion: it counts a process "
        "once per element (the rare earths outvote gold's few pathfinders). Without a target the fused map is a "
        "map of unusual compositions, not of one commodity: on three GSWA surveys with gold sites its ROC-AUC is "
        "0.51-0.63 (0.60 on the Katanning stream sediments, against 0.89 with TARGET=Au). Choose the target when you "
        "know the commodity.\n\n"
        "Works on survey compilations as they come: element fields are recognised by their unit (or symbol), "
        "coordinates and ids are never taken as elements, oxide fields are merged into their element, and the "
        "default element set keeps the elements measured in most samples (the log says what was left out and "
        "why). A commodity target (Au, Cu, Ni, W, Li, REE, Zn-Pb, U) narrows the elements to its pathfinders from "
        "the ore-deposit literature; it is never chosen from the deposits. Values are log10-transformed and "
        "robustly scaled (median, interquartile range); missing elements of a sample measured in at least half of "
        "them enter at the median. A record repeated exactly (same place, same values, as compilations that "
        "joined two tables hold) is scored once and its copies get its score.\n\n"
        "Spatial support: each score is averaged, as percentile ranks, over the sample and its nearest samples, "
        "since an anomaly worth following shows in several neighbouring samples while a single high gold value is "
        "often the nugget effect.\n\n"
        "With known deposits, every method is evaluated under the same protocol (ROC-AUC over 20 random draws of "
        "negatives, success-rate curve); the report shows their ROC and success-rate curves on one plot each and "
        "the map of the fused score. " + TRADE_OFF)
    PARAM_HELP = {
        "POINTS": "Geochemical sample points (any CRS; one in degrees or feet is measured in its UTM zone).",
        "FIELDS": FIELDS_HELP + " With a target, the target's pathfinders among them.",
        "SAMPLE_FIELD": SAMPLE_FIELD_HELP,
        "TARGET": "Commodity sought: its pathfinder elements (literature presets, see the report) are scored when no "
                  "fields are chosen, and its commodity element gives the target score. A commodity element "
                  "measured in fewer samples than COVERAGE asks, but in at least half, lowers the bar to its own "
                  "coverage for the run (a warning says so); measured in fewer, there is no target score and the "
                  "pathfinders are ranked as without a target (a warning says so). None: every element of the "
                  "default set.",
        "METHOD": "The main score (the fields anomaly_score and anomaly_class); every method's score is written "
                  "too. Default: the fusion (commodity element + pathfinder index with a target; robust "
                  "Mahalanobis distance + isolation forest + element-suite index without one).",
        "COVERAGE": COVERAGE_HELP,
        "UNITS": "Units of fields named by the bare element symbol, e.g. 'AU=ppb; CU=ppm' (ppm, ppb, pct, ppt, g/t); "
                 "such fields without an entry are taken as ppm, as the log says, where no field states its unit; "
                 "beside fields that state theirs, a bare-named field is used only with an entry here.",
        "SUPPORT": "Spatial support: number of nearest samples each score is averaged over (as percentile ranks), "
                   "0 = each sample alone. Not applied to the spatial-context score.",
        "NEIGHBOURS": "Spatial context: number of nearest samples (at other locations) whose robust local fit "
                      "(median and spread per element) a sample is compared with.",
        "INCLUDE_VAE": "Also train the variational autoencoder (slower; torch). Always trained when it is the "
                       "main score.",
        "EPOCHS": "VAE: training epochs.",
        "BELOW_DETECTION": "Replacement of values below detection (stored as minus the detection limit).",
        "ZEROS": geochem.ZEROS_HELP,
        "MISSING_VALUE": "Code of a missing value (exact match), e.g. -9999.",
        "SEED": "Seed of the robust covariance, the isolation forest and the VAE: the same seed gives the same "
                "scores.",
        "DEPOSITS": "Optional known deposits (points, any CRS) to evaluate every score against: "
                    + DISTANCE_HELP["DEPOSITS"],
        "POSITIVE_RADIUS": DISTANCE_HELP["POSITIVE_RADIUS"],
        "NEGATIVE_MIN_DISTANCE": DISTANCE_HELP["NEGATIVE_MIN_DISTANCE"],
    }
    OUTPUT_HELP = {
        "OUTPUT": "A copy of the points with score_&lt;method&gt; for every method (higher = more anomalous; empty "
                  "where not scored), anomaly_score (the main method) and anomaly_class (0 below the 85th "
                  "percentile of the main score, 1: 85-95th, 2: 95-99th, 3: top 1 %; equal scores share a class, "
                  "so the top class may hold more than 1 % and always holds the highest scores).",
        "OUTPUT_HTML": "HTML report: settings, with deposits the ROC-AUC table of every method and their ROC and "
                       "success-rate curves, the map of the fused score, the elements and the log. A temporary file "
                       "when not given.",
        "OUTPUT_CSV": "With deposits: method, ROC-AUC mean and sd, average precision, success-rate AUC, positives, "
                      "negatives per draw.",
        "AUC_MEAN": "With deposits: ROC-AUC of the main score, mean over 20 draws (NaN without deposits).",
        "AUC_SD": "With deposits: its standard deviation over the draws.",
        "N_SCORED": "Number of samples scored (those with at least half of the elements measured).",
        "ELEMENTS": "The element fields scored, ';' separated.",
    }
    REFERENCES = [
        "Rousseeuw, P. J. and Van Driessen, K. (1999). A fast algorithm for the minimum covariance determinant "
        "estimator. Technometrics 41, 212-223.",
        "Hubert, M., Rousseeuw, P. J. and Vanden Branden, K. (2005). ROBPCA: a new approach to robust principal "
        "component analysis. Technometrics 47, 64-79.",
        "Liu, F. T., Ting, K. M. and Zhou, Z.-H. (2008). Isolation forest. IEEE ICDM, 413-422.",
        "Filzmoser, P., Garrett, R. G. and Reimann, C. (2005). Multivariate outlier detection in exploration "
        "geochemistry. Computers & Geosciences 31, 579-587.",
        "Luo, Z., Xiong, Y. and Zuo, R. (2020). Recognition of geochemical anomalies using a deep variational "
        "autoencoder network. Applied Geochemistry 122, 104710.",
        "Pathfinder presets: " + " ".join(p["reference"] for p in pathfinders.PRESETS.values()),
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "fields": "FIELDS", "names": "FIELDS", "values": "FIELDS", "target": "TARGET", "method": "METHOD",
        "deposits": "DEPOSITS", "positive_radius": "POSITIVE_RADIUS", "negative_min_distance": "NEGATIVE_MIN_DISTANCE",
        "below_detection": "BELOW_DETECTION", "zeros": "ZEROS", "transform": "FIELDS", "units": "FIELDS",
        "report": "OUTPUT_HTML", "table": "OUTPUT_CSV",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterFeatureSource("POINTS", self.tr("Sample points"),
                                                      [QgsProcessing.TypeVectorPoint]))
        self._add(QgsProcessingParameterField("FIELDS", self.tr("Element fields (empty = by unit and coverage)"),
                                              parentLayerParameterName="POINTS",
                                              type=QgsProcessingParameterField.Numeric, allowMultiple=True,
                                              optional=True))
        sample_field_parameter(self)
        self.add_enum("TARGET", "Commodity target (pathfinder preset)", [label for _, label in TARGET_LABELS])
        self.add_enum("METHOD", "Main score", [am.METHOD_LABELS[m] for m in am.METHODS])
        self.add_number("COVERAGE", "Default elements: measured in at least (% of samples)",
                        100 * sh.DEFAULT_COVERAGE, 0.0, 100.0)
        self._add(QgsProcessingParameterString("UNITS", self.tr("Units of fields named by the symbol (AU=ppb; ...)"),
                                               optional=True), advanced=True)
        self.add_number("SUPPORT", "Spatial support (nearest samples averaged, 0 = none)", am.DEFAULT_SUPPORT, 0,
                        integer=True)
        self.add_number("NEIGHBOURS", "Spatial context: nearest samples", am.DEFAULT_K, 2, integer=True,
                        advanced=True)
        self._add(QgsProcessingParameterBoolean("INCLUDE_VAE", self.tr("Also train the VAE (slower)"),
                                                defaultValue=False), advanced=True)
        self.add_number("EPOCHS", "VAE: epochs", 100, 1, integer=True, advanced=True)
        self._add(QgsProcessingParameterEnum("BELOW_DETECTION", self.tr("Values below detection"),
                                             options=[label for _, label in BELOW], defaultValue=0), advanced=True)
        self._add(QgsProcessingParameterEnum("ZEROS", self.tr("Values of exactly 0"),
                                             options=[label for _, label in geochem.ZERO_CHOICES], defaultValue=0),
                  advanced=True)
        self.add_number("MISSING_VALUE", "Missing-value code", -9999.0, None, advanced=True)
        self.add_number("SEED", "Random seed", 0, 0, integer=True, advanced=True)
        self._add(QgsProcessingParameterFeatureSource("DEPOSITS", self.tr("Known deposits (optional, for evaluation)"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self.add_number("POSITIVE_RADIUS", "Positive radius around deposits (m)", 2000.0, 0.0)
        self.add_number("NEGATIVE_MIN_DISTANCE", "Minimum distance of negatives from every deposit (m)", 4000.0,
                        0.0)
        self._add(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Scored points"), QgsProcessing.TypeVectorPoint,
                                                    optional=True, createByDefault=True))
        self.add_report_output("OUTPUT_HTML", "Report")
        self.add_file_output("OUTPUT_CSV", "Table of AUCs per method", "CSV files (*.csv)", optional=True)
        self.add_value_output("AUC_MEAN", "ROC-AUC of the main score (mean over draws)")
        self.add_value_output("AUC_SD", "ROC-AUC standard deviation")
        self.add_value_output("N_SCORED", "Samples scored")
        self.add_value_output("ELEMENTS", "Element fields scored", kind="string")

    def process(self, parameters, context, feedback):
        import numpy as np

        source = self.parameterAsSource(parameters, "POINTS", context)
        if source is None:
            raise self.fail("POINTS", "The point layer could not be loaded.", "Choose a point layer.")
        fields = self.field_names(parameters, "FIELDS", context)
        require_fields(self, source, fields, numeric=True)
        target = TARGET_LABELS[self.parameterAsEnum(parameters, "TARGET", context)][0]
        method = am.METHODS[self.parameterAsEnum(parameters, "METHOD", context)]
        html_path = self.output_path(parameters, "OUTPUT_HTML", context, feedback)
        csv_path = self.output_path(parameters, "OUTPUT_CSV", context, feedback)
        has_deposits = parameters.get("DEPOSITS") not in (None, "")
        crs = distance_crs_for_points(self, source, context, feedback)
        key_field = sample_field(self, parameters, context, source)
        columns = list(fields) or [c for c in numeric_fields(source, feedback) if c != key_field]
        missing = self.parameterAsDouble(parameters, "MISSING_VALUE", context)
        ids, xs, ys, gx, gy, values, over, notes = read_survey(self, source, context, crs, columns, missing, feedback,
                                                               READ_SHARE, key_field=key_field)
        if not len(ids):
            raise self.fail("POINTS", "The layer has no features.", "Choose a layer of sample points.")
        warn_unlocated(xs, ys, feedback, "they are not scored (the scores use each sample's place: repeated "
                                         "records, neighbours, spatial support); their rows keep empty scores")
        deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback) if has_deposits else None
        radius = self.parameterAsDouble(parameters, "POSITIVE_RADIUS", context)
        min_distance = self.parameterAsDouble(parameters, "NEGATIVE_MIN_DISTANCE", context)
        result = ga.run_points(
            xs, ys, columns, values, gx, gy, fields=list(fields) or None, target=target, method=method,
            over=over, sample_ids=key_field is not None, survey_notes=notes,
            coverage=self.parameterAsDouble(parameters, "COVERAGE", context) / 100.0,
            units=self._units(parameters, context),
            below=BELOW[self.parameterAsEnum(parameters, "BELOW_DETECTION", context)][0],
            zeros=geochem.ZERO_CHOICES[self.parameterAsEnum(parameters, "ZEROS", context)][0],
            missing=missing,
            support=self.parameterAsInt(parameters, "SUPPORT", context),
            k=self.parameterAsInt(parameters, "NEIGHBOURS", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            include_vae=self.parameterAsBool(parameters, "INCLUDE_VAE", context),
            vae_options={"epochs": self.parameterAsInt(parameters, "EPOCHS", context),
                         "seed": self.parameterAsInt(parameters, "SEED", context)},
            deposits_xy=deposits, positive_radius=radius, negative_min_distance=min_distance,
            report_path=html_path,
            subtitle=f"Sample points: {self.source_label(parameters, 'POINTS', context, source)}" + (
                f"; positive radius {radius:g} m, negatives at least {min_distance:g} m from deposits"
                if has_deposits else ""),
            feedback=feedback.scaled(READ_SHARE[1], WRITE_SHARE[0]))
        scores = result["scores"]
        main = scores[method]
        evaluation = (result["evaluations"] or {}).get(method)
        nan = float("nan")
        out = {"AUC_MEAN": evaluation["auc_mean"] if evaluation else nan,
               "AUC_SD": evaluation["auc_sd"] if evaluation else nan,
               "N_SCORED": int(np.isfinite(main).sum()), "ELEMENTS": ";".join(result["names"])}
        if html_path:
            out["OUTPUT_HTML"] = html_path
        if csv_path and result["evaluations"]:
            rows = ga.auc_table(result["evaluations"])
            text = "method,label,auc_mean,auc_sd,ap_mean,success_auc,n_positive,n_negatives_per_draw\n" + "".join(
                ",".join([r[0], '"' + r[1] + '"'] + [f"{v:.6g}" for v in r[2:]]) + "\n" for r in rows)
            report.write_text_atomic(csv_path, text, parameter="table", encoding="utf-8-sig")
            out["OUTPUT_CSV"] = csv_path
        elif csv_path:
            feedback.warning("The AUC table (OUTPUT_CSV) compares the methods on known deposits: give DEPOSITS to "
                             "get it. Not written.")
        self._write_points(parameters, context, feedback, source, ids, scores, method, out)
        return out

    def _units(self, parameters, context):
        text = self.parameterAsString(parameters, "UNITS", context) or ""
        units = {}
        for item in split_names(text):
            if "=" not in item:
                raise self.fail("UNITS", f"'{item}' is not of the form FIELD=unit.", "Write e.g. AU=ppb; CU=ppm.")
            key, unit = (part.strip() for part in item.split("=", 1))
            if unit.lower() not in sh.UNIT_FACTORS:
                raise self.fail("UNITS", f"Unknown unit '{unit}' for {key}.",
                                f"Use one of: {', '.join(sorted(sh.UNIT_FACTORS))}.")
            units[key] = unit.lower()
        return units

    def _write_points(self, parameters, context, feedback, source, ids, scores, method, out):
        import numpy as np

        out_fields = QgsFields(source.fields())
        names = [f"score_{m}" for m in scores] + ["anomaly_score", "anomaly_class"]
        for name in names:
            if out_fields.lookupField(name) >= 0:
                raise self.fail("POINTS", f"The layer already has a field '{name}'.",
                                "Rename or remove it first (the output adds it).")
            out_fields.append(QgsField(name, field_type.INT if name == "anomaly_class" else field_type.DOUBLE))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, out_fields, source.wkbType(),
                                          source.sourceCrs())
        if sink is None:
            if not self.sink_skipped(parameters, "OUTPUT", context):
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
            return
        main = scores[method]
        classes = am.anomaly_classes(main)
        columns = [scores[m] for m in scores]
        for i, feature in enumerate(features_by_id(source, ids, feedback, WRITE_SHARE)):
            feedback.check()
            copy = QgsFeature(out_fields)
            copy.setGeometry(feature.geometry())
            extra = [float(c[i]) if np.isfinite(c[i]) else NULL for c in columns]
            extra += [float(main[i]) if np.isfinite(main[i]) else NULL,
                      int(classes[i]) if classes[i] >= 0 else NULL]
            copy.setAttributes(list(feature.attributes()) + extra)
            sink.addFeature(copy, QgsFeatureSink.FastInsert)
        out["OUTPUT"] = dest
        del sink   # closed: a FlatGeobuf is written only now, and its style needs the file
        self.style_output(context, dest, {"kind": "categories", "field": "anomaly_class", "geometry": "Point",
                                          "opacity": 1.0, "legend": ga.class_legend(), "null_name": "Not scored"})
