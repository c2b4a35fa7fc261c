"""The simulated Quectel module: the modem's side of the wire, pure and deterministic.

Bytes go in with :meth:`SimModem.write` and come out with :meth:`SimModem.read`; time only moves when the
injected clock says so, and every "random" choice comes from the seed, so the same seed, clock and
input give the same bytes. There are three channels, as on an EC25's USB interface: ``at`` (ttyUSB2),
``at2`` (ttyUSB3, another program's AT port) and ``nmea`` (ttyUSB1, output only).

The object holds a re-entrant lock and a condition (``changed``) so that adapters with threads (the ``sim://``
handler, the pty server, a test poking the modem) can share it; it starts no thread and does no I/O itself.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import PortUnavailable
from agent.model import Clock, Fix, SystemClock
from agent.sim import nmea_out
from agent.sim.clock import DEFAULT_WALL_START
from agent.sim.faults import Faults
from agent.sim.identity import (
    PLACES,
    Identity,
    TrackPoint,
    make_identity,
    make_sky,
    make_track,
    model_profile,
)
from agent.sim.parser import Command, parse_line

CHANNELS = ("at", "at2", "nmea")
AT_CHANNELS = ("at", "at2")
BOOT_S = 2.0  # ports stay away this long after a reset (USB re-enumeration)
BOOT_URC_DELAY_S = 0.5  # the ports enumerate before the firmware prints RDY: a host can open them in time
RESET_AFTER_S = 0.2  # CFUN=1,1 answers OK, then resets: long enough for the OK to be read
REGISTER_S = 1.0  # network search after boot or CFUN=1
POWER_DOWN_URC_S = 0.3  # QPOWD=1: OK, then POWERED DOWN ...
POWER_OFF_S = 1.3  # ... then the USB device disappears
MAX_LINE = 1024  # a longer command line is discarded, as the module's input buffer would
MAX_BUFFER = 256 * 1024  # unread output beyond this is dropped, oldest first, like an unread USB tty
MAX_CATCH_UP_S = 30.0  # bursts older than this are not generated after a long pause

CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    13: "SIM failure",
    14: "SIM busy",
    30: "no network service",
    50: "Incorrect parameters",
    501: "Invalid parameter(s)",
    502: "Operation not supported",
    503: "GNSS subsystem busy",
    504: "Session is ongoing",
    505: "Session not active",
    506: "Operation timeout",
    507: "Function not enabled",
    508: "Time information error",
    509: "XTRA not enabled",
    512: "Validity time is out of range",
    513: "Internal resource error",
    514: "GNSS locked",
    515: "End by E911",
    516: "Not fixed now",
    517: "Geo-fence ID does not exist",
    549: "Unknown error",
}

# QGPSCFG keys: allowed values (the EG25-G ``AT+QGPSCFG=?`` capture) and factory defaults (reference 1.6).
CfgValues = tuple[str, ...] | tuple[int, ...] | range
CFG_VALUES: dict[str, CfgValues] = {
    "outport": ("none", "usbnmea", "uartdebug"),
    "nmeasrc": range(0, 2),
    "gpsnmeatype": range(0, 32),
    "glonassnmeatype": range(0, 8),
    "galileonmeatype": range(0, 2),
    "beidounmeatype": range(0, 4),
    "gsvextnmeatype": range(0, 2),
    "gnssconfig": range(0, 7),
    "odpcontrol": range(0, 3),
    "dpoenable": range(0, 3),
    "plane": range(0, 3),
    "autogps": range(0, 2),
    "suplver": range(1, 3),
    "fixfreq": (1, 2, 5, 10),
}
CFG_DEFAULTS: dict[str, str | int] = {
    "outport": "usbnmea",
    "nmeasrc": 0,
    "gpsnmeatype": 31,
    "glonassnmeatype": 0,
    "galileonmeatype": 0,
    "beidounmeatype": 0,
    "gsvextnmeatype": 0,
    "gnssconfig": 1,
    "odpcontrol": 0,
    "dpoenable": 1,
    "plane": 0,
    "autogps": 0,
    "suplver": 1,
    "fixfreq": 1,
}
BOOT_URCS = ("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")


@dataclass(frozen=True, slots=True)
class SimState:
    """A snapshot of what the hardware really is, for tests and the demo."""

    gnss_on: bool
    cfg: dict[str, str | int]
    echo: dict[str, bool]
    cmee: int
    cfun: int
    powered: bool
    booted: bool
    registered: bool
    connected: dict[str, bool]
    xtra: int
    creg_mode: int = 0  # AT+CREG=n: 2 makes registration URCs carry LAC and cell ID
    cereg_mode: int = 0


class CommandFailed(Exception):
    """Raised by a command handler: the final result is ``+CME ERROR: code`` (or plain ``ERROR`` for None)."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class _Channel:
    name: str
    unplugged: bool = False
    connected: bool = True
    generation: int = 0
    echo: bool = True
    inbuf: bytearray = field(default_factory=bytearray)
    queue: list[tuple[float, int, bytes]] = field(default_factory=list)  # heap of (due, seq, bytes)
    ready: bytearray = field(default_factory=bytearray)
    after_cr: bool = False


Handler = Callable[[str, Command], list[str]]


class SimModem:
    """A simulated Quectel EC25/EG25/BG96; see the module docstring and ``docs/architecture.md``."""

    def __init__(
        self, model: str = "ec25", seed: int = 0, ttff_s: float = 5.0, clock: Clock | None = None
    ) -> None:
        if not 0 <= ttff_s < float("inf"):  # also refuses NaN, which would make every comparison false
            raise ValueError("ttff_s must be a finite number of seconds, not negative")
        self.profile = model_profile(model)
        self.seed = seed
        self.ttff_s = float(ttff_s)
        self._clock: Clock = clock if clock is not None else SystemClock()
        rng = random.Random(seed)
        self.place = PLACES[seed % len(PLACES)]
        self.identity: Identity = make_identity(self.profile, self.place, rng)
        self._sky = make_sky(rng)
        self._track = make_track(self.place, rng, DEFAULT_WALL_START)
        self._noise = random.Random(seed ^ 0x5EED)  # chunk sizes and garbage, apart from the identity stream
        self.faults = Faults()
        self.commands: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._channels = {name: _Channel(name) for name in CHANNELS}
        self._nv: dict[str, str | int] = dict(CFG_DEFAULTS)
        self._xtra = 0
        self._seq = 0
        self._events: list[tuple[float, int, str, int]] = []  # heap of (due, seq, kind, epoch)
        self._epoch = 0  # bumped at every reset, so that events of an earlier life are ignored
        self._now = self._clock.monotonic()
        self._target = self._now  # how far the current _sync goes
        self._wall_offset = self._clock.wall() - self._now
        self._powered = True
        self._booted = True
        self._ports_down = False
        self._cfun = 1
        self._cmee = 1
        self._creg_n = 0
        self._cereg_n = 0
        self._registered = True  # a module that has been running for a while
        self._gnss_on = False
        self._gnss_on_at = 0.0
        self._next_burst: float | None = None
        self._last_fix: tuple[TrackPoint, float] | None = None
        self._table: dict[str, Handler] = self._command_table()

    # ------------------------------------------------------------------------------------------ channel API

    def write(self, channel: str, data: bytes) -> None:
        """Bytes from the host on ``channel``; commands are answered once their CR arrives."""
        with self.changed:
            self._sync()
            chan = self._connected(channel)
            if channel == "nmea" or not self._booted:
                return  # the NMEA port is output only; a booting module hears nothing
            for byte in data:
                self._feed(chan, byte)
            self.changed.notify_all()

    def read(self, channel: str, max_bytes: int = 4096) -> bytes:
        """Whatever output of ``channel`` is ready now (at most ``max_bytes``; fewer when chunking)."""
        with self.changed:
            self._sync()
            chan = self._connected(channel)
            if not chan.ready:
                return b""
            limit = max_bytes
            if self.faults.chunk_max:  # drawn only when there is data, so idle polling changes nothing
                limit = min(limit, self._noise.randint(1, self.faults.chunk_max))
            data = bytes(chan.ready[:limit])
            del chan.ready[:limit]
            return data

    def next_due(self, channel: str) -> float | None:
        """Monotonic time at which more output may be ready on ``channel``, or None if nothing is due."""
        with self.changed:
            self._sync()
            chan = self._channels[self._known(channel)]
            if chan.connected and chan.ready:
                return self._now
            times = [self._release_time(chan.queue[0][0])] if chan.queue else []
            times += [due for due, _, _, epoch in self._events if epoch == self._epoch]
            if channel == "nmea" and self._nmea_active() and self._next_burst is not None:
                times.append(self._release_time(self._next_burst))
            return min(times) if times else None

    @property
    def supported_commands(self) -> tuple[str, ...]:
        """Names of the commands the module answers (``+QGPS``, ``E``, ...); anything else gives ERROR."""
        return tuple(sorted(self._table))

    @property
    def clock(self) -> Clock:
        return self._clock

    def is_connected(self, channel: str) -> bool:
        with self.changed:
            self._sync()
            return self._channels[self._known(channel)].connected

    def link_generation(self, channel: str) -> int:
        """Bumped each time ``channel`` goes away, so an adapter can tell a returned port from the old one."""
        with self.changed:
            self._sync()
            return self._channels[self._known(channel)].generation

    def in_waiting(self, channel: str) -> int:
        with self.changed:
            self._sync()
            chan = self._channels[self._known(channel)]
            return len(chan.ready) if chan.connected else 0

    def discard_output(self, channel: str) -> None:
        """Forget output that is ready now (a host flushing its input buffer)."""
        with self.changed:
            self._sync()
            self._channels[self._known(channel)].ready.clear()

    # ------------------------------------------------------------------------------- hardware-level actions

    def reboot(self, drop_ports: bool = True) -> None:
        """An unexpected reset, now: GNSS off, ports away for ``BOOT_S`` unless ``drop_ports``
        is False, then boot URCs."""
        with self.changed:
            self._sync()
            if self._powered:
                self._reset(drop_ports)
            self.changed.notify_all()

    def unplug(self, channel: str | None = None) -> None:
        """The USB device (or one interface of it) vanishes; the module keeps running."""
        with self.changed:
            self._sync()
            for chan in self._selected(channel):
                chan.unplugged = True
            self._update_links()
            self.changed.notify_all()

    def replug(self, channel: str | None = None) -> None:
        with self.changed:
            self._sync()
            for chan in self._selected(channel):
                chan.unplugged = False
            self._update_links()
            self.changed.notify_all()

    def power_on(self) -> None:
        """Power comes back after QPOWD: the module boots as after a reset."""
        with self.changed:
            self._sync()
            if not self._powered:
                self._powered = True
                self._reset(drop_ports=True)
            self.changed.notify_all()

    # ------------------------------------------------------------------------------------------ inspection

    @property
    def state(self) -> SimState:
        with self.changed:
            self._sync()
            return SimState(
                gnss_on=self._gnss_on,
                cfg=dict(self._nv),
                echo={name: self._channels[name].echo for name in AT_CHANNELS},
                cmee=self._cmee,
                cfun=self._cfun,
                powered=self._powered,
                booted=self._booted,
                registered=self._registered,
                connected={name: chan.connected for name, chan in self._channels.items()},
                xtra=self._xtra,
                creg_mode=self._creg_n,
                cereg_mode=self._cereg_n,
            )

    def true_position(self) -> Fix:
        """Where the simulated device really is now (whether or not GNSS is on)."""
        with self.changed:
            self._sync()
            wall = self._now + self._wall_offset
            point = self._track.at(wall)
            return Fix(
                source="SIM",
                valid=True,
                time=nmea_out.utc(wall),
                lat=point.lat,
                lon=point.lon,
                altitude_m=point.altitude_m,
                hdop=point.hdop,
                satellites=point.satellites,
                speed_kmh=point.speed_kmh,
                course_deg=point.course_deg,
                fix_quality=3,
            )

    # -------------------------------------------------------------------------------------------------- time

    def _sync(self) -> None:
        """Bring the module up to the clock: due events and NMEA bursts, in time order.

        While one is handled, ``_now`` is its due time, so that what it schedules is timed from when it
        happened, not from when somebody looked.
        """
        target = max(self._now, self._clock.monotonic())
        self._wall_offset = self._clock.wall() - self._clock.monotonic()
        self._target = target
        while True:
            event_due = self._events[0][0] if self._events else None
            burst_due = self._next_burst if self._gnss_on else None
            event_first = burst_due is None or (event_due is not None and event_due <= burst_due)
            if event_due is not None and event_due <= target and event_first:
                _, _, kind, epoch = heapq.heappop(self._events)
                if epoch == self._epoch:
                    self._now = max(self._now, event_due)
                    self._handle_event(kind)
            elif burst_due is not None and burst_due <= target:
                self._now = max(self._now, burst_due)
                self._emit_burst(burst_due)
            else:
                break
        self._now = target
        for chan in self._channels.values():
            while chan.queue and self._release_time(chan.queue[0][0]) <= self._now:
                chan.ready += heapq.heappop(chan.queue)[2]
            if len(chan.ready) > MAX_BUFFER:
                del chan.ready[: len(chan.ready) - MAX_BUFFER]

    def _release_time(self, due: float) -> float:
        period = self.faults.coalesce_s
        if period <= 0:
            return due
        return -(-due // period) * period  # rounded up to the next multiple: several outputs leave together

    def _schedule(self, delay_s: float, kind: str) -> None:
        self._seq += 1
        heapq.heappush(self._events, (self._now + delay_s, self._seq, kind, self._epoch))

    def _handle_event(self, kind: str) -> None:
        if kind == "reset":
            self._reset(drop_ports=True)
        elif kind == "boot":
            self._boot_done()
        elif kind == "boot_urcs":
            self._boot_urcs()
        elif kind == "register":
            self._register()
        elif kind == "powered_down_urc":
            self._urc("POWERED DOWN")
        elif kind == "power_off":
            self._power_off()

    def _wall(self, monotonic: float) -> float:
        return monotonic + self._wall_offset

    # ----------------------------------------------------------------------------------------------- output

    def _emit(self, channel: str, data: bytes, delay_s: float = 0.0) -> None:
        chan = self._channels[channel]
        if not chan.connected:
            return  # nobody can receive it: the interface is gone
        self._seq += 1
        heapq.heappush(chan.queue, (self._now + delay_s, self._seq, data))

    def _urc(self, text: str) -> None:
        # URCs go to both AT interfaces, as with urcport "all" seen on an EG25-G (transcript 4.1).
        for channel in AT_CHANNELS:
            self._emit(channel, b"\r\n" + text.encode() + b"\r\n")
        self._sync_ready()

    def _sync_ready(self) -> None:
        for chan in self._channels.values():
            while chan.queue and self._release_time(chan.queue[0][0]) <= self._now:
                chan.ready += heapq.heappop(chan.queue)[2]

    def _garbage(self) -> bytes:
        # High bytes only: line noise that breaks no CR/LF framing by itself, so results stay predictable.
        return bytes(self._noise.randrange(0x80, 0x100) for _ in range(self._noise.randint(1, 8)))

    # ------------------------------------------------------------------------------------------- life cycle

    def _selected(self, channel: str | None) -> list[_Channel]:
        if channel is None:
            return list(self._channels.values())
        return [self._channels[self._known(channel)]]

    def _update_links(self) -> None:
        for chan in self._channels.values():
            up = self._powered and not self._ports_down and not chan.unplugged
            if chan.connected and not up:
                chan.generation += 1
                chan.inbuf.clear()
                chan.queue.clear()
                chan.ready.clear()
            chan.connected = up

    def _reset(self, drop_ports: bool) -> None:
        self._epoch += 1
        self._events.clear()
        self._remember_fix()
        self._booted = False
        self._gnss_on = False
        self._next_burst = None
        self._registered = False
        for chan in self._channels.values():
            chan.inbuf.clear()
            chan.queue.clear()
            chan.ready.clear()
        self._ports_down = drop_ports
        self._update_links()
        self._schedule(BOOT_S, "boot")

    def _boot_done(self) -> None:
        self._booted = True
        self._ports_down = False
        self._update_links()
        self._cfun, self._cmee, self._creg_n, self._cereg_n = 1, 1, 0, 0
        for channel in AT_CHANNELS:
            self._channels[channel].echo = True
        if self._nv["autogps"] == 1:
            self._gnss_start()
        self._schedule(BOOT_URC_DELAY_S, "boot_urcs")

    def _boot_urcs(self) -> None:
        for urc in BOOT_URCS:
            self._urc(urc)
        self._schedule(REGISTER_S, "register")

    def _power_off(self) -> None:
        self._remember_fix()
        self._epoch += 1
        self._events.clear()
        self._powered = False
        self._booted = False
        self._gnss_on = False
        self._next_burst = None
        self._registered = False
        self._update_links()

    def _register(self) -> None:
        if self._cfun != 1 or self._registered:
            return
        self._registered = True
        self._registration_urcs()

    def _registration_urcs(self) -> None:
        stat = 1 if self._registered else 0
        ident = self.identity
        if self._creg_n:
            self._urc(
                f'+CREG: {stat},"{ident.lac}","{ident.cell_id}",7'
                if self._creg_n == 2 and stat
                else f"+CREG: {stat}"
            )
        if self._cereg_n:
            self._urc(
                f'+CEREG: {stat},"{ident.tac}","{ident.cell_id}",7'
                if self._cereg_n == 2 and stat
                else f"+CEREG: {stat}"
            )

    # ------------------------------------------------------------------------------------------------- GNSS

    def _gnss_start(self) -> None:
        self._gnss_on = True
        self._gnss_on_at = self._now
        self._next_burst = self._next_boundary()

    def _gnss_stop(self) -> None:
        self._remember_fix()
        self._gnss_on = False
        self._next_burst = None

    def _next_boundary(self) -> float:
        """The next monotonic time at which the UTC clock is on a whole burst period (bursts print .00)."""
        interval = self._burst_interval()
        wall = self._wall(self._now)
        boundary = (math.floor(wall / interval + 1e-9) + 1) * interval
        return self._now + (boundary - wall)

    def _burst_interval(self) -> float:
        return 1.0 / float(self._nv["fixfreq"])

    def _has_fix(self, when: float) -> bool:
        return self._gnss_on and when >= self._gnss_on_at + self.ttff_s

    def _remember_fix(self) -> None:
        if self._has_fix(self._now):
            wall = self._wall(self._now)
            self._last_fix = (self._track.at(wall), wall)

    def _nmea_active(self) -> bool:
        return self._gnss_on and self._nv["outport"] == "usbnmea"

    def _emit_burst(self, when: float) -> None:
        interval = self._burst_interval()
        # Snap to the UTC period grid so that repeated float additions never drift past a boundary.
        self._next_burst = round(self._wall(when + interval) / interval) * interval - self._wall_offset
        if self._target - when > MAX_CATCH_UP_S:  # a long pause: jump ahead, not hours of NMEA
            skipped = int((self._target - when - MAX_CATCH_UP_S) / interval)
            self._next_burst = when + (skipped + 1) * interval
            return
        if not self._nmea_active():
            return
        wall = self._wall(when)
        point = self._track.at(wall) if self._has_fix(when) else None
        sky_seen = when >= self._gnss_on_at + self.ttff_s / 2
        mask = int(self._nv["gpsnmeatype"])
        for sentence in nmea_out.burst(point, wall, self._sky, mask, sky_seen):
            data = sentence.encode() + b"\r\n"
            if self.faults.garbage_nmea and self._noise.random() < self.faults.garbage_nmea:
                data = self._garbage() + data
            self._emit_at(when, "nmea", data)

    def _emit_at(self, when: float, channel: str, data: bytes) -> None:
        chan = self._channels[channel]
        if chan.connected:
            self._seq += 1
            heapq.heappush(chan.queue, (when, self._seq, data))

    def _current_fix(self) -> tuple[TrackPoint, float]:
        """The fix QGPSLOC reports now, or CommandFailed: 505 off, 516 not yet (stale with the fault)."""
        if not self._gnss_on:
            raise CommandFailed(505)
        if self._has_fix(self._now):
            wall = float(math.floor(self._wall(self._now)))  # the fix of the last whole second
            return self._track.at(wall), wall
        if self.faults.stale_fix:
            if self._last_fix is not None:
                return self._last_fix
            old_wall = self._wall(self._now) - 3 * 86400  # from a previous life: three days old
            return self._track.at(old_wall), old_wall
        raise CommandFailed(516)

    # ------------------------------------------------------------------------------------------- input side

    def _known(self, channel: str) -> str:
        if channel not in self._channels:
            raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
        return channel

    def _connected(self, channel: str) -> _Channel:
        chan = self._channels[self._known(channel)]
        if not chan.connected:
            raise PortUnavailable("simulated port is not connected", channel=channel)
        return chan

    def _feed(self, chan: _Channel, byte: int) -> None:
        if byte == 0x0A and chan.after_cr:  # the LF after a CR is ignored (S4 is only for output)
            chan.after_cr = False
            return
        chan.after_cr = byte == 0x0D
        if byte == 0x0D:
            line = bytes(chan.inbuf)
            chan.inbuf.clear()
            self._line(chan, line)
        elif len(chan.inbuf) < MAX_LINE:
            chan.inbuf.append(byte)
        else:
            chan.inbuf.clear()  # an endless line: the module's buffer overflows and the line is lost

    def _line(self, chan: _Channel, raw: bytes) -> None:
        if chan.echo:
            self._emit(chan.name, raw + b"\r")
        text = raw.decode("latin-1").strip()
        if not text:
            self._sync_ready()
            return
        self.commands.append((chan.name, text))
        self._respond(chan, text)
        self._sync_ready()

    def _respond(self, chan: _Channel, text: str) -> None:
        commands = parse_line(text)
        lines: list[str] = []
        final = "OK"
        drop = delay = urc = replaced = None
        if commands is None:
            final = "ERROR"
        else:
            for command in commands:
                drop = drop or self.faults.take("drop", command.name, command.text)
                delay = delay or self.faults.take("delay", command.name, command.text)
                urc = urc or self.faults.take("urc", command.name, command.text)
                replaced = replaced or self.faults.take("final", command.name, command.text)
            try:
                for command in commands:
                    lines += self._execute(chan.name, command)
            except CommandFailed as failure:
                final = self._error_text(failure.code)
            if self.faults.shuffle_lines and len(commands) > 1:
                self._noise.shuffle(lines)
        if drop is not None:
            return
        if replaced is not None:
            final = str(replaced.value)
        body = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines)
        if urc is not None:
            body += b"\r\n" + str(urc.value).encode() + b"\r\n"
        if final:
            body += b"\r\n" + final.encode() + b"\r\n"
        if self.faults.garbage_at and self._noise.random() < self.faults.garbage_at:
            body = self._garbage() + body
        self._emit(chan.name, body, float(delay.value or 0.0) if delay is not None else 0.0)

    def _execute(self, channel: str, command: Command) -> list[str]:
        busy = self.faults.take("busy", command.name, command.text)
        if busy is not None:
            raise CommandFailed(int(busy.value or 0))
        handler = self._table.get(command.name)
        if handler is None:
            raise CommandFailed(None)
        return handler(channel, command)

    def _error_text(self, code: int | None) -> str:
        if code is None or self._cmee == 0:
            return "ERROR"
        if self._cmee == 2 and code in CME_TEXT:
            return f"+CME ERROR: {CME_TEXT[code]}"
        return f"+CME ERROR: {code}"

    # --------------------------------------------------------------------------------------- command table

    def _command_table(self) -> dict[str, Handler]:
        return {
            "": self._cmd_ok,
            "Z": self._cmd_ok,
            "&W": self._cmd_ok,
            "&F": self._cmd_ok,
            "V": self._cmd_v,
            "E": self._cmd_echo,
            "I": self._cmd_ati,
            "+CMEE": self._cmd_cmee,
            "+GMI": self._cmd_manufacturer,
            "+CGMI": self._cmd_manufacturer,
            "+GMM": self._cmd_model,
            "+CGMM": self._cmd_model,
            "+GMR": self._cmd_revision,
            "+CGMR": self._cmd_revision,
            "+QGMR": self._cmd_firmware,
            "+GSN": self._cmd_imei,
            "+CGSN": self._cmd_imei,
            "+CIMI": self._cmd_imsi,
            "+QCCID": self._cmd_iccid,
            "+CNUM": self._cmd_cnum,
            "+CPIN": self._cmd_cpin,
            "+CSQ": self._cmd_csq,
            "+CREG": self._cmd_creg,
            "+CEREG": self._cmd_cereg,
            "+QENG": self._cmd_qeng,
            "+CFUN": self._cmd_cfun,
            "+QPOWD": self._cmd_qpowd,
            "+QGPS": self._cmd_qgps,
            "+QGPSEND": self._cmd_qgpsend,
            "+QGPSLOC": self._cmd_qgpsloc,
            "+QGPSGNMEA": self._cmd_qgpsgnmea,
            "+QGPSCFG": self._cmd_qgpscfg,
            "+QGPSXTRA": self._cmd_qgpsxtra,
            "+QGPSDEL": self._cmd_qgpsdel,
        }

    # Basic commands and identity ------------------------------------------------------------------------

    def _cmd_ok(self, channel: str, command: Command) -> list[str]:
        return []

    def _cmd_v(self, channel: str, command: Command) -> list[str]:
        if command.args not in ((), ("1",)):  # numeric result codes (V0) are not simulated
            raise CommandFailed(None)
        return []

    def _cmd_echo(self, channel: str, command: Command) -> list[str]:
        value = _int_arg(command.args, 0, range(0, 2), error=None) if command.args else 0
        self._channels[channel].echo = value == 1
        return []

    def _cmd_ati(self, channel: str, command: Command) -> list[str]:
        return ["Quectel", self.profile.name, f"Revision: {self.profile.revision}"]

    def _cmd_cmee(self, channel: str, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+CMEE: {self._cmee}"]
        if command.form == "test":
            return ["+CMEE: (0-2)"]
        self._cmee = _int_arg(command.args, 0, range(0, 3), error=None)
        return []

    def _cmd_manufacturer(self, channel: str, command: Command) -> list[str]:
        return ["Quectel"]

    def _cmd_model(self, channel: str, command: Command) -> list[str]:
        return [self.profile.name]

    def _cmd_revision(self, channel: str, command: Command) -> list[str]:
        return [self.profile.revision]

    def _cmd_firmware(self, channel: str, command: Command) -> list[str]:
        return [self.profile.firmware]  # ModemManager sends AT+QGMR?; both forms answer the same

    def _cmd_imei(self, channel: str, command: Command) -> list[str]:
        if command.form == "set" and command.args == ("1",):
            return [f"+CGSN: {self.identity.imei}"]
        return [self.identity.imei]

    def _cmd_imsi(self, channel: str, command: Command) -> list[str]:
        return [self.identity.imsi]

    def _cmd_iccid(self, channel: str, command: Command) -> list[str]:
        return [f"+QCCID: {self.identity.iccid}"]

    def _cmd_cnum(self, channel: str, command: Command) -> list[str]:
        return [f'+CNUM: ,"{self.identity.msisdn}",145']

    def _cmd_cpin(self, channel: str, command: Command) -> list[str]:
        return ["+CPIN: READY"]

    def _cmd_csq(self, channel: str, command: Command) -> list[str]:
        return ["+CSQ: 24,99" if self._registered else "+CSQ: 99,99"]

    # Network ------------------------------------------------------------------------------------------------

    def _cmd_creg(self, channel: str, command: Command) -> list[str]:
        return self._registration_command(command, "+CREG", self.identity.lac)

    def _cmd_cereg(self, channel: str, command: Command) -> list[str]:
        return self._registration_command(command, "+CEREG", self.identity.tac)

    def _registration_command(self, command: Command, prefix: str, area: str) -> list[str]:
        if command.form == "test":
            return [f"{prefix}: (0-2)"]
        if command.form == "set":
            value = _int_arg(command.args, 0, range(0, 3), error=50)
            if prefix == "+CREG":
                self._creg_n = value
            else:
                self._cereg_n = value
            return []
        if command.form != "read":
            raise CommandFailed(None)
        n = self._creg_n if prefix == "+CREG" else self._cereg_n
        stat = 1 if self._registered else (2 if self._cfun == 1 else 0)
        if n == 2 and stat == 1:
            return [f'{prefix}: 2,{stat},"{area}","{self.identity.cell_id}",7']
        return [f"{prefix}: {n},{stat}"]

    def _cmd_qeng(self, channel: str, command: Command) -> list[str]:
        if command.form == "test":
            return ['+QENG: ("servingcell","neighbourcell")']
        if command.form != "set" or command.args[0].lower() not in ("servingcell", "neighbourcell"):
            raise CommandFailed(50)
        if command.args[0].lower() == "neighbourcell":
            return []  # no neighbours are simulated
        if not self._registered:
            return ['+QENG: "servingcell","SEARCH"']
        ident, place = self.identity, self.place
        # The EC25 long form: ...,rsrp,rsrq,rssi,sinr,cqi,tx_power,srxlev (reference 3, second example).
        return [
            f'+QENG: "servingcell","NOCONN","LTE","FDD",{place.mcc},{place.mnc},{ident.cell_id},{ident.pcid},'
            f"{ident.earfcn},7,5,5,{ident.tac},-91,-8,-63,21,0,-,32"
        ]

    def _cmd_cfun(self, channel: str, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+CFUN: {self._cfun}"]
        if command.form == "test":
            return ["+CFUN: (0,1,4),(0-1)"]
        if command.form != "set" or len(command.args) > 2:
            raise CommandFailed(50)
        fun = _int_arg(command.args, 0, (0, 1, 4), error=50)
        reset = _int_arg(command.args, 1, range(0, 2), error=50) if len(command.args) > 1 else 0
        if reset:
            self._schedule(RESET_AFTER_S, "reset")
            return []
        self._set_cfun(fun)
        return []

    def _set_cfun(self, fun: int) -> None:
        self._cfun = fun
        if fun == 1 and not self._registered:
            self._schedule(REGISTER_S, "register")
        elif fun != 1 and self._registered:
            self._registered = False
            self._registration_urcs()

    def _cmd_qpowd(self, channel: str, command: Command) -> list[str]:
        mode = _int_arg(command.args, 0, range(0, 2), error=50) if command.args else 1
        # QPOWD=0 is the immediate variant: no grace between the URC and the power going.
        self._schedule(POWER_DOWN_URC_S if mode else 0.0, "powered_down_urc")
        self._schedule(POWER_OFF_S if mode else POWER_OFF_S - POWER_DOWN_URC_S, "power_off")
        return []

    # GNSS ---------------------------------------------------------------------------------------------------

    def _cmd_qgps(self, channel: str, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+QGPS: {int(self._gnss_on)}"]
        if command.form == "test":
            return ["+QGPS: (1-4),(1-255),(1-1000),(0-1000),(1-65535)"]
        if command.form != "set":
            raise CommandFailed(None)
        _check_qgps_args(command.args)
        if self._gnss_on:
            raise CommandFailed(504)
        self._gnss_start()
        return []

    def _cmd_qgpsend(self, channel: str, command: Command) -> list[str]:
        if command.form != "exec":
            raise CommandFailed(None)
        if not self._gnss_on:
            raise CommandFailed(505)
        self._gnss_stop()
        return []

    def _cmd_qgpsloc(self, channel: str, command: Command) -> list[str]:
        if command.form == "test":
            return [f"+QGPSLOC: {nmea_out.QGPSLOC_TEMPLATE}"]
        mode = _int_arg(command.args, 0, range(0, 3), error=501) if command.form == "set" else 0
        point, wall = self._current_fix()
        if self.faults.hdop_outlier and self._noise.random() < self.faults.hdop_outlier:
            point = dataclasses.replace(point, hdop=500.0)
        return [f"+QGPSLOC: {nmea_out.qgpsloc_payload(point, wall, mode)}"]

    def _cmd_qgpsgnmea(self, channel: str, command: Command) -> list[str]:
        if command.form == "test":
            return ['+QGPSGNMEA: ("GGA","RMC","GSV","GSA","VTG")']
        if command.form != "set" or len(command.args) != 1 or command.args[0].upper() not in _GNMEA_TYPES:
            raise CommandFailed(501)
        if not self._gnss_on:
            raise CommandFailed(505)
        if self._nv["nmeasrc"] != 1:
            raise CommandFailed(507)
        wall = self._wall(self._now)
        point = self._track.at(wall) if self._has_fix(self._now) else None
        return [
            f"+QGPSGNMEA: {sentence}"
            for sentence in nmea_out.single_sentence(command.args[0].upper(), point, wall, self._sky)
        ]

    def _cmd_qgpscfg(self, channel: str, command: Command) -> list[str]:
        if command.form == "test":
            return [f'+QGPSCFG: "{key}",{_describe(values)}' for key, values in CFG_VALUES.items()]
        if command.form == "read":
            # An EC25-AUT answered the bare read form with 505 while GNSS was off (transcript 4.4).
            raise CommandFailed(501 if self._gnss_on else 505)
        if command.form != "set":
            raise CommandFailed(501)
        key = command.args[0].lower()
        if key not in CFG_VALUES or len(command.args) > 2:
            raise CommandFailed(501)
        if len(command.args) == 2:
            self._nv[key] = _cfg_value(key, command.args[1])
            self._after_cfg_change(key)
            return []
        value = self._nv[key]
        return [f'+QGPSCFG: "{key}",' + (f'"{value}"' if isinstance(value, str) else str(value))]

    def _after_cfg_change(self, key: str) -> None:
        if key == "fixfreq" and self._gnss_on:
            self._next_burst = self._next_boundary()

    def _cmd_qgpsxtra(self, channel: str, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+QGPSXTRA: {self._xtra}"]
        if command.form == "test":
            return ["+QGPSXTRA: (0,1)"]
        self._xtra = _int_arg(command.args, 0, range(0, 2), error=501)
        return []

    def _cmd_qgpsdel(self, channel: str, command: Command) -> list[str]:
        if command.form == "test":
            return ["+QGPSDEL: (0-3)"]
        _int_arg(command.args, 0, range(0, 4), error=501)
        if self._gnss_on:
            raise CommandFailed(504)  # assistance data can only be deleted with the engine off
        self._last_fix = None
        return []


_GNMEA_TYPES = ("GGA", "RMC", "GSV", "GSA", "VTG")
_QGPS_RANGES = (range(1, 5), range(1, 256), range(0, 1001), range(0, 1001), range(1, 65536))


def _int_arg(
    args: tuple[str, ...], index: int, allowed: range | tuple[int, ...], *, error: int | None
) -> int:
    """Argument ``index`` as an int within ``allowed``, or CommandFailed(error)."""
    if index >= len(args) or not _is_number(args[index]):
        raise CommandFailed(error)
    value = int(args[index])
    if value not in allowed:
        raise CommandFailed(error)
    return value


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _check_qgps_args(args: tuple[str, ...]) -> None:
    if not args or len(args) > len(_QGPS_RANGES):
        raise CommandFailed(501)
    for index, allowed in enumerate(_QGPS_RANGES[: len(args)]):
        _int_arg(args, index, allowed, error=501)
    if args[0] != "1":
        raise CommandFailed(502)  # only stand-alone mode is supported on most firmwares (reference 1.2)


def _cfg_value(key: str, raw: str) -> str | int:
    allowed = CFG_VALUES[key]
    if isinstance(allowed, tuple) and allowed and isinstance(allowed[0], str):
        if raw.lower() not in allowed:
            raise CommandFailed(501)
        return raw.lower()
    if not _is_number(raw) or int(raw) not in allowed:
        raise CommandFailed(501)
    return int(raw)


def _describe(values: CfgValues) -> str:
    if isinstance(values, range):
        return (
            f"({values.start}-{values.stop - 1})"
            if len(values) > 2
            else f"({values.start},{values.stop - 1})"
        )
    return "(" + ",".join(f'"{value}"' if isinstance(value, str) else str(value) for value in values) + ")"
