"""``privacy-agent rig soak``: random scenarios, SIGKILLs and reboots for N minutes, then the reliability table.

Every figure but the first two is a violation whose expected value is 0; the command exits 1 when any is not.
The run is reproducible with ``--seed``: the sequence of scenarios, their events, times and modem seeds come
from one ``random.Random(seed)``.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from agent.rig import checks
from agent.rig.module import RealModule, runs_on_hardware
from agent.rig.runner import ScenarioResult, run_scenario
from agent.rig.scenario import Event, Expectation, Scenario

# Random events: action -> a function of the rng giving its arguments.
_RANDOM_EVENTS: dict[str, Callable[[random.Random], dict[str, object]]] = {
    "reboot": lambda rng: {},
    "unplug": lambda rng: {"seconds": round(rng.uniform(0.5, 3.0), 1), "channel": rng.choice(["all", "at", "nmea"])},
    "rogue": lambda rng: {"line": rng.choice(['AT+QGPS=1', 'AT+QGPSCFG="autogps",1', 'AT+QGPSXTRA=1',
                                              'AT+CREG=2', 'AT+CEREG=2', 'AT+QGPSCFG="outport","usbnmea"'])},
    "garble": lambda rng: {"seconds": round(rng.uniform(1.0, 4.0), 1), "channel": rng.choice(["nmea", "at"]),
                           "probability": rng.choice([0.2, 0.5, 1.0])},
    "bytewise": lambda rng: {"seconds": round(rng.uniform(1.0, 4.0), 1), "chunk_max": rng.choice([1, 2, 8])},
    "urc_inside": lambda rng: {"command": "+QGPS", "urc": rng.choice(["RING", '+QIND: "csq",20,99']), "times": 2},
    "drop": lambda rng: {"command": rng.choice(["+QGPS", "+QGPSEND", "+QGPSCFG"]), "times": 1},
    "delay": lambda rng: {"command": "+QGPS", "delay_s": round(rng.uniform(0.5, 4.0), 1), "times": 1},
    "busy": lambda rng: {"command": rng.choice(["+QGPSEND", "+QGPSCFG", "+QGPS"]), "code": 503,
                         "times": rng.randint(1, 3)},
    "stale_fix": lambda rng: {},
    "kill": lambda rng: {"restart_after_s": round(rng.uniform(0.2, 1.5), 1)},
    "location": lambda rng: {"state": rng.choice(["on", "off"])},
}
_ALWAYS = (Expectation("gnss_off_within", {"within_s": checks.DEFAULT_BOUND_S}),
           Expectation("no_upload_while_off"), Expectation("nothing_lost"), Expectation("ledger_verifies"),
           Expectation("daemon_up"))


HARDWARE_ACTIONS = ("kill", "location", "rogue")  # what a soak can do to a real module


def random_scenario(rng: random.Random, index: int, shipped: Sequence[Scenario],
                    actions: Sequence[str] | None = None) -> Scenario:
    """Half the time a shipped scenario on another modem seed, else a random timeline of 2-6 events
    (drawn from ``actions``, by default every kind)."""
    if shipped and rng.random() < 0.5:
        chosen = rng.choice(list(shipped))
        return replace(chosen, modem={**chosen.modem, "seed": rng.randrange(1000)})
    pool = sorted(actions if actions is not None else _RANDOM_EVENTS)
    events: list[Event] = []
    at = 0.0
    for _ in range(rng.randint(2, 6)):
        at += round(rng.uniform(0.3, 3.0), 1)
        action = rng.choice(pool)
        events.append(Event(action=action, at=at, args=_RANDOM_EVENTS[action](rng)))
    last_end = max(start + event.duration() for start, event in zip((e.at for e in events), events, strict=True))
    return Scenario(name=f"random-{index}", description="random faults, kills and reboots", fault_class=None,
                    duration_s=last_end + checks.DEFAULT_BOUND_S + 2.0,
                    modem={"model": "ec25", "seed": rng.randrange(1000), "ttff_s": 1.0},
                    agent={"location": rng.choice(["on", "off"]), "uploads": True, "reconcile_interval_s": 1.0},
                    events=tuple(events), expectations=_ALWAYS)


@dataclass(slots=True)
class SoakTally:
    """The reliability table's figures, summed over every scenario run."""

    scenarios: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    switch_violations: int = 0
    uploads_while_off: int = 0
    identifier_leaks: int = 0
    acknowledged_lost: int = 0
    false_verified: int = 0
    crashes_or_hangs: int = 0
    failed_scenarios: list[str] = field(default_factory=list)

    def add(self, result: ScenarioResult) -> None:
        seen = result.observations
        self.scenarios += 1
        self.faults.update(result.faults)
        bound = max((float(e.args["within_s"]) for e in result.scenario.expectations
                     if e.check == "gnss_off_within"), default=checks.DEFAULT_BOUND_S)
        self.switch_violations += checks.switch_violations(seen, bound)
        self.uploads_while_off += checks.uploads_while_off(seen) + checks.feed_while_off(seen)
        self.identifier_leaks += seen.leaks
        self.acknowledged_lost += checks.acknowledged_lost(seen) + (0 if seen.ledger_ok else 1)
        self.false_verified += checks.false_verified(seen)
        self.crashes_or_hangs += seen.crashes + seen.hangs + (1 if result.error else 0)
        if not result.passed:
            self.failed_scenarios.append(result.scenario.name)

    def violations(self) -> int:
        return (self.switch_violations + self.uploads_while_off + self.identifier_leaks + self.acknowledged_lost
                + self.false_verified + self.crashes_or_hangs)

    def table(self, seed: int, minutes: float) -> str:
        rows = [("scenarios run", str(self.scenarios), ""),
                ("faults injected", str(sum(self.faults.values())),
                 ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))),
                ("switch violations (GNSS on while off beyond the bound)", str(self.switch_violations), "0"),
                ("uploads or local-feed sentences while off", str(self.uploads_while_off), "0"),
                ("identifier leaks", str(self.identifier_leaks), "0"),
                ("acknowledged records lost", str(self.acknowledged_lost), "0"),
                ("false \"verified\" answers", str(self.false_verified), "0"),
                ("daemon crashes or hangs", str(self.crashes_or_hangs), "0")]
        width = max(len(row[0]) for row in rows)
        lines = [f"soak: seed {seed}, {minutes:g} min", f"{'figure':<{width}}  {'value':>6}  expected / detail"]
        lines += [f"{name:<{width}}  {value:>6}  {detail}" for name, value, detail in rows]
        if self.failed_scenarios:
            lines.append("scenarios with a failed expectation: " + ", ".join(self.failed_scenarios[:20]))
        return "\n".join(lines)


def run_soak(minutes: float, seed: int, shipped: Sequence[Scenario],
             progress: Callable[[ScenarioResult, SoakTally], None] | None = None,
             hardware: RealModule | None = None) -> SoakTally:
    """Random scenarios from ``random.Random(seed)`` until ``minutes`` passed (the last one runs to its end).

    With ``hardware``, every scenario runs on that module, with only the events a real module can take.
    """
    rng = random.Random(seed)
    tally = SoakTally()
    deadline = time.monotonic() + minutes * 60
    actions = HARDWARE_ACTIONS if hardware is not None else None
    usable = [scenario for scenario in shipped if hardware is None or runs_on_hardware(scenario)]
    while time.monotonic() < deadline:
        scenario = random_scenario(rng, tally.scenarios, usable, actions)
        if hardware is None:
            result = run_scenario(scenario)
        else:
            result = run_scenario(scenario, module=lambda _scenario, _workdir: hardware)
        tally.add(result)
        if progress is not None:
            progress(result, tally)
    return tally
