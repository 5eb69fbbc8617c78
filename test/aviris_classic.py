"""An AVIRIS-Classic cube as the sensor delivers it, built from real library spectra.

The band centres and FWHM are USGS splib07's AVIRIS-1995 wavelength and resolution records (the
first two records of ``SHARED_DATA/hyperspectral/s07_AV95_envi.sli``), in the sensor's own band
order: four spectrometers, so 687.0 nm (band 32) is followed by 664.3 nm (band 33), 1269.0 nm
(band 96) by 1252.4 nm (band 97), and 1879.5 / 1879.9 nm (bands 160 / 161) nearly coincide. The
pixels are the library's AVIRIS-1995 convolutions of known minerals, channel for channel in that
order, with brightness changes (0.8-1.1) and noise (SNR about 200), stored as AVIRIS reflectance
products are: int16 reflectance x 10000, ENVI BIL.
"""

import os

import numpy as np

from conftest import SHARED_DATA

AV95_LIBRARY = os.path.join(SHARED_DATA, "hyperspectral", "s07_AV95_envi.sli")

#: library spectrum -> class of the bundled model (complete BECK spectra, no missing channel)
MINERALS = {
    "Kaolinite CM9": "Kaolinite",
    "Alunite GDS84 Na03": "Alunite",
    "Calcite WS272": "Calcite",
    "Muscovite GDS107": "Muscovite-Illite",
    "Jarosite GDS99 K 200C Syn": "Jarosite",
    "Chlorite SMR-13.a 104-150um": "Chlorite",
}


def av95_records():
    """``(names, records (n, 224) float32, centres nm, fwhm nm)`` of the AVIRIS-1995 library, file order."""
    from oremap.core.hyperspectral.spectral_library import parse_envi_header

    header = parse_envi_header(AV95_LIBRARY[:-4] + ".hdr")
    names = [" ".join(n.split()) for n in header["spectra names"]]
    records = np.fromfile(AV95_LIBRARY, dtype="<f4").reshape(len(names), 224)
    return names, records, records[0].astype(np.float64) * 1000.0, records[1].astype(np.float64) * 1000.0


def spectrum(names, records, prefix):
    """The first record whose name starts with ``prefix`` and is a BECK (full range) measurement."""
    for name, values in zip(names, records):
        if name.startswith(prefix + " ") and "BECK" in name and np.all(values > -1):
            return values.astype(np.float64)
    raise KeyError(prefix)


def write_envi(path, cube, centres, fwhm, scale=10000, interleave="bil"):
    """Write ``cube`` (rows, cols, bands) int16 as an ENVI file with an AVIRIS-style header."""
    rows, cols, bands = cube.shape
    data = {"bil": cube.transpose(0, 2, 1), "bsq": cube.transpose(2, 0, 1), "bip": cube}[interleave]
    np.ascontiguousarray(data, dtype="<i2").tofile(path)
    lines = ["ENVI", "description = {AVIRIS-Classic style test cube (OreMap)}", f"samples = {cols}",
             f"lines = {rows}", f"bands = {bands}", "header offset = 0", "file type = ENVI Standard",
             "data type = 2", f"interleave = {interleave}", "byte order = 0", "sensor type = AVIRIS",
             "map info = {UTM, 1, 1, 538000.0, 4150000.0, 17.0, 17.0, 11, North, WGS-84}",
             "wavelength units = Nanometers", f"reflectance scale factor = {scale}",
             "wavelength = {" + ", ".join(f"{w:.2f}" for w in centres) + "}",
             "fwhm = {" + ", ".join(f"{w:.2f}" for w in fwhm) + "}"]
    with open(os.path.splitext(path)[0] + ".hdr", "w") as fh:
        fh.write("\n".join(lines) + "\n")


def make_cube(path, rows_per_class=4, cols=6, seed=0):
    """Write the cube; returns the expected class name of each row (top to bottom)."""
    rng = np.random.default_rng(seed)
    names, records, centres, fwhm = av95_records()
    expected, blocks = [], []
    for prefix, label in MINERALS.items():
        values = spectrum(names, records, prefix)
        brightness = rng.uniform(0.8, 1.1, size=(rows_per_class, cols, 1))
        noisy = values * brightness + rng.normal(0.0, values.mean() / 200.0, size=(rows_per_class, cols, values.size))
        blocks.append(noisy)
        expected += [label] * rows_per_class
    cube = np.clip(np.round(np.concatenate(blocks) * 10000.0), 0, 32767).astype(np.int16)
    write_envi(path, cube, centres, fwhm)
    return expected
