"""The order of class names in legends.

Classes trained from labels get their codes (1, 2, ...) in the order of their names. Names that read
as numbers (a ``label_id`` field holding 0-11) are ordered by value, so that "2" comes before "10" and
the legend does not read "0", "1", "10", "11", "2", ...; other names follow, case-insensitively.
"""

import math
import re

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def numeric_value(name):
    """The value of a name that reads as a finite number ("3", " 3.0 ", "-2", "1e3"); else None."""
    if isinstance(name, bool):
        return None
    if isinstance(name, (int, float)) or type(name).__module__ == "numpy":
        try:
            value = float(name)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None
    if isinstance(name, str) and _NUMBER.fullmatch(name):
        return float(name)
    return None


def class_sort_key(name):
    """Sort key: names that read as numbers first, by value; then the others by case-folded text."""
    value = numeric_value(name)
    text = str(name)
    if value is not None:
        return (0, value, "", text)
    return (1, 0.0, text.casefold(), text)


def sorted_class_names(names):
    """The distinct ``names`` in legend order (:func:`class_sort_key`)."""
    return sorted(set(names), key=class_sort_key)
