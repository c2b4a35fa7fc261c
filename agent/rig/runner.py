"""``privacy-agent rig run``: play one scenario end to end against a real daemon process on the simulator.

The simulated module is served on ptys in this process (so the rig can inspect the hardware state and inject
faults through ``agent.sim``'s API); the daemon is a separate ``privacy-agent run`` process (so it can be
SIGKILLed) that opens the ptys through ``spy://``. While the timeline plays, an observer samples the
hardware's GNSS state, the file sink and the daemon's ``location status`` answers; the expectations are judged
from those samples afterwards (:mod:`agent.rig.checks`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import AgentError
from agent.model import Clock, SystemClock
from agent.rig import checks, modem_events
from agent.rig.checks import CheckResult, Observations
from agent.rig.daemon_proc import DaemonProcess, write_config
from agent.rig.feed_watch import FeedWatcher
from agent.rig.module import Module, SimulatedModule
from agent.rig.player import FollowUp, play
from agent.rig.scenario import Event, Scenario

SAMPLE_S = 0.1  # hardware and sink sampling period
CLAIM_EVERY_S = 0.5  # how often the observer asks the daemon for ``location status``
START_TIMEOUT_S = 20.0
SWITCH_WAIT_S = 10  # privacyctl location on|off --wait
PURPOSE = "rig-tracking"


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    checks: list[CheckResult]
    observations: Observations
    elapsed_s: float
    faults: dict[str, int] = field(default_factory=dict)
    at_transcript: list[str] = field(default_factory=list)
    nmea_transcript: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks)


ModuleFactory = Callable[[Scenario, Path], Module]


def run_scenario(scenario: Scenario, workdir: Path | None = None,
                 module: ModuleFactory = SimulatedModule) -> ScenarioResult:
    """Play ``scenario`` and judge it; ``workdir`` (default a temporary directory) holds ptys, state, socket.

    ``module`` makes the module under test from the scenario and the workdir: the simulator by default.
    """
    if workdir is not None:
        return _Run(scenario, workdir, module(scenario, workdir)).run()
    with tempfile.TemporaryDirectory(prefix="privacy-agent-rig-") as tmp:
        return _Run(scenario, Path(tmp), module(scenario, Path(tmp))).run()


class _Run:
    def __init__(self, scenario: Scenario, workdir: Path, module: Module, clock: Clock | None = None) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.clock = clock or SystemClock()
        self.module = module
        config = workdir / "config.toml"
        write_config(config, module.at_port, module.nmea_port, workdir, scenario.agent)
        self.daemon = DaemonProcess(config, workdir / "control.sock")
        self.outbox = workdir / "outbox.jsonl"
        self.feed = FeedWatcher(workdir / "feed") if scenario.agent["uploads"] else None
        self.seen = Observations()
        self.faults: dict[str, int] = {}
        self._stop = threading.Event()
        self._restarting = threading.Event()

    def run(self) -> ScenarioResult:
        started = time.monotonic()
        error: str | None = None
        self.module.start()
        observer = threading.Thread(target=self._observe, name="rig-observer", daemon=True)
        try:
            self.daemon.start()
            self._await_enforced()
            if self.feed is not None:
                self.feed.start()
            self._prepare()
            observer.start()
            play(self.scenario.timeline(), self._perform, self.clock, threading.Event(), self.scenario.duration_s)
            self._finish()
        except (AgentError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.seen.end = self.seen.end or self.clock.wall()  # a run cut short ends now
            self._stop.set()
            if observer.is_alive():
                observer.join(timeout=10)
            if self.feed is not None:
                self.feed.stop()
            if not self.daemon.stop():
                self.seen.hangs += 1
            self.module.stop()
        self._verify_ledger()
        self._check_leaks()
        results = [checks.evaluate(expectation, self.seen) for expectation in self.scenario.expectations]
        return ScenarioResult(self.scenario, results, self.seen, time.monotonic() - started, self.faults,
                              list(self.daemon.at_transcript), list(self.daemon.nmea_transcript), error)

    # -------------------------------------------------------------------------------------------- phases

    def _await_enforced(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.daemon.crashed():
                raise TimeoutError("the daemon exited during start-up")
            try:
                if self.daemon.request("location.status", timeout_s=2).get("enforced"):
                    return
            except AgentError:
                pass
            time.sleep(0.05)
        raise TimeoutError("the daemon did not enforce its first state in time")

    def _prepare(self) -> None:
        if self.scenario.agent["uploads"]:
            self.daemon.request("consent.grant", purpose=PURPOSE)
        if self.scenario.agent["location"] == "on":
            self._switch("on")
        else:
            self.seen.switched_off(self.clock.wall())

    def _finish(self) -> None:
        """The last answers: incidents, the final desired state, a status that must come (else a hang)."""
        self._wait_restarted()
        try:
            self.seen.final_desired = str(self.daemon.request("location.status", timeout_s=15)["desired"])
            self.seen.incidents = [str(item.get("kind")) for item in self.daemon.request("incidents")["incidents"]]
        except AgentError:
            self.seen.hangs += 1
        self.seen.end = self.clock.wall()
        if self.daemon.crashed():
            self.seen.crashes += 1

    def _verify_ledger(self) -> None:
        done = subprocess.run([sys.executable, "-m", "agent", "ledger", "verify", "--state-dir",
                               str(self.workdir / "state")], capture_output=True, text=True, timeout=120,
                              check=False)
        self.seen.ledger_ok = done.returncode == 0
        said = (done.stdout.strip() or done.stderr.strip()).splitlines()
        self.seen.ledger_message = said[-1] if said else f"ledger verify exited {done.returncode}"

    def _check_leaks(self) -> None:
        try:
            payload = self.outbox.read_bytes()
        except FileNotFoundError:
            return
        self.seen.leaks = checks.identifier_leaks(payload, self.module.identifiers())

    # --------------------------------------------------------------------------------------------- events

    def _perform(self, event: Event) -> list[FollowUp]:
        kind = modem_events.FAULT_CLASS.get(event.action)
        if kind is not None:
            self.faults[kind] = self.faults.get(kind, 0) + 1
        if event.action == "kill":
            return self._kill(float(event.args["restart_after_s"]))
        if event.action == "location":
            self._switch(str(event.args["state"]))
            return []
        return self.module.apply(event)

    def _kill(self, restart_after_s: float) -> list[FollowUp]:
        self._restarting.set()
        self.daemon.kill()
        return [(restart_after_s, self._restart)]

    def _restart(self) -> None:
        """Start the daemon again, and wait for it apart: the player must go on (a replug may be what the
        restarted daemon is waiting for)."""
        self.daemon.start()
        threading.Thread(target=self._await_restarted, name="rig-restart", daemon=True).start()

    def _await_restarted(self) -> None:
        try:
            self._await_enforced()
        except TimeoutError:
            pass  # a module still away may keep it from enforcing; a daemon that exited is counted by the observer
        finally:
            self._restarting.clear()

    def _wait_restarted(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._restarting.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _switch(self, state: str) -> None:
        """``privacyctl location on|off``: acknowledged once the reply says durable; a refusal or an unconfirmed
        change (the modem did not answer in time) may still become the desired state, so it is remembered too."""
        if state == "on":
            self.seen.switching_on(self.clock.wall())
        try:
            reply = self.daemon.request(f"location.{state}", timeout_s=SWITCH_WAIT_S + 15, wait_s=SWITCH_WAIT_S)
        except AgentError:
            self.seen.unconfirmed.append(state)
            return
        if reply.get("durable"):
            self.seen.acknowledged.append(state)
            self.seen.unconfirmed.clear()
        if state == "off":
            self.seen.switched_off(self.clock.wall())

    # ------------------------------------------------------------------------------------------- observer

    def _observe(self) -> None:
        next_claim = 0.0
        while not self._stop.wait(SAMPLE_S):
            now = self.clock.wall()
            self.seen.gnss.append((now, self.module.gnss_on()))
            self.seen.uploads.append((now, _line_count(self.outbox)))
            if self.feed is not None:
                self.seen.feed.append((now, self.feed.sentences))
            if self.daemon.crashed() and not self._restarting.is_set():
                self.seen.crashes += 1
                self.daemon.expected_exit = True  # counted once
            if time.monotonic() >= next_claim and not self._restarting.is_set():
                next_claim = time.monotonic() + CLAIM_EVERY_S
                self._claim()

    def _claim(self) -> None:
        try:
            reply = self.daemon.request("location.status", timeout_s=5)
        except AgentError:
            return  # restarting, or busy: the final status decides whether it hung
        observed, at = reply.get("observed") or {}, reply.get("observed_at")
        if isinstance(at, str) and observed.get("gnss") in ("on", "off"):
            self.seen.claims.append((_iso_wall(at), observed["gnss"] == "on"))


def _line_count(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def _iso_wall(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

