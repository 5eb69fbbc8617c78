"""Pixels under vector features, and their values.

Training data and accuracy assessment both need "the pixels of this raster that a
point or polygon covers": a point takes the pixel that contains it, a polygon every
pixel whose centre lies inside it (or every pixel it touches). Geometries are
shapely objects already in the raster's CRS; the raster's affine transform may be
rotated. Only each feature's own bounding window is rasterised and read.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from rasterio import features
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from . import affine_ops
from .errors import OreMapError
from .feedback import ensure


def is_point(geom):
    return geom.geom_type in ("Point", "MultiPoint")


def point_coords(geom):
    return [(p.x, p.y) for p in (geom.geoms if geom.geom_type == "MultiPoint" else [geom])]


@dataclass
class CoveredPixels:
    """Pixels under features: one entry per (feature, pixel); a pixel under two features appears twice
    (:func:`resolve_overlaps` settles such pixels for training)."""

    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    n_outside: int = 0  # points outside the raster

    def __len__(self):
        return self.rows.size


def _point_pixels(geom, inverse, width, height):
    """``(rows, cols, n_outside)`` of the points of a Point/MultiPoint: the pixel that contains each point (one entry
    per point, so two points in one pixel give it twice); ``inverse``: the raster's inverse transform."""
    xy = np.asarray(point_coords(geom), dtype=float)
    c, r = affine_ops.apply(inverse, xy[:, 0], xy[:, 1])
    r, c = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    return r[inside], c[inside], int((~inside).sum())


def _pixel_window(geom, to_pixels, width, height):
    """The window of the raster under a polygon's or line's bounding box (``to_pixels``: the inverse transform's
    coefficients for shapely), or None when it lies off the raster."""
    from shapely import affinity

    minx, miny, maxx, maxy = affinity.affine_transform(geom, to_pixels).bounds
    c0, r0 = max(int(math.floor(minx)), 0), max(int(math.floor(miny)), 0)
    c1, r1 = min(int(math.ceil(maxx)), width), min(int(math.ceil(maxy)), height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _covered_mask(geom, window, transform, all_touched):
    """True where ``geom`` covers a pixel of ``window`` (pixel centres inside, or every pixel touched)."""
    return features.geometry_mask([geom], out_shape=(int(window.height), int(window.width)),
                                  transform=window_transform(window, transform), all_touched=all_touched, invert=True)


TILE_MARGIN = 2
"""Pixels around a strip of a polygon's bounding window rasterised with it (:class:`CoveredStream`), so that the
strip's own edges are no edges for GDAL's rasteriser (all-touched pixels where a polygon's edge runs along them)."""


def _tile_mask(geom, tile, window, transform, all_touched):
    """:func:`_covered_mask` of ``tile``, a part of ``window``, rasterised with a margin of :data:`TILE_MARGIN`
    pixels inside ``window`` and cut back to ``tile``."""
    r0, c0 = max(int(tile.row_off) - TILE_MARGIN, int(window.row_off)), \
        max(int(tile.col_off) - TILE_MARGIN, int(window.col_off))
    r1 = min(int(tile.row_off + tile.height) + TILE_MARGIN, int(window.row_off + window.height))
    c1 = min(int(tile.col_off + tile.width) + TILE_MARGIN, int(window.col_off + window.width))
    mask = _covered_mask(geom, Window(c0, r0, c1 - c0, r1 - r0), transform, all_touched)
    r, c = int(tile.row_off) - r0, int(tile.col_off) - c0
    return mask[r:r + int(tile.height), c:c + int(tile.width)]


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
            r, c, outside = _point_pixels(geom, inverse, width, height)
            n_outside += outside
            rows.append(r)
            cols.append(c)
            index.append(np.full(r.size, i, dtype=np.int64))
            continue
        window = _pixel_window(geom, to_pixels, width, height)
        if window is None:
            continue
        r0, c0 = window.row_off, window.col_off
        inside = _covered_mask(geom, window, transform, all_touched)
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


class CoveredStream:
    """Pixels under features read window by window, for tallies that need no per-pixel arrays of the whole layer.

    :func:`pixels_under` with :func:`read_covered` hold row, column, feature index and value of every covered
    pixel at once (tens of bytes per pixel: gigabytes for a scene covered by polygons). This reads the same pixels
    (the same point and pixel-centre or all-touched rules) in windows of at most ``max_window_pixels`` pixels: a
    polygon's bounding window is cut into strips (tiles of a bounding window wider than ``max_window_pixels``)
    read one at a time, and consecutive small features share one window. A polygon or line is rasterised over
    its whole bounding window at once, as :func:`pixels_under` does, when that window holds at most
    ``max_mask_pixels`` (a mask of 1 byte per pixel, 2 while GDAL burns it), else strip by strip (with a margin
    of :data:`TILE_MARGIN` pixels): the same pixels, except ties, which GDAL settles in each strip's own
    coordinates: a pixel centre lying exactly on a polygon's edge (to the last bits of the coordinates) on a
    rotated raster, and a pixel a line or an all-touched polygon meets exactly at a corner. On a north-up raster
    the strips' coordinates are exact and pixel centres the same. Memory is bounded by the window and the mask,
    whatever the number of features and pixels; what grows with the layer is two counts per feature.

    After :meth:`blocks` has run: ``n_outside`` (points outside the raster), ``n_covered`` (covered pixels per
    feature, valid or not) and ``n_valid`` (valid ones), one entry per feature, pixels under two features
    counted for each.
    """

    def __init__(self, geometries, transform, width, height, all_touched=False, skip=None,
                 max_window_pixels=1 << 20, max_mask_pixels=None):
        self.geometries = geometries
        self.transform, self.width, self.height = transform, int(width), int(height)
        self.all_touched, self.skip = all_touched, skip
        self.max_window_pixels = max(1, int(max_window_pixels))
        self.max_mask_pixels = max(self.max_window_pixels, int(max_mask_pixels or 0))
        self.n_outside = 0
        self.n_covered = np.zeros(len(geometries), np.int64)
        self.n_valid = np.zeros(len(geometries), np.int64)
        self.largest_window = 0
        """Pixels of the largest window read (for checks of the memory bound)."""

    def _tiles(self, window):
        """``window`` cut into pieces of at most ``max_window_pixels``: full-width strips, or tiles when one row
        of it is wider."""
        limit = self.max_window_pixels
        r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        if h * w <= limit:
            return [window]
        cols = min(w, limit)
        rows = max(1, limit // cols)
        return [Window(c, r, min(cols, c0 + w - c), min(rows, r0 + h - r))
                for r in range(r0, r0 + h, rows) for c in range(c0, c0 + w, cols)]

    def _pieces(self, feedback):
        """``(feature, r0, c0, h, w, where)`` per piece of a feature, ``where`` a (h, w) mask (polygons and lines:
        cut to the rows and columns it covers) or ``(rows, cols)`` relative to (r0, c0) (points)."""
        inverse = ~self.transform
        to_pixels = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
        n = len(self.geometries)
        for i, geom in enumerate(self.geometries):
            if i % 256 == 0:
                feedback.check()
                feedback.progress(100.0 * i / max(n, 1))
            if geom is None or geom.is_empty or (self.skip is not None and self.skip[i]):
                continue
            if is_point(geom):
                rows, cols, outside = _point_pixels(geom, inverse, self.width, self.height)
                self.n_outside += outside
                if rows.size:
                    r0, c0 = int(rows.min()), int(cols.min())
                    h, w = int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1
                    if h * w <= self.max_window_pixels:
                        yield (i, r0, c0, h, w, (rows - r0, cols - c0))
                    else:   # points far apart: one by one
                        for r, c in zip(rows.tolist(), cols.tolist()):
                            yield (i, r, c, 1, 1, (np.zeros(1, np.int64), np.zeros(1, np.int64)))
                continue
            window = _pixel_window(geom, to_pixels, self.width, self.height)
            if window is None:
                continue
            whole = None
            if int(window.width) * int(window.height) <= self.max_mask_pixels:
                whole = _covered_mask(geom, window, self.transform, self.all_touched)
            for tile in self._tiles(window):
                if whole is None:
                    mask = _tile_mask(geom, tile, window, self.transform, self.all_touched)
                else:
                    r, c = int(tile.row_off - window.row_off), int(tile.col_off - window.col_off)
                    mask = whole[r:r + int(tile.height), c:c + int(tile.width)]
                rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                if rows.size == 0:
                    continue
                a, b, c, d = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
                part = mask[a:b, c:d] if whole is not None or (b - a, d - c) == mask.shape else mask[a:b, c:d].copy()
                del mask
                yield (i, int(tile.row_off) + a, int(tile.col_off) + c, b - a, d - c, part)
        feedback.progress(100)

    def blocks(self, read, feedback=None):
        """Yield ``(features, values, valid)`` per window read: the feature index (int64), the value (``(n, ...)``,
        as ``read`` gives it) and validity of each covered pixel of the window, a pixel under two features once
        for each. ``read(window)`` is as for :func:`read_covered`."""
        feedback = ensure(feedback)
        group, extent, area = [], None, 0
        for piece in self._pieces(feedback):
            _, r0, c0, h, w, _ = piece
            if group:
                joint = (min(extent[0], r0), min(extent[1], c0), max(extent[2], r0 + h), max(extent[3], c0 + w))
                if ((joint[2] - joint[0]) * (joint[3] - joint[1]) > self.max_window_pixels
                        or area + h * w > self.max_window_pixels):
                    feedback.check()
                    yield self._read(read, group, extent)
                    group, extent, area = [], None, 0
            if not group:
                extent = (r0, c0, r0 + h, c0 + w)
            else:
                extent = joint
            group.append(piece)
            area += h * w
        if group:
            yield self._read(read, group, extent)

    def _read(self, read, group, extent):
        top, left = extent[0], extent[1]
        window = Window(left, top, extent[3] - left, extent[2] - top)
        self.largest_window = max(self.largest_window, int(window.width) * int(window.height))
        data, ok = read(window)
        values, valid, index = [], [], []
        for i, r0, c0, h, w, where in group:
            r, c = r0 - top, c0 - left
            if isinstance(where, tuple):
                v, k = data[where[0] + r, where[1] + c], ok[where[0] + r, where[1] + c]
            else:
                v, k = data[r:r + h, c:c + w][where], ok[r:r + h, c:c + w][where]
            self.n_covered[i] += k.size
            self.n_valid[i] += int(np.count_nonzero(k))
            values.append(v)
            valid.append(k)
            index.append(np.full(k.size, i, dtype=np.int64))
        del data, ok
        if len(group) == 1:
            return index[0], values[0], valid[0]
        return np.concatenate(index), np.concatenate(values), np.concatenate(valid)


@dataclass
class Overlaps:
    """Pixels under more than one feature, as :func:`resolve_overlaps` settled them.

    A pixel under features of different labels (classes; for abundance ROIs every ROI is its own label) is
    ambiguous and left out; under several features of one label it is kept once, for the first of them.
    """

    n_ambiguous: int = 0
    """Pixels left out: under features of different labels."""
    n_repeated: int = 0
    """Pixels under several features of one label, kept once."""
    groups: dict = field(default_factory=dict)
    """``{(feature index, ...): pixels}``: the features sharing ambiguous pixels, most pixels first."""
    emptied: list = field(default_factory=list)
    """Features every one of whose pixels was ambiguous (nothing of them is left)."""

    def messages(self, names=None, noun="features", what="class", whats="classes", each_own=False, limit=10):
        """``(warnings, infos)``: log lines naming the features ``names[i]`` (``feature i`` without names).

        ``noun`` is the features' plural; ``what``/``whats`` the label's singular and plural. ``each_own``: every
        feature is its own label (abundance ROIs), so any shared pixel is "in more than one of the ``noun``".
        """
        def name(i):
            return str(names[i]) if names is not None else f"feature {i}"

        def listing(items, sep=", "):
            items = list(items)
            return sep.join(items[:limit]) + (f"{sep}{len(items) - limit} more" if len(items) > limit else "")

        def pixels(n):
            return f"{n} pixel{'s' if n != 1 else ''}"

        def together(features):
            named = [name(i) for i in features]
            return " and ".join(named) if len(named) < 3 else ", ".join(named[:-1]) + " and " + named[-1]

        warnings, infos = [], []
        if self.n_ambiguous:
            where = f"in more than one of the {noun}" if each_own else f"in {noun} of different {whats}"
            warnings.append(f"{pixels(self.n_ambiguous)} {'lie' if self.n_ambiguous != 1 else 'lies'} {where} and "
                            f"{'were' if self.n_ambiguous != 1 else 'was'} left out (their {what} is ambiguous): "
                            + listing((f"{together(features)} ({pixels(n)})" for features, n in self.groups.items()),
                                      sep="; ")
                            + f". Make the {noun} disjoint to keep them.")
        if self.emptied:
            n = len(self.emptied)
            warnings.append(f"{n} of the {noun} lost every pixel to overlaps and {'were' if n != 1 else 'was'} "
                            "left out: " + listing(name(i) for i in self.emptied) + ".")
        if self.n_repeated:
            infos.append(f"{pixels(self.n_repeated)} {'lie' if self.n_repeated != 1 else 'lies'} in several {noun} "
                         f"of the same {what}: each is used once.")
        return warnings, infos

    def log(self, feedback, names=None, **wording):
        """Give ``feedback`` the :meth:`messages` (warnings as warnings); returns the warnings."""
        warnings, infos = self.messages(names, **wording)
        for message in warnings:
            feedback.warning(message)
        for message in infos:
            feedback.info(message)
        return warnings


def resolve_overlaps(pixels, labels, width):
    """Which entries of ``pixels`` (:class:`CoveredPixels`) to keep, and an :class:`Overlaps`.

    ``labels`` holds one label per feature. A pixel under features of different labels is dropped
    everywhere; a pixel under several features of one label (or twice under one feature, e.g. two
    points of a MultiPoint) keeps only its entry of the lowest feature index.
    """
    n = len(pixels)
    keep = np.ones(n, bool)
    if n == 0:
        return keep, Overlaps()
    codes = {}
    feature_code = np.array([codes.setdefault(_label_key(v), len(codes)) for v in labels], dtype=np.int64)
    key = pixels.rows.astype(np.int64) * int(width) + pixels.cols.astype(np.int64)
    order = np.lexsort((pixels.index, key))
    k, f = key[order], pixels.index[order]
    lab = feature_code[f]
    first = np.r_[True, k[1:] != k[:-1]]
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    ambiguous = np.minimum.reduceat(lab, starts) != np.maximum.reduceat(lab, starts)
    shared = np.minimum.reduceat(f, starts) != np.maximum.reduceat(f, starts)
    drop = ambiguous[group] | ~first
    keep[order[drop]] = False
    out = Overlaps(n_ambiguous=int(ambiguous.sum()), n_repeated=int((shared & ~ambiguous).sum()))
    if out.n_ambiguous:
        entries = ambiguous[group]
        pairs = np.unique(np.column_stack([group[entries], f[entries]]), axis=0)
        cuts = np.flatnonzero(np.diff(pairs[:, 0])) + 1
        counts = {}
        for features in np.split(pairs[:, 1], cuts):
            features = tuple(int(i) for i in features)
            counts[features] = counts.get(features, 0) + 1
        out.groups = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        lost = np.bincount(f[entries], minlength=len(labels))
        total = np.bincount(f, minlength=len(labels))
        out.emptied = [int(i) for i in np.flatnonzero((total > 0) & (lost == total))]
    return keep, out


def _label_key(value):
    """Labels compare as text, as class names do (:func:`core.hyperspectral.training.image_training_set`)."""
    return str(value)


@dataclass
class LabelledPixels:
    """Valid pixels under labelled features (:func:`labelled_pixels`)."""

    values: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    """Feature index of each pixel."""
    overlaps: Overlaps
    covering: np.ndarray
    """Feature indexes that cover at least one valid pixel (before overlaps were resolved)."""
    small: list = field(default_factory=list)
    """Feature indexes of polygons and lines on the raster that cover no pixel centre at all
    (:func:`without_pixel_centre`)."""


def raster_footprint(transform, width, height):
    """The raster's area as a polygon (its four corners: rotated rasters too)."""
    from shapely.geometry import Polygon

    corners = ((0, 0), (width, 0), (width, height), (0, height))
    return Polygon([affine_ops.apply(transform, col, row) for col, row in corners])


def without_pixel_centre(geometries, covered, transform, width, height):
    """Indexes of the polygons and lines of ``geometries`` that lie on the raster but cover no pixel centre (smaller
    than a pixel, or along its edge); ``covered``: the feature indexes that cover one."""
    has = np.zeros(len(geometries), bool)
    has[np.asarray(covered, dtype=np.int64)] = True
    footprint = raster_footprint(transform, width, height)
    return [i for i, g in enumerate(geometries)
            if g is not None and not g.is_empty and not is_point(g) and not has[i] and g.intersects(footprint)]


def labelled_pixels(source, geometries, labels, parameter="training", feedback=None):
    """Values, labels and group ids (feature index) of the valid pixels under labelled features.

    ``source`` is a :class:`~core.engine.raster.RasterSource`. A valid pixel under features of different labels
    is left out, one under several features of the same label is kept once (:func:`resolve_overlaps`); the
    result's ``overlaps`` says which (:meth:`Overlaps.messages` for the log). The pixels come in raster order
    (:func:`raster_order`; since 0.2.17, before in the features' order). Raises :class:`OreMapError` when
    no feature covers a valid pixel, or when overlaps leave none.
    """
    pixels = pixels_under(geometries, source.transform, source.width, source.height, feedback=feedback)
    values, valid = read_covered(source.read, pixels)
    # any pixel centre, valid or not: a polygon over nodata is not 'smaller than a pixel'
    small = without_pixel_centre(geometries, pixels.index, source.transform, source.width, source.height)
    if not valid.any():
        given = sum(1 for g in geometries if g is not None and not g.is_empty)
        if small and len(small) == given:
            raise OreMapError(f"No training pixel: the {given} training polygons lie on the raster but cover no pixel "
                              "centre (they are smaller than a pixel).", parameter,
                              "Use points (Vector > Geometry Tools > Centroids) or polygons larger than the raster's "
                              "pixels.")
        raise OreMapError("No training feature covers a valid pixel of the raster.", parameter,
                          "Check that the features overlap the raster (same area, CRS) and lie on data.")
    pixels = CoveredPixels(pixels.rows[valid], pixels.cols[valid], pixels.index[valid], pixels.n_outside)
    values = values[valid]
    keep, overlaps = resolve_overlaps(pixels, labels, source.width)
    if not keep.any():
        raise OreMapError("Every valid pixel under the training features lies in more than one of them, with "
                          "different labels.", parameter, "Make the features disjoint.")
    labels = np.asarray(labels, dtype=object)
    keep = raster_order(pixels, keep)
    return LabelledPixels(values[keep], labels[pixels.index[keep]], pixels.index[keep], overlaps,
                          np.unique(pixels.index), small)


def raster_order(pixels, keep):
    """The entries of ``pixels`` (:class:`CoveredPixels`) that ``keep`` marks, as indexes in raster order (row, then
    column). After :func:`resolve_overlaps` each pixel is kept once, so the order is that of the raster alone, not of
    the features: training draws its folds, splits and batches in the order of its samples, and ROIs or training
    features listed in another order gave another model."""
    kept = np.flatnonzero(keep)
    return kept[np.lexsort((pixels.cols[kept], pixels.rows[kept]))]


def training_pixels(source, geometries, labels, parameter="training", feedback=None, names=None):
    """Spectra, labels (classes) and group ids (feature index) of the valid pixels under labelled features.

    ``source`` is a :class:`~core.engine.raster.RasterSource`. A pixel under features of different classes is
    left out and one under several features of the same class used once (:func:`labelled_pixels`); ``feedback``
    gets a log line saying so, naming the features ``names[i]`` (feature indexes without). The pixels come in
    raster order (:func:`labelled_pixels`). Raises :class:`OreMapError` when no feature covers a valid pixel.
    """
    out = labelled_pixels(source, geometries, labels, parameter=parameter, feedback=feedback)
    if feedback is not None:
        out.overlaps.log(feedback, names)
        given = [i for i, g in enumerate(geometries) if g is not None and not g.is_empty]
        missed = sorted(set(given) - set(int(i) for i in out.covering))
        small = set(out.small)

        def shown(indexes):
            text = [str(names[i]) if names is not None else str(i) for i in indexes[:10]]
            return ", ".join(text) + (", ..." if len(indexes) > 10 else "")

        tiny = [i for i in missed if i in small]
        away = [i for i in missed if i not in small]
        if tiny:   # the others trained: say how many features gave nothing, and the likely cause
            feedback.warning(f"{len(tiny)} of {len(given)} training features lie on the raster but cover no pixel "
                             f"centre (smaller than a pixel) and are left out ({shown(tiny)}): use points or larger "
                             "polygons for them.")
        if away:
            feedback.warning(f"{len(away)} of {len(given)} training features cover no valid pixel of the raster "
                             f"and are left out ({shown(away)}): they lie outside it or on nodata. Check the "
                             "layer's CRS and extent if they should be on it.")
    return out.values, out.labels, out.groups
