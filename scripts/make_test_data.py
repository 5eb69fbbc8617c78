#!/usr/bin/env python3
"""Rebuild test/data from ../shared/data (real measurements, see test/data/SOURCES.md).

Copies the two AVIRIS-NG tiles as delivered and writes ``usgs_minerals.sli``: a subset of
the USGS splib07 library convolved to AVIRIS-1995 (Beckman-measured spectra, which cover
the whole 0.4-2.5 um range), one spectrum per mineral or cover type.
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OREMAP_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "test", "data")

TILES = ["ang20150420t182808_corr_v1e_img_4200-4210_70-80", "ang20150422t163638_corr_v1e_img_4000-4010_550-560"]
MINERALS = [
    "Kaolinite CM9                 BECKb AREF",
    "Dickite NMNH106242            BECKb AREF",
    "Halloysite CM13               BECKb AREF",
    "Alunite GDS84 Na03            BECKa AREF",
    "Jarosite GDS99 K 200C Syn     BECKa AREF",
    "Gypsum SU2202                 BECKa AREF",
    "Muscovite GDS107              BECKa AREF",
    "Illite IMt-1.a                BECKb AREF",
    "Montmorillonite SWy-1         BECKb AREF",
    "Nontronite SWa-1.a            BECKb AREF",
    "Pyrophyllite PYS1A <850um     BECKa AREF",
    "Buddingtonite GDS85 D-206     BECKb AREF",
    "Chlorite SMR-13.a 104-150um   BECKa AREF",
    "Epidote GDS26.a 75-200um      BECKb AREF",
    "Calcite WS272                 BECKa AREF",
    "Dolomite HS102.3B             BECKb AREF",
    "Goethite WS222 Medium Gr.     BECKa AREF",
    "Hematite GDS27                BECKa AREF",
    "Chalcopyrite S26-36           BECKb AREF",
    "Pyrite HS35.3                 BECKb AREF",
    "Opal TM8896 (Hyalite)         BECKa AREF",
    "Quartz GDS31 0-74um fr        BECKa AREF",
    "Lawn_Grass GDS91 green        BECKa AREF",
    "Grass_Golden_Dry GDS480      ASDFRa AREF",
]


# A small training library: several complete (Beckman) spectra per mineral, for grouped validation.
TRAIN_MINERALS = {"Kaolinite": 4, "Alunite": 4, "Calcite": 3, "Goethite": 4, "Muscovite": 4, "Montmorillonite": 4}


def main():
    sys.path.insert(0, ROOT)
    from core.hyperspectral import spectral_library
    from core.hyperspectral import library_writers

    os.makedirs(OUT, exist_ok=True)
    for tile in TILES:
        for ext in (".img", ".hdr"):
            shutil.copyfile(os.path.join(SHARED, "hyperspectral", tile + ext), os.path.join(OUT, tile + ext))
    usgs = spectral_library.read_library(os.path.join(SHARED, "hyperspectral", "s07_AV95_envi.sli"))
    wanted = [" ".join(m.split()) for m in MINERALS]
    subset = usgs.subset(wanted)
    subset.names = [" ".join(n.split()) for n in subset.names]
    subset.source = "USGS splib07a convolved to AVIRIS-1995 (Kokaly et al. 2017), subset for OreMap tests"
    library_writers.write_envi_library(subset, os.path.join(OUT, "usgs_minerals.sli"))
    print(f"{len(subset.names)} spectra, {subset.wavelengths.size} channels -> {OUT}/usgs_minerals.sli")
    import numpy as np

    complete = [n for n, s in zip(usgs.names, usgs.spectra) if np.isfinite(s).all() and " BECK" in n]
    picked = [n for mineral, count in TRAIN_MINERALS.items()
              for n in [c for c in complete if c.startswith(mineral + " ")][:count]]
    train = usgs.subset(picked)
    train.names = [" ".join(n.split()) for n in train.names]
    train.source = "USGS splib07a convolved to AVIRIS-1995 (Kokaly et al. 2017), training subset for OreMap tests"
    library_writers.write_envi_library(train, os.path.join(OUT, "usgs_train.sli"))
    print(f"{len(train.names)} spectra -> {OUT}/usgs_train.sli")
    write_jasper_ridge()


def write_jasper_ridge(size=40, offset=(30, 30)):
    """A 40 x 40 window of the real AVIRIS Jasper Ridge scene as delivered: uint16 (reflectance x 10000),
    198 of the 224 AVIRIS channels, wavelengths as GeoTIFF band metadata, no georeferencing.

    The kept channels' centres are taken in the sensor's channel order (the AVIRIS-1995 wavelength record,
    the aviris_classic preset), not from a library sorted by wavelength: where AVIRIS's spectrometers
    overlap the two orders differ."""
    import numpy as np
    import rasterio
    import scipy.io

    from core.engine.wavelengths import BandInfo, band_tags
    from core.hyperspectral import sensor_presets

    aviris_wavelengths = sensor_presets.preset("AVIRIS-Classic").centers   # channel order

    mat = scipy.io.loadmat(os.path.join(SHARED, "hyperspectral", "jasperRidge2_R198.mat"))
    bands = mat["SlectBands"].ravel().astype(int)  # 1-based AVIRIS channels kept
    n = int(mat["nRow"][0, 0])
    cube = mat["Y"].reshape(len(bands), n, n, order="F")  # pixels stored column by column
    r, c = offset
    window = cube[:, r:r + size, c:c + size]
    info = BandInfo(centers=np.asarray(aviris_wavelengths)[bands - 1], fwhm=None, bad=None)
    path = os.path.join(OUT, "jasper_ridge_40x40.tif")
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=len(bands), dtype="uint16",
                       compress="deflate", predictor=2, tiled=False) as dst:
        dst.write(window)
        for i, tags in enumerate(band_tags(info), start=1):
            dst.update_tags(i, **tags)
    print(f"Jasper Ridge {size} x {size} x {len(bands)} -> {path}")


if __name__ == "__main__":
    main()
