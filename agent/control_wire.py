"""The client half of the control socket's transport: one request line out, one reply line back.

Shared by ``privacyctl`` (:mod:`agent.cli`) and :func:`agent.control.request`. Standard library only and
nothing else from the package, so that ``privacyctl`` starts as fast as a bare interpreter allows; each
caller turns the exceptions below into its own errors.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time

MAX_CHUNK = 65536
MAX_REPLY_BYTES = 1 << 20  # the agent's replies are a few KiB; more is not the agent talking
# A purpose name, as the agent and privacyctl both check it.
PURPOSE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
PURPOSE_RULE = "a purpose name: lowercase letters, digits, '_', '.', '-' (max 64), starting with a letter"


class ReplyTooLarge(ValueError):
    """The other end sent more than :data:`MAX_REPLY_BYTES` without ending its line."""


def exchange(path: str, line: bytes, timeout_s: float) -> bytes:
    """Send ``line`` (LF-terminated) to the unix socket at ``path``; return the first reply line, LF removed.

    Raises TimeoutError when no whole reply line arrives within ``timeout_s`` (or the agent's queue of new
    connections stays full that long), EOFError when the agent closes the connection without replying,
    ReplyTooLarge for a reply line over :data:`MAX_REPLY_BYTES`, and OSError when the socket cannot be reached.
    """
    deadline = time.monotonic() + timeout_s
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
