"""The soak on a "real" module: ``--port``, ``--nmea-port``, ``--rogue-port`` pointed at the simulator's ptys, as
a rig points them at ttyUSB2, ttyUSB1 and ttyUSB3. Only what a real module allows is played: rogue commands on
the second AT port, SIGKILLs and switch changes; GNSS is observed with ``AT+QGPS?`` on that port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.rig.loader import load_all, shipped_scenarios_dir
from agent.rig.module import RealModule, runs_on_hardware
from hil_tests.test_daemon_process import simulator

__all__ = ["simulator"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def module_ports(simulator: dict[str, Path]) -> dict[str, Path]:
    """The simulator's three ptys stand in for a real module's AT, NMEA and second AT ports."""
    return simulator


def test_the_real_module_observer_reads_gnss_and_identifiers(module_ports: dict[str, Path]) -> None:
    module = RealModule(str(module_ports["at"]), str(module_ports["nmea"]), str(module_ports["at2"]))
    module.start()
    try:
        assert not module.gnss_on()
        assert any(len(value) == 15 for value in module.identifiers())  # the IMEI, read as a rig would
        assert "OK" in module.exchange("AT+QGPS=1")
        assert module.gnss_on()
    finally:
        module.exchange("AT+QGPSEND")
        module.stop()


def test_only_scenarios_a_real_module_can_play_are_used_on_hardware() -> None:
    usable = {scenario.name for scenario in load_all(shipped_scenarios_dir()) if runs_on_hardware(scenario)}
    assert "rogue-xtra-registration" in usable and "kill-after-off" in usable
    assert "f12-reboot-autogps" not in usable  # a reboot needs the simulator
    assert "rogue-agps-settings" in usable
    assert "rogue-wifi-scan" not in usable  # an ASR module's scan: the module on the bench may not have it


def test_a_short_soak_on_the_module_ports_prints_a_clean_table(module_ports: dict[str, Path]) -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "rig", "soak", "--minutes", "0.05", "--seed", "3",
                           "--port", str(module_ports["at"]), "--nmea-port", str(module_ports["nmea"]),
                           "--rogue-port", str(module_ports["at2"])], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "scenarios run" in done.stdout and "rogue" in done.stdout


def test_a_soak_on_hardware_needs_the_rogue_port() -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "rig", "soak", "--minutes", "1", "--port", "/dev/ttyUSB2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--rogue-port" in done.stderr
