"""A physically plausible test scene for mineral abundance: real USGS spectra, mixed.

Rock samples (ROIs) of kaolinite, muscovite, calcite, goethite and quartz are laid out
as square patches on a dark background, like samples on a scanning tray. Each ROI has a
"laboratory" composition (what XRD would report for the whole sample); its pixels vary
around it (a sample is not homogeneous). Spectra are real splib07 spectra (AVIRIS-1995
channels, test/data/usgs_minerals.sli) mixed

* linearly (areal mixing: side by side at the sub-pixel scale), and
* intimately (grains mixed in the same volume): the reflectances are turned into
  single-scattering albedos with the isotropic two-stream (Hapke) approximation
  ``r = (1 - sqrt(1 - w)) / (1 + sqrt(1 - w))``, mixed by fraction and turned back,
  which darkens mixtures non-linearly,

with a per-ROI share of intimate mixing, per-pixel illumination (+/- 10 %) and sensor
noise (SNR ~ 150). Quartz is not listed in the lab table: it is the remainder that
OreMap adds as "Other".
"""

import os

import numpy as np

from conftest import USGS_LIBRARY

MINERALS = ["Kaolinite", "Muscovite", "Calcite", "Goethite", "Quartz"]
LISTED = MINERALS[:4]
_LIBRARY_NAMES = ["Kaolinite CM9", "Muscovite GDS107", "Calcite WS272", "Goethite WS222", "Quartz GDS31"]


def endmember_spectra():
    from oremap.core.hyperspectral.spectral_library import read_library

    lib = read_library(USGS_LIBRARY).subset(_LIBRARY_NAMES)
    spectra = np.clip(np.asarray(lib.spectra, np.float64), 0.005, 0.995)
    return lib.wavelengths, spectra


def _albedo(r):
    s = (1.0 - r) / (1.0 + r)
    return 1.0 - s ** 2


def _reflectance(w):
    s = np.sqrt(np.clip(1.0 - w, 0.0, 1.0))
    return (1.0 - s) / (1.0 + s)


def mix(fractions, spectra, intimate_share):
    """Spectra of mixtures: ``(1 - g) * linear + g * intimate`` per row."""
    linear = fractions @ spectra
    intimate = _reflectance(fractions @ _albedo(spectra))
    g = np.asarray(intimate_share, np.float64).reshape(-1, 1)
    return (1.0 - g) * linear + g * intimate


def make_scene(folder, n_rows=5, n_cols=6, roi_size=6, gap=2, seed=0, name="scene", noise=1 / 150,
               nonlinear=(0.0, 0.6), concentration=150.0):
    """Write ``<name>.tif`` (224 bands, wavelengths in metadata) and ``<name>_rois.gpkg``.

    Returns a dict: paths, lab compositions (% of the five minerals), per-pixel true
    compositions (rows, cols, 5) (NaN on the background), ROI ids per pixel (-1 outside).
    """
    import geopandas as gpd
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from oremap.core.engine.wavelengths import BandInfo, band_tags

    rng = np.random.default_rng(seed)
    wavelengths, spectra = endmember_spectra()
    k = len(MINERALS)
    n_roi = n_rows * n_cols
    step = roi_size + gap
    height, width = gap + n_rows * step, gap + n_cols * step
    lab = rng.dirichlet(np.full(k, 0.7), n_roi) * 100.0
    lab = np.round(lab, 1)
    lab[:, -1] = 100.0 - lab[:, :-1].sum(axis=1)  # rounding goes to quartz, as a lab would
    lab = np.clip(lab, 0.0, None)
    truth = np.full((height, width, k), np.nan)
    roi_id = np.full((height, width), -1, np.int64)
    cube = np.empty((height, width, spectra.shape[1]))
    # background: a dark, nearly flat tray, with the sensor's band-to-band noise (no measured spectrum is flat to
    # the last digit: one value in every band is the fill outside a footprint, which readers take as nodata); its
    # own generator, so that the scene's other draws stay as they were
    cube[:] = 0.04 + 0.01 * rng.standard_normal((height, width, 1))
    cube += 0.0005 * np.random.default_rng([seed, 1]).standard_normal(cube.shape)
    share = rng.uniform(*nonlinear, n_roi)
    geoms = []
    x0, y0, res = 500000.0, 4100000.0, 0.5
    for i in range(n_roi):
        r, c = divmod(i, n_cols)
        r0, c0 = gap + r * step, gap + c * step
        F = rng.dirichlet(lab[i] / 100.0 * concentration + 0.05, roi_size * roi_size)
        X = mix(F, spectra, np.full(F.shape[0], share[i]))
        X *= rng.uniform(0.9, 1.1, (F.shape[0], 1))
        X += noise * X.mean(axis=1, keepdims=True) * rng.standard_normal(X.shape)
        cube[r0:r0 + roi_size, c0:c0 + roi_size] = X.reshape(roi_size, roi_size, -1)
        truth[r0:r0 + roi_size, c0:c0 + roi_size] = (F * 100.0).reshape(roi_size, roi_size, k)
        roi_id[r0:r0 + roi_size, c0:c0 + roi_size] = i
        # the ROI polygon: pixel edges, shrunk by a quarter pixel so only the ROI's pixel centres fall inside
        geoms.append(box(x0 + c0 * res + res / 4, y0 - (r0 + roi_size) * res + res / 4,
                         x0 + (c0 + roi_size) * res - res / 4, y0 - r0 * res - res / 4))
    os.makedirs(folder, exist_ok=True)
    tif = os.path.join(folder, f"{name}.tif")
    info = BandInfo(centers=np.asarray(wavelengths), fwhm=None, bad=None)
    with rasterio.open(tif, "w", driver="GTiff", width=width, height=height, count=cube.shape[2],
                       dtype="float32", crs="EPSG:32611", transform=from_origin(x0, y0, res, res),
                       nodata=-9999.0) as dst:
        dst.write(np.moveaxis(cube.astype(np.float32), -1, 0))
        for b, tags in enumerate(band_tags(info), start=1):
            dst.update_tags(b, **tags)
    table = {m.lower(): lab[:, j] for j, m in enumerate(LISTED)}
    gdf = gpd.GeoDataFrame({"sample": [f"S{i + 1:02d}" for i in range(n_roi)], **table}, geometry=geoms,
                           crs="EPSG:32611")
    rois = os.path.join(folder, f"{name}_rois.gpkg")
    gdf.to_file(rois, driver="GPKG")
    return {"raster": tif, "rois": rois, "lab": lab, "truth": truth, "roi_id": roi_id, "geometries": geoms,
            "shape": (height, width)}


def roi_pixels(scene):
    """Spectra, lab compositions (% of the 5 minerals) and ROI ids of the scene's ROI pixels."""
    import rasterio

    with rasterio.open(scene["raster"]) as ds:
        cube = np.moveaxis(ds.read(), 0, -1)
    inside = scene["roi_id"] >= 0
    ids = scene["roi_id"][inside]
    return cube[inside].astype(np.float32), scene["lab"][ids], ids
