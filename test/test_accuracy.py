"""Accuracy assessment: known answers, scikit-learn agreement, reference sampling on a rotated raster."""

import csv
import json
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely import affinity
from shapely.geometry import MultiPoint, Point, Polygon, box

from oremap.core.engine import accuracy
from oremap.core.engine.accuracy import (
    accuracy_html,
    assess_class_raster,
    confusion_matrix,
    kappa,
    legend_from_raster,
    match_classes,
    metrics_table_csv,
    overall_accuracy,
    per_class_metrics,
    sample_reference,
    summary,
)
from oremap.core.engine.errors import OreMapError
from conftest import core_warnings

from test_report import parse_html

# A four-class assessment in the layout of remote-sensing textbooks (Congalton, 1991):
# rows = map classes, columns = reference classes (D, C, BA, SB).
#
#               ref D    C    BA    SB  | map total
#     map D        65    4    22    24  |   115
#     map C         6   81     5     8  |   100
#     map BA        0   11    85    19  |   115
#     map SB        4    7     3    90  |   104
#     ref total    75  103   115   141  |   434
#
# By hand: correct = 65 + 81 + 85 + 90 = 321, so OA = 321 / 434.
# Chance agreement: sum(map total x ref total) = 115*75 + 100*103 + 115*115 + 104*141
#                 = 8625 + 10300 + 13225 + 14664 = 46814.
# kappa = (N * correct - 46814) / (N**2 - 46814) = (139314 - 46814) / (188356 - 46814) = 92500 / 141542
#       = 0.65352...
# Producer's accuracy (recall) = diagonal / ref total: 65/75, 81/103, 85/115, 90/141.
# User's accuracy (precision) = diagonal / map total: 65/115, 81/100, 85/115, 90/104.
# F1 = 2 x diagonal / (ref total + map total): 130/190, 162/203, 170/230, 180/245.
TEXTBOOK = np.array([[65, 4, 22, 24], [6, 81, 5, 8], [0, 11, 85, 19], [4, 7, 3, 90]])
NAMES = ["D", "C", "BA", "SB"]


def textbook_samples():
    """Reference and map labels reproducing TEXTBOOK (shuffled, so order does not matter)."""
    y_true, y_pred = [], []
    for i, map_class in enumerate(NAMES):
        for j, ref_class in enumerate(NAMES):
            y_true += [ref_class] * TEXTBOOK[i, j]
            y_pred += [map_class] * TEXTBOOK[i, j]
    order = np.random.default_rng(0).permutation(len(y_true))
    return np.array(y_true)[order], np.array(y_pred)[order]


def test_textbook_matrix_known_answers():
    y_true, y_pred = textbook_samples()
    cm = confusion_matrix(y_true, y_pred, NAMES)
    np.testing.assert_array_equal(cm, TEXTBOOK.T)  # ours: rows = reference
    assert overall_accuracy(cm) == pytest.approx(321 / 434, abs=1e-12)
    assert kappa(cm) == pytest.approx(92500 / 141542, abs=1e-12)
    m = per_class_metrics(cm)
    np.testing.assert_allclose(m["recall"], [65 / 75, 81 / 103, 85 / 115, 90 / 141], atol=1e-12)
    np.testing.assert_allclose(m["precision"], [65 / 115, 81 / 100, 85 / 115, 90 / 104], atol=1e-12)
    np.testing.assert_allclose(m["f1"], [130 / 190, 162 / 203, 170 / 230, 180 / 245], atol=1e-12)
    np.testing.assert_array_equal(m["support"], [75, 103, 115, 141])
    np.testing.assert_array_equal(m["predicted"], [115, 100, 115, 104])
    s = summary(y_true, y_pred, NAMES)
    assert s["n_samples"] == 434 and s["matrix"] == TEXTBOOK.T.tolist()
    assert s["macro_f1"] == pytest.approx(np.mean([130 / 190, 162 / 203, 170 / 230, 180 / 245]), abs=1e-12)
    assert [c["name"] for c in s["per_class"]] == NAMES
    assert s["per_class"][0]["recall"] == pytest.approx(65 / 75, abs=1e-12)
    json.dumps(s)  # plain Python values only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappa_and_f1_agree_with_scikit_learn(seed):
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(seed)
    labels = [0, 1, 2, 3, 5]
    y_true = rng.choice(labels, size=500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.choice(labels, size=500))
    s = summary(y_true, y_pred, labels)
    assert s["kappa"] == pytest.approx(cohen_kappa_score(y_true, y_pred), abs=1e-12)
    assert s["overall_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert s["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro"), abs=1e-12)
    assert s["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="weighted"),
                                             abs=1e-12)
    pc = s["per_class"]
    np.testing.assert_allclose([c["f1"] for c in pc], f1_score(y_true, y_pred, labels=labels, average=None))
    np.testing.assert_allclose([c["precision"] for c in pc],
                               precision_score(y_true, y_pred, labels=labels, average=None))
    np.testing.assert_allclose([c["recall"] for c in pc], recall_score(y_true, y_pred, labels=labels, average=None))


def test_absent_classes_give_nan_or_zero_without_warnings():
    # Class 2 is never in the reference (only predicted), class 3 never predicted, class 4 in neither.
    y_true = [0, 0, 1, 1, 3, 3]
    y_pred = [0, 2, 1, 1, 0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summary(y_true, y_pred, [0, 1, 2, 3, 4])
        empty = summary([], [], [0, 1])
    pc = {c["value"]: c for c in s["per_class"]}
    assert np.isnan(pc[2]["recall"]) and pc[2]["precision"] == 0 and pc[2]["f1"] == 0
    assert pc[3]["recall"] == 0 and np.isnan(pc[3]["precision"]) and pc[3]["f1"] == 0
    assert np.isnan(pc[4]["recall"]) and np.isnan(pc[4]["precision"]) and np.isnan(pc[4]["f1"])
    # Macro F1 averages the reference classes 0, 1, 3 only: F1 = 2*1/(2+2), 2*2/(2+3), 0.
    assert s["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 0) / 3, abs=1e-12)
    assert np.isnan(empty["overall_accuracy"]) and np.isnan(empty["kappa"]) and np.isnan(empty["macro_f1"])
    # One single class in both: chance agreement is 1 and kappa undefined.
    assert np.isnan(kappa([[5, 0], [0, 0]]))


def test_confusion_matrix_ignores_labels_not_listed_and_rejects_bad_input():
    cm = confusion_matrix(["a", "b", "x", "a"], ["a", "a", "a", "y"], ["a", "b"])
    np.testing.assert_array_equal(cm, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(confusion_matrix([1, 2, 2], [2, 2, 9], [2, 1]), [[1, 0], [1, 0]])
    with pytest.raises(ValueError):
        confusion_matrix([1, 2], [1], [1, 2])
    with pytest.raises(ValueError):
        confusion_matrix([1], [1], [1, 1])


# --------------------------------------------------------------------------------------
# Reference sampling on a small rotated GeoTIFF
# --------------------------------------------------------------------------------------
WIDTH, HEIGHT = 12, 9
ROTATED = Affine.translation(500000.0, 4100000.0) * Affine.rotation(30.0) * Affine.scale(10.0, -10.0)
NODATA_PIXELS = [(4, 4), (5, 6)]  # (row, col)


def write_codes(path, transform=ROTATED, legend=None, colormap=None):
    """uint16 raster whose value is row * 100 + col (so a value tells its pixel); nodata 65535."""
    data = (np.arange(HEIGHT)[:, None] * 100 + np.arange(WIDTH)[None, :]).astype(np.uint16)
    for r, c in NODATA_PIXELS:
        data[r, c] = 65535
    with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="uint16",
                       nodata=65535, crs="EPSG:32612", transform=transform) as ds:
        ds.write(data, 1)
        if legend is not None:
            ds.update_tags(OREMAP_CLASSES=json.dumps(legend))
    return path


def world(geom, transform=ROTATED):
    """A geometry given in pixel coordinates (col, row), moved to map coordinates."""
    t = transform
    return affinity.affine_transform(geom, [t.a, t.b, t.d, t.e, t.xoff, t.yoff])


def pixel(value):
    return int(value) // 100, int(value) % 100


@pytest.fixture
def codes(tmp_path):
    return write_codes(str(tmp_path / "codes.tif"))


def test_points_hit_the_pixel_that_contains_them(codes, monkeypatch):
    wanted = [(0, 0), (2, 7), (8, 11), (6, 1), (4, 4)]  # the last is nodata
    points = [world(Point(c + 0.3, r + 0.7)) for r, c in wanted]
    points.append(world(Point(-1.5, 2.5)))        # outside the raster
    points.append(world(MultiPoint([(3.9, 1.1), (10.05, 7.95)])))
    labels = ["a", "b", "c", "d", "e", "f", "g"]
    values, got_labels, features = sample = sample_reference(codes, points, labels)
    assert [pixel(v) for v in values] == [(0, 0), (2, 7), (8, 11), (6, 1), (1, 3), (7, 10)]
    assert list(got_labels) == ["a", "b", "c", "d", "g", "g"]
    assert list(features) == [0, 1, 2, 3, 6, 6]
    assert sample.n_nodata == 1 and sample.n_outside == 1
    assert sample.n_empty == 2  # the nodata point and the outside point gave nothing
    # Points spread over a large raster are read one by one: same answer.
    from oremap.core.engine import sampling

    read_covered = sampling.read_covered
    monkeypatch.setattr(sampling, "read_covered", lambda read, px: read_covered(read, px, max_window_pixels=1))
    one_by_one = sample_reference(codes, points, labels)
    for a, b in zip(sample, one_by_one):
        np.testing.assert_array_equal(a, b)


def test_polygon_yields_exactly_the_pixels_whose_centres_are_inside(codes, monkeypatch):
    import rasterio.features

    shapes = []
    real_mask = rasterio.features.geometry_mask

    def spy(geometries, out_shape, transform, **kwargs):
        shapes.append(out_shape)
        return real_mask(geometries, out_shape, transform, **kwargs)

    monkeypatch.setattr(rasterio.features, "geometry_mask", spy)
    # In pixel space the rectangle spans columns 2.2-6.8 and rows 3.2-5.9: pixel centres
    # (c + 0.5, r + 0.5) inside are c = 2..6 and r = 3..5, 5 x 3 = 15 pixels, of which
    # (4, 4) and (5, 6) are nodata: 13 sampled.
    rect = world(box(2.2, 3.2, 6.8, 5.9))
    values, labels, features = sample = sample_reference(codes, [rect], [7])
    expected = {(r, c) for r in range(3, 6) for c in range(2, 7)} - set(NODATA_PIXELS)
    assert sorted(pixel(v) for v in values) == sorted(expected)
    assert len(values) == 13 and sample.n_nodata == 2
    assert set(labels.tolist()) == {7} and set(features.tolist()) == {0}
    # Only the polygon's bounding window was rasterised, not the whole raster.
    assert shapes == [(3, 5)]


def test_irregular_polygons_match_a_brute_force_centre_test(codes):
    triangle = Polygon([(0.3, 0.4), (11.6, 1.3), (3.7, 8.2)])
    holed = Polygon([(5.2, 2.1), (11.4, 2.3), (11.1, 8.6), (5.4, 8.3)], [[(7.1, 4.2), (9.3, 4.4), (8.2, 6.7)]])
    partly_outside = box(-3.3, -2.2, 2.6, 1.7)        # centres of cols 0-2, rows 0-1: 6 pixels
    tiny = box(7.1, 7.1, 7.3, 7.3)                     # covers no pixel centre
    outside = box(20.2, 20.2, 25.7, 25.9)
    geoms = [triangle, holed, partly_outside, tiny, outside, None, triangle]
    labels = ["t", "h", "p", "tiny", "out", "no geometry", None]
    values, got, features = sample = sample_reference(codes, [world(g) if g else None for g in geoms], labels)
    for k, geom in enumerate(geoms[:3]):
        inside = {(r, c) for r in range(HEIGHT) for c in range(WIDTH) if geom.contains(Point(c + 0.5, r + 0.5))}
        assert {pixel(v) for v in values[features == k]} == inside - set(NODATA_PIXELS)
        assert set(got[features == k].tolist()) == {labels[k]}
    assert (features == 2).sum() == 6
    assert sample.n_empty == 2 and sample.n_skipped == 2


def test_north_up_raster_and_all_touched(tmp_path):
    path = write_codes(str(tmp_path / "north.tif"), transform=Affine(2.0, 0, 100.0, 0, -2.0, 50.0))
    poly = box(105.5, 41.5, 107.5, 44.5)   # cols 2.75-3.75, rows 2.75-4.25: centre (3.5, 3.5) only
    values, _, _ = sample_reference(path, [poly], ["x"])
    assert [pixel(v) for v in values] == [(3, 3)]
    touched, _, _ = sample_reference(path, [poly], ["x"], all_touched=True)
    assert sorted(pixel(v) for v in touched) == [(r, c) for r in (2, 3, 4) for c in (2, 3)]


# --------------------------------------------------------------------------------------
# Legends and class matching
# --------------------------------------------------------------------------------------
LEGEND = [
    {"value": 0, "name": "Unclassified", "color": "#000000"},
    {"value": 1, "name": "Kaolinite CM9 BECKb AREF", "color": "#1f78b4"},
    {"value": 2, "name": "Alunite  GDS84 Na03", "color": "#ff7f00"},
    {"value": 3, "name": "Muscovite GDS107", "color": "#6a3d9a"},
    {"value": 4, "name": "Muscovite IL107", "color": "#9e76c9"},
    {"value": 5, "name": "Calcite", "color": "#00ced1"},
]


def test_match_classes_by_name_first_word_and_code():
    mapping, unmatched, ambiguous = match_classes(LEGEND, [
        "kaolinite", "ALUNITE gds84   na03", " calcite ", "Muscovite", "Muscovite IL107", "Jarosite",
        "Kaolinite", "kaolinite", None, "", "Kaolinite CM9", "GDS84"])
    # the rules of the Spectra parameter: a unique start ("Kaolinite CM9") or part ("GDS84") of a name
    assert mapping == {"kaolinite": 1, "ALUNITE gds84   na03": 2, " calcite ": 5, "Muscovite IL107": 4,
                       "Kaolinite": 1, "Kaolinite CM9": 1, "GDS84": 2}
    assert unmatched == ["Muscovite", "Jarosite"]  # 'Muscovite' is ambiguous (two legend names)
    assert ambiguous == {"Muscovite": ["Muscovite GDS107", "Muscovite IL107"]}
    mapping, unmatched, _ = match_classes(LEGEND, [1, 5, 9, 3.0, "2", np.int64(4), " 0.0 ", "3"])
    assert mapping == {1: 1, 5: 5, 3.0: 3, "2": 2, 4: 4, " 0.0 ": 0, "3": 3}  # "3" is no part of "Na03"
    assert unmatched == [9]
    mapping, unmatched, _ = match_classes({10: "Hematite", 11: "Goethite"}, ["hematite", 11])
    assert mapping == {"hematite": 10, 11: 11} and unmatched == []


def test_legend_from_tag_and_fallbacks(tmp_path):
    tagged = write_codes(str(tmp_path / "tagged.tif"), legend=LEGEND)
    assert legend_from_raster(tagged) == LEGEND
    plain = str(tmp_path / "plain.tif")
    with rasterio.open(plain, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8", nodata=255,
                       transform=Affine(1.0, 0, 0, 0, -1.0, 3.0)) as ds:
        ds.write(np.array([[0, 1, 1, 3], [3, 255, 0, 1], [1, 1, 255, 3]], dtype=np.uint8), 1)
        ds.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 3: (0, 0, 255, 255)})
    legend = legend_from_raster(plain)
    assert [e["value"] for e in legend] == [0, 1, 3]
    assert [e["name"] for e in legend] == ["Class 0", "Class 1", "Class 3"]
    assert [e["color"] for e in legend] == ["#000000", "#ff0000", "#0000ff"]
    assert all(e["observed"] for e in legend)   # the codes the map holds, not its classes


def test_a_reference_class_the_plain_map_never_gives_counts_as_errors(tmp_path):
    """On a class raster without OreMap's legend, the legend is the codes the map holds: reference points of a class
    the map never gives (code 3) were left out as 'not in the legend', and the assessment said OA 1.0 of 4 points.
    They are omission errors: OA 0.5 of 8."""
    path = str(tmp_path / "plain.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=2, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32612", transform=Affine(1.0, 0, 0, 0, -1.0, 2.0)) as ds:
        ds.write(np.array([[1, 1, 2, 2], [1, 2, 1, 2]], dtype=np.uint8), 1)
    points = [Point(c + 0.5, 1.5 - r) for r in range(2) for c in range(4)]
    labels = [1, 1, 2, 2, 3, 3, 3, 3]
    result = assess_class_raster(path, points, labels)
    assert result["n_samples"] == 8 and result["overall_accuracy"] == pytest.approx(0.5)
    assert np.asarray(result["matrix"]).tolist() == [[2, 0, 0], [0, 2, 0], [2, 2, 0]]
    assert result["class_mapping"] == {"1": "Class 1", "2": "Class 2", "3": "Class 3"}
    # with OreMap's own legend (every class listed), a code outside it is still no class
    assert match_classes(LEGEND[:3], [1, 7]).unmatched == [7]


def test_the_dominant_mineral_map_is_assessed_by_mineral_name(tmp_path):
    """The abundance model's dominant-mineral raster carried its names in a tag the assessment did not read: a
    reference field of mineral names matched nothing ('Raster classes: Class 2, Class 3 ...')."""
    from abundance_scene import LISTED, make_scene, roi_pixels
    from oremap.core.abundance import abundance as ab
    from oremap.core.abundance.abundance_map import predict_abundance_map

    scene = make_scene(str(tmp_path), n_rows=2, n_cols=3, roi_size=4, seed=3)
    X, _, ids = roi_pixels(scene)
    comp = ab.prepare_compositions(scene["lab"][:, :4], LISTED)
    model = ab.train_abundance_model(X, comp.values[ids], ids, comp.names, families=["ridge"], n_folds=3, fcls=False,
                                     seed=0)
    model_path = model.save(str(tmp_path / "m.onnx"))
    dominant = str(tmp_path / "dominant.tif")
    predict_abundance_map(scene["raster"], model_path, str(tmp_path / "a.tif"), dominant_path=dominant)
    legend = legend_from_raster(dominant)
    assert [e["name"] for e in legend] == list(comp.names) and [e["value"] for e in legend] == \
        list(range(1, len(comp.names) + 1))
    with rasterio.open(dominant) as ds:
        data, transform = ds.read(1), ds.transform
    rows, cols = np.nonzero(data != ds.nodata)
    points = [Point(*(transform * (c + 0.5, r + 0.5))) for r, c in zip(rows[:20], cols[:20])]
    result = assess_class_raster(dominant, points, [comp.names[data[r, c] - 1] for r, c in zip(rows[:20], cols[:20])])
    assert result["n_samples"] == 20 and result["overall_accuracy"] == 1.0


# --------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------
@pytest.fixture
def class_map(tmp_path):
    """A 6 x 8 class raster with an OreMap legend: left half Kaolinite (1), right half Alunite (2),
    bottom row unclassified (0), one nodata pixel."""
    data = np.ones((6, 8), dtype=np.uint8)
    data[:, 4:] = 2
    data[5, :] = 0
    data[0, 0] = 255
    legend = LEGEND[:3]
    path = str(tmp_path / "classes.tif")
    with rasterio.open(path, "w", driver="GTiff", width=8, height=6, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32612", transform=ROTATED) as ds:
        ds.write(data, 1)
        ds.update_tags(OREMAP_CLASSES=json.dumps(legend))
    return path


def test_assess_class_raster_end_to_end(class_map, tmp_path):
    # Polygon A (kaolinite), cols 0-2 x rows 0-1: 6 centres, (0, 0) nodata -> 5 pixels, all map class 1.
    # Polygon B (alunite), cols 3-5 x rows 4-5: map 1, 2, 2 in row 4 and 0, 0, 0 in row 5.
    # Point C (alunite) in pixel (2, 6): map 2. Point D (jarosite): not in the legend.
    # Reference x map: kaolinite: 5 x 1; alunite: 1 x 1, 3 x 2 (2 + point), 3 x 0.
    geoms = [world(box(0.1, 0.1, 2.9, 1.9)), world(box(3.2, 4.1, 5.8, 5.9)), world(Point(6.5, 2.5)),
             world(Point(1.5, 1.5))]
    out = assess_class_raster(class_map, geoms, ["kaolinite", "Alunite", "alunite", "Jarosite"])
    assert out["labels"] == [0, 1, 2]
    assert out["names"] == ["Unclassified", "Kaolinite CM9 BECKb AREF", "Alunite  GDS84 Na03"]
    assert out["matrix"] == [[0, 0, 0], [0, 5, 0], [3, 1, 3]]
    assert out["overall_accuracy"] == pytest.approx(8 / 12, abs=1e-12)
    # Chance: rows (0, 5, 7) x cols (3, 6, 3) = 0 + 30 + 21 = 51; kappa = (12*8 - 51) / (144 - 51) = 45 / 93.
    assert out["kappa"] == pytest.approx(45 / 93, abs=1e-12)
    assert out["n_nodata"] == 1 and out["n_features"] == 4 and out["n_features_used"] == 3
    assert out["unmatched_labels"] == ["Jarosite"] and out["n_unmatched_features"] == 1
    assert out["class_mapping"]["kaolinite"] == "Kaolinite CM9 BECKb AREF"

    csv_path = str(tmp_path / "metrics.csv")
    metrics_table_csv(out, csv_path)
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Reference \\ Map", "Unclassified", "Kaolinite CM9 BECKb AREF", "Alunite  GDS84 Na03",
                       "Total", "Producer's accuracy"]
    assert rows[3][:5] == ["Alunite  GDS84 Na03", "3", "1", "3", "7"]
    assert float(rows[3][5]) == pytest.approx(3 / 7, abs=1e-6)
    assert rows[1][5] == ""  # producer's accuracy of Unclassified: no reference pixels, left empty
    measures = {r[0]: r[1] for r in rows if len(r) == 2}
    assert float(measures["Overall accuracy"]) == pytest.approx(8 / 12, abs=1e-6)
    assert float(measures["Kappa"]) == pytest.approx(45 / 93, abs=1e-6)

    page = accuracy_html(out, "Accuracy of <SAM> map")
    parse_html(page)
    assert page.count("<svg") == 2 and "Cohen" in page and "Jarosite" in page
    assert "Accuracy of &lt;SAM&gt; map" in page
    html_path = str(tmp_path / "accuracy.html")
    assert accuracy.write_accuracy_outputs(out, "Accuracy", html_path) == (html_path, None)
    parse_html((tmp_path / "accuracy.html").read_text(encoding="utf-8"))
    with pytest.raises(OreMapError) as err:
        accuracy.write_accuracy_outputs(out, "Accuracy", html_path, str(tmp_path / "missing" / "t.csv"))
    assert err.value.parameter == "table"


def test_assess_class_raster_fails_clearly(class_map):
    with pytest.raises(OreMapError) as err:
        assess_class_raster(class_map, [world(Point(1.5, 1.5))], ["Jarosite"])
    assert err.value.parameter == "reference_field" and "Kaolinite" in str(err.value)
    with pytest.raises(OreMapError) as err:
        assess_class_raster(class_map, [world(Point(100.5, 1.5))], ["Kaolinite"])
    assert err.value.parameter == "reference"


def test_a_band_the_raster_lacks_is_refused(codes):
    for band in (0, 2):
        with pytest.raises(OreMapError) as err:
            assess_class_raster(codes, [world(Point(0.5, 0.5))], ["a"], band=band)
        assert err.value.parameter == "raster" and f"Band {band}" in err.value.message


# --------------------------------------------------------------------------------------
# Numeric-looking class labels (issue 23): names first, codes only when no value is a name
# --------------------------------------------------------------------------------------
def numbered_map(path, names, codes_grid):
    """A 3 x 4 class raster whose legend gives code i + 1 the name ``names[i]``."""
    legend = [{"value": 0, "name": "Unclassified", "color": "#000000"}]
    legend += [{"value": i + 1, "name": n, "color": "#1f78b4"} for i, n in enumerate(names)]
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32612", transform=Affine(1.0, 0, 0, 0, -1.0, 3.0)) as ds:
        ds.write(np.asarray(codes_grid, dtype=np.uint8), 1)
        ds.update_tags(OREMAP_CLASSES=json.dumps(legend))
    return path


# The 12 pixels, row by row, hold the codes 1-12; pixel k (0-based) is the centre of column k % 4, row k // 4.
GRID = np.arange(1, 13).reshape(3, 4)
CENTRES = [Point(k % 4 + 0.5, 3 - (k // 4 + 0.5)) for k in range(12)]


@pytest.mark.parametrize("first", [0, 1])
@pytest.mark.parametrize("text_sorted", [False, True])
def test_numeric_labels_are_class_names_not_codes(tmp_path, first, text_sorted):
    # A model trained on a label_id field holding 0-11 (or 1-12): the legend names are those numbers, at
    # codes 1-12 in numeric order (OreMap now), or in text order ("0", "1", "10", "11", "2", ...: maps made
    # before). Pixel k holds code k + 1, i.e. the class named names[k]; its reference is that name's value.
    names = [str(v) for v in range(first, first + 12)]
    if text_sorted:
        names = sorted(names)
    path = numbered_map(str(tmp_path / "numbers.tif"), names, GRID)
    truth = [int(n) for n in names]
    for labels in (truth, [str(v) for v in truth], [float(v) for v in truth]):  # integer, text, double fields
        log = core_warnings()
        out = assess_class_raster(path, CENTRES, labels, feedback=log)
        assert out["overall_accuracy"] == 1.0 and out["n_samples"] == 12
        assert out["match_rule"] == "names" and out["unmatched_labels"] == []
        assert any("by class name; 0 of 12 reference features matched no class" in t for t in log.infos)
        assert log.warnings == []
    # The same field shifted by one (1-12 against the names 0-11): names still win; the value not a name
    # (12, or 0) is left out, not read as a code, and the log says so.
    shifted = [v + (1 if first == 0 else -1) for v in truth]
    log = core_warnings()
    out = assess_class_raster(path, CENTRES, shifted, feedback=log)
    assert out["match_rule"] == "names" and out["n_unmatched_features"] == 1
    assert out["n_samples"] == 11 and out["overall_accuracy"] == 0.0
    assert any("1 integer values of the class field are class codes but not class names" in t
               and "1 of 12 reference features matched no class" in t for t in log.infos)


def test_names_that_collide_with_codes(tmp_path):
    # Code 1 is named "3", code 2 "1", code 3 "2": a reference 3 is the class named "3" (code 1), never code 3.
    legend = {0: "Unclassified", 1: "3", 2: "1", 3: "2"}
    got = match_classes(legend, [3, "1", 2.0, " 2 "])
    assert got.mapping == {3: 1, "1": 2, 2.0: 3, " 2 ": 3} and got.rule == "names"
    # a number matches only the name with that value, never a name containing it
    got = match_classes({1: "13", 2: "Na03", 3: "Class 3"}, ["3", 13])
    assert got.mapping == {13: 1} and got.unmatched == ["3"] and got.rule == "names"
    assert got.n_code_only == 1  # 3 is a code, not a name: left out under the name rule
    # a plain class raster ("Class 1", ...) has no numeric names: integers are codes
    got = match_classes({1: "Class 1", 2: "Class 2", 5: "Class 5"}, [1, "5", 7, "Class 2"])
    assert got.rule == "codes" and got.mapping == {1: 1, "5": 5, "Class 2": 2} and got.unmatched == [7]
    # end to end: reference 3 everywhere on a map of code 1 named "3" -> all correct
    path = numbered_map(str(tmp_path / "collide.tif"), ["3", "1", "2"], np.ones((3, 4)))
    out = assess_class_raster(path, CENTRES[:4], [3, 3, "3", 3.0])
    assert out["overall_accuracy"] == 1.0 and out["names"] == ["3"]


def test_the_guard_warns_of_few_matches_and_of_a_far_lower_accuracy(tmp_path):
    names = [str(v) for v in range(12)]
    path = numbered_map(str(tmp_path / "guard.tif"), names, GRID)
    # 5 of 12 features labelled with classes the map lacks: fewer than half used
    labels = list(range(7)) + ["Jarosite"] * 5
    log = core_warnings()
    out = assess_class_raster(path, CENTRES, labels, feedback=log)
    assert out["n_features_used"] == 7 and log.warnings[-1:] != [] and len(out["guard_warnings"]) == 0
    labels = list(range(5)) + ["Jarosite"] * 7
    log = core_warnings()
    out = assess_class_raster(path, CENTRES, labels, feedback=log)
    assert out["n_features_used"] == 5 and out["overall_accuracy"] == 1.0
    assert len(out["guard_warnings"]) == 1 and "Only 5 of 12 reference features with a class" in log.warnings[-1]
    assert "class field" in log.warnings[-1]
    # a map that carries its model's validation accuracy (0.9): 3 of 12 right is far below it
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(OREMAP_MODEL_VALIDATION=json.dumps({"model": "m.onnx", "measure": "overall accuracy",
                                                          "value": 0.9}))
    labels = [0, 1, 2] + [3] * 9
    log = core_warnings()
    out = assess_class_raster(path, CENTRES, labels, feedback=log)
    assert out["overall_accuracy"] == pytest.approx(4 / 12)  # pixels 0-3 right
    assert len(out["guard_warnings"]) == 1
    assert "overall accuracy here, 0.333, is far below the 0.900" in log.warnings[-1]
    page = accuracy_html(out, "Accuracy")
    assert "far below the 0.900" in page
    # within 0.25 of the model's figure: no warning
    labels = list(range(9)) + [0] * 3
    out = assess_class_raster(path, CENTRES, labels, feedback=core_warnings())
    assert out["overall_accuracy"] == pytest.approx(0.75) and out["guard_warnings"] == []


def test_training_legends_order_numeric_names_by_value(tmp_path):
    from oremap.core.engine.class_order import sorted_class_names
    from oremap.core.engine.raster import RasterSource
    from oremap.core.hyperspectral.training import image_training_set

    assert sorted_class_names(["10", "2", "0", "1", "11", "2"]) == ["0", "1", "2", "10", "11"]
    assert sorted_class_names(["b", "10", "A", "9.5", "-1"]) == ["-1", "9.5", "10", "A", "b"]
    cube = str(tmp_path / "cube.tif")
    rng = np.random.default_rng(0)
    with rasterio.open(cube, "w", driver="GTiff", width=4, height=3, count=5, dtype="float32",
                       crs="EPSG:32612", transform=Affine(1.0, 0, 0, 0, -1.0, 3.0)) as ds:
        ds.write(rng.uniform(0.1, 0.6, (5, 3, 4)).astype(np.float32))
    with RasterSource(cube) as src:
        data = image_training_set(src, CENTRES, list(range(12)))
    assert data.class_names == [str(v) for v in range(12)]
    # pixel k is labelled k: its class index is k
    assert data.y.tolist() == list(range(12))
    with RasterSource(cube) as src:
        data = image_training_set(src, CENTRES, [str(v) for v in range(12, 0, -1)])  # text labels 12 ... 1
    assert data.class_names == [str(v) for v in range(1, 13)] and data.y.tolist() == list(range(11, -1, -1))


def test_a_class_whose_reference_polygons_give_no_pixel_is_warned_of(tmp_path):
    """Deposit footprints 300 m across on a 1 km map rarely cover a pixel centre: the log said only 'N reference
    pixels from M features', while one class's figures rested on few of its features."""
    path = str(tmp_path / "c.tif")
    with rasterio.open(path, "w", driver="GTiff", width=6, height=6, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32750", transform=Affine(1000.0, 0, 0, 0, -1000.0, 6000.0)) as ds:
        ds.write(np.ones((6, 6), np.uint8), 1)
    small = [box(x * 1000 + 100, 5000 - 1000 * x + 100, x * 1000 + 400, 5000 - 1000 * x + 400) for x in range(4)]
    centred = [box(4200, 1200, 4800, 1800)]                       # covers the centre of its pixel
    background = [box(0, 0, 2000, 2000), box(4000, 4000, 6000, 6000)]
    geometries = small + centred + background
    log = core_warnings()
    result = assess_class_raster(path, geometries, ["1"] * 5 + ["1", "1"], feedback=log)
    assert result["n_features_used"] == 3
    assert "4 reference features cover no pixel centre of the class raster (smaller than a pixel, or on its edge)." \
        in log.infos
    log = core_warnings()
    assess_class_raster(path, geometries, ["1"] * 5 + ["0", "0"], feedback=log)
    lost = [w for w in log.warnings if w.startswith("Most reference features of some classes gave no pixel")]
    assert len(lost) == 1 and "Class 1 1 of 5 features used" in lost[0]


def test_reference_points_outside_the_raster_are_counted_once():
    """70 of 100 points off the raster were reported twice: 'lie outside' and 'cover no pixel centre'."""
    from oremap.core.engine.accuracy import _sampling_notes

    notes = _sampling_notes({"n_features": 100, "n_features_used": 30, "n_samples": 30, "n_outside": 70,
                             "n_empty": 70})
    assert notes == ["30 of 100 reference features were used, giving 30 reference pixels.",
                     "70 reference points lie outside the class raster."]
    notes = _sampling_notes({"n_outside": 2, "n_empty": 5, "n_empty_small": 3})
    assert notes[-1] == ("3 reference features cover no pixel centre of the class raster (smaller than a pixel, or "
                         "on its edge).")


def test_each_empty_reference_feature_is_said_once_with_its_reason(tmp_path):
    """A point on nodata was said twice ('no data' and 'cover no pixel centre'), a polygon outside the raster was
    'smaller than a pixel', and points outside hid a nodata point from the count."""
    from oremap.core.engine.accuracy import _sampling_notes, sample_reference

    path = str(tmp_path / "c.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", nodata=255,
                       transform=Affine(1.0, 0, 0, 0, -1.0, 4.0)) as ds:
        data = np.ones((4, 4), np.uint8)
        data[0, 0] = 255
        ds.write(data, 1)
    geometries = [Point(0.5, 3.5),                                   # on the nodata pixel
                  MultiPoint([(10.0, 10.0), (11.0, 11.0)]),          # both points outside
                  box(20.0, 20.0, 21.0, 21.0),                       # a polygon outside
                  box(1.1, 1.1, 1.4, 1.4),                           # inside, smaller than a pixel
                  Point(2.5, 2.5)]                                   # fine
    sample = sample_reference(path, geometries, [1] * 5)
    assert (sample.n_nodata, sample.n_outside, sample.n_empty, sample.n_empty_small, sample.n_empty_outside) == \
        (1, 2, 4, 1, 1)
    notes = _sampling_notes({"n_nodata": sample.n_nodata, "n_outside": sample.n_outside, "n_empty": sample.n_empty,
                             "n_empty_small": sample.n_empty_small, "n_empty_outside": sample.n_empty_outside})
    assert notes == ["1 reference pixels were left out because the class raster has no data there.",
                     "2 reference points lie outside the class raster.",
                     "1 reference polygons or lines lie outside the class raster.",
                     "1 reference features cover no pixel centre of the class raster (smaller than a pixel, or on its "
                     "edge)."]


def test_only_subpixel_reference_polygons_are_refused_as_such(tmp_path):
    """5 m squares on a 1 km map lie on it but cover no pixel centre: the refusal sent the user to check the CRS."""
    path = str(tmp_path / "c.tif")
    with rasterio.open(path, "w", driver="GTiff", width=6, height=6, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32750", transform=Affine(1000.0, 0, 0, 0, -1000.0, 6000.0)) as ds:
        ds.write(np.ones((6, 6), np.uint8), 1)
    tiny = [box(x * 1000 + 100, 5000 - 1000 * x + 100, x * 1000 + 105, 5000 - 1000 * x + 105) for x in range(4)]
    with pytest.raises(OreMapError) as err:
        assess_class_raster(path, tiny, ["1"] * 4)
    assert err.value.message.startswith("No reference pixel: the 4 reference polygons or lines lie on the class "
                                        "raster but cover no pixel centre") and "Centroids" in err.value.fix
    far = [box(90000, 90000, 91000, 91000)]   # off the raster: still the CRS hint
    with pytest.raises(OreMapError) as err:
        assess_class_raster(path, far, ["1"])
    assert "same area, CRS" in err.value.fix


def test_accented_names_match_in_either_unicode_form():
    """'Hématite' typed with a combining accent (macOS, text pasted from a PDF) was another class."""
    import unicodedata

    from oremap.core.engine.names import name_key

    composed, decomposed = "Hématite", unicodedata.normalize("NFD", "Hématite")
    assert composed != decomposed and name_key(composed) == name_key(decomposed) == name_key("HÉMATITE ")
    legend = [{"value": 1, "name": composed, "color": "#ff0000"}]
    mapping, unmatched, _ = match_classes(legend, [decomposed])
    assert mapping == {decomposed: 1} and not unmatched


def _class_tif(path, data, dtype="uint8", nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=dtype,
                       nodata=nodata, crs="EPSG:32611", transform=Affine(30, 0, 500000, 0, -30, 4000000)) as ds:
        ds.write(data.astype(dtype), 1)
    return path


def test_class_names_kept_in_the_file_are_the_legend(tmp_path):
    """GDAL category names (an ENVI classification's 'class names', its gdal_translate copy) and a raster attribute
    table's names were never read: every class was 'Class N', and references naming them were refused as matching
    no class, with the advice to use the names the raster uses."""
    from osgeo import gdal

    data = np.repeat(np.arange(4, dtype=np.uint8)[None, :], 4, axis=0)
    names = ["Unclassified", "Kaolinite", "Alunite", "Muscovite"]
    categories = _class_tif(str(tmp_path / "categories.tif"), data)
    ds = gdal.Open(categories, gdal.GA_Update)
    ds.GetRasterBand(1).SetCategoryNames(names)
    ds = None
    attributes = _class_tif(str(tmp_path / "rat.tif"), data)
    rat = gdal.RasterAttributeTable()
    rat.CreateColumn("Value", gdal.GFT_Integer, gdal.GFU_Generic)
    rat.CreateColumn("Class_Name", gdal.GFT_String, gdal.GFU_Generic)
    for row, (code, name) in enumerate([(3, "Muscovite"), (1, "Kaolinite"), (2, "Alunite")]):
        rat.SetValueAsInt(row, 0, code)
        rat.SetValueAsString(row, 1, name)
    ds = gdal.Open(attributes, gdal.GA_Update)
    ds.GetRasterBand(1).SetDefaultRAT(rat)
    ds = None
    for path, expected in ((categories, names), (attributes, ["Class 0"] + names[1:])):
        assert [e["name"] for e in legend_from_raster(path)] == expected
        points = [Point(500000 + 30 * c + 15, 4000000 - 45) for c in range(1, 4)]
        result = assess_class_raster(path, points, ["kaolinite", "Alunite", "MUSCOVITE"])
        assert result["overall_accuracy"] == 1.0 and result["names"] == names[1:]


def test_whole_numbers_in_a_float_raster_are_class_codes(tmp_path):
    """QGIS's Reclassify by table writes Float32 by default: its class map was refused as 'not integers'."""
    data = np.repeat(np.array([1, 2, 3, -9999], np.float32)[None, :], 4, axis=0)
    path = _class_tif(str(tmp_path / "reclassified.tif"), data, "float32", nodata=-9999)
    assert [e["value"] for e in legend_from_raster(path)] == [1, 2, 3]
    points = [Point(500000 + 30 * c + 15, 4000000 - 45) for c in range(3)]
    assert assess_class_raster(path, points, [1, 2, 3])["overall_accuracy"] == 1.0
    fractions = _class_tif(str(tmp_path / "scores.tif"), data * 0.37, "float32")
    with pytest.raises(OreMapError, match="its values are not whole numbers"):
        legend_from_raster(fractions)


def test_curved_and_multisurface_reference_polygons_are_read_as_their_straight_outlines(run_alg, tmp_path):
    """A CurvePolygon (QGIS's curve digitising) or a MultiSurface layer (GeoPackage and FileGDB exports, even with
    straight rings only) stopped every polygon-reading algorithm with shapely's 'Unknown WKB type'. Now they are
    read as their straight outlines: the same result as the polygons saved as MultiPolygon."""
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsVectorLayer

    from oremap.algorithms import qt_compat as field_type

    path = str(tmp_path / "c.tif")
    classes = np.ones((6, 6), np.uint8)
    classes[:, 3:] = 2
    with rasterio.open(path, "w", driver="GTiff", width=6, height=6, count=1, dtype="uint8", nodata=0,
                       crs="EPSG:32750", transform=Affine(100.0, 0, 500000.0, 0, -100.0, 6000600.0)) as ds:
        ds.write(classes, 1)
    # a circle of radius 140 m around the centre of pixel (1, 1): it holds 5 pixel centres (the diagonal ones lie
    # 141 m away), all of class 1;
    # a square over columns 2-3 of rows 4-5: 2 pixels of class 1 and 2 of class 2, all referenced as class 2
    circle = "CURVEPOLYGON(CIRCULARSTRING(500290 6000450, 500150 6000310, 500010 6000450, 500150 6000590, " \
             "500290 6000450))"
    square = "POLYGON((500210 6000010, 500390 6000010, 500390 6000190, 500210 6000190, 500210 6000010))"
    straight = []
    for wkt in (circle, square):
        geometry = QgsGeometry.fromWkt(wkt)
        geometry.convertToStraightSegment()
        assert geometry.convertToMultiType()
        straight.append(geometry.asWkt())
    assert straight[0].startswith("MultiPolygon") and straight[0].count(",") > 100   # the circle as a polygon
    results = {}
    for kind, wkts in (("CurvePolygon", [circle, square]),
                       ("MultiSurface", [f"MULTISURFACE({circle[len('CURVEPOLYGON'):]})",
                                         f"MULTISURFACE({square[len('POLYGON'):]})"]),
                       ("MultiPolygon", straight)):
        layer = QgsVectorLayer(f"{kind}?crs=EPSG:32750", kind, "memory")
        layer.dataProvider().addAttributes([QgsField("cls", field_type.INT)])
        layer.updateFields()
        features = []
        for wkt, value in zip(wkts, (1, 2)):
            f = QgsFeature(layer.fields())
            f.setGeometry(QgsGeometry.fromWkt(wkt))
            f.setAttributes([value])
            features.append(f)
        assert layer.dataProvider().addFeatures(features) and layer.featureCount() == 2, kind
        try:
            results[kind] = run_alg("accuracy_assessment", {"INPUT": path, "REFERENCE": layer, "CLASS_FIELD": "cls",
                                                            "OUTPUT_HTML": str(tmp_path / f"{kind}.html")})
        finally:
            del layer
    for kind, result in results.items():
        assert result["OVERALL_ACCURACY"] == pytest.approx(7 / 9), kind   # 5 + 2 right of 9 reference pixels


def test_a_dominant_mineral_map_of_oremap_0_2_4_is_assessed_by_mineral_name(tmp_path):
    """OreMap 0.2.1-0.2.4 wrote the dominant-mineral raster's names in a tag of their own ('oremap_classes', codes
    1..n); the assessment named its classes 'Class 1..5' and refused reference points labelled by mineral, blaming
    the reference field."""
    path = str(tmp_path / "dominant_0_2_3.tif")
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=1, dtype="uint8", nodata=0,
                       crs="EPSG:32612", transform=Affine(1.0, 0, 0, 0, -1.0, 2.0)) as ds:
        ds.write(np.array([[1, 2, 3], [4, 5, 1]], dtype=np.uint8), 1)
        ds.write_colormap(1, {1: (255, 0, 0, 255), 2: (0, 255, 0, 255)})
        ds.update_tags(oremap_classes="kaolinite;muscovite;calcite;goethite;Other")
    legend = legend_from_raster(path)
    assert [(e["value"], e["name"]) for e in legend] == [
        (1, "kaolinite"), (2, "muscovite"), (3, "calcite"), (4, "goethite"), (5, "Other")]
    assert [e["color"] for e in legend[:2]] == ["#ff0000", "#00ff00"]   # from the file's colour table
    points = [Point(c + 0.5, 1.5 - r) for r in range(2) for c in range(3)]
    result = assess_class_raster(path, points, ["kaolinite", "muscovite", "calcite", "goethite", "Other", "calcite"])
    assert result["n_samples"] == 6 and result["overall_accuracy"] == pytest.approx(5 / 6)
