"""Privacy core: the leak check's cost per payload, and fixes turned into upload-ready payloads per second.

(a) ``privacy_leakcheck_vs_find``: ``LeakCheck.findings(payload, raw_fix)`` (every identifier form of a device
with IMEI, IMSI, ICCID, MSISDN, serial, one cell ID and TAC, plus every exact-position form of the raw fix)
against a plain ``bytes.find`` of one identifier, on the same de-identified payloads. The ratio is the cost
multiple (reported, no target: the check runs once per upload, at most once a second or so).
(b) ``privacy_fix_to_payload``: fix -> pseudonym -> ``deidentify`` -> ``serialize`` -> leak check, records per
second on one core, for the lead engineer to set against the ledger append rate. Target: at least 100 x the real
1 Hz rate.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from timing import best_seconds

from agent.model import CellInfo, DeviceIds, Fix
from agent.privacy.coarsen import GridCoarsener
from agent.privacy.deidentify import deidentify, serialize
from agent.privacy.leakcheck import LeakCheck
from agent.privacy.policy import Purpose, parse_policy
from agent.privacy.pseudonym import epoch_of, pseudonym

SECRET = bytes(range(32))
IDS = DeviceIds(imei="864475040123456", imsi="460011234567890", iccid="89860025128306012474",
                msisdn="8613800138000", serial="QX2024A7K9")
CELL = CellInfo("NOCONN", "LTE", 460, 0, "1A2B3C4", "4E2F", 120, 1650)
TARGET_RECORDS_PER_S = 100.0
POLICY_DOC = {
    "policy": {"version": "bench", "home_region": "CN"},
    "purpose": [{"name": "fleet-tracking", "description": "Approximate position for the fleet operator",
                 "legal_basis": "consent", "fields": ["hdop", "satellites", "cell"], "sinks": ["operator"]}],
    "sink": [{"name": "operator", "url": "file:///var/lib/privacy-agent/outbox.jsonl", "recipient": "Fleet Ltd",
              "region": "CN"}],
}


def _fixes(count: int) -> list[Fix]:
    rng = random.Random(1)
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    return [Fix("GGA", True, start + dt.timedelta(seconds=index), 31.2 + rng.random() / 10, 121.4 + rng.random() / 10,
                12.0, 0.9, 9) for index in range(count)]


def _purpose() -> Purpose:
    purpose = parse_policy(POLICY_DOC).purpose("fleet-tracking")
    assert purpose is not None
    return purpose


def _pipeline(check: LeakCheck, purpose: Purpose) -> Callable[[list[Fix]], int]:
    coarsener = GridCoarsener(SECRET)

    def run(fixes: list[Fix]) -> int:
        clean = 0
        for index, fix in enumerate(fixes):
            assert fix.time is not None
            name = pseudonym(SECRET, purpose.name, epoch_of(fix.time.timestamp(), 86400))
            payload = serialize(deidentify(fix, purpose, coarsener=coarsener, pseudonym=name,
                                           message_id=f"m{index}", cell=CELL))
            clean += not check.findings(payload, fix)
        return clean
    return run


def run(quick: bool) -> dict[str, dict[str, object]]:
    count = 500 if quick else 3000
    rounds = 3 if quick else 7
    fixes = _fixes(count)
    purpose = _purpose()
    check = LeakCheck.for_device(IDS, [(CELL.cell_id, CELL.area)])
    pipeline = _pipeline(check, purpose)
    coarsener = GridCoarsener(SECRET)
    payloads = [serialize(deidentify(fix, purpose, coarsener=coarsener, pseudonym="0" * 32, message_id="m",
                                     cell=CELL)) for fix in fixes]
    pairs = list(zip(payloads, fixes, strict=True))
    imei = IDS.imei.encode() if IDS.imei else b""
    assert pipeline(fixes) == count  # every payload is clean, or the benchmark measures the wrong thing

    def leak_checks() -> None:
        for payload, fix in pairs:
            check.findings(payload, fix)

    def plain_finds() -> None:
        for payload in payloads:
            payload.find(imei)

    check_s, find_s, pipeline_s = best_seconds((leak_checks, plain_finds, lambda: pipeline(fixes)), rounds)
    records_per_s = count / pipeline_s
    return {
        "privacy_leakcheck_vs_find": {
            "value": round(check_s / count * 1e6, 2), "unit": "us/payload",
            "baseline": round(find_s / count * 1e6, 3), "ratio": check_s / find_s,
            "target": "reported", "pass": True,
        },
        "privacy_fix_to_payload": {
            "value": round(records_per_s), "unit": "records/s", "baseline": None, "ratio": None,
            "target": f">= {TARGET_RECORDS_PER_S:g}", "pass": records_per_s >= TARGET_RECORDS_PER_S,
        },
    }
