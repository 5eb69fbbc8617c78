"""Optional Python packages: which are missing, and how to install them.

OreMap's core needs numpy, scipy and rasterio. The neural networks need more:
``torch`` to train, ``onnx`` to write and read models, ``onnxruntime`` to run them.
These are optional: the plugin loads without them, and the algorithms that need one
say what to install (see ``algorithms/base.py``, ``REQUIRES``).
"""

import functools
import importlib.util
import sys


def dask_version(python=None):
    """The Dask (and distributed) release OreMap's batch runs are tested with for Python ``python`` (default: this
    one): Debian 12's 2022.12.1 on Python 3.11 and before, Debian 13's 2024.12.1 on 3.12 and later, where the older
    release is not made for the Python."""
    return "2022.12.1" if tuple(python or sys.version_info)[:2] < (3, 12) else "2024.12.1"


#: package -> (what OreMap uses it for, pip requirement and extra pip arguments). The pins of the packages
#: that Plugins > OreMap > Install optional packages installs come from its pins file (optional_packages.txt);
#: the others' requirements are pinned here, to the versions the tests run.
OPTIONAL_PACKAGES = {
    "torch": ("trains the neural networks (CNN, ResNet)",
              "torch --index-url https://download.pytorch.org/whl/cpu"),
    "onnx": ("writes and reads OreMap model files (.onnx)", "onnx"),
    "onnxruntime": ("runs OreMap models (inference)", "onnxruntime"),
    "distributed": ("runs batch jobs on a Dask cluster (oremap:batch_on_cluster)",
                    f"dask=={dask_version()} distributed=={dask_version()}"),
    "skl2onnx": ("saves scikit-learn models (abundance ensembles, prospectivity model comparison) as ONNX", "skl2onnx"),
    "sklearn": ("fits the scikit-learn models (anomaly scores side by side, abundance ensembles, prospectivity model "
                "comparison, the mine patch classifier)", "scikit-learn"),
}

#: Packages OreMap takes from the system (or QGIS's installer) only, never from PyPI: their wheels bring a GDAL, PROJ or
#: GEOS of their own, or replace QGIS's own numpy. Package -> (Debian/Ubuntu package, Fedora and OSGeo4W package).
GEO_PACKAGES = {"numpy": ("python3-numpy",) * 2, "scipy": ("python3-scipy",) * 2,
                "rasterio": ("python3-rasterio",) * 2, "shapely": ("python3-shapely",) * 2,
                "pyproj": ("python3-pyproj",) * 2, "geopandas": ("python3-geopandas",) * 2,
                "pandas": ("python3-pandas",) * 2, "h5py": ("python3-h5py",) * 2,
                "sklearn": ("python3-sklearn", "python3-scikit-learn")}

#: packages the installer does not install (they start processes and servers of their own): their Debian/Ubuntu
#: packages, the versions the tests run
SYSTEM_PACKAGES = {"distributed": "python3-dask python3-distributed", "sklearn": GEO_PACKAGES["sklearn"][0]}


def is_installed(package):
    """True when ``package`` can be imported (found on the path, not only already imported)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or half-imported module
        return False


def import_failure(package, exc, what, install=None):
    """``(message, fix)`` of a failed ``import package`` (``exc``: its ImportError or OSError) for an algorithm that
    needs it to ``what``: not installed (``install``, or how to install it), or installed but not loadable, as on
    Windows when a DLL it needs is missing or an older copy of one was loaded first (the error itself, and what
    helps)."""
    if not is_installed(package):
        return (f"The Python package '{package}' is not installed; OreMap needs it to {what}.",
                install or install_hint([package]))
    missing_part = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing_part and missing_part.split(".")[0] != package:
        return (f"The Python package '{package}' is installed, but a package it needs, '{missing_part}', is not; "
                f"OreMap needs it to {what}.",
                "Install the package again with Plugins > OreMap > Install optional packages (it installs what it "
                "needs), then restart QGIS.")
    text = str(exc)
    if "Team ID" in text or "not valid for use in process" in text:
        return (f"The Python package '{package}' is installed, but macOS refused to load its compiled library into "
                f"this QGIS ({type(exc).__name__}: {text.strip()}); OreMap needs it to {what}.",
                "The signed QGIS app only loads libraries signed by its own developer (macOS library validation: "
                "'different Team IDs'), so it cannot load compiled packages installed with pip; restarting does not "
                "help. It is a known limit of some signed QGIS builds for macOS (QGIS issue 62928): use a QGIS "
                "installation that loads such packages (for example QGIS from conda-forge).")
    return (f"The Python package '{package}' is installed but cannot be loaded ({type(exc).__name__}: "
            f"{text.strip()}); OreMap needs it to {what}.",
            "Restart QGIS, then try again. On Windows a 'DLL load failed' usually means the Microsoft Visual C++ "
            "Redistributable (x64, latest) is missing or older than the package needs, or another program's copy "
            "of a DLL was loaded first: install the redistributable, restart QGIS, and if it persists reinstall the "
            + (f"system package {GEO_PACKAGES[package][0]} (OSGeo4W: {GEO_PACKAGES[package][1]}), never with pip."
               if package in GEO_PACKAGES else "package with Plugins > OreMap > Install optional packages."))


def missing_module_message(exc, what="run this algorithm"):
    """``(message, fix)`` for a run stopped by ``exc`` (a ModuleNotFoundError): a package QGIS's Python lacks and how
    to add it there (from the system for :data:`GEO_PACKAGES`, never pip; else as :func:`install_hint` says), or,
    when the package is there but a part of it is not, :func:`import_failure`'s account of a broken installation."""
    package = (getattr(exc, "name", None) or "").split(".")[0]
    if not package or is_installed(package):
        return import_failure(package or "?", exc, what)
    message = f"This run needs the Python package '{package}', which QGIS's Python lacks."
    if package not in GEO_PACKAGES:
        return message, install_hint([package])
    return message, system_install(package)


def system_install(package):
    """How to add :data:`GEO_PACKAGES` member ``package`` to QGIS's Python: from the system, never pip."""
    debian, fedora = GEO_PACKAGES[package]
    return (f"Debian/Ubuntu: sudo apt install {debian}; Fedora: sudo dnf install {fedora}; Windows: the "
            f"OSGeo4W installer (Advanced Install), package {fedora}; then restart QGIS. Do not pip-install "
            "it into QGIS: its wheels bring their own GDAL/PROJ/GEOS or numpy, which break QGIS.")


def missing(packages):
    """The packages of ``packages`` that cannot be imported, in order."""
    return [p for p in packages if not is_installed(p)]


@functools.lru_cache(maxsize=1)
def installer_pins():
    """``{package: pinned version}`` of what Plugins > OreMap > Install optional packages installs (names as pip
    compares them: :func:`core.engine.package_installer.normalise`), read once."""
    from .package_installer import normalise, read_pins

    try:
        groups = read_pins()
    except (OSError, ValueError):
        return {}
    return {normalise(name): version for group in groups.values() for name, version, _ in group["packages"]}


def _requirement(package, pins):
    """The pip requirement of ``package``: the installer's pin (on a Mac the build the installer takes there),
    else :data:`OPTIONAL_PACKAGES`' own."""
    from .package_installer import normalise

    spec = OPTIONAL_PACKAGES.get(package, ("", package))[1]
    name, _, extra = spec.partition(" ")
    version = pins.get(normalise(name))
    if version is None:
        return spec
    from .package_installer import InstallError, host_platform, platform_pin

    where = host_platform()
    if where[0] == "darwin":   # the Mac's own builds: PyPI's torch, an older onnxruntime on older Macs
        try:
            return f"{name}=={platform_pin(name, version, where)}"
        except InstallError:
            return f"{name} (no build for this Mac)"
    if name == "torch":
        version = version.split("+")[0]   # the CPU build comes from its own index, which the extra names
    return f"{name}=={version}" + (f" {extra}" if extra else "")


def install_command(packages):
    """One pip command line installing ``packages`` at the versions OreMap is tested with (torch's CPU index
    kept for torch alone); none for :data:`GEO_PACKAGES`, which come from the system only."""
    pins = installer_pins()
    plain = [_requirement(p, pins) for p in packages if p != "torch" and p not in GEO_PACKAGES]
    lines = []
    if plain:
        lines.append("python -m pip install " + " ".join(plain))
    if "torch" in packages:
        lines.append("python -m pip install " + _requirement("torch", pins))
    return lines


def install_hint(packages):
    """Plain-text instructions for installing ``packages`` into the Python that QGIS uses: the installer for
    what it installs, the system's packages for the rest (Dask), and pip commands with the tested versions."""
    what = "; ".join(f"'{p}' {OPTIONAL_PACKAGES[p][0]}" if p in OPTIONAL_PACKAGES else f"'{p}'" for p in packages)
    geo = [p for p in packages if p in GEO_PACKAGES]
    system = [p for p in packages if p in SYSTEM_PACKAGES and p not in GEO_PACKAGES]
    other = [p for p in packages if p not in SYSTEM_PACKAGES and p not in GEO_PACKAGES]
    ways = [f"{p}: {system_install(p)}" for p in geo]
    if other:
        ways.append("In QGIS: Plugins > OreMap > Install optional packages (no administrator rights needed) "
                    f"installs {', '.join(other)}.")
    if system:
        ways.append(f"{', '.join(system)}: on Debian/Ubuntu 'sudo apt install "
                    f"{' '.join(SYSTEM_PACKAGES[p] for p in system)}' (the installer does not install "
                    f"{'it' if len(system) == 1 else 'them'}).")
    commands = install_command(packages)
    text = f"Missing Python package{'s' if len(packages) > 1 else ''}: {what}. " + " ".join(ways)
    if not commands:
        return text
    return (text + " Or install " + ("the others " if geo else "") + "into the Python that QGIS uses, then restart "
            "QGIS: " + " ; ".join(commands)
            + ". Windows: run it in the OSGeo4W Shell. macOS: the Python inside the QGIS app (e.g. "
            "'/Applications/QGIS-LTR.app/Contents/MacOS/bin/python3'; 'Contents/MacOS/python' in the 3.44 and 4.x "
            "builds) -m pip install ... Linux: the python3 that QGIS runs (pip install --user, or a venv made with "
            "--system-site-packages).")
