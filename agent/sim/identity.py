"""Deterministic identity and whereabouts of a simulated module, all derived from one seed.

The identifiers look real (an IMEI with a valid Luhn digit, a 15-digit IMSI, a 20-character ICCID) so that
parsers and the leak check are exercised as on hardware, but they are made up from the
seed and name no real device.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from agent.errors import UsageError


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a model says about itself (ATI, GMR, QGMR)."""

    name: str
    revision: str
    firmware: str
    tac: str  # first eight IMEI digits (type allocation code)


MODELS: dict[str, ModelProfile] = {
    "ec25": ModelProfile("EC25", "EC25EFAR06A08M4G", "EC25EFAR06A08M4G_01.002.01.002", "86153603"),
    "eg25": ModelProfile("EG25", "EG25GGBR07A08M2G", "EG25GGBR07A08M2G_01.003.01.003", "86367104"),
    "bg96": ModelProfile("BG96", "BG96MAR02A07M1G", "BG96MAR02A07M1G_01.016.01.016", "86643503"),
    "bg95": ModelProfile("BG95-M3", "BG95M3LAR02A03", "BG95M3LAR02A03_01.012.01.012", "86758304"),
    "rm500q": ModelProfile("RM500Q-GL", "RM500QGLABR11A06M4G", "RM500QGLABR11A06M4G_01.001.01.001", "86681504"),
    # An ASR/Unisoc module (reference 3); the strings follow the Qualcomm ones' pattern (U).
    "ec200u": ModelProfile("EC200U", "EC200UCNAAR03A03M08", "EC200UCNAAR03A03M08_01.200.01.200", "86946505"),
}
MODEL_ALIASES = {"eg25-g": "eg25", "eg25g": "eg25", "ec200u-cn": "ec200u"}


def model_profile(model: str) -> ModelProfile:
    """The profile of ``model`` (case-insensitive); an unknown model is a usage error naming the choices."""
    key = MODEL_ALIASES.get(model.lower(), model.lower())
    if key not in MODELS:
        raise UsageError("unknown simulated modem model", model=model, known=sorted(MODELS))
    return MODELS[key]


@dataclass(frozen=True, slots=True)
class Place:
    """A plausible place for the simulated device: the network it is on and where it walks."""

    mcc: int
    mnc: str
    msisdn_prefix: str
    lat: float
    lon: float
    altitude_m: float


# One place per hemisphere combination, so that every N/S/E/W formatting path gets used by some seed.
PLACES = (
    Place(262, "01", "+49151", 48.13743, 11.57549, 519.0),  # Munich: N, E
    Place(530, "01", "+6421", -36.84846, 174.76334, 56.0),  # Auckland: S, E
    Place(310, "260", "+1916", 38.57667, -121.49361, 9.0),  # Sacramento: N, W
    Place(724, "05", "+5511", -23.55052, -46.63331, 760.0),  # Sao Paulo: S, W
)


def luhn_digit(digits: str) -> str:
    """The Luhn check digit that makes ``digits + digit`` pass the Luhn test (used by IMEI and ICCID)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # doubled positions, counted from the digit next to the check digit
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    if len(number) < 2 or not (number.isascii() and number.isdigit()):
        return False
    return luhn_digit(number[:-1]) == number[-1]


@dataclass(frozen=True, slots=True)
class Identity:
    imei: str
    imsi: str
    iccid: str
    msisdn: str
    lac: str
    tac: str
    cell_id: str
    pcid: int
    earfcn: int


def _digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(count))


def make_identity(profile: ModelProfile, place: Place, rng: random.Random) -> Identity:
    body = profile.tac + _digits(rng, 6)
    iccid_body = "89" + _digits(rng, 17)
    return Identity(
        imei=body + luhn_digit(body),
        imsi=f"{place.mcc}{place.mnc}" + _digits(rng, 15 - 3 - len(place.mnc)),
        iccid=iccid_body + luhn_digit(iccid_body),
        msisdn=place.msisdn_prefix + _digits(rng, 13 - len(place.msisdn_prefix)),
        lac=f"{rng.randrange(0x1000, 0x10000):04X}",
        tac=f"{rng.randrange(0x1000, 0x10000):04X}",
        cell_id=f"{rng.randrange(0x1000000, 0x10000000):07X}",
        pcid=rng.randrange(0, 504),
        earfcn=rng.choice((100, 1300, 1850, 2850, 3350, 6300)),
    )


@dataclass(frozen=True, slots=True)
class AccessPoint:
    """A Wi-Fi access point near the simulated device, as ``AT+QWIFISCAN`` reports it (reference 3)."""

    bssid: str  # "C2:28:35:00:00:01": upper-case hex, colon-separated
    rssi: int  # dBm
    channel: int


def make_access_points(rng: random.Random) -> tuple[AccessPoint, ...]:
    """Three to six access points, strongest first (U: the order a scan reports them in).

    Every BSSID has the locally administered bit set and the group bit clear, as the reference's example
    ``C2:...`` has: such an address belongs to no vendor, so the made-up ones name no real device. Channels are
    2.4 GHz ones (U: the scan's band).
    """
    count = rng.randint(3, 6)
    bssids: list[str] = []
    while len(bssids) < count:
        octets = [rng.randrange(256) for _ in range(6)]
        octets[0] = (octets[0] | 0x02) & ~0x01
        bssid = ":".join(f"{octet:02X}" for octet in octets)
        if bssid not in bssids:
            bssids.append(bssid)
    points = [AccessPoint(bssid, -rng.randint(30, 90), rng.randint(1, 13)) for bssid in bssids]
    return tuple(sorted(points, key=lambda point: -point.rssi))


@dataclass(frozen=True, slots=True)
class Satellite:
    prn: int
    elevation: int
    azimuth: int
    snr: int


def make_sky(rng: random.Random) -> tuple[Satellite, ...]:
    prns = sorted(rng.sample(range(1, 33), 11))
    return tuple(
        Satellite(prn, rng.randrange(5, 85), rng.randrange(0, 360), rng.randrange(22, 48)) for prn in prns
    )


@dataclass(frozen=True, slots=True)
class TrackPoint:
    lat: float
    lon: float
    altitude_m: float
    speed_kmh: float
    course_deg: float
    hdop: float
    satellites: int
    fix_type: int = 3  # QGPSLOC <fix>: 2 = 2D, 3 = 3D


_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True, slots=True)
class Track:
    """A slow walk around a circle (radius ``radius_m``) around the place: bounded, so plausible forever."""

    place: Place
    radius_m: float
    speed_ms: float
    phase: float
    wall_origin: float

    def at(self, wall: float) -> TrackPoint:
        elapsed = wall - self.wall_origin
        angle = self.phase + elapsed * self.speed_ms / self.radius_m
        north = self.radius_m * math.cos(angle)
        east = self.radius_m * math.sin(angle)
        lat = self.place.lat + north / _METRES_PER_DEGREE
        lon = self.place.lon + east / (_METRES_PER_DEGREE * math.cos(math.radians(self.place.lat)))
        # The position runs clockwise (north, then east), so the heading is a quarter turn ahead of the angle.
        course = (math.degrees(angle) + 90.0) % 360.0
        second = int(elapsed)
        return TrackPoint(
            lat=lat,
            lon=lon,
            altitude_m=round(self.place.altitude_m + 2.0 * math.sin(elapsed / 60.0), 1),
            speed_kmh=self.speed_ms * 3.6,
            course_deg=course,
            hdop=round(0.8 + 0.1 * (second % 5), 1),
            satellites=8 + second % 3,
        )


def make_track(place: Place, rng: random.Random, wall_origin: float) -> Track:
    return Track(
        place,
        radius_m=rng.uniform(150.0, 300.0),
        speed_ms=rng.uniform(1.0, 1.6),
        phase=rng.uniform(0.0, 2 * math.pi),
        wall_origin=wall_origin,
    )
