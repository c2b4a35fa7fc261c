"""Every answer the agent gives is true: "verified" is a fresh read-back with its time, drift is caught in seconds
(by the periodic ``AT+QGPS?`` and at once by NMEA bytes while off), incidents outlive restarts, a change the modem
has not confirmed is not called done, and a refused start writes nothing.

The real daemon objects, threads, sim:// ports and control socket; the simulator's second AT port is the rogue.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.errors import ControlError
from hil_tests.conftest import RunningAgent, sim_config, wait_until


@pytest.fixture
def start_agent(tmp_path: Path, sim_name: str, agents: Any) -> Any:
    """Start agents on the simulator named ``sim_name`` with a chosen interval and NMEA port; stop them all."""

    def start(*, interval_s: float = 1.0, nmea: bool = True, state: str = "state") -> RunningAgent:
        config = sim_config(tmp_path, sim_name, interval_s=interval_s, nmea=nmea)
        config = type(config)(modem=config.modem, state=type(config.state)(dir=tmp_path / state),
                              control=config.control, ledger=config.ledger)
        return agents(config, sim_name)

    return start


def stop(running: RunningAgent) -> None:
    running.agent.stop()


# -- item 1: verified means a fresh read-back, with its time ---------------------------------------------------

def test_status_says_when_it_verified_and_how_long_ago(start_agent: Any) -> None:
    running = start_agent(interval_s=2.0)
    status = running.request("location.status")
    assert status["enforced"] is True
    assert status["verified_at"].endswith("Z") and status["verified_at"] == status["observed_at"]
    assert 0 <= status["observed_age_s"] <= 2.0


def test_a_read_back_older_than_the_interval_is_never_called_verified(start_agent: Any) -> None:
    running = start_agent(interval_s=1.0, nmea=False)
    running.modem.faults.drop("AT+QGPS?", times=1000)  # the modem stops answering the check
    assert wait_until(lambda: running.request("location.status")["enforced"] is False, timeout_s=5)
    status = running.request("location.status")
    assert status["verified_at"] is None
    assert status["gate"] == "closed"
    running.modem.faults.clear()
    assert wait_until(lambda: running.request("location.status")["enforced"] is True, timeout_s=10)


def test_a_rogue_qgps_is_repaired_within_the_interval_plus_one_second(start_agent: Any) -> None:
    running = start_agent(interval_s=2.0, nmea=False)
    running.rogue("AT+QGPS=1")
    assert wait_until(lambda: running.modem.state.gnss_on, timeout_s=2)
    assert wait_until(lambda: not running.modem.state.gnss_on, timeout_s=2.0 + 1.0), "not repaired in time"
    incidents = running.request("incidents")["incidents"]
    assert incidents[0]["found"]["gnss"] == "on" and incidents[0]["repaired"] is True


def test_nmea_bytes_while_off_are_repaired_within_two_seconds_of_the_first_burst(start_agent: Any) -> None:
    running = start_agent(interval_s=30.0)  # the periodic check is far away: only the NMEA watch can catch it
    modem = running.modem
    running.rogue('AT+QGPSCFG="outport","usbnmea"')
    running.rogue("AT+QGPS=1")
    assert wait_until(lambda: modem.state.gnss_on, timeout_s=2)
    assert wait_until(lambda: not modem.state.gnss_on and modem.state.cfg["outport"] == "none", timeout_s=1.0 + 2.0)
    assert wait_until(lambda: any("nmea-while-off" in item.get("trigger", "")
                                  for item in running.request("incidents")["incidents"]), timeout_s=2)
    incident = running.request("incidents")["incidents"][0]
    assert incident["found"]["gnss"] == "on" and incident["found"]["outport"] == "usbnmea"


def test_location_status_check_reads_the_modem_back_before_answering(start_agent: Any) -> None:
    running = start_agent(interval_s=30.0, nmea=False)
    running.rogue("AT+QGPS=1")
    assert wait_until(lambda: running.modem.state.gnss_on, timeout_s=2)
    status = running.request("location.status", check=True)
    assert status["checked"] is True and status["enforced"] is True
    assert status["observed"]["gnss"] == "off" and not running.modem.state.gnss_on
    assert running.request("incidents")["incidents"][0]["found"]["gnss"] == "on"


def test_location_status_check_through_privacyctl(start_agent: Any) -> None:
    running = start_agent(interval_s=30.0, nmea=False)
    out = io.StringIO()
    code = cli.main(["--socket", str(running.socket), "location", "status", "--check", "--json"], stdout=out,
                    stderr=io.StringIO())
    assert code == cli.EXIT_OK
    assert json.loads(out.getvalue())["checked"] is True


# -- item 2: incidents come from the ledger -----------------------------------------------------------------------

def test_incidents_outlive_a_restart_newest_first_with_iso_times(start_agent: Any) -> None:
    first = start_agent(interval_s=1.0, nmea=False)
    first.rogue("AT+QGPS=1")
    assert wait_until(lambda: first.request("incidents")["incidents"], timeout_s=5)
    first.rogue('AT+QGPSCFG="autogps",1')
    assert wait_until(lambda: first.request("location.status", check=True)["enforced"] and
                      len(first.request("incidents")["incidents"]) >= 2, timeout_s=5)
    stop(first)
    second = start_agent(interval_s=1.0, nmea=False)
    incidents = second.request("incidents")["incidents"]
    assert len(incidents) >= 2
    assert incidents[0]["seq"] > incidents[1]["seq"], "not newest first"
    assert all(item["time"].endswith("Z") for item in incidents)
    assert second.request("status")["incidents"] == len(incidents)
    since = second.request("incidents", since_ms=incidents[0]["time_ms"])["incidents"]
    assert [item["seq"] for item in since] == [incidents[0]["seq"]]
    out = io.StringIO()
    assert cli.main(["--socket", str(second.socket), "incidents"], stdout=out, stderr=io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(incidents[0]["time"]) and "drift" in lines[0]


def test_a_repaired_registration_mode_is_an_incident(start_agent: Any) -> None:
    running = start_agent(interval_s=30.0, nmea=False)
    running.rogue("AT+CREG=2")
    assert wait_until(lambda: running.modem.state.creg_mode == 2, timeout_s=2)
    running.request("location.status", check=True)
    assert running.modem.state.creg_mode == 1
    assert running.request("incidents")["incidents"][0]["found"] == {"creg": 2}


# -- item 5: a wait that waits -------------------------------------------------------------------------------------

def test_location_on_waits_for_a_modem_that_comes_back(start_agent: Any) -> None:
    running = start_agent(interval_s=1.0)
    running.modem.unplug()
    assert wait_until(lambda: not running.agent.session.connected, timeout_s=5)
    replies: list[dict[str, Any]] = []
    asker = threading.Thread(target=lambda: replies.append(running.request("location.on", wait_s=20)))
    asker.start()
    time.sleep(1.0)
    running.modem.replug()
    asker.join(30)
    assert replies and replies[0]["verified"] is True and replies[0]["desired"] == "on"


def test_an_unconfirmed_change_says_so_and_exits_1(start_agent: Any) -> None:
    running = start_agent(interval_s=1.0)
    running.modem.unplug()
    assert wait_until(lambda: not running.agent.session.connected, timeout_s=5)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--socket", str(running.socket), "location", "on", "--wait", "1.5"], stdout=out, stderr=err)
    assert code == cli.EXIT_FAILED
    text = out.getvalue()
    assert "Location on is saved" in text and "Not confirmed: the modem is unreachable" in text
    assert running.agent.supervisor.desired.location_on is True  # recorded, enforced when the modem returns
    running.modem.replug()
    assert wait_until(lambda: running.modem.state.gnss_on, timeout_s=10)


# -- item 6: privacy by default, recorded -----------------------------------------------------------------------

def test_the_first_start_records_the_default_off(start_agent: Any) -> None:
    running = start_agent()
    switches = [record for record in running.agent.ledger.records() if record.type == "switch"]
    assert len(switches) == 1
    assert switches[0].fields["desired"] == "off" and switches[0].fields["reason"] == "default"


# -- item 8 and issue 16: nothing written before the checks; desired.json cannot be redirected ----------------

def test_a_start_refused_for_a_busy_socket_writes_nothing(start_agent: Any, tmp_path: Path, sim_name: str) -> None:
    from agent.daemon import Agent

    start_agent()
    config = sim_config(tmp_path, sim_name)
    fresh = tmp_path / "fresh-state"
    config = type(config)(modem=config.modem, state=type(config.state)(dir=fresh), control=config.control,
                          ledger=config.ledger)
    with pytest.raises(ControlError, match="already listening"):
        Agent(config)
    assert not fresh.exists()


@pytest.mark.parametrize("target", ["outside-on", "/dev/zero", "fifo"])
def test_a_redirected_desired_json_is_refused_and_the_ledger_decides(
        start_agent: Any, tmp_path: Path, target: str) -> None:
    first = start_agent()
    stop(first)
    desired = first.state_dir / "desired.json"
    desired.unlink()
    if target == "outside-on":
        outside = tmp_path / "outside.json"
        outside.write_text('{"location":"on","generation":99}')
        desired.symlink_to(outside)
    elif target == "fifo":
        os.mkfifo(desired)
    else:
        desired.symlink_to(target)
    second = start_agent()
    status = second.request("status")
    assert status["location"]["desired"] == "off" and not second.modem.state.gnss_on
    assert any("desired.json could not be used" in notice for notice in status["notices"])


def test_desired_json_ahead_of_the_ledger_starts_off_and_says_why(start_agent: Any) -> None:
    first = start_agent()
    stop(first)
    (first.state_dir / "desired.json").write_text('{"location":"on","generation":7}')
    second = start_agent()
    status = second.request("status")
    assert status["location"]["desired"] == "off" and not second.modem.state.gnss_on
    assert any("never recorded" in notice for notice in status["notices"])
    assert second.request("incidents")["incidents"][0]["kind"] == "state-disagrees"
    switches = [record for record in second.agent.ledger.records() if record.type == "switch"]
    assert switches[-1].fields["reason"] == "fail-closed" and switches[-1].fields["generation"] == 8


def test_a_planted_temporary_file_does_not_stop_desired_json_being_written(start_agent: Any,
                                                                          tmp_path: Path) -> None:
    first = start_agent()
    stop(first)
    (first.state_dir / ".desired.json.tmp").symlink_to(tmp_path / "elsewhere")
    second = start_agent()
    second.request("location.on", wait_s=10)
    # the ledger's copy is rewritten right after the reply
    assert wait_until(lambda: json.loads((second.state_dir / "desired.json").read_text())["location"] == "on", 5)
    assert not (tmp_path / "elsewhere").exists()


# -- item 3: a truncated log is noticed at start, and the switch fails closed ------------------------------------

def test_a_truncated_ledger_is_an_incident_and_the_agent_starts_off(start_agent: Any) -> None:
    first = start_agent(nmea=False)
    first.request("location.on", wait_s=10)
    first.request("location.off", wait_s=10)
    first.request("location.on", wait_s=10)
    stop(first)
    segments = sorted((first.state_dir / "ledger").glob("*.seg")) or sorted(
        path for path in (first.state_dir / "ledger").iterdir() if path.name.startswith("seg"))
    last = segments[-1]
    os.truncate(last, last.stat().st_size - 600)  # the last switch (on) and what followed are gone
    second = start_agent(nmea=False)
    kinds = [item["kind"] for item in second.request("incidents")["incidents"]]
    assert "ledger-truncated" in kinds
    status = second.request("status")
    assert any("lost" in notice for notice in status["notices"])
    assert status["location"]["desired"] == "off" and not second.modem.state.gnss_on
    loss = next(item for item in second.request("incidents")["incidents"] if item["kind"] == "ledger-truncated")
    assert loss["missing"] >= 1 and loss["head_size"] > loss["found_size"]
