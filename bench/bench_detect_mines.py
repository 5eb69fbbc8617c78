#!/usr/bin/env python3
"""Speed and memory of mine detection (core.mine_detection.detect_mines) on large Sentinel-2 rasters.

A 12-band uint16 Sentinel-2 raster (tiled DEFLATE GeoTIFF, bands named B1 ... B12) is built by tiling, with
mirror images, a 768 x 768 synthetic scene of test/s2_scene.py (real BigEarthNet backgrounds with painted
mines), so the detector meets real textures and real mines everywhere. Two models are run, each in a fresh
process with a 256 MB memory budget and GDAL_CACHEMAX=64:

* the U-Net at its defaults (128-pixel tiles, depth 4, width 16, 12 bands + 7 indices; trained for two
  epochs on one scene: the weights do not change the speed), blended windows with a 32-pixel overlap;
* a gradient-boosting patch classifier (core.mine_classifier, 120-pixel patches side by side).

Sizes: 2,745^2 and 5,490^2 pixels by default (a quarter and a half of a 10,980^2 Sentinel-2 tile side);
``--full`` adds the whole 10,980^2 tile (about 4x the 5,490^2 time). Peak memory growth (VmHWM over the
process's baseline after imports) must not grow with the raster.
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
SIZES = (2745, 5490)
FULL = 10980

CHILD = r"""
import os, sys, time, json
ROOT, raster, model, folder, budget = sys.argv[1:6]
sys.path.insert(0, os.path.join(ROOT, "test"))
import s2_scene  # registers the 'oremap' package
from oremap.core.mine_detection import detect_mines
def hwm():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
import onnxruntime  # noqa: F401  (paged in before the baseline)
base = hwm()
t = time.perf_counter()
res = detect_mines(raster, model, os.path.join(folder, "p.tif"), os.path.join(folder, "m.tif"), min_area_ha=0.5,
                   memory_mb=float(budget), polygons_path=os.path.join(folder, "mines.gpkg"))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "growth": hwm() - base, "n_mines": res["n_mines"],
                  "area": res["total_area_ha"], "windows": res.get("n_windows", res.get("n_patches")),
                  "bands": res.get("n_bands_of_rows")}))
"""


def make_raster(path, size, scene_dn, transform, crs):
    """A size x size 12-band uint16 GeoTIFF tiling the scene (mirrored every other copy), written by strips."""
    import numpy as np
    import rasterio
    from affine import Affine

    from oremap.core.sentinel2 import S2_BANDS

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


def prepare(folder):
    """Scene, its DN array, a U-Net and a patch classifier."""
    import rasterio

    import s2_scene
    from oremap.core import mine_classifier as mc
    from oremap.core.mine_segmentation import train_mine_segmentation

    scene = s2_scene.make_scene(os.path.join(folder, "scene"), seed=3, size=(768, 768))
    with rasterio.open(scene["raster"]) as ds:
        dn, transform, crs = ds.read(), ds.transform, ds.crs
    unet = os.path.join(folder, "unet.onnx")
    t = time.perf_counter()
    res = train_mine_segmentation(scene["raster"], scene["mines"], unet, epochs=2, block_tiles=2, seed=0)
    print(f"U-Net (tile 128, depth 4, width 16, {res.info.n_bands} channels) trained 2 epochs in "
          f"{time.perf_counter() - t:.0f} s (held-out IoU {res.metrics['val_iou']:.2f}: speed only)")
    hgb = os.path.join(folder, "hgb.onnx")
    ps = mc.patches_from_raster(scene["raster"], mc.read_polygons(scene["mines"]), patch_size=120, stride=60)
    mc.train_mine_classifier(ps, "hgb", n_folds=2, inner_folds=2, seed=0, model_path=hgb)
    return dn, transform, crs, {"U-Net": unet, "patch HGB": hgb}


def main():
    import json

    sizes = SIZES + ((FULL,) if "--full" in sys.argv else ())
    print(f"mine detection: 12-band uint16 DEFLATE raster, {BUDGET_MB} MB budget, GDAL_CACHEMAX=64, "
          f"onnxruntime on all cores ({os.cpu_count()})")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        dn, transform, crs, models = prepare(tmp)
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
                                      capture_output=True, text=True, env=dict(os.environ, GDAL_CACHEMAX="64"))
                if proc.returncode:
                    sys.exit(proc.stderr[-3000:])
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results[(size, name)] = r
                mpx = size * size / 1e6
                print(f"{size} x {size}, {name:9s}: {r['seconds']:7.1f} s ({mpx / r['seconds']:.2f} Mpixel/s), "
                      f"{r['windows']} windows/patches, peak memory growth {r['growth']:.0f} MB, "
                      f"{r['n_mines']} footprints >= 0.5 ha ({r['area']:.0f} ha)")
                for name_out in os.listdir(out):
                    os.remove(os.path.join(out, name_out))
            os.remove(raster)
    small, large = sizes[0], sizes[-1]
    flat = all(results[(large, n)]["growth"] - results[(small, n)]["growth"] < 128 for n in models)
    print(("PASS" if flat else "MEMORY GROWS") + ": peak memory "
          + ", ".join(f"{n} {results[(small, n)]['growth']:.0f} -> {results[(large, n)]['growth']:.0f} MB"
                      for n in models) + f" for a {(large / small) ** 2:.0f} x larger raster")
    if FULL not in sizes:
        unet = results[(large, "U-Net")]["seconds"] * (FULL / large) ** 2
        print(f"A whole {FULL} x {FULL} tile would take about {unet / 60:.0f} min with the U-Net here "
              "(time grows with the pixel count; run with --full to measure).")
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
