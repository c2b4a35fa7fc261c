"""``privacy-agent rig run`` and ``privacy-agent sim --scenario`` as a rig's CI calls them (real processes, ptys)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import serial

from agent.testing import wait_until

ROOT = Path(__file__).resolve().parent.parent
FAILING = """
name = "unmeetable"
description = "A bound no agent can meet: the report must fail and show the traffic."
[[event]]
at = 0.5
do = "rogue"
line = "AT+QGPS=1"
[[expect]]
check = "gnss_off_within"
within_s = 0.01
"""


def privacy_agent(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout_s, check=False)


def test_a_shipped_scenario_passes_and_writes_junit(tmp_path: Path) -> None:
    junit = tmp_path / "rig.xml"
    done = privacy_agent("rig", "run", str(ROOT / "scenarios" / "f12-reboot-autogps.toml"), "--junit-xml", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS f12-reboot-autogps" in done.stdout and "[ok] incident" in done.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "0"


def test_a_failed_scenario_exits_1_with_a_hex_and_text_transcript(tmp_path: Path) -> None:
    scenario = tmp_path / "unmeetable.toml"
    scenario.write_text(FAILING)
    junit = tmp_path / "rig.xml"
    done = privacy_agent("rig", "run", str(scenario), "--junit-xml", str(junit))
    assert done.returncode == 1
    assert "FAIL unmeetable" in done.stdout and "[FAILED] gnss_off_within" in done.stdout
    # pyserial spy:// hexdump rows: offset, hex bytes, then the text column ("AT+QGPS?" sent by the agent)
    assert any(" TX " in line and "41 54 2B 51 47 50 53" in line and "AT+QGPS" in line
               for line in done.stdout.splitlines())
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "gnss_off_within" in failure.get("message", "")


def test_a_bad_scenario_file_is_a_usage_error(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('name = "bad"\ndescription = "x"\n[[event]]\nat = 1\ndo = "explode"\n')
    done = privacy_agent("rig", "run", str(scenario))
    assert done.returncode == 2 and "'do' must be one of" in done.stderr


def test_sim_scenario_plays_modem_events_on_the_ptys(tmp_path: Path) -> None:
    scenario = tmp_path / "rogue.toml"
    scenario.write_text('name = "rogue-on"\ndescription = "a rogue turns GNSS on"\n'
                        '[[event]]\nat = 0.2\ndo = "rogue"\nline = "AT+QGPS=1"\n'
                        '[[expect]]\ncheck = "daemon_up"\n')
    links = {"at": tmp_path / "ttyAT", "nmea": tmp_path / "ttyNMEA"}
    process = subprocess.Popen([sys.executable, "-m", "agent", "sim", "--pty-link", str(links["at"]),
                                "--nmea-pty-link", str(links["nmea"]), "--ttff", "1", "--scenario", str(scenario)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: links["nmea"].exists(), 15), "simulator did not start"
        with serial.Serial(str(links["nmea"]), timeout=0.2) as nmea:
            data = bytearray()
            deadline = time.monotonic() + 10
            while b"$GPGGA" not in data and time.monotonic() < deadline:
                data += nmea.read(4096)
        assert b"$GPGGA" in data, "the scenario's rogue AT+QGPS=1 did not start the NMEA stream"
        time.sleep(1.5)  # the rogue event's follow-up (its reply drained) ends the timeline: "scenario done"
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    assert "event: rogue" in out and "scenario done" in out


def test_sim_refuses_a_bad_scenario_before_serving(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text("name = [")
    done = privacy_agent("sim", "--pty-link", str(tmp_path / "ttyAT"), "--scenario", str(scenario), timeout_s=30)
    assert done.returncode == 2 and "not valid TOML" in done.stderr
    assert not os.path.lexists(tmp_path / "ttyAT")
