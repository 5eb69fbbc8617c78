"""Known-answer tests for one-spectrum files of spectrometers and published libraries (core.hyperspectral.
spectrometer_files through read_library), on real splib07 spectra written in each format (spectrometer_fixtures)."""

import numpy as np
import pytest

from conftest import core_warnings
from oremap.core.engine.errors import OreMapError
from oremap.core.hyperspectral.spectral_library import read_library
from spectrometer_fixtures import (USGS, usgs_spectrum, write_asd_text, write_ecostress, write_sed, write_sig,
                                   write_splib_ascii_pack)

pytestmark = pytest.mark.skipif(not USGS.is_file(), reason="USGS library not available")

KAOLINITE = "Kaolinite CM9 BECKb AREF"
ALUNITE = "Alunite GDS84 Na03 BECKa AREF"


def test_ecostress_file_reads_name_micrometres_and_per_cent(tmp_path):
    """ECOSTRESS's 20 header lines, micrometres in decreasing order and per cent: the spectrum comes back as the
    USGS record it was written from (nm, increasing, 0-1), named by the header's Name."""
    wavelengths, reflectance = usgs_spectrum(KAOLINITE)
    path = tmp_path / "mineral.silicate.phyllosilicate.fine.vswir.ps-1a.jpl.beckman.spectrum.txt"
    write_ecostress(path, "Kaolinite KGa-1 (wxyl)", wavelengths, reflectance)
    log = core_warnings()
    library = read_library(path, feedback=log)
    assert library.names == ["Kaolinite KGa-1 (wxyl)"]
    np.testing.assert_allclose(library.wavelengths, wavelengths, atol=0.051)   # printed to 0.1 nm
    np.testing.assert_allclose(library.spectra[0], reflectance, atol=5e-7)
    assert any("read as an ECOSTRESS/ASTER spectral library file" in m and "divided by 100" in m for m in log.infos)


def test_spectral_evolution_sed_takes_the_reflectance_column(tmp_path):
    """A .sed file has reference and target radiance beside 'Reflect. %': only the reflectance is the spectrum,
    divided from per cent."""
    wavelengths, reflectance = usgs_spectrum(ALUNITE)
    path = tmp_path / "1514025_00023.sed"
    write_sed(path, wavelengths, reflectance)
    library = read_library(path)
    assert library.names == ["1514025_00023"]
    np.testing.assert_allclose(library.wavelengths, wavelengths, atol=0.051)
    np.testing.assert_allclose(library.spectra[0], reflectance, atol=5.1e-5)


def test_svc_sig_with_detector_overlap(tmp_path):
    """An SVC .sig file keeps the detectors' overlap: wavelengths go back down at each junction, and the detectors
    disagree a little. Interleaved by a sort they made a saw-tooth; the earlier detector's overlap rows are now left
    out (the next detector's kept, as SVC's overlap matching does), and the last (reflectance %) column is read."""
    wavelengths, reflectance = usgs_spectrum(KAOLINITE)
    path = tmp_path / "HR.000_0012.sig"
    rows = write_sig(path, wavelengths, reflectance)
    assert np.any(np.diff(rows[:, 0]) < 0)            # the fixture really has the overlap
    log = core_warnings()
    library = read_library(path, feedback=log)
    assert library.names == ["HR.000_0012"]
    expected = {}
    for w, r in rows:   # in file order: a later detector's row replaces an earlier one's at and above its start
        for old in [k for k in expected if k >= w]:
            del expected[old]
        expected[w] = r
    assert np.all(np.diff(library.wavelengths) > 0)
    np.testing.assert_allclose(library.wavelengths, sorted(expected), atol=0.051)
    np.testing.assert_allclose(library.spectra[0], [expected[w] for w in sorted(expected)], atol=5.1e-5)
    assert any("overlaps the next one's left out" in m for m in log.infos)


def test_asd_text_export_with_header(tmp_path):
    """ViewSpec Pro's ASCII export with 'print header' ticked: the header block is skipped, the column named by the
    .asd file is the spectrum (reflectance 0-1, left as it is)."""
    wavelengths, reflectance = usgs_spectrum(ALUNITE)
    path = tmp_path / "alunite_field00012.asd.txt"
    write_asd_text(path, wavelengths, reflectance)
    library = read_library(path)
    assert library.names == ["alunite_field00012"]
    np.testing.assert_allclose(library.spectra[0], np.round(reflectance, 6), atol=1e-12)
    np.testing.assert_allclose(library.wavelengths, wavelengths)


def test_splib07_ascii_spectrum_finds_its_wavelength_file(tmp_path):
    """A splib07 one-spectrum ASCII file (the AVIRIS-1995 pack's layout) reads its wavelengths from the pack's
    wavelength file two folders up; its deleted channels are missing, as in the ENVI version: same values."""
    from oremap.core.hyperspectral.spectral_library import read_envi_library

    envi = read_library(USGS)
    raw = read_envi_library(USGS)
    row = raw.spectra[raw.names.index(KAOLINITE)]
    values = np.where(np.isfinite(row), row, -1.23e34)
    paths, _ = write_splib_ascii_pack(tmp_path / "ASCIIdata_splib07b_cvAVIRISc1995", [(KAOLINITE, values)])
    log = core_warnings()
    library = read_library(paths[0], feedback=log)
    assert library.names == [KAOLINITE]
    np.testing.assert_allclose(library.wavelengths, envi.wavelengths, rtol=1e-7)
    np.testing.assert_allclose(library.spectra[0], envi.spectra[envi.names.index(KAOLINITE)], rtol=1e-7)
    assert any("s07_AV95_Wavelengths_in_microns_224ch_AVIRIS95.1.txt" in m for m in log.infos)


def test_splib07_ascii_without_its_wavelength_file_is_a_library_fix(tmp_path):
    path = tmp_path / "s07AV95a_Kaolinite_CM9_BECKb_AREF.txt"
    path.write_text("s07_AV95 Record=100: Kaolinite CM9 BECKb AREF\n" + "\n".join([" 5.0e-001"] * 224) + "\n")
    with pytest.raises(OreMapError) as err:
        read_library(path)
    assert err.value.parameter == "library"
    assert "no '*Wavelengths*.txt' file of 224 values" in str(err.value) and "distribution" in err.value.fix


def test_binary_asd_is_refused_with_the_export_to_use(tmp_path):
    path = tmp_path / "spec00012.asd"
    path.write_bytes(b"as7" + bytes(600))
    with pytest.raises(OreMapError) as err:
        read_library(path)
    assert err.value.parameter == "library" and "ASCII Export" in err.value.fix


def test_plain_csv_is_still_a_csv(tmp_path):
    """A table with only its column-name row above the numbers is the CSV reader's, several spectra and all."""
    path = tmp_path / "two.csv"
    path.write_text("Wavelength (nm),Kaolinite,Calcite\n400,0.45,0.60\n500,0.50,0.62\n600,0.55,0.64\n")
    library = read_library(path)
    assert library.names == ["Kaolinite", "Calcite"]
    np.testing.assert_allclose(library.spectra, [[0.45, 0.50, 0.55], [0.60, 0.62, 0.64]])


def test_a_csv_whose_names_hold_colons_and_whose_first_rows_are_blank_stays_a_csv(tmp_path):
    """A plain CSV (as write_csv_library writes missing values: blank) whose header holds '=' and whose first rows
    are blank was taken for a headed file: names empty, channels lost. Only a file that opens with a header line
    or a spectrometer's first line is headed."""
    path = tmp_path / "blanklead.csv"
    rows = ["Wavelength (nm),Sphalerite (Zn=0.99),Mix 50:50"] + [f"{w},," for w in (400, 410, 420)] + \
        [f"{w},{0.1 + w / 10000:.4f},{0.2 + w / 10000:.4f}" for w in (430, 440, 450, 460)]
    path.write_text("\n".join(rows) + "\n")
    library = read_library(path)
    assert library.names == ["Sphalerite (Zn=0.99)", "Mix 50:50"] and library.wavelengths.size == 7
    np.testing.assert_allclose(library.spectra[0, 3:], [0.143, 0.144, 0.145, 0.146])


def test_an_asd_export_named_target_is_read_and_repeated_wavelengths_averaged(tmp_path):
    """ASD names the column after the file: 'Target_01.asd' was taken for a radiance column and refused. A CSV that
    lists a wavelength twice has its two values averaged, said in the log."""
    wavelengths, reflectance = usgs_spectrum(ALUNITE)
    path = tmp_path / "Target_01.asd.txt"
    write_asd_text(path, wavelengths, reflectance)
    path.write_text(path.read_text().replace("spec00012.asd", "Target_01.asd"))
    assert read_library(path).names == ["Target_01"]
    twice = tmp_path / "twice.csv"
    twice.write_text("Wavelength (nm),Calcite\n400,0.40\n500,0.50\n500,0.54\n600,0.60\n")
    log = core_warnings()
    library = read_library(twice, feedback=log)
    np.testing.assert_allclose(library.spectra[0], [0.40, 0.52, 0.60])
    assert "twice.csv: 1 wavelength(s) listed more than once (500 nm); their values are averaged." in log.infos


def test_sed_with_a_channel_number_column_takes_the_wavelength_column(tmp_path):
    """DARWin writes 'Chan.#  Wvl  ...' when channel numbers are exported (SPECCHIO and SpecDAL take the 'Wvl'
    column): the channel numbers 1..N were read as the wavelengths, the spectrum ~349 nm too short. Without a column
    named as wavelengths, such a file is refused."""
    wavelengths, reflectance = usgs_spectrum(ALUNITE)
    path = tmp_path / "1514025_00024.sed"
    write_sed(path, wavelengths, reflectance)
    lines = path.read_text().splitlines()
    start = lines.index("Data:") + 1
    lines[start:] = [f"{'Chan.#' if i == 0 else i}\t{line}" for i, line in enumerate(lines[start:])]
    path.write_text("\r\n".join(lines).replace("Columns [4]:", "Columns [5]:") + "\r\n")
    library = read_library(path)
    np.testing.assert_allclose(library.wavelengths, wavelengths, atol=0.051)
    np.testing.assert_allclose(library.spectra[0], reflectance, atol=5.1e-5)
    path.write_text(path.read_text().replace("Chan.#\tWvl", "Chan.#\tBand"))
    with pytest.raises(OreMapError, match="numbers channels and no column is named as wavelengths"):
        read_library(path)


def test_a_spectrometer_text_with_decimal_commas_is_refused_for_its_numbers_not_its_header(tmp_path):
    """An ASD ViewSpec export whose values use decimal commas has no table OreMap reads; it went on to the CSV reader,
    whose refusal blamed a header word ("wavelength 'The' is not a number")."""
    path = tmp_path / "asd_decimal_comma.txt"
    path.write_text("Text conversion of header file C:\\ASD\\spec00012.asd\n\nThe instrument number was 18527\n"
                    "xmin = 450 xmax = 850\n\nWavelength\tspec00012.asd\n"
                    + "".join(f"{450 + i}\t0,{11 + i}\n" for i in range(20)), encoding="utf-8")
    with pytest.raises(OreMapError) as err:
        read_library(str(path))
    assert err.value.parameter == "library" and "no table of wavelengths and values follows its header" \
        in err.value.message and "decimal commas" in err.value.fix
