"""Areas, lengths and pixel sizes in metres for a raster in any CRS.

Sentinel-2 chips often come in geographic coordinates (EPSG:4326, pixels of about 9e-5 degrees);
areas in square degrees mean nothing to a user who filters footprints in hectares. Here:

* projected CRSs true to scale where the raster lies (UTM, State Plane: :mod:`core.engine.map_scale`): map units
  times the CRS's linear unit (metre, US foot ...);
* projected CRSs that are not, anywhere in the raster (Web Mercator, whose scale is 1 / cos(latitude); a UTM zone
  stretched far beyond its 6 degrees): measured on the ellipsoid, as geographic ones, after taking the coordinates
  to the CRS's own longitude and latitude; a pixel's area is measured on the ellipsoid at :data:`SAMPLE_COLUMNS`
  columns of its row and interpolated linearly between them;
* geographic CRSs (north-up rasters): the area of a pixel is that of its latitude-longitude
  quadrangle on the CRS's ellipsoid, exactly (the authalic formula: ``b^2 / 2 * dlambda *
  [q(phi2) - q(phi1)]``), so it changes from row to row; lengths are geodesic on the ellipsoid
  (``pyproj.Geod``), a polygon's every ring counted (its holes too, as shapely's ``length`` and QGIS's
  perimeter count them);
* no CRS: map units are taken as metres.
"""

import math

import numpy as np

from ..engine import affine_ops
from ..engine.errors import OreMapError
from ..engine.map_scale import MEASURE_TOLERANCE, raster_scale_error
from ..engine.raster import pixel_area

#: Columns of a row (evenly spaced, both edges included) at which the pixel area of a projected CRS not true to scale
#: is measured on the ellipsoid; linear between them, off by about ``(spacing / 6371 km)^2 / 4``: 6e-5 for a raster
#: 800 km wide, 1e-3 for one 3200 km wide.
SAMPLE_COLUMNS = 9


def _pyproj_crs(crs):
    import pyproj

    if crs is None:
        return None
    return pyproj.CRS.from_wkt(crs.to_wkt()) if hasattr(crs, "to_wkt") else pyproj.CRS.from_user_input(crs)


class GroundUnits:
    """Metres of a raster grid of ``width`` x ``height`` pixels: :meth:`pixel_areas` (m2 of given pixels),
    :meth:`row_pixel_area` (m2 per pixel, per row), :meth:`length_m` and :meth:`area_m2` of geometries in the
    raster's CRS, :meth:`pixel_size_m`. Whether a projected CRS is true to scale is judged over the whole grid."""

    def __init__(self, transform, crs, width=1, height=1):
        self.transform = transform
        self.crs = _pyproj_crs(crs)
        self.geographic = bool(self.crs is not None and self.crs.is_geographic)
        t = transform
        self.map_pixel_area = pixel_area(t)
        self.to_lonlat = None   # a projected CRS not true to scale: its coordinates to longitude and latitude
        self.centre_col = float(width) / 2.0
        # columns whose pixel areas are measured when the CRS is not true to scale
        self.sample_cols = np.unique(np.round(np.linspace(0.0, max(int(width), 1) - 1.0, SAMPLE_COLUMNS)))
        if self.crs is not None and self.crs.is_projected:
            if raster_scale_error(self.crs, t, width, height) > MEASURE_TOLERANCE:   # anywhere in the raster
                import pyproj

                self.to_lonlat = pyproj.Transformer.from_crs(self.crs, self.crs.geodetic_crs, always_xy=True)
                self.geod = self.crs.get_geod()
        if self.geographic:
            if t.b != 0 or t.d != 0:
                raise OreMapError("Rotated rasters in a geographic CRS are not supported.", "raster",
                                  "Warp the raster north-up (gdalwarp) or into a projected CRS.")
            self.geod = self.crs.get_geod()
            self.factor = None
        else:
            self.geod = getattr(self, "geod", None)
            factor = 1.0
            if self.crs is not None and self.crs.axis_info:
                factor = float(self.crs.axis_info[0].unit_conversion_factor or 1.0)
            self.factor = factor

    # --- areas -------------------------------------------------------------------------------
    def _q(self, lat_deg):
        """Authalic ``q`` of latitudes (degrees) on the ellipsoid."""
        e2 = self.geod.es
        s = np.sin(np.radians(np.asarray(lat_deg, dtype=np.float64)))
        if e2 < 1e-15:
            return 2.0 * s
        e = math.sqrt(e2)
        return (1.0 - e2) * (s / (1.0 - e2 * s * s) - np.log((1.0 - e * s) / (1.0 + e * s)) / (2.0 * e))

    def _lonlat(self, geom):
        from shapely.ops import transform

        return transform(lambda x, y, z=None: self.to_lonlat.transform(x, y), geom)

    def _ellipsoid_pixel_area(self, cols, rows):
        """Area (m2) on the ellipsoid of the pixels at columns ``cols``, rows ``rows`` (float arrays of one size) of
        a CRS not true to scale: their corners taken to longitude and latitude."""
        t = self.transform
        corners = [(cols, rows), (cols + 1.0, rows), (cols + 1.0, rows + 1.0), (cols, rows + 1.0)]
        lonlat = [self.to_lonlat.transform(*affine_ops.apply(t, cc, rr)) for cc, rr in corners]
        return np.array([abs(self.geod.polygon_area_perimeter([p[0][i] for p in lonlat], [p[1][i] for p in lonlat])[0])
                         for i in range(cols.size)], dtype=np.float64)

    def row_pixel_area(self, r0, rows):
        """Area (m2) of one pixel of each of the rows ``r0 ... r0 + rows - 1`` (float64 array); in a CRS not true to
        scale, that of the pixel at the row's middle (see :meth:`pixel_areas`)."""
        if self.to_lonlat is not None:
            r = np.arange(int(r0), int(r0) + int(rows), dtype=np.float64)
            return self._ellipsoid_pixel_area(np.full_like(r, self.centre_col), r)
        if not self.geographic:
            return np.full(int(rows), self.map_pixel_area * self.factor ** 2)
        t = self.transform
        edges = t.f + t.e * np.arange(int(r0), int(r0) + int(rows) + 1, dtype=np.float64)
        edges = np.clip(edges, -90.0, 90.0)
        q = self._q(edges)
        a = self.geod.a
        return np.abs(np.radians(t.a) * a * a / 2.0 * (q[1:] - q[:-1]))

    def pixel_areas(self, r0, rows, cols):
        """Area (m2) of the pixels at rows ``r0 + rows`` and columns ``cols`` (integer arrays of one size; ``rows``
        counted from ``r0``): per row in a geographic or true-to-scale CRS, else measured at :attr:`sample_cols` of
        each row concerned and interpolated linearly between them."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.float64)
        if not rows.size:
            return np.zeros(0)
        if self.to_lonlat is None:
            return self.row_pixel_area(r0, int(rows.max()) + 1)[rows]
        sample = self.sample_cols
        need = np.flatnonzero(np.bincount(rows))   # only the rows that have pixels
        which = np.zeros(need[-1] + 1, dtype=np.int64)
        which[need] = np.arange(need.size)
        which = which[rows]
        grid = self._ellipsoid_pixel_area(np.tile(sample, need.size),
                                          np.repeat(need + float(r0), sample.size)).reshape(need.size, sample.size)
        if sample.size == 1:
            return grid[which, 0]
        j = np.clip(np.searchsorted(sample, cols, side="right") - 1, 0, sample.size - 2)
        w = (cols - sample[j]) / (sample[j + 1] - sample[j])
        return grid[which, j] * (1.0 - w) + grid[which, j + 1] * w

    def area_m2(self, geom):
        """Area (m2) of a polygon in the raster's CRS (geodesic on a geographic CRS or one not true to scale)."""
        if self.to_lonlat is not None:
            geom = self._lonlat(geom)
        if self.geographic or self.to_lonlat is not None:
            from shapely.geometry.polygon import orient

            # pyproj signs each ring's area by its winding: holes subtract only when they wind against the shell
            polygons = getattr(geom, "geoms", [geom])
            return float(sum(self.geod.geometry_area_perimeter(orient(p, 1.0))[0] for p in polygons))
        return float(geom.area) * self.factor ** 2

    def length_m(self, geom):
        """Length (m) of a geometry's lines (a polygon's boundary: its perimeter), geodesic on a geographic CRS or
        one not true to scale: every ring of a polygon, its holes too, as shapely's ``length``)."""
        if self.geographic or self.to_lonlat is not None:
            if geom.geom_type in ("Polygon", "MultiPolygon"):
                geom = geom.boundary   # pyproj's geometry_length of a polygon is its exterior ring's only
            if self.to_lonlat is not None:
                geom = self._lonlat(geom)
            return float(self.geod.geometry_length(geom))
        return float(geom.length) * self.factor

    # --- pixel size ----------------------------------------------------------------------------
    def pixel_size_m(self, width, height):
        """``(x, y)`` ground size (m) of a pixel at the raster's centre."""
        t = self.transform
        if not self.geographic and self.to_lonlat is None:
            return tuple(v * self.factor for v in affine_ops.pixel_size(t))
        col, row = width / 2.0, height / 2.0
        x0, y0 = affine_ops.apply(t, col, row)
        x1, y1 = affine_ops.apply(t, col + 1, row)
        x2, y2 = affine_ops.apply(t, col, row + 1)
        if self.to_lonlat is not None:
            (x0, x1, x2), (y0, y1, y2) = self.to_lonlat.transform([x0, x1, x2], [y0, y1, y2])
        dx = self.geod.inv(x0, y0, x1, y1)[2]
        dy = self.geod.inv(x0, y0, x2, y2)[2]
        return (float(dx), float(dy))


def pixel_size_m(transform, crs, width, height):
    """Ground size (m) ``(x, y)`` of a raster's pixel at its centre, for any CRS (see :class:`GroundUnits`)."""
    return GroundUnits(transform, crs, width, height).pixel_size_m(width, height)
