"""De-identification, pseudonyms, and the property that no upload carries an identifier or the exact position."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import PolicyError, UsageError
from agent.model import CellInfo, DeviceIds, Fix
from agent.nmea.capture import CaptureFilter
from agent.nmea.fixes import FixDecoder
from agent.privacy.coarsen import GridCoarsener, LaplaceCoarsener, decimals_for
from agent.privacy.deidentify import deidentify, serialize
from agent.privacy.leakcheck import LeakCheck
from agent.privacy.policy import ALLOWED_FIELDS, Purpose
from agent.privacy.pseudonym import epoch_of, pseudonym
from tests.privacy_support import SECRET, fix_at, policy

NAME = pseudonym(SECRET, "fleet-tracking", 19844)
CELL = CellInfo("NOCONN", "LTE", 460, 0, "1A2B3C4", "4E2F", 120, 1650, -90, -10)
FULL_FIX = fix_at(31.230861666666666, 121.47370166666667, altitude_m=12.6, hdop=0.94, satellites=9,
                  speed_kmh=42.4, course_deg=181.6, fix_quality=1, talker="GP")


def _purpose(**changes: object) -> Purpose:
    fleet = policy().purpose("fleet-tracking")
    assert fleet is not None
    values = {key: getattr(fleet, key) for key in ("name", "description", "legal_basis", "fields", "grid_m",
                                                   "time_bucket_s", "max_points_per_day", "retention_days",
                                                   "sinks", "sink_terms")}
    values.update(changes)
    return Purpose(**values)  # type: ignore[arg-type]


def test_only_the_base_fields_by_default() -> None:
    payload = deidentify(FULL_FIX, _purpose(), coarsener=GridCoarsener(SECRET), pseudonym=NAME,
                         message_id="01J0-abc", cell=CELL)
    assert set(payload) == {"id", "purpose", "pseudonym", "t", "lat", "lon", "accuracy_m"}
    assert (payload["id"], payload["purpose"], payload["pseudonym"], payload["t"], payload["accuracy_m"]) == \
        ("01J0-abc", "fleet-tracking", NAME, "2024-05-01T12:30:00Z", 2000)
    expected = GridCoarsener(SECRET).coarsen(31.230861666666666, 121.47370166666667, 2000)
    assert (payload["lat"], payload["lon"]) == (expected.lat, expected.lon)
    assert (payload["lat"], payload["lon"]) != (FULL_FIX.lat, FULL_FIX.lon)


def test_allowed_fields_and_never_the_cell_identity() -> None:
    payload = deidentify(FULL_FIX, _purpose(fields=ALLOWED_FIELDS), coarsener=GridCoarsener(SECRET),
                         pseudonym=NAME, message_id="m", cell=CELL)
    assert {key: payload[key] for key in ("altitude_m", "speed_kmh", "course_deg", "satellites", "hdop", "cell")} \
        == {"altitude_m": 13, "speed_kmh": 42, "course_deg": 182, "satellites": 9, "hdop": 0.9,
            "cell": {"rat": "LTE", "mcc": 460, "mnc": 0}}
    text = serialize(payload)
    for forbidden in (b"1A2B3C4", b"4E2F", b"1650", b"120", b"NOCONN"):
        assert forbidden not in text


def test_only_fields_the_fix_has() -> None:
    bare = fix_at(10.123456789, 20.123456789)
    payload = deidentify(bare, _purpose(fields=ALLOWED_FIELDS), coarsener=GridCoarsener(SECRET), pseudonym=NAME,
                         message_id="m", cell=CellInfo("SEARCH"))
    assert set(payload) == {"id", "purpose", "pseudonym", "t", "lat", "lon", "accuracy_m"}


def test_the_time_is_bucketed_in_utc() -> None:
    beijing = dt.datetime(2024, 5, 1, 20, 44, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    payload = deidentify(fix_at(1.2345678, 2.3456789, beijing), _purpose(time_bucket_s=3600),
                         coarsener=GridCoarsener(SECRET), pseudonym=NAME, message_id="m")
    assert payload["t"] == "2024-05-01T12:00:00Z"


def test_a_new_epoch_changes_the_pseudonym_not_the_position() -> None:
    coarsener = GridCoarsener(SECRET)
    uploads = []
    for days in (0, 1, 400):
        when = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=days)
        name = pseudonym(SECRET, "fleet-tracking", epoch_of(when.timestamp(), 86400))
        uploads.append(deidentify(fix_at(31.230861666666666, 121.47370166666667, when), _purpose(),
                                  coarsener=coarsener, pseudonym=name, message_id="m"))
    assert len({(upload["lat"], upload["lon"]) for upload in uploads}) == 1
    assert len({upload["pseudonym"] for upload in uploads}) == 3


def test_hdop_raises_the_reported_accuracy() -> None:
    payload = deidentify(fix_at(1.2345678, 2.3456789, hdop=500.0), _purpose(), coarsener=GridCoarsener(SECRET),
                         pseudonym=NAME, message_id="m")
    assert payload["accuracy_m"] == 2500


def test_laplace_coarsener_plugs_in() -> None:
    payload = deidentify(FULL_FIX, _purpose(grid_m=500), coarsener=LaplaceCoarsener(SECRET), pseudonym=NAME,
                         message_id="m")
    assert payload["accuracy_m"] == math.ceil(500 + 3.890 * 250)


@pytest.mark.parametrize(("fix", "message"), [
    (Fix("GGA", False, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 31.1234567, 121.1234567), "no valid position"),
    (Fix("GGA", True, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None, 121.1234567), "no valid position"),
    (Fix("GGA", True, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 91.1234567, 121.1234567), "out of range"),
    (Fix("GGA", True, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), math.nan, 121.1234567), "out of range"),
    (Fix("GGA", True, None, 31.1234567, 121.1234567), "no valid UTC time"),
    (Fix("GGA", True, dt.datetime(2024, 1, 1), 31.1234567, 121.1234567), "no valid UTC time"),
])
def test_unusable_fixes_are_refused_without_their_coordinates(fix: Fix, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        deidentify(fix, _purpose(), coarsener=GridCoarsener(SECRET), pseudonym=NAME, message_id="m")
    assert "1234567" not in str(raised.value)


def test_exception_purposes_get_no_location() -> None:
    malfunction = policy().purpose("malfunction")
    assert malfunction is not None
    with pytest.raises(PolicyError, match="never carries location"):
        deidentify(FULL_FIX, malfunction, coarsener=GridCoarsener(SECRET), pseudonym=NAME, message_id="m")


@pytest.mark.parametrize(("name", "message_id"), [("ABC", "m"), (NAME.upper(), "m"), (NAME, ""), (NAME, "a b"),
                                                  (NAME, "x" * 65)])
def test_bad_pseudonyms_and_ids_are_refused(name: str, message_id: str) -> None:
    with pytest.raises(UsageError):
        deidentify(FULL_FIX, _purpose(), coarsener=GridCoarsener(SECRET), pseudonym=name, message_id=message_id)


def test_serialize_is_canonical() -> None:
    payload = deidentify(FULL_FIX, _purpose(fields=("hdop", "cell")), coarsener=GridCoarsener(SECRET),
                         pseudonym=NAME, message_id="m", cell=CELL)
    text = serialize(payload)
    assert b"\n" not in text and b" " not in text and text.isascii()
    assert json.loads(text) == payload
    assert list(json.loads(text)) == sorted(payload) and list(json.loads(text)["cell"]) == ["mcc", "mnc", "rat"]
    assert serialize(json.loads(text)) == text
    assert serialize({"b": 1, "a": "\u00e9"}) == b'{"a":"\\u00e9","b":1}'
    with pytest.raises(UsageError, match="NaN"):
        serialize({"lat": math.nan})


def test_output_decimals_suit_the_grid() -> None:
    assert [decimals_for(grid) for grid in (200, 500, 2000, 10_000, 1_000_000)] == [4, 4, 3, 3, 1]


# -- pseudonyms ------------------------------------------------------------------------------------------
def test_pseudonyms() -> None:
    first = pseudonym(SECRET, "fleet-tracking", 7)
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first == pseudonym(SECRET, "fleet-tracking", 7)
    others = {pseudonym(SECRET, "fleet-tracking", 8), pseudonym(SECRET, "other", 7),
              pseudonym(bytes(32), "fleet-tracking", 7), pseudonym(SECRET, "fleet-tracking", -7)}
    assert first not in others and len(others) == 4
    with pytest.raises(ValueError):
        pseudonym(b"short", "x", 1)


@given(st.text(max_size=8), st.integers(-(2**40), 2**40), st.text(max_size=8), st.integers(-(2**40), 2**40))
def test_pseudonym_inputs_are_unambiguous(purpose1: str, epoch1: int, purpose2: str, epoch2: int) -> None:
    if (purpose1, epoch1) != (purpose2, epoch2):
        assert pseudonym(SECRET, purpose1, epoch1) != pseudonym(SECRET, purpose2, epoch2)


def test_epoch_of() -> None:
    assert [epoch_of(t, 86400) for t in (0, 86399.9, 86400, -0.5)] == [0, 0, 1, -1]
    with pytest.raises(ValueError):
        epoch_of(1.0, 0)


# -- the property: no upload carries an identifier or the exact position ---------------------------------
digits = st.text("0123456789", min_size=1, max_size=1)


def _numbers(length: int, first: str = "123456789") -> st.SearchStrategy[str]:
    return st.builds(lambda head, tail: head + tail, st.sampled_from(first),
                     st.text("0123456789", min_size=length - 1, max_size=length - 1))


nmea_coordinates = st.builds(lambda degrees, minutes, south: (-1 if south else 1) * (degrees + minutes / 600000),
                             st.integers(0, 89), st.integers(0, 599999), st.booleans())
nmea_longitudes = st.builds(lambda degrees, minutes, west: (-1 if west else 1) * (degrees + minutes / 600000),
                            st.integers(0, 179), st.integers(0, 599999), st.booleans())
any_latitudes = st.one_of(nmea_coordinates, st.floats(-90, 90, allow_nan=False))
any_longitudes = st.one_of(nmea_longitudes, st.floats(-180, 180, allow_nan=False))
device_ids = st.builds(DeviceIds, imei=_numbers(15, "3456789"), imsi=_numbers(15, "2345"),
                       iccid=_numbers(20, "8"), msisdn=_numbers(11, "1"),
                       serial=st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=8, max_size=16))
cells = st.builds(lambda cell_id, tac: CellInfo("NOCONN", "LTE", 460, 0, format(cell_id, "X"), format(tac, "X"),
                                                  120, 1650),
                  st.integers(0x10000, 0xFFFFFFF), st.integers(10000, 0xFFFF))
purposes = st.builds(lambda grid, bucket, fields: _purpose(grid_m=grid, time_bucket_s=bucket, fields=fields),
                     st.sampled_from([200, 500, 1000, 2000, 5000, 50_000]), st.sampled_from([1, 60, 900, 86400]),
                     st.lists(st.sampled_from(ALLOWED_FIELDS), unique=True).map(tuple))
fixes = st.builds(lambda lat, lon, when, altitude, speed, course, satellites, hdop:
                  fix_at(lat, lon, when, altitude_m=altitude, speed_kmh=speed, course_deg=course,
                         satellites=satellites, hdop=hdop),
                  any_latitudes, any_longitudes,
                  st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 1, 1),
                               timezones=st.just(dt.UTC)),
                  st.floats(-400, 9000), st.floats(0, 250), st.floats(0, 359.9), st.integers(0, 40),
                  st.floats(0.5, 20))


def _independent_forms(ids: DeviceIds, cell: CellInfo, fix: Fix) -> list[re.Pattern[bytes]]:
    """A test-side search that shares nothing with agent.privacy.leakcheck: the identifier texts and their hex
    and decimal conversions as whole tokens, and the raw coordinates' decimal texts of 6+ significant digits."""
    tokens = [value for value in ids.values()]
    tokens += [format(int(value), "x") for value in (ids.imei, ids.imsi, ids.iccid, ids.msisdn) if value]
    tokens += [cell.cell_id or "", cell.area or "", str(int(cell.cell_id or "0", 16)), str(int(cell.area or "0", 16))]
    patterns = [re.compile(rb"(?<![0-9A-Za-z.])" + re.escape(token.encode()) + rb"(?![0-9A-Za-z.])", re.IGNORECASE)
                for token in tokens if token]
    for value in (fix.lat, fix.lon):
        assert value is not None
        for text in [repr(abs(value))] + [f"{abs(value):.{places}f}" for places in range(5, 9)]:
            if len(text.replace(".", "").lstrip("0")) >= 6 and "e" not in text:
                patterns.append(re.compile(rb"(?<![0-9])" + re.escape(text.encode())))
    return patterns


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=32), device_ids, cells, purposes, fixes, st.booleans())
def test_no_upload_carries_an_identifier_or_the_exact_position(secret: bytes, ids: DeviceIds, cell: CellInfo,
                                                               purpose: Purpose, fix: Fix, laplace: bool) -> None:
    coarsener = LaplaceCoarsener(secret) if laplace else GridCoarsener(secret)
    assert fix.time is not None
    name = pseudonym(secret, purpose.name, epoch_of(fix.time.timestamp(), 86400))
    payload = deidentify(fix, purpose, coarsener=coarsener, pseudonym=name, message_id="m1", cell=cell)
    text = serialize(payload)
    assert LeakCheck.for_device(ids, [(cell.cell_id, cell.area)]).findings(text, fix) == ()
    for pattern in _independent_forms(ids, cell, fix):
        assert pattern.search(text) is None, pattern.pattern
    assert set(payload) <= {"id", "purpose", "pseudonym", "t", "lat", "lon", "accuracy_m", "altitude_m",
                            "speed_kmh", "course_deg", "satellites", "hdop", "cell"}


@settings(max_examples=200)
@given(st.binary(min_size=16, max_size=32), purposes, fixes, st.floats(0, 1), st.floats(0, 1))
def test_no_upload_is_finer_than_its_grid(secret: bytes, purpose: Purpose, fix: Fix, along_lat: float,
                                          along_lon: float) -> None:
    """Another true position in the same keyed cell gives the same lat/lon, which is the cell's one point."""
    coarsener = GridCoarsener(secret)
    assert fix.lat is not None and fix.lon is not None
    cell = coarsener.cell(fix.lat, fix.lon, purpose.grid_m)
    other_lat = max(cell.south, -90.0) + along_lat * (min(cell.north, 90.0) - max(cell.south, -90.0))
    other_lon = (cell.west + along_lon * cell.width_deg + 180.0) % 360.0 - 180.0
    if coarsener.cell(other_lat, other_lon, purpose.grid_m) != cell:
        return  # a float edge of the half-open cell
    first = deidentify(fix, purpose, coarsener=coarsener, pseudonym=NAME, message_id="m")
    second = deidentify(fix._replace(lat=other_lat, lon=other_lon), purpose, coarsener=coarsener, pseudonym=NAME,
                        message_id="m")
    point = coarsener.point(cell, purpose.grid_m)
    decimals = decimals_for(purpose.grid_m)
    assert (first["lat"], first["lon"]) == (second["lat"], second["lon"])
    assert first["lat"] == round(point[0], decimals)


# -- real captures ---------------------------------------------------------------------------------------
CORPUS = Path(__file__).resolve().parent / "corpora" / "gpsd"


@pytest.mark.parametrize("capture", sorted(path.name for path in CORPUS.glob("*.log")))
def test_real_captures_leave_no_exact_position(capture: str) -> None:
    """Every valid fix of a vendored gpsd capture, de-identified for a 200 m purpose: the leak check finds
    nothing, and the capture's own NMEA coordinate fields (ddmm.mmmm) never appear in an upload."""
    raw = (CORPUS / capture).read_bytes()
    receiver = CaptureFilter().feed(raw)
    decoder = FixDecoder()
    fixes = [fix for fix in [*decoder.feed(receiver), *decoder.feed_eof()]
             if fix.valid and fix.lat is not None and fix.lon is not None and fix.time is not None]
    fields = set(re.findall(rb",(\d{4,5}\.\d{3,}),[NSEW],", receiver))
    assert fixes and fields
    purpose = _purpose(grid_m=200, time_bucket_s=1, fields=ALLOWED_FIELDS)
    check = LeakCheck.for_device(DeviceIds(imei="864475040123456"))
    for index, fix in enumerate(fixes):
        text = serialize(deidentify(fix, purpose, coarsener=GridCoarsener(SECRET), pseudonym=NAME,
                                    message_id=f"m{index}"))
        assert check.findings(text, fix) == ()
        assert not any(field in text for field in fields)
