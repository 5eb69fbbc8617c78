"""Whole-raster mineral mapping: SAM/SID classification, linear unmixing and spectral CNN classification.

These functions join the pieces (wavelength matching, the block engine, the
per-pixel science) so that the Processing algorithms and plain Python scripts do
the same thing::

    from oremap.core.hyperspectral import mapping, spectral_library
    lib = spectral_library.read_library("minerals.sli").subset(["Kaolinite CM9", "Alunite GDS84"])
    mapping.sam_map("cube.tif", lib, "classes.tif", "angles.tif")
"""

import json
import os
import re

import numpy as np

from . import sam
from ..engine import unmixing
from ..engine.bad_bands import REASONS, scene_bad_bands
from ..engine.colors import UNCLASSIFIED, class_colours, hex_colour, legend_entries
from ..engine.compute import matmul_one_thread
from ..engine.errors import OreMapError
from ..engine.feedback import Feedback, ensure
from ..engine.raster import (SCALE_DOUBT, OutputSpec, RasterSource, class_nodata, class_raster_dtype, open_raster,
                             run_pixelwise, spectral_count)
from .library_points import library_from_points
from ..engine.wavelengths import BandInfo, band_info_from_raster, resample_spectra
from ..engine.evaluation_guard import validation_tags

SCORE_NODATA = -9999.0
ABUNDANCE_NODATA = -9999.0


def image_band_info(raster_path, wavelengths=None, fwhm=None, required=True, bad_bands=None, nodata=None,
                    scale=None, feedback=None):
    """Band centres of a raster: from ``wavelengths`` (nm) when given, else its metadata; with its bad bands.

    ``bad`` marks the bands to leave out: the raster's ENVI ``bbl`` and, unless ``bad_bands`` switches it
    off, those found in the scene (water-vapour windows, constant, negative and noisy bands; see
    :mod:`core.engine.bad_bands`), with the user's keep/drop entries (``bad_bands``: text or
    :class:`~core.engine.bad_bands.BadBandChoice`). The dropped bands are logged to ``feedback``.

    Centres may come in any order and overlap (detector by detector, as AVIRIS-Classic, PRISMA and
    EnMAP list them): the edge bands of overlapping detectors and repeated centres are flagged bad
    (:func:`core.engine.band_order.overlap_bands`) and ``feedback`` is told which. Raises
    :class:`OreMapError` (parameter ``"wavelengths"``) when neither gives one wavelength per band
    and ``required`` is True; returns None then otherwise.
    """
    from ..engine.band_order import flag_overlaps

    feedback = ensure(feedback)
    given = wavelengths is not None and len(wavelengths)
    with open_raster(raster_path) as ds:
        count = spectral_count(ds)   # an alpha band is a mask (RasterSource reads it so), not a band
        try:
            info = band_info_from_raster(ds)
        except OreMapError as exc:
            if exc.parameter != "wavelengths" or (required and not given):
                raise
            feedback.warning(f"{exc.message} They are not used.")
            info = None
    if given:
        wavelengths = np.asarray(wavelengths, dtype=float)
        if wavelengths.size != count:
            raise OreMapError(f"{wavelengths.size} wavelengths were given for a raster of {count} bands.",
                              "wavelengths", "Give exactly one wavelength per band, in nm.")
        bad = info.bad if info is not None and info.n_bands == count else np.zeros(count, bool)
        fwhm = None if fwhm is None else np.asarray(fwhm, dtype=float)
        feedback.info(f"Band centres from the wavelength parameter: {count} bands, {wavelengths.min():.0f}-"
                      f"{wavelengths.max():.0f} nm"
                      + (f", instead of those in the metadata of '{os.path.basename(str(raster_path))}' "
                         f"({info.centers.min():.0f}-{info.centers.max():.0f} nm)." if info is not None else "."))
        info, origin = BandInfo(centers=wavelengths, fwhm=fwhm, bad=bad), "the wavelength parameter"
    else:
        origin = f"the metadata of '{os.path.basename(str(raster_path))}'"
        if info is not None:
            feedback.info(f"Band centres from {origin} ({info.origin}): {info.n_bands} bands, "
                          f"{info.centers.min():.0f}-{info.centers.max():.0f} nm"
                          + ("." if info.fwhm is not None else "; no FWHM in the metadata: band widths unknown, "
                             "resampling to other bands treats them as narrow."))
    if info is None:
        if required:
            raise OreMapError(
                f"'{os.path.basename(str(raster_path))}' has no band wavelengths in its metadata, so its bands "
                "cannot be matched by wavelength (to library spectra, a model's bands or a sensor's).",
                "wavelengths",
                "Give the band centres in nm where the algorithm has a wavelength parameter, or write them into "
                "the raster (an ENVI header's 'wavelength = {...}', or GDAL band metadata 'wavelength'); for SAM "
                "and unmixing, endmembers sampled from the raster itself need none.")
        return None
    bbl = np.asarray(info.bad, bool)
    info, notes = flag_overlaps(info)
    for note in notes:
        feedback.info(f"Band centres from {origin}: {note}")
    found = scene_bad_bands(raster_path, info.centers, bbl, bad_bands, nodata=nodata, scale=scale,
                            feedback=feedback, overlap=np.asarray(info.bad, bool) & ~bbl)
    return BandInfo(centers=info.centers, fwhm=info.fwhm, bad=found.bad, origin=origin, bad_reason=list(found.reason))


#: Bad-band reasons found from one scene's statistics, which another scene (a model's training scene) may not share.
SCENE_REASONS = ("water", "negative", "noisy")

#: A raster band is a model's band when their centres differ by at most this (nm): the same sensor.
SAME_BAND_NM = 0.5


def trained_on_image(info):
    """Whether a model was trained on pixels of an image (abundance models, CNNs from labelled pixels), whose
    band list is that image's good bands; library-trained models list a sensor's bands, clean or not."""
    if (getattr(info, "extra", None) or {}).get("abundance"):
        return True
    training = getattr(info, "training", None) or {}
    if training.get("source") in ("image", "library"):
        return training["source"] == "image"
    # models saved before 0.2.2 record no source: the feature view of the check was on for image pixels only. The
    # first 0.2.0 builds record neither, so their pixel-trained models are taken for library ones: a model band
    # the scene flags is then interpolated rather than read (measured: 1.2e-4 in probability; the log says which)
    return bool((training.get("parameters") or {}).get("feature_check"))


def keep_model_bands(image_info, model_wavelengths, feedback=None, edges_only=False):
    """``image_info`` with the model's own bands read although this scene's statistics flag them.

    For models trained on image pixels (:func:`trained_on_image`), which list their scene's good bands: when this
    scene's statistics flag one of them (water vapour, negative median, noise: :data:`SCENE_REASONS`), interpolating it from the
    neighbouring good bands feeds the model values it never saw (train and predict on one raster: 5-10 times
    the abundance error), so the band is read as it is, and ``feedback`` warned. Bands flagged by the file
    (bbl), by the user, as constant or as a detector overlap stay out; model bands on them are said to be
    interpolated. With ``edges_only`` (library-trained models, whose bands are a sensor's, not a scene's good
    ones) only the flagged model bands beyond the scene's first or last good band are read, since nothing lies
    beyond them to interpolate from; the others are interpolated.
    """
    feedback = ensure(feedback)
    reasons = image_info.bad_reason
    if reasons is None or not image_info.bad.any():
        return image_info
    model_wl = np.asarray(model_wavelengths, dtype=float)
    same = np.abs(image_info.centers[:, None] - model_wl[None, :]).min(axis=1) <= SAME_BAND_NM
    why = np.asarray(reasons, dtype=object)
    restore = image_info.bad & same & np.isin(why, SCENE_REASONS)
    if edges_only:
        good = image_info.centers[~image_info.bad]
        if good.size:
            restore &= (image_info.centers < good.min()) | (image_info.centers > good.max())
    if restore.any():
        found = [f"{REASONS[r]}: {_nm_list(image_info.centers[restore & (why == r)])}"
                 for r in SCENE_REASONS if (restore & (why == r)).any()]
        feedback.warning(
            f"{int(restore.sum())} of the model's bands are flagged bad in this scene ({'; '.join(found)}): they "
            "are read as they are, since "
            + ("no good band lies beyond them to interpolate from. If they are noise in this scene, use a model "
               "without them." if edges_only else
               "the model was trained on them. If they are noise in this scene, drop them with the bad-band "
               "parameter (they are then interpolated) or retrain without them."))
        bad = image_info.bad & ~restore
        reasons = [r if b else "" for r, b in zip(reasons, bad)]
        image_info = BandInfo(centers=image_info.centers, fwhm=image_info.fwhm, bad=bad, origin=image_info.origin,
                              bad_reason=reasons)
    still = image_info.bad & same
    if still.any():
        feedback.warning(f"{int(still.sum())} of the model's bands are left out in this raster "
                         f"({_nm_list(image_info.centers[still])}): they are interpolated from the neighbouring "
                         "good bands.")
    # model bands of another grid (a 10 nm model on 5 nm bands) whose neighbouring raster bands are left out: their
    # values come from the good bands further away, which the log should say as it does for bands in common
    spacing = float(np.median(np.diff(np.sort(image_info.centers)))) if image_info.centers.size > 1 else 0.0
    apart = np.abs(image_info.centers[:, None] - model_wl[None, :])
    own = apart.min(axis=0) > SAME_BAND_NM
    near_bad = ((apart <= spacing) & image_info.bad[:, None]).any(axis=0)
    rebuilt = own & near_bad
    if spacing > 0 and rebuilt.any():
        feedback.warning(f"{int(rebuilt.sum())} of the model's bands lie where this raster's bands are left out "
                         f"({_nm_list(model_wl[rebuilt])}): they are resampled from the nearest good bands.")
    return image_info


def _nm_list(centers, limit=8):
    shown = ", ".join(f"{c:.1f}" for c in centers[:limit])
    return shown + (f" ... ({len(centers)} bands)" if len(centers) > limit else "") + " nm"


def good_band_numbers(raster_path, band_info=None, bad_bands=None, nodata=None, scale=None, feedback=None):
    """1-based numbers of the bands to read: the good bands of ``band_info``, or (a raster without
    wavelengths) the bands :mod:`core.engine.bad_bands` finds good in the scene (constant, negative and
    noisy bands by band number; the user's entries in band numbers)."""
    if band_info is None:
        found = scene_bad_bands(raster_path, None, None, bad_bands, nodata=nodata, scale=scale, feedback=feedback)
        return [int(i) + 1 for i in np.flatnonzero(found.good)]
    return [int(i) + 1 for i in np.flatnonzero(~np.asarray(band_info.bad, dtype=bool))]


LIBRARY_COVERAGE = 0.98
"""A library spectrum is compared only when it covers at least this share of the good image bands that most
spectra cover: a spectrum measured over part of the range (a VNIR-only or SWIR-only record, as splib07 holds
hundreds) would otherwise shrink the bands every spectrum is compared on to the overlap of them all."""


def match_library(library, band_info, min_bands=2, feedback=None, drop_partial=False):
    """Resample ``library`` to the image bands and choose the bands to compare on.

    With ``drop_partial`` (a whole library, no spectrum chosen by name), spectra that cover less than
    :data:`LIBRARY_COVERAGE` of the good bands most spectra cover are left out and listed in a warning (when
    others remain); otherwise every spectrum is kept and compared on the bands all of them cover.

    Returns
    -------
    bands : list of int
        1-based image bands that are good (bad-band list) and covered by every spectrum kept.
    references : ndarray (n_kept, len(bands))
    library : SpectralLibrary
        The spectra kept (``library`` itself when none is left out).
    """
    feedback = ensure(feedback)
    library.check_unique_names()
    resampled = library.resample(band_info)
    good = ~np.asarray(band_info.bad, dtype=bool)
    finite = np.isfinite(resampled.spectra)
    span = good & (finite.mean(axis=0) >= 0.5)
    if drop_partial and span.any() and len(library.names) > 1:
        keep = finite[:, span].mean(axis=1) >= LIBRARY_COVERAGE
        if keep.any() and not keep.all():
            left = [n for n, k in zip(library.names, keep) if not k]
            feedback.warning(
                f"{len(left)} of {len(keep)} spectra cover less than {100 * LIBRARY_COVERAGE:.0f} % of the "
                f"{int(span.sum())} good image bands most spectra cover (measured over part of the range) and are "
                f"left out: {', '.join(left[:12])}{', ...' if len(left) > 12 else ''}.")
            rows = np.flatnonzero(keep)
            library, resampled = library.take(rows), resampled.take(rows)
            finite = finite[rows]
    covered = finite.all(axis=0)
    usable = covered & good
    n_usable = int(usable.sum())
    lo, hi = np.nanmin(library.wavelengths), np.nanmax(library.wavelengths)
    good_centers = band_info.centers[good]
    good_lo, good_hi = (good_centers.min(), good_centers.max()) if good_centers.size else (np.nan, np.nan)
    overlap = good.any() and lo <= good_hi and hi >= good_lo
    if n_usable == 0 and overlap and len(library.names) > 1:  # the ranges overlap: spectra measured over part of it
        partial = [n for n, row in zip(library.names, finite) if row[good].mean() < LIBRARY_COVERAGE]
        raise OreMapError(
            f"No good image band is covered by every one of the {len(library.names)} library spectra: "
            + (f"{len(partial)} of them were measured over part of the range only ({', '.join(partial[:5])}"
               f"{', ...' if len(partial) > 5 else ''})." if partial else "each band is missing from some spectrum."),
            "library", "Name the spectra to use (e.g. the endmembers), leaving out those measured over part of the "
            "range.")
    if n_usable == 0:
        raise OreMapError(
            f"The library ({lo:.0f}-{hi:.0f} nm) does not overlap the image's good bands "
            f"({good_lo:.0f}-{good_hi:.0f} nm)" + (" in a band every spectrum covers." if len(library.names) > 1 else "."),
            "library", "Use a library that covers the image's wavelength range, or check the wavelength units.")
    if n_usable < min_bands and n_usable == int(good.sum()):   # the library covers every good band: the image is short
        raise OreMapError(
            f"The image has only {n_usable} good bands, and {min_bands} are needed to separate {min_bands} spectra.",
            "raster", f"Use at most {n_usable} spectra (endmembers), or an image with more bands.")
    if n_usable < min_bands:
        raise OreMapError(
            f"Only {n_usable} image bands are covered by the library, {min_bands} are needed.",
            "library", "Use a library that covers more of the image's wavelength range.")
    n_bad = int((~good).sum())
    feedback.info(f"Comparing on {n_usable} of {band_info.n_bands} bands "
                  f"({n_bad} bad bands, {int((~covered & good).sum())} good bands not covered by the library).")
    if len(library.names) > 1 and n_usable < 0.8 * int(good.sum()):
        share = finite[:, good].mean(axis=1)
        short = [n for n, s in zip(library.names, share) if s < share.max() - 0.05]
        if short:
            feedback.warning(f"Every spectrum is compared on the {n_usable} of {int(good.sum())} good bands all of "
                             "them cover: " + ", ".join(short[:8]) + (" ..." if len(short) > 8 else "")
                             + (" covers" if len(short) == 1 else " cover")
                             + " less of the range than the others, so the features outside it (e.g. the "
                               "short-wave infrared of clays) are not compared. Leave them out of the spectra to "
                               "compare on more bands.")
    bands = [int(i) + 1 for i in np.flatnonzero(usable)]
    return bands, resampled.spectra[:, usable], library


def reference_spectra(raster_path, spectra, band_info=None, image_bands=None, min_bands=2, feedback=None,
                      drop_partial=False):
    """Reference spectra as a matrix on the image bands to compare on: ``(bands, matrix (n, len(bands)),
    library)``, the library being the spectra kept (see :func:`match_library`).

    ``spectra`` sampled from the raster itself come with ``image_bands`` (the 1-based
    bands they were read from) and are used as they are; library spectra are
    resampled by wavelength to ``band_info`` (read from the raster when None).
    """
    if image_bands is not None:
        spectra.check_unique_names()
        return list(image_bands), np.asarray(spectra.spectra, dtype=float), spectra
    band_info = band_info or image_band_info(raster_path, feedback=feedback)
    return match_library(spectra, band_info, min_bands=min_bands, feedback=feedback, drop_partial=drop_partial)


def reference_matrix(raster_path, spectra, band_info=None, image_bands=None, min_bands=2, feedback=None):
    """``(bands, matrix)`` of :func:`reference_spectra`."""
    return reference_spectra(raster_path, spectra, band_info, image_bands, min_bands, feedback)[:2]


def sample_endmembers(raster_path, xs, ys, names, band_info=None, nodata=None, scale=None, feedback=None,
                      bad_bands=None):
    """Endmember spectra averaged over points on the raster (same names averaged).

    Bad bands (from ``band_info``, else found in the raster: :func:`image_band_info`,
    :func:`good_band_numbers`) are left out; masking and reflectance scaling are those
    the block engine applies to the same raster and bands. Returns ``(library, image_bands)``.
    """
    feedback = ensure(feedback)
    if band_info is None:
        band_info = image_band_info(raster_path, required=False, bad_bands=bad_bands, nodata=nodata, scale=scale,
                                    feedback=feedback)
    bands = good_band_numbers(raster_path, band_info, bad_bands, nodata, scale, feedback)
    with RasterSource(raster_path, bands=bands, nodata=nodata, scale=scale, fill_spectra=True) as src:
        library = library_from_points(src, list(zip(xs, ys)), names,
                                      band_info=band_info, feedback=feedback)
        bands = list(src.bands)
    feedback.info(f"{len(names)} endmember points give {len(library.names)} endmembers: "
                  + ", ".join(library.names))
    return library, bands


UNSURE = 0.5
"""Confidence below which :func:`cnn_classify_map` counts a classified pixel as unsure (in the log)."""


def _class_output(path, names, what, colours=None, tags=None):
    n = len(names)
    colours = colours or class_colours(names)
    colormap = {0: UNCLASSIFIED + (255,)}
    colormap.update({i + 1: tuple(c) + (255,) for i, c in enumerate(colours)})
    legend = [{"value": 0, "name": "Unclassified", "color": hex_colour(UNCLASSIFIED)}]
    legend += legend_entries(names, colours)
    spec = OutputSpec(path=path, band_names=[what], dtype=class_raster_dtype(n), nodata=class_nodata(n),
                      colormap=colormap, tags={"OREMAP_CLASSES": json.dumps(legend), **(tags or {})})
    return spec, legend


def sam_map(raster_path, library, class_path, score_path=None, method="sam", threshold=None,
            band_info=None, image_bands=None, scale=None, nodata=None, memory_mb=None, feedback=None,
            whole_library=False):
    """Classify a hyperspectral raster by SAM or SID against a spectral library.

    Parameters
    ----------
    raster_path : str
    library : SpectralLibrary
        Reference spectra (any wavelength sampling: they are resampled to the image).
    class_path : str
        Output class raster: 1..n = library spectra in order, 0 = unclassified.
    score_path : str, optional
        Output raster of the best angle (radians) or divergence.
    method : {"sam", "sid"}
    threshold : float, optional
        Largest accepted angle (radians) / divergence; worse pixels are unclassified.
    band_info, image_bands :
        See :func:`reference_matrix`.
    whole_library : bool
        ``library`` is a whole library (no spectrum chosen by name): its spectra measured over part of the
        range are left out (:func:`match_library`), not the bands they miss.

    Returns
    -------
    dict with ``legend`` (list of class dicts), ``class_counts`` and engine stats.
    """
    feedback = ensure(feedback)
    bands, refs, library = reference_spectra(raster_path, library, band_info, image_bands, feedback=feedback,
                                             drop_partial=whole_library)
    label = "SAM class" if method == "sam" else "SID class"
    class_spec, legend = _class_output(class_path, library.names, label)
    outputs = [class_spec]
    if score_path:
        what = "spectral angle (rad)" if method == "sam" else "spectral information divergence"
        outputs.append(OutputSpec(score_path, [what], "float32", SCORE_NODATA,
                                  tags={"OREMAP_METHOD": method}))
    counts = np.zeros(len(library.names) + 1, dtype=np.int64)

    def per_block(pixels):
        classes, score = sam.classify(pixels, refs, method=method, threshold=threshold)
        counts[:] += np.bincount(classes, minlength=counts.size)
        return (classes, score) if score_path else (classes,)

    with RasterSource(raster_path, bands=bands, nodata=nodata, scale=scale, feedback=feedback,
                      fill_spectra=True) as src:
        stats = run_pixelwise(src, outputs, per_block, memory_mb=memory_mb,
                              work_bytes_per_pixel=sam.work_bytes_per_pixel(len(bands), len(library.names), method),
                              feedback=feedback)
    stats["class_counts"] = {"Unclassified": int(counts[0]),
                             **{n: int(c) for n, c in zip(library.names, counts[1:])}}
    stats["bands_used"] = len(bands)
    stats["legend"] = legend
    return stats


# The residual bands after the abundance bands, per mode. Strict: the residual of the abundances themselves.
# Non-negative then closed: the residual of the non-negative fit (free brightness), then that of the closed
# abundances at the endmembers' brightness (large when the image is darker or brighter than the endmembers).
RESIDUAL_BANDS = {
    "fcls": ["RMSE (fully constrained fit)"],
    "nn_closed": ["RMSE (non-negative fit)", "RMSE (closed abundances)"],
}

UNMIX_MODES = {
    "fcls": "fully constrained (abundances >= 0, sum exactly 1)",
    "nn_closed": "non-negative, then closed to sum 1 (scale-invariant)",
}


def no_fit_note(n):
    """The note on ``n`` valid pixels without a non-negative fit (:func:`unmix_map`; a batch totals a split scene)."""
    return (f"{n} pixels have no non-negative fit (every abundance zero: dark or negative spectra): their "
            "abundances are nodata, and the means leave them out.")


def unmix_map(raster_path, endmembers, out_path, mode="fcls", band_info=None, image_bands=None,
              scale=None, nodata=None, memory_mb=None, feedback=None):
    """Unmix every pixel into endmember abundances.

    Parameters
    ----------
    endmembers : SpectralLibrary
        Endmember spectra, see :func:`reference_matrix` for ``band_info`` and
        ``image_bands``.
    out_path : str
        Output raster: one float32 abundance band per endmember (described by its
        name), then the residual RMSE band(s) of :data:`RESIDUAL_BANDS`: one for
        "fcls" (the fit), two for "nn_closed" (the non-negative fit, then the
        closed abundances).
    mode : {"fcls", "nn_closed"}

    Returns
    -------
    dict with ``mean_abundance`` per endmember, ``mean_rmse`` (and for "nn_closed"
    ``mean_closed_rmse``), all over the ``unmixed_pixels`` (the valid pixels with abundances: an all-zero
    non-negative fit has none), and engine stats.
    """
    feedback = ensure(feedback)
    if mode not in UNMIX_MODES:
        raise OreMapError(f"Unknown unmixing mode '{mode}'.", "mode", f"Use one of {sorted(UNMIX_MODES)}.")
    names = list(endmembers.names)
    if len(names) < 2:
        raise OreMapError(f"Unmixing needs at least 2 endmembers, {len(names)} given.", "endmembers",
                          "Choose more spectra (or more named points).")
    bands, E = reference_matrix(raster_path, endmembers, band_info, image_bands, min_bands=len(names),
                                feedback=feedback)
    unmixing.check_endmembers(E.T, names)
    same = unmixing.same_shape_pairs(E.T, names)
    if same:
        pairs = "; ".join(f"'{a}' and '{b}' ({np.degrees(angle):.2f} degrees)" for a, b, angle in same[:5])
        more = f" and {len(same) - 5} more pairs" if len(same) > 5 else ""
        feedback.warning(f"Endmembers of nearly the same spectral shape: {pairs}{more}. Unmixing cannot tell them "
                         "apart, so the abundance they share is split between them arbitrarily (by noise and "
                         "brightness). Keep one of each pair, or add their abundance bands up.")
    feedback.info(f"Unmixing with {len(names)} endmembers on {len(bands)} bands, mode: {UNMIX_MODES[mode]}.")
    closed = mode == "nn_closed"
    residual_bands = RESIDUAL_BANDS[mode]
    sums = np.zeros(len(names) + len(residual_bands))
    n_good = np.zeros(1, dtype=np.int64)   # pixels with abundances (nn_closed: an all-zero fit has none)
    mismatch = np.zeros(4)  # evidence of a brightness-scale mismatch (strict mode): unmixing.scale_sums

    def per_block(pixels):
        abundances, rmse = unmixing.unmix(pixels, E.T, mode=mode)
        columns = [abundances, rmse]
        if closed:
            columns.append(unmixing.reconstruction_rmse(pixels, abundances, E.T))
        else:
            mismatch[:] += unmixing.scale_sums(pixels, E.T, rmse)
        good = np.isfinite(abundances).all(axis=1)
        block = np.column_stack(columns)
        sums[:] += block[good].sum(axis=0)
        n_good[0] += int(good.sum())
        block[~np.isfinite(block)] = ABUNDANCE_NODATA   # no fit: the declared nodata, not NaN (GDAL's mask keeps NaN)
        return (block,)

    out = OutputSpec(out_path, names + residual_bands, "float32", ABUNDANCE_NODATA,
                     tags={"OREMAP_UNMIXING_MODE": mode, "OREMAP_ENDMEMBERS": json.dumps(names)})
    work, fixed = unmixing.block_bytes(len(bands), len(names))
    with RasterSource(raster_path, bands=bands, nodata=nodata, scale=scale, feedback=feedback,
                      fill_spectra=True) as src:
        stats = run_pixelwise(src, [out], per_block, memory_mb=memory_mb, work_bytes_per_pixel=work,
                              fixed_bytes=fixed, feedback=feedback)
    stats["unmixed_pixels"] = int(n_good[0])
    if n_good[0] < stats["valid_pixels"]:
        feedback.info(no_fit_note(stats["valid_pixels"] - int(n_good[0])))
    n = max(int(n_good[0]), 1)   # the means are over the pixels with abundances, not over every valid pixel
    stats["mean_abundance"] = {name: float(s / n) for name, s in zip(names, sums[:len(names)])}
    stats["mean_rmse"] = float(sums[len(names)] / n)
    if closed:
        stats["mean_closed_rmse"] = float(sums[len(names) + 1] / n)
    else:
        stats["scale_sums"] = [float(v) for v in mismatch]   # a batch adds a split scene's parts' sums
        stats["scale_hint"] = unmixing.scale_mismatch_hint(mismatch, stats["mean_abundance"])
        if stats["scale_hint"]:
            feedback.warning(stats["scale_hint"])
    stats["bands_used"] = len(bands)
    return stats


def resampling_operator(image_info, model_wavelengths, model_fwhm=None):
    """How to turn image spectra into spectra at a model's wavelengths.

    Returns ``(bands, matrix)``: the 1-based image bands to read and a (len(bands), n_model)
    matrix with ``model_spectra = image_spectra @ matrix`` (resampling is linear, so the
    operator is the resampling of unit impulses). ``matrix`` is None when the image bands
    are the model's bands (each model band is a good image band, centres within 0.5 nm): they are
    read as they are. A model band at most one FWHM (and at least 5 nm) beyond the image's range
    takes the image's edge band.
    Raises :class:`OreMapError` when the image's good bands do not cover the model's range.
    """
    model_wl = np.asarray(model_wavelengths, dtype=float)
    good = ~np.asarray(image_info.bad, dtype=bool)
    centers = image_info.centers[good]
    first, last = int(np.argmin(centers)), int(np.argmax(centers))  # edge bands (any band order)
    # every model band is one of the image's good bands: read those bands as they are
    nearest = np.abs(centers[None, :] - model_wl[:, None]).argmin(axis=1)
    if np.all(np.abs(centers[nearest] - model_wl) <= 0.5):
        return [int(np.flatnonzero(good)[i]) + 1 for i in nearest], None
    if np.unique(centers).size < 2:   # nothing to resample from (the resampler blamed WAVELENGTHS, never set)
        origin = getattr(image_info, "origin", None)
        raise OreMapError(
            f"The raster has {np.unique(centers).size} good band"
            f"{'' if np.unique(centers).size == 1 else 's'}"
            f"{' (' + ', '.join(f'{c:.0f}' for c in np.unique(centers)) + ' nm)' if centers.size else ''}"
            f"{', wavelengths from ' + origin if origin else ''}: the model's {model_wl.size} bands "
            f"({model_wl.min():.0f}-{model_wl.max():.0f} nm) cannot be made from it.",
            "raster", "Use a raster covering the model's range, or a model trained for this sensor.")
    fwhm = None if image_info.fwhm is None else image_info.fwhm[good]
    model_fwhm = None if model_fwhm is None else np.asarray(model_fwhm, float)
    target = BandInfo(centers=model_wl, fwhm=model_fwhm, bad=np.zeros(model_wl.size, bool))
    matrix = resample_spectra(np.eye(centers.size), centers, target, src_fwhm=fwhm)  # (n_image, n_model)
    uncovered = ~np.all(np.isfinite(matrix), axis=0)
    # a model band just beyond the image's range (within its FWHM, at least 5 nm) takes the edge band
    reach = np.maximum(model_fwhm if model_fwhm is not None else 0.0, 5.0) * np.ones(model_wl.size)
    for j in np.flatnonzero(uncovered):
        for edge, beyond in ((first, centers[first] - model_wl[j]), (last, model_wl[j] - centers[last])):
            if 0 < beyond <= reach[j]:
                matrix[:, j] = 0.0
                matrix[edge, j] = 1.0
                uncovered[j] = False
    if uncovered.any():
        gaps = model_wl[uncovered]
        origin = getattr(image_info, "origin", None)
        raise OreMapError(
            f"The raster's good bands ({centers.min():.0f}-{centers.max():.0f} nm"
            f"{', wavelengths from ' + origin if origin else ''}) do not cover the model's "
            f"wavelengths: {uncovered.sum()} of {model_wl.size} model bands are missing "
            f"({gaps.min():.0f}-{gaps.max():.0f} nm).",
            "raster", "Use a raster covering the model's range, or a model trained for this sensor.")
    bands = [int(i) + 1 for i in np.flatnonzero(good)]
    return bands, matrix.astype(np.float32)


def _band_name(name):
    """A band's own name: without QGIS's ``"Band 3: "`` before it; ``""`` for none (``"Band 3"``, empty)."""
    return re.sub(r"^\s*band\s*\d+\s*(:|$)", "", str(name or ""), flags=re.IGNORECASE).strip()


def _bands_by_name(raster_path, info, feedback):
    """``(bands, None)`` for a model without wavelengths: its bands found by the names it records, or in order.

    A model trained on a raster without wavelengths records that raster's band names (``"Band 1: Blue"``). When
    the raster's bands are named too (band descriptions), each model band is the raster band of its name, whatever
    the order (``bands`` None when they are all of them, in order); a model band without one is refused. Bands
    without names (``"Band i"``) are taken in order, with a note.
    """
    from ..engine.names import name_key

    with open_raster(raster_path) as ds:
        count = spectral_count(ds)
        names = [_band_name(d) for d in ds.descriptions[:count]]
    wanted = [_band_name(n) for n in info.band_names or []]
    if len(wanted) == info.n_bands and all(wanted) and any(names):
        keys = {}
        for i, name in enumerate(names, start=1):
            if name:
                keys.setdefault(name_key(name), i)
        missing = [w for w in wanted if name_key(w) not in keys]
        if missing:
            raise OreMapError(
                f"The raster's bands are not those the model was trained on: none is named "
                f"{', '.join(repr(m) for m in missing)} (the model's bands: {', '.join(wanted)}; the raster's: "
                f"{', '.join(n or f'Band {i}' for i, n in enumerate(names, start=1))}).", "raster",
                "Choose a raster with the model's bands, named as in the training raster (band descriptions), in any "
                "order; or name its bands so (GDAL band descriptions).")
        bands = [keys[name_key(w)] for w in wanted]
        if bands == list(range(1, count + 1)):
            return None, None
        feedback.info(f"The raster's bands are matched to the model's by name: bands {', '.join(map(str, bands))} "
                      f"are the model's {', '.join(wanted)}" + (f"; its other {count - len(bands)} bands are not read."
                                                                 if count > len(bands) else "."))
        return bands, None
    if count != info.n_bands:
        raise OreMapError(f"The model expects {info.n_bands} bands, the raster has {count}.",
                          "raster", "Use a raster with the bands the model was trained on.")
    if any(wanted) and not any(names):
        feedback.info(f"The raster's bands have no names (band descriptions): they are read in order as the model's "
                      f"{', '.join(n or f'band {i}' for i, n in enumerate(wanted, start=1))}.")
    return None, None


def model_input(raster_path, info, band_info=None, feedback=None):
    """Which raster bands feed a model, and how: ``(bands, matrix)`` as :func:`resampling_operator`.

    A model that knows its wavelengths gets the raster's good bands resampled to them (or the
    matching bands as they are); a model without wavelengths gets the raster's bands of the names it
    records, or, when the raster's bands have none, needs a raster with exactly its number of bands
    (``bands`` None: all of them, in order; see :func:`_bands_by_name`).
    """
    feedback = ensure(feedback)
    if info.wavelengths:
        image_info = band_info or image_band_info(raster_path, feedback=feedback)
        # an image-trained model's bands were good in its scene: read them here too; a library model's only
        # where they cannot be interpolated
        image_info = keep_model_bands(image_info, info.wavelengths, feedback, edges_only=not trained_on_image(info))
        bands, matrix = resampling_operator(image_info, info.wavelengths, info.fwhm)
        if matrix is not None:
            feedback.info(f"The raster's {len(bands)} good bands are resampled to the model's "
                          f"{len(info.wavelengths)} wavelengths ({info.wavelengths[0]:.0f}-"
                          f"{info.wavelengths[-1]:.0f} nm).")
        return bands, matrix
    return _bands_by_name(raster_path, info, feedback)


#: Spectra per onnxruntime call when classifying a raster (its activations are reserved whatever the block size).
CNN_BATCH_ROWS = 1024


def model_scale_note(method):
    """What the scale of the values does to a model with preprocessing ``method`` (a sentence for the log)."""
    from ..engine.spectra import PREPROCESSING

    if method == "none":
        return ("This model's preprocessing is 'none': its classes depend on the scale. Give the reflectance scale "
                "factor that puts the values on the scale of the spectra it was trained on (reflectance of 0-1, unless "
                "its training raster was read otherwise).")
    label = dict(PREPROCESSING).get(method, method)
    return f"This model's preprocessing, {label[0].lower() + label[1:]}, makes its classes independent of the scale."


class _ModelScaleNote(Feedback):
    """Feedback for the :class:`RasterSource` of a model's input: its warning that the values are not reflectance of
    0-1 (:data:`core.engine.raster.SCALE_DOUBT`) goes on with :func:`model_scale_note`; the rest passes on."""

    def __init__(self, feedback, method):
        self._feedback, self._method = feedback, method

    def info(self, message):
        self._feedback.info(message)

    def warning(self, message):
        if str(message).startswith(SCALE_DOUBT):
            message = f"{message} {model_scale_note(self._method)}"
        self._feedback.warning(message)


def cnn_block_bytes(model, resampled, batch_size, ood=True):
    """``(bytes per valid pixel, bytes whatever the block size)`` of :func:`cnn_classify_map`'s work on a block
    (measured, bench/bench_rss.py): the spectra resampled to the model's bands (float32), the preprocessing
    (:func:`core.engine.spectra.preprocess_bytes`), the probabilities of the batches and their concatenation,
    classes, confidence and angle; fixed: one batch of onnxruntime's activations
    (:func:`core.engine.onnx_memory.activation_bytes_per_row`), a chunk of the preprocessing and of the
    out-of-distribution angles."""
    from ..engine.spectra import preprocess_bytes
    from .ood import angles_bytes

    info = model.info
    m, k = info.n_bands, len(info.class_names)
    pre_row, pre_fixed = preprocess_bytes(info.preprocessing_method, m)
    work = (4 * m if resampled else 0) + max(pre_row, 4 * m) + 12 * k + 48
    fixed = pre_fixed + int(batch_size) * model.activation_bytes_per_row
    if ood:
        fixed += angles_bytes(info)
    return work, fixed


def cnn_classify_map(raster_path, model_path, class_path, probability_path=None, confidence_path=None,
                     min_confidence=None, threads=None, band_info=None, scale=None, nodata=None,
                     memory_mb=None, batch_size=None, feedback=None, ood=True, log_counts=True):
    """Classify every pixel with an OreMap ONNX spectral classifier.

    The image spectra are resampled to the model's wavelengths when its bands differ,
    preprocessed as the model was trained, and run through onnxruntime in batches of
    ``batch_size`` rows (:data:`CNN_BATCH_ROWS` by default; :func:`core.hyperspectral.spectral_cnn.predict_proba`).
    Pixels whose highest probability is below ``min_confidence`` are unclassified (0), and so (with ``ood``) are pixels the model's
    out-of-distribution check rejects: their spectral angle to the nearest exemplar of their class (mean
    spectrum of a training sample or polygon) exceeds that class's threshold in one of the model's views
    (:mod:`core.hyperspectral.ood`); their probabilities and confidence are still written.

    The counts of pixels left unclassified by the check and of low confidence are logged
    (:func:`classification_notes`) unless ``log_counts`` is False (a batch logs a scene's totals over its parts).

    Returns
    -------
    dict with ``legend``, ``class_counts``, ``out_of_distribution``, ``ood_checked``, ``low_confidence``,
    ``resampled`` (bool), ``providers`` and engine stats.
    """
    from ..engine.model_format import OnnxModel
    from .ood import check_of as ood_check, describe, out_of_distribution
    from .spectral_cnn import predict_proba

    batch_size = CNN_BATCH_ROWS if batch_size is None else int(batch_size)

    feedback = ensure(feedback)
    from ..engine.model_task import check_task

    model = OnnxModel(model_path, threads=threads)
    info = model.info
    check_task(info, "spectral_classification", model_path)
    names = info.class_names
    bands, matrix = model_input(raster_path, info, band_info, feedback)
    feedback.info(f"Model: {len(names)} classes, preprocessing '{info.preprocessing_method}', onnxruntime on "
                  f"{', '.join(model.providers_used)}.")

    metrics = (info.training or {}).get("metrics") or {}
    validation = validation_tags(os.path.basename(str(model_path)), "overall accuracy", metrics.get("val_accuracy"))
    class_spec, legend = _class_output(class_path, names, "CNN class", info.class_rgb, tags=validation)
    outputs = [class_spec]
    if probability_path:
        outputs.append(OutputSpec(probability_path, [f"P({n})" for n in names], "float32", -1.0))
    if confidence_path:
        outputs.append(OutputSpec(confidence_path, ["confidence"], "float32", -1.0))
    counts = np.zeros(len(names) + 1, dtype=np.int64)
    check = ood_check(info) if ood else None
    if check is not None:
        feedback.info("Out-of-distribution check: a pixel whose spectral angle to the nearest exemplar of its class exceeds "
                      f"the model's threshold for that class in any view ({describe(info)}) is left unclassified.")
    elif ood:
        feedback.info("The model stores no class exemplars: no out-of-distribution check (rebuild or retrain it "
                      "with this OreMap version to get one).")
    n_far = np.zeros(1, dtype=np.int64)
    n_unsure = np.zeros(1, dtype=np.int64)  # classified, with a confidence below UNSURE

    def per_block(pixels):
        spectra = pixels if matrix is None else matmul_one_thread(pixels, matrix)
        probs, angle = predict_proba(model, spectra, batch_size=batch_size, with_angle=True)
        confidence = probs.max(axis=1)
        classes = probs.argmax(axis=1).astype(np.int32) + 1
        if check is not None:
            far = out_of_distribution(info, angle, classes - 1)
            n_far[0] += int(far.sum())
            classes[far] = 0
        if min_confidence:
            classes[confidence < min_confidence] = 0
        n_unsure[0] += int(((classes > 0) & (confidence < UNSURE)).sum())
        counts[:] += np.bincount(classes, minlength=counts.size)
        results = [classes]
        if probability_path:
            results.append(probs)
        if confidence_path:
            results.append(confidence)
        return results

    work, fixed = cnn_block_bytes(model, matrix is not None, batch_size, ood=check is not None)
    with RasterSource(raster_path, bands=bands, nodata=nodata, scale=scale,
                      feedback=_ModelScaleNote(feedback, info.preprocessing_method), fill_spectra=True) as src:
        stats = run_pixelwise(src, outputs, per_block, memory_mb=memory_mb, work_bytes_per_pixel=work,
                              fixed_bytes=fixed, feedback=feedback)
    stats["class_counts"] = {"Unclassified": int(counts[0]),
                             **{n: int(c) for n, c in zip(names, counts[1:])}}
    stats["legend"] = legend
    stats["resampled"] = matrix is not None
    stats["providers"] = list(model.providers_used)
    stats["out_of_distribution"] = int(n_far[0])
    stats["ood_checked"] = check is not None
    stats["low_confidence"] = int(n_unsure[0])
    if log_counts:
        for note in classification_notes(stats):
            feedback.info(note)
    return stats


def classification_notes(stats):
    """The log lines of :func:`cnn_classify_map`'s counts (``stats``, or a batch scene's counts added over its
    parts): the pixels the out-of-distribution check left unclassified, and the classified pixels of low
    confidence."""
    notes = []
    if stats.get("ood_checked"):
        notes.append(f"{int(stats.get('out_of_distribution', 0))} pixels unlike the training spectra of their class "
                     "left unclassified.")
    unsure = int(stats.get("low_confidence", 0))
    if unsure:
        n_classified = max(sum(int(v) for k, v in (stats.get("class_counts") or {}).items() if k != "Unclassified"), 1)
        notes.append(f"{unsure} classified pixels ({100 * unsure / n_classified:.0f} %) have a confidence below "
                     f"{UNSURE}: the model is unsure of them. Set a minimum confidence to leave them unclassified, or "
                     "look at the confidence output.")
    return notes
