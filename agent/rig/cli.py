"""``privacy-agent rig run FILE`` and ``privacy-agent rig soak``: entry points (arguments in, exit codes out)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from agent.errors import UsageError
from agent.model import SystemClock
from agent.rig import modem_events
from agent.rig.loader import load_all, load_scenario, shipped_scenarios_dir
from agent.rig.module import RealModule
from agent.rig.player import FollowUp, play
from agent.rig.report import junit_xml, text_report
from agent.rig.runner import ScenarioResult, run_scenario
from agent.rig.scenario import AGENT_ACTIONS, Event, Scenario
from agent.rig.soak import SoakTally, run_soak
from agent.sim import SimModem


def rig_run_command(args: argparse.Namespace) -> int:
    """Play each scenario file end to end; 0 when every one passed, 1 otherwise."""
    scenarios = [load_scenario(Path(path)) for path in args.files]
    results = []
    for scenario in scenarios:
        result = run_scenario(scenario)
        results.append(result)
        print(text_report(result), flush=True)
    if args.junit_xml:
        Path(args.junit_xml).write_bytes(junit_xml(results))
    failed = sum(1 for result in results if not result.passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def rig_soak_command(args: argparse.Namespace) -> int:
    """Random scenarios until ``--minutes`` passed; prints the table; 1 when any violation is not 0."""
    hardware = None
    if args.port or args.nmea_port or args.rogue_port:
        if not (args.port and args.rogue_port):
            raise UsageError("a soak on a real module needs --port and --rogue-port (and --nmea-port if it has one)")
        hardware = RealModule(args.port, args.nmea_port, args.rogue_port)
    if not 0 < args.minutes <= 24 * 60:
        raise UsageError("--minutes must be above 0 and at most a day")
    directory = Path(args.scenarios) if args.scenarios else shipped_scenarios_dir()
    shipped = load_all(directory) if directory.is_dir() else []

    def progress(result: ScenarioResult, tally: SoakTally) -> None:
        if not result.passed:
            print(text_report(result), file=sys.stderr, flush=True)
        print(f"[{tally.scenarios}] {'PASS' if result.passed else 'FAIL'} {result.scenario.name} "
              f"({result.elapsed_s:.1f} s)", flush=True)

    tally = run_soak(args.minutes, args.seed, shipped, progress, hardware)
    print(tally.table(args.seed, args.minutes))
    return 0 if tally.violations() == 0 else 1


def play_modem_events(scenario: Scenario, modem: SimModem, stop: threading.Event) -> bool:
    """``privacy-agent sim --scenario``: the scenario's modem events on a served modem, in real time.

    Agent-side events (kill, location) belong to the rig's own agent and are skipped, each said once.
    """
    skipped = sorted({event.action for event in scenario.events if event.action in AGENT_ACTIONS})
    if skipped:
        print(f"scenario events left to your agent: {', '.join(skipped)}", flush=True)
    timeline = [(at, event) for at, event in scenario.timeline() if event.action not in AGENT_ACTIONS]

    def perform(event: Event) -> list[FollowUp]:
        print(f"event: {event.action}", flush=True)
        return modem_events.apply(modem, event)

    return play(timeline, perform, SystemClock(), stop)
