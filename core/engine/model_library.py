"""The model library: bundled and user models, their cards, and the algorithm that uses each task.

:data:`TASK_ALGORITHMS` is the one table from a model's ``task`` (its metadata, see
:mod:`core.engine.model_format`) to the Processing algorithm that applies it and the
parameter that takes the model file; a new task is one line. A model whose task is
not listed still shows its card, but offers no algorithm.

No Qt here: :func:`card_html` returns Qt-rich-text-friendly HTML (tables, no CSS
beyond colours) that the model library dock shows as it is.
"""

import html
import os
import pathlib
from dataclasses import dataclass

from .bundled import MODELS_DIR, bundled_models, forget, model_info
from .errors import OreMapError
from .model_format import required_features


@dataclass(frozen=True)
class TaskAlgorithm:
    """How to open a model of one task: algorithm id, model file parameter, and optionally the
    enum parameter listing the bundled models of that task (then 'Model file' after them)."""

    algorithm: str
    file_parameter: str = "MODEL_FILE"
    bundled_parameter: str = None


#: model task -> the algorithm that applies such a model
TASK_ALGORITHMS = {
    "spectral_classification": TaskAlgorithm("oremap:classify_spectral_cnn", "MODEL_FILE", "MODEL"),
    "mineral_abundance": TaskAlgorithm("oremap:predict_abundance"),
    "prospectivity": TaskAlgorithm("oremap:prospectivity_map"),
    "geochemical_anomaly": TaskAlgorithm("oremap:vae_anomaly"),
    "mine_segmentation": TaskAlgorithm("oremap:detect_mines"),
    "mine_patch_classification": TaskAlgorithm("oremap:detect_mines"),
}

#: human names of the tasks
TASK_TITLES = {
    "spectral_classification": "Mineral classes",
    "mineral_abundance": "Mineral abundance",
    "prospectivity": "Prospectivity",
    "geochemical_anomaly": "Geochemical anomaly",
    "mine_segmentation": "Mine detection",
    "mine_patch_classification": "Mine detection (patches)",
}

BUNDLED, USER = "bundled", "user"
_SIDECARS = (".md", "_report.html")  # model card and training report beside a model


@dataclass
class ModelEntry:
    """One model file of the library: ``info`` is its ModelInfo, or ``None`` with ``error`` saying why."""

    path: str
    source: str
    info: object = None
    error: str = ""

    @property
    def title(self):
        if self.info is not None and self.info.description:
            return self.info.description
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def task(self):
        return self.info.task if self.info is not None else ""

    @property
    def task_title(self):
        if self.info is None:
            return "unreadable"
        return TASK_TITLES.get(self.task, self.task)

    @property
    def algorithm(self):
        """The :class:`TaskAlgorithm` that applies this model, or ``None``."""
        return TASK_ALGORITHMS.get(self.task) if self.info is not None else None

    def sidecars(self):
        """Existing files that belong to the model: its card (.md) and training report (_report.html)."""
        stem = os.path.splitext(self.path)[0]
        return [stem + s for s in _SIDECARS if os.path.isfile(stem + s)]

    @property
    def card_file(self):
        found = [p for p in self.sidecars() if p.endswith(".md")]
        return found[0] if found else None

    @property
    def report_file(self):
        found = [p for p in self.sidecars() if p.endswith("_report.html")]
        return found[0] if found else None


def read_entry(path, source):
    """A :class:`ModelEntry` for ``path``; the metadata are read once per file version."""
    path = os.path.abspath(path)
    return ModelEntry(path, source, *model_info(path))


def list_models(user_folder=None):
    """Bundled models (``models/``) then the ``.onnx`` files under ``user_folder``, each sorted by name.

    The user folder is searched recursively; a missing folder gives no user models.
    """
    entries = []
    if os.path.isdir(MODELS_DIR):
        entries += [read_entry(os.path.join(MODELS_DIR, n), BUNDLED)
                    for n in sorted(os.listdir(MODELS_DIR)) if n.lower().endswith(".onnx")]
    if user_folder and os.path.isdir(user_folder):
        found = []
        for folder, dirs, files in os.walk(user_folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(folder, n) for n in files if n.lower().endswith(".onnx")]
        bundled = os.path.normcase(os.path.abspath(MODELS_DIR))
        entries += [read_entry(p, USER) for p in sorted(found, key=lambda p: os.path.relpath(p, user_folder).lower())
                    if os.path.normcase(os.path.dirname(os.path.abspath(p))) != bundled]
    return entries


def algorithm_parameters(entry):
    """``(algorithm id, parameters)`` that open the model's algorithm with this model chosen, or ``None``.

    For an algorithm that lists its bundled models in an enum parameter, a bundled model is chosen
    there by position; any other file is chosen as 'Model file' (the option after the bundled ones).
    """
    spec = entry.algorithm
    if spec is None:
        return None
    if not spec.bundled_parameter:
        return spec.algorithm, {spec.file_parameter: entry.path}
    paths = [os.path.normcase(os.path.abspath(p)) for _, p in bundled_models(entry.task)]
    here = os.path.normcase(os.path.abspath(entry.path))
    if here in paths:
        return spec.algorithm, {spec.bundled_parameter: paths.index(here)}
    return spec.algorithm, {spec.bundled_parameter: len(paths), spec.file_parameter: entry.path}


def remove_model(entry, remove=os.remove):
    """Delete a user model and its card and report; bundled models are refused.

    ``remove`` deletes one path (e.g. a move to the trash). Returns the paths removed.
    """
    if entry.source != USER:
        raise OreMapError("Bundled models cannot be removed.", parameter="model",
                          fix="Only models in your model folder can be removed.")
    removed = []
    for path in [entry.path] + entry.sidecars():
        remove(path)
        removed.append(path)
    forget(entry.path)
    return removed


# ---------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------


def _e(value):
    return html.escape(str(value), quote=True)


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _scalars(mapping, limit=16):
    """``(key, text)`` of the scalar values of a dict (nested lists and dicts left out)."""
    rows = []
    for key, value in (mapping or {}).items():
        if isinstance(value, (dict, list, tuple)) or value is None:
            continue
        rows.append((str(key).replace("_", " "), _number(value)))
    return rows[:limit]


def input_summary(info):
    """What the model expects, in words: bands, wavelength range, window, preprocessing."""
    parts = [f"{info.n_bands} bands"]
    if info.wavelengths:
        parts[0] += f", {min(info.wavelengths):.0f}-{max(info.wavelengths):.0f} nm"
        if info.fwhm:
            parts[0] += " (with band widths)"
    elif info.band_names:
        names = ", ".join(info.band_names[:12]) + (", ..." if len(info.band_names) > 12 else "")
        parts.append(f"bands named {names}")
    window = info.input.get("window")
    if window:
        parts.append(f"windows of {window} x {window} cells")
    if info.preprocessing_method != "none":
        parts.append(f"preprocessing: {info.preprocessing_method.replace('_', ' ')}")
    return "; ".join(parts)


def _safeguard(info):
    """What protects a run of this model from inputs unlike its training data, said plainly, or "" where the task
    has no such check: older files lack what later OreMap versions record."""
    training = info.training or {}
    needs = required_features(info)   # the one rule for what a model carries that guards its runs
    if info.task == "spectral_classification":
        if "ood_check" in needs:
            return ("out-of-distribution check: spectra unlike every trained class are left unclassified"
                    + (" (with the feature view)" if (training["ood"] or {}).get("feature") else "") + ".")
        return ("none: the file stores no class exemplars (made by an OreMap before the out-of-distribution check), "
                "so a spectrum unlike every class still gets one; retrain it to have the check.")
    if info.task in ("prospectivity", "geochemical_anomaly"):
        prep = info.preprocessing or {}
        held = prep.get("input_transform")
        checked = prep.get("method") == "zscore" if info.task == "prospectivity" else \
            prep.get("scale") in ("robust", "zscore")
        parts = [f"trained on {'log10 values' if held == 'log10' else 'untransformed values (concentrations)'}: a "
                 "raster recorded otherwise is refused" if "input_transform_check" in needs else
                 "what its training values held (log10 or not) is not recorded (an older OreMap, or a grid without "
                 "OreMap's band metadata)"]
        parts.append("a raster whose values lie far from the training range is refused" if checked else
                     "the values' range is not checked")
        return "; ".join(parts) + "."
    return ""


def card_html(entry):
    """The model card of ``entry`` as HTML: task, classes with colours, input, training, metrics, versions."""
    rows = [("File", _e(entry.path)),
            ("Source", "bundled with OreMap" if entry.source == BUNDLED else "your model folder")]
    head = f"<h3>{_e(entry.title)}</h3>"
    if entry.info is None:
        return head + _table(rows) + f"<p><b>Not usable:</b> {_e(entry.error)}</p>"
    info = entry.info
    spec = entry.algorithm
    task = f"{_e(entry.task_title)} (<code>{_e(info.task)}</code>)"
    task += (f"<br>applied by <code>{_e(spec.algorithm)}</code>" if spec is not None
             else "<br>no OreMap algorithm applies this task in this version")
    rows.insert(0, ("Task", task))
    rows.append(("Expected input", _e(input_summary(info))))
    training = info.training or {}
    if training.get("date"):
        rows.append(("Trained", _e(str(training["date"]).replace("T", " ")[:19])))
    if training.get("n_samples") is not None:
        rows.append(("Training samples", _e(_number(training["n_samples"]))))
    if training.get("data_hash"):
        rows.append(("Training data (sha256)", f"<code>{_e(str(training['data_hash'])[:16])}...</code>"))
    shown = {"date", "n_samples", "data_hash", "metrics", "parameters"}
    rows += [(_e(k), _e(v)) for k, v in _scalars({k: v for k, v in training.items() if k not in shown})]
    safeguard = _safeguard(info)
    if safeguard:
        rows.append(("Safeguard", _e(safeguard)))
    rows.append(("OreMap version", _e(info.oremap_version or "unknown")
                 + f" (model format {int(info.schema_version)})"))
    parts = [head, _table(rows)]
    counts = (training.get("parameters") or {}).get("class_counts")
    counts = counts if isinstance(counts, dict) else {}
    classes = "".join(
        f'<tr><td bgcolor="{_e(c["color"])}" width="18">&nbsp;</td><td>{_e(c["name"])}</td>'
        f"<td><code>{_e(c['color'])}</code></td>"
        + (f"<td align='right'>{_e(_number(counts[c['name']]))} training samples</td>" if c["name"] in counts else "")
        + "</tr>" for c in info.classes)
    kind = "Classes" if info.output.get("kind", "probabilities") == "probabilities" else "Outputs"
    parts.append(f"<h4>{kind} ({len(info.classes)})</h4><table cellspacing='2' cellpadding='2'>{classes}</table>")
    metrics = _scalars(training.get("metrics"))
    if metrics:
        parts.append("<h4>Metrics</h4>" + _table([(_e(k), _e(v)) for k, v in metrics]))
    params = _scalars(training.get("parameters"))
    if params:
        parts.append("<h4>Training settings</h4>" + _table([(_e(k), _e(v)) for k, v in params]))
    # file URIs (file:///C:/Users/..., spaces and accents percent-encoded), which every platform opens
    links = [f'<a href="{_e(pathlib.Path(os.path.abspath(path)).as_uri())}">{what}</a>'
             for path, what in ((entry.card_file, "model card"), (entry.report_file, "training report")) if path]
    if links:
        parts.append("<p>Open the " + " or the ".join(links) + ".</p>")
    if info.description and info.description != entry.title:
        parts.append(f"<p>{_e(info.description)}</p>")
    return "\n".join(parts)


def _table(rows):
    body = "".join(f"<tr><td valign='top'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    return f"<table cellspacing='0' cellpadding='3'>{body}</table>"
