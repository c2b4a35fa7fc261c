"""The control socket cannot be locked: another uid floods it, and root's ``location off`` still gets through.

The attack: a peer that may connect (a member of the control group) holds many silent connections and reopens
each one the moment the agent closes it. Tests run as root here; the flood is a forked child that drops to
another uid and joins the control group, so the server sees real kernel credentials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import json
import os
import select
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.control import ControlServer, Peer, Request, request
from hil_tests.conftest import sim_config, wait_until

ROOT = Path(__file__).resolve().parent.parent
FLOODER_UID = 65534
FLOOD_CONNECTIONS = 40
FLOOD_LIMIT_S = 120.0  # a flood child left behind by a failing test ends by itself

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="flooding from another uid needs root to switch uid")


class Flood:
    """A forked process under another uid that holds ``connections`` silent connections to ``path`` and
    reopens each one as soon as the agent closes it, until told to stop.

    Fork it before anything in this process starts threads: the child only uses sockets and pipes.
    """

    def __init__(self, path: Path, *, connections: int, groups: list[int], uid: int = FLOODER_UID) -> None:
        self._go_r, self._go_w = os.pipe()
        self._stop_r, self._stop_w = os.pipe()
        self._out_r, self._out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                self._child(str(path), connections, groups, uid)
                code = 0
            finally:
                os._exit(code)

    def start(self) -> None:
        os.write(self._go_w, b"x")

    def stop(self) -> dict[str, int]:
        """Stop the flood; what it saw: connections opened, busy replies, other replies or closes."""
        os.write(self._stop_w, b"x")
        _, status = os.waitpid(self.pid, 0)
        os.set_blocking(self._out_r, False)
        with contextlib.suppress(BlockingIOError):
            data = os.read(self._out_r, 65536)
        for fd in (self._go_r, self._go_w, self._stop_r, self._stop_w, self._out_r, self._out_w):
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, "the flood child failed"
        counts: dict[str, int] = json.loads(data)
        return counts

    # -- the child ----------------------------------------------------------------------------------------
    def _child(self, path: str, connections: int, groups: list[int], uid: int) -> None:
        os.setgroups(groups)
        os.setgid(uid)
        os.setuid(uid)
        ready, _, _ = select.select([self._go_r], [], [], 20.0)
        if not ready:
            return
        counts = {"opened": 0, "busy": 0, "closed": 0}
        deadline = time.monotonic() + FLOOD_LIMIT_S
        with selectors.DefaultSelector() as selector:
            selector.register(self._stop_r, selectors.EVENT_READ)
            for _ in range(connections):
                self._open(selector, path, counts)
            while time.monotonic() < deadline:
                events = selector.select(1.0)
                if any(key.fileobj == self._stop_r for key, _ in events):
                    break
                for key, _ in events:
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    self._reopen(selector, conn, path, counts)
        os.write(self._out_w, json.dumps(counts).encode())

    def _open(self, selector: selectors.BaseSelector, path: str, counts: dict[str, int]) -> None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(2.0)
        try:
            conn.connect(path)
        except OSError:
            conn.close()
            time.sleep(0.01)
            return
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)
        counts["opened"] += 1

    def _reopen(self, selector: selectors.BaseSelector, conn: socket.socket, path: str,
                counts: dict[str, int]) -> None:
        try:
            reply = conn.recv(4096)
        except OSError:
            reply = b""
        counts["busy" if b"busy" in reply else "closed"] += 1
        selector.unregister(conn)
        conn.close()
        self._open(selector, path, counts)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Request, Peer]] = []

    def __call__(self, req: Request, peer: Peer) -> dict[str, Any]:
        self.calls.append((req, peer))
        return {"op": req.op}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Short (sun_path holds 108 bytes) and traversable by the flooding uid.
    path = Path(tempfile.mkdtemp(prefix="pa-flood-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def control_group() -> grp.struct_group:
    for name in ("dialout", "nogroup"):
        with contextlib.suppress(KeyError):
            return grp.getgrnam(name)
    pytest.skip("no 'dialout' or 'nogroup' group on this machine to use as the control group")


@needs_root
@pytest.mark.parametrize(("flooders", "connections"), [(1, FLOOD_CONNECTIONS), (5, 16)])
def test_root_location_off_is_answered_while_group_members_flood(
        short_dir: Path, control_group: grp.struct_group, flooders: int, connections: int) -> None:
    """One member with 40 connections (the reported attack), or five members whose caps together exceed
    every shared slot: root still gets a reserved one."""
    path = short_dir / "control.sock"
    floods = [Flood(path, connections=connections, groups=[control_group.gr_gid], uid=FLOODER_UID - index)
              for index in range(flooders)]
    recorder = Recorder()
    server = ControlServer(path, recorder, group=control_group.gr_name)  # mode 0660: the group may connect
    server.start()
    answered = 0
    try:
        for flood in floods:
            flood.start()
        assert wait_until(lambda: server.active_connections >= min(16, 4 * flooders)), "the flood took no slots"
        for _ in range(10):  # each must be answered within the client's own timeout, or it raises
            assert request(path, "location.off", {"wait_s": 0}, timeout_s=5.0) == {"op": "location.off"}
            answered += 1
    finally:
        counts = [flood.stop() for flood in floods]
        server.stop()
    assert answered == 10
    assert all(count["busy"] > 0 for count in counts), counts  # the floods were real: turned away, back again
    assert [(req.op, peer.uid) for req, peer in recorder.calls] == [("location.off", 0)] * 10


@needs_root
def test_privacyctl_location_off_reaches_the_modem_while_a_group_member_floods(
        short_dir: Path, control_group: grp.struct_group, sim_name: str) -> None:
    from agent.config import ControlConfig
    from agent.daemon import Agent

    flood_target = short_dir / "control.sock"
    flood = Flood(flood_target, connections=FLOOD_CONNECTIONS, groups=[control_group.gr_gid])
    config = dataclasses.replace(sim_config(short_dir, sim_name),
                                 control=ControlConfig(socket=flood_target, group=control_group.gr_name))
    agent = Agent(config)
    agent.start()
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15), "agent did not enforce its first state"
        assert request(flood_target, "location.on", {"wait_s": 10}, timeout_s=30)["verified"] is True
        flood.start()
        assert wait_until(lambda: agent.control.active_connections >= 4), "the flood took no slots"
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "--socket", str(flood_target), "--json", "location", "off",
             "--wait", "10"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    finally:
        counts = flood.stop()
        modem_gnss_on = bool(agent_modem(sim_name).state.gnss_on)
        agent.stop()
    assert done.returncode == cli.EXIT_OK, done.stderr
    reply = json.loads(done.stdout)
    assert (reply["desired"], reply["gate"], reply["verified"]) == ("off", "closed", True)
    assert modem_gnss_on is False
    assert counts["busy"] > 0, counts


def agent_modem(name: str) -> Any:
    from agent import sim

    return sim.modem_for(name)
