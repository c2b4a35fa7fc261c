"""Rig figures: the scenario runner's overhead, and the soak (the long one lives here, not in the test command).

``rig_runner_overhead``: the wall time of shipped scenarios played end to end (daemon start, ledger verify and
all) against the sum of their scripted waits, measured in the same run; the ratio is scripted / wall, so 1.0
would be no overhead at all. ``rig_soak``: a soak (``--quick``: 1 minute; else the 30-minute reference run of
``docs/reliability.md``, seed 2026); its value is the number of violations, which must be 0.
"""

from __future__ import annotations

import time

from agent.rig.loader import load_all, shipped_scenarios_dir
from agent.rig.runner import run_scenario
from agent.rig.soak import run_soak

OVERHEAD_TARGET = 0.6  # scripted waits are at least 60% of the wall time: start-up and checks add at most ~70%
QUICK_SCENARIOS = ("f12-reboot-autogps", "f10-busy", "f06-unknown-lines")
SOAK_SEED = 2026


def _overhead(quick: bool) -> dict[str, object]:
    scenarios = load_all(shipped_scenarios_dir())
    if quick:
        scenarios = [scenario for scenario in scenarios if scenario.name in QUICK_SCENARIOS]
    scripted = sum(scenario.scripted_wait_s() for scenario in scenarios)
    started = time.monotonic()
    passed = all(run_scenario(scenario).passed for scenario in scenarios)
    wall = time.monotonic() - started
    ratio = scripted / wall
    return {"value": round(wall, 1), "unit": "s wall", "baseline": round(scripted, 1), "ratio": ratio,
            "target": f">= {OVERHEAD_TARGET}", "pass": passed and ratio >= OVERHEAD_TARGET}


def _soak(quick: bool) -> dict[str, object]:
    minutes = 1.0 if quick else 30.0
    tally = run_soak(minutes, SOAK_SEED, load_all(shipped_scenarios_dir()))
    print(tally.table(SOAK_SEED, minutes))
    return {"value": tally.violations(), "unit": f"violations in {tally.scenarios} scenarios",
            "baseline": 0, "ratio": None, "target": "0", "pass": tally.violations() == 0}


def run(quick: bool) -> dict[str, dict[str, object]]:
    return {"rig_runner_overhead": _overhead(quick), "rig_soak": _soak(quick)}
