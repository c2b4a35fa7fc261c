"""The pipeline service with a real ledger and spool in a temporary state dir (no threads, no modem): one upload
per bucket, access aggregated per bucket, the leak check blocking and recording, the send-time gate, rejections
and deliveries recorded with their payload."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.ledger import Ledger, LedgerConfig
from agent.model import Fix
from agent.pipeline import Pipeline
from agent.privacy.leakcheck import LeakCheck
from agent.privacy.policy import parse_policy
from agent.privacy.pseudonym import epoch_of, pseudonym
from agent.spool import Spool

SECRET = b"s" * 32
START = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
POLICY = parse_policy({
    "policy": {"version": "7", "home_region": "CN"},
    "purpose": [{"name": "fleet", "description": "Fleet position", "legal_basis": "consent", "time_bucket_s": 60,
                 "max_points_per_day": 3, "sinks": ["operator"]}],
    "sink": [{"name": "operator", "url": "file:///dev/null", "recipient": "Fleet Ltd", "region": "CN"}],
})


class FakeClock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Pipeline, Ledger, Spool, list[tuple[str, dict[str, Any]]], FakeClock]]:
    clock = FakeClock()
    incidents: list[tuple[str, dict[str, Any]]] = []
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False), clock=clock) as ledger, Spool.open(tmp_path) as spool:
        pipeline = Pipeline(POLICY, ledger, spool, secret=SECRET, clock=clock, gate_state=lambda: (True, True),
                            record_incident=lambda kind, **facts: incidents.append((kind, facts)))
        yield pipeline, ledger, spool, incidents, clock


def fix(seconds: float, lat: float = 31.2304567) -> Fix:
    return Fix(source="RMC", valid=True, time=START + dt.timedelta(seconds=seconds), lat=lat, lon=121.4737891)


def test_without_consent_nothing_is_queued_and_the_refusal_is_counted(parts: Any) -> None:
    pipeline, _, spool, _, _ = parts
    pipeline.on_fix(fix(0))
    assert spool.pending_count() == 0
    assert pipeline.why("fleet")["refusals"] == {"no-consent": 1}


def test_one_upload_per_bucket_and_at_most_the_daily_cap(parts: Any) -> None:
    pipeline, _, spool, _, _ = parts
    pipeline.grant("fleet", uid=0)
    for second in range(0, 600, 10):  # ten one-minute buckets, six fixes each
        pipeline.on_fix(fix(second))
    assert spool.pending_count() == 3  # max_points_per_day
    bodies = [json.loads(message.body) for message in spool.due(10**13)]
    assert [body["t"] for body in bodies] == ["2026-12-02T08:00:00Z", "2026-12-02T08:01:00Z", "2026-12-02T08:02:00Z"]


def test_location_access_is_one_record_per_bucket_with_count_and_refusals(parts: Any) -> None:
    pipeline, ledger, _, _, clock = parts
    pipeline.on_fix(fix(0))  # refused: no consent yet
    pipeline.grant("fleet", uid=0)
    for second in range(1, 6):
        clock.now = START.timestamp() + second
        pipeline.on_fix(fix(second))
    clock.now = START.timestamp() + 61  # the next bucket: the first one is written
    pipeline.on_fix(fix(61))
    pipeline.flush()
    accesses = [record.fields for record in ledger.records() if record.type == "fix_access"]
    assert len(accesses) == 2
    assert accesses[0]["count"] == 5 and accesses[0]["refused"] == {"no-consent": 1}
    assert accesses[0]["grid_m"] == 2000 and accesses[0]["time_bucket_s"] == 60
    assert accesses[1]["count"] == 1


def test_a_leak_check_hit_blocks_the_payload_and_records_an_incident(parts: Any) -> None:
    pipeline, _, spool, incidents, _ = parts
    pipeline.grant("fleet", uid=0)
    # The device's "serial" happens to equal the day's pseudonym: the scrubber cannot know, the leak check does.
    name = pseudonym(SECRET, "fleet", epoch_of(START.timestamp(), POLICY.pseudonym_epoch_s))
    pipeline.leak_check = LeakCheck([("serial", name)])
    pipeline.on_fix(fix(0))
    assert spool.pending_count() == 0
    assert incidents == [("leak-blocked", {"purpose": "fleet", "sink": "operator", "found": ["serial"],
                                           "repaired": True})]


def test_the_gate_is_checked_again_at_send_time(parts: Any) -> None:
    pipeline, _, spool, _, _ = parts
    pipeline.grant("fleet", uid=0)
    pipeline.on_fix(fix(0))
    [message] = spool.due(10**13)
    assert pipeline.may_send(message)
    pipeline.withdraw("fleet", uid=0)
    assert not pipeline.may_send(message)
    assert spool.pending_count() == 0  # withdrawal purged it


def test_deliveries_and_rejections_are_recorded_with_their_payload(parts: Any) -> None:
    pipeline, ledger, spool, _, _ = parts
    pipeline.grant("fleet", uid=0)
    pipeline.on_fix(fix(0))
    pipeline.on_fix(fix(60))
    first, second = spool.due(10**13)
    pipeline.on_delivered(first)
    pipeline.on_dead(second, "HTTP 400")
    uploads = [record for record in ledger.records() if record.type == "upload"]
    assert [record.fields["status"] for record in uploads] == ["delivered", "rejected"]
    assert uploads[1].fields["reason"] == "HTTP 400" and uploads[0].fields["recipient"] == "Fleet Ltd"
    assert ledger.open_personal(uploads[0]) == {"payload": first.body}


def test_consents_are_read_back_from_the_ledger(tmp_path: Path) -> None:
    clock = FakeClock()
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False), clock=clock) as ledger, Spool.open(tmp_path) as spool:
        first = Pipeline(POLICY, ledger, spool, secret=SECRET, clock=clock, gate_state=lambda: (True, True),
                         record_incident=lambda kind, **facts: None)
        first.grant("fleet", uid=0)
        again = Pipeline(POLICY, ledger, spool, secret=SECRET, clock=clock, gate_state=lambda: (True, True),
                         record_incident=lambda kind, **facts: None)
        assert again.consent_list()["purposes"][0]["granted"] is True
