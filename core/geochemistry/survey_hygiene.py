"""Survey hygiene: which columns of a real survey compilation are elements, and which of them to use.

Real compilations (GSWA/WAMEX, national till surveys) hold far more than element
concentrations, and the defaults of every OreMap geochemistry algorithm must work on them
as they come:

* element columns carry their unit somewhere in the name: ``Au_ppb``, ``Cu_ppm``,
  ``Fe2O3_pct``, ``Cu_ppm_511`` (a method code after the unit), ``CU_PPM``; columns named
  by the bare symbol (``AU``, ``Cu``) are elements whose unit comes from a units table
  (``{"AU": "ppb"}``), ppm when the table does not say;
* coordinate and identifier fields are never elements: names like x, y, lat, lon,
  easting, northing and their shapefile truncations (``Northing_k``, ``Easting_kk``,
  ``LATITUDE_D``), ids (``SAMPLEID``, ``fid``), and any column whose values equal the
  point geometry;
* oxide columns duplicate their element (``ZnO_ppm`` beside ``Zn_ppm`` in the GSWA
  compilations carry the same analyses, converted): where the element has a column, the
  oxide only fills the samples the element's column does not measure (converted by the
  stoichiometric factor); where it has none, the oxide stands for the element under its own
  name and values (a constant factor changes no log-ratio z-score, rank or AUC). A total
  (``Fe2O3T``) comes before a single oxidation state (``Fe2O3``, ``FeO``), which is left out
  where a total exists, or where oxides of several oxidation states stand beside the element's
  own column (``Fe2O3`` and ``FeO`` beside ``Fe``): each holds part of the element only. A lone
  oxide beside the element's column fills it like any other oxide: compilations report total
  iron as ``Fe2O3`` or ``FeO`` (petrology's FeO*) without saying so;
* most of ~120 columns are measured in few samples: the default element set keeps those
  measured in at least :data:`DEFAULT_COVERAGE` of the samples.

:func:`plan_elements` returns the columns to use and a log of what was left out and why;
:func:`apply_plan` turns the raw table into the element table (oxides merged).
"""

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from ..engine.errors import OreMapError

DEFAULT_COVERAGE = 0.8
"""Default share of samples in which an element must be measured to enter the default element set.

Why 0.8: in the GSWA stream-sediment survey of the tests (1,392 samples, 123 columns), 45
columns are measured in at least 83 % of the samples and the next in at most 66 %; a
multivariate model needs complete rows, and 80 % keeps the imputed share small."""

UNIT_FACTORS = {"pct": 1e4, "percent": 1e4, "wt%": 1e4, "%": 1e4, "ppm": 1.0, "ppb": 1e-3, "ppt": 1e-6, "gt": 1.0,
                "gpt": 1.0, "g/t": 1.0, "mg/kg": 1.0, "ug/kg": 1e-3, "µg/kg": 1e-3, "μg/kg": 1e-3, "ug/g": 1.0,
                "µg/g": 1.0, "μg/g": 1.0, "ng/g": 1e-3}
"""Multiply by the factor to get ppm (``pct`` and ``%`` are weight percent; ``g/t`` (``gt``, ``gpt``), ``mg/kg`` and
``µg/g`` equal ppm; ``µg/kg`` and ``ng/g`` equal ppb)."""

MISSING_CODE_COLUMNS = 3
"""A negative value is a missing-value code, not a detection limit, when in at least this many columns it lies
above every value measured in the column (:func:`missing_codes`)."""

# Standard atomic weights (IUPAC, rounded to 0.01): used to convert oxides to elements.
ATOMIC_WEIGHTS = {
    "H": 1.01, "Li": 6.94, "Be": 9.01, "B": 10.81, "C": 12.01, "N": 14.01, "O": 16.00, "F": 19.00, "Na": 22.99,
    "Mg": 24.31, "Al": 26.98, "Si": 28.09, "P": 30.97, "S": 32.06, "Cl": 35.45, "K": 39.10, "Ca": 40.08,
    "Sc": 44.96, "Ti": 47.87, "V": 50.94, "Cr": 52.00, "Mn": 54.94, "Fe": 55.85, "Co": 58.93, "Ni": 58.69,
    "Cu": 63.55, "Zn": 65.38, "Ga": 69.72, "Ge": 72.63, "As": 74.92, "Se": 78.97, "Br": 79.90, "Rb": 85.47,
    "Sr": 87.62, "Y": 88.91, "Zr": 91.22, "Nb": 92.91, "Mo": 95.95, "Ru": 101.07, "Rh": 102.91, "Pd": 106.42,
    "Ag": 107.87, "Cd": 112.41, "In": 114.82, "Sn": 118.71, "Sb": 121.76, "Te": 127.60, "I": 126.90,
    "Cs": 132.91, "Ba": 137.33, "La": 138.91, "Ce": 140.12, "Pr": 140.91, "Nd": 144.24, "Sm": 150.36,
    "Eu": 151.96, "Gd": 157.25, "Tb": 158.93, "Dy": 162.50, "Ho": 164.93, "Er": 167.26, "Tm": 168.93,
    "Yb": 173.05, "Lu": 174.97, "Hf": 178.49, "Ta": 180.95, "W": 183.84, "Re": 186.21, "Os": 190.23,
    "Ir": 192.22, "Pt": 195.08, "Au": 196.97, "Hg": 200.59, "Tl": 204.38, "Pb": 207.2, "Bi": 208.98,
    "Th": 232.04, "U": 238.03,
}
SYMBOLS = {s.lower(): s for s in ATOMIC_WEIGHTS}
NOT_ELEMENTS = {"H", "O", "N"}
"""Symbols never taken as an element of a survey (water, oxygen, nitrogen are not analysed as such)."""

_TOKEN = re.compile(r"[_\s\-.()\[\]{},;:]+")
_PERCENT = re.compile(r"(?<![Ww][Tt])%")  # a '%' glued to a name (Fe2O3%) is a token of its own; 'wt%' stays one
_OXIDE = re.compile(r"^(?P<el>[A-Z][a-z]?)(?P<n>\d*)O(?P<m>\d*)(?P<total>T|TOT|TOTAL)?$")
METHOD_WORDS = {"me", "fa", "faa", "icp", "ms", "aas", "aa", "xrf", "inaa", "naa", "oes", "aes", "og", "gra", "td",
                "ar", "fus", "ped", "bleg", "cn", "lf", "mmi", "pgm", "cv", "st", "tl", "ir", "scr", "acd", "ge", "go",
                "fp"}
"""Laboratory method words (ALS, Intertek, SGS codes: ``ME-MS61``, ``Au-AA23``, ``PGM-ICP23``, ``Hg-CV41``,
``4A/MS48``, ``GE_ICP40Q12``) that may follow an element symbol where the unit is missing (``Au_FA``, ``Cu_ME-MS61``
as a shapefile cuts ``Cu_ME-MS61_ppm``)."""
_METHOD_CODE = re.compile(r"^\d{0,2}(?P<word>[a-z]{1,6})\d{0,4}(?:[a-z]{1,2}\d{1,2})?$")
_CUT_UNITS = ("p", "pp", "pc", "pe", "per", "perc", "pct", "wt")
"""What is left of a unit when a shapefile cuts a name to 10 characters (``Au-AA23_ppm`` -> ``Au-AA23_pp``): no unit
to read (ppm or ppb?), so the column counts as a bare name."""


def _method_word(token):
    """True for a method code that starts (after digits) with a :data:`METHOD_WORDS` word: ``MS61``, ``AA23``,
    ``4ACD81``, ``ICP40Q12``, a digestion ``4A``; not ``UTM19S``, ``PSAD56``, ``row0``."""
    if re.fullmatch(r"\d{1,2}[a-z]{1,2}", token.lower()):   # a digestion: 4A (four acids), 2A
        return True
    match = _METHOD_CODE.match(token.lower())
    if match is None or match.group("word") not in METHOD_WORDS:
        return False
    # a word alone that is an element symbol is that element (Cu_Tl, Cu_Ge: ambiguous), with digits a code (TL43)
    return any(c.isdigit() for c in token) or (_symbol(token) is None and _oxide(token) is None)


def _method_code(tokens):
    """True when ``tokens`` (after an element symbol) are a laboratory method code holding a method word, perhaps
    followed by what a shapefile left of the unit (``ME``, ``MS61``; ``AA23``, ``pp``); digits alone (``Y_2``) are no
    such code: they say nothing against a coordinate."""
    words = [t.lower() for t in tokens]
    if words and words[-1] in _CUT_UNITS and len(words) > 1:
        words = words[:-1]
    worded = [_method_word(w) for w in words]
    return 1 <= len(words) <= 3 and any(worded) and all(ok or w.isdigit() for ok, w in zip(worded, words))


COORDINATE_STEMS = ("northing", "easting", "latitude", "longitude", "elevation", "altitude")
"""Names starting with one of these (after case folding) are coordinates; shapefiles cut names to 10
characters and append ``_k``, ``_kk``... to keep them unique (``Northing_k``, ``Easting_kk``)."""
COORDINATE_NAMES = {"x", "y", "z", "lat", "lon", "long", "lng", "east", "north", "elev", "xcoord", "ycoord",
                    "x_coord", "y_coord", "coordx", "coordy", "utm_e", "utm_n", "utme", "utmn", "mga_e", "mga_n",
                    "amg_e", "amg_n", "e", "n", "x_utm", "y_utm", "xutm", "yutm", "point_x", "point_y", "dd_lat",
                    "dd_lon", "dec_lat", "dec_long", "dec_lon", "gda94_e", "gda94_n", "zone", "utm_zone", "datum"}
ID_NAMES = {"id", "fid", "gid", "oid", "objectid", "object_id", "ogc_fid", "sampleid", "sample_id", "sample",
            "sample_no", "samplenum", "sample_num", "sampno", "site", "siteid", "site_id", "station", "stationid",
            "lab_no", "labno", "lab_id", "batch", "job", "index", "row", "no", "number", "year", "date", "depth",
            "from", "to", "map_sheet", "sheet"}
_ID_PATTERN = re.compile(r"(^|_)(id|no|num|nr|code)$|^id_|^sample|^site_|^lab_|^wamex|^anumber", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# Reading one column name
# --------------------------------------------------------------------------------------
@dataclass
class Column:
    """What a column name says: ``element`` (symbol, e.g. ``"Zn"``) or None, ``unit`` (a key of
    :data:`UNIT_FACTORS`, or None), ``oxide`` (``"ZnO"``, None for an element column), ``ratio``
    (element mass per oxide mass, 1 for an element column), ``total`` (an oxide of all the element's
    oxidation states, ``Fe2O3T``), ``assumed_unit`` (unit not in the name: taken from the units table,
    then ``unit_from_table``, or assumed ppm)."""

    name: str
    element: str = None
    unit: str = None
    oxide: str = None
    ratio: float = 1.0
    total: bool = False
    assumed_unit: bool = False
    unit_from_table: bool = False
    reason: str = ""

    @property
    def factor(self):
        """Multiply the column's values by this to get ppm of the element."""
        return UNIT_FACTORS.get(self.unit, 1.0) * self.ratio


def _symbol(text):
    """The element symbol ``text`` names (case-insensitive: ``AU``, ``au``, ``Au``), or None."""
    symbol = SYMBOLS.get(str(text).strip().lower())
    return None if symbol in NOT_ELEMENTS else symbol


def _oxide(text):
    """``(element, oxide formula, element mass per oxide mass, total)`` of an oxide name like ``Fe2O3`` or
    ``Fe2O3T`` (total iron: ``total`` True), or None. Case matters except for all-capital names (``FE2O3``)."""
    candidates = [text]
    if text.isupper():
        # FE2O3 -> Fe2O3; CO2 stays CO2 (carbon), ZNO -> ZnO
        candidates = [re.sub(r"([A-Z])([A-Z])(?=\d*O)", lambda m: m.group(1) + m.group(2).lower(), text), text]
    for candidate in candidates:
        match = _OXIDE.match(candidate)
        if match is None or match.group("el") not in ATOMIC_WEIGHTS or match.group("el") in NOT_ELEMENTS:
            continue
        n = int(match.group("n") or 1)
        m = int(match.group("m") or 1)
        el = match.group("el")
        mass = n * ATOMIC_WEIGHTS[el]
        formula = candidate[:match.end("m")] if match.group("total") else candidate
        return el, formula, mass / (mass + m * ATOMIC_WEIGHTS["O"]), bool(match.group("total"))
    return None


_NUMBERED = re.compile(r"^(?P<el>[A-Za-z]{2})(?P<k>[1-9])$")
NUMBERED_ELEMENTS = {"Au", "Ag", "Pt", "Pd"}
"""Elements whose numbered names (``Au1``, ``AU2_PPB``) are a first, second... assay: the precious metals, assayed
again as a matter of routine for their nugget effect. Other symbols with a digit are left alone: an oxidation or
charge state (``Fe2`` ferrous iron, ``S2-`` sulfide, ``Cr6``, ``As3``), a band or code that spells a symbol (Landsat's
``TM1``-``TM7``, ``CL1``), a molecule (``CO2``)."""


def numbered_symbol(head):
    """The element of a numbered assay's name (``Au1``, ``Au2``, ``AU1``: a first and a second gold assay, as company
    databases and compilations name them; only :data:`NUMBERED_ELEMENTS`), or None."""
    match = _NUMBERED.match(str(head).strip())
    symbol = _symbol(match.group("el")) if match else None
    return symbol if symbol in NUMBERED_ELEMENTS else None


def parse_column(name, units=None):
    """Read a column name: element, unit, oxide (see :class:`Column`); ``element`` None when it names none.

    ``units``: a units table for columns named by the bare symbol, ``{"AU": "ppb", "Cu": "ppm"}``
    (case-insensitive keys; unit ``ppm`` assumed when missing). The unit may stand anywhere after
    the element: ``Cu_ppm``, ``Cu_ppm_511``, ``CU PPM``, ``Au_ppb_FA``, ``Au (ppb)``, ``Au [ppb]``,
    ``Cu mg/kg``, ``S (%)``; a method code may stand between them (``Au_FA_ppb``, ``Au-AA23_ppm``) when it
    is no element symbol itself; ``Fe2O3_pct``, ``Fe2O3 %`` and ``ZnO_ppm`` are oxides of Fe and Zn.

    The name is read in Unicode's compatibility form (NFKC): the full-width punctuation that Chinese and Japanese
    input methods type (``Au（ppm）``, ``Cu，ppm``, ``Au［ppb］``, an ideographic space) reads as its ASCII
    counterpart, and the micro sign as the Greek mu (``µg/g`` and ``μg/g`` are both units). ``Column.name`` stays
    the name as given, the field to read.
    """
    text = str(name).strip()
    folded = unicodedata.normalize("NFKC", text)  # what the name says; ``text`` is the field's name
    tokens = [t for t in _TOKEN.split(_PERCENT.sub(" % ", folded)) if t]
    out = Column(text)
    unit_at = next((i for i, t in enumerate(tokens) if t.lower() in UNIT_FACTORS), None)
    # an element symbol and a method code with letters in it (Y_ME-MS61: yttrium, not a y coordinate; Y_2 stays one)
    coded = (unit_at is None and len(tokens) > 1
             and (_symbol(tokens[0]) or _oxide(tokens[0]) or numbered_symbol(tokens[0])) is not None
             and _method_code(tokens[1:]))
    if not tokens or (unit_at is None and not coded and (is_coordinate_name(folded) or is_identifier_name(folded))):
        out.reason = "coordinate or identifier"
        return out
    if unit_at is not None:
        if unit_at == 0:
            out.reason = "no element before the unit"
            return out
        head = "".join(tokens[:unit_at])
        out.unit = tokens[unit_at].lower()
    else:
        # bare names: the symbol alone or followed by a method code (AU, Cu_511, Au_FA, Cu_ME-MS61, Au-AA23_pp)
        if not (len(tokens) == 1 or (len(tokens) == 2 and tokens[1].isdigit()) or coded):
            out.reason = "no unit in the name"
            return out
        head = tokens[0]
        table = {unicodedata.normalize("NFKC", str(k)).strip().lower(): str(v).strip().lower()
                 for k, v in (units or {}).items()}
        numbered = numbered_symbol(head)   # a units table names the element: {"Au": "ppb"} is Au1's unit too
        given = table.get(folded.lower(), table.get(head.lower(), table.get(numbered.lower()) if numbered else None))
        out.unit, out.unit_from_table = given or "ppm", given is not None
        if out.unit not in UNIT_FACTORS:
            raise OreMapError(f"Unknown unit '{out.unit}' for column '{text}' in the units table.", "units",
                              f"Use one of: {', '.join(sorted(UNIT_FACTORS))}.")
        out.assumed_unit = True
    heads = [head]
    if unit_at is not None and unit_at > 1 and not any(_symbol(t) or _oxide(t) for t in tokens[1:unit_at]):
        heads.append(tokens[0])  # the element, then a method code: Au_FA_ppb, Au_AA23_ppm
    for head in heads:
        symbol = _symbol(head)
        if symbol is not None:
            out.element = symbol
            return out
        oxide = _oxide(head)
        if oxide is not None:
            out.element, out.oxide, out.ratio, out.total = oxide
            return out
    symbol = numbered_symbol(heads[0])
    if symbol is not None:
        out.element = symbol
        return out
    head = heads[0]
    out.unit = None if unit_at is None else out.unit
    out.assumed_unit = out.unit_from_table = False
    out.reason = f"'{head}' is not an element or an oxide" + (" (a volatile or a sum)" if unit_at is not None
                                                                else "")
    return out


def is_coordinate_name(name):
    """True for coordinate-like names, shapefile truncations included (``Northing_k``, ``LATITUDE_D``)."""
    low = str(name).strip().lower()
    if low in COORDINATE_NAMES:
        return True
    squeezed = re.sub(r"[^a-z]", "", low)
    tokens = [t for t in _TOKEN.split(low) if t]
    if squeezed in COORDINATE_NAMES or (tokens and tokens[0] in COORDINATE_NAMES and len(tokens) > 1
                                        and not any(t in UNIT_FACTORS for t in tokens)):
        return True
    return any(squeezed.startswith(stem[:6]) for stem in COORDINATE_STEMS) and len(squeezed) >= 4


def is_identifier_name(name):
    """True for identifier-like names (``fid``, ``SAMPLEID``, ``Sample_No``, ``WAMEX_A_NO``)."""
    low = str(name).strip().lower()
    return low in ID_NAMES or bool(_ID_PATTERN.search(low))


def equals_geometry(values, x, y, rtol=1e-6):
    """True when a column's values equal the points' x or y (where both are finite), e.g. a copied coordinate:
    every difference within ``rtol`` times the coordinate's range (2 cm over a 20 km survey)."""
    v = np.asarray(values, dtype=float).ravel()
    for c in (x, y):
        c = np.asarray(c, dtype=float).ravel()
        ok = np.isfinite(v) & np.isfinite(c)
        if ok.sum() >= 2 and np.all(np.abs(v[ok] - c[ok]) <= rtol * max(float(np.ptp(c[ok])), 1e-12)):
            return True
    return False


# --------------------------------------------------------------------------------------
# The element plan of a survey
# --------------------------------------------------------------------------------------
@dataclass
class ElementPlan:
    """The elements of a survey: ``elements`` (symbols, in column order), ``columns`` (per element, the
    source columns in priority order: the element column first, then oxides), ``factors`` (per element,
    ppm per unit of each source column, divided by the first column's factor, so the element keeps the
    unit of its first column), ``names`` (output column name per element: the first source column),
    ``coverage`` (per element, share of samples measured), ``left_out`` ({column: reason}) and ``log``."""

    elements: list = field(default_factory=list)
    columns: dict = field(default_factory=dict)
    factors: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)
    log: list = field(default_factory=list)

    @property
    def fields(self):
        """Output names (the element's first column, e.g. ``Zn_ppm``) in order."""
        return [self.names[e] for e in self.elements]

    @property
    def source_fields(self):
        """Every source column the plan reads (element columns and the oxides merged into them)."""
        return [c for e in self.elements for c in self.columns[e]]


def missing_codes(values, missing=-9999.0):
    """``{code: columns}``: negative values of the table ``values`` (n, m) that are missing-value codes, not
    detection limits, with the number of columns that show it. A value ``-v`` is a code when in at least
    :data:`MISSING_CODE_COLUMNS` columns it lies above every value measured in the column, which no detection
    limit does: a survey coded -99 where ``missing`` says -9999 would otherwise give 49.5 ppm of every element
    it did not analyse. ``missing`` itself and ``-inf`` (below detection, limit unknown) are never codes."""
    X = np.asarray(values, dtype=float)
    if X.ndim != 2 or not X.size:
        return {}
    flagged = {}
    for j in range(X.shape[1]):
        col = X[:, j]
        positive = col[col > 0]
        if not positive.size:
            continue
        limits = col[np.isfinite(col) & (col < 0) & (-col > positive.max())]
        if missing is not None and np.isfinite(missing):
            limits = limits[limits != missing]
        for value in np.unique(limits):
            flagged[float(value)] = flagged.get(float(value), 0) + 1
    return {v: k for v, k in sorted(flagged.items()) if k >= MISSING_CODE_COLUMNS}


def code_mask(values, codes):
    """Where the missing-value ``codes`` of :func:`missing_codes` stand for "missing" in ``values``: in the columns
    where the value lies above every measured value (or nothing is measured), and everywhere for a sentinel of
    nines (-99, -999, -9999 ...). Elsewhere the same number can be a real detection limit (-5 where As reaches
    200) and stays one."""
    X = np.asarray(values, dtype=float)
    mask = np.zeros(X.shape, bool)
    for value in codes:
        hit = X == value
        if str(int(abs(value))).strip("9") == "" and abs(value) == int(abs(value)):
            mask |= hit
            continue
        for j in range(X.shape[1]):
            positive = X[:, j][X[:, j] > 0]
            if not positive.size or -value > positive.max():
                mask[:, j] |= hit[:, j]
    return mask


def code_note(codes, n_values):
    """The log line saying which values :func:`missing_codes` found and how many became missing."""
    listed = ", ".join(f"{v:g} ({k} columns)" for v, k in codes.items())
    return (f"{listed} read as a missing-value code ({n_values} values made missing): there it lies above every "
            "measured value, which no detection limit does. Set the missing-value code to it to say so yourself.")


def measured(values, missing=-9999.0, zeros_missing=True):
    """Boolean mask of measured values: finite, not the missing code, not 0 when zeros mean 'not analysed'.

    A value below detection (negative, ``-inf`` when the limit is not known) is a measurement."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) | np.isneginf(v)
    if missing is not None and np.isfinite(missing):
        ok &= v != missing
    if zeros_missing:
        ok &= v != 0
    return ok


def plan_elements(columns, values=None, x=None, y=None, coverage=DEFAULT_COVERAGE, units=None, missing=-9999.0,
                  zeros_missing=True, explicit=False):
    """Which columns are elements and which of them to use.

    Parameters
    ----------
    columns : list of str
        Column names (numeric columns of a layer or table).
    values : array (n, len(columns)), optional
        Raw values (missing codes, negative below-detection values as stored): needed for the
        coverage rule, for the geometry test and to merge oxides.
    x, y : arrays (n,), optional
        The points' coordinates: a column equal to either is a coordinate.
    coverage : float
        Share of samples (0-1) in which an element must be measured (:func:`measured`); an element with one value
        in every sample measured (all below one detection limit) is left out too. 0 keeps all.
    units : dict, optional
        Units of columns named by the bare element symbol (see :func:`parse_column`).
    explicit : bool
        The user chose these columns: only oxides are merged; no column is left out for coverage,
        and a column that is not an element is kept as it is (its name as the element).

    Returns an :class:`ElementPlan`.
    """
    columns = [str(c) for c in columns]
    n = 0
    if values is not None:
        values = np.asarray(values, dtype=float).reshape(-1, len(columns)) if len(columns) else \
            np.zeros((0, 0))
        n = values.shape[0]
    plan = ElementPlan()
    parsed = [parse_column(c, units) for c in columns]
    candidates = []
    for j, col in enumerate(parsed):
        if values is not None and x is not None and y is not None and n and equals_geometry(values[:, j], x, y):
            plan.left_out[col.name] = "equals the point coordinates"
            continue
        if col.element is None:
            if explicit:
                col.element = col.name
            else:
                plan.left_out[col.name] = col.reason or "not an element"
                continue
        candidates.append((j, col))
    if not explicit and not candidates:
        # no field names an element: every numeric field but coordinates, ids and copies of the geometry
        for j, col in enumerate(parsed):
            why = plan.left_out.get(col.name, "")
            if why in ("equals the point coordinates", "coordinate or identifier"):
                continue
            col.element, col.unit, col.oxide, col.ratio, col.assumed_unit = col.name, None, None, 1.0, False
            plan.left_out.pop(col.name, None)
            candidates.append((j, col))
        if candidates:
            plan.log.append("No field names an element by its unit or symbol: every numeric field but "
                            "coordinates and ids is taken as one.")
    if explicit:
        # chosen fields of unknown unit beside another chosen field of their element cannot be converted into it: each
        # is used as given, an element of its own (Au_FA and Au_CN both chosen)
        count = {}
        for _, c in candidates:
            count[c.element] = count.get(c.element, 0) + 1
        for _, c in candidates:
            if count[c.element] > 1 and c.assumed_unit and not c.unit_from_table:
                c.element = c.name
    if not explicit:
        # where some names state their units, a bare name is kept only when the user's units table gives its unit
        named = any(not c.assumed_unit for _, c in candidates)
        with_unit = [(j, c) for j, c in candidates if not c.assumed_unit or c.unit_from_table]
        if named and len(with_unit) < len(candidates):
            for _, c in candidates:
                if c.assumed_unit and not c.unit_from_table:
                    plan.left_out[c.name] = "bare name without a unit, while other columns state theirs"
            candidates = with_unit
    # group by element: element columns before oxides, names stating their unit before units-table ones, then
    # in column order
    groups, merged, doubles = {}, [], []
    for j, col in candidates:
        groups.setdefault(col.element, []).append((j, col))
    for element, members in groups.items():
        # the element's own column, then a total oxide, then single oxidation states
        members.sort(key=lambda m: (m[1].oxide is not None, not m[1].total, m[1].assumed_unit, m[0]))
        whole = [m for m in members if m[1].oxide is None or m[1].total]
        # an oxide beside a total of the same element (Fe2O3 beside Fe2O3T), or oxides of several oxidation
        # states beside the element's column (Fe2O3 and FeO beside Fe), hold part of the element only
        split = len({m[1].oxide for m in members if m[1].oxide is not None}) > 1
        if any(m[1].total for m in members) or (whole and split):
            for _, c in members:
                if c.oxide is not None and not c.total:
                    plan.left_out[c.name] = (f"one oxidation state of {element} only ({c.oxide}), where "
                                             f"{whole[0][1].name} holds all of it")
            members[:] = whole
        first = members[0][1]
        # a column whose unit was assumed (no unit in its name, none in the units table) cannot be converted to
        # another's: Ca_ME-MS61 (ppm) and CaO_ME-MS6 (per cent) as a shapefile cuts them would be merged 10,000 out
        unknown = [m for m in members[1:] if (m[1].assumed_unit and not m[1].unit_from_table)
                   or (first.assumed_unit and not first.unit_from_table)]
        for _, c in unknown:
            plan.left_out[c.name] = (f"another column of {element} ({first.name}), and without a unit in the name "
                                     "the two cannot be converted into each other (give their units in UNITS to "
                                     "merge them)")
        members[:] = [m for m in members if m not in unknown]
        plan.columns[element] = [c.name for _, c in members]
        plan.factors[element] = [c.factor / first.factor for _, c in members]
        plan.names[element] = first.name
        if first.assumed_unit:
            plan.log.append(f"{first.name}: element {element}, unit {first.unit} ("
                            + ("from the units table" if first.unit_from_table else "assumed") + ").")
        if first.oxide is not None and not explicit:
            plan.log.append(f"{first.name}: no {element} column, so the oxide {first.oxide}"
                            f"{' (total)' if first.total else ''} stands for {element} under its own name and values "
                            f"({element} is {first.ratio:.4f} of its mass; a constant factor changes no z-score of "
                            "log-ratios, rank or AUC).")
        merged.extend(f"{c.name} -> {first.name}" for _, c in members[1:] if c.oxide is not None)
        doubles.extend(f"{c.name} -> {first.name}" for _, c in members[1:] if c.oxide is None)
    for title, how, pairs in (("Oxide columns merged into their element", "the element's own value first, the oxide "
                               "converted where it is missing", merged),
                              ("Columns of one element merged", "the first column's value first, the other "
                               "converted to its unit where it is missing", doubles)):
        if pairs:
            plan.log.append(f"{title} ({len(pairs)}; {how}): " + ", ".join(pairs[:30])
                            + (" ..." if len(pairs) > 30 else ""))
    order = sorted(groups, key=lambda e: min(j for j, _ in groups[e]))
    constant = set()
    if values is not None and n:
        index = {c: j for j, c in enumerate(columns)}
        for element in order:
            mask = np.zeros(n, dtype=bool)
            seen = []
            for c, factor in zip(plan.columns[element], plan.factors[element]):
                here = measured(values[:, index[c]], missing, zeros_missing)
                mask |= here
                seen.append(values[here, index[c]] * factor)
            plan.coverage[element] = float(mask.mean())
            seen = np.concatenate(seen) if seen else np.zeros(0)
            # one value in every sample measured (all below one detection limit: no information), to 12 significant
            # digits; a single measurement is not 'one value in every sample'. A value below detection whose limit
            # is not known (-inf, 'BDL') is one value only beside others like it
            finite = seen[np.isfinite(seen)]
            below_only = finite.size and (finite < 0).all()   # limits, and 'BDL' beside them: nothing measured
            if seen.size > 1 and (not finite.size or ((finite.size == seen.size or below_only)
                                                      and np.ptp(finite) <= 1e-12 * np.abs(finite).max())):
                constant.add(element)
    kept = []
    for element in order:
        share = plan.coverage.get(element, 1.0)
        if not explicit and coverage > 0 and share < coverage:
            for c in plan.columns[element]:
                plan.left_out[c] = f"measured in fewer than {100 * coverage:.0f} % of the samples"
            continue
        if not explicit and coverage > 0 and element in constant:   # coverage 0 keeps every element
            for c in plan.columns[element]:
                plan.left_out[c] = "the same value in every sample measured (all below one detection limit?)"
            continue
        kept.append(element)
    plan.elements = kept
    if not explicit:
        plan.log.insert(0, f"{len(kept)} elements kept of {len(columns)} columns"
                        + (f" (measured in at least {100 * coverage:.0f} % of {n} samples)" if n and coverage > 0
                           else "") + ": " + ", ".join(plan.fields[:40]) + (" ..." if len(kept) > 40 else ""))
        reasons = {}
        for c, why in plan.left_out.items():
            reasons.setdefault(why, []).append(c)
        for why, cols in reasons.items():
            plan.log.append(f"Left out ({len(cols)}), {why}: " + ", ".join(cols[:25])
                            + (" ..." if len(cols) > 25 else ""))
    return plan


def apply_plan(plan, columns, values, missing=-9999.0, zeros_missing=True, over=None):
    """The element table ``(n, len(plan.elements))`` of a plan: the first column of each element, with
    samples it does not measure filled from its oxide columns (converted to its unit). Raw codes
    (missing, negative below-detection values) are kept as they are.

    ``over``: ``(n, len(columns))`` booleans, True where a value was over the laboratory's upper limit (``'>10'``,
    read as the limit): there another column's measured value of the element (an over-limit re-assay such as ALS's
    Au-OG44) replaces it. Read as measured, the limit had kept the re-assay out (14.3 ppm gold mapped as 10)."""
    columns = [str(c) for c in columns]
    values = np.asarray(values, dtype=float).reshape(-1, len(columns))
    index = {c: j for j, c in enumerate(columns)}
    out = np.empty((values.shape[0], len(plan.elements)))
    replaced, lower = {}, {}
    none = np.zeros(values.shape[0], dtype=bool)
    for k, element in enumerate(plan.elements):
        sources = plan.columns[element]
        col = values[:, index[sources[0]]].copy()
        capped = over[:, index[sources[0]]].copy() if over is not None else none.copy()
        for c, f in zip(sources[1:], plan.factors[element][1:]):
            raw = values[:, index[c]]
            usable = measured(raw, missing, zeros_missing)   # on the raw values: a missing code is no value
            other = raw * f   # a negative (below detection) limit converts the same way
            other_capped = over[:, index[c]] if over is not None else none
            empty = ~measured(col, missing, zeros_missing) & usable      # a sample the first column misses
            # a capped value is replaced by a measured value of another column at least the limit (a re-assay); a
            # value under the limit is another digestion or method, not a re-assay of this one
            candidate = capped & ~empty & usable & ~other_capped
            higher, under = candidate & (other >= col), candidate & (other < col)
            if higher.any():
                replaced.setdefault(sources[0], []).append((c, int(higher.sum())))
            if under.any():
                lower.setdefault(sources[0], []).append((c, int(under.sum())))
            fill = empty | higher
            col[fill] = other[fill]
            capped = (capped & ~fill) | (empty & other_capped)
        out[:, k] = col
    for name, by in replaced.items():
        plan.log.append(f"{name}: {sum(n for _, n in by)} values over the laboratory's upper limit ('>x') replaced by "
                        "the element's other assay (" + ", ".join(f"{c} {n}" for c, n in by) + ").")
    for name, by in lower.items():
        plan.log.append(f"{name}: {sum(n for _, n in by)} values over the laboratory's upper limit ('>x') kept at the "
                        "limit: the other column's value is lower, so it is no re-assay (" +
                        ", ".join(f"{c} {n}" for c, n in by) + ").")
    return out


def _without_codes(values, missing):
    """``(values, note)``: the table with the missing-value codes of :func:`missing_codes` made ``missing`` (NaN
    when there is no missing code), and the log line saying so (None when there was none)."""
    codes = missing_codes(values, missing)
    if not codes:
        return values, None
    hit = code_mask(values, codes)
    values = np.where(hit, missing if missing is not None and np.isfinite(missing) else np.nan, values)
    return values, code_note(codes, int(hit.sum()))


def survey_elements(columns, values, x=None, y=None, fields=None, coverage=DEFAULT_COVERAGE, units=None,
                    missing=-9999.0, zeros_missing=True, over=None):
    """``(names, table, plan)``: the element columns to use and their values, oxides merged.

    ``fields`` (the user's choice) are used as given (oxide duplicates among them merged);
    otherwise :func:`plan_elements` chooses by name, unit, geometry and coverage. Raises
    an OreMapError naming ``fields`` when no element is left, with the best-covered ones. ``over``: where values
    were over the laboratory's upper limit (:func:`apply_plan`).
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(columns)) if len(columns) else np.zeros((0, 0))
    if fields:
        missing_cols = [f for f in fields if f not in columns]
        if missing_cols:
            raise OreMapError(f"Columns not in the table: {', '.join(missing_cols)}.", "fields")
        idx = [columns.index(f) for f in fields]
        chosen, note = _without_codes(values[:, idx], missing)
        plan = plan_elements(list(fields), chosen, x, y, coverage=0.0, units=units,
                             missing=missing, zeros_missing=zeros_missing, explicit=True)
        plan.log[:0] = [note] if note else []
        chosen_over = None if over is None else np.asarray(over, dtype=bool).reshape(values.shape)[:, idx]
        return plan.fields, apply_plan(plan, list(fields), chosen, missing, zeros_missing, chosen_over), plan
    values, note = _without_codes(values, missing)
    plan = plan_elements(columns, values, x, y, coverage=coverage, units=units, missing=missing,
                         zeros_missing=zeros_missing)
    plan.log[:0] = [note] if note else []
    if not plan.elements:
        best = sorted(plan.coverage.items(), key=lambda kv: -kv[1])[:5]
        raise OreMapError(
            "No column is an element measured in enough samples" + (
                ": best covered " + ", ".join(f"{plan.names[e]} {100 * s:.0f} %" for e, s in best) if best else
                " (no column name carries a unit such as _ppm, _ppb or _pct, or an element symbol)") + ".",
            "fields", "Lower the coverage, or choose the element fields.")
    over = None if over is None else np.asarray(over, dtype=bool).reshape(values.shape)
    return plan.fields, apply_plan(plan, columns, values, missing, zeros_missing, over), plan


# --------------------------------------------------------------------------------------
# One sample reported in several records
# --------------------------------------------------------------------------------------
#: Places of one sample id closer than this (in the units of ``x``, ``y``: metres) are one sample's place.
SAME_SAMPLE_DISTANCE = 1.0

#: Measured values of one element in a sample's reports that differ by more than this ratio disagree (a re-assay
#: within a laboratory's precision stays under it; values rounded to one digit near detection do not).
REPORTS_DISAGREE = 1.1

#: A sample's reports disagree when more than this share of the elements measured in two of them or more do:
#: GeoChemAD's area4 rock chips, reported twice with other rounding, reach 9 % at most (a few values near detection);
#: six of area1's 525 samples reported twice reach more than half (other digestions, or other samples under one id).
REPORTS_DISAGREE_SHARE = 0.25


def linked_places(x, y, distance, groups=None):
    """Single-linkage clusters of the places ``x``, ``y``: places within ``distance`` of each other (steps of it:
    0, 0.95 and 1.05 m are one place at 1 m), only within one of ``groups`` when given (a code per place, e.g. a
    sample id). A label per place, the clusters numbered in the order of their first place. Memory grows with the
    pairs within ``distance``, not with the square of the places."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(x)
    if n < 2:
        return np.zeros(n, dtype=int)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(float(distance), output_type="ndarray")
    if groups is not None and len(pairs):
        groups = np.asarray(groups)
        pairs = pairs[groups[pairs[:, 0]] == groups[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    label = connected_components(graph, directed=False)[1]
    _, first, label = np.unique(label, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=int)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[np.ravel(label)]


def _clusters(label, order):
    """The rows of each cluster of ``label`` with two rows or more, the clusters and their rows in ``order`` (rows
    in a canonical order)."""
    members = {}
    for i in order:
        members.setdefault(int(label[i]), []).append(int(i))
    return [np.asarray(rows) for rows in members.values() if len(rows) > 1]


def sample_groups(keys, x, y, distance=SAME_SAMPLE_DISTANCE):
    """Groups of rows that report one sample: the same sample id (``keys``: a text per row, None or '' for none)
    at places linked by steps within ``distance`` (:func:`linked_places`). Returns ``(groups, apart)``: ``groups`` a
    list of ``(id, rows)`` (two rows or more each, in a canonical order: by id, then place); ``apart`` the number of
    ids given at places further apart (counted as several samples: ids repeat between projects).

    A row without an id or without a place is a sample of its own. The result does not depend on the rows' order."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    text = [None if k is None or str(k).strip() == "" else str(k).strip() for k in keys]
    rows = np.flatnonzero([t is not None for t in text] & np.isfinite(x) & np.isfinite(y))
    if rows.size < 2:
        return [], 0
    names, codes = np.unique([text[i] for i in rows], return_inverse=True)
    codes = np.ravel(codes)
    label = linked_places(x[rows], y[rows], distance, codes)
    order = np.lexsort((rows, y[rows], x[rows], codes))     # by id, then place, then row
    groups = [(str(names[codes[c[0]]]), rows[c]) for c in _clusters(label, order)]
    per_id = np.bincount(codes[np.unique(label, return_index=True)[1]], minlength=names.size)
    return groups, int((per_id > 1).sum())


def _reports_disagree(measured_values, compared):
    """Whether a sample's reports disagree: more than :data:`REPORTS_DISAGREE_SHARE` of the ``compared`` elements
    (measured in two reports or more) differ by more than :data:`REPORTS_DISAGREE` (``measured_values``: the
    reports' measured values, NaN elsewhere)."""
    if not compared.any():
        return False
    block = measured_values[:, compared]
    hi, lo = np.nanmax(block, axis=0), np.nanmin(block, axis=0)
    return int((hi > REPORTS_DISAGREE * lo).sum()) > REPORTS_DISAGREE_SHARE * int(compared.sum())


def combine_reports(values, x, y, keys, over=None, missing=-9999.0, distance=SAME_SAMPLE_DISTANCE, elements=None):
    """Make the records that report one sample (:func:`sample_groups`) one record: every row of a sample gets the
    same values and place, so the scores and selections that count each distinct record once count the sample once
    and give each of its rows its result.

    Per element: the mean of the values measured in its reports; a measured value before a value below detection
    (negative: minus the limit; -inf where the limit is not known), of which the lowest limit; a value over the upper
    limit (``over``, a lower bound) where no report measured the element otherwise or the measured values' mean lies
    below it (another digestion; the highest such limit, still flagged); 0 only where nothing else was reported;
    missing (NaN) where no report has it. The place is the mean of the reports' places.

    Reports that disagree (more than :data:`REPORTS_DISAGREE_SHARE` of the elements measured in two of them or more
    differ by more than :data:`REPORTS_DISAGREE`) are not combined: their mean would be no sample's composition
    (six samples of GeoChemAD's area1 are reported twice with the values of one report shifted by a column). They
    stay separate records. ``elements``: a boolean per column, the columns that test compares (default all; an id
    or a coordinate column differs between reports by nature).

    Returns ``(values, x, y, over, summary)`` (copies; ``over`` None when not given), ``summary`` a dict:
    ``records`` (rows combined), ``samples`` (samples they make), ``apart`` (ids at places further apart than
    ``distance``) and ``conflicts`` (the ids whose reports disagree, sorted)."""
    values = (np.array(values, dtype=float, copy=True).reshape(len(keys), -1) if np.size(values)
              else np.zeros((len(keys), 0)))
    x, y = np.array(x, dtype=float, copy=True), np.array(y, dtype=float, copy=True)
    flags = None if over is None else np.array(over, dtype=bool, copy=True).reshape(values.shape)
    compare = np.ones(values.shape[1], bool) if elements is None else np.asarray(elements, dtype=bool)
    groups, apart = sample_groups(keys, x, y, distance)
    records, samples, conflicts = 0, 0, []
    for key, rows in groups:
        block = values[rows]
        flag = np.zeros(block.shape, bool) if flags is None else flags[rows]
        usable = measured(block, missing, zeros_missing=False)   # -inf: below detection, limit not known
        measured_ = usable & (block > 0) & ~flag
        n_measured = measured_.sum(axis=0)
        if _reports_disagree(np.where(measured_, block, np.nan), (n_measured > 1) & compare):
            conflicts.append(key)
            continue
        capped = usable & (block > 0) & flag
        below = usable & (block < 0)
        zero = usable & (block == 0)
        mean = np.where(measured_, block, 0.0).sum(axis=0) / np.maximum(n_measured, 1)
        top = np.where(capped, block, -np.inf).max(axis=0)
        bound = capped.any(axis=0) & ((n_measured == 0) | (mean < top))   # the lower bound says more
        lowest_limit = np.where(below, block, -np.inf).max(axis=0)
        values[rows] = np.where(bound, top,
                                np.where(n_measured > 0, mean,
                                         np.where(below.any(axis=0), lowest_limit,
                                                  np.where(zero.any(axis=0), 0.0, np.nan))))
        if flags is not None:
            flags[rows] = bound
        x[rows], y[rows] = x[rows].mean(), y[rows].mean()
        records += rows.size
        samples += 1
    summary = {"records": records, "samples": samples, "apart": apart, "conflicts": conflicts}
    return values, x, y, flags, summary


def reports_note(summary, field, distance=SAME_SAMPLE_DISTANCE):
    """``(info, warnings)``: the log lines of :func:`combine_reports` under the sample id ``field``."""
    info, warnings = [], []
    if summary["samples"]:
        info.append(f"Sample id field '{field}': {summary['records']} records report {summary['samples']} samples "
                    f"(one id at one place, within {distance:g} m). Each sample's reports are combined into one "
                    "record, which counts once, and every one of its rows gets its result: per element the mean of "
                    "the measured values, a measured value before one below detection (the lowest limit among "
                    "those), a value over the upper limit (a lower bound) where no report measured it or the "
                    "measured values lie below it.")
    elif not summary["conflicts"]:
        info.append(f"Sample id field '{field}': no two records give one id at one place (within {distance:g} m), "
                    "so every record counts as a sample of its own.")
    if summary["conflicts"]:
        ids = summary["conflicts"]
        warnings.append(f"Sample id field '{field}': the reports of {len(ids)} samples disagree (more than "
                        f"{100 * REPORTS_DISAGREE_SHARE:.0f} % of the elements measured in two of them differ by more "
                        f"than {100 * (REPORTS_DISAGREE - 1):.0f} %): " + ", ".join(ids[:10])
                        + (f" and {len(ids) - 10} more" if len(ids) > 10 else "") + ". They are not combined but "
                        "kept as separate records; check them (a shifted column, another digestion or laboratory, or "
                        "other samples under one id).")
    if summary["apart"]:
        info.append(f"{summary['apart']} sample ids recur at places more than {distance:g} m apart: each place is "
                    "counted as a sample of its own (an id can be reused between projects).")
    return info, warnings


# --------------------------------------------------------------------------------------
# A record whose values slipped by a column
# --------------------------------------------------------------------------------------
#: Records at one place are compared for a shift when the place holds at most this many (more are drill-hole
#: composites at a collar, not reports of one sample).
SHIFT_GROUP_MAX = 4

#: A record is a shifted copy of another at its place when more than this share of its element values equal the
#: other's next (or previous) element's, in the table's column order ...
SHIFT_SHARE = 0.5

#: ... and at most this share equal the other's own values (two reports of one sample agree unshifted).
SHIFT_SAME_MAX = 0.2

#: Fewest elements measured in either record for the test to say anything ...
SHIFT_MIN_ELEMENTS = 6

#: ... and fewest pairs of neighbouring elements measured in both (a record of six elements slipped gives five).
SHIFT_MIN_PAIRS = 5


def _equal_values(a, b, rtol=1e-4):
    return np.isfinite(a) & np.isfinite(b) & (np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)))


def _share(first, second, pairs):
    """The share of the element ``pairs`` measured in both ``first`` and ``second`` where the two are equal; 0 where
    fewer than :data:`SHIFT_MIN_PAIRS` pairs are measured in both."""
    compared = pairs & np.isfinite(first) & np.isfinite(second)
    if compared.sum() < SHIFT_MIN_PAIRS:
        return 0.0
    return float(_equal_values(first, second)[compared].mean())


def shifted_records(columns, values, x, y, missing=-9999.0):
    """Pairs of records at one place (within :data:`SAME_SAMPLE_DISTANCE` of each other, :func:`linked_places`;
    ``x``, ``y`` in metres) whose element values are the other's slipped by one column: ``[(row, other,
    share), ...]``, ``row`` holding in each element the value ``other`` holds in the next element column, ``share``
    the part of the element pairs where that holds. ``columns`` in the table's order (the caller's to keep); oxides,
    which a compilation derives from its elements after the slip, are left out, and so are values that carry no
    measurement to compare (missing, 0, below detection: a run of one limit would hide the slip) and neighbouring
    columns of one element (two methods' columns side by side are no slip); the shares count the element pairs
    measured in both records (at least :data:`SHIFT_MIN_PAIRS`).

    GeoChemAD's area1 compilation (GSWA stream sediments) holds six samples reported twice, the second report
    (WAMEX 104743) slipped by a column: its Ag is the first report's As, its As the Au, its Au the Ba. Those six
    Au values (0.10-0.24 ppm) are the highest of the survey, 6 to 11 km from any gold site. Which of the two is
    slipped, the table cannot say; the log names both. Places holding more than :data:`SHIFT_GROUP_MAX` records are
    not compared (drill-hole composites at one collar)."""
    names = [str(c) for c in columns]
    n = len(x)
    parsed = [parse_column(c) for c in names]
    keep = [j for j, p in enumerate(parsed) if p.element is not None and p.oxide is None]
    if n < 2 or len(keep) < SHIFT_MIN_ELEMENTS:
        return []
    V = np.asarray(values, dtype=float).reshape(n, len(names))[:, keep].copy()
    V[~(V > 0) | (V == missing)] = np.nan                  # measured values only (NaN, 0, limits, codes out)
    element = np.array([parsed[j].element for j in keep])
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    label = linked_places(x[ok], y[ok], SAME_SAMPLE_DISTANCE)
    found = []
    for cluster in _clusters(label, np.arange(ok.size)):
        if cluster.size > SHIFT_GROUP_MAX:
            continue
        rows = ok[cluster]
        for i in range(rows.size):
            for k in range(i + 1, rows.size):
                a, b = V[rows[i]], V[rows[k]]
                c = np.flatnonzero(np.isfinite(a) | np.isfinite(b))
                if c.size < SHIFT_MIN_ELEMENTS:
                    continue
                A, B = a[c], b[c]
                both = np.isfinite(A) & np.isfinite(B)
                if both.sum() and _equal_values(A, B)[both].mean() > SHIFT_SAME_MAX:
                    continue
                pairs = element[c[:-1]] != element[c[1:]]      # neighbours of different elements
                for share, slipped, other in ((_share(B[:-1], A[1:], pairs), rows[k], rows[i]),
                                              (_share(A[:-1], B[1:], pairs), rows[i], rows[k])):
                    if share > SHIFT_SHARE:
                        found.append((int(slipped), int(other), float(share)))
                        break
    return sorted(found)


def shifted_note(found, labels):
    """The warning of :func:`shifted_records` (``labels``: how to name each row, e.g. feature ids), or None."""
    if not found:
        return None
    pairs = ", ".join(f"{labels[r]} / {labels[o]}" for r, o, _ in found[:10]) + (
        f" and {len(found) - 10} more" if len(found) > 10 else "")
    return (f"{len(found)} record{'s' if len(found) > 1 else ''} look{'' if len(found) > 1 else 's'} slipped by a "
            f"column against another record at {'their' if len(found) > 1 else 'its'} place (in each pair the first "
            f"holds in each element the value the second holds in the next element column): {pairs}. One of each "
            "pair is a compilation error whose elements hold their neighbours' values, so a high value may be another "
            "element's. Check them and remove the wrong one: both are used as they are.")
