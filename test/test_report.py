"""HTML reports and SVG plots: well-formed, escaped, deterministic, and numerically right."""

import math
import os
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from oremap.core.engine.errors import OreMapError
from oremap.core.engine.report import (
    Raw,
    html_report,
    html_table,
    nice_ticks,
    svg_bar_chart,
    svg_confusion_matrix,
    svg_line_chart,
    write_report,
)

SVG = "{http://www.w3.org/2000/svg}"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictParser(HTMLParser):
    """html.parser plus the checks it does not make: every element closed, in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.doctype = [], [], [], None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def parse_html(text):
    parser = StrictParser()
    parser.feed(text)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def svg_root(svg):
    """The SVG parsed as XML (stricter than HTML: it must be well-formed)."""
    return ET.fromstring(svg)


def by_class(root, tag, cls):
    return [e for e in root.iter(SVG + tag) if cls in (e.get("class") or "").split()]


def plot_area(root):
    (rect,) = by_class(root, "rect", "plot-area")
    return tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))


def polyline_points(element):
    return np.array([[float(v) for v in p.split(",")] for p in element.get("points").split()])


# --------------------------------------------------------------------------------------
def test_nice_ticks_use_1_2_5_steps_inside_the_range():
    assert nice_ticks(0, 1) == ([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 0.2)
    assert nice_ticks(400, 2500) == ([500.0, 1000.0, 1500.0, 2000.0, 2500.0], 500.0)
    ticks, step = nice_ticks(-0.37, 0.81)
    assert step == 0.2 and ticks == [-0.2, 0.0, 0.2, 0.4, 0.6, 0.8]
    for lo, hi in [(0.0013, 0.0071), (-5e6, 3e7), (1, 1.5), (123.4, 123.9)]:
        ticks, step = nice_ticks(lo, hi)
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 9) in (1.0, 2.0, 5.0)
        assert 2 <= len(ticks) <= 6
        assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)


def test_line_chart_maps_data_extremes_to_plot_corners_and_breaks_at_nan():
    xs = np.array([400.0, 700.0, 1000.0, 1500.0, 2000.0, 2500.0])
    a = np.array([0.12, 0.30, 0.25, 0.61, 0.44, 0.20])
    b = np.array([0.05, np.nan, 0.50, 0.40, np.nan, 0.33])  # pieces: [0], [2, 3], [5]
    svg = svg_line_chart([("Kaolinite", xs, a, "#1f78b4"), ("Alunite", xs, b, (255, 127, 0))],
                         "Spectra", "Wavelength (nm)", "Reflectance")
    root = svg_root(svg)
    x0, y0, w, h = plot_area(root)
    lines = by_class(root, "polyline", "line")
    dots = by_class(root, "circle", "point")
    assert len(lines) == 2 and len(dots) == 2       # series a whole, b's middle piece, b's two lone points
    pts = polyline_points(lines[0])
    assert pts.shape == (6, 2)
    # x: 400 -> left edge, 2500 -> right edge; y: 0.05 (min of all) -> bottom, 0.61 (max) -> top.
    assert pts[0, 0] == pytest.approx(x0, abs=0.01)
    assert pts[-1, 0] == pytest.approx(x0 + w, abs=0.01)
    assert pts[3, 1] == pytest.approx(y0, abs=0.01)
    assert float(dots[0].get("cy")) == pytest.approx(y0 + h, abs=0.01)
    assert float(dots[0].get("cx")) == pytest.approx(x0, abs=0.01)
    assert float(dots[1].get("cx")) == pytest.approx(x0 + w, abs=0.01)
    # Interior points are linear in the data.
    expected_x = x0 + (xs - 400) / 2100 * w
    expected_y = y0 + h - (a - 0.05) / 0.56 * h
    np.testing.assert_allclose(pts[:, 0], expected_x, atol=0.01)
    np.testing.assert_allclose(pts[:, 1], expected_y, atol=0.01)
    middle = polyline_points(lines[1])
    np.testing.assert_allclose(middle[:, 0], expected_x[2:4], atol=0.01)
    # The legend names both series.
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "Kaolinite" in texts and "Alunite" in texts


def test_line_chart_without_finite_data_says_so():
    svg = svg_line_chart([("empty", [1, 2], [np.nan, np.nan], None)], "Nothing", "x", "y")
    root = svg_root(svg)
    assert by_class(root, "text", "no-data")
    assert not by_class(root, "polyline", "line")


def test_confusion_matrix_svg_has_one_cell_per_count():
    cm = np.array([[50, 3, 0], [7, 31, 2], [1, 0, 0]])
    names = ["Kaolinite <CM9>", "Alunite & co", "Calcite"]
    svg = svg_confusion_matrix(cm, names, "Test matrix")
    root = svg_root(svg)
    cells = by_class(root, "rect", "cell")
    assert len(cells) == 9
    groups = [g for g in root.iter(SVG + "g") if g.get("class") == "cell-group"]
    assert len(groups) == 9
    for g in groups:
        i, j = int(g.get("data-row")), int(g.get("data-col"))
        (count,) = by_class(g, "text", "count")
        assert int(count.text) == cm[i, j]
        (pct,) = by_class(g, "text", "pct")
        if cm[i].sum():
            assert float(pct.text.rstrip("%")) == pytest.approx(100 * cm[i, j] / cm[i].sum(), abs=0.051)
    # Row [1, 0, 0]: 100% in the first cell; an empty row would show a dash, not 'nan'.
    assert "nan" not in svg.lower()
    assert "&lt;CM9&gt;" in svg and "<CM9>" not in svg and "&amp; co" in svg
    # Darker cells for larger row shares.
    fills = {(int(g.get("data-row")), int(g.get("data-col"))): by_class(g, "rect", "cell")[0].get("fill")
             for g in groups}
    assert fills[(0, 0)] != fills[(0, 2)]


def test_confusion_matrix_svg_stays_readable_with_25_classes():
    rng = np.random.default_rng(1)
    cm = rng.integers(0, 5000, size=(25, 25))
    names = [f"Mineral {i} with a rather long spectral library name" for i in range(25)]
    root = svg_root(svg_confusion_matrix(cm, names, "Many classes", normalise=None))
    cells = by_class(root, "rect", "cell")
    assert len(cells) == 625
    assert all(float(c.get("width")) >= 20 for c in cells)
    width = float(root.get("width"))
    assert 500 < width < 1200
    # Every cell lies inside the picture.
    assert max(float(c.get("x")) + float(c.get("width")) for c in cells) < width
    assert max(float(c.get("y")) + float(c.get("height")) for c in cells) < float(root.get("height"))
    with pytest.raises(ValueError):
        svg_confusion_matrix(cm, names[:3], "bad")


def test_bar_chart_has_one_bar_per_finite_value():
    labels = ["Kaolinite", "Alunite", "Muscovite"]
    svg = svg_bar_chart(labels, [[0.9, 0.5, np.nan], [0.7, 0.25, 0.1]], ["CNN", "SAM"], "F1 per class", "F1")
    root = svg_root(svg)
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 5
    assert len(by_class(root, "text", "missing")) == 1
    heights = [float(b.get("height")) for b in bars]
    # Label by label, group by group; heights proportional to the values (axis from 0).
    np.testing.assert_allclose(np.array(heights) / heights[0], np.array([0.9, 0.7, 0.5, 0.25, 0.1]) / 0.9,
                               atol=1e-3)
    with pytest.raises(ValueError):
        svg_bar_chart(labels, [[1, 2]], ["CNN"], "bad", "y")


def test_html_table_formats_and_escapes():
    table = html_table(["Class", "F1", "n", "note"],
                       [["<b>Kaolinite</b>", 0.91234, np.int64(12), Raw("<em>ok</em>")],
                        ["Alunite", float("nan"), 3, None]])
    assert "&lt;b&gt;Kaolinite&lt;/b&gt;" in table
    assert ">0.912<" in table and ">12<" in table and "<em>ok</em>" in table
    assert "nan" not in table.lower() and "\u2013" in table
    parse_html(table)
    assert ">0.9<" in html_table(["x"], [[0.91234]], number_format="{:.1f}")


def test_report_is_standalone_valid_html_with_one_svg_per_plot(tmp_path):
    cm = [[5, 1], [2, 9]]

    def build_sections():
        return [
            ("Spectra", svg_line_chart([("s", [1, 2, 3], [3, 1, 2], None)], "t", "x", "y")),
            ("Matrix", svg_confusion_matrix(cm, ["A <1>", "B"], "m")),
            ("Bars", svg_bar_chart(["A", "B"], [[1, 2]], ["g"], "b", "y")),
            ("Table <raw>", html_table(["a"], [[1.0]])),
        ]

    sections = build_sections()
    page = html_report("Accuracy <of> map & more", sections, subtitle="made <today>")
    parser = parse_html(page)
    assert parser.doctype.lower() == "doctype html"
    assert parser.tags.count("svg") == 3
    assert page.count("<svg") == 3
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Accuracy &lt;of&gt; map &amp; more" in page and "Table &lt;raw&gt;" in page
    assert "A &lt;1&gt;" in page and "A <1>" not in page
    # Deterministic: the figures built anew give the same page.
    assert page == html_report("Accuracy <of> map & more", build_sections(), subtitle="made <today>")
    out = tmp_path / "report.html"
    assert write_report(str(out), page) == str(out)
    assert out.read_text(encoding="utf-8") == page
    assert sorted(os.listdir(tmp_path)) == ["report.html"]  # no temporary file left behind
    write_report(str(out), "<!DOCTYPE html>\n<p>second</p>")
    assert "second" in out.read_text(encoding="utf-8")


def test_write_report_to_a_missing_folder_names_the_parameter(tmp_path):
    with pytest.raises(OreMapError) as err:
        write_report(str(tmp_path / "nope" / "r.html"), "x")
    assert err.value.parameter == "report"
