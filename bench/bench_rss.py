#!/usr/bin/env python3
"""Peak resident memory of whole runs against the memory budget, with the fixed overhead stated apart.

Issue 18/24: classifying a cube several times the budget peaked far above it. A process's peak
resident memory (VmHWM) is a fixed part (Python, numpy, GDAL, QGIS and the Processing framework,
onnxruntime, torch: paid once, whatever the raster) plus what the run adds while streaming the
raster. The budget governs the second part. This benchmark measures, each in a fresh process:

1. the fixed overhead of the imports: python + numpy + rasterio; + onnxruntime; + torch; and of a
   whole ``qgis_process`` run of the algorithm on a 10 x 10 pixel cube (QGIS, Processing, OreMap);
2. ``qgis_process`` runs of ``oremap:sam_classify`` and ``oremap:classify_spectral_cnn`` (the bundled
   model, onnxruntime) on a cube ~10x the budget (``OREMAP_MEMORY_MB=64``, set only in the
   environment: it wins over an unset Processing setting), reporting the peak and the peak less
   the fixed overhead of the same run on the small cube;
3. the block engine alone (core, no QGIS) on the same cube with and without OreMap's cap of GDAL's
   block cache (:func:`core.engine.raster.gdal_cache_limit`), showing what the cap saves.

PASS when each large run adds at most the budget plus 128 MB to its fixed overhead: besides the blocks
(numpy, what the budget governs) a run touches buffers that do not grow with the raster: GDAL's block cache
(capped at max(16 MB, budget/8)), OpenBLAS's per-thread buffers (~30 MB a thread), libtiff/DEFLATE
buffers of the compression threads. With the default 512 MB budget they are a small share.

Measured on this project's 2-core machine (1500 x 2000 x 112 cube, 10x a 128 MB budget): imports 72 MB
(python, numpy, rasterio), 92 MB (+ onnxruntime), 278 MB (+ torch); qgis_process runs on a 10 x 10 cube
302 MB (SAM) and 332 MB (CNN); on the 10x cube SAM adds 245 MB and the CNN 205 MB; the block engine alone
adds 838 MB with GDAL's default cache and 159 MB with the cap (numpy 102 MB). PASS.
"""

import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
BUDGET_MB = 128
WIDTH, HEIGHT = 1500, 2000

IMPORTS = {
    "python + numpy + rasterio": "import numpy, rasterio",
    "+ onnxruntime": "import numpy, rasterio, onnxruntime",
    "+ torch": "import numpy, rasterio, onnxruntime, torch",
}

ENGINE = r"""
import sys
ROOT, cube, out, budget, capped = sys.argv[1:6]
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/bench")
import contextlib, tracemalloc
from core.hyperspectral import mapping, spectral_library
from core.engine.raster import gdal_cache_limit
from memory_probe import hwm
lib = spectral_library.read_library(ROOT + "/test/data/usgs_minerals.sli").subset(
    ["Kaolinite CM9", "Alunite GDS84", "Muscovite GDS107", "Goethite WS222"])
base = hwm()
tracemalloc.start()
with (gdal_cache_limit(float(budget)) if capped == "1" else contextlib.nullcontext()):
    mapping.sam_map(cube, lib, out, memory_mb=float(budget))
print(f"{base:.0f} {hwm():.0f} {tracemalloc.get_traced_memory()[1] / 2 ** 20:.0f}")
"""


def peak_of(cmd, env=None):
    """Peak resident memory (MB) of a command run in a fresh parent that waits for it alone."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:] if r.returncode else ''); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, env=env)
    code, kb = proc.stdout.split()
    if int(code):
        print(proc.stderr)
        sys.exit(1)
    return int(kb) / 1024


def qgis_env(tmp):
    sys.path.insert(0, os.path.join(ROOT, "test"))
    plugins = os.path.join(ROOT, ".build", "plugins")
    os.makedirs(plugins, exist_ok=True)
    if not os.path.lexists(os.path.join(plugins, "oremap")):
        os.symlink(os.path.join("..", ".."), os.path.join(plugins, "oremap"))
    runtime = os.path.join(tmp, "runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PROJ_DATA="/usr/share/proj", XDG_RUNTIME_DIR=runtime,
               QGIS_PLUGINPATH=plugins, QGIS_CUSTOM_CONFIG_PATH=os.path.join(tmp, "profile"),
               PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ.get("PATH", ""),
               OREMAP_MEMORY_MB=str(BUDGET_MB), OMP_NUM_THREADS="1")
    subprocess.run(["qgis_process", "plugins", "enable", "oremap"], env=env, check=True, capture_output=True)
    return env


def main():
    from bench_memory import make_cube

    lib = os.path.join(ROOT, "test", "data", "usgs_minerals.sli")
    with tempfile.TemporaryDirectory() as tmp:
        small, big = os.path.join(tmp, "small.tif"), os.path.join(tmp, "big.tif")
        bands = make_cube(big, lib, HEIGHT)
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(big) as src:  # a 10 x 10 corner of the same cube: the fixed overhead of a run
            profile = dict(src.profile, width=10, height=10, tiled=False)
            profile.pop("blockxsize", None), profile.pop("blockysize", None)
            with rasterio.open(small, "w", **profile) as dst:
                dst.write(src.read(window=Window(0, 0, 10, 10)))
                for b in range(1, src.count + 1):
                    dst.update_tags(b, **src.tags(b))
        cube_mb = WIDTH * HEIGHT * bands * 4 / 2 ** 20
        print(f"Cube {WIDTH} x {HEIGHT} x {bands} bands: {cube_mb:.0f} MB as float32 = {cube_mb / BUDGET_MB:.1f} x "
              f"the {BUDGET_MB} MB budget (OREMAP_MEMORY_MB={BUDGET_MB}, Processing setting unset)")
        print("Fixed overhead (peak resident memory of the imports alone):")
        for label, code in IMPORTS.items():
            print(f"  {label:28s} {peak_of([sys.executable, '-c', code]):6.0f} MB")
        env = qgis_env(tmp)
        ok = True
        runs = {
            "sam_classify": lambda cube, out: ["oremap:sam_classify", "--", f"INPUT={cube}", f"LIBRARY={lib}",
                                               "SPECTRA=Kaolinite CM9;Alunite GDS84;Muscovite GDS107",
                                               f"OUTPUT_CLASSES={out}"],
            "classify_spectral_cnn": lambda cube, out: ["oremap:classify_spectral_cnn", "--", f"INPUT={cube}",
                                                        "MODEL=0", f"OUTPUT_CLASSES={out}"],
        }
        for name, args in runs.items():
            fixed = peak_of(["qgis_process", "run", *args(small, os.path.join(tmp, "s.tif"))], env)
            peak = peak_of(["qgis_process", "run", *args(big, os.path.join(tmp, "b.tif"))], env)
            added = peak - fixed
            ok &= added <= BUDGET_MB + 128
            print(f"qgis_process {name:22s} fixed overhead (10 x 10 cube) {fixed:5.0f} MB; {cube_mb / BUDGET_MB:.0f}x "
                  f"cube: peak {peak:5.0f} MB = fixed + {added:4.0f} MB ({added / BUDGET_MB:.2f} x the budget)")
        for capped in ("0", "1"):
            out = subprocess.run([sys.executable, "-c", ENGINE, ROOT, big, os.path.join(tmp, "e.tif"),
                                  str(BUDGET_MB), capped], capture_output=True, text=True, check=True,
                                 env={k: v for k, v in dict(os.environ, OMP_NUM_THREADS="1").items()
                                      if k != "GDAL_CACHEMAX"}).stdout.split()
            base, peak, traced = (float(v) for v in out)
            print(f"block engine alone (SAM), GDAL block cache {'capped at budget/8' if capped == '1' else 'at GDAL default'}: "
                  f"after imports {base:.0f} MB, peak {peak:.0f} MB (+{peak - base:.0f} MB; numpy {traced:.0f} MB)")
    print(("PASS" if ok else "FAIL") + f": each run adds at most the budget + 128 MB ({BUDGET_MB + 128} MB) to its "
          "fixed overhead")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
