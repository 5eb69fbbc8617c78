"""oremap:classify_spectral_cnn - per-pixel mineral classification with a 1D CNN (ONNX)."""

import os

from qgis.core import QgsProcessingParameterBoolean, QgsProcessingParameterFile

from ..core.hyperspectral import mapping
from ..core.engine.bundled import bundled_models, unusable_reason
from .base import OreMapAlgorithm
from . import styles

TASK = "spectral_classification"


#: The method both spectral-CNN algorithms follow, and the published source of its Apliki spectra.
DEEPGEOMAP_REFERENCES = [
    "DeepGeoMap: a spectrally focused 1D CNN trained on geochemically validated laboratory spectra for mineral "
    "mapping of hyperspectral mine-face scans (Apliki Cu-Au-pyrite mine, Cyprus, 400 bands: 98.83 % overall "
    "accuracy, against 85.13 % for SAM and 81.39 % for binary feature fitting). Figures as reported for the "
    "method; we found no publication record to cite it in full.",
    "Koerting, F. et al. (2021). A solar optical hyperspectral library of rare-earth-bearing minerals, rare-earth "
    "oxide powders, copper-bearing minerals and Apliki mine surface samples. Earth System Science Data 13, "
    "923-942, doi:10.5194/essd-13-923-2021 (geochemically validated spectra of the Apliki mine).",
]


class ClassifySpectralCnn(OreMapAlgorithm):
    NAME = "classify_spectral_cnn"
    DISPLAY_NAME = "Classify minerals with a spectral CNN"
    GROUP = "hyperspectral"
    REQUIRES = ("onnx", "onnxruntime")
    TAGS = "cnn,deep learning,deepgeomap,onnx,mineral map,classification,hyperspectral"
    HELP = (
        "Classifies every pixel of a hyperspectral raster with a 1D convolutional neural network over the "
        "spectrum (after DeepGeoMap), stored as an OreMap ONNX model: a bundled one or one trained with "
        "'Train a spectral CNN'.\n\n"
        "The model knows the wavelengths it was trained on. When the raster's bands differ (another sensor, "
        "another band count), its good bands are resampled to the model's wavelengths and the log says so; a "
        "raster that does not cover the model's range is refused. Inference runs through onnxruntime, block "
        "by block, so scenes larger than memory work.\n\n"
        "A pixel whose spectrum does not look like the training spectra of the class the network gives it (its "
        "spectral angle to the nearest training sample of that class exceeds the class's threshold in any of "
        "the model's views of the spectrum: the network's preprocessed input and the absorption depth at "
        "1900 nm and beyond; thresholds stored in the model and shown in its card) is left "
        "unclassified, however "
        "confident the network is: a network forced to choose among its classes is otherwise confidently wrong "
        "on minerals it never saw. Models made by earlier OreMap versions carry no such check (the log says so).")
    PARAM_HELP = {
        "INPUT": "Hyperspectral reflectance raster with band wavelengths in its metadata (or under the advanced "
                 "wavelength parameter).",
        "MODEL": "A bundled model, or 'Model file' to use the file below. The list is the same on every "
                 "machine (MODEL=0 is always the first bundled model); a model that cannot run here says why "
                 "when it is chosen.",
        "MODEL_FILE": "An OreMap .onnx model file, used when 'Model file' is chosen above (or when a script "
                      "gives no MODEL). Given while a bundled model is chosen, the run stops and asks which one "
                      "you mean (in the Graphical Modeler: set Model to 'Model file' when this comes from a "
                      "training step).",
        "MIN_CONFIDENCE": "Pixels whose highest class probability is below this value are unclassified "
                          "(class 0). 0 = keep every pixel's best class.",
        "THREADS": "Threads onnxruntime may use; 0 = all cores.",
        "OOD_CHECK": "Leave pixels unlike the training spectra of their class unclassified (the model's "
                     "out-of-distribution check, see above). Off: every pixel keeps its best class (the "
                     "probabilities and confidence are the same either way).",
    }
    OUTPUT_HELP = {
        "OUTPUT_CLASSES": "Class raster with the model's class names and colours; 0 = unclassified, 255 = nodata.",
        "OUTPUT_PROBABILITIES": "Optional: one band per class with its probability (band names P(class)).",
        "OUTPUT_CONFIDENCE": "Optional: the highest class probability per pixel.",
        "VALID_PIXELS": "Number of valid (not nodata) pixels classified.",
        "RESAMPLED": "True when the raster's bands were resampled to the model's wavelengths.",
        "MODEL_USED": "Path of the model file that was used (a bundled one or your own).",
        "OUT_OF_DISTRIBUTION": "Pixels left unclassified by the out-of-distribution check.",
    }
    REFERENCES = [
        *DEEPGEOMAP_REFERENCES,
        "Kokaly, R. F. et al. (2017). USGS Spectral Library Version 7. USGS Data Series 1035.",
    ]

    def models(self):
        return bundled_models(TASK)

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input()
        options = [title for title, _ in self.models()] + ["Model file"]
        self.add_enum("MODEL", "Model", options, default=0)
        self._add(QgsProcessingParameterFile("MODEL_FILE", self.tr("Model file"), extension="onnx", optional=True))
        self.add_number("MIN_CONFIDENCE", "Minimum confidence (0-1)", 0.0, 0.0, 1.0)
        self.add_number("THREADS", "Threads (0 = all)", 0, 0, integer=True, advanced=True)
        self._add(QgsProcessingParameterBoolean("OOD_CHECK", self.tr("Leave pixels unlike the training data "
                                                                     "unclassified"), defaultValue=True),
                  advanced=True)
        self.add_band_parameters()
        self.add_raster_output("OUTPUT_CLASSES", "Mineral classes")
        self.add_raster_output("OUTPUT_PROBABILITIES", "Class probabilities", optional=True)
        self.add_raster_output("OUTPUT_CONFIDENCE", "Confidence", optional=True)
        self.add_value_output("VALID_PIXELS", "Pixels classified (valid pixels)")
        self.add_value_output("RESAMPLED", "Bands resampled to the model", kind="boolean")
        self.add_value_output("MODEL_USED", "Model file used", kind="string")
        self.add_value_output("OUT_OF_DISTRIBUTION", "Pixels unlike the training data (unclassified)")

    def model_path(self, parameters, context):
        """The model file: the bundled model chosen under MODEL, or MODEL_FILE when 'Model file' is chosen.

        A script that gives MODEL_FILE without MODEL uses the file. A file given while a bundled model is
        chosen is refused: in the Graphical Modeler, a model file wired from a training step with Model left at
        its default ran the bundled model with only a warning; in the dialog it is a file remembered from an
        earlier run, which the message says to clear.
        """
        models = self.models()
        path = self.parameterAsFile(parameters, "MODEL_FILE", context)
        if parameters.get("MODEL") is None:
            choice = len(models) if path else 0
        else:
            choice = self.parameterAsEnum(parameters, "MODEL", context)
        if choice < len(models):
            if path:
                raise self.fail("MODEL_FILE", f"A model file ({path}) is given while the bundled model "
                                f"'{models[choice][0]}' is chosen under Model.",
                                "Choose 'Model file' under Model to use the file (in the Graphical Modeler too, "
                                "when the file comes from another step), or clear the file to use the bundled "
                                "model.")
            reason = unusable_reason(models[choice][1])
            if reason:
                raise self.fail("MODEL", f"The bundled model '{models[choice][0]}' cannot be used here.", reason)
            return models[choice][1]
        if path:
            return path
        raise self.fail("MODEL_FILE", "No model file was given.", "Choose an OreMap .onnx model file.")

    def process(self, parameters, context, feedback):
        raster, _ = self.raster_path(parameters, "INPUT", context)
        model_path = self.model_path(parameters, context)
        wavelengths, nodata, scale = self.band_parameters(parameters, context)
        feedback.info(f"Model file: {model_path}")
        from ..core.engine.model_format import read_model_info

        band_info = None
        if read_model_info(model_path).wavelengths:  # a model without wavelengths reads all bands
            band_info = mapping.image_band_info(raster, wavelengths, bad_bands=self.bad_bands(parameters, context),
                                                nodata=nodata, scale=scale, feedback=feedback)
        outputs = {name: self.output_path(parameters, name, context, feedback)
                   for name in ("OUTPUT_CLASSES", "OUTPUT_PROBABILITIES", "OUTPUT_CONFIDENCE")}
        stats = mapping.cnn_classify_map(
            raster, model_path, outputs["OUTPUT_CLASSES"], outputs["OUTPUT_PROBABILITIES"],
            outputs["OUTPUT_CONFIDENCE"],
            min_confidence=self.parameterAsDouble(parameters, "MIN_CONFIDENCE", context) or None,
            threads=self.parameterAsInt(parameters, "THREADS", context) or None, band_info=band_info,
            scale=scale, nodata=nodata, memory_mb=self.memory_mb(), feedback=feedback,
            ood=self.parameterAsBool(parameters, "OOD_CHECK", context))
        for name, count in stats["class_counts"].items():
            if count:
                feedback.info(f"  {name}: {count} pixels")
        self.style_output(context, outputs["OUTPUT_CLASSES"], styles.classes(stats["legend"]))
        results = {"OUTPUT_CLASSES": outputs["OUTPUT_CLASSES"], "VALID_PIXELS": stats["valid_pixels"],
                   "RESAMPLED": stats["resampled"], "MODEL_USED": os.path.abspath(model_path),
                   "OUT_OF_DISTRIBUTION": stats["out_of_distribution"]}
        for name in ("OUTPUT_PROBABILITIES", "OUTPUT_CONFIDENCE"):
            if outputs[name]:
                self.style_output(context, outputs[name], styles.unit_ramp())
                results[name] = outputs[name]
        return results
