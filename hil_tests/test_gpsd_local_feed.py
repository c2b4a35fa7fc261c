"""The local feed against the real gpsd: the daemon on the simulator serves its filtered NMEA on a pty, and gpsd
(``gpsd -N -n -S PORT`` on loopback) reads it as it would a receiver's tty. Its JSON shows positions on the
purpose's keyed grid only, nothing while the switch is off or consent is withdrawn, and fixes again once allowed.
The feed's own gpsd-JSON server is read by gpsd's own client, ``gpspipe -w``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil_tests.conftest import RunningAgent, wait_until

pytestmark = pytest.mark.skipif(shutil.which("gpsd") is None, reason="gpsd is not installed (Debian: gpsd)")

GRID_M = 2000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def feed_config(tmp_path: Path, name: str, gpsd_json_port: int | None = None) -> Any:
    """A daemon on the simulator whose local feed serves a consent purpose on a pty (and gpsd JSON if a port)."""
    from agent.config import parse_config

    base = f"sim://ec25?name={name}&seed=3&ttff=1"
    purpose = {"legal_basis": "consent", "grid_m": GRID_M, "time_bucket_s": 1, "max_points_per_day": 86400,
               "retention_days": 30, "sinks": ["operator"]}
    return parse_config({
        "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 1},
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
        "policy": {"version": "2020-09-08", "home_region": "CN"},
        "purpose": [{"name": "local-nav", "description": "Navigation on the gateway", **purpose}],
        "sink": [{"name": "operator", "url": f"file://{tmp_path / 'outbox.jsonl'}", "recipient": "Example Ltd",
                  "region": "CN"}],
        "local_feed": {"link": str(tmp_path / "nmea"), "purpose": "local-nav",
                       **({} if gpsd_json_port is None else {"gpsd_json": f"127.0.0.1:{gpsd_json_port}"})},
    })


class GpsdWatcher:
    """A gpsd JSON client: TPV objects with a position, as gpsd reports them."""

    def __init__(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._sock.settimeout(0.1)
        self._sock.sendall(b'?WATCH={"enable":true,"json":true};')
        self._data = b""
        self.fixes: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        try:
            while chunk := self._sock.recv(65536):
                self._data += chunk
        except TimeoutError:
            pass
        *lines, self._data = self._data.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if message.get("class") == "TPV" and "lat" in message:
                self.fixes.append(message)
        return self.fixes

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def with_gpsd(tmp_path: Path, sim_name: str) -> Iterator[tuple[RunningAgent, GpsdWatcher]]:
    from agent.daemon import Agent

    agent = Agent(feed_config(tmp_path, sim_name, _free_port()))
    agent.start()
    gpsd_port = _free_port()
    gpsd = subprocess.Popen(["gpsd", "-N", "-n", "-S", str(gpsd_port), str(tmp_path / "nmea")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = None
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        watcher = GpsdWatcher(gpsd_port)
        yield RunningAgent(agent, sim_name, agent.config.control.socket, agent.config.state.dir), watcher
    finally:
        if watcher is not None:
            watcher.close()
        gpsd.terminate()
        gpsd.wait(timeout=10)
        agent.stop()


def _grid_points(running: RunningAgent, samples: list[Any]) -> set[tuple[float, float]]:
    coarsener = running.agent.uploads.pipeline.coarsener
    return {(coarse.lat, coarse.lon) for coarse in (coarsener.coarsen(s.lat, s.lon, GRID_M) for s in samples)}


def _watch(running: RunningAgent, watcher: GpsdWatcher, seconds: float) -> list[Any]:
    """Poll gpsd for ``seconds``, sampling the simulator's true position meanwhile."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(running.modem.true_position())
        watcher.poll()
    return samples


def test_gpsd_sees_grid_positions_only_and_nothing_while_off_or_without_consent(
        with_gpsd: tuple[RunningAgent, GpsdWatcher]) -> None:
    running, watcher = with_gpsd
    running.request("consent.grant", purpose="local-nav")
    running.request("location.on", wait_s=10)
    samples = _watch(running, watcher, 0.5)
    assert wait_until(lambda: len(watcher.poll()) >= 3, timeout_s=20), "gpsd reported no fix from the feed"
    samples += _watch(running, watcher, 0.5)

    # positions: each one the keyed point of a grid cell the device was in, never the truth itself
    points = _grid_points(running, samples)
    for fix in watcher.fixes:
        assert any(abs(fix["lat"] - lat) < 1e-7 and abs(fix["lon"] - lon) < 1e-7 for lat, lon in points)
        assert all((fix["lat"], fix["lon"]) != (s.lat, s.lon) for s in samples)
        assert fix["time"].endswith(":00.000Z") or fix["time"].endswith(".000Z")  # whole seconds: the bucket

    status = running.request("status")["local_feed"]  # privacyctl status shows the feed and its drop counters
    assert status["purpose"] == "local-nav" and status["served"] >= 3
    assert [output["output"] for output in status["outputs"]] == ["pty", "gpsd-json"]
    assert status["outputs"][0]["dropped_sentences"] == 0  # gpsd keeps up

    # switch off: gpsd sees no new fixes
    running.request("location.off", wait_s=10)
    _watch(running, watcher, 0.5)  # what was already on its way
    seen = len(watcher.fixes)
    _watch(running, watcher, 3.0)
    assert len(watcher.fixes) == seen, "gpsd got fixes while the switch was off"

    # switch on again: fixes resume
    running.request("location.on", wait_s=10)
    assert wait_until(lambda: len(watcher.poll()) >= seen + 2, timeout_s=20), "fixes did not resume"

    # consent withdrawn: nothing
    running.request("consent.withdraw", purpose="local-nav")
    _watch(running, watcher, 0.5)
    seen = len(watcher.fixes)
    _watch(running, watcher, 3.0)
    assert len(watcher.fixes) == seen, "gpsd got fixes after consent was withdrawn"
    assert running.agent.local_feed.refused > 0

    # every local access is in the ledger with the precision given
    running.agent.local_feed.stop()
    accesses = [record.fields for record in running.agent.ledger.records()
                if record.type == "fix_access" and record.fields.get("reader") == "local-feed"]
    assert sum(access["count"] for access in accesses) >= 4
    assert all(access["grid_m"] == GRID_M and access["purpose"] == "local-nav" for access in accesses)


@pytest.mark.skipif(shutil.which("gpspipe") is None, reason="gpspipe is not installed (Debian: gpsd-clients)")
def test_gpspipe_reads_the_feeds_own_gpsd_json(with_gpsd: tuple[RunningAgent, GpsdWatcher]) -> None:
    running, _ = with_gpsd
    running.request("consent.grant", purpose="local-nav")
    running.request("location.on", wait_s=10)
    host, port = running.agent.config.local_feed.gpsd_json
    result = subprocess.run(["gpspipe", "-w", "-n", "8", f"{host}:{port}"], capture_output=True, timeout=30,
                            check=True)
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    classes = [message["class"] for message in messages]
    assert classes[:3] == ["VERSION", "DEVICES", "WATCH"]
    tpvs = [message for message in messages if message["class"] == "TPV"]
    assert tpvs and all(tpv["mode"] == 2 and "alt" not in tpv for tpv in tpvs)  # the purpose allows no altitude
    truth = running.modem.true_position()
    assert all(abs(tpv["lat"] - truth.lat) < 0.1 and tpv["lat"] != truth.lat for tpv in tpvs)
    assert "SKY" not in classes  # neither satellites nor HDOP allowed
