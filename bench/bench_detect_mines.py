#!/usr/bin/env python3
"""Speed and memory of mine detection (core.sentinel2.mine_detection.detect_mines) on large Sentinel-2 rasters.

A 12-band uint16 Sentinel-2 raster (tiled DEFLATE GeoTIFF, bands named B1 ... B12) is built by tiling, with
mirror images, a 768 x 768 synthetic scene of test/s2_scene.py (real BigEarthNet backgrounds with painted
mines), so the detector meets real textures and real mines everywhere. Two models are run, each in a fresh
process with a 256 MB memory budget and GDAL_CACHEMAX=64:

* the U-Net at its defaults (128-pixel tiles, depth 4, width 16, 12 bands + 7 indices), trained for 10
  epochs on the 768 x 768 scene (held-out IoU about 0.65: a plausible mask, so the polygon stage does
  realistic work), blended windows with a 32-pixel overlap;
* the default patch classifier, gradient boosting on patch statistics (core.sentinel2.mine_classifier, 120-pixel
  patches side by side), trained on 20 patches with a mine and 20 without (s2_scene.make_patches);
* the optional patch CNN of the same module, trained on the same patches (15 epochs).

Sizes: 2,745^2 and a whole 10,980^2 Sentinel-2 tile (``--quick``: 2,745^2 and 5,490^2). Reported: time,
the peak of what numpy and Python allocate (tracemalloc: what the budget governs) and the growth of the
process's peak resident memory (VmHWM over its baseline after imports: adds onnxruntime's buffers, GDAL's
block cache and the footprint geometries). Neither may grow with the raster. ``--threads N`` sets the
threads of onnxruntime and torch (default: all cores; on a busy machine 1 is often faster); ``--only NAME``
runs one model ("U-Net", "patch HGB" or "patch CNN").
"""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "test"))
BUDGET_MB = 256
SIZES = (2745, 10980)
QUICK = (2745, 5490)
FULL = 10980

CHILD = r"""
import os, sys, time, json
ROOT, raster, model, folder, budget = sys.argv[1:6]
sys.path.insert(0, os.path.join(ROOT, "test"))
import s2_scene  # registers the 'oremap' package
from oremap.core.sentinel2.mine_detection import detect_mines
sys.path.insert(0, os.path.join(ROOT, "bench"))
from memory_probe import hwm
import onnxruntime, tracemalloc  # noqa: F401  (paged in before the baseline)
base = hwm()
tracemalloc.start()
t = time.perf_counter()
res = detect_mines(raster, model, os.path.join(folder, "p.tif"), os.path.join(folder, "m.tif"), min_area_ha=0.5,
                   memory_mb=float(budget), polygons_path=os.path.join(folder, "mines.gpkg"))
dt = time.perf_counter() - t
traced = tracemalloc.get_traced_memory()[1] / 2 ** 20
print(json.dumps({"seconds": dt, "growth": hwm() - base, "traced": traced, "n_mines": res["n_mines"],
                  "area": res["total_area_ha"], "windows": res.get("n_windows", res.get("n_patches")),
                  "bands": res.get("n_bands_of_rows")}))
"""


def make_raster(path, size, scene_dn, transform, crs):
    """A size x size 12-band uint16 GeoTIFF tiling the scene (mirrored every other copy), written by strips."""
    import numpy as np
    import rasterio
    from affine import Affine

    from oremap.core.sentinel2.sentinel2 import S2_BANDS

    h = scene_dn.shape[1]
    flips = np.concatenate([scene_dn, scene_dn[:, ::-1]], axis=1)
    tile = np.concatenate([flips, flips[:, :, ::-1]], axis=2)  # (12, 2h, 2h): seamless mirror tiling
    period = 2 * h
    profile = dict(driver="GTiff", width=size, height=size, count=12, dtype="uint16", nodata=0, tiled=True,
                   blockxsize=256, blockysize=256, compress="deflate", predictor=2, interleave="pixel",
                   crs=crs, transform=Affine(10.0, 0, transform.c, 0, -10.0, transform.f), bigtiff="if_safer")
    cols = np.arange(size) % period
    with rasterio.open(path, "w", **profile) as dst:
        for b, name in enumerate(S2_BANDS, start=1):
            dst.set_band_description(b, name)
        for r0 in range(0, size, 256):
            rows = np.arange(r0, min(size, r0 + 256)) % period
            dst.write(tile[:, rows][:, :, cols], window=rasterio.windows.Window(0, r0, size, rows.size))
    return path


MODELS = ("U-Net", "patch HGB", "patch CNN")


def prepare(folder, threads, names=MODELS):
    """Scene, its DN array and the models ``names`` (trained here)."""
    import rasterio

    import s2_scene
    from oremap.core.sentinel2 import mine_classifier as mc
    from oremap.core.sentinel2 import patch_sets
    from oremap.core.sentinel2.mine_segmentation import train_mine_segmentation

    scene = s2_scene.make_scene(os.path.join(folder, "scene"), seed=3, size=(768, 768))
    with rasterio.open(scene["raster"]) as ds:
        dn, transform, crs = ds.read(), ds.transform, ds.crs
    models = {}
    if "U-Net" in names:
        unet = models["U-Net"] = os.path.join(folder, "unet.onnx")
        t = time.perf_counter()
        res = train_mine_segmentation(scene["raster"], scene["mines"], unet, epochs=10, lr=0.005, block_tiles=2,
                                      seed=0, threads=threads)
        print(f"U-Net (tile 128, depth 4, width 16, {res.info.n_bands} channels) trained 10 epochs in "
              f"{time.perf_counter() - t:.0f} s (held-out IoU {res.metrics['val_iou']:.2f}, "
              f"F1 {res.metrics['val_f1']:.2f})")
    labels = s2_scene.make_patches(os.path.join(folder, "patches"), 20, 20, size=120, seed=0)
    patches = patch_sets.load_patch_folder(labels, keep_patches=True)
    for kind, name, extra in (("hgb", "patch HGB", {}), ("cnn", "patch CNN", {"cnn_options": {"epochs": 15}})):
        if name not in names:
            continue
        path = models[name] = os.path.join(folder, f"{kind}.onnx")
        t = time.perf_counter()
        res = mc.train_mine_classifier(patches, kind, n_folds=3, inner_folds=2, seed=0, model_path=path, **extra)
        print(f"{name} (120-pixel patches) trained with nested CV on 20 + 20 patches in "
              f"{time.perf_counter() - t:.0f} s (held-out F1 {res['metrics']['f1']:.2f})")
    return dn, transform, crs, models


def main():
    import json

    sizes = QUICK if "--quick" in sys.argv else SIZES
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 0
    names = MODELS
    if "--only" in sys.argv:  # e.g. --only "patch HGB"
        names = (sys.argv[sys.argv.index("--only") + 1],)
        if names[0] not in MODELS:
            sys.exit(f"--only takes one of {', '.join(MODELS)}, not '{names[0]}'.")
    env = dict(os.environ, GDAL_CACHEMAX="64", OREMAP_THREADS=str(threads))
    print(f"mine detection: 12-band uint16 DEFLATE raster, {BUDGET_MB} MB budget, GDAL_CACHEMAX=64, "
          f"{threads or 'all'} thread(s) of {os.cpu_count()} cores")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        dn, transform, crs, models = prepare(tmp, threads or None, names)
        for size in sizes:
            raster = os.path.join(tmp, f"s2_{size}.tif")
            t = time.perf_counter()
            make_raster(raster, size, dn, transform, crs)
            print(f"{size} x {size} raster written in {time.perf_counter() - t:.0f} s "
                  f"({os.path.getsize(raster) / 2 ** 20:.0f} MB)")
            for name, model in models.items():
                out = os.path.join(tmp, "out")
                os.makedirs(out, exist_ok=True)
                proc = subprocess.run([sys.executable, "-c", CHILD, ROOT, raster, model, out, str(BUDGET_MB)],
                                      capture_output=True, text=True, env=env)
                if proc.returncode:
                    sys.exit(proc.stderr[-3000:])
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results[(size, name)] = r
                mpx = size * size / 1e6
                print(f"{size} x {size}, {name:9s}: {r['seconds']:7.1f} s ({mpx / r['seconds']:.2f} Mpixel/s), "
                      f"{r['windows']} windows/patches, numpy peak {r['traced']:.0f} MB, peak RSS growth "
                      f"{r['growth']:.0f} MB, {r['n_mines']} footprints >= 0.5 ha ({r['area']:.0f} ha)")
                for name_out in os.listdir(out):
                    os.remove(os.path.join(out, name_out))
            os.remove(raster)
    small, large = sizes[0], sizes[-1]
    flat = all(results[(large, n)]["growth"] - results[(small, n)]["growth"] < 128
               and results[(large, n)]["traced"] <= BUDGET_MB for n in models)
    print(("PASS" if flat else "MEMORY GROWS") + ": numpy peak / RSS growth "
          + ", ".join(f"{n} {results[(small, n)]['traced']:.0f}/{results[(small, n)]['growth']:.0f} -> "
                      f"{results[(large, n)]['traced']:.0f}/{results[(large, n)]['growth']:.0f} MB" for n in models)
          + f" for a {(large / small) ** 2:.0f} x larger raster (budget {BUDGET_MB} MB)")
    if FULL not in sizes:
        for name in models:
            whole = results[(large, name)]["seconds"] * (FULL / large) ** 2
            print(f"A whole {FULL} x {FULL} tile would take about {whole / 60:.1f} min with the {name} here "
                  "(time grows with the pixel count).")
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
