"""Geochemical survey tables: units, values below detection, transforms, scaling, duplicates, CRS.

A survey is a table of samples (rows) with coordinates and element concentrations
(columns named like ``Au_ppb``, ``Cu_ppm``, ``Fe2O3_pct``). Conventions of the
public survey compilations OreMap reads:

* a missing value is a code (``-9999``);
* a value below the detection limit is stored as minus the limit (``-0.5`` for
  "< 0.5"): it is replaced by half the limit (the usual choice), the limit itself,
  or treated as missing;
* an exact 0 is not a measurement. Compilations use it for "not analysed" (whole
  surveys of an element stored as 0) and sometimes for a non-detect without its
  limit. ONE rule, :data:`DEFAULT_ZEROS` (``"missing"``), is used by every OreMap
  algorithm unless the user chooses another (:data:`ZERO_MODES`, the algorithms'
  ``ZEROS`` parameter); see :func:`below_detection`;
* concentrations are right-skewed and compositional, so they are usually
  log-transformed or centred-log-ratio transformed (:mod:`core.engine.compositional`)
  before being scaled and modelled.

Everything here works on plain float arrays ``(n_samples, n_elements)`` with NaN for
missing values, and is NaN-aware. :func:`preprocess` chains the steps the models
use; :class:`Scaler` keeps its statistics so they can be fitted on training folds,
applied to all samples and stored in a model's metadata.
"""

import math
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..engine import compositional
from ..engine.errors import OreMapError
from .survey_hygiene import code_mask, code_note, linked_places, missing_codes

UNIT_FACTORS = {"pct": 1e4, "ppm": 1.0, "ppb": 1e-3}
"""Multiply by the factor to get parts per million."""

_SUFFIX = re.compile(r"^(?P<name>.+?)[_ ](?P<unit>pct|ppm|ppb)$", re.IGNORECASE)

BELOW_MODES = ("half", "limit", "nan", "drop")

ZERO_MODES = ("missing", "half_min", "keep")
DEFAULT_ZEROS = "missing"
"""How exact zeros are read unless told otherwise: as missing values (NaN).

Why: in the survey compilations OreMap reads, 0 mostly means "not analysed". In the
GSWA/WAMEX stream-sediment survey of the tests, Bi, Re and Sb are 0 in 811, 811 and
803 of 1,392 samples, whole surveys at a time, while every sample of the other surveys
is below detection (negative): taking those zeros as values ranks Bi, Re and Sb as the
best gold pathfinders, an artefact. Where zeros are non-detects without a limit (Au in
some of its surveys), ``"half_min"`` is the alternative.
"""

ZERO_CHOICES = [("missing", "Missing (not analysed)"),
                ("half_min", "Half the column's smallest positive value"),
                ("keep", "Kept as 0")]
"""``(mode, label)`` in :data:`ZERO_MODES` order, the default first: the options of the algorithms' ``ZEROS``."""

ZEROS_HELP = ("How exact zeros are read (a measured concentration is never exactly 0). Missing (default): "
              "survey compilations use 0 for 'not analysed', so these values are left out. Half the smallest "
              "positive value: for zeros that are non-detects without a stated limit. Kept as 0: as stored "
              "(a log10 transform then refuses them).")
"""Help text of the algorithms' ``ZEROS`` parameter (the same in every algorithm)."""
TRANSFORMS = ("none", "log10", "clr")
SCALINGS = ("zscore", "robust", "none")

IQR_TO_SD = 2.0 * 0.6744897501960817
"""Interquartile range of a normal distribution in standard deviations (about 1.349)."""


# --------------------------------------------------------------------------------------
# Column names and units
# --------------------------------------------------------------------------------------
def _split(column):
    match = _SUFFIX.match(str(column).strip())
    if match is None:
        return str(column).strip(), None
    return match.group("name"), match.group("unit").lower()


def element_unit_factor(name):
    """``(factor, unit)`` turning the column's values into ppm, from the unit its name carries, read as survey
    hygiene reads it (:func:`core.geochemistry.survey_hygiene.parse_column`: ``Au_ppb``, ``Au (ppb)``, ``Au-ppb``,
    ``Au_ppb_FA``, ``Pd (ug/kg)``, ``S (%)``).

    ``"Au_ppb"`` -> ``(0.001, "ppb")``, ``"Fe2O3_pct"`` -> ``(10000.0, "pct")``,
    ``"Cu_ppm"`` -> ``(1.0, "ppm")``; a column whose name carries no unit gives ``(1.0, None)``.
    """
    from .survey_hygiene import UNIT_FACTORS as FACTORS, parse_column

    column = parse_column(name)
    if column.unit and not column.assumed_unit:
        return FACTORS[column.unit], column.unit
    unit = _split(name)[1]   # a unit suffix after a name that is no element ('LOI_pct')
    return (UNIT_FACTORS[unit], unit) if unit else (1.0, None)


#: More than this many ppm is more than the whole sample (100 %): an overflow, a sentinel or a unit slip.
IMPOSSIBLE_PPM = 1e6


def impossible_values_note(values, names):
    """A warning naming the columns with values above 100 % of the sample (more than :data:`IMPOSSIBLE_PPM` once
    their unit is read from the name, :func:`element_unit_factor`), or None. Such a value (1e30, 99999999) is a
    code or an overflow, not a concentration, and an interpolated grid spreads it over its neighbourhood."""
    X = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    found = []
    for j, name in enumerate(names):
        factor, _ = element_unit_factor(str(name))
        column = X[:, j][np.isfinite(X[:, j])]
        bad = column[column * factor > IMPOSSIBLE_PPM]
        if bad.size:
            found.append(f"{name}: {bad.size} (up to {bad.max():.4g})")
    if not found:
        return None
    return ("Values above 100 % of the sample, which no assay gives (a code, an overflow or a unit slip): "
            + "; ".join(found) + ". Give such a code as the missing value, or correct the values.")


def element_name(column):
    """The column name without its unit suffix: ``"Au_ppb"`` -> ``"Au"`` (unchanged without a suffix)."""
    return _split(column)[0]


def canonical_columns(names):
    """Indexes that put element columns in one canonical order: by name, case-insensitive (then as written).

    Seeded fits draw on the columns by position (the isolation forest's random features, the VAE's first weights,
    MCD's tie-breaking jitter), so scored as the table holds them the same survey with its columns in another order
    gave another map (area1's default fusion 0.574-0.610 over five orders). Scores are computed in this order; the
    GSWA compilations list their element columns alphabetically already, so their figures are unchanged.
    """
    names = [str(n) for n in names]
    return sorted(range(len(names)), key=lambda j: (names[j].lower(), names[j], j))


# --------------------------------------------------------------------------------------
# Missing values and values below detection
# --------------------------------------------------------------------------------------
def _table(values, parameter="values"):
    X = np.array(values, dtype=np.float64)  # a copy: callers' arrays are never modified
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise OreMapError(f"Expected a table (samples x elements), got shape {X.shape}.", parameter)
    return X


def below_detection(values, mode="half", missing=-9999.0, zeros=DEFAULT_ZEROS):
    """Replace missing codes by NaN, values below detection as ``mode`` says, exact zeros as ``zeros`` says.

    Parameters
    ----------
    values : array (n, m)
        Concentrations; a negative value ``-v`` means "below the detection limit ``v``", ``-inf`` "below
        detection, limit not reported" (``BDL``, ``ND``: half the column's smallest measured value, or that
        value with ``"limit"``). Negative values that are missing-value codes (:func:`survey_hygiene.missing_codes`:
        -99 where ``missing`` says -9999) are missing.
    mode : {"half", "limit", "nan", "drop"}
        ``"half"``: ``v / 2``; ``"limit"``: ``v``; ``"nan"`` or ``"drop"``: missing (NaN).
    missing : float or None
        Code of a missing value (exact match), made NaN. NaN is always missing.
    zeros : {"missing", "half_min", "keep"}, default :data:`DEFAULT_ZEROS`
        Exact zeros: ``"missing"`` makes them NaN; ``"half_min"`` replaces them by half the
        column's smallest positive value after the below-detection replacement (kept where
        the column has none, see :func:`zeros_to_half_minimum`); ``"keep"`` leaves them.

    Returns
    -------
    array (n, m) float64, and a dict of per-column arrays (m,): ``below_detection`` (values
    below detection, replaced), ``missing`` (missing codes and NaN on input), ``zeros``
    (exact zeros found, handled as ``zeros`` says), ``zero_value`` (the value zeros
    became with ``"half_min"``, else NaN) and ``codes`` (``{missing-value code: columns}``, with
    ``code_values`` the number of values it made missing).
    """
    if mode not in BELOW_MODES:
        raise OreMapError(f"Unknown below-detection handling '{mode}'.", "below_detection",
                          f"Use one of: {', '.join(BELOW_MODES)}.")
    if zeros not in ZERO_MODES:
        raise OreMapError(f"Unknown zero handling '{zeros}'.", "zeros", f"Use one of: {', '.join(ZERO_MODES)}.")
    X = _table(values)
    if missing is not None and not (isinstance(missing, float) and math.isnan(missing)):
        X[X == float(missing)] = np.nan
    codes = missing_codes(X, missing)
    code_hit = code_mask(X, codes) if codes else np.zeros(X.shape, bool)
    X[code_hit] = np.nan
    is_missing = np.isnan(X)
    below = X < 0  # NaN compares False
    unknown = np.isneginf(X)
    is_zero = X == 0
    if unknown.any():  # below an unreported limit: the column's smallest measured value stands for it
        measured_values = np.where(np.isfinite(X) & (X != 0), np.abs(X), np.inf)
        smallest = measured_values.min(axis=0)
        X[unknown] = np.broadcast_to(np.where(np.isfinite(smallest), -smallest, np.nan), X.shape)[unknown]
    if mode == "half":
        X[below] = -X[below] / 2.0
    elif mode == "limit":
        X[below] = -X[below]
    else:
        X[below] = np.nan
    zero_value = np.full(X.shape[1], np.nan)
    if zeros == "missing":
        X[is_zero] = np.nan
    elif zeros == "half_min":
        X, _, zero_value = zeros_to_half_minimum(X)
    return X, {"below_detection": below.sum(axis=0), "missing": is_missing.sum(axis=0),
               "zeros": is_zero.sum(axis=0), "zero_value": zero_value, "codes": codes,
               "code_values": int(code_hit.sum()), "unreported_limit": unknown.sum(axis=0)}


def value_notes(names, counts, below="half", zeros=DEFAULT_ZEROS, n_samples=None, per_column=True):
    """Log lines saying what :func:`below_detection` did (its ``counts``), per column or in total.

    ``per_column=False`` gives at most two lines (totals, with the five columns most
    concerned), for tables of many elements.
    """
    what = {"half": "set to half the detection limit", "limit": "set to the detection limit",
            "nan": "treated as missing", "drop": "treated as missing"}[below]
    zero_what = {"missing": "treated as missing (not analysed)",
                 "half_min": "set to half the smallest positive value",
                 "keep": "kept as 0"}[zeros]
    names = [str(n) for n in names]
    code_lines = [code_note(counts["codes"], counts.get("code_values", 0))] if counts.get("codes") else []
    n_below = np.asarray(counts["below_detection"], dtype=int)
    n_missing = np.asarray(counts["missing"], dtype=int)
    n_zeros = np.asarray(counts.get("zeros", np.zeros(len(names))), dtype=int)
    used = np.asarray(counts.get("zero_value", np.full(len(names), np.nan)), dtype=float)
    # 'BDL', '<DL': below a limit the table does not give, which the column's smallest measured value stands for
    n_unknown = np.asarray(counts.get("unreported_limit", np.zeros(len(names))), dtype=int)
    stand_in = "the column's smallest measured value standing for the limit"
    if not per_column:
        lines = []
        for total, label in ((n_zeros, f"values of exactly 0 were {zero_what}"),
                             (n_below, f"values below detection were {what}"),
                             (n_unknown if below in ("half", "limit") else np.zeros(len(names), int),
                              f"of those were below a limit not reported ('BDL'), {stand_in}")):
            if total.sum():
                worst = [j for j in np.argsort(-total, kind="stable")[:5] if total[j]]
                lines.append(f"{int(total.sum())} {label} (" + ", ".join(f"{names[j]}: {int(total[j])}"
                                                                         for j in worst) + ").")
        return code_lines + lines
    of = f" (of {int(n_samples)} samples)" if n_samples is not None else ""
    lines = []
    for j, name in enumerate(names):
        parts = []
        if n_below[j]:
            unknown = (f" ({n_unknown[j]} below a limit not reported, e.g. 'BDL': {stand_in})"
                       if n_unknown[j] and below in ("half", "limit") else "")
            parts.append(f"{n_below[j]} below detection {what}{unknown}")
        if n_zeros[j]:
            value = f" ({used[j]:.4g})" if zeros == "half_min" and np.isfinite(used[j]) else ""
            kept = " (no positive value: kept as 0)" if zeros == "half_min" and not np.isfinite(used[j]) else ""
            parts.append(f"{n_zeros[j]} zero values {zero_what}{value}{kept}")
        if n_missing[j]:
            parts.append(f"{n_missing[j]} missing")
        if parts:
            lines.append(f"{name}: " + ", ".join(parts) + of + ".")
    return code_lines + lines


def zeros_to_half_minimum(values):
    """Replace exact zeros by half the smallest positive value of their column.

    Survey compilations store some non-detects as 0 (limit unknown); a log transform
    needs them positive. Returns the array and, per column, the number of zeros
    replaced and the value used (NaN where the column has no positive value: its
    zeros are kept).
    """
    X = _table(values)
    counts = np.zeros(X.shape[1], dtype=int)
    used = np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        zero = X[:, j] == 0
        positive = X[:, j][X[:, j] > 0]
        if zero.any() and positive.size:
            used[j] = positive.min() / 2.0
            X[zero, j] = used[j]
            counts[j] = int(zero.sum())
    return X, counts, used


# --------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------
def transform(values, method, names=None, clr_delta=None):
    """Transform concentrations: ``"none"``, ``"log10"`` or ``"clr"``.

    ``"log10"`` needs positive values (NaN stays NaN). ``"clr"`` is the centred
    log-ratio of each sample over all the columns: with ``names``, columns are first
    converted to ppm (:func:`element_unit_factor`), zeros are replaced
    (:func:`core.engine.compositional.replace_zeros`, ``clr_delta`` ppm or 0.65 x the smallest positive
    value of the table) and :func:`core.engine.compositional.clr` is applied. A CLR needs every part of a
    sample, so samples with a missing value come out as a row of NaN.
    """
    X = _table(values)
    if method == "none":
        return X
    if method == "log10":
        bad = np.isfinite(X) & (X <= 0)
        if bad.any():
            col = int(np.argmax(bad.sum(axis=0)))
            label = f"'{names[col]}'" if names is not None else f"column {col + 1}"
            raise OreMapError(
                f"log10 needs positive values: {int(bad.sum())} values are zero or negative "
                f"({int(bad[:, col].sum())} in {label}).", "transform",
                "Treat zeros as missing (or half the smallest positive value) and values below detection as half "
                "the limit (or the limit) first, or choose no transform.")
        return np.log10(X)
    if method == "clr":
        if X.shape[1] < 2:
            raise OreMapError("A centred log-ratio needs at least two elements.", "transform",
                              "Choose several element columns, or use log10.")
        if names is not None:
            if len(names) != X.shape[1]:
                raise OreMapError(f"{len(names)} names for {X.shape[1]} columns.", "names")
            X = _in_ppm(X, names)
        if (np.isfinite(X) & (X < 0)).any():
            raise OreMapError("The centred log-ratio needs non-negative concentrations; negative values remain.",
                              "transform", "Handle values below detection (half the limit or the limit) first.")
        out = np.full_like(X, np.nan)
        complete = np.isfinite(X).all(axis=1)
        if complete.any():
            # zeros: clr_delta, or 0.65 x the smallest positive value of the table (a model gives its training's)
            out[complete] = compositional.clr(compositional.replace_zeros(X[complete], delta=clr_delta))
        return out
    raise OreMapError(f"Unknown transform '{method}'.", "transform", f"Use one of: {', '.join(TRANSFORMS)}.")


_transform = transform  # preprocess() has an argument of that name


# --------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------
@dataclass
class Scaler:
    """Per-column centring and scaling: ``(x - center) / scale``, NaN-aware.

    Fit it on the training samples only (:meth:`fit`), apply it to every sample
    (:meth:`transform`), keep it in a model's metadata (:meth:`to_dict` /
    :meth:`from_dict`). ``notes`` says which columns needed a fallback scale.
    """

    method: str = "none"
    center: np.ndarray = None
    scale: np.ndarray = None
    notes: list = field(default_factory=list)

    @classmethod
    def fit(cls, values, method="zscore", names=None):
        """Statistics of ``values`` (n, m), ignoring NaN.

        ``"zscore"``: mean and standard deviation (ddof 0); ``"robust"``: median and
        interquartile range / 1.349 (the standard deviation of a normal sample with that
        IQR); ``"none"``: 0 and 1. A column whose scale is 0 (constant, or an IQR of 0
        because most values sit at the detection limit) falls back to its standard
        deviation, then to 1; an all-missing column gets 0 and 1. ``names`` (optional)
        label the columns in ``notes``.
        """
        if method not in SCALINGS:
            raise OreMapError(f"Unknown scaling '{method}'.", "scale", f"Use one of: {', '.join(SCALINGS)}.")
        X = _table(values)
        m = X.shape[1]
        center, scale, notes = np.zeros(m), np.ones(m), []
        if method == "none":
            return cls(method, center, scale, notes)
        for j in range(m):
            label = str(names[j]) if names is not None else f"column {j + 1}"
            col = X[:, j][np.isfinite(X[:, j])]
            if col.size == 0:
                notes.append(f"{label}: no values, left unscaled")
                continue
            sd = float(col.std())
            if method == "zscore":
                center[j], s = float(col.mean()), sd
            else:
                q25, q50, q75 = np.percentile(col, [25, 50, 75])
                center[j], s = float(q50), float(q75 - q25) / IQR_TO_SD
                if not s > 0 and sd > 0:
                    notes.append(f"{label}: interquartile range 0, scaled by the standard deviation")
                    s = sd
            if not s > 0:
                notes.append(f"{label}: constant, not scaled")
                s = 1.0
            scale[j] = s
        return cls(method, center, scale, notes)

    @property
    def n_features(self):
        return 0 if self.center is None else len(self.center)

    def transform(self, values):
        X = _table(values)
        if self.center is None:
            raise OreMapError("The scaler has not been fitted.", "scale")
        if X.shape[1] != self.n_features:
            raise OreMapError(f"The scaler was fitted on {self.n_features} columns, got {X.shape[1]}.", "scale")
        return (X - self.center[None, :]) / self.scale[None, :]

    def inverse_transform(self, values):
        X = _table(values)
        return X * self.scale[None, :] + self.center[None, :]

    def to_dict(self):
        """Plain JSON-able dict (for model metadata)."""
        return {"method": self.method, "center": [float(v) for v in self.center],
                "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, data):
        try:
            return cls(str(data["method"]), np.asarray(data["center"], dtype=np.float64),
                       np.asarray(data["scale"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise OreMapError(f"Invalid scaler metadata: {exc}.", "model") from exc


def _in_ppm(X, names):
    """Columns ``names`` of ``X`` converted to ppm by their unit (:func:`element_unit_factor`)."""
    return X * np.array([element_unit_factor(n)[0] for n in names])[None, :]


def clr_zero_delta(values, names, below="half", missing=-9999.0, zeros=DEFAULT_ZEROS):
    """The ppm a zero becomes in :func:`transform`'s ``"clr"`` of these raw values (0.65 x the smallest positive
    value of the complete samples), or None when no sample is complete: what a model keeps of its training table,
    so that a sample's log-ratios do not depend on the samples scored with it."""
    X = below_detection(values, mode=below, missing=missing, zeros=zeros)[0]
    if names is not None:
        X = _in_ppm(X, names)
    return compositional.zero_delta(X[np.isfinite(X).all(axis=1)])


def preprocess(values, names, below="half", transform="none", scale="zscore", missing=-9999.0, fit_rows=None,
               zeros=DEFAULT_ZEROS, clr_fill=None, clr_delta=None):
    """Missing codes, values below detection and zeros (:func:`below_detection`), transform and scaling in one call.

    ``zeros``: exact zeros are missing by default (:data:`DEFAULT_ZEROS`); ``"half_min"``
    makes them half the column's smallest positive value; ``"keep"`` leaves them (log10
    then refuses them). ``fit_rows`` (boolean mask or indexes) selects the samples the
    scaler is fitted on (the training fold); every sample is transformed. ``clr_fill`` (a
    share, e.g. 0.5): before a centred log-ratio, which needs every part, the missing values
    of samples with at least that share of their elements are entered at the element's
    median (None: such samples have no log-ratios). Returns ``(array, scaler, messages)``
    where messages are lines for the log.
    """
    names = list(names)
    X, counts = below_detection(values, mode=below, missing=missing, zeros=zeros)
    if X.shape[1] != len(names):
        raise OreMapError(f"{len(names)} names for {X.shape[1]} columns.", "names")
    messages = value_notes(names, counts, below, zeros, n_samples=X.shape[0])
    if transform == "clr" and clr_fill is not None and X.size:
        present = np.isfinite(X)
        fill = (present.mean(axis=1) >= clr_fill) & ~present.all(axis=1)
        if fill.any():
            with warnings.catch_warnings():   # an element missing everywhere stays missing
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(X, axis=0)
            X[fill] = np.where(present[fill], X[fill], median[None, :])
            messages.append(f"CLR: {int((~present[fill]).sum())} missing values of {int(fill.sum())} samples with at "
                            f"least {100 * clr_fill:.0f} % of the elements entered at the element's median before "
                            "the log-ratios.")
    X = _transform(X, transform, names=names, clr_delta=clr_delta)
    if transform == "clr":
        incomplete = int((~np.isfinite(X).all(axis=1)).sum())
        if incomplete:
            messages.append(f"CLR: {incomplete} samples with a missing element have no log-ratios (NaN).")
    rows = X if fit_rows is None else X[np.asarray(fit_rows)]
    scaler = Scaler.fit(rows, scale, names=names)
    messages += [f"Scaling: {note}." for note in scaler.notes]
    return scaler.transform(X), scaler, messages


# --------------------------------------------------------------------------------------
# Duplicate locations
# --------------------------------------------------------------------------------------
def aggregate_duplicates(x, y, values, how="mean", tolerance=0.0):
    """Merge samples at the same location.

    Points closer than ``tolerance`` (CRS units; 0 = identical coordinates, chained:
    a-b and b-c close puts a, b, c together) become one point at their mean
    coordinates with the NaN-aware mean or median of each column (NaN when every
    value of the group is missing). Groups keep the order of their first sample.

    Returns ``(x, y, values, n_merged)``; ``n_merged`` = samples in - points out.
    """
    if how not in ("mean", "median"):
        raise OreMapError(f"Unknown aggregation '{how}'.", "duplicates", "Use 'mean' or 'median'.")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    V = _table(values)
    n = x.size
    if y.size != n or V.shape[0] != n:
        raise OreMapError(f"{n} x, {y.size} y and {V.shape[0]} value rows.", "values")
    if n == 0:
        return x, y, V, 0
    if tolerance and tolerance > 0:
        labels = linked_places(x, y, tolerance)   # numbered by first appearance
    else:
        labels = np.unique(np.column_stack([x, y]), axis=0, return_inverse=True)[1].ravel()
        # renumber groups by first appearance
        _, first, labels = np.unique(labels, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        labels = rank[labels.ravel()]
    g = int(labels.max()) + 1
    if g == n:
        return x.copy(), y.copy(), V, 0
    counts = np.bincount(labels, minlength=g).astype(np.float64)
    gx = np.bincount(labels, weights=x, minlength=g) / counts
    gy = np.bincount(labels, weights=y, minlength=g) / counts
    out = np.full((g, V.shape[1]), np.nan)
    for j in range(V.shape[1]):
        col = V[:, j]
        ok = np.isfinite(col)
        if how == "mean":
            s = np.bincount(labels[ok], weights=col[ok], minlength=g)
            c = np.bincount(labels[ok], minlength=g)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, j] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        else:
            out[labels[ok], j] = col[ok]  # single members; groups overwritten below
    if how == "median":
        multi = np.flatnonzero(counts > 1)
        members = np.argsort(labels, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts.astype(int))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a group: NaN, as wanted
            for gi in multi:
                out[gi] = np.nanmedian(V[members[starts[gi]:starts[gi + 1]]], axis=0)
    return gx, gy, out, int(n - g)


# --------------------------------------------------------------------------------------
# Coordinate reference systems
# --------------------------------------------------------------------------------------
def utm_crs_for(lon, lat):
    """EPSG code of the WGS 84 UTM zone of the points' centroid: 326zz north, 327zz south.

    Plain 6-degree zones (the Norway and Svalbard exceptions are not applied).
    """
    lon = np.asarray(lon, dtype=np.float64).ravel()
    lat = np.asarray(lat, dtype=np.float64).ravel()
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        raise OreMapError("No point has valid coordinates.", "crs")
    lon, lat = lon[ok], lat[ok]
    if np.abs(lat).max() > 90 and np.abs(lon).max() <= 90 and np.abs(lat).max() <= 360:
        # x within +-90 and y beyond: degrees with the columns swapped, the CSV trap (X_POSSIBLE_NAMES=lat)
        raise OreMapError(f"The coordinates look like longitude and latitude swapped: x runs from {lon.min():g} to "
                          f"{lon.max():g} and y from {lat.min():g} to {lat.max():g}, beyond +-90 (a latitude).",
                          "crs", "Load the points with X = longitude and Y = latitude (Layer Properties > Source, or "
                          "the X and Y fields of the delimited-text import).")
    if np.abs(lat).max() > 90 or np.abs(lon).max() > 360:
        raise OreMapError("The coordinates are not longitude/latitude in degrees.", "crs",
                          "Check the layer's CRS: a projected layer must not be declared geographic.")
    # centroid on the circle, so a survey across the antimeridian gets the right zone
    c_lon = math.degrees(math.atan2(np.sin(np.radians(lon)).mean(), np.cos(np.radians(lon)).mean()))
    c_lat = float(lat.mean())
    zone = min(60, int((c_lon + 180.0) // 6.0) + 1)
    return (32600 if c_lat >= 0 else 32700) + zone


def project_points(x, y, src_crs, dst_crs):
    """Transform coordinates between CRSs (EPSG codes, ``"EPSG:n"`` strings or WKT) with pyproj.

    Coordinates are in x/y (longitude/latitude) order whatever the CRS's axis order.
    """
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        src, dst = CRS.from_user_input(src_crs), CRS.from_user_input(dst_crs)
    except CRSError as exc:
        raise OreMapError(f"Unknown coordinate reference system: {exc}.", "crs",
                          "Use an EPSG code (e.g. 4326) or a WKT definition.") from exc
    transformer = Transformer.from_crs(src, dst, always_xy=True)
    px, py = transformer.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Survey hygiene (core/geochemistry/survey_hygiene.py): which columns are elements, which to use
# --------------------------------------------------------------------------------------
def survey_elements(columns, values, x=None, y=None, fields=None, coverage=None, units=None, missing=-9999.0,
                    zeros=DEFAULT_ZEROS):
    """The element columns of a survey and their values: :func:`core.geochemistry.survey_hygiene.survey_elements`.

    Elements by unit anywhere in the name (or symbol with ``units``), never coordinates, ids or
    copies of the geometry (``x``, ``y``), oxides merged into their element, and, without
    ``fields``, only elements measured in at least ``coverage`` of the samples (default
    :data:`core.geochemistry.survey_hygiene.DEFAULT_COVERAGE`). Returns ``(names, table, plan)``; ``plan.log``
    says what was left out and why.
    """
    from . import survey_hygiene

    coverage = survey_hygiene.DEFAULT_COVERAGE if coverage is None else coverage
    return survey_hygiene.survey_elements(list(columns), values, x, y, fields=fields, coverage=coverage, units=units,
                                          missing=missing, zeros_missing=zeros == "missing")


# --------------------------------------------------------------------------------------
# Reading survey tables
# --------------------------------------------------------------------------------------
def read_sample_table(path, x="X", y="Y", fields=None):
    """Coordinates and element columns of a CSV survey (pandas).

    ``fields``: the columns to read; by default every column with a unit suffix
    (``_ppm``, ``_ppb``, ``_pct``), or, when none has one, every numeric column but
    the coordinates. Rows without both coordinates are left out.

    Returns ``x, y, values (n, m) float64 (raw: missing codes and negative
    below-detection values untouched), names``.
    """
    import pandas as pd

    if not path or not os.path.exists(path):
        raise OreMapError(f"The table '{path}' does not exist.", "table", "Choose an existing CSV file.")
    try:
        table = pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise OreMapError(f"Cannot read '{path}' as CSV: {exc}.", "table") from exc
    for column in (x, y):
        if column not in table.columns:
            raise OreMapError(f"Column '{column}' is not in '{os.path.basename(path)}'.", "table",
                              f"Coordinate columns found: {', '.join(map(str, table.columns[:12]))} ...")
    if fields is None:
        fields = [c for c in table.columns if c not in (x, y) and element_unit_factor(c)[1] is not None]
        if not fields:
            fields = [c for c in table.columns if c not in (x, y) and pd.api.types.is_numeric_dtype(table[c])]
    else:
        fields = list(fields)
        missing = [f for f in fields if f not in table.columns]
        if missing:
            raise OreMapError(f"Columns not in the table: {', '.join(missing)}.", "fields")
    if not fields:
        raise OreMapError("The table has no numeric columns to use.", "fields")
    coords = table[[x, y]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    keep = np.isfinite(coords).all(axis=1)
    values = np.empty((int(keep.sum()), len(fields)))
    for j, name in enumerate(fields):
        col = pd.to_numeric(table[name], errors="coerce")
        bad = col.isna() & table[name].notna()
        if bad.any():
            raise OreMapError(f"Column '{name}' has non-numeric values (e.g. '{table[name][bad].iloc[0]}').",
                              "fields", "Choose numeric element columns.")
        values[:, j] = col.to_numpy(dtype=np.float64)[keep]
    return coords[keep, 0], coords[keep, 1], values, [str(f) for f in fields]
