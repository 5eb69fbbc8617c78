"""ENVI header files (``.hdr``): the one parser of libraries' and images' headers."""

import functools
import os
from pathlib import Path

from .errors import OreMapError
from .files import decode_text

#: Fields whose braces hold free text, not a comma-separated list.
_TEXT_FIELDS = ("description", "coordinate system string")


def parse_envi_header(path):
    """Parse an ENVI header file.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.hdr`` file.

    Returns
    -------
    dict
        Keys lower-cased with single spaces (``"wavelength units"``). Values
        in braces are lists of stripped strings split on commas, possibly
        over several lines, except ``description`` and ``coordinate system
        string``, kept as text without the braces. Other values are stripped
        strings.

    Raises
    ------
    OreMapError
        ``parameter="library"`` when the file does not start with ``ENVI``
        or a brace is not closed.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OreMapError(f"Cannot read ENVI header '{path}': {exc}", parameter="library") from None
    lines = decode_text(raw).splitlines()
    if not lines or not lines[0].strip().upper().startswith("ENVI"):
        raise OreMapError(
            f"'{path.name}' is not an ENVI header (the first line must be 'ENVI').",
            parameter="library",
        )
    header = {}
    i = 1
    while i < len(lines):
        line = lines[i]
        i += 1
        if "=" not in line or line.lstrip().startswith(";"):
            continue
        key, value = line.split("=", 1)
        key = " ".join(key.split()).lower()
        value = value.strip()
        if value.startswith("{"):
            parts = [value]
            depth = value.count("{") - value.count("}")
            while depth > 0:
                if i >= len(lines):
                    raise OreMapError(
                        f"ENVI header '{path.name}': the value of '{key}' has no closing brace.",
                        parameter="library",
                    )
                parts.append(lines[i])
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
            whole = "\n".join(parts)
            inner = whole[whole.index("{") + 1 : whole.rindex("}")]
            if key in _TEXT_FIELDS:
                header[key] = inner.strip()
            else:
                items = [item.strip() for item in inner.split(",")]
                header[key] = items if items != [""] else []
        else:
            header[key] = value
    return header


def header_beside(dataset):
    """The fields of the ENVI header file of an open raster (``.hdr`` among its files; parsed here, not by GDAL), or
    None. GDAL drops every field after a header line of over 10,000 characters (a long wavelength list): the
    wavelengths, bad bands, scale and nodata are then read from here."""
    header_path = _header_path(dataset)
    if header_path is None:
        return None
    try:
        stat = os.stat(header_path)
        return _parsed_header(str(header_path), stat.st_mtime_ns, stat.st_size)
    except (OSError, OreMapError):
        return None


def _header_path(dataset):
    """The ``.hdr`` among an open raster's files, or None."""
    return next((f for f in (getattr(dataset, "files", None) or []) if str(f).lower().endswith(".hdr")), None)


def _read_keys(dataset):
    """The header fields GDAL read into its ENVI domain, spelt as the parsed header spells them (GDAL keeps the
    header's own spelling: 'Data_Type', 'BANDS')."""
    return {" ".join(k.replace("_", " ").lower().split()) for k in dataset.tags(ns="ENVI")}


@functools.lru_cache(maxsize=32)
def _parsed_header(path, mtime_ns, size):
    """:func:`parse_envi_header`, once per state of the file (a raster's opening asks for several fields).
    The dict is shared: callers only read it."""
    return parse_envi_header(path)


def dropped_field(dataset, key):
    """Field ``key`` (``"reflectance scale factor"``) of the ENVI header beside ``dataset`` when GDAL did not read it
    (it is not in the ENVI metadata domain), else None."""
    if dataset.driver != "ENVI":
        return None
    if key in _read_keys(dataset):
        return None
    header = header_beside(dataset)
    return None if header is None else header.get(key)


#: GDAL (3.6 at least) stops reading an ENVI header at its first line longer than this: the fields after it are lost.
GDAL_LINE_LIMIT = 10000

#: The fields GDAL reads an ENVI image's pixels by. Lost, it takes defaults (bytes, band-sequential, little-endian,
#: no offset) without a word, or refuses the file.
LAYOUT_FIELDS = ("samples", "lines", "bands", "data type", "interleave", "byte order", "header offset")

_LONG_LINE_FIX = ("Move the long lists (wavelength, fwhm, band names...) to the end of the header, or break them over "
                  "several lines, with a text editor; keep a copy of the original header.")


def layout_problem(dataset, parameter="raster"):
    """An :class:`OreMapError` when GDAL read an ENVI image without some of the layout fields its header gives
    (:data:`LAYOUT_FIELDS`; dropped after a line over :data:`GDAL_LINE_LIMIT` characters): a float32 cube was read
    as bytes, its wavelengths right. None otherwise."""
    if dataset.driver != "ENVI":
        return None
    fields, read = header_beside(dataset), _read_keys(dataset)
    lost = [key for key in LAYOUT_FIELDS if fields and key not in read and fields.get(key) is not None]
    header = _header_path(dataset)
    if not lost or not _has_long_line(header):
        return None
    return OreMapError(f"GDAL reads the ENVI header '{header}' only up to its first line of over {GDAL_LINE_LIMIT:,} "
                       f"characters, so it did not read {', '.join(lost)} after it: the pixels would be read with "
                       "its defaults (bytes, band-sequential), wrongly.", parameter, _LONG_LINE_FIX)


def _has_long_line(path):
    """Whether the text file ``path`` has a line over :data:`GDAL_LINE_LIMIT` characters."""
    try:
        with open(path, "rb") as handle:
            return any(len(line.rstrip(b"\r\n")) > GDAL_LINE_LIMIT for line in handle)
    except OSError:
        return False


def unreadable_header_reason(path):
    """Why GDAL cannot open the ENVI image ``path`` though its header is there, when the header tells: it starts with
    a byte-order mark (Windows Notepad's UTF-8), or a line over :data:`GDAL_LINE_LIMIT` characters comes before the
    size fields. ``(reason, fix)`` or None."""
    base = os.path.splitext(str(path))[0]
    candidates = [str(path) + ".hdr", base + ".hdr", base + ".HDR", str(path) + ".HDR"]
    header = next((c for c in candidates if os.path.isfile(c)), None)
    if header is None:
        return None
    try:
        with open(header, "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    if raw.startswith(b"\xef\xbb\xbf"):
        return (f"its ENVI header '{header}' starts with a byte-order mark (saved as 'UTF-8 with BOM'), which GDAL "
                "does not read", "Save the header as UTF-8 without BOM (or ANSI) in a text editor.")
    seen = set()
    for line in raw.decode("latin-1").splitlines():
        if len(line) > GDAL_LINE_LIMIT:
            lost = [key for key in ("samples", "lines", "bands") if key not in seen]
            if lost:
                return (f"GDAL reads its ENVI header '{header}' only up to its first line of over "
                        f"{GDAL_LINE_LIMIT:,} characters, and {', '.join(lost)} come after it", _LONG_LINE_FIX)
            return None
        if "=" in line:
            seen.add(" ".join(line.split("=", 1)[0].lower().split()))
    return None
