"""The README's model comparison on the real survey, headless: prospectivity models side by side.

1. the demo's element stack (``scripts/demo_prospectivity.py``: element selection, then IDW of the
   selected elements, log10, 1 km cells, nodata beyond 5 km of a sample), or with ``--six`` the user
   guide's stack (Au, As, Cu, Sb, Bi, W chosen beforehand, 500 m cells);
2. ``train_prospectivity_model`` with its default settings, the 32 gold sites named by ``SHORT_NAME``
   and the survey's samples for the distances of unused sites.

Usage: ``python scripts/compare_prospectivity.py [OUT_DIR] [--six]`` with the environment the
Makefile sets (``make demo`` does not run it: it takes a few minutes). Writes ``comparison.html``,
the models in ``models/`` and ``summary.txt``.

Data: Geological Survey of Western Australia (GSWA/WAMEX), CC BY 4.0; compiled by the GeoChemAD /
OpenGADBench benchmark (MIT).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless import ROOT, run_headless  # noqa: E402

import demo_prospectivity as demo  # noqa: E402

SIX = ["Au_ppm", "As_ppm", "Cu_ppm", "Sb_ppm", "Bi_ppm", "W_ppm"]


def chain(run, out, six=False):
    os.makedirs(out, exist_ok=True)
    samples, sites = demo.csv_uri(demo.SURVEY), demo.csv_uri(demo.SITES, types=False)
    stack = os.path.join(out, "stack.tif")
    if six:
        fields, idw = SIX, dict(demo.IDW, CELL_SIZE=500.0)
    else:
        selection = run("element_selection", {"POINTS": samples, "DEPOSITS": sites, **demo.PROTOCOL,
                                              "OUTPUT_HTML": os.path.join(out, "elements.html"),
                                              "OUTPUT_CSV": os.path.join(out, "elements.csv")})
        fields, idw = [s for s in selection["SELECTED"].split(";") if s], demo.IDW
    run("idw_interpolate", {"INPUT": samples, "FIELDS": fields, **idw, "OUTPUT": stack})
    return run("train_prospectivity_model", {
        "INPUT": stack, "DEPOSITS": sites, "DEPOSIT_NAME": "SHORT_NAME", "SAMPLES": samples,
        "OUTPUT_FOLDER": os.path.join(out, "models"), "OUTPUT_REPORT": os.path.join(out, "comparison.html")})


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    six = "--six" in argv
    name = "comparison" + ("_six" if six else "")
    out = os.path.abspath(args[0] if args else os.path.join(ROOT, "demo_output", name))
    result = run_headless(lambda run: chain(run, out, six))
    lines = [f"{k}: {v}" for k, v in result.items()]
    with open(os.path.join(out, "summary.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
