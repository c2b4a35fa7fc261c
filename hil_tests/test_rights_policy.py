"""Policy as code through the real CLI and daemon on the simulator: the notice shown is the one rendered from the
config in force; the policy is archived in the ledger; a material change suspends the purpose until the user
accepts; a wording change only raises a notice; status shows it all on one screen."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.policy_notice import render_notice
from hil_tests.conftest import RunningAgent, wait_until

PURPOSE: dict[str, Any] = {"name": "fleet-tracking", "description": "Show the vehicle's approximate position",
                           "legal_basis": "consent", "grid_m": 2000, "time_bucket_s": 1,
                           "max_points_per_day": 1000, "retention_days": 30, "sinks": ["operator"]}


def rights_config(tmp_path: Path, name: str, *, purpose: dict[str, Any] | None = None, version: str = "1",
                  extra: dict[str, Any] | None = None) -> Any:
    from agent.config import parse_config

    base = f"sim://ec25?name={name}&seed=3&ttff=1"
    return parse_config({
        "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 1},
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
        "policy": {"version": version, "home_region": "CN"},
        "purpose": [purpose or PURPOSE],
        "sink": [{"name": "operator", "url": f"file://{tmp_path / 'outbox.jsonl'}",
                  "recipient": "Example Fleet Ltd", "region": "CN"}],
        **(extra or {}),
    })


@pytest.fixture
def start(tmp_path: Path, sim_name: str) -> Iterator[Callable[..., RunningAgent]]:
    """Start an agent with a chosen policy on the same state dir; the previous one is stopped first."""
    from agent.daemon import Agent

    running: list[Any] = []

    def start_agent(**changes: Any) -> RunningAgent:
        for agent in running:
            agent.stop()
        running.clear()
        agent = Agent(rights_config(tmp_path, sim_name, **changes))
        agent.start()
        running.append(agent)
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        return RunningAgent(agent, sim_name, agent.config.control.socket, agent.config.state.dir)

    try:
        yield start_agent
    finally:
        for agent in running:
            agent.stop()


def ctl(running: RunningAgent, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--socket", str(running.socket), *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def policy_records(running: RunningAgent) -> list[dict[str, Any]]:
    return [record.fields for record in running.agent.ledger.records() if record.type == "policy"]


def test_policy_show_prints_the_notice_rendered_from_the_config_in_force(start: Any) -> None:
    running = start()
    policy = running.agent.uploads.pipeline.policy
    for fmt in ("text", "markdown", "json"):
        code, out, err = ctl(running, "policy", "show", "--format", fmt)
        assert (code, err) == (0, "")
        assert out.rstrip("\n") == render_notice(policy, fmt)
    code, out, _ = ctl(running, "policy", "show", "--format", "json", "--json")
    assert code == 0 and json.loads(out)["notice"]["purposes"][0]["precision_m"] == 2000


def test_a_bad_format_is_refused_before_anything_is_sent(start: Any, capsys: pytest.CaptureFixture[str]) -> None:
    running = start()
    code, _, _ = ctl(running, "policy", "show", "--format", "html")
    assert code == cli.EXIT_USAGE and "invalid choice: 'html'" in capsys.readouterr().err
    from agent.errors import UsageError

    with pytest.raises(UsageError, match="'format' must be one of text, markdown, json"):
        running.request("policy.show", format="html")


def test_the_policy_is_archived_once_per_version(start: Any) -> None:
    running = start()
    first = policy_records(running)
    assert [(item["event"], item["version"]) for item in first] == [("archived", "1")]
    assert "fleet-tracking" in first[0]["purposes_json"] and "Show the vehicle" in first[0]["purposes_json"]
    running = start()  # same policy: nothing new archived
    assert len(policy_records(running)) == 1


def test_a_material_change_suspends_the_purpose_until_the_user_accepts(start: Any, tmp_path: Path) -> None:
    running = start()
    assert running.request("consent.grant", purpose="fleet-tracking")["recorded"]
    finer = {**copy.deepcopy(PURPOSE), "grid_m": 500}
    running = start(purpose=finer, version="2")
    status = running.request("status")
    assert status["purposes"] == [{"purpose": "fleet-tracking", "legal_basis": "consent", "granted": False,
                                   "suspended": True, "precision_m": 500, "time_resolution_s": 1}]
    assert any("suspended" in notice for notice in status["notices"])
    assert {"location", "modem", "incidents", "notices", "ledger"} <= set(status)  # the existing keys stay
    code, out, _ = ctl(running, "policy", "show", "--diff")
    assert code == 0 and "fleet-tracking: material (precision_m), suspended until privacyctl policy accept" in out
    code, out, _ = ctl(running, "status")
    assert code == 0 and "Purpose:    fleet-tracking (consent): suspended" in out
    running.request("location.on", wait_s=10)  # nothing is sent while suspended
    assert wait_until(lambda: running.agent.supervisor._fixes_seen >= 3, 10)
    assert running.request("why", purpose="fleet-tracking")["now"][0]["rule"] == "no-consent"
    assert not (tmp_path / "outbox.jsonl").exists()
    code, out, _ = ctl(running, "policy", "accept", "--json")
    assert code == 0 and json.loads(out) == {"accepted": True, "policy_version": "2", "resumed": ["fleet-tracking"]}
    assert running.request("status")["purposes"][0]["granted"] is True
    assert wait_until(lambda: (tmp_path / "outbox.jsonl").exists(), 15), "nothing sent after acceptance"
    accepted = [r.fields for r in running.agent.ledger.records() if r.type == "request"]
    assert accepted[-1]["right"] == "policy-accept" and accepted[-1]["purposes"] == ["fleet-tracking"]
    running = start(purpose=finer, version="2")  # accepted: no notice after a restart
    assert not running.request("status")["policy_notices"]


def test_a_suspension_outlives_a_restart_until_accepted(start: Any) -> None:
    running = start()
    running.request("consent.grant", purpose="fleet-tracking")
    running = start(purpose={**PURPOSE, "sinks": ["operator"], "fields": ["speed"]}, version="2")
    running = start(purpose={**PURPOSE, "sinks": ["operator"], "fields": ["speed"]}, version="2")
    status = running.request("status")
    assert status["purposes"][0]["suspended"] is True and status["policy_notices"]


def test_a_wording_change_keeps_consent_and_raises_a_notice(start: Any) -> None:
    running = start()
    running.request("consent.grant", purpose="fleet-tracking")
    running = start(purpose={**PURPOSE, "description": "Show roughly where the vehicle is"}, version="1.1")
    status = running.request("status")
    assert status["purposes"][0]["granted"] is True and status["purposes"][0]["suspended"] is False
    assert status["policy_notices"] == ["policy 1.1: the description of purpose fleet-tracking changed "
                                        "(wording only)"]
    diff = running.request("policy.show", diff=True)
    assert diff["changes"] == [{"purpose": "fleet-tracking", "kind": "wording", "changed": ["description"],
                                "suspends": False}]
    assert diff["previous_version"] == "1"


def test_an_added_purpose_waits_for_its_own_consent(start: Any) -> None:
    running = start()
    running = start(version="2", extra={"purpose": [PURPOSE, {**PURPOSE, "name": "theft"}]})
    status = running.request("status")
    assert [(p["purpose"], p["granted"]) for p in status["purposes"]] == [("fleet-tracking", False),
                                                                          ("theft", False)]
    assert any("new purpose theft" in notice for notice in status["notices"])
    assert running.request("policy.accept")["resumed"] == []  # accepting grants nothing new


def test_status_shows_sinks_with_recipient_and_region(start: Any) -> None:
    running = start()
    status = running.request("status")
    assert status["sinks"] == [{"sink": "operator", "recipient": "Example Fleet Ltd", "region": "CN",
                                "cross_border": False}]
    code, out, _ = ctl(running, "status")
    assert code == 0 and "Sink:       operator -> Example Fleet Ltd (CN)" in out
