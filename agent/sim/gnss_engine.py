"""The simulated GNSS engine: on and off, time to first fix, the NMEA bursts and the fix QGPSLOC reports.

Its settings live in ``_nv``, the module's non-volatile ``AT+QGPSCFG`` store, which survives a reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.sim import nmea_out
from agent.sim.buffers import ModemBuffers
from agent.sim.identity import Satellite, Track, TrackPoint
from agent.sim.results import CommandFailed

MAX_CATCH_UP_S = 30.0  # bursts older than this are not generated after a long pause



@dataclass(frozen=True, slots=True)
class Text:
    """A quoted string field of a multi-value key, shown as ``<name>`` in the test form; at most ``max_len``
    characters, the empty string included (``lbsapn``'s ``""``: no APN)."""

    name: str
    max_len: int


@dataclass(frozen=True, slots=True)
class MultiValue:
    """A key set with several values at once (``"agnssprotocol",<a>,<b>``): every field is given, or none (a
    read), never some of them; read back and kept as a tuple."""

    fields: tuple[range | Text, ...]


# QGPSCFG keys: allowed values (the EG25-G ``AT+QGPSCFG=?`` capture) and factory defaults (reference 1.6).
CfgValues = tuple[str, ...] | tuple[int, ...] | range | MultiValue
CfgValue = str | int | tuple[str | int, ...]  # one key's setting; a tuple for a MultiValue key
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
CFG_DEFAULTS: dict[str, CfgValue] = {
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


class GnssEngine(ModemBuffers):
    """GNSS state on top of the buffers; :class:`agent.sim.power.PowerAndBoot` starts and stops it."""

    ttff_s: float
    _sky: tuple[Satellite, ...]
    _track: Track
    _nv: dict[str, CfgValue]
    _cfg_values: dict[str, CfgValues]  # the QGPSCFG keys this model knows, and their allowed values
    _gnss_on: bool
    _gnss_on_at: float
    _next_burst: float | None
    _last_fix: tuple[TrackPoint, float] | None
    _xtra: int  # AT+QGPSXTRA: assistance downloads enabled
    _xtra_active: int  # the XTRA setting this boot started with: a change waits for the next restart
    _xtra_injected_at: float | None  # wall time of the last AT+QGPSXTRADATA injection, None before any
    _suplurl: str  # AT+QGPSSUPLURL: the SUPL server, "NULL" for none
    _emergency_until: float | None  # an emergency (E911) session owns the engine until then
    _qgps_zero_off: bool  # AT+QGPS=0 turns GNSS off, as on the ASR family (reference 1.2)

    def _init_gnss(
        self,
        ttff_s: float,
        sky: tuple[Satellite, ...],
        track: Track,
        cfg_values: dict[str, CfgValues] | None = None,
        cfg_defaults: dict[str, CfgValue] | None = None,
        *,
        qgps_zero_off: bool = False,
    ) -> None:
        self.ttff_s = ttff_s
        self._sky = sky
        self._track = track
        self._cfg_values = dict(CFG_VALUES if cfg_values is None else cfg_values)
        self._nv = dict(CFG_DEFAULTS if cfg_defaults is None else cfg_defaults)
        self._gnss_on = False
        self._gnss_on_at = 0.0
        self._next_burst = None
        self._last_fix = None
        self._xtra = 0
        self._xtra_active = 0
        self._xtra_injected_at = None
        self._suplurl = "NULL"
        self._emergency_until = None
        self._qgps_zero_off = qgps_zero_off

    # ---------------------------------------------------------------------------- the buffers' periodic hooks

    def _next_periodic(self) -> float | None:
        return self._next_burst if self._gnss_on else None

    def _periodic_due(self, channel: str) -> float | None:
        if channel == "nmea" and self._nmea_active() and self._next_burst is not None:
            return self._next_burst
        return None

    def _emit_periodic(self, when: float) -> None:
        self._emit_burst(when)

    # ------------------------------------------------------------------------------------------------ engine

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
        return 1.0 / float(self._cfg_int("fixfreq"))

    def _cfg_int(self, key: str) -> int:
        """A single-value numeric key; a tuple here would be a profile defect, not a host's mistake."""
        value = self._nv[key]
        if not isinstance(value, int):
            raise TypeError(f"QGPSCFG key {key!r} holds {value!r}, not an integer")
        return value

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
        mask = self._cfg_int("gpsnmeatype")
        for sentence in nmea_out.burst(point, wall, self._sky, mask, sky_seen):
            data = sentence.encode() + b"\r\n"
            if self.faults.garbage_nmea and self._noise.random() < self.faults.garbage_nmea:
                data = self._garbage() + data
            self._emit_at(when, "nmea", data)

    def _emergency_active(self) -> bool:
        return self._emergency_until is not None and self._now < self._emergency_until

    def _emergency_start(self, duration_s: float) -> None:
        """The network runs an emergency positioning session: the engine is on and the host cannot stop it."""
        if not self._gnss_on:
            self._gnss_start()
        self._emergency_until = self._now + duration_s

    def _emergency_end(self) -> None:
        if self._emergency_until is not None and self._now >= self._emergency_until:
            self._emergency_until = None
            self._gnss_stop()

    def _current_fix(self) -> tuple[TrackPoint, float]:
        """The fix QGPSLOC reports now, or CommandFailed: 505 off, 516 not yet (stale with the fault)."""
        if not self._gnss_on:
            raise CommandFailed(505)
        if self._emergency_active():
            raise CommandFailed(515)  # the session is the emergency's, not the host's
        if self._has_fix(self._now):
            wall = float(math.floor(self._wall(self._now)))  # the fix of the last whole second
            return self._track.at(wall), wall
        if self.faults.stale_fix:
            if self._last_fix is not None:
                return self._last_fix
            old_wall = self._wall(self._now) - 3 * 86400  # from a previous life: three days old
            return self._track.at(old_wall), old_wall
        raise CommandFailed(516)
