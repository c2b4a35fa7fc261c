"""Serve a :class:`SimModem` on pseudo-terminals, one per channel, behind stable symlinks.

Any program (pyserial, gpsd, minicom, the agent) opens the symlink as it would ``/dev/ttyUSB2``. One
pump thread moves bytes both ways. When a channel vanishes (unplug, reset with port drop, power down)
the master side is closed and the symlink removed, so readers of the slave see what a vanished USB tty
gives them (select says readable, read returns nothing or EIO); when it returns, a new pty appears
behind the same symlink.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from agent.errors import PortUnavailable, UsageError
from agent.sim.modem import CHANNELS, SimModem

POLL_S = 0.05  # longest the pump sleeps, so unplug/replug and stop are noticed quickly
READ_CHUNK = 4096
MAX_PENDING = 256 * 1024  # output held for a slave nobody reads


@dataclass(slots=True)
class _Pty:
    master: int
    slave: int
    generation: int
    pending: bytearray = field(default_factory=bytearray)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SimPtyServer:
    """``links`` maps a channel (``at``, ``at2``, ``nmea``) to the symlink path to create for it."""

    def __init__(self, modem: SimModem, links: dict[str, str | Path], poll_s: float = POLL_S) -> None:
        unknown = sorted(set(links) - set(CHANNELS))
        if unknown:
            raise UsageError("unknown simulator channel", channels=unknown)
        self.modem = modem
        self.links = {channel: Path(path) for channel, path in links.items()}
        self._poll_s = poll_s
        self._ptys: dict[str, _Pty] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------------------------- life cycle

    def start(self) -> SimPtyServer:
        if self._thread is not None:
            raise RuntimeError("the pty server is already running")
        for path in self.links.values():
            _check_link_path(path)
        self._reconcile()
        self._stop.clear()
        self._thread = threading.Thread(target=self._pump, name="sim-pty-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for channel in list(self._ptys):
            self._drop(channel)

    def __enter__(self) -> SimPtyServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def slave_name(self, channel: str) -> str | None:
        """The /dev/pts path currently behind ``channel``'s symlink, or None while it is away."""
        current = self._ptys.get(channel)
        return os.ttyname(current.slave) if current is not None else None

    # ------------------------------------------------------------------------------------------------ pump

    def _pump(self) -> None:
        while not self._stop.is_set():
            self._reconcile()
            readable, writable = self._wait()
            for channel in readable:
                self._host_to_modem(channel)
            for channel in list(self._ptys):
                self._modem_to_host(channel, channel in writable)

    def _wait(self) -> tuple[set[str], set[str]]:
        by_fd = {pty.master: channel for channel, pty in self._ptys.items()}
        wants_write = [pty.master for pty in self._ptys.values() if pty.pending]
        timeout = self._poll_s
        now = self.modem.clock.monotonic()
        for channel in self._ptys:
            due = self.modem.next_due(channel)
            if due is not None:
                timeout = min(timeout, max(due - now, 0.0))
        try:
            readable, writable, _ = select.select(list(by_fd), wants_write, [], timeout)
        except (OSError, ValueError):  # a master closed under us by a drop; the next round rebuilds the list
            return set(), set()
        return {by_fd[fd] for fd in readable}, {by_fd[fd] for fd in writable}

    def _host_to_modem(self, channel: str) -> None:
        current = self._ptys.get(channel)
        if current is None:
            return
        try:
            data = os.read(current.master, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no process has the slave open right now; nothing was sent
            return
        with contextlib.suppress(PortUnavailable):
            self.modem.write(channel, data)

    def _modem_to_host(self, channel: str, writable: bool) -> None:
        current = self._ptys.get(channel)
        if current is None:
            return
        try:
            current.pending += self.modem.read(channel, 65536)
        except PortUnavailable:
            return  # the next reconcile closes this pty
        if len(current.pending) > MAX_PENDING:  # nobody reads the slave: keep the newest, as a full tty would
            del current.pending[: len(current.pending) - MAX_PENDING]
        if not current.pending:
            return
        try:
            written = os.write(current.master, current.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        del current.pending[:written]

    # ------------------------------------------------------------------------------------- links and ptys

    def _reconcile(self) -> None:
        """Make the set of ptys match the modem's connected channels (new pty after each drop)."""
        for channel in self.links:
            connected = self.modem.is_connected(channel)
            generation = self.modem.link_generation(channel)
            current = self._ptys.get(channel)
            if current is not None and (not connected or current.generation != generation):
                self._drop(channel)
                current = None
            if current is None and connected:
                self._create(channel, generation)

    def _create(self, channel: str, generation: int) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # bytes pass unchanged: no echo, no CR/LF translation, as on a USB serial port
        tty.setraw(master)
        os.set_blocking(master, False)
        self._ptys[channel] = _Pty(master, slave, generation)
        _replace_symlink(self.links[channel], os.ttyname(slave))

    def _drop(self, channel: str) -> None:
        current = self._ptys.pop(channel)
        path = self.links[channel]
        with contextlib.suppress(OSError):
            if path.is_symlink() and os.readlink(path) == os.ttyname(current.slave):
                path.unlink()
        current.close()


def _check_link_path(path: Path) -> None:
    if path.exists() and not path.is_symlink():
        raise UsageError("refusing to replace a file that is not a symlink", path=str(path))
    if not path.parent.is_dir():
        raise UsageError("the directory for a pty link does not exist", path=str(path))


def _replace_symlink(path: Path, target: str) -> None:
    """Point ``path`` at ``target`` atomically, replacing a stale link left by an earlier run."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, path)
