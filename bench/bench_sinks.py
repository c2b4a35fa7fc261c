"""Sink and spool benchmarks: the MQTT sink against bare paho-mqtt, and the spool's durable put+ack.

- ``mqtt_sink_publish``: N payloads published through :class:`agent.sinks.mqtt.MqttSink` to a real mosquitto
  on a loopback port, against paho-mqtt publishing the same payloads bare; QoS 1 and a wait for each PUBACK in
  both. The two sides take turns, round by round, and the medians of the per-round rates are compared.
- ``spool_put_ack``: a durable put then ack per message, against the same system calls made inline (an
  append and an fdatasync for the put, another pair for the ack, to one journal file) on the same disk.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agent.spool import Message, Spool  # noqa: E402

PAYLOAD = b'{"id":"%08d","purpose":"fleet-tracking","pseudonym":"3f9a1c2b7d4e5f60","t":"2026-12-02T16:15:00Z",' \
          b'"lat":31.23,"lon":121.47,"accuracy_m":2000}'
TOPIC = "bench/up"


def _result(value: float, unit: str, baseline: float, target: str, passed: bool) -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return {"value": round(value, 1), "unit": unit, "baseline": round(baseline, 1), "ratio": ratio,
            "target": target, "pass": passed}


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sinks-") as scratch:
        directory = Path(scratch)
        results["spool_put_ack"] = bench_spool(directory / "spool", rounds=7 if quick else 9,
                                               per_round=40 if quick else 150)
        results["mqtt_sink_publish"] = bench_mqtt(directory / "broker", rounds=7 if quick else 9,
                                                  per_round=100 if quick else 500)
    return results


# --- spool --------------------------------------------------------------------------------------------------

def bench_spool(directory: Path, rounds: int, per_round: int) -> dict[str, Any]:
    directory.mkdir()
    spool_rates: list[float] = []
    raw_rates: list[float] = []
    raw_dir = directory / "raw"
    raw_dir.mkdir()
    with Spool.open(directory) as spool:
        for round_number in range(rounds):
            started = time.perf_counter()
            for index in range(per_round):
                number = round_number * per_round + index
                spool.put(Message(id=f"m{number}", sink="operator", purpose="fleet", body=PAYLOAD % number,
                                  created_ms=number))
                spool.ack(f"m{number}")
            spool_rates.append(per_round / (time.perf_counter() - started))
            raw_rates.append(_raw_put_ack_rate(raw_dir, PAYLOAD % 0 + bytes(60), per_round))
    spool_rate, raw_rate = statistics.median(spool_rates), statistics.median(raw_rates)
    ratio = spool_rate / raw_rate
    return _result(spool_rate, "put+ack/s", raw_rate, ">= 0.7 x the same syscalls inline, >= 100/s",
                   ratio >= 0.7 and spool_rate >= 100)


def _raw_put_ack_rate(directory: Path, data: bytes, count: int) -> float:
    """What a journal's put and ack cost at the least: two appends of an entry's size, two fdatasyncs."""
    path = directory / "journal"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(count):
            os.write(fd, data)
            os.fdatasync(fd)
            os.write(fd, data[:40])
            os.fdatasync(fd)
        return count / (time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()


# --- mqtt ---------------------------------------------------------------------------------------------------

def bench_mqtt(directory: Path, rounds: int, per_round: int) -> dict[str, Any]:
    from hil_tests.brokers import mosquitto_path, running_mosquitto

    if mosquitto_path() is None:
        return {"value": None, "unit": "msgs/s", "baseline": None, "ratio": None,
                "target": "mosquitto installed (scripts/test installs it)", "pass": False}
    from agent.sinks import open_sink

    with running_mosquitto(directory) as broker:
        sink = open_sink("bench", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="bench-sink")
        bare = _BarePublisher(broker.port)
        try:
            sink.send(Message(id="warm-up", sink="bench", purpose="fleet", body=PAYLOAD % 0, created_ms=0))
            bare.rate([PAYLOAD % 0])  # both connected before the clock starts
            sink_rates: list[float] = []
            bare_rates: list[float] = []
            for round_number in range(rounds):
                messages = [Message(id=f"m{n}", sink="bench", purpose="fleet", body=PAYLOAD % n, created_ms=n)
                            for n in range(round_number * per_round, (round_number + 1) * per_round)]
                started = time.perf_counter()
                for message in messages:
                    sink.send(message)
                sink_rates.append(per_round / (time.perf_counter() - started))
                bare_rates.append(bare.rate([message.body for message in messages]))
        finally:
            sink.close()
            bare.close()
    sink_rate, bare_rate = statistics.median(sink_rates), statistics.median(bare_rates)
    ratio = sink_rate / bare_rate
    return _result(sink_rate, "msgs/s", bare_rate, ">= 0.5 x bare paho-mqtt (QoS 1, PUBACK each)", ratio >= 0.5)


class _BarePublisher:
    """paho-mqtt used directly, the way its documentation shows: QoS 1, wait_for_publish after each."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho

        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=False,
                                   protocol=paho.MQTTv311)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        deadline = time.monotonic() + 10
        while not self._client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("bare paho-mqtt client did not connect")
            time.sleep(0.01)

    def rate(self, payloads: list[bytes]) -> float:
        started = time.perf_counter()
        for payload in payloads:
            self._client.publish(TOPIC, payload, qos=1).wait_for_publish(10)
        return len(payloads) / (time.perf_counter() - started)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
