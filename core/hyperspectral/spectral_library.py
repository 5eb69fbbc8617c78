"""Spectral libraries: reading, writing, selecting, resampling, sampling.

A :class:`SpectralLibrary` holds named reflectance spectra on a common set of
wavelengths in nanometres, NaN marking missing values. Libraries come from

* ENVI spectral library files (``.sli``/``.esl`` with a ``.hdr``), such as the
  USGS splib07 convolved libraries (:func:`read_library`);
* CSV tables with a wavelength column and one column per spectrum;
* one-spectrum files of spectrometers and published libraries (ECOSTRESS/ASTER, USGS splib07 ASCII, ASD text
  exports, Spectral Evolution ``.sed``, Spectra Vista ``.sig``; :mod:`.spectrometer_files`);
* pixels of a raster at given points (:func:`library_from_points`).

They are written back with :func:`write_envi_library` and
:func:`write_csv_library`.
"""

import csv
import difflib
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..engine.envi_header import parse_envi_header
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.files import decode_text
from ..engine.raster import ABSURD_VALUE
from ..engine.names import match_name, name_key
from ..engine.wavelengths import nanometres_per_unit, resample_spectra
from .spectrometer_files import (SPECTROMETER_SUFFIXES, WAVELENGTH_WORDS, header_unit, header_words, kind_of_text,
                                 names_wavelengths, read_headed_text, read_splib_ascii, refuse_binary_asd,
                                 refuse_wavenumbers)

#: Record names (lower case, single spaces) of ENVI library rows that are not
#: spectra: USGS error-bar rows and wavelength / bandpass records.
AUXILIARY_PREFIXES = ("error bars", "wavelengths in", "resolution in", "bandpass")

#: Values whose magnitude exceeds this are not reflectances; they are treated
#: as missing. In the USGS splib07 AVIRIS-convolved library such values (for
#: example -1.68e25, the -1.23e34 "deleted point" marker smeared by the
#: convolution) occur in the "error bars" records, which are dropped anyway.
ABSURD_MAGNITUDE = ABSURD_VALUE

#: Value written for missing data by :func:`write_envi_library` (the USGS
#: convention) and declared as the header's ``data ignore value``.
ENVI_IGNORE_VALUE = -1.23e34

# ENVI "data type" codes -> numpy type (byte order applied later).
_ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
# Header fields kept as text rather than split into a list.


@dataclass
class SpectralLibrary:
    """Named spectra on a common wavelength axis.

    Parameters
    ----------
    names : list of str
        One name per spectrum.
    spectra : ndarray of shape (n_spectra, n_wavelengths)
        Reflectance values, float64; NaN marks missing values.
    wavelengths : ndarray of shape (n_wavelengths,)
        Wavelengths in nanometres, increasing for libraries read from files;
        band centres in band order after :meth:`resample`.
    fwhm : ndarray of shape (n_wavelengths,), optional
        Spectral resolution (nm) of each channel, ``None`` when unknown.
    source : str
        Where the spectra came from, for logs and reports.
    n_dropped : int
        Auxiliary records (error bars, wavelength and bandpass records)
        dropped when reading the file.
    wavelengths_known : bool
        ``False`` when ``wavelengths`` are band numbers because the raster
        the spectra were sampled from carries no wavelengths
        (:func:`library_from_points`); such a library cannot be resampled.
    n_points : ndarray of int of shape (n_spectra,), optional
        Number of points averaged into each spectrum
        (:func:`library_from_points`); ``None`` for file libraries.
    """

    names: list
    spectra: np.ndarray
    wavelengths: np.ndarray
    fwhm: np.ndarray = None
    source: str = ""
    n_dropped: int = 0
    wavelengths_known: bool = True
    n_points: np.ndarray = None

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        self.spectra = np.atleast_2d(np.asarray(self.spectra, dtype=np.float64))
        self.wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
        if self.fwhm is not None:
            self.fwhm = np.asarray(self.fwhm, dtype=np.float64).reshape(-1)
        if self.n_points is not None:
            self.n_points = np.asarray(self.n_points, dtype=np.int64).reshape(-1)
        n, m = self.spectra.shape
        if len(self.names) != n or self.wavelengths.size != m:
            raise OreMapError(
                f"The library has {n} spectra of {m} values but {len(self.names)} names "
                f"and {self.wavelengths.size} wavelengths.",
                parameter="library",
            )
        if self.fwhm is not None and self.fwhm.size != m:
            raise OreMapError(f"The library has {m} wavelengths but {self.fwhm.size} FWHM values.", parameter="library")

    @property
    def n_spectra(self):
        """Number of spectra."""
        return len(self.names)

    # -- selection -----------------------------------------------------------

    def take(self, rows):
        """The spectra at ``rows`` (indices), in that order."""
        return replace(
            self,
            names=[self.names[i] for i in rows],
            spectra=self.spectra[rows].copy(),
            wavelengths=self.wavelengths.copy(),
            fwhm=None if self.fwhm is None else self.fwhm.copy(),
            n_points=None if self.n_points is None else self.n_points[rows].copy(),
        )

    def subset(self, names):
        """Select spectra by name, in the order given.

        Each requested name is matched, in this order, by: exact name; the
        same name ignoring case and repeated spaces; a unique name starting
        with it; a unique name containing it. The first rule with any match
        decides, so ``"Kaolinite"`` is ambiguous when several names start
        with it.

        Parameters
        ----------
        names : str or list of str
            Requested names.

        Returns
        -------
        SpectralLibrary
            The selected spectra.

        Raises
        ------
        OreMapError
            ``parameter="spectra"`` naming every unknown or ambiguous name,
            with up to 5 close library names for each, or when two requested
            names select the same spectrum.
        """
        if isinstance(names, str):
            names = [names]
        keys = [name_key(n) for n in self.names]
        rows, problems = [], []
        for wanted in names:
            found, candidates = match_name(str(wanted), self.names, keys)
            if found is not None:
                rows.append(found)
            elif candidates and len({self.names[i] for i in candidates}) == 1:
                raise OreMapError(
                    f"'{wanted}' names {len(candidates)} spectra of the library that share the name "
                    f"'{self.names[candidates[0]]}'.", parameter="library",
                    fix="Rename the spectra in the library so every name is unique (e.g. add the sample code).")
            elif candidates:
                shown = _listing([f"'{self.names[i]}'" for i in candidates])
                problems.append(f"'{wanted}' matches {len(candidates)} spectra: {shown}")
            else:
                close = _close_names(str(wanted), self.names, keys)
                hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
                problems.append(f"'{wanted}' is not in the library{hint}")
        if problems:
            raise OreMapError(
                "Cannot select spectra: " + "; ".join(problems) + ".",
                parameter="spectra",
                fix="Use names as listed in the library; a unique start of a name is enough.",
            )
        if not rows:
            raise OreMapError("No spectra were requested.", parameter="spectra")
        twice = _duplicates(self.names[i] for i in rows)
        if twice:
            raise OreMapError(
                f"The same spectrum was requested more than once: {_listing([repr(t) for t in twice], 10)}.",
                parameter="spectra",
                fix="List each spectrum once.",
            )
        return self.take(rows)

    def check_unique_names(self):
        """Raise if two spectra share a name.

        Raises
        ------
        OreMapError
            ``parameter="library"`` naming the duplicated names.
        """
        dupes = _duplicates(self.names)
        if dupes:
            raise OreMapError(
                f"The library has duplicate spectrum names: {_listing([f'{d!r}' for d in dupes], 10)}.",
                parameter="library",
                fix="Rename the spectra so every name is unique.",
            )

    # -- resampling ----------------------------------------------------------

    def resample(self, band_info):
        """Resample the spectra to the bands of a sensor.

        Parameters
        ----------
        band_info : BandInfo
            Target bands. The library's own ``fwhm``, when known, is passed
            as the source resolution (see
            :func:`~core.engine.wavelengths.resample_spectra`).

        Returns
        -------
        SpectralLibrary
            Spectra at ``band_info.centers`` with ``fwhm = band_info.fwhm``;
            NaN for bands the library does not cover.

        Raises
        ------
        OreMapError
            ``parameter="wavelengths"`` when this library has band numbers
            instead of wavelengths.
        """
        if not self.wavelengths_known:
            raise OreMapError(
                "The spectra have band numbers, not wavelengths, so they cannot be resampled.",
                parameter="wavelengths",
                fix="Sample the endmembers from a raster that has band wavelengths in its metadata.",
            )
        spectra = resample_spectra(self.spectra, self.wavelengths, band_info, src_fwhm=self.fwhm)
        return replace(
            self,
            names=list(self.names),
            spectra=spectra,
            wavelengths=band_info.centers.copy(),
            fwhm=None if band_info.fwhm is None else band_info.fwhm.copy(),
            source=f"{self.source}, resampled to {band_info.n_bands} bands",
            n_points=None if self.n_points is None else self.n_points.copy(),
        )


def _duplicates(items):
    """Items occurring more than once, in order of first appearance."""
    seen, dupes = set(), []
    for item in items:
        if item in seen and item not in dupes:
            dupes.append(item)
        seen.add(item)
    return dupes


def _listing(shown, limit=5):
    """``"a, b, c and 4 more"``: the first ``limit`` texts of ``shown``."""
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _close_names(wanted, names, keys, limit=5):
    """Up to ``limit`` library names resembling ``wanted`` (best first)."""
    key = name_key(wanted)
    if not key:
        return []
    scores = []
    for name, k in zip(names, keys):
        # Compare with the whole name and with its start, so a short query
        # like "kaolinte" still finds "Kaolinite CM9 ...".
        score = max(
            difflib.SequenceMatcher(None, key, k).ratio(),
            difflib.SequenceMatcher(None, key, k[: len(key)]).ratio(),
        )
        if score >= 0.6:
            scores.append((-score, name))
    return [name for _, name in sorted(scores)[:limit]]


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _as_fraction(library, path, feedback):
    """``library`` with reflectance in per cent (99 % of values up to 150) or x 10000 (up to 15000) divided to 0-1,
    and the log told so: SAM does not care, but strict unmixing and a CNN without continuum removal do."""
    values = library.spectra[np.isfinite(library.spectra)]
    if not values.size:
        return library
    high = float(np.percentile(np.abs(values), 99))
    for limit, divisor, what in ((150.0, 100.0, "per cent"), (15000.0, 10000.0, "reflectance x 10000")):
        if 1.5 < high <= limit:   # with room for bright targets over 100 % (an imperfect panel)
            ensure(feedback).info(f"Spectral library '{Path(path).name}': 99 % of its values lie below {high:.4g}, "
                                  f"read as {what}: divided by {divisor:g} to reflectance of 0-1.")
            return replace(library, spectra=library.spectra / divisor)
    return library


def _deleted_channels_missing(library, path, feedback):
    """``library`` with values of magnitude above :data:`ABSURD_MAGNITUDE` (USGS's -1.23e34 of a deleted channel,
    smeared by convolution) set to NaN, and the log told how many."""
    absurd = np.abs(np.nan_to_num(library.spectra)) > ABSURD_MAGNITUDE
    if not absurd.any():
        return library
    ensure(feedback).info(f"{Path(path).name}: {int(absurd.sum())} values of magnitude above {ABSURD_MAGNITUDE:g} "
                          "(deleted channels, such as USGS's -1.23e34) set to missing.")
    return replace(library, spectra=np.where(absurd, np.nan, library.spectra))


def _sorted_channels(library, path, feedback):
    """``library`` with channels in increasing wavelength; channels of one wavelength (a spectrometer's detector
    overlap exported unmatched) averaged into one, and the log told so."""
    order = np.argsort(library.wavelengths, kind="stable")
    wavelengths, spectra = library.wavelengths[order], library.spectra[:, order]
    fwhm = None if library.fwhm is None else library.fwhm[order]
    unique, first, counts = np.unique(wavelengths, return_index=True, return_counts=True)
    if unique.size < wavelengths.size:   # sorted: each wavelength's channels are side by side, from ``first`` on
        finite = np.isfinite(spectra)
        sums = np.add.reduceat(np.where(finite, spectra, 0.0), first, axis=1)
        n = np.add.reduceat(finite.astype(float), first, axis=1)
        spectra = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
        fwhm = None if fwhm is None else fwhm[first]
        repeated = unique[counts > 1]
        ensure(feedback).info(f"{Path(path).name}: {repeated.size} wavelength(s) listed more than once ("
                              + ", ".join(f"{w:g}" for w in repeated[:5]) + (" ..." if repeated.size > 5 else "")
                              + " nm); their values are averaged.")
        wavelengths = unique
    return replace(library, wavelengths=wavelengths, spectra=spectra, fwhm=fwhm)


def _finished(library, path, feedback):
    """The rules every library file goes through after its reader: deleted channels missing, channels in
    wavelength order, reflectance scaled to 0-1."""
    library = _deleted_channels_missing(library, path, feedback)
    library = _sorted_channels(library, path, feedback)
    return _as_fraction(library, path, feedback)


def read_library(path, feedback=None):
    """Read a spectral library file.

    Parameters
    ----------
    path : str or pathlib.Path
        ``.sli``, ``.esl`` or ``.hdr``: ENVI spectral library (data file and
        header side by side). ``.csv`` or ``.txt``: CSV table, see
        :func:`read_csv_library`, or one spectrum as a spectrometer or a published library writes it (ECOSTRESS /
        ASTER ``.spectrum.txt``, USGS splib07 ASCII, ASD ViewSpec Pro text with its header); ``.sed`` (Spectral
        Evolution) and ``.sig`` (Spectra Vista): see :mod:`.spectrometer_files`.
    feedback : Feedback, optional
        Receives a message about dropped auxiliary records and missing values.

    Returns
    -------
    SpectralLibrary
        Channels in increasing wavelength (repeated wavelengths averaged), magnitudes above
        :data:`ABSURD_MAGNITUDE` missing, reflectance in per cent or x 10000 divided to 0-1.

    Raises
    ------
    OreMapError
        ``parameter="library"`` when the file is missing, of an unknown
        format, or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise OreMapError(
            f"Spectral library '{path}' does not exist.",
            parameter="library",
            fix="Choose an existing .sli/.hdr (ENVI), .csv or spectrum text file.",
        )
    suffix = path.suffix.lower()
    if suffix in (".sli", ".esl", ".hdr"):
        library = read_envi_library(path, feedback=feedback)
    elif suffix in (".csv", ".txt") + SPECTROMETER_SUFFIXES:
        kind = kind_of_text(path)
        library = (read_splib_ascii(path, feedback=feedback) if kind == "splib"
                   else read_headed_text(path, feedback=feedback) if kind == "headed"
                   else read_csv_library(path, feedback=feedback))
    elif suffix == ".asd":
        refuse_binary_asd(path)
    else:
        raise OreMapError(
            f"Unknown spectral library format '{path.suffix}' ({path.name}).",
            parameter="library",
            fix="Use an ENVI spectral library (.sli with .hdr), a CSV table (.csv) or a spectrum text file (.txt, "
                ".sed, .sig).",
        )
    return _finished(library, path, feedback)


def _header_int(header, key, path, default=None):
    value = header.get(key, default)
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise OreMapError(
            f"ENVI header '{path.name}' has no valid '{key}' (found {value!r}).", parameter="library"
        ) from None


def _header_floats(header, key, path):
    value = header.get(key)
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    try:
        return np.array([float(v) for v in items if v != ""], dtype=np.float64)
    except ValueError:
        raise OreMapError(f"ENVI header '{path.name}': '{key}' holds non-numbers.", parameter="library") from None


def _envi_paths(path):
    """(header, data) paths of an ENVI library given either file."""
    path = Path(path)
    if path.suffix.lower() == ".hdr":
        header = path
        candidates = [path.with_suffix(s) for s in (".sli", ".esl", ".dat", "")]
    else:
        data = path
        header_candidates = [path.with_suffix(".hdr"), Path(str(path) + ".hdr")]
        header = next((h for h in header_candidates if h.is_file()), None)
        if header is None:
            raise OreMapError(
                f"No ENVI header found for '{path.name}'.",
                parameter="library",
                fix=f"Put '{path.with_suffix('.hdr').name}' next to the library file.",
            )
        candidates = [data]
    data = next((c for c in candidates if c.is_file() and c != header), None)
    if data is None:
        raise OreMapError(
            f"No data file found for ENVI header '{path.name}'.",
            parameter="library",
            fix=f"Put '{path.with_suffix('.sli').name}' next to the header.",
        )
    return header, data


def _read_envi_cube(header, data_path, header_path):
    """Binary data as an array of shape (bands, lines, samples), native type."""
    samples = _header_int(header, "samples", header_path)
    lines = _header_int(header, "lines", header_path)
    bands = _header_int(header, "bands", header_path, default=1)
    code = _header_int(header, "data type", header_path)
    if code not in _ENVI_DTYPES:
        raise OreMapError(
            f"ENVI data type {code} of '{header_path.name}' is not supported (complex or unknown).",
            parameter="library",
        )
    order = ">" if _header_int(header, "byte order", header_path, default=0) == 1 else "<"
    dtype = np.dtype(order + _ENVI_DTYPES[code])
    offset = _header_int(header, "header offset", header_path, default=0)
    count = samples * lines * bands
    flat = np.fromfile(data_path, dtype=dtype, count=count, offset=offset)
    if flat.size != count:
        raise OreMapError(
            f"'{data_path.name}' holds {flat.size} values but its header describes {count} "
            f"({lines} lines x {samples} samples x {bands} bands).",
            parameter="library",
        )
    interleave = str(header.get("interleave", "bsq")).strip().lower()
    if interleave == "bsq":
        return flat.reshape(bands, lines, samples)
    if interleave == "bil":
        return flat.reshape(lines, bands, samples).transpose(1, 0, 2)
    if interleave == "bip":
        return flat.reshape(lines, samples, bands).transpose(2, 0, 1)
    raise OreMapError(f"Unknown ENVI interleave '{interleave}' in '{header_path.name}'.", parameter="library")


def _is_auxiliary(name):
    return name_key(name).startswith(AUXILIARY_PREFIXES)


def _units_from_record_name(name):
    """Wavelength unit named in a record like 'Wavelengths in microns ...'."""
    key = name_key(name)
    if "micro" in key:
        return "um"
    if "nano" in key:
        return "nm"
    return None


def read_envi_library(path, feedback=None):
    # Over 100 lines by its docstring; the code (92 lines) reads one ENVI header's fields in turn.
    """Read an ENVI spectral library (``.sli``/``.esl`` + ``.hdr``).

    One spectrum per line (``lines`` spectra of ``samples`` channels, one
    band). ``data ignore value`` (to float32 precision) and non-finite values
    become NaN; spectra (not
    wavelength or bandpass records) are then divided by ``reflectance scale
    factor``. Wavelengths come from the
    ``wavelength`` field in ``wavelength units`` (magnitude rule when
    absent), else from a ``Wavelengths in ...`` record; FWHM from ``fwhm``,
    else from a ``Resolution in ...``/``Bandpass ...`` record. Auxiliary
    records (names starting with :data:`AUXILIARY_PREFIXES`) are dropped and
    counted in ``n_dropped``. Runs of spaces inside names are collapsed to
    one. :func:`read_library` then applies the rules of every library (deleted channels, channel order, scale).

    Parameters
    ----------
    path : str or pathlib.Path
        The data file or its ``.hdr``.
    feedback : Feedback, optional
        Told how many records were dropped and values set missing.

    Returns
    -------
    SpectralLibrary
    """
    feedback = ensure(feedback)
    header_path, data_path = _envi_paths(path)
    header = parse_envi_header(header_path)
    cube = _read_envi_cube(header, data_path, header_path)
    if cube.shape[0] != 1:
        raise OreMapError(
            f"'{data_path.name}' has {cube.shape[0]} bands; an ENVI spectral library has one band "
            "with one spectrum per line.",
            parameter="library",
            fix="Open it as a raster image instead, or export it as a spectral library.",
        )
    raw = cube[0]
    spectra = raw.astype(np.float64)
    missing = ~np.isfinite(spectra)
    ignore = _header_floats(header, "data ignore value", header_path)
    if ignore is not None and ignore.size:
        if raw.dtype.kind == "f":
            missing |= np.isclose(spectra, float(raw.dtype.type(ignore[0])), rtol=1e-6, atol=0.0)
        else:
            missing |= spectra == ignore[0]
    spectra[missing] = np.nan

    n_lines, n_channels = spectra.shape
    names = header.get("spectra names") or []
    if len(names) != n_lines:
        if names:
            feedback.warning(
                f"{header_path.name}: {len(names)} spectra names for {n_lines} spectra; using numbers instead."
            )
        names = [f"Spectrum {i + 1}" for i in range(n_lines)]
    # Collapse the fixed-width padding of USGS names ("Kaolinite CM9      BECKb AREF").
    names = [" ".join(n.split()) or f"Spectrum {i + 1}" for i, n in enumerate(names)]

    units = header.get("wavelength units")
    if isinstance(units, list):
        units = units[0] if units else None
    wavelengths = _header_floats(header, "wavelength", header_path)
    fwhm = _header_floats(header, "fwhm", header_path)
    if wavelengths is None:
        record = next((i for i, n in enumerate(names) if name_key(n).startswith("wavelengths in")), None)
        if record is None:
            raise OreMapError(
                f"ENVI library '{header_path.name}' has no wavelengths.",
                parameter="library",
                fix="Add a 'wavelength = {...}' list and 'wavelength units' to its header.",
            )
        wavelengths = spectra[record]
        units = units or _units_from_record_name(names[record])
    if fwhm is None:
        record = next(
            (i for i, n in enumerate(names) if name_key(n).startswith(("resolution in", "bandpass"))), None
        )
        if record is not None:
            fwhm = spectra[record]
    if wavelengths.size != n_channels:
        raise OreMapError(
            f"ENVI library '{header_path.name}' has {wavelengths.size} wavelengths for {n_channels} channels.",
            parameter="library",
        )
    factor = _factor_or_fail(wavelengths, units, header_path)
    wavelengths = wavelengths * factor
    # FWHM share the wavelength units.
    if fwhm is not None:
        fwhm = fwhm * factor if fwhm.size == n_channels and np.all(np.isfinite(fwhm)) else None

    keep = np.array([not _is_auxiliary(n) for n in names], dtype=bool)
    n_dropped = int((~keep).sum())
    spectra = spectra[keep]
    names = [n for n, k in zip(names, keep) if k]
    # Scale only the spectra: wavelength and bandpass records are not reflectances.
    scale = _header_floats(header, "reflectance scale factor", header_path)
    if scale is not None and scale.size and scale[0] not in (0.0, 1.0):
        spectra /= scale[0]
    if n_dropped:
        feedback.info(
            f"{data_path.name}: dropped {n_dropped} auxiliary records (error bars, wavelength and "
            f"bandpass records); {len(names)} spectra remain."
        )
    return SpectralLibrary(
        names=names,
        spectra=spectra,
        wavelengths=wavelengths,
        fwhm=fwhm,
        source=str(data_path),
        n_dropped=n_dropped,
    )


def _factor_or_fail(wavelengths, units, path):
    """Nanometres per wavelength unit, as a library error when impossible."""
    if not np.all(np.isfinite(wavelengths)):
        raise OreMapError(f"Library '{Path(path).name}' has missing wavelength values.", parameter="library")
    try:
        return nanometres_per_unit(units, wavelengths)
    except OreMapError as exc:
        raise OreMapError(exc.message, parameter="library", fix=exc.fix) from None


# -- CSV --------------------------------------------------------------------

_HEADER_FILLERS = {"band", "bands", "centre", "center", "centres", "centers", "in", "of", "x"}


def _wavelength_header(cell):
    """True for a column name that names wavelengths: a wavelength word or a unit, with nothing but such words
    (``"Wavelength (nm)"``, ``"um"``, ``"Band centre [nm]"``). A spectrum's name may hold a unit too (USGS's
    ``"Kaolinite GDS11 <63um"``, a grain size), which took it for the wavelength column."""
    words = header_words(cell)
    return names_wavelengths(words) and all(
        w in WAVELENGTH_WORDS or w in _HEADER_FILLERS or header_unit({w}) for w in words)


def _csv_delimiter(lines):
    """Tab, ';' or ',': the first found in both the header and the first data row.

    Numbers never hold a tab or ';', so one of those in a data row is the
    delimiter, while a ',' may be a decimal comma; names in the header may hold
    any of them. Falls back to the first found in the header; None: white space.
    """
    candidates = ("\t", ";", ",")
    if len(lines) > 1:
        found = next((d for d in candidates if d in lines[0] and d in lines[1]), None)
        if found:
            return found
    return next((d for d in candidates if d in lines[0]), None)


def _csv_float(cell, decimal_comma):
    text = cell.strip()
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value


def _wavelength_sequence(values):
    """True for values that read as wavelengths: strictly increasing or decreasing, all within 200-30000 (nm) or
    0.2-30 (micrometres)."""
    values = np.asarray(values, dtype=np.float64)
    steps = np.diff(values)
    return bool(values.size >= 2 and (np.all(steps > 0) or np.all(steps < 0))
                and (np.all((values >= 200) & (values <= 30000)) or np.all((values >= 0.2) & (values <= 30))))


def _spectra_as_columns(rows, decimal_comma, path, feedback):
    """``rows`` of a CSV library with the spectra in columns: a table exported from a spreadsheet with one spectrum
    per row (the header's cells after the first are wavelengths, each further row a name and its values) is
    turned; any other table is returned as it is."""
    head = [cell.strip() for cell in rows[0]]
    cells = [c for c in head[1:] if c]
    numeric = [c for c in cells if math.isfinite(_csv_float(c, decimal_comma))]
    first = [r[0].strip() for r in rows[1:] if r and r[0].strip()]
    named = [c for c in first if not math.isfinite(_csv_float(c, decimal_comma))]
    # wavelengths across the header and names down the first column (columns named by numbers stay columns), or
    # numeric sample IDs down a first column named as such ("Sample ID,383.15,...": not a wavelength column)
    if len(numeric) < 2 or len(numeric) < 0.8 * len(cells):
        return rows
    if len(named) < 0.8 * max(len(first), 1) and not (
            head[0] and not _wavelength_header(head[0]) and len(numeric) == len(cells)
            and _wavelength_sequence([_csv_float(c, decimal_comma) for c in cells])):
        return rows
    width = max(len(r) for r in rows)
    padded = [list(r) + [""] * (width - len(r)) for r in rows]
    label = head[0] if _wavelength_header(head[0]) else "wavelength"
    turned = [[label] + [r[0].strip() for r in padded[1:]]]
    turned += [[padded[0][j]] + [r[j] for r in padded[1:]] for j in range(1, width)]
    feedback.info(f"CSV library '{path.name}': one spectrum per row, wavelengths across the first row "
                  f"({len(padded) - 1} spectra).")
    return turned


def read_csv_library(path, feedback=None):
    """Read a spectral library from a CSV table.

    The first non-empty row holds the column names. The wavelength column is
    the first whose name contains a word like ``wavelength``, ``wl``,
    ``lambda``, ``nm``, ``um``/``µm`` or ``micron``, else the first column;
    its units come from those words (``nm``/``nanometers`` or
    ``um``/``microns``), else from magnitude (all below 30: micrometres).
    Every other column is a spectrum named by its header; a table with one spectrum per row instead
    (wavelengths across the first row, as a spreadsheet exports it) is read the same way. The delimiter is a
    tab, semicolon or comma: the first found in both the header and the first
    data row (so names may hold the others), else the first found in the
    header, else white space; with a tab or semicolon a decimal comma is
    accepted. Blank or non-numeric cells become
    NaN; rows with a blank wavelength are skipped. :func:`read_library` then
    applies the rules of every library (deleted channels, channel order, scale).

    Parameters
    ----------
    path : str or pathlib.Path
    feedback : Feedback, optional
        Told how many non-numeric cells were read as missing.

    Returns
    -------
    SpectralLibrary

    Raises
    ------
    OreMapError
        ``parameter="library"`` when there is no spectrum column, no data
        row, or a wavelength cell is not a number.
    """
    feedback = ensure(feedback)
    path = Path(path)
    lines = [line for line in decode_text(path.read_bytes()).splitlines() if line.strip()]
    if not lines:
        raise OreMapError(f"CSV library '{path.name}' is empty.", parameter="library")
    delimiter = _csv_delimiter(lines)
    if delimiter is None:
        rows = [line.split() for line in lines]
    else:
        rows = list(csv.reader(lines, delimiter=delimiter))
    first_row = [cell for cell in rows[0] if cell.strip()]
    decimal_comma = delimiter in ("\t", ";")
    # a blank first cell over a column of names (pandas' to_csv of a table indexed by name: ',450,550,...') heads
    # one spectrum a row; over a column of numbers (pandas' default index 0, 1, ...) it names nothing
    names_below = [row[0] for row in rows[1:] if row and row[0].strip()]
    named_rows = bool(rows[0]) and not rows[0][0].strip() and bool(names_below) and not any(
        math.isfinite(_csv_float(cell, decimal_comma)) for cell in names_below)
    if not named_rows and len(first_row) >= 2 and all(math.isfinite(_csv_float(c, decimal_comma)) for c in first_row):
        raise OreMapError(f"CSV library '{path.name}' has no names row: its first row ({', '.join(first_row[:4])}"
                          f"{', ...' if len(first_row) > 4 else ''}) is numbers.", parameter="library",
                          fix="Add a first row naming the columns, e.g. 'Wavelength (nm)' then each spectrum's name.")
    rows = _spectra_as_columns(rows, delimiter in ("\t", ";"), path, feedback)
    head = [cell.strip() for cell in rows[0]]
    wl_col = next((j for j, cell in enumerate(head) if _wavelength_header(cell)), 0)
    spectrum_cols = [j for j in range(len(head)) if j != wl_col]
    if not spectrum_cols:
        raise OreMapError(
            f"CSV library '{path.name}' has no spectrum columns.",
            parameter="library",
            fix="Put wavelengths in the first column and one spectrum per further column, named in the first row.",
        )
    refuse_wavenumbers(head[wl_col], f"CSV library '{path.name}'")
    units = header_unit(header_words(head[wl_col]))
    decimal_comma = delimiter in ("\t", ";")

    wavelengths, values, n_text = [], [], 0
    text_cells = [0] * len(spectrum_cols)
    for line_no, row in enumerate(rows[1:], start=2):
        cells = list(row) + [""] * (len(head) - len(row))
        if len(cells) > len(head):
            raise OreMapError(
                f"CSV library '{path.name}', row {line_no}: {len(row)} cells for {len(head)} columns.",
                parameter="library",
            )
        if not cells[wl_col].strip():
            continue
        wl = _csv_float(cells[wl_col], decimal_comma)
        if not math.isfinite(wl):
            raise OreMapError(
                f"CSV library '{path.name}', row {line_no}: wavelength '{cells[wl_col]}' is not a number.",
                parameter="library",
                fix="Give wavelengths down the first column and one spectrum per further column, or one spectrum "
                    "per row with the wavelengths across the first row.",
            )
        wavelengths.append(wl)
        row_values = [_csv_float(cells[j], decimal_comma) for j in spectrum_cols]
        for k, (j, v) in enumerate(zip(spectrum_cols, row_values)):
            if cells[j].strip() and not math.isfinite(v):
                text_cells[k] += 1
                n_text += 1
        values.append(row_values)
    if not wavelengths:
        raise OreMapError(f"CSV library '{path.name}' has no data rows.", parameter="library")
    if len(wavelengths) < 2:
        raise OreMapError(f"CSV library '{path.name}' has a single wavelength row ({wavelengths[0]:g}); a spectrum "
                          "needs at least two.", parameter="library",
                          fix="Give one row per wavelength (wavelengths down the first column, one spectrum per "
                              "further column).")
    wavelengths = np.array(wavelengths)
    wavelengths = wavelengths * _factor_or_fail(wavelengths, units, path)
    spectra = np.array(values, dtype=np.float64).T
    names = [head[j] or f"Spectrum {k + 1}" for k, j in enumerate(spectrum_cols)]
    text_only = [k for k in range(len(names)) if not np.isfinite(spectra[k]).any()]
    if text_only and len(text_only) == len(names):
        raise OreMapError(f"CSV library '{path.name}': no column holds numbers ("
                          + ", ".join(names[k] for k in text_only[:10]) + ").", parameter="library",
                          fix="Give reflectance values, one spectrum per column.")
    if text_only:  # e.g. a comment column: not a spectrum
        feedback.warning(f"{path.name}: column{'s' if len(text_only) > 1 else ''} "
                         + ", ".join(repr(names[k]) for k in text_only[:10])
                         + (" hold" if len(text_only) > 1 else " holds") + " no numbers and "
                         + ("were" if len(text_only) > 1 else "was") + " left out (not spectra).")
        keep = [k for k in range(len(names)) if k not in text_only]
        spectra, names = spectra[keep], [names[k] for k in keep]
        n_text = sum(text_cells[k] for k in keep)
    if n_text:
        feedback.warning(f"{path.name}: {n_text} cells that are not numbers were read as missing values.")
    return SpectralLibrary(names=names, spectra=spectra, wavelengths=wavelengths, source=str(path))


# ---------------------------------------------------------------------------
# Sampling a raster
# ---------------------------------------------------------------------------


