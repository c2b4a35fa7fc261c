"""The leak check: the last look at an outbound payload, independent of the scrubber (DESIGN invariant 3).

Strategy: it knows nothing of how payloads are built (it imports neither ``deidentify`` nor ``coarsen``). From the
device's own identifier values it prepares, once, every byte string the agent could ever turn them into; for
each payload it searches for those, and for every form the agent writes coordinates in, made from the raw fix.
It reports the KINDS found (``"imei"``, ``"cell-id"``, ``"exact-position"`` ...), never the values.

Identifier forms (value ``v``):

- the text as read, upper and lower case; UTF-16 (LE and BE) of it; base64 (standard and URL-safe) of its ASCII
  at each of the three byte alignments it could have inside a longer encoded blob;
- a decimal identifier's value in hex (upper, lower) and as big- and little-endian integer bytes, and packed
  BCD; a hex identifier's (cell ID, TAC/LAC, an ICCID ending in F) decimal value and integer bytes;
- the ICCID's BCD nibble-swapped form (as the SIM stores it), as text and as bytes.

Exact-position forms (each coordinate ``c`` of the raw fix):

- text (of ``abs(c)``; a sign is just another character before it): Python ``repr``/``str``, fixed 5 to 8
  decimals, E7 integers (rounded and truncated), NMEA ``ddmm.mmmm`` / ``dddmm.mmmm`` with 4 to 6 decimals;
- binary (of ``c``): IEEE-754 double and float32, big and little endian; CBOR float (0xfb double, 0xfa float32
  when lossless); E7 as int32 bytes both ways and as a CBOR integer.

Telling a leak from a coincidence. A form is searched as a plain substring when it is long enough to be
specific. Short text forms (under 8 characters) must stand alone: no letter, digit or '.' right before or after
(``"1A2B"`` is a cell ID in ``"cell":"1A2B"`` but not inside a hex pseudonym, and a TAC's decimal value is not
in the decimals of a coarsened latitude). A short form equal to a whole number elsewhere in the payload (a TAC
of 0x100 and an altitude of 256 m) is still reported: the check fails closed. Numeric text forms of coordinates
need no digit or '.' right before them (``31.23086`` inside ``131.230861`` is another number), and E7 integers
no digit right after either. Decimal texts of degrees are searched only with 5 or more decimals: an upload
never has more than 4 (``coarsen.decimals_for``), so a coarsened value that happens to lie within metres of the
truth along one axis is not taken for the truth; a raw ``repr`` with 4 decimals or fewer is searched through
its fixed 5- to 8-decimal forms (trailing zeros). Forms with fewer than 5 significant digits (positions within
about a metre of 0 degrees), converted identifier texts under 4 characters (the hex of an identifier "0000") and
binary forms under 4 bytes (a 2-byte TAC) are too short to tell from chance and are not searched: the scrubber
is the guard there.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable
from typing import NamedTuple

from agent.model import DeviceIds, Fix

SHORT_TEXT = 8
MIN_BINARY = 4
MIN_CONVERTED = 4
MIN_SIGNIFICANT_DIGITS = 5
_TOKEN = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")
_NUMBER = frozenset(b"0123456789.")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset("0123456789ABCDEFabcdef")


class _Needle(NamedTuple):
    """A byte string to search for, and which neighbours make an occurrence a different token (a named tuple:
    a raw fix's forms are built for every payload, and tuples are the cheapest to build)."""

    data: bytes
    not_before: frozenset[int] = frozenset()
    not_after: frozenset[int] = frozenset()


def _occurs(payload: bytes, needle: _Needle) -> bool:
    start = payload.find(needle.data)
    while start >= 0:
        end = start + len(needle.data)
        if (start == 0 or payload[start - 1] not in needle.not_before) and \
                (end == len(payload) or payload[end] not in needle.not_after):
            return True
        start = payload.find(needle.data, start + 1)
    return False


# -- identifier forms --------------------------------------------------------------------------------------
def _text_needle(text: str) -> _Needle:
    data = text.encode("ascii")
    if len(data) < SHORT_TEXT:
        return _Needle(data, _TOKEN, _TOKEN)
    return _Needle(data)


def _integer_bytes(number: int) -> list[bytes]:
    big = number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")
    return [big, big[::-1]]


def _base64_cores(raw: bytes) -> list[bytes]:
    """The base64 characters that depend only on ``raw``, for each alignment of ``raw`` in a longer blob."""
    cores = []
    for shift in range(3):
        first = math.ceil(8 * shift / 6)
        last = 8 * (shift + len(raw)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            cores.append(encode(b"\0" * shift + raw)[first:last])
    return cores


def _bcd_swapped(text: str) -> str:
    padded = text + "F" * (len(text) % 2)
    return "".join(padded[index + 1] + padded[index] for index in range(0, len(padded), 2))


def identifier_needles(value: str, hex_value: bool = False) -> list[_Needle]:
    """Every form of one identifier (``hex_value`` for cell IDs and TAC/LAC, which the modem prints in hex)."""
    text = value.strip()
    texts = {text, text.upper(), text.lower()}
    binaries = [form for case in texts for form in (case.encode("utf-16-le"), case.encode("utf-16-be"))]
    binaries += _base64_cores(text.encode("ascii"))
    if text.isdecimal() and not hex_value:
        number = int(text)
        texts |= {format(number, "X"), format(number, "x")}
        binaries += [*_integer_bytes(number), bytes.fromhex(text + "F" * (len(text) % 2))]
    elif text and set(text) <= _HEX:
        number = int(text, 16)
        texts.add(str(number))
        binaries += _integer_bytes(number)
    if len(text) >= 10 and set(text) <= _HEX:  # an ICCID, as the SIM stores it
        swapped = _bcd_swapped(text)
        texts |= {swapped, swapped.lower()}
        binaries.append(bytes.fromhex(swapped))
    converted = texts - {text, text.upper(), text.lower()}
    texts -= {form for form in converted if len(form) < MIN_CONVERTED}  # "0" from "0000": too unspecific
    needles = [_text_needle(form) for form in sorted(texts) if form]
    needles += [_Needle(form) for form in binaries if len(form) >= MIN_BINARY]
    return needles


# -- exact-position forms ----------------------------------------------------------------------------------
def _significant(text: str) -> int:
    return len(text.replace(".", "").lstrip("0"))


def _number_needle(text: str) -> _Needle | None:
    """A coordinate's decimal text: an integer (E7) must stand alone; a fraction needs 5+ decimals (finer than
    any upload's, see below) and no digit or '.' before it, and may go on with more digits."""
    fraction = text.partition(".")[2]
    if _significant(text) < MIN_SIGNIFICANT_DIGITS or "e" in text or (fraction and len(fraction) < 5):
        return None
    return _Needle(text.encode("ascii"), _NUMBER, frozenset() if fraction else _DIGITS)


def _nmea_texts(magnitude: float, degree_digits: int) -> list[str]:
    degrees = int(magnitude)
    minutes = (magnitude - degrees) * 60.0
    return [f"{degrees:0{degree_digits}d}{minutes:0{3 + decimals}.{decimals}f}" for decimals in (4, 5, 6)]


def coordinate_needles(value: float, degree_digits: int) -> list[_Needle]:
    """Every form of one raw coordinate (``degree_digits``: 2 for latitude, 3 for longitude in NMEA)."""
    magnitude = abs(value)
    texts = [repr(magnitude), *(f"{magnitude:.{decimals}f}" for decimals in range(5, 9))]
    e7_values = {round(value * 1e7), int(value * 1e7)}
    texts += [str(abs(e7)) for e7 in e7_values]
    needles = [needle for needle in map(_number_needle, texts) if needle is not None]
    # NMEA minutes: 4 decimals are metre-fine, and no degree value has ddmm. before its point
    needles += [_Needle(text.encode("ascii"), _NUMBER) for text in _nmea_texts(magnitude, degree_digits)
                if _significant(text) >= MIN_SIGNIFICANT_DIGITS]
    binaries = [struct.pack(">d", value), struct.pack("<d", value), b"\xfb" + struct.pack(">d", value)]
    single = struct.pack(">f", value)
    binaries += [single, single[::-1]]
    if struct.unpack(">f", single)[0] == value:
        binaries.append(b"\xfa" + single)
    for e7 in e7_values:
        if -(2**31) <= e7 < 2**31:
            binaries += [struct.pack(">i", e7), struct.pack("<i", e7)]
        binaries.append((b"\x1a" + struct.pack(">I", e7)) if e7 >= 0 else (b"\x3a" + struct.pack(">I", -1 - e7)))
    needles += [_Needle(form) for form in binaries if len(form) >= MIN_BINARY]
    return needles


class LeakCheck:
    """Searches payloads for the device's identifiers and for a raw fix's exact position.

    ``identifiers``: values as read from the modem; a plain string is reported as kind ``"identifier"``, a
    ``(kind, value)`` pair as its kind (:meth:`for_device` labels them). ``cells``: (cell ID, TAC/LAC) hex strings
    of the serving cells seen, reported as ``"cell-id"`` and ``"area"``.
    """

    def __init__(self, identifiers: Iterable[str | tuple[str, str]],
                 cells: Iterable[tuple[str | None, str | None]] = ()) -> None:
        self._needles: list[tuple[str, _Needle]] = []
        for item in identifiers:
            kind, value = ("identifier", item) if isinstance(item, str) else item
            self._add(kind, value, hex_value=False)
        for cell_id, area in cells:
            self._add("cell-id", cell_id, hex_value=True)
            self._add("area", area, hex_value=True)

    @classmethod
    def for_device(cls, ids: DeviceIds, cells: Iterable[tuple[str | None, str | None]] = ()) -> LeakCheck:
        labelled = [("imei", ids.imei), ("imsi", ids.imsi), ("iccid", ids.iccid), ("msisdn", ids.msisdn),
                    ("serial", ids.serial)]
        return cls([(kind, value) for kind, value in labelled if value], cells)

    def _add(self, kind: str, value: str | None, *, hex_value: bool) -> None:
        if value is None or not value.strip():
            return
        if not value.isascii():
            raise ValueError(f"a {kind} value must be ASCII")
        self._needles += [(kind, needle) for needle in identifier_needles(value, hex_value)]

    def findings(self, payload: bytes, raw_fix: Fix | None = None) -> tuple[str, ...]:
        """The kinds of everything found in ``payload``, sorted; empty when it is clean."""
        found = {kind for kind, needle in self._needles if needle.data in payload and _occurs(payload, needle)}
        if raw_fix is not None and _exact_position_in(payload, raw_fix):
            found.add("exact-position")
        return tuple(sorted(found))


def _exact_position_in(payload: bytes, fix: Fix) -> bool:
    needles = []
    if fix.lat is not None and math.isfinite(fix.lat):
        needles += coordinate_needles(fix.lat, 2)
    if fix.lon is not None and math.isfinite(fix.lon):
        needles += coordinate_needles(fix.lon, 3)
    return any(needle.data in payload and _occurs(payload, needle) for needle in needles)
