"""Evaluation of prospectivity/anomaly scores and element selection: known answers, rasters, points, real survey.

Expected values are worked out by hand in the comments (Mann-Whitney counts, the Hanley &
McNeil arithmetic, precision-recall steps, P-A crossings) or by brute force (pairwise
comparisons, distances to every pixel centre).
"""

import csv
import os
import re
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import rasterio
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
)
from oremap.algorithms import qt_compat as field_type
from rasterio.transform import from_origin

from conftest import SHARED_DATA
from test_bad_input import expect_failure
from oremap.core.geochemistry import geochem
from oremap.core.geochemistry import prospectivity_eval as pe
from oremap.core.geochemistry import element_selection as es
from oremap.core.geochemistry import evaluation_report as er
from oremap.core.engine.errors import OreMapError

trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2.4 removed trapz; 1.24 has no trapezoid
SURVEY = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv")
SITES = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au_site.csv")
UTM = "EPSG:32750"


def brute_auc(pos, neg):
    """P(pos > neg) + 0.5 P(pos == neg) by comparing every pair."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


# --------------------------------------------------------------------------------------
# Measures by hand
# --------------------------------------------------------------------------------------
def test_auc_se_zauc_by_hand():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.3, 0.2, 0.1: of the 3 x 4 = 12 pairs the positive wins
    # 4 + 4 + 3 = 11 (0.4 loses to 0.7), so AUC = 11/12.
    scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0, 0]
    a = Fraction(11, 12)
    assert pe.roc_auc(scores, labels) == pytest.approx(float(a), abs=1e-15)
    # Hanley & McNeil: Q1 = A/(2-A) = (11/12)/(13/12) = 11/13; Q2 = 2A^2/(1+A) = (242/144)/(23/12) = 121/138;
    # A^2 = 121/144, A(1-A) = 11/144.
    # var = (11/144 + (3-1)(11/13 - 121/144) + (4-1)(121/138 - 121/144)) / 12
    #     = (11/144 + 2 * 11/1872 + 3 * 121/3312) / 12 = 0.19774... / 12 = 0.0164785...
    q1, q2 = Fraction(11, 13), Fraction(121, 138)
    assert q1 == a / (2 - a) and q2 == 2 * a * a / (1 + a)
    var = (a * (1 - a) + 2 * (q1 - a * a) + 3 * (q2 - a * a)) / 12
    assert float(var) == pytest.approx(0.0164785, abs=1e-7)
    se = float(var) ** 0.5                           # 0.128369...
    assert pe.auc_standard_error(11 / 12, 3, 4) == pytest.approx(se, rel=1e-12)
    assert se == pytest.approx(0.128369, abs=1e-6)
    assert pe.zauc(11 / 12, 3, 4) == pytest.approx((11 / 12 - 0.5) / se, rel=1e-12)  # 3.2459
    assert pe.zauc(11 / 12, 3, 4) == pytest.approx(3.2459, abs=1e-4)
    # symmetric: an element lower near the deposits and its values negated (AUC A and 1 - A, the same samples) have
    # one standard error, taken at max(A, 1 - A): at A itself 0.3 got 0.0706 and 0.7 got 0.0934 (10 and 700)
    assert pe.zauc(0.2, 5, 5) == pytest.approx(-pe.zauc(0.8, 5, 5))
    assert pe.auc_standard_error(0.3, 10, 700) == pe.auc_standard_error(0.7, 10, 700) == pytest.approx(0.0934, abs=1e-4)
    assert pe.zauc(0.3, 10, 700) == pytest.approx(-pe.zauc(0.7, 10, 700)) == pytest.approx(-2.14, abs=0.01)
    assert pe.zauc(1.0, 5, 5) == np.inf and pe.auc_standard_error(1.0, 5, 5) == 0.0
    # the rank test's z: the standard error at AUC 0.5, (n_pos + n_neg + 1) / (12 n_pos n_neg)
    assert pe.null_z(1.0, 2, 2) == pytest.approx(0.5 / np.sqrt(5 / 48))            # 1.55
    assert pe.null_z(0.0, 3, 3) == pytest.approx(-0.5 / np.sqrt(7 / 108))          # -1.96
    assert pe.null_z(0.5, 3, 4) == 0.0
    assert pe.null_z(11 / 12, 3, 4) == pytest.approx((11 / 12 - 0.5) / pe.auc_standard_error(0.5, 3, 4))
    # vectorised
    np.testing.assert_allclose(pe.auc_standard_error(np.array([11 / 12, 0.5]), 3, 4),
                               [se, np.sqrt((0.25 + 2 * (1 / 3 - 0.25) + 3 * (1 / 3 - 0.25)) / 12)])


def test_auc_ties_count_one_half():
    # positives 1, 2, 2; negatives 2, 0. Pairs: (1,2) 0, (1,0) 1, (2,2) .5, (2,0) 1, (2,2) .5, (2,0) 1 -> 4/6
    assert pe.roc_auc([1, 2, 2, 2, 0], [1, 1, 1, 0, 0]) == pytest.approx(4 / 6)
    assert pe.roc_auc([3, 3, 3, 3], [1, 0, 1, 0]) == 0.5
    # labels other than 0/1 and NaN scores are left out
    assert pe.roc_auc([1, 2, 2, 2, 0, 9, np.nan], [1, 1, 1, 0, 0, -1, 1]) == pytest.approx(4 / 6)
    assert np.isnan(pe.roc_auc([1, 2], [1, 1]))
    fpr, tpr, thr = pe.roc_curve([1, 2, 2, 2, 0], [1, 1, 1, 0, 0])
    # thresholds inf, 2, 1, 0: at 2 two of 3 positives and 1 of 2 negatives; at 1 all positives
    np.testing.assert_allclose(fpr, [0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 2 / 3, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 2, 1, 0])
    # trapezoids under the curve = the AUC (ties as a diagonal step)
    assert trapezoid(tpr, fpr) == pytest.approx(4 / 6)


def test_average_precision_by_hand():
    # ranked: 0.9 (+), 0.8 (-), 0.7 (+), 0.6 (-), 0.5 (+): precision at each positive 1/1, 2/3, 3/5,
    # each adding 1/3 recall: AP = (1 + 2/3 + 3/5) / 3 = 34/45
    assert pe.average_precision([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 1]) == pytest.approx(34 / 45)
    # tie: 0.9 (+) then 0.8 (+ and -) together: recall 1/2 at precision 1, then recall 1 at precision 2/3
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert pe.average_precision([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0]) == pytest.approx(5 / 6)
    assert pe.average_precision([0.3, 0.2], [1, 1]) == 1.0
    assert np.isnan(pe.average_precision([0.3, 0.2], [0, 0]))


def test_label_by_distance_on_a_crafted_layout():
    dx, dy = [0.0, 10000.0], [0.0, 0.0]
    points = [(500, 0, 1),        # 500 from the first deposit
              (2000, 0, 1),       # exactly the radius: positive
              (3000, 0, -1),      # between 2000 and 4000: left out
              (4000, 0, 0),       # exactly the minimum distance: negative
              (5000, 0, 0),       # 5000 from both
              (7000, 0, -1),      # 3000 from the second
              (10000, 1999, 1),   # 1999 from the second
              (-3000, -3000, 0),  # 4243 from the first
              (np.nan, 0, -1)]    # no position
    x, y, expected = (np.array(v, float) for v in zip(*points))
    labels = pe.label_by_distance(x, y, dx, dy, 2000, 4000)
    assert labels.dtype == np.int8
    assert labels.tolist() == expected.astype(int).tolist()
    # equal distances: nothing left out
    assert pe.label_by_distance(x, y, dx, dy, 2000, 2000).tolist() == [1, 1, 0, 0, 0, 0, 1, 0, -1]
    with pytest.raises(OreMapError) as err:
        pe.label_by_distance(x, y, dx, dy, 2000, 1000)
    assert err.value.parameter == "negative_min_distance"
    with pytest.raises(OreMapError) as err:
        pe.label_by_distance(x, y, [], [], 2000, 4000)
    assert err.value.parameter == "deposits"


def test_repeated_draws_deterministic_and_seed_dependent():
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(15, int), np.zeros(300, int), -np.ones(20, int)]
    scores = np.r_[rng.normal(1, 1, 15), rng.normal(0, 1, 300), rng.normal(5, 1, 20)]
    a = pe.repeated_negative_auc(scores, labels, n_draws=20, seed=3)
    b = pe.repeated_negative_auc(scores, labels, n_draws=20, seed=3)
    c = pe.repeated_negative_auc(scores, labels, n_draws=20, seed=4)
    assert np.array_equal(a["aucs"], b["aucs"]) and np.array_equal(a["aps"], b["aps"])
    assert not np.array_equal(a["aucs"], c["aucs"])
    assert a["aucs"].size == 20 and len(np.unique(a["aucs"])) > 5  # the draws differ from each other
    assert a["n_positive"] == 15 and a["n_negatives"] == 15 and a["n_candidates"] == 300
    assert a["mean"] == pytest.approx(a["aucs"].mean()) and a["sd"] == pytest.approx(np.std(a["aucs"], ddof=1))
    assert a["ap_mean"] == pytest.approx(a["aps"].mean())
    # against all 300 negatives (the 20 label -1 scores, all high, are left out)
    assert a["auc_all"] == pytest.approx(brute_auc(scores[:15], scores[15:315]))
    # the mean ROC curve on the grid integrates to about the mean AUC
    assert trapezoid(a["roc_tpr_mean"], a["roc_fpr"]) == pytest.approx(a["mean"], abs=0.01)
    # asking for more negatives than exist takes them all: every draw is the full AUC
    full = pe.repeated_negative_auc(scores, labels, n_draws=3, n_negatives=1000, seed=0)
    assert full["n_negatives"] == 300 and np.allclose(full["aucs"], full["auc_all"]) and full["sd"] < 1e-12
    np.testing.assert_allclose(full["aps"], pe.average_precision(scores, labels))
    fpr, tpr, _ = pe.roc_curve(scores, labels)
    np.testing.assert_allclose(full["roc_tpr"][0][1::2], np.interp(pe.ROC_GRID, fpr, tpr))  # no tied scores here
    # the plotted curve has each draw's AUC as its area when the curve's points lie on grid values (10 negatives,
    # tied scores included); one value per grid point (the upper one at a jump) made it larger by up to 0.005
    rng = np.random.default_rng(4)
    tied = np.round(rng.normal(size=60), 1)
    few = pe.repeated_negative_auc(np.r_[tied[:20] + 0.3, tied[20:]], np.r_[np.ones(20), np.zeros(40)], n_draws=6,
                                   n_negatives=10, seed=1)
    assert np.array_equal(few["roc_fpr"], np.repeat(pe.ROC_GRID, 2))
    np.testing.assert_allclose([trapezoid(t, few["roc_fpr"]) for t in few["roc_tpr"]], few["aucs"], rtol=0, atol=1e-12)
    with pytest.raises(OreMapError) as err:
        pe.repeated_negative_auc([1.0, 0.0, 0.5], [1, 0, 0])
    assert err.value.parameter == "deposits"
    with pytest.raises(OreMapError) as err:
        pe.repeated_negative_auc([1.0, 0.9, 0.5], [1, 1, -1])
    assert err.value.parameter == "negative_min_distance"


def test_success_rate_and_prediction_area_by_hand():
    area = np.arange(1.0, 11.0)           # ten cells scoring 1..10
    deposits = np.array([6.0, 8.0, 9.0, 10.0])
    # Success rate: deposit 10 ties with the top cell (diagonal to 10 % area, 25 % deposits), 9 and 8 are
    # captured once 20 % and 30 % of the area is taken (each tie a diagonal step), 6 at 50 %.
    s = pe.success_rate_curve(area, deposits)
    np.testing.assert_allclose(s["area"], [0, 0, .1, .1, .2, .2, .3, .4, .5, 1])
    np.testing.assert_allclose(s["deposits"], [0, 0, .25, .25, .5, .5, .75, .75, 1, 1])
    # AUC = P(deposit > cell) + 0.5 P(equal): (5.5 + 7.5 + 8.5 + 9.5) / 40 = 31/40
    assert s["auc"] == pytest.approx(31 / 40)
    assert s["auc"] == pytest.approx(brute_auc(deposits, area))
    # P-A: area % at t = (11 - t) * 10, prediction rate 100 (t <= 6), 75 (7, 8), 50 (9), 25 (10).
    # 100 - area % = 10 (t - 1); rate - (100 - area) = 15 at t = 7, 5 at t = 8, -30 at t = 9:
    # the crossing is 5/35 = 1/7 of the way from 8 to 9: threshold 8 + 1/7, rate 75 - 25/7 = 71.43 %.
    pa = pe.prediction_area(area, deposits)
    np.testing.assert_allclose(pa["thresholds"], area)
    np.testing.assert_allclose(pa["area_percent"], (11 - area) * 10)
    np.testing.assert_allclose(pa["prediction_rate"], [100] * 6 + [75, 75, 50, 25])
    t, rate = pa["intersection"]
    assert t == pytest.approx(8 + 1 / 7) and rate == pytest.approx(75 - 25 / 7)
    # an exact crossing on a threshold: deposits 9, 10 -> at t = 9 rate 100 and 100 - area = 80; at t = 10 rate 50,
    # 100 - area = 90 -> f = 20, then -40: 1/3 of the way, threshold 9 1/3, rate 100 - 50/3
    t, rate = pe.prediction_area(area, [9.0, 10.0])["intersection"]
    assert t == pytest.approx(9 + 1 / 3) and rate == pytest.approx(100 - 50 / 3)


def test_element_selection_by_hand():
    # 4 positives, 6 negatives; element A higher near deposits, B lower, C with a missing value, D constant
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, -1])
    A = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 100]
    B = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]
    C = [9, np.nan, 1, 6, 5, 4, 3, np.nan, 1, 0, 100]
    D = [1] * 11
    rows = es.element_selection(np.column_stack([A, B, C, D]), ["A", "B", "C", "D"], labels, threshold=2.0)
    by = {r["element"]: r for r in rows}
    assert by["A"]["auc"] == 1.0 and by["A"]["zauc"] == np.inf and by["A"]["selected"]
    assert by["B"]["auc"] == 0.0 and by["B"]["direction"] == "negative" and not by["B"]["selected"]
    # C: positives 9, 1, 6 against negatives 5, 4, 3, 1, 0: 5 + 0.5 + 1 (1 vs 0) + 5 = 11.5... by pairs:
    # 9 beats 5; 6 beats 5; 1 ties with 1 and beats 0 -> (5 + 5 + 1.5) / 15 = 11.5/15
    assert by["C"]["n_pos"] == 3 and by["C"]["n_neg"] == 5
    assert by["C"]["auc"] == pytest.approx(11.5 / 15)
    assert by["C"]["se"] == pytest.approx(pe.auc_standard_error(11.5 / 15, 3, 5))
    assert by["C"]["zauc"] == pytest.approx((11.5 / 15 - 0.5) / by["C"]["se"])
    assert by["D"]["auc"] == 0.5 and by["D"]["direction"] == "none" and by["D"]["zauc"] == 0
    assert [r["element"] for r in rows] == ["A", "C", "D", "B"]  # by ZAUC, highest first
    two = es.element_selection(np.column_stack([A, B, C, D]), ["A", "B", "C", "D"], labels, threshold=2.0,
                               two_sided=True)
    assert [r["element"] for r in two][:2] in (["A", "B"], ["B", "A"]) and all(
        r["selected"] for r in two if r["element"] in "AB")
    # the chart draws the perfect separators (ZAUC +-inf) too, capped beyond the largest finite bar and named so
    html = es.element_selection_report(rows, "t", threshold=2.0)
    chart = html[html.index("<svg"):]
    cap = 1.25 * max(abs(by["C"]["zauc"]), 2.0, 1.0)
    assert "A (+\u221e)" in chart and "B (\u2212\u221e)" in chart and f"drawn at {cap:.3g}" in chart
    assert by["A"]["z_null"] == pytest.approx(0.5 / np.sqrt(11 / 288))   # 2.56: A passes the rank test too


def test_a_perfect_split_of_a_few_values_is_not_selected():
    """A sparse column measured in 2 samples near deposits and 2 far: AUC 1, standard error 0, ZAUC infinite, and
    it was selected and ranked above a real signal. The rank test's z (1.55; exact p 1/6) holds it back."""
    labels = np.r_[np.ones(10, int), np.zeros(30, int)]
    rng = np.random.default_rng(0)
    real = np.r_[rng.normal(2.0, 1.0, 10), rng.normal(0.0, 1.0, 30)]
    sparse = np.full(40, np.nan)
    sparse[[0, 1]], sparse[[10, 11]] = [9.0, 8.0], [1.0, 0.5]
    rows = es.element_selection(np.column_stack([real, sparse]), ["Au_ppb", "W_ppm"], labels)
    by = {r["element"]: r for r in rows}
    assert by["W_ppm"]["zauc"] == np.inf and by["W_ppm"]["z_null"] == pytest.approx(1.549, abs=1e-3)
    assert not by["W_ppm"]["selected"] and by["Au_ppb"]["selected"]
    assert es.held_back_notes(rows) == [
        "W_ppm: ZAUC inf reaches 2.58, but with 2 values near deposits and 2 far from them the rank test of no "
        "association gives only z = 1.55: not selected (a perfect split of a few samples has an infinite ZAUC)."]
    table = es.element_selection_report(rows, "t")
    assert "Rank test z" in table and "W_ppm: ZAUC inf reaches 2.58" not in table   # notes go in through select_*


# --------------------------------------------------------------------------------------
# Rasters and points: a score that is minus the distance to the nearest deposit
# --------------------------------------------------------------------------------------
TRANSFORM = from_origin(500000.0, 6300000.0, 100.0, 100.0)
# the third deposit lies just off the raster's east edge (x < 530000), its positives inside
DEPOSITS = np.array([[510000.5, 6290000.3], [520000.3, 6285000.4], [530000.7, 6295000.4], [505000.2, 6282000.6]])


def centres(width, height, transform=TRANSFORM):
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    return transform.c + (cols + 0.5) * transform.a, transform.f + (rows + 0.5) * transform.e


def nearest(x, y, deposits=DEPOSITS):
    d = np.hypot(x[..., None] - deposits[:, 0], y[..., None] - deposits[:, 1])
    return d.min(axis=-1)


def distance_raster(path, noise=0.0, width=300, height=200, crs=UTM):
    x, y = centres(width, height)
    score = -nearest(x, y) + np.random.default_rng(0).normal(0, noise, x.shape) if noise else -nearest(x, y)
    score = score.astype("float32")
    score[:10, :10] = -9999.0
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32", crs=crs,
                       transform=TRANSFORM, nodata=-9999.0) as ds:
        ds.write(score, 1)
    return str(path), score


def test_raster_in_feet_is_measured_in_metres(tmp_path):
    """A grid in US survey feet (State Plane): the radius and distance stay metres, as the parameters say."""
    path, score = distance_raster(tmp_path / "ft.tif", crs="EPSG:2229")
    result = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=3, seed=1)
    x, y = centres(300, 200)
    metres = nearest(x, y) * 1200.0 / 3937.0  # the US survey foot
    valid = score != -9999.0
    assert result["n_positive"] == int((valid & (metres <= 2000)).sum())
    assert result["n_negative_candidates"] == int((valid & (metres >= 4000)).sum())
    # the same grid in metres counts the distances as metres: more positives (the grid looks 3.3 times smaller)
    metre_result = pe.evaluate_raster(distance_raster(tmp_path / "m.tif")[0], DEPOSITS, 2000, 4000, n_draws=3, seed=1)
    assert metre_result["n_positive"] < result["n_positive"]
    assert result["positive_radius"] == 2000.0


def test_raster_without_negative_candidates_names_a_distance_that_works(tmp_path):
    """Every valid pixel nearer a deposit than the negative distance: evaluate_raster stopped with a bare IndexError
    (the empty negative sample came back 1-D), where the points gave advice. Now the farthest pixel's distance."""
    path, score = distance_raster(tmp_path / "d.tif")
    x, y = centres(300, 200)
    farthest = nearest(x, y)[score != -9999.0].max()
    with pytest.raises(OreMapError) as err:
        pe.evaluate_raster(path, DEPOSITS, 2000, farthest + 1, n_draws=2)
    assert err.value.parameter == "negative_min_distance"
    assert err.value.message == (f"No valid pixel lies at least the negative distance ({farthest + 1:g} m) from every "
                                 f"deposit: the farthest lies {farthest:.0f} m from its nearest deposit.")
    assert err.value.fix.startswith("Lower the negative minimum distance to 10000 m or less, or score a larger area.")
    assert f"{farthest:.0f}" == "13383"  # a corner of the grid
    with pytest.raises(OreMapError) as err:
        pe.evaluate_raster(path, DEPOSITS, 12000, 20000, n_draws=2)
    assert err.value.fix.startswith("Lower the negative minimum distance to 10000 m or less (and the positive radius "
                                    "below it), or score a larger area.")


def test_raster_minus_distance_scores_near_one(tmp_path):
    path, score = distance_raster(tmp_path / "d.tif")
    result = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=5, seed=1)
    assert result["auc_mean"] > 0.97 and result["auc_all"] > 0.97
    # counts by brute force over every pixel centre
    x, y = centres(300, 200)
    d = nearest(x, y)
    valid = score != -9999.0
    assert result["n_positive"] == int((valid & (d <= 2000)).sum())
    assert result["n_negative_candidates"] == int((valid & (d >= 4000)).sum())
    assert result["n_excluded"] == int((valid & (d > 2000) & (d < 4000)).sum())
    assert result["n_valid"] == int(valid.sum())
    # each deposit's score is the value of its pixel; the third is off the raster
    rows = np.floor((TRANSFORM.f - DEPOSITS[:, 1]) / 100).astype(int)
    cols = np.floor((DEPOSITS[:, 0] - TRANSFORM.c) / 100).astype(int)
    assert cols.tolist() == [100, 200, 300, 50]
    on = [0, 1, 3]
    np.testing.assert_allclose(result["deposit_scores"][on], score[rows[on], cols[on]])
    assert np.isnan(result["deposit_scores"][2]) and result["n_deposits_scored"] == 3
    assert result["success"]["auc"] == pytest.approx(brute_auc(score[rows[on], cols[on]], score[valid]))
    assert not result["pa_approximate"]


def test_big_raster_path_matches_exact(tmp_path):
    """Above max_area_sample the P-A curves come from counts at quantile thresholds: compare with the exact path."""
    path, score = distance_raster(tmp_path / "n.tif", noise=3000.0)
    exact = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=4, seed=0)
    approx = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=4, seed=0, max_area_sample=5000,
                                memory_mb=0.05, max_negatives=2000)
    assert approx["pa_approximate"] and not exact["pa_approximate"]
    # the success-rate curve is exact either way
    np.testing.assert_allclose(approx["success"]["area"], exact["success"]["area"])
    assert approx["success"]["auc"] == pytest.approx(exact["success"]["auc"], abs=1e-12)
    # the P-A intersection is within 0.1 % of the area
    assert abs(approx["pa_rate"] - exact["pa_rate"]) < 0.1
    valid = score[score != -9999.0]
    share = lambda t: (valid >= t).mean()  # noqa: E731
    assert abs(share(approx["pa_threshold"]) - share(exact["pa_threshold"])) < 0.001
    assert approx["n_negative_pool"] == 2000 and approx["n_negative_candidates"] > 2000
    assert approx["n_positive"] == exact["n_positive"]
    # the negative sample is tied to pixel positions: another block layout gives the same numbers
    again = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=4, seed=0, max_area_sample=5000,
                               memory_mb=0.2, max_negatives=2000)
    np.testing.assert_array_equal(again["aucs"], approx["aucs"])


def test_a_map_of_few_values_gets_the_exact_intersection_on_the_big_raster_path(tmp_path):
    """Quantile thresholds interpolated between two map values (0.5 + e) moved the P-A threshold of a map of five
    values (0.694 exact, 0.501 approximate) though both picked the same cells: the thresholds are now map values."""
    # five bands of 60 columns, 0 to 1 from west to east: the deposits score 0.25, 0.75 and 0 (one is off the map)
    score = np.repeat(np.repeat(np.linspace(0.0, 1.0, 5), 60)[None, :], 200, axis=0).astype("float32")
    path = str(tmp_path / "classes.tif")
    with rasterio.open(path, "w", driver="GTiff", width=300, height=200, count=1, dtype="float32", crs=UTM,
                       transform=TRANSFORM) as ds:
        ds.write(score, 1)
    exact = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=2, seed=0)
    approx = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=2, seed=0, max_area_sample=100)
    assert approx["pa_approximate"] and not exact["pa_approximate"]
    assert 0.25 < exact["pa_threshold"] < 0.5 and 33 < exact["pa_rate"] < 67
    assert approx["pa_threshold"] == exact["pa_threshold"] and approx["pa_rate"] == exact["pa_rate"]


def test_deposits_sharing_a_pixel_or_a_sample_each_count_and_are_said(tmp_path):
    """Two deposits in one pixel count twice in the success-rate curve (as every deposit counts); the number of
    distinct places is returned, logged and in the report, and the AUC row says when it used a sample of the
    negatives."""
    from conftest import core_warnings

    path, score = distance_raster(tmp_path / "d.tif")
    twice = np.vstack([DEPOSITS, DEPOSITS[:1] + 20.0])   # 20 m from the first: the same 100 m pixel
    log = core_warnings()
    result = pe.evaluate_raster(path, twice, 2000, 4000, n_draws=2, seed=0, feedback=log, max_negatives=500)
    assert result["n_deposits_scored"] == 4 and result["n_deposit_places"] == 3
    assert "The 4 deposits with a score lie on 3 distinct pixels: each deposit counts in the success-rate and P-A " \
        "curves, so a pixel holding several weighs more." in log.infos
    on = np.isfinite(result["deposit_scores"])
    valid = score[score != -9999.0]
    assert result["success"]["auc"] == pytest.approx(brute_auc(result["deposit_scores"][on], valid))
    rows = dict((r[0], r[1]) for r in er._summary_rows(result))
    assert rows["Distinct pixels holding them (several deposits on one count each)"] == 3
    label = f"ROC-AUC against a random sample of 500 of the {result['n_negative_candidates']} negative candidates"
    assert rows[label] == result["auc_all"]
    whole = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=2, seed=0)
    assert "ROC-AUC against all negative candidates" in dict((r[0], r[1]) for r in er._summary_rows(whole))
    # points: two deposits whose nearest sample is the same
    rng = np.random.default_rng(2)
    px, py = rng.uniform(500000, 530000, 800), rng.uniform(6280000, 6300000, 800)
    log = core_warnings()
    points = pe.evaluate_points(px, py, -nearest(px, py), twice, 2000, 4000, n_draws=2, seed=0, feedback=log)
    assert points["n_deposits_scored"] == 5 and points["n_deposit_places"] == 4
    assert any("lie on 4 distinct samples" in m for m in log.infos)


def test_points_minus_distance_scores_near_one():
    rng = np.random.default_rng(2)
    x = rng.uniform(500000, 530000, 3000)
    y = rng.uniform(6280000, 6300000, 3000)
    scores = -nearest(x, y)
    scores[:25] = np.nan
    result = pe.evaluate_points(x, y, scores, DEPOSITS, 2000, 4000, n_draws=10, seed=0)
    assert result["auc_mean"] > 0.97 and result["n_scored"] == 2975
    d = nearest(x, y)
    ok = np.isfinite(scores)
    assert result["n_positive"] == int((ok & (d <= 2000)).sum())
    assert result["n_negative_candidates"] == int((ok & (d >= 4000)).sum())
    # a deposit's score is its nearest scored sample's
    idx = [np.flatnonzero(ok)[np.argmin(np.hypot(x[ok] - dx, y[ok] - dy))] for dx, dy in DEPOSITS]
    np.testing.assert_allclose(result["deposit_scores"], scores[idx])
    assert result["success"]["auc"] > 0.99


def test_report_and_csv(tmp_path):
    path, _ = distance_raster(tmp_path / "n.tif", noise=3000.0)
    result = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=6, seed=0)
    html, table = er.write_evaluation_outputs(result, "Test <evaluation>", str(tmp_path / "r.html"),
                                              str(tmp_path / "r.csv"))
    text = open(html, encoding="utf-8").read()
    assert text.count("<svg") == 3 and "Test &lt;evaluation&gt;" in text
    assert "Intersection: threshold" in text and "Chance" in text and "Random ranking" in text
    # the ROC plot draws the 6 draws as one series broken by NaN gaps: 6 polylines, plus mean and chance
    roc = re.findall(r"<svg.*?</svg>", text, re.S)[0]
    assert roc.count("<polyline") == 6 + 2
    # deposit coordinates to the decimetre, as the CSV (6 significant digits put northings to the nearest 100 m)
    assert "<td class=\"num\">510000.5</td><td class=\"num\">6290000.3</td>" in text
    with open(table, encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    measures = {r[0]: r[1] for r in rows if len(r) == 2}
    assert float(measures["ROC-AUC, mean over draws"]) == pytest.approx(result["auc_mean"], rel=1e-7)
    assert float(measures["P-A intersection: threshold"]) == pytest.approx(result["pa_threshold"], rel=1e-7)
    draws = rows[rows.index(["Draw", "ROC-AUC", "Average precision"]) + 1:][:6]
    np.testing.assert_allclose([float(r[1]) for r in draws], result["aucs"], rtol=1e-7)


# --------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------
def memory_points(coords, crs, fields=None):
    """A memory point layer; ``fields`` {name: list of values} (floats, None for NULL)."""
    fields = fields or {}
    layer = QgsVectorLayer(f"Point?crs={crs}", "points", "memory")
    layer.dataProvider().addAttributes([QgsField(n, field_type.DOUBLE) for n in fields])
    layer.updateFields()
    features = []
    for i, (x, y) in enumerate(coords):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(x), float(y))))
        for name, values in fields.items():
            v = values[i]
            f.setAttribute(name, None if v is None or not np.isfinite(v) else float(v))
        features.append(f)
    layer.dataProvider().addFeatures(features)
    return layer


def to_crs(coords, src, dst):
    t = QgsCoordinateTransform(QgsCoordinateReferenceSystem(src), QgsCoordinateReferenceSystem(dst),
                               QgsProject.instance())
    return [(p.x(), p.y()) for p in (t.transform(QgsPointXY(float(x), float(y))) for x, y in coords)]


def test_evaluate_prospectivity_raster(run_alg, tmp_path):
    path, _ = distance_raster(tmp_path / "n.tif", noise=3000.0)
    deposits = memory_points(to_crs(DEPOSITS, UTM, "EPSG:4326"), "EPSG:4326")  # any CRS: transformed
    out = run_alg("evaluate_prospectivity", {
        "SCORE_RASTER": path, "DEPOSITS": deposits, "POSITIVE_RADIUS": 2000, "NEGATIVE_MIN_DISTANCE": 4000,
        "N_DRAWS": 5, "SEED": 7, "OUTPUT_HTML": str(tmp_path / "e.html"), "OUTPUT_CSV": str(tmp_path / "e.csv")})
    expected = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=5, seed=7)
    assert out["AUC_MEAN"] == pytest.approx(expected["auc_mean"], abs=1e-9)
    assert out["AUC_SD"] == pytest.approx(expected["auc_sd"], abs=1e-9)
    assert out["AP_MEAN"] == pytest.approx(expected["ap_mean"], abs=1e-9)
    assert out["PA_THRESHOLD"] == pytest.approx(expected["pa_threshold"], abs=1e-6)
    assert 0.8 < out["AUC_MEAN"] < 0.97
    assert os.path.exists(out["OUTPUT_HTML"]) and os.path.exists(out["OUTPUT_CSV"])


def test_evaluate_prospectivity_points_in_lonlat(run_alg, tmp_path):
    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(500000, 530000, 800), rng.uniform(6280000, 6300000, 800)])
    score = -nearest(xy[:, 0], xy[:, 1]) + rng.normal(0, 2000, 800)
    lonlat = to_crs(xy, UTM, "EPSG:4326")
    points = memory_points(lonlat, "EPSG:4326", {"score": list(score)})
    deposits = memory_points(DEPOSITS, UTM)
    out = run_alg("evaluate_prospectivity", {
        "POINTS": points, "SCORE_FIELD": "score", "DEPOSITS": deposits, "N_DRAWS": 8,
        "OUTPUT_HTML": str(tmp_path / "p.html")})
    # measured in the UTM zone of the centre (50 S, the zone of these coordinates): the same numbers
    expected = pe.evaluate_points(xy[:, 0], xy[:, 1], score, DEPOSITS, 2000, 4000, n_draws=8, seed=0)
    assert out["AUC_MEAN"] == pytest.approx(expected["auc_mean"], abs=1e-9)
    assert out["PA_THRESHOLD"] == pytest.approx(expected["pa_threshold"], abs=1e-6)
    assert "EPSG:32750" in open(out["OUTPUT_HTML"], encoding="utf-8").read()




def test_points_in_lonlat_use_the_zone_of_their_centroid_like_idw(run_alg, tmp_path):
    """Nine points in ten lie in UTM zone 51 (lon 123.5), the rest in zone 50 (lon 114.2): the extent's centre
    (lon 118.9) is in zone 50, the points' centroid (lon 122.6) in 51. Distances are measured in 51, the zone IDW
    grids the same layer in (core.geochemistry.geochem.utm_crs_for)."""
    rng = np.random.default_rng(5)
    lon = np.r_[rng.uniform(123.4, 123.6, 90), rng.uniform(114.1, 114.3, 10)]
    lat = rng.uniform(-33.6, -33.4, 100)
    score = rng.normal(size=100)
    assert geochem.utm_crs_for(lon, lat) == 32751
    points = memory_points(zip(lon, lat), "EPSG:4326", {"score": list(score)})
    deposits = memory_points([(123.5, -33.5), (123.45, -33.55)], "EPSG:4326")
    out = run_alg("evaluate_prospectivity", {
        "POINTS": points, "SCORE_FIELD": "score", "DEPOSITS": deposits, "N_DRAWS": 2, "POSITIVE_RADIUS": 5000.0,
        "NEGATIVE_MIN_DISTANCE": 8000.0, "OUTPUT_HTML": str(tmp_path / "z.html")})
    html = open(out["OUTPUT_HTML"], encoding="utf-8").read()
    assert "EPSG:32751" in html and "EPSG:32750" not in html


def test_points_in_a_crs_in_feet_are_measured_in_metres(run_alg, tmp_path):
    """A State Plane layer in US survey feet (EPSG:2227, California zone 3): distances are measured in the UTM
    zone of the points (10 N), so a 2000 m radius is 2000 m and messages give metres, not feet."""
    rng = np.random.default_rng(11)
    utm10 = "EPSG:32610"
    xy = np.column_stack([rng.uniform(550000, 580000, 600), rng.uniform(4150000, 4170000, 600)])
    deposits_xy = np.array([[555000.0, 4155000.0], [570000.0, 4165000.0], [575000.0, 4152000.0]])
    score = -nearest(xy[:, 0], xy[:, 1], deposits_xy) + rng.normal(0, 2000, 600)
    feet = "EPSG:2227"
    points = memory_points(to_crs(xy, utm10, feet), feet, {"score": list(score)})
    deposits = memory_points(to_crs(deposits_xy, utm10, feet), feet)
    out = run_alg("evaluate_prospectivity", {
        "POINTS": points, "SCORE_FIELD": "score", "DEPOSITS": deposits, "N_DRAWS": 6,
        "OUTPUT_HTML": str(tmp_path / "f.html")})
    expected = pe.evaluate_points(xy[:, 0], xy[:, 1], score, deposits_xy, 2000, 4000, n_draws=6, seed=0)
    assert out["AUC_MEAN"] == pytest.approx(expected["auc_mean"], abs=1e-9)
    assert "EPSG:32610" in open(out["OUTPUT_HTML"], encoding="utf-8").read()
    # too small a radius: the advice is in metres (in feet it said "(32.8 m)" and a spacing 3.3 times too large)
    from oremap.core.geochemistry.distance_advice import sample_spacing

    message = expect_failure(run_alg, "evaluate_prospectivity", {
        "POINTS": points, "SCORE_FIELD": "score", "DEPOSITS": deposits, "POSITIVE_RADIUS": 10,
        "OUTPUT_HTML": str(tmp_path / "g.html")}, "POSITIVE_RADIUS", "positive radius (10 m)")
    assert f"median sample spacing is {sample_spacing(xy[:, 0], xy[:, 1]):.0f} m" in message


def test_bad_input(run_alg, tmp_path):
    path, _ = distance_raster(tmp_path / "d.tif")
    html = str(tmp_path / "bad.html")
    far = memory_points([(900000.0, 7000000.0)], UTM)
    expect_failure(run_alg, "evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": far, "OUTPUT_HTML": html},
                   "DEPOSITS", "no valid pixel", "CRS")
    # one deposit in a corner pixel with a 50 m radius: one positive pixel
    corner = memory_points([(TRANSFORM.c + 29950.0, TRANSFORM.f - 19950.0)], UTM)
    expect_failure(run_alg, "evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": corner,
                                                       "POSITIVE_RADIUS": 50, "OUTPUT_HTML": html},
                   "DEPOSITS", "only 1 positive")
    deposits = memory_points(DEPOSITS, UTM)
    points = memory_points(DEPOSITS + 100.0, UTM, {"score": [1.0, 2.0, 3.0, 4.0]})
    expect_failure(run_alg, "evaluate_prospectivity", {"POINTS": points, "SCORE_FIELD": "nope", "DEPOSITS": deposits,
                                                       "OUTPUT_HTML": html}, "SCORE_FIELD", "not in the point layer")
    expect_failure(run_alg, "evaluate_prospectivity", {"POINTS": points, "DEPOSITS": deposits, "OUTPUT_HTML": html},
                   "SCORE_FIELD")
    expect_failure(run_alg, "evaluate_prospectivity", {"DEPOSITS": deposits, "OUTPUT_HTML": html},
                   "SCORE_RASTER", "either")
    expect_failure(run_alg, "evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": deposits,
                                                       "POSITIVE_RADIUS": 5000, "NEGATIVE_MIN_DISTANCE": 1000,
                                                       "OUTPUT_HTML": html}, "NEGATIVE_MIN_DISTANCE")
    geo, _ = distance_raster(tmp_path / "g.tif", crs="EPSG:4326")
    expect_failure(run_alg, "evaluate_prospectivity", {"SCORE_RASTER": geo, "DEPOSITS": deposits,
                                                       "OUTPUT_HTML": html}, "SCORE_RASTER", "geographic", "Warp")
    # every sample near a deposit: no negatives
    expect_failure(run_alg, "evaluate_prospectivity", {"POINTS": points, "SCORE_FIELD": "score", "DEPOSITS": deposits,
                                                       "OUTPUT_HTML": html}, "NEGATIVE_MIN_DISTANCE", "lower")
    expect_failure(run_alg, "element_selection", {"POINTS": points, "DEPOSITS": far, "OUTPUT_HTML": html},
                   "DEPOSITS", "only 0")


def test_element_selection_raster_stack(run_alg, tmp_path):
    x, y = centres(120, 100)
    d = nearest(x, y)
    rng = np.random.default_rng(4)
    stack = np.stack([np.exp(-d / 3000) + rng.uniform(0, 0.1, d.shape),          # higher near deposits
                      rng.uniform(1, 2, d.shape),                                # unrelated
                      d / 1000 + rng.uniform(0.1, 1.5, d.shape)]).astype("float32")  # lower near deposits
    stack[1, :5, :] = -9999.0  # nodata in one band only: the others keep those pixels
    path = str(tmp_path / "stack.tif")
    with rasterio.open(path, "w", driver="GTiff", width=120, height=100, count=3, dtype="float32", crs=UTM,
                       transform=TRANSFORM, nodata=-9999.0) as ds:
        ds.write(stack)
        for i, name in enumerate(["Au_ppb", "Noise", "Dist"]):
            ds.set_band_description(i + 1, name)
    out = run_alg("element_selection", {"INPUT": path, "DEPOSITS": memory_points(DEPOSITS, UTM),
                                        "POSITIVE_RADIUS": 1500, "NEGATIVE_MIN_DISTANCE": 3000,
                                        "OUTPUT_HTML": str(tmp_path / "s.html"),
                                        "OUTPUT_CSV": str(tmp_path / "s.csv")})
    assert out["SELECTED"] == "Au_ppb" and out["N_SELECTED"] == 1
    table = pd.read_csv(out["OUTPUT_CSV"], encoding="utf-8-sig")
    assert table["element"].tolist() == ["Au_ppb", "Noise", "Dist"]
    pos, neg = d <= 1500, d >= 3000
    # every negative pixel is used (fewer than the sample cap): AUCs by brute force
    assert table["auc"][0] == pytest.approx(brute_auc(stack[0][pos], stack[0][neg]), abs=1e-7)
    ok = stack[1] != -9999.0
    assert table["n_pos"][1] == int((pos & ok).sum()) and table["n_neg"][1] == int((neg & ok).sum())
    assert table["auc"][2] == pytest.approx(brute_auc(stack[2][pos], stack[2][neg]), abs=1e-7)
    assert table["direction"][2] == "negative" and not table["selected"][2]
    # no element passing: refused, not SELECTED='' (which IDW's FIELDS in a model reads as every element)
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as err:
        run_alg("element_selection", {"INPUT": path, "DEPOSITS": memory_points(DEPOSITS, UTM), "THRESHOLD": 1000,
                                      "POSITIVE_RADIUS": 1500, "NEGATIVE_MIN_DISTANCE": 3000,
                                      "OUTPUT_HTML": str(tmp_path / "none.html")})
    message = str(err.value)
    assert "(THRESHOLD)" in message and "No element reaches the threshold 1000" in message
    reach = min(table["zauc"][0], table["z_null"][0])
    assert f"the best: Au_ppb ZAUC {table['zauc'][0]:.2f}" in message
    assert f"Lower the threshold to {np.floor(reach * 100) / 100:g} to select Au_ppb" in message
    allowed = run_alg("element_selection", {"INPUT": path, "DEPOSITS": memory_points(DEPOSITS, UTM),
                                            "THRESHOLD": 1000, "ALLOW_NONE": True, "POSITIVE_RADIUS": 1500,
                                            "NEGATIVE_MIN_DISTANCE": 3000, "OUTPUT_HTML": str(tmp_path / "none.html")})
    assert allowed["SELECTED"] == "" and allowed["N_SELECTED"] == 0 and os.path.exists(allowed["OUTPUT_HTML"])


# --------------------------------------------------------------------------------------
# The real survey (GSWA/WAMEX stream sediments, Katanning; 32 gold sites)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def survey():
    if not os.path.exists(SURVEY):
        pytest.fail(f"The shared survey data is missing: {SURVEY}")
    samples = pd.read_csv(SURVEY, low_memory=False)
    sites = pd.read_csv(SITES)
    return samples, sites


def projected(lon, lat):
    return np.array(to_crs(np.column_stack([lon, lat]), "EPSG:4326", UTM))


def test_real_survey_log_au(run_alg, tmp_path, survey):
    """log10(Au): 2 km positives, negatives at least 4 km (the default) from every site, 20 draws.

    Au: -9999 missing, negative = below detection (half the limit), 0 = not analysed (missing).
    10 samples lie within 2 km of a site; their mean AUC over 20 draws is 0.837 +- 0.052 (seed 0)
    and 0.817 against all 1201 negative candidates, above the published 0.73 but well within the
    standard error of an AUC from 10 positives (about 0.09).
    """
    samples, sites = survey
    au = samples["Au_ppm"].to_numpy(float)
    au = np.where(au == -9999, np.nan, np.where(au < 0, -au / 2, au))
    log_au = np.where(au > 0, np.log10(np.where(au > 0, au, 1.0)), np.nan)
    points = memory_points(zip(samples["X"], samples["Y"]), "EPSG:4326", {"log_au": list(log_au)})
    deposits = memory_points(zip(sites["X"], sites["Y"]), "EPSG:4326")
    out = run_alg("evaluate_prospectivity", {
        "POINTS": points, "SCORE_FIELD": "log_au", "DEPOSITS": deposits, "POSITIVE_RADIUS": 2000,
        "NEGATIVE_MIN_DISTANCE": 4000, "N_DRAWS": 20, "SEED": 0, "OUTPUT_HTML": str(tmp_path / "au.html"),
        "OUTPUT_CSV": str(tmp_path / "au.csv")})
    # independent: distances in UTM 50S, labels, AUC against all candidates by pairwise comparison
    xy = projected(samples["X"], samples["Y"])
    sxy = projected(sites["X"], sites["Y"])
    d = np.hypot(xy[:, None, 0] - sxy[None, :, 0], xy[:, None, 1] - sxy[None, :, 1]).min(axis=1)
    ok = np.isfinite(log_au)
    pos, neg = ok & (d <= 2000), ok & (d >= 4000)
    assert pos.sum() == 10 and neg.sum() == 1201
    with open(out["OUTPUT_CSV"], encoding="utf-8-sig") as fh:
        measures = {r[0]: r[1] for r in csv.reader(fh) if len(r) == 2}
    assert float(measures["ROC-AUC against all negative candidates"]) == pytest.approx(
        brute_auc(log_au[pos], log_au[neg]), abs=1e-7)  # 0.8172
    # 20 draws of 10 negatives: 0.837 when the draws followed the layer's row order, 0.805 since they follow the
    # samples (sorted by place and score), whatever the order
    assert out["AUC_MEAN"] == pytest.approx(0.805, abs=0.005)
    se = pe.auc_standard_error(0.73, 10, 10)
    assert abs(out["AUC_MEAN"] - 0.73) < 1.5 * se  # near the published value given 10 positives
    assert 0.03 < out["AUC_SD"] < 0.1


def test_reports_name_sample_points_given_as_a_csv_uri(run_alg, tmp_path):
    """A survey given as a delimited-text URI (as the demo gives it) has no source name: the report read
    'Sample points: ;'. It names the file."""
    uri = f"delimitedtext://file://{SURVEY}?type=csv&xField=X&yField=Y&crs=EPSG:4326&detectTypes=yes&geomType=point"
    sites = f"delimitedtext://file://{SITES}?type=csv&xField=X&yField=Y&crs=EPSG:4326&geomType=point"
    html = str(tmp_path / "e.html")
    run_alg("element_selection", {"POINTS": uri, "DEPOSITS": sites, "OUTPUT_HTML": html})
    text = open(html, encoding="utf-8").read()
    assert f"Sample points: {os.path.basename(SURVEY)};" in text and "Sample points: ;" not in text


def test_real_survey_element_selection(run_alg, tmp_path, survey):
    """The default elements (the 45 measured in >= 80 % of the samples, oxides merged): Au ranks first, selected with
    Hg; REE and HFSE are lower near the sites.

    With zeros taken as values instead of 'not analysed', elements analysed only in some surveys
    (Bi, Re, Sb: all 10 positives below detection, most negatives 0) come out on top: an artefact.
    """
    samples, site_table = survey
    uri = f"file://{SURVEY}?type=csv&xField=X&yField=Y&crs=EPSG:4326&detectTypes=yes&geomType=point"
    layer = QgsVectorLayer(uri, "survey", "delimitedtext")
    assert layer.isValid() and layer.featureCount() == 1392
    sites = QgsVectorLayer(f"file://{SITES}?type=csv&xField=X&yField=Y&crs=EPSG:4326&geomType=point", "sites",
                           "delimitedtext")
    out = run_alg("element_selection", {"POINTS": layer, "DEPOSITS": sites, "OUTPUT_HTML": str(tmp_path / "e.html"),
                                        "OUTPUT_CSV": str(tmp_path / "e.csv")})
    table = pd.read_csv(out["OUTPUT_CSV"], encoding="utf-8-sig")
    assert len(table) == 45 and not {"LABnegNR_N", "X", "SAMPLEID", "ZnO_ppm", "Bi_ppm"} & set(table["element"])
    selected = out["SELECTED"].split(";")
    assert selected[0] == "Au_ppm" and out["N_SELECTED"] == len(selected) == table["selected"].sum()
    assert "Hg_ppm" in selected
    au = table.set_index("element").loc["Au_ppm"]
    # a record the compilation repeats (526 of 1,392 rows, same place and values) counts once: with the copies
    # Au's ZAUC was 3.90 (a standard error too small)
    assert au["n_pos"] == 10 and 3.4 < au["zauc"] < 3.6
    negative = set(table["element"][(table["direction"] == "negative") & (table["zauc"] < -2.58)])
    assert {"La_ppm", "Ce_ppm", "Th_ppm"} <= negative and not negative & set(selected)
    # Zr (AUC 0.286) was -2.6 with the standard error taken at 0.286; it is now that of its mirror, 0.714
    zr = table.set_index("element").loc["Zr_ppm"]
    assert zr["auc"] == pytest.approx(0.286, abs=1e-3) and zr["zauc"] == pytest.approx(-2.31, abs=0.01)
    assert zr["zauc"] == pytest.approx(-pe.zauc(1 - zr["auc"], zr["n_pos"], zr["n_neg"]))
    # Au's AUC by brute force (half detection limit, 0 and -9999 missing, negatives >= 4 km)
    distinct = samples.drop_duplicates(subset=["X", "Y"] + list(table["element"]))
    assert len(distinct) == 866 and au["n_pos"] + au["n_neg"] < 866
    v = distinct["Au_ppm"].to_numpy(float)
    v = np.where((v == -9999) | (v == 0), np.nan, np.where(v < 0, -v / 2, v))
    xy = projected(distinct["X"], distinct["Y"])
    sxy = projected(site_table["X"], site_table["Y"])
    d = np.hypot(xy[:, None, 0] - sxy[None, :, 0], xy[:, None, 1] - sxy[None, :, 1]).min(axis=1)
    ok = np.isfinite(v)
    assert au["auc"] == pytest.approx(brute_auc(v[ok & (d <= 2000)], v[ok & (d >= 4000)]), abs=1e-6)
    # zeros kept as values: the survey artefact
    raw = run_alg("element_selection", {"POINTS": layer, "DEPOSITS": sites, "ZEROS": 2,
                                        "OUTPUT_HTML": str(tmp_path / "z.html")})
    assert {"Bi_ppm", "Re_ppm"} <= set(raw["SELECTED"].split(";")[:3])


# --------------------------------------------------------------------------------------
# The guard of every evaluation (issue 23)
# --------------------------------------------------------------------------------------
class Log:
    def __init__(self):
        from oremap.core.engine.feedback import Feedback

        self.warnings = []
        self.feedback = type("Recorder", (Feedback,), {"warning": lambda _, text: self.warnings.append(text)})()


def test_guard_warns_when_most_deposits_are_off_the_map(tmp_path):
    path, _ = distance_raster(tmp_path / "d.tif")
    log = Log()
    result = pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=3, seed=1, feedback=log.feedback)
    assert result["guard_warnings"] == []  # 3 of 4 deposits on the raster
    # the same four deposits plus five far away (e.g. in another CRS): 3 of 9 are used
    far = DEPOSITS[:1] + np.array([[0.0, -1e5 * k] for k in range(1, 6)])
    log = Log()
    result = pe.evaluate_raster(path, np.vstack([DEPOSITS, far]), 2000, 4000, n_draws=3, seed=1,
                                feedback=log.feedback)
    assert len(result["guard_warnings"]) == 1
    assert "Only 3 of 9 deposits could be used" in log.warnings[-1] and "CRS" in log.warnings[-1]
    # points: deposits without a scored sample within the radius
    x, y = centres(30, 20, transform=from_origin(500000.0, 6300000.0, 1000.0, 1000.0))
    x, y = x.ravel(), y.ravel()
    log = Log()
    result = pe.evaluate_points(x, y, -nearest(x, y), np.vstack([DEPOSITS, far]), 2000, 4000, n_draws=3,
                                feedback=log.feedback)
    assert result["n_deposits_scored"] == 4 and "Only 4 of 9 deposits" in result["guard_warnings"][0]


def test_guard_compares_with_the_models_own_validation(tmp_path):
    import json

    path, _ = distance_raster(tmp_path / "d.tif")
    reversed_path = str(tmp_path / "r.tif")
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read(1)
    with rasterio.open(reversed_path, "w", **profile) as dst:  # a map scoring the deposits lowest: AUC near 0
        dst.write(np.where(data == -9999.0, data, -data - 1e5).astype("float32"), 1)
        dst.update_tags(OREMAP_MODEL_VALIDATION=json.dumps({"model": "p.onnx", "measure": "ROC-AUC",
                                                           "value": 0.84}))
    log = Log()
    result = pe.evaluate_raster(reversed_path, DEPOSITS, 2000, 4000, n_draws=3, seed=1, feedback=log.feedback)
    assert result["auc_mean"] < 0.05
    assert f"mean ROC-AUC here, {result['auc_mean']:.3f}, is far below the 0.840" in log.warnings[-1]
    # the right map with the same stamp: no warning
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(OREMAP_MODEL_VALIDATION=json.dumps({"model": "p.onnx", "measure": "ROC-AUC", "value": 0.84}))
    assert pe.evaluate_raster(path, DEPOSITS, 2000, 4000, n_draws=3, seed=1)["guard_warnings"] == []


def test_a_positive_radius_with_no_sample_gives_distances_that_work():
    """A 100 m radius on a 100 m grid whose sites sit between nodes: no positive at all. The help promises values
    that work; the error said only 'enlarge the positive radius'."""
    gx, gy = np.meshgrid(np.arange(0, 5001, 100.0), np.arange(0, 5001, 100.0))
    x, y = gx.ravel(), gy.ravel()
    sites = np.array([[1050.0, 1050.0], [3050.0, 2050.0], [4050.0, 4050.0]])  # 70.7 m from their nearest nodes
    scores = np.random.default_rng(0).random(x.size)
    with pytest.raises(OreMapError) as err:
        pe.evaluate_points(x, y, scores, sites, 50.0, 4000.0, n_draws=5, seed=0)
    assert err.value.parameter == "positive_radius"
    assert str(err.value).startswith("Only 0 scored samples lie within the positive radius (50 m) of a deposit")
    assert "median sample spacing is 100 m" in err.value.fix and "A positive radius of" in err.value.fix


def test_the_main_score_of_a_shapefile_export_is_found(run_alg, tmp_path):
    """A shapefile cuts anomaly_score to anomaly_sc: without SCORE_FIELD the evaluation asked for a field instead
    of taking it."""
    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(500000, 530000, 400), rng.uniform(6280000, 6300000, 400)])
    score = -nearest(xy[:, 0], xy[:, 1]) + rng.normal(0, 2000, 400)
    out = run_alg("evaluate_prospectivity", {
        "POINTS": memory_points(xy, UTM, {"anomaly_sc": list(score)}), "DEPOSITS": memory_points(DEPOSITS, UTM),
        "N_DRAWS": 4, "OUTPUT_HTML": str(tmp_path / "p.html")})
    expected = pe.evaluate_points(xy[:, 0], xy[:, 1], score, DEPOSITS, 2000, 4000, n_draws=4, seed=0)
    assert out["AUC_MEAN"] == pytest.approx(expected["auc_mean"], abs=1e-9)


def test_an_empty_selection_or_filter_is_named_not_an_empty_layer(run_alg, tmp_path):
    """'Selected features only' with nothing selected (the workflow the help recommends for a subset of deposits),
    or a layer filter keeping none, was refused as 'The deposit layer holds no points'."""
    from qgis.core import QgsProcessingException, QgsProcessingFeatureSourceDefinition

    path, _ = distance_raster(tmp_path / "n.tif", noise=3000.0)
    deposits = memory_points(DEPOSITS, UTM)
    QgsProject.instance().addMapLayer(deposits)
    try:
        selected = QgsProcessingFeatureSourceDefinition(deposits.id(), True)
        with pytest.raises(QgsProcessingException) as err:
            run_alg("evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": selected,
                                               "OUTPUT_HTML": str(tmp_path / "a.html")})
        assert "No feature of the layer is selected, and 'Selected features only' is on" in str(err.value)
        assert "untick 'Selected features only'" in str(err.value)
        deposits.selectByIds([f.id() for f in deposits.getFeatures()][:3])
        out = run_alg("evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": selected, "N_DRAWS": 2,
                                                 "POSITIVE_RADIUS": 2000, "NEGATIVE_MIN_DISTANCE": 4000,
                                                 "OUTPUT_HTML": str(tmp_path / "b.html")})
        expected = pe.evaluate_raster(path, DEPOSITS[:3], 2000, 4000, n_draws=2, seed=0)
        assert out["AUC_MEAN"] == pytest.approx(expected["auc_mean"], abs=1e-9)   # the selection, not the layer
        deposits.removeSelection()
        deposits.setSubsetString("1 = 0")
        with pytest.raises(QgsProcessingException) as err:
            run_alg("evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": deposits,
                                               "OUTPUT_HTML": str(tmp_path / "c.html")})
        assert "The layer's filter (" in str(err.value) and "keeps no feature" in str(err.value)
    finally:
        QgsProject.instance().removeMapLayer(deposits.id())


def test_mixed_geometries_are_taken_whatever_the_first_feature(run_alg, tmp_path):
    """A GeoJSON of site points and one pit outline is typed by its first feature: with the outline first it was
    refused as 'The layer holds polygons', with a point first it ran (the outline taken at its centroid)."""
    import json

    from qgis.core import QgsProcessingException

    path, _ = distance_raster(tmp_path / "n.tif", noise=3000.0)
    (x0, y0), points = DEPOSITS[0], DEPOSITS[1:]
    outline = {"type": "Feature", "properties": {"id": 0}, "geometry": {"type": "Polygon", "coordinates": [[
        [x0 - 50, y0 - 50], [x0 + 50, y0 - 50], [x0 + 50, y0 + 50], [x0 - 50, y0 + 50], [x0 - 50, y0 - 50]]]}}
    sites = [{"type": "Feature", "properties": {"id": i + 1}, "geometry": {"type": "Point", "coordinates": [x, y]}}
             for i, (x, y) in enumerate(points)]
    results = []
    for name, features in (("point_first", sites + [outline]), ("outline_first", [outline] + sites)):
        file = tmp_path / f"{name}.geojson"
        file.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {
            "name": "urn:ogc:def:crs:EPSG::32750"}}, "features": features}))
        results.append(run_alg("evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": str(file), "N_DRAWS": 3,
                                                          "SEED": 1, "OUTPUT_HTML": str(tmp_path / f"{name}.html")}))
    assert results[0]["AUC_MEAN"] == pytest.approx(results[1]["AUC_MEAN"], abs=1e-12)
    only_outline = tmp_path / "outline.geojson"   # a layer of polygons alone is still refused
    only_outline.write_text(json.dumps({"type": "FeatureCollection", "features": [outline]}))
    with pytest.raises(QgsProcessingException):
        run_alg("evaluate_prospectivity", {"SCORE_RASTER": path, "DEPOSITS": str(only_outline),
                                           "OUTPUT_HTML": str(tmp_path / "o.html")})


def test_samples_at_one_place_are_said_so_not_a_spacing_of_nan():
    from oremap.core.geochemistry.distance_advice import check_distances

    with pytest.raises(OreMapError) as err:
        check_distances(np.full(5, 500000.0), np.full(5, 6290000.0), [[500500.0, 6290000.0]], 2000.0, 4000.0)
    assert "nan m" not in err.value.fix and "the samples share one location" in err.value.fix


def test_element_selection_on_an_empty_sample_layer_is_refused_clearly(run_alg, tmp_path):
    """It stopped with numpy's 'cannot reshape array of size 0 into shape (0,newaxis)'."""
    from qgis.core import QgsProcessingException

    empty = memory_points([], UTM, {"Au_ppm": []})
    with pytest.raises(QgsProcessingException) as err:
        run_alg("element_selection", {"POINTS": empty, "DEPOSITS": memory_points(DEPOSITS, UTM),
                                      "OUTPUT_HTML": str(tmp_path / "e.html")})
    assert "(POINTS): The layer has no features." in str(err.value) and "reshape" not in str(err.value)
