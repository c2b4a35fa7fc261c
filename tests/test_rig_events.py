"""Scenario events on the simulated module (public API only), the player's ordering, and the reports."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest

from agent.model import SystemClock
from agent.rig import modem_events
from agent.rig.checks import CheckResult, Observations
from agent.rig.player import FollowUp, play
from agent.rig.report import junit_xml, text_report
from agent.rig.runner import ScenarioResult
from agent.rig.scenario import Event, parse_scenario
from agent.sim import ManualClock, SimModem


def modem() -> SimModem:
    return SimModem(seed=1, ttff_s=1, clock=ManualClock())


def ask(sim: SimModem, channel: str, line: bytes) -> bytes:
    sim.discard_output(channel)
    sim.write(channel, line + b"\r")
    return sim.read(channel, 4096)


def test_unplug_returns_a_replug_after_its_seconds() -> None:
    sim = modem()
    follow = modem_events.apply(sim, Event("unplug", 0, args={"seconds": 2.0, "channel": "at"}))
    assert not sim.is_connected("at") and sim.is_connected("nmea")
    assert [delay for delay, _ in follow] == [2.0]
    follow[0][1]()
    assert sim.is_connected("at")


def test_a_rogue_line_changes_the_hardware() -> None:
    sim = modem()
    modem_events.apply(sim, Event("rogue", 0, args={"line": 'AT+QGPSCFG="autogps",1'}))
    assert sim.state.cfg["autogps"] == 1


def test_busy_answers_the_next_commands_with_the_code() -> None:
    sim = modem()
    modem_events.apply(sim, Event("busy", 0, args={"command": "+QGPS", "code": 503, "times": 1}))
    assert b"+CME ERROR: 503" in ask(sim, "at", b"AT+QGPS=1")
    assert not sim.state.gnss_on
    assert b"OK" in ask(sim, "at", b"AT+QGPS=1")
    assert sim.state.gnss_on


def test_stretch_faults_are_undone_by_their_follow_up() -> None:
    sim = modem()
    for action, args in [("garble", {"seconds": 1, "channel": "nmea", "probability": 1.0}),
                         ("bytewise", {"seconds": 1, "chunk_max": 1}),
                         ("shuffle", {"seconds": 1}), ("coalesce", {"seconds": 1, "period_s": 0.5})]:
        follow = modem_events.apply(sim, Event(action, 0, args=args))
        assert sim.faults != type(sim.faults)()
        follow[0][1]()
        assert sim.faults.garbage_nmea == 0 and sim.faults.chunk_max is None
        assert not sim.faults.shuffle_lines and sim.faults.coalesce_s == 0


def test_agent_side_actions_are_not_modem_events() -> None:
    with pytest.raises(ValueError):
        modem_events.apply(modem(), Event("kill", 0, args={"restart_after_s": 1}))


def test_the_player_runs_events_in_time_order_with_their_follow_ups() -> None:
    done: list[str] = []

    def perform(event: Event) -> list[FollowUp]:
        done.append(event.action)
        return [(0.02, lambda: done.append(f"end {event.action}"))] if event.action == "unplug" else []

    timeline = [(0.0, Event("unplug", 0)), (0.05, Event("reboot", 0.05))]
    assert play(timeline, perform, SystemClock(), threading.Event())
    assert done == ["unplug", "end unplug", "reboot"]


def test_the_player_stops_when_told() -> None:
    stop = threading.Event()
    stop.set()
    assert not play([(5.0, Event("reboot", 5.0))], lambda event: [], SystemClock(), stop)


def _result(passed: bool) -> ScenarioResult:
    scenario = parse_scenario({"name": "demo", "description": "d", "fault_class": "F8",
                               "expect": [{"check": "daemon_up"}]})
    check = CheckResult("daemon_up", passed, "0 crash(es)" if passed else "1 crash(es)")
    return ScenarioResult(scenario, [check], Observations(), 1.5, {},
                          ["000000.001 TX   0000  41 54 0D   AT."], [])


def test_the_transcript_is_shown_only_on_failure() -> None:
    assert "41 54 0D" not in text_report(_result(True))
    failed = text_report(_result(False))
    assert failed.startswith("FAIL demo") and "41 54 0D" in failed and "[FAILED] daemon_up" in failed


def test_junit_xml_counts_failures_and_carries_the_report() -> None:
    root = ET.fromstring(junit_xml([_result(True), _result(False)]))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and "41 54 0D" in (failure.text or "")


def test_a_rogue_line_while_the_port_is_away_does_nothing() -> None:
    sim = modem()
    sim.unplug()
    assert modem_events.apply(sim, Event("rogue", 0, args={"line": "AT+QGPS=1"})) == []
    sim.replug()
    assert not sim.state.gnss_on
