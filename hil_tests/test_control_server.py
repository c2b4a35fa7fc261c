"""The control server on a real unix socket: hostile clients, credentials, the socket file's life cycle."""

from __future__ import annotations

import contextlib
import grp
import io
import json
import math
import os
import select
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import cli
from agent.control import ControlServer, Peer, Request, encode_error, read_peer_credentials, request
from agent.control_wire import exchange
from agent.errors import (
    AgentBusy,
    AgentError,
    AgentUnreachable,
    ConfigError,
    ControlError,
    PermissionDenied,
    UsageError,
)
from hil_tests.conftest import wait_until

Handler = Callable[[Request, Peer], dict[str, Any]]


class Recorder:
    """A scripted handler that remembers what reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Request, Peer]] = []

    def __call__(self, req: Request, peer: Peer) -> dict[str, Any]:
        self.calls.append((req, peer))
        return {"op": req.op, "args": dict(req.args)}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # sun_path holds 108 bytes; pytest's tmp_path for long test names does not fit.
    path = Path(tempfile.mkdtemp(prefix="pa-ctl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve(short_dir: Path) -> Iterator[Callable[..., ControlServer]]:
    servers: list[ControlServer] = []

    def start(handler: Handler | None = None, **options: Any) -> ControlServer:
        path = options.pop("path", short_dir / "control.sock")
        server = ControlServer(path, handler or Recorder(), **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def raw_exchange(path: Path, data: bytes, *, shutdown_write: bool = False, timeout_s: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes; returns everything it sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(str(path))
        conn.sendall(data)
        if shutdown_write:
            conn.shutdown(socket.SHUT_WR)
        return read_to_close(conn)


def read_to_close(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def error_of(raw: bytes) -> dict[str, Any]:
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
    reply = json.loads(raw)
    assert reply["ok"] is False
    error: dict[str, Any] = reply["error"]
    return error


def still_serves(server: ControlServer) -> bool:
    return request(server.path, "status", timeout_s=5.0) == {"op": "status", "args": {}}


# -- requests that work --------------------------------------------------------------------------------

def test_a_request_reaches_the_handler_with_the_kernels_idea_of_the_peer(
        serve: Callable[..., ControlServer]) -> None:
    recorder = Recorder()
    server = serve(recorder)
    reply = request(server.path, "location.off", {"wait_s": 3})
    assert reply == {"op": "location.off", "args": {"wait_s": 3.0}}
    [(req, peer)] = recorder.calls
    assert req == Request("location.off", {"wait_s": 3.0})
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())
    assert set(os.getgroups()) <= set(peer.groups) | {peer.gid}


def test_peer_credentials_of_a_socket_pair_are_our_own() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        peer = read_peer_credentials(left)
    assert peer == Peer(pid=os.getpid(), uid=os.geteuid(), gid=os.getegid(), groups=peer.groups)


def test_a_request_without_newline_ended_by_half_close_is_answered(
        serve: Callable[..., ControlServer]) -> None:
    server = serve()
    raw = raw_exchange(server.path, b'{"v": 1, "op": "incidents"}', shutdown_write=True)
    assert json.loads(raw) == {"ok": True, "result": {"op": "incidents", "args": {}}}


def test_the_socket_is_0660_and_handed_to_the_group(serve: Callable[..., ControlServer]) -> None:
    group = grp.getgrgid(os.getegid()).gr_name
    server = serve(group=group)
    info = os.stat(server.path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == os.getegid()


# -- hostile and broken clients ------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "kind", "fragment"), [
    (b"not json\n", "ControlError", "not valid JSON"),
    (b"\xff\xfe\x00\x01\n", "ControlError", "not UTF-8"),
    (b"\x00" * 300 + b"\n", "ControlError", "not valid JSON"),
    (b"[]\n", "ControlError", "JSON object"),
    (b'{"v": 1, "op": "self.destruct"}\n', "UsageError", "unknown op"),
    (b'{"v": 1, "op": "location.off", "args": {"wait_s": 3600}}\n', "UsageError", "between 0 and 60"),
    (b'{"v": 9, "op": "status"}\n', "ControlError", "version"),
    (b"[" * 60000 + b"\n", "ControlError", "nested too deeply"),
])
def test_garbage_gets_an_error_reply_and_the_next_client_is_served(
        serve: Callable[..., ControlServer], data: bytes, kind: str, fragment: str) -> None:
    recorder = Recorder()
    server = serve(recorder)
    error = error_of(raw_exchange(server.path, data))
    assert error["kind"] == kind and fragment in error["message"]
    assert recorder.calls == []
    assert still_serves(server)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ControlServer]:
    folder = Path(tempfile.mkdtemp(prefix="pa-ctl-", dir="/tmp"))
    server = ControlServer(folder / "control.sock", Recorder(), max_request_bytes=1024)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=3000) | st.builds(lambda obj: json.dumps(obj).encode(), st.dictionaries(
    st.sampled_from(["v", "op", "args", "x"]),
    st.none() | st.integers() | st.text(max_size=20) | st.sampled_from(["status", "location.off"]),
)), newline=st.booleans())
def test_whatever_a_client_sends_it_gets_one_reply_line_or_a_clean_close(
        shared_server: ControlServer, payload: bytes, newline: bool) -> None:
    data = payload + (b"\n" if newline else b"")
    try:
        raw = raw_exchange(shared_server.path, data, shutdown_write=True)
    except (BrokenPipeError, ConnectionResetError):
        raw = None  # only possible for payloads over the limit, which the server stops reading
        assert len(payload) > 1024
    if raw == b"":
        assert b"\n" not in data and not data.strip()  # nothing was asked
    elif raw is not None:
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        assert isinstance(json.loads(raw)["ok"], bool)
    assert still_serves(shared_server)


def test_only_the_first_line_is_a_request(serve: Callable[..., ControlServer]) -> None:
    recorder = Recorder()
    server = serve(recorder)
    raw = raw_exchange(server.path, b'{"v": 1, "op": "status"}\n{"v": 1, "op": "erase"}\n')
    assert json.loads(raw)["result"]["op"] == "status"
    assert [req.op for req, _ in recorder.calls] == ["status"]


@pytest.mark.parametrize("newline", [False, True])
def test_an_oversized_request_gets_an_error_and_the_connection_closes(
        serve: Callable[..., ControlServer], newline: bool) -> None:
    server = serve(max_request_bytes=1024)
    payload = b'{"v": 1, "op": "status", "pad": "' + b"x" * 200_000 + (b'"}\n' if newline else b"")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5.0)
        conn.connect(str(server.path))
        try:
            conn.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading at the limit and closed; its reply is still queued for us
        error = error_of(read_to_close(conn))
    assert error == {"kind": "ControlError", "message": "request larger than 1024 bytes"}
    assert still_serves(server)


def test_a_client_that_connects_and_leaves_gets_nothing_and_harms_nothing(
        serve: Callable[..., ControlServer]) -> None:
    recorder = Recorder()
    server = serve(recorder)
    for _ in range(20):
        assert raw_exchange(server.path, b"", shutdown_write=True) == b""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(server.path))  # and close at once, without a word
    assert recorder.calls == []
    assert still_serves(server)
    assert wait_until(lambda: server.active_connections == 0)


def test_a_silent_client_times_out_without_holding_up_others(serve: Callable[..., ControlServer]) -> None:
    server = serve(read_timeout_s=0.5)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(5.0)
        silent.connect(str(server.path))
        assert still_serves(server)  # while the silent one is still connected
        error = error_of(read_to_close(silent))
    assert error["kind"] == "ControlError" and "no complete request within 0.5 s" in error["message"]
    assert still_serves(server)


def test_a_dribbling_client_cannot_extend_its_deadline(serve: Callable[..., ControlServer]) -> None:
    server = serve(read_timeout_s=0.3)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.settimeout(5.0)
        slow.connect(str(server.path))
        try:
            for byte in b'{"v": 1, "op": "status"':
                slow.send(bytes([byte]))
                time.sleep(0.05)  # each byte well inside any per-read timeout; the total is not
        except (BrokenPipeError, ConnectionResetError):
            pass
        error = error_of(read_to_close(slow))
    assert "no complete request" in error["message"]
    assert still_serves(server)


class ScriptedPeers:
    """Credentials for each accepted connection in turn (the last one repeats): one process plays many uids."""

    def __init__(self, *peers: Peer) -> None:
        self._peers = list(peers)

    def __call__(self, conn: socket.socket) -> Peer:
        return self._peers.pop(0) if len(self._peers) > 1 else self._peers[0]


STRANGER = Peer(pid=4321, uid=54321, gid=54321)
OTHER_STRANGER = Peer(pid=4322, uid=54322, gid=54322)
ROOT_PEER = Peer(pid=4323, uid=0, gid=0)


def refusal(path: Path) -> dict[str, Any]:
    """The error a connection refused at accept gets: its request may arrive after the agent hung up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5.0)
        conn.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(b'{"v": 1, "op": "status"}\n')
        return error_of(read_to_close(conn))


def hold(path: Path, server: ControlServer, count: int) -> list[socket.socket]:
    """``count`` silent connections, each accepted before the next is made (so credentials go in order)."""
    held: list[socket.socket] = []
    for _ in range(count):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(5.0)
        conn.connect(str(path))
        held.append(conn)
        assert wait_until(lambda: server.active_connections == len(held))
    return held


def test_a_uid_at_its_share_is_told_busy_at_once_and_others_are_served(
        serve: Callable[..., ControlServer]) -> None:
    peers = ScriptedPeers(STRANGER, STRANGER, STRANGER, OTHER_STRANGER)
    server = serve(peer_credentials=peers, max_per_uid=2, read_timeout_s=10.0)
    holders = hold(server.path, server, 2)
    try:
        error = refusal(server.path)
        assert error == {"kind": "AgentBusy", "message": "the agent is busy; try again"}
        assert still_serves(server)  # another uid
    finally:
        for holder in holders:
            holder.close()
    assert wait_until(lambda: server.active_connections == 0)


def test_root_gets_a_reserved_slot_when_the_shared_ones_are_full(serve: Callable[..., ControlServer]) -> None:
    peers = ScriptedPeers(STRANGER, OTHER_STRANGER, STRANGER, ROOT_PEER)
    recorder = Recorder()
    server = serve(recorder, peer_credentials=peers, max_connections=2, reserved_slots=1, read_timeout_s=10.0)
    holders = hold(server.path, server, 2)
    try:
        error = refusal(server.path)
        assert error["kind"] == "AgentBusy"
        assert request(server.path, "location.off", {"wait_s": 0}) == {"op": "location.off", "args": {"wait_s": 0.0}}
    finally:
        for holder in holders:
            holder.close()
    assert [(req.op, peer.uid) for req, peer in recorder.calls] == [("location.off", 0)]


def test_when_even_the_reserved_slots_are_taken_root_is_told_busy(serve: Callable[..., ControlServer]) -> None:
    server = serve(max_connections=1, reserved_slots=1, read_timeout_s=10.0)  # we are root (or the agent's uid)
    holders = hold(server.path, server, 2)
    try:
        error = refusal(server.path)
        assert error["kind"] == "AgentBusy"
        with pytest.raises(AgentBusy, match="busy"):  # retried until its timeout, then reported as busy
            request(server.path, "status", timeout_s=0.3)
    finally:
        for holder in holders:
            holder.close()
    assert wait_until(lambda: server.active_connections == 0)
    assert still_serves(server)


def test_a_uids_second_silent_connection_has_the_short_deadline(serve: Callable[..., ControlServer]) -> None:
    server = serve(peer_credentials=ScriptedPeers(STRANGER), read_timeout_s=30.0, crowded_read_timeout_s=0.2)
    [first] = hold(server.path, server, 1)
    with first:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as second:
            second.settimeout(5.0)
            second.connect(str(server.path))
            error = error_of(read_to_close(second))
        assert error["message"] == "no complete request within 0.2 s"
        assert wait_until(lambda: server.active_connections == 1)  # the first still has its long deadline
        first.sendall(b'{"v": 1, "op": "status"}\n')
        assert json.loads(read_to_close(first))["ok"] is True


def test_busy_replies_are_retried_with_backoff_until_the_agent_has_room(short_dir: Path) -> None:
    path = short_dir / "busy.sock"
    busy = encode_error(AgentBusy("the agent is busy; try again"))
    attempts: list[bytes] = []

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(8)

        def busy_three_times() -> None:
            for _ in range(4):
                conn, _ = listener.accept()
                with conn:
                    attempts.append(conn.recv(4096))
                    conn.sendall(busy if len(attempts) <= 3 else b'{"ok": true, "result": {"done": 1}}\n')

        agent = threading.Thread(target=busy_three_times, daemon=True)
        agent.start()
        pauses: list[float] = []

        def no_jitter(ceiling: float) -> float:
            pauses.append(ceiling)
            return 0.0

        reply = exchange(str(path), b'{"v": 1, "op": "location.off"}\n', 10.0, jitter=no_jitter)
        agent.join(10)
    assert json.loads(reply) == {"ok": True, "result": {"done": 1}}
    assert attempts == [b'{"v": 1, "op": "location.off"}\n'] * 4
    assert pauses == [0.01, 0.02, 0.04]  # each ceiling doubles; the jitter picks below it


def test_a_client_still_busy_at_its_timeout_reports_busy_not_unreachable(serve: Callable[..., ControlServer]) -> None:
    server = serve(peer_credentials=ScriptedPeers(STRANGER), max_per_uid=1, read_timeout_s=10.0)
    [holder] = hold(server.path, server, 1)
    with holder:
        with pytest.raises(AgentBusy, match="busy"):
            request(server.path, "status", timeout_s=0.5)
        err = io.StringIO()
        code = cli.run(str(server.path), "status", {}, 0.5, as_json=False, out=io.StringIO(), err=err)
        assert code == cli.EXIT_FAILED  # privacyctl: refused, not unreachable
        assert err.getvalue() == "privacyctl: the agent is busy; try again\n"


def test_a_burst_of_clients_is_served_or_told_busy_never_unreachable(
        serve: Callable[..., ControlServer]) -> None:
    server = serve(max_connections=4)
    outcomes: list[str] = []

    def one_client() -> None:
        try:
            request(server.path, "status", timeout_s=10)
            outcomes.append("served")
        except ControlError as exc:
            outcomes.append("busy" if "busy" in str(exc) else f"other: {exc}")
        except AgentError as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")

    clients = [threading.Thread(target=one_client) for _ in range(80)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    assert len(outcomes) == 80
    assert set(outcomes) <= {"served", "busy"}, sorted(set(outcomes))
    assert "served" in outcomes
    assert still_serves(server)


def test_a_full_connection_queue_is_waited_on_not_reported_as_gone(short_dir: Path) -> None:
    path = short_dir / "queue.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.bind(str(path))
        slow.listen(0)  # never accepts: one queued connection fills the queue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as first:
            first.connect(str(path))
            with pytest.raises(AgentUnreachable, match=r"no reply from the agent within 0\.3 s"):
                request(path, "status", timeout_s=0.3)


def test_a_reply_line_without_end_is_cut_off_with_a_clear_error(short_dir: Path) -> None:
    path = short_dir / "flood.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as flood:
        flood.bind(str(path))
        flood.listen(1)

        def send_forever() -> None:
            conn, _ = flood.accept()
            with conn, contextlib.suppress(OSError):
                while True:
                    conn.sendall(b"x" * 65536)

        sender = threading.Thread(target=send_forever, daemon=True)
        sender.start()
        with pytest.raises(ControlError, match="longer than 1048576 bytes"):
            request(path, "status", timeout_s=10)
        sender.join(10)


def test_a_slow_handler_does_not_block_other_clients(serve: Callable[..., ControlServer]) -> None:
    release = threading.Event()

    def handler(req: Request, peer: Peer) -> dict[str, Any]:
        if req.op == "location.off":
            release.wait(10)
        return {"op": req.op, "args": {}}

    server = serve(handler)
    replies: list[dict[str, Any]] = []
    waiting = threading.Thread(target=lambda: replies.append(request(server.path, "location.off")))
    waiting.start()
    assert wait_until(lambda: server.active_connections == 1)
    assert still_serves(server)
    release.set()
    waiting.join(10)
    assert replies == [{"op": "location.off", "args": {}}]


# -- handler failures ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raised", "kind"), [
    (PermissionDenied("not you"), "PermissionDenied"),
    (UsageError("'consent.list' is not supported by this agent yet"), "UsageError"),
    (ControlError("nope"), "ControlError"),
])
def test_an_agent_error_from_the_handler_is_the_reply(serve: Callable[..., ControlServer],
                                                      raised: AgentError, kind: str) -> None:
    def handler(req: Request, peer: Peer) -> dict[str, Any]:
        if req.op == "status":
            return {"op": "status", "args": {}}
        raise raised

    server = serve(handler)
    with pytest.raises(type(raised), match=raised.message):
        request(server.path, "consent.list")
    error = error_of(raw_exchange(server.path, b'{"v": 1, "op": "consent.list"}\n'))
    assert error == {"kind": kind, "message": str(raised)}
    assert still_serves(server)


def failing(req: Request, peer: Peer) -> dict[str, Any]:
    if req.op == "status":
        return {"op": "status", "args": {}}
    if req.op == "incidents":
        raise RuntimeError("lat 52.520008 lon 13.404954")  # a bug whose text must not reach clients
    if req.op == "policy.show":
        return [1, 2]  # type: ignore[return-value]
    return {"value": math.nan}


@pytest.mark.parametrize("op", ["incidents", "policy.show", "log.verify"])
def test_a_broken_handler_gives_an_internal_error_without_details(
        serve: Callable[..., ControlServer], op: str, caplog: pytest.LogCaptureFixture) -> None:
    server = serve(failing)
    raw = raw_exchange(server.path, json.dumps({"v": 1, "op": op}).encode() + b"\n")
    assert error_of(raw) == {"kind": "AgentError", "message": "internal error in the agent; see its log"}
    assert b"52.52" not in raw
    assert still_serves(server)


def test_a_failing_credential_reader_ends_that_connection_only(serve: Callable[..., ControlServer]) -> None:
    def broken(conn: socket.socket) -> Peer:
        raise OSError("no credentials today")

    server = serve(peer_credentials=broken)
    assert refusal(server.path) == {"kind": "AgentError", "message": "internal error in the agent; see its log"}
    assert refusal(server.path)["kind"] == "AgentError"
    assert server.active_connections == 0  # refused at accept: it never held a slot


# -- credentials (injected) ----------------------------------------------------------------------------

def as_peer(uid: int, gid: int, *groups: int) -> Callable[[socket.socket], Peer]:
    return lambda conn: Peer(pid=4321, uid=uid, gid=gid, groups=tuple(groups))


def test_another_uid_may_read_but_not_change_state(serve: Callable[..., ControlServer]) -> None:
    recorder = Recorder()
    server = serve(recorder, peer_credentials=as_peer(54321, 54321))
    assert request(server.path, "location.status") == {"op": "location.status", "args": {}}
    for op in ("location.off", "location.on", "erase", "identity.reset"):
        with pytest.raises(PermissionDenied, match="only root may"):
            request(server.path, op)
    assert [req.op for req, _ in recorder.calls] == ["location.status"]


@pytest.mark.parametrize("args", [{"wait_s": -1}, {"wait_s": "soon"}, {"uid": 0}, [], "x"])
def test_a_stranger_is_refused_before_its_arguments_are_looked_at(
        serve: Callable[..., ControlServer], args: Any) -> None:
    recorder = Recorder()
    server = serve(recorder, peer_credentials=as_peer(54321, 54321))
    raw = raw_exchange(server.path, json.dumps({"v": 1, "op": "location.on", "args": args}).encode() + b"\n")
    assert error_of(raw) == {"kind": "PermissionDenied", "message": "'location.on' changes the agent's state; "
                             "only root may do that (uid=54321)"}
    assert recorder.calls == []


def test_a_repeated_op_key_runs_nothing(serve: Callable[..., ControlServer]) -> None:
    recorder = Recorder()
    server = serve(recorder)
    raw = raw_exchange(server.path, b'{"v":1,"op":"status","op":"location.on"}\n')
    assert error_of(raw) == {"kind": "ControlError", "message": "request repeats the key 'op'"}
    assert recorder.calls == []
    assert still_serves(server)


def test_a_member_of_the_control_group_may_change_state(serve: Callable[..., ControlServer]) -> None:
    gid = os.getegid()
    group = grp.getgrgid(gid).gr_name
    recorder = Recorder()
    server = serve(recorder, group=group, peer_credentials=as_peer(54321, 54321, 7, gid))
    assert request(server.path, "location.on", {"wait_s": 0})["op"] == "location.on"
    assert recorder.calls[0][1].uid == 54321


# -- the socket file's life cycle ----------------------------------------------------------------------

def test_an_unknown_group_is_a_config_error_and_leaves_no_socket(short_dir: Path) -> None:
    server = ControlServer(short_dir / "c.sock", Recorder(), group="no-such-group-xyz")
    with pytest.raises(ConfigError, match=r"\[control\] group"):
        server.start()
    assert not (short_dir / "c.sock").exists()


@pytest.mark.parametrize("parent", ["a-file", "/proc/no-such-dir"])
def test_a_socket_directory_that_cannot_be_made_is_a_control_error(short_dir: Path, parent: str) -> None:
    (short_dir / "a-file").write_text("not a directory")
    directory = short_dir / parent if not parent.startswith("/") else Path(parent)
    server = ControlServer(directory / "control.sock", Recorder())
    with pytest.raises(ControlError, match="cannot create the control socket's directory"):
        server.start()


def test_a_stale_socket_file_is_replaced(serve: Callable[..., ControlServer], short_dir: Path) -> None:
    path = short_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: what a killed agent leaves behind
    server = serve(path=path)
    assert still_serves(server)


def test_a_live_agent_on_the_path_is_not_displaced(serve: Callable[..., ControlServer]) -> None:
    first = serve()
    second = ControlServer(first.path, Recorder())
    with pytest.raises(ControlError, match="already listening"):
        second.start()
    assert still_serves(first)


def test_a_file_that_is_not_a_socket_is_never_removed(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    path.write_text("precious")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(path, Recorder()).start()
    assert path.read_text() == "precious"


def test_stop_unlinks_the_socket_and_then_the_agent_is_unreachable(short_dir: Path) -> None:
    server = ControlServer(short_dir / "control.sock", Recorder())
    server.start()
    assert still_serves(server)
    server.stop()
    assert not server.path.exists()
    with pytest.raises(AgentUnreachable):
        request(server.path, "status")


def test_a_server_starts_once(short_dir: Path) -> None:
    server = ControlServer(short_dir / "control.sock", Recorder())
    server.start()
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()
    server.stop()
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()
    assert not server.path.exists()


def test_stop_leaves_a_successors_socket_alone(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    old = ControlServer(path, Recorder())
    old.start()
    path.unlink()
    new = ControlServer(path, Recorder())
    new.start()
    try:
        old.stop()
        assert path.exists() and still_serves(new)
    finally:
        new.stop()


def test_stop_returns_promptly_with_a_client_mid_request(short_dir: Path) -> None:
    server = ControlServer(short_dir / "control.sock", Recorder(), read_timeout_s=30.0)
    server.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(server.path))
        conn.sendall(b'{"v": 1, ')
        assert wait_until(lambda: server.active_connections == 1)
        started = time.monotonic()
        server.stop(join_timeout_s=5.0)
        assert time.monotonic() - started < 5.0
        assert server.active_connections == 0


# -- client helper -------------------------------------------------------------------------------------

def test_request_to_nothing_is_unreachable(short_dir: Path) -> None:
    with pytest.raises(AgentUnreachable, match="cannot reach the agent"):
        request(short_dir / "missing.sock", "status")


def test_request_to_a_mute_listener_times_out_as_unreachable(short_dir: Path) -> None:
    path = short_dir / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen(1)
        with pytest.raises(AgentUnreachable, match="no reply"):
            request(path, "status", timeout_s=0.3)


# -- a real second uid (needs root to switch) ----------------------------------------------------------

NOBODY = 65534


class ChildClient:
    """A forked process with another uid that sends one request when told to.

    It is forked before the server starts its threads. Sibling children inherit each other's pipe ends, so
    nobody waits for end-of-file: the child waits for its go byte (bounded) and the parent reaps it first.
    """

    def __init__(self, path: Path, op: str, *, groups: list[int]) -> None:
        self._go_r, self._go_w = os.pipe()
        self._out_r, self._out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            self._child(path, op, groups)

    def _child(self, path: Path, op: str, groups: list[int]) -> None:
        outcome: dict[str, Any]
        try:
            os.setgroups(groups)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            ready, _, _ = select.select([self._go_r], [], [], 20.0)
            if not ready:
                os._exit(1)
            outcome = {"result": cli.call(str(path), op, {}, 5.0)}
        except cli.Refused as exc:
            outcome = {"kind": exc.kind, "message": exc.message}
        except BaseException as exc:
            outcome = {"kind": type(exc).__name__, "message": str(exc)}
        os.write(self._out_w, json.dumps(outcome).encode())
        os._exit(0)

    def go(self) -> dict[str, Any]:
        os.write(self._go_w, b"x")
        _, status = os.waitpid(self.pid, 0)
        os.set_blocking(self._out_r, False)
        try:
            data = os.read(self._out_r, 65536)
        except BlockingIOError:
            data = b""
        for fd in (self._go_r, self._go_w, self._out_r, self._out_w):
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, "the child client did not run"
        outcome: dict[str, Any] = json.loads(data)
        return outcome


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


@needs_root
def test_a_real_other_uid_may_read_but_is_refused_a_change(short_dir: Path) -> None:
    short_dir.chmod(0o755)
    path = short_dir / "control.sock"
    reader = ChildClient(path, "status", groups=[])
    changer = ChildClient(path, "location.off", groups=[])
    recorder = Recorder()
    server = ControlServer(path, recorder, mode=0o666)
    server.start()
    try:
        assert reader.go() == {"result": {"op": "status", "args": {}}}
        refused = changer.go()
    finally:
        server.stop()
    assert refused["kind"] == "PermissionDenied"
    assert [(req.op, peer.uid) for req, peer in recorder.calls] == [("status", NOBODY)]


@needs_root
def test_a_real_member_of_the_control_group_may_change_state(short_dir: Path) -> None:
    short_dir.chmod(0o755)
    path = short_dir / "control.sock"
    group = grp.getgrnam("dialout") if "dialout" in {g.gr_name for g in grp.getgrall()} else None
    if group is None:
        pytest.skip("no 'dialout' group on this machine to use as the control group")
    member = ChildClient(path, "location.off", groups=[group.gr_gid])
    outsider = ChildClient(path, "status", groups=[])
    recorder = Recorder()
    server = ControlServer(path, recorder, group=group.gr_name)  # mode 0660: only the group may connect
    server.start()
    try:
        assert member.go() == {"result": {"op": "location.off", "args": {}}}
        blocked = outsider.go()
    finally:
        server.stop()
    assert blocked["kind"] == "Unreachable" and "Permission denied" in blocked["message"]  # mode 0660
    [(req, peer)] = recorder.calls
    assert req.op == "location.off"
    assert peer.uid == NOBODY and group.gr_gid in peer.groups
