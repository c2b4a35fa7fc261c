"""``file://PATH``: JSON lines, one object per upload, appended and fsynced before ``send`` returns."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from agent.errors import SinkRejected, SinkUnavailable
from agent.spool import Message

_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # read: the last byte


class FileSink:
    """Appends each message's body as one line. The file is opened on first use and re-opened after an error.

    A line left unfinished by a power cut is closed with a newline before the next append, so that it stands on
    its own line (a reader skips it) instead of swallowing the next object.
    """

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self._path = Path(path)
        self._fd = -1
        self._mutex = threading.Lock()

    def send(self, message: Message) -> None:
        line = _one_line(self.name, message.body)
        with self._mutex:
            try:
                fd = self._open()
                _write_all(fd, line)
                os.fdatasync(fd)
            except OSError as exc:
                self._close()
                raise SinkUnavailable(f"cannot append to the file sink: {exc.strerror or type(exc).__name__}",
                                      sink=self.name) from exc

    def close(self) -> None:
        with self._mutex:
            self._close()

    def _open(self) -> int:
        if self._fd >= 0:
            return self._fd
        existed = os.path.lexists(self._path)
        fd = os.open(self._path, _FLAGS, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SinkUnavailable("the file sink's path is not a regular file", sink=self.name)
            if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                _write_all(fd, b"\n")  # close a line a power cut left unfinished
            if not existed:
                _sync_dir(self._path.parent)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _one_line(name: str, body: bytes) -> bytes:
    """The body and a newline; SinkRejected unless the body is one JSON object on one line."""
    if b"\n" in body or b"\r" in body:
        raise SinkRejected("the payload spans more than one line", sink=name)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise SinkRejected("the payload is not JSON", sink=name) from exc
    if not isinstance(value, dict):
        raise SinkRejected("the payload is not one JSON object", sink=name)
    return body + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
