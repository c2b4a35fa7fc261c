"""SIGKILL of a process that drains its spool into mosquitto, mid-stream: after a restart every message
reaches the subscriber at least once, and only the message in flight at the kill may arrive twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.model import SystemClock
from agent.sinks import Backoff, open_sink
from agent.spool import Message, Spool
from agent.uploader import Uploader
from hil_tests.brokers import Subscriber, mosquitto_path, running_mosquitto
from hil_tests.conftest import wait_until

pytestmark = pytest.mark.skipif(mosquitto_path() is None,
                                reason="mosquitto is not installed (scripts/test installs Debian's package as root)")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")

REPO = Path(__file__).resolve().parent.parent
TOPIC = "fleet/up"
TOTAL = 400

SENDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from agent.model import SystemClock
    from agent.sinks import open_sink
    from agent.spool import Spool
    from agent.uploader import Uploader

    spool = Spool.open(Path(sys.argv[1]))
    sink = open_sink("broker", sys.argv[2], client_id="pa-killed")
    uploader = Uploader(spool, {"broker": sink}, clock=SystemClock(), may_send=lambda m: True,
                        on_delivered=lambda m: None, on_dead=lambda m, r: None, poll_s=0.05)
    uploader.start()
    print("started", flush=True)
    time.sleep(120)  # killed long before
""")


def message(number: int) -> Message:
    return Message(id=f"m{number}", sink="broker", purpose="fleet", body=b'{"id":"m%d"}' % number,
                   created_ms=number)


def test_sigkill_mid_stream_loses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with Spool.open(state) as spool:
        for number in range(TOTAL):
            spool.put(message(number))
    with running_mosquitto(tmp_path / "broker") as broker:
        url = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
        counter = Subscriber(broker.port, TOPIC)
        counter.start()
        try:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            sender = subprocess.Popen([sys.executable, "-c", SENDER, str(state), url], env=env,
                                      stdout=subprocess.PIPE)
            try:
                assert wait_until(lambda: sum(counter.counts.values()) >= TOTAL // 3, timeout_s=30)
            finally:
                sender.send_signal(signal.SIGKILL)
                sender.wait(timeout=30)
                assert sender.stdout is not None
                sender.stdout.close()
            assert len(counter.counts) < TOTAL, "the stream finished before the kill; the test proves nothing"
            with Spool.open(state) as spool:
                left = spool.pending_count()
                sink = open_sink("broker", url, client_id="pa-killed")
                uploader = Uploader(spool, {"broker": sink}, clock=SystemClock(), may_send=lambda _m: True,
                                    on_delivered=lambda _m: None, on_dead=lambda _m, _r: None,
                                    backoff=Backoff(base_s=0.05, cap_s=0.2), poll_s=0.05)
                uploader.start()
                try:
                    assert wait_until(lambda: spool.pending_count() == 0, timeout_s=60)
                finally:
                    assert uploader.stop(10)
                    sink.close()
            everything = {message(n).body for n in range(TOTAL)}
            assert counter.wait_for(everything, timeout_s=30)
        finally:
            counter.stop()
    assert 0 < left < TOTAL
    duplicates = sum(counter.counts.values()) - TOTAL
    assert set(counter.counts) == everything
    assert duplicates <= 1  # one sink, one message in flight: sent, PUBACKed, not yet acked in the spool
