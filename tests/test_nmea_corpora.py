"""Real captures: positions, times and modes against gpsd's own answers, exact fault counts, chunking independence.

gpsd's ``.chk`` files hold the JSON gpsd printed while replaying each ``.log``. gpsd sends a ``TPV`` report at
the end of each cycle and after sentences that change it, merging what it knows; so several TPVs can share one
time. The faithful comparison: every TPV with a 2D/3D fix (mode >= 2), a time and a position must have a valid
fix of ours at the same second with the same position (1e-6 degrees) and the same kind of fix (gpsd's
``status``: absent or 1 autonomous, 2 differential, 3 RTK fixed, 4 RTK float, 5 dead reckoning); and every
second at which we report a timed valid fix has such a TPV, except the capture's first and last cycle (gpsd
reports a cycle only once it knows the cycle's end, and holds its first fix until a full cycle has been seen:
mtk-3301 at 08:14:36).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import Fix
from agent.nmea import CaptureFilter, FixDecoder, with_checksum

CORPORA = Path(__file__).parent / "corpora"
GOLDEN = [
    "quectel.log",
    "quectel-eg25-g-2.log",
    "quectel-L70.log",
    "quectel-l76k-nmea.log",
    "nmea-fuzzy-cases.log",
    "mtk-3301.log",
    "telit-he910.log",  # GGA, GLL and RMC from one talker, a long start without a fix
]


def payload(relative: str) -> bytes:
    return CaptureFilter().feed((CORPORA / relative).read_bytes())


def decode_all(data: bytes, sizes: list[int] | None = None) -> tuple[list[Fix], dict[str, int]]:
    decoder = FixDecoder()
    found: list[Fix] = []
    position = 0
    for size in sizes or []:
        found += decoder.feed(data[position : position + size])
        position += size
    found += decoder.feed(data[position:])
    found += decoder.feed_eof()
    totals = decoder.reader.counters.as_dict()
    totals["undecodable"] = decoder.assembler.undecodable
    totals["fixes"] = len(found)
    totals["valid"] = sum(fix.valid for fix in found)
    return found, totals


def tpv_reports(relative: str) -> list[dict[str, object]]:
    reports = []
    with (CORPORA / relative).with_suffix(".log.chk").open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith('{"class":"TPV"'):
                reports.append(json.loads(line))
    return reports


GPSD_STATUS_MODES = {1: "autonomous", 2: "differential", 3: "rtk", 4: "float-rtk", 5: "estimated"}


def second(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.mark.parametrize("name", GOLDEN)
def test_positions_and_times_match_gpsd(name: str) -> None:
    fixes, _ = decode_all(payload(f"gpsd/{name}"))
    assert_matches_gpsd(fixes, name)


def assert_matches_gpsd(fixes: list[Fix], name: str) -> None:
    ours: dict[int, list[Fix]] = defaultdict(list)
    for fix in fixes:
        if fix.valid and fix.time is not None:
            ours[int(fix.time.timestamp())].append(fix)
    gpsd_seconds = set()
    compared = 0
    for report in tpv_reports(f"gpsd/{name}"):
        mode, time, lat, lon, status = (report.get(key) for key in ("mode", "time", "lat", "lon", "status"))
        if not isinstance(mode, int) or mode < 2 or time is None or lat is None or lon is None:
            continue
        assert isinstance(time, str) and isinstance(lat, float) and isinstance(lon, float)
        at = second(time)
        gpsd_seconds.add(at)
        candidates = ours.get(at, [])
        assert any(
            fix.lat is not None
            and fix.lon is not None
            and abs(fix.lat - lat) <= 1e-6
            and abs(fix.lon - lon) <= 1e-6
            and fix.mode == GPSD_STATUS_MODES[status if isinstance(status, int) else 1]
            for fix in candidates
        ), f"{name}: no fix of ours matches gpsd's TPV at {time}"
        compared += 1
    assert compared >= 10
    assert set(ours) - gpsd_seconds <= {min(ours), max(ours)}


def test_times_are_aware_utc_and_positions_signed() -> None:
    fixes, _ = decode_all(payload("gpsd/quectel.log"))
    valid = [fix for fix in fixes if fix.valid]
    assert all(fix.time is None or fix.time.tzinfo is dt.UTC for fix in valid)
    assert all(fix.lat is not None and fix.lat < 0 for fix in valid)  # Auckland: south
    assert all(fix.lon is not None and fix.lon > 0 for fix in valid)


EXPECTED = {
    # name: accepted, bad_checksum, missing_checksum, malformed, garbage_bytes, proprietary, unknown,
    #       undecodable, fixes, valid
    "pynmeagps/pygpsdata-nmeabadck.log": (1, 2, 0, 0, 0, 0, 0, 0, 1, 1),
    "pynmeagps/pygpsdata-nmeabadck2.log": (7, 0, 0, 1, 0, 0, 0, 0, 1, 1),
    "pynmeagps/pygpsdata-BADHDR.log": (15, 1, 0, 0, 0, 0, 5, 0, 2, 2),
    "pynmeagps/pygpsdata-badeof.log": (4, 0, 0, 1, 0, 0, 1, 0, 1, 1),
    "pynmeagps/pygpsdata-nmea4lc.log": (5, 0, 0, 0, 0, 0, 2, 0, 1, 1),
    "pynmeagps/pygpsdata-nmeafoo1.log": (8, 0, 0, 0, 0, 0, 1, 0, 1, 1),
    "pynmeagps/pygpsdata-nmeafoo2.log": (8, 0, 0, 0, 0, 0, 1, 1, 1, 1),
    "pynmeagps/pygpsdata-nmeastartup.log": (12, 0, 0, 0, 0, 0, 0, 0, 1, 0),
    "pynmeagps/pygpsdata-mixed.log": (15, 0, 0, 2, 506, 0, 0, 0, 2, 2),
    "gpsd/tcp-torture.log": (7, 0, 0, 0, 26, 0, 0, 0, 1, 1),
    "gpsd/mtk-3301.log": (56, 0, 3, 0, 0, 12, 0, 0, 11, 4),
    "gpsd/quectel-l76k-dual.log": (2080, 0, 7, 330, 54852, 0, 130, 0, 130, 130),  # unknown: 130 GPTXT
    "gpsd/nmea-fuzzy-cases.log": (28, 0, 0, 0, 0, 0, 0, 0, 14, 14),
    "gpsd/quectel-eg25-g-2.log": (60, 0, 0, 0, 0, 18, 0, 0, 3, 3),
}
COUNTER_NAMES = (
    "accepted",
    "bad_checksum",
    "missing_checksum",
    "malformed",
    "garbage_bytes",
    "proprietary",
    "unknown",
    "undecodable",
    "fixes",
    "valid",
)
# Checksummed sentences with a well-formed address, found by a regular expression instead of the reader.
SENTENCE = re.compile(rb"\$[A-Z][A-Z0-9]{4},[ -~]*?\*[0-9A-Fa-f]{2}(?=[\r\n])")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fault_files_give_exact_counts_in_any_chunking(name: str) -> None:
    data = payload(name)
    whole, totals = decode_all(data)
    assert tuple(totals[counter] for counter in COUNTER_NAMES) == EXPECTED[name]
    rng = random.Random(name)
    chunkings = [[rng.randint(1, 300) for _ in range(len(data) // 100 + 1)] for _ in range(3)]
    if len(data) < 20_000:
        chunkings.append([1] * len(data))
    for sizes in chunkings:
        assert decode_all(data, sizes) == (whole, totals)


def test_binary_interleaved_capture_loses_no_sentence() -> None:
    # The L76K interleaves CASIC binary frames with NMEA: every checksummed sentence must survive.
    for name in ("gpsd/quectel-l76k-dual.log", "pynmeagps/pygpsdata-mixed.log"):
        data = payload(name)
        assert decode_all(data)[1]["accepted"] == len(SENTENCE.findall(data))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), name=st.sampled_from(["gpsd/quectel.log", "gpsd/quectel-l76k-dual.log"]))
def test_garbage_spliced_between_sentences_changes_nothing_else(seed: int, name: str) -> None:
    # Binary bytes without '$', CR or LF inserted at line starts are garbage and nothing else.
    rng = random.Random(seed)
    lines = payload(name).splitlines(keepends=True)[:400]
    clean = b"".join(lines)
    noise = bytes(byte for byte in rng.randbytes(2000) if byte not in b"$\r\n")
    spliced = bytearray()
    added = 0
    for line in lines:
        if rng.random() < 0.2 and line.startswith(b"$"):
            piece = noise[: rng.randint(1, 40)]
            spliced += piece
            added += len(piece)
        spliced += line
    clean_fixes, clean_totals = decode_all(clean)
    dirty_fixes, dirty_totals = decode_all(bytes(spliced))
    assert dirty_fixes == clean_fixes
    clean_totals["garbage_bytes"] += added
    assert dirty_totals == clean_totals


def test_capture_filter_drops_comments_and_delay_cookies_in_any_chunking() -> None:
    raw = (CORPORA / "gpsd/tcp-torture.log").read_bytes()
    whole = CaptureFilter()
    stripped = whole.feed(raw)
    assert whole.cookie == b"|"
    assert b"|" not in stripped and b"#" not in stripped
    assert b"Submitter" not in stripped
    assert stripped.count(b"$GPGGA,193221.00,2037.72792,N") == 1
    byte_by_byte = CaptureFilter()
    assert b"".join(byte_by_byte.feed(raw[i : i + 1]) for i in range(len(raw))) == stripped
    assert byte_by_byte.comment_lines == whole.comment_lines == 10


def without(data: bytes, *addresses: bytes) -> bytes:
    """The capture without the sentences of these addresses, as a receiver configured not to send them."""
    return b"".join(line for line in data.splitlines(keepends=True) if line[1:6] not in addresses)


def test_gll_with_zda_and_no_rmc_gives_gpsds_positions_and_times() -> None:
    # The L76K configured for GLL and ZDA only: every position and date must come from those two.
    fixes, totals = decode_all(without(payload("gpsd/quectel-l76k-nmea.log"), b"GNRMC", b"GNGGA"))
    assert {fix.source for fix in fixes} == {"GLL"}
    assert totals["valid"] == 150
    assert_matches_gpsd(fixes, "quectel-l76k-nmea.log")


def test_gll_with_rmc_and_no_gga_gives_gpsds_positions_and_times() -> None:
    fixes, _ = decode_all(without(payload("gpsd/telit-he910.log"), b"GPGGA"))
    assert_matches_gpsd(fixes, "telit-he910.log")
    only_gll, _ = decode_all(without(payload("gpsd/telit-he910.log"), b"GPGGA", b"GPRMC"))
    assert [(fix.lat, fix.lon) for fix in only_gll] == [(fix.lat, fix.lon) for fix in fixes]
    assert all(fix.time is None for fix in only_gll)  # GLL has no date, and nothing else gave one


def test_modes_of_real_captures() -> None:
    def modes(name: str) -> dict[tuple[str | None, bool], int]:
        found: dict[tuple[str | None, bool], int] = defaultdict(int)
        for fix in decode_all(payload(name))[0]:
            found[fix.mode, fix.valid] += 1
        return dict(found)

    # quality 2 beside RMC mode D; quality 4 beside D (NMEA 2.3 has no RTK letter): the finer one wins
    assert modes("gpsd/nmea-fuzzy-cases.log") == {("differential", True): 10, ("rtk", True): 4}
    assert modes("gpsd/telit-he910.log") == {("invalid", False): 37, ("autonomous", True): 187}
    assert modes("gpsd/quectel-L70.log") == {("differential", True): 16}
    assert modes("pynmeagps/pygpsdata-nmeastartup.log") == {("invalid", False): 1}


def with_constellation_copies(data: bytes, rng: random.Random) -> bytes:
    """Each combined (GN) position sentence gets single-constellation copies around it, at the same time of
    day but a position a degree off, as receivers with per-constellation talkers send them. Which copies, and
    which of them come before the combined sentence, is drawn once per sentence type: a receiver keeps its
    order from one epoch to the next."""
    patterns = {}
    for kind in (b"GGA", b"RMC", b"GLL"):
        talkers = rng.sample([b"GP", b"GL", b"GA", b"BD"], rng.randint(0, 3))
        patterns[kind] = (talkers, rng.randint(0, len(talkers)))
    out = []
    for line in data.splitlines(keepends=True):
        if line[:3] != b"$GN" or line[3:6] not in patterns:
            out.append(line)
            continue
        talkers, cut = patterns[line[3:6]]
        body = line[3 : line.index(b"*")].decode().replace(",47", ",48").replace(",122", ",123")
        copies = [with_checksum(talker.decode() + body).encode() + b"\r\n" for talker in talkers]
        out += [*copies[:cut], line, *copies[cut:]]
    return b"".join(out)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_single_constellation_talkers_change_no_fix(seed: int) -> None:
    data = payload("gpsd/quectel-l76k-nmea.log")[:20_000]
    data = data[: data.rindex(b"\n") + 1]
    copied = with_constellation_copies(data, random.Random(seed))
    assert decode_all(copied)[0] == decode_all(data)[0]
