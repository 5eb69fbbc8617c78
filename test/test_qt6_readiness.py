"""QGIS 4 readiness (issue 25): no API that PyQt6 removed, in any module of the plugin.

A static scan (AST) of every module: Qt only through ``qgis.PyQt``; no ``exec_()`` or ``print_()``; every
enum of a Qt class written scoped (``Qt.AlignmentFlag.AlignCenter``, not ``Qt.AlignCenter``; PyQt6 has only
the scoped names, PyQt5 5.15 has both); no ``QVariant`` field types, no ``QRegExp``, ``QDesktopWidget`` or
other classes Qt 6 dropped. Then every module is imported here (Qt 5), and where the machine has PyQt6
(Debian: python3-pyqt6) each scoped enum the code uses is looked up in PyQt6 itself, in a separate process.
"""

import ast
import importlib
import json
import os
import subprocess

import pytest

from conftest import ROOT

PACKAGES = ["algorithms", "core", "processing_provider", "ui"]
TOP = ["__init__.py", "plugin.py"]
REMOVED_CLASSES = {"QRegExp", "QRegExpValidator", "QDesktopWidget", "QGLWidget", "QSound", "QTextCodec",
                   "QStringListModel_", "QMatrix", "QWebView", "QtWebKit", "QtWebKitWidgets"}
REMOVED_METHODS = {"exec_", "print_"}
ALLOW_MARK = "qt6-scan: allow"


def plugin_modules():
    """(path relative to the plugin, dotted module name under ``oremap``) of every module."""
    found = [(name, "oremap" if name == "__init__.py" else "oremap." + name[:-3]) for name in TOP]
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, name), ROOT)
                    dotted = rel[:-3].replace(os.sep, ".")
                    found.append((rel, "oremap." + (dotted[:-9] if dotted.endswith(".__init__") else dotted)))
    return found


def qt_names(tree):
    """{local name: (Qt module, class)} of the classes imported from qgis.PyQt.*, and the direct PyQt imports."""
    names, direct = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("qgis.PyQt."):
                for alias in node.names:
                    names[alias.asname or alias.name] = (node.module.split(".")[-1], alias.name)
            elif node.module.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6"):
                direct.append(node.lineno)
        elif isinstance(node, ast.Import):
            direct += [node.lineno for a in node.names if a.name.split(".")[0] in ("PyQt5", "PyQt6")]
    return names, direct


def scan(source, path="<string>"):
    """``(problems, scoped)``: sentences naming each PyQt6-removed use, and the scoped enums used as
    ``[(Qt module, class, enum, member)]``."""
    tree = ast.parse(source, path)
    lines = source.splitlines()
    names, direct = qt_names(tree)
    problems = [f"{path}:{n}: imports PyQt directly; use qgis.PyQt" for n in direct]
    scoped = []
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def allowed(node):
        return ALLOW_MARK in lines[node.lineno - 1]

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in REMOVED_METHODS and isinstance(parents.get(node), ast.Call):
            problems.append(f"{path}:{node.lineno}: .{node.attr}() is removed in PyQt6; use .{node.attr[:-1]}()")
        if isinstance(node, ast.Name) and node.id in REMOVED_CLASSES and not allowed(node):
            problems.append(f"{path}:{node.lineno}: {node.id} does not exist in Qt 6")
        if isinstance(node, ast.alias) and node.name in REMOVED_CLASSES:
            problems.append(f"{path}: imports {node.name}, which does not exist in Qt 6")
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names):
            continue
        module, cls = names[node.value.id]
        if not node.attr[:1].isupper():
            continue  # methods, signals
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            if parent.attr[:1].isupper() or parent.attr[:1] == "_":
                scoped.append((module, cls, node.attr, parent.attr))
            continue
        if isinstance(parent, ast.Call) and parent.func is node:
            continue  # a nested class constructed
        if cls == "QVariant" and not allowed(node):
            problems.append(f"{path}:{node.lineno}: QVariant.{node.attr}: PyQt6 has no QVariant types; use "
                            "algorithms/qt_compat.py")
        elif not allowed(node):
            problems.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr} is an unscoped enum, removed in "
                            f"PyQt6; write it {node.value.id}.<Enum>.{node.attr}")
    return problems, scoped


def test_the_scan_finds_what_pyqt6_removed():
    code = ("from qgis.PyQt.QtCore import Qt, QVariant\nfrom qgis.PyQt.QtWidgets import QDialogButtonBox, QMenu\n"
            "import PyQt5\nd.exec_()\nx = Qt.AlignCenter\ny = Qt.AlignmentFlag.AlignCenter\nt = QVariant.Int\n"
            "b = QDialogButtonBox.Ok | QDialogButtonBox.StandardButton.Cancel\nm = QMenu()\nm.exec()\n")
    problems, scoped = scan(code)
    assert sorted((int(p.split(":")[1]), p.split(": ", 1)[1].split(" ")[0]) for p in problems) == [
        (3, "imports"), (4, ".exec_()"), (5, "Qt.AlignCenter"), (7, "QVariant.Int:"), (8, "QDialogButtonBox.Ok")]
    assert sorted(scoped) == [("QtCore", "Qt", "AlignmentFlag", "AlignCenter"),
                              ("QtWidgets", "QDialogButtonBox", "StandardButton", "Cancel")]


#: folders of Python the plugin does not ship but that runs inside QGIS all the same (the tests in pytest-qgis,
#: the scripts and benches through qgis_process or the QGIS API): they must run on QGIS 4 too
DEVELOPER_FOLDERS = ["test", "bench", "scripts"]


def module_sources():
    """(path relative to the plugin, source) of every module, test, bench and script."""
    paths = [rel for rel, _ in plugin_modules()]
    paths += sorted(os.path.join(folder, name) for folder in DEVELOPER_FOLDERS
                    for name in os.listdir(os.path.join(ROOT, folder)) if name.endswith(".py"))
    for rel in paths:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
            yield rel, fh.read()


def all_scoped():
    problems, scoped = [], set()
    for rel, source in module_sources():
        found, used = scan(source, rel)
        problems += found
        scoped.update(used)
    return problems, sorted(scoped)


def test_no_pyqt6_removed_api_in_any_module():
    """The plugin's modules, and the tests, benches and scripts (on QGIS 4 the suite must run to show anything:
    the tests built fields with ``QVariant.Double`` and images with ``QImage.Format_RGB888``)."""
    problems, scoped = all_scoped()
    assert problems == []
    assert ("QtCore", "Qt", "DockWidgetArea", "RightDockWidgetArea") in scoped  # the scan sees the plugin's enums
    assert ("QtGui", "QImage", "Format", "Format_RGB888") in scoped  # and the tests'


def test_every_module_imports(qgis_app):
    for _, module in plugin_modules():
        importlib.import_module(module)


def test_scoped_enums_exist_in_pyqt6(tmp_path):
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import PyQt6.QtWidgets"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("PyQt6 is not installed here (Debian: apt install python3-pyqt6)")
    _, scoped = all_scoped()
    code = (
        "import json, sys\nfrom PyQt6 import QtCore, QtGui, QtWidgets\n"
        "mods = {'QtCore': QtCore, 'QtGui': QtGui, 'QtWidgets': QtWidgets}\nmissing = []\n"
        "for module, cls, enum, member in json.load(sys.stdin):\n"
        "    owner = getattr(mods[module], cls, None) or getattr(QtGui, cls, None)\n"
        "    value = getattr(getattr(owner, enum, None), member, None)\n"
        "    if value is None:\n        missing.append(f'{module}.{cls}.{enum}.{member}')\n"
        "print(json.dumps(missing))\n")
    proc = subprocess.run([python, "-c", code], input=json.dumps(scoped), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert len(scoped) >= 10


def qt_only_modules():
    """Modules whose imports at load time are Qt (through qgis.PyQt) and OreMap's core: no qgis.core or qgis.gui."""
    found = []
    for rel, module in plugin_modules():
        if not rel.startswith("ui"):
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        qt = any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith("qgis.PyQt") for n in imports)
        other = [n for n in imports if isinstance(n, ast.Import) and any(a.name.startswith(("qgis", "processing"))
                                                                          for a in n.names)]
        other += [n for n in imports if isinstance(n, ast.ImportFrom) and (
            (n.level == 0 and (n.module or "").startswith(("qgis", "processing"))
             and not n.module.startswith("qgis.PyQt"))
            or (n.level > 0 and not (n.module or "").startswith("core")))]
        if qt and not other:
            found.append(module)
    return found


def test_qt_only_modules_run_on_pyqt6(tmp_path):
    """Where PyQt6 is installed, the modules that need only Qt are imported with qgis.PyQt mapped to PyQt6 (as on a
    QGIS 4 build), and the package installer's dialog is built and driven."""
    python = "/usr/bin/python3"
    if subprocess.run([python, "-c", "import PyQt6.QtWidgets"], capture_output=True).returncode != 0:
        pytest.skip("PyQt6 is not installed here (Debian: apt install python3-pyqt6)")
    modules = qt_only_modules()
    assert "oremap.ui.install_packages" in modules
    shim = tmp_path / "shim" / "qgis" / "PyQt"
    shim.mkdir(parents=True)
    (shim.parent / "__init__.py").write_text("")
    (shim / "__init__.py").write_text("")
    (shim / "QtCore.py").write_text("from PyQt6.QtCore import *  # noqa\n")
    (shim / "QtGui.py").write_text("from PyQt6.QtGui import *  # noqa\n")
    # QGIS's own shim for Qt 6 keeps QAction importable from QtWidgets
    (shim / "QtWidgets.py").write_text("from PyQt6.QtWidgets import *  # noqa\n"
                                       "from PyQt6.QtGui import QAction  # noqa\n")
    code = (
        "import importlib, sys\nsys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from PyQt6.QtWidgets import QApplication\napp = QApplication([])\n"
        "for name in sys.argv[4:]:\n    importlib.import_module(name)\n"
        "from oremap.ui.install_packages import InstallPackagesDialog\n"
        "d = InstallPackagesDialog(sys.argv[3])\nprint(d.groups())\nd.boxes['torch'].setChecked(True)\n"
        "print(d.groups())\nd.done_installing(False, 'no network')\nprint(d.log.toPlainText())\n"
        "print(d.buttons.standardButtons() == d.buttons.StandardButton.Close)\nd.reject()\n")
    proc = subprocess.run([python, "-c", code, str(tmp_path / "shim"), os.path.join(ROOT, ".build", "plugins"),
                           str(tmp_path / "packages"), *modules], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["['run']", "['run', 'torch']", "Failed. no network", "True"]


def test_field_types_follow_qt_not_only_the_qgis_version(monkeypatch):
    """The Qt 6 builds of QGIS 3.34 and 3.36 have no QVariant.Int: qt_compat chose the QVariant branch by the QGIS
    version alone, and four algorithms would not load there. A QVariant without the Qt 5 types gets QMetaType."""
    import importlib

    from qgis.core import Qgis
    from qgis.PyQt import QtCore

    from oremap.algorithms import qt_compat

    class Qt6Variant:  # PyQt6's QVariant: no QVariant.Type members
        pass

    try:
        monkeypatch.setattr(Qgis, "QGIS_VERSION_INT", 33600)
        monkeypatch.setattr(QtCore, "QVariant", Qt6Variant)
        importlib.reload(qt_compat)
        assert (qt_compat.INT, qt_compat.DOUBLE, qt_compat.STRING, qt_compat.BOOL) == (
            QtCore.QMetaType.Type.Int, QtCore.QMetaType.Type.Double, QtCore.QMetaType.Type.QString,
            QtCore.QMetaType.Type.Bool)
    finally:
        monkeypatch.undo()
        importlib.reload(qt_compat)
    if Qgis.QGIS_VERSION_INT < 33800:
        assert (qt_compat.INT, qt_compat.BOOL) == (QtCore.QVariant.Int, QtCore.QVariant.Bool)  # QGIS 3.22 on Qt 5


#: QGIS calls that QGIS deprecates (so QGIS 4 drops), with what replaces them, as QGIS 3.40 warns of them.
DEPRECATED_QGIS = {"parameterAsFields": "parameterAsStrings (QGIS 3.32), through OreMapAlgorithm.field_names"}
QGIS4_ALLOW_MARK = "qgis4-scan: allow"


def deprecated_calls(source, path="<string>"):
    """Sentences naming each call of a deprecated QGIS method not marked as the fallback for older QGIS."""
    lines = source.splitlines()
    return [f"{path}:{node.lineno}: {node.func.attr}() is deprecated; use {DEPRECATED_QGIS[node.func.attr]}"
            for node in ast.walk(ast.parse(source, path))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in DEPRECATED_QGIS and QGIS4_ALLOW_MARK not in lines[node.lineno - 1]]


def test_no_deprecated_qgis_call_and_field_names_takes_the_newer_call(processing_provider):
    """QGIS 3.40 warned of parameterAsFields (deprecated in 3.32) in every geochemistry run, and QGIS 4 drops
    deprecated calls. The scan finds it; no module calls it but the base class's fallback for QGIS before 3.32."""
    assert deprecated_calls("x = self.parameterAsFields(p, 'F', c)\n") == [
        "<string>:1: parameterAsFields() is deprecated; use " + DEPRECATED_QGIS["parameterAsFields"]]
    assert [p for rel, source in module_sources() for p in deprecated_calls(source, rel)] == []
    alg = next(a for a in processing_provider.algorithms() if a.name() == "idw_interpolate").create()
    alg.parameterAsStrings = lambda parameters, name, context: ["from", name]   # as QGIS 3.32 and later have it
    assert alg.field_names({}, "FIELDS", None) == ["from", "FIELDS"]
