"""The incidents view: incidents recorded in the ledger (the source of truth, so they outlive restarts),
counted, listed, and handed to the ``[incidents]`` hook."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import Any

from agent.errors import AgentError, StoreError
from agent.incident_hook import IncidentHook
from agent.incidents import LOOKUP_WHILE_OFF, UNAUTHORISED_CONTROL, FloodLimit, wording
from agent.ledger import Ledger, Record
from agent.model import Clock
from agent.quectel.paths import LOOKUP_URCS

log = logging.getLogger("privacy-agent")
LOOKUP_REASON = "lookup-while-off:"  # + the URC's name: the reconcile reason a lookup's result seen while off gives


def lookup_reason(urc_name: str) -> str:
    return LOOKUP_REASON + urc_name


class IncidentLog:
    """Records incidents durably, keeps their count, and lists them newest first."""

    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock
        self._count: int | None = None  # counted from the ledger when first asked
        self._lock = threading.Lock()
        self.hook: IncidentHook | None = None  # [incidents] command: told of each incident recorded
        self._denied_limit = FloodLimit()  # unauthorised control attempts: a flood must not fill the log
        self._lookup_limit = FloodLimit()  # a program scanning every second must not fill it either

    def list(self, *, since_ms: int | None = None) -> list[dict[str, Any]]:
        """Incidents from the ledger, newest first."""
        found = [incident_view(record) for record in self._ledger.records()
                 if record.type == "incident" and (since_ms is None or record.time_ms >= since_ms)]
        found.reverse()
        return found

    def count(self) -> int:
        with self._lock:
            if self._count is None:
                self._count = sum(1 for record in self._ledger.records() if record.type == "incident")
            return self._count

    def record(self, kind: str, **facts: Any) -> None:
        """An incident, durable in the ledger; the log line carries no identifiers or coordinates."""
        # cause, impact, action, user_can: from one table (agent/incidents.py), the same words everywhere
        incident = {"kind": kind, **facts, **wording(kind), "time_ms": int(self._clock.wall() * 1000)}
        log.warning("incident %s: %s", kind, incident)
        try:
            self._ledger.append("incident", incident)
        except StoreError as exc:
            log.error("cannot record incident: %s", exc)
            return
        with self._lock:
            if self._count is not None:
                self._count += 1
        if self.hook is not None:
            self.hook.submit(incident)  # never waits for the hook

    def record_denied(self, uid: int) -> None:
        """A control request refused for want of the right: an incident, at most a few per minute (the
        ones held back are counted in the next)."""
        with self._lock:
            suppressed = self._denied_limit.admit(self._clock.monotonic())
        if suppressed is not None:
            self.record(UNAUTHORISED_CONTROL, uid=uid, suppressed_before=suppressed)

    def record_lookups(self, reasons: Sequence[str], *, desired: str) -> None:
        """Lookups whose results were seen while off (``lookup-while-off:+QWIFISCAN`` reasons): one incident per
        kind of lookup, naming the path, never what it found; a flood is counted, not recorded one by one."""
        for urc in sorted({reason[len(LOOKUP_REASON):] for reason in reasons if reason.startswith(LOOKUP_REASON)}):
            with self._lock:
                suppressed = self._lookup_limit.admit(self._clock.monotonic())
            if suppressed is not None:
                self.record(LOOKUP_WHILE_OFF, path=LOOKUP_URCS.get(urc, "unknown"), urc=urc, desired=desired,
                            suppressed_before=suppressed)

    def record_hook_failure(self, failure: dict[str, Any]) -> None:
        """The incident hook failed: recorded in the ledger (not as an incident, which would feed the hook)."""
        try:
            self._ledger.append("incident_hook", {**failure, "time_ms": int(self._clock.wall() * 1000)})
            self._ledger.flush()
        except AgentError as exc:
            log.error("cannot record the incident hook's failure: %s", exc)


def iso_utc(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-12-02T16:04:30.123Z``."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def incident_view(record: Record) -> dict[str, Any]:
    return {**record.fields, "seq": record.seq, "time": iso_utc(record.time_ms / 1000)}
