"""Sink URLs, the file sink, the HTTPS status rules and the backoff (no network here: see hil_tests)."""

from __future__ import annotations

import builtins
import importlib.util
import json
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError, SinkRejected, SinkUnavailable
from agent.sinks import Backoff, open_sink
from agent.sinks.https import HttpsSink, _judge
from agent.sinks.mqtt import MqttSink, random_client_id
from agent.spool import Message


def message(body: bytes = b'{"id":"m1","lat":31.2}', message_id: str = "m1") -> Message:
    return Message(id=message_id, sink="s", purpose="p", body=body, created_ms=0)


# --- URLs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://host/x", "scheme must be file, mqtt, mqtts or https"),
    ("http://host/x", "scheme must be file, mqtt, mqtts or https"),
    ("", "non-empty URL"),
    ("file://relative/path", "file:///absolute/path"),
    ("file:///tmp/x?y=1", "file:///absolute/path"),
    ("mqtt://host:1883/", "topic"),
    ("mqtt://host:1883/a/+/b", "topic"),
    ("mqtt://host:1883/a/#", "must not contain '#'"),
    ("mqtt://:1883/t", "no host"),
    ("mqtt://host:99999/t", "port"),
    ("mqtt://host:0/t", "port"),
    ("mqtt://user:secret@host/t", "credentials"),
    ("https://user@host/x", "credentials"),
    ("https://host/x#frag", "must not contain '#'"),
    ("https://host/a b", "without spaces"),
    ("https://host/\x00", "control characters"),
])
def test_bad_urls_are_named(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        open_sink("operator", url)
    assert "secret" not in str(caught.value)


def test_tls_options_on_a_plain_sink_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS options do not apply"):
        open_sink("s", f"file://{tmp_path}/out.jsonl", ca_file="/etc/ssl/ca.pem")
    with pytest.raises(ConfigError, match="TLS options do not apply"):
        open_sink("s", "mqtt://127.0.0.1:1883/t", cert_file="c.pem")
    with pytest.raises(ConfigError, match="key file needs a certificate"):
        open_sink("s", "mqtts://127.0.0.1/t", key_file="k.pem")


def test_unreadable_ca_file_is_a_config_error_at_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA file or client certificate"):
        open_sink("s", "https://127.0.0.1/x", ca_file=str(tmp_path / "missing.pem"))
    if importlib.util.find_spec("paho") is not None:
        with pytest.raises(ConfigError, match="CA file or client certificate"):
            open_sink("s", "mqtts://127.0.0.1/t", ca_file=str(tmp_path / "missing.pem"))


def test_good_urls_open_the_right_sinks(tmp_path: Path) -> None:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")
    assert type(open_sink("f", f"file://{tmp_path}/out.jsonl")).__name__ == "FileSink"
    mqtt = open_sink("m", "mqtt://127.0.0.1/fleet/up", client_id="pa-1234")
    assert isinstance(mqtt, MqttSink) and mqtt.name == "m"
    mqtt.close()
    assert isinstance(open_sink("h", "https://127.0.0.1:8443/v1/up?x=1"), HttpsSink)


def test_bad_client_ids_are_refused() -> None:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")
    with pytest.raises(ConfigError, match="client id"):
        open_sink("m", "mqtt://127.0.0.1/t", client_id="has space")
    assert random_client_id() != random_client_id()


def test_missing_paho_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_paho(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("paho"):
            raise ImportError("no paho here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_paho)
    with pytest.raises(ConfigError, match=r"install the 'mqtt' extra"):
        open_sink("m", "mqtt://127.0.0.1/t")


# --- file:// ------------------------------------------------------------------------------------------------

def test_file_sink_appends_one_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_sink("f", f"file://{path}")
    sink.send(message(b'{"id":"a"}'))
    sink.send(message(b'{"id":"b"}'))
    sink.close()
    sink = open_sink("f", f"file://{path}")
    sink.send(message(b'{"id":"c"}'))
    sink.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_file_sink_closes_a_line_cut_by_a_power_cut(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id":"a"}\n{"id":"b')
    sink = open_sink("f", f"file://{path}")
    sink.send(message(b'{"id":"c"}'))
    sink.close()
    assert path.read_bytes() == b'{"id":"a"}\n{"id":"b\n{"id":"c"}\n'


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"a":\n1}', "more than one line"),
    (b'{"a":1}\r', "more than one line"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "not one JSON object"),
])
def test_file_sink_rejects_bodies_that_are_not_one_object_on_one_line(tmp_path: Path, body: bytes,
                                                                       problem: str) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_sink("f", f"file://{path}")
    with pytest.raises(SinkRejected, match=problem):
        sink.send(message(body))
    sink.close()
    assert not path.exists() or path.read_bytes() == b""


def test_file_sink_refuses_a_symlink_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"")
    os.symlink(tmp_path / "target", tmp_path / "link.jsonl")
    with pytest.raises(SinkUnavailable, match="cannot append"):
        open_sink("f", f"file://{tmp_path}/link.jsonl").send(message())
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(SinkUnavailable):
        open_sink("f", f"file://{tmp_path}/dir.jsonl").send(message())
    assert (tmp_path / "target").read_bytes() == b""


def test_file_sink_in_a_missing_directory_is_unavailable_then_recovers(tmp_path: Path) -> None:
    sink = open_sink("f", f"file://{tmp_path}/later/out.jsonl")
    with pytest.raises(SinkUnavailable):
        sink.send(message())
    (tmp_path / "later").mkdir()
    sink.send(message())
    assert (tmp_path / "later" / "out.jsonl").read_bytes() == message().body + b"\n"


# --- https:// status rules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    _judge("h", status)


@pytest.mark.parametrize("status", [301, 302, 307, 308, 408, 429, 500, 502, 503, 599])
def test_retried_statuses(status: int) -> None:
    with pytest.raises(SinkUnavailable, match=str(status)):
        _judge("h", status)


@pytest.mark.parametrize("status", [100, 400, 401, 403, 404, 409, 413, 422, 451, 499])
def test_rejected_statuses(status: int) -> None:
    with pytest.raises(SinkRejected, match=str(status)):
        _judge("h", status)


# --- backoff ------------------------------------------------------------------------------------------------

@given(st.integers(0, 10_000), st.integers(0, 2**32), st.floats(0.01, 10), st.floats(1, 1000))
def test_backoff_stays_within_its_ceiling(attempt: int, seed: int, base: float, cap_extra: float) -> None:
    backoff = Backoff(base_s=base, cap_s=base + cap_extra)
    delay = backoff.delay_s(attempt, random.Random(seed))
    assert 0 <= delay <= backoff.ceiling_s(attempt) <= backoff.cap_s
    assert backoff.ceiling_s(attempt) == min(backoff.cap_s, base * 2 ** min(attempt, 64))


def test_backoff_ceiling_doubles_up_to_the_cap_and_is_seeded() -> None:
    backoff = Backoff(base_s=1, cap_s=300)
    assert [backoff.ceiling_s(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    first = [backoff.delay_s(n, random.Random(7)) for n in range(10)]
    assert first == [backoff.delay_s(n, random.Random(7)) for n in range(10)]
    # full jitter: over many draws the delays spread over the whole range, not near its top only
    draws = [backoff.delay_s(8, random.Random(seed)) for seed in range(400)]
    assert min(draws) < 256 * 0.1 and max(draws) > 256 * 0.9


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base_s=0)
    with pytest.raises(ValueError):
        Backoff(base_s=10, cap_s=1)


def test_https_refuses_an_id_that_cannot_be_a_header_before_connecting() -> None:
    sink = open_sink("h", "https://127.0.0.1:1/x")  # nothing listens there: a connect would be Unavailable
    with pytest.raises(SinkRejected, match="not ASCII"):
        sink.send(message(message_id="m\u00e9"))
