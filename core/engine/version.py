"""OreMap's version: one place, the ``version=`` line of the plugin's ``metadata.txt``.

Everything that names the version reads it from here (the Processing provider, the
``oremap_version`` recorded in every model OreMap writes, the model cards) or, outside
Python, from ``metadata.txt`` itself (``make package``). A release changes that one line
and ``CHANGELOG.md`` (``test/test_release.py`` checks that they agree).
"""

import os

#: Returned when no ``metadata.txt`` can be read (e.g. ``core`` copied out of the plugin).
UNKNOWN = "0.0.0"


def metadata_path():
    """Path of the plugin's ``metadata.txt``: the nearest one above this module (``None`` if none)."""
    folder = os.path.dirname(os.path.abspath(__file__))
    for _ in range(3):  # the plugin folder is the parent of core/ (or of a subpackage of it)
        folder = os.path.dirname(folder)
        path = os.path.join(folder, "metadata.txt")
        if os.path.isfile(path):
            return path
    return None


def plugin_version():
    """OreMap version from the plugin's ``metadata.txt``; :data:`UNKNOWN` when unreadable."""
    path = metadata_path()
    if path is None:
        return UNKNOWN
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition("=")
                if key.strip() == "version" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return UNKNOWN
