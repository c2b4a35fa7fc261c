"""The AT core against real transcripts and hand-made edge cases, fed whole, byte by byte, split at every
offset, and with trailing garbage (as h11's ``tr()`` does)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from agent.at import (
    NEED_DATA,
    Command,
    Connection,
    Echo,
    Final,
    Prompt,
    Response,
    Stray,
    Urc,
    parse_final,
    plus_prefix,
)
from agent.errors import LocalProtocolError, RemoteProtocolError

Item = object  # an event, or ("error", exception class name)
TRAILING_GARBAGE = b"+QGPSURC: \"partial, never termin"


def drain(conn: Connection) -> list[Item]:
    items: list[Item] = []
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            items.append(("error", "RemoteProtocolError"))
            continue
        if event is NEED_DATA:
            return items
        items.append(event)


def collect(chunks: Iterable[bytes], command: Command | None = None, **options: int) -> list[Item]:
    conn = Connection(**options)  # type: ignore[arg-type]
    if command is not None:
        conn.send(command)
    items: list[Item] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        items.extend(drain(conn))
    return items


def every_way(data: bytes, command: Command | None = None, **options: int) -> list[Item]:
    """Events for ``data`` fed whole; asserts byte-wise, two-piece and trailing-garbage feeds agree."""
    whole = collect([data], command, **options)
    assert collect([bytes([b]) for b in data], command, **options) == whole
    for cut in range(len(data) + 1):
        assert collect([data[:cut], data[cut:]], command, **options) == whole
    garbage = TRAILING_GARBAGE[: options.get("max_line_bytes", 4096)]  # an unfinished line within the limit
    assert collect([data, garbage], command, **options) == whole
    return whole


CSQ = Command("AT+CSQ", prefix="+CSQ")


def ok(command: Command, *lines: str) -> Response:
    return Response(command, lines, Final("OK", None, "OK"))


# -- transcripts -----------------------------------------------------------------------------------------
def test_echo_with_bytewise_delivery_transcript_4_10() -> None:
    data = b"AT+CSQ\r\r\n+CSQ: 19,99\r\n\r\nOK\r\n"
    assert every_way(data, CSQ) == [Echo("AT+CSQ"), ok(CSQ, "+CSQ: 19,99")]


def test_echo_glued_to_the_final_transcript_4_10() -> None:
    command = Command("AT", prefix=None)
    assert every_way(b"AT\r\r\nOK\r\n", command) == [Echo("AT"), ok(command)]


def test_concatenated_command_reply_in_any_order_transcript_4_9() -> None:
    command = Command("AT+CPIN?;+CSQ;+COPS=3,0;+COPS?;+COPS=3,2;+COPS?;+CREG=2;+CREG?", prefix="+CPIN")
    lines = ('+CSQ: 17,99', '+CREG: 2,1,"00A8","5355E8D",7', "+CPIN: READY", '+COPS: 0,0,"NOS",7',
             '+COPS: 0,2,"26803",7')
    data = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines) + b"\r\nOK\r\n"
    assert every_way(data, command) == [ok(command, *lines)]


def test_nsa_multi_line_qeng_without_space_after_colon_transcript_4_8() -> None:
    command = Command('AT+QENG="servingcell"', prefix="+QENG")
    lines = ('+QENG: "servingcell","NOCONN"',
             '+QENG: "LTE","FDD",515,03,3359966,1,150,1,5,5,4AA3,-89,-13,-58,16,15,20,-',
             '+QENG:"NR5G-NSA",515,03,832,-76,21,-11,528030,41,8,1')
    data = b"\r\n" + b"\r\n".join(line.encode() for line in lines) + b"\r\n\r\nOK\r\n"
    assert every_way(data, command) == [ok(command, *lines)]


def test_urc_inside_a_response_is_routed_apart_f11() -> None:
    command = Command("AT+QGPSLOC=2", prefix="+QGPSLOC")
    fix = "+QGPSLOC: 113355.0,44.74770,-85.56527,1.2,192.0,2,277.11,0.0,0.0,250420,10"
    data = (b"\r\n" + fix.encode() + b"\r\n\r\n+QIND: \"csq\",20,99\r\nRING\r\n"
            b"+QGPSURC: \"xtradataexpire\",0\r\n\r\nOK\r\n")
    assert every_way(data, command) == [
        Urc('+QIND: "csq",20,99'), Urc("RING"), Urc('+QGPSURC: "xtradataexpire",0'), ok(command, fix)]


def test_boot_burst_with_nothing_pending_is_all_urcs_transcript_4_1() -> None:
    data = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+CFUN: 4\r\n\r\n+QIND: SMS DONE\r\n"
    assert every_way(data) == [Urc("RDY"), Urc("+CPIN: READY"), Urc("+QUSIM: 1"), Urc("+CFUN: 4"),
                               Urc("+QIND: SMS DONE")]


def test_ati_bare_info_lines_transcript_4_11() -> None:
    command = Command("ATI", prefix=None)
    data = b"ATI\r\r\nQuectel\r\nEC25\r\nRevision: EC25EFAR06A03M4G\r\n\r\nOK\r\n"
    assert every_way(data, command) == [
        Echo("ATI"), ok(command, "Quectel", "EC25", "Revision: EC25EFAR06A03M4G")]


def test_prefixless_command_keeps_plain_urcs_and_plus_lines_apart() -> None:
    command = Command("AT+CGSN", prefix=None)
    data = b"\r\n861536030196001\r\n\r\nRDY\r\n+CPIN: READY\r\nAPP RDY\r\n\r\nOK\r\n"
    assert every_way(data, command) == [Urc("RDY"), Urc("+CPIN: READY"), Urc("APP RDY"),
                                        ok(command, "861536030196001")]


def test_gnss_errors_transcripts_4_4_and_4_5() -> None:
    command = Command("AT+QGPSCFG?", prefix="+QGPSCFG")
    assert every_way(b"\r\n+CME ERROR: 505\r\n", command) == [
        Response(command, (), Final("CME", 505, "+CME ERROR: 505"))]


# -- finals --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "final"),
    [
        ("OK", Final("OK", None, "OK")),
        ("ERROR", Final("ERROR", None, "ERROR")),
        ("+CME ERROR: 516", Final("CME", 516, "+CME ERROR: 516")),
        ("+CME ERROR: SIM not inserted", Final("CME", None, "+CME ERROR: SIM not inserted")),
        ("+CMS ERROR: 330", Final("CMS", 330, "+CMS ERROR: 330")),
        ("CONNECT", Final("CONNECT", None, "CONNECT")),
        ("CONNECT 115200", Final("CONNECT", None, "CONNECT 115200")),
        ("NO CARRIER", Final("NO_CARRIER", None, "NO CARRIER")),
        ("COMMAND NOT SUPPORT", Final("ERROR", None, "COMMAND NOT SUPPORT")),
    ],
)
def test_final_results(line: str, final: Final) -> None:
    command = Command("AT+CPIN?", prefix="+CPIN")
    assert every_way(b"\r\n" + line.encode() + b"\r\n", command) == [Response(command, (), final)]
    assert parse_final(line) == final


def test_absurd_error_codes_are_kept_as_text() -> None:
    line = "+CME ERROR: " + "9" * 5000
    events = collect([line.encode() + b"\r\n"], CSQ, max_line_bytes=6000)
    assert events == [Response(CSQ, (), Final("CME", None, line))]


def test_numeric_finals_only_when_enabled() -> None:
    command = Command("AT+CGMM", prefix=None)
    assert every_way(b"EC25\r0\r", command) == []  # V1: "0" is an info line; still pending
    assert every_way(b"EC25\r0\r", command, numeric_results=True) == [
        Response(command, ("EC25",), Final("OK", None, "0"))]
    assert parse_final("4", numeric=True) == Final("ERROR", None, "4")
    assert parse_final("4") is None


def test_response_ok_covers_ok_and_connect_only() -> None:
    assert ok(CSQ).ok
    assert Response(CSQ, (), Final("CONNECT", None, "CONNECT")).ok
    assert not Response(CSQ, (), Final("ERROR", None, "ERROR")).ok
    assert not Response(CSQ, (), Final("NO_CARRIER", None, "NO CARRIER")).ok


def test_final_with_nothing_pending_is_stray_and_other_lines_are_urcs() -> None:
    assert every_way(b"\r\nOK\r\n+CME ERROR: 3\r\nhello\r\n") == [
        Stray("OK"), Stray("+CME ERROR: 3"), Urc("hello")]


def test_plain_line_during_a_prefixed_command_is_a_urc() -> None:
    assert every_way(b"\r\nsomething\r\n+CSQ: 1,2\r\nOK\r\n", CSQ) == [Urc("something"), ok(CSQ, "+CSQ: 1,2")]


def test_prefix_match_is_case_insensitive() -> None:
    command = Command("at+qgps?", prefix="+qgps")
    assert every_way(b"at+qgps?\r\r\n+QGPS: 1\r\nOK\r\n", command) == [
        Echo("at+qgps?"), ok(command, "+QGPS: 1")]


def test_similar_prefix_is_not_accepted() -> None:
    command = Command("AT+QGPS?", prefix="+QGPS")
    assert every_way(b'+QGPSURC: "x"\r\n+QGPS: 0\r\nOK\r\n', command) == [
        Urc('+QGPSURC: "x"'), ok(command, "+QGPS: 0")]


def test_echo_only_once_and_only_first() -> None:
    command = Command("AT+CSQ", prefix="+CSQ")
    assert every_way(b"AT+CSQ\r\nAT+CSQ\r\nOK\r\n", command) == [Echo("AT+CSQ"), Urc("AT+CSQ"), ok(command)]


def test_line_endings_cr_only_lf_only_and_blank_runs() -> None:
    assert every_way(b"\n\n\r\r+CSQ: 1,1\n\r \t \r\nOK\r", CSQ) == [ok(CSQ, "+CSQ: 1,1")]


# -- prompt and payload --------------------------------------------------------------------------------------
CMGS = Command('AT+CMGS="+10000000000"', prefix="+CMGS", expects_prompt=True)


def test_prompt_only_while_a_prompt_command_is_pending() -> None:
    data = b'AT+CMGS="+10000000000"\r\r\n> '
    assert every_way(data, CMGS) == [Echo('AT+CMGS="+10000000000"'), Prompt()]
    assert every_way(b"\r\n> \r\nOK\r\n", CSQ) == [Urc(">"), ok(CSQ)]


def test_send_data_after_prompt_then_final() -> None:
    conn = Connection()
    conn.send(CMGS)
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"early")
    conn.receive_data(b"\r\n> ")
    assert conn.next_event() == Prompt()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"a\x1ab")
    assert conn.send_data(b"hello") == b"hello\x1a"
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"twice")
    conn.receive_data(b"\r\n+CMGS: 7\r\n\r\nOK\r\n")
    assert conn.next_event() == ok(CMGS, "+CMGS: 7")
    assert conn.pending is None


def test_send_data_binary_without_terminator() -> None:
    conn = Connection()
    conn.send(CMGS)
    conn.receive_data(b"> ")
    assert conn.next_event() == Prompt()
    assert conn.send_data(b"\x00\x1a\xff", terminator=b"") == b"\x00\x1a\xff"


def test_lone_gt_waits_then_is_a_line_if_no_space_follows() -> None:
    assert every_way(b">x\r\nOK\r\n", CMGS) == [Urc(">x"), ok(CMGS)]


# -- sending, cancel, reset --------------------------------------------------------------------------------
def test_send_returns_wire_bytes_and_refuses_a_second_command() -> None:
    conn = Connection()
    assert conn.send(CSQ) == b"AT+CSQ\r"
    assert conn.pending == CSQ
    with pytest.raises(LocalProtocolError):
        conn.send(Command("AT", prefix=None))


@pytest.mark.parametrize("text", ["AT+CSQ\r", "AT\nAT", "AT+X=\x00", "XYZ", "AT+CÖ", ""])
def test_send_refuses_control_bytes_and_non_at_text(text: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        Connection().send(Command(text, prefix=None))
    assert "\r" not in str(info.value) and "\n" not in str(info.value)


def test_send_refuses_prefix_without_plus() -> None:
    with pytest.raises(LocalProtocolError):
        Connection().send(Command("AT+QGPS?", prefix="QGPS"))


def test_cancel_turns_late_lines_into_urcs_and_stray() -> None:
    conn = Connection()
    conn.send(CSQ)
    conn.receive_data(b"\r\n+CSQ: 1,1\r\n")
    assert drain(conn) == []
    conn.cancel()
    assert conn.pending is None
    conn.receive_data(b"\r\nOK\r\n")
    assert drain(conn) == [Stray("OK")]
    assert conn.send(CSQ) == b"AT+CSQ\r"


def test_reset_drops_buffer_and_pending() -> None:
    conn = Connection()
    conn.send(CSQ)
    conn.receive_data(b"+CSQ: 1,1\r\nhalf a li")
    assert drain(conn) == []
    conn.reset()
    assert conn.pending is None and conn.buffered_bytes == 0
    conn.receive_data(b"ne\r\nOK\r\n")
    assert drain(conn) == [Urc("ne"), Stray("OK")]


def test_empty_receive_is_ignored() -> None:
    conn = Connection()
    conn.receive_data(b"")
    assert conn.next_event() is NEED_DATA


# -- bounded memory and garbage ------------------------------------------------------------------------------
def test_overlong_line_raises_once_then_resynchronises() -> None:
    data = b"\r\n" + b"x" * 40 + b"\r\n+CSQ: 1,1\r\nOK\r\n"
    assert every_way(data, CSQ, max_line_bytes=16) == [("error", "RemoteProtocolError"), ok(CSQ, "+CSQ: 1,1")]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    assert every_way(b"+CSQ: 123456789\r\nOK\r\n", CSQ, max_line_bytes=15) == [ok(CSQ, "+CSQ: 123456789")]
    assert every_way(b"+CSQ: 1234567890\r\nOK\r\n", CSQ, max_line_bytes=15) == [
        ("error", "RemoteProtocolError"), ok(CSQ)]


def test_buffer_stays_bounded_while_an_endless_line_arrives() -> None:
    conn = Connection(max_line_bytes=64)
    errors = 0
    for _ in range(100):
        conn.receive_data(b"y" * 50)
        errors += sum(1 for item in drain(conn) if isinstance(item, tuple))
        assert conn.buffered_bytes <= 64
    assert errors == 1
    conn.receive_data(b"\r\nRDY\r\n")
    assert drain(conn) == [Urc("RDY")]


def test_binary_garbage_is_decoded_with_replacement() -> None:
    events = every_way(b"\xff\xfe\x00\x81\r\n+CSQ: 1,1\r\nOK\r\n", CSQ)
    assert len(events) == 2 and isinstance(events[0], Urc) and "\ufffd" in events[0].line
    assert events[1] == ok(CSQ, "+CSQ: 1,1")


def test_nul_padding_counts_as_blank() -> None:
    data = b"\x00\x00\r\n\x00RDY\x00\r\n+CSQ: 1,1\r\nOK\r\n"
    assert every_way(data, CSQ) == [Urc("RDY"), ok(CSQ, "+CSQ: 1,1")]


def test_max_line_bytes_must_be_sensible() -> None:
    with pytest.raises(ValueError):
        Connection(max_line_bytes=1)


# -- events ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('AT+QGPSCFG="autogps",0', "AT+QGPSCFG"),
        ("AT+QGPS?", "AT+QGPS"),
        ("AT+QGPS=?", "AT+QGPS"),
        ("at+cgsn", "AT+CGSN"),
        ("ATE0", "ATE"),
        ("ATI", "ATI"),
        ("AT+CPIN?;+CSQ", "AT+CPIN"),
        ('AT+CMGS="+15550100"', "AT+CMGS"),
        ("ATD+15550100;", "ATD"),
        ("AT&W", "AT&W"),
        ("AT", "AT"),
        ("AT+QGPS LOC?", "AT+QGPS"),
        ("hello", "(not an AT command)"),
    ],
)
def test_command_name_has_no_arguments(text: str, name: str) -> None:
    assert Command(text, prefix=None).name == name


def test_accepted_prefixes() -> None:
    assert Command("AT+QGPS?", prefix="+qgps").accepted_prefixes == {"+QGPS"}
    assert Command("ATI", prefix=None).accepted_prefixes == frozenset()
    assert Command("AT+CPIN?;+CSQ;AT+COPS=3,0", prefix=None).accepted_prefixes == {"+CPIN", "+CSQ", "+COPS"}


def test_events_are_frozen_values() -> None:
    with pytest.raises(AttributeError):
        CSQ.text = "AT"  # type: ignore[misc]
    assert Urc("RDY") == Urc("RDY") and Prompt() == Prompt()
    assert repr(NEED_DATA) == "NEED_DATA"


def test_plus_prefix() -> None:
    assert plus_prefix('+QENG:"NR5G-NSA",1') == "+QENG"
    assert plus_prefix("+qgps : 1") == "+QGPS"
    assert plus_prefix("+639544817486") is None
    assert plus_prefix("RDY") is None


def test_public_api_is_pinned() -> None:
    import agent.at

    assert sorted(agent.at.__all__) == sorted([
        "KNOWN_PLAIN_URCS", "NEED_DATA", "Command", "Connection", "Echo", "Event", "Final", "FinalKind",
        "NeedData", "Prompt", "Response", "Stray", "Urc", "parse_final", "plus_prefix"])
    assert all(hasattr(agent.at, name) for name in agent.at.__all__)
