"""Imaging spectrometer products as delivered: EMIT L2A RFL, EnMAP L2A and PRISMA L2D.

Each reader turns a product into a :class:`SensorProduct`: the map grid (CRS and geotransform),
the band centres and FWHM in nanometres (sorted by wavelength, bad bands and detector-overlap
edge bands already left out, see :mod:`core.engine.band_order`) and a function that reads full-width
rows of the map grid as reflectance (float32, NaN where the product has no valid value).
:func:`write_geotiff` streams that into a tiled GeoTIFF with the wavelengths and FWHM in the band
metadata (:func:`core.engine.wavelengths.band_tags`), which every OreMap algorithm reads; :func:`prepare_input`
does so once per product (cached) for algorithms given a product as their raster.

Formats (the versions the readers follow; fixtures in ``test/sensor_fixtures.py`` are built
field by field after them):

* **EMIT L2A RFL, collection V001** (NetCDF4; EMIT L2A data product user guide): ``reflectance``
  (downtrack, crosstrack, bands) float32 with ``_FillValue`` -9999; group ``sensor_band_parameters``
  with ``wavelengths``, ``fwhm`` (nm) and ``good_wavelengths`` (1 good, 0 bad); group ``location``
  with ``glt_x`` and ``glt_y`` (ortho_y, ortho_x), 1-based swath sample and line of each map cell,
  0 where none; global attributes ``geotransform`` and ``spatial_ref`` (EPSG:4326) of the map grid.
  The L2A mask granule beside it (``EMIT_L2A_MASK_...nc``: ``mask`` with ``sensor_band_parameters/
  mask_bands``) masks pixels whose ``Aggregate Flag`` is set.
* **EnMAP L2A, processor version 1.x** (GeoTIFF + ``METADATA.XML``; EnMAP L2A product
  specification): ``...-SPECTRAL_IMAGE.TIF`` (int16 with a nodata value; products ordered as ENVI
  ``.BSQ``/``.BIL``/``.BIP`` with a header, JPEG2000 ``.JP2`` or ``_COG.tiff`` are read the same way)
  and ``...-METADATA.XML``
  with ``specific/bandCharacterisation/bandID`` (``wavelengthCenterOfBand``, ``FWHMOfBand``,
  ``GainOfBand``, ``OffsetOfBand``; reflectance = DN x gain + offset) and the VNIR and SWIR channel
  lists ``specific/vnirProductQuality/expectedChannelsList`` and ``swirProductQuality/...``. Quality
  masks beside it (``-QL_QUALITY_CLOUD``, ``-QL_QUALITY_CLOUDSHADOW``, ``-QL_QUALITY_SNOW`` (0/1) and
  ``-QL_QUALITY_CIRRUS`` (0 none, 1 thin, 2 medium, 3 thick); any level from 1 to 254 is flagged, 255 may be
  the layers' fill) become nodata; ``-QL_QUALITY_HAZE`` is not applied (haze is corrected by the processor).
  Bands that hold only the nodata value (the processor fills some water-vapour bands with it) are found on a
  sample of rows and left out. An image that declares no nodata value (an ENVI header without ``data ignore
  value``) gets the L2A fill, -32768, or ``specific/backgroundValue`` where METADATA.XML gives one.
* **PRISMA L2D, product specification issue 2.3** (HDF-EOS5): ``HDFEOS/SWATHS/PRS_L2D_HCO/Data
  Fields/VNIR_Cube`` and ``SWIR_Cube`` (uint16, lines x bands x samples, bands from long to short
  wavelengths); root attributes ``List_Cw_Vnir``/``List_Cw_Swir``, ``List_Fwhm_Vnir``/``_Swir``
  (nm, 0 for unused bands), ``List_Cw_Vnir_Flags``/``_Swir_Flags``, ``L2ScaleVnirMin``/``Max`` and
  ``L2ScaleSwirMin``/``Max`` (reflectance = min + DN (max - min) / 65535), ``Epsg_Code`` and the
  pixel-centre corners ``Product_ULcorner_easting``/``_northing`` and ``Product_LRcorner_...`` (as
  prismaread, EnMAP-Box and SNAP read them; line 0 is the north edge, sample 0 the west one, no flip).
  Pixels that are 0 in every band are nodata. ``VNIR_PIXEL_L2_ERR_MATRIX`` and ``SWIR_PIXEL_L2_ERR_MATRIX``
  (the cubes' shape; 0 ok, 1 invalid in L1, 2 negative and 3 saturated after the atmospheric correction, as
  SNAP's reader decodes them) make a pixel nodata where any band kept is flagged; a band flagged in most pixels
  is left out instead, and so are bands flagged each in pixels of their own when together they would leave over 5 %
  of the pixels as nodata. L2D carries no cloud mask (only L1 does).

EnMAP L2A and PRISMA L2D products are also taken as the ZIP archives they are delivered in (``ENMAP01-...L2A...ZIP``
holding ``<product>/<product>-METADATA.XML`` and its layers, as EnMAP-Box, EnPT and SNAP read it;
``PRS_L2D_...zip`` holding the ``.he5``), or as a file inside one (GDAL's ``/vsizip/`` path): :func:`unpacked`
extracts the files the reader takes values from into a temporary folder.

GDAL's own netCDF and HDF5 drivers read the files (the multidimensional API), so nothing beyond
QGIS's GDAL is needed.
"""

import contextlib
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

import numpy as np

from ..engine.files import replace
from ..engine.band_order import overlap_bands
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.wavelengths import BandInfo, band_tags

NODATA = -9999.0

EMIT_L2A_RFL = "EMIT L2A RFL"
ENMAP_L2A = "EnMAP L2A"
PRISMA_L2D = "PRISMA L2D"


@dataclass
class SensorProduct:
    """A product ready to stream onto its map grid.

    ``read_rows(row, count)`` returns ``(count, width, n_bands)`` float32 reflectance, NaN where invalid,
    bands in the order of ``band_info`` (by wavelength).
    """

    kind: str
    path: str
    width: int
    height: int
    crs_wkt: str
    geotransform: tuple
    band_info: BandInfo
    read_rows: object
    bytes_per_row: int = 0  # memory one output row needs to read (input included)
    notes: list = field(default_factory=list)
    handles: list = field(default_factory=list)  # open GDAL datasets the reader's arrays belong to
    limits: dict = field(default_factory=dict)  # reader's own memory limits (bytes), set by write_geotiff

    def close(self):
        """Close the datasets the reader holds (a product is read once: :func:`write_geotiff` closes it)."""
        for handle in self.handles:
            close = getattr(handle, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing what is already closed, or a handle without a file
                    pass
        self.handles = []


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------

_GDAL_URI = re.compile(r'^(?:NETCDF|HDF5):"?([^"]+?)"?:')


#: The file endings an EnMAP image or quality layer is delivered with (GeoTIFF, ENVI, JPEG2000, COG),
#: with the ENVI header beside an ENVI image.
_ENMAP_ENDINGS = (".TIF", ".TIFF", ".GEOTIFF", "_COG.TIFF", ".BSQ", ".BIL", ".BIP", ".JP2", ".JPEG2000", ".HDR")
_ENMAP_IMAGE_SUFFIX = r"(_COG\.TIFF|\.TIFF?|\.GEOTIFF|\.BSQ|\.BIL|\.BIP|\.JP2|\.JPEG2000|\.HDR)"

#: The fill value of EnMAP L2A reflectance, whatever the file format declares (SNAP's EnMAP reader uses it for every
#: L2A; ``specific/backgroundValue`` of METADATA.XML where given).
ENMAP_FILL = -32768.0


def _enmap_layer(stem, layer):
    """The file of an EnMAP product's ``layer`` (``SPECTRAL_IMAGE``, ``QL_QUALITY_CLOUD``...) beside
    ``stem``, whatever format it was ordered in (any letter case), else None."""
    folder, prefix = os.path.split(stem)
    wanted = (os.path.basename(prefix) + "-" + layer).upper()
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return None
    for ending in _ENMAP_ENDINGS[:-1]:
        for name in names:
            if name.upper() == wanted + ending:
                return os.path.join(folder, name)
    return None


_VSIZIP = re.compile(r"^/vsizip/+\{?(.+?\.zip)\}?(?:/.*)?$", re.IGNORECASE)


def product_file(path):
    """The file behind ``path``: a GDAL subdataset URI (``NETCDF:"x.nc":reflectance``) gives ``x.nc``; a file inside
    a product's ZIP archive (``/vsizip//data/ENMAP01-...ZIP/.../...-SPECTRAL_IMAGE.TIF``, as QGIS opens it) gives the
    archive."""
    path = str(path).split("|")[0]
    match = _GDAL_URI.match(path)
    if match:
        return match.group(1)
    match = _VSIZIP.match(path)
    if match:
        archive = match.group(1)
        archive = archive if archive.startswith("/") or not path.startswith("/vsizip//") else "/" + archive
        if _zip_kind(archive) is not None:
            return archive
    return path


def _zip_kind(path):
    """The product kind of a product's ZIP archive, by its delivered name (``ENMAP01-...L2A...ZIP``,
    ``PRS_L2D_...zip``), else None."""
    name = os.path.basename(str(path)).upper()
    if not name.endswith(".ZIP"):
        return None
    if name.startswith("ENMAP") and "L2A" in name:
        return ENMAP_L2A
    if name.startswith("PRS_L2D"):
        return PRISMA_L2D
    return None


def enmap_metadata(path):
    """The METADATA.XML of an EnMAP product given by its XML or any of its TIFs, else None."""
    name = os.path.basename(path)
    if not name.upper().startswith("ENMAP") or "L2A" not in name.upper():
        return None
    if name.upper().endswith("METADATA.XML"):
        return path
    stem = re.sub(r"-(SPECTRAL_IMAGE|QL_[A-Z_]+)" + _ENMAP_IMAGE_SUFFIX + "$", "", name, flags=re.IGNORECASE)
    for suffix in ("-METADATA.XML", "-METADATA.xml"):
        candidate = os.path.join(os.path.dirname(path), stem + suffix)
        if os.path.exists(candidate):
            return candidate
    return None


def detect(path):
    """The product kind of ``path`` (:data:`EMIT_L2A_RFL`, :data:`ENMAP_L2A`, :data:`PRISMA_L2D`) or None."""
    path = product_file(path)
    name = os.path.basename(path).upper()
    if name.endswith(".ZIP"):
        return _zip_kind(path)
    if name.endswith(".NC") and name.startswith("EMIT_L2A_RFL_"):
        return EMIT_L2A_RFL
    if name.endswith((".HE5", ".H5")) and name.startswith("PRS_L2D"):
        return PRISMA_L2D
    if enmap_metadata(path):
        return ENMAP_L2A
    return None


def is_companion(path):
    """True for a file that belongs to a product without being its image: EMIT's mask and uncertainty files,
    EnMAP's quality-layer TIFs (``QL_*``). A folder of products lists them beside the images."""
    name = os.path.basename(product_file(path)).upper()
    if name.startswith("EMIT_L2A_") and name.endswith(".NC"):
        return detect(path) is None
    is_image = re.search(r"-SPECTRAL_IMAGE" + _ENMAP_IMAGE_SUFFIX + "$", name) and not name.endswith(".HDR")
    if name.endswith("METADATA.XML") or is_image:
        return False
    return bool(enmap_metadata(product_file(path)))


def open_product(path, feedback=None):
    """Read the metadata of a product and return its :class:`SensorProduct`.

    Raises :class:`OreMapError` (parameter ``"raster"``) for a file that is not one of the products, or a
    product whose metadata do not follow the specification (the message names the file and field). A product's
    ZIP is opened through :func:`unpacked` (here a ValueError: its files must stay while it is read).
    """
    feedback = ensure(feedback)
    path = product_file(path)
    if not os.path.exists(path):
        raise OreMapError(f"'{path}' does not exist.", "raster", "Choose the product file.")
    kind = detect(path)
    readers = {EMIT_L2A_RFL: _open_emit, ENMAP_L2A: _open_enmap, PRISMA_L2D: _open_prisma}
    if kind is None:
        raise OreMapError(
            f"'{os.path.basename(path)}' is not an EMIT L2A RFL (EMIT_L2A_RFL_*.nc), EnMAP L2A (*-METADATA.XML or "
            "*-SPECTRAL_IMAGE file beside it, or the product's ZIP) or PRISMA L2D (PRS_L2D_*.he5, or its ZIP) "
            "product.", "raster", "Choose the product as delivered, with its original file name.")
    if _zip_kind(path) is not None:   # its files are read row by row: they must stay while it is read
        raise ValueError("A product's ZIP is opened through unpacked(), which extracts it for as long as it is read.")
    product = readers[kind](path)
    for note in product.notes:
        feedback.info(f"{kind} '{os.path.basename(path)}': {note}")
    return product


def _fail(path, what):
    return OreMapError(f"'{os.path.basename(path)}' does not look like a valid product: {what}.", "raster",
                       "Use the product file as delivered.")


def _select_bands(centers, fwhm, good, detectors, notes, path):
    """Indexes of the bands to write, by wavelength: good bands without the overlap edge bands."""
    centers = np.asarray(centers, float)
    bad = ~np.asarray(good, bool) | ~np.isfinite(centers) | (centers <= 0)
    if bad.any():
        notes.append(f"{int(bad.sum())} bad bands left out (product's band flags).")
    dropped, overlap_notes = overlap_bands(centers, fwhm, bad, detectors)
    notes.extend(overlap_notes)
    keep = np.flatnonzero(~bad & ~dropped)
    keep = keep[np.argsort(centers[keep], kind="stable")]
    if keep.size < 2:
        raise _fail(path, "fewer than two usable bands")
    return keep


# ---------------------------------------------------------------------------
# GDAL multidimensional helpers
# ---------------------------------------------------------------------------

def _open_multidim(path):
    from osgeo import gdal

    # the netCDF and HDF5 libraries of some GDAL builds open no path with letters beyond ASCII on Windows
    fix = ("Move the file to a folder whose path has no accented or other non-ASCII letters, then try again."
           if not str(path).isascii() else
           "The file is damaged or not a NetCDF/HDF5 product (a download cut short, or another file renamed): "
           "download the product again.")
    try:
        ds = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER)
    except RuntimeError as exc:  # when the caller's GDAL raises exceptions
        raise OreMapError(f"GDAL cannot open '{os.path.basename(path)}': {exc}", "raster", fix) from None
    if ds is None:
        raise OreMapError(f"GDAL cannot open '{os.path.basename(path)}'.", "raster", fix)
    return ds


def _quiet(call, *args):
    """``call(*args)``, None where GDAL finds nothing (whether or not GDAL raises exceptions)."""
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        return call(*args)
    except RuntimeError:
        return None
    finally:
        gdal.PopErrorHandler()


def _group(root, *names):
    group = root
    for name in names:
        group = _quiet(group.OpenGroup, name) if group is not None else None
    return group


def _array(group, name, path):
    array = _quiet(group.OpenMDArray, name) if group is not None else None
    if array is None:
        raise _fail(path, f"no variable '{name}'")
    return array


def _attribute(obj, name, path=None, default=None):
    attr = _quiet(obj.GetAttribute, name)
    if attr is None:
        if path is not None and default is None:
            raise _fail(path, f"no attribute '{name}'")
        return default
    value = attr.Read()
    return value


# ---------------------------------------------------------------------------
# EMIT L2A RFL
# ---------------------------------------------------------------------------

def _glt(array):
    """A geometry lookup table as int64, its declared fill value (-9999 in re-saved or clipped files; the
    product itself writes 0) turned into 0, "no swath pixel"."""
    values = np.asarray(array.ReadAsArray(), np.int64)
    fill = array.GetNoDataValueAsDouble()
    for value in {-9999.0, fill} - {None, 0.0}:
        if np.isfinite(value):
            values[values == int(value)] = 0
    return values


def _open_emit(path):
    ds = _open_multidim(path)
    root = ds.GetRootGroup()
    refl = _array(root, "reflectance", path)
    dims = [d.GetSize() for d in refl.GetDimensions()]
    if len(dims) != 3:
        raise _fail(path, "'reflectance' is not (downtrack, crosstrack, bands)")
    bands_group = _group(root, "sensor_band_parameters")
    centers = np.asarray(_array(bands_group, "wavelengths", path).ReadAsArray(), float)
    fwhm = np.asarray(_array(bands_group, "fwhm", path).ReadAsArray(), float)
    good_array = _quiet(bands_group.OpenMDArray, "good_wavelengths")
    good = np.ones(centers.size, bool) if good_array is None else np.asarray(good_array.ReadAsArray()) == 1
    if centers.size != dims[2]:
        raise _fail(path, f"{centers.size} wavelengths for {dims[2]} bands")
    location = _group(root, "location")
    glt_x, glt_y = (_glt(_array(location, name, path)) for name in ("glt_x", "glt_y"))
    geotransform = tuple(float(v) for v in np.ravel(_attribute(root, "geotransform", path)))
    crs_wkt = str(_attribute(root, "spatial_ref", path))
    fill = refl.GetNoDataValueAsDouble()
    fill = NODATA if fill is None else fill
    notes = []
    keep = _select_bands(centers, fwhm, good, None, notes, path)
    info = BandInfo(centers=centers[keep], fwhm=fwhm[keep])

    mask_array, aggregate = None, None
    mask_path = _emit_mask(path)
    if mask_path != path and os.path.exists(mask_path):
        mask_ds = _open_multidim(mask_path)
        mask_root = mask_ds.GetRootGroup()
        names_array = _array(_group(mask_root, "sensor_band_parameters"), "mask_bands", mask_path)
        names = [str(n).strip().lower() for n in np.ravel(names_array.Read())]  # strings: Read, not ReadAsArray
        if "aggregate flag" in names:
            mask_array, aggregate = _array(mask_root, "mask", mask_path), names.index("aggregate flag")
            notes.append(f"pixels flagged in the mask granule '{os.path.basename(mask_path)}' (Aggregate Flag) "
                         "are nodata.")
        else:
            notes.append(f"the mask granule '{os.path.basename(mask_path)}' has no 'Aggregate Flag' band: clouds, "
                         "cirrus and water are not masked.")
    else:
        looked = (f"no mask granule ({os.path.basename(mask_path)}) beside the file" if mask_path != path else
                  "the file is not named as EMIT's (EMIT_L2A_RFL_...), so no mask granule was looked for")
        notes.append(f"{looked}: clouds, cirrus and water are not masked. Put the EMIT_L2A_MASK granule of the same "
                     "acquisition in the same folder, under its own name.")
    notes.append(f"orthorectified with the product's geometry lookup table onto its {glt_x.shape[1]} x "
                 f"{glt_x.shape[0]} map grid.")
    n_lines, n_samples = dims[0], dims[1]

    limits = {"read": 64 * 1024 * 1024}  # largest swath box read at once (bytes); write_geotiff sets it
    band_bytes = dims[2] * 4

    def gather(lines, samples):
        """Values (n, kept bands) of swath pixels, read as bounding boxes of at most limits["read"] bytes."""
        values = np.empty((lines.size, keep.size), np.float32)
        flagged = np.zeros(lines.size, bool)
        stack = [np.arange(lines.size)]
        while stack:
            idx = stack.pop()
            ln, sm = lines[idx], samples[idx]
            lo, hi, slo, shi = int(ln.min()), int(ln.max()) + 1, int(sm.min()), int(sm.max()) + 1
            if (hi - lo) * (shi - slo) * band_bytes > limits["read"] and idx.size > 1:
                key = ln if hi - lo >= shi - slo else sm  # halve along the longer side of the box
                order = idx[np.argsort(key, kind="stable")]
                stack += [order[: order.size // 2], order[order.size // 2:]]
                continue
            box = np.asarray(refl.ReadAsArray(array_start_idx=[lo, slo, 0], count=[hi - lo, shi - slo, dims[2]]))
            values[idx] = box[ln - lo, sm - slo][:, keep]
            if mask_array is not None:
                m = np.asarray(mask_array.ReadAsArray(array_start_idx=[lo, slo, aggregate],
                                                      count=[hi - lo, shi - slo, 1]))
                flagged[idx] = m[ln - lo, sm - slo, 0] > 0
        values[values == np.float32(fill)] = np.nan
        values[flagged] = np.nan
        return values

    def read_rows(row, count):
        gx = np.abs(glt_x[row:row + count])  # 1-based; negative = filled from the nearest pixel
        gy = np.abs(glt_y[row:row + count])
        valid = (gx > 0) & (gy > 0)
        out = np.full(gx.shape + (keep.size,), np.nan, np.float32)
        if valid.any():
            lines, samples = gy[valid] - 1, gx[valid] - 1
            if lines.max() >= n_lines or samples.max() >= n_samples:
                raise _fail(path, "the geometry lookup table points outside the swath")
            out[valid] = gather(lines, samples)
        return out

    handles = [ds, root] + ([mask_ds, mask_root] if mask_array is not None else [])
    product = SensorProduct(EMIT_L2A_RFL, path, glt_x.shape[1], glt_x.shape[0], crs_wkt, geotransform, info,
                            read_rows, notes=notes, limits=limits, handles=handles)
    product.bytes_per_row = glt_x.shape[1] * keep.size * 12
    return product


# ---------------------------------------------------------------------------
# EnMAP L2A
# ---------------------------------------------------------------------------

def _numbers(text):
    return [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]


def _open_enmap(path):
    import rasterio

    xml_path = enmap_metadata(path)
    stem = xml_path[: -len("-METADATA.XML")]
    image = _enmap_layer(stem, "SPECTRAL_IMAGE")
    if image is None:
        raise _fail(xml_path, "no -SPECTRAL_IMAGE file (.TIF, .BSQ, .BIL, .BIP, .JP2) beside the METADATA.XML")
    try:
        root = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as exc:
        raise _fail(xml_path, f"METADATA.XML cannot be read ({exc})") from None
    bands = root.findall("specific/bandCharacterisation/bandID")
    if not bands:
        raise _fail(xml_path, "no specific/bandCharacterisation/bandID in METADATA.XML")

    def value(band, tag):
        node = band.find(tag)
        if node is None or not (node.text or "").strip():
            raise _fail(xml_path, f"band {band.get('number')} has no {tag}")
        return float(node.text)

    centers = np.array([value(b, "wavelengthCenterOfBand") for b in bands])
    fwhm = np.array([value(b, "FWHMOfBand") for b in bands])
    gains = np.array([value(b, "GainOfBand") for b in bands])
    offsets = np.array([value(b, "OffsetOfBand") for b in bands])
    detectors = np.array(["band"] * centers.size, dtype=object)
    for name in ("vnir", "swir"):
        node = root.find(f"specific/{name}ProductQuality/expectedChannelsList")
        if node is not None and node.text:
            channels = [int(v) - 1 for v in _numbers(node.text)]
            detectors[[c for c in channels if 0 <= c < centers.size]] = name.upper()
    with rasterio.open(image) as ds:
        if ds.count != centers.size:
            raise _fail(xml_path, f"METADATA.XML describes {centers.size} bands, the SPECTRAL_IMAGE has {ds.count}")
        width, height, crs_wkt = ds.width, ds.height, ds.crs.to_wkt() if ds.crs else ""
        geotransform = ds.transform.to_gdal()
        nodata = ds.nodata
    notes = []
    if nodata is None:   # an image ordered without a nodata tag (ENVI header without 'data ignore value'...)
        text = (root.findtext("specific/backgroundValue") or "").strip()
        try:
            nodata = float(text) if text else ENMAP_FILL
        except ValueError:
            nodata = ENMAP_FILL
        notes.append(f"the SPECTRAL_IMAGE declares no nodata value: {nodata:g}, the L2A fill value, is nodata.")
    has_detectors = set(detectors) >= {"VNIR", "SWIR"}
    keep = _select_bands(centers, fwhm, np.ones(centers.size, bool), detectors if has_detectors else None,
                         notes, xml_path)
    empty = _enmap_empty_bands(image, keep, nodata)
    if empty.size:
        notes.append(f"{empty.size} bands hold only the nodata value ({_nm_list(centers[empty])} nm): left out.")
        keep = keep[~np.isin(keep, empty)]
        if keep.size < 2:
            raise _fail(xml_path, "fewer than two bands hold data")
    masks = [m for m in (_enmap_layer(stem, f"QL_QUALITY_{name}") for name in ENMAP_MASKED) if m is not None]
    if masks:
        layers = [os.path.basename(m).split("-")[-1] for m in masks]
        cirrus = " (every cirrus level, thin to thick)" if any("CIRRUS" in n.upper() for n in layers) else ""
        notes.append("pixels flagged in " + ", ".join(layers) + f" are nodata{cirrus}.")
    notes.append("reflectance = DN x GainOfBand + OffsetOfBand (METADATA.XML).")
    info = BandInfo(centers=centers[keep], fwhm=fwhm[keep])

    def read_rows(row, count):
        from rasterio.windows import Window

        window = Window(0, row, width, count)
        with rasterio.open(image) as ds:
            raw = ds.read([int(b) + 1 for b in keep], window=window)
        out = raw.astype(np.float32) * gains[keep, None, None].astype(np.float32) \
            + offsets[keep, None, None].astype(np.float32)
        if nodata is not None:
            out[raw == nodata] = np.nan
        invalid = np.zeros((count, width), bool)
        for mask_path in masks:
            with rasterio.open(mask_path) as m:
                level = m.read(1, window=window)
                invalid |= (level >= 1) & (level <= 254)  # 255: the layer's fill
        out = np.moveaxis(out, 0, -1)
        out[invalid] = np.nan
        return out

    return SensorProduct(ENMAP_L2A, xml_path, width, height, crs_wkt, geotransform, info, read_rows,
                         bytes_per_row=width * keep.size * 10, notes=notes)


#: EnMAP quality layers whose flagged pixels are nodata: clouds, their shadows, cirrus of every level, and snow (valid
#: reflectance, but of snow, not of the ground, and its short-wave absorptions pass for minerals'). QL_QUALITY_HAZE is
#: kept: the processor corrects haze, and it weakens the visible bands most, the short-wave features least.
ENMAP_MASKED = ("CLOUD", "CLOUDSHADOW", "CIRRUS", "SNOW")


def _nm_list(values, shown=6):
    text = ", ".join(f"{v:.0f}" for v in values[:shown])
    return text + (f" and {len(values) - shown} more" if len(values) > shown else "")


def _enmap_empty_bands(image, keep, nodata, rows=16):
    """Indexes among ``keep`` of the bands that hold only ``nodata`` on ``rows`` rows spread over the
    image, wherever another band holds data (the DLR processor fills some water-vapour bands)."""
    import rasterio
    from rasterio.windows import Window

    if nodata is None:
        return np.array([], int)
    with rasterio.open(image) as ds:
        picks = np.unique(np.linspace(0, ds.height - 1, min(rows, ds.height)).round().astype(int))
        has_data = np.zeros(keep.size, bool)
        for row in picks:
            raw = ds.read([int(b) + 1 for b in keep], window=Window(0, int(row), ds.width, 1))[:, 0, :]
            filled = raw == nodata
            pixels = ~filled.all(axis=0)  # pixels where some band holds data
            has_data |= (~filled[:, pixels]).any(axis=1)
            if has_data.all():
                return np.array([], int)
    return keep[~has_data] if has_data.any() else np.array([], int)


# ---------------------------------------------------------------------------
# PRISMA L2D
# ---------------------------------------------------------------------------

_PRISMA_FIELDS = ("HDFEOS", "SWATHS", "PRS_L2D_HCO", "Data Fields")


def _open_prisma(path):
    from osgeo import osr

    ds = _open_multidim(path)
    root = ds.GetRootGroup()
    fields = _group(root, *_PRISMA_FIELDS)
    if fields is None:
        raise _fail(path, "no group " + "/".join(_PRISMA_FIELDS))
    cubes, centers, fwhm, good, detectors, scales, errors, notes = [], [], [], [], [], [], [], []
    for name, cube_name in (("Vnir", "VNIR_Cube"), ("Swir", "SWIR_Cube")):
        cube = _array(fields, cube_name, path)
        dims = [d.GetSize() for d in cube.GetDimensions()]
        error = _quiet(fields.OpenMDArray, f"{name.upper()}_PIXEL_L2_ERR_MATRIX")
        if error is not None and [d.GetSize() for d in error.GetDimensions()] != dims:
            notes.append(f"{name.upper()}_PIXEL_L2_ERR_MATRIX is not of {cube_name}'s shape: not applied.")
            error = None
        errors.append(error)
        cw = np.asarray(_attribute(root, f"List_Cw_{name}", path), float).ravel()
        fw = np.asarray(_attribute(root, f"List_Fwhm_{name}", path), float).ravel()
        flags = _attribute(root, f"List_Cw_{name}_Flags", None, None)
        ok = np.ones(cw.size, bool) if flags is None else np.asarray(flags).ravel() == 1
        if len(dims) != 3 or dims[1] != cw.size:
            raise _fail(path, f"{cube_name} is not (lines, {cw.size} bands, samples)")
        lo = float(_attribute(root, f"L2Scale{name}Min", path))
        hi = float(_attribute(root, f"L2Scale{name}Max", path))
        cubes.append((cube, dims))
        centers.append(cw)
        fwhm.append(fw)
        good.append(ok & (cw > 0))
        detectors += [name.upper()] * cw.size
        scales.append((lo, (hi - lo) / 65535.0))
    if cubes[0][1][0] != cubes[1][1][0] or cubes[0][1][2] != cubes[1][1][2]:
        raise _fail(path, "VNIR_Cube and SWIR_Cube differ in size")
    n_vnir = centers[0].size
    centers, fwhm, good = np.concatenate(centers), np.concatenate(fwhm), np.concatenate(good)
    notes.insert(0, f"VNIR ({n_vnir} bands) and SWIR ({centers.size - n_vnir} bands) joined, sorted by wavelength.")
    keep = _select_bands(centers, fwhm, good, np.array(detectors, dtype=object), notes, path)
    height, width = cubes[0][1][0], cubes[0][1][2]
    flags = _prisma_flag_sample(cubes, errors, height, width)
    flagged_bands = flags.mean(axis=1) > FLAGGED_BAND_SHARE if flags.shape[1] else np.zeros(flags.shape[0], bool)
    if flagged_bands[keep].any():
        dropped = keep[flagged_bands[keep]]
        notes.append(f"{dropped.size} bands flagged in the error matrix (*_PIXEL_L2_ERR_MATRIX) in most pixels "
                     f"({_nm_list(np.sort(centers[dropped]))} nm): left out.")
        keep = keep[~flagged_bands[keep]]
        if keep.size < 2:
            raise _fail(path, "fewer than two bands are not flagged in the error matrices")
    scattered, before, after = _scattered_flag_bands(flags, keep)
    if scattered.size:
        notes.append(f"{scattered.size} more band{'s' if scattered.size > 1 else ''} flagged in the error matrix, "
                     f"each in pixels of its own ({_nm_list(np.sort(centers[scattered]))} nm): left out, since "
                     f"together with the others kept they would have left "
                     f"{100 * before:.0f} % of the pixels as nodata ({100 * after:.0f} % without them).")
        keep = keep[~np.isin(keep, scattered)]
    if any(e is not None for e in errors):
        notes.append("Pixels flagged in VNIR_ or SWIR_PIXEL_L2_ERR_MATRIX in any band kept (invalid in L1, negative "
                     "or saturated after the atmospheric correction) are nodata.")
    epsg = int(np.ravel(_attribute(root, "Epsg_Code", path))[0])
    ul_e = float(np.ravel(_attribute(root, "Product_ULcorner_easting", path))[0])
    ul_n = float(np.ravel(_attribute(root, "Product_ULcorner_northing", path))[0])
    lr_e = float(np.ravel(_attribute(root, "Product_LRcorner_easting", path))[0])
    lr_n = float(np.ravel(_attribute(root, "Product_LRcorner_northing", path))[0])
    dx = (lr_e - ul_e) / (width - 1) if width > 1 else 30.0
    dy = (ul_n - lr_n) / (height - 1) if height > 1 else 30.0
    geotransform = (ul_e - dx / 2, dx, 0.0, ul_n + dy / 2, 0.0, -dy)  # corners are pixel centres
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    notes.append(f"reflectance = L2ScaleMin + DN (L2ScaleMax - L2ScaleMin) / 65535; EPSG:{epsg}, {dx:g} m pixels.")
    info = BandInfo(centers=centers[keep], fwhm=fwhm[keep])

    def read_rows(row, count):
        parts, flags, empty = [], [], np.ones((count, width), bool)
        for (cube, dims), (offset, step), error in zip(cubes, scales, errors):
            raw = np.asarray(cube.ReadAsArray(array_start_idx=[row, 0, 0], count=[count, dims[1], width]))
            empty &= np.all(raw == 0, axis=1)
            parts.append(offset + raw.astype(np.float32) * np.float32(step))
            flags.append(np.zeros(raw.shape, bool) if error is None else
                         np.asarray(error.ReadAsArray(array_start_idx=[row, 0, 0], count=[count, dims[1], width])) > 0)
        values = np.concatenate(parts, axis=1)[:, keep, :]  # (rows, bands, cols)
        out = np.moveaxis(values, 1, -1).astype(np.float32)
        out[empty | np.concatenate(flags, axis=1)[:, keep, :].any(axis=1)] = np.nan
        return out

    return SensorProduct(PRISMA_L2D, path, width, height, srs.ExportToWkt(), geotransform, info, read_rows,
                         bytes_per_row=width * centers.size * 10, notes=notes, handles=[ds, root, fields])


#: Share of a scene's pixels (with data) from which a band flagged in PRISMA's error matrix is left out rather than
#: taking every such pixel with it (a band negative after the atmospheric correction over the whole scene).
FLAGGED_BAND_SHARE = 0.5

#: Share of the pixels (with data) that the error matrices may leave as nodata before bands flagged each in its own
#: pixels are left out (:func:`_scattered_flag_bands`), and the share of the pixels a band must give back to go.
FLAGGED_PIXEL_SHARE = 0.05
FLAGGED_PIXEL_GAIN = 0.01


def _prisma_flag_sample(cubes, errors, height, width, rows=16):
    """``(bands, pixels)``: whether each band of the joined VNIR + SWIR lists is flagged in ``*_PIXEL_L2_ERR_MATRIX``
    (any code above 0: 1 invalid in L1, 2 negative and 3 saturated after the atmospheric correction) at each pixel
    with data (not 0 in every band of both cubes) of ``rows`` rows spread over the scene."""
    picks = np.unique(np.linspace(0, height - 1, min(rows, height)).round().astype(int))
    out = []
    for row in picks:
        empty, flags = np.ones(width, bool), []
        for (cube, dims), error in zip(cubes, errors):
            window = dict(array_start_idx=[int(row), 0, 0], count=[1, dims[1], width])
            empty &= np.all(np.asarray(cube.ReadAsArray(**window))[0] == 0, axis=0)
            flags.append(np.zeros((dims[1], width), bool) if error is None
                         else np.asarray(error.ReadAsArray(**window))[0] > 0)
        out.append(np.concatenate(flags, axis=0)[:, ~empty])
    return np.concatenate(out, axis=1)


def _scattered_flag_bands(flags, keep):
    """``(bands, lost before, lost after)``: bands among ``keep`` to leave out because each is flagged in pixels of
    its own (``flags``: :func:`_prisma_flag_sample`), when together the kept bands' flags would leave over
    :data:`FLAGGED_PIXEL_SHARE` of the pixels as nodata. Several water-vapour bands negative each in a third of the
    pixels, in different ones, would blank most of the scene, while a band flagged in few pixels is better kept.
    Bands go one at a time, the one giving back most pixels first, while one gives back at least
    :data:`FLAGGED_PIXEL_GAIN` of them; pixels flagged in many bands (saturated, invalid in L1) stay nodata."""
    keep = np.asarray(keep)
    if not flags.shape[1] or keep.size <= 2:
        return keep[:0], 0.0, 0.0
    f = flags[keep]
    active = np.ones(keep.size, bool)
    count = f.sum(axis=0)
    before = lost = float((count > 0).mean())
    while lost > FLAGGED_PIXEL_SHARE and active.sum() > 2:
        alone = np.where(active, (f & (count == 1)).sum(axis=1), -1)
        best = int(np.argmax(alone))
        if alone[best] < FLAGGED_PIXEL_GAIN * f.shape[1]:
            break
        active[best] = False
        count = count - f[best]
        lost = float((count > 0).mean())
    return keep[~active], before, lost


# ---------------------------------------------------------------------------
# Any raster with wavelengths (AVIRIS-Classic / AVIRIS-NG ENVI and the like)
# ---------------------------------------------------------------------------

def open_raster_product(path, feedback=None, scale=None):
    """A :class:`SensorProduct` of an ordinary raster with band wavelengths (ENVI header, GeoTIFF metadata).

    Bad bands (ENVI ``bbl``) and the edge bands of overlapping detectors are left out, the rest sorted by
    wavelength; values are reflectance by ``scale`` (a divisor) or the raster's own
    (:func:`core.engine.raster.detect_scale`).
    """
    import rasterio
    from rasterio.windows import Window

    from .mapping import image_band_info
    from ..engine.raster import RasterSource

    feedback = ensure(feedback)
    info = image_band_info(path, bad_bands="off", feedback=feedback)  # the algorithms that read it drop bad bands
    good = np.flatnonzero(info.good)
    keep = good[np.argsort(info.centers[good], kind="stable")]
    source = RasterSource(path, bands=[int(b) + 1 for b in keep], feedback=feedback, fill_spectra=True, scale=scale)
    with rasterio.open(path) as ds:
        width, height = ds.width, ds.height
        crs_wkt = ds.crs.to_wkt() if ds.crs else ""
        geotransform = ds.transform.to_gdal()

    def read_rows(row, count):
        data, valid = source.read(Window(0, row, width, count))
        data = data.astype(np.float32, copy=True)
        data[~valid] = np.nan
        return data

    bad = int(info.bad.sum())
    notes = [f"{bad} bad or overlapping bands left out."] if bad else []
    return SensorProduct("raster", os.fspath(path), width, height, crs_wkt, geotransform,
                         BandInfo(centers=info.centers[keep], fwhm=None if info.fwhm is None else info.fwhm[keep]),
                         read_rows, bytes_per_row=width * keep.size * 12, notes=notes, handles=[source])


# ---------------------------------------------------------------------------
# Writing and input preparation
# ---------------------------------------------------------------------------

def write_geotiff(product, out_path, memory_mb=512, feedback=None, overwrite=True):
    """Stream ``product`` into a tiled float32 GeoTIFF with wavelengths and FWHM in the band metadata.

    Nodata is -9999. Written to a temporary file beside ``out_path`` and moved into place when
    complete; nothing is left behind on error or cancel. Returns ``out_path``.
    """
    import rasterio

    from ..engine.raster import _remove_quietly, check_output_path, clean_partials, partial_path, report_fill

    feedback = ensure(feedback)
    check_output_path(out_path, overwrite=overwrite)
    info = product.band_info
    budget = max(float(memory_mb), 16.0) * 1024 * 1024 / 2
    if "read" in product.limits:  # half for the swath boxes the reader holds, half for the rows in flight
        product.limits["read"] = budget / 2
    # whole tile rows per write (tiles 256 wide and `rows` high, a multiple of 16): every tile is written once
    rows = int(min(256, max(16, budget // max(product.bytes_per_row, 1) // 16 * 16)))
    profile = dict(driver="GTiff", width=product.width, height=product.height, count=info.n_bands,
                   dtype="float32", nodata=NODATA, tiled=True, blockxsize=256, blockysize=rows, compress="deflate",
                   predictor=3, bigtiff="if_safer", interleave="band")
    clean_partials(out_path, feedback)
    tmp = partial_path(out_path)   # unique: two runs converting one product never share it
    try:
        with rasterio.open(tmp, "w", crs=product.crs_wkt or None,
                           transform=rasterio.Affine.from_gdal(*product.geotransform), **profile) as dst:
            for i, tags in enumerate(band_tags(info), start=1):
                dst.update_tags(i, **tags)
                dst.set_band_description(i, f"{info.centers[i - 1]:.2f} nm")
            dst.update_tags(OREMAP_SOURCE_PRODUCT=product.kind, OREMAP_SOURCE_FILE=os.path.basename(product.path))
            n_valid = 0
            for row in range(0, product.height, rows):
                feedback.check()
                count = min(rows, product.height - row)
                block = product.read_rows(row, count)
                n_valid += int(np.count_nonzero(np.isfinite(block).any(axis=-1)))
                block = np.where(np.isfinite(block), block, np.float32(NODATA))
                dst.write(np.moveaxis(block, -1, 0).astype(np.float32),
                          window=rasterio.windows.Window(0, row, product.width, count))
                feedback.progress(100.0 * (row + count) / product.height)
        if not n_valid:
            raise OreMapError(f"Every pixel of '{os.path.basename(product.path)}' is nodata: nothing to write.",
                              "raster", "Check the nodata value (0 makes a pixel nodata where over 10 % of its bands "
                                        "are 0), the mask and the product's quality layers.")
        _remove_quietly(out_path + ".aux.xml")   # the statistics of a file this one replaces
        replace(tmp, out_path)
        if os.path.exists(tmp + ".aux.xml"):
            replace(tmp + ".aux.xml", out_path + ".aux.xml")
        for handle in product.handles:
            if hasattr(handle, "fill_pixels"):   # a plain raster's reader: the fill it left out, as elsewhere said
                report_fill(handle, feedback)
    except BaseException:
        _remove_quietly(tmp)
        raise
    finally:
        product.close()   # not left to the garbage collector: a dataset freed after GDAL's own shutdown crashes
    feedback.info(f"{product.kind}: {product.width} x {product.height} pixels, {info.n_bands} bands "
                  f"({info.centers[0]:.0f}-{info.centers[-1]:.0f} nm) written to '{out_path}'.")
    return out_path


def _emit_mask(path):
    """The EMIT L2A mask granule's path beside RFL file ``path`` (it may not exist): the newest collection version
    of the same acquisition (the mask is published as collection 002 beside RFL 001, ``EMIT_L2A_MASK_002_...``),
    else the RFL's own version."""
    folder, name = os.path.split(path)
    match = re.match(r"(EMIT_L2A_)RFL_(\d{3})_(.+)$", name, re.IGNORECASE)
    if not match:
        return os.path.join(folder, name.replace("_RFL_", "_MASK_", 1))
    prefix, version, rest = match.groups()
    pattern = re.compile(re.escape(prefix) + r"MASK_(\d{3})_" + re.escape(rest) + "$", re.IGNORECASE)
    versions = sorted((m.group(1), f) for f in os.listdir(folder or ".") if (m := pattern.match(f)))
    return os.path.join(folder, versions[-1][1]) if versions else os.path.join(folder, f"{prefix}MASK_{version}_{rest}")


def files_read(path):
    """Every file the reader of product ``path`` takes values from, as far as they exist now: the image,
    EMIT's mask granule, EnMAP's METADATA.XML, spectral image and applied quality layers (a product's ZIP: itself)."""
    source = product_file(path)
    kind = detect(source)
    if _zip_kind(source) is not None:
        files = [source]
    elif kind == EMIT_L2A_RFL:
        files = [source, _emit_mask(source)]
    elif kind == ENMAP_L2A:
        xml = enmap_metadata(source)
        stem = xml[: -len("-METADATA.XML")]
        files = [xml, _enmap_layer(stem, "SPECTRAL_IMAGE")] + [
            _enmap_layer(stem, f"QL_QUALITY_{name}") for name in ENMAP_MASKED]
    else:
        files = [source]
    return [f for f in files if f is not None and os.path.exists(f)]


def prepare_input(path, folder, memory_mb=512, feedback=None):
    """``path`` itself for an ordinary raster; for a sensor product, a GeoTIFF of it in ``folder``.

    The GeoTIFF is made once per state of the files the reader takes values from (:func:`files_read`:
    names, sizes and modification times, so a mask granule or quality layer that arrives later is applied)
    and reused while they stay the same.
    """
    import hashlib

    if detect(path) is None:
        return path
    feedback = ensure(feedback)
    source = product_file(path)
    if _zip_kind(source) is None:
        source = enmap_metadata(source) or source
    state = hashlib.sha1()
    for name in files_read(source):
        stat = os.stat(name)
        state.update(f"{os.path.basename(name)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    key = f"{os.path.splitext(os.path.basename(source))[0]}_{state.hexdigest()[:16]}.tif"
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, key)
    if os.path.exists(out):
        feedback.info(f"Using the GeoTIFF already made from '{os.path.basename(source)}': {out}")
        return out
    with unpacked(source, folder, feedback) as inner:
        product = open_product(inner, feedback)
        return write_geotiff(product, out, memory_mb=memory_mb, feedback=feedback)


@contextlib.contextmanager
def unpacked(path, folder, feedback=None):
    """The product file of ``path``: for a product's ZIP archive (EnMAP L2A, PRISMA L2D) the METADATA.XML or ``.he5``
    extracted, with the layers the reader takes values from, into a new folder in ``folder`` that is removed on
    leaving; ``path``'s product file (:func:`product_file`) otherwise."""
    source = product_file(path)
    kind = _zip_kind(source)
    if kind is None:
        yield source
        return
    try:
        os.makedirs(folder, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".unzipped-", dir=folder)
    except OSError as exc:
        raise OreMapError(f"The archive '{os.path.basename(source)}' cannot be extracted: the folder {folder} cannot "
                          f"be written ({exc.strerror or exc}).", "raster",
                          "Choose a writable temporary folder (Processing > Options > General), or unzip the "
                          "product and choose the product file inside.") from None
    try:
        yield _extract(source, kind, work, ensure(feedback))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract(archive, kind, folder, feedback):
    """Extract the files of the one product in ``archive`` that its reader needs into ``folder``; the path of its
    METADATA.XML (EnMAP) or ``.he5`` (PRISMA)."""
    import zipfile

    name = os.path.basename(archive)
    base = lambda member: member.filename.replace("\\", "/").rsplit("/", 1)[-1]   # noqa: E731
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise OreMapError(f"The archive '{name}' cannot be read ({getattr(exc, 'strerror', None) or exc}).", "raster",
                          "Download the product again (the archive may be incomplete), or unzip it and choose the "
                          "product file inside.") from None
    try:
        with zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if kind == ENMAP_L2A:
                heads = [m for m in members if base(m).upper().endswith("-METADATA.XML")
                         and base(m).upper().startswith("ENMAP") and "L2A" in base(m).upper()]
                what = "EnMAP L2A product"
            else:
                heads = [m for m in members if base(m).upper().startswith("PRS_L2D")
                         and base(m).upper().endswith((".HE5", ".H5"))]
                what = "PRISMA L2D product"
            if len(heads) != 1:
                listed = ", ".join(base(m) for m in heads[:4]) + (" ..." if len(heads) > 4 else "")
                raise OreMapError(f"The archive '{name}' holds {'no' if not heads else len(heads)} {what}"
                                  + ("" if len(heads) < 2 else "s")
                                  + (f": {listed}" if heads else "") + ".", "raster",
                                  "Give the product's own ZIP, or unzip it and choose one product's "
                                  + ("-METADATA.XML." if kind == ENMAP_L2A else ".he5 file."))
            wanted = heads
            if kind == ENMAP_L2A:
                stem = base(heads[0]).upper()[: -len("-METADATA.XML")]
                layers = ["SPECTRAL_IMAGE"] + [f"QL_QUALITY_{layer}" for layer in ENMAP_MASKED]
                wanted = heads + [m for m in members if any(
                    re.fullmatch(re.escape(f"{stem}-{layer}") + _ENMAP_IMAGE_SUFFIX, base(m).upper())
                    for layer in layers)]
            size = sum(m.file_size for m in wanted)
            feedback.info(f"Extracting {len(wanted)} file(s) of '{name}' ({size / 2 ** 20:.0f} MB) to read them.")
            for member in wanted:
                feedback.check()
                with zf.open(member) as src, open(os.path.join(folder, base(member)), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise OreMapError(f"The archive '{name}' cannot be read ({exc}).", "raster",
                          "Download the product again (the archive may be incomplete), or unzip it and choose the "
                          "product file inside.") from None
    except OSError as exc:
        raise OreMapError(f"The archive '{name}' cannot be extracted to {folder} ({exc.strerror or exc}).", "raster",
                          "Free disk space in the temporary folder, or unzip the product and choose the product "
                          "file inside.") from None
    return os.path.join(folder, base(heads[0]))
