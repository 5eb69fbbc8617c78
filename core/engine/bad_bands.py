"""Bad bands of a hyperspectral image, found from its wavelengths and from the scene itself.

Airborne and spaceborne reflectance (and radiance) is unusable in the atmospheric
water-vapour windows, at detector edges where atmospheric correction leaves negative
values, in bands a format fills with a constant, and in bands whose noise stands far
above that of their neighbours. ENVI headers flag such bands in a ``bbl`` list; a
GeoTIFF copy of the same image carries none. :func:`detect_bad_bands` finds them
without a ``bbl`` (and adds to one when there is):

1. ``bbl``: bands the raster's ENVI ``bbl`` flags (0);
2. ``water``: band centres inside :data:`WATER_WINDOWS` (only with wavelengths);
3. ``constant``: bands with one value over the sampled pixels, or missing (nodata,
   NaN) in most pixels where the other bands are valid;
4. ``negative``: bands whose scene median is below zero while nearly every band's is
   positive (reflectance and radiance are not negative);
5. ``noisy``: bands whose band-to-band noise is more than ``noise_factor`` times that
   of their neighbours. The noise of band ``b`` is the robust spread (1.4826 x median
   absolute deviation) over the sampled pixels of the band's departure from the
   straight line between its two good neighbours, divided by the spread the same
   estimator gives for white noise of unit variance (sqrt(1.5)); the neighbours' level
   is the median of that noise over the ``window`` good bands on either side. Neighbours
   are neighbours in wavelength, whatever the order of the bands in the file.

The user's choice (:func:`parse_bad_bands`) can switch the detection off, keep
bands it dropped and add bands. The result lists every dropped band with its
reason, so the log can say what was left out.
"""

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import OreMapError
from .feedback import ensure

#: Water-vapour windows (nm) of airborne and spaceborne reflectance: the 1.4 and 1.9 um bands, as the
#: AVIRIS-NG reflectance products flag them in their ``bbl`` (1348-1428 and 1779-1949 nm); AVIRIS
#: Jasper Ridge's published band selection drops 1.33-1.37 and 1.79-1.90 um within them.
WATER_WINDOWS = ((1345.0, 1430.0), (1775.0, 1950.0))

#: A band whose noise exceeds this many times the median noise of its neighbours is dropped.
NOISE_FACTOR = 6.0
#: Good bands on either side that make a band's neighbourhood.
NOISE_WINDOW = 10
#: Most pixels read for the scene statistics (small windows spread over the scene).
SAMPLE_PIXELS = 20000

REASONS = {
    "bbl": "flagged in the raster's bad-band list (bbl)",
    "overlap": "at the edges of overlapping detectors, or repeating a centre",
    "water": "atmospheric water-vapour window",
    "constant": "constant or missing in most pixels",
    "negative": "negative scene median",
    "noisy": "band-to-band noise far above its neighbours'",
    "user": "dropped by the bad-band parameter",
}

_WHITE_NOISE_MAD = np.sqrt(1.5)  # std of x_b - (x_{b-1} + x_{b+1}) / 2 for unit white noise


@dataclass
class BadBandChoice:
    """What the user asked: automatic detection on or off, bands to keep and bands to drop.

    ``keep`` and ``drop`` hold ``(kind, lo, hi)`` with ``kind`` ``"nm"`` (inclusive wavelength range)
    or ``"band"`` (inclusive 1-based band numbers).
    """

    auto: bool = True
    keep: list = field(default_factory=list)
    drop: list = field(default_factory=list)

    def describe(self):
        parts = ["automatic detection " + ("on" if self.auto else "off")]
        for word, ranges in (("keep", self.keep), ("drop", self.drop)):
            for kind, lo, hi in ranges:
                unit = " nm" if kind == "nm" else ""
                what = "bands " if kind == "band" else ""
                parts.append(f"{word} {what}{lo:g}" + (f"-{hi:g}" if hi != lo else "") + unit)
        return "; ".join(parts)


_FIX = ("Write e.g. 'keep 381-401 nm; drop 2450-2510 nm; drop bands 1-5', or 'off' to drop only the bands of the "
        "raster's bbl; leave empty for automatic detection.")


def parse_bad_bands(text):
    """The user's bad-band choice from text; ``None`` or empty text means automatic detection.

    Entries are separated by ``;`` or new lines: ``off`` (or ``none``) switches the automatic
    detection off, ``keep <range>`` keeps bands, ``drop <range>`` (or a bare range) drops them. A
    range is ``a-b`` or one value, in nm (``1340-1450 nm``; ``um`` is accepted) or as band numbers
    (``bands 1-5``, ``band 12``).
    """
    if isinstance(text, BadBandChoice):
        return text
    choice = BadBandChoice()
    if text is None or not str(text).strip() or str(text).strip().lower() == "auto":
        return choice
    for entry in re.split(r"[;\n]+", str(text)):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry in ("off", "none", "bbl", "bbl only"):
            choice.auto = False
            continue
        if entry == "auto":
            continue
        match = re.fullmatch(r"(keep|drop|add)?\s*(bands?|b)?\s*([0-9.]+)\s*(?:-\s*([0-9.]+))?\s*(nm|um|µm)?",
                             entry)
        if match is None:
            raise OreMapError(f"Cannot read the bad-band entry '{entry}'.", "bad_bands", _FIX)
        verb, is_band, lo, hi, unit = match.groups()
        try:
            lo = float(lo)
            hi = float(hi) if hi is not None else lo
        except ValueError:
            raise OreMapError(f"Cannot read the numbers of the bad-band entry '{entry}'.", "bad_bands", _FIX) from None
        if hi < lo:
            lo, hi = hi, lo
        if is_band:
            if unit or lo != int(lo) or hi != int(hi) or lo < 1:
                raise OreMapError(f"Band numbers in '{entry}' must be whole numbers from 1.", "bad_bands", _FIX)
            kind = "band"
        elif unit is None:
            raise OreMapError(f"'{entry}' names neither nm nor band numbers.", "bad_bands", _FIX)
        else:
            kind = "nm"
            if unit in ("um", "µm"):
                lo, hi = lo * 1000.0, hi * 1000.0
        (choice.keep if verb == "keep" else choice.drop).append((kind, lo, hi))
    return choice


#: A wavelength range takes the bands whose centres round into it (the log gives centres to the nanometre).
NM_SLACK = 0.5


def _in_ranges(ranges, centers, n_bands, word="drop"):
    """Boolean mask of the bands inside any of ``ranges`` (see :class:`BadBandChoice`; ``word``: 'drop' or 'keep',
    for the message). A wavelength range wholly outside the raster's bands is refused: it names none of them (a
    range in micrometres written with 'um' where nm was meant, another sensor's range) and was silently a no-op."""
    mask = np.zeros(n_bands, dtype=bool)
    numbers = np.arange(1, n_bands + 1)
    finite = None if centers is None else np.asarray(centers, dtype=np.float64)
    finite = None if finite is None else finite[np.isfinite(finite)]
    for kind, lo, hi in ranges:
        if kind == "band":
            if hi > n_bands:
                raise OreMapError(f"Band {hi:g} was named, but the raster has {n_bands} bands.", "bad_bands",
                                  f"Use band numbers from 1 to {n_bands}.")
            mask |= (numbers >= lo) & (numbers <= hi)
        elif centers is None:
            raise OreMapError("Bad bands were given in nm, but the raster's wavelengths are unknown.", "bad_bands",
                              "Give band numbers ('bands 1-5'), or the wavelengths of the raster.")
        else:  # half a nanometre of slack: the log shows centres to the nanometre (401.39 nm as "401 nm")
            inside = (centers >= lo - NM_SLACK) & (centers < hi + NM_SLACK)
            if not inside.any() and finite.size and (hi + NM_SLACK < finite.min() or lo - NM_SLACK > finite.max()):
                raise OreMapError(f"'{word} {lo:.10g}-{hi:.10g} nm' lies outside the raster's bands "
                                  f"({finite.min():.10g}-{finite.max():.10g} nm), so it names none of them.",
                                  "bad_bands",
                                  "Give the range in nanometres within the raster's (micrometres are written "
                                  "with 'um': 'drop 2.45-2.51 um'), or band numbers ('drop bands 1-5').")
            mask |= inside
    return mask


@dataclass
class BadBands:
    """Result of :func:`detect_bad_bands`: ``bad`` (bool per band) and ``reason`` (key of :data:`REASONS`
    per bad band, ``""`` for good ones); ``kept`` marks bands the user kept although a rule dropped them;
    ``n_pixels``: pixels the scene statistics used."""

    bad: np.ndarray
    reason: list
    kept: np.ndarray
    n_pixels: int = 0

    @property
    def good(self):
        return ~self.bad

    def summary(self, centers=None):
        """One line per reason: the dropped bands as ranges of band numbers (and nm when known)."""
        lines = []
        for key, text in REASONS.items():
            index = [i for i, r in enumerate(self.reason) if r == key]
            if index:
                lines.append(f"{len(index)} bands {text}: {_ranges(index, centers)}")
        if self.kept.any():
            lines.append(f"{int(self.kept.sum())} bands kept by the bad-band parameter: "
                         f"{_ranges(np.flatnonzero(self.kept).tolist(), centers)}")
        return lines


def _ranges(index, centers):
    """``"1-7 (346-376 nm), 201-217 (...)"`` for 0-based band indexes."""
    runs, start = [], index[0]
    for a, b in zip(index, index[1:] + [None]):
        if b != a + 1:
            runs.append((start, a))
            start = b
    parts = []
    for a, b in runs:
        text = f"{a + 1}" if a == b else f"{a + 1}-{b + 1}"
        if centers is not None:
            run = centers[a:b + 1]   # overlapping detectors list centres out of order: the run's span
            text += f" ({centers[a]:.0f} nm)" if a == b else f" ({min(run):.0f}-{max(run):.0f} nm)"
        parts.append(text)
    return ", ".join(parts)


def sample_scene(source, max_pixels=SAMPLE_PIXELS, size=32):
    """Pixels of a scene for band statistics: small full-resolution windows on a regular grid.

    ``source`` is a :class:`core.engine.raster.RasterSource`; returns ``(n, n_bands)`` float64 values
    with NaN where a band is nodata or not finite (bands on their own, see ``read_nan``). Small windows,
    not a decimated read, so a tiled, pixel-interleaved raster is not decompressed whole.
    """
    from rasterio.windows import Window

    h, w = min(size, source.height), min(size, source.width)
    per_window = h * w
    n_windows = max(1, min(max_pixels // max(per_window, 1), (source.height // h) * (source.width // w)))
    side = int(np.ceil(np.sqrt(n_windows)))
    rows = np.unique(np.linspace(0, source.height - h, side).round().astype(int))
    cols = np.unique(np.linspace(0, source.width - w, side).round().astype(int))
    out = np.empty((min(max_pixels, rows.size * cols.size * per_window), source.n_bands))  # filled in place
    n = 0
    for r in rows:
        for c in cols:
            block = source.read_nan(Window(int(c), int(r), w, h)).reshape(-1, source.n_bands)
            take = min(block.shape[0], out.shape[0] - n)
            out[n:n + take] = block[:take]
            n += take
            if n >= max_pixels:
                break
        else:
            continue
        break
    return out[:n]


def _by_wavelength(usable, centers):
    """Indexes of the ``usable`` bands in wavelength order (file order without ``centers``): a band's neighbours
    are the bands next to it in wavelength, whatever the file order (bands stored b1, b10, b100, ..., b2)."""
    idx = np.flatnonzero(usable)
    if centers is None:
        return idx
    return idx[np.argsort(np.asarray(centers, np.float64)[idx], kind="stable")]


def band_noise(values, centers=None, usable=None):
    """Robust band-to-band noise of each band, in the units of ``values`` (NaN where not estimable).

    ``values``: (n_pixels, n_bands), NaN for missing. Only ``usable`` bands (all by default) take part,
    as the band and as neighbours: band ``b``'s residual is its departure from the straight line (by
    wavelength, or band number) between the nearest usable bands below and above it; its noise is
    1.4826 x the median absolute deviation of that residual over the pixels, over sqrt(1.5) (the value
    for white noise of unit variance at even spacing). The first and last usable bands use the two
    usable bands next to them. Bands in any order: below and above are in wavelength.
    """
    values = np.asarray(values, dtype=np.float64)
    n_bands = values.shape[1]
    usable = np.ones(n_bands, bool) if usable is None else np.asarray(usable, bool)
    axis = np.arange(n_bands, dtype=np.float64) if centers is None else np.asarray(centers, np.float64)
    idx = _by_wavelength(usable, centers)
    noise = np.full(n_bands, np.nan)
    if idx.size < 3:
        return noise
    for k, b in enumerate(idx):
        a, c = (idx[1], idx[2]) if k == 0 else ((idx[-3], idx[-2]) if k == idx.size - 1 else (idx[k - 1], idx[k + 1]))
        t = (axis[b] - axis[a]) / (axis[c] - axis[a]) if axis[c] != axis[a] else 0.5
        residual = values[:, b] - ((1.0 - t) * values[:, a] + t * values[:, c])
        residual = residual[np.isfinite(residual)]
        if residual.size >= 5:
            mad = np.median(np.abs(residual - np.median(residual)))
            noise[b] = 1.4826 * mad / _WHITE_NOISE_MAD
    return noise


#: Correlation, over the pixels, of a band's residual with its neighbours' above which the residual is an
#: absorption feature that varies from pixel to pixel (a mineral present in some pixels), not noise.
FEATURE_CORRELATION = 0.3

#: Share of a band's residual variance that the residuals of the bands 2-6 places away explain, above which the
#: residual is structure shared with other bands (an absorption feature), not the band's own noise (white noise
#: alone: about 0.17).
FEATURE_EXPLAINED = 0.8


def _residuals(values, axis, idx, k):
    """Departure of usable band ``idx[k]`` from the straight line between its usable neighbours."""
    a, c = (idx[1], idx[2]) if k == 0 else ((idx[-3], idx[-2]) if k == idx.size - 1 else (idx[k - 1], idx[k + 1]))
    b = idx[k]
    t = (axis[b] - axis[a]) / (axis[c] - axis[a]) if axis[c] != axis[a] else 0.5
    return values[:, b] - ((1.0 - t) * values[:, a] + t * values[:, c])


def _feature_like(values, centers, idx, k):
    """True when band ``idx[k]``'s residual is structure shared with other bands, not noise of its own.

    Two tests, either suffices. (1) The residual rises and falls with its neighbours' from pixel to pixel: white
    noise makes the residuals of adjacent bands anti-correlated (about -0.67: each band enters its neighbour's
    line); an absorption feature that some pixels have and others lack (calcite at 2340 nm, kaolinite at 2165 nm)
    makes them move together. (2) The residual is explained (R^2 >= :data:`FEATURE_EXPLAINED`) by a linear fit on
    the residuals of the bands 2-6 places away: noise of one band is not (R^2 about 0.17), the mineral features
    of a scene are, whatever their shape (in a finely sampled doublet, Al-OH at 2160-2210 nm of a low-noise
    scene, the curvature makes neighbouring residuals anti-correlated, and test 1 alone took the feature for
    noise). Such a band is kept
    however large its spread: it carries the mineral, and dropping it would blind every map to that mineral.
    """
    if idx.size < 5 or k < 1 or k > idx.size - 2:
        return False
    axis = np.arange(values.shape[1], dtype=np.float64) if centers is None else np.asarray(centers, np.float64)
    own = _residuals(values, axis, idx, k)
    correlations = []
    for j in (k - 1, k + 1):
        if 1 <= j <= idx.size - 2:
            other = _residuals(values, axis, idx, j)
            ok = np.isfinite(own) & np.isfinite(other)
            if ok.sum() >= 5 and np.std(own[ok]) > 0 and np.std(other[ok]) > 0:
                correlations.append(np.corrcoef(own[ok], other[ok])[0, 1])
    if correlations and float(np.mean(correlations)) > FEATURE_CORRELATION:
        return True
    return _explained(own, [_residuals(values, axis, idx, j) for j in (*range(k - 6, k - 1), *range(k + 2, k + 7))
                            if 1 <= j <= idx.size - 2]) >= FEATURE_EXPLAINED


def _explained(own, others):
    """R^2 of a least-squares fit of ``own`` on ``others`` over the pixels where all are finite (0 when too few)."""
    if len(others) < 4:
        return 0.0
    X = np.column_stack(others)
    ok = np.isfinite(own) & np.isfinite(X).all(axis=1)
    if ok.sum() < 5 * X.shape[1]:
        return 0.0
    y = own[ok] - own[ok].mean()
    X = X[ok] - X[ok].mean(axis=0)
    total = float((y ** 2).sum())
    if total <= 0:
        return 0.0
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    return 1.0 - float(((y - X @ coef) ** 2).sum()) / total


def _noisy(values, centers, usable, factor, window, max_rounds=50):
    """Bands whose noise exceeds ``factor`` x the median noise of ``window`` usable neighbours each side.

    A noisy band also raises the residual of the bands next to it (it is their neighbour), so each round
    flags only the bands whose excess is the largest among their usable neighbours, and the noise is
    estimated again without them.
    """
    usable = usable.copy()
    flagged = np.zeros(usable.size, bool)
    for _ in range(max_rounds):
        noise = band_noise(values, centers, usable)
        idx = _by_wavelength(usable & np.isfinite(noise), centers)   # neighbours in wavelength
        ratio = np.zeros(usable.size)
        for k, b in enumerate(idx):
            neighbours = np.concatenate((idx[max(0, k - window):k], idx[k + 1:k + 1 + window]))
            level = np.median(noise[neighbours]) if neighbours.size else np.nan
            if np.isfinite(level):
                ratio[b] = noise[b] / max(level, 1e-12)
        worst = [b for k, b in enumerate(idx) if ratio[b] > factor
                 and ratio[b] >= max(ratio[idx[max(k - 1, 0)]], ratio[idx[min(k + 1, idx.size - 1)]])
                 and not _feature_like(values, centers, idx, k)]
        if not worst:
            break
        flagged[worst] = True
        usable[worst] = False
    return flagged


def detect_bad_bands(values, centers=None, bbl=None, choice=None, noise_factor=NOISE_FACTOR,
                     window=NOISE_WINDOW, overlap=None):
    """Bad bands of a scene from a sample of its pixels (see the module docstring for the rules).

    Parameters
    ----------
    values : array-like of shape (n_pixels, n_bands)
        Sampled pixel spectra (:func:`sample_scene`), NaN where a band is missing; pixels missing in
        every band, and fill pixels with one value in every band (outside a scene's footprint), are
        ignored.
    centers : array-like of shape (n_bands,), optional
        Band centres in nm: the water-vapour windows and ranges in nm need them.
    bbl : array-like of bool of shape (n_bands,), optional
        ``True`` for bands the raster's metadata flags bad.
    overlap : array-like of bool of shape (n_bands,), optional
        ``True`` for the edge bands of overlapping detectors and repeated centres
        (:func:`core.engine.band_order.flag_overlaps`).
    choice : BadBandChoice or str, optional
        The user's choice (:func:`parse_bad_bands`); automatic detection by default.

    Returns
    -------
    BadBands
    """
    choice = parse_bad_bands(choice)
    values = np.asarray(values, dtype=np.float64)
    n_bands = values.shape[1]
    centers = None if centers is None else np.asarray(centers, dtype=np.float64).reshape(-1)
    reason = [""] * n_bands

    def flag(mask, key):
        for i in np.flatnonzero(mask):
            if not reason[i]:
                reason[i] = key

    if bbl is not None:
        flag(np.asarray(bbl, bool), "bbl")
    if overlap is not None:
        flag(np.asarray(overlap, bool), "overlap")
    with np.errstate(invalid="ignore"):  # pixels with a value, less fill outside a footprint (one value in all bands)
        keep = np.isfinite(values).any(axis=1)
        if keep.any():
            keep[keep] = ~(np.nanmax(values[keep], axis=1) == np.nanmin(values[keep], axis=1))
        pixels = values[keep]  # one copy (the sample's memory: bench/bench_rss.py)
    if choice.auto:
        if centers is not None:
            flag(np.any([(centers >= lo) & (centers <= hi) for lo, hi in WATER_WINDOWS], axis=0), "water")
        if pixels.shape[0]:
            finite = np.isfinite(pixels)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN band: its spread is NaN, said below
                spread = np.nanmax(pixels, axis=0) - np.nanmin(pixels, axis=0) if finite.any() else None
            if finite.any():  # nanmedian of |pixels|, with one copy of the values instead of three
                magnitudes = pixels[~np.isnan(pixels)]
                np.abs(magnitudes, out=magnitudes)
                level = np.median(magnitudes, overwrite_input=True) if magnitudes.size else np.nan
                del magnitudes
            else:
                level = 0.0
            missing = np.count_nonzero(finite, axis=0) / pixels.shape[0] < 0.5
            constant = ~missing & ~(spread > 1e-9 * max(level, 1e-30)) if pixels.shape[0] > 1 else np.zeros(
                n_bands, bool)
            flag(missing | constant, "constant")
            usable = np.array([not r for r in reason])
            with np.errstate(invalid="ignore"):
                median = np.full(n_bands, np.nan)
                for b in range(n_bands) if finite.any() else ():  # band by band: no copy of the sample
                    column = pixels[finite[:, b], b]
                    if column.size:
                        median[b] = np.median(column, overwrite_input=True)
            if usable.any() and np.mean(median[usable] > 0) >= 0.8:
                flag(usable & (median < 0), "negative")
            usable = np.array([not r for r in reason])
            valid_rows = finite[:, usable].all(axis=1) if usable.any() else np.zeros(0, bool)
            if valid_rows.sum() >= 5:
                rows = pixels if valid_rows.all() else pixels[valid_rows]  # no copy when every row is whole
                flag(_noisy(rows, centers, usable, noise_factor, window), "noisy")
    user_drop = _in_ranges(choice.drop, centers, n_bands, "drop")
    user_keep = _in_ranges(choice.keep, centers, n_bands, "keep")
    for i in np.flatnonzero(user_drop & ~user_keep):  # the user's word wins over the scene's own reason
        reason[i] = "user"
    kept = np.array([bool(r) for r in reason]) & user_keep
    for i in np.flatnonzero(kept):
        reason[i] = ""
    bad = np.array([bool(r) for r in reason])
    return BadBands(bad=bad, reason=reason, kept=kept, n_pixels=int(pixels.shape[0]))


def scene_bad_bands(path, centers=None, bbl=None, choice=None, nodata=None, scale=None, feedback=None,
                    max_pixels=SAMPLE_PIXELS, overlap=None):
    """:func:`detect_bad_bands` on a sample of the raster at ``path``; logs what it dropped.

    Reads at most ``max_pixels`` pixels in small windows spread over the scene (masking and scaling as
    the block engine does). Returns :class:`BadBands`.
    """
    from .raster import RasterSource

    feedback = ensure(feedback)
    choice = parse_bad_bands(choice)
    if choice.auto:
        with RasterSource(path, nodata=nodata, scale=scale) as source:
            values = sample_scene(source, max_pixels)
    else:
        from .raster import open_raster, spectral_count

        with open_raster(path) as ds:
            values = np.zeros((0, spectral_count(ds)))   # an alpha band is a mask, not a band
    found = detect_bad_bands(values, centers, bbl, choice, overlap=overlap)
    n_bad = int(found.bad.sum())
    how = f"from {found.n_pixels} sampled pixels; {choice.describe()}" if choice.auto else choice.describe()
    feedback.info(f"Bad bands: {n_bad} of {found.bad.size} left out ({how}).")
    for line in found.summary(centers):
        feedback.info("  " + line)
    if n_bad == found.bad.size:
        raise OreMapError("Every band of the raster is flagged bad.", "bad_bands",
                          "Keep bands with the bad-band parameter ('keep 400-2400 nm'), or switch the automatic "
                          "detection off ('off').")
    return found
