"""Incidents through the real daemon on the simulator: each carries its cause, impact, action and what the user
can do; the [incidents] hook gets it as JSON on stdin; a hook that fails or hangs is bounded and recorded, and the
daemon keeps answering; unauthorised control attempts are incidents, rate-limited."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.control import Peer
from agent.errors import PermissionDenied
from hil_tests.conftest import RunningAgent, sim_config, wait_until

STRANGER = Peer(pid=4321, uid=54321, gid=54321)


@pytest.fixture
def start(tmp_path: Path, sim_name: str) -> Iterator[Callable[..., RunningAgent]]:
    from agent.config import IncidentsConfig
    from agent.daemon import Agent

    running: list[Any] = []

    def start_agent(hook: str | None = None, *, timeout_s: float = 5.0,
                    peer: Peer | None = None) -> RunningAgent:
        config = sim_config(tmp_path, sim_name, interval_s=1.0, nmea=False)
        if hook is not None:
            script = tmp_path / "hook.py"
            script.write_text(hook)
            config = type(config)(modem=config.modem, state=config.state, control=config.control,
                                  incidents=IncidentsConfig(command=(sys.executable, str(script)),
                                                            timeout_s=timeout_s))
        agent = Agent(config)
        if peer is not None:
            agent.control._peer_credentials = lambda conn: peer  # every client looks like this peer
        agent.start()
        running.append(agent)
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        return RunningAgent(agent, sim_name, config.control.socket, config.state.dir)

    try:
        yield start_agent
    finally:
        for agent in running:
            agent.stop()


def hook_records(running: RunningAgent) -> list[dict[str, Any]]:
    return [record.fields for record in running.agent.ledger.records() if record.type == "incident_hook"]


def cause_drift(running: RunningAgent) -> None:
    running.rogue("AT+QGPS=1")  # another program turns the engine on: drift, repaired
    assert wait_until(lambda: running.request("incidents")["incidents"], 10), "no drift incident"


def test_the_hook_gets_each_incident_as_json_with_its_wording(start: Any, tmp_path: Path) -> None:
    got = tmp_path / "got.jsonl"
    running = start(f"import sys\nopen({str(got)!r}, 'a').write(sys.stdin.read())\n")
    cause_drift(running)
    assert wait_until(got.exists, 10), "the hook was not called"
    incident = json.loads(got.read_text().splitlines()[0])
    assert incident["kind"] == "drift" and incident["repaired"] is True
    assert {"cause", "impact", "action", "user_can", "time_ms"} <= set(incident)
    recorded = running.request("incidents")["incidents"][0]
    assert {key: recorded[key] for key in ("cause", "impact", "action", "user_can")} == \
        {key: incident[key] for key in ("cause", "impact", "action", "user_can")}
    assert hook_records(running) == []  # it succeeded: nothing to record about the hook
    out = io.StringIO()
    assert cli.main(["--socket", str(running.socket), "status"], stdout=out) in (0, 1)
    assert "Incident:   " in out.getvalue() and "drift" in out.getvalue()


def test_a_failing_hook_is_recorded_and_the_daemon_carries_on(start: Any) -> None:
    running = start("import sys\nsys.stdin.read()\nsys.exit(7)\n")
    cause_drift(running)
    assert wait_until(lambda: hook_records(running), 10), "the hook's failure was not recorded"
    assert hook_records(running)[0]["problem"] == "the hook exited with status 7"
    assert hook_records(running)[0]["kind"] == "drift"
    assert running.request("location.status")["enforced"] is True


def test_a_hanging_hook_is_killed_at_its_deadline_and_never_holds_the_daemon(start: Any) -> None:
    running = start("import time\ntime.sleep(120)\n", timeout_s=1.0)
    cause_drift(running)
    began = time.monotonic()
    for _ in range(5):  # the daemon answers while the hook hangs
        assert running.request("status")["location"]["desired"] == "off"
    assert time.monotonic() - began < 5.0
    assert wait_until(lambda: hook_records(running), 10), "the hanging hook was not recorded"
    assert hook_records(running)[0]["problem"] == "the hook did not finish within 1 s and was killed"
    assert running.agent.supervisor.incident_hook.runs >= 1


def test_unauthorised_control_attempts_are_incidents_but_a_flood_is_counted_not_logged(start: Any) -> None:
    running = start(peer=STRANGER)
    for _ in range(40):
        with pytest.raises(PermissionDenied):
            running.request("location.on", wait_s=0)
    denied = [item for item in running.request("incidents")["incidents"] if item["kind"] == "unauthorised-control"]
    assert len(denied) == 5  # the flood limit: 5 a minute
    assert {item["uid"] for item in denied} == {STRANGER.uid}
    assert "refused" in denied[0]["action"] and denied[0]["user_can"]
    assert running.request("location.status")["desired"] == "off"  # and nothing changed
