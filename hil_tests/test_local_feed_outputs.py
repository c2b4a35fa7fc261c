"""The local feed's outputs with real ptys and sockets: a reader that stops reading (or never comes) costs a
bounded buffer and counted drops, never a blocked sender; what a reader gets is whole, checked sentences; nothing
passes while the feed may not flow; the link is placed and removed safely; the gpsd-JSON server speaks the
protocol to a plain socket client."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import UsageError
from agent.local_feed_gpsd import GpsdJsonServer
from agent.local_feed_pty import PtyOutput
from agent.nmea.checksum import nmea_checksum
from agent.nmea.writer import FeedEpoch, sentences
from hil_tests.conftest import wait_until

T0 = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)


def _epoch(second: int, **extra: Any) -> FeedEpoch:
    return FeedEpoch(T0 + dt.timedelta(seconds=second), 31.231, 121.474, 3, **extra)


def _read_available(fd: int, timeout_s: float = 0.5) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    os.set_blocking(fd, False)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not chunk:
            break
        data += chunk
        deadline = time.monotonic() + timeout_s
    return data


def _assert_whole_sentences(data: bytes) -> int:
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        body, _, check = line[1:].partition(b"*")
        assert line.startswith(b"$GP") and int(check, 16) == nmea_checksum(body)
    return len(lines) - 1


@pytest.fixture
def pty_output(tmp_path: Path) -> Iterator[tuple[PtyOutput, list[bool]]]:
    allowed = [True]
    output = PtyOutput(tmp_path / "nmea", buffer_bytes=4096, may_flow=lambda: allowed[0])
    output.start()
    try:
        yield output, allowed
    finally:
        output.stop()


def test_a_reader_that_never_reads_costs_a_bounded_buffer(pty_output: tuple[PtyOutput, list[bool]],
                                                          tmp_path: Path) -> None:
    output, _ = pty_output
    started = time.monotonic()
    for second in range(3000):  # about 400 KB: far more than the kernel's pty queue and our buffer
        output.send(_epoch(second), sentences(_epoch(second)))
    assert time.monotonic() - started < 30  # it returned: the sender was never blocked
    assert wait_until(lambda: output.stats()["dropped_sentences"] > 0, 5)
    stats = output.stats()
    assert stats["pending_bytes"] <= 4096 and stats["dropped_bytes"] > 300_000
    reader = os.open(tmp_path / "nmea", os.O_RDONLY | os.O_NOCTTY)
    try:
        received = _read_available(reader)
    finally:
        os.close(reader)
    assert _assert_whole_sentences(received) > 0  # what arrives is whole sentences, the newest among them
    assert sentences(_epoch(2999)) in received


def test_nothing_passes_while_the_feed_may_not_flow(pty_output: tuple[PtyOutput, list[bool]],
                                                    tmp_path: Path) -> None:
    output, allowed = pty_output
    reader = os.open(tmp_path / "nmea", os.O_RDONLY | os.O_NOCTTY)
    try:
        output.send(_epoch(0), sentences(_epoch(0)))
        assert _assert_whole_sentences(_read_available(reader)) == 2
        allowed[0] = False
        for second in range(1, 4):
            output.send(_epoch(second), sentences(_epoch(second)))
        assert _read_available(reader) == b""
        assert wait_until(lambda: output.stats()["discarded_bytes"] > 0, 2)
        allowed[0] = True
        output.send(_epoch(9), sentences(_epoch(9)))
        assert _read_available(reader) == sentences(_epoch(9))  # resumes with new epochs only
    finally:
        os.close(reader)


def test_what_a_lagging_reader_has_not_read_is_gone_when_the_feed_closes(
        pty_output: tuple[PtyOutput, list[bool]], tmp_path: Path) -> None:
    output, allowed = pty_output
    reader = os.open(tmp_path / "nmea", os.O_RDONLY | os.O_NOCTTY)
    try:
        for second in range(5):
            output.send(_epoch(second), sentences(_epoch(second)))
        assert wait_until(lambda: output.stats()["written_bytes"] > 0 and output.stats()["pending_bytes"] == 0, 2)
        allowed[0] = False  # the switch turns off while the reader has read nothing yet
        time.sleep(1.5)  # the output looks at least once a second
        assert _read_available(reader) == b""
    finally:
        os.close(reader)


def test_the_link_is_placed_safely_and_removed(tmp_path: Path) -> None:
    taken = tmp_path / "file"
    taken.write_text("mine")
    with pytest.raises(UsageError, match="not a symlink"):
        PtyOutput(taken, buffer_bytes=4096, may_flow=lambda: True).start()
    foreign = tmp_path / "foreign"
    foreign.symlink_to(taken)
    with pytest.raises(UsageError, match="not a stale pty link"):
        PtyOutput(foreign, buffer_bytes=4096, may_flow=lambda: True).start()
    stale = tmp_path / "stale"
    stale.symlink_to("/dev/pts/999999")
    output = PtyOutput(stale, buffer_bytes=4096, may_flow=lambda: True)
    output.start()
    assert os.readlink(stale) == output.pty_name != "/dev/pts/999999"
    output.stop()
    assert not os.path.lexists(stale) and taken.read_text() == "mine"


def test_after_a_crash_the_feeds_own_link_is_replaced_even_while_its_pty_lives(tmp_path: Path) -> None:
    """SIGKILL leaves the link behind; its pty number may be reused at once, or a reader (gpsd) may still hold the
    old pty open. The record in the state dir says the link is the feed's own, so the next start replaces it."""
    link, record = tmp_path / "feed", tmp_path / "local_feed.link"
    first = PtyOutput(link, buffer_bytes=4096, may_flow=lambda: True, record=record)
    first.start()
    held = os.open(first.pty_name, os.O_RDWR | os.O_NOCTTY)  # a reader that still holds the old pty
    try:
        first._stop.set()  # a crash: the thread ends, the link and the record stay, the pty lives on
        first._wake()
        assert os.path.lexists(first.pty_name) and os.readlink(link) == first.pty_name
        second = PtyOutput(link, buffer_bytes=4096, may_flow=lambda: True, record=record)
        second.start()
        assert os.readlink(link) == second.pty_name != first.pty_name
        second.stop()
        without_record = tmp_path / "other"
        without_record.symlink_to(first.pty_name)  # a live pty link this feed never placed: not ours to replace
        with pytest.raises(UsageError, match="not a stale pty link"):
            PtyOutput(without_record, buffer_bytes=4096, may_flow=lambda: True, record=record).start()
    finally:
        os.close(held)
        first.stop()


# -- gpsd JSON ---------------------------------------------------------------------------------------------------
_open_clients: list[socket.socket] = []


class _Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        _open_clients.append(self.sock)
        self.sock.settimeout(0.3)
        self._data = b""

    def messages(self, wait_s: float = 0.5) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            self._data += chunk
        *lines, self._data = self._data.split(b"\r\n")
        return [json.loads(line) for line in lines if line]


@pytest.fixture
def gpsd_server() -> Iterator[tuple[GpsdJsonServer, list[bool]]]:
    allowed = [True]
    server = GpsdJsonServer(("127.0.0.1", 0), device="/run/privacy-agent/nmea", buffer_bytes=2048,
                            may_flow=lambda: allowed[0])
    server.start()
    try:
        yield server, allowed
    finally:
        while _open_clients:
            _open_clients.pop().close()
        server.stop()


def test_gpsd_protocol_version_watch_tpv_sky_poll(gpsd_server: tuple[GpsdJsonServer, list[bool]]) -> None:
    server, _ = gpsd_server
    client = _Client(server.port)
    assert [m["class"] for m in client.messages()] == ["VERSION"]
    client.sock.sendall(b'?WATCH={"enable":true,"json":true};')
    assert [m["class"] for m in client.messages()] == ["DEVICES", "WATCH"]
    epoch = _epoch(5, satellites=8)
    server.send(epoch, sentences(epoch))
    tpv, sky = client.messages()
    assert tpv == {"class": "TPV", "device": "/run/privacy-agent/nmea", "mode": 2,
                   "time": "2026-12-02T16:00:05.000Z", "lat": 31.231, "lon": 121.474}
    assert sky == {"class": "SKY", "device": "/run/privacy-agent/nmea", "time": "2026-12-02T16:00:05.000Z",
                   "uSat": 8}  # no satellite list, no HDOP: not allowed
    client.sock.sendall(b"?POLL;?VERSION;?NONSENSE;")
    poll, version, error = client.messages()
    assert poll["class"] == "POLL" and poll["tpv"][0]["lat"] == 31.231 and version["class"] == "VERSION"
    assert error["class"] == "ERROR"


def test_gpsd_clients_get_nothing_while_the_feed_may_not_flow(gpsd_server: tuple[GpsdJsonServer, list[bool]]
                                                              ) -> None:
    server, allowed = gpsd_server
    client = _Client(server.port)
    client.sock.sendall(b'?WATCH={"enable":true};')
    client.messages()
    allowed[0] = False
    server.send(_epoch(1), sentences(_epoch(1)))
    assert client.messages() == []
    allowed[0] = True
    client.sock.sendall(b"?POLL;")
    (poll,) = client.messages()
    assert poll["tpv"] == []  # the last fix was thrown away with the rest


def test_a_stuck_gpsd_client_is_bounded_and_the_others_served(gpsd_server: tuple[GpsdJsonServer, list[bool]]
                                                              ) -> None:
    server, _ = gpsd_server
    stuck, live = _Client(server.port), _Client(server.port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for client in (stuck, live):
        client.sock.sendall(b'?WATCH={"enable":true,"json":true};')
    live.messages()
    received = 0
    for second in range(5000):  # the stuck one never reads
        server.send(_epoch(second), sentences(_epoch(second)))
        if second % 500 == 0:
            received += len(live.messages(0.05))
    received += len(live.messages())
    assert received > 0
    assert wait_until(lambda: server.stats()["dropped_messages"] > 0, 5)
    assert server.stats()["clients"] == 2


def test_a_request_without_end_disconnects(gpsd_server: tuple[GpsdJsonServer, list[bool]]) -> None:
    server, _ = gpsd_server
    client = _Client(server.port)
    client.messages()
    client.sock.sendall(b"?" + b"x" * 5000)
    assert wait_until(lambda: server.stats()["clients"] == 0, 5)


@pytest.mark.skipif(shutil.which("cgps") is None, reason="cgps is not installed (Debian: gpsd-tools)")
def test_cgps_shows_the_feeds_position(gpsd_server: tuple[GpsdJsonServer, list[bool]]) -> None:
    """gpsd's curses client on a pseudo-terminal, against the feed's gpsd-JSON server: it shows the position."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import termios

    server, _ = gpsd_server
    pid, terminal = pty.fork()
    if pid == 0:  # the child: cgps on a 80x25 terminal
        try:
            os.execvpe("cgps", ["cgps", "-s", f"127.0.0.1:{server.port}"], {**os.environ, "TERM": "xterm"})
        finally:
            os._exit(127)  # never back into the test runner
    screen = b""
    try:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 25, 80, 0, 0))
        deadline = time.monotonic() + 15
        second = 0
        while b"31.23100000 N" not in screen and time.monotonic() < deadline:
            server.send(_epoch(second), sentences(_epoch(second)))
            second += 1
            until = time.monotonic() + 0.3
            while time.monotonic() < until:
                if select.select([terminal], [], [], 0.05)[0]:
                    try:
                        screen += os.read(terminal, 65536)
                    except OSError:
                        break
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(terminal)
    assert b"31.23100000 N" in screen and b"121.47400000 E" in screen
