"""core/ is layered: the engine imports no domain; a domain imports the engine and itself, never another domain;
scale-out (``core/scaleout``) sits above the domains and may import them all, and nothing in core imports it.

The rule is in ``core/__init__.py``; this test parses the imports of every core module (relative and
absolute, at module level and inside functions) and names each import that breaks it.
"""

import ast
import os
import sys

import pytest

from conftest import ROOT

CORE = os.path.join(ROOT, "core")
ENGINE = "engine"
DOMAINS = ("hyperspectral", "abundance", "geochemistry", "sentinel2")
SCALEOUT = "scaleout"  # the layer above the domains: runs their algorithms on a cluster


def subpackage_of(module):
    """``"engine"``, a domain name, or ``None`` (not a core subpackage) of a dotted module inside core."""
    first = module.split(".")[0] if module else ""
    return first if first in (ENGINE, SCALEOUT) + DOMAINS else None


def imported_core_modules(source, package):
    """(line, dotted module relative to core) of every import of a core module in ``source``.

    ``package``: the importing module's package relative to core, e.g. ``("geochemistry",)``.
    ``from . import x`` counts as importing ``package.x``.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    base = None  # above core: the plugin package, checked by test_core_isolation
                else:
                    base = list(package[:len(package) - (node.level - 1)])
            else:
                parts = (node.module or "").split(".")
                for prefix in (["oremap", "core"], ["core"]):
                    if parts[:len(prefix)] == prefix:
                        base = []
                        node_module = ".".join(parts[len(prefix):])
                        break
                else:
                    continue
                targets = [node_module] if node_module else [a.name for a in node.names]  # module, not names
                found += [(node.lineno, t) for t in targets]
                continue
            if base is None:
                continue
            if node.module:
                found.append((node.lineno, ".".join(base + [node.module])))
            else:
                found += [(node.lineno, ".".join(base + [a.name])) for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                for prefix in (["oremap", "core"], ["core"]):
                    if parts[:len(prefix)] == prefix and len(parts) > len(prefix):
                        found.append((node.lineno, ".".join(parts[len(prefix):])))
    return found


def violations(imports_by_module):
    """Imports that break the rule: ``{"sub/x.py": [(line, module), ...]}`` -> list of messages."""
    bad = []
    for name, imports in sorted(imports_by_module.items()):
        own = name.split("/")[0] if "/" in name else None
        for line, target in imports:
            target_sub = subpackage_of(target)
            if own == SCALEOUT and target_sub != SCALEOUT and target_sub is not None:
                continue  # scale-out runs every domain's algorithms
            if target_sub is None or target_sub == own or target_sub == ENGINE:
                if own is None and target_sub in DOMAINS:  # core/__init__.py imports no domain either
                    bad.append(f"core/{name}:{line} imports {target}")
                continue
            bad.append(f"core/{name}:{line} ({own}) imports {target} ({target_sub})")
    return bad


def core_imports():
    out = {}
    for folder, dirs, files in os.walk(CORE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                rel = os.path.relpath(path, CORE).replace(os.sep, "/")
                package = tuple(rel.split("/")[:-1])
                out[rel] = imported_core_modules(open(path, encoding="utf-8").read(), package)
    return out


def test_core_has_the_engine_and_the_four_domains():
    subpackages = sorted(d for d in os.listdir(CORE) if os.path.isfile(os.path.join(CORE, d, "__init__.py")))
    assert subpackages == sorted((ENGINE, SCALEOUT) + DOMAINS)
    flat = sorted(f for f in os.listdir(CORE) if f.endswith(".py") and f != "__init__.py")
    assert flat == []  # every module lives in a subpackage


def test_domains_import_only_the_engine_and_themselves():
    imports = core_imports()
    assert sum(len(v) for v in imports.values()) > 100  # the parser sees the imports
    assert violations(imports) == []


@pytest.mark.parametrize("name, source, expected", [
    # a domain importing another domain, in every spelling
    ("abundance/x.py", "from ..hyperspectral.spectral_cnn import preprocess\n",
     ["core/abundance/x.py:1 (abundance) imports hyperspectral.spectral_cnn (hyperspectral)"]),
    ("geochemistry/x.py", "def f():\n    from ..sentinel2 import sentinel2\n",
     ["core/geochemistry/x.py:2 (geochemistry) imports sentinel2 (sentinel2)"]),
    ("sentinel2/x.py", "import oremap.core.geochemistry.idw\n",
     ["core/sentinel2/x.py:1 (sentinel2) imports geochemistry.idw (geochemistry)"]),
    ("hyperspectral/x.py", "from oremap.core.abundance import abundance\n",
     ["core/hyperspectral/x.py:1 (hyperspectral) imports abundance (abundance)"]),
    ("hyperspectral/x.py", "from oremap.core import geochemistry\n",
     ["core/hyperspectral/x.py:1 (hyperspectral) imports geochemistry (geochemistry)"]),
    # the engine importing a domain
    ("engine/x.py", "from ..hyperspectral import mapping\n",
     ["core/engine/x.py:1 (engine) imports hyperspectral (hyperspectral)"]),
    ("engine/sub/x.py", "from ...sentinel2.mine_detection import detect_mines\n",
     ["core/engine/sub/x.py:1 (engine) imports sentinel2.mine_detection (sentinel2)"]),
    # a domain or the engine importing scale-out (the layer above them)
    ("geochemistry/x.py", "from ..scaleout import batch\n",
     ["core/geochemistry/x.py:1 (geochemistry) imports scaleout (scaleout)"]),
    ("engine/x.py", "from ..scaleout.batch import run_job\n",
     ["core/engine/x.py:1 (engine) imports scaleout.batch (scaleout)"]),
    # allowed: scale-out importing the engine and every domain
    ("scaleout/x.py", "from ..hyperspectral import mapping\nfrom ..sentinel2.mine_detection import detect_mines\n"
     "from ..engine.raster import open_raster\n", []),
    # allowed: the engine, the own domain, third-party and the plugin above core
    ("abundance/x.py", "from ..engine.spectra import preprocess\nfrom . import abundance\nimport numpy\n"
     "from ...algorithms import base\n", []),
    ("engine/x.py", "from . import compute\nfrom .raster import open_raster\n", []),
])
def test_a_planted_violation_is_found(name, source, expected):
    package = tuple(name.split("/")[:-1])
    assert violations({name: imported_core_modules(source, package)}) == expected


def test_a_planted_module_fails_the_check(tmp_path, monkeypatch):
    """The whole check on a copy of core/ with one module that imports another domain."""
    import shutil

    copy = tmp_path / "core"
    shutil.copytree(CORE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sys.modules[__name__], "CORE", str(copy))
    assert violations(core_imports()) == []
    (copy / "sentinel2" / "planted.py").write_text("from ..hyperspectral.sam import spectral_angle\n")
    assert violations(core_imports()) == [
        "core/sentinel2/planted.py:1 (sentinel2) imports hyperspectral.sam (hyperspectral)"]
