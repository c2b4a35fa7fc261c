"""The module a scenario runs against: the simulator served on ptys, or a real module on its ports.

Both give the daemon's port paths, the hardware's real GNSS state, the module's identifiers (for the leak
figure) and carry out modem events. A real module can only take what another program on its second AT port
can do (``rogue``); scenarios with other modem events need the simulator.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import serial

from agent.rig import modem_events
from agent.rig.player import FollowUp
from agent.rig.scenario import AGENT_ACTIONS, DEFAULT_MODEL, Event, Scenario
from agent.sim import SimModem
from agent.sim.pty import SimPtyServer

REPLY_TIMEOUT_S = 5.0
_LONG_NUMBER = re.compile(r"\b\d{10,20}\b")


class Module(Protocol):
    at_port: str
    nmea_port: str | None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def gnss_on(self) -> bool: ...
    def identifiers(self) -> tuple[str, ...]: ...
    def apply(self, event: Event) -> list[FollowUp]: ...


class SimulatedModule:
    """A fresh simulated module per scenario, from its ``[modem]`` table, on ptys under ``workdir``."""

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        settings = scenario.modem
        self.modem = SimModem(model=settings["model"], seed=settings["seed"], ttff_s=float(settings["ttff_s"]))
        self._links = {"at": workdir / "ttyAT", "nmea": workdir / "ttyNMEA"}
        self.at_port: str = str(self._links["at"])
        self.nmea_port: str | None = str(self._links["nmea"])
        self._server: SimPtyServer | None = None

    def start(self) -> None:
        self._server = SimPtyServer(self.modem, dict(self._links)).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def gnss_on(self) -> bool:
        return bool(self.modem.state.gnss_on)

    def identifiers(self) -> tuple[str, ...]:
        identity = self.modem.identity
        return identity.imei, identity.imsi, identity.iccid, identity.msisdn

    def apply(self, event: Event) -> list[FollowUp]:
        return modem_events.apply(self.modem, event)


class RealModule:
    """A real module: the daemon gets ``port`` and ``nmea_port``; the rig observes and plays rogue commands on
    ``rogue_port`` (the module's second AT interface), one exchange at a time."""

    SUPPORTED = frozenset({"rogue"})

    def __init__(self, port: str, nmea_port: str | None, rogue_port: str) -> None:
        self.at_port: str = port
        self.nmea_port: str | None = nmea_port
        self._rogue_url = rogue_port
        self._rogue: Any = None
        self._lock = threading.Lock()
        self._identifiers: tuple[str, ...] = ()

    def start(self) -> None:
        self._rogue = serial.serial_for_url(self._rogue_url, timeout=0.1)
        self.exchange("ATE0")
        found: list[str] = []
        for command in ("AT+CGSN", "AT+CIMI", "AT+QCCID", "AT+CNUM"):
            found += _LONG_NUMBER.findall(self.exchange(command))
        self._identifiers = tuple(found)

    def stop(self) -> None:
        if self._rogue is not None:
            self._rogue.close()

    def gnss_on(self) -> bool:
        return "+QGPS: 1" in self.exchange("AT+QGPS?")

    def identifiers(self) -> tuple[str, ...]:
        return self._identifiers

    def apply(self, event: Event) -> list[FollowUp]:
        if event.action not in self.SUPPORTED:
            raise ValueError(f"{event.action} needs the simulator")
        self.exchange(str(event.args["line"]))
        return []

    def exchange(self, line: str) -> str:
        """Send one command line and read until its final result (or the timeout); the text read."""
        with self._lock:
            self._rogue.reset_input_buffer()
            self._rogue.write(line.encode("ascii") + b"\r")
            data = bytearray()
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while time.monotonic() < deadline and not _final(data):
                data += self._rogue.read(256)
            return data.decode("ascii", "replace")


def runs_on_hardware(scenario: Scenario) -> bool:
    """Whether every event of ``scenario`` is possible on a real module (rogue commands, kills, switching).

    A scenario written for another model's commands (``[modem] model``, e.g. an ASR module's Wi-Fi scan) plays
    only on the simulator: the module on the bench may not have them."""
    model_free = scenario.modem.get("model", DEFAULT_MODEL) == DEFAULT_MODEL
    return model_free and all(event.action in RealModule.SUPPORTED | AGENT_ACTIONS for event in scenario.events)


def _final(data: bytearray) -> bool:
    return any(marker in data for marker in (b"\r\nOK\r\n", b"ERROR", b"OK\r\n"))
