"""Spectrum files as spectrometers and published libraries write them, built from real USGS splib07 spectra.

Each writer follows its format's layout line by line:

* ECOSTRESS / ASTER spectral library ``.spectrum.txt`` (Meerdink et al. 2019): 20 ``key: value`` header lines
  (``Name`` ... ``Additional Information``), a blank line, then wavelength (micrometres) and reflectance (per
  cent) pairs in decreasing wavelength;
* Spectral Evolution ``.sed`` (DARWin SP, version 2.3 header): ``key: value`` lines, ``Data:``, the column-name
  row ``Wvl  Rad. (Ref.)  Rad. (Target)  Reflect. %`` and tab-separated rows;
* Spectra Vista ``.sig`` (HR-1024i): ``/*** Spectra Vista SIG Data ***/``, ``key= value`` lines, ``data=``, then
  wavelength, reference and target radiance and reflectance (per cent) separated by spaces; the detectors' overlap
  near 1000 and 1900 nm left in (wavelengths go back down), each detector with its own small gain;
* ASD ViewSpec Pro ASCII export with its header printed: the "Text conversion of header file" block, then
  ``Wavelength<TAB>spec00012.asd`` and reflectance (0-1);
* USGS splib07 ASCII (the AVIRIS-1995 convolved pack): ``s07_AV95 Record=N: title`` and one value per line, the
  wavelengths in ``s07_AV95_Wavelengths_in_microns_224ch_AVIRIS95.1.txt`` at the pack's top, the spectra in
  ``ChapterM_Minerals/``; -1.23e34 for deleted channels.
"""

from pathlib import Path

import numpy as np

from conftest import SHARED_DATA

USGS = Path(SHARED_DATA) / "hyperspectral" / "s07_AV95_envi.sli"


def usgs_spectrum(name):
    """(wavelengths in nm, reflectance 0-1) of one record of the shared splib07 AVIRIS-1995 library."""
    from oremap.core.hyperspectral.spectral_library import read_library

    library = read_library(USGS)
    row = library.spectra[library.names.index(name)]
    good = np.isfinite(row)
    return library.wavelengths[good], row[good]


def write_ecostress(path, name, wavelengths_nm, reflectance):
    order = np.argsort(wavelengths_nm)[::-1]
    um = wavelengths_nm[order] / 1000.0
    header = [f"Name: {name}", "Type: Mineral", "Class: Silicate", "Subclass: Phyllosilicate",
              "Particle Size: 0-125 um", "Sample No.: PS-1A", "Owner: JPL", "Wavelength Range: VSWIR",
              "Origin: Georgia", "Collection Date: N/A", "Description: Kaolinite, well crystallised.",
              "Measurement: Directional (10 Degree) Hemispherical Reflectance", "First Column: X",
              "Second Column: Y", "X Units: Wavelength (micrometers)", "Y Units: Reflectance (percent)",
              f"First X Value: {um[0]:g}", f"Last X Value: {um[-1]:g}", f"Number of X Values: {um.size}",
              "Additional Information: none"]
    rows = [f"{w:.4f}\t{100.0 * r:.4f}" for w, r in zip(um, reflectance[order])]
    Path(path).write_text("\r\n".join(header + [""] + rows) + "\r\n", encoding="latin-1")


def write_sed(path, wavelengths_nm, reflectance):
    reference = 0.08 + 0.02 * np.sin(wavelengths_nm / 300.0)   # W/m^2/sr/nm, a panel under the sun
    target = reference * reflectance
    header = ["Comment: ", "Version: 2.3 [1.0.4825.7023]", f"File Name: C:\\DATA\\{Path(path).name}",
              "Instrument: PSR-3500_SN1514025 [3]", "Detectors: 512,256,256", "Measurement: REFLECTANCE",
              "Date: 07/14/2016,07/14/2016", "Time: 11:02:56.16,11:03:12.37",
              "Temperature (C): 37.34,7.29,-5.51,37.61,7.31,-5.56", "Battery Voltage: 7.53", "Averages: 10,10",
              "Integration: 50,20,10,50,20,10", "Dark Mode: AUTO,AUTO", "Foreoptic: LENS4 {DN}, LENS4 {DN}",
              "Radiometric Calibration: RADIANCE", "Units: W/m^2/sr/nm", "Wavelength Range: 350,2500",
              "Latitude: n/a", "Longitude: n/a", "Altitude: n/a", "GPS Time: n/a", "Satellites: n/a",
              "Calibrated Reference Correction File: none", f"Channels: {wavelengths_nm.size}", "Columns [4]:",
              "Data:", "Wvl\tRad. (Ref.)\tRad. (Target)\tReflect. %"]
    rows = [f"{w:.1f}\t{a:.3E}\t{b:.3E}\t{100.0 * r:.2f}"
            for w, a, b, r in zip(wavelengths_nm, reference, target, reflectance)]
    Path(path).write_text("\r\n".join(header + rows) + "\r\n")


def write_sig(path, wavelengths_nm, reflectance, overlap=(1000.0, 1900.0), gains=(1.0, 1.03, 0.97)):
    """An SVC file with each detector's overlap left in: the rows past each edge are followed by the next
    detector's rows from a little below it; each detector reads the target through its own ``gains`` (detectors
    disagree a little, as they do). Returns the rows ``(wavelength, reflectance)`` as written."""
    rows = []
    for detector, (low, high) in enumerate(((0, overlap[0]), (overlap[0] - 30.0, overlap[1]),
                                           (overlap[1] - 30.0, 1e9))):
        inside = (wavelengths_nm >= low) & (wavelengths_nm < high + (30.0 if detector < 2 else 0.0))
        rows += [(w, r * gains[detector]) for w, r in zip(wavelengths_nm[inside], reflectance[inside])]
    reference = [2800.0 + 0.5 * w for w, _ in rows]
    header = ["/*** Spectra Vista SIG Data ***/", f"name= {Path(path).name}", "instrument= HI: 1062077 (HR-1024i)",
              "integration= 10, 10, 10, 10, 10, 10", "scan method= Time-based, Time-based",
              "scan coadds= 10, 10, 10, 10, 10, 10", "scan time= 1, 1", "scan settings= AI, AI",
              "external data set1= 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", "external data mask= 0",
              "optic= LENS4 FOV 4, LENS4 FOV 4", "temp= 31.35, -4.71, -9.91, 30.21, -4.73, -9.92",
              "battery= 8.06, 8.04", "error= 0,0", "units= Radiance, Radiance",
              "time= 6/2/2016 10:44:32 AM, 6/2/2016 10:45:02 AM", "longitude= 11133.5190W , 11133.5190W",
              "latitude= 4015.3970N , 4015.3970N", "gpstime= 164431.000, 164500.000", "comm= ",
              "memory slot= 0, 1", "factors= 1.000, 1.000, 1.000 [Ref/Tgt Factor (Dtr), Ref/Tgt Factor (Dtr)]",
              "data= "]
    lines = [f"{w:.1f}  {ref:.2f}  {ref * r:.2f}  {100.0 * r:.2f}" for (w, r), ref in zip(rows, reference)]
    Path(path).write_text("\n".join(header + lines) + "\n")
    return np.array(rows)


def write_asd_text(path, wavelengths_nm, reflectance):
    header = ["Text conversion of header file C:\\ASD\\spec00012.asd", "",
              "The instrument number was 18527", "New ASD spectrum file: Program version = 6.4  file version = 8.00",
              "Spectrum saved: 07/14/2016 at 11:02:56", "VNIR integration time : 136",
              f"VNIR channel 1 wavelength =  {wavelengths_nm[0]:g} wavelength step =  1",
              "There were 10 samples per data value", f"xmin = {wavelengths_nm[0]:g} xmax = {wavelengths_nm[-1]:g}",
              "ymin = 0 ymax = 1", "The instrument has 3 detectors", "Spectrum file is reflectance data",
              "Dark current corrected", "There was no foreoptic attachment",
              "GPS-Latitude is 0 GPS-Longitude is 0", "GPS-Altitude is 0, GPS-UTC is 00:00:00", "",
              "Wavelength\tspec00012.asd"]
    rows = [f"{w:g}\t{r:.6f}" for w, r in zip(wavelengths_nm, reflectance)]
    Path(path).write_text("\r\n".join(header + rows) + "\r\n")


def write_splib_ascii_pack(root, records):
    """The AVIRIS-1995 convolved ASCII pack under ``root``: the shared wavelength file at the top and each of
    ``records`` (title, values with -1.23e34 where deleted) in ``ChapterM_Minerals/``; returns the spectrum
    paths."""
    from oremap.core.hyperspectral.spectral_library import read_envi_library

    library = read_envi_library(USGS)   # the record's own channel order, overlaps included
    root = Path(root)
    (root / "ChapterM_Minerals").mkdir(parents=True, exist_ok=True)
    lines = ["s07_AV95 Record=3: Wavelengths in microns 224ch AVIRIS95.1"]
    lines += [f" {w / 1000.0:.7e}" for w in library.wavelengths]
    (root / "s07_AV95_Wavelengths_in_microns_224ch_AVIRIS95.1.txt").write_text("\n".join(lines) + "\n")
    paths = []
    for number, (title, values) in enumerate(records, start=100):
        stem = "s07AV95a_" + "_".join(title.split())
        path = root / "ChapterM_Minerals" / f"{stem}.txt"
        path.write_text("\n".join([f"s07_AV95 Record={number}: {title}"] + [f" {v:.7e}" for v in values]) + "\n")
        paths.append(path)
    return paths, library
