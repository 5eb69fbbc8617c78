"""oremap:element_selection - rank elements by their association with known deposits (AUC, ZAUC)."""

import os

import numpy as np
from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
)

from ..core.geochemistry import geochem
from ..core.geochemistry import prospectivity_eval as pe
from ..core.geochemistry import element_selection
from ..core.geochemistry import survey_hygiene as sh
from ..core.geochemistry.distance_advice import TRADE_OFF
from ..core.geochemistry import grid_meaning
from .base import OreMapAlgorithm, require_fields
from .evaluate_prospectivity import (
    DISTANCE_HELP,
    add_distance_parameters,
    distance_crs_for_points,
    refuse_geographic_raster,
)
from .survey_input import (COVERAGE_HELP, FIELDS_HELP, SAMPLE_FIELD_HELP, read_survey, sample_field,
                           sample_field_parameter, survey_table, warn_unlocated)

BELOW = [("half", "Half the detection limit"), ("limit", "The detection limit"), ("nan", "Missing (left out)")]
TRANSFORMS = [("none", "None"), ("log10", "log10 (same AUCs as none; zeros and negatives left out)"),
              ("clr", "Centred log-ratio over the chosen elements")]
COORDINATE_NAMES = {"x", "y", "z", "lon", "lat", "long", "longitude", "latitude", "easting", "northing", "fid",
                    "id", "objectid"}


def default_fields(source):
    """Numeric fields that name an element (by unit anywhere in the name, or symbol); without any, every numeric
    field but coordinates/ids. By name only: :func:`survey_input.survey_table` adds the geometry and coverage rules."""
    numeric = [f.name() for f in source.fields() if f.isNumeric()]
    elements = [n for n in numeric if sh.parse_column(n).element is not None]
    return elements or [n for n in numeric if n.strip().lower() not in COORDINATE_NAMES
                        and not sh.is_coordinate_name(n) and not sh.is_identifier_name(n)]


class ElementSelection(OreMapAlgorithm):
    NAME = "element_selection"
    DISPLAY_NAME = "Element selection by AUC and ZAUC"
    GROUP = "geochemistry"
    TAGS = "auc,zauc,roc,element,pathfinder,geochemistry,deposits,feature selection,stream sediment"
    HELP = (
        "Ranks the elements of a geochemical survey by how well their concentrations separate samples near known "
        "deposits (positives) from samples far from any (negatives): for each element the ROC-AUC, its standard "
        "error after Hanley & McNeil (1982) and ZAUC = (AUC - 0.5) / SE. Elements whose ZAUC reaches the threshold "
        "are selected, if the rank test of no association (Mann-Whitney, its z in the table) reaches it too: the "
        "ZAUC of a perfect split is infinite however few the samples. Elements with AUC below 0.5 (lower near "
        "deposits) are reported as negatively associated and not selected unless two-sided selection is on.\n\n"
        "Give sample points with element fields, or a raster stack with one band per element (band descriptions "
        "as names). For points, missing codes, values below detection (stored as minus the limit) and zeros "
        "(missing by default: 'not analysed' in survey compilations) are handled first; a raster's values are used "
        "as they are, nodata left out. The selected names come out as a ';'-separated text for the next steps of a "
        "model.\n\n"
        "Neighbouring samples are not independent, so ZAUC overstates significance: use it to rank elements. On a "
        "raster every cell counts as a sample, so ZAUC grows with finer cells (the same grid at half the cell size "
        "has about twice the ZAUC); compare AUCs across grids. Points "
        "in a geographic CRS, or in a projected one in feet, are measured in the UTM zone of their centroid; a "
        "raster must be in a projected CRS (in metres or feet: distances are metres either way).\n\n"
        "Distances: when the positive radius or the negative distance leave fewer than 2 positives or negatives "
        "(a prospect-scale survey near known sites, a sparse regional one), the error gives values that work, "
        "from the sample spacing and the samples' distances to the deposits. " + TRADE_OFF)
    PARAM_HELP = {
        "INPUT": "Raster stack: one band per element, band descriptions as element names, projected CRS. Leave "
                 "empty for points.",
        "POINTS": "Instead of a raster: geochemical sample points with one numeric field per element.",
        "FIELDS": FIELDS_HELP,
        "SAMPLE_FIELD": SAMPLE_FIELD_HELP,
        "COVERAGE": COVERAGE_HELP,
        **DISTANCE_HELP,
        "BELOW_DETECTION": "Sample points: replacement of values below detection (stored as minus the detection "
                           "limit). A raster's values are used as they are (nodata left out): a gridded "
                           "log-concentration is negative wherever the concentration is below 1.",
        "MISSING": "Sample points: code of a missing value (exact match), e.g. -9999.",
        "ZEROS": "Sample points: " + geochem.ZEROS_HELP,
        "TRANSFORM": "Transform before the AUC. AUC depends only on the order of an element's values, so log10 gives "
                     "the same AUCs as none (values still zero or negative are left out); the centred log-ratio "
                     "over the chosen elements changes them (samples missing any chosen element are left out).",
        "THRESHOLD": "ZAUC (and rank-test z) at which an element is selected (2.58: 1 % two-sided; 1.96: 5 %).",
        "TWO_SIDED": "Also select elements with ZAUC at or below minus the threshold (lower near deposits).",
        "ALLOW_NONE": "When no element reaches the threshold: finish with an empty selection and the report, instead "
                      "of stopping. Off by default: an empty SELECTED passed on in a Graphical Modeler chain is read "
                      "by IDW and the VAE as 'no element chosen', i.e. every element of the survey.",
        "SEED": "For a raster: seed of the random sample of negative pixels.",
    }
    OUTPUT_HELP = {
        "OUTPUT_HTML": "HTML report: selected elements, the table of AUC, SE and ZAUC per element, ZAUC bars. A "
                       "temporary file when not given.",
        "OUTPUT_CSV": "CSV table: element, auc, se, zauc, z_null (the rank test's z), selected, direction, n_pos, "
                      "n_neg, sorted by ZAUC.",
        "SELECTED": "Names of the selected elements (field or band names), ';' separated, highest ZAUC first.",
        "N_SELECTED": "Number of selected elements.",
    }
    REFERENCES = [
        "Hanley, J. A. and McNeil, B. J. (1982). The meaning and use of the area under a receiver operating "
        "characteristic (ROC) curve. Radiology 143, 29-36.",
        "Nykänen, V., Lahti, I., Niiranen, T. and Korhonen, K. (2015). Receiver operating characteristics (ROC) as "
        "validation tool for prospectivity models - a magmatic Ni-Cu case study from the Central Lapland "
        "Greenstone Belt, Northern Finland. Ore Geology Reviews 71, 853-860.",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "raster": "INPUT", "deposits": "DEPOSITS", "positive_radius": "POSITIVE_RADIUS",
        "negative_min_distance": "NEGATIVE_MIN_DISTANCE", "below_detection": "BELOW_DETECTION",
        "transform": "TRANSFORM", "names": "FIELDS", "values": "FIELDS", "zeros": "ZEROS",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterRasterLayer("INPUT", self.tr("Element raster stack"), optional=True))
        self._add(QgsProcessingParameterFeatureSource("POINTS", self.tr("Sample points (instead of a raster)"),
                                                      [QgsProcessing.TypeVectorPoint], optional=True))
        self._add(QgsProcessingParameterField("FIELDS", self.tr("Element fields (empty = by unit and coverage)"),
                                              parentLayerParameterName="POINTS",
                                              type=QgsProcessingParameterField.Numeric, allowMultiple=True,
                                              optional=True))
        sample_field_parameter(self)
        self.add_number("COVERAGE", "Default elements: measured in at least (% of samples)",
                        100 * sh.DEFAULT_COVERAGE, 0.0, 100.0, advanced=True)
        add_distance_parameters(self)
        self.add_enum("BELOW_DETECTION", "Values below detection", [label for _, label in BELOW])
        self.add_number("MISSING", "Missing-value code", -9999.0, None, advanced=True)
        self._add(QgsProcessingParameterEnum("ZEROS", self.tr("Values of exactly 0"),
                                             options=[label for _, label in geochem.ZERO_CHOICES],
                                             defaultValue=0), advanced=True)
        self.add_enum("TRANSFORM", "Transform", [label for _, label in TRANSFORMS])
        self.add_number("THRESHOLD", "ZAUC threshold", pe.DEFAULT_ZAUC_THRESHOLD, 0.0)
        self._add(QgsProcessingParameterBoolean("TWO_SIDED", self.tr("Also select negatively associated elements"),
                                                defaultValue=False), advanced=True)
        self.add_number("SEED", "Random seed (raster negatives)", 0, 0, integer=True, advanced=True)
        self._add(QgsProcessingParameterBoolean("ALLOW_NONE", self.tr("Finish without a selection (report only)"),
                                                defaultValue=False), advanced=True)
        self.add_report_output("OUTPUT_HTML", "Element selection report")
        self.add_file_output("OUTPUT_CSV", "Element table", "CSV files (*.csv)", optional=True)
        self.add_value_output("SELECTED", "Selected elements", kind="string")
        self.add_value_output("N_SELECTED", "Number of selected elements")

    def process(self, parameters, context, feedback):
        has_raster = parameters.get("INPUT") not in (None, "")
        has_points = parameters.get("POINTS") not in (None, "")
        if has_raster == has_points:
            raise self.fail("INPUT", "Give either an element raster stack or sample points." if not has_raster else
                            "Both a raster stack and sample points were given.",
                            "Choose one of them and leave the other empty.")
        radius = self.parameterAsDouble(parameters, "POSITIVE_RADIUS", context)
        min_distance = self.parameterAsDouble(parameters, "NEGATIVE_MIN_DISTANCE", context)
        threshold = self.parameterAsDouble(parameters, "THRESHOLD", context)
        options = dict(
            below=BELOW[self.parameterAsEnum(parameters, "BELOW_DETECTION", context)][0],
            missing=self.parameterAsDouble(parameters, "MISSING", context),
            transform=TRANSFORMS[self.parameterAsEnum(parameters, "TRANSFORM", context)][0],
            threshold=threshold, two_sided=self.parameterAsBool(parameters, "TWO_SIDED", context),
            zeros=geochem.ZERO_CHOICES[self.parameterAsEnum(parameters, "ZEROS", context)][0])
        html_path = self.output_path(parameters, "OUTPUT_HTML", context, feedback)
        csv_path = self.output_path(parameters, "OUTPUT_CSV", context, feedback)
        survey_notes = []   # what the reading of sample points said (already logged): first in the report
        if has_raster:
            path, layer = self.raster_path(parameters, "INPUT", context, require_crs=True)
            refuse_geographic_raster(self, "INPUT", layer)
            crs = layer.crs()
            deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback)
            # raster values are used as they are (no below-detection step); no second log10 of a log10 grid
            _, options["transform"], found = grid_meaning.adapt_preprocessing(
                grid_meaning.read_meaning(path), "none", options["transform"])
            for line in found:
                feedback.info(line)
            rows, notes, scan = element_selection.select_elements_raster(
                path, deposits, radius, min_distance,
                seed=self.parameterAsInt(parameters, "SEED", context), feedback=feedback,
                memory_mb=self.memory_mb(), **options)
            subject = f"Element raster: {path}"
            feedback.info(f"{scan['n_positive']} positive pixels, {scan['negatives'].shape[0]} negative pixels.")
        else:
            source = self.parameterAsSource(parameters, "POINTS", context)
            if source is not None and source.featureCount() == 0:   # a numpy reshape error further on
                raise self.empty_layer(parameters, "POINTS", context, "The layer has no features.",
                                       "Choose a layer of sample points.")
            chosen = self.field_names(parameters, "FIELDS", context)
            key_field = sample_field(self, parameters, context, source)
            crs = distance_crs_for_points(self, source, context, feedback)
            if chosen:
                fields = chosen
                require_fields(self, source, fields, numeric=True)
                feedback.info(f"{len(fields)} element fields: " + ", ".join(fields[:20])
                              + (" ..." if len(fields) > 20 else ""))
                _, xs, ys, _, _, matrix, _, survey_notes = read_survey(
                    self, source, context, crs, fields, options["missing"], feedback, (0.0, 50.0),
                    key_field=key_field)
                warn_unlocated(xs, ys, feedback)
            else:  # survey hygiene: elements by unit, never coordinates, oxides merged, enough coverage
                _, xs, ys, fields, matrix, _, survey_notes = survey_table(
                    self, source, context, crs, [], self.parameterAsDouble(parameters, "COVERAGE", context) / 100.0,
                    missing=options["missing"], zeros=options["zeros"], feedback=feedback, share=(0.0, 50.0),
                    key_field=key_field)
            deposits = self.deposit_points(parameters, "DEPOSITS", context, crs, feedback)
            feedback.check()
            feedback.progress(60)
            rows, notes, _ = element_selection.select_elements_points(matrix, fields, xs, ys, deposits, radius,
                                                                      min_distance, feedback,
                                                                      sample_ids=key_field is not None, **options)
            subject = f"Sample points: {self.source_label(parameters, 'POINTS', context, source)}"
        for note in notes:
            feedback.info(note)
        selected = [r["element"] for r in rows if r["selected"]]
        if not selected and not self.parameterAsBool(parameters, "ALLOW_NONE", context):
            # an empty SELECTED given to IDW's or the VAE's element fields in a model means "every element"
            self._refuse_none_selected(rows, threshold)
        feedback.info(f"Selected ({len(selected)}): " + (", ".join(selected) or "none"))
        units = f"distances in {crs.authid()}" if crs.isValid() else "distances in layer units"
        title = "Element selection" + (f" of {os.path.basename(path)}" if has_raster else "")
        feedback.check()
        feedback.progress(90)
        element_selection.write_element_selection_outputs(
            rows, title, html_path, csv_path, threshold=threshold, notes=survey_notes + list(notes),
            subtitle=f"{subject}; positive radius {radius:g} m, negatives at least {min_distance:g} m from deposits "
                     f"({units}).")
        feedback.progress(100)
        out = {"OUTPUT_HTML": html_path, "SELECTED": ";".join(selected), "N_SELECTED": len(selected)}
        if csv_path:
            out["OUTPUT_CSV"] = csv_path
        return out

    def _refuse_none_selected(self, rows, threshold):
        """No element passes: refused, naming the best elements and the threshold that would select the first.
        An empty list would pass on as "no element chosen", which the next algorithm of a Graphical Modeler chain
        (IDW, VAE) reads as every element of the survey."""
        scored = [r for r in rows if np.isfinite(r["auc"])]
        best = ", ".join(f"{r['element']} ZAUC {r['zauc']:.2f}, rank-test z {r['z_null']:.2f}" for r in scored[:3])
        first = scored[0] if scored else None
        # the threshold that would select the first (positively associated) element; none for a depleted one
        reach = min(first["zauc"], first["z_null"]) if first is not None else float("nan")
        fix = (f"Lower the threshold to {np.floor(reach * 100) / 100:g} to select {first['element']} (a weaker "
               "association), or give more deposits." if np.isfinite(reach) and reach > 0 else
               "Give more deposits, or check the positive radius and the negative distance.") + (
            " For the report alone, tick 'Finish without a selection' (ALLOW_NONE).")
        raise self.fail("THRESHOLD", f"No element reaches the threshold {threshold:g} (ZAUC and rank-test z)"
                                     + (f"; the best: {best}" if best else "") + ". An empty selection would pass "
                                     "on as 'no element chosen', which IDW or the VAE read as every element.", fix)

