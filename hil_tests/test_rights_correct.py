"""Correction and minors through the real CLI and daemon on the simulator: each correction is a request record with
its outcome and changes what the gate does; a minor's location purpose cannot be granted before the guardian's
consent; bad input is refused with the problem named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from hil_tests import test_rights_policy
from hil_tests.conftest import RunningAgent, wait_until
from hil_tests.test_rights_policy import ctl

start = test_rights_policy.start  # the same fixture: agents with a policy, restarted on one state dir


def requests_of(running: RunningAgent) -> list[dict[str, Any]]:
    return [record.fields for record in running.agent.ledger.records() if record.type == "request"]


def test_a_minor_cannot_grant_location_until_the_guardian_consents(start: Callable[..., RunningAgent]) -> None:
    running = start(extra={"subject": {"minor": True}})
    code, out, err = ctl(running, "consent", "grant", "fleet-tracking")
    assert code == cli.EXIT_FAILED and out == ""
    assert "the user is a minor" in err and "privacyctl consent guardian grant" in err
    assert not [r for r in running.agent.ledger.records() if r.type == "consent"]  # nothing recorded
    assert ctl(running, "consent", "guardian", "grant")[0] == 0
    assert ctl(running, "consent", "grant", "fleet-tracking")[0] == 0
    kinds = [r.fields["kind"] for r in running.agent.ledger.records() if r.type == "consent"]
    assert kinds == ["guardian", "purpose"]  # the guardian's declaration is stored like any consent
    assert running.request("status")["guardian"] == {"minor": True, "granted": True}


def test_correcting_minor_status_is_recorded_and_enforced(start: Callable[..., RunningAgent]) -> None:
    running = start()
    code, out, _ = ctl(running, "correct", "minor", "yes", "--json")
    assert code == 0 and json.loads(out)["outcome"] == "applied"
    assert requests_of(running)[-1] == {"right": "correction", "what": "minor", "value": True, "outcome": "applied",
                                        "by_uid": running_uid(), "detail": "a minor needs a guardian's consent"}
    code, _, err = ctl(running, "consent", "grant", "fleet-tracking")
    assert code == cli.EXIT_FAILED and "the user is a minor" in err
    running = start()  # the correction outlives a restart
    assert running.request("status")["guardian"]["minor"] is True
    assert ctl(running, "correct", "guardian", "yes")[0] == 0
    assert ctl(running, "consent", "grant", "fleet-tracking")[0] == 0
    assert requests_of(running)[-1]["what"] == "guardian"


def running_uid() -> int:
    import os

    return os.geteuid()


def test_correcting_the_region_makes_a_home_sink_cross_border(start: Callable[..., RunningAgent],
                                                              tmp_path: Path) -> None:
    running = start()
    running.request("consent.grant", purpose="fleet-tracking")
    code, _, _ = ctl(running, "correct", "region", "EU")
    assert code == 0
    status = running.request("status")
    assert status["home_region"] == "EU" and status["sinks"][0]["cross_border"] is True
    running.request("location.on", wait_s=10)
    assert wait_until(lambda: running.agent.supervisor._fixes_seen >= 3, 10)
    assert running.request("why", purpose="fleet-tracking")["now"][0]["rule"] == "cross-border"
    assert not (tmp_path / "outbox.jsonl").exists()
    assert ctl(running, "consent", "cross-border", "grant", "CN")[0] == 0
    assert wait_until(lambda: (tmp_path / "outbox.jsonl").exists(), 15)


def test_a_wrong_fix_is_flagged_by_its_upload_id(start: Callable[..., RunningAgent], tmp_path: Path) -> None:
    running = start()
    running.request("consent.grant", purpose="fleet-tracking")
    running.request("location.on", wait_s=10)
    assert wait_until(lambda: running.request("uploads")["uploads"], 15), "nothing uploaded"
    upload_id = running.request("uploads")["uploads"][0]["id"]
    code, out, _ = ctl(running, "correct", "wrong-fix", upload_id, "--json")
    result = json.loads(out)
    assert code == 0 and result["delivered"] is True and "cannot be recalled" in result["detail"]
    assert requests_of(running)[-1]["value"] == upload_id and requests_of(running)[-1]["outcome"] == "applied"
    assert upload_id in running.agent.rights.wrong_fixes


def test_an_unknown_upload_id_is_refused_and_the_refusal_recorded(start: Callable[..., RunningAgent]) -> None:
    running = start()
    code, _, err = ctl(running, "correct", "wrong-fix", "0123456789abcdef")
    assert code == cli.EXIT_FAILED and "no upload with this id" in err
    assert requests_of(running)[-1]["outcome"] == "refused"


@pytest.mark.parametrize(("argv", "message"), [
    (["correct", "region", "eu"], "a region is an upper-case code"),
    (["correct", "minor", "perhaps"], "takes yes or no"),
    (["consent", "grant", "no-such-purpose"], "unknown purpose 'no-such-purpose'"),
    (["why", "no-such-purpose"], "unknown purpose 'no-such-purpose'"),
])
def test_bad_input_is_refused_naming_the_problem(start: Callable[..., RunningAgent], argv: list[str],
                                                 message: str) -> None:
    running = start()
    code, _, err = ctl(running, *argv)
    assert code in (cli.EXIT_USAGE, cli.EXIT_FAILED) and message in err
    assert not [r for r in running.agent.ledger.records() if r.type in ("request", "consent")]


def test_a_malformed_value_sent_straight_to_the_socket_is_refused(start: Callable[..., RunningAgent]) -> None:
    from agent.errors import UsageError

    running = start()
    with pytest.raises(UsageError, match="must be one of minor, guardian, region, wrong-fix"):
        running.request("correct", what="birthday", value="2010-01-01")
    with pytest.raises(UsageError, match="takes yes or no"):
        running.request("correct", what="minor", value="2010-01-01")


def test_accepting_a_changed_policy_for_a_minor_without_guardian_names_what_stays_suspended(
        start: Callable[..., RunningAgent]) -> None:
    from hil_tests.test_rights_policy import PURPOSE

    running = start()
    running.request("consent.grant", purpose="fleet-tracking")
    assert ctl(running, "correct", "minor", "yes")[0] == 0
    running = start(purpose={**PURPOSE, "grid_m": 5000}, version="2")
    answer = running.request("policy.accept")
    assert answer["resumed"] == [] and "the user is a minor" in answer["not_resumed"]["fleet-tracking"]
    assert requests_of(running)[-1]["outcome"] == "partly-accepted"
    assert running.request("status")["purposes"][0]["suspended"] is True


def test_a_correction_is_not_a_new_policy_version(start: Callable[..., RunningAgent]) -> None:
    running = start()
    assert ctl(running, "correct", "region", "EU")[0] == 0
    running = start()
    assert [r.fields["event"] for r in running.agent.ledger.records() if r.type == "policy"] == ["archived"]
    status = running.request("status")
    assert status["home_region"] == "EU" and status["policy_notices"] == []


@pytest.mark.parametrize(("argv", "message"), [
    (["incidents", "--since", "yesterday"], "argument --since: must be an ISO 8601 time"),
    (["uploads", "--since", "2026-13-01"], "argument --since: must be an ISO 8601 time"),
    (["uploads", "--purpose", "Not_A_Purpose"], "argument --purpose: must be a purpose name"),
])
def test_a_malformed_date_or_purpose_is_refused_before_the_agent_is_asked(
        start: Callable[..., RunningAgent], argv: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    running = start()
    code, out, _ = ctl(running, *argv)
    assert code == cli.EXIT_USAGE and out == ""
    assert message in capsys.readouterr().err
