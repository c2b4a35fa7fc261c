"""The uploader service with its real threads and spool, against sinks that the tests control."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.errors import SinkRejected, SinkUnavailable
from agent.sinks import Backoff
from agent.spool import Message, Spool
from agent.uploader import Uploader
from hil_tests.conftest import wait_until


class ManualClock:
    """Message time that moves only when the test says so (thread waits stay real)."""

    def __init__(self, start_s: float = 1_000_000.0) -> None:
        self.now_s = start_s

    def monotonic(self) -> float:
        return self.now_s

    def wall(self) -> float:
        return self.now_s

    def advance_to_ms(self, when_ms: int) -> None:
        self.now_s = when_ms / 1000


class ScriptedSink:
    """Records every send; raises what ``failure`` says for each message; may hold sends until released."""

    def __init__(self, name: str, clock: ManualClock | None = None) -> None:
        self.name = name
        self.clock = clock
        self.sent: list[str] = []
        self.attempts: list[tuple[str, float]] = []
        self.failure: Callable[[Message], Exception | None] = lambda _m: None
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self.lock:
            self.attempts.append((message.id, self.clock.now_s if self.clock else 0.0))
        self.gate.wait(30)
        error = self.failure(message)
        if error is not None:
            raise error
        with self.lock:
            self.sent.append(message.id)

    def close(self) -> None:
        pass


def message(number: int, *, sink: str = "a", purpose: str = "fleet") -> Message:
    return Message(id=f"{sink}{number}", sink=sink, purpose=purpose, body=b"{}", created_ms=number)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(tmp_path) as opened:
        yield opened


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.dead: list[tuple[str, str]] = []
        self.may: Callable[[Message], bool] = lambda _m: True

    def uploader(self, spool: Spool, sinks: dict[str, ScriptedSink], clock: ManualClock | None = None,
                 **options: object) -> Uploader:
        return Uploader(spool, sinks, clock=clock or ManualClock(), may_send=lambda m: self.may(m),
                        on_delivered=lambda m: self.delivered.append(m.id),
                        on_dead=lambda m, reason: self.dead.append((m.id, reason)),
                        poll_s=0.02, **options)  # type: ignore[arg-type]


def test_delivers_in_order_and_acks(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    for number in (3, 1, 2):
        spool.put(message(number))
    uploader = record.uploader(spool, {"a": sink})
    uploader.start()
    try:
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert sink.sent == ["a1", "a2", "a3"] == record.delivered


def test_a_down_sink_retries_with_growing_seeded_delays(spool: Spool) -> None:
    clock = ManualClock()
    sink, record = ScriptedSink("a", clock), Recorder()
    sink.failure = lambda _m: SinkUnavailable("down")
    backoff = Backoff(base_s=1, cap_s=300)
    expected_rng = random.Random(42)
    spool.put(message(1))
    uploader = record.uploader(spool, {"a": sink}, clock, backoff=backoff, rng=random.Random(42))
    uploader.start()
    try:
        for attempt in range(10):
            assert wait_until(lambda n=attempt: len(sink.attempts) == n + 1)
            assert wait_until(lambda n=attempt: spool.due(10**15)[0].attempts == n + 1)
            [held] = spool.due(10**15)
            delay_ms = held.not_before_ms - int(clock.now_s * 1000)
            assert delay_ms == int(backoff.delay_s(attempt, expected_rng) * 1000)
            assert delay_ms <= 1000 * min(300, 2 ** attempt)
            if attempt == 2:  # just before its time nothing is tried, however often the worker is woken
                clock.advance_to_ms(held.not_before_ms - 1)
                for _ in range(5):
                    uploader.wake()
                    time.sleep(0.02)
                assert len(sink.attempts) == 3
            clock.advance_to_ms(held.not_before_ms)
            uploader.wake()
    finally:
        assert uploader.stop(5)
    assert record.delivered == [] and spool.pending_count() == 1


def test_the_oldest_goes_first_after_an_outage(spool: Spool) -> None:
    clock = ManualClock()
    sink, record = ScriptedSink("a", clock), Recorder()
    down = threading.Event()
    down.set()
    sink.failure = lambda _m: SinkUnavailable("down") if down.is_set() else None
    for number in range(1, 6):
        spool.put(message(number))
    uploader = record.uploader(spool, {"a": sink}, clock, backoff=Backoff(base_s=5, cap_s=5))
    uploader.start()
    try:
        assert wait_until(lambda: len(sink.attempts) == 1)
        down.clear()
        clock.advance_to_ms(int(clock.now_s * 1000) + 5000)
        uploader.wake()
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert [message_id for message_id, _ in sink.attempts] == ["a1", "a1", "a2", "a3", "a4", "a5"]
    assert sink.sent == ["a1", "a2", "a3", "a4", "a5"]


def test_a_message_held_by_an_earlier_run_is_not_overtaken(spool: Spool) -> None:
    clock = ManualClock()
    sink, record = ScriptedSink("a", clock), Recorder()
    spool.put(message(1))
    spool.put(message(2))
    held_until_ms = int(clock.now_s * 1000) + 5000
    spool.retry_later("a1", held_until_ms)  # as the previous run left it
    uploader = record.uploader(spool, {"a": sink}, clock)
    uploader.start()
    try:
        time.sleep(0.1)  # several polls
        assert sink.attempts == []
        clock.advance_to_ms(held_until_ms)
        uploader.wake()
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert sink.sent == ["a1", "a2"]


def test_a_wall_clock_that_went_backwards_does_not_hold_messages(spool: Spool) -> None:
    clock = ManualClock(start_s=2_000_000_000.0)
    sink, record = ScriptedSink("a", clock), Recorder()
    spool.put(message(1))
    spool.put(message(2))
    spool.retry_later("a1", int(clock.now_s * 1000) + 10_000)  # held by the previous run
    clock.now_s = 1_000.0  # rebooted without a real-time clock: 1970
    uploader = record.uploader(spool, {"a": sink}, clock, backoff=Backoff(base_s=1, cap_s=300))
    uploader.start()
    try:
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert sink.sent == ["a1", "a2"]


def test_a_hanging_sink_does_not_block_another(spool: Spool) -> None:
    stuck, healthy, record = ScriptedSink("a"), ScriptedSink("b"), Recorder()
    stuck.gate.clear()  # every send to "a" hangs, like a connect that waits for its timeout
    for number in range(5):
        spool.put(message(number, sink="a"))
        spool.put(message(number, sink="b"))
    uploader = record.uploader(spool, {"a": stuck, "b": healthy})
    uploader.start()
    try:
        assert wait_until(lambda: len(healthy.sent) == 5)
        assert stuck.sent == [] and len(stuck.attempts) == 1
        stuck.gate.set()
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert stuck.sent == [f"a{n}" for n in range(5)]


def test_may_send_false_keeps_messages_queued_and_unsent(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    record.may = lambda m: m.purpose != "withheld"
    spool.put(message(1, purpose="withheld"))
    spool.put(message(2))
    spool.put(message(3, purpose="withheld"))
    uploader = record.uploader(spool, {"a": sink})
    uploader.start()
    try:
        assert wait_until(lambda: sink.sent == ["a2"])
        time.sleep(0.1)  # several passes of the worker
        assert sink.attempts == [("a2", 0.0)]
        assert [m.id for m in spool.due(10**15)] == ["a1", "a3"]
        assert all(m.attempts == 0 for m in spool.due(10**15))
        record.may = lambda _m: True  # the gate opens again
        uploader.wake()
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert sink.sent == ["a2", "a1", "a3"]


def test_many_held_back_messages_do_not_starve_the_rest(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    record.may = lambda m: m.purpose != "withheld"
    for number in range(250):
        spool.put(message(number, purpose="withheld"))
    spool.put(message(1000))
    uploader = record.uploader(spool, {"a": sink})
    uploader.start()
    try:
        assert wait_until(lambda: sink.sent == ["a1000"])
    finally:
        assert uploader.stop(5)
    assert spool.pending_count() == 250


def test_rejected_messages_are_dead_lettered_once(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    sink.failure = lambda m: SinkRejected("HTTP 400") if m.id == "a2" else None
    for number in range(1, 4):
        spool.put(message(number))
    uploader = record.uploader(spool, {"a": sink})
    uploader.start()
    try:
        assert wait_until(lambda: spool.pending_count() == 0)
        time.sleep(0.1)
    finally:
        assert uploader.stop(5)
    assert record.dead == [("a2", "HTTP 400")]
    assert [(m.id, reason) for m, reason in spool.dead_letters()] == [("a2", "HTTP 400")]
    assert [message_id for message_id, _ in sink.attempts] == ["a1", "a2", "a3"]


def test_a_failing_delivery_callback_leaves_the_message_queued(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    failures = [RuntimeError("ledger unavailable")]

    def on_delivered(message: Message) -> None:
        if failures:
            raise failures.pop()
        record.delivered.append(message.id)

    spool.put(message(1))
    uploader = Uploader(spool, {"a": sink}, clock=ManualClock(), may_send=lambda _m: True,
                        on_delivered=on_delivered, on_dead=lambda _m, _r: None, poll_s=0.02)
    uploader.start()
    try:
        assert wait_until(lambda: record.delivered == ["a1"])  # sent again: at-least-once
        assert wait_until(lambda: spool.pending_count() == 0)
    finally:
        assert uploader.stop(5)
    assert sink.sent == ["a1", "a1"]


def test_messages_for_an_unknown_sink_stay_queued(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    spool.put(message(1, sink="gone"))
    spool.put(message(2))
    uploader = record.uploader(spool, {"a": sink})
    uploader.start()
    try:
        assert wait_until(lambda: sink.sent == ["a2"])
    finally:
        assert uploader.stop(5)
    assert [m.id for m in spool.due(10**15)] == ["gone1"]


def test_at_least_once_across_stop_and_start(tmp_path: Path) -> None:
    """Stop the uploader mid-stream (one message held back by a failure), start the same object again, then
    reopen the spool with a new uploader: every message arrives, once, in order."""
    sink, record = ScriptedSink("a"), Recorder()
    total = 40
    with Spool.open(tmp_path) as spool:
        for number in range(total):
            spool.put(message(number))
        sink.failure = lambda m: SinkUnavailable("stopping") if m.id == "a15" else None
        uploader = record.uploader(spool, {"a": sink}, backoff=Backoff(base_s=3600, cap_s=3600))
        uploader.start()
        assert wait_until(lambda: len(sink.attempts) >= 16)
        assert uploader.stop(5)
        uploader.start()  # the same object starts again
        assert uploader.stop(5)
    sink.failure = lambda _m: None
    with Spool.open(tmp_path) as spool:
        clock = ManualClock(start_s=10**7)  # past the hour-long hold of a15
        uploader = record.uploader(spool, {"a": sink}, clock)
        uploader.start()
        try:
            assert wait_until(lambda: spool.pending_count() == 0)
        finally:
            assert uploader.stop(5)
    assert sink.sent == [f"a{n}" for n in range(total)]
    assert record.delivered == sink.sent


def test_stop_returns_false_while_a_send_hangs(spool: Spool) -> None:
    sink, record = ScriptedSink("a"), Recorder()
    sink.gate.clear()
    spool.put(message(1))
    uploader = record.uploader(spool, {"a": sink})
    uploader.start()
    assert wait_until(lambda: len(sink.attempts) == 1)
    assert uploader.stop(0.1) is False
    sink.gate.set()
    assert uploader.stop(5) is True
    assert spool.pending_count() == 0  # the send that was under way finished and was acknowledged
