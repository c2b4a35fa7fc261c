"""Fuzzing what brokers and HTTPS servers answer (issue 15): a one-connection loopback server answers whatever
hypothesis draws, and a sink from ``open_sink`` sends one message to it. Only SinkRejected or SinkUnavailable may
come out of ``send`` (or nothing: a well-formed acceptance), the send ends by itself within its timeout (plus the
connect's), and the sink's threads and connections are gone once it is closed (hil_tests.leaks checks that)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import SinkError
from agent.sinks import Sink, open_sink
from agent.spool import Message
from hil_tests.brokers import Pki, make_pki

TIMEOUT_S = 0.5  # the sink's timeout: small, so that "no answer" examples are quick
SERVER_LIMIT_S = 5.0  # the server gives up on its own after this, whatever the client does
SEND_LIMIT_S = 4 * TIMEOUT_S + 5.0  # connect + answer timeouts, and a generous margin for a loaded machine
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

MESSAGE = Message(id="m1", sink="fuzz", purpose="fleet", body=b'{"id":"m1","lat":31.2}', created_ms=1)

# What the server does on its connection, given the socket and what the client sent so far.
Reply = Callable[[socket.socket], None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class OneShotServer:
    """Listens on a free loopback port, takes one connection, runs ``reply`` on it, closes, and ends."""

    reply: Reply
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(SERVER_LIMIT_S)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="fuzz-reply-server", daemon=True)

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return  # the client never came (it refused to open or gave up): nothing to answer
        finally:
            self.listener.close()
        try:
            connection.settimeout(SERVER_LIMIT_S)
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            self.reply(connection)
        except (OSError, ValueError):
            pass  # the client hung up or the handshake failed: the server's side of it is not under test
        finally:
            connection.close()


@contextlib.contextmanager
def serving(reply: Reply, tls: ssl.SSLContext | None = None) -> Iterator[OneShotServer]:
    server = OneShotServer(reply, tls)
    server.thread.start()
    try:
        yield server
    finally:
        server.thread.join(SERVER_LIMIT_S + 1)
        assert not server.thread.is_alive()


def send_once(sink: Sink) -> BaseException | None:
    """``sink.send(MESSAGE)`` in a thread, so that a send that never ends fails the test instead of hanging it;
    what it raised (None: it was delivered)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            sink.send(MESSAGE)
        except BaseException as exc:  # whatever it is, the test names it
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, name="fuzz-send")
    thread.start()
    thread.join(SEND_LIMIT_S)
    assert not thread.is_alive(), "send did not end by itself"
    sink.close()
    return outcome[0]


def assert_only_sink_errors(outcome: BaseException | None) -> None:
    if outcome is not None and not isinstance(outcome, SinkError):
        raise AssertionError(f"send raised {type(outcome).__name__}, not a SinkError") from outcome


# -- HTTPS ---------------------------------------------------------------------------------------------------

def read_http_request(connection: socket.socket) -> None:
    """The client's whole request (headers, then Content-Length bytes), so that the answer comes after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return
        body += chunk


def wait_for_hangup(connection: socket.socket) -> None:
    """Say nothing until the client hangs up (or the server's own limit passes)."""
    while connection.recv(65536):
        pass


header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1,
                      max_size=20)
headers = st.one_of(
    st.integers(0, 10**20).map(lambda n: f"Content-Length: {n}"),
    st.sampled_from(("Content-Length: -1", "Content-Length: x", "Content-Length: 5, 7", "Transfer-Encoding: chunked",
                     "Transfer-Encoding: gzip, chunked", "Connection: close", "Location: https://elsewhere/")),
    st.tuples(header_text, st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)).map(
        lambda pair: f"{pair[0]}: {pair[1]}"),
)
bodies = st.one_of(
    st.binary(max_size=512),
    st.sampled_from((b"0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n", b"ffffffffffffffff\r\nabc",
                     b"5\r\nab", b"-1\r\n", b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n")),
    st.integers(65536, 200_000).map(lambda n: b"x" * n),  # more than the sink reads
)


@st.composite
def http_answers(draw: st.DrawFn) -> tuple[str, bytes]:
    """(what, bytes): random bytes, or a status line with any code, headers and body; "silent" and "close"
    answer nothing (the client must time out) or hang up at once."""
    kind = draw(st.sampled_from(("bytes", "status", "status", "status", "silent", "close")))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=1024))
    if kind in ("silent", "close"):
        return kind, b""
    version = draw(st.sampled_from(("HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1", "ICY")))
    code = draw(st.one_of(st.integers(100, 599), st.integers(0, 1200), st.sampled_from((200, 204, 301, 408, 429))))
    reason = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20))
    lines = [f"{version} {code} {reason}", *draw(st.lists(headers, max_size=6))]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    cut = draw(st.none() | st.integers(0, len(head)))  # an early close in the middle of the answer
    data = head + draw(bodies)
    return kind, data if cut is None else data[:cut]


def http_reply(kind: str, data: bytes) -> Reply:
    def reply(connection: socket.socket) -> None:
        read_http_request(connection)
        if kind == "silent":
            wait_for_hangup(connection)
        elif kind != "close":
            connection.sendall(data)
    return reply


@FUZZ
@given(answer=http_answers())
def test_https_sink_takes_any_answer(pki: Pki, answer: tuple[str, bytes]) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki.server_cert, pki.server_key)
    with serving(http_reply(*answer), tls) as server:
        sink = open_sink("fuzz", f"https://127.0.0.1:{server.port}/up", ca_file=str(pki.ca), timeout_s=TIMEOUT_S)
        assert_only_sink_errors(send_once(sink))


# -- MQTT ----------------------------------------------------------------------------------------------------

def read_mqtt_packet(connection: socket.socket) -> bytes:
    """One whole MQTT packet (fixed header, remaining length, rest); b"" if the client hung up first."""
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = connection.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the client hung up")
            data += chunk
        return data

    try:
        packet = exactly(1)
        length, shift = 0, 0
        while True:
            byte = exactly(1)
            packet += byte
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        return packet + exactly(length)
    except ConnectionError:
        return b""


def publish_packet_id(packet: bytes) -> int:
    """The packet id of a QoS 1 PUBLISH (fixed header, topic, then the id)."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    index += 1
    topic_length = int.from_bytes(packet[index:index + 2], "big")
    index += 2 + topic_length
    return int.from_bytes(packet[index:index + 2], "big")


@st.composite
def mqtt_answers(draw: st.DrawFn) -> tuple[str, bytes, bytes]:
    """(what, instead of CONNACK, after PUBLISH): random bytes for the CONNACK, a CONNACK with any flags and
    return code, then random bytes, a PUBACK for another packet id, the right PUBACK, nothing, or a hang-up."""
    first = draw(st.sampled_from(("bytes", "connack", "connack", "connack", "silent", "close")))
    if first == "bytes":
        return first, draw(st.binary(max_size=64)), b""
    if first in ("silent", "close"):
        return first, b"", b""
    flags = draw(st.sampled_from((0, 1)) | st.integers(0, 255))
    code = draw(st.just(0) | st.integers(0, 255))
    connack = bytes([0x20, 0x02, flags, code])
    if draw(st.booleans()):
        connack = bytes([0x20, draw(st.integers(0, 5))]) + draw(st.binary(max_size=5))  # a malformed CONNACK
    second = draw(st.sampled_from(("bytes", "other-id", "puback", "silent", "close")))
    after = draw(st.binary(max_size=64)) if second == "bytes" else second.encode()
    return first, connack, after


def mqtt_reply(first: str, connack: bytes, after: bytes, other_id: int) -> Reply:
    def reply(connection: socket.socket) -> None:
        if not read_mqtt_packet(connection):  # CONNECT
            return
        if first == "silent":
            wait_for_hangup(connection)
            return
        if first == "close":
            return
        connection.sendall(connack)
        packet = read_mqtt_packet(connection)
        while packet and packet[0] >> 4 != 3:  # PINGREQ or the like, until the PUBLISH
            packet = read_mqtt_packet(connection)
        if not packet:
            return
        packet_id = publish_packet_id(packet)
        if after == b"silent":
            wait_for_hangup(connection)
        elif after == b"close":
            return
        elif after == b"other-id":
            wrong = other_id if other_id != packet_id else (packet_id % 65535) + 1
            connection.sendall(bytes([0x40, 0x02]) + wrong.to_bytes(2, "big"))
            wait_for_hangup(connection)
        elif after == b"puback":
            connection.sendall(bytes([0x40, 0x02]) + packet_id.to_bytes(2, "big"))
            wait_for_hangup(connection)
        else:
            connection.sendall(after)
            wait_for_hangup(connection)
    return reply


@FUZZ
@given(answer=mqtt_answers(), other_id=st.integers(1, 65535))
def test_mqtt_sink_takes_any_answer(answer: tuple[str, bytes, bytes], other_id: int) -> None:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")
    with serving(mqtt_reply(*answer, other_id)) as server:
        sink = open_sink("fuzz", f"mqtt://127.0.0.1:{server.port}/fleet/up", timeout_s=TIMEOUT_S)
        outcome = send_once(sink)
    assert_only_sink_errors(outcome)
    if answer[0] != "connack" or answer[2] != b"puback" or answer[1][3:4] != b"\x00" or len(answer[1]) != 4:
        assert outcome is not None  # nothing but a good CONNACK and the PUBACK for the message delivers it


def test_the_servers_accept_a_good_exchange(pki: Pki) -> None:
    """The fuzzing's servers speak both protocols well enough that a well-formed acceptance delivers."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki.server_cert, pki.server_key)
    good = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    with serving(http_reply("status", good), tls) as server:
        sink = open_sink("fuzz", f"https://127.0.0.1:{server.port}/up", ca_file=str(pki.ca), timeout_s=TIMEOUT_S)
        assert send_once(sink) is None
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is the 'mqtt' extra; scripts/test installs it")
    with serving(mqtt_reply("connack", bytes([0x20, 0x02, 0, 0]), b"puback", 1)) as server:
        sink = open_sink("fuzz", f"mqtt://127.0.0.1:{server.port}/fleet/up", timeout_s=TIMEOUT_S)
        assert send_once(sink) is None
