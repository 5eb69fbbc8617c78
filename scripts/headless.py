"""Standalone QGIS with OreMap's provider, for the demo scripts (``make demo``).

:func:`run_headless` starts a QGIS application without a display, initialises Processing,
registers the checkout as the plugin package ``oremap`` with its provider, calls
``work(run)`` where ``run(name, params)`` is ``processing.run("oremap:<name>", params)``,
and shuts QGIS down again; it returns what ``work`` returns.
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_plugin():
    """The checkout as the package ``oremap`` (the name QGIS gives the plugin folder)."""
    if "oremap" not in sys.modules:
        spec = importlib.util.spec_from_file_location("oremap", os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules["oremap"] = module
        spec.loader.exec_module(module)


def run_headless(work):
    """``work(run)`` inside a standalone QGIS with OreMap's provider registered; returns its result."""
    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(os.path.join(QgsApplication.prefixPath(), "share", "qgis", "python", "plugins"))
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    import_plugin()
    from oremap.processing_provider.provider import OreMapProvider

    provider = OreMapProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        return work(lambda name, params: processing.run(f"oremap:{name}", params))
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
        app.exitQgis()


def demo_main(argv, name, chain, summary_lines, full, small, to_json=None):
    """A demo script's entry point: ``[OUT_DIR] [--small]`` (default ``demo_output/<name>``), then
    ``chain(run, out, settings)`` headless, then ``summary.txt`` (also printed) and ``numbers.json``
    (``to_json(numbers)``, all the numbers by default) in the output folder.

    The output folder is emptied first only when it is empty or holds an earlier demo's output
    (its ``summary.txt``); any other folder is refused, so a mistyped argument deletes nothing.
    """
    import json
    import shutil

    args = [a for a in argv if not a.startswith("--")]
    out = os.path.abspath(args[0] if args else os.path.join(ROOT, "demo_output", name))
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.isfile(os.path.join(out, "summary.txt")):
            sys.exit(f"{out} is not empty and holds no earlier demo output: choose an empty or new folder.")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    numbers = run_headless(lambda run: chain(run, out, small if "--small" in argv else full))
    lines = summary_lines(numbers)
    with open(os.path.join(out, "summary.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "numbers.json"), "w", encoding="utf-8") as fh:
        json.dump(to_json(numbers) if to_json else numbers, fh, indent=1, default=str)
    print("\n".join(lines))
    return numbers
