"""The right to erasure through the real CLI and daemon on the simulator: queued data purged and keys destroyed
before ``privacyctl erase`` returns; an export afterwards shows the entries as erased; no plaintext of erased data
left in any byte of the state dir; every request recorded with its outcome; bad input refused by name."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from agent.ledger.export import verify_export
from hil_tests.conftest import RunningAgent, wait_until
from hil_tests.test_rights_export import agent, bundle_records, ctl, rights_config, upload_some


def state_bytes(state_dir: Path) -> list[tuple[Path, bytes]]:
    """Every file under the state dir (hidden and temporary ones too), with its bytes."""
    return [(path, path.read_bytes()) for path in sorted(state_dir.rglob("*")) if path.is_file()]


def holders(state_dir: Path, needle: bytes) -> list[str]:
    return [str(path.relative_to(state_dir)) for path, data in state_bytes(state_dir) if needle in data]


__all__ = ["agent"]  # the fixture, used by name


def test_erase_all_leaves_no_plaintext_and_the_export_shows_it_erased(agent: RunningAgent, tmp_path: Path) -> None:
    upload_some(agent, tmp_path)
    shown = agent.request("log.show", type="upload")["records"]
    payloads = [record["personal"]["payload"].encode() for record in shown]
    assert payloads and all(payloads)
    # the search works: before the erasure the payloads are on disk in plain (the spool keeps what it sent
    # until its journal is compacted)
    assert any(holders(agent.state_dir, payload) for payload in payloads)
    code, result, text = ctl(agent, "erase", "--all", "--json")
    assert code == 0, text
    assert result["erased"] is True and result["durable"] is True and result["scope"] == "all"
    assert result["keys_destroyed"] >= 1 and result["records_erased"] >= len(payloads)
    for payload in payloads:
        assert holders(agent.state_dir, payload) == [], "erased plaintext is still in the state dir"
        assert holders(agent.state_dir, payload[len(payload) // 3:2 * len(payload) // 3]) == []
    assert all(upload["payload"] is None for upload in agent.request("uploads")["uploads"])
    out = tmp_path / "after.zip"
    assert ctl(agent, "export", "--out", str(out))[0] == 0
    report = verify_export(out)
    records = bundle_records(out)
    uploads = [r for r in records if r["type"] == "upload"]
    assert uploads and all(r["personal"]["erased"] is True for r in uploads)
    assert report.erased_records >= len(uploads)
    destroyed = [r["fields"] for r in records if r["type"] == "key_destroyed"]
    assert destroyed[-1]["reason"] == "erase_request" and destroyed[-1]["scope"] == "everything"
    request = [r["fields"] for r in records if r["type"] == "request"][-1]
    assert request | {"by_uid": 0} == {"right": "erasure", "op": "erase", "outcome": "done", "scope": "all",
                                       "by_uid": 0, "queued_purged": result["queued_purged"],
                                       "keys_destroyed": result["keys_destroyed"],
                                       "records_erased": result["records_erased"]}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def queueing(tmp_path: Path, sim_name: str, agents: Any) -> RunningAgent:
    """An agent whose sink never answers (nothing listens there): uploads stay queued in the spool."""
    config = rights_config(tmp_path, sim_name)
    sink = {"name": "operator", "url": f"mqtt://127.0.0.1:{_closed_port()}/fleet", "recipient": "Example Fleet Ltd",
            "region": "CN"}
    from agent.config import parse_config

    raw: dict[str, Any] = {
        "modem": {"port": config.modem.port, "nmea_port": config.modem.nmea_port, "reconcile_interval_s": 1},
        "state": {"dir": str(config.state.dir)}, "control": {"socket": str(config.control.socket)},
        "rights": {"repeat_window_s": 0},
        "policy": {"version": config.policy.version, "home_region": "CN"},
        "purpose": [{"name": "fleet-tracking", "description": "Show the vehicle's approximate position",
                     "legal_basis": "consent", "grid_m": 2000, "time_bucket_s": 1, "max_points_per_day": 1000,
                     "retention_days": 30, "sinks": ["operator"]}],
        "sink": [sink],
    }
    return agents(parse_config(raw), sim_name)


def test_erase_purpose_purges_the_queue_and_its_plaintext(queueing: RunningAgent) -> None:
    spool = queueing.agent.uploads.spool
    queueing.request("consent.grant", purpose="fleet-tracking")
    queueing.request("location.on", wait_s=10)
    assert wait_until(lambda: spool.pending_count() >= 2, timeout_s=20), "nothing was queued"
    queueing.request("location.off", wait_s=10)
    bodies = [message.body for message in spool.due(2**62, limit=1000)]
    assert bodies and all(holders(queueing.state_dir, body) for body in bodies)
    code, result, text = ctl(queueing, "erase", "--purpose", "fleet-tracking", "--json")
    assert code == 0, text
    assert result["queued_purged"] == len(bodies) and result["purpose"] == "fleet-tracking"
    assert spool.pending_count() == 0 and spool.dead_letters() == []
    for body in bodies:
        assert holders(queueing.state_dir, body) == []


def test_erase_before_an_old_date_erases_nothing_newer(agent: RunningAgent, tmp_path: Path) -> None:
    upload_some(agent, tmp_path)
    code, result, text = ctl(agent, "erase", "--before", "2000-01-01", "--json")
    assert code == 0, text
    assert result["keys_destroyed"] == 0 and result["records_erased"] == 0 and result["before"].startswith("2000")
    assert all(upload["payload"] is not None for upload in agent.request("uploads")["uploads"])
    requests = agent.request("log.show", type="request")["records"]
    assert requests[0]["fields"]["scope"] == "before" and requests[0]["fields"]["outcome"] == "done"


def test_bad_erase_requests_are_refused_by_name(agent: RunningAgent) -> None:
    code, result, _ = ctl(agent, "erase", "--purpose", "advertising", "--json")
    assert code == 1 and result["error"]["kind"] == "UsageError"
    assert "declares no purpose 'advertising'" in result["error"]["message"]
    for argv in (["erase"], ["erase", "--before", "last tuesday"], ["erase", "--all", "--before", "2020-01-01"],
                 ["erase", "--purpose", "Not A Name"]):
        assert ctl(agent, *argv)[0] == 2
    assert agent.request("log.show", type="request")["records"] == []  # nothing was done, nothing to record
