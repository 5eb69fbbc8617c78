"""Pixels under vector features, and their values.

Training data and accuracy assessment both need "the pixels of this raster that a
point or polygon covers": a point takes the pixel that contains it, a polygon every
pixel whose centre lies inside it (or every pixel it touches). Geometries are
shapely objects already in the raster's CRS; the raster's affine transform may be
rotated. Only each feature's own bounding window is rasterised and read.
"""

import math
from dataclasses import dataclass

import numpy as np
from rasterio import features
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from .errors import OreMapError
from .feedback import ensure


def is_point(geom):
    return geom.geom_type in ("Point", "MultiPoint")


def point_coords(geom):
    return [(p.x, p.y) for p in (geom.geoms if geom.geom_type == "MultiPoint" else [geom])]


@dataclass
class CoveredPixels:
    """Pixels under features: one entry per (feature, pixel); a pixel under two features appears twice."""

    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    n_outside: int = 0  # points outside the raster

    def __len__(self):
        return self.rows.size


def pixels_under(geometries, transform, width, height, all_touched=False, skip=None, feedback=None):
    """Row, column and feature index of every pixel covered by ``geometries``.

    Parameters
    ----------
    geometries : sequence of shapely geometries (None and empty ones are skipped)
    transform : affine.Affine
    width, height : int
    all_touched : bool
        Polygons and lines take every pixel they touch instead of pixel centres.
    skip : array of bool, optional
        Features to leave out.
    """
    feedback = ensure(feedback)
    inverse = ~transform
    to_pixels = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
    rows, cols, index = [], [], []
    n_outside = 0
    for i, geom in enumerate(geometries):
        if i % 256 == 0:
            feedback.check()
            feedback.progress(100.0 * i / max(len(geometries), 1))
        if geom is None or geom.is_empty or (skip is not None and skip[i]):
            continue
        if is_point(geom):
            xy = np.asarray(point_coords(geom), dtype=float)
            c, r = inverse * (xy[:, 0], xy[:, 1])
            r, c = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            n_outside += int((~inside).sum())
            rows.append(r[inside])
            cols.append(c[inside])
            index.append(np.full(int(inside.sum()), i, dtype=np.int64))
            continue
        from shapely import affinity

        minx, miny, maxx, maxy = affinity.affine_transform(geom, to_pixels).bounds
        c0, r0 = max(int(math.floor(minx)), 0), max(int(math.floor(miny)), 0)
        c1, r1 = min(int(math.ceil(maxx)), width), min(int(math.ceil(maxy)), height)
        if c1 <= c0 or r1 <= r0:
            continue
        window = Window(c0, r0, c1 - c0, r1 - r0)
        inside = features.geometry_mask([geom], out_shape=(r1 - r0, c1 - c0),
                                        transform=window_transform(window, transform),
                                        all_touched=all_touched, invert=True)
        rr, cc = np.nonzero(inside)
        rows.append(rr + r0)
        cols.append(cc + c0)
        index.append(np.full(rr.size, i, dtype=np.int64))
    feedback.progress(100)
    if not rows:
        empty = np.zeros(0, np.int64)
        return CoveredPixels(empty, empty.copy(), empty.copy(), n_outside)
    return CoveredPixels(np.concatenate(rows), np.concatenate(cols), np.concatenate(index), n_outside)


def read_covered(read, pixels, max_window_pixels=1 << 20):
    """Values of covered pixels, reading each feature's bounding window once.

    ``read(window)`` returns ``(data (h, w, ...), valid (h, w))``: the block engine's
    :meth:`~core.engine.raster.RasterSource.read`, or a reader of a single-band class raster.
    Points of many features close together share one window when it stays small.

    Returns ``(values (n, ...), valid (n,))`` in the order of ``pixels``.
    """
    n = len(pixels)
    values, valid = None, np.zeros(n, bool)
    if n == 0:
        return values, valid
    order = np.lexsort((pixels.cols, pixels.rows, pixels.index))
    starts = np.flatnonzero(np.r_[True, np.diff(pixels.index[order]) != 0])
    bounds = list(starts) + [n]
    k = 0
    while k < len(starts):
        # one feature, or several consecutive small features whose joint window stays small
        j = k + 1
        sel = order[bounds[k]:bounds[j]]
        while j < len(starts):
            nxt = order[bounds[k]:bounds[j + 1]]
            area = (np.ptp(pixels.rows[nxt]) + 1) * (np.ptp(pixels.cols[nxt]) + 1)
            if area > max_window_pixels:
                break
            sel, j = nxt, j + 1
        r0, c0 = pixels.rows[sel].min(), pixels.cols[sel].min()
        window = Window(int(c0), int(r0), int(pixels.cols[sel].max() - c0 + 1), int(pixels.rows[sel].max() - r0 + 1))
        data, ok = read(window)
        if values is None:
            values = np.zeros((n,) + data.shape[2:], dtype=data.dtype)
        values[sel] = data[pixels.rows[sel] - r0, pixels.cols[sel] - c0]
        valid[sel] = ok[pixels.rows[sel] - r0, pixels.cols[sel] - c0]
        k = j
    return values, valid


def training_pixels(source, geometries, labels, parameter="training", feedback=None):
    """Spectra, labels and group ids (feature index) of the valid pixels under labelled features.

    ``source`` is a :class:`~core.engine.raster.RasterSource`. Raises :class:`OreMapError` when no
    feature covers a valid pixel.
    """
    pixels = pixels_under(geometries, source.transform, source.width, source.height, feedback=feedback)
    spectra, valid = read_covered(source.read, pixels)
    if not valid.any():
        raise OreMapError("No training feature covers a valid pixel of the raster.", parameter,
                          "Check that the features overlap the raster (same area, CRS) and lie on data.")
    labels = np.asarray(labels, dtype=object)
    return spectra[valid], labels[pixels.index[valid]], pixels.index[valid]
