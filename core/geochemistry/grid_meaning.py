"""What the values of a gridded element raster mean, recorded in its band metadata.

A Graphical Modeler chain passes files, not meanings: an IDW grid of log10 values looks like any other
float raster, and an algorithm reading it as survey values would take every negative log10 value for a
"below detection" code and take the log a second time. Gridded outputs therefore record, per band
(GeoTIFF band metadata, readable with ``gdalinfo``):

- ``OREMAP_TRANSFORM``: ``log10`` or ``none``: the transform already applied to the values;
- ``UNITS``: the concentration unit before the transform (``ppm``, ``ppb``, ``%``, from the field name),
  when it can be told;
- ``OREMAP_DETECTION``: ``applied`` when the survey conventions (below-detection codes, zeros,
  missing-value codes, :mod:`core.geochemistry.geochem`) were already handled, so negative values are real values.

:func:`band_tags` writes them, :func:`read_meaning` reads them, :func:`adapt_preprocessing` turns them into
the preprocessing a reader must still do (never a step twice), with the sentences to log.
"""

import numpy as np

from ..engine.errors import OreMapError

TRANSFORM_KEY = "OREMAP_TRANSFORM"
UNITS_KEY = "UNITS"
DETECTION_KEY = "OREMAP_DETECTION"
APPLIED = "applied"

#: The ``UNITS`` tag written for a unit of :data:`core.geochemistry.survey_hygiene.UNIT_FACTORS` that is spelt
#: another way there (units not listed are written as they are: ``ppm``, ``ppb``, ``%``, ``g/t``, ``mg/kg``).
DISPLAY_UNITS = {"pct": "%", "percent": "%", "wt%": "%", "gt": "g/t", "ug/g": "ppm", "µg/g": "ppm", "μg/g": "ppm",
                 "ug/kg": "ppb", "µg/kg": "ppb", "μg/kg": "ppb", "ng/g": "ppb"}


def units_from_name(name):
    """The unit in a field name such as ``Au_ppb``, ``Cu ppm``, ``Fe2O3_pct``, ``SiO2 (%)``, ``Au (µg/g)`` (ppm)
    or ``Pb.ppm``, as :func:`core.geochemistry.survey_hygiene.parse_column` reads it, so that the grid's ``UNITS``
    tag says the unit the survey values were read in (a parser of its own missed names survey hygiene reads);
    '' when the name states none (a bare ``Au`` whose ppm is only assumed)."""
    from .survey_hygiene import parse_column

    column = parse_column(name)
    if not column.unit or column.assumed_unit:
        return ""
    return DISPLAY_UNITS.get(column.unit, column.unit)


def band_tags(names, transform="none", detection_applied=True):
    """One metadata dict per band for :class:`core.engine.raster.OutputSpec` ``band_tags``."""
    tags = []
    for name in names:
        entry = {TRANSFORM_KEY: transform or "none"}
        unit = units_from_name(name)
        if unit:
            entry[UNITS_KEY] = unit
        if detection_applied:
            entry[DETECTION_KEY] = APPLIED
        tags.append(entry)
    return tags


def read_meaning(path, bands=None):
    """``[{"name", "transform" (None when not recorded), "units", "detection_applied"}]`` of ``bands`` (1-based,
    default all) of the raster at ``path``."""
    from ..engine.raster import open_raster

    with open_raster(path, "raster") as ds:
        chosen = list(bands) if bands else list(range(1, ds.count + 1))
        found = []
        for b in chosen:
            tags = {k.upper(): v for k, v in ds.tags(b).items()}
            name = (ds.descriptions[b - 1] or "").strip() or f"Band {b}"
            transform = tags.get(TRANSFORM_KEY)
            found.append({"name": name, "transform": transform.lower() if transform else None,
                          "units": tags.get(UNITS_KEY, "") or ds.units[b - 1] or "",
                          "detection_applied": tags.get(DETECTION_KEY, "").lower() == APPLIED})
    return found


def describe(meaning):
    """One sentence on what the band metadata say (for the log)."""
    if not any(m["transform"] or m["detection_applied"] for m in meaning):
        return "The raster's band metadata do not say how its values were made (no OREMAP_TRANSFORM)."
    parts = []
    for m in meaning:
        what = "log10 of " if m["transform"] == "log10" else ""
        what += m["units"] or "values"
        if m["detection_applied"]:
            what += ", survey conventions already applied"
        parts.append(f"{m['name']} ({what})")
    return "Band metadata: " + "; ".join(parts) + "."


def adapt_preprocessing(meaning, below, transform):
    """The (below-detection handling, transform) still to apply to bands with ``meaning``, and what to log.

    ``below`` is the asked handling (``"half"``, ``"limit"``, ``"nan"`` or ``"none"``) and ``transform`` the asked
    transform (``"log10"``, ``"clr"``, ``"none"``). Bands whose conventions were already applied get ``"none"``;
    bands already in log10 get no second log10. Returns ``(below, transform, messages)``.

    Raises
    ------
    OreMapError
        ``parameter="transform"`` when the bands mix transformed and untransformed values, or when a
        centred log-ratio is asked of log10 values (it needs the concentrations; regrid without log10).
    """
    messages = [describe(meaning)]
    transforms = {m["transform"] for m in meaning if m["transform"]}
    if len(transforms) > 1 or (transforms and any(m["transform"] is None for m in meaning)):
        mixed = ", ".join(f"{m['name']}: {m['transform'] or 'unknown'}" for m in meaning)
        raise OreMapError(f"The raster's bands hold differently transformed values ({mixed}).", "raster",
                          "Grid all the elements the same way (all log10 or none) into one raster.")
    if all(m["detection_applied"] for m in meaning) and below != "none":
        messages.append("Below-detection values and zeros were handled when the grid was made: not again.")
        below = "none"
    if transforms == {"log10"}:
        if transform == "log10":
            messages.append("The values are log10 already: used as they are, no second log10.")
            transform = "none"
        elif transform == "clr":
            raise OreMapError("A centred log-ratio was asked of a raster of log10 values.", "transform",
                              "Choose the log10 transform (the values are used as they are), or grid the elements "
                              "without log10.")
    return below, transform, messages


def check_model_input(meaning, below, transform):
    """Refuse to score bands with a model whose preprocessing would repeat a step the grid already holds."""
    if any(m["transform"] == "log10" for m in meaning) and (transform != "none" or below != "none"):
        step = f"a {transform} transform" if transform != "none" else "below-detection handling"
        raise OreMapError(f"The model applies {step} to its inputs, but the raster holds log10 values already "
                          "(band metadata OREMAP_TRANSFORM=log10): negative log10 values would be taken for "
                          "below-detection codes or logged again.",
                          "raster", "Score a grid made without log10, or train a model on this raster.")


def recorded_transform(meaning):
    """``"log10"`` or ``"none"`` when every band of ``meaning`` (:func:`read_meaning`) records that transform;
    None when a band records none, or they differ."""
    transforms = {m["transform"] for m in meaning}
    return transforms.pop() if len(transforms) == 1 and None not in transforms else None


_HELD = {"log10": "log10 values", "none": "untransformed values (concentrations)"}


def check_input_transform(trained_on, meaning):
    """Refuse bands (``meaning``) whose recorded transform differs from the one the model's training raster held
    (``trained_on``: ``"log10"``, ``"none"``, or None when it was not recorded: no check). A model trained on log10
    grids puts every pixel of a grid of concentrations at the top of its scale (and the reverse at the bottom)."""
    now = recorded_transform(meaning)
    if trained_on in _HELD and now in _HELD and trained_on != now:
        how = "with LOG10 on" if trained_on == "log10" else "without LOG10"
        raise OreMapError(f"The model was trained on {_HELD[trained_on]}, but this raster holds {_HELD[now]} (band "
                          f"metadata OREMAP_TRANSFORM={now}): its scores would be meaningless.", "raster",
                          f"Grid the elements as the training raster was (oremap:idw_interpolate {how}), or train a "
                          "model on this raster.")


def options_for_raster(path, bands, options, log):
    """``options`` (keyword arguments of a trainer taking ``below``, ``transform`` and ``input_transform``, defaults
    ``"half"`` and ``"log10"``) adapted to what the raster's bands already hold, with the transform they hold
    (:func:`recorded_transform`); each finding goes to ``log``."""
    meaning = read_meaning(path, bands)
    below, transform, messages = adapt_preprocessing(meaning, options.get("below", "half"),
                                                     options.get("transform", "log10"))
    for message in messages:
        log(message)
    return {**options, "below": below, "transform": transform, "input_transform": recorded_transform(meaning)}


def check_raster_for_model(path, bands, prep, log):
    """Log what the raster's bands hold and refuse when ``prep`` (the model's preprocessing, with ``below`` and
    ``transform``) would repeat a step on them."""
    meaning = read_meaning(path, bands)
    log(describe(meaning))
    check_model_input(meaning, prep.below, prep.transform)
    check_input_transform(prep.input_transform, meaning)


#: How far the typical element's centre over a raster may lie from the model's training centre, in the model's own
#: standard units, before the raster is refused (beyond :data:`FAR_FROM_TRAINING`) or warned of (beyond
#: :data:`ODD_FROM_TRAINING`); and by what factor its spread (in those units, by the scaling's own statistics) may
#: differ from the training values' (:data:`SPREAD_FACTOR_FAR`, :data:`SPREAD_FACTOR_ODD`). Concentrations given to
#: a model trained on log10 grids lie tens to hundreds of units away and spread tens of times wider; log10 values
#: given to a model trained on concentrations lie nearer its centre but spread narrower. Another survey of similar
#: rocks differs by a few units and a factor of two or three at most.
FAR_FROM_TRAINING = 8.0
ODD_FROM_TRAINING = 4.0
SPREAD_FACTOR_FAR = 8.0
SPREAD_FACTOR_ODD = 4.0


def raster_sample(path, bands, nodata=None, size=64):
    """``(pixels, len(bands))`` float64 values of five small windows of ``bands`` (1-based) of the raster at
    ``path``, its nodata and ``nodata`` as NaN, GDAL's band scale/offset applied (as the block readers apply it)."""
    from ..engine.raster import open_raster, sample_windows

    with open_raster(path, "raster") as ds:
        values = sample_windows(ds, [int(b) for b in bands], size).astype(np.float64).T
        for j, b in enumerate(bands):
            for missing in (ds.nodatavals[int(b) - 1], nodata):
                if missing is not None and np.isfinite(missing):
                    values[values[:, j] == missing, j] = np.nan
            gain, bias = ds.scales[int(b) - 1], ds.offsets[int(b) - 1]
            values[:, j] = values[:, j] * (1.0 if gain is None else gain) + (0.0 if bias is None else bias)
    values[~np.isfinite(values)] = np.nan
    return values


def check_training_range(z, names, log, robust=True, samples=False):
    """Refuse (or warn of, through ``log``) a raster (or, with ``samples``, sample points) whose values, scaled by the model's own scaling (``z``: pixels x
    elements), lie far from the values the model was trained on, or spread far wider or narrower: a grid of
    concentrations given to a model trained on log10 grids (or the reverse, or other units) scores every pixel at
    one end of the scale. The raster is measured with the statistics the scaling was fitted with: median and
    interquartile range for a robust scaler (``robust``), mean and standard deviation for a z-score (the robust
    spread of a heavy-tailed concentration grid is a small fraction of its standard deviation, which refused a model
    its own training grid). Decided on the typical element (the median over elements), so one element of another
    range does not decide; the raster's metadata may say nothing (older OreMap models and grids made elsewhere
    record no transform)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or not z.size:
        return
    centres, spreads = [], []
    for col in z.T:
        col = col[np.isfinite(col)]
        if col.size < 10:
            centres.append(np.nan)
            spreads.append(np.nan)
            continue
        if robust:
            q25, q50, q75 = np.percentile(col, [25, 50, 75])
            centre, spread = q50, (q75 - q25) / 1.349
        else:
            centre, spread = float(np.mean(col)), float(np.std(col))
        centres.append(centre)
        spreads.append(spread if spread > 0 else np.nan)
    centres, spreads = np.array(centres), np.array(spreads)
    if not np.isfinite(centres).any():
        return
    typical = float(np.median(np.abs(centres[np.isfinite(centres)])))
    factors = np.abs(np.log10(spreads[np.isfinite(spreads)]))
    factor = float(10.0 ** np.median(factors)) if factors.size else 1.0
    listing = ", ".join(f"{n} {m:+.1f} (spread x {p:.2g})" for n, m, p in zip(names, centres, spreads)
                        if np.isfinite(m))
    statistic = "medians" if robust else "means"
    where = (f"the elements' {statistic} lie {typical:.1f} of the model's standard units from its training centre, "
             f"and their spread differs from the training values' by a factor of {factor:.1f} ({listing})")
    if samples:
        whose, cause, parameter = ("The samples' values", "the samples hold", "values")
        fix = ("Score samples with a model trained on samples of the same units (or on grids of concentrations, not "
               "log10), or train a model on these samples.")
        check = "check that they hold the units the model was trained on."
    else:
        whose, cause, parameter = ("The raster's values", "the raster holds", "raster")
        fix = ("Grid the elements as the training raster was (oremap:idw_interpolate with LOG10 as then, the same "
               "units), or train a model on this raster.")
        check = "check that the grid was made as the training raster was."
    if typical > FAR_FROM_TRAINING or factor > SPREAD_FACTOR_FAR:
        raise OreMapError(f"{whose} are unlike those the model was trained on: {where}. The scores would be "
                          f"meaningless: most likely {cause} concentrations where the model was trained on log10 "
                          "grids (or the reverse), or other units.", parameter, fix)
    if typical > ODD_FROM_TRAINING or factor > SPREAD_FACTOR_ODD:
        log(f"{whose} lie well away from those the model was trained on: {where}. The scores may sit at one end of "
            f"the scale: {check}")
