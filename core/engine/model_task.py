"""Which algorithm a model file belongs to: one check of a model's task for every algorithm that takes a model.

A model of another task given to an algorithm is refused with a message that names what the file is and the
algorithm that uses it (e.g. "'x.onnx' is a prospectivity model (task 'prospectivity'), not a mineral
classification model; use it with oremap:prospectivity_map"), instead of a later, misleading mismatch (band
counts, class counts) or, worse, a map computed from the wrong kind of output.
"""

import os

from .errors import OreMapError

#: what a model of each task is called in messages
_NAMES = {
    "spectral_classification": "mineral classification",
    "mineral_abundance": "mineral abundance",
    "prospectivity": "prospectivity",
    "geochemical_anomaly": "geochemical anomaly (VAE)",
    "mine_segmentation": "mine segmentation",
    "mine_patch_classification": "mine patch classification",
}


def task_name(task):
    return _NAMES.get(task, f"'{task}'")


def check_task(info, expected, path, parameter="model", users=None):
    """Raise :class:`OreMapError` unless the model's task (``info.task``) is one of ``expected`` (a task or a list).

    The message says what the file is and, when OreMap knows one, what uses it: ``users`` maps a task to its
    words (the batch names its own algorithms), else the Processing algorithm of the task.
    """
    from .model_library import TASK_ALGORITHMS

    expected = [expected] if isinstance(expected, str) else list(expected)
    task = getattr(info, "task", None)
    if task in expected:
        return
    name = os.path.basename(os.fspath(path)) if path else "The model"
    wanted = " or ".join(task_name(t) for t in expected)
    owner = (users or {}).get(task) or getattr(TASK_ALGORITHMS.get(task), "algorithm", None)
    message = f"'{name}' is a {task_name(task)} model (task '{task}'), not a {wanted} model."
    fix = (f"Use it with {owner}, and choose a {wanted} model here." if owner is not None
           else f"Choose a {wanted} model made by OreMap.")
    raise OreMapError(message, parameter, fix)
