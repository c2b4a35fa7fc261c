"""Corrections (pure): what a user can correct on the device, checked, and the policy in force after them.

What can be corrected (``privacyctl correct ...``), and what each one does:

- ``minor yes|no``: whether the subject is a minor. A minor needs a guardian's consent before any location
  purpose is granted or anything is sent (PIPL 31).
- ``guardian yes|no``: the guardian's consent for a minor; recorded as a guardian consent change, like
  ``privacyctl consent guardian``.
- ``region CODE``: the region the subject declares as theirs; it replaces ``[policy] home_region`` for the gate,
  so a sink in any other region needs the separate cross-border consent (PIPL 39).
- ``wrong-fix UPLOAD_ID``: a fix the user says was wrong, named by the upload id that ``privacyctl uploads``
  shows. If a copy of it is still queued (a retry) it is dropped and never sent; the upload is marked wrong in
  exports from then on. An upload already delivered cannot be recalled from its recipient: the correction is
  recorded, and the recipient is the one to ask.

Each correction is a ``request`` record (``right = "correction"``) with what was corrected, the new value and the
outcome. The subject flags and the region are folded from those records at start (:func:`corrected_policy`), so
a correction outlives restarts. The config stays as the integrator wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from agent.control_protocol import CORRECTIONS, check_correction
from agent.control_protocol import check_what as protocol_check_what
from agent.privacy.policy import REGION_PATTERN, Policy

WHATS = CORRECTIONS
RIGHT = "correction"
APPLIED = "applied"
# The checks are the control protocol's own, so privacyctl, the socket and the daemon apply one rule.
check_what = protocol_check_what
check_value = check_correction


def request_fields(what: str, value: bool | str, outcome: str, *, uid: int | None,
                   detail: str = "") -> dict[str, Any]:
    """The ``request`` record of one correction."""
    fields: dict[str, Any] = {"right": RIGHT, "what": what, "value": value, "outcome": outcome,
                              "by_uid": -1 if uid is None else uid}
    if detail:
        fields["detail"] = detail
    return fields


def corrected_policy(policy: Policy, requests: Iterable[Mapping[str, Any]]) -> Policy:
    """``policy`` with the applied subject and region corrections among ``requests`` folded in, in order."""
    for fields in requests:
        if fields.get("right") != RIGHT or fields.get("outcome") != APPLIED:
            continue
        what, value = fields.get("what"), fields.get("value")
        if what == "minor" and isinstance(value, bool):
            policy = replace(policy, subject=replace(policy.subject, minor=value))
        elif what == "region" and isinstance(value, str) and REGION_PATTERN.fullmatch(value):
            policy = replace(policy, home_region=value)
    return policy


def wrong_fixes(requests: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The upload ids the user flagged as wrong fixes."""
    return frozenset(str(fields["value"]) for fields in requests
                     if fields.get("right") == RIGHT and fields.get("what") == "wrong-fix"
                     and fields.get("outcome") == APPLIED and isinstance(fields.get("value"), str))
