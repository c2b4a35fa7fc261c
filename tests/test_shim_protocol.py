"""The guard's line protocol: LineReader, parse_request, replies, and the golden exchanges byte for byte."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

SHIMS = Path(__file__).resolve().parents[1] / "firmware_shims"
VECTORS = Path(__file__).resolve().parent / "data" / "guard"
if str(SHIMS) not in sys.path:
    sys.path.append(str(SHIMS))  # appended: never shadows installed modules

import privacy_guard as pg  # noqa: E402
import privacy_guard_fakes as fakes  # noqa: E402

EXCHANGES: list[dict[str, Any]] = json.loads((VECTORS / "exchanges.json").read_text())["exchanges"]


def drain(reader: pg.LineReader) -> list[bytes]:
    lines = []
    while (line := reader.next_line()) is not None:
        lines.append(line)
    return lines


def feed_in_pieces(data: bytes, size: int) -> list[bytes]:
    reader = pg.LineReader()
    lines: list[bytes] = []
    for start in range(0, len(data), size):
        reader.feed(data[start:start + size])
        lines.extend(drain(reader))
    return lines


STREAM = b"PG 1 VER\nPG 2 STATUS\r\n\r\nPG 3 SET ON\rPG 4 SET OFF\n"
STREAM_LINES = [b"PG 1 VER", b"PG 2 STATUS", b"PG 3 SET ON", b"PG 4 SET OFF"]


@pytest.mark.parametrize("size", [len(STREAM), 1, 2, 7])
def test_line_reader_is_independent_of_chunking(size: int) -> None:
    assert feed_in_pieces(STREAM, size) == STREAM_LINES


def test_line_reader_keeps_a_partial_line_for_later() -> None:
    reader = pg.LineReader()
    reader.feed(STREAM + b"PG 5 ST")
    assert drain(reader) == STREAM_LINES
    assert reader.pending() == len(b"PG 5 ST")
    reader.feed(b"ATUS\n")
    assert drain(reader) == [b"PG 5 STATUS"]


def test_overlong_line_is_reported_once_then_the_reader_resynchronises() -> None:
    reader = pg.LineReader(max_line=16)
    reader.feed(b"Z" * 40)
    assert reader.next_line() is None
    assert reader.pending() == 0  # dropped, not kept
    reader.feed(b"Z" * 40 + b"\nPG 9 VER\n")
    assert drain(reader) == [pg.TOO_LONG, b"PG 9 VER"]


def test_tail_of_a_dropped_line_is_not_taken_for_a_request() -> None:
    reader = pg.LineReader(max_line=16)
    reader.feed(b"Z" * 40)
    assert reader.next_line() is None
    reader.feed(b"PG 1 SET ON\nPG 2 VER\n")  # the end of the overlong line looks like a request
    assert drain(reader) == [pg.TOO_LONG, b"PG 2 VER"]


def test_overlong_line_arriving_whole_is_too_long() -> None:
    reader = pg.LineReader(max_line=16)
    reader.feed(b"Y" * 17 + b"\n" + b"Y" * 16 + b"\n")
    assert drain(reader) == [pg.TOO_LONG, b"Y" * 16]


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_line_reader_buffer_stays_bounded(chunks: list[bytes]) -> None:
    reader = pg.LineReader(max_line=32)
    for chunk in chunks:
        reader.feed(chunk)
        for line in drain(reader):
            assert line == pg.TOO_LONG or (0 < len(line) <= 32 and b"\r" not in line and b"\n" not in line)
        assert reader.pending() <= 32


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"PG 1 VER", ("1", "VER", None)),
        (b"PG 42 STATUS", ("42", "STATUS", None)),
        (b"PG 999999 SET ON", ("999999", "SET", "ON")),
        (b"PG 7 SET OFF", ("7", "SET", "OFF")),
    ],
)
def test_valid_requests_parse(line: bytes, expected: tuple[str, str, str | None]) -> None:
    assert pg.parse_request(line) == expected


@pytest.mark.parametrize(
    ("line", "seq", "reason"),
    [
        (b"AT+QGPS?", "0", "bad-line"),
        (b"PG", "0", "bad-line"),
        (b"PG 1", "0", "bad-line"),
        (b"pg 1 VER", "0", "bad-line"),
        (b"PG 0 VER", "0", "bad-line"),
        (b"PG 01 VER", "0", "bad-line"),
        (b"PG 1234567 VER", "0", "bad-line"),
        (b"PG x VER", "0", "bad-line"),
        (b"PG 1 VER\x00", "0", "bad-line"),
        (b"PG 1 V\xc3\xa9R", "0", "bad-line"),
        (b"PG  1 VER", "0", "bad-line"),
        (b"PG 3 FLY", "3", "unknown-verb"),
        (b"PG 3 ver", "3", "unknown-verb"),
        (b"PG 4 VER 2", "4", "bad-argument"),
        (b"PG 5 SET", "5", "bad-argument"),
        (b"PG 5 SET on", "5", "bad-argument"),
        (b"PG 5 SET ON OFF", "5", "bad-argument"),
        (b"PG 6 SET ON ", "6", "bad-argument"),
    ],
)
def test_bad_requests_name_the_problem(line: bytes, seq: str, reason: str) -> None:
    with pytest.raises(pg.RequestError) as refused:
        pg.parse_request(line)
    assert (refused.value.seq, refused.value.reason) == (seq, reason)


@given(st.binary(max_size=80))
def test_any_line_parses_or_is_refused_with_a_reason(line: bytes) -> None:
    try:
        seq, verb, argument = pg.parse_request(line)
    except pg.RequestError as refused:
        assert refused.reason in {"bad-line", "unknown-verb", "bad-argument"}
        return
    assert verb in pg.VERBS and seq.isdigit() and (argument is None or argument in pg.SWITCH_WORDS)


def test_replies_are_single_crlf_lines() -> None:
    assert pg.reply_version("12") == b"PG 12 VER 1 " + pg.VERSION.encode() + b"\r\n"
    assert pg.reply_error("3", "bad-argument") == b"PG 3 ERR bad-argument\r\n"
    assert pg.reply_status("5", {"on": True}) == b"PG 5 ST a1626f6ef5\r\n"


def booted_guard_as_in_vectors() -> tuple[pg.Guard, fakes.FakeUart]:
    """The setup recorded in exchanges.json: switch off on flash, GNSS came on by itself at boot."""
    fs = fakes.FakeFs()
    store = pg.SwitchStore(fs, fs.open, json)
    store.save(False, 1)
    uart = fakes.FakeUart()
    guard = pg.Guard(fakes.FakeGnss(on_at_boot=True), store, uart, fakes.FakeModem(), fakes.FakeSim())
    guard.boot()
    return guard, uart


def test_guard_replays_golden_exchanges_byte_for_byte() -> None:
    guard, uart = booted_guard_as_in_vectors()
    for exchange in EXCHANGES:
        uart.host_send(exchange["request"].encode())
        guard.tick()
        assert uart.host_receive() == exchange["reply"].encode(), exchange["request"]


def test_golden_exchanges_cover_every_verb_and_error_reason() -> None:
    replies = " ".join(exchange["reply"] for exchange in EXCHANGES)
    for word in ("VER 1", " ST ", "unknown-verb", "bad-argument", "bad-line", "too-long"):
        assert word in replies
    assert {exchange.get("verb") for exchange in EXCHANGES} >= {"VER", "STATUS", "SET"}
