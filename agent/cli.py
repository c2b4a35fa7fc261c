"""``privacyctl``: ask the running agent what it does, and change the location switch (entry layer).

Usage::

    privacyctl [--socket PATH] [--json] status
    privacyctl [...] location on|off [--wait SECONDS] | location status [--check]
    privacyctl [...] log verify | incidents [--since WHEN]
    privacyctl [...] consent list | consent grant|withdraw PURPOSE
    privacyctl [...] consent cross-border grant|withdraw REGION | consent guardian grant|withdraw
    privacyctl [...] uploads [--since WHEN] [--purpose P] [--failed] | why [PURPOSE] | identity reset
    privacyctl [...] export --out FILE [--overwrite] | log show [--type T] [--since WHEN] [--limit N]
    privacyctl [...] erase --all | --before DATE | --purpose NAME

``--json`` may also follow the subcommand (``privacyctl status --json``).

The socket is ``--socket``, else ``$PRIVACY_AGENT_SOCKET``, else ``/run/privacy-agent/control.sock``.
``--json`` prints the agent's result object as it came, or, on failure, only ``{"ok": false, "error": ...}``
on stdout; otherwise the output is a few plain lines, with times in ISO 8601 UTC. ``location on|off`` returns
once the agent has made the change durable (and, for off, blocked location data), then waits up to ``--wait``
seconds (default 10) for the modem to confirm, and says what already holds and what does not yet.

Exit codes: 0 done (for ``location on|off``: confirmed by the modem), 1 refused, failed or not confirmed (the
reason is printed; an unconfirmed change stays recorded and is enforced when the modem answers), 2 usage error,
3 agent unreachable.

This is what people type, so it starts fast: it imports only the few standard modules it needs and the one
client of the control socket (:mod:`agent.control_client`, with the pure protocol of
:mod:`agent.control_protocol`, whose argument checks it shares), instead of importing the agent.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from agent.control_client import request
from agent.control_protocol import (
    CORRECTIONS,
    POLICY_FORMATS,
    check_correction,
    check_limit,
    check_purpose,
    check_record_type,
    check_region,
    check_wait_seconds,
)
from agent.errors import AgentError, AgentUnreachable, UsageError

DEFAULT_SOCKET = "/run/privacy-agent/control.sock"
SOCKET_ENV = "PRIVACY_AGENT_SOCKET"
READ_TIMEOUT_S = 15.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class Unreachable(Exception):
    """The agent's socket is missing, refuses connections, or no reply came in time."""


class UsageProblem(Exception):
    """A command line argparse accepts but that cannot be sent (printed as a usage error)."""


class Refused(Exception):
    """The agent answered with an error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# -- command line ----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privacyctl", description="Control the local privacy agent.")
    parser.add_argument("--socket", help=f"control socket (default ${SOCKET_ENV} or {DEFAULT_SOCKET})")
    parser.add_argument("--json", action="store_true", help="print the agent's JSON result")
    # --json after the subcommand too; SUPPRESS keeps a leaf's absent flag from undoing the top-level one.
    json_after = argparse.ArgumentParser(add_help=False)
    json_after.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help="print the agent's JSON result")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", parents=[json_after], help="what the agent and the modem are doing")

    location = commands.add_parser("location", help="the location switch").add_subparsers(
        dest="action", required=True, metavar="on|off|status")
    for action in ("on", "off"):
        switch = location.add_parser(action, parents=[json_after], help=f"turn location {action}")
        switch.add_argument("--wait", type=_wait_seconds, default=10.0, metavar="SECONDS",
                            help="how long to wait for the modem to confirm (0-60, default 10)")
    location_status = location.add_parser("status", parents=[json_after],
                                          help="what you asked, what the modem does, whether they agree")
    location_status.add_argument("--check", action="store_true", help="read the modem back before answering")

    consent = commands.add_parser("consent", help="consent per purpose").add_subparsers(
        dest="action", required=True, metavar="list|grant|withdraw|cross-border|guardian")
    consent.add_parser("list", parents=[json_after])
    consent.add_parser("grant", parents=[json_after]).add_argument("purpose", type=_purpose)
    consent.add_parser("withdraw", parents=[json_after]).add_argument("purpose", type=_purpose)
    border = consent.add_parser("cross-border", parents=[json_after],
                                help="the separate consent to send to recipients in another region")
    border.add_argument("choice", choices=("grant", "withdraw"))
    border.add_argument("region", type=_region)
    guardian = consent.add_parser("guardian", parents=[json_after], help="a guardian's consent for a minor")
    guardian.add_argument("choice", choices=("grant", "withdraw"))

    uploads = commands.add_parser("uploads", parents=[json_after],
                                  help="what left the device: when, to whom, where, and the payload")
    uploads.add_argument("--since", type=_since, metavar="WHEN", help="ISO 8601 time or an age (30m, 12h, 7d)")
    uploads.add_argument("--purpose", type=_purpose)
    uploads.add_argument("--failed", action="store_true", help="what a sink refused instead (dead letters)")
    why = commands.add_parser("why", parents=[json_after], help="the last gate decisions and their rules")
    why.add_argument("purpose", type=_purpose, nargs="?")

    identity = commands.add_parser("identity", help="pseudonymous identity").add_subparsers(
        dest="action", required=True, metavar="reset")
    identity.add_parser("reset", parents=[json_after])

    export = commands.add_parser("export", parents=[json_after],
                                 help="a copy of everything recorded (streamed; written by you, not the agent)")
    export.add_argument("--out", required=True, metavar="PATH")
    export.add_argument("--overwrite", action="store_true", help="replace an existing file or symlink at PATH")
    erase = commands.add_parser("erase", parents=[json_after],
                                help="erase your data: queued data purged, keys destroyed (durable on return)")
    scope = erase.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true")
    scope.add_argument("--before", type=_before, metavar="DATE", help="an ISO 8601 date or time (UTC unless it says)")
    scope.add_argument("--purpose", type=_purpose, metavar="NAME")

    log = commands.add_parser("log", help="the tamper-evident log").add_subparsers(
        dest="action", required=True, metavar="verify")
    log.add_parser("verify", parents=[json_after])
    log_show = log.add_parser("show", parents=[json_after], help="the records themselves, newest first")
    log_show.add_argument("--type", type=_record_type, metavar="T",
                          help="switch, fix_access, upload, consent, request, incident, key_destroyed, ...")
    log_show.add_argument("--since", type=_since, metavar="WHEN", help="an ISO 8601 time or an age (30m, 12h, 7d)")
    log_show.add_argument("--limit", type=_limit, default=100, metavar="N", help="at most N records (100)")
    policy = commands.add_parser("policy", help="the privacy policy in force").add_subparsers(
        dest="action", required=True, metavar="show|accept")
    policy_show = policy.add_parser("show", parents=[json_after], help="the notice generated from the policy")
    policy_show.add_argument("--format", choices=POLICY_FORMATS, default="text")
    policy_show.add_argument("--diff", action="store_true", help="what changed since the previous policy version")
    policy.add_parser("accept", parents=[json_after],
                      help="accept a changed policy: its suspended purposes resume under the new terms")
    correct = commands.add_parser("correct", parents=[json_after], help="correct what the device holds about you",
                                  description="minor yes|no, guardian yes|no, region CODE (the region you live "
                                              "in), wrong-fix UPLOAD_ID (as privacyctl uploads shows it)")
    correct.add_argument("what", choices=CORRECTIONS)
    correct.add_argument("value")
    incidents = commands.add_parser("incidents", parents=[json_after],
                                    help="drift and losses the agent found (newest first)")
    incidents.add_argument("--since", type=_since, metavar="WHEN",
                           help="only incidents since WHEN: an ISO 8601 time (UTC unless it says) or an age "
                                "such as 30m, 12h, 7d")
    return parser


def _checked(check: Callable[[str, Any], Any], name: str) -> Callable[[str], Any]:
    """An argparse type from one of the protocol's argument checks: the same rule on both sides."""
    def parse(text: str) -> Any:
        value: Any = text
        if check is check_wait_seconds:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError("must be a number of seconds") from None
        try:
            return check(name, value)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.message.removeprefix(f"'{name}' ")) from None
    return parse


_wait_seconds = _checked(check_wait_seconds, "wait")
_purpose = _checked(check_purpose, "purpose")
_region = _checked(check_region, "region")


_AGE = re.compile(r"(\d{1,6})([smhd])")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(text: str, *, now: float | None = None) -> int:
    """``--since``: milliseconds since the epoch, from an ISO 8601 time or an age (``30m``, ``12h``, ``7d``)."""
    age = _AGE.fullmatch(text)
    if age:
        current = dt.datetime.now(dt.UTC).timestamp() if now is None else now
        return int((current - int(age.group(1)) * _AGE_SECONDS[age.group(2)]) * 1000)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time (2026-12-02T10:00:00Z) or an age such as "
                                         "30m, 12h, 7d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _before(text: str) -> int:
    """``erase --before``: an ISO 8601 date or time (no ages: an erasure names its boundary plainly)."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO 8601 date or time (2026-12-01 or "
                                         "2026-12-01T10:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if moment.year < 1970:
        raise argparse.ArgumentTypeError("must be after 1970")
    return int(moment.timestamp() * 1000)


_record_type = _checked(check_record_type, "type")
_limit_check = _checked(check_limit, "limit")


def _limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number")
    result: int = _limit_check(int(text))  # type: ignore[arg-type]
    return result


def to_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The op and args the agent understands, for parsed command-line arguments."""
    command, action = args.command, getattr(args, "action", None)
    if command == "location" and action in ("on", "off"):
        return f"location.{action}", {"wait_s": args.wait}
    if command == "location" and action == "status":
        return "location.status", ({"check": True} if args.check else {})
    if command == "incidents":
        return "incidents", ({} if args.since is None else {"since_ms": args.since})
    if command == "consent" and action in ("grant", "withdraw"):
        return f"consent.{action}", {"purpose": args.purpose}
    if command == "consent" and action == "cross-border":
        return "consent.cross_border", {"region": args.region, "granted": args.choice == "grant"}
    if command == "consent" and action == "guardian":
        return "consent.guardian", {"granted": args.choice == "grant"}
    if command == "uploads":
        chosen = {"since_ms": args.since, "purpose": args.purpose, "failed": args.failed or None}
        return "uploads", {key: value for key, value in chosen.items() if value is not None}
    if command == "why":
        return "why", ({} if args.purpose is None else {"purpose": args.purpose})
    if command == "export":
        return "export", {}  # the agent streams the bundle; export_to writes it here (see main)
    if command == "erase":
        chosen = {"all": args.all or None, "before_ms": args.before, "purpose": args.purpose}
        return "erase", {key: value for key, value in chosen.items() if value is not None}
    if command == "policy" and action == "show":
        return "policy.show", {"format": args.format, **({"diff": True} if args.diff else {})}
    if command == "correct":
        try:
            return "correct", {"what": args.what, "value": check_correction(args.what, args.value)}
        except UsageError as exc:
            raise UsageProblem(exc.message) from None
    if command == "log" and action == "show":
        chosen = {"type": args.type, "since_ms": args.since, "limit": args.limit}
        return "log.show", {key: value for key, value in chosen.items() if value is not None}
    return (f"{command}.{action}" if action else command), {}


def _absolute(path: str) -> str:
    if not path or "\0" in path:
        raise UsageProblem("--out must be a path")
    try:
        return os.path.abspath(path)
    except OSError:  # a relative path and a working directory that no longer exists
        raise UsageProblem("--out is relative and the current directory is gone; give an absolute path") \
            from None


def socket_path(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]) -> str:
    """``--socket``, else the environment variable (empty counts as unset), else the default."""
    if args.socket is not None and not args.socket:
        raise UsageProblem("--socket must not be empty")
    return str(args.socket or environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


# -- protocol (the client half of agent.control) ---------------------------------------------------------

def call(path: str, op: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Send one request through the one client; the result object, or Refused / Unreachable."""
    try:
        return request(path, op, args, timeout_s)
    except AgentUnreachable as exc:
        raise Unreachable(exc.message) from None
    except AgentError as exc:
        raise Refused(type(exc).__name__, exc.message) from None


# -- human output ----------------------------------------------------------------------------------------

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


# -- main ------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage problem already
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    try:
        op, op_args = to_request(args)
        path = socket_path(args, os.environ)
    except UsageProblem as exc:
        print(f"privacyctl: {exc}", file=err)
        return EXIT_USAGE
    timeout_s = READ_TIMEOUT_S + float(op_args.get("wait_s", 0.0))
    try:
        if op == "export":
            return run_export(path, args, as_json=bool(args.json), out=out, err=err)
        return run(path, op, op_args, timeout_s, as_json=bool(args.json), out=out, err=err)
    except KeyboardInterrupt:  # a change already sent stands; the agent finishes it without us
        print("privacyctl: interrupted", file=err)
        return EXIT_INTERRUPTED


def run(path: str, op: str, op_args: dict[str, Any], timeout_s: float, *, as_json: bool,
        out: TextIO, err: TextIO) -> int:
    try:
        result = call(path, op, op_args, timeout_s)
    except Unreachable as exc:
        return _fail(EXIT_UNREACHABLE, "AgentUnreachable", str(exc), as_json, out, err)
    except Refused as exc:
        return _fail(EXIT_FAILED, exc.kind, exc.message, as_json, out, err)
    if op in ("location.on", "location.off") and not result.get("verified"):
        code = EXIT_FAILED  # recorded, not confirmed: say what holds, and do not call it done
    else:
        code = EXIT_OK
    if as_json:
        text = json.dumps(result, indent=2, sort_keys=True)
    else:
        try:
            text = "\n".join(describe(op, op_args, result))
        except (TypeError, ValueError, AttributeError):  # fields of the wrong shape: not our agent, or a newer one
            return _fail(EXIT_FAILED, "ControlError", "the agent sent a reply this privacyctl cannot show",
                         as_json, out, err)
    printed = _print(text, out, err)
    return printed if printed != EXIT_OK else code


def run_export(path: str, args: argparse.Namespace, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """``export``: the agent streams, we write the file (agent.export_client); a --json summary or a few lines."""
    from agent.export_client import check_target, describe_export, export_to, terminal_progress

    try:
        target = Path(_absolute(args.out))
        check_target(target, args.overwrite)  # a usage error, before the agent is asked
    except UsageProblem as exc:
        return _fail(EXIT_USAGE, "UsageError", str(exc), as_json, out, err)
    except UsageError as exc:
        return _fail(EXIT_USAGE, "UsageError", exc.message, as_json, out, err)
    try:
        result = export_to(path, target, overwrite=args.overwrite, progress=terminal_progress(err))
    except AgentUnreachable as exc:
        return _fail(EXIT_UNREACHABLE, "AgentUnreachable", exc.message, as_json, out, err)
    except AgentError as exc:  # the agent's refusal, or our side's writes
        return _fail(EXIT_FAILED, type(exc).__name__, exc.message, as_json, out, err)
    if as_json:
        return _print(json.dumps({"path": result.path, **result.summary}, indent=2, sort_keys=True), out, err)
    return _print("\n".join(describe_export(result)), out, err)


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


def _print(text: str, out: TextIO, err: TextIO) -> int:
    """Print the result; a closed pipe or a full disk is reported, not a traceback."""
    try:
        print(text, file=out)
        out.flush()
    except BrokenPipeError:  # the reader went away (``privacyctl status | head -1``): nothing to say to it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())  # no second error at exit
        return EXIT_FAILED
    except OSError as exc:
        print(f"privacyctl: cannot write the output: {exc.strerror or exc}", file=err)
        return EXIT_FAILED
    return EXIT_OK


def _fail(code: int, kind: str, message: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Report a failure once: as JSON on stdout in JSON mode, else as a line on stderr."""
    if as_json:
        _print(json.dumps({"ok": False, "error": {"kind": kind, "message": message}}), out, err)
    else:
        print(f"privacyctl: {printable(message)}", file=err)
    return code


if __name__ == "__main__":
    sys.exit(main())
