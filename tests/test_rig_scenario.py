"""The scenario format: shipped files parse and cover F1-F15; bad files are refused with the problem named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import UsageError
from agent.rig.loader import load_all, load_scenario, shipped_scenarios_dir
from agent.rig.scenario import ACTIONS, FAULT_CLASSES, Event, parse_scenario, schedule

MINIMAL: dict[str, Any] = {"name": "x", "description": "d", "expect": [{"check": "daemon_up"}]}


def with_(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL, **changes}


def test_shipped_scenarios_cover_every_fault_class_with_a_one_line_description() -> None:
    scenarios = load_all(shipped_scenarios_dir())
    assert {s.fault_class for s in scenarios} >= set(FAULT_CLASSES)
    for scenario in scenarios:
        assert "\n" not in scenario.description and len(scenario.description) > 20
        assert scenario.expectations


def test_shipped_scenarios_are_named_after_their_files() -> None:
    for path in sorted(shipped_scenarios_dir().glob("*.toml")):
        assert load_scenario(path).name == path.stem


def test_an_event_after_another_starts_when_that_one_ends() -> None:
    scenario = parse_scenario(with_(event=[
        {"id": "cut", "at": 1.0, "do": "unplug", "seconds": 3},
        {"after": "cut", "at": 0.5, "do": "rogue", "line": "AT+QGPS=1"},
        {"at": 2.0, "do": "reboot"},
    ]))
    assert [(start, event.action) for start, event in scenario.timeline()] == [
        (1.0, "unplug"), (2.0, "reboot"), (4.5, "rogue")]
    assert scenario.duration_s >= 4.5


@pytest.mark.parametrize(("document", "problem"), [
    (with_(surprise=1), "unknown key 'surprise'"),
    (with_(event=[{"at": 1, "do": "explode"}]), "'do' must be one of"),
    (with_(event=[{"at": 1, "do": "unplug"}]), "missing seconds"),
    (with_(event=[{"do": "reboot"}]), "give 'at'"),
    (with_(event=[{"after": "nobody", "do": "reboot"}]), "names no event id"),
    (with_(event=[{"id": "a", "after": "b", "do": "reboot"}, {"id": "b", "after": "a", "do": "reboot"}]), "cycle"),
    (with_(event=[{"at": -1, "do": "reboot"}]), "not negative"),
    (with_(event=[{"at": 1, "do": "rogue", "line": "AT\r\nAT"}]), "one line of printable text"),
    (with_(event=[{"at": 1, "do": "busy", "command": "+QGPS", "code": 0}]), "at least 1"),
    (with_(event=[{"at": 1, "do": "location", "state": "maybe"}]), "'on' or 'off'"),
    (with_(expect=[]), "at least one [[expect]]"),
    (with_(expect=[{"check": "gnss_off_within"}]), "missing within_s"),
    (with_(fault_class="F16"), "F1 to F15"),
    (with_(agent={"location": "sideways"}), "[agent] location"),
    (with_(modem={"seed": "seven"}), "wrong type"),
    (with_(name="Bad Name"), "scenario name"),
])
def test_bad_documents_are_refused_naming_the_problem(document: dict[str, Any], problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_scenario(document)
    assert problem in str(caught.value)


def test_a_missing_or_broken_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_scenario(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_scenario(broken)


_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True)
                       | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
_event_tables = st.fixed_dictionaries({"do": st.sampled_from(sorted(ACTIONS)) | st.text(max_size=5)},
                                      optional={"at": _values, "after": _values, "id": _values, "seconds": _values,
                                                "line": _values, "command": _values, "state": _values})


@given(st.dictionaries(st.sampled_from(["name", "description", "event", "expect", "modem", "agent", "duration_s",
                                        "fault_class", "other"]), _values, max_size=6),
       st.lists(_event_tables, max_size=4))
def test_any_document_parses_or_raises_usage_error_only(document: dict[str, Any], events: list[Any]) -> None:
    try:
        parse_scenario({**MINIMAL, **document, "event": events})
    except UsageError:
        pass


@given(st.lists(st.tuples(st.floats(0, 100), st.sampled_from(["reboot", "stale_fix"]),
                          st.integers(-1, 5)), max_size=8))
def test_a_timeline_is_sorted_and_never_before_its_anchor(specs: list[tuple[float, str, int]]) -> None:
    events = []
    for index, (at, action, anchor) in enumerate(specs):
        after = f"e{anchor}" if 0 <= anchor < index else None
        events.append(Event(action=action, at=at, after=after, id=f"e{index}"))
    timeline = schedule(tuple(events))
    starts = [start for start, _ in timeline]
    assert starts == sorted(starts)
    start_of = {event.id: start for start, event in timeline}
    for event in events:
        assert start_of[event.id] >= event.at
        if event.after is not None:
            assert start_of[event.id] >= start_of[event.after]
