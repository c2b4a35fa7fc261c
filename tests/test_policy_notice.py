"""Policy as code: the notice, the RoPA and the PIIA say what the policy enforces; snapshots and their diff tell a
material change from a wording change; corrections fold into the policy in force."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import corrections, policy_versions
from agent.errors import ConfigError, UsageError
from agent.policy_notice import impact_assessment, notice, record_of_processing, render, render_notice
from agent.policy_render import render_documents
from agent.privacy.policy import parse_policy
from tests.privacy_support import BASE_DOC, doc, policy


def test_the_notice_states_every_term_the_gate_enforces() -> None:
    current = policy()
    tree = notice(current)
    fleet = next(item for item in tree["purposes"] if item["purpose"] == "fleet-tracking")
    enforced = current.purpose("fleet-tracking")
    assert enforced is not None
    assert fleet["precision_m"] == enforced.grid_m == 2000
    assert fleet["time_resolution_s"] == enforced.time_bucket_s == 900
    assert fleet["retention_days"] == 30 and fleet["legal_basis"] == "consent" and fleet["needs_consent"]
    assert fleet["recipients"] == [
        {"sink": "operator", "recipient": "Example Fleet Ltd", "region": "CN", "cross_border": False},
        {"sink": "abroad", "recipient": "Example GmbH", "region": "EU", "cross_border": True}]
    malfunction = next(item for item in tree["purposes"] if item["purpose"] == "malfunction")
    assert malfunction["legal_basis"] == "exception: malfunction-detection"
    assert not malfunction["carries_location"] and malfunction["data"] == ["no location", "hdop", "satellites"]
    assert tree["cross_border_regions"] == ["EU"]
    assert any("privacyctl correct" in right["how"] for right in tree["rights"])


def test_text_and_markdown_name_every_purpose_recipient_and_right() -> None:
    current = policy()
    for fmt in ("text", "markdown"):
        text = render_notice(current, fmt)
        for needle in ("fleet-tracking", "malfunction", "Example GmbH in EU", "coarsened to 2000 m", "kept: 30 days",
                       "privacyctl consent withdraw", "privacyctl erase", "outside the home region"):
            assert needle in text, (fmt, needle)
    assert render_notice(current, "markdown").startswith("# Privacy notice (policy 2020-09-08")


def test_json_format_is_the_tree_itself() -> None:
    current = policy()
    assert json.loads(render_notice(current, "json")) == json.loads(json.dumps(notice(current)))


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(UsageError, match="format must be one of text, markdown, json"):
        render(notice(policy()), "html")


def test_a_policy_without_purposes_says_nothing_is_uploaded() -> None:
    assert "nothing is ever uploaded" in render_notice(parse_policy({}), "text")


def test_ropa_lists_transfers_abroad_and_piia_its_triggers() -> None:
    current = policy(subject={"minor": True})
    ropa = record_of_processing(current)
    fleet = ropa["activities"][0]
    assert fleet["transfers_to_third_countries"] == ["Example GmbH (EU)"]
    assert fleet["retention_days"] == 30 and "a minor" in fleet["categories_of_data_subjects"][0]
    piia = impact_assessment(current)
    assert any("whereabouts" in trigger for trigger in piia["triggers"])
    assert any("minor" in trigger for trigger in piia["triggers"])
    assert any("EU" in trigger for trigger in piia["triggers"])
    assert all("TO ASSESS" in item["impact_and_risk"] for item in piia["processing"])


def test_policy_render_reads_the_daemon_config_and_prints_all_three(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(Path("examples/policy.toml").read_text())
    text = render_documents(config, "text", "all")
    assert "Privacy notice (policy 2020-09-08" in text
    assert "Record of processing activities (GDPR Art. 30)" in text
    assert "impact assessment (PIPL Art. 55)" in text
    both = json.loads(render_documents(config, "json", "all"))
    assert set(both) == {"notice", "ropa", "piia"}
    config.write_text('[policy]\nversion = "1"\n')
    with pytest.raises(ConfigError, match="home_region"):
        render_documents(config, "text", "notice")


# -- versions ----------------------------------------------------------------------------------------------
def _changed(mutate: Any) -> list[policy_versions.PurposeChange]:
    document = copy.deepcopy(BASE_DOC)
    mutate(document)
    return policy_versions.diff(policy_versions.snapshot(policy()),
                                policy_versions.snapshot(parse_policy(document)))


def test_the_same_policy_has_no_changes() -> None:
    assert _changed(lambda d: None) == []
    assert policy_versions.diff(None, policy_versions.snapshot(policy())) == []


@pytest.mark.parametrize(("mutate", "term"), [
    (lambda d: d["purpose"][0].update(grid_m=500), "precision_m"),
    (lambda d: d["purpose"][0].update(time_bucket_s=60), "time_resolution_s"),
    (lambda d: d["purpose"][0].update(fields=["speed"]), "data"),
    (lambda d: d["purpose"][0].update(sinks=["operator"]), "recipients"),
    (lambda d: d["sink"][1].update(recipient="Other GmbH"), "recipients"),
    (lambda d: d["sink"][1].update(region="US"), "recipients"),
])
def test_a_material_change_is_named_and_suspends(mutate: Any, term: str) -> None:
    changes = _changed(mutate)
    assert [(change.purpose, change.kind) for change in changes] == [("fleet-tracking", "material")]
    assert term in changes[0].changed and changes[0].as_dict()["suspends"] is True


def test_a_new_description_is_wording_only() -> None:
    changes = _changed(lambda d: d["purpose"][0].update(description="Show where the van roughly is"))
    assert [(change.kind, change.changed) for change in changes] == [("wording", ("description",))]
    assert changes[0].as_dict()["suspends"] is False and changes[0].old_hash != changes[0].new_hash


def test_added_and_removed_purposes() -> None:
    def add(document: dict[str, Any]) -> None:
        document["purpose"].append({"name": "theft", "description": "Find a stolen vehicle",
                                    "legal_basis": "consent", "sinks": ["operator"]})
    assert [(c.purpose, c.kind) for c in _changed(add)] == [("theft", "added")]
    removed = _changed(lambda d: d["purpose"].pop())
    assert [(c.purpose, c.kind, c.as_dict()["suspends"]) for c in removed] == [("malfunction", "removed", False)]


@given(st.text(min_size=1, max_size=60).filter(lambda text: text.strip() and text.isprintable()))
def test_any_description_change_alone_is_never_material(description: str) -> None:
    changes = _changed(lambda d: d["purpose"][0].update(description=description))
    assert all(change.kind == "wording" for change in changes)


# -- corrections -------------------------------------------------------------------------------------------
def test_corrections_fold_in_order_and_only_when_applied() -> None:
    records = [corrections.request_fields("minor", True, "applied", uid=0),
               corrections.request_fields("region", "EU", "applied", uid=0),
               corrections.request_fields("region", "US", "refused", uid=0),
               {"right": "erase", "what": "region", "value": "JP", "outcome": "applied"}]
    corrected = corrections.corrected_policy(policy(), records)
    assert corrected.subject.minor is True and corrected.home_region == "EU"
    assert [p.text_hash for p in corrected.purposes] == [p.text_hash for p in policy().purposes]
    back = corrections.corrected_policy(corrected, [corrections.request_fields("minor", False, "applied", uid=0)])
    assert back.subject.minor is False


@pytest.mark.parametrize(("what", "value", "message"), [
    ("minor", "maybe", "takes yes or no"),
    ("region", "eu", "upper-case code"),
    ("wrong-fix", "a b", "upload id"),
    ("wrong-fix", "", "upload id"),
])
def test_bad_corrections_name_the_problem(what: str, value: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        corrections.check_value(what, value)


def test_unknown_correction_is_refused() -> None:
    with pytest.raises(UsageError, match="must be one of minor, guardian, region, wrong-fix"):
        corrections.check_what("what", "age")


def test_wrong_fixes_are_the_applied_ones() -> None:
    records = [corrections.request_fields("wrong-fix", "abc", "applied", uid=0),
               corrections.request_fields("wrong-fix", "def", "refused", uid=0)]
    assert corrections.wrong_fixes(records) == frozenset({"abc"})


def test_doc_helper_is_unchanged_by_mutations() -> None:
    _changed(lambda d: d["purpose"][0].update(grid_m=500))
    assert doc()["purpose"][0]["grid_m"] == 2000


@given(st.sampled_from(corrections.WHATS), st.one_of(st.text(max_size=80), st.booleans(), st.integers()))
def test_a_correction_value_is_either_valid_for_its_kind_or_refused_by_name(what: str, value: Any) -> None:
    try:
        checked = corrections.check_value(what, value)
    except UsageError as exc:
        assert exc.message and (what in exc.message or "region" in exc.message or "upload id" in exc.message)
        return
    if what in ("minor", "guardian"):
        assert isinstance(checked, bool)
    elif what == "region":
        assert isinstance(checked, str)  # and the policy's own region rule accepts it:
        assert parse_policy({"policy": {"version": "1", "home_region": checked}}).home_region == checked
    else:
        assert isinstance(checked, str) and 1 <= len(checked) <= 64 and checked == value


@pytest.mark.parametrize(("mutate", "term"), [
    (lambda d: d["policy"].update(coarsening="laplace"), "coarsening"),
    (lambda d: d["policy"].update(home_region="EU"), "recipients"),
])
def test_a_policy_wide_change_is_named_but_does_not_suspend(mutate: Any, term: str) -> None:
    changes = _changed(mutate)
    assert {change.kind for change in changes} == {"policy-wide"}
    assert all(term in change.changed and not change.as_dict()["suspends"] for change in changes)
