"""URC classification."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.quectel.responses import Registration
from agent.quectel.urc import UrcInfo, UrcKind, classify_urc


@pytest.mark.parametrize(
    ("line", "kind", "name"),
    [
        ("RDY", UrcKind.BOOT, "RDY"),  # transcript 4.1
        ("+CPIN: READY", UrcKind.BOOT, "+CPIN"),
        ("+CPIN: SIM PIN", UrcKind.BOOT, "+CPIN"),
        ("+QUSIM: 1", UrcKind.BOOT, "+QUSIM"),
        ("+CFUN: 4", UrcKind.BOOT, "+CFUN"),
        ("+QIND: SMS DONE", UrcKind.BOOT, "+QIND"),
        ("+QIND: PB DONE", UrcKind.BOOT, "+QIND"),
        ('+QIND: "csq",20,99', UrcKind.OTHER, "+QIND"),
        ("APP RDY", UrcKind.BOOT, "APP RDY"),
        ("SMS DONE", UrcKind.BOOT, "SMS DONE"),
        ("POWERED DOWN", UrcKind.POWERED_DOWN, "POWERED DOWN"),
        ("NORMAL POWER DOWN", UrcKind.POWERED_DOWN, "NORMAL POWER DOWN"),
        ('+QGPSURC: "xtradataexpire",0,"2026/11/29,04:00:00"', UrcKind.GNSS, "+QGPSURC"),
        ('+QWIFISCAN: (-,-,-35,"C2:28:35:00:00:01",1)', UrcKind.LOOKUP, "+QWIFISCAN"),  # reference 3
        ("+QWIFISCAN: TIMEOUT", UrcKind.LOOKUP, "+QWIFISCAN"),
        ("+QLBS: 0,31.845372,117.198780,550", UrcKind.LOOKUP, "+QLBS"),
        ("+QCELLLOC: 117.198780,31.845372", UrcKind.LOOKUP, "+QCELLLOC"),
        ("RING", UrcKind.OTHER, ""),
        ("+QSIMSTAT: 1,0", UrcKind.OTHER, "+QSIMSTAT"),
        ("", UrcKind.OTHER, ""),
    ],
)
def test_classify(line: str, kind: UrcKind, name: str) -> None:
    info = classify_urc(line)
    assert (info.kind, info.name) == (kind, name)
    assert info.registration is None and not info.carries_location


def test_only_rdy_marks_a_reset() -> None:
    assert classify_urc(" RDY\r").is_reset
    assert not classify_urc("APP RDY").is_reset and not classify_urc("+CFUN: 1").is_reset


@pytest.mark.parametrize(
    ("line", "registration"),
    [
        ('+CREG: 1,"2D0D","1A2B3C4",7', Registration(1, None, "2D0D", "1A2B3C4", 7)),
        ('+CEREG: 1,"DE10","5A29C0B",7', Registration(1, None, "DE10", "5A29C0B", 7)),
        ("+CEREG: 2", Registration(2)),
        ('+CGREG: 5,"2D0D","1A2B3C4"', Registration(5, None, "2D0D", "1A2B3C4")),
    ],
)
def test_registration_urcs(line: str, registration: Registration) -> None:
    info = classify_urc(line)
    assert info == UrcInfo(UrcKind.REGISTRATION, line.split(":")[0], registration)
    assert info.carries_location == (registration.cell_id is not None)


def test_malformed_registration_is_still_registration_without_fields() -> None:
    info = classify_urc('+CEREG: 1,"DE10","5A29C0B",x')
    assert info.kind is UrcKind.REGISTRATION and info.registration is None


@given(st.text(max_size=80))
def test_classify_never_raises(line: str) -> None:
    assert isinstance(classify_urc(line).kind, UrcKind)
