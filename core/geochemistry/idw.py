"""Inverse-distance-weighted gridding of point samples (Shepard 1968), streamed to a GeoTIFF.

The value of a cell is the weighted mean of the ``k`` samples nearest to the cell
centre, with weights ``1 / d**power``:

* values are computed at pixel centres: cell ``(row, col)`` of a grid with top-left
  corner ``(xmin, ymax)`` is evaluated at ``(xmin + (col + 0.5) c, ymax - (row + 0.5) c)``;
* ``radius``: samples farther than that from the cell centre are ignored; a cell with
  fewer than ``min_points`` samples left is nodata;
* ``max_distance``: a cell farther than that from its nearest sample is nodata
  (no extrapolation far from the data); ``"auto"`` (the default of grids):
  :data:`AUTO_DISTANCE_FACTOR` times the sample spacing (:func:`sample_spacing`);
* a cell centre on a sample (closer than ``HIT_TOLERANCE`` cell) takes the sample's
  value (the mean of the samples there), whatever ``min_points``;
* missing values (NaN) are per element: each band uses only the samples that have a
  value for its element, with one search tree per distinct pattern of missing values;
* samples tied at the k-th distance: which of them is used is unspecified (as in gdal_grid).

This is the ``invdistnn`` method of ``gdal_grid`` (power, ``max_points`` = ``k``,
``radius``, ``min_points``, smoothing 0), with the neighbours found by
:class:`scipy.spatial.cKDTree` in parallel threads, whole tiles of cells at once where
they provably share their neighbours (:func:`_idw_grid`). The grid is computed and
written in row blocks sized from the memory budget, the next block computed while the
previous one is written.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from rasterio.transform import from_origin
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.raster import OutputSpec, block_windows, check_output_path, memory_budget_mb, write_blocks

HIT_TOLERANCE = 1e-6
"""A cell centre closer than this (in cells) to a sample takes the sample's value."""

DEFAULT_MARGIN = 0.05
"""Default margin around the points: this share of the larger side of their bounds."""

MAX_CELLS = 2 ** 31
NODATA = -9999.0


# --------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------
def grid_geometry(x, y, cell_size, extent=None, margin=None):
    """The output grid: ``dict(xmin, ymin, xmax, ymax, width, height, cell_size, transform)``.

    Without ``extent``: the points' bounds grown by ``margin`` (CRS units; default 5 %
    of the larger side, at least one cell when all points coincide), edges snapped
    outwards to multiples of the cell size, so grids of the same cell size align.
    With ``extent = (xmin, ymin, xmax, ymax)``: its top-left corner is kept and the
    right and bottom edges move out to a whole number of cells.
    """
    try:
        cell_size = float(cell_size)
    except (TypeError, ValueError):
        cell_size = float("nan")
    if not np.isfinite(cell_size) or cell_size <= 0:
        raise OreMapError(f"The cell size must be positive, got {cell_size:g}.", "cell_size",
                          "Give the pixel size in the units of the CRS (metres for UTM).")
    if extent is not None:
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        if not (np.isfinite([xmin, ymin, xmax, ymax]).all() and xmax > xmin and ymax > ymin):
            raise OreMapError(f"Invalid extent {extent}.", "extent", "Give xmin < xmax and ymin < ymax.")
        width = max(1, int(np.ceil((xmax - xmin) / cell_size - 1e-9)))
        height = max(1, int(np.ceil((ymax - ymin) / cell_size - 1e-9)))
    else:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.size == 0:
            raise OreMapError("No points to grid.", "points")
        lo_x, hi_x, lo_y, hi_y = x.min(), x.max(), y.min(), y.max()
        if margin is None:
            margin = DEFAULT_MARGIN * max(hi_x - lo_x, hi_y - lo_y)
        margin = float(margin)
        if margin < 0:
            raise OreMapError("The margin cannot be negative.", "extent")
        xmin = np.floor((lo_x - margin) / cell_size) * cell_size
        ymin = np.floor((lo_y - margin) / cell_size) * cell_size
        width = max(1, int(np.ceil((hi_x + margin - xmin) / cell_size - 1e-9)))
        height = max(1, int(np.ceil((hi_y + margin - ymin) / cell_size - 1e-9)))
        if hi_x + margin >= xmin + width * cell_size:  # a point on the snapped right edge
            width += 1
        if hi_y + margin >= ymin + height * cell_size:
            height += 1
        ymax = ymin + height * cell_size
    if width * height > MAX_CELLS:
        raise OreMapError(f"The grid would be {width} x {height} cells.", "cell_size",
                          "Choose a larger cell size or a smaller extent.")
    xmax, ymin = xmin + width * cell_size, ymax - height * cell_size
    return dict(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, width=width, height=height, cell_size=cell_size,
                transform=from_origin(xmin, ymax, cell_size, cell_size))


AUTO_DISTANCE_FACTOR = 5.0
#: ``max_distance`` value: :data:`AUTO_DISTANCE_FACTOR` times the sample spacing
AUTO = "auto"
"""oremap:idw_interpolate's default maximum distance to the nearest sample, in sample spacings
(:func:`sample_spacing`)."""


def sample_spacing(x, y):
    """The typical distance between neighbouring sample locations: the median distance from each distinct location
    to its nearest other one, or half the median distance to its second nearest when that is larger (a survey whose
    sites were mostly sampled twice a few metres apart would otherwise get the pairs' spacing); NaN with fewer than
    two locations."""
    xy = np.unique(np.column_stack([np.asarray(x, float), np.asarray(y, float)]), axis=0)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 2:
        return float("nan")
    d = cKDTree(xy).query(xy, k=min(3, len(xy)))[0]
    second = float(np.median(d[:, 2])) / 2.0 if d.shape[1] > 2 else 0.0
    return max(float(np.median(d[:, 1])), second)


def auto_max_distance(x, y, feedback=None):
    """The default largest distance from a cell to its nearest sample: :data:`AUTO_DISTANCE_FACTOR` times the
    sample spacing (:func:`sample_spacing`) of the located samples ``x``, ``y``; ``feedback`` is told why."""
    spacing = sample_spacing(x, y)
    max_distance = AUTO_DISTANCE_FACTOR * spacing
    ensure(feedback).info(
        f"Cells farther than {max_distance:.0f} m from every sample are nodata: {AUTO_DISTANCE_FACTOR:g} times the "
        f"sample spacing of {spacing:.0f} m, the median distance between neighbouring sample locations (set "
        "MAX_DISTANCE to choose another; 0 = no limit).")
    return max_distance


def suggest_cell_size(x, y):
    """A round cell size near a quarter of the sample spacing (:func:`sample_spacing`; 1, 2 or 5 x a power of
    ten, the nearest by ratio: 35 m gives 50, not 20), or None with fewer than two locations."""
    spacing = sample_spacing(x, y) / 4.0
    if not spacing > 0:
        return None
    power = 10.0 ** np.floor(np.log10(spacing))
    return float(min((1, 2, 5, 10), key=lambda m: abs(np.log(m * power / spacing))) * power)


def cell_centres(grid, window):
    """x of the window's columns and y of its rows (pixel centres)."""
    c = grid["cell_size"]
    cols = np.arange(window.col_off, window.col_off + window.width)
    rows = np.arange(window.row_off, window.row_off + window.height)
    return grid["xmin"] + (cols + 0.5) * c, grid["ymax"] - (rows + 0.5) * c


# --------------------------------------------------------------------------------------
# Interpolation
# --------------------------------------------------------------------------------------
class _Group:
    """Samples with values for a set of bands (one missing-value pattern) and their tree."""

    def __init__(self, xy, values, bands):
        self.bands = bands
        self.values = np.ascontiguousarray(values)  # (n, len(bands))
        self.n = len(values)
        self.tree = cKDTree(xy, balanced_tree=True, compact_nodes=True) if self.n else None


def _neighbours(group, q, k, radius):
    """The k nearest samples of each point q (n, 2) within the radius: distances, indexes, found mask."""
    k = min(k, group.n)
    bound = np.inf if radius is None else radius * (1.0 + 1e-9)
    d, i = group.tree.query(q, k=k, distance_upper_bound=bound, workers=1)
    if k == 1:
        d, i = d[:, None], i[:, None]
    found = i < group.n
    if radius is not None:
        found &= d <= radius
    return d, np.where(found, i, 0), found


def _weighted(group, d, i, found, power, max_distance, min_points, tol):
    """IDW from neighbour arrays (n, k) - distances, sample indexes, found mask - in any order.

    Returns (n, len(bands)) float64, NaN where nodata. ``d`` is overwritten.
    """
    count = found.sum(axis=1)
    nearest = np.where(found, d, np.inf).min(axis=1)
    hit = nearest <= tol
    hit_weights = (found[hit] & (d[hit] <= tol)).astype(np.float64) if hit.any() else None
    with np.errstate(divide="ignore", over="ignore"):
        if power == 2.0:
            np.multiply(d, d, out=d)
            w = np.divide(1.0, d, out=d)
        elif power == 0.0:
            w = np.ones_like(d)
        else:
            w = np.power(d, -power, out=d)
    w[~found] = 0.0
    if hit_weights is not None:
        w[hit] = hit_weights  # a cell on samples: their plain mean
    den = w.sum(axis=1)
    if group.values.shape[1] == 1:
        num = np.einsum("ij,ij->i", w, group.values[i, 0])[:, None]
    else:
        n, k = w.shape
        matrix = csr_matrix((w.ravel(), i.ravel(), np.arange(0, n * k + 1, k)), shape=(n, group.n))
        num = matrix @ group.values
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den[:, None]
    bad = (count < min_points) & ~hit
    if max_distance is not None:
        bad |= nearest > max_distance
    out[bad] = np.nan
    return out


def _idw_points(group, q, k, power, radius, max_distance, min_points, tol):
    """IDW of a group's bands at the points q (n, 2); NaN where nodata. Returns (n, len(bands)) float64."""
    d, i, found = _neighbours(group, q, k, radius)
    return _weighted(group, d, i, found, power, max_distance, min_points, tol)


TILE_LEVELS = (16, 4)
"""Tile sizes (cells) tried before searching the neighbours of each cell, see :func:`_idw_grid`."""


def _idw_grid(group, qx, qy, k, power, radius, max_distance, min_points, tol):
    """IDW at the cell centres qx (columns) x qy (rows): (len(qy) * len(qx), len(bands)), row by row.

    Neighbouring cells mostly share their neighbours, so tiles of cells are tried first,
    with one search of the k + 1 samples nearest to the tile's centre c (h: distance from
    c to the tile's farthest cell centre, r_j: distance of the j-th nearest sample):

    * fewer than k + 1 samples within radius + h of c: every sample within the radius of
      any cell of the tile is among them, and they are at most k, so each cell uses
      exactly those of them within its radius;
    * r_(k+1) - r_k > 2 h: for every cell the k samples nearest to c are nearer than any
      other (triangle inequality), so they are its k nearest.

    Tiles passing neither test are split into smaller tiles, and the cells left get their
    own k-nearest search. The result is the same as searching every cell.
    """
    rows, cols = qy.size, qx.size
    k = min(k, group.n)
    out = np.full((rows * cols, group.values.shape[1]), np.nan)
    todo = np.ones((rows, cols), dtype=bool)
    px, py = group.tree.data[:, 0], group.tree.data[:, 1]
    for size in TILE_LEVELS:
        if rows * cols < 4 * size * size:
            continue
        tr, tc = -(-rows // size), -(-cols // size)
        # tiles holding cells still to do (a tile lies inside one tile of the previous level)
        pending = np.zeros((tr * size, tc * size), dtype=bool)
        pending[:rows, :cols] = todo
        pending = pending.reshape(tr, size, tc, size).any(axis=(1, 3))
        ta, tb = np.nonzero(pending)
        if ta.size == 0:
            break
        r0, r1 = ta * size, np.minimum(ta * size + size, rows) - 1
        c0, c1 = tb * size, np.minimum(tb * size + size, cols) - 1
        centres = np.column_stack([(qx[c0] + qx[c1]) / 2.0, (qy[r0] + qy[r1]) / 2.0])
        h = np.hypot(qx[c1] - qx[c0], qy[r1] - qy[r0]) / 2.0
        m = min(k + 1, group.n)
        bound = np.inf if radius is None else (radius + h.max()) * (1.0 + 1e-9)
        d, i = group.tree.query(centres, k=m, distance_upper_bound=bound, workers=1)
        if m == 1:
            d, i = d[:, None], i[:, None]
        if radius is not None:  # per tile: samples beyond radius + h are within the radius of no cell
            beyond = d > (radius + h[:, None]) * (1.0 + 1e-9)
            i = np.where(beyond, group.n, i)
            d = np.where(beyond, np.inf, d)
        n_found = (i < group.n).sum(axis=1)
        small = n_found <= k
        if m == k + 1:
            with np.errstate(invalid="ignore"):  # inf - inf where samples are missing
                small |= (n_found == k + 1) & (d[:, k] - d[:, k - 1] > 2.0 * h)
        if not small.any():
            continue
        sel = np.flatnonzero(small)
        kk = max(1, min(k, int(n_found[sel].max())))  # samples come first, nearest to farthest
        cand = i[sel, :kk]
        valid = cand < group.n
        cand = np.where(valid, cand, 0)
        # cells of the chosen tiles, (tiles, size, size); coordinates past the edge are computed, then dropped
        step_x = qx[1] - qx[0] if cols > 1 else 1.0
        step_y = qy[1] - qy[0] if rows > 1 else -1.0
        offsets = np.arange(size)
        cx = qx[0] + (c0[sel, None] + offsets[None, :]) * step_x  # (tiles, size)
        cy = qy[0] + (r0[sel, None] + offsets[None, :]) * step_y
        dx = px[cand][:, None, :] - cx[:, :, None]  # (tiles, size, kk)
        dy = py[cand][:, None, :] - cy[:, :, None]
        dist = dy[:, :, None, :] ** 2 + dx[:, None, :, :] ** 2  # (tiles, size rows, size cols, kk)
        np.sqrt(dist, out=dist)
        n_cells = sel.size * size * size
        idx = np.broadcast_to(cand[:, None, None, :], dist.shape).reshape(n_cells, kk)
        found = np.broadcast_to(valid[:, None, None, :], dist.shape).reshape(n_cells, kk)
        dist = dist.reshape(n_cells, kk)
        if radius is not None:
            found = found & (dist <= radius)
        values = _weighted(group, dist, idx, found, power, max_distance, min_points, tol)
        cr = np.broadcast_to((r0[sel, None] + offsets[None, :])[:, :, None], (sel.size, size, size)).ravel()
        cc = np.broadcast_to((c0[sel, None] + offsets[None, :])[:, None, :], (sel.size, size, size)).ravel()
        inside = (cr < rows) & (cc < cols)
        cr, cc = cr[inside], cc[inside]
        out[cr * cols + cc] = values[inside]
        todo[cr, cc] = False
    left = np.flatnonzero(todo.ravel())
    if left.size:
        q = np.column_stack([qx[left % cols], qy[left // cols]])
        out[left] = _idw_points(group, q, k, power, radius, max_distance, min_points, tol)
    return out


def _prepare(x, y, values, names, power, k, radius, max_distance, min_points, feedback):
    """Checked inputs: coordinates and values without unlocated samples, and the options."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    V = np.array(values, dtype=np.float64)
    if V.ndim == 1:
        V = V[:, None]
    if names is None:
        names = [f"band {j + 1}" for j in range(V.shape[1])]
    names = [str(n) for n in names]
    if x.size != y.size or V.ndim != 2 or V.shape[0] != x.size:
        raise OreMapError(f"{x.size} x, {y.size} y coordinates and {V.shape[0]} value rows.", "values")
    if V.shape[1] != len(names) or not names:
        raise OreMapError(f"{len(names)} band names for {V.shape[1]} value columns.", "fields",
                          "Choose at least one field.")
    power, k, min_points = float(power), int(k), int(min_points)
    if not np.isfinite(power) or power < 0:
        raise OreMapError("The power must be zero or positive.", "power", "2 is the usual choice.")
    if k < 1:
        raise OreMapError("The number of neighbours must be at least 1.", "neighbours")
    if not 1 <= min_points <= k:
        raise OreMapError(f"The minimum number of points must lie within 1-{k} (the neighbours).", "min_points")
    radius = float(radius) if radius else None
    auto = isinstance(max_distance, str) and max_distance.strip().lower() == AUTO
    if isinstance(max_distance, str) and not auto:
        raise OreMapError(f"Cannot read the maximum distance '{max_distance}'.", "max_distance",
                          f"Give a distance, 0 for no limit, or '{AUTO}'.")
    max_distance = None if auto else (float(max_distance) if max_distance else None)
    for value, key in ((radius, "radius"), (max_distance, "max_distance")):
        if value is not None and not value > 0:
            raise OreMapError(f"The {key.replace('_', ' ')} must be positive (or 0 for none).", key)
    located = np.isfinite(x) & np.isfinite(y)
    if not located.all():
        feedback.warning(f"{int((~located).sum())} samples without coordinates were left out.")
        x, y, V = x[located], y[located], V[located]
    if x.size == 0:
        raise OreMapError("No sample has coordinates.", "points", "Check the point layer.")
    if auto:
        max_distance = auto_max_distance(x, y, feedback)
    V[~np.isfinite(V)] = np.nan
    return x, y, V, names, (power, k, radius, max_distance, min_points)


def _groups(x, y, V, names, feedback):
    """One search tree per pattern of missing values: bands missing at the same samples share it."""
    xy = np.column_stack([x, y])
    patterns = {}
    for j in range(V.shape[1]):
        patterns.setdefault(np.isfinite(V[:, j]).tobytes(), []).append(j)
    groups = []
    for key, bands in patterns.items():
        ok = np.frombuffer(key, dtype=bool)
        if not ok.any():
            feedback.warning(f"No sample has a value for {', '.join(names[b] for b in bands)}: left nodata.")
            continue
        groups.append(_Group(xy[ok], V[ok][:, bands], bands))
    return groups


def idw_at(x, y, values, qx, qy, power=2.0, k=12, radius=None, max_distance=None, min_points=1,
           hit_distance=0.0, feedback=None):
    """IDW of the samples at arbitrary points ``(qx, qy)``, in float64 (same rules as the grid).

    A query point within ``hit_distance`` of samples takes their mean. Returns
    ``(n_query, m)``, NaN where a point gets no value (radius, max distance, no samples).
    """
    feedback = ensure(feedback)
    x, y, V, _, options = _prepare(x, y, values, None, power, k, radius, max_distance, min_points, feedback)
    power, k, radius, max_distance, min_points = options
    q = np.column_stack([np.asarray(qx, dtype=np.float64).ravel(), np.asarray(qy, dtype=np.float64).ravel()])
    out = np.full((len(q), V.shape[1]), np.nan)
    for group in _groups(x, y, V, [str(j) for j in range(V.shape[1])], feedback):
        out[:, group.bands] = _idw_points(group, q, k, power, radius, max_distance, min_points, float(hit_distance))
    return out


def idw_to_raster(x, y, values, names, out_path, cell_size, extent=None, margin=None, crs=None, power=2.0,
                  k=12, radius=None, max_distance=AUTO, min_points=1, memory_mb=None, feedback=None,
                  nodata=NODATA, threads=None, band_tags=None):
    # Over 100 lines by its docstring (every parameter documented); the code is 76 lines.
    """Grid point samples by inverse distance weighting into a float32 GeoTIFF.

    Parameters
    ----------
    x, y : arrays (n,)
        Sample coordinates in a projected CRS (distances are Euclidean).
    values : array (n,) or (n, m)
        One column per output band; NaN = missing for that element.
    names : list of str
        Band descriptions, one per column.
    out_path : str
        Output GeoTIFF (tiled, DEFLATE, written atomically).
    cell_size : float
        Pixel size in CRS units.
    extent : (xmin, ymin, xmax, ymax), optional
        Grid extent; default the points' bounds plus ``margin`` (see :func:`grid_geometry`).
    crs : anything rasterio accepts (``"EPSG:32750"``, WKT), optional
    power : float
        Weight exponent (``w = d**-power``; 0 = plain mean of the neighbours).
    k : int
        Number of nearest samples used.
    radius, max_distance : float, optional
        Search radius; largest distance from a cell to its nearest sample. None or 0 = no limit;
        ``max_distance="auto"`` (the default, as ``oremap:idw_interpolate``'s): :data:`AUTO_DISTANCE_FACTOR`
        times the sample spacing, logged.
    min_points : int
        Fewest samples (within the radius) a cell needs, else nodata.
    memory_mb : float, optional
        Memory budget (see :func:`core.engine.raster.memory_budget_mb`).
    feedback : Feedback, optional
        Progress per block; cancelling removes the partial output.
    nodata : float
        Nodata value of the output.
    threads : int, optional
        Worker threads (default: every CPU).
    band_tags : list of dict, optional
        Metadata per band, e.g. what the values mean (:func:`core.geochemistry.grid_meaning.band_tags`).

    Returns
    -------
    dict
        ``width``, ``height``, ``cell_size``, ``extent`` (xmin, ymin, xmax, ymax),
        ``samples`` / ``valid_cells`` / ``min`` / ``max`` (per band name), ``trees``
        (distinct missing-value patterns), ``blocks``.
    """
    feedback = ensure(feedback)
    x, y, V, names, options = _prepare(x, y, values, names, power, k, radius, max_distance, min_points, feedback)
    power, k, radius, max_distance, min_points = options
    grid = grid_geometry(x, y, cell_size, extent, margin)
    check_output_path(out_path)
    tol = HIT_TOLERANCE * grid["cell_size"]

    groups = _groups(x, y, V, names, feedback)

    threads = int(threads or os.cpu_count() or 1)
    memory_mb = memory_budget_mb(memory_mb)
    k_used = min(k, max((g.n for g in groups), default=1))
    per_cell = 56 * k_used + 16 * V.shape[1] + 64
    windows = block_windows(grid["width"], grid["height"], per_cell, memory_mb)
    stats = {name: [0, np.inf, -np.inf] for name in names}  # valid cells, min, max

    def chunk_rows(window):
        """Row ranges for the threads, in whole tiles of the first tile level."""
        tile = TILE_LEVELS[0]
        step = -(-max(1, -(-window.height // (threads * 2))) // tile) * tile
        return [(r, min(step, window.height - r)) for r in range(0, window.height, step)]

    def compute(window):
        """The window's bands (float32, NaN = nodata), its row chunks spread over the worker threads."""
        block = np.full((len(names), window.height, window.width), np.nan, dtype=np.float32)
        qx, qy = cell_centres(grid, window)
        for group in groups:
            def work(rows, group=group):
                r0, nr = rows
                out = _idw_grid(group, qx, qy[r0:r0 + nr], k, power, radius, max_distance, min_points, tol)
                block[group.bands, r0:r0 + nr, :] = out.T.reshape(len(group.bands), nr, window.width)
            list(workers.map(work, chunk_rows(window)))
        return block

    def blocks():
        """Blocks for the writer; the next one is computed while this one is written."""
        pending = producer.submit(compute, windows[0])
        for n, window in enumerate(windows):
            feedback.check()
            block = pending.result()
            if n + 1 < len(windows):
                pending = producer.submit(compute, windows[n + 1])
            for b, name in enumerate(names):
                valid = np.isfinite(block[b])
                if valid.any():
                    s = stats[name]
                    s[0] += int(valid.sum())
                    s[1] = min(s[1], float(block[b][valid].min()))
                    s[2] = max(s[2], float(block[b][valid].max()))
            block[np.isnan(block)] = nodata
            feedback.progress(100.0 * (n + 1) / len(windows))
            yield window, block

    spec = OutputSpec(out_path, names, dtype="float32", nodata=nodata, band_tags=band_tags,
                      tags={"OREMAP_METHOD": f"IDW power={power:g} k={k} radius={radius or 0:g} "
                                             f"max_distance={max_distance or 0:g} min_points={min_points}"})
    with ThreadPoolExecutor(max_workers=threads) as workers, ThreadPoolExecutor(max_workers=1) as producer:
        try:
            write_blocks(spec, grid["width"], grid["height"], grid["transform"], crs, blocks(), feedback)
        except BaseException:
            producer.shutdown(wait=True, cancel_futures=True)
            raise

    samples = {name: 0 for name in names}
    for group in groups:
        for b in group.bands:
            samples[names[b]] = group.n
    return {
        "width": grid["width"], "height": grid["height"], "cell_size": grid["cell_size"],
        "extent": (grid["xmin"], grid["ymin"], grid["xmax"], grid["ymax"]),
        "samples": samples,
        "valid_cells": {n: s[0] for n, s in stats.items()},
        "min": {n: (s[1] if s[0] else None) for n, s in stats.items()},
        "max": {n: (s[2] if s[0] else None) for n, s in stats.items()},
        "trees": len(groups), "blocks": len(windows),
    }
