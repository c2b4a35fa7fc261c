"""NMEA decode throughput: the agent's bytes -> Fix pipeline against pynmea2 on the same Quectel captures.

Input: the vendored Quectel captures (comments stripped), concatenated and repeated to a few MB (less with
``quick``), fed in 4 KiB blocks as a serial port delivers them. Ours: ``FixDecoder`` (framing, checksum,
counters, GGA/RMC/GNS/GLL/VTG/ZDA decoding, ``agent.model.Fix`` assembly). Baseline: what a pynmea2 consumer does
on the same lines: ``pynmea2.parse`` on every sentence, then latitude, longitude and timestamp of each GGA and
RMC.
"""

from __future__ import annotations

from pathlib import Path

import pynmea2
from timing import best_seconds

from agent.nmea.capture import CaptureFilter
from agent.nmea.fixes import FixDecoder

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpora" / "gpsd"
CAPTURES = ("quectel.log", "quectel-eg25-g-2.log", "quectel-L70.log", "quectel-l76k-nmea.log")
BLOCK = 4096
# What users need: an EC25 sends one burst a second; beyond this, readable code is worth more than speed.
TARGET_RATIO = 1.5


def _payload(target_bytes: int) -> bytes:
    one = b"".join(CaptureFilter().feed((CORPUS / name).read_bytes()) for name in CAPTURES)
    return one * max(1, target_bytes // len(one))


def _ours(payload: bytes) -> int:
    decoder = FixDecoder()
    fixes = 0
    for start in range(0, len(payload), BLOCK):
        fixes += len(decoder.feed(payload[start : start + BLOCK]))
    fixes += len(decoder.feed_eof())
    return fixes


def _pynmea2(payload: bytes) -> int:
    fixes = 0
    for line in payload.decode("ascii").splitlines():
        if not line:
            continue
        message = pynmea2.parse(line)
        if isinstance(message, (pynmea2.GGA, pynmea2.RMC)):
            _ = (message.latitude, message.longitude, message.timestamp)
            fixes += 1
    return fixes


def run(quick: bool) -> dict[str, dict[str, object]]:
    payload = _payload(1_000_000 if quick else 3_000_000)
    sentences = payload.count(b"$")
    ours_seconds, theirs_seconds = best_seconds((lambda: _ours(payload), lambda: _pynmea2(payload)),
                                                 rounds=9 if quick else 11)
    ours, theirs = sentences / ours_seconds, sentences / theirs_seconds
    ratio = ours / theirs
    return {
        "nmea_decode_vs_pynmea2": {
            "value": round(ours), "unit": "sentences/s", "baseline": round(theirs), "ratio": ratio,
            "target": f">= {TARGET_RATIO}", "pass": ratio >= TARGET_RATIO,
        },
        "nmea_decode_sentences_per_s": {
            "value": round(ours), "unit": "sentences/s", "baseline": None, "ratio": None,
            "target": "reported", "pass": True,
        },
    }
