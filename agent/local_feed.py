"""The privacy-filtered NMEA feed for programs on the gateway itself (gpsd, chrony through gpsd, fleet apps).

The daemon is the only reader of the modem's NMEA port; local programs read this feed instead, which obeys the
same switch, purposes and precision as uploads (``[local_feed]`` in the config, ``docs/local-feed.md``):

- a fix reaches the feed only through the supervisor (the switch's gate open) and only while the purpose may
  get location now (:meth:`agent.pipeline.Pipeline.local_decision`: switch on and observed, purpose declared and
  consented, no minor without a guardian); each output asks again before every write, and throws away what it
  holds when the answer is no, so nothing at all flows while the switch is off or consent is withdrawn;
- the position is coarsened by the pipeline's coarsener (keyed by the device secret) to the purpose's grid, the
  time cut to its time bucket, one epoch per bucket (more would refine time beyond the bucket), and only the
  fields the purpose allows are kept (:class:`LocalView`, pure);
- sentences are built from scratch from that (:mod:`agent.nmea.writer`): proprietary and unknown sentences,
  satellite views and raw fields never reach a reader, and every checksum is computed anew;
- every epoch served is counted in a ``fix_access`` ledger record per purpose per access window (the time bucket,
  at least a minute, so the log stays bounded), with ``reader`` "local-feed", the precision given and the
  refusals by rule;
- a reader that stops reading never blocks the daemon nor grows its memory: each output holds a bounded
  :class:`~agent.bounded_buffer.DropOldestBuffer` and drops the oldest whole sentences, counted.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agent.config import LocalFeedConfig
from agent.errors import StoreError
from agent.ledger import Ledger
from agent.model import Clock, Fix
from agent.nmea.writer import FeedEpoch, sentences
from agent.pipeline import Access
from agent.privacy.coarsen import Coarsener, bucket_time, decimals_for
from agent.privacy.deidentify import UERE_M
from agent.privacy.gate import Decision
from agent.privacy.policy import Policy, Purpose

log = logging.getLogger(__name__)

READER = "local-feed"
MIN_ACCESS_WINDOW_S = 60


class LocalView:
    """Fix in, the epoch a local reader may see out (pure): coarsened, cut, stripped, one per time bucket."""

    def __init__(self, purpose: Purpose) -> None:
        self.purpose = purpose
        self._decimals = decimals_for(purpose.grid_m)
        self._last_bucket: float | None = None

    def epoch(self, fix: Fix, coarsener: Coarsener) -> FeedEpoch | None:
        """The epoch for ``fix``, or None: not a dated position, or its time bucket was already served."""
        if not fix.valid or fix.lat is None or fix.lon is None or fix.time is None or fix.time.tzinfo is None:
            return None
        if not (math.isfinite(fix.lat) and math.isfinite(fix.lon) and abs(fix.lat) <= 90 and abs(fix.lon) <= 180):
            return None
        cut = bucket_time(fix.time, self.purpose.time_bucket_s)
        stamp = cut.timestamp()
        if self._last_bucket is not None and stamp <= self._last_bucket:
            return None  # this bucket is served, or time went backwards: never a second, finer point
        self._last_bucket = stamp
        accuracy = fix.hdop * UERE_M if fix.hdop is not None and math.isfinite(fix.hdop) else None
        coarse = coarsener.coarsen(fix.lat, fix.lon, self.purpose.grid_m, accuracy)
        allowed = self.purpose.fields
        return FeedEpoch(
            time=cut, lat=coarse.lat, lon=coarse.lon, decimals=self._decimals,
            altitude_m=_whole(fix.altitude_m) if "altitude" in allowed else None,
            speed_kmh=_whole(fix.speed_kmh) if "speed" in allowed else None,
            course_deg=_course(fix.course_deg) if "course" in allowed else None,
            satellites=fix.satellites if "satellites" in allowed else None,
            hdop=round(fix.hdop, 1) if "hdop" in allowed and fix.hdop is not None and math.isfinite(fix.hdop)
            else None,
        )

    def forget(self) -> None:
        """Start over (a new device secret): the next fix is served whatever its bucket."""
        self._last_bucket = None


def _whole(value: float | None) -> int | None:
    return round(value) if value is not None and math.isfinite(value) else None


def _course(value: float | None) -> int | None:
    whole = _whole(value)
    return None if whole is None else whole % 360


class Output(Protocol):
    """Where the feed's epochs go: the pty, the gpsd-JSON server."""

    def send(self, epoch: FeedEpoch, nmea: bytes) -> None: ...

    def discard(self) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class AccessLog:
    """One ``fix_access`` ledger record per access window of the local purpose: epochs served, refusals."""

    def __init__(self, ledger: Ledger, purpose: Purpose) -> None:
        self._ledger = ledger
        self._purpose = purpose
        self._window_ms = max(purpose.time_bucket_s, MIN_ACCESS_WINDOW_S) * 1000
        self._current: Access | None = None

    def served(self, now_ms: int) -> None:
        access = self._at(now_ms)
        access.count += 1
        access.first_ms = access.first_ms or now_ms
        access.last_ms = now_ms

    def refused(self, now_ms: int, rule: str) -> None:
        self._at(now_ms).refused[rule] += 1

    def _at(self, now_ms: int) -> Access:
        window = now_ms - now_ms % self._window_ms
        if self._current is not None and self._current.bucket_ms != window:
            self.flush()
        if self._current is None:
            self._current = Access(bucket_ms=window)
        return self._current

    def flush(self) -> None:
        access, self._current = self._current, None
        if access is None:
            return
        purpose = self._purpose
        fields: dict[str, Any] = {"purpose": purpose.name, "reader": READER, "count": access.count,
                                  "first_ms": access.first_ms, "last_ms": access.last_ms,
                                  "bucket_ms": access.bucket_ms, "grid_m": purpose.grid_m,
                                  "time_bucket_s": purpose.time_bucket_s, "fields": list(purpose.fields),
                                  "refused": dict(sorted(access.refused.items()))}
        try:
            self._ledger.append("fix_access", fields)
        except StoreError as exc:
            log.error("cannot record a local location access: %s", exc)


class LocalFeed:
    """The service: fixes in (the NMEA thread, through the supervisor), filtered epochs out to every output."""

    def __init__(self, purpose: Purpose, ledger: Ledger, *, clock: Clock, decide: Callable[[], Decision],
                 coarsener: Callable[[], Coarsener]) -> None:
        """``decide`` answers "may this purpose get location now"; ``coarsener`` gives the current keyed one."""
        self.purpose = purpose
        self._clock = clock
        self._decide = decide
        self._coarsener = coarsener
        self._view = LocalView(purpose)
        self._access = AccessLog(ledger, purpose)
        self._lock = threading.Lock()
        self.outputs: list[Output] = []
        self.served = 0
        self.refused = 0

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def may_flow(self) -> bool:
        """Asked by each output before every write."""
        return self._decide().allowed

    def on_fix(self, fix: Fix) -> None:
        now_ms = int(self._clock.wall() * 1000)
        decision = self._decide()
        with self._lock:
            if not decision.allowed:
                self.refused += 1
                self._access.refused(now_ms, decision.rule)
                for output in self.outputs:
                    output.discard()
                return
            epoch = self._view.epoch(fix, self._coarsener())
            if epoch is None:
                return
            self.served += 1
            self._access.served(now_ms)
        nmea = sentences(epoch)
        for output in self.outputs:
            output.send(epoch, nmea)

    def drop_unread(self) -> None:
        """The switch's gate closed: what readers have not read yet goes now, not at the next refused fix."""
        for output in self.outputs:
            output.discard()

    def forget(self) -> None:
        """A new device secret: the next fix is served at once, on the new grid."""
        with self._lock:
            self._view.forget()

    def start(self) -> None:
        for output in self.outputs:
            output.start()

    def stop(self) -> None:
        for output in self.outputs:
            output.stop()
        with self._lock:
            self._access.flush()

    def stats(self) -> dict[str, Any]:
        return {"purpose": self.purpose.name, "served": self.served, "refused": self.refused,
                "outputs": [output.stats() for output in self.outputs]}


def build_local_feed(settings: LocalFeedConfig, policy: Policy, ledger: Ledger, *, clock: Clock,
                     local_decision: Callable[[str], Decision], coarsener: Callable[[], Coarsener],
                     link_record: Path | None = None) -> LocalFeed:
    """The feed of ``[local_feed]`` with its pty and, if configured, its gpsd-JSON server (not started).
    ``link_record``: where the pty output remembers the link it placed (see :class:`PtyOutput`)."""
    from agent.local_feed_gpsd import GpsdJsonServer
    from agent.local_feed_pty import PtyOutput

    purpose = policy.purpose(settings.purpose)
    if purpose is None:  # config.py checked it; a policy swapped since is a caller bug
        raise ValueError("the local feed's purpose is not declared")
    feed = LocalFeed(purpose, ledger, clock=clock, decide=lambda: local_decision(purpose.name),
                     coarsener=coarsener)
    feed.add_output(PtyOutput(settings.link, buffer_bytes=settings.buffer_bytes, may_flow=feed.may_flow,
                              record=link_record))
    if settings.gpsd_json is not None:
        feed.add_output(GpsdJsonServer(settings.gpsd_json, device=str(settings.link),
                                       buffer_bytes=settings.buffer_bytes, may_flow=feed.may_flow))
    return feed
