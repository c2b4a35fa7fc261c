"""The uploader service: drains the spool into the sinks, one worker thread per sink.

For each sink, oldest message first:

1. ``may_send(message)`` re-checks the gate at send time; when it says no, the message stays queued, unsent,
   and is asked about again on the next pass.
2. ``sink.send(message)``;
   - delivered: ``on_delivered(message)`` (e.g. the ledger's upload record), then ``spool.ack``. A crash between
     the two sends the message again after restart: delivery is at-least-once, receivers de-duplicate on the id;
   - :class:`SinkUnavailable`: ``spool.retry_later`` with a capped, fully jittered exponential backoff, and the
     worker pauses that sink until then (the rest of its queue waits behind the oldest, keeping the order);
   - :class:`SinkRejected`: ``spool.dead_letter`` then ``on_dead(message, reason)``; never retried.

One thread per sink, so that a sink that is down (and makes every send wait for its timeout) holds up only its
own queue. Messages for a sink that is not configured stay queued.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping

from agent.errors import SinkRejected, SinkUnavailable
from agent.model import Clock
from agent.sinks import Sink
from agent.sinks.backoff import Backoff
from agent.spool import Message, Spool

log = logging.getLogger(__name__)

BATCH = 100  # sends per pass, before the due list is read again
MAX_DUE = 1 << 30
CLOCK_SLACK_MS = 60_000


class Uploader:
    def __init__(self, spool: Spool, sinks: Mapping[str, Sink], *, clock: Clock,
                 may_send: Callable[[Message], bool], on_delivered: Callable[[Message], None],
                 on_dead: Callable[[Message, str], None], backoff: Backoff | None = None,
                 rng: random.Random | None = None, poll_s: float = 1.0) -> None:
        """``poll_s`` bounds how long a worker sleeps when it has nothing due: messages put without
        :meth:`wake`, and messages the gate held back, are looked at again within that time."""
        self._spool = spool
        self._clock = clock
        self._may_send = may_send
        self._on_delivered = on_delivered
        self._on_dead = on_dead
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=300.0)
        self._rng = rng or random.Random()
        self._rng_mutex = threading.Lock()  # one random source shared by the workers, seeded in tests
        self._poll_s = poll_s
        self._workers = [_SinkWorker(self, sink_name, sink) for sink_name, sink in sinks.items()]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def wake(self) -> None:
        """Look at the spool now (a message was put, the gate opened, the clock moved)."""
        for worker in self._workers:
            worker.wake()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop every worker, waiting up to ``timeout_s`` in all; True when all have stopped.

        A worker blocked in a send stops when the send returns (bounded by the sink's own timeout); nothing
        is lost either way: an unacknowledged message stays in the spool."""
        for worker in self._workers:
            worker.request_stop()
        deadline = time.monotonic() + timeout_s  # a real wait, whatever clock the messages are timed by
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(worker.alive for worker in self._workers)

    def now_ms(self) -> int:
        return int(self._clock.wall() * 1000)

    def longest_hold_ms(self) -> int:
        """No retry waits longer than this; a longer hold means the wall clock went backwards."""
        return int(self._backoff.cap_s * 1000) + CLOCK_SLACK_MS

    def retry_delay_ms(self, attempts: int) -> int:
        with self._rng_mutex:
            return int(self._backoff.delay_s(attempts, self._rng) * 1000)


class _SinkWorker:
    """The thread that delivers one sink's messages, in order."""

    def __init__(self, uploader: Uploader, sink_name: str, sink: Sink) -> None:
        self._up = uploader
        self._sink_name = sink_name
        self._sink = sink
        self._event = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._paused_until_ms = 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start (or, after a stop, start again) this sink's thread."""
        if self.alive:
            return
        self._stopping = False
        # A message held back by an earlier run's failure keeps the sink paused until its time, so that the
        # messages behind it do not overtake it.
        self._paused_until_ms = self._up._spool.next_due_ms(self._up.now_ms(), sink=self._sink_name) or 0
        self._thread = threading.Thread(target=self._run, name=f"uploader-{self._sink_name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def request_stop(self) -> None:
        self._stopping = True
        self._event.set()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping:
            self._event.clear()
            try:
                more = self._drain()
            except Exception:  # a broken callback or spool must not end delivery for good
                log.exception("uploader for sink %s failed; retrying after the poll interval", self._sink_name)
                more = False
            if not more:
                self._event.wait(self._sleep_s())

    def _drain(self) -> bool:
        """Send up to one batch of what is due, oldest first; True when more may be due right now.

        The whole due list is walked, not only its first batch: messages the gate holds back at the head of
        the queue must not starve the ones behind them."""
        now_ms = self._up.now_ms()
        if self._paused_until_ms - now_ms > self._up.longest_hold_ms():
            self._paused_until_ms = 0  # the wall clock went backwards: do not wait for it to catch up
        if now_ms < self._paused_until_ms:
            return False
        self._up._spool.release_held_after(now_ms + self._up.longest_hold_ms(), sink=self._sink_name)
        sent = 0
        for message in self._up._spool.due(self._up.now_ms(), MAX_DUE, sink=self._sink_name):
            if self._stopping:
                return False
            if not self._up._may_send(message):
                continue  # the gate is closed for it: it stays queued and is asked about on the next pass
            if not self._deliver(message):
                return False
            sent += 1
            if sent == BATCH:
                return True  # look at the spool afresh: newer, older or purged messages
        return False

    def _deliver(self, message: Message) -> bool:
        """Send one message and record the outcome; False when the sink is unavailable (pause it)."""
        spool = self._up._spool
        try:
            self._sink.send(message)
        except SinkRejected as exc:
            spool.dead_letter(message.id, exc.message)
            self._up._on_dead(message, exc.message)
            return True
        except SinkUnavailable as exc:
            self._hold(message, exc.message)
            return False
        self._up._on_delivered(message)
        spool.ack(message.id)
        return True

    def _hold(self, message: Message, reason: str) -> None:
        delay_ms = self._up.retry_delay_ms(message.attempts)
        not_before_ms = self._up.now_ms() + delay_ms
        self._up._spool.retry_later(message.id, not_before_ms)
        self._paused_until_ms = not_before_ms
        log.info("sink %s unavailable (%s); retrying in %.1f s", self._sink_name, reason, delay_ms / 1000)

    def _sleep_s(self) -> float:
        """Until this sink's pause ends or its next held-back message falls due, at most the poll interval."""
        now_ms = self._up.now_ms()
        wake_ms = self._paused_until_ms
        if wake_ms <= now_ms:
            next_due = self._up._spool.next_due_ms(now_ms, sink=self._sink_name)
            wake_ms = next_due if next_due is not None else now_ms + 10**9
        return max(0.0, min(self._up._poll_s, (wake_ms - now_ms) / 1000))
