"""Consent changes and the state folded from them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import UsageError
from agent.privacy.consent import (
    ConsentChange,
    Consents,
    cross_border_change,
    grant_change,
    guardian_change,
    withdraw_change,
)
from tests.privacy_support import doc, policy


def _fleet_changed_text() -> list[dict[str, Any]]:
    purposes: list[dict[str, Any]] = doc()["purpose"]
    purposes[0]["description"] = "Now also shared with insurers"
    return purposes


def test_grant_then_withdraw() -> None:
    parsed = policy()
    fleet = parsed.purpose("fleet-tracking")
    assert fleet is not None
    consents = Consents()
    assert not consents.granted(fleet)
    consents.apply(grant_change(parsed, "fleet-tracking", 1000))
    assert consents.granted(fleet)
    consents.apply(withdraw_change(parsed, "fleet-tracking", 2000))
    assert not consents.granted(fleet)
    consents.apply(grant_change(parsed, "fleet-tracking", 3000))
    assert consents.granted(fleet)


def test_a_changed_purpose_text_needs_fresh_consent() -> None:
    old, new = policy(), policy(purpose=_fleet_changed_text())
    consents = Consents()
    consents.apply(grant_change(old, "fleet-tracking", 1000))
    fleet_new = new.purpose("fleet-tracking")
    assert fleet_new is not None and not consents.granted(fleet_new)
    consents.apply(grant_change(new, "fleet-tracking", 2000))
    assert consents.granted(fleet_new)


def test_unknown_purpose_cannot_be_granted_but_can_be_withdrawn() -> None:
    with pytest.raises(UsageError, match="unknown purpose 'advertising'"):
        grant_change(policy(), "advertising", 1)
    change = withdraw_change(policy(), "advertising", 1)
    assert (change.granted, change.purpose_hash) == (False, "")
    with pytest.raises(UsageError):
        withdraw_change(policy(), "Not A Name", 1)


def test_consent_for_one_purpose_is_not_consent_for_another() -> None:
    parsed = policy()
    consents = Consents()
    consents.apply(grant_change(parsed, "malfunction", 1))
    fleet = parsed.purpose("fleet-tracking")
    assert fleet is not None and not consents.granted(fleet)


def test_cross_border_and_guardian() -> None:
    parsed = policy()
    consents = Consents()
    hash_eu = parsed.region_text_hash("EU")
    assert not consents.cross_border("EU", hash_eu) and not consents.guardian()
    consents.apply(cross_border_change(parsed, "EU", True, 5))
    assert consents.cross_border("EU", hash_eu) and consents.cross_border("EU")
    assert not consents.cross_border("US") and not consents.cross_border("EU", "0" * 64)
    consents.apply(cross_border_change(parsed, "EU", False, 6))
    assert not consents.cross_border("EU", hash_eu)
    consents.apply(guardian_change(parsed, True, 7))
    assert consents.guardian()
    consents.apply(guardian_change(parsed, False, 8))
    assert not consents.guardian()
    with pytest.raises(UsageError, match="region 'US'"):
        cross_border_change(parsed, "US", True, 9)
    with pytest.raises(UsageError, match="region 'CN'"):
        cross_border_change(parsed, "CN", True, 9)  # the home region needs no cross-border consent


def test_fields_round_trip_and_hold_no_floats() -> None:
    parsed = policy()
    for change in (grant_change(parsed, "fleet-tracking", 12), withdraw_change(parsed, "fleet-tracking", 13),
                   cross_border_change(parsed, "EU", True, 14), guardian_change(parsed, True, 15)):
        fields = change.to_fields()
        assert all(isinstance(value, str | int | bool) and not isinstance(value, float) for value in fields.values())
        assert ConsentChange.from_fields(fields) == change


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "purpose", "granted": True, "policy_version": "v", "purpose_hash": "", "time_ms": 1},
     "a purpose name goes with"),
    ({"kind": "other", "granted": True, "policy_version": "v", "purpose_hash": "", "time_ms": 1}, "kind must be"),
    ({"kind": "guardian", "granted": 1, "policy_version": "v", "purpose_hash": "", "time_ms": 1},
     "field 'granted' must be bool"),
    ({"kind": "guardian", "granted": True, "policy_version": "v", "purpose_hash": "", "time_ms": True},
     "field 'time_ms' must be int"),
    ({"kind": "guardian", "granted": True, "policy_version": "v", "purpose_hash": "xyz", "time_ms": 1},
     "purpose_hash must be"),
    ({"kind": "guardian", "granted": True, "policy_version": "v", "time_ms": 1}, "field 'purpose_hash' is missing"),
    ({"kind": "guardian", "granted": True, "policy_version": "v", "purpose_hash": "", "time_ms": 1, "x": 1},
     "unknown field 'x'"),
    ({"kind": "cross-border", "granted": True, "policy_version": "v", "purpose_hash": "", "time_ms": 1},
     "a region code goes with"),
    ({"kind": "guardian", "granted": True, "policy_version": "v", "purpose_hash": "", "time_ms": -1},
     "time_ms must not be negative"),
])
def test_bad_records_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ConsentChange.from_fields(fields)


@given(st.lists(st.tuples(st.sampled_from(["fleet-tracking", "malfunction"]), st.booleans()), max_size=30))
def test_the_newest_change_decides(history: list[tuple[str, bool]]) -> None:
    parsed = policy()
    consents = Consents()
    for time_ms, (name, granted) in enumerate(history):
        build = grant_change if granted else withdraw_change
        consents.apply(build(parsed, name, time_ms))
    for name in ("fleet-tracking", "malfunction"):
        purpose = parsed.purpose(name)
        assert purpose is not None
        newest = [granted for changed, granted in history if changed == name]
        assert consents.granted(purpose) == (bool(newest) and newest[-1])
