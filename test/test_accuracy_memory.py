"""Accuracy assessment read window by window: the same answer as sampling every reference pixel at once, in memory
bounded by the window whatever the number of reference pixels (auditor: 35 million reference pixels took 2.2 GB at a
512 MB budget)."""

import math
import tracemalloc

import numpy as np
import pytest
import rasterio
import rasterio.features
from affine import Affine
from shapely import affinity
from shapely.geometry import LineString, MultiPoint, Point, Polygon, box

from oremap.core.engine import accuracy, sampling
from oremap.core.engine.accuracy import (
    _missing_label,
    assess_class_raster,
    legend_from_raster,
    match_classes,
    sample_reference,
    summary,
)
from oremap.core.engine.raster import RasterSource
from conftest import core_warnings

HEIGHT, WIDTH = 30, 40
ROTATED = Affine.translation(500000.0, 4100000.0) * Affine.rotation(30.0) * Affine.scale(10.0, -10.0)
NORTH_UP = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4100000.0)


def write_classes(path, transform):
    """uint8 class raster, codes 1-5 at random, nodata 255 at scattered pixels and in a block (rows 25-27, cols
    30-33)."""
    rng = np.random.default_rng(3)
    data = rng.integers(1, 6, size=(HEIGHT, WIDTH)).astype(np.uint8)
    data[rng.random((HEIGHT, WIDTH)) < 0.08] = 255
    data[25:28, 30:34] = 255
    data[4, 4] = 255
    with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32612", transform=transform) as ds:
        ds.write(data, 1)
    return path


def write_positions(path, transform):
    """uint16 raster whose value is row * 100 + col (a value tells its pixel); nodata 65535 at a few pixels."""
    data = (np.arange(HEIGHT)[:, None] * 100 + np.arange(WIDTH)[None, :]).astype(np.uint16)
    data[4, 4] = data[10, 17] = data[20, 3] = 65535
    with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="uint16",
                       nodata=65535, crs="EPSG:32612", transform=transform) as ds:
        ds.write(data, 1)
    return path


def reference_layer(transform):
    """Geometries (map coordinates) and labels: overlapping polygons of different and of the same class, points
    and MultiPoints (two points in one pixel, points outside, one on nodata), polygons partly and wholly outside,
    one smaller than a pixel, one on nodata only, a line, a class only the reference has (7), a feature without
    geometry and one without a class."""
    rng = np.random.default_rng(11)
    layer = [
        (box(2.3, 1.7, 20.6, 12.2), 1),
        (box(15.1, 8.4, 33.7, 25.9), 2),                      # overlaps the first: another class
        (box(16.2, 9.1, 19.8, 11.6), 1),                      # inside both: the first one's class
        (Polygon([(22.3, 0.4), (39.2, 3.3), (27.7, 14.2)]), 3),
        (box(-5.2, 20.3, 6.6, 35.1), 4),                      # partly outside
        (box(45.0, 5.0, 50.0, 9.0), 5),                       # outside
        (box(7.1, 7.1, 7.3, 7.3), 2),                         # smaller than a pixel
        (Point(4.5, 4.5), 3),                                 # on nodata
        (Point(-2.0, 3.0), 3),                                # outside
        (MultiPoint([(10.2, 20.2), (10.7, 20.8), (-4.0, 1.0), (35.5, 28.5)]), 5),
        (Point(12.5, 27.5), 7),
        (None, 1),
        (box(1.0, 1.0, 5.0, 5.0), None),
        (box(30.2, 25.2, 33.8, 27.8), 2),                     # on nodata only
        (LineString([(1.2, 28.3), (12.7, 16.1), (38.6, 18.4)]), 4),
        (Polygon([(0.5, 14.5), (9.5, 14.5), (9.5, 18.5), (0.5, 18.5)]), 5),   # edges through pixel centres
    ]
    for x, y in rng.uniform(-1.0, [WIDTH + 1.0, HEIGHT + 1.0], size=(25, 2)):
        layer.append((Point(x, y), int(rng.integers(1, 6))))
    t = transform
    geoms = [affinity.affine_transform(g, [t.a, t.b, t.d, t.e, t.xoff, t.yoff]) if g is not None else None
             for g, _ in layer]
    return geoms, [label for _, label in layer]


def every_pixel_at_once(path, geoms, labels, all_touched=False):
    """The assessment's figures as the code before streaming computed them: every reference pixel sampled at once
    (:func:`sample_reference`), then the confusion matrix of the two per-pixel arrays."""
    legend = legend_from_raster(path)
    names = {e["value"]: e["name"] for e in legend}
    mapping = match_classes(legend, labels).mapping
    codes = [mapping.get(v) if not _missing_label(v) else None for v in labels]
    sample = sample_reference(path, geoms, codes, all_touched=all_touched)
    reference = sample.labels.astype(np.int64)
    classes = sorted(set(np.unique(reference).tolist()) | set(np.unique(sample.values).tolist()))
    expected = summary(reference, sample.values, classes, [names.get(c, f"Class {c}") for c in classes])
    expected.update(n_nodata=sample.n_nodata, n_outside=sample.n_outside, n_empty=sample.n_empty,
                    n_empty_small=sample.n_empty_small, n_empty_outside=sample.n_empty_outside,
                    n_features_used=len(labels) - sample.n_skipped - sample.n_empty)
    return expected, sample


def same(a, b):
    """Equal, NaN equal to NaN, and of the same type (a number stays an int or a float)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def run(path, geoms, labels, monkeypatch, windows=None, all_touched=False):
    """assess_class_raster with ``windows`` = (window pixels, mask pixels) instead of the budget's; the result and
    the log (infos, warnings)."""
    if windows is not None:
        monkeypatch.setattr(accuracy, "reference_window_pixels", lambda memory_mb=None: windows)
    log = core_warnings()
    result = assess_class_raster(path, geoms, labels, all_touched=all_touched, feedback=log)
    monkeypatch.undo()
    return result, (log.infos, log.warnings)


@pytest.mark.parametrize("transform", [ROTATED, NORTH_UP], ids=["rotated", "north-up"])
@pytest.mark.parametrize("all_touched", [False, True], ids=["centres", "all-touched"])
def test_streamed_assessment_equals_sampling_every_pixel(tmp_path, monkeypatch, transform, all_touched):
    path = write_classes(str(tmp_path / "classes.tif"), transform)
    geoms, labels = reference_layer(transform)
    expected, sample = every_pixel_at_once(path, geoms, labels, all_touched)
    # the layer reaches every case
    assert sample.n_nodata > 0 and sample.n_outside >= 2 and sample.n_empty_outside == 1
    assert sample.n_empty_small == (0 if all_touched else 1)   # the polygon smaller than a pixel touches some
    assert 7 in expected["labels"] and expected["n_samples"] > 500
    result, log = run(path, geoms, labels, monkeypatch, all_touched=all_touched)
    for key, value in expected.items():
        assert same(result[key], value), key
    assert result["n_skipped"] == 2
    # windows of a few pixels (each polygon still rasterised whole): the same figures, notes and log lines
    for windows in [(1, 10 ** 9), (7, 10 ** 9), (60, 10 ** 9)]:
        small, small_log = run(path, geoms, labels, monkeypatch, windows=windows, all_touched=all_touched)
        assert same(small, result), windows
        assert small_log == log, windows
    assert accuracy._sampling_notes(result) == accuracy._sampling_notes(expected | {
        k: result[k] for k in ("n_features", "unmatched_labels", "match_rule", "class_mapping", "guard_warnings")})


def test_strips_of_a_polygon_rasterised_apart_give_the_same_pixels_on_a_north_up_raster(tmp_path, monkeypatch):
    """Beyond the mask budget a polygon is rasterised strip by strip: on a north-up raster with pixel centres the
    strips' coordinates are exact, so the pixels are the same, edges through pixel centres included."""
    path = write_classes(str(tmp_path / "classes.tif"), NORTH_UP)
    geoms, labels = reference_layer(NORTH_UP)
    result, log = run(path, geoms, labels, monkeypatch)
    for windows in [(1, 1), (9, 9), (45, 45)]:
        tiled, tiled_log = run(path, geoms, labels, monkeypatch, windows=windows)
        assert same(tiled, result) and tiled_log == log, windows


@pytest.mark.parametrize("transform", [ROTATED, NORTH_UP], ids=["rotated", "north-up"])
@pytest.mark.parametrize("all_touched", [False, True], ids=["centres", "all-touched"])
def test_covered_stream_reads_the_pixels_of_pixels_under(tmp_path, transform, all_touched):
    """Pixel by pixel (values tell the pixel), feature by feature: the stream reads what pixels_under and
    read_covered read, a pixel under two features once for each, in windows of at most max_window_pixels."""
    path = write_positions(str(tmp_path / "positions.tif"), transform)
    geoms, _ = reference_layer(transform)
    with RasterSource(path, bands=[1], scale=1) as src:
        pixels = sampling.pixels_under(geoms, src.transform, src.width, src.height, all_touched=all_touched)
        values, valid = sampling.read_covered(src.read, pixels)
        wanted = sorted(zip(pixels.index.tolist(), values[:, 0].tolist(), valid.tolist()))
        for window in (1, 5, 64, 1 << 20):
            stream = sampling.CoveredStream(geoms, src.transform, src.width, src.height, all_touched=all_touched,
                                            max_window_pixels=window, max_mask_pixels=1 << 20)
            got = []
            for features, block, ok in stream.blocks(src.read):
                assert features.size == block.shape[0] == ok.size <= window
                got += zip(features.tolist(), block[:, 0].tolist(), ok.tolist())
            assert sorted(got) == wanted, window
            assert stream.largest_window <= window
            assert stream.n_outside == pixels.n_outside
            np.testing.assert_array_equal(stream.n_covered, np.bincount(pixels.index, minlength=len(geoms)))
            np.testing.assert_array_equal(stream.n_valid, np.bincount(pixels.index[valid], minlength=len(geoms)))


def test_sample_reference_labels_are_looked_up_per_feature(tmp_path):
    """sample_reference's labels (now one lookup per feature, not a Python list of every pixel): same values and
    type as the feature's label, text and numbers mixed."""
    path = write_classes(str(tmp_path / "classes.tif"), ROTATED)
    geoms, labels = reference_layer(ROTATED)
    labels = [("name %d" % v if i % 3 == 0 else v) if v is not None else None for i, v in enumerate(labels)]
    values, got, features = sample_reference(path, geoms, labels)
    assert got.dtype.kind == "U" and got.size == values.size
    assert got.tolist() == [str(labels[i]) for i in features]
    _, numbers, features = sample_reference(path, geoms, [v if isinstance(v, int) else None for v in labels])
    assert numbers.dtype == np.int64 and numbers.tolist() == [labels[i] for i in features]


def test_windows_and_masks_stay_within_the_bound(tmp_path, monkeypatch):
    """Not timed: with 64-pixel windows every read, every rasterised mask and every block of pixels stays near 64
    pixels, though the polygons cover hundreds, and the answer is unchanged."""
    path = write_classes(str(tmp_path / "classes.tif"), NORTH_UP)
    geoms, labels = reference_layer(NORTH_UP)
    result, _ = run(path, geoms, labels, monkeypatch)
    reads, masks, blocks = [], [], []
    real_read, real_mask, real_blocks = RasterSource.read, rasterio.features.geometry_mask, \
        sampling.CoveredStream.blocks

    def read(self, window):
        reads.append(int(window.width) * int(window.height))
        return real_read(self, window)

    def mask(geometries, out_shape, transform, **kwargs):
        masks.append(out_shape[0] * out_shape[1])
        return real_mask(geometries, out_shape, transform, **kwargs)

    def spy_blocks(self, read, feedback=None):
        for block in real_blocks(self, read, feedback):
            blocks.append(block[0].size)
            yield block

    monkeypatch.setattr(accuracy, "reference_window_pixels", lambda memory_mb=None: (64, 64))
    monkeypatch.setattr(RasterSource, "read", read)
    monkeypatch.setattr(rasterio.features, "geometry_mask", mask)
    monkeypatch.setattr(sampling.CoveredStream, "blocks", spy_blocks)
    bounded = assess_class_raster(path, geoms, labels)
    monkeypatch.undo()
    assert same(bounded, result)
    assert len(reads) > 20 and max(reads) <= 64
    assert max(blocks) <= 64 and sum(blocks) == result["n_samples"] + result["n_nodata"]
    # polygons larger than 64 pixels rasterised in strips of 64 pixels, each with a margin of 2 pixels around it
    margin = sampling.TILE_MARGIN
    assert max(masks) <= 64 + 2 * margin * (HEIGHT + WIDTH) + 4 * margin ** 2


def test_memory_of_a_covered_raster_stays_within_the_budget_not_the_pixel_count(tmp_path, monkeypatch):
    """Not timed. 1500 x 1500 class raster covered by 9 parcels and one polygon over all of them (4.5 million
    reference pixels): sampling every pixel at once traced about 63 bytes per reference pixel (~280 MB); streamed
    under a 64 MB budget the traced peak stays under 40 MB, and the matrix is that of the pixels."""
    size, parcel = 1500, 500
    rng = np.random.default_rng(5)
    data = rng.integers(1, 5, size=(size, size)).astype(np.uint8)
    data[:7, :] = 255
    path = str(tmp_path / "big.tif")
    transform = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 7000000.0)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32612", transform=transform, tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(data, 1)

    def world(x0, y0, x1, y1):
        (a, b), (c, d) = transform * (x0, y1), transform * (x1, y0)
        return box(a, b, c, d)

    geoms, labels, expected = [], [], np.zeros((4, 4), np.int64)
    for k, (r, c) in enumerate((r, c) for r in range(0, size, parcel) for c in range(0, size, parcel)):
        geoms.append(world(c + 0.2, r + 0.2, c + parcel - 0.2, r + parcel - 0.2))   # centres of its 500 x 500 pixels
        labels.append(k % 4 + 1)
        block = data[r:r + parcel, c:c + parcel].astype(np.int64)
        block = block[block != 255]
        expected[k % 4] += np.bincount(block - 1, minlength=4)
    geoms.append(world(0.0, 0.0, size, size))
    labels.append(2)
    expected[1] += np.bincount(data[data != 255].astype(np.int64) - 1, minlength=4)
    monkeypatch.setenv("OREMAP_MEMORY_MB", "64")
    tracemalloc.start()
    try:
        result = assess_class_raster(path, geoms, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["labels"] == [1, 2, 3, 4]
    np.testing.assert_array_equal(result["matrix"], expected)
    assert result["n_samples"] == 2 * int((data != 255).sum()) and result["n_nodata"] == 2 * 7 * size
    assert peak < 40 * 2 ** 20, f"traced peak {peak / 2 ** 20:.0f} MB"


def test_pairs_are_counted_per_window_for_close_and_far_apart_codes():
    """Pairs summed over windows as one count of all pixels: codes of a few classes (one bincount over their span)
    and codes far apart or negative (np.unique)."""
    from collections import Counter

    rng = np.random.default_rng(2)
    for codes in ([0, 1, 2, 3, 4, 5], [-3, 7, 65534, 2 ** 31 - 1, -2 ** 31]):
        reference, values = rng.choice(codes, 5000), rng.choice(codes, 5000)
        pairs = {}
        for start in range(0, 5000, 700):
            accuracy._count_pairs(pairs, reference[start:start + 700].astype(np.int64),
                                  values[start:start + 700].astype(np.int64))
        assert pairs == dict(Counter(zip(reference.tolist(), values.tolist())))
        tally = accuracy.ReferenceTally(pairs, [0])
        assert tally.classes == sorted(set(codes)) and tally.n_samples == 5000
        np.testing.assert_array_equal(tally.matrix(), accuracy.confusion_matrix(reference, values, tally.classes))
