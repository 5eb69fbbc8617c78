"""Element grids and other value rasters as real files store them (audit of 2026-12-07).

Element and score rasters were read with ``scale=1``, which skipped GDAL's band scale/offset metadata: an int32
grid of ppm x 10000 with scale 1e-4 (as QGIS, gdal_translate -scale and many archives write them) was scored as
70000 ppm where QGIS shows 7 ppm, and the VAE put 719 of 720 pixels above its 99th percentile. Complex rasters
lost their imaginary part without a word."""

import os

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import SHARED_DATA
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.raster import RasterSource

ELEMENTS = ["Cu_ppm", "Zn_ppm", "Pb_ppm", "Ni_ppm"]


def _grids(tmp_path):
    """A 6 x 8 four-element ppm grid of real area1 values (float32), and the same as int32 ppm x 10000 with GDAL scale
    1e-4, nodata -1 on one pixel."""
    import pandas as pd

    table = pd.read_csv(os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv"), usecols=ELEMENTS)
    table = table[(table > 0).all(axis=1)].head(48)
    ppm = table.to_numpy(np.float64).T.reshape(4, 6, 8)
    ppm = np.round(ppm * 10000) / 10000
    profile = dict(driver="GTiff", width=8, height=6, count=4, crs="EPSG:32750",
                   transform=Affine(500, 0, 500000, 0, -500, 6300000))
    plain, scaled = str(tmp_path / "ppm.tif"), str(tmp_path / "ppm_x10000.tif")
    with rasterio.open(plain, "w", dtype="float32", nodata=-1, **profile) as ds:
        data = ppm.astype(np.float32)
        data[:, 0, 0] = -1
        ds.write(data)
        ds.descriptions = tuple(ELEMENTS)
    with rasterio.open(scaled, "w", dtype="int32", nodata=-1, **profile) as ds:
        data = np.round(ppm * 10000).astype(np.int32)
        data[:, 0, 0] = -1
        ds.write(data)
        ds.descriptions = tuple(ELEMENTS)
        ds.scales = (1e-4,) * 4
        ds.offsets = (0.0,) * 4
    return plain, scaled, ppm.astype(np.float32)


def test_metadata_scale_applies_gdal_scale_only(tmp_path):
    plain, scaled, ppm = _grids(tmp_path)
    with RasterSource(scaled, scale="metadata") as src:
        values = src.read_nan(((0, 6), (0, 8)))
    assert np.isnan(values[0, 0]).all()
    np.testing.assert_allclose(values[1:, :].transpose(2, 0, 1), ppm[:, 1:, :], rtol=1e-6)
    # no metadata: the stored values as they are, integers above 100 not taken for reflectance x 10000
    with RasterSource(plain, scale="metadata") as src:
        assert (src.gain, src.bias) == (1.0, 0.0)
    raw = str(tmp_path / "raw.tif")
    with rasterio.open(scaled) as ds, rasterio.open(raw, "w", **{**ds.profile}) as out:
        out.write(ds.read())
    with RasterSource(raw, scale="metadata") as src:
        assert (src.gain, src.bias) == (1.0, 0.0)
        assert src.read_nan(((0, 1), (1, 2)))[0, 0, 0] == pytest.approx(round(float(ppm[0, 0, 1]) * 10000))


def test_element_stack_and_vae_sample_read_the_scaled_grid_as_the_plain_one(tmp_path):
    from oremap.core.geochemistry.grid_meaning import raster_sample
    from oremap.core.geochemistry.prospectivity_data import read_stack
    from oremap.core.geochemistry.vae_raster import sample_raster

    plain, scaled, ppm = _grids(tmp_path)
    a, b = read_stack(plain), read_stack(scaled)
    np.testing.assert_allclose(b.data, a.data, rtol=1e-6, equal_nan=True)
    assert np.nanmax(b.data) == pytest.approx(float(ppm.reshape(4, -1)[:, 1:].max()), rel=1e-6)   # ppm, not x 10000
    sa, na = sample_raster(plain, [1, 2, 3, 4], max_samples=100, seed=1)
    sb, nb = sample_raster(scaled, [1, 2, 3, 4], max_samples=100, seed=1)
    assert na == nb == 47
    np.testing.assert_allclose(sb, sa, rtol=1e-6)
    np.testing.assert_allclose(raster_sample(scaled, [1, 2, 3, 4]), raster_sample(plain, [1, 2, 3, 4]), rtol=1e-6,
                               equal_nan=True)


def test_complex_raster_is_refused_naming_the_fix(tmp_path):
    path = str(tmp_path / "c.tif")
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=2, dtype="complex64", crs="EPSG:32612",
                       transform=Affine(30, 0, 0, 0, -30, 0)) as ds:
        ds.write((np.full((2, 2, 3), 0.3) + 0.2j).astype(np.complex64))
    with pytest.raises(OreMapError, match="complex values") as err:
        RasterSource(path)
    assert "real part" in err.value.fix
