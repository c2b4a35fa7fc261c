"""Upload sinks: where spooled messages go (``file://``, ``mqtt://``, ``mqtts://``, ``https://``).

A sink is an adapter: it takes one :class:`~agent.spool.Message` at a time and either has it durably (the file
is fsynced, the broker sent PUBACK, the server answered 2xx) when :meth:`Sink.send` returns, or raises

- :class:`~agent.errors.SinkRejected` when the sink refused this message for good (never retried), or
- :class:`~agent.errors.SinkUnavailable` when it may take it later (retried with backoff by the uploader).

Each sink translates its foreign library's exceptions (OSError, paho-mqtt, ssl, http.client) itself.
The MQTT sink needs the ``mqtt`` extra (paho-mqtt); it is imported only when an ``mqtt(s)://`` sink is opened.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from agent.errors import ConfigError
from agent.sinks.backoff import Backoff
from agent.spool import Message

__all__ = ["Backoff", "Sink", "open_sink"]


class Sink(Protocol):
    """One destination for uploads."""

    name: str

    def send(self, message: Message) -> None:
        """Deliver ``message``; return only once the sink has it. SinkRejected or SinkUnavailable otherwise."""
        ...

    def close(self) -> None:
        """Release connections and files; the sink may not be used afterwards."""
        ...


def open_sink(name: str, url: str, *, ca_file: str | None = None, cert_file: str | None = None,
              key_file: str | None = None, client_id: str | None = None, timeout_s: float = 10.0) -> Sink:
    """A sink for ``url``: ``file://PATH``, ``mqtt://host:port/topic``, ``mqtts://host:port/topic`` or
    ``https://host[:port]/path``. Anything else is a ConfigError naming the problem (never the URL's secrets).

    ``ca_file`` replaces the system trust store for TLS; ``cert_file``/``key_file`` are the client certificate.
    ``client_id`` is the MQTT client id: it must be stable across restarts (the broker keeps the session under
    it) and must never be a device identifier (IMEI, IMSI, serial...): use a random id persisted by the caller.
    """
    if not name:
        raise ConfigError("sink name must not be empty")
    if not timeout_s > 0:
        raise ConfigError("sink timeout must be positive", sink=name)
    if key_file and not cert_file:
        raise ConfigError("a sink key file needs a certificate file too", sink=name)
    parts = _split(name, url)
    if parts.scheme == "file":
        from agent.sinks.file import FileSink

        _no_tls_options(name, parts.scheme, ca_file, cert_file)
        return FileSink(name, parts.path)
    if parts.scheme in ("mqtt", "mqtts"):
        from agent.sinks.mqtt import MqttSink

        if parts.scheme == "mqtt":
            _no_tls_options(name, parts.scheme, ca_file, cert_file)
        return MqttSink(name, _host(name, parts), _port(name, parts, 1883 if parts.scheme == "mqtt" else 8883),
                        _topic(name, parts), tls=parts.scheme == "mqtts", ca_file=ca_file, cert_file=cert_file,
                        key_file=key_file, client_id=client_id, timeout_s=timeout_s)
    if parts.scheme == "https":
        from agent.sinks.https import HttpsSink

        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return HttpsSink(name, _host(name, parts), _port(name, parts, 443), path, ca_file=ca_file,
                         cert_file=cert_file, key_file=key_file, timeout_s=timeout_s)
    raise ConfigError("sink URL scheme must be file, mqtt, mqtts or https", sink=name, scheme=parts.scheme)


def _split(name: str, url: str) -> SplitResult:
    if not isinstance(url, str) or not url or not url.isprintable() or " " in url:
        raise ConfigError("sink URL must be a non-empty URL without spaces or control characters", sink=name)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError("sink URL cannot be parsed", sink=name) from exc
    if "#" in url:
        raise ConfigError("sink URL must not contain '#' (a fragment, or an MQTT wildcard)", sink=name)
    try:
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError as exc:
        raise ConfigError("sink URL cannot be parsed", sink=name) from exc
    if has_credentials:
        raise ConfigError("sink URL must not carry credentials; use certificate options", sink=name)
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path.startswith("/")
                                   or parts.query):
        raise ConfigError("file sink URL must be file:///absolute/path", sink=name)
    return parts


def _host(name: str, parts: SplitResult) -> str:
    if not parts.hostname:
        raise ConfigError("sink URL has no host", sink=name)
    return parts.hostname


def _port(name: str, parts: SplitResult, default: int) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError("sink URL port must be a number from 1 to 65535", sink=name) from exc
    if port == 0:
        raise ConfigError("sink URL port must be a number from 1 to 65535", sink=name)
    return default if port is None else port


def _topic(name: str, parts: SplitResult) -> str:
    topic = parts.path[1:]
    if not topic or parts.query or any(char in topic for char in "+#\0") or len(topic.encode()) > 65535:
        raise ConfigError("MQTT sink URL needs a topic path without wildcards or query", sink=name)
    return topic


def _no_tls_options(name: str, scheme: str, ca_file: str | None, cert_file: str | None) -> None:
    if ca_file or cert_file:
        raise ConfigError(f"TLS options do not apply to a {scheme}:// sink", sink=name)
