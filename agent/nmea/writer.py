"""NMEA 0183 sentences out (pure): GGA and RMC built from an already coarsened epoch, with their checksums.

The local feed re-emits sentences from coarsened values instead of filtering the receiver's own sentences: a
sentence built from scratch holds only what :class:`FeedEpoch` holds, so nothing of the raw sentence (its exact
position, time fraction, proprietary fields, satellite ids, receiver quirks) can leak through a field the filter
forgot. Only two sentence types are written, which is what gpsd, chrony (through gpsd) and most fleet programs
need for a position and a date: ``$GPGGA`` (time, position, and where allowed satellites in use, HDOP and
altitude) and ``$GPRMC`` (time, status, position, and where allowed speed and course, date, mode ``A``).
The quality is always 1 (a GPS fix) and the mode always ``A``: an RTK or differential mark would say how precise
the true position was.

Coordinates are written with exactly as many digits as the grid's output has (``decimals`` of a degree, from
:func:`agent.privacy.coarsen.decimals_for`): ``decimals`` decimals of a degree are exactly ``decimals - 1``
decimals of a minute (0.0001 degree = 0.006 minute), computed in integers so the text is never finer than the
coarsened value and never a float artefact. An empty field stands for a value the purpose does not allow.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import NamedTuple

from agent.nmea.checksum import nmea_checksum

KMH_PER_KNOT = 1.852
TALKER = "GP"


class FeedEpoch(NamedTuple):
    """One epoch for a local reader: already coarsened, cut and stripped to what the purpose allows."""

    time: dt.datetime  # UTC, already cut to the purpose's time bucket
    lat: float  # the coarsened position, already rounded to ``decimals`` of a degree
    lon: float
    decimals: int
    altitude_m: int | None = None
    speed_kmh: int | None = None
    course_deg: int | None = None
    satellites: int | None = None
    hdop: float | None = None


def sentence(body: str) -> bytes:
    """``$<body>*HH`` and CR LF: one complete sentence with its checksum recomputed."""
    return f"${body}*{nmea_checksum(body):02X}\r\n".encode("ascii")


def angle(value: float, decimals: int, degree_digits: int, hemispheres: str) -> tuple[str, str]:
    """(``dddmm.mmm``, hemisphere letter) for ``value`` degrees given to ``decimals`` decimals.

    ``degree_digits`` is 2 for latitude, 3 for longitude; ``hemispheres`` is ``"NS"`` or ``"EW"``."""
    if not math.isfinite(value) or not 0 <= decimals <= 9:
        raise ValueError("angle needs a finite value and 0..9 decimals")
    scale = 10 ** decimals
    units = round(abs(value) * scale)
    degrees, rest = divmod(units, scale)
    minute_decimals = max(decimals - 1, 1)
    # rest / scale degrees = rest * 60 / 10**decimals minutes = rest * 6 / 10**(decimals - 1) minutes
    minutes_scaled = rest * 6 * 10 ** (minute_decimals - (decimals - 1)) if decimals else 0
    whole, fraction = divmod(minutes_scaled, 10 ** minute_decimals)
    text = f"{degrees:0{degree_digits}d}{whole:02d}.{fraction:0{minute_decimals}d}"
    return text, hemispheres[0] if value >= 0 or units == 0 else hemispheres[1]


def _optional(value: float | None, template: str) -> str:
    return "" if value is None else template.format(value)


def _time_of_day(moment: dt.datetime) -> str:
    return moment.strftime("%H%M%S") + f".{moment.microsecond // 10_000:02d}"


def gga(epoch: FeedEpoch) -> bytes:
    lat, ns = angle(epoch.lat, epoch.decimals, 2, "NS")
    lon, ew = angle(epoch.lon, epoch.decimals, 3, "EW")
    fields = [f"{TALKER}GGA", _time_of_day(epoch.time), lat, ns, lon, ew, "1",
              _optional(epoch.satellites, "{:02d}"), _optional(epoch.hdop, "{:.1f}"),
              _optional(epoch.altitude_m, "{:d}"), "" if epoch.altitude_m is None else "M", "", "", "", ""]
    return sentence(",".join(fields))


def rmc(epoch: FeedEpoch) -> bytes:
    lat, ns = angle(epoch.lat, epoch.decimals, 2, "NS")
    lon, ew = angle(epoch.lon, epoch.decimals, 3, "EW")
    knots = None if epoch.speed_kmh is None else epoch.speed_kmh / KMH_PER_KNOT
    fields = [f"{TALKER}RMC", _time_of_day(epoch.time), "A", lat, ns, lon, ew, _optional(knots, "{:.1f}"),
              _optional(epoch.course_deg, "{:d}"), epoch.time.strftime("%d%m%y"), "", "", "A"]
    return sentence(",".join(fields))


def sentences(epoch: FeedEpoch) -> bytes:
    """Every sentence of one epoch, in the order a receiver sends them (GGA then RMC)."""
    if epoch.time.tzinfo is None or epoch.time.utcoffset() != dt.timedelta(0):
        raise ValueError("a feed epoch's time must be UTC")
    return gga(epoch) + rmc(epoch)
