"""Mineral abundance: training time and prediction speed.

* Training: 20 ROIs x 484 pixels x 224 bands (the scene of test/abundance_scene.py: real USGS
  spectra mixed linearly and intimately), 5-fold grouped CV plus the final fit, for the
  non-CNN ensemble and for the full ensemble with the 1D CNN.
* Prediction: pixels per second of the non-CNN ensemble through onnxruntime (the model
  alone, and end to end through the block engine on a 600 x 600 x 224 raster: read,
  predict, closure, intervals, write three rasters). Target: >= 50,000 px/s.

Run: ``make bench`` (or ``.venv/bin/python bench/bench_abundance.py``; add ``--with-cnn`` to also time
the full ensemble with the CNN, several minutes more).
"""

import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "test"))

TARGET_PX_S = 50_000


def main():
    import conftest  # noqa: F401 - registers the plugin package as 'oremap'
    import rasterio
    from abundance_scene import LISTED, make_scene, roi_pixels
    from rasterio.transform import from_origin

    from oremap.core.abundance import abundance as ab
    from oremap.core.abundance import abundance_map

    tmp = tempfile.mkdtemp(prefix="oremap_bench_abundance_")
    scene = make_scene(tmp, n_rows=4, n_cols=5, roi_size=22, seed=0, name="train")
    X, lab, ids = roi_pixels(scene)
    comp = ab.prepare_compositions(scene["lab"][:, :4], LISTED)
    Y = comp.values[ids]
    print(f"Training data: {X.shape[0]} pixels, {np.unique(ids).size} ROIs, {X.shape[1]} bands, "
          f"{len(comp.names)} parts")
    models = {}
    runs = [("non-CNN ensemble", ["pls", "ridge", "extra_trees", "hgb"])]
    if "--with-cnn" in sys.argv:
        runs.append(("full ensemble (with 1D CNN)", [f for f, _ in ab.FAMILIES]))
    for label, families in runs:
        t0 = time.perf_counter()
        result = ab.train_abundance_model(X, Y, ids, comp.names, families=families, seed=0)
        dt = time.perf_counter() - t0
        path = os.path.join(tmp, f"model_{len(families)}.onnx")
        result.save(path)
        models[label] = path
        print(f"  {label}: trained in {dt:.1f} s (5 folds + final); CV mean RMSE "
              f"{result.metrics[result.info.training['metrics']['ensemble']]['mean_rmse']:.2f} %, "
              f"coverage {100 * result.coverage['all']:.1f} %")

    model = abundance_map.AbundanceModel(models["non-CNN ensemble"])
    rng = np.random.default_rng(1)
    big = X[rng.integers(0, X.shape[0], 200_000)] * rng.uniform(0.95, 1.05, (200_000, 1)).astype(np.float32)
    model.predict(big[:1000])
    t0 = time.perf_counter()
    model.predict(big)
    rate_model = big.shape[0] / (time.perf_counter() - t0)
    print(f"Prediction, model alone (preprocessing, onnxruntime, closure, intervals): {rate_model:,.0f} px/s")

    side = 600
    raster = os.path.join(tmp, "cube.tif")
    with rasterio.open(scene["raster"]) as src:
        profile = dict(driver="GTiff", width=side, height=side, count=src.count, dtype="float32",
                       crs=src.crs, transform=from_origin(0, side, 1, 1), tiled=True, blockxsize=256,
                       blockysize=256, interleave="pixel")
        with rasterio.open(raster, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                dst.update_tags(b, **src.tags(b))
            for r0 in range(0, side, 100):  # the 200,000 spectra, repeated cyclically over the raster
                block = np.take(big, np.arange(r0 * side, (r0 + 100) * side) % big.shape[0], axis=0)
                dst.write(np.moveaxis(block.reshape(100, side, -1), -1, 0),
                          window=rasterio.windows.Window(0, r0, side, 100))
    outs = [os.path.join(tmp, n) for n in ("a.tif", "ci.tif", "dom.tif")]
    t0 = time.perf_counter()
    abundance_map.predict_abundance_map(raster, models["non-CNN ensemble"], *outs, level=0.9, memory_mb=256)
    rate_map = side * side / (time.perf_counter() - t0)
    print(f"Prediction, end to end on {side} x {side} x 224 (read, predict, write 3 rasters): {rate_map:,.0f} px/s")
    print(f"Target >= {TARGET_PX_S:,} px/s for the non-CNN ensemble: "
          f"{'met' if rate_model >= TARGET_PX_S else 'NOT met'} (model alone).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
