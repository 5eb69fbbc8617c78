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
    header_path = next((f for f in (getattr(dataset, "files", None) or []) if str(f).lower().endswith(".hdr")), None)
    if header_path is None:
        return None
    try:
        stat = os.stat(header_path)
        return _parsed_header(str(header_path), stat.st_mtime_ns, stat.st_size)
    except (OSError, OreMapError):
        return None


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
    tags = dataset.tags(ns="ENVI")
    if key in tags or key.replace(" ", "_") in tags:
        return None
    header = header_beside(dataset)
    return None if header is None else header.get(key)
