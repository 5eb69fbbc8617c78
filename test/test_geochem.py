"""core.geochemistry.geochem: units, values below detection, transforms, scaling, duplicates, CRS, survey tables."""

import json
import math
import os

import numpy as np
import pytest

from conftest import SHARED_DATA
from oremap.core.geochemistry import geochem
from oremap.core.engine.errors import OreMapError

SURVEY = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv")
NAN = np.nan


def test_units_and_element_names():
    assert geochem.element_unit_factor("Au_ppb") == (1e-3, "ppb")
    assert geochem.element_unit_factor("Cu_ppm") == (1.0, "ppm")
    assert geochem.element_unit_factor("Fe2O3_pct") == (1e4, "pct")
    assert geochem.element_unit_factor("au_PPB") == (1e-3, "ppb")
    assert geochem.element_unit_factor("LABnegNR_N") == (1.0, None)
    assert geochem.element_unit_factor("ppm") == (1.0, None)
    assert geochem.element_name("Au_ppb") == "Au"
    assert geochem.element_name("Al2O3_pct") == "Al2O3"
    assert geochem.element_name("LABnegNR_N") == "LABnegNR_N"


ROWS = np.array([[-9999.0, 5.0, -0.5],
                 [-2.0, 0.0, NAN],
                 [1.0, -9999.0, -0.01]])


@pytest.mark.parametrize("mode, expected", [
    ("half", [[NAN, 5.0, 0.25], [1.0, 0.0, NAN], [1.0, NAN, 0.005]]),
    ("limit", [[NAN, 5.0, 0.5], [2.0, 0.0, NAN], [1.0, NAN, 0.01]]),
    ("nan", [[NAN, 5.0, NAN], [NAN, 0.0, NAN], [1.0, NAN, NAN]]),
    ("drop", [[NAN, 5.0, NAN], [NAN, 0.0, NAN], [1.0, NAN, NAN]]),
])
def test_below_detection_known_rows(mode, expected):
    original = ROWS.copy()
    out, counts = geochem.below_detection(ROWS, mode=mode, zeros="keep")
    np.testing.assert_array_equal(out, np.array(expected))
    np.testing.assert_array_equal(counts["below_detection"], [1, 0, 2])
    np.testing.assert_array_equal(counts["missing"], [1, 1, 1])
    np.testing.assert_array_equal(counts["zeros"], [0, 1, 0])
    np.testing.assert_array_equal(ROWS, original)  # the input is not modified


def test_one_zero_rule_with_missing_by_default():
    rows = np.array([[0.0, 0.0, -0.4],
                     [-0.02, 0.0, 0.0],
                     [0.5, -9999.0, 3.0],
                     [0.0, 0.0, 0.0]])
    assert geochem.DEFAULT_ZEROS == "missing" and [m for m, _ in geochem.ZERO_CHOICES] == list(geochem.ZERO_MODES)
    out, counts = geochem.below_detection(rows)  # the default: zeros are missing
    np.testing.assert_array_equal(out, [[NAN, NAN, 0.2], [0.01, NAN, NAN], [0.5, NAN, 3.0], [NAN, NAN, NAN]])
    np.testing.assert_array_equal(counts["zeros"], [2, 3, 2])
    np.testing.assert_array_equal(counts["missing"], [0, 1, 0])
    # half the smallest positive value after the below-detection replacement (0.01 = half of 0.02)
    out, counts = geochem.below_detection(rows, zeros="half_min")
    np.testing.assert_array_equal(out, [[0.005, 0.0, 0.2], [0.01, 0.0, 0.1], [0.5, NAN, 3.0], [0.005, 0.0, 0.1]])
    np.testing.assert_array_equal(counts["zero_value"], [0.005, NAN, 0.1])  # column 2: nothing positive, kept
    out, _ = geochem.below_detection(rows, zeros="keep")
    assert (out == 0).sum() == 7
    lines = geochem.value_notes(["Au_ppm", "Bi_ppm", "Sb_ppm"], counts, "half", "half_min", n_samples=4)
    assert lines[0] == ("Au_ppm: 1 below detection set to half the detection limit, 2 zero values set to half the "
                        "smallest positive value (0.005) (of 4 samples).")
    assert "no positive value: kept as 0" in lines[1]
    _, counts = geochem.below_detection(rows)
    assert geochem.value_notes(["Au_ppm", "Bi_ppm", "Sb_ppm"], counts, per_column=False) == [
        "7 values of exactly 0 were treated as missing (not analysed) (Bi_ppm: 3, Au_ppm: 2, Sb_ppm: 2).",
        "2 values below detection were set to half the detection limit (Au_ppm: 1, Sb_ppm: 1)."]
    with pytest.raises(OreMapError) as err:
        geochem.below_detection(rows, zeros="drop")
    assert err.value.parameter == "zeros"


def test_below_detection_other_missing_code_and_bad_mode():
    out, counts = geochem.below_detection([[-99.0, 3.0]], mode="half", missing=-99.0)
    np.testing.assert_array_equal(out, [[NAN, 3.0]])
    assert counts["missing"].tolist() == [1, 0] and counts["below_detection"].tolist() == [0, 0]
    with pytest.raises(OreMapError) as err:
        geochem.below_detection(ROWS, mode="third")
    assert err.value.parameter == "below_detection"


def test_below_an_unreported_limit_and_an_undeclared_missing_code():
    """'BDL' (read as -inf: below detection, limit not reported) stands at the column's smallest measured value or
    limit, halved like any value below detection; -99 above every measured value of three columns is a
    missing-value code there and in the fourth (where 99 is no higher than its values), and the log says so."""
    rows = [[-np.inf, -99.0, -99.0, -99.0, -99.0],
            [0.5, 1.2, 0.03, 0.2, 150.0],
            [2.0, 0.8, -0.01, 0.4, 300.0],
            [-0.2, 2.5, 0.05, 0.1, -99.0]]
    out, counts = geochem.below_detection(rows, mode="half", missing=-9999.0)
    np.testing.assert_array_equal(out[:, 0], [0.1, 0.5, 2.0, 0.1])
    assert np.isnan(out[0, 1:]).all() and np.isnan(out[3, 4]) and out[2, 2] == 0.005
    assert counts["below_detection"].tolist() == [2, 0, 1, 0, 0] and counts["missing"].tolist() == [0, 1, 1, 1, 2]
    assert counts["codes"] == {-99.0: 3} and counts["code_values"] == 5
    assert geochem.value_notes(list("abcde"), counts)[0] == (
        "-99 (3 columns) read as a missing-value code (5 values made missing): there it lies above every measured "
        "value, which no detection limit does. Set the missing-value code to it to say so yourself.")
    limit, _ = geochem.below_detection(rows, mode="limit", missing=-9999.0)
    assert limit[0, 0] == 0.2


def test_zeros_to_half_minimum():
    out, counts, used = geochem.zeros_to_half_minimum([[0.0, 0.0, 1.0], [0.4, 0.0, NAN], [0.1, 0.0, 0.0]])
    np.testing.assert_array_equal(out, [[0.05, 0.0, 1.0], [0.4, 0.0, NAN], [0.1, 0.0, 0.5]])
    assert counts.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(used, [0.05, NAN, 0.5])


def test_log10_and_its_refusal():
    np.testing.assert_allclose(geochem.transform([[100.0, 0.001], [NAN, 10.0]], "log10"),
                               [[2.0, -3.0], [NAN, 1.0]], rtol=0, atol=1e-15)
    with pytest.raises(OreMapError) as err:
        geochem.transform([[1.0, 0.0], [2.0, 3.0]], "log10", names=["Au_ppb", "Cu_ppm"])
    assert err.value.parameter == "transform" and "Cu_ppm" in str(err.value)


def test_clr_hand_computed():
    names = ["Au_ppb", "Cu_ppm", "Fe_pct"]
    rows = [[100.0, 20.0, 2.0],   # ppm: 0.1, 20, 20000
            [0.0, 10.0, 1.0],     # ppm: 0, 10, 10000 -> the zero is replaced
            [50.0, NAN, 1.0]]     # incomplete: no log-ratios
    out = geochem.transform(rows, "clr", names=names)
    # row 1 by hand
    logs = [math.log(0.1), math.log(20.0), math.log(20000.0)]
    mean = sum(logs) / 3
    np.testing.assert_allclose(out[0], [v - mean for v in logs], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[0], [-5.834797, -0.536480, 6.371277], atol=1e-6)
    # row 2: delta = 0.65 x the smallest positive value of the table (0.1 ppm), the other parts shrunk
    delta = 0.065
    factor = (10010.0 - delta) / 10010.0
    logs = [math.log(delta), math.log(10.0 * factor), math.log(10000.0 * factor)]
    mean = sum(logs) / 3
    np.testing.assert_allclose(out[1], [v - mean for v in logs], rtol=0, atol=1e-12)
    assert np.isnan(out[2]).all()
    # without names, the raw numbers are the parts: Au 100, Cu 20, Fe 2
    raw = geochem.transform(rows[:1], "clr")
    logs = [math.log(100.0), math.log(20.0), math.log(2.0)]
    np.testing.assert_allclose(raw[0], [v - sum(logs) / 3 for v in logs], rtol=0, atol=1e-12)


def test_scaler_statistics_round_trip_and_fallbacks():
    X = np.array([[1.0, 1.0, 7.0, 0.5],
                  [2.0, 2.0, 7.0, 0.5],
                  [3.0, 3.0, 7.0, 0.5],
                  [4.0, 4.0, 7.0, 0.5],
                  [NAN, 100.0, 7.0, 9.5]])
    z = geochem.Scaler.fit(X, "zscore")
    assert z.center[0] == 2.5 and z.scale[0] == pytest.approx(math.sqrt(1.25), abs=1e-15)  # NaN ignored
    r = geochem.Scaler.fit(X, "robust", names=["a", "b", "c", "d"])
    # column b: median 3, quartiles 2 and 4 -> IQR 2 -> sd-equivalent 2 / 1.349
    assert r.center[1] == 3.0 and r.scale[1] == pytest.approx(2.0 / 1.3489795003921634, rel=1e-12)
    from sklearn.preprocessing import RobustScaler

    ref = RobustScaler(unit_variance=True).fit(X[:, 1:2])
    np.testing.assert_allclose(r.transform(X)[:, 1], ref.transform(X[:, 1:2])[:, 0], rtol=1e-12)
    # column c constant -> not scaled; column d has IQR 0 -> standard deviation
    assert r.scale[2] == 1.0 and r.center[2] == 7.0
    assert r.scale[3] == pytest.approx(np.std([0.5, 0.5, 0.5, 0.5, 9.5]), rel=1e-12)
    assert any(n.startswith("c: constant") for n in r.notes) and any(n.startswith("d: interquartile") for n in r.notes)
    # metadata round trip through JSON
    back = geochem.Scaler.from_dict(json.loads(json.dumps(r.to_dict())))
    np.testing.assert_array_equal(back.transform(X), r.transform(X))
    np.testing.assert_allclose(back.inverse_transform(back.transform(X)), X, rtol=1e-12)
    none = geochem.Scaler.fit(X, "none")
    np.testing.assert_array_equal(none.transform(X), X)


def test_scaler_fitted_on_a_fold_applies_to_all():
    rng = np.random.default_rng(3)
    X = rng.lognormal(size=(40, 3))
    train = np.zeros(40, dtype=bool)
    train[:25] = True
    scaler = geochem.Scaler.fit(X[train], "zscore")
    Z = scaler.transform(X)
    np.testing.assert_allclose(Z[train].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z[train].std(axis=0), 1.0, rtol=1e-12)
    expected = (X[~train] - X[train].mean(axis=0)) / X[train].std(axis=0)
    np.testing.assert_allclose(Z[~train], expected, rtol=1e-12)
    # the same through preprocess
    out, fitted, _ = geochem.preprocess(X, ["a_ppm", "b_ppm", "c_ppm"], transform="none", scale="zscore",
                                        fit_rows=train)
    np.testing.assert_allclose(out, Z, rtol=1e-12)
    assert fitted.to_dict() == scaler.to_dict()
    with pytest.raises(OreMapError):
        scaler.transform(X[:, :2])


def test_preprocess_chains_the_steps():
    values = np.array([[-0.002, 30.0], [0.004, -5.0], [0.01, 40.0], [-9999.0, 50.0], [0.02, 60.0], [0.0, 8.0]])
    out, scaler, messages = geochem.preprocess(values, ["Au_ppm", "As_ppm"], below="half", transform="log10",
                                               scale="robust", zeros="half_min")
    logs = np.log10([[0.001, 30.0], [0.004, 2.5], [0.01, 40.0], [NAN, 50.0], [0.02, 60.0], [0.0005, 8.0]])
    expected = geochem.Scaler.fit(logs, "robust").transform(logs)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert scaler.method == "robust"
    assert any(m.startswith("Au_ppm: 1 below detection") and "1 missing" in m for m in messages)
    assert any(m.startswith("As_ppm: 1 below detection") for m in messages)
    assert any("Au_ppm: " in m and "1 zero values set to half the smallest positive value (0.0005)" in m
               for m in messages)
    # the default (since the zero rule was unified): the zero is missing, so it is left out of the scaling too
    out, scaler, messages = geochem.preprocess(values, ["Au_ppm", "As_ppm"], below="half", transform="log10",
                                               scale="robust")
    logs[5, 0] = NAN
    np.testing.assert_allclose(out, geochem.Scaler.fit(logs, "robust").transform(logs), rtol=1e-12)
    assert any("1 zero values treated as missing (not analysed)" in m for m in messages)
    with pytest.raises(OreMapError):
        geochem.preprocess(values, ["Au_ppm", "As_ppm"], transform="log10", zeros="keep")


def test_aggregate_exact_duplicates():
    x = [0.0, 1.0, 0.0, 2.0, 1.0, 1.0]
    y = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    v = [[1.0, NAN], [2.0, 4.0], [3.0, 6.0], [5.0, NAN], [NAN, 8.0], [8.0, 1.0]]
    ux, uy, mean, merged = geochem.aggregate_duplicates(x, y, v, how="mean")
    assert merged == 3
    np.testing.assert_array_equal(ux, [0.0, 1.0, 2.0])  # order of first appearance
    np.testing.assert_array_equal(uy, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(mean, [[2.0, 6.0], [5.0, 13.0 / 3.0], [5.0, NAN]])
    _, _, median, _ = geochem.aggregate_duplicates(x, y, v, how="median")
    np.testing.assert_allclose(median, [[2.0, 6.0], [5.0, 4.0], [5.0, NAN]])
    # nothing to merge: unchanged
    ux, uy, same, merged = geochem.aggregate_duplicates([0.0, 1.0], [0.0, 0.0], [[1.0], [2.0]])
    assert merged == 0 and same.tolist() == [[1.0], [2.0]]


def test_aggregate_within_a_tolerance_chains_neighbours():
    x = [0.0, 0.5, 5.0, 0.9]
    y = [0.0, 0.0, 5.0, 0.0]
    ux, uy, v, merged = geochem.aggregate_duplicates(x, y, [[1.0], [2.0], [3.0], [6.0]], tolerance=0.6)
    assert merged == 2
    np.testing.assert_allclose(ux, [1.4 / 3.0, 5.0])
    np.testing.assert_allclose(uy, [0.0, 5.0])
    np.testing.assert_allclose(v, [[3.0], [3.0]])


def test_utm_zone_and_projection():
    assert geochem.utm_crs_for([3.0, 3.5], [50.0, 51.0]) == 32631
    assert geochem.utm_crs_for([-70.6], [-33.4]) == 32719
    assert geochem.utm_crs_for([179.0, -177.5], [10.0, 10.0]) == 32601  # centroid across the antimeridian
    with pytest.raises(OreMapError, match="not longitude/latitude in degrees"):
        geochem.utm_crs_for([500000.0], [6200000.0])
    # area1 loaded with X and Y swapped (latitude as x): it was told to be a projected layer declared geographic
    with pytest.raises(OreMapError, match=r"look like longitude and latitude swapped: x runs from -34.3 to -32.6 and "
                                          r"y from 117.2 to 118.5") as err:
        geochem.utm_crs_for([-34.3, -32.6], [117.2, 118.5])
    assert err.value.parameter == "crs" and "X = longitude" in err.value.fix
    # the central meridian of zone 50 is 117 E; the equator lies at 10,000 km north in the south zones
    px, py = geochem.project_points([117.0], [0.0], 4326, "EPSG:32750")
    np.testing.assert_allclose([px[0], py[0]], [500000.0, 10000000.0], atol=1e-6)
    with pytest.raises(OreMapError):
        geochem.project_points([0.0], [0.0], "EPSG:999999", 4326)


def test_real_survey_table_and_its_utm_zone():
    x, y, values, names = geochem.read_sample_table(SURVEY)
    assert values.shape == (1392, len(names)) and len(names) == 123  # every _ppm/_ppb/_pct column
    assert "Au_ppm" in names and "SAMPLEID" not in names and "LABnegNR_N" not in names
    assert geochem.utm_crs_for(x, y) == 32750
    # first data row of the file: As 2.3 ppm, Au 0.0001 ppm
    x, y, values, names = geochem.read_sample_table(SURVEY, fields=["As_ppm", "Au_ppm"])
    assert (x[0], y[0]) == (118.211648772642, -34.3018093442451)
    assert values[0].tolist() == [2.3, 0.0001]
    with pytest.raises(OreMapError) as err:
        geochem.read_sample_table(SURVEY, fields=["Unobtainium_ppm"])
    assert err.value.parameter == "fields"
    with pytest.raises(OreMapError):
        geochem.read_sample_table(SURVEY, x="lon")


def test_values_above_the_whole_sample_are_warned_of():
    """One As value of 1e30 (an overflow code) was gridded into values up to 5.6e29 without a word."""
    values = np.array([[1e30, 5.0, 12.0], [3.0, 2e9, 15.0], [4.0, 7.0, 101.0], [np.nan, 8.0, 20.0]])
    note = geochem.impossible_values_note(values, ["As_ppm", "Au_ppb", "SiO2_pct"])
    assert note == ("Values above 100 % of the sample, which no assay gives (a code, an overflow or a unit slip): "
                    "As_ppm: 1 (up to 1e+30); Au_ppb: 1 (up to 2e+09); SiO2_pct: 1 (up to 101). Give such a code as "
                    "the missing value, or correct the values.")
    assert geochem.impossible_values_note(values[1:, 2:] * 0 + 50.0, ["SiO2_pct"]) is None
    assert geochem.impossible_values_note(np.array([[999999.0]]), ["Cu_ppm"]) is None
