"""Fixtures for hil tests: a real agent (threads, sim:// ports, a real control socket) against the simulator."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_names = itertools.count()


def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passed; returns its last truth value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def read_until(port: Any, marker: bytes, timeout_s: float = 5.0) -> bytes:
    """Read from a serial port until ``marker`` arrived or ``timeout_s`` passed; everything read."""
    data = bytearray()
    deadline = time.monotonic() + timeout_s
    while marker not in data and time.monotonic() < deadline:
        data += port.read(max(1, port.in_waiting))
    return bytes(data)


@pytest.fixture
def sim_name() -> Iterator[str]:
    from agent import sim

    sim.register()
    name = f"hil{next(_names)}"
    yield name
    sim.forget(name)


@dataclass
class RunningAgent:
    agent: Any
    name: str
    socket: Path
    state_dir: Path

    @property
    def modem(self) -> Any:
        from agent import sim

        return sim.modem_for(self.name)

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        from agent.control import request

        return request(self.socket, op, args or None, timeout_s=30.0)

    def rogue(self, line: str) -> None:
        """Another program on the module's second AT interface sends ``line``."""
        self.modem.write("at2", line.encode() + b"\r")


def sim_config(tmp_path: Path, name: str, *, interval_s: float = 1.0, nmea: bool = True,
               guard_port: str | None = None) -> Any:
    from agent.config import parse_config

    base = f"sim://ec25?name={name}&seed=3&ttff=1"
    modem: dict[str, Any] = {"port": f"{base}&port=at", "reconcile_interval_s": interval_s, "verify_timeout_s": 10}
    if nmea:
        modem["nmea_port"] = f"{base}&port=nmea"
    if guard_port:
        modem["guard_port"] = guard_port
    return parse_config({
        "modem": modem,
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
    })


@pytest.fixture
def running_agent(tmp_path: Path, sim_name: str) -> Iterator[RunningAgent]:
    from agent.daemon import Agent

    config = sim_config(tmp_path, sim_name)
    agent = Agent(config)
    agent.start()
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15), "agent did not enforce its first state"
        yield RunningAgent(agent, sim_name, config.control.socket, config.state.dir)
    finally:
        agent.stop()
