"""``privacy-agent run``: the daemon.

Threads (one owner per resource, everything else crosses through the supervisor's queue):
- the session's reader thread owns the AT port's read side;
- the NMEA feed's thread owns the NMEA port while location is on (and only then);
- the supervisor thread owns every modem command: reconciles, user changes and periodic checks are serialised
  there, so two reconciles never interleave;
- the control server's threads parse requests and call :meth:`Supervisor.handle`;
- the main thread handles signals and systemd notifications.

Start-up order is the privacy order: state dir, ledger, desired state (off when none), gate closed, and only then
the modem session and the control socket.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agent import systemd, transport
from agent.at import Command, Response
from agent.config import Config
from agent.control import ControlServer, Peer, Request, check_socket_free
from agent.control_protocol import MAX_WAIT_S, StreamReply
from agent.enforcer import Enforcer, Gate, Outcome
from agent.errors import AgentError, PortBusy, PortUnavailable, StateDamaged, StoreError, UsageError
from agent.incident_hook import IncidentHook
from agent.incidents import UNAUTHORISED_CONTROL, FloodLimit, wording
from agent.ledger import Ledger, LedgerConfig, Record
from agent.local_feed import LocalFeed, build_local_feed
from agent.model import CellInfo, Clock, DeviceIds, Fix, ModemInfo, SystemClock
from agent.nmea_feed import NmeaFeed
from agent.quectel import commands, responses
from agent.rights import Rights, status_extras
from agent.rights_requests import REQUEST_OPS, RightsRequests
from agent.session import CONNECTED, DISCONNECTED, REBOOTED, Session
from agent.state import (
    DEFAULT,
    FILE_NAME,
    Desired,
    check_state_dir,
    ensure_state_dir,
    read_desired,
    write_desired,
)
from agent.upload_path import UploadPath

log = logging.getLogger("privacy-agent")

FULL_RECONCILE_S = 60.0  # the whole off/on sequence (autogps, outport, +CREG) at least this often
NMEA_WHILE_OFF = "nmea-while-off"


@dataclass
class _Ticket:
    """A caller waiting for the first reconcile that starts after it was queued."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class Supervisor:
    """Owns the desired state and every modem command; answers control requests."""

    def __init__(
        self,
        config: Config,
        session: Session,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        nmea_feed: NmeaFeed | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._ledger = ledger
        self._clock = clock or SystemClock()
        self._nmea_feed = nmea_feed
        self.gate = Gate()
        self.enforcer = Enforcer(session, self.gate, has_nmea_port=nmea_feed is not None,
                                 on_nmea=self._set_nmea_decoding, clock=self._clock,
                                 emergency_allowed=config.modem.emergency_positioning)
        self.desired: Desired = DEFAULT
        self._desired_on_disk: Desired | None = None
        self._change_lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, _Ticket | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: Outcome | None = None
        self._last_full_mono = float("-inf")
        self._user_generation_pending: int | None = None
        self._waiters: list[_Ticket] = []  # released by the next reconcile or check, whatever its reason
        self._waiters_lock = threading.Lock()
        self.notices: list[str] = []  # what the user must be told in status (e.g. started off, and why)
        self._incident_count: int | None = None  # counted from the ledger when first asked
        self._incident_lock = threading.Lock()
        self.incident_hook: IncidentHook | None = None  # [incidents] command: told of each incident recorded
        self._denied_limit = FloodLimit()  # unauthorised control attempts: a flood must not fill the log
        self.ready = threading.Event()
        self.fix_listeners: list[Callable[[Fix], object]] = []
        self._fixes_seen = 0
        self.modem_info: ModemInfo | None = None
        self.guard: GuardLink | None = GuardLink(config.modem.guard_port) if config.modem.guard_port else None
        self.device_ids = DeviceIds()  # kept in memory only, for leak checks; never logged or reported
        self.on_identified: Callable[[DeviceIds, CellInfo | None], None] = lambda ids, cell: None

    # -- start / stop ----------------------------------------------------------------------------------------
    def load_desired(self) -> Desired:
        """The ledger's last switch record decides; ``desired.json`` is only its copy.

        - Neither exists (first start): location is off, and that default is recorded as the first switch.
        - The file is older than the ledger (a crash between the ledger's fsync and the file's rewrite): the
          ledger wins, and the file is rewritten.
        - The file claims more than the ledger holds (a higher generation, or another state at the same one):
          records were lost from the ledger or the file was planted. An "on" the ledger never acknowledged is
          never applied: the agent starts with location off, records why, and says so in ``status``.
        """
        problem: str | None = None
        try:
            from_file = read_desired(self._config.state.dir)
        except StateDamaged as exc:
            log.error("%s; the ledger's last switch record decides", exc)
            from_file, problem = None, exc.message
        from_ledger = _last_switch(self._ledger)
        if from_ledger is None and (from_file is None or not from_file.location_on):
            self.desired = self._append_switch(False, generation=from_file.generation if from_file else 0,
                                               uid=None, reason="default")
        elif from_file is not None and _claims_more(from_file, from_ledger):
            known = from_ledger.generation if from_ledger is not None else 0
            self.desired = self._append_switch(False, generation=max(from_file.generation, known) + 1,
                                               uid=None, reason="fail-closed")
            why = (f"{FILE_NAME} says location {from_file.label} (generation {from_file.generation}), which the "
                   f"ledger never recorded (its last switch: generation {known}); started with location off")
            self._note(why)
            self.record_incident("state-disagrees", file_generation=from_file.generation,
                                 ledger_generation=known, file_location=from_file.label, repaired=True)
        else:
            assert from_ledger is not None
            self.desired = from_ledger
        if problem is not None:
            self._note(f"{FILE_NAME} could not be used ({problem}); the ledger's last switch decided")
        self._desired_on_disk = from_file
        return self.desired

    def check_ledger_loss(self) -> None:
        """Records missing below the newest signed head: an incident, and a notice in ``status``."""
        if self._ledger.head_missing:
            self._note("the ledger's head file was missing: records lost from the end of the log could not be "
                       "ruled out (a new signed head was written)")
            self.record_incident("ledger-head-missing", repaired=False)
        loss = self._ledger.truncation
        if loss is None:
            return
        self._note(f"the ledger lost {loss.missing} records below its last signed head "
                   f"({loss.found_size} of {loss.head_size} remain)")
        self.record_incident("ledger-truncated", missing=loss.missing, head_size=loss.head_size,
                             found_size=loss.found_size, repaired=False)

    def _note(self, text: str) -> None:
        log.error("%s", text)
        self.notices.append(text)

    def start(self) -> None:
        self._session.add_lifecycle_listener(self._on_lifecycle)
        self._session.add_urc_listener(self._on_urc)
        if self._nmea_feed is not None:
            self._nmea_feed.on_fix = self.on_fix
            self._nmea_feed.on_bytes_while_off = self._on_nmea_while_off
            self._nmea_feed.start()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        self.request_reconcile("start")

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._nmea_feed is not None:
            self._nmea_feed.stop()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_reconcile(self, reason: str, ticket: _Ticket | None = None) -> None:
        self._queue.put((reason, ticket))

    # -- control requests (called on control-server threads) ------------------------------------------------
    def handle(self, request: Request, peer: Peer) -> dict[str, Any]:
        op = request.op
        if op == "status":
            return self.status()
        if op == "location.status":
            if request.args.get("check"):
                return self.check_now(float(request.args.get("wait_s", self._config.modem.verify_timeout_s)))
            return self.location_status()
        if op in ("location.on", "location.off"):
            wait_s = float(request.args.get("wait_s", self._config.modem.verify_timeout_s))
            return self.set_location(op == "location.on", uid=peer.uid, wait_s=wait_s)
        if op == "incidents":
            return {"incidents": self.incidents(since_ms=request.args.get("since_ms"))}
        if op == "log.verify":
            report = self._ledger.verify()
            return {"verified": True, "report": _plain(report)}
        raise UsageError(f"'{op}' is not supported by this agent yet")

    def set_location(self, on: bool, *, uid: int | None, wait_s: float) -> dict[str, Any]:
        """Change the switch: durable and (for off) gate closed before this returns; then wait up to ``wait_s``
        for the modem to confirm, through as many reconciles as it takes (a modem that is unreachable now may
        come back within the wait)."""
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise UsageError(f"wait_s must be between 0 and {MAX_WAIT_S:g} seconds")
        with self._change_lock:
            if not on:
                self.gate.close()  # first: nothing location-bearing passes from now on
            new = self._append_switch(on, generation=self.desired.generation + 1, uid=uid, reason="user")
            self.desired = new
            self._user_generation_pending = new.generation
            ticket = _Ticket()
            self.request_reconcile("user", ticket)
        acknowledged = {"desired": new.label, "durable": True, "gate": "open" if self.gate.is_open else "closed"}
        confirmed = self._wait_confirmed(ticket, new.generation, wait_s)
        result = {**acknowledged, **self.location_status(), "verified": confirmed}
        if not confirmed:
            result["not_verified"] = self._why_unconfirmed(wait_s)
        return result

    def _wait_confirmed(self, ticket: _Ticket, generation: int, wait_s: float) -> bool:
        deadline = self._clock.monotonic() + wait_s
        while True:
            if not ticket.done.wait(max(0.0, deadline - self._clock.monotonic())):
                return False
            outcome = ticket.outcome
            if self.desired.generation != generation:
                return False  # a newer change replaced this one: it answers for itself
            if outcome is not None and outcome.enforced and outcome.desired_on == self.desired.location_on:
                return True
            if self._clock.monotonic() >= deadline:
                return False
            ticket = _Ticket()  # not yet: wait for the supervisor's next try (it retries while unconfirmed)
            with self._waiters_lock:
                self._waiters.append(ticket)

    def _why_unconfirmed(self, wait_s: float) -> str:
        if not self._session.connected:
            return f"the modem is unreachable; not confirmed within {wait_s:g} s"
        last = self._last
        if last is not None and last.error is not None:
            return f"the modem did not answer; not confirmed within {wait_s:g} s"
        if last is not None and last.observed.known:
            return f"the modem still reports another state; not confirmed within {wait_s:g} s"
        return f"no answer from the modem within {wait_s:g} s"

    def check_now(self, wait_s: float) -> dict[str, Any]:
        """Read the modem back before answering (``location status --check``)."""
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise UsageError(f"wait_s must be between 0 and {MAX_WAIT_S:g} seconds")
        ticket = _Ticket()
        self.request_reconcile("check", ticket)
        answered = ticket.done.wait(wait_s)
        result = self.location_status()
        result["checked"] = bool(answered)
        return result

    def location_status(self) -> dict[str, Any]:
        """What the user asked, what the modem said and when, and whether that still counts as verified.

        A read-back older than the reconcile interval is never called verified: the periodic check runs well
        within the interval, so a fresh one is always on its way while the modem answers."""
        observed = self.enforcer.observed
        read_at = observed.read_at
        age = None if observed.read_at_mono is None else max(0.0, self._clock.monotonic() - observed.read_at_mono)
        fresh = age is not None and age <= self._config.modem.reconcile_interval_s
        verified = self.enforcer.enforced and self.enforcer_desired_matches() and fresh
        return {
            "desired": self.desired.label,
            "gate": "open" if self.gate.is_open else "closed",
            "enforced": verified,
            "verified_at": None if read_at is None or not verified else iso_utc(read_at),
            "observed": observed.as_dict(),
            "observed_at": None if read_at is None else iso_utc(read_at),
            "observed_age_s": None if age is None else round(age, 1),
            "modem_connected": self._session.connected,
            "paths": self.enforcer.path_labels(),
        }

    def gate_state(self) -> tuple[bool, bool]:
        """For the upload pipeline: (the switch is on and its gate open, the modem's state is observed)."""
        return (self.desired.location_on and self.gate.is_open, self.enforcer.observed.known)

    def enforcer_desired_matches(self) -> bool:
        last = self._last
        return last is not None and last.desired_on == self.desired.location_on

    def status(self) -> dict[str, Any]:
        count, head = self._ledger.head()
        info = self.modem_info
        return {
            "location": self.location_status(),
            "modem": None if info is None else {"manufacturer": info.manufacturer, "model": info.model,
                                                "revision": info.revision},
            "incidents": self.incident_count(),
            "notices": list(self.notices),
            "fixes_seen": self._fixes_seen,
            "ledger": {"records": count, "head": head, "key": self._ledger.key_fingerprint()},
            "guard": None if self.guard is None else self.guard.describe(),
            "port": self._config.modem.port,
            "nmea_port": self._config.modem.nmea_port,
        }

    def incidents(self, *, since_ms: int | None = None) -> list[dict[str, Any]]:
        """Incidents from the ledger, the source of truth (so they outlive restarts), newest first."""
        found = [_incident_view(record) for record in self._ledger.records()
                 if record.type == "incident" and (since_ms is None or record.time_ms >= since_ms)]
        found.reverse()
        return found

    def incident_count(self) -> int:
        with self._incident_lock:
            if self._incident_count is None:
                self._incident_count = sum(1 for record in self._ledger.records() if record.type == "incident")
            return self._incident_count

    # -- supervisor thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        # The first reconcile waits (bounded) for the port, so a modem that is merely opening is not reported as
        # unverifiable; the gate is closed meanwhile.
        self._session.wait_connected(5.0)
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=self._next_check_in())
            except queue.Empty:
                first = ("periodic", None)
            batch = [first, *self._drain()]
            if any(reason == "stop" for reason, _ in batch):
                self._release([t for _, t in batch if t is not None])
                return
            reasons = [reason for reason, _ in batch]
            outcome = self._light_check() if reasons == ["periodic"] else None
            if outcome is None:
                outcome = self._reconcile_once(reasons)
            self._release([t for _, t in batch if t is not None], outcome)
            # desired.json is the ledger's copy (the switch record is the acknowledgement): rewriting it after the
            # callers are answered keeps its two fsyncs off the path from "location off" to the modem's read-back.
            self._persist_desired(self.desired)

    def _next_check_in(self) -> float:
        """Seconds until the next periodic check: a failed reconcile is retried within 2 s; otherwise the modem
        is read back at 80% of the reconcile interval, so no answer ever rests on a read-back older than it."""
        interval = self._config.modem.reconcile_interval_s
        if not self.enforcer.enforced:
            return min(2.0, interval)
        read_at = self.enforcer.observed.read_at_mono
        if read_at is None:
            return 0.0
        return max(0.0, read_at + 0.8 * interval - self._clock.monotonic())

    def _light_check(self) -> Outcome | None:
        """One ``AT+QGPS?``: the last outcome, re-stamped, when the modem still matches; None when a full
        reconcile is due (drift, no answer, or a full pass has not run for FULL_RECONCILE_S)."""
        if self._clock.monotonic() - self._last_full_mono >= FULL_RECONCILE_S:
            return None
        if self._last is None or not self.enforcer.check(self.desired.location_on):
            return None
        self._last = replace(self._last, observed=self.enforcer.observed, drift={})
        return self._last

    def _drain(self) -> list[tuple[str, _Ticket | None]]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _reconcile_once(self, reasons: list[str]) -> Outcome:
        desired = self.desired
        user_change = self._user_generation_pending == desired.generation
        self._user_generation_pending = None
        self._last_full_mono = self._clock.monotonic()
        if {DISCONNECTED, REBOOTED, CONNECTED} & set(reasons):
            self.enforcer.forget()  # nothing observed before a reboot or reopen can be trusted
        if REBOOTED in reasons:
            self.modem_info = None
        if self.modem_info is None or (user_change and desired.location_on):
            self._identify()  # again when location turns on: the serving cell is read (for the leak check) only then
        outcome = self.enforcer.reconcile(desired.location_on, user_change=user_change)
        if self.guard is not None:
            if REBOOTED in reasons:
                self.guard.forget()
            guard_problem = self.guard.sync(desired)
            if guard_problem:
                outcome = replace(outcome, drift={**outcome.drift, "guard": guard_problem})
        self._last = outcome
        if outcome.drift:
            self._record_drift(outcome, reasons)
        if outcome.observed.emergency:
            self.record_incident("emergency-positioning", desired=desired.label, signal="+CME ERROR: 515",
                                 enforced=outcome.enforced)
        if outcome.enforced and not self.ready.is_set():
            self.ready.set()
            systemd.notify("READY=1\nSTATUS=location " + desired.label + ", verified on the modem")
        elif not outcome.enforced:
            systemd.notify("STATUS=location " + desired.label + ", modem state not verified; gate closed")
            if not self.ready.is_set() and not desired.location_on:
                # Off and unverifiable is still safe (the gate is closed): do not hold up the boot.
                self.ready.set()
                systemd.notify("READY=1")
        return outcome

    def _identify(self) -> None:
        """Read what the module is (reported in status) and its identifiers (kept for leak checks only)."""
        execute = self._session.execute
        try:
            self.modem_info = responses.parse_ati(execute(commands.ati()))
        except AgentError as exc:
            log.warning("cannot identify the modem: %s", exc)
            return
        found: dict[str, str | None] = {}
        readers: tuple[tuple[str, Callable[[], Command], Callable[[Response], str | None]], ...] = (
            ("imei", commands.cgsn, responses.parse_imei), ("imsi", commands.cimi, responses.parse_imsi),
            ("iccid", commands.qccid, responses.parse_iccid), ("msisdn", commands.cnum, responses.parse_cnum))
        for key, build, parse in readers:
            try:
                found[key] = parse(execute(build()))
            except AgentError:
                found[key] = None  # no SIM, or not supported: nothing to search for
        self.device_ids = DeviceIds(**found)
        cell = None
        if self.desired.location_on:  # the serving cell is location: not read while the switch is off
            try:
                cell = responses.parse_qeng_servingcell(execute(commands.qeng_servingcell()))
            except AgentError:
                cell = None
        self.on_identified(self.device_ids, cell)

    def _append_switch(self, on: bool, *, generation: int, uid: int | None, reason: str) -> Desired:
        """Make a switch durable in the ledger (the acknowledgement) and return it as the desired state."""
        new = Desired(location_on=on, generation=generation, changed_at_ms=int(self._clock.wall() * 1000),
                      changed_by_uid=uid)
        self._ledger.append("switch", {"desired": new.label, "generation": new.generation,
                                       "by_uid": uid if uid is not None else -1, "reason": reason})
        return new

    def _persist_desired(self, desired: Desired) -> None:
        if self._desired_on_disk == desired:
            return
        try:
            write_desired(self._config.state.dir, desired)
            self._desired_on_disk = desired
        except StoreError as exc:
            log.error("%s", exc)  # the ledger already holds the change durably

    def _record_drift(self, outcome: Outcome, reasons: list[str]) -> None:
        self.record_incident("drift", desired="on" if outcome.desired_on else "off", found=outcome.drift,
                             trigger=",".join(sorted(set(reasons))), repaired=outcome.enforced)

    def record_incident(self, kind: str, **facts: Any) -> None:
        """An incident, durable in the ledger; the log line carries no identifiers or coordinates."""
        # cause, impact, action, user_can: from one table (agent/incidents.py), the same words everywhere
        incident = {"kind": kind, **facts, **wording(kind), "time_ms": int(self._clock.wall() * 1000)}
        log.warning("incident %s: %s", kind, incident)
        try:
            self._ledger.append("incident", incident)
        except StoreError as exc:
            log.error("cannot record incident: %s", exc)
            return
        with self._incident_lock:
            if self._incident_count is not None:
                self._incident_count += 1
        if self.incident_hook is not None:
            self.incident_hook.submit(incident)  # never waits for the hook

    def record_denied(self, uid: int) -> None:
        """A control request refused for want of the right: an incident, at most a few per minute (the
        ones held back are counted in the next)."""
        with self._incident_lock:
            suppressed = self._denied_limit.admit(self._clock.monotonic())
        if suppressed is not None:
            self.record_incident(UNAUTHORISED_CONTROL, uid=uid, suppressed_before=suppressed)

    def record_hook_failure(self, failure: dict[str, Any]) -> None:
        """The incident hook failed: recorded in the ledger (not as an incident, which would feed the hook)."""
        try:
            self._ledger.append("incident_hook", {**failure, "time_ms": int(self._clock.wall() * 1000)})
            self._ledger.flush()
        except AgentError as exc:
            log.error("cannot record the incident hook's failure: %s", exc)

    def _release(self, tickets: list[_Ticket], outcome: Outcome | None = None) -> None:
        with self._waiters_lock:
            tickets = tickets + self._waiters
            self._waiters = []
        for ticket in tickets:
            ticket.outcome = outcome
            ticket.done.set()

    # -- modem events (reader threads: only enqueue) --------------------------------------------------------
    def _on_lifecycle(self, event: str) -> None:
        if event in (DISCONNECTED, REBOOTED):
            self.gate.close()  # at once, on this thread; the rest happens on the supervisor thread
        if event in (CONNECTED, REBOOTED, DISCONNECTED):
            self.request_reconcile(event)

    def _on_urc(self, line: str) -> None:
        # Registration URCs may carry cell IDs: they are never stored or forwarded, only noticed.
        if line.startswith(("+QGPSURC", "+QIND", "+CPIN")):
            log.debug("URC: %s", line.split(":", 1)[0])

    def _on_nmea_while_off(self) -> None:
        """NMEA bytes while the port should be silent: the engine is on behind our back. Re-check at once."""
        if not self.desired.location_on:
            self.gate.close()
            self.request_reconcile(NMEA_WHILE_OFF)

    def _set_nmea_decoding(self, decoding: bool) -> None:
        if self._nmea_feed is not None:
            self._nmea_feed.set_decoding(decoding)

    def on_fix(self, fix: Fix) -> None:
        """Called by the NMEA feed's thread; fixes pass only while the gate is open."""
        if not self.gate.is_open:
            return
        self._fixes_seen += 1
        for listener in list(self.fix_listeners):
            listener(fix)


class GuardLink:
    """Keeps the on-module guard's persisted switch in step with the host's (QuecPython modules only).

    The guard is learnt by a version query (after start and every modem reboot); a module without one is fine.
    ``sync`` returns a short problem description when a module that has the guard did not take the switch: the
    supervisor records it as an incident, and the host gate is unaffected (it depends on the modem alone).
    """

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.version: str | None = None
        self._probed = False
        self._synced_generation: int | None = None

    def forget(self) -> None:
        self._probed = False
        self._synced_generation = None

    def describe(self) -> dict[str, Any]:
        return {"port": self.url, "present": self.version is not None, "version": self.version,
                "in_step": self._synced_generation is not None}

    def sync(self, desired: Desired) -> str | None:
        from agent.guard import GuardClient

        if self._probed and (self.version is None or self._synced_generation == desired.generation):
            return None
        try:
            with GuardClient(self.url, self.timeout_s) as client:
                if not self._probed:
                    self.version = client.version()
                    self._probed = True
                if self.version is None:
                    return None
                status = client.set_switch(desired.location_on)
        except AgentError as exc:
            log.warning("on-module guard did not take the switch: %s", exc)
            return type(exc).__name__
        if bool(status.get("on")) != desired.location_on:
            return "guard reports the other state"
        self._synced_generation = desired.generation
        return None


def _last_switch(ledger: Ledger) -> Desired | None:
    record = ledger.last_record_of_type("switch")
    if record is None:
        return None
    fields = record.fields
    return Desired(location_on=fields.get("desired") == "on", generation=int(fields.get("generation", 0)),
                   changed_at_ms=int(record.time_ms))


def _claims_more(from_file: Desired, from_ledger: Desired | None) -> bool:
    """Whether desired.json says something the ledger never acknowledged."""
    if from_ledger is None:
        return True
    if from_file.generation != from_ledger.generation:
        return from_file.generation > from_ledger.generation
    return from_file.location_on != from_ledger.location_on


def iso_utc(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-12-02T16:04:30.123Z``."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _incident_view(record: Record) -> dict[str, Any]:
    return {**record.fields, "seq": record.seq, "time": iso_utc(record.time_ms / 1000)}


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return {key: _plain(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


class Agent:
    """Wires the daemon's objects together; used by ``run`` and by ``demo``.

    Every start-up check runs before anything is written: a refused start leaves no trace (no state dir, no
    key, no socket file)."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        preflight(config)
        ensure_state_dir(config.state.dir)
        clock = clock or SystemClock()
        self.ledger = Ledger.open(config.state.dir, LedgerConfig(
            group_commit_ms=config.ledger.group_commit_ms, checkpoint_every=config.ledger.checkpoint_every,
            checkpoint_interval_s=config.ledger.checkpoint_interval_s, retention_days=config.ledger.retention_days,
            epoch_s=config.policy.pseudonym_epoch_s,
        ), clock=clock)
        self.session = Session(config.modem.port)
        self.nmea_feed = NmeaFeed(config.modem.nmea_port) if config.modem.nmea_port else None
        self.supervisor = Supervisor(config, self.session, self.ledger, clock=clock, nmea_feed=self.nmea_feed)
        if config.incidents is not None:  # before the first incident can be found; its thread starts in start()
            self.supervisor.incident_hook = IncidentHook(config.incidents.command,
                                                         timeout_s=config.incidents.timeout_s,
                                                         on_failure=self.supervisor.record_hook_failure)
        self.supervisor.load_desired()
        self.supervisor.check_ledger_loss()
        self.uploads = UploadPath(config, self.ledger, clock=clock, gate_state=self.supervisor.gate_state,
                                  record_incident=self.supervisor.record_incident)
        self.supervisor.fix_listeners.append(self.uploads.pipeline.on_fix)
        self.rights = Rights(self.ledger, self.uploads.pipeline, self.uploads.spool)
        self.rights.start()  # corrections folded in, the policy archived; a material change suspends its purposes
        pipeline_now = self.uploads.pipeline
        self.requests = RightsRequests(self.ledger, self.uploads.spool, lambda: pipeline_now.policy, config.rights,
                                       clock=clock, ledger_retention_days=config.ledger.retention_days)
        self.supervisor.on_identified = self.uploads.learn_identifiers
        self.local_feed: LocalFeed | None = None  # [local_feed]: filtered NMEA for programs on this device
        if config.local_feed is not None:
            pipeline = self.uploads.pipeline
            self.local_feed = build_local_feed(config.local_feed, config.policy, self.ledger, clock=clock,
                                               local_decision=pipeline.local_decision,
                                               coarsener=lambda: pipeline.coarsener)
            self.supervisor.fix_listeners.append(self.local_feed.on_fix)
        self.control = ControlServer(config.control.socket, self.handle, group=config.control.group,
                                     on_denied=lambda peer: self.supervisor.record_denied(peer.uid))

    def handle(self, request: Request, peer: Peer) -> dict[str, Any] | StreamReply:
        """Route a control request: the switch and the log to the supervisor, the upload path's ops to it."""
        if request.op.startswith(UPLOAD_OPS):
            return self.uploads.handle(request.op, dict(request.args), peer.uid)
        if request.op in REQUEST_OPS:  # export (a stream), erase, log.show: agent/rights_requests.py
            return self.requests.handle(request.op, dict(request.args), peer.uid)
        if request.op == "status" and self.local_feed is not None:  # its readers' drop counters, for the user
            return {**self.handle_right(request, peer), "local_feed": self.local_feed.stats()}
        if request.op in RIGHTS_OPS:
            return self.handle_right(request, peer)
        return self.supervisor.handle(request, peer)

    def handle_right(self, request: Request, peer: Peer) -> dict[str, Any]:
        args = request.args
        if request.op == "status":
            result = self.supervisor.status()
            extras = status_extras(self.uploads.pipeline, self.rights, self.supervisor.incidents())
            return {**result, **extras, "notices": [*result["notices"], *self.rights.notices]}
        if request.op == "policy.show":
            return self.rights.policy_show(fmt=str(args.get("format", "text")), with_diff=bool(args.get("diff")))
        if request.op == "policy.accept":
            return self.rights.policy_accept(uid=peer.uid)
        return self.rights.correct(str(args.get("what")), args.get("value"), uid=peer.uid)

    def start(self) -> None:
        if self.supervisor.incident_hook is not None:
            self.supervisor.incident_hook.start()
        if self.local_feed is not None:
            self.local_feed.start()  # first: a link path it may not take stops the start before the modem is touched
        self.supervisor.start()  # gate closed, reconcile queued before the port even opens
        self.session.start()
        self.uploads.start()
        self.control.start()

    def stop(self) -> None:
        self.control.stop()
        self.supervisor.stop()
        if self.local_feed is not None:
            self.local_feed.stop()
        self.uploads.stop()
        self.session.close()
        if self.supervisor.incident_hook is not None:
            self.supervisor.incident_hook.stop()
        self.ledger.close()


UPLOAD_OPS = ("consent.", "why", "uploads", "identity.")
RIGHTS_OPS = frozenset({"status", "policy.show", "policy.accept", "correct"})  # agent/rights.py


def preflight(config: Config) -> None:
    """Refuse a start that cannot work, before anything is written.

    - the state dir must not be a symlink (nor anything but a directory);
    - the control socket must not be served by another agent;
    - no other program may hold the modem's ports: one owner per modem. Ports are opened exclusively
      (``flock``); a port that is merely missing now is fine (the modem may be plugged in later).
    """
    check_state_dir(config.state.dir)
    check_socket_free(config.control.socket)
    for name, url in (("port", config.modem.port), ("nmea_port", config.modem.nmea_port)):
        if url is None:
            continue
        try:
            transport.open_port(url).close()
        except PortBusy as exc:
            raise PortBusy(f"[modem] {name} {url} is already owned by another program (an agent, ModemManager, "
                           f"a terminal); refusing to share the modem", port=url) from exc
        except (PortUnavailable, UsageError):
            pass  # missing now, or checked by _check_port_urls: the session retries
