"""Sending on a control connection (adapter): a reply line, a streamed reply's frames, and the bounded read of
what a client still sends before the connection is closed."""

from __future__ import annotations

import logging
import socket
import threading
import time

from agent.control_protocol import (
    FRAME_DATA,
    FRAME_END,
    FRAME_HEADER,
    MAX_FRAME_BYTES,
    StreamReply,
    encode_error,
    encode_frame,
    encode_progress,
    encode_result,
    encode_stream_start,
)
from agent.errors import AgentError, ControlError

log = logging.getLogger("agent.control")


def send_quietly(conn: socket.socket, data: bytes, timeout_s: float) -> None:
    """Send a reply; a client that left or stopped reading loses its reply, and nothing else happens."""
    try:
        conn.settimeout(timeout_s)  # 0: non-blocking, a small reply fits the socket buffer at once
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass


STREAM_SEND_TIMEOUT_S = 30.0  # a client that reads nothing for this long is dropped, and the stream ends


class _SocketStreamOut:
    """A stream's frames onto the connection; once the client has gone, every write raises ControlError."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # the export writes from two threads: whole frames, never interleaved

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), MAX_FRAME_BYTES):
            piece = view[start:start + MAX_FRAME_BYTES]
            with self._lock:
                self._send(FRAME_HEADER.pack(FRAME_DATA, len(piece)))
                self._send(piece)

    def progress(self, done: int, total: int) -> None:
        with self._lock:
            self._send(encode_progress(done, total))

    def _send(self, data: bytes | memoryview) -> None:
        try:
            self._conn.sendall(data)
        except OSError as exc:  # gone, or not reading: stop the producer; the agent itself is unharmed
            raise ControlError("the client stopped reading the stream", errno=exc.errno) from None


def send_stream(conn: socket.socket, reply: StreamReply) -> None:
    """Send a header line, the producer's frames, an end frame and the trailer (its result or its error)."""
    conn.settimeout(STREAM_SEND_TIMEOUT_S)
    out = _SocketStreamOut(conn)
    try:
        conn.sendall(encode_stream_start(reply.header))
        try:
            trailer = encode_result(reply.produce(out))
        except AgentError as exc:
            trailer = encode_error(exc)
        except Exception:  # a bug in the producer ends this stream only
            log.exception("control stream failed")
            trailer = encode_error(AgentError("internal error in the agent; see its log"))
        conn.sendall(encode_frame(FRAME_END) + trailer)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        log.info("a control client left in the middle of a stream")


_LINGER_S = 1.0
_LINGER_BYTES = 1 << 20


def drain_before_close(conn: socket.socket) -> None:
    """Read what the client still sends (bounded) before closing.

    Closing a unix socket with unread input resets the connection and the client loses the reply that is
    already queued for it, e.g. the "request too large" error while it is still sending.
    """
    deadline = time.monotonic() + _LINGER_S
    drained = 0
    try:
        while drained < _LINGER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            conn.settimeout(remaining)
            chunk = conn.recv(65536)
            if not chunk:
                return
            drained += len(chunk)
    except OSError:
        pass
