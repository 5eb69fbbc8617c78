#!/usr/bin/env python3
"""Build test/data/sam_class_report.model3: a Graphical Modeler model chaining OreMap with QGIS.

Inputs: a hyperspectral raster, a spectral library, spectra names. Steps: oremap:sam_classify,
then native:rasterlayeruniquevaluesreport on its class raster. Outputs: the class raster and a
table of pixel counts per class. Run with the Makefile environment (QGIS_PLUGINPATH etc.).
"""

import os
import sys

from qgis.core import (
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    model = QgsProcessingModelAlgorithm("SAM class report", "OreMap examples")
    inputs = [
        QgsProcessingParameterRasterLayer("cube", "Hyperspectral raster"),
        QgsProcessingParameterFile("library", "Spectral library"),
        QgsProcessingParameterString("spectra", "Spectra to use", optional=True),
    ]
    for definition in inputs:
        component = QgsProcessingModelParameter(definition.name())
        model.addModelParameter(definition, component)

    sam = QgsProcessingModelChildAlgorithm("oremap:sam_classify")
    sam.setChildId("sam")
    sam.setDescription("Spectral Angle Mapper")
    sam.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("cube")])
    sam.addParameterSources("LIBRARY", [QgsProcessingModelChildParameterSource.fromModelParameter("library")])
    sam.addParameterSources("SPECTRA", [QgsProcessingModelChildParameterSource.fromModelParameter("spectra")])
    sam.addParameterSources("METHOD", [QgsProcessingModelChildParameterSource.fromStaticValue(0)])
    sam.addParameterSources("THRESHOLD", [QgsProcessingModelChildParameterSource.fromStaticValue(0.0)])
    sam.addParameterSources("SCALE", [QgsProcessingModelChildParameterSource.fromStaticValue(0.0)])
    out = QgsProcessingModelOutput("classes", "Class raster")
    out.setChildOutputName("OUTPUT_CLASSES")
    out.setChildId("sam")
    sam.setModelOutputs({"classes": out})
    model.addChildAlgorithm(sam)

    report = QgsProcessingModelChildAlgorithm("native:rasterlayeruniquevaluesreport")
    report.setChildId("report")
    report.setDescription("Pixels per class")
    report.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("sam", "OUTPUT_CLASSES")])
    report.addParameterSources("BAND", [QgsProcessingModelChildParameterSource.fromStaticValue(1)])
    table = QgsProcessingModelOutput("class_counts", "Pixels per class")
    table.setChildOutputName("OUTPUT_TABLE")
    table.setChildId("report")
    report.setModelOutputs({"class_counts": table})
    report.setDependencies([])
    model.addChildAlgorithm(report)
    model.updateDestinationParameters()
    return model


def main():
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    sys.path.insert(0, os.path.join(ROOT, ".build", "plugins"))
    from oremap.processing_provider.provider import OreMapProvider

    QgsApplication.processingRegistry().addProvider(OreMapProvider())
    model = build()
    target = os.path.join(ROOT, "test", "data", "sam_class_report.model3")
    assert model.toFile(target), "could not save the model"
    print(target, [d.name() for d in model.parameterDefinitions()])
    del model
    app.exitQgis()


if __name__ == "__main__":
    main()
