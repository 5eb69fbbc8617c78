"""oremap:accuracy_assessment - confusion matrix, overall accuracy, kappa and F1 of any class raster."""

import os

from qgis.core import QgsProcessing, QgsProcessingParameterFeatureSource, QgsProcessingParameterField

from ..core.engine import accuracy
from .base import OreMapAlgorithm


class AccuracyAssessment(OreMapAlgorithm):
    NAME = "accuracy_assessment"
    DISPLAY_NAME = "Accuracy assessment of a class map"
    GROUP = "evaluation"
    TAGS = "accuracy,confusion matrix,kappa,f1,validation,classification"
    HELP = (
        "Compares a class raster with reference data and reports the confusion matrix, overall accuracy, "
        "Cohen's kappa and, per class, precision (user's accuracy), recall (producer's accuracy) and F1, as an "
        "HTML report and a CSV table.\n\n"
        "Reference points take the pixel they fall in; reference polygons take every pixel whose centre lies "
        "inside. Reference classes are matched to the raster's classes by name first (the class names an "
        "OreMap class raster carries; a reference 'kaolinite' matches 'Kaolinite CM9 ...' when unambiguous; a "
        "number matches the class named with that number, so a field holding 0-11 matches a model trained on "
        "it). Integers are taken as class codes only when none of them is a class name (e.g. a plain class "
        "raster whose classes are 'Class 1', 'Class 2', ...). The log says which rule applied and how many "
        "reference features matched no class.\n\n"
        "The log warns when fewer than half of the reference features could be used, or when the overall "
        "accuracy is far below what the model reported on its own validation data (class maps of the spectral "
        "CNN carry that figure), with the likely cause.")
    PARAM_HELP = {
        "INPUT": "Class raster: any single-band integer raster; OreMap class rasters carry their class names.",
        "REFERENCE": "Points or polygons with the true class, in any CRS (transformed to the raster's).",
        "CLASS_FIELD": "Field of the reference layer holding the class name (or, for a raster without class "
                       "names, the class code).",
    }
    OUTPUT_HELP = {
        "OUTPUT_HTML": "HTML report: summary, per-class table and the confusion matrix as a figure.",
        "OUTPUT_CSV": "CSV table: the confusion matrix (reference in rows) and per-class metrics.",
        "OVERALL_ACCURACY": "Share of reference pixels whose map class is right (0-1).",
        "KAPPA": "Cohen's kappa: agreement beyond chance (1 = perfect, 0 = chance level).",
    }
    REFERENCES = [
        "Congalton, R. G. (1991). A review of assessing the accuracy of classifications of remotely sensed "
        "data. Remote Sensing of Environment 37, 35-46.",
        "Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and Psychological "
        "Measurement 20, 37-46.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input("INPUT", "Class raster")
        self._add(QgsProcessingParameterFeatureSource(
            "REFERENCE", self.tr("Reference points or polygons"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon]))
        self._add(QgsProcessingParameterField("CLASS_FIELD", self.tr("Reference class field"),
                                              parentLayerParameterName="REFERENCE"))
        self.add_report_output("OUTPUT_HTML", "Accuracy report")
        self.add_file_output("OUTPUT_CSV", "Accuracy table", "CSV files (*.csv)", optional=True)
        self.add_value_output("OVERALL_ACCURACY", "Overall accuracy")
        self.add_value_output("KAPPA", "Cohen's kappa")

    def process(self, parameters, context, feedback):
        raster, layer = self.raster_path(parameters, "INPUT", context)
        geometries, labels = self.labelled_geometries(parameters, "REFERENCE", "CLASS_FIELD", context, layer.crs(),
                                                      feedback)
        html_path = self.output_path(parameters, "OUTPUT_HTML", context, feedback)
        csv_path = self.output_path(parameters, "OUTPUT_CSV", context, feedback)
        summary = accuracy.assess_class_raster(raster, geometries, labels, feedback=feedback)
        title = f"Accuracy of {os.path.basename(raster)}"
        accuracy.write_accuracy_outputs(summary, title, html_path, csv_path)
        results = {"OUTPUT_HTML": html_path, "OVERALL_ACCURACY": summary["overall_accuracy"],
                   "KAPPA": summary["kappa"]}
        if csv_path:
            results["OUTPUT_CSV"] = csv_path
        return results
