#!/usr/bin/env python3
"""Write the sensor presets in core/hyperspectral/sensor_data/ (band centres and FWHM of imaging spectrometers).

AVIRIS-Classic and AVIRIS-NG come from real files in the shared data (``../shared/data/hyperspectral``):
USGS splib07's AVIRIS-1995 wavelength and resolution records (the first two records of
``s07_AV95_envi.sli``) and the ENVI header of an AVIRIS-NG tile. EMIT, EnMAP, PRISMA and HyMap are
regular grids over the ranges, band counts, sampling and widths their documentation states (see
core/hyperspectral/sensor_data/SOURCES.md): good enough to train a library model for the sensor, while a real
product's own centres (which the readers use) differ by a fraction of a band. Deterministic.
"""

import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OREMAP_SHARED_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "core", "hyperspectral", "sensor_data")


def write(name, centers, fwhm, detectors, good=None, header=""):
    good = np.ones(len(centers), int) if good is None else np.asarray(good, int)
    with open(os.path.join(OUT, name + ".csv"), "w") as fh:
        for line in header.strip().splitlines():
            fh.write(f"# {line}\n")
        fh.write("band,wavelength_nm,fwhm_nm,detector,good\n")
        for i, (c, f, d, g) in enumerate(zip(centers, fwhm, detectors, good), start=1):
            fh.write(f"{i},{c:.3f},{f:.3f},{d},{g}\n")


def aviris_classic():
    path = os.path.join(SHARED, "hyperspectral", "s07_AV95_envi.sli")
    records = np.fromfile(path, dtype="<f4", count=2 * 224).reshape(2, 224).astype(np.float64) * 1000.0
    detectors = ["A"] * 32 + ["B"] * 64 + ["C"] * 64 + ["D"] * 64
    write("aviris_classic", records[0], records[1], detectors, header="""
AVIRIS-Classic (1987-2021), 224 bands in the sensor's order: four spectrometers A (bands 1-32), B (33-96),
C (97-160), D (161-224) that overlap near 675 and 1260 nm and meet at 1880 nm.
Source: USGS Spectral Library version 7 (Kokaly et al. 2017, USGS Data Series 1035), s07_AV95: records
'Wavelengths in microns 224ch AVIRIS95.1' and 'Resolution in microns 224ch AVIRIS95.1' (the 1995
calibration), converted to nm. Each flight year has its own calibration, within a few nm of these.""")


def aviris_ng():
    hdr = os.path.join(SHARED, "hyperspectral", "ang20150420t182808_corr_v1e_img_4200-4210_70-80.hdr")
    text = open(hdr).read()

    def field(key):
        body = re.search(key + r"\s*=\s*\{([^}]*)\}", text, re.IGNORECASE).group(1)
        return np.array([float(v) for v in body.replace("\n", " ").split(",") if v.strip()])

    wl, fwhm, bbl = field("wavelength"), field("fwhm"), field("bbl")
    write("aviris_ng", wl, fwhm, ["NG"] * wl.size, good=bbl.astype(int), header="""
AVIRIS-NG, 432 bands, 5 nm sampling; 'good' is the ENVI bad-band list (bbl) of the product.
Source: the ENVI header of the real AVIRIS-NG reflectance product ang20150420t182808_corr_v1e (NASA/JPL),
wavelength, fwhm and bbl fields.""")


def grid(start, stop, n):
    return np.linspace(start, stop, n)


def emit():
    c = grid(381.006, 2493.252, 285)
    write("emit", c, np.full(c.size, 8.5), ["EMIT"] * c.size, header="""
EMIT (Earth Surface Mineral Dust Source Investigation, ISS, 2022-), 285 bands 381-2493 nm, about 7.4 nm
sampling and 8.5 nm FWHM (EMIT L2A product user guide). Regular-grid approximation: a real granule's
sensor_band_parameters/wavelengths and fwhm (which the EMIT reader uses) differ from it by under 1 nm.""")


def enmap():
    v, s = grid(418.4, 992.9, 91), grid(902.0, 2445.5, 133)
    c = np.concatenate([v, s])
    f = np.concatenate([np.full(v.size, 7.0), np.full(s.size, 11.0)])
    d = np.array(["VNIR"] * v.size + ["SWIR"] * s.size)
    order = np.argsort(c, kind="stable")
    write("enmap", c[order], f[order], d[order], header="""
EnMAP HSI (2022-), 224 bands as in L2A products (sorted by wavelength): VNIR 418-993 nm (91 bands, about
6.5 nm sampling, FWHM about 7 nm) and SWIR 902-2446 nm (133 bands, about 10-12 nm sampling, FWHM about
11 nm), overlapping at 902-993 nm. Regular-grid approximation of the ranges, counts and widths in the EnMAP
mission documentation (EnMAP HSI instrument and L2A product specification); a product's METADATA.XML gives
the exact centres, which the EnMAP reader uses.""")


def prisma():
    v, s = grid(402.0, 1010.0, 63), grid(934.0, 2497.0, 171)
    c = np.concatenate([v, s])
    f = np.concatenate([np.full(v.size, 11.0), np.full(s.size, 10.0)])
    d = np.array(["VNIR"] * v.size + ["SWIR"] * s.size)
    order = np.argsort(c, kind="stable")
    write("prisma", c[order], f[order], d[order], header="""
PRISMA (ASI, 2019-), the 234 used bands: VNIR about 400-1010 nm (63 of its 66 bands) and SWIR about
920-2500 nm (171 of 173), sampling under 12 nm, FWHM about 10-11 nm, overlapping at 934-1010 nm. Regular-grid
approximation of the PRISMA product specification's ranges and counts; a product's List_Cw_Vnir/List_Cw_Swir
give the exact centres, which the PRISMA reader uses.""")


def hymap():
    parts = [(454.0, 890.0, 32, 15.0, "VIS"), (893.0, 1340.0, 32, 15.0, "NIR"), (1401.0, 1808.0, 32, 13.0, "SWIR1"),
             (1950.0, 2483.0, 30, 17.0, "SWIR2")]
    c = np.concatenate([grid(a, b, n) for a, b, n, _, _ in parts])
    f = np.concatenate([np.full(n, w) for _, _, n, w, _ in parts])
    d = sum(([name] * n for _, _, n, _, name in parts), [])
    write("hymap", c, f, d, header="""
HyMap (HyVista airborne), 126 bands 450-2480 nm in four modules: VIS and NIR about 15 nm, SWIR1 about 13 nm,
SWIR2 about 17 nm sampling and width (Cocks et al. 1998, The HyMap airborne hyperspectral sensor: the system,
calibration and performance). Regular-grid approximation; each HyMap flight has its own calibration file.""")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for make in (aviris_classic, aviris_ng, emit, enmap, prisma, hymap):
        make()
    print("written:", ", ".join(sorted(os.listdir(OUT))), file=sys.stderr)
