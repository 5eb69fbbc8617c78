"""Deposit windows and the spatial split of the prospectivity ResNet: cell geometry, the windows
sampled around deposits and in the background, and the spatially blocked folds (blocks assigned
to folds, a buffer between training and held-out windows).
"""

from dataclasses import dataclass, field
import math

import numpy as np

from ..engine import affine_ops
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .prospectivity_network import MIN_WINDOW, _check_window


pixel_size = affine_ops.pixel_size   # (column width, row height) of a cell in map units


def cell_centres(transform, rows, cols):
    """Map coordinates ``(n, 2)`` of the centres of cells ``(rows, cols)``."""
    rows = np.asarray(rows, dtype=np.float64) + 0.5
    cols = np.asarray(cols, dtype=np.float64) + 0.5
    return np.column_stack(affine_ops.apply(transform, cols, rows))


def deposit_cells(xy, transform, height, width):
    """Cell (row, col) of each point and whether it lies on the raster: ``rows, cols, inside``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    inverse = ~transform
    c, r = affine_ops.apply(inverse, xy[:, 0], xy[:, 1])
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


def _deposit_windows(xy, valid, transform, fraction, max_nodata):
    """Step 1 of :func:`plan_spatial_folds`: one window per valid cell holding a deposit, and the counts of
    the deposits left out (outside, on nodata, mostly nodata around, sharing a cell)."""
    h, w = valid.shape
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
    return deposits, info


def _background_windows(xy, valid, transform, fraction, max_nodata, min_distance, negatives_per_positive, n_dep,
                        rng, feedback, window=None, distance_given=True):
    """Step 2 of :func:`plan_spatial_folds`: background windows drawn among the valid cells at least
    ``min_distance`` from every deposit."""
    from scipy.spatial import cKDTree

    n_neg = int(round(negatives_per_positive * n_dep))
    if n_neg == 0:   # the count asked for, not the map: no distance would help
        raise OreMapError(
            f"{negatives_per_positive:g} background windows per deposit for {n_dep} deposit(s) asks for "
            f"{negatives_per_positive * n_dep:g}, which rounds to no background window.", "negatives_per_positive",
            f"Ask for at least {1.0 / n_dep:.2g} background windows per deposit (the default 10 is usual).")
    w = valid.shape[1]
    pool = np.flatnonzero(valid.ravel())
    pool = pool[fraction(pool // w, pool % w) <= max_nodata]
    if pool.size > 2_000_000:
        pool = np.sort(rng.choice(pool, 2_000_000, replace=False))
    dist, _ = cKDTree(xy).query(cell_centres(transform, pool // w, pool % w))
    n_open = int(pool.size)   # windows with enough data, before the distance to deposits
    pool = pool[dist >= min_distance]
    if pool.size < n_neg:
        feedback.warning(f"Only {pool.size} background cells lie at least {min_distance:g} map units from every "
                         f"deposit; {n_neg} were asked for.")
        n_neg = int(pool.size)
    chosen = np.sort(rng.choice(pool, n_neg, replace=False)) if n_neg else np.zeros(0, np.int64)
    negatives = WindowSpecs(chosen // w, chosen % w, np.zeros(n_neg, np.int64), np.arange(n_neg))
    if n_neg == 0:
        with_data = (f"every one of the {n_open} valid cells whose window holds at most {max_nodata:.0%} nodata is "
                     if n_open < int(valid.sum()) else "every valid cell is ")
        if distance_given:
            raise OreMapError(f"No background window can be placed: {with_data}within the minimum distance "
                              f"({min_distance:g} map units) of a deposit.", "min_distance",
                              "Lower the minimum distance to deposits.")
        cell = max(pixel_size(transform))
        raise OreMapError(
            f"No background window can be placed: {with_data}within one window ({window} cells of "
            f"{cell:g} map units: {min_distance:g}) of a deposit, the default minimum distance.", "window",
            f"Choose a smaller window, a finer grid, or a minimum distance below {min_distance:g} map units.")
    return negatives


def _largest_gap(rows, cols):
    """The largest distance (cells, Chebyshev) between two of the cells ``rows``, ``cols``."""
    if len(rows) < 2:
        return 0.0
    return float(max(np.ptp(rows), np.ptp(cols)))


def plan_spatial_folds(valid, deposits_xy, transform, window, n_folds=5, block_size=None, min_distance=None,
                       negatives_per_positive=10, jitter_copies=8, jitter=None, crop_pad=None, max_nodata=0.5,
                       seed=0, feedback=None, no_folds_fix=None):
    # Over 100 lines by its docstring; the code (95 lines) is four numbered steps sharing the plan's arrays.
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
    no_folds_fix : str, optional
        The fix to offer when deposits are too close for any fold, for a caller that cannot train without
        cross-validation (default: 0 folds).

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
        if min(h, w) < MIN_WINDOW:   # no window the trainers take fits: advising a smaller one would be refused
            raise OreMapError(f"The raster ({w} x {h} cells) is smaller than the smallest window ({MIN_WINDOW} "
                              "cells).", "raster", f"Grid the elements at a finer cell size, so that the study area "
                                                   f"is at least {MIN_WINDOW} x {MIN_WINDOW} cells.")
        raise OreMapError(f"The window ({window} cells) is larger than the raster ({w} x {h} cells).", "window",
                          f"Choose a window of at most {min(h, w)} cells.")
    crop_pad = max(window // 8, 1) if crop_pad is None else max(int(crop_pad), 0)
    crop_pad = min(crop_pad, max(window // 2 - 2, 0))
    limit = max(window // 2 - 1 - crop_pad, 0)
    jitter = min(max(window // 4, 1) if jitter is None else max(int(jitter), 0), limit)
    rng = np.random.default_rng([int(seed), 11])
    px_w, px_h = pixel_size(transform)
    distance_given = min_distance is not None and min_distance > 0
    if not distance_given:
        min_distance = window * max(px_w, px_h)
    integral = _invalid_integral(valid)

    def fraction(rows, cols):
        return _fraction(integral, h, w, rows, cols, window)

    # 1. deposits
    xy = np.asarray(deposits_xy, dtype=np.float64).reshape(-1, 2)
    deposits, info = _deposit_windows(xy, valid, transform, fraction, max_nodata)
    dep_rows, dep_cols, n_dep = deposits.rows, deposits.cols, len(deposits)

    # 2. background centres
    negatives = _background_windows(xy, valid, transform, fraction, max_nodata, min_distance, negatives_per_positive,
                                    n_dep, rng, feedback, window, distance_given)
    n_neg = len(negatives)
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
        reach = (window + crop_pad) * max(px_w, px_h)
        spread = _largest_gap(dep_rows, dep_cols) * max(px_w, px_h)
        if n_dep < 2 or spread < reach:
            where = ("Only one deposit is usable" if n_dep < 2 else
                     f"The {n_dep} usable deposits lie within {spread:g} map units of each other, inside the "
                     f"zone kept free of training windows around each validation window ({reach:g} map units: "
                     f"window and crop margin)")
            raise OreMapError(
                f"{where}, so no block size gives a fold with deposits to train on and to validate.",
                "deposits" if n_dep < 2 else "block_size",   # one deposit: no block size can help
                no_folds_fix or "Train without cross-validation (0 folds), or use more deposits, spread wider.")
        if blocks_with < 2:
            raise OreMapError(
                f"All deposits lie in one block of {block_size:g} map units: spatial cross-validation needs "
                "deposits in at least 2 blocks.", "block_size",
                f"Choose a block size below {spread / 2:g} map units"
                + (", or 0 folds to train without cross-validation." if not no_folds_fix else "."))
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
