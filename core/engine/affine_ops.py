"""Applying and composing affine geotransforms without the ``*`` operator.

affine 3 deprecates ``transform * (x, y)`` and ``transform * other`` in favour of ``@``, which affine 2.4 (Debian 12,
QGIS 3.22's rasterio) does not have. These functions write the products out in the order affine computes them, so
the numbers are the same to the last bit under either version. Every transform OreMap applies by hand goes
through them.
"""

import math

from affine import Affine


def apply(transform, x, y):
    """``transform`` applied to ``(x, y)``: scalars or numpy arrays (column, row to map x, y, or the reverse with
    an inverted transform); the same as affine's ``transform * (x, y)``."""
    t = transform
    return x * t.a + y * t.b + t.c, x * t.d + y * t.e + t.f


def compose(a, b):
    """The transform applying ``b`` and then ``a`` (affine's ``a * b``)."""
    return Affine(a.a * b.a + a.b * b.d, a.a * b.b + a.b * b.e, a.a * b.c + a.b * b.f + a.c,
                  a.d * b.a + a.e * b.d, a.d * b.b + a.e * b.e, a.d * b.c + a.e * b.f + a.f)


def pixel_size(transform):
    """``(x, y)``: a pixel's size in map units along its column and row directions (rotation included)."""
    return math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
