"""systemd integration without libsystemd: readiness and watchdog notifications (service layer adapter).

Public API::

    notify("READY=1") -> bool        # one datagram to $NOTIFY_SOCKET; False (and nothing sent) without it
    watchdog_interval() -> float | None   # seconds from $WATCHDOG_USEC, if the watchdog is meant for us

``NOTIFY_SOCKET`` is an absolute path or, with a leading ``@``, a name in the abstract namespace. Notifying is
best effort: a failure is logged and reported as ``False``, never raised, because a lost status message must
not take the agent (and its location switch) down. Ping the watchdog at half the interval, as sd_watchdog(3)
advises.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (newline-separated ``KEY=value`` lines) to the service manager."""
    env = os.environ if environ is None else environ
    address = notify_address(env.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify the service manager: %s", exc.strerror or exc)
        return False
    return True


def notify_address(value: str) -> str | None:
    """The socket address named by ``NOTIFY_SOCKET``; None when unset or not a usable unix address."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:
        log.warning("NOTIFY_SOCKET is neither an absolute path nor an abstract name; not notifying")
    return None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds, or None when there is none or it is meant for another process."""
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text.isdigit() or int(usec_text) == 0:
        return None
    pid_text = env.get("WATCHDOG_PID", "")
    if pid_text and (not pid_text.isdigit() or int(pid_text) != os.getpid()):
        return None
    return int(usec_text) / 1_000_000
