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


def class_colours(names):
    """One (r, g, b) per name: a mineral's conventional colour, else the palette's next."""
    colours, used = [], set()
    for i, name in enumerate(names):
        # first run of letters, accents dropped: "Muscovite-Illite" -> muscovite, "Hématite" -> hematite
        plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
        word = re.match(r"[a-z]*", plain.strip().lower()).group(0)
        colour = MINERAL_COLOURS.get(word)
        if colour is None or colour in used:
            colour = next((c for c in PALETTE if c not in used), PALETTE[i % len(PALETTE)])
        used.add(colour)
        colours.append(colour)
    return colours


def hex_colour(rgb):
    return "#%02x%02x%02x" % tuple(rgb[:3])


def legend_entries(names, colours, first=1):
    """``[{"value", "name", "color"}]`` of classes ``names`` with ``colours`` (RGB), valued from ``first``: the legend
    a class raster carries in its ``OREMAP_CLASSES`` tag (read by :func:`core.engine.accuracy.legend_from_raster`)."""
    return [{"value": first + i, "name": nm, "color": hex_colour(c)} for i, (nm, c) in enumerate(zip(names, colours))]
