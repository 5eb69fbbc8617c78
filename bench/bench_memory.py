#!/usr/bin/env python3
"""Peak memory of the block engine: unmix a raster several times larger than the memory budget.

Writes a synthetic 0-10000 integer reflectance cube (mixtures of real USGS spectra) to a temporary
folder, then unmixes it in a fresh process with a 64 MB budget and reports the growth of the
process's peak resident memory over its baseline (imports, data structures), the raster's size
and the speed. GDAL's own block cache comes on top of the budget; it is capped here with
GDAL_CACHEMAX=64 (MB) as a user would for a batch job.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH, HEIGHT, BUDGET_MB = 2000, 1500, 64

CHILD = r"""
import importlib.util, os, resource, sys, time
ROOT, cube, lib_path, out, budget = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("oremap", os.path.join(ROOT, "__init__.py"),
                                              submodule_search_locations=[ROOT])
m = importlib.util.module_from_spec(spec); sys.modules["oremap"] = m; spec.loader.exec_module(m)
from oremap.core import mapping, spectral_library
lib = spectral_library.read_library(lib_path).subset(["Kaolinite CM9", "Alunite GDS84", "Muscovite GDS107",
                                                      "Calcite WS272", "Goethite WS222", "Lawn_Grass GDS91"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
stats = mapping.unmix_map(cube, lib, out, mode="fcls", memory_mb=float(budget))
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{base:.0f} {peak:.0f} {dt:.2f} {stats['blocks']} {stats['valid_pixels']}")
"""


def make_cube(path, lib_path):
    import numpy as np
    import rasterio

    sys.path.insert(0, os.path.join(ROOT, "test"))
    import conftest  # noqa: F401 - makes the package importable as oremap
    from oremap.core import spectral_library
    from oremap.core.wavelengths import BandInfo, band_tags

    lib = spectral_library.read_library(lib_path)
    good = np.all(np.isfinite(lib.spectra), axis=0)
    wl = lib.wavelengths[good][::2]  # ~100 bands
    spectra = np.array([np.interp(wl, lib.wavelengths[good], s[good]) for s in lib.spectra[:8]])
    rng = np.random.default_rng(1)
    info = BandInfo(centers=wl, fwhm=np.full(wl.size, 10.0))
    profile = dict(driver="GTiff", width=WIDTH, height=HEIGHT, count=wl.size, dtype="uint16", nodata=0,
                   tiled=True, blockxsize=256, blockysize=256, interleave="pixel", compress="none",
                   crs="EPSG:32612", transform=rasterio.Affine(30, 0, 500000, 0, -30, 4100000))
    with rasterio.open(path, "w", **profile) as dst:
        for i, tags in enumerate(band_tags(info), start=1):
            dst.update_tags(i, **tags)
        for row in range(0, HEIGHT, 250):
            n = 250 * WIDTH
            ab = rng.dirichlet(np.full(spectra.shape[0], 0.5), size=n)
            cube = ab @ spectra * rng.uniform(0.8, 1.1, size=(n, 1)) + rng.normal(0, 0.005, (n, wl.size))
            block = np.clip(cube * 10000, 1, 65535).astype("uint16").reshape(250, WIDTH, -1)
            dst.write(np.moveaxis(block, -1, 0), window=rasterio.windows.Window(0, row, WIDTH, 250))
    return wl.size


def main():
    lib_path = os.path.join(ROOT, "test", "data", "usgs_minerals.sli")
    with tempfile.TemporaryDirectory() as tmp:
        cube = os.path.join(tmp, "cube.tif")
        bands = make_cube(cube, lib_path)
        size_mb = WIDTH * HEIGHT * bands * 4 / 2 ** 20
        env = dict(os.environ, GDAL_CACHEMAX="64")
        proc = subprocess.run([sys.executable, "-c", CHILD, ROOT, cube, lib_path, os.path.join(tmp, "out.tif"),
                               str(BUDGET_MB)], capture_output=True, text=True, env=env)
        if proc.returncode:
            print(proc.stderr)
            sys.exit(1)
        base, peak, seconds, blocks, pixels = proc.stdout.split()
    growth = float(peak) - float(base)
    print(f"raster: {WIDTH} x {HEIGHT} x {bands} bands = {size_mb:.0f} MB as float32 reflectance "
          f"({size_mb / BUDGET_MB:.0f} x the budget)")
    print(f"memory budget: {BUDGET_MB} MB, blocks: {blocks}")
    print(f"peak resident memory: baseline {float(base):.0f} MB, after unmixing {float(peak):.0f} MB "
          f"(growth {growth:.0f} MB)")
    print(f"FCLS with 6 endmembers, end to end (read, unmix, write): "
          f"{1e6 * float(seconds) / int(pixels):.1f} us/pixel, {seconds} s")
    if growth > 2.5 * BUDGET_MB + 64:
        print("FAIL: memory grew far beyond the budget")
        sys.exit(1)


if __name__ == "__main__":
    main()
