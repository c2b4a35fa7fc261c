"""The real guard logic (with fake QuecPython modules) served on a pty, driven by GuardClient over the slave
path: the same bytes a USB CDC port on a module would carry."""

from __future__ import annotations

import fcntl
import json
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.guard import GuardClient

SHIMS = Path(__file__).resolve().parents[1] / "firmware_shims"
if str(SHIMS) not in sys.path:
    sys.path.append(str(SHIMS))  # appended: never shadows installed modules

import privacy_guard as pg  # noqa: E402
import privacy_guard_fakes as fakes  # noqa: E402

TICK_S = 0.005


class PtyChannel:
    """The module's side of the pty, shaped like QuecPython's ``machine.UART`` (any/read/write)."""

    def __init__(self, master_fd: int) -> None:
        self.fd = master_fd

    def any(self) -> int:
        if not select.select([self.fd], [], [], 0)[0]:
            return 0
        waiting = bytearray(4)
        fcntl.ioctl(self.fd, termios.FIONREAD, waiting)
        return max(1, int.from_bytes(waiting, sys.byteorder))

    def read(self, size: int) -> bytes | None:
        return os.read(self.fd, size) or None

    def write(self, data: bytes) -> int:
        return os.write(self.fd, data)


@dataclass
class GuardedModule:
    slave_path: str
    gnss: fakes.FakeGnss
    fs: fakes.FakeFs
    guard: pg.Guard


def serve(guard: pg.Guard, stop: threading.Event) -> None:
    while not stop.is_set():
        guard.tick()
        time.sleep(TICK_S)


@pytest.fixture
def guarded_module() -> Iterator[GuardedModule]:
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    fs = fakes.FakeFs()
    store = pg.SwitchStore(fs, fs.open, json)
    store.save(False, 1)
    gnss = fakes.FakeGnss(on_at_boot=True)
    guard = pg.Guard(gnss, store, PtyChannel(master_fd), fakes.FakeModem(), fakes.FakeSim())
    guard.boot()
    stop = threading.Event()
    worker = threading.Thread(target=serve, args=(guard, stop), name="guard-pty", daemon=True)
    worker.start()
    try:
        yield GuardedModule(os.ttyname(slave_fd), gnss, fs, guard)
    finally:
        stop.set()
        worker.join(timeout=5)
        os.close(slave_fd)
        os.close(master_fd)
    assert not worker.is_alive()


def test_client_drives_guard_over_a_pty(guarded_module: GuardedModule) -> None:
    with GuardClient(guarded_module.slave_path, timeout_s=3.0) as client:
        assert client.version() == pg.VERSION

        status = client.set_switch(False)
        assert (status["on"], status["persisted"], status["gnss"]) == (False, True, 0)
        assert status["repairs"] == 1  # GNSS had come on by itself at boot

        status = client.status()
        assert status["on"] is False and status["source"] == "primary" and status["error"] is None

        status = client.set_switch(True)
        assert (status["on"], status["persisted"]) == (True, True)
    assert pg.SwitchStore(guarded_module.fs, guarded_module.fs.open, json).load()[:2] == (True, 2)


def test_drift_is_repaired_while_the_host_watches(guarded_module: GuardedModule) -> None:
    with GuardClient(guarded_module.slave_path, timeout_s=3.0) as client:
        before = client.status()["repairs"]
        guarded_module.gnss.gnssEnable(1)  # something on the module starts GNSS behind the switch
        deadline = time.monotonic() + 3.0
        while client.status()["repairs"] == before and time.monotonic() < deadline:
            time.sleep(TICK_S)
        status = client.status()
        assert status["repairs"] == before + 1 and status["gnss"] == 0


def test_port_without_a_guard_answers_version_none() -> None:
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    try:
        os.write(master_fd, b"\r\nRDY\r\n")  # a module that only talks AT
        with GuardClient(os.ttyname(slave_fd), timeout_s=0.3) as client:
            assert client.version() is None
    finally:
        os.close(slave_fd)
        os.close(master_fd)



@pytest.mark.skipif(not os.environ.get("HIL_GUARD_PORT"), reason="set HIL_GUARD_PORT to the guard's port")
def test_guard_on_real_hardware() -> None:
    """On a bench module with the guard deployed: the same calls, leaving the switch as it was found."""
    with GuardClient(os.environ["HIL_GUARD_PORT"], timeout_s=3.0) as client:
        assert client.version() is not None
        original = client.status()["on"]
        try:
            status = client.set_switch(False)
            assert (status["on"], status["persisted"]) == (False, True)
            deadline = time.monotonic() + 5.0
            while client.status()["gnss"] not in (0, 1) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.status()["gnss"] in (0, 1)
        finally:
            client.set_switch(original)
