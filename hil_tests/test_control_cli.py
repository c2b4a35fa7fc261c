"""privacyctl as a separate process against a real control socket with a scripted agent; the unit file."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.control import ControlServer, Peer, Request
from agent.errors import PermissionDenied, UsageError

ROOT = Path(__file__).resolve().parent.parent

OFF_STATUS = {"desired": "off", "gate": "closed", "enforced": True,
              "observed": {"gnss": "off", "autogps": 0, "outport": "none"}}


class ScriptedAgent:
    """Answers like the daemon would, and remembers every request."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.refuse_changes = False

    def __call__(self, req: Request, peer: Peer) -> dict[str, Any]:
        self.requests.append(req)
        if self.refuse_changes and req.op.startswith("location.o"):
            raise PermissionDenied("changing the switch needs privilege; only root may do that", uid=1000)
        if req.op == "location.status":
            return OFF_STATUS
        if req.op in ("location.on", "location.off"):
            desired = req.op.removeprefix("location.")
            verified = req.args.get("wait_s", 10.0) > 0
            return {**OFF_STATUS, "desired": desired, "durable": True, "verified": verified,
                    "enforced": verified, "gate": "closed" if desired == "off" else "open"}
        if req.op == "status":
            return {"location": OFF_STATUS, "modem": {"model": "EC25", "revision": "EC25EFAR06A06M4G"},
                    "incidents": 1}
        if req.op == "incidents":
            return {"incidents": [{"found": "gnss on", "repaired": True}]}
        if req.op == "log.verify":
            return {"verified": True, "records": 12}
        if req.op == "consent.list":
            return {"consents": []}
        raise UsageError(f"'{req.op}' is not supported by this agent yet")


@pytest.fixture
def agent_socket() -> Iterator[tuple[Path, ScriptedAgent]]:
    folder = Path(tempfile.mkdtemp(prefix="pa-cli-", dir="/tmp"))
    scripted = ScriptedAgent()
    server = ControlServer(folder / "control.sock", scripted)
    server.start()
    yield server.path, scripted
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def privacyctl(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != cli.SOCKET_ENV}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "agent.cli", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=environment, check=False)


# -- every command, through the socket -----------------------------------------------------------------

@pytest.mark.parametrize(("argv", "op", "args"), [
    (["status"], "status", {}),
    (["location", "status"], "location.status", {}),
    (["location", "on"], "location.on", {"wait_s": 10.0}),
    (["location", "off", "--wait", "2"], "location.off", {"wait_s": 2.0}),
    (["consent", "list"], "consent.list", {}),
    (["incidents"], "incidents", {}),
    (["log", "verify"], "log.verify", {}),
])
def test_commands_the_agent_answers_exit_0(agent_socket: tuple[Path, ScriptedAgent], argv: list[str],
                                           op: str, args: dict[str, Any]) -> None:
    path, scripted = agent_socket
    done = privacyctl("--socket", str(path), *argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and done.stderr == ""
    assert scripted.requests == [Request(op, args)]


@pytest.mark.parametrize(("argv", "op"), [
    (["consent", "grant", "fleet"], "consent.grant"),
    (["consent", "withdraw", "fleet"], "consent.withdraw"),
    (["identity", "reset"], "identity.reset"),
    (["export", "--out", "/tmp/mine.export"], "export"),
    (["erase", "--all"], "erase"),
    (["policy", "show"], "policy.show"),
])
def test_commands_the_agent_refuses_exit_1_with_the_reason(agent_socket: tuple[Path, ScriptedAgent],
                                                           argv: list[str], op: str) -> None:
    path, scripted = agent_socket
    done = privacyctl("--socket", str(path), *argv)
    assert done.returncode == 1
    assert done.stderr == f"privacyctl: '{op}' is not supported by this agent yet\n"
    assert [req.op for req in scripted.requests] == [op]


def test_json_location_status_prints_the_agents_object(agent_socket: tuple[Path, ScriptedAgent]) -> None:
    path, _ = agent_socket
    done = privacyctl("--socket", str(path), "--json", "location", "status")
    assert done.returncode == 0
    assert json.loads(done.stdout) == OFF_STATUS


def test_location_status_in_plain_words(agent_socket: tuple[Path, ScriptedAgent]) -> None:
    path, _ = agent_socket
    done = privacyctl("--socket", str(path), "location", "status")
    assert done.stdout == ("You asked:  location off\nModem:      GNSS off, autogps 0, NMEA output none\n"
                           "Agree:      yes, verified on the modem\n")


def test_location_off_says_whether_the_modem_confirmed(agent_socket: tuple[Path, ScriptedAgent]) -> None:
    path, _ = agent_socket
    confirmed = privacyctl("--socket", str(path), "location", "off")
    assert confirmed.returncode == 0
    assert confirmed.stdout.splitlines()[:2] == ["Location off is saved and location data is blocked.",
                                                 "The modem confirmed it."]
    pending = privacyctl("--socket", str(path), "location", "off", "--wait", "0")
    assert pending.returncode == 1  # recorded, but "done" only once the modem confirmed
    assert pending.stdout.splitlines()[1] == (
        "Not confirmed: not confirmed. The change stays recorded and is enforced when the modem answers.")


def test_a_refused_change_exits_1(agent_socket: tuple[Path, ScriptedAgent]) -> None:
    path, scripted = agent_socket
    scripted.refuse_changes = True
    done = privacyctl("--socket", str(path), "location", "off")
    assert done.returncode == 1
    assert "only root may do that" in done.stderr
    as_json = privacyctl("--socket", str(path), "--json", "location", "on")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["kind"] == "PermissionDenied"


def test_the_socket_comes_from_the_environment(agent_socket: tuple[Path, ScriptedAgent]) -> None:
    path, scripted = agent_socket
    done = privacyctl("status", env={cli.SOCKET_ENV: str(path)})
    assert done.returncode == 0
    assert "Module:     EC25 (EC25EFAR06A06M4G)" in done.stdout
    assert [req.op for req in scripted.requests] == ["status"]


def test_usage_errors_exit_2_without_contacting_the_agent(agent_socket: tuple[Path, ScriptedAgent]) -> None:
    path, scripted = agent_socket
    for argv in (["location"], ["location", "off", "--wait", "120"], ["nonsense"]):
        done = privacyctl("--socket", str(path), *argv)
        assert done.returncode == 2
        assert "usage:" in done.stderr
    assert scripted.requests == []


# -- unreachable ---------------------------------------------------------------------------------------

def test_no_agent_exits_3(tmp_path: Path) -> None:
    done = privacyctl("--socket", str(tmp_path / "nothing.sock"), "location", "status")
    assert done.returncode == 3
    assert "cannot reach the agent" in done.stderr


def test_a_dead_agents_socket_file_exits_3() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pa-cli-", dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(str(folder / "control.sock"))
        done = privacyctl("--socket", str(folder / "control.sock"), "status")
        assert done.returncode == 3
        assert "Connection refused" in done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_agent_that_never_answers_exits_3_after_the_timeout() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pa-cli-", dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
            mute.bind(str(folder / "control.sock"))
            mute.listen(1)
            err = io.StringIO()
            code = cli.run(str(folder / "control.sock"), "status", {}, 0.3, as_json=False,
                           out=io.StringIO(), err=err)
        assert code == cli.EXIT_UNREACHABLE
        assert "no reply from the agent within 0.3 s" in err.getvalue()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- start-up weight -----------------------------------------------------------------------------------

HEAVY = ("cbor2", "cryptography", "serial", "agent.daemon", "agent.session", "agent.ledger", "agent.control",
         "agent.config", "agent.sim", "asyncio", "tomllib", "logging")


def test_privacyctl_imports_nothing_heavy() -> None:
    script = ("import json, sys\nfrom agent import cli\n"
              "cli.main(['--socket', '/nonexistent/control.sock', 'location', 'status'])\n"
              "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=False)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "agent.cli" in loaded
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY
                   or any(name.startswith(prefix + ".") for prefix in HEAVY))
    assert heavy == []
    # the one client of the socket: the pure protocol, the socket half, the error tree
    assert {name for name in loaded if name.startswith("agent.")} == {
        "agent.cli", "agent.cli_text", "agent.cli_values", "agent.control_args", "agent.control_client",
        "agent.control_framing", "agent.control_protocol", "agent.control_slots", "agent.control_wire", "agent.errors"}


# -- the unit file, checked by systemd itself ----------------------------------------------------------

def _unit_with_real_executable(folder: Path) -> Path:
    unit = (ROOT / "packaging" / "privacy-agent.service").read_text()
    executable = shutil.which("privacy-agent") or shutil.which("true") or "/bin/true"
    path = folder / "privacy-agent.service"
    # verify refuses a unit whose ExecStart binary is missing; this machine may not have it in /usr/local/bin.
    path.write_text(unit.replace("/usr/local/bin/privacy-agent", executable))
    return path


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = _unit_with_real_executable(tmp_path)
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_systemd_rates_the_sandbox_ok(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = _unit_with_real_executable(tmp_path)
    done = subprocess.run([tool, "security", "--offline=yes", str(unit)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, check=False)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    if found is None:
        pytest.skip(f"this systemd-analyze cannot rate unit files offline: {done.stderr.strip()[:120]}")
    assert float(found.group(1)) <= 2.0
