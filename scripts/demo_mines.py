"""make demo, Sentinel-2 part: mine detection trained and checked on scenes with known mines, headless.

No real Sentinel-2 scene with mapped mine footprints ships with OreMap, so the scenes are the test
fixtures of ``test/s2_scene.py``: real BigEarthNet L2A backgrounds (the six patches of the shared
data, mosaicked) with open pits, waste dumps, tailings ponds and haul roads painted in from USGS
library spectra convolved to the Sentinel-2 bands, mixed at sub-pixel edges, with sensor noise.
The true footprint of every mine is known, so the maps can be scored.

Through OreMap's Processing algorithms (``processing.run`` in a standalone QGIS):

1. ``s2_indices`` of the unseen scene;
2. ``train_mine_segmentation``: a U-Net on a 768 x 768 scene (26 mines), IoU and F1 on held-out
   spatial blocks;
3. ``detect_mines`` with the U-Net on another scene (480 x 480, 10 mines, other backgrounds
   layout and mines): probability, mask, footprint polygons of at least 0.5 ha;
4. ``train_mine_classifier``: gradient boosting on 160 competition-style patches of 120 pixels
   (folder + ``labels.csv``), a quarter of them with a mine, nested spatially
   grouped cross-validation;
5. ``detect_mines`` with that classifier on the unseen scene (120-pixel patches every 60 pixels);
6. ``detect_mines`` with the U-Net and with the classifier on each of the six real BigEarthNet patches
   as delivered (per-band files at 10/20/60 m): no mines there, so every footprint found is a false
   alarm.

Scores computed here, independently of the algorithms: pixel IoU, F1, precision and recall of the
U-Net's mask against the true footprints (pixels at least half covered by mine surfaces), the
mines found (a true mine outline touched by a footprint) and the footprints touching no mine; the
classifier's F1 on 80 new patches (20 with a mine).

Usage: ``python scripts/demo_mines.py [OUT_DIR] [--small]`` (``make demo`` runs it);
``test/test_mine_demo.py`` runs :func:`chain` with :data:`SMALL`.

Data: BigEarthNet (Sumbul et al. 2019), CDLA-Permissive-1.0, contains modified Copernicus Sentinel
data 2017-2018; USGS Spectral Library Version 7 (Kokaly et al. 2017), public domain.
"""

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless import ROOT, demo_main  # noqa: E402

ATTRIBUTION = ("backgrounds: BigEarthNet (Sumbul et al. 2019), CDLA-Permissive-1.0, contains modified Copernicus "
               "Sentinel data 2017-2018; mine surfaces: USGS Spectral Library Version 7, public domain")

FULL = {
    "train_size": 768, "test_size": 480, "patches": (40, 120), "new_patches": (20, 60),
    "unet": {"TILE": 128, "DEPTH": 4, "WIDTH": 16, "EPOCHS": 30, "BLOCK_TILES": 2, "SEED": 0},
    "classifier": {"FOLDS": 5, "INNER_FOLDS": 3, "SEED": 0},
    "stride": 60, "min_area": 0.5,
}
"""The demo: the U-Net at its default size, 30 epochs (under a minute on two cores)."""

SMALL = {
    "train_size": 384, "test_size": 240, "patches": (12, 36), "new_patches": (6, 18),
    "unet": {"TILE": 64, "DEPTH": 3, "WIDTH": 8, "EPOCHS": 8, "BLOCK_TILES": 2, "SEED": 0, "LEARNING_RATE": 0.005},
    "classifier": {"FOLDS": 3, "INNER_FOLDS": 2, "SEED": 0},
    "stride": 60, "min_area": 0.5,
}
"""The test: smaller scenes and a narrow U-Net trained briefly."""


def _fixtures():
    sys.path.insert(0, os.path.join(ROOT, "test"))
    import s2_scene

    return s2_scene


def _read_mask(path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1)


def pixel_scores(predicted, truth):
    """IoU, F1, precision, recall (and the counts) of a boolean mask against the truth."""
    from oremap.core.sentinel2.mine_segmentation import pixel_scores as scores

    return scores((predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum(),
                  (~predicted & ~truth).sum())   # tn too: numbers.json said 0


def mines_found(footprints_path, mines_path):
    """``(found, n_mines, false_footprints, n_footprints)``: true mine outlines touched by a detected footprint,
    and detected footprints touching no mine outline."""
    import geopandas as gpd

    truth = gpd.read_file(mines_path)
    truth = truth[truth["feature"] == "mine"]
    found_gdf = gpd.read_file(footprints_path)
    if found_gdf.empty:
        return 0, len(truth), 0, 0
    found_gdf = found_gdf.to_crs(truth.crs)
    hit = [bool(found_gdf.intersects(g).any()) for g in truth.geometry]
    false = [not bool(truth.intersects(g).any()) for g in found_gdf.geometry]
    return int(sum(hit)), len(truth), int(sum(false)), len(found_gdf)


def chain(run, out, settings=FULL, log=print):
    """Run the steps into ``out`` with ``run(name, params)`` (``oremap:<name>``); return the numbers."""
    from oremap.core.sentinel2 import mine_classifier as mc
    from oremap.core.sentinel2 import patch_sets

    s2 = _fixtures()
    os.makedirs(out, exist_ok=True)
    p = {name: os.path.join(out, name) for name in (
        "unseen_indices.tif", "unet.onnx", "unet_report.html", "unet_probability.tif", "unet_mask.tif",
        "unet_mines.gpkg", "classifier.onnx", "classifier_report.html", "classifier_probability.tif",
        "classifier_mask.tif", "classifier_mines.gpkg")}
    n = settings
    log(f"Scenes: training {n['train_size']}^2, unseen {n['test_size']}^2 pixels of 10 m; "
        f"{n['patches'][0]} + {n['patches'][1]} training patches")
    train = s2.make_scene(os.path.join(out, "training_scene"), seed=0, size=(n["train_size"],) * 2)
    unseen = s2.make_scene(os.path.join(out, "unseen_scene"), seed=1, size=(n["test_size"],) * 2)
    labels = s2.make_patches(os.path.join(out, "patches"), *n["patches"], size=120, seed=0)
    new_labels = s2.make_patches(os.path.join(out, "new_patches"), *n["new_patches"], size=120, seed=1)

    log("1. Spectral indices of the unseen scene")
    run("s2_indices", {"INPUT": unseen["raster"], "OUTPUT": p["unseen_indices.tif"]})

    log(f"2. U-Net on the training scene ({train['n_mines']} mines)")
    unet = run("train_mine_segmentation", {"INPUT": train["raster"], "POLYGONS": train["mines"], **n["unet"],
                                           "OUTPUT_MODEL": p["unet.onnx"], "OUTPUT_REPORT": p["unet_report.html"]})

    log(f"3. U-Net detection on the unseen scene ({unseen['n_mines']} mines)")
    det = run("detect_mines", {"INPUT": unseen["raster"], "MODEL_FILE": p["unet.onnx"], "MIN_AREA": n["min_area"],
                               "OUTPUT": p["unet_probability.tif"], "OUTPUT_MASK": p["unet_mask.tif"],
                               "OUTPUT_POLYGONS": p["unet_mines.gpkg"]})
    scores = pixel_scores(_read_mask(p["unet_mask.tif"]) == 1, unseen["mask"])
    found, n_true, false, n_found = mines_found(p["unet_mines.gpkg"], unseen["mines"])

    log("4. Patch classifier (gradient boosting) on the training patches")
    clf = run("train_mine_classifier", {"LABELS": labels, "CLASSIFIER": 0, **n["classifier"],
                                        "OUTPUT_MODEL": p["classifier.onnx"],
                                        "OUTPUT_REPORT": p["classifier_report.html"]})
    new = patch_sets.load_patch_folder(new_labels, keep_patches=True)
    proba, threshold = mc.predict_proba(p["classifier.onnx"], new.patches)
    new_scores = mc.binary_metrics(new.labels, (proba >= threshold).astype(int))

    log("5. Patch classifier detection on the unseen scene")
    clf_det = run("detect_mines", {"INPUT": unseen["raster"], "MODEL_FILE": p["classifier.onnx"],
                                   "STRIDE": n["stride"], "MIN_AREA": n["min_area"],
                                   "OUTPUT": p["classifier_probability.tif"], "OUTPUT_MASK": p["classifier_mask.tif"],
                                   "OUTPUT_POLYGONS": p["classifier_mines.gpkg"]})
    clf_found = mines_found(p["classifier_mines.gpkg"], unseen["mines"])

    log("6. The U-Net and the classifier on the six real BigEarthNet patches (no mines)")
    negatives = []
    folders = sorted(f for f in glob.glob(os.path.join(s2.S2_FOLDER, "*")) if os.path.isdir(f))
    for k, folder in enumerate(folders):
        row = {"patch": os.path.basename(folder)}
        for model, key in (("unet.onnx", "unet"), ("classifier.onnx", "classifier")):
            r = run("detect_mines", {"INPUT_FOLDER": folder, "MODEL_FILE": p[model], "MIN_AREA": n["min_area"],
                                     "OUTPUT": os.path.join(out, f"real_{k}_{key}_probability.tif"),
                                     "OUTPUT_MASK": os.path.join(out, f"real_{k}_{key}_mask.tif"),
                                     "OUTPUT_POLYGONS": None})
            row[f"{key}_footprints"] = int(r["N_MINES"])
            row[f"{key}_mine_pixels"] = int((_read_mask(r["OUTPUT_MASK"]) == 1).sum())
        negatives.append(row)

    return {
        "unet": {"val_iou": unet["IOU"], "val_f1": unet["F1"], "val_precision": unet["PRECISION"],
                 "val_recall": unet["RECALL"]},
        "unseen": dict(scores, mines_found=found, mines=n_true, false_footprints=false, footprints=n_found,
                       total_area_ha=det["TOTAL_AREA_HA"], true_area_ha=float(unseen["mask"].sum()) / 100.0),
        "classifier": {"cv_f1": clf["F1"], "cv_precision": clf["PRECISION"], "cv_recall": clf["RECALL"],
                       "threshold": clf["THRESHOLD"], "new_f1": new_scores["f1"],
                       "new_precision": new_scores["precision"], "new_recall": new_scores["recall"],
                       "new_patches": int(new.n)},
        "classifier_unseen": {"mines_found": clf_found[0], "mines": clf_found[1], "false_footprints": clf_found[2],
                              "footprints": clf_found[3], "total_area_ha": clf_det["TOTAL_AREA_HA"]},
        "real_negatives": negatives, "scenes": {"train_mines": train["n_mines"], "unseen_mines": unseen["n_mines"]},
        "paths": dict(p, unseen_scene=unseen["raster"], unseen_mines=unseen["mines"]), "settings": settings,
    }


def summary_lines(numbers):
    """Plain-text summary of :func:`chain`'s numbers."""
    s, u, c, cu = numbers["settings"], numbers["unseen"], numbers["classifier"], numbers["classifier_unseen"]
    t = s["unet"]
    lines = [f"Sentinel-2 mine detection on synthetic mines in real backgrounds ({ATTRIBUTION}).",
             f"U-Net (tile {t['TILE']}, depth {t['DEPTH']}, width {t['WIDTH']}, {t['EPOCHS']} epochs) trained on a "
             f"{s['train_size']}^2 scene with {numbers['scenes']['train_mines']} mines: held-out blocks IoU "
             f"{numbers['unet']['val_iou']:.3f}, F1 {numbers['unet']['val_f1']:.3f}",
             f"Unseen {s['test_size']}^2 scene, {u['mines']} mines: pixel IoU {u['iou']:.3f}, F1 {u['f1']:.3f}, "
             f"precision {u['precision']:.3f}, recall {u['recall']:.3f}; {u['mines_found']} of {u['mines']} mines "
             f"found; {u['footprints']} footprints >= {s['min_area']:g} ha, {u['false_footprints']} touching no mine; "
             f"{u['total_area_ha']:.1f} ha mapped, {u['true_area_ha']:.1f} ha true",
             f"Patch classifier (gradient boosting): nested CV F1 {c['cv_f1']:.3f} (precision {c['cv_precision']:.3f}, "
             f"recall {c['cv_recall']:.3f}, threshold {c['threshold']:.2f}); on {c['new_patches']} new patches F1 "
             f"{c['new_f1']:.3f} (precision {c['new_precision']:.3f}, recall {c['new_recall']:.3f})",
             f"Patch classifier on the unseen scene (patches every {s['stride']} pixels): {cu['mines_found']} of "
             f"{cu['mines']} mines touched; footprints: {cu['footprints']}, touching no mine: {cu['false_footprints']}; "
             f"{cu['total_area_ha']:.0f} ha mapped (coarse: whole cells)",
             "Six real BigEarthNet patches (no mines), footprints / pixels flagged: U-Net "
             + ", ".join(f"{r['unet_footprints']}/{r['unet_mine_pixels']}" for r in numbers["real_negatives"])
             + "; classifier " + ", ".join(f"{r['classifier_footprints']}/{r['classifier_mine_pixels']}"
                                           for r in numbers["real_negatives"])]
    return lines


def main(argv):
    demo_main(argv, "mines", chain, summary_lines, FULL, SMALL)


if __name__ == "__main__":
    main(sys.argv[1:])
