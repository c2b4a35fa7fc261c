"""Servers for the sink tests and benchmarks: a private PKI, a real mosquitto on a loopback port, a QoS 1 counter.

Everything listens on 127.0.0.1 only, on a free port, and stops by itself (``stop`` terminates, then kills after a
timeout); the broker's persistence lives in a temporary directory so that a restart keeps the sessions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MOSQUITTO = "/usr/sbin/mosquitto"


def mosquitto_path() -> str | None:
    """The broker binary, or None where it is not installed (scripts/test installs Debian's package)."""
    if os.access(MOSQUITTO, os.X_OK):
        return MOSQUITTO
    return shutil.which("mosquitto")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# --- PKI ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA: must be refused
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates (one from a foreign CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("Test CA")
    other_key, other_cert = _make_ca("Other CA")
    paths = {name: directory / f"{name}.pem" for name in
             ("ca", "server_cert", "server_key", "client_cert", "client_key", "stranger_cert", "stranger_key")}
    _write_cert(paths["ca"], ca_cert)
    for prefix, issuer_key, issuer, server in (("server", ca_key, ca_cert, True),
                                               ("client", ca_key, ca_cert, False),
                                               ("stranger", other_key, other_cert, False)):
        key, cert = _make_leaf(issuer_key, issuer, server=server)
        _write_cert(paths[f"{prefix}_cert"], cert)
        paths[f"{prefix}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    return Pki(**paths)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
                        .public_key(key.public_key()).serial_number(x509.random_serial_number()))
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
        critical=True)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return key, builder.sign(key, hashes.SHA256())


def _make_leaf(issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate, *,
               server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(x509.CertificateBuilder().subject_name(_name("localhost" if server else "test-client"))
                        .issuer_name(issuer.subject).public_key(key.public_key())
                        .serial_number(x509.random_serial_number()))
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                    critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# --- mosquitto ----------------------------------------------------------------------------------------------

class Mosquitto:
    """A real broker on 127.0.0.1:``port``, persistence in ``directory``; ``restart`` keeps the port and sessions."""

    def __init__(self, directory: Path, *, pki: Pki | None = None, require_certificate: bool = False,
                 allow_anonymous: bool = True) -> None:
        binary = mosquitto_path()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.pki = pki
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        self.config = directory / "mosquitto.conf"
        self.config.write_text(self._config_text(require_certificate, allow_anonymous))

    def _config_text(self, require_certificate: bool, allow_anonymous: bool) -> str:
        lines = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.directory / 'data'}/",
            "autosave_interval 0",  # the database is saved when the broker stops
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_inflight_messages 20",
            "max_queued_messages 100000",
        ]
        if os.getuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot read the temporary files
        if self.pki is not None:
            lines += [f"cafile {self.pki.ca}", f"certfile {self.pki.server_cert}", f"keyfile {self.pki.server_key}",
                      f"require_certificate {'true' if require_certificate else 'false'}"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        log = open(self.directory / "mosquitto.log", "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        finally:
            log.close()
        try:
            wait_for_port(self.port)
        except OSError:
            self.stop()
            raise RuntimeError("mosquitto did not start: " + self.log_text()) from None

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: mosquitto saves its persistence database, then exits
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextlib.contextmanager
def running_mosquitto(directory: Path, **options: Any) -> Iterator[Mosquitto]:
    broker = Mosquitto(directory, **options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Subscriber:
    """A QoS 1 subscriber with a persistent session that counts the payloads it receives."""

    def __init__(self, port: int, topic: str, *, client_id: str = "test-subscriber",
                 tls: Any = None) -> None:
        import paho.mqtt.client as paho

        self.counts: Counter[bytes] = Counter()
        self._changed = threading.Condition()
        self._port, self._topic = port, topic
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                   protocol=paho.MQTTv311)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._subscribed = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and return once the broker acknowledged the subscription."""
        self._client.connect("127.0.0.1", self._port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise RuntimeError("the test subscriber did not get its SUBACK")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
        if not reason_code.is_failure:
            client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._changed:
            self.counts[bytes(message.payload)] += 1
            self._changed.notify_all()

    def wait_for(self, payloads: set[bytes], timeout_s: float = 20.0) -> bool:
        """True once every payload in ``payloads`` arrived at least once."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not payloads <= set(self.counts):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True
