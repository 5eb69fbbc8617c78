"""SAM and SID against hand-computed values."""

import math

import numpy as np
import pytest

from oremap.core.hyperspectral import sam
from oremap.core.engine.errors import OreMapError


def test_angles_hand_computed():
    x = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0], [0.6, 0.8]])
    r = np.array([[1.0, 0.0], [4.0, 3.0]])
    a = sam.spectral_angles(x, r)
    assert a[0, 0] == 0.0
    assert a[1, 0] == pytest.approx(math.pi / 4, abs=1e-12)
    assert a[2, 1] == pytest.approx(math.acos(24 / 25), abs=1e-12)  # 0.283794...
    assert a[2, 1] == pytest.approx(0.2837941092, abs=1e-9)
    # brightness does not matter: [0.6, 0.8] is [3, 4] / 5
    assert a[3, 1] == pytest.approx(a[2, 1], abs=1e-12)
    assert sam.spectral_angles(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))[0, 0] == pytest.approx(math.pi / 2)


def test_sid_hand_computed():
    # p = [0.25, 0.75], q = [0.5, 0.5]: SID = sum (p - q)(ln p - ln q)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    d = sam.spectral_information_divergence(np.array([[1.0, 3.0]]), np.array([[1.0, 1.0], [2.0, 6.0]]))
    assert d[0, 0] == pytest.approx(expected, abs=1e-12)
    assert d[0, 0] == pytest.approx(0.2746530722, abs=1e-9)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-12)


def test_a_pixel_without_a_positive_value_is_unclassified_by_sid_as_by_sam():
    """Clipping made an all-zero or all-negative pixel flat, and SID gave it the flattest reference's class with a
    small divergence, under any threshold; SAM leaves it unclassified."""
    refs = np.array([[0.2, 0.4, 0.6, 0.8], [0.5, 0.5, 0.5, 0.45]])
    pixels = np.array([[0.0, 0.0, 0.0, 0.0], [-1.0, -2.0, -1.0, -3.0], [0.0, -0.1, 0.2, 0.0], [0.2, 0.4, 0.6, 0.8]])
    classes, score = sam.classify(pixels[:1], refs)
    assert classes.tolist() == [0] and np.isnan(score[0])          # SAM: no angle to a zero vector
    for threshold in (None, 0.01):
        classes, score = sam.classify(pixels, refs, method="sid", threshold=threshold)
        assert classes.tolist()[:2] == [0, 0] and np.isnan(score[:2]).all()
        assert classes[3] == 1 and score[3] == pytest.approx(0.0, abs=1e-6)
    # a pixel with one positive band still has a distribution
    assert np.isfinite(sam.spectral_information_divergence(pixels[2:3], refs)).all()


def test_sid_does_not_depend_on_brightness_where_a_band_is_zero():
    """SID compares band shares, so a pixel's brightness (shade, a x 10000 storage scale) must not matter. A band at
    0 was clipped to 1e-12 before the division: its share shrank as the pixel brightened and the class changed
    (2 at x 0.5, 1 at x 1). By hand, with the zero band's share at 1e-12 after closure:
    SID = sum (p - q)(ln p - ln q) = 10.6646 and 10.6761 at any brightness."""
    refs = np.array([[0.85, 0.48, 0.17, 0.88], [0.44, 0.03, 0.28, 0.39]])
    pixel = np.array([[0.0, 0.09, 0.56, 0.31]])
    p = np.array([1e-12, 0.09 / 0.96, 0.56 / 0.96, 0.31 / 0.96]) / (1 + 1e-12)
    expected = [float(np.sum((p - q) * (np.log(p) - np.log(q)))) for q in refs / refs.sum(axis=1, keepdims=True)]
    assert expected == pytest.approx([10.6646, 10.6761], abs=1e-4)
    for scale in (0.5, 1.0, 10000.0):
        classes, score = sam.classify(pixel * scale, refs, method="sid")
        assert classes.tolist() == [1] and score[0] == pytest.approx(expected[0], abs=1e-5)   # float32 scores
        d = sam.spectral_information_divergence(pixel * scale, refs)
        assert d[0] == pytest.approx(expected, abs=1e-9)
    # a negative band counts as 0, whatever the brightness
    assert sam.spectral_information_divergence(pixel * 3 - [[0.2, 0, 0, 0]], refs)[0] == pytest.approx(expected,
                                                                                                      abs=1e-9)


def test_a_reference_without_a_positive_value_takes_no_pixel_under_sid():
    """An all-zero or all-negative library spectrum was made flat, and SID gave it the pixels nearest a flat
    spectrum (5 of 1,600 on Jasper Ridge); SAM gives it none. Its divergences are now NaN."""
    refs = np.array([[0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 0.0, 0.0], [-0.1, -0.2, -0.1, -0.3]])
    pixels = np.array([[0.5, 0.5, 0.5, 0.5], [0.2, 0.4, 0.6, 0.8]])
    d = sam.spectral_information_divergence(pixels, refs)
    assert np.isnan(d[:, 1:]).all() and np.isfinite(d[:, 0]).all()
    classes, _ = sam.classify(pixels, refs, method="sid")
    assert classes.tolist() == [1, 1]


def test_classify_best_match_and_threshold():
    refs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pixels = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 2.0], [1.0, 1.0, 1.0]])
    classes, score = sam.classify(pixels, refs)
    assert classes.tolist() == [1, 3, 1]  # the tie on the last pixel goes to the first reference
    assert score[0] == pytest.approx(math.atan(0.1 / 0.9), abs=1e-6)
    assert score[2] == pytest.approx(math.acos(1 / math.sqrt(3)), abs=1e-6)
    classes, _ = sam.classify(pixels, refs, threshold=0.5)
    assert classes.tolist() == [1, 3, 0]  # 0.955 rad > 0.5: unclassified
    classes, _ = sam.classify(pixels, refs, method="sid")
    assert classes.tolist()[:2] == [1, 3]
    with pytest.raises(OreMapError):
        sam.classify(pixels, refs, method="euclid")


def test_zero_pixel_is_unclassified():
    classes, score = sam.classify(np.zeros((1, 3)), np.eye(3))
    assert classes.tolist() == [0] and np.isnan(score[0])
