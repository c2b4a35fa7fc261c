"""``privacyctl``'s wording: the agent's results as a few plain lines, with times in ISO 8601 UTC.

Pure (no I/O): what the agent sends is shown with its control characters replaced, so it cannot drive the
terminal; a result of the wrong shape raises TypeError, ValueError or AttributeError, which the caller reports.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def describe_location(status: dict[str, Any]) -> list[str]:
    """What the user asked, what the modem is doing, whether they agree, and every location path's state."""
    desired = _shown(status.get("desired", "?"))
    observed = status.get("observed")
    if not isinstance(observed, dict):
        observed = {}
    gnss = _shown(observed.get("gnss", "unknown"))
    if gnss == "unknown":
        modem = "unknown (the modem cannot be read right now)"
    else:
        autogps, outport = _shown(observed.get("autogps")), _shown(observed.get("outport"))
        modem = f"GNSS {gnss}, autogps {autogps}, NMEA output {outport}"
    read_at, age = status.get("observed_at"), status.get("observed_age_s")
    if read_at is not None:
        modem += f" (read {_shown(read_at)}, {_shown(age)} s ago)"
    gate = _shown(status.get("gate", "?"))
    if status.get("enforced"):
        verified_at = status.get("verified_at")
        agree = "yes, verified on the modem" + (f" at {_shown(verified_at)}" if verified_at else "")
    elif gate == "closed":
        agree = "not verified now; the agent keeps enforcing, and location data stays blocked meanwhile"
    else:
        agree = "not verified now; the agent keeps enforcing"
    lines = [f"You asked:  location {desired}", f"Modem:      {modem}", f"Agree:      {agree}"]
    paths = status.get("paths")
    if isinstance(paths, dict) and paths:  # every location path, as read back: "gnss off, xtra off, ..."
        lines.append("Paths:      " + ", ".join(f"{_shown(name)} {_shown(state)}" for name, state in paths.items()))
    return lines


def describe_switch(result: dict[str, Any]) -> list[str]:
    """What already holds (the change is durable, the gate) and what does not yet (the modem's confirmation)."""
    desired = _shown(result.get("desired", "?"))
    if desired == "off":
        first = "Location off is saved and location data is blocked."
    else:
        first = "Location on is saved; location data stays blocked until the modem confirms."
    if result.get("verified"):
        second = "The modem confirmed it."
    else:
        reason = _shown(result.get("not_verified") or "not confirmed")
        second = f"Not confirmed: {reason}. The change stays recorded and is enforced when the modem answers."
    return [first, second, *describe_location(result)]


def describe_consents(result: dict[str, Any]) -> list[str]:
    """One line per purpose (granted or not, to whom), then cross-border and guardian consents."""
    lines = [f"Policy {_shown(result.get('policy_version'))}, home region {_shown(result.get('home_region'))}"]
    for item in _objects(result.get("purposes")):
        state = "granted" if item.get("granted") else "not granted"
        recipients = ", ".join(f"{_shown(r.get('recipient'))} ({_shown(r.get('region'))})"
                               for r in _objects(item.get("recipients")))
        lines.append(f"{_shown(item.get('purpose'))}: {state} [{_shown(item.get('legal_basis'))}] "
                     f"- {_shown(item.get('description'))}; to {recipients or 'nobody'}")
    for item in _objects(result.get("cross_border")):
        lines.append(f"cross-border {_shown(item.get('region'))}: "
                     f"{'granted' if item.get('granted') else 'not granted'}")
    guardian = result.get("guardian")
    if isinstance(guardian, dict) and guardian.get("minor"):
        lines.append(f"guardian: {'granted' if guardian.get('granted') else 'not granted'}")
    return lines


def describe_uploads(result: dict[str, Any]) -> list[str]:
    """Each upload: when, what, to whom and where, then the payload exactly as it was sent."""
    uploads = _objects(result.get("uploads"))
    if not uploads:
        return ["uploads: (none)"]
    lines = []
    for item in uploads:
        lines.append(f"{_shown(item.get('time'))}  {_shown(item.get('purpose'))} -> {_shown(item.get('recipient'))}"
                     f" ({_shown(item.get('region'))}, sink {_shown(item.get('sink'))}), {_shown(item.get('status'))}"
                     + (f": {_shown(item.get('reason'))}" if item.get("reason") else ""))
        payload = item.get("payload")
        lines.append(f"    {_shown(payload)}" if payload is not None else "    (payload erased)")
    return lines


def describe_why(result: dict[str, Any]) -> list[str]:
    lines = ["Now:"]
    for item in _objects(result.get("now")):
        verdict = "allowed" if item.get("allowed") else f"refused ({_shown(item.get('rule'))})"
        lines.append(f"  {_shown(item.get('purpose'))} -> {_shown(item.get('sink'))}: {verdict}: "
                     f"{_shown(item.get('reason'))}")
    last = _objects(result.get("last"))
    if last:
        lines.append("Last decisions (newest first):")
        for item in last:
            when = dt.datetime.fromtimestamp(int(item.get("time_ms", 0)) / 1000, dt.UTC).isoformat(
                timespec="seconds").replace("+00:00", "Z")
            lines.append(f"  {when}  {_shown(item.get('purpose'))} -> {_shown(item.get('sink'))}: "
                         f"{_shown(item.get('rule'))}")
    refusals = result.get("refusals")
    if isinstance(refusals, dict) and refusals:
        lines.append("Refusals: " + ", ".join(f"{_shown(rule)} {_shown(count)}" for rule, count in refusals.items()))
    return lines


def _objects(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError("expected a list of objects")
    return value


def describe_incidents(result: dict[str, Any]) -> list[str]:
    """One line per incident, newest first, with its ISO 8601 UTC time."""
    incidents = result.get("incidents")
    if not isinstance(incidents, list) or not incidents:
        return ["incidents: (none)"]
    lines = []
    for incident in incidents:
        if not isinstance(incident, dict):
            raise TypeError("an incident must be an object")
        facts = {key: value for key, value in incident.items() if key not in ("time", "time_ms", "kind", "seq")}
        detail = " ".join(line.replace(": ", "=", 1) for line in describe_generic(facts))
        lines.append(f"{_shown(incident.get('time'))}  {_shown(incident.get('kind'))}  {detail}".rstrip())
    return lines


def describe_status(result: dict[str, Any]) -> list[str]:
    lines = describe_location(result["location"]) if isinstance(result.get("location"), dict) else []
    notices = result.get("notices")
    for notice in notices if isinstance(notices, list) else []:
        lines.append(f"Notice:     {_shown(notice)}")
    modem = result.get("modem")
    if isinstance(modem, dict):
        lines.append(f"Module:     {_shown(modem.get('model', '?'))} ({_shown(modem.get('revision', '?'))})")
    ledger = result.get("ledger")
    if isinstance(ledger, dict) and ledger.get("key"):
        lines.append(f"Device key: {_shown(ledger['key'])} (pin it: privacy-agent verify-export --key ...)")
    lines += describe_rights_status(result)
    shown = ("location", "modem", "notices", *RIGHTS_STATUS_KEYS)
    rest = {key: value for key, value in result.items() if key not in shown}
    return lines + describe_generic(rest)


RIGHTS_STATUS_KEYS = ("purposes", "sinks", "last_incidents", "policy_notices", "cross_border", "guardian")


def describe_rights_status(result: dict[str, Any]) -> list[str]:
    """Status lines for the purposes (consent, precision), the sinks (recipient, region), the last incidents."""
    lines = []
    for item in _objects(result.get("purposes")):
        state = ("suspended: policy changed, see privacyctl policy show --diff" if item.get("suspended")
                 else "granted" if item.get("granted") else "not granted")
        lines.append(f"Purpose:    {_shown(item.get('purpose'))} ({_shown(item.get('legal_basis'))}): {state}; "
                     f"{_shown(item.get('precision_m'))} m, one point per {_shown(item.get('time_resolution_s'))} s")
    for item in _objects(result.get("sinks")):
        abroad = ", cross-border" if item.get("cross_border") else ""
        lines.append(f"Sink:       {_shown(item.get('sink'))} -> {_shown(item.get('recipient'))} "
                     f"({_shown(item.get('region'))}{abroad})")
    guardian = result.get("guardian")
    if isinstance(guardian, dict) and guardian.get("minor"):
        lines.append(f"Minor:      guardian consent {'recorded' if guardian.get('granted') else 'NOT recorded'}")
    for item in _objects(result.get("last_incidents")):
        lines.append(f"Incident:   {_shown(item.get('time'))} {_shown(item.get('kind'))}: {_shown(item.get('cause'))}")
    return lines


def describe_policy(result: dict[str, Any]) -> list[str]:
    lines = [str(result.get("text", ""))]
    changes = _objects(result.get("changes")) if "changes" in result else None
    if changes is not None:
        lines += ["", f"Changes since policy {_shown(result.get('previous_version'))}:"]
        lines += [f"  {_shown(item.get('purpose'))}: {_shown(item.get('kind'))} ("
                  + ", ".join(_shown(term) for term in item.get("changed", [])) + ")"
                  + (", suspended until privacyctl policy accept" if item.get("suspends") else "")
                  for item in changes] or ["  (none)"]
    return lines


def describe_generic(value: Any, prefix: str = "") -> list[str]:
    """Any result as ``key: value`` lines (for ops whose output has no dedicated wording)."""
    if isinstance(value, dict):
        if not value:
            return [f"{prefix}: (none)"] if prefix else []
        lines: list[str] = []
        for key, item in value.items():
            name = printable(str(key))
            lines += describe_generic(item, f"{prefix}.{name}" if prefix else name)
        return lines
    if isinstance(value, list):
        if not value:
            return [f"{prefix}: (none)"]
        return [line for index, item in enumerate(value)
                for line in describe_generic(item, f"{prefix}[{index}]")]
    return [f"{prefix}: {_shown(value)}"]


def _shown(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return printable(str(value))


def printable(text: str) -> str:
    """``text`` with control characters shown as ``?``: what the agent sends must not drive the terminal."""
    return text if text.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in text)


def describe(op: str, args: dict[str, Any], result: dict[str, Any]) -> list[str]:
    if op == "location.status":
        return describe_location(result)
    if op in ("location.on", "location.off"):
        return describe_switch(result)
    if op == "status":
        return describe_status(result)
    if op == "incidents":
        return describe_incidents(result)
    if op == "consent.list":
        return describe_consents(result)
    if op == "uploads":
        return describe_uploads(result)
    if op == "why":
        return describe_why(result)
    if op == "log.show":
        return describe_log(result)
    if op == "policy.show":
        return describe_policy(result)
    return describe_generic(result) or ["done"]


def describe_log(result: dict[str, Any]) -> list[str]:
    """``log show``: one line per record, newest first, then its personal part (or that it was erased)."""
    lines = [f"{_shown(result.get('shown'))} of {_shown(result.get('matched'))} matching records, newest first"]
    for record in _objects(result.get("records")):
        fields = record.get("fields")
        detail = " ".join(f"{key}={_shown(value)}" for key, value in fields.items()) \
            if isinstance(fields, dict) else ""
        lines.append(f"{_shown(record.get('time'))}  #{_shown(record.get('seq'))}  {_shown(record.get('type'))}  "
                     f"{detail}".rstrip())
        personal = record.get("personal")
        if isinstance(personal, dict):
            lines.append("    (erased)" if personal.get("erased") else f"    {_shown(personal)}")
    return lines
