"""Abundance maps from a trained ensemble: per-pixel abundances with conformal intervals, the
dominant mineral, and zone statistics under polygons.
"""

import json
import os

import numpy as np

from ..engine import compositional
from ..engine.colors import legend_entries
from ..engine.compute import gemm
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import OnnxModel, unreadable_settings
from .abundance import SPACES, TASK, TOTAL, _to_parts, calibration_warning, conformal_rank, intervals



def _check_level(level):
    if not 0.5 <= float(level) < 1.0:
        raise OreMapError("The interval level must be between 50 and 99 %.", "level")

class AbundanceModel:
    """A trained abundance model file, ready to predict (onnxruntime)."""

    def __init__(self, path, threads=None):
        self.onnx = OnnxModel(path, threads=threads)
        self.info = self.onnx.info
        from ..engine.model_task import check_task

        check_task(self.info, TASK, path)
        if "abundance" not in self.info.extra:
            raise OreMapError(f"'{path}' has no abundance metadata.", "model",
                              "Choose a model made by 'Train mineral abundance model'.")
        self.names = self.info.class_names
        try:
            meta = self.info.extra["abundance"]["conformal"]
            self.levels = np.asarray(meta["levels"], np.float64)
            self.scores = np.asarray(meta["scores"], np.float64)
            self.floors = np.asarray(meta["floors"], np.float64)
            self.n_calibration = int(meta["n_calibration"])
            # ROIs (groups) since each ROI counts once; older models counted pixels
            self.grouped = meta.get("units") == "groups"
            space = self.info.extra["abundance"]["space"]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise unreadable_settings(path, "abundance", exc) from None
        k = len(self.names)
        if self.levels.ndim != 1 or not self.levels.size or self.scores.shape != (k, self.levels.size) or \
                self.floors.shape != (k,):
            raise unreadable_settings(path, "abundance", f"the conformal scores and floors do not hold one "
                                                         f"row for each of its {k} minerals")
        if space not in SPACES:
            raise unreadable_settings(path, "abundance", f"space is {space!r}, not one of {', '.join(SPACES)}")

    BATCH = 8192
    """Rows per onnxruntime run (:meth:`predict`)."""

    def block_bytes(self, resampled=False):
        """``(bytes per pixel, bytes whatever the block size)`` of :meth:`predict` and the map's work on a block
        (measured, bench/bench_rss.py): the spectra resampled to the model's bands, the preprocessing
        (:func:`core.engine.spectra.preprocess_bytes`), the graph's outputs (abundances, spread and every
        member's parts, float32) of the batches and their concatenation, then the closure, intervals and results
        in float64 (about twenty values a part); fixed: one batch of activations and a preprocessing chunk."""
        from ..engine.spectra import preprocess_bytes

        m, k = self.info.n_bands, len(self.names)
        members = len(((self.info.training or {}).get("parameters") or {}).get("families") or []) or 5
        pre_row, pre_fixed = preprocess_bytes(self.info.preprocessing_method, m)
        work = (4 * m if resampled else 0) + pre_row + 8 * k * (members + 2) + 160 * k + 64
        return work, pre_fixed + self.BATCH * self.onnx.activation_bytes_per_row

    def quantiles(self, level):
        """Conformal score quantile per part at ``level`` (finite-sample corrected); infinite, as in training
        (:func:`core.abundance.abundance.conformal_quantile`), when the calibration set is too small for the level
        (its intervals are then 0-100 %)."""
        _check_level(level)
        n = self.n_calibration
        rank = conformal_rank(n, level)
        if rank > n:
            return np.full(len(self.scores), np.inf)
        if self.grouped:
            # the ROIs' pooled quantile at level (n + 1) / n, read at the first stored level at or above it: never
            # below the training's conformal_quantile over the ROIs
            i = np.searchsorted(self.levels, min(float(level) * (n + 1) / n, 1.0) - 1e-9)
            return self.scores[:, min(i, self.levels.size - 1)].copy()
        # the rank-th smallest score: at (rank - 1) / (n - 1) of the stored quantile curve (linear between order
        # statistics), the training's conformal_quantile (rank / n read a little above it: wider intervals)
        p = (rank - 1) / max(n - 1, 1)
        return np.array([np.interp(p, self.levels, s) for s in self.scores])

    def calibration_warning(self, level):
        """The warning when the model's calibration set is too small for ``level`` (its intervals are 0-100 %), naming
        the units needed and the levels that give finite intervals; None when it is large enough."""
        _check_level(level)
        return calibration_warning(self.n_calibration, level, "ROIs" if self.grouped else "calibration pixels")

    def predict(self, X, level=0.9, preprocessed=False, members=False):
        """Abundances (%), lower and upper bounds for spectra at the model's bands.

        With ``members``, also each member's closed prediction (n, m, k) in %.
        """
        from ..engine.spectra import preprocess

        X = np.asarray(X, np.float32)
        if not preprocessed:
            X = preprocess(X, self.info.preprocessing_method, self.info.wavelengths)
        out = self.onnx.run_outputs(X, batch_size=self.BATCH)
        A = compositional.project_simplex(out["abundances"].astype(np.float64), TOTAL)
        lo, hi = intervals(A, out["spread"].astype(np.float64), self.quantiles(level), self.floors)
        if not members:
            return A, lo, hi
        P = out["members"].astype(np.float64)
        space = self.info.extra["abundance"]["space"]
        closed = np.stack([_to_parts(P[:, i], space) for i in range(P.shape[1])], axis=1)
        return A, lo, hi, closed


def dominant(A):
    """Index of the largest part of each row."""
    return np.argmax(A, axis=1)


def predict_abundance_map(raster_path, model_path, out_path, interval_path=None, dominant_path=None, level=0.9,
                          image_bands=None, resampler=None, scale=None, nodata=None, memory_mb=None,
                          feedback=None, model_name=None):
    """Abundance (%), interval and dominant-mineral rasters; returns summary statistics.

    ``image_bands`` (1-based) and ``resampler`` (matrix from image bands to model bands) come
    from :func:`core.hyperspectral.mapping.model_input` so the image matches the model's wavelengths.
    ``model_name``: the model's path recorded in the abundance raster's ``oremap_model`` tag (default
    ``model_path``; a batch worker reading a shipped copy records the user's file).
    """
    from ..engine.raster import (OutputSpec, RasterSource, class_nodata, class_raster_dtype, pixel_area,
                                  run_pixelwise)

    feedback = ensure(feedback)
    model = AbundanceModel(model_path)
    names = model.names
    unfit = model.calibration_warning(level)
    if unfit:   # as training warns for its own level
        feedback.warning(unfit)
    k = len(names)
    pct = int(round(100 * float(level)))
    stats = {"n": 0, "sum": np.zeros(k), "sumsq": np.zeros(k), "dominant": np.zeros(k, np.int64),
             "width": np.zeros(k), "unpredictable": 0}
    colours = model.info.class_rgb
    outputs = [OutputSpec(out_path, [f"{nm} (%)" for nm in names], band_tags=[{"mineral": nm, "unit": "%"}
                                                                            for nm in names],
                          tags={"oremap_task": TASK, "oremap_model": os.path.abspath(str(model_name or model_path))})]
    if interval_path:
        outputs.append(OutputSpec(interval_path, [f"{nm} lower {pct}%" for nm in names]
                                  + [f"{nm} upper {pct}%" for nm in names],
                                  tags={"oremap_interval_level": f"{level:g}"}))
    if dominant_path:
        outputs.append(OutputSpec(dominant_path, ["Dominant mineral"], dtype=class_raster_dtype(k),
                                  nodata=class_nodata(k), colormap={i + 1: c for i, c in enumerate(colours)},
                                  # the legend the class maps carry: accuracy assessment matches minerals by name
                                  tags={"OREMAP_CLASSES": json.dumps(legend_entries(names, colours))}))

    def func(pixels):
        X = pixels if resampler is None else gemm(pixels, resampler)
        A, lo, hi = model.predict(X, level)
        bad = ~(np.isfinite(A).all(axis=1) & np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1))
        if bad.any():   # a spectrum far outside anything measured: nodata in every output, out of the statistics
            stats["unpredictable"] += int(bad.sum())
            good = ~bad
            A, lo, hi = (np.where(good[:, None], v, 0.0) for v in (A, lo, hi))
        else:
            good = None
        stats["n"] += A.shape[0] if good is None else int(good.sum())
        stats["sum"] += A.sum(axis=0)
        stats["sumsq"] += (A ** 2).sum(axis=0)
        top = dominant(A)
        stats["dominant"] += np.bincount(top if good is None else top[good], minlength=k)
        stats["width"] += (hi - lo).sum(axis=0)
        results = [A.astype(np.float32)]
        if interval_path:
            results.append(np.hstack([lo, hi]).astype(np.float32))
        if dominant_path:
            results.append(top + 1)
        if good is not None:
            for result, spec in zip(results, outputs):
                result[bad] = spec.nodata
        return results

    work, fixed = model.block_bytes(resampler is not None)
    with RasterSource(raster_path, bands=image_bands, nodata=nodata, scale=scale, feedback=feedback,
                      fill_spectra=True) as source:
        run = run_pixelwise(source, outputs, func, memory_mb=memory_mb, work_bytes_per_pixel=work,
                            fixed_bytes=fixed, feedback=feedback)
        area = pixel_area(source.transform)
    if stats["unpredictable"]:
        feedback.warning(f"{stats['unpredictable']} pixels gave no finite abundance (spectra far outside any "
                         "reflectance the model saw): nodata in every output and left out of the statistics.")
    n = max(stats["n"], 1)
    mean = stats["sum"] / n
    sd = np.sqrt(np.maximum(stats["sumsq"] / n - mean ** 2, 0.0))
    table = [{"mineral": nm, "mean_percent": float(mean[j]), "sd_percent": float(sd[j]),
              "area_share_percent": float(mean[j]),
              "dominant_share_percent": float(100.0 * stats["dominant"][j] / n),
              "dominant_area": float(stats["dominant"][j] * area),
              "mean_interval_width": float(stats["width"][j] / n)} for j, nm in enumerate(names)]
    return {"valid_pixels": run["valid_pixels"], "table": table, "pixel_area": area, "names": names}


def zone_statistics(abundance_path, geometries, zone_names, names, interval_path=None, feedback=None):
    """Per zone (polygon) and mineral, the columns of the whole-raster rows of :func:`predict_abundance_map`,
    read from its abundance raster and, when given, its interval raster (lower bounds, then upper bounds).

    Rows ``{"zone", "pixels", "mineral", "mean_percent", "sd_percent", "area_share_percent",
    "dominant_share_percent", "dominant_area", "mean_interval_width"}``: ``dominant_area`` in the raster CRS's
    units squared (pixels where the mineral dominates x pixel area), ``mean_interval_width`` the mean of upper
    minus lower bound inside the zone (NaN without ``interval_path``). A pixel in two zones counts in both.
    """
    from ..engine.raster import RasterSource, pixel_area
    from ..engine.sampling import pixels_under, read_covered

    k = len(names)
    with RasterSource(abundance_path, scale=1.0) as source:
        pixels = pixels_under(geometries, source.transform, source.width, source.height, feedback=feedback)
        values, valid = read_covered(source.read, pixels)
        area = pixel_area(source.transform)
    widths = None
    if interval_path:
        with RasterSource(interval_path, scale=1.0) as source:
            bounds, ok = read_covered(source.read, pixels)
        if bounds is not None:
            bounds = bounds.astype(np.float64)
            widths = np.where(ok[:, None], bounds[:, k:2 * k] - bounds[:, :k], np.nan)
    rows = []
    for z, zone in enumerate(zone_names):
        sel = (pixels.index == z) & valid
        A = values[sel].astype(np.float64) if values is not None else np.zeros((0, k))
        n = A.shape[0]
        top = np.bincount(np.argmax(A, axis=1), minlength=k) if n else np.zeros(k, np.int64)
        W = widths[sel] if widths is not None else None
        for j, nm in enumerate(names):
            mean = float(A[:, j].mean()) if n else float("nan")
            width = float("nan")
            if W is not None and np.isfinite(W[:, j]).any():
                width = float(np.nanmean(W[:, j]))
            rows.append({"zone": str(zone), "pixels": int(n), "mineral": nm, "mean_percent": mean,
                         "sd_percent": float(A[:, j].std()) if n else float("nan"), "area_share_percent": mean,
                         "dominant_share_percent": float(100.0 * top[j] / n) if n else float("nan"),
                         "dominant_area": float(top[j] * area), "mean_interval_width": width})
    return rows
