"""The real daemon process, the real privacyctl and the simulator in another process, over ptys.

SIGKILL right after ``location off`` is acknowledged: on restart location is still off, and once the modem
reads off it never comes back on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hil_tests.conftest import wait_until


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[dict[str, Path]]:
    links = {"at": tmp_path / "ttyAT", "nmea": tmp_path / "ttyNMEA", "at2": tmp_path / "ttyAT2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "sim", "--pty-link", str(links["at"]), "--nmea-pty-link",
         str(links["nmea"]), "--at2-pty-link", str(links["at2"]), "--seed", "5", "--ttff", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: all(path.exists() for path in links.values()), 15), "simulator did not start"
        yield links
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def start_daemon(tmp_path: Path, links: dict[str, Path]) -> subprocess.Popen[str]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[modem]\nport = "{links["at"]}"\nnmea_port = "{links["nmea"]}"\nreconcile_interval_s = 1\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n[control]\nsocket = "{tmp_path / "control.sock"}"\n')
    with open(tmp_path / "daemon.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=log, text=True)


def privacyctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "--socket", str(tmp_path / "control.sock"), "--json",
                           *args], capture_output=True, text=True, timeout=60, check=False)


def location_status(tmp_path: Path) -> dict[str, object] | None:
    done = privacyctl(tmp_path, "location", "status")
    return json.loads(done.stdout) if done.returncode == 0 else None


class GnssWatcher:
    """Polls AT+QGPS? on the module's second AT interface, as an independent observer."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), timeout=0.5)
        self.readings: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GnssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.port.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.port.write(b"AT+QGPS?\r")
                deadline = time.monotonic() + 1
                while time.monotonic() < deadline:
                    line = self.port.readline().strip()
                    if line.startswith(b"+QGPS:"):
                        self.readings.append((time.monotonic(), int(line.split(b":")[1])))
                        break
            except (serial.SerialException, OSError, ValueError):
                pass  # the modem may be rebooting; keep watching
            self._stop.wait(0.05)


def test_sigkill_right_after_off_stays_off(tmp_path: Path, simulator: dict[str, Path]) -> None:
    daemon = start_daemon(tmp_path, simulator)
    try:
        assert wait_until(lambda: (location_status(tmp_path) or {}).get("enforced") is True, 20)
        on = privacyctl(tmp_path, "location", "on")
        assert on.returncode == 0, on.stderr
        assert json.loads(on.stdout)["verified"] is True
        with GnssWatcher(simulator["at2"]) as watcher:
            assert wait_until(lambda: watcher.readings and watcher.readings[-1][1] == 1, 10)
            off = privacyctl(tmp_path, "location", "off", "--wait", "0")
            assert off.returncode == 1, off.stderr  # durable and blocked, not yet confirmed by the modem
            assert json.loads(off.stdout)["durable"] is True
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
            killed_at = time.monotonic()
            daemon = start_daemon(tmp_path, simulator)
            assert wait_until(lambda: (location_status(tmp_path) or {}).get("enforced") is True, 20)
            status = location_status(tmp_path)
            assert status is not None and status["desired"] == "off"
            time.sleep(2.5)  # two more reconcile intervals of watching
            after = [value for stamp, value in watcher.readings if stamp > killed_at]
        assert 0 in after
        first_off = after.index(0)
        assert 1 not in after[first_off:], "GNSS came back on after it was off"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0


def test_sigterm_exits_cleanly_and_bad_config_is_named(tmp_path: Path, simulator: dict[str, Path]) -> None:
    daemon = start_daemon(tmp_path, simulator)
    assert wait_until(lambda: (location_status(tmp_path) or {}).get("enforced") is True, 20)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert not (tmp_path / "control.sock").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[modem]\nport = "/dev/null"\nreconcile_intervall_s = 3\n')
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(bad)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "[modem] reconcile_intervall_s" in done.stderr
    unreachable = privacyctl(tmp_path, "location", "status")
    assert unreachable.returncode == 3


@pytest.mark.parametrize(("key", "url"), [("port", "foo://bar"), ("nmea_port", "sim://ec25?seed=abc")])
def test_a_port_url_that_can_never_work_stops_the_start(tmp_path: Path, key: str, url: str) -> None:
    config = tmp_path / "config.toml"
    port = url if key == "port" else "sim://ec25?name=start-check"
    nmea = f'nmea_port = "{url}"\n' if key == "nmea_port" else ""
    config.write_text(f'[modem]\nport = "{port}"\n{nmea}[state]\ndir = "{tmp_path / "state"}"\n'
                      f'[control]\nsocket = "{tmp_path / "c.sock"}"\n')
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert f"[modem] {key}: cannot use port URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "c.sock").exists()
