"""Serve a :class:`SimModem` on pseudo-terminals, one per channel, behind stable symlinks.

Any program (pyserial, gpsd, minicom, the agent) opens the symlink as it would ``/dev/ttyUSB2``. One
pump thread moves bytes both ways. When a channel vanishes (unplug, reset with port drop, power down)
the master side is closed and the symlink removed, so readers of the slave see what a vanished USB tty
gives them (select says readable, read returns nothing or EIO); when it returns, a new pty appears
behind the same symlink.

The symlink paths belong to the user, so the server only ever puts a link where nothing is, or where a stale link
of an earlier run is (one into /dev/pts/ whose pty is gone); anything else is refused before anything changes. It
only removes a link that still points at the pty it created.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import stat
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
    name: str  # the /dev/pts path the link points to: a link is ours only while it still says this
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
        _check_distinct(self.links)
        for path in self.links.values():
            _check_link_path(path)
        try:
            self._reconcile(strict=True)
        except BaseException:
            # Links already made for other channels must not outlive a failed start.
            for channel in list(self._ptys):
                self._drop(channel)
            raise
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

    def _reconcile(self, strict: bool = False) -> None:
        """Make the set of ptys match the modem's connected channels (new pty after each drop).

        ``strict`` (at start) raises when a link cannot be made; in the pump a channel whose link path is
        taken (the user put something there while it was away) or unwritable stays without a pty and is
        retried on the next round, rather than clobbering the path or killing the pump.
        """
        for channel in self.links:
            connected = self.modem.is_connected(channel)
            generation = self.modem.link_generation(channel)
            current = self._ptys.get(channel)
            if current is not None and (not connected or current.generation != generation):
                self._drop(channel)
                current = None
            if current is None and connected:
                if strict:
                    self._create(channel, generation)
                    continue
                with contextlib.suppress(UsageError, OSError):
                    self._create(channel, generation)

    def _create(self, channel: str, generation: int) -> None:
        path = self.links[channel]
        stale = _check_link_path(path)  # before the pty exists, so a refused path costs nothing per round
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # bytes pass unchanged: no echo, no CR/LF translation, as on a USB serial port
            tty.setraw(master)
            os.set_blocking(master, False)
            name = os.ttyname(slave)
            _place_symlink(path, name, stale)
        except BaseException:
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        self._ptys[channel] = _Pty(master, slave, generation, name)

    def _drop(self, channel: str) -> None:
        current = self._ptys.pop(channel)
        path = self.links[channel]
        with contextlib.suppress(OSError):
            # Whatever the user put there since (another link, a file) is theirs: leave it.
            if path.is_symlink() and os.readlink(path) == current.name:
                path.unlink()
        current.close()


def _check_distinct(links: dict[str, Path]) -> None:
    """Two channels on one path would leave it pointing at whichever pty came last: refuse."""
    seen: dict[str, str] = {}
    for channel, path in links.items():
        # The directory is resolved (``./x``, ``dir/../x``, a symlinked directory); the name is not, as the
        # link itself may already exist as a stale symlink.
        key = os.path.join(os.path.realpath(path.parent), path.name)
        if key in seen:
            raise UsageError("the same path is given for two pty links", channels=[seen[key], channel], link=key)
        seen[key] = channel


def _check_link_path(path: Path) -> str | None:
    """Refuse a path the server may not put its link at; the target of the stale link found there, if any.

    Only an absent path or a stale pty link may be (re)placed: a symlink into /dev/pts/ whose pty is gone. A
    live one may belong to another simulator or, the number reused, to someone's terminal; any other symlink,
    file or directory is the user's.
    """
    directory = path.parent
    if not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise UsageError("the pty link's parent is not a directory", directory=str(directory), link=str(path))
        raise UsageError("the directory for the pty link does not exist", directory=str(directory), link=str(path))
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot check the pty link path: {exc.strerror or exc}", link=str(path)) from exc
    if not stat.S_ISLNK(mode):
        raise UsageError("refusing to replace an existing file or directory that is not a symlink", link=str(path))
    try:
        target = os.readlink(path)
    except OSError as exc:
        raise UsageError(f"cannot read the existing pty link: {exc.strerror or exc}", link=str(path)) from exc
    if not _is_pts_name(target):
        raise UsageError(
            "refusing to replace a symlink that does not point into /dev/pts/ (not a link left by the simulator)",
            link=str(path),
            target=target,
        )
    if os.path.lexists(target):
        raise UsageError(
            "refusing to replace a link to a pty that still exists (another simulator or a terminal may use it; "
            "remove the link if it is stale)",
            link=str(path),
            target=target,
        )
    return target


def _is_pts_name(target: str) -> bool:
    """``/dev/pts/<name>`` exactly, so that ``/dev/pts/../../home/x`` or a relative target does not qualify."""
    return (
        os.path.dirname(target) == "/dev/pts"
        and os.path.basename(target) not in ("", ".", "..")
        and os.path.normpath(target) == target
    )


def _place_symlink(path: Path, target: str, stale: str | None) -> None:
    """Make ``path`` point at ``target``; ``stale`` is the target of the stale link found there by the check.

    Where nothing was, the link is made in place: ``symlink`` fails rather than overwrite anything that appeared
    since the check. A stale link is replaced atomically through a fresh temporary name (never one that exists,
    so nothing of the user's is unlinked), after checking once more that it is still the same stale link (not
    by the pty's existence: the new pty may well have reused its number).
    """
    try:
        if stale is None:
            try:
                os.symlink(target, path)
            except FileExistsError:
                raise UsageError("refusing to replace what appeared at the pty link path", link=str(path)) from None
            return
        temporary = _fresh_symlink(path, target)
        try:
            if not path.is_symlink() or os.readlink(path) != stale:
                raise UsageError("refusing to replace what appeared at the pty link path", link=str(path))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
    except UsageError:
        raise
    except OSError as exc:
        raise UsageError(f"cannot create the pty link at {path}: {exc.strerror or exc}") from exc


def _fresh_symlink(path: Path, target: str) -> Path:
    while True:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            os.symlink(target, temporary)
        except FileExistsError:
            continue
        return temporary
