"""Incidents: the four plain-language fields for every kind, the flood limit, and the hook's bounds."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import parse_config
from agent.errors import ConfigError
from agent.incident_hook import IncidentHook, run_once
from agent.incidents import WORDING, FloodLimit, wording


@pytest.mark.parametrize("kind", [*WORDING, "a-kind-nobody-declared"])
def test_every_incident_gets_cause_impact_action_and_what_the_user_can_do(kind: str) -> None:
    fields = wording(kind)
    assert set(fields) == {"cause", "impact", "action", "user_can"}
    assert all(isinstance(text, str) and text.strip() for text in fields.values())


def test_the_kinds_the_agent_records_have_their_own_wording() -> None:
    for kind in ("drift", "leak-blocked", "ledger-truncated", "ledger-head-missing", "unauthorised-control"):
        assert wording(kind)["cause"] != wording("a-kind-nobody-declared")["cause"]


def test_flood_limit_admits_a_burst_then_counts_the_rest() -> None:
    limit = FloodLimit(burst=3, window_s=60.0)
    assert [limit.admit(0.0), limit.admit(1.0), limit.admit(2.0)] == [0, 0, 0]
    assert [limit.admit(3.0) for _ in range(10)] == [None] * 10
    assert limit.admit(61.0) == 10  # the next window reports how many were held back
    assert limit.admit(62.0) == 0


@given(st.lists(st.floats(min_value=0, max_value=3600, allow_nan=False), max_size=300))
def test_flood_limit_never_admits_more_than_burst_per_window(times: list[float]) -> None:
    limit = FloodLimit(burst=5, window_s=60.0)
    admitted: list[float] = [now for now in sorted(times) if limit.admit(now) is not None]
    held_back = len(times) - len(admitted)
    assert held_back >= 0
    windows: dict[int, int] = {}
    start = None
    for now in admitted:
        if start is None or now - start >= 60.0:
            start = now
        windows[int(start * 1000)] = windows.get(int(start * 1000), 0) + 1
    assert all(count <= 5 for count in windows.values())


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "hook.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_the_hook_gets_the_incident_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    command = _script(tmp_path, f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())")
    assert run_once(command, {"kind": "drift", "repaired": True}, timeout_s=10) is None
    assert json.loads(out.read_text()) == {"kind": "drift", "repaired": True}


def test_a_failing_hook_reports_its_status(tmp_path: Path) -> None:
    assert run_once(_script(tmp_path, "import sys; sys.exit(3)"), {"kind": "x"}, 10) == \
        "the hook exited with status 3"


def test_a_missing_hook_cannot_start(tmp_path: Path) -> None:
    problem = run_once([str(tmp_path / "nope")], {"kind": "x"}, 10)
    assert problem is not None and problem.startswith("cannot start the hook")


def test_a_hanging_hook_and_its_children_are_killed_at_the_deadline(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    command = _script(tmp_path, f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
open({str(pid_file)!r}, 'w').write(str(child.pid))
time.sleep(60)
""")
    assert run_once(command, {"kind": "x"}, timeout_s=1.0) == "the hook did not finish within 1 s and was killed"
    child = int(pid_file.read_text())
    status = Path(f"/proc/{child}/stat")
    assert not status.exists() or status.read_text().split(")")[1].split()[0] == "Z"


def test_the_hook_thread_never_blocks_submit_and_reports_failures(tmp_path: Path) -> None:
    failures: list[dict[str, Any]] = []
    done = threading.Event()

    def on_failure(failure: dict[str, Any]) -> None:
        failures.append(failure)
        done.set()

    hook = IncidentHook(_script(tmp_path, "import sys; sys.exit(1)"), timeout_s=5.0, on_failure=on_failure)
    hook.start()
    try:
        hook.submit({"kind": "drift"})
        assert done.wait(10)
    finally:
        hook.stop()
    assert failures == [{"kind": "drift", "problem": "the hook exited with status 1"}]


def test_a_full_queue_drops_the_oldest_and_says_so(tmp_path: Path) -> None:
    failures: list[dict[str, Any]] = []
    hook = IncidentHook(_script(tmp_path, "pass"), on_failure=failures.append, queue_limit=2)
    for index in range(5):  # not started: nothing is taken off the queue
        hook.submit({"kind": f"k{index}"})
    hook.start()
    try:
        deadline = time.monotonic() + 10
        while hook.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hook.runs == 2
    finally:
        hook.stop()
    assert failures == [{"kind": "k3", "problem": "3 incidents were dropped: the hook fell behind"}]


def test_incidents_config_is_checked() -> None:
    base: dict[str, Any] = {"modem": {"port": "sim://ec25"}}
    config = parse_config({**base, "incidents": {"command": ["/usr/bin/logger", "-t", "pa"], "timeout_s": 2}})
    assert config.incidents is not None and config.incidents.command == ("/usr/bin/logger", "-t", "pa")
    assert config.incidents.timeout_s == 2.0
    assert parse_config(base).incidents is None
    for bad, message in (({"command": []}, "non-empty list"), ({"command": ["logger"]}, "absolute program path"),
                         ({"command": ["/bin/x", 3]}, "non-empty list"), ({"command": "/bin/x"}, "must be"),
                         ({"command": ["/bin/x"], "timeout_s": 0}, "out of range"),
                         ({"command": ["/bin/x"], "shell": True}, "unknown key")):
        with pytest.raises(ConfigError, match=message):
            parse_config({**base, "incidents": bad})


def test_the_shipped_example_documents_the_incidents_table() -> None:
    """The commented [incidents] table of examples/privacy-agent.toml, uncommented, loads with every key."""
    import tomllib

    from agent.config import _SCHEMA

    example = (Path(__file__).resolve().parents[1] / "examples" / "privacy-agent.toml").read_text()
    block = example[example.index("# [incidents]"):example.index("\n\n", example.index("# [incidents]"))]
    uncommented = "\n".join(line[2:] for line in block.splitlines()
                            if line.startswith("# ") and not line.startswith("# # "))
    raw = tomllib.loads(uncommented)
    assert set(raw["incidents"]) == set(_SCHEMA["incidents"])
    config = parse_config({"modem": {"port": "sim://ec25"}, **raw})
    assert config.incidents is not None and config.incidents.command[0].startswith("/")


def test_lookups_seen_while_off_are_one_incident_per_kind_and_a_flood_is_counted(tmp_path: Path) -> None:
    from agent.incident_log import IncidentLog, lookup_reason
    from agent.ledger import Ledger
    from agent.sim import ManualClock

    clock = ManualClock()
    with Ledger.open(tmp_path / "ledger") as ledger:
        incidents = IncidentLog(ledger, clock)
        wifi, lbs = lookup_reason("+QWIFISCAN"), lookup_reason("+QLBS")
        incidents.record_lookups(["periodic", wifi, wifi, lbs], desired="off")
        first = incidents.list()
        assert [(item["kind"], item["path"], item["urc"]) for item in first] == [
            ("lookup-while-off", "wifi-scan", "+QWIFISCAN"), ("lookup-while-off", "cell-lookup", "+QLBS")]
        assert not any("C2:28" in json.dumps(item) for item in first)  # what it found is never there to keep
        for _ in range(20):
            incidents.record_lookups([wifi], desired="off")
        assert len(incidents.list()) == 5  # the flood limit's burst, then counted
        clock.advance(61.0)
        incidents.record_lookups([wifi], desired="off")
        assert incidents.list()[0]["suppressed_before"] == 17
