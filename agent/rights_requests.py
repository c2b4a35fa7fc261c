"""Rights requests on a running agent (service): access by export, the log itself, and erasure.

(Corrections and policy as code are :mod:`agent.rights`.)

Ops served here (routed from :meth:`agent.daemon.Agent.handle`)::

    export                       a StreamReply: the bundle's bytes over the control socket; the agent never
                                 writes to a path the user names (privacyctl writes the file as the caller)
    log.show [type, since_ms, limit]   the records themselves, newest first, at most ``limit`` (100)
    erase all | before_ms | purpose    queued data purged, keys destroyed; durable before the answer

Each right exercised is a durable ``request`` ledger record with its outcome (answered, refused, failed), so the
next export shows how every request was answered. An identical export inside ``[rights] repeat_window_s`` is
refused with the reason and the time the window ends, and the refusal is recorded; nothing else is refused
silently. What erase --purpose can and cannot do with keys per pseudonym epoch is in docs/rights.md.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agent.config import RightsConfig
from agent.control_protocol import StreamOut, StreamReply
from agent.errors import AgentError, RequestRefused, UsageError
from agent.ledger import Ledger, Record
from agent.model import Clock
from agent.policy_notice import render_notice
from agent.privacy.policy import Policy
from agent.spool import Spool

log = logging.getLogger(__name__)

REQUEST_OPS = frozenset({"export", "erase", "log.show"})
DEFAULT_LOG_LIMIT = 100
# What ``log show --type`` may ask for: the records a person reads (checkpoints and recoveries are the log's own).
SHOWN_TYPES = frozenset({"switch", "fix_access", "upload", "consent", "request", "incident", "key_destroyed",
                         "recovery", "checkpoint"})


# -- repeated requests (pure) -----------------------------------------------------------------------------

class RepeatGuard:
    """Which export requests repeat an identical one answered inside the window.

    Identical: the same caller (uid) asking again while nothing the bundle answers was changed at their request
    (an erasure in between makes the next export a new question). Pure: times are passed in."""

    def __init__(self, window_ms: int) -> None:
        if window_ms < 0:
            raise ValueError("the repeat window cannot be negative")
        self._window_ms = window_ms
        self._answered: dict[int, tuple[int, int]] = {}  # uid -> (answered at, generation then)
        self._generation = 0

    def refusal_end(self, uid: int, now_ms: int) -> int | None:
        """When the window of the caller's previous identical export ends; None: answer this one."""
        previous = self._answered.get(uid)
        if self._window_ms == 0 or previous is None or previous[1] != self._generation:
            return None
        end = previous[0] + self._window_ms
        return end if now_ms < end else None

    def answered(self, uid: int, now_ms: int) -> None:
        self._answered[uid] = (now_ms, self._generation)

    def forget(self, uid: int) -> None:
        """The answer did not reach the caller (a failed stream): asking again is no repeat."""
        self._answered.pop(uid, None)

    def changed(self) -> None:
        """Another request changed what an export answers: the next export is a new question."""
        self._generation += 1


# -- erasure scope (pure) ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EraseScope:
    everything: bool = False
    before_ms: int | None = None
    purpose: str | None = None

    @property
    def name(self) -> str:
        return "all" if self.everything else "before" if self.before_ms is not None else "purpose"


def erase_scope(args: dict[str, Any], policy: Policy) -> EraseScope:
    """The one scope an erase request names; UsageError for none, several, or an unknown purpose."""
    chosen = [bool(args.get("all")), args.get("before_ms") is not None, args.get("purpose") is not None]
    if chosen.count(True) != 1:
        raise UsageError("erase needs exactly one of: --all, --before DATE, --purpose NAME")
    purpose = args.get("purpose")
    if purpose is not None and policy.purpose(purpose) is None:
        raise UsageError(f"the policy declares no purpose '{purpose}'")
    return EraseScope(everything=bool(args.get("all")), before_ms=args.get("before_ms"), purpose=purpose)


def keys_of_purpose(records: Iterable[Record], purpose: str) -> tuple[set[str], set[str]]:
    """(the data keys that sealed ``purpose``'s uploads, the other purposes whose uploads share those keys).

    Keys are per pseudonym epoch, not per purpose: destroying them erases every purpose of those epochs."""
    purposes_by_key: dict[str, set[str]] = collections.defaultdict(set)
    for record in records:
        if record.type == "upload" and record.sealed is not None:
            purposes_by_key[record.sealed.key_id].add(str(record.fields.get("purpose", "")))
    keys = {key_id for key_id, purposes in purposes_by_key.items() if purpose in purposes}
    others = set().union(*(purposes_by_key[key_id] for key_id in keys)) - {purpose}
    return keys, others


def iso_ms(time_ms: int) -> str:
    seconds, millis = divmod(time_ms, 1000)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def readme_notice(policy: Policy, ledger_retention_days: int) -> str:
    """The plain-words answers an access request asks, from the policy in force (the notice is the one
    ``privacyctl policy show`` prints, so the bundle cannot disagree with what is enforced)."""
    kept = (f"the keys that read them are destroyed {ledger_retention_days} days after their pseudonym epoch "
            "ends" if ledger_retention_days else "until you erase them (no automatic expiry is configured)")
    return "\n".join([
        "Your copy: what this device knows and did with your location and identifiers",
        "",
        "What data: the location switch history, every access to location (which purpose, how often), every",
        "upload with its recipient, region and the exact payload sent, your consents with the policy version and",
        "text they were given to, your requests (this one too, in the next copy) and how each was answered,",
        "and any incidents. Device identifiers (IMEI, IMSI, ICCID, cell IDs) are never uploaded.",
        f"Kept how long on this device: the records stay in the tamper-evident log; the personal parts in them stay "
        f"readable {kept}.",
        "Each purpose below says what is sent, to whom and where, and how long the recipient keeps it.",
        "",
        render_notice(policy, "text").rstrip(),
    ])


# -- the service ------------------------------------------------------------------------------------------

class RightsRequests:
    """Serves the rights ops; called on control-server threads (one erasure or export admission at a time)."""

    def __init__(self, ledger: Ledger, spool: Spool, policy: Callable[[], Policy], settings: RightsConfig, *,
                 clock: Clock, ledger_retention_days: int = 0) -> None:
        """``policy``: the policy in force now (corrections and an accepted change replace it)."""
        self._ledger = ledger
        self._spool = spool
        self._policy = policy
        self._clock = clock
        self._retention_days = ledger_retention_days
        self._window_s = settings.repeat_window_s
        self._repeats = RepeatGuard(settings.repeat_window_s * 1000)
        self._lock = threading.Lock()

    def handle(self, op: str, args: dict[str, Any], uid: int) -> dict[str, Any] | StreamReply:
        if op == "export":
            return self.export(uid)
        if op == "erase":
            return self.erase(erase_scope(args, self._policy()), uid)
        if op == "log.show":
            return self.log_show(record_type=args.get("type"), since_ms=args.get("since_ms"),
                                 limit=args.get("limit", DEFAULT_LOG_LIMIT))
        raise UsageError(f"'{op}' is not a rights op")

    # -- access -------------------------------------------------------------------------------------------
    def export(self, uid: int) -> StreamReply:
        """Admit an export (or refuse a repeat, recorded); the bundle is made as the client reads it."""
        now_ms = self._now_ms()
        with self._lock:
            end_ms = self._repeats.refusal_end(uid, now_ms)
            if end_ms is not None:
                reason = (f"an identical export was answered less than {self._window_s} s ago "
                          f"([rights] repeat_window_s); ask again after {iso_ms(end_ms)}")
                self._record("access", "export", uid, outcome="refused", reason="repeated",
                             window_ends=iso_ms(end_ms))
                raise RequestRefused(reason)
            self._repeats.answered(uid, now_ms)  # now: a second export racing this one is a repeat too
        count, head = self._ledger.head()
        header = {"records": count, "head": head, "policy_version": self._policy().version}
        return StreamReply(header=header, produce=lambda out: self._stream_bundle(out, uid))

    def _stream_bundle(self, out: StreamOut, uid: int) -> dict[str, Any]:
        try:
            summary = self._ledger.export_stream(out.write, progress=out.progress,
                                                 notice=readme_notice(self._policy(), self._retention_days))
        except AgentError as exc:
            with self._lock:
                self._repeats.forget(uid)
            self._record("access", "export", uid, outcome="failed", reason=exc.message[:200])
            raise
        self._record("access", "export", uid, outcome="answered", records=summary.records,
                     erased_records=summary.erased_records, bytes=summary.bytes, head=summary.head)
        return {"records": summary.records, "erased_records": summary.erased_records, "counts": summary.counts,
                "head": summary.head, "bytes": summary.bytes, "policy_version": self._policy().version}

    def log_show(self, *, record_type: str | None, since_ms: int | None, limit: int) -> dict[str, Any]:
        """The newest ``limit`` records (of ``record_type``, since ``since_ms``), newest first."""
        if record_type is not None and record_type not in SHOWN_TYPES:
            raise UsageError(f"'{record_type}' is not a record type (one of: {', '.join(sorted(SHOWN_TYPES))})")
        newest: collections.deque[Record] = collections.deque(maxlen=limit)
        matched = 0
        for record in self._ledger.records():
            if (record_type is None or record.type == record_type) and \
                    (since_ms is None or record.time_ms >= since_ms):
                newest.append(record)
                matched += 1
        return {"records": [self._record_view(record) for record in reversed(newest)], "matched": matched,
                "shown": len(newest)}

    def _record_view(self, record: Record) -> dict[str, Any]:
        view: dict[str, Any] = {"seq": record.seq, "time": iso_ms(record.time_ms), "type": record.type,
                                "fields": _json_safe(dict(record.fields))}
        if record.sealed is not None:
            personal = self._ledger.open_personal(record)
            view["personal"] = {"erased": True} if personal is None else _json_safe(personal)
        return view

    # -- erasure ------------------------------------------------------------------------------------------
    def erase(self, scope: EraseScope, uid: int) -> dict[str, Any]:
        """Purge the queued data of ``scope`` (dead letters too; the journal rewritten without it), destroy its
        keys, and record the request: all durable before this returns."""
        with self._lock:
            try:
                purged, summary, shared = self._erase_locked(scope)
            except AgentError as exc:
                self._record("erasure", "erase", uid, outcome="failed", scope=scope.name, reason=exc.message[:200])
                raise
            self._repeats.changed()
        facts: dict[str, Any] = {"scope": scope.name, "queued_purged": purged,
                                 "keys_destroyed": summary.keys_destroyed,
                                 "records_erased": summary.records_affected}
        if scope.before_ms is not None:
            facts["before"] = iso_ms(scope.before_ms)
        if scope.purpose is not None:
            facts.update(purpose=scope.purpose, also_erased_purposes=sorted(shared))
        self._record("erasure", "erase", uid, outcome="done", **facts)
        return {"erased": True, "durable": True, **facts}

    def _erase_locked(self, scope: EraseScope) -> tuple[int, Any, set[str]]:
        shared: set[str] = set()
        if scope.everything:
            purged = self._spool.purge_all(include_dead=True)
            self._spool.compact()
            return purged, self._ledger.erase(everything=True), shared
        if scope.before_ms is not None:
            purged = self._spool.purge_created_before(scope.before_ms, include_dead=True)
            self._spool.compact()
            return purged, self._ledger.erase(time_range=(0, scope.before_ms)), shared
        assert scope.purpose is not None
        purged = self._spool.purge(scope.purpose, include_dead=True)
        self._spool.compact()
        keys, shared = keys_of_purpose(self._ledger.records(), scope.purpose)
        return purged, self._ledger.erase(key_ids=keys), shared

    # -- records ------------------------------------------------------------------------------------------
    def _record(self, right: str, op: str, uid: int, *, outcome: str, **facts: Any) -> None:
        """The request and how it was answered, durable (a request record is fsynced before append returns)."""
        self._ledger.append("request", {"right": right, "op": op, "outcome": outcome, "by_uid": uid, **facts})

    def _now_ms(self) -> int:
        return int(self._clock.wall() * 1000)


def _json_safe(value: Any) -> Any:
    """Record values as JSON: bytes become text when they are UTF-8, else base64 (marked)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


__all__ = ["REQUEST_OPS", "EraseScope", "RepeatGuard", "RightsRequests", "erase_scope", "keys_of_purpose",
           "readme_notice"]
