"""Class colours for class maps.

Well-known alteration and ore minerals get conventional colours (clays and micas in
blues and purples, sulphates in yellow-orange, iron oxides in reds and browns,
carbonates in cyan, chlorite and epidote in greens); anything else gets the next
colour of a qualitative palette, so a class map is readable without editing.
"""

import re
import unicodedata

# Matched on the first run of letters of a class or spectrum name, lower case.
MINERAL_COLOURS = {
    "kaolinite": (31, 120, 180),
    "halloysite": (66, 146, 198),
    "dickite": (8, 81, 156),
    "alunite": (255, 127, 0),
    "jarosite": (255, 217, 47),
    "gypsum": (253, 191, 111),
    "muscovite": (106, 61, 154),
    "illite": (158, 118, 201),
    "montmorillonite": (166, 206, 227),
    "pyrophyllite": (188, 128, 189),
    "buddingtonite": (247, 129, 191),
    "chlorite": (51, 160, 44),
    "epidote": (178, 223, 138),
    "calcite": (0, 206, 209),
    "dolomite": (72, 209, 204),
    "goethite": (177, 89, 40),
    "hematite": (215, 25, 28),
    "chalcopyrite": (205, 170, 0),
    "pyrite": (140, 140, 60),
    "quartz": (220, 220, 220),
    "vegetation": (0, 109, 44),
    "lawn": (0, 109, 44),
    "grass": (120, 160, 60),
    "water": (0, 0, 139),
}

PALETTE = [
    (228, 26, 28), (55, 126, 184), (77, 175, 74), (152, 78, 163), (255, 127, 0),
    (255, 255, 51), (166, 86, 40), (247, 129, 191), (153, 153, 153), (102, 194, 165),
    (252, 141, 98), (141, 160, 203), (231, 138, 195), (166, 216, 84), (255, 217, 47),
    (229, 196, 148), (179, 179, 179), (27, 158, 119), (217, 95, 2), (117, 112, 179),
]

UNCLASSIFIED = (0, 0, 0)


#: Smallest CIE76 colour difference between a palette colour given to a class and any colour already given:
#: below about 15 two classes of a map read as one (the palette's blue against kaolinite's is 8).
DISTINCT_DELTA_E = 15.0


def _lab(rgb):
    """CIELAB (D65) of an sRGB colour."""
    def linear(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgb[:3])
    xyz = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, \
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    fx, fy, fz = (f(t) for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(a, b):
    """CIE76 colour difference of two sRGB colours."""
    return sum((p - q) ** 2 for p, q in zip(_lab(a), _lab(b))) ** 0.5


def _mineral_word(name):
    """The first run of letters, lower case, accents dropped: "Muscovite-Illite" -> muscovite, "Hématite" ->
    hematite."""
    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    return re.match(r"[a-z]*", plain.strip().lower()).group(0)


def class_colours(names):
    """One (r, g, b) per name: a mineral's conventional colour, else a palette colour.

    Known minerals are served first, so a class listed after others keeps its colour. Each other class gets the
    palette's first colour at least :data:`DISTINCT_DELTA_E` from every colour given (else the palette colour
    farthest from them), so it cannot pass for a mineral of the map.
    """
    colours, used = [None] * len(names), []
    for i, name in enumerate(names):
        colour = MINERAL_COLOURS.get(_mineral_word(name))
        if colour is not None and colour not in used:
            colours[i] = colour
            used.append(colour)
    extra = 0  # classes past the palette: its colours again, in turn
    for i in range(len(names)):
        if colours[i] is not None:
            continue
        free = [c for c in PALETTE if c not in used]
        if not free:
            colours[i] = PALETTE[extra % len(PALETTE)]
            extra += 1
            continue
        nearest = [min((delta_e(c, u) for u in used), default=float("inf")) for c in free]
        distinct = [c for c, d in zip(free, nearest) if d >= DISTINCT_DELTA_E]
        colours[i] = distinct[0] if distinct else free[max(range(len(free)), key=nearest.__getitem__)]
        used.append(colours[i])
    return colours


def hex_colour(rgb):
    return "#%02x%02x%02x" % tuple(rgb[:3])


def legend_entries(names, colours, first=1):
    """``[{"value", "name", "color"}]`` of classes ``names`` with ``colours`` (RGB), valued from ``first``: the legend
    a class raster carries in its ``OREMAP_CLASSES`` tag (read by :func:`core.engine.accuracy.legend_from_raster`)."""
    return [{"value": first + i, "name": nm, "color": hex_colour(c)} for i, (nm, c) in enumerate(zip(names, colours))]
