"""Play a timeline in real time: each event at its start, and the follow-ups each one schedules."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from agent.model import Clock
from agent.rig.scenario import Event

FollowUp = tuple[float, Callable[[], None]]
Perform = Callable[[Event], list[FollowUp]]


def play(timeline: list[tuple[float, Event]], perform: Perform, clock: Clock, stop: threading.Event,
         until_s: float | None = None) -> bool:
    """Run ``perform`` for every event at its time (seconds from now), then the follow-ups it returns.

    Returns False when ``stop`` was set before the end, True once everything ran and ``until_s`` passed.
    """
    start = clock.monotonic()
    order = itertools.count()
    due: list[tuple[float, int, Callable[[], list[FollowUp]]]] = []
    for at, event in timeline:
        heapq.heappush(due, (start + at, next(order), _performer(perform, event)))
    end = start + (until_s if until_s is not None else 0.0)
    while due or clock.monotonic() < end:
        wake = due[0][0] if due else end
        if stop.wait(max(0.0, wake - clock.monotonic())):
            return False
        while due and due[0][0] <= clock.monotonic():
            at, _, action = heapq.heappop(due)
            for delay, follow in action():
                heapq.heappush(due, (at + delay, next(order), _plain(follow)))
    return True


def _performer(perform: Perform, event: Event) -> Callable[[], list[FollowUp]]:
    return lambda: perform(event)


def _plain(follow: Callable[[], None]) -> Callable[[], list[FollowUp]]:
    def run() -> list[FollowUp]:
        follow()
        return []

    return run
