"""Count the sentences a local reader gets from the agent's local NMEA feed (its pty link), across restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import serial

RETRY_S = 0.2


class FeedWatcher:
    """A reader of the feed link, like gpsd would be; reopens it when the daemon restarts (a new pty)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.sentences = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rig-feed", daemon=True)

    def start(self) -> FeedWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with serial.Serial(str(self.link), timeout=RETRY_S) as port:
                    self._read(port)
            except (OSError, serial.SerialException):
                pass  # no link yet, or the daemon went away: try again
            self._stop.wait(RETRY_S)

    def _read(self, port: serial.Serial) -> None:
        # Counted as they arrive: read(4096) would wait out the whole timeout for more bytes and count sentences
        # read before the switch went off only after it, as if they had come while off.
        while not self._stop.is_set():
            self.sentences += port.read(max(1, port.in_waiting)).count(b"$")
