"""Small sensor products built field by field after the published product specifications.

No real EMIT, EnMAP or PRISMA product can be downloaded here, so the tests write tiny ones with the
structure the readers in ``core/hyperspectral/sensor_products.py`` follow (see its docstring for the versions):
the same variable, group and attribute names, types, dimension orders, band order, scale and fill
values. The pixels are real USGS splib07 spectra (``test/data/usgs_minerals.sli``) of known minerals
resampled to each sensor's bands, so a classifier must find those minerals again.

Band centres and FWHM: the presets in ``core/hyperspectral/sensor_data`` (regular grids over each sensor's documented
range where the exact per-band table is not published with the product description; see
``core/hyperspectral/sensor_data/SOURCES.md``). Only the formats, not the exact centres, are what these files test.
"""

import os

import numpy as np

from conftest import USGS_LIBRARY

from oremap.core.hyperspectral.spectral_library import read_library
from oremap.core.engine.wavelengths import BandInfo, resample_spectra

#: row of the fixture scenes -> (library spectrum, class of the bundled model)
MINERALS = [("Kaolinite CM9", "Kaolinite"), ("Alunite GDS84", "Alunite"), ("Calcite WS272", "Calcite"),
            ("Muscovite GDS107", "Muscovite-Illite")]


def mineral_spectra(centers, fwhm):
    """(n_minerals, n_bands) reflectance of :data:`MINERALS` at the given bands (NaN beyond the library)."""
    lib = read_library(USGS_LIBRARY).subset([m for m, _ in MINERALS])
    return resample_spectra(lib.spectra, lib.wavelengths, BandInfo(centers=centers, fwhm=fwhm))


def scene(centers, fwhm, rows, cols, seed=0):
    """(rows, cols, bands) reflectance: each row one mineral (cycling), brightness 0.85-1.05."""
    rng = np.random.default_rng(seed)
    spectra = np.nan_to_num(mineral_spectra(centers, fwhm), nan=0.05)
    labels = [MINERALS[r % len(MINERALS)][1] for r in range(rows)]
    cube = spectra[[r % len(MINERALS) for r in range(rows)]][:, None, :] * rng.uniform(0.85, 1.05, (rows, cols, 1))
    return cube.astype(np.float32), labels


# ---------------------------------------------------------------------------
# EMIT L2A RFL (NetCDF4, written with GDAL's multidimensional netCDF driver)
# ---------------------------------------------------------------------------

EMIT_NAME = "EMIT_L2A_RFL_001_20230101T000000_2300100_001.nc"
EMIT_MASK_NAME = "EMIT_L2A_MASK_001_20230101T000000_2300100_001.nc"
EMIT_MASK_BANDS = ["Cloud flag", "Cirrus flag", "Water flag", "Spacecraft Flag", "Dilated Cloud Flag",
                   "AOD550", "H2O (g cm-2)", "Aggregate Flag"]


def emit_bands():
    from oremap.core.hyperspectral.sensor_presets import preset

    p = preset("EMIT")
    good = ~(((p.centers > 1320) & (p.centers < 1440)) | ((p.centers > 1770) & (p.centers < 1960)))
    return p.centers, p.fwhm, good


def _md_array(group, name, dims, values, gdal_type, attrs=None, nodata=None):
    from osgeo import gdal

    array = group.CreateMDArray(name, dims, gdal.ExtendedDataType.Create(gdal_type))
    if nodata is not None:
        array.SetNoDataValueDouble(nodata)
    array.Write(np.ascontiguousarray(values))
    for key, value in (attrs or {}).items():
        _attr(array, key, value)
    return array


def _attr(obj, key, value):
    from osgeo import gdal

    if isinstance(value, str):
        a = obj.CreateAttribute(key, [], gdal.ExtendedDataType.CreateString())
    else:
        value = np.atleast_1d(np.asarray(value, np.float64))
        a = obj.CreateAttribute(key, [value.size] if value.size > 1 else [],
                                gdal.ExtendedDataType.Create(gdal.GDT_Float64))
        value = value.tolist() if value.size > 1 else float(value[0])
    a.Write(value)


def make_emit(folder, lines=8, samples=6, with_mask=True, glt_fill=None):
    """An EMIT L2A RFL granule and its mask granule.

    The swath (lines x samples) lies rotated on the map grid: map cell (row, col) of the
    (samples + 2) x (lines + 2) grid takes swath line ``col - 1`` and sample ``samples - row``
    (1-based in the GLT), inside a one-cell border of GLT 0 (no data). Swath pixel (0, 0) carries
    the fill value, swath pixel (1, 1) is flagged in the mask's Aggregate Flag.

    ``glt_fill``: a GLT re-saved with that declared ``_FillValue`` in the border instead of 0 (the
    product itself writes 0).

    Returns a dict with the paths, the swath cube, its labels, the band arrays and the geotransform.
    """
    from osgeo import gdal

    centers, fwhm, good = emit_bands()
    cube, labels = scene(centers, fwhm, lines, samples, seed=3)
    cube[0, 0, :] = -9999.0
    path = os.path.join(folder, EMIT_NAME)
    ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(path)
    root = ds.GetRootGroup()
    d_down = root.CreateDimension("downtrack", None, None, lines)
    d_cross = root.CreateDimension("crosstrack", None, None, samples)
    d_bands = root.CreateDimension("bands", None, None, centers.size)
    oy, ox = samples + 2, lines + 2
    geotransform = [-117.30, 0.000542232520, -0.0, 36.10, -0.0, -0.000542232520]
    _attr(root, "title", "EMIT L2A Surface Reflectance 60 m V001")
    _attr(root, "geotransform", geotransform)
    _attr(root, "spatial_ref", 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
          'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
          'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],'
          'AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]')
    _attr(root, "spatialResolution", 0.000542232520)
    _attr(root, "time_coverage_start", "2023-01-01T00:00:00+0000")
    _md_array(root, "reflectance", [d_down, d_cross, d_bands], cube, gdal.GDT_Float32,
              {"long_name": "Surface Reflectance", "units": "unitless"}, nodata=-9999.0)
    sbp = root.CreateGroup("sensor_band_parameters")
    _md_array(sbp, "wavelengths", [d_bands], centers.astype(np.float32), gdal.GDT_Float32,
              {"long_name": "Wavelength Centers", "units": "nm"})
    _md_array(sbp, "fwhm", [d_bands], fwhm.astype(np.float32), gdal.GDT_Float32,
              {"long_name": "Full Width at Half Max", "units": "nm"})
    _md_array(sbp, "good_wavelengths", [d_bands], good.astype(np.uint8), gdal.GDT_Byte,
              {"long_name": "Wavelengths where reflectance is useable: 1 = good data, 0 = bad data"})
    loc = root.CreateGroup("location")
    d_oy = root.CreateDimension("ortho_y", None, None, oy)
    d_ox = root.CreateDimension("ortho_x", None, None, ox)
    glt_x = np.zeros((oy, ox), np.int32)
    glt_y = np.zeros((oy, ox), np.int32)
    for row in range(1, oy - 1):
        for col in range(1, ox - 1):
            glt_y[row, col] = col       # swath line col - 1, 1-based
            glt_x[row, col] = samples - row + 1  # swath sample samples - row, 1-based
    for name, glt, title in (("glt_x", glt_x, "GLT Sample Lookup"), ("glt_y", glt_y, "GLT Line Lookup")):
        stored = glt if glt_fill is None else np.where(glt == 0, glt_fill, glt).astype(np.int32)
        _md_array(loc, name, [d_oy, d_ox], stored, gdal.GDT_Int32, {"long_name": title}, nodata=glt_fill)
    lat = 36.10 - 0.0005 * np.arange(lines)[:, None] * np.ones((1, samples))
    _md_array(loc, "lat", [d_down, d_cross], lat, gdal.GDT_Float64, {"units": "degrees_north"})
    _md_array(loc, "lon", [d_down, d_cross], -117.3 + 0.0005 * np.ones((lines, 1)) * np.arange(samples),
              gdal.GDT_Float64, {"units": "degrees_east"})
    del ds
    out = {"path": path, "cube": cube, "labels": labels, "centers": centers, "fwhm": fwhm, "good": good,
           "geotransform": geotransform, "glt_x": glt_x, "glt_y": glt_y, "mask": None}
    if with_mask:
        mask_path = os.path.join(folder, EMIT_MASK_NAME)
        ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(mask_path)
        root = ds.GetRootGroup()
        d_down = root.CreateDimension("downtrack", None, None, lines)
        d_cross = root.CreateDimension("crosstrack", None, None, samples)
        d_mask = root.CreateDimension("bands", None, None, len(EMIT_MASK_BANDS))
        mask = np.zeros((lines, samples, len(EMIT_MASK_BANDS)), np.float32)
        mask[:, :, 5] = 0.08  # AOD550
        mask[:, :, 6] = 1.2   # water vapour
        mask[1, 1, [0, 7]] = 1.0  # cloud, hence the aggregate flag
        _md_array(root, "mask", [d_down, d_cross, d_mask], mask, gdal.GDT_Float32, nodata=-9999.0)
        sbp = root.CreateGroup("sensor_band_parameters")
        names = sbp.CreateMDArray("mask_bands", [d_mask], gdal.ExtendedDataType.CreateString())
        names.Write(EMIT_MASK_BANDS)
        del ds
        out["mask"] = mask_path
    return out


# ---------------------------------------------------------------------------
# EnMAP L2A (GeoTIFF + METADATA.XML)
# ---------------------------------------------------------------------------

ENMAP_STEM = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"


def enmap_bands():
    """(centres, fwhm, detector) sorted by wavelength as in the L2A product (VNIR and SWIR interleave)."""
    from oremap.core.hyperspectral.sensor_presets import preset

    p = preset("EnMAP")
    return p.centers, p.fwhm, np.array(p.detectors, dtype=object)


def make_enmap(folder, rows=8, cols=6, cloud=((2, 3),), cirrus=None, filled_bands=(), image_format="GTiff",
               snow=None, haze=None):
    """An EnMAP L2A product: SPECTRAL_IMAGE.TIF (int16, nodata -32768), METADATA.XML, QL_QUALITY_CLOUD.TIF.

    ``cirrus``: ``{(row, col): level}`` of a QL_QUALITY_CIRRUS layer (0 none, 1 thin, 2 medium, 3 thick,
    255 fill); ``snow``, ``haze``: pixels ``(row, col)`` flagged 1 in a QL_QUALITY_SNOW / _HAZE layer;
    ``filled_bands``: product band indexes the processor filled with the nodata value in every
    pixel; ``image_format`` "ENVI": the image ordered as ENVI band-sequential (``-SPECTRAL_IMAGE.BSQ`` with
    its ``.HDR``), the quality layers likewise.
    """
    import rasterio

    centers, fwhm, detectors = enmap_bands()
    cube, labels = scene(centers, fwhm, rows, cols, seed=5)
    gain, offset = 1.0e-4, 0.0
    dn = np.round((cube - offset) / gain).astype(np.int16)
    dn[0, 0, :] = -32768
    dn[:, :, list(filled_bands)] = -32768
    stem = os.path.join(folder, ENMAP_STEM)
    transform = rasterio.Affine(30.0, 0.0, 368000.0, 0.0, -30.0, 5812000.0)
    ending = ".BSQ" if image_format == "ENVI" else ".TIF"
    profile = dict(driver=image_format, width=cols, height=rows, count=centers.size, dtype="int16", nodata=-32768,
                   crs="EPSG:32633", transform=transform)
    if image_format == "GTiff":
        profile["interleave"] = "band"
    with rasterio.open(stem + "-SPECTRAL_IMAGE" + ending, "w", **profile) as dst:
        dst.write(np.moveaxis(dn, -1, 0))
    mask = np.zeros((rows, cols), np.uint8)
    for r, c in cloud:
        mask[r, c] = 1
    layers = [("CLOUD", mask), ("CLOUDSHADOW", np.zeros_like(mask))]
    if cirrus is not None:
        levels = np.zeros_like(mask)
        for (r, c), level in cirrus.items():
            levels[r, c] = level
        layers.append(("CIRRUS", levels))
    for name, pixels in (("SNOW", snow), ("HAZE", haze)):
        if pixels is not None:
            flags = np.zeros_like(mask)
            for r, c in pixels:
                flags[r, c] = 1
            layers.append((name, flags))
    for name, data in layers:
        with rasterio.open(stem + f"-QL_QUALITY_{name}" + ending, "w", **dict(profile, count=1, dtype="uint8",
                                                                              nodata=None)) as dst:
            dst.write(data[None])
    vnir = [i + 1 for i in range(centers.size) if detectors[i] == "VNIR"]
    swir = [i + 1 for i in range(centers.size) if detectors[i] == "SWIR"]
    bands_xml = "\n".join(
        f'      <bandID number="{i + 1}">\n'
        f"        <wavelengthCenterOfBand>{centers[i]:.3f}</wavelengthCenterOfBand>\n"
        f"        <FWHMOfBand>{fwhm[i]:.3f}</FWHMOfBand>\n"
        f"        <GainOfBand>{gain:.6g}</GainOfBand>\n"
        f"        <OffsetOfBand>{offset:g}</OffsetOfBand>\n"
        f"      </bandID>" for i in range(centers.size))
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<level_X>
  <metadata>
    <schema><processingLevel>L2A</processingLevel></schema>
    <name>{ENMAP_STEM}</name>
  </metadata>
  <product>
    <image><merge><dimension><columns>{cols}</columns><rows>{rows}</rows></dimension></merge></image>
  </product>
  <specific>
    <numberOfBands>{centers.size}</numberOfBands>
    <bandCharacterisation>
{bands_xml}
    </bandCharacterisation>
    <vnirProductQuality><expectedChannelsList>{",".join(map(str, vnir))}</expectedChannelsList></vnirProductQuality>
    <swirProductQuality><expectedChannelsList>{",".join(map(str, swir))}</expectedChannelsList></swirProductQuality>
  </specific>
</level_X>
"""
    with open(stem + "-METADATA.XML", "w", encoding="utf-8") as fh:
        fh.write(xml)
    return {"xml": stem + "-METADATA.XML", "image": stem + "-SPECTRAL_IMAGE" + ending, "cube": dn.astype(np.float64) * gain
            + offset, "labels": labels, "centers": centers, "fwhm": fwhm, "detectors": detectors, "cloud": mask,
            "transform": transform}


# ---------------------------------------------------------------------------
# PRISMA L2D (HDF-EOS5, written with h5py)
# ---------------------------------------------------------------------------

PRISMA_NAME = "PRS_L2D_STD_20230101100000_20230101100004_0001.he5"


def prisma_bands():
    """(cw_vnir, fwhm_vnir, flags_vnir, cw_swir, fwhm_swir, flags_swir) as stored: long to short, 0 = unused."""
    from oremap.core.hyperspectral.sensor_presets import preset

    p = preset("PRISMA")
    det = np.array(p.detectors, dtype=object)
    out = []
    for name, unused in (("VNIR", 3), ("SWIR", 2)):
        cw, fw = p.centers[det == name][::-1], p.fwhm[det == name][::-1]
        cw = np.concatenate([cw, np.zeros(unused)]).astype(np.float32)
        fw = np.concatenate([fw, np.zeros(unused)]).astype(np.float32)
        out += [cw, fw, (cw > 0).astype(np.int8)]
    return tuple(out)


def make_prisma(folder, rows=8, cols=6, errors=None):
    """A PRISMA L2D file: VNIR and SWIR cubes (lines, bands, samples) uint16 with the L2 scale attributes, and
    their error matrices ``VNIR_PIXEL_L2_ERR_MATRIX`` / ``SWIR_...`` (uint8, the cubes' shape; 0 ok, 1 invalid
    in L1, 2 negative and 3 saturated after the atmospheric correction). ``errors``: ``{(cube, row, col, band):
    code}`` with ``cube`` "VNIR" or "SWIR", ``band`` the stored index (long to short) and ``row``/``col`` None for
    every line / sample."""
    import h5py

    cw_v, fw_v, fl_v, cw_s, fw_s, fl_s = prisma_bands()
    vmin, vmax, smin, smax = 0.0, 1.2, 0.0, 0.9
    v_cube, labels = scene(np.where(cw_v > 0, cw_v, 500.0), np.where(fw_v > 0, fw_v, 10.0), rows, cols, seed=7)
    s_cube, _ = scene(np.where(cw_s > 0, cw_s, 1500.0), np.where(fw_s > 0, fw_s, 10.0), rows, cols, seed=7)
    v_dn = np.clip(np.round((v_cube - vmin) / (vmax - vmin) * 65535), 1, 65535).astype(np.uint16)
    s_dn = np.clip(np.round((s_cube - smin) / (smax - smin) * 65535), 1, 65535).astype(np.uint16)
    v_dn[:, :, cw_v == 0] = 0
    s_dn[:, :, cw_s == 0] = 0
    v_dn[0, 0, :], s_dn[0, 0, :] = 0, 0  # outside the image: 0 in every band
    path = os.path.join(folder, PRISMA_NAME)
    ul_e, ul_n = 500015.0, 4500015.0
    with h5py.File(path, "w") as f:
        attrs = {"Product_ID": "PRS_L2D_STD", "Processing_Level": "2D", "Epsg_Code": np.int32(32633),
                 "Product_ULcorner_easting": ul_e, "Product_ULcorner_northing": ul_n,
                 "Product_LRcorner_easting": ul_e + 30.0 * (cols - 1),
                 "Product_LRcorner_northing": ul_n - 30.0 * (rows - 1),
                 "List_Cw_Vnir": cw_v, "List_Fwhm_Vnir": fw_v, "List_Cw_Vnir_Flags": fl_v,
                 "List_Cw_Swir": cw_s, "List_Fwhm_Swir": fw_s, "List_Cw_Swir_Flags": fl_s,
                 "L2ScaleVnirMin": np.float32(vmin), "L2ScaleVnirMax": np.float32(vmax),
                 "L2ScaleSwirMin": np.float32(smin), "L2ScaleSwirMax": np.float32(smax)}
        for key, value in attrs.items():
            f.attrs[key] = value
        fields = f.create_group("HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields")
        # stored (lines, bands, samples), bands in the order of the wavelength lists (long to short)
        fields.create_dataset("VNIR_Cube", data=np.moveaxis(v_dn, -1, 1))
        fields.create_dataset("SWIR_Cube", data=np.moveaxis(s_dn, -1, 1))
        for cube, n in (("VNIR", cw_v.size), ("SWIR", cw_s.size)):
            codes = np.zeros((rows, n, cols), np.uint8)
            for (which, r, c, band), code in (errors or {}).items():
                if which == cube:
                    codes[slice(None) if r is None else r, band, slice(None) if c is None else c] = code
            fields.create_dataset(f"{cube}_PIXEL_L2_ERR_MATRIX", data=codes)
        geo = f.create_group("HDFEOS/SWATHS/PRS_L2D_HCO/Geolocation Fields")
        geo.create_dataset("Latitude", data=np.full((rows, cols), 40.6, np.float32))
        geo.create_dataset("Longitude", data=np.full((rows, cols), 15.0, np.float32))
    v_ref = vmin + v_dn.astype(np.float64) * (vmax - vmin) / 65535
    s_ref = smin + s_dn.astype(np.float64) * (smax - smin) / 65535
    return {"path": path, "vnir": (cw_v, fw_v, v_ref), "swir": (cw_s, fw_s, s_ref), "labels": labels,
            "ul": (ul_e, ul_n)}


def conftest_aviris_ng():
    """The real AVIRIS-NG tile of test/data."""
    from conftest import AVIRIS_NG

    return AVIRIS_NG
