"""Mine footprints in Sentinel-2 images: a small U-Net trained from scratch on tiles.

Training (:func:`train_mine_segmentation`):

1. The raster (a Sentinel-2 stack or folder, read through :func:`core.sentinel2.sentinel2.open_sentinel2`)
   is cut into a grid of ``tile x tile`` pixel tiles (the last row and column of tiles reach past
   the raster; those pixels are nodata). Mine polygons are rasterised onto each tile's pixels
   (``rasterio.features.rasterize``, a pixel is "mine" when its centre lies inside a polygon,
   ``all_touched=False``).
2. Spatial hold-out: the tile grid is grouped into square blocks of ``block_tiles x block_tiles``
   tiles; about ``val_fraction`` of the blocks holding mines and of those without are held out.
   A tile lies in exactly one block, so held-out tiles never share a pixel with training tiles.
   Every tile holding mine pixels is used; tiles without mines are drawn at random,
   ``negatives_per_positive`` of them per mine tile (per split).
3. Model input: reflectance of the model's bands plus spectral indices
   (:func:`core.sentinel2.sentinel2.compute_indices`), z-scored with means and standard deviations of the
   training tiles' valid pixels (stored in the model and inside the graph), clipped to +/- 8 sd,
   nodata (and undefined indices) set to 0, i.e. the mean.
4. A U-Net (``depth`` poolings, ``width`` channels at the top, doubled at each level) with one
   output logit per pixel, trained with Adam (cosine learning-rate decay) on BCE + soft Dice over
   valid pixels, with random flips and 90 degree rotations. The same seed gives the same model,
   byte for byte.
5. IoU, F1, precision and recall on the held-out tiles' valid pixels (threshold 0.5 unless told)
   are written into the model and an HTML report (learning curves, tile layout, an example tile
   with the reference and predicted outlines).

The ONNX graph maps raw feature tiles ``(n, C, h, w)`` (float32, NaN = nodata; any ``h``, ``w``
that are multiples of ``2 ** depth``) to mine probabilities ``(n, 1, h, w)``. Mapping whole scenes
with blended sliding windows is :func:`core.sentinel2.mine_detection.detect_mines`.

``torch`` is imported only for training.
"""

import base64
import datetime
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from ..engine import compute, torch_training
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, write_model
from ..engine.raster import memory_budget_mb
from .sentinel2 import S2_BANDS, compute_indices, index_bands, normalise_band_name, open_sentinel2

#: Task name of the models made here.
TASK = "mine_segmentation"

#: Names of the ONNX graph's input and output.
INPUT_NAME = "tiles"
OUTPUT_NAME = "probabilities"

#: ONNX opset of the exported graphs.
OPSET = 17

#: Output classes (the graph gives the probability of the second).
CLASSES = [{"name": "background", "color": "#3b4cc0"}, {"name": "mine", "color": "#d7301f"}]

#: Spectral indices added to the bands by default: the normalised differences (bounded, -1 to 1). The
#: band ratios (iron oxide, ferrous iron, clay) can be asked for; unbounded over dark water and
#: shadow, they made held-out IoU worse on the synthetic scenes of the tests.
DEFAULT_INDICES = ["NDVI", "NDWI", "MNDWI", "BSI", "NBR", "NBR2", "NDMI"]

#: z-scores are clipped to +/- this many standard deviations (ratio indices can explode over water).
Z_CLIP = 8.0

#: Tile sizes allowed (pixels).
MIN_TILE, MAX_TILE = 16, 512

_FIX_POLYGONS = "Choose a polygon layer of mine footprints that overlaps the raster."


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

@compute.torch_classes("train the mine segmentation U-Net")
def _torch_classes(torch, nn):
    """Torch and the module classes, built on first use (torch imported lazily)."""

    def double_conv(c_in, c_out):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        """Encoder of ``depth`` double convolutions + 2x2 max-pooling (widths w, 2w, 4w ...), a bottleneck,
        a decoder of 2x2 transposed convolutions + skip concatenation + double convolution, a 1x1 head."""

        def __init__(self, in_channels, depth, width):
            super().__init__()
            widths = [width * 2 ** i for i in range(depth + 1)]
            self.down = nn.ModuleList(
                [double_conv(in_channels if i == 0 else widths[i - 1], widths[i]) for i in range(depth)])
            self.pool = nn.MaxPool2d(2)
            self.bottom = double_conv(widths[depth - 1], widths[depth])
            self.up = nn.ModuleList(
                [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))])
            self.dec = nn.ModuleList([double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
            self.head = nn.Conv2d(widths[0], 1, 1)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    class TileModel(nn.Module):
        """Raw feature tiles (NaN = nodata) -> z-score, clip, NaN -> 0 -> U-Net -> mine probability."""

        def __init__(self, net, mean, sd, clip=Z_CLIP):
            super().__init__()
            self.net = net
            self.clip = float(clip)
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).reshape(1, -1, 1, 1))
            self.register_buffer("sd", torch.as_tensor(np.asarray(sd, np.float32)).reshape(1, -1, 1, 1))

        def logit(self, x):
            z = (x - self.mean) / self.sd
            z = torch.where(torch.isnan(z), torch.zeros_like(z), z)
            return self.net(torch.clamp(z, -self.clip, self.clip))

        def forward(self, x):
            return torch.sigmoid(self.logit(x))

    return dict(UNet=UNet, TileModel=TileModel)


def check_architecture(tile, depth, width):
    """Raise :class:`OreMapError` unless the tile size suits a U-Net of ``depth`` poolings."""
    tile, depth, width = int(tile), int(depth), int(width)
    if not 1 <= depth <= 6:
        raise OreMapError(f"The U-Net depth must be 1-6 poolings, not {depth}.", "depth", "Use 3 or 4.")
    if width < 2:
        raise OreMapError("The U-Net width must be at least 2 channels.", "width", "Use 16.")
    if not MIN_TILE <= tile <= MAX_TILE or tile % (2 ** depth):
        raise OreMapError(f"The tile size must be {MIN_TILE}-{MAX_TILE} pixels and a multiple of {2 ** depth} "
                          f"(2 to the power of the depth), not {tile}.", "tile", "Use 128 or 256.")
    return tile, depth, width


def build_unet(in_channels, depth=4, width=16):
    """A U-Net (``torch.nn.Module``) mapping ``(n, in_channels, h, w)`` to ``(n, 1, h, w)`` logits."""
    if int(in_channels) < 1:
        raise OreMapError("The U-Net needs at least one input channel.", "bands")
    check_architecture(2 ** int(depth) * max(1, MIN_TILE // 2 ** int(depth)), depth, width)
    return _torch_classes()["UNet"](int(in_channels), int(depth), int(width))


def tile_model(net, mean, sd):
    """The export module: raw tiles -> z-score -> clip -> NaN to 0 -> ``net`` -> sigmoid."""
    return _torch_classes()["TileModel"](net, mean, sd)


def export_onnx(module, n_channels, tile):
    """ONNX bytes (opset :data:`OPSET`; batch, height and width dynamic) of a :func:`tile_model` module.

    Uses the TorchScript-based exporter (``dynamo=False``): the default exporter of recent torch
    needs the ``onnxscript`` package.
    """
    return compute.onnx_bytes(module, (1, n_channels, tile, tile), INPUT_NAME, OUTPUT_NAME,
                              axes={0: "n", 2: "height", 3: "width"}, opset=OPSET)


def predict_torch(module, tiles, batch_size=16):
    """Mine probability ``(n, h, w)`` of raw feature tiles ``(n, C, h, w)`` through a torch module (eval mode)."""
    X = np.asarray(tiles)
    return compute.torch_predict(module, X, batch_size, empty_shape=(0, 1) + X.shape[2:])[:, 0]


# ---------------------------------------------------------------------------
# Input features
# ---------------------------------------------------------------------------


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

    def __init__(self, raster_path, bands=None, indices=None, band_map=None, feedback=None, mask_clouds=True):
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
        self.indices = []
        if indices:
            self.indices = compute_indices(np.ones((1, len(S2_BANDS))), S2_BANDS, indices)[1]  # canonical names
        needed = set(self.bands) | set(index_bands(self.indices) if self.indices else [])
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
            out[:, len(self.bands):] = compute_indices(refl, self.read_bands, self.indices)[0]
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


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


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
        out.append(g if g.is_valid else g.buffer(0))
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


# ---------------------------------------------------------------------------
# Tile plan: grid, spatial blocks, held-out blocks
# ---------------------------------------------------------------------------


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
        corners = [inverse * (x, y) for x, y in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))]
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


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@dataclass
class SegmentationResult:
    """What :func:`train_mine_segmentation` returns.

    Attributes
    ----------
    onnx_bytes : bytes
        The graph without OreMap metadata (the same for the same data, options and seed).
    info : ModelInfo
    plan : TilePlan
    history : dict
        Per epoch: ``train_loss``, ``val_loss``, ``val_iou``, ``val_f1``.
    metrics : dict
        ``val_iou``, ``val_f1``, ``val_precision``, ``val_recall``, ``val_pixels``,
        ``val_mine_pixels``, and the same for the training tiles (``train_...``).
    example : dict
        A held-out tile for the report: ``rgb`` (tile, tile, 3) uint8, ``reference`` and
        ``predicted`` masks.
    torch_model : torch.nn.Module
        The export module (eval mode).
    """

    onnx_bytes: bytes
    info: ModelInfo
    plan: TilePlan
    history: dict
    metrics: dict
    example: dict = field(default=None, repr=False)
    torch_model: object = field(default=None, repr=False, compare=False)

    def save(self, path):
        """Write the OreMap model file (atomically); returns the path."""
        return write_model(self.onnx_bytes, self.info, path)


def _augment(x, y, v, rng):
    """Random 90 degree rotations and mirror images of ``(n, C, t, t)`` tiles with their labels and masks."""
    n = x.shape[0]
    turns = rng.integers(0, 4, size=n)
    mirror = rng.integers(0, 2, size=n)
    xo, yo, vo = np.empty_like(x), np.empty_like(y), np.empty_like(v)
    for i in range(n):
        a, b, c = x[i], y[i], v[i]
        if mirror[i]:
            a, b, c = a[:, :, ::-1], b[:, ::-1], c[:, ::-1]
        k = int(turns[i])
        xo[i] = np.rot90(a, k, axes=(1, 2))
        yo[i] = np.rot90(b, k)
        vo[i] = np.rot90(c, k)
    return xo, yo, vo


def _loss(torch, logits, target, valid, dice_weight):
    """BCE over valid pixels + ``dice_weight`` x (1 - soft Dice) over the batch's valid pixels."""
    weights = valid.to(logits.dtype)
    n = weights.sum().clamp_min(1.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * weights).sum() / n
    p = torch.sigmoid(logits) * weights
    t = target * weights
    dice = 1.0 - (2.0 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)
    return bce + dice_weight * dice


def pixel_scores(tp, fp, fn, tn=0):
    """IoU, F1, precision and recall from pixel counts (NaN when undefined)."""
    tp, fp, fn = int(tp), int(fp), int(fn)
    nan = float("nan")
    return {"iou": tp / (tp + fp + fn) if tp + fp + fn else nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else nan,
            "precision": tp / (tp + fp) if tp + fp else nan,
            "recall": tp / (tp + fn) if tp + fn else nan,
            "tp": tp, "fp": fp, "fn": fn, "tn": int(tn)}


def _counts(proba, y, v, threshold):
    pred = proba >= threshold
    truth = y.astype(bool)
    return (int((pred & truth & v).sum()), int((pred & ~truth & v).sum()), int((~pred & truth & v).sum()),
            int((~pred & ~truth & v).sum()))


def _evaluate(module, torch, X, Y, V, index, threshold, dice_weight, batch_size):
    """Loss (mean over batches weighted by valid pixels), pixel counts at ``threshold``, probabilities."""
    if index.size == 0:
        return float("nan"), (0, 0, 0, 0), np.zeros((0,) + Y.shape[1:], np.float32)
    module.eval()
    total, weight = 0.0, 0.0
    counts = np.zeros(4, dtype=np.int64)
    probas = []
    with torch.no_grad():
        for s in range(0, index.size, batch_size):
            idx = index[s:s + batch_size]
            logits = module.logit(torch.from_numpy(X[idx]))
            target = torch.from_numpy(Y[idx].astype(np.float32)[:, None])
            valid = torch.from_numpy(V[idx][:, None])
            w = float(V[idx].sum())
            total += float(_loss(torch, logits, target, valid, dice_weight)) * w
            weight += w
            proba = torch.sigmoid(logits)[:, 0].numpy()
            counts += np.array(_counts(proba, Y[idx], V[idx], threshold))
            probas.append(proba)
    return total / max(weight, 1.0), tuple(int(c) for c in counts), np.concatenate(probas)


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


def plan_tiles(reader, geometries, tile, block_tiles, val_fraction, negatives_per_positive, min_valid, seed,
               budget_mb, feedback=None):
    """Choose and read the training and held-out tiles; see the module docstring.

    Returns ``(plan, X, Y, V)``: the :class:`TilePlan` and, in its tile order, raw features
    ``(n, C, t, t)`` float32 (NaN = nodata), labels ``(n, t, t)`` uint8 and valid masks.
    """
    feedback = ensure(feedback)
    height, width, t = reader.height, reader.width, tile
    n_r, n_c = math.ceil(height / t), math.ceil(width / t)
    masks = mine_pixels_per_tile(geometries, reader.transform, height, width, t, feedback.scaled(0, 10))
    if not masks:
        raise OreMapError("No mine polygon covers the centre of any pixel of the raster.", "polygons",
                          "Check that the polygons lie on the raster (any CRS is reprojected) and are larger "
                          "than a pixel.")
    block = lambda i, j: (i // block_tiles, j // block_tiles)  # noqa: E731
    has_mines = {}
    for i in range(n_r):
        for j in range(n_c):
            has_mines[block(i, j)] = has_mines.get(block(i, j), False) or (i, j) in masks
    rng = np.random.default_rng([int(seed), 11])
    val_blocks = assign_blocks(has_mines, val_fraction, rng)
    if val_fraction > 0 and not any(has_mines[b] for b in val_blocks):
        feedback.warning("Only one spatial block holds mines, so no mine is held out: IoU and F1 cannot be "
                         "measured. Use smaller blocks or a raster with mines in several places.")
    split_of = lambda i, j: "val" if block(i, j) in val_blocks else "train"  # noqa: E731
    positives = {"train": [], "val": []}
    for (i, j) in sorted(masks):
        positives[split_of(i, j)].append((i, j))
    negatives = {"train": [], "val": []}
    for i in range(n_r):
        for j in range(n_c):
            if (i, j) not in masks:
                negatives[split_of(i, j)].append((i, j))

    c = reader.n_channels
    per_tile_mb = (c * 4 + 2) * t * t / 2 ** 20
    n_pos = sum(len(v) for v in positives.values())
    room = int(0.5 * budget_mb // per_tile_mb)
    if n_pos > room:
        raise OreMapError(
            f"The {n_pos} tiles holding mines need {n_pos * per_tile_mb:.0f} MB in memory, more than half the memory "
            f"budget ({budget_mb:.0f} MB).", "raster",
            "Raise the memory budget (Processing > Options > Providers > OreMap), use smaller tiles, or train on "
            "a part of the scene.")
    chosen = {"train": [], "val": []}
    parts = {"train": [], "val": []}
    read_fb = feedback.scaled(10, 30)
    capped = False

    def take(group, split, limit):
        kept = 0
        for start in range(0, len(group), 32):
            if limit is not None and kept >= limit:
                break
            batch = group[start:start + 32]
            X, V = _read_tiles(reader, [b[0] for b in batch], [b[1] for b in batch], t, read_fb)
            for k in np.flatnonzero(V.mean(axis=(1, 2)) >= min_valid):
                if limit is not None and kept >= limit:
                    break
                chosen[split].append(batch[k])
                parts[split].append((X[k], V[k]))
                kept += 1
        return kept

    for s in ("train", "val"):
        # mine tiles (those with enough valid pixels), then background tiles in random order
        n_kept = take(positives[s], s, None)
        want = len(negatives[s]) if negatives_per_positive < 0 else \
            int(math.ceil(negatives_per_positive * max(n_kept, 1)))
        pending = len(positives["val"]) if s == "train" else 0
        room_left = max(room - len(chosen["train"]) - len(chosen["val"]) - pending, 0)
        if want > room_left:
            want, capped = room_left, True
        order = [negatives[s][k] for k in rng.permutation(len(negatives[s]))]
        take(order, s, want)
    if capped:
        feedback.warning("Background tiles were limited by the memory budget.")
    all_tiles = chosen["train"] + chosen["val"]
    if not all_tiles:
        raise OreMapError("No tile has enough valid pixels.", "raster", "Check the raster's nodata.")
    X = np.stack([p[0] for p in parts["train"] + parts["val"]])
    V = np.stack([p[1] for p in parts["train"] + parts["val"]])
    Y = np.stack([masks.get(ij, np.zeros((t, t), np.uint8)) for ij in all_tiles]).astype(np.uint8)
    Y[~V] = 0
    split = np.array(["train"] * len(chosen["train"]) + ["val"] * len(chosen["val"]))
    mine_px = Y.reshape(len(all_tiles), -1).sum(axis=1).astype(np.int64)
    if not (mine_px[split == "train"] > 0).any():
        raise OreMapError("No training tile holds valid mine pixels.", "polygons", _FIX_POLYGONS)
    plan = TilePlan(
        tile=t, grid=(n_r, n_c), block_tiles=int(block_tiles), val_blocks=set(val_blocks),
        rows=np.array([ij[0] for ij in all_tiles], dtype=np.int64),
        cols=np.array([ij[1] for ij in all_tiles], dtype=np.int64), split=split, mine_pixels=mine_px,
        info={"n_blocks": len(has_mines), "n_mine_blocks": int(sum(has_mines.values())),
              "n_val_blocks": len(val_blocks), "n_val_mine_blocks": int(sum(has_mines[b] for b in val_blocks)),
              "n_mine_tiles": n_pos, "n_train_tiles": int((split == "train").sum()),
              "n_val_tiles": int((split == "val").sum()),
              "n_train_mine_tiles": int(((split == "train") & (mine_px > 0)).sum()),
              "n_val_mine_tiles": int(((split == "val") & (mine_px > 0)).sum()),
              "train_mine_pixels": int(mine_px[split == "train"].sum()),
              "val_mine_pixels": int(mine_px[split == "val"].sum()),
              "n_dropped_nodata": int(n_pos - sum(1 for ij in all_tiles if ij in masks))})
    feedback.progress(30)
    return plan, X, Y, V


def _fit_stats(X, V, index):
    """Per-channel mean and sd over the valid, finite pixels of tiles ``index``."""
    c = X.shape[1]
    total = np.zeros(c)
    total2 = np.zeros(c)
    count = np.zeros(c)
    for k in index:
        vals = X[k][:, V[k]].astype(np.float64)  # (C, n)
        ok = np.isfinite(vals)
        vals = np.where(ok, vals, 0.0)
        total += vals.sum(axis=1)
        total2 += (vals ** 2).sum(axis=1)
        count += ok.sum(axis=1)
    mean = total / np.maximum(count, 1)
    var = np.maximum(total2 / np.maximum(count, 1) - mean ** 2, 0.0)
    sd = np.sqrt(var)
    sd = np.where(sd > 1e-6 * np.maximum(np.abs(mean), 1.0), sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32)


def _data_hash(X, Y, plan):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.nan_to_num(X, nan=-1e30)).tobytes())
    h.update(np.ascontiguousarray(Y).tobytes())
    h.update(plan.rows.tobytes() + plan.cols.tobytes() + "".join(plan.split).encode())
    return h.hexdigest()


def train_mine_segmentation(raster_path, polygons, model_path=None, report_path=None, bands=None,
                            indices=DEFAULT_INDICES, band_map=None, tile=128, depth=4, width=16, epochs=30,
                            batch_size=8, lr=2e-3, weight_decay=1e-4, dice_weight=1.0, negatives_per_positive=1.0,
                            block_tiles=4, val_fraction=0.25, threshold=0.5, min_valid=0.5, seed=0, memory_mb=None,
                            threads=None, description="", feedback=None, mask_clouds=True):
    """Train a U-Net on mine polygons over a Sentinel-2 raster and export it (see the module docstring).

    Parameters
    ----------
    raster_path : str
        Sentinel-2 raster or folder of per-band files.
    polygons : str, GeoDataFrame or sequence of shapely geometries
        Mine footprints: a vector file or GeoDataFrame (any CRS, reprojected), or geometries in the
        raster's CRS.
    model_path, report_path : str, optional
        ONNX model and HTML report to write.
    bands : list of str, optional
        Model bands (the 12 L2A bands by default). ``indices``: spectral indices appended.
    tile : int, default 128
        Tile side (multiple of ``2 ** depth``). ``depth`` (poolings) and ``width`` (first-level
        channels): the U-Net's size.
    epochs, batch_size, lr, weight_decay : training settings (Adam, cosine decay to 1 %).
    dice_weight : float, default 1.0
        Weight of the soft-Dice term next to the BCE.
    negatives_per_positive : float, default 1.0
        Tiles without mines per tile with mines, per split; negative = all.
    block_tiles : int, default 4
        Side of a spatial hold-out block, in tiles. ``val_fraction``: share of blocks held out.
    threshold : float, default 0.5
        Probability above which a pixel is called mine (metrics and the model's default).
    min_valid : float, default 0.5
        Tiles with a smaller share of valid pixels are not used.
    seed : int
        Same data, options and seed give the same model, byte for byte (on one machine and torch).
    threads : int, optional
        Threads torch may use (restored afterwards).
    mask_clouds : bool, default True
        A folder's scene classification masks clouds (:class:`FeatureReader`).

    Returns
    -------
    SegmentationResult
    """
    feedback = ensure(feedback)
    tile, depth, width = check_architecture(tile, depth, width)
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2), ("block_tiles", block_tiles, 1)):
        if int(value) < low:
            raise OreMapError(f"{name.replace('_', ' ').capitalize()} must be at least {low}.", name)
    if not lr > 0:
        raise OreMapError("The learning rate must be positive.", "learning_rate")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise OreMapError("The held-out share must be in [0, 1).", "val_fraction")
    if not 0.0 < float(threshold) < 1.0:
        raise OreMapError("The threshold must lie between 0 and 1.", "threshold")
    budget = memory_budget_mb(memory_mb)
    torch = _torch_classes()["torch"]
    with FeatureReader(raster_path, bands, indices, band_map, feedback, mask_clouds) as reader:
        geoms = load_polygons(polygons, reader.crs)
        if reader.width < tile or reader.height < tile:
            feedback.warning(f"The raster ({reader.width} x {reader.height}) is smaller than one tile ({tile}): "
                             "tiles are padded with nodata.")
        plan, X, Y, V = plan_tiles(reader, geoms, tile, int(block_tiles), float(val_fraction),
                                   float(negatives_per_positive), float(min_valid), seed, budget, feedback)
        channel_names = list(reader.channel_names)
        bands_used, indices_used = list(reader.bands), list(reader.indices)
        transform, crs = reader.transform, reader.crs
        raster_size = (reader.width, reader.height)
        rgb_cols = [reader.bands.index(b) for b in ("B4", "B3", "B2") if b in reader.bands]
    pi = plan.info
    feedback.info(f"{pi['n_train_tiles']} training tiles ({pi['n_train_mine_tiles']} with mines), "
                  f"{pi['n_val_tiles']} held-out tiles ({pi['n_val_mine_tiles']} with mines) in "
                  f"{pi['n_val_blocks']} of {pi['n_blocks']} blocks of {block_tiles} x {block_tiles} tiles.")
    train_idx, val_idx = plan.train_index, plan.val_index
    mean, sd = _fit_stats(X, V, train_idx)
    rng = np.random.default_rng([int(seed), 13])
    history = {"train_loss": [], "val_loss": [], "val_iou": [], "val_f1": []}
    bs = int(batch_size)
    with torch_training.seeded(torch, seed, deterministic=True, threads=threads):
        net = build_unet(len(channel_names), depth, width)
        module = tile_model(net, mean, sd)
        optimiser = torch.optim.Adam(net.parameters(), lr=float(lr), weight_decay=float(weight_decay))

        def start_epoch(epoch):
            for group in optimiser.param_groups:
                group["lr"] = float(lr) * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * epoch / int(epochs))))
            module.train()

        def step(batch):
            idx = np.sort(train_idx[batch])
            x, y, v = _augment(X[idx], Y[idx], V[idx], rng)
            optimiser.zero_grad()
            loss = _loss(torch, module.logit(torch.from_numpy(x)),
                         torch.from_numpy(y.astype(np.float32)[:, None]), torch.from_numpy(v[:, None]),
                         float(dice_weight))
            loss.backward()
            optimiser.step()
            return loss

        def end_epoch(epoch, train_loss):
            if not np.isfinite(train_loss):
                raise OreMapError("Training diverged: the loss is not a number.", "learning_rate",
                                  "Lower the learning rate (e.g. 0.001).")
            val_loss, counts, _ = _evaluate(module, torch, X, Y, V, val_idx, threshold, dice_weight, bs)
            scores = pixel_scores(*counts)
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["val_iou"].append(scores["iou"])
            history["val_f1"].append(scores["f1"])

        def log(epoch, train_loss):
            if (epoch + 1) % 5 == 0 or epoch == 0 or epoch + 1 == int(epochs):
                line = f"Epoch {epoch + 1}: training loss {train_loss:.4f}"
                if val_idx.size:
                    line += (f", held-out loss {history['val_loss'][-1]:.4f}, IoU {history['val_iou'][-1]:.3f}, "
                             f"F1 {history['val_f1'][-1]:.3f}")
                feedback.info(line)

        torch_training.train_epochs(train_idx.size, bs, epochs, rng, step, feedback, start_epoch=start_epoch,
                                    end_epoch=end_epoch, progress=(30.0, 60.0), log=log)
        module.eval()
        onnx_bytes = export_onnx(module, len(channel_names), tile)
        feedback.progress(92)
        _, val_counts, val_proba = _evaluate(module, torch, X, Y, V, val_idx, threshold, dice_weight, bs)
        _, train_counts, _ = _evaluate(module, torch, X, Y, V, train_idx, threshold, dice_weight, bs)
        example = _example_tile(X, Y, V, plan, val_idx, val_proba, train_idx, module, threshold, rgb_cols)
    metrics = {}
    for prefix, counts in (("val", val_counts), ("train", train_counts)):
        scores = pixel_scores(*counts)
        for key in ("iou", "f1", "precision", "recall"):
            metrics[f"{prefix}_{key}"] = scores[key]
        metrics[f"{prefix}_pixels"] = int(sum(counts))
        metrics[f"{prefix}_mine_pixels"] = int(counts[0] + counts[2])
        metrics[f"{prefix}_confusion"] = [[counts[3], counts[1]], [counts[2], counts[0]]]
    metrics.update({"n_train_tiles": pi["n_train_tiles"], "n_val_tiles": pi["n_val_tiles"],
                    "n_train_mine_tiles": pi["n_train_mine_tiles"], "n_val_mine_tiles": pi["n_val_mine_tiles"]})
    if val_idx.size:
        feedback.info(f"Held-out tiles: IoU {metrics['val_iou']:.3f}, F1 {metrics['val_f1']:.3f}, precision "
                      f"{metrics['val_precision']:.3f}, recall {metrics['val_recall']:.3f} at threshold "
                      f"{threshold:g}.")
    parameters = {"tile": tile, "depth": depth, "width": width, "epochs": int(epochs), "batch_size": bs,
                  "lr": float(lr), "weight_decay": float(weight_decay), "dice_weight": float(dice_weight),
                  "negatives_per_positive": float(negatives_per_positive), "block_tiles": int(block_tiles),
                  "val_fraction": float(val_fraction), "min_valid": float(min_valid), "seed": int(seed),
                  "augmentation": "flips and 90 degree rotations", "optimiser": "Adam, cosine decay to 1 %",
                  "loss": "BCE + soft Dice over valid pixels", "val_blocks": sorted(list(b) for b in plan.val_blocks)}
    px_w, px_h = math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
    info = ModelInfo(
        task=TASK,
        classes=[dict(c) for c in CLASSES],
        input={"name": INPUT_NAME, "n_bands": len(channel_names), "window": int(tile)},
        output={"name": OUTPUT_NAME, "kind": "probability_map"},
        band_names=channel_names,
        preprocessing={"method": "sentinel2_features", "bands": bands_used, "indices": indices_used,
                       "reflectance": "DN * scale + offset (core.sentinel2.sentinel2)",
                       "mean": [float(v) for v in mean],
                       "sd": [float(v) for v in sd], "clip": Z_CLIP, "nodata_fill": 0.0, "in_graph": True},
        training={
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "data_hash": _data_hash(X, Y, plan), "n_samples": int(len(plan.rows)), "metrics": metrics,
            "parameters": parameters, "source": os.path.basename(os.path.normpath(str(raster_path))),
        },
        description=str(description) or "OreMap Sentinel-2 mine segmentation U-Net",
        extra={"segmentation": {"tile": int(tile), "threshold": float(threshold), "overlap": int(tile // 4),
                                "depth": depth, "width": width, "architecture": "unet"},
               "spatial": {"pixel_size": [float(px_w), float(px_h)],
                           "epsg": crs.to_epsg() if crs is not None else None}},
    )
    info = ModelInfo.from_json(info.to_json())
    result = SegmentationResult(onnx_bytes=onnx_bytes, info=info, plan=plan, history=history, metrics=metrics,
                                example=example, torch_model=module)
    if model_path:
        result.save(model_path)
    if report_path:
        from ..engine import report

        report.write_report(report_path, training_report(result, raster_size, raster_path))
    feedback.progress(100)
    return result


def _example_tile(X, Y, V, plan, val_idx, val_proba, train_idx, module, threshold, rgb_cols):
    """The held-out tile with the most mine pixels (a training tile when nothing is held out)."""
    if val_idx.size and plan.mine_pixels[val_idx].max() > 0:
        k = int(np.argmax(plan.mine_pixels[val_idx]))
        index, proba, split = int(val_idx[k]), val_proba[k], "held-out"
    else:
        index = int(train_idx[np.argmax(plan.mine_pixels[train_idx])])
        proba, split = predict_torch(module, X[index:index + 1])[0], "training"
    x = X[index]
    cols = rgb_cols if len(rgb_cols) == 3 else [0, 0, 0]
    rgb = np.stack([x[c] for c in cols], axis=-1)
    ok = V[index] & np.all(np.isfinite(rgb), axis=-1)
    out = np.zeros(rgb.shape, dtype=np.uint8)
    if ok.any():
        lo, hi = np.percentile(rgb[ok], 2), np.percentile(rgb[ok], 98)
        scaled = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)
        out = np.where(ok[..., None], np.round(255 * scaled ** (1 / 1.4)), 0).astype(np.uint8)
    return {"rgb": out, "reference": Y[index].astype(bool), "predicted": (proba >= threshold) & V[index],
            "split": split, "tile": (int(plan.rows[index]), int(plan.cols[index]))}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def png_bytes(rgb):
    """A PNG file (bytes) of an ``(h, w, 3)`` uint8 image; zlib only, no imaging library."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def outline_path(mask, scale=1.0):
    """SVG path data of the outlines of a boolean mask's regions (pixel edges, ``scale`` px per pixel)."""
    from rasterio.features import shapes

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    parts = []
    for geom, value in shapes(mask, mask=mask.astype(bool), connectivity=4):
        for ring in geom["coordinates"]:
            pts = " L".join(f"{x * scale:.1f} {y * scale:.1f}" for x, y in ring[:-1])
            parts.append(f"M{pts} Z")
    return " ".join(parts)


def tile_figure(example, size=384):
    """An SVG of the example tile (true colour) with the reference (cyan) and predicted (red) outlines."""
    rgb = example["rgb"]
    t = rgb.shape[0]
    scale = size / t
    data = base64.b64encode(png_bytes(rgb)).decode("ascii")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-tile" width="{size}" height="{size + 22}" '
            f'viewBox="0 0 {size} {size + 22}" role="img" aria-label="Example tile">'
            f'<image x="0" y="0" width="{size}" height="{size}" preserveAspectRatio="none" '
            f'style="image-rendering:pixelated" href="data:image/png;base64,{data}"/>'
            f'<path class="reference" d="{outline_path(example["reference"], scale)}" fill="none" '
            f'stroke="#00e5ff" stroke-width="1.5"/>'
            f'<path class="predicted" d="{outline_path(example["predicted"], scale)}" fill="none" '
            f'stroke="#ff1744" stroke-width="1.5" stroke-dasharray="4 2"/>'
            f'<text x="4" y="{size + 15}" font-size="11" font-family="sans-serif">cyan: reference polygons, '
            f'red dashed: predicted (threshold)</text></svg>')


def _layout_svg(plan, size=360):
    """The tile grid: training tiles blue, held-out tiles orange (darker with mines), held-out blocks framed."""
    n_r, n_c = plan.grid
    cell = size / max(n_r, n_c)
    w, h = n_c * cell, n_r * cell
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-layout" width="{w + 2:.0f}" height="{h + 24:.0f}" '
           f'viewBox="-1 -1 {w + 2:.1f} {h + 24:.1f}" role="img" aria-label="Tile layout">',
           f'<rect x="0" y="0" width="{w:.1f}" height="{h:.1f}" fill="#f4f4f4" stroke="#999"/>']
    for i, j, s, m in zip(plan.rows, plan.cols, plan.split, plan.mine_pixels):
        colour = {("train", True): "#08519c", ("train", False): "#9ecae1", ("val", True): "#d94801",
                  ("val", False): "#fdae6b"}[(str(s), bool(m > 0))]
        out.append(f'<rect x="{j * cell:.1f}" y="{i * cell:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                   f'fill="{colour}" stroke="#fff" stroke-width="0.5"/>')
    bt = plan.block_tiles * cell
    for bi, bj in sorted(plan.val_blocks):
        out.append(f'<rect x="{bj * bt:.1f}" y="{bi * bt:.1f}" width="{bt:.1f}" height="{bt:.1f}" fill="none" '
                   f'stroke="#7f2704" stroke-width="2"/>')
    out.append(f'<text x="0" y="{h + 16:.1f}" font-size="11" font-family="sans-serif">blue: training, orange: '
               'held out (dark: with mines); framed: held-out blocks; grey: unused</text></svg>')
    return "".join(out)


def training_report(result, raster_size=None, raster_path=""):
    """The HTML training report: data, settings, IoU/F1 on held-out tiles, curves, layout, example tile."""
    from ..engine import report

    info, plan, m = result.info, result.plan, result.metrics
    p = info.training["parameters"]
    pi = plan.info
    seg = info.extra["segmentation"]
    size = f", {raster_size[0]} x {raster_size[1]} pixels" if raster_size else ""
    settings = [
        ("Raster", f"{os.path.basename(os.path.normpath(str(raster_path)))}{size}"),
        ("Input channels", f"{len(info.band_names)}: bands {', '.join(info.preprocessing['bands'])}"
                           + (f"; indices {', '.join(info.preprocessing['indices'])}"
                              if info.preprocessing["indices"] else "")),
        ("Tiles", f"{p['tile']} x {p['tile']} pixels; {pi['n_train_tiles']} training ({pi['n_train_mine_tiles']} with "
                  f"mines), {pi['n_val_tiles']} held out ({pi['n_val_mine_tiles']} with mines); "
                  f"{p['negatives_per_positive']:g} background tile(s) per mine tile"),
        ("Spatial hold-out", f"{pi['n_val_blocks']} of {pi['n_blocks']} blocks of {p['block_tiles']} x "
                             f"{p['block_tiles']} tiles held out ({pi['n_val_mine_blocks']} of "
                             f"{pi['n_mine_blocks']} blocks with mines); a tile lies in one block, so held-out and "
                             "training tiles share no pixel"),
        ("Network", f"U-Net, depth {p['depth']}, width {p['width']} (x2 per level)"),
        ("Training", f"{p['epochs']} epochs, batch {p['batch_size']}, Adam, learning rate {p['lr']:g} (cosine "
                     f"decay), weight decay {p['weight_decay']:g}; loss BCE + {p['dice_weight']:g} x soft Dice; "
                     "random flips and 90 degree rotations"),
        ("Threshold", f"{seg['threshold']:g}"),
        ("Seed", str(p["seed"])),
    ]
    sections = [("Data and settings", report.html_table(["Setting", "Value"], settings))]
    rows = [["Held-out tiles", m["val_iou"], m["val_f1"], m["val_precision"], m["val_recall"], m["val_mine_pixels"],
             m["val_pixels"]],
            ["Training tiles", m["train_iou"], m["train_f1"], m["train_precision"], m["train_recall"],
             m["train_mine_pixels"], m["train_pixels"]]]
    sections.append(("Accuracy (pixels)", report.html_table(
        ["Tiles", "IoU", "F1", "precision", "recall", "mine pixels", "valid pixels"], rows) + report.paragraph(
        "Pixel counts over the valid pixels of whole tiles, the model's output thresholded at "
        f"{seg['threshold']:g}. Held-out tiles hold every mine tile of the held-out blocks and a random share of "
        "their background tiles, so precision on a whole scene (mostly background) can be lower.", "note")))
    epochs = list(range(1, len(result.history["train_loss"]) + 1))
    curves = report.svg_line_chart(
        [("training loss", epochs, result.history["train_loss"], "#1f77b4"),
         ("held-out loss", epochs, result.history["val_loss"], "#ff7f0e")], "Loss", "epoch", "BCE + Dice")
    curves += report.svg_line_chart(
        [("held-out IoU", epochs, result.history["val_iou"], "#2ca02c"),
         ("held-out F1", epochs, result.history["val_f1"], "#d62728")], "Held-out accuracy", "epoch", "score")
    sections.append(("Learning curves", curves))
    sections.append(("Tile layout", _layout_svg(plan)))
    if result.example is not None:
        ex = result.example
        sections.append((f"Example {ex['split']} tile (grid row {ex['tile'][0]}, column {ex['tile'][1]})",
                         tile_figure(ex)))
    return report.html_report("Sentinel-2 mine segmentation: training report", sections,
                              subtitle=info.description + " - " + info.training["date"])
