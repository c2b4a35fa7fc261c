"""Typed decoders for the sentences a Quectel module sends: GGA, RMC, GNS, GSA, GSV, VTG, ZDA.

Talker-agnostic: ``$GPGGA``, ``$GNGGA``, ``$BDGGA`` all decode to :class:`Gga` with ``talker`` set. Empty
fields (a receiver without a fix sends ``$GPGGA,,,,,,0,,,,,,,,*66``) decode to ``None``. A field that is
present but cannot be read raises :class:`~agent.errors.NmeaError` naming the sentence type and field number,
never its value (it may be a coordinate). Proprietary sentences decode to :class:`Proprietary`, types without
a decoder to :class:`Unknown`; both keep their raw fields.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import NmeaError
from agent.nmea.reader import Sentence

KNOTS_TO_KMH = 1.852


@dataclass(frozen=True, slots=True)
class Gga:
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


@dataclass(frozen=True, slots=True)
class Rmc:
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


@dataclass(frozen=True, slots=True)
class Gns:
    """Multi-constellation fix data. ``mode`` has one letter per constellation; all ``N`` means no fix."""

    talker: str
    time: dt.time | None
    lat: float | None
    lon: float | None
    mode: str
    satellites: int | None
    hdop: float | None
    altitude_m: float | None


@dataclass(frozen=True, slots=True)
class Gsa:
    """DOP and active satellites. ``fix_type`` 1 none, 2 2D, 3 3D; ``system_id`` is NMEA 4.1's last field."""

    talker: str
    selection: str
    fix_type: int | None
    prns: tuple[int, ...]
    pdop: float | None
    hdop: float | None
    vdop: float | None
    system_id: int | None


@dataclass(frozen=True, slots=True)
class SatelliteInView:
    prn: int
    elevation_deg: int | None
    azimuth_deg: int | None
    snr_db: int | None


@dataclass(frozen=True, slots=True)
class Gsv:
    """One sentence of a satellites-in-view group. ``signal_id`` is NMEA 4.1's last field, if present."""

    talker: str
    total: int
    number: int
    in_view: int | None
    satellites: tuple[SatelliteInView, ...]
    signal_id: str | None


@dataclass(frozen=True, slots=True)
class Vtg:
    """Course and speed over ground."""

    talker: str
    course_true_deg: float | None
    course_magnetic_deg: float | None
    speed_knots: float | None
    speed_kmh: float | None
    mode: str | None


@dataclass(frozen=True, slots=True)
class Zda:
    """UTC time and date."""

    talker: str
    time: dt.time | None
    date: dt.date | None


@dataclass(frozen=True, slots=True)
class Proprietary:
    """A ``$P...`` sentence, passed through untouched (``$PQGSV``, ``$PMTK001``, ``$PGLOR``)."""

    address: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unknown:
    """A standard sentence type without a decoder here (GLL, TXT, GST, ...), passed through untouched."""

    talker: str
    kind: str
    fields: tuple[str, ...]


Decoded = Gga | Rmc | Gns | Gsa | Gsv | Vtg | Zda | Proprietary | Unknown


def decode(sentence: Sentence) -> Decoded:
    """The typed value of a checked sentence; raises NmeaError if a field cannot be read."""
    if sentence.proprietary:
        return Proprietary("P" + sentence.kind, sentence.fields)
    decoder = DECODERS.get(sentence.kind)
    if decoder is None:
        return Unknown(sentence.talker, sentence.kind, sentence.fields)
    return decoder(sentence)


# -- field readers -------------------------------------------------------------------------------------------
# Each takes the sentence (for the error message and talker) and a field number.


def _field(sentence: Sentence, number: int) -> str:
    """Field ``number``, or "" if the sentence is shorter (receivers omit trailing empty fields)."""
    fields = sentence.fields
    return fields[number] if number < len(fields) else ""


def _bad(sentence: Sentence, number: int, what: str) -> NmeaError:
    return NmeaError(f"{sentence.kind} field {number} is not {what}", talker=sentence.talker)


def _float(sentence: Sentence, number: int) -> float | None:
    text = _field(sentence, number)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _bad(sentence, number, "a number") from None
    if not math.isfinite(value):
        raise _bad(sentence, number, "a finite number")
    return value


def _int(sentence: Sentence, number: int) -> int | None:
    text = _field(sentence, number)
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise _bad(sentence, number, "an unsigned integer")
    return int(text)


def _text(sentence: Sentence, number: int) -> str | None:
    return _field(sentence, number) or None


def _coordinate(sentence: Sentence, number: int, hemispheres: str, limit: float) -> float | None:
    """``ddmm.mmmm`` (latitude) or ``dddmm.mmmm`` (longitude) plus hemisphere letter, as signed degrees."""
    text = _field(sentence, number)
    hemisphere = _field(sentence, number + 1)
    if not text and not hemisphere:
        return None
    try:
        packed = float(text)
    except ValueError:
        raise _bad(sentence, number, "a coordinate") from None
    if not 0.0 <= packed < 100.0 * (limit + 1):  # also rejects nan and inf
        raise _bad(sentence, number, "a coordinate in range")
    degrees = int(packed // 100)
    minutes = packed - degrees * 100
    value = degrees + minutes / 60.0
    if minutes > 60.0 or value > limit:  # exactly 60 occurs: MTK sends 8960.000000 before its first fix
        raise _bad(sentence, number, "a coordinate in range")
    if hemisphere == hemispheres[1]:
        return -value
    if hemisphere != hemispheres[0]:
        raise _bad(sentence, number + 1, f"{hemispheres[0]} or {hemispheres[1]}")
    return value


def _time(sentence: Sentence, number: int) -> dt.time | None:
    """``hhmmss`` with optional fraction."""
    text = _field(sentence, number)
    if not text:
        return None
    if len(text) < 6 or not text[:6].isdigit() or not text.isascii():
        raise _bad(sentence, number, "a time hhmmss.ss")
    try:
        whole, micro = divmod(round(float(text[4:]) * 1_000_000), 1_000_000)
        return dt.time(int(text[0:2]), int(text[2:4]), whole, micro)
    except (ValueError, OverflowError):  # hour 24, minute 61, or a leap second (datetime cannot hold 60)
        raise _bad(sentence, number, "a time hhmmss.ss") from None


def _dmy_date(sentence: Sentence, number: int) -> dt.date | None:
    """RMC's ``ddmmyy``. Two-digit years: 80-99 are 19xx (GPS began in 1980), the rest 20xx."""
    text = _field(sentence, number)
    if not text:
        return None
    if len(text) != 6 or not text.isdigit() or not text.isascii():
        raise _bad(sentence, number, "a date ddmmyy")
    year = int(text[4:6])
    year += 1900 if year >= 80 else 2000
    try:
        return dt.date(year, int(text[2:4]), int(text[0:2]))
    except ValueError:
        raise _bad(sentence, number, "a date ddmmyy") from None


# -- decoders ------------------------------------------------------------------------------------------------


def decode_gga(sentence: Sentence) -> Gga:
    return Gga(
        talker=sentence.talker,
        time=_time(sentence, 1),
        lat=_coordinate(sentence, 2, "NS", 90.0),
        lon=_coordinate(sentence, 4, "EW", 180.0),
        quality=_int(sentence, 6),
        satellites=_int(sentence, 7),
        hdop=_float(sentence, 8),
        altitude_m=_float(sentence, 9),
        geoid_separation_m=_float(sentence, 11),
    )


def decode_rmc(sentence: Sentence) -> Rmc:
    return Rmc(
        talker=sentence.talker,
        time=_time(sentence, 1),
        status=_field(sentence, 2),
        lat=_coordinate(sentence, 3, "NS", 90.0),
        lon=_coordinate(sentence, 5, "EW", 180.0),
        speed_knots=_float(sentence, 7),
        course_deg=_float(sentence, 8),
        date=_dmy_date(sentence, 9),
        mode=_text(sentence, 12),
    )


def decode_gns(sentence: Sentence) -> Gns:
    return Gns(
        talker=sentence.talker,
        time=_time(sentence, 1),
        lat=_coordinate(sentence, 2, "NS", 90.0),
        lon=_coordinate(sentence, 4, "EW", 180.0),
        mode=_field(sentence, 6),
        satellites=_int(sentence, 7),
        hdop=_float(sentence, 8),
        altitude_m=_float(sentence, 9),
    )


def decode_gsa(sentence: Sentence) -> Gsa:
    prns = tuple(prn for prn in (_int(sentence, number) for number in range(3, 15)) if prn is not None)
    return Gsa(
        talker=sentence.talker,
        selection=_field(sentence, 1),
        fix_type=_int(sentence, 2),
        prns=prns,
        pdop=_float(sentence, 15),
        hdop=_float(sentence, 16),
        vdop=_float(sentence, 17),
        system_id=_int(sentence, 18),
    )


def decode_gsv(sentence: Sentence) -> Gsv:
    total, number = _int(sentence, 1), _int(sentence, 2)
    if total is None or number is None:
        raise _bad(sentence, 1 if total is None else 2, "a message count")
    blocks = (len(sentence.fields) - 4) // 4  # four fields per satellite after the three header fields
    satellites = []
    for block in range(blocks):
        first = 4 + 4 * block
        prn = _int(sentence, first)
        if prn is None:
            continue
        elevation, azimuth, snr = (_int(sentence, first + offset) for offset in (1, 2, 3))
        satellites.append(SatelliteInView(prn, elevation, azimuth, snr))
    signal_field = 4 + 4 * blocks
    return Gsv(
        talker=sentence.talker,
        total=total,
        number=number,
        in_view=_int(sentence, 3),
        satellites=tuple(satellites),
        signal_id=_text(sentence, signal_field),
    )


def decode_vtg(sentence: Sentence) -> Vtg:
    return Vtg(
        talker=sentence.talker,
        course_true_deg=_float(sentence, 1),
        course_magnetic_deg=_float(sentence, 3),
        speed_knots=_float(sentence, 5),
        speed_kmh=_float(sentence, 7),
        mode=_text(sentence, 9),
    )


def decode_zda(sentence: Sentence) -> Zda:
    day, month, year = _int(sentence, 2), _int(sentence, 3), _int(sentence, 4)
    date = None
    if day is not None and month is not None and year is not None:
        try:
            date = dt.date(year, month, day)
        except ValueError:
            raise _bad(sentence, 2, "a day, month and year") from None
    return Zda(talker=sentence.talker, time=_time(sentence, 1), date=date)


DECODERS: dict[str, Callable[[Sentence], Decoded]] = {
    "GGA": decode_gga,
    "RMC": decode_rmc,
    "GNS": decode_gns,
    "GSA": decode_gsa,
    "GSV": decode_gsv,
    "VTG": decode_vtg,
    "ZDA": decode_zda,
}
