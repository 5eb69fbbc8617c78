"""The element stack of the prospectivity ResNet: element grids (one band per element) read into
memory with a padding of invalid cells, so that a window may reach past the raster's edge.
"""

from dataclasses import dataclass

from rasterio.windows import Window
import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.raster import WHERE_BUDGET, RasterSource, band_descriptions, block_windows, memory_budget_mb


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
    return RasterSource(path, bands=bands, nodata=nodata, scale="metadata")


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
                f"Raise the memory budget {WHERE_BUDGET} or grid the elements "
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
