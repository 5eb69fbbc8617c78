"""The one base class of every OreMap Processing algorithm.

It holds what would otherwise repeat in each algorithm: parameter helpers, help
text generated from (parameter, text) pairs, resolution of layers to files, the
bridge from ``QgsProcessingFeedback`` to the core's feedback, output checks and
styling, and the translation of core errors into a ``QgsProcessingException`` that
names the parameter at fault and the fix.

A subclass declares ``NAME``, ``DISPLAY_NAME``, ``GROUP``, ``HELP``, ``PARAM_HELP``
(``{param_name: text}``), ``OUTPUT_HELP`` and ``REFERENCES``, implements
``initAlgorithm`` with the helpers below and ``process(parameters, context, feedback)``
which calls the core and returns the outputs dict.
"""

import os
import re

import numpy as np

from qgis.core import (
    NULL,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterDefinition,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.engine import compute, dependencies
from ..core.engine.errors import Cancelled, OreMapError
from ..core.engine.feedback import Feedback
from ..core.engine.raster import check_output_path
from ..processing_provider import settings
from . import styles

GROUPS = {
    "hyperspectral": "Hyperspectral",
    "abundance": "Abundance",
    "sentinel2": "Sentinel-2",
    "geochemistry": "Geochemistry",
    "evaluation": "Evaluation",
}

LIBRARY_FILTER = "Spectral libraries (*.sli *.hdr *.esl *.csv *.txt);;All files (*.*)"


class QgisFeedback(Feedback):
    """Core feedback on top of a ``QgsProcessingFeedback``."""

    def __init__(self, feedback):
        self._fb = feedback

    def progress(self, percent):
        if self._fb is not None:
            self._fb.setProgress(float(percent))

    def is_canceled(self):
        return self._fb is not None and self._fb.isCanceled()

    def info(self, message):
        if self._fb is not None:
            self._fb.pushInfo(message)

    def warning(self, message):
        if self._fb is not None:
            self._fb.pushWarning(message)


def split_names(text):
    """Names from a parameter string: separated by ';' or new lines if any, else by commas."""
    if not text or not text.strip():
        return []
    parts = re.split(r"[;\n]", text) if re.search(r"[;\n]", text) else text.split(",")
    return [p.strip() for p in parts if p.strip()]


# Help of the parameters the helpers below add; an algorithm's PARAM_HELP may refine any of them.
COMMON_PARAM_HELP = {
    "POINTS": "Instead of a library: a point layer on the raster; the pixel spectra of points with the same "
              "name are averaged into one reference (in any CRS: points are transformed to the raster's).",
    "NAME_FIELD": "Field of the point layer holding each point's class or endmember name.",
    "WAVELENGTHS": "Band centres in nm, comma separated, one per band; only needed when the raster carries no "
                   "wavelength metadata (ENVI header, GeoTIFF band metadata).",
    "NODATA": "A value to treat as nodata in addition to the raster's own nodata (a pixel with any band equal "
              "to it is skipped). NaN is always nodata.",
    "BAD_BANDS": "Bands left out besides those of the raster's ENVI bbl. Empty: found automatically (with "
                 "wavelengths: the water-vapour windows 1345-1430 and 1775-1950 nm; always: bands constant or "
                 "missing over the scene, bands with a negative scene median, bands whose band-to-band noise is "
                 "more than 6 times their neighbours'); the log lists them. Entries separated by ';': "
                 "'keep 381-401 nm' keeps bands the detection dropped, 'drop 2450-2510 nm' or 'drop bands 1-5' "
                 "adds bands, 'off' leaves only the bbl out.",
    "SCALE": "Divisor turning stored values into reflectance (10000 for 0-10000 integers). 0: from the raster's "
             "scale/offset metadata or ENVI 'reflectance scale factor', else guessed for integer rasters (the "
             "log says so).",
}


def as_number(value):
    """A field value as float: NaN for NULL, empty or non-numeric values."""
    if value is None or value == NULL:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class OreMapAlgorithm(QgsProcessingAlgorithm):
    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "hyperspectral"
    TAGS = ""
    HELP = ""
    PARAM_HELP = {}
    OUTPUT_HELP = {}
    REFERENCES = []
    # Optional Python packages (core/engine/dependencies.py) without which the algorithm cannot run, and
    # {package: what for} of those only some of its options need. A missing one is named, with how to
    # install it, at the top of the help and when the algorithm is started; the provider loads regardless.
    REQUIRES = ()
    RECOMMENDS = {}

    # core error key -> parameter name of this algorithm (filled in per run where it varies)
    CORE_PARAMETERS = {
        "raster": "INPUT",
        "library": "LIBRARY",
        "spectra": "SPECTRA",
        "wavelengths": "WAVELENGTHS",
        "scale": "SCALE",
        "bad_bands": "BAD_BANDS",
        "nodata": "NODATA",
        "method": "METHOD",
        "mode": "MODE",
        "model": "MODEL_FILE",
        "reference": "REFERENCE",
        "reference_field": "CLASS_FIELD",
        "report": "OUTPUT_HTML",
        "table": "OUTPUT_CSV",
        "libraries": "LIBRARIES",
        "classes": "CLASSES",
        "class_table": "CLASS_TABLE",
        "training": "TRAINING",
    }

    def __init__(self):
        super().__init__()
        self._post_processors = []
        self._parameter_overrides = {}  # core error key -> parameter, decided while running

    # -- identity ---------------------------------------------------------------------
    def tr(self, text):
        return QCoreApplication.translate("OreMap", text)

    def createInstance(self):  # noqa: N802
        return type(self)()

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(GROUPS[self.GROUP])

    def groupId(self):  # noqa: N802
        return self.GROUP

    def tags(self):
        return [t.strip() for t in self.TAGS.split(",") if t.strip()]

    def shortDescription(self):  # noqa: N802
        return self.HELP.split("\n\n")[0]

    # -- help ---------------------------------------------------------------------------
    def missing_packages(self):
        """Required optional packages (``REQUIRES``) that are not installed."""
        return dependencies.missing(self.REQUIRES)

    def dependency_notice(self):
        """HTML paragraphs naming missing packages and how to install them; empty when all are there."""
        notes = []
        missing = self.missing_packages()
        if missing:
            notes.append(f"<p><b>This algorithm cannot run yet.</b> {dependencies.install_hint(missing)}</p>")
        optional = dependencies.missing(list(self.RECOMMENDS))
        if optional:
            uses = "; ".join(f"'{p}' for {self.RECOMMENDS[p]}" for p in optional)
            notes.append(f"<p><b>Some options need more:</b> {uses}. {dependencies.install_hint(optional)}</p>")
        return notes

    def checkParameterValues(self, parameters, context):  # noqa: N802
        missing = self.missing_packages()
        if missing:
            return False, dependencies.install_hint(missing)
        return super().checkParameterValues(parameters, context)

    def shortHelpString(self):  # noqa: N802
        """HTML help: what it does, each parameter, each output, references."""
        html = self.dependency_notice() + [f"<p>{p}</p>" for p in self.tr(self.HELP).split("\n\n")]
        for title, destination, texts in (("Parameters", False, {**COMMON_PARAM_HELP, **self.PARAM_HELP}),
                                           ("Outputs", True, self.OUTPUT_HELP)):
            definitions = [d for d in self.parameterDefinitions() if d.isDestination() == destination]
            if definitions:
                html.append(f"<h3>{title}</h3><dl>")
                html += [f"<dt><b>{d.description()}</b> (<code>{d.name()}</code>)</dt>"
                         f"<dd>{self.tr(texts.get(d.name(), ''))}</dd>" for d in definitions]
                html.append("</dl>")
        values = [o for o in self.outputDefinitions() if self.parameterDefinition(o.name()) is None]
        if values:
            html.append("<h3>Values reported</h3><dl>")
            html += [f"<dt><b>{o.description()}</b> (<code>{o.name()}</code>)</dt>"
                     f"<dd>{self.tr(self.OUTPUT_HELP.get(o.name(), ''))}</dd>" for o in values]
            html.append("</dl>")
        if self.REFERENCES:
            html.append("<h3>References</h3><ul>")
            html += [f"<li>{r}</li>" for r in self.REFERENCES]
            html.append("</ul>")
        return "\n".join(html)

    def helpUrl(self):  # noqa: N802
        return "https://github.com/oremap/oremap#algorithms"

    # -- parameter helpers ------------------------------------------------------------------
    def _add(self, parameter, advanced=False):
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)
        return parameter

    def add_raster_input(self, name="INPUT", label="Hyperspectral raster"):
        return self._add(QgsProcessingParameterRasterLayer(name, self.tr(label)))

    def add_library_parameters(self, optional=False):
        self._add(QgsProcessingParameterFile(
            "LIBRARY", self.tr("Spectral library (ENVI .sli or CSV)"),
            behavior=QgsProcessingParameterFile.File, fileFilter=LIBRARY_FILTER, optional=optional))
        self._add(QgsProcessingParameterString(
            "SPECTRA", self.tr("Spectra to use (names separated by ';' or ','; empty = all)"),
            optional=True, multiLine=False))

    def add_endmember_points(self):
        self._add(QgsProcessingParameterFeatureSource(
            "POINTS", self.tr("Endmember points sampled from the raster"),
            [QgsProcessing.TypeVectorPoint], optional=True))
        self._add(QgsProcessingParameterField(
            "NAME_FIELD", self.tr("Endmember name field"), parentLayerParameterName="POINTS", optional=True))

    def add_band_parameters(self):
        """Advanced: wavelengths when the raster has none, extra nodata, reflectance scale."""
        self._add(QgsProcessingParameterString(
            "WAVELENGTHS", self.tr("Band centre wavelengths in nm (only if the raster has none)"),
            optional=True), advanced=True)
        self.add_nodata_parameter()
        self.add_number("SCALE", "Reflectance scale factor (0 = automatic)", 0.0, 0.0, advanced=True)
        self.add_bad_bands_parameter()

    def add_bad_bands_parameter(self):
        """Advanced, optional: bad bands to keep or add to the automatic detection (or 'off')."""
        self._add(QgsProcessingParameterString("BAD_BANDS", self.tr("Bad bands: keep, drop or 'off' (empty = automatic)"),
                                               optional=True), advanced=True)

    def bad_bands(self, parameters, context):
        """The bad-band choice (:func:`core.engine.bad_bands.parse_bad_bands`), checked before any work."""
        from ..core.engine.bad_bands import parse_bad_bands

        text = self.parameterAsString(parameters, "BAD_BANDS", context) if "BAD_BANDS" in parameters else ""
        return parse_bad_bands(text)

    def add_nodata_parameter(self, label="Additional nodata value"):
        """Advanced, optional: a value to treat as nodata besides the raster's own."""
        self.add_number("NODATA", label, None, None, advanced=True, optional=True)

    def add_number(self, name, label, default, minimum, maximum=None, integer=False, advanced=False, optional=False):
        """A numeric parameter (integer or double) with a default and bounds (None: no default, no lower bound)."""
        kind = QgsProcessingParameterNumber.Integer if integer else QgsProcessingParameterNumber.Double
        bounds = {} if minimum is None else {"minValue": minimum}
        parameter = QgsProcessingParameterNumber(name, self.tr(label), kind, defaultValue=default, optional=optional,
                                                 **bounds)
        if maximum is not None:
            parameter.setMaximum(maximum)
        return self._add(parameter, advanced=advanced)

    def add_enum(self, name, label, options, default=0):
        return self._add(QgsProcessingParameterEnum(name, self.tr(label), options=options, defaultValue=default))

    def add_file_output(self, name, label, file_filter, optional=False, create=None):
        """A file destination; an optional one is still created by default when ``create`` is True."""
        return self._add(QgsProcessingParameterFileDestination(
            name, self.tr(label), fileFilter=file_filter, optional=optional,
            createByDefault=(not optional) if create is None else create))

    def add_value_output(self, name, label, kind="number"):
        """A value the algorithm reports (e.g. an accuracy), offered to later steps of a model."""
        output = {"number": QgsProcessingOutputNumber, "boolean": QgsProcessingOutputBoolean,
                  "string": QgsProcessingOutputString}[kind]
        self.addOutput(output(name, self.tr(label)))

    def add_raster_output(self, name, label, optional=False, create=None):
        """A raster destination; an optional one is still created by default when ``create`` is True."""
        return self._add(QgsProcessingParameterRasterDestination(
            name, self.tr(label), optional=optional, createByDefault=(not optional) if create is None else create))

    # -- resolving parameters --------------------------------------------------------------------
    def raster_path(self, parameters, name, context):
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise self.fail(name, "No raster was given or it could not be loaded.", "Choose a raster layer.")
        if layer.providerType() != "gdal" or not os.path.exists(layer.source().split("|")[0]):
            raise self.fail(name, f"'{layer.name()}' is not a raster file on disk.",
                            "Save it as GeoTIFF first (Raster > Conversion > Translate).")
        return layer.source().split("|")[0], layer

    def band_parameters(self, parameters, context):
        """Wavelength list (nm) or None, extra nodata or None, scale or None."""
        text = self.parameterAsString(parameters, "WAVELENGTHS", context)
        wavelengths = None
        if text and text.strip():
            from ..core.engine.wavelengths import parse_wavelength_list

            wavelengths = parse_wavelength_list(text)
        nodata = parameters.get("NODATA")
        nodata = None if nodata in (None, "") else self.parameterAsDouble(parameters, "NODATA", context)
        scale = self.parameterAsDouble(parameters, "SCALE", context) or None
        return wavelengths, nodata, scale

    def library(self, parameters, context, feedback):
        """The spectral library file, subset to the chosen names."""
        from ..core.hyperspectral.spectral_library import read_library

        path = self.parameterAsFile(parameters, "LIBRARY", context)
        lib = read_library(path)
        names = split_names(self.parameterAsString(parameters, "SPECTRA", context))
        if names:
            lib = lib.subset(names)
        feedback.info(f"Library '{os.path.basename(path)}': {len(lib.names)} spectra: "
                      + ", ".join(lib.names[:12]) + (" ..." if len(lib.names) > 12 else ""))
        return lib

    def endmember_points(self, parameters, context, raster_layer, feedback=None):
        """World coordinates (in the raster's CRS) and names of the endmember points, or None."""
        from ..core.engine.sampling import point_coords

        if self.parameterAsSource(parameters, "POINTS", context) is None:
            return None
        if not self.parameterAsString(parameters, "NAME_FIELD", context):
            raise self.fail("NAME_FIELD", "Endmember points need a name field.",
                            "Choose the field that holds each point's endmember name.")
        geometries, labels = self.labelled_geometries(parameters, "POINTS", "NAME_FIELD", context,
                                                      raster_layer.crs(), feedback)
        points = [(x, y, str(label)) for geom, label in zip(geometries, labels) for x, y in point_coords(geom)]
        xs, ys, names = (list(v) for v in zip(*points))
        return xs, ys, names

    def reference_spectra(self, parameters, context, feedback, raster, layer):
        """Reference spectra from the library file or from endmember points (exactly one of them).

        Returns ``(library, band_info, image_bands, (nodata, scale))`` for
        :mod:`core.hyperspectral.mapping`: ``band_info`` for library spectra, ``image_bands`` for
        spectra sampled from the raster.
        """
        from ..core.hyperspectral import mapping

        wavelengths, nodata, scale = self.band_parameters(parameters, context)
        points = self.endmember_points(parameters, context, layer, feedback)
        has_library = bool(self.parameterAsFile(parameters, "LIBRARY", context))
        if points is not None and has_library:
            raise self.fail("POINTS", "Both a spectral library and endmember points were given.",
                            "Use one of them and leave the other empty.")
        if points is None and not has_library:
            raise self.fail("LIBRARY", "No reference spectra were given.",
                            "Choose a spectral library file, or a point layer with a name field.")
        if points is not None:
            self._parameter_overrides["endmembers"] = "POINTS"
            choice = self.bad_bands(parameters, context)
            info = mapping.image_band_info(raster, wavelengths, required=False, bad_bands=choice, nodata=nodata,
                                           scale=scale, feedback=feedback)
            library, bands = mapping.sample_endmembers(raster, *points, band_info=info, nodata=nodata,
                                                       scale=scale, feedback=feedback, bad_bands=choice)
            return library, None, bands, (nodata, scale)
        self._parameter_overrides["endmembers"] = "LIBRARY"
        library = self.library(parameters, context, feedback)
        info = mapping.image_band_info(raster, wavelengths, bad_bands=self.bad_bands(parameters, context),
                                       nodata=nodata, scale=scale, feedback=feedback)
        return library, info, None, (nodata, scale)

    def source_features(self, source, context, target_crs, skip_validity=False):
        """``(feature, geometry)`` for every feature of a feature source, the geometry transformed to
        ``target_crs`` (when both CRSs are valid and differ), or None for a feature without one.

        ``skip_validity`` reads invalid geometries too (e.g. self-touching polygons that the core repairs)
        instead of letting Processing's validity check refuse the layer.
        """
        transform = None
        if source.sourceCrs().isValid() and target_crs.isValid() and source.sourceCrs() != target_crs:
            transform = QgsCoordinateTransform(source.sourceCrs(), target_crs, context.transformContext())
        features = (source.getFeatures(QgsFeatureRequest(), QgsProcessingFeatureSource.FlagSkipGeometryValidityChecks)
                    if skip_validity else source.getFeatures())
        for feature in features:
            geometry = feature.geometry()
            if geometry is None or geometry.isNull() or geometry.isEmpty():
                yield feature, None
                continue
            if transform is not None:
                geometry.transform(transform)
            yield feature, geometry

    def labelled_geometries(self, parameters, name, field_name, context, target_crs, feedback=None):
        """Shapely geometries (in ``target_crs``) and labels of a vector parameter's features.

        Features without a geometry or a label are left out, and ``feedback`` says how many.
        """
        from shapely import wkb

        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise self.fail(name, "No vector layer was given.", "Choose a point or polygon layer.")
        field = self.parameterAsString(parameters, field_name, context)
        if not field or source.fields().lookupField(field) < 0:
            raise self.fail(field_name, f"Field '{field}' is not in the layer.", "Choose the class field.")
        geometries, labels, skipped = [], [], 0
        for feature, geometry in self.source_features(source, context, target_crs):
            value = feature[field]
            if geometry is None or value is None or value == NULL or str(value).strip() == "":
                skipped += 1
                continue
            geometries.append(wkb.loads(bytes(geometry.asWkb())))
            labels.append(value if isinstance(value, int) else str(value).strip())
        if not geometries:
            raise self.fail(name, f"The layer has no features with both a geometry and a '{field}' value.",
                            f"Fill the '{field}' field of the features.")
        if skipped and feedback is not None:
            feedback.warning(f"{skipped} features of {self.parameterDefinition(name).description()} have no "
                             f"geometry or no '{field}' value and were left out.")
        return geometries, labels

    def features_with_values(self, parameters, name, fields, context, target_crs, feedback=None):
        """Shapely geometries (in ``target_crs``), a (n, len(fields)) float table (NaN = empty) and
        feature ids of a vector parameter's features with a geometry."""
        from shapely import wkb

        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise self.fail(name, "No vector layer was given.", "Choose a point or polygon layer.")
        geometries, rows, ids = [], [], []
        for feature, geometry in self.source_features(source, context, target_crs):
            if geometry is None:
                continue
            geometries.append(wkb.loads(bytes(geometry.asWkb())))
            rows.append([as_number(feature[field]) for field in fields])
            ids.append(feature.id())
        if not geometries:
            raise self.fail(name, "The layer has no features with a geometry.", "Choose a layer with features.")
        return geometries, np.asarray(rows, dtype=float).reshape(len(rows), len(fields)), ids

    def layer_points(self, parameters, name, context, target_crs, fields=(), feedback=None):
        """Coordinates (in ``target_crs``) of every point of a point-layer parameter, and the values of ``fields``.

        MultiPoint features give one row per point. Features without a geometry are left out (and
        counted in the log). Values that are NULL or not numbers become NaN.

        Returns ``(xs, ys, {field: list of float})``.
        """
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise self.fail(name, "No point layer was given.", "Choose a point layer.")
        xs, ys, values, skipped = self.source_points(source, context, target_crs, fields)
        if skipped and feedback is not None:
            feedback.warning(f"{skipped} features of {self.parameterDefinition(name).description()} have no "
                             "geometry and were left out.")
        return xs, ys, values

    def source_points(self, source, context, target_crs, fields=()):
        """``(xs, ys, {field: values}, features without a geometry)`` of a feature source's points (every vertex),
        in ``target_crs``; see :meth:`layer_points`."""
        indexes = [source.fields().lookupField(f) for f in fields]
        xs, ys, values, skipped = [], [], {f: [] for f in fields}, 0
        for feature, geometry in self.source_features(source, context, target_crs):
            if geometry is None:
                skipped += 1
                continue
            attributes = feature.attributes()
            row = [as_number(attributes[i]) if i >= 0 else float("nan") for i in indexes]
            for point in geometry.vertices():
                xs.append(point.x())
                ys.append(point.y())
                for f, v in zip(fields, row):
                    values[f].append(v)
        return xs, ys, values, skipped

    def deposit_points(self, parameters, name, context, target_crs, feedback=None, required=True):
        """``(n, 2)`` coordinates, in ``target_crs``, of the points of a deposit-layer parameter.

        A layer not given, or holding no points, is refused when ``required``; otherwise it gives None
        (not given) or an empty array.
        """
        if self.parameterAsSource(parameters, name, context) is None:
            if required:
                raise self.fail(name, "No deposit layer was given.", "Choose a point layer of known deposits.")
            return None
        xs, ys, _ = self.layer_points(parameters, name, context, target_crs, feedback=feedback)
        if not xs and required:
            raise self.fail(name, "The deposit layer holds no points.", "Choose a point layer of known deposits.")
        return np.column_stack([xs, ys]).astype(np.float64).reshape(-1, 2)

    def output_path(self, parameters, name, context, feedback):
        """The destination file of a raster or file output, checked to be writable; None if skipped."""
        if parameters.get(name) is None and self.parameterDefinition(name).flags() & \
                QgsProcessingParameterDefinition.FlagOptional:
            return None
        if isinstance(self.parameterDefinition(name), QgsProcessingParameterFileDestination):
            path = self.parameterAsFileOutput(parameters, name, context)
        else:
            path = self.parameterAsOutputLayer(parameters, name, context)
        if not path:
            return None
        if check_output_path(path, parameter=name):
            feedback.warning(f"{self.parameterDefinition(name).description()}: replacing existing file {path}")
        return path

    def memory_mb(self):
        """The memory budget setting in MB (processing_provider/settings.py)."""
        return settings.memory_mb()

    # -- styling -------------------------------------------------------------------------------
    def style_output(self, context, path, style):
        """Write a .qml next to output ``path`` and apply the style when Processing loads the layer.

        ``path`` is a raster or vector file, or the id of a temporary (memory) layer, which gets the
        style when loaded; see algorithms/styles.py for the styles (class map, ramp, graduated vector).
        """
        if not path:
            return
        qml = styles.write_style(path, style)
        if context.willLoadLayerOnCompletion(path):
            processor = styles.StylePostProcessor(qml, style)
            self._post_processors.append(processor)  # Processing does not keep a reference
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(processor)

    # -- errors ----------------------------------------------------------------------------------
    def fail(self, name, message, fix=""):
        """A QgsProcessingException naming parameter ``name`` (its label and id)."""
        definition = self.parameterDefinition(name) if name else None
        label = f"{definition.description()} ({name}): " if definition is not None else ""
        return QgsProcessingException(f"{label}{message} {fix}".strip())

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        bridge = QgisFeedback(feedback)
        missing = self.missing_packages()
        if missing:
            raise QgsProcessingException(dependencies.install_hint(missing))
        with compute.session(settings.device(), settings.threads()) as run:
            bridge.info(f"OreMap settings: compute device {compute.DEVICES[run.requested]}, threads "
                        f"{run.threads or 'all cores'}, memory budget {self.memory_mb():.0f} MB.")
            if run.fallback_message():
                bridge.warning(run.fallback_message())
            try:
                results = self._process_translated(parameters, context, bridge)
            finally:
                bridge.info(f"Compute device used: {run.summary()}.")
        for output in self.outputDefinitions():
            path = (results or {}).get(output.name())
            if output.type() == "outputHtml" and isinstance(path, str) and path:
                bridge.info(f"Report: {path} (opens from Processing > Results Viewer, or in a browser).")
        return results

    def _process_translated(self, parameters, context, bridge):
        """``process``, with core errors turned into QgsProcessingExceptions naming the parameter."""
        try:
            return self.process(parameters, context, bridge)
        except Cancelled:
            raise QgsProcessingException(self.tr("Cancelled: no output was written."))
        except OreMapError as exc:
            key = exc.parameter
            name = self._parameter_overrides.get(key) or self.CORE_PARAMETERS.get(key, key)
            if name and self.parameterDefinition(name) is None:
                name = None
            raise self.fail(name, exc.message, exc.fix or "")
        except MemoryError:
            raise QgsProcessingException(
                self.tr("Out of memory. Lower the memory budget in Processing > Options > Providers > OreMap."))

    def process(self, parameters, context, feedback):
        raise QgsProcessingException("This algorithm does not implement process().")
