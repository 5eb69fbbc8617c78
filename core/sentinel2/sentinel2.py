"""Sentinel-2 MSI input: band identification, 10 m stacking, reflectance scaling, spectral indices.

:func:`open_sentinel2` accepts what users actually have:

* a multi-band raster (GeoTIFF, VRT, ...) whose bands are named in their
  descriptions (``"B04"``, ``"B4"``, ``"Band 4 - Red"``, ``"B8A"``, GDAL's
  ``"B4, central wavelength 665 nm"``, STAC common names such as ``"red"``), in
  their metadata (``BANDNAME``, wavelength tags), or by a user ``band_map``
  (``{"B4": 3, ...}``); a 12- or 13-band raster without any of these is taken in
  the standard order (or with B8A last, as band files sorted by name stack), with a warning, and refused when
  its data fit neither (:func:`_standard_order_unlikely`, :func:`_order_misfit`: a band of SCL class codes where
  reflectance is expected, a "B10" brighter than blue, as the 12 L2A bands with SCL appended give). Level-1C
  data (an ``MSIL1C`` product name, a B10 band) are read with a warning, as are cloud layers in a raster other
  than a band named SCL (QA60, MSK_CLDPRB bands), which the cloud mask does not use;
* a folder of per-band files as delivered (names ending in ``_B02.tif``,
  ``_B8A.jp2``, ``_B02_10m.jp2``, or ``B02.tif`` / ``blue.tif`` of COG archives; searched recursively, e.g. a
  ``.SAFE`` product without its QI_DATA masks
  or a BigEarthNet patch): the bands are stacked in a VRT on the finest (10 m)
  grid, 20 m and 60 m bands resampled bilinearly. When the folder holds the L2A
  scene classification (``*_SCL_20m.jp2``), pixels it classes as no data,
  saturated or defective, cloud shadow, cloud (medium or high probability) or thin
  cirrus (:data:`SCL_MASKED`) are nodata (``mask_clouds``, on by default); so are they in a multi-band raster
  with a band named SCL (a VRT over the file whose mask is looked up from that band, :func:`_scl_masked_vrt_xml`).

Reflectance is ``DN * scale + offset``: ``scale`` = 1/10000 (or 1/quantification
value from the metadata) for digital numbers, 1 for a float raster already holding
0-1 reflectance, 1/255 for an 8-bit raster (Sentinel Hub's default sampleType AUTO stretches reflectance 0-1 to
0-255; said as a warning); ``offset`` = -1000 DN * scale for products of processing baseline
04.00 and later (from 25 January 2022), when the metadata say so (an ``ADD_OFFSET``
item, a ``PROCESSING_BASELINE`` item, or the ``_N0400_`` baseline field of a
product name in the path or in a BigEarthNet ``labels_metadata.json``).

:func:`compute_indices` computes the usual spectral indices of mine detection on
reflectance pixels.
"""

import glob
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import Feedback, ensure

#: The 12 bands of Sentinel-2 Level-2A products, in the standard order (B10, cirrus, is L1C only).
S2_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]

#: Band centres (nm) of Sentinel-2A MSI.
S2_CENTERS = {"B1": 443.0, "B2": 490.0, "B3": 560.0, "B4": 665.0, "B5": 705.0, "B6": 740.0, "B7": 783.0,
              "B8": 842.0, "B8A": 865.0, "B9": 945.0, "B10": 1375.0, "B11": 1610.0, "B12": 2190.0}

#: Band widths (nm) of Sentinel-2A MSI, used as the FWHM of Gaussian responses.
S2_BANDWIDTHS = {"B1": 20.0, "B2": 65.0, "B3": 35.0, "B4": 30.0, "B5": 15.0, "B6": 15.0, "B7": 20.0,
                 "B8": 115.0, "B8A": 20.0, "B9": 20.0, "B10": 30.0, "B11": 90.0, "B12": 180.0}

#: Native ground sampling distance (m) of each band.
S2_RESOLUTIONS = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10, "B8A": 20,
                  "B9": 60, "B10": 60, "B11": 20, "B12": 20}

#: Every band name :func:`open_sentinel2` recognises (L1C adds B10).
KNOWN_BANDS = S2_BANDS[:10] + ["B10"] + S2_BANDS[10:]

#: Offset (in DN) added before scaling from processing baseline 04.00 (25 January 2022) on.
BASELINE_04_OFFSET = -1000.0

INDEX_VERSION = 2
"""Version of the index definitions, stored in the models that use indices: 2 (OreMap 0.2.5) takes FERROUS_IRON
as Segal's B11 / B8A and counts negative reflectance as 0; 1 (earlier) had FERROUS_IRON = B12 / B8A and used
negative reflectance as it was. A model that stores no version is of version 1, and its indices are computed
as it was trained on them (:func:`index_definitions`)."""

#: First acquisition date of processing baseline 04.00: every L2A product acquired since has the offset.
BASELINE_04_SINCE = "20220125"

#: The acquisition date in ESA's names: of a product (``S2B_MSIL2A_20230601T100559_...``) or of its band files
#: (``T33UVP_20230601T100559_B02_10m.jp2``).
_DATE_IN_NAME = re.compile(r"(?:MSIL2A|MSIL1C|_T\d{2}[A-Z]{3}|^T\d{2}[A-Z]{3})_(20\d{6})T\d{6}"
                           r"|^S2[A-D]_\d{1,2}[A-Z]{3}_(20\d{6})_\d+_L[12][AC]$")  # the second: Element84 item ids

#: Item ids of Element84's Earth Search (the folder a download keeps the band files in): the legacy collection
#: ``sentinel-2-l2a`` (``S2B_10SGF_20250808_0_L2A``), whose COGs have had the -1000 DN offset taken out already
#: on most items acquired since 25 January 2022 (the item's ``earthsearch:boa_offset_applied`` says which), and
#: collection 1 ``sentinel-2-c1-l2a`` (``S2B_T38XNF_20250422T091553_L2A``), ESA's DN of a reprocessing at baseline
#: 05.00 or later: the offset is in them on every date, before 2022 too (Earth Search README and issues 9, 23, 41).
_EARTH_SEARCH_LEGACY = re.compile(r"^S2[A-D]_\d{1,2}[A-Z]{3}_(20\d{6})_\d+_L2A$")
_EARTH_SEARCH_C1 = re.compile(r"^S2[A-D]_T\d{2}[A-Z]{3}_(20\d{6})T\d{6}_L2A$")
#: Share of a legacy Earth Search item's blue DN under :data:`DARK_DN` from which its offset counts as taken out
#: already: with the offset in, DN < 900 is a reflectance under -0.01, which the blue band of a scene does not have
#: (water, the darkest, reflects 0.02-0.08 there); without it, every pixel darker than 0.09 is one (vegetation,
#: water, shadow, most soils), and even an arid scene has some among its pits, ponds and shadows. Measured on the six
#: real BigEarthNet patches: 77-100 % of their blue DN lie under 900 as they are, none with 1000 added, and the snow
#: scene of February 2018 0.056 % as it is.
DARK_DN = 900
DARK_SHARE_OFFSET_REMOVED = 0.0002

# STAC / common band names -> S2 band.
_COMMON_NAMES = {
    "coastal": "B1", "coastal aerosol": "B1", "aerosol": "B1", "blue": "B2", "green": "B3", "red": "B4",
    "rededge1": "B5", "red edge 1": "B5", "rededge071": "B5", "rededge2": "B6", "red edge 2": "B6",
    "rededge075": "B6", "rededge3": "B7", "red edge 3": "B7", "rededge078": "B7", "nir": "B8",
    "nir08": "B8A", "narrow nir": "B8A", "nir narrow": "B8A", "nir09": "B9", "water vapour": "B9",
    "water vapor": "B9", "cirrus": "B10", "swir16": "B11", "swir1": "B11", "swir 1": "B11",
    "swir22": "B12", "swir2": "B12", "swir 2": "B12",
}
_BAND_WORD = re.compile(r"(?<![A-Za-z0-9])B(?:AND)?[\s_]*0?(\d{1,2})(A?)(?![0-9])", re.IGNORECASE)
_FILE_BAND = re.compile(r"(?:^|_)B(\d{1,2})(A?)(?:_(\d{2})m)?\.(?:tif|tiff|jp2|img|vrt)$", re.IGNORECASE)
_FILE_SCL = re.compile(r"(?:^|_)SCL(?:_(\d{2})m)?\.(?:tif|tiff|jp2|img|vrt)$", re.IGNORECASE)
#: Band files named by their STAC asset key (blue.tif, nir08.tif ...), as STAC download tools name them; Element84's
#: archive itself names them B02.tif ...
_FILE_COMMON = re.compile(r"^(coastal|blue|green|red|rededge[123]|nir|nir08|nir09|swir16|swir22)\.(?:tif|tiff|jp2)$",
                          re.IGNORECASE)
#: Where a product keeps files that are no bands: its quality masks (baseline 04.00 on: MSK_DETFOO_B01.jp2,
#: MSK_QUALIT_B02.jp2 ... under GRANULE/*/QI_DATA).
_NOT_BAND_FOLDERS = {"QI_DATA", "AUX_DATA", "HTML", "REP_INFO", "DATASTRIP"}


def band_of_file(name):
    """``(band, resolution in m or 0)`` of a per-band file name (``T33UVP_..._B04_10m.jp2``, ``..._B8A.tif``,
    ``B02.tif``, ``blue.tif``), or None (quality masks ``MSK_*`` included)."""
    if name.upper().startswith("MSK_") or re.search(r"zenith|azimuth|quality", name, re.IGNORECASE):
        return None  # quality masks; SNAP's angle and quality bands (view_zenith_B1.img ...)
    match = _FILE_BAND.search(name)
    if match:
        band = f"B{int(match.group(1))}{match.group(2).upper()}"
        return (band, int(match.group(3)) if match.group(3) else 0) if band in S2_CENTERS else None
    match = _FILE_COMMON.match(name)
    return (_COMMON_NAMES[match.group(1).lower()], 0) if match else None

#: Classes of the L2A scene classification (SCL) that are masked: {value: meaning}. Dark areas (2, often
#: topographic shadow, also in pits), vegetation, bare ground, water, unclassified and snow are kept.
SCL_MASKED = {0: "no data", 1: "saturated or defective", 3: "cloud shadow", 8: "cloud, medium probability",
              9: "cloud, high probability", 10: "thin cirrus"}
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")

_LEVEL_1C = ("A Level-1C product: top-of-atmosphere reflectance, not the surface reflectance of L2A. Indices shift "
             "with the atmosphere, and models trained on L2A (the bundled ones) may misread it; use the L2A product "
             "of the scene where there is one.")

#: Names of the cloud and classification layers exports carry beside the bands (Earth Engine: SCL, QA60,
#: MSK_CLDPRB, MSK_CLASSI_*; Sentinel Hub and openEO: SCL, CLP, CLM).
_CLOUD_BAND = re.compile(r"^\s*(SCL|QA60|MSK_CLDPRB|MSK_CLASSI_\w+|CLP|CLM|scene[ _]classification\w*)\s*$",
                         re.IGNORECASE)

_FIX_BANDS = ("Name the bands in the raster's band descriptions (B2, B3, ...), or give a band map such as "
              "'B2=1, B3=2, B4=3, B8=4'.")


# ---------------------------------------------------------------------------
# Band names
# ---------------------------------------------------------------------------


def normalise_band_name(text):
    """The S2 band a label names (``"B04"``, ``"b4"``, ``"Band 8A"``, ``"red"``) or ``None``."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    match = _BAND_WORD.search(text)
    if match:
        name = f"B{int(match.group(1))}{match.group(2).upper()}"
        return name if name in S2_CENTERS else None
    key = re.sub(r"[\s_\-]+", " ", text.lower()).strip()
    key = re.sub(r"\s*\(.*\)$", "", key)
    return _COMMON_NAMES.get(key) or _COMMON_NAMES.get(key.replace(" ", ""))


def parse_band_map(band_map):
    """``{"B4": 3, ...}`` from a dict or a text ``"B4=3, B8=4"`` (1-based band numbers)."""
    if band_map is None or band_map == "" or band_map == {}:
        return {}
    if isinstance(band_map, str):
        pairs = [p for p in re.split(r"[,;\n]+", band_map) if p.strip()]
        items = []
        for pair in pairs:
            if "=" not in pair and ":" not in pair:
                raise OreMapError(f"Cannot read '{pair.strip()}' in the band map.", "band_map",
                                  "Write it as 'B2=1, B3=2, B4=3' (S2 band = raster band number).")
            key, value = re.split(r"[=:]", pair, maxsplit=1)
            items.append((key, value))
    else:
        items = list(dict(band_map).items())
    out = {}
    for key, value in items:
        name = normalise_band_name(key)
        if name is None:
            raise OreMapError(f"'{str(key).strip()}' in the band map is not a Sentinel-2 band.", "band_map",
                              "Use names B1 ... B12 and B8A.")
        try:
            index = int(str(value).strip())
        except ValueError:
            raise OreMapError(f"Band map entry {name}: '{value}' is not a band number.", "band_map",
                              "Give 1-based raster band numbers.") from None
        if name in out and out[name] != index:
            raise OreMapError(f"The band map gives {name} twice.", "band_map")
        out[name] = index
    return out


# ---------------------------------------------------------------------------
# The input object
# ---------------------------------------------------------------------------


@dataclass
class S2Input:
    """A Sentinel-2 raster ready to read: which raster band is which S2 band, and how to scale it.

    Attributes
    ----------
    path : str
        A raster :class:`core.engine.raster.RasterSource` can read: the original file, or a VRT
        stacking per-band files on the 10 m grid (float32 digital numbers).
    bands : list of str
        S2 band names in raster band order (bands that are not identified are left out).
    scale, offset : float
        ``reflectance = DN * scale + offset``.
    nodata : float or None
        Raw value meaning "no data" (0 for S2 digital numbers without own nodata).
    band_numbers : dict
        ``{name: 1-based raster band}``.
    resampled : list of str
        Bands resampled (bilinear) to the 10 m grid when stacking a folder.
    baseline : str or None
        Processing baseline found in the metadata (``"04.00"``), if any.
    notes : list of str
        What was decided and why (also sent to the feedback).
    warnings : list of str
        What may be wrong (an integer product whose processing baseline, so offset, is unknown), sent to the
        feedback as warnings.
    """

    path: str
    band_numbers: dict
    scale: float
    offset: float
    transform: object
    crs: object
    width: int
    height: int
    nodata: float = None
    resampled: list = field(default_factory=list)
    baseline: str = None
    notes: list = field(default_factory=list)
    source_path: str = ""
    temp_dir: str = None
    warnings: list = field(default_factory=list)

    @property
    def bands(self):
        return [name for name, _ in sorted(self.band_numbers.items(), key=lambda kv: kv[1])]

    def band_index(self, name):
        """1-based raster band of the S2 band ``name`` (``"B4"``, ``"B04"``, ``"B8A"``)."""
        key = normalise_band_name(name) or str(name)
        if key not in self.band_numbers:
            raise OreMapError(f"Band {name} is not in the Sentinel-2 raster (it has {', '.join(self.bands)}).",
                              "raster", "Choose a raster that holds this band.")
        return self.band_numbers[key]

    def band_indexes(self, names):
        return [self.band_index(n) for n in names]

    def open_source(self, names=None, feedback=None):
        """A :class:`core.engine.raster.RasterSource` reading reflectance of bands ``names`` (all 12 by default)."""
        from ..engine.raster import RasterSource

        names = list(S2_BANDS if names is None else names)
        # a float stack warped without a nodata value has a border of one value in every band: fill, not ground
        # (integer products keep DN 0 as NO_DATA in any band: a detector's edge leaves some bands empty)
        source = RasterSource(self.path, bands=self.band_indexes(names), nodata=self.nodata, scale=1.0,
                              feedback=None, fill_spectra=self.nodata != 0)
        source.gain, source.bias = float(self.scale), float(self.offset)
        return source

    def read_reflectance(self, names=None):
        """Whole raster as reflectance ``(rows, cols, len(names))`` float32, NaN where nodata."""
        from rasterio.windows import Window

        with self.open_source(names) as source:
            data, valid = source.read(Window(0, 0, self.width, self.height))
        data = np.array(data, dtype=np.float32)
        data[~valid] = np.nan
        return data

    def close(self):
        """Remove the temporary VRT folder, if one was made."""
        if self.temp_dir and os.path.isdir(self.temp_dir):
            import shutil

            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reflectance(dn, s2input, nodata_to_nan=True):
    """Surface reflectance of digital numbers: ``dn * scale + offset`` (float32; nodata -> NaN)."""
    dn = np.asarray(dn)
    out = dn.astype(np.float32) * np.float32(s2input.scale) + np.float32(s2input.offset)
    if nodata_to_nan and s2input.nodata is not None:
        out = np.where(dn == s2input.nodata, np.float32(np.nan), out)
    return out


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------


def open_sentinel2(path, band_map=None, feedback=None, required=None, out_dir=None, mask_clouds=True):
    """Open a Sentinel-2 raster or folder of per-band files; see the module docstring.

    Parameters
    ----------
    path : str
        Multi-band raster, or folder of per-band files (``*_B02.tif`` ...).
    band_map : dict or str, optional
        ``{"B4": 3, ...}`` or ``"B4=3, B8=4"``: raster band number of each S2 band,
        overriding what the raster says (multi-band rasters only).
    feedback : Feedback, optional
        Receives what was decided (band identification, resampling, scaling).
    required : list of str, optional
        Bands that must be present; all 12 of :data:`S2_BANDS` by default.
    out_dir : str, optional
        Where a folder's VRT is written; a new temporary folder by default
        (removed by :meth:`S2Input.close`).
    mask_clouds : bool, default True
        For a folder holding the scene classification (SCL), or a raster with a band named SCL: make the
        pixels of the classes :data:`SCL_MASKED` nodata.

    Raises
    ------
    OreMapError
        ``parameter="raster"`` for a missing or unreadable input, or when required
        bands are missing (naming them); ``parameter="band_map"`` for a bad map.
    """
    feedback = ensure(feedback)
    required = list(S2_BANDS if required is None else [normalise_band_name(b) or b for b in required])
    path = product_folder(path) if path else path
    if not path or not os.path.exists(str(path)):
        raise OreMapError(f"The Sentinel-2 input '{path}' does not exist.", "raster",
                          "Choose a Sentinel-2 raster or a folder of per-band files.")
    path = os.fspath(path)
    if os.path.isdir(path):
        if band_map:
            feedback.warning("The band map is ignored for a folder: bands are named by their file names.")
        s2 = _open_folder(path, required, feedback, out_dir, mask_clouds)
    else:
        s2 = _open_file(path, parse_band_map(band_map), required, feedback, mask_clouds)
    try:
        for note in s2.notes:
            feedback.info(note)
        for warning in s2.warnings:
            feedback.warning(warning)
    except BaseException:   # a cancel (or a failing log) here would leave the VRT folder behind
        s2.close()
        raise
    return s2


class InputWarnings:
    """The feedback of :func:`open_sentinel2` for many inputs read one after another (the patches of a label table,
    the chips of a training): each distinct warning is said once, with how many of the inputs gave it, when
    :meth:`flush` is called; the notes (info) of the first input are logged, as the reports keep them, those of the
    others not. ``of(key)`` gives the feedback for the input ``key`` (opening one twice counts it once).

    ``what`` names the inputs in the counts (``"patches"``); at most ``limit`` distinct warnings are said, then
    how many more there were."""

    def __init__(self, feedback, what="inputs", limit=10):
        self.parent, self.what, self.limit = ensure(feedback), what, int(limit)
        self.inputs, self.by_warning, self.infos = [], {}, set()

    def of(self, key):
        key = os.fspath(key) if isinstance(key, os.PathLike) else key
        if key not in self.inputs:
            self.inputs.append(key)
        return _InputFeedback(self, key)

    def flush(self):
        """Say the warnings gathered so far (each once, with its count) and forget them."""
        n, items = len(self.inputs), list(self.by_warning.items())
        for message, keys in items[:self.limit]:
            if n <= 1:
                self.parent.warning(message)
            else:
                self.parent.warning(f"{'All' if len(keys) == n else f'{len(keys)} of the'} {n} {self.what}: "
                                    f"{message}")
        if len(items) > self.limit:
            self.parent.warning(f"{len(items) - self.limit} other warnings about the {self.what} are not shown.")
        self.by_warning = {}


class _InputFeedback(Feedback):
    """The feedback :meth:`InputWarnings.of` gives for one input."""

    def __init__(self, tally, key):
        self.tally, self.key = tally, key

    def is_canceled(self):
        return self.tally.parent.is_canceled()

    def info(self, message):
        if self.key == self.tally.inputs[0] and message not in self.tally.infos:
            self.tally.infos.add(message)
            self.tally.parent.info(message)

    def warning(self, message):
        self.tally.by_warning.setdefault(message, set()).add(self.key)


_MTD = re.compile(r"^MTD_MSIL[12][AC]\.xml$", re.IGNORECASE)
_SUBDATASET = re.compile(r"^SENTINEL2_L[12][AC](?:_[A-Z]+)?:(.+?\.xml)(?::.*)?$", re.IGNORECASE)


def product_folder(path):
    """The folder to read for a Sentinel-2 product given by its metadata file (``MTD_MSIL2A.xml``, as QGIS opens a
    product) or a GDAL subdataset of it (``SENTINEL2_L2A:/x.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633``); ``path``
    itself otherwise. A zipped product (``.zip``, or a subdataset inside one) is refused: it has to be unzipped
    (GDAL reads it only as subdatasets of one resolution each)."""
    text = os.fspath(path)
    match = _SUBDATASET.match(text)
    if match:
        text = match.group(1)
    if text.lower().endswith(".zip") or "/vsizip/" in text.lower():
        raise OreMapError(f"'{os.path.basename(text.split('/vsizip/')[-1].split('.zip')[0])}.zip' is a zipped "
                          "Sentinel-2 product.", "raster",
                          "Unzip it and choose its .SAFE folder (the folder input).")
    if _MTD.match(os.path.basename(text)) and os.path.isfile(text):
        return os.path.dirname(os.path.abspath(text))
    return text


def _missing_error(missing, found, where):
    return OreMapError(
        f"The Sentinel-2 input lacks the bands {', '.join(missing)} (found: {', '.join(found) or 'none'}) "
        f"in {where}.", "raster",
        "Give a product with these bands" + (", or name the bands with a band map." if where != "the folder"
                                            else " (files ending in _B02.tif, _B8A.tif ...)."))


def _baseline_from_text(text):
    match = _BASELINE_IN_NAME.search(text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _baseline_value(text):
    try:
        return float(str(text).strip())
    except ValueError:
        return None


def _baseline(upper, hint):
    """The processing baseline (``"04.00"``) of upper-cased metadata items ``upper``, else ``hint``."""
    for key in ("PROCESSING_BASELINE", "BASELINE", "PROCESSING_BASELINE_VERSION"):
        if key in upper and _baseline_value(upper[key]) is not None:
            return f"{_baseline_value(upper[key]):05.2f}"
    return hint


def _acquisition_date(names):
    """The acquisition date (``"20230601"``) in ESA's product or band-file names among ``names``, else None."""
    for name in names:
        for part in reversed(os.path.normpath(str(name)).split(os.sep)):
            match = _DATE_IN_NAME.search(part)
            if match:
                return match.group(1) or match.group(2)
    return None


def _earth_search_item(names):
    """``(collection, date)`` of an Earth Search item id among the folders of ``names`` (``"legacy"`` or ``"c1"``),
    else None."""
    for name in names:
        for part in reversed(os.path.normpath(str(name)).split(os.sep)):
            for kind, pattern in (("legacy", _EARTH_SEARCH_LEGACY), ("c1", _EARTH_SEARCH_C1)):
                match = pattern.match(part)
                if match:
                    return kind, match.group(1)
    return None


def _dark_share(path, band, grid=5, size=64):
    """Share of the valid DN (not 0, not the file's nodata) under :data:`DARK_DN` in ``band`` of the raster ``path``,
    on ``grid`` x ``grid`` windows of ``size`` pixels spread over it (a few tiles of a COG); None without any."""
    import rasterio

    from ..engine.raster import sample_grid

    with rasterio.open(path) as ds:
        values = np.concatenate([ds.read(band, window=w).astype(np.float64).ravel()
                                 for w in sample_grid(ds, size, grid)])
        nodata = ds.nodatavals[band - 1]
    values = values[np.isfinite(values) & (values != 0) & ((values != nodata) if nodata is not None else True)]
    return float(np.mean(values < DARK_DN)) if values.size else None


def _earth_search_offset(item, upper, dark_share, notes, warnings):
    """The offset in DN of an Earth Search item, or None where the general rules decide (see
    :data:`_EARTH_SEARCH_LEGACY`): the item's own ``earthsearch:boa_offset_applied`` first, else the share of dark
    blue DN (``dark_share()``)."""
    kind, date = item
    day = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    if kind == "c1":
        notes.append(f"Earth Search collection 1 item (acquired {day}): ESA's DN of a reprocessing at baseline "
                     "05.00 or later, so the -1000 DN offset applies on every date.")
        return BASELINE_04_OFFSET
    if date < BASELINE_04_SINCE:
        return None
    applied = str(upper.get("EARTHSEARCH:BOA_OFFSET_APPLIED", "")).strip().lower()
    if applied in ("true", "false"):
        notes.append(f"Earth Search item of {day}: its earthsearch:boa_offset_applied is {applied}.")
        return 0.0 if applied == "true" else BASELINE_04_OFFSET
    share = dark_share() if dark_share is not None else None
    if share is None:
        text = (f"An Earth Search item of {day} (legacy collection sentinel-2-l2a) without its item JSON and without "
                "valid blue pixels to judge by: Earth Search took the -1000 DN offset out of most such items, so none "
                "is applied. If the reflectance comes out 0.1 too high, its offset was still in: give the item's JSON "
                "(with earthsearch:boa_offset_applied) beside the band files.")
        warnings.append(text)
        return 0.0
    if share >= DARK_SHARE_OFFSET_REMOVED:
        notes.append(f"Earth Search item of {day} (legacy collection): {share:.1%} of its blue DN lie under "
                     f"{DARK_DN}, a reflectance under -0.01 were the offset still in, so Earth Search has taken the "
                     "-1000 DN offset out already (as on most items since 2022): reflectance = DN / 10000.")
        return 0.0
    warnings.append(f"Earth Search item of {day} (legacy collection): only {share:.2%} of its sampled blue DN lie "
                    f"under {DARK_DN}, so the -1000 DN offset reads as still in (Earth Search took it out of most "
                    "items since 2022, not all): reflectance = (DN - 1000) / 10000. A scene with no pixel darker than "
                    "0.09 in blue (snow, a salt flat, bright desert) can mislead this: give the item's JSON (with "
                    "earthsearch:boa_offset_applied) beside the band files to settle it.")
    return BASELINE_04_OFFSET


def _scaling(tags, dtype, sample_max, baseline_hint, notes, band_scaling=None, names=(), warnings=None,
             dark_share=None):
    """``(scale, offset, baseline)`` from the bands' own scale and offset (``band_scaling``, see
    :func:`_band_scaling`) when set, else metadata items, data type and a sample maximum. Without a baseline in
    the metadata or ``baseline_hint``, an acquisition date since :data:`BASELINE_04_SINCE` in ESA's ``names``
    (the product's, the band files') means baseline 04.00 or later; an integer product with neither gets no
    offset and a warning in ``warnings``. An Earth Search item id among ``names`` is decided by
    :func:`_earth_search_offset` (``dark_share``: a function giving the share of blue DN under :data:`DARK_DN`)."""
    upper = {str(k).upper(): v for k, v in tags.items()}
    if band_scaling is not None:
        gain, bias = band_scaling
        baseline = _baseline(upper, baseline_hint)
        notes.append(f"Reflectance = DN x {gain:g} {'-' if bias < 0 else '+'} {abs(bias):g}: the bands' own scale "
                     "and offset (GDAL band metadata).")
        return gain, bias, baseline
    if np.dtype(dtype) == np.uint8:
        # no Sentinel-2 product holds DN in 8 bits (they reach 10000 and more): an 8-bit raster is a stretched export
        text = ("8-bit raster: taken as reflectance x 255 (reflectance = value / 255), as Sentinel Hub's default "
                "sampleType AUTO writes reflectance 0-1 stretched to 0-255 (values over 1 become 255), in steps of "
                "0.004. If the export's evalscript scaled the bands (a true-colour image such as 2.5 x reflectance, "
                "or ESA's TCI), the reflectance is wrong: export with sampleType UINT16 (DN) or FLOAT32, or set the "
                "bands' scale (gdal_edit.py -scale).")
        notes.append(text)
        if warnings is not None:
            warnings.append(text)
        return 1.0 / 255.0, 0.0, _baseline(upper, baseline_hint)
    if np.issubdtype(np.dtype(dtype), np.floating) and sample_max is not None and sample_max <= 2.0:
        notes.append("Float raster with values up to about 1: taken as reflectance already (scale 1).")
        return 1.0, 0.0, None
    if np.issubdtype(np.dtype(dtype), np.floating) and sample_max is not None and sample_max <= 150.0:
        # DN reach thousands over any land; values up to ~100 are reflectance in per cent
        text = (f"Float raster with values up to about {sample_max:.4g}: taken as reflectance in per cent "
                "(scale 0.01). Give a band map or rescale the raster if that is wrong.")
        notes.append(text)
        if warnings is not None:
            warnings.append(text)
        return 0.01, 0.0, None
    quant = None
    for key in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE",
                "REFLECTANCE_CONVERSION_QUANTIFICATION_VALUE"):
        if key in upper and _baseline_value(upper[key]):
            quant = _baseline_value(upper[key])
            break
    scale = 1.0 / (quant or 10000.0)
    offset_dn = None
    for key, value in upper.items():
        if ("ADD_OFFSET" in key) and _baseline_value(value) is not None:
            offset_dn = _baseline_value(value)
            notes.append(f"Offset {offset_dn:g} DN from the metadata item {key}.")
            break
    baseline = _baseline(upper, baseline_hint)
    item = _earth_search_item(names) if offset_dn is None and np.issubdtype(np.dtype(dtype), np.integer) else None
    if item is not None:
        offset_dn = _earth_search_offset(item, upper, dark_share, notes, warnings if warnings is not None else [])
        if offset_dn is not None:
            baseline = baseline or ("05.00" if item[0] == "c1" else "04.00")
            if offset_dn:
                notes.append(f"Reflectance = (DN - 1000) / {1.0 / scale:g}.")
            return scale, offset_dn * scale, baseline
    acquired = _acquisition_date(names) if baseline is None and offset_dn is None else None
    if acquired is not None and acquired >= BASELINE_04_SINCE:
        baseline = "04.00"
        notes.append(f"No processing baseline in the metadata or the name, but the acquisition date "
                     f"{acquired[:4]}-{acquired[4:6]}-{acquired[6:]} is on or after 25 January 2022: every product "
                     "since has baseline 04.00 or later.")
    if offset_dn is None and baseline is not None and float(baseline) >= 4.0:
        offset_dn = BASELINE_04_OFFSET
        notes.append(f"Processing baseline {baseline} (>= 04.00): reflectance = (DN - 1000) / "
                     f"{1.0 / scale:g}.")
    offset_dn = offset_dn or 0.0
    if offset_dn == 0.0:
        notes.append(f"Reflectance = DN / {1.0 / scale:g}"
                     + (f" (processing baseline {baseline})." if baseline else "."))
        if baseline is None and acquired is not None:
            notes.append(f"The acquisition date {acquired[:4]}-{acquired[4:6]}-{acquired[6:]} in the name is before "
                         "processing baseline 04.00 (25 January 2022): no offset (a reprocessed product would name "
                         "its baseline, e.g. '_N0500_').")
        elif baseline is None and warnings is not None and np.issubdtype(np.dtype(dtype), np.integer):
            warnings.append(
                "The processing baseline is unknown (no MTD_MSIL2A.xml, no '_N0400_' or acquisition date in the "
                "names, no band offset): reflectance is taken as DN / 10000. Products of baseline 04.00 or later "
                "(all acquired since 25 January 2022, and reprocessed older ones) need DN - 1000 first: if this is "
                "one, keep the product's names or metadata, or set the bands' offset (gdal_edit.py -scale 0.0001 "
                "-offset -0.1), else every reflectance is 0.1 too high. Harmonized exports (Earth Engine "
                "COPERNICUS/S2_SR_HARMONIZED, Sentinel Hub with harmonizeValues, the default) have the offset "
                "removed already: leave those as they are.")
    return scale, offset_dn * scale, baseline


def _band_scaling(pairs, where):
    """The one ``(scale, offset)`` that GDAL band metadata give ``pairs`` (one per band read), or None when every
    band has the default 1 and 0; bands with different values are refused (OreMap applies one to all)."""
    pairs = {(float(a if a is not None else 1.0), float(b if b is not None else 0.0)) for a, b in pairs}
    if pairs <= {(1.0, 0.0)}:
        return None
    if len(pairs) > 1:
        raise OreMapError(f"The bands of {where} carry different scales or offsets "
                          f"({', '.join(f'x {a:g} + {b:g}' for a, b in sorted(pairs))}).", "raster",
                          "Give bands of one product level: Sentinel-2 L2A bands share one scale and offset.")
    return pairs.pop()


def _level_1c(tags, paths, numbers=()):
    """Whether the input is Level 1C: its product type (metadata), a product name of Level 1C (``S2B_MSIL1C_...``)
    among the path components of ``paths``, or a band B10 (cirrus, which only Level 1C has) among ``numbers``."""
    product = str(tags.get("PRODUCT_TYPE", "")).upper().replace("-", "")
    return ("B10" in numbers or product in ("S2MSI1C", "L1C", "LEVEL1C")
            or any("MSIL1C" in part.upper() for p in paths for part in os.path.normpath(str(p)).split(os.sep)))


def _cloud_bands(ds):
    """``["band 13 'SCL'", ...]``: the bands of ``ds`` whose description or band name is a cloud or classification
    layer (:data:`_CLOUD_BAND`)."""
    found = []
    for b in range(1, ds.count + 1):
        text = next((t for t in _band_names(ds, b) if _CLOUD_BAND.match(t)), None)
        if text:
            found.append(f"band {b} '{text.strip()}'")
    return found


def _band_names(ds, b):
    """The names band ``b`` of ``ds`` carries: its description and its band-name tags (those given)."""
    tags = {k.upper(): v for k, v in ds.tags(b).items()}
    return [str(t) for t in (ds.descriptions[b - 1], tags.get("BANDNAME"), tags.get("BAND_NAME")) if t]


def _open_file(path, band_map, required, feedback, mask_clouds=True):
    from ..engine.raster import open_raster

    notes = []
    with open_raster(path) as ds:
        count = ds.count
        if not count:
            raise OreMapError(f"'{os.path.basename(path)}' holds no raster band (a container of subdatasets).",
                              "raster", "Choose a Sentinel-2 raster, or the folder of the product (a .SAFE).")
        if band_map:
            bad = [f"{k}={v}" for k, v in band_map.items() if not 1 <= v <= count]
            if bad:
                raise OreMapError(f"Band map entries {', '.join(bad)} lie outside 1-{count}.", "band_map",
                                  f"The raster has {count} bands.")
            numbers = merge_band_map(_identify_bands(ds, notes, feedback, quiet=True), band_map, notes)
        else:
            numbers = _identify_bands(ds, notes, feedback)
        found = [b for b in KNOWN_BANDS if b in numbers]
        missing = [b for b in required if b not in numbers]
        if missing:
            raise _missing_error(missing, found, f"'{os.path.basename(path)}'")
        tags = dict(ds.tags())
        for b in range(1, count + 1):
            tags.update({k: v for k, v in ds.tags(b).items() if "OFFSET" in k.upper() or "QUANT" in k.upper()})
        tags.update(_stac_item_beside(os.path.dirname(os.path.abspath(path))))  # saved beside a stack of its bands
        hint = _baseline_from_text(path)
        sample_max = _sample_max(ds, [numbers[b] for b in found])
        band_scaling = _band_scaling([(ds.scales[numbers[b] - 1], ds.offsets[numbers[b] - 1]) for b in found],
                                     f"'{os.path.basename(path)}'")
        warnings = []
        # the names of a VRT's source files (band files stacked with gdalbuildvrt) carry the product's date too
        blue = next((numbers[b] for b in ("B2", "B3", "B4") if b in numbers), None)
        scale, offset, baseline = _scaling(tags, ds.dtypes[0], sample_max, hint, notes, band_scaling,
                                           [path] + list(ds.files or ()), warnings,
                                           None if blue is None else lambda: _dark_share(path, blue))
        if _level_1c(tags, [path] + list(ds.files or ()), numbers):
            warnings.append(_LEVEL_1C)
        clouds = _cloud_bands(ds)
        scl_band = _scl_band(ds)
        if scl_band is not None and mask_clouds:
            clouds = [c for c in clouds if not c.startswith(f"band {scl_band} ")]
        if clouds and mask_clouds:
            warnings.append(f"The raster holds {'a cloud layer' if len(clouds) == 1 else 'cloud layers'} "
                            f"({', '.join(clouds)}) that the cloud mask does not use: it masks with a scene "
                            "classification (SCL) only, a band named SCL or the *_SCL_20m.jp2 file of a product "
                            "folder. Clouds and their shadows in this raster stay in the data; give the product "
                            "folder, or set their pixels to nodata before.")
        nodata = ds.nodatavals[0]
        if np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
            # DN 0 is the L2A product's NO_DATA, also in a file that declares another nodata (65535 after a
            # re-export): masked as well, since the reader masks the file's own nodata anyway
            nodata = 0.0
        read_path, temp_dir = path, None
        if scl_band is not None and mask_clouds:
            notes.append(_scl_band_note(ds, scl_band))
            temp_dir = tempfile.mkdtemp(prefix="oremap_s2_")
            read_path = os.path.join(temp_dir, os.path.splitext(os.path.basename(path))[0] + "_scl_masked.vrt")
            with open(read_path, "w", encoding="utf-8") as f:
                f.write(_scl_masked_vrt_xml(path, ds, scl_band))
        elif scl_band is not None:   # the cloud mask is off
            notes.append("The scene classification (SCL) band is not used: clouds and their shadows are not masked.")
        return S2Input(path=read_path, band_numbers=numbers, scale=scale, offset=offset, transform=ds.transform,
                       crs=ds.crs, width=ds.width, height=ds.height, nodata=nodata, baseline=baseline,
                       notes=notes, source_path=path, warnings=warnings, temp_dir=temp_dir)


def _scl_band(ds):
    """The 1-based band of ``ds`` named SCL (description or band-name tag) that holds scene classification codes
    (whole numbers, at most 11 on a sample of the raster besides a fill of 255), else None."""
    from ..engine.raster import _sample_values

    for b in range(1, ds.count + 1):
        if not any(n.strip().upper() == "SCL" for n in _band_names(ds, b)):
            continue
        values = np.asarray(_sample_values(ds, [b]), dtype=np.float64).ravel()
        values = values[np.isfinite(values) & (values != 255)]
        if values.size and np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 11:
            return b
    return None


def _scl_band_note(ds, band):
    """What the SCL band masks: the share of each masked class in a grid of 10 x 10 small windows (a decimated read
    of a pixel-interleaved stack would decompress the whole scene)."""
    from ..engine.raster import sample_windows

    classes = sample_windows(ds, [band], size=32, grid=10)
    counts = np.bincount(np.clip(np.nan_to_num(classes.ravel(), nan=255), 0, 255).astype(np.intp), minlength=256)
    shares = {v: float(counts[v]) / max(classes.size, 1) for v in SCL_MASKED}
    shares[0] += float(counts[12:].sum()) / max(classes.size, 1)   # not a class (a fill such as 255): no data
    detail = ", ".join(f"{SCL_MASKED[v]} {100 * f:.1f} %" for v, f in shares.items() if f > 0) or "none"
    return (f"Clouds masked with the raster's scene classification band (band {band}, SCL): about "
            f"{100 * sum(shares.values()):.1f} % of the raster is nodata ({detail}). Turn the cloud mask off if bright "
            "mine surfaces were taken for cloud.")


def _scl_masked_vrt_xml(path, ds, scl_band):
    """A VRT of every band of ``path`` as it is, whose per-dataset mask is 0 where the band ``scl_band``'s class is
    one of :data:`SCL_MASKED` or no class (12 and above), and where the file's own per-dataset mask (internal, ``.msk``
    or an alpha band) is 0; 255 elsewhere. The file's mask is laid over the SCL lookup as a second source whose 255
    is its nodata, so only its masked pixels are written (a VRT mask band replaces the file's mask otherwise)."""
    from ..engine.vrt import band_source, has_file_mask, raster_vrt_xml

    lut = ",".join(f"{v}:{0 if v in SCL_MASKED else 255}" for v in range(12)) + ",12:0"
    sources = [band_source(path, scl_band, extra=f"<LUT>{lut}</LUT>")]
    if has_file_mask(ds):
        sources.append(band_source(path, "mask,1", extra="<NODATA>255</NODATA>"))
    return raster_vrt_xml(path, ds, mask_sources=sources, fallback_type="Float32")


def _sample_max(ds, bands):
    from ..engine.raster import _sample_values

    if not bands:
        return None
    values = _sample_values(ds, bands[:4]).astype(np.float64)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, 99)) if values.size else None


def merge_band_map(named, band_map, notes=None):
    """Band numbers of a raster whose bands ``named`` (``{name: band}``, maybe empty) meet a band map.

    The map renames and completes: each of its entries ``name=band`` takes that raster band, and a
    name the raster gave the same band is dropped unless the map names it too (``B8=3`` on a raster
    whose band 3 is called B4 makes it B8 only; ``B4=3, B8=3`` keeps both). Names of other bands stay.
    """
    numbers = {k: v for k, v in named.items() if k in band_map or v not in band_map.values()}
    renamed = sorted(f"{k} -> {m}" for k, v in named.items() if k not in band_map
                     for m, w in band_map.items() if w == v)
    numbers.update(band_map)
    if notes is not None:
        text = "Bands from the band map: " + ", ".join(f"{k}={v}" for k, v in band_map.items())
        kept = sorted(set(numbers) - set(band_map), key=lambda b: numbers[b])
        if kept:
            text += "; named by the raster: " + ", ".join(f"{k}={numbers[k]}" for k in kept)
        if renamed:
            text += "; renamed: " + ", ".join(renamed)
        notes.append(text + ".")
    return numbers


def indices_for_bands(which, bands, version=INDEX_VERSION):
    """``(usable, skipped)``: the indices of ``which`` (all when None) computable from ``bands``, and
    ``{index: [missing bands]}`` of the others, both in the order of :data:`INDICES` (definitions of index
    ``version``)."""
    which = INDEX_NAMES if which is None else [_index_name(w) for w in which]
    have = {normalise_band_name(b) or str(b) for b in bands}
    definitions = index_definitions(version)
    usable, skipped = [], {}
    for name in INDEX_NAMES:
        if name not in which:
            continue
        missing = [b for b in definitions[name][1] if b not in have]
        if missing:
            skipped[name] = [b for b in S2_BANDS if b in missing]
        else:
            usable.append(name)
    return usable, skipped


def skipped_text(skipped):
    """``"NDVI (needs B8), NBR (needs B8, B12)"`` for the notes and the log."""
    return ", ".join(f"{k} (needs {', '.join(v)})" for k, v in skipped.items())


def _identify_bands(ds, notes, feedback, quiet=False):
    """``{name: band}`` from descriptions, then band metadata, then wavelengths, then the standard order
    (only when not ``quiet``: a band map then names the bands). Trailing alpha bands (``gdalwarp -dstalpha``) are
    masks, never bands (:func:`core.engine.raster.spectral_count`)."""
    from ..engine.raster import spectral_count

    count = spectral_count(ds)
    sources = []
    generic = all(re.fullmatch(rf"\s*band\s*{i}\s*", d or "", re.IGNORECASE) for i, d in enumerate(ds.descriptions, 1))
    if not generic:  # "Band 1", "Band 2", ... are band numbers, not Sentinel-2 names
        sources.append(("band descriptions", [normalise_band_name(d) for d in ds.descriptions]))
    items = []
    for b in range(1, count + 1):
        tags = {k.upper(): v for k, v in ds.tags(b).items()}
        items.append(normalise_band_name(tags.get("BANDNAME") or tags.get("BAND_NAME") or tags.get("NAME")))
    sources.append(("band metadata", items))
    sources.append(("band wavelengths", _names_from_wavelengths(ds)))
    sources.append(("band source files (VRT)", _names_from_vrt_sources(ds)))
    for what, names in sources:
        named = [(n, i + 1) for i, n in enumerate(names) if n]
        if not named:
            continue
        dupes = sorted({n for n, _ in named if sum(1 for m, _ in named if m == n) > 1})
        if dupes and what == "band wavelengths" and count > 13:  # a hyperspectral cube, not a Sentinel-2 product
            raise OreMapError(f"The raster has {count} bands with wavelengths every few nm: a hyperspectral cube, "
                              "not a Sentinel-2 product (12 or 13 bands).", "raster",
                              "Choose a Sentinel-2 L2A raster or folder; for a hyperspectral cube use the "
                              "Hyperspectral algorithms, or give a band map of its bands nearest the Sentinel-2 "
                              "centres.")
        if dupes:
            raise OreMapError(f"The {what} name {', '.join(dupes)} more than once.", "raster", _FIX_BANDS)
        notes.append(f"Bands identified from the {what}: " + ", ".join(f"{n}={i}" for n, i in named) + ".")
        return dict(named)
    if count in (12, 13) and not quiet:
        order = S2_BANDS if count == 12 else KNOWN_BANDS
        b8a_last, unlike = _b8a_last(ds), _standard_order_unlikely(ds)
        if not b8a_last and unlike:
            raise OreMapError(
                f"The raster's {count} bands carry no names, and their data follow neither the standard Sentinel-2 "
                f"order nor the order of band files sorted by name: {unlike}.", "raster",
                "Give a band map (e.g. 'B2=1, B3=2, B4=3, B8=4, ...' in the raster's order), or name the bands in "
                "the raster's band descriptions.")
        if b8a_last:
            order = [b for b in order if b != "B8A"] + ["B8A"]
        misfit = _order_misfit(ds, order)
        if misfit:
            raise OreMapError(
                f"The raster's {count} bands carry no names, and their data do not fit the order they would be taken "
                f"in ({', '.join(order)}): {misfit}.", "raster",
                "Give a band map of the reflectance bands in the raster's order (for the 12 L2A bands followed by "
                "a scene classification: 'B1=1, B2=2, B3=3, B4=4, B5=5, B6=6, B7=7, B8=8, B8A=9, B9=10, B11=11, "
                "B12=12'), or name the bands in the raster's band descriptions.")
        if b8a_last:
            feedback.warning(
                f"The raster's {count} bands carry no names, and band {count}, not band 9, looks like B8A: it follows "
                f"band 8 (B8, 842 nm) as B8A (865 nm) does on every surface ({b8a_last}). Taken in file-name order "
                f"({', '.join(order)}), as a stack of *_B01 ... *_B8A files sorted by name gives. Give a band map if "
                "that is wrong.")
            notes.append(f"Bands taken in file-name order (B8A last): band {count} follows band 8 ({b8a_last}).")
        else:
            feedback.warning(f"The raster's {count} bands carry no names: taken in the standard Sentinel-2 order "
                             f"({', '.join(order)}). Give a band map if that is wrong.")
            notes.append(f"Bands taken in the standard order of a {count}-band product.")
        return {n: i + 1 for i, n in enumerate(order)}
    return {}


def _order_sample(ds, size=32):
    """Valid sample pixels of bands 8, 9 and the last (rows of the array), or None when too few vary."""
    from ..engine.raster import sample_windows

    from ..engine.raster import spectral_count

    x = sample_windows(ds, [8, 9, spectral_count(ds)], size).astype(np.float64)
    ok = np.all(np.isfinite(x), axis=0) & (x[0] > 0)
    for value in {v for v in ds.nodatavals if v is not None}:
        ok &= np.all(x != value, axis=0)
    x = x[:, ok]
    if x.shape[1] < 50 or np.ptp(x[0]) == 0 or np.ptp(x[1]) == 0 or np.ptp(x[2]) == 0:
        return None
    return x


def _standard_order_unlikely(ds):
    """For an unnamed 12- or 13-band stack: a text of the evidence when band 9 cannot be B8A beside band 8 as B8
    (the standard order): the two anti-correlated, where B8 and B8A correlate 0.89-0.98 on every surface of
    the real BigEarthNet patches (see :func:`_b8a_last`); else ``""``. A stack in another order (BigEarthNet's
    channel order puts B8A 8th and B11 9th: -0.32) would otherwise be read wrongly."""
    x = _order_sample(ds)
    if x is None:
        return ""
    r9 = np.corrcoef(x[0], x[1])[0, 1]
    # positive evidence only: band 9 anti-correlated with band 8 (B11 in BigEarthNet's order: -0.34); a dark,
    # noisy near infrared (water, a pit lake) correlates weakly in the right order too
    return f"band 8 and band 9 correlate {r9:.2f}, where B8 and B8A correlate 0.89-0.98" if r9 < -0.1 else ""


#: Bands that are never near 0 in the surface reflectance of any land, water or cloud (the near infrared and the
#: short-wave infrared are, over clear water), and so never hold only the whole numbers 0-11 of a class layer.
_NEVER_DARK_BOA = ("B1", "B2", "B3", "B4", "B5")


def _order_misfit(ds, order, size=32):
    """For an unnamed 12- or 13-band stack taken in ``order``: a text of the evidence that its data do not fit that
    order, else ``""``. Two facts are checked, on the sample windows of
    :func:`core.engine.raster.sample_windows`:

    * a band where a reflectance band is expected holds only whole numbers 0-11: the class codes of a scene
      classification (SCL), as exports of the 12 L2A bands with SCL appended have (openEO, Earth Engine's
      ``select(['B.*', 'SCL'])``), which a 13-band stack in the L1C order read as B12. Checked where no band is
      that dark over a whole scene: every band but B10 (cirrus) of the 13 top-of-atmosphere bands (the air's own
      scattering lies on them), and B1-B5 of the 12 surface-reflectance bands (the near and short-wave infrared of
      clear water are about 0). Not for 8-bit rasters, whose dark bands hold small whole numbers anyway;
    * B10 (cirrus, 1375 nm) over twice as bright as B2 (blue): at the top of the atmosphere, where L1C measures,
      water vapour absorbs nearly all of B10 below the cirrus (clear land and water give a few hundredths at most),
      while air alone scatters more than that into blue, and clouds are no brighter at 1375 nm than in blue. The
      B11 that stands there in a stack of the 12 L2A bands with a layer appended is 4.3-9.2 times their B2 on the
      real BigEarthNet patches (snow: 0.12, which its SCL tells).
    """
    from ..engine.raster import sample_windows

    x = sample_windows(ds, list(range(1, len(order) + 1)), size).astype(np.float64)
    # pixels with data: every band finite and not the declared nodata, blue above 0 (DN 0 is no data)
    ok = np.all(np.isfinite(x), axis=0) & (x[order.index("B2")] > 0)
    for value in {v for v in ds.nodatavals if v is not None}:
        ok &= np.all(x != value, axis=0)
    x = x[:, ok]
    if x.shape[1] < 50:
        return ""
    evidence = []
    if np.dtype(ds.dtypes[0]) != np.uint8:
        checked = [b for b in order if b != "B10"] if "B10" in order else [b for b in order if b in _NEVER_DARK_BOA]
        for name in checked:
            values = x[order.index(name)]
            if np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 11:
                evidence.append(f"band {order.index(name) + 1}, taken for {name}, holds only whole numbers "
                                f"{values.min():g}-{values.max():g}, the class codes of a scene classification "
                                "(SCL), not reflectance")
    if "B10" in order:
        ratio = float(np.median(x[order.index("B10")]) / np.median(x[order.index("B2")]))
        if ratio > 2.0:
            evidence.append(f"band {order.index('B10') + 1}, taken for B10 (cirrus, 1375 nm), is {ratio:.1f} times "
                            "as bright as band 2 (B2, blue), where cirrus is darker than blue at the top of the "
                            "atmosphere on every surface and cloud")
    return "; ".join(evidence)


def _b8a_last(ds, size=32):
    """For an unnamed 12- or 13-band stack: a text of the evidence when its last band, not band 9, is B8A (a
    stack of band files sorted by name: ..., B09, (B10,) B11, B12, B8A), else ``""``.

    B8A (865 nm) lies on the same near-infrared plateau as B8 (842 nm): over land, water and vegetation it follows
    B8 more closely than any other band (correlation 0.89-0.98 on the real BigEarthNet patches, ratio 0.96-1.06),
    while B9 (945 nm, water vapour) follows it less (0.68-0.88) and B12 (2190 nm) is darker (ratio 0.12-0.55).
    So the last band is taken for B8A when it correlates with band 8 better than band 9 does, at least 0.8, and
    has about band 8's level (ratio 0.8-1.25), while band 9 (then B9) still follows band 8 (at least 0.5), on the
    sample windows of :func:`core.engine.raster.sample_windows`. In BigEarthNet's channel order B9 comes last and
    correlates 0.76-0.84 with band 8 (B8A there), but band 9 is B11 there (-0.34)."""
    x = _order_sample(ds, size)
    if x is None:
        return ""
    r9, r_last = np.corrcoef(x[0], x[1])[0, 1], np.corrcoef(x[0], x[2])[0, 1]
    ratio = float(np.median(x[2] / x[0]))
    if r_last > r9 and r_last >= 0.8 and r9 >= 0.5 and 0.8 <= ratio <= 1.25:
        return f"correlation with band 8 {r_last:.2f} against band 9's {r9:.2f}, median ratio {ratio:.2f}"
    return ""


def _names_from_vrt_sources(ds):
    """For a VRT that stacks one band file per band (``gdalbuildvrt -separate``), each band's name from its source
    file's name (``..._B8A.tif``, ``T33UVP_..._B04_10m.jp2``); ``[]`` for other rasters or unnamed files."""
    if ds.driver != "VRT":
        return []
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(ds.name).getroot()
    except (ET.ParseError, OSError):
        return []
    names = [None] * ds.count
    for band in root.iter("VRTRasterBand"):
        number = int(band.get("band", 0))
        files = {os.path.basename((src.text or "").strip()) for src in band.iter("SourceFilename")}
        if 1 <= number <= ds.count and len(files) == 1:
            known = band_of_file(files.pop())
            names[number - 1] = known[0] if known else None
    return names


def _names_from_wavelengths(ds):
    from ..engine.wavelengths import band_info_from_raster

    try:
        info = band_info_from_raster(ds)
    except OreMapError:
        return [None] * ds.count
    if info is None:
        return [None] * ds.count
    names = []
    for centre in info.centers:
        best = min(S2_CENTERS, key=lambda n: abs(S2_CENTERS[n] - centre))
        names.append(best if abs(S2_CENTERS[best] - centre) <= 12.0 else None)
    return names


# ---------------------------------------------------------------------------
# Folders of per-band files
# ---------------------------------------------------------------------------


def find_band_files(folder):
    """``{name: path}`` of per-band files under ``folder`` (the finest resolution when several).

    One product only: a band found twice at one resolution (a folder of several patches or tiles) raises
    :class:`OreMapError` naming the folders, rather than stacking one scene's bands, or several scenes' bands.
    """
    found, seen = {}, {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d.upper() not in _NOT_BAND_FOLDERS)
        for name in sorted(files):
            known = band_of_file(name)
            if known is None:
                continue
            band, res = known
            path = os.path.join(root, name)
            seen.setdefault((band, res), []).append(path)
            if band not in found or res < found[band][0]:
                found[band] = (res, path)
    repeated = next((paths for paths in seen.values() if len(paths) > 1), None)
    if repeated:
        where = sorted({os.path.relpath(os.path.dirname(p), folder) for p in repeated})
        raise OreMapError(f"The folder '{folder}' holds more than one Sentinel-2 product: "
                          f"{os.path.basename(repeated[0])} and {os.path.basename(repeated[1])} are the same band "
                          f"(in {', '.join(where[:4])}{' ...' if len(where) > 4 else ''}).", "raster",
                          "Choose the folder of one product (one patch, tile or .SAFE); to process many, use Batch "
                          "on a cluster.")
    return {band: p for band, (_, p) in found.items()}


def find_scl_file(folder):
    """The scene classification file (``*_SCL_20m.jp2`` ...) under ``folder``, the finest when several; None if none."""
    best = None
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d.upper() not in _NOT_BAND_FOLDERS)
        for name in sorted(files):
            match = _FILE_SCL.search(name)
            if match:
                res = int(match.group(1)) if match.group(1) else 0
                if best is None or res < best[0]:
                    best = (res, os.path.join(root, name))
    return best[1] if best else None


def _stac_item(path):
    """Metadata items of a STAC item JSON that bear on the offset (``earthsearch:boa_offset_applied``, the
    processing baseline), or {} for any other file."""
    try:
        if os.path.getsize(path) > 5_000_000:
            return {}
        with open(path, encoding="utf-8") as handle:
            item = json.load(handle)
    except (OSError, ValueError):
        return {}
    properties = item.get("properties") if isinstance(item, dict) and item.get("type") == "Feature" else None
    if not isinstance(properties, dict):
        return {}
    found = {}
    if "earthsearch:boa_offset_applied" in properties:
        found["EARTHSEARCH:BOA_OFFSET_APPLIED"] = str(properties["earthsearch:boa_offset_applied"])
    if _baseline_value(properties.get("s2:processing_baseline")) is not None:
        found["PROCESSING_BASELINE"] = str(properties["s2:processing_baseline"])
    return found


def _stac_item_beside(folder):
    """:func:`_stac_item` of the first STAC item JSON in ``folder`` (of its first eight JSON files), else {}."""
    for json_path in sorted(glob.glob(os.path.join(glob.escape(folder), "*.json")))[:8]:
        item = _stac_item(json_path)
        if item:
            return item
    return {}


def _folder_metadata(folder, files):
    """Metadata items and baseline hint of a folder: MTD XML, BigEarthNet JSON, product names."""
    tags, hint = {}, _baseline_from_text(os.path.abspath(folder)) or \
        next((_baseline_from_text(p) for p in files.values() if _baseline_from_text(p)), None)
    for json_path in sorted(glob.glob(os.path.join(glob.escape(folder), "*metadata*.json")))[:1]:
        try:
            with open(json_path, encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            hint = hint or _baseline_from_text(str(meta.get("tile_source", "")) + "_")
            for key, value in meta.items():
                if isinstance(value, (str, int, float)):
                    tags[str(key)] = value
    tags.update(_stac_item_beside(folder))   # a STAC item saved with the bands
    # the folder escaped: 'Survey [2023]' is a name, not a pattern (the metadata, and the -1000 offset, went unseen)
    for xml_path in sorted(glob.glob(os.path.join(glob.escape(folder), "MTD_MSIL*.xml")))[:1]:
        try:
            with open(xml_path, encoding="utf-8", errors="replace") as handle:
                text = handle.read(2_000_000)
        except OSError:
            continue
        match = re.search(r"<PROCESSING_BASELINE>\s*([\d.]+)\s*<", text)
        if match:
            tags["PROCESSING_BASELINE"] = match.group(1)
        match = re.search(r"<BOA_QUANTIFICATION_VALUE[^>]*>\s*([\d.]+)\s*<", text) or \
            re.search(r"<QUANTIFICATION_VALUE[^>]*>\s*([\d.]+)\s*<", text)
        if match:
            tags["QUANTIFICATION_VALUE"] = match.group(1)
        match = re.search(r"<(BOA|RADIO)_ADD_OFFSET[^>]*>\s*(-?[\d.]+)\s*<", text)
        if match:
            tags[f"{match.group(1)}_ADD_OFFSET"] = match.group(2)
        if re.search(r"<PRODUCT_TYPE>\s*S2MSI1C\s*<", text):
            tags["PRODUCT_TYPE"] = "S2MSI1C"
    return tags, hint


def _open_folder(folder, required, feedback, out_dir, mask_clouds=True):
    import rasterio
    from rasterio.enums import MaskFlags

    files = find_band_files(folder)
    if not files:
        raise OreMapError(f"The folder '{folder}' holds no Sentinel-2 band file.", "raster",
                          "Choose a folder of per-band files named like *_B02.tif, *_B8A.jp2 or T31UFQ_..._B04_10m.jp2 "
                          "(a BigEarthNet patch, a .SAFE product), or give a multi-band raster instead.")
    found = [b for b in KNOWN_BANDS if b in files]
    missing = [b for b in required if b not in files]
    if missing:
        raise _missing_error(missing, found, "the folder")
    names = [b for b in KNOWN_BANDS if b in files and b != "B10"] or found
    infos = {}
    for band in names:
        try:
            with rasterio.open(files[band]) as ds:
                flags = ds.mask_flag_enums[0]
                infos[band] = dict(transform=ds.transform, crs=ds.crs, width=ds.width, height=ds.height,
                                   dtype=ds.dtypes[0], nodata=ds.nodatavals[0], res=abs(ds.transform.a),
                                   tags=dict(ds.tags()), scaling=(ds.scales[0], ds.offsets[0]),
                                   # an internal mask or alpha band, not a nodata value, marks its nodata pixels
                                   masked=MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags)
        except rasterio.errors.RasterioIOError as exc:
            raise OreMapError(f"Cannot read the band file '{files[band]}': {exc}.", "raster") from None
    finest = min(names, key=lambda b: (infos[b]["res"], KNOWN_BANDS.index(b)))
    ref = infos[finest]
    notes = []
    for band in names:
        if infos[band]["crs"] != ref["crs"]:
            raise OreMapError(f"Band file {os.path.basename(files[band])} is in another CRS than "
                              f"{os.path.basename(files[finest])}.", "raster",
                              "Use the files of one product (one tile).")
    t = ref["transform"]
    if t.b != 0 or t.d != 0:
        raise OreMapError("Rotated band files cannot be stacked.", "raster", "Use north-up band files.")
    resampled = [b for b in names if infos[b]["res"] > ref["res"] * 1.0001]
    if resampled:
        coarse = "/".join(sorted({"%g" % infos[b]["res"] for b in resampled}, key=float))
        notes.append(f"Bands {', '.join(resampled)} resampled bilinearly from {coarse} m to the "
                     f"{ref['res']:g} m grid of {finest}.")
    tags = {}
    for band in names:
        tags.update(infos[band]["tags"])
    meta_tags, hint = _folder_metadata(folder, files)
    tags.update(meta_tags)
    dtype = infos[finest]["dtype"]
    sample_max = None
    if np.issubdtype(np.dtype(dtype), np.floating):
        with rasterio.open(files[finest]) as ds:
            sample_max = _sample_max(ds, [1])
    band_scaling = _band_scaling([infos[b]["scaling"] for b in names], "the folder's band files")
    warnings = []
    blue = next((files[b] for b in ("B2", "B3", "B4") if b in files), None)
    scale, offset, baseline = _scaling(tags, dtype, sample_max, hint, notes, band_scaling,
                                       [os.path.abspath(folder)] + [files[b] for b in names], warnings,
                                       None if blue is None else lambda: _dark_share(blue, 1))
    if _level_1c(tags, [os.path.abspath(folder)]):
        warnings.append(_LEVEL_1C)
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    nodata = ref["nodata"] if ref["nodata"] is not None else (0.0 if integer else None)
    if nodata is None and any(i["nodata"] is not None or i["masked"] for i in infos.values()):
        # float files, the finest without a nodata value: the pixels another file marks (its nodata, its mask) are
        # skipped in the VRT and would read as 0, a valid reflectance; they are NaN
        nodata = float("nan")
    scl = _scene_classification(folder, ref, nodata, mask_clouds, notes)
    if out_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="oremap_s2_")
        vrt_folder = temp_dir
    else:
        temp_dir, vrt_folder = None, out_dir
    stem = os.path.basename(os.path.normpath(folder)) or "sentinel2"
    vrt_path = os.path.join(vrt_folder, f"{stem}_10m.vrt")
    from ..engine.files import write_atomic

    sources = dict(files)
    for band in resampled:
        if nodata is not None and infos[band]["nodata"] is None and not infos[band]["masked"]:
            # GDAL resamples a source that declares no nodata as if DN 0 were a value, and applies the VRT's nodata
            # only after: the valid pixels along a swath edge got 20 m bands mixed with 0 (B11 0.225 instead of
            # 0.3), 60 m bands over three pixels. L2A JP2s and BigEarthNet's GeoTIFFs declare none. Declared (in a
            # VRT of the file on its own grid), the resampler weighs the valid pixels only.
            sources[band] = write_atomic(os.path.join(vrt_folder, f"{stem}_{band}_nodata.vrt"),
                                         _nodata_vrt_xml(files[band], infos[band], nodata), parameter="raster")
    xml = _vrt_xml(names, sources, infos, ref, nodata, scl)
    write_atomic(vrt_path, xml, parameter="raster")
    # the VRT's nodata is the files' own; the reader masks DN 0 (the L2A NO_DATA) as well
    return S2Input(path=vrt_path, band_numbers={b: i + 1 for i, b in enumerate(names)}, scale=scale,
                   offset=offset, transform=ref["transform"], crs=ref["crs"], width=ref["width"],
                   height=ref["height"], nodata=0.0 if integer else nodata, resampled=resampled, baseline=baseline,
                   notes=notes, source_path=folder, temp_dir=temp_dir, warnings=warnings)


def _scene_classification(folder, ref, nodata, mask_clouds, notes):
    """The SCL file's grid (a dict) when its clouds are to be masked, else None; the decision goes to ``notes``."""
    import rasterio

    path = find_scl_file(folder)
    if path is None:
        return None
    if not mask_clouds:
        notes.append("The scene classification (SCL) is not used: clouds and their shadows are not masked.")
        return None
    if nodata != 0:
        notes.append("The band files do not use 0 as nodata, so the scene classification (SCL) cannot mask clouds.")
        return None
    try:
        with rasterio.open(path) as ds:
            info = dict(path=path, transform=ds.transform, width=ds.width, height=ds.height, crs=ds.crs)
            classes = ds.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise OreMapError(f"Cannot read the scene classification '{path}': {exc}.", "raster",
                          "Remove the damaged SCL file, or turn the cloud mask off.") from None
    if info["crs"] != ref["crs"] or info["transform"].b != 0 or info["transform"].d != 0:
        raise OreMapError(f"The scene classification {os.path.basename(path)} is not on the grid of the bands.",
                          "raster", "Use the SCL file of the same product, or turn the cloud mask off.")
    counts = np.bincount(np.clip(classes.ravel(), 0, 255).astype(np.intp), minlength=256)  # SCL codes are 0-11
    shares = {v: float(counts[v]) / max(classes.size, 1) for v in SCL_MASKED}
    masked = sum(shares.values())
    detail = ", ".join(f"{SCL_MASKED[v]} {100 * f:.1f} %" for v, f in shares.items() if f > 0) or "none"
    notes.append(f"Clouds masked with the scene classification {os.path.basename(path)}: {100 * masked:.1f} % of "
                 f"the scene is nodata ({detail}). Turn the cloud mask off if bright mine surfaces were taken "
                 "for cloud.")
    return info


def _nodata_vrt_xml(path, info, nodata):
    """A VRT of the band file ``path`` on its own grid and in its own type (GDAL resamples in it: whole DN, as the
    file itself gives), declaring ``nodata``."""
    from ..engine.raster import vrt_type

    t = info["transform"]
    kind = vrt_type(info.get("dtype")) or "Float32"
    return (f'<VRTDataset rasterXSize="{info["width"]}" rasterYSize="{info["height"]}">\n'
            f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>\n"
            f'  <VRTRasterBand dataType="{kind}" band="1">\n'
            f"    <NoDataValue>{nodata!r}</NoDataValue>\n"
            "    <SimpleSource>\n"
            f'      <SourceFilename relativeToVRT="0">{escape(os.path.abspath(path))}</SourceFilename>\n'
            "      <SourceBand>1</SourceBand>\n"
            "    </SimpleSource>\n"
            "  </VRTRasterBand>\n"
            "</VRTDataset>\n")


def _vrt_xml(names, files, infos, ref, nodata, scl=None):
    """A VRT stacking the band files on the reference grid (float32, bilinear for coarser bands).

    With ``scl`` (the scene classification's grid), each band is the product of its values and
    0/1 looked up from the SCL class (nearest neighbour): 0 (= nodata) where :data:`SCL_MASKED`.
    """
    t = ref["transform"]

    def dst_rect(st, width, height):
        return (f'<DstRect xOff="{(st.c - t.c) / t.a!r}" yOff="{(st.f - t.f) / t.e!r}" '
                f'xSize="{width * st.a / t.a!r}" ySize="{height * st.e / t.e!r}"/>')

    lut = ",".join(f"{v}:{0 if v in SCL_MASKED else 1}" for v in range(12))
    lines = [f'<VRTDataset rasterXSize="{ref["width"]}" rasterYSize="{ref["height"]}">']
    if ref["crs"] is not None:
        lines.append(f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(ref["crs"].to_wkt())}</SRS>')
    lines.append(f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>")
    for i, band in enumerate(names, start=1):
        info = infos[band]
        st = info["transform"]
        derived = ' subClass="VRTDerivedRasterBand"' if scl else ""
        lines.append(f'  <VRTRasterBand dataType="Float32" band="{i}"{derived}>')
        lines.append(f"    <Description>{band}</Description>")
        lines.append("    <Metadata>")
        lines.append(f'      <MDI key="BANDNAME">{band}</MDI>')
        lines.append(f'      <MDI key="wavelength">{S2_CENTERS[band]!r}</MDI>')
        lines.append('      <MDI key="wavelength_units">Nanometers</MDI>')
        lines.append(f'      <MDI key="fwhm">{S2_BANDWIDTHS[band]!r}</MDI>')
        lines.append("    </Metadata>")
        if nodata is not None:
            lines.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        if scl:
            lines.append("    <PixelFunctionType>mul</PixelFunctionType>")
            # the 0 of a masked class is nodata, and GDAL 3.12 and later (pixel functions made nodata-aware) skip the
            # nodata inputs of ``mul`` unless told: with 3.13 the clouds kept their values. GDAL 3.6 and 3.10 take
            # the argument and give the same product as without it.
            lines.append('    <PixelFunctionArguments propagateNoData="true"/>')
        resampling = ' resampling="bilinear"' if info["res"] > ref["res"] * 1.0001 else ""
        lines.append(f"    <ComplexSource{resampling}>")
        lines.append(f'      <SourceFilename relativeToVRT="0">{escape(os.path.abspath(files[band]))}'
                     "</SourceFilename>")
        lines.append("      <SourceBand>1</SourceBand>")
        lines.append(f'      <SrcRect xOff="0" yOff="0" xSize="{info["width"]}" ySize="{info["height"]}"/>')
        lines.append("      " + dst_rect(st, info["width"], info["height"]))
        # each file's own nodata (or mask): a 20 m file with nodata 65535 among 10 m files with 0 had its 65535 read
        # as a value, and a file's internal mask was not read at all
        source_nodata = info["nodata"] if info.get("nodata") is not None else nodata
        if info.get("masked"):
            lines.append("      <UseMaskBand>true</UseMaskBand>")
        elif source_nodata is not None:
            lines.append(f"      <NODATA>{source_nodata!r}</NODATA>")
        lines.append("    </ComplexSource>")
        if scl:
            lines.append("    <ComplexSource>")
            lines.append(f'      <SourceFilename relativeToVRT="0">{escape(os.path.abspath(scl["path"]))}'
                         "</SourceFilename>")
            lines.append("      <SourceBand>1</SourceBand>")
            lines.append(f'      <SrcRect xOff="0" yOff="0" xSize="{scl["width"]}" ySize="{scl["height"]}"/>')
            lines.append("      " + dst_rect(scl["transform"], scl["width"], scl["height"]))
            lines.append(f"      <LUT>{lut}</LUT>")
            lines.append("    </ComplexSource>")
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Spectral indices
# ---------------------------------------------------------------------------

#: Index name -> (kind, bands, description). kind "nd": (a - b) / (a + b); "ratio": a / b;
#: "bsi": ((B11 + B4) - (B8 + B2)) / ((B11 + B4) + (B8 + B2)). The three mineral ratios are Segal's (1982)
#: Landsat TM ratios on the Sentinel-2 bands that match them: iron oxide TM3 / TM1 (red / blue), ferrous
#: minerals TM5 / TM4 (SWIR 1.6 um / NIR; the 20 m NIR band B8A, at the resolution of B11) and clay TM5 / TM7
#: (SWIR 1.6 / 2.2 um). Segal, D. (1982), Theoretical basis for differentiation of ferric-iron bearing minerals,
#: using Landsat MSS data, Proc. 2nd Thematic Conf. on Remote Sensing for Exploratory Geology, Fort Worth,
#: 949-951 (the TM forms are those image-processing software applies; the paper's title names MSS data).
INDICES = {
    "NDVI": ("nd", ("B8", "B4"), "Normalised difference vegetation index (B8, B4)"),
    "NDWI": ("nd", ("B3", "B8"), "Normalised difference water index, McFeeters (B3, B8)"),
    "MNDWI": ("nd", ("B3", "B11"), "Modified NDWI (B3, B11)"),
    "BSI": ("bsi", ("B11", "B4", "B8", "B2"), "Bare soil index ((B11+B4)-(B8+B2))/((B11+B4)+(B8+B2))"),
    "NBR": ("nd", ("B8", "B12"), "Normalised burn ratio (B8, B12)"),
    "NBR2": ("nd", ("B11", "B12"), "Normalised burn ratio 2 (B11, B12)"),
    "NDMI": ("nd", ("B8", "B11"), "Normalised difference moisture index (B8, B11)"),
    "IRON_OXIDE": ("ratio", ("B4", "B2"), "Iron oxide ratio B4 / B2"),
    "FERROUS_IRON": ("ratio", ("B11", "B8A"), "Ferrous minerals ratio B11 / B8A (Segal's TM5 / TM4)"),
    "CLAY": ("ratio", ("B11", "B12"), "Clay (hydroxyl) ratio B11 / B12"),
}
INDEX_NAMES = list(INDICES)

_EARLIER = {1: {"FERROUS_IRON": ("ratio", ("B12", "B8A"), "Ferrous iron ratio B12 / B8A (index version 1)")}}


def index_version_of(stored):
    """The index version of a model's stored settings (its patch-feature definition, its segmentation
    preprocessing): 1 for models that store none (OreMap 0.2.4 and earlier)."""
    return int((stored or {}).get("index_version", 1))


def index_definitions(version=INDEX_VERSION):
    """:data:`INDICES` as index version ``version`` defined them (:data:`INDEX_VERSION`)."""
    if version not in (1, INDEX_VERSION):
        raise OreMapError(f"The model's spectral indices are of version {version}, which this OreMap does not "
                          f"know (it knows 1 to {INDEX_VERSION}).", "model", "Update OreMap.")
    return {**INDICES, **_EARLIER.get(version, {})}


def index_bands(which=None, version=INDEX_VERSION):
    """S2 bands needed by the indices ``which`` (all by default; definitions of index ``version``), in the
    standard order."""
    which = INDEX_NAMES if which is None else [_index_name(w) for w in which]
    definitions = index_definitions(version)
    needed = {b for w in which for b in definitions[w][1]}
    return [b for b in S2_BANDS if b in needed]


def _index_name(name):
    key = str(name).strip().upper().replace(" ", "_")
    aliases = {"IRON": "IRON_OXIDE", "IRONOXIDE": "IRON_OXIDE", "FERROUS": "FERROUS_IRON",
               "FERROUSIRON": "FERROUS_IRON", "CLAY_MINERALS": "CLAY", "HYDROXYL": "CLAY"}
    key = aliases.get(key.replace("_", ""), aliases.get(key, key))
    if key not in INDICES:
        raise OreMapError(f"Unknown spectral index '{name}'.", "indices", f"Choose among {', '.join(INDEX_NAMES)}.")
    return key


def compute_indices(refl, band_names, which=None, version=INDEX_VERSION):
    """Spectral indices of reflectance pixels.

    Parameters
    ----------
    refl : array-like of shape (n, n_bands)
        Reflectance (not DN); negative values count as 0.
    band_names : list of str
        S2 name of each column.
    which : list of str, optional
        Index names (see :data:`INDICES`); all by default.
    version : int
        The definitions of :data:`INDEX_VERSION` by default; a model's own (:func:`index_definitions`).

    Returns
    -------
    values : ndarray of float32 of shape (n, n_indices)
        NaN where a denominator is zero or an input is NaN.
    names : list of str
    """
    refl = np.asarray(refl, dtype=np.float64)
    if refl.ndim == 1:
        refl = refl[None, :]
    names = [normalise_band_name(b) or str(b) for b in band_names]
    if refl.shape[1] != len(names):
        raise OreMapError(f"{refl.shape[1]} columns but {len(names)} band names.", "raster")
    which = INDEX_NAMES if which is None else [_index_name(w) for w in which]
    missing = [b for b in index_bands(which, version) if b not in names]
    if missing:
        raise OreMapError(f"The indices {', '.join(which)} need the bands {', '.join(missing)}, which are missing.",
                          "raster", "Choose a raster with these bands, or other indices.")
    # negative reflectance (dark water or shadow after the baseline-04 offset, noise) is 0: normalised differences
    # stay within [-1, 1] (NDVI of B8 0.0003, B4 -0.001 was -1.86) and ratios non-negative
    low = 0.0 if version >= 2 else -np.inf
    col = {n: np.maximum(refl[:, names.index(n)], low) for n in set(names) if n in S2_CENTERS}
    definitions = index_definitions(version)
    out = np.empty((refl.shape[0], len(which)), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, name in enumerate(which):
            kind, bands, _ = definitions[name]
            if kind == "nd":
                num, den = col[bands[0]] - col[bands[1]], col[bands[0]] + col[bands[1]]
            elif kind == "ratio":
                num, den = col[bands[0]], col[bands[1]]
            else:
                a, b = col["B11"] + col["B4"], col["B8"] + col["B2"]
                num, den = a - b, a + b
            out[:, j] = np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    out[~np.isfinite(out)] = np.nan
    return out.astype(np.float32), list(which)


INDEX_NODATA = -9999.0


def indices_map(path, out_path, which=None, band_map=None, mask_clouds=True, memory_mb=None, feedback=None):
    """Write the spectral indices ``which`` (all by default) of the Sentinel-2 scene at ``path`` (a raster or a
    folder of per-band files, :func:`open_sentinel2`) to ``out_path``: float32, one band per index (named by it,
    its definition in the band tags), nodata :data:`INDEX_NODATA` (also where a denominator is zero), streamed
    by the block engine under ``memory_mb``.

    The indices whose bands the scene lacks are skipped and ``feedback`` warned; when none can be computed an
    :class:`OreMapError` (parameter ``"raster"``) says which bands each needs. Returns the engine's stats with
    ``indices`` (computed) and ``skipped`` (``{index: [missing bands]}``).
    """
    from ..engine.feedback import ensure
    from ..engine.raster import OutputSpec, run_pixelwise

    feedback = ensure(feedback)
    asked = None if which is None else [_index_name(w) for w in which]
    if asked is not None and not asked:
        raise OreMapError("No index was chosen.", "indices", "Choose at least one index.")
    with open_sentinel2(path, band_map=band_map, feedback=feedback, required=[], mask_clouds=mask_clouds) as s2:
        usable, skipped = indices_for_bands(asked, s2.bands)
        if not usable:
            raise OreMapError("None of the chosen indices can be computed from the bands of the input "
                              f"({', '.join(s2.bands) or 'none identified'}): {skipped_text(skipped)}.", "raster",
                              "Choose indices these bands allow (IRON_OXIDE needs only B2 and B4), or an input "
                              "with more bands (or name its bands with a band map).")
        if skipped:
            feedback.warning(f"Skipped for lack of bands: {skipped_text(skipped)}.")
        bands = index_bands(usable)
        feedback.info(f"Indices {', '.join(usable)} from bands {', '.join(bands)}.")
        spec = OutputSpec(out_path, usable, dtype="float32", nodata=INDEX_NODATA,
                          band_tags=[{"index": w, "definition": INDICES[w][2]} for w in usable],
                          tags={"source": s2.source_path, "reflectance_scale": s2.scale,
                                "reflectance_offset": s2.offset})

        no_index = [0]   # pixels read as valid whose every index is undefined (nodata in every output band)

        def per_block(pixels):
            values, _ = compute_indices(pixels, bands, usable)
            finite = np.isfinite(values)
            no_index[0] += int(np.count_nonzero(~finite.any(axis=1)))
            return np.where(finite, values, INDEX_NODATA).astype(np.float32)

        with s2.open_source(bands) as source:
            stats = run_pixelwise(source, [spec], per_block, memory_mb=memory_mb,
                                  work_bytes_per_pixel=8 * (len(bands) + 2 * len(usable)), feedback=feedback)
        stats["valid_pixels"] -= no_index[0]
    stats["indices"] = usable
    stats["skipped"] = skipped
    return stats


# ---------------------------------------------------------------------------
# Spectra to Sentinel-2 bands
# ---------------------------------------------------------------------------


def s2_band_info(bands=None):
    """:class:`core.engine.wavelengths.BandInfo` of S2 bands (centres and bandwidths as FWHM)."""
    from ..engine.wavelengths import BandInfo

    bands = S2_BANDS if bands is None else list(bands)
    return BandInfo(centers=[S2_CENTERS[b] for b in bands], fwhm=[S2_BANDWIDTHS[b] for b in bands])


def convolve_to_s2(spectra, wavelengths, src_fwhm=None, bands=None):
    """Spectra (e.g. a USGS library) as Sentinel-2 would see them: Gaussian band responses.

    Returns ``(n, len(bands))`` float64; NaN where the spectra do not cover a band.
    """
    from ..engine.wavelengths import resample_spectra

    return resample_spectra(spectra, wavelengths, s2_band_info(bands), src_fwhm=src_fwhm)
