"""Property tests: the simulated module's command parser and byte input never fail on arbitrary input."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.sim import ManualClock, SimModem
from agent.sim.identity import luhn_digit, luhn_valid
from agent.sim.nmea_out import degrees_minutes
from agent.sim.parser import parse_line

# A response is echo-free (ATE0) framing: one or more \r\n<line>\r\n blocks, the last a final result.
_FINAL = re.compile(rb"(\r\n[^\r\n]*\r\n)*\r\n(OK|ERROR|\+CME ERROR: [^\r\n]+)\r\n")
_AT_LIKE = st.text(alphabet='AT+QGPSLOCFGNMEA=?;,"0123456789 &EIVabc\xb2\xb9\xe9', max_size=40)


@given(st.text(max_size=80))
def test_parse_line_returns_commands_or_none_for_any_text(text: str) -> None:
    result = parse_line(text)
    assert result is None or all(command.form in ("exec", "read", "test", "set") for command in result)


@settings(max_examples=200)
@given(st.lists(_AT_LIKE, max_size=6))
def test_any_command_line_gets_exactly_one_well_formed_final(lines: list[str]) -> None:
    modem = SimModem(seed=1, clock=ManualClock())
    modem.write("at", b"ATE0\r")
    modem.read("at", 1 << 16)
    for line in lines:
        if not line.strip():
            continue
        modem.write("at", line.encode() + b"\r")
        out = modem.read("at", 1 << 16)
        if out:  # QPOWD/CFUN resets may follow later, but the answer itself comes at once
            assert _FINAL.fullmatch(out), out
        if not modem.is_connected("at"):
            break


_NAMES = [name for name in SimModem(clock=ManualClock()).supported_commands if name.startswith("+")]


@settings(max_examples=300)
@given(st.sampled_from(_NAMES), st.sampled_from(["=", "?", "=?", ""]), st.binary(max_size=30))
def test_every_command_handler_survives_arbitrary_arguments(name: str, form: str, args: bytes) -> None:
    modem = SimModem(seed=3, clock=ManualClock())
    modem.write("at", b"ATE0\r")
    modem.read("at", 1 << 16)
    modem.write("at", b"AT" + name.encode() + form.encode() + args.replace(b"\r", b"") + b"\r")
    out = modem.read("at", 1 << 16)
    assert _FINAL.fullmatch(out), out


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=17))
def test_arbitrary_bytes_in_any_chunking_never_raise(data: bytes, chunk: int) -> None:
    modem = SimModem(seed=2, clock=ManualClock())
    for start in range(0, len(data), chunk):
        modem.write("at2", data[start : start + chunk])
    assert isinstance(modem.read("at2", 1 << 20), bytes)


@given(st.floats(min_value=-179.99999, max_value=179.99999), st.sampled_from([4, 6]))
def test_degrees_minutes_never_prints_60_minutes(value: float, decimals: int) -> None:
    text = degrees_minutes(value, 3, decimals)
    minutes = float(text[3:])
    assert 0 <= minutes < 60
    assert abs(int(text[:3]) + minutes / 60 - abs(value)) <= 10 ** -decimals / 60


@given(st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_luhn_digit_completes_a_valid_number(digits: str) -> None:
    assert luhn_valid(digits + luhn_digit(digits))
