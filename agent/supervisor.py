"""The supervisor: owns the desired state and every modem command, and answers the switch's control requests.

Its thread serialises every modem command: reconciles, user changes and periodic checks, so two reconciles never
interleave. Reader threads (the session's, the NMEA feed's) only enqueue; control-server threads call
:meth:`Supervisor.handle`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent.config import Config
from agent.control import Peer, Request
from agent.control_protocol import MAX_WAIT_S
from agent.enforcer import Enforcer, Gate, Outcome
from agent.errors import StateDamaged, StoreError, UsageError
from agent.guard_link import GuardLink
from agent.incident_hook import IncidentHook
from agent.incident_log import IncidentLog, lookup_reason
from agent.ledger import Ledger
from agent.model import CellInfo, Clock, DeviceIds, Fix, ModemInfo, SystemClock
from agent.modem_identity import identify
from agent.nmea_feed import NmeaFeed
from agent.quectel.urc import UrcKind, classify_urc
from agent.reconcile_queue import PERIODIC, STOP, ReconcileQueue, Ticket
from agent.session import CONNECTED, DISCONNECTED, REBOOTED, Session
from agent.start_state import FAIL_CLOSED, LEDGER, decide, last_switch, ledger_losses
from agent.state import DEFAULT, FILE_NAME, Desired, read_desired, write_desired
from agent.supervisor_views import location_view, plain, tell_systemd, why_unconfirmed

log = logging.getLogger("privacy-agent")

FULL_RECONCILE_S = 60.0  # the whole off/on sequence (autogps, outport, +CREG) at least this often
NMEA_WHILE_OFF = "nmea-while-off"
CELL_URC_WHILE_OFF = "cell-urc-while-off"


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
        self._reconciles = ReconcileQueue(self._clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: Outcome | None = None
        self._last_full_mono = float("-inf")
        self._user_generation_pending: int | None = None
        self.notices: list[str] = []  # what the user must be told in status (e.g. started off, and why)
        self.incident_log = IncidentLog(ledger, self._clock)
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
        from_ledger = last_switch(self._ledger)
        start = decide(from_file, from_ledger)
        if start.reason == LEDGER:
            assert from_ledger is not None
            self.desired = from_ledger
        else:
            self.desired = self._append_switch(False, generation=start.generation, uid=None, reason=start.reason)
        if start.reason == FAIL_CLOSED:
            assert from_file is not None
            why = (f"{FILE_NAME} says location {from_file.label} (generation {from_file.generation}), which the "
                   f"ledger never recorded (its last switch: generation {start.known}); started with location off")
            self._note(why)
            self.record_incident("state-disagrees", file_generation=from_file.generation,
                                 ledger_generation=start.known, file_location=from_file.label, repaired=True)
        if problem is not None:
            self._note(f"{FILE_NAME} could not be used ({problem}); the ledger's last switch decided")
        self._desired_on_disk = from_file
        return self.desired

    def check_ledger_loss(self) -> None:
        """Records missing below the newest signed head: an incident, and a notice in ``status``."""
        for loss in ledger_losses(self._ledger):
            self._note(loss.notice)
            self.record_incident(loss.kind, **loss.facts, repaired=False)

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
        self._reconciles.put(STOP)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._nmea_feed is not None:
            self._nmea_feed.stop()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_reconcile(self, reason: str, ticket: Ticket | None = None) -> None:
        self._reconciles.put(reason, ticket)

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
            return {"verified": True, "report": plain(report)}
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
            ticket = Ticket()
            self.request_reconcile("user", ticket)
        acknowledged = {"desired": new.label, "durable": True, "gate": "open" if self.gate.is_open else "closed"}
        confirmed = self._reconciles.wait(ticket, wait_s, lambda outcome: self._confirms(outcome, new.generation))
        result = {**acknowledged, **self.location_status(), "verified": confirmed}
        if not confirmed:
            result["not_verified"] = why_unconfirmed(modem_connected=self._session.connected, last=self._last,
                                                     wait_s=wait_s)
        return result

    def _confirms(self, outcome: Outcome | None, generation: int) -> bool | None:
        """Whether a reconcile's outcome confirms the change to ``generation``; None: not yet (the supervisor
        retries while unconfirmed)."""
        if self.desired.generation != generation:
            return False  # a newer change replaced this one: it answers for itself
        if outcome is not None and outcome.enforced and outcome.desired_on == self.desired.location_on:
            return True
        return None

    def check_now(self, wait_s: float) -> dict[str, Any]:
        """Read the modem back before answering (``location status --check``)."""
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise UsageError(f"wait_s must be between 0 and {MAX_WAIT_S:g} seconds")
        ticket = Ticket()
        self.request_reconcile("check", ticket)
        answered = ticket.done.wait(wait_s)
        result = self.location_status()
        result["checked"] = bool(answered)
        return result

    def location_status(self) -> dict[str, Any]:
        """What the user asked, what the modem said and when, and whether that still counts as verified."""
        return location_view(self.desired, gate_open=self.gate.is_open, enforcer=self.enforcer, last=self._last,
                             now_mono=self._clock.monotonic(), interval_s=self._config.modem.reconcile_interval_s,
                             modem_connected=self._session.connected)

    def gate_state(self) -> tuple[bool, bool]:
        """For the upload pipeline: (the switch is on and its gate open, the modem's state is observed)."""
        return (self.desired.location_on and self.gate.is_open, self.enforcer.observed.known)

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
        return self.incident_log.list(since_ms=since_ms)

    def incident_count(self) -> int:
        return self.incident_log.count()

    @property
    def incident_hook(self) -> IncidentHook | None:
        """The ``[incidents]`` command, told of each incident recorded."""
        return self.incident_log.hook

    @incident_hook.setter
    def incident_hook(self, hook: IncidentHook | None) -> None:
        self.incident_log.hook = hook

    # -- supervisor thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        # The first reconcile waits (bounded) for the port, so a modem that is merely opening is not reported as
        # unverifiable; the gate is closed meanwhile.
        self._session.wait_connected(5.0)
        while not self._stop.is_set():
            reasons, tickets = self._reconciles.take(self._next_check_in())
            if STOP in reasons:
                self._reconciles.release(tickets)
                return
            outcome = self._light_check() if reasons == [PERIODIC] else None
            if outcome is None:
                outcome = self._reconcile_once(reasons)
            self._reconciles.release(tickets, outcome)
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

    def _reconcile_once(self, reasons: list[str]) -> Outcome:
        desired = self.desired
        user_change = self._user_generation_pending == desired.generation
        self._user_generation_pending = None
        self._last_full_mono = self._clock.monotonic()
        if {DISCONNECTED, REBOOTED, CONNECTED} & set(reasons):
            self.enforcer.forget(restarted=REBOOTED in reasons)  # nothing observed before can be trusted
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
        self.incident_log.record_lookups(reasons, desired=desired.label)
        if outcome.drift:
            self._record_drift(outcome, reasons)
        if outcome.observed.emergency:
            self.record_incident("emergency-positioning", desired=desired.label, signal="+CME ERROR: 515",
                                 enforced=outcome.enforced)
        tell_systemd(self.ready, outcome, desired)
        return outcome

    def _identify(self) -> None:
        """Read what the module is (reported in status) and its identifiers (kept for leak checks only)."""
        found = identify(self._session.execute, location_on=self.desired.location_on)
        if found is None:
            return
        self.modem_info = found.info
        self.device_ids = found.ids
        self.on_identified(found.ids, found.cell)

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
        self.incident_log.record(kind, **facts)

    def record_denied(self, uid: int) -> None:
        """A control request refused for want of the right: an incident, at most a few per minute."""
        self.incident_log.record_denied(uid)

    def record_hook_failure(self, failure: dict[str, Any]) -> None:
        """The incident hook failed: recorded in the ledger (not as an incident, which would feed the hook)."""
        self.incident_log.record_hook_failure(failure)

    # -- modem events (reader threads: only enqueue) --------------------------------------------------------
    def _on_lifecycle(self, event: str) -> None:
        if event in (DISCONNECTED, REBOOTED):
            self.gate.close()  # at once, on this thread; the rest happens on the supervisor thread
        if event in (CONNECTED, REBOOTED, DISCONNECTED):
            self.request_reconcile(event)

    def _on_urc(self, line: str) -> None:
        # Registration URCs may carry cell IDs, a lookup's results access points or a position: never stored or
        # forwarded, only noticed. Seen while off, they trigger a read-back at once.
        info = classify_urc(line)
        if info.kind is UrcKind.LOOKUP:
            self._recheck_while_off(lookup_reason(info.name))
        elif info.carries_location:
            self._recheck_while_off(CELL_URC_WHILE_OFF)
        elif line.startswith(("+QGPSURC", "+QIND", "+CPIN")):
            log.debug("URC: %s", line.split(":", 1)[0])

    def _on_nmea_while_off(self) -> None:
        """NMEA bytes while the port should be silent: the engine is on behind our back. Re-check at once."""
        self._recheck_while_off(NMEA_WHILE_OFF)

    def _recheck_while_off(self, reason: str) -> None:
        """Something only an engine or lookup at work sends came while off: close the gate, re-check at once."""
        if not self.desired.location_on:
            self.gate.close()
            self.request_reconcile(reason)

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


