"""Optional Python packages: which are missing, and how to install them.

OreMap's core needs numpy, scipy and rasterio. The neural networks need more:
``torch`` to train, ``onnx`` to write and read models, ``onnxruntime`` to run them.
These are optional: the plugin loads without them, and the algorithms that need one
say what to install (see ``algorithms/base.py``, ``REQUIRES``).
"""

import importlib.util

#: package -> (what OreMap uses it for, pip requirement and extra pip arguments)
OPTIONAL_PACKAGES = {
    "torch": ("trains the neural networks (CNN, ResNet)",
              "torch --index-url https://download.pytorch.org/whl/cpu"),
    "onnx": ("writes and reads OreMap model files (.onnx)", "onnx"),
    "onnxruntime": ("runs OreMap models (inference)", "onnxruntime"),
    "distributed": ("runs batch jobs on a Dask cluster (oremap:batch_on_cluster)", "dask distributed"),
    "skl2onnx": ("saves scikit-learn models (abundance ensembles, prospectivity model comparison) as ONNX", "skl2onnx"),
}


def is_installed(package):
    """True when ``package`` can be imported (found on the path, not only already imported)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or half-imported module
        return False


def missing(packages):
    """The packages of ``packages`` that cannot be imported, in order."""
    return [p for p in packages if not is_installed(p)]


def install_command(packages):
    """One pip command line installing ``packages`` (torch's CPU index kept for torch alone)."""
    plain = [OPTIONAL_PACKAGES.get(p, ("", p))[1] for p in packages if p != "torch"]
    lines = []
    if plain:
        lines.append("python -m pip install " + " ".join(plain))
    if "torch" in packages:
        lines.append("python -m pip install " + OPTIONAL_PACKAGES["torch"][1])
    return lines


def install_hint(packages):
    """Plain-text instructions for installing ``packages`` into the Python that QGIS uses."""
    what = "; ".join(f"'{p}' {OPTIONAL_PACKAGES[p][0]}" if p in OPTIONAL_PACKAGES else f"'{p}'" for p in packages)
    commands = install_command(packages)
    return (f"Missing Python package{'s' if len(packages) > 1 else ''}: {what}. In QGIS: Plugins > OreMap > "
            "Install optional packages (no administrator rights needed). Or install into the Python that QGIS "
            "uses, then restart QGIS: " + " ; ".join(commands) + ". Windows: run it in the OSGeo4W Shell. macOS: "
            "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install ... Linux: the python3 that QGIS "
            "runs (pip install --user, or a venv made with --system-site-packages).")
