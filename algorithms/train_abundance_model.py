"""oremap:train_abundance_model - an ensemble of regressors from ROIs with measured mineral abundances."""

import numpy as np
from qgis.core import (
    NULL,
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
)

from ..core.abundance import abundance
from ..core.abundance import abundance_report
from ..core.abundance import members
from ..core.engine.spectra import PREPROCESSING
from .base import OreMapAlgorithm, abundance_number

UNITS = [("auto", "Detect (fractions if every value is at most 1)"), ("percent", "Percent (0-100)"),
         ("fraction", "Fractions (0-1)")]
SPACES = [("simplex", "Predict abundances, then project onto the simplex"),
          ("ilr", "Predict isometric log-ratios (ILR), then transform back")]
NAME_FIELDS = ("name", "id", "roi", "roi_id", "roi_name", "sample", "sample_id", "sample_name", "label", "fid")
"""Fields that name ROIs in the log, in this order (case-insensitive); else any text field with unique values."""


class TrainAbundanceModel(OreMapAlgorithm):
    NAME = "train_abundance_model"
    DISPLAY_NAME = "Train mineral abundance model"
    GROUP = "abundance"
    REQUIRES = ("onnx", "skl2onnx", "sklearn")
    RECOMMENDS = {"torch": "the CNN family"}
    TAGS = "abundance,regression,ensemble,stacking,pls,ridge,extra trees,gradient boosting,cnn,xrd,closure,conformal"
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "training": "ROIS", "fields": "FIELDS",
                       "families": "FAMILIES", "level": "LEVEL", "output": "OUTPUT_MODEL",
                       "report": "OUTPUT_REPORT", "units": "UNITS", "space": "SPACE",
                       "preprocessing": "PREPROCESSING"}
    HELP = (
        "Learns per-pixel mineral abundances (%) from a hyperspectral raster and regions of interest (ROIs: "
        "polygons or points over scanned rock samples, core or conveyor material) whose fields hold measured "
        "compositions, e.g. XRD mineral phases. Every pixel inside an ROI carries its ROI's composition.\n\n"
        "Several model families are trained and compared: PLS regression, ridge regression, extra trees, "
        "gradient boosting and a 1D CNN regressor. A stacking layer combines them with non-negative weights "
        "summing to one, learned on out-of-fold predictions. All cross-validation keeps whole ROIs together, so "
        "the figures describe samples the model has not seen. Predictions are closed: non-negative and summing "
        "to exactly 100 % (projection onto the simplex, or modelling in log-ratio space). When the chosen "
        "minerals do not make up the whole sample, an 'Other' part takes the remainder.\n\n"
        "Per-pixel confidence intervals are calibrated by split-conformal prediction on the grouped "
        "out-of-fold residuals, scaled by how much the models disagree. The pixels of one ROI share its "
        "composition, so each ROI counts once: 90 % intervals need at least 9 ROIs, 95 % 19 (with fewer they are "
        "0-100 %, and the log says so). Linear unmixing with endmembers "
        "estimated from the same ROIs is evaluated on the same folds, so the report shows when physics-based "
        "unmixing is as good. The model is one ONNX file for 'Predict mineral abundances'.")
    PARAM_HELP = {
        "INPUT": "Hyperspectral reflectance raster covering the ROIs. Bad bands (ENVI bbl) are left out.",
        "ROIS": "Polygons (or points) over samples with measured compositions, in any CRS. A pixel in more than "
                "one ROI is left out (its composition is ambiguous); the log names the ROIs that overlap.",
        "FIELDS": "Fields holding the abundance of each mineral (one field per mineral; the field name becomes the "
                  "mineral name): numbers, or a lab table's text ('nd', '-' and 'tr' read as 0, '&lt;1' as half the "
                  "limit, decimal commas). An ROI with an empty field is left out (named in the log). ROIs of one "
                  "composition (a sample split into parts, replicate points) are one sample for cross-validation.",
        "UNITS": "Unit of the abundance fields. Detect: fractions when no value exceeds 1, else percent "
                 "(the log states the choice).",
        "ADD_OTHER": "When the chosen minerals sum to less than 100 % in some ROIs, add an 'Other' part for the "
                     "remainder (into the table's own Other / Unclassified field when one is chosen). Off: such rows "
                     "are scaled up to 100 %. Sums on both sides of 100 % within 5 points are rounding: closed.",
        "FAMILIES": "Model families to train and stack. The CNN is the slowest (a few minutes on a CPU).",
        "SPACE": "How closure is enforced: projection onto the simplex (exact zeros possible), or regression in "
                 "isometric log-ratio space (Egozcue et al. 2003; never exactly zero: a zero in the table counts as "
                 "0.65 %, below a 1 % detection limit, and the other parts give way, so a pure mineral's target is "
                 "100 - 0.65 (k - 1) % for k parts, Other included: 98.7 % with 3 parts, 97.4 % with 5, 94.2 % with "
                 "10).",
        "PREPROCESSING": "Applied to spectra before every model: none, brightness normalisation (insensitive to "
                         "illumination), or continuum removal (absorption depths).",
        "FOLDS": "Cross-validation folds (whole ROIs per fold; at most the number of ROIs).",
        "AUGMENT_COPIES": "Noisy or brightened copies of each training pixel, made inside the training folds only "
                          "(0 = none).",
        "SNR": "Signal-to-noise ratio (linear, e.g. 100 for 100:1) of the noise added to augmented copies; "
               "0 = no noise.",
        "BRIGHTNESS": "Augmented copies are scaled by a random factor within +/- this fraction (0 = none).",
        "LEVEL": "Confidence level (%) of the intervals checked in the report (prediction can use another).",
        "CNN_EPOCHS": "Training epochs of the CNN regressor.",
        "SEED": "Random seed: the same seed and data give the same folds and models.",
    }
    OUTPUT_HELP = {
        "OUTPUT_MODEL": "The model: ONNX with OreMap metadata (minerals and colours, wavelengths, preprocessing, "
                        "stacking weights, conformal calibration, cross-validation summary).",
        "OUTPUT_REPORT": "HTML report: RMSE and R2 per mineral for each model, the ensemble and unmixing; "
                         "predicted-vs-measured plots; interval coverage.",
        "ENSEMBLE_RMSE": "Mean out-of-fold RMSE (% points) of the ensemble over the minerals.",
        "BEST_SINGLE_RMSE": "Mean out-of-fold RMSE of the best single model.",
        "UNMIXING_RMSE": "Mean out-of-fold RMSE of the better linear unmixing mode (NaN when not run).",
        "COVERAGE": "Empirical coverage (0-1) of the intervals at the chosen level, on held-out ROIs.",
    }
    REFERENCES = [
        "Wolpert, D. H. (1992). Stacked generalization. Neural Networks 5(2), 241-259; Breiman, L. (1996). "
        "Stacked regressions. Machine Learning 24, 49-64.",
        "Vovk, V., Gammerman, A. and Shafer, G. (2005). Algorithmic Learning in a Random World. Springer "
        "(conformal prediction); Lei, J. et al. (2018). Distribution-free predictive inference for regression. "
        "JASA 113, 1094-1111.",
        "Aitchison, J. (1986). The Statistical Analysis of Compositional Data. Chapman & Hall; Egozcue, J. J. "
        "et al. (2003). Isometric logratio transformations for compositional data analysis. Math. Geol. 35, "
        "279-300.",
        "Heinz, D. C. and Chang, C.-I. (2001). Fully constrained least squares linear spectral mixture "
        "analysis. IEEE TGRS 39(3), 529-545.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input()
        self._add(QgsProcessingParameterFeatureSource(
            "ROIS", self.tr("ROIs with measured abundances"),
            [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]))
        self._add(QgsProcessingParameterField("FIELDS", self.tr("Abundance fields (one per mineral)"),
                                              parentLayerParameterName="ROIS",
                                              type=QgsProcessingParameterField.Any, allowMultiple=True))
        self.add_enum("UNITS", "Abundance unit", [label for _, label in UNITS])
        self._add(QgsProcessingParameterBoolean("ADD_OTHER", self.tr("Add an 'Other' part for the remainder"),
                                                defaultValue=True))
        self._add(QgsProcessingParameterEnum("FAMILIES", self.tr("Model families"),
                                             options=[label for _, label in abundance.FAMILIES], allowMultiple=True,
                                             defaultValue=list(range(len(abundance.FAMILIES)))))
        self.add_enum("SPACE", "Closure", [label for _, label in SPACES])
        self.add_enum("PREPROCESSING", "Preprocessing", [label for _, label in PREPROCESSING])
        self.add_number("FOLDS", "Cross-validation folds", 5, 2, 20, integer=True)
        self.add_number("AUGMENT_COPIES", "Augmented copies per pixel", 0, 0, 50, integer=True, advanced=True)
        self.add_number("SNR", "Augmentation signal-to-noise ratio (0 = no noise)", 0.0, 0.0, advanced=True)
        self.add_number("BRIGHTNESS", "Augmentation brightness range (+/- fraction)", 0.0, 0.0, 0.9, advanced=True)
        self.add_number("LEVEL", "Interval level (%)", 90.0, 50.0, 99.0)
        self.add_number("CNN_EPOCHS", "CNN epochs", members.DEFAULT_CNN["epochs"], 1, 2000, integer=True,
                     advanced=True)
        self.add_number("SEED", "Random seed", 42, 0, integer=True, advanced=True)
        self.add_band_parameters()
        self.add_file_output("OUTPUT_MODEL", "Model file", "ONNX models (*.onnx)")
        self.add_report_output("OUTPUT_REPORT", "Training report")
        self.add_value_output("ENSEMBLE_RMSE", "Ensemble mean RMSE (%)")
        self.add_value_output("BEST_SINGLE_RMSE", "Best single model mean RMSE (%)")
        self.add_value_output("UNMIXING_RMSE", "Linear unmixing mean RMSE (%)")
        self.add_value_output("COVERAGE", "Interval coverage on held-out ROIs")

    def roi_names(self, parameters, context, ids, exclude=()):
        """Names of the ROIs with feature ids ``ids`` for the log: the values of a field that names them (one of
        :data:`NAME_FIELDS`, else a text field, whose values are filled and unique), else "feature <id>"."""
        source = self.parameterAsSource(parameters, "ROIS", context)
        fallback = [f"feature {i}" for i in ids]
        if source is None or not ids:
            return fallback
        fields = source.fields()
        candidates = sorted((f for f in fields if f.name() not in exclude and f.name().lower() in NAME_FIELDS),
                            key=lambda f: NAME_FIELDS.index(f.name().lower()))
        candidates += [f for f in fields if f.name() not in exclude and f.name().lower() not in NAME_FIELDS
                       and not f.isNumeric()]
        if not candidates:
            return fallback
        request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry)
        request.setSubsetOfAttributes([f.name() for f in candidates], fields)
        values = {feature.id(): [feature[f.name()] for f in candidates] for feature in source.getFeatures(request)}
        for j, field in enumerate(candidates):
            names = [values.get(i, [None] * len(candidates))[j] for i in ids]
            names = [None if v is None or v == NULL or str(v).strip() == "" else str(v).strip() for v in names]
            if None not in names and len(set(names)) == len(names):
                return names
        return fallback

    def process(self, parameters, context, feedback):
        from ..core.hyperspectral.mapping import image_band_info
        from ..core.engine.raster import RasterSource, report_fill
        from ..core.engine.sampling import labelled_pixels

        path, layer = self.raster_path(parameters, "INPUT", context)
        fields = self.field_names(parameters, "FIELDS", context)
        if not fields:
            raise self.fail("FIELDS", "No abundance field was chosen.", "Choose one field per mineral.")
        geometries, table, ids = self.features_with_values(parameters, "ROIS", fields, context, layer.crs(), feedback,
                                                           parse=abundance_number)
        unread = ~np.isfinite(table).all(axis=1)
        comp = abundance.prepare_compositions(
            table, fields, units=UNITS[self.parameterAsEnum(parameters, "UNITS", context)][0],
            add_other=self.parameterAsBool(parameters, "ADD_OTHER", context),
            row_names=self.roi_names(parameters, context, ids, fields) if unread.any() else None)
        for message in comp.messages:
            if message not in comp.warnings:   # a warning is also a note of the report: logged once, as a warning
                feedback.info(message)
        for message in comp.warnings:
            feedback.warning(message)
        geometries = [g for g, keep in zip(geometries, comp.kept) if keep]
        ids = [i for i, keep in zip(ids, comp.kept) if keep]
        wavelengths, nodata, scale = self.band_parameters(parameters, context)
        info = image_band_info(path, wavelengths, required=False, bad_bands=self.bad_bands(parameters, context),
                               nodata=nodata, scale=scale, feedback=feedback)
        bands = None if info is None else [int(i) + 1 for i in np.flatnonzero(info.good)]
        with RasterSource(path, bands=bands, nodata=nodata, scale=scale, feedback=feedback,
                          fill_spectra=True) as source:
            # every ROI its own label: a pixel in two ROIs has two compositions and is left out
            pixels = labelled_pixels(source, geometries, np.arange(len(geometries)), parameter="training",
                                     feedback=feedback.scaled(0, 15))
            band_names = [layer.bandName(b) for b in (bands or range(1, source.n_bands + 1))]
            report_fill(source, feedback)
        X, roi = pixels.values, pixels.groups.astype(np.int64)
        # ROIs of one composition are one physical sample (a polygon split in parts, replicate points): one group,
        # kept on one side of every cross-validation split, as parts of one sample would otherwise validate each other
        _, sample_of = np.unique(np.round(comp.values, 9), axis=0, return_inverse=True)
        sample_of = np.asarray(sample_of).reshape(-1)
        pure = (comp.values > 0).sum(axis=1) < 2   # end members (100 % of one part) of different places stay apart
        sample_of = np.where(pure, sample_of.max() + 1 + np.arange(len(sample_of)), sample_of)
        sample_of = np.unique(sample_of, return_inverse=True)[1].reshape(-1)
        if sample_of.max() + 1 < len(geometries):
            feedback.info(f"{len(geometries)} ROIs hold {int(sample_of.max()) + 1} distinct compositions: the ROIs of one "
                          "mixed composition (one sample split into parts, replicate points) stay on one side of "
                          "every cross-validation split, as one group.")
        uncovered = sorted(set(range(len(geometries))) - set(pixels.covering.tolist()))
        roi_names = (self.roi_names(parameters, context, ids, fields) if uncovered or pixels.overlaps.n_ambiguous
                     else None)
        warnings = pixels.overlaps.log(feedback, roi_names, noun="ROIs", what="composition", each_own=True)
        covered = np.unique(roi).size
        if uncovered:
            feedback.warning(f"{len(uncovered)} ROIs cover no valid pixel of the raster and were left out: "
                             + ", ".join(roi_names[i] for i in uncovered[:10]) + (" ..." if len(uncovered) > 10 else "")
                             + ".")
        feedback.info(f"{X.shape[0]} pixels in {covered} ROIs.")
        families = [abundance.FAMILIES[i][0] for i in self.parameterAsEnums(parameters, "FAMILIES", context)]
        snr = self.parameterAsDouble(parameters, "SNR", context)
        level = self.parameterAsDouble(parameters, "LEVEL", context) / 100.0
        model_path = self.output_path(parameters, "OUTPUT_MODEL", context, feedback)
        report_path = self.output_path(parameters, "OUTPUT_REPORT", context, feedback)
        result = abundance.train_abundance_model(
            X, comp.values[roi], sample_of[roi], comp.names, n_rois=int(np.unique(roi).size),
            wavelengths=None if info is None else info.centers[info.good],
            fwhm=None if info is None or info.fwhm is None else info.fwhm[info.good], band_names=band_names,
            preprocessing=PREPROCESSING[self.parameterAsEnum(parameters, "PREPROCESSING", context)][0],
            families=families, space=SPACES[self.parameterAsEnum(parameters, "SPACE", context)][0],
            n_folds=self.parameterAsInt(parameters, "FOLDS", context),
            augment_copies=self.parameterAsInt(parameters, "AUGMENT_COPIES", context),
            snr_db=20.0 * np.log10(snr) if snr > 0 else None,
            brightness=self.parameterAsDouble(parameters, "BRIGHTNESS", context), level=level,
            seed=self.parameterAsInt(parameters, "SEED", context),
            member_options={"cnn": {"epochs": self.parameterAsInt(parameters, "CNN_EPOCHS", context)}},
            description=f"Mineral abundance ({', '.join(comp.names)}) from {layer.name()}", feedback=feedback)
        result.save(model_path)
        notes = [f"Units: {comp.units}."] + comp.messages + warnings
        if report_path:
            from ..core.engine.report import write_report

            write_report(report_path, abundance_report.training_report(result, data_notes=notes))
        metrics = result.metrics
        ens = result.info.training["metrics"]["ensemble"]
        singles = [abundance.FAMILY_LABELS[f] for f in families]
        best = min(metrics[s]["mean_rmse"] for s in singles)
        unmix = [v["mean_rmse"] for k, v in metrics.items() if k.startswith("Unmixing")]
        for label, values in metrics.items():
            feedback.info(f"  {label}: mean RMSE {values['mean_rmse']:.2f} %")
        feedback.info(f"Interval coverage at {100 * level:.0f} %: {100 * result.coverage['all']:.1f} % on held-out ROIs.")
        training = result.info.training
        unit = "ROIs" if training["n_groups"] == training["n_rois"] else "ROI groups"
        if not np.all(np.isfinite(result.quantiles)):
            feedback.warning(abundance.calibration_warning(training["n_groups"], level, unit)
                             + " The coverage above says nothing.")
        else:   # enough ROIs for the model, too few outside some fold for its check
            need = abundance.conformal_minimum(level)
            short = sum(np.unique(result.groups[result.folds != f]).size < need for f in np.unique(result.folds))
            if short:
                feedback.warning(f"In {short} of {np.unique(result.folds).size} folds fewer than {need} {unit} were "
                                 f"left to calibrate the held-out ROIs' {100 * level:.0f} % intervals: those were "
                                 "0-100 %, so the coverage above overstates the model's (add ROIs to check it).")
        Y = comp.values
        present = (Y[:, :len(fields)] > 0).sum(axis=0)
        absent = [comp.names[j] for j in range(len(fields)) if present[j] == 0]
        single = [comp.names[j] for j in range(len(fields)) if present[j] == 1]
        if absent or single:
            feedback.warning(
                "Minerals the ROIs hardly sample: " + "; ".join(
                    part for part in (f"absent from every ROI: {', '.join(absent)} (predicted 0 everywhere; its "
                                      "figures flatter the means)" if absent else "",
                                      f"in one ROI only: {', '.join(single)} (cross-validation cannot test it)"
                                      if single else "") if part)
                + ". Leave them out of FIELDS or add ROIs holding them.")
        return {"OUTPUT_MODEL": model_path, "OUTPUT_REPORT": report_path, "ENSEMBLE_RMSE": metrics[ens]["mean_rmse"],
                "BEST_SINGLE_RMSE": best, "UNMIXING_RMSE": min(unmix) if unmix else float("nan"),
                "COVERAGE": result.coverage["all"]}
