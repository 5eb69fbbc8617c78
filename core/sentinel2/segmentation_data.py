"""Training data of the mine segmentation: the feature reader (Sentinel-2 bands and indices, scaled
to reflectance, block by block), mine polygons rasterised into tiles, and the tile plan (a grid of
tiles in spatial blocks, some blocks held out).
"""

from dataclasses import dataclass, field
import math
import os

from rasterio.windows import Window
import numpy as np

from ..engine.disjoint_sets import DisjointSets
from ..engine import affine_ops
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.raster import WHERE_BUDGET
from .segmentation_network import fill_nodata
from .sentinel2 import INDEX_VERSION, S2_BANDS, compute_indices, index_bands, normalise_band_name, open_sentinel2


_FIX_POLYGONS = "Choose a polygon layer of mine footprints that overlaps the raster."


class FeatureReader:
    """Windows of a Sentinel-2 raster as model features: reflectance of ``bands``, then ``indices``.

    Parameters
    ----------
    raster_path : str
        Sentinel-2 raster or folder, see :func:`core.sentinel2.sentinel2.open_sentinel2`.
    bands : list of str, optional
        S2 bands fed to the model, in order; the 12 L2A bands by default.
    indices : list of str, optional
        Index names of :data:`core.sentinel2.sentinel2.INDICES` appended as channels; none when empty.
    band_map : dict or str, optional
        Raster band of each S2 band, for rasters whose bands are not named.
    mask_clouds : bool, default True
        A folder's scene classification (SCL) masks clouds and their shadows (see
        :func:`core.sentinel2.sentinel2.open_sentinel2`).

    Attributes
    ----------
    channel_names : list of str
        ``bands + indices``.
    """

    def __init__(self, raster_path, bands=None, indices=None, band_map=None, feedback=None, mask_clouds=True,
                 index_version=None):
        bands = list(S2_BANDS if not bands else bands)
        names = []
        for b in bands:
            name = normalise_band_name(b)
            if name is None:
                raise OreMapError(f"'{b}' is not a Sentinel-2 band.", "bands", "Use names such as B2, B8A, B12.")
            names.append(name)
        if len(set(names)) != len(names):
            raise OreMapError("A band is listed twice.", "bands")
        self.bands = names
        indices = [] if indices is None else list(indices)
        self.index_version = INDEX_VERSION if index_version is None else int(index_version)   # a model's own
        self.indices = []
        if indices:
            self.indices = compute_indices(np.ones((1, len(S2_BANDS))), S2_BANDS, indices)[1]  # canonical names
        needed = set(self.bands) | set(index_bands(self.indices, self.index_version) if self.indices else [])
        self.read_bands = [b for b in S2_BANDS if b in needed] + [b for b in self.bands if b not in S2_BANDS]
        self.s2 = open_sentinel2(raster_path, band_map=band_map, feedback=feedback, required=self.read_bands,
                                 mask_clouds=mask_clouds)
        try:
            self.source = self.s2.open_source(self.read_bands)
        except BaseException:
            self.s2.close()
            raise
        self._band_cols = [self.read_bands.index(b) for b in self.bands]
        self.channel_names = self.bands + self.indices

    @property
    def n_channels(self):
        return len(self.channel_names)

    @property
    def width(self):
        return self.source.width

    @property
    def height(self):
        return self.source.height

    @property
    def transform(self):
        return self.source.transform

    @property
    def crs(self):
        return self.source.crs

    def close(self):
        self.source.close()
        self.s2.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def features(self, refl):
        """Features ``(n, C)`` float32 of reflectance pixels ``(n, len(read_bands))``."""
        out = np.empty((refl.shape[0], self.n_channels), dtype=np.float32)
        out[:, :len(self.bands)] = refl[:, self._band_cols]
        if self.indices:
            out[:, len(self.bands):] = compute_indices(refl, self.read_bands, self.indices, self.index_version)[0]
        return out

    def read(self, r0, r1, c0, c1, chunk_pixels=1 << 16):
        """Rows r0:r1, columns c0:c1 as ``(C, rows, cols)`` float32 and a valid mask ``(rows, cols)``.

        Pixels beyond the raster or with any read band nodata are NaN in every channel and False in
        the mask. Read in sub-windows of about ``chunk_pixels`` pixels, so the temporaries of scaling
        and indices stay small whatever the window. The sub-windows follow the raster's blocks: on a
        tiled raster, columns of whole tiles over the window's full height, so each tile is
        decompressed once per window (rows of full width would decompress a whole row of tiles for
        every few rows once it no longer fits GDAL's block cache).
        """
        rows, cols = r1 - r0, c1 - c0
        out = np.full((self.n_channels, rows, cols), np.nan, dtype=np.float32)
        valid = np.zeros((rows, cols), dtype=bool)
        rr0, rr1 = max(r0, 0), min(r1, self.height)
        cc0, cc1 = max(c0, 0), min(c1, self.width)
        if rr1 <= rr0 or cc1 <= cc0:
            return out, valid
        bh, bw = self.source.dataset.block_shapes[self.source.bands[0] - 1]
        chunk_pixels = max(int(chunk_pixels), 1)
        if bw < self.width:  # tiled: columns of whole tiles, split in rows only when needed
            cw = bw * max(1, chunk_pixels // ((rr1 - rr0) * bw))
            rh = rr1 - rr0 if (rr1 - rr0) * cw <= chunk_pixels else max(bh, (chunk_pixels // cw) // bh * bh)
        else:  # strips: rows of full width
            cw = cc1 - cc0
            rh = max(1, chunk_pixels // cw)
            rh = max(bh, rh // bh * bh) if bh < rh else rh
        for a, b in _aligned(rr0, rr1, rh):
            for c, d in _aligned(cc0, cc1, cw):
                data, ok = self.source.read(Window(c, a, d - c, b - a))
                if ok.any():
                    feats = self.features(data[ok])
                    block = np.full((b - a, d - c, self.n_channels), np.nan, dtype=np.float32)
                    block[ok] = feats
                    out[:, a - r0:b - r0, c - c0:d - c0] = np.moveaxis(block, -1, 0)
                valid[a - r0:b - r0, c - c0:d - c0] = ok
        return out, valid


def _aligned(start, stop, size):
    """``[(a, b), ...]`` covering ``start:stop`` with edges at the multiples of ``size``."""
    edges = [start] + list(range((start // size + 1) * size, stop, size)) + [stop]
    return list(zip(edges[:-1], edges[1:]))


def repaired(geometry):
    """``geometry`` made valid with every part kept: a self-crossing (bow-tie) outline keeps both lobes, which
    ``buffer(0)`` halves."""
    if geometry.is_valid:
        return geometry
    from shapely.ops import unary_union
    from shapely.validation import make_valid

    fixed = make_valid(geometry)
    if fixed.geom_type == "GeometryCollection":   # lines or points where the outline touched itself: dropped
        fixed = unary_union([p for p in fixed.geoms if p.geom_type in ("Polygon", "MultiPolygon")])
    return fixed


def load_polygons(polygons, crs, parameter="polygons"):
    """Polygon geometries (shapely) in ``crs`` from a vector file path, a GeoDataFrame or a sequence.

    A sequence of shapely geometries is taken to be in ``crs`` already. Points and lines are
    refused; empty and missing geometries are left out.
    """
    if isinstance(polygons, (str, os.PathLike)):
        import geopandas as gpd

        path = os.fspath(polygons)
        if not os.path.exists(path):
            raise OreMapError(f"The polygon file '{path}' does not exist.", parameter, _FIX_POLYGONS)
        try:
            polygons = gpd.read_file(path)
        except Exception as exc:  # noqa: BLE001 - fiona/pyogrio raise many types
            raise OreMapError(f"Cannot read the polygon file '{path}': {exc}.", parameter, _FIX_POLYGONS) from None
    if hasattr(polygons, "geometry") and hasattr(polygons, "crs"):
        gdf = polygons
        if gdf.crs is not None and crs is not None:
            gdf = gdf.to_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        geoms = list(gdf.geometry)
    else:
        geoms = list(polygons)
    out = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            if g.geom_type == "GeometryCollection":
                parts = [p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")]
                out += parts
                continue
            raise OreMapError(f"The mine layer holds a {g.geom_type}; mine footprints must be polygons.", parameter,
                              _FIX_POLYGONS)
        out.append(repaired(g))
    if not out:
        raise OreMapError("The mine layer holds no polygons.", parameter, _FIX_POLYGONS)
    return out


def rasterise_window(geometries, transform, r0, c0, rows, cols):
    """Mine mask ``(rows, cols)`` uint8 of a window: 1 where the pixel centre lies inside a polygon.

    ``rasterio.features.rasterize`` with ``all_touched=False`` on the window's own transform, so a
    window gives exactly the pixels a whole-raster rasterisation would.
    """
    from rasterio.features import rasterize
    from rasterio.windows import transform as window_transform

    if not geometries:
        return np.zeros((rows, cols), dtype=np.uint8)
    return rasterize([(g, 1) for g in geometries], out_shape=(rows, cols),
                     transform=window_transform(Window(c0, r0, cols, rows), transform), fill=0,
                     all_touched=False, dtype="uint8")


@dataclass
class TilePlan:
    """The tiles of a training run.

    Attributes
    ----------
    tile : int
        Tile side in pixels; tile ``(i, j)`` covers rows ``i * tile`` to ``(i + 1) * tile - 1``.
    grid : (int, int)
        Tile rows and columns of the grid (covering the raster).
    block_tiles : int
        Side of a spatial block in tiles.
    val_blocks : set of (int, int)
        Held-out blocks.
    rows, cols : ndarray of int
        Grid row and column of each tile used (training tiles first, then held-out ones).
    split : ndarray of str
        ``"train"`` or ``"val"`` per tile used.
    mine_pixels : ndarray of int
        Mine pixels per tile used.
    info : dict
        Counts for the report.
    stream : BackgroundStream or None
        Training background tiles streamed epoch by epoch when they do not all fit in the memory budget.
    """

    tile: int
    grid: tuple
    block_tiles: int
    val_blocks: set
    rows: np.ndarray
    cols: np.ndarray
    split: np.ndarray
    mine_pixels: np.ndarray
    info: dict = field(default_factory=dict)
    stream: object = None

    def windows(self, which=None):
        """Pixel windows ``(r0, c0, rows, cols)`` of the tiles (of one split when ``which`` is given)."""
        keep = np.ones(self.rows.size, bool) if which is None else self.split == which
        t = self.tile
        return [(int(r) * t, int(c) * t, t, t) for r, c in zip(self.rows[keep], self.cols[keep])]

    @property
    def train_index(self):
        return np.flatnonzero(self.split == "train")

    @property
    def val_index(self):
        return np.flatnonzero(self.split == "val")


def assign_blocks(has_mines, val_fraction, rng):
    """Held-out blocks: about ``val_fraction`` of the blocks with mines and of those without.

    ``has_mines`` maps block -> bool. Each group holding at least two blocks gives at least one
    block; a lone block with mines is kept for training. Returns a set of blocks.
    """
    held = set()
    if val_fraction <= 0:
        return held
    for flag in (True, False):
        group = sorted(b for b, v in has_mines.items() if v == flag)
        if len(group) < 2:
            continue
        n = min(len(group) - 1, max(1, int(round(val_fraction * len(group)))))
        for k in rng.choice(len(group), size=n, replace=False):
            held.add(group[int(k)])
    return held


def shared_mine_pixels(masks, split_of, origin=None, counted=None):
    """``{held-out tile: its mine pixels whose mine also has pixels in a training tile}`` (tiles with none left out).

    A mine is a set of mine pixels connected on the ground (8-connected, diagonals included): each tile's pixels
    are labelled into pieces, and pieces of two tiles whose pixels touch or overlap are one mine. Blocks are whole
    squares of tiles, so a mine a block's edge cuts is trained on in part and scored in part (on the test scene 4 of
    6 mines, all its held-out mine pixels); leaving either part out left that scene without training or held-out
    mines. Counted by piece, not by tile: a tile holding a trained mine's end and another, untrained mine had marked
    the other mine's pixels too. ``masks`` maps tile references (``(..., row, col)``) to masks of one shape.
    ``origin``, when given, maps each reference to the position ``(row, col)`` of its first pixel on one grid of
    ground pixels (chips in one CRS at one pixel size), so that mines cut by the edge between two chips, and one
    ground in two overlapping chips, count too; without it (or where it gives None) tiles are placed on their own
    grid, per head ``ref[:-2]`` (a chip's tiles). A tile that ``split_of`` puts on neither side still joins the
    pieces of a mine. ``counted`` maps held-out tiles to the pixels to count (their valid mine pixels)."""
    from scipy import ndimage

    if not masks:
        return {}
    th, tw = np.asarray(next(iter(masks.values()))).shape
    place = {ref: origin(ref) for ref in masks} if origin is not None else {}
    if not place or None in place.values():
        place = {ref: (tuple(ref[:-2]), ref[-2] * th, ref[-1] * tw) for ref in masks}
    else:
        place = {ref: ((),) + tuple(int(v) for v in cell) for ref, cell in place.items()}
    eight = np.ones((3, 3), bool)
    labels = {ref: ndimage.label(np.asarray(m) > 0, structure=eight)[0] for ref, m in masks.items()}
    sets = DisjointSets((ref, int(k)) for ref, lab in labels.items() for k in np.unique(lab[lab > 0]))
    def near(ref):   # the labels of a tile's pieces spread one pixel around them (two pieces are 2 pixels apart)
        padded = np.pad(labels[ref].astype(np.int64), 1)
        # above every label, and small enough that scipy's float cval keeps it (int64's maximum came back as its
        # minimum, so the lowest spread never reached the padding ring that meets the next tile)
        big = int(padded.max()) + 1
        low = ndimage.minimum_filter(np.where(padded > 0, padded, big), footprint=eight, mode="constant", cval=big)
        return ndimage.maximum_filter(padded, footprint=eight, mode="constant"), np.where(low == big, 0, low)

    buckets, order = {}, {ref: n for n, ref in enumerate(place)}
    for ref, (head, r0, c0) in place.items():
        buckets.setdefault((head, r0 // th, c0 // tw), []).append(ref)
    spread = {}
    for a, (head, ar, ac) in place.items():
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for b in buckets.get((head, ar // th + di, ac // tw + dj), ()):
                    if order[b] <= order[a]:   # each pair once
                        continue
                    _, br, bc = place[b]
                    r0, r1 = max(ar - 1, br), min(ar + th + 1, br + th)   # a's tile one pixel wider, and b's
                    c0, c1 = max(ac - 1, bc), min(ac + tw + 1, bc + tw)
                    if r0 >= r1 or c0 >= c1:
                        continue
                    if a not in spread:
                        spread[a] = near(a)
                    lb = labels[b][r0 - br:r1 - br, c0 - bc:c1 - bc]
                    for spread_a in spread[a]:
                        la = spread_a[r0 - ar + 1:r1 - ar + 1, c0 - ac + 1:c1 - ac + 1]
                        both = (la > 0) & (lb > 0)
                        for ka, kb in set(zip(la[both].tolist(), lb[both].tolist())):
                            sets.join((a, int(ka)), (b, int(kb)))
    trained = {sets.root((ref, int(k))) for ref, lab in labels.items() if split_of(ref) == "train"
               for k in np.unique(lab[lab > 0])}
    shared = {}
    for ref, lab in labels.items():
        if split_of(ref) != "val":
            continue
        pieces = [int(k) for k in np.unique(lab[lab > 0]) if sets.root((ref, int(k))) in trained]
        if pieces:
            inside = np.isin(lab, pieces)
            if counted is not None:
                inside &= np.asarray(counted.get(ref, np.zeros_like(inside)), bool)
            if inside.any():
                shared[ref] = int(inside.sum())
    return shared


def shared_mines_sentence(info):
    """The share of held-out mine pixels whose mine a block edge cuts (trained on in part), for the log and report."""
    shared, total = info.get("val_mine_pixels_shared") or 0, info.get("val_mine_pixels") or 0
    return (f"{shared} of the {total} held-out mine pixels ({100 * shared / max(total, 1):.0f} %) belong to mines that "
            "a block's edge cuts, whose other part is trained on: the held-out figures are optimistic for them. "
            "Larger blocks (more tiles a side) cut fewer mines.")


def mine_pixels_per_tile(geometries, transform, height, width, tile, feedback=None):
    """``{(i, j): mask}`` of the grid tiles holding mine pixels (pixel centres inside the polygons).

    Only the tiles a polygon's bounding box reaches are rasterised, each with those polygons.
    """
    feedback = ensure(feedback)
    n_r, n_c = math.ceil(height / tile), math.ceil(width / tile)
    inverse = ~transform
    candidates = {}
    for k, g in enumerate(geometries):
        minx, miny, maxx, maxy = g.bounds
        corners = [affine_ops.apply(inverse, x, y) for x, y in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))]
        cs, rs = [c for c, _ in corners], [r for _, r in corners]
        i0, i1 = max(int(math.floor(min(rs) / tile)), 0), min(int(math.floor(max(rs) / tile)), n_r - 1)
        j0, j1 = max(int(math.floor(min(cs) / tile)), 0), min(int(math.floor(max(cs) / tile)), n_c - 1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                candidates.setdefault((i, j), []).append(k)
    out = {}
    for n, (i, j) in enumerate(sorted(candidates)):
        if n % 64 == 0:
            feedback.check()
        mask = rasterise_window([geometries[k] for k in candidates[(i, j)]], transform, i * tile, j * tile, tile,
                                tile)
        mask[max(0, height - i * tile):, :] = 0  # beyond the raster
        mask[:, max(0, width - j * tile):] = 0
        if mask.any():
            out[(i, j)] = mask
    return out


def _read_tiles(reader, plan_rows, plan_cols, tile, feedback):
    """Raw feature tiles ``(n, C, t, t)`` and valid masks of grid tiles."""
    n = len(plan_rows)
    X = np.empty((n, reader.n_channels, tile, tile), dtype=np.float32)
    V = np.empty((n, tile, tile), dtype=bool)
    for k, (i, j) in enumerate(zip(plan_rows, plan_cols)):
        if k % 16 == 0:
            feedback.check()
            feedback.progress(100.0 * k / max(n, 1))
        X[k], V[k] = reader.read(i * tile, i * tile + tile, j * tile, j * tile + tile)
    return X, V


class RasterTiles:
    """The tiles of one raster for :func:`select_tiles`: tile ``(i, j)`` of its grid; blocks of ``block_tiles``."""

    def __init__(self, reader, tile, block_tiles=1):
        self.reader, self.tile, self.block_tiles = reader, int(tile), int(block_tiles)
        self.n_channels = reader.n_channels

    def refs(self):
        t = self.tile
        n_r, n_c = math.ceil(self.reader.height / t), math.ceil(self.reader.width / t)
        return [(i, j) for i in range(n_r) for j in range(n_c)]

    def block(self, ref):
        return (ref[0] // self.block_tiles, ref[1] // self.block_tiles)

    def inside(self, ref):
        """The share of tile ``ref`` that lies inside the raster (the rest, over its edge, is nodata)."""
        return tile_inside(self.reader.height, self.reader.width, ref[0], ref[1], self.tile)

    def read(self, refs, feedback):
        return _read_tiles(self.reader, [r[0] for r in refs], [r[1] for r in refs], self.tile, feedback)

    def close(self):
        """Nothing to close: the reader belongs to the caller."""


def plan_tiles(reader, geometries, tile, block_tiles, val_fraction, negatives_per_positive, min_valid, seed,
               budget_mb, feedback=None):
    """Choose and read the training and held-out tiles of one raster with mine polygons; see the module docstring
    and :func:`select_tiles`.

    Returns ``(plan, X, Y, V)``: the :class:`TilePlan` and, in its tile order, raw features
    ``(n, C, t, t)`` float32 (NaN = nodata), labels ``(n, t, t)`` uint8 and valid masks.
    """
    feedback = ensure(feedback)
    height, width, t = reader.height, reader.width, tile
    masks = mine_pixels_per_tile(geometries, reader.transform, height, width, t, feedback.scaled(0, 10))
    if not masks:
        raise OreMapError("No mine polygon covers the centre of any pixel of the raster.", "polygons",
                          "Check that the polygons lie on the raster (any CRS is reprojected) and are larger "
                          "than a pixel.")
    source = RasterTiles(reader, t, block_tiles)
    return select_tiles(source, masks, val_fraction, negatives_per_positive, min_valid, seed, budget_mb, feedback,
                        grid=(math.ceil(height / t), math.ceil(width / t)))


def tile_inside(height, width, i, j, tile):
    """The share of tile ``(i, j)`` (``tile`` pixels a side) inside an image of ``height`` x ``width`` pixels."""
    return min(tile, height - i * tile) * min(tile, width - j * tile) / float(tile * tile)


def select_tiles(source, masks, val_fraction, negatives_per_positive, min_valid, seed, budget_mb, feedback=None,
                 grid=None, layout=None):
    # Over 100 lines: the tile plan's steps (blocks, held-out blocks, reads, the background stream) share their arrays.
    """Choose and read the training and held-out tiles of a tile source (one raster, or many chips).

    ``source`` gives the tile references in a fixed order (``refs()``), the spatial block of each
    (``block(ref)``), the share of each inside its raster or chip (``inside(ref)``: the rest is over an edge), and
    reads tiles (``read(refs, feedback) -> X, V``); ``masks`` maps the references of
    the tiles holding mine pixels to their masks. Every mine tile with at least ``min_valid`` valid pixels
    is used; background tiles are drawn at random, ``negatives_per_positive`` per mine tile and split.

    Memory: the mine tiles must fit in half the budget. When the training background tiles wanted do
    not fit in what is left, as many as fit are held at a time and the others are streamed: the plan's
    :attr:`TilePlan.stream` (:meth:`BackgroundStream.refill`) draws fresh background tiles from all of them into
    those slots at every epoch, so no background is lost to the budget.
    """
    feedback = ensure(feedback)
    refs = source.refs()
    has_mines = {}
    for ref in refs:
        b = source.block(ref)
        has_mines[b] = has_mines.get(b, False) or ref in masks
    rng = np.random.default_rng([int(seed), 11])
    val_blocks = assign_blocks(has_mines, val_fraction, rng)
    if val_fraction > 0 and not any(has_mines[b] for b in val_blocks):
        feedback.warning("Only one spatial block holds mines, so no mine is held out: IoU and F1 cannot be "
                         "measured. Use smaller blocks or more places (chips) with mines.")
    split_of = lambda ref: "val" if source.block(ref) in val_blocks else "train"  # noqa: E731
    # tiles sharing ground with a tile of another block (chips overlapping in chains, ChipTiles.overlaps): a training
    # tile that overlaps a held-out one is left out (a buffer)
    overlaps = getattr(source, "overlaps", None) or {}
    buffered = {ref for ref, near in overlaps.items() if split_of(ref) == "train" and
                any(split_of(other) == "val" for other in near)}
    positives = {"train": [], "val": []}
    for ref in sorted(masks):
        if ref not in buffered:
            positives[split_of(ref)].append(ref)
    negatives = {"train": [], "val": []}
    for ref in refs:
        if ref not in masks and ref not in buffered:
            negatives[split_of(ref)].append(ref)

    t = source.tile
    per_tile_mb = (source.n_channels * 4 + 2) * t * t / 2 ** 20
    n_pos = sum(len(v) for v in positives.values())
    room = int(0.5 * budget_mb // per_tile_mb)
    if n_pos > room:
        raise OreMapError(
            f"The {n_pos} tiles holding mines need {n_pos * per_tile_mb:.0f} MB in memory, more than half the memory "
            f"budget ({budget_mb:.0f} MB).", "raster",
            f"Raise the memory budget {WHERE_BUDGET}, use smaller tiles, or train on "
            "a part of the scene.")
    chosen = {"train": [], "val": []}
    parts = {"train": [], "val": []}
    read_fb = feedback.scaled(10, 30)
    stream = None

    best = 0.0   # the largest valid share of a tile read

    def take(group, split, limit):
        nonlocal best
        kept, used = 0, 0
        for start in range(0, len(group), 32):
            if limit is not None and kept >= limit:
                break
            batch = group[start:start + 32]
            X, V = read_filled(source, batch, read_fb)
            used = start + len(batch)
            share = V.mean(axis=(1, 2))
            best = max(best, float(share.max(initial=0.0)))
            for k in np.flatnonzero(share >= min_valid):
                if limit is not None and kept >= limit:
                    used = start + int(k)
                    break
                chosen[split].append(batch[k])
                parts[split].append((X[k], V[k]))
                kept += 1
        return kept, used

    def wanted(split, n_mines):   # background tiles a split wants beside its mine tiles
        if negatives_per_positive < 0:
            return len(negatives[split])
        return int(math.ceil(negatives_per_positive * max(n_mines, 1)))

    for s in ("train", "val"):
        # mine tiles (those with enough valid pixels), then background tiles in random order
        n_kept, _ = take(positives[s], s, None)
        want = wanted(s, n_kept)
        pending = 0
        if s == "train":
            # the held-out mine tiles, and the held-out background's share of the room left: a training stream took
            # all of it, and held-out precision and IoU were measured on mine tiles alone
            n_val = len(positives["val"])
            free = max(room - len(chosen["train"]) - n_val, 0)
            reserve = min(wanted("val", n_val), len(negatives["val"]))
            if want + reserve > free:
                share = len(negatives["val"]) / max(len(negatives["train"]) + len(negatives["val"]), 1)
                reserve = min(reserve, int(free * share))
            pending = n_val + reserve
        room_left = max(room - len(chosen["train"]) - len(chosen["val"]) - pending, 0)
        order = [negatives[s][k] for k in rng.permutation(len(negatives[s]))]
        if want > room_left and s == "train" and room_left > 0:
            first = len(chosen["train"])
            n_slots, used = take(order, s, room_left)
            stream = BackgroundStream(source, order, used, list(range(first, first + n_slots)), min_valid,
                                      np.random.default_rng([int(seed), 17]), want)
            feedback.info(f"{min(want, len(order))} background tiles wanted for training, {n_slots} fit in the "
                          "memory budget at a time: they are drawn afresh from all the background tiles at "
                          "every epoch (streamed).")
        else:
            if want > room_left:
                feedback.warning(f"Held-out background tiles were limited by the memory budget to {room_left}.")
            take(order, s, min(want, room_left))
    all_tiles = chosen["train"] + chosen["val"]
    fit = ("Choose a TILE that fits the raster or its chips (at most their size, best a divisor of it: a tile "
           "reaching over an edge is filled with nodata).")
    clear = "Use a clearer scene (clouds and nodata count as invalid), or mines where the raster has data."
    inside = source.inside   # the share of a tile inside its raster or chip
    if not all_tiles:
        if best > 0 and max(inside(ref) for ref in refs) < min_valid:   # the tile is too large for what it tiles
            raise OreMapError(f"No tile of {t} x {t} pixels has {min_valid:.0%} valid pixels (the best "
                              f"{best:.0%}): the tiles are larger than the raster or its chips.", "tile", fit)
        raise OreMapError(f"No tile has {min_valid:.0%} valid pixels (the best {best:.0%}): the raster is mostly "
                          "nodata or clouds.", "raster", clear)
    kept = set(all_tiles)
    lost = [ref for ref in positives["train"] + positives["val"] if ref not in kept]
    edge = sum(1 for ref in lost if inside(ref) < min_valid)   # over an edge; the others lost to nodata or clouds
    dropped = len(lost)
    why = (f"{edge} reach{'es' if edge == 1 else ''} over the edge of the raster or a chip" if edge else "") + \
        (", " if edge and dropped > edge else "") + \
        (f"{dropped - edge} cover{'s' if dropped - edge == 1 else ''} nodata or clouds" if dropped > edge else "")
    if dropped and dropped == n_pos:
        raise OreMapError(f"Each of the {n_pos} tiles holding mines has fewer than {min_valid:.0%} valid pixels "
                          f"({why}): no mine is left to train on.", "tile" if edge == dropped else "raster",
                          fit if edge == dropped else clear)
    if dropped:
        feedback.warning(f"{dropped} of the {n_pos} tiles holding mines have fewer than {min_valid:.0%} valid pixels "
                         f"({why}) and are not trained on: their mine pixels are lost to training. "
                         + (fit if edge else clear))
    X = np.stack([p[0] for p in parts["train"] + parts["val"]])
    V = np.stack([p[1] for p in parts["train"] + parts["val"]])
    Y = np.stack([masks.get(ref, np.zeros((t, t), np.uint8)) for ref in all_tiles]).astype(np.uint8)
    Y[~V] = 0
    split = np.array(["train"] * len(chosen["train"]) + ["val"] * len(chosen["val"]))
    mine_px = Y.reshape(len(all_tiles), -1).sum(axis=1).astype(np.int64)
    # held-out mine pixels whose mine is also trained on: the valid mine pixels of the tiles chosen for each side
    side = {ref: str(split[k]) for k, ref in enumerate(all_tiles)}   # the mine tiles left out are on neither
    shared = shared_mine_pixels(masks, side.get, getattr(source, "ground_origin", None),
                                counted={ref: Y[k] > 0 for k, ref in enumerate(all_tiles) if mine_px[k]})
    if not (mine_px[split == "train"] > 0).any():
        raise OreMapError("No training tile holds valid mine pixels: every mine tile kept lies in the held-out blocks "
                          "(or next to them).", "polygons",
                          "Give mines in more places (polygons, or mask chips), or hold out a smaller share.")
    layout = layout or (lambda ref: (ref[0], ref[1]))
    cells = [layout(ref) for ref in all_tiles]
    plan = TilePlan(
        tile=t, grid=tuple(grid) if grid else (max(c[0] for c in cells) + 1, max(c[1] for c in cells) + 1),
        block_tiles=int(getattr(source, "block_tiles", 1)), val_blocks=set(val_blocks),
        rows=np.array([c[0] for c in cells], dtype=np.int64),
        cols=np.array([c[1] for c in cells], dtype=np.int64), split=split, mine_pixels=mine_px,
        info={"n_blocks": len(has_mines), "n_mine_blocks": int(sum(has_mines.values())),
              "n_val_blocks": len(val_blocks), "n_val_mine_blocks": int(sum(has_mines[b] for b in val_blocks)),
              "n_mine_tiles": n_pos, "n_train_tiles": int((split == "train").sum()),
              "n_val_tiles": int((split == "val").sum()),
              "n_train_mine_tiles": int(((split == "train") & (mine_px > 0)).sum()),
              "n_val_mine_tiles": int(((split == "val") & (mine_px > 0)).sum()),
              "train_mine_pixels": int(mine_px[split == "train"].sum()),
              "val_mine_pixels": int(mine_px[split == "val"].sum()),
              "val_mine_pixels_shared": int(sum(shared.values())),
              "n_dropped_few_valid": int(dropped), "n_dropped_edge": int(edge),
              "n_buffered": len(buffered), "n_buffered_mine_tiles": len(buffered & set(masks)),
              "n_background_pool": len(negatives["train"]) if stream is not None else None},
        stream=stream)
    feedback.progress(30)
    return plan, X, Y, V


def read_filled(source, refs, feedback):
    """Training tiles ``refs`` of ``source`` (features, valid mask), their nodata filled from the nearest valid pixel
    (:func:`core.sentinel2.segmentation_network.fill_nodata`) as detection fills its windows; the valid mask keeps
    the filled pixels out of the statistics and the loss."""
    X, V = source.read(refs, feedback)
    return fill_nodata(X), V


class BackgroundStream:
    """Training background tiles beyond the memory budget: slots of ``X`` refilled at each epoch.

    ``order`` is every training background tile in random order; the first ``used`` were read for the
    first epoch. :meth:`refill` reads the next tiles (with at least ``min_valid`` valid pixels), going
    round ``order`` again, reshuffled, once it is used up, nodata filled as in the first draw (:func:`read_filled`).
    """

    def __init__(self, source, order, used, slots, min_valid, rng, wanted):
        self.source, self.order, self.next, self.slots = source, list(order), int(used), list(slots)
        self.min_valid, self.rng, self.wanted = float(min_valid), rng, int(wanted)
        self.seen = int(used)

    def refill(self, X, V, Y, feedback=None):
        """Overwrite the slots of ``X`` (nodata filled), ``V`` (and zero ``Y``) with the next background tiles."""
        feedback = ensure(feedback)
        filled, misses = 0, 0
        while filled < len(self.slots):
            if self.next >= len(self.order):
                self.order = [self.order[k] for k in self.rng.permutation(len(self.order))]
                self.next = 0
            batch = self.order[self.next:self.next + min(32, len(self.slots) - filled)]
            self.next += len(batch)
            Xb, Vb = read_filled(self.source, batch, ensure(None))
            for k in range(len(batch)):
                if Vb[k].mean() < self.min_valid:
                    misses += 1
                    if misses > 4 * len(self.order):
                        return filled
                    continue
                slot = self.slots[filled]
                X[slot], V[slot], Y[slot] = Xb[k], Vb[k], 0
                filled += 1
                self.seen += 1
                if filled == len(self.slots):
                    break
        return filled
