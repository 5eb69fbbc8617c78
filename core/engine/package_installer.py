"""Install OreMap's optional packages (onnx, onnxruntime, torch, skl2onnx) for the Python that QGIS runs.

A stock QGIS has numpy, scipy and rasterio but not the neural-network packages. This module installs
them without administrator rights into one folder of the QGIS profile,
``<profile>/python/oremap-packages/<Python's cache tag>`` (:func:`folder_for_profile`), that the plugin puts on
``sys.path`` when it loads (:func:`activate`). It never touches QGIS's own packages:

- the pins come from ``optional_packages.txt`` beside this file (transcribed from the project's
  ``requirements.lock``); pip runs with ``--no-deps`` over the list computed here, so it resolves nothing
  and never pulls numpy, scikit-learn or GDAL in;
- packages that QGIS's Python must provide itself (``host`` lines: numpy, scikit-learn) are checked and, when
  missing or too old, the installation is refused with the reason instead of replacing them;
- a dependency that QGIS's Python already has at a version good enough for the whole set is not installed
  again (nothing is shadowed without need);
- pip installs into a staging folder first; the profile folder changes only when pip succeeded, so a failed
  or cancelled run leaves nothing half-written.

No QGIS here: the dialog (``ui/install_packages.py``) and the plugin pass the profile folder in.
"""

import csv
import importlib
import importlib.metadata
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading

from .errors import OreMapError
from .files import no_console

PINS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optional_packages.txt")
#: The sha256 of every wheel of each pinned version (scripts/make_installer_hashes.py): pip installs those with
#: ``--require-hashes``, so no file the project did not see (another index in the user's pip settings, a file
#: added to a release) is installed and run. torch's CPU build (PyTorch's index) has none.
HASHES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optional_packages.hashes")
FOLDER_NAME = "oremap-packages"
#: PyTorch's index of CPU-only wheels (the PyPI torch is the large CUDA build on Linux).
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
ONNXRUNTIME_OLDER_MACS = "1.23.2"
"""onnxruntime for the Macs its pinned release has no wheel for (Intel Macs, Apple silicon before macOS 14): the last
release with wheels for them. It runs OreMap's models (ONNX IR 8, opset 17) with the same outputs as the pinned one:
checked on every bundled and demo model, and with the model tests, on Linux."""
DEFAULT_GROUPS = ("run",)
PYTHON_MINIMUM = (3, 11)
"""The oldest Python the pinned packages install on: onnxruntime 1.32 and torch's filelock and networkx need 3.11
(their wheels and ``Requires-Python``); Ubuntu 22.04's QGIS runs 3.10, older Windows and macOS builds 3.9."""


class InstallError(OreMapError):
    """The installation cannot be done or failed; ``message`` says why, ``fix`` what to do."""


def normalise(name):
    """A distribution name as pip compares them (PEP 503): lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_tuple(version):
    """Numbers of a version string for comparison: '1.24.2' -> (1, 24, 2); local parts (+cpu) and
    pre-release tails are cut at the first part that is not a number."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def at_least(version, minimum):
    """True when ``version`` >= ``minimum`` (trailing zeros ignored); ``minimum`` None: any version."""
    if minimum is None:
        return True
    a, b = list(version_tuple(version)), list(version_tuple(minimum))
    width = max(len(a), len(b))
    return a + [0] * (width - len(a)) >= b + [0] * (width - len(b))


def _lines(path):
    """``(line, complaint)`` of each line of ``path`` holding more than a comment: the line without it, and the
    ValueError to raise when it cannot be read."""
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                yield line, ValueError(f"{path}, line {number}: cannot read '{raw.strip()}'")


def read_pins(path=PINS_FILE):
    """``{group: {"title", "packages": [(name, pinned version, minimum or None)], "host": [(name, minimum)]}}``."""
    groups = {}
    current = None
    for line, complaint in _lines(path):
        header = re.match(r"\[(\w+)\]\s*(.*)", line)
        if header:
            current = groups.setdefault(header.group(1), {"title": header.group(2).strip(), "packages": [],
                                                           "host": []})
            continue
        host = re.match(r"host\s+([A-Za-z0-9_.-]+)\s*(?:>=\s*(\S+))?$", line)
        pin = re.match(r"([A-Za-z0-9_.-]+)==(\S+)(?:\s+>=\s*(\S+))?$", line)
        if current is None or not (host or pin):
            raise complaint
        if host:
            current["host"].append((host.group(1), host.group(2)))
        else:
            current["packages"].append((pin.group(1), pin.group(2), pin.group(3)))
    return groups


def read_hashes(path=HASHES_FILE):
    """``{"name==version": [sha256, ...]}`` (names normalised) of :data:`HASHES_FILE`; empty when there is none."""
    hashes = {}
    if not path or not os.path.exists(path):
        return hashes
    for line, complaint in _lines(path):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)\s+sha256:([0-9a-f]{64})$", line)
        if not match:
            raise complaint
        hashes.setdefault(f"{normalise(match.group(1))}=={match.group(2)}", []).append(match.group(3))
    return hashes


def hashed_requirements(requirements, hashes):
    """``(lines for a requirements file with --hash, the requirements without hashes)`` of ``["name==version"]``."""
    lines, bare = [], []
    for requirement in requirements:
        name, version = requirement.split("==", 1)
        digests = hashes.get(f"{normalise(name)}=={version}")
        if digests:
            lines.append(f"{requirement} " + " ".join(f"--hash=sha256:{d}" for d in digests))
        else:
            bare.append(requirement)
    return lines, bare


def folder_for_profile(profile_dir):
    """The packages folder of a QGIS profile (``QgsApplication.qgisSettingsDirPath()``) for the running Python.

    ``<profile>/python/oremap-packages/<cache tag>`` (``cpython-311``): compiled packages suit one Python
    version only, and a QGIS upgrade keeps its profile while its Python may change (OSGeo4W's QGIS went from
    Python 3.9 to 3.12); packages built for the old Python first on ``sys.path`` would fail to import or shadow
    QGIS's own. Releases up to 0.2.9 installed straight into ``oremap-packages``: that folder is still used when
    it holds packages and every one of them was built for this Python (:func:`built_for_this_python`), and the
    versioned one does not exist yet; packages built for another Python are left where they are, unused.
    """
    parent = os.path.join(profile_dir, "python", FOLDER_NAME)
    tagged = os.path.join(parent, python_tag())
    if not os.path.isdir(tagged) and _legacy_dists(parent) and built_for_this_python(parent):
        return parent
    return tagged


def python_tag():
    """The running Python's folder name for its packages: ``sys.implementation.cache_tag`` (``cpython-311``)."""
    return sys.implementation.cache_tag or f"py{sys.version_info[0]}{sys.version_info[1]}"


def _legacy_dists(parent):
    """The ``*.dist-info`` folders straight in ``parent`` (packages installed before the versioned folders)."""
    try:
        return [os.path.join(parent, e) for e in os.listdir(parent) if e.endswith(".dist-info")]
    except OSError:
        return []


def wheel_tag_fits(tag, version=None):
    """Whether a wheel tag (``cp311-cp311-win_amd64``, ``py3-none-any``, ``cp38-abi3-manylinux...``) can run
    on Python ``version`` ((major, minor), default the running one). The platform part is not judged: a profile
    folder belongs to one machine."""
    major, minor = version or sys.version_info[:2]
    parts = tag.strip().split("-")
    if len(parts) != 3:
        return False
    interpreters, abis = parts[0].split("."), parts[1].split(".")
    for interpreter in interpreters:
        found = re.fullmatch(r"(cp|py)(\d)(\d*)", interpreter)
        if not found or int(found.group(2)) != major:
            continue
        kind, wanted_minor = found.group(1), found.group(3)
        if kind == "py" and (not wanted_minor or int(wanted_minor) <= minor) and "none" in abis:
            return True   # pure Python (py3, py2.py3, py38)
        if kind == "cp" and wanted_minor and ((int(wanted_minor) == minor)
                                              or ("abi3" in abis and int(wanted_minor) <= minor)):
            return True
    return False


def unused_for_other_python(folder):
    """A sentence when the parent ``oremap-packages`` of ``folder`` holds packages of an earlier release built
    for another Python, which are not used (and may be deleted); '' otherwise."""
    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.basename(parent) != FOLDER_NAME or not _legacy_dists(parent) or built_for_this_python(parent):
        return ""
    return (f"{parent} holds packages built for another Python version (installed by an earlier QGIS); they are "
            f"not used. Install the packages again for this QGIS's Python {sys.version_info[0]}."
            f"{sys.version_info[1]}; the old ones can be deleted.")


def built_for_this_python(folder):
    """Whether every package straight in ``folder`` was built for the running Python, read from the ``Tag:``
    lines of its ``.dist-info/WHEEL`` file (pip installs only wheels here); a package without one counts as
    not."""
    for dist in _legacy_dists(folder):
        try:
            with open(os.path.join(dist, "WHEEL"), encoding="utf-8") as handle:
                tags = [line.split(":", 1)[1] for line in handle if line.lower().startswith("tag:")]
        except OSError:
            return False
        if not any(wheel_tag_fits(tag) for tag in tags):
            return False
    return True


def activate(folder):
    """Put ``folder`` first on ``sys.path`` (once) when it exists, so its packages import; True when it is there.

    Called by the plugin when it loads and after an installation. Only OreMap's optional packages and their
    missing dependencies live there, never numpy or GDAL.
    """
    if not folder or not os.path.isdir(folder):
        return False
    folder = os.path.abspath(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()
    return True


def host_version(name, folder=None):
    """Version of distribution ``name`` in the running Python, not counting ``folder``; None when absent."""
    skip = os.path.normcase(os.path.abspath(folder)) if folder else None
    path = [p for p in sys.path if not skip or os.path.normcase(os.path.abspath(p or os.curdir)) != skip]
    wanted = normalise(name)
    for dist in importlib.metadata.distributions(path=path):
        if normalise(dist.metadata["Name"] or "") == wanted:
            return dist.version
    return None


def folder_version(name, folder):
    """Version of distribution ``name`` installed in ``folder``; None when absent."""
    if not folder or not os.path.isdir(folder):
        return None
    wanted = normalise(name)
    for dist in importlib.metadata.distributions(path=[folder]):
        if normalise(dist.metadata["Name"] or "") == wanted:
            return dist.version
    return None


def folder_intact(name, folder):
    """Whether every file that distribution ``name``'s record lists is in ``folder`` (an installation stopped
    halfway, or a package folder removed by hand, is not: installing it again repairs it)."""
    wanted = normalise(name)
    for dist in importlib.metadata.distributions(path=[folder]):
        if normalise(dist.metadata["Name"] or "") == wanted:
            # the RECORD itself, not ``dist.files``: from Python 3.12 on, ``files`` leaves out the files that are
            # missing, so every installation looked whole
            record = dist.read_text("RECORD")
            if record is None:
                return False
            files = [row[0] for row in csv.reader(record.splitlines()) if row and row[0]]
            files = [f for f in files if "__pycache__" not in f.split("/") and not f.endswith(".pyc")]
            # console scripts are recorded outside the folder ('../../bin/onnxruntime_test'), and the staging
            # 'bin' is not moved in: counted, onnx, onnxruntime, torch and sympy were never whole, and every later
            # run installed them again (refused once loaded: 'in use, restart QGIS')
            files = [f for f in files if not f.replace("\\", "/").startswith("../")]
            return all(os.path.exists(dist.locate_file(f)) for f in files)
    return False


def host_platform():
    """``(sys.platform, machine, macOS version as a tuple or None)`` of the running Python (an x86_64 QGIS under
    Rosetta reports x86_64: its Python takes x86_64 wheels)."""
    import platform

    release = platform.mac_ver()[0] if sys.platform == "darwin" else ""
    return sys.platform, platform.machine().lower(), version_tuple(release) if release else None


def platform_pin(name, pinned, where=None):
    """The version of ``name`` to install on this platform (``where``: :func:`host_platform`): its pin, except on
    macOS, where torch's pin loses its local label (``2.13.0+cpu``: the Mac builds are PyPI's, and carry none) and
    onnxruntime is :data:`ONNXRUNTIME_OLDER_MACS` on Intel Macs and before macOS 14. Raises :class:`InstallError`
    for torch on an Intel Mac, for which PyTorch publishes no build of the pinned version."""
    system, machine, macos = where or host_platform()
    if system != "darwin":
        return pinned
    intel = machine in ("x86_64", "i386", "amd64")
    if normalise(name) == "torch":
        if intel:
            raise InstallError(f"PyTorch publishes no torch {pinned.split('+')[0]} for Intel Macs, so the networks "
                               "cannot be trained with this QGIS.",
                               fix="Untick torch: the other packages install, and models trained elsewhere (or the "
                                   "bundled ones) run here. Train on an Apple-silicon Mac, Linux or Windows.")
        return pinned.split("+")[0]
    if normalise(name) == "onnxruntime" and (intel or (macos is not None and macos < (14,))):
        return ONNXRUNTIME_OLDER_MACS
    return pinned


def plan(groups=DEFAULT_GROUPS, folder=None, pins=None, versions=None):
    """What an installation of ``groups`` would do, without doing it.

    Parameters
    ----------
    groups : sequence of str
        Groups of ``optional_packages.txt`` ("run", "torch", "skl2onnx").
    folder : str, optional
        The packages folder (its own content does not count as "already there").
    pins : dict, optional
        :func:`read_pins` result (default: the plugin's file).
    versions : callable, optional
        ``name -> installed version or None`` in QGIS's Python (default :func:`host_version`).

    Returns
    -------
    dict
        ``install``: ``["name==version"]`` for pip (a package already in ``folder`` at its pin is left out);
        ``kept``: ``[(name, version)]`` already good enough in QGIS's Python; ``problems``: sentences, one per host
        package missing or too old (the installation must then be refused).
    """
    pins = read_pins() if pins is None else pins
    versions = versions or (lambda name: host_version(name, folder))
    unknown = [g for g in groups if g not in pins]
    if unknown:
        raise InstallError(f"Unknown package group(s): {', '.join(unknown)}.",
                           fix=f"Choose among {', '.join(pins)}.")
    wanted, minimum, host = {}, {}, {}
    where = host_platform()
    for group in groups:
        for name, pinned, least in pins[group]["packages"]:
            pinned = platform_pin(name, pinned, where)
            key = normalise(name)
            wanted.setdefault(key, (name, pinned))
            if least is None or minimum.get(key, "") is None:
                minimum[key] = None  # asked for by name somewhere: the pinned version itself
            else:
                minimum[key] = max(minimum.get(key, least), least, key=version_tuple)
        for name, least in pins[group]["host"]:
            key = normalise(name)
            earlier = host.get(key, (name, None))[1]
            host[key] = (name, max([v for v in (earlier, least) if v], key=version_tuple, default=None))
    install, kept, problems = [], [], []
    for key, (name, pinned) in wanted.items():
        if folder and version_tuple(folder_version(name, folder) or "") == version_tuple(pinned) \
                and folder_intact(name, folder):
            continue  # already in the packages folder at its pin, whole: installing it again would only replace it
        have = versions(name)
        # a package asked for by name (no minimum) is always installed at its pin unless already the same
        least = minimum[key]
        if have is not None and (version_tuple(have) == version_tuple(pinned)
                                 or (least is not None and at_least(have, least))):
            kept.append((name, have))
        else:
            install.append(f"{name}=={pinned}")
    for key, (name, least) in host.items():
        have = versions(name)
        if have is None:
            problems.append(f"QGIS's Python has no {name}; OreMap does not install it, because QGIS's own "
                            f"build must be used.")
        elif not at_least(have, least):
            problems.append(f"QGIS's Python has {name} {have}, older than the {least} the packages need; "
                            f"replacing it could break QGIS.")
    return {"install": install, "kept": kept, "problems": problems}


def _interpreter_ok(python, timeout=60):
    """``(True, "")`` when ``python`` is this Python's version and has pip, else ``(False, why)``."""
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        proc = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=timeout, **no_console())
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{python} does not run ({exc})"
    if proc.returncode != 0 or proc.stdout.strip() != want:
        return False, f"{python} is Python {proc.stdout.strip() or '?'}, QGIS runs {want}"
    try:
        proc = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=timeout,
                              **no_console())
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{python} -m pip does not run ({exc})"
    if proc.returncode != 0:
        return False, f"{python} has no pip"
    return True, ""


def python_candidates():
    """Interpreters that may be the one QGIS embeds, most likely first (QGIS's ``sys.executable`` is often
    the QGIS binary itself)."""
    major, minor = sys.version_info[:2]
    names = [f"python{major}.{minor}", f"python{major}", "python"]
    found = []
    base = os.path.basename(sys.executable or "").lower()
    if base.startswith("python"):
        found.append(sys.executable)
    for prefix in dict.fromkeys([sys.exec_prefix, sys.base_exec_prefix, sys.prefix]):
        if os.name == "nt":
            found += [os.path.join(prefix, "python.exe"), os.path.join(prefix, f"python{major}.exe")]
        else:
            found += [os.path.join(prefix, "bin", name) for name in names]
    if sys.platform == "darwin" and sys.executable:
        # the QGIS app's own folder (Contents/MacOS: its 'python' wrapper in the 3.44 and 4.x builds, bin/python3
        # in earlier ones), whatever the bundle's Python home
        here = os.path.dirname(sys.executable)
        found += [os.path.join(folder, name) for folder in (here, os.path.join(here, "bin")) for name in names]
    for name in names:
        path = shutil.which(name)
        # not Apple's /usr/bin stubs: another Python, and without the developer tools they open an install dialog
        if path and not (sys.platform == "darwin" and os.path.dirname(path) == "/usr/bin"):
            found.append(path)
    return [p for p in dict.fromkeys(found) if os.path.isfile(p)]


def find_python():
    """The Python executable with pip that matches the running Python; :class:`InstallError` when none does."""
    reasons = []
    for candidate in python_candidates():
        ok, why = _interpreter_ok(candidate)
        if ok:
            return candidate
        reasons.append(why)
    raise InstallError(
        "OreMap found no Python interpreter with pip matching QGIS's Python "
        f"{sys.version_info[0]}.{sys.version_info[1]}" + (f" ({'; '.join(reasons)})" if reasons else "") + ".",
        fix="Install pip for QGIS's Python (Debian/Ubuntu: sudo apt install python3-pip; Windows: the OSGeo4W "
            "installer's python3-pip package), or install the packages by hand: python -m pip install --target "
            f"<QGIS profile>/python/oremap-packages/{python_tag()} " + " ".join(
                f"{name}=={version}" for name, version, _ in read_pins()["run"]["packages"]
                if name in ("onnx", "onnxruntime")) + ".")


def pip_command(python, requirements, target, find_links=None, index_url=None, extra_index_url=None,
                hashed_file=None):
    """The pip command line: ``--no-deps`` over the pinned list, binary wheels only, into ``target``; with
    ``hashed_file`` (a requirements file whose lines carry ``--hash``) ``--require-hashes -r`` it instead."""
    command = [python, "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--no-warn-script-location", "--no-compile", "--upgrade",
               "--target", target]
    if hashed_file:
        command += ["--require-hashes", "-r", hashed_file]
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    else:
        if index_url:
            command += ["--index-url", index_url]
        if extra_index_url:
            command += ["--extra-index-url", extra_index_url]
    return command + list(requirements)


def _writable(folder):
    """Error text when ``folder`` (or the nearest existing parent) cannot be written, else ''."""
    probe = folder
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return f"No existing parent folder of {folder}."
        probe = parent
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable."
    return ""


def install(groups=DEFAULT_GROUPS, folder=None, python=None, find_links=None, log=None, progress=None,
            is_canceled=None, pins=None, hashes=None):
    """Install the pinned packages of ``groups`` into ``folder`` and put it on ``sys.path``.

    Parameters
    ----------
    groups : sequence of str
        "run" (onnx, onnxruntime), "torch" (CPU torch), "skl2onnx".
    folder : str
        The packages folder (:func:`folder_for_profile`).
    python : str, optional
        Python executable with pip (default :func:`find_python`).
    find_links : str, optional
        A folder of wheels to install from, offline (``--no-index --find-links``); default PyPI (and
        PyTorch's CPU index for torch).
    log, progress, is_canceled : callable, optional
        ``log(text)`` gets pip's output line by line; ``progress(percent)``; ``is_canceled()`` True stops pip.
    hashes : dict, optional
        :func:`read_hashes` result (default: the plugin's file): the packages listed there are installed with
        ``--require-hashes``, the others (torch's CPU build) by name and version, in a second pip call.

    Returns
    -------
    dict
        ``installed`` (the ``name==version`` list), ``kept`` (already in QGIS's Python), ``folder``.

    Raises
    ------
    InstallError
        When the installation must be refused (host packages missing or too old, no pip, folder not writable)
        or pip failed (the message ends with pip's last lines); nothing is left in ``folder`` then.
    """
    log = log or (lambda text: None)
    progress = progress or (lambda percent: None)
    is_canceled = is_canceled or (lambda: False)
    if not folder:
        raise InstallError("No packages folder was given.", fix="Pass the QGIS profile's oremap-packages folder.")
    if pins is None and sys.version_info[:2] < PYTHON_MINIMUM:
        raise InstallError(f"The packages OreMap is tested with need Python {'.'.join(map(str, PYTHON_MINIMUM))} or "
                           f"later; this QGIS runs Python {sys.version_info[0]}.{sys.version_info[1]}.",
                           fix="Use a QGIS whose Python is newer: on Debian 12 or Ubuntu 24.04 and later, or a "
                               "current QGIS installer for Windows or macOS. The algorithms that need no optional "
                               "package (SAM, unmixing, IDW, element selection, indices, evaluation) run here.")
    folder = os.path.abspath(folder)
    what = plan(groups, folder, pins)
    if what["problems"]:
        raise InstallError("The packages cannot be installed here: " + " ".join(what["problems"]),
                           fix="Use a QGIS whose Python provides these packages at those versions (QGIS 3.28 or later "
                               "on Windows and macOS; Debian 12 or Ubuntu 24.04 and later: sudo apt install "
                               "python3-numpy python3-sklearn; an older system's own numpy cannot be replaced).")
    for name, version in what["kept"]:
        log(f"{name} {version}: already in QGIS's Python, kept.")
    if not what["install"]:
        log("Nothing to install: every package is already there.")
        progress(100)
        activate(folder)
        return {"installed": [], "kept": what["kept"], "folder": folder}
    problem = _writable(folder)
    if problem:
        raise InstallError(f"Cannot install into {folder}: {problem}",
                           fix="Check the permissions of your QGIS profile folder.")
    python = python or find_python()
    parent = os.path.dirname(folder)
    made = not os.path.isdir(parent)   # oremap-packages itself, above the Python's folder, on a first install
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".oremap-install-", dir=parent)
    hashed_file = staging + ".requirements.txt"   # beside the staging folder: pip installs into that one
    done = False
    try:
        lines, bare = hashed_requirements(what["install"], read_hashes() if hashes is None else hashes)
        calls = []
        if lines:   # every file checked against the hashes the project recorded
            with open(hashed_file, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            calls.append((pip_command(python, [], staging, find_links=find_links, hashed_file=hashed_file),
                          len(lines)))
        if bare:
            # torch's CPU build from PyTorch's index, but on macOS from PyPI (the Mac builds there are CPU builds)
            torch = any(r.startswith("torch==") for r in bare) and host_platform()[0] != "darwin"
            calls.append((pip_command(python, bare, staging, find_links=find_links,
                                      index_url=TORCH_INDEX if torch and not find_links else None,
                                      extra_index_url="https://pypi.org/simple" if torch and not find_links else None),
                          len(bare)))
        total, done_count = len(what["install"]), 0
        for command, count in calls:
            log("Running: " + " ".join(command))
            start, share = done_count / total, count / total
            tail = _run_pip(command, count, log, lambda p, s=start, w=share: progress(int(100 * s + p * w)),
                            is_canceled)
            done_count += count
            if is_canceled():
                raise InstallError("The installation was cancelled; nothing was installed (the packages folder is "
                                  "unchanged).")
            if tail is not None:
                mismatch = "Expected sha256" in tail or "DO NOT MATCH THE HASHES" in tail
                raise InstallError("pip could not install the packages:\n" + tail,
                                   fix="A file of the package index differs from the one OreMap was tested with: "
                                       "check pip's index settings (another index or mirror), or report it."
                                   if mismatch else
                                   "Read the log above. 'No matching distribution' means no wheel of that version "
                                   f"exists for Python {sys.version_info[0]}.{sys.version_info[1]} on this "
                                   "system; a network error needs a connection (or a proxy in pip's settings).")
        _move_into(staging, folder)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.exists(hashed_file):
            os.remove(hashed_file)
        if made and not done and not os.listdir(parent):
            os.rmdir(parent)   # a failed first installation leaves no folder behind
    activate(folder)
    progress(100)
    log(f"Installed into {folder}: {', '.join(what['install'])}.")
    return {"installed": what["install"], "kept": what["kept"], "folder": folder}


def _run_pip(command, count, log, progress, is_canceled):
    """Run pip, streaming its lines to ``log``; None on success, else its last lines.

    pip prints nothing for minutes while it downloads a large wheel (torch: one 'Downloading' line, then silence),
    so its output is read in a thread and ``is_canceled`` is asked every 0.2 s, not only when pip prints: a
    cancelled pip is stopped within a second. It writes into the staging folder only, so stopping it anywhere
    leaves the packages folder as it was."""
    env = dict(os.environ, PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    env.pop("PYTHONPATH", None)  # pip must not see the folder being replaced or QGIS's own paths twice
    lines, done = [], 0
    progress(1)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          bufsize=1, **no_console()) as proc:
        received = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stdout, received), daemon=True).start()
        while True:
            if is_canceled():
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log("Cancelled: pip was stopped.")
                break
            try:
                line = received.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:   # pip closed its output: it has ended
                break
            line = line.rstrip()
            lines.append(line)
            log(line)
            if line.startswith(("Processing ", "Collecting ", "Downloading ")) and not line.startswith(
                    "Downloading http"):
                done += line.startswith(("Processing ", "Collecting "))
                progress(min(90, 5 + int(80 * done / max(count, 1))))
            elif line.startswith("Installing collected packages"):
                progress(92)
        code = proc.wait()
    return None if code == 0 and not is_canceled() else "\n".join(lines[-15:])


def _read_lines(stream, received):
    """Put each line of ``stream`` in the queue ``received``, then None (at its end, or when it was closed)."""
    try:
        for line in stream:
            received.put(line)
    except (OSError, ValueError):   # closed under the thread once pip was stopped
        pass
    received.put(None)


def loaded_from(folder, entries):
    """The modules of this Python session imported from the ``entries`` (package folders, module files) of
    ``folder``: those entries cannot be replaced now (Windows locks a loaded extension module and its DLLs, and
    everywhere the old version stays in use until QGIS restarts)."""
    folder = os.path.normcase(os.path.abspath(folder))
    targets = {os.path.normcase(os.path.join(folder, e)) for e in entries}
    loaded = set()
    for name, module in list(sys.modules.items()):
        # a module's file, or a namespace package's folders (google/ of protobuf has no __init__.py)
        paths = [getattr(module, "__file__", None)]
        try:
            paths += [p for p in getattr(module, "__path__", None) or () if isinstance(p, str)]
        except TypeError:  # a module object whose __path__ is something else (torch.classes answers any name)
            pass
        for path in paths:
            if not isinstance(path, str) or not path:
                continue
            path = os.path.normcase(os.path.abspath(path))
            if any(path == t or path.startswith(t + os.sep) for t in targets):
                loaded.add(name.split(".")[0])
    return sorted(loaded)


def _move_into(staging, folder):
    """Move what pip put in ``staging`` into ``folder``, replacing earlier versions of the same packages; refused
    (nothing moved) while an earlier version is loaded in this session (:func:`loaded_from`)."""
    os.makedirs(folder, exist_ok=True)
    entries = [e for e in os.listdir(staging) if e != "bin"]
    loaded = loaded_from(folder, [e for e in entries if not e.endswith((".dist-info", ".egg-info"))
                                  and os.path.lexists(os.path.join(folder, e))])
    if loaded:
        raise InstallError(f"{', '.join(loaded)} {'is' if len(loaded) == 1 else 'are'} in use in this QGIS session "
                           "(an algorithm, the settings or the model library loaded it), so its files cannot be "
                           "replaced now: Windows keeps them locked, and elsewhere the old version would stay in use. "
                           "Nothing was changed.", fix="Restart QGIS and install again before running an OreMap "
                                                       "algorithm.")
    # an upgraded package: remove the old version's metadata folder too
    names = {normalise(e.split("-")[0]) for e in entries if e.endswith((".dist-info", ".egg-info"))}
    for old in os.listdir(folder):
        if old.endswith((".dist-info", ".egg-info")) and normalise(old.split("-")[0]) in names:
            shutil.rmtree(os.path.join(folder, old), ignore_errors=True)
    for entry in entries:
        target = os.path.join(folder, entry)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)
        shutil.move(os.path.join(staging, entry), target)


def status(folder=None, pins=None):
    """``[(group, title, [(name, version or None, "profile" | "QGIS" | None)])]`` for the dialog."""
    pins = read_pins() if pins is None else pins
    rows = []
    for group, spec in pins.items():
        packages = []
        for name, _, _ in spec["packages"][:1]:  # the group's main package
            mine = folder_version(name, folder)
            theirs = host_version(name, folder)
            packages.append((name, mine or theirs, "profile" if mine else ("QGIS" if theirs else None)))
        rows.append((group, spec["title"], packages))
    return rows
