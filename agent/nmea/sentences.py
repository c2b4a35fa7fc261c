"""Typed decoders for the sentences a Quectel module sends: GGA, RMC, GNS, GLL, GSA, GSV, VTG, ZDA.

Decoded values are immutable named tuples: they are made for every sentence read, and a tuple is the cheapest
immutable record CPython has. Talker-agnostic: ``$GPGGA``, ``$GNGGA``, ``$BDGGA`` all decode to :class:`Gga`
with ``talker`` set. Empty fields (a receiver without a fix sends ``$GPGGA,,,,,,0,,,,,,,,*66``) decode to
``None``. A field that is present but cannot be read raises :class:`~agent.errors.NmeaError` naming the
sentence type and field number, never its value (it may be a coordinate). Proprietary sentences decode to
:class:`Proprietary`, types without a decoder to :class:`Unknown`; both keep their raw fields. Reading a
single field (numbers, coordinates, times, dates) is :mod:`agent.nmea.fields`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from agent.errors import NmeaError
from agent.nmea.fields import (
    FieldError,
    Fields,
    read_dmy_date,
    read_integer,
    read_number,
    read_position,
    read_time,
    read_time_and_position,
)
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


T = TypeVar("T")


def _decoding(sentence: Sentence, build: Callable[[str, Fields], T], count: int) -> T:
    """Split the body once, pad it to ``count`` fields (receivers omit trailing empty ones), build."""
    fields = sentence.body.split(",")
    if len(fields) < count:
        fields += [""] * (count - len(fields))
    try:
        return build(sentence.talker, fields)
    except FieldError as error:
        message = f"{sentence.kind} field {error.number} is not {error.what}"
        raise NmeaError(message, talker=sentence.talker) from None


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
                found = read_time_and_position(f, 2)
                if found is not None:
                    return Gga(talker, *found, int(quality), int(satellites), hdop, altitude, geoid)
    return Gga(talker, read_time(f, 1), *read_position(f, 2), read_integer(f, 6), read_integer(f, 7),
               read_number(f, 8), read_number(f, 9), read_number(f, 11))


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
        speed, course = read_number(f, 7), read_number(f, 8)
    found = read_time_and_position(f, 3)
    time, lat, lon = (read_time(f, 1), *read_position(f, 3)) if found is None else found
    return Rmc(talker, time, f[2], lat, lon, speed, course, read_dmy_date(f, 9), f[12] or None)


def decode_gns(sentence: Sentence) -> Gns:
    return _decoding(sentence, _gns, 10)


def _gns(talker: str, f: Fields) -> Gns:
    return Gns(
        talker, read_time(f, 1), *read_position(f, 2), f[6],
        read_integer(f, 7), read_number(f, 8), read_number(f, 9),
    )


def decode_gll(sentence: Sentence) -> Gll:
    return _decoding(sentence, _gll, 8)


def _gll(talker: str, f: Fields) -> Gll:
    # lat, N/S, lon, E/W, time (NMEA 2.0+), status, mode indicator (2.3+)
    return Gll(talker, read_time(f, 5), *read_position(f, 1), f[6], f[7] or None)


def decode_gsa(sentence: Sentence) -> Gsa:
    return _decoding(sentence, _gsa, 19)


def _gsa(talker: str, f: Fields) -> Gsa:
    prns = tuple(prn for prn in (read_integer(f, number) for number in range(3, 15)) if prn is not None)
    return Gsa(talker, f[1], read_integer(f, 2), prns, read_number(f, 15), read_number(f, 16), read_number(f, 17),
               read_integer(f, 18))


def decode_gsv(sentence: Sentence) -> Gsv:
    # Up to four satellites of four fields each after three header fields, then NMEA 4.1's signal id.
    blocks = max(0, (len(sentence.fields) - 4) // 4)
    return _decoding(sentence, lambda talker, f: _gsv(talker, f, blocks), 5 + 4 * blocks)


def _gsv(talker: str, f: Fields, blocks: int) -> Gsv:
    total, number = read_integer(f, 1), read_integer(f, 2)
    if total is None or number is None:
        raise FieldError(1 if total is None else 2, "a message count")
    satellites = []
    for block in range(blocks):
        first = 4 + 4 * block
        prn = read_integer(f, first)
        if prn is not None:
            elevation, azimuth, snr = (read_integer(f, first + number) for number in (1, 2, 3))
            satellites.append(SatelliteInView(prn, elevation, azimuth, snr))
    return Gsv(talker, total, number, read_integer(f, 3), tuple(satellites), f[4 + 4 * blocks] or None)


def decode_vtg(sentence: Sentence) -> Vtg:
    return _decoding(sentence, _vtg, 10)


def _vtg(talker: str, f: Fields) -> Vtg:
    return Vtg(talker, read_number(f, 1), read_number(f, 3), read_number(f, 5), read_number(f, 7), f[9] or None)


def decode_zda(sentence: Sentence) -> Zda:
    return _decoding(sentence, _zda, 7)


def _zda(talker: str, f: Fields) -> Zda:
    day, month, year = read_integer(f, 2), read_integer(f, 3), read_integer(f, 4)
    date = None
    if day is not None and month is not None and year is not None:
        try:
            date = dt.date(year, month, day)
        except ValueError:
            raise FieldError(2, "a day, month and year") from None
    return Zda(talker, read_time(f, 1), date)


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
