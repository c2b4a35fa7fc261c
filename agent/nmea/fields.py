"""Reading one field of an NMEA sentence: numbers, coordinates, times of day and dates.

Each reader takes the sentence's fields, padded to the sentence's length, and a field number in NMEA numbering
(``fields[0]`` is the address). An empty field reads as ``None``; a field present but unreadable raises
:class:`FieldError`, which names the field and what it should be, never its value (it may be a coordinate).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable
from typing import TypeVar

Fields = list[str]
T = TypeVar("T")


class FieldError(Exception):
    """Field ``number`` is not ``what``; becomes an NmeaError naming the type and talker."""

    def __init__(self, number: int, what: str) -> None:
        super().__init__(number, what)
        self.number = number
        self.what = what


def read_number(fields: Fields, number: int) -> float | None:
    text = fields[number]
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FieldError(number, "a number") from None
    if not math.isfinite(value):
        raise FieldError(number, "a finite number")
    return value


def read_integer(fields: Fields, number: int) -> int | None:
    text = fields[number]
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise FieldError(number, "an unsigned integer")
    return int(text)


def read_position(fields: Fields, number: int) -> tuple[float | None, float | None]:
    """Latitude (fields ``number``, ``number + 1``) and longitude (the next two) as signed degrees."""
    try:
        return parse_position(*fields[number : number + 4])
    except FieldError as error:
        raise FieldError(number + error.number, error.what) from None


# GGA, RMC and GNS of one epoch carry the same position text, so the last few parses are remembered. A pure
# function of the text (errors are not cached), so caching cannot change a result.
@functools.lru_cache(maxsize=8)
def parse_position(lat: str, north_south: str, lon: str, east_west: str) -> tuple[float | None, float | None]:
    """The position in the four fields; a FieldError numbers the field from 0 (latitude) to 3."""
    return _coordinate(lat, north_south, 0, "NS", 90.0), _coordinate(lon, east_west, 2, "EW", 180.0)


def _coordinate(text: str, hemisphere: str, number: int, hemispheres: str, limit: float) -> float | None:
    """``ddmm.mmmm`` (latitude) or ``dddmm.mmmm`` (longitude) plus hemisphere letter, as signed degrees."""
    if not text and not hemisphere:
        return None
    try:
        packed = float(text)
    except ValueError:
        raise FieldError(number, "a coordinate") from None
    if not 0.0 <= packed < 100.0 * (limit + 1):  # also rejects nan and inf
        raise FieldError(number, "a coordinate in range")
    degrees = int(packed // 100)
    minutes = packed - degrees * 100
    value = degrees + minutes / 60.0
    if minutes > 60.0 or value > limit:  # exactly 60 occurs: MTK sends 8960.000000 before its first fix
        raise FieldError(number, "a coordinate in range")
    if hemisphere == hemispheres[1]:
        return -value
    if hemisphere != hemispheres[0]:
        raise FieldError(number + 1, f"{hemispheres[0]} or {hemispheres[1]}")
    return value


def read_time_and_position(fields: Fields, number: int) -> tuple[dt.time | None, float | None, float | None] | None:
    """Field 1's time and the position from field ``number`` on, in one call for the usual sentence; None
    when either is not readable (the field-by-field readers then say which field is at fault)."""
    text = fields[1]
    time = parse_time(text) if text else None
    if time is None and text:
        return None
    try:
        return (time, *parse_position(*fields[number : number + 4]))
    except FieldError:
        return None


def read_time(fields: Fields, number: int) -> dt.time | None:
    """``hhmmss`` with optional fraction."""
    return _read_parsed(fields, number, parse_time, "a time hhmmss.ss")


def read_dmy_date(fields: Fields, number: int) -> dt.date | None:
    """RMC's ``ddmmyy``. Two-digit years: 80-99 are 19xx (GPS began in 1980), the rest 20xx."""
    return _read_parsed(fields, number, _parse_dmy_date, "a date ddmmyy")


def _read_parsed(fields: Fields, number: int, parse: Callable[[str], T | None], what: str) -> T | None:
    """Field ``number`` read by ``parse``, which returns None for text that is not ``what``."""
    text = fields[number]
    if not text:
        return None
    value = parse(text)
    if value is None:
        raise FieldError(number, what)
    return value


# GGA, RMC (and GNS) of one epoch carry the same time and every RMC the same date: remembering the last few
# parses saves a good part of their decoding. Pure functions of the text, so caching cannot change a result.


@functools.lru_cache(maxsize=8)
def parse_time(text: str) -> dt.time | None:
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

