"""Reading the kernel's peer credentials of a control connection (adapter): SO_PEERCRED, and the supplementary
groups from SO_PEERGROUPS or, failing that, ``/proc/<pid>/status``."""

from __future__ import annotations

import contextlib
import socket
import struct
from pathlib import Path

from agent.control_protocol import Peer, parse_status_groups
from agent.errors import ControlError

_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; Python names it only on some builds
_UCRED = struct.Struct("3i")
_GID = struct.Struct("I")


def read_peer_credentials(conn: socket.socket) -> Peer:
    """The connecting process's pid, uid, gid and supplementary groups, from the kernel."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError as exc:
        raise ControlError("cannot read the peer's credentials", errno=exc.errno) from exc
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid, groups=_peer_groups(conn, pid))


def _peer_groups(conn: socket.socket, pid: int) -> tuple[int, ...]:
    # SO_PEERGROUPS is taken at connect time, so it cannot race with the peer exiting; /proc is the fallback.
    with contextlib.suppress(OSError):
        raw = conn.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4096)
        usable = len(raw) - len(raw) % _GID.size
        return tuple(gid for (gid,) in _GID.iter_unpack(raw[:usable]))
    return proc_status_groups(pid)


def proc_status_groups(pid: int) -> tuple[int, ...]:
    """Supplementary groups from ``/proc/<pid>/status``; empty when unreadable (then only the gid counts)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ()
    return parse_status_groups(text)
