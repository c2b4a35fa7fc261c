"""Value objects shared by the pure cores and the services.

Coordinates are kept as float degrees in memory (south and west negative); the ledger stores them as E7 integers.
Times are timezone-aware UTC datetimes; ``None`` marks "not known" (no fix yet, field empty in the sentence).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Clock(Protocol):
    """A source of time, passed into anything that needs it so that cores never read the clock themselves."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    """The real clock; the only place in the package that reads ``time`` for the cores.

    The methods are the ``time`` functions themselves, not Python wrappers around them: the ledger reads the
    wall clock for every record, between a durable write and its fsync."""

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


class Fix(NamedTuple):
    """One position report, from NMEA or ``AT+QGPSLOC``.

    ``valid`` is True only for a measured position; every consumer uses only valid fixes as positions.
    It is False for "no fix" reports (GGA quality 0, RMC status V) and for simulated or manually entered
    ones; such a report carries no position.
    ``source`` names where it came from: the sentence type (``"GGA"``, ``"RMC"``, ``"GNS"``, ``"GLL"``) or
    ``"QGPSLOC"``.

    ``mode`` is the kind of fix, from the NMEA mode indicator (RMC, GLL, GNS, VTG) and GGA's quality (the rules
    are in :mod:`agent.nmea.modes`); ``None`` when the source does not say (``QGPSLOC``; an RMC or GLL from
    before NMEA 2.3 with no GGA beside it):

    - ``"autonomous"`` (A, quality 1), ``"differential"`` (D, 2), ``"precise"`` (P, 3), ``"rtk"`` (R, 4,
      fixed integers), ``"float-rtk"`` (F, 5): measured positions, ``valid`` True.
    - ``"estimated"`` (E, 6): dead reckoning, a real position of lower quality; ``valid`` True, marked so that
      a consumer can weigh it.
    - ``"simulator"`` (S, 8) and ``"manual"`` (M, 7, a position typed in): not measured; ``valid`` False.
    - ``"invalid"`` (N; status V beside A, D or no indicator; quality 0; a value the standard does not
      define): no fix; ``valid`` False.

    An immutable named tuple rather than a frozen dataclass: one is made for every epoch of every NMEA
    stream, and a frozen dataclass takes three times as long to build (one ``object.__setattr__`` per field).
    """

    source: str
    valid: bool
    time: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    altitude_m: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    speed_kmh: float | None = None
    course_deg: float | None = None
    fix_quality: int | None = None  # GGA quality, or QGPSLOC fix type (2 = 2D, 3 = 3D)
    talker: str | None = None
    mode: str | None = None  # see above; last, with a default, so that older constructors keep working


@dataclass(frozen=True, slots=True)
class DeviceIds:
    """The device's identifiers as read at start-up. Personal data: never logged, never uploaded.

    Kept so that the leak check can search outbound payloads for them.
    """

    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    msisdn: str | None = None
    serial: str | None = None

    def values(self) -> tuple[str, ...]:
        """The identifier values that are known, for leak checks."""
        found = (self.imei, self.imsi, self.iccid, self.msisdn, self.serial)
        return tuple(value for value in found if value)


@dataclass(frozen=True, slots=True)
class ModemInfo:
    """What ``ATI``/``AT+QGMR`` say about the module (not personal)."""

    manufacturer: str
    model: str
    revision: str
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class CellInfo:
    """Serving cell as reported by ``AT+QENG="servingcell"`` or ``+CREG/+CEREG``. Location-bearing: personal.

    ``rat`` is ``"LTE"``, ``"GSM"``, ``"WCDMA"``, ``"NR5G-NSA"``, ``"NR5G-SA"``, ``"CAT-M"`` ...
    or None while searching.
    ``cell_id`` and ``area`` (LAC or TAC) are kept as the upper-case hex strings the modem printed.
    """

    state: str | None
    rat: str | None = None
    mcc: int | None = None
    mnc: int | None = None
    cell_id: str | None = None
    area: str | None = None
    pcid: int | None = None
    earfcn: int | None = None
    rsrp: int | None = None
    rsrq: int | None = None
    extra: tuple[tuple[str, object], ...] = ()
