"""The start-state decision (agent/start_state.py) and the supervisor's reconcile queue (agent/reconcile_queue.py)."""

from __future__ import annotations

import threading

from agent.model import SystemClock
from agent.reconcile_queue import PERIODIC, ReconcileQueue, Ticket
from agent.start_state import DEFAULT, FAIL_CLOSED, LEDGER, claims_more, decide
from agent.state import Desired

ON_3 = Desired(location_on=True, generation=3)
OFF_3 = Desired(location_on=False, generation=3)
OFF_2 = Desired(location_on=False, generation=2)


def test_first_start_is_off_and_recorded_at_the_files_generation() -> None:
    assert decide(None, None).reason == DEFAULT
    assert decide(None, None).generation == 0
    started = decide(OFF_2, None)
    assert (started.reason, started.generation) == (DEFAULT, 2)


def test_the_ledger_wins_over_an_older_file() -> None:
    started = decide(OFF_2, ON_3)
    assert (started.reason, started.generation, started.known) == (LEDGER, 3, 3)
    assert decide(None, ON_3).reason == LEDGER


def test_an_on_the_ledger_never_recorded_starts_off_past_both_generations() -> None:
    started = decide(ON_3, None)
    assert (started.reason, started.generation, started.known) == (FAIL_CLOSED, 4, 0)
    started = decide(ON_3, OFF_3)  # same generation, another state: the file was planted or the ledger lost it
    assert (started.reason, started.generation, started.known) == (FAIL_CLOSED, 4, 3)
    started = decide(Desired(location_on=False, generation=9), ON_3)
    assert (started.reason, started.generation, started.known) == (FAIL_CLOSED, 10, 3)


def test_claims_more_only_when_the_file_is_ahead_or_disagrees() -> None:
    assert claims_more(OFF_2, None)
    assert not claims_more(OFF_2, ON_3)
    assert claims_more(ON_3, OFF_3)
    assert not claims_more(ON_3, ON_3)


def test_a_batch_holds_every_reason_queued_and_their_tickets() -> None:
    queue = ReconcileQueue(SystemClock())
    first, second = Ticket(), Ticket()
    queue.put("user", first)
    queue.put("connected")
    queue.put("check", second)
    reasons, tickets = queue.take(0.0)
    assert reasons == ["user", "connected", "check"]
    assert tickets == [first, second]
    assert queue.take(0.0) == ([PERIODIC], [])


def test_a_waiter_follows_reconciles_until_the_verdict_is_given() -> None:
    queue = ReconcileQueue(SystemClock())
    ticket = Ticket()
    verdicts = iter([None, True])
    answered: list[bool] = []
    waiter = threading.Thread(target=lambda: answered.append(queue.wait(ticket, 30.0, lambda _: next(verdicts))))
    waiter.start()
    queue.release([ticket])  # the first reconcile: "not yet", the waiter asks for the next one
    while waiter.is_alive() and not answered:
        queue.release([])  # the next reconciles release whoever waits for them
        waiter.join(0.01)
    waiter.join()
    assert answered == [True]
