"""Writing files safely: complete or not at all."""

import os
import secrets

from .errors import OreMapError

_TRIES = 100


def _create_temporary(path, folder):
    """Open a new, unique temporary file beside ``path``: ``(fd, name)``.

    Created with mode 0666, which the kernel reduces by the process umask (so the file gets the
    usual permissions without reading the umask, which would change it for every thread).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    prefix = "." + os.path.basename(path) + "."
    for _ in range(_TRIES):
        tmp = os.path.join(folder, prefix + secrets.token_hex(6) + ".partial")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"No unused temporary file name in '{folder}'.")


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
        fd, tmp = _create_temporary(path, folder)
    except OSError as exc:
        raise OreMapError(f"Cannot write in folder '{folder}': {exc.strerror or exc}.", parameter,
                          "Choose a folder you can write to.") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
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
