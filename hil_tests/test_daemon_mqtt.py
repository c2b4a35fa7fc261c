"""The real daemon process uploading to a real mosquitto, SIGKILLed mid-stream: after a restart every upload
the spool held reaches the broker (at least once), every delivery the ledger shows arrived, and no upload arrives
that the user cannot see in `privacyctl uploads`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.spool import replay
from hil_tests.brokers import Subscriber, mosquitto_path, running_mosquitto
from hil_tests.conftest import wait_until
from hil_tests.test_daemon_process import location_status, privacyctl, simulator

__all__ = ["simulator"]  # the fixture, used by name

pytestmark = pytest.mark.skipif(mosquitto_path() is None,
                                reason="mosquitto is not installed (scripts/test installs Debian's package as root)")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")

TOPIC = "fleet/up"


def start_daemon(tmp_path: Path, links: dict[str, Path], port: int) -> subprocess.Popen[str]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[modem]\nport = "{links["at"]}"\nnmea_port = "{links["nmea"]}"\nreconcile_interval_s = 1\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        '[policy]\nversion = "1"\nhome_region = "CN"\n'
        '[[purpose]]\nname = "fleet-tracking"\ndescription = "Fleet position"\nlegal_basis = "consent"\n'
        'time_bucket_s = 1\nmax_points_per_day = 86400\nsinks = ["broker"]\n'
        f'[[sink]]\nname = "broker"\nurl = "mqtt://127.0.0.1:{port}/{TOPIC}"\nrecipient = "Fleet Ltd"\n'
        'region = "CN"\n')
    with open(tmp_path / "daemon.log", "a") as log:
        return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=log, text=True)


def uploads(tmp_path: Path) -> list[dict[str, object]]:
    done = privacyctl(tmp_path, "uploads")
    assert done.returncode == 0, done.stdout + done.stderr
    listed: list[dict[str, object]] = json.loads(done.stdout)["uploads"]
    return listed


def test_sigkill_mid_stream_loses_no_upload(tmp_path: Path, simulator: dict[str, Path]) -> None:
    with running_mosquitto(tmp_path / "broker") as broker:
        subscriber = Subscriber(broker.port, TOPIC)
        subscriber.start()
        daemon = start_daemon(tmp_path, simulator, broker.port)
        try:
            assert wait_until(lambda: (location_status(tmp_path) or {}).get("enforced") is True, 20)
            assert privacyctl(tmp_path, "consent", "grant", "fleet-tracking").returncode == 0
            assert privacyctl(tmp_path, "location", "on").returncode == 0
            assert wait_until(lambda: len(subscriber.counts) >= 3, 20), "no upload reached the broker"
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
            received_at_kill = len(subscriber.counts)
            daemon = start_daemon(tmp_path, simulator, broker.port)
            assert wait_until(lambda: (location_status(tmp_path) or {}).get("enforced") is True, 20)
            assert wait_until(lambda: len(subscriber.counts) >= received_at_kill + 3, 20), "uploads did not resume"
            assert privacyctl(tmp_path, "location", "off").returncode == 0
            journal = tmp_path / "state" / "spool" / "journal"
            assert wait_until(lambda: not replay(journal.read_bytes(), journal)[0].queued, 20), \
                "the spool did not drain"
            shown = uploads(tmp_path)
        finally:
            daemon.terminate()
            daemon.wait(15)
            subscriber.stop()
    arrived = {json.loads(payload)["id"] for payload in subscriber.counts}
    recorded = {item["id"] for item in shown}
    assert recorded <= arrived, "the ledger shows deliveries the broker never saw"
    assert arrived <= recorded, "an upload arrived that the user cannot see in privacyctl uploads"
    for item in shown:
        assert item["payload"] is not None and json.loads(str(item["payload"]))["id"] == item["id"]
    duplicates = [payload for payload, count in subscriber.counts.items() if count > 1]
    assert len(duplicates) <= 2, "more duplicates than the messages in flight at the kill"
