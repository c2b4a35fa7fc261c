"""pyserial URL handler for ``sim://<model>?seed=7&ttff=5&name=X&port=at|at2|nmea``.

Modelled on pyserial's ``serial/urlhandler/protocol_loop.py``. A vanished channel (unplug, reset in progress,
powered down) behaves as a vanished USB tty does under pyserial: reads and writes raise ``SerialException``
and ``open()`` fails until the channel is back. A port object opened before a drop stays dead after the
channel returns, as a file descriptor of a re-enumerated device does; the caller reopens.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from agent import sim
from agent.errors import AgentError, PortUnavailable
from agent.sim.modem import CHANNELS, SimModem

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_VANISHED = (
    "device reports readiness to read but returned no data (device disconnected or multiple access on port?)"
)
_MIN_WAIT_S = 0.001  # never spin: even a due time in the past waits a little for the lock holder


class Serial(SerialBase):
    """A port of a shared :class:`SimModem`; one reader and one writer thread may use it at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._modem: SimModem | None = None
        self._channel = "at"
        self._generation = 0
        self._cancel_read = False
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------------------------------- open/close

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        url = self.port
        if url is None:
            raise SerialException("Port must be configured before it can be used.")
        modem, channel = self.from_url(url)
        if not modem.is_connected(channel):
            raise SerialException(f"could not open port {self.port}: the simulated device is not present")
        self._modem, self._channel = modem, channel
        self._generation = modem.link_generation(channel)
        self._cancel_read = False
        self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._wake()
        super().close()

    def from_url(self, url: str) -> tuple[SimModem, str]:
        """The shared modem and channel a ``sim://`` URL names; SerialException names a bad part."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sim":
            raise SerialException(f"expected a sim:// URL, got scheme {parts.scheme!r}")
        options = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(options) - {"seed", "ttff", "name", "port"})
        if unknown:
            raise SerialException(f"unknown sim:// option(s): {', '.join(unknown)}")
        try:
            seed = int(_last(options, "seed", "0"))
            ttff = float(_last(options, "ttff", "5"))
        except ValueError as exc:
            raise SerialException("sim:// seed must be an integer and ttff a number of seconds") from exc
        channel = _last(options, "port", "at")
        if channel not in CHANNELS:
            raise SerialException(f"sim:// port must be one of {', '.join(CHANNELS)}")
        if not 0 <= ttff < float("inf"):
            raise SerialException("sim:// ttff must be a finite, non-negative number of seconds")
        try:
            modem = sim.shared_modem(_last(options, "name", "default"), parts.netloc or "ec25", seed, ttff)
        except AgentError as exc:
            raise SerialException(f"bad sim:// URL: {exc}") from exc
        return modem, channel

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """Baud rate, parity and the rest mean nothing to an in-process modem."""

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    def _update_break_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    # ------------------------------------------------------------------------------------------------- I/O

    @property
    def in_waiting(self) -> int:
        modem = self._live()
        return modem.in_waiting(self._channel)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes; blocks until all came, the timeout passed or a cancel_read."""
        modem = self._live()
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        data = bytearray()
        self._cancel_read = False
        with modem.changed:
            while len(data) < size:
                data += self._read_now(modem, size - len(data))
                if len(data) >= size or self._cancel_read or not self.is_open:
                    break
                wait = self._wait_time(modem, deadline)
                if wait is not None and wait <= 0:
                    break
                modem.changed.wait(wait)
        return bytes(data)

    def write(self, data: ReadableBuffer, /) -> int:
        modem = self._live()
        payload = bytes(data)
        try:
            modem.write(self._channel, payload)
        except PortUnavailable as exc:
            raise SerialException(f"write failed: {_VANISHED}") from exc
        return len(payload)

    def reset_input_buffer(self) -> None:
        self._live().discard_output(self._channel)

    def reset_output_buffer(self) -> None:
        self._live()  # writes reach the modem at once: there is never anything to discard

    @property
    def out_waiting(self) -> int:
        self._live()
        return 0

    def cancel_read(self) -> None:
        self._cancel_read = True
        self._wake()

    def cancel_write(self) -> None:
        """Writes never block, so there is nothing to cancel."""

    # -------------------------------------------------------------------------------------------- helpers

    def _live(self) -> SimModem:
        if not self.is_open or self._modem is None:
            raise PortNotOpenError()
        modem = self._modem
        if not modem.is_connected(self._channel) or modem.link_generation(self._channel) != self._generation:
            raise SerialException(_VANISHED)
        return modem

    def _read_now(self, modem: SimModem, size: int) -> bytes:
        if modem.link_generation(self._channel) != self._generation:
            raise SerialException(_VANISHED)
        try:
            return modem.read(self._channel, size)
        except PortUnavailable as exc:
            raise SerialException(_VANISHED) from exc

    def _wait_time(self, modem: SimModem, deadline: float | None) -> float | None:
        """How long to sleep on the condition: until the deadline or the modem's next due output."""
        wait = None if deadline is None else deadline - time.monotonic()
        due = modem.next_due(self._channel)
        if due is not None:
            until_due = max(due - modem.clock.monotonic(), _MIN_WAIT_S)
            wait = until_due if wait is None else min(wait, until_due)
        return wait

    def _wake(self) -> None:
        modem = self._modem
        if modem is not None:
            with modem.changed:
                modem.changed.notify_all()


def _last(options: dict[str, list[str]], key: str, default: str) -> str:
    values = options.get(key)
    return values[-1] if values else default
