"""The simulator's pty links: it never replaces or deletes a path not its own; bad paths are usage errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.sim import ManualClock, SimModem
from agent.sim.pty import SimPtyServer
from hil_tests.conftest import wait_until


def _command() -> list[str]:
    script = shutil.which("privacy-agent")
    return [script] if script else [sys.executable, "-m", "agent.main"]


def _sim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a sim that is expected to refuse its arguments and exit on its own."""
    return subprocess.run([*_command(), "sim", *args], capture_output=True, text=True, timeout=30, check=False, cwd=cwd)


@pytest.fixture
def live_pty() -> Iterator[str]:
    """A /dev/pts path that exists and is in use (by this test) while the test runs."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def _server(links: dict[str, str | Path]) -> SimPtyServer:
    return SimPtyServer(SimModem(clock=ManualClock()), links)


def test_a_users_symlink_is_refused_by_the_cli_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "somefile").write_text("keep me")
    important = tmp_path / "important"
    important.symlink_to("somefile")
    done = _sim("--pty-link", str(important))
    assert done.returncode == 2, done.stderr
    assert "refusing to replace a symlink that does not point into /dev/pts/" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert os.readlink(important) == "somefile" and important.read_text() == "keep me"


@pytest.mark.parametrize(
    "target",
    ["/etc/hostname", "/dev/pts/../../etc/hostname", "pts/7", "/dev/ptsx/7", "/dev/pts/"],
    ids=["elsewhere", "escapes-pts", "relative", "lookalike-dir", "pts-dir"],
)
def test_a_symlink_not_pointing_at_a_pty_name_is_refused(tmp_path: Path, target: str) -> None:
    link = tmp_path / "ttyAT"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="does not point into /dev/pts/"):
        _server({"at": link}).start()
    assert os.readlink(link) == target


def test_a_link_to_a_live_pty_is_refused(tmp_path: Path, live_pty: str) -> None:
    link = tmp_path / "ttyAT"
    link.symlink_to(live_pty)
    with pytest.raises(UsageError, match="pty that still exists"):
        _server({"at": link}).start()
    assert os.readlink(link) == live_pty
    done = _sim("--pty-link", str(link))
    assert done.returncode == 2 and "pty that still exists" in done.stderr
    assert os.readlink(link) == live_pty


def test_nothing_is_changed_when_a_later_link_is_refused(tmp_path: Path) -> None:
    at, nmea = tmp_path / "ttyAT", tmp_path / "ttyNMEA"
    nmea.mkdir()
    with pytest.raises(UsageError, match="not a symlink"):
        _server({"at": at, "nmea": nmea}).start()
    assert not os.path.lexists(at) and nmea.is_dir()
    done = _sim("--pty-link", str(at), "--nmea-pty-link", str(nmea))
    assert done.returncode == 2 and "not a symlink" in done.stderr
    assert not os.path.lexists(at) and nmea.is_dir()


def test_on_stop_a_link_the_user_replaced_is_left_alone(tmp_path: Path) -> None:
    link = tmp_path / "ttyAT"
    server = _server({"at": link}).start()
    try:
        assert os.readlink(link).startswith("/dev/pts/")
        link.unlink()
        link.symlink_to("mine")
    finally:
        server.stop()
    assert os.readlink(link) == "mine"


def test_a_path_taken_while_the_port_was_away_is_not_clobbered(tmp_path: Path) -> None:
    modem = SimModem(seed=3, ttff_s=0)
    link = tmp_path / "ttyAT"
    with SimPtyServer(modem, {"at": link}) as server:
        modem.unplug()
        assert wait_until(lambda: not link.is_symlink())
        link.write_text("keep me")
        modem.replug()
        time.sleep(0.5)  # many pump rounds: each must leave the file alone and the pump must survive
        assert link.read_text() == "keep me" and server.alive and server.slave_name("at") is None
        link.unlink()
        assert wait_until(lambda: link.is_symlink())
        assert os.readlink(link) == server.slave_name("at")
    assert not os.path.lexists(link)


def test_a_stale_link_whose_number_the_new_pty_reuses_is_replaced(tmp_path: Path) -> None:
    # The kernel hands out the lowest free pts number, so the sim's pty very likely reuses the stale link's.
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    os.close(master)
    link = tmp_path / "ttyAT"
    link.symlink_to(name)
    server = _server({"at": link}).start()
    try:
        assert os.readlink(link) == server.slave_name("at")
    finally:
        server.stop()
    assert not os.path.lexists(link)
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


@pytest.mark.parametrize("second", ["{dir}/x", "{dir}/./x", "{dir}/sub/../x", "x", "{alias}/x"])
def test_the_same_path_for_two_links_is_a_usage_error(tmp_path: Path, second: str) -> None:
    (tmp_path / "sub").mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path)
    other = second.format(dir=tmp_path, alias=alias)
    done = _sim("--pty-link", str(tmp_path / "x"), "--nmea-pty-link", other, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the same path is given for two pty links" in done.stderr and done.stdout == ""
    assert not os.path.lexists(tmp_path / "x")


def test_a_missing_directory_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    done = _sim("--pty-link", str(missing / "x"))
    assert done.returncode == 2
    assert "the directory for the pty link does not exist" in done.stderr and repr(str(missing)) in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux procfs")
def test_an_uncreatable_link_is_a_clear_usage_error_and_earlier_links_are_removed(tmp_path: Path) -> None:
    at = tmp_path / "ttyAT"
    done = _sim("--pty-link", str(at), "--nmea-pty-link", "/proc/x")
    assert done.returncode == 2
    assert done.stderr.startswith("privacy-agent sim: cannot create the pty link at /proc/x: ")
    assert "Errno" not in done.stderr and ".tmp" not in done.stderr and "Traceback" not in done.stderr
    assert not os.path.lexists(at)


def test_the_cli_replaces_a_stale_link_and_removes_it_on_exit(tmp_path: Path) -> None:
    link = tmp_path / "ttyAT"
    link.symlink_to("/dev/pts/nonexistent")
    with subprocess.Popen([*_command(), "sim", "--pty-link", str(link)], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == f"at: {link}\n"
            target = os.readlink(link)
            assert target != "/dev/pts/nonexistent" and os.path.exists(target)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert not os.path.lexists(link)
