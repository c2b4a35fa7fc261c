"""What a run observed, and the expectations and soak figures computed from it (pure: no I/O, no clock).

Times are wall-clock seconds (the simulator and the daemon share the host's clock, so a ``location status``
reply's ``observed_at`` can be compared with the simulator's own record of the hardware at that moment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.rig.scenario import Expectation

DEFAULT_BOUND_S = 10.0  # the soak's reconcile bound when a scenario names none: 1 s interval + reboot + repair
CLAIM_MARGIN_S = 0.3  # a claim is judged only where the hardware held one state this long either side
LOSS_INCIDENTS = frozenset({"ledger-truncated", "state-disagrees"})


@dataclass(slots=True)
class Observations:
    """Everything the runner saw; filled while the scenario plays."""

    gnss: list[tuple[float, bool]] = field(default_factory=list)  # (wall, hardware GNSS on), sampled
    uploads: list[tuple[float, int]] = field(default_factory=list)  # (wall, lines in the file sink)
    feed: list[tuple[float, int]] = field(default_factory=list)  # (wall, sentences read from the local feed)
    off_windows: list[list[float | None]] = field(default_factory=list)  # [acknowledged off at, on asked at]
    claims: list[tuple[float, bool]] = field(default_factory=list)  # (observed_at, "gnss on") from status replies
    acknowledged: list[str] = field(default_factory=list)  # switch states the agent acknowledged, in order
    unconfirmed: list[str] = field(default_factory=list)  # asked for after the last acknowledgement, not confirmed
    final_desired: str | None = None
    incidents: list[str] = field(default_factory=list)
    ledger_ok: bool | None = None
    ledger_message: str = ""
    crashes: int = 0
    hangs: int = 0
    leaks: int = 0  # uploaded payloads carrying one of the module's identifiers
    end: float = 0.0

    def switched_off(self, at: float) -> None:
        if not self.off_windows or self.off_windows[-1][1] is not None:
            self.off_windows.append([at, None])

    def switching_on(self, at: float) -> None:
        if self.off_windows and self.off_windows[-1][1] is None:
            self.off_windows[-1][1] = at


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    passed: bool
    detail: str


def evaluate(expectation: Expectation, seen: Observations) -> CheckResult:
    """Judge one expectation against what was observed."""
    args: Mapping[str, Any] = expectation.args
    check = expectation.check
    if check == "gnss_off_within":
        bound = float(args["within_s"])
        worst = longest_on_while_off(seen)
        return CheckResult(check, worst <= bound,
                           f"GNSS on while off for at most {worst:.1f} s (bound {bound:g} s)")
    if check == "no_upload_while_off":
        uploads, sentences = uploads_while_off(seen), feed_while_off(seen)
        return CheckResult(check, uploads + sentences == 0,
                           f"{uploads} upload(s) and {sentences} local-feed sentence(s) while off")
    if check == "incident":
        kind, wanted = str(args["kind"]), int(args["min_count"])
        found = seen.incidents.count(kind)
        return CheckResult(check, found >= wanted, f"{found} incident(s) of kind {kind} (wanted {wanted}+)")
    if check == "nothing_lost":
        lost = acknowledged_lost(seen)
        return CheckResult(check, lost == 0, f"{lost} acknowledged change(s) lost")
    if check == "ledger_verifies":
        return CheckResult(check, seen.ledger_ok is True, seen.ledger_message or "ledger not verified")
    if check == "daemon_up":
        return CheckResult(check, seen.crashes == 0 and seen.hangs == 0,
                           f"{seen.crashes} crash(es), {seen.hangs} hang(s)")
    raise ValueError(f"unknown check {check}")


def on_stretches_while_off(seen: Observations) -> list[float]:
    """How long each stretch of hardware GNSS on lasted inside a window where the switch was off."""
    stretches: list[float] = []
    for start, stop in seen.off_windows:
        assert start is not None
        end = stop if stop is not None else seen.end
        before = [on for wall, on in seen.gnss if wall < start]
        began: float | None = start if before and before[-1] else None  # already on when the window opened
        for wall, on in seen.gnss:
            if wall < start or wall > end:
                continue
            if on and began is None:
                began = wall
            elif not on and began is not None:
                stretches.append(wall - began)
                began = None
        if began is not None:
            stretches.append(end - began)
    return stretches


def longest_on_while_off(seen: Observations) -> float:
    return max(on_stretches_while_off(seen), default=0.0)


def switch_violations(seen: Observations, bound_s: float) -> int:
    return sum(1 for stretch in on_stretches_while_off(seen) if stretch > bound_s)


def uploads_while_off(seen: Observations) -> int:
    """Lines added to the file sink between samples that both lie inside an off window."""
    return _growth_while_off(seen, seen.uploads)


def feed_while_off(seen: Observations) -> int:
    """Sentences a local reader got from the feed between samples that both lie inside an off window."""
    return _growth_while_off(seen, seen.feed)


def _growth_while_off(seen: Observations, counts: list[tuple[float, int]]) -> int:
    added = 0
    for start, stop in seen.off_windows:
        assert start is not None
        end = stop if stop is not None else seen.end
        inside = [count for wall, count in counts if start <= wall <= end]
        if inside:
            added += max(inside) - inside[0]
    return added


def acknowledged_lost(seen: Observations) -> int:
    """1 when the agent's final desired state is not the last one it acknowledged, or it reported a loss.

    A run that never got the final state (the daemon did not come back) is a crash or hang, counted there."""
    lost = 0
    allowed = {seen.acknowledged[-1], *seen.unconfirmed} if seen.acknowledged else set()
    if allowed and seen.final_desired is not None and seen.final_desired not in allowed:
        lost += 1
    return lost + sum(1 for kind in seen.incidents if kind in LOSS_INCIDENTS)


def false_verified(seen: Observations) -> int:
    """Status replies whose read-back ("observed at T: GNSS on/off") contradicts the hardware at T.

    Only claims where the simulator's samples show one steady state from T - margin to T + margin are judged,
    so a read-back taken during a transition is never miscounted.
    """
    wrong = 0
    for at, claimed_on in seen.claims:
        around = [on for wall, on in seen.gnss if at - CLAIM_MARGIN_S <= wall <= at + CLAIM_MARGIN_S]
        if len(around) >= 2 and len(set(around)) == 1 and around[0] != claimed_on:
            wrong += 1
    return wrong


def identifier_leaks(payload: bytes, identifiers: tuple[str, ...]) -> int:
    """How many of ``identifiers`` occur in ``payload`` (the file sink's bytes), as text."""
    return sum(1 for value in identifiers if value and value.encode("ascii") in payload)
