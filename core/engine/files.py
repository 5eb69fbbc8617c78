"""Writing files safely: complete or not at all."""

import functools
import os
import re
import secrets
import sys
import time

from .errors import OreMapError

_TRIES = 100

STALE_AFTER_S = 24 * 3600
"""A run's temporary or kept file from another machine (shared folder) is taken as stale once untouched this long."""


def decode_text(raw):
    """Text of a file's bytes: UTF-32 or UTF-16 by their byte-order mark (Excel's 'Unicode Text' is UTF-16), UTF-16
    without one where every second byte is mostly NUL, else UTF-8 (a byte-order mark dropped), else Windows' Western
    code page (cp1252: what Excel and Notepad save there, curly quotes and dashes included), else Latin-1, which
    every byte reads as (the spectral libraries and headers of older instruments)."""
    if raw[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return raw.decode("utf-32", errors="replace")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    head = raw[:4096]
    if len(head) >= 4:
        for encoding, nuls in (("utf-16-le", head[1::2]), ("utf-16-be", head[0::2])):
            if nuls.count(0) > 0.7 * len(nuls) and head.count(0) < 0.6 * len(head):
                return raw[:len(raw) // 2 * 2].decode(encoding, errors="replace")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass
    return raw.decode("latin-1")


def read_table(path):
    """The rows (lists of fields) of a small CSV table as spreadsheets save it: UTF-8 or Windows' code page
    (:func:`decode_text`), fields separated by commas, semicolons (Excel where the decimal mark is a comma) or
    tabs, whichever the first lines hold most of (a tie goes to the semicolon or the tab: names hold commas far
    more often than either)."""
    import csv
    import io

    with open(path, "rb") as handle:
        text = decode_text(handle.read())
    counts = {d: text[:4096].count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: (counts[d], d != ","))
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


WINDOWS = os.name == "nt"
"""Whether Windows' rules hold for files (a file open in a program cannot be replaced; paths end at 260 characters):
the rules OreMap follows there, which a test may switch on elsewhere. Calls into Windows itself test ``os.name``."""

CASE_BLIND = os.name == "nt" or sys.platform == "darwin"
"""Whether file names are compared without regard to case, as the file systems of Windows (NTFS) and macOS (APFS and
HFS+, unless formatted case-sensitive) compare them: there 'Scene.tif' and 'scene.tif' are one file."""


def file_key(path):
    """``path`` as the file system compares names (:data:`CASE_BLIND`): equal keys, one file. Each character is
    lower-cased on its own, as NTFS and APFS fold case one character for one ('Straße' and 'STRASSE' stay two names;
    a case-sensitive Mac volume then refuses a few names it could keep apart, never the reverse)."""
    if not CASE_BLIND:
        return path
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in os.path.normcase(path))


def file_identity(path):
    """``(device, inode)`` of the file at ``path`` (links and other spellings of one file share it), or None (also
    where the file system gives no file id: some network shares report 0)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else None


#: How long a rename waits out a file that another program holds for a moment (Windows: the virus scanner, the
#: search indexer or OneDrive opening a file just written), in tries 0.1 s apart.
REPLACE_TRIES = 10


def replace(source, target):
    """``os.replace``, tried again for about a second while Windows reports the file in use (PermissionError): a
    scanner or OneDrive that opens a file just written lets go within moments. Elsewhere a single try."""
    tries = REPLACE_TRIES if WINDOWS else 1
    for attempt in range(tries):
        try:
            return os.replace(source, target)
        except PermissionError:
            if attempt == tries - 1:
                raise
            time.sleep(0.1)


def no_console():
    """Keyword arguments of ``subprocess.run``/``Popen`` that keep a child process (pip, a Python probe) from opening
    a console window over QGIS on Windows, where closing it would kill the child; none elsewhere."""
    import subprocess

    return {"creationflags": subprocess.CREATE_NO_WINDOW} if os.name == "nt" else {}


@functools.lru_cache(maxsize=1)
def host_tag():
    """Six hex digits naming this machine in temporary file names (a folder may be shared between machines)."""
    import hashlib

    return hashlib.sha1(machine_name().encode("utf-8", "replace")).hexdigest()[:6]


def machine_name():
    """This machine's name, as it stays: on macOS the computer's local host name (``scutil --get LocalHostName``),
    since its host name follows the network (a laptop's 'dhcp-10-1-2-3' at work): a crashed run's mark would then
    pass for another machine's and block its output for a day. Elsewhere (and if scutil fails) the host name."""
    import socket

    return (sys.platform == "darwin" and _command_output(["scutil", "--get", "LocalHostName"])) or socket.gethostname()


def _command_output(command):
    """The stripped standard output of ``command`` run in the C locale, or '' when it cannot run or fails."""
    import subprocess

    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=5, env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _pid_alive(pid):
    if os.name == "nt":  # os.kill would terminate the process there, not test it
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell: keep the file)
    return True


def _kernel32():
    """Windows' kernel32 with its last error kept per call (``ctypes.get_last_error``): the plain ``windll`` one can
    read an error value that a call in between (Python's own) has overwritten."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.CreateFileW.restype = wintypes.HANDLE
    kernel32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                                     wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    return kernel32


def _windows_pid_alive(pid):
    import ctypes

    kernel32 = _kernel32()
    handle = kernel32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # access denied: it exists (someone else's); else it is gone
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _process_start(pid):
    """When process ``pid`` started (seconds since the epoch), or None where that cannot be read."""
    if os.name == "nt":
        import ctypes
        from ctypes import wintypes

        kernel32 = _kernel32()
        handle = kernel32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return None
        try:
            times = [wintypes.FILETIME() for _ in range(4)]
            if not kernel32.GetProcessTimes(handle, *[ctypes.byref(t) for t in times]):
                return None
            created = (times[0].dwHighDateTime << 32) | times[0].dwLowDateTime  # 100 ns since 1601
            return created / 1e7 - 11644473600.0
        finally:
            kernel32.CloseHandle(handle)
    if sys.platform == "darwin":   # no /proc: the time since it started, from ps ([[dd-]hh:]mm:ss)
        elapsed = _command_output(["ps", "-o", "etime=", "-p", str(int(pid))])
        days, _, clock = elapsed.rpartition("-")
        try:
            seconds = sum(int(part) * 60 ** k for k, part in enumerate(reversed(clock.split(":"))))
            return time.time() - seconds - 86400 * int(days or 0) if clock else None
        except ValueError:
            return None   # the id alone decides
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith(b"btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None  # the id alone decides


def replace_blocked(path):
    """True when a handle open on the existing file ``path`` keeps it from being replaced or removed: on Windows a
    file opened without FILE_SHARE_DELETE, as GDAL opens the rasters QGIS shows and most programs open theirs.
    Elsewhere a file can always be replaced (its readers keep the old one): False."""
    if os.name != "nt" or not os.path.isfile(path):
        return False
    import ctypes

    kernel32 = _kernel32()
    # DELETE access, sharing read, write and delete with everyone; OPEN_EXISTING; FILE_ATTRIBUTE_NORMAL
    handle = kernel32.CreateFileW(os.path.abspath(path), 0x00010000, 0x7, None, 3, 0x80, None)
    if handle is None or handle == ctypes.c_void_p(-1).value:
        return ctypes.get_last_error() == 32  # ERROR_SHARING_VIOLATION
    kernel32.CloseHandle(handle)
    return False


def run_file_is_stale(path, host, pid, by_age=True, by_start=False):
    """Whether the file a run named with ``host`` (:func:`host_tag`) and process id ``pid`` is left over: a run of
    this machine whose process is gone, or (``by_age``) of another machine and untouched for :data:`STALE_AFTER_S`.
    With ``by_start`` (files a run creates while it runs: marks, partial outputs; not kept copies, which keep the old
    file's time), a process that started after the file was last written is another one under a reused id: Windows
    reuses ids soon, and after a crash the id may be this very QGIS's."""
    if host == host_tag():
        pid = int(pid)
        if pid != os.getpid() and not _pid_alive(pid):
            return True
        if not by_start:
            return False
        started = _process_start(pid)
        try:
            return started is not None and os.path.getmtime(path) < started - 2.0
        except OSError:
            return False
    if not by_age:
        return False
    try:
        return time.time() - os.path.getmtime(path) >= STALE_AFTER_S
    except OSError:
        return False


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
        replace(tmp, path)
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


_WRITING = WRITING_MARK = ".oremap-writing-"
"""The tail of the mark :func:`claim` puts beside a file while a run writes it (``.NAME.oremap-writing-...``)."""
_WRITING_NAME = re.compile(r"\.oremap-writing-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]+$")


def claim(path, parameter=None, what=None):
    """Mark ``path`` as being written by this run; return the mark (give it to :func:`release`), or None when the
    folder cannot take one (the write itself will say why).

    The mark is an empty hidden file beside it, ``.NAME.oremap-writing-HOST-PID-TOKEN``. Another run's mark stops
    this run with an :class:`OreMapError` naming ``parameter``: a run of this process (another QGIS task), of a
    live process of this machine, or of another machine sharing the folder and touched within
    :data:`STALE_AFTER_S`. Marks of runs that are gone are removed, all of them before a live one stops the
    run. Two runs that claim at the same instant both see the other's mark and both stop, rather than both
    writing. ``what`` names the file in the message (default: its name).
    """
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    mine = os.path.join(folder, f".{base}{_WRITING}{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.close(os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
    except OSError:
        mine = None
    live = []
    for name in sorted(names_beside(folder, "." + base + _WRITING)):   # every stale mark is removed first
        full = os.path.join(folder, name)
        match = _WRITING_NAME.search(name)   # by its tail: the name's start may be spelt otherwise (case-blind)
        if match is None or full == mine:
            continue
        host, pid = match.group("host"), int(match.group("pid"))
        if run_file_is_stale(full, host, pid, by_start=True):
            _remove(full)
        else:
            live.append((name, full, host, pid))
    if live:
        name, full, host, pid = live[0]
        release(mine)
        if host != host_tag():
            who = (f"on another machine sharing the folder (its mark '{name}' was last touched "
                   f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(_mtime(full)))})")
            fix = ("Wait for it to finish, or choose another output. If that run is gone, delete the mark (it is "
                   "taken as stale after 24 h).")
        else:
            who = "in this program" if pid == os.getpid() else f"process {pid} of this machine"
            fix = "Wait for it to finish, or choose another output." + (
                "" if pid == os.getpid() else f" If no OreMap run is going, delete its mark '{full}'.")
        raise OreMapError(f"{what or repr(base)} is being written by another OreMap run ({who}).", parameter, fix)
    return mine


def release(mark):
    """Remove a mark of :func:`claim` (None: nothing)."""
    if mark:
        _remove(mark)


def touch(mark):
    """Renew a mark of :func:`claim` (None: nothing): other machines take a mark untouched for a day as stale."""
    if mark:
        try:
            os.utime(mark)
        except OSError:
            pass


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return time.time()


class OutputGuard:
    """A run's output files, kept as they were unless the run completes.

    :meth:`add` is called for each output file before the run writes it: an existing file is kept
    under a hidden name beside it (a hard link, so no data is copied; the writers of the engine
    replace a file rather than rewrite it, so the link keeps the old content), with its ``.aux.xml``
    and ``.qml`` sidecars. :meth:`rollback` after a failure or a cancellation puts every kept file
    back and removes the files the run created; :meth:`commit` after success drops the kept copies.
    A file that can be neither linked nor copied (over :data:`BACKUP_COPY_LIMIT`) is not kept: a
    failed run may then leave it replaced by a complete new file, never by a partial one.

    The kept copy is named ``.NAME.oremap-kept-HOST-PID-TOKEN``; one left by a run of this machine that died, or
    whose rollback could not put it back (a file held open on Windows), is removed when a later run writes ``NAME``
    again (:meth:`add` returns those names, for the log).
    """

    def __init__(self):
        self._entries = {}  # path -> name of the kept copy, or None when the path did not exist
        self._marks = {}    # output path -> its mark (:func:`claim`): two runs never write one output at once

    @staticmethod
    def _family(path):
        return [path, path + ".aux.xml", os.path.splitext(path)[0] + ".qml"]

    def add(self, path, parameter=None):
        """Guard output ``path`` and its sidecars; returns the stale kept copies removed beside them. Another run
        writing ``path`` now stops this one (:func:`claim`, its error naming ``parameter``)."""
        if not path:
            return []
        path = os.path.abspath(os.fspath(path))  # a link is what the writers replace, not its target
        if os.path.isdir(path):  # an output folder: what goes in it is the algorithm's business
            return []
        if path not in self._marks:
            self._marks[path] = claim(path, parameter, f"The output '{os.path.basename(path)}'")
        removed = []
        for p in self._family(path):
            removed += self.add_file(p)
        return removed

    def add_file(self, path):
        """Guard the one file ``path`` (no sidecars: e.g. a style written beside a vector output)."""
        path = os.path.abspath(os.fspath(path))
        if path in self._entries:
            return []
        removed = remove_stale_kept(path)
        kept = None
        if os.path.lexists(path) and not os.path.isdir(path):
            kept = self._keep(path)
            if kept is None:
                return removed  # cannot keep it: leave it out of the rollback rather than delete it
        self._entries[path] = kept
        return removed

    @staticmethod
    def _keep(path):
        import shutil

        name = kept_name(path)
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
        """Put the kept files back and remove those the run created.

        Returns ``(path, kept)`` for each old file that could not be put back: it stays under the kept name.
        """
        unrestored = []
        for path, kept in self._entries.items():
            if kept is None:
                if not os.path.isdir(path):
                    _remove(path)
                continue
            try:
                replace(kept, path)  # a no-op when the file was never replaced (two links to it)
            except OSError:
                pass
            try:  # the kept name is dropped only when it is the file at the path; else it holds the only old copy
                if os.path.samefile(kept, path):
                    _remove(kept)
                    continue
            except OSError:
                pass
            if os.path.lexists(kept):
                unrestored.append((path, kept))
        self._entries = {}
        self._release()
        return unrestored

    def commit(self):
        for kept in self._entries.values():
            if kept is not None:
                _remove(kept)
        self._entries = {}
        self._release()

    def _release(self):
        for mark in self._marks.values():
            release(mark)
        self._marks = {}


def names_beside(folder, prefix):
    """Names in ``folder`` starting with ``prefix`` as the file system compares names (:func:`file_key`; none when
    the folder cannot be listed)."""
    start = file_key(prefix)
    try:
        return [n for n in os.listdir(folder) if file_key(n).startswith(start)]
    except OSError:
        return []


_KEPT = ".oremap-kept-"

_KEPT_NAME = re.compile(r"\.oremap-kept-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]+$")


def kept_name(path):
    """A hidden name beside ``path`` for the previous file while a run replaces it
    (``.NAME.oremap-kept-HOST-PID-TOKEN``): a later run removes it once this process is gone
    (:func:`remove_stale_kept`)."""
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + _KEPT + host_tag() + "-"
                        + str(os.getpid()) + "-" + secrets.token_hex(4))


def remove_stale_kept(path):
    """Remove the copies of ``path`` that :class:`OutputGuard` kept for runs of this machine now gone (those of
    another machine sharing the folder are left: their process cannot be checked, and their age is the output's);
    return the names of those that held an older file than the one at ``path`` (the others were mere links to it)."""
    folder, base = os.path.split(os.path.abspath(path))
    removed = []
    for name in names_beside(folder, "." + base + _KEPT):
        match = _KEPT_NAME.search(name)
        full = os.path.join(folder, name)
        # by process only: a kept copy has the old output's time, so its age says nothing of its run
        if match is None or not run_file_is_stale(full, match.group("host"), match.group("pid"), by_age=False):
            continue
        try:
            same = os.path.samefile(full, path)
        except OSError:
            same = False
        _remove(full)
        if not os.path.lexists(full) and not same:
            removed.append(full)
    return removed


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
