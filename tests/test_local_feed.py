"""The local NMEA feed's pure parts: sentences written, the view a local reader gets, the bounded buffer, the
access records, the service's gate, and the [local_feed] config table."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bounded_buffer import DropOldestBuffer
from agent.config import parse_config
from agent.errors import ConfigError
from agent.local_feed import AccessLog, LocalFeed, LocalView
from agent.model import DeviceIds, Fix
from agent.nmea.capture import CaptureFilter
from agent.nmea.checksum import nmea_checksum
from agent.nmea.fixes import FixDecoder
from agent.nmea.reader import NmeaReader, Sentence
from agent.nmea.sentences import decode_gga, decode_rmc
from agent.nmea.writer import FeedEpoch, angle, sentences
from agent.privacy.coarsen import GridCoarsener, decimals_for
from agent.privacy.gate import Decision
from agent.privacy.leakcheck import LeakCheck
from agent.privacy.policy import ALLOWED_FIELDS, Purpose
from tests.privacy_support import SECRET, doc

T0 = dt.datetime(2026, 12, 2, 16, 4, 30, 123000, tzinfo=dt.UTC)
COARSENER = GridCoarsener(SECRET)
CORPUS = Path(__file__).resolve().parent / "corpora" / "gpsd"


def _purpose(**changes: Any) -> Purpose:
    values: dict[str, Any] = {"name": "local-nav", "description": "Navigation on the gateway", "grid_m": 2000,
                              "time_bucket_s": 1, "sinks": ("operator",)}
    values.update(changes)
    return Purpose(**values)


def _fix(lat: float = 31.230861666, lon: float = 121.473701666, when: dt.datetime = T0, **extra: Any) -> Fix:
    return Fix("GGA", True, when, lat, lon, **extra)


def _read(data: bytes) -> list[Sentence]:
    reader = NmeaReader()
    reader.feed(data)
    found = []
    while isinstance(event := reader.next_event(), Sentence):
        found.append(event)
    assert reader.counters.as_dict().get("bad_checksum", 0) == 0
    return found


# -- writer ----------------------------------------------------------------------------------------------------
def test_angle_is_exact_in_integers() -> None:
    assert angle(31.2309, 4, 2, "NS") == ("3113.854", "N")  # 0.2309 degree = 13.854 minutes exactly
    assert angle(-121.474, 3, 3, "EW") == ("12128.44", "W")
    assert angle(-0.0, 2, 2, "NS") == ("0000.0", "N")
    assert angle(5.0, 0, 3, "EW") == ("00500.0", "E")


def test_sentences_decode_back_to_the_epoch() -> None:
    epoch = FeedEpoch(T0.replace(microsecond=0), 31.231, -121.474, 3, altitude_m=12, speed_kmh=36,
                      course_deg=270, satellites=9, hdop=0.9)
    gga_sentence, rmc_sentence = _read(sentences(epoch))
    gga, rmc = decode_gga(gga_sentence), decode_rmc(rmc_sentence)
    assert (gga.lat, gga.lon) == pytest.approx((31.231, -121.474), abs=1e-9)
    assert (gga.satellites, gga.hdop, gga.altitude_m, gga.quality) == (9, 0.9, 12.0, 1)
    assert rmc.status == "A" and rmc.date == dt.date(2026, 12, 2) and rmc.time == dt.time(16, 4, 30)
    assert rmc.course_deg == 270.0 and rmc.speed_knots is not None and round(rmc.speed_knots * 1.852) == 36


def test_fields_not_given_are_empty() -> None:
    text = sentences(FeedEpoch(T0.replace(microsecond=0), 31.231, 121.474, 3)).decode()
    gga_line, rmc_line = text.splitlines()
    assert gga_line.split(",")[7:12] == ["", "", "", "", ""]  # satellites, HDOP, altitude and its unit
    assert rmc_line.split(",")[7:9] == ["", ""]  # speed, course


@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180), decimals=st.integers(0, 4),
       seconds=st.integers(0, 86399))
def test_every_sentence_has_a_valid_checksum(lat: float, lon: float, decimals: int, seconds: int) -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    data = sentences(FeedEpoch(when, round(lat, decimals), round(lon, decimals), decimals))
    for line in data.split(b"\r\n")[:-1]:
        body, _, check = line[1:].partition(b"*")
        assert line.startswith(b"$") and int(check, 16) == nmea_checksum(body)
    assert len(_read(data)) == 2


# -- the view --------------------------------------------------------------------------------------------------
@given(lat=st.floats(-89.9, 89.9), lon=st.floats(-179.9, 179.9), grid_m=st.sampled_from([200, 500, 2000, 10000]))
def test_no_coordinate_is_finer_than_the_grid(lat: float, lon: float, grid_m: int) -> None:
    """What a reader parses is the keyed cell's point, whatever true position in the cell gave it, written
    with no more digits than the grid's output has."""
    epoch = LocalView(_purpose(grid_m=grid_m)).epoch(_fix(lat, lon), COARSENER)
    assert epoch is not None
    gga = decode_gga(_read(sentences(epoch))[0])
    cell = COARSENER.cell(lat, lon, grid_m)
    expected = COARSENER.coarsen(lat, lon, grid_m)
    assert (gga.lat, gga.lon) == pytest.approx((expected.lat, expected.lon), abs=1e-9)
    other_lat = min(cell.north, 90) - (min(cell.north, 90) - max(cell.south, -90)) * 0.37
    other_lon = cell.west + cell.width_deg * 0.61
    other_lon = (other_lon + 180) % 360 - 180
    if COARSENER.cell(other_lat, other_lon, grid_m) == cell:  # the same cell: the same bytes
        again = LocalView(_purpose(grid_m=grid_m)).epoch(_fix(other_lat, other_lon), COARSENER)
        assert again is not None and sentences(again) == sentences(epoch)
    minute_decimals = max(decimals_for(grid_m) - 1, 1)
    for field in re.findall(rb",(\d{4,5})\.(\d+),[NSEW]", sentences(epoch)):
        assert len(field[1]) == minute_decimals


def test_time_is_cut_and_one_epoch_per_bucket() -> None:
    view = LocalView(_purpose(time_bucket_s=60))
    first = view.epoch(_fix(when=T0), COARSENER)
    assert first is not None and first.time == dt.datetime(2026, 12, 2, 16, 4, tzinfo=dt.UTC)
    assert view.epoch(_fix(when=T0 + dt.timedelta(seconds=20)), COARSENER) is None
    assert view.epoch(_fix(when=T0 - dt.timedelta(minutes=5)), COARSENER) is None  # never back in time
    later = view.epoch(_fix(when=T0 + dt.timedelta(seconds=40)), COARSENER)
    assert later is not None and later.time == dt.datetime(2026, 12, 2, 16, 5, tzinfo=dt.UTC)


def test_only_allowed_fields_pass() -> None:
    fix = _fix(altitude_m=12.6, hdop=0.94, satellites=9, speed_kmh=35.7, course_deg=359.6)
    bare = LocalView(_purpose()).epoch(fix, COARSENER)
    assert bare is not None
    assert (bare.altitude_m, bare.hdop, bare.satellites, bare.speed_kmh, bare.course_deg) == (None,) * 5
    full = LocalView(_purpose(fields=ALLOWED_FIELDS)).epoch(fix, COARSENER)
    assert full is not None
    assert (full.altitude_m, full.hdop, full.satellites, full.speed_kmh, full.course_deg) == (13, 0.9, 9, 36, 0)


@pytest.mark.parametrize("fix", [
    Fix("GGA", False, T0, None, None, mode="invalid"),
    Fix("GGA", False, T0, 31.2, 121.4, mode="simulator"),
    Fix("GGA", True, None, 31.2, 121.4),
    Fix("GGA", True, T0, float("nan"), 121.4),
])
def test_what_is_not_a_dated_position_gives_nothing(fix: Fix) -> None:
    assert LocalView(_purpose()).epoch(fix, COARSENER) is None


@pytest.mark.parametrize("capture", sorted(path.name for path in CORPUS.glob("*.log")))
def test_real_captures_replay_without_their_true_positions(capture: str) -> None:
    """Every gpsd capture through the feed at the finest purpose (200 m, 1 s, every field): neither the leak
    check nor the capture's own coordinate fields find anything of a true position in the feed's bytes."""
    raw = CaptureFilter().feed((CORPUS / capture).read_bytes())
    decoder = FixDecoder()
    fixes = [fix for fix in [*decoder.feed(raw), *decoder.feed_eof()] if fix.valid and fix.time is not None]
    true_fields = set(re.findall(rb",(\d{4,5}\.\d{3,}),[NSEW],", raw))
    assert fixes and true_fields
    view = LocalView(_purpose(grid_m=200, fields=ALLOWED_FIELDS))
    check = LeakCheck.for_device(DeviceIds(imei="864475040123456"))
    served = 0
    for fix in fixes:
        epoch = view.epoch(fix, COARSENER)
        if epoch is None:
            continue
        served += 1
        out = sentences(epoch)
        assert check.findings(out, fix) == ()
        assert not any(field + b"," in out for field in true_fields)
    assert served


# -- the bounded buffer ----------------------------------------------------------------------------------------
def test_buffer_drops_the_oldest_whole_chunks_and_counts() -> None:
    buffer = DropOldestBuffer(10)
    for chunk in (b"aaaa", b"bbbb", b"cccc"):
        buffer.push(chunk)
    assert buffer.pending() == b"bbbbcccc" and (buffer.dropped_chunks, buffer.dropped_bytes) == (1, 4)
    buffer.consume(2)  # "bb" reached the reader: the rest of that chunk must follow
    buffer.push(b"dddd")
    buffer.push(b"eeee")
    assert buffer.pending() == b"bbddddeeee" and buffer.size == 10 and buffer.dropped_chunks == 2
    buffer.push(b"x" * 11)  # larger than the whole buffer: dropped at once
    assert buffer.dropped_chunks == 3 and buffer.clear() == 10 and not buffer


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=30), st.integers(0, 40)), max_size=50),
       st.integers(1, 64))
def test_buffer_stays_bounded_and_delivers_whole_chunks_in_order(steps: list[tuple[bytes, int]], limit: int) -> None:
    buffer = DropOldestBuffer(limit)
    delivered = b""
    pushed: list[bytes] = []
    for chunk, read in steps:
        buffer.push(chunk)
        pushed.append(chunk)
        assert buffer.size <= max(limit, 30) and buffer.size == len(buffer.pending())
        data = buffer.pending()[:read]
        buffer.consume(len(data))
        delivered += data
    delivered += buffer.pending()
    assert buffer.dropped_bytes + len(delivered) == sum(len(chunk) for chunk in pushed)


# -- access records and the gate -------------------------------------------------------------------------------
class _Ledger:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def append(self, record_type: str, fields: dict[str, Any], **_: Any) -> None:
        self.records.append((record_type, fields))


class _Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


class _Output:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.discarded = 0

    def send(self, epoch: FeedEpoch, nmea: bytes) -> None:
        self.sent.append(nmea)

    def discard(self) -> None:
        self.discarded += 1

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {}


def test_access_records_one_per_window_with_the_precision() -> None:
    ledger = _Ledger()
    access = AccessLog(ledger, _purpose(time_bucket_s=1, fields=("hdop",)))  # type: ignore[arg-type]
    base = int(T0.timestamp()) // 60 * 60_000
    for second in range(60):
        access.served(base + second * 1000)
    access.refused(base + 30_000, "no-consent")
    assert ledger.records == []
    access.served(base + 60_000)
    access.flush()
    (kind, first), (_, second) = ledger.records
    assert kind == "fix_access" and first["count"] == 60 and first["refused"] == {"no-consent": 1}
    assert (first["reader"], first["grid_m"], first["time_bucket_s"], first["fields"]) == ("local-feed", 2000, 1,
                                                                                           ["hdop"])
    assert second["count"] == 1 and second["bucket_ms"] == base + 60_000


def test_nothing_flows_while_the_gate_refuses() -> None:
    ledger, clock, output = _Ledger(), _Clock(), _Output()
    decision = [Decision(False, "no-consent", "no")]
    feed = LocalFeed(_purpose(), ledger, clock=clock, decide=lambda: decision[0],  # type: ignore[arg-type]
                     coarsener=lambda: COARSENER)
    feed.add_output(output)
    feed.on_fix(_fix())
    assert output.sent == [] and output.discarded == 1 and not feed.may_flow()
    decision[0] = Decision(True, "ok", "ok")
    feed.on_fix(_fix(when=T0 + dt.timedelta(seconds=1)))
    assert len(output.sent) == 1 and feed.may_flow()
    feed.stop()
    assert ledger.records[-1][1]["count"] == 1 and ledger.records[-1][1]["refused"] == {"no-consent": 1}


# -- config ----------------------------------------------------------------------------------------------------
def _config(table: dict[str, Any]) -> Any:
    raw = doc(local_feed=table)
    raw["purpose"].append({"name": "local-nav", "description": "Navigation", "legal_basis": "consent",
                           "grid_m": 500, "time_bucket_s": 1,
                           "sinks": ["operator"]})
    return parse_config(raw)


def test_config_reads_the_local_feed_table() -> None:
    config = _config({"link": "/run/privacy-agent/nmea", "purpose": "local-nav", "gpsd_json": "127.0.0.1:2947",
                      "buffer_bytes": 4096})
    settings = config.local_feed
    assert settings.link == Path("/run/privacy-agent/nmea") and settings.purpose == "local-nav"
    assert settings.gpsd_json == ("127.0.0.1", 2947) and settings.buffer_bytes == 4096
    assert _config({"link": "/x", "purpose": "local-nav", "gpsd_json": "[::1]:2947"}).local_feed.gpsd_json == (
        "::1", 2947)
    assert parse_config(doc()).local_feed is None


@pytest.mark.parametrize(("table", "message"), [
    ({"link": "/x", "purpose": "local-nav", "speed": 1}, "unknown key [local_feed] speed"),
    ({"purpose": "local-nav"}, "[local_feed] link is required"),
    ({"link": "/x"}, "[local_feed] purpose is required"),
    ({"link": "x", "purpose": "local-nav"}, "[local_feed] link must be an absolute path"),
    ({"link": "/x", "purpose": "nope"}, "[local_feed] purpose names no [[purpose]]"),
    ({"link": "/x", "purpose": "malfunction"}, "exception purpose"),
    ({"link": "/x", "purpose": "local-nav", "gpsd_json": "0.0.0.0:2947"}, "must listen on loopback"),
    ({"link": "/x", "purpose": "local-nav", "gpsd_json": "127.0.0.1:99999"}, "port number"),
    ({"link": "/x", "purpose": "local-nav", "buffer_bytes": 10}, "[local_feed] buffer_bytes = 10 is out of range"),
])
def test_config_errors_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _config(table)


def test_the_shipped_example_documents_every_key() -> None:
    """The commented [local_feed] table of examples/privacy-agent.toml, uncommented beside a purpose, loads,
    and names every key the schema knows."""
    import tomllib

    from agent.config import _SCHEMA

    example = (Path(__file__).resolve().parents[1] / "examples" / "privacy-agent.toml").read_text()
    block = example[example.index("# [local_feed]"):].split("\n\n")[0]  # up to the next blank line
    uncommented = "\n".join(line[2:] for line in block.splitlines() if line.startswith("# ") and
                            not line.startswith("# # "))
    raw = tomllib.loads(uncommented)
    assert set(raw["local_feed"]) == set(_SCHEMA["local_feed"])
    table = dict(raw["local_feed"], purpose="local-nav")
    assert _config(table).local_feed.gpsd_json == ("127.0.0.1", 2947)


# -- the local gate ---------------------------------------------------------------------------------------------
@given(switch_on=st.booleans(), observed=st.booleans(), purpose=st.sampled_from(["fleet-tracking", "malfunction",
                                                                                  "undeclared"]),
       granted=st.booleans(), minor=st.booleans(), guardian=st.booleans())
def test_local_gate_is_the_upload_gate_without_the_recipient(switch_on: bool, observed: bool, purpose: str,
                                                             granted: bool, minor: bool, guardian: bool) -> None:
    """Allowed exactly when the switch is on and observed, the purpose is declared, not an exception, consented,
    and not a minor's without a guardian; the first failing rule names the refusal."""
    from agent.privacy import consent as consent_rules
    from agent.privacy.consent import Consents
    from agent.privacy.local_gate import decide_local
    from tests.privacy_support import policy as make_policy

    policy = make_policy(subject={"minor": minor})
    consents = Consents()
    if granted and policy.purpose(purpose) is not None and purpose != "malfunction":
        consents.apply(consent_rules.grant_change(policy, purpose, 0))
    if guardian:
        consents.apply(consent_rules.guardian_change(policy, True, 0))
    decision = decide_local(switch_on=switch_on, observed_known=observed, policy=policy, purpose_name=purpose,
                            consents=consents)
    expected = ("switch-off" if not switch_on else "observed-unknown" if not observed
                else "undeclared-purpose" if purpose == "undeclared"
                else "exception-no-location" if purpose == "malfunction"
                else "no-consent" if not granted
                else "minor-without-guardian" if minor and not guardian else "ok")
    assert decision.rule == expected and decision.allowed == (expected == "ok")
