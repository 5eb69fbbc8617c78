#!/usr/bin/env python3
"""Speed and memory of the prospectivity map (ResNet-18, width 16, 64-cell windows, 8 elements).

A synthetic 8-element stack (smooth log-normal fields, float32, tiled DEFLATE GeoTIFF) is mapped in
grid mode (12 x 12 cells, window at each cell centre) and in sliding mode (stride 32: a 64-cell window
every 32 cells), at two sizes (1,536^2 and 3,072^2), each run in a fresh process with a 256 MB memory
budget and GDAL_CACHEMAX=64. Peak memory growth (VmHWM) should not grow with the raster. The model is
trained for one epoch on a small stack of the same elements: its weights do not change the speed.
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ELEMENTS = ["Au", "As", "Sb", "Bi", "Cu", "Pb", "Zn", "Ag"]
SIZES = (1536, 3072)
RUNS = (("grid", {"mode": "grid", "grid": (12, 12)}), ("sliding", {"mode": "sliding", "stride": 32}))

CHILD = r"""
import os, sys, time, json
ROOT, stack, model, out, kwargs = sys.argv[1:6]
sys.path.insert(0, ROOT)
from core.geochemistry.prospectivity_mapping import prospectivity_map
sys.path.insert(0, os.path.join(ROOT, "bench"))
from memory_probe import hwm
base = hwm()
t = time.perf_counter()
result = prospectivity_map(stack, model, out, memory_mb=256, **json.loads(kwargs))
dt = time.perf_counter() - t
print(dt, result["n_scored"], hwm() - base)
"""


def make_stack(path, size, seed=0):
    import numpy as np
    import rasterio
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    profile = dict(driver="GTiff", width=size, height=size, count=len(ELEMENTS), dtype="float32", nodata=-9999.0,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=3, interleave="pixel",
                   crs="EPSG:32750", transform=rasterio.Affine(50.0, 0, 400000.0, 0, -50.0, 7100000.0))
    coarse = size // 8
    with rasterio.open(path, "w", **profile) as dst:
        for b, name in enumerate(ELEMENTS, start=1):
            field = gaussian_filter(rng.standard_normal((coarse, coarse)), 4)
            field = zoom(field / field.std(), 8, order=1)[:size, :size]
            dst.write((10.0 ** (1.0 + 0.3 * field)).astype("float32"), b)
            dst.set_band_description(b, name)
    return path


def make_model(folder):
    import numpy as np

    from core.geochemistry.prospectivity_cnn import train_prospectivity

    stack = make_stack(os.path.join(folder, "train.tif"), 512, seed=1)
    rows_cols = np.array([[100, 100], [120, 300], [380, 150], [400, 400], [250, 256]], float)
    deposits = np.column_stack([400000.0 + 50.0 * rows_cols[:, 1], 7100000.0 - 50.0 * rows_cols[:, 0]])
    model = os.path.join(folder, "model.onnx")
    train_prospectivity(stack, deposits, model, window=64, depth=18, width=16, epochs=1, n_folds=0,
                        negatives_per_positive=2, jitter_copies=1, seed=0)
    return model


def main():
    import json

    print("prospectivity map: ResNet-18 width 16, 64-cell windows, 8 elements, float32 DEFLATE stack, "
          "256 MB budget, GDAL_CACHEMAX=64, onnxruntime on all cores")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(tmp)
        for size in SIZES:
            stack = make_stack(os.path.join(tmp, f"stack_{size}.tif"), size)
            for name, kwargs in RUNS:
                proc = subprocess.run([sys.executable, "-c", CHILD, ROOT, stack, model, os.path.join(tmp, "p.tif"),
                                       json.dumps(kwargs)], capture_output=True, text=True,
                                      env=dict(os.environ, GDAL_CACHEMAX="64"))
                if proc.returncode:
                    sys.exit(proc.stderr)
                seconds, windows, growth = proc.stdout.split()
                results[(size, name)] = (float(seconds), int(windows), float(growth))
                print(f"{size} x {size} x 8, {name:7s}: {float(seconds):6.1f} s, {int(windows):5d} windows "
                      f"({int(windows) / float(seconds):6.1f} windows/s), peak memory growth {float(growth):.0f} MB")
    flat = all(results[(SIZES[1], n)][2] - results[(SIZES[0], n)][2] < 128 for n, _ in RUNS)
    print(("PASS" if flat else "MEMORY GROWS") + ": peak memory "
          + ", ".join(f"{n} {results[(SIZES[0], n)][2]:.0f} -> {results[(SIZES[1], n)][2]:.0f} MB" for n, _ in RUNS)
          + f" for a {(SIZES[1] / SIZES[0]) ** 2:.0f} x larger raster")
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
