"""Mineral prospectivity from geochemical grids: a ResNet on element windows.

After the Pangxidong study (7,234 stream-sediment samples, 16 elements): each
element is gridded (e.g. by IDW) into one band of a raster stack, a window of
``window x window`` cells around a known deposit is an example of "ore", random
windows away from every deposit are examples of "background", and a residual
network (ResNet) learns to tell them apart from the multi-element pattern. The
trained network then scores windows over the whole area: a coarse grid of cells
(12 x 12 in the study) or windows every ``stride`` cells.

The pipeline, identical at training and inference (the ONNX graph holds steps 2-4):

1. read a window of the element stack (bands in the model's element order);
   pixels where any element is nodata, and cells beyond the raster, are NaN;
2. z-score each element with the mean and standard deviation fitted on the
   training windows (stored in the model's metadata too);
3. NaN -> 0 (the mean), plus, optionally, a 0/1 channel saying which cells are valid;
4. the ResNet: one logit; the graph outputs ``(1 - p, p)`` for the classes
   ``background`` and ``deposit``.

Spatial leakage is the main trap with few deposits: neighbouring windows share
cells, and a jittered copy of a validation window is nearly the same window. So
the area is cut into square blocks, deposits and background centres go to folds
by block (a held-out block is validated whole), augmentation (jitter, random
crops, flips, 90 degree rotations) is done only inside each fold's own training
set, and a training window whose footprint (crop margin included) could share a
cell with any of the fold's validation windows is dropped
(:func:`plan_spatial_folds`). The buffer is drawn around the validation windows,
not around whole blocks: with deposits clustered in one block, a buffer around
the block would leave its fold nothing to train on.

``torch`` is needed for training only and is imported inside the functions that
use it; mapping needs onnxruntime (:class:`core.model_format.OnnxModel`).
"""

import copy
import datetime
import hashlib
import math
import os
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from . import compute
from .errors import OreMapError
from .feedback import ensure
from .model_format import ModelInfo, OnnxModel, write_model
from .prospectivity_eval import roc_auc
from .raster import (
    OutputSpec,
    RasterSource,
    band_descriptions,
    block_windows,
    check_output_path,
    memory_budget_mb,
    write_blocks,
)

#: Task name of the models made here.
TASK = "prospectivity"

#: Names of the ONNX graph's input and output.
INPUT_NAME = "windows"
OUTPUT_NAME = "probabilities"

#: ONNX opset of the exported graphs.
OPSET = 17

#: Output classes of the graph, in order.
CLASSES = [{"name": "background", "color": "#3b4cc0"}, {"name": "deposit", "color": "#b40426"}]

#: ResNet depths: block type and blocks per stage.
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}

#: Smallest and largest window (cells).
MIN_WINDOW, MAX_WINDOW = 8, 256

#: Windows up to this size get a 3x3 stride-1 stem without max-pooling; larger ones the classic 7x7/2 + pool.
SMALL_STEM_MAX = 64

#: Most cells :func:`prospectivity_map` lists (the best ranked) for the target-cell layer.
MAX_CELLS = 20000

MODES = ("grid", "sliding")
FITS = ("centre", "resize")

_NODATA_OUT = -9999.0


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

@compute.torch_classes("train neural networks")
def _torch_classes(torch, nn):
    """Torch and the module classes, built on first use (torch imported lazily)."""

    def shortcut(c_in, c_out, stride):
        if stride == 1 and c_in == c_out:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    class BasicBlock(nn.Module):
        """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

        expansion = 1

        def __init__(self, c_in, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: trains well on little data
            self.shortcut = shortcut(c_in, planes, stride)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class Bottleneck(nn.Module):
        """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with a shortcut."""

        expansion = 4

        def __init__(self, c_in, planes, stride):
            super().__init__()
            out = planes * 4
            self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            nn.init.zeros_(self.bn3.weight)
            self.shortcut = shortcut(c_in, out, stride)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            return torch.relu(self.bn3(self.conv3(y)) + self.shortcut(x))

    class ResNet(nn.Module):
        """Stem, four stages (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2), global average pooling, one logit."""

        def __init__(self, in_channels, depth, width, window):
            super().__init__()
            kind, counts = DEPTHS[depth]
            block = BasicBlock if kind == "basic" else Bottleneck
            if window <= SMALL_STEM_MAX:
                self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                          nn.BatchNorm2d(width), nn.ReLU())
            else:
                self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
                                          nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            layers, c_in = [], width
            for stage, n_blocks in enumerate(counts):
                planes = width * 2 ** stage
                for i in range(n_blocks):
                    layers.append(block(c_in, planes, 2 if (i == 0 and stage > 0) else 1))
                    c_in = planes * block.expansion
            self.stages = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(c_in, 1)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))

    class WindowModel(nn.Module):
        """Raw windows (NaN = nodata) -> z-score, NaN -> 0 (+ mask channel) -> ResNet -> (1 - p, p)."""

        def __init__(self, net, mean, sd, mask_channel):
            super().__init__()
            self.net = net
            self.mask_channel = bool(mask_channel)
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).reshape(1, -1, 1, 1))
            self.register_buffer("sd", torch.as_tensor(np.asarray(sd, np.float32)).reshape(1, -1, 1, 1))

        def logit(self, x):
            z = (x - self.mean) / self.sd
            valid = ~torch.isnan(z)
            z = torch.where(valid, z, torch.zeros_like(z))
            if self.mask_channel:
                z = torch.cat([z, valid.to(z.dtype).amin(dim=1, keepdim=True)], dim=1)
            return self.net(z)[:, 0]

        def forward(self, x):
            t = self.logit(x).unsqueeze(1)
            return torch.sigmoid(torch.cat([-t, t], dim=1))

    return dict(ResNet=ResNet, WindowModel=WindowModel)


def _check_window(window, parameter="window"):
    window = int(window)
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise OreMapError(f"The window must be {MIN_WINDOW}-{MAX_WINDOW} cells, not {window}.", parameter)
    return window


def build_resnet(in_channels, depth=18, width=16, window=64):
    """A ResNet (``torch.nn.Module``) mapping ``(n, in_channels, window, window)`` to ``(n, 1)`` logits.

    Parameters
    ----------
    in_channels : int
        Elements (plus 1 with a validity-mask channel).
    depth : {18, 34, 50}
        18 and 34 use basic blocks (2-2-2-2, 3-4-6-3), 50 bottleneck blocks (3-4-6-3, x4 expansion).
    width : int, default 16
        Channels of the stem and first stage; stages have width x (1, 2, 4, 8) (x4 for bottlenecks).
        The classic ImageNet ResNet has 64; 16 trains on a CPU in minutes.
    window : int, default 64
        Window size in cells, 8-256. Windows up to 64 get a 3x3 stride-1 stem with no max-pooling (a
        small geochemical window has no pixels to spare); larger ones the 7x7 stride-2 stem and a
        3x3 stride-2 max-pool. The last stage sees window / 8 (or / 32) cells, pooled globally.
    """
    if int(depth) not in DEPTHS:
        raise OreMapError(f"The ResNet depth must be 18, 34 or 50, not {depth}.", parameter="depth")
    if int(width) < 2 or int(in_channels) < 1:
        raise OreMapError("The network width must be at least 2 channels.", parameter="width")
    window = _check_window(window)
    return _torch_classes()["ResNet"](int(in_channels), int(depth), int(width), window)


def window_model(net, mean, sd, mask_channel=False):
    """The export module: raw windows -> z-score -> NaN to 0 (+ mask channel) -> ``net`` -> (1 - p, p)."""
    return _torch_classes()["WindowModel"](net, mean, sd, mask_channel)


def export_onnx(module, n_elements, window):
    """ONNX bytes (opset :data:`OPSET`, dynamic batch axis) of a :func:`window_model` module.

    Uses the TorchScript-based exporter (``dynamo=False``): the default exporter of recent torch
    needs the ``onnxscript`` package.
    """
    return compute.onnx_bytes(module, (1, n_elements, window, window), INPUT_NAME, OUTPUT_NAME, opset=OPSET)


def predict_torch(module, windows, batch_size=256):
    """Deposit probability of raw windows ``(n, C, w, w)`` through a torch :func:`window_model` (eval mode)."""
    return compute.torch_predict(module, windows, batch_size, empty_shape=(0, 2))[:, 1]


# ---------------------------------------------------------------------------
# The element stack
# ---------------------------------------------------------------------------


@dataclass
class ElementStack:
    """An element raster in memory: ``data`` is ``(C, H + 2 pad, W + 2 pad)`` float32, NaN where invalid.

    A cell is invalid (NaN in every band) where any element is nodata, NaN or infinite, as in the
    block engine; the ``pad`` cells around the raster are NaN too, so a window may reach past the edge.
    """

    data: np.ndarray
    pad: int
    names: list
    transform: object
    crs: object

    @property
    def n_elements(self):
        return self.data.shape[0]

    @property
    def height(self):
        return self.data.shape[1] - 2 * self.pad

    @property
    def width(self):
        return self.data.shape[2] - 2 * self.pad

    @property
    def core(self):
        """The raster itself, without the padding (a view)."""
        p = self.pad
        return self.data[:, p:p + self.height, p:p + self.width]

    @property
    def valid(self):
        return np.isfinite(self.core[0])

    def windows(self, rows, cols, size):
        """Raw windows ``(n, C, size, size)`` whose centre cells are ``(rows, cols)``.

        A window of centre ``(r, c)`` covers rows ``r - size // 2`` to ``r - size // 2 + size - 1``
        (same for columns); cells beyond the raster are NaN.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        cols = np.asarray(cols, dtype=np.int64).reshape(-1)
        half = size // 2
        r0 = rows - half + self.pad
        c0 = cols - half + self.pad
        if rows.size and (r0.min() < 0 or c0.min() < 0 or r0.max() + size > self.data.shape[1]
                          or c0.max() + size > self.data.shape[2]):
            raise ValueError("A window reaches beyond the stack's padding.")
        ar = np.arange(size)
        out = self.data[:, r0[:, None, None] + ar[None, :, None], c0[:, None, None] + ar[None, None, :]]
        return np.ascontiguousarray(np.moveaxis(out, 0, 1))


def element_bands(path, elements):
    """1-based band indexes of a raster holding ``elements``, matched to band descriptions (case-insensitive).

    Raises
    ------
    OreMapError
        ``parameter="raster"`` naming the elements no band is named after.
    """
    names = band_descriptions(path)
    keys = {}
    for i, name in enumerate(names, start=1):
        keys.setdefault(name.casefold(), i)
    missing = [e for e in elements if str(e).strip().casefold() not in keys]
    if missing:
        raise OreMapError(
            f"The raster has no band for the model's element(s) {', '.join(missing)} "
            f"(its bands: {', '.join(names)}).", "raster",
            "Choose an element stack whose band descriptions name every element the model was trained on "
            f"({', '.join(elements)}), e.g. made by the same gridding as the training stack.")
    return [keys[str(e).strip().casefold()] for e in elements]


def _source(path, bands=None, nodata=None):
    # scale=1: concentrations are used as they are (no reflectance guess for integer rasters).
    return RasterSource(path, bands=bands, nodata=nodata, scale=1)


def _read_nan(source, r0, r1, c0, c1):
    """Rows r0:r1, columns c0:c1 of a source as ``(C, rows, cols)`` float32, NaN where invalid or outside."""
    out = np.full((source.n_bands, r1 - r0, c1 - c0), np.nan, dtype=np.float32)
    rr0, rr1 = max(r0, 0), min(r1, source.height)
    cc0, cc1 = max(c0, 0), min(c1, source.width)
    if rr1 > rr0 and cc1 > cc0:
        data, valid = source.read(Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
        block = np.moveaxis(data, -1, 0)
        block[:, ~valid] = np.nan
        out[:, rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = block
    return out


def read_stack(path, pad=0, nodata=None, memory_mb=None, feedback=None):
    """Read a whole element raster into an :class:`ElementStack` (names from the band descriptions).

    Raises
    ------
    OreMapError
        ``parameter="raster"`` when bands share a name, or when the stack would need more memory than
        the memory budget (training holds the whole stack in memory).
    """
    feedback = ensure(feedback)
    names = band_descriptions(path)
    seen = {}
    for name in names:
        if name.casefold() in seen:
            raise OreMapError(f"Two bands are named '{name}'.", "raster",
                              "Give each band of the element stack a distinct element name (band description).")
        seen[name.casefold()] = True
    budget = memory_budget_mb(memory_mb)
    with _source(path, nodata=nodata) as source:
        h, w, c = source.height, source.width, source.n_bands
        need = c * (h + 2 * pad) * (w + 2 * pad) * 4 / 2**20
        if need > budget:
            raise OreMapError(
                f"The element stack ({c} bands of {w} x {h} cells) needs {need:.0f} MB in memory, more than "
                f"the memory budget of {budget:.0f} MB.", "raster",
                "Raise the memory budget (Processing > Options > Providers > OreMap) or grid the elements "
                "at a coarser cell size.")
        data = np.full((c, h + 2 * pad, w + 2 * pad), np.nan, dtype=np.float32)
        windows = block_windows(w, h, c * 16 + 1, max(budget - need, 16.0))
        for i, win in enumerate(windows):
            feedback.check()
            block, valid = source.read(win)
            block = np.moveaxis(block, -1, 0)
            block[:, ~valid] = np.nan
            r0, c0 = int(win.row_off) + pad, int(win.col_off) + pad
            data[:, r0:r0 + int(win.height), c0:c0 + int(win.width)] = block
            feedback.progress(100.0 * (i + 1) / len(windows))
        return ElementStack(data=data, pad=pad, names=names, transform=source.transform, crs=source.crs)


# ---------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------


def pixel_size(transform):
    """(column width, row height) of a cell in map units (rotation-safe)."""
    return math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)


def cell_centres(transform, rows, cols):
    """Map coordinates ``(n, 2)`` of the centres of cells ``(rows, cols)``."""
    rows = np.asarray(rows, dtype=np.float64) + 0.5
    cols = np.asarray(cols, dtype=np.float64) + 0.5
    x = transform.a * cols + transform.b * rows + transform.c
    y = transform.d * cols + transform.e * rows + transform.f
    return np.column_stack([x, y])


def deposit_cells(xy, transform, height, width):
    """Cell (row, col) of each point and whether it lies on the raster: ``rows, cols, inside``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    inverse = ~transform
    c, r = inverse * (xy[:, 0], xy[:, 1])
    r = np.floor(np.asarray(r)).astype(np.int64)
    c = np.floor(np.asarray(c)).astype(np.int64)
    inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    return r, c, inside


def nodata_fraction(valid, rows, cols, window):
    """Share of invalid cells (cells beyond the raster included) in the windows centred on ``(rows, cols)``."""
    h, w = valid.shape
    return _fraction(_invalid_integral(valid), h, w, rows, cols, window)


def _invalid_integral(valid):
    """Summed-area table ``(H + 1, W + 1)`` of the invalid cells."""
    h, w = valid.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(~valid, axis=0, dtype=np.int64), axis=1)
    return integral


def _fraction(integral, h, w, rows, cols, window):
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    r0 = rows - window // 2
    c0 = cols - window // 2
    a0, a1 = np.clip(r0, 0, h), np.clip(r0 + window, 0, h)
    b0, b1 = np.clip(c0, 0, w), np.clip(c0 + window, 0, w)
    inside = (a1 - a0) * (b1 - b0)
    bad = integral[a1, b1] - integral[a0, b1] - integral[a1, b0] + integral[a0, b0]
    return (bad + window * window - inside) / float(window * window)


def footprints_overlap(rows_a, cols_a, size_a, rows_b, cols_b, size_b):
    """Boolean matrix: does window ``i`` of set a (centre, size) share a cell with window ``j`` of set b?"""
    ra0 = np.asarray(rows_a, np.int64)[:, None] - size_a // 2
    ca0 = np.asarray(cols_a, np.int64)[:, None] - size_a // 2
    rb0 = np.asarray(rows_b, np.int64)[None, :] - size_b // 2
    cb0 = np.asarray(cols_b, np.int64)[None, :] - size_b // 2
    return (ra0 < rb0 + size_b) & (rb0 < ra0 + size_a) & (ca0 < cb0 + size_b) & (cb0 < ca0 + size_a)


# ---------------------------------------------------------------------------
# Window sampling and the spatial split
# ---------------------------------------------------------------------------


@dataclass
class WindowSpecs:
    """Windows to cut from the stack: centre cells, labels (1 deposit, 0 background) and where they come from.

    ``source`` is the index of the window's deposit in :attr:`FoldPlan.deposits` (label 1) or of its
    background centre in :attr:`FoldPlan.negatives` (label 0); augmented copies share their source.
    """

    rows: np.ndarray
    cols: np.ndarray
    labels: np.ndarray
    source: np.ndarray

    def __len__(self):
        return int(self.rows.size)

    @classmethod
    def empty(cls):
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), z.copy())

    @classmethod
    def concat(cls, parts):
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("rows", "cols", "labels", "source")))

    def subset(self, mask):
        return WindowSpecs(self.rows[mask], self.cols[mask], self.labels[mask], self.source[mask])

    @property
    def n_positive(self):
        return int((self.labels == 1).sum())

    @property
    def n_negative(self):
        return int((self.labels == 0).sum())


@dataclass
class FoldPlan:
    """Where every window of a spatial cross-validation comes from (see :func:`plan_spatial_folds`).

    Attributes
    ----------
    window, crop_pad : int
        Window size, and the random-crop margin: a training window may be shifted by up to
        ``crop_pad`` cells, so its footprint is ``window + 2 crop_pad`` wide.
    block_shape : (int, int)
        Block height and width in cells; block ``(i, j)`` covers rows ``i * bh ...`` and columns ``j * bw ...``.
    block_fold : ndarray of int (n_block_rows, n_block_cols)
        Fold of each block; -1 for blocks without valid cells.
    deposits, negatives : WindowSpecs
        The windows centred on each (unique, usable) deposit cell and each background centre.
    deposit_fold, negative_fold : ndarray of int
        Fold of each deposit and background centre (-1 without cross-validation).
    folds : list of dict
        Per fold: ``train`` (augmented) and ``val`` (centred) WindowSpecs, ``held_out`` (list of
        held-out block rectangles ``(r0, r1, c0, c1)``), ``buffered_deposits`` and
        ``buffered_negatives`` (deposits and background centres of the other folds left out of training:
        their window, crop margin included, would share a cell with a validation window of the fold).
    final : WindowSpecs
        All deposits (augmented) and background centres, for the final model.
    info : dict
        Counts and settings for the report.
    """

    window: int
    crop_pad: int
    block_shape: tuple
    block_fold: np.ndarray
    deposits: WindowSpecs
    negatives: WindowSpecs
    deposit_fold: np.ndarray
    negative_fold: np.ndarray
    folds: list
    final: WindowSpecs
    info: dict = field(default_factory=dict)

    @property
    def train_size(self):
        """Footprint of a training window, crop margin included."""
        return self.window + 2 * self.crop_pad


def _assign_blocks(counts_dep, counts_valid, n_folds, rng):
    """Fold of each block: deposit blocks balanced by deposits (greedy), the others by valid cells."""
    n_blocks = counts_dep.size
    fold = np.full(n_blocks, -1, dtype=np.int64)
    dep_per_fold = np.zeros(n_folds)
    cells_per_fold = np.zeros(n_folds)
    blocks_per_fold = np.zeros(n_folds)
    with_dep = np.flatnonzero(counts_dep > 0)
    with_dep = with_dep[rng.permutation(with_dep.size)]
    with_dep = with_dep[np.argsort(-counts_dep[with_dep], kind="stable")]
    for b in with_dep:
        f = int(np.lexsort((cells_per_fold, blocks_per_fold, dep_per_fold))[0])
        fold[b] = f
        dep_per_fold[f] += counts_dep[b]
        cells_per_fold[f] += counts_valid[b]
        blocks_per_fold[f] += 1
    others = np.flatnonzero((counts_dep == 0) & (counts_valid > 0))
    others = others[rng.permutation(others.size)]
    for b in others:
        f = int(np.lexsort((blocks_per_fold, cells_per_fold))[0])
        fold[b] = f
        cells_per_fold[f] += counts_valid[b]
        blocks_per_fold[f] += 1
    return fold


def _near_centres(rows, cols, reach, h, w):
    """Boolean (h, w) mask of the cells closer than ``reach`` cells (Chebyshev) to any of the centres.

    A window of side ``window + 2 crop_pad`` centred on cell ``(r, c)`` shares a cell with a window of side
    ``window`` centred on ``(vr, vc)`` exactly when ``|r - vr| < window + crop_pad`` and
    ``|c - vc| < window + crop_pad``: with ``reach = window + crop_pad`` the mask holds the training
    centres to refuse. Painted with a summed-area table: O(centres + cells).
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    return _boxes_mask(rows - reach + 1, rows + reach, cols - reach + 1, cols + reach, h, w)


def _boxes_mask(r0, r1, c0, c1, h, w):
    """Boolean (h, w) mask of the cells inside any box rows ``r0:r1``, columns ``c0:c1`` (clipped to the raster)."""
    r0, r1 = np.clip(r0, 0, h), np.clip(r1, 0, h)
    c0, c1 = np.clip(c0, 0, w), np.clip(c1, 0, w)
    diff = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.add.at(diff, (r0, c0), 1)
    np.add.at(diff, (r0, c1), -1)
    np.add.at(diff, (r1, c0), -1)
    np.add.at(diff, (r1, c1), 1)
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[:h, :w] > 0


def _jittered(deposits, copies, jitter, valid_fraction, h, w, max_nodata, rng, keep=None):
    """Each deposit window plus ``copies`` copies shifted by up to ``jitter`` cells (kept if usable)."""
    n = len(deposits)
    if n == 0:
        return WindowSpecs.empty()
    offsets = np.zeros((n, copies + 1, 2), dtype=np.int64)
    if copies and jitter:
        offsets[:, 1:] = rng.integers(-jitter, jitter + 1, size=(n, copies, 2))
    rows = np.clip(deposits.rows[:, None] + offsets[..., 0], 0, h - 1).ravel()
    cols = np.clip(deposits.cols[:, None] + offsets[..., 1], 0, w - 1).ravel()
    source = np.repeat(deposits.source, copies + 1)
    ok = valid_fraction(rows, cols) <= max_nodata
    if keep is not None:
        ok &= keep(rows, cols)
    return WindowSpecs(rows[ok], cols[ok], np.ones(int(ok.sum()), dtype=np.int64), source[ok])


def plan_spatial_folds(valid, deposits_xy, transform, window, n_folds=5, block_size=None, min_distance=None,
                       negatives_per_positive=10, jitter_copies=8, jitter=None, crop_pad=None, max_nodata=0.5,
                       seed=0, feedback=None):
    """Sample deposit and background windows and split them into spatial folds before any augmentation.

    1. Deposits: each point's cell (points off the raster, on invalid cells, or whose window holds more
       than ``max_nodata`` invalid cells are left out; points sharing a cell count once).
    2. Background centres: ``negatives_per_positive`` x deposits random valid cells (without
       replacement) at least ``min_distance`` map units from *every* given deposit (those off the raster
       included), whose windows hold at most ``max_nodata`` invalid cells.
    3. Blocks: the raster is cut into square blocks of ``block_size`` map units; blocks holding deposits
       are dealt to the folds so that deposits are balanced, then the other blocks so that area is.
    4. Per fold: its blocks are held out whole. Validation = the centred windows of every deposit and
       background centre in them; training = the other folds' deposits with ``jitter_copies`` copies
       shifted by up to ``jitter`` cells, and their background centres, leaving out every training window
       whose footprint (``window + 2 crop_pad`` cells: random crops shift it by up to ``crop_pad``) could
       share a cell with any of the fold's validation windows (centre closer than ``window + crop_pad``
       cells, Chebyshev, to a validation centre), and every shifted copy whose centre falls in a held-out
       block. A deposit or background centre whose own window is refused is left out with all its copies
       (``buffered_deposits``, ``buffered_negatives``). So no validation window, nor an augmented copy of
       it, nor any window overlapping it, is on the training side; the rest of the area, held-out blocks'
       cells outside the validation windows included, is free for training. (A buffer around whole
       blocks would leave the fold of a block holding most deposits without training deposits.)

    Parameters
    ----------
    valid : ndarray of bool (H, W)
    deposits_xy : array-like (n, 2)
        Deposit points in the raster's CRS.
    transform : affine.Affine
    window : int
    n_folds : int, default 5
        0 or 1: no cross-validation (only :attr:`FoldPlan.final`).
    block_size : float, optional
        Block side in map units; default ``max(2 window, longest side / 8)`` cells.
    min_distance : float, optional
        Map units; default one window (``window`` x the larger cell side).
    jitter : int, optional
        Default ``window // 4``, at most ``window // 2 - 1 - crop_pad`` (the deposit stays in its window).
    crop_pad : int, optional
        Default ``window // 8``.

    Raises
    ------
    OreMapError
        ``parameter="deposits"`` when no deposit is usable, or too few blocks hold deposits for
        cross-validation; ``parameter="window"`` for a window larger than the raster.
    """
    feedback = ensure(feedback)
    valid = np.asarray(valid, dtype=bool)
    h, w = valid.shape
    window = _check_window(window)
    if window > min(h, w):
        raise OreMapError(f"The window ({window} cells) is larger than the raster ({w} x {h} cells).", "window",
                          f"Choose a window of at most {min(h, w)} cells.")
    crop_pad = max(window // 8, 1) if crop_pad is None else max(int(crop_pad), 0)
    crop_pad = min(crop_pad, max(window // 2 - 2, 0))
    limit = max(window // 2 - 1 - crop_pad, 0)
    jitter = min(max(window // 4, 1) if jitter is None else max(int(jitter), 0), limit)
    rng = np.random.default_rng([int(seed), 11])
    px_w, px_h = pixel_size(transform)
    if min_distance is None or min_distance <= 0:
        min_distance = window * max(px_w, px_h)
    integral = _invalid_integral(valid)

    def fraction(rows, cols):
        return _fraction(integral, h, w, rows, cols, window)

    # 1. deposits
    xy = np.asarray(deposits_xy, dtype=np.float64).reshape(-1, 2)
    rows, cols, inside = deposit_cells(xy, transform, h, w)
    info = {"n_points": int(xy.shape[0]), "n_outside": int((~inside).sum())}
    if not inside.any():
        raise OreMapError(
            f"None of the {xy.shape[0]} deposit points lies on the raster.", "deposits",
            "Check that the deposit layer covers the element stack (points are transformed to the raster's CRS).")
    rows, cols = rows[inside], cols[inside]
    on_valid = valid[rows, cols]
    info["n_on_nodata"] = int((~on_valid).sum())
    rows, cols = rows[on_valid], cols[on_valid]
    good = fraction(rows, cols) <= max_nodata if rows.size else np.zeros(0, bool)
    info["n_mostly_nodata"] = int((~good).sum())
    rows, cols = rows[good], cols[good]
    cells = np.unique(rows * w + cols)
    info["n_shared_cells"] = int(rows.size - cells.size)
    if cells.size == 0:
        raise OreMapError("No deposit lies on valid cells of the raster with enough data around it.", "deposits",
                          "Check the deposits' positions and the stack's nodata.")
    dep_rows, dep_cols = cells // w, cells % w
    n_dep = int(cells.size)
    deposits = WindowSpecs(dep_rows, dep_cols, np.ones(n_dep, np.int64), np.arange(n_dep))
    info["n_deposits"] = n_dep

    # 2. background centres
    from scipy.spatial import cKDTree

    pool = np.flatnonzero(valid.ravel())
    pool = pool[fraction(pool // w, pool % w) <= max_nodata]
    if pool.size > 2_000_000:
        pool = np.sort(rng.choice(pool, 2_000_000, replace=False))
    dist, _ = cKDTree(xy).query(cell_centres(transform, pool // w, pool % w))
    pool = pool[dist >= min_distance]
    n_neg = int(round(negatives_per_positive * n_dep))
    if pool.size < n_neg:
        feedback.warning(f"Only {pool.size} background cells lie at least {min_distance:g} map units from every "
                         f"deposit; {n_neg} were asked for.")
        n_neg = int(pool.size)
    chosen = np.sort(rng.choice(pool, n_neg, replace=False)) if n_neg else np.zeros(0, np.int64)
    negatives = WindowSpecs(chosen // w, chosen % w, np.zeros(n_neg, np.int64), np.arange(n_neg))
    if n_neg == 0:
        raise OreMapError("No background window can be placed: every valid cell is within the minimum distance "
                          "of a deposit.", "min_distance", "Lower the minimum distance to deposits.")
    info.update(n_negatives=n_neg, min_distance=float(min_distance), jitter=int(jitter), crop_pad=int(crop_pad),
                jitter_copies=int(jitter_copies), max_nodata=float(max_nodata))

    # 3. blocks
    if block_size is None or block_size <= 0:
        side = max(2 * window, int(math.ceil(max(h, w) / 8)))
        bh = bw = side
        block_size = side * max(px_w, px_h)
    else:
        bh = max(1, int(round(block_size / px_h)))
        bw = max(1, int(round(block_size / px_w)))
    nbr, nbc = -(-h // bh), -(-w // bw)
    block_of = lambda r, c: (r // bh) * nbc + (c // bw)  # noqa: E731
    counts_dep = np.bincount(block_of(dep_rows, dep_cols), minlength=nbr * nbc)
    vr, vc = np.nonzero(valid)
    counts_valid = np.bincount(block_of(vr, vc), minlength=nbr * nbc)
    info.update(block_size=float(block_size), block_cells=[int(bh), int(bw)], n_blocks=int((counts_valid > 0).sum()),
                n_deposit_blocks=int((counts_dep > 0).sum()))
    n_folds = int(n_folds)
    if n_folds >= 2:
        blocks_with = int((counts_dep > 0).sum())
        if blocks_with < 2:
            raise OreMapError(
                f"All deposits lie in one block of {block_size:g} map units: spatial cross-validation needs "
                "deposits in at least 2 blocks.", "block_size",
                "Choose a smaller block size, or 0 folds to train without cross-validation.")
        if blocks_with < n_folds:
            feedback.warning(f"Only {blocks_with} blocks hold deposits: {blocks_with} folds instead of {n_folds}.")
            n_folds = blocks_with
        fold_of_block = _assign_blocks(counts_dep, counts_valid, n_folds, rng)
    else:
        n_folds = 0
        fold_of_block = np.where(counts_valid > 0, 0, -1)
    block_fold = fold_of_block.reshape(nbr, nbc)
    deposit_fold = fold_of_block[block_of(dep_rows, dep_cols)] if n_folds else np.full(n_dep, -1)
    negative_fold = fold_of_block[block_of(negatives.rows, negatives.cols)] if n_folds else np.full(n_neg, -1)
    info["n_folds"] = n_folds

    # 4. folds: the buffer is drawn around the validation windows, not around the held-out blocks
    reach = window + crop_pad
    folds = []
    for f in range(n_folds):
        held = [(int(i * bh), int(min((i + 1) * bh, h)), int(j * bw), int(min((j + 1) * bw, w)))
                for i, j in zip(*np.nonzero(block_fold == f))]
        val = WindowSpecs.concat([deposits.subset(deposit_fold == f), negatives.subset(negative_fold == f)])
        near = _near_centres(val.rows, val.cols, reach, h, w)
        in_held = block_fold == f

        def refused(r, c, near=near, in_held=in_held):
            return near[r, c] | in_held[r // bh, c // bw]

        train_dep = deposits.subset(deposit_fold != f)
        near_dep = refused(train_dep.rows, train_dep.cols)
        fold_rng = np.random.default_rng([int(seed), 100 + f])
        pos = _jittered(train_dep.subset(~near_dep), int(jitter_copies), jitter, fraction, h, w, max_nodata, fold_rng,
                        keep=lambda r, c, refused=refused: ~refused(r, c))
        train_neg = negatives.subset(negative_fold != f)
        near_neg = refused(train_neg.rows, train_neg.cols)
        folds.append({"train": WindowSpecs.concat([pos, train_neg.subset(~near_neg)]), "val": val, "held_out": held,
                      "buffered_deposits": int(near_dep.sum()), "buffered_negatives": int(near_neg.sum())})
    final_pos = _jittered(deposits, int(jitter_copies), jitter, fraction, h, w, max_nodata,
                          np.random.default_rng([int(seed), 99]))
    final = WindowSpecs.concat([final_pos, negatives])
    return FoldPlan(window=window, crop_pad=crop_pad, block_shape=(int(bh), int(bw)), block_fold=block_fold,
                    deposits=deposits, negatives=negatives, deposit_fold=deposit_fold, negative_fold=negative_fold,
                    folds=folds, final=final, info=info)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _augment(raw, window, crop_pad, flips, rng):
    """Random crops of ``(n, C, window + 2 crop_pad, ...)`` windows to ``window``, then flips and rot90s."""
    n = raw.shape[0]
    out = np.empty(raw.shape[:2] + (window, window), dtype=np.float32)
    offsets = rng.integers(0, 2 * crop_pad + 1, size=(n, 2)) if crop_pad else np.zeros((n, 2), np.int64)
    turns = rng.integers(0, 4, size=n) if flips else np.zeros(n, np.int64)
    mirror = rng.integers(0, 2, size=n) if flips else np.zeros(n, np.int64)
    for i in range(n):
        a, b = offsets[i]
        x = raw[i, :, a:a + window, b:b + window]
        if mirror[i]:
            x = x[:, :, ::-1]
        out[i] = np.rot90(x, int(turns[i]), axes=(1, 2))
    return out


def _fit_stats(stack, specs, size):
    """Per-element mean and sd over the valid cells covered by ``specs``' windows (each cell once)."""
    r0, c0 = specs.rows - size // 2, specs.cols - size // 2
    covered = _boxes_mask(r0, r0 + size, c0, c0 + size, stack.height, stack.width) & stack.valid
    if not covered.any():
        covered = stack.valid
    core = stack.core
    mean = np.array([core[b][covered].mean(dtype=np.float64) for b in range(stack.n_elements)])
    sd = np.array([core[b][covered].std(dtype=np.float64) for b in range(stack.n_elements)])
    sd = np.where(sd > 1e-12 * np.maximum(np.abs(mean), 1.0), sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32), int(covered.sum())


def _balanced_loss(torch, logits, target, w_pos, w_neg):
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weights = torch.where(target > 0.5, torch.full_like(target, w_pos), torch.full_like(target, w_neg))
    return (per * weights).sum() / weights.sum()


def _class_weights(labels):
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    return 0.5 / max(n_pos, 1), 0.5 / max(n_neg, 1)


def _evaluate(module, torch, stack, specs, window, batch_size):
    """Probabilities and class-balanced loss of centred windows (eval mode)."""
    if len(specs) == 0:
        return np.zeros(0, np.float32), float("nan")
    module.eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(specs), batch_size):
            raw = stack.windows(specs.rows[i:i + batch_size], specs.cols[i:i + batch_size], window)
            logits.append(module.logit(torch.from_numpy(raw)))
    logits = torch.cat(logits)
    target = torch.from_numpy(specs.labels.astype(np.float32))
    w_pos, w_neg = _class_weights(specs.labels)
    loss = float(_balanced_loss(torch, logits, target, w_pos, w_neg))
    return torch.sigmoid(logits).numpy().astype(np.float32), loss


def _train_one(stack, train, val, options, seed, feedback, label):
    """Train one network on ``train`` windows; returns the export module, history and the epoch kept."""
    tc = _torch_classes()
    torch = tc["torch"]
    window, crop_pad = options["window"], options["crop_pad"]
    mean, sd, n_cells = _fit_stats(stack, train, window)
    rng = np.random.default_rng([int(seed), 7])
    torch.manual_seed(int(seed))
    channels = stack.n_elements + (1 if options["mask_channel"] else 0)
    net = build_resnet(channels, options["depth"], options["width"], window)
    module = window_model(net, mean, sd, options["mask_channel"])
    optimiser = torch.optim.SGD(net.parameters(), lr=options["lr"], momentum=options["momentum"],
                                weight_decay=options["weight_decay"], nesterov=True)
    w_pos, w_neg = _class_weights(train.labels)
    epochs, batch_size, patience = options["epochs"], options["batch_size"], options["patience"]
    history = {"train_loss": [], "val_loss": []}
    best = (np.inf, -1, None)
    stale = 0
    n = len(train)
    for epoch in range(epochs):
        feedback.check()
        for group in optimiser.param_groups:  # cosine decay to 1 % of the initial rate
            group["lr"] = options["lr"] * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)))
        module.train()
        order = rng.permutation(n)
        total, seen = 0.0, 0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            if batch.size < 2:  # batch norm cannot train on one window
                continue
            raw = stack.windows(train.rows[batch], train.cols[batch], window + 2 * crop_pad)
            x = torch.from_numpy(_augment(raw, window, crop_pad, options["flips"], rng))
            y = torch.from_numpy(train.labels[batch].astype(np.float32))
            optimiser.zero_grad()
            loss = _balanced_loss(torch, module.logit(x), y, w_pos, w_neg)
            loss.backward()
            optimiser.step()
            total += loss.item() * batch.size
            seen += batch.size
        train_loss = total / max(seen, 1)
        _, val_loss = _evaluate(module, torch, stack, val, window, 256) if len(val) else (None, float("nan"))
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        if not np.isfinite(train_loss):
            raise OreMapError("Training diverged: the loss is not a number.", "learning_rate",
                              "Lower the learning rate (e.g. 0.01 or 0.001).")
        if patience and len(val):
            if val_loss < best[0]:
                best, stale = (val_loss, epoch, copy.deepcopy(module.state_dict())), 0
            else:
                stale += 1
        feedback.progress(100.0 * (epoch + 1) / epochs)
        if (epoch + 1) % 10 == 0 or epoch == 0 or epoch + 1 == epochs:
            line = f"{label}, epoch {epoch + 1}: training loss {train_loss:.4f}"
            feedback.info(line + (f", validation loss {val_loss:.4f}" if len(val) else ""))
        if patience and len(val) and stale >= patience:
            feedback.info(f"{label}: early stop after epoch {epoch + 1}, keeping epoch {best[1] + 1}.")
            break
    kept = len(history["train_loss"]) - 1
    if patience and len(val) and best[2] is not None:
        module.load_state_dict(best[2])
        kept = best[1]
    module.eval()
    return module, history, kept, n_cells


def _metrics(labels, proba):
    """AUC, accuracy, balanced accuracy, F1 (deposit class, threshold 0.5) and the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = (np.asarray(proba) >= 0.5).astype(np.int64)
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    tn, fp, fn, tp = cm.ravel()
    auc = roc_auc(proba, labels)
    n = labels.size
    recall_pos = tp / (tp + fn) if tp + fn else float("nan")
    recall_neg = tn / (tn + fp) if tn + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    return {"auc": auc, "accuracy": float((tp + tn) / n) if n else float("nan"),
            "balanced_accuracy": float(np.nanmean([recall_pos, recall_neg])) if n else float("nan"),
            "f1": float(f1), "confusion_matrix": cm.tolist(), "n_positive": int(tp + fn), "n_negative": int(tn + fp)}


@dataclass
class ProspectivityResult:
    """What :func:`train_prospectivity` returns.

    Attributes
    ----------
    onnx_bytes : bytes
        The graph without OreMap metadata (identical for the same data, options and seed).
    info : ModelInfo
    plan : FoldPlan
    folds : list of dict
        Per fold: ``history`` (``train_loss``, ``val_loss`` per epoch), ``metrics`` (:func:`_metrics`),
        ``labels`` and ``proba`` of its validation windows, ``n_train``, ``n_val``...
    cv : dict
        ``auc_mean``, ``auc_sd`` (sample sd over folds with both classes), ``auc_per_fold``, pooled
        ``accuracy``, ``balanced_accuracy``, ``f1``, ``confusion_matrix``, ``pooled_auc``.
    history : dict
        The final model's training loss per epoch.
    torch_model : torch.nn.Module
        The final export module (eval mode).
    """

    onnx_bytes: bytes
    info: ModelInfo
    plan: FoldPlan
    folds: list
    cv: dict
    history: dict
    torch_model: object = field(default=None, repr=False, compare=False)

    def save(self, path):
        """Write the OreMap model file (atomically); returns the path."""
        return write_model(self.onnx_bytes, self.info, path)


def train_prospectivity(raster_path, deposits_xy, model_path=None, report_path=None, window=64, depth=18,
                        width=16, epochs=30, batch_size=32, lr=0.01, momentum=0.9, weight_decay=1e-4, n_folds=5,
                        block_size=None, min_distance=None, negatives_per_positive=10, jitter_copies=8, jitter=None,
                        crop_pad=None, flips=True, mask_channel=False, max_nodata=0.5, patience=0, seed=0,
                        nodata=None, memory_mb=None, threads=None, description="", feedback=None):
    """Train a ResNet prospectivity model with spatial-block cross-validation, then a final model on all data.

    Parameters
    ----------
    raster_path : str
        Element stack: one band per element (band descriptions = element names), e.g. IDW grids of
        (log-)concentrations. Read whole into memory (within the memory budget).
    deposits_xy : array-like (n, 2)
        Known deposits in the raster's CRS.
    model_path, report_path : str, optional
        Where to write the ONNX model and the HTML report.
    window : int, default 64
        Window side in cells (8-256).
    depth, width : ResNet depth (18, 34, 50) and base width, see :func:`build_resnet`.
    epochs, batch_size : int
    lr, momentum, weight_decay : float
        SGD (Nesterov momentum) with a cosine learning-rate decay to 1 %.
    n_folds : int, default 5
        Spatial folds (0 = no cross-validation); block_size, min_distance, negatives_per_positive,
        jitter_copies, jitter, crop_pad, max_nodata: see :func:`plan_spatial_folds`.
    flips : bool, default True
        Random horizontal mirror and 90 degree rotations (the windows are square).
    mask_channel : bool, default False
        Give the network a 0/1 channel of valid cells (nodata is otherwise the mean, 0 after z-scoring).
    patience : int, default 0
        0: train every fold for ``epochs``. Otherwise stop a fold after ``patience`` epochs without a lower
        validation loss and keep its best epoch (its validation data then steer training, so the CV figures
        are optimistic); the final model trains for the median kept epoch count.
    seed : int
        Same data, options and seed give the same model, byte for byte.
    threads : int, optional
        Threads torch may use while training (restored afterwards); torch's default when None or 0.
        Small windows train fastest on 1 thread, and several threads on a busy machine can be many
        times slower than one.

    Returns
    -------
    ProspectivityResult
    """
    feedback = ensure(feedback)
    window = _check_window(window)
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2)):
        if int(value) < low:
            raise OreMapError(f"{name.replace('_', ' ').capitalize()} must be at least {low}.", name)
    if not lr > 0:
        raise OreMapError("The learning rate must be positive.", "learning_rate")
    if int(jitter_copies) < 0:
        raise OreMapError("The number of shifted copies must not be negative.", "jitter_copies")
    if not negatives_per_positive > 0:
        raise OreMapError("Give at least some background windows per deposit.", "negatives_per_positive")
    if not 0.0 <= float(max_nodata) < 1.0:
        raise OreMapError("The largest nodata share of a window must be in [0, 1).", "max_nodata")
    build_resnet(1, depth, width, window)  # checks depth and width before reading anything
    torch = _torch_classes()["torch"]
    crop = max(window // 8, 1) if crop_pad is None else max(int(crop_pad), 0)
    stack = read_stack(raster_path, pad=window + crop + 2, nodata=nodata, memory_mb=memory_mb)
    feedback.progress(2)
    plan = plan_spatial_folds(stack.valid, deposits_xy, stack.transform, window, n_folds, block_size, min_distance,
                              negatives_per_positive, jitter_copies, jitter, crop, max_nodata, seed, feedback)
    pinfo = plan.info
    if pinfo["n_outside"]:
        feedback.warning(f"{pinfo['n_outside']} of {pinfo['n_points']} deposit points lie off the raster and are "
                         "only used to keep background windows away from them.")
    for key, text in (("n_on_nodata", "lie on nodata cells"), ("n_mostly_nodata", "have windows that are mostly "
                                                                                  "nodata")):
        if pinfo[key]:
            feedback.warning(f"{pinfo[key]} deposit points {text} and are left out.")
    feedback.info(f"{pinfo['n_deposits']} deposit windows, {pinfo['n_negatives']} background windows, "
                  f"{pinfo['n_folds']} spatial folds over {pinfo['n_blocks']} blocks of {pinfo['block_cells'][0]} "
                  "cells.")
    options = {"window": window, "crop_pad": plan.crop_pad, "depth": int(depth), "width": int(width),
               "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "momentum": float(momentum),
               "weight_decay": float(weight_decay), "patience": int(patience or 0), "flips": bool(flips),
               "mask_channel": bool(mask_channel)}
    runs = len(plan.folds) + 1
    folds = []
    previous = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.use_deterministic_algorithms(True, warn_only=True)
        if threads:
            torch.set_num_threads(int(threads))
        try:
            for f, fold in enumerate(plan.folds):
                train, val = fold["train"], fold["val"]
                part = feedback.scaled(3 + 92 * f / runs, 3 + 92 * (f + 1) / runs)
                if train.n_positive == 0 or train.n_negative == 0 or val.n_positive == 0:
                    why = ("no validation deposit" if val.n_positive == 0 else
                           "no training deposit is left: the others lie within the buffer around its validation "
                           f"windows ({plan.window + plan.crop_pad} cells)" if train.n_positive == 0 else
                           "no training background window is left")
                    feedback.warning(f"Fold {f + 1} is skipped ({val.n_positive} deposits not validated): {why}.")
                    folds.append({"fold": f + 1, "skipped": True, "n_train": len(train), "n_val": len(val),
                                  "n_val_positive": val.n_positive,
                                  "history": {"train_loss": [], "val_loss": []},
                                  "metrics": _metrics(np.zeros(0, np.int64), np.zeros(0))})
                    continue
                module, history, kept, _ = _train_one(stack, train, val, options, seed + 1000 * (f + 1), part,
                                                      f"Fold {f + 1}")
                proba, _ = _evaluate(module, torch, stack, val, window, 256)
                metrics = _metrics(val.labels, proba)
                feedback.info(f"Fold {f + 1}: AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f}, "
                              f"F1 {metrics['f1']:.3f} on {val.n_positive} deposit and {val.n_negative} background "
                              "windows.")
                folds.append({"fold": f + 1, "skipped": False, "history": history, "epoch_kept": kept + 1,
                              "metrics": metrics, "labels": val.labels, "proba": proba,
                              "n_train_positive": train.n_positive, "n_train_negative": train.n_negative,
                              "n_val_positive": val.n_positive, "n_val_negative": val.n_negative,
                              "buffered_deposits": fold["buffered_deposits"],
                              "buffered_negatives": fold["buffered_negatives"], "n_train": len(train),
                              "n_val": len(val)})
            final_options = dict(options)
            kept_epochs = [fd["epoch_kept"] for fd in folds if not fd["skipped"]]
            if options["patience"] and kept_epochs:
                final_options["epochs"] = max(1, int(np.median(kept_epochs)))
            part = feedback.scaled(3 + 92 * (runs - 1) / runs, 95)
            module, history, _, n_cells = _train_one(stack, plan.final, WindowSpecs.empty(), final_options, seed,
                                                     part, "Final model")
            onnx_bytes = export_onnx(module, stack.n_elements, window)
        finally:
            torch.use_deterministic_algorithms(previous)
            torch.set_num_threads(previous_threads)
    cv = _cv_summary(folds)
    if np.isfinite(cv["auc_mean"]):
        feedback.info(f"Spatial cross-validation: AUC {cv['auc_mean']:.3f} +/- {cv['auc_sd']:.3f}, accuracy "
                      f"{cv['accuracy']:.3f}, F1 {cv['f1']:.3f}.")
    if plan.folds and cv["n_deposits_validated"] < plan.info["n_deposits"]:
        feedback.warning(
            f"Spatial cross-validation validated {cv['n_deposits_validated']} of {plan.info['n_deposits']} deposits "
            f"({cv['n_folds_scored']} of {len(plan.folds)} folds scored): its figures speak for those deposits only. "
            "When nearly all deposits lie within a window or so of a fold's validation windows, the buffer around "
            "them can leave no training deposit; try fewer folds or another block size.")
    info = _model_info(stack, plan, cv, folds, options, final_options, module, n_cells, max_nodata, seed, n_folds,
                       negatives_per_positive, description, raster_path)
    result = ProspectivityResult(onnx_bytes=onnx_bytes, info=info, plan=plan, folds=folds, cv=cv, history=history,
                                 torch_model=module)
    if model_path:
        result.save(model_path)
    if report_path:
        from . import report

        report.write_report(report_path, training_report(result, stack.height, stack.width, raster_path))
    feedback.progress(100)
    return result


def _cv_summary(folds):
    done = [f for f in folds if not f["skipped"]]
    aucs = np.array([f["metrics"]["auc"] for f in done], dtype=float)
    finite = aucs[np.isfinite(aucs)]
    out = {"auc_per_fold": [None if not np.isfinite(a) else float(a) for a in aucs],
           "auc_mean": float(finite.mean()) if finite.size else float("nan"),
           "auc_sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
           "n_folds_scored": int(finite.size),
           "n_deposits_validated": int(sum(f["n_val_positive"] for f in done))}
    if done:
        labels = np.concatenate([f["labels"] for f in done])
        proba = np.concatenate([f["proba"] for f in done])
        pooled = _metrics(labels, proba)
        out.update(accuracy=pooled["accuracy"], balanced_accuracy=pooled["balanced_accuracy"], f1=pooled["f1"],
                   confusion_matrix=pooled["confusion_matrix"], pooled_auc=pooled["auc"])
    else:
        out.update(accuracy=float("nan"), balanced_accuracy=float("nan"), f1=float("nan"),
                   confusion_matrix=[[0, 0], [0, 0]], pooled_auc=float("nan"))
    return out


def _stack_hash(stack, plan):
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(stack.core, dtype="<f4").tobytes())
    for values in (plan.deposits.rows, plan.deposits.cols, plan.negatives.rows, plan.negatives.cols):
        digest.update(np.ascontiguousarray(values, dtype="<i8").tobytes())
    return digest.hexdigest()


def _model_info(stack, plan, cv, folds, options, final_options, module, n_cells, max_nodata, seed, n_folds,
                negatives_per_positive, description, raster_path):
    mean = module.mean.numpy().reshape(-1)
    sd = module.sd.numpy().reshape(-1)
    px_w, px_h = pixel_size(stack.transform)
    metrics = {
        "cv_auc_mean": cv["auc_mean"], "cv_auc_sd": cv["auc_sd"], "cv_auc_per_fold": cv["auc_per_fold"],
        "cv_pooled_auc": cv["pooled_auc"], "cv_accuracy": cv["accuracy"],
        "cv_deposits_validated": cv["n_deposits_validated"],
        "cv_balanced_accuracy": cv["balanced_accuracy"], "cv_f1": cv["f1"],
        "cv_confusion_matrix": cv["confusion_matrix"], "n_deposits": plan.info["n_deposits"],
        "n_background_windows": plan.info["n_negatives"], "n_windows": len(plan.final),
        "n_positive_windows": plan.final.n_positive, "n_negative_windows": plan.final.n_negative,
        "n_folds": plan.info["n_folds"], "normalisation_cells": int(n_cells),
        "folds": [{"fold": f["fold"], "skipped": f["skipped"], "auc": f["metrics"]["auc"],
                   "accuracy": f["metrics"]["accuracy"], "f1": f["metrics"]["f1"], "n_train": f["n_train"],
                   "n_val": f["n_val"]} for f in folds],
    }
    parameters = {**{k: v for k, v in final_options.items()}, "cv_epochs": options["epochs"],
                  "n_folds_asked": int(n_folds), "block_size": plan.info["block_size"],
                  "block_cells": plan.info["block_cells"], "min_distance": plan.info["min_distance"],
                  "negatives_per_positive": float(negatives_per_positive),
                  "jitter_copies": plan.info["jitter_copies"], "jitter": plan.info["jitter"],
                  "max_nodata": float(max_nodata), "seed": int(seed),
                  "network": {"depth": options["depth"], "width": options["width"]}}
    info = ModelInfo(
        task=TASK,
        classes=[dict(c) for c in CLASSES],
        input={"name": INPUT_NAME, "n_bands": int(stack.n_elements), "window": int(plan.window)},
        output={"name": OUTPUT_NAME, "kind": "probabilities"},
        band_names=[str(n) for n in stack.names],
        preprocessing={"method": "zscore", "mean": [float(v) for v in mean], "sd": [float(v) for v in sd],
                       "nodata_fill": 0.0, "mask_channel": bool(options["mask_channel"]),
                       "max_nodata": float(max_nodata), "in_graph": True},
        training={
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "data_hash": _stack_hash(stack, plan), "n_samples": int(len(plan.deposits) + len(plan.negatives)),
            "metrics": metrics, "parameters": parameters,
            "source": os.path.basename(str(raster_path)),
        },
        description=str(description) or "OreMap geochemical prospectivity ResNet",
        extra={"spatial": {"window": int(plan.window), "cell_size": [float(px_w), float(px_h)],
                           "crs": stack.crs.to_wkt() if stack.crs else None,
                           "epsg": stack.crs.to_epsg() if stack.crs else None}},
    )
    return ModelInfo.from_json(info.to_json())


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _fold_map_svg(plan, height, width, size=480):
    """Blocks coloured by fold, deposits (black) and background centres (grey) as an SVG."""
    from .colors import PALETTE, hex_colour
    from .report import _esc, _n

    scale = size / max(height, width)
    W, H = width * scale, height * scale
    bh, bw = plan.block_shape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-plot" width="{_n(W + 20)}" '
           f'height="{_n(H + 20)}" viewBox="0 0 {_n(W + 20)} {_n(H + 20)}" role="img" '
           'aria-label="Spatial folds"><title>Spatial folds</title>']
    for (i, j), f in np.ndenumerate(plan.block_fold):
        colour = "#eeeeee" if f < 0 else hex_colour(PALETTE[int(f) % len(PALETTE)])
        x, y = 10 + j * bw * scale, 10 + i * bh * scale
        w_, h_ = min(bw, width - j * bw) * scale, min(bh, height - i * bh) * scale
        label = "no data" if f < 0 else f"fold {int(f) + 1}"
        out.append(f'<rect class="block" x="{_n(x)}" y="{_n(y)}" width="{_n(w_)}" height="{_n(h_)}" '
                   f'fill="{colour}" fill-opacity="0.45" stroke="#ffffff"><title>{_esc(label)}</title></rect>')
        if f >= 0 and min(w_, h_) >= 14:
            out.append(f'<text x="{_n(x + w_ / 2)}" y="{_n(y + h_ / 2 + 4)}" text-anchor="middle" font-size="11" '
                       f'fill="#333333" font-family="sans-serif">{int(f) + 1}</text>')
    for r, c in zip(plan.negatives.rows, plan.negatives.cols):
        out.append(f'<circle cx="{_n(10 + (c + 0.5) * scale)}" cy="{_n(10 + (r + 0.5) * scale)}" r="1.5" '
                   'fill="#777777"/>')
    for r, c in zip(plan.deposits.rows, plan.deposits.cols):
        out.append(f'<circle class="deposit" cx="{_n(10 + (c + 0.5) * scale)}" cy="{_n(10 + (r + 0.5) * scale)}" '
                   'r="3.5" fill="#000000" stroke="#ffffff"/>')
    out.append("</svg>")
    return "".join(out)


def training_report(result, height, width, raster_path=""):
    """The HTML report: data, settings, fold map, per-fold and pooled metrics, learning curves."""
    from . import report

    plan, cv, info = result.plan, result.cv, result.info
    p = info.training["parameters"]
    pi = plan.info
    settings = [
        ("Element stack", f"{os.path.basename(str(raster_path))}: {len(info.band_names)} elements "
                          f"({', '.join(info.band_names)}), {width} x {height} cells"),
        ("Deposits", f"{pi['n_deposits']} used of {pi['n_points']} points ({pi['n_outside']} off the raster, "
                     f"{pi['n_on_nodata']} on nodata, {pi['n_mostly_nodata']} with mostly-nodata windows, "
                     f"{pi['n_shared_cells']} sharing a cell)"),
        ("Background windows", f"{pi['n_negatives']}, at least {pi['min_distance']:g} map units from every deposit"),
        ("Window", f"{plan.window} x {plan.window} cells; random crops of +/- {plan.crop_pad} cells"
                   + (", flips and 90 degree rotations" if p["flips"] else "")),
        ("Positive augmentation", f"{pi['jitter_copies']} copies shifted by up to {pi['jitter']} cells"),
        ("Network", f"ResNet-{p['depth']}, width {p['width']}" + (", validity-mask channel" if p["mask_channel"]
                                                                   else "")),
        ("Optimiser", f"SGD, Nesterov momentum {p['momentum']:g}, learning rate {p['lr']:g} (cosine decay), "
                      f"weight decay {p['weight_decay']:g}, batch {p['batch_size']}, {p['cv_epochs']} epochs"
                      + (f" (early stopping, patience {p['patience']})" if p["patience"] else "")),
        ("Spatial folds", f"{pi['n_folds']} folds over {pi['n_blocks']} blocks of {pi['block_size']:g} map units "
                          f"({pi['block_cells'][0]} cells), each held out whole; training windows whose centre lies "
                          f"closer than {plan.window + plan.crop_pad} cells to a validation window's centre (so "
                          "that they could share a cell with it, crop margin included) are left out"),
        ("Seed", str(p["seed"])),
    ]
    sections = [("Data and settings", report.html_table(["Setting", "Value"], settings))]
    sections.append(("Spatial folds", _fold_map_svg(plan, height, width) + report.paragraph(
        "Blocks coloured and numbered by fold; black dots: deposits; grey dots: background window centres. Each fold's "
        "deposits and background windows are validated by a model trained without them, their augmented copies, "
        "or any window that overlaps them.", "note")))
    if plan.folds:
        rows = []
        for f in result.folds:
            m = f["metrics"]
            rows.append([f["fold"], f.get("n_train_positive"), f.get("n_train_negative"), f.get("n_val_positive"),
                         f.get("n_val_negative"), f.get("buffered_deposits"), m["auc"], m["accuracy"],
                         m["balanced_accuracy"], m["f1"]])
        rows.append(["mean +/- sd", None, None, None, None, None,
                     report.Raw(f"{cv['auc_mean']:.3f} &plusmn; {cv['auc_sd']:.3f}")
                     if np.isfinite(cv["auc_mean"]) else None, cv["accuracy"], cv["balanced_accuracy"], cv["f1"]])
        table = report.html_table(
            ["Fold", "training deposit windows", "training background", "validation deposits",
             "validation background", "deposits buffered out", "AUC", "accuracy", "balanced accuracy", "F1"], rows)
        aucs = [np.nan if a is None else a for a in cv["auc_per_fold"]]
        chart = report.svg_bar_chart([f"fold {f['fold']}" for f in result.folds if not f["skipped"]], [aucs],
                                     ["AUC"], "Validation AUC per spatial fold", "AUC", y_range=(0, 1))
        note = report.paragraph(
            f"AUC {cv['auc_mean']:.3f} +/- {cv['auc_sd']:.3f} (mean +/- sample sd over the {cv['n_folds_scored']} "
            f"scored folds, validating {cv['n_deposits_validated']} of {plan.info['n_deposits']} deposits); pooled "
            f"over all validation windows: AUC {cv['pooled_auc']:.3f}, accuracy {cv['accuracy']:.3f}, F1 "
            f"{cv['f1']:.3f} "
            "(deposit class, threshold 0.5). Accuracy counts every background window; with many more background "
            "than deposit windows, AUC and balanced accuracy say more.", "note")
        sections.append(("Spatial cross-validation", table + chart + note))
        sections.append(("Confusion matrix (all folds' validation windows)", report.svg_confusion_matrix(
            cv["confusion_matrix"], ["background", "deposit"], "Validation windows, threshold 0.5")))
        curves = []
        for f in result.folds:
            if f["skipped"]:
                continue
            epochs = list(range(1, len(f["history"]["train_loss"]) + 1))
            curves.append(report.svg_line_chart(
                [("training loss", epochs, f["history"]["train_loss"], "#1f77b4"),
                 ("validation loss", epochs, f["history"]["val_loss"], "#ff7f0e")],
                f"Fold {f['fold']}", "epoch", "class-balanced cross-entropy"))
        sections.append(("Learning curves", "".join(curves)))
    epochs = list(range(1, len(result.history["train_loss"]) + 1))
    sections.append(("Final model", report.svg_line_chart(
        [("training loss", epochs, result.history["train_loss"], "#1f77b4")], "Final model on all windows",
        "epoch", "class-balanced cross-entropy") + report.paragraph(
        f"Trained on {plan.final.n_positive} deposit windows (with augmented copies) and {plan.final.n_negative} "
        "background windows. Element means and standard deviations (z-score, stored in the model): "
        + ", ".join(f"{n} {m:.4g}/{s:.4g}" for n, m, s in zip(info.band_names, info.preprocessing["mean"],
                                                                 info.preprocessing["sd"])) + ".", "note")))
    return report.html_report("Geochemical prospectivity ResNet: training report", sections,
                              subtitle=info.description + " - " + info.training["date"])


# ---------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------


def _box_weights(n_src, n_out):
    """(n_out, n_src) area weights resampling ``n_src`` cells to ``n_out``: rows sum to 1."""
    edges = np.arange(n_out + 1) * (n_src / n_out)
    lo = np.maximum(edges[:-1, None], np.arange(n_src)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(n_src)[None, :] + 1)
    weights = np.clip(hi - lo, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resize_window(block, size):
    """Resample ``(C, h, w)`` (NaN = nodata) to ``(C, size, size)`` by area averaging over valid cells.

    Each output cell is the mean of the input cells it covers, weighted by the covered area; it is NaN
    where less than half of that area is valid. A cell block of 2 size x 2 size becomes 2 x 2 means.
    """
    c, h, w = block.shape
    ar, ac = _box_weights(h, size), _box_weights(w, size)
    valid = np.isfinite(block)
    values = np.where(valid, block, 0.0).astype(np.float64)
    num = np.einsum("ih,chw,jw->cij", ar, values, ac)
    den = np.einsum("ih,chw,jw->cij", ar, valid.astype(np.float64), ac)
    out = np.full((c, size, size), np.nan, dtype=np.float32)
    ok = den >= 0.5
    out[ok] = (num[ok] / den[ok]).astype(np.float32)
    out[:, ~ok.all(axis=0)] = np.nan  # a cell is valid in every element or in none, as on input
    return out


def cell_edges(height, width, mode="grid", grid=(12, 12), stride=None, window=64):
    """Row and column edges of the map cells: ``grid`` rows x cols of (nearly) equal size, or ``stride`` cells."""
    if mode == "grid":
        n_rows, n_cols = (int(grid[0]), int(grid[1])) if np.ndim(grid) else (int(grid), int(grid))
        if not (1 <= n_rows <= height and 1 <= n_cols <= width):
            raise OreMapError(f"A grid of {n_rows} x {n_cols} cells does not fit a raster of {width} x {height} "
                              "cells.", "grid", "Choose between 1 and the raster's size in rows and columns.")
        return (np.round(np.linspace(0, height, n_rows + 1)).astype(np.int64),
                np.round(np.linspace(0, width, n_cols + 1)).astype(np.int64))
    if mode == "sliding":
        stride = max(1, window // 2) if not stride else int(stride)
        if stride < 1:
            raise OreMapError("The stride must be at least 1 cell.", "stride")
        return (np.append(np.arange(0, height, stride), height).astype(np.int64),
                np.append(np.arange(0, width, stride), width).astype(np.int64))
    raise OreMapError(f"Unknown mode '{mode}' (use 'grid' or 'sliding').", "mode")


def window_starts(edges, window):
    """First row (or column) of the window centred on each cell: ``(start + end - window) // 2``."""
    edges = np.asarray(edges, dtype=np.int64)
    return (edges[:-1] + edges[1:] - window) // 2


def _check_model(model):
    info = model.info
    from .model_task import check_task

    check_task(info, TASK, getattr(model, "path", None))
    window = info.input.get("window")
    if not isinstance(window, int) or not info.band_names:
        raise OreMapError("The model does not say its window size and elements.", "model",
                          "Choose a model trained with 'Train a prospectivity ResNet'.")
    return window, list(info.band_names)


def prospectivity_map(raster_path, model_path, out_path, mode="grid", grid=(12, 12), stride=None, fit="centre",
                      deposits_xy=None, nodata=None, memory_mb=None, threads=None, max_cells=MAX_CELLS,
                      feedback=None):
    """Map the probability of a deposit with a prospectivity model, cell by cell, streamed under a memory budget.

    Modes
    -----
    ``grid``
        The raster is cut into ``grid = (rows, cols)`` cells of (nearly) equal size (edges at
        ``round(i * height / rows)``); each cell gets one probability, written to all its cells.
        ``fit`` says which window a cell is scored on:

        * ``"centre"`` (default): the model's window, at the raster's own resolution, centred on the
          cell (rows ``(r0 + r1 - w) // 2`` onwards). The model sees the scale it was trained on; a
          cell larger than the window is judged on its centre, a smaller one with some of its
          neighbours (beyond the raster: nodata). When the grid is ``window``-sized cells, as in the
          Pangxidong study, the window is the cell itself.
        * ``"resize"``: the whole cell area-averaged (:func:`resize_window`) to the window size. The
          model then sees the whole cell, but at another scale than in training (logged).
    ``sliding``
        A window centred on every ``stride`` x ``stride`` cell (default stride: half a window); its
        probability is assigned to that stride cell. Streamed by rows of cells, each read with a halo of
        half a window.

    Windows with more than the model's ``max_nodata`` share of invalid cells are not scored (nodata);
    output cells are nodata where the raster is (any element missing).

    Parameters
    ----------
    raster_path : str
        Element stack whose band descriptions name the model's elements (any order, extra bands ignored).
    model_path : str
        OreMap prospectivity model (.onnx).
    out_path : str
        Probability GeoTIFF (float32, nodata -9999), written atomically.
    deposits_xy : array-like (n, 2), optional
        Known deposits in the raster's CRS: each cell says how many it holds.
    memory_mb : float, optional
        Memory budget, see :func:`core.raster.memory_budget_mb`.
    threads : int, optional
        onnxruntime threads (all cores when None).
    max_cells : int, default :data:`MAX_CELLS`
        The cell list holds at most this many cells, the best ranked (a small stride makes millions).

    Returns
    -------
    dict
        ``cells``: list of dicts (``id``, ``row``, ``col``, pixel ``window`` (r0, r1, c0, c1),
        ``polygon`` (map coordinates of the 4 corners), ``bounds``, ``probability``, ``rank`` (1 =
        highest; ties by cell order) and, with deposits, ``n_deposits`` and ``has_deposit``), only for
        scored cells; ``probabilities`` (the cell grid, NaN where not scored), ``row_edges``,
        ``col_edges``, ``mode``, ``fit``, ``window``, ``n_scored``, ``n_unscored``.
    """
    feedback = ensure(feedback)
    if mode not in MODES:
        raise OreMapError(f"Unknown mode '{mode}' (use 'grid' or 'sliding').", "mode")
    if fit not in FITS:
        raise OreMapError(f"Unknown window fit '{fit}' (use 'centre' or 'resize').", "fit")
    check_output_path(out_path)
    model = OnnxModel(model_path, threads=threads)
    window, elements = _check_model(model)
    max_nodata = float(model.info.preprocessing.get("max_nodata", 0.5))
    bands = element_bands(raster_path, elements)
    budget = memory_budget_mb(memory_mb)
    with _source(raster_path, bands=bands, nodata=nodata) as source:
        height, width = source.height, source.width
        if window > max(height, width):
            raise OreMapError(f"The model's window ({window} cells) is larger than the raster ({width} x {height} "
                              "cells).", "raster", "Use a raster covering at least one window, or another model.")
        _check_grid_geometry(model.info, source, feedback)
        row_edges, col_edges = cell_edges(height, width, mode, grid, stride, window)
        if mode == "sliding":
            fit = "centre"
        _log_fit(feedback, mode, fit, row_edges, col_edges, window)
        proba = _score_cells(source, model, row_edges, col_edges, window, fit, max_nodata, budget,
                             feedback.scaled(0, 85))
        _write_cells(source, proba, row_edges, col_edges, out_path, model_path, mode, window, budget,
                     feedback.scaled(85, 100))
        cells = _cell_list(proba, row_edges, col_edges, source.transform, deposits_xy, height, width, max_cells,
                           feedback)
    feedback.progress(100)
    n_scored = int(np.isfinite(proba).sum())
    return {"cells": cells, "probabilities": proba, "row_edges": row_edges, "col_edges": col_edges, "mode": mode,
            "fit": fit, "window": window, "n_scored": n_scored, "n_unscored": int(proba.size - n_scored)}


def _check_grid_geometry(info, source, feedback):
    spatial = info.extra.get("spatial") or {}
    size = spatial.get("cell_size")
    if size:
        px_w, px_h = pixel_size(source.transform)
        if abs(px_w - size[0]) > 0.01 * size[0] or abs(px_h - size[1]) > 0.01 * size[1]:
            feedback.warning(f"The raster's cells ({px_w:g} x {px_h:g}) differ from the training stack's "
                             f"({size[0]:g} x {size[1]:g}): a window covers another ground area than in training.")
    epsg = spatial.get("epsg")
    if epsg and source.crs is not None and source.crs.to_epsg() not in (None, epsg):
        feedback.warning(f"The raster's CRS (EPSG:{source.crs.to_epsg()}) differs from the training stack's "
                         f"(EPSG:{epsg}).")


def _log_fit(feedback, mode, fit, row_edges, col_edges, window):
    h = int(np.max(np.diff(row_edges)))
    w = int(np.max(np.diff(col_edges)))
    if mode == "grid" and fit == "resize" and max(h, w) != window:
        ratio = max(h, w) / window
        feedback.warning(f"Grid cells of up to {w} x {h} cells are resampled to the model's {window}-cell window "
                         f"(x {1 / ratio:.2f}): the model sees the geochemistry at another scale than in training.")
    elif mode == "grid" and (h > window or w > window):
        feedback.info(f"Each grid cell (up to {w} x {h}) is scored by the {window} x {window} window at its centre.")
    elif mode == "grid" and (h < window or w < window):
        feedback.info(f"Each grid cell (up to {w} x {h}) is scored by the {window} x {window} window centred on it, "
                      "which includes parts of its neighbours.")


def _batch_windows(model, budget):
    params = model.info.training.get("parameters", {})
    width = int(params.get("width", 16) or 16)
    c, w = model.info.n_bands, int(model.info.input["window"])
    per_window = 4 * w * w * (c + 6 * width)
    return int(np.clip((budget * 2**20 / 4) // per_window, 1, 512))


def _score(model, windows, max_nodata, batch):
    """Deposit probability of raw windows, NaN for windows with too much nodata."""
    out = np.full(windows.shape[0], np.nan, dtype=np.float32)
    frac = np.isnan(windows[:, 0]).mean(axis=(1, 2))
    ok = np.flatnonzero(frac <= max_nodata)
    if ok.size:
        out[ok] = model.run(windows[ok], batch_size=batch)[:, 1]
    return out


def _score_cells(source, model, row_edges, col_edges, window, fit, max_nodata, budget, feedback):
    n_rows, n_cols = row_edges.size - 1, col_edges.size - 1
    width = source.width
    proba = np.full((n_rows, n_cols), np.nan, dtype=np.float32)
    batch = _batch_windows(model, budget)
    bytes_per_row = source.n_bands * (width + 2 * window) * 16
    rows_budget = max(int(budget * 2**20 * 0.5 // bytes_per_row), window + 1)
    rs = window_starts(row_edges, window)
    cs = window_starts(col_edges, window)
    ar = np.arange(window)
    chunk = int(max(1, (budget * 2**20 / 8) // (source.n_bands * window * window * 4 * 2)))  # windows cut at once
    i = 0
    while i < n_rows:
        feedback.check()
        if fit == "centre":
            j = i + 1  # rows of cells read together: as many as the budget allows
            while j < n_rows and (rs[j] + window - rs[i]) <= rows_budget:
                j += 1
            r0, r1 = int(rs[i]), int(rs[j - 1] + window)
            strip = _read_nan(source, r0, r1, -window, width + window)
            for k in range(i, j):
                sub = strip[:, rs[k] - r0:rs[k] - r0 + window, :]
                for m in range(0, n_cols, chunk):
                    idx = cs[m:m + chunk, None] + window + ar[None, :]
                    wins = np.ascontiguousarray(np.transpose(sub[:, :, idx], (2, 0, 1, 3)))
                    proba[k, m:m + chunk] = _score(model, wins, max_nodata, batch)
        else:
            j = i + 1
            a, b = int(row_edges[i]), int(row_edges[i + 1])
            step = max(1, rows_budget)
            num = np.zeros((n_cols, source.n_bands, window, window))
            den = np.zeros((n_cols, 1, window, window))
            ar_w = _box_weights(b - a, window)
            ac_w = [_box_weights(int(col_edges[m + 1] - col_edges[m]), window) for m in range(n_cols)]
            for s0 in range(a, b, step):
                s1 = min(b, s0 + step)
                strip = _read_nan(source, s0, s1, 0, width)
                valid = np.isfinite(strip[0])
                values = np.where(np.isfinite(strip), strip, 0.0)
                wr = ar_w[:, s0 - a:s1 - a]
                for m in range(n_cols):
                    c0, c1 = int(col_edges[m]), int(col_edges[m + 1])
                    num[m] += np.einsum("ih,chw,jw->cij", wr, values[:, :, c0:c1], ac_w[m])
                    den[m, 0] += wr @ valid[:, c0:c1].astype(np.float64) @ ac_w[m].T
            wins = np.where(den >= 0.5, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)
            proba[i] = _score(model, wins, max_nodata, batch)
        feedback.progress(100.0 * j / n_rows)
        i = j
    return proba


def _write_cells(source, proba, row_edges, col_edges, out_path, model_path, mode, window, budget, feedback):
    """Stream the cell probabilities into a tiled float32 GeoTIFF, nodata where the raster is; atomic."""
    spec = OutputSpec(out_path, ["P(deposit)"], dtype="float32", nodata=_NODATA_OUT,
                      tags={"OREMAP_MODEL": os.path.basename(str(model_path)), "OREMAP_MODE": mode,
                            "OREMAP_WINDOW": window, "OREMAP_CELLS": f"{row_edges.size - 1} x {col_edges.size - 1}"})
    width, height = source.width, source.height
    row_cell = np.searchsorted(row_edges, np.arange(height), side="right") - 1
    col_cell = np.searchsorted(col_edges, np.arange(width), side="right") - 1
    values = np.where(np.isfinite(proba), proba, np.float32(_NODATA_OUT)).astype(np.float32)
    windows = block_windows(width, height, source.n_bands * 16 + 16, budget)

    def blocks():
        for n, win in enumerate(windows):
            feedback.check()
            r0, c0 = int(win.row_off), int(win.col_off)
            _, valid = source.read(win)
            block = values[row_cell[r0:r0 + int(win.height)][:, None], col_cell[c0:c0 + int(win.width)][None, :]]
            yield win, np.where(valid, block, np.float32(_NODATA_OUT))[None]
            feedback.progress(100.0 * (n + 1) / len(windows))

    write_blocks(spec, width, height, source.transform, source.crs, blocks(), feedback)


def _cell_list(proba, row_edges, col_edges, transform, deposits_xy, height, width, max_cells=None, feedback=None):
    counts = None
    if deposits_xy is not None:
        r, c, inside = deposit_cells(deposits_xy, transform, height, width)
        ri = np.searchsorted(row_edges, r[inside], side="right") - 1
        ci = np.searchsorted(col_edges, c[inside], side="right") - 1
        counts = np.zeros(proba.shape, dtype=np.int64)
        np.add.at(counts, (ri, ci), 1)
    flat = proba.ravel()
    scored = np.flatnonzero(np.isfinite(flat))
    order = scored[np.argsort(-flat[scored], kind="stable")]
    rank = np.zeros(flat.size, dtype=np.int64)
    rank[order] = np.arange(1, order.size + 1)
    if max_cells and scored.size > max_cells:
        ensure(feedback).warning(f"{scored.size} cells were scored; the target-cell list holds the {max_cells} "
                                 "best ranked. Use a larger stride for a complete list.")
        scored = np.sort(order[:max_cells])
    cells = []
    n_cols = proba.shape[1]
    for k in scored:
        i, j = divmod(int(k), n_cols)
        r0, r1, c0, c1 = int(row_edges[i]), int(row_edges[i + 1]), int(col_edges[j]), int(col_edges[j + 1])
        corners = [transform * (c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1))]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        cell = {"id": int(k) + 1, "row": i, "col": j, "window": (r0, r1, c0, c1),
                "polygon": [(float(x), float(y)) for x, y in corners],
                "bounds": (min(xs), min(ys), max(xs), max(ys)), "probability": float(flat[k]), "rank": int(rank[k])}
        if counts is not None:
            cell["n_deposits"] = int(counts[i, j])
            cell["has_deposit"] = bool(counts[i, j] > 0)
        cells.append(cell)
    return cells
