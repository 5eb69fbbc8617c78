"""make demo, geochemical part: the prospectivity chain on a real stream-sediment survey, headless.

The GSWA/WAMEX survey of the shared data (1,392 samples, 123 element columns, Katanning
area, Western Australia) and its 32 gold sites go through OreMap's Processing algorithms
(``processing.run`` in a standalone QGIS):

1. ``element_selection`` on the sample points: AUC and ZAUC of every element (samples within
   2 km of a site against samples at least 4 km from every site);
2. ``idw_interpolate`` of the selected elements: log10, EPSG:32750 (the UTM zone of the
   survey), 1 km cells, nodata farther than 5 km from any sample;
3. ``evaluate_prospectivity`` of the log10 Au grid alone: the baseline;
4. ``train_prospectivity_cnn`` on that element stack with the 32 sites: spatial-block
   cross-validation, then a final model on all sites;
5. ``prospectivity_map`` (sliding window; with the full settings also a 12 x 12 grid of target
   cells);
6. ``evaluate_prospectivity`` of the map against the sites: ROC-AUC over 20 draws of
   negatives, success-rate curve, prediction-area plot.

The map is scored against the sites the final model was trained on, so its AUC is an
in-sample figure; the spatial cross-validation AUC is the out-of-sample one for the network, though the elements
(Au, Hg) were chosen by element selection on all 32 sites, the held-out ones included (with Au alone the
cross-validation mean was 0.830 instead of 0.844 in an audit, inside the fold spread).

Usage: ``python scripts/demo_prospectivity.py [OUT_DIR] [--small]`` (``make demo`` runs it
with the environment the Makefile sets). ``test/test_geochem_chain.py`` runs :func:`chain`
with :data:`SMALL`.

Data: Geological Survey of Western Australia (GSWA/WAMEX), CC BY 4.0; compiled by the
GeoChemAD / OpenGADBench benchmark (MIT).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless import ROOT, demo_main  # noqa: E402

SHARED = os.environ.get("OREMAP_SHARED_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
SURVEY = os.path.join(SHARED, "geochem", "area1_sediment_au.csv")
SITES = os.path.join(SHARED, "geochem", "area1_sediment_au_site.csv")
ATTRIBUTION = ("Geological Survey of Western Australia (GSWA/WAMEX), CC BY 4.0; compiled by the GeoChemAD / "
               "OpenGADBench benchmark (MIT)")

# Evaluation protocol of the benchmark: positives within 2 km of a site, negatives at least 4 km from all.
PROTOCOL = {"POSITIVE_RADIUS": 2000.0, "NEGATIVE_MIN_DISTANCE": 4000.0}
IDW = {"CELL_SIZE": 1000.0, "NEIGHBOURS": 12, "POWER": 2.0, "MAX_DISTANCE": 5000.0, "LOG10": True}

FULL = {
    "train": {"WINDOW": 16, "DEPTH": 0, "WIDTH": 16, "EPOCHS": 30, "FOLDS": 5, "NEGATIVES_PER_POSITIVE": 10,
              "JITTER_COPIES": 8, "BATCH_SIZE": 32, "LEARNING_RATE": 0.05, "SEED": 42, "THREADS": 1},
    "stride": 1, "grid": True, "draws": 20,
}
"""The demo: ResNet-18 of width 16, 30 epochs, 5 spatial folds, windows scored at every cell."""

SMALL = {
    "train": {"WINDOW": 16, "DEPTH": 0, "WIDTH": 8, "EPOCHS": 4, "FOLDS": 3, "NEGATIVES_PER_POSITIVE": 5,
              "JITTER_COPIES": 2, "BATCH_SIZE": 32, "LEARNING_RATE": 0.05, "SEED": 42, "THREADS": 1},
    "stride": 2, "grid": False, "draws": 20,
}
"""The test: the same chain with a narrow network trained briefly (a few seconds per fold)."""


def csv_uri(path, types=True):
    """A survey CSV as a Processing layer string: the delimited-text provider, points from the X/Y columns in
    longitude/latitude (EPSG:4326), numeric columns detected."""
    return (f"delimitedtext://file://{path}?type=csv&delimiter=,&xField=X&yField=Y&crs=EPSG:4326&geomType=point"
            + ("&detectTypes=yes" if types else ""))


def _csv_measures(path):
    """The measure/value block at the top of an evaluation CSV."""
    import csv

    with open(path, encoding="utf-8-sig") as fh:
        rows = []
        for row in csv.reader(fh):
            if not row:
                break
            rows.append(row)
    return {name: value for name, value in rows[1:]}


def chain(run, out, settings=FULL, log=print):
    """Run the six steps into ``out`` with ``run(name, params)`` (``oremap:<name>``); return the numbers.

    Returns a dict: ``selection`` (rows of the element table, highest ZAUC first), ``selected``,
    ``idw``, ``baseline`` and ``map_evaluation`` (measures of the evaluation CSVs), ``cv``
    (the training outputs) and ``paths``.
    """
    import pandas as pd

    for path in (SURVEY, SITES):
        if not os.path.exists(path):
            raise FileNotFoundError(f"The shared survey data is missing: {path} (set OREMAP_SHARED_DATA).")
    os.makedirs(out, exist_ok=True)
    samples, sites = csv_uri(SURVEY), csv_uri(SITES, types=False)
    paths = {name: os.path.join(out, name) for name in (
        "elements.html", "elements.csv", "stack.tif", "baseline_au.html", "baseline_au.csv", "model.onnx",
        "training.html", "prospectivity.tif", "target_cells.gpkg", "prospectivity_grid.tif", "evaluation.html",
        "evaluation.csv")}

    log("1. Element selection on the 1,392 sample points (AUC, ZAUC; 2 km / 4 km from the 32 sites)")
    selection = run("element_selection", {"POINTS": samples, "DEPOSITS": sites, **PROTOCOL,
                                          "OUTPUT_HTML": paths["elements.html"], "OUTPUT_CSV": paths["elements.csv"]})
    table = pd.read_csv(paths["elements.csv"], encoding="utf-8-sig")
    selected = [s for s in selection["SELECTED"].split(";") if s]
    if not selected:
        raise RuntimeError("No element was selected.")

    log(f"2. IDW of {', '.join(selected)} (log10, 1 km cells, nodata beyond 5 km of a sample)")
    idw = run("idw_interpolate", {"INPUT": samples, "FIELDS": selected, **IDW, "OUTPUT": paths["stack.tif"]})

    baseline = None
    if "Au_ppm" in selected:
        log("3. Baseline: the log10 Au grid itself as the score")
        run("evaluate_prospectivity", {
            "SCORE_RASTER": paths["stack.tif"], "SCORE_BAND": selected.index("Au_ppm") + 1, "DEPOSITS": sites,
            **PROTOCOL, "N_DRAWS": settings["draws"], "SEED": 0, "OUTPUT_HTML": paths["baseline_au.html"],
            "OUTPUT_CSV": paths["baseline_au.csv"]})
        baseline = _csv_measures(paths["baseline_au.csv"])

    log("4. Training the ResNet with spatial-block cross-validation")
    cv = run("train_prospectivity_cnn", {"INPUT": paths["stack.tif"], "DEPOSITS": sites, **settings["train"],
                                         "OUTPUT_MODEL": paths["model.onnx"], "OUTPUT_REPORT": paths["training.html"]})

    log(f"5. Prospectivity map: a window every {settings['stride']} cell(s)")
    mapped = run("prospectivity_map", {"INPUT": paths["stack.tif"], "MODEL_FILE": paths["model.onnx"], "MODE": 1,
                                       "STRIDE": settings["stride"], "DEPOSITS": sites,
                                       "OUTPUT": paths["prospectivity.tif"], "OUTPUT_CELLS": None})
    grid = None
    if settings.get("grid"):
        grid = run("prospectivity_map", {"INPUT": paths["stack.tif"], "MODEL_FILE": paths["model.onnx"], "MODE": 0,
                                         "GRID_ROWS": 12, "GRID_COLS": 12, "DEPOSITS": sites,
                                         "OUTPUT": paths["prospectivity_grid.tif"],
                                         "OUTPUT_CELLS": paths["target_cells.gpkg"]})

    log("6. Evaluation of the map against the 32 sites")
    evaluation = run("evaluate_prospectivity", {
        "SCORE_RASTER": paths["prospectivity.tif"], "DEPOSITS": sites, **PROTOCOL, "N_DRAWS": settings["draws"],
        "SEED": 0, "OUTPUT_HTML": paths["evaluation.html"], "OUTPUT_CSV": paths["evaluation.csv"]})

    return {
        "selection": table.to_dict("records"), "selected": selected, "idw": dict(idw), "baseline": baseline,
        "cv": {k: cv[k] for k in ("CV_AUC_MEAN", "CV_AUC_SD", "CV_ACCURACY", "CV_F1", "DEPOSITS_USED",
                                  "CV_DEPOSITS_VALIDATED")},
        "map": {k: mapped[k] for k in ("N_CELLS", "TOP_PROBABILITY", "DEPOSIT_CELLS")},
        "grid": None if grid is None else {k: grid[k] for k in ("N_CELLS", "TOP_PROBABILITY", "DEPOSIT_CELLS")},
        "map_evaluation": _csv_measures(paths["evaluation.csv"]), "evaluation_outputs": dict(evaluation),
        "paths": paths, "settings": settings,
    }


def _f(value, digits=3):
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "n/a"


def summary_lines(numbers):
    """Plain-text summary of :func:`chain`'s numbers."""
    t = numbers["settings"]["train"]
    lines = [f"Geochemical prospectivity, GSWA/WAMEX stream sediments (1,392 samples), 32 Au sites. Data: "
             f"{ATTRIBUTION}.",
             "Element selection (2 km positives, negatives >= 4 km; ZAUC >= 2.58), the ten highest ZAUC:"]
    for row in numbers["selection"][:10]:
        lines.append(f"  {row['element']:<10s} AUC {_f(row['auc'])}  ZAUC {_f(row['zauc'], 2):>6s}  "
                     f"{'selected' if row['selected'] else ''}")
    lines.append(f"Selected: {', '.join(numbers['selected'])}")
    lines.append(f"IDW stack: log10, {numbers['idw']['OUTPUT_CRS']}, 1 km cells, {numbers['idw']['SAMPLES']} "
                 "sample locations, nodata beyond 5 km of a sample")

    def measures(m):
        return (f"ROC-AUC {_f(m['ROC-AUC, mean over draws'])} +/- {_f(m['ROC-AUC, standard deviation over draws'])} "
                f"(20 draws), success-rate AUC {_f(m['Success-rate AUC'])}, P-A intersection "
                f"{_f(m['P-A intersection: prediction rate (%)'], 1)} % of sites in "
                f"{_f(m['P-A intersection: area (%)'], 1)} % of the area; "
                f"{m['Deposits with a score (success rate, P-A)']} of {m['Deposits']} sites on the map")

    if numbers["baseline"]:
        lines.append("Baseline, the log10 Au grid as score: " + measures(numbers["baseline"]))
    cv = numbers["cv"]
    lines.append(f"ResNet-{[18, 34, 50][t['DEPTH']]}, width {t['WIDTH']}, window {t['WINDOW']} cells, "
                 f"{t['EPOCHS']} epochs, {t['FOLDS']} spatial folds, seed {t['SEED']}: {cv['DEPOSITS_USED']} deposit "
                 f"windows; spatial CV AUC {_f(cv['CV_AUC_MEAN'])} +/- {_f(cv['CV_AUC_SD'])} (over folds, "
                 f"{cv['CV_DEPOSITS_VALIDATED']} of {cv['DEPOSITS_USED']} deposits validated), accuracy "
                 f"{_f(cv['CV_ACCURACY'])}, F1 {_f(cv['CV_F1'])}")
    lines.append(f"Map (window every {numbers['settings']['stride']} cell): "
                 + measures(numbers["map_evaluation"]) + " (in-sample: the final model saw these sites)")
    if numbers["grid"]:
        g = numbers["grid"]
        lines.append(f"12 x 12 target cells: {g['N_CELLS']} scored, {g['DEPOSIT_CELLS']} hold a site, top probability "
                     f"{_f(g['TOP_PROBABILITY'])}")
    return lines


def main(argv):
    demo_main(argv, "prospectivity", chain, summary_lines, FULL, SMALL,
              to_json=lambda numbers: {k: v for k, v in numbers.items() if k != "selection"})


if __name__ == "__main__":
    main(sys.argv[1:])
