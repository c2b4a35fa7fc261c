"""The local NMEA feed's cost and latency, with real ptys and threads.

Harness: a "modem" pty whose slave the daemon's NMEA reader (``NmeaFeed``, the thread the daemon runs) opens; the
bench writes one receiver epoch (GGA and RMC at full precision, RMC last) into the master; fixes go to the local
feed (coarsening, time cut, sentence writing) and its pty output; a reader reads the feed's link.

- ``local_feed_latency_p99``: time from writing the modem's epoch to reading the feed's sentences for it, epochs
  paced 20 ms apart. Baseline: the same bytes through a bare pty pair (write, read), measured in the same run.
  Target: p99 under 10 ms.
- ``local_feed_cpu_1hz``: CPU of this process (the daemon's threads; the reader is a separate ``cat`` process)
  over the same seconds at 1 Hz, with the feed and without it (fixes then go to a no-op listener). The value is
  the difference in percentage points of one core. Target: at most 0.5.
- ``local_feed_daemon_cpu``: the whole daemon (its own process, against a simulator in another process) at 1 Hz
  with location on and a consented purpose: with ``[local_feed]`` and a ``cat`` reading its link, against the same
  daemon without the feed, the two taking turns. The difference in percentage points of one core; at most 0.5.
"""

from __future__ import annotations

import datetime as dt
import os
import select
import statistics
import subprocess
import tempfile
import time
import tty
from pathlib import Path

from processes import cpu_share, require_within, start_daemon, start_simulator, stop_all, write_daemon_config

from agent.local_feed import LocalFeed
from agent.local_feed_pty import PtyOutput
from agent.model import SystemClock
from agent.nmea.writer import FeedEpoch, sentences
from agent.nmea_feed import NmeaFeed
from agent.privacy.coarsen import GridCoarsener
from agent.privacy.gate import Decision
from agent.privacy.policy import Purpose

PURPOSE = Purpose(name="local-nav", description="bench", grid_m=2000, time_bucket_s=1, sinks=("operator",))
ALLOWED = Decision(True, "ok", "bench")
T0 = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)
LATENCY_TARGET_S = 0.010
CPU_TARGET_PP = 0.5


class _NoLedger:
    def append(self, *args: object, **kwargs: object) -> None:
        pass


def _modem_epoch(second: int) -> bytes:
    """What a receiver sends for one epoch, at full precision (six decimals of a degree)."""
    return sentences(FeedEpoch(T0 + dt.timedelta(seconds=second), 31.230861 + second * 1e-6, 121.473701, 6,
                               altitude_m=12, speed_kmh=40, course_deg=90, satellites=9, hdop=0.9))


def _raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave


class _Harness:
    def __init__(self, directory: Path, *, with_feed: bool) -> None:
        self.master, slave = _raw_pty()
        self._slave = slave
        self.nmea = NmeaFeed(os.ttyname(slave))
        self.nmea.set_decoding(True)
        self.feed: LocalFeed | None = None
        if with_feed:
            coarsener = GridCoarsener(b"b" * 32)
            self.feed = LocalFeed(PURPOSE, _NoLedger(), clock=SystemClock(),  # type: ignore[arg-type]
                                  decide=lambda: ALLOWED, coarsener=lambda: coarsener)
            self.feed.add_output(PtyOutput(directory / "feed", buffer_bytes=65536, may_flow=self.feed.may_flow))
            self.nmea.on_fix = self.feed.on_fix
            self.feed.start()
        else:
            self.nmea.on_fix = lambda fix: None
        self.nmea.start()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def stop(self) -> None:
        self.nmea.stop()
        if self.feed is not None:
            self.feed.stop()
        os.close(self.master)
        os.close(self._slave)


def _read_until(fd: int, marker: bytes, timeout_s: float = 2.0) -> bool:
    data = b""
    deadline = time.monotonic() + timeout_s
    while marker not in data and time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if readable:
            data += os.read(fd, 4096)
    return marker in data


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def _latencies(epochs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as directory:
        harness = _Harness(Path(directory), with_feed=True)
        reader = os.open(Path(directory) / "feed", os.O_RDONLY | os.O_NOCTTY)
        try:
            found = []
            for second in range(epochs + 3):
                started = time.perf_counter()
                harness.write(_modem_epoch(second))
                # the first epochs teach the decoder its ender: only the epochs after them are timed
                if _read_until(reader, b"$GPRMC", 0.5 if second < 3 else 2.0) and second >= 3:
                    found.append(time.perf_counter() - started)
                time.sleep(0.02)
            return found
        finally:
            os.close(reader)
            harness.stop()


def _bare_pty_latencies(epochs: int) -> list[float]:
    master, slave = _raw_pty()
    try:
        found = []
        for second in range(epochs):
            data = _modem_epoch(second)
            started = time.perf_counter()
            os.write(master, data)
            if _read_until(slave, b"$GPRMC"):
                found.append(time.perf_counter() - started)
            time.sleep(0.02)
        return found
    finally:
        os.close(master)
        os.close(slave)


def _cpu_at_1hz(seconds: int, *, with_feed: bool) -> float:
    """CPU seconds of this process per wall second while the harness runs at 1 Hz."""
    with tempfile.TemporaryDirectory() as directory:
        harness = _Harness(Path(directory), with_feed=with_feed)
        reader = None
        if with_feed:
            reader = subprocess.Popen(["cat", str(Path(directory) / "feed")], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            cpu_started, wall_started = time.process_time(), time.monotonic()
            for second in range(seconds):
                harness.write(_modem_epoch(second))
                time.sleep(max(0.0, wall_started + second + 1 - time.monotonic()))
            return (time.process_time() - cpu_started) / (time.monotonic() - wall_started)
        finally:
            if reader is not None:
                reader.terminate()
                reader.wait(timeout=5)
            harness.stop()


def _daemon_cpu(seconds: int, *, with_feed: bool) -> float:
    """The daemon process's CPU share (percent of one core) at 1 Hz, with or without the local feed."""
    from agent.control import request

    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        simulator, links = start_simulator(tmp)
        processes = [simulator]
        try:
            require_within(lambda: all(path.exists() for path in links.values()), 15, "the simulator")
            feed = f'[local_feed]\nlink = "{tmp / "feed"}"\npurpose = "local-nav"\n' if with_feed else ""
            config = write_daemon_config(tmp, links, (
                '[policy]\nversion = "1"\nhome_region = "CN"\n'
                '[[purpose]]\nname = "local-nav"\ndescription = "Navigation on the gateway"\n'
                'legal_basis = "consent"\ntime_bucket_s = 1\nmax_points_per_day = 86400\nsinks = ["outbox"]\n'
                f'[[sink]]\nname = "outbox"\nurl = "file://{tmp / "outbox.jsonl"}"\nrecipient = "Bench"\n'
                'region = "CN"\n' + feed))
            daemon = start_daemon(config)
            processes.append(daemon)
            require_within(lambda: (tmp / "c.sock").exists(), 15, "the daemon")
            time.sleep(1)
            request(tmp / "c.sock", "consent.grant", {"purpose": "local-nav"})
            request(tmp / "c.sock", "location.on", {"wait_s": 10})
            if with_feed:
                require_within(lambda: (tmp / "feed").exists(), 15, "the local feed")
                with open(tmp / "read.nmea", "wb") as sink:
                    processes.append(subprocess.Popen(["cat", str(tmp / "feed")], stdout=sink))
            time.sleep(2)
            share = cpu_share(daemon.pid, seconds)
            if with_feed and b"$GPRMC" not in (tmp / "read.nmea").read_bytes():
                raise RuntimeError("the local feed's reader got no sentence: the measurement would mean nothing")
            return share
        finally:
            stop_all(processes)


def run(quick: bool) -> dict[str, dict[str, object]]:
    epochs = 100 if quick else 500
    ours = _latencies(epochs)
    bare = _bare_pty_latencies(epochs)
    p99, bare_p99 = _p99(ours), _p99(bare)
    seconds = 5 if quick else 30
    without, with_feed = [], []
    for _ in range(1 if quick else 2):  # taking turns, so that a burst of load on the machine hits both
        without.append(_cpu_at_1hz(seconds, with_feed=False))
        with_feed.append(_cpu_at_1hz(seconds, with_feed=True))
    increase_pp = (min(with_feed) - min(without)) * 100
    received = len(ours) / epochs
    daemon_seconds = 15 if quick else 60
    daemon_without = _daemon_cpu(daemon_seconds, with_feed=False)
    daemon_with = _daemon_cpu(daemon_seconds, with_feed=True)
    daemon_increase = daemon_with - daemon_without
    return {
        "local_feed_daemon_cpu": {
            "value": round(daemon_increase, 3), "unit": "percentage points of one core (whole daemon)",
            "baseline": round(daemon_without, 3), "ratio": daemon_with / daemon_without if daemon_without else None,
            "target": f"<= {CPU_TARGET_PP} pp", "pass": daemon_increase <= CPU_TARGET_PP,
        },
        "local_feed_latency_p99": {
            "value": round(p99 * 1000, 3), "unit": "ms", "baseline": round(bare_p99 * 1000, 3),
            "ratio": p99 / bare_p99 if bare_p99 else None, "target": f"< {LATENCY_TARGET_S * 1000:g} ms",
            "pass": p99 < LATENCY_TARGET_S and received >= 0.99,
        },
        "local_feed_cpu_1hz": {
            "value": round(increase_pp, 3), "unit": "percentage points of one core",
            "baseline": round(min(without) * 100, 3), "ratio": min(with_feed) / min(without) if min(without) else None,
            "target": f"<= {CPU_TARGET_PP} pp", "pass": increase_pp <= CPU_TARGET_PP,
        },
    }
