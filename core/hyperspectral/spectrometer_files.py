"""Spectra as spectrometers and published libraries write them, one file per spectrum.

:func:`~oremap.core.hyperspectral.spectral_library.read_library` hands these files here:

* **headed text**: a block of ``key: value`` or ``key= value`` lines, then a table whose first column is the
  wavelength. This covers the ECOSTRESS / ASTER spectral library's ``.spectrum.txt`` files (20 header lines:
  ``Name``, ..., ``X Units: Wavelength (micrometers)``, ``Y Units: Reflectance (percent)``, then the
  wavelength-value pairs, often in decreasing wavelength), Spectral Evolution ``.sed`` files (header, ``Data:``,
  a column-name row such as ``Wvl  Rad. (Ref.)  Rad. (Target)  Reflect. %``), Spectra Vista ``.sig`` files
  (``name= ...`` lines, ``data=``, then wavelength, reference and target radiance and reflectance in per cent) and
  ASD ViewSpec Pro text exports with their header printed;
* **USGS splib07 one-spectrum ASCII**: a ``splib07a Record=NNNN: name`` line and one value per line, the
  wavelengths (and bandpasses) in separate files of the same distribution (``..._Wavelengths_....txt``), looked
  up beside the spectrum and up to three folders above it.

Binary ASD ``.asd`` files are refused with the export to use instead.
"""

import functools
import math
import re
from pathlib import Path

import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.files import decode_text
from ..engine.wavelengths import nanometres_per_unit, unit_word_factor

#: File endings of spectrometers' own text files (read here whatever their first line).
SPECTROMETER_SUFFIXES = (".sed", ".sig")

_SPLIB_RECORD = re.compile(r"^\s*(\S+)\s+Record\s*=\s*(\d+)\s*:\s*(.*?)\s*$", re.IGNORECASE)
_META_LINE = re.compile(r"^\s*([^:=]{1,60}?)\s*[:=]\s*(.*?)\s*$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
# Rows of numbers that start a table: this many in a row (or to the end of the file).
_TABLE_ROWS = 3
# How far up from a splib07 spectrum its distribution's wavelength files are looked for.
_SPLIB_LEVELS = 3


def _cells(line):
    """A row's cells: split at tabs, else semicolons, else commas, else white space."""
    line = line.strip()
    for delimiter in ("\t", ";", ","):
        if delimiter in line:
            return [c.strip() for c in line.split(delimiter)]
    return line.split()


def _numeric(cells):
    return len(cells) >= 2 and all(_NUMBER.match(c) for c in cells if c) and sum(bool(c) for c in cells) >= 2


#: Bytes :func:`kind_of_text` reads: a header block and the first rows of the table (a CSV library is then read
#: once, by its reader).
_HEAD_BYTES = 64 * 1024


def _lines(path, head=False):
    with open(path, "rb") as handle:
        raw = handle.read(_HEAD_BYTES) if head else handle.read()
    lines = decode_text(raw).splitlines()
    return lines[:-1] if head and len(raw) == _HEAD_BYTES and len(lines) > 1 else lines   # a cut last line


def _table_start(lines):
    """Index of the first of :data:`_TABLE_ROWS` rows of at least two numbers, or None."""
    run = 0
    for i, line in enumerate(lines):
        if not line.strip():
            run = 0
            continue
        run = run + 1 if _numeric(_cells(line)) else 0
        if run == _TABLE_ROWS or (run and i == len(lines) - 1):
            return i - run + 1
    return None


#: First lines of spectrometer exports that open with no ``key: value`` line.
_SIGNATURES = ("/*** spectra vista", "text conversion of header file")


def _header_line(line):
    """A ``key: value`` / ``key= value`` line of a header block (not a CSV row that happens to hold ':' or '=')."""
    match = _META_LINE.match(line)
    return bool(match) and not any(d in match.group(1) for d in (",", ";", "\t"))


def kind_of_text(path):
    """``"splib"``, ``"headed"`` or ``None`` (a plain CSV table) for a text library file: headed when the file opens
    with a header line (``Name: ...``, ``name= ...``) or a spectrometer's own first line, as a CSV never does."""
    path = Path(path)
    lines = _lines(path, head=True)
    first = next((line for line in lines if line.strip()), "")
    if _SPLIB_RECORD.match(first):
        return "splib"
    if path.suffix.lower() in SPECTROMETER_SUFFIXES:
        return "headed"
    signed = first.strip().casefold().startswith(_SIGNATURES)
    if signed or _header_line(first):
        if _table_start(lines) is not None:
            return "headed"
        if not signed:   # one 'key: value' cell may head a CSV ('Wavelength: nm;Kaolinite'): the CSV reader decides
            return None
        # a spectrometer's own first line with no table of numbers after it: not a CSV either (read as one, the
        # refusal blamed a header word for not being a wavelength)
        raise OreMapError(f"'{path.name}' opens as a spectrometer's text export, but no table of wavelengths and "
                          "values follows its header.", parameter="library",
                          fix="Export the spectrum again as text with the values written with a decimal point "
                              "(450<TAB>0.11, not 0,11): decimal commas are not read in spectrometer texts.")
    return None


def refuse_binary_asd(path):
    raise OreMapError(
        f"'{Path(path).name}' is a binary ASD file; OreMap reads spectra as text.",
        parameter="library",
        fix="Export it as text with ASD ViewSpec Pro (Process > ASCII Export, reflectance) or your spectrometer "
            "software, and give the .txt file.",
    )


# -- headed text ---------------------------------------------------------------------------------------------------


def _overlap_trimmed(data):
    """``(rows, n left out)``: where the wavelengths go back down (a spectrometer's next detector starting inside
    the previous one's range, SVC and ASD exports without overlap matching), the previous detector's rows from the
    next one's first wavelength on are left out, so the two detectors do not interleave into a saw-tooth."""
    if np.count_nonzero(np.diff(data[:, 0]) < 0) * 2 > data.shape[0]:   # written long to short (ECOSTRESS)
        data = data[::-1]
    wavelengths = data[:, 0]
    keep = np.ones(wavelengths.size, dtype=bool)
    for start in np.flatnonzero(np.diff(wavelengths) < 0) + 1:
        earlier = np.arange(start)
        keep[earlier[wavelengths[:start] >= wavelengths[start]]] = False
    return data[keep], int((~keep).sum())


def _stem(path):
    """The file name without its spectrum endings (``spec00012.asd.txt``: ``spec00012``)."""
    name = Path(path).name
    while Path(name).suffix.lower() in (".txt", ".csv", ".asd", ".sed", ".sig", ".spectrum"):
        name = Path(name).stem
    return name


def _metadata(lines):
    meta = {}
    for line in lines:
        match = _META_LINE.match(line)
        if match and match.group(1).strip().casefold() not in meta:
            meta[match.group(1).strip().casefold()] = match.group(2)
    return meta


def header_words(cell):
    """The words of a column-name cell, lower case (``"Wavelength (µm)"`` -> ``{"wavelength", "µm"}``)."""
    return set(w for w in re.split(r"[^a-zµμλ]+", cell.casefold()) if w)


def header_unit(words):
    """Nanometre or micrometre unit word among a header cell's words, else None."""
    units = {unit_word_factor(w): w for w in sorted(words)}
    return units.get(1.0) or units.get(1000.0)


def refuse_wavenumbers(text, source):
    """Refuse a wavelength column whose name or unit ``text`` says wavenumbers (``source``: the file, in words)."""
    if "wavenumber" in text.casefold() or "cm-1" in text.casefold().replace(" ", ""):
        raise OreMapError(f"{source} gives wavenumbers ({text.strip()}), not wavelengths.", parameter="library",
                          fix="Convert the first column to wavelengths (10^7 / wavenumber in cm-1 gives nm).")


def _x_factor(meta, column_name, wavelengths, path):
    """Nanometres per unit of the wavelength column: from ``X Units`` or the column name, else by magnitude."""
    for text in (meta.get("x units", ""), column_name or ""):
        refuse_wavenumbers(text, f"'{Path(path).name}'")
        unit = header_unit(header_words(text))
        if unit:
            return unit_word_factor(unit)
    return nanometres_per_unit(None, wavelengths)


#: Words of a column name that numbers channels (DARWin's ``Chan.#``), and of one that gives wavelengths (``Wvl``).
_CHANNEL_WORDS = {"chan", "channel", "channels", "ch", "index", "no", "number"}
#: Words naming a wavelength column (a unit word does too: :func:`names_wavelengths`).
WAVELENGTH_WORDS = {"wavelength", "wavelengths", "wl", "wvl", "lambda", "λ"}


def names_wavelengths(words):
    """Whether a column name's ``words`` (:func:`header_words`) name wavelengths: a wavelength word or unit."""
    return bool(words & WAVELENGTH_WORDS or header_unit(words))


def _channel_column_dropped(data, names, path):
    """``(data, names)`` with a leading channel-number column (Spectral Evolution ``Chan.#  Wvl  ...``, as SPECCHIO's
    and SpecDAL's readers take it) left out and the column named as wavelengths put first; without such a column,
    refused: channel numbers 1..N read as nanometres shift the spectrum silently."""
    wavelength = next((j for j in range(1, len(names)) if names_wavelengths(header_words(names[j]))), None)
    if wavelength is None:
        raise OreMapError(f"'{Path(path).name}': the first column ('{names[0]}') numbers channels and no column is "
                          "named as wavelengths (" + ", ".join(repr(n) for n in names) + ").", parameter="library",
                          fix="Export the spectrum with a wavelength column (named 'Wvl' or 'Wavelength') first.")
    order = [wavelength] + [j for j in range(1, len(names)) if j != wavelength]
    return data[:, order], [names[j] for j in order]


def _spectrum_columns(names, n_columns, header, path):
    """Indices of the reflectance column(s) among a table's columns (0 is the wavelength)."""
    keys = [n.casefold() for n in names] if names else []
    if keys:
        chosen = [j for j in range(1, n_columns) if j < len(keys)
                  and (re.search(r"reflect|tgt\.?\s*/\s*ref|\bref\.?\s*%", keys[j]))]
        if chosen:
            return chosen
        # radiance and raw columns of SED / SIG exports ("Rad. (Ref.)", "Rad. (Target)", "Radiance(W/...)"); an
        # ASD column is named by its file, which may hold any word ("Target_01.asd")
        other = [j for j in range(1, n_columns) if not (j < len(keys) and re.search(
            r"\brad\.|radiance|\(target\)|\(ref\.?\)|\bdn\b|\braw\b|reference", keys[j]))]
        if other:
            return other
    elif n_columns == 2:
        return [1]
    elif n_columns == 4 and ("spectra vista" in header.casefold() or Path(path).suffix.lower() == ".sig"):
        return [n_columns - 1]   # SVC .sig: wavelength, reference radiance, target radiance, reflectance (%)
    raise OreMapError(
        f"'{Path(path).name}': a table of {n_columns} columns"
        + (" (" + ", ".join(repr(n) for n in names) + ")" if names else " without column names")
        + " and no column recognisable as reflectance.",
        parameter="library",
        fix="Export the reflectance (wavelength and reflectance columns), or name the reflectance column "
            "'Reflectance'.")


def _percent(meta, column_names, path):
    text = " ".join([meta.get("y units", ""), meta.get("units", "")] + list(column_names)).casefold()
    return "percent" in text or "%" in text or Path(path).suffix.lower() == ".sig"


def read_headed_text(path, feedback=None):
    """Read a headed spectrum text file (see the module's description) as a SpectralLibrary.

    The spectrum's name is the header's ``Name`` (ECOSTRESS) or the file name; with several reflectance columns,
    the column names. Values in per cent (``Y Units`` or a column name saying so, SVC ``.sig``) are divided by 100;
    wavelengths take ``X Units`` or the column name's unit, else the magnitude rule.
    """
    from .spectral_library import SpectralLibrary  # a cycle otherwise: spectral_library hands files here

    feedback = ensure(feedback)
    path = Path(path)
    lines = _lines(path)
    start = _table_start(lines)
    if start is None:
        raise OreMapError(f"'{path.name}' holds no table of wavelengths and values.", parameter="library",
                          fix="Give a spectrum file with a wavelength column and a reflectance column.")
    above = [line for line in lines[:start] if line.strip()]
    meta = _metadata(above)
    rows = [_cells(line) for line in lines[start:] if line.strip()]
    n_columns = max(len(r) for r in rows)
    column_names = []
    if above and len(_cells(above[-1])) == n_columns and (not _META_LINE.match(above[-1]) or "\t" in above[-1]) \
            and all(c.strip() for c in _cells(above[-1])):
        column_names = _cells(above[-1])   # a column-name row (SED's "Wvl  Rad. (Ref.) ...", ASD's file name)
    data = np.full((len(rows), n_columns), np.nan)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row[:n_columns]):
            if cell and _NUMBER.match(cell):
                data[i, j] = float(cell)
    if column_names and header_words(column_names[0]) & _CHANNEL_WORDS \
            and not names_wavelengths(header_words(column_names[0])):
        data, column_names = _channel_column_dropped(data, column_names, path)
        n_columns -= 1
    data = data[np.isfinite(data[:, 0])]
    data, trimmed = _overlap_trimmed(data)
    if trimmed:
        feedback.info(f"'{path.name}': {trimmed} rows where a detector's range overlaps the next one's left out (the "
                      "next detector's rows kept), as the spectrometer's own overlap matching does.")
    columns = _spectrum_columns(column_names, n_columns, "\n".join(above), path)
    wavelengths = data[:, 0] * _x_factor(meta, column_names[0] if column_names else "", data[:, 0], path)
    spectra = data[:, columns].T
    percent = _percent(meta, [column_names[j] for j in columns if j < len(column_names)], path)
    if percent:
        spectra = spectra / 100.0
    if len(columns) == 1:
        name = " ".join(meta.get("name", "").split())   # ECOSTRESS's mineral name; SVC's is the file name
        names = [name if name and not re.search(r"\.[a-z]{2,4}$", name.casefold()) else _stem(path)]
    else:
        names = [column_names[j] for j in columns]
    fmt = ("an ECOSTRESS/ASTER spectral library file" if "x units" in meta
           else "a Spectra Vista .sig file" if path.suffix.lower() == ".sig"
           else "a Spectral Evolution .sed file" if path.suffix.lower() == ".sed" else "a spectrum text with a header")
    feedback.info(f"'{path.name}': read as {fmt}: {len(names)} spectrum ('{names[0]}'), {len(wavelengths)} "
                  f"channels{', reflectance in per cent divided by 100' if percent else ''}.")
    return SpectralLibrary(names=names, spectra=spectra, wavelengths=wavelengths, source=str(path))


# -- USGS splib07 ASCII --------------------------------------------------------------------------------------------


def _splib_values(path):
    """(record title, values) of a splib07 ASCII file: a ``Record=`` line then one value per line. Read once per
    file version: the spectra of one folder share their wavelength files."""
    path = Path(path)
    title, values = _splib_read(str(path), path.stat().st_mtime_ns)
    return title, values.copy()


@functools.lru_cache(maxsize=32)
def _splib_read(path, mtime_ns):
    lines = [line for line in _lines(path) if line.strip()]
    match = _SPLIB_RECORD.match(lines[0]) if lines else None
    titled = bool(match) or bool(lines) and not _NUMBER.match(lines[0].split()[0])
    values = []
    for line in lines[1 if titled else 0:]:
        cell = line.split()[0]
        values.append(float(cell) if _NUMBER.match(cell) else math.nan)
    return (match.group(3) if match else ""), np.array(values, dtype=np.float64)


def _splib_companions(path, n_values, words):
    """splib07 files with ``words`` in their name and ``n_values`` values, beside ``path`` and above it."""
    found, folder = [], Path(path).parent
    for _ in range(_SPLIB_LEVELS + 1):
        for candidate in sorted(folder.glob("*.txt")):
            name = candidate.name.casefold()
            if candidate != Path(path) and any(w in name for w in words):
                try:
                    title, values = _splib_values(candidate)
                except (OSError, ValueError, IndexError):
                    continue
                if values.size == n_values:
                    found.append(candidate)
        if found or folder.parent == folder:
            break
        folder = folder.parent
    return found


def _best_companion(candidates, path):
    """The candidate sharing the spectrum's distribution prefix and spectrometer code, when one stands out."""
    stem = Path(path).stem
    prefix = stem.split("_")[0].casefold()
    # spectrometer codes such as BECKa, ASDFRb, NIC4a: upper case with a one-letter version
    tokens = {t.rstrip("abcdefghijklmnopqrstuvwxyz").casefold() for t in stem.split("_")[1:]
              if t.isupper() or t[:-1].isupper()}

    def score(candidate):   # the whole code (ASDFR, ASDHR, ASDNG share 2151 channels) before its first letters
        name = candidate.name.casefold()
        return (name.startswith(prefix + "_"), sum(t in name for t in tokens if len(t) >= 3),
                sum(t[:3] in name for t in tokens if len(t) >= 3))
    ranked = sorted(candidates, key=score, reverse=True)
    if len(ranked) > 1 and score(ranked[0]) == score(ranked[1]):
        return None
    return ranked[0] if ranked else None


def read_splib_ascii(path, feedback=None):
    """Read a USGS splib07 one-spectrum ASCII file, its wavelengths (and bandpasses) from the distribution's files.

    The wavelength file is a ``*Wavelength*.txt`` of as many values, beside the spectrum or up to three folders
    above (the distribution keeps them at the top of ``ASCIIdata_splib07a`` and the spectra in chapter folders);
    among several, the one sharing the spectrum's prefix (``splib07a``, ``s07_AV95``) and spectrometer code
    (``BECK``, ``ASD``, ``NIC``, ``AVIRIS``) is taken. The -1.23e34 of deleted channels is missing
    (``read_library``'s rule).
    """
    from .spectral_library import SpectralLibrary

    feedback = ensure(feedback)
    path = Path(path)
    title, values = _splib_values(path)
    name = " ".join(title.split()) or path.stem
    if re.match(r"(wavelengths?|bandpass|resolution|fwhm)\b", name.casefold()):
        raise OreMapError(f"'{path.name}' is the splib07 record '{name}', not a spectrum.", parameter="library",
                          fix="Give the spectrum files; OreMap finds this wavelength file beside them.")
    if values.size < 2:
        raise OreMapError(f"'{path.name}' holds {values.size} value(s) after its Record line.", parameter="library")
    candidates = _splib_companions(path, values.size, ("wavelength",))
    chosen = _best_companion(candidates, path)
    if chosen is None:
        listing = ", ".join(c.name for c in candidates[:5])
        raise OreMapError(
            f"'{path.name}' (splib07 ASCII, {values.size} channels) carries no wavelengths, and "
            + (f"{len(candidates)} wavelength files of {values.size} values fit it equally ({listing})."
               if candidates else f"no '*Wavelengths*.txt' file of {values.size} values lies beside it or up to "
                                  f"{_SPLIB_LEVELS} folders above."),
            parameter="library",
            fix="Keep the spectrum inside the splib07 ASCII distribution folders (the wavelength files stay at its "
                "top), or use the ENVI .sli version of the library.")
    _, wavelengths = _splib_values(chosen)
    factor = nanometres_per_unit(None, wavelengths)
    bandpass = _best_companion(_splib_companions(path, values.size, ("bandpass", "fwhm", "resolution")), path)
    fwhm = None
    if bandpass is not None:
        fwhm = _splib_values(bandpass)[1] * factor
        fwhm = fwhm if np.all(np.isfinite(fwhm) & (fwhm > 0)) else None
    feedback.info(f"'{path.name}': read as a USGS splib07 ASCII spectrum ('{name}'); wavelengths from "
                  f"'{chosen.name}'" + (f", bandpasses from '{bandpass.name}'" if fwhm is not None else "") + ".")
    return SpectralLibrary(names=[name], spectra=values[None, :], wavelengths=wavelengths * factor, fwhm=fwhm,
                           source=str(path))
