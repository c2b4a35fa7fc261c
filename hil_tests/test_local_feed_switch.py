"""The local feed and the switch, through the real daemon: when ``location off`` is acknowledged, a reader that
lagged behind finds nothing left to read, not the sentences handed out just before (the rig's F3 soak found
two such sentences read after the switch when the machine was busy)."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil_tests.conftest import RunningAgent, wait_until


def feed_config(tmp_path: Path, name: str) -> Any:
    from agent.config import parse_config

    base = f"sim://ec25?name={name}&seed=3&ttff=1"
    return parse_config({
        "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 1},
        "state": {"dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "control.sock")},
        "policy": {"version": "2020-09-08", "home_region": "CN"},
        "purpose": [{"name": "local-nav", "description": "Navigation on the gateway", "legal_basis": "consent",
                     "grid_m": 2000, "time_bucket_s": 1, "max_points_per_day": 86400, "retention_days": 30,
                     "sinks": ["operator"]}],
        "sink": [{"name": "operator", "url": f"file://{tmp_path / 'outbox.jsonl'}", "recipient": "Example Ltd",
                  "region": "CN"}],
        "local_feed": {"link": str(tmp_path / "nmea"), "purpose": "local-nav"},
    })


@pytest.fixture
def running(tmp_path: Path, sim_name: str) -> Iterator[RunningAgent]:
    from agent.daemon import Agent

    agent = Agent(feed_config(tmp_path, sim_name))
    agent.start()
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        yield RunningAgent(agent, sim_name, agent.config.control.socket, agent.config.state.dir)
    finally:
        agent.stop()


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_what_a_lagging_reader_has_not_read_is_gone_when_off_is_acknowledged(running: RunningAgent,
                                                                             tmp_path: Path) -> None:
    reader = os.open(tmp_path / "nmea", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        running.request("consent.grant", purpose="local-nav")
        running.request("location.on", wait_s=10)
        assert wait_until(lambda: readable(reader), timeout_s=20), "the feed served nothing"
        time.sleep(0.3)  # the reader lags: sentences wait in the pty, unread
        assert readable(reader)
        reply = running.request("location.off", wait_s=0)
        assert reply["durable"] is True and reply["gate"] == "closed"
        assert not readable(reader), "sentences handed out before the switch were still there to read after it"
        time.sleep(1.5)  # and nothing comes after, while off
        assert not readable(reader)
    finally:
        os.close(reader)
