"""Models shipped with the plugin, in ``models/`` (one ``.onnx`` and a model card ``.md`` each)."""

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def bundled_models(task=None):
    """``[(title, path)]`` of the bundled models, sorted by file name; ``task`` filters by metadata task."""
    from .model_format import read_model_info

    found = []
    if os.path.isdir(MODELS_DIR):
        for name in sorted(os.listdir(MODELS_DIR)):
            if not name.endswith(".onnx"):
                continue
            path = os.path.join(MODELS_DIR, name)
            try:
                info = read_model_info(path)
            except Exception:  # noqa: BLE001 - a broken bundled file must not hide the others
                continue
            if task is None or info.task == task:
                found.append((info.description or os.path.splitext(name)[0], path))
    return found
