"""De-identification: one fix, one purpose -> the upload object, holding only what the purpose allows.

Strategy: build the object from scratch (an allow-list, never a copy with fields removed). Every object has
``id``, ``purpose``, ``pseudonym``, ``t`` (the fix time floored to the purpose's bucket, ISO 8601 UTC with "Z"),
``lat``/``lon`` (coarsened by the given coarsener to the purpose's grid, in degrees) and ``accuracy_m``. Extra
fields appear only when the purpose lists them and the fix has them:

============  ===============================================================================
altitude      ``altitude_m``, whole metres
speed         ``speed_kmh``, whole km/h
course        ``course_deg``, whole degrees
satellites    ``satellites``, the count in use
hdop          ``hdop``, one decimal
cell          ``cell``: ``rat``, ``mcc``, ``mnc`` only (the network, not the cell)
============  ===============================================================================

Cell IDs, LAC/TAC, PCI and EARFCN are never included, whatever a purpose says: invariant 3 forbids cell IDs and
LAC/TAC in any upload, and PCI + EARFCN name a cell just as well. Device identifiers (IMEI, IMSI, ICCID, MSISDN,
serial, MAC) are not inputs here at all. The accuracy fed to the coarsener is the fix's HDOP times a 5 m user
range error, when the fix has an HDOP.

An exception purpose never carries location, so it gets no object (:class:`PolicyError`); a fix without a valid
position or time is refused with :class:`UsageError`. :func:`serialize` gives the bytes that leave the device.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

from agent.errors import PolicyError, UsageError
from agent.model import CellInfo, Fix
from agent.privacy.coarsen import Coarsener, bucket_time
from agent.privacy.policy import Purpose

UERE_M = 5.0  # typical GNSS user range error: accuracy ~ HDOP x UERE
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def deidentify(fix: Fix, purpose: Purpose, *, coarsener: Coarsener, pseudonym: str, message_id: str,
               cell: CellInfo | None = None) -> dict[str, object]:
    """The upload object for ``fix`` under ``purpose`` (see the module docstring)."""
    if purpose.is_exception:
        raise PolicyError("an exception purpose never carries location", purpose=purpose.name)
    if not _PSEUDONYM.fullmatch(pseudonym):
        raise UsageError("the pseudonym must be 32 lower-case hex characters")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise UsageError("the message id must be 1-64 characters: letters, digits and . _ : -")
    lat, lon = _position(fix)
    bucket = bucket_time(_time(fix), purpose.time_bucket_s)
    original_accuracy = fix.hdop * UERE_M if fix.hdop is not None and math.isfinite(fix.hdop) else None
    coarse = coarsener.coarsen(lat, lon, purpose.grid_m, original_accuracy)
    payload: dict[str, object] = {
        "id": message_id,
        "purpose": purpose.name,
        "pseudonym": pseudonym,
        "t": bucket.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lat": coarse.lat,
        "lon": coarse.lon,
        "accuracy_m": coarse.accuracy_m,
    }
    payload.update(_allowed_extras(fix, purpose.fields, cell))
    return payload


def _position(fix: Fix) -> tuple[float, float]:
    lat, lon = fix.lat, fix.lon
    if not fix.valid or lat is None or lon is None:
        raise UsageError("the fix has no valid position")
    if not (math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise UsageError("the fix's position is out of range")
    return lat, lon


def _time(fix: Fix) -> dt.datetime:
    if fix.time is None or fix.time.tzinfo is None or fix.time.utcoffset() is None:
        raise UsageError("the fix has no valid UTC time")
    return fix.time


def _whole(value: float | None) -> int | None:
    return round(value) if value is not None and math.isfinite(value) else None


def _allowed_extras(fix: Fix, fields: tuple[str, ...], cell: CellInfo | None) -> dict[str, object]:
    hdop = round(fix.hdop, 1) if fix.hdop is not None and math.isfinite(fix.hdop) else None
    candidates: dict[str, tuple[str, object]] = {
        "altitude": ("altitude_m", _whole(fix.altitude_m)),
        "speed": ("speed_kmh", _whole(fix.speed_kmh)),
        "course": ("course_deg", _whole(fix.course_deg)),
        "satellites": ("satellites", fix.satellites),
        "hdop": ("hdop", hdop),
        "cell": ("cell", _network_only(cell)),
    }
    extras: dict[str, object] = {}
    for field_name in fields:
        key, value = candidates[field_name]
        if value is not None:
            extras[key] = value
    return extras


def _network_only(cell: CellInfo | None) -> dict[str, object] | None:
    """The serving network (radio technology, country and network codes), never the cell's own identity."""
    if cell is None:
        return None
    network: dict[str, object] = {"rat": cell.rat, "mcc": cell.mcc, "mnc": cell.mnc}
    kept = {key: value for key, value in network.items() if value is not None}
    return kept or None


def serialize(payload: dict[str, object]) -> bytes:
    """Canonical compact JSON: one line, sorted keys, ASCII (so UTF-8), no NaN or infinity."""
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError:
        raise UsageError("the payload holds a value JSON cannot carry (NaN or infinity)") from None
    return text.encode("ascii")
