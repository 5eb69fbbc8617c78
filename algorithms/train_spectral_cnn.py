"""oremap:train_spectral_cnn - train a 1D CNN mineral classifier from libraries or labelled pixels."""

import os

import numpy as np
from qgis.core import (
    NULL,
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.hyperspectral import cnn_training
from ..core.engine.spectra import PREPROCESSING
from ..core.engine.errors import OreMapError
from .base import LIBRARY_FORMATS, OreMapAlgorithm, fields_hint, split_names
from .classify_spectral_cnn import DEEPGEOMAP_REFERENCES

CLASS_RULES = [("first_word", "First word of the spectrum name (mineral)"), ("whole_name", "Whole spectrum name")]


class TrainSpectralCnn(OreMapAlgorithm):
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "report": "OUTPUT_REPORT", "output": "OUTPUT_MODEL",
                       "class_rule": "CLASS_RULE", "outliers": "OUTLIER_LIBRARIES", "library": "LIBRARIES"}
    NAME = "train_spectral_cnn"
    DISPLAY_NAME = "Train a spectral CNN"
    GROUP = "hyperspectral"
    REQUIRES = ("torch", "onnx")
    TAGS = "cnn,deep learning,deepgeomap,training,onnx,spectral library,usgs,mineral"
    HELP = (
        "Trains a 1D convolutional neural network over the spectrum (after DeepGeoMap) to recognise minerals, "
        "and saves it as an OreMap ONNX model for 'Classify minerals with a spectral CNN'.\n\n"
        "Training data come either (a) from a hyperspectral raster and labelled points or polygons, or (b) from "
        "spectral library files (laboratory or point-spectrometer spectra; the class is the first word of each "
        "name, e.g. 'Kaolinite CM9' is kaolinite), resampled by wavelength to a target sensor: the bands of a "
        "reference raster or a wavelength list. Library training augments each spectrum to imitate field "
        "conditions: brightness, illumination slope, sensor noise at a chosen SNR, mixing with small fractions "
        "of other minerals, shade.\n\n"
        "Validation is grouped: the pixels of one polygon, or the copies of one library spectrum, never sit on "
        "both sides of the split. The HTML report gives the confusion matrix, overall accuracy, kappa, per-class "
        "precision/recall/F1, learning curves, and the Spectral Angle Mapper on the same validation data for "
        "comparison. A fixed seed gives the same model twice.\n\n"
        "The saved model carries an out-of-distribution check that 'Classify minerals with a spectral CNN' applies: "
        "a pixel is left unclassified when its spectral angles to the nearest training sample of its class exceed "
        "that class's thresholds (set on the held-out samples). A model trained from image pixels (a) also "
        "checks the network's own features: the graph returns each pixel's distance, in the network's "
        "penultimate layer, to the 5th nearest of at most 1,024 training pixels, and a pixel beyond the "
        "held-out pixels' 99th percentile is left unclassified. That check rejects mostly pixels the network "
        "would get wrong, so the angle thresholds of pixels without polygons are wider (x 2 instead of x 1.25): "
        "on a benchmark of labelled AVIRIS pixels of unseen physical samples, 92.4 instead of 88.3 % were classified "
        "right with unclassified pixels counted wrong, with as few untrained minerals let through (Sun et al. "
        "2022, out-of-distribution detection with deep nearest neighbours; README, 'Grouped by physical sample').")
    PARAM_HELP = {
        "INPUT": "(a) Hyperspectral raster to take training pixels from.",
        "TRAINING": "(a) Points or polygons over the raster, with a class field.",
        "CLASS_FIELD": "(a) Field holding each feature's class (mineral) name.",
        "GROUP_FIELD": "(a) Optional field naming the physical sample, outcrop or site of each feature: features "
                       "with the same value are held out together, so the report's figures are those of samples the "
                       "network never saw. Empty: each polygon is a group, and so is each point; points are then "
                       "pixels of the same outcrops on both sides of the split, and the figures are optimistic (on "
                       "the project's benchmark of labelled AVIRIS pixels, 99.6 % reported against 94.8 % on pixels "
                       "of new samples), which the log and the report say.",
        "LIBRARIES": "(b) One or more spectral libraries (several one-spectrum files of a field campaign too; a "
                     "spectrum in two of them, same name and values, is trained on once): " + LIBRARY_FORMATS,
        "CLASS_RULE": "(b) How a library spectrum's class is found from its name.",
        "CLASS_TABLE": "(b) Optional CSV 'spectrum name,class' overriding the rule for the spectra it lists: a "
                       "row takes the spectra whose names are, or begin with, its name followed by a space, '_', '-', "
                       "'.' or a digit (a sample name such as 'Muscovite GDS107' takes every measurement of that "
                       "sample; 'kaol' takes 'kaol_00001'; the longest row wins). Rows "
                       "that take no spectrum are listed in the log.",
        "CLASSES": "(b) Classes to train, e.g. 'Kaolinite; Alunite; Calcite'. Empty: every class with enough spectra.",
        "REFERENCE": "(b) A raster of the target sensor: the model is trained on its good bands.",
        "SENSOR": "(b) Instead of a reference raster: the band centres and FWHM of a sensor shipped with OreMap "
                  "(AVIRIS-Classic, AVIRIS-NG, EMIT, EnMAP, PRISMA, HyMap; sources in core/hyperspectral/sensor_data/SOURCES.md), "
                  "so a model can be made for a sensor without a scene of it.",
        "WAVELENGTHS": "(b) Instead of a reference raster or preset: target band centres in nm ('400:2500:10' or a "
                       "list, in any order; overlapping detectors are handled as for rasters).",
        "EXCLUDE_WATER": "(b) Leave out the atmospheric water-vapour windows (1330-1460 and 1760-1970 nm), which "
                         "are unusable in airborne and satellite reflectance.",
        "PREPROCESSING": "Applied to every spectrum before the network, in training and classification alike: "
                         "none, brightness normalisation (divide by the spectrum's mean: insensitive to "
                         "illumination), or continuum removal (divide by the upper convex hull: absorption depths; "
                         "the default: with 5 augmented copies per pixel, 94.8 % against 91.4 % for brightness normalisation "
                         "on labelled pixels of unseen physical samples; OreMap's source repository, "
                         "bench/experiment_cnn_accuracy.py).",
        "AUGMENT_COPIES": "(b) Augmented copies made of each library spectrum (0 = no augmentation).",
        "PIXEL_AUGMENT_COPIES": "(a) Augmented copies made of each labelled pixel, as for library spectra (brightness, "
                                "slope, noise at the SNR below, mixing with up to 30 % of another class, shade); "
                                "0 = train on the pixels as they are. With continuum removal the default 5 raised the "
                                "accuracy on pixels of unseen physical samples from 93.4 to 94.8 % (92.4 % instead of "
                                "66.8 % with the out-of-distribution check's rejections counted wrong: it lets the check "
                                "learn how far real pixels stray); with brightness normalisation it did not help "
                                "(93.1 to 91.4 %) (OreMap's source repository, bench/experiment_cnn_accuracy.py).",
        "SNR": "Signal-to-noise ratio (linear, e.g. 100 for 100:1) of the noise added by augmentation.",
        "EPOCHS": "Maximum number of passes over the training data.",
        "BATCH_SIZE": "Spectra per training step (larger is faster, needs more memory).",
        "LEARNING_RATE": "Step size of the Adam optimiser (0.001 suits most data).",
        "PATIENCE": "Training stops when the validation loss has not improved for this many epochs; the best "
                    "model is kept.",
        "MIN_EPOCHS": "Early stopping keeps no epoch before this one (at most the maximum epochs) and counts its "
                      "patience from it; 1: plain early stopping. Raise it when training with outlier spectra stops "
                      "after a few epochs: their flat target can make the validation loss lowest while the network "
                      "is still unsure of its own classes. The bundled model keeps no epoch before the 20th of 80, "
                      "which raised the share of held-out spectra given a confidence of 0.5 or more from 90.9 to "
                      "94.5 % and let as many untrained minerals through (mean of 4 seeds, README).",
        "VALIDATION_FRACTION": "Share of the groups (polygons, library spectra) of each class held out for validation "
                               "and early stopping. The held-out points are not lost: once early stopping has "
                               "chosen the number of epochs, a new network is trained on all labelled points "
                               "(held-out ones included) for that many epochs and saved (unless 'Refit' is off); "
                               "the report's figures are those of the held-out run.",
        "REFIT": "Train the saved model again on all labelled points for the epochs early stopping chose (on by "
                 "default). Off: save the network of the best epoch, trained without the held-out points (with "
                 "ENSEMBLE above 1, averaged with the other networks, also trained without them; the report's "
                 "figures are then the average's).",
        "ENSEMBLE": "Networks of different seeds whose class probabilities the saved model averages, in one ONNX "
                    "graph (a seed ensemble). Early stopping runs once; each network is trained for the epochs "
                    "it chose. Each network adds its cost to classification; on labelled pixels of unseen "
                    "samples 3 or 5 networks were no more accurate than one (README), so the default is 1.",
        "OUTLIER_LIBRARIES": "Optional spectral libraries of minerals and materials that are none of your classes "
                             "(e.g. other USGS spectra). Resampled to the model's bands and augmented like the "
                             "training spectra, they are trained towards a flat output (outlier exposure, Hendrycks "
                             "et al. 2019), so that spectra unlike every class get a low confidence instead of the "
                             "nearest class. Spectra whose first word names one of your classes or a part of one "
                             "('Muscovite-Illite' covers muscovite and illite) and featureless ones are left out "
                             "(logged). Leave out variants and mixtures of your classes and "
                             "minerals of the same group: taught as 'none of them', they make the network doubt "
                             "its classes. With 88 such materials the bundled model's recipe lets 16.8 % of untrained "
                             "minerals' spectra through confidently instead of 29.9 % (mean of 4 seeds), and a model "
                             "trained on labelled pixels 20.4 % instead of 49.0 % at about the same accuracy "
                             "(README).",
        "OUTLIER_WEIGHT": "Weight of the outlier spectra's loss (their cross-entropy to a flat output) beside the "
                          "classes' loss.",
        "SEED": "Random seed: the same seed, data and number of compute threads (Processing &gt; Options &gt; Providers &gt; "
                "OreMap; recorded in the model) give the same model. Another thread count sums in another order: "
                "the network then differs in the last digits, which can move a held-out figure.",
        "BAD_BANDS": "Bands of the raster (a) or the target sensor raster (b) left out besides its ENVI bbl. Empty: "
                     "found automatically (with wavelengths: the water-vapour windows 1345-1430 and 1775-1950 nm; "
                     "always: bands constant or missing over the scene, bands with a negative scene median, bands "
                     "whose band-to-band noise is more than 6 times their neighbours'); the log lists them. Entries "
                     "separated by ';': 'keep 381-401 nm', 'drop 2450-2510 nm', 'drop bands 1-5', or 'off' (only "
                     "the bbl). The model, and the SAM baseline of the report, use the remaining bands. A raster (a) without "
                     "wavelengths is read whole, by band number (the classifier reads the same bands): leave this "
                     "empty then.",
    }
    OUTPUT_HELP = {
        "OUTPUT_MODEL": "The model: ONNX with OreMap metadata (classes and colours, wavelengths, preprocessing, "
                        "training summary).",
        "OUTPUT_REPORT": "HTML training report with the CNN and SAM side by side on the validation data.",
        "VALIDATION_ACCURACY": "Overall accuracy of the CNN on the held-out validation data (0-1): for labelled "
                               "image pixels the held-out pixels as they are, for library spectra augmented copies of "
                               "the held-out spectra (field-like); SAM_ACCURACY is measured on the same data.",
        "KAPPA": "Cohen's kappa of the CNN on the validation data.",
        "SAM_ACCURACY": "Overall accuracy of the Spectral Angle Mapper (class mean spectra) on the same data.",
    }
    REFERENCES = [
        *DEEPGEOMAP_REFERENCES,
        "Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.",
        "Kokaly, R. F. et al. (2017). USGS Spectral Library Version 7. USGS Data Series 1035.",
        "Hendrycks, D., Mazeika, M. and Dietterich, T. (2019). Deep anomaly detection with outlier exposure. ICLR.",
        "Sun, Y., Ming, Y., Zhu, X. and Li, Y. (2022). Out-of-distribution detection with deep nearest neighbors. "
        "ICML.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterRasterLayer("INPUT", self.tr("Hyperspectral raster (a)"), optional=True))
        self._add(QgsProcessingParameterFeatureSource(
            "TRAINING", self.tr("Training points or polygons (a)"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self._add(QgsProcessingParameterField("CLASS_FIELD", self.tr("Class field (a)"),
                                              parentLayerParameterName="TRAINING", optional=True))
        self._add(QgsProcessingParameterField("GROUP_FIELD", self.tr("Sample field (a)"),
                                              parentLayerParameterName="TRAINING", optional=True))
        self._add(QgsProcessingParameterMultipleLayers("LIBRARIES", self.tr("Spectral libraries (b)"),
                                                       QgsProcessing.TypeFile, optional=True))
        self.add_enum("CLASS_RULE", "Class from spectrum name (b)", [label for _, label in CLASS_RULES])
        self._add(QgsProcessingParameterFile("CLASS_TABLE", self.tr("Class table (b)"), extension="csv",
                                             optional=True), advanced=True)
        self._add(QgsProcessingParameterString("CLASSES", self.tr("Classes to train (b)"), optional=True))
        self._add(QgsProcessingParameterRasterLayer("REFERENCE", self.tr("Target sensor raster (b)"), optional=True))
        from ..core.hyperspectral.sensor_presets import SENSORS

        self.add_enum("SENSOR", "Target sensor preset (b)",
                      ["None (target sensor raster or wavelengths)"] + [label for _, label in SENSORS.values()])
        self._add(QgsProcessingParameterString("WAVELENGTHS", self.tr("Target wavelengths in nm (b)"), optional=True))
        self._add(QgsProcessingParameterBoolean("EXCLUDE_WATER", self.tr("Leave out water-vapour bands (b)"),
                                                defaultValue=True))
        self.add_enum("PREPROCESSING", "Preprocessing", [label for _, label in PREPROCESSING],
                      default=[m for m, _ in PREPROCESSING].index(cnn_training.DEFAULT_PREPROCESSING))
        self.add_number("AUGMENT_COPIES", "Augmented copies per library spectrum (b)", 200, 0, integer=True)
        self.add_number("PIXEL_AUGMENT_COPIES", "Augmented copies per labelled pixel (a)",
                        cnn_training.PIXEL_AUGMENT_COPIES, 0, integer=True, advanced=True)
        self.add_number("SNR", "Augmentation signal-to-noise ratio", 100.0, 1.0)
        self.add_number("EPOCHS", "Maximum epochs", 150, 1, integer=True)
        self.add_number("BATCH_SIZE", "Batch size", 256, 8, integer=True, advanced=True)
        self.add_number("LEARNING_RATE", "Learning rate", 0.001, 1e-6, maximum=1.0, advanced=True)
        self.add_number("PATIENCE", "Early-stopping patience (epochs)", 15, 1, integer=True, advanced=True)
        self.add_number("MIN_EPOCHS", "Earliest epoch early stopping may keep", 1, 1, integer=True, advanced=True)
        self.add_number("VALIDATION_FRACTION", "Validation fraction", 0.25, 0.05, maximum=0.8, advanced=True)
        self.add_number("ENSEMBLE", "Networks averaged in the model (seed ensemble)", cnn_training.ENSEMBLE_DEFAULT,
                        1, maximum=10, integer=True, advanced=True)
        self._add(QgsProcessingParameterMultipleLayers("OUTLIER_LIBRARIES", self.tr("Outlier spectra (libraries)"),
                                                       QgsProcessing.TypeFile, optional=True), advanced=True)
        self.add_number("OUTLIER_WEIGHT", "Outlier exposure weight", 0.5, 0.0, maximum=10.0, advanced=True)
        self.add_number("SEED", "Random seed", 42, 0, integer=True, advanced=True)
        self._add(QgsProcessingParameterBoolean("REFIT", self.tr("Refit on all labelled points after early stopping"),
                                                defaultValue=True), advanced=True)
        self.add_bad_bands_parameter()
        self.add_file_output("OUTPUT_MODEL", "Model file", "ONNX models (*.onnx)")
        self.add_report_output("OUTPUT_REPORT", "Training report")
        self.add_value_output("VALIDATION_ACCURACY", "CNN validation accuracy")
        self.add_value_output("KAPPA", "CNN validation kappa")
        self.add_value_output("SAM_ACCURACY", "SAM validation accuracy")

    def training_set(self, parameters, context, feedback):
        from ..core.hyperspectral import training
        from ..core.hyperspectral.mapping import image_band_info
        from ..core.engine.raster import RasterSource, report_fill
        from ..core.engine.wavelengths import BandInfo, parse_wavelength_list

        from ..core.hyperspectral.sensor_products import detect

        given = parameters.get("INPUT")
        raster = (given if isinstance(given, str) and given and detect(given)
                  else self.parameterAsRasterLayer(parameters, "INPUT", context))
        libraries = self.file_list(parameters, "LIBRARIES", context)
        if raster is not None and libraries:
            raise self.fail("LIBRARIES", "Both a raster (a) and spectral libraries (b) were given.",
                            "Train from one source: leave the other empty.")
        if raster is not None:
            path, layer = self.raster_path(parameters, "INPUT", context)
            geometries, labels, ids = self.labelled_geometries(parameters, "TRAINING", "CLASS_FIELD", context,
                                                               layer.crs(), feedback=feedback, with_ids=True)
            info = image_band_info(path, required=False, bad_bands=self.bad_bands(parameters, context),
                                   feedback=feedback)
            if info is None:
                if self.parameterAsString(parameters, "BAD_BANDS", context).strip():
                    raise self.fail("BAD_BANDS", f"'{os.path.basename(path)}' has no band wavelengths, so the model "
                                    "reads its bands by number and every one of them: a band left out here would "
                                    "be read again when the model classifies.",
                                    "Clear BAD_BANDS, or give the raster its wavelengths first "
                                    "(oremap:import_spectrometer_product, or the ENVI header's wavelength list).")
                feedback.warning(f"'{os.path.basename(path)}' has no band wavelengths: the model is trained on all its "
                                 "bands by number, bad bands included (they cannot be told apart without "
                                 "wavelengths, and the classifier reads the same bands). Give the raster its "
                                 "wavelengths to drop them.")
            # good bands by wavelength, as training.target_bands orders the model's bands
            bands = None if info is None else [int(i) + 1 for i in sorted(np.flatnonzero(info.good),
                                                                          key=lambda i: info.centers[i])]
            good = None if info is None else training.target_bands(info, exclude_water=False)
            with RasterSource(path, bands=bands, feedback=feedback, fill_spectra=True) as source:
                data = training.image_training_set(source, geometries, labels, good, feedback=feedback.scaled(0, 15),
                                                   names=[f"feature {i} ({label})" for i, label in zip(ids, labels)])
                report_fill(source, feedback)
            feedback.info(f"{data.X.shape[0]} training pixels from {len(set(data.groups.tolist()))} features.")
            return data, False, self._sample_groups(parameters, context, data, ids, feedback)
        self._parameter_overrides["training"] = "LIBRARIES"
        if not libraries:
            raise self.fail("LIBRARIES", "No training data were given.",
                            "Give spectral libraries (b), or a raster with training features (a).")
        reference = parameters.get("REFERENCE")
        if not (isinstance(reference, str) and reference and detect(reference)):
            reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        text = self.parameterAsString(parameters, "WAVELENGTHS", context)
        sensor = self.parameterAsEnum(parameters, "SENSOR", context)
        given = [n for n, v in (("REFERENCE", reference is not None), ("SENSOR", sensor > 0),
                                ("WAVELENGTHS", bool(text and text.strip()))) if v]
        if len(given) > 1:
            raise self.fail(given[1], f"{' and '.join(given)} both give a target sensor.", "Use one of them.")
        if reference is not None:
            reference_path = self.raster_path(parameters, "REFERENCE", context)[0]
            try:
                target = image_band_info(reference_path, bad_bands=self.bad_bands(parameters, context),
                                         feedback=feedback)
            except OreMapError as exc:
                if exc.parameter != "wavelengths":
                    raise
                # here the raster is at fault, not WAVELENGTHS: giving those as well was then refused as a second
                # target sensor
                raise self.fail("REFERENCE", f"The target sensor raster {os.path.basename(reference_path)} has no "
                                             "band centres in its metadata.",
                                "Choose a raster whose metadata give them (an ENVI header's 'wavelength', band "
                                "metadata), or leave REFERENCE empty and choose a sensor preset or enter the target "
                                "wavelengths instead.") from None
            self._parameter_overrides["wavelengths"] = "REFERENCE"   # too few bands: the raster's, not WAVELENGTHS
        elif sensor > 0:
            from ..core.hyperspectral import sensor_presets

            self._parameter_overrides["wavelengths"] = "SENSOR"
            target = sensor_presets.band_info(sensor_presets.names()[sensor - 1], feedback)
        elif text and text.strip():
            from ..core.engine.band_order import flag_overlaps

            self._parameter_overrides["wavelengths"] = "WAVELENGTHS"
            target, notes = flag_overlaps(BandInfo(centers=parse_wavelength_list(text), fwhm=None, bad=None))
            for note in notes:
                feedback.info(f"Target wavelengths: {note}")
        else:
            raise self.fail("REFERENCE", "Library training needs a target sensor.",
                            "Choose a raster of the target sensor, a sensor preset, or enter target wavelengths.")
        data = training.library_training_set(
            libraries, target, class_rule=CLASS_RULES[self.parameterAsEnum(parameters, "CLASS_RULE", context)][0],
            class_table=self.parameterAsFile(parameters, "CLASS_TABLE", context) or None,
            classes=split_names(self.parameterAsString(parameters, "CLASSES", context)) or None,
            exclude_water=self.parameterAsBool(parameters, "EXCLUDE_WATER", context), feedback=feedback)
        feedback.info(f"{data.X.shape[0]} library spectra in {len(data.class_names)} classes on "
                      f"{data.band_info.n_bands} bands: " + ", ".join(f"{k} ({v})" for k, v in data.counts().items()))
        return data, True, None

    def _sample_groups(self, parameters, context, data, ids, feedback):
        """Group the pixels by GROUP_FIELD (``data.groups`` then numbers its values), and say how validation is
        grouped (the model and the report record it): by that field, by feature, or point by point, which is
        warned of (held-out points are pixels of the training points' outcrops: the figures are optimistic)."""
        field = self.parameterAsString(parameters, "GROUP_FIELD", context)
        if field:
            source = self.parameterAsSource(parameters, "TRAINING", context)
            if source.fields().lookupField(field) < 0:
                raise self.fail("GROUP_FIELD", f"Field '{field}' is not in the layer.",
                                fields_hint(source, "the sample field"))
            index = source.fields().lookupField(field)
            wanted = set(int(i) for i in ids)
            request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([index])
            values = {f.id(): f.attributes()[index] for f in source.getFeatures(request) if f.id() in wanted}
            # a feature without a sample value is a sample of its own
            text = {i: ("" if v is None or v == NULL else str(v).strip()) for i, v in values.items()}
            keys = [("value", text[i]) if text.get(i) else ("feature", int(i)) for i in ids]
            from ..core.hyperspectral import training

            data.groups = training.sample_groups(data, keys)   # keys[i]: the sample of feature i (ids order)
            n = len(set(data.groups.tolist()))
            feedback.info(f"Validation holds out whole samples: {n} samples by the field '{field}'.")
            return f"by the sample field '{field}' ({n} samples)"
        sizes = np.bincount(np.asarray(data.groups, dtype=np.int64))
        if sizes[sizes > 0].max() <= 1:
            feedback.warning("Each training point is its own validation group: the held-out points are pixels of the "
                             "same outcrops or samples as the training points, so the report's validation figures "
                             "are optimistic (on the project's labelled-pixel benchmark 99.6 % reported against "
                             "94.8 % on pixels of new samples). Give the Sample field (GROUP_FIELD), a sample or "
                             "outcrop name, to hold out whole samples.")
            return "point by point (each point its own group; the figures are optimistic)"
        return "by feature (the pixels of a polygon are held out together)"

    def process(self, parameters, context, feedback):
        data, from_library, grouping = self.training_set(parameters, context, feedback)
        model_path = self.output_path(parameters, "OUTPUT_MODEL", context, feedback)
        report_path = self.output_path(parameters, "OUTPUT_REPORT", context, feedback)
        number = lambda name: self.parameterAsDouble(parameters, name, context)  # noqa: E731
        integer = lambda name: self.parameterAsInt(parameters, name, context)  # noqa: E731
        copies = integer("AUGMENT_COPIES") if from_library else integer("PIXEL_AUGMENT_COPIES")
        outlier_paths = self.file_list(parameters, "OUTLIER_LIBRARIES", context)
        outliers = None
        if outlier_paths:
            from ..core.hyperspectral import training

            # a damaged or mismatched outlier library is named as such (its errors say "library" or "wavelengths",
            # which would blame LIBRARIES or SENSOR)
            self._parameter_overrides.update(library="OUTLIER_LIBRARIES", wavelengths="OUTLIER_LIBRARIES")
            outliers = training.outlier_set(outlier_paths, data, feedback=feedback)
        summary = cnn_training.train_and_report(
            data, model_path, report_path,
            preprocessing=PREPROCESSING[self.parameterAsEnum(parameters, "PREPROCESSING", context)][0],
            augment_copies=copies, snr=number("SNR"), epochs=integer("EPOCHS"), batch_size=integer("BATCH_SIZE"),
            learning_rate=number("LEARNING_RATE"), patience=integer("PATIENCE"),
            val_fraction=number("VALIDATION_FRACTION"), seed=integer("SEED"), feedback=feedback,
            refit=self.parameterAsBool(parameters, "REFIT", context), ensemble=integer("ENSEMBLE"),
            outliers=outliers, outlier_weight=number("OUTLIER_WEIGHT"), min_epochs=integer("MIN_EPOCHS"),
            validation_groups=grouping)
        feedback.info(f"Validation: CNN overall accuracy {summary['cnn']['overall_accuracy']:.4f} "
                      f"(kappa {summary['cnn']['kappa']:.4f}); SAM {summary['sam']['overall_accuracy']:.4f}.")
        return {"OUTPUT_MODEL": model_path, "OUTPUT_REPORT": report_path,
                "VALIDATION_ACCURACY": summary["cnn"]["overall_accuracy"], "KAPPA": summary["cnn"]["kappa"],
                "SAM_ACCURACY": summary["sam"]["overall_accuracy"]}
