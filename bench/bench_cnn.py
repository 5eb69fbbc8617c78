#!/usr/bin/env python3
"""Speed of the bundled spectral CNN: pixels per second through the block engine and onnxruntime.

A synthetic 224-band AVIRIS-like cube (mixtures of real USGS spectra with noise, 0-10000 integers, the
AVIRIS-1995 band centres of the library) is classified end to end (read, resample to the model's 10 nm
grid, preprocess, onnxruntime, write) with the bundled model, for two cube sizes, in fresh processes:
throughput and peak memory growth (VmHWM) show whether memory stays flat in image size. GDAL's block
cache is capped with GDAL_CACHEMAX=64 (MB) as for a batch job; left at its default (5 % of RAM) it fills
with tiles up to that cap. Torch eager
inference of the same network on the same spectra is timed for comparison.
Target on a 2-core machine: >= 25,000 px/s (a 1000 x 1000 scene in under 40 s).

``--ensemble N`` benches instead a seed ensemble of N networks of the bundled model's size (what
``train_spectral_cnn`` makes with ENSEMBLE=N) in one graph, with the bundled model's metadata; its
weights are random, which does not change the speed. ``--feature-view`` benches the bundled network's size with
the feature view of models trained from image pixels (a graph that also returns each pixel's distance to the 5th
nearest of 1,024 reference spectra, read by the out-of-distribution check), also with random weights.
"""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
TARGET = 25_000
SIZES = ((500, 400), (1000, 1000))

CHILD = r"""
import os, sys, time
ROOT, cube, out, model = sys.argv[1:5]
sys.path.insert(0, ROOT)
from core.hyperspectral import mapping
sys.path.insert(0, os.path.join(ROOT, "bench"))
from memory_probe import hwm
base = hwm()
t = time.perf_counter()
stats = mapping.cnn_classify_map(cube, model, out, memory_mb=256)
dt = time.perf_counter() - t
print(dt, stats["valid_pixels"], hwm() - base, stats["providers"][0])
"""


def make_cube(path, width, height):
    import numpy as np
    import rasterio

    from core.hyperspectral.spectral_library import read_library
    from core.engine.wavelengths import BandInfo, band_tags

    lib = read_library(os.path.join(ROOT, "test", "data", "usgs_minerals.sli"))
    spectra = np.nan_to_num(lib.spectra[:12], nan=0.2)
    info = BandInfo(centers=lib.wavelengths, fwhm=lib.fwhm, bad=None)
    rng = np.random.default_rng(0)
    profile = dict(driver="GTiff", width=width, height=height, count=spectra.shape[1], dtype="int16", nodata=-9999,
                   tiled=True, blockxsize=256, blockysize=256, interleave="pixel",
                   crs="EPSG:32612", transform=rasterio.Affine(15, 0, 500000, 0, -15, 4100000))
    with rasterio.open(path, "w", **profile) as dst:
        for i, tags in enumerate(band_tags(info), start=1):
            dst.update_tags(i, **tags)
        for row in range(0, height, 100):
            h = min(100, height - row)
            ab = rng.dirichlet(np.full(spectra.shape[0], 0.3), size=h * width)
            cube = ab @ spectra * rng.uniform(0.7, 1.1, (h * width, 1)) + rng.normal(0, 0.004, (h * width, spectra.shape[1]))
            block = np.clip(cube * 10000, 1, 10000).astype("int16").reshape(h, width, -1)
            dst.write(np.moveaxis(block, -1, 0), window=rasterio.windows.Window(0, row, width, h))
    return spectra.shape[1]


def ensemble_model(path, members, feature_view=False):
    """A model file like the bundled one whose graph averages ``members`` networks of its size; with
    ``feature_view`` its graph and check also have the feature view (1,024 random reference spectra)."""
    import numpy as np
    import torch

    from core.engine.bundled import bundled_models
    from core.engine.model_format import read_model_info, write_model
    from core.engine.spectral_network import (SpectralCNN, _torch_classes, ensemble_module, export_onnx,
                                              with_feature_reference)
    from core.hyperspectral import ood

    info = read_model_info(bundled_models("spectral_classification")[0][1])
    network = dict(info.training.get("parameters", {}).get("network", {}))
    torch.manual_seed(0)
    export = _torch_classes()["export"]
    nets = [export(SpectralCNN(info.n_bands, len(info.class_names), **network).eval(), np.zeros(info.n_bands),
                   np.ones(info.n_bands)).eval() for _ in range(members)]
    module = ensemble_module(nets)
    if feature_view:
        n = ood.FEATURE_REFERENCE_MAX
        reference = np.random.default_rng(0).random((n, info.n_bands), dtype=np.float32)
        module = with_feature_reference(module, reference, ood.FEATURE_K)
        info.training["ood"]["feature"] = ood.feature_check(len(info.class_names), ood.FEATURE_K, n,
                                                            np.linspace(0, 0.5, 101))
    write_model(export_onnx(module, info.n_bands), info, path)
    return path


def torch_eager_rate(n=100_000):
    import numpy as np
    import torch

    from core.engine.bundled import bundled_models
    from core.engine.model_format import read_model_info
    from core.engine.spectral_network import SpectralCNN

    path = bundled_models("spectral_classification")[0][1]
    info = read_model_info(path)
    network = dict(info.training.get("parameters", {}).get("network", {}))
    net = SpectralCNN(info.n_bands, len(info.class_names), **network).eval()
    # the bundled model's architecture and size; the weights do not change the speed
    x = torch.from_numpy(np.random.default_rng(0).random((n, info.n_bands), dtype=np.float32))
    with torch.no_grad():
        net(x[:1000])
        t = time.perf_counter()
        for i in range(0, n, 8192):
            torch.softmax(net(x[i:i + 8192]), dim=1)
        return n / (time.perf_counter() - t)


def main():
    from core.engine.bundled import bundled_models

    members = int(sys.argv[sys.argv.index("--ensemble") + 1]) if "--ensemble" in sys.argv else 0
    feature_view = "--feature-view" in sys.argv
    rates = []
    what = f"seed ensemble of {members} networks of the bundled model's size" if members else "bundled spectral CNN"
    if feature_view:
        what = f"{max(members, 1)} network(s) of the bundled model's size with the feature view"
    print(f"{what}, 224-band int16 cube, 256 MB budget, GDAL_CACHEMAX=64, target >= {TARGET} px/s")
    with tempfile.TemporaryDirectory() as tmp:
        model = (ensemble_model(os.path.join(tmp, "ensemble.onnx"), max(members, 1), feature_view)
                 if members or feature_view else bundled_models("spectral_classification")[0][1])
        for width, height in SIZES:
            cube = os.path.join(tmp, f"cube_{width}.tif")
            bands = make_cube(cube, width, height)
            proc = subprocess.run([sys.executable, "-c", CHILD, ROOT, cube, os.path.join(tmp, "out.tif"), model],
                                  capture_output=True, text=True, env=dict(os.environ, GDAL_CACHEMAX="64"))
            if proc.returncode:
                sys.exit(proc.stderr)
            seconds, pixels, growth, provider = proc.stdout.split()
            rate = int(pixels) / float(seconds)
            rates.append((rate, float(growth)))
            print(f"{width} x {height} x {bands}: {rate:,.0f} px/s ({float(seconds):.1f} s), "
                  f"peak memory growth {float(growth):.0f} MB, onnxruntime on {provider}")
    eager = torch_eager_rate()
    print(f"torch eager (network only, no I/O): {eager:,.0f} px/s")
    ok = rates[-1][0] >= TARGET and rates[-1][1] - rates[0][1] < 128
    print(("PASS" if ok else "BELOW TARGET") + f": {rates[-1][0]:,.0f} px/s end to end; memory "
          f"{rates[0][1]:.0f} MB -> {rates[-1][1]:.0f} MB for a {SIZES[1][0] * SIZES[1][1] / (SIZES[0][0] * SIZES[0][1]):.0f}"
          " x larger scene")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
