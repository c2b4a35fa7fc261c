"""``mqtt://`` and ``mqtts://host:port/topic`` through paho-mqtt 2.x: QoS 1, persistent session, TLS.

Only standard MQTT 3.1.1 is used (CONNECT with clean session off, PUBLISH QoS 1, PUBACK), so that any standard
broker or broker cluster works: no broker-specific extension is relied on.

``send`` returns only after the broker's PUBACK for that message; a missing PUBACK within the timeout, a refused
or lost connection is :class:`SinkUnavailable` and the connection is dropped, to be made again on the next send.
The message stays in the spool meanwhile, so a publish whose PUBACK was lost is sent again (at-least-once; the
receiver de-duplicates on the message id).

paho-mqtt is the ``mqtt`` extra; it is imported here only, when an MQTT sink is opened.
"""

from __future__ import annotations

import re
import secrets
import ssl
import threading
import time
from typing import Any

from agent.errors import ConfigError, SinkUnavailable
from agent.sinks.tls import tls_context
from agent.spool import Message

KEEPALIVE_S = 60
_CLIENT_ID = re.compile(r"[0-9A-Za-z_.-]{1,64}")


def _load_paho() -> Any:
    try:
        import paho.mqtt.client as paho
    except ImportError as exc:
        raise ConfigError("an mqtt:// or mqtts:// sink needs paho-mqtt 2.x: install the 'mqtt' extra "
                          "(pip install 'quectel-privacy-agent[mqtt]')") from exc
    if not hasattr(paho, "CallbackAPIVersion"):
        raise ConfigError("an mqtt:// or mqtts:// sink needs paho-mqtt 2.0 or newer")
    return paho


def random_client_id() -> str:
    """A fresh random client id, for callers to persist once and reuse (never derive it from the device)."""
    return "pa-" + secrets.token_hex(8)


class MqttSink:
    """Publishes each message's body to one topic with QoS 1 and waits for its PUBACK."""

    def __init__(self, name: str, host: str, port: int, topic: str, *, tls: bool, ca_file: str | None,
                 cert_file: str | None, key_file: str | None, client_id: str | None, timeout_s: float) -> None:
        self._paho = _load_paho()
        if client_id is not None and not _CLIENT_ID.fullmatch(client_id):
            raise ConfigError("MQTT client id must be 1-64 letters, digits, '_', '.' or '-'", sink=name)
        self.name = name
        self._host, self._port, self._topic = host, port, topic
        self._tls_context = tls_context(name, ca_file, cert_file, key_file) if tls else None
        self._tls_sockets: list[ssl.SSLSocket] = []
        if self._tls_context is not None:
            _track_sockets(self._tls_context, self._tls_sockets)
        self._client_id = client_id or random_client_id()
        self._timeout_s = timeout_s
        self._client: Any = None
        self._lost = threading.Event()
        self._mutex = threading.Lock()

    def send(self, message: Message) -> None:
        with self._mutex:
            client = self._connected_client()
            info = client.publish(self._topic, message.body, qos=1)
            if info.rc != self._paho.MQTT_ERR_SUCCESS:
                self._drop_connection()
                raise SinkUnavailable("the MQTT broker connection was lost before the publish", sink=self.name)
            if not self._wait_for_puback(info):
                self._drop_connection()
                raise SinkUnavailable("no PUBACK from the MQTT broker in time", sink=self.name)

    def close(self) -> None:
        with self._mutex:
            self._drop_connection()

    def _wait_for_puback(self, info: Any) -> bool:
        deadline = time.monotonic() + self._timeout_s
        while not info.is_published():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._lost.is_set():
                return False
            try:
                info.wait_for_publish(min(remaining, 0.5))
            except (RuntimeError, ValueError):
                return False
        return True

    def _connected_client(self) -> Any:
        if self._client is not None and not self._lost.is_set():
            return self._client
        self._drop_connection()
        client = self._new_client()
        connected = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(_client: Any, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
            outcome["failure"] = reason_code.is_failure
            connected.set()

        def on_disconnect(*_args: Any) -> None:
            self._lost.set()
            connected.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        self._lost.clear()
        try:
            client.connect(self._host, self._port, keepalive=KEEPALIVE_S)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._close_failed_tls_sockets()
            raise SinkUnavailable(f"cannot connect to the MQTT broker: {type(exc).__name__}",
                                  sink=self.name) from exc
        self._tls_sockets.clear()  # the connection's socket is paho's to close from now on
        client.loop_start()
        self._client = client
        if not connected.wait(self._timeout_s) or outcome.get("failure", True) or self._lost.is_set():
            self._drop_connection()
            raise SinkUnavailable("the MQTT broker refused the connection or did not answer in time",
                                  sink=self.name)
        return client

    def _new_client(self) -> Any:
        paho = self._paho
        # Clean session off: the broker keeps the session (and QoS 1 state) under this client id.
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=False,
                             protocol=paho.MQTTv311, reconnect_on_failure=False)
        client.connect_timeout = self._timeout_s  # TCP connect and TLS handshake
        if self._tls_context is not None:
            client.tls_set_context(self._tls_context)
        return client

    def _close_failed_tls_sockets(self) -> None:
        """paho-mqtt 2.x does not close a TLS socket whose handshake failed (the certificate did not verify):
        close it here, rather than leave it to the garbage collector."""
        while self._tls_sockets:
            self._tls_sockets.pop().close()

    def _drop_connection(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.disconnect()
        except (OSError, ssl.SSLError, ValueError):
            pass  # already gone: dropping it is all that is asked
        client.loop_stop()


def _track_sockets(context: ssl.SSLContext, opened: list[ssl.SSLSocket]) -> None:
    """Record every socket ``context`` wraps in ``opened``, so that one a failed connect left open is closed."""
    wrap = context.wrap_socket

    def wrap_and_record(*args: Any, **kwargs: Any) -> ssl.SSLSocket:
        wrapped = wrap(*args, **kwargs)
        opened.append(wrapped)
        return wrapped

    setattr(context, "wrap_socket", wrap_and_record)  # noqa: B010 - an instance override, not a constant name
