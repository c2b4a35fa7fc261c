"""The control socket's file (adapter): whether an agent already answers there, and the removal of a stale one."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from agent.errors import ControlError


def check_socket_free(path: Path) -> None:
    """Refuse when an agent already answers on ``path`` or it is not a socket; writes nothing (a stale socket
    file is removed later, by :meth:`agent.control.ControlServer.start`)."""
    _is_stale(path)


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead agent; refuse if an agent answers there or it is not a socket."""
    if _is_stale(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _is_stale(path: Path) -> bool:
    """Whether ``path`` is a socket nobody listens on (False: there is no file); ControlError when an agent
    answers there, it is not a socket, or it cannot be looked at."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ControlError("cannot inspect the control socket path", path=str(path), errno=exc.errno) from exc
    if not stat.S_ISSOCK(mode):
        raise ControlError("the control socket path exists and is not a socket", path=str(path))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except OSError as exc:
        raise ControlError("cannot probe the existing control socket", path=str(path),
                           errno=exc.errno) from exc
    finally:
        probe.close()
    raise ControlError("another agent is already listening on the control socket", path=str(path))
