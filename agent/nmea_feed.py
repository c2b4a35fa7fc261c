"""The NMEA port: decoded while location is on, watched while it is off.

One thread owns the port for the daemon's whole life; the port stays open either way.

- **Decoding** (location on and verified): bytes go through the sans-I/O :class:`~agent.nmea.fixes.FixDecoder`;
  each completed fix is handed to ``on_fix`` (the supervisor, which lets fixes pass only while its gate is open).
- **Watching** (location off): every byte is read and thrown away unparsed and unstored. With ``outport`` "none"
  and GNSS off the port is silent, so any byte at all proves that the engine and its output are back on (another
  program, ``autogps``): ``on_bytes_while_off`` is called at once (at most every ``report_every_s``), and the
  supervisor re-checks the modem and records the drift it finds.

A vanished port is reported once and reopened with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.errors import PortUnavailable, UsageError
from agent.model import Fix
from agent.nmea.fixes import FixDecoder
from agent.transport import Port, open_port

log = logging.getLogger(__name__)


class NmeaFeed:
    def __init__(self, url: str, *, opener: Callable[[str], Port] = open_port, report_every_s: float = 0.5) -> None:
        self.url = url
        self.on_fix: Callable[[Fix], None] = lambda fix: None
        self.on_bytes_while_off: Callable[[], None] = lambda: None
        self._opener = opener
        self._report_every_s = report_every_s
        self._lock = threading.Lock()
        self._decoding = False
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def decoding(self) -> bool:
        return self._decoding

    def set_decoding(self, decoding: bool) -> None:
        """True: decode fixes; False: read and discard, reporting any byte. Takes effect at the next read."""
        self._decoding = decoding

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="nmea-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            stop, thread = self._stop, self._thread
            self._stop = self._thread = None
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _run(self, stop: threading.Event) -> None:
        delay, reported = 0.2, False
        while not stop.is_set():
            try:
                port = self._opener(self.url)
            except (PortUnavailable, UsageError) as exc:  # a bad URL must not end the thread either
                if not reported:
                    log.warning("NMEA port unavailable, retrying: %s", exc)
                    reported = True
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay, reported = 0.2, False
            try:
                self._pump(port, stop)
            finally:
                port.close()

    def _pump(self, port: Port, stop: threading.Event) -> None:
        decoder: FixDecoder | None = None
        last_report = float("-inf")
        while not stop.is_set():
            try:
                data = port.read(4096)
            except PortUnavailable:
                log.warning("NMEA port vanished: %s", self.url)
                return
            if not data:
                continue
            if not self._decoding:
                decoder = None  # nothing read while off is kept, not even a partial sentence
                now = time.monotonic()
                if now - last_report >= self._report_every_s:
                    last_report = now
                    self.on_bytes_while_off()
                continue
            if decoder is None:
                decoder = FixDecoder()
            for fix in decoder.feed(data):
                self.on_fix(fix)
