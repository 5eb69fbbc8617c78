"""core/ must never import qgis: it is the science, usable and testable from plain Python."""

import ast
import os
import subprocess
import sys

from conftest import ROOT

CORE = os.path.join(ROOT, "core")


def core_modules():
    """(path relative to core/, absolute path) of every module in core/ and its subpackages."""
    for folder, dirs, files in os.walk(CORE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                yield os.path.relpath(path, CORE), path


def test_no_qgis_import_statement_in_core():
    offenders = []
    for name, path in core_modules():
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            offenders += [f"{name}:{node.lineno} {m}" for m in modules
                          if m.split(".")[0] in ("qgis", "PyQt5", "PyQt6", "processing")]
    assert offenders == []


def test_core_imports_in_plain_python_without_qgis():
    code = (
        "import importlib, pkgutil, sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('oremap', r'{ROOT}/__init__.py', "
        f"submodule_search_locations=[r'{ROOT}'])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['oremap'] = m; spec.loader.exec_module(m)\n"
        "import oremap.core as core\n"
        "names = [n for _, n, _ in pkgutil.walk_packages(core.__path__, 'oremap.core.')]\n"
        "for n in names: importlib.import_module(n)\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('qgis', 'PyQt5', 'processing')]\n"
        "print(len(names), bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(proc.stdout.split()[0]) >= 30  # every core module (subpackages and their modules) was imported
