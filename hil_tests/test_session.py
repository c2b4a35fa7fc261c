"""The session against the simulated modem, over ``sim://`` and over a real pty: one command in flight,
per-command timeouts, URCs to listeners, echo off after every boot, a vanished port reported once and
reopened with backoff."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import sim
from agent.errors import CommandTimeout, PortUnavailable
from agent.quectel import commands
from agent.session import CONNECTED, DISCONNECTED, REBOOTED, Backoff, Session
from agent.sim.modem import SimModem
from agent.sim.pty import SimPtyServer
from hil_tests.conftest import wait_until

FAST = Backoff(first=0.05, limit=0.2)


@pytest.fixture
def session(sim_name: str) -> Iterator[Session]:
    opened = Session(f"sim://ec25?name={sim_name}&seed=4&port=at", backoff=FAST)
    opened.start()
    assert opened.wait_connected(5)
    yield opened
    opened.close()


def at_commands(name: str) -> list[str]:
    return [text for channel, text in sim.modem_for(name).commands if channel == "at"]


def test_echo_is_turned_off_before_the_first_command_and_answers_come_back(session: Session,
                                                                         sim_name: str) -> None:
    response = session.execute(commands.qgps_read())
    assert response.ok and response.lines == ("+QGPS: 0",)
    assert sim.modem_for(sim_name).state.echo["at"] is False
    assert at_commands(sim_name) == ["ATE0", "AT+CMEE=1", "AT+QGPS?"]


def test_every_boot_turns_echo_off_again(session: Session, sim_name: str) -> None:
    events: list[str] = []
    session.add_lifecycle_listener(events.append)
    session.execute(commands.at())
    modem = sim.modem_for(sim_name)
    modem.reboot()  # the port drops and returns with RDY and echo on
    assert wait_until(lambda: REBOOTED in events and session.connected, 15)
    assert session.execute(commands.at()).ok
    assert modem.state.echo["at"] is False
    assert at_commands(sim_name).count("ATE0") == 2
    assert DISCONNECTED in events and CONNECTED in events


def test_urcs_reach_listeners_even_from_inside_a_response(session: Session, sim_name: str) -> None:
    heard: list[str] = []
    session.add_urc_listener(heard.append)
    sim.modem_for(sim_name).faults.urc_inside("+QGPS?", '+QIND: "csq",20,99')
    response = session.execute(commands.qgps_read())
    assert response.lines == ("+QGPS: 0",)  # the URC is not part of the answer
    assert wait_until(lambda: heard == ['+QIND: "csq",20,99'], 5)


def test_one_command_in_flight_when_threads_share_the_session(session: Session, sim_name: str) -> None:
    session.execute(commands.at())  # the first command also turns echo off
    before = len(at_commands(sim_name))
    answers: list[tuple[str, ...]] = []

    def ask() -> None:
        for _ in range(10):
            answers.append(session.execute(commands.qgps_read()).lines)

    askers = [threading.Thread(target=ask) for _ in range(4)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(30)
    assert answers == [("+QGPS: 0",)] * 40  # each caller got its own answer, none another's
    assert at_commands(sim_name)[before:] == ["AT+QGPS?"] * 40  # whole commands, one after the other


def test_a_lost_answer_times_out_and_the_next_command_works(session: Session, sim_name: str) -> None:
    sim.modem_for(sim_name).faults.drop("AT")
    with pytest.raises(CommandTimeout):
        session.execute(dataclasses.replace(commands.at(), timeout_s=0.3))
    assert session.execute(commands.qgps_read()).lines == ("+QGPS: 0",)  # no wedged lock, no stray answer


def test_a_vanished_port_is_reported_once_and_reopened(session: Session, sim_name: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    modem = sim.modem_for(sim_name)
    with caplog.at_level(logging.WARNING, logger="agent.session"):
        modem.unplug()
        assert wait_until(lambda: not session.connected, 5)
        with pytest.raises(PortUnavailable):
            session.execute(commands.at())
        threading.Event().wait(1.0)  # several reopen attempts at the fast backoff
        warnings = [record for record in caplog.records if "unavailable" in record.getMessage()]
        assert len(warnings) == 1  # reported once, not once per attempt
        modem.replug()
        assert session.wait_connected(5)
    assert session.execute(commands.at()).ok


def test_a_real_pty_pair_carries_the_same_session(tmp_path: Path) -> None:
    link = tmp_path / "ttyAT"
    server = SimPtyServer(SimModem(seed=6), {"at": link}).start()
    try:
        opened = Session(str(link), backoff=FAST)
        opened.start()
        try:
            assert opened.wait_connected(5)
            assert opened.execute(commands.qgps_read()).lines == ("+QGPS: 0",)
            assert opened.execute(commands.cgmm()).lines == ("EC25",)
        finally:
            opened.close()
    finally:
        server.stop()
