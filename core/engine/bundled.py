"""Models shipped with the plugin, in ``models/`` (one ``.onnx`` and a model card ``.md`` each)."""

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")

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
    """``[(title, path)]`` of the bundled models, sorted by file name; ``task`` filters by metadata task."""
    found = []
    if os.path.isdir(MODELS_DIR):
        for name in sorted(os.listdir(MODELS_DIR)):
            if not name.endswith(".onnx"):
                continue
            path = os.path.join(MODELS_DIR, name)
            info = model_info(path)[0]
            if info is None:
                continue
            if task is None or info.task == task:
                found.append((info.description or os.path.splitext(name)[0], path))
    return found
