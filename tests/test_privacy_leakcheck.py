"""The leak check finds every form the agent could give an identifier or the raw position, and reports kinds."""

from __future__ import annotations

import base64
import json
import struct

import cbor2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.model import DeviceIds
from agent.privacy.leakcheck import LeakCheck
from tests.privacy_support import fix_at

IMEI, IMSI, ICCID, MSISDN, SERIAL = "864475040123456", "460011234567890", "89860025128306012474", "8613800138000", \
    "QX2024A7K9"
CELL_ID, TAC = "1A2B3C4", "4E2F"
IDS = DeviceIds(imei=IMEI, imsi=IMSI, iccid=ICCID, msisdn=MSISDN, serial=SERIAL)
CHECK = LeakCheck.for_device(IDS, [(CELL_ID, TAC), (None, None)])
LAT, LON = 31.230861666666666, -121.47370166666667
FIX = fix_at(LAT, LON)
CLEAN = b'{"accuracy_m":2000,"id":"m1","lat":31.221,"lon":-121.471,"pseudonym":"1a2b3c4d5e6f708192a3b4c5d6e7f801",' \
        b'"purpose":"fleet-tracking","t":"2024-05-01T12:30:00Z"}'


def _b64_embedded(value: str, prefix: bytes) -> bytes:
    return base64.b64encode(prefix + value.encode() + b"!")


def _swapped(text: str) -> str:
    return "".join(text[index + 1] + text[index] for index in range(0, len(text), 2))


IDENTIFIER_FORMS = [
    ("imei", IMEI.encode()),
    ("imei", format(int(IMEI), "X").encode()),
    ("imei", format(int(IMEI), "x").encode()),
    ("imei", int(IMEI).to_bytes(7, "big")),
    ("imei", IMEI.encode("utf-16-le")),
    ("imei", IMEI.encode("utf-16-be")),
    ("imei", base64.b64encode(IMEI.encode())),
    ("imei", _b64_embedded(IMEI, b"")),
    ("imei", _b64_embedded(IMEI, b"a")),
    ("imei", _b64_embedded(IMEI, b"ab")),
    ("imei", base64.urlsafe_b64encode(b"\xff\xfe" + IMEI.encode())),
    ("imsi", b'"imsi":"' + IMSI.encode() + b'"'),
    ("iccid", ICCID.encode()),
    ("iccid", _swapped(ICCID).encode()),
    ("iccid", bytes.fromhex(_swapped(ICCID))),
    ("iccid", format(int(ICCID), "x").encode()),
    ("msisdn", b"tel:+" + MSISDN.encode()),
    ("serial", SERIAL.lower().encode()),
    ("cell-id", b'"cell":"' + CELL_ID.encode() + b'"'),
    ("cell-id", b'"cell":"' + CELL_ID.lower().encode() + b'"'),
    ("cell-id", b'"eci":' + str(int(CELL_ID, 16)).encode() + b","),
    ("cell-id", int(CELL_ID, 16).to_bytes(4, "big")),
    ("area", b'{"tac":"' + TAC.encode() + b'"}'),
    ("area", b'{"tac":' + str(int(TAC, 16)).encode() + b"}"),
]


@pytest.mark.parametrize(("kind", "form"), IDENTIFIER_FORMS, ids=[f"{kind}-{index}" for index, (kind, _) in
                                                                   enumerate(IDENTIFIER_FORMS)])
def test_every_identifier_form_is_found(kind: str, form: bytes) -> None:
    payload = CLEAN[:-1] + b',"x":"' + form + b'"}'
    assert kind in CHECK.findings(payload)
    assert CHECK.findings(CLEAN) == ()


def _nmea(value: float, degree_digits: int, decimals: int) -> str:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:0{3 + decimals}.{decimals}f}"


POSITION_FORMS = [
    repr(LAT).encode(), str(LON).encode(), json.dumps({"lat": LAT, "lon": LON}).encode(),
    *(f"{LAT:.{places}f}".encode() for places in range(5, 9)),
    *(f"{LON:.{places}f}".encode() for places in range(5, 9)),
    str(round(LAT * 1e7)).encode(), str(round(LON * 1e7)).encode(), str(int(LAT * 1e7)).encode(),
    f"$GPGGA,123456.00,{_nmea(LAT, 2, 4)},N,{_nmea(LON, 3, 4)},W,1".encode(),
    _nmea(LON, 3, 5).encode(), _nmea(LAT, 2, 6).encode(),
    struct.pack(">d", LAT), struct.pack("<d", LON), struct.pack(">f", LAT), struct.pack("<f", LON),
    cbor2.dumps(LAT), cbor2.dumps({"lat": LAT}, canonical=True), cbor2.dumps({"lon_e7": round(LON * 1e7)}),
    struct.pack("<i", round(LAT * 1e7)), struct.pack(">i", round(LON * 1e7)),
]


@pytest.mark.parametrize("form", POSITION_FORMS)
def test_every_exact_position_form_is_found(form: bytes) -> None:
    assert CHECK.findings(CLEAN + form, FIX) == ("exact-position",)
    assert CHECK.findings(CLEAN + form) == ()  # without the raw fix there is nothing to compare with


def test_coincidences_are_not_leaks() -> None:
    assert CHECK.findings(CLEAN, FIX) == ()
    assert CHECK.findings(CLEAN.replace(b"1a2b3c4d", b"1a2b3c4d"), FIX) == ()  # cell ID inside a hex pseudonym
    assert CHECK.findings(b'{"lat":131.230861}', FIX) == ()  # another number that contains the digits
    assert CHECK.findings(b'{"lat":31.2309,"lon":-121.4737}', FIX) == ()  # 4 decimals: a coarse value
    assert CHECK.findings(b'{"alt":' + str(int(TAC, 16)).encode() + b"1}", FIX) == ()


def test_findings_are_kinds_sorted_never_values() -> None:
    payload = b" ".join([CLEAN, IMEI.encode(), ICCID.encode(), repr(LAT).encode(), CELL_ID.encode()])
    findings = CHECK.findings(payload, FIX)
    assert findings == ("cell-id", "exact-position", "iccid", "imei")
    assert not any(IMEI in kind or CELL_ID in kind for kind in findings)


def test_plain_identifier_strings_are_kind_identifier() -> None:
    check = LeakCheck([IMEI, ("imsi", IMSI), "", "  "])
    assert check.findings(IMEI.encode() + b" " + IMSI.encode()) == ("identifier", "imsi")
    with pytest.raises(ValueError, match="ASCII"):
        LeakCheck(["\u0663\u0664\u0665"])


def test_a_fix_without_position_checks_identifiers_only() -> None:
    no_position = FIX._replace(valid=False, lat=None, lon=None)
    assert CHECK.findings(CLEAN + repr(LAT).encode(), no_position) == ()
    assert CHECK.findings(CLEAN + IMEI.encode(), no_position) == ("imei",)


identifier_values = st.text("0123456789", min_size=10, max_size=20).filter(lambda text: text[0] != "0")
json_text = st.text(st.sampled_from('abcdefghijklmnopqrstuvwxyz{}":,-_ '), max_size=40)


def _forms(value: str, shift: int) -> list[bytes]:
    """Independent re-derivation of some forms the agent could write."""
    number = int(value)
    return [value.encode(), format(number, "x").encode(), format(number, "X").encode(),
            number.to_bytes((number.bit_length() + 7) // 8, "big"), value.encode("utf-16-le"),
            base64.b64encode(b"x" * shift + value.encode()), base64.urlsafe_b64encode(b"\xfb" * shift + value.encode())]


@given(identifier_values, st.integers(0, 2), st.integers(0, 6), json_text, json_text)
def test_any_identifier_in_any_form_anywhere_is_found(value: str, shift: int, which: int, before: str,
                                                      after: str) -> None:
    form = _forms(value, shift)[which]
    payload = before.encode() + b'"' + form + b'"' + after.encode()
    assert LeakCheck([("imei", value)]).findings(payload) == ("imei",)


@given(st.integers(-90_000_000, 90_000_000), st.integers(0, 9999), st.integers(0, 5))
@example(micro=1310200, extra=0, which=0)  # "1.3102": four decimals, the precision of an upload itself
def test_any_raw_latitude_in_any_form_is_found(micro: int, extra: int, which: int) -> None:
    lat = micro / 1e6 + extra / 1e10
    forms = [repr(lat).encode(), f"{lat:.6f}".encode(), struct.pack("<d", lat), struct.pack(">f", lat),
             cbor2.dumps(lat), str(round(lat * 1e7)).encode()]
    form = forms[which]
    fraction = form.partition(b".")[2] if which in (0, 1) else b""
    if which in (0, 1, 5) and (len(form.lstrip(b"-0.").replace(b".", b"")) < 5 or b"e" in form
                               or 0 < len(fraction) < 5):
        # documented limits: too few significant digits to tell from chance, or no finer than an upload's
        # four decimals (a raw fix that happens to fall on such a value cannot be told from a coarsened one)
        return
    assert LeakCheck([]).findings(b'{"x":' + form + b"}", fix_at(lat, 10.0)) == ("exact-position",)
