#!/usr/bin/env python3
"""Speed and memory of the geochemical anomaly VAE (core.geochemistry.vae_anomaly).

Run from the repository root::

    .venv/bin/python bench/bench_vae.py (or make bench) [--samples 10000] [--elements 30] [--size 3072]

1. Points: a synthetic survey of ``--samples`` samples x ``--elements`` elements (log-normal, correlated
   through 4 factors), the default network (24-12-3, 10 latent draws), 100 epochs of 64 samples: training
   time (preprocessing, training, ONNX export), then scoring time of the same samples with the saved
   model (onnxruntime) and with torch.
2. Raster: a ``--size`` x ``--size`` x 8 float32 element raster (tiled GeoTIFF) scored with a model of the
   same 8 elements into a score and a class raster by the block engine, in a fresh process with a
   256 MB memory budget; the same for a raster a third as tall. Reported: time, numpy/Python peak
   (tracemalloc) and growth of the peak resident memory. Memory must stay near the budget and not grow
   with the raster (exit status 1 otherwise).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from core.geochemistry import vae_anomaly as va  # noqa: E402
from core.geochemistry import vae_network  # noqa: E402

BUDGET_MB = 256
RASTER_ELEMENTS = ["Au_ppb", "As_ppm", "Cu_ppm", "Pb_ppm", "Zn_ppm", "Ni_ppm", "Co_ppm", "Fe_pct"]

CHILD = r"""
import os, sys, time, tracemalloc
ROOT, model, raster, out, budget = sys.argv[1:6]
sys.path.insert(0, ROOT)
from core.geochemistry import vae_anomaly as va
from core.geochemistry import vae_raster
sys.path.insert(0, os.path.join(ROOT, "bench"))
from memory_probe import hwm
m = va.load_model(model)
base = hwm()
tracemalloc.start()
t = time.perf_counter()
stats = vae_raster.score_raster(m, raster, out + "_score.tif", out + "_class.tif", memory_mb=float(budget))
dt = time.perf_counter() - t
traced = tracemalloc.get_traced_memory()[1] / 2 ** 20
print(f"{base:.0f} {hwm():.0f} {traced:.0f} {dt:.2f} {stats['scored']}")
"""


def survey(n, m, rng, factors=4):
    """Log-normal concentrations correlated through a few factors, with 1 % below detection (negative)."""
    loadings = rng.normal(0, 1, (factors, m)) * (rng.uniform(0, 1, (factors, m)) < 0.5)
    z = rng.standard_normal((n, factors)) @ loadings + 0.5 * rng.standard_normal((n, m))
    values = 10 ** (1.0 + 0.3 * z / z.std(axis=0))
    below = rng.uniform(0, 1, values.shape) < 0.01
    values[below] = -0.5
    return values


def write_raster(path, size, height, rng, model_values):
    import rasterio
    from rasterio.transform import from_origin

    profile = dict(driver="GTiff", width=size, height=height, count=len(RASTER_ELEMENTS), dtype="float32",
                   nodata=-9999.0, tiled=True, blockxsize=256, blockysize=256, interleave="pixel",
                   crs="EPSG:32750", transform=from_origin(400000.0, 6400000.0, 50.0, 50.0))
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(RASTER_ELEMENTS, start=1):
            dst.set_band_description(i, name)
        for row in range(0, height, 256):
            rows = min(256, height - row)
            block = model_values[rng.integers(0, model_values.shape[0], rows * size)].astype("float32")
            block[rng.uniform(0, 1, rows * size) < 0.002] = -9999.0  # scattered nodata pixels
            dst.write(np.moveaxis(block.reshape(rows, size, -1), -1, 0),
                      window=rasterio.windows.Window(0, row, size, rows))


def score_in_child(tmp, model, raster, tag):
    env = dict(os.environ, GDAL_CACHEMAX="64")
    proc = subprocess.run([sys.executable, "-c", CHILD, ROOT, model, raster, os.path.join(tmp, tag), str(BUDGET_MB)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        print(proc.stderr)
        sys.exit(1)
    base, peak, traced, seconds, scored = (float(v) for v in proc.stdout.split()[-5:])
    return seconds, traced, peak - base, int(scored)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--elements", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--size", type=int, default=3072)
    args = parser.parse_args()
    rng = np.random.default_rng(20240613)

    # 1. points
    values = survey(args.samples, args.elements, rng)
    names = [f"E{j + 1}_ppm" for j in range(args.elements)]
    print(f"Points: {args.samples} samples x {args.elements} elements, network 24-12-3, {args.epochs} epochs of 64, "
          f"{va.DEFAULT_DRAWS} draws, {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    result = va.train_vae(values, names, epochs=args.epochs, seed=0)
    train_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        model = va.load_model(result.save(os.path.join(tmp, "points.onnx")))
        t0 = time.perf_counter()
        scored = model.score(values)
        onnx_s = time.perf_counter() - t0
        Z, usable, _ = va.prepare(values, names, result.preprocessing)
        t0 = time.perf_counter()
        vae_network.score_torch(result.scorer, Z[usable])
        torch_s = time.perf_counter() - t0
    same = np.allclose(scored["scores"], result.scores, rtol=1e-5, equal_nan=True)
    print(f"  training (preprocessing, {args.epochs} epochs, export): {train_s:7.2f} s "
          f"({1e3 * train_s / args.epochs:.0f} ms per epoch)")
    print(f"  scoring {args.samples} samples, ONNX (with preprocessing): {1e3 * onnx_s:7.1f} ms; torch: "
          f"{1e3 * torch_s:.1f} ms; ONNX = torch: {same}")

    # 2. raster
    raster_values = survey(20_000, len(RASTER_ELEMENTS), rng)
    small = max(256, args.size // 3)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = va.train_vae(raster_values, RASTER_ELEMENTS, epochs=30, seed=0).save(
            os.path.join(tmp, "raster.onnx"))
        print(f"Raster: {len(RASTER_ELEMENTS)} float32 bands, memory budget {BUDGET_MB} MB, GDAL_CACHEMAX=64 MB")
        rows = []
        for height in (small, args.size):
            path = os.path.join(tmp, f"stack_{height}.tif")
            write_raster(path, args.size, height, rng, raster_values)
            seconds, traced, grown, scored = score_in_child(tmp, model_path, path, f"out_{height}")
            size_mb = args.size * height * len(RASTER_ELEMENTS) * 4 / 2 ** 20
            print(f"  {args.size} x {height} x {len(RASTER_ELEMENTS)} ({size_mb:5.0f} MB): {seconds:6.1f} s, "
                  f"{1e6 * seconds / scored:.2f} us/pixel, numpy/Python peak {traced:.0f} MB, resident growth "
                  f"{grown:.0f} MB")
            rows.append((traced, grown))
            os.remove(path)
    (t_small, g_small), (t_big, g_big) = rows
    ok = same and t_big <= 1.5 * BUDGET_MB and g_big - g_small <= 0.5 * BUDGET_MB
    print(("PASS" if ok else "FAIL") + f": allocations within 1.5 x the budget ({t_big:.0f} MB), resident memory "
          f"grows by {g_big - g_small:.0f} MB for a raster {args.size / small:.0f} x taller")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
