"""The control socket's threaded server (adapter). Around it, the other modules that touch control sockets:
:mod:`agent.control_peer` reads the kernel's peer credentials, :mod:`agent.control_send` sends replies and
streams, :mod:`agent.control_socket` checks the socket file, and :mod:`agent.control_client` is the client.
The protocol itself (wire format, op table, argument checks, authorisation, slots) is the pure
:mod:`agent.control_protocol`; these names are re-exported here.

Public API::

    Peer(pid, uid, gid, groups)                  # the other end (SO_PEERCRED + supplementary groups)
    Request(op, args, version=1)                 # a validated request
    Handler = Callable[[Request, Peer], dict | StreamReply]  # the "result" object (or a stream: the export);
                                                 # raises AgentError to refuse
    ControlServer(path, handler, group=None, peer_credentials=read_peer_credentials,
                  max_request_bytes=65536, mode=0o660, read_timeout_s=5.0, max_connections=16,
                  max_per_uid=4, reserved_slots=4, crowded_read_timeout_s=1.0)
        .start()   # bind (a stale socket file is removed only if nothing listens), chmod, chgrp, listen
        .stop()    # close, join threads, unlink the socket (only if it is still ours)
    OP_TABLE: dict[str, OpSpec]                  # every op: OpSpec(mutating, args={name: check}, required)
    OPS, READ_OPS, MUTATING_OPS                  # every op; ops anyone may send; ops that need privilege
    request(path, op, args=None, timeout_s=15.0) -> dict   # client helper: the result, or raises AgentError
    read_request(line, peer, *, group_gid, server_uid) -> Request   # what the server does with a line
    parse_request(line) -> Request; authorize(op, peer, ...); Slots; encode_result(...); encode_error(...)

Everything a client sends is checked before the handler runs (see :mod:`agent.control_protocol` for the order).

Nothing a client sends can crash, wedge or lock the server. The peer's credentials are read from the kernel
at accept, before the connection counts against any limit, and then (see :class:`Slots`):

- one uid holds at most ``max_per_uid`` connections at once, and all other uids share ``max_connections``;
- ``reserved_slots`` more are kept for root and the agent's own uid, so a privileged ``location off`` gets
  through whatever anyone else does; a connection over its limits is told "busy" at once (clients retry with
  backoff, see :mod:`agent.control_wire`);
- a connection must deliver its whole request line within ``read_timeout_s`` (5 s, generous for a loaded
  machine). A uid's second and later connections at the same time get ``crowded_read_timeout_s`` (1 s):
  an honest client writes its line the moment it connects, so several silent connections from one uid are a
  flood, and the shorter deadline turns their slots over five times faster for everyone else. A peer *over*
  its share is never given a slot to time out in: it is refused at once.

Every failure of one connection ends that connection only.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.control_client import request
from agent.control_peer import proc_status_groups, read_peer_credentials
from agent.control_protocol import (
    MUTATING_OPS,
    OP_TABLE,
    OPS,
    READ_OPS,
    Handler,
    OpSpec,
    Peer,
    Request,
    Slots,
    StreamReply,
    encode_error,
    encode_result,
    parse_request,
    read_request,
)
from agent.control_send import STREAM_SEND_TIMEOUT_S, drain_before_close, send_quietly, send_stream
from agent.control_socket import check_socket_free, remove_stale_socket
from agent.errors import (
    AgentBusy,
    AgentError,
    ConfigError,
    ControlError,
    PermissionDenied,
)

log = logging.getLogger(__name__)

__all__ = [
    "MUTATING_OPS", "OPS", "OP_TABLE", "READ_OPS", "STREAM_SEND_TIMEOUT_S", "ControlServer", "Handler", "OpSpec",
    "Peer", "Request", "Slots", "check_socket_free", "encode_error", "encode_result", "parse_request",
    "proc_status_groups", "read_peer_credentials", "read_request", "request",
]

# -- the server (adapter) ------------------------------------------------------------------------------

class ControlServer:
    """A unix stream socket server: one thread accepts, one thread per connection (bounded by :class:`Slots`).

    ``max_connections`` slots are shared by everyone, ``max_per_uid`` of them at most by one unprivileged uid,
    and ``reserved_slots`` more are only for root and the agent's own uid (see the module docstring).
    """

    def __init__(self, path: Path, handler: Handler, *, group: str | None = None,
                 peer_credentials: Callable[[socket.socket], Peer] = read_peer_credentials,
                 max_request_bytes: int = 65536, mode: int = 0o660, read_timeout_s: float = 5.0,
                 max_connections: int = 16, max_per_uid: int = 4, reserved_slots: int = 4,
                 crowded_read_timeout_s: float = 1.0,
                 on_denied: Callable[[Peer], None] | None = None) -> None:
        if max_request_bytes < 16:
            raise ValueError("need max_request_bytes >= 16")
        self.path = Path(path)
        self._handler = handler
        self._group = group
        self._peer_credentials = peer_credentials
        self._on_denied = on_denied  # told of each request refused for want of the right (an incident)
        self._max_request_bytes = max_request_bytes
        self._mode = mode
        self._server_uid = os.geteuid()
        self._slots = Slots(shared=max_connections, per_uid=max_per_uid, reserved=reserved_slots,
                            privileged_uids=frozenset({0, self._server_uid}), read_timeout_s=read_timeout_s,
                            crowded_read_timeout_s=crowded_read_timeout_s)
        self._group_gid: int | None = None
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # wakes the accept loop on stop
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}

    def start(self) -> None:
        if self._listener is not None or self._stopping.is_set():
            raise RuntimeError("a ControlServer starts once; make a new one to serve again")
        self._group_gid = _group_id(self._group)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a parent that is a file, under /proc, not writable, ...
            raise ControlError(f"cannot create the control socket's directory: {exc.strerror or exc}",
                               path=str(self.path.parent), errno=exc.errno) from exc
        remove_stale_socket(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            self._inode = os.stat(self.path).st_ino
            # Permissions before listen(): no one connects while the socket is still world-default.
            os.chmod(self.path, self._mode)
            if self._group_gid is not None:
                os.chown(self.path, -1, self._group_gid)
            # A deep queue: connections beyond their slots are accepted and told "busy", rather than refused
            # by the kernel (a full queue makes a client's connect fail at once with EAGAIN).
            listener.listen(socket.SOMAXCONN)
        except OSError as exc:
            listener.close()
            self._unlink_if_ours()
            raise ControlError(f"cannot set up the control socket: {exc.strerror or exc}", path=str(self.path),
                               errno=exc.errno) from exc
        listener.setblocking(False)
        self._listener = listener
        self._wake = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="control-accept", daemon=True)
        self._accept_thread.start()
        log.info("control socket listening on %s", self.path)

    def stop(self, join_timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(join_timeout_s)
        with self._lock:
            connections = dict(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # unblocks a connection thread waiting on a slow client
        deadline = time.monotonic() + join_timeout_s
        for thread in connections.values():
            if thread.ident is not None:  # registered by a timed-out accept loop but never started
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._unlink_if_ours()
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # -- accepting --------------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener and not self._stopping.is_set():
                        self._accept_one()

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE and friends: keep serving once descriptors free up
            log.warning("control socket accept failed: %s", exc.strerror)
            time.sleep(0.05)
            return
        peer = self._peer_of(conn)
        if peer is None:
            return
        with self._lock:
            read_timeout_s = self._slots.take(peer.uid)
            if read_timeout_s is not None:
                thread = threading.Thread(target=self._serve, args=(conn, peer, read_timeout_s),
                                          name="control-conn", daemon=True)
                self._connections[conn] = thread
        if read_timeout_s is None:
            self._refuse(conn, AgentBusy("the agent is busy; try again"))
            return
        thread.start()

    def _peer_of(self, conn: socket.socket) -> Peer | None:
        """The peer's credentials, read before it counts against any limit; None (and refused) if unreadable."""
        try:
            return self._peer_credentials(conn)
        except AgentError as exc:
            self._refuse(conn, exc)
        except Exception:  # an injected credential reader or a bug here must end this connection only
            log.exception("control connection failed")
            self._refuse(conn, AgentError("internal error in the agent; see its log"))
        return None

    def _refuse(self, conn: socket.socket, error: AgentError) -> None:
        """Answer a connection that gets no slot, without ever blocking the accept thread for it."""
        # Read what already arrived (without waiting): closing over unread input would reset the connection
        # and lose the reply.
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.recv(self._max_request_bytes + 1)
        send_quietly(conn, encode_error(error), 0.0)
        conn.close()

    # -- one connection ---------------------------------------------------------------------------------
    def _serve(self, conn: socket.socket, peer: Peer, read_timeout_s: float) -> None:
        conn.setblocking(True)
        try:
            reply = self._reply_for(conn, peer, read_timeout_s)
            if isinstance(reply, StreamReply):
                send_stream(conn, reply)
            elif reply is not None:
                send_quietly(conn, reply, read_timeout_s)
                drain_before_close(conn)
        finally:
            with self._lock:
                self._connections.pop(conn, None)
                self._slots.give_back(peer.uid)
            conn.close()

    def _reply_for(self, conn: socket.socket, peer: Peer, read_timeout_s: float) -> bytes | StreamReply | None:
        try:
            line = self._read_line(conn, read_timeout_s)
            if line is None:
                return None  # the client went away without asking anything
            request = read_request(line, peer, group_gid=self._group_gid, server_uid=self._server_uid)
            return self._call_handler(request, peer)
        except PermissionDenied as exc:
            if self._on_denied is not None:
                self._on_denied(peer)
            return encode_error(exc)
        except AgentError as exc:
            return encode_error(exc)
        except Exception:  # a bug here must end this connection only
            log.exception("control connection failed")
            return encode_error(AgentError("internal error in the agent; see its log"))

    def _call_handler(self, request: Request, peer: Peer) -> bytes | StreamReply:
        try:
            result = self._handler(request, peer)
        except AgentError:
            raise
        except Exception:
            log.exception("control handler failed on op %s", request.op)
            raise AgentError("internal error in the agent; see its log") from None
        if isinstance(result, StreamReply):
            return result
        if not isinstance(result, dict):
            log.error("control handler returned %s for op %s", type(result).__name__, request.op)
            raise AgentError("internal error in the agent; see its log")
        try:
            return encode_result(result)
        except (TypeError, ValueError):
            log.exception("control handler returned a result that is not JSON for op %s", request.op)
            raise AgentError("internal error in the agent; see its log") from None

    def _read_line(self, conn: socket.socket, timeout_s: float) -> bytes | None:
        """One request line; None on a clean close before any byte. End of input also ends the line."""
        deadline = time.monotonic() + timeout_s
        buffer = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ControlError(f"no complete request within {timeout_s:g} s")
            conn.settimeout(remaining)
            try:
                chunk = conn.recv(min(65536, self._max_request_bytes + 1 - len(buffer)))
            except TimeoutError:
                raise ControlError(f"no complete request within {timeout_s:g} s") from None
            except OSError as exc:
                raise ControlError("the connection failed while reading", errno=exc.errno) from exc
            if not chunk:
                return bytes(buffer) if buffer.strip() else None
            newline = chunk.find(b"\n")
            if newline >= 0:
                buffer += chunk[:newline]
                self._check_size(buffer)
                return bytes(buffer)
            buffer += chunk
            self._check_size(buffer)

    def _check_size(self, buffer: bytearray) -> None:
        if len(buffer) > self._max_request_bytes:
            raise ControlError(f"request larger than {self._max_request_bytes} bytes")

    def _unlink_if_ours(self) -> None:
        # Another server may have replaced the file since (a restart racing a slow stop): leave theirs alone.
        try:
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        self._inode = None


def _group_id(group: str | None) -> int | None:
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError("[control] group names a group that does not exist") from None
