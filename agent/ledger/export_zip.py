"""Reading a zip that may be hostile: only a regular file, no single read larger than a bound, a directory
checked (member count, names, flags, compression, declared sizes) before anything is inflated, members read
whole only up to a limit, and records.jsonl line by line in bounded memory."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from agent.errors import ExportError
from agent.ledger.export_format import (
    COMPRESSION_METHODS,
    COPY_CHUNK,
    INFLATE_RATIO_LIMIT,
    INFLATE_SLACK,
    LINE_LIMIT,
    MAX_MEMBERS,
    UNSUPPORTED_FLAGS,
)


def open_regular(path: Path) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file: never through a symlink, never blocking on a
    FIFO, never a device such as /dev/zero."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ExportError(f"{path.name} is a symlink; pass the export file itself") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ExportError(f"{path.name} is not a regular file (a FIFO, a device or a directory)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class GuardedReads(io.RawIOBase):
    """The export file as zipfile sees it, with no single read larger than ``limit``: zipfile reads a zip's
    whole central directory in one read, however large the zip says it is."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        super().__init__()
        self._handle = handle
        self.limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            position = self._handle.tell()
            size = os.fstat(self._handle.fileno()).st_size - position
        if size > self.limit:
            raise ExportError("the export's zip directory or a file in it is larger than an export ever makes "
                              "it (too many files, or a crafted size)", limit=self.limit)
        return self._handle.read(size)


def check_members(archive: zipfile.ZipFile, archive_size: int) -> None:
    """What can be refused from the zip's directory alone, before anything is inflated."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ExportError("the export holds more files than an export ever does", limit=MAX_MEMBERS)
    names = set()
    for info in infos:
        name = info.orig_filename
        if name != info.filename or "\x00" in name:
            raise ExportError("a file name in the export holds a NUL or a backslash; exports never do")
        if name.startswith("/") or "\\" in name or ".." in name.split("/") or ":" in name.split("/")[0]:
            raise ExportError("a file in the export has an absolute name or one with '..'; exports never do")
        if name in names:  # zipfile reads the last of them, unzip the first: a forgery hides behind either
            raise ExportError("a file name appears twice in the export", file=name)
        names.add(name)
        if info.flag_bits & UNSUPPORTED_FLAGS:
            raise ExportError("a file in the export is encrypted or patched; exports never are",
                              file=info.filename)
        if info.compress_type not in COMPRESSION_METHODS:
            raise ExportError("a file in the export uses a compression method that exports never use",
                              file=info.filename, method=info.compress_type)
    declared = sum(info.file_size for info in infos)
    if declared > INFLATE_RATIO_LIMIT * archive_size + INFLATE_SLACK:
        raise ExportError("the export's files claim to inflate to far more than any export does (a zip bomb)",
                          declared_bytes=declared)


@contextlib.contextmanager
def reading(name: str) -> Iterator[None]:
    """Name the file when zipfile lets its inflater's error through (damaged compressed data)."""
    try:
        yield
    except zlib.error as exc:
        raise ExportError("a file in the export is damaged: its compressed data cannot be inflated",
                          file=name) from exc


def read_small(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The whole of member ``name``, refused when larger than ``limit``: by its declared size first, then by
    what it inflates to, since a crafted zip can declare any size."""
    info = archive.getinfo(name)  # KeyError when it is missing
    if info.file_size > limit:
        raise ExportError(f"{name} is larger than an export ever makes it", limit=limit)
    with reading(name), archive.open(info) as member:
        raw = member.read(limit + 1)
    if len(raw) > limit:
        raise ExportError(f"{name} is larger than an export ever makes it", limit=limit)
    return raw


def jsonl_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """records.jsonl line by line (without the newline) in bounded memory: a line longer than LINE_LIMIT
    is refused before it is read whole."""
    rest = b""
    while chunk := stream.read(COPY_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        # only the first whole line can hold a previous chunk's rest: the others are shorter than one chunk
        if len(rest) > LINE_LIMIT or (lines and len(lines[0]) > LINE_LIMIT):
            raise ExportError("a line of records.jsonl is longer than any record makes it", limit=LINE_LIMIT)
        yield from lines
    if rest:
        yield rest
