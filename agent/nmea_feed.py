"""The NMEA port, read only while location is on.

One thread owns the port while the feed runs; ``stop`` closes the port, so when the switch is off the agent does
not even read the NMEA tty. Bytes go through the sans-I/O :class:`~agent.nmea.fixes.FixDecoder`; each completed
fix is handed to ``on_fix`` (the supervisor, which lets fixes pass only while its gate is open). A vanished port
is reported once and reopened with backoff while the feed runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.errors import PortUnavailable, UsageError
from agent.model import Fix
from agent.nmea.fixes import FixDecoder
from agent.transport import Port, open_port

log = logging.getLogger(__name__)


class NmeaFeed:
    def __init__(self, url: str, *, opener: Callable[[str], Port] = open_port) -> None:
        self.url = url
        self.on_fix: Callable[[Fix], None] = lambda fix: None
        self._opener = opener
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
        decoder = FixDecoder()
        while not stop.is_set():
            try:
                data = port.read(4096)
            except PortUnavailable:
                log.warning("NMEA port vanished: %s", self.url)
                return
            for fix in decoder.feed(data) if data else ():
                self.on_fix(fix)
