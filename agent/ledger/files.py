"""File-system helpers for the ledger: private modes, no symlinks followed, durable creates and renames.

Every ``OSError`` from ledger files is translated here into a :class:`StoreError` (the path's base name and
the errno text only; paths hold no personal data, but keep messages short).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from agent.errors import StoreError

FILE_MODE = 0o600
DIR_MODE = 0o700
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def store_error(action: str, path: Path, exc: OSError) -> StoreError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ELOOP:
        reason = "is a symlink; refusing to follow it"
    return StoreError(f"cannot {action} {path.name}: {reason}", path=str(path))


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700 or check that an existing one is a real directory (never a symlink)."""
    try:
        created = not os.path.lexists(path)
        if created:
            path.mkdir(mode=DIR_MODE)
        info = os.lstat(path)
    except OSError as exc:
        raise store_error("create directory", path, exc) from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path.name} is not a directory (symlinks are refused)", path=str(path))
    if created:
        sync_dir(path.parent)  # the new directory's entry must survive a power cut too


def open_for_append(path: Path, *, create: bool) -> int:
    flags = os.O_WRONLY | os.O_APPEND | _NOFOLLOW
    if create:
        flags |= os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, FILE_MODE)
    except OSError as exc:
        raise store_error("open for writing", path, exc) from exc


def open_for_read(path: Path) -> int:
    try:
        return _open_regular(path)
    except OSError as exc:
        raise store_error("open", path, exc) from exc


def _open_regular(path: Path) -> int:
    """Open ``path`` for reading, refusing anything but a regular file.

    A directory opens fine and fails only on the first read (and os.fdopen on it fails without closing the
    fd); a FIFO would block the open itself, hence O_NONBLOCK until the type is known.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"cannot open {path.name}: it is not a regular file", path=str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_small(path: Path, limit: int | None = None) -> bytes | None:
    """The whole of a small file, or None when it does not exist; ``limit``: refuse one larger than this many
    bytes (checked as it is read, so that a file growing meanwhile is refused too)."""
    try:
        fd = _open_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise store_error("open", path, exc) from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except OSError as exc:
        raise store_error("read", path, exc) from exc
    if limit is not None and len(data) > limit:
        raise StoreError(f"{path.name} is larger than the ledger ever writes it", path=str(path), limit=limit)
    return data


def write_all(fd: int, data: bytes | bytearray, path: Path) -> None:
    try:
        _write_all(fd, data)
    except OSError as exc:
        raise store_error("write", path, exc) from exc


def write_and_sync(fd: int, data: bytes | bytearray, path: Path) -> None:
    """:func:`write_all` then ``fdatasync``, in one call: a durable append makes this call per record."""
    operation = "write"
    try:
        if data:
            _write_all(fd, data)
        operation = "fsync"
        os.fdatasync(fd)
    except OSError as exc:
        raise store_error(operation, path, exc) from exc


def sync_fd(fd: int, path: Path) -> None:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        raise store_error("fsync", path, exc) from exc


def _write_all(fd: int, data: bytes | bytearray) -> None:
    written = os.write(fd, data)
    while written < len(data):  # a regular file writes short only when the disk is full
        data = data[written:]  # a copy, not a view: nothing may pin the caller's buffer afterwards
        written = os.write(fd, data)


def sync_dir(path: Path) -> None:
    """fsync a directory so that a create or rename inside it survives a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise store_error("fsync directory", path, exc) from exc


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a 0600 temporary file of an unpredictable name made with O_EXCL in the
    same directory (tempfile.mkstemp, so a planted name cannot redirect it), fsync, rename over, fsync the
    directory. A reader sees the old file or the new one, never a mix; after a power cut, one of the two."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise store_error("create a temporary file for", path, exc) from exc
    temporary = Path(name)
    try:
        try:
            write_all(fd, data, temporary)
            try:
                os.fsync(fd)
            except OSError as exc:
                raise store_error("fsync", temporary, exc) from exc
        finally:
            os.close(fd)
        try:
            os.replace(temporary, path)
        except OSError as exc:
            raise store_error("rename", path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    sync_dir(path.parent)


def truncate(path: Path, length: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | _NOFOLLOW)
        try:
            os.ftruncate(fd, length)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise store_error("truncate", path, exc) from exc


def lock_exclusive(path: Path, *, shared: bool = False) -> int:
    """Hold ``path`` locked for the life of the returned fd: one writer per store, readers only while none."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, FILE_MODE) if not shared else \
            os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return -1  # a read-only look at a store that was never opened for writing
    except OSError as exc:
        raise store_error("open", path, exc) from exc
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreError("the ledger is in use by another process (stop the daemon first)",
                         path=str(path)) from exc
    return fd


def file_size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError as exc:
        raise store_error("stat", path, exc) from exc
