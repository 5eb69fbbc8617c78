"""How far a projected CRS's map metre is from a ground metre at given places.

A projection true to scale where the data lie (UTM within its zone: at most 0.1 %; State Plane; a national
Albers or Lambert projection inside its country: 1-2 %) lets distances and areas be measured in map units. Web
Mercator (EPSG:3857) does not: its scale is 1 / cos(latitude), so one ground metre spans 1.5 map metres at 48
degrees and 2 at 60 degrees, and areas are off by the square of that. :func:`scale_error` measures it with the
projection's own scale factors (PROJ's ``get_factors``), so any CRS is judged, not a list of codes.
"""

import numpy as np

from . import affine_ops

#: A projected CRS whose scale differs from 1 by more than this where the data lie is not used for distances in
#: metres (point layers go to UTM, rasters are refused): UTM's 0.1 %, a State Plane zone's 0.01 % and national
#: Albers / Lambert projections (GDA94 Albers at Kalgoorlie 1.1 %, CONUS Albers at 48 N 1.0 %) pass, Web Mercator
#: beyond 13 degrees of the equator does not.
SCALE_TOLERANCE = 0.025

#: Above this, areas and lengths of mine footprints are measured on the ellipsoid rather than in map units (exact
#: either way; below it map units differ from the ground by less than 1 %).
MEASURE_TOLERANCE = 0.01


def _crs(crs):
    import pyproj

    if hasattr(crs, "to_wkt"):
        return pyproj.CRS.from_wkt(crs.to_wkt())
    return pyproj.CRS.from_user_input(crs)


def scale_error(crs, xs, ys, max_points=2000):
    """The largest ``|scale - 1|`` of ``crs`` (meridian or parallel scale) at the points ``(xs, ys)`` in its own
    coordinates; 0.0 for a CRS that is not projected, or whose scale PROJ cannot give.

    Parameters
    ----------
    crs : pyproj.CRS, rasterio CRS, WKT or "EPSG:n"
    xs, ys : array-like
        Places in the CRS's map units (x east, y north); at most ``max_points`` of them are used, evenly spaced.
    """
    import pyproj

    try:
        crs = _crs(crs)
    except pyproj.exceptions.CRSError:
        return 0.0
    if not crs.is_projected:
        return 0.0
    xs = np.asarray(xs, dtype=np.float64).reshape(-1)
    ys = np.asarray(ys, dtype=np.float64).reshape(-1)
    finite = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[finite], ys[finite]
    if not xs.size:
        return 0.0
    if xs.size > max_points:
        pick = np.linspace(0, xs.size - 1, max_points).astype(int)
        xs, ys = xs[pick], ys[pick]
    try:
        lon, lat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(xs, ys)
        factors = pyproj.Proj(crs).get_factors(lon, lat)
    except (pyproj.exceptions.ProjError, pyproj.exceptions.CRSError, ValueError, TypeError):
        return 0.0
    scales = np.concatenate([np.atleast_1d(factors.meridional_scale), np.atleast_1d(factors.parallel_scale)])
    scales = scales[np.isfinite(scales)]
    return float(np.max(np.abs(scales - 1.0))) if scales.size else 0.0


def raster_scale_error(crs, transform, width, height):
    """:func:`scale_error` at a raster's corners, edge midpoints and centre."""
    cols = np.array([0.0, width / 2.0, width, 0.0, width / 2.0, width, 0.0, width / 2.0, width])
    rows = np.array([0.0, 0.0, 0.0, height / 2.0, height / 2.0, height / 2.0, height, height, height])
    xs, ys = affine_ops.apply(transform, cols, rows)
    return scale_error(crs, xs, ys)


def not_true_to_scale(error):
    """The phrase for a log or an error: ``"its scale is off by up to 49 % here"``."""
    return f"its scale is off by up to {100.0 * error:.1f} % here"
