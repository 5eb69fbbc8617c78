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


BACKUP_COPY_LIMIT = 256 * 1024 * 1024
"""Largest existing output copied when the file system cannot hard-link it (:class:`OutputGuard`)."""


class OutputGuard:
    """A run's output files, kept as they were unless the run completes.

    :meth:`add` is called for each output file before the run writes it: an existing file is kept
    under a hidden name beside it (a hard link, so no data is copied; the writers of the engine
    replace a file rather than rewrite it, so the link keeps the old content), with its ``.aux.xml``
    and ``.qml`` sidecars. :meth:`rollback` after a failure or a cancellation puts every kept file
    back and removes the files the run created; :meth:`commit` after success drops the kept copies.
    A file that can be neither linked nor copied (over :data:`BACKUP_COPY_LIMIT`) is not kept: a
    failed run may then leave it replaced by a complete new file, never by a partial one.
    """

    def __init__(self):
        self._entries = {}  # path -> name of the kept copy, or None when the path did not exist

    @staticmethod
    def _family(path):
        return [path, path + ".aux.xml", os.path.splitext(path)[0] + ".qml"]

    def add(self, path):
        if not path:
            return
        path = os.path.abspath(os.fspath(path))  # a link is what the writers replace, not its target
        if os.path.isdir(path):  # an output folder: what goes in it is the algorithm's business
            return
        for p in self._family(path):
            if p in self._entries:
                continue
            kept = None
            if os.path.lexists(p) and not os.path.isdir(p):
                kept = self._keep(p)
                if kept is None:
                    continue  # cannot keep it: leave it out of the rollback rather than delete it
            self._entries[p] = kept

    @staticmethod
    def _keep(path):
        import shutil

        name = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".oremap-kept-"
                            + secrets.token_hex(4))
        try:
            os.link(path, name, follow_symlinks=False)
            return name
        except (OSError, NotImplementedError):
            pass
        try:
            if os.path.getsize(path) <= BACKUP_COPY_LIMIT:
                shutil.copy2(path, name, follow_symlinks=False)
                return name
        except OSError:
            _remove(name)  # a copy cut short (disk full)
        return None

    def rollback(self):
        """Put the kept files back and remove those the run created."""
        for path, kept in self._entries.items():
            if kept is None:
                if not os.path.isdir(path):
                    _remove(path)
                continue
            try:
                os.replace(kept, path)  # a no-op when the file was never replaced (two links to it)
            except OSError:
                pass
            try:  # the kept name is dropped only when it is the file at the path; else it holds the only old copy
                if os.path.samefile(kept, path):
                    _remove(kept)
            except OSError:
                pass
        self._entries = {}

    def commit(self):
        for kept in self._entries.values():
            if kept is not None:
                _remove(kept)
        self._entries = {}


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
