#!/usr/bin/env python3
"""Does outlier exposure make the bundled spectral CNN abstain on minerals it was never trained on?

Trains the bundled model's recipe (scripts/build_models.py: same library spectra, SETTINGS and seed) with and
without outlier exposure (build_models.OUTLIERS, at several weights) and measures each network on:

- the held-out samples of the build (grouped validation): accuracy, share rejected by the out-of-distribution
  check, share of held-out spectra given a confidence >= 0.5 by the early-stopping network, which did not train
  on them (what exposure could cost the trained classes);
- the untrained minerals of the card (build_models.UNSEEN, the test set) and of bench/bench_ood.py's DEV set:
  share let through (kept by the check with confidence >= 0.5);
- real scenes without ground truth (two AVIRIS-NG sample tiles, a Jasper Ridge crop): pixels left unclassified
  by the check, pixels below 0.5 confidence, and the commonest classes kept.

None of these spectra is among the outliers (build_models.OUTLIERS excludes UNSEEN, DEV and their mineral groups).

Usage: python bench/experiment_outlier_exposure.py [weight ...] [--seeds S ...] [--min-epochs N]
       (default: weights 0 0.5 1.0, 0 = no exposure; the bundled model's seed and minimum epochs)
"""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import numpy as np  # noqa: E402

import bench_ood  # noqa: E402
import build_models  # noqa: E402
from core.engine.feedback import Feedback  # noqa: E402
from core.hyperspectral import cnn_training  # noqa: E402
from core.hyperspectral.mapping import cnn_classify_map  # noqa: E402


#: Real scenes without ground truth: the two AVIRIS-NG sample tiles and the Jasper Ridge crop (AVIRIS; trees,
#: soil, water, roads).
SCENES = {"NG tile 1": build_models.TILE,
          "NG tile 2": os.path.join(ROOT, "test", "data", "ang20150422t163638_corr_v1e_img_4000-4010_550-560.img"),
          "Jasper": os.path.join(ROOT, "test", "data", "jasper_ridge_40x40.tif")}


def scene_figures(path):
    """Per scene: 'rejected by the check / below MIN_CONFIDENCE / pixels' and the three commonest classes of the
    pixels kept with confidence >= MIN_CONFIDENCE."""
    import rasterio

    out = {}
    for name, scene in SCENES.items():
        if not os.path.exists(scene):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            stats = cnn_classify_map(scene, path, os.path.join(tmp, "c.tif"), confidence_path=os.path.join(tmp, "p.tif"),
                                     min_confidence=build_models.MIN_CONFIDENCE)
            with rasterio.open(os.path.join(tmp, "p.tif")) as src:
                conf = src.read(1)
        counts = sorted(((v, k) for k, v in stats["class_counts"].items() if k != "Unclassified" and v), reverse=True)
        top = ", ".join(f"{k} {v}" for v, k in counts[:3])
        out[name] = (f"{int(stats['out_of_distribution'])}/{int((conf < build_models.MIN_CONFIDENCE).sum())}/"
                     f"{int(conf.size)} ({top})")
    return out


def run(weight, data, outliers, folder, seed=None, min_epochs=None):
    """Build the bundled recipe with outlier exposure at ``weight`` (0: none), ``seed`` and ``min_epochs`` (None:
    the recipe's); its figures."""
    settings = {**build_models.SETTINGS, "outlier_weight": weight}
    if seed is not None:
        settings["seed"] = seed
    if min_epochs is not None:
        settings["min_epochs"] = min_epochs
    path = os.path.join(folder, f"oe_{weight:g}_{settings['seed']}.onnx")
    summary = cnn_training.train_and_report(data, path, None, feedback=Feedback(),
                                            outliers=outliers if weight else None, **settings)
    m = summary["info"].training["metrics"]
    unseen = build_models.unseen_figures(path)
    dev = build_models.unseen_figures(path, bench_ood.DEV)
    return {"weight": weight, "seed": settings["seed"], "epoch": m["best_epoch"], "val_acc": m["val_accuracy"],
            "val_rejected": m["val_out_of_distribution"], "val_confident": build_models.held_out_confident(summary["result"]),
            "unseen": unseen["let_through"], "unseen_conf": unseen["confident_without_check"],
            "dev": dev["let_through"], "dev_conf": dev["confident_without_check"],
            "scenes": scene_figures(path), "per_mineral": unseen["per_mineral"]}


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", type=float, default=[0.0, 0.5, 1.0], help="0 = no exposure")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds (default: the bundled model's); the table gives mean and sd over them")
    parser.add_argument("--min-epochs", type=int, default=None,
                        help="earliest epoch early stopping may keep (default: the bundled recipe's, "
                             f"{build_models.SETTINGS.get('min_epochs', 1)}; 1 = early stopping alone)")
    args = parser.parse_args()
    os.environ.setdefault("SOURCE_DATE_EPOCH", build_models.BUILD_EPOCH)
    data = build_models.training_data()
    outliers = build_models.outlier_set(data)
    print(f"{data.X.shape[0]} training spectra; {outliers.X.shape[0]} outlier spectra of "
          f"{len(outliers.class_names)} materials")
    seeds = args.seeds or [build_models.SETTINGS["seed"]]
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for weight in args.weights:
            for seed in seeds:
                row = run(weight, data, outliers, folder, seed, args.min_epochs)
                rows.setdefault(weight, []).append(row)
                print({k: v for k, v in row.items() if k != "per_mineral"}, flush=True)

    def cell(runs, key):
        values = 100 * np.array([r[key] for r in runs])
        return f"{values.mean():.1f} %" + (f" +/- {values.std(ddof=1):.1f}" if values.size > 1 else "")

    print(f"\nSeeds {seeds}: mean" + (" +/- sd" if len(seeds) > 1 else ""))
    print("| weight | held-out accuracy | held-out rejected | held-out confident | UNSEEN confident | "
          "UNSEEN let through | DEV confident | DEV let through |")
    print("|---|---|---|---|---|---|---|---|")
    for weight, runs in rows.items():
        print(f"| {weight:g} | " + " | ".join(cell(runs, k) for k in ("val_acc", "val_rejected", "val_confident",
                                                                       "unseen_conf", "unseen", "dev_conf", "dev"))
              + " |")
    print("\nReal scenes: pixels rejected by the check / below confidence 0.5 / pixels (commonest classes kept)")
    for weight, runs in rows.items():
        for r in runs:
            print(f"weight {weight:g}, seed {r['seed']}: " + "; ".join(f"{k}: {v}" for k, v in r["scenes"].items()))
    for weight, runs in rows.items():
        for r in runs:
            through = {k: v for k, v in r["per_mineral"].items() if v[1] > 0}
            print(f"weight {weight:g}, seed {r['seed']}, UNSEEN let through by mineral: {through}")


if __name__ == "__main__":
    main()
