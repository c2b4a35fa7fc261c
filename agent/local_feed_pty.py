"""The local feed's pty (adapter): a pseudo-terminal behind a stable symlink that any program opens like a GNSS
receiver's tty (gpsd: ``gpsd -n /run/privacy-agent/nmea``).

One thread owns the master side. Sentences wait in a :class:`~agent.local_feed.DropOldestBuffer` and are written
without ever blocking (the master is non-blocking): a reader that stops reading, or no reader at all, costs at most
``buffer_bytes`` of memory, and the oldest sentences are dropped and counted. Before every write the feed is asked
whether anything may flow; when not, the buffer and the kernel's queue to the reader are thrown away. Whatever a
reader writes (gpsd's probes) is read and discarded: it never reaches the modem.

The link is placed only where nothing is, or over a stale link into ``/dev/pts/`` (a previous run's), and removed
at stop only if it still points at this pty.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import stat
import termios
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bounded_buffer import DropOldestBuffer
from agent.errors import StoreError, TransportError, UsageError
from agent.ledger.files import atomic_write, read_small
from agent.nmea.writer import FeedEpoch

log = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # the thread's longest sleep while nothing is pending (stop is signalled through a pipe)


class PtyOutput:
    """``record``: a small file in the state dir naming the link this feed placed and its pty, so that after a
    crash (SIGKILL, power cut) the next start knows the link is its own and replaces it, even when the pty number
    has been reused or a reader still holds the old pty open; any other symlink is never replaced."""

    def __init__(self, link: Path, *, buffer_bytes: int, may_flow: Callable[[], bool],
                 record: Path | None = None) -> None:
        self.link = link
        self._record = record
        self._may_flow = may_flow
        self._buffer = DropOldestBuffer(buffer_bytes)
        self._lock = threading.Lock()
        self._master = self._slave = -1
        self._wake_r = self._wake_w = -1
        self._name = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_bytes = 0
        self.discarded_bytes = 0
        self._flowing = False

    @property
    def pty_name(self) -> str:
        return self._name

    def start(self) -> None:
        stale = _check_link_path(self.link, ours=_recorded_target(self._record, self.link))
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # bytes pass unchanged: no echo, no CR/LF translation, like a USB serial port
            tty.setraw(master)
            os.set_blocking(master, False)
            self._name = os.ttyname(slave)
            if self._record is not None:  # before the link: a crash between the two leaves a record, never an orphan
                atomic_write(self._record, f"{self.link}\n{self._name}\n".encode())
            _place_link(self.link, self._name, stale)
        except BaseException:
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        # The slave stays open here too, so the master never sees a hang-up between two readers.
        self._master, self._slave = master, slave
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="local-feed-pty", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with contextlib.suppress(OSError):
            if self.link.is_symlink() and os.readlink(self.link) == self._name:
                self.link.unlink()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = -1

    def send(self, epoch: FeedEpoch, nmea: bytes) -> None:
        with self._lock:
            self._buffer.push(nmea)
        self._wake()

    def discard(self) -> None:
        with self._lock:
            thrown = self._buffer.clear()
            self.discarded_bytes += thrown
        # What the reader has not read yet goes too: the slave's input queue (the slave is held open here).
        for fd, queue in ((self._slave, termios.TCIFLUSH), (self._master, termios.TCOFLUSH)):
            if fd >= 0:
                with contextlib.suppress(OSError, termios.error):
                    termios.tcflush(fd, queue)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"output": "pty", "link": str(self.link), "written_bytes": self.written_bytes,
                    "pending_bytes": self._buffer.size, "dropped_bytes": self._buffer.dropped_bytes,
                    "dropped_sentences": self._buffer.dropped_chunks, "discarded_bytes": self.discarded_bytes}

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"w")

    def _run(self) -> None:
        master, wake = self._master, self._wake_r
        while not self._stop.is_set():
            with self._lock:
                pending = bool(self._buffer)
            try:
                readable, writable, _ = select.select([master, wake], [master] if pending else [], [], IDLE_WAIT_S)
            except (OSError, ValueError):
                return
            if wake in readable:
                with contextlib.suppress(OSError):
                    os.read(wake, 4096)
            if master in readable:
                with contextlib.suppress(OSError):
                    os.read(master, 4096)  # a reader's own writes (gpsd's probes): never forwarded
            if master in writable:
                self._write_pending(master)
            self._discard_when_closed()

    def _discard_when_closed(self) -> None:
        """Once a second at least: when the feed may no longer flow, what the reader has not read yet goes too,
        even with nothing of ours pending (the switch turned off while a slow reader lagged behind)."""
        flowing = self._may_flow()
        if self._flowing and not flowing:
            self.discard()
        self._flowing = flowing

    def _write_pending(self, master: int) -> None:
        if not self._may_flow():
            self.discard()
            return
        with self._lock:
            data = self._buffer.pending()
            try:
                written = os.write(master, data)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("local feed pty write failed: %s", exc.strerror or exc)
                return
            self._buffer.consume(written)
            self.written_bytes += written


def _recorded_target(record: Path | None, link: Path) -> str | None:
    """The pty this feed last linked at ``link``, as its record says; None when there is no (usable) record."""
    if record is None:
        return None
    try:
        data = read_small(record, limit=4096)
    except StoreError:
        return None
    lines = data.decode("utf-8", "replace").splitlines() if data else []
    return lines[1] if len(lines) == 2 and lines[0] == str(link) else None


def _check_link_path(path: Path, ours: str | None = None) -> str | None:
    """Refuse a link path the feed may not take; the target of the stale pty link found there, if any.

    ``ours``: the pty this feed linked there before a crash; such a link is replaced whatever its pty's state."""
    if not path.is_absolute():
        raise UsageError("the local feed link must be an absolute path", link=str(path))
    if not path.parent.is_dir():
        raise UsageError("the directory for the local feed link does not exist", link=str(path))
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TransportError(f"cannot check the local feed link: {exc.strerror or exc}", link=str(path)) from exc
    if not stat.S_ISLNK(mode):
        raise UsageError("refusing to replace a file that is not a symlink with the local feed link", link=str(path))
    target = os.readlink(path)
    if ours is not None and target == ours:
        return target
    if os.path.dirname(target) != "/dev/pts" or os.path.normpath(target) != target or os.path.lexists(target):
        raise UsageError("refusing to replace a symlink that is not a stale pty link", link=str(path))
    return target


def _place_link(path: Path, target: str, stale: str | None) -> None:
    try:
        if stale is not None:
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                if temporary.is_symlink():
                    temporary.unlink()
            os.symlink(target, temporary)
            os.replace(temporary, path)
        else:
            os.symlink(target, path)
    except FileExistsError:
        raise UsageError("refusing to replace what appeared at the local feed link path", link=str(path)) from None
    except OSError as exc:
        raise TransportError(f"cannot create the local feed link: {exc.strerror or exc}", link=str(path)) from exc
