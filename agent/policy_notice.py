"""Policy as code (pure): the notice the user is told, a record of processing activities (GDPR Art. 30) and a
skeleton personal-information impact assessment (PIPL Art. 55), all built from the :class:`Policy` in force.

Strategy: each document is first a plain JSON-able tree (``notice``, ``record_of_processing``,
``impact_assessment``) built from the policy alone, so the daemon (``privacyctl policy show``) and the offline
tool (``privacy-agent policy render``) print the very same thing, and what is shown cannot disagree with what the
gate enforces: both read the same frozen dataclasses. ``render`` turns a tree into text, Markdown or JSON.

Nothing here reads files, the clock or the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent.errors import UsageError
from agent.privacy.policy import Policy, Purpose

FORMATS = ("text", "markdown", "json")

#: Always carried by an upload, whatever the purpose allows (see agent/privacy/deidentify.py).
BASE_FIELDS = ("pseudonym", "time (bucketed)", "position (coarsened)", "accuracy")

#: The user's rights and the command that exercises each one; the notice lists them verbatim.
RIGHTS: tuple[tuple[str, str], ...] = (
    ("access and copy (PIPL 45, GDPR 15/20)", "privacyctl export --out FILE; privacyctl uploads; privacyctl log show"),
    ("correction (PIPL 46, GDPR 16)",
     "privacyctl correct minor|guardian|region|wrong-fix ... (see privacyctl correct --help)"),
    ("deletion (PIPL 47, GDPR 17)", "privacyctl erase --all | --before DATE | --purpose NAME; "
                                    "privacyctl identity reset"),
    ("withdrawal of consent (PIPL 15, GDPR 7(3))", "privacyctl consent withdraw PURPOSE (effective before it returns)"),
    ("refusal of location entirely", "privacyctl location off"),
    ("to know why data was or was not sent", "privacyctl why [PURPOSE]"),
    ("notice of policy changes", "privacyctl policy show --diff; privacyctl policy accept"),
    ("notice of security incidents", "privacyctl incidents; privacyctl status"),
)


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise UsageError("format must be one of " + ", ".join(FORMATS))
    return value


# -- documents as trees ------------------------------------------------------------------------------------
def purpose_terms(policy: Policy, purpose: Purpose) -> dict[str, Any]:
    """Everything the user is told about one purpose (the same inputs as its consent hash)."""
    basis = "consent" if not purpose.is_exception else f"exception: {purpose.legal_basis.split(':', 1)[1]}"
    return {
        "purpose": purpose.name,
        "description": purpose.description,
        "legal_basis": basis,
        "needs_consent": not purpose.is_exception,
        "carries_location": not purpose.is_exception,
        "data": [*BASE_FIELDS, *purpose.fields] if not purpose.is_exception else ["no location", *purpose.fields],
        "precision_m": purpose.grid_m,
        "coarsening": policy.coarsening,
        "time_resolution_s": purpose.time_bucket_s,
        "max_points_per_day": purpose.max_points_per_day,
        "retention_days": purpose.retention_days,
        "recipients": [{"sink": name, "recipient": recipient, "region": region,
                        "cross_border": region != policy.home_region}
                       for name, recipient, region in purpose.sink_terms],
    }


def notice(policy: Policy) -> dict[str, Any]:
    """The privacy notice of ``policy``: what, why, to whom, where, how long, on what basis, and the rights."""
    return {
        "document": "privacy notice",
        "policy_version": policy.version,
        "home_region": policy.home_region,
        "pseudonym_epoch_s": policy.pseudonym_epoch_s,
        "purposes": [purpose_terms(policy, purpose) for purpose in policy.purposes],
        "subject": {"minor": policy.subject.minor,
                    "guardian_consent_required": policy.subject.minor},
        "cross_border_regions": sorted({sink.region for sink in policy.sinks} - {policy.home_region}),
        "rights": [{"right": right, "how": how} for right, how in RIGHTS],
        "nothing_else": "Nothing is uploaded for a purpose not listed here, and nothing with location while "
                        "location is off." if policy.purposes else
                        "This policy declares no purpose: nothing is ever uploaded.",
    }


def record_of_processing(policy: Policy) -> dict[str, Any]:
    """A record of processing activities (GDPR Art. 30(1)): one activity per purpose. The controller's identity
    and contact are not in the config: the record leaves them for the integrator to fill in."""
    return {
        "document": "record of processing activities (GDPR Art. 30)",
        "policy_version": policy.version,
        "controller": "TO FILL IN: name and contact of the controller (and representative, DPO)",
        "activities": [{
            "purpose": purpose.name,
            "description": purpose.description,
            "legal_basis": purpose_terms(policy, purpose)["legal_basis"],
            "categories_of_data_subjects": ["the user of this device"
                                            + (" (a minor: guardian consent)" if policy.subject.minor else "")],
            "categories_of_personal_data": purpose_terms(policy, purpose)["data"],
            "categories_of_recipients": [f"{recipient} ({region})" for _, recipient, region in purpose.sink_terms],
            "transfers_to_third_countries": [f"{recipient} ({region})" for _, recipient, region in purpose.sink_terms
                                             if region != policy.home_region],
            "transfer_safeguards": "separate consent per region recorded on the device; "
                                   "TO FILL IN: the legal mechanism (PIPL 38, GDPR 44-49)",
            "retention_days": purpose.retention_days,
            "security_measures": list(SECURITY_MEASURES),
        } for purpose in policy.purposes],
    }


SECURITY_MEASURES = (
    "pseudonymisation with a device secret that identity reset replaces",
    "coarsening of positions to a grid of at least the purpose's precision",
    "time bucketing and a daily cap per purpose",
    "a leak check against the device's own identifiers before anything leaves",
    "a tamper-evident, signed log with per-pseudonym encryption keys (erasure by key destruction)",
    "a location switch verified on the modem; the gate closed whenever it is not verified",
)


def impact_assessment(policy: Policy) -> dict[str, Any]:
    """A skeleton personal-information impact assessment (PIPL Art. 55/56): what the config says, and the
    judgements a person must write (marked TO ASSESS). Keep it for at least three years."""
    abroad = sorted({sink.region for sink in policy.sinks} - {policy.home_region})
    triggers = ["sensitive personal information: whereabouts (PIPL 28)"] if any(
        not purpose.is_exception for purpose in policy.purposes) else []
    if policy.subject.minor:
        triggers.append("personal information of a minor (PIPL 28, 31)")
    if abroad:
        triggers.append("provision abroad to " + ", ".join(abroad) + " (PIPL 38, 39)")
    if policy.sinks:
        triggers.append("provision to other processors: "
                        + ", ".join(sorted({sink.recipient for sink in policy.sinks})))
    return {
        "document": "personal information impact assessment (PIPL Art. 55), skeleton",
        "policy_version": policy.version,
        "triggers": triggers,
        "processing": [{
            "purpose": purpose.name,
            "lawfulness_and_necessity": {"legal_basis": purpose_terms(policy, purpose)["legal_basis"],
                                         "minimum_data": purpose_terms(policy, purpose)["data"],
                                         "precision_m": purpose.grid_m,
                                         "time_resolution_s": purpose.time_bucket_s,
                                         "assessment": "TO ASSESS: why this precision and resolution are needed"},
            "impact_and_risk": "TO ASSESS: harm to the person if these data leak or are misused",
            "measures": list(SECURITY_MEASURES),
            "adequacy_of_measures": "TO ASSESS: whether the measures are legal, effective and proportionate",
        } for purpose in policy.purposes],
        "retention_of_this_assessment": "at least 3 years (PIPL 56)",
        "assessed_by": "TO FILL IN", "date": "TO FILL IN",
    }


DOCUMENTS = {"notice": notice, "ropa": record_of_processing, "piia": impact_assessment}


# -- rendering ---------------------------------------------------------------------------------------------
def render(tree: dict[str, Any], fmt: str) -> str:
    """One document tree as ``text``, ``markdown`` or ``json`` (sorted keys, so equal trees print equal)."""
    check_format(fmt)
    if fmt == "json":
        return json.dumps(tree, indent=2, sort_keys=True, ensure_ascii=False)
    if tree.get("document") == "privacy notice":
        return "\n".join(_notice_lines(tree, markdown=fmt == "markdown"))
    return "\n".join(_generic_lines(tree, markdown=fmt == "markdown"))


def render_notice(policy: Policy, fmt: str) -> str:
    return render(notice(policy), fmt)


def _notice_lines(tree: dict[str, Any], *, markdown: bool) -> list[str]:
    head = "# " if markdown else ""
    sub = "## " if markdown else ""
    item = "- " if markdown else "  "
    lines = [f"{head}Privacy notice (policy {tree['policy_version']}, home region {tree['home_region']})", ""]
    purposes: Sequence[dict[str, Any]] = tree["purposes"]
    if not purposes:
        lines.append(tree["nothing_else"])
    for terms in purposes:
        lines += [f"{sub}Purpose {terms['purpose']}: {terms['description']}",
                  f"{item}legal basis: {terms['legal_basis']}"
                  + (" (your consent is asked first)" if terms["needs_consent"] else " (no consent asked; "
                                                                                      "never location)"),
                  f"{item}data sent: {', '.join(terms['data'])}"]
        if terms["carries_location"]:
            lines.append(f"{item}precision: positions coarsened to {terms['precision_m']} m ({terms['coarsening']})")
        lines += [f"{item}time resolution: one point per {terms['time_resolution_s']} s at most, "
                  f"{terms['max_points_per_day']} per day at most",
                  f"{item}kept: {terms['retention_days']} days"]
        for recipient in terms["recipients"]:
            abroad = ", outside the home region: separate consent needed" if recipient["cross_border"] else ""
            lines.append(f"{item}sent to: {recipient['recipient']} in {recipient['region']}{abroad}")
        lines.append("")
    if purposes:
        lines += [tree["nothing_else"], ""]
    if tree["subject"]["minor"]:
        lines += ["The user is a minor: no location purpose can be granted until a guardian's consent is recorded "
                  "(privacyctl consent guardian grant).", ""]
    lines.append(f"{sub}Your rights and how to use them")
    lines += [f"{item}{right['right']}: {right['how']}" for right in tree["rights"]]
    return lines


def _generic_lines(value: Any, *, markdown: bool, depth: int = 0) -> list[str]:
    indent = "  " * depth
    bullet = "- " if markdown else ""
    if isinstance(value, dict):
        lines: list[str] = []
        for key, item in value.items():
            label = str(key).replace("_", " ")
            if isinstance(item, dict | list):
                lines.append(f"{indent}{bullet}{label}:")
                lines += _generic_lines(item, markdown=markdown, depth=depth + 1)
            else:
                lines.append(f"{indent}{bullet}{label}: {item}")
        return lines
    if isinstance(value, list):
        if not value:
            return [f"{indent}{bullet}(none)"]
        lines = []
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                lines.append(f"{indent}{bullet}[{index + 1}]")
                lines += _generic_lines(item, markdown=markdown, depth=depth + 1)
            else:
                lines.append(f"{indent}{bullet}{item}")
        return lines
    return [f"{indent}{bullet}{value}"]
