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

import html
import math
import os
import functools
import re
import textwrap
import threading
import time
import weakref

import numpy as np

from qgis.core import (
    NULL,
    QgsApplication,
    QgsCoordinateTransform,
    QgsCsException,
    QgsDataSourceUri,
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterDefinition,
    QgsProcessingFeatureSourceDefinition,
    QgsMapLayer,
    QgsProcessingUtils,
    QgsProject,
    QgsProperty,
    QgsWkbTypes,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QUrl

from ..core.engine import compute, dependencies
from ..core.engine.errors import Cancelled, OreMapError
from ..core.engine.feedback import Feedback, ensure
from ..core.engine import files
from ..core.engine.files import OutputGuard, replace_blocked
from ..core.geochemistry import assay_text
from ..core.geochemistry.assay_text import NO_VALUE_WORDS, decimal as _decimal, word as _word
from ..core.engine.raster import (check_output_path, clean_partials, damaged_file_reason, gdal_cache_limit,
                                  memory_env_problem, output_name_problem)
from ..processing_provider import settings
from . import styles

GROUPS = {
    "hyperspectral": "Hyperspectral",
    "abundance": "Abundance",
    "sentinel2": "Sentinel-2",
    "geochemistry": "Geochemistry",
    "evaluation": "Evaluation",
    "batch": "Batch",
}

# Metadata key of a report output written to a temporary file when no path is set (add_report_output).
TEMPORARY_DEFAULT = "oremap_temporary_default"

HTML_FILTER = "HTML files (*.html *.htm)"
LIBRARY_FILTER = "Spectral libraries (*.sli *.hdr *.esl *.csv *.txt *.sed *.sig);;All files (*.*)"
#: The library formats every library parameter reads (core/hyperspectral/spectral_library.py, spectrometer_files.py).
LIBRARY_FORMATS = ("ENVI spectral library (.sli with .hdr); CSV (a first row naming the columns, then a wavelength "
                   "column in nm or micrometres and one column per spectrum, or one spectrum per row); or one "
                   "spectrum per file as spectrometers and published libraries write it: ECOSTRESS/ASTER "
                   ".spectrum.txt, USGS splib07 ASCII (inside its distribution folders, which hold the wavelength "
                   "files), ASD ViewSpec Pro text export, Spectral Evolution .sed, Spectra Vista .sig. Values in "
                   "per cent or x 10000 are divided to 0-1.")


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


def split_names(text, known=None, commas=True):
    """Names from a parameter string: separated by ';' or new lines if any, else by commas (not with ``commas``
    False: paths). A text without ';' that is itself the start of one of ``known`` names (case and spaces
    ignored) is one name: USGS names hold commas ('Jarosite GDS99 K,Sy 200C', 'Ferrihydrite GDS75 Sy, F6')."""
    from ..core.engine.names import name_key

    if not text or not text.strip():
        return []
    if re.search(r"[;\n]", text):
        parts = re.split(r"[;\n]", text)
    elif not commas or (known and any(name_key(k).startswith(name_key(text)) for k in known)):
        parts = [text]
    else:
        parts = text.split(",")
    return [p.strip() for p in parts if p.strip()]


#: Vector formats that keep no geometry (a vector output written so would lose its points or polygons).
NO_GEOMETRY_FORMATS = (".csv", ".xlsx", ".xls", ".ods", ".dbf")

#: Vector files OreMap writes its layers to. Another extension was written in a format QGIS chose from it, or under
#: another name: '.txt' became Geoconcept ('x.txt.gxt', every field text, the scores too), '.xyz' and '.json'
#: 'x.xyz.gpkg' and 'x.json.geojson', which a second run then replaced without a word; '.sqlite' lost its CRS (QGIS
#: 3.22's writer), so OreMap's next step refused the layer.
VECTOR_OUTPUT_FORMATS = (".gpkg", ".geojson", ".fgb")

#: Said under every deposits parameter: how to use some of a layer's points only.
DEPOSIT_SUBSET_NOTE = ("To use some of the layer's points only (the gold ones of a list of occurrences of several "
                       "commodities), select them and tick 'Selected features only', or in qgis_process give a "
                       "subset: 'sites.gpkg|layername=sites|subset=\"COMMODITY\" LIKE '%Au%''.")

# Help of the parameters the helpers below add; an algorithm's PARAM_HELP may refine any of them.
COMMON_PARAM_HELP = {
    "POINTS": "Instead of a library: a point layer on the raster; the pixel spectra of points with the same "
              "name are averaged into one reference (in any CRS: points are transformed to the raster's).",
    "NAME_FIELD": "Field of the point layer holding each point's class or endmember name.",
    "WAVELENGTHS": "Band centres in nm, comma separated, one per band; only needed when the raster carries no "
                   "wavelength metadata (ENVI header, GeoTIFF band metadata).",
    "NODATA": "A value to treat as nodata in addition to the raster's own nodata: a pixel with any band equal "
              "to it is skipped, except 0 in a spectral cube (10 bands or more), which makes a pixel nodata only where over 10 % of "
              "its bands are 0 (a few zero bands are a spectrum clipped at zero, kept and counted in the log). NaN "
              "is always nodata.",
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


def running_in_qgis_process():
    """True inside ``qgis_process`` (QGIS names its platform so), whose ``help`` prints text in a terminal."""
    return QgsApplication.platform() == "qgis_process"


def plain_text(fragment):
    """An HTML fragment of the help as plain text: tags dropped, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", str(fragment))).split())


def _number(value, integer=False):
    """A parameter value for the help: 150, 0.25, 1e-05."""
    value = float(value)
    return str(int(round(value))) if integer or value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def parameter_facts(definition):
    """What a parameter definition says about its values, as short sentences for its help: whether it is
    optional, its default and, for numbers, the allowed range. Generated from the definition, so the help
    always tells what Processing will use and accept."""
    facts = []
    optional = bool(definition.flags() & QgsProcessingParameterDefinition.FlagOptional)
    if definition.isDestination():
        if definition.metadata().get(TEMPORARY_DEFAULT):
            facts.append("Optional: when no file is set, it is written to a temporary file, which QGIS (or "
                         "qgis_process) removes when it exits.")
        elif optional:
            facts.append("Optional: skipped when not set." if not definition.createByDefault()
                         else "Optional: a temporary file when not set in the dialog; skipped when not given to "
                              "qgis_process.")
        return facts
    default = definition.defaultValue()
    kind = definition.type()
    if kind == "number" or isinstance(definition, QgsProcessingParameterNumber):
        integer = definition.dataType() == QgsProcessingParameterNumber.Integer
        if default is not None and default != "":
            facts.append(f"Default: {_number(default, integer)}.")
        elif optional:
            facts.append("Optional: no default.")
        lo, hi = definition.minimum(), definition.maximum()
        lo = None if lo is None or not math.isfinite(lo) or lo <= -1e300 else lo
        hi = None if hi is None or not math.isfinite(hi) or hi >= 1e300 else hi
        if lo is not None and hi is not None:
            facts.append(f"Allowed: {_number(lo, integer)} to {_number(hi, integer)}.")
        elif lo is not None:
            facts.append(f"Allowed: {_number(lo, integer)} or more.")
        elif hi is not None:
            facts.append(f"Allowed: {_number(hi, integer)} or less.")
        return facts
    if optional:
        facts.append("Optional.")
    if default is None or default == "" or default == []:
        return facts
    if kind == "enum":
        options = definition.options()
        chosen = default if isinstance(default, (list, tuple)) else [default]
        try:
            named = [f"{options[int(i)]} ({int(i)})" for i in chosen]
        except (TypeError, ValueError, IndexError):
            named = [str(i) for i in chosen]
        facts.append(f"Default: {', '.join(named)}.")
    elif kind == "boolean":
        facts.append(f"Default: {'yes' if default else 'no'}.")
    else:
        facts.append(f"Default: {default}.")
    return facts

NO_CRS_FIX_VECTOR = ("Assign its CRS (Layer Properties > Source > Assigned Coordinate Reference System, or "
                     "Vector > Data Management Tools > Assign Projection; e.g. EPSG:4326 for longitude/latitude) "
                     "and run again.")
NO_CRS_FIX_RASTER = ("Assign its CRS (Layer Properties > Source > Assigned Coordinate Reference System, or "
                     "Raster > Projections > Assign Projection, or gdal_edit.py -a_srs EPSG:xxxx FILE) and run again.")


def crs_missing(crs):
    """True for a CRS that is not there: invalid, or a placeholder such as the 'Undefined geographic SRS' of a
    GeoPackage table with srs_id 0 (or 'Undefined cartesian SRS', srs_id -1)."""
    return crs is None or not crs.isValid() or crs.description().strip().lower().startswith("undefined")


def as_number(value):
    """A field value as float: NaN for NULL, empty or non-numeric values."""
    if value is None or value == NULL:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def decimal_commas(source, fields):
    """Whether the text values of ``fields`` of a feature source are written with decimal commas
    (:func:`core.geochemistry.assay_text.decimal_comma_texts`): some value can only be read so ('0,05', '<0,5',
    '12,5') and none only with thousands separators ('1,250,000', '1,250.5'). A decimal-comma export then reads
    '1,945' as 1.945, not 1945."""
    index = [i for i in (source.fields().lookupField(f) for f in fields) if i >= 0]
    index = [i for i in index if not source.fields().at(i).isNumeric()]
    if not index:
        return False
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes(index)
    return assay_text.decimal_comma_texts(feature.attributes()[i] for feature in source.getFeatures(request)
                                          for i in index)


def column_reader(parse, source, fields):
    """``parse`` (:func:`assay_number`, :func:`abundance_number`) with the layer's decimal comma decided once for
    ``fields`` (:func:`decimal_commas`); other readers as they are."""
    if parse not in (assay_number, abundance_number) or not decimal_commas(source, fields):
        return parse
    return functools.partial(parse, comma="decimal")


#: Words of a mineral table (XRD, QEMSCAN, point counts) for a mineral looked for and not found, or found in a trace
#: below quantification: read as 0 (lower case, dots and spaces removed).
NOT_FOUND_WORDS = {"nd", "-", "--", "bdl", "notdetected", "tr", "trace", "tr?", "nf", "absent"}


def abundance_number(value, comma=None):
    """A mineral's amount as float (:func:`as_number`), where text of a mineral table reads as the table means it:
    ``'nd'``, ``'-'``, ``'tr'`` (not found, or a trace below quantification: :data:`NOT_FOUND_WORDS`) as 0,
    ``'<1'`` as half the limit, and a decimal comma (``'12,5'``) as a decimal point. Other text is NaN."""
    number = as_number(value)
    if number == number or not isinstance(value, str):
        return number
    text = value.strip()
    if _word(text) in NOT_FOUND_WORDS:
        return 0.0
    try:
        return abs(_decimal(text[1:], comma)) / 2.0 if text[:1] == "<" else _decimal(text, comma)
    except ValueError:
        return float("nan")


def _one_spelling(labels, field, feedback):
    """``labels`` with spellings of one name made one (:func:`core.engine.names.one_spelling`), the log told."""
    from ..core.engine.names import one_spelling

    return one_spelling(labels, f"'{field}'", "Fix the spelling in the layer to silence this.",
                        None if feedback is None else feedback.warning)


def _file_georeferencing(path):
    """``(placed by GCPs only, has a CRS)`` of a raster file as GDAL reads it (not as QGIS shows the layer: QGIS warps
    a GCP raster on the fly and shows a CRS assigned to the layer)."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    if dataset is None:
        return False, True
    gcp_only = dataset.GetGeoTransform(can_return_null=True) is None and dataset.GetGCPCount() > 0
    return gcp_only, bool(dataset.GetProjectionRef())


def _stamp_crs(alg, results, wkt):
    """Write ``wkt`` into each raster output of ``results`` that has no CRS (its input's CRS was assigned in QGIS)."""
    from osgeo import gdal

    for definition in alg.destinationParameterDefinitions():
        path = (results or {}).get(definition.name())
        if not isinstance(definition, QgsProcessingParameterRasterDestination) or not isinstance(path, str) \
                or not os.path.isfile(path):
            continue
        dataset = gdal.Open(path, gdal.GA_Update)
        if dataset is not None and not dataset.GetProjectionRef():
            dataset.SetProjection(wkt)
        dataset = None


def over_limit(value):
    """True for an element value given as over the laboratory's upper limit (``'>10000'``; read as the limit)."""
    return isinstance(value, str) and value.strip().startswith(">")


def assay_number(value, comma=None):
    """An element's value as float (:func:`as_number`); text is read by
    :func:`core.geochemistry.assay_text.assay_value`: ``'<0.5'`` (a survey compilation's value below the detection
    limit, which makes a CSV column load as text) is minus the limit, ``'>10000'`` (over range) the limit, ``'BDL'``
    ``-inf``, and a decimal comma (``'0,05'``; ``'1,250'`` is a thousands separator unless ``comma`` is
    ``"decimal"``: :func:`column_reader`) a decimal point; words for no result and other text are NaN. Element fields
    only: elsewhere (abundances, scores) a '<' value stays NaN."""
    if isinstance(value, str):
        return assay_text.assay_value(value, comma)
    return as_number(value)


def text_numbers(source, fields):
    """``{field: (values, numbers, an example value)}`` for text ``fields`` of the feature source: how many
    features hold a text value that is not empty nor a word for "no result" (``assay_text.NO_VALUE_WORDS``), how many
    of those read as element values (:func:`assay_number`; 'BDL' included), and one that does not (None when all
    do). Values that are not text (a Bool field's) count as none."""
    if not fields:
        return {}
    index = [source.fields().lookupField(f) for f in fields]
    counts = {f: [0, 0, None] for f in fields}
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes(index)
    for feature in source.getFeatures(request):
        attributes = feature.attributes()
        for f, i in zip(fields, index):
            value = attributes[i]
            if not isinstance(value, str) or not value.strip() or _word(value) in NO_VALUE_WORDS:
                continue
            counts[f][0] += 1
            number = assay_number(value)
            if np.isfinite(number) or number == float("-inf"):
                counts[f][1] += 1
            elif counts[f][2] is None:
                counts[f][2] = str(value)
    return {f: tuple(c) for f, c in counts.items()}


MODEL_OUTPUT = "OUTPUT_MODEL"

_LIBRARY_NAMES_LOCK = threading.Lock()
_LIBRARY_NAMES_GIVEN = set()
"""Model library file names handed out in this process in the current second (:meth:`OreMapAlgorithm.library_model_path`;
names carry their second, so older ones cannot be handed out again and are forgotten)."""
MODEL_OUTPUT_NOTE = ("Left at its default (a temporary file), the model is saved in the model library folder "
                     "(Plugins > OreMap > Settings; listed in Plugins > OreMap > Model library) as "
                     "&lt;algorithm&gt;_&lt;date-time&gt;.onnx. In qgis_process, which needs every output named, "
                     "give OUTPUT_MODEL=TEMPORARY_OUTPUT for that.")


def resolved_value(value, context=None):
    """A parameter value as Processing reads it: an output's sink or a feature source's source unwrapped, a
    data-defined value (QgsProperty: an expression in a model or a script) evaluated in ``context``'s expression
    context, its static value without a context. An expression's value had been taken for a static value: empty,
    so an output named by one counted as temporary (a model saved to the library instead of the file named, an
    output that was also the input not refused)."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    elif isinstance(value, QgsProcessingFeatureSourceDefinition):
        value = value.source
    if isinstance(value, QgsProperty):
        if context is None or value.propertyType() == QgsProperty.StaticProperty:
            return value.staticValue()
        value = value.value(context.expressionContext(), None)
        value = value[0] if isinstance(value, tuple) else value   # (value, ok) in PyQGIS
    return value


def is_temporary_output(value, context=None):
    """True for a destination left at Processing's temporary output (or not given)."""
    return resolved_value(value, context) in (None, "", QgsProcessing.TEMPORARY_OUTPUT)


#: Files a vector format's writer makes beside the file it names, by its extension: SQLite's journals (GeoPackage,
#: SpatiaLite) and a shapefile's parts; the guard of a feature sink keeps and restores them with the file.
SINK_SIDE_FILES = {".gpkg": ("-wal", "-shm", "-journal"), ".sqlite": ("-wal", "-shm", "-journal"),
                   ".db": ("-wal", "-shm", "-journal"),
                   ".shp": (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".shp.xml")}


def sink_side_files(path):
    """The files a writer of vector file ``path`` may make beside it (:data:`SINK_SIDE_FILES`): ``x.gpkg-wal``...,
    or a shapefile's ``x.shx``, ``x.dbf``... (spelt in the case of its extension)."""
    stem, extension = os.path.splitext(path)
    sides = SINK_SIDE_FILES.get(extension.lower(), ())
    if extension.lower() == ".shp":
        return [stem + (side.upper() if extension.isupper() else side) for side in sides]
    return [path + side for side in sides]   # SQLite names its journals so whatever the case


class RunGuard(OutputGuard):
    """A run's :class:`OutputGuard`, which also guards the files of its feature sinks (vector outputs).

    Processing writes a sink itself (:meth:`OreMapAlgorithm.parameterAsSink`): before it creates the file,
    :meth:`add_sink` keeps the file there (and its side files, :func:`sink_side_files`) and clears the way, so the
    writer always makes a new file and never rewrites the kept one (SQLite's journals are rewritten in place);
    :meth:`track` follows the sink objects. :meth:`rollback` first closes the sinks still open (a failure or a
    cancel leaves them referenced by the traceback, their file held open by GDAL), then puts back what was there
    and removes what the run made. ``left`` then names the files made by the run that could not be removed.
    """

    def __init__(self):
        super().__init__()
        self._sinks = []  # weak references: a sink the algorithm has let go of is closed already
        self.left = []

    def add_sink(self, path, parameter=None):
        """Guard the file ``path`` a feature sink is about to write (with its style, its side files and the mark
        of :func:`claim`), moving an existing one aside; returns the stale kept copies removed."""
        path = os.path.abspath(os.fspath(path))
        if os.path.isdir(path):
            return []
        removed = self.add(path, parameter)
        data = [path] + [os.path.abspath(p) for p in sink_side_files(path)]
        for side in data[1:]:
            removed += self.add_file(side)
        for name in data:
            if self._entries.get(name) is not None:  # kept: the writer finds no file to rewrite or reopen
                try:
                    os.remove(name)
                except OSError:
                    pass  # held open (Windows): the writer replaces it as before, the kept copy is still there
        return removed

    def track(self, sink):
        """Follow a feature sink of the run, to close it before a rollback."""
        if sink is not None:   # a weak reference: holding the sink would keep its file open past the algorithm
            self._sinks.append(weakref.ref(sink))

    def close_sinks(self):
        """Close (delete) the sinks still open: GDAL writes and lets go of their files."""
        for ref in self._sinks:
            sink = ref()
            if sink is not None and not sip.isdeleted(sink):
                try:
                    sip.delete(sink)
                except RuntimeError:
                    pass
        self._sinks = []

    def rollback(self):
        self.close_sinks()
        made = [path for path, kept in self._entries.items() if kept is None]
        unrestored = super().rollback()
        self.left = [path for path in made if os.path.lexists(path) and not os.path.isdir(path)]
        return unrestored

    def commit(self):
        self._sinks = []
        super().commit()


def fields_hint(source, what="fields"):
    """``"Choose <what> of the layer: a, b, c (and N more)."``: the fix of an error about a missing field."""
    names = list(source.fields().names())
    listed = ", ".join(names[:25]) + (f" (and {len(names) - 25} more)" if len(names) > 25 else "")
    return f"Choose {what} of the layer: {listed}." if names else "The layer has no fields."


def require_fields(alg, source, fields, parameter="FIELDS", what="element fields", numeric=False):
    """Refuse ``fields`` that the layer ``source`` lacks (the error lists its fields) or, with ``numeric``, text
    fields that hold no number (a text field of numbers, or of values such as ``'<0.5'``, is read as numbers:
    :func:`assay_number`): one error naming ``parameter``."""
    missing = [f for f in fields if source.fields().lookupField(f) < 0]
    if missing:
        raise alg.fail(parameter, f"Fields not in the layer: {', '.join(missing)}.", fields_hint(source, what))
    if not numeric:
        return
    found = text_numbers(source, [f for f in fields if not source.fields().field(f).isNumeric()])
    text = [f for f, (_, numbers, _) in found.items() if numbers == 0]
    if text:
        examples = "; ".join(f"{f}: '{found[f][2]}'" for f in text if found[f][2] is not None)
        raise alg.fail(parameter, f"Field{'s' if len(text) > 1 else ''} {', '.join(text)} "
                                  f"{'hold' if len(text) > 1 else 'holds'} no numbers"
                                  + (f" ({examples})." if examples else "."), f"Choose numeric {what}.")


INPUT_FILE_TYPES = {"raster", "source", "vector", "multilayer", "layer", "mesh", "pointcloud", "file"}
"""Processing parameter types whose values name files (layers, or paths): the inputs an output may not replace."""


def files_of(value, context, layers=True):
    """The local files a parameter value names (real paths): a path, a ``file://`` URI, a layer's source (a
    layer object, or with ``layers`` a layer id or name of the project), a feature source or output definition,
    or a list of them; an OGR/GDAL suffix (``|layername=...``) is dropped."""
    return [path for path, _ in layers_of(value, context, layers)]


def layers_of(value, context, layers=True):
    """:func:`files_of` as ``(real path, layer name or None)``: the layer of a multi-layer file (``|layername=``)
    that the value names, None where it names none (OGR then opens the file's first layer)."""
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in layers_of(v, context, layers)]
    value = resolved_value(value, context)
    if isinstance(value, QgsMapLayer):
        value = value.source()
    elif isinstance(value, str) and value and layers and not os.path.exists(value.split("|")[0]):
        layer = QgsProcessingUtils.mapLayerFromString(value, context, False)
        value = layer.source() if layer is not None else value
    if not isinstance(value, str) or not value:
        return []
    if value.startswith("file://"):  # Qt's reading: C:/... on Windows (not /C:/...), //server/share for UNC
        value = QUrl(value).toLocalFile()
    value, layer = split_layer_name(value)
    return [(os.path.realpath(value), layer)] if value else []


#: A provider's URI (``memory:``, ``ogr:dbname=...``, ``postgres:``), not a path: ``C:/...`` has a one-letter scheme.
PROVIDER_URI = re.compile(r"^[A-Za-z][A-Za-z0-9_+.-]+:")


def split_layer_name(value):
    """``(file, layer name or None)`` of an OGR source ``/x/y.gpkg|layername=mines`` (other options dropped)."""
    file_part, *options = value.split("|")
    return file_part, next((o.split("=", 1)[1] for o in options if o.lower().startswith("layername=")), None)


def ogr_sink_layer(value):
    """``(file, table)`` of an ``ogr:dbname='/x/y.gpkg' table="mines" (geom)`` destination (the Toolbox's "Save to
    GeoPackage..."), or None for any other value."""
    if not isinstance(value, str) or not value.startswith("ogr:"):
        return None
    uri = QgsDataSourceUri(value[4:])
    return (os.path.realpath(uri.database()), uri.table()) if uri.database() and uri.table() else None


def gpkg_layer_names(path):
    """The names of the layers of the vector file ``path`` (empty where OGR cannot open it)."""
    from osgeo import ogr

    try:
        dataset = ogr.Open(path)
        return [dataset.GetLayer(i).GetName() for i in range(dataset.GetLayerCount())] if dataset is not None else []
    except RuntimeError:
        return []


def first_layer_name(path):
    """The name of the layer OGR opens from ``path`` when no layer is named (its first), or None."""
    return next(iter(gpkg_layer_names(path)), None)


def locked_output_problem(path, project, windows=None):
    """``(message, fix)`` when the existing output file ``path`` could not be replaced at the end of the run, else
    None: on Windows a file loaded as a layer of ``project`` (GDAL keeps it open without sharing its deletion) or
    open in another program (:func:`core.engine.files.replace_blocked`). Elsewhere a loaded file can be replaced."""
    if not (files.WINDOWS if windows is None else windows) or not os.path.isfile(path):
        return None
    key = files.file_key(os.path.realpath(path))
    for layer in (project.mapLayers().values() if project is not None else ()):
        if any(files.file_key(p) == key for p in files_of(layer, None, layers=False)):
            return (f"{os.path.basename(path)} is loaded in the project as the layer '{layer.name()}'. Windows keeps a "
                    "loaded file locked, so it could not be replaced: the run would fail at its end.",
                    "Remove the layer from the project (Layers panel: right-click > Remove Layer), or choose another "
                    "file name.")
    if replace_blocked(path):
        return (f"{os.path.basename(path)} is open in another program (or another QGIS), which keeps it locked: it "
                "could not be replaced.", "Close it there, or choose another file name.")
    return None


class OreMapAlgorithm(QgsProcessingAlgorithm):
    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "hyperspectral"
    TAGS = ""
    HELP = ""
    PARAM_HELP = {}
    #: Fields longer than a shapefile's 10 characters in each vector output (named when a .shp is refused).
    LONG_FIELDS = {}
    OUTPUT_HELP = {}
    REFERENCES = []
    # Optional Python packages (core/engine/dependencies.py) without which the algorithm cannot run, and
    # {package: what for} of those only some of its options need. A missing one is named, with how to
    # install it, at the top of the help and when the algorithm is started; the provider loads regardless.
    REQUIRES = ()
    RECOMMENDS = {}

    # what a cancelled run says; an algorithm that keeps finished parts (the batch) says so instead
    CANCEL_MESSAGE = "Cancelled: no output was written."

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
        self._parameter_overrides = {}  # core error key -> parameter, decided while running
        self._rasters_without_crs = []  # raster parameters resolved without a CRS in this run
        self._assigned_crs = None  # WKT of a CRS assigned in QGIS to an input file without one, written to outputs
        self._said_not_points = set()  # point parameters whose lines or polygons the log has named

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

    def shortHelpString(self):  # noqa: N802
        """Help: what it does, each parameter (with its default and allowed range), each output, references.

        HTML for the dialog's help panel; plain text under ``qgis_process``, whose ``help`` prints it in a
        terminal (and, since :meth:`shortDescription` is empty there, prints the description once).
        """
        if running_in_qgis_process():
            return self.help_text()
        return self.help_html()

    def shortDescription(self):  # noqa: N802
        """The first paragraph of the help (toolbox tooltip); empty under ``qgis_process``, whose ``help`` prints
        the short description and then the whole help, so the paragraph would appear twice."""
        if running_in_qgis_process():
            return ""
        return self.tr(self.HELP).split("\n\n")[0]

    def help_sections(self):
        """``(paragraphs, [(title, [(label, name, text)])], references)``: the help's content, each parameter's text
        followed by what its definition says (:func:`parameter_facts`), so defaults and ranges cannot drift."""
        paragraphs = self.tr(self.HELP).split("\n\n")
        sections = []
        for title, destination, texts in (("Parameters", False, {**COMMON_PARAM_HELP, **self.PARAM_HELP}),
                                          ("Outputs", True, self.OUTPUT_HELP)):
            definitions = [d for d in self.parameterDefinitions() if d.isDestination() == destination]
            if definitions:
                sections.append((title, [(d.description(), d.name(),
                                          " ".join(t for t in [self.tr(texts.get(d.name(), "")),
                                                            MODEL_OUTPUT_NOTE if d.name() == MODEL_OUTPUT else "",
                                                            DEPOSIT_SUBSET_NOTE if d.name() == "DEPOSITS" else ""]
                                                   + parameter_facts(d) if t)) for d in definitions]))
        values = [o for o in self.outputDefinitions() if self.parameterDefinition(o.name()) is None]
        if values:
            sections.append(("Values reported", [(o.description(), o.name(), self.tr(self.OUTPUT_HELP.get(o.name(), "")))
                                                 for o in values]))
        return paragraphs, sections, list(self.REFERENCES)

    def help_html(self):
        """The help as HTML (the dialog's help panel)."""
        paragraphs, sections, references = self.help_sections()
        html = self.dependency_notice() + [f"<p>{p}</p>" for p in paragraphs]
        for title, entries in sections:
            html.append(f"<h3>{title}</h3><dl>")
            html += [f"<dt><b>{label}</b> (<code>{name}</code>)</dt><dd>{text}</dd>" for label, name, text in entries]
            html.append("</dl>")
        if references:
            html.append("<h3>References</h3><ul>")
            html += [f"<li>{r}</li>" for r in references]
            html.append("</ul>")
        return "\n".join(html)

    def help_text(self):
        """The help as plain text wrapped for a terminal (``qgis_process help``)."""
        paragraphs, sections, references = self.help_sections()
        wrap = textwrap.TextWrapper(width=100, break_long_words=False, break_on_hyphens=False)
        lines = []
        for notice in self.dependency_notice():
            lines += wrap.wrap(plain_text(notice)) + [""]
        for p in paragraphs:
            lines += wrap.wrap(plain_text(p)) + [""]
        indent = textwrap.TextWrapper(width=100, initial_indent="    ", subsequent_indent="    ",
                                      break_long_words=False, break_on_hyphens=False)
        for title, entries in sections:
            lines += [title, "-" * len(title)]
            for label, name, text in entries:
                lines.append(f"{name}: {plain_text(label)}")
                lines += indent.wrap(plain_text(text)) or ["    (no description)"]
            lines.append("")
        if references:
            lines += ["References", "-" * 10]
            for r in references:
                lines += indent.wrap("- " + plain_text(r))
        return "\n".join(lines).rstrip()

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
            "LIBRARY", self.tr("Spectral library (ENVI .sli, CSV or spectrum files)"),
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

    def field_names(self, parameters, name, context):
        """The field names chosen in the field parameter ``name``. QGIS 3.32 deprecates ``parameterAsFields`` for
        ``parameterAsStrings`` (the same list; QGIS 4 drops deprecated calls): the newer where QGIS has it."""
        if hasattr(self, "parameterAsStrings"):
            return self.parameterAsStrings(parameters, name, context)
        return self.parameterAsFields(parameters, name, context)  # qgis4-scan: allow (QGIS before 3.32)

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

    def add_report_output(self, name, label, file_filter=HTML_FILTER):
        """A report or table file that ``qgis_process`` need not be given: optional, and written to a temporary
        file (named in the log and the results) when no path is set."""
        parameter = self.add_file_output(name, label, file_filter, optional=True, create=True)
        parameter.setMetadata({**parameter.metadata(), TEMPORARY_DEFAULT: True})
        return parameter

    def add_value_output(self, name, label, kind="number"):
        """A value the algorithm reports (e.g. an accuracy), offered to later steps of a model."""
        output = {"number": QgsProcessingOutputNumber, "boolean": QgsProcessingOutputBoolean,
                  "string": QgsProcessingOutputString, "file": QgsProcessingOutputFile}[kind]
        self.addOutput(output(name, self.tr(label)))

    def add_raster_output(self, name, label, optional=False, create=None):
        """A raster destination; an optional one is still created by default when ``create`` is True."""
        return self._add(QgsProcessingParameterRasterDestination(
            name, self.tr(label), optional=optional, createByDefault=(not optional) if create is None else create))

    # -- resolving parameters --------------------------------------------------------------------
    def raster_path(self, parameters, name, context, require_crs=False):
        """``(file path, layer)`` of a raster parameter.

        The CRS rule (one for every input): a raster without a CRS is refused, with the fix, when
        ``require_crs`` (the algorithm measures in map units) or when a vector layer has to be placed on it
        (:meth:`source_features`); a raster only processed pixel by pixel (e.g. a drill-core scan) runs.
        A CRS the user assigned to the layer in QGIS counts as its CRS.
        A sensor product (EMIT L2A RFL .nc, EnMAP L2A METADATA.XML or SPECTRAL_IMAGE file, PRISMA L2D .he5, or an
        EnMAP or PRISMA product's ZIP;
        core/hyperspectral/sensor_products.py) is first written once to a GeoTIFF with its wavelengths in the
        Processing temporary folder, and that GeoTIFF is used.
        """
        from ..core.hyperspectral import sensor_products

        value = parameters.get(name)
        if isinstance(value, str) and value and sensor_products.detect(value):
            return self._product_raster(name, value)
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise self.fail(name, "No raster was given or it could not be loaded.", "Choose a raster layer.")
        if sensor_products.detect(layer.source()):
            return self._product_raster(name, layer.source())
        if layer.providerType() != "gdal" or not os.path.exists(layer.source().split("|")[0]):
            raise self.fail(name, f"'{layer.name()}' is not a raster file on disk.",
                            "Save it as GeoTIFF first (Raster > Conversion > Translate).")
        path = layer.source().split("|")[0]
        gcp_only, file_crs = _file_georeferencing(path)
        if gcp_only:
            raise self.fail(name, f"'{layer.name()}' is placed on the map by ground control points (GCPs) only; "
                                  "OreMap works on rasters with a map grid, and its outputs would lose the placing.",
                            "Warp it onto a map grid first (Raster > Projections > Warp (Reproject), or gdalwarp), "
                            "and give the warped raster.")
        if crs_missing(layer.crs()):
            if require_crs:
                raise self.fail(name, f"'{layer.name()}' has no coordinate reference system (CRS), so distances "
                                      "and positions on it mean nothing.", NO_CRS_FIX_RASTER)
            if name not in self._rasters_without_crs:
                self._rasters_without_crs.append(name)
                self._warn_no_crs(name, layer)
        elif not file_crs and self._assigned_crs is None:
            # a CRS assigned in QGIS to a file without one: the outputs get it too (processAlgorithm)
            self._assigned_crs = layer.crs().toWkt()
            feedback = getattr(self, "_feedback", None)
            if feedback is not None:
                feedback.info(f"'{layer.name()}' has no CRS in its file; the CRS assigned to it in QGIS "
                              f"({layer.crs().authid() or layer.crs().description()}) is written to the raster "
                              "outputs.")
        return path, layer

    def _warn_no_crs(self, name, layer):
        """Say plainly that a raster without a CRS is used (pixel by pixel work, e.g. a drill-core scan)."""
        feedback = getattr(self, "_feedback", None)
        definition = self.parameterDefinition(name)
        label = f"{definition.description()} ({name})" if definition is not None else name
        if feedback is not None:
            feedback.warning(f"{label}: '{layer.name()}' has no coordinate reference system (CRS). It is processed "
                             "pixel by pixel and the outputs have no CRS either. If it is a map, assign its CRS "
                             "(Layer Properties > Source, or Raster > Projections > Assign Projection) and run again.")

    def _product_raster(self, name, source):
        from qgis.core import QgsRasterLayer

        from ..core.hyperspectral import sensor_products

        self._parameter_overrides["raster"] = name
        feedback = getattr(self, "_feedback", None)
        folder = os.path.join(QgsProcessingUtils.tempFolder(), "oremap_products")
        path = sensor_products.prepare_input(source, folder, memory_mb=self.memory_mb(), feedback=feedback)
        layer = QgsRasterLayer(path, os.path.basename(path), "gdal")
        if not layer.isValid():
            raise self.fail(name, f"The GeoTIFF made from the product cannot be loaded: {path}.")
        return path, layer

    def file_list(self, parameters, name, context):
        """The files of a multiple-file parameter, empty entries left out. A value typed as one text 'a.sli;b.sli'
        (QGIS's batch panel keeps what is typed in a cell, and parameterAsFileList does not split it) is split where
        it is no file itself."""
        out = []
        for path in self.parameterAsFileList(parameters, name, context):
            parts = path.split(";") if path and ";" in path and not os.path.exists(path) else [path]
            out += [part.strip() for part in parts if part and part.strip()]
        return out

    def source_label(self, parameters, name, context, source):
        """How a report names the vector input ``name``: its source's name, else its layer's, else the file of the
        path or URI given (a CSV given as a ``file:///...csv?type=csv&...`` URI has no source name)."""
        label = source.sourceName() if source is not None else ""
        if not label:
            layer = self.parameterAsVectorLayer(parameters, name, context)
            label = layer.name() if layer is not None else ""
        if not label:
            value = parameters.get(name)
            value = value if isinstance(value, str) else getattr(value, "source", None)
            value = value.staticValue() if hasattr(value, "staticValue") else value
            if isinstance(value, str) and value:
                from urllib.parse import unquote

                path = value.split("|")[0].split("?")[0]
                path = path.split("://", 1)[1] if path.startswith("delimitedtext://") else path
                path = unquote(path[len("file://"):]) if path.startswith("file://") else path
                label = os.path.basename(path) or value
        return label or name

    def require_geometry_type(self, name, source):
        """Refuse a layer whose geometry type the parameter does not take (e.g. polygons given where points are
        expected; ``qgis_process`` does not check it): their vertices would be taken as samples."""
        from qgis.core import QgsWkbTypes

        definition = self.parameterDefinition(name) if name else None
        types = list(definition.dataTypes()) if hasattr(definition, "dataTypes") else []
        kind = QgsWkbTypes.geometryType(source.wkbType())
        allowed = {QgsProcessing.TypeVectorPoint: QgsWkbTypes.PointGeometry,
                   QgsProcessing.TypeVectorLine: QgsWkbTypes.LineGeometry,
                   QgsProcessing.TypeVectorPolygon: QgsWkbTypes.PolygonGeometry}
        if not types or any(t not in allowed for t in types) or kind in (QgsWkbTypes.UnknownGeometry,
                                                                          QgsWkbTypes.NullGeometry):
            return
        accepted = {allowed[t] for t in types}
        if kind not in accepted:
            # a file of mixed geometries (GeoJSON) is typed by its first feature: such a layer is taken when any
            # feature has an accepted type, as when that feature comes first (the readers warn of the others)
            for feature in source.getFeatures(QgsFeatureRequest().setNoAttributes()):
                geometry = feature.geometry()
                if geometry is not None and not geometry.isNull() and geometry.type() in accepted:
                    return
            words = {QgsWkbTypes.PointGeometry: "points", QgsWkbTypes.LineGeometry: "lines",
                     QgsWkbTypes.PolygonGeometry: "polygons"}
            wanted = " or ".join(words[allowed[t]] for t in types)
            hint = (" (Vector > Geometry Tools > Centroids turns polygons into points)."
                    if allowed[types[0]] == QgsWkbTypes.PointGeometry and kind == QgsWkbTypes.PolygonGeometry else ".")
            raise self.fail(name, f"The layer holds {words.get(kind, 'other geometries')}; this input takes "
                                  f"{wanted}.", f"Choose a layer of {wanted}{hint}")

    def require_layer_crs(self, name, source):
        """Refuse a vector source (of parameter ``name``) without a CRS: the CRS rule, see :meth:`raster_path`."""
        if source is not None and source.wkbType() == QgsWkbTypes.NoGeometry:
            raise self.fail(name, "The layer is a table without geometry (a CSV opened as it is), so its rows have "
                                  "no place.",
                            "Load it as points: Layer > Add Layer > Add Delimited Text Layer with its X/Y (or "
                            "longitude/latitude) fields and their CRS, or in qgis_process a URI such as "
                            "'delimitedtext://file:///path/samples.csv?xField=X&yField=Y&crs=EPSG:4326'. If the "
                            "file already names its X/Y fields, their values did not read as numbers: coordinates "
                            "written with decimal commas need '&decimalPoint=,' (the dialog's 'Decimal separator "
                            "is comma').")
        if source is not None and QgsWkbTypes.flatType(source.wkbType()) == QgsWkbTypes.GeometryCollection:
            # QGIS shows such a layer as a table without a CRS: saying "no CRS" would send the user the wrong way
            raise self.fail(name, "The layer holds geometry collections, which QGIS treats as geometry-less (and "
                                  "without a CRS).",
                            "Split them into single parts first (Vector > Geometry Tools > Multipart to Singleparts) "
                            "and give that layer.")
        if source is not None and crs_missing(source.sourceCrs()):
            raise self.fail(name, "The layer has no coordinate reference system (CRS), so it cannot be placed "
                                  "on other layers or measured in metres.", NO_CRS_FIX_VECTOR)

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
        lib = read_library(path, feedback=feedback)
        names = split_names(self.parameterAsString(parameters, "SPECTRA", context), known=lib.names)
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

    def source_features(self, source, context, target_crs, skip_validity=False, name=None):
        """``(feature, geometry)`` for every feature of a feature source, the geometry transformed to
        ``target_crs`` (when both CRSs are valid and differ), or None for a feature without one.

        ``skip_validity`` reads invalid geometries too (e.g. self-touching polygons that the core repairs)
        instead of letting Processing's validity check refuse the layer. A source or target without a CRS is
        refused (the CRS rule); ``name`` is the source's parameter, named in that message.
        """
        self.require_layer_crs(name, source)
        self.require_geometry_type(name, source)
        if target_crs is not None and crs_missing(target_crs):
            raster = self._rasters_without_crs[-1] if self._rasters_without_crs else None
            raise self.fail(raster, "The raster has no coordinate reference system (CRS), so "
                            + (f"{self.parameterDefinition(name).description()} " if name else "the vector layer ")
                            + "cannot be placed on it.", NO_CRS_FIX_RASTER)
        transform = None
        if source.sourceCrs().isValid() and target_crs.isValid() and source.sourceCrs() != target_crs:
            transform = QgsCoordinateTransform(source.sourceCrs(), target_crs, context.transformContext())
        features = (source.getFeatures(QgsFeatureRequest(), QgsProcessingFeatureSource.FlagSkipGeometryValidityChecks)
                    if skip_validity else source.getFeatures())
        points_only = self._takes_points_only(name)
        not_points = []
        for feature in features:
            geometry = feature.geometry()
            if geometry is None or geometry.isNull() or geometry.isEmpty():
                yield feature, None
                continue
            if QgsWkbTypes.isCurvedType(geometry.wkbType()):
                # arcs (QGIS's curve digitising, GeoPackages and FileGDB exports of CurvePolygon / MultiSurface, even
                # with straight rings only) have no WKB shapely reads: segments of at most one degree of arc
                geometry.convertToStraightSegment()
                if QgsWkbTypes.isCurvedType(geometry.wkbType()):   # a MultiSurface of straight rings stays one
                    geometry = (geometry.coerceToType(QgsWkbTypes.linearType(geometry.wkbType())) or [geometry])[0]
            if points_only and QgsWkbTypes.geometryType(geometry.wkbType()) != QgsWkbTypes.PointGeometry:
                # a pit outline among the points of a layer of mixed geometry: its vertices would each be a point
                not_points.append(feature.id())
                geometry = geometry.centroid()
            if transform is not None:
                try:
                    geometry.transform(transform)
                except QgsCsException:
                    crs = source.sourceCrs()
                    first = feature.geometry().vertexAt(0)   # a fresh copy: the transform left inf in this one
                    raise self.fail(name, f"Feature {feature.id()} at ({first.x():.6g}, {first.y():.6g}) "
                                    f"cannot be placed from its CRS {crs.authid() or crs.description()} into "
                                    f"{target_crs.authid() or target_crs.description()}: its coordinates are not "
                                    "valid there.",
                                    "Check the layer's CRS (Layer Properties > Source): coordinates in metres "
                                    "labelled as degrees (EPSG:4326) are the usual cause; assign the CRS the "
                                    "coordinates are in.") from None
            yield feature, geometry
        if not_points and getattr(self, "_feedback", None) is not None and name not in self._said_not_points:
            self._said_not_points.add(name)   # once per parameter, however often the layer is read
            label = self.parameterDefinition(name).description() if name else "the layer"
            self._feedback.warning(f"{len(not_points)} features of {label} are lines or polygons in a layer of points "
                                   "(mixed geometry): each is taken as one point, its centroid (feature ids "
                                   + ", ".join(str(i) for i in not_points[:10])
                                   + (" ..." if len(not_points) > 10 else "") + ").")

    def _takes_points_only(self, name):
        """Whether parameter ``name`` takes points only (a layer of mixed geometry may still hold polygons)."""
        definition = self.parameterDefinition(name) if name else None
        types = list(definition.dataTypes()) if hasattr(definition, "dataTypes") else []
        return bool(types) and all(t == QgsProcessing.TypeVectorPoint for t in types)

    def labelled_geometries(self, parameters, name, field_name, context, target_crs, feedback=None, with_ids=False):
        """Shapely geometries (in ``target_crs``) and labels of a vector parameter's features (and, ``with_ids``,
        their feature ids, for log lines that name them as QGIS does).

        Features without a geometry or a label are left out, and ``feedback`` says how many.
        """
        from shapely import wkb

        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise self.fail(name, "No vector layer was given.", "Choose a point or polygon layer.")
        field = self.parameterAsString(parameters, field_name, context)
        if not field:
            raise self.fail(field_name, "No class field was chosen.", fields_hint(source, "the class field"))
        if source.fields().lookupField(field) < 0:
            raise self.fail(field_name, f"Field '{field}' is not in the layer.", fields_hint(source, "the class field"))
        geometries, labels, ids, skipped = [], [], [], 0
        for feature, geometry in self.source_features(source, context, target_crs, name=name):
            value = feature[field]
            if geometry is None or value is None or value == NULL or str(value).strip() == "":
                skipped += 1
                continue
            geometries.append(wkb.loads(bytes(geometry.asWkb())))
            if isinstance(value, float) and value.is_integer():
                value = int(value)   # a class code in a Real field: 1, not '1.0'
            labels.append(value if isinstance(value, int) else str(value).strip())
            ids.append(feature.id())
        if not geometries:
            raise self.empty_layer(parameters, name, context,
                                   f"The layer has no features with both a geometry and a '{field}' value.",
                                   f"Fill the '{field}' field of the features.")
        if skipped and feedback is not None:
            feedback.warning(f"{skipped} features of {self.parameterDefinition(name).description()} have no "
                             f"geometry or no '{field}' value and were left out.")
        labels = _one_spelling(labels, field, feedback)
        return (geometries, labels, ids) if with_ids else (geometries, labels)

    def features_with_values(self, parameters, name, fields, context, target_crs, feedback=None,
                             fields_parameter="FIELDS", parse=as_number):
        """Shapely geometries (in ``target_crs``), a (n, len(fields)) float table (NaN = empty) and
        feature ids of a vector parameter's features with a geometry. A field not in the layer is refused,
        naming ``fields_parameter``; ``parse`` reads a value (:func:`abundance_number` for mineral amounts)."""
        from shapely import wkb

        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise self.fail(name, "No vector layer was given.", "Choose a point or polygon layer.")
        missing = [f for f in fields if source.fields().lookupField(f) < 0]
        if missing:
            raise self.fail(fields_parameter, f"Field{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(f) for f in missing)} not in the layer "
                            f"{self.parameterDefinition(name).description()}.",
                            fields_hint(source))
        geometries, rows, ids, skipped = [], [], [], 0
        parse = column_reader(parse, source, fields)
        for feature, geometry in self.source_features(source, context, target_crs, name=name):
            if geometry is None:
                skipped += 1
                continue
            geometries.append(wkb.loads(bytes(geometry.asWkb())))
            rows.append([parse(feature[field]) for field in fields])
            ids.append(feature.id())
        if not geometries:
            raise self.fail(name, "The layer has no features with a geometry.", "Choose a layer with features.")
        if skipped and feedback is not None:
            feedback.warning(f"{skipped} features of {self.parameterDefinition(name).description()} have no "
                             "geometry and were left out.")
        return geometries, np.asarray(rows, dtype=float).reshape(len(rows), len(fields)), ids

    def layer_points(self, parameters, name, context, target_crs, fields=(), feedback=None, parse=as_number,
                     over=None, fids=None):
        """Coordinates (in ``target_crs``) of every point of a point-layer parameter, and the values of ``fields``.

        MultiPoint features give one row per point. Features without a geometry are left out (and
        counted in the log). Values that are NULL or not numbers become NaN; ``parse`` reads a value
        (:func:`assay_number` for element fields).

        Returns ``(xs, ys, {field: list of float})``; ``over``, a list, gets a row of booleans for every point:
        which of its values were over the laboratory's upper limit (``'>10'``); ``fids``, a list, every point's
        feature id.
        """
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise self.fail(name, "No point layer was given.", "Choose a point layer.")
        xs, ys, values, skipped = self.source_points(source, context, target_crs, fields, name=name, parse=parse,
                                                     over=over, fids=fids)
        if skipped and feedback is not None:
            feedback.warning(f"{skipped} features of {self.parameterDefinition(name).description()} have no "
                             "geometry and were left out.")
        return xs, ys, values

    def source_points(self, source, context, target_crs, fields=(), name=None, parse=as_number, over=None,
                      fids=None):
        """``(xs, ys, {field: values}, features without a geometry)`` of a feature source's points (every vertex),
        in ``target_crs``; see :meth:`layer_points`."""
        indexes = [source.fields().lookupField(f) for f in fields]
        xs, ys, values, skipped = [], [], {f: [] for f in fields}, 0
        parse = column_reader(parse, source, fields)
        for feature, geometry in self.source_features(source, context, target_crs, name=name):
            if geometry is None:
                skipped += 1
                continue
            attributes = feature.attributes()
            row = [parse(attributes[i]) if i >= 0 else float("nan") for i in indexes]
            flags = [i >= 0 and over_limit(attributes[i]) for i in indexes] if over is not None else None
            for point in geometry.vertices():
                xs.append(point.x())
                ys.append(point.y())
                if flags is not None:
                    over.append(flags)
                if fids is not None:
                    fids.append(feature.id())
                for f, v in zip(fields, row):
                    values[f].append(v)
        return xs, ys, values, skipped

    def empty_layer(self, parameters, name, context, message, fix):
        """The refusal of a vector parameter that gave no usable feature: ``message`` and ``fix``, unless the
        layer has features that a selection ('Selected features only') or the layer's filter left out."""
        value = parameters.get(name)
        layer = self.parameterAsVectorLayer(parameters, name, context)
        selected_only = isinstance(value, QgsProcessingFeatureSourceDefinition) and value.selectedFeaturesOnly
        if selected_only and (layer is None or not layer.selectedFeatureCount()):
            return self.fail(name, "No feature of the layer is selected, and 'Selected features only' is on.",
                             "Select the features to use in the layer, or untick 'Selected features only'.")
        if layer is not None and layer.subsetString() and layer.featureCount() == 0:
            return self.fail(name, f"The layer's filter ({layer.subsetString()}) keeps no feature.",
                             "Change the layer's filter (Layer Properties > Source > Provider Feature Filter).")
        return self.fail(name, message, fix)

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
            raise self.empty_layer(parameters, name, context, "The deposit layer holds no points.",
                                   "Choose a point layer of known deposits.")
        return np.column_stack([xs, ys]).astype(np.float64).reshape(-1, 2)

    def parameterAsSink(self, parameters, name, context, *args, **kwargs):  # noqa: N802 (QGIS API)
        """``QgsProcessingAlgorithm.parameterAsSink``, with the sink's file under the run's output guard: a failed or
        cancelled run closes the sink, removes the file it made and puts back the one that was there (its side
        files too); a successful one drops the kept copy. A destination that is no plain file (a temporary
        output, ``memory:``, ``ogr:``, a database) needs nothing."""
        path = self._sink_file(parameters, name, context)
        if path:
            guard = getattr(self, "_guard", None)
            removed = guard.add_sink(path, name) if isinstance(guard, RunGuard) else []
            for kept in removed:
                ensure(getattr(self, "_feedback", None)).info(
                    f"Removed '{kept}': the copy of an earlier output that an interrupted run had kept.")
        sink, dest = super().parameterAsSink(parameters, name, context, *args, **kwargs)
        guard = getattr(self, "_guard", None)
        if isinstance(guard, RunGuard):
            guard.track(sink)
        return sink, dest

    def _sink_file(self, parameters, name, context):
        """The local file a feature-sink parameter will write, or None (not given, a temporary output, a
        provider's URI such as ``memory:``, ``ogr:dbname=...`` or ``postgres:...``)."""
        definition = self.parameterDefinition(name)
        value = parameters.get(name)
        if value is None and definition is not None:
            value = definition.defaultValue()
        # read as Processing reads it, but not through parameterAsOutputLayer, which would also ask for the value
        # to be loaded on completion (a second, bogus layer for a memory: or ogr: destination)
        value = resolved_value(value, context)
        if not isinstance(value, str):
            return None
        dest = value.strip()
        if not dest or dest == QgsProcessing.TEMPORARY_OUTPUT:
            return None
        if dest.startswith("file://"):
            dest = QUrl(dest).toLocalFile()
        elif PROVIDER_URI.match(dest):
            return None
        dest = dest.split("|")[0]
        return dest or None

    def sink_skipped(self, parameters, name, context):
        """True when the optional vector output ``name`` was not asked for: absent, None ('Skip output' of the dialog)
        or blank (the Batch Processing panel's empty cell, a QgsProcessingOutputLayerDefinition of ''). A blank cell
        had been taken for a destination that could not be made: every batch row failed after computing its map."""
        return resolved_value(parameters.get(name), context) in (None, "")

    def output_path(self, parameters, name, context, feedback):
        """The destination file of a raster or file output, checked to be writable; None if skipped.

        A trained model (``OUTPUT_MODEL``) left at a temporary output goes to the model library folder
        (:meth:`library_model_path`) instead of Processing's temporary folder. The file (and its sidecars)
        is guarded for the run: a failed or cancelled run puts back what was there and removes what it made.
        """
        path = self._output_path(parameters, name, context, feedback)
        self._guard_file(path, feedback, sidecars=True, parameter=name)
        return path

    def _guard_file(self, path, feedback=None, sidecars=False, parameter=None):
        """Put ``path`` (with its .aux.xml and .qml when ``sidecars``) under the run's output guard; another run
        writing that output now is an error naming ``parameter``."""
        guard = getattr(self, "_guard", None)
        if not path or guard is None:
            return
        removed = guard.add(path, parameter) if sidecars else guard.add_file(path)
        for name in removed:
            ensure(feedback or getattr(self, "_feedback", None)).info(
                f"Removed '{name}': the copy of an earlier output that an interrupted run had kept.")

    def _output_path(self, parameters, name, context, feedback):
        definition = self.parameterDefinition(name)
        if parameters.get(name) in (None, "") and definition.metadata().get(TEMPORARY_DEFAULT):
            parameters = {**parameters, name: QgsProcessing.TEMPORARY_OUTPUT}
        if parameters.get(name) is None and definition.flags() & QgsProcessingParameterDefinition.FlagOptional:
            return None
        if name == MODEL_OUTPUT and is_temporary_output(parameters.get(name), context):
            return self.library_model_path(feedback)
        if isinstance(self.parameterDefinition(name), QgsProcessingParameterFileDestination):
            path = self.parameterAsFileOutput(parameters, name, context)
        else:
            path = self.parameterAsOutputLayer(parameters, name, context)
        if not path:
            return None
        self._check_extension(name, path)
        clean_partials(path, feedback)
        if check_output_path(path, parameter=name):
            feedback.warning(f"{self.parameterDefinition(name).description()}: replacing existing file {path}")
        return path

    def library_model_path(self, feedback):
        """A new file ``<model folder>/<algorithm>_<date-time>.onnx`` in the model library folder (settings),
        which the model library dock lists; the folder is created, no file is replaced."""
        folder = settings.model_folder()
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise self.fail(MODEL_OUTPUT, f"The model folder {folder} cannot be created ({exc.strerror or exc}).",
                            "Choose a model file, or another model folder in Plugins > OreMap > Settings.")
        stamp = time.strftime('%Y%m%d-%H%M%S')
        stem = f"{self.name()}_{stamp}"
        path, n = os.path.join(folder, stem + ".onnx"), 1
        # two trainings started in the same second (QGIS runs algorithms in background threads) took one name, and
        # the second was refused for an output its user never chose: a name is handed out once per process, and
        # one that another run (of any process) is writing is skipped too
        with _LIBRARY_NAMES_LOCK:
            _LIBRARY_NAMES_GIVEN.difference_update([p for p in _LIBRARY_NAMES_GIVEN if f"_{stamp}" not in p])
            while os.path.exists(path) or path in _LIBRARY_NAMES_GIVEN or \
                    files.names_beside(folder, "." + os.path.basename(path) + files.WRITING_MARK):
                n += 1
                path = os.path.join(folder, f"{stem}-{n}.onnx")
            _LIBRARY_NAMES_GIVEN.add(path)
        check_output_path(path, overwrite=False, parameter=MODEL_OUTPUT)
        feedback.info(f"The model goes to the model library folder: {path} (Plugins > OreMap > Model library).")
        return path

    def _check_extension(self, name, path):
        """Refuse an output whose extension OreMap does not write (a GeoTIFF named .xyz would mislead every reader)."""
        definition = self.parameterDefinition(name)
        if isinstance(definition, QgsProcessingParameterFileDestination):
            supported = sorted({e.lower() for e in re.findall(r"\*(\.[A-Za-z0-9_]+)", definition.fileFilter())})
        else:
            supported = [".tif", ".tiff"]
        extension = os.path.splitext(path)[1].lower()
        if supported and extension not in supported:
            raise self.fail(name, f"OreMap cannot write '{extension or 'no extension'}' files here.",
                            f"Name the file with {' or '.join(supported)} (e.g. "
                            f"{os.path.splitext(os.path.basename(path))[0]}{supported[0]}).")

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
        file_path = str(path).split("|")[0]
        # a vector sink's style (parameterAsSink guards its file and style already); a layer of a GeoPackage keeps
        # its style inside the file (styles.write_style), no .qml
        if os.path.isfile(file_path) and "|layername=" not in str(path):
            self._guard_file(os.path.splitext(file_path)[0] + ".qml")
        qml = styles.write_style(path, style)
        if context.willLoadLayerOnCompletion(path):
            processor = styles.StylePostProcessor(qml, style)   # kept alive by the class (a model drops `self`)
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(processor)

    # -- errors ----------------------------------------------------------------------------------
    def fail(self, name, message, fix=""):
        """A QgsProcessingException naming parameter ``name`` (its label and id)."""
        definition = self.parameterDefinition(name) if name else None
        label = f"{definition.description()} ({name}): " if definition is not None else ""
        return QgsProcessingException(f"{label}{message} {fix}".strip())

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # QGIS 3.22 keeps the exception a Python processAlgorithm raises for the rest of the session. Raised inside
        # an except block, it kept the core exception as its context, and with it every frame of the failed or
        # cancelled run: the model's onnxruntime session and threads, open input files. Only the message goes out.
        try:
            return self._process_algorithm(parameters, context, feedback)
        except QgsProcessingException as exc:
            message = str(exc)
        finally:
            self._feedback = None
        del parameters, context, feedback
        raise QgsProcessingException(message)

    def _process_algorithm(self, parameters, context, feedback):
        bridge = QgisFeedback(feedback)
        missing = self.missing_packages()
        if missing:
            raise QgsProcessingException(dependencies.install_hint(missing))
        problem = self._value_problem(self._numbers_and_choices(parameters, context), context)
        if problem:
            raise QgsProcessingException(problem)
        with compute.session(settings.device(), settings.threads()) as run, gdal_cache_limit(self.memory_mb()):
            bridge.info(f"OreMap settings: compute device {compute.DEVICES[run.requested]}, threads "
                        f"{run.threads or 'all cores'}, memory budget {self.memory_mb():.0f} MB.")
            if run.fallback_message():
                bridge.warning(run.fallback_message())
            memory_problem = memory_env_problem()
            if memory_problem:
                bridge.warning(memory_problem)
            for note in self._first_layer_notes(parameters):
                bridge.warning(note)
            self._assigned_crs = None
            try:
                results = self._process_translated(parameters, context, bridge)
            finally:
                bridge.info(f"Compute device used: {run.summary()}.")
        if self._assigned_crs:
            _stamp_crs(self, results, self._assigned_crs)
        for output in self.outputDefinitions():
            path = (results or {}).get(output.name())
            if output.type() == "outputHtml" and isinstance(path, str) and path:
                bridge.info(f"Report: {path} (opens from Processing > Results Viewer, or in a browser).")
        # an optional destination that was not asked for is left out, as QGIS's own algorithms do (not None,
        # which qgis_process --json prints as null and a model's next step would take for a path)
        destinations = {d.name() for d in self.destinationParameterDefinitions()}
        return {k: v for k, v in (results or {}).items() if not (v is None and k in destinations)}

    def _first_layer_notes(self, parameters):
        """A warning for each vector parameter given as a bare path to a file of several layers (a GeoPackage):
        QGIS reads its first layer, which may not be the one meant (copper sites evaluated for gold)."""
        from osgeo import ogr

        notes = []
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            if definition.type() not in ("source", "vector") or not isinstance(value, str) or "|" in value \
                    or not os.path.isfile(value):
                continue
            dataset = ogr.Open(value, 0)
            layers = [] if dataset is None else [dataset.GetLayer(i) for i in range(dataset.GetLayerCount())]
            names = [layer.GetName() for layer in layers   # tables without geometry (QGIS's layer_styles) are no choice
                     if layer.GetGeomType() != ogr.wkbNone and layer.GetName() != "layer_styles"]
            dataset = None
            if len(names) > 1:
                base = os.path.basename(value)
                notes.append(f"{definition.description()} ({definition.name()}): '{base}' holds {len(names)} layers "
                             f"({', '.join(names[:8])}{' ...' if len(names) > 8 else ''}); the first, '{names[0]}', "
                             f"is read. For another, give '{base}|layername=NAME' (in the dialog, choose the layer "
                             "when adding the file).")
        return notes

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API)
        """A missing package refuses the run with how to install it; then QGIS's checks, except that a raster
        parameter may name a sensor product file (EMIT .nc, EnMAP METADATA.XML, PRISMA .he5) that QGIS cannot
        load as a layer: raster_path converts it."""
        from ..core.hyperspectral.sensor_products import detect

        missing = self.missing_packages()
        if missing:
            return False, dependencies.install_hint(missing)

        products = {d.name() for d in self.parameterDefinitions()
                    if isinstance(d, QgsProcessingParameterRasterLayer)
                    and isinstance(parameters.get(d.name()), str) and detect(parameters.get(d.name()))}
        if not products:
            ok, message = super().checkParameterValues(parameters, context)
            return (ok, message) if ok else (False, self._unloadable_layer(parameters, context)
                                             or self._value_problem(parameters, context) or message)
        for definition in self.parameterDefinitions():
            name = definition.name()
            if name in products or definition.flags() & QgsProcessingParameterDefinition.FlagHidden:
                continue
            if not definition.checkValueIsAcceptable(parameters.get(name), context):
                return False, (self._unloadable_layer(parameters, context) or self._value_problem(parameters, context)
                               or self.tr(f"Incorrect parameter value for {definition.description()} ({name})."))
        return True, ""

    def _numbers_and_choices(self, parameters, context):
        """The numbers and choices given, as the run reads them (a data-defined value evaluated), for
        :meth:`_value_problem` at the start of the run: QGIS 3.22 runs a model's steps without
        checkParameterValues, which also lets a data-defined value through unevaluated. A minimum confidence of 60
        (meant as per cent) from a model's parameter classified nothing, where the algorithm alone refuses it."""
        kinds = (QgsProcessingParameterNumber, QgsProcessingParameterEnum)
        return {d.name(): resolved_value(parameters[d.name()], context) for d in self.parameterDefinitions()
                if isinstance(d, kinds) and parameters.get(d.name()) is not None}

    def _value_problem(self, parameters, context):
        """What is wrong with a number or a choice QGIS refused, with what is allowed (QGIS says only "Incorrect
        parameter value for THRESHOLD"); None when neither is at fault."""
        for definition in self.parameterDefinitions():
            name, value = definition.name(), parameters.get(definition.name())
            if value is None or definition.checkValueIsAcceptable(value, context):
                continue
            label = f"{definition.description()} ({name})"
            numpy = [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, np.generic)]
            if numpy:   # a numpy scalar reaches QGIS as an opaque Python object: refused by its check, 0 past it
                return (f"{label}: {value!r} holds a numpy value ({type(numpy[0]).__name__}), which Processing cannot "
                        "read; give Python numbers: float(value) or int(value).")
            if isinstance(definition, QgsProcessingParameterNumber):
                low, high = definition.minimum(), definition.maximum()
                integer = definition.dataType() == QgsProcessingParameterNumber.Integer
                bounds = [b for b, bounded in ((f"at least {low:g}", low > -1e300), (f"at most {high:g}", high < 1e300))
                          if bounded]
                if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d*,\d+\s*", value):
                    return (f"{label}: '{value}' is written with a decimal comma; parameters take a decimal point: "
                            f"write {value.strip().replace(',', '.')}.")
                if not bounds:
                    return f"{label}: {value!r} is not a number."
                return (f"{label}: {value!r} is not allowed: give {'a whole number' if integer else 'a number'} "
                        f"{' and '.join(bounds)}.")
            if isinstance(definition, QgsProcessingParameterEnum):
                options = "; ".join(f"{i} = {o}" for i, o in enumerate(definition.options()))
                if definition.allowMultiple() and value in ("", []):
                    return f"{label}: choose at least one of: {options}."
                return f"{label}: {value!r} is not one of the choices: {options}."
        return None

    #: What a file that is no layer probably is, by its extension, and its own fix (None: choose a layer file).
    OTHER_FILES = {".onnx": ("it looks like an OreMap model (ONNX), which goes in a model parameter", None),
                   ".sli": ("it looks like an ENVI spectral library, which goes in a spectral library parameter", None),
                   ".html": ("it looks like a report", None), ".qml": ("it looks like a QGIS style file", None),
                   ".hdr": ("it is an ENVI header", "Give the image file beside it (.img, .dat, .bsq or no "
                                                     "extension).")}

    def _wrong_file(self, definition, value, label):
        """Why a file parameter with an extension (a model's .onnx) refuses ``value``, or None: a file that does
        not exist, or one of another kind (a report, a raster given as the model). ``label`` names the parameter."""
        extension = definition.extension() if definition.behavior() == QgsProcessingParameterFile.File else ""
        if not os.path.exists(value):
            return f"{label}: '{value}' does not exist. Choose an existing " + (f".{extension} file." if extension
                                                                                 else "file.")
        suffix = os.path.splitext(value)[1].lower()
        if not extension or suffix == "." + extension.lower():
            return None
        what = self.OTHER_FILES.get(suffix, (None, None))[0]
        if what is None and suffix in (".tif", ".tiff", ".img", ".dat", ".vrt"):
            what = "it looks like a raster"
        if what is None and suffix in (".gpkg", ".shp", ".geojson", ".csv"):
            what = "it looks like a vector layer or table"
        return (f"{label}: '{os.path.basename(value)}' is not a .{extension} file" + (f"; {what}." if what else ".")
                + f" Choose a .{extension} file" + (" (an OreMap model: the model library lists yours)."
                                                    if extension.lower() == "onnx" else "."))

    def _unloadable_layer(self, parameters, context):
        """Why QGIS refused a raster or vector parameter given as a path, naming the parameter: the file does not
        exist, or it exists but is no layer of that kind (an ONNX model given as the raster...); None when every
        such parameter loads (QGIS refused something else)."""
        kinds = ((QgsProcessingParameterRasterLayer, QgsProcessingUtils.LayerHint.Raster, QgsMapLayer.RasterLayer,
                  "raster", "a GeoTIFF or an ENVI image"),
                 (QgsProcessingParameterFeatureSource, QgsProcessingUtils.LayerHint.Vector, QgsMapLayer.VectorLayer,
                  "vector layer", "a GeoPackage, shapefile or GeoJSON file"))
        for definition in self.parameterDefinitions():
            kind = next((k for k in kinds if isinstance(definition, k[0])), None)
            value = parameters.get(definition.name())
            label = f"{definition.description()} ({definition.name()})"
            if isinstance(definition, QgsProcessingParameterFile) and isinstance(value, str) and value.strip():
                wrong = self._wrong_file(definition, value, label)
                if wrong:
                    return wrong
                continue
            if kind is None or not isinstance(value, str) or not value.strip():
                continue
            _, hint, layer_type, noun, examples = kind
            layer = QgsProcessingUtils.mapLayerFromString(value, context, True, hint)
            if layer is not None and layer.type() == layer_type:
                continue
            path = value.split("|")[0]
            if value.startswith("file://") and "?" in value and noun == "vector layer":
                # a delimited-text URI without its provider, as the Data Source Manager shows it
                return (f"{label}: '{value}' is a delimited-text URI without its provider. Give it as "
                        f"'delimitedtext://{value}'.")
            if not os.path.exists(path):
                return (f"{label}: '{value}' is neither an existing file nor a layer of the project. Choose an "
                        f"existing {noun} file or a loaded layer.")
            what, fix = self.OTHER_FILES.get(os.path.splitext(path)[1].lower(), (None, None))
            layer = layer or QgsProcessingUtils.mapLayerFromString(value, context, True)
            if layer is not None and layer.type() in (QgsMapLayer.RasterLayer, QgsMapLayer.VectorLayer):
                what = "it is a raster" if layer.type() == QgsMapLayer.RasterLayer else "it is a vector layer"
            elif what is None and os.path.isfile(path):
                what = damaged_file_reason(path)
                if what:
                    fix = "Copy or download the file again and choose the complete file."
            return (f"{label}: '{os.path.basename(path)}' is not a {noun} QGIS can open"
                    + (f"; {what}." if what else ".") + " " + (fix or f"Choose {examples}."))
        return None

    def _process_translated(self, parameters, context, bridge):
        """``process``, with core errors turned into QgsProcessingExceptions naming the parameter."""
        self._feedback = bridge  # for helpers that log (e.g. a sensor product converted on input)
        self._check_outputs_apart(parameters, context)
        self._guard = RunGuard()
        completed = False
        try:
            results = self.process(parameters, context, bridge)
            if bridge.is_canceled():  # cancelled after the last check: the run is not taken as done
                raise Cancelled()
            completed = True
            return results
        except Cancelled:
            # the outputs are put back first: the message says what is left
            raise QgsProcessingException(self._cancel_message(self._roll_back(bridge)))
        except OreMapError as exc:
            key = exc.parameter
            name = self._parameter_overrides.get(key) or self.CORE_PARAMETERS.get(key, key)
            if name and self.parameterDefinition(name) is None:
                name = None
            raise self.fail(name, exc.message, exc.fix or "")
        except ModuleNotFoundError as exc:  # a package QGIS's Python lacks that no REQUIRES names (shapely, pyproj...)
            if (getattr(exc, "name", None) or "").split(".")[0] in (__name__.split(".")[0], "oremap"):
                raise   # a file of OreMap itself: a broken installation, whose traceback says where
            raise self.fail(None, *dependencies.missing_module_message(exc))
        except PermissionError as exc:  # a file another program holds (Windows), or a folder without write access
            raise QgsProcessingException(f"A file could not be written or replaced: {str(exc).strip()}. If it is "
                                         "open in QGIS (a loaded layer) or another program, close it there or choose "
                                         "another file name; else check that the folder is writable.")
        except OSError as exc:  # e.g. rasterio's RasterioIOError from a read no core check foresaw
            raise QgsProcessingException(f"A file could not be read or written: {str(exc).strip()}. Check that the "
                                         "input files are complete and the output folder is writable.")
        except QgsCsException as exc:  # a transform the CRS checks did not foresee: say which, without a traceback
            raise QgsProcessingException(
                f"Coordinates could not be transformed between the layers' CRSs ({exc}). Check that every layer "
                "has its right CRS (Layer Properties > Source) and that they overlap.")
        except MemoryError:
            raise QgsProcessingException(
                self.tr("Out of memory. Lower the memory budget in Processing > Options > Providers > OreMap."))
        finally:
            if completed:
                self._guard.commit()
                self._guard = None
            else:  # an error or a cancellation: the output files are as they were before the run
                self._roll_back(bridge)

    def _roll_back(self, bridge):
        """Roll the run's outputs back (once; :class:`RunGuard`), warning of each file that could not be put back
        or removed; returns those problems, in words (none: every output is as it was before the run)."""
        guard, self._guard = self._guard, None
        if guard is None:
            return []
        problems = []
        for path, kept in guard.rollback():
            bridge.warning(f"The previous '{path}' could not be put back (is it open in another "
                           f"program?); it is kept as '{kept}': rename it to get it back.")
            problems.append(f"the previous '{path}' could not be put back (it is kept as '{kept}')")
        for path in guard.left:
            bridge.warning(f"'{path}', written by this run, could not be removed (is it open in another program?): "
                           "delete it.")
            problems.append(f"'{path}', written by this run, could not be removed")
        return problems

    def _cancel_message(self, problems):
        """What a cancelled run says: ``CANCEL_MESSAGE``, unless an output could not be put back as it was."""
        if not problems:
            return self.tr(self.CANCEL_MESSAGE)
        said = "; ".join(problems) + "."
        if self.CANCEL_MESSAGE == OreMapAlgorithm.CANCEL_MESSAGE:
            return self.tr("Cancelled, but not every output is as it was before the run: ") + said
        return self.tr(self.CANCEL_MESSAGE) + " " + said

    def _check_sink_layer(self, parameters, name, context):
        """Refuse a vector destination spelt as a layer of a file (``y.gpkg|layername=mines``: Processing writes a
        new file of that whole name, and the guard took ``y.gpkg`` for the output and removed it), and an
        ``ogr:`` destination that is a layer this run reads (it would be emptied before it is read); say when an
        ``ogr:`` destination replaces a layer of a GeoPackage."""
        value = parameters.get(name)
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        if not isinstance(value, str):
            return
        description = self.parameterDefinition(name).description()
        if "|" in value and not PROVIDER_URI.match(value.strip()):
            file_part, layer = split_layer_name(value)
            raise self.fail(name, f"'{value}' names a layer inside a file, which Processing cannot write to: it "
                                  "would make a new file of that whole name.",
                            (f"To add the layer '{layer}' to {os.path.basename(file_part)}, give "
                             f"ogr:dbname='{file_part}' table=\"{layer}\" (geom) (the Toolbox's 'Save to "
                             "GeoPackage...'); or give a file name alone." if layer else "Give a file name alone."))
        target = ogr_sink_layer(value)
        if target is None:
            return
        path, table = target
        for definition in self.parameterDefinitions():
            kind = definition.type()
            if definition.isDestination() or kind not in INPUT_FILE_TYPES:
                continue
            for source, layer in layers_of(parameters.get(definition.name()), context, layers=kind != "file"):
                if files.file_key(source) != files.file_key(path):
                    continue
                layer = layer if layer is not None else first_layer_name(source)
                if layer is not None and layer.casefold() == table.casefold():
                    raise self.fail(name, f"The layer '{table}' of {os.path.basename(path)} is also the input "
                                          f"{definition.description()} ({definition.name()}): writing it would "
                                          "destroy what this run reads.",
                                    "Give the output another layer name (table), or another file.")
        if os.path.isfile(path) and table.casefold() in {(n or "").casefold() for n in gpkg_layer_names(path)}:
            self._feedback.warning(f"{description}: replacing the layer '{table}' of {path}; its other layers are "
                                   "kept.")

    def _check_outputs_apart(self, parameters, context):
        """Refuse an output file that is also an input file, or one file named by two outputs: writing it would
        destroy what the run reads, or one output would silently replace the other. Existing inputs only; output
        folders (a batch's) are not files. A vector output may not be a shapefile (its 10-character field names
        would cut OreMap's: ``anomaly_score``, ``probability``, ``compactness``), and replacing an existing
        vector file (all its layers, as Processing does) is said."""
        inputs, identities = {}, {}
        for definition in self.parameterDefinitions():
            kind = definition.type()
            if definition.isDestination() or kind not in INPUT_FILE_TYPES:  # not fields, names, extents, numbers
                continue
            for path in files_of(parameters.get(definition.name()), context, layers=kind != "file"):
                if os.path.isfile(path):  # compared as the file system does (case-blind on Windows and macOS)
                    inputs.setdefault(files.file_key(path), definition.name())
                    identity = files.file_identity(path)
                    if identity is not None:   # none where the file system gives no file id: nothing to compare
                        identities.setdefault(identity, definition.name())
        outputs, styles = {}, {}
        for definition in self.destinationParameterDefinitions():
            name, value = definition.name(), parameters.get(definition.name())
            if isinstance(definition, QgsProcessingParameterFolderDestination) or is_temporary_output(value, context):
                continue
            if isinstance(definition, QgsProcessingParameterFeatureSink):
                # a provider's URI (memory: in a model's intermediate step, postgres:) is no file to check: only a
                # plain file path is (_sink_file), and a layer of a GeoPackage named by ogr:dbname=... ("Save to
                # GeoPackage...")
                self._check_sink_layer(parameters, name, context)
                sink = self._sink_file(parameters, name, context)
                paths = [os.path.abspath(sink)] if sink else []
            else:
                paths = files_of(value, context, layers=False)
            for path in paths:
                problem = output_name_problem(path)
                if problem:
                    raise self.fail(name, *problem)
                # an existing output that is an input under another spelling or a link (same device and inode)
                key = files.file_key(path)
                other = inputs.get(key) or identities.get(files.file_identity(path))
                if other:
                    raise self.fail(name, f"{path} is also the input {self.parameterDefinition(other).description()} "
                                          f"({other}): writing it would destroy what this run reads.",
                                    "Choose another file for the output.")
                if key in outputs:
                    raise self.fail(name, f"{path} is also the output {outputs[key]}: one would replace the other.",
                                    "Give each output its own file.")
                outputs[key] = name
                locked = locked_output_problem(path, context.project() or QgsProject.instance())
                if locked:
                    raise self.fail(name, *locked)
                styled = isinstance(definition, (QgsProcessingParameterRasterDestination,
                                                 QgsProcessingParameterFeatureSink))
                style = files.file_key(os.path.splitext(path)[0] + ".qml") if styled else None
                if style in styles:
                    raise self.fail(name, f"{os.path.basename(path)} and the output {styles[style]} share one style "
                                          f"file ({os.path.splitext(os.path.basename(path))[0]}.qml): one would load "
                                          "with the other's style.",
                                    "Give the outputs names that differ before the extension (e.g. mines.tif and "
                                    "mines_footprints.gpkg).")
                if style:
                    styles[style] = name
                    qml = os.path.splitext(path)[0] + ".qml"
                    if os.path.exists(qml) and not os.path.exists(path):   # a style of the user's, or of a run
                        self._feedback.warning(f"{definition.description()}: replacing the existing style file "
                                               f"{qml} with the output's style.")
                if isinstance(definition, QgsProcessingParameterFeatureSink):
                    extension = os.path.splitext(path)[1].lower()
                    if extension not in VECTOR_OUTPUT_FORMATS + NO_GEOMETRY_FORMATS + (".shp",):
                        raise self.fail(name, f"OreMap cannot write '{extension or 'no extension'}' files here.",
                                        "Save it as a GeoPackage (e.g. "
                                        f"{os.path.splitext(os.path.basename(path))[0]}.gpkg); GeoJSON (.geojson) and "
                                        "FlatGeobuf (.fgb) also work.")
                    if extension in NO_GEOMETRY_FORMATS:
                        raise self.fail(name, f"A {os.path.splitext(path)[1]} file keeps the attributes but not the "
                                              "geometries: the layer's points or polygons would be lost.",
                                        "Save it as a GeoPackage (.gpkg).")
                    if path.lower().endswith(".shp"):
                        long = self.LONG_FIELDS.get(name)
                        raise self.fail(name, "A shapefile cuts field names to 10 characters, and "
                                        + (f"this layer's {', '.join(long)} are longer" if long else
                                           "this layer's are longer")
                                        + ": the layer's style and the algorithms that read it look for the full "
                                          "names.", "Save it as a GeoPackage (.gpkg).")
                    if os.path.exists(path):
                        self._feedback.warning(f"{definition.description()}: replacing existing file {path} (all "
                                               "its layers).")

    def process(self, parameters, context, feedback):
        raise QgsProcessingException("This algorithm does not implement process().")
