"""Mine detection over whole Sentinel-2 scenes: probability, mask and footprint polygons.

:func:`detect_mines` runs either kind of mine model over a raster of any size with bounded memory:

* **segmentation** models (:mod:`core.sentinel2.mine_segmentation`, task ``mine_segmentation``): the U-Net
  scores ``tile x tile`` windows on a grid of stride ``tile - overlap`` (the last window of a row
  or column ends on the raster's edge). Each window's probabilities are weighted by a ramp that
  rises linearly from almost 0 at the window's border to 1 at ``overlap`` pixels inside it
  (:func:`ramp_weights`), and every pixel gets the weighted mean of the windows covering it:
  where two windows overlap by ``overlap`` pixels their weights add up to 1, so no seam shows
  and the network's less reliable window borders count little. Windows are read in bands of
  whole window rows, full width, as many as the memory budget allows (a window row of the next
  band re-reads the ``overlap`` rows it shares with the previous one: the halo); when one window
  row does not fit, it is read in column chunks. The sums are float64 and added in the same
  window order whatever the budget, so a tiny budget gives the same raster as a large one.
* **patch classifiers** (:mod:`core.sentinel2.mine_classifier`, task ``mine_patch_classification``): a
  probability per patch of the model's size on a grid of cells of ``stride`` pixels (the patch
  size by default: non-overlapping patches), each patch centred on its cell; the cell's pixels
  get the patch's probability. Patches with less than a quarter of valid pixels are not scored.

Outputs, written atomically (temporary files renamed at the end, removed on error or cancel):
a float32 probability raster (nodata -9999 where the input is nodata), optionally a uint8 mask
(1 = probability >= threshold, 0 = below, 255 = nodata), and the detected footprints as
polygons. The polygons come from the mask, strip by strip as the outputs are written (up to 256
rows): each strip's 4-connected regions are labelled and polygonised
(``rasterio.features.shapes``) in pixel coordinates, regions touching across a strip seam are
merged (union-find on the seam rows, then the union of their pieces, exact in integer pixel
coordinates) and a region is finished once no later strip can touch it. Each footprint gets its
area (sum of its pixels' areas, in ha, in metres for any CRS: on the ellipsoid for a geographic CRS,
:mod:`core.sentinel2.ground_units`), mean probability, perimeter (m, geodesic for a geographic CRS) and
Polsby-Popper compactness 4 pi A / P^2 (pi/4 for a square, 1 for a circle); footprints smaller
than ``min_area_ha`` or less compact than ``min_compactness`` are dropped (the mask raster keeps
their pixels). The mask is polygonised at full resolution, never resampled.

Memory: the budget (:func:`core.engine.raster.memory_budget_mb`) is shared between the model calls
(15 %), the output strips being finished (10 %), the reader's scratch (5 %) and the band of
windows (features ``4 C + 1`` bytes and accumulators 17 bytes per pixel); 10 % is left as a
margin. Below one window row at full width the band is read in column chunks, but the
accumulators still hold ``tile`` full rows: the least memory a run needs is about ``17 x tile x
width`` bytes (24 MB for a 10,980-pixel-wide tile and 128-pixel windows). On top come
onnxruntime's own buffers and GDAL's block cache, and the footprints: those open across the
current strip seam and those kept (an unthresholded map of a poor model can make millions).
"""

import json
import math
import os

import numpy as np

from ..engine.disjoint_sets import DisjointSets
from ..engine.files import replace
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import OnnxModel, unreadable_settings
from ..engine.raster import (OutputSpec, _open_output, _remove_quietly, check_output_path, clean_partials,
                             memory_budget_mb, partial_path)
from .segmentation_network import fill_nodata
from .sentinel2 import index_version_of

PROB_NODATA = -9999.0
MASK_NODATA = 255

#: Most rows of output finished at once (the GeoTIFF tile height); fewer under a small budget.
STRIP = 256

SEGMENTATION_TASK = "mine_segmentation"
CLASSIFIER_TASK = "mine_patch_classification"

#: Smallest share of valid pixels of a patch scored by a patch classifier.
MIN_PATCH_VALID = 0.25

#: Default smallest footprint kept (ha): detect_mines' MIN_AREA, and the batch's (10 pixels of 10 m).
DEFAULT_MIN_AREA_HA = 0.1

_FIX_MODEL = "Choose a model trained by 'Train a mine segmentation U-Net' or 'Train a mine patch classifier'."


# ---------------------------------------------------------------------------
# Sliding windows and blending
# ---------------------------------------------------------------------------


def tile_starts(n, tile, stride):
    """First pixel of each window along an axis of ``n`` pixels: 0, stride, 2 stride ... and ``n - tile`` last.

    A single window at 0 when ``n <= tile`` (it reaches past the raster; those pixels are nodata).
    """
    n, tile, stride = int(n), int(tile), int(stride)
    if n <= tile:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, n - tile, stride)) + [n - tile]
    return np.asarray(sorted(set(starts)), dtype=np.int64)


def ramp_weights(tile, overlap, floor=1e-3):
    """1-D blending weights of a window: ``(d + 0.5) / overlap`` at ``d`` pixels from the nearest border, at most 1.

    Two windows overlapping by ``overlap`` pixels have weights adding up to exactly 1 over the
    overlap. ``floor`` keeps the border pixels of the raster (covered by one window only) defined.
    """
    tile = int(tile)
    d = np.minimum(np.arange(tile), tile - 1 - np.arange(tile)).astype(np.float64)
    if overlap <= 0:
        return np.ones(tile)
    return np.clip((d + 0.5) / float(overlap), floor, 1.0)


# ---------------------------------------------------------------------------
# Polygons
# ---------------------------------------------------------------------------


class _Component:
    __slots__ = ("pieces", "count", "psum", "first", "area")

    def __init__(self, piece, count, psum, first, area):
        self.pieces, self.count, self.psum, self.first = [piece], int(count), float(psum), int(first)
        self.area = float(area)

    def merge(self, other):
        self.pieces += other.pieces
        self.count += other.count
        self.area += other.area
        self.psum += other.psum
        self.first = min(self.first, other.first)


class Polygoniser:
    """Footprints of a mask given strip by strip, top to bottom (see the module docstring).

    Parameters
    ----------
    transform : affine.Affine
        The raster's transform. ``width``: raster width in pixels.
    min_area_ha, min_compactness : float
        Footprints below either are dropped (counted in :attr:`n_small`, :attr:`n_elongated`).
    crs : optional
        The raster's CRS: areas and perimeters are in metres for any CRS (geographic ones on the
        ellipsoid, :class:`core.sentinel2.ground_units.GroundUnits`); map units are metres without one.
    height : int, optional
        Raster height in pixels: a projected CRS is measured in map units only if it is true to scale over the
        whole raster (the first row only when not given).
    """

    def __init__(self, transform, width, min_area_ha=0.0, min_compactness=0.0, crs=None, height=None):
        from .ground_units import GroundUnits

        self.transform = transform
        self.width = int(width)
        self.units = GroundUnits(transform, crs, width, height or 1)
        self.min_area_ha = float(min_area_ha or 0.0)
        self.min_compactness = float(min_compactness or 0.0)
        self.active = {}
        self.last_row = None  # component ids of the last row given, or None
        self.next_id = 1
        self.kept = []
        self.n_small = 0
        self.n_elongated = 0

    def add(self, r0, mask, prob):
        """Add rows ``r0 ...`` of the mask (bool ``(rows, width)``) with their probabilities."""
        from affine import Affine
        from rasterio.features import shapes
        from scipy import ndimage

        mask = np.asarray(mask, dtype=bool)
        rows = mask.shape[0]
        labels, n = ndimage.label(mask)  # 4-connectivity
        base = self.next_id - 1
        if n:
            inside = labels[mask]  # only the mask's pixels: small arrays whatever the strip
            counts = np.bincount(inside, minlength=n + 1)
            pixel_area = self.units.pixel_areas(r0, *np.nonzero(mask))  # m2 of each mask pixel, in labels[mask]'s order
            areas = np.bincount(inside, weights=pixel_area, minlength=n + 1)
            psums = np.bincount(inside, weights=np.asarray(prob)[mask].astype(np.float64), minlength=n + 1)
            firsts = {}
            for k, box in enumerate(ndimage.find_objects(labels), start=1):
                row = box[0].start  # the region's first row, and its first pixel in that row
                col = box[1].start + int(np.flatnonzero(labels[row, box[1]] == k)[0])
                firsts[k] = (int(r0) + row) * self.width + col
            from shapely.geometry import shape as to_shape

            # regions too small to keep that cannot grow (not on the strip's first or last row): counted only
            seam = set(np.unique(labels[0]).tolist()) | set(np.unique(labels[-1]).tolist())
            small = areas / 1e4 < self.min_area_ha
            for geom, value in shapes(labels, mask=mask, connectivity=4, transform=Affine.translation(0, int(r0))):
                k = int(value)
                if small[k] and k not in seam:
                    self.n_small += 1
                    continue
                self.active[base + k] = _Component(to_shape(geom), counts[k], psums[k], firsts[k], areas[k])
            self.next_id += n
        edge = lambda row: np.where(row > 0, row.astype(np.int64) + base, 0)  # noqa: E731 (ids of a row)
        top = edge(labels[0]) if rows else np.zeros(self.width, np.int64)
        bottom = edge(labels[-1]) if rows else np.zeros(self.width, np.int64)
        if self.last_row is not None and n:
            both = (self.last_row > 0) & (top > 0)
            sets = DisjointSets()
            for a, b in sorted(set(zip(self.last_row[both].tolist(), top[both].tolist()))):
                joined = sets.join(a, b)
                if joined:
                    keep, drop = joined
                    self.active[keep].merge(self.active.pop(drop))
            if sets.joins:
                lut = {int(v): sets.root(int(v)) for v in np.unique(bottom[bottom > 0])}
                bottom = np.array([lut.get(v, 0) for v in bottom.tolist()], dtype=np.int64)
        open_ids = set(np.unique(bottom[bottom > 0]).tolist())
        for cid in [c for c in self.active if c not in open_ids]:
            self._finish(self.active.pop(cid))
        self.last_row = bottom

    def close(self):
        """Finish the footprints still open; returns the kept footprints (see :meth:`_finish`), ids from 1
        in raster order (by their first pixel, row by row)."""
        for cid in list(self.active):
            self._finish(self.active.pop(cid))
        self.last_row = None
        self.kept.sort(key=lambda f: f["first_pixel"])
        for i, f in enumerate(self.kept, start=1):
            f["id"] = i
        return self.kept

    def _finish(self, comp):
        from shapely import affinity
        from shapely.ops import unary_union

        area_m2 = comp.area
        area_ha = area_m2 / 1e4
        if area_ha < self.min_area_ha:
            self.n_small += 1
            return
        geom_px = comp.pieces[0] if len(comp.pieces) == 1 else unary_union(comp.pieces)
        t = self.transform
        geom = affinity.affine_transform(geom_px, [t.a, t.b, t.d, t.e, t.c, t.f])
        perimeter = self.units.length_m(geom)
        compactness = 4.0 * math.pi * area_m2 / perimeter ** 2 if perimeter > 0 else 0.0
        if compactness < self.min_compactness:
            self.n_elongated += 1
            return
        self.kept.append({"id": 0, "geometry": geom, "area_ha": float(area_ha), "mean_prob": comp.psum / comp.count,
                          "perimeter_m": perimeter, "compactness": float(compactness), "n_pixels": comp.count,
                          "first_pixel": comp.first})


def footprints(mask, prob, transform, min_area_ha=0.0, min_compactness=0.0, strip=STRIP, crs=None):
    """Footprints of a whole in-memory mask (the same as streaming it in strips of ``strip`` rows)."""
    mask = np.asarray(mask, dtype=bool)
    prob = np.asarray(prob, dtype=np.float64)
    poly = Polygoniser(transform, mask.shape[1], min_area_ha, min_compactness, crs=crs, height=mask.shape[0])
    for r in range(0, mask.shape[0], int(strip)):
        poly.add(r, mask[r:r + strip], prob[r:r + strip])
    return poly.close()


def write_polygons(path, features, crs):
    """Footprints as a GeoPackage (layer ``mines``), written to a temporary file and renamed."""
    import geopandas as gpd

    check_output_path(path, parameter="polygons")
    columns = ["id", "area_ha", "mean_prob", "perimeter_m", "compactness"]
    records = [{k: f[k] for k in columns} | {"geometry": f["geometry"]} for f in features]
    gdf = gpd.GeoDataFrame(records, columns=columns + ["geometry"], geometry="geometry",
                           crs=crs.to_wkt() if crs is not None else None)
    clean_partials(path)
    tmp = partial_path(path, ".gpkg")
    try:
        gdf.to_file(tmp, driver="GPKG", layer="mines")
        replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


# ---------------------------------------------------------------------------
# Output strips
# ---------------------------------------------------------------------------


MASK_LEGEND = [{"value": 0, "name": "no mine", "color": "#f0f0f0"}, {"value": 1, "name": "mine", "color": "#d7301f"}]
"""The mine mask's classes and colours, the one definition of them: in its metadata (``OREMAP_CLASSES``) as on
every OreMap class raster, so that ``oremap:accuracy_assessment`` matches reference labels 'mine' / 'no mine' by
name; in the GeoTIFF's colour table; in the style QGIS loads (``algorithms/styles.py``)."""


def _mask_colormap():
    """The GeoTIFF colour table of :data:`MASK_LEGEND` (opaque)."""
    return {c["value"]: tuple(int(c["color"][i:i + 2], 16) for i in (1, 3, 5)) + (255,) for c in MASK_LEGEND}


class _Outputs:
    """The probability and mask rasters and the polygons, fed strip by strip; atomic."""

    def __init__(self, grid, prob_path, mask_path, threshold, polygoniser, tags):
        self.grid, self.threshold, self.poly = grid, float(threshold), polygoniser
        self.specs = [OutputSpec(prob_path, ["P(mine)"], "float32", PROB_NODATA, tags=tags)]
        if mask_path:
            self.specs.append(OutputSpec(mask_path, ["mine mask"], "uint8", MASK_NODATA,
                                         colormap=_mask_colormap(),
                                         tags=dict(tags, OREMAP_THRESHOLD=f"{threshold:g}",
                                                   OREMAP_CLASSES=json.dumps(MASK_LEGEND))))
        self.tmp = [partial_path(s.path) for s in self.specs]
        self.datasets = []
        self.valid_pixels = 0
        self.mine_pixels = 0

    def __enter__(self):
        for spec in self.specs:
            clean_partials(spec.path)
        try:
            for spec, tmp in zip(self.specs, self.tmp):
                self.datasets.append(_open_output(spec, self.grid, tmp))
        except BaseException:
            self._abort()
            raise
        return self

    def write(self, r0, prob, valid):
        """Rows ``r0 ...``: probabilities (float, any value where not ``valid``) and the valid mask."""
        from rasterio.windows import Window

        rows, width = prob.shape
        window = Window(0, int(r0), width, rows)
        out = np.where(valid, prob, PROB_NODATA).astype(np.float32)
        self.datasets[0].write(out[None], window=window)
        hit = valid & (out >= self.threshold)
        if len(self.datasets) > 1:
            mask = np.where(valid, hit.astype(np.uint8), np.uint8(MASK_NODATA)).astype(np.uint8)
            self.datasets[1].write(mask[None], window=window)
        self.valid_pixels += int(valid.sum())
        self.mine_pixels += int(hit.sum())
        self.poly.add(r0, hit, out)

    def _abort(self):
        for ds in self.datasets:
            ds.close()
        for tmp in self.tmp:
            _remove_quietly(tmp)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._abort()
            return False
        try:
            for ds in self.datasets:
                ds.close()
            if self.valid_pixels == 0:
                raise OreMapError("Every pixel of the raster is nodata.", "raster", "Check the raster and its nodata.")
            for spec, tmp in zip(self.specs, self.tmp):
                _remove_quietly(spec.path + ".aux.xml")
                replace(tmp, spec.path)
        except BaseException:
            self._abort()
            raise
        return False


# ---------------------------------------------------------------------------
# Segmentation models
# ---------------------------------------------------------------------------


#: Shares of the memory budget: model input and activations, output strips, the reader's scratch.
_BATCH_SHARE, _FLUSH_SHARE, _READ_SHARE = 0.15, 0.10, 0.05

#: Bytes per pixel of an output strip while it is finished (probability, division, mask, labels ...).
_FLUSH_BYTES = 48

#: Bytes per pixel of the reader's scratch (raw values, reflectance, indices in float64).
_READ_BYTES = 400


def _segmentation_batch(model, tile, budget_bytes):
    """Windows per model call and the bytes one window needs (input copies and activations)."""
    width = int((model.info.extra.get("segmentation") or {}).get("width", 16) or 16)
    per_tile = tile * tile * 4 * (2 * model.info.n_bands + 12 * width)
    return int(np.clip((_BATCH_SHARE * budget_bytes) // per_tile, 1, 16)), per_tile


def flush_rows(width, budget_bytes):
    """Rows of output finished at once: a multiple of 16, 16-256, within the budget's share."""
    rows = int((_FLUSH_SHARE * budget_bytes) // (_FLUSH_BYTES * max(int(width), 1)))
    return int(np.clip(rows // 16 * 16, 16, STRIP))


def plan_bands(height, width, tile, stride, n_channels, budget_bytes):
    """Bands of window rows read at once: ``[(first window row, end window row, [(first col, end col)])]``.

    Whole window rows at full width, as many as the budget allows (features ``4 C + 1`` bytes per
    pixel, accumulators 17), else one window row in column chunks of whole windows.
    """
    rs, cs = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    avail = (1.0 - _BATCH_SHARE - _FLUSH_SHARE - _READ_SHARE - 0.1) * budget_bytes
    per_row = max(width, tile) * (4 * n_channels + 1) + 17 * width
    rows_fit = int(avail // per_row)
    bands, i = [], 0
    while i < rs.size:
        if tile <= rows_fit:
            j = i + 1
            while j < rs.size and rs[j] + tile - rs[i] <= rows_fit:
                j += 1
            bands.append((i, j, [(0, cs.size)]))
        else:
            j = i + 1
            cols_fit = max(int((avail - 17 * width * tile) // (tile * (4 * n_channels + 1))), tile)
            chunks, a = [], 0
            while a < cs.size:
                b = a + 1
                while b < cs.size and cs[b] + tile - cs[a] <= cols_fit:
                    b += 1
                chunks.append((a, b))
                a = b
            bands.append((i, j, chunks))
        i = j
    return rs, cs, bands


def _segment(reader, model, out, tile, overlap, budget_mb, feedback):
    """Blended sliding-window probabilities, written to ``out`` strip by strip.

    The accumulators (weighted sum, weight sum, valid mask) hold the rows of one band of windows; the
    rows no later window reaches are finished and written, the others (the overlap) move up.
    """
    H, W = reader.height, reader.width
    stride = tile - overlap
    w1 = ramp_weights(tile, overlap)
    w2 = np.outer(w1, w1)
    C = model.info.n_bands
    budget = budget_mb * 2 ** 20
    batch, _ = _segmentation_batch(model, tile, budget)
    rs, cs, bands = plan_bands(H, W, tile, stride, C, budget)
    flush = flush_rows(W, budget)
    chunk_pixels = int(np.clip(_READ_SHARE * budget // _READ_BYTES, 4096, 1 << 16))
    n_tiles = rs.size * cs.size
    feedback.info(f"{n_tiles} windows of {tile} x {tile} pixels (stride {stride}, overlap {overlap}) in "
                  f"{len(bands)} band(s) of rows; {batch} windows per model call.")
    span = max(min(int(rs[j - 1]) + tile, H) - int(rs[i]) for i, j, _ in bands)
    num = np.zeros((span, W))
    den = np.zeros((span, W))
    valid = np.zeros((span, W), dtype=bool)
    done = 0
    for i, j, chunks in bands:
        feedback.check()
        g0 = int(rs[i])  # the accumulators' first row: rows above are written
        g1 = int(rs[j - 1]) + tile
        for a, b in chunks:
            c0, c1 = int(cs[a]), int(cs[b - 1]) + tile
            feats, ok = reader.read(g0, g1, c0, c1, chunk_pixels)
            vr1, vc1 = min(g1, H) - g0, min(c1, W) - c0
            valid[:vr1, c0:c0 + vc1] = ok[:vr1, :vc1]
            del ok
            for k in range(i, j):
                feedback.check()
                r = int(rs[k])
                rr = min(tile, H - r)
                for m0 in range(a, b, batch):  # windows in row-major order, whatever the budget
                    ms_ = range(m0, min(b, m0 + batch))
                    tiles = np.stack([feats[:, r - g0:r - g0 + tile, int(cs[m]) - c0:int(cs[m]) - c0 + tile]
                                      for m in ms_])
                    proba = model.run_dense(fill_nodata(tiles), batch_size=batch)[:, 0]
                    del tiles
                    for n, m in enumerate(ms_):
                        c = int(cs[m])
                        cc = min(tile, W - c)
                        num[r - g0:r - g0 + rr, c:c + cc] += w2[:rr, :cc] * proba[n, :rr, :cc]
                        den[r - g0:r - g0 + rr, c:c + cc] += w2[:rr, :cc]
                done += b - a
                feedback.progress(100.0 * done / n_tiles)
            del feats
        ready = int(rs[j]) if j < rs.size else H  # rows above are reached by no later window
        for s0 in range(g0, ready, flush):
            s1 = min(ready, s0 + flush)
            d = den[s0 - g0:s1 - g0]
            out.write(s0, num[s0 - g0:s1 - g0] / np.where(d > 0, d, 1.0), valid[s0 - g0:s1 - g0])
        rest = min(g1, H) - ready
        if rest > 0:
            for arr in (num, den, valid):
                arr[:rest] = arr[ready - g0:ready - g0 + rest].copy()
        for arr in (num, den, valid):
            arr[max(rest, 0):] = 0
    return {"n_windows": int(n_tiles), "n_bands_of_rows": len(bands), "batch": batch, "stride": int(stride),
            "overlap": int(overlap), "tile": int(tile), "flush_rows": flush}


# ---------------------------------------------------------------------------
# Patch classifiers
# ---------------------------------------------------------------------------


def _classifier_scores(model, patches, chunk=16):
    """Mine probability of reflectance patches ``(n, rows, cols, B)`` of the model's bands (NaN = nodata)."""
    from .patch_features import patch_features

    meta = model.info.extra.get("mine_classifier") or {}
    if meta.get("classifier") == "cnn":
        return model.run(np.ascontiguousarray(np.moveaxis(patches, -1, 1)))[:, 1]
    return model.run(patch_features(patches, chunk=chunk, bands=meta.get("bands"),
                                    index_version=index_version_of(meta.get("features"))))[:, 1]


def _classify(reader, model, out, stride, budget_mb, feedback):
    """Patch probabilities on a grid of cells, painted to the cells' pixels, written strip by strip."""
    meta = model.info.extra.get("mine_classifier") or {}
    size = meta.get("patch_size") or [model.info.input.get("window") or 120] * 2
    ph, pw = int(size[0]), int(size[1])
    if not stride:
        stride = min(ph, pw)
    stride = int(stride)
    if stride < 1 or stride > min(ph, pw):
        raise OreMapError(f"The stride must be 1-{min(ph, pw)} pixels (the patch size), not {stride}.", "stride")
    H, W = reader.height, reader.width
    if min(H, ph) * min(W, pw) < MIN_PATCH_VALID * ph * pw:
        raise OreMapError(f"The raster is {W} x {H} pixels: too small for the model's patches of {pw} x {ph} pixels "
                          f"(at least {100 * MIN_PATCH_VALID:g} % of a patch must lie on it).", "raster",
                          "Give a larger raster, or a model trained on smaller patches.")
    row_edges = np.append(np.arange(0, H, stride), H)
    col_edges = np.append(np.arange(0, W, stride), W)
    n_r, n_c = row_edges.size - 1, col_edges.size - 1
    offset_r, offset_c = (stride - ph) // 2, (stride - pw) // 2
    # each cell's patch, moved inside the raster where it would stick out (a raster at least a patch wide): the
    # cells of a last strip narrower than a quarter of a patch were never scored, their valid pixels left nodata
    row_starts = row_edges[:-1] + offset_r
    col_starts = col_edges[:-1] + offset_c
    if H >= ph:
        row_starts = np.clip(row_starts, 0, H - ph)
    if W >= pw:
        col_starts = np.clip(col_starts, 0, W - pw)
    proba = np.full((n_r, n_c), np.nan, dtype=np.float32)
    bits = np.zeros((H, (W + 7) // 8), dtype=np.uint8)  # valid pixels, packed
    budget = budget_mb * 2 ** 20
    nb = reader.n_channels
    per_patch = ph * pw * (nb * 4 + 22 * 8 * 4)  # the patch and the feature code's float64 channels (22 at most)
    chunk = int(np.clip(_BATCH_SHARE * budget // per_patch, 1, 64))
    avail = (1.0 - _BATCH_SHARE - _FLUSH_SHARE - _READ_SHARE - 0.1) * budget - bits.nbytes
    rows_fit = int(avail // ((W + pw) * (nb * 4 + 1)))
    cell_rows = max(1, (rows_fit - ph) // stride + 1)
    chunk_pixels = int(np.clip(_READ_SHARE * budget // _READ_BYTES, 4096, 1 << 16))
    feedback.info(f"{n_r * n_c} patches of {ph} x {pw} pixels on a grid of {stride}-pixel cells.")
    for i0 in range(0, n_r, cell_rows):
        feedback.check()
        i1 = min(n_r, i0 + cell_rows)
        a, b = int(row_edges[i0]), int(row_edges[i1])
        r0 = min(int(row_starts[i0:i1].min()), a)
        r1 = max(int(row_starts[i0:i1].max()) + ph, b)
        c0, c1 = min(int(col_starts.min()), 0), max(int(col_starts.max()) + pw, W)
        refl, ok = reader.read(r0, r1, c0, c1, chunk_pixels)  # (bands, rows, cols) reflectance, NaN outside
        bits[a:b] = np.packbits(ok[a - r0:b - r0, -c0:-c0 + W], axis=1)
        for i in range(i0, i1):
            feedback.check()
            rr = int(row_starts[i]) - r0
            starts = col_starts - c0
            for m0 in range(0, n_c, chunk):
                idx = np.arange(m0, min(n_c, m0 + chunk))
                share = np.array([ok[rr:rr + ph, int(starts[m]):int(starts[m]) + pw].mean() for m in idx])
                keep = idx[share >= MIN_PATCH_VALID]
                if keep.size:
                    patches = np.stack([np.moveaxis(refl[:, rr:rr + ph, int(starts[m]):int(starts[m]) + pw], 0, -1)
                                        for m in keep])
                    proba[i, keep] = _classifier_scores(model, patches, chunk)
        del refl, ok
        feedback.progress(90.0 * i1 / n_r)
    row_cell = np.searchsorted(row_edges, np.arange(H), side="right") - 1
    col_cell = np.searchsorted(col_edges, np.arange(W), side="right") - 1
    flush = flush_rows(W, budget)
    for s in range(0, H, flush):
        feedback.check()
        e = min(H, s + flush)
        prob = proba[row_cell[s:e][:, None], col_cell[None, :]]
        valid = np.unpackbits(bits[s:e], axis=1, count=W).astype(bool) & np.isfinite(prob)
        out.write(s, prob, valid)
    feedback.progress(100)
    return {"n_patches": int(n_r * n_c), "n_scored": int(np.isfinite(proba).sum()), "stride": stride,
            "patch_size": [ph, pw], "flush_rows": flush}


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def _feature_names(bands, index_version):
    """The patch features of ``bands``, a patch classifier's stored bands; their errors name the model."""
    from .patch_features import feature_names

    try:
        return feature_names(bands, index_version)
    except OreMapError as exc:
        raise OreMapError(f"The patch classifier's stored features cannot be used: {exc.message}", "model",
                          _FIX_MODEL) from None


def model_kind(info, path=None):
    """``"segmentation"`` or ``"patch_classifier"`` for a model's metadata; OreMapError for other models."""
    if info.task == SEGMENTATION_TASK:
        return "segmentation"
    if info.task == CLASSIFIER_TASK:
        return "patch_classifier"
    from ..engine.model_task import check_task

    check_task(info, [SEGMENTATION_TASK, CLASSIFIER_TASK], path)


def detect_mines(raster_path, model_path, prob_path, mask_path=None, threshold=None, min_area_ha=DEFAULT_MIN_AREA_HA,
                 min_compactness=0.0, memory_mb=None, feedback=None, polygons_path=None, band_map=None,
                 overlap=None, stride=None, threads=None, mask_clouds=True, crs=None):
    # Over 100 lines by its docstring (every parameter documented); the code is 62 lines.
    """Mine probability, mask and footprint polygons of a Sentinel-2 scene (see the module docstring).

    Parameters
    ----------
    raster_path : str
        Sentinel-2 raster or folder of per-band files (:func:`core.sentinel2.sentinel2.open_sentinel2`).
    model_path : str
        An OreMap mine segmentation model or mine patch classifier (.onnx).
    prob_path : str
        Float32 probability GeoTIFF (nodata -9999).
    mask_path : str, optional
        uint8 mask GeoTIFF: 1 mine, 0 not, 255 nodata.
    threshold : float, optional
        Probability from which a pixel is mine; the model's own threshold by default.
    min_area_ha, min_compactness : float
        Footprints smaller (ha) or less compact (Polsby-Popper, 0-1) are dropped from the polygons (the smallest
        area is :data:`DEFAULT_MIN_AREA_HA` by default, as ``oremap:detect_mines``'s and the batch's).
    memory_mb : float, optional
        Memory budget, see :func:`core.engine.raster.memory_budget_mb`.
    polygons_path : str, optional
        GeoPackage of the footprints (layer ``mines``).
    band_map : dict or str, optional
        Raster band of each S2 band, for rasters whose bands are not named.
    overlap : int, optional
        Segmentation: overlap of neighbouring windows in pixels (the model's, a quarter tile, by default).
    stride : int, optional
        Patch classifier: cell size in pixels (the patch size by default).
    threads : int, optional
        onnxruntime threads (all cores when None).
    mask_clouds : bool, default True
        A folder's scene classification (SCL) makes clouds and their shadows nodata.
    crs : str, optional
        WKT (or "EPSG:n") of the raster's CRS when its file has none (a CRS assigned to the layer in QGIS): areas
        and perimeters are measured in it.

    Returns
    -------
    dict
        ``kind``, ``threshold``, ``polygons`` (list of dicts: ``id``, ``geometry`` (shapely, raster CRS),
        ``area_ha``, ``mean_prob``, ``perimeter_m``, ``compactness``, ``n_pixels``), ``n_mines``,
        ``total_area_ha``, ``n_dropped_small``, ``n_dropped_compactness``, ``valid_pixels``,
        ``mine_pixels``, ``crs``, ``transform`` and the run's details (windows, batches ...).
    """
    from .segmentation_data import FeatureReader

    feedback = ensure(feedback)
    check_output_path(prob_path, parameter="output")
    for path, key in ((mask_path, "mask"), (polygons_path, "polygons")):
        if path:
            check_output_path(path, parameter=key)
    if min_area_ha is not None and min_area_ha < 0:
        raise OreMapError("The minimum area must not be negative.", "min_area")
    if min_compactness is not None and not 0.0 <= min_compactness <= 1.0:
        raise OreMapError("The minimum compactness must lie between 0 and 1.", "min_compactness")
    model = OnnxModel(model_path, threads=threads)
    info = model.info
    kind = model_kind(info, model_path)
    budget = memory_budget_mb(memory_mb)
    block = own = "segmentation" if kind == "segmentation" else "mine_classifier"
    try:  # the model's settings, read here: a damaged one is refused before the run, naming the model
        if kind == "segmentation":
            seg = info.extra.get("segmentation") or {}
            tile = int(seg.get("tile") or info.input.get("window"))
            default_threshold = float(seg.get("threshold", 0.5))
            model_overlap = int(seg.get("overlap", tile // 4))
            int(seg.get("width", 16) or 16)  # read by _segmentation_batch
            block = "preprocessing"
            bands, indices = info.preprocessing.get("bands"), info.preprocessing.get("indices") or []
            index_version = index_version_of(info.preprocessing)
        else:
            meta = info.extra.get("mine_classifier") or {}
            default_threshold = float(meta.get("threshold", 0.5))
            bands, indices, index_version = list(meta.get("bands") or []), [], None
            size = meta.get("patch_size") or [info.input.get("window") or 120] * 2
            patch = (int(size[0]), int(size[1]))  # read by _classify
            if meta.get("classifier") != "cnn":
                n_features = len(_feature_names(bands, index_version_of(meta.get("features"))))
        block = "spatial"
        spatial = info.extra.get("spatial") or {}
        size = spatial.get("pixel_size_m") or spatial.get("pixel_size")
        if size:
            float(size[0]) * float(size[-1])  # read by _check_geometry
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise unreadable_settings(model_path, block, exc) from None
    if not 0.0 < default_threshold < 1.0 and threshold is None:
        raise unreadable_settings(model_path, own, f"threshold is {default_threshold:g}, not between 0 and 1")
    if kind == "segmentation":
        if tile < 1:
            raise unreadable_settings(model_path, own, f"tile is {tile} pixels, not a positive number")
        if overlap is None and not 0 <= model_overlap <= tile // 2:
            raise unreadable_settings(model_path, own, f"overlap is {model_overlap} pixels, not 0-{tile // 2} (half "
                                                       "a window)")
        overlap = model_overlap if overlap is None else int(overlap)
        if not 0 <= overlap <= tile // 2:
            raise OreMapError(f"The overlap must be 0-{tile // 2} pixels (half a window), not {overlap}.", "overlap")
    else:
        if not bands:
            raise OreMapError("The patch classifier does not say which Sentinel-2 bands it uses.", "model", _FIX_MODEL)
        if min(patch) < 1:
            raise unreadable_settings(model_path, own, f"patch_size is {patch[0]} x {patch[1]} pixels")
        width = len(bands) if meta.get("classifier") == "cnn" else n_features
        if width != info.n_bands:
            what = "bands" if meta.get("classifier") == "cnn" else "features"
            raise unreadable_settings(model_path, own, f"bands {', '.join(map(str, bands))} give {width} {what}, "
                                                       f"but the graph takes {info.n_bands}")
    threshold = default_threshold if threshold is None else float(threshold)
    if not 0.0 < threshold < 1.0:
        raise OreMapError("The threshold must lie between 0 and 1.", "threshold")
    with FeatureReader(raster_path, bands, indices, band_map, feedback, mask_clouds,
                       index_version=index_version) as reader:
        if kind == "segmentation" and reader.channel_names != list(info.band_names or []):
            raise OreMapError("The model's input channels differ from this OreMap's features "
                              f"({', '.join(info.band_names or [])}).", "model", _FIX_MODEL)
        # the CRS areas and pixel sizes are measured in: the file's, else the one the caller knows (assigned to the
        # layer in QGIS)
        measured = reader.crs
        if measured is None and crs:
            from rasterio.crs import CRS

            measured = CRS.from_user_input(crs)
        _check_geometry(info, reader, feedback, measured)
        poly = Polygoniser(reader.transform, reader.width, min_area_ha, min_compactness, crs=measured,
                           height=reader.height)
        tags = {"OREMAP_MODEL": os.path.basename(str(model_path)), "OREMAP_TASK": info.task,
                "OREMAP_THRESHOLD": f"{threshold:g}"}
        with _Outputs(reader, prob_path, mask_path, threshold, poly, tags) as out:
            if kind == "segmentation":
                details = _segment(reader, model, out, tile, overlap, budget, feedback.scaled(0, 95))
            else:
                details = _classify(reader, model, out, stride, budget, feedback.scaled(0, 95))
        crs, transform = measured, reader.transform
    polygons = poly.close()
    if crs is not None and crs.is_geographic:
        feedback.info("The raster's CRS is geographic: areas (ha) are those of the pixels on the ellipsoid and "
                      "perimeters (m) are geodesic.")
    if polygons_path:
        write_polygons(polygons_path, polygons, crs)
    total = float(sum(p["area_ha"] for p in polygons))
    feedback.info(f"{len(polygons)} mine footprints, {total:.2f} ha in all (threshold {threshold:g}); "
                  f"{poly.n_small} smaller than {min_area_ha or 0:g} ha and {poly.n_elongated} less compact than "
                  f"{min_compactness or 0:g} dropped.")
    feedback.progress(100)
    return dict(details, kind=kind, threshold=threshold, polygons=polygons, n_mines=len(polygons),
                total_area_ha=total, n_dropped_small=poly.n_small, n_dropped_compactness=poly.n_elongated,
                valid_pixels=out.valid_pixels, mine_pixels=out.mine_pixels, crs=crs, transform=transform,
                prob_path=prob_path, mask_path=mask_path, polygons_path=polygons_path)


def _geographic_epsg(epsg):
    """True for the EPSG code of a geographic CRS (degrees); False for others and unknown codes."""
    if not epsg:
        return False
    import pyproj

    try:
        return bool(pyproj.CRS.from_epsg(int(epsg)).is_geographic)
    except (pyproj.exceptions.CRSError, ValueError, TypeError):
        return False


def _check_geometry(info, reader, feedback, crs=None):
    """Warn when the raster's pixels differ in ground size (metres, any CRS; the side of a square pixel of the same
    area) from the training raster's by over 10 %. ``crs``: the raster's CRS (the reader's when None)."""
    from .ground_units import pixel_size_m

    spatial = info.extra.get("spatial") or {}
    size = spatial.get("pixel_size_m")
    if not size:  # models of OreMap 0.2: the pixel size in the training CRS's units, metres when projected
        if not spatial.get("pixel_size") or _geographic_epsg(spatial.get("epsg")):
            return
        size = spatial["pixel_size"]
    crs = reader.crs if crs is None else crs
    px = math.sqrt(np.prod(pixel_size_m(reader.transform, crs, reader.width, reader.height)))
    trained = math.sqrt(abs(size[0] * size[-1]))  # sides of square pixels of the same area
    if abs(px - trained) > 0.1 * trained:
        feedback.warning(f"The raster's pixels ({px:.3g} m) differ from the training raster's ({trained:.3g} m): "
                         "a mine covers another number of pixels than in training.")
