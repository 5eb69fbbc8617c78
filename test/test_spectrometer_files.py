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
    """An SVC .sig file keeps the detectors' overlap: wavelengths go back down at each junction and one repeats
    exactly. The channels come back in increasing order, the repeated one averaged, the last (reflectance %)
    column read."""
    wavelengths, reflectance = usgs_spectrum(KAOLINITE)
    path = tmp_path / "HR.000_0012.sig"
    written = write_sig(path, wavelengths, reflectance)
    assert np.any(np.diff(written) < 0)            # the fixture really has the overlap
    log = core_warnings()
    library = read_library(path, feedback=log)
    assert library.names == ["HR.000_0012"]
    np.testing.assert_allclose(library.wavelengths, np.unique(written), atol=0.051)
    np.testing.assert_allclose(library.spectra[0], reflectance, atol=5.1e-5)
    assert any("listed more than once" in m and "averaged" in m for m in log.infos)


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
