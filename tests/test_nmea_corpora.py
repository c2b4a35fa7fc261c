"""Real captures: positions and times against gpsd's own answers, exact fault counts, chunking independence.

gpsd's ``.chk`` files hold the JSON gpsd printed while replaying each ``.log``. gpsd sends a ``TPV`` report at
the end of each cycle and after sentences that change it, merging what it knows; so several TPVs can share one
time. The faithful comparison: every TPV with a 2D/3D fix (mode >= 2), a time and a position must have a valid
fix of ours at the same second with the same position (1e-6 degrees); and every second at which we report a
timed valid fix has such a TPV, except the capture's first and last cycle (gpsd reports a cycle only once it
knows the cycle's end, and holds its first fix until a full cycle has been seen: mtk-3301 at 08:14:36).
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
from agent.nmea import CaptureFilter, FixDecoder

CORPORA = Path(__file__).parent / "corpora"
GOLDEN = [
    "quectel.log",
    "quectel-eg25-g-2.log",
    "quectel-L70.log",
    "quectel-l76k-nmea.log",
    "nmea-fuzzy-cases.log",
    "mtk-3301.log",
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


def second(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.mark.parametrize("name", GOLDEN)
def test_positions_and_times_match_gpsd(name: str) -> None:
    fixes, _ = decode_all(payload(f"gpsd/{name}"))
    ours: dict[int, list[Fix]] = defaultdict(list)
    for fix in fixes:
        if fix.valid and fix.time is not None:
            ours[int(fix.time.timestamp())].append(fix)
    gpsd_seconds = set()
    compared = 0
    for report in tpv_reports(f"gpsd/{name}"):
        mode, time, lat, lon = (report.get(key) for key in ("mode", "time", "lat", "lon"))
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
    "pynmeagps/pygpsdata-BADHDR.log": (15, 1, 0, 0, 0, 0, 6, 0, 2, 2),
    "pynmeagps/pygpsdata-badeof.log": (4, 0, 0, 1, 0, 0, 1, 0, 1, 1),
    "pynmeagps/pygpsdata-nmea4lc.log": (5, 0, 0, 0, 0, 0, 2, 0, 1, 1),
    "pynmeagps/pygpsdata-nmeafoo1.log": (8, 0, 0, 0, 0, 0, 1, 0, 1, 1),
    "pynmeagps/pygpsdata-nmeafoo2.log": (8, 0, 0, 0, 0, 0, 1, 1, 1, 1),
    "pynmeagps/pygpsdata-nmeastartup.log": (12, 0, 0, 0, 0, 0, 1, 0, 1, 0),
    "pynmeagps/pygpsdata-mixed.log": (15, 0, 0, 2, 506, 0, 0, 0, 2, 2),
    "gpsd/tcp-torture.log": (7, 0, 0, 0, 26, 0, 0, 0, 1, 1),
    "gpsd/mtk-3301.log": (56, 0, 3, 0, 0, 12, 0, 0, 11, 4),
    "gpsd/quectel-l76k-dual.log": (2080, 0, 7, 330, 54852, 0, 260, 0, 130, 130),
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
