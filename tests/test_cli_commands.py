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
    (["export", "--out", "/srv/x.export"], "export", {"out": "/srv/x.export"}),
    (["erase"], "erase", {"all": False}),
    (["erase", "--all"], "erase", {"all": True}),
    (["log", "verify"], "log.verify", {}),
    (["policy", "show"], "policy.show", {}),
    (["incidents"], "incidents", {}),
])
def test_every_command_maps_to_a_request_the_agent_accepts(argv: list[str], op: str,
                                                           args: dict[str, Any]) -> None:
    assert request_for(*argv) == (op, args)
    wire = json.dumps({"v": 1, "op": op, "args": args}).encode()
    assert parse_request(wire).op == op  # the server's validation agrees with what the CLI sends


def test_export_paths_are_made_absolute_because_the_agent_has_another_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert request_for("export", "--out", "mine.export") == ("export", {"out": str(tmp_path / "mine.export")})


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["location"], ["location", "maybe"], ["location", "off", "--wait", "61"],
    ["location", "off", "--wait", "-1"], ["location", "off", "--wait", "nan"],
    ["location", "off", "--wait", "x"],
    ["consent", "grant"], ["export"], ["erase", "--everything"], ["log"], ["status", "extra"],
    ["consent", "grant", "Ads"], ["consent", "withdraw", "a" * 65], ["consent", "grant", ""],
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

def test_an_error_reply_becomes_refused_with_its_kind() -> None:
    with pytest.raises(cli.Refused) as caught:
        cli._decode(b'{"ok": false, "error": {"kind": "PermissionDenied", "message": "only root"}}')
    assert (caught.value.kind, caught.value.message) == ("PermissionDenied", "only root")


@pytest.mark.parametrize("raw", [b"", b"garbage", b"[]", b'{"ok": true}', b'{"ok": false, "error": {}}',
                                 b'{"ok": true, "result": []}', b"\xff", b"[" * 200_000])
def test_malformed_replies_are_refusals_not_crashes(raw: bytes) -> None:
    with pytest.raises(cli.Refused):
        cli._decode(raw)


@pytest.mark.parametrize("result", [
    {"observed": "x"}, {"observed": [1]}, {"desired": ["off"], "gate": {}, "observed": {"gnss": 3}},
    {"location": {"observed": "x"}, "modem": {"model": None}}, {"location": "x", "modem": 7},
])
@pytest.mark.parametrize("op", ["location.status", "location.off", "status"])
def test_results_of_any_shape_are_shown_without_crashing(op: str, result: dict[str, Any]) -> None:
    lines = cli.describe(op, {"wait_s": 1.0}, result)
    assert all(isinstance(line, str) for line in lines)


def test_control_characters_from_the_agent_do_not_reach_the_terminal() -> None:
    shown = cli.describe("incidents", {}, {"found\x1b[2J": "gnss \x1b]0;pwned\x07on"})
    assert shown == ["found?[2J: gnss ?]0;pwned?on"]
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

OFF_VERIFIED = {"desired": "off", "gate": "closed", "enforced": True,
                "observed": {"gnss": "off", "autogps": 0, "outport": "none"}}


def test_location_status_says_what_was_asked_what_the_modem_does_and_whether_they_agree() -> None:
    assert cli.describe_location(OFF_VERIFIED) == [
        "You asked:  location off",
        "Modem:      GNSS off, autogps 0, NMEA output none",
        "Agree:      yes, verified on the modem",
    ]


def test_an_unknown_modem_state_is_said_plainly_and_the_block_mentioned() -> None:
    lines = cli.describe_location({"desired": "off", "gate": "closed", "enforced": False,
                                   "observed": {"gnss": "unknown", "autogps": None, "outport": None}})
    assert lines[1] == "Modem:      unknown (the modem cannot be read right now)"
    assert lines[2].startswith("Agree:      not yet") and "blocked" in lines[2]


def test_drift_while_on_is_not_yet_agreed() -> None:
    lines = cli.describe_location({"desired": "on", "gate": "open", "enforced": False,
                                   "observed": {"gnss": "off", "autogps": 0, "outport": "usbnmea"}})
    assert lines[2] == "Agree:      not yet; the agent keeps enforcing"


def test_location_off_says_which_of_durable_and_verified_it_got() -> None:
    verified = cli.describe(
        "location.off", {"wait_s": 10.0}, {**OFF_VERIFIED, "durable": True, "verified": True})
    assert verified[:2] == ["Location off is saved and location data is blocked.",
                            "The modem confirmed it within 10 s."]
    pending = cli.describe(
        "location.off", {"wait_s": 2.5}, {**OFF_VERIFIED, "enforced": False, "verified": False})
    assert pending[1] == "The modem has not confirmed it within 2.5 s; the agent keeps enforcing."


def test_status_and_generic_results_print_as_plain_lines() -> None:
    status = {"location": OFF_VERIFIED, "modem": {"model": "EC25", "revision": "R1"},
              "incidents": 2, "ledger": {"records": 5}}
    lines = cli.describe("status", {}, status)
    assert "Module:     EC25 (R1)" in lines
    assert "incidents: 2" in lines and "ledger.records: 5" in lines
    assert cli.describe("incidents", {}, {"incidents": []}) == ["incidents: (none)"]
    assert cli.describe("incidents", {}, {"incidents": [{"kind": "drift"}]}) == ["incidents[0].kind: drift"]
    assert cli.describe("identity.reset", {}, {}) == ["done"]
    assert cli.describe_generic({"verified": True, "head": None}) == ["verified: yes", "head: unknown"]
