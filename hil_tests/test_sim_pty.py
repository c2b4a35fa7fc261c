"""The simulator on real ptys: pyserial on the slave path (real termios), unplug/replug, reboot, the CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from agent.errors import UsageError
from agent.sim import ManualClock, SimModem
from agent.sim.pty import SimPtyServer
from hil_tests.conftest import read_until, wait_until


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SimModem, dict[str, Path]]]:
    modem = SimModem(seed=9, ttff_s=0)
    links = {"at": tmp_path / "ttyAT", "at2": tmp_path / "ttyAT2", "nmea": tmp_path / "ttyNMEA"}
    with SimPtyServer(modem, dict(links)):
        yield modem, links
    assert not any(path.is_symlink() for path in links.values())


def test_commands_and_nmea_over_the_pty_with_real_termios(served: tuple[SimModem, dict[str, Path]]) -> None:
    modem, links = served
    with serial.Serial(str(links["at"]), 115200, timeout=0.5) as port:
        port.write(b"ATI\r")
        ati = b"ATI\r\r\nQuectel\r\n\r\nEC25\r\n\r\nRevision: EC25EFAR06A08M4G\r\n\r\nOK\r\n"
        assert read_until(port, b"OK\r\n") == ati
        port.write(b"AT+QGPS=1\r")
        assert read_until(port, b"OK\r\n") == b"AT+QGPS=1\r\r\nOK\r\n"
    with serial.Serial(str(links["nmea"]), 9600, timeout=0.5) as nmea:
        data = read_until(nmea, b"$GPRMC", timeout_s=3)
    assert b"$GPGGA," in data and modem.state.gnss_on


def test_rogue_client_on_at2_starts_the_nmea_port(served: tuple[SimModem, dict[str, Path]]) -> None:
    modem, links = served
    nmea = serial.Serial(str(links["nmea"]), timeout=0.1)
    rogue = serial.Serial(str(links["at2"]), timeout=0.5)
    with nmea, rogue:
        assert nmea.read(100) == b""
        rogue.write(b"AT+QGPS=1\r")
        assert read_until(rogue, b"OK\r\n").endswith(b"OK\r\n")
        assert b"$GPGGA" in read_until(nmea, b"$GPGGA", timeout_s=3)
    assert modem.commands == [("at2", "AT+QGPS=1")]


def test_unplug_closes_the_pty_and_removes_the_link_replug_brings_a_new_one(
    served: tuple[SimModem, dict[str, Path]],
) -> None:
    modem, links = served
    port = serial.Serial(str(links["at"]), timeout=1)
    modem.unplug()
    assert wait_until(lambda: not links["at"].is_symlink())
    with pytest.raises(serial.SerialException):
        for _ in range(20):
            port.read(1)
    port.close()
    modem.replug()
    assert wait_until(lambda: links["at"].is_symlink())
    assert os.path.exists(os.readlink(links["at"]))  # a live pts (the kernel may reuse the number)
    with serial.Serial(str(links["at"]), timeout=0.5) as again:
        again.write(b"AT\r")
        assert read_until(again, b"OK\r\n") == b"AT\r\r\nOK\r\n"


def test_cfun_reboot_drops_the_pty_and_returns_with_boot_urcs(
    served: tuple[SimModem, dict[str, Path]],
) -> None:
    links = served[1]
    with serial.Serial(str(links["at"]), timeout=0.5) as port:
        port.write(b"AT+CFUN=1,1\r")
        assert read_until(port, b"OK\r\n").endswith(b"OK\r\n")
        assert wait_until(lambda: not links["at"].is_symlink())
    assert wait_until(lambda: links["at"].is_symlink())
    with serial.Serial(str(links["at"]), timeout=0.5) as port:
        assert read_until(port, b"PB DONE\r\n").startswith(b"\r\nRDY\r\n")


def test_a_stale_link_is_replaced_and_a_real_file_is_refused(tmp_path: Path) -> None:
    stale = tmp_path / "ttyAT"
    stale.symlink_to("/dev/pts/nonexistent")
    server = SimPtyServer(SimModem(clock=ManualClock()), {"at": stale}).start()
    try:
        assert os.readlink(stale).startswith("/dev/pts/") and stale.exists()
    finally:
        server.stop()
    assert not server.alive and not stale.is_symlink()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(UsageError, match="not a symlink"):
        SimPtyServer(SimModem(clock=ManualClock()), {"at": regular}).start()
    assert regular.read_text() == "keep me"
    with pytest.raises(UsageError, match="channel"):
        SimPtyServer(SimModem(clock=ManualClock()), {"usb0": tmp_path / "x"})


def _command() -> list[str]:
    script = shutil.which("privacy-agent")
    return [script] if script else [sys.executable, "-m", "agent.main"]


def test_privacy_agent_sim_serves_ptys_until_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "modem-at"
    command = [*_command(), "sim", "--pty-link", str(link), "--seed", "2", "--ttff", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            paths = dict(process.stdout.readline().strip().split(": ", 1) for _ in range(3))
            assert paths["at"] == str(link) and set(paths) == {"at", "at2", "nmea"}
            with serial.Serial(paths["at"], 115200, timeout=0.5) as port:
                port.write(b"ATI\r")
                assert read_until(port, b"OK\r\n").endswith(b"Revision: EC25EFAR06A08M4G\r\n\r\nOK\r\n")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert not any(os.path.lexists(path) for path in paths.values())


def test_privacy_agent_sim_refuses_an_unknown_model() -> None:
    command = [*_command(), "sim", "--model", "sim900"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "unknown simulated modem model" in done.stderr
