"""Consent: changes as values, and the state folded from them in order.

Strategy: a :class:`ConsentChange` is what the ledger keeps in a "consent" record (``to_fields`` gives text, ints
and bools only). :class:`Consents` is rebuilt by applying every recorded change in order; it answers three
questions, and each answer is true only when the newest change for that question is a grant:

- ``granted(purpose)``: the newest change for the purpose is a grant made for the purpose's current
  ``text_hash``. A purpose whose text changed (description, fields, precision, recipients...) needs fresh
  consent (PIPL 14 para 2); the old grant simply stops counting.
- ``cross_border(region, text_hash)``: a separate consent (PIPL 39) for sending to recipients in ``region``;
  given ``text_hash`` (:meth:`Policy.region_text_hash`), a new recipient there needs fresh consent too.
- ``guardian()``: a guardian consented for a minor (PIPL 31).

The builders check against the policy: a purpose (or region) unknown to the policy cannot be granted
(:class:`UsageError` naming it). Withdrawing is always possible, even for a purpose the policy no longer has:
withdrawal must be as easy as giving, and it can only close gates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import UsageError
from agent.privacy.policy import NAME_PATTERN, REGION_PATTERN, Policy, Purpose

KINDS = ("purpose", "cross-border", "guardian")
_HASH = re.compile(r"[0-9a-f]{64}|")


@dataclass(frozen=True)
class ConsentChange:
    """One grant or withdrawal. ``purpose`` is set for kind "purpose", ``region`` for kind "cross-border";
    ``purpose_hash`` is the text hash the change refers to ("" for a withdrawal of something the policy lacks,
    and for guardian changes)."""

    kind: str
    purpose: str | None
    granted: bool
    policy_version: str
    purpose_hash: str
    time_ms: int
    region: str | None = None

    def __post_init__(self) -> None:
        _check_change(self)

    def to_fields(self) -> dict[str, Any]:
        """Ledger fields: text, ints and bools only; absent values are left out."""
        fields: dict[str, Any] = {"kind": self.kind, "granted": self.granted, "policy_version": self.policy_version,
                                  "purpose_hash": self.purpose_hash, "time_ms": self.time_ms}
        if self.purpose is not None:
            fields["purpose"] = self.purpose
        if self.region is not None:
            fields["region"] = self.region
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ConsentChange:
        """The change stored by :meth:`to_fields`; :class:`UsageError` naming the first bad field."""
        unknown = set(fields) - {"kind", "purpose", "granted", "policy_version", "purpose_hash", "time_ms", "region"}
        if unknown:
            raise UsageError(f"consent record: unknown field {sorted(unknown)[0]!r}")
        for key, kind in (("kind", str), ("granted", bool), ("policy_version", str), ("purpose_hash", str),
                          ("time_ms", int)):
            if key not in fields:
                raise UsageError(f"consent record: field {key!r} is missing")
            if not isinstance(fields[key], kind) or (kind is int and isinstance(fields[key], bool)):
                raise UsageError(f"consent record: field {key!r} must be {kind.__name__}")
        for key in ("purpose", "region"):
            if key in fields and not isinstance(fields[key], str):
                raise UsageError(f"consent record: field {key!r} must be str")
        return cls(kind=fields["kind"], purpose=fields.get("purpose"), granted=fields["granted"],
                   policy_version=fields["policy_version"], purpose_hash=fields["purpose_hash"],
                   time_ms=fields["time_ms"], region=fields.get("region"))


def _check_change(change: ConsentChange) -> None:
    if change.kind not in KINDS:
        raise UsageError("consent change: kind must be one of " + ", ".join(KINDS))
    wants_purpose, wants_region = change.kind == "purpose", change.kind == "cross-border"
    if wants_purpose != (change.purpose is not None) or (change.purpose is not None
                                                         and not NAME_PATTERN.fullmatch(change.purpose)):
        raise UsageError("consent change: a purpose name goes with, and only with, kind 'purpose'")
    if wants_region != (change.region is not None) or (change.region is not None
                                                       and not REGION_PATTERN.fullmatch(change.region)):
        raise UsageError("consent change: a region code goes with, and only with, kind 'cross-border'")
    if not _HASH.fullmatch(change.purpose_hash):
        raise UsageError("consent change: purpose_hash must be 64 lower-case hex digits or empty")
    if change.time_ms < 0:
        raise UsageError("consent change: time_ms must not be negative")


class Consents:
    """The consent state folded from changes in the order they were recorded."""

    def __init__(self) -> None:
        self._purposes: dict[str, ConsentChange] = {}
        self._regions: dict[str, ConsentChange] = {}
        self._guardian: ConsentChange | None = None

    def apply(self, change: ConsentChange) -> None:
        if change.kind == "purpose":
            assert change.purpose is not None  # checked when the change was made
            self._purposes[change.purpose] = change
        elif change.kind == "cross-border":
            assert change.region is not None
            self._regions[change.region] = change
        else:
            self._guardian = change

    def granted(self, purpose: Purpose) -> bool:
        newest = self._purposes.get(purpose.name)
        return newest is not None and newest.granted and newest.purpose_hash == purpose.text_hash

    def cross_border(self, region: str, text_hash: str | None = None) -> bool:
        newest = self._regions.get(region)
        if newest is None or not newest.granted:
            return False
        return text_hash is None or newest.purpose_hash == text_hash

    def guardian(self) -> bool:
        return self._guardian is not None and self._guardian.granted

    def changes(self) -> tuple[ConsentChange, ...]:
        """The newest change per question, for ``privacyctl consent list``."""
        guardian = () if self._guardian is None else (self._guardian,)
        return (*self._purposes.values(), *self._regions.values(), *guardian)


# -- builders --------------------------------------------------------------------------------------------
def _known_purpose(policy: Policy, purpose_name: str) -> Purpose:
    purpose = policy.purpose(purpose_name)
    if purpose is None:
        raise UsageError(f"unknown purpose {purpose_name!r}: the policy declares no such purpose")
    return purpose


def grant_change(policy: Policy, purpose_name: str, now_ms: int) -> ConsentChange:
    purpose = _known_purpose(policy, purpose_name)
    return ConsentChange("purpose", purpose.name, True, policy.version, purpose.text_hash, now_ms)


def withdraw_change(policy: Policy, purpose_name: str, now_ms: int) -> ConsentChange:
    if not NAME_PATTERN.fullmatch(purpose_name):
        raise UsageError("a purpose name is 1-64 characters: a-z, 0-9 and '-'")
    purpose = policy.purpose(purpose_name)
    return ConsentChange("purpose", purpose_name, False, policy.version,
                         "" if purpose is None else purpose.text_hash, now_ms)


def cross_border_change(policy: Policy, region: str, granted: bool, now_ms: int) -> ConsentChange:
    """Grant or withdraw the separate consent to send to recipients in ``region`` (not the home region)."""
    known = {sink.region for sink in policy.sinks} - {policy.home_region}
    if granted and region not in known:
        raise UsageError(f"region {region!r} has no sink outside the home region: nothing to consent to")
    if not REGION_PATTERN.fullmatch(region):
        raise UsageError("a region is an upper-case code such as CN or EU")
    return ConsentChange("cross-border", None, granted, policy.version, policy.region_text_hash(region), now_ms,
                         region=region)


def guardian_change(policy: Policy, granted: bool, now_ms: int) -> ConsentChange:
    """A guardian's consent (or its withdrawal) for a minor subject."""
    return ConsentChange("guardian", None, granted, policy.version, "", now_ms)
