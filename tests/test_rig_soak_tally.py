"""The soak's random scenarios are reproducible from the seed; its table adds up and flags any violation."""

from __future__ import annotations

import random

from agent.rig.checks import Observations
from agent.rig.runner import ScenarioResult
from agent.rig.soak import SoakTally, random_scenario


def test_the_same_seed_gives_the_same_scenarios() -> None:
    first = [random_scenario(random.Random(7), i, []) for i in range(5)]
    again = [random_scenario(random.Random(7), i, []) for i in range(5)]
    other = [random_scenario(random.Random(8), i, []) for i in range(5)]
    assert first == again
    assert first != other


def test_random_scenarios_check_every_invariant() -> None:
    scenario = random_scenario(random.Random(1), 0, [])
    assert {e.check for e in scenario.expectations} >= {"gnss_off_within", "no_upload_while_off", "nothing_lost",
                                                         "ledger_verifies", "daemon_up"}
    assert 2 <= len(scenario.events) <= 6


def test_the_table_counts_faults_and_violations() -> None:
    scenario = random_scenario(random.Random(1), 0, [])
    clean = Observations(ledger_ok=True, acknowledged=["off"], final_desired="off")
    dirty = Observations(ledger_ok=True, uploads=[(1, 0), (2, 2)], off_windows=[[0.0, None]], end=3, leaks=1)
    tally = SoakTally()
    tally.add(ScenarioResult(scenario, [], clean, 1.0, {"F12": 2}))
    assert tally.violations() == 0
    tally.add(ScenarioResult(scenario, [], dirty, 1.0, {"F8": 1}))
    assert tally.scenarios == 2
    assert tally.uploads_while_off == 2 and tally.identifier_leaks == 1
    assert tally.violations() == 3
    table = tally.table(seed=5, minutes=2)
    assert "seed 5" in table and "F12 2, F8 1" in table
    assert "uploads or local-feed sentences while off" in table
