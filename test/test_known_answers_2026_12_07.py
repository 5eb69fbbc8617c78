"""Known answers for science code whose results no other test pinned (audit of 2026-12-07, mutation testing).

Each test checks values computed independently of OreMap (by hand, with scikit-learn, or from a formula or a
definition written here), in the scenario where a plausible slip in the code changes what the user sees. No QGIS.
"""

import math

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from sklearn.metrics import r2_score, roc_auc_score

from oremap.core.abundance import abundance
from oremap.core.engine import bad_bands, wavelengths
from oremap.core.engine.feedback import Feedback
from oremap.core.geochemistry import anomaly_methods, element_selection, idw, prospectivity_eval, survey_hygiene
from oremap.core.hyperspectral import ood, spectral_library
from oremap.core.sentinel2 import mine_detection


class _Log(Feedback):
    """Feedback that keeps its messages."""

    def __init__(self):
        self.messages = []

    def info(self, message):
        self.messages.append(message)

    def warning(self, message):
        self.messages.append(message)


def _hanley_mcneil_se(a, n_pos, n_neg):
    """Hanley & McNeil (1982) standard error of an AUC ``a`` >= 0.5, written out from the paper."""
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    return math.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg))


# 1 (pe8) ------------------------------------------------------------------------------------------------------------
def test_repeated_negative_auc_zauc_uses_negatives_per_draw():
    """The ZAUC of the mean AUC is Hanley & McNeil's with n_positive and the negatives of one draw (12), not with
    every candidate (3000): with 3000 it claimed a stronger signal (5.32 instead of 4.61)."""
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(1.0, 1, 12), rng.normal(0, 1, 3000)]
    labels = np.r_[np.ones(12), np.zeros(3000)]
    r = prospectivity_eval.repeated_negative_auc(scores, labels, n_draws=20, seed=0)
    assert (r["n_positive"], r["n_negatives"], r["n_candidates"]) == (12, 12, 3000)
    # the mean AUC itself, draw by draw with scikit-learn (same seeded draws as documented: k of the negatives)
    pos, neg = scores[labels == 1], scores[labels == 0]
    draw = np.random.default_rng(0)
    aucs = [roc_auc_score(np.r_[np.ones(12), np.zeros(12)], np.r_[pos, neg[draw.choice(neg.size, 12, replace=False)]])
            for _ in range(20)]
    assert r["mean"] == pytest.approx(np.mean(aucs), abs=1e-12)
    se = _hanley_mcneil_se(r["mean"], 12, 12)
    assert r["se"] == pytest.approx(se, rel=1e-9)
    assert r["zauc"] == pytest.approx((r["mean"] - 0.5) / se, rel=1e-9)
    assert r["zauc"] != pytest.approx((r["mean"] - 0.5) / _hanley_mcneil_se(r["mean"], 12, 3000), rel=1e-3)


# 2 (ab1, ab2) -------------------------------------------------------------------------------------------------------
def test_regression_metrics_bias_sign_and_r2():
    """A model 8 points high on kaolinite and 8 low on quartz: bias = mean(prediction - truth) = +8 and -8 (the
    docstring's sign), R2 = 1 - SSE/SST as scikit-learn's r2_score (0.872), not the squared correlation (1)."""
    Y = np.array([[10.0, 90.0], [30.0, 70.0], [50.0, 50.0], [70.0, 30.0]])
    A = Y + np.array([[8.0, -8.0]])
    rows = abundance.regression_metrics(Y, A, ["kaolinite", "quartz"])
    assert rows["kaolinite"]["bias"] == pytest.approx(8.0)
    assert rows["quartz"]["bias"] == pytest.approx(-8.0)
    # by hand: SSE = 4 * 64 = 256, SST = 30^2 + 10^2 + 10^2 + 30^2 = 2000
    assert rows["kaolinite"]["r2"] == pytest.approx(1.0 - 256.0 / 2000.0)
    assert rows["kaolinite"]["r2"] == pytest.approx(r2_score(Y[:, 0], A[:, 0]))
    assert rows["quartz"]["r2"] == pytest.approx(r2_score(Y[:, 1], A[:, 1]))
    assert rows["kaolinite"]["rmse"] == pytest.approx(8.0)
    assert rows["mean_rmse"] == pytest.approx(8.0)


# 3 (sl1) ------------------------------------------------------------------------------------------------------------
def test_csv_library_stored_times_10000_reads_as_fractions(tmp_path):
    """A CSV library of reflectance x 10000 (5400 ... 7500) reads as 0.54 ... 0.75, and the log says x 10000."""
    path = tmp_path / "lib_x10000.csv"
    wl = np.arange(400, 2501, 100)
    path.write_text("wavelength_nm,Kaolinite\n" + "".join(f"{w},{5000 + w}\n" for w in wl))
    log = _Log()
    lib = spectral_library.read_library(path, feedback=log)
    assert lib.spectra[0, 0] == pytest.approx(0.54)
    np.testing.assert_allclose(lib.spectra[0], (5000.0 + wl) / 10000.0, rtol=1e-12)
    said = [m for m in log.messages if "x 10000" in m]
    assert len(said) == 1 and "divided by 10000" in said[0]


# 4 (es1) ------------------------------------------------------------------------------------------------------------
def test_two_sided_perfect_two_vs_two_depletion_not_selected():
    """2 deposit samples below 2 background ones: AUC 0, ZAUC -inf, but the rank test's z is only
    -0.5 / sqrt(5 / 48) = -1.549 (Hanley & McNeil's SE at 0.5): not selected at 2.58, even two-sided."""
    v = np.array([[1.0], [2.0], [10.0], [11.0]])
    lab = np.array([1, 1, 0, 0])
    row = element_selection.element_selection(v, ["Ni"], lab, two_sided=True)[0]
    assert row["auc"] == 0.0
    assert row["zauc"] == -np.inf
    assert row["z_null"] == pytest.approx(-0.5 / math.sqrt((2 + 2 + 1) / (12.0 * 2 * 2)))
    assert row["direction"] == "negative"
    assert row["selected"] is False


# 5 (bb3, bb4) -------------------------------------------------------------------------------------------------------
def _bb_scene():
    """500 pixels of a smooth reflectance-like scene at 34 bands away from the water windows."""
    rng = np.random.default_rng(0)
    wl = np.linspace(1000, 2400, 60)
    wl = wl[(wl < 1340) | (wl > 1960)]
    X = 0.3 + 0.05 * np.sin(wl / 200.0)[None, :] * rng.uniform(0.5, 1.5, (500, 1)) + rng.normal(0, 0.002,
                                                                                                (500, wl.size))
    return X, wl


def test_band_missing_in_70_percent_of_pixels_is_dropped():
    """A band NaN in 350 of 500 pixels (70 %, more than half) is bad; the rest of the scene keeps every band."""
    X, wl = _bb_scene()
    X[:350, 5] = np.nan
    r = bad_bands.detect_bad_bands(X, wl)
    assert np.flatnonzero(r.bad).tolist() == [5]
    assert r.reason[5] == "constant"   # the key of "constant or missing in most pixels"


def test_non_reflectance_scene_with_negative_medians_flags_no_band_negative():
    """A product that is not reflectance (centred, half its band medians negative, 17 of 34): no band is dropped as
    'negative' (that rule is for reflectance scenes, whose medians are almost all positive)."""
    X, wl = _bb_scene()
    Z = X - X.mean(axis=0) + np.where(np.arange(wl.size) % 2 == 0, 0.1, -0.1)
    assert int((np.median(Z, axis=0) < 0).sum()) == 17
    r = bad_bands.detect_bad_bands(Z, wl)
    assert sum(1 for x in r.reason if x == "negative") == 0
    assert not r.bad.any()


# 6 (an4) ------------------------------------------------------------------------------------------------------------
def _spatial_score_by_hand(Z, x, y, i, k=8, floor=0.25):
    """Sample ``i`` against its ``k`` nearest samples at another place: RMS over elements of the positive part of
    (value - median) / max(1.4826 MAD, floor)."""
    d = np.hypot(x - x[i], y - y[i])
    others = np.flatnonzero(d > 0)
    nb = others[np.argsort(d[others], kind="stable")[:k]]
    med = np.median(Z[nb], axis=0)
    mad = 1.4826 * np.median(np.abs(Z[nb] - med), axis=0)
    r = (Z[i] - med) / np.maximum(mad, floor)
    return float(np.sqrt(np.mean(np.clip(r, 0, None) ** 2)))


def test_spatial_score_colocated_duplicates_do_not_judge_each_other():
    """An enriched site sampled 3 times (field duplicates): each duplicate is judged against the 8 nearest samples
    elsewhere, so its score equals the score of that sample with its duplicates removed, and the hand computation."""
    rng = np.random.default_rng(0)
    # 10 background sites at distinct distances 100 ... 190 m from the enriched site at (0, 0)
    ang = rng.uniform(0, 2 * np.pi, 10)
    dist = 100.0 + 10.0 * np.arange(10)
    x = np.r_[np.zeros(3), dist * np.cos(ang)]
    y = np.r_[np.zeros(3), dist * np.sin(ang)]
    Z = rng.normal(0, 1, (13, 3))
    Z[:3] += 6.0
    s = anomaly_methods.score_spatial(Z, x, y)
    for i in range(3):
        alone = np.r_[i, np.arange(3, 13)]   # the duplicate without the other two
        s_alone = anomaly_methods.score_spatial(Z[alone], x[alone], y[alone])[0]
        assert s[i] == pytest.approx(s_alone, rel=1e-12)
        assert s[i] == pytest.approx(_spatial_score_by_hand(Z, x, y, i), rel=1e-12)


# 7 (md5) ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [(10, 12), (7, 9)], ids=["inside_strip", "on_strip_seam"])
def test_footprint_of_exactly_min_area_is_kept(rows):
    """10 Sentinel-2 pixels of 10 m = 1000 m2 = 0.1 ha: kept with min_area_ha 0.1 (dropped only when smaller),
    whether inside a strip of 8 rows or across the seam between rows 7 and 8."""
    mask = np.zeros((40, 40), bool)
    mask[rows[0]:rows[1], 10:15] = True
    prob = np.where(mask, 0.9, 0.1)
    t = Affine(10.0, 0, 500000.0, 0, -10.0, 7000000.0)
    f = mine_detection.footprints(mask, prob, t, min_area_ha=0.1, strip=8, crs=CRS.from_epsg(32633))
    assert len(f) == 1
    assert f[0]["area_ha"] == pytest.approx(10 * 10 * 10 / 1e4)
    assert f[0]["mean_prob"] == pytest.approx(0.9)


# 8 (wl5, sh1, sh6) --------------------------------------------------------------------------------------------------
#: Metres per unit, from the SI definitions of each length unit.
_METRES = {"nm": 1e-9, "nanometer": 1e-9, "nanometre": 1e-9,
           "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "micrometer": 1e-6, "micrometre": 1e-6, "micron": 1e-6,
           "mm": 1e-3, "millimeter": 1e-3, "millimetre": 1e-3,
           "angstrom": 1e-10}

#: Mass fraction per unit (kg of element per kg of sample), from each unit's definition; "ppt" is parts per
#: trillion (the geochemical use, e.g. Au or PGE in ppt), "gt" and "gpt" are g/t written without the slash.
_MASS_FRACTION = {"pct": 1e-2, "percent": 1e-2, "wt%": 1e-2, "%": 1e-2,
                  "ppm": 1e-6, "ppb": 1e-9, "ppt": 1e-12,
                  "gt": 1e-3 / 1e3, "gpt": 1e-3 / 1e3, "g/t": 1e-3 / 1e3, "mg/kg": 1e-6 / 1.0,
                  "ug/kg": 1e-9 / 1.0, "µg/kg": 1e-9, "μg/kg": 1e-9,
                  "ug/g": 1e-9 / 1e-3, "µg/g": 1e-9 / 1e-3, "μg/g": 1e-9 / 1e-3,
                  "ng/g": 1e-12 / 1e-3}


def test_wavelength_unit_factors_match_their_definitions():
    """Every unit word of core.engine.wavelengths in nm per unit = metres per unit / 1e-9; 4500 A = 450 nm."""
    table = wavelengths._UNIT_FACTORS
    assert set(table) <= set(_METRES), f"unit words without an independent definition here: {set(table) - set(_METRES)}"
    for word, factor in table.items():
        assert factor == pytest.approx(_METRES[word] / 1e-9, rel=1e-12), word
        assert wavelengths.unit_word_factor(word) == pytest.approx(_METRES[word] / 1e-9, rel=1e-12), word
    assert wavelengths.to_nanometres([4500.0], "Angstroms")[0] == pytest.approx(450.0)
    assert wavelengths.to_nanometres([2.2], "Microns")[0] == pytest.approx(2200.0)


def test_survey_unit_factors_match_their_definitions():
    """Every unit of survey_hygiene.UNIT_FACTORS in ppm per unit = mass fraction per unit / 1e-6; the factor of a
    column named in it (Au_ppt: 1e-6, Cu (ug/g): 1)."""
    table = survey_hygiene.UNIT_FACTORS
    assert set(table) <= set(_MASS_FRACTION), f"units without an independent definition here: {set(table) - set(_MASS_FRACTION)}"
    for unit, factor in table.items():
        assert factor == pytest.approx(_MASS_FRACTION[unit] / 1e-6, rel=1e-12), unit
    assert survey_hygiene.parse_column("Au_ppt").factor == pytest.approx(1e-6)
    assert survey_hygiene.parse_column("Cu (ug/g)").factor == pytest.approx(1.0)
    assert survey_hygiene.parse_column("Au_ppb").factor == pytest.approx(1e-3)


# 9 (es3, es4) -------------------------------------------------------------------------------------------------------
def test_element_with_fewer_than_two_positive_or_negative_values_has_nan_auc():
    """Cu measured at only 1 of the 10 positives, Pb at only 1 of the 50 negatives: NaN AUC (documented: fewer than
    2 positive or 2 negative values); Zn, complete, has scikit-learn's AUC."""
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(60, 3))
    lab = np.r_[np.ones(10), np.zeros(50)]
    X[1:10, 1] = np.nan
    X[11:, 2] = np.nan
    rows = {r["element"]: r for r in element_selection.element_selection(X, ["Zn", "Cu", "Pb"], lab)}
    assert rows["Cu"]["n_pos"] == 1 and np.isnan(rows["Cu"]["auc"]) and rows["Cu"]["selected"] is False
    assert rows["Pb"]["n_neg"] == 1 and np.isnan(rows["Pb"]["auc"]) and rows["Pb"]["selected"] is False
    assert rows["Zn"]["auc"] == pytest.approx(roc_auc_score(lab, X[:, 0]))


def test_log10_leaves_zero_values_out_with_a_note():
    """log10 with one zero kept as zero: that value is left out (AUC as scikit-learn's without that sample) and
    the notes say so; no refusal."""
    rng = np.random.default_rng(3)
    X = rng.lognormal(size=(60, 2))
    X[0, 0] = 0.0
    lab = np.r_[np.ones(10), np.zeros(50)]
    rows, notes = element_selection.select_elements(X, ["Zn_ppm", "Cu_ppm"], lab, transform="log10", zeros="keep")
    rows = {r["element"]: r for r in rows}
    assert "log10: 1 values that are zero or negative were left out (Zn_ppm: 1)." in notes
    assert rows["Zn_ppm"]["n_pos"] == 9
    assert rows["Zn_ppm"]["auc"] == pytest.approx(roc_auc_score(lab[1:], X[1:, 0]))
    assert rows["Cu_ppm"]["auc"] == pytest.approx(roc_auc_score(lab, X[:, 1]))


# 10 (ood1) ----------------------------------------------------------------------------------------------------------
def test_ood_exemplars_spread_over_first_to_last_group():
    """100 groups of one class, 2 spectra each: 40 exemplars (the cap), each a group's mean, at groups
    round(i * 99 / 39) for i = 0 ... 39 (evenly spaced from the first group to the last)."""
    n_groups = 100
    gid = np.repeat(np.arange(n_groups), 2)
    labels = 1000 + 7 * gid                    # group ids need not be 0 ... n-1
    second = 0.1 + 0.01 * gid + np.tile([-0.001, 0.001], n_groups)
    P = np.column_stack([np.ones(gid.size), second, np.full(gid.size, 0.5)])
    E, owner = ood.ood_exemplars(P, np.zeros(gid.size, int), labels, 1)
    expected = [round(i * 99 / 39) for i in range(40)]
    assert E.shape == (40, 3) and owner.tolist() == [0] * 40
    assert expected[0] == 0 and expected[-1] == 99
    np.testing.assert_allclose(E[:, 1], 0.1 + 0.01 * np.array(expected), atol=1e-12)   # the group means


# 11 (sl4) -----------------------------------------------------------------------------------------------------------
def test_library_fwhm_after_merging_repeated_wavelengths(tmp_path):
    """An ENVI library with 600 nm listed twice (FWHM 5, 10, 10, 20): three channels with FWHM 5, 10, 20 and the
    two 600 nm values averaged (0.2 and 0.4 -> 0.3)."""
    data = np.array([[0.1, 0.2, 0.4, 0.5]], dtype="<f8")
    (tmp_path / "lib.sli").write_bytes(data.tobytes())
    (tmp_path / "lib.hdr").write_text(
        "ENVI\nsamples = 4\nlines = 1\nbands = 1\nheader offset = 0\nfile type = ENVI Spectral Library\n"
        "data type = 5\ninterleave = bsq\nbyte order = 0\nwavelength units = Nanometers\n"
        "spectra names = {a}\nwavelength = {500, 600, 600, 700}\nfwhm = {5, 10, 10, 20}\n")
    lib = spectral_library.read_library(tmp_path / "lib.sli")
    assert lib.wavelengths.tolist() == [500.0, 600.0, 700.0]
    assert lib.fwhm.tolist() == [5.0, 10.0, 20.0]
    np.testing.assert_allclose(lib.spectra[0], [0.1, 0.3, 0.5])


# 12 (idw2) ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing, cell", [(140.0, 50.0), (300.0, 100.0), (100.0, 20.0), (800.0, 200.0)])
def test_default_idw_cell_size(spacing, cell):
    """A quarter of the sample spacing rounded to 1, 2 or 5 x 10^n, nearest by ratio: 35 m -> 50 (35/20 = 1.75 >
    50/35 = 1.43), 75 m -> 100 (75/50 = 1.5 > 100/75 = 1.33); by difference both would be ties (15 m, 25 m)."""
    g = np.arange(0, 20 * spacing, spacing)
    xx, yy = np.meshgrid(g, g)
    assert idw.sample_spacing(xx.ravel(), yy.ravel()) == pytest.approx(spacing)
    assert idw.suggest_cell_size(xx.ravel(), yy.ravel()) == cell


# 13 (an5) -----------------------------------------------------------------------------------------------------------
def test_anomaly_classes_of_all_equal_score_is_background():
    """50 samples of one score (an enrichment score of 0 everywhere): all background (0); NaN stays -1."""
    assert anomaly_methods.anomaly_classes(np.zeros(50)).tolist() == [0] * 50
    s = np.r_[np.full(20, 0.7), np.nan]
    assert anomaly_methods.anomaly_classes(s).tolist() == [0] * 20 + [-1]
