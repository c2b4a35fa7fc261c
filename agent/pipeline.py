"""From fix to upload (service): gate, de-identification, leak check, ledger, spool.

Each fix that passed the switch's gate goes, for every declared purpose and each of its sinks, through:

1. the gate (:func:`agent.privacy.gate.decide`): switch on and observed, purpose declared and consented (or a
   declared exception, which never carries location), the sink's region home or consented, no minor without a
   guardian. Every decision is kept for ``privacyctl why``; every refusal is counted.
2. the access record: one ``fix_access`` ledger record per purpose per time bucket (count, first and last time,
   the precision given, refusals by rule), so the log stays bounded at 1 Hz;
3. time coarsening: one upload per purpose per time bucket, and at most ``max_points_per_day`` per pseudonym per
   UTC day;
4. de-identification (:func:`agent.privacy.deidentify.deidentify`) under the day's pseudonym and the device
   secret's keyed grid;
5. the leak check (:class:`agent.privacy.leakcheck.LeakCheck`), independent of the scrubber: the serialised bytes
   are searched for the device's own identifiers and the raw fix's exact position; a hit blocks the payload and
   records an incident;
6. the spool (durable, before anything is sent).

The uploader asks :meth:`Pipeline.may_send` again at send time (the gate is checked twice), and reports each
delivery (an ``upload`` ledger record: sink, recipient, region, the payload's SHA-256, and the payload itself,
encrypted under its pseudonym epoch's key, so ``identity reset`` and ``erase`` shred it) and each rejection.

Consent changes are durable ledger records before they are acknowledged; a withdrawal closes the purpose's gate
and purges its queued, unsent records before it returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from agent.errors import AgentError, ConsentRequired, StoreError, UsageError
from agent.ledger import Ledger
from agent.model import Clock, Fix
from agent.privacy import consent as consent_rules
from agent.privacy.coarsen import Coarsener, DailyCap, GridCoarsener, LaplaceCoarsener, bucket_time
from agent.privacy.consent import ConsentChange, Consents
from agent.privacy.deidentify import deidentify, serialize
from agent.privacy.gate import Decision, DecisionLog, decide
from agent.privacy.leakcheck import LeakCheck
from agent.privacy.local_gate import decide_local
from agent.privacy.policy import Policy, Purpose
from agent.privacy.pseudonym import epoch_of, pseudonym
from agent.spool import Message, Spool

log = logging.getLogger(__name__)

GateState = Callable[[], tuple[bool, bool]]  # (switch on and verified, modem's state observed)
IncidentSink = Callable[..., None]  # record_incident(kind, **facts)


class Verdict(NamedTuple):
    """What became of one fix for one purpose and sink: ``outcome`` is ``queued`` (with the exact ``body``), a
    gate rule that refused it (``no-consent``, ``cross-border``...), ``same-bucket``, ``daily-cap`` or
    ``leak-blocked``."""

    purpose: str
    sink: str
    outcome: str
    reason: str
    body: bytes | None = None


_QUEUED = "Every condition holds: de-identified, leak-checked and queued for the sink."
_SAME_BUCKET = "This purpose already has a point in this time bucket; another would refine the time."
_DAILY_CAP = "This pseudonym reached the purpose's points-per-day cap."


@dataclass
class Access:
    """Location accesses of one purpose within one time bucket (``bucket_ms``, its start), written as one
    ``fix_access`` ledger record; the local feed counts its windows with it too."""

    bucket_ms: int
    count: int = 0
    first_ms: int = 0
    last_ms: int = 0
    refused: Counter[str] = field(default_factory=Counter)


class Pipeline:
    """Turns fixes into spooled uploads; thread-safe (NMEA thread, control threads, uploader workers)."""

    def __init__(self, policy: Policy, ledger: Ledger, spool: Spool, *, secret: bytes, clock: Clock,
                 gate_state: GateState, record_incident: IncidentSink,
                 on_queued: Callable[[], None] = lambda: None,
                 unconditional_purposes: frozenset[str] = frozenset()) -> None:
        """``unconditional_purposes``: messages that carry no personal data and no location (the ledger's signed
        heads for the witness), which the gate does not hold back."""
        self.policy = policy
        self._unconditional = unconditional_purposes
        self._ledger = ledger
        self._spool = spool
        self._clock = clock
        self._gate_state = gate_state
        self._record_incident = record_incident
        self.on_queued = on_queued
        self._lock = threading.RLock()
        self.consents = _consents_from(ledger)
        self.decisions = DecisionLog()
        self.leak_check = LeakCheck([])
        self._set_secret(secret)
        self._access: dict[str, Access] = {}
        self._last_bucket: dict[str, int] = {}
        self.queued = 0
        self.blocked = 0

    def _set_secret(self, secret: bytes) -> None:
        self._secret = secret
        self._coarsener: Coarsener = (LaplaceCoarsener(secret) if self.policy.coarsening == "laplace"
                                      else GridCoarsener(secret))
        self._caps = {purpose.name: DailyCap(purpose.max_points_per_day) for purpose in self.policy.purposes}

    # -- the path of one fix (NMEA thread) ---------------------------------------------------------------------
    def on_fix(self, fix: Fix) -> list[Verdict]:
        """Take one fix through every purpose and sink; what happened to it, per purpose and sink."""
        if not fix.valid or fix.lat is None or fix.lon is None or fix.time is None:
            return []
        now_ms = self._now_ms()
        verdicts: list[Verdict] = []
        with self._lock:
            for purpose in self.policy.purposes:
                allowed = []
                for sink in purpose.sinks:
                    decision = self._decide(purpose.name, sink, now_ms)
                    if decision.allowed:
                        allowed.append(sink)
                    else:
                        verdicts.append(Verdict(purpose.name, sink, decision.rule, decision.reason))
                if allowed:
                    self._note_access(purpose, now_ms)
                    verdicts += self._emit(purpose, allowed, fix, now_ms)
        return verdicts

    def _decide(self, purpose_name: str, sink_name: str, now_ms: int) -> Decision:
        switch_on, observed_known = self._gate_state()
        decision = decide(switch_on=switch_on, observed_known=observed_known, policy=self.policy,
                          purpose_name=purpose_name, sink_name=sink_name, consents=self.consents)
        self.decisions.record(now_ms, purpose_name, sink_name, decision)
        if not decision.allowed:
            self._access_of(purpose_name, now_ms).refused[decision.rule] += 1
        return decision

    def _emit(self, purpose: Purpose, sinks: list[str], fix: Fix, now_ms: int) -> list[Verdict]:
        assert fix.time is not None
        bucket = int(bucket_time(fix.time, purpose.time_bucket_s).timestamp())
        if self._last_bucket.get(purpose.name) == bucket:
            # one point per bucket: more would refine time beyond the purpose's bucket
            return [Verdict(purpose.name, sink, "same-bucket", _SAME_BUCKET) for sink in sinks]
        self._last_bucket[purpose.name] = bucket
        epoch = epoch_of(fix.time.timestamp(), self.policy.pseudonym_epoch_s)
        name = pseudonym(self._secret, purpose.name, epoch)
        if not self._caps[purpose.name].admit(name, fix.time.astimezone(dt.UTC).date()):
            self._access_of(purpose.name, now_ms).refused["daily-cap"] += 1
            return [Verdict(purpose.name, sink, "daily-cap", _DAILY_CAP) for sink in sinks]
        verdicts = []
        for sink in sinks:
            message_id = secrets.token_hex(16)
            payload = deidentify(fix, purpose, coarsener=self._coarsener, pseudonym=name, message_id=message_id)
            body = serialize(payload)
            findings = self.leak_check.findings(body, fix)
            if findings:
                self.blocked += 1
                log.error("leak check blocked an upload for %s: %s", purpose.name, ", ".join(findings))
                self._record_incident("leak-blocked", purpose=purpose.name, sink=sink, found=list(findings),
                                      repaired=True)
                verdicts.append(Verdict(purpose.name, sink, "leak-blocked", ", ".join(findings)))
                continue
            self._spool.put(Message(id=message_id, sink=sink, purpose=purpose.name, body=body, created_ms=now_ms))
            self.queued += 1
            verdicts.append(Verdict(purpose.name, sink, "queued", _QUEUED, body))
        self.on_queued()
        return verdicts

    def _access_of(self, purpose_name: str, now_ms: int) -> Access:
        purpose = self.policy.purpose(purpose_name)
        bucket_ms = now_ms - now_ms % ((purpose.time_bucket_s if purpose else 900) * 1000)
        current = self._access.get(purpose_name)
        if current is not None and current.bucket_ms != bucket_ms:
            self._write_access(purpose_name, current)
            current = None
        if current is None:
            current = self._access[purpose_name] = Access(bucket_ms=bucket_ms)
        return current

    def _note_access(self, purpose: Purpose, now_ms: int) -> None:
        access = self._access_of(purpose.name, now_ms)
        access.count += 1
        access.first_ms = access.first_ms or now_ms
        access.last_ms = now_ms

    def _write_access(self, purpose_name: str, access: Access) -> None:
        purpose = self.policy.purpose(purpose_name)
        fields: dict[str, Any] = {"purpose": purpose_name, "count": access.count, "first_ms": access.first_ms,
                                  "last_ms": access.last_ms, "bucket_ms": access.bucket_ms,
                                  "grid_m": purpose.grid_m if purpose else 0,
                                  "time_bucket_s": purpose.time_bucket_s if purpose else 0,
                                  "refused": dict(sorted(access.refused.items()))}
        try:
            self._ledger.append("fix_access", fields)
        except StoreError as exc:
            log.error("cannot record location access: %s", exc)

    def flush(self) -> None:
        """Write the open access records (at a clean stop)."""
        with self._lock:
            for purpose_name, access in self._access.items():
                self._write_access(purpose_name, access)
            self._access.clear()

    # -- readers on the device (the local NMEA feed) -------------------------------------------------------------
    def local_decision(self, purpose_name: str) -> Decision:
        """May a local reader get location for this purpose now? The gate without the recipient's rules
        (:func:`agent.privacy.local_gate.decide_local`); not logged here (the feed counts its refusals).

        Without the pipeline's lock, which an upload holds across the spool's fsync: the feed asks before every
        write, and reading the consents is one dictionary lookup, atomic under the GIL."""
        switch_on, observed_known = self._gate_state()
        return decide_local(switch_on=switch_on, observed_known=observed_known, policy=self.policy,
                            purpose_name=purpose_name, consents=self.consents)

    @property
    def coarsener(self) -> Coarsener:
        """The coarsener keyed by the current device secret (a new one after ``identity reset``)."""
        return self._coarsener

    # -- the uploader's callbacks (worker threads) --------------------------------------------------------------
    def may_send(self, message: Message) -> bool:
        """The gate again, at send time: a message whose conditions no longer hold stays queued, unsent."""
        if message.purpose in self._unconditional:
            return True
        with self._lock:
            return self._decide(message.purpose, message.sink, self._now_ms()).allowed

    def on_delivered(self, message: Message) -> None:
        self._record_upload(message, "delivered")

    def on_dead(self, message: Message, reason: str) -> None:
        self._record_upload(message, "rejected", reason=reason)

    def _record_upload(self, message: Message, status: str, *, reason: str | None = None) -> None:
        sink = self.policy.sink(message.sink)
        fields: dict[str, Any] = {
            "id": message.id, "purpose": message.purpose, "sink": message.sink, "status": status,
            "recipient": sink.recipient if sink else "", "region": sink.region if sink else "",
            "sha256": hashlib.sha256(message.body).hexdigest(), "bytes": len(message.body),
        }
        if reason is not None:
            fields["reason"] = reason[:200]
        # The payload's key is its pseudonym epoch's: erasing that epoch (or identity reset) shreds it.
        epoch = epoch_of(message.created_ms / 1000, self.policy.pseudonym_epoch_s)
        try:
            self._ledger.append("upload", fields, personal={"payload": message.body}, epoch=epoch)
            # Durable before the spool forgets the message: what left the device is never missing from the log
            # (a crash after this and before the ack sends it again: at least once, recorded at least once).
            self._ledger.flush()
        except StoreError as exc:
            log.error("cannot record an upload: %s", exc)

    # -- consent and identity (control threads) -----------------------------------------------------------------
    def grant(self, purpose_name: str, *, uid: int | None) -> dict[str, Any]:
        change = consent_rules.grant_change(self.policy, purpose_name, self._now_ms())
        purpose = self.policy.purpose(purpose_name)
        subject = self.policy.subject
        if purpose is not None and not purpose.is_exception and subject.minor and \
                not (subject.guardian_consent or self.consents.guardian()):
            # PIPL 31: refused at the grant itself, not only at send time (the gate's minor-without-guardian)
            raise ConsentRequired("the user is a minor: a location purpose can be granted only after the "
                                  "guardian's consent is recorded (privacyctl consent guardian grant)")
        return self._change(change, uid)

    def withdraw(self, purpose_name: str, *, uid: int | None) -> dict[str, Any]:
        """Withdraw: durable, the purpose's gate closed, and its queued records purged before this returns."""
        result = self._change(consent_rules.withdraw_change(self.policy, purpose_name, self._now_ms()), uid)
        with self._lock:
            result["purged"] = self._spool.purge(purpose_name)
            self._last_bucket.pop(purpose_name, None)
        return result

    def cross_border(self, region: str, granted: bool, *, uid: int | None) -> dict[str, Any]:
        return self._change(consent_rules.cross_border_change(self.policy, region, granted, self._now_ms()), uid)

    def guardian(self, granted: bool, *, uid: int | None) -> dict[str, Any]:
        return self._change(consent_rules.guardian_change(self.policy, granted, self._now_ms()), uid)

    def _change(self, change: ConsentChange, uid: int | None) -> dict[str, Any]:
        with self._lock:
            self._ledger.append("consent", {**change.to_fields(), "by_uid": -1 if uid is None else uid})
            self.consents.apply(change)  # only after the record is durable: durable before acknowledged
        return {"recorded": True, **_consent_view(change)}

    def consent_list(self) -> dict[str, Any]:
        with self._lock:
            purposes = [{
                "purpose": purpose.name, "description": purpose.description, "legal_basis": purpose.legal_basis,
                "granted": purpose.is_exception or self.consents.granted(purpose),
                "grid_m": purpose.grid_m, "time_bucket_s": purpose.time_bucket_s,
                "recipients": [{"sink": name, "recipient": recipient, "region": region}
                               for name, recipient, region in purpose.sink_terms],
            } for purpose in self.policy.purposes]
            abroad = sorted({sink.region for sink in self.policy.sinks} - {self.policy.home_region})
            return {
                "policy_version": self.policy.version, "home_region": self.policy.home_region,
                "purposes": purposes,
                "cross_border": [{"region": region, "granted": self.consents.cross_border(
                    region, self.policy.region_text_hash(region))} for region in abroad],
                "guardian": {"minor": self.policy.subject.minor,
                             "granted": self.policy.subject.guardian_consent or self.consents.guardian()},
            }

    def reset_identity(self, secret: bytes) -> dict[str, Any]:
        """A new device secret is in force: new pseudonyms, a new grid; queued records of the old ones go."""
        with self._lock:
            self._set_secret(secret)
            self._last_bucket.clear()
            purged = self._spool.purge_all(include_dead=True)
        return {"purged": purged}

    def why(self, purpose_name: str | None) -> dict[str, Any]:
        """The last decisions (and the rule that decided each), refusal counts, and what would be decided now."""
        if purpose_name is not None and self.policy.purpose(purpose_name) is None:
            raise UsageError(f"unknown purpose {purpose_name!r}: the policy declares no such purpose")
        with self._lock:
            chosen = [p for p in self.policy.purposes if purpose_name in (None, p.name)]
            switch_on, observed_known = self._gate_state()
            now = [{"purpose": purpose.name, "sink": sink, **_decision_view(decide(
                switch_on=switch_on, observed_known=observed_known, policy=self.policy, purpose_name=purpose.name,
                sink_name=sink, consents=self.consents))} for purpose in chosen for sink in purpose.sinks]
            last = [{"time_ms": logged.time_ms, "purpose": logged.purpose, "sink": logged.sink,
                     **_decision_view(logged.decision)} for logged in self.decisions.last(purpose_name)[-20:]]
            return {"now": now, "last": last[::-1], "refusals": self.decisions.refusals(purpose_name)}

    def _now_ms(self) -> int:
        return int(self._clock.wall() * 1000)


def _consents_from(ledger: Ledger) -> Consents:
    """The consent state, folded from the ledger's consent records in order (the ledger is the truth)."""
    consents = Consents()
    for record in ledger.records():
        if record.type != "consent":
            continue
        try:
            change = {key: value for key, value in record.fields.items() if key != "by_uid"}  # who, not what
            consents.apply(ConsentChange.from_fields(change))
        except (AgentError, ValueError, KeyError, TypeError) as exc:
            log.error("a consent record cannot be read (seq %s): %s", record.seq, exc)
    return consents


def _consent_view(change: ConsentChange) -> dict[str, Any]:
    return {key: value for key, value in change.to_fields().items() if value is not None}


def _decision_view(decision: Decision) -> dict[str, Any]:
    return {"allowed": decision.allowed, "rule": decision.rule, "reason": decision.reason}
