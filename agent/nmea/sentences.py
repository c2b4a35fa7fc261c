"""Typed decoders for the sentences a Quectel module sends: GGA, RMC, GNS, GLL, GSA, GSV, VTG, ZDA.

Decoded values are immutable named tuples: they are made for every sentence read, and a tuple is the cheapest
immutable record CPython has. Talker-agnostic: ``$GPGGA``, ``$GNGGA``, ``$BDGGA`` all decode to :class:`Gga`
with ``talker`` set. Empty fields (a receiver without a fix sends ``$GPGGA,,,,,,0,,,,,,,,*66``) decode to
``None``. A field that is present but cannot be read raises :class:`~agent.errors.NmeaError` naming the
sentence type and field number, never its value (it may be a coordinate). Proprietary sentences decode to
:class:`Proprietary`, types without a decoder to :class:`Unknown`; both keep their raw fields.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from agent.errors import NmeaError
from agent.nmea.reader import Sentence

KNOTS_TO_KMH = 1.852


class Gga(NamedTuple):
    """Fix data. ``quality`` 0 means no fix."""

    talker: str
    time: dt.time | None
    lat: float | None
    lon: float | None
    quality: int | None
    satellites: int | None
    hdop: float | None
    altitude_m: float | None
    geoid_separation_m: float | None


class Rmc(NamedTuple):
    """Recommended minimum data. ``status`` ``"A"`` is a valid fix, ``"V"`` a warning (no fix)."""

    talker: str
    time: dt.time | None
    status: str
    lat: float | None
    lon: float | None
    speed_knots: float | None
    course_deg: float | None
    date: dt.date | None
    mode: str | None  # NMEA 2.3+: A autonomous, D differential, E estimated, N not valid ...


class Gll(NamedTuple):
    """Geographic position. ``status`` ``"A"`` valid, ``"V"`` not; ``mode`` is NMEA 2.3's mode indicator
    (``None`` before 2.3, as is ``time`` before 2.0, when GLL had only the position)."""

    talker: str
    time: dt.time | None
    lat: float | None
    lon: float | None
    status: str
    mode: str | None


class Gns(NamedTuple):
    """Multi-constellation fix data. ``mode`` has one letter per constellation; all ``N`` means no fix."""

    talker: str
    time: dt.time | None
    lat: float | None
    lon: float | None
    mode: str
    satellites: int | None
    hdop: float | None
    altitude_m: float | None


class Gsa(NamedTuple):
    """DOP and active satellites. ``fix_type`` 1 none, 2 2D, 3 3D; ``system_id`` is NMEA 4.1's last field."""

    talker: str
    selection: str
    fix_type: int | None
    prns: tuple[int, ...]
    pdop: float | None
    hdop: float | None
    vdop: float | None
    system_id: int | None


class SatelliteInView(NamedTuple):
    prn: int
    elevation_deg: int | None
    azimuth_deg: int | None
    snr_db: int | None


class Gsv(NamedTuple):
    """One sentence of a satellites-in-view group. ``signal_id`` is NMEA 4.1's last field, if present."""

    talker: str
    total: int
    number: int
    in_view: int | None
    satellites: tuple[SatelliteInView, ...]
    signal_id: str | None


class Vtg(NamedTuple):
    """Course and speed over ground."""

    talker: str
    course_true_deg: float | None
    course_magnetic_deg: float | None
    speed_knots: float | None
    speed_kmh: float | None
    mode: str | None


class Zda(NamedTuple):
    """UTC time and date."""

    talker: str
    time: dt.time | None
    date: dt.date | None


class Proprietary(NamedTuple):
    """A ``$P...`` sentence, passed through untouched (``$PQGSV``, ``$PMTK001``, ``$PGLOR``)."""

    address: str
    fields: tuple[str, ...]


class Unknown(NamedTuple):
    """A standard sentence type without a decoder here (TXT, GST, GRS, ...), passed through untouched."""

    talker: str
    kind: str
    fields: tuple[str, ...]


Decoded = Gga | Rmc | Gns | Gll | Gsa | Gsv | Vtg | Zda | Proprietary | Unknown


def decode(sentence: Sentence) -> Decoded:
    """The typed value of a checked sentence; raises NmeaError if a field cannot be read."""
    if sentence.proprietary:
        return Proprietary("P" + sentence.kind, sentence.fields)
    decoder = DECODERS.get(sentence.kind)
    if decoder is None:
        return Unknown(sentence.talker, sentence.kind, sentence.fields)
    return decoder(sentence)


class _FieldError(Exception):
    """Internal: field ``number`` is not ``what``; becomes an NmeaError naming the type and talker."""

    def __init__(self, number: int, what: str) -> None:
        super().__init__(number, what)
        self.number = number
        self.what = what


Fields = list[str]
T = TypeVar("T")
# A named tuple's own constructor is a Python function taking every field by name; for the two decoders that
# run for every epoch, building the tuple directly is the same value at half the cost.
_new = tuple.__new__


def _decoding(sentence: Sentence, build: Callable[[str, Fields], T], count: int) -> T:
    """Split the body once, pad it to ``count`` fields (receivers omit trailing empty ones), build."""
    fields = sentence.body.split(",")
    if len(fields) < count:
        fields += [""] * (count - len(fields))
    try:
        return build(sentence.talker, fields)
    except _FieldError as error:
        message = f"{sentence.kind} field {error.number} is not {error.what}"
        raise NmeaError(message, talker=sentence.talker) from None


# -- field readers -------------------------------------------------------------------------------------------
# Each takes the padded fields and a field number (NMEA numbering: fields[0] is the address).


def _float(fields: Fields, number: int) -> float | None:
    text = fields[number]
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _FieldError(number, "a number") from None
    if not math.isfinite(value):
        raise _FieldError(number, "a finite number")
    return value


def _int(fields: Fields, number: int) -> int | None:
    text = fields[number]
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise _FieldError(number, "an unsigned integer")
    return int(text)


def _position(fields: Fields, number: int) -> tuple[float | None, float | None]:
    """Latitude (fields ``number``, ``number + 1``) and longitude (the next two) as signed degrees."""
    try:
        return _parse_position(*fields[number : number + 4])
    except _FieldError as error:
        raise _FieldError(number + error.number, error.what) from None


# GGA, RMC and GNS of one epoch carry the same position text, so the last few parses are remembered. A pure
# function of the text (errors are not cached), so caching cannot change a result.
@functools.lru_cache(maxsize=8)
def _parse_position(lat: str, north_south: str, lon: str, east_west: str) -> tuple[float | None, float | None]:
    """The position in the four fields; a _FieldError numbers the field from 0 (latitude) to 3."""
    return _coordinate(lat, north_south, 0, "NS", 90.0), _coordinate(lon, east_west, 2, "EW", 180.0)


def _coordinate(text: str, hemisphere: str, number: int, hemispheres: str, limit: float) -> float | None:
    """``ddmm.mmmm`` (latitude) or ``dddmm.mmmm`` (longitude) plus hemisphere letter, as signed degrees."""
    if not text and not hemisphere:
        return None
    try:
        packed = float(text)
    except ValueError:
        raise _FieldError(number, "a coordinate") from None
    if not 0.0 <= packed < 100.0 * (limit + 1):  # also rejects nan and inf
        raise _FieldError(number, "a coordinate in range")
    degrees = int(packed // 100)
    minutes = packed - degrees * 100
    value = degrees + minutes / 60.0
    if minutes > 60.0 or value > limit:  # exactly 60 occurs: MTK sends 8960.000000 before its first fix
        raise _FieldError(number, "a coordinate in range")
    if hemisphere == hemispheres[1]:
        return -value
    if hemisphere != hemispheres[0]:
        raise _FieldError(number + 1, f"{hemispheres[0]} or {hemispheres[1]}")
    return value


def _time_and_position(fields: Fields, number: int) -> tuple[dt.time | None, float | None, float | None] | None:
    """Field 1's time and the position from field ``number`` on, in one call for the usual sentence; None
    when either is not readable (the field-by-field readers then say which field is at fault)."""
    text = fields[1]
    time = _parse_time(text) if text else None
    if time is None and text:
        return None
    try:
        return (time, *_parse_position(*fields[number : number + 4]))
    except _FieldError:
        return None


def _time(fields: Fields, number: int) -> dt.time | None:
    """``hhmmss`` with optional fraction."""
    text = fields[number]
    if not text:
        return None
    time = _parse_time(text)
    if time is None:
        raise _FieldError(number, "a time hhmmss.ss")
    return time


def _dmy_date(fields: Fields, number: int) -> dt.date | None:
    """RMC's ``ddmmyy``. Two-digit years: 80-99 are 19xx (GPS began in 1980), the rest 20xx."""
    text = fields[number]
    if not text:
        return None
    date = _parse_dmy_date(text)
    if date is None:
        raise _FieldError(number, "a date ddmmyy")
    return date


# GGA, RMC (and GNS) of one epoch carry the same time and every RMC the same date: remembering the last few
# parses saves a good part of their decoding. Pure functions of the text, so caching cannot change a result.


@functools.lru_cache(maxsize=8)
def _parse_time(text: str) -> dt.time | None:
    """``hhmmss`` or ``hhmmss.f...``; None if it is not a time of day.

    The fraction is rounded to the nearest microsecond, a half microsecond up, on its decimal digits: no
    float in between, so ``.0000005`` is exactly one microsecond and the rule holds for every digit string.
    A fraction that rounds up to the next second carries into it (``235959.9999995`` is not a time of day).
    """
    if len(text) < 6 or not text[:6].isdigit() or not text.isascii():
        return None
    fraction = text[6:]
    digits = fraction[1:]
    if fraction and (fraction[0] != "." or (digits and not digits.isdigit())):
        return None
    micro = int(digits[:6].ljust(6, "0")) + (digits[6:7] >= "5")  # the seventh digit rounds the sixth
    carry, micro = divmod(micro, 1_000_000)
    try:
        return dt.time(int(text[0:2]), int(text[2:4]), int(text[4:6]) + carry, micro)
    except ValueError:  # hour 24, minute 61, or a leap second (datetime cannot hold 60)
        return None


@functools.lru_cache(maxsize=8)
def _parse_dmy_date(text: str) -> dt.date | None:
    if len(text) != 6 or not text.isdigit() or not text.isascii():
        return None
    year = int(text[4:6])
    year += 1900 if year >= 80 else 2000
    try:
        return dt.date(year, int(text[2:4]), int(text[0:2]))
    except ValueError:
        return None


# -- decoders ------------------------------------------------------------------------------------------------


def decode_gga(sentence: Sentence) -> Gga:
    return _decoding(sentence, _gga, 15)


def _gga(talker: str, f: Fields) -> Gga:
    # Every number present and plain is the usual case, read without a function call per field (a third of
    # the decoding time); anything else takes the field-by-field path, which names the field at fault.
    quality, satellites = f[6], f[7]
    if quality.isdigit() and satellites.isdigit() and quality.isascii() and satellites.isascii():
        try:
            hdop, altitude, geoid = float(f[8]), float(f[9]), float(f[11])
        except ValueError:
            pass
        else:
            if math.isfinite(hdop + altitude + geoid):  # finite sum: each is finite
                found = _time_and_position(f, 2)
                if found is not None:
                    return _new(Gga, (talker, *found, int(quality), int(satellites), hdop, altitude, geoid))
    return Gga(talker, _time(f, 1), *_position(f, 2), _int(f, 6), _int(f, 7), _float(f, 8), _float(f, 9), _float(f, 11))


def decode_rmc(sentence: Sentence) -> Rmc:
    return _decoding(sentence, _rmc, 13)


def _rmc(talker: str, f: Fields) -> Rmc:
    # As in _gga: speed and course present and plain is the usual case.
    speed: float | None
    course: float | None
    try:
        speed, course = float(f[7]), float(f[8])
        plain = math.isfinite(speed + course)
    except ValueError:  # also when one is empty
        plain = False
    if not plain:
        speed, course = _float(f, 7), _float(f, 8)
    found = _time_and_position(f, 3)
    time, lat, lon = (_time(f, 1), *_position(f, 3)) if found is None else found
    return _new(Rmc, (talker, time, f[2], lat, lon, speed, course, _dmy_date(f, 9), f[12] or None))


def decode_gns(sentence: Sentence) -> Gns:
    return _decoding(sentence, _gns, 10)


def _gns(talker: str, f: Fields) -> Gns:
    return Gns(
        talker, _time(f, 1), *_position(f, 2), f[6],
        _int(f, 7), _float(f, 8), _float(f, 9),
    )


def decode_gll(sentence: Sentence) -> Gll:
    return _decoding(sentence, _gll, 8)


def _gll(talker: str, f: Fields) -> Gll:
    # lat, N/S, lon, E/W, time (NMEA 2.0+), status, mode indicator (2.3+)
    return Gll(talker, _time(f, 5), *_position(f, 1), f[6], f[7] or None)


def decode_gsa(sentence: Sentence) -> Gsa:
    return _decoding(sentence, _gsa, 19)


def _gsa(talker: str, f: Fields) -> Gsa:
    prns = tuple(prn for prn in (_int(f, number) for number in range(3, 15)) if prn is not None)
    return Gsa(talker, f[1], _int(f, 2), prns, _float(f, 15), _float(f, 16), _float(f, 17), _int(f, 18))


def decode_gsv(sentence: Sentence) -> Gsv:
    # Up to four satellites of four fields each after three header fields, then NMEA 4.1's signal id.
    blocks = max(0, (len(sentence.fields) - 4) // 4)
    return _decoding(sentence, lambda talker, f: _gsv(talker, f, blocks), 5 + 4 * blocks)


def _gsv(talker: str, f: Fields, blocks: int) -> Gsv:
    total, number = _int(f, 1), _int(f, 2)
    if total is None or number is None:
        raise _FieldError(1 if total is None else 2, "a message count")
    satellites = []
    for block in range(blocks):
        first = 4 + 4 * block
        prn = _int(f, first)
        if prn is not None:
            elevation, azimuth, snr = _int(f, first + 1), _int(f, first + 2), _int(f, first + 3)
            satellites.append(SatelliteInView(prn, elevation, azimuth, snr))
    return Gsv(talker, total, number, _int(f, 3), tuple(satellites), f[4 + 4 * blocks] or None)


def decode_vtg(sentence: Sentence) -> Vtg:
    return _decoding(sentence, _vtg, 10)


def _vtg(talker: str, f: Fields) -> Vtg:
    return Vtg(talker, _float(f, 1), _float(f, 3), _float(f, 5), _float(f, 7), f[9] or None)


def decode_zda(sentence: Sentence) -> Zda:
    return _decoding(sentence, _zda, 7)


def _zda(talker: str, f: Fields) -> Zda:
    day, month, year = _int(f, 2), _int(f, 3), _int(f, 4)
    date = None
    if day is not None and month is not None and year is not None:
        try:
            date = dt.date(year, month, day)
        except ValueError:
            raise _FieldError(2, "a day, month and year") from None
    return Zda(talker, _time(f, 1), date)


DECODERS: dict[str, Callable[[Sentence], Decoded]] = {
    "GGA": decode_gga,
    "RMC": decode_rmc,
    "GNS": decode_gns,
    "GLL": decode_gll,
    "GSA": decode_gsa,
    "GSV": decode_gsv,
    "VTG": decode_vtg,
    "ZDA": decode_zda,
}
