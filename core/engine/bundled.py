"""Models shipped with the plugin, in ``models/`` (one ``.onnx`` and a model card ``.md`` each)."""

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")

#: The bundled models, listed without reading them: file name -> (task, title). A stock QGIS may lack onnx,
#: and reading the files needs it; listing them from here keeps every algorithm's MODEL list the same on
#: every machine, so ``MODEL=0`` in a saved .model3 or script means the same model everywhere. A model that
#: cannot be used here says why when it is chosen (:func:`unusable_reason`). ``test_model_library`` checks
#: this table against the files' own metadata; ``make models`` adding a model must add its line.
BUNDLED = {
    "usgs_minerals_cnn.onnx": ("spectral_classification", "USGS minerals (splib07), 1D CNN, 430-2440 nm"),
}

# path -> ((mtime_ns, size), ModelInfo or None, error text)
_INFO_CACHE = {}


def model_info(path):
    """``(ModelInfo, "")`` of the model at ``path``, or ``(None, why it cannot be read)``.

    The metadata are read once per file version (modification time, size) and cached.
    """
    from .errors import OreMapError
    from .model_format import read_model_info

    path = os.path.abspath(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        return None, f"Cannot read the file: {exc.strerror or exc}."
    from .dependencies import install_hint, missing

    if missing(["onnx"]):
        return None, "Reading a model needs the Python package 'onnx'. " + install_hint(["onnx"])
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _INFO_CACHE.get(path)
    if cached is None or cached[0] != key:
        try:
            cached = (key, read_model_info(path), "")
        except OreMapError as exc:
            cached = (key, None, f"{exc.message} {exc.fix or ''}".strip())
        except Exception as exc:  # noqa: BLE001 - one broken file must not hide the others
            cached = (key, None, f"Cannot read the model: {exc}")
        _INFO_CACHE[path] = cached
    return cached[1], cached[2]


def forget(path):
    """Drop ``path`` from the metadata cache (e.g. after removing the file)."""
    _INFO_CACHE.pop(os.path.abspath(path), None)


def bundled_models(task=None):
    """``[(title, path)]`` of the bundled models (:data:`BUNDLED`), sorted by file name; ``task`` filters.

    The list does not depend on the installed packages nor on the files being readable: a model that
    cannot be used here is still listed, and :func:`unusable_reason` says why.
    """
    return [(title, os.path.join(MODELS_DIR, name)) for name, (kind, title) in sorted(BUNDLED.items())
            if task is None or kind == task]


def unusable_reason(path, runtime=("onnx", "onnxruntime")):
    """Why the model at ``path`` cannot be run on this machine ('' when it can): a missing package, a
    missing or unreadable file."""
    from .dependencies import install_hint, missing

    lacking = missing(list(runtime))
    if lacking:
        return f"Running it needs {' and '.join(lacking)}, not installed here. " + install_hint(lacking)
    if not os.path.isfile(path):
        return f"The file {path} is missing from the plugin; reinstall OreMap."
    return model_info(path)[1]
