"""The simulated Quectel module: the modem's side of the wire, pure and deterministic.

Bytes go in with :meth:`SimModem.write` and come out with :meth:`SimModem.read`; time only moves when the
injected clock says so, and every "random" choice comes from the seed, so the same seed, clock and
input give the same bytes. There are three channels, as on an EC25's USB interface: ``at`` (ttyUSB2),
``at2`` (ttyUSB3, another program's AT port) and ``nmea`` (ttyUSB1, output only).

The object holds a re-entrant lock and a condition (``changed``) so that adapters with threads (the ``sim://``
handler, the pty server, a test poking the modem) can share it; it starts no thread and does no I/O itself.

It is built in layers, one module each: :mod:`agent.sim.buffers` (ports and the event clock),
:mod:`agent.sim.gnss_engine` (GNSS), :mod:`agent.sim.power` (resets and boot), :mod:`agent.sim.lookups` (Wi-Fi
scans and cell lookups) and the command table of :mod:`agent.sim.handlers`. This module joins them and answers
command lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.model import Clock, Fix, SystemClock
from agent.sim import nmea_out
from agent.sim.buffers import AT_CHANNELS, CHANNELS, MAX_BUFFER, MAX_LINE, Channel
from agent.sim.clock import DEFAULT_WALL_START
from agent.sim.gnss_engine import CFG_DEFAULTS, CFG_VALUES, MAX_CATCH_UP_S, CfgValue
from agent.sim.handlers import Handler, command_table
from agent.sim.identity import PLACES, make_access_points, make_identity, make_sky, make_track, model_profile
from agent.sim.lookups import Lookups
from agent.sim.parser import Command, parse_line
from agent.sim.power import (
    BOOT_S,
    BOOT_URC_DELAY_S,
    BOOT_URCS,
    POWER_DOWN_URC_S,
    POWER_OFF_S,
    REGISTER_S,
    RESET_AFTER_S,
)
from agent.sim.profiles import sim_profile
from agent.sim.results import CME_TEXT, CommandFailed, error_text

__all__ = [
    "AT_CHANNELS",
    "BOOT_S",
    "BOOT_URCS",
    "BOOT_URC_DELAY_S",
    "CFG_DEFAULTS",
    "CFG_VALUES",
    "CHANNELS",
    "CME_TEXT",
    "MAX_BUFFER",
    "MAX_CATCH_UP_S",
    "MAX_LINE",
    "POWER_DOWN_URC_S",
    "POWER_OFF_S",
    "REGISTER_S",
    "RESET_AFTER_S",
    "CommandFailed",
    "SimModem",
    "SimState",
]

_WIFI_STREAM = 0xA11CE5  # mixed into the seed for the access points around the device


@dataclass(frozen=True, slots=True)
class SimState:
    """A snapshot of what the hardware really is, for tests and the demo."""

    gnss_on: bool
    cfg: dict[str, CfgValue]  # a multi-value key (agnssprotocol, lbsapn) as a tuple: (3, 1287)
    echo: dict[str, bool]
    cmee: int
    cfun: int
    powered: bool
    booted: bool
    registered: bool
    connected: dict[str, bool]
    xtra: int
    urc_port: str = "all"  # AT+QURCCFG="urcport": where URCs go
    xtra_active: int = 0  # the XTRA setting the module booted with (a change applies at the next restart)
    xtra_injected: bool = False  # XTRA data was injected (AT+QGPSXTRADATA accepted) in this module's life
    creg_mode: int = 0  # AT+CREG=n: 2 makes registration URCs carry LAC and cell ID
    cereg_mode: int = 0
    cgreg_mode: int = 0
    supl_url: str = "NULL"
    emergency: bool = False  # an emergency positioning session owns the GNSS engine
    wifi_scans: int = 0  # AT+QWIFISCAN requests accepted since the simulator started (resets included)
    agps: int = 0  # AT+QAGPS (ASR models; 0 where the command is missing)
    lbs_lookups: int = 0  # AT+QLBS requests accepted since the simulator started


class SimModem(Lookups):
    """A simulated Quectel module (EC25, EG25-G, BG96, BG95, RM500Q, EC200U); see the module docstring and
    ``docs/architecture.md``."""

    def __init__(
        self, model: str = "ec25", seed: int = 0, ttff_s: float = 5.0, clock: Clock | None = None
    ) -> None:
        if not 0 <= ttff_s < float("inf"):  # also refuses NaN, which would make every comparison false
            raise ValueError("ttff_s must be a finite number of seconds, not negative")
        self.profile = model_profile(model)
        self.seed = seed
        rng = random.Random(seed)
        self.place = PLACES[seed % len(PLACES)]
        self.identity = make_identity(self.profile, self.place, rng)
        sky = make_sky(rng)
        track = make_track(self.place, rng, DEFAULT_WALL_START)
        self._init_buffers(clock if clock is not None else SystemClock(), seed)
        self.sim_profile = sim_profile(model)
        self._init_gnss(float(ttff_s), sky, track, self.sim_profile.cfg_values, self.sim_profile.cfg_defaults,
                        qgps_zero_off=self.sim_profile.qgps_zero_off)
        self._init_power()
        # Their own stream, so that adding them changed no other seed-derived value.
        self._init_lookups(make_access_points(random.Random(seed ^ _WIFI_STREAM)), self.sim_profile.agps_default)
        self._table: dict[str, Handler] = {
            name: handler for name, handler in command_table().items() if name not in self.sim_profile.missing
        }

    @property
    def supported_commands(self) -> tuple[str, ...]:
        """Names of the commands the module answers (``+QGPS``, ``E``, ...); anything else gives ERROR."""
        return tuple(sorted(self._table))

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
                urc_port=self._urc_port,
                xtra_active=self._xtra_active,
                xtra_injected=self._xtra_injected_at is not None,
                creg_mode=self._creg_n,
                cereg_mode=self._cereg_n,
                cgreg_mode=self._cgreg_n,
                supl_url=self._suplurl,
                emergency=self._emergency_active(),
                wifi_scans=self._wifi_scans,
                agps=self._agps,
                lbs_lookups=self._lbs_lookups,
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

    # --------------------------------------------------------------------------------------- command lines

    def _respond(self, chan: Channel, text: str) -> None:
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
                final = error_text(failure.code, self._cmee)
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
        return handler(self, channel, command)
