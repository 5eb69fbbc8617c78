"""Synthetic mines painted into REAL Sentinel-2 backgrounds (test fixtures for issue 7).

Backgrounds are the real BigEarthNet L2A patches under ``SHARED_DATA/sentinel2``
(120 x 120 pixels at 10 m, per-band files read and stacked on the 10 m grid by
:func:`oremap.core.sentinel2.sentinel2.open_sentinel2`), flipped/rotated and mosaicked for
variety. Mines are drawn as vector geometry in pixel coordinates, then
rasterised at 2 m (5 x 5 sub-pixels per 10 m pixel) so that every pixel holds the
covered fraction of each surface (sub-pixel mixing at the edges and along narrow
roads):

* open pits: irregular star-shaped outlines (a few random Fourier harmonics,
  elongated and rotated), walls of weathered rock, iron-stained quartzite,
  goethite phyllite and sand, with concentric benches (brightness rings) and a
  shaded side; some hold a pit lake;
* waste dumps beside the pit: iron oxides (goethite, hematite, jarosite) mixed
  with clays (kaolinite, montmorillonite) and rock;
* tailings ponds: turbid water (clear water mixed with USGS water + suspended
  montmorillonite spectra), a pale clay-rich beach along one side and a dam wall;
* haul roads (8-20 m wide, so mostly sub-pixel) joining pit, dumps, pond and the
  patch edge: dust and gravel.

Surface spectra are USGS splib07 spectra (``test/data/usgs_minerals.sli`` and
``SHARED_DATA/hyperspectral/s07_AV95_envi.sli``, AVIRIS-1995 channels) convolved
to the Sentinel-2 bands with Gaussian responses
(:func:`oremap.core.sentinel2.sentinel2.convolve_to_s2`), mixed per pixel with smooth random
abundance fields and brightness. The mine contribution of each 20 m / 60 m band
is blurred over its native pixel (a box of 2 / 6 pixels), as the sensor would see
it, and every patch, with or without a mine, gets the same sensor noise
(SNR about 100) and is stored as uint16 DN = reflectance x 10000 (0 = nodata).

Attribution: BigEarthNet (Sumbul et al. 2019), CDLA-Permissive-1.0; contains
modified Copernicus Sentinel data 2017-2018. USGS Spectral Library Version 7
(Kokaly et al. 2017), public domain.

API: :func:`make_patches` (competition layout) and :func:`make_scene` (a mosaic
with several mines, for segmentation and detection).
"""

import csv
import functools
import glob
import math
import os
import sys

import numpy as np

_TEST_DIR = os.path.dirname(os.path.abspath(__file__))
if _TEST_DIR not in sys.path:
    sys.path.insert(0, _TEST_DIR)

from conftest import DATA, SHARED_DATA  # noqa: E402  (registers the 'oremap' package)

S2_FOLDER = os.path.join(SHARED_DATA, "sentinel2", "BigEarthNet-S2-Example")
AV95_LIBRARY = os.path.join(SHARED_DATA, "hyperspectral", "s07_AV95_envi.sli")
USGS_LIBRARY = os.path.join(DATA, "usgs_minerals.sli")

TILE = 120
SUPERSAMPLE = 5

#: Surface types, in drawing priority (a later one covers an earlier one).
FEATURES = ["haul_road", "waste_dump", "dam", "open_pit", "beach", "pond", "pit_lake"]

# Endmember spectra of each surface: (library, name prefix).
_ENDMEMBERS = {
    "rock": [("av95", "Basalt_weathered BR93-43"), ("av95", "Pyroxene_Basalt CU01-20A"),
             ("av95", "Hematite_Coatd_Qtzt BR93-25A"), ("av95", "Goethite_Phyllite CU91-236A"),
             ("av95", "Chlor+Goethite CU93-4B"), ("av95", "Quartz GDS74 Sand Ottawa"),
             ("av95", "Jarosite_Rhyolite CU91-20A")],
    "iron": [("usgs", "Goethite WS222"), ("usgs", "Hematite GDS27"), ("av95", "Goethite WS219 (limonite)"),
             ("av95", "Hematite.02+Quartz.98 GDS76"), ("av95", "Jarosite GDS24 Na"), ("av95", "Limonite HS41.3")],
    "clay": [("usgs", "Kaolinite CM9"), ("usgs", "Montmorillonite SWy-1"), ("av95", "Montmorillonite+Illite CM37"),
             ("av95", "Kaolinite KL502"), ("av95", "Stonewall_Playa_Dry_Mud")],
    "water": [("av95", "Seawater_Coast_Chl SW1"), ("av95", "Seawater_Open_Ocean SW2")],
    "turbid": [("av95", "Water+Montmor SWy-2+0.50g/l"), ("av95", "Water+Montmor SWy-2+1.67g/l"),
               ("av95", "Water+Montmor SWy-2+5.01g/l")],
    "dust": [("av95", "WTC_Dust_Debris WTC01-2"), ("av95", "Concrete GDS375 Lt Gry Road"),
             ("av95", "Stonewall_Playa_Dry_Mud"), ("av95", "Basalt_weathered BR93-43")],
}

# Surface -> (groups of endmembers with their mean share, brightness range).
_SURFACES = {
    "open_pit": ([("rock", 0.7), ("iron", 0.2), ("clay", 0.1)], (0.5, 0.9)),
    "waste_dump": ([("rock", 0.55), ("iron", 0.3), ("clay", 0.15)], (0.5, 0.85)),
    "dam": ([("rock", 0.5), ("clay", 0.3), ("dust", 0.2)], (0.65, 0.95)),
    "beach": ([("clay", 0.45), ("iron", 0.15), ("dust", 0.4)], (0.5, 0.8)),
    "pond": ([("water", 0.6), ("turbid", 0.4)], (0.8, 1.1)),
    "pit_lake": ([("water", 0.75), ("turbid", 0.25)], (0.6, 1.0)),
    "haul_road": ([("dust", 0.75), ("iron", 0.1), ("rock", 0.15)], (0.75, 1.0)),
}


# ---------------------------------------------------------------------------
# Inputs: real backgrounds and library spectra
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def backgrounds():
    """The real BigEarthNet patches as reflectance ``(120, 120, 12)`` with their georeference."""
    from oremap.core.sentinel2.sentinel2 import S2_BANDS, open_sentinel2

    out = []
    for folder in sorted(glob.glob(os.path.join(S2_FOLDER, "*"))):
        if not os.path.isdir(folder):
            continue
        with open_sentinel2(folder) as s2:
            refl = s2.read_reflectance(S2_BANDS)
            out.append(dict(name=os.path.basename(folder), refl=refl, transform=s2.transform, crs=s2.crs))
    if not out:
        raise FileNotFoundError(f"No BigEarthNet patches under {S2_FOLDER}.")
    return tuple(out)


def _find(lib, prefix):
    for i, name in enumerate(lib.names):
        if name.startswith(prefix):
            return i
    raise KeyError(prefix)


@functools.lru_cache(maxsize=1)
def endmembers():
    """``{group: array (k, 12)}``: USGS spectra convolved to the S2 bands (Gaussian responses)."""
    from oremap.core.sentinel2.sentinel2 import convolve_to_s2
    from oremap.core.hyperspectral.spectral_library import read_library

    libs = {"usgs": read_library(USGS_LIBRARY), "av95": read_library(AV95_LIBRARY)}
    out = {}
    for group, entries in _ENDMEMBERS.items():
        rows = []
        for lib_key, prefix in entries:
            lib = libs[lib_key]
            i = _find(lib, prefix)
            s2 = convolve_to_s2(lib.spectra[i], lib.wavelengths, src_fwhm=lib.fwhm)
            if not np.all(np.isfinite(s2)):  # a spectrum with a gap at an S2 band: not used
                continue
            rows.append(np.clip(s2, 0.001, 1.0))
        out[group] = np.array(rows)
    return out


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------


def _blob(rng, cx, cy, radius, elongation=1.0, roughness=0.15, n=72):
    """An irregular star-shaped polygon (pixel coordinates)."""
    from shapely.geometry import Polygon

    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 7):
        r += rng.uniform(0, roughness) / (k - 1) ** 0.8 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.45, None)
    x, y = r * np.cos(theta) * elongation, r * np.sin(theta) / elongation
    angle = rng.uniform(0, np.pi)
    c, s = math.cos(angle), math.sin(angle)
    return Polygon(np.column_stack([cx + c * x - s * y, cy + s * x + c * y])).buffer(0)


def _road(rng, start, end, width):
    """A gently winding road between two points, buffered to ``width`` pixels."""
    from shapely.geometry import LineString

    start, end = np.asarray(start, float), np.asarray(end, float)
    d = end - start
    length = float(np.hypot(*d))
    normal = np.array([-d[1], d[0]]) / max(length, 1e-9)
    t = np.linspace(0, 1, 6)
    bend = rng.uniform(-0.15, 0.15) * length * np.sin(np.pi * t) + rng.normal(0, 0.6, t.size) * (t * (1 - t) > 0)
    points = start[None] + t[:, None] * d[None] + bend[:, None] * normal[None]
    return LineString(points).buffer(width / 2.0, cap_style=1, join_style=1)


def mine_features(rng, cx, cy, scale=1.0, extent=None):
    """The surfaces of one mine around ``(cx, cy)`` (pixel coordinates): ``{feature: geometry}``."""
    from shapely.geometry import Point
    from shapely.ops import unary_union

    feats = {}
    pit_r = rng.uniform(7, 16) * scale
    pit = _blob(rng, cx, cy, pit_r, elongation=rng.uniform(1.0, 1.6), roughness=0.2)
    feats["open_pit"] = pit
    if rng.random() < 0.4:
        feats["pit_lake"] = _blob(rng, cx + rng.normal(0, 1), cy + rng.normal(0, 1), pit_r * rng.uniform(0.25, 0.45),
                                  roughness=0.1).intersection(pit.buffer(-2))
    taken = [pit.buffer(3)]
    dumps = []
    for _ in range(int(rng.integers(1, 4))):
        for _try in range(20):
            angle = rng.uniform(0, 2 * np.pi)
            r = rng.uniform(5, 11) * scale
            dist = pit_r * 1.3 + r + rng.uniform(2, 8)
            dump = _blob(rng, cx + dist * math.cos(angle), cy + dist * math.sin(angle), r,
                         elongation=rng.uniform(1.0, 1.8), roughness=0.25)
            if not any(dump.intersects(t) for t in taken):
                dumps.append(dump)
                taken.append(dump.buffer(3))
                break
    if dumps:
        feats["waste_dump"] = unary_union(dumps)
    pond_centre = None
    if rng.random() < 0.6:
        for _try in range(20):
            angle = rng.uniform(0, 2 * np.pi)
            r = rng.uniform(6, 13) * scale
            dist = pit_r * 1.4 + r + rng.uniform(6, 16)
            px, py = cx + dist * math.cos(angle), cy + dist * math.sin(angle)
            pond = _blob(rng, px, py, r, elongation=rng.uniform(1.0, 1.5), roughness=0.1)
            if not any(pond.buffer(2).intersects(t) for t in taken):
                shift = rng.normal(0, 1, 2)
                shift = shift / (np.hypot(*shift) + 1e-9) * r * 0.35
                water = pond.buffer(-1.0).intersection(Point(px + shift[0], py + shift[1]).buffer(r * 0.9))
                feats["pond"] = water
                feats["beach"] = pond.difference(water)
                feats["dam"] = pond.buffer(1.5).difference(pond)
                taken.append(pond.buffer(4))
                pond_centre = (px, py)
                break
    roads = []
    width = lambda: rng.uniform(0.8, 2.0)  # noqa: E731  (8-20 m)
    rim = lambda target: np.asarray(pit.exterior.interpolate(pit.exterior.project(Point(target))).coords[0])  # noqa
    for dump in dumps:
        c = dump.centroid.coords[0]
        roads.append(_road(rng, rim(c), c, width()))
    if pond_centre is not None:
        roads.append(_road(rng, rim(pond_centre), pond_centre, width()))
    if extent is not None:  # an access road leaving towards the nearest edge
        w, h = extent
        edges = [(cx, -5.0), (cx, h + 5.0), (-5.0, cy), (w + 5.0, cy)]
        target = min(edges, key=lambda e: np.hypot(e[0] - cx, e[1] - cy) + rng.uniform(0, 40))
        roads.append(_road(rng, rim(target), target, width()))
    if roads:
        feats["haul_road"] = unary_union(roads)
    return {k: v for k, v in feats.items() if not v.is_empty}


def _fractions(features_list, rows, cols):
    """``{feature: fraction (rows, cols)}`` with priority by :data:`FEATURES`, at 2 m sub-pixels."""
    from affine import Affine
    from rasterio.features import rasterize

    ss = SUPERSAMPLE
    fine = Affine.scale(1.0 / ss)
    label = np.zeros((rows * ss, cols * ss), dtype=np.uint8)
    for code, name in enumerate(FEATURES, start=1):
        geoms = [f[name] for f in features_list if name in f]
        if geoms:
            burnt = rasterize([(g, 1) for g in geoms], out_shape=label.shape, transform=fine, fill=0,
                              dtype="uint8")
            label[burnt > 0] = code
    out = {}
    for code in np.unique(label):
        if code == 0:
            continue
        hits = (label == code).reshape(rows, ss, cols, ss).sum(axis=(1, 3), dtype=np.uint16)
        out[FEATURES[code - 1]] = hits.astype(np.float32) / float(ss * ss)
    return {name: out[name] for name in FEATURES if name in out}


# ---------------------------------------------------------------------------
# Painting
# ---------------------------------------------------------------------------


def _smooth_field(rng, rows, cols, sigma):
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal((rows, cols)), sigma, mode="reflect")
    return field / (field.std() + 1e-9)


def _surface_spectra(rng, name, rows, cols):
    """Per-pixel spectra ``(rows, cols, 12)`` of a surface: smooth random mixtures of its endmembers."""
    ems = endmembers()
    groups, (b_lo, b_hi) = _SURFACES[name]
    total = np.zeros((rows, cols, 12))
    weight_sum = np.zeros((rows, cols, 1))
    for group, share in groups:
        E = ems[group]
        base = rng.dirichlet(np.full(E.shape[0], 0.8))
        for k in range(E.shape[0]):
            w = share * base[k] * np.exp(0.6 * _smooth_field(rng, rows, cols, rng.uniform(1.5, 4)))[..., None]
            total += w * E[k][None, None, :]
            weight_sum += w
    spectra = total / weight_sum
    brightness = rng.uniform(b_lo, b_hi) * np.exp(0.08 * _smooth_field(rng, rows, cols, 1.5))
    return spectra * brightness[..., None]


def _pit_shading(rng, pit_fraction):
    """Benches (concentric brightness rings) and a shaded wall of an open pit, per pixel."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    inside = pit_fraction > 0.05
    depth = distance_transform_edt(inside)
    spacing = rng.uniform(2.0, 3.5)
    bench = 0.85 + 0.12 * np.cos(2 * np.pi * depth / spacing)
    gy, gx = np.gradient(gaussian_filter(depth, 1.0))
    sun = rng.uniform(0, 2 * np.pi)
    shade = 1.0 - 0.35 * np.clip(np.cos(sun) * gx + np.sin(sun) * gy, -1, 1)
    return np.clip(bench * shade, 0.35, 1.2)


def _dihedral(array, k):
    out = np.rot90(array, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def _mosaic(rng, rows, cols):
    """A background of real patches ``(rows, cols, 12)``, its transform, CRS and the tiles used.

    Tiles are the real patches, each flipped/rotated at random, laid side by side.
    A patch up to one tile in size is cut at a random offset from a 2 x 2 mosaic, so
    that patches vary (a whole tile flipped has the same statistics as the tile):
    it usually spans parts of up to four real backgrounds. The georeference is that
    of the tile under the patch centre (only 6 real places exist, so fixture patches
    share locations).
    """
    from affine import Affine

    bgs = backgrounds()
    small = rows <= TILE and cols <= TILE
    ny, nx = (2, 2) if small else (math.ceil(rows / TILE), math.ceil(cols / TILE))
    canvas = np.empty((ny * TILE, nx * TILE, 12), dtype=np.float32)
    order = rng.permutation(np.resize(np.arange(len(bgs)), ny * nx + len(bgs)))
    names = []
    for j in range(ny * nx):
        y, x = divmod(j, nx)
        canvas[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = _dihedral(bgs[int(order[j])]["refl"],
                                                                            int(rng.integers(8)))
        names.append(bgs[int(order[j])]["name"])
    r0 = int(rng.integers(0, ny * TILE - rows + 1)) if small else 0
    c0 = int(rng.integers(0, nx * TILE - cols + 1)) if small else 0
    ty, tx = (r0 + rows // 2) // TILE, (c0 + cols // 2) // TILE
    centre = bgs[int(order[ty * nx + tx])]
    transform = centre["transform"] * Affine.translation(c0 - tx * TILE, r0 - ty * TILE)
    used = sorted({names[(y // TILE) * nx + (x // TILE)] for y in (r0, r0 + rows - 1) for x in (c0, c0 + cols - 1)})
    return canvas[r0:r0 + rows, c0:c0 + cols].copy(), transform, centre["crs"], used


def _degrade(delta, factor):
    """Box-blur a (rows, cols) image over ``factor`` pixels: a coarser band's footprint."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(delta, size=factor, mode="nearest") if factor > 1 else delta


def paint(rng, background, features_list):
    """Background reflectance ``(rows, cols, 12)`` with the mines painted in; returns (image, fractions)."""
    from oremap.core.sentinel2.sentinel2 import S2_BANDS, S2_RESOLUTIONS

    rows, cols, _ = background.shape
    fractions = _fractions(features_list, rows, cols)
    mine = np.zeros_like(background, dtype=np.float64)
    covered = np.zeros((rows, cols))
    for name, frac in fractions.items():
        r_idx, c_idx = np.nonzero(frac)
        win = (slice(max(r_idx.min() - 2, 0), r_idx.max() + 3), slice(max(c_idx.min() - 2, 0), c_idx.max() + 3))
        part = frac[win]
        spectra = _surface_spectra(rng, name, *part.shape)
        if name == "open_pit":
            spectra = spectra * _pit_shading(rng, part)[..., None]
        mine[win] += part[..., None] * spectra
        covered[win] += part
    delta = mine - covered[..., None] * background
    image = background.astype(np.float64).copy()
    for b, band in enumerate(S2_BANDS):
        image[..., b] += _degrade(delta[..., b], S2_RESOLUTIONS[band] // 10)
    return image, fractions


def to_dn(rng, refl, gain=None):
    """Sensor noise (SNR ~100 plus a floor), a slight global gain, and uint16 DN (1..65535)."""
    gain = rng.uniform(0.96, 1.04) if gain is None else gain
    refl = refl * gain
    noisy = refl + rng.standard_normal(refl.shape) * (0.002 + 0.01 * np.abs(refl))
    return np.clip(np.round(noisy * 10000.0), 1, 65535).astype(np.uint16)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def write_s2_tif(path, dn, transform, crs, tags=None):
    """A 12-band uint16 GeoTIFF with band descriptions B1 ... B12 (and B8A), nodata 0."""
    import rasterio

    from oremap.core.sentinel2.sentinel2 import S2_BANDS, S2_CENTERS

    rows, cols, n = dn.shape
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=n, dtype="uint16", nodata=0,
                       crs=crs, transform=transform, compress="deflate", tiled=rows >= 256 and cols >= 256) as dst:
        dst.write(np.moveaxis(dn, -1, 0))
        for i, band in enumerate(S2_BANDS, start=1):
            dst.set_band_description(i, band)
            dst.update_tags(i, wavelength=str(S2_CENTERS[band]), wavelength_units="Nanometers")
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return path


def _to_world(geom, transform):
    from shapely import affinity

    t = transform
    return affinity.affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


def write_mines(path, features_list, transform, crs, clip=None):
    """Mine surfaces as a GeoPackage layer 'mines': one row per (mine, feature) and one 'mine' outline per mine.

    Fields: ``mine_id`` (1, 2, ...), ``feature`` (a name of :data:`FEATURES` or ``mine``), ``area_m2``.
    Written with OGR directly (fast); read it with geopandas or QGIS.
    """
    from osgeo import ogr, osr
    from shapely.ops import unary_union

    if os.path.exists(path):
        os.remove(path)
    driver = ogr.GetDriverByName("GPKG")
    ds = driver.CreateDataSource(path)
    srs = None
    if crs is not None:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs.to_wkt())
    layer = ds.CreateLayer("mines", srs, ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn("mine_id", ogr.OFTInteger))
    layer.CreateField(ogr.FieldDefn("feature", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("area_m2", ogr.OFTReal))
    layer.StartTransaction()
    for mine_id, feats in enumerate(features_list, start=1):
        parts = {k: (g.intersection(clip) if clip is not None else g) for k, g in feats.items()}
        parts = {k: g for k, g in parts.items() if not g.is_empty and g.area > 0}
        if parts:
            parts["mine"] = unary_union(list(parts.values()))
        for name, geom in parts.items():
            world = _to_world(geom, transform)
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("mine_id", mine_id)
            feature.SetField("feature", name)
            feature.SetField("area_m2", float(world.area))
            feature.SetGeometry(ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkb(world.wkb)))
            layer.CreateFeature(feature)
            feature = None
    layer.CommitTransaction()
    ds = None
    return path


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def make_patches(folder, n_pos, n_neg, size=120, seed=0):
    """Competition-style patches: ``n_pos`` with a mine, ``n_neg`` real backgrounds only.

    Each patch is ``patch_XXXX.tif`` (12 bands B1 ... B12, uint16 DN = reflectance x
    10000, georeferenced like its real background); each positive's mine surfaces
    are in ``patch_XXXX_mines.gpkg``. Returns the path of ``labels.csv``
    (``file,label``, 1 = mine), rows in random order.
    """
    import rasterio

    with rasterio.Env():  # one GDAL environment for every file written
        return _make_patches(folder, n_pos, n_neg, size, seed)


def _make_patches(folder, n_pos, n_neg, size, seed):
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    labels = np.array([1] * int(n_pos) + [0] * int(n_neg))
    labels = labels[rng.permutation(labels.size)]
    rows = []
    for i, label in enumerate(labels):
        bg, transform, crs, used = _mosaic(rng, size, size)
        features = []
        if label:
            scale = size / 120.0 if size < 120 else 1.0
            small = rng.random() < 0.25  # a small quarry: harder to see
            scale *= rng.uniform(0.35, 0.55) if small else rng.uniform(0.6, 1.2)
            margin = 0.3 * size
            cx, cy = rng.uniform(margin, size - margin, 2)
            features = [mine_features(rng, cx, cy, scale=scale, extent=(size, size))]
        image, _ = paint(rng, bg, features)
        name = f"patch_{i:04d}.tif"
        write_s2_tif(os.path.join(folder, name), to_dn(rng, image), transform, crs,
                     tags={"background": ",".join(used)})
        if label:
            write_mines(os.path.join(folder, f"patch_{i:04d}_mines.gpkg"), features, transform, crs,
                        clip=box(0, 0, size, size))
        rows.append((name, int(label)))
    csv_path = os.path.join(folder, "labels.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        writer.writerows(rows)
    return csv_path


def make_scene(folder, seed=0, size=(360, 360), n_mines=None):
    """A mosaic of real backgrounds with several mines, for segmentation and detection.

    Returns ``dict(raster=tif path, mines=gpkg path, mask=bool (rows, cols) where mine
    surfaces cover at least half the pixel, fraction=float (rows, cols), transform, crs)``.
    """
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    rows, cols = int(size[0]), int(size[1])
    bg, transform, crs, used = _mosaic(rng, rows, cols)
    n = int(n_mines) if n_mines is not None else max(2, int(round(rows * cols / (150 * 150))))
    features, taken = [], []
    for _ in range(n):
        for _try in range(50):
            cx, cy = rng.uniform(35, cols - 35), rng.uniform(35, rows - 35)
            feats = mine_features(rng, cx, cy, scale=rng.uniform(0.7, 1.3), extent=(cols, rows))
            core = [g for k, g in feats.items() if k != "haul_road"]
            from shapely.ops import unary_union

            footprint = unary_union(core).buffer(8)
            if not any(footprint.intersects(t) for t in taken):
                features.append(feats)
                taken.append(footprint)
                break
    image, fractions = paint(rng, bg, features)
    raster = write_s2_tif(os.path.join(folder, "scene.tif"), to_dn(rng, image), transform, crs,
                          tags={"background": ",".join(used)})
    mines = write_mines(os.path.join(folder, "scene_mines.gpkg"), features, transform, crs,
                        clip=box(0, 0, cols, rows))
    fraction = np.zeros((rows, cols), dtype=np.float32)
    for frac in fractions.values():
        fraction += frac
    return dict(raster=raster, mines=mines, mask=fraction >= 0.5, fraction=fraction, transform=transform, crs=crs,
                n_mines=len(features))


def patch_with_scl(folder):
    """A real BigEarthNet patch's band files copied into ``folder``, with a scene classification at 20 m (on the
    grid of B05, ``*_SCL_20m.tif``): vegetation (4), a block of high-probability cloud (9), one of cloud shadow (3),
    one of medium-probability cloud (8), one of dark area (2, kept) and a no-data corner (0).

    Returns ``(patch folder, SCL array (60, 60))``.
    """
    import shutil

    import rasterio

    name = "S2A_MSIL2A_20170613T101031_87_48"
    target = os.path.join(folder, name)
    shutil.copytree(os.path.join(S2_FOLDER, name), target)
    scl = np.full((60, 60), 4, dtype=np.uint8)
    scl[10:20, 20:30] = 9
    scl[25:30, 5:15] = 3
    scl[40:45, 40:50] = 8
    scl[50:55, 0:10] = 2
    scl[0:2, 58:60] = 0
    with rasterio.open(glob.glob(os.path.join(target, "*_B05.tif"))[0]) as ref:
        profile = dict(driver="GTiff", width=60, height=60, count=1, dtype="uint8", crs=ref.crs,
                       transform=ref.transform)
    with rasterio.open(os.path.join(target, f"{name}_SCL_20m.tif"), "w", **profile) as dst:
        dst.write(scl[None])
    return target, scl
