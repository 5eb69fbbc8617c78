#!/usr/bin/env python3
"""Write the sensor presets in core/hyperspectral/sensor_data/ (band centres and FWHM of imaging spectrometers).

AVIRIS-Classic and AVIRIS-NG come from real files in the shared data (``../shared/data/hyperspectral``):
USGS splib07's AVIRIS-1995 wavelength and resolution records (the first two records of
``s07_AV95_envi.sli``) and the ENVI header of an AVIRIS-NG tile; EMIT's are the centres its L2A granules carry,
with its pre-flight FWHM. EnMAP, PRISMA and HyMap are
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


#: EMIT L2A's 285 band centres (nm), as every V001 granule's sensor_band_parameters/wavelengths holds them (the same
#: list in the Earth Engine catalogue's NASA/EMIT/L2A/RFL reflectance_wavelengths and in public EMIT code).
EMIT_CENTRES = np.array([
    381.0056, 388.4092, 395.8158, 403.2254, 410.6380, 418.0536, 425.4721, 432.8927, 440.3173, 447.7428,
    455.1703, 462.5989, 470.0304, 477.4629, 484.8974, 492.3329, 499.7714, 507.2099, 514.6504, 522.0909,
    529.5333, 536.9768, 544.4213, 551.8667, 559.3142, 566.7616, 574.2090, 581.6585, 589.1080, 596.5583,
    604.0098, 611.4622, 618.9146, 626.3680, 633.8215, 641.2759, 648.7303, 656.1857, 663.6411, 671.0975,
    678.5539, 686.0103, 693.4677, 700.9251, 708.3835, 715.8409, 723.2993, 730.7587, 738.2171, 745.6765,
    753.1359, 760.5963, 768.0557, 775.5161, 782.9775, 790.4379, 797.8994, 805.3618, 812.8232, 820.2846,
    827.7460, 835.2074, 842.6699, 850.1313, 857.5937, 865.0551, 872.5176, 879.9800, 887.4415, 894.9039,
    902.3664, 909.8289, 917.2913, 924.7538, 932.2162, 939.6788, 947.1403, 954.6027, 962.0643, 969.5268,
    976.9883, 984.4498, 991.9114, 999.3729, 1006.8344, 1014.2950, 1021.7566, 1029.2172, 1036.6777,
    1044.1383, 1051.5989, 1059.0596, 1066.5201, 1073.9797, 1081.4404, 1088.9000, 1096.3597, 1103.8184,
    1111.2781, 1118.7368, 1126.1964, 1133.6552, 1141.1129, 1148.5717, 1156.0304, 1163.4882, 1170.9459,
    1178.4037, 1185.8616, 1193.3184, 1200.7761, 1208.2330, 1215.6898, 1223.1467, 1230.6036, 1238.0596,
    1245.5154, 1252.9724, 1260.4283, 1267.8833, 1275.3392, 1282.7942, 1290.2502, 1297.7052, 1305.1603,
    1312.6144, 1320.0685, 1327.5225, 1334.9756, 1342.4287, 1349.8818, 1357.3351, 1364.7872, 1372.2384,
    1379.6907, 1387.1418, 1394.5931, 1402.0433, 1409.4937, 1416.9440, 1424.3933, 1431.8427, 1439.2920,
    1446.7404, 1454.1888, 1461.6372, 1469.0847, 1476.5321, 1483.9796, 1491.4261, 1498.8727, 1506.3192,
    1513.7649, 1521.2104, 1528.6550, 1536.1007, 1543.5454, 1550.9891, 1558.4329, 1565.8766, 1573.3193,
    1580.7621, 1588.2050, 1595.6467, 1603.0886, 1610.5295, 1617.9705, 1625.4104, 1632.8513, 1640.2903,
    1647.7303, 1655.1694, 1662.6074, 1670.0455, 1677.4836, 1684.9209, 1692.3580, 1699.7952, 1707.2314,
    1714.6667, 1722.1030, 1729.5383, 1736.9727, 1744.4071, 1751.8414, 1759.2749, 1766.7084, 1774.1418,
    1781.5743, 1789.0070, 1796.4385, 1803.8701, 1811.3008, 1818.7314, 1826.1611, 1833.5909, 1841.0206,
    1848.4495, 1855.8773, 1863.3052, 1870.7330, 1878.1600, 1885.5869, 1893.0129, 1900.4390, 1907.8640,
    1915.2892, 1922.7133, 1930.1375, 1937.5607, 1944.9839, 1952.4071, 1959.8295, 1967.2518, 1974.6732,
    1982.0946, 1989.5150, 1996.9355, 2004.3550, 2011.7745, 2019.1931, 2026.6118, 2034.0304, 2041.4471,
    2048.8650, 2056.2808, 2063.6965, 2071.1123, 2078.5273, 2085.9421, 2093.3562, 2100.7690, 2108.1821,
    2115.5942, 2123.0063, 2130.4175, 2137.8289, 2145.2390, 2152.6482, 2160.0576, 2167.4670, 2174.8755,
    2182.2830, 2189.6904, 2197.0969, 2204.5034, 2211.9092, 2219.3147, 2226.7195, 2234.1233, 2241.5269,
    2248.9297, 2256.3328, 2263.7346, 2271.1365, 2278.5376, 2285.9387, 2293.3386, 2300.7378, 2308.1360,
    2315.5342, 2322.9326, 2330.3298, 2337.7263, 2345.1216, 2352.5171, 2359.9126, 2367.3071, 2374.7007,
    2382.0935, 2389.4861, 2396.8779, 2404.2695, 2411.6604, 2419.0513, 2426.4402, 2433.8303, 2441.2183,
    2448.6064, 2455.9944, 2463.3816, 2470.7678, 2478.1531, 2485.5386, 2492.9238
])

#: EMIT's pre-flight FWHM (nm) against wavelength: emit-sds-l1b data/EMIT_Wavelengths_20220117.txt (NASA/JPL), which
#: is constant at the ends and linear in between; flight granules carry their own fwhm, which the EMIT reader uses.
EMIT_FWHM = ((380.45, 8.343), (402.81, 8.343), (2504.95, 8.791), (2654.04, 8.792))


def emit():
    c = EMIT_CENTRES
    anchors = np.array(EMIT_FWHM)
    write("emit", c, np.interp(c, anchors[:, 0], anchors[:, 1]), ["EMIT"] * c.size, header="""
EMIT (Earth Surface Mineral Dust Source Investigation, ISS, 2022-), 285 bands 381-2493 nm, about 7.4 nm sampling.
Centres: those of EMIT L2A V001 granules (sensor_band_parameters/wavelengths; also the Earth Engine catalogue's
NASA/EMIT/L2A/RFL reflectance_wavelengths). FWHM: the pre-flight calibration (8.34-8.79 nm, emit-sds-l1b
EMIT_Wavelengths_20220117, NASA/JPL) at those centres; a granule's own fwhm, which the EMIT reader uses, may
differ by a fraction of a nm.""")


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
