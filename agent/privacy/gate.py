"""The gate: may this record go to this sink for this purpose now? Fail closed (DESIGN invariant 1).

Strategy: :func:`decide` walks a fixed list of rules in order and returns the first refusal, or "ok" when every
rule holds. The rules, with their stable ids (shown by ``privacyctl why``):

==========================  ==========================================================================
``switch-off``              the location switch is off
``observed-unknown``        the modem's real state is not known (not yet read back, or unreachable)
``undeclared-purpose``      the policy declares no such purpose
``undeclared-sink``         no such sink, or the purpose may not use it
``exception-no-location``   a legal-basis exception purpose asked to carry location
``no-consent``              a consent purpose without a grant for its current text
``cross-border``            the sink is outside the home region and there is no cross-border consent
``minor-without-guardian``  the subject is a minor and no guardian consented
``ok``                      everything holds
==========================  ==========================================================================

Every rule applies to every record, location-bearing or not: the switch and the observed state are checked even
for an exception purpose's record without location (the strict reading of "fail closed").
:class:`DecisionLog` keeps the last decisions per purpose and counts refusals per rule.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

from agent.privacy.consent import Consents
from agent.privacy.policy import Policy

RULES = ("switch-off", "observed-unknown", "undeclared-purpose", "undeclared-sink", "exception-no-location",
         "no-consent", "cross-border", "minor-without-guardian", "ok")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str


_OK = Decision(True, "ok", "Every condition holds: the switch is on, the purpose is declared and allowed, "
                           "and the recipient's region is allowed.")
_OK_LOCAL = Decision(True, "ok", "Every condition holds: the switch is on and the purpose is declared and allowed.")
_REFUSALS = {
    "switch-off": "The location switch is off.",
    "observed-unknown": "The modem's real location state is not known yet, so nothing is sent.",
    "undeclared-purpose": "The policy does not declare this purpose.",
    "undeclared-sink": "The purpose is not declared to send to this recipient.",
    "exception-no-location": "This purpose relies on a legal exception and may never carry location.",
    "no-consent": "This purpose has no consent for its current description.",
    "cross-border": "The recipient is outside the home region and there is no cross-border consent.",
    "minor-without-guardian": "The user is a minor and no guardian has consented.",
}


def _refuse(rule: str) -> Decision:
    return Decision(False, rule, _REFUSALS[rule])


def decide(*, switch_on: bool, observed_known: bool, policy: Policy, purpose_name: str, sink_name: str | None,
           consents: Consents, carries_location: bool = True) -> Decision:
    """The first rule that refuses, or ``ok``; see the module docstring for the order.

    ``sink_name`` None is a reader on this device itself (the local NMEA feed): there is no recipient, so the two
    rules about one (``undeclared-sink``, ``cross-border``) do not apply; every other rule does, in the same order.
    """
    if switch_on is not True:
        return _refuse("switch-off")
    if observed_known is not True:
        return _refuse("observed-unknown")
    purpose = policy.purpose(purpose_name)
    if purpose is None:
        return _refuse("undeclared-purpose")
    sink = None if sink_name is None else policy.sink(sink_name)
    if sink_name is not None and (sink is None or sink.name not in purpose.sinks):
        return _refuse("undeclared-sink")
    if purpose.is_exception:
        if carries_location is not False:
            return _refuse("exception-no-location")
    elif not consents.granted(purpose):
        return _refuse("no-consent")
    if sink is not None and sink.region != policy.home_region and \
            not consents.cross_border(sink.region, policy.region_text_hash(sink.region)):
        return _refuse("cross-border")
    if policy.subject.minor and not (policy.subject.guardian_consent or consents.guardian()):
        return _refuse("minor-without-guardian")
    return _OK if sink is not None else _OK_LOCAL


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    time_ms: int
    purpose: str
    sink: str
    decision: Decision


class DecisionLog:
    """The last ``per_purpose`` decisions of each of at most ``max_purposes`` purposes (the least recently
    decided purpose is forgotten first), and refusal counts per rule and per (purpose, rule), which are never
    forgotten while the agent runs (per (purpose, rule) for at most ``max_purposes`` x rules pairs)."""

    def __init__(self, per_purpose: int = 20, max_purposes: int = 64) -> None:
        if per_purpose < 1 or max_purposes < 1:
            raise ValueError("DecisionLog bounds must be at least 1")
        self._per_purpose = per_purpose
        self._max_purposes = max_purposes
        self._recent: OrderedDict[str, deque[LoggedDecision]] = OrderedDict()
        self._refusals: Counter[str] = Counter()
        self._refusals_by_purpose: Counter[tuple[str, str]] = Counter()

    def record(self, time_ms: int, purpose: str, sink: str, decision: Decision) -> None:
        recent = self._recent.pop(purpose, None) or deque(maxlen=self._per_purpose)
        recent.append(LoggedDecision(time_ms, purpose, sink, decision))
        self._recent[purpose] = recent
        if len(self._recent) > self._max_purposes:
            self._recent.popitem(last=False)
        if not decision.allowed:
            self._refusals[decision.rule] += 1
            # purpose names come from callers (an undeclared one is refused, but still counted): bound the keys
            key = (purpose, decision.rule)
            if key in self._refusals_by_purpose or len(self._refusals_by_purpose) < self._max_purposes * len(RULES):
                self._refusals_by_purpose[key] += 1

    def last(self, purpose: str | None = None) -> tuple[LoggedDecision, ...]:
        """The remembered decisions, oldest first: of one purpose, or of all (ordered by time)."""
        if purpose is not None:
            return tuple(self._recent.get(purpose, ()))
        every = [logged for recent in self._recent.values() for logged in recent]
        return tuple(sorted(every, key=lambda logged: logged.time_ms))

    def refusals(self, purpose: str | None = None) -> dict[str, int]:
        """Refusal counts per rule: overall, or of one purpose."""
        if purpose is None:
            return dict(self._refusals)
        return {rule: count for (name, rule), count in self._refusals_by_purpose.items() if name == purpose}
