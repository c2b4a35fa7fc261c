"""Policy versions (pure): what the ledger archives of a policy, and what changed between two of them.

Strategy: a snapshot is the policy version and, per purpose, its full text (the terms the user is told, as
canonical JSON), its ``text_hash`` (the hash consent is tied to) and a ``material_hash`` over everything but the
description. Comparing two snapshots purpose by purpose gives one :class:`PurposeChange` each:

- ``added``: a new purpose (material: it needs consent of its own before anything is sent for it);
- ``material``: fields, precision (grid, time bucket, daily cap), retention, legal basis, sinks,
  recipients or regions changed. Consent given for the old text no longer counts (``Consents.granted``
  compares text hashes), so the purpose is suspended until the user accepts again (``privacyctl policy accept``);
- ``wording``: only the description changed. The user is told (a notice), and the consent given for the old
  text is carried to the new one, since nothing the user agreed to about data, precision or recipients changed;
- ``removed``: the purpose is gone; nothing is sent for it any more (a notice);
- ``policy-wide``: the purpose's own text is unchanged but a policy-wide term it is shown with changed (the
  coarsening method, or the home region that decides what is cross-border). These are not part of the text hash
  consent is tied to, so the consent still counts: a notice, not a suspension (a known limit, docs/policy.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import UsageError
from agent.policy_notice import purpose_terms
from agent.privacy.policy import Policy

ADDED, MATERIAL, WORDING, REMOVED = "added", "material", "wording", "removed"
POLICY_WIDE = "policy-wide"  # coarsening or home region: outside the purpose's text hash, see below
SUSPENDING = frozenset({ADDED, MATERIAL})


@dataclass(frozen=True)
class PurposeChange:
    purpose: str
    kind: str  # ADDED, MATERIAL, WORDING or REMOVED
    changed: tuple[str, ...]  # the terms that differ ("description", "precision_m", "recipients", ...)
    old_hash: str  # "" for an added purpose
    new_hash: str  # "" for a removed purpose

    def as_dict(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "kind": self.kind, "changed": list(self.changed),
                "suspends": self.kind in SUSPENDING}


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def snapshot(policy: Policy) -> dict[str, Any]:
    """What the ledger keeps of ``policy`` (text and ints only: the terms travel as canonical JSON text)."""
    purposes = {}
    for purpose in policy.purposes:
        terms = purpose_terms(policy, purpose)
        material = {key: value for key, value in terms.items() if key != "description"}
        purposes[purpose.name] = {"text_hash": purpose.text_hash,
                                  "material_hash": hashlib.sha256(_canonical(material).encode()).hexdigest(),
                                  "terms": _canonical(terms)}
    return {"version": policy.version, "home_region": policy.home_region, "purposes_json": _canonical(purposes)}


def same_snapshot(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.get("version") == new.get("version") and old.get("purposes_json") == new.get("purposes_json")


def _purposes(snap: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    try:
        purposes = json.loads(str(snap.get("purposes_json", "{}")))
    except ValueError:
        raise UsageError("policy archive: a policy record holds no readable purposes") from None
    if not isinstance(purposes, dict):
        raise UsageError("policy archive: a policy record holds no readable purposes")
    return purposes


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[PurposeChange]:
    """The purpose changes from snapshot ``old`` (None: nothing archived yet, so nothing changed) to ``new``."""
    if old is None:
        return []
    before, after = _purposes(old), _purposes(new)
    changes = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            changes.append(PurposeChange(name, ADDED, ("purpose",), "", now["text_hash"]))
        elif now is None and was is not None:
            changes.append(PurposeChange(name, REMOVED, ("purpose",), was["text_hash"], ""))
        elif was is not None and now is not None and was["text_hash"] != now["text_hash"]:
            kind = WORDING if was["material_hash"] == now["material_hash"] else MATERIAL
            changes.append(PurposeChange(name, kind, _changed_terms(was["terms"], now["terms"]),
                                         was["text_hash"], now["text_hash"]))
        elif was is not None and now is not None and was["material_hash"] != now["material_hash"]:
            changes.append(PurposeChange(name, POLICY_WIDE, _changed_terms(was["terms"], now["terms"]),
                                         was["text_hash"], now["text_hash"]))
    return changes


def _changed_terms(old_terms: str, new_terms: str) -> tuple[str, ...]:
    try:
        was, now = json.loads(old_terms), json.loads(new_terms)
    except ValueError:
        return ("terms",)
    if not isinstance(was, dict) or not isinstance(now, dict):
        return ("terms",)
    return tuple(sorted(key for key in was.keys() | now.keys() if was.get(key) != now.get(key))) or ("terms",)
