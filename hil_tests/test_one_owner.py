"""One owner per modem: the agent opens its ports exclusively, and a second daemon on the same port is refused at
start with exit 1 and a message naming the port, before it writes anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import PortBusy
from agent.transport import open_port
from hil_tests.conftest import wait_until
from hil_tests.test_daemon_process import location_status, simulator, start_daemon

__all__ = ["simulator"]  # the fixture, used by name


def write_config(directory: Path, links: dict[str, Path]) -> Path:
    directory.mkdir()
    config = directory / "config.toml"
    config.write_text(f'[modem]\nport = "{links["at"]}"\n[state]\ndir = "{directory / "state"}"\n'
                      f'[control]\nsocket = "{directory / "control.sock"}"\n')
    return config


def test_a_port_is_opened_exclusively(simulator: dict[str, Path]) -> None:
    first = open_port(str(simulator["at"]))
    try:
        with pytest.raises(PortBusy):
            open_port(str(simulator["at"]))
    finally:
        first.close()
    open_port(str(simulator["at"])).close()  # free again once the owner let go


def test_a_second_daemon_on_the_same_port_is_refused(tmp_path: Path, simulator: dict[str, Path]) -> None:
    daemon = start_daemon(tmp_path, simulator)
    try:
        assert wait_until(lambda: (location_status(tmp_path) or {}).get("enforced") is True, 20)
        config = write_config(tmp_path / "second", simulator)
        second = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1
        assert str(simulator["at"]) in second.stderr and "already owned by another program" in second.stderr
        assert not (tmp_path / "second" / "state").exists(), "the refused daemon wrote its state dir"
        assert not (tmp_path / "second" / "control.sock").exists()
        status = location_status(tmp_path)
        assert status is not None and status["enforced"] is True  # the first owner was not disturbed
    finally:
        daemon.terminate()
        daemon.wait(15)


def test_run_refuses_a_symlinked_state_dir_on_the_command_line(tmp_path: Path, simulator: dict[str, Path]) -> None:
    config = write_config(tmp_path / "conf", simulator)
    real = tmp_path / "real-state"
    real.mkdir()
    link = tmp_path / "state-link"
    link.symlink_to(real)
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(config), "--state-dir", str(link)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "is a symlink" in done.stderr
    assert list(real.iterdir()) == []
