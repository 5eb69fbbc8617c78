"""oremap:prospectivity_map - probability of a deposit per cell from a prospectivity ResNet (ONNX)."""

import os

from qgis.core import (
    NULL,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsWkbTypes,
)

from ..core.geochemistry import grid_meaning
from . import qt_compat as field_type
from .base import OreMapAlgorithm

MODES = [("grid", "Grid of cells (rows x columns)"), ("sliding", "Sliding window (every 'stride' cells)")]
FITS = [("centre", "Model window at the cell centre (training scale)"),
        ("resize", "Whole cell resampled to the model window")]


class ProspectivityMap(OreMapAlgorithm):
    NAME = "prospectivity_map"
    LONG_FIELDS = {"OUTPUT_CELLS": ("probability", "has_deposit")}
    DISPLAY_NAME = "Prospectivity map from a ResNet"
    GROUP = "geochemistry"
    REQUIRES = ("onnx", "onnxruntime")
    TAGS = "prospectivity,resnet,cnn,deep learning,geochemistry,targeting,target cells,probability,onnx"
    HELP = (
        "Scores an element stack with a model from 'Train a prospectivity ResNet on geochemical grids': the "
        "probability that a window looks like the surroundings of a known deposit.\n\n"
        "Grid mode cuts the raster into rows x columns cells (12 x 12 in the Pangxidong study) and scores one "
        "window per cell: by default the model's window centred on the cell, at the raster's own resolution "
        "(what the model was trained on; a cell larger than the window is judged on its centre); optionally "
        "the whole cell resampled to the window size (the model then sees another scale, which the log says). "
        "Sliding mode scores a window centred every 'stride' cells and gives its probability to that stride "
        "cell, streamed in bands of rows under the memory budget.\n\n"
        "The raster's bands are found by name (band descriptions) for each element of the model, in any order. "
        "Windows with too much nodata are not scored. The ranked target cells (polygons with their probability "
        "and rank, and whether a known deposit lies in them) are written to a vector layer.")
    PARAM_HELP = {
        "INPUT": "Element stack with a band named after each of the model's elements (as made for training).",
        "MODEL_FILE": "An OreMap prospectivity model (.onnx).",
        "MODE": "Grid of cells, or a sliding window.",
        "GRID_ROWS": "Grid mode: number of rows of cells.",
        "GRID_COLS": "Grid mode: number of columns of cells.",
        "STRIDE": "Sliding mode: distance between window centres in cells; each window's probability fills its "
                  "stride x stride cell. 0 = half a window.",
        "FIT": "Grid mode: score the model's window at each cell's centre (default, training scale), or the "
               "whole cell resampled (area mean) to the window size.",
        "DEPOSITS": "Optional known deposits (points, any CRS): the target-cell layer says which cells hold one.",
        "NODATA": "A value to treat as nodata in addition to the raster's own.",
        "THREADS": "Threads onnxruntime may use; 0 = all cores.",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 probability raster (0-1, nodata -9999): each cell's probability in all its pixels, "
                  "nodata where the stack is or where a window has too much nodata.",
        "OUTPUT_CELLS": "Polygon layer of the scored cells: id, row, col, probability, rank (1 = most "
                        "prospective) and has_deposit (yes/no; empty without a deposit layer); loads graduated "
                        "by probability (five classes of 0.2, magma colours).",
        "N_CELLS": "Number of cells scored.",
        "TOP_PROBABILITY": "Highest cell probability.",
        "DEPOSIT_CELLS": "Number of scored cells holding a known deposit (0 without a deposit layer).",
    }
    REFERENCES = [
        "He, K., Zhang, X., Ren, S. and Sun, J. (2016). Deep residual learning for image recognition. CVPR, "
        "770-778.",
        "Gao, L., Huang, Y., Zhang, X., Liu, Q. and Chen, Z. (2022). Prediction of prospecting target based on "
        "ResNet convolutional neural network. Applied Sciences 12(22), 11433 (Pangxidong district: the area cut "
        "into 12 x 12 windows, each mapped with its probability of ore).",
    ]
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "grid": "GRID_ROWS", "grid_cols": "GRID_COLS",
                       "stride": "STRIDE", "fit": "FIT", "output": "OUTPUT"}

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input("INPUT", "Element stack")
        self._add(QgsProcessingParameterFile("MODEL_FILE", self.tr("Prospectivity model"), extension="onnx"))
        self.add_enum("MODE", "Mode", [label for _, label in MODES])
        for name, label in (("GRID_ROWS", "Grid rows"), ("GRID_COLS", "Grid columns")):
            self.add_number(name, label, 12, 1, integer=True)
        self.add_number("STRIDE", "Stride in cells (sliding mode; 0 = half a window)", 0, 0, integer=True)
        self._add(QgsProcessingParameterFeatureSource("DEPOSITS", self.tr("Known deposits"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self._add(QgsProcessingParameterEnum("FIT", self.tr("Window of a grid cell"),
                                             options=[label for _, label in FITS], defaultValue=0), advanced=True)
        self.add_nodata_parameter()
        self.add_number("THREADS", "Threads (0 = all)", 0, 0, integer=True, advanced=True)
        self.add_raster_output("OUTPUT", "Probability of a deposit")
        self._add(QgsProcessingParameterFeatureSink("OUTPUT_CELLS", self.tr("Target cells"),
                                                    QgsProcessing.TypeVectorPolygon, optional=True,
                                                    createByDefault=True))
        self.add_value_output("N_CELLS", "Cells scored")
        self.add_value_output("TOP_PROBABILITY", "Highest cell probability")
        self.add_value_output("DEPOSIT_CELLS", "Scored cells holding a deposit")

    def process(self, parameters, context, feedback):
        from ..core.geochemistry.prospectivity_mapping import MAX_CELLS, prospectivity_map

        raster, layer = self.raster_path(parameters, "INPUT", context, require_crs=True)
        feedback.info(grid_meaning.describe(grid_meaning.read_meaning(raster)))  # z-scored as they are
        model = self.parameterAsFile(parameters, "MODEL_FILE", context)
        if not model:
            raise self.fail("MODEL_FILE", "No model file was given.", "Choose an OreMap prospectivity model (.onnx).")
        deposits = self.deposit_points(parameters, "DEPOSITS", context, layer.crs(), feedback, required=False)
        out_path = self.output_path(parameters, "OUTPUT", context, feedback)
        mode = MODES[self.parameterAsEnum(parameters, "MODE", context)][0]
        nodata = parameters.get("NODATA")
        nodata = None if nodata in (None, "") else self.parameterAsDouble(parameters, "NODATA", context)
        result = prospectivity_map(
            raster, model, out_path, mode=mode,
            grid=(self.parameterAsInt(parameters, "GRID_ROWS", context),
                  self.parameterAsInt(parameters, "GRID_COLS", context)),
            stride=self.parameterAsInt(parameters, "STRIDE", context) or None,
            fit=FITS[self.parameterAsEnum(parameters, "FIT", context)][0], deposits_xy=deposits, nodata=nodata,
            memory_mb=self.memory_mb(), threads=self.parameterAsInt(parameters, "THREADS", context) or None,
            max_cells=MAX_CELLS if parameters.get("OUTPUT_CELLS") not in (None, "") else 0, feedback=feedback)
        cells = result["cells"]
        feedback.info(f"{result['n_scored']} cells scored, {result['n_unscored']} left as nodata (too little data).")
        if deposits is not None and len(deposits):
            extent = layer.extent()
            inside = int(sum(extent.xMinimum() <= x <= extent.xMaximum() and extent.yMinimum() <= y <= extent.yMaximum()
                             for x, y in deposits))
            if inside == 0:   # DEPOSIT_CELLS 0 said nothing of why
                feedback.warning(f"None of the {len(deposits)} deposits lies on the raster: the target cells hold no "
                                 "deposit. Check that the deposit layer covers the same area (and its CRS).")
        self.style_output(context, out_path, {"kind": "ramp", "ramp": "Magma", "min": 0.0, "max": 1.0})
        outputs = {"OUTPUT": out_path, "N_CELLS": result["n_scored"], "TOP_PROBABILITY": result["top_probability"],
                   "DEPOSIT_CELLS": result["n_deposit_cells"] or 0}
        fields = QgsFields()
        for name, kind in (("id", field_type.INT), ("row", field_type.INT), ("col", field_type.INT),
                           ("probability", field_type.DOUBLE), ("rank", field_type.INT),
                           ("has_deposit", field_type.STRING)):
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT_CELLS", context, fields, QgsWkbTypes.Polygon,
                                          layer.crs())
        if sink is None:
            if not self.sink_skipped(parameters, "OUTPUT_CELLS", context):
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_CELLS"))
            return outputs
        for cell in sorted(cells, key=lambda c: c["rank"]):
            feedback.check()
            feature = QgsFeature(fields)
            ring = [QgsPointXY(x, y) for x, y in cell["polygon"]]
            feature.setGeometry(QgsGeometry.fromPolygonXY([ring + ring[:1]]))
            has = cell.get("has_deposit")
            feature.setAttributes([cell["id"], cell["row"], cell["col"], cell["probability"], cell["rank"],
                                   NULL if has is None else ("yes" if has else "no")])
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
        outputs["OUTPUT_CELLS"] = dest
        del sink   # closed: a FlatGeobuf is written only now, and its style needs the file
        self.style_output(context, dest, {"kind": "graduated", "field": "probability", "ramp": "Magma", "min": 0.0,
                                          "max": 1.0, "classes": 5, "geometry": "Polygon"})
        feedback.info(f"Model: {os.path.basename(model)}; top cell probability {outputs['TOP_PROBABILITY']:.3f}.")
        return outputs
