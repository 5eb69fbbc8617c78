"""Writing files safely: complete or not at all."""

import os
import tempfile

from .errors import OreMapError


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path, data, parameter="output"):
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` through a temporary file moved into place.

    Readers never see a half-written file and an existing file is replaced only once the
    new one is complete. The file gets the usual permissions (0666 less the umask).
    Raises :class:`OreMapError` (with ``parameter``) when it cannot be written. Returns ``path``.
    """
    if not path:
        raise OreMapError("No output file given.", parameter, "Choose where to save the file.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OreMapError(f"Folder '{folder}' does not exist.", parameter, "Choose an existing folder.")
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=folder)
    except OSError as exc:
        raise OreMapError(f"Cannot write in folder '{folder}': {exc.strerror}.", parameter,
                          "Choose a folder you can write to.") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OreMapError(f"Cannot write '{path}': {exc.strerror}.", parameter,
                              "Choose another file name or close the program that holds the file.") from exc
        raise
    return path
