"""Standalone HTML reports with inline SVG plots.

OreMap's reports (accuracy assessments, model training, spectral comparisons) are
single HTML5 files: inline CSS, inline SVG, no JavaScript and no external
resources, so they open in any browser, can be mailed or archived, and print well.
The plots are written by the small SVG writer in this module rather than by a
plotting library, which keeps the plugin free of heavy dependencies inside QGIS.

Everything the caller passes as text (titles, class names, table cells) is escaped;
HTML fragments passed as report sections are inserted as they are. The output is
deterministic: the same input always gives the same bytes (no time stamps or
random identifiers; put a date in the ``subtitle`` when one is wanted)::

    from oremap.core.engine import report
    svg = report.svg_line_chart([("Kaolinite", wl, refl, "#1f78b4")],
                                "Library spectrum", "Wavelength (nm)", "Reflectance")
    page = report.html_report("Spectra", [("Kaolinite", svg)])
    report.write_report("spectra.html", page)
"""

import html
import math
import re

import numpy as np

from .colors import PALETTE, hex_colour
from .files import write_atomic

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
CHAR_WIDTH = 0.6
"""Estimated width of one character in em, used to make room for labels."""

MISSING = "\u2013"
"""What a table or plot shows for a missing value (NaN): an en dash."""

_BLUES = [(247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
          (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107)]


class Raw(str):
    """Text that is already HTML: :func:`html_table` inserts it without escaping."""


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 forbids (control characters but tab and newlines, lone surrogates, U+FFFE/U+FFFF)."""


def _esc(text):
    """``text`` escaped for HTML and XML, its XML-forbidden characters replaced by U+FFFD.

    Inline SVG must be well-formed XML: a class name holding a vertical tab (as pasted
    from a spreadsheet) would otherwise make the plot invalid for XML readers and
    SVG editors. Escaping (``&amp;`` ...) cannot express these characters, so they
    become the replacement character.
    """
    return html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def _n(value):
    """A coordinate as short, deterministic text (2 decimals at most)."""
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text_width(text, size):
    return CHAR_WIDTH * size * len(str(text))


def _shorten(text, limit):
    """``text`` cut to ``limit`` characters at its end, an ellipsis marking the cut."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _shorten_middle(text, limit):
    """``text`` cut to ``limit`` characters in its middle: its start, an ellipsis and its end.

    Names that differ only at the end ("... (strong)", "... (weak)") keep what tells them
    apart. The end starts at a word when one begins in its first two thirds.
    """
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 0)
    tail = text[len(text) - keep // 2:] if keep // 2 else ""
    space = tail.find(" ")
    if 0 <= space < 2 * len(tail) // 3:
        tail = tail[space + 1:]
    return text[: keep - len(tail)] + "\u2026" + tail


def _colliding(names, labels):
    """Indices of labels equal to the label of a different name."""
    owners = {}
    for name, label in zip(names, labels):
        owners.setdefault(label, set()).add(name)
    return [i for i, label in enumerate(labels) if len(owners[label]) > 1]


def _short_labels(names, limit):
    """Axis labels of at most ``limit`` characters that stay distinct for distinct names.

    Each long name is cut at its end (:func:`_shorten`); names whose cuts coincide
    (class names sharing a long start) are cut in the middle instead, keeping their
    ends; any still alike get their position in ``names`` as a suffix (" #3"). Equal
    names keep equal labels.
    """
    names = [str(name) for name in names]
    labels = [_shorten(name, limit) for name in names]
    for i in _colliding(names, labels):
        labels[i] = _shorten_middle(names[i], limit)
    for _ in names:                         # numbering one label may make it meet another: repeat
        colliding = _colliding(names, labels)
        if not colliding:
            break
        for i in colliding:
            tag = f" #{i + 1}"
            labels[i] = _shorten_middle(names[i], max(limit - len(tag), 1)) + tag
    return labels


def _colour(colour, index):
    """An SVG colour from ``"#rrggbb"``/a CSS name, an (r, g, b) tuple or None (palette)."""
    if colour is None:
        return hex_colour(PALETTE[index % len(PALETTE)])
    if isinstance(colour, str):
        return colour
    return hex_colour(tuple(int(c) for c in colour))


def _ramp(fraction):
    """Colour of a fraction 0-1 on a white-to-dark-blue sequential scale."""
    if not np.isfinite(fraction):
        fraction = 0.0
    x = min(max(float(fraction), 0.0), 1.0) * (len(_BLUES) - 1)
    i = min(int(x), len(_BLUES) - 2)
    t = x - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_BLUES[i], _BLUES[i + 1])]
    return hex_colour(rgb)


def _count_text(value):
    """A count as text: an integer when whole (the usual case), else 3 significant digits."""
    value = float(value)
    if not np.isfinite(value):
        return MISSING
    return str(int(value)) if value.is_integer() else f"{value:.3g}"


def _svg_open(width, height, title):
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-plot" width="{_n(width)}" '
        f'height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'aria-label="{_esc(title)}" font-family="{_esc(FONT)}" font-size="11">',
        f"<title>{_esc(title)}</title>",
        f'<rect class="background" x="0" y="0" width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
        f'<text class="title" x="{_n(width / 2)}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{_esc(title)}</text>',
    ]


def nice_ticks(lo, hi, max_ticks=6):
    """Round tick values lying within ``[lo, hi]``: the densest 1-2-5 step giving at most ``max_ticks``.

    Returns
    -------
    ticks : list of float
    step : float
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    span = hi - lo
    if not np.isfinite(span) or span == 0:
        return ([lo] if np.isfinite(lo) else []), 1.0
    magnitude = 10.0 ** math.floor(math.log10(span / max(int(max_ticks), 2)))
    for step in (m * magnitude * 10 ** k for k in range(3) for m in (1.0, 2.0, 5.0)):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= max_ticks:
            break
    decimals = max(0, -math.floor(math.log10(step))) + 2
    ticks = [round(k * step, decimals) for k in range(first, last + 1)]
    return [0.0 if t == 0 else t for t in ticks], step


def _decade(value):
    """The power of ten of a positive number (floor of log10, robust to 0.001 stored as 0.000999...)."""
    return math.floor(math.log10(value) + 1e-9)


def _tick_label(value, step):
    """A tick value as text that tells it apart from its neighbours ``step`` away.

    Plain decimals, as many as the step needs: whole numbers for a step of 1 or more,
    so UTM northings read 6323000, not 6.32e+06 for every tick. Scientific notation
    only for values of 1e9 or more and steps below 1e-4, with enough significant
    digits to resolve the step (0.50005 next to 0.5, 1.2345e+09 next to 1.2346e+09).
    """
    if value == 0:
        return "0"
    step = abs(step) if step else 1.0
    magnitude = max(abs(value), step)
    if magnitude >= 1e9 or step < 1e-4:
        digits = max(3, _decade(magnitude) - _decade(step) + 1)
        return f"{value:.{digits}g}"
    decimals = max(0, -_decade(step))
    return f"{value:.{decimals}f}"


def _padded_range(values):
    """(lo, hi) of finite values, widened when they are all equal; None when there are none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        pad = abs(lo) * 0.05 if lo != 0 else 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _legend_rows(entries, available, size=11, swatch=22):
    """Lay legend entries out in rows no wider than ``available``: list of rows of (entry, x)."""
    rows, row, x = [], [], 0.0
    for entry in entries:
        w = swatch + _text_width(entry[0], size) + 14
        if row and x + w > available:
            rows.append(row)
            row, x = [], 0.0
        row.append((entry, x))
        x += w
    if row:
        rows.append(row)
    return rows


def _grid_and_ticks(out, area, x_range, y_range, y_ticks, y_tick_labels, max_x_ticks):
    """Append grid lines and tick labels of a plot area to ``out``; return the (sx, sy) scalers."""
    px, py, pw, ph = area
    (x0, x1), (y0, y1) = x_range, y_range

    def sx(v):
        return px + (v - x0) / (x1 - x0) * pw

    def sy(v):
        return py + ph - (v - y0) / (y1 - y0) * ph

    x_ticks, x_step = nice_ticks(x0, x1, max_ticks=max_x_ticks)
    out.append('<g class="grid" stroke="#e6e6e6" stroke-width="1">')
    out += [f'<line x1="{_n(sx(t))}" y1="{_n(py)}" x2="{_n(sx(t))}" y2="{_n(py + ph)}"/>' for t in x_ticks]
    out += [f'<line x1="{_n(px)}" y1="{_n(sy(t))}" x2="{_n(px + pw)}" y2="{_n(sy(t))}"/>' for t in y_ticks]
    out.append("</g>")
    out.append('<g class="x-ticks" font-size="10" text-anchor="middle" fill="#333333">')
    out += [f'<text x="{_n(sx(t))}" y="{_n(py + ph + 14)}">{_esc(_tick_label(t, x_step))}</text>'
            for t in x_ticks]
    out.append("</g>")
    out.append('<g class="y-ticks" font-size="10" text-anchor="end" fill="#333333">')
    out += [f'<text x="{_n(px - 5)}" y="{_n(sy(t) + 3.5)}">{_esc(label)}</text>'
            for t, label in zip(y_ticks, y_tick_labels)]
    out.append("</g>")
    return sx, sy


# --------------------------------------------------------------------------------------
# Line chart
# --------------------------------------------------------------------------------------
def svg_line_chart(series, title, x_label, y_label, width=520, height=320):
    """A line chart as an SVG string.

    The axes span exactly the range of the finite data, so the lowest and highest
    values of x and y lie on the edges of the plot area (the ``rect`` of class
    ``plot-area``); ticks fall on round values (steps of 1, 2 or 5 times a power of
    ten) inside it. NaN or infinite values break a line into separate pieces; a
    piece of a single point is drawn as a dot.

    Parameters
    ----------
    series : list of (label, xs, ys, colour)
        One line each. ``colour`` is ``"#rrggbb"``, an (r, g, b) tuple, or None for
        the next colour of the palette.
    title, x_label, y_label : str
    width, height : int
        Size in pixels; the height grows when a long legend needs room.

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    prepared = []
    for i, (label, xs, ys, colour) in enumerate(series):
        xs = np.asarray(xs, dtype=float).ravel()
        ys = np.asarray(ys, dtype=float).ravel()
        if xs.shape != ys.shape:
            raise ValueError(f"Series {label!r} has {xs.size} x values but {ys.size} y values.")
        prepared.append((str(label), xs, ys, _colour(colour, i)))
    finite = [(xs[np.isfinite(xs) & np.isfinite(ys)], ys[np.isfinite(xs) & np.isfinite(ys)])
              for _, xs, ys, _ in prepared]
    x_range = _padded_range(np.concatenate([f[0] for f in finite])) if finite else None
    y_range = _padded_range(np.concatenate([f[1] for f in finite])) if finite else None

    # Layout: title, plot area, x tick labels, x label, legend rows.
    y_ticks, y_step = nice_ticks(*y_range) if y_range else ([], 1.0)
    y_tick_labels = [_tick_label(t, y_step) for t in y_ticks]
    left = 22 + max([_text_width(t, 10) for t in y_tick_labels] + [12]) + 10
    right = 18
    top = 34
    legend = _legend_rows([(label, colour) for label, _, _, colour in prepared], width - left - right)
    legend_h = 16 * len(legend) + (6 if legend else 0)
    bottom = 24 + 18 + legend_h + 6
    height = max(height, top + bottom + 120)
    px, py, pw, ph = left, top, width - left - right, height - top - bottom

    out = _svg_open(width, height, title)
    out.append(f'<rect class="plot-area" x="{_n(px)}" y="{_n(py)}" width="{_n(pw)}" height="{_n(ph)}" '
               f'fill="#ffffff" stroke="#bbbbbb"/>')
    if x_range is None:
        out.append(f'<text class="no-data" x="{_n(px + pw / 2)}" y="{_n(py + ph / 2)}" '
                   f'text-anchor="middle" fill="#777777">No data</text>')
    else:
        sx, sy = _grid_and_ticks(out, (px, py, pw, ph), x_range, y_range, y_ticks, y_tick_labels,
                                 max(3, min(8, int(pw // 70) + 1)))
        for label, xs, ys, colour in prepared:
            out.append(f'<g class="series" stroke="{_esc(colour)}" fill="{_esc(colour)}">'
                       f"<title>{_esc(label)}</title>")
            ok = np.isfinite(xs) & np.isfinite(ys)
            # Runs of consecutive finite points.
            edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
            for start, stop in zip(edges[::2], edges[1::2]):
                if stop - start == 1:
                    out.append(f'<circle class="point" cx="{_n(sx(xs[start]))}" cy="{_n(sy(ys[start]))}" '
                               f'r="2" stroke="none"/>')
                else:
                    points = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in zip(xs[start:stop], ys[start:stop]))
                    out.append(f'<polyline class="line" points="{points}" fill="none" stroke-width="1.6" '
                               f'stroke-linejoin="round"/>')
            out.append("</g>")
    out.append(f'<line class="axis" x1="{_n(px)}" y1="{_n(py + ph)}" x2="{_n(px + pw)}" y2="{_n(py + ph)}" '
               f'stroke="#444444"/>')
    out.append(f'<line class="axis" x1="{_n(px)}" y1="{_n(py)}" x2="{_n(px)}" y2="{_n(py + ph)}" stroke="#444444"/>')
    out.append(f'<text class="x-label" x="{_n(px + pw / 2)}" y="{_n(py + ph + 34)}" text-anchor="middle">'
               f"{_esc(x_label)}</text>")
    out.append(f'<text class="y-label" x="12" y="{_n(py + ph / 2)}" text-anchor="middle" '
               f'transform="rotate(-90 12 {_n(py + ph / 2)})">{_esc(y_label)}</text>')
    out += _legend_svg(legend, px, py + ph + 44, kind="line")
    out.append("</svg>")
    return "\n".join(out)


def svg_scatter(groups, title, x_label, y_label, width=360, height=340, limits=None, identity=True):
    """A scatter plot (SVG string), e.g. predicted against measured values.

    Parameters
    ----------
    groups : list of (label, xs, ys, colour, radius)
        Point sets drawn in order (later ones on top); ``radius`` in pixels.
    limits : (lo, hi), optional
        The same range on both axes (as for predicted-vs-measured); else each axis
        spans its data.
    identity : bool
        Draw the 1:1 line (only with ``limits``).
    """
    prepared = []
    for i, (label, xs, ys, colour, radius) in enumerate(groups):
        xs = np.asarray(xs, dtype=float).ravel()
        ys = np.asarray(ys, dtype=float).ravel()
        ok = np.isfinite(xs) & np.isfinite(ys)
        prepared.append((str(label), xs[ok], ys[ok], _colour(colour, i), float(radius)))
    all_x = np.concatenate([p[1] for p in prepared]) if prepared else np.zeros(0)
    all_y = np.concatenate([p[2] for p in prepared]) if prepared else np.zeros(0)
    if limits is not None:
        x_range = y_range = (float(limits[0]), float(limits[1]))
    else:
        x_range, y_range = _padded_range(all_x), _padded_range(all_y)
    y_ticks, y_step = nice_ticks(*y_range) if y_range else ([], 1.0)
    y_tick_labels = [_tick_label(t, y_step) for t in y_ticks]
    left = 22 + max([_text_width(t, 10) for t in y_tick_labels] + [12]) + 10
    right, top = 14, 34
    legend = _legend_rows([(p[0], p[3]) for p in prepared], width - left - right)
    bottom = 24 + 18 + 16 * len(legend) + 12
    px, py, pw, ph = left, top, width - left - right, height - top - bottom
    out = _svg_open(width, height, title)
    out.append(f'<rect class="plot-area" x="{_n(px)}" y="{_n(py)}" width="{_n(pw)}" height="{_n(ph)}" '
               f'fill="#ffffff" stroke="#bbbbbb"/>')
    if x_range is None or y_range is None or all_x.size == 0:
        out.append(f'<text class="no-data" x="{_n(px + pw / 2)}" y="{_n(py + ph / 2)}" '
                   f'text-anchor="middle" fill="#777777">No data</text>')
    else:
        (x0, x1), (y0, y1) = x_range, y_range
        sx, sy = _grid_and_ticks(out, (px, py, pw, ph), x_range, y_range, y_ticks, y_tick_labels, 6)
        if limits is not None and identity:
            out.append(f'<line class="identity" x1="{_n(sx(x0))}" y1="{_n(sy(y0))}" x2="{_n(sx(x1))}" '
                       f'y2="{_n(sy(y1))}" stroke="#888888" stroke-dasharray="4 3"/>')
        for label, xs, ys, colour, radius in prepared:
            inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            out.append(f'<g class="points" fill="{_esc(colour)}" fill-opacity="0.7"><title>{_esc(label)}</title>')
            out += [f'<circle cx="{_n(sx(x))}" cy="{_n(sy(y))}" r="{_n(radius)}"/>'
                    for x, y in zip(xs[inside], ys[inside])]
            out.append("</g>")
    out.append(f'<text class="x-label" x="{_n(px + pw / 2)}" y="{_n(py + ph + 34)}" text-anchor="middle">'
               f"{_esc(x_label)}</text>")
    out.append(f'<text class="y-label" x="12" y="{_n(py + ph / 2)}" text-anchor="middle" '
               f'transform="rotate(-90 12 {_n(py + ph / 2)})">{_esc(y_label)}</text>')
    out += _legend_svg(legend, px, py + ph + 44, kind="point")
    out.append("</svg>")
    return "\n".join(out)


def _legend_svg(rows, x0, y0, kind):
    out = ['<g class="legend" font-size="11">'] if rows else []
    for r, row in enumerate(rows):
        y = y0 + 16 * r
        for (label, colour), x in row:
            if kind == "line":
                out.append(f'<line x1="{_n(x0 + x)}" y1="{_n(y)}" x2="{_n(x0 + x + 18)}" y2="{_n(y)}" '
                           f'stroke="{_esc(colour)}" stroke-width="2.5"/>')
            else:
                out.append(f'<rect x="{_n(x0 + x)}" y="{_n(y - 5)}" width="18" height="10" fill="{_esc(colour)}"/>')
            out.append(f'<text x="{_n(x0 + x + 22)}" y="{_n(y + 4)}">{_esc(label)}</text>')
    if rows:
        out.append("</g>")
    return out


# --------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------
NORMALISE = {
    "true": "% of the reference class (row)",
    "pred": "% of the map class (column)",
    "all": "% of all samples",
    None: "count relative to the largest cell",
}


def svg_confusion_matrix(matrix, class_names, title, normalise="true"):
    # Over 100 lines: one SVG drawn piece by piece (cells, labels, legend) sharing its layout arithmetic.
    """A confusion matrix as a heatmap (SVG string).

    Rows are the reference (true) classes, columns the map (predicted) classes, as in
    :func:`oremap.core.engine.accuracy.confusion_matrix`. Each cell is a ``rect`` of class
    ``cell`` followed by its count (``text`` of class ``count``) and, when the cells
    are large enough (up to about 14 classes), the normalised percentage (``text`` of
    class ``pct``); the percentage is always in the cell's tooltip. Diagonal cells
    (correct) are outlined. Long class names are shortened on the axes and given in
    full in tooltips.

    Parameters
    ----------
    matrix : array-like (n, n) of counts
    class_names : sequence of str, length n
    title : str
    normalise : {"true", "pred", "all", None}
        What the colour and the percentages are relative to: the row total
        (producer's view, default), the column total (user's view), the grand total,
        or, for None, the largest count (no percentages).

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    cm = np.asarray(matrix, dtype=float)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"The matrix is {cm.shape}, but {n} class names were given.")
    if normalise not in NORMALISE:
        raise ValueError(f"normalise must be one of {sorted(k for k in NORMALISE if k)} or None.")
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalise == "true":
            frac = cm / cm.sum(axis=1, keepdims=True)
        elif normalise == "pred":
            frac = cm / cm.sum(axis=0, keepdims=True)
        elif normalise == "all":
            frac = cm / cm.sum()
        else:
            frac = cm / cm.max() if cm.size and cm.max() > 0 else np.zeros_like(cm)

    cell = float(min(60, max(24, 440 // max(n, 1))))
    names = _short_labels(class_names, 28)
    label_size = 11.0 if cell >= 30 else 10.0
    label_w = max([_text_width(name, label_size) for name in names] + [20])
    diag = label_w * math.sqrt(0.5)              # extent of a 45-degree label
    left = max(26 + label_w + 8, diag - cell / 2 + 12)
    top = 50
    grid = n * cell
    subtitle = f"rows: reference \u00b7 columns: map \u00b7 colour: {NORMALISE[normalise]}"
    min_width = max(360.0, _text_width(title, 14) + 40, _text_width(subtitle, 10) + 24)
    natural = left + grid + 76                      # matrix, gap, colour bar and its labels
    left += max(min_width - natural, 0) / 2         # centre a small matrix under the titles
    width = max(natural, min_width)
    bar_x = left + grid + 18
    bottom = diag + 12 + 24
    height = max(top + grid + bottom, top + 140)

    out = _svg_open(width, height, title)
    out.append(f'<text class="subtitle" x="{_n(width / 2)}" y="36" text-anchor="middle" font-size="10" '
               f'fill="#555555">{_esc(subtitle)}</text>')
    counts = [[_count_text(v) for v in row] for row in cm]
    biggest = max([len(t) for row in counts for t in row] + [1])
    count_size = min(12.0, cell * 0.34, cell * 0.9 / (CHAR_WIDTH * biggest))
    show_pct = normalise is not None and cell >= 36
    pct_decimals = 1 if cell >= 50 else 0
    out.append('<g class="cells" text-anchor="middle">')
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            f = frac[i, j]
            pct = MISSING if not np.isfinite(f) else f"{100 * f:.{pct_decimals}f}%"
            count = counts[i][j]
            tip = f"reference {class_names[i]}, map {class_names[j]}: {count}"
            if normalise is not None:
                tip += f" ({pct})"
            ink = "#ffffff" if np.isfinite(f) and f > 0.5 else "#222222"
            out.append(f'<g class="cell-group" data-row="{i}" data-col="{j}"><title>{_esc(tip)}</title>')
            out.append(f'<rect class="cell" x="{_n(x)}" y="{_n(y)}" width="{_n(cell)}" height="{_n(cell)}" '
                       f'fill="{_ramp(f)}" stroke="#ffffff" stroke-width="1"/>')
            if show_pct:
                out.append(f'<text class="count" x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 - 1)}" '
                           f'font-size="{_n(count_size)}" fill="{ink}">{count}</text>')
                out.append(f'<text class="pct" x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 + count_size)}" '
                           f'font-size="{_n(count_size * 0.8)}" fill="{ink}">{_esc(pct)}</text>')
            else:
                out.append(f'<text class="count" x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 + count_size * 0.35)}" '
                           f'font-size="{_n(count_size)}" fill="{ink}">{count}</text>')
            out.append("</g>")
    out.append("</g>")
    out.append('<g class="diagonal" fill="none" stroke="#222222" stroke-width="1.5">')
    out += [f'<rect x="{_n(left + i * cell)}" y="{_n(top + i * cell)}" width="{_n(cell)}" height="{_n(cell)}"/>'
            for i in range(n)]
    out.append("</g>")
    # Class names: rows on the left, columns below, rotated 45 degrees.
    out.append(f'<g class="row-labels" font-size="{_n(label_size)}" text-anchor="end">')
    for i, name in enumerate(names):
        y = top + (i + 0.5) * cell + label_size * 0.35
        out.append(f'<g><title>{_esc(class_names[i])}</title>'
                   f'<text x="{_n(left - 6)}" y="{_n(y)}">{_esc(name)}</text></g>')
    out.append("</g>")
    out.append(f'<g class="col-labels" font-size="{_n(label_size)}" text-anchor="end">')
    for j, name in enumerate(names):
        x, y = left + (j + 0.5) * cell + label_size * 0.3, top + grid + 8
        out.append(f'<g><title>{_esc(class_names[j])}</title><text x="{_n(x)}" y="{_n(y)}" '
                   f'transform="rotate(-45 {_n(x)} {_n(y)})">{_esc(name)}</text></g>')
    out.append("</g>")
    ylx = max(12.0, left - label_w - 20)
    out.append(f'<text class="y-label" x="{_n(ylx)}" y="{_n(top + grid / 2)}" text-anchor="middle" '
               f'font-weight="bold" transform="rotate(-90 {_n(ylx)} {_n(top + grid / 2)})">Reference</text>')
    out.append(f'<text class="x-label" x="{_n(left + grid / 2)}" y="{_n(height - 8)}" text-anchor="middle" '
               f'font-weight="bold">Map</text>')
    # Colour scale: 20 steps, bottom = 0, top = 1.
    steps, bar_h = 20, max(grid, 100.0)
    out.append('<g class="colour-scale">')
    for k in range(steps):
        y = top + bar_h - (k + 1) * bar_h / steps
        out.append(f'<rect class="scale" x="{_n(bar_x)}" y="{_n(y)}" width="14" height="{_n(bar_h / steps + 0.5)}" '
                   f'fill="{_ramp((k + 0.5) / steps)}"/>')
    high = "100%" if normalise is not None else (_count_text(cm.max()) if cm.size else "0")
    low = "0%" if normalise is not None else "0"
    out.append(f'<text x="{_n(bar_x + 18)}" y="{_n(top + 8)}" font-size="10">{_esc(high)}</text>')
    out.append(f'<text x="{_n(bar_x + 18)}" y="{_n(top + bar_h)}" font-size="10">{_esc(low)}</text>')
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Bar chart
# --------------------------------------------------------------------------------------
def svg_bar_chart(labels, groups_of_values, group_names, title, y_label, colours=None, y_range=None, height=320):
    # Over 100 lines: one SVG drawn piece by piece (bars, axes, labels) sharing its layout arithmetic.
    """Side-by-side bars (SVG string): for each label, one bar per group.

    For example per-class F1 scores of two classifiers: ``labels`` are the classes,
    ``groups_of_values`` = ``[f1_cnn, f1_sam]``, ``group_names`` = ``["CNN", "SAM"]``.
    The value axis starts at 0 (or below, for negative values) and ends on a round
    tick, unless ``y_range`` fixes it. A NaN value gets no bar but a small "n/a".
    Each bar is a ``rect`` of class ``bar`` with its value in a tooltip. The width
    grows with the number of bars (520 px at least).

    Parameters
    ----------
    labels : sequence of str
    groups_of_values : sequence of sequences of float, each as long as ``labels``
    group_names : sequence of str, one per group
    title, y_label : str
    colours : sequence of colours, optional
        One per group (``"#rrggbb"`` or (r, g, b)); the palette by default.
    y_range : (float, float), optional
        Fixed value axis, e.g. ``(0, 1)`` for accuracies; values beyond it are clipped.
    height : int

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    labels = [str(label) for label in labels]
    rows = [np.asarray(v, dtype=float).ravel() for v in groups_of_values]
    if len(rows) != len(group_names) or any(r.size != len(labels) for r in rows):
        raise ValueError(f"Give one sequence of {len(labels)} values (one per label) for each of the "
                         f"{len(group_names)} groups.")
    values = np.array(rows).reshape(len(group_names), len(labels))
    colours = [_colour(colours[g] if colours else None, g) for g in range(len(group_names))]
    n, g = len(labels), max(len(group_names), 1)
    bar = float(min(28, max(8, 300 // max(n * g, 1))))
    slot = g * bar + max(10.0, bar)
    finite = values[np.isfinite(values)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 1.0
    if lo == hi:
        hi = 1.0
    _, step = nice_ticks(lo, hi, 6)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step  # round outward
    if y_range is not None:
        lo, hi = float(min(y_range)), float(max(y_range))
        if lo == hi:
            raise ValueError("y_range must span a non-zero interval.")
    ticks, step = nice_ticks(lo, hi, 6)
    tick_labels = [_tick_label(t, step) for t in ticks]

    short = _short_labels(labels, 24)
    label_w = max([_text_width(s, 10) for s in short] + [0])
    rotate = label_w > slot - 4
    left = 22 + max([_text_width(t, 10) for t in tick_labels] + [12]) + 10
    left = max(left, label_w * math.sqrt(0.5) - slot / 2 + 8) if rotate else left
    right = 16
    width = max(520.0, left + right + n * slot)
    legend = _legend_rows(list(zip(group_names, colours)), width - left - right)
    legend_h = 16 * len(legend)
    top = 34 + legend_h + (4 if legend else 0)
    label_h = label_w * math.sqrt(0.5) + 14 if rotate else 18
    bottom = label_h + 22
    height = max(height, top + bottom + 120)
    px, py, pw, ph = left, top, width - left - right, height - top - bottom
    slot = pw / max(n, 1)

    def sy(v):
        return py + ph - (v - lo) / (hi - lo) * ph

    out = _svg_open(width, height, title)
    out += _legend_svg(legend, px, 36, kind="bar")
    out.append(f'<rect class="plot-area" x="{_n(px)}" y="{_n(py)}" width="{_n(pw)}" height="{_n(ph)}" '
               f'fill="#ffffff" stroke="none"/>')
    out.append('<g class="grid" stroke="#e6e6e6" stroke-width="1">')
    out += [f'<line x1="{_n(px)}" y1="{_n(sy(t))}" x2="{_n(px + pw)}" y2="{_n(sy(t))}"/>' for t in ticks]
    out.append("</g>")
    out.append('<g class="y-ticks" font-size="10" text-anchor="end" fill="#333333">')
    out += [f'<text x="{_n(px - 5)}" y="{_n(sy(t) + 3.5)}">{_esc(s)}</text>' for t, s in zip(ticks, tick_labels)]
    out.append("</g>")
    zero = sy(min(max(0.0, lo), hi))             # bars grow from 0, or the axis end nearest to it
    out.append('<g class="bars">')
    for i, label in enumerate(labels):
        x_start = px + i * slot + (slot - g * bar) / 2
        for k, name in enumerate(group_names):
            v = values[k, i]
            x = x_start + k * bar
            if not np.isfinite(v):
                out.append(f'<text class="missing" x="{_n(x + bar / 2)}" y="{_n(zero - 3)}" font-size="8" '
                           f'text-anchor="middle" fill="#888888">n/a</text>')
                continue
            shown = min(max(v, lo), hi)
            y, h = min(sy(shown), zero), abs(sy(shown) - zero)
            out.append(f'<rect class="bar" x="{_n(x)}" y="{_n(y)}" width="{_n(bar - 1)}" '
                       f'height="{_n(h)}" fill="{_esc(colours[k])}"><title>{_esc(name)} \u2013 {_esc(label)}: '
                       f"{v:.4g}</title></rect>")
    out.append("</g>")
    out.append('<g class="x-labels" font-size="10" fill="#333333">')
    for i, s in enumerate(short):
        x, y = px + (i + 0.5) * slot, py + ph + 12
        if rotate:
            out.append(f'<g><title>{_esc(labels[i])}</title><text x="{_n(x + 3)}" y="{_n(y)}" text-anchor="end" '
                       f'transform="rotate(-45 {_n(x + 3)} {_n(y)})">{_esc(s)}</text></g>')
        else:
            out.append(f'<g><title>{_esc(labels[i])}</title><text x="{_n(x)}" y="{_n(y + 2)}" '
                       f'text-anchor="middle">{_esc(s)}</text></g>')
    out.append("</g>")
    out.append(f'<line class="axis" x1="{_n(px)}" y1="{_n(zero)}" x2="{_n(px + pw)}" y2="{_n(zero)}" '
               f'stroke="#444444"/>')
    out.append(f'<line class="axis" x1="{_n(px)}" y1="{_n(py)}" x2="{_n(px)}" y2="{_n(py + ph)}" stroke="#444444"/>')
    out.append(f'<text class="y-label" x="12" y="{_n(py + ph / 2)}" text-anchor="middle" '
               f'transform="rotate(-90 12 {_n(py + ph / 2)})">{_esc(y_label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------
def _cell(value, number_format):
    if isinstance(value, Raw):
        return "", str(value)
    if value is None:
        return ' class="num"', MISSING
    if isinstance(value, (bool, np.bool_)):
        return "", "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return ' class="num"', str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ' class="num"', MISSING
        return ' class="num"', _esc(number_format.format(float(value)))
    return "", _esc(value)


def html_table(header, rows, number_format="{:.3f}"):
    """An HTML table: text escaped, floats formatted with ``number_format``, NaN/None as an en dash.

    Numbers (int, float, numpy scalars) are right-aligned. A cell that is a
    :class:`Raw` string is inserted as HTML without escaping.

    Parameters
    ----------
    header : sequence of str
    rows : sequence of sequences
    number_format : str
        ``str.format`` pattern for floats.

    Returns
    -------
    str
    """
    out = ['<table class="data">', "<thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header)
           + "</tr></thead>", "<tbody>"]
    for row in rows:
        cells = [_cell(v, number_format) for v in row]
        out.append("<tr>" + "".join(f"<td{attr}>{text}</td>" for attr, text in cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


_CSS = """
body { font-family: %s; color: #222; background: #fff; margin: 0 auto; max-width: 1040px;
       padding: 16px 24px 40px; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.1em; }
h2 { font-size: 1.2em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.subtitle { color: #555; margin: 0 0 1em; }
table.data { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
table.data th, table.data td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; }
table.data th { background: #f2f4f7; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data tbody tr:nth-child(even) { background: #fafafa; }
svg.oremap-plot { max-width: 100%%; height: auto; display: block; margin: 0.5em 0 1em; }
.note { color: #555; font-size: 0.92em; }
footer { margin-top: 3em; color: #888; font-size: 0.85em; border-top: 1px solid #eee; padding-top: 0.5em; }
@media print { body { max-width: none; } h2 { page-break-after: avoid; } svg { page-break-inside: avoid; } }
""" % FONT


def html_report(title, sections, subtitle=None):
    """A complete standalone HTML5 document.

    Parameters
    ----------
    title : str
        Page title and main heading (escaped).
    sections : sequence of (heading, html_fragment)
        Headings are escaped; fragments (tables, SVG plots, paragraphs made with the
        functions of this module) are inserted as they are.
    subtitle : str, optional
        A line under the title (escaped), e.g. the input files and the date.

    Returns
    -------
    str
    """
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="generator" content="OreMap">',
           f"<title>{_esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           "<header>", f"<h1>{_esc(title)}</h1>"]
    if subtitle:
        out.append(f'<p class="subtitle">{_esc(subtitle)}</p>')
    out.append("</header>")
    for heading, fragment in sections:
        out += ["<section>", f"<h2>{_esc(heading)}</h2>", str(fragment), "</section>"]
    out += ["<footer>Report generated by OreMap.</footer>", "</body>", "</html>", ""]
    return "\n".join(out)


def paragraph(text, css_class=None):
    """An escaped ``<p>``, optionally with a CSS class (``"note"`` for a grey remark)."""
    attr = f' class="{_esc(css_class)}"' if css_class else ""
    return f"<p{attr}>{_esc(text)}</p>"


def write_text_atomic(path, text, parameter="output", encoding="utf-8"):
    """Write ``text`` to ``path`` atomically (see :func:`core.engine.files.write_atomic`). Returns ``path``."""
    return write_atomic(path, text.encode(encoding), parameter=parameter)


def write_report(path, html_text, parameter="report"):
    """Write an HTML report (UTF-8) atomically, see :func:`write_text_atomic`. Returns ``path``."""
    return write_text_atomic(path, html_text, parameter=parameter, encoding="utf-8")
