"""The supervisor's queue: reasons to reconcile, and the callers (tickets) waiting for one to run.

Reader and control threads only put; the supervisor thread takes a batch, reconciles once for all of it, and
releases every ticket in the batch together with those waiting for "the next one, whatever its reason".
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.enforcer import Outcome
from agent.model import Clock

PERIODIC = "periodic"
STOP = "stop"


@dataclass
class Ticket:
    """A caller waiting for the first reconcile that starts after it was queued."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class ReconcileQueue:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queue: queue.Queue[tuple[str, Ticket | None]] = queue.Queue()
        self._waiters: list[Ticket] = []  # released by the next reconcile or check, whatever its reason
        self._waiters_lock = threading.Lock()

    def put(self, reason: str, ticket: Ticket | None = None) -> None:
        self._queue.put((reason, ticket))

    def take(self, timeout: float) -> tuple[list[str], list[Ticket]]:
        """Every reason queued (``periodic`` when none came within ``timeout``), and their tickets."""
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            batch = [(PERIODIC, None)]
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [reason for reason, _ in batch], [ticket for _, ticket in batch if ticket is not None]

    def release(self, tickets: list[Ticket], outcome: Outcome | None = None) -> None:
        with self._waiters_lock:
            tickets = tickets + self._waiters
            self._waiters = []
        for ticket in tickets:
            ticket.outcome = outcome
            ticket.done.set()

    def wait(self, ticket: Ticket, wait_s: float, verdict: Callable[[Outcome | None], bool | None]) -> bool:
        """Wait up to ``wait_s`` through as many reconciles as it takes until ``verdict`` (called with each
        outcome) says True or False; None means "not yet: wait for the next try"."""
        deadline = self._clock.monotonic() + wait_s
        while True:
            if not ticket.done.wait(max(0.0, deadline - self._clock.monotonic())):
                return False
            decided = verdict(ticket.outcome)
            if decided is not None:
                return decided
            if self._clock.monotonic() >= deadline:
                return False
            ticket = Ticket()
            with self._waiters_lock:
                self._waiters.append(ticket)
