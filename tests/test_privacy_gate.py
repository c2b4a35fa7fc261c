"""The gate refuses in every combination where one condition fails, and names the first rule that failed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.privacy.consent import Consents, cross_border_change, grant_change, guardian_change, withdraw_change
from agent.privacy.gate import RULES, Decision, DecisionLog, decide
from agent.privacy.policy import Policy
from tests.privacy_support import doc, policy

SINKS = [
    {"name": "operator", "url": "file:///var/a.jsonl", "recipient": "Example Fleet Ltd", "region": "CN"},
    {"name": "abroad", "url": "file:///var/b.jsonl", "recipient": "Example GmbH", "region": "EU"},
    {"name": "unused", "url": "file:///var/c.jsonl", "recipient": "Other Ltd", "region": "CN"},
]


@dataclass(frozen=True)
class Case:
    switch_on: bool
    observed_known: bool
    declared: bool
    sink_allowed: bool
    consented: bool
    region: str  # "home", "abroad-consented", "abroad"
    subject: str  # "adult", "minor-guardian-config", "minor-guardian-consent", "minor"
    exception: bool = False  # the legal-basis exception purpose instead of the consent purpose
    carries_location: bool = True

    def failing_rules(self) -> list[str]:
        checks = [
            ("switch-off", self.switch_on),
            ("observed-unknown", self.observed_known),
            ("undeclared-purpose", self.declared),
            ("undeclared-sink", self.sink_allowed),
            ("exception-no-location", not (self.exception and self.carries_location)),
            ("no-consent", self.consented or self.exception),
            ("cross-border", self.region != "abroad"),
            ("minor-without-guardian", self.subject != "minor"),
        ]
        return [rule for rule, holds in checks if not holds]

    def run(self) -> Decision:
        subject: dict[str, Any] = {"minor": self.subject != "adult",
                                   "guardian_consent": self.subject == "minor-guardian-config"}
        purposes = doc()["purpose"]
        purposes[1]["sinks"] = ["operator", "abroad"]
        parsed = policy(sink=SINKS, subject=subject, purpose=purposes)
        consents = Consents()
        if self.consented:
            consents.apply(grant_change(parsed, "fleet-tracking", 1))
        if self.region == "abroad-consented":
            consents.apply(cross_border_change(parsed, "EU", True, 2))
        if self.subject == "minor-guardian-consent":
            consents.apply(guardian_change(parsed, True, 3))
        sink = "abroad" if self.region.startswith("abroad") else "operator"
        purpose = "malfunction" if self.exception else "fleet-tracking"
        return decide(switch_on=self.switch_on, observed_known=self.observed_known, policy=parsed,
                      purpose_name=purpose if self.declared else "advertising",
                      sink_name=sink if self.sink_allowed else "unused", consents=consents,
                      carries_location=self.carries_location)


ALL_CASES = [Case(*values) for values in itertools.product(
    [True, False], [True, False], [True, False], [True, False], [True, False],
    ["home", "abroad-consented", "abroad"], ["adult", "minor-guardian-config", "minor-guardian-consent", "minor"],
    [False, True], [True, False])]


def _check(case: Case) -> None:
    decision = case.run()
    failing = case.failing_rules()
    assert decision.allowed == (not failing), case
    expected = min(failing, key=RULES.index) if failing else "ok"
    assert decision.rule == expected, case
    assert decision.reason and not any(ch.isdigit() for ch in decision.reason)


def test_every_combination() -> None:
    assert len(ALL_CASES) == 2**7 * 3 * 4
    for case in ALL_CASES:
        _check(case)
    allowed = [case for case in ALL_CASES if case.run().allowed]
    # two acceptable regions x three acceptable subjects x (consent purpose: consented, location or not;
    # exception purpose: no location, consented or not)
    assert len(allowed) == 2 * 3 * 4
    assert all(not (case.exception and case.carries_location) for case in allowed)


@given(st.builds(Case, st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                 st.sampled_from(["home", "abroad-consented", "abroad"]),
                 st.sampled_from(["adult", "minor-guardian-config", "minor-guardian-consent", "minor"]),
                 st.booleans(), st.booleans()))
def test_any_combination(case: Case) -> None:
    _check(case)


def _open_policy() -> tuple[Policy, Consents]:
    parsed = policy()
    consents = Consents()
    consents.apply(grant_change(parsed, "fleet-tracking", 1))
    return parsed, consents


def test_exception_purposes_never_carry_location_and_need_no_consent() -> None:
    parsed, consents = _open_policy()
    common: dict[str, Any] = {"switch_on": True, "observed_known": True, "policy": parsed,
                              "purpose_name": "malfunction", "sink_name": "operator", "consents": consents}
    assert decide(**common).rule == "exception-no-location"
    assert decide(**common, carries_location=True).rule == "exception-no-location"
    assert decide(**common, carries_location=False) == decide(**common, carries_location=False)
    assert decide(**common, carries_location=False).allowed
    assert decide(**dict(common, switch_on=False), carries_location=False).rule == "switch-off"


def test_withdrawal_closes_the_gate() -> None:
    parsed, consents = _open_policy()
    arguments: dict[str, Any] = {"switch_on": True, "observed_known": True, "policy": parsed,
                                 "purpose_name": "fleet-tracking", "sink_name": "operator", "consents": consents}
    assert decide(**arguments).allowed
    consents.apply(withdraw_change(parsed, "fleet-tracking", 2))
    assert decide(**arguments).rule == "no-consent"


def test_truthy_non_booleans_do_not_open_the_gate() -> None:
    parsed, consents = _open_policy()
    for flags in ({"switch_on": 1, "observed_known": True}, {"switch_on": True, "observed_known": "yes"}):
        decision = decide(**flags, policy=parsed, purpose_name="fleet-tracking",  # type: ignore[arg-type]
                          sink_name="operator", consents=consents)
        assert not decision.allowed


def test_a_changed_recipient_abroad_needs_fresh_cross_border_consent() -> None:
    parsed, consents = _open_policy()
    consents.apply(cross_border_change(parsed, "EU", True, 3))
    changed_doc = doc()
    changed_doc["sink"][1]["recipient"] = "Someone Else Inc"
    changed = policy(sink=changed_doc["sink"])
    consents.apply(grant_change(changed, "fleet-tracking", 4))
    arguments: dict[str, Any] = {"switch_on": True, "observed_known": True, "purpose_name": "fleet-tracking",
                                 "sink_name": "abroad", "consents": consents}
    assert decide(policy=changed, **arguments).rule == "cross-border"


def test_decision_log_is_bounded_and_counts_refusals() -> None:
    log = DecisionLog(per_purpose=3, max_purposes=2)
    refused = Decision(False, "no-consent", "No.")
    ok = Decision(True, "ok", "Yes.")
    for time_ms in range(10):
        log.record(time_ms, "fleet", "operator", refused if time_ms % 2 else ok)
    assert [logged.time_ms for logged in log.last("fleet")] == [7, 8, 9]
    assert log.refusals() == {"no-consent": 5} and log.refusals("fleet") == {"no-consent": 5}
    log.record(20, "other", "operator", Decision(False, "switch-off", "Off."))
    log.record(21, "third", "operator", ok)
    assert log.last("fleet") == ()  # the least recently decided purpose was forgotten
    assert [logged.purpose for logged in log.last()] == ["other", "third"]
    assert log.refusals() == {"no-consent": 5, "switch-off": 1}
    assert log.refusals("other") == {"switch-off": 1} and log.refusals("third") == {}
    with pytest.raises(ValueError):
        DecisionLog(per_purpose=0)
