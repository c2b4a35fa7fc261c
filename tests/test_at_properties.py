"""Property tests for the AT core: chunking never changes the events; arbitrary bytes give events or
``RemoteProtocolError`` only, and the buffer stays within its bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.at import (
    KNOWN_PLAIN_URCS,
    NEED_DATA,
    Command,
    Connection,
    Echo,
    Prompt,
    Response,
    Stray,
    Urc,
    parse_final,
    plus_prefix,
)
from agent.errors import RemoteProtocolError
from tests.test_at_connection import collect

COMMANDS = st.sampled_from([
    None,
    Command("AT+CSQ", prefix="+CSQ"),
    Command("ATI", prefix=None),
    Command('AT+CMGS="1"', prefix="+CMGS", expects_prompt=True),
    Command("AT+CPIN?;+CSQ", prefix=None),
])
TOKENS = st.sampled_from([
    b"\r", b"\n", b"\r\n", b"OK", b"ERROR", b"+CME ERROR: 516", b"+CMS ERROR: x", b"RDY", b"> ", b">",
    b"AT+CSQ", b"ATI", b"+CSQ: 1,2", b"+CPIN: READY", b"+QIND: SMS DONE", b"Quectel", b"\xff\x00", b" ",
    b"CONNECT", b"NO CARRIER", b"x" * 40,
])
AT_LIKE = st.lists(TOKENS, max_size=40).map(b"".join)
ANY_BYTES = st.one_of(AT_LIKE, st.binary(max_size=300))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    return [*pieces, data[start:]]


@settings(max_examples=300, deadline=None)
@given(data=ANY_BYTES, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12), command=COMMANDS,
       limit=st.sampled_from([8, 32, 4096]))
def test_any_chunking_gives_the_same_events(data: bytes, cuts: list[int], command: Command | None,
                                            limit: int) -> None:
    whole = collect([data], command, max_line_bytes=limit)
    assert collect(split(data, cuts), command, max_line_bytes=limit) == whole


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(ANY_BYTES, max_size=8), command=COMMANDS, limit=st.sampled_from([4, 16, 64]))
def test_arbitrary_bytes_give_events_or_remote_protocol_error(chunks: list[bytes], command: Command | None,
                                                              limit: int) -> None:
    conn = Connection(max_line_bytes=limit)
    if command is not None:
        conn.send(command)
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                continue
            if event is NEED_DATA:
                break
            assert isinstance(event, Response | Urc | Echo | Prompt | Stray)
        assert conn.buffered_bytes <= limit


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
                      max_size=10))
def test_prefixless_reply_lines_round_trip(lines: list[str]) -> None:
    """Whatever bare lines a prefix-less command gets back arrive as its info lines (minus URCs/finals)."""
    command = Command("AT+QGMR", prefix=None)
    data = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines) + b"\r\nOK\r\n"
    events = collect([data], command)
    kept = [line.strip() for line in lines if line.strip()]
    first_final = next((i for i, line in enumerate(kept) if parse_final(line) is not None), None)
    before = kept if first_final is None else kept[:first_final]
    echo = bool(before) and before[0].upper() == command.text
    expected = [line for line in before[int(echo):]
                if plus_prefix(line) is None and line.upper() not in KNOWN_PLAIN_URCS]
    responses = [event for event in events if isinstance(event, Response)]
    assert responses and list(responses[0].lines) == expected
