"""The host side of the guard (agent/guard.py): codec against the golden vectors, and GuardClient against the
real guard logic running in-process behind a fake port (no threads, no ports)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import guard as host
from agent.errors import GuardError, PortUnavailable, UsageError

SHIMS = Path(__file__).resolve().parents[1] / "firmware_shims"
VECTORS = Path(__file__).resolve().parent / "data" / "guard"
if str(SHIMS) not in sys.path:
    sys.path.append(str(SHIMS))  # appended: never shadows installed modules

import privacy_guard as pg  # noqa: E402
import privacy_guard_fakes as fakes  # noqa: E402

EXCHANGES: list[dict[str, Any]] = json.loads((VECTORS / "exchanges.json").read_text())["exchanges"]
STATUS_VECTORS = sorted(path.stem for path in VECTORS.glob("status_*.hex"))


# --- codec --------------------------------------------------------------------------------------------------

VALID_EXCHANGES = [exchange for exchange in EXCHANGES if "verb" in exchange]


@pytest.mark.parametrize("exchange", VALID_EXCHANGES, ids=lambda e: e["request"].strip())
def test_encode_request_matches_golden_request(exchange: dict[str, Any]) -> None:
    encoded = host.encode_request(exchange["seq"], exchange["verb"], exchange.get("arg"))
    assert encoded == exchange["request"].encode()


@pytest.mark.parametrize(
    ("seq", "verb", "argument"),
    [(0, "VER", None), (1_000_000, "VER", None), (1, "FLY", None), (1, "SET", None), (1, "SET", "MAYBE"),
     (1, "VER", "ON"), (1, "SET", "on")],
)
def test_encode_request_refuses_what_the_protocol_lacks(seq: int, verb: str, argument: str | None) -> None:
    with pytest.raises(UsageError):
        host.encode_request(seq, verb, argument)


@pytest.mark.parametrize("exchange", EXCHANGES, ids=lambda e: e["request"].strip()[:20])
def test_golden_replies_parse_and_statuses_decode(exchange: dict[str, Any]) -> None:
    reply = host.parse_reply(exchange["reply"].encode().rstrip(b"\r\n"))
    assert reply.kind in host.REPLY_KINDS
    if "seq" in exchange:
        assert reply.seq == exchange["seq"]
    if reply.kind == "ST":
        assert host.decode_status(reply.fields[0]) == exchange["status"]


@pytest.mark.parametrize("name", STATUS_VECTORS)
def test_golden_status_vectors_decode(name: str) -> None:
    hex_text = (VECTORS / f"{name}.hex").read_text().strip()
    expected = json.loads((VECTORS / f"{name}.json").read_text())
    assert host.decode_status(hex_text) == expected


@pytest.mark.parametrize(
    ("hex_text", "problem"),
    [
        ("zz", "not hex"),
        ("a1626f6ef5ff", "trailing"),
        ("a1626f6e", "not valid CBOR"),
        ("83010203", "not a map"),
        ("a101f5", "not a map"),
        (cbor2.dumps({"on": True, "persisted": True, "proto": 1, "x": 1.5}).hex(), "unexpected type"),
        (cbor2.dumps({"on": True, "persisted": True, "proto": 1, "x": b"id"}).hex(), "unexpected type"),
        (cbor2.dumps({"persisted": True, "proto": 1}).hex(), "required"),
        (cbor2.dumps({"on": 1, "persisted": True, "proto": 1}).hex(), "required"),
        (cbor2.dumps({"on": True, "persisted": True, "proto": True}).hex(), "required"),
    ],
)
def test_bad_status_is_a_guard_error_naming_the_problem(hex_text: str, problem: str) -> None:
    with pytest.raises(GuardError, match=problem):
        host.decode_status(hex_text)


@given(st.binary(max_size=64))
def test_decode_status_accepts_or_raises_guard_error_only(raw: bytes) -> None:
    try:
        status = host.decode_status(raw.hex())
    except GuardError:
        return
    assert isinstance(status["on"], bool)


@pytest.mark.parametrize(
    "line",
    [b"", b"PG 1", b"PG 1 VER 1", b"PG 1 VER 1 1.0 x", b"PG 1 ST", b"PG 1 ERR", b"PG one ST aa",
     b"XX 1 ST aa", b"PG 1 OK yes", b"PG 1 ST a\xffb", b"PG 1 ST  "],
)
def test_parse_reply_refuses_non_replies(line: bytes) -> None:
    with pytest.raises(GuardError):
        host.parse_reply(line)


def reader_replies(chunks: list[bytes]) -> tuple[list[host.Reply], int]:
    reader = host.ReplyReader()
    replies: list[host.Reply] = []
    for chunk in chunks:
        reader.feed(chunk)
        replies.extend(reader.replies())
    return replies, reader.skipped_lines


def test_reader_skips_noise_and_counts_it() -> None:
    wire = (b"\r\nRDY\r\nPG 1 VER 1 1.0.0\r\n+QGPSURC: x\r\nPG 2 ERR too-long\r\n"
            + b"Q" * 2000 + b"\nPG 3 ST a0\n")
    for size in (len(wire), 1, 5):
        replies, skipped = reader_replies([wire[i:i + size] for i in range(0, len(wire), size)])
        assert [(r.seq, r.kind) for r in replies] == [(1, "VER"), (2, "ERR"), (3, "ST")]
        assert skipped == 3


@given(st.lists(st.binary(max_size=100), max_size=20))
def test_reader_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    reader = host.ReplyReader(max_line=64)
    for chunk in chunks:
        reader.feed(chunk)
        for reply in reader.replies():
            assert reply.kind in host.REPLY_KINDS
        assert len(reader._buffer) <= 64


# --- client -------------------------------------------------------------------------------------------------

class GuardBehindPort:
    """An agent.transport.Port stand-in: each write is handed to a guard, which answers on its next tick."""

    def __init__(self, guard: pg.Guard | None, uart: fakes.FakeUart) -> None:
        self.guard = guard
        self.uart = uart
        self.closed = False
        self.written: list[bytes] = []
        self.inject = b""  # bytes delivered before the guard's own answer (noise, stale replies)

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.uart.host_send(data)

    def read(self, max_bytes: int = 4096) -> bytes:
        if self.guard is not None:
            self.guard.tick()
        data, self.inject = self.inject + self.uart.host_receive(), b""
        return data

    def close(self) -> None:
        self.closed = True


class StepClock:
    """Monotonic time that advances by a fixed step per reading, so timeouts end without sleeping."""

    def __init__(self, step_s: float = 0.01) -> None:
        self.now = 0.0
        self.step_s = step_s

    def monotonic(self) -> float:
        self.now += self.step_s
        return self.now

    def wall(self) -> float:
        return 1_800_000_000.0


ClientRig = tuple[host.GuardClient, GuardBehindPort, fakes.FakeGnss, fakes.FakeFs]


def make_client(monkeypatch: pytest.MonkeyPatch, *, with_guard: bool = True, switch: bool = False,
                gnss_on: bool = True) -> ClientRig:
    fs = fakes.FakeFs()
    store = pg.SwitchStore(fs, fs.open, json)
    store.save(switch, 1)
    gnss = fakes.FakeGnss(on_at_boot=gnss_on)
    uart = fakes.FakeUart()
    guard = pg.Guard(gnss, store, uart, fakes.FakeModem(), fakes.FakeSim()) if with_guard else None
    if guard is not None:
        guard.boot()
    port = GuardBehindPort(guard, uart)
    monkeypatch.setattr(host, "open_port", lambda url, **options: port)
    return host.GuardClient("fake://module", timeout_s=0.5, clock=StepClock()), port, gnss, fs


def test_client_drives_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    client, port, gnss, _fs = make_client(monkeypatch)
    assert client.version() == pg.VERSION
    status = client.status()
    assert (status["on"], status["gnss"], status["repairs"], status["persisted"]) == (False, 0, 1, True)
    status = client.set_switch(True)
    assert status["on"] is True and status["persisted"] is True
    gnss.gnssEnable(1)
    status = client.set_switch(False)
    assert (status["on"], status["gnss"]) == (False, 0)
    assert port.written[:2] == [b"PG 1 VER\n", b"PG 2 STATUS\n"]


def test_no_guard_means_version_none(monkeypatch: pytest.MonkeyPatch) -> None:
    client, port, _gnss, _fs = make_client(monkeypatch, with_guard=False)
    port.inject = b"\r\nERROR\r\n"
    assert client.version() is None
    with pytest.raises(GuardError, match="did not answer"):
        client.status()


def test_stale_replies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    client, port, _gnss, _fs = make_client(monkeypatch)
    port.inject = b"PG 77 VER 1 6.6.6\r\nPG 9 ERR persist-failed\r\n"  # answers to requests timed out before
    assert client.version() == pg.VERSION


def test_refusal_is_a_guard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _port, _gnss, fs = make_client(monkeypatch)
    fs.fail_writes = True
    with pytest.raises(GuardError, match="refused") as refused:
        client.set_switch(True)
    assert refused.value.details["reason"] == "persist-failed"


def test_other_protocol_version_is_a_guard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client, port, _gnss, _fs = make_client(monkeypatch, with_guard=False)
    port.inject = b"PG 1 VER 2 9.9.9\r\n"
    with pytest.raises(GuardError, match="protocol"):
        client.version()


def test_switch_not_applied_is_a_guard_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client, port, _gnss, _fs = make_client(monkeypatch, with_guard=False)
    status = cbor2.dumps({"on": False, "persisted": True, "proto": 1}, canonical=True).hex()
    port.inject = b"PG 1 ST " + status.encode() + b"\r\n"
    with pytest.raises(GuardError, match="did not apply"):
        client.set_switch(True)


def test_vanished_port_is_closed_and_reopened(monkeypatch: pytest.MonkeyPatch) -> None:
    client, port, _gnss, _fs = make_client(monkeypatch)

    def vanish(max_bytes: int = 4096) -> bytes:
        raise PortUnavailable("port vanished while reading", port="fake://module")

    monkeypatch.setattr(port, "read", vanish)
    with pytest.raises(PortUnavailable):
        client.status()
    assert port.closed and client._port is None


def test_client_rejects_a_bad_timeout() -> None:
    with pytest.raises(UsageError):
        host.GuardClient("loop://", timeout_s=0)


def test_unopenable_port_is_port_unavailable(tmp_path: Path) -> None:
    client = host.GuardClient(str(tmp_path / "no-such-tty"), timeout_s=0.1)
    with pytest.raises(PortUnavailable):
        client.version()


def test_loopback_echo_is_not_a_guard() -> None:
    with host.GuardClient("loop://", timeout_s=0.1) as client:
        assert client.version() is None  # our own request echoed back is garbage to the reader
