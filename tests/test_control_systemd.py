"""systemd notifications over a real datagram socket, and the watchdog interval from the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import systemd


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def test_notify_sends_one_datagram_to_a_path(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert systemd.notify("READY=1\nSTATUS=location off", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=location off"


def test_notify_reads_the_process_environment(listener: tuple[socket.socket, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify("WATCHDOG=1") is True
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_supports_the_abstract_namespace() -> None:
    name = f"privacy-agent-test-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.notify("READY=1", {}) is False


@pytest.mark.parametrize("value", ["relative/path", "@", "x"])
def test_an_unusable_notify_socket_is_ignored(value: str) -> None:
    assert systemd.notify_address(value) is None
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": value}) is False


def test_a_vanished_notify_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_watchdog_interval_in_seconds_for_this_process() -> None:
    pid = str(os.getpid())
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": pid}) == 1.5


@pytest.mark.parametrize("env", [
    {},
    {"WATCHDOG_USEC": "0"},
    {"WATCHDOG_USEC": ""},
    {"WATCHDOG_USEC": "-5"},
    {"WATCHDOG_USEC": "soon"},
    {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},
    {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"},
])
def test_no_watchdog_when_unset_invalid_or_meant_for_another_process(env: dict[str, str]) -> None:
    if env.get("WATCHDOG_PID") == "1" and os.getpid() == 1:
        pytest.skip("running as pid 1")
    assert systemd.watchdog_interval(env) is None
