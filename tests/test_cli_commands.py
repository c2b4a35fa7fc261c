"""privacyctl without an agent: command-line parsing, requests, wording, usage and unreachable exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.control import parse_request


def request_for(*argv: str) -> tuple[str, dict[str, Any]]:
    return cli.to_request(cli.build_parser().parse_args(list(argv)))


@pytest.mark.parametrize(("argv", "op", "args"), [
    (["status"], "status", {}),
    (["location", "on"], "location.on", {"wait_s": 10.0}),
    (["location", "off"], "location.off", {"wait_s": 10.0}),
    (["location", "off", "--wait", "0"], "location.off", {"wait_s": 0.0}),
    (["location", "on", "--wait", "60"], "location.on", {"wait_s": 60.0}),
    (["location", "status"], "location.status", {}),
    (["consent", "list"], "consent.list", {}),
    (["consent", "grant", "fleet"], "consent.grant", {"purpose": "fleet"}),
    (["consent", "withdraw", "fleet"], "consent.withdraw", {"purpose": "fleet"}),
    (["identity", "reset"], "identity.reset", {}),
    (["export", "--out", "/srv/x.export"], "export", {}),
    (["erase", "--all"], "erase", {"all": True}),
    (["erase", "--before", "2026-12-01"], "erase", {"before_ms": 1796083200000}),
    (["erase", "--purpose", "fleet"], "erase", {"purpose": "fleet"}),
    (["log", "show", "--type", "upload"], "log.show", {"type": "upload", "limit": 100}),
    (["log", "verify"], "log.verify", {}),
    (["policy", "show"], "policy.show", {"format": "text"}),
    (["policy", "show", "--format", "markdown", "--diff"], "policy.show", {"format": "markdown", "diff": True}),
    (["policy", "accept"], "policy.accept", {}),
    (["correct", "minor", "yes"], "correct", {"what": "minor", "value": True}),
    (["correct", "guardian", "no"], "correct", {"what": "guardian", "value": False}),
    (["correct", "region", "EU"], "correct", {"what": "region", "value": "EU"}),
    (["correct", "wrong-fix", "0a1b2c"], "correct", {"what": "wrong-fix", "value": "0a1b2c"}),
    (["incidents"], "incidents", {}),
])
def test_every_command_maps_to_a_request_the_agent_accepts(argv: list[str], op: str,
                                                           args: dict[str, Any]) -> None:
    assert request_for(*argv) == (op, args)
    wire = json.dumps({"v": 1, "op": op, "args": args}).encode()
    assert parse_request(wire).op == op  # the server's validation agrees with what the CLI sends


def test_export_sends_no_path_because_privacyctl_writes_the_file_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert request_for("export", "--out", "mine.export") == ("export", {})


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["location"], ["location", "maybe"], ["location", "off", "--wait", "61"],
    ["location", "off", "--wait", "-1"], ["location", "off", "--wait", "nan"],
    ["location", "off", "--wait", "x"],
    ["consent", "grant"], ["export"], ["erase", "--everything"], ["erase"], ["erase", "--all", "--purpose", "x"],
    ["erase", "--before", "yesterday"], ["erase", "--purpose", "Ads"], ["log"], ["status", "extra"],
    ["consent", "grant", "Ads"], ["consent", "withdraw", "a" * 65], ["consent", "grant", ""],
    ["policy", "show", "--format", "html"], ["correct", "age", "12"], ["correct", "minor"],
])
def test_usage_errors_exit_2_before_any_connection(argv: list[str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--socket", str(tmp_path / "never.sock"), *argv]) == cli.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--socket", "", "status"], "--socket must not be empty"),
    (["export", "--out", ""], "--out must be a path"),
])
def test_empty_paths_are_usage_errors(argv: list[str], fragment: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    full = argv if argv[0] == "--socket" else ["--socket", str(tmp_path / "never.sock"), *argv]
    assert cli.main(full) == cli.EXIT_USAGE
    assert capsys.readouterr().err == f"privacyctl: {fragment}\n"


def test_a_relative_out_path_in_a_vanished_directory_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert cli.main(["--socket", str(tmp_path / "never.sock"), "export", "--out", "mine.zip"]) == cli.EXIT_USAGE
    assert "give an absolute path" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == cli.EXIT_OK
    assert "location" in capsys.readouterr().out


def test_socket_flag_beats_environment_beats_default() -> None:
    parser = cli.build_parser()
    env = {cli.SOCKET_ENV: "/env.sock"}
    assert cli.socket_path(parser.parse_args(["--socket", "/flag.sock", "status"]), env) == "/flag.sock"
    assert cli.socket_path(parser.parse_args(["status"]), env) == "/env.sock"
    assert cli.socket_path(parser.parse_args(["status"]), {}) == cli.DEFAULT_SOCKET == \
        "/run/privacy-agent/control.sock"


def test_no_socket_exits_3_with_the_reason(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--socket", str(tmp_path / "missing.sock"), "location", "status"]
    code = cli.main(argv, stdout=out, stderr=err)
    assert code == cli.EXIT_UNREACHABLE
    assert "cannot reach the agent" in err.getvalue()
    assert out.getvalue() == ""


def test_no_socket_with_json_prints_an_error_object(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--json", "--socket", str(tmp_path / "missing.sock"), "status"], stdout=out, stderr=err)
    assert code == cli.EXIT_UNREACHABLE
    assert json.loads(out.getvalue())["error"]["kind"] == "AgentUnreachable"


def test_environment_socket_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.SOCKET_ENV, str(tmp_path / "from-env.sock"))
    err = io.StringIO()
    assert cli.main(["status"], stdout=io.StringIO(), stderr=err) == cli.EXIT_UNREACHABLE
    assert "from-env.sock" in err.getvalue()


# -- replies -------------------------------------------------------------------------------------------

def reply_from_agent(monkeypatch: pytest.MonkeyPatch, raw: bytes) -> None:
    """privacyctl's one client, answered with ``raw`` as if the agent had sent it."""
    from agent import control_client

    monkeypatch.setattr(control_client, "exchange", lambda path, line, timeout_s: raw)


def test_an_error_reply_becomes_refused_with_its_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    reply_from_agent(monkeypatch, b'{"ok": false, "error": {"kind": "PermissionDenied", "message": "only root"}}')
    with pytest.raises(cli.Refused) as caught:
        cli.call("/unused.sock", "status", {}, 1.0)
    assert (caught.value.kind, caught.value.message) == ("PermissionDenied", "only root")


@pytest.mark.parametrize("raw", [b"", b"garbage", b"[]", b'{"ok": true}', b'{"ok": false, "error": {}}',
                                 b'{"ok": true, "result": []}', b"\xff", b"[" * 200_000])
def test_malformed_replies_are_refusals_not_crashes(monkeypatch: pytest.MonkeyPatch, raw: bytes) -> None:
    reply_from_agent(monkeypatch, raw)
    with pytest.raises(cli.Refused):
        cli.call("/unused.sock", "status", {}, 1.0)


@pytest.mark.parametrize("result", [
    {"observed": "x"}, {"observed": [1]}, {"desired": ["off"], "gate": {}, "observed": {"gnss": 3}},
    {"location": {"observed": "x"}, "modem": {"model": None}}, {"location": "x", "modem": 7},
])
@pytest.mark.parametrize("op", ["location.status", "location.off", "status"])
def test_results_of_any_shape_are_shown_without_crashing(op: str, result: dict[str, Any]) -> None:
    lines = cli.describe(op, {"wait_s": 1.0}, result)
    assert all(isinstance(line, str) for line in lines)


def test_control_characters_from_the_agent_do_not_reach_the_terminal() -> None:
    shown = cli.describe("log.verify", {}, {"found\x1b[2J": "gnss \x1b]0;pwned\x07on"})
    assert shown == ["found?[2J: gnss ?]0;pwned?on"]
    shown = cli.describe("incidents", {}, {"incidents": [{"time": "T\x1b[2J", "kind": "drift\x07"}]})
    assert shown == ["T?[2J  drift?"]
    err = io.StringIO()
    cli._fail(cli.EXIT_FAILED, "ControlError", "bad\x1b[31m red", False, io.StringIO(), err)
    assert err.getvalue() == "privacyctl: bad?[31m red\n"


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_output_that_cannot_be_written_is_reported_not_raised() -> None:
    err = io.StringIO()
    assert cli._print("status", FullDisk(), err) == cli.EXIT_FAILED
    assert err.getvalue() == "privacyctl: cannot write the output: No space left on device\n"


# -- wording -------------------------------------------------------------------------------------------

OFF_VERIFIED = {"desired": "off", "gate": "closed", "enforced": True, "verified_at": "2026-12-02T10:00:04.000Z",
                "observed": {"gnss": "off", "autogps": 0, "outport": "none"},
                "observed_at": "2026-12-02T10:00:04.000Z", "observed_age_s": 1.5}


def test_location_status_says_what_was_asked_what_the_modem_does_and_whether_they_agree() -> None:
    assert cli.describe_location(OFF_VERIFIED) == [
        "You asked:  location off",
        "Modem:      GNSS off, autogps 0, NMEA output none (read 2026-12-02T10:00:04.000Z, 1.5 s ago)",
        "Agree:      yes, verified on the modem at 2026-12-02T10:00:04.000Z",
    ]


def test_an_unknown_modem_state_is_said_plainly_and_the_block_mentioned() -> None:
    lines = cli.describe_location({"desired": "off", "gate": "closed", "enforced": False,
                                   "observed": {"gnss": "unknown", "autogps": None, "outport": None}})
    assert lines[1] == "Modem:      unknown (the modem cannot be read right now)"
    assert lines[2].startswith("Agree:      not verified now") and "blocked" in lines[2]


def test_drift_while_on_is_not_yet_agreed() -> None:
    lines = cli.describe_location({"desired": "on", "gate": "open", "enforced": False,
                                   "observed": {"gnss": "off", "autogps": 0, "outport": "usbnmea"}})
    assert lines[2] == "Agree:      not verified now; the agent keeps enforcing"


def test_location_off_says_what_holds_and_what_does_not_yet() -> None:
    confirmed = cli.describe(
        "location.off", {"wait_s": 10.0}, {**OFF_VERIFIED, "durable": True, "verified": True})
    assert confirmed[:2] == ["Location off is saved and location data is blocked.", "The modem confirmed it."]
    pending = cli.describe(
        "location.off", {"wait_s": 2.5},
        {**OFF_VERIFIED, "enforced": False, "verified": False,
         "not_verified": "the modem is unreachable; not confirmed within 2.5 s"})
    assert pending[1] == ("Not confirmed: the modem is unreachable; not confirmed within 2.5 s. "
                          "The change stays recorded and is enforced when the modem answers.")
    on = cli.describe("location.on", {}, {"desired": "on", "verified": False})
    assert on[0] == "Location on is saved; location data stays blocked until the modem confirms."


def test_status_and_generic_results_print_as_plain_lines() -> None:
    status = {"location": OFF_VERIFIED, "modem": {"model": "EC25", "revision": "R1"},
              "incidents": 2, "ledger": {"records": 5}}
    lines = cli.describe("status", {}, status)
    assert "Module:     EC25 (R1)" in lines
    assert "incidents: 2" in lines and "ledger.records: 5" in lines
    assert cli.describe("incidents", {}, {"incidents": []}) == ["incidents: (none)"]
    assert cli.describe("incidents", {}, {"incidents": [
        {"kind": "drift", "time": "2026-12-02T10:00:00.000Z", "time_ms": 1, "seq": 4,
         "found": {"gnss": "on"}, "repaired": True}]}) == [
        "2026-12-02T10:00:00.000Z  drift  found.gnss=on repaired=yes"]
    assert cli.describe("identity.reset", {}, {}) == ["done"]
    assert cli.describe_generic({"verified": True, "head": None}) == ["verified: yes", "head: unknown"]


# -- options after the subcommand, times, exit codes ---------------------------------------------------------

@pytest.mark.parametrize("argv", [["--json", "status"], ["status", "--json"],
                                  ["location", "status", "--json"], ["--json", "location", "off", "--json"]])
def test_json_is_accepted_before_or_after_the_subcommand(argv: list[str]) -> None:
    assert cli.build_parser().parse_args(argv).json is True


def test_json_defaults_to_off() -> None:
    assert not getattr(cli.build_parser().parse_args(["status"]), "json", False)


def test_check_and_since_become_request_arguments() -> None:
    assert request_for("location", "status", "--check") == ("location.status", {"check": True})
    assert request_for("location", "status") == ("location.status", {})
    assert request_for("incidents", "--since", "2026-12-02T10:00:00Z") == (
        "incidents", {"since_ms": 1_796_205_600_000})
    assert request_for("incidents", "--since", "2026-12-02T11:00:00+01:00")[1] == {"since_ms": 1_796_205_600_000}


def test_since_takes_an_age() -> None:
    assert cli._since("90s", now=1000.0) == 910_000
    assert cli._since("2h", now=10_000.0) == (10_000 - 7200) * 1000


@pytest.mark.parametrize("bad", ["yesterday", "5w", "", "2026-13-01"])
def test_a_bad_since_is_a_usage_error(bad: str) -> None:
    err = io.StringIO()
    assert cli.main(["incidents", "--since", bad], stdout=io.StringIO(), stderr=err) == cli.EXIT_USAGE


def test_in_json_mode_an_error_is_printed_once_as_json_on_stdout(tmp_path: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--socket", str(tmp_path / "none.sock"), "status", "--json"], stdout=out, stderr=err)
    assert code == cli.EXIT_UNREACHABLE
    assert err.getvalue() == ""
    reply = json.loads(out.getvalue())
    assert reply["ok"] is False and reply["error"]["kind"] == "AgentUnreachable"


@pytest.mark.parametrize(("argv", "message"), [
    (["correct", "minor", "maybe"], "a correction of 'minor' takes yes or no"),
    (["correct", "region", "eu"], "a region is an upper-case code such as CN or EU"),
    (["correct", "wrong-fix", "a b"], "a wrong fix is named by its upload id"),
])
def test_bad_correction_values_exit_2_naming_the_problem(argv: list[str], message: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--socket", str(tmp_path / "never.sock"), *argv]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
