"""The MQTT sink against a real mosquitto on a loopback port: plain, TLS, client certificates, broker restarts."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import ConfigError, SinkUnavailable
from agent.model import SystemClock
from agent.sinks import Backoff, open_sink
from agent.spool import Message, Spool
from agent.uploader import Uploader
from hil_tests.brokers import Mosquitto, Pki, Subscriber, make_pki, mosquitto_path, running_mosquitto
from hil_tests.conftest import wait_until

pytestmark = pytest.mark.skipif(mosquitto_path() is None,
                                reason="mosquitto is not installed (scripts/test installs Debian's package as root)")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")

TOPIC = "fleet/up"


def message(number: int) -> Message:
    return Message(id=f"m{number}", sink="broker", purpose="fleet", body=b'{"id":"m%d"}' % number,
                   created_ms=number)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_mosquitto(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    counter = Subscriber(broker.port, TOPIC)
    counter.start()
    yield counter
    counter.stop()


def client_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def test_plain_publish_arrives_after_puback(broker: Mosquitto, subscriber: Subscriber) -> None:
    sink = open_sink("broker", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="pa-plain", timeout_s=5)
    try:
        for number in range(20):
            sink.send(message(number))
    finally:
        sink.close()
    assert subscriber.wait_for({message(n).body for n in range(20)})


def test_no_broker_is_unavailable_quickly(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "never-started")  # a free port nobody listens on
    sink = open_sink("broker", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="pa-none", timeout_s=2)
    with pytest.raises(SinkUnavailable, match="cannot connect"):
        sink.send(message(1))
    sink.close()


def test_a_broker_refusing_the_connection_is_unavailable(tmp_path: Path) -> None:
    with running_mosquitto(tmp_path / "closed", allow_anonymous=False) as broker:
        sink = open_sink("broker", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="pa-anon", timeout_s=3)
        with pytest.raises(SinkUnavailable, match="refused the connection"):
            sink.send(message(1))
        sink.close()


@pytest.mark.parametrize("require_certificate", [False, True])
def test_tls_publish(tmp_path: Path, pki: Pki, require_certificate: bool) -> None:
    with running_mosquitto(tmp_path / "tls", pki=pki, require_certificate=require_certificate) as broker:
        counter = Subscriber(broker.port, TOPIC, tls=client_context(pki))
        counter.start()
        sink = open_sink("broker", f"mqtts://127.0.0.1:{broker.port}/{TOPIC}", ca_file=str(pki.ca),
                         cert_file=str(pki.client_cert) if require_certificate else None,
                         key_file=str(pki.client_key) if require_certificate else None,
                         client_id="pa-tls", timeout_s=5)
        try:
            for number in range(5):
                sink.send(message(number))
            assert counter.wait_for({message(n).body for n in range(5)})
        finally:
            sink.close()
            counter.stop()


def test_tls_refuses_an_untrusted_broker(tmp_path: Path, pki: Pki) -> None:
    with running_mosquitto(tmp_path / "tls", pki=pki) as broker:
        other = make_pki(tmp_path / "other-pki")  # a CA that did not sign the broker's certificate
        sink = open_sink("broker", f"mqtts://127.0.0.1:{broker.port}/{TOPIC}", ca_file=str(other.ca),
                         client_id="pa-untrusted", timeout_s=3)
        with pytest.raises(SinkUnavailable):
            sink.send(message(1))
        sink.close()


@pytest.mark.parametrize("client", ["none", "stranger"])
def test_broker_requiring_a_certificate_refuses_others(tmp_path: Path, pki: Pki, client: str) -> None:
    with running_mosquitto(tmp_path / "tls", pki=pki, require_certificate=True) as broker:
        cert = {"none": None, "stranger": str(pki.stranger_cert)}[client]
        key = {"none": None, "stranger": str(pki.stranger_key)}[client]
        sink = open_sink("broker", f"mqtts://127.0.0.1:{broker.port}/{TOPIC}", ca_file=str(pki.ca),
                         cert_file=cert, key_file=key, client_id="pa-refused", timeout_s=3)
        with pytest.raises(SinkUnavailable):
            sink.send(message(1))
        sink.close()


def test_bad_certificate_files_are_config_errors(pki: Pki) -> None:
    with pytest.raises(ConfigError):
        open_sink("broker", "mqtts://127.0.0.1:8883/t", ca_file=str(pki.ca), cert_file=str(pki.ca))


def test_the_sink_reconnects_after_a_broker_restart(broker: Mosquitto, subscriber: Subscriber) -> None:
    sink = open_sink("broker", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="pa-restart", timeout_s=3)
    try:
        sink.send(message(1))
        broker.restart()
        delivered = False
        for _ in range(3):  # the first send after the restart may find the old connection dead
            try:
                sink.send(message(2))
                delivered = True
                break
            except SinkUnavailable:
                continue
        assert delivered
    finally:
        sink.close()
    assert subscriber.wait_for({message(1).body, message(2).body})


def test_restart_mid_stream_loses_nothing(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    """The spool and the uploader publish a stream while the broker restarts twice: every id arrives at least
    once, and duplicates are only the few publishes whose PUBACK the restart cut off."""
    total = 300
    delivered: list[str] = []
    (tmp_path / "state").mkdir()
    with Spool.open(tmp_path / "state") as spool:
        for number in range(total):
            spool.put(message(number))
        sink = open_sink("broker", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="pa-stream", timeout_s=3)
        uploader = Uploader(spool, {"broker": sink}, clock=SystemClock(), may_send=lambda _m: True,
                            on_delivered=lambda m: delivered.append(m.id), on_dead=lambda _m, _r: None,
                            backoff=Backoff(base_s=0.05, cap_s=0.2), poll_s=0.05)
        uploader.start()
        try:
            for threshold in (total // 3, 2 * total // 3):
                assert wait_until(lambda t=threshold: len(delivered) >= t, timeout_s=30)
                broker.restart()
            assert wait_until(lambda: spool.pending_count() == 0, timeout_s=60), broker.log_text()
        finally:
            assert uploader.stop(10)
            sink.close()
    everything = {message(n).body for n in range(total)}
    assert subscriber.wait_for(everything, timeout_s=30)
    duplicates = sum(subscriber.counts.values()) - total
    assert set(subscriber.counts) == everything
    assert duplicates <= 10  # at-least-once: only publishes in flight at a restart may come twice


def test_sends_from_two_threads_are_serialised(broker: Mosquitto, subscriber: Subscriber) -> None:
    sink = open_sink("broker", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", client_id="pa-threads", timeout_s=5)
    errors: list[BaseException] = []

    def publish(offset: int) -> None:
        try:
            for number in range(offset, offset + 25):
                sink.send(message(number))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(offset,)) for offset in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sink.close()
    assert not errors
    assert subscriber.wait_for({message(n).body for n in (*range(25), *range(100, 125))})
