"""The pytest plugin for HIL rigs (entry point ``pytest11``: installed with the package, nothing to import).

Fixtures:

- ``hil_target``: where the tests run: the simulator, or a real module when ``HIL_PORT`` is set (with
  ``HIL_NMEA_PORT`` and ``HIL_ROGUE_PORT``, the module's NMEA port and a second AT port for a "rogue" program).
- ``sim_modem``: the simulated module (``agent.sim.SimModem``) with its inspection and fault API
  (``sim_modem.state.gnss_on``, ``sim_modem.faults.busy(...)``, ``reboot()``, ``unplug()``); on hardware a test
  using it is skipped, with the reason.
- ``privacy_daemon``: the agent (real threads, ports and control socket) on a temporary state dir, started
  with location off and enforced; ``.request(op, **args)`` speaks the control protocol, ``.rogue(line)``
  sends a line from the second AT port, ``.gnss_on()`` asks the hardware (simulator state, or ``AT+QGPS?`` on
  the rogue port).
- ``privacyctl``: runs the real ``privacyctl`` against that daemon: ``privacyctl("location", "off")`` returns
  the exit code, the parsed ``--json`` output and the text.

Markers: ``@pytest.mark.hil`` marks a test that also runs on a real module; ``@pytest.mark.simulator_only(
"reason")`` skips a test on hardware with that reason.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_names = itertools.count()
SIM_SEED = 3
SIM_TTFF_S = 1


def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passed; returns its last truth value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@dataclass(frozen=True)
class HilTarget:
    """The module under test: ``port`` None means the built-in simulator."""

    port: str | None = None
    nmea_port: str | None = None
    rogue_port: str | None = None

    @property
    def hardware(self) -> bool:
        return self.port is not None

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> HilTarget:
        env = os.environ if environ is None else environ
        return cls(env.get("HIL_PORT") or None, env.get("HIL_NMEA_PORT") or None, env.get("HIL_ROGUE_PORT") or None)

    def urls(self, sim_name: str) -> tuple[str, str | None]:
        """The AT and NMEA port URLs the daemon opens."""
        if self.hardware:
            assert self.port is not None
            return self.port, self.nmea_port
        base = f"sim://ec25?name={sim_name}&seed={SIM_SEED}&ttff={SIM_TTFF_S}"
        return f"{base}&port=at", f"{base}&port=nmea"


def skip_on_hardware(target: HilTarget, reason: str) -> None:
    if target.hardware:
        pytest.skip(f"simulator only: {reason}")


@dataclass
class RunningDaemon:
    """A started agent; the first four fields keep the positional form older tests build it with."""

    agent: Any
    name: str
    socket: Path
    state_dir: Path
    target: HilTarget = field(default_factory=HilTarget)

    @property
    def modem(self) -> Any:
        """The simulated module (inspection and faults); skips the test on hardware."""
        skip_on_hardware(self.target, "the test inspects the simulated module's real state")
        from agent import sim

        return sim.modem_for(self.name)

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        from agent.control import request

        return request(self.socket, op, args or None, timeout_s=30.0)

    def rogue(self, line: str) -> None:
        """Another program on the module's second AT interface sends ``line`` (reply read and dropped)."""
        if not self.target.hardware:
            self.modem.write("at2", line.encode("ascii") + b"\r")
            return
        _rogue_exchange(self.target, line)

    def gnss_on(self) -> bool:
        """What the hardware is really doing: the simulator's state, or ``AT+QGPS?`` on the rogue port."""
        if not self.target.hardware:
            return bool(self.modem.state.gnss_on)
        return "+QGPS: 1" in _rogue_exchange(self.target, "AT+QGPS?")


def _rogue_exchange(target: HilTarget, line: str) -> str:
    if target.rogue_port is None:
        pytest.skip("HIL_ROGUE_PORT is not set: this test needs the module's second AT port")
    import serial

    with serial.serial_for_url(target.rogue_port, timeout=0.2) as port:
        port.write(line.encode("ascii") + b"\r")
        data = bytearray()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and b"OK\r\n" not in data and b"ERROR" not in data:
            data += port.read(256)
        return data.decode("ascii", "replace")


@dataclass(frozen=True)
class CtlResult:
    exit_code: int
    json: Any
    text: str


def daemon_config(tmp_path: Path, target: HilTarget, sim_name: str, *, interval_s: float = 1.0,
                  nmea: bool = True, guard_port: str | None = None) -> Any:
    """The config the ``privacy_daemon`` fixture starts with (reconcile every second)."""
    from agent.config import parse_config

    at_url, nmea_url = target.urls(sim_name)
    modem: dict[str, Any] = {"port": at_url, "reconcile_interval_s": interval_s, "verify_timeout_s": 10}
    if nmea and nmea_url:
        modem["nmea_port"] = nmea_url
    if guard_port:
        modem["guard_port"] = guard_port
    return parse_config({
        "modem": modem,
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
    })


# ------------------------------------------------------------------------------------------------ hooks

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: also runs against a real module when HIL_PORT is set")
    config.addinivalue_line("markers", "simulator_only(reason): needs the simulator; skipped on hardware")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("simulator_only")
    if marker is not None:
        reason = marker.args[0] if marker.args else "it uses the simulator's inspection or fault API"
        skip_on_hardware(HilTarget.from_environment(), str(reason))


# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def hil_target() -> HilTarget:
    return HilTarget.from_environment()


@pytest.fixture
def hil_sim_name(hil_target: HilTarget) -> Iterator[str]:
    """A fresh simulated module's name (``sim://...&name=<it>``); forgotten after the test."""
    from agent import sim

    sim.register()
    name = f"hil{os.getpid()}-{next(_names)}"
    yield name
    sim.forget(name)


@pytest.fixture
def sim_modem(hil_target: HilTarget, hil_sim_name: str) -> Any:
    """The simulated module that ``privacy_daemon`` talks to; skipped on hardware."""
    skip_on_hardware(hil_target, "the test uses the simulated module's inspection or fault API")
    from agent import sim

    return sim.shared_modem(hil_sim_name, seed=SIM_SEED, ttff_s=SIM_TTFF_S)


@pytest.fixture
def privacy_daemon(tmp_path: Path, hil_target: HilTarget, hil_sim_name: str) -> Iterator[RunningDaemon]:
    """The agent on a temporary state dir, its first (off) state enforced on the module."""
    from agent.daemon import Agent

    config = daemon_config(tmp_path, hil_target, hil_sim_name)
    agent = Agent(config)
    agent.start()
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15), "agent did not enforce its first state"
        yield RunningDaemon(agent, hil_sim_name, config.control.socket, config.state.dir, hil_target)
    finally:
        agent.stop()


@pytest.fixture
def privacyctl(privacy_daemon: RunningDaemon) -> Callable[..., CtlResult]:
    """``privacyctl(*args)``: the real command-line client, in ``--json`` mode, against the daemon's socket."""
    from agent.cli import main

    def run(*args: str) -> CtlResult:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--socket", str(privacy_daemon.socket), "--json", *args], stdout=out, stderr=err)
        text = out.getvalue()
        parsed: Any = None
        with contextlib.suppress(ValueError):
            parsed = json.loads(text) if text.strip() else None
        return CtlResult(code, parsed, text + err.getvalue())

    return run
