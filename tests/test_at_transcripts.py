"""Replay every ``> command`` / ``< reply`` exchange of the vendored real transcripts through the AT core.

Each exchange gets a fresh connection with the command pending (prefix taken from the command name); every
received line must come out either as an info line of the response or as a URC, never lost, never an error
(exchanges the transcript cut short get the missing ``OK``), and an exchange whose last line is a final
result must complete with exactly that final.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.at import NEED_DATA, Command, Connection, Echo, Response, Stray, Urc, parse_final
from agent.quectel import responses as r

TRANSCRIPTS = Path(__file__).parent / "data" / "at" / "at-transcripts.md"
_COMMENT = re.compile(r"\s{2,}\(.*$")


@dataclass
class Exchange:
    section: str
    command: str | None
    received: list[str] = field(default_factory=list)


def exchanges() -> list[Exchange]:
    found: list[Exchange] = []
    section = ""
    current: Exchange | None = None
    for raw in TRANSCRIPTS.read_text(encoding="utf-8").splitlines():
        if raw.startswith("### 4."):
            section, current = raw.split()[1], None
        elif raw.startswith("> "):
            current = Exchange(section, _COMMENT.sub("", raw[2:]).strip())
            found.append(current)
        elif raw.startswith("< "):
            if current is None:
                current = Exchange(section, None)
                found.append(current)
            current.received.append(_COMMENT.sub("", raw[2:]).replace("\\r", "").replace("\\n", "").strip())
        elif not raw.strip():
            current = None
    return found


def prefix_for(text: str) -> str | None:
    name = Command(text, prefix=None).name
    return name[2:] if name.startswith("AT+") else None


def replay(exchange: Exchange, *, finish: bool = False) -> tuple[Command | None, list[object]]:
    """Feed the exchange; ``finish`` adds the ``OK`` that abbreviated transcripts leave out (and records it in
    ``exchange.received``)."""
    conn = Connection()
    command = None
    if exchange.command is not None:
        command = Command(exchange.command, prefix=prefix_for(exchange.command))
        conn.send(command)
    conn.receive_data(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in exchange.received))
    events = drain(conn)
    if finish and conn.pending is not None:
        conn.receive_data(b"\r\nOK\r\n")
        exchange.received = [*exchange.received, "OK"]
        events += drain(conn)
    return command, events


def drain(conn: Connection) -> list[object]:
    events: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


EXCHANGES = exchanges()


def test_the_corpus_was_found() -> None:
    assert len(EXCHANGES) >= 25
    assert {exchange.section for exchange in EXCHANGES} >= {"4.1", "4.4", "4.6", "4.8", "4.9", "4.11", "4.14"}


@pytest.mark.parametrize("exchange", EXCHANGES, ids=lambda e: f"{e.section}:{e.command}")
def test_every_received_line_is_accounted_for(exchange: Exchange) -> None:
    exchange = Exchange(exchange.section, exchange.command, list(exchange.received))  # a copy: replay pads it
    _, events = replay(exchange, finish=True)
    seen: list[str] = []
    for event in events:
        if isinstance(event, Response):
            seen.extend(event.lines)
            seen.append(event.final.text)
        elif isinstance(event, Urc | Stray | Echo):
            seen.append(event.line)
    assert sorted(seen) == sorted(line for line in exchange.received if line)


@pytest.mark.parametrize("exchange", [e for e in EXCHANGES if e.command and e.received
                                      and parse_final(e.received[-1]) is not None],
                         ids=lambda e: f"{e.section}:{e.command}")
def test_completed_exchanges_give_one_response(exchange: Exchange) -> None:
    command, events = replay(exchange)
    responses = [event for event in events if isinstance(event, Response)]
    assert len(responses) == 1 and responses[0].command == command
    assert responses[0].final.text == exchange.received[-1]


def test_boot_burst_is_all_urcs_transcript_4_1() -> None:
    boot = next(e for e in EXCHANGES if e.section == "4.1" and e.command is None)
    _, events = replay(boot)
    lines = ("RDY", "+CPIN: READY", "+QUSIM: 1", "+CFUN: 4", "+QIND: SMS DONE")
    assert events == [Urc(line) for line in lines]


def test_qgpsloc_replies_parse_transcript_4_6() -> None:
    exchange = next(e for e in EXCHANGES if e.command == "AT+QGPSLOC=2")
    _, events = replay(exchange)
    response = next(event for event in events if isinstance(event, Response))
    fix = r.parse_qgpsloc(response, 2)
    assert (fix.lat, fix.lon, fix.satellites) == (44.74770, -85.56527, 10)
    late = [event for event in events if isinstance(event, Urc)]
    assert len(late) == 1 and late[0].line.startswith("+QGPSLOC:")  # the second fix came with nothing pending


def test_concatenated_reply_transcript_4_9_parses() -> None:
    exchange = next(e for e in EXCHANGES if e.section == "4.9")
    _, events = replay(exchange)
    (response,) = events
    assert isinstance(response, Response) and len(response.lines) == 5
    registration = r.parse_creg(next(line for line in response.lines if line.startswith("+CREG")))
    assert (registration.n, registration.stat, registration.act) == (2, 1, 7)
