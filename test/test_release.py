"""The release: the zip `make package` builds passes the official QGIS plugin repository's checks, and the
version and changelog agree everywhere they are written.

The rules checked, with their sources (the checks are ours, written from these texts):

- PyQGIS Developer Cookbook, "Plugin metadata" table
  (https://docs.qgis.org/latest/en/docs/pyqgis_developer_cookbook/plugins/plugins.html#plugin-metadata):
  required ``name``, ``qgisMinimumVersion``, ``description``, ``about``, ``version``, ``author``, ``email``,
  ``repository``; ``qgisMinimumVersion`` and ``version`` in dotted notation; ``description``, ``about`` and
  ``changelog`` without HTML; ``experimental`` and ``deprecated`` booleans ``True``/``False``; ``tags``
  comma separated; ``category`` one of Raster, Vector, Database, Mesh, Web; ``icon`` a path relative to the
  plugin folder inside the zip.
- PyQGIS Developer Cookbook, "Releasing your plugin"
  (https://docs.qgis.org/latest/en/docs/pyqgis_developer_cookbook/plugins/releasing.html): ``description``
  is one line, ``about`` the details; a code repository, a tracker and a home page; a proper icon.
- plugins.qgis.org's upload validator (QGIS-Django, ``qgis-app/plugins/validator.py``): the zip at most
  25,000,000 bytes (``PLUGIN_MAX_UPLOAD_SIZE``); no member path with ``..`` or a leading ``/``; no ``.pyc``;
  no ``__MACOSX``, ``.git`` or ``__pycache__`` folder; ``ZipFile.testzip`` clean; one top-level folder (more
  gives a warning), named ``^[A-Za-z][A-Za-z0-9-_]+$``, holding ``__init__.py`` and ``metadata.txt`` with a
  ``[general]`` section that ``configparser.ConfigParser`` reads (interpolation on: a lone ``%`` is an
  error); ``tracker`` required as well; ``LICENSE`` in the top folder (required since June 2024, QEP 279);
  ``author`` without slashes; ``tracker``, ``repository`` and ``homepage`` URLs with a scheme and a host and
  not the template placeholders (the site also requests each URL: not done here, the tests run offline).
- The folder name is the plugin's module name: QGIS imports the plugin folder as a package
  (``qgis.utils.findPlugins`` names a plugin by its folder; ``oremap`` is the name the Makefile links for
  ``qgis_process``, the provider id and the name ``qgis_process plugins enable`` takes).
- QGIS reads ``metadata.txt`` with ``configparser`` (``qgis.utils.findPlugins``; a value it cannot read shows
  as ``__error__``); its plugin manager (``pyplugin_installer.installer_data.Plugins.getInstalledPlugin``) marks
  a plugin "incompatible" unless ``version_compare.isCompatible`` accepts its ``qgisMinimumVersion`` and
  ``qgisMaximumVersion`` (no maximum: the minimum's major version ``.99``). The test asks that data layer
  what the plugin manager will show for the extracted zip.
- Compiled or cache files: besides the validator's ``.pyc`` and ``__pycache__``, no ``.pyo``, ``.so``,
  ``.pyd``, ``.dll`` or ``.dylib``: OreMap ships no compiled extension (``INTENDED_BINARIES`` is empty).
- CHANGELOG.md headings ``## <major.minor.patch> - <YYYY-MM-DD>``, newest first, as qgis-plugin-ci reads them
  (opengisch/qgis-plugin-ci, ``qgispluginci/changelog.py``).
"""

import configparser
import datetime
import importlib.util
import io
import os
import re
import shutil
import subprocess
import zipfile
from urllib.parse import urlparse

import pytest

from conftest import ROOT

MAX_ZIP_BYTES = 25_000_000
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
            "tracker")
BOOLEANS = ("experimental", "deprecated", "server")
CATEGORIES = ("Raster", "Vector", "Database", "Mesh", "Web")
FORBIDDEN_FOLDERS = ("__pycache__", "__MACOSX", ".git", ".pytest_cache")
COMPILED = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib")
INTENDED_BINARIES = set()  # paths inside the zip of compiled files shipped on purpose: none
PLACEHOLDER_URLS = ("http://bugs", "http://repo", "http://homepage")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
QGIS_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
PACKAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-_]+$")
HTML = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
HEADING = re.compile(r"^## (\d+)\.(\d+)\.(\d+) - (\d{4}-\d{2}-\d{2})$")


def module_name():
    """The name QGIS imports the plugin as: the folder the Makefile links into QGIS_PLUGINPATH."""
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as handle:
        return re.search(r"ln -sfn \.\./\.\. \.build/plugins/(\S+)", handle.read()).group(1)


def read_metadata(text):
    """``{key: value}`` of a metadata.txt's [general] section, read as QGIS and plugins.qgis.org read it."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keep qgisMinimumVersion's case, as the repository's validator does
    parser.read_file(io.StringIO(text))
    return dict(parser.items("general"))  # interpolates every value: a lone % raises here


def repository_problems(path, expected_folder):
    """What plugins.qgis.org (and QGIS) would refuse in the plugin zip ``path``: ``["code: detail", ...]``."""
    problems = []
    size = os.path.getsize(path)
    if size > MAX_ZIP_BYTES:
        problems.append(f"size: {size:,} bytes, the limit is {MAX_ZIP_BYTES:,}")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        return problems + [f"zip: {err}"]
    with archive:
        bad = archive.testzip()
        if bad:
            problems.append(f"zip: bad CRC in {bad}")
        names = archive.namelist()
        for name in names:
            parts = name.split("/")
            if ".." in parts or name.startswith("/"):
                problems.append(f"path: {name}")
            if any(part in FORBIDDEN_FOLDERS for part in parts[:-1]):
                problems.append(f"cache: {name}")
            if name.endswith(COMPILED) and name not in INTENDED_BINARIES:
                problems.append(f"compiled: {name}")
        tops = sorted({name.split("/")[0] for name in names})
        if len(tops) != 1:
            problems.append(f"folders: {len(tops)} top-level entries ({', '.join(tops)}), expected one folder")
        top = names[0].split("/")[0] if names and "/" in names[0] else ""  # the plugin, as the validator takes it
        if not PACKAGE_NAME.match(top) or top != expected_folder:
            problems.append(f"folder-name: '{top}', expected '{expected_folder}' (the plugin's module name)")
        members = set(names)
        if f"{top}/__init__.py" not in members:
            problems.append(f"init: no {top}/__init__.py")
        elif "def classFactory(" not in archive.read(f"{top}/__init__.py").decode("utf-8"):
            problems.append("init: __init__.py defines no classFactory(iface)")
        if f"{top}/LICENSE" not in members:
            problems.append(f"licence: no {top}/LICENSE")
        if f"{top}/metadata.txt" not in members:
            return problems + [f"metadata: no {top}/metadata.txt"]
        try:
            meta = read_metadata(archive.read(f"{top}/metadata.txt").decode("utf-8"))
        except (configparser.Error, UnicodeDecodeError) as err:
            return problems + [f"metadata: {type(err).__name__}: {err}"]
        problems += metadata_problems(meta)
        icon = meta.get("icon", "").strip()
        if not icon:
            problems.append("icon: no icon in metadata.txt")
        elif f"{top}/{icon[2:] if icon.startswith('./') else icon}" not in members:
            problems.append(f"icon: {icon} is not in the zip")
    return problems


def metadata_problems(meta):
    problems = [f"required: {key}" for key in REQUIRED if not meta.get(key, "").strip()]
    version = meta.get("version", "").strip()
    if version and not VERSION.match(version):
        problems.append(f"version: '{version}' is not major.minor.patch")
    minimum = meta.get("qgisMinimumVersion", "").strip()
    maximum = meta.get("qgisMaximumVersion", "").strip()
    for key, value in (("qgisMinimumVersion", minimum), ("qgisMaximumVersion", maximum)):
        if value and not QGIS_VERSION.match(value):
            problems.append(f"qgis-version: {key} '{value}' is not dotted notation")
    if QGIS_VERSION.match(minimum) and minimum.split(".")[0] != "3":
        problems.append(f"qgis-version: qgisMinimumVersion {minimum} is not a QGIS 3 version")
    if QGIS_VERSION.match(minimum) and QGIS_VERSION.match(maximum) and (
            tuple(map(int, maximum.split("."))) < tuple(map(int, minimum.split(".")))):
        problems.append(f"qgis-version: qgisMaximumVersion {maximum} is below qgisMinimumVersion {minimum}")
    if "\n" in meta.get("description", "").strip():
        problems.append("description: more than one line")
    for key in ("name", "description", "about", "changelog", "tags"):
        if HTML.search(meta.get(key, "")):
            problems.append(f"html: {key}")
    for key in BOOLEANS:
        if key in meta and meta[key].strip() not in ("True", "False"):
            problems.append(f"boolean: {key}={meta[key]!r}")
    if "/" in meta.get("author", ""):
        problems.append("author: contains a slash")
    if meta.get("email") and not EMAIL.match(meta["email"].strip()):
        problems.append(f"email: '{meta['email']}'")
    for key in ("tracker", "repository", "homepage"):
        url = meta.get(key, "").strip()
        parsed = urlparse(url)
        if url and (url in PLACEHOLDER_URLS or not (parsed.scheme in ("http", "https") and parsed.netloc)):
            problems.append(f"url: {key}={url}")
    if meta.get("category") and meta["category"].strip() not in CATEGORIES:
        problems.append(f"category: '{meta['category']}'")
    tags = [t.strip() for t in meta.get("tags", "").split(",")]
    if "tags" in meta and ("" in tags or len(set(tags)) != len(tags)):
        problems.append("tags: empty or repeated tags")
    return problems


def problem_codes(problems):
    return {p.split(":")[0] for p in problems}


def metadata_text():
    with open(os.path.join(ROOT, "metadata.txt"), encoding="utf-8") as handle:
        return handle.read()


def changelog_entries():
    """``[(version tuple, date, [non-empty stripped lines])]`` of CHANGELOG.md, in file order."""
    entries = []
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as handle:
        for line in handle.read().splitlines():
            if line.startswith("## "):
                match = HEADING.match(line)
                assert match, f"CHANGELOG.md heading {line!r} is not '## <major.minor.patch> - <YYYY-MM-DD>'"
                entries.append((tuple(int(g) for g in match.groups()[:3]),
                                datetime.date.fromisoformat(match.group(4)), []))
            elif entries and line.strip():
                entries[-1][2].append(line.strip())
    return entries


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory):
    """The zip of ``make package`` (written to a temporary folder through its DIST variable)."""
    dest = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.run(["make", "-s", "package", f"DIST={dest}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    version = read_metadata(metadata_text())["version"]
    path = dest / f"oremap-{version}.zip"
    assert proc.stdout.strip().splitlines()[-1] == str(path)
    return path


def test_make_package_zip_meets_the_plugin_repository_rules(package_zip, tmp_path):
    assert repository_problems(package_zip, module_name()) == []
    meta = read_metadata(metadata_text())
    assert meta["experimental"] == "True"  # until the README's held-out figures meet their goals
    # QGIS's own reader finds exactly this plugin in the extracted zip and reads every value
    from qgis.utils import findPlugins

    with zipfile.ZipFile(package_zip) as archive:
        archive.extractall(tmp_path)
        assert archive.read("oremap/metadata.txt").decode("utf-8") == metadata_text()
    found = list(findPlugins(str(tmp_path)))
    assert [name for name, _ in found] == ["oremap"] == [module_name()]
    parser = found[0][1]
    assert parser is not None
    assert {key: parser.get("general", key) for key in parser.options("general")} == {
        key.lower(): value for key, value in meta.items()}
    # QGIS's plugin manager (its data layer) takes it as installed, compatible with this QGIS, experimental
    import sys

    from qgis.core import Qgis, QgsApplication

    python = os.path.join(QgsApplication.pkgDataPath(), "python")
    if python not in sys.path:
        sys.path.append(python)
    from pyplugin_installer import installer_data

    shown = installer_data.plugins.getInstalledPlugin("oremap", path=str(tmp_path / "oremap"), readOnly=False)
    assert shown["error"] == "", (shown["error"], shown["error_details"], Qgis.QGIS_VERSION)
    assert shown["version_installed"] == meta["version"] and shown["experimental"] is True
    for key in ("name", "description", "about", "changelog", "tags", "category"):
        assert shown[key] == meta[key], key
    assert os.path.isfile(shown["icon"])
    minimum = meta["qgisMinimumVersion"]
    maximum = meta.get("qgisMaximumVersion", minimum.split(".")[0] + ".99")
    major, minor = (int(part) for part in minimum.split(".")[:2])
    older = f"{major}.{minor - 1}.99" if minor else f"{major - 1}.98.99"
    assert not installer_data.isCompatible(older, minimum, maximum)  # a QGIS older than the minimum: refused


def test_the_checks_find_what_the_repository_refuses(package_zip, tmp_path):
    """A zip with the mistakes the checks look for: each is reported."""
    with zipfile.ZipFile(package_zip) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = members["oremap/metadata.txt"].decode("utf-8")
    meta = re.sub(r"(?m)^version=.*$", "version=0.2", meta)
    meta = re.sub(r"(?m)^qgisMinimumVersion=.*$", "qgisMinimumVersion=2.18", meta)
    meta = re.sub(r"(?m)^about=", "summary=", meta)
    meta = re.sub(r"(?m)^description=", "description=<b>OreMap</b> ", meta)
    meta = re.sub(r"(?m)^tracker=.*$", "tracker=http://bugs", meta)
    meta = re.sub(r"(?m)^experimental=.*$", "experimental=yes", meta)
    meta = re.sub(r"(?m)^category=.*$", "category=Analysis", meta)
    broken = dict(members)
    broken["oremap/metadata.txt"] = meta.encode("utf-8")
    del broken["oremap/icon.svg"], broken["oremap/LICENSE"]
    broken["oremap/core/__pycache__/raster.cpython-311.pyc"] = b"\x00"
    broken["oremap/core/_fast.cpython-311-x86_64-linux-gnu.so"] = b"\x7fELF"
    broken["README.md"] = b"outside the plugin folder"
    path = tmp_path / "broken.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in broken.items():
            archive.writestr(name, data)
    problems = repository_problems(path, "oremap")
    assert problem_codes(problems) == {"version", "qgis-version", "required", "html", "url", "boolean", "category",
                                       "icon", "licence", "cache", "compiled", "folders"}
    assert "required: about" in problems and "icon: icon.svg is not in the zip" in problems
    assert "cache: oremap/core/__pycache__/raster.cpython-311.pyc" in problems

    # a GitHub-style folder name, a lone % in a value, and a zip over the size limit
    renamed = tmp_path / "renamed.zip"
    with zipfile.ZipFile(renamed, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            data = data.replace(b"changelog=", b"changelog=closure to 100 % ") if name.endswith("metadata.txt") \
                else data
            archive.writestr(name.replace("oremap/", "oremap-0.2.0/", 1), data)
        archive.writestr("oremap-0.2.0/padding.bin", os.urandom(MAX_ZIP_BYTES))
    problems = repository_problems(renamed, "oremap")
    assert problem_codes(problems) == {"size", "folder-name", "metadata"}
    assert any(p.startswith("metadata: InterpolationSyntaxError") for p in problems)


def test_changelog_newest_entry_is_the_metadata_changelog():
    entries = changelog_entries()
    assert len(entries) >= 2  # 0.1.0 and 0.2.0 at least
    versions = [v for v, _, _ in entries]
    dates = [d for _, d, _ in entries]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    assert dates == sorted(dates, reverse=True)
    assert all(lines for _, _, lines in entries)
    meta = read_metadata(metadata_text())
    newest, date, lines = entries[0]
    assert ".".join(map(str, newest)) == meta["version"], "CHANGELOG.md's newest entry is not metadata.txt's version"
    assert meta["changelog"].splitlines() == [f"{meta['version']} - {date.isoformat()}"] + lines, (
        "metadata.txt's changelog is not CHANGELOG.md's newest entry: run `make changelog`")


def test_make_changelog_writes_the_newest_entry_into_metadata(tmp_path):
    """scripts/changelog.py (make changelog) on copies: it replaces an old changelog, escapes %, keeps the rest,
    and refuses a CHANGELOG whose newest version is not metadata.txt's."""
    spec = importlib.util.spec_from_file_location("oremap_test_changelog", os.path.join(ROOT, "scripts",
                                                                                        "changelog.py"))
    changelog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(changelog)
    log = tmp_path / "CHANGELOG.md"
    log.write_text("# Changelog\n\n## 1.1.0 - 2027-01-05\n\nAbundance:\n- Intervals at 90 % by default.\n\n"
                   "Plugin:\n- Faster start.\n\n## 1.0.0 - 2026-12-31\n\n- First.\n", encoding="utf-8")
    meta = tmp_path / "metadata.txt"
    old = ("[general]\nname=OreMap\nversion=1.1.0\nchangelog=1.0.0 - 2026-12-31\n    - First.\n"
           "author=OreMap developers\n")
    meta.write_text(old, encoding="utf-8")
    assert changelog.sync(str(log), str(meta)) is True
    text = meta.read_text(encoding="utf-8")
    assert text == ("[general]\nname=OreMap\nversion=1.1.0\nchangelog=1.1.0 - 2027-01-05\n    Abundance:\n"
                    "    - Intervals at 90 %% by default.\n    Plugin:\n    - Faster start.\n"
                    "author=OreMap developers\n")
    assert read_metadata(text)["changelog"].splitlines() == [
        "1.1.0 - 2027-01-05", "Abundance:", "- Intervals at 90 % by default.", "Plugin:", "- Faster start."]
    assert changelog.sync(str(log), str(meta)) is False  # already up to date
    # no changelog key yet: added after version=
    meta.write_text("[general]\nversion=1.1.0\nauthor=x\n", encoding="utf-8")
    changelog.sync(str(log), str(meta))
    assert meta.read_text(encoding="utf-8").startswith("[general]\nversion=1.1.0\nchangelog=1.1.0 - 2027-01-05\n")
    meta.write_text(old.replace("version=1.1.0", "version=1.0.0"), encoding="utf-8")
    with pytest.raises(ValueError, match="newest entry is 1.1.0 but metadata.txt has version=1.0.0"):
        changelog.sync(str(log), str(meta))
    assert meta.read_text(encoding="utf-8") == old.replace("version=1.1.0", "version=1.0.0")  # left alone


def test_about_names_the_optional_packages_of_each_group():
    """Each Toolbox group has a line in ``about`` that names exactly the optional packages its algorithms need
    or recommend (``REQUIRES``, ``RECOMMENDS``), so the plugin manager tells a user what to install."""
    from oremap.algorithms import ALGORITHMS
    from oremap.algorithms.base import GROUPS
    from oremap.core.engine.dependencies import OPTIONAL_PACKAGES

    needs = {group: set() for group in GROUPS}
    for module, cls in ALGORITHMS:
        algorithm = getattr(importlib.import_module(f"oremap.algorithms.{module}"), cls)
        needs[algorithm.GROUP] |= set(algorithm.REQUIRES) | set(algorithm.RECOMMENDS)
    lines = read_metadata(metadata_text())["about"].splitlines()
    for group, title in GROUPS.items():
        line = [text for text in lines if text.startswith(f"{title}: ")]
        assert len(line) == 1, f"about has no line for the {title} group"
        named = {p for p in OPTIONAL_PACKAGES if re.search(rf"\b{re.escape(p)}\b", line[0])}
        assert named == needs[group], f"{title}: about names {sorted(named)}, its algorithms use {sorted(needs[group])}"
    assert needs["hyperspectral"] == {"torch", "onnx", "onnxruntime"} and needs["evaluation"] == set()


def test_every_place_that_names_the_version_follows_metadata(qgis_app):
    from oremap.core.engine.model_format import ModelInfo, read_model_info
    from oremap.core.engine.version import plugin_version
    from oremap.processing_provider.provider import OreMapProvider

    meta = read_metadata(metadata_text())
    version = meta["version"]
    assert plugin_version() == version
    provider = OreMapProvider()
    assert provider.versionInfo() == version and f"OreMap {version} " in provider.longName()
    assert provider.id() == module_name()  # the folder name is the provider's id and the plugin's module name
    assert ModelInfo(task="spectral_classification", classes=[], input={}).oremap_version == version
    for doc in ("README.md", os.path.join("docs", "user_guide.md")):
        with open(os.path.join(ROOT, doc), encoding="utf-8") as handle:
            text = handle.read()
        named = re.findall(r"\bOreMap (\d+\.\d+\.\d+)", text) + re.findall(r"oremap-(\d+\.\d+\.\d+)\.zip", text)
        assert named and set(named) == {version}, doc
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        assert re.search(r"QGIS >= (\d+\.\d+)", handle.read()).group(1) == meta["qgisMinimumVersion"]
    # a bundled model's card names the OreMap that built it, as its ONNX metadata records it (not newer)
    models = os.path.join(ROOT, "models")
    cards = sorted(n for n in os.listdir(models) if n.endswith(".onnx"))
    assert cards
    for name in cards:
        with open(os.path.join(models, name[:-5] + ".md"), encoding="utf-8") as handle:
            card = re.search(r"\*\*Built with\*\* OreMap (\d+\.\d+\.\d+)", handle.read()).group(1)
        built = read_model_info(os.path.join(models, name)).oremap_version
        assert card == built
        assert tuple(map(int, built.split("."))) <= tuple(map(int, version.split(".")))


def test_package_leaves_out_caches_and_compiled_files(tmp_path, monkeypatch):
    """The packager itself skips what the repository refuses, even when the checkout holds it."""
    spec = importlib.util.spec_from_file_location("oremap_test_package", os.path.join(ROOT, "scripts", "package.py"))
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    root = tmp_path / "checkout"
    for entry in package.INCLUDE:
        source = os.path.join(ROOT, entry)
        if os.path.isfile(source):
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / entry)
        elif entry in ("core", "models"):
            (root / entry).mkdir(parents=True)
            (root / entry / "__init__.py").write_text("")
    (root / "core" / "__pycache__").mkdir()
    (root / "core" / "__pycache__" / "raster.cpython-311.pyc").write_bytes(b"\x00")
    (root / "core" / "stale.pyc").write_bytes(b"\x00")
    (root / "core" / "_fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    monkeypatch.setattr(package, "ROOT", str(root))
    path = package.build_zip("0.2.0", str(tmp_path / "dist"))
    problems = repository_problems(path, "oremap")
    assert problems == []
    with zipfile.ZipFile(path) as archive:
        assert "oremap/core/__init__.py" in archive.namelist()


def test_pip_commands_in_the_docs_name_the_tested_versions():
    """The README and the user guide give pip commands for the optional packages: each names the version OreMap
    pins (the installer's pins file, Dask's pin in core/engine/dependencies.py), so they cannot drift apart."""
    from oremap.core.engine import dependencies
    from oremap.core.engine.package_installer import normalise, read_pins

    pins = {normalise(n): v.split("+")[0] for g in read_pins().values() for n, v, _ in g["packages"]}
    pins.update(dask=dependencies.dask_version((3, 11)), distributed=dependencies.dask_version((3, 11)))  # the docs'
    # pip command is Python 3.11's (Debian 12); the text beside it names the release for 3.12 and later
    found = 0
    for doc in ("README.md", os.path.join("docs", "user_guide.md")):
        with open(os.path.join(ROOT, doc), encoding="utf-8") as handle:
            text = handle.read()
        for command in re.findall(r"pip install ([^`\n]*)", text):
            for name in re.findall(r"(?:^|\s)(onnxruntime|onnx|torch|skl2onnx|dask|distributed)(==[\w.+]+)?(?=[\s`]|$)",
                                   command):
                package, version = name
                assert version, f"{doc}: 'pip install {command}' names {package} without its version"
                assert version[2:] == pins[normalise(package)], f"{doc}: {package}{version}, pinned {pins[package]}"
                found += 1
        assert f"`{dependencies.dask_version((3, 13))}`" in text, f"{doc}: Dask's release for Python 3.12+ not named"
    assert found >= 7
