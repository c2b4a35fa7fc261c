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

This module parses the command line and runs the request; the wording of the results is :mod:`agent.cli_text`,
and the argument values' parsers are :mod:`agent.cli_values`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from agent import cli_values as values
from agent.cli_text import (
    RIGHTS_STATUS_KEYS,
    describe,
    describe_consents,
    describe_generic,
    describe_incidents,
    describe_location,
    describe_log,
    describe_policy,
    describe_rights_status,
    describe_status,
    describe_switch,
    describe_uploads,
    describe_why,
    printable,
)
from agent.control_client import request
from agent.control_protocol import (
    CORRECTIONS,
    POLICY_FORMATS,
    check_correction,
)
from agent.errors import AgentError, AgentUnreachable, UsageError

DEFAULT_SOCKET = "/run/privacy-agent/control.sock"
SOCKET_ENV = "PRIVACY_AGENT_SOCKET"
READ_TIMEOUT_S = 15.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

_since = values.since  # ``--since``'s parser, under the name it had here

__all__ = ["DEFAULT_SOCKET", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE",
           "READ_TIMEOUT_S", "RIGHTS_STATUS_KEYS", "SOCKET_ENV", "Refused", "Unreachable", "UsageProblem",
           "build_parser", "call", "describe", "describe_consents", "describe_generic", "describe_incidents",
           "describe_location", "describe_log", "describe_policy", "describe_rights_status", "describe_status",
           "describe_switch", "describe_uploads", "describe_why", "main", "printable", "run", "run_export",
           "socket_path", "to_request"]


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
        switch.add_argument("--wait", type=values.wait_seconds, default=10.0, metavar="SECONDS",
                            help="how long to wait for the modem to confirm (0-60, default 10)")
    location_status = location.add_parser("status", parents=[json_after],
                                          help="what you asked, what the modem does, whether they agree")
    location_status.add_argument("--check", action="store_true", help="read the modem back before answering")

    consent = commands.add_parser("consent", help="consent per purpose").add_subparsers(
        dest="action", required=True, metavar="list|grant|withdraw|cross-border|guardian")
    consent.add_parser("list", parents=[json_after])
    consent.add_parser("grant", parents=[json_after]).add_argument("purpose", type=values.purpose)
    consent.add_parser("withdraw", parents=[json_after]).add_argument("purpose", type=values.purpose)
    border = consent.add_parser("cross-border", parents=[json_after],
                                help="the separate consent to send to recipients in another region")
    border.add_argument("choice", choices=("grant", "withdraw"))
    border.add_argument("region", type=values.region)
    guardian = consent.add_parser("guardian", parents=[json_after], help="a guardian's consent for a minor")
    guardian.add_argument("choice", choices=("grant", "withdraw"))

    uploads = commands.add_parser("uploads", parents=[json_after],
                                  help="what left the device: when, to whom, where, and the payload")
    uploads.add_argument("--since", type=values.since, metavar="WHEN", help="ISO 8601 time or an age (30m, 12h, 7d)")
    uploads.add_argument("--purpose", type=values.purpose)
    uploads.add_argument("--failed", action="store_true", help="what a sink refused instead (dead letters)")
    why = commands.add_parser("why", parents=[json_after], help="the last gate decisions and their rules")
    why.add_argument("purpose", type=values.purpose, nargs="?")

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
    scope.add_argument("--before", type=values.before, metavar="DATE",
                       help="an ISO 8601 date or time (UTC unless it says)")
    scope.add_argument("--purpose", type=values.purpose, metavar="NAME")

    log = commands.add_parser("log", help="the tamper-evident log").add_subparsers(
        dest="action", required=True, metavar="verify")
    log.add_parser("verify", parents=[json_after])
    log_show = log.add_parser("show", parents=[json_after], help="the records themselves, newest first")
    log_show.add_argument("--type", type=values.record_type, metavar="T",
                          help="switch, fix_access, upload, consent, request, incident, key_destroyed, ...")
    log_show.add_argument("--since", type=values.since, metavar="WHEN",
                          help="an ISO 8601 time or an age (30m, 12h, 7d)")
    log_show.add_argument("--limit", type=values.limit, default=100, metavar="N", help="at most N records (100)")
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
    incidents.add_argument("--since", type=values.since, metavar="WHEN",
                           help="only incidents since WHEN: an ISO 8601 time (UTC unless it says) or an age "
                                "such as 30m, 12h, 7d")
    return parser


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
