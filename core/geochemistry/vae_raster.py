"""VAE anomaly scores on element rasters: the raster's bands for a model's elements, a sample of pixels to train
on, and scoring streamed through the block engine (score and percentile-class rasters, a class thumbnail).

Split out of :mod:`core.geochemistry.vae_anomaly` (raster seam); the model, its preprocessing and the class
rules stay there.
"""

import math
import os

import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .vae_report import _shares
from .vae_anomaly import (CLASS_NODATA, MAX_RASTER_TRAINING, SCORE_NODATA, TASK, AnomalyModel, class_legend, classify,
                          load_model, prepare)


def raster_bands(path, names, parameter="raster"):
    """1-based bands of ``path`` holding ``names`` (band descriptions; case-insensitive), and the band names.

    When the bands are unnamed (``Band 1`` ...), a raster with exactly ``len(names)`` bands is taken in order
    (the second value says so: ``by_order``). Named bands that do not name every element are refused: in order, a
    band named after one element would be read as another (bands ``Cu, Pb, Au, As`` for a model of ``Au_ppm,
    As_ppm, Cu_ppm, Pb_ppm`` scored Cu as Au).
    """
    from ..engine.raster import band_descriptions

    descriptions = band_descriptions(path, parameter)  # the names training takes (trimmed; "Band i" if none)
    count = len(descriptions)
    lower = [d.lower() for d in descriptions]
    bands = [lower.index(n.lower()) + 1 for n in names if n.lower() in lower]
    if len(bands) == len(names):
        return bands, False
    lacking = [n for n in names if n.lower() not in lower]
    if bands:
        raise OreMapError(f"The raster's bands name {len(bands)} of the model's {len(names)} elements but not "
                          f"{', '.join(lacking)} (its bands: {', '.join(descriptions)}).", parameter,
                          "Give a raster with a band for each of the model's elements, named after it.")
    if count == len(names):
        if descriptions != [f"Band {i}" for i in range(1, count + 1)]:   # named bands (band_descriptions' defaults)
            raise OreMapError(f"The raster's bands ({', '.join(descriptions)}) do not name the model's elements "
                              f"({', '.join(names)}) as the model does, so which band is which element is unknown.",
                              parameter, "Name each band exactly as the model's element (e.g. "
                                         f"'{names[0]}', with its unit), or give the grid the model was trained on.")
        return list(range(1, count + 1)), True
    name = lacking[0]
    raise OreMapError(f"The raster has no band named '{name}' and {count} bands for {len(names)} elements.",
                      parameter, "Name the bands after the elements (band descriptions), or give a raster with "
                                 "exactly the model's elements as bands, in order.")


def sample_raster(path, bands=None, nodata=None, max_samples=MAX_RASTER_TRAINING, seed=0, memory_mb=None,
                  feedback=None, partial=False):
    """A uniform random sample (at most ``max_samples``) of the valid pixels of a raster, block by block.

    A pixel is valid where every chosen band is (not nodata, finite); with ``partial``, where any is (the
    missing ones NaN, for a model that takes samples with missing elements). The sample is
    tied to pixel positions, not to the block layout. Returns ``(values (k, b), n_valid)``.
    """
    from .prospectivity_eval import _Reservoir, _salt
    from ..engine.raster import RasterSource, block_windows, memory_budget_mb

    feedback = ensure(feedback)
    with RasterSource(path, bands=bands, nodata=nodata, scale="metadata", partial=partial) as src:
        pool = _Reservoir(int(max_samples), _salt(seed, 11))
        windows = block_windows(src.width, src.height, src.n_bands * 12 + 32, memory_budget_mb(memory_mb) / 2)
        for i, window in enumerate(windows):
            feedback.check()
            data, valid = src.read(window)
            rows, cols = np.nonzero(valid)
            index = (rows + window.row_off).astype(np.int64) * src.width + (cols + window.col_off)
            pool.add(index, data[rows, cols].astype(np.float64))
            feedback.progress(100.0 * (i + 1) / len(windows))
        n_bands = src.n_bands
    return pool.values(n_bands).reshape(-1, n_bands), pool.seen


def _hist_edges(thresholds):
    """Fixed log10 bins for raster score histograms: around the training thresholds, with open ends."""
    t = np.log10(np.maximum(np.asarray(thresholds, float), 1e-12))
    lo, hi = t.min() - 2.0, t.max() + 1.5
    return np.linspace(lo, hi, 61)


def score_raster(model, raster_path, score_path, class_path=None, nodata=None, memory_mb=None, feedback=None,
                 top=10):
    """Score every pixel of a multi-band element raster with an anomaly model, block by block.

    Bands are found by name (:func:`raster_bands`). Writes a float32 score raster
    (nodata -9999) and, if ``class_path``, a uint8 class raster (0 = background ..
    k, nodata 255) with a colour table. Memory stays flat: blocks come from the
    block engine (:func:`core.engine.raster.run_pixelwise`) under the memory budget.

    Returns a dict: ``valid_pixels``, ``scored``, ``class_counts``, ``hist_edges``
    (log10 score) and ``hist_counts``, ``top`` (the ``top`` highest scores with their
    element errors), ``top_class_share`` (mean contribution share of each element over
    the pixels of the highest class), ``bands``, ``by_order``.
    """
    from ..engine.raster import OutputSpec, RasterSource, _remove_quietly, run_pixelwise

    feedback = ensure(feedback)
    if not isinstance(model, AnomalyModel):
        model = load_model(model)
    bands, by_order = raster_bands(raster_path, model.names)
    if by_order:
        feedback.warning("The raster's band names do not match the model's elements: bands are taken in order as "
                         + ", ".join(model.names) + ".")
    k = len(model.thresholds)
    m = len(model.names)
    edges = _hist_edges(model.thresholds)
    stats = {"class_counts": np.zeros(k + 1, np.int64), "hist": np.zeros(edges.size + 1, np.int64), "scored": 0,
             "top_scores": np.zeros(0), "top_errors": np.zeros((0, m)), "share_sum": np.zeros(m), "share_n": 0}

    def func(pixels):
        Z, usable, _ = prepare(pixels, model.names, model.preprocessing)
        scores = np.full(pixels.shape[0], np.nan)
        errors = np.full(pixels.shape, np.nan)
        if usable.any():
            e, s = model.score_scaled(Z[usable])
            errors[usable] = np.where(np.isfinite(Z[usable]), e, np.nan)
            scores[usable] = s
        classes = classify(scores, model.thresholds)
        ok = classes >= 0
        stats["scored"] += int(ok.sum())
        stats["class_counts"] += np.bincount(classes[ok], minlength=k + 1)
        logs = np.log10(np.maximum(scores[ok], 1e-30))
        stats["hist"] += np.bincount(np.searchsorted(edges, logs, side="right"), minlength=edges.size + 1)
        top_rows = classes == k
        if top_rows.any():
            stats["share_sum"] += _shares(errors[top_rows]).sum(axis=0)
            stats["share_n"] += int(top_rows.sum())
        if ok.any():
            best = np.argsort(-np.where(ok, scores, -np.inf), kind="stable")[:top]
            best = best[ok[best]]
            s_all = np.concatenate([stats["top_scores"], scores[best]])
            e_all = np.concatenate([stats["top_errors"], errors[best]])
            keep = np.argsort(-s_all, kind="stable")[:top]
            stats["top_scores"], stats["top_errors"] = s_all[keep], e_all[keep]
        out_scores = np.where(ok, scores, SCORE_NODATA).astype(np.float32)
        out_classes = np.where(ok, classes, CLASS_NODATA).astype(np.uint8)
        return (out_scores, out_classes) if class_path else (out_scores,)

    tags = {"oremap_task": TASK, "model": os.path.basename(model.path)}
    outputs = [OutputSpec(score_path, ["anomaly_score"], "float32", SCORE_NODATA, tags=tags)]
    if class_path:
        legend = class_legend(model.percentiles)
        colours = {c["value"]: tuple(int(c["color"][i:i + 2], 16) for i in (1, 3, 5)) for c in legend}
        outputs.append(OutputSpec(class_path, ["anomaly_class"], "uint8", CLASS_NODATA, colormap=colours,
                                  tags=dict(tags, classes="; ".join(f"{c['value']}={c['name']}" for c in legend))))
    work = m * 8 * 10 + 64
    # a model that takes samples with missing elements (max_missing) gets the pixels missing some, as points do
    partial = float(model.preprocessing.max_missing) > 0
    with RasterSource(raster_path, bands=bands, nodata=nodata, scale="metadata", partial=partial) as src:
        try:
            done = run_pixelwise(src, outputs, func, memory_mb=memory_mb, work_bytes_per_pixel=work,
                                 feedback=feedback)
        except OreMapError as exc:
            if exc.parameter != "transform" or model.preprocessing.transform != "log10" or nodata is not None:
                raise
            # the model's log10 met values <= 0: in a grid without a nodata value, the fill around its data
            raise OreMapError(exc.message, "nodata", "A grid's zeros are usually the fill around its data, written "
                              "without a nodata value: give 0 as the nodata value (NODATA=0), or set the raster's "
                              "nodata (Raster > Conversion > Translate, 'Assign a specified nodata value').") from None
    if stats["scored"] == 0:
        for spec in outputs:
            _remove_quietly(spec.path)
        raise OreMapError("No pixel could be scored (every pixel misses too many elements after preprocessing).",
                          "raster", "Check the preprocessing options (zeros, values below detection, transform).")
    return {"valid_pixels": done["valid_pixels"], "scored": stats["scored"], "class_counts": stats["class_counts"],
            "hist_edges": edges, "hist_counts": stats["hist"], "top_scores": stats["top_scores"],
            "top_errors": stats["top_errors"],
            "top_class_share": stats["share_sum"] / max(stats["share_n"], 1) if stats["share_n"] else None,
            "top_class_n": stats["share_n"], "bands": bands, "by_order": by_order}


def class_thumbnail(class_path, max_size=120, memory_mb=None):
    """A small array of the highest class in each thumbnail cell of a class raster (-1 = nodata), block by block."""
    from ..engine.raster import block_windows, memory_budget_mb, open_raster

    with open_raster(class_path) as ds:
        w, h = ds.width, ds.height
        f = max(1, int(math.ceil(max(w, h) / float(max_size))))
        tw, th = int(math.ceil(w / f)), int(math.ceil(h / f))
        thumb = np.full(th * tw, -1, np.int16)
        nodata = ds.nodata
        for window in block_windows(w, h, 16, memory_budget_mb(memory_mb) / 4):
            block = ds.read(1, window=window).astype(np.int16)
            if nodata is not None:
                block[block == int(nodata)] = -1
            rows = (np.arange(window.height) + window.row_off) // f
            cols = (np.arange(window.width) + window.col_off) // f
            cells = (rows[:, None] * tw + cols[None, :]).ravel()
            np.maximum.at(thumb, cells, block.ravel())
    return thumb.reshape(th, tw), f
