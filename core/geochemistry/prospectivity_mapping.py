"""Prospectivity maps from a trained ResNet: the raster cut into cells (a grid or a sliding window),
a window around each cell scored by the ONNX model block by block, the probability raster and the
ranked target cells.
"""

import os

import numpy as np

from ..engine import affine_ops
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.evaluation_guard import validation_tags
from ..engine.model_format import OnnxModel, is_number, unreadable_settings
from ..engine.raster import OutputSpec, block_windows, check_output_path, memory_budget_mb, write_blocks
from .grid_meaning import check_input_transform, check_training_range, raster_sample, read_meaning
from .prospectivity_data import _read_nan, _source, element_bands
from .prospectivity_folds import deposit_cells, pixel_size
from .prospectivity_network import MIN_WINDOW, TASK


#: Most cells :func:`prospectivity_map` lists (the best ranked) for the target-cell layer.
MAX_CELLS = 20000

MODES = ("grid", "sliding")

FITS = ("centre", "resize")

_NODATA_OUT = -9999.0


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
        if not (1 <= n_rows <= height and 1 <= n_cols <= width):   # rows x columns, both of them
            raise OreMapError(f"A grid of {n_rows} rows x {n_cols} columns of cells does not fit a raster of {height} "
                              f"rows x {width} columns.", "grid" if not 1 <= n_rows <= height else "grid_cols",
                              f"Choose 1 to {height} rows and 1 to {width} columns.")
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
    from ..engine.model_task import check_task

    check_task(info, TASK, getattr(model, "path", None))
    window = info.input.get("window")
    if not isinstance(window, int) or not info.band_names:
        raise OreMapError("The model does not say its window size and elements.", "model",
                          "Choose a model trained with 'Train a prospectivity ResNet'.")
    path = getattr(model, "path", None) or "model"
    max_nodata = info.preprocessing.get("max_nodata", 0.5)
    if not is_number(max_nodata) or not 0.0 <= max_nodata < 1.0:
        raise unreadable_settings(path, "preprocessing", f"max_nodata is {max_nodata!r}, not a share in [0, 1)")
    spatial = info.extra.get("spatial") or {}
    if not isinstance(spatial, dict):
        raise unreadable_settings(path, "spatial", "they are not a JSON object")
    size = spatial.get("cell_size")
    if size and not (isinstance(size, list) and len(size) == 2 and all(is_number(v) and v > 0 for v in size)):
        raise unreadable_settings(path, "spatial", f"cell_size is {size!r}, not two positive numbers")
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
        Memory budget, see :func:`core.engine.raster.memory_budget_mb`.
    threads : int, optional
        onnxruntime threads (all cores when None).
    max_cells : int, default :data:`MAX_CELLS`
        The cell list holds at most this many cells, the best ranked (a small stride makes millions); 0: no
        cell list (the counts below are of every cell all the same).

    Returns
    -------
    dict
        ``cells``: list of dicts (``id``, ``row``, ``col``, pixel ``window`` (r0, r1, c0, c1),
        ``polygon`` (map coordinates of the 4 corners), ``bounds``, ``probability``, ``rank`` (1 =
        highest; ties by cell order) and, with deposits, ``n_deposits`` and ``has_deposit``), only for
        scored cells; ``probabilities`` (the cell grid, NaN where not scored), ``row_edges``,
        ``col_edges``, ``mode``, ``fit``, ``window``, ``n_scored``, ``n_unscored``, ``top_probability`` and,
        with deposits, ``n_deposit_cells`` (scored cells holding a deposit; None without deposits), all of every
        cell whatever ``max_cells`` keeps in the list.
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
    prep = model.info.preprocessing
    check_input_transform(prep.get("input_transform"), read_meaning(raster_path, bands))
    if prep.get("method") == "zscore" and len(prep.get("mean") or ()) == len(bands) == len(prep.get("sd") or ()):
        sd = np.asarray(prep["sd"], dtype=np.float64)
        z = (raster_sample(raster_path, bands, nodata) - np.asarray(prep["mean"], dtype=np.float64)) / \
            np.where(sd > 0, sd, 1.0)
        check_training_range(z, elements, feedback.warning, robust=False)  # the mean and sd of the training cells
    cv_auc = ((model.info.training or {}).get("metrics") or {}).get("cv_auc_mean")
    if cv_auc is None or not np.isfinite(float(cv_auc)):
        feedback.warning("The model has no spatial cross-validation figure (no fold was scored, or it was trained "
                         "without folds): nothing says how well it ranks deposits it has not seen. Evaluate the map "
                         "against deposits left out of training before relying on it.")
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
                     feedback.scaled(85, 100), model_info=model.info)
        counts = _deposit_counts(proba, row_edges, col_edges, source.transform, deposits_xy, height, width)
        cells = _cell_list(proba, row_edges, col_edges, source.transform, counts, max_cells,
                           feedback) if max_cells != 0 else []
    feedback.progress(100)
    n_scored = int(np.isfinite(proba).sum())
    scored = np.isfinite(proba)
    return {"cells": cells, "probabilities": proba, "row_edges": row_edges, "col_edges": col_edges, "mode": mode,
            "fit": fit, "window": window, "n_scored": n_scored, "n_unscored": int(proba.size - n_scored),
            "top_probability": float(np.max(proba[scored])) if n_scored else float("nan"),
            "n_deposit_cells": None if counts is None else int(np.count_nonzero(scored & (counts > 0)))}


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
        feedback.info(f"Each grid cell (up to {w} x {h} raster cells) is scored by the {window} x {window} window "
                      "at its centre.")
    elif mode == "grid" and (h < window or w < window):
        feedback.info(f"Each grid cell (up to {w} x {h} raster cells) is scored by the {window} x {window} window "
                      "centred on it, which includes parts of its neighbours.")


BATCH_ACTIVATIONS_MB = 32
"""Memory allowed for one batch of a window model's activations. The batch is sized from the model alone, never from
the memory budget: onnxruntime's reductions (the window statistics of the comparison ensemble's members) sum in
another order for another batch size, and a last-bit difference may cross a tree's split, so a cell's probability
would depend on the budget (11 of 3,654 cells differed by up to 0.0024 between 12 and 512 MB)."""

MAX_BATCH = 256

BAND_ROWS = MIN_WINDOW
"""Rows of the raster summed at once into the cells' resampled windows (the whole-cell fit), at offsets from the
cells' first row: the partial sums add in the same order whatever the budget lets one read hold. The smallest
window, so that a read of whole pieces never exceeds the budget's rows (at least a window and one)."""


def _batch_windows(model):
    """Windows per onnxruntime call for ``model``: a function of the model only (see BATCH_ACTIVATIONS_MB)."""
    params = model.info.training.get("parameters", {})
    width = int(params.get("width", 16) or 16)
    c, w = model.info.n_bands, int(model.info.input["window"])
    per_window = 4 * w * w * (c + 6 * width)
    return int(np.clip((BATCH_ACTIVATIONS_MB * 2**20) // per_window, 1, MAX_BATCH))


def _score_row(model, pieces, max_nodata, batch, out):
    """Deposit probability of a row of cells' windows into ``out`` (NaN stays for windows with too much nodata).

    ``pieces`` yields ``(first cell, windows)`` in order along the row. The windows kept are sent to onnxruntime
    ``batch`` at a time counted from the row's first, so each call's size and a window's place in it follow from
    the row alone, never from how many windows were cut at once (see BATCH_ACTIVATIONS_MB)."""
    cols, wins, held = [], [], 0
    for first, windows in pieces:
        ok = np.flatnonzero(np.isnan(windows[:, 0]).mean(axis=(1, 2)) <= max_nodata)
        if ok.size:
            cols.append(first + ok)
            wins.append(windows[ok])
            held += ok.size
        if held >= batch:   # every whole batch at once (model.run cuts it in batches); the rest waits
            c, w, n = np.concatenate(cols), np.concatenate(wins), held // batch * batch
            out[c[:n]] = model.run(w[:n], batch_size=batch)[:, 1]
            cols, wins, held = [c[n:]], [w[n:]], held - n
    if held:
        c, w = np.concatenate(cols), np.concatenate(wins)
        out[c] = model.run(w, batch_size=batch)[:, 1]


def _score_cells(source, model, row_edges, col_edges, window, fit, max_nodata, budget, feedback):
    n_rows, n_cols = row_edges.size - 1, col_edges.size - 1
    width = source.width
    proba = np.full((n_rows, n_cols), np.nan, dtype=np.float32)
    batch = _batch_windows(model)
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
            for k in range(i, j):  # one strip may hold every row of cells: progress and cancel by row
                sub = strip[:, rs[k] - r0:rs[k] - r0 + window, :]
                def pieces(sub=sub):
                    for m in range(0, n_cols, chunk):
                        feedback.check()
                        idx = cs[m:m + chunk, None] + window + ar[None, :]
                        yield m, np.ascontiguousarray(np.transpose(sub[:, :, idx], (2, 0, 1, 3)))

                _score_row(model, pieces(), max_nodata, batch, proba[k])
                feedback.progress(100.0 * (k + 1) / n_rows)
        else:
            j = i + 1
            a, b = int(row_edges[i]), int(row_edges[i + 1])
            step = max(1, rows_budget // BAND_ROWS) * BAND_ROWS
            num = np.zeros((n_cols, source.n_bands, window, window))
            den = np.zeros((n_cols, 1, window, window))
            ar_w = _box_weights(b - a, window)
            ac_w = [_box_weights(int(col_edges[m + 1] - col_edges[m]), window) for m in range(n_cols)]
            for s0 in range(a, b, step):
                s1 = min(b, s0 + step)
                strip = _read_nan(source, s0, s1, 0, width)
                valid = np.isfinite(strip[0])
                values = np.where(np.isfinite(strip), strip, 0.0)
                for p0 in range(s0, s1, BAND_ROWS):  # sums in BAND_ROWS pieces: the same order for any step
                    p1 = min(s1, p0 + BAND_ROWS)
                    wr = ar_w[:, p0 - a:p1 - a]
                    piece, ok_rows = values[:, p0 - s0:p1 - s0], valid[p0 - s0:p1 - s0].astype(np.float64)
                    for m in range(n_cols):
                        c0, c1 = int(col_edges[m]), int(col_edges[m + 1])
                        num[m] += np.einsum("ih,chw,jw->cij", wr, piece[:, :, c0:c1], ac_w[m])
                        den[m, 0] += wr @ ok_rows[:, c0:c1] @ ac_w[m].T
            wins = np.where(den >= 0.5, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)
            _score_row(model, [(0, wins)], max_nodata, batch, proba[i])
        feedback.progress(100.0 * j / n_rows)
        i = j
    return proba


def _write_cells(source, proba, row_edges, col_edges, out_path, model_path, mode, window, budget, feedback,
                 model_info=None):
    """Stream the cell probabilities into a tiled float32 GeoTIFF, nodata where the raster is; atomic.
    The model's spatial CV AUC goes into the tags for the evaluation's guard (core/engine/evaluation_guard.py)."""
    metrics = ((model_info.training or {}).get("metrics") or {}) if model_info is not None else {}
    validation = validation_tags(os.path.basename(str(model_path)), "ROC-AUC", metrics.get("cv_auc_mean"))
    spec = OutputSpec(out_path, ["P(deposit)"], dtype="float32", nodata=_NODATA_OUT,
                      tags={"OREMAP_MODEL": os.path.basename(str(model_path)), "OREMAP_MODE": mode,
                            "OREMAP_WINDOW": window, "OREMAP_CELLS": f"{row_edges.size - 1} x {col_edges.size - 1}",
                            **validation})
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


def _deposit_counts(proba, row_edges, col_edges, transform, deposits_xy, height, width):
    """Deposits per cell of the cell grid (shape of ``proba``), or None without deposits."""
    if deposits_xy is None:
        return None
    r, c, inside = deposit_cells(deposits_xy, transform, height, width)
    ri = np.searchsorted(row_edges, r[inside], side="right") - 1
    ci = np.searchsorted(col_edges, c[inside], side="right") - 1
    counts = np.zeros(proba.shape, dtype=np.int64)
    np.add.at(counts, (ri, ci), 1)
    return counts


def _cell_list(proba, row_edges, col_edges, transform, counts, max_cells=None, feedback=None):
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
        corners = [affine_ops.apply(transform, c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1))]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        cell = {"id": int(k) + 1, "row": i, "col": j, "window": (r0, r1, c0, c1),
                "polygon": [(float(x), float(y)) for x, y in corners],
                "bounds": (min(xs), min(ys), max(xs), max(ys)), "probability": float(flat[k]), "rank": int(rank[k])}
        if counts is not None:
            cell["n_deposits"] = int(counts[i, j])
            cell["has_deposit"] = bool(counts[i, j] > 0)
        cells.append(cell)
    return cells
