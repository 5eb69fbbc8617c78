"""Survey hygiene: element columns by unit anywhere in the name, coordinates and ids never elements, oxides merged,
default elements by coverage; distances that fit the survey. Known answers by hand and on the real GSWA survey."""

import os

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from oremap.core.geochemistry import distance_advice as da
from oremap.core.geochemistry import survey_hygiene as sh
from oremap.core.engine.errors import OreMapError

SURVEY = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv")
ZNO_PER_ZN = (65.38 + 16.00) / 65.38  # 1.2447...


def till_survey(n=200, seed=3):
    """A till survey in the layout of a national compilation (shapefile-truncated coordinates, method codes after
    the unit, an oxide column beside its element, a sparse column, an id). Lognormal concentrations at typical till
    levels (Cu 30, Ni 25, Co 10, Zn 50 ppm; Au 2 ppb; Fe2O3 4 %); coordinates in TM35FIN (EPSG:3067)."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(420000, 440000, n).round(1)
    no = rng.uniform(7000000, 7015000, n).round(1)
    z = rng.standard_normal((n, 6))
    table = pd.DataFrame({
        "Sample_No": np.arange(1, n + 1), "Northing_k": no, "Easting_kk": e,
        "Cu_ppm_511": (30 * 10 ** (0.2 * z[:, 0])).round(1), "Ni_ppm_511": (25 * 10 ** (0.2 * z[:, 1])).round(1),
        "Co_ppm_511": (10 * 10 ** (0.15 * z[:, 2])).round(1), "Zn_ppm_511": (50 * 10 ** (0.2 * z[:, 3])).round(1),
        "Au_ppb_521": (2 * 10 ** (0.4 * z[:, 4])).round(2), "Fe2O3_pct": (4 * 10 ** (0.1 * z[:, 5])).round(2),
    })
    table["ZnO_ppm_511"] = (table["Zn_ppm_511"] * ZNO_PER_ZN).round(2)
    gaps = rng.choice(n, 20, replace=False)
    table.loc[gaps, "Zn_ppm_511"] = -9999.0          # Zn missing where only the oxide was reported
    table["Pt_ppb_511"] = -9999.0
    table.loc[:39, "Pt_ppb_511"] = 1.0 + np.arange(40) % 7   # measured in 20 % of the samples
    table.loc[5, "Au_ppb_521"] = -0.5               # below the detection limit of 0.5 ppb: a measurement
    return table, e, no, np.sort(gaps)


def test_column_names_are_read_by_unit_anywhere():
    c = sh.parse_column("Cu_ppm_511")
    assert (c.element, c.unit, c.oxide, c.factor) == ("Cu", "ppm", None, 1.0)
    c = sh.parse_column("Au_ppb_FA")
    assert (c.element, c.unit, c.factor) == ("Au", "ppb", 0.001)
    c = sh.parse_column("ZnO_ppm")
    assert (c.element, c.oxide) == ("Zn", "ZnO") and c.factor == pytest.approx(1 / ZNO_PER_ZN, rel=1e-12)
    c = sh.parse_column("Fe2O3T_pct")                # total iron as Fe2O3
    assert c.element == "Fe" and c.factor == pytest.approx(1e4 * 2 * 55.85 / (2 * 55.85 + 3 * 16.0), rel=1e-12)
    assert sh.parse_column("FE2O3_PCT").element == "Fe" and sh.parse_column("CU_PPM").element == "Cu"
    assert sh.parse_column("CO2_pct").element == "C"  # carbon dioxide, not cobalt
    # bare symbols with a units table (keys in any case), ppm when the table does not say
    au, cu = sh.parse_column("AU", {"au": "ppb"}), sh.parse_column("CU", {"AU": "ppb"})
    assert (au.element, au.unit, au.assumed_unit, cu.element, cu.unit) == ("Au", "ppb", True, "Cu", "ppm")
    with pytest.raises(OreMapError) as err:
        sh.parse_column("AU", {"AU": "furlongs"})
    assert err.value.parameter == "units"
    assert sh.parse_column("Y_ppm").element == "Y"   # yttrium
    for name in ("Y", "X", "Northing_k", "Easting_kk", "LATITUDE_D", "lon", "Sample_No", "SAMPLEID", "WAMEX_A_NO",
                 "fid", "LOI_pct", "H2Oneg_pct", "LABnegNR_N", "lat_dd", "x_mga"):
        assert sh.parse_column(name).element is None, name


def test_column_names_in_other_labs_styles():
    """Units in brackets, '%' and mass ratios, and a method code between element and unit: names that dropped Au and
    Hg from the default set of a compilation ('no unit in the name')."""
    for name, element, unit in (("Au (ppb)", "Au", "ppb"), ("Au [ppb]", "Au", "ppb"), ("Hg (ppm)", "Hg", "ppm"),
                                ("Cu mg/kg", "Cu", "mg/kg"), ("Cu_%", "Cu", "%"), ("S (%)", "S", "%"),
                                ("Au_FA_ppb", "Au", "ppb"), ("Au-FA_ppb", "Au", "ppb"), ("Au_AA23_ppm", "Au", "ppm"),
                                ("Y (ppm)", "Y", "ppm"), ("SiO2_wt%", "Si", "wt%"), ("Fe2O3%", "Fe", "%")):
        c = sh.parse_column(name)
        assert (c.element, c.unit) == (element, unit), name
    fe = sh.parse_column("Fe2O3 %")
    assert fe.oxide == "Fe2O3" and fe.factor == pytest.approx(1e4 * 2 * 55.85 / (2 * 55.85 + 3 * 16.0), rel=1e-12)
    assert sh.parse_column("Au (ppb)").factor == 0.001 and sh.parse_column("Cu mg/kg").factor == 1.0
    # a second symbol between element and unit is no method code: ambiguous, not read
    assert sh.parse_column("Au_Ag_ppm").element is None


def test_numbered_symbols_are_first_and_second_assays_of_their_element():
    """Company databases and compilations number the precious metals' assays (Au1, Au2, AU1_PPB): the element, merged
    with the first column first. Other symbols with a digit are oxidation or charge states, band names or molecules."""
    for name, element, unit, assumed in (("Au1", "Au", "ppm", True), ("Au2_ppm", "Au", "ppm", False),
                                         ("AU1_PPB", "Au", "ppb", False), ("Pd1 (ppb)", "Pd", "ppb", False),
                                         ("Au1_FA", "Au", "ppm", True), ("AG2_PPM", "Ag", "ppm", False)):
        c = sh.parse_column(name)
        assert (c.element, c.unit, c.assumed_unit) == (element, unit, assumed), name
    # ferrous iron, sulfide sulfur, hexavalent chromium, arsenite, Landsat bands, a chlorine code, isotopes: no assay
    # number (before, Fe2_pct filled the samples Fe_pct misses, and TM1 was thulium)
    for name in ("Fe2_pct", "Fe2 %", "S2-_pct", "Cr6_ppm", "As3_ppb", "As5_ppb", "TM1", "TM7", "CL1", "Cu1_pct",
                 "Re1", "Pb2", "S1", "Au10_ppm", "Pb206_ppm", "Au1ppb"):
        assert sh.parse_column(name).element is None, name
    assert sh.parse_column("CO2").element == "C" and sh.parse_column("CO3_pct").element == "C"
    landsat = sh.plan_elements(["TM1", "TM2", "TM3", "TM4", "TM5", "TM7", "NDVI"], np.ones((3, 7)), coverage=0)
    assert landsat.elements == ["TM1", "TM2", "TM3", "TM4", "TM5", "TM7", "NDVI"]   # no element: every field, as before
    # the units table names the element, and numbered columns take its unit ({"Au": "ppb"}: Au1 and AU2 in ppb)
    au1, au2 = sh.parse_column("Au1", {"Au": "ppb"}), sh.parse_column("AU2", {"au": "ppb"})
    assert (au1.unit, au1.unit_from_table, au2.unit, au2.unit_from_table) == ("ppb", True, "ppb", True)
    # the first assay first, the second fills where the first is missing (converted to its unit); -9999 missing
    values = np.array([[5.0, 7.0, 40.0], [-9999.0, 3.0, 35.0], [-1.0, -9999.0, 30.0]])
    plan = sh.plan_elements(["AU1_PPB", "AU2_PPB", "CU_PPM"], values)
    assert plan.elements == ["Au", "Cu"] and plan.columns["Au"] == ["AU1_PPB", "AU2_PPB"]
    np.testing.assert_array_equal(sh.apply_plan(plan, ["AU1_PPB", "AU2_PPB", "CU_PPM"], values)[:, 0], [5.0, 3.0, -1.0])
    # Fe2_pct (ferrous) beside Fe_pct stays apart: the samples Fe_pct misses stay missing
    iron = np.array([[2.9, 0.3], [-9999.0, 0.4]])
    plan = sh.plan_elements(["Fe_pct", "Fe2_pct"], iron, coverage=0)
    assert plan.columns["Fe"] == ["Fe_pct"] and sh.apply_plan(plan, ["Fe_pct", "Fe2_pct"], iron)[1, 0] == -9999.0


def test_names_cut_by_a_shapefile_after_a_method_code():
    """A laboratory's names (``Au_ME-MS61_ppm``) saved as a shapefile lose their unit (``Au_ME-MS61``, ten
    characters). They were no elements: TARGET=Au was refused blaming coverage, and without a target every numeric
    field was scored, oxides unmerged and yttrium taken for a coordinate. Read as bare names with a method code,
    area1 gives the same elements and values as with its own names (every unit then assumed: no name states one)."""
    for name, element, oxide in (("Au_ME-MS61", "Au", None), ("Y_ME-MS61", "Y", None), ("I_ME-MS61_", "I", None),
                                 ("Au-AA23_pp", "Au", None), ("Cu_ME-ICP4", "Cu", None), ("Au_FA", "Au", None),
                                 ("Fe2O3T_ME-", "Fe", "Fe2O3"), ("BaO_ME-MS6", "Ba", "BaO"), ("Zn_ME-OG62", "Zn", None),
                                 ("Pt_PGM-ICP23", "Pt", None), ("Pd_PGM-ICP", "Pd", None), ("Hg_CV41", "Hg", None),
                                 ("Cu_4A-ICP", "Cu", None), ("Au_TL43", "Au", None), ("Au_ICP40Q12", "Au", None),
                                 ("Cu_4ACD81", "Cu", None), ("Cu_4A_ICP_MS", "Cu", None)):
        c = sh.parse_column(name)
        assert (c.element, c.oxide, c.assumed_unit) == (element, oxide, True), name
    # no method code: a second element, a datum, a word; digits alone after Y or X stay a coordinate
    for name in ("Au_Ag", "Cu_Zn_ME", "Y_GDA94", "X_MGA94", "Y_2", "Au_rpt", "Au_dup", "As_mean", "LOI_XRF",
                 "Cu_Tl", "Cu_Ge", "u_row0_col0", "Cu_4A_ICP_MS_X"):
        assert sh.parse_column(name).element is None, name
    # a coordinate with its datum or zone stays one (a code without a method word is no method code)
    for name in ("Y_PSAD56", "Y_UTM19S", "Y_ED50", "Y_NZTM2000", "Y_Lo29", "Y_GRID1", "Y_PSAD56_UTM19S", "X_SAD69"):
        assert sh.parse_column(name).reason == "coordinate or identifier", name
    # chosen fields of one element and unknown units are used as given, each an element of its own
    chosen = sh.plan_elements(["Au_FA", "Au_CN", "As_ICP"], np.array([[1.0, 2, 3], [2, 3, 4]]), explicit=True,
                              coverage=0.0)
    assert chosen.fields == ["Au_FA", "Au_CN", "As_ICP"] and chosen.left_out == {}
    assert sh.plan_elements(["Au_FA", "As_ICP"], np.array([[1.0, 2], [2, 3]]), explicit=True,
                            coverage=0.0).elements == ["Au", "As"]    # alone, a chosen field keeps its element
    # with their units in the table, two chosen fields of one element are one element, converted
    table = sh.plan_elements(["Au_FA", "Au_CN"], np.array([[1.0, 2], [2, 3]]), explicit=True, coverage=0.0,
                             units={"Au_FA": "ppm", "Au_CN": "ppb"})
    assert table.columns["Au"] == ["Au_FA", "Au_CN"] and table.factors["Au"] == pytest.approx([1.0, 0.001])
    table = pd.read_csv(SURVEY, low_memory=False)
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    lab = [c.replace("_pp", "_ME-MS61_pp").replace("_pct", "_ME-MS61_pct") if c not in ("LOI_pct", "H2Oneg_pct",
                                                                                      "H2Opos_pct") else c
           for c in numeric]
    cut = [c[:10] for c in lab]
    assert len(set(cut)) == len(cut) and "Au_ME-MS61" in cut and "Y_ME-MS61_" in cut
    raw, x, y = table[numeric].to_numpy(float), table["X"].to_numpy(), table["Y"].to_numpy()
    names, values, plan = sh.survey_elements(numeric, raw, x, y)
    cut_names, cut_values, cut_plan = sh.survey_elements(cut, raw, x, y)
    assert cut_plan.elements == plan.elements and len(plan.elements) == 45
    assert cut_names == [lab[numeric.index(n)][:10] for n in names]
    np.testing.assert_array_equal(cut_values, values)
    assert "Y_ME-MS61_: element Y, unit ppm (assumed)." in cut_plan.log
    # an oxide of unknown unit is not merged into its element of unknown unit: CaO in per cent would fill a missing
    # Ca (ppm) 10,000 times too low
    plan = sh.plan_elements(["Ca_ME-MS61", "CaO_ME-MS6", "Cu_ME-MS61"],
                            np.array([[-9999.0, 2.0, 30.0], [14000.0, 1.9, 41.0], [15000.0, 2.1, 35.0]]), coverage=0.0)
    assert plan.columns["Ca"] == ["Ca_ME-MS61"] and plan.fields == ["Ca_ME-MS61", "Cu_ME-MS61"]
    assert plan.left_out["CaO_ME-MS6"].startswith("another column of Ca (Ca_ME-MS61), and without a unit")
    merged = sh.plan_elements(["Ca_ME-MS61", "CaO_ME-MS6"], np.array([[-9999.0, 2.0], [14000.0, 1.9]]),
                              coverage=0.0, units={"Ca_ME-MS61": "ppm", "CaO_ME-MS6": "pct"})
    assert merged.columns["Ca"] == ["Ca_ME-MS61", "CaO_ME-MS6"]


def test_a_missing_code_the_survey_does_not_declare():
    """-99 where the missing-value code is -9999: above every measured value in many columns, which no detection
    limit is, so it is missing (it was 49.5 ppm of every element, in columns never analysed too). A high detection
    limit in one column alone (area1's Ag: -0.1 where Ag reaches 0.059) stays below detection."""
    table = pd.read_csv(SURVEY, low_memory=False)
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    raw = table[numeric].to_numpy(float)
    assert sh.missing_codes(raw) == {}
    recoded = np.where(raw == -9999, -99.0, raw)
    codes = sh.missing_codes(recoded)
    assert list(codes) == [-99.0] and codes[-99.0] >= 20
    names, values, plan = sh.survey_elements(numeric, recoded, table["X"].to_numpy(), table["Y"].to_numpy())
    ref_names, ref_values, _ = sh.survey_elements(numeric, raw, table["X"].to_numpy(), table["Y"].to_numpy())
    assert names == ref_names
    np.testing.assert_array_equal(values, ref_values)
    assert plan.log[0].startswith(f"-99 ({codes[-99.0]} columns) read as a missing-value code "
                                  f"({int((raw == -9999).sum())} values made missing): there it lies above every "
                                  "measured value")
    # a limit of an old method above every background value of three elements is no code where it is a real limit
    table = np.array([[-5.0, -5.0, -5.0, -5.0], [1.0, 0.5, 2.0, 200.0], [2.0, 1.0, 3.0, 40.0]])
    codes = sh.missing_codes(table)
    assert codes == {-5.0: 3} and sh.code_mask(table, codes)[0].tolist() == [True, True, True, False]


def test_values_equal_to_the_geometry_are_coordinates():
    x = np.array([420000.5, 421000.0, 425000.0])
    y = np.array([7000000.0, 7001000.0, 7002000.0])
    assert sh.equals_geometry(y.copy(), x, y) and sh.equals_geometry(x + 1e-4, x, y)
    assert not sh.equals_geometry(y + 5.0, x, y)
    plan = sh.plan_elements(["Cu_ppm", "Ref_ppm", "Zn_ppm"], np.column_stack([[1.0, 2, 3], x, [4.0, 5, 6]]), x, y,
                            coverage=0.0)
    assert plan.left_out == {"Ref_ppm": "equals the point coordinates"} and plan.fields == ["Cu_ppm", "Zn_ppm"]


def test_a_bare_symbol_with_a_unit_in_the_units_table_counts_as_stated():
    """Beside fields that state their units, a bare 'AU' is left out as of unknown unit, unless the user's units
    table gives its unit: then it is an element like the others (it was left out all the same)."""
    values = np.array([[5.0, 2.0, 30.0], [12.0, 3.0, 41.0], [7.0, 1.5, 35.0]])
    plan = sh.plan_elements(["AU", "As_ppm", "Cu_ppm"], values)
    assert plan.fields == ["As_ppm", "Cu_ppm"]
    assert plan.left_out == {"AU": "bare name without a unit, while other columns state theirs"}
    plan = sh.plan_elements(["AU", "As_ppm", "Cu_ppm"], values, units={"AU": "ppb"})
    assert plan.fields == ["AU", "As_ppm", "Cu_ppm"] and plan.left_out == {}
    assert "AU: element Au, unit ppb (from the units table)." in plan.log
    # beside a field of the same element that states its unit, the table's field comes second (merged into it)
    plan = sh.plan_elements(["AU", "Au_ppm", "Cu_ppm"], np.array([[5.0, 0.004, 30.0], [12.0, 0.011, 41.0],
                                                                  [7.0, 0.008, 35.0]]), units={"AU": "ppb"})
    assert plan.fields == ["Au_ppm", "Cu_ppm"] and plan.columns["Au"] == ["Au_ppm", "AU"]
    assert plan.factors["Au"] == pytest.approx([1.0, 0.001])
    assert any(line.startswith("Columns of one element merged (1") and line.endswith("AU -> Au_ppm")
               for line in plan.log) and not any(line.startswith("Oxide") for line in plan.log)
    # where no name states its unit, the bare names are the elements, the table's or ppm
    plan = sh.plan_elements(["AU", "AS", "CU"], values, units={"AU": "ppb"})
    assert plan.fields == ["AU", "AS", "CU"] and "AS: element As, unit ppm (assumed)." in plan.log


def test_fixture_till_survey_plan_and_oxide_merge():
    table, e, no, gaps = till_survey()
    columns = list(table.columns)
    names, values, plan = sh.survey_elements(columns, table.to_numpy(float), e, no)
    assert names == ["Cu_ppm_511", "Ni_ppm_511", "Co_ppm_511", "Zn_ppm_511", "Au_ppb_521", "Fe2O3_pct"]
    assert plan.left_out["Northing_k"] in ("coordinate or identifier", "equals the point coordinates")
    assert plan.left_out["Easting_kk"] in ("coordinate or identifier", "equals the point coordinates")
    assert plan.left_out["Sample_No"] == "coordinate or identifier"
    assert plan.left_out["Pt_ppb_511"] == "measured in fewer than 80 % of the samples"
    assert plan.coverage["Pt"] == pytest.approx(0.2) and plan.coverage["Zn"] == 1.0 and plan.coverage["Au"] == 1.0
    assert plan.columns["Zn"] == ["Zn_ppm_511", "ZnO_ppm_511"]
    zn = values[:, names.index("Zn_ppm_511")]
    # the 20 samples without Zn get ZnO / 1.2447 (same unit), the others keep their own Zn
    np.testing.assert_allclose(zn[gaps], table["ZnO_ppm_511"].to_numpy()[gaps] / ZNO_PER_ZN, rtol=1e-12)
    own = np.setdiff1d(np.arange(len(table)), gaps)
    np.testing.assert_array_equal(zn[own], table["Zn_ppm_511"].to_numpy()[own])
    assert values[5, names.index("Au_ppb_521")] == -0.5   # below-detection codes pass through untouched
    assert any("ZnO_ppm_511 -> Zn_ppm_511" in line for line in plan.log)
    assert any(line.startswith("Left out (1), measured in fewer than 80 %") and "Pt_ppb_511" in line
               for line in plan.log)
    # a lower coverage keeps Pt; chosen fields are used as given (no coverage rule), their oxides merged
    assert "Pt_ppb_511" in sh.survey_elements(columns, table.to_numpy(float), e, no, coverage=0.15)[0]
    chosen, v2, _ = sh.survey_elements(columns, table.to_numpy(float), e, no,
                                       fields=["Pt_ppb_511", "Zn_ppm_511", "ZnO_ppm_511"])
    assert chosen == ["Pt_ppb_511", "Zn_ppm_511"]
    np.testing.assert_allclose(v2[:, 1], zn, rtol=1e-12)


def test_no_element_left_names_the_best_covered():
    table, e, no, _ = till_survey()
    with pytest.raises(OreMapError) as err:
        sh.survey_elements(["Pt_ppb_511", "Northing_k"], table[["Pt_ppb_511", "Northing_k"]].to_numpy(float), e, no)
    assert err.value.parameter == "fields" and "Pt_ppb_511 20 %" in err.value.message


def test_real_survey_default_elements():
    """The GSWA survey: 128 numeric columns; 45 elements measured in >= 80 % of the 1,392 samples."""
    table = pd.read_csv(SURVEY, low_memory=False)
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    raw = table[numeric].to_numpy(float)
    names, values, plan = sh.survey_elements(numeric, raw, table["X"].to_numpy(), table["Y"].to_numpy())
    assert len(numeric) == 128 and len(names) == 45
    assert {"X", "Y", "SAMPLEID", "WAMEX_A_NO", "LOI_pct", "Bi_ppm"} <= set(plan.left_out)
    assert plan.columns["Zn"] == ["Zn_ppm", "ZnO_ppm"] and "ZnO_ppm" not in names
    assert plan.left_out["X"] == "equals the point coordinates"
    assert not any(sh.parse_column(n).oxide for n in names)      # every oxide merged into its element
    au = table["Au_ppm"].to_numpy(float)
    assert plan.coverage["Au"] == pytest.approx(np.mean((au != -9999) & (au != 0)), abs=1e-12)
    assert min(plan.coverage[e] for e in plan.elements) >= 0.8
    assert max(plan.coverage[e] for e in plan.coverage if e not in plan.elements) < 0.8
    # Fe: the Fe_ppm column, filled from Fe2O3 (pct -> ppm Fe) where it is missing
    fe = values[:, names.index("Fe_ppm")]
    fe_own, fe2o3 = table["Fe_ppm"].to_numpy(float), table["Fe2O3_pct"].to_numpy(float)
    fill = ((fe_own == -9999) | (fe_own == 0)) & (fe2o3 > 0)
    np.testing.assert_allclose(fe[fill], fe2o3[fill] * 1e4 * 111.7 / 159.7, rtol=1e-12)


# --------------------------------------------------------------------------------------
# Distances that fit the survey
# --------------------------------------------------------------------------------------
def test_small_survey_gets_distances_that_work():
    """A 2 x 1.6 km soil grid at 100 m with two sites inside: every sample lies within 1.3 km of a site, so the
    regional defaults (2 km / 4 km) leave no negative; the error gives distances that do work."""
    gx, gy = np.meshgrid(np.arange(0, 2001, 100.0), np.arange(0, 1601, 100.0))
    x, y = gx.ravel(), gy.ravel()
    sites = np.array([[500.0, 400.0], [700.0, 600.0]])
    with pytest.raises(OreMapError) as err:
        da.check_distances(x, y, sites, 2000.0, 4000.0, min_negatives=2)
    assert err.value.parameter == "negative_min_distance"
    assert "median sample spacing is 100" in err.value.fix
    radius, negative, n_pos, n_neg, spacing, _ = da.suggest_distances(x, y, sites)
    assert spacing == 100.0 and radius == 100.0 and n_pos == 10   # each site on a node: it and 4 nodes at 100 m
    assert f"positive radius of {radius:g} m and a negative distance of {negative:g} m" in err.value.fix
    d = np.min(np.hypot(x[:, None] - sites[:, 0], y[:, None] - sites[:, 1]), axis=1)
    assert n_neg == int((d >= negative).sum()) >= n_pos and negative == 1000.0
    assert da.check_distances(x, y, sites, radius, negative) == (n_pos, n_neg)   # the advice passes
    with pytest.raises(OreMapError) as err:
        da.check_distances(x, y, sites, 10.0, 500.0, min_positives=3)  # the 2 sites' own nodes
    assert err.value.parameter == "positive_radius"


def test_suggested_distances_reach_more_than_one_deposit():
    """Rock chips at nine pegmatite sites (the GeoChemAD lithium survey's layout): six chips within 10 m of one site,
    the others' nearest chips 30-80 m off, a 10 m grid of chips from 150 m out. The advice took the radius at which five
    samples fall inside: 10 m, every positive at one site. It now also reaches three deposits."""
    rng = np.random.default_rng(0)
    sites = np.column_stack([np.arange(9) * 400.0, np.zeros(9)])
    cluster = sites[0] + rng.uniform(-6, 6, (6, 2))
    offsets = np.array([30.0, 35, 45, 55, 60, 70, 75, 80])
    singles = sites[1:] + np.column_stack([offsets, np.zeros(8)])
    gx0, gy0 = np.meshgrid(np.arange(-400, 3700, 10.0), np.arange(150, 400, 10.0))   # 10 m apart, 150 m off
    pts = np.vstack([cluster, singles, np.column_stack([gx0.ravel(), gy0.ravel()])])
    x, y = pts[:, 0], pts[:, 1]
    radius, negative, n_pos, n_neg, _, _ = da.suggest_distances(x, y, sites)
    assert radius == 50.0 and n_pos == 9 and da.deposits_covered(x, y, sites, radius) == 4   # 3rd site's chip: 45 m
    assert da.deposits_covered(x, y, sites, da.suggest_distances(x, y, sites, want_deposits=1)[0]) == 1  # as before
    with pytest.raises(OreMapError) as err:
        da.check_distances(x, y, sites, 2000.0, 4000.0)
    assert f"A positive radius of 50 m and a negative distance of {negative:g} m give 9 positives (near 4 of the 9 " \
           f"deposits) and {n_neg} negative candidates." in err.value.fix
    assert da.check_distances(x, y, sites, radius, negative) == (n_pos, n_neg)
    # a deposit beyond the survey's edge does not take the radius out to it: reaching all three deposits took it to
    # 5 km, the negative distance itself, with 95 % of a 10 x 10 km grid positive; two of them are reached instead
    gx, gy = np.meshgrid(np.arange(0, 10001, 200.0), np.arange(0, 10001, 200.0))
    far = np.array([[3000.0, 3000.0], [7000.0, 6000.0], [14000.0, 5000.0]])
    radius, negative, n_pos, n_neg, _, _ = da.suggest_distances(gx.ravel(), gy.ravel(), far)
    assert (radius, negative, n_pos) == (200.0, 5000.0, 10) and n_neg >= n_pos
    assert da.deposits_covered(gx.ravel(), gy.ravel(), far, radius) == 2
    # 1.5 km past the edge: reaching it left negatives (2 km / 2.5 km, a quarter of the grid positive), but not twice
    # the radius out
    near = far.copy()
    near[2] = (11500.0, 5000.0)
    assert da.suggest_distances(gx.ravel(), gy.ravel(), near)[:3] == (200.0, 5000.0, 10)
    # the third deposit sets the radius: its nearest chip 80 m off gives 100 m (two deposits: 50 m)
    third = np.vstack([cluster, sites[1:] + np.column_stack([[30.0, 80, 90, 95, 99, 99, 99, 99], np.zeros(8)]),
                       np.column_stack([gx0.ravel(), gy0.ravel()])])
    assert da.suggest_distances(third[:, 0], third[:, 1], sites)[0] == 100.0
    assert da.deposits_covered(third[:, 0], third[:, 1], sites, 100.0) == 9
    assert da.suggest_distances(third[:, 0], third[:, 1], sites, want_deposits=2)[0] == 50.0


def test_nice_rounding():
    assert [da.nice_up(v) for v in (130, 1300, 2.1, 100)] == [200, 2000, 2.5, 100]
    assert [da.nice_down(v) for v in (130, 1300, 2.6, 100)] == [100, 1000, 2.5, 100]


def test_geochem_delegates_to_the_survey_hygiene():
    from oremap.core.geochemistry import geochem

    table, e, no, _ = till_survey()
    names, values, plan = geochem.survey_elements(table.columns, table.to_numpy(float), e, no)
    expected = sh.survey_elements(list(table.columns), table.to_numpy(float), e, no)
    assert names == expected[0] and plan.left_out == expected[2].left_out
    np.testing.assert_array_equal(values, expected[1])


def test_an_oxide_without_its_element_stands_for_it_and_a_total_comes_first():
    """The log said an oxide-only column was 'read as Fe (x 0.6994)' while its values stayed Fe2O3's: it now says
    what happens. Among iron oxides the total (Fe2O3T) comes first, and the single oxidation states beside it
    (ferric Fe2O3, ferrous FeO: part of the iron only) no longer fill it."""
    columns = ["Cu_ppm", "Fe2O3_pct", "FeO_pct", "Fe2O3T_pct", "ZnO_ppm"]
    values = np.array([[10.0, 2.0, 3.0, 5.33, 100.0], [20.0, 1.0, 1.0, -9999.0, 50.0], [30.0, 1.5, 2.0, 4.0, 80.0]])
    names, table, plan = sh.survey_elements(columns, values, coverage=0.0)
    assert names == ["Cu_ppm", "Fe2O3T_pct", "ZnO_ppm"] and plan.columns["Fe"] == ["Fe2O3T_pct"]
    np.testing.assert_allclose(table[:, 1], [5.33, -9999.0, 4.0])   # not filled from ferric or ferrous iron
    for column, oxide in (("Fe2O3_pct", "Fe2O3"), ("FeO_pct", "FeO")):
        assert plan.left_out[column] == f"one oxidation state of Fe only ({oxide}), where Fe2O3T_pct holds all of it"
    np.testing.assert_allclose(table[:, 2], [100.0, 50.0, 80.0])   # ZnO's own values, under its own name
    log = " ".join(plan.log)
    assert "ZnO_ppm: no Zn column, so the oxide ZnO stands for Zn under its own name and values (Zn is 0.8034 of " \
           "its mass" in log
    assert "Fe2O3T_pct: no Fe column, so the oxide Fe2O3 (total) stands for Fe" in log
    # one oxide beside its element still fills the samples the element lacks (GSWA's ZnO beside Zn)
    names, table, plan = sh.survey_elements(["Zn_ppm", "ZnO_ppm"], np.array([[10.0, 12.45], [-9999.0, 100.0]]),
                                            coverage=0.0)
    np.testing.assert_allclose(table[:, 0], [10.0, 100.0 * 0.80339], rtol=1e-4)


def test_an_element_with_one_value_in_every_sample_is_left_out_of_the_default_set():
    """Ir below its detection limit in every sample ('<1 ppb', stored -1) counted as measured everywhere and entered
    the default set: a constant column that only disturbed the fits (area1's default AUC 0.599 to 0.578). It is
    left out and said; chosen by the user, it stays."""
    from oremap.core.geochemistry import survey_hygiene as sh

    rng = np.random.default_rng(1)
    columns = ["Au_ppb", "Cu_ppm", "Ir_ppb"]
    values = np.column_stack([rng.lognormal(0, 1, 50), rng.lognormal(3, 1, 50), np.full(50, -1.0)])
    plan = sh.plan_elements(columns, values)
    assert plan.elements == ["Au", "Cu"]
    assert plan.left_out == {"Ir_ppb": "the same value in every sample measured (all below one detection limit?)"}
    assert any(line.startswith("Left out (1), the same value in every sample measured") for line in plan.log)
    assert sh.plan_elements(columns, values, explicit=True).elements == ["Au", "Cu", "Ir"]
    assert sh.plan_elements(columns, values, coverage=0.0).elements == ["Au", "Cu", "Ir"]   # 0 keeps every element
    # tiny values that differ are not one value (the rule is to 12 significant digits, not 12 decimals)
    values[:, 2] = np.linspace(1e-13, 4e-13, 50)
    assert sh.plan_elements(columns, values).elements == ["Au", "Cu", "Ir"]
    # one 'BDL' (below detection, limit not known: -inf) among measured values is no constant column (its spread
    # was inf, and inf <= 1e-12 * inf held: the element was left out); 'BDL' in every sample is one value
    values[:, 2] = rng.lognormal(0, 1, 50)
    values[7, 2] = -np.inf
    assert sh.plan_elements(columns, values).elements == ["Au", "Cu", "Ir"]
    values[:, 2] = -np.inf
    assert sh.plan_elements(columns, values).elements == ["Au", "Cu"]
    # ... and one limit in every other sample ('<0.5' stored -0.5) beside them is no measurement either
    values[:, 2] = -0.5
    values[[3, 9], 2] = -np.inf
    assert sh.plan_elements(columns, values).elements == ["Au", "Cu"]


def test_an_over_limit_value_is_replaced_by_the_elements_re_assay(processing_provider, tmp_path):
    """A laboratory's gold column caps high values ('>10', read as the limit 10) and an over-limit re-assay column
    (ALS Au-OG44) holds the true value. Read as measured, the cap kept the re-assay out: 14.3 ppm gold was gridded
    and scored as 10. The re-assay now replaces a capped value, and the log says so."""
    import geopandas as gpd
    import processing
    import rasterio as rio
    from shapely.geometry import Point

    values = np.array([[10.0, 0.2, 30.0], [2.0, 0.3, 31.0], [10.0, 0.1, 29.0], [0.5, -9999.0, 28.0]])
    over = np.array([[True, False, False], [False, False, False], [False, False, False], [False, False, False]])
    columns = ["Au_ppm", "Au_OG44_ppm", "Cu_ppm"]
    values[0, 1] = 14.3
    names, table, plan = sh.survey_elements(columns, values, fields=None, coverage=0.0, over=over)
    assert names == ["Au_ppm", "Cu_ppm"] and table[:, 0].tolist() == [14.3, 2.0, 10.0, 0.5]   # row 2: a real 10
    assert "Au_ppm: 1 values over the laboratory's upper limit ('>x') replaced by the element's other assay " \
           "(Au_OG44_ppm 1)." in plan.log
    assert sh.survey_elements(columns, values, coverage=0.0)[1][0, 0] == 10.0      # without the flags, as before
    # the re-assay column first: a capped value of the second column still fills a sample the first misses (it had
    # become missing), and a lower value of another column (a partial digestion) does not replace the limit
    swapped = values[:, [1, 0, 2]].copy()
    swapped[:, 0] = [14.3, -9999.0, -9999.0, -9999.0]                      # the re-assay only where over the limit
    flags = over[:, [1, 0, 2]].copy()
    flags[2, 1] = True                                                     # row 2: '>10', no re-assay
    names, table, plan = sh.survey_elements(["Au_OG44_ppm", "Au_ppm", "Cu_ppm"], swapped, coverage=0.0, over=flags)
    assert table[:, 0].tolist() == [14.3, 2.0, 10.0, 0.5]
    partial = np.array([[10.0, 7.5], [3.0, 2.9]])
    names, table, plan = sh.survey_elements(["Cu_pct", "Cu_AR_pct"], partial, coverage=0.0,
                                            over=np.array([[True, False], [False, False]]))
    assert table[:, 0].tolist() == [10.0, 3.0]
    assert "Cu_pct: 1 values over the laboratory's upper limit ('>x') kept at the limit: the other column's value " \
           "is lower, so it is no re-assay (Cu_AR_pct 1)." in plan.log
    # through idw_interpolate, from text fields as a lab export loads
    rng = np.random.default_rng(0)
    n = 30
    au = [f"{v:.2f}" for v in rng.uniform(0.1, 2.0, n)]
    og = [""] * n
    au[7], og[7] = ">10", "14.3"
    peaks = []
    for name, reassay in (("with", og), ("without", ["" if v == "14.3" else v for v in og])):
        layer = gpd.GeoDataFrame({"Au_ppm": au, "Au_OG44_ppm": reassay, "Cu_ppm": rng.uniform(10, 50, n)},
                                 geometry=[Point(500000 + 100 * (i % 6), 7000000 + 100 * (i // 6)) for i in range(n)],
                                 crs="EPSG:32750")
        layer.to_file(tmp_path / f"{name}.gpkg", driver="GPKG")
        out = processing.run("oremap:idw_interpolate", {"INPUT": str(tmp_path / f"{name}.gpkg"), "CELL_SIZE": 50,
                                                         "OUTPUT": str(tmp_path / f"{name}.tif")})
        with rio.open(out["OUTPUT"]) as ds:
            assert ds.descriptions[0] == "Au_ppm"
            peaks.append(float(ds.read(1, masked=True).max()))
    # the cells around the sample follow its value: 14.3 instead of 10 raises the peak by nearly the same ratio
    assert peaks[0] / peaks[1] == pytest.approx(1.43, abs=0.1)
