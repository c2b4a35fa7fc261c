"""The right of access through the real CLI and daemon on the simulator: ``privacyctl export`` streams the bundle
over the control socket and writes it as the caller; the bundle is complete and verifies offline; targets that
must not be replaced are refused; a repeated export is refused with its reason and recorded; a client that
leaves mid-stream leaves the daemon unharmed; ``privacyctl log show`` shows the records themselves."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.control_protocol import encode_request
from agent.ledger.export import verify_export
from hil_tests.conftest import RunningAgent, wait_until

POLICY_VERSION = "2020-09-08"
RECIPIENT = "Example Fleet Ltd"


def rights_config(tmp_path: Path, name: str, *, repeat_window_s: int = 0) -> Any:
    from agent.config import parse_config

    base = f"sim://ec25?name={name}&seed=3&ttff=1"
    return parse_config({
        "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 1},
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
        "rights": {"repeat_window_s": repeat_window_s},
        "policy": {"version": POLICY_VERSION, "home_region": "CN"},
        "purpose": [{"name": "fleet-tracking", "description": "Show the vehicle's approximate position",
                     "legal_basis": "consent", "grid_m": 2000, "time_bucket_s": 1,
                     "max_points_per_day": 1000, "retention_days": 30, "sinks": ["operator"]}],
        "sink": [{"name": "operator", "url": f"file://{tmp_path / 'outbox.jsonl'}", "recipient": RECIPIENT,
                  "region": "CN"}],
    })


@pytest.fixture
def agent(tmp_path: Path, sim_name: str, agents: Any) -> RunningAgent:
    return agents(rights_config(tmp_path, sim_name), sim_name)


@pytest.fixture
def strict_agent(tmp_path: Path, sim_name: str, agents: Any) -> RunningAgent:
    return agents(rights_config(tmp_path, sim_name, repeat_window_s=3600), sim_name)


def ctl(running: RunningAgent, *args: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--socket", str(running.socket), *args], stdout=out, stderr=err)
    text = out.getvalue()
    parsed = json.loads(text) if text.strip().startswith("{") else None
    return code, parsed, text + err.getvalue()


def bundle_records(path: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(line) for line in archive.read("records.jsonl").splitlines()]


def upload_some(running: RunningAgent, tmp_path: Path, count: int = 2) -> None:
    running.request("consent.grant", purpose="fleet-tracking")
    running.request("location.on", wait_s=10)
    assert wait_until(lambda: len(running.request("uploads")["uploads"]) >= count, timeout_s=20), "no uploads"
    running.request("location.off", wait_s=10)


def test_export_streams_a_complete_bundle_that_verifies(agent: RunningAgent, tmp_path: Path) -> None:
    upload_some(agent, tmp_path)
    out = tmp_path / "mine.zip"
    code, summary, text = ctl(agent, "export", "--out", str(out), "--json")
    assert code == 0, text
    assert summary["path"] == str(out) and summary["bytes"] == out.stat().st_size
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    report = verify_export(out, key=agent.agent.ledger.key_fingerprint())
    assert report.records == summary["records"] and report.head == summary["head"]
    records = bundle_records(out)
    consent = next(r for r in records if r["type"] == "consent")
    assert consent["fields"]["policy_version"] == POLICY_VERSION and consent["fields"]["purpose"] == "fleet-tracking"
    assert consent["fields"]["purpose_hash"]  # the text it was given to: archived in the policy record
    policy = next(r for r in records if r["type"] == "policy")
    assert policy["fields"]["version"] == POLICY_VERSION and "approximate position" in policy["fields"]["purposes_json"]
    uploads = [r for r in records if r["type"] == "upload"]
    assert uploads and all(r["fields"]["recipient"] == RECIPIENT and r["fields"]["region"] == "CN" for r in uploads)
    sent = (tmp_path / "outbox.jsonl").read_bytes()
    for record in uploads:  # the payload, byte for byte as it left
        assert bytes.fromhex(record["personal"]["payload"]["hex"]) in sent
    assert {"switch", "fix_access", "checkpoint"} <= {r["type"] for r in records}
    with zipfile.ZipFile(out) as archive:
        readme = archive.read("README.txt").decode()
        manifest = json.loads(archive.read("manifest.json"))
    for answer in ("What data", "Kept how long", "Show the vehicle's approximate position", RECIPIENT,
                   "privacyctl erase", "privacyctl correct", "records.jsonl"):
        assert answer in readme
    assert POLICY_VERSION in manifest["policy_versions"]
    # the request itself, and how it was answered, is in the next copy
    again = tmp_path / "again.zip"
    assert ctl(agent, "export", "--out", str(again), "--json")[0] == 0
    requests = [r for r in bundle_records(again) if r["type"] == "request"]
    assert requests[-1]["fields"] | {"records": 0} == {"right": "access", "op": "export", "outcome": "answered",
                                                       "by_uid": os.getuid(), "records": 0,
                                                       "erased_records": 0, "bytes": summary["bytes"],
                                                       "head": summary["head"]}


def test_existing_file_symlink_and_directory_are_refused(agent: RunningAgent, tmp_path: Path) -> None:
    existing = tmp_path / "existing.zip"
    existing.write_bytes(b"keep me")
    target = tmp_path / "target"
    target.write_bytes(b"not yours")
    link = tmp_path / "link.zip"
    link.symlink_to(target)
    folder = tmp_path / "folder"
    folder.mkdir()
    code, result, _ = ctl(agent, "export", "--out", str(existing), "--json")
    assert code == 2 and "already exists" in result["error"]["message"] and existing.read_bytes() == b"keep me"
    code, result, _ = ctl(agent, "export", "--out", str(link), "--json")
    assert code == 2 and "symlink" in result["error"]["message"] and link.is_symlink()
    for overwrite in ([], ["--overwrite"]):
        code, result, _ = ctl(agent, "export", "--out", str(folder), "--json", *overwrite)
        assert code == 2 and "directory" in result["error"]["message"]
    code, result, _ = ctl(agent, "export", "--out", str(tmp_path / "missing" / "x.zip"), "--json")
    assert code == 2 and "does not exist" in result["error"]["message"]
    # --overwrite replaces the symlink itself, never what it points to
    code, _, text = ctl(agent, "export", "--out", str(link), "--overwrite", "--json")
    assert code == 0, text
    assert not link.is_symlink() and zipfile.is_zipfile(link) and target.read_bytes() == b"not yours"
    assert ctl(agent, "export", "--out", str(existing), "--overwrite")[0] == 0 and zipfile.is_zipfile(existing)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    # none of the refused targets became a request: they were refused before the agent was asked
    exports = [r for r in agent.request("log.show", type="request")["records"] if r["fields"]["op"] == "export"]
    assert len(exports) == 2


def test_unwritable_directory_is_refused_before_the_agent_is_asked(agent: RunningAgent, tmp_path: Path) -> None:
    if os.getuid() == 0:  # root writes anywhere: a read-only directory is a path under /proc instead
        target = Path("/proc/self/export.zip")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "export.zip"
    code, result, _ = ctl(agent, "export", "--out", str(target), "--json")
    assert code == 1 and result["error"]["kind"] == "ExportError" and "cannot create" in result["error"]["message"]
    assert agent.request("log.show", type="request")["records"] == []


def test_repeated_export_is_refused_with_reason_and_window_end_then_shown(strict_agent: RunningAgent,
                                                                            tmp_path: Path) -> None:
    assert ctl(strict_agent, "export", "--out", str(tmp_path / "first.zip"))[0] == 0
    code, result, _ = ctl(strict_agent, "export", "--out", str(tmp_path / "second.zip"), "--json")
    assert code == 1 and result["error"]["kind"] == "RequestRefused"
    message = result["error"]["message"]
    assert "identical export" in message and "repeat_window_s" in message and "ask again after" in message
    assert not (tmp_path / "second.zip").exists()
    # an erasure changes what an export answers: the next one is a new question, and shows the refusal
    assert ctl(strict_agent, "erase", "--before", "2000-01-01")[0] == 0
    third = tmp_path / "third.zip"
    code, _, text = ctl(strict_agent, "export", "--out", str(third))
    assert code == 0, text
    requests = [r["fields"] for r in bundle_records(third) if r["type"] == "request"]
    refused = [f for f in requests if f["outcome"] == "refused"]
    assert len(refused) == 1 and refused[0]["reason"] == "repeated" and refused[0]["window_ends"].endswith("Z")
    assert [f["op"] for f in requests] == ["export", "export", "erase"]


def test_client_leaving_mid_stream_leaves_the_daemon_unharmed(agent: RunningAgent, tmp_path: Path) -> None:
    ledger = agent.agent.ledger
    for index in range(30_000):  # a bundle far larger than the socket's buffers
        ledger.append("fix_access", {"purpose": "fleet-tracking", "count": index})
    ledger.flush()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(agent.socket))
        conn.sendall(encode_request("export"))
        assert b'"stream":true' in conn.recv(4096)
    # the agent noticed, stopped and recorded it; it answers others as before
    assert wait_until(lambda: any(r["fields"]["outcome"] == "failed"
                                  for r in agent.request("log.show", type="request")["records"]), timeout_s=40)
    assert agent.request("status")
    out = tmp_path / "after.zip"
    code, _, text = ctl(agent, "export", "--out", str(out))
    assert code == 0, text
    assert verify_export(out).records >= 30_000


def test_log_show_gives_the_records_newest_first_and_bounded(agent: RunningAgent, tmp_path: Path) -> None:
    upload_some(agent, tmp_path)
    code, result, text = ctl(agent, "log", "show", "--json")
    assert code == 0, text
    seqs = [record["seq"] for record in result["records"]]
    assert seqs == sorted(seqs, reverse=True) and result["shown"] == len(seqs) <= 100
    code, switches, _ = ctl(agent, "log", "show", "--type", "switch", "--json")
    assert code == 0 and {r["type"] for r in switches["records"]} == {"switch"}
    assert [r["fields"]["desired"] for r in switches["records"]][:2] == ["off", "on"]
    code, uploads, _ = ctl(agent, "log", "show", "--type", "upload", "--limit", "1", "--json")
    assert code == 0 and uploads["shown"] == 1 and uploads["matched"] >= 2
    payload = uploads["records"][0]["personal"]["payload"]
    assert payload.encode() in (tmp_path / "outbox.jsonl").read_bytes()
    code, later, _ = ctl(agent, "log", "show", "--since", "2999-01-01T00:00:00Z", "--json")
    assert code == 0 and later["records"] == [] and later["matched"] == 0
    code, _, text = ctl(agent, "log", "show")
    assert code == 0 and "newest first" in text and "switch" in text
    for bad in (["--type", "Upload!"], ["--since", "yesterday"], ["--limit", "0"], ["--limit", "5000"]):
        assert ctl(agent, "log", "show", *bad)[0] == 2
