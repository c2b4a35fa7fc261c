"""From fix to upload through the real daemon objects: consent, the gate, de-identification, the leak check, the
ledger, the spool and a file sink; and what the user sees of it (uploads, why, withdraw, identity reset)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from agent.errors import UsageError
from hil_tests.conftest import RunningAgent, wait_until


def policy_config(tmp_path: Path, name: str, *, region: str = "CN", bucket_s: int = 1) -> Any:
    from agent.config import parse_config

    base = f"sim://ec25?name={name}&seed=3&ttff=1"
    return parse_config({
        "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 1},
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
        "policy": {"version": "2020-09-08", "home_region": "CN"},
        "purpose": [{"name": "fleet-tracking", "description": "Show the vehicle's approximate position",
                     "legal_basis": "consent", "grid_m": 2000, "time_bucket_s": bucket_s,
                     "max_points_per_day": 1000, "retention_days": 30, "sinks": ["operator"]}],
        "sink": [{"name": "operator", "url": f"file://{tmp_path / 'outbox.jsonl'}", "recipient": "Example Fleet Ltd",
                  "region": region}],
    })


@pytest.fixture
def uploading(tmp_path: Path, sim_name: str, agents: Any) -> RunningAgent:
    return agents(policy_config(tmp_path, sim_name), sim_name)


def outbox(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_nothing_is_uploaded_without_consent(uploading: RunningAgent, tmp_path: Path) -> None:
    uploading.request("location.on", wait_s=10)
    assert wait_until(lambda: uploading.agent.supervisor._fixes_seen >= 3, timeout_s=10)
    assert outbox(tmp_path) == []
    why = uploading.request("why", purpose="fleet-tracking")
    assert why["now"][0]["rule"] == "no-consent" and why["refusals"]["no-consent"] >= 1


def test_consented_fixes_are_uploaded_de_identified_and_shown_byte_for_byte(uploading: RunningAgent,
                                                                            tmp_path: Path) -> None:
    granted = uploading.request("consent.grant", purpose="fleet-tracking")
    assert granted["recorded"] is True and granted["policy_version"] == "2020-09-08"
    uploading.request("location.on", wait_s=10)
    assert wait_until(lambda: len(outbox(tmp_path)) >= 2, timeout_s=15), "nothing reached the file sink"
    sent = outbox(tmp_path)
    truth = uploading.modem.true_position()
    ids = uploading.agent.supervisor.device_ids
    for item in sent:
        assert {"id", "purpose", "pseudonym", "t", "lat", "lon", "accuracy_m"} <= set(item)
        assert item["purpose"] == "fleet-tracking" and item["t"].endswith("Z") and item["accuracy_m"] >= 2000
        assert abs(item["lat"] - truth.lat) < 0.1 and (item["lat"], item["lon"]) != (truth.lat, truth.lon)
        assert not {"altitude", "speed", "course", "satellites", "altitude_m"} & set(item)
    raw = (tmp_path / "outbox.jsonl").read_bytes()
    for value in ids.values():
        assert value.encode() not in raw
    assert ids.imei  # the check above searched for something
    shown = uploading.request("uploads")["uploads"]
    assert wait_until(lambda: len(uploading.request("uploads")["uploads"]) >= len(sent), timeout_s=5)
    shown = uploading.request("uploads", purpose="fleet-tracking")["uploads"]
    lines = (tmp_path / "outbox.jsonl").read_text().splitlines()
    by_id = {item["id"]: item for item in shown}
    for line, item in zip(lines, sent, strict=True):
        record = by_id[item["id"]]
        assert record["payload"] == line, "the user is not shown the bytes that left"
        assert record["sha256"] == hashlib.sha256(line.encode()).hexdigest()
        assert (record["recipient"], record["region"], record["sink"]) == ("Example Fleet Ltd", "CN", "operator")
    accesses = [r for r in uploading.agent.ledger.records() if r.type == "consent"]
    assert accesses and accesses[0].fields["purpose_hash"]


def test_switch_off_stops_uploads_and_withdrawal_purges_the_queue(uploading: RunningAgent, tmp_path: Path) -> None:
    uploading.request("consent.grant", purpose="fleet-tracking")
    uploading.request("location.on", wait_s=10)
    assert wait_until(lambda: len(outbox(tmp_path)) >= 1, timeout_s=15)
    uploading.request("location.off", wait_s=10)
    count = len(outbox(tmp_path))
    assert not wait_until(lambda: len(outbox(tmp_path)) > count + 1, timeout_s=2.5), "uploads went on while off"
    withdrawn = uploading.request("consent.withdraw", purpose="fleet-tracking")
    assert withdrawn["granted"] is False and "purged" in withdrawn
    assert uploading.agent.uploads.spool.pending_count() == 0
    uploading.request("location.on", wait_s=10)
    count = len(outbox(tmp_path))
    assert not wait_until(lambda: len(outbox(tmp_path)) > count, timeout_s=2.5), "uploads without consent"


def test_an_unknown_purpose_cannot_be_granted(uploading: RunningAgent) -> None:
    with pytest.raises(UsageError, match="no such purpose"):
        uploading.request("consent.grant", purpose="advertising")


def test_a_foreign_sink_needs_cross_border_consent(tmp_path: Path, sim_name: str) -> None:
    from agent.daemon import Agent

    agent = Agent(policy_config(tmp_path, sim_name, region="EU"))
    agent.start()
    try:
        running = RunningAgent(agent, sim_name, agent.config.control.socket, agent.config.state.dir)
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        running.request("consent.grant", purpose="fleet-tracking")
        running.request("location.on", wait_s=10)
        assert wait_until(lambda: agent.supervisor._fixes_seen >= 2, timeout_s=10)
        assert outbox(tmp_path) == []
        assert running.request("why")["now"][0]["rule"] == "cross-border"
        running.request("consent.cross_border", region="EU", granted=True)
        assert wait_until(lambda: len(outbox(tmp_path)) >= 1, timeout_s=10)
    finally:
        agent.stop()


def test_identity_reset_changes_pseudonyms_and_shreds_what_was_sent(uploading: RunningAgent, tmp_path: Path) -> None:
    uploading.request("consent.grant", purpose="fleet-tracking")
    uploading.request("location.on", wait_s=10)
    assert wait_until(lambda: len(uploading.request("uploads")["uploads"]) >= 1, timeout_s=15)
    before = {item["pseudonym"] for item in outbox(tmp_path)}
    reset = uploading.request("identity.reset")
    assert reset["reset"] is True and reset["keys_destroyed"] >= 1
    assert all(item["erased"] for item in uploading.request("uploads")["uploads"])
    count = len(outbox(tmp_path))
    assert wait_until(lambda: len(outbox(tmp_path)) > count, timeout_s=10)
    after = {item["pseudonym"] for item in outbox(tmp_path)[count:]}
    assert before.isdisjoint(after)


def test_signed_ledger_heads_reach_the_witness_sink(tmp_path: Path, sim_name: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from agent.config import parse_config
    from agent.daemon import Agent
    from agent.ledger.chain import checkpoint_message

    base = policy_config(tmp_path, sim_name)
    witness_file = tmp_path / "witness.jsonl"
    raw = {
        "modem": {"port": base.modem.port, "reconcile_interval_s": 1},
        "state": {"dir": str(tmp_path / "state")}, "control": {"socket": str(tmp_path / "control.sock")},
        "ledger": {"witness": "witness"},
        "policy": {"version": "1", "home_region": "CN"},
        "sink": [{"name": "witness", "url": f"file://{witness_file}", "recipient": "Audit Ltd", "region": "CN"}],
    }
    agent = Agent(parse_config(raw))
    agent.start()
    try:
        running = RunningAgent(agent, sim_name, agent.config.control.socket, agent.config.state.dir)
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        running.request("location.on", wait_s=10)
        assert agent.uploads.publish_head()
        assert wait_until(lambda: witness_file.exists() and witness_file.read_text().strip(), timeout_s=10)
        head = json.loads(witness_file.read_text().splitlines()[-1])
        assert head["type"] == "ledger-head" and head["count"] >= 1
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(head["public_key"]))
        key.verify(bytes.fromhex(head["signature"]), checkpoint_message(
            head["count"], bytes.fromhex(head["head"]), bytes.fromhex(head["merkle_root"]), head["time_ms"]))
        counts = [json.loads(line)["count"] for line in witness_file.read_text().splitlines()]
        assert len(counts) == len(set(counts)), "the same head was published twice"
    finally:
        agent.stop()
