"""Make the modem's real state match the user's switch, and prove it.

Strategy: every reconcile first closes the gate when the switch is off (nothing location-bearing passes while the
hardware is being checked), then drives the modem with the fewest commands that both repair and reveal its state,
then reads the state back. Only a read-back counts: ``enforced`` is true when ``AT+QGPS?`` and ``autogps`` say what
the switch says, never because a command returned OK. Anything observed that differs from what was last verified,
outside a change the user asked for, is drift: it is repaired and reported as an incident.

Off: ``AT+QGPSEND`` (505 = already off), ``autogps`` read and forced to 0 (else GNSS restarts at the next boot),
``outport`` read and set to "none" (NMEA stops at the source, whichever port it was routed to: usbnmea, uartnmea,
auxnmea, cmux*), then every other location path (:mod:`agent.location_paths`): registration URCs downgraded so they
no longer carry cell IDs (``+CREG``/``+CEREG``/``+CGREG`` n=2 -> 1), assistance downloads off (XTRA, or QAGPS on
ASR modules), no SUPL server and no APN for it, network-initiated positioning off (user plane, stand-alone mode
only, no A-GNSS protocol); then ``AT+QGPS?`` must read 0 and every path must read back off or be not present on
the model. Lookups a program must ask for (Wi-Fi scan, cell lookup) have no setting: the agent never sends them,
and the supervisor records any of their results it sees.

On: ``outport`` "usbnmea" when an NMEA port is configured (else ``nmeasrc`` 1, for polling), ``AT+QGPS=1`` (504 =
already on), then ``AT+QGPS?`` must read 1; the paths are read for status only.

Emergency positioning is the declared exception: while an emergency session owns the engine the module answers
``+CME ERROR: 515`` ("ended by E911") and GNSS reads on. With ``emergency_allowed`` (the default) that counts as
off for GNSS alone, and is reported so that it is recorded; every other path must still be off, and the gate stays
closed, so it is never a way for positions to leave. Without it, the state is not enforced.

Between reconciles, :meth:`Enforcer.check` is the cheap periodic proof: one batched read-back
(``AT+QGPS?;+QGPSCFG="autogps";...``) of GNSS and every path the modem has, one round trip. Every read-back is
stamped with the time it was read, so "verified" can always say when, and a caller can refuse to call an old
read-back verified.

The modem's answers are the only truth; when they cannot be had (port gone, modem silent), the observed state is
unknown, the gate stays closed, and the next trigger tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agent.errors import AgentError, CommandError, RemoteProtocolError, TransportError
from agent.location_paths import LocationPaths, PathValues, settings_view
from agent.model import Clock, SystemClock
from agent.quectel import commands, paths, responses
from agent.quectel.codes import GnssEndedByE911, GnssSessionNotActive, GnssSessionOngoing
from agent.session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the modem said at the last read-back; None where it could not be read.

    ``read_at`` and ``read_at_mono`` are when ``AT+QGPS?`` was last answered (wall and monotonic seconds).
    """

    gnss: bool | None = None
    autogps: int | None = None
    outport: str | None = None
    read_at: float | None = None
    read_at_mono: float | None = None
    paths: PathValues | None = None  # every other location path, as read back
    emergency: bool = False  # an emergency session owned the engine (+CME ERROR: 515)

    @property
    def known(self) -> bool:
        return self.gnss is not None and self.autogps is not None

    def as_dict(self) -> dict[str, Any]:
        gnss = "unknown" if self.gnss is None else ("on" if self.gnss else "off")
        return {"gnss": gnss, "autogps": self.autogps, "outport": self.outport}


UNKNOWN = Observed()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one reconcile."""

    desired_on: bool
    observed: Observed
    enforced: bool
    drift: dict[str, Any] = field(default_factory=dict)  # what was found wrong, empty when nothing
    error: str | None = None


class Gate:
    """The in-memory gate every location-bearing record must pass. Closed unless proven safe to open.

    ``on_close`` listeners run when an open gate closes, on the closing thread and before ``close`` returns, so
    that what was handed out just before (a local reader's unread sentences) goes before the switch is answered.
    """

    def __init__(self) -> None:
        self._open = False
        self.on_close: list[Callable[[], None]] = []

    @property
    def is_open(self) -> bool:
        return self._open

    def close(self) -> None:
        was_open, self._open = self._open, False
        if not was_open:
            return
        for listener in list(self.on_close):
            try:
                listener()
            except Exception:  # a failing listener must not keep the gate (or the switch) from closing
                log.exception("a gate-close listener failed")

    def open(self) -> None:
        self._open = True


class Enforcer:
    """Reconciles one modem with the desired switch state. Not thread-safe: one caller (the supervisor) at a time.

    Args:
        session: the modem's AT session.
        gate: closed first on every off-reconcile; opened only after GNSS on is verified.
        has_nmea_port: whether NMEA is read from a dedicated port (``outport`` "usbnmea") or polled.
        on_nmea: called with True to decode the NMEA port's fixes, False to stop decoding.
        clock: when read-backs happened.
    """

    def __init__(
        self,
        session: Session,
        gate: Gate,
        *,
        has_nmea_port: bool,
        on_nmea: Callable[[bool], None] = lambda active: None,
        clock: Clock | None = None,
        emergency_allowed: bool = True,
    ) -> None:
        self._clock = clock or SystemClock()
        self._session = session
        self._gate = gate
        self._has_nmea_port = has_nmea_port
        self._on_nmea = on_nmea
        self._emergency_allowed = emergency_allowed
        self.observed: Observed = UNKNOWN
        self.enforced = False
        self.paths_found: dict[str, Any] = {}  # unsafe path values found by the last off-reconcile
        self._paths = LocationPaths()
        self._verified: Observed | None = None  # the last state proven to match the switch

    def reconcile(self, desired_on: bool, *, user_change: bool = False) -> Outcome:
        """Drive the modem to ``desired_on`` and read it back. Never raises for modem trouble."""
        if not desired_on:
            self._gate.close()
            self._on_nmea(False)
        elif not self.enforced:
            self._gate.close()
        self.paths_found = {}
        try:
            found, observed = (self._switch_off() if not desired_on else self._switch_on())
        except (TransportError, CommandError, AgentError) as exc:
            return self._unknown(desired_on, exc)
        self.observed = observed = self._stamped(observed)
        self.enforced = _matches(observed, desired_on, self._emergency_allowed)
        drift = _drift(self._verified, found, desired_on, user_change=user_change)
        if not desired_on:
            drift.update(_path_drift(self._verified, self.paths_found, user_change=user_change))
        if self.enforced:
            self._verified = observed
            if desired_on:
                self._on_nmea(self._has_nmea_port)
                self._gate.open()
        else:
            self._gate.close()
        return Outcome(desired_on, observed, self.enforced, drift)

    def check(self, desired_on: bool) -> bool:
        """The periodic proof: one batched read-back (``AT+QGPS?`` and, while off, ``autogps``, ``outport`` and
        every location path the modem has), one round trip. True when the modem still matches a state verified
        before (the read-back is then stamped as the newest); False when it moved, could not be read, or nothing
        was verified yet: the caller then runs a full :meth:`reconcile`, which finds and records the drift."""
        if not self.enforced:
            return False
        parts = [commands.qgps_read()]
        if not desired_on:
            parts += [commands.qgpscfg_read("autogps"), commands.qgpscfg_read("outport")]
        parts += self._paths.batch_reads()
        try:
            replies = self._batched(parts)
            gnss = responses.parse_qgps_state(replies[0])
            still = _still_matches(self.observed, gnss, desired_on, self._emergency_allowed)
            if not desired_on:
                autogps, outport = _cfg_value(replies[1]), _cfg_value(replies[2])
                still = still and autogps == 0 and outport == self.observed.outport
            values = self._paths.values_from(replies[3 if not desired_on else 1:])
        except (TransportError, CommandError, AgentError) as exc:
            log.warning("periodic check could not read the modem: %s", exc)
            return False
        if not still or (not desired_on and not self._paths.all_off(values)):
            return False
        self.observed = self._stamped(replace(self.observed, gnss=gnss, paths=values))
        return True

    def _batched(self, parts: list[Any]) -> list[Any]:
        """Each part's response, from as few lines as the modem's line length allows (one, in practice)."""
        replies: list[Any] = []
        for run in paths.batches(parts):
            if len(run) == 1:
                replies.append(self._session.execute(run[0]))
            else:
                replies += paths.split_batch(self._session.execute(paths.batch(run)), run)
        return replies

    def path_labels(self) -> dict[str, str]:
        """Every location path with its observed state, for status: GNSS and its settings first."""
        observed = self.observed
        gnss = "unknown" if observed.gnss is None else ("on" if observed.gnss else "off")
        if observed.emergency and observed.gnss:
            gnss = "emergency"
        autogps = "unknown" if observed.autogps is None else ("off" if observed.autogps == 0 else "on")
        head = {"gnss": gnss, "autogps": autogps, "nmea-outport": observed.outport or "unknown"}
        return {**head, **self._paths.labels(observed.paths)}

    def path_settings(self) -> dict[str, Any] | None:
        """Each setting of the paths as last read back (``supl-apn``: ``[1, 0, ""]``), for status's detail."""
        return settings_view(self.observed.paths)

    def _stamped(self, observed: Observed) -> Observed:
        return replace(observed, read_at=self._clock.wall(), read_at_mono=self._clock.monotonic())

    def forget(self, *, restarted: bool = False) -> None:
        """The modem rebooted or the port was reopened: nothing observed before can be trusted."""
        self.observed = UNKNOWN
        self.enforced = False
        self._paths.forget(restarted=restarted)
        self._gate.close()

    # -- sequences -------------------------------------------------------------------------------------------
    def _switch_off(self) -> tuple[Observed, Observed]:
        execute = self._session.execute
        emergency = False
        try:
            execute(commands.qgps_end())
            was_on = True
        except GnssSessionNotActive:
            was_on = False
        except GnssEndedByE911:
            was_on, emergency = False, True  # not drift: the network's emergency session, reported apart
        autogps = _cfg_int(execute, "autogps")
        if autogps != 0:
            execute(commands.qgpscfg_set("autogps", 0))
        outport = _cfg_str(execute, "outport")
        if outport != "none":
            execute(commands.qgpscfg_set("outport", "none"))
        report = self._paths.turn_off(execute, self._paths.read(execute))
        self.paths_found = report.turned_off
        found = Observed(gnss=was_on, autogps=autogps, outport=outport)
        gnss_now = responses.parse_qgps_state(execute(commands.qgps_read()))
        autogps_now = autogps if autogps == 0 else _cfg_int(execute, "autogps")
        outport_now = outport if outport == "none" else _cfg_str(execute, "outport")
        return found, Observed(gnss=gnss_now, autogps=autogps_now, outport=outport_now, paths=report.values,
                               emergency=emergency)

    def _switch_on(self) -> tuple[Observed, Observed]:
        execute = self._session.execute
        autogps = _cfg_int(execute, "autogps")
        if self._has_nmea_port:
            outport = _cfg_str(execute, "outport")
            if outport != "usbnmea":
                execute(commands.qgpscfg_set("outport", "usbnmea"))
        else:
            outport = _cfg_str(execute, "outport")
            execute(commands.qgpscfg_set("nmeasrc", 1))
        try:
            execute(commands.qgps_on())
            was_on = False
        except GnssSessionOngoing:
            was_on = True
        found = Observed(gnss=was_on, autogps=autogps, outport=outport)
        gnss_now = responses.parse_qgps_state(execute(commands.qgps_read()))
        outport_now = "usbnmea" if self._has_nmea_port else outport
        return found, Observed(gnss=gnss_now, autogps=autogps, outport=outport_now, paths=self._paths_for_status())

    def _paths_for_status(self) -> PathValues | None:
        """While on, the paths are only shown: one that cannot be read is unknown, and location still turns on."""
        try:
            return self._paths.read(self._session.execute)
        except (CommandError, RemoteProtocolError) as exc:
            log.warning("location paths could not be read for status: %s", exc)
            return None

    def _unknown(self, desired_on: bool, exc: BaseException) -> Outcome:
        log.warning("cannot verify the modem's state: %s", exc)
        self.observed = UNKNOWN
        self.enforced = False
        self._gate.close()
        return Outcome(desired_on, UNKNOWN, False, error=str(exc))


def _cfg_int(execute: Callable[..., Any], key: str) -> int | None:
    _, values = responses.parse_qgpscfg(execute(commands.qgpscfg_read(key)))
    value = values[0] if values else None
    return value if isinstance(value, int) else None


def _cfg_str(execute: Callable[..., Any], key: str) -> str | None:
    _, values = responses.parse_qgpscfg(execute(commands.qgpscfg_read(key)))
    return str(values[0]) if values else None


def _cfg_value(response: Any) -> int | str | None:
    _, values = responses.parse_qgpscfg(response)
    return values[0] if values else None


def _matches(observed: Observed, desired_on: bool, emergency_allowed: bool) -> bool:
    if desired_on:
        return observed.gnss is True
    gnss_off = observed.gnss is False or (observed.gnss is True and observed.emergency and emergency_allowed)
    paths_off = observed.paths is not None and LocationPaths().all_off(observed.paths)
    return gnss_off and observed.autogps == 0 and paths_off


def _still_matches(observed: Observed, gnss: bool, desired_on: bool, emergency_allowed: bool) -> bool:
    if gnss == desired_on:
        return True
    return not desired_on and observed.emergency and emergency_allowed


_ALWAYS_DRIFT = frozenset({"creg", "cereg", "cgreg"})  # the agent never sets n=2: always drift while off


def _path_drift(verified: Observed | None, found: dict[str, Any], *, user_change: bool) -> dict[str, Any]:
    """Unsafe paths found while off: registration modes always; the others when they had been verified off
    (a factory default met for the first time is repaired, not an incident)."""
    verified_paths = verified.paths if verified is not None and verified.paths is not None else {}
    drift: dict[str, Any] = {}
    for spec in paths.PATHS:
        if spec.drift_key not in found:
            continue
        was_off = LocationPaths.is_off(spec, verified_paths.get(spec.name))
        if spec.drift_key in _ALWAYS_DRIFT or (was_off and not user_change):
            drift[spec.drift_key] = found[spec.drift_key]
    return drift


def _drift(verified: Observed | None, found: Observed, desired_on: bool, *, user_change: bool) -> dict[str, Any]:
    """What was found wrong before repairing, given the state last verified.

    GNSS in the wrong state is drift unless the user just asked for the change; ``autogps`` 1 is always drift
    (the agent never sets it); ``outport`` is drift when it moved away from the value last verified.
    """
    drift: dict[str, Any] = {}
    if not user_change and found.gnss is not None and found.gnss != desired_on:
        drift["gnss"] = "on" if found.gnss else "off"
    if found.autogps is not None and found.autogps != 0:
        drift["autogps"] = found.autogps
    if (verified is not None and found.outport is not None and verified.outport is not None
            and found.outport != verified.outport and not user_change):
        drift["outport"] = found.outport
    return drift
