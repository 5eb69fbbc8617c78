"""What the U-Net's aids for few labels do (issue 21, point 4), measured, not asserted.

RGB only (B2, B3, B4: the issue's chips), a small U-Net trained on one synthetic scene (mines painted into the
real BigEarthNet backgrounds, ``test/s2_scene.py``) with: the default (flips and turns), photometric
augmentation (brightness and haze), the class-imbalance weight, and both. Each model maps (a) an unseen scene
of the same kind, (b) the same scene under haze and a darker calibration (a domain shift), and (c) the six real
BigEarthNet patches as delivered (no mines: every mine pixel there is a false alarm).

    .venv/bin/python bench/experiment_unet_aids.py [--epochs 15] [--seeds 0 1]

Prints pixel IoU on (a) and (b) and the false-alarm share on (c) per variant and seed.
"""

import argparse
import glob
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "test"))
from headless import import_plugin  # noqa: E402

import_plugin()

import rasterio  # noqa: E402

from oremap.core.sentinel2 import mine_detection as md  # noqa: E402
from oremap.core.sentinel2 import mine_segmentation as ms  # noqa: E402
from oremap.core.sentinel2.sentinel2 import S2_CENTERS  # noqa: E402

RGB = ["B2", "B3", "B4"]
VARIANTS = {"default": {}, "photometric": {"augment": "photometric"}, "class weight": {"class_weight": True},
            "both": {"augment": "photometric", "class_weight": True}}


def rgb(src, dst, haze=0.0, gain=1.0):
    with rasterio.open(src) as ds:
        refl = ds.read([2, 3, 4]).astype(np.float64) / 10000.0
        profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=3, dtype="float32", crs=ds.crs,
                       transform=ds.transform)
    shape = np.array([(490.0 / S2_CENTERS[b]) ** 2 for b in RGB])[:, None, None]
    refl = refl * gain + haze * shape
    with rasterio.open(dst, "w", **profile) as out:
        out.write(refl.astype(np.float32))
        for i, b in enumerate(RGB, start=1):
            out.set_band_description(i, b)
    return dst


def iou(prob_path, truth):
    with rasterio.open(prob_path) as ds:
        p = ds.read(1) >= 0.5
    inter, union = (p & truth).sum(), (p | truth).sum()
    return inter / union if union else float("nan")


def main():
    import s2_scene

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="oremap_aids_")
    train = s2_scene.make_scene(os.path.join(work, "train"), seed=10, size=(320, 320), n_mines=5)
    test = s2_scene.make_scene(os.path.join(work, "test"), seed=11, size=(320, 320), n_mines=5)
    train_rgb = rgb(train["raster"], os.path.join(work, "train_rgb.tif"))
    test_rgb = rgb(test["raster"], os.path.join(work, "test_rgb.tif"))
    hazy_rgb = rgb(test["raster"], os.path.join(work, "test_hazy.tif"), haze=0.03, gain=0.85)
    real = sorted(p for p in glob.glob(os.path.join(s2_scene.S2_FOLDER, "*")) if os.path.isdir(p))
    print(f"{'variant':14s} seed  IoU unseen  IoU hazy  false alarms real (share of pixels)")
    for name, options in VARIANTS.items():
        for seed in args.seeds:
            model = os.path.join(work, f"{name.replace(' ', '_')}_{seed}.onnx")
            ms.train_mine_segmentation(train_rgb, train["mines"], model, tile=64, depth=3, width=8, epochs=args.epochs,
                                       lr=0.005, block_tiles=2, seed=seed, threads=1, **options)
            a = md.detect_mines(test_rgb, model, os.path.join(work, "a.tif"), threads=1)
            b = md.detect_mines(hazy_rgb, model, os.path.join(work, "b.tif"), threads=1)
            alarms, pixels = 0, 0
            for folder in real:
                r = md.detect_mines(folder, model, os.path.join(work, "r.tif"), threads=1)
                alarms, pixels = alarms + r["mine_pixels"], pixels + r["valid_pixels"]
            print(f"{name:14s} {seed:4d}  {iou(a['prob_path'], test['mask']):10.3f}  "
                  f"{iou(b['prob_path'], test['mask']):8.3f}  {alarms / max(pixels, 1):.4f}", flush=True)


if __name__ == "__main__":
    main()
