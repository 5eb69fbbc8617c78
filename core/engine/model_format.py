"""The OreMap model format: an ONNX file that describes itself.

Every model OreMap trains, ships or runs is a plain ONNX file whose
``metadata_props`` hold one entry, key :data:`METADATA_KEY` (``"oremap"``),
whose value is a JSON object::

    {
      "schema_version": 1 or 2,
      "requires": [feature, ...] (version 2 only: see FEATURES and required_features),
      "task": "spectral_classification",
      "classes": [{"name": "Kaolinite", "color": "#1f78b4"}, ...],
      "wavelengths": [nm, ...] or null,
      "fwhm": [nm, ...] or null,
      "band_names": [str, ...] or null,
      "preprocessing": {"method": "none" | "brightness" | "continuum_removal", ...},
      "input": {"name": "spectra", "n_bands": 224},
      "output": {"name": "probabilities", "kind": "probabilities"},
      "training": {"date": ..., "data_hash": ..., "n_samples": ..., "metrics": {...},
                   "parameters": {...}},
      "oremap_version": "x.y.z" (the writing OreMap's, core.engine.version.plugin_version()),
      "description": "..."
    }

The ONNX graph maps a float32 ``(n, n_bands)`` input (after the model's
preprocessing, see :func:`core.engine.spectra.preprocess`) to float32
``(n, n_classes)`` class probabilities. Any other ONNX tool can open the file;
OreMap reads the metadata with :func:`read_model_info` and runs the graph with
:class:`OnnxModel` (onnxruntime). Nothing is ever unpickled.

``onnx`` and ``onnxruntime`` are imported only when needed, so this module
imports without them.
"""

import json
import math
import datetime
import os
import re
from dataclasses import dataclass, field, fields

import numpy as np

from . import compute
from .errors import OreMapError
from .dependencies import import_failure
from .files import write_atomic
from .version import plugin_version

#: Newest version of the metadata layout this OreMap reads. A model is written with the lowest version whose
#: readers apply everything it needs (:func:`required_features`): 1 (OreMap 0.2.0's layout) when nothing more, so
#: that older OreMaps keep using it; 2 when it needs a safeguard or a computation that 0.2.0 would silently skip.
#: Version 2 lists those needs in ``requires``; a reader refuses a model needing one it does not know.
SCHEMA_VERSION = 2

#: What a model may need of its reader beyond OreMap 0.2.0's, as named in ``requires``: what a reader without it
#: would do instead (0.2.0 ran such models without a word).
FEATURES = {
    "ood_check": "classify every pixel, without the out-of-distribution check that leaves unlike spectra "
                 "unclassified (OreMap 0.2.1)",
    "sentinel2_index_version_2": "compute other Sentinel-2 indices than the model was trained on (OreMap 0.2.5; "
                                 "U-Nets also fill nodata from neighbours since 0.2.1)",
    "input_transform_check": "accept an element grid of the other transform (concentrations for a log10 model, "
                             "or the reverse) and score it wrongly (OreMap 0.2.1)",
}

#: Key of the ``metadata_props`` entry holding the JSON description.
METADATA_KEY = "oremap"

#: Models larger than this cannot be ONNX protobuf files (2 GiB protobuf limit).
_MAX_ONNX_BYTES = 2**31

_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

#: Characters a name or description must not hold: control characters other than tab, line feed and carriage
#: return, lone surrogates, and the non-characters U+FFFE and U+FFFF. GDAL band descriptions and the XML of a QML
#: style cannot carry them, so the run failed only when writing its outputs.
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_FIX_MODEL = "Choose an .onnx model trained or shipped by OreMap."
_OR_FIX_MODEL = "or " + _FIX_MODEL[0].lower() + _FIX_MODEL[1:]   # after another fix


def build_time():
    """When a model or its report is made: now (UTC, whole seconds), or ``SOURCE_DATE_EPOCH`` where it is
    set (the reproducible-builds convention), so that ``make models`` rebuilds a bundled model bit for bit."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def build_date():
    """:func:`build_time` as an ISO 8601 string, the ``training.date`` of OreMap models."""
    return build_time().isoformat()


def _jsonable(value):
    """``value`` with numpy scalars/arrays as Python types and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class ModelInfo:
    """Description of an OreMap model, stored as JSON inside the ONNX file.

    Parameters
    ----------
    task : str
        What the model does, e.g. ``"spectral_classification"``.
    classes : list of dict
        One ``{"name": str, "color": "#rrggbb"}`` per output column, in order.
    input : dict
        ``{"name": graph input name, "n_bands": int}``; models on square
        windows add ``"window": int`` (graph input ``(n, n_bands, window, window)``).
    output : dict
        ``{"name": graph output name, "kind": "probabilities"}``.
    wavelengths : list of float, optional
        Band centres (nm) the model expects, ``None`` when the model works on
        band numbers only.
    fwhm : list of float, optional
        Band widths (nm) of those bands, ``None`` when unknown.
    band_names : list of str, optional
        Names of the input bands, ``None`` when not meaningful.
    preprocessing : dict
        ``{"method": "none" | "brightness" | "continuum_removal", ...}``:
        applied to spectra before the graph, at training and inference alike.
    training : dict
        ``date`` (ISO 8601, UTC), ``data_hash`` (sha256 hex of the training
        data), ``n_samples``, ``metrics`` and ``parameters``.
    oremap_version : str
        Version of the OreMap that wrote the model.
    description : str
        Human-readable title or summary.
    schema_version : int
        Version of the metadata layout as read (1 for a new model); :meth:`to_dict` writes 2 where the model
        needs more of its reader than version 1 (:func:`required_features`).
    extra : dict
        Top-level keys this version does not know (from a newer OreMap with
        the same schema version, or another tool); kept and written back.
    """

    task: str
    classes: list
    input: dict
    output: dict = field(default_factory=lambda: {"name": "probabilities", "kind": "probabilities"})
    wavelengths: list = None
    fwhm: list = None
    band_names: list = None
    preprocessing: dict = field(default_factory=lambda: {"method": "none"})
    training: dict = field(default_factory=dict)
    oremap_version: str = field(default_factory=plugin_version)
    description: str = ""
    schema_version: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for key in ("wavelengths", "fwhm", "band_names"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, list):
                setattr(self, key, _jsonable(list(np.asarray(value).reshape(-1))))
        if isinstance(self.input, dict) and isinstance(self.input.get("n_bands"), np.integer):
            self.input = dict(self.input, n_bands=int(self.input["n_bands"]))

    # -- convenience --------------------------------------------------------

    @property
    def n_bands(self):
        """Number of input bands."""
        return int(self.input["n_bands"])

    @property
    def class_names(self):
        """Class names in output order."""
        return [c["name"] for c in self.classes]

    @property
    def class_rgb(self):
        """Class colours as ``(r, g, b)`` tuples of int."""
        return [tuple(int(c["color"][i:i + 2], 16) for i in (1, 3, 5)) for c in self.classes]

    @property
    def preprocessing_method(self):
        """The preprocessing method name (``"none"`` when not stated)."""
        return str(self.preprocessing.get("method", "none"))

    # -- JSON ---------------------------------------------------------------

    def to_dict(self):
        """Plain JSON-compatible dict (known keys first, then :attr:`extra`); ``schema_version`` 2 with the
        ``requires`` list when :func:`required_features` names any, else :attr:`schema_version` (1 by default)."""
        needs = required_features(self)
        data = {"schema_version": max(int(self.schema_version), 2 if needs else 1)}
        if needs:
            data["requires"] = needs
        for f in fields(self):
            if f.name not in ("schema_version", "extra"):
                data[f.name] = _jsonable(getattr(self, f.name))
        for key, value in self.extra.items():
            data.setdefault(key, _jsonable(value))
        return data

    def to_json(self):
        """The JSON text stored under :data:`METADATA_KEY`."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text):
        """Parse and check the JSON text (or an already decoded dict).

        Raises
        ------
        OreMapError
            ``parameter="model"`` for malformed JSON, missing or ill-typed
            fields, or a ``schema_version`` newer than :data:`SCHEMA_VERSION`.
        """
        if isinstance(text, dict):
            data = dict(text)
        else:
            try:
                data = json.loads(text)
            except (TypeError, ValueError) as exc:
                raise _malformed(f"its OreMap metadata is not valid JSON ({exc})") from None
            except RecursionError:
                raise _malformed("its OreMap metadata are nested too deeply to be read") from None
        if not isinstance(data, dict):
            raise _malformed("its OreMap metadata is not a JSON object")
        version = data.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _malformed(f"its schema_version is {version!r}, not a positive integer")
        if version > SCHEMA_VERSION:
            raise OreMapError(
                f"The model was made by a newer OreMap (model format version {version}; this OreMap "
                f"reads up to version {SCHEMA_VERSION}).",
                parameter="model",
                fix="Update the OreMap plugin to use this model.",
            )
        requires = data.pop("requires", [])
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise _malformed("its 'requires' is not a list of names")
        unknown = [r for r in requires if r not in FEATURES]
        if unknown:
            raise OreMapError(
                f"The model was made by a newer OreMap: it needs {', '.join(unknown)}, which this OreMap does not "
                f"know, and would give wrong results without.",
                parameter="model",
                fix="Update the OreMap plugin to use this model.",
            )
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        for key in ("task", "classes", "input"):
            if key not in kwargs:
                raise _malformed(f"its metadata lack '{key}'")
        kwargs["oremap_version"] = str(data.get("oremap_version", ""))
        info = cls(**kwargs)
        info.validate()
        return info

    def validate(self):
        """Check types and sizes; raise ``OreMapError(parameter="model")`` when inconsistent."""
        if not isinstance(self.task, str) or not self.task:
            raise _malformed("its task is not a name")
        if not isinstance(self.classes, list) or not self.classes:
            raise _malformed("it lists no classes")
        for i, c in enumerate(self.classes):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise _malformed(f"class {i + 1} has no name")
            bad = _BAD_TEXT.search(c["name"])
            if bad:
                raise _malformed(f"the name of class {i + 1} holds a control or invalid character ({bad.group()!r})")
            if not isinstance(c.get("color"), str) or not _HEX_COLOUR.match(c["color"]):
                raise _malformed(f"class '{c['name']}' has no colour of the form #rrggbb")
        for key in ("input", "output"):
            part = getattr(self, key)
            if not isinstance(part, dict) or not isinstance(part.get("name"), str):
                raise _malformed(f"its '{key}' has no graph name")
        n = self.input.get("n_bands")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _malformed(f"its input n_bands is {n!r}, not a positive integer")
        window = self.input.get("window")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise _malformed(f"its input window is {window!r}, not a positive integer")
        for key in ("wavelengths", "fwhm", "band_names"):
            values = getattr(self, key)
            if values is None:
                continue
            if not isinstance(values, list) or len(values) != n:
                raise _malformed(f"its {key} should list {n} values")
            kind = str if key == "band_names" else (int, float)
            if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
                raise _malformed(f"its {key} hold values of the wrong type")
            if kind != str and not all(math.isfinite(v) for v in values):   # JSON's NaN and Infinity
                raise _malformed(f"its {key} hold a value that is not a finite number")
            if kind == str and any(_BAD_TEXT.search(v) for v in values):
                raise _malformed(f"its {key} hold a name with a control or invalid character")
        for key in ("preprocessing", "training", "extra"):
            if not isinstance(getattr(self, key), dict):
                raise _malformed(f"its '{key}' is not a JSON object")
        for key in ("ood", "metrics", "parameters"):   # read as objects by the checks and the model card
            if self.training.get(key) is not None and not isinstance(self.training[key], dict):
                raise _malformed(f"its training '{key}' is not a JSON object")
        if not isinstance(self.description, str):
            raise _malformed("its description is not text")
        if _BAD_TEXT.search(self.description):
            raise _malformed("its description holds a control or invalid character")


def required_features(info):
    """The :data:`FEATURES` a model needs of its reader, sorted: what OreMap 0.2.0 would skip without a word.

    - ``ood_check``: a spectral classifier that carries an out-of-distribution check (``training.ood``);
    - ``sentinel2_index_version_2``: a mine U-Net (its index channels, and its nodata fill, changed), or a
      gradient-boosting patch classifier whose features use Sentinel-2 indices of version 2 or later (a patch
      CNN computes them in its graph);
    - ``input_transform_check``: a geochemical model that records the transform of its training grid.
    """
    training = info.training if isinstance(info.training, dict) else {}
    prep = info.preprocessing if isinstance(info.preprocessing, dict) else {}
    extra = info.extra if isinstance(info.extra, dict) else {}
    needs = set()
    if info.task == "spectral_classification" and training.get("ood"):
        needs.add("ood_check")
    if info.task == "mine_segmentation":
        needs.add("sentinel2_index_version_2")
    patch = extra.get("mine_classifier") if isinstance(extra.get("mine_classifier"), dict) else {}
    features = patch.get("features") if isinstance(patch.get("features"), dict) else {}
    version = features.get("index_version", 1)
    if patch.get("classifier") == "hgb" and isinstance(version, int) and version >= 2:
        needs.add("sentinel2_index_version_2")
    if prep.get("input_transform") in ("log10", "none"):
        needs.add("input_transform_check")
    return sorted(needs)


def _malformed(what):
    return OreMapError(
        f"The model's OreMap metadata are damaged: {what}.", parameter="model", fix=_FIX_MODEL
    )


def is_number(value):
    """Whether a value read from a model's metadata is a real number (JSON's true and false are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def unreadable_settings(path, block, detail):
    """The error for a model whose ``block`` metadata (e.g. ``"segmentation"``) hold a value of the wrong type,
    size or range: ``detail`` says which (or is the exception reading it raised)."""
    if isinstance(detail, KeyError):
        detail = f"'{detail.args[0]}' is missing"
    return OreMapError(
        f"The model '{os.path.basename(os.fspath(path))}' cannot be used: its {block} settings are unreadable: "
        f"{detail}.", parameter="model", fix=_FIX_MODEL)


# ---------------------------------------------------------------------------
# Writing and reading
# ---------------------------------------------------------------------------


def _onnx():
    try:
        import onnx
    except (ImportError, OSError) as exc:
        message, fix = import_failure("onnx", exc, "write and read models")
        raise OreMapError(message, parameter="model", fix=fix) from None
    return onnx


def _graph_io(model):
    """Names of the graph's real inputs (not initializers) and outputs, and input widths."""
    initializers = {t.name for t in model.graph.initializer}
    inputs, widths = [], {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        inputs.append(value.name)
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 2 and dims[1].HasField("dim_value"):
            widths[value.name] = int(dims[1].dim_value)
    return inputs, [v.name for v in model.graph.output], widths


def _static_dims(values, name):
    """The dimensions of graph value ``name`` (None where symbolic), and its element type; ``(None, None)`` when
    the graph has no such value."""
    for value in values:
        if value.name == name:
            tensor = value.type.tensor_type
            return [int(d.dim_value) if d.HasField("dim_value") else None for d in tensor.shape.dim], tensor.elem_type
    return None, None


def _check_graph(model, info, where):
    inputs, outputs, widths = _graph_io(model)
    name = info.input["name"]
    if name not in inputs:
        raise _malformed(f"{where} has no input '{name}' (inputs: {', '.join(inputs) or 'none'})")
    if info.output["name"] not in outputs:
        raise _malformed(f"{where} has no output '{info.output['name']}' (outputs: {', '.join(outputs) or 'none'})")
    if name in widths and widths[name] != info.n_bands:
        raise _malformed(f"{where} takes {widths[name]} bands, its metadata say {info.n_bands}")
    # found here, not as onnxruntime's 'InvalidArgument' at run time (or, for a class list shorter than the graph's
    # output, as classes past the end of the list)
    dims, kind = _static_dims(model.graph.input, name)
    if kind not in (None, 0, 1):   # 1: float32, what OreMap feeds every model
        raise _malformed(f"{where} takes other values than float32 (ONNX type {kind})")
    window = info.input.get("window")
    if window and dims and len(dims) != 4:
        raise _malformed(f"its input window is {window} cells, but {where} takes arrays of {len(dims)} dimensions, "
                         "not windows")
    if dims is not None and len(dims) == 4 and window and any(d not in (None, window) for d in dims[2:]):
        raise _malformed(f"{where} takes windows of {dims[2]} x {dims[3]} cells, its metadata say {window}")
    if info.task in ("spectral_classification", "mineral_abundance"):
        out, _ = _static_dims(model.graph.output, info.output["name"])
        if out is not None and len(out) == 2 and out[1] is not None and out[1] != len(info.classes):
            what = "class probabilities" if info.task == "spectral_classification" else "abundances"
            raise _malformed(f"{where} gives {out[1]} {what}, its metadata list {len(info.classes)} classes")
    if info.task == "spectral_classification":
        from .spectral_network import DISTANCE_NAME

        feature = (info.training.get("ood") or {}).get("feature")
        if feature and DISTANCE_NAME not in outputs:
            raise _malformed(f"its out-of-distribution check has a feature view, but {where} has no output "
                             f"'{DISTANCE_NAME}'")


def model_bytes(onnx_model_or_bytes, info):
    """Serialised ONNX model with ``info`` attached under :data:`METADATA_KEY`.

    Parameters
    ----------
    onnx_model_or_bytes : onnx.ModelProto or bytes
        The graph; a previous ``"oremap"`` entry is replaced, other metadata
        entries are kept. A ``ModelProto`` passed in is not modified.
    info : ModelInfo

    Returns
    -------
    bytes
    """
    onnx = _onnx()
    info.validate()
    if isinstance(onnx_model_or_bytes, (bytes, bytearray)):
        model = onnx.load_model_from_string(bytes(onnx_model_or_bytes))
    else:
        model = onnx.ModelProto()
        model.CopyFrom(onnx_model_or_bytes)
    _check_graph(model, info, "the graph")
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for key, value in kept + [(METADATA_KEY, info.to_json())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def write_model(onnx_model_or_bytes, info, path):
    """Write an OreMap model file.

    The file is written to a temporary file beside ``path`` and then renamed
    over it, so a reader never sees a half-written model.

    Parameters
    ----------
    onnx_model_or_bytes : onnx.ModelProto or bytes
    info : ModelInfo
    path : str or pathlib.Path
        Target ``.onnx`` file.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    OreMapError
        ``parameter="model"`` when ``info`` does not match the graph,
        ``parameter="output"`` when the file cannot be written.
    """
    return write_atomic(os.fspath(path), model_bytes(onnx_model_or_bytes, info), parameter="output")


def _tensors(nodes):
    """Every tensor held in the attributes of ``nodes`` and in their subgraphs (initializers included)."""
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
            for sparse in attribute.sparse_tensors:
                yield from (sparse.values, sparse.indices)
            for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _graph_tensors(graph)


def _graph_tensors(graph):
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _tensors(graph.node)


def _external_tensor(model):
    """Name of a tensor of ``model`` (subgraphs and functions included) whose values lie in another file, or None."""
    for function in model.functions:
        for tensor in _tensors(function.node):
            if tensor.data_location == tensor.EXTERNAL:
                return tensor.name
    for tensor in _graph_tensors(model.graph):
        if tensor.data_location == tensor.EXTERNAL:
            return tensor.name
    return None


def _load_onnx(path):
    """``(ModelProto, file bytes)`` of ``path``, or an OreMapError naming what is wrong."""
    onnx = _onnx()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise OreMapError(f"Model file '{path}' does not exist.", parameter="model", fix=_FIX_MODEL)
    if not os.path.isfile(path):
        raise OreMapError(f"Model '{path}' is not a file.", parameter="model", fix=_FIX_MODEL)
    size = os.path.getsize(path)
    if size == 0 or size >= _MAX_ONNX_BYTES:
        raise OreMapError(
            f"'{os.path.basename(path)}' is not an ONNX model ({'empty' if size == 0 else 'too large'}).",
            parameter="model", fix=_FIX_MODEL)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OreMapError(f"Cannot read model file '{path}': {exc.strerror or exc}.", parameter="model") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning, ValueError...
        model = None
    if model is None or not model.HasField("graph") or not model.graph.node:
        raise OreMapError(
            f"'{os.path.basename(path)}' is not a valid ONNX model: the file is corrupted, truncated, "
            "or of another format.",
            parameter="model",
            fix="Copy or download the model again, " + _OR_FIX_MODEL,
        )
    # onnxruntime, given the bytes, would read such values from a path relative to QGIS's working folder, not the
    # model's: another file's bytes as weights. OreMap writes every model as one file.
    external = _external_tensor(model)
    if external is not None:
        raise OreMapError(
            f"'{os.path.basename(path)}' keeps the values of its tensor '{external}' in a separate file (ONNX "
            "external data), which OreMap does not read.",
            parameter="model",
            fix="Save the model as one file (with the onnx package: load it with its data file beside it, then "
                "save it without save_as_external_data), " + _OR_FIX_MODEL,
        )
    return model, data


def _info_from_model(model, path):
    entries = [p.value for p in model.metadata_props if p.key == METADATA_KEY]
    if not entries:
        raise OreMapError(
            f"'{os.path.basename(os.fspath(path))}' is an ONNX model but not an OreMap model "
            "(it carries no OreMap metadata).",
            parameter="model",
            fix="Use a model trained with OreMap or shipped with it.",
        )
    info = ModelInfo.from_json(entries[-1])
    _check_graph(model, info, "the graph")
    return info


def read_model_info(path):
    """Read the :class:`ModelInfo` of an OreMap model file.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    ModelInfo

    Raises
    ------
    OreMapError
        ``parameter="model"`` when the file is missing, not an ONNX file
        (corrupted, truncated, another format), an ONNX model without OreMap
        metadata, made by a newer OreMap (schema version above
        :data:`SCHEMA_VERSION`), or its metadata are malformed or do not
        match the graph.
    """
    return _info_from_model(_load_onnx(path)[0], path)


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------


class OnnxModel:
    """An OreMap model ready to run with onnxruntime (CPU, or CUDA where chosen and available).

    Parameters
    ----------
    path : str or pathlib.Path
        OreMap ``.onnx`` file.
    threads : int, optional
        Threads onnxruntime may use inside one operator; when ``None`` or 0,
        the run's setting (:mod:`core.engine.compute`), else onnxruntime's default
        (all cores). The execution providers (CUDA first when chosen and
        available) come from :func:`core.engine.compute.onnx_providers`.

    Attributes
    ----------
    path : str
    info : ModelInfo

    Raises
    ------
    OreMapError
        As :func:`read_model_info`; also when onnxruntime is not installed or
        cannot load the graph (``parameter="model"``).
    """

    def __init__(self, path, threads=None):
        self.path = os.fspath(path)
        model, data = _load_onnx(self.path)
        self.info = _info_from_model(model, self.path)
        from .onnx_memory import activation_bytes_per_row

        self.activation_bytes_per_row = activation_bytes_per_row(model)  # for block and batch sizing
        del model  # onnxruntime parses the file's bytes itself
        try:
            import onnxruntime as ort
        except (ImportError, OSError) as exc:  # absent, or present with a DLL that will not load (Windows)
            message, fix = import_failure("onnxruntime", exc, "run models")
            raise OreMapError(message, parameter="model", fix=fix) from None
        options = ort.SessionOptions()
        threads = compute.onnx_threads(threads)
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3  # errors only
        # No CPU memory arena: with it onnxruntime keeps the largest batch's activations (and rounds them up:
        # 46 KB a row for the bundled CNN instead of 17 KB, measured) for the life of the session, outside the
        # memory budget; without it a run's memory is freed when the run ends (bench/bench_rss.py).
        options.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(data, sess_options=options, providers=compute.onnx_providers())
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise OreMapError(
                f"onnxruntime cannot load the model '{os.path.basename(self.path)}': {exc}",
                parameter="model",
                fix="Update onnxruntime, or retrain the model with this OreMap.",
            ) from None
        self._input = self.info.input["name"]
        self._output = self.info.output["name"]
        compute.note("onnxruntime", ", ".join(self.providers_used))

    @property
    def providers_used(self):
        """onnxruntime execution providers of the session, e.g. ``["CPUExecutionProvider"]``."""
        return list(self._session.get_providers())

    @property
    def n_classes(self):
        return len(self.info.classes)

    def _checked(self, X, dense=False):
        """``X`` as contiguous float32, or an OreMapError (``parameter="raster"``) when its shape does not
        fit the model: ``(n, n_bands)`` spectra; ``(n, n_bands, window, window)`` for a window model;
        ``(n, n_bands, h, w)`` of any size for a ``dense`` one."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        n_bands, window = self.info.n_bands, self.info.input.get("window")
        name = os.path.basename(self.path)
        if dense or window:
            if X.ndim == 4 and X.shape[1] == n_bands and (dense or X.shape[2:] == (window, window)):
                return X
            cells = "" if dense else f" and {window} x {window} cells"
            raise OreMapError(
                f"The model '{name}' expects windows of {n_bands} bands{cells}, but was given an array of "
                f"shape {X.shape}.", parameter="raster", fix="Give the raster the model's bands, in order.")
        if X.ndim == 2 and X.shape[1] == n_bands:
            return X
        got = f"{X.shape[1]} bands" if X.ndim == 2 else f"an array of shape {X.shape}"
        raise OreMapError(
            f"The model '{name}' expects spectra of {n_bands} bands, but was given {got}.", parameter="raster",
            fix="Resample the image to the model's wavelengths first.")

    def _batched(self, X, names, batch_size):
        """The graph outputs ``names`` for checked input ``X``, run ``batch_size`` rows at a time."""
        step = max(1, int(batch_size))
        try:
            parts = [self._session.run(names, {self._input: X[i:i + step]})
                     for i in range(0, max(X.shape[0], 1), step)]
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            if any(text in str(exc) for text in ("bad_alloc", "Failed to allocate", "out of memory")):
                raise MemoryError(str(exc)) from None   # the memory budget's fix, not the model's
            raise OreMapError(
                f"onnxruntime cannot run the model '{os.path.basename(self.path)}' on input of shape "
                f"{tuple(X.shape)}: {exc}",
                parameter="model", fix="Retrain the model with this OreMap, " + _OR_FIX_MODEL) from None
        return [parts[0][j] if len(parts) == 1 else np.concatenate([p[j] for p in parts]) for j in range(len(names))]

    def run_outputs(self, X, batch_size=8192):
        """Every output of the graph, as ``{name: array}``, for input checked as in :meth:`run`.

        For models with several outputs (e.g. abundances and their spread).
        """
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._batched(self._checked(X), names, batch_size)))

    def run_dense(self, X, batch_size=16):
        """Raw output of a dense window model (one value per input cell, e.g. mine segmentation).

        ``X`` is ``(n, n_bands, h, w)`` float32; returns the graph's output (e.g. ``(n, 1, h, w)``
        probabilities) as float32, running ``batch_size`` windows at a time.
        """
        return np.asarray(self._batched(self._checked(X, dense=True), [self._output], batch_size)[0],
                          dtype=np.float32)

    def run(self, X, batch_size=8192):
        """Class probabilities of spectra.

        Parameters
        ----------
        X : array-like of shape (n, n_bands)
            Spectra at the model's bands, already preprocessed as
            ``info.preprocessing`` says (see
            :func:`core.hyperspectral.spectral_cnn.predict_proba` for both steps).
            For a window model (``info.input["window"]`` set, e.g.
            :mod:`core.geochemistry.prospectivity_cnn`): windows of shape
            ``(n, n_bands, window, window)``.
        batch_size : int, default 8192
            Rows sent to onnxruntime at once; bounds the memory of the
            network's intermediate activations.

        Returns
        -------
        ndarray of float32 of shape (n, n_classes)
            Rows sum to 1; a row with NaN input holds NaN.

        Raises
        ------
        OreMapError
            ``parameter="raster"`` when ``X`` does not have the model's
            shape (2-D with ``n_bands`` columns, or windows as above).
        """
        X = self._checked(X)
        if X.shape[0] == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        out = np.asarray(self._batched(X, [self._output], batch_size)[0], dtype=np.float32)
        if out.shape != (X.shape[0], self.n_classes):
            raise OreMapError(
                f"The model returned an array of shape {out.shape}, not ({X.shape[0]}, {self.n_classes}).",
                parameter="model", fix=_FIX_MODEL)
        return out
