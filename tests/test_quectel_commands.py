"""Quectel command builders: exact text, prefix and timeout; every bad argument is a UsageError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.at import Command, Connection
from agent.errors import UsageError
from agent.quectel import commands as c


@pytest.mark.parametrize(
    ("command", "text", "prefix"),
    [
        (c.at(), "AT", None),
        (c.ate(True), "ATE1", None),
        (c.ate(False), "ATE0", None),
        (c.cmee(2), "AT+CMEE=2", "+CMEE"),
        (c.qgps_read(), "AT+QGPS?", "+QGPS"),
        (c.qgps_test(), "AT+QGPS=?", "+QGPS"),
        (c.qgps_on(), "AT+QGPS=1", "+QGPS"),
        (c.qgps_on(1, 30, 50, 0, 1), "AT+QGPS=1,30,50,0,1", "+QGPS"),
        (c.qgps_on(fixcount=5), "AT+QGPS=1,30,50,5", "+QGPS"),
        (c.qgps_on(4, fixmaxtime=255), "AT+QGPS=4,255", "+QGPS"),
        (c.qgps_end(), "AT+QGPSEND", "+QGPSEND"),
        (c.qgpsloc(0), "AT+QGPSLOC=0", "+QGPSLOC"),
        (c.qgpsloc(2), "AT+QGPSLOC=2", "+QGPSLOC"),
        (c.qgpscfg_read("autogps"), 'AT+QGPSCFG="autogps"', "+QGPSCFG"),
        (c.qgpscfg_set("autogps", 0), 'AT+QGPSCFG="autogps",0', "+QGPSCFG"),
        (c.qgpscfg_set("outport", "usbnmea"), 'AT+QGPSCFG="outport","usbnmea"', "+QGPSCFG"),
        (c.qgpscfg_set("outport", "uartnmea", 115200), 'AT+QGPSCFG="outport","uartnmea",115200', "+QGPSCFG"),
        (c.qgpscfg_set("agpsposmode", 4294967295), 'AT+QGPSCFG="agpsposmode",4294967295', "+QGPSCFG"),
        (c.qgpscfg_set("lbsapn", 1, 1, "internet"), 'AT+QGPSCFG="lbsapn",1,1,"internet"', "+QGPSCFG"),
        (c.qgpsgnmea("gga"), 'AT+QGPSGNMEA="GGA"', "+QGPSGNMEA"),
        (c.ati(), "ATI", None),
        (c.cgsn(), "AT+CGSN", None),
        (c.gsn(), "AT+GSN", None),
        (c.cimi(), "AT+CIMI", None),
        (c.qccid(), "AT+QCCID", "+QCCID"),
        (c.cnum(), "AT+CNUM", "+CNUM"),
        (c.qgmr(), "AT+QGMR", None),
        (c.cgmm(), "AT+CGMM", None),
        (c.qeng_servingcell(), 'AT+QENG="servingcell"', "+QENG"),
        (c.creg_read(), "AT+CREG?", "+CREG"),
        (c.cereg_read(), "AT+CEREG?", "+CEREG"),
        (c.creg_set(2), "AT+CREG=2", "+CREG"),
        (c.cereg_set(1), "AT+CEREG=1", "+CEREG"),
        (c.cfun_read(), "AT+CFUN?", "+CFUN"),
        (c.cfun_set(4), "AT+CFUN=4", "+CFUN"),
        (c.cfun_set(1, 1), "AT+CFUN=1,1", "+CFUN"),
        (c.qpowd(), "AT+QPOWD=1", "+QPOWD"),
        (c.qpowd(0), "AT+QPOWD=0", "+QPOWD"),
    ],
)
def test_builder_text_and_prefix(command: Command, text: str, prefix: str | None) -> None:
    assert (command.text, command.prefix) == (text, prefix)
    assert Connection().send(command) == text.encode() + b"\r"  # the core accepts every built command


def test_timeout_hints() -> None:
    assert c.qgps_read().timeout_s == 3.0
    assert c.cfun_set(1, 1).timeout_s == 15.0
    assert c.qpowd().timeout_s == 5.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: c.cmee(3),
        lambda: c.cmee(-1),
        lambda: c.ate(1),  # type: ignore[arg-type]  # not a bool
        lambda: c.qgps_on(0),
        lambda: c.qgps_on(5),
        lambda: c.qgps_on(1, 0),
        lambda: c.qgps_on(1, 256),
        lambda: c.qgps_on(1, 30, 1001),
        lambda: c.qgps_on(fixcount=1001),
        lambda: c.qgps_on(fixrate=0),
        lambda: c.qgps_on(fixrate=65536),
        lambda: c.qgps_on(True),
        lambda: c.qgpsloc(3),
        lambda: c.qgpscfg_read(""),
        lambda: c.qgpscfg_read('auto"gps'),
        lambda: c.qgpscfg_read("a;b"),
        lambda: c.qgpscfg_read("a\rb"),
        lambda: c.qgpscfg_read("a b"),
        lambda: c.qgpscfg_read("x" * 33),
        lambda: c.qgpscfg_set("autogps"),
        lambda: c.qgpscfg_set("autogps", 2),
        lambda: c.qgpscfg_set("autogps", "0"),
        lambda: c.qgpscfg_set("gnssconfig", 9),
        lambda: c.qgpscfg_set("fixfreq", 3),
        lambda: c.qgpscfg_set("outport", "somewhere"),
        lambda: c.qgpscfg_set("outport", 1),
        lambda: c.qgpscfg_set("lbsapn", "inter;net"),
        lambda: c.qgpscfg_set("lbsapn", 'a"b'),
        lambda: c.qgpscfg_set("lbsapn", "a\nb"),
        lambda: c.qgpscfg_set("lbsapn", "caf\u00e9"),
        lambda: c.qgpscfg_set("lbsapn", -1),
        lambda: c.qgpscfg_set("lbsapn", 2**32),
        lambda: c.qgpscfg_set("lbsapn", 1.5),  # type: ignore[arg-type]
        lambda: c.qgpscfg_set("lbsapn", True),
        lambda: c.qgpsgnmea("XYZ"),
        lambda: c.qgpsgnmea("GGA\r"),
        lambda: c.creg_set(4),
        lambda: c.cereg_set(6),
        lambda: c.cfun_set(2),
        lambda: c.cfun_set(1, 2),
        lambda: c.qpowd(2),
    ],
)
def test_bad_arguments_raise_usage_error(build: Callable[[], Command]) -> None:
    with pytest.raises(UsageError) as info:
        build()
    message = str(info.value)
    assert "\r" not in message and "\n" not in message and "caf" not in message and "inter;net" not in message


_TEXT = st.text(max_size=12)
_INTS = st.integers(min_value=-(2**33), max_value=2**33)
_VALUES = st.one_of(_TEXT, _INTS, st.booleans(), st.none(), st.floats(allow_nan=True))
_BUILDERS: list[tuple[Callable[..., Command], st.SearchStrategy[Any]]] = [
    (c.ate, st.tuples(_VALUES)),
    (c.cmee, st.tuples(_VALUES)),
    (c.qgps_on, st.tuples(_VALUES, _VALUES, _VALUES, _VALUES, _VALUES)),
    (c.qgpsloc, st.tuples(_VALUES)),
    (c.qgpscfg_read, st.tuples(_VALUES)),
    (c.qgpscfg_set, st.lists(_VALUES, min_size=1, max_size=4).map(tuple)),
    (c.qgpsgnmea, st.tuples(_VALUES)),
    (c.creg_set, st.tuples(_VALUES)),
    (c.cereg_set, st.tuples(_VALUES)),
    (c.cfun_set, st.tuples(_VALUES, _VALUES)),
    (c.qpowd, st.tuples(_VALUES)),
]


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_no_builder_ever_produces_a_line_end_or_separator(data: st.DataObject) -> None:
    build, arguments = data.draw(st.sampled_from(_BUILDERS))
    args = data.draw(arguments)
    try:
        command = build(*args)
    except UsageError:
        return
    assert not any(char in command.text for char in "\r\n;")
    assert command.text.isascii() and command.text.isprintable()
    Connection().send(command)
