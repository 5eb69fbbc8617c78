"""Spectral libraries from an image: the spectra of the pixels under named points, with the image's
band wavelengths.
"""

import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.sampling import pixels_under, read_covered
from ..engine.raster import spectral_count
from .spectral_library import SpectralLibrary, _listing


def _point_list(indexes, names, limit=5):
    return _listing([f"point {i + 1} '{names[i]}'" for i in indexes], limit)


def library_from_points(source, xy, names, band_info=None, feedback=None):
    # Over 100 lines by its docstring (every parameter documented); the code is 77 lines.
    """Build a library from raster pixels at points (image endmembers).

    Parameters
    ----------
    source : core.engine.raster.RasterSource
        The open raster: its ``bands`` are the 1-based bands read, and its
        :meth:`~core.engine.raster.RasterSource.read` applies the masking (the
        raster's and the user's nodata, NaN) and reflectance scaling of the
        block engine, so endmembers match the pixels they are compared with.
    xy : array-like of shape (n_points, 2)
        Point coordinates ``(x, y)`` in the raster's CRS. The pixel holding
        each point is found with the inverse of the raster's affine transform
        (:func:`~core.engine.sampling.pixels_under`), so rotated grids are handled.
    names : sequence of str
        Endmember name of each point; points sharing a name are averaged.
    band_info : BandInfo, optional
        Wavelengths of all the raster's bands; those of ``source.bands`` are
        kept. ``None``: the spectra are indexed by band number.
    feedback : Feedback, optional
        Told about averaged names and missing wavelengths.

    Returns
    -------
    SpectralLibrary
        One spectrum per distinct name in order of first appearance, on
        ``source.bands``, with ``n_points`` the number of points averaged.
        Without ``band_info``, ``wavelengths`` holds the band numbers read and
        ``wavelengths_known`` is ``False``.

    Raises
    ------
    OreMapError
        ``parameter="endmembers"`` for no points, empty names, a count of
        names not matching the points, points outside the raster, or points
        whose pixel is invalid (nodata, NaN) in any band read, as the block
        engine would skip it (points are numbered from 1 in the order given).
        ``parameter="wavelengths"`` when ``band_info`` does not describe
        every band of the raster.
    """
    from shapely.geometry import Point

    feedback = ensure(feedback)
    xy = np.asarray(xy, dtype=np.float64)
    names = [str(n).strip() if n is not None else "" for n in names]
    if xy.size == 0 and not names:
        raise OreMapError("No endmember points were given.", parameter="endmembers",
                          fix="Give at least one point with an endmember name.")
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise OreMapError("Endmember points must be given as (x, y) pairs.", parameter="endmembers")
    if len(names) != xy.shape[0]:
        raise OreMapError(f"{xy.shape[0]} endmember points but {len(names)} names.", parameter="endmembers")
    unnamed = [i for i, n in enumerate(names) if not n]
    if unnamed:
        raise OreMapError(
            f"{len(unnamed)} endmember points have no name: "
            + _listing([f"point {i + 1}" for i in unnamed]) + ".",
            parameter="endmembers",
            fix="Fill the name field of every endmember point.",
        )
    if band_info is not None and band_info.n_bands != spectral_count(source.dataset):
        raise OreMapError(
            f"{band_info.n_bands} wavelengths were given for a raster of {spectral_count(source.dataset)} bands.",
            parameter="wavelengths",
            fix="Give exactly one wavelength per band, in nm.",
        )

    finite = np.all(np.isfinite(xy), axis=1)
    points = [Point(x, y) if ok else None for (x, y), ok in zip(xy, finite)]
    pixels = pixels_under(points, source.transform, source.width, source.height)
    outside = sorted(set(range(len(points))) - set(pixels.index.tolist()))
    if outside:
        raise OreMapError(
            f"{len(outside)} endmember points lie outside the raster: {_point_list(outside, names)}.",
            parameter="endmembers",
            fix="Move the points onto the image, and check they use the raster's CRS.",
        )
    values, valid = read_covered(source.read, pixels)
    reflectance = np.empty((len(points), source.n_bands), dtype=np.float64)
    reflectance[pixels.index] = values
    ok = np.zeros(len(points), dtype=bool)
    ok[pixels.index] = valid
    if not ok.all():
        bad = list(np.flatnonzero(~ok))
        raise OreMapError(
            f"{len(bad)} endmember points fall on pixels that are nodata in at least one band: "
            f"{_point_list(bad, names)}.",
            parameter="endmembers",
            fix="Move the points onto valid image pixels, or check the nodata value.",
        )

    unique = list(dict.fromkeys(names))
    groups = [[i for i, n in enumerate(names) if n == name] for name in unique]
    spectra = np.array([reflectance[g].mean(axis=0) for g in groups])
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    averaged = int((counts > 1).sum())
    description = f"{source.path}: {len(points)} points, {len(unique)} endmembers"
    if averaged:
        description += f" ({averaged} averaged over several points)"
        shared = ", ".join(f"{name} ({n} points)" for name, n in zip(unique, counts) if n > 1)
        feedback.info(f"Points sharing a name are averaged into one endmember: {shared}.")

    index = np.array(source.bands) - 1
    if band_info is not None:
        wavelengths, known = band_info.centers[index], True
        fwhm = None if band_info.fwhm is None else band_info.fwhm[index]
    else:
        wavelengths, fwhm, known = np.array(source.bands, dtype=np.float64), None, False
        feedback.warning("The raster has no band wavelengths; endmember spectra are indexed by band number.")
    return SpectralLibrary(
        names=unique,
        spectra=spectra,
        wavelengths=wavelengths,
        fwhm=fwhm,
        source=description,
        wavelengths_known=known,
        n_points=counts,
    )
