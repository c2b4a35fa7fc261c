"""Fixtures for hil tests, built on the rig plugin ``agent.testing`` (loaded through its ``pytest11`` entry point).

The plugin gives ``hil_target``, ``sim_modem``, ``privacy_daemon`` and ``privacyctl``; the names older tests use
stay as thin aliases: ``sim_name`` is the plugin's ``hil_sim_name``, ``running_agent`` its ``privacy_daemon``,
``RunningAgent`` its ``RunningDaemon``, ``sim_config`` its ``daemon_config`` on the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.testing import HilTarget, RunningDaemon, daemon_config, wait_until
from hil_tests.leaks import no_leaks  # every hil test fails if it leaves a thread, child or descriptor behind

RunningAgent = RunningDaemon
__all__ = ["RunningAgent", "no_leaks", "read_until", "sim_config", "wait_until"]


def read_until(port: Any, marker: bytes, timeout_s: float = 5.0) -> bytes:
    """Read from a serial port until ``marker`` arrived or ``timeout_s`` passed; everything read."""
    data = bytearray()
    deadline = time.monotonic() + timeout_s
    while marker not in data and time.monotonic() < deadline:
        data += port.read(max(1, port.in_waiting))
    return bytes(data)


def sim_config(tmp_path: Path, name: str, *, interval_s: float = 1.0, nmea: bool = True,
               guard_port: str | None = None) -> Any:
    """A daemon config on the simulated module called ``name``."""
    return daemon_config(tmp_path, HilTarget(), name, interval_s=interval_s, nmea=nmea, guard_port=guard_port)


@pytest.fixture
def sim_name(hil_sim_name: str) -> str:
    return hil_sim_name


@pytest.fixture
def running_agent(privacy_daemon: RunningDaemon) -> RunningDaemon:
    return privacy_daemon


@pytest.fixture
def agents() -> Iterator[Callable[[Any, str], RunningAgent]]:
    """Start daemons (the real Agent objects) from configs on a simulated module; every one is stopped at the end.
    ``agents(config, sim_name)`` returns once the agent has enforced its first state."""
    from agent.daemon import Agent

    started: list[Any] = []

    def start(config: Any, name: str) -> RunningAgent:
        agent = Agent(config)
        agent.start()
        started.append(agent)
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15), "agent did not enforce its first state"
        return RunningAgent(agent, name, config.control.socket, config.state.dir)

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()
