"""Many scenes, large rasters, one cluster: OreMap's mapping algorithms on Dask (``dask.distributed``).

The science stays in the existing core functions (:func:`core.hyperspectral.mapping.cnn_classify_map`,
:func:`core.hyperspectral.mapping.unmix_map`, :func:`core.abundance.abundance_map.predict_abundance_map`,
:func:`core.sentinel2.mine_detection.detect_mines`, :func:`core.geochemistry.vae_raster.score_raster`), each running the block
engine of :mod:`core.engine.raster`. This module only cuts the work and hands it to Dask's scheduler:

* **By scene**, then **by rows inside a scene**: a scene of more than ``rows_per_part`` rows is cut
  into row ranges. A worker reads its range itself through a small VRT file (the scene's own pixels,
  nodata, band names and scale), runs the core function on it and writes its *part* GeoTIFFs into the
  scene's hidden work folder beside the outputs. One more task stitches the parts, window by window,
  into the output with the engine's own writer (:func:`core.engine.raster.write_blocks`: same tiling,
  compression, band names, tags and colours), under a temporary name, then moves it into place. No
  raster passes through the scheduler: tasks get paths and return small dicts.
* Everything a part needs that depends on the *whole* scene (wavelengths, the bands a model reads,
  the reflectance scale) is resolved on the whole scene, so a part computes exactly what the
  single-process run computes on the same pixels: outputs are bit-identical (tested).
* **Atomic**: a scene's outputs appear only when complete; a failed scene, a killed worker or a
  cancelled job leaves none of its files (the work folder is removed). ``resume`` skips scenes whose
  outputs all exist.
* **Models travel as files**: tasks get the model's path; with ``ship_model`` its bytes (and
  sidecar files) are sent once to every worker, which writes them to a local cache and loads the
  file. No torch or scikit-learn object is ever pickled.
* Mine detection runs one scene per task: its windows overlap and blend across rows.

Dask is optional (``python3-distributed`` on Debian/Ubuntu, else the pip command of
:func:`core.engine.dependencies.install_hint`): only
:func:`run_batch` and :func:`start_cluster` need it; planning and the per-scene functions do not.
"""

import dataclasses
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..engine.errors import OreMapError
from ..engine.files import claim, decode_text, file_key, kept_name, no_console, release, replace, touch
from ..engine.feedback import Feedback, ensure

RASTER_EXTENSIONS = (".tif", ".tiff", ".img", ".dat", ".bsq", ".bil", ".bip", ".vrt", ".jp2", ".nc", ".hdf", ".he5",
                     ".h5")
WORK_PREFIX = ".oremap-batch-"
DEFAULT_ROWS_PER_PART = 1024


# --------------------------------------------------------------------------------------
# The algorithms
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchAlgorithm:
    name: str
    label: str
    outputs: tuple        # output suffixes, in the order the core function writes them
    split_rows: bool      # may a scene be cut into row ranges
    model: str            # what the model file is (None: the algorithm needs none)
    requires: tuple = ("onnxruntime",)
    tasks: tuple = ()     # the OreMap model tasks it runs (core.engine.model_task); empty: a spectral library


ALGORITHMS = {
    "classify_cnn": BatchAlgorithm(
        "classify_cnn", "Spectral CNN classification (oremap:classify_spectral_cnn)",
        ("classes", "confidence"), True, "an OreMap spectral classifier (.onnx)",
        tasks=("spectral_classification",)),
    "unmix_fcls": BatchAlgorithm(
        "unmix_fcls", "Fully constrained linear unmixing (oremap:unmix_fcls)",
        ("abundances",), True, "a spectral library of the endmembers (.sli + .hdr, .csv or spectrum files)", ()),
    "predict_abundance": BatchAlgorithm(
        "predict_abundance", "Mineral abundance prediction (oremap:predict_abundance)",
        ("abundance", "intervals", "dominant"), True, "an OreMap abundance model (.onnx)",
        tasks=("mineral_abundance",)),
    "detect_mines": BatchAlgorithm(
        "detect_mines", "Mine detection in Sentinel-2 scenes (oremap:detect_mines)",
        ("probability", "mask"), False, "an OreMap mine segmentation model or patch classifier (.onnx)",
        tasks=("mine_segmentation", "mine_patch_classification")),
    "score_anomaly": BatchAlgorithm(
        "score_anomaly", "Anomaly scores of an element raster with a trained VAE (oremap:vae_anomaly)",
        ("score", "classes"), True, "an OreMap VAE anomaly model (.onnx)",
        tasks=("geochemical_anomaly",)),
    "sam_classify": BatchAlgorithm(
        "sam_classify", "Spectral Angle Mapper classification (oremap:sam_classify)",
        ("classes", "score"), True,
        "a spectral library of the reference spectra (.sli + .hdr, .csv or spectrum files)", ()),
    "s2_indices": BatchAlgorithm(
        "s2_indices", "Sentinel-2 spectral indices (oremap:s2_indices)",
        ("indices",), False, None, ()),
}


@dataclass
class BatchJob:
    """One batch job: an algorithm, a model, many inputs, one output folder.

    ``options`` are the algorithm's own settings (:data:`OPTIONS` says which algorithms use each):
    ``spectra`` (list of spectrum names, or one text of names separated by ``;``, unmixing and SAM; all
    spectra of the library when empty), ``mode`` ("fcls" or "nn_closed"), ``level`` (interval level,
    0-1), ``threshold`` (mine probability), ``min_confidence`` (CNN), ``ood`` (CNN: the
    out-of-distribution check, on by default), ``method`` ("sam" or "sid") and ``max_score`` (largest
    angle or divergence accepted) of SAM, ``indices`` (Sentinel-2 index names, a list or one text; all by
    default), ``band_map`` and ``cloud_mask`` (Sentinel-2 inputs, as the single algorithms), ``wavelengths``
    (nm, one per band), ``scale`` (reflectance divisor), ``nodata``, ``bad_bands`` (the bad-band choice as
    text, :func:`core.engine.bad_bands.parse_bad_bands`; empty: automatic). :func:`check_options` checks them.
    """

    algorithm: str
    model: str
    inputs: list
    out_dir: str
    options: dict = field(default_factory=dict)
    resume: bool = False
    overwrite: bool = False
    rows_per_part: int = DEFAULT_ROWS_PER_PART
    memory_mb: float = None
    threads: int = 1
    ship_model: bool = False

    def __post_init__(self):
        # workers of a remote scheduler run in other folders: a relative output folder would be theirs
        if self.out_dir:
            self.out_dir = os.path.abspath(os.fspath(self.out_dir))
        for key in ("spectra", "indices"):
            names = (self.options or {}).get(key)
            if isinstance(names, str):   # one text of names: split as the Toolbox and the command line split it
                sep = ";" if ";" in names else ","
                self.options = {**self.options, key: [n.strip() for n in names.split(sep) if n.strip()] or None}


_SPECTRAL = ("classify_cnn", "unmix_fcls", "predict_abundance", "sam_classify")
_SENTINEL2 = ("detect_mines", "s2_indices")
#: option -> the algorithms it applies to
OPTIONS = {"spectra": ("unmix_fcls", "sam_classify"), "mode": ("unmix_fcls",), "level": ("predict_abundance",),
           "threshold": ("detect_mines",), "min_confidence": ("classify_cnn",), "ood": ("classify_cnn",),
           "method": ("sam_classify",), "max_score": ("sam_classify",), "indices": ("s2_indices",),
           "band_map": _SENTINEL2, "cloud_mask": _SENTINEL2, "wavelengths": _SPECTRAL, "bad_bands": _SPECTRAL,
           "scale": _SPECTRAL, "nodata": _SPECTRAL + ("score_anomaly",)}
UNMIXING_MODES = ("fcls", "nn_closed")
SAM_METHODS = ("sam", "sid")


def _number(options, key, low, high, fix, low_open=False, high_open=False):
    """``options[key]`` as a float inside ``low``-``high`` (None when not set), else :class:`OreMapError`."""
    value = options.get(key)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise OreMapError(f"The {key.replace('_', ' ')} '{value}' is not a number.", key, fix) from None
    below = value <= low if low_open else value < low
    above = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or below or above:
        raise OreMapError(f"The {key.replace('_', ' ')} {value:g} is outside {'(' if low_open else '['}{low:g}, "
                          f"{'inf' if high is None else format(high, 'g')}{')' if high_open or high is None else ']'}.",
                          key, fix)
    return value


def check_options(algorithm, options, name=None):
    """The job's options checked before any scene runs: unknown names, values out of range (a minimum
    confidence of 5 would leave every pixel unclassified), the unmixing mode, the bad-band text and the
    wavelengths. Returns the notes on options that ``algorithm`` does not use (they are ignored), each naming
    its option by ``name(key)`` (default: "The option 'key'"; the command line gives its flag)."""
    check_algorithm(algorithm)
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OreMapError(f"Unknown option(s): {', '.join(unknown)}.", unknown[0],
                          "Use " + ", ".join(sorted(OPTIONS)) + ".")
    _number(options, "min_confidence", 0.0, 1.0, "Give a probability from 0 to 1 (e.g. 0.5); 0 classifies every "
            "pixel.")
    _number(options, "threshold", 0.0, 1.0, "Give a probability from 0 to below 1 (e.g. 0.5), or 0 or none for the "
            "model's own.", high_open=True)
    _number(options, "level", 0.5, 0.99, "Give the interval level as a fraction from 0.5 to 0.99, e.g. 0.9 for 90 % "
            "(as oremap:predict_abundance's 50-99 %).")
    _number(options, "scale", 0.0, None, "Give the divisor that turns the values into reflectance (10000 for "
            "0-10000 integers), or none to detect it.", low_open=True)
    _number(options, "nodata", -np.inf, None, "Give a number, or none.")
    _number(options, "max_score", 0.0, None, "Give the largest angle (radians, SAM) or divergence (SID) still "
            "accepted, e.g. 0.1, or none for no limit.")
    if options.get("method") is not None and options["method"] not in SAM_METHODS:
        raise OreMapError(f"Unknown SAM method '{options['method']}'.", "method", "Use sam or sid.")
    if options.get("indices") is not None:
        from ..sentinel2.sentinel2 import _index_name

        names = list(options["indices"])
        if not names:
            raise OreMapError("No index was chosen.", "indices", "Choose at least one index, or none for all.")
        for name in names:
            _index_name(name)   # an unknown index is named, with the list
    if options.get("band_map") is not None:
        from ..sentinel2.sentinel2 import parse_band_map

        parse_band_map(options["band_map"])
    mode = options.get("mode")
    if mode is not None and mode not in UNMIXING_MODES:
        raise OreMapError(f"Unknown unmixing mode '{mode}'.", "mode", "Use " + " or ".join(UNMIXING_MODES) + ".")
    if options.get("bad_bands") is not None:
        from ..engine.bad_bands import parse_bad_bands

        parse_bad_bands(options["bad_bands"])   # an entry it cannot read is named, with the syntax
    wavelengths = options.get("wavelengths")
    if wavelengths is not None:
        values = np.asarray(wavelengths, dtype=float).ravel()
        if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise OreMapError("The wavelengths must be two or more positive numbers (nm), one per band.",
                              "wavelengths", "Give the band centres in nm, e.g. '400.5, 410.2, ...'.")
    name = name or (lambda key: f"The option '{key}'")
    return [f"{name(key)} does not apply to {algorithm}: it is ignored." for key in sorted(options)
            if options[key] is not None and algorithm not in OPTIONS[key]]


def check_model(algorithm, model, options=None):
    """The model file checked before any scene runs: an OreMap ONNX model of the task ``algorithm`` runs (a CNN
    classifier for classify_cnn, ...), or for unmixing and SAM a spectral library holding the spectra named.
    Returns the notes to log (a model given to an algorithm that uses none is ignored)."""
    spec = check_algorithm(algorithm)
    if spec.model is None:
        return [f"{algorithm} uses no model: '{os.path.basename(model)}' is ignored."] if model else []
    if not model:
        raise OreMapError("No model was given.", "model", f"Choose {spec.model}.")
    if not os.path.isfile(model):
        raise OreMapError(f"The model '{model}' does not exist.", "model", f"Choose {spec.model}.")
    if spec.tasks:
        from ..engine.model_format import read_model_info
        from ..engine.model_task import check_task

        check_task(read_model_info(model), spec.tasks, model, users=_task_users())
        return []
    from ..hyperspectral.spectral_library import read_library

    library = read_library(model)
    names = (options or {}).get("spectra")
    if names:
        library.subset(list(names))
    return []


def _task_users():
    """``{model task: words}`` naming the batch algorithm that runs a model of that task, or the QGIS algorithm
    when none does (a wrong model's message names what to use it with)."""
    from ..engine.model_library import TASK_ALGORITHMS

    users = {task: f"{owner.algorithm} in QGIS (no batch algorithm runs it)" for task, owner in TASK_ALGORITHMS.items()}
    for spec in ALGORITHMS.values():
        for task in spec.tasks:
            users[task] = f"the batch algorithm {spec.name}"
    return users


def check_algorithm(name):
    if name not in ALGORITHMS:
        raise OreMapError(f"Unknown batch algorithm '{name}'.", "algorithm",
                          "Choose one of: " + ", ".join(ALGORITHMS) + ".")
    return ALGORITHMS[name]


# --------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------
def _is_raster_file(path):
    """A file read as a scene: a raster extension, or an ENVI image without one (``ang..._img`` beside its
    ``.hdr``, as AVIRIS-NG delivers them); not a style, a table or a header."""
    if not os.path.isfile(path):
        return False
    name = path.lower()
    # an EnMAP product named by its metadata file; HDF5 holds anything (network weights...): PRISMA products only;
    # a ZIP: an EnMAP or PRISMA product's archive only
    if name.endswith((".xml", ".h5", ".he5", ".zip")):
        from ..hyperspectral.sensor_products import detect

        return detect(path) is not None
    if not name.endswith(RASTER_EXTENSIONS):
        return not os.path.splitext(path)[1] and os.path.isfile(path + ".hdr")
    return True


def _scene_key(path):
    """One key per scene: an EnMAP product given by its XML and its image (a pattern matches both) is one."""
    from ..hyperspectral.sensor_products import enmap_metadata, product_file

    metadata = enmap_metadata(product_file(path)) if os.path.isfile(path) else None
    return os.path.realpath(metadata or path)


def is_sentinel2_product(folder):
    """Whether ``folder`` is one Sentinel-2 product, read as one scene: at least two of its per-band files
    (:func:`core.sentinel2.sentinel2.find_band_files`) lie in the folder itself (BigEarthNet patches, a
    folder of ``*_B02.tif`` ...), or it is a ``.SAFE`` holding band files (under ``GRANULE/.../IMG_DATA``).
    A folder of such folders is not one."""
    from ..sentinel2.sentinel2 import band_of_file, find_band_files

    if not os.path.isdir(folder):
        return False
    if os.path.normpath(folder).lower().endswith(".safe"):
        try:
            return len(find_band_files(folder)) >= 2
        except OreMapError:  # band files of several products: a scene that fails with that message
            return True
    # the folder's own files only: no walk of a tree of scenes to decide about its top
    return sum(1 for entry in os.scandir(folder) if entry.is_file() and band_of_file(entry.name)) >= 2


def expand_inputs(items, list_files=(), parameter="inputs", feedback=None):
    """Input scenes from glob patterns, folders and list files (one path a line).

    A folder that is a Sentinel-2 product (:func:`is_sentinel2_product`: one GeoTIFF or JP2 per band, as
    BigEarthNet patches or a ``.SAFE``) is one scene, as a folder matched by a pattern is; any other folder
    gives its raster files and the Sentinel-2 product folders in it (of an EMIT, EnMAP or PRISMA product, the image
    only: not its mask, uncertainty or quality-layer files). Entries of a list file are taken as
    they are (a file, or a Sentinel-2 band folder for mine detection); relative entries are relative to
    the list file. Duplicates are dropped, order kept; ``feedback`` is told which companion files and repeated
    scenes were left out.
    """
    found, companions, others = [], [], []
    for item in items or ():
        item = os.path.expanduser(str(item))
        # a pattern only when no file or folder has that name: 'Survey [2023]/scene.tif' is a path (taken as a
        # pattern it matched 'Survey 2/scene.tif', another scene, or nothing)
        if any(ch in item for ch in "*?[") and not os.path.exists(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p) or os.path.isdir(p))
            if not matches:
                raise OreMapError(f"The pattern '{item}' matches no file.", parameter,
                                  "Check the pattern (quote it so the shell does not expand it).")
            from ..hyperspectral.sensor_products import is_companion

            rasters = []
            for p in matches:
                if os.path.isdir(p):
                    rasters.append(p)
                elif _is_raster_file(p):
                    (companions if is_companion(p) else rasters).append(p)
                elif not p.lower().endswith((".hdr", ".aux.xml")):   # headers go with their images
                    others.append(p)
            if not rasters:
                raise OreMapError(f"The pattern '{item}' matches no raster file ({len(matches)} other file(s)).",
                                  parameter, "Check the pattern: it should match the scenes (e.g. '*.tif').")
            found += rasters
        elif is_sentinel2_product(item):
            found.append(item)
        elif os.path.isdir(item):
            from ..hyperspectral.sensor_products import is_companion

            files = sorted(os.path.join(item, f) for f in os.listdir(item))
            # an EnMAP product's image, not also its metadata XML (which names the same scene)
            rasters = [f for f in files if (_is_raster_file(f) and not is_companion(f)
                                            and not f.lower().endswith(".xml")) or is_sentinel2_product(f)]
            companions += [f for f in files if _is_raster_file(f) and is_companion(f)]
            if not rasters:
                raise OreMapError(f"The folder '{item}' holds no raster file ({', '.join(RASTER_EXTENSIONS)}) "
                                  "and no Sentinel-2 product folder.",
                                  parameter, "Choose a folder of rasters, or list the scenes in a list file.")
            found += rasters
        elif os.path.exists(item):
            found.append(item)
        else:
            raise OreMapError(f"The input '{item}' does not exist.", parameter, "Choose existing files.")
    for list_file in list_files or ():
        if not os.path.isfile(list_file):
            raise OreMapError(f"The list file '{list_file}' does not exist.", "list", "Choose an existing file.")
        base = os.path.dirname(os.path.abspath(list_file))
        with open(list_file, "rb") as handle:  # UTF-8 or Windows' code page (a list saved by Notepad)
            lines = decode_text(handle.read()).splitlines()
        for n, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = line if os.path.isabs(line) else os.path.join(base, line)
            if not os.path.exists(path):
                raise OreMapError(f"Line {n} of '{list_file}': '{line}' does not exist.", "list",
                                  "Correct or remove the line.")
            found.append(path)
    seen, unique, repeated = {}, [], []
    for path in found:
        key = _scene_key(path)
        path = os.path.abspath(path)
        if key not in seen:
            seen[key] = path
            unique.append(path)
        elif path != seen[key]:
            first = seen[key]
            if os.path.realpath(first) == key != os.path.realpath(path):  # an EnMAP XML came first: the image, which
                unique[unique.index(first)] = seen[key] = path             # names the outputs, takes its place
                path = first
            repeated.append(f"{os.path.basename(path)} (the same scene as {os.path.basename(seen[key])})")
    feedback = ensure(feedback)
    if others:
        feedback.info(f"{len(others)} file(s) matched that are not rasters left out: "
                      f"{', '.join(os.path.basename(p) for p in others[:10])}" + (" ..." if len(others) > 10 else "")
                      + ".")
    if companions:
        feedback.info(f"{len(companions)} companion file(s) of sensor products left out (read with their product's "
                      f"image, not as scenes): {', '.join(os.path.basename(p) for p in companions[:10])}"
                      + (" ..." if len(companions) > 10 else "") + ".")
    if repeated:
        feedback.info(f"Given twice, processed once: {'; '.join(repeated[:10])}" + (" ..." if len(repeated) > 10
                                                                                    else "") + ".")
    if not unique:
        raise OreMapError("No input scene was given.", parameter, "Give files, a folder, a pattern or a list file.")
    return unique


def scene_stem(path):
    base = os.path.basename(os.path.normpath(path))
    stem, ext = os.path.splitext(base)
    return stem if ext.lower() in RASTER_EXTENSIONS + (".safe",) else base


def output_paths(algorithm, scene, out_dir):
    """``{suffix: path}`` of a scene's outputs: ``<out_dir>/<scene stem>.<suffix>.tif``."""
    spec = check_algorithm(algorithm)
    stem = scene_stem(scene)
    return {s: os.path.join(out_dir, f"{stem}.{s}.tif") for s in spec.outputs}


def work_folder(algorithm, scene, out_dir):
    """The scene's hidden work folder (parts, temporary files), removed when the scene ends: the scene's name cut to
    24 characters and a hash of it and the algorithm, so the paths inside stay short (Windows' 260-character paths:
    a long scene name in a OneDrive folder took the assembled file's temporary name past them)."""
    stem = scene_stem(scene)
    digest = hashlib.sha1(f"{stem}.{algorithm}".encode("utf-8")).hexdigest()[:8]
    return os.path.join(out_dir, f"{WORK_PREFIX}{stem[:24]}-{digest}")


def assembled_path(work, suffix):
    """The file in the scene's work folder that output ``suffix`` is assembled into before it takes its place."""
    return os.path.join(work, f"assembled.{suffix}.tif")


@dataclass
class ScenePlan:
    scene: str
    outputs: dict
    work: str
    height: int = 0
    parts: list = field(default_factory=list)   # [(row0, row1)], empty: the whole scene in one task
    sizing: object = None                         # the block engine's Sizing (split scenes)
    skip: bool = False


def outputs_among_inputs(inputs, out_dir):
    """``{input: scene}`` of the inputs that are batch outputs (of any batch algorithm) of another input, in
    ``out_dir`` or beside that input: an output folder that is also the input folder gives them to a rerun's
    folder or pattern, and to the next job on that folder."""
    outputs = {}
    for scene in inputs:
        for folder in (out_dir, os.path.dirname(os.path.abspath(scene))):
            for name in ALGORITHMS:
                for path in output_paths(name, scene, folder).values():
                    outputs.setdefault(os.path.abspath(path), scene)
    return {path: outputs[os.path.abspath(path)] for path in inputs
            if os.path.abspath(path) in outputs and outputs[os.path.abspath(path)] != path}


def plan(job, feedback=None, name=None):
    """Check a job (its model, options and output folder) and cut it into scenes and row ranges (reads raster
    headers only). Inputs that are outputs of other inputs (an output folder that is also the input folder)
    are left out, and ``feedback`` is told so and about options the algorithm does not use (named by ``name``,
    see :func:`check_options`)."""
    spec = check_algorithm(job.algorithm)
    feedback = ensure(feedback)
    for note in check_model(job.algorithm, job.model, job.options) + check_options(job.algorithm, job.options,
                                                                                   name):
        feedback.info(note)
    derived = outputs_among_inputs(job.inputs, job.out_dir)
    if derived:
        job.inputs = [p for p in job.inputs if p not in derived]
        feedback.info(f"{len(derived)} input(s) left out: batch outputs of other scenes "
                      + "; ".join(f"{os.path.basename(p)} (of {os.path.basename(s)})" for p, s in
                                  list(derived.items())[:5]) + (" ..." if len(derived) > 5 else "") + ".")
        if not job.inputs:
            raise OreMapError("Every input is an output of another input.", "inputs", "Choose the scenes themselves.")
    if not os.path.isdir(job.out_dir):
        raise OreMapError(f"The output folder '{job.out_dir}' does not exist.", "out_dir", "Create it first.")
    if not os.access(job.out_dir, os.W_OK):
        raise OreMapError(f"The output folder '{job.out_dir}' is not writable.", "out_dir",
                          "Choose a folder you can write to.")
    release(claim_folder(job.out_dir))   # another job writing there is named before a cluster starts
    if int(job.rows_per_part) < 1:
        raise OreMapError("Rows per part must be at least 1.", "rows_per_part", "Use e.g. 1024.")
    if job.memory_mb is not None and not float(job.memory_mb) > 0:
        raise OreMapError(f"The memory budget must be positive, not {job.memory_mb:g} MB.", "memory_mb",
                          "Give the megabytes one task may use, e.g. 512, or leave it out.")
    if int(job.threads) < 1:
        raise OreMapError(f"The threads per task must be at least 1, not {job.threads}.", "threads", "Use e.g. 1.")
    from ..engine.raster import output_name_problem

    plans, stems = [], {}
    n_wavelengths = len((job.options or {}).get("wavelengths") or ()) if job.algorithm in OPTIONS["wavelengths"] else 0
    mismatched = []   # scenes whose band count is not that of the wavelengths given
    for scene in job.inputs:
        stem = scene_stem(scene)
        key = file_key(stem)   # 'Scene1' and 'scene1' are one output name on Windows and macOS
        if key in stems:
            raise OreMapError(f"Two inputs would write the same outputs '{stem}.*': '{stems[key]}' and '{scene}'.",
                              "inputs", "Rename one of them, or run them into different output folders.")
        stems[key] = scene
        outputs = output_paths(job.algorithm, scene, job.out_dir)
        p = ScenePlan(scene, outputs, work_folder(job.algorithm, scene, job.out_dir))
        # the outputs, and the longest file of the scene's work folder, under the file system's limits
        longest = max(spec.outputs, key=len)
        for path in list(outputs.values()) + [assembled_path(p.work, longest)]:
            problem = output_name_problem(path)
            if problem:
                raise OreMapError(f"For '{os.path.basename(scene)}': {problem[0]}", "out_dir",
                                  "Choose an output folder with a shorter path, or give the scene a shorter name.")
        existing = [o for o in outputs.values() if os.path.exists(o)]
        if job.resume and len(existing) == len(outputs):
            p.skip = True
        elif existing and not job.overwrite:
            # resuming: a scene holds some outputs only when another algorithm wrote them (classify_cnn and
            # score_anomaly both write <scene>.classes.tif) or a run stopped while moving them into place
            raise OreMapError(f"'{existing[0]}' already exists" + (
                f", but not every output of {job.algorithm} for this scene ({', '.join(spec.outputs)}): another "
                "algorithm may have written it" if job.resume else "") + ".", "out_dir",
                "Allow overwriting, or choose another folder (one folder per algorithm)." if job.resume else
                "Resume the job (skip finished scenes), allow overwriting, or choose another folder.")
        if not p.skip and spec.split_rows and os.path.isfile(scene) and not is_spectrometer_product(scene):
            import rasterio

            from ..engine.raster import spectral_count, vrt_type

            try:
                with rasterio.open(scene) as ds:
                    p.height, width = ds.height, ds.width
                    if n_wavelengths and spectral_count(ds) != n_wavelengths:
                        mismatched.append(f"{os.path.basename(scene)} ({spectral_count(ds)} bands)")
                    whole = not all(vrt_type(d) for d in ds.dtypes)   # a VRT of rows cannot carry them
                if p.height > int(job.rows_per_part) and not whole:
                    settings = _settings(job.algorithm, scene, job.model, job.options, job.threads)
                    p.sizing = settings.sizing
                    p.parts = row_ranges(width, p.height, settings.sizing, job.memory_mb, int(job.rows_per_part))
            except (rasterio.errors.RasterioIOError, OreMapError):
                p.parts = []   # the scene's one task reports why it cannot run
        plans.append(p)
    if mismatched:   # the wavelengths apply to every scene: found here, not scene by scene on the cluster
        raise OreMapError(f"{n_wavelengths} wavelengths were given, but {len(mismatched)} scene(s) have another band "
                          f"count: {', '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}.",
                          "wavelengths", "Give exactly one wavelength per band (nm), or run scenes of different "
                          "sensors as separate jobs.")
    return plans


# --------------------------------------------------------------------------------------
# Models as files
# --------------------------------------------------------------------------------------
def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(path):
    """The model file and its sidecars (an ENVI library's header) as ``{file name: bytes}``."""
    def read(name):
        with open(name, "rb") as handle:
            return handle.read()

    files = {os.path.basename(path): read(path)}
    if os.path.splitext(path)[1].lower() in (".sli", ".esl", ".hdr", ".dat"):
        from ..hyperspectral.spectral_library import _envi_paths

        try:   # the header and the data of an ENVI library (library.hdr or library.sli.hdr), as read_library finds them
            for other in _envi_paths(path):
                files.setdefault(os.path.basename(other), read(other))
        except OreMapError:
            pass   # no library: the workers say why when they read it
    return files


@dataclass(frozen=True)
class ModelRef:
    """A model as it travels to the workers: its path and checksum (the bytes, when shipped, apart)."""

    path: str
    sha256: str


def model_ref(path):
    return ModelRef(os.path.abspath(path), _sha256(path))


def materialise(ref, files=None, cache=None):
    """The local path of the model on this worker: its own path when readable with the same checksum,
    else the shipped bytes written once to a cache folder (same file name; outputs that record the model name
    the user's path, see :func:`run_part`)."""
    if os.path.isfile(ref.path) and (files is None or _sha256(ref.path) == ref.sha256):
        return ref.path
    if not files:
        raise OreMapError(f"The model '{ref.path}' cannot be read on this worker.", "model",
                          "Put the model on a file system the workers share, or ship it to them.")
    folder = os.path.join(cache or os.path.join(tempfile.gettempdir(), "oremap-models"), ref.sha256[:16])
    target = os.path.join(folder, os.path.basename(ref.path))
    if os.path.isfile(target) and _sha256(target) == ref.sha256:
        return target
    os.makedirs(folder, exist_ok=True)
    from ..engine.files import write_atomic

    for name, data in files.items():
        write_atomic(os.path.join(folder, name), data, parameter="model")
    if _sha256(target) != ref.sha256:
        raise OreMapError("The shipped model does not match its checksum.", "model", "Run the job again.")
    return target


# --------------------------------------------------------------------------------------
# A row range of a scene, as a raster of its own
# --------------------------------------------------------------------------------------
def row_vrt(scene, row0, row1, vrt_path, gain=None, bias=None):
    """Write a VRT of rows ``row0:row1`` of ``scene``: same pixels, nodata, band descriptions and
    metadata, georeferenced where the rows lie; ``gain``/``bias`` become every band's scale/offset (arrays: one
    per band of the scene); GDAL's mask of the scene (internal or .msk) carried over the same rows."""
    import rasterio

    from ..engine.vrt import raster_vrt_xml

    with rasterio.open(scene) as ds:
        xml = raster_vrt_xml(scene, ds, rows=(row0, row1), gain=gain, bias=bias)
    with open(vrt_path, "w", encoding="utf-8") as handle:
        handle.write(xml)
    return vrt_path


def _scale_decision(scene, bands, scale):
    """How the block engine turns the whole scene's values into reflectance, for the bands it reads:
    ``(scale, gain, bias, note)``: a divisor to pass on, or the gain and bias the part's VRT carries, and what
    the single run logs about it (a part, which reads its rows through a VRT carrying the decision, would log
    the VRT's scale as metadata, or a divisor of 1 as the user's setting: its note is replaced by this one)."""
    from ..engine.raster import detect_scale, open_raster

    with open_raster(scene) as ds:
        bands = list(range(1, ds.count + 1)) if bands is None else list(bands)
        gain, bias, note = detect_scale(ds, scale, bands)
        if np.ndim(gain):  # one per band: the part's VRT carries each band's own, for every band of the scene
            gain, bias, _ = detect_scale(ds, scale, list(range(1, ds.count + 1)))
    if np.ndim(gain) == 0 and gain == 1.0 and bias == 0.0:
        return 1.0, None, None, note or ""   # "divide by 1": the part never guesses on its own few pixels
    return None, gain, bias, note or ""


def _part_scale_notes(gain, bias, note):
    """``{what a part logs about its reflectance scale: what the whole scene's run logs}`` (see
    :func:`_scale_decision`); an empty text drops the part's note."""
    from ..engine.raster import SCALE_NOTE_METADATA, SCALE_NOTE_USER

    if gain is None:
        return {SCALE_NOTE_USER.format(scale=1.0): note}
    if np.ndim(gain):
        return {}  # per-band scales: the part's VRT carries the scene's own, so its note is the scene's
    return {SCALE_NOTE_METADATA.format(gain=gain, bias=bias): note}


# --------------------------------------------------------------------------------------
# One scene, or one row range of it: the core functions
# --------------------------------------------------------------------------------------
def _sizing(scene, bands, outputs, work, fixed=0):
    """The :class:`Sizing` (:func:`core.engine.raster.pixelwise_sizing`'s arguments but the budget) of the core function's
    block engine call on ``scene``: its bands read, their type and the file's band count, the ``(count, dtype)`` of
    every output, the work the core function declares per pixel and whatever the block size."""
    from ..engine.raster import open_raster

    with open_raster(scene) as ds:
        return Sizing(dict(n_bands=ds.count if bands is None else len(bands), dtype=ds.dtypes[0],
                           outputs=list(outputs), work_bytes_per_pixel=int(work), fixed_bytes=int(fixed),
                           file_bands=ds.count))


@dataclass(frozen=True)
class Sizing:
    """How the block engine cuts a scene into windows: for a core function's call, the arguments of
    :func:`core.engine.raster.pixelwise_sizing` but the budget (``engine``, from :func:`_sizing`); for a plain
    copy of finished parts, a flat byte count per pixel (:meth:`flat`)."""

    engine: dict = None
    bytes_per_pixel: int = 0

    @classmethod
    def flat(cls, bytes_per_pixel):
        return cls(bytes_per_pixel=int(bytes_per_pixel))

    def windows(self, width, height, memory_mb):
        """The block engine's windows of a ``width`` x ``height`` raster under ``memory_mb``."""
        from ..engine.raster import block_windows, memory_budget_mb, pixelwise_sizing

        if self.engine is not None:
            return pixelwise_sizing(memory_mb=memory_mb, **self.engine).windows(width, height)
        return block_windows(width, height, self.bytes_per_pixel, memory_budget_mb(memory_mb))


@dataclass
class _Settings:
    """What depends on the whole scene: the reflectance scale (``(scale, gain, bias)``), the call of the
    core function, and the :class:`Sizing` the block engine cuts its blocks with for that call."""

    scale: tuple
    call: object
    sizing: object = None   # a Sizing


def _settings(algorithm, scene, model, options, threads, feedback=None, model_name=None):
    """Bands, wavelengths, the reflectance scale and the call of the core function, from the whole scene,
    as the single algorithm resolves them (band centres, bad bands with the user's choice, the model's bands);
    ``feedback`` is told what it logs (the bands dropped, ...). ``model_name``: the user's model path where
    ``model`` is a worker's copy of it (:func:`materialise`), for the outputs that record it.

    ``sizing`` repeats the sizing of the core function's block engine call (input, outputs and the
    work it declares) so that row ranges can be whole numbers of the engine's blocks; the part tasks
    count the blocks they run and the job reports any difference.
    """
    from ..hyperspectral import mapping
    from ..engine.raster import class_raster_dtype

    opt = dict(options or {})
    wavelengths = opt.get("wavelengths")
    nodata = opt.get("nodata")
    feedback = ensure(feedback)

    def band_info(required=True):
        return mapping.image_band_info(scene, wavelengths, required=required, bad_bands=opt.get("bad_bands"),
                                       nodata=nodata, scale=opt.get("scale"), feedback=feedback)

    if algorithm == "classify_cnn":
        from ..engine.model_format import OnnxModel, read_model_info

        info = read_model_info(model)
        image_info = band_info() if (info.wavelengths or wavelengths) else None
        bands, matrix = mapping.model_input(scene, info, image_info)   # cnn_classify_map logs what it says
        k = len(info.class_names)
        work, fixed = mapping.cnn_block_bytes(OnnxModel(model, threads=threads), matrix is not None,
                                             mapping.CNN_BATCH_ROWS)
        sizing = _sizing(scene, bands, [(1, class_raster_dtype(k)), (1, "float32")], work, fixed)

        def call(raster, paths, memory_mb, feedback, scale_arg):
            return mapping.cnn_classify_map(raster, model, paths["classes"], None, paths["confidence"],
                                            min_confidence=opt.get("min_confidence"), threads=threads,
                                            band_info=image_info, scale=scale_arg, nodata=nodata,
                                            memory_mb=memory_mb, feedback=feedback, ood=opt.get("ood", True),
                                            log_counts=False)   # the scene's totals are logged when it ends
        return _Settings(_scale_decision(scene, bands, opt.get("scale")), call, sizing)
    if algorithm == "unmix_fcls":
        from ..engine import unmixing
        from ..hyperspectral.spectral_library import read_library

        library = read_library(model)
        names = opt.get("spectra")
        if names:
            library = library.subset(list(names))
        image_info = band_info()
        bands, _ = mapping.reference_matrix(scene, library, image_info, min_bands=len(library.names))
        k = len(library.names)
        residuals = len(mapping.RESIDUAL_BANDS[opt.get("mode") or "fcls"])
        sizing = _sizing(scene, bands, [(k + residuals, "float32")], *unmixing.block_bytes(len(bands), k))

        def call(raster, paths, memory_mb, feedback, scale_arg):
            return mapping.unmix_map(raster, library, paths["abundances"], mode=opt.get("mode") or "fcls",
                                     band_info=image_info, scale=scale_arg, nodata=nodata, memory_mb=memory_mb,
                                     feedback=feedback)
        return _Settings(_scale_decision(scene, bands, opt.get("scale")), call, sizing)
    if algorithm == "predict_abundance":
        from ..abundance import abundance_map as abundance

        model_obj = abundance.AbundanceModel(model)
        info = band_info(required=False) if (model_obj.info.wavelengths or wavelengths) else None
        bands, matrix = mapping.model_input(scene, model_obj.info, info, feedback)
        k = len(model_obj.names)
        sizing = _sizing(scene, bands, [(k, "float32"), (2 * k, "float32"), (1, class_raster_dtype(k))],
                         *model_obj.block_bytes(matrix is not None))

        def call(raster, paths, memory_mb, feedback, scale_arg):
            return abundance.predict_abundance_map(raster, model, paths["abundance"], paths["intervals"],
                                                   paths["dominant"], level=float(opt.get("level") or 0.9),
                                                   image_bands=bands, resampler=matrix, scale=scale_arg,
                                                   nodata=nodata, memory_mb=memory_mb, feedback=feedback,
                                                   model_name=model_name)
        return _Settings(_scale_decision(scene, bands, opt.get("scale")), call, sizing)
    if algorithm == "score_anomaly":
        from ..geochemistry import vae_anomaly, vae_raster

        from ..geochemistry.grid_meaning import check_raster_for_model

        anomaly = vae_anomaly.load_model(model, threads=threads)
        bands, _ = vae_raster.raster_bands(scene, anomaly.names)
        # as a single run: no step the grid holds repeated, no grid of another transform than the training grid's
        check_raster_for_model(scene, bands, anomaly.preprocessing, feedback.info)
        m = len(anomaly.names)
        sizing = _sizing(scene, bands, [(1, "float32"), (1, "uint8")], m * 8 * 10 + 64)

        def call(raster, paths, memory_mb, feedback, scale_arg):
            return vae_raster.score_raster(anomaly, raster, paths["score"], paths["classes"], nodata=nodata,
                                            memory_mb=memory_mb, feedback=feedback)
        return _Settings((1.0, None, None, ""), call, sizing)   # element rasters are read as they are (scale 1)
    if algorithm == "detect_mines":
        from ..sentinel2.mine_detection import DEFAULT_MIN_AREA_HA, detect_mines

        def call(raster, paths, memory_mb, feedback, scale_arg):  # footprints counted as a single run counts them
            return detect_mines(raster, model, paths["probability"], paths["mask"],
                                threshold=opt.get("threshold") or None, min_area_ha=DEFAULT_MIN_AREA_HA,
                                memory_mb=memory_mb, feedback=feedback, threads=threads,
                                band_map=opt.get("band_map"), mask_clouds=opt.get("cloud_mask", True))
        return _Settings((None, None, None, ""), call)
    if algorithm == "sam_classify":
        from ..hyperspectral import sam
        from ..hyperspectral.spectral_library import read_library

        library = read_library(model)
        names = opt.get("spectra")
        if names:
            library = library.subset(list(names))
        method = opt.get("method") or "sam"
        image_info = band_info()
        whole = not names   # a whole library: spectra measured over part of the range are left out, as in one run
        bands, _, kept = mapping.reference_spectra(scene, library, image_info, drop_partial=whole)
        k = len(kept.names)
        sizing = _sizing(scene, bands, [(1, class_raster_dtype(k)), (1, "float32")],
                         sam.work_bytes_per_pixel(len(bands), k, method))

        def call(raster, paths, memory_mb, feedback, scale_arg):
            return mapping.sam_map(raster, library, paths["classes"], paths["score"], method=method,
                                   threshold=opt.get("max_score") or None, band_info=image_info, scale=scale_arg,
                                   nodata=nodata, memory_mb=memory_mb, feedback=feedback, whole_library=whole)
        return _Settings(_scale_decision(scene, bands, opt.get("scale")), call, sizing)
    if algorithm == "s2_indices":
        from ..sentinel2.sentinel2 import indices_map

        def call(raster, paths, memory_mb, feedback, scale_arg):
            return indices_map(raster, paths["indices"], opt.get("indices"), band_map=opt.get("band_map"),
                               mask_clouds=opt.get("cloud_mask", True), memory_mb=memory_mb, feedback=feedback)
        return _Settings((None, None, None, ""), call)
    check_algorithm(algorithm)
    raise AssertionError(algorithm)


def _layout(windows, row0, row1):
    return sorted((int(w.col_off), int(w.row_off) - row0, int(w.width), int(w.height))
                  for w in windows if row0 <= w.row_off < row1)


def row_ranges(width, height, sizing, memory_mb, rows_per_part):
    """Cut a scene into row ranges of about ``rows_per_part`` rows, each a whole number of the block
    engine's blocks *and* cut by the engine into exactly those blocks when it runs on the range alone.

    So a range's every block holds the pixels the same block holds in the single-process run, and
    computations that depend on how many pixels go through together (onnxruntime's and BLAS's kernels
    differ in the last bit between batch sizes) give the same bits. ``[]``: the scene stays whole.
    """
    windows = sizing.windows(width, height, memory_mb)
    starts = sorted({int(w.row_off) for w in windows})
    cuts = [r for r in starts[1:] if all(not (w.row_off < r < w.row_off + w.height) for w in windows)]

    def same(r0, r1):
        return _layout(windows, r0, r1) == _layout(sizing.windows(width, r1 - r0, memory_mb), 0, r1 - r0)

    parts, start = [], 0
    for r in cuts:   # a cut from which the rest of the scene is cut alike, too
        if r - start >= rows_per_part and same(start, r) and same(r, height):
            parts.append((start, r))
            start = r
    parts.append((start, height))
    return parts if len(parts) > 1 else []


COUNT_KEYS = ("valid_pixels", "scored", "n_mines", "mine_pixels", "total_area_ha", "out_of_distribution",
              "low_confidence", "unmixed_pixels", "fill_pixels")
"""The counts of a core function's result that a task returns, and that a split scene's parts add up."""


def _summary(stats):
    """The JSON-friendly numbers of a core function's result, and what styling its outputs needs (the
    class legend of a CNN, the mine threshold, the mean of every abundance band)."""
    out = {}
    if not isinstance(stats, dict):
        return out
    for key in COUNT_KEYS:
        if key in stats:
            out[key] = float(stats[key]) if key == "total_area_ha" else int(stats[key])
    for key in ("class_counts",):
        value = stats.get(key)
        if isinstance(value, dict):
            out[key] = {k: int(v) for k, v in value.items()}
        elif value is not None:
            out[key] = [int(v) for v in np.asarray(value).ravel()]
    if stats.get("threshold") is not None:
        out["threshold"] = float(stats["threshold"])
    if "ood_checked" in stats:
        out["ood_checked"] = bool(stats["ood_checked"])
    if stats.get("scale_sums") is not None:   # strict unmixing's evidence of a brightness-scale mismatch
        out["scale_sums"] = [float(v) for v in stats["scale_sums"]]
    if isinstance(stats.get("legend"), list):
        out["legend"] = [{"value": int(c["value"]), "name": str(c["name"]), "color": str(c["color"])}
                         for c in stats["legend"]]
    if isinstance(stats.get("mean_abundance"), dict):
        out["means"] = {str(k): float(v) for k, v in stats["mean_abundance"].items()}
    elif isinstance(stats.get("table"), list):
        out["means"] = {str(row["mineral"]): float(row["mean_percent"]) for row in stats["table"]}
    return out


def scene_summary(results):
    """A scene's numbers from its parts' results (:func:`run_part`): counts added, the means of the
    abundance bands weighted by the parts' valid pixels, the rest (legend, threshold) from the first part."""
    stats = [r.get("stats") or {} for r in sorted(results, key=lambda r: r["index"]) if not r.get("empty")]
    if not stats:
        return {}
    out = {}
    for key in COUNT_KEYS:
        if all(key in s for s in stats):
            out[key] = sum(s[key] for s in stats)
    if "fill_pixels" in out:   # a row range of fill alone is an empty part that counts its fill too
        out["fill_pixels"] += sum(r.get("fill_pixels", 0) for r in results if r.get("empty"))
    if all("class_counts" in s for s in stats):
        first = stats[0]["class_counts"]
        if isinstance(first, dict):
            out["class_counts"] = {k: sum(s["class_counts"].get(k, 0) for s in stats) for k in first}
        else:
            out["class_counts"] = [int(v) for v in np.sum([s["class_counts"] for s in stats], axis=0)]
    for key in ("threshold", "legend", "ood_checked"):
        if key in stats[0]:
            out[key] = stats[0][key]
    if all("scale_sums" in s for s in stats):
        out["scale_sums"] = [float(v) for v in np.sum([s["scale_sums"] for s in stats], axis=0)]
    if all("means" in s for s in stats):
        # unmixing's means are over the pixels it unmixed (nn_closed leaves all-zero fits out)
        weights = [max(int(s.get("unmixed_pixels", s.get("valid_pixels", 1))), 0) for s in stats]
        total = sum(weights) or 1
        out["means"] = {k: sum(w * s["means"].get(k, 0.0) for w, s in zip(weights, stats)) / total
                        for k in stats[0]["means"]}
    return out


def part_paths(work, index, suffixes):
    return {s: os.path.join(work, f"part{index:05d}.{s}.tif") for s in suffixes}


def run_part(algorithm, scene, model, options, work, index, rows=None, memory_mb=None, threads=1,
             feedback=None, device=None, model_name=None):
    """Run the core function on a scene, or on rows ``rows = (row0, row1)`` of it, writing part files
    into ``work``. Returns a small dict (pixels, seconds, the core function's counts, and under
    ``compute`` what the models ran on, :func:`core.engine.compute.note`).

    The core function runs in a compute session of ``device`` (``"cpu"`` or ``"cuda"``; None: the
    current session's, else the environment's) and ``threads``; what it notes there is also noted in
    the caller's session.

    A row range without any valid (or scorable) pixel writes nothing and says ``empty``: the
    assembly fills its rows with each output's nodata, as the whole-scene run does. ``model_name``: the
    user's path of ``model`` when ``model`` is a worker's copy (:func:`_settings`).
    """
    from ..engine import compute

    feedback = ensure(feedback)
    spec = check_algorithm(algorithm)
    start = time.perf_counter()
    if not os.path.isdir(work):
        raise OreMapError("The scene's work folder has gone (the job was cancelled).", "out_dir")
    device = compute.current().requested if device is None else device
    scene = scene_raster(scene, work, memory_mb, feedback)
    with compute.session(device, threads) as run:
        try:
            settings = _settings(algorithm, scene, model, options, threads, feedback, model_name)
            (scale, gain, bias, note), call = settings.scale, settings.call
            paths = part_paths(work, index, spec.outputs)
            raster = scene
            if rows is not None:
                raster = row_vrt(scene, rows[0], rows[1], part_vrt(work, index), gain, bias)
                if scale is not None or gain is not None:
                    swap = getattr(feedback, "swap", None)
                    if swap is not None:
                        swap.update(_part_scale_notes(gain, bias, note))
            try:
                # the whole scene: exactly the single-process call; a row range: the whole scene's scale decision
                scale_arg = (options or {}).get("scale") if rows is None else scale
                counter = _BlockCounter(feedback)
                stats = call(raster, paths, memory_mb, counter, scale_arg)
            except OreMapError as exc:
                if rows is None or exc.parameter != "raster" or not _no_usable_pixels(exc):
                    raise
                return {"index": index, "rows": list(rows), "empty": True, "seconds": time.perf_counter() - start,
                        "pixels": 0, "message": str(exc), "compute": dict(run.used),
                        "fill_pixels": int(getattr(exc, "fill_pixels", 0))}
            finally:
                if rows is not None:
                    try:
                        os.remove(raster)
                    except OSError:
                        pass
        finally:
            used = dict(run.used)
    for library, what in used.items():   # the caller's session, if any, learns what ran
        compute.note(library, what)
    result = {"index": index, "rows": list(rows if rows is not None else (0, None)), "empty": False,
              "seconds": time.perf_counter() - start, "stats": _summary(stats), "blocks": counter.blocks,
              "compute": used}
    if rows is not None:
        import rasterio

        with rasterio.open(scene) as ds:
            width = ds.width
        result["blocks_planned"] = len(settings.sizing.windows(width, rows[1] - rows[0], memory_mb))
    return result


def is_spectrometer_product(scene):
    """True for an EMIT, EnMAP or PRISMA product (core/hyperspectral/sensor_products.py)."""
    from ..hyperspectral import sensor_products

    return os.path.exists(scene) and sensor_products.detect(scene) is not None


def scene_raster(scene, work, memory_mb=None, feedback=None):
    """The raster a scene is read from: the scene itself, or for an imaging-spectrometer product the GeoTIFF the
    single algorithms read it through (:func:`core.hyperspectral.sensor_products.prepare_input`), written into
    the scene's work folder, and so removed with it. Such a scene runs as one task (never split into rows)."""
    if not is_spectrometer_product(scene):
        return scene
    from ..hyperspectral import sensor_products

    from ..engine.raster import memory_budget_mb

    return sensor_products.prepare_input(scene, os.path.join(work, "product"), memory_mb=memory_budget_mb(memory_mb),
                                         feedback=feedback)


def part_vrt(work, index):
    """The VRT through which part ``index`` reads its rows of the scene."""
    return os.path.join(work, f"part{index:05d}.vrt")


class _Messages(Feedback):
    """Core feedback of a task on a worker: keeps the messages, ``[kind, text]`` (``"warning"`` or
    ``"info"``), for the task's result, where the driver logs them under the scene's name. ``replace``:
    ``(old, new)`` texts replaced in them (a part's VRT by the scene); ``swap``: whole messages said otherwise
    for the whole scene (``""``: dropped)."""

    def __init__(self, replace=()):
        self.messages, self.replace, self.swap = [], list(replace), {}

    def _keep(self, kind, message):
        text = str(message)
        for old, new in self.replace:
            text = text.replace(old, new)
        swapped = self.swap.get(text, text)   # a whole message the scene says otherwise ("": not at all)
        if swapped != text:
            from ..engine.raster import scale_note_kind

            kind = scale_note_kind(swapped)   # the scene's own note on its scale may be a warning
        if swapped:
            self.messages.append([kind, swapped])

    def info(self, message):
        self._keep("info", message)

    def warning(self, message):
        self._keep("warning", message)


class _BlockCounter:
    """Passes feedback on and counts the block engine's blocks (one progress call each)."""

    def __init__(self, inner):
        self.inner, self.blocks = inner, 0

    def progress(self, percent):
        self.blocks += 1
        self.inner.progress(percent)

    def is_canceled(self):
        return self.inner.is_canceled()

    def check(self):
        self.inner.check()

    def info(self, message):
        self.inner.info(message)

    def warning(self, message):
        self.inner.warning(message)

    def scaled(self, start, end):
        return self.inner.scaled(start, end)


def _no_usable_pixels(exc):
    """Whether a core error says a raster (here: a row range) had no pixel to compute."""
    text = exc.message.lower()
    return "every pixel" in text or "no pixel could be scored" in text


def assemble(algorithm, scene, work, outputs, parts, memory_mb=None, sizing=None):
    """Stitch the part files of a scene into its outputs (temporary name in ``work``, then moved), or
    move the single whole-scene part. Removes the work folder. Returns the output paths.

    With ``sizing`` (the engine's, see :func:`row_ranges`) the output is written in the very
    windows, in the same order, as the single-process run writes it, so even the file's bytes agree."""
    import rasterio

    from ..engine.raster import OutputSpec, write_blocks

    spec = check_algorithm(algorithm)
    if not os.path.isdir(work):
        raise OreMapError("The scene's work folder has gone (the job was cancelled).", "out_dir")
    parts = sorted(parts, key=lambda p: p["index"])
    filled = [p for p in parts if not p["empty"]]
    if not filled:
        raise OreMapError(parts[0].get("message") or "No pixel of the scene could be computed.", "raster",
                          "Check the scene and the nodata value.")
    finals = {}
    for suffix in spec.outputs:
        target = outputs[suffix]
        if len(parts) == 1 and parts[0]["rows"][1] is None:
            finals[suffix] = part_paths(work, parts[0]["index"], [suffix])[suffix]
            continue
        first = part_paths(work, filled[0]["index"], [suffix])[suffix]
        with rasterio.open(first) as ds:
            tags = {k: v for k, v in ds.tags().items() if k != "AREA_OR_POINT"}
            band_tags = [ds.tags(b) for b in range(1, ds.count + 1)]
            colormap = None
            if ds.count == 1:
                try:
                    colormap = ds.colormap(1)
                except ValueError:
                    colormap = None
            out_spec = OutputSpec(assembled_path(work, suffix),
                                  list(ds.descriptions), ds.dtypes[0], ds.nodata, colormap=colormap,
                                  band_tags=band_tags if any(band_tags) else None, tags=tags)
            count, itemsize = ds.count, np.dtype(ds.dtypes[0]).itemsize
        with rasterio.open(scene) as src:
            width, height, transform, crs = src.width, src.height, src.transform, src.crs
        windows = (sizing or Sizing.flat(count * itemsize * 2 + 1)).windows(width, height, memory_mb)
        write_blocks(out_spec, width, height, transform, crs,
                     _stitched(windows, parts, work, suffix, out_spec, count))
        finals[suffix] = out_spec.path
    moved, kept = [], {}
    try:
        for suffix, path in finals.items():
            target = outputs[suffix]
            if os.path.lexists(target):  # kept beside it until every output is in place (a cancel removes the
                kept[target] = kept_name(target)  # work folder, maybe while this runs)
                replace(target, kept[target])
            replace(path, target)
            moved.append(target)
    except OSError as exc:
        # a scene keeps all its new outputs or its old ones: a cancelled job removes the work folder, maybe between
        # two moves, and on Windows a file open in QGIS or another program cannot be replaced
        for target in moved:
            _remove_quietly(target)
        for target, previous in kept.items():
            try:
                replace(previous, target)
            except OSError:
                pass
        if not os.path.isdir(work):
            raise
        raise OreMapError(f"{exc.filename2 or exc.filename or 'An output'} could not be replaced "
                          f"({exc.strerror or exc}); the scene's earlier outputs are as they were.", "out_dir",
                          "Close the file where it is open (remove the layer from the QGIS project), then run again "
                          "with resume.") from None
    for previous in kept.values():
        _remove_quietly(previous)
    for target in moved:
        # the old file's side files describe the old pixels: GDAL's statistics, and the style of an earlier run
        # (its class legend, its stretch); the Toolbox writes a new style after the run
        _remove_quietly(target + ".aux.xml")
        _remove_quietly(os.path.splitext(target)[0] + ".qml")
    shutil.rmtree(work, ignore_errors=True)
    return dict(outputs)


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _stitched(windows, parts, work, suffix, spec, count):
    """Blocks of the whole output, read from the part files that cover each window's rows."""
    import rasterio
    from rasterio.windows import Window

    handles = {}
    try:
        for window in windows:
            r0, r1 = int(window.row_off), int(window.row_off + window.height)
            c0, c1 = int(window.col_off), int(window.col_off + window.width)
            block = np.full((count, r1 - r0, c1 - c0), spec.nodata, dtype=spec.dtype)
            for part in parts:
                p0, p1 = part["rows"]
                lo, hi = max(p0, r0), min(p1, r1)
                if lo >= hi or part["empty"]:
                    continue
                path = part_paths(work, part["index"], [suffix])[suffix]
                if path not in handles:
                    handles[path] = rasterio.open(path)
                block[:, lo - r0:hi - r0] = handles[path].read(window=Window(c0, lo - p0, c1 - c0, hi - lo))
            yield window, block
    finally:
        for handle in handles.values():
            handle.close()


def run_scene(algorithm, scene, model, outputs, options=None, memory_mb=None, threads=1, feedback=None):
    """The single-process path of one scene (no Dask): the core function on the whole scene, written
    through the same work folder and moves as on the cluster."""
    work = work_folder(algorithm, scene, os.path.dirname(next(iter(outputs.values()))))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        result = run_part(algorithm, scene, model, options, work, 0, None, memory_mb, threads, feedback)
        assemble(algorithm, scene, work, outputs, [result], memory_mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------
def require_dask():
    from ..engine.dependencies import install_hint, missing

    if missing(["dask", "distributed"]):
        raise OreMapError("Running on a cluster needs Dask's 'distributed' package.", "scheduler",
                          install_hint(["distributed"]))


_BOOTSTRAP = """
import importlib.util, os, sys
root = {root!r}
for folder in {paths!r}:   # OreMap's optional-package folder of the QGIS profile, when the driver has one
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.insert(0, folder)
if 'oremap' not in sys.modules:
    root = os.environ.get('OREMAP_PLUGIN_DIR') or root
    spec = importlib.util.spec_from_file_location('oremap', os.path.join(root, '__init__.py'),
                                                  submodule_search_locations=[root])
    module = importlib.util.module_from_spec(spec)
    sys.modules['oremap'] = module
    spec.loader.exec_module(module)
"""


def plugin_root():
    """The folder imported as the package ``oremap`` (this checkout, or the installed plugin)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def prepare_client(client):
    """Make every worker, present and future (a restarted one too), import this OreMap as ``oremap``:
    from the same path (a shared file system), or ``$OREMAP_PLUGIN_DIR`` on the worker."""
    import functools

    code = _BOOTSTRAP.format(root=plugin_root(), paths=package_folders())
    client.register_worker_callbacks(setup=functools.partial(exec, code, {}))


def package_folders():
    """The folders of OreMap's optional packages on this Python's path (Plugins > OreMap > Install optional
    packages puts them into the QGIS profile and on QGIS's ``sys.path``): worker processes need them too."""
    import sys

    from ..engine.package_installer import FOLDER_NAME

    return [p for p in sys.path if p and os.path.basename(os.path.normpath(p)) == FOLDER_NAME]


#: what every worker process imports (OreMap's core and Dask's worker), besides the algorithm's own packages
WORKER_PACKAGES = ("numpy", "scipy", "rasterio", "distributed")

_PROBE = """
import importlib, sys
sys.path[:0] = {paths!r}
missing = []
for name in {packages!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(name)
print('%d.%d' % sys.version_info[:2])
print(' '.join(missing))
"""


def _python_problem(python, packages, timeout=120):
    """Why ``python`` cannot run OreMap's worker processes ("" when it can): it does not start, is another
    Python version than this one (tasks travel pickled), or lacks one of ``packages``."""
    import subprocess
    import sys

    want = "%d.%d" % sys.version_info[:2]
    code = _PROBE.format(paths=package_folders(), packages=list(packages))
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout, **no_console())
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{python} does not run ({exc})"
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines:
        return f"{python} does not run (exit status {proc.returncode})"
    if lines[0].strip() != want:
        return f"{python} is Python {lines[0].strip()}, this is Python {want}"
    missing = lines[1].split() if len(lines) > 1 else []
    if missing:
        return f"{python} lacks {', '.join(missing)}"
    return ""


def worker_python(packages=(), timeout=120):
    """The Python executable that a local cluster's worker processes run.

    The interpreter given by ``$OREMAP_WORKER_PYTHON`` when set; else this Python itself when it is a Python
    executable (``qgis_process``, scripts); else (inside QGIS, whose ``sys.executable`` is QGIS) the first of
    the interpreters that may be QGIS's own (:func:`core.engine.package_installer.python_candidates`) that is
    this Python's version and imports :data:`WORKER_PACKAGES` and ``packages``, as its windowless twin on Windows
    (:func:`windowless_python`). Without that check a wrong ``python3`` first on the PATH (another venv, another
    version) makes Dask restart the workers forever.
    Raises :class:`OreMapError` naming every interpreter tried and why it does not do.
    """
    import sys

    chosen = os.environ.get("OREMAP_WORKER_PYTHON", "").strip()
    if not chosen and os.path.basename(sys.executable or "").lower().startswith("python"):
        return sys.executable
    from ..engine.package_installer import python_candidates

    needed = list(dict.fromkeys(WORKER_PACKAGES + tuple(packages)))
    reasons = []
    for python in ([chosen] if chosen else python_candidates()):
        why = _python_problem(python, needed, timeout)
        if not why:
            return python if chosen else windowless_python(python)
        reasons.append(why)
    version = "%d.%d" % sys.version_info[:2]
    raise OreMapError(
        ("The Python of OREMAP_WORKER_PYTHON cannot" if chosen else "No Python was found to")
        + " run the local cluster's worker processes" + (f" ({'; '.join(reasons)})" if reasons else "") + ".",
        "scheduler", f"Set {'' if chosen else 'the environment variable '}OREMAP_WORKER_PYTHON to a Python "
        f"{version} that imports {', '.join(needed)} (the Python that QGIS runs){', or unset it' if chosen else ''}, "
        "or give the address of a running Dask scheduler.")


def windowless_python(python, windows=os.name == "nt"):
    """On Windows, the ``pythonw.exe`` beside a console ``python.exe`` (same installation, no console): QGIS is no
    console program, so each worker process of a console Python opened a console window over QGIS, and closing
    one killed that worker. ``python`` itself elsewhere, when it is already windowless, or when no ``pythonw.exe``
    lies beside it (it was checked, :func:`worker_python`; the windowless twin runs the same files)."""
    folder, name = os.path.split(python)
    name = name.lower()
    if not windows or not name.startswith("python") or name.startswith("pythonw"):
        return python
    twin = os.path.join(folder, "pythonw.exe")
    return twin if os.path.isfile(twin) else python


def local_workers():
    """Workers of a local cluster: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def start_cluster(scheduler=None, n_workers=None, threads_per_worker=1, packages=()):
    """A client of the cluster at ``scheduler`` (address), or of a new ``LocalCluster`` of worker
    processes (one per core, one thread each, by default) running :func:`worker_python`, which must import
    ``packages`` too (the algorithm's, e.g. onnxruntime). Returns ``(client, cluster or None)``."""
    require_dask()
    if n_workers is not None and int(n_workers) < 1:
        raise OreMapError(f"A local cluster needs at least one worker, not {n_workers}.", "workers",
                          "Give 1 or more, or leave it out for one per core.")
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:   # ValueError: an address distributed cannot parse
            reason = str(exc).rstrip(".")
            raise OreMapError(f"Cannot reach the Dask scheduler at '{scheduler}': {reason}.", "scheduler",
                              "Check the address (tcp://host:8786) and that the scheduler runs.") from exc
        prepare_client(client)
        return client, None
    python = worker_python(packages)
    import multiprocessing
    import sys

    if python != sys.executable:   # inside QGIS sys.executable is QGIS itself: worker processes must start a Python
        multiprocessing.set_executable(python)
    cluster = LocalCluster(n_workers=int(n_workers or local_workers()), threads_per_worker=int(threads_per_worker),
                           processes=True, dashboard_address="127.0.0.1:0")  # this machine only: no firewall prompt
    client = Client(cluster)
    prepare_client(client)
    return client, cluster


@dataclass
class BatchReport:
    done: list = field(default_factory=list)       # scenes written
    skipped: list = field(default_factory=list)    # finished before (resume)
    failed: dict = field(default_factory=dict)     # scene -> message, in the order of the inputs
    failed_parameters: dict = field(default_factory=dict)   # scene -> core key of the input at fault
    outputs: dict = field(default_factory=dict)    # scene written -> {output suffix: path}
    summaries: dict = field(default_factory=dict)  # scene written -> its numbers (scene_summary)
    warnings: dict = field(default_factory=dict)   # scene -> the warnings its tasks gave
    compute: dict = field(default_factory=dict)    # library -> what the workers' models ran on
    parts: int = 0
    pixels: int = 0
    seconds: float = 0.0
    task_seconds: float = 0.0
    workers: int = 0
    block_mismatches: int = 0   # row ranges the engine cut otherwise than planned (then not bit-identical)

    def to_json(self):
        return json.dumps(asdict(self), indent=1)


#: core keys of failures that concern the whole job (the model and the settings), not a scene
JOB_PARAMETERS = {"model": "model", "library": "model", "scheduler": "scheduler", **{key: key for key in OPTIONS}}


def check_outcome(report):
    """Raise an :class:`OreMapError` when scenes failed and none was written: how many failed and the first
    one's message (in the order of the inputs), naming the model or setting at fault when the failure does,
    else the scenes. A run in which some scenes were written passes (the failed ones are in the report)."""
    if not report.failed or report.done:
        return
    scene, message = next(iter(report.failed.items()))
    n = len(report.failed)
    what = "The only scene failed" if n == 1 else f"All {n} scenes failed"
    skipped = f"; {len(report.skipped)} skipped, finished before" if report.skipped else ""
    parameter = JOB_PARAMETERS.get(report.failed_parameters.get(scene), "raster")
    raise OreMapError(f"{what} (none written{skipped}). The first, {os.path.basename(os.path.normpath(scene))}: "
                      f"{message}", parameter, "The log names every failed scene and why.")


def _rows_text(rows):
    return f"row {rows[0] + 1}" if rows[1] - rows[0] == 1 else f"rows {rows[0] + 1}-{rows[1]}"


def _scene_totals(parts):
    """The warnings a split scene's parts gave on their own pixels that the scene's totals replace, as a single
    run words them: ``(per-part lines to drop, scene lines)``: the fill count, the pixels unmixing found no fit
    for, and strict unmixing's brightness-scale hint (its sums added, the scene's mean abundances)."""
    from ..engine.raster import fill_warning
    from ..engine.unmixing import scale_mismatch_hint
    from ..hyperspectral.mapping import no_fit_note

    stats = [r.get("stats") or {} for r in parts if not r.get("empty")]
    scene = scene_summary(parts)   # the scene's totals (the fill of empty parts included)
    drop, lines = set(), []
    if "fill_pixels" in scene:
        fills = [s["fill_pixels"] for s in stats] + [r.get("fill_pixels", 0) for r in parts if r.get("empty")]
        drop |= {("warning", fill_warning(n)) for n in fills}
        if scene["fill_pixels"]:
            lines.append(("warning", fill_warning(scene["fill_pixels"])))
    if "unmixed_pixels" in scene and "valid_pixels" in scene:
        drop |= {("info", no_fit_note(s["valid_pixels"] - s["unmixed_pixels"])) for s in stats}
        if scene["valid_pixels"] > scene["unmixed_pixels"]:
            lines.append(("info", no_fit_note(scene["valid_pixels"] - scene["unmixed_pixels"])))
    if "scale_sums" in scene:
        drop |= {("warning", scale_mismatch_hint(s["scale_sums"], s.get("means"))) for s in stats}
        hint = scale_mismatch_hint(scene["scale_sums"], scene.get("means"))
        if hint:
            lines.append(("warning", hint))
    return drop, lines


def scene_messages(scene, results):
    """``[(kind, text)]`` to log for a scene from its tasks' results: each message once, prefixed by the
    scene's name. A message that not every part of a split scene gave also names the part's rows; one that
    several parts gave with their own numbers (pixels left unclassified, ...) is logged once, the first
    part's, saying how many more parts gave it with their own (a scene of ten parts would repeat it ten
    times); the numbers are that part's, not the scene's. The fill count and the brightness-scale hint of
    unmixing are the scene's, as a single run gives them (:func:`_scene_totals`)."""
    import re

    name = os.path.basename(os.path.normpath(scene))
    parts = sorted(results, key=lambda r: r["index"])
    lists = [[(kind, text) for kind, text in r.get("messages") or ()] for r in parts]
    totals = []
    if len(parts) > 1:
        drop, totals = _scene_totals(parts)
        lists = [[m for m in messages if m not in drop] for messages in lists]
    common = set.intersection(*(set(m) for m in lists)) if len(lists) > 1 else set(lists[0] if lists else ())

    def shape(kind, text):
        return kind, re.sub(r"\d+(?:\.\d+)?", "#", text)

    alike = {}   # message shape -> the parts that gave it (with other numbers)
    for index, messages in enumerate(lists):
        for kind, text in messages:
            if (kind, text) not in common:
                alike.setdefault(shape(kind, text), set()).add(index)
    out, seen = [], set()
    for result, messages in zip(parts, lists):
        for kind, text in messages:
            rows = result.get("rows") or [0, None]
            if (kind, text) in common or rows[1] is None:
                line = (kind, f"{name}: {text}")
            else:
                key = shape(kind, text)
                if key in seen:
                    continue
                seen.add(key)
                more = len(alike[key]) - 1
                where = _rows_text(rows) + (f"; {more} more part{'s' if more > 1 else ''} of the scene said this too, "
                                            f"with {'their' if more > 1 else 'its'} own numbers" if more else "")
                line = (kind, f"{name} ({where}): {text}")
            if line not in out:
                out.append(line)
    return out + [(kind, f"{name}: {text}") for kind, text in totals]


def run_batch(job, client, feedback=None, progress=None, device=None):
    """Run ``job`` on the Dask cluster of ``client``.

    Every scene is planned on this machine from its header, then its row ranges run on the workers
    and one more task per scene stitches and moves its outputs. A scene that fails is reported and
    leaves no output; the others go on. ``progress(done_tasks, total_tasks)`` is called as tasks
    finish; ``feedback`` is told per scene and can cancel (cancelled scenes leave no output).
    The warnings and notes of a scene's tasks are logged under its name when it ends. The tasks run
    in ``device`` (``"cpu"``, ``"cuda"``; None: the current compute session's, :mod:`core.engine.compute`), and
    what their models ran on is noted in that session. Returns a :class:`BatchReport`.
    """
    require_dask()
    feedback = ensure(feedback)
    start = time.perf_counter()
    # the budget of this machine (OREMAP_MEMORY_MB or the default), sent to the workers as a number: left None, each
    # worker read its own environment, cut other blocks than the plan's (the files were no longer those of a single
    # run) and ignored the user's budget
    from ..engine.raster import memory_budget_mb

    if job.memory_mb is None or float(job.memory_mb) > 0:
        job = dataclasses.replace(job, memory_mb=memory_budget_mb(job.memory_mb))
    plans = plan(job)
    mark = claim_folder(job.out_dir)   # a second job on this folder now stops here, before touching a work folder
    try:
        return _run_planned(job, plans, client, feedback, progress, device, start, mark)
    finally:
        release(mark)


def claim_folder(out_dir):
    """:func:`core.engine.files.claim` of a batch's output folder: one job at a time writes in it (their scenes'
    work folders and outputs would collide)."""
    return claim(os.path.join(out_dir, "oremap-batch"), "out_dir",
                 f"The output folder '{out_dir}'")


def _run_planned(job, plans, client, feedback, progress, device, start, mark):
    from distributed import as_completed

    from ..engine import compute

    spec = check_algorithm(job.algorithm)
    report = BatchReport(workers=len(client.scheduler_info().get("workers", {})))
    report.skipped = [p.scene for p in plans if p.skip]
    todo = [p for p in plans if not p.skip]
    for p in report.skipped:
        feedback.info(f"Skipped (finished before): {p}")
    ref = model_ref(job.model) if spec.model is not None else None
    shipped = None
    if job.ship_model and ref is not None:
        shipped = client.scatter(model_files(job.model), broadcast=True, hash=False)
    device = compute.current().requested if device is None else device

    futures, owner, total = [], {}, 0
    assemblies = {}
    for n, p in enumerate(todo):
        shutil.rmtree(p.work, ignore_errors=True)
        os.makedirs(p.work)
        ranges = p.parts or [None]
        token = hashlib.sha1(f"{p.scene}{time.time()}".encode()).hexdigest()[:8]
        part_futures = [client.submit(_part_task, job.algorithm, p.scene, ref, shipped, job.options, p.work, i, rows,
                                      job.memory_mb, job.threads, device, key=f"oremap-part-{n}-{i}-{token}",
                                      pure=False)
                        for i, rows in enumerate(ranges)]
        final = client.submit(_assemble_task, job.algorithm, p.scene, p.work, p.outputs, part_futures,
                              job.memory_mb, p.sizing, key=f"oremap-assemble-{n}-{token}", pure=False)
        assemblies[final.key] = p
        for f in part_futures + [final]:
            owner[f.key] = p
        futures += part_futures + [final]
        total += len(part_futures) + 1
    report.parts = total - len(todo)
    results = {p.scene: [] for p in todo}   # the finished part tasks' results of each scene
    used = {}                               # library -> what the workers' models ran on

    def log_messages(p):
        for kind, line in scene_messages(p.scene, results[p.scene]):
            if kind == "warning":
                report.warnings.setdefault(p.scene, []).append(line)
                feedback.warning(line)
            else:
                feedback.info(line)

    def fail(p, message, parameter):
        if p.scene in report.failed:
            return
        report.failed[p.scene] = message
        report.failed_parameters[p.scene] = parameter or "raster"
        log_messages(p)
        feedback.warning(f"Failed: {p.scene}: {message}")
        client.cancel([f for f in futures if owner[f.key] is p and f.status == "pending"])
        shutil.rmtree(p.work, ignore_errors=True)

    finished = 0
    try:
        for future in _as_finished(as_completed(futures), feedback):
            if future is None:   # cancelled while tasks run
                raise_cancel = True
                break
            p = owner[future.key]
            finished += 1
            if future.status == "error":
                exc = future.exception()
                fail(p, str(exc) or type(exc).__name__, getattr(exc, "parameter", None))
            elif future.status == "finished":
                result = future.result()
                if future.key not in assemblies:
                    results[p.scene].append(result)
                    for library, what in (result.get("compute") or {}).items():
                        used.setdefault(library, set()).add(what)
                if result.get("failed"):          # a failure the task returned (see _part_task)
                    fail(p, result["failed"], result.get("parameter"))
                elif future.key in assemblies:
                    if p.scene not in report.failed:
                        report.done.append(p.scene)
                        report.outputs[p.scene] = dict(p.outputs)
                        report.summaries[p.scene] = scene_summary(results[p.scene])
                        log_messages(p)
                        if job.algorithm == "classify_cnn":   # the counts of the whole scene, not of each part
                            from ..hyperspectral.mapping import classification_notes

                            name = os.path.basename(os.path.normpath(p.scene))
                            for note in classification_notes(report.summaries[p.scene]):
                                feedback.info(f"{name}: {note}")
                        feedback.info(f"Done: {p.scene}")
                else:
                    report.pixels += int(result.get("stats", {}).get("valid_pixels", 0))
                    report.task_seconds += float(result.get("seconds", 0.0))
                    planned = result.get("blocks_planned")
                    if planned is not None and not result["empty"] and planned != result["blocks"]:
                        report.block_mismatches += 1
                        feedback.warning(f"{p.scene}: rows {result['rows']} ran in {result['blocks']} blocks, "
                                         f"{planned} planned: the output may differ from a single-process run "
                                         "in the last bit.")
            if progress is not None:
                progress(finished, total)
            feedback.progress(100.0 * finished / max(total, 1))
            touch(mark)   # a job of hours keeps its folder from machines that take marks untouched for a day as stale
            if feedback.is_canceled():
                raise_cancel = True
                break
        else:
            raise_cancel = False
    except BaseException:
        _abandon(client, futures, todo, report)
        raise
    finally:
        report.compute = {library: sorted(whats) for library, whats in sorted(used.items())}
        for library, whats in report.compute.items():
            compute.note(library, f"{', '.join(whats)} (on the Dask workers)")
    if raise_cancel:
        _abandon(client, futures, todo, report)
        from ..engine.errors import Cancelled

        raise Cancelled()
    report.failed = {p.scene: report.failed[p.scene] for p in todo if p.scene in report.failed}
    report.seconds = time.perf_counter() - start
    return report


CANCEL_POLL_S = 0.25
"""How often (seconds) a batch waiting on its tasks asks whether it was cancelled."""


def _as_finished(pending, feedback):
    """The futures of ``pending`` (a distributed ``as_completed``) as they finish; None, and no more, as soon as
    ``feedback`` is cancelled while none finishes (a task of a whole Sentinel-2 tile can run for minutes)."""
    while not pending.is_empty():
        batch = pending.next_batch(block=False)
        if not batch:
            if feedback.is_canceled():
                yield None
                return
            time.sleep(CANCEL_POLL_S)
            continue
        yield from batch


def _abandon(client, futures, plans, report):
    """Cancel what is left and remove the work folders of the scenes not finished."""
    client.cancel([f for f in futures if f.status == "pending"])
    for p in plans:
        if p.scene not in report.done:
            shutil.rmtree(p.work, ignore_errors=True)


def _failure(exc, replace=(), rows=None):
    """A task's failure as its result: the message and the core key of the input at fault. A part's message names
    the scene, not the part's VRT (``replace``, as its log lines), and the scene's row (``rows``: the part's range),
    not the part's: 'The raster .../part00002.vrt cannot be read near row 0' named a deleted file."""
    import re

    text = str(exc).strip() or type(exc).__name__
    for old, new in replace:
        text = text.replace(old, new)
    if rows is not None and rows[0]:
        text = re.sub(r"near row (\d+)", lambda m: f"near row {int(m.group(1)) + int(rows[0])}", text)
    return {"failed": text, "parameter": getattr(exc, "parameter", None) or "raster"}


def check_worker(algorithm):
    """Raise :class:`OreMapError` when this worker's Python lacks a package ``algorithm`` needs, naming the
    worker's host and Python and the pip command (the QGIS installer's hint means nothing on a cluster node)."""
    import socket
    import sys

    from ..engine.dependencies import install_command, missing

    lacking = missing(list(dict.fromkeys(WORKER_PACKAGES + check_algorithm(algorithm).requires)))
    if lacking:
        raise OreMapError(f"The worker on {socket.gethostname()} ({sys.executable}) lacks the Python package"
                          f"{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}.", "scheduler",
                          "Install into the workers' Python (or their container image): "
                          + " ; ".join(install_command(lacking)) + ".")


def _part_task(algorithm, scene, ref, shipped, options, work, index, rows, memory_mb, threads, device=None):
    """A row range (or the whole scene) on a worker: :func:`run_part`, its messages kept in the result.

    A failure the core names (:class:`OreMapError`) or a file that cannot be read is returned as
    ``failed`` (with ``parameter``), not raised: the driver reports it with the scene, and no worker logs
    a traceback for it. Anything else is raised (a bug shows its traceback)."""
    feedback = _Messages([(part_vrt(work, index), scene)])
    try:
        check_worker(algorithm)
        model = materialise(ref, shipped) if ref is not None else None
        result = run_part(algorithm, scene, model, options, work, index, rows, memory_mb, threads, feedback, device,
                          model_name=ref.path if ref is not None else None)
    except (OreMapError, OSError) as exc:
        result = dict(_failure(exc, feedback.replace, rows), index=index,
                      rows=list(rows) if rows is not None else [0, None], empty=True)
    result["messages"] = feedback.messages
    return result


def _assemble_task(algorithm, scene, work, outputs, parts, memory_mb, sizing):
    """Stitch a scene's parts (:func:`assemble`), or pass on the failure of one of them."""
    failed = next((p for p in parts if p.get("failed")), None)
    if failed is None:
        try:
            return {"outputs": assemble(algorithm, scene, work, outputs, parts, memory_mb, sizing)}
        except (OreMapError, OSError) as exc:
            failed = _failure(exc)
    shutil.rmtree(work, ignore_errors=True)
    return {"failed": failed["failed"], "parameter": failed.get("parameter")}
