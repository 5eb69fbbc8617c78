"""Guards against silent wrong answers in evaluations.

An evaluation that matches only a few of its reference features, or that scores far below what the
model reported on its own validation data, is more often wrong in its inputs (a class field read as
codes instead of names, deposits in another CRS, a map of another area) than a true measure of the
model. Every evaluation calls :func:`check_evaluation`, which logs a warning with the likely cause;
the figures themselves are still reported.

Models' validation figures travel with their outputs: an algorithm that writes a map from a model
stamps the raster with :func:`validation_tags` (the ``OREMAP_MODEL_VALIDATION`` tag), and an
evaluation of that raster reads it back with :func:`read_validation`.
"""

import json
import math
import numbers

from .feedback import ensure

VALIDATION_TAG = "OREMAP_MODEL_VALIDATION"
# An evaluation that matches fewer than this share of its reference features is suspect.
MIN_MATCHED_SHARE = 0.5
# A figure (overall accuracy, ROC-AUC; both 0-1) more than this below the model's own validation is suspect.
MAX_DROP = 0.25


def validation_tags(model_name, measure, value):
    """``{tag: json}`` recording a model's own validation ``measure`` (e.g. ``"overall accuracy"``); none when
    ``value`` is not a finite number (absent, or text in a hand-edited model)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        return {}
    return {VALIDATION_TAG: json.dumps({"model": str(model_name), "measure": str(measure), "value": float(value)})}


def read_validation(path, band=None):
    """``{"model", "measure", "value"}`` stamped on raster ``path`` by :func:`validation_tags`, or None."""
    from .raster import open_raster

    try:
        with open_raster(path) as ds:
            text = ds.tags().get(VALIDATION_TAG)
    except Exception:  # noqa: BLE001 - the evaluation reads the raster itself and reports its errors
        return None
    if not text:
        return None
    try:
        found = json.loads(text)
        found["value"] = float(found["value"])
    except (ValueError, TypeError, KeyError):
        return None
    return found if math.isfinite(found["value"]) else None


def check_evaluation(what, n_reference, n_matched, matched_cause, measured=None, measure="", expected=None,
                     drop_cause="", feedback=None):
    """Warn when an evaluation looks wrong in its inputs; returns the warnings (also logged).

    Parameters
    ----------
    what : str
        The reference features, plural (e.g. ``"reference features"``, ``"deposits"``).
    n_reference, n_matched : int
        Reference features given (with a label / a position) and those the evaluation could use.
    matched_cause : str
        The likely cause when fewer than half were used.
    measured, expected : float, optional
        The evaluation's figure and the model's own validation figure (same measure, 0-1).
    measure : str
        The measure's name, e.g. ``"overall accuracy"``.
    drop_cause : str
        The likely cause when ``measured`` is far below ``expected``.
    """
    feedback = ensure(feedback)
    warnings = []
    if n_reference > 0 and n_matched < MIN_MATCHED_SHARE * n_reference:
        warnings.append(f"Only {n_matched} of {n_reference} {what} could be used (fewer than half): the figures "
                        f"may not describe the map. Likely cause: {matched_cause}")
    if measured is not None and expected is not None and math.isfinite(measured) and math.isfinite(expected) \
            and measured < expected - MAX_DROP:
        warnings.append(f"The {measure} here, {measured:.3f}, is far below the {expected:.3f} the model reported on "
                        f"its own validation data. Likely cause: {drop_cause}")
    for text in warnings:
        feedback.warning(text)
    return warnings
