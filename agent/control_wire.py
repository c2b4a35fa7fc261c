"""The client half of the control socket's transport: one request line out, one reply line back.

Shared by ``privacyctl`` (:mod:`agent.cli`) and :func:`agent.control.request`. Standard library only and
nothing else from the package, so that ``privacyctl`` starts as fast as a bare interpreter allows; each
caller turns the exceptions below into its own errors.
"""

from __future__ import annotations

import contextlib
import socket
import time

MAX_CHUNK = 65536


def exchange(path: str, line: bytes, timeout_s: float) -> bytes:
    """Send ``line`` (LF-terminated) to the unix socket at ``path``; return the first reply line, LF removed.

    Raises TimeoutError when no whole reply line arrives within ``timeout_s``, EOFError when the agent closes
    the connection without replying, and OSError when the socket cannot be reached.
    """
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(line)  # an agent that refused early (busy, too large) has queued its reply: read it
        return _read_line(conn, deadline)


def _read_line(conn: socket.socket, deadline: float) -> bytes:
    buffer = bytearray()
    while b"\n" not in buffer:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = conn.recv(MAX_CHUNK)
        if not chunk:
            break
        buffer += chunk
    if not buffer:
        raise EOFError("the agent closed the connection without replying")
    return bytes(buffer.split(b"\n", 1)[0])
