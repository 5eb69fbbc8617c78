"""oremap:vae_anomaly - multivariate geochemical anomalies from the reconstruction error of a VAE."""

import os

from qgis.core import (
    NULL,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from ..core.geochemistry import geochem
from ..core.geochemistry import vae_anomaly as vae
from . import qt_compat as field_type
from .base import OreMapAlgorithm, require_fields
from . import styles
from ..core.geochemistry import survey_hygiene as sh
from .survey_input import (COVERAGE_HELP, FIELDS_HELP, READ_SHARE, SAMPLE_FIELD_HELP, WRITE_SHARE, features_by_id,
                           read_survey, sample_field, sample_field_parameter, survey_table)
from .evaluate_prospectivity import (
    DISTANCE_HELP,
    distance_crs_for_points,
    refuse_geographic_raster,
)

BELOW = [("half", "Half the detection limit"), ("limit", "The detection limit"), ("nan", "Missing"),
         ("none", "Values as they are (no below-detection or zero handling, e.g. log10 grids)")]
TRANSFORMS = [("log10", "log10"), ("clr", "Centred log-ratio over the chosen elements"), ("none", "None")]
SCALINGS = [("robust", "Robust (median and interquartile range)"), ("zscore", "Mean and standard deviation"),
            ("none", "None")]
DIRECTIONS = [("both", "Both directions (squared error, as Luo et al. 2020)"),
              ("high", "Enrichment only (values above their reconstruction)")]
ACTIVATIONS = [(a, a.upper() if a != "tanh" else "tanh") for a in vae.ACTIVATIONS]


class VaeAnomaly(OreMapAlgorithm):
    NAME = "vae_anomaly"
    LONG_FIELDS = {"OUTPUT": ("anomaly_score", "anomaly_class")}
    DISPLAY_NAME = "Geochemical anomalies with a variational autoencoder"
    GROUP = "geochemistry"
    REQUIRES = ("onnx", "onnxruntime")
    RECOMMENDS = {"torch": "training a new model (scoring with a model file needs only onnxruntime)"}
    TAGS = ("vae,variational autoencoder,autoencoder,anomaly,multivariate,reconstruction error,geochemistry,"
            "stream sediment,deep learning,onnx")
    HELP = (
        "Finds multivariate geochemical anomalies: a variational autoencoder learns the joint structure of the "
        "elements in the background (which elements go together), and samples it reconstructs worst are "
        "anomalies, even where each element on its own lies within its usual range (Luo, Xiong and Zuo 2020; "
        "encoder 24-12, latent 3, mirrored decoder by default).\n\n"
        "Give sample points with element fields, or a multi-band element raster (one band per element, band "
        "descriptions as names). Values are prepared as in the other geochemistry tools: missing code, values "
        "below detection, zeros, log10 or centred log-ratio, robust scaling with the training statistics. The "
        "score is the mean squared reconstruction error of the scaled elements, averaged over fixed random latent "
        "draws (the same seed gives the same scores); each element's share of it says what makes a sample "
        "anomalous. Classes are set by percentiles of the training scores (85, 95, 99 by default).\n\n"
        "The model is saved as an OreMap ONNX file with its preprocessing and thresholds, so it can score another "
        "survey or a raster ('Existing model'). With known deposits, the report adds ROC-AUC over 20 random draws "
        "of negatives, the success-rate curve and the prediction-area plot (as 'Evaluate prospectivity'). A raster "
        "is trained on a random sample of its pixels and scored block by block (flat memory).")
    PARAM_HELP = {
        "POINTS": "Geochemical sample points with one numeric field per element. Leave empty for a raster.",
        "FIELDS": FIELDS_HELP + " With an existing model, its elements are used.",
        "SAMPLE_FIELD": SAMPLE_FIELD_HELP,
        "COVERAGE": COVERAGE_HELP,
        "INPUT": "Instead of points: a multi-band element raster, band descriptions as element names.",
        "BANDS": "Raster bands to train on (default all). With an existing model, bands are found by name.",
        "MODEL_FILE": "Score with this model (.onnx from this algorithm) instead of training a new one: its "
                      "elements, preprocessing and class thresholds are used and the network options are ignored.",
        "BELOW_DETECTION": "Replacement of values below detection (stored as minus the detection limit). 'Values as "
                           "they are' for rasters of already transformed values (e.g. log10 grids, negative below "
                           "1 ppm): then choose no transform. A raster made by 'IDW interpolation' says in its band "
                           "metadata what it holds (OREMAP_TRANSFORM, OREMAP_DETECTION): below-detection handling "
                           "and log10 are then not applied a second time, whatever is chosen here, and the log says "
                           "so.",
        "ZEROS": geochem.ZEROS_HELP,
        "MISSING_VALUE": "Code of a missing value (exact match), e.g. -9999.",
        "TRANSFORM": "log10 of the concentrations, or their centred log-ratio over the chosen elements (samples "
                     "missing an element have none).",
        "SCALING": "Per-element centring and scaling, fitted on the training samples and stored in the model.",
        "MAX_MISSING": "Percent of a sample's elements that may be missing; a missing element enters the network "
                       "at the training median and is left out of the score. Samples missing more are not scored. "
                       "On a raster the same holds for each pixel (IDW grids leave each element nodata beyond its "
                       "own distance).",
        "HIDDEN": "Encoder layer sizes, comma separated (the decoder mirrors them): 24,12 as Luo et al. (2020).",
        "LATENT": "Dimension of the latent code (3 in Luo et al. 2020).",
        "KL_WEIGHT": "Weight of the KL divergence in the loss (beta): higher gives a smoother latent space and "
                     "larger errors; 0 gives a plain (noisy) autoencoder.",
        "EPOCHS": "Passes over the training samples; the epoch with the lowest validation loss is kept.",
        "BATCH_SIZE": "Samples per training step.",
        "LEARNING_RATE": "Step size of the Adam optimiser (0.001 is usual).",
        "DRAWS": "Latent draws averaged in the score (fixed, from the seed); 0 = decode the latent mean only.",
        "SEED": "Seed of the initial weights, batches, validation split and draws: the same seed gives the same "
                "scores.",
        "VAL_FRACTION": "Share of the samples held out for the validation loss curve (and the choice of epoch).",
        "ACTIVATION": "Activation function of the hidden layers.",
        "DIRECTION": "Residuals counted in the score: both directions (a depleted sample is anomalous too), or "
                     "enrichment only (a value above what the background structure predicts), often better for "
                     "ore-related anomalies.",
        "PERCENTILES": "Class thresholds, as percentiles of the training scores, comma separated (85,95,99: "
                       "background, then three anomaly classes).",
        "RASTER_SAMPLE": "Raster: the network is trained on a uniform random sample of at most this many valid "
                         "pixels.",
        "NODATA": "Raster: a value to treat as nodata in addition to the raster's own.",
        "DEPOSITS": "Optional known deposits (points, any CRS) to evaluate the scores against: "
                    + DISTANCE_HELP["DEPOSITS"],
        "POSITIVE_RADIUS": DISTANCE_HELP["POSITIVE_RADIUS"],
        "NEGATIVE_MIN_DISTANCE": DISTANCE_HELP["NEGATIVE_MIN_DISTANCE"],
    }
    OUTPUT_HELP = {
        "OUTPUT": "Points: a copy of the sample points with anomaly_score (empty where not scored) and "
                  "anomaly_class (0 = background, 1.. = above each percentile threshold).",
        "OUTPUT_SCORE": "Raster: float32 anomaly score (nodata -9999).",
        "OUTPUT_CLASSES": "Raster: anomaly classes (0 = background .. 3, nodata 255), styled.",
        "OUTPUT_MODEL": "The trained model (OreMap ONNX: element names, preprocessing, scaling statistics, "
                        "percentile thresholds, latent draws). Not written when scoring with an existing model.",
        "OUTPUT_HTML": "HTML report: settings to reproduce the run, loss curves (reconstruction and KL, training and "
                       "validation), score histogram with the class thresholds, a map, the element contributions of "
                       "the top anomalies and, with deposits, ROC, success-rate and prediction-area curves. A "
                       "temporary file when not given.",
        "AUC_MEAN": "With deposits: ROC-AUC of the score, mean over 20 draws of negatives (NaN without deposits).",
        "AUC_SD": "With deposits: standard deviation of the ROC-AUC over the draws.",
        "N_SCORED": "Number of samples (or pixels) scored.",
    }
    REFERENCES = [
        "Luo, Z., Xiong, Y. and Zuo, R. (2020). Recognition of geochemical anomalies using a deep variational "
        "autoencoder network. Applied Geochemistry 122, 104710.",
        "Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. ICLR.",
        "Xiong, Y. and Zuo, R. (2016). Recognition of geochemical anomalies using a deep autoencoder network. "
        "Computers & Geosciences 86, 75-82.",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "raster": "INPUT", "values": "FIELDS", "fields": "FIELDS", "names": "FIELDS",
        "below_detection": "BELOW_DETECTION", "zeros": "ZEROS", "transform": "TRANSFORM", "scale": "SCALING",
        "max_missing": "MAX_MISSING", "hidden": "HIDDEN", "latent": "LATENT", "kl_weight": "KL_WEIGHT",
        "epochs": "EPOCHS", "learning_rate": "LEARNING_RATE", "val_fraction": "VAL_FRACTION",
        "activation": "ACTIVATION", "direction": "DIRECTION", "percentiles": "PERCENTILES",
        "deposits": "DEPOSITS", "positive_radius": "POSITIVE_RADIUS",
        "negative_min_distance": "NEGATIVE_MIN_DISTANCE", "output": "OUTPUT_MODEL", "score": "OUTPUT_SCORE",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterFeatureSource("POINTS", self.tr("Sample points"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self._add(QgsProcessingParameterField("FIELDS", self.tr("Element fields (empty = by unit and coverage)"),
                                              parentLayerParameterName="POINTS",
                                              type=QgsProcessingParameterField.Numeric, allowMultiple=True,
                                              optional=True))
        sample_field_parameter(self)
        self._add(QgsProcessingParameterRasterLayer("INPUT", self.tr("Element raster (instead of points)"),
                                                    optional=True))
        self._add(QgsProcessingParameterBand("BANDS", self.tr("Raster bands (empty = all)"),
                                             parentLayerParameterName="INPUT", optional=True, allowMultiple=True))
        self._add(QgsProcessingParameterFile("MODEL_FILE", self.tr("Existing model (score instead of training)"),
                                             extension="onnx", optional=True))
        self.add_number("COVERAGE", "Default elements: measured in at least (% of samples)",
                        100 * sh.DEFAULT_COVERAGE, 0.0, 100.0, advanced=True)
        self.add_enum("BELOW_DETECTION", "Values below detection", [label for _, label in BELOW])
        self._add(QgsProcessingParameterEnum("ZEROS", self.tr("Values of exactly 0"),
                                             options=[label for _, label in geochem.ZERO_CHOICES], defaultValue=0))
        self.add_enum("TRANSFORM", "Transform", [label for _, label in TRANSFORMS])
        self._add(QgsProcessingParameterEnum("SCALING", self.tr("Scaling"), options=[l for _, l in SCALINGS],
                                             defaultValue=0), advanced=True)
        self.add_number("MAX_MISSING", "Missing elements allowed per sample (%)", 0.0, 0.0, 90.0)
        self.add_number("MISSING_VALUE", "Missing-value code", -9999.0, None, advanced=True)
        self._add(QgsProcessingParameterString("HIDDEN", self.tr("Hidden layers of the encoder"),
                                               defaultValue=",".join(str(h) for h in vae.DEFAULT_HIDDEN)))
        self.add_number("LATENT", "Latent dimension", vae.DEFAULT_LATENT, 1, integer=True)
        self.add_number("KL_WEIGHT", "KL weight", 1.0, 0.0)
        self.add_number("EPOCHS", "Epochs", 100, 1, integer=True)
        self.add_number("BATCH_SIZE", "Batch size", 64, 1, integer=True, advanced=True)
        self.add_number("LEARNING_RATE", "Learning rate", 0.001, 0.0, advanced=True)
        self.add_number("DRAWS", "Latent draws in the score (0 = latent mean)", vae.DEFAULT_DRAWS, 0, integer=True,
                        advanced=True)
        self.add_number("SEED", "Random seed", 0, 0, integer=True)
        self.add_number("VAL_FRACTION", "Validation share", 0.2, 0.0, 0.9, advanced=True)
        self._add(QgsProcessingParameterEnum("ACTIVATION", self.tr("Activation"), options=[l for _, l in ACTIVATIONS],
                                             defaultValue=0), advanced=True)
        self.add_enum("DIRECTION", "Residuals counted in the score", [label for _, label in DIRECTIONS])
        self._add(QgsProcessingParameterString("PERCENTILES", self.tr("Class thresholds (percentiles)"),
                                               defaultValue=",".join(f"{p:g}" for p in vae.DEFAULT_PERCENTILES)))
        self.add_number("RASTER_SAMPLE", "Raster: training pixels (at most)", vae.MAX_RASTER_TRAINING, 100,
                        integer=True, advanced=True)
        self.add_nodata_parameter("Raster: additional nodata value")
        self._add(QgsProcessingParameterFeatureSource("DEPOSITS", self.tr("Known deposits (optional, for evaluation)"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self.add_number("POSITIVE_RADIUS", "Positive radius around deposits (m)", 2000.0, 0.0)
        self.add_number("NEGATIVE_MIN_DISTANCE", "Minimum distance of negatives from every deposit (m)", 4000.0,
                        0.0)
        self._add(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Scored points"), QgsProcessing.TypeVectorPoint,
                                                    optional=True, createByDefault=True))
        self.add_raster_output("OUTPUT_SCORE", "Anomaly score raster", optional=True, create=True)
        self.add_raster_output("OUTPUT_CLASSES", "Anomaly class raster", optional=True, create=True)
        self.add_file_output("OUTPUT_MODEL", "Model", "ONNX models (*.onnx)", optional=True, create=True)
        self.add_report_output("OUTPUT_HTML", "Report")
        self.add_value_output("AUC_MEAN", "ROC-AUC (mean over draws)")
        self.add_value_output("AUC_SD", "ROC-AUC standard deviation")
        self.add_value_output("N_SCORED", "Samples or pixels scored")

    # -- parameters --------------------------------------------------------------------------
    def _options(self, parameters, context):
        """Keyword arguments of core.geochemistry.vae_anomaly.train_vae."""
        return dict(
            below=BELOW[self.parameterAsEnum(parameters, "BELOW_DETECTION", context)][0],
            zeros=geochem.ZERO_CHOICES[self.parameterAsEnum(parameters, "ZEROS", context)][0],
            missing=self.parameterAsDouble(parameters, "MISSING_VALUE", context),
            transform=TRANSFORMS[self.parameterAsEnum(parameters, "TRANSFORM", context)][0],
            scale=SCALINGS[self.parameterAsEnum(parameters, "SCALING", context)][0],
            max_missing=self.parameterAsDouble(parameters, "MAX_MISSING", context) / 100.0,
            hidden=vae.parse_int_list(self.parameterAsString(parameters, "HIDDEN", context), "hidden"),
            latent=self.parameterAsInt(parameters, "LATENT", context),
            kl_weight=self.parameterAsDouble(parameters, "KL_WEIGHT", context),
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            lr=self.parameterAsDouble(parameters, "LEARNING_RATE", context),
            draws=self.parameterAsInt(parameters, "DRAWS", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            val_fraction=self.parameterAsDouble(parameters, "VAL_FRACTION", context),
            activation=ACTIVATIONS[self.parameterAsEnum(parameters, "ACTIVATION", context)][0],
            direction=DIRECTIONS[self.parameterAsEnum(parameters, "DIRECTION", context)][0],
            percentiles=vae.parse_percentiles(self.parameterAsString(parameters, "PERCENTILES", context)),
        )

    def _distances(self, parameters, context):
        return (self.parameterAsDouble(parameters, "POSITIVE_RADIUS", context),
                self.parameterAsDouble(parameters, "NEGATIVE_MIN_DISTANCE", context))

    # -- run ---------------------------------------------------------------------------------
    def process(self, parameters, context, feedback):
        has_raster = parameters.get("INPUT") not in (None, "")
        has_points = parameters.get("POINTS") not in (None, "")
        if has_raster == has_points:
            raise self.fail("POINTS", "Give either sample points or an element raster." if not has_raster else
                            "Both sample points and a raster were given.",
                            "Choose one of them and leave the other empty.")
        model_path = self.parameterAsFile(parameters, "MODEL_FILE", context) or None
        options = {} if model_path else self._options(parameters, context)
        if model_path:
            self._parameter_overrides["fields"] = "FIELDS" if has_points else "INPUT"
        if has_raster:   # the element table's columns are the raster's bands: its problems are INPUT's or BANDS'
            where = "BANDS" if parameters.get("BANDS") not in (None, "", []) else "INPUT"
            self._parameter_overrides.update(values=where, names=where, **({} if model_path else {"fields": where}))
        html_path = self.output_path(parameters, "OUTPUT_HTML", context, feedback)
        model_out = None if model_path else self.output_path(parameters, "OUTPUT_MODEL", context, feedback)
        has_deposits = parameters.get("DEPOSITS") not in (None, "")
        radius, min_distance = self._distances(parameters, context)
        if has_points:
            out = self._points(parameters, context, feedback, model_path, model_out, html_path, options,
                               has_deposits, radius, min_distance)
        else:
            out = self._raster(parameters, context, feedback, model_path, model_out, html_path, options,
                               has_deposits, radius, min_distance)
        if model_out and os.path.exists(model_out):
            out["OUTPUT_MODEL"] = model_out
        out["OUTPUT_HTML"] = html_path
        return out

    def _points(self, parameters, context, feedback, model_path, model_out, html_path, options, has_deposits, radius,
                min_distance):
        import numpy as np

        source = self.parameterAsSource(parameters, "POINTS", context)
        if source is None:
            raise self.fail("POINTS", "The point layer could not be loaded.", "Choose a point layer.")
        table, survey_notes = None, []
        key_field = sample_field(self, parameters, context, source)
        if model_path:
            fields = [f.name() for f in source.fields()]
            self._fields_match_model(parameters, context, model_path)
        elif not self.field_names(parameters, "FIELDS", context):
            # survey hygiene: elements by unit, never coordinates, oxides merged, measured in enough samples
            crs = distance_crs_for_points(self, source, context, feedback)
            ids, xs, ys, fields, table, plan, survey_notes = survey_table(
                self, source, context, crs, [], self.parameterAsDouble(parameters, "COVERAGE", context) / 100.0,
                missing=options["missing"], zeros=options["zeros"], feedback=feedback, share=READ_SHARE,
                key_field=key_field)
            if len(fields) < 2:
                # the fix that helps: lowering the coverage only where elements were left out for it
                short = sum(why.startswith("measured in fewer than") for why in plan.left_out.values())
                raise self.fail("FIELDS", f"Only {len(fields)} element is in the survey's default element set ("
                                + (f"{short} left out as measured in too few samples; " if short else "")
                                + f"{len(plan.left_out) - short} other fields left out for the reasons the log gives).",
                                ("Lower the coverage, or choose the element fields." if short else
                                 "Choose the element fields (the log says why each field was left out)."))
        else:
            fields = self.field_names(parameters, "FIELDS", context)
            require_fields(self, source, fields, numeric=True)
            if len(fields) < 2:
                raise self.fail("FIELDS", "At least two numeric element fields are needed.",
                                "Choose the element fields.")
            feedback.info(f"{len(fields)} element fields: " + ", ".join(fields[:20])
                          + (" ..." if len(fields) > 20 else ""))
        if table is None:   # the fields as they are (no survey hygiene): read as survey_table reads them
            crs = distance_crs_for_points(self, source, context, feedback)
            ids, xs, ys, _, _, table, _, survey_notes = read_survey(
                self, source, context, crs, fields, self.parameterAsDouble(parameters, "MISSING_VALUE", context),
                feedback, READ_SHARE, say_over=False, key_field=key_field)
        if not len(ids):
            raise self.fail("POINTS", "The layer has no features.", "Choose a layer of sample points.")
        deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback) if has_deposits else None
        units = f"distances in {crs.authid()}" if crs.isValid() else "distances in layer units"
        result = vae.run_points(
            np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), np.asarray(table, dtype=float), fields,
            model_path=model_path, model_out=model_out, report_path=html_path,
            labels=ids.tolist(), deposits_xy=deposits, positive_radius=radius,
            negative_min_distance=min_distance, options=options,
            subtitle=f"Sample points: {self.source_label(parameters, 'POINTS', context, source)}" + (
                f"; deposits: positive radius {radius:g} m, negatives at least {min_distance:g} m ({units})"
                if has_deposits else ""),
            extra_settings=[["Sample layer", self.source_label(parameters, "POINTS", context, source)]]
            + [["Survey check", line] for line in survey_notes],
            feedback=feedback.scaled(READ_SHARE[1], WRITE_SHARE[0]))
        scores, classes = result["scores"], result["classes"]
        out = self._values(result["evaluation"], int(np.isfinite(scores).sum()))

        out_fields = QgsFields(source.fields())
        for name, kind in (("anomaly_score", field_type.DOUBLE), ("anomaly_class", field_type.INT)):
            if out_fields.lookupField(name) >= 0:
                raise self.fail("POINTS", f"The layer already has a field '{name}'.",
                                "Rename or remove it first (the output adds it).")
            out_fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, out_fields, source.wkbType(),
                                          source.sourceCrs())
        if sink is None:
            if not self.sink_skipped(parameters, "OUTPUT", context):
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
            return out
        for feature, score, code in zip(features_by_id(source, ids, feedback, WRITE_SHARE), scores, classes):
            feedback.check()
            copy = QgsFeature(out_fields)
            copy.setGeometry(feature.geometry())
            copy.setAttributes(list(feature.attributes()) + (
                [float(score), int(code)] if np.isfinite(score) else [NULL, NULL]))
            sink.addFeature(copy, QgsFeatureSink.FastInsert)
        out["OUTPUT"] = dest
        del sink   # closed: a FlatGeobuf is written only now, and its style needs the file
        self.style_output(context, dest, {"kind": "categories", "field": "anomaly_class", "geometry": "Point",
                                          "opacity": 1.0, "legend": vae.class_legend(result["percentiles"]),
                                          "null_name": "Not scored"})
        return out

    def _fields_match_model(self, parameters, context, model_path):
        """With a model, FIELDS may only repeat the model's elements (it scores those, whatever FIELDS says)."""
        from ..core.engine.model_format import read_model_info
        from ..core.engine.model_task import check_task

        chosen = self.field_names(parameters, "FIELDS", context)
        if not chosen:
            return
        try:
            info = read_model_info(model_path)
        except Exception:  # noqa: BLE001 - an unreadable model is refused, with its own message, when loaded
            return
        check_task(info, vae.TASK, model_path)
        elements = list(info.band_names or [])
        if set(chosen) != set(elements):
            raise self.fail("FIELDS", f"The model scores its own elements ({', '.join(elements[:20])}); Element "
                                      f"fields lists {', '.join(chosen[:20])}.",
                            "Leave Element fields empty when a model is given (its elements are read by name), "
                            "or train a new model on the fields you want.")

    def _raster(self, parameters, context, feedback, model_path, model_out, html_path, options, has_deposits, radius,
                min_distance):
        path, layer = self.raster_path(parameters, "INPUT", context, require_crs=True)
        bands = self.parameterAsInts(parameters, "BANDS", context) or None
        n_bands = len(set(bands)) if bands else layer.bandCount()
        if n_bands < 2 and not model_path:
            raise self.fail("BANDS" if bands else "INPUT",
                            f"The raster gives {n_bands} element band; the VAE models how two or more elements vary "
                            "together.", "Give a raster of two or more element bands (e.g. IDW of two or more "
                            "fields) or choose two or more bands; for one element, map its grid directly.")
        score_path = self.output_path(parameters, "OUTPUT_SCORE", context, feedback)
        class_path = self.output_path(parameters, "OUTPUT_CLASSES", context, feedback)
        if not score_path and not class_path:
            raise self.fail("OUTPUT_SCORE", "A raster is scored into a score raster or a class raster, and neither "
                                            "was given.", "Choose where to save the score raster (or the classes).")
        wanted_score = bool(score_path)
        # the classes come from the scores: without the score output (a model keeping the classes only, the
        # optional output left out) the scores go to a temporary file
        score_path = score_path or QgsProcessingUtils.generateTempFilename("anomaly_score.tif")
        deposits = None
        crs = layer.crs()
        if has_deposits:
            refuse_geographic_raster(self, "INPUT", layer)
            deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback)
        nodata = parameters.get("NODATA")
        nodata = None if nodata in (None, "") else self.parameterAsDouble(parameters, "NODATA", context)
        result = vae.run_raster(
            path, score_path, class_path, model_path=model_path, model_out=model_out, report_path=html_path,
            bands=bands, nodata=nodata, max_samples=self.parameterAsInt(parameters, "RASTER_SAMPLE", context),
            deposits_xy=deposits, positive_radius=radius, negative_min_distance=min_distance,
            options=options, subtitle=f"Element raster: {path}", memory_mb=self.memory_mb(), feedback=feedback)
        out = self._values(result["evaluation"], result["scored"])
        if wanted_score:
            out["OUTPUT_SCORE"] = score_path
            self.style_output(context, score_path, styles.ANOMALY_SCORE)
        if class_path:
            out["OUTPUT_CLASSES"] = class_path
            self.style_output(context, class_path, styles.classes(vae.class_legend(result["percentiles"])))
        return out

    @staticmethod
    def _values(evaluation, n_scored):
        nan = float("nan")
        return {"AUC_MEAN": evaluation["auc_mean"] if evaluation else nan,
                "AUC_SD": evaluation["auc_sd"] if evaluation else nan, "N_SCORED": int(n_scored)}
