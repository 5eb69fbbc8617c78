"""Writing spectral libraries: ENVI spectral library files (``.sli`` and ``.hdr``, optionally readable
by GDAL) and CSV tables (one column per spectrum), written atomically.
"""

import csv
import io
from pathlib import Path

import numpy as np

from ..engine.files import write_atomic
from .spectral_library import ENVI_IGNORE_VALUE


def _envi_safe(name):
    """Name usable inside an ENVI list: commas become ';', braces parentheses."""
    return str(name).replace(",", ";").replace("{", "(").replace("}", ")").replace("\n", " ")


def _envi_list_text(items, per_line=6):
    items = list(items)
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n " + ",\n ".join(rows) + "}"


def write_envi_library(lib, path, gdal_readable=False, parameter="output"):
    """Write an ENVI spectral library: ``<name>.sli`` and ``<name>.hdr``.

    Spectra are written as little-endian float32, one per line, missing
    values as :data:`ENVI_IGNORE_VALUE` (declared as ``data ignore value``),
    wavelengths and FWHM in nanometres with full precision. Commas and braces
    in names, which ENVI lists cannot hold, become ``;`` and parentheses.

    Parameters
    ----------
    lib : SpectralLibrary
    path : str or pathlib.Path
        Target; the data file gets the suffix ``.sli`` unless another
        non-``.hdr`` suffix is given, the header replaces it with ``.hdr``.
    gdal_readable : bool, default False
        ``False`` writes ``file type = ENVI Spectral Library``, what ENVI and
        other spectral tools expect. GDAL (3.6 at least) refuses that file
        type; ``True`` writes ``ENVI Standard`` instead so GDAL/QGIS open the
        file as a one-band raster of ``n_spectra`` lines.
    parameter : str
        Named by the :class:`OreMapError` raised when a file cannot be written.

    Each file is written to a temporary file moved into place when complete
    (:func:`~core.engine.files.write_atomic`).

    Returns
    -------
    pathlib.Path
        The data file written.
    """
    path = Path(path)
    data_path = path.with_suffix(".sli") if path.suffix.lower() in ("", ".hdr") else path
    header_path = data_path.with_suffix(".hdr")
    values = np.where(np.isfinite(lib.spectra), lib.spectra, ENVI_IGNORE_VALUE).astype("<f4")
    write_atomic(data_path, values.tobytes(), parameter)
    n, m = lib.spectra.shape
    fields = [
        "ENVI",
        f"description = {{OreMap spectral library. Source: {_envi_safe(lib.source)}}}",
        f"samples = {m}",
        f"lines = {n}",
        "bands = 1",
        "header offset = 0",
        f"file type = {'ENVI Standard' if gdal_readable else 'ENVI Spectral Library'}",
        "data type = 4",
        "interleave = bsq",
        "sensor type = Unknown",
        "byte order = 0",
        "wavelength units = Nanometers",
        f"data ignore value = {ENVI_IGNORE_VALUE:.6e}",
        f"spectra names = {_envi_list_text([_envi_safe(x) for x in lib.names], per_line=1)}",
        f"wavelength = {_envi_list_text(repr(float(w)) for w in lib.wavelengths)}",
    ]
    if lib.fwhm is not None:
        fields.append(f"fwhm = {_envi_list_text(repr(float(f)) for f in lib.fwhm)}")
    write_atomic(header_path, "\n".join(fields) + "\n", parameter)
    return data_path


def write_csv_library(lib, path, parameter="output"):
    """Write a spectral library as CSV.

    The first column, ``wavelength_nm``, holds the wavelengths in nanometres;
    each further column one spectrum, named by the header. Values are written
    with full precision, missing values as empty cells. FWHM is not stored.
    The file is written to a temporary file moved into place when complete
    (:func:`~core.engine.files.write_atomic`).

    Parameters
    ----------
    lib : SpectralLibrary
    path : str or pathlib.Path
    parameter : str
        Named by the :class:`OreMapError` raised when the file cannot be written.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["wavelength_nm"] + list(lib.names))
    for j, wl in enumerate(lib.wavelengths):
        cells = ["" if not np.isfinite(v) else repr(float(v)) for v in lib.spectra[:, j]]
        writer.writerow([repr(float(wl))] + cells)
    write_atomic(path, text.getvalue(), parameter)
    return path
