"""Models shipped with the plugin, in ``models/`` (one ``.onnx`` and a model card ``.md`` each)."""

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")

# path -> ((mtime_ns, size), ModelInfo or None for an unreadable file)
_INFO_CACHE = {}


def _model_info(path):
    """The model's :class:`ModelInfo`, read once per file version; ``None`` when unreadable."""
    from .model_format import read_model_info

    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _INFO_CACHE.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        info = read_model_info(path)
    except Exception:  # noqa: BLE001 - a broken bundled file must not hide the others
        info = None
    _INFO_CACHE[path] = (key, info)
    return info


def bundled_models(task=None):
    """``[(title, path)]`` of the bundled models, sorted by file name; ``task`` filters by metadata task.

    Each file's metadata are read once and cached until the file changes (modification time, size).
    """
    found = []
    if os.path.isdir(MODELS_DIR):
        for name in sorted(os.listdir(MODELS_DIR)):
            if not name.endswith(".onnx"):
                continue
            path = os.path.join(MODELS_DIR, name)
            info = _model_info(path)
            if info is None:
                continue
            if task is None or info.task == task:
                found.append((info.description or os.path.splitext(name)[0], path))
    return found
