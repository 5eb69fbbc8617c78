"""oremap:idw_interpolate - grid geochemical point samples by inverse distance weighting."""

import re

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
)

from ..core.engine.errors import OreMapError
from ..core.geochemistry import geochem, grid_meaning, idw
from ..core.geochemistry import survey_hygiene as sh
from .base import OreMapAlgorithm, assay_number, require_fields
from .evaluate_prospectivity import distance_crs_for_points
from .survey_input import check_survey_rows, numeric_fields, over_mask, warn_shifted_records

DUPLICATES = [("mean", "Mean"), ("median", "Median")]
BELOW = [("half", "Half the detection limit"), ("limit", "The detection limit"), ("nan", "Missing (left out)")]


class IdwInterpolate(OreMapAlgorithm):
    NAME = "idw_interpolate"
    DISPLAY_NAME = "IDW interpolation of geochemical samples"
    GROUP = "geochemistry"
    TAGS = "idw,inverse distance,interpolation,gridding,geochemistry,stream sediment,soil,assay,surface"
    HELP = (
        "Turns point samples (stream sediments, soils, rock chips) into one raster band per chosen element by "
        "inverse distance weighting: each cell takes the weighted mean of its nearest samples, with weights "
        "1 / distance^power. Values are computed at pixel centres; a cell centre on a sample takes the "
        "sample's value. The method is gdal_grid's 'invdistnn' (nearest neighbours, optional search radius), "
        "computed with a k-d tree.\n\n"
        "Geochemical conventions are handled before gridding: the missing-value code (-9999) becomes "
        "missing, negative values (minus the detection limit, i.e. below detection) become half the limit, "
        "the limit, or missing; exact zeros become missing by default ('not analysed' in survey compilations); "
        "samples at the same location are merged (mean or median). Each element uses only the samples that "
        "have a value for it. Concentrations are right-skewed: the log10 option grids "
        "log10 of the values, which gives smoother, less outlier-dominated surfaces.\n\n"
        "Distances must be in ground metres: a layer in longitude/latitude, in feet, or in a CRS not true to "
        "scale where the samples lie (Web Mercator, EPSG:3857: one ground metre spans 1.5 of its metres at 48 degrees) "
        "is reprojected to the WGS 84 UTM zone of its centroid (the log says which), and the raster is written in "
        "that CRS. A layer without a valid CRS is refused.")
    PARAM_HELP = {
        "INPUT": "Point layer of samples, in a projected CRS or in longitude/latitude (reprojected to UTM, as are "
                 "layers in feet or in Web Mercator).",
        "FIELDS": "Numeric fields to grid, one output band each (e.g. Au_ppb, As_ppm). Empty: the survey's "
                  "elements measured in at least 80 % of the samples (survey hygiene, as the other geochemistry "
                  "algorithms: units in the names, coordinates and ids left out, oxides merged; the log lists "
                  "the choice).",
        "CELL_SIZE": "Pixel size in metres (in the units of a projected layer). 0 (default): a quarter of the "
                     "median distance between neighbouring sample locations, rounded to 1, 2 or 5 x a power of "
                     "ten (logged).",
        "EXTENT": "Area to grid, in any CRS (transformed); one given without a CRS ('xmin,xmax,ymin,ymax' in "
                  "qgis_process) is in the point layer's CRS. Default: the samples' extent plus 5 % of its larger "
                  "side, snapped to the cell size.",
        "POWER": "Distance exponent of the weights: 2 is usual; higher values make the surface follow the "
                 "nearest sample more closely, 0 gives the plain mean of the neighbours.",
        "NEIGHBOURS": "Number of nearest samples averaged for each cell.",
        "RADIUS": "Search radius in metres: samples farther than that from a cell are ignored, and a cell "
                  "with fewer than the minimum number of samples left is nodata. 0 = no radius.",
        "MAX_DISTANCE": "Cells farther than this (metres) from their nearest sample are nodata, so the surface does "
                        "not extrapolate into unsampled ground. Empty: 5 times the sample spacing, the median distance "
                        "between neighbouring sample locations (sites sampled twice a few metres apart count as one; "
                        "logged; on the shared area1 survey, 4.7 km: without it 73 % "
                        "of the default grid lay farther than 3.7 km from every sample, the surveyed drainages "
                        "covering a quarter of their bounding box). 0 = no limit: every cell of the extent gets a "
                        "value.",
        "MIN_POINTS": "Fewest samples (within the search radius) a cell needs.",
        "DUPLICATES": "How samples at identical coordinates (field duplicates, repeat analyses) are merged.",
        "BELOW_DETECTION": "Replacement of values below detection, stored as minus the detection limit.",
        "MISSING_VALUE": "Code of a missing value in the fields (besides empty values).",
        "ZEROS": geochem.ZEROS_HELP,
        "LOG10": "Grid log10 of the concentrations (band values are then log10 units), after the handling of "
                 "values below detection and of zeros.",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 GeoTIFF, one band per field (band names = field names), nodata -9999, in the "
                  "layer's CRS or the UTM zone it was reprojected to. Styled with a colour ramp on band 1. Each band's "
                  "metadata say what its values are: OREMAP_TRANSFORM (log10 or none), UNITS (from the field name, "
                  "e.g. Au_ppm: ppm) and OREMAP_DETECTION=applied (below-detection values and zeros handled), so "
                  "the VAE and other readers never repeat a step.",
        "SAMPLES": "Number of distinct sample locations used (with a value in at least one of the fields).",
        "OUTPUT_CRS": "CRS of the output raster (e.g. EPSG:32750).",
    }
    REFERENCES = [
        "Shepard, D. (1968). A two-dimensional interpolation function for irregularly-spaced data. "
        "Proceedings of the 23rd ACM National Conference, 517-524.",
        "Reimann, C., Filzmoser, P., Garrett, R. G. and Dutter, R. (2008). Statistical Data Analysis "
        "Explained: Applied Environmental Statistics with R. Wiley (values below detection, transforms, "
        "mapping).",
        "GDAL: gdal_grid, 'invdistnn' algorithm (inverse distance to a power with nearest-neighbour "
        "searching). https://gdal.org/programs/gdal_grid.html",
    ]
    CORE_PARAMETERS = {
        **OreMapAlgorithm.CORE_PARAMETERS,
        "points": "INPUT", "crs": "INPUT", "fields": "FIELDS", "values": "FIELDS", "cell_size": "CELL_SIZE",
        "extent": "EXTENT", "power": "POWER", "neighbours": "NEIGHBOURS", "radius": "RADIUS",
        "max_distance": "MAX_DISTANCE", "min_points": "MIN_POINTS", "duplicates": "DUPLICATES",
        "below_detection": "BELOW_DETECTION", "zeros": "ZEROS", "transform": "LOG10", "output": "OUTPUT",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self._add(QgsProcessingParameterFeatureSource(
            "INPUT", self.tr("Sample points"), [QgsProcessing.TypeVectorPoint]))
        self._add(QgsProcessingParameterField(
            "FIELDS", self.tr("Element fields"), parentLayerParameterName="INPUT",
            type=QgsProcessingParameterField.Numeric, allowMultiple=True,
            optional=True))  # empty: the survey's elements by coverage
        self.add_number("CELL_SIZE", "Cell size (metres; 0 = from the sample spacing)", 0.0, 0.0)
        self._add(QgsProcessingParameterExtent("EXTENT", self.tr("Extent (default: the samples + 5 %)"),
                                               optional=True))
        self.add_number("POWER", "Power", 2.0, 0.0)
        self.add_number("NEIGHBOURS", "Nearest samples used", 12, 1, integer=True)
        self.add_number("RADIUS", "Search radius (0 = none)", 0.0, 0.0)
        self.add_number("MAX_DISTANCE", "Maximum distance to the nearest sample (empty = from the sample spacing; "
                        "0 = none)", None, 0.0, optional=True)
        self.add_enum("DUPLICATES", "Samples at the same location", [label for _, label in DUPLICATES])
        self.add_enum("BELOW_DETECTION", "Values below detection (negative) become", [label for _, label in BELOW])
        self.add_enum("ZEROS", "Values of exactly 0", [label for _, label in geochem.ZERO_CHOICES])
        self._add(QgsProcessingParameterBoolean("LOG10", self.tr("Interpolate log10 of the values"),
                                                defaultValue=False))
        self.add_number("MIN_POINTS", "Minimum samples per cell", 1, 1, integer=True, advanced=True)
        self.add_number("MISSING_VALUE", "Missing-value code", -9999.0, None, advanced=True)
        self.add_raster_output("OUTPUT", "Interpolated elements")
        self.add_value_output("SAMPLES", "Sample locations used")
        self.add_value_output("OUTPUT_CRS", "Output CRS", "string")

    # -- reading -------------------------------------------------------------------------
    def _read(self, parameters, source, fields, context, feedback):
        """The CRS to grid in, the samples' coordinates in it, their values (NaN = empty), their coordinates as read
        (the layer's own, or longitude/latitude: a field equal to them is no element) and where their values were
        over the laboratory's upper limit (:func:`algorithms.survey_input.over_mask`), read once.

        A layer in a geographic CRS, in feet or in a CRS not true to scale (Web Mercator) is gridded in the WGS 84
        UTM zone of its points' centroid (:func:`algorithms.evaluate_prospectivity.distance_crs_for_points`).
        """
        crs = source.sourceCrs()
        target = distance_crs_for_points(self, source, context, feedback, name="INPUT")  # (no CRS: refused)
        read_crs = QgsCoordinateReferenceSystem("EPSG:4326") if crs.isGeographic() else crs
        over, fids = [], []
        xs, ys, columns = self.layer_points(parameters, "INPUT", context, read_crs, fields, feedback,
                                           parse=assay_number, over=over, fids=fids)

        if not xs:
            raise self.fail("INPUT", "The layer has no point geometries.", "Choose a layer of sample points.")
        values = np.column_stack([columns[name] for name in fields])
        read_x, read_y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if target != crs:   # degrees, feet or a CRS not true to scale: gridded in the UTM zone the log names
            xs, ys = geochem.project_points(xs, ys, "EPSG:4326" if crs.isGeographic() else crs.toWkt(),
                                            target.toWkt())
            crs = target
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        missing = self.parameterAsDouble(parameters, "MISSING_VALUE", context)
        warn_shifted_records(source, fields, values, xs, ys, fids, missing, feedback)
        return crs, xs, ys, values, read_x, read_y, over_mask(over, len(fields))

    def _extent(self, parameters, context, layer_crs, crs, feedback):
        """The EXTENT parameter in ``crs`` (the grid's): an extent with a CRS (the Toolbox's, or '[EPSG:...]' after
        it) is transformed from it; one without (a bare 'xmin,xmax,ymin,ymax' in qgis_process or a script) is read
        in the point layer's CRS, and the log says so."""
        if parameters.get("EXTENT") in (None, ""):
            return None
        value = parameters.get("EXTENT")
        bare = isinstance(value, str) and re.fullmatch(r"\s*[^,\[\]]+(,[^,\[\]]+){3}\s*", value) is not None
        # a bare text has no CRS of its own; QGIS would lend it the project's, which the user did not choose
        given = None if bare else self.parameterAsExtentCrs(parameters, "EXTENT", context)
        if given is not None and given.isValid():
            return self.parameterAsExtent(parameters, "EXTENT", context, crs)
        rectangle = self.parameterAsExtent(parameters, "EXTENT", context)
        if rectangle is None or rectangle.isNull() or rectangle.isEmpty() or layer_crs == crs:
            return rectangle
        feedback.info(f"The extent has no CRS: read in the point layer's ({layer_crs.authid()}) and transformed to "
                      f"the grid's ({crs.authid()}).")
        return QgsCoordinateTransform(layer_crs, crs, context.transformContext()).transformBoundingBox(rectangle)

    # -- run ---------------------------------------------------------------------------------
    def process(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise self.fail("INPUT", "No point layer was given.", "Choose a layer of sample points.")
        fields = self.field_names(parameters, "FIELDS", context)
        require_fields(self, source, fields, numeric=True)
        below = BELOW[self.parameterAsEnum(parameters, "BELOW_DETECTION", context)][0]
        missing = self.parameterAsDouble(parameters, "MISSING_VALUE", context)
        zeros = geochem.ZERO_CHOICES[self.parameterAsEnum(parameters, "ZEROS", context)][0]
        check_survey_rows(source, feedback)
        columns = fields or numeric_fields(source, feedback)
        crs, x, y, values, gx, gy, over = self._read(parameters, source, columns, context, feedback)
        if not fields:  # the survey's elements (survey hygiene): names, units, geometry, coverage
            try:
                fields, values, plan = sh.survey_elements(columns, values, gx, gy, missing=missing,
                                                          zeros_missing=zeros == "missing", over=over)
            except OreMapError as exc:  # IDW has no coverage parameter: the fix is to choose the fields
                raise self.fail("FIELDS", exc.message, "Choose the element fields to grid.") from None
            for line in plan.log:
                feedback.info(line)

        cell_size = self.parameterAsDouble(parameters, "CELL_SIZE", context)
        if not cell_size > 0:
            cell_size = idw.suggest_cell_size(x, y)
            if not cell_size:
                raise self.fail("INPUT", "The samples lie at fewer than two locations, so no cell size follows "
                                         "from their spacing.", "Give the cell size, or more samples.")
            feedback.info(f"Cell size {cell_size:g} m: a quarter of the median distance between neighbouring "
                          "sample locations, rounded (set CELL_SIZE to choose another).")
        values, counts = geochem.below_detection(values, mode=below, missing=missing, zeros=zeros)
        impossible = geochem.impossible_values_note(values, fields)
        if impossible:
            feedback.warning(impossible)
        for line in geochem.value_notes(fields, counts, below, zeros, n_samples=len(values)):
            feedback.info(line)
        empty = [j for j in range(len(fields)) if not np.isfinite(values[:, j]).any()]
        if empty:  # a band without a single sample: refused rather than written as nodata
            by_zeros = zeros == "missing" and all(counts["zeros"][j] for j in empty)
            raise self.fail("ZEROS" if by_zeros else "FIELDS",
                            f"No sample has a usable value for {', '.join(fields[j] for j in empty)}"
                            + (" once zeros are treated as missing." if by_zeros else "."),
                            "Choose other fields, or keep the zeros (Values of exactly 0)." if by_zeros
                            else "Choose fields with measured values.")
        log10 = self.parameterAsBoolean(parameters, "LOG10", context)
        if log10:
            values = geochem.transform(values, "log10", names=fields)
            feedback.info("Interpolating log10 of the values.")
        band_tags = grid_meaning.band_tags(fields, "log10" if log10 else "none", detection_applied=True)
        how = DUPLICATES[self.parameterAsEnum(parameters, "DUPLICATES", context)][0]
        x, y, values, merged = geochem.aggregate_duplicates(x, y, values, how=how)
        if merged:
            feedback.info(f"{merged} samples at repeated locations merged ({how}): {len(x)} locations.")
        if len(x) < 2:
            raise self.fail("INPUT", f"The samples lie at a single location ({merged + 1} samples there), so there is "
                                     "nothing to interpolate between.",
                            "Choose a layer with samples at two or more different locations.")
        placed = np.isfinite(values).sum(axis=0)
        lone = [fields[j] for j in range(len(fields)) if placed[j] < 2]
        if lone:  # a map of one value everywhere within reach, passed off as an interpolation
            raise self.fail("FIELDS", f"{', '.join(lone)} {'has' if len(lone) == 1 else 'have'} a value at a single "
                                      "sample location only, so there is nothing to interpolate between.",
                            "Leave such fields out, or choose fields measured at two or more locations.")

        extent = None
        rectangle = self._extent(parameters, context, source.sourceCrs(), crs, feedback)
        if rectangle is not None and not rectangle.isNull() and not rectangle.isEmpty():
            extent = (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum())
        elif parameters.get("EXTENT") not in (None, "") and rectangle is not None:  # given, but without an area
            raise self.fail("EXTENT", f"The extent {rectangle.toString(6)} has no area.",
                            "Give xmin,xmax,ymin,ymax with xmin < xmax and ymin < ymax, or leave it empty.")
        if extent is not None:  # an extent away from every sample would be filled by extrapolation alone
            gap = max(extent[0] - x.max(), x.min() - extent[2], extent[1] - y.max(), y.min() - extent[3], 0.0)
            spread = max(np.ptp(x), np.ptp(y), cell_size)
            if gap > 0.5 * spread:
                raise self.fail("EXTENT", f"The extent lies {gap / 1000:.3g} km from the samples' area "
                                          f"({x.min():.0f}-{x.max():.0f} E, {y.min():.0f}-{y.max():.0f} N in "
                                          f"{crs.authid()}): every cell would be extrapolated.",
                                "Give an extent over the samples (in the layer's CRS, or with its own CRS "
                                "appended: 'xmin,xmax,ymin,ymax [EPSG:4326]'), or leave it empty.")
        if parameters.get("MAX_DISTANCE") in (None, ""):
            max_distance = idw.AUTO   # the core's default: a multiple of the sample spacing, logged
        else:
            max_distance = self.parameterAsDouble(parameters, "MAX_DISTANCE", context) or None
        out_path = self.output_path(parameters, "OUTPUT", context, feedback)
        crs_id = crs.authid() if crs.authid().upper().startswith("EPSG:") else \
            crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)
        stats = idw.idw_to_raster(
            x, y, values, fields, out_path, cell_size, extent=extent, crs=crs_id,
            power=self.parameterAsDouble(parameters, "POWER", context),
            k=self.parameterAsInt(parameters, "NEIGHBOURS", context),
            radius=self.parameterAsDouble(parameters, "RADIUS", context) or None,
            max_distance=max_distance,
            min_points=self.parameterAsInt(parameters, "MIN_POINTS", context),
            memory_mb=self.memory_mb(), feedback=feedback, band_tags=band_tags)
        feedback.info("Band metadata written: " + "; ".join(
            f"{name}: " + ", ".join(f"{k}={v}" for k, v in tags.items()) for name, tags in zip(fields, band_tags)))
        cells = stats["width"] * stats["height"]
        feedback.info(f"Grid: {stats['width']} x {stats['height']} cells of {cell_size:g} m.")
        for name in fields:
            if stats["valid_cells"][name]:
                feedback.info(f"  {name}: {stats['samples'][name]} samples, {stats['valid_cells'][name]} of {cells} "
                              f"cells with a value, {stats['min'][name]:.4g} to {stats['max'][name]:.4g}.")
            else:
                feedback.warning(f"  {name}: no cell has a value (no samples, or none within the radius).")
        self.style_output(context, out_path, {"kind": "ramp", "band": 1, "ramp": "Spectral", "invert": True})
        used = int(np.isfinite(values).any(axis=1).sum())   # locations with a value in some field
        return {"OUTPUT": out_path, "SAMPLES": used, "OUTPUT_CRS": crs.authid() or crs.description()}
