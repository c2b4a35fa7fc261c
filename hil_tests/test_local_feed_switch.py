"""The local feed and the switch, through the real daemon: when ``location off`` is acknowledged, a reader that
lagged behind finds nothing left to read, not the sentences handed out just before (the rig's F3 soak found
two such sentences read after the switch when the machine was busy)."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path
from typing import Any

import pytest

from hil_tests.conftest import RunningAgent, wait_until
from hil_tests.test_gpsd_local_feed import feed_config


@pytest.fixture
def running(tmp_path: Path, sim_name: str, agents: Any) -> RunningAgent:
    return agents(feed_config(tmp_path, sim_name), sim_name)


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
