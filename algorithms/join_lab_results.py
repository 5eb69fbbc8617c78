"""oremap:join_lab_results - a laboratory's results file joined to the sample points by sample id."""

import math
import re

import numpy as np

from qgis.core import (
    NULL,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..core.engine.errors import OreMapError
from ..core.geochemistry import lab_qc, lab_results
from . import qt_compat as field_type
from .base import OreMapAlgorithm
from .survey_input import PROGRESS_EVERY

#: Suffix of an assay field whose name the point layer already uses.
CLASH_SUFFIX = "_lab"
#: Ids named in a log line at most.
SHOWN = 8


def _figure(value):
    """A measured or certified value for the log: four significant figures, never in exponent form (11100, 1.48,
    0.0045)."""
    return np.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")


def _shown(items):
    items = list(items)
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(f"'{i}'" for i in items[:SHOWN]) + more


class JoinLabResults(OreMapAlgorithm):
    NAME = "join_lab_results"
    DISPLAY_NAME = "Join laboratory results to sample points"
    GROUP = "geochemistry"
    TAGS = ("laboratory,lab,certificate,assay,results,csv,xlsx,ods,workbook,ALS,join,sample id,detection limit,LOR,"
            "header,coordinates,easting,northing,geochemistry,import")
    HELP = (
        "Joins a laboratory's results file (a certificate exported as CSV, or any table of assays by sample id) to "
        "the layer of sample points by sample id, and writes the points with one numeric field per assay, named as "
        "the geochemistry algorithms read element fields (Au_ppm, Cu_pct). The results file is read as laboratories "
        "write it, which a CSV layer cannot do: certificate lines above the table, a header of several rows "
        "(method codes such as Au-AA23 and ME-ICP61, element symbols, units, the lower limits of detection, in any "
        "order), semicolon- or tab-separated files with decimal commas, and Excel (.xlsx) or OpenDocument (.ods) "
        "workbooks as the laboratory sends them (a cell formatted as a percentage reads as the per cent it shows, "
        "a method code merged over several columns names each of them).\n\n"
        "Values below detection ('&lt;0.005') are written as minus the limit, the survey tables' convention that "
        "every OreMap geochemistry algorithm reads; a result below an unreported limit ('BDL') takes the limit of "
        "the file's detection-limit row when it has one; values over the upper limit ('&gt;10') are written as the "
        "limit (a lower bound, listed in the log with the other column of the element, such as an ore-grade "
        "re-assay, where there is one); words for no result (NSS, LNR, n.a., IS) are empty.\n\n"
        "Rows of the file without a sample point of their id (certified standards, blanks, samples not in the "
        "layer) are left out and listed in the log, which is how the laboratory's quality-control rows stay out "
        "of the survey; a blank that assays above 5 times the limit of detection (contamination) is warned of, and "
        "the precision of duplicate pairs (NC001 and NC001D) is logged. A "
        "sample with several rows (a repeat, a field duplicate under the same id) is written "
        "once per row: give its id field as the Sample id field (SAMPLE_FIELD) of the geochemistry algorithms to "
        "count it once. Points without results are left out (the log counts them), or kept with empty assays. Ids "
        "match exactly, else ignoring case and spaces ('nc 003' is 'NC003').\n\n"
        "A file that carries its samples' coordinates (a soil survey exported with Easting and Northing, or "
        "Longitude and Latitude) needs no point layer: leave Sample points empty, give the CRS of eastings and "
        "northings, and each row is written at its coordinates; rows without them (standards, blanks) are left "
        "out and listed.")
    PARAM_HELP = {
        "RESULTS": "The laboratory's results file: CSV, semicolon-separated or tab-separated text, or an Excel "
                   "(.xlsx, .xlsm) or OpenDocument (.ods) workbook (an Excel 97-2003 .xls file: save it as .xlsx "
                   "first). One row per sample; the sample id in a column of its own.",
        "SHEET": "The workbook's sheet that holds the results: its name or its number (1 = first sheet). Empty: the "
                 "sheet that reads as the largest table of assays (the log names it and the others). Not used for a "
                 "text file.",
        "POINTS": "The sample points (their locations), with a field holding the sample ids the laboratory reports. "
                  "Empty: the results file carries its samples' coordinates itself (columns such as Easting and "
                  "Northing, X and Y, or Longitude and Latitude), and each row with both is written at them; rows "
                  "without coordinates (standards, blanks) are left out and listed.",
        "CRS": "Only without sample points: the coordinate reference system of the file's coordinates (e.g. the UTM "
               "or MGA zone of eastings and northings; a geographic CRS takes the longitude and latitude columns "
               "where the file has both kinds, a projected one the easting and northing columns). Empty: the "
               "longitude and latitude columns, in EPSG:4326 (WGS 84); eastings and northings, and columns named "
               "only X and Y, are refused until their CRS is given.",
        "POINT_ID": "The field of the points that holds the sample ids. Empty: the field whose values match the "
                    "most ids of the results file (the log names it).",
        "KEEP_POINTS": "Also write the sample points the file has no results for, with empty assays (samples sent "
                       "to the laboratory and not reported yet, or of another batch). Off: only the points with "
                       "results (the log counts the others).",
        "STANDARDS": "A table of the certified values of the reference materials inserted in the batch, to check "
                     "the laboratory's results for them: one row per standard and analyte, with columns Standard "
                     "(OREAS 504c; without it, every row is of the standard the file is named after), Element (Au, "
                     "Cu), Unit (ppm, ppb, %), Certified value and SD (one standard deviation), as the "
                     "certificates give them (CSV or a workbook). Rows of the results naming a standard (by id or "
                     "another cell, without regard to case, spaces and hyphens) are compared with every assay "
                     "column of each certified element: beyond 3 SD a standard fails (the batch's results for that "
                     "element are in doubt), beyond 2 SD the log warns. An element certified by several methods (a "
                     "Method column, or section rows such as 'Pb Fire Assay') is compared per method family (fire "
                     "assay, aqua regia, four acid, fusion) as the column's header names it. Empty: no check; the "
                     "log names the rows that look like standards.",
        "RESULT_ID": "The column of the results file that holds the sample ids: one of its header cells (e.g. "
                     "SAMPLE, Sample ID) or its number (1 = first column). Empty: the column that matches the most "
                     "ids of the points (the log names it).",
    }
    OUTPUT_HELP = {
        "OUTPUT": "The points with results: the point layer's fields, then one double field per assay column of the "
                  "file (Au_ppm, Au_ppm_GRA21, Cu_pct...; '_lab' appended to a name the layer already uses). One "
                  "feature per row of the file that matched a point.",
        "JOINED": "Rows of the results file written (matched to a point).",
        "UNMATCHED": "Rows of the results file without a point of their id (left out).",
        "STANDARDS_FAILED": "Results of certified reference materials more than 3 standard deviations from their "
                            "certified values (0 without STANDARDS).",
    }
    REFERENCES = [
        "Reimann, C., Filzmoser, P., Garrett, R. G. and Dutter, R. (2008). Statistical Data Analysis "
        "Explained: Applied Environmental Statistics with R. Wiley (values below detection, quality control).",
        "ALS Geochemistry. Schedule of Services and Fees (method codes such as Au-AA23 and ME-ICP61, limits of "
        "reporting).",
        "Thompson, M. and Howarth, R. J. (1978). A new approach to the estimation of analytical precision. Journal "
        "of Geochemical Exploration 9, 23-30 (precision from duplicate pairs).",
    ]
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "results": "RESULTS", "sheet": "SHEET",
                       "sample_field": "POINT_ID", "standards": "STANDARDS"}
    LONG_FIELDS = {"OUTPUT": ["assay fields such as Au_ppm_AA23 or Recvd_Wt_kg"]}

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterFile(
            "RESULTS", self.tr("Laboratory results file"),
            fileFilter="Results tables (*.csv *.CSV *.txt *.TXT *.tsv *.TSV *.xlsx *.XLSX *.xlsm *.ods *.ODS);;"
                       "All files (*.*)"))
        self._add(QgsProcessingParameterString(
            "SHEET", self.tr("Sheet of a workbook (empty = the largest table of assays)"), optional=True))
        self._add(QgsProcessingParameterFeatureSource(
            "POINTS", self.tr("Sample points (empty = the file's own coordinates)"), [QgsProcessing.TypeVectorPoint],
            optional=True))
        self._add(QgsProcessingParameterField(
            "POINT_ID", self.tr("Sample id field of the points (empty = the best match)"),
            parentLayerParameterName="POINTS", optional=True))
        self._add(QgsProcessingParameterString(
            "RESULT_ID", self.tr("Sample id column of the results file (empty = the best match)"), optional=True))
        self._add(QgsProcessingParameterCrs(
            "CRS", self.tr("CRS of the file's coordinates (without sample points; empty = longitude and latitude, "
                           "EPSG:4326)"), optional=True))
        self._add(QgsProcessingParameterBoolean(
            "KEEP_POINTS", self.tr("Keep sample points without results (assays empty)"), defaultValue=False))
        self._add(QgsProcessingParameterFile(
            "STANDARDS", self.tr("Certified values of the reference materials (optional, to check the standards)"),
            optional=True,
            fileFilter="Tables (*.csv *.CSV *.txt *.TXT *.tsv *.TSV *.xlsx *.XLSX *.xlsm *.ods *.ODS);;"
                       "All files (*.*)"))
        self._add(QgsProcessingParameterFeatureSink(
            "OUTPUT", self.tr("Samples with results"), QgsProcessing.TypeVectorPoint))
        self.add_value_output("JOINED", "Rows joined")
        self.add_value_output("UNMATCHED", "Rows without a point")
        self.add_value_output("STANDARDS_FAILED", "Standards outside 3 SD")

    # -- reading -----------------------------------------------------------------------------
    def _result_column(self, table, given):
        """The results file's id column named by RESULT_ID (a header cell, the whole label, or a number)."""
        text = (given or "").strip()
        if not text:
            return None
        names = list(table.attributes)
        if text.isdigit():
            index = int(text) - 1
            for name, j in table.attributes.items():
                if j == index:
                    return name
            assays = [c.name for c in table.assays if c.index == index]
            why = (f"Column {text} is an assay column ({assays[0]})." if assays
                   else f"The file has no column {text} with values.")
            raise self.fail("RESULT_ID", why, "Its columns other than assays: "
                            + ", ".join(f"'{n}'" for n in table.attributes) + " (or their numbers).")
        for name in names:
            cells = [c.strip().casefold() for c in name.split(" / ")]
            if text.casefold() == name.casefold() or text.casefold() in cells:
                return name
        assays = [c.name for c in table.assays if c.header.casefold() == text.casefold()
                  or text.casefold() in [p.strip().casefold() for p in c.header.split(" / ")]]
        why = f"'{text}' is an assay column ({assays[0]})." if assays else f"The file has no column '{text}'."
        raise self.fail("RESULT_ID", why, "Its columns other than assays: " + ", ".join(f"'{n}'" for n in names)
                        + " (or a column number), or leave it empty for the best match.")

    def _points(self, source, feedback):
        """The point features (attributes and geometry), read once."""
        features = []
        total = source.featureCount()
        for k, feature in enumerate(source.getFeatures(QgsFeatureRequest())):
            if k % PROGRESS_EVERY == 0:
                feedback.check()
                if total > 0:
                    feedback.progress(30.0 * k / total)
            features.append(feature)
        return features

    def _match(self, parameters, context, table, source, features, feedback):
        """``(point id field, results id column, point index of each row)``
        (:func:`core.geochemistry.lab_results.match_layer`)."""
        given_field = self.parameterAsString(parameters, "POINT_ID", context)
        given_column = self.parameterAsString(parameters, "RESULT_ID", context).strip()
        column = self._result_column(table, given_column)
        names = [given_field] if given_field else [f.name() for f in source.fields()]
        layer_ids = {}
        for name in names:
            index = source.fields().lookupField(name)
            if index < 0:
                raise self.fail("POINT_ID", f"The layer has no field '{name}'.", "Choose a field of the points.")
            values = (f.attributes()[index] for f in features)
            layer_ids[name] = [None if v == NULL else v for v in values]
        try:
            name, column, rows, twice = lab_results.match_layer(table, layer_ids, column)
        except lab_results.AmbiguousIds as exc:
            raise self.fail("POINT_ID", exc.message, "Choose the points' id field (POINT_ID) and the file's id "
                                                     "column (RESULT_ID).") from None
        except OreMapError:
            where = f"the field '{given_field}'" if given_field else "any field"
            column_text = f"column '{column}'" if column else "any column"
            raise self.fail("POINT_ID" if given_field else "POINTS",
                            f"No sample id of the results file ({column_text}) matches {where} of the points.",
                            "Choose the points of these samples and the field holding the ids the laboratory "
                            "reports; the file's columns other than assays are: "
                            + ", ".join(f"'{n}'" for n in table.attributes) + ".") from None
        if not given_field:
            feedback.info(f"Sample ids: the points' field '{name}' (the field that matches the most samples).")
        if not given_column:
            feedback.info(f"Sample ids of the results file: column '{column}'.")
        if twice:
            feedback.warning(f"{len(twice)} sample ids are used by several points ({_shown(twice)}): their results "
                             "go to the first point of each. Check the layer for duplicated ids.")
        return name, column, rows

    def _file_points(self, parameters, context, table, ids, feedback):
        """``(fields, crs, features, rows)`` of a results file that carries its samples' coordinates, without a point
        layer: a feature per row located by the file's coordinate pair
        (:func:`core.geochemistry.lab_results.coordinate_columns`) in CRS (without one, only a longitude and latitude
        pair, in EPSG:4326); rows without coordinates, at a placeholder or out of range are left out and listed
        (``ids``: each row's sample id, for the log)."""
        crs = self.parameterAsCrs(parameters, "CRS", context)
        given = crs.isValid()
        if given:
            kinds = ("geographic", "unknown") if crs.isGeographic() else ("projected", "unknown")
        else:
            kinds = ("geographic",)
        found = lab_results.coordinate_columns(table, kinds)
        named = lab_results.coordinate_kinds(table)
        if found is None:
            if not given and named:
                raise self.fail("CRS", "The results file's coordinates are eastings and northings, or X and Y, in a "
                                "reference system the file does not name.",
                                "Give their CRS (the UTM or MGA zone and datum of the survey; EPSG:4326 or the "
                                "survey's datum for longitudes and latitudes written as X and Y).")
            if set(named) & set(kinds):
                raise self.fail("RESULTS", "The results file's coordinate columns hold no coordinates that read: no "
                                "numbers, nor degrees, minutes and seconds (32°15'30\"S) or metres with their unit "
                                "(500000mE).", "Write the coordinates as plain numbers (decimal degrees, metres).")
            if given and named:
                system = "geographic" if crs.isGeographic() else "projected"
                kind = "longitude and latitude (or X and Y)" if crs.isGeographic() else \
                    "easting and northing (or X and Y)"
                raise self.fail("CRS", f"{crs.authid() or crs.description()} is a {system} reference system, and the "
                                f"results file has no {kind} columns holding numbers.",
                                "Give the reference system of the file's coordinates.")
            raise self.fail("POINTS", "No sample points were given, and the results file has no coordinate columns "
                            "(Easting and Northing, MGA_E and MGA_N, X and Y, Longitude and Latitude) holding numbers.",
                            "Choose the layer of sample points, or add the samples' coordinates to the file.")
        located = found.located()
        pair = f"'{found.x_column}', '{found.y_column}'"
        if found.out_of_range and len(found.out_of_range) >= len(located):
            i = found.out_of_range[0]
            raise self.fail("RESULTS", f"Most rows' coordinates ({pair}) lie beyond 180 degrees of longitude or 90 of "
                            f"latitude (e.g. {found.x[i]:g}, {found.y[i]:g}): the columns are swapped, or hold "
                            "eastings and northings, or longitudes from 0 to 360.",
                            "Correct the file's coordinate columns, or give the CRS of eastings and northings.")
        if not given:
            crs = QgsCoordinateReferenceSystem("EPSG:4326")
        if not crs.isGeographic():
            zone_column, zones = lab_results.zones(table, located)
            if len(zones) > 1:
                raise self.fail("CRS", f"The file's '{zone_column}' column holds {len(zones)} zones "
                                f"({', '.join(zones[:6])}): one projected CRS cannot place them all.",
                                "Split the file by zone and run each part with its zone's CRS.")
            crs_zone = re.search(r"zone\s+(\d+)", crs.description(), flags=re.IGNORECASE)
            file_zone = re.fullmatch(r"\D*(\d{1,2})\s*[A-Za-z]?", zones[0]) if zones else None
            if crs_zone and file_zone and int(crs_zone.group(1)) != int(file_zone.group(1)):
                raise self.fail("CRS", f"{crs.authid()} ({crs.description()}) is zone {crs_zone.group(1)}, and the "
                                f"file's '{zone_column}' column says zone {zones[0]}.",
                                f"Give the CRS of zone {file_zone.group(1)}, or correct the file's zone.")
        rows, features = [-1] * len(table.rows), []
        for k, i in enumerate(located):
            if k % PROGRESS_EVERY == 0:
                feedback.check()
            feature = QgsFeature()
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(found.x[i], found.y[i])))
            rows[i] = len(features)
            features.append(feature)
        feedback.info(f"Sample points: the file's own coordinates ({pair}), in {crs.authid() or crs.description()}"
                      + ("" if given else " (longitude and latitude, as no CRS was given)")
                      + f"; {len(located)} rows located." + (f" Not used: {', '.join(found.others)}."
                                                              if found.others else ""))
        if found.written:
            i = found.written[0]
            x_text, y_text = (table.attribute_values(c)[i] for c in (found.x_column, found.y_column))
            feedback.info(f"{len(found.written)} rows' coordinates are written "
                          + ("in degrees, minutes and seconds" if found.geographic else "with their unit")
                          + f", and read so (e.g. {ids[i] or table.place(i)}: '{x_text}', '{y_text}' as "
                          f"{found.x[i]:.6f}, {found.y[i]:.6f}).")
        for rows_out, why in ((found.placeholders, "coordinates that stand for none (0, 0 or a missing code such as "
                                                   "-9999)"),
                              (found.out_of_range, "a longitude or latitude out of range"),
                              ([i for i, r in enumerate(rows) if r < 0 and i not in found.placeholders
                                and i not in found.out_of_range], "no coordinates (standards, blanks, samples not "
                                                                  "located yet)")):
            if rows_out:
                feedback.warning(f"{len(rows_out)} rows of the results file have {why} and are left out: "
                                 + _shown(ids[i] or f"({table.place(i)})" for i in rows_out) + ".")
        ignored = [name for name in ("POINT_ID", "KEEP_POINTS")
                   if parameters.get(name) not in (None, "", False, NULL)]
        if ignored:
            feedback.warning(f"{' and '.join(ignored)} apply to sample points, and none were given: not used.")
        if not located:
            raise self.fail("RESULTS", f"No row of the results file has both coordinates ({pair}).",
                            "Fill in the samples' coordinates, or choose the sample points.")
        return QgsFields(), crs, features, rows


    # -- run ---------------------------------------------------------------------------------
    def process(self, parameters, context, feedback):
        path = self.parameterAsFile(parameters, "RESULTS", context)
        source = self.parameterAsSource(parameters, "POINTS", context)
        table = lab_results.read_lab_results(path, self.parameterAsString(parameters, "SHEET", context))
        standards = self.parameterAsFile(parameters, "STANDARDS", context)
        certified = lab_qc.read_certified_values(standards) if standards else None
        self._log_table(table, feedback)
        if source is None:   # the samples at the file's own coordinates; ids for the log: RESULT_ID's, else found
            ids = table.row_ids(self._result_column(table, self.parameterAsString(parameters, "RESULT_ID", context)))
            fields, crs, features, rows = self._file_points(parameters, context, table, ids, feedback)
            wkb, id_field, column, keep = QgsWkbTypes.Point, None, None, False
        else:
            features = self._points(source, feedback)
            if not features:
                raise self.fail("POINTS", "The layer has no features.", "Choose the layer of sample points.")
            id_field, column, rows = self._match(parameters, context, table, source, features, feedback)
            keep = self.parameterAsBool(parameters, "KEEP_POINTS", context)
            self._log_matches(table, column, rows, len(features), keep, feedback)
            ids = table.attribute_values(column)
            fields, crs, wkb = source.fields(), source.sourceCrs(), source.wkbType()
            if self.parameterAsCrs(parameters, "CRS", context).isValid():
                feedback.warning("CRS applies to the file's own coordinates, without sample points: not used (the "
                                 "output takes the points' CRS).")

        # the points' fields, but a GeoPackage's feature id: copied, a sample's second row (a repeat) clashed with the
        # first one's id in a GeoPackage output and was dropped; the output numbers its own features
        # (a field named fid that is no number, or holds the sample ids chosen, is kept, as fid_points)
        copied, out_fields = [], QgsFields()
        for i, f in enumerate(fields):
            if f.name().lower() == "fid":
                if f.isNumeric() and f.name() != id_field:
                    continue
                f = QgsField(f)
                f.setName("fid_points")
            copied.append(i)
            out_fields.append(f)
        # (a column named FID, as ArcGIS exports write, would clash with the GeoPackage's own feature id)
        kept = [table.attribute_column(name) for name in table.attributes if name != column]
        kept = [("fid_results" if name.lower() == "fid" else name, values) for name, values in kept]
        best = {r.element: r for r in lab_results.reassays(table)}
        columns, wanted = [], []
        for assay in table.assays:   # an element's best values before its columns (the one the algorithms read)
            reassay = best.pop(assay.element, None)
            if reassay is not None:
                columns.append(reassay.values)
                wanted.append((reassay.name, field_type.DOUBLE))
                feedback.info(f"{reassay.name}: the {reassay.element} the geochemistry algorithms read (they read an "
                              f"element's first column), written before its columns: " + " ".join(reassay.notes))
            columns.append(table.values(assay))
            wanted.append((assay.name, field_type.DOUBLE))
        numeric = [all(v is None or isinstance(v, float) for v in values) for _, values in kept]
        others = [(name, field_type.DOUBLE if n else field_type.STRING) for (name, _), n in zip(kept, numeric)]
        # the file's other columns after the assays, or first where they are all the sample has (id, coordinates)
        first = source is None
        wanted = others + wanted if first else wanted + others
        added = []
        for name, kind in wanted:
            if out_fields.lookupField(name) >= 0 or name in added:
                feedback.warning(f"The points already have a field '{name}': the results file's column is written as "
                                 f"'{name}{CLASH_SUFFIX}'.")
                name += CLASH_SUFFIX
            added.append(name)
            out_fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, out_fields, wkb, crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        columns = [[float(v) if math.isfinite(v) else NULL for v in values] for values in columns]
        texts = [[NULL if v is None else v for v in values] for _, values in kept]
        columns = texts + columns if first else columns + texts

        def write(feature, extra, where):
            out = QgsFeature(out_fields)
            out.setGeometry(feature.geometry())
            attributes = feature.attributes()
            out.setAttributes([attributes[j] for j in copied] + extra)
            if not sink.addFeature(out, QgsFeatureSink.FastInsert):
                raise QgsProcessingException(f"Could not write {where} to the output: "
                                             f"{sink.lastError() or 'the output refused it'}.")

        joined = 0
        for i, point in enumerate(rows):
            if i % PROGRESS_EVERY == 0:
                feedback.check()
                feedback.progress(30.0 + 70.0 * i / max(len(rows), 1))
            if point >= 0:
                write(features[point], [c[i] for c in columns], f"the row of {table.place(i)}")
                joined += 1
        if keep:
            used = set(rows)
            for k, feature in enumerate(features):
                if k not in used:
                    write(feature, [NULL] * len(columns), "a point without results")
        feedback.progress(100.0)
        failed = self._check_qc(table, ids, certified, feedback)
        return {"OUTPUT": dest, "JOINED": joined, "UNMATCHED": sum(1 for r in rows if r < 0),
                "STANDARDS_FAILED": failed}

    # -- log ---------------------------------------------------------------------------------
    def _log_table(self, table, feedback):
        line = "row" if table.sheet else "line"
        header = (f"{line}s {table.header_lines[0]}-{table.header_lines[-1]}" if len(table.header_lines) > 1
                  else f"{line} {table.header_lines[0]}" if table.header_lines else "none")
        if table.sheet:
            checked = {t.sheet for t in table.other_tables}
            others = [repr(n) + (" (its blanks and standards checked)" if re.sub(r" \(hidden\)$", "", n) in checked
                                 else "") for n in table.other_sheets]
            kind = f"Results workbook: sheet '{table.sheet}'" + (
                f" (the largest table of assays; not joined: {', '.join(others)})" if others else "")
        else:
            delimiter = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}[table.delimiter]
            kind = f"Results file: {delimiter}-separated{', decimal commas' if table.decimal_comma else ''}"
        feedback.info(f"{kind}; header {header}; data from {line} {table.first_data_line} ({len(table.rows)} rows).")
        feedback.info("Assay columns: " + "; ".join(
            f"{c.name} ({c.header}" + (f", limit {c.limit:g}" if c.limit == c.limit else "") + ")"
            for c in table.assays))
        for note in table.notes:
            feedback.warning(note)
        by_element = {}
        for c in table.assays:
            by_element.setdefault(c.element, []).append(c.name)
        for c in table.assays:
            over = table.over_limit(c)
            if over:
                others = [n for n in by_element[c.element] if n != c.name]
                also = f"; the file also reports {c.element} as {', '.join(others)}" if others else ""
                feedback.warning(f"{c.name}: {len(over)} value(s) over the upper limit (e.g. "
                                 f"'{table.rows[over[0]][c.index]}'), written as the limit, a lower bound{also}.")
            unknown = sum(1 for v in table.values(c) if v == float("-inf"))
            if unknown:
                feedback.warning(f"{c.name}: {unknown} value(s) below an unwritten detection limit ('BDL') and no "
                                 "limit in the file (no limits row, no '<' value in the column): written empty, as "
                                 "if not analysed. Fill in the limit, as minus its value, where it matters.")
            texts = table.unread(c)
            if texts:
                feedback.info(f"{c.name}: no value in rows reading {_shown(texts)} (written empty).")

    def _check_qc(self, table, ids, certified, feedback):
        """The laboratory's quality control in the log: blanks above a few times the limit of detection, the
        precision of duplicate pairs, and the standards against their certified values (``certified``, or None: the
        rows that look like standards are named), in the results and in a workbook's other sheets that read as
        tables (a laboratory's QC sheet). Returns the number of standard results beyond :data:`lab_qc.FAIL_SD`."""
        others = [(t, t.row_ids()) for t in table.other_tables]
        for t, t_ids in [(table, ids)] + others:
            self._check_blanks(t, t_ids, feedback, None if t is table else t.sheet)
        standards = lab_qc.standard_rows(table, ids, {c.standard for c in certified}) if certified else {}
        self._log_duplicates(table, ids, standards, feedback)
        likely = {}
        for t, t_ids in [(table, ids)] + others:
            for name, k in lab_qc.likely_standards(t, t_ids).items():
                likely[name] = likely.get(name, 0) + k
        listed = _shown(f"{n} x{k}" if k > 1 else n for n, k in likely.items())
        if certified is None:
            if likely:
                feedback.info(f"{sum(likely.values())} rows look like certified reference materials ({listed}): "
                              "give their certified values (STANDARDS) to check them.")
            return 0
        for place, why in certified.skipped:
            feedback.warning(f"Certified values, {place}: {why} is a unit OreMap does not convert (ppm, ppb, %, g/t): "
                             "not checked.")
        checks = [(t, lab_qc.check_standards(t, t_ids, certified)) for t, t_ids in [(table, ids)] + others]
        if not any(check.results for _, check in checks):
            named = sorted({c.standard for c in certified})
            feedback.warning("No row of the results file is a standard of the certified values ("
                             + _shown(named) + "), or none has a result for their elements: nothing checked."
                             + (f" Rows that look like standards: {listed}." if likely else "")
                             + " The rows are matched by id or another cell, without regard to case, spaces, "
                             "hyphens, the words STD or CRM and a numbering.")
            return 0
        unseen = [s for s in checks[0][1].not_in_results if all(s in c.not_in_results for _, c in checks)]
        if unseen:
            feedback.info("Standards of the certified values without a row in the results: " + _shown(unseen) + ".")
        for t, check in checks:
            self._log_standards(t, check, feedback, "" if t is table else f" of sheet '{t.sheet}'")
        return sum(len(check.failed()) for _, check in checks)

    @staticmethod
    def _log_standards(table, check, feedback, sheet):
        """The log of one table's standards checked (:func:`core.geochemistry.lab_qc.check_standards`): methods not
        decided, elements not assayed, each standard's mean and bias per column, and each result beyond 2 SD.
        ``sheet``: what places the rows ('' for the results, " of sheet 'QC'" for another sheet)."""
        for standard, column, methods in check.undecided:
            feedback.info(f"{standard}: {column}{sheet} not compared, the certified values give its element by "
                          f"several methods ({_shown(methods)}) and the column's header names none of them.")
        for standard, elements in check.elements_missing.items():
            feedback.info(f"{standard}: certified {', '.join(elements)} not assayed in the results file{sheet}.")
        groups = {}
        for r in check.results:
            groups.setdefault((r.standard, r.column), []).append(r)
        for (standard, column), found in groups.items():
            value = found[0].certified
            measured = [r.measured for r in found if not (r.below or r.above)]
            failed = sum(1 for r in found if lab_qc.beyond(r.z, lab_qc.FAIL_SD))
            warned = sum(1 for r in found if lab_qc.beyond(r.z, lab_qc.WARN_SD)) - failed
            verdict = (f"{failed} beyond {lab_qc.FAIL_SD:g} SD" if failed else
                       f"{warned} beyond {lab_qc.WARN_SD:g} SD" if warned else f"all within {lab_qc.WARN_SD:g} SD")
            if measured:
                mean = sum(measured) / len(measured)
                said = (f"mean {_figure(mean)} against {_figure(value.value)} +/- {_figure(value.sd)} {value.unit} "
                        f"(bias {100 * (mean / value.value - 1):+.1f} %)")
            else:
                said = "beyond the limits of detection"
            feedback.info(f"{standard}, {column}{sheet} ({len(found)} row{'s' if len(found) > 1 else ''}): {said}; "
                          f"{verdict}.")
        for r in sorted(check.failed() + check.warned(), key=lambda r: (r.row, r.column)):
            value, fails = r.certified, lab_qc.beyond(r.z, lab_qc.FAIL_SD)
            shown = ("below " if r.below else "above " if r.above else "") + _figure(r.measured)
            feedback.warning(
                f"{r.standard} at {table.place(r.row)}{sheet}: {r.column} {shown} {value.unit} against the certified "
                f"{_figure(value.value)} +/- {_figure(value.sd)} ({r.z:+.2f} SD): "
                + ("a failed standard, the batch's results for this element are in doubt; ask the laboratory to "
                   "re-assay the batch." if fails else f"beyond {lab_qc.WARN_SD:g} SD (1 result in 20 of a laboratory "
                                                        "in control gets there; two in a row point at a fault)."))

    @staticmethod
    def _check_blanks(table, ids, feedback, sheet=None):
        """Warn of the file's blanks that assay above a few times the limit of detection
        (:func:`core.geochemistry.lab_qc.contaminated_blanks`); ``sheet``: the workbook's other sheet they are in."""
        found, unchecked = lab_qc.contaminated_blanks(table, ids)
        where = f" of sheet '{sheet}'" if sheet else ""
        if unchecked:
            feedback.info(f"Blanks{where} not checked in {', '.join(unchecked)}: no limit of detection known (no "
                          "limits row, no '<' value).")
        if not found:
            return
        said = "; ".join(
            f"{ids[i] or 'a blank'} ({table.place(i)}{where}): "
            + ", ".join(f"{name} {value:g}, {value / limit:.0f} times its limit {limit:g}" for name, value, limit in
                        hits[:4]) + (f" and {len(hits) - 4} more" if len(hits) > 4 else "") for i, hits in found[:6])
        more = f"; and {len(found) - 6} more" if len(found) > 6 else ""
        feedback.warning(f"{len(found)} blank(s) assay above {lab_qc.BLANK_FACTOR:g} times the limit of "
                         f"detection: contamination or carry-over in the laboratory, which also reaches the samples "
                         f"prepared or analysed after them. {said}{more}. Ask the laboratory to check the batch.")

    @staticmethod
    def _log_duplicates(table, ids, standards, feedback):
        """The precision of the file's duplicate pairs (:func:`core.geochemistry.lab_qc.duplicate_pairs`; the rows of
        ``standards`` are none), as the median half absolute relative difference per assay column."""
        pairs = lab_qc.duplicate_pairs(table, ids, standards)
        if not pairs:
            return
        hows = {}
        for _, _, how in pairs:
            hows[how] = hows.get(how, 0) + 1
        precision, unknown = lab_qc.duplicate_precision(table, pairs)
        said = "; ".join(f"{p.column} {p.median:.1f} % ({p.pairs} pair{'s' if p.pairs > 1 else ''}, {p.within_10} "
                         f"within 10 %, {p.within_20} within 20 %)" for p in precision)
        feedback.info(f"{len(pairs)} duplicate pair(s) (" + ", ".join(f"{n} by {how}" for how, n in hows.items())
                      + "): precision as the median of half the pair's difference over its mean, for pairs at "
                      f"{lab_qc.PRECISION_FACTOR:g} times the limit of detection or more: "
                      + (said or "no pair so high") + "."
                      + (f" Not measured, no limit of detection known: {', '.join(unknown)}." if unknown else ""))

    def _log_matches(self, table, column, rows, n_points, keep, feedback):
        ids = table.attribute_values(column)
        unmatched = [ids[i] or f"(no id, {table.place(i)})" for i, r in enumerate(rows) if r < 0]
        if unmatched:
            feedback.warning(f"{len(unmatched)} rows of the results file have no point of their id and are left out "
                             f"(standards, blanks, duplicates under their own ids, or samples missing from the "
                             f"layer): {_shown(unmatched)}.")
        used = [r for r in rows if r >= 0]
        repeated = len(used) - len(set(used))
        if repeated:
            feedback.info(f"{repeated} rows repeat a sample already in the file (re-assays or duplicates under the "
                          "same id): each is written; the geochemistry algorithms' Sample id field (SAMPLE_FIELD) "
                          "counts each sample once.")
        without = n_points - len(set(used))
        if without:
            feedback.info(f"{without} of {n_points} points have no results in the file and are "
                          f"{'written with empty assays' if keep else 'left out'}.")
        feedback.info(f"Joined {len(used)} rows to {len(set(used))} points.")
