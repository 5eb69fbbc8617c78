"""Benchmark :func:`core.geochemistry.idw.idw_to_raster` against ``gdal_grid -a invdistnn``.

Run from the repository root::

    .venv/bin/python bench/bench_idw.py (or make bench) [--points 7234] [--size 3072] [--radius 5000]

Data: a plausible clustered survey in a 153.6 km square (UTM metres): 40 % regional
samples on a jittered grid with gaps, 60 % in 30 Gaussian follow-up clusters of
0.4-2 km, log-normal values. Both programs grid the same points to the same
``size x size`` grid of float32 tiled DEFLATE GeoTIFF, with power 2, 12 neighbours,
the same search radius, smoothing 0, pixel centres at the same coordinates
(gdal_grid's -txe/-tye are pixel edges), all CPUs. Times are wall clock, reading
and writing included. The script exits with status 1 when the nodata masks differ
or a value differs by more than 1e-5 relative.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import rasterio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from core.geochemistry.idw import idw_to_raster  # noqa: E402

SIDE = 153600.0  # m
ORIGIN = (400000.0, 6200000.0)  # lower-left corner, UTM zone 50 south


def survey(n, rng):
    """Clustered sample locations and log-normal values."""
    n_regional = int(0.4 * n)
    side = int(np.ceil(np.sqrt(n_regional / 0.8)))
    gx, gy = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side)
    cells = np.column_stack([gx.ravel(), gy.ravel()])
    # leave out a few unsampled areas (lakes, access), then jitter the grid
    holes = rng.uniform(0.1, 0.9, (4, 2))
    keep = np.min(np.linalg.norm(cells[:, None, :] - holes[None], axis=2), axis=1) > 0.08
    cells = cells[keep][rng.permutation(int(keep.sum()))[:n_regional]]
    regional = cells * SIDE + rng.normal(0, 0.25 * SIDE / side, cells.shape)
    n_cluster = n - len(regional)
    centres = rng.uniform(0.1, 0.9, (30, 2)) * SIDE
    sizes = rng.uniform(400.0, 2000.0, 30)
    which = rng.integers(0, 30, n_cluster)
    clusters = centres[which] + rng.normal(0, 1, (n_cluster, 2)) * sizes[which, None]
    xy = np.clip(np.vstack([regional, clusters]), 0, SIDE) + ORIGIN
    z = rng.lognormal(mean=0.0, sigma=1.2, size=len(xy))
    return xy[:, 0], xy[:, 1], z


def run_gdal_grid(folder, x, y, z, bounds, size, radius, k):
    with open(os.path.join(folder, "points.csv"), "w") as fh:
        fh.write("x,y,z\n")
        fh.writelines(f"{a!r},{b!r},{c!r}\n" for a, b, c in zip(x, y, z))
    with open(os.path.join(folder, "points.vrt"), "w") as fh:
        fh.write('<OGRVRTDataSource><OGRVRTLayer name="points"><SrcDataSource>points.csv</SrcDataSource>'
                 '<GeometryType>wkbPoint</GeometryType><GeometryField encoding="PointFromColumns" x="x" y="y" '
                 'z="z"/></OGRVRTLayer></OGRVRTDataSource>')
    xmin, ymin, xmax, ymax = bounds
    out = os.path.join(folder, "gdal.tif")
    command = [shutil.which("gdal_grid"), "-q",
               "-a", f"invdistnn:power=2:smoothing=0:max_points={k}:radius={radius!r}:nodata=-9999",
               "-txe", repr(xmin), repr(xmax), "-tye", repr(ymax), repr(ymin), "-outsize", str(size), str(size),
               "-a_srs", "EPSG:32750", "-ot", "Float32", "-co", "TILED=YES", "-co", "COMPRESS=DEFLATE",
               "-co", "PREDICTOR=3", "-l", "points", "points.vrt", out]
    env = dict(os.environ, GDAL_NUM_THREADS="ALL_CPUS")
    t0 = time.perf_counter()
    subprocess.run(command, check=True, cwd=folder, env=env)
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=7234)
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--radius", type=float, default=5000.0)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("gdal_grid") is None:
        sys.exit("gdal_grid is not installed")

    rng = np.random.default_rng(20240612)
    x, y, z = survey(args.points, rng)
    cell = SIDE / args.size
    bounds = (ORIGIN[0], ORIGIN[1], ORIGIN[0] + SIDE, ORIGIN[1] + SIDE)
    print(f"{len(x)} points -> {args.size} x {args.size} grid of {cell:g} m, power 2, k={args.k}, "
          f"radius {args.radius:g} m, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as folder:
        ours_times, gdal_times = [], []
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            out = os.path.join(folder, "ours.tif")
            t0 = time.perf_counter()
            # max_distance=None: gdal_grid has no limit but the radius (OreMap's default also leaves cells far
            # from every sample nodata)
            idw_to_raster(x, y, z, ["z"], out, cell, extent=bounds, crs="EPSG:32750", k=args.k,
                          radius=args.radius, max_distance=None)
            ours_times.append(time.perf_counter() - t0)
            seconds, gdal_out = run_gdal_grid(folder, x, y, z, bounds, args.size, args.radius, args.k)
            gdal_times.append(seconds)
        with rasterio.open(out) as a, rasterio.open(gdal_out) as b:
            ours, theirs = a.read(1).astype(np.float64), b.read(1).astype(np.float64)
            same_grid = a.transform.almost_equals(b.transform, precision=1e-9)
    mask_ours, mask_gdal = ours == -9999, theirs == -9999
    valid = ~mask_ours & ~mask_gdal
    diff = np.abs(ours[valid] - theirs[valid])
    rel = diff / np.maximum(np.abs(theirs[valid]), 1e-12)
    print(f"ours (idw_to_raster) : best {min(ours_times):7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours_times)})")
    print(f"gdal_grid invdistnn  : best {min(gdal_times):7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in gdal_times)})")
    print(f"speed-up             : {min(gdal_times) / min(ours_times):.2f} x")
    print(f"nodata cells         : ours {mask_ours.sum()}, gdal_grid {mask_gdal.sum()}, "
          f"differing {(mask_ours != mask_gdal).sum()}")
    print(f"max abs difference   : {diff.max():.3g} (values {theirs[valid].min():.3g} to {theirs[valid].max():.3g}), "
          f"max relative {rel.max():.3g}")
    ok = same_grid and (mask_ours == mask_gdal).all() and rel.max() <= 1e-5
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
