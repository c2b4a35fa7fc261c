"""The user's rights the daemon serves besides the upload path's own (service): policy as code (show, diff,
accept, archive), corrections, and the notices they raise.

Strategy: the pure parts live in :mod:`agent.policy_notice` (documents), :mod:`agent.policy_versions` (snapshot
and diff) and :mod:`agent.corrections` (checks and folding). This class only reads and appends ledger records
and calls the pipeline's consent operations, so consent stays in one place (``Pipeline.consents``).

At start (``start``):

1. corrections recorded earlier are folded into the pipeline's policy (subject flags, declared region);
2. the policy in force is compared with the newest archived ``policy`` record. Nothing archived: it is archived.
   Changed: the new version is archived with its changes; a wording-only change carries each consent given for
   the old text to the new text (a ``consent`` record, ``by_uid`` -1) and raises a notice; a material change
   raises a notice and leaves the purpose suspended: its consent was given for the old text, which
   ``Consents.granted`` no longer accepts, so nothing is sent for it until ``privacyctl policy accept`` (or a
   fresh ``consent grant``). An added purpose needs its own consent grant: accepting does not grant it.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from agent import corrections, policy_versions
from agent.errors import PolicyError, UsageError
from agent.ledger import Ledger
from agent.pipeline import Pipeline
from agent.policy_notice import check_format, notice, render
from agent.privacy.policy import Policy
from agent.spool import Spool

log = logging.getLogger(__name__)

POLICY_RECORD = "policy"
POLICY_ACCEPT = "policy-accept"


class Rights:
    def __init__(self, ledger: Ledger, pipeline: Pipeline, spool: Spool) -> None:
        self._ledger = ledger
        self._pipeline = pipeline
        self._spool = spool
        self._lock = threading.Lock()
        self.notices: list[str] = []  # pending until the user accepts the policy change
        self.changes: list[policy_versions.PurposeChange] = []
        self.previous_version: str | None = None
        self.wrong_fixes: frozenset[str] = frozenset()

    # -- start -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        requests = [record.fields for record in self._ledger.records() if record.type == "request"]
        configured = self._pipeline.policy
        self._pipeline.policy = corrections.corrected_policy(configured, requests)
        self.wrong_fixes = corrections.wrong_fixes(requests)
        self._archive(configured)  # the policy as shipped: a user's correction is not a new policy version

    def _archive(self, policy: Policy) -> None:
        current = policy_versions.snapshot(policy)
        newest = self._ledger.last_record_of_type(POLICY_RECORD)
        if newest is not None and policy_versions.same_snapshot(newest.fields, current):
            self._restore_pending(newest.fields)
            return
        changes = policy_versions.diff(None if newest is None else newest.fields, current)
        previous = None if newest is None else str(newest.fields.get("version", ""))
        fields = {**current, "event": "archived" if newest is None else "changed",
                  "previous_version": previous or "",
                  "changes_json": json.dumps([change.as_dict() for change in changes], sort_keys=True),
                  "accepted": not any(change.kind in policy_versions.SUSPENDING for change in changes)}
        self._ledger.append(POLICY_RECORD, fields)
        self._ledger.flush()
        self.changes, self.previous_version = changes, previous
        self._carry_wording_consents(policy, changes)
        self._raise_notices(policy, changes)

    def _restore_pending(self, fields: Any) -> None:
        """After a restart: the newest archived change is still pending until accepted."""
        if fields.get("accepted", True) or self._accepted_after(fields):
            return
        try:
            raw = json.loads(str(fields.get("changes_json", "[]")))
        except ValueError:
            raw = []
        self.previous_version = str(fields.get("previous_version", "")) or None
        self.changes = [policy_versions.PurposeChange(item["purpose"], item["kind"], tuple(item["changed"]), "", "")
                        for item in raw if isinstance(item, dict)]
        self._raise_notices(self._pipeline.policy, self.changes)

    def _accepted_after(self, fields: Any) -> bool:
        version = fields.get("version")
        return any(record.type == "request" and record.fields.get("right") == POLICY_ACCEPT
                   and record.fields.get("policy_version") == version for record in self._ledger.records())

    def _carry_wording_consents(self, policy: Policy, changes: list[policy_versions.PurposeChange]) -> None:
        granted_for = self._granted_hashes()
        for change in changes:
            if change.kind == policy_versions.WORDING and granted_for.get(change.purpose) == change.old_hash:
                try:
                    self._pipeline.grant(change.purpose, uid=None)  # same data, precision, recipients: same consent
                except PolicyError as exc:  # e.g. a minor without a guardian: stays suspended, and says why
                    log.warning("consent for %s not carried to the new wording: %s", change.purpose, exc)

    def _granted_hashes(self) -> dict[str, str]:
        """Purpose -> the text hash its newest consent change granted (withdrawn purposes are left out)."""
        return {change.purpose: change.purpose_hash for change in self._pipeline.consents.changes()
                if change.kind == "purpose" and change.purpose is not None and change.granted}

    def _raise_notices(self, policy: Policy, changes: list[policy_versions.PurposeChange]) -> None:
        self.notices = []
        for change in changes:
            terms = ", ".join(change.changed)
            if change.kind == policy_versions.MATERIAL:
                text = (f"policy {policy.version}: purpose {change.purpose} changed ({terms}); it is suspended "
                        "until you accept (privacyctl policy show --diff; privacyctl policy accept)")
            elif change.kind == policy_versions.ADDED:
                text = (f"policy {policy.version}: new purpose {change.purpose}; nothing is sent for it unless you "
                        f"grant it (privacyctl consent grant {change.purpose})")
            elif change.kind == policy_versions.WORDING:
                text = f"policy {policy.version}: the description of purpose {change.purpose} changed (wording only)"
            elif change.kind == policy_versions.POLICY_WIDE:
                text = (f"policy {policy.version}: terms shown with purpose {change.purpose} changed ({terms}); "
                        "see privacyctl policy show --diff")
            else:
                text = f"policy {policy.version}: purpose {change.purpose} was removed; nothing is sent for it"
            self.notices.append(text)
        for text in self.notices:
            log.warning("%s", text)

    # -- ops ---------------------------------------------------------------------------------------------------
    def suspended(self) -> list[str]:
        """Purposes whose newest consent was given for another text than the one in force."""
        policy = self._pipeline.policy
        granted_for = self._granted_hashes()
        return [purpose.name for purpose in policy.purposes
                if purpose.name in granted_for and granted_for[purpose.name] != purpose.text_hash]

    def policy_show(self, *, fmt: str = "text", with_diff: bool = False) -> dict[str, Any]:
        check_format(fmt)
        policy = self._pipeline.policy
        tree = notice(policy)
        result: dict[str, Any] = {"policy_version": policy.version, "format": fmt, "notice": tree,
                                  "text": render(tree, fmt), "suspended": self.suspended(),
                                  "notices": list(self.notices)}
        if with_diff:
            result["previous_version"] = self.previous_version
            result["changes"] = [change.as_dict() for change in self.changes]
        return result

    def policy_accept(self, *, uid: int | None) -> dict[str, Any]:
        """Accept the policy in force: each suspended purpose's consent moves to its new text; recorded."""
        with self._lock:
            policy = self._pipeline.policy
            resumed, refused = [], {}
            for name in self.suspended():
                try:
                    self._pipeline.grant(name, uid=uid)
                    resumed.append(name)
                except PolicyError as exc:  # a minor without a guardian's consent: named, not silently dropped
                    refused[name] = exc.message
            self._ledger.append("request", {"right": POLICY_ACCEPT, "policy_version": policy.version,
                                            "purposes": resumed, "refused": refused,
                                            "outcome": "accepted" if not refused else "partly-accepted",
                                            "by_uid": -1 if uid is None else uid})
            if not refused:
                self.notices = []
        result: dict[str, Any] = {"accepted": True, "policy_version": policy.version, "resumed": resumed}
        if refused:
            result["not_resumed"] = refused
        return result

    def correct(self, what: str, raw_value: Any, *, uid: int | None) -> dict[str, Any]:
        """Apply and record one correction (see :mod:`agent.corrections`)."""
        corrections.check_what("what", what)
        value = corrections.check_value(what, raw_value)
        with self._lock:
            if what == "wrong-fix":
                return self._correct_wrong_fix(str(value), uid)
            if what == "guardian":
                assert isinstance(value, bool)
                self._pipeline.guardian(value, uid=uid)  # stored like any consent
                detail = "recorded as a guardian consent change"
            else:
                fields = corrections.request_fields(what, value, corrections.APPLIED, uid=uid)
                self._pipeline.policy = corrections.corrected_policy(self._pipeline.policy, [fields])
                detail = ("a sink outside this region now needs the cross-border consent" if what == "region"
                          else "a minor needs a guardian's consent" if value else "")
            self._ledger.append("request", corrections.request_fields(what, value, corrections.APPLIED, uid=uid,
                                                                      detail=detail))
        return {"corrected": what, "value": value, "outcome": corrections.APPLIED, "detail": detail}

    def _correct_wrong_fix(self, upload_id: str, uid: int | None) -> dict[str, Any]:
        statuses = [str(record.fields.get("status", "")) for record in self._ledger.records()
                    if record.type == "upload" and record.fields.get("id") == upload_id]
        if not statuses:
            self._ledger.append("request", corrections.request_fields("wrong-fix", upload_id, "refused", uid=uid,
                                                                      detail="no upload with this id"))
            raise UsageError("no upload with this id: name a fix by the id privacyctl uploads shows")
        self._spool.ack(upload_id)  # a copy still queued (a retry) is dropped: never sent again
        delivered = "delivered" in statuses
        detail = ("already delivered: it cannot be recalled from the recipient; it is marked wrong in exports"
                  if delivered else "not delivered; it will not be sent, and is marked wrong in exports")
        self._ledger.append("request", corrections.request_fields("wrong-fix", upload_id, corrections.APPLIED,
                                                                  uid=uid, detail=detail))
        self.wrong_fixes = self.wrong_fixes | {upload_id}
        return {"corrected": "wrong-fix", "value": upload_id, "outcome": corrections.APPLIED,
                "delivered": delivered, "detail": detail}


def status_extras(pipeline: Pipeline, rights: Rights, last_incidents: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``privacyctl status`` adds to the switch: purposes with consent and precision, sinks with recipient
    and region, the policy's pending notices, and the last incidents (all new keys)."""
    listed = pipeline.consent_list()
    suspended = set(rights.suspended())
    policy = pipeline.policy
    return {
        "policy_version": policy.version,
        "home_region": policy.home_region,
        "purposes": [{"purpose": item["purpose"], "legal_basis": item["legal_basis"], "granted": item["granted"],
                      "suspended": item["purpose"] in suspended, "precision_m": item["grid_m"],
                      "time_resolution_s": item["time_bucket_s"]} for item in listed["purposes"]],
        "sinks": [{"sink": sink.name, "recipient": sink.recipient, "region": sink.region,
                   "cross_border": sink.region != policy.home_region} for sink in policy.sinks],
        "cross_border": listed["cross_border"],
        "guardian": listed["guardian"],
        "policy_notices": list(rights.notices),
        "last_incidents": last_incidents[:LAST_INCIDENTS],
    }


LAST_INCIDENTS = 5
