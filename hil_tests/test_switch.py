"""The location switch reaches the hardware and stays there (invariants 1 and 2), through the real daemon
objects, threads, sim:// ports and the control socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hil_tests.conftest import RunningAgent, wait_until


def gnss_really_on(running: RunningAgent) -> bool:
    return bool(running.modem.state.gnss_on)


def test_first_start_is_off_and_verified(running_agent: RunningAgent) -> None:
    status = running_agent.request("location.status")
    assert status["desired"] == "off"
    assert status["gate"] == "closed"
    assert status["enforced"] is True
    assert status["observed"] == {"gnss": "off", "autogps": 0, "outport": "none"}
    assert running_agent.modem.state.gnss_on is False
    assert running_agent.modem.state.cfg["autogps"] == 0


def test_on_then_off_reaches_the_hardware(running_agent: RunningAgent) -> None:
    fixes: list[Any] = []
    running_agent.agent.supervisor.fix_listeners.append(fixes.append)
    reply = running_agent.request("location.on", wait_s=10)
    assert reply["verified"] is True
    assert reply["gate"] == "open"
    assert running_agent.modem.state.gnss_on is True
    assert running_agent.modem.state.cfg["outport"] == "usbnmea"
    assert wait_until(lambda: any(fix.valid for fix in fixes), timeout_s=10), "no fix arrived while on"

    reply = running_agent.request("location.off", wait_s=10)
    assert reply["durable"] is True
    assert reply["verified"] is True
    assert reply["gate"] == "closed"
    assert reply["observed"] == {"gnss": "off", "autogps": 0, "outport": "none"}
    state = running_agent.modem.state
    assert (state.gnss_on, state.cfg["autogps"], state.cfg["outport"]) == (False, 0, "none")
    count = len(fixes)
    assert not wait_until(lambda: len(fixes) > count, timeout_s=1.5), "fixes passed the closed gate"


def test_rogue_client_is_repaired_within_one_interval_and_recorded(running_agent: RunningAgent) -> None:
    running_agent.rogue("AT+QGPS=1")
    assert wait_until(lambda: gnss_really_on(running_agent), timeout_s=2)
    assert wait_until(lambda: not gnss_really_on(running_agent), timeout_s=3), "drift not repaired"
    assert wait_until(lambda: running_agent.request("incidents")["incidents"], timeout_s=2)
    incident = running_agent.request("incidents")["incidents"][0]
    assert incident["found"]["gnss"] == "on"
    assert incident["repaired"] is True
    ledger_incidents = [r for r in running_agent.agent.ledger.records() if r.type == "incident"]
    assert ledger_incidents, "the incident is not in the ledger"


def test_autogps_behind_our_back_then_reboot_is_repaired_after_rdy(running_agent: RunningAgent) -> None:
    running_agent.rogue('AT+QGPSCFG="autogps",1')
    assert wait_until(lambda: running_agent.modem.state.cfg["autogps"] == 1, timeout_s=2)
    running_agent.modem.reboot()
    # After the reboot GNSS comes up by itself (autogps); the agent must turn it off and clear autogps.
    assert wait_until(lambda: running_agent.modem.state.cfg["autogps"] == 0 and not gnss_really_on(running_agent),
                      timeout_s=10)
    # The hardware is right a moment before the enforcer has read it back and calls it enforced.
    assert wait_until(lambda: running_agent.request("location.status")["enforced"] is True, timeout_s=5)
    assert wait_until(lambda: any(item["found"].get("autogps") == 1
                                  for item in running_agent.request("incidents")["incidents"]), timeout_s=5)


def test_unplug_is_unknown_and_closed_then_replug_is_reenforced(running_agent: RunningAgent) -> None:
    running_agent.request("location.on", wait_s=10)
    running_agent.modem.unplug()
    assert wait_until(lambda: running_agent.request("location.status")["observed"]["gnss"] == "unknown", 5)
    status = running_agent.request("location.status")
    assert status["gate"] == "closed"
    assert status["enforced"] is False
    running_agent.modem.replug()
    assert wait_until(lambda: running_agent.request("location.status")["enforced"], timeout_s=10)
    assert running_agent.request("location.status")["gate"] == "open"


def test_bad_wait_is_a_clear_error_and_the_daemon_lives(running_agent: RunningAgent) -> None:
    import pytest

    from agent.errors import UsageError

    with pytest.raises(UsageError, match="wait_s"):
        running_agent.request("location.off", wait_s=1000)
    assert running_agent.request("location.status")["desired"] == "off"


def test_unauthorised_uid_cannot_change_state(tmp_path: Path, sim_name: str) -> None:
    """The daemon's own server, with the peer-credential function injected to play another uid."""
    import pytest

    from agent.control import ControlServer, Peer, request
    from agent.daemon import Agent
    from agent.errors import PermissionDenied
    from hil_tests.conftest import sim_config

    agent = Agent(sim_config(tmp_path, sim_name))
    agent.control = ControlServer(agent.config.control.socket, agent.supervisor.handle,
                                  peer_credentials=lambda conn: Peer(pid=1, uid=4242, gid=4242, groups=()))
    agent.start()
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        with pytest.raises(PermissionDenied):
            request(agent.config.control.socket, "location.on", None, timeout_s=10)
        assert request(agent.config.control.socket, "location.status", None)["desired"] == "off"
        assert agent.supervisor.desired.location_on is False
    finally:
        agent.stop()


def test_a_damaged_state_file_gives_way_to_the_ledgers_last_switch(tmp_path: Path, sim_name: str) -> None:
    """desired.json is a copy of the ledger's last switch record: damaged, it is ignored and rewritten."""
    import json

    from agent.daemon import Agent
    from hil_tests.conftest import sim_config

    config = sim_config(tmp_path, sim_name)
    first = Agent(config)
    first.start()
    try:
        assert wait_until(lambda: first.supervisor.enforcer.enforced, 15)
        first.supervisor.set_location(True, uid=0, wait_s=10)
    finally:
        first.stop()
    state_file = config.state.dir / "desired.json"
    state_file.write_bytes(b"[" * 100_000)  # damaged (and deep enough to trip a naive parser)
    second = Agent(config)
    second.start()
    try:
        assert second.supervisor.desired.location_on is True  # the ledger's last switch, not a guess
        assert wait_until(lambda: second.supervisor.enforcer.enforced, 15)
        assert wait_until(lambda: state_file.read_bytes().startswith(b"{"), 10)
        assert json.loads(state_file.read_bytes())["location"] == "on"
    finally:
        second.stop()
