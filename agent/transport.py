"""Ports by URL: the only module that talks to pyserial.

Production and tests differ by one string, as with pyserial itself: ``/dev/ttyUSB2``, ``sim://ec25?seed=7``
(after ``agent.sim.register()``), ``socket://127.0.0.1:7000``, ``spy:///dev/ttyUSB2``.

pyserial reports a vanished device in several ways (``SerialException`` with "device reports readiness to read but
returned no data", ``OSError`` EIO on write, ``termios.error`` on settings); all of them become
:class:`~agent.errors.PortUnavailable` here, and nowhere else. A read timeout is not an error: ``read`` returns
``b""`` and the caller decides.
"""

from __future__ import annotations

import errno
import termios
from typing import Any

import serial

from agent.errors import PortBusy, PortUnavailable, UsageError

_PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)


class Port:
    """An open port. ``read`` and ``write`` raise only :class:`PortUnavailable`.

    One thread may read while another writes (pyserial allows it for ttys and for the URL handlers we use).
    """

    def __init__(self, url: str, handle: Any) -> None:
        # Any: pyserial's stubs declare in_waiting only on the platform classes, not on SerialBase.
        self.url = url
        self._handle = handle

    def read(self, max_bytes: int = 4096) -> bytes:
        """Bytes available now, waiting at most the port's read timeout; ``b""`` when none arrived."""
        try:
            # One size query and one read: whatever is waiting, or wait (up to the timeout) for the first byte.
            data: bytes = self._handle.read(min(max_bytes, self._handle.in_waiting) or 1)
            return data
        except _PORT_ERRORS as exc:
            raise PortUnavailable("port vanished while reading", port=self.url) from exc

    def write(self, data: bytes) -> None:
        try:
            self._handle.write(data)
            self._handle.flush()
        except _PORT_ERRORS as exc:
            raise PortUnavailable("port vanished while writing", port=self.url) from exc

    def cancel_read(self) -> None:
        """Wake a reader blocked in ``read`` (used on shutdown)."""
        cancel = getattr(self._handle, "cancel_read", None)
        if cancel is not None:
            try:
                cancel()
            except _PORT_ERRORS:
                pass

    def close(self) -> None:
        try:
            self._handle.close()
        except _PORT_ERRORS:
            pass  # closing a vanished port: nothing left to release

    @property
    def is_open(self) -> bool:
        return bool(self._handle.is_open)


def open_port(url: str, *, read_timeout_s: float = 0.1, baudrate: int = 115200, **options: Any) -> Port:
    """Open ``url`` with pyserial's ``serial_for_url``, exclusively.

    A tty is locked with ``flock`` (pyserial's ``exclusive=True``), so two agents, or the agent and another
    program that also locks, never share one modem port; URL handlers without a device ignore the flag.

    Raises:
        UsageError: the URL is empty, names a scheme pyserial does not know, or its handler cannot parse it.
        PortBusy: another program holds the port's lock.
        PortUnavailable: the port exists in principle but cannot be opened now.
    """
    _require_url(url)
    try:
        handle = serial.serial_for_url(url, baudrate=baudrate, timeout=read_timeout_s, write_timeout=5.0,
                                       exclusive=True, **options)
    except ValueError as exc:
        raise _unusable(url, exc) from exc
    except serial.SerialException as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) and "lock" in str(exc):
            raise PortBusy("port is locked by another program", port=url) from exc
        raise PortUnavailable("cannot open port", port=url, reason=_reason(exc)) from exc
    except _PORT_ERRORS as exc:
        raise PortUnavailable("cannot open port", port=url, reason=_reason(exc)) from exc
    except Exception as exc:  # a URL handler's own failure must not end a reader thread
        raise _unusable(url, exc) from exc
    return Port(url, handle)


def check_url(url: str) -> None:
    """Raise UsageError when ``url`` can never be opened: empty, an unknown scheme, or a ``scheme://`` URL its
    handler cannot parse (``sim://ec25?seed=x``, ``loop://?bogus=1``). A device path is not checked: a tty
    that is missing now may be plugged in later."""
    _require_url(url)
    try:
        handle = serial.serial_for_url(url, do_not_open=True)
    except ValueError as exc:
        raise _unusable(url, exc) from exc
    parse = getattr(handle, "from_url", None)
    if "://" in url and callable(parse):
        try:
            parse(url)  # pyserial's URL handlers parse here, at open; nothing is opened
        except Exception as exc:  # including a handler failing on its own message (loop://?bogus=1: KeyError)
            raise _unusable(url, exc) from exc


def _require_url(url: str) -> None:
    if not url or not isinstance(url, str):
        raise UsageError("port URL is empty")


def _unusable(url: str, exc: Exception) -> UsageError:
    """The UsageError for a URL pyserial refuses: its own message when it wrote one (ValueError, or
    SerialException from a URL handler), else only the kind of failure."""
    if isinstance(exc, ValueError | serial.SerialException):
        return UsageError(f"cannot use port URL: {exc}", port=url)
    return UsageError(f"cannot use port URL: its handler cannot parse it ({type(exc).__name__})", port=url)


def _reason(exc: BaseException) -> str:
    """A short, non-personal reason for a failed open (errno name or exception type)."""
    errno_value = getattr(exc, "errno", None)
    if isinstance(errno_value, int):
        return errno.errorcode.get(errno_value, str(errno_value))
    return type(exc).__name__
