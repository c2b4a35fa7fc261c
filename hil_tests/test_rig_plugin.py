"""The rig plugin's fixtures against the real daemon: what an integrator's rig test looks like.

``@pytest.mark.hil`` tests also run on a real module (``HIL_PORT``, ``HIL_NMEA_PORT``, ``HIL_ROGUE_PORT``);
those that need the simulator's inspection API are skipped there with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.testing import CtlResult, HilTarget, RunningDaemon, wait_until


@pytest.mark.hil
def test_location_off_is_confirmed_and_a_rogue_restart_is_repaired(
        privacy_daemon: RunningDaemon, privacyctl: Callable[..., CtlResult]) -> None:
    assert privacyctl("location", "on").exit_code == 0
    off = privacyctl("location", "off")
    assert off.exit_code == 0 and off.json["verified"] is True
    privacy_daemon.rogue("AT+QGPS=1")
    assert wait_until(lambda: not privacy_daemon.gnss_on(), 10), "GNSS stayed on while location is off"
    assert wait_until(lambda: any(item["kind"] == "drift"
                                  for item in privacyctl("incidents").json["incidents"]), 10)


@pytest.mark.hil
@pytest.mark.simulator_only("it injects busy errors through the simulator's fault API")
def test_busy_errors_do_not_stop_the_switch(privacy_daemon: RunningDaemon, sim_modem: Any,
                                            privacyctl: Callable[..., CtlResult]) -> None:
    assert privacyctl("location", "on").exit_code == 0
    sim_modem.faults.busy("AT+QGPSEND", 503, times=2)
    assert privacyctl("location", "off").exit_code == 0
    assert not sim_modem.state.gnss_on
    assert len([text for _, text in sim_modem.commands if "QGPSEND" in text]) >= 3


def test_sim_modem_is_the_module_the_daemon_talks_to(privacy_daemon: RunningDaemon, sim_modem: Any) -> None:
    assert sim_modem is privacy_daemon.modem
    assert any("QGPS" in text for _, text in sim_modem.commands)


def test_privacyctl_reports_usage_errors_and_json(privacyctl: Callable[..., CtlResult]) -> None:
    status = privacyctl("location", "status")
    assert status.exit_code == 0 and status.json["desired"] == "off"
    assert privacyctl("location", "sideways").exit_code == 2


def test_the_target_comes_from_the_environment() -> None:
    target = HilTarget.from_environment({"HIL_PORT": "/dev/ttyUSB2", "HIL_NMEA_PORT": "/dev/ttyUSB1"})
    assert target.hardware and target.urls("ignored") == ("/dev/ttyUSB2", "/dev/ttyUSB1")
    assert not HilTarget.from_environment({}).hardware
    at, nmea = HilTarget().urls("m1")
    assert at.startswith("sim://") and "name=m1" in at and nmea is not None and "port=nmea" in nmea


INTEGRATOR_TEST = """
import pytest

@pytest.mark.simulator_only("it reads the simulated module's state")
def test_needs_sim():
    pass

def test_sim_modem(sim_modem):
    assert not sim_modem.state.gnss_on
"""


def _pytest_in(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A separate pytest run, as an integrator's rig would start it: the plugin comes from the entry point."""
    (directory / "test_integrator.py").write_text(INTEGRATOR_TEST)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("HIL_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(directory / "test_integrator.py")], cwd=directory, capture_output=True, text=True,
                          timeout=120, check=False, env={**environ, **env})


def test_simulator_only_checks_are_skipped_on_hardware_with_the_reason(tmp_path: Path) -> None:
    on_sim = _pytest_in(tmp_path)
    assert on_sim.returncode == 0 and "2 passed" in on_sim.stdout, on_sim.stdout + on_sim.stderr
    on_hardware = _pytest_in(tmp_path, HIL_PORT="/dev/ttyUSB-none")
    assert "2 skipped" in on_hardware.stdout, on_hardware.stdout + on_hardware.stderr
    assert "simulator only: it reads the simulated module's state" in on_hardware.stdout
