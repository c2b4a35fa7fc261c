"""What the simulated module prints: NMEA bursts in the EC25 style and ``+QGPSLOC`` payloads in modes 0/1/2.

Pure formatting; the modem decides what to print and when.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from agent.nmea.checksum import with_checksum
from agent.sim.identity import Satellite, TrackPoint

GGA, RMC, GSV, GSA, VTG = 1, 2, 4, 8, 16  # gpsnmeatype bits
_MAGNETIC_VARIATION = 2.1  # degrees east; a constant is enough for a simulator
_GEOID_SEPARATION = 37.0
_KNOTS_PER_KMH = 1 / 1.852

# Before the first fix the EC21/EC25 print these empty sentences (reference 1.8, captured bodies).
_EMPTY = {
    GGA: "GPGGA,,,,,,0,,,,,,,,",
    VTG: "GPVTG,,T,,M,,N,,K,N",
    RMC: "GPRMC,,V,,,,,,,,,,N",
    GSA: "GPGSA,A,1,,,,,,,,,,,,,,,,",
}
_ORDER = (GGA, VTG, RMC, GSA, GSV)  # the order of one burst in the EC25 capture


def utc(wall: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall, tz=dt.UTC)


def hhmmss(wall: float, decimals: int) -> str:
    moment = utc(wall)
    fraction = f"{moment.microsecond / 1e6:.{decimals}f}"[1:]  # ".00"
    return moment.strftime("%H%M%S") + fraction


def ddmmyy(wall: float) -> str:
    return utc(wall).strftime("%d%m%y")


def degrees_minutes(value: float, degree_digits: int, decimals: int) -> str:
    """``ddmm.mmmm`` for latitude (2 degree digits) or ``dddmm.mmmm`` (3); never 60 minutes."""
    scale = 10**decimals
    total = round(abs(value) * 60 * scale)  # in units of the last minute digit
    degrees, minute_units = divmod(total, 60 * scale)
    whole, fraction = divmod(minute_units, scale)
    return f"{degrees:0{degree_digits}d}{whole:02d}.{fraction:0{decimals}d}"


def hemisphere(value: float, positive: str, negative: str) -> str:
    return positive if value >= 0 else negative


def course_ddd_mm(course: float) -> str:
    """Course over ground as the QGPSLOC ``ddd.mm`` (degrees, then minutes), as in ``188.18``."""
    minutes_total = round(course * 60) % (360 * 60)
    degrees, minutes = divmod(minutes_total, 60)
    return f"{degrees}.{minutes:02d}"


def qgpsloc_payload(point: TrackPoint, wall: float, mode: int) -> str:
    """The text after ``+QGPSLOC: `` for ``AT+QGPSLOC=<mode>`` (mode 0, 1 or 2)."""
    if mode == 0:
        position = (
            degrees_minutes(point.lat, 2, 4)
            + hemisphere(point.lat, "N", "S")
            + ","
            + degrees_minutes(point.lon, 3, 4)
            + hemisphere(point.lon, "E", "W")
        )
    elif mode == 1:
        position = (
            f"{degrees_minutes(point.lat, 2, 6)},{hemisphere(point.lat, 'N', 'S')},"
            f"{degrees_minutes(point.lon, 3, 6)},{hemisphere(point.lon, 'E', 'W')}"
        )
    elif mode == 2:
        position = f"{_from_mode0(point.lat):.5f},{_from_mode0(point.lon):.5f}"
    else:
        raise ValueError("QGPSLOC mode must be 0, 1 or 2")
    return (
        f"{hhmmss(wall, 1)},{position},{point.hdop:.1f},{point.altitude_m:.1f},{point.fix_type},"
        f"{course_ddd_mm(point.course_deg)},{point.speed_kmh:.1f},{point.speed_kmh * _KNOTS_PER_KMH:.1f},"
        f"{ddmmyy(wall)},{point.satellites:02d}"
    )


def _from_mode0(value: float) -> float:
    """Decimal degrees as the BG96 derives them: from the 4-decimal minutes of mode 0 (transcript 4.7 shows
    -122.10232 for 12206.139526W, which only the rounded minutes explain)."""
    text = degrees_minutes(value, 3, 4)  # dddmm.mmmm
    result = int(text[:3]) + float(text[3:]) / 60
    return -result if value < 0 else result


QGPSLOC_TEMPLATE = "<UTC>,<latitude>,<longitude>,<hdop>,<altitude>,<fix>,<cog>,<spkm>,<spkn>,<date>,<nsat>"


def _position_fields(point: TrackPoint) -> str:
    return (
        f"{degrees_minutes(point.lat, 2, 6)},{hemisphere(point.lat, 'N', 'S')},"
        f"{degrees_minutes(point.lon, 3, 6)},{hemisphere(point.lon, 'E', 'W')}"
    )


def gga(point: TrackPoint, wall: float) -> str:
    return with_checksum(
        f"GPGGA,{hhmmss(wall, 2)},{_position_fields(point)},1,{point.satellites:02d},"
        f"{point.hdop:.1f},{point.altitude_m:.1f},M,{_GEOID_SEPARATION:.1f},M,,"
    )


def vtg(point: TrackPoint) -> str:
    magnetic = (point.course_deg - _MAGNETIC_VARIATION) % 360
    return with_checksum(
        f"GPVTG,{point.course_deg:.1f},T,{magnetic:.1f},M,{point.speed_kmh * _KNOTS_PER_KMH:.1f},N,"
        f"{point.speed_kmh:.1f},K,A"
    )


def rmc(point: TrackPoint, wall: float) -> str:
    return with_checksum(
        f"GPRMC,{hhmmss(wall, 2)},A,{_position_fields(point)},"
        f"{point.speed_kmh * _KNOTS_PER_KMH:.1f},{point.course_deg:.1f},{ddmmyy(wall)},"
        f"{_MAGNETIC_VARIATION:.1f},E,A,V"
    )


def gsa(point: TrackPoint, sky: Sequence[Satellite]) -> str:
    used = [f"{sat.prn:02d}" for sat in sky[: point.satellites]][:12]
    slots = ",".join(used + [""] * (12 - len(used)))
    vdop = round(point.hdop * 0.8, 1)
    pdop = round((point.hdop**2 + vdop**2) ** 0.5, 1)
    return with_checksum(f"GPGSA,A,3,{slots},{pdop:.1f},{point.hdop:.1f},{vdop:.1f},1")


def gsv(sky: Sequence[Satellite], with_snr: bool) -> list[str]:
    total = (len(sky) + 3) // 4
    sentences = []
    for index in range(total):
        group = sky[index * 4 : index * 4 + 4]
        fields = ",".join(
            f"{sat.prn:02d},{sat.elevation:02d},{sat.azimuth:03d},{sat.snr if with_snr else ''}"
            for sat in group
        )
        sentences.append(with_checksum(f"GPGSV,{total},{index + 1},{len(sky):02d},{fields},1"))
    return sentences


def burst(
    point: TrackPoint | None, wall: float, sky: Sequence[Satellite], mask: int, sky_seen: bool
) -> list[str]:
    """One second's sentences; ``point`` None means no fix yet (empty sentences; GSV once satellites show)."""
    sentences: list[str] = []
    for kind in _ORDER:
        if not mask & kind:
            continue
        if kind == GSV:
            if point is not None or sky_seen:
                sentences.extend(gsv(sky, with_snr=point is not None))
        elif point is None:
            sentences.append(with_checksum(_EMPTY[kind]))
        elif kind == GGA:
            sentences.append(gga(point, wall))
        elif kind == VTG:
            sentences.append(vtg(point))
        elif kind == RMC:
            sentences.append(rmc(point, wall))
        else:
            sentences.append(gsa(point, sky))
    return sentences


def single_sentence(kind: str, point: TrackPoint | None, wall: float, sky: Sequence[Satellite]) -> list[str]:
    """``AT+QGPSGNMEA="<kind>"``: the current sentence(s) of one type (GSV may be several)."""
    bits = {"GGA": GGA, "RMC": RMC, "GSV": GSV, "GSA": GSA, "VTG": VTG}[kind]
    return burst(point, wall, sky, bits, sky_seen=True)
