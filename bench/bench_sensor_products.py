#!/usr/bin/env python3
"""Speed and memory of reading a sensor product: an EMIT L2A RFL granule orthorectified to a GeoTIFF.

Writes an EMIT-format granule (NetCDF4, 285 bands, float32; the swath turned 20 degrees on its map grid
through the geometry lookup table, as EMIT's ISS orbit does) of LINES x SAMPLES pixels to a temporary
folder, then converts it with core.hyperspectral.sensor_products.write_geotiff under a memory budget in a fresh
process, and reports the time and the peak of numpy/Python allocations (tracemalloc), which must stay
near the budget whatever the granule's size. ``--quick`` uses a smaller granule.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_MB = 128

CHILD = r"""
import sys, time, tracemalloc
ROOT, path, out, budget = sys.argv[1:5]
sys.path.insert(0, ROOT)
from core.hyperspectral import sensor_products
tracemalloc.start()
t = time.perf_counter()
product = sensor_products.open_product(path)
sensor_products.write_geotiff(product, out, memory_mb=float(budget))
dt = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1] / 2**20
print(f"{product.width} x {product.height} map cells, {product.band_info.n_bands} bands: {dt:.1f} s, "
      f"numpy/Python peak {peak:.0f} MB (budget {float(budget):.0f} MB)")
"""


def write_granule(path, lines, samples, bands=285, angle=20.0):
    from osgeo import gdal

    ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(path)
    root = ds.GetRootGroup()
    d_down = root.CreateDimension("downtrack", None, None, lines)
    d_cross = root.CreateDimension("crosstrack", None, None, samples)
    d_bands = root.CreateDimension("bands", None, None, bands)
    f32 = gdal.ExtendedDataType.Create(gdal.GDT_Float32)
    refl = root.CreateMDArray("reflectance", [d_down, d_cross, d_bands], f32)
    refl.SetNoDataValueDouble(-9999.0)
    rng = np.random.default_rng(0)
    base = (0.2 + 0.1 * np.sin(np.linspace(0, 6, bands))).astype(np.float32)
    for start in range(0, lines, 64):
        n = min(64, lines - start)
        block = base[None, None, :] * rng.uniform(0.5, 1.5, (n, samples, 1)).astype(np.float32)
        refl.Write(np.ascontiguousarray(block), array_start_idx=[start, 0, 0], count=[n, samples, bands])
    a = root.CreateAttribute("geotransform", [6], gdal.ExtendedDataType.Create(gdal.GDT_Float64))
    a.Write([-117.0, 0.00054, 0.0, 36.0, 0.0, -0.00054])
    a = root.CreateAttribute("spatial_ref", [], gdal.ExtendedDataType.CreateString())
    a.Write('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
            'UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]')
    sbp = root.CreateGroup("sensor_band_parameters")
    for name, values in (("wavelengths", np.linspace(381.0, 2493.0, bands)), ("fwhm", np.full(bands, 8.5))):
        sbp.CreateMDArray(name, [d_bands], f32).Write(values.astype(np.float32))
    sbp.CreateMDArray("good_wavelengths", [d_bands], gdal.ExtendedDataType.Create(gdal.GDT_Byte)).Write(
        np.ones(bands, np.uint8))
    # map grid: the swath turned by `angle`; each map cell looks up the swath pixel under it
    t = np.radians(angle)
    corners = np.array([[0, 0], [0, samples], [lines, 0], [lines, samples]], float)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    mapped = corners @ rot.T
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    ny, nx = int(np.ceil(hi[0] - lo[0])), int(np.ceil(hi[1] - lo[1]))
    loc = root.CreateGroup("location")
    d_oy = root.CreateDimension("ortho_y", None, None, ny)
    d_ox = root.CreateDimension("ortho_x", None, None, nx)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float) + 0.5
    pts = np.stack([yy.ravel() + lo[0], xx.ravel() + lo[1]], axis=1) @ rot  # inverse rotation
    line, sample = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    inside = (line >= 0) & (line < lines) & (sample >= 0) & (sample < samples)
    i32 = gdal.ExtendedDataType.Create(gdal.GDT_Int32)
    loc.CreateMDArray("glt_x", [d_oy, d_ox], i32).Write(np.where(inside, sample + 1, 0).reshape(ny, nx).astype(np.int32))
    loc.CreateMDArray("glt_y", [d_oy, d_ox], i32).Write(np.where(inside, line + 1, 0).reshape(ny, nx).astype(np.int32))
    del ds


def main():
    quick = "--quick" in sys.argv
    lines, samples = (400, 300) if quick else (1000, 600)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "EMIT_L2A_RFL_001_20230101T000000_2300100_001.nc")
        write_granule(path, lines, samples)
        size = os.path.getsize(path) / 2**20
        print(f"EMIT-format granule {lines} x {samples} x 285 ({size:.0f} MB), budget {BUDGET_MB} MB:")
        env = dict(os.environ, GDAL_CACHEMAX="64")
        subprocess.run([sys.executable, "-c", CHILD, ROOT, path, os.path.join(tmp, "out.tif"), str(BUDGET_MB)],
                       check=True, env=env)


if __name__ == "__main__":
    main()
