"""The client half of the control socket's transport: one request line out, one reply line back.

Shared by ``privacyctl`` (:mod:`agent.cli`) and :func:`agent.control.request`. Standard library only and
nothing else from the package, so that ``privacyctl`` starts as fast as a bare interpreter allows; each
caller turns the exceptions below into its own errors.

A "busy" reply (every connection slot the caller may take is in use) is retried here, with capped exponential
backoff and full jitter, until the caller's own timeout; only then is the busy reply handed back. Retrying is
safe for every op: the agent refuses a connection as busy before reading its request, so nothing ran. Jitter
keeps clients that were turned away together from all coming back at the same instant.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import time
from collections.abc import Callable, Iterator

MAX_CHUNK = 65536
MAX_REPLY_BYTES = 1 << 20  # the agent's replies are a few KiB; more is not the agent talking
# A purpose name, as the agent and privacyctl both check it.


# The error kind of a busy reply: the class name of agent.errors.AgentBusy (a test holds the two together).
BUSY_KIND = "AgentBusy"
BACKOFF_FIRST_S = 0.01
BACKOFF_CAP_S = 0.5
_MAX_BUSY_REPLY_BYTES = 512  # a busy reply is short; anything longer is some other answer


class ReplyTooLarge(ValueError):
    """The other end sent more than :data:`MAX_REPLY_BYTES` without ending its line."""


def exchange(path: str, line: bytes, timeout_s: float, *,
             jitter: Callable[[float], float] | None = None) -> bytes:
    """Send ``line`` (LF-terminated) to the unix socket at ``path``; return the first reply line, LF removed.

    A busy reply is retried (see the module docstring) while ``timeout_s`` lasts; the last busy reply is
    returned when the next attempt would start too late. ``jitter(ceiling)`` picks each pause (uniform in
    ``[0, ceiling]`` by default).

    Raises TimeoutError when no whole reply line arrives within ``timeout_s`` (or the agent's queue of new
    connections stays full that long), EOFError when the agent closes the connection without replying,
    ReplyTooLarge for a reply line over :data:`MAX_REPLY_BYTES`, and OSError when the socket cannot be reached.
    """
    pick = jitter or _uniform_jitter
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        reply = _exchange_once(path, line, deadline)
        if not is_busy_reply(reply):
            return reply
        pause = pick(backoff_ceiling_s(attempt))
        if time.monotonic() + pause >= deadline:
            return reply
        time.sleep(pause)
        attempt += 1


def backoff_ceiling_s(attempt: int) -> float:
    """The longest pause before retry number ``attempt + 1``: doubling from BACKOFF_FIRST_S, capped."""
    return min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2.0 ** min(attempt, 32))


def is_busy_reply(reply: bytes) -> bool:
    """Whether a reply line is the agent's "busy, try again" refusal."""
    if len(reply) > _MAX_BUSY_REPLY_BYTES or BUSY_KIND.encode() not in reply:
        return False
    try:
        message = json.loads(reply)
    except (ValueError, RecursionError):
        return False
    if not isinstance(message, dict) or message.get("ok") is not False:
        return False
    error = message.get("error")
    return isinstance(error, dict) and error.get("kind") == BUSY_KIND


def _uniform_jitter(ceiling_s: float) -> float:
    return random.uniform(0.0, ceiling_s)  # spreading retries, not a secret: no CSPRNG needed


def _exchange_once(path: str, line: bytes, deadline: float) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        _connect(conn, path, deadline)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(line)  # an agent that refused early (busy, too large) has queued its reply: read it
        return _read_line(conn, deadline)


def _connect(conn: socket.socket, path: str, deadline: float) -> None:
    while True:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            conn.connect(path)
            return
        except BlockingIOError:  # EAGAIN: the agent's listen queue is full; it is busy, not gone
            if time.monotonic() >= deadline:
                raise TimeoutError("the agent's queue of new connections stayed full") from None
            time.sleep(0.005)


def _read_line(conn: socket.socket, deadline: float) -> bytes:
    buffer = bytearray()
    while True:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = conn.recv(MAX_CHUNK)
        if not chunk:
            break
        end = chunk.find(b"\n")
        if end >= 0:
            buffer += chunk[:end]
            return bytes(buffer)
        buffer += chunk
        if len(buffer) > MAX_REPLY_BYTES:
            raise ReplyTooLarge(f"the reply is longer than {MAX_REPLY_BYTES} bytes")
    if not buffer:
        raise EOFError("the agent closed the connection without replying")
    return bytes(buffer)


# -- streams (the export): a header line, frames, an end frame, a trailer line ----------------------------

_FRAME_HEADER_BYTES = 5  # agent.control_protocol.FRAME_HEADER: a kind byte and a u32 length


class StreamReader:
    """The reply to a streaming op, read in bounded memory: the header line, then frames, then the trailer.

    Every read waits at most ``idle_s`` (the agent sends progress while it works, so silence is a failure)."""

    def __init__(self, conn: socket.socket, idle_s: float) -> None:
        self._conn = conn
        self._idle_s = idle_s
        self._buffer = bytearray()

    def line(self) -> bytes:
        """The next line (LF removed); at most MAX_REPLY_BYTES."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise ReplyTooLarge(f"the reply is longer than {MAX_REPLY_BYTES} bytes")
            if not self._fill():
                if not self._buffer:
                    raise EOFError("the agent closed the connection without replying")
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return line

    def exactly(self, size: int) -> bytes:
        """The next ``size`` bytes; EOFError when the stream ends before."""
        if len(self._buffer) >= size:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data
        target = bytearray(size)
        view = memoryview(target)
        have = len(self._buffer)
        view[:have] = self._buffer
        self._buffer.clear()
        while have < size:
            self._conn.settimeout(self._idle_s)
            got = self._conn.recv_into(view[have:])
            if not got:
                raise EOFError("the agent closed the connection in the middle of a stream")
            have += got
        return bytes(target)

    def frame_header(self) -> bytes:
        return self.exactly(_FRAME_HEADER_BYTES)

    def _fill(self) -> bool:
        self._conn.settimeout(self._idle_s)
        chunk = self._conn.recv(MAX_CHUNK)
        self._buffer += chunk
        return bool(chunk)


@contextlib.contextmanager
def open_stream(path: str, line: bytes, timeout_s: float) -> Iterator[tuple[bytes, StreamReader]]:
    """Send ``line`` and yield (the first reply line, a reader for what follows). A busy agent is retried as
    in :func:`exchange` while ``timeout_s`` lasts; after that ``timeout_s`` bounds each wait for bytes."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _connect(conn, path, deadline)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.sendall(line)
            reader = StreamReader(conn, timeout_s)
            first = reader.line()
            pause = _uniform_jitter(backoff_ceiling_s(attempt))
            if not is_busy_reply(first) or time.monotonic() + pause >= deadline:
                yield first, reader
                return
        finally:
            conn.close()
        time.sleep(pause)
        attempt += 1
