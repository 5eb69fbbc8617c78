"""The raster block engine: stream a raster window by window under a memory budget.

Every per-pixel algorithm in OreMap runs through :func:`run_pixelwise`: the source
raster is read in full-width strips (or tiles, for very wide rasters) sized from a
memory budget, invalid pixels are masked (source nodata, NaN/inf, an optional user
nodata value), the valid pixels of each block are handed to a function as a plain
``(n_pixels, n_bands)`` float32 matrix, and its results are scattered back into
tiled, compressed GeoTIFFs that carry the source CRS, geotransform (rotation
included), band descriptions and an explicit nodata value.

Outputs are written to temporary files next to the destinations and moved into
place only when every block succeeded; an error or a cancellation removes them, so
nothing half-written is ever left behind.
"""

import contextlib
import os
import re
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.windows import Window

from .envi_header import dropped_field, layout_problem, unreadable_header_reason
from .errors import OreMapError
from .feedback import ensure
from . import files
from .files import host_tag, names_beside, replace, run_file_is_stale

# A raster without georeferencing (a lab or mine-face image, a test tile) is read in pixel coordinates; rasterio
# warns of it with a Python traceback on stderr and in the QGIS log at every open. The algorithms that need a
# CRS say so in their own words (the CRS rule of algorithms/base.py).
warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)

DEFAULT_MEMORY_MB = 512
"""Memory budget of one algorithm run, unless the caller or ``OREMAP_MEMORY_MB`` says otherwise."""

MEMORY_SETTING = "OREMAP_MEMORY_MB"
"""Name of the budget's Processing setting and environment variable."""

WHERE_BUDGET = ("(in QGIS: Processing > Options > Providers > OreMap; elsewhere: the OREMAP_MEMORY_MB environment "
                "variable, or oremap-batch --memory-mb)")
"""Where a user raises the memory budget, for messages: the core runs in QGIS, in scripts and on Dask workers."""

PARTIAL_SUFFIX = ".oremap-partial.tif"
"""Suffix of the fixed temporary name older OreMap versions wrote beside an output (now only cleaned up)."""


def memory_budget_mb(value=None):
    """The memory budget in MB: ``value`` if given, else ``$OREMAP_MEMORY_MB``, else 512 (also when the variable
    holds no positive number of MB, such as '2GB': :func:`memory_env_problem` says so)."""
    if value:
        return float(value)
    if memory_env_problem() is None and os.environ.get(MEMORY_SETTING, "").strip():
        return float(os.environ[MEMORY_SETTING])
    return float(DEFAULT_MEMORY_MB)


def memory_env_problem():
    """What is wrong with ``$OREMAP_MEMORY_MB`` (not a positive number of MB), or None: it made every run and the
    settings pages fail with a traceback."""
    text = os.environ.get(MEMORY_SETTING, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value > 0:
        return None
    return (f"The environment variable {MEMORY_SETTING}='{text}' is not a number of MB (such as 2048): the memory "
            f"budget is {DEFAULT_MEMORY_MB} MB. Set it to a number, or remove it and use the OreMap settings.")


GDAL_CACHE_SHARE = 8
"""GDAL's block cache is capped at 1/GDAL_CACHE_SHARE of the budget (at least 16 MB) during a run."""

GDAL_CACHE_MIN_MB = 16.0

BLOCK_SHARE = 0.75
"""Share of the budget given to the blocks by :func:`block_windows` for the callers that size their own blocks
(gridding, windows of element rasters); :func:`run_pixelwise` instead subtracts what it measured apart from the
blocks (:func:`pixelwise_sizing`)."""

SOURCE_TILE = 256
"""Tile side assumed for a source raster's tiles (GeoTIFF's usual 256 x 256) in :func:`pixelwise_sizing`."""

SOURCE_TILES = 2
"""Decoded source tiles (all bands of a pixel-interleaved tile) that GDAL holds outside the numpy blocks while
the engine reads, at most: measured 1 tile for a 112-band uint16 cube and up to 2 for a 224-band float32 one
(bench/bench_rss.py)."""

MIN_BLOCK_SHARE = 0.125
"""Blocks get at least this share of the budget, even where the fixed reservations leave less (then logged)."""

MB = 2 ** 20


#: The limits of the runs now inside :func:`gdal_cache_limit` (QGIS runs algorithms in threads, several at once),
#: and GDAL's limit before the first of them; guarded by :data:`_CACHE_LOCK`.
_CACHE_RUNS = []
_CACHE_BEFORE = [None]
_CACHE_LOCK = threading.Lock()


@contextlib.contextmanager
def gdal_cache_limit(memory_mb=None):
    """A context in which GDAL's (process-wide) block cache holds at most an eighth of the memory budget
    (and, once per process, :func:`steady_allocator`).

    GDAL keeps every block it reads or writes in its cache up to ``GDAL_CACHEMAX`` (by default 5 % of the
    machine's memory: gigabytes), so streaming a large raster block by block would still grow the process
    by that much. The blocks of the engine are read once, so a small cache costs no speed. The cache is one for
    the process: runs at once (QGIS's background tasks) share it, its limit the sum of theirs, and the limit from
    before the first is restored when the last ends (each run restoring what it found left a run without its
    limit, and the process with another's for the rest of the session).
    """
    from osgeo import gdal

    steady_allocator()
    limit = gdal_cache_bytes(memory_mb)
    with _CACHE_LOCK:
        if not _CACHE_RUNS:
            _CACHE_BEFORE[0] = gdal.GetCacheMax()
        _CACHE_RUNS.append(limit)
        gdal.SetCacheMax(int(sum(_CACHE_RUNS)))
    try:
        yield
    finally:
        with _CACHE_LOCK:
            _CACHE_RUNS.remove(limit)
            gdal.SetCacheMax(int(sum(_CACHE_RUNS)) if _CACHE_RUNS else int(_CACHE_BEFORE[0]))


def gdal_cache_bytes(memory_mb=None):
    """GDAL's block cache during a run, in bytes: an eighth of the budget, at least 16 MB."""
    return int(max(GDAL_CACHE_MIN_MB, memory_budget_mb(memory_mb) / GDAL_CACHE_SHARE) * MB)


_ALLOCATOR_FIXED = False


def steady_allocator():
    """Keep glibc from holding freed blocks: large allocations (> 128 KB) always go to ``mmap``.

    By default glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which
    block-sized arrays come from the heap and their freed space stays resident: streaming a raster then
    grows the process by tens of MB beyond its blocks (measured in ``bench/bench_rss.py``). Fixing the
    threshold at glibc's initial 128 KB returns each block's memory when it is freed. Process-wide, once;
    a no-op where the C library is not glibc.
    """
    global _ALLOCATOR_FIXED
    if _ALLOCATOR_FIXED:
        return
    _ALLOCATOR_FIXED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------------------
# Source
# --------------------------------------------------------------------------------------
def open_raster(path, parameter="raster", what="raster"):
    """Open a raster with rasterio, or raise :class:`OreMapError` saying what to choose instead."""
    if not path or not os.path.exists(path):
        raise OreMapError(f"The {what} '{path}' does not exist.", parameter, f"Choose an existing {what} file.")
    if os.path.isdir(path):
        raise OreMapError(f"'{path}' is a folder, not a {what} file.", parameter,
                          f"Choose a {what} file (a Sentinel-2 product folder is read by the Sentinel-2 algorithms).")
    try:
        dataset = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        told = unreadable_header_reason(path)
        if told:
            raise OreMapError(f"Cannot read the {what} '{path}': {told[0]}.", parameter, told[1]) from None
        reason = str(exc).rstrip(".")
        raise OreMapError(f"Cannot read the {what} '{path}': {reason}.", parameter,
                          f"Choose a {what} GDAL can open (GeoTIFF, ENVI, ...).") from exc
    problem = layout_problem(dataset, parameter)
    if problem is not None:
        dataset.close()
        raise problem
    return dataset


def read_window(dataset, bands, window, parameter="raster", what="raster"):
    """``dataset.read(bands, window=window)``, a read error mid-file (a truncated or damaged file: GDAL's
    ``TIFFReadEncodedStrip() failed``, ``IReadBlock failed``) raised as :class:`OreMapError` naming the file."""
    kinds = {dataset.dtypes[b - 1] for b in np.atleast_1d(bands)}
    try:
        if len(kinds) > 1 and not np.isscalar(bands):
            # bands of several types (a VRT of separate files), which rasterio refuses to read at once ("more than one
            # 'dtype' found"): band by band, into one type that holds them all
            common = np.result_type(*kinds)
            return np.stack([dataset.read(int(b), window=window).astype(common, copy=False) for b in bands])
        return dataset.read(bands, window=window)
    except rasterio.errors.RasterioIOError as exc:
        row = f" near row {int(window.row_off)}" if window is not None else ""
        raise OreMapError(f"The {what} '{dataset.name}' cannot be read{row}: the file is truncated or damaged "
                          f"(GDAL: {str(exc).strip()[:200]}).", parameter,
                          f"Copy or export the {what} again and choose the complete file.") from exc


#: GDAL's names of the band types (a VRT's ``dataType``).
VRT_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
             "int32": "Int32", "float32": "Float32", "float64": "Float64", "complex64": "CFloat32"}


def vrt_type(dtype):
    """The VRT ``dataType`` of a band type, or None where a VRT cannot carry it here: Int8 came with GDAL 3.7
    (before, a signed byte is a Byte band the VRT would read unsigned), and rasterio 1.3 reads a VRT's Int64 band
    as uint64 (-1 as 2**63 - 1). A batch runs a scene of such bands whole, not cut into row ranges (its parts
    failed with 'int64' or 'Invalid dataType = Int8')."""
    name = VRT_TYPES.get(str(dtype))
    gdal = tuple(int(v) for v in rasterio.__gdal_version__.split(".")[:2])
    return None if name is None or (name == "Int8" and gdal < (3, 7)) else name


TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""The first four bytes of a TIFF and of a BigTIFF file, in either byte order."""


def damaged_file_reason(path):
    """Why an existing file GDAL cannot open is no usable raster, when its bytes tell: it is empty, or it starts as
    a TIFF (or BigTIFF) but its directory cannot be read, as after an interrupted download or copy (GDAL 3.10 opens
    no TIFF cut in half; older GDALs open it and fail mid-read, :func:`read_window`). None otherwise."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    if not head:
        return "the file is empty (0 bytes)"
    if head not in TIFF_SIGNATURES:
        return None
    try:
        with rasterio.open(path):
            return None
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:  # not one family in rasterio 1.3
        detail = str(exc).strip()[:200]
    return f"it starts as a TIFF file but GDAL cannot read it: the file is truncated or damaged (GDAL: {detail})"


def fill_warning(fill):
    """The warning on ``fill`` pixels left out as fill (:func:`report_fill`; a batch logs a split scene's total)."""
    return (f"{fill} pixels hold one value in every band (fill outside the scene's footprint, written without a "
            "nodata value) and are left out as nodata.")


def report_fill(source, feedback):
    """Warn how many pixels :class:`RasterSource` ``source`` left out as fill (``fill_spectra``), and say how many
    spectra were kept with some bands at a nodata value of 0; returns the fill count."""
    fill = getattr(source, "fill_pixels", 0)
    if fill:
        ensure(feedback).warning(fill_warning(fill))
    zeros = getattr(source, "zero_band_pixels", 0)
    if zeros:
        ensure(feedback).warning(f"{zeros} pixels have a few bands (at most {100 * CLIPPED_SHARE:.0f} %) at the nodata "
                                 "value 0: kept, with those bands read as reflectance 0 (a spectrum clipped at zero). "
                                 "A pixel with more zero bands is nodata.")
    return fill


#: A spectrum with a nodata value of 0 in at most this share of its bands is a spectrum clipped at zero (kept); more
#: zero bands are an empty detector or the scene's edge (nodata).
CLIPPED_SHARE = 0.1

#: Magnitudes above this are no measurement (1e30 or FLT_MAX written for missing values): such a pixel is nodata.
ABSURD_VALUE = 1.0e20

#: Valid values the scale detection wants from its sample before it believes it (:func:`detect_scale`): fewer, and
#: the sample is taken again over a grid of 8 x 8 windows.
MIN_SCALE_SAMPLE = 1000


def alpha_bands(dataset):
    """1-based indexes of the bands GDAL reads as alpha (transparency: ``gdalwarp -dstalpha``, an RGBA quicklook)."""
    from rasterio.enums import ColorInterp

    return [i for i, c in enumerate(dataset.colorinterp, start=1) if c == ColorInterp.alpha]


def spectral_count(dataset):
    """How many bands carry data: all but trailing alpha bands (which are masks, not measurements)."""
    count, alpha = dataset.count, set(alpha_bands(dataset))
    while count > 1 and count in alpha:
        count -= 1
    return count


def uses_mask(dataset, bands):
    """Whether GDAL gives ``bands`` a mask of their own beyond nodata: a per-dataset mask (an internal or ``.msk``
    mask) or an alpha band."""
    from rasterio.enums import MaskFlags

    flags = dataset.mask_flag_enums
    return any(MaskFlags.per_dataset in flags[b - 1] or MaskFlags.alpha in flags[b - 1] for b in bands)


def mask_reader(dataset, bands):
    """A function ``window -> bool array`` (True: masked) from GDAL's mask of ``bands`` (an internal or ``.msk``
    mask) or from an alpha band outside them (GDAL applies alpha itself for gray + alpha and RGBA only); None when
    neither masks anything."""
    if uses_mask(dataset, bands):
        return lambda window: dataset.read_masks(bands[0], window=window) == 0
    alpha = [b for b in alpha_bands(dataset) if b not in bands]
    if alpha:
        return lambda window: dataset.read(alpha[0], window=window) == 0
    return None


def pixel_area(transform):
    """Area of one pixel in the CRS's units squared (rotated grids too)."""
    return abs(transform.a * transform.e - transform.b * transform.d)


def metres_per_unit(crs):
    """Metres per linear unit of a projected CRS (0.3048006 for US survey feet); 1 when unknown or absent.

    Geographic CRSs have no linear unit: callers that measure distances refuse them first.
    """
    if crs is None:
        return 1.0
    try:
        factor = float(crs.linear_units_factor[1])
    except Exception:  # noqa: BLE001 - geographic, engineering or unparsable: taken as metres
        return 1.0
    return factor if factor > 0 else 1.0


FILL_MIN_BANDS = 10
"""Bands from which a spectrum with one value in every band is taken for fill (:class:`RasterSource`)."""


class RasterSource:
    """A raster opened for block reading, with its masking and reflectance scaling.

    Parameters
    ----------
    path : str
        Any GDAL-readable raster (GeoTIFF, ENVI, VRT, ...).
    bands : sequence of int, optional
        1-based indexes of the bands to read (e.g. the good bands); all by default.
    nodata : float, optional
        Extra nodata value given by the user, masked in addition to the source's own.
    scale : float or "metadata", optional
        Reflectance scale factor: reflectance = raw / scale (10000 for 0-10000
        integers). ``None`` or 0 picks it automatically, see :func:`detect_scale`. ``"metadata"``: values, not
        reflectance (element grids, scores): only GDAL's band scale/offset is applied, as QGIS applies it.
    fill_spectra : bool
        Spectra: a pixel with one value in every band read (at least :data:`FILL_MIN_BANDS`) is nodata too.
        No measured spectrum is flat to the last digit over many bands; such pixels are the fill outside a
        scene's footprint written without a nodata value (AVIRIS-NG tiles: -0.005 in all 432 bands), which
        would otherwise be classified or unmixed. :attr:`fill_pixels` counts them.
    partial : bool
        Bands that may be missing one by one (element grids: IDW leaves each element nodata beyond its own
        distance): :meth:`read` gives NaN where *that band* is missing, and a pixel is valid where any band is.
    """

    def __init__(self, path, bands=None, nodata=None, scale=None, feedback=None, fill_spectra=False, partial=False):
        feedback = ensure(feedback)
        self.fill_spectra = fill_spectra
        self.partial = bool(partial)
        self.fill_pixels = 0
        self.dataset = ds = open_raster(path)
        self.path = path
        if ds.gcps[0] and ds.transform.is_identity:   # as the Processing algorithms refuse it (base.raster_path)
            ds.close()
            raise OreMapError(f"'{path}' is placed on the map by ground control points (GCPs) only; OreMap works on "
                              "rasters with a map grid, and its outputs would lose the placing.", "raster",
                              "Warp it onto a map grid first (gdalwarp, or Raster > Projections > Warp (Reproject) in "
                              "QGIS), and give the warped raster.")
        self.bands = list(range(1, spectral_count(ds) + 1)) if bands is None else [int(b) for b in bands]
        if not self.bands:
            raise OreMapError("No bands left to read.", "raster", "Check the bad-band list.")
        if min(self.bands) < 1 or max(self.bands) > ds.count:
            raise OreMapError(f"Band indexes must lie within 1-{ds.count}.", "raster")
        complex_bands = [b for b in self.bands if np.dtype(ds.dtypes[b - 1]).kind == "c"]
        if complex_bands:   # numpy would drop the imaginary part without a word
            ds.close()
            raise OreMapError(f"'{path}' holds complex values ({ds.dtypes[complex_bands[0] - 1]}, band "
                              f"{complex_bands[0]}); OreMap reads real-valued rasters.", "raster",
                              "Export the amplitude or the real part first (gdal_translate, or the Raster "
                              "Calculator in QGIS), and give that raster.")
        # each band read has its own nodata (a VRT of separate files, HDF, ENVI can differ), and a user's for all
        user = {float(nodata)} if nodata is not None else set()
        ignore = envi_nodata(ds)   # an ENVI 'data ignore value' GDAL dropped (after a header line over 10,000 chars)
        self.band_nodata = [sorted(({ds.nodatavals[b - 1] if ds.nodatavals[b - 1] is not None else ignore} - {None})
                                   | user) for b in self.bands]
        self.masked = mask_reader(ds, self.bands)   # GDAL's mask or an alpha band: masked pixels are nodata
        self.zero_band_pixels = 0   # spectra kept although some of their bands hold a nodata value of 0
        self.gain, self.bias, how = detect_scale(ds, scale, self.bands)
        if how:
            (feedback.warning if scale_note_kind(how) == "warning" else feedback.info)(how)

    # geometry ----------------------------------------------------------------------
    @property
    def width(self):
        return self.dataset.width

    @property
    def height(self):
        return self.dataset.height

    @property
    def n_bands(self):
        return len(self.bands)

    @property
    def crs(self):
        return self.dataset.crs

    @property
    def transform(self):
        return self.dataset.transform

    def close(self):
        self.dataset.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # reading -----------------------------------------------------------------------
    def read(self, window):
        """Read one window.

        Returns
        -------
        data : ndarray of float32, shape (rows, cols, n_bands)
            Reflectance (scaled); undefined where ``valid`` is False.
        valid : ndarray of bool, shape (rows, cols)
            False where GDAL's mask (internal, ``.msk`` or alpha band) says so, and where any band is nodata, NaN,
            infinite or of absurd magnitude (:data:`ABSURD_VALUE`); for spectra (``fill_spectra``) a nodata value
            of 0 must hold in more than :data:`CLIPPED_SHARE` of the bands, since a spectrum clipped at zero has a
            few real zeros (``partial``: where every band is missing; the others are NaN in ``data``).
        """
        if self.partial:
            data = self.read_nan(window, np.float32)
            return data, ~np.isnan(data).all(axis=-1)
        raw = read_window(self.dataset, self.bands, window)  # (bands, rows, cols), native dtype
        invalid = self._mask(window, raw.shape[1:])
        spectra = self.fill_spectra and raw.shape[0] >= FILL_MIN_BANDS
        for value, which in self._native_nodata(raw.dtype):
            hit = raw == value if which is None else raw[which] == value
            if spectra and value == 0:
                # 0 is also a real value of a spectrum clipped at zero (a few dark bands of a uint16 product): such a
                # spectrum is kept and counted; more zero bands (a detector empty at a swath's edge) are nodata
                zeros = np.count_nonzero(hit, axis=0)
                empty = zeros > max(1, int(CLIPPED_SHARE * raw.shape[0]))
                self.zero_band_pixels += int(np.count_nonzero((zeros > 0) & ~empty & ~invalid))
                invalid |= empty
            else:
                invalid |= np.any(hit, axis=0)
            del hit
        floating = raw.dtype.kind == "f"
        data = np.moveaxis(raw, 0, -1).astype(np.float32, copy=False)  # a view of float32 rasters, else a copy
        del raw
        if floating or spectra:   # per-pixel extremes: no block-sized temporaries
            high, low = data.max(axis=-1), data.min(axis=-1)
        if floating:   # NaN, infinite or absurd (1e30 written for missing)
            with np.errstate(invalid="ignore"):
                invalid |= ~((high < ABSURD_VALUE) & (low > -ABSURD_VALUE))
        if spectra:
            fill = (high == low) & ~invalid
            self.fill_pixels += int(fill.sum())
            invalid |= fill
        if self._scaled():  # in place: no block-sized temporaries (pixelwise_sizing)
            data *= np.asarray(self.gain, np.float32)  # a scalar, or one gain per band read (the last axis)
            data += np.asarray(self.bias, np.float32)
        return data, ~invalid

    def _mask(self, window, shape):
        """``invalid`` of a window from GDAL's mask or the alpha band (False everywhere without one)."""
        return np.zeros(shape, dtype=bool) if self.masked is None else self.masked(window)

    def _scaled(self):
        return bool(np.any(np.asarray(self.gain) != 1.0) or np.any(np.asarray(self.bias) != 0.0))

    def read_nan(self, window, dtype=np.float64):
        """One window as ``(rows, cols, n_bands)`` values (scaled) with NaN where *that band* is nodata or not
        finite: each band on its own, for data whose bands may be missing separately (element grids)."""
        raw = read_window(self.dataset, self.bands, window)
        data = raw.astype(dtype)
        if self._scaled():
            data = data * np.asarray(self.gain, dtype).reshape(-1, 1, 1) + np.asarray(self.bias, dtype).reshape(-1, 1, 1)
        for value, which in self._native_nodata(raw.dtype):
            if which is None:
                data[raw == value] = np.nan
            else:
                for i in which:
                    data[i][raw[i] == value] = np.nan
        data[~np.isfinite(data) | (np.abs(data) > ABSURD_VALUE)] = np.nan
        if self.masked is not None:
            data[:, self.masked(window)] = np.nan
        return np.moveaxis(data, 0, -1)

    def _native_nodata(self, dtype):
        """``[(value, which)]``: each nodata value as a number of the raster's type, with the positions of the bands
        read that have it (None: every band). Compared in the native type, so a huge nodata value never overflows a
        cast (values an integer type cannot hold are left out)."""
        bands = {}
        for position, values in enumerate(self.band_nodata):
            for value in values:
                bands.setdefault(value, []).append(position)
        found = []
        for value, positions in bands.items():
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                if not (info.min <= value <= info.max) or value != int(value):
                    continue
            which = None if len(positions) == len(self.band_nodata) else np.asarray(positions)
            found.append((np.asarray(value).astype(dtype), which))
        return found


def band_descriptions(path, parameter="raster"):
    """Band names of a raster: each band's description, or ``"Band i"`` (1-based) where it has none."""
    with open_raster(path, parameter) as ds:
        return [d.strip() if d and d.strip() else f"Band {i}" for i, d in enumerate(ds.descriptions, start=1)]


#: what :func:`detect_scale` says of a divisor the user set, and of GDAL's band scale/offset (one for all bands,
#: or one per band)
SCALE_NOTE_USER = "Reflectance = value / {scale:g} (user setting)."
SCALE_NOTE_METADATA = "Reflectance = value x {gain:g} + {bias:g} (raster scale/offset metadata)."
SCALE_NOTE_PER_BAND = ("Reflectance = value x gain + offset of each band (raster scale/offset metadata: gains "
                       "{gain_min:g}-{gain_max:g}, offsets {bias_min:g}-{bias_max:g}).")
#: how :func:`detect_scale`'s note starts when the values do not look like reflectance (logged as a warning)
SCALE_DOUBT = "The values are not reflectance of 0-1"


def scale_note_kind(note):
    """``"warning"`` for :func:`detect_scale`'s note that the values do not look like reflectance, else ``"info"``."""
    return "warning" if str(note).startswith(SCALE_DOUBT) else "info"


def _metadata_scale(dataset, bands):
    """``(gain, bias, note)`` from GDAL's band scale/offset metadata of ``bands`` (one gain and bias per band where
    they differ); ``(1.0, 0.0, "")`` where there is none."""
    gains = [dataset.scales[b - 1] for b in bands]
    biases = [dataset.offsets[b - 1] for b in bands]
    if not (any(g not in (None, 1.0) for g in gains) or any(o not in (None, 0.0) for o in biases)):
        return 1.0, 0.0, ""
    if len(set(gains)) > 1 or len(set(biases)) > 1:
        gain = np.array([1.0 if g is None else float(g) for g in gains])
        bias = np.array([0.0 if o is None else float(o) for o in biases])
        return gain, bias, SCALE_NOTE_PER_BAND.format(gain_min=gain.min(), gain_max=gain.max(),
                                                      bias_min=bias.min(), bias_max=bias.max())
    gain, bias = float(gains[0] or 1.0), float(biases[0] or 0.0)
    return gain, bias, SCALE_NOTE_METADATA.format(gain=gain, bias=bias)


def detect_scale(dataset, scale, bands):
    """Find how raw values turn into reflectance: ``reflectance = raw * gain + bias``.

    ``scale="metadata"``: the values are not reflectance (element grids, scores); only GDAL's band scale/offset is
    applied, as QGIS applies it, and ``(1.0, 0.0, "")`` where there is none.

    Order: a user ``scale`` (divisor) > GDAL's band scale/offset > the ENVI header's
    ``reflectance scale factor`` > a sample of the data (up to 32 bands spread over the
    whole file, whichever ``bands`` are read, so every reader of a file decides alike: a
    short-wave subset of a scene of dark water is below 100 where its visible bands are not):
    integers above 100 are taken as reflectance x 10000 (and logged); other values above 1.5
    (per cent, floats x 10000, radiance) are kept and said in a note starting with
    :data:`SCALE_DOUBT` (a warning, :func:`scale_note_kind`). Returns ``(gain, bias, message)``;
    message is empty when nothing needed saying. Bands whose scale/offset metadata differ (an ENVI header's
    ``data gain values`` / ``data offset values``, per-band GeoTIFF scales) give arrays of one gain and bias
    per band of ``bands``.
    """
    if isinstance(scale, str) and scale == "metadata":   # values, not reflectance: GDAL's scale/offset only
        gain, bias, note = _metadata_scale(dataset, bands)
        return gain, bias, note.replace("Reflectance = value", "Value = stored value", 1)
    if scale:
        if scale < 0:
            raise OreMapError("The reflectance scale factor must be positive.", "scale",
                              "Use e.g. 10000 for reflectance stored as 0-10000, or 0 for automatic.")
        return 1.0 / float(scale), 0.0, SCALE_NOTE_USER.format(scale=scale)
    found = _metadata_scale(dataset, bands)
    if found[2]:
        return found
    envi = dataset.tags(ns="ENVI")
    factor = (envi.get("reflectance_scale_factor") or envi.get("reflectance scale factor")
              or dropped_field(dataset, "reflectance scale factor"))   # GDAL drops fields after a long header line
    if factor:
        try:
            factor = float(factor)
        except ValueError:
            factor = None
        if factor and factor != 1.0:
            return 1.0 / factor, 0.0, f"Reflectance = value / {factor:g} (ENVI reflectance scale factor)."
    count = spectral_count(dataset)   # an alpha band is no reflectance
    spread = sorted({int(b) for b in np.linspace(1, count, min(count, 32)).round()})
    values = _sample_values(dataset, spread)
    values = values[np.isfinite(values)]
    if values.size < MIN_SCALE_SAMPLE:
        # the centre and quarter points fell on nodata (a tile at a scene's edge, data in one corner): gain 1 was
        # taken without a word and reflectance x 10000 read as is; 8 x 8 windows spread over the raster instead
        values = _sample_values(dataset, spread, grid=8)
        values = values[np.isfinite(values)]
    high = float(np.percentile(values, 99)) if values.size else 0.0
    kind = np.dtype(dataset.dtypes[bands[0] - 1])
    # what the scale changes: a model's preprocessing decides (a CNN trained on reflectance 0-1 with preprocessing
    # 'none' classed 489 of 1,600 Jasper Ridge pixels otherwise on reflectance x 10000)
    matters = ("SAM, SID and models whose preprocessing is brightness normalisation or continuum removal do not depend "
               "on the scale; unmixing, and spectral CNNs and abundance models with preprocessing 'none' (the "
               "abundance models' default), do.")
    if kind == np.uint8:
        return 1e-4, 0.0, (f"{SCALE_DOUBT}: an 8-bit raster (0-255) holds display values (a quicklook or a "
                           "stretched export), not reflectance; taken as value / 10000. Use the reflectance product. "
                           + matters)
    if np.issubdtype(kind, np.integer) and high > 100:
        return 1e-4, 0.0, ("Integer raster without scale metadata: reflectance taken as value / 10000. "
                           "Set the reflectance scale factor if that is wrong.")
    if high > 1.5:
        return 1.0, 0.0, (f"{SCALE_DOUBT}: 99 % of a sample lie below {high:.4g}, and no scale is in the metadata. "
                          "Per cent: give the reflectance scale factor 100; reflectance x 10000 stored as floats: "
                          "10000; radiance: convert it to reflectance first. " + matters)
    return 1.0, 0.0, ""


def envi_nodata(dataset):
    """The ENVI header's ``data ignore value`` when GDAL dropped it (:func:`core.engine.envi_header.dropped_field`),
    else None."""
    value = dropped_field(dataset, "data ignore value")
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _sample_values(dataset, bands, size=16, grid=None):
    """Valid values of a few small full-resolution windows (centre and quarter points, or a ``grid`` of them).

    Small windows, not a decimated read: a decimated read of a tiled, pixel-interleaved
    raster decompresses every tile of the scene.
    """
    nodata = [v for v in dataset.nodatavals if v is not None] + [v for v in [envi_nodata(dataset)] if v is not None]
    values = sample_windows(dataset, bands, size, grid)
    masked = mask_reader(dataset, bands)
    if masked is not None:   # cloud, outside the footprint: no sample of reflectance
        values = values[:, ~np.concatenate([masked(w).ravel() for w in sample_grid(dataset, size, grid)])]
    values = values.ravel()
    return values[~np.isin(values, nodata)] if nodata else values


def empty_bands(source, grid=8):
    """Band numbers (of the file) of ``source``'s bands without a value in every sampled pixel where another band
    has one (:func:`sample_grid`'s ``grid``): bands that leave no pixel valid, e.g. water-vapour bands filled with
    NaN. Empty when no sampled pixel has data."""
    values = np.concatenate([source.read_nan(w, np.float32).reshape(-1, len(source.bands))
                             for w in sample_grid(source.dataset, grid=grid)])
    some = np.isfinite(values).any(axis=1)
    if not some.any():
        return []
    return [source.bands[i] for i in np.flatnonzero(~np.isfinite(values[some]).any(axis=0))]


def sample_grid(dataset, size=16, grid=None):
    """Small full-resolution windows of ``size`` pixels: the five of :func:`sample_windows` (the centre and the
    quarter points), or ``grid`` x ``grid`` spread from a tenth to nine tenths of the raster."""
    h, w = min(size, dataset.height), min(size, dataset.width)
    points = [(0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)] if grid is None else \
        [(fy, fx) for fy in np.linspace(0.1, 0.9, grid) for fx in np.linspace(0.1, 0.9, grid)]
    return [Window(min(int(fx * dataset.width), dataset.width - w), min(int(fy * dataset.height), dataset.height - h),
                   w, h) for fy, fx in points]


def sample_windows(dataset, bands, size=16, grid=None):
    """``(len(bands), pixels)``: the pixels of five small full-resolution windows (the centre and the quarter
    points; ``grid``: see :func:`sample_grid`), as read (nodata included)."""
    return np.concatenate([read_window(dataset, bands, window).reshape(len(bands), -1)
                           for window in sample_grid(dataset, size, grid)], axis=1)


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------
@dataclass
class OutputSpec:
    """One output raster of :func:`run_pixelwise`.

    ``band_names`` gives the number of bands and their descriptions. ``colormap``
    (``{value: (r, g, b)}`` or ``(r, g, b, a)``) is written as a GDAL colour table of
    a single-band integer raster; ``band_tags`` and ``tags`` become GeoTIFF metadata.
    """

    path: str
    band_names: list
    dtype: str = "float32"
    nodata: float = -9999.0
    colormap: dict = None
    band_tags: list = None
    tags: dict = field(default_factory=dict)

    @property
    def count(self):
        return len(self.band_names)


#: Bytes OreMap's temporary names add to an output's file name (``NAME.oremap-partial-HOST-PID-TOKEN.tif``,
#: ``.NAME.oremap-writing-...``), on file systems whose names hold at most 255 bytes.
TEMPORARY_NAME_BYTES = 56
NAME_MAX_BYTES = 255


#: Windows' path limit (MAX_PATH: QGIS is no long-path-aware program), held to where its rules hold (files.WINDOWS).
MAX_PATH = 260


def output_name_problem(path):
    """``(message, fix)`` when ``path`` cannot be an output file whatever the folder (an existing folder, a name
    too long to carry OreMap's temporary suffixes, on Windows a path that would pass 260 characters with them),
    else None."""
    if os.path.isdir(path):
        return f"'{path}' is a folder.", "Give a file name inside it (e.g. " + os.path.join(path, "output.tif") + ")."
    length = len(os.path.abspath(path))
    if files.WINDOWS and length + TEMPORARY_NAME_BYTES >= MAX_PATH:
        return (f"The path is {length} characters long; with the temporary suffixes OreMap writes while it works it "
                f"would pass Windows' limit of {MAX_PATH - 1}, and the run would fail at its end.",
                f"Save it in a folder with a shorter path, or give a shorter name (at most "
                f"{MAX_PATH - 1 - TEMPORARY_NAME_BYTES} characters in all).")
    size = len(os.path.basename(path).encode("utf-8"))
    if size + TEMPORARY_NAME_BYTES > NAME_MAX_BYTES:
        return (f"The file name is {size} bytes long; with the temporary suffixes OreMap writes while it works it "
                f"would pass the file system's {NAME_MAX_BYTES}.",
                f"Use a file name of at most {NAME_MAX_BYTES - TEMPORARY_NAME_BYTES} bytes (accented letters take 2).")
    return None


def check_output_path(path, overwrite=True, parameter="output"):
    """Raise :class:`OreMapError` unless ``path`` can be written.

    Returns True when an existing file will be replaced (the caller says so in the log).
    """
    if not path:
        raise OreMapError("No output file given.", parameter, "Choose where to save the output.")
    problem = output_name_problem(path)
    if problem:
        raise OreMapError(problem[0], parameter, problem[1])
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise OreMapError(f"Folder '{folder}' does not exist.", parameter, "Choose an existing folder.")
    if not os.access(folder, os.W_OK):
        raise OreMapError(f"Folder '{folder}' is not writable.", parameter,
                          "Choose a folder you can write to.")
    exists = os.path.exists(path)
    if exists and not overwrite:
        raise OreMapError(f"'{path}' already exists.", parameter, "Choose a new file name or allow overwriting.")
    if exists and not os.access(path, os.W_OK):
        raise OreMapError(f"'{path}' exists and cannot be replaced.", parameter, "Choose another file name.")
    return exists


def _creation_options(spec, width, height):
    dtype = np.dtype(spec.dtype)
    predictor = 3 if np.issubdtype(dtype, np.floating) else 2
    if dtype.itemsize == 1:
        predictor = 1
    return dict(
        driver="GTiff", width=width, height=height, count=spec.count, dtype=spec.dtype,
        nodata=spec.nodata, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
        predictor=predictor, bigtiff="if_safer", num_threads="all_cpus",
        interleave="pixel" if spec.count <= 8 else "band",
    )


def _open_output(spec, source, tmp_path):
    profile = _creation_options(spec, source.width, source.height)
    dst = rasterio.open(tmp_path, "w", crs=source.crs, transform=source.transform, **profile)
    for i, name in enumerate(spec.band_names, start=1):
        dst.set_band_description(i, str(name))
        if spec.band_tags:
            dst.update_tags(i, **{k: str(v) for k, v in spec.band_tags[i - 1].items()})
    if spec.tags:
        dst.update_tags(**{k: str(v) for k, v in spec.tags.items()})
    if spec.colormap and spec.count == 1 and not _wide_colormap(spec):
        dst.write_colormap(1, {int(k): tuple(v) for k, v in spec.colormap.items()})
    return dst


def _wide_colormap(spec):
    """True for a colour table with codes above 255 (a uint16 class raster), which rasterio cuts to 256 entries."""
    return bool(spec.colormap) and spec.count == 1 and max(int(k) for k in spec.colormap) > 255


def _close_output(dst, spec):
    """Close an output of :func:`_open_output`; a colour table with codes above 255 is then written through GDAL
    itself (rasterio keeps 256 entries: classes 256 and up of a 300-class SAM map came out black). Without GDAL's
    Python bindings the table is left out; QGIS colours the classes from the style file (.qml) all the same."""
    path = dst.name
    dst.close()
    if not _wide_colormap(spec):
        return
    try:
        from osgeo import gdal
    except ImportError:
        return
    table = gdal.ColorTable()
    for code, colour in spec.colormap.items():
        table.SetColorEntry(int(code), tuple(int(c) for c in colour) + ((255,) if len(colour) == 3 else ()))
    ds = gdal.Open(path, gdal.GA_Update)
    if ds is None:
        raise OreMapError(f"Cannot write the colour table of '{path}'.", "output")
    ds.GetRasterBand(1).SetRasterColorTable(table)
    ds = None


def partial_path(path, extension=".tif"):
    """A new, unique temporary name beside output ``path``: ``NAME.oremap-partial-HOST-PID-TOKEN.tif``.

    Beside the output, so the final ``os.replace`` is an atomic rename on the same file system; unique
    per run, so two runs writing the same output never share a temporary file (the last to finish wins,
    with a whole file). The host tag and process id let :func:`remove_stale_partials` tell a file of a
    killed run from one still being written.
    """
    import secrets

    return f"{path}.oremap-partial-{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{extension}"


_PARTIAL = re.compile(r"\.oremap-partial(?:-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]+)?\.[A-Za-z0-9]+$")


def remove_stale_partials(path):
    """Remove temporary files that killed runs left beside output ``path``; return the names removed.

    Stale are: the fixed name of older versions (``NAME.oremap-partial.tif``), a partial file of this
    machine whose process is gone, and one of another machine untouched for :data:`STALE_AFTER_S`.
    A partial file of a run still going is left alone.
    """
    if not path:
        return []
    folder = os.path.dirname(os.path.abspath(path)) or "."
    removed = []
    for name in names_beside(folder, os.path.basename(path) + ".oremap-partial"):
        match = _PARTIAL.search(name)
        if match is None:
            continue
        full = os.path.join(folder, name)
        if match.group("pid") is not None and not run_file_is_stale(full, match.group("host"), match.group("pid"),
                                                                     by_start=True):
            continue
        try:
            os.remove(full)
        except OSError:
            continue
        _remove_quietly(full + ".aux.xml")
        removed.append(full)
    return removed


def clean_partials(path, feedback=None):
    """:func:`remove_stale_partials`, each removal logged through ``feedback``."""
    for name in remove_stale_partials(path):
        ensure(feedback).info(f"Removed a partial file left by an interrupted run: {name}")


def _remove_quietly(path):
    for p in (path, path + ".aux.xml"):
        try:
            os.remove(p)
        except OSError:
            pass


# --------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------
def block_windows(width, height, bytes_per_pixel, memory_mb, tile=256, share=BLOCK_SHARE):
    """Split a width x height raster into windows that each need at most ``share`` of ``memory_mb``.

    Windows follow the 256 x 256 tiles of the outputs (and of most tiled inputs), so
    every tile is read once and written whole: full-width strips of whole tile rows
    when they fit the budget, else each tile row cut into column chunks of whole
    tiles, and only for budgets below one tile, smaller windows inside a tile row.
    """
    budget = max(float(memory_mb) * share, 1e-6) * 1024 * 1024
    max_pixels = max(1, int(budget // max(bytes_per_pixel, 1)))
    if max_pixels >= width * tile or height <= tile and max_pixels >= width * height:
        rows = max(tile, (max_pixels // width) // tile * tile)
        return [Window(0, r, width, min(rows, height - r)) for r in range(0, height, rows)]
    if max_pixels >= tile * tile:
        rows, cols = tile, (max_pixels // tile) // tile * tile
    else:
        cols = min(width, tile, max_pixels)
        rows = max(1, min(tile, max_pixels // cols))
    return [Window(c, r, min(cols, width - c), min(rows, height - r, band + tile - r))
            for band in range(0, height, tile)
            for r in range(band, min(band + tile, height), rows)
            for c in range(0, width, cols)]


def pixelwise_input_bytes(n_bands, dtype):
    """Bytes per pixel of the read stage of :func:`run_pixelwise` for ``n_bands`` of type ``dtype`` (measured with
    tracemalloc and the resident memory, ``bench/bench_rss.py``): the raw block rasterio returns, GDAL's own copy
    of it while it de-interleaves a pixel-interleaved file (not seen by tracemalloc), the float32 block (a view
    of a float32 raster: no copy; scaled in place), a boolean temporary of the nodata and finiteness tests and
    the valid mask."""
    itemsize = np.dtype(dtype).itemsize
    convert = 0 if np.dtype(dtype) == np.float32 else 4
    return int(n_bands) * (2 * itemsize + convert + 1) + 1


def pixelwise_output_bytes(count, dtype):
    """Bytes per pixel of writing an output of ``count`` bands of type ``dtype``: the func's result (counted as
    float64), the block in the output's type and its cast."""
    return int(count) * (2 * np.dtype(dtype).itemsize + 8)


@dataclass
class BlockSizing:
    """How :func:`run_pixelwise` cuts a raster: bytes per pixel of its largest stage and what the run holds
    whatever the block size (``reserved``: GDAL's block cache, decoded source tiles, the caller's fixed buffers such
    as onnxruntime's per-batch workspace). The blocks get the budget less ``reserved`` (at least
    :data:`MIN_BLOCK_SHARE` of it)."""

    per_pixel: int
    reserved: int
    memory_mb: float

    @property
    def block_mb(self):
        return max(self.memory_mb * MB - self.reserved, self.memory_mb * MB * MIN_BLOCK_SHARE) / MB

    @property
    def over_budget(self):
        """True when the fixed reservations alone leave the blocks less than :data:`MIN_BLOCK_SHARE`."""
        return self.memory_mb * MB - self.reserved < self.memory_mb * MB * MIN_BLOCK_SHARE

    def windows(self, width, height):
        return block_windows(width, height, self.per_pixel, self.block_mb, share=1.0)


def pixelwise_sizing(n_bands, dtype, outputs, work_bytes_per_pixel=0, fixed_bytes=0, memory_mb=None,
                     file_bands=None):
    """The :class:`BlockSizing` of :func:`run_pixelwise` reading ``n_bands`` (of ``file_bands`` in the file) of type
    ``dtype`` into ``outputs`` (``(count, dtype)`` pairs), with a ``func`` whose own peak is
    ``work_bytes_per_pixel`` per valid pixel (its temporaries and results) plus ``fixed_bytes`` whatever the
    block size.

    The stages do not overlap, so a pixel costs the largest of: reading (:func:`pixelwise_input_bytes`); taking
    the valid pixels out of the float32 block (both float32); ``func`` (its float32 pixels and its work); writing
    (:func:`pixelwise_output_bytes` of every output). Reserved whatever the block size: GDAL's block cache
    (:func:`gdal_cache_bytes`), :data:`SOURCE_TILES` decoded source tiles (256 x 256 pixels of every band of a
    pixel-interleaved file: GDAL decodes whole tiles) and ``fixed_bytes``. The batch runner (core/scaleout) sizes
    its row ranges with the same function, so both cut the same blocks.
    """
    memory_mb = memory_budget_mb(memory_mb)
    n_bands = int(n_bands)
    itemsize = np.dtype(dtype).itemsize
    stages = [pixelwise_input_bytes(n_bands, dtype),
              8 * n_bands + 1,
              4 * n_bands + int(work_bytes_per_pixel) + 1,
              sum(pixelwise_output_bytes(c, t) for c, t in outputs) + 1]
    tiles = SOURCE_TILES * SOURCE_TILE * SOURCE_TILE * int(file_bands or n_bands) * itemsize
    reserved = gdal_cache_bytes(memory_mb) + tiles + int(fixed_bytes)
    return BlockSizing(per_pixel=max(stages), reserved=reserved, memory_mb=memory_mb)


def _held_for(source, sizing, fixed_bytes):
    """What the reservation of ``sizing`` can really hold on ``source``: GDAL's cache and the decoded tiles hold no
    more than the raster itself (a 10 x 10 x 432 cube is 0.2 MB, not the 226 MB of two 256 x 256 tiles); the sizing
    itself keeps the full reservation, so that every part of a scene split by the batch cuts the same blocks."""
    ds = source.dataset
    raster = ds.width * ds.height * ds.count * np.dtype(ds.dtypes[0]).itemsize
    tiles = SOURCE_TILES * SOURCE_TILE * SOURCE_TILE * ds.count * np.dtype(ds.dtypes[0]).itemsize
    cache = sizing.reserved - tiles - int(fixed_bytes)
    return min(cache, raster) + min(tiles, SOURCE_TILES * raster) + int(fixed_bytes)


def run_pixelwise(source, outputs, func, memory_mb=None, work_bytes_per_pixel=0, feedback=None, fixed_bytes=0):
    """Apply ``func`` to every valid pixel of ``source``, block by block.

    Parameters
    ----------
    source : RasterSource
    outputs : list of OutputSpec
    func : callable
        ``func(pixels)`` gets a float32 array ``(n_valid, n_bands)`` and returns one
        array per output, each ``(n_valid, output.count)`` (or ``(n_valid,)`` for a
        single band). Invalid pixels get each output's nodata value.
    memory_mb : float, optional
        Memory budget; see :func:`memory_budget_mb`.
    work_bytes_per_pixel : int
        The peak of what ``func`` allocates per valid pixel (its temporaries and its results, measured), so
        blocks are sized honestly (:func:`pixelwise_sizing`).
    fixed_bytes : int
        What ``func`` holds whatever the block size (e.g. onnxruntime's workspace for one batch).
    feedback : Feedback, optional
        Progress per block; cancellation removes every partial output.

    Returns
    -------
    dict
        ``{"valid_pixels": int, "blocks": int, "fill_pixels": int}`` (pixels left out as fill).
    """
    feedback = ensure(feedback)
    sizing = pixelwise_sizing(source.n_bands, source.dataset.dtypes[0], [(o.count, o.dtype) for o in outputs],
                              work_bytes_per_pixel, fixed_bytes, memory_mb, file_bands=source.dataset.count)
    held = _held_for(source, sizing, fixed_bytes) if sizing.over_budget else 0
    if held > (1 - MIN_BLOCK_SHARE) * sizing.memory_mb * MB:
        feedback.warning(f"The memory budget ({sizing.memory_mb:.0f} MB) leaves less than an eighth of itself for "
                         f"the blocks: up to {held / MB:.0f} MB of it are held whatever the block size (GDAL's "
                         "cache, decoded tiles of the raster, model buffers). Blocks get an eighth of the budget, so "
                         f"the run may exceed it; a larger budget {WHERE_BUDGET} avoids this.")
    windows = sizing.windows(source.width, source.height)

    for o in outputs:
        clean_partials(o.path, feedback)
    tmp_paths = [partial_path(o.path) for o in outputs]
    datasets = []
    n_valid = 0
    try:
        for spec, tmp in zip(outputs, tmp_paths):
            datasets.append(_open_output(spec, source, tmp))
        for i, window in enumerate(windows):
            feedback.check()
            data, valid = source.read(window)
            n_block = int(valid.sum())
            pixels = (data.reshape(-1, data.shape[-1]) if n_block == valid.size else data[valid]) if n_block else None
            del data  # only the valid pixels stay while func runs
            results = func(pixels) if n_block else None
            del pixels
            if results is not None and not isinstance(results, (list, tuple)):
                results = (results,)
            for j, (spec, dst) in enumerate(zip(outputs, datasets)):
                block = np.full((spec.count,) + valid.shape, spec.nodata, dtype=spec.dtype)
                if results is not None:
                    values = np.asarray(results[j]).reshape(n_block, spec.count)
                    block[:, valid] = values.T.astype(spec.dtype, copy=False)
                dst.write(block, window=window)
                del block
            del results
            n_valid += n_block
            feedback.progress(100.0 * (i + 1) / len(windows))
        feedback.check()  # a cancel at the last block's report: nothing is moved into place
        for spec, dst in zip(outputs, datasets):
            _close_output(dst, spec)
        fill = report_fill(source, feedback)
        if n_valid == 0:
            empty = empty_bands(source)
            if empty:   # the pixels have data, but some bands never do: each of them makes every pixel nodata
                shown = ", ".join(str(b) for b in empty[:12]) + (", ..." if len(empty) > 12 else "")
                error = OreMapError(f"Every pixel has a band without data: {len(empty)} of the {len(source.bands)} "
                                    f"bands read hold no value where the others do (band {shown}).", "raster",
                                    "Leave those bands out: bad-band detection (BAD_BANDS empty, the default) finds "
                                    "bands empty in every pixel, or list them in BAD_BANDS.")
            else:
                error = OreMapError("Every pixel of the raster is nodata (or NaN)"
                                    + (", or holds one value in every band (fill)." if fill else "."), "raster",
                                    "Check the raster and the nodata value.")
            error.fill_pixels = int(fill)   # a batch's row range of fill alone still counts in its scene's total
            raise error
        for spec, tmp in zip(outputs, tmp_paths):
            _remove_quietly(spec.path + ".aux.xml")  # stale statistics of a replaced file
            replace(tmp, spec.path)
    except BaseException:
        for dst in datasets:
            dst.close()
        for tmp in tmp_paths:
            _remove_quietly(tmp)
        raise
    return {"valid_pixels": n_valid, "blocks": len(windows), "fill_pixels": int(fill)}


def write_blocks(spec, width, height, transform, crs, blocks, feedback=None):
    """Write a raster from computed blocks, without an input raster (gridding, rasterising).

    ``blocks`` yields ``(window, array (spec.count, rows, cols))``; the raster gets the
    creation options, band names and nodata of :func:`run_pixelwise`'s outputs and is
    moved into place only when every block is written: an error or a cancellation
    raised while producing the blocks removes the partial file.
    """
    clean_partials(spec.path, feedback)
    tmp = partial_path(spec.path)
    grid = type("Grid", (), dict(width=int(width), height=int(height), crs=crs, transform=transform))
    dst = None
    try:
        dst = _open_output(spec, grid, tmp)
        for window, block in blocks:
            dst.write(np.asarray(block).astype(spec.dtype, copy=False), window=window)
        _close_output(dst, spec)
        _remove_quietly(spec.path + ".aux.xml")
        replace(tmp, spec.path)
    except BaseException:
        if dst is not None:
            dst.close()
        _remove_quietly(tmp)
        raise


def class_raster_dtype(n_classes):
    """Smallest unsigned type holding class codes 0..n and a nodata code above them."""
    return "uint8" if n_classes < 255 else "uint16"


def class_nodata(n_classes):
    """Nodata code of a class raster: the largest value of its type."""
    return 255 if n_classes < 255 else 65535

