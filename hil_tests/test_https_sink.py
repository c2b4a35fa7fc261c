"""The HTTPS sink against a local TLS server (http.server + ssl, a thread, loopback, its own CA)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.errors import SinkRejected, SinkUnavailable
from agent.model import SystemClock
from agent.sinks import Backoff, open_sink
from agent.spool import Message, Spool
from agent.uploader import Uploader
from hil_tests.brokers import Pki, make_pki
from hil_tests.conftest import wait_until


@dataclass
class Script:
    """What the server answers, in order (the last status repeats), and what it received."""

    statuses: list[int] = field(default_factory=lambda: [200])
    extra_headers: dict[str, str] = field(default_factory=dict)
    answer_bytes: int = 0
    silent: bool = False
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:
        script = self.server.script
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with script.lock:
            script.requests.append((self.path, dict(self.headers.items()), body))
        if script.silent:
            script.release.wait(10)  # never answer in time: the client must give up by itself
            return
        self.send_response(script.next_status())
        for name, value in script.extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(script.answer_bytes))
        self.end_headers()
        chunk = b"x" * 65536
        remaining = script.answer_bytes
        try:
            while remaining > 0:
                self.wfile.write(chunk[:remaining])
                remaining -= len(chunk)
        except OSError:
            pass  # the client stopped reading, as it should

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests look at ``script.requests``."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script


@dataclass
class RunningServer:
    url: str
    script: Script


def serve(pki: Pki, *, require_client_cert: bool = False) -> tuple[Server, threading.Thread]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    if require_client_cert:
        context.load_verify_locations(str(pki.ca))
        context.verify_mode = ssl.CERT_REQUIRED
    server = Server(("127.0.0.1", 0), Handler)
    server.script = Script()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=[False, True], ids=["server-auth", "client-cert"])
def https(request: pytest.FixtureRequest, pki: Pki) -> Iterator[RunningServer]:
    server, thread = serve(pki, require_client_cert=request.param)
    try:
        yield RunningServer(f"https://127.0.0.1:{server.server_address[1]}/v1/uploads", server.script)
    finally:
        server.script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def message(number: int) -> Message:
    return Message(id=f"m{number}", sink="collector", purpose="fleet", body=b'{"id":"m%d","lat":31.2}' % number,
                   created_ms=number)


def test_2xx_delivers_a_json_post_with_the_idempotency_key(https: RunningServer, pki: Pki) -> None:
    sink = open_sink("collector", https.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    https.script.statuses = [201]
    sink.send(message(1))
    sink.close()
    [(path, headers, body)] = https.script.requests
    assert path == "/v1/uploads"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "m1"
    assert json.loads(body) == {"id": "m1", "lat": 31.2}


@pytest.mark.parametrize(("status", "error"), [(503, SinkUnavailable), (429, SinkUnavailable),
                                               (408, SinkUnavailable), (400, SinkRejected),
                                               (403, SinkRejected)])
def test_status_decides_between_retry_and_rejection(https: RunningServer, pki: Pki, status: int,
                                                    error: type[Exception]) -> None:
    sink = open_sink("collector", https.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    https.script.statuses = [status]
    with pytest.raises(error, match=str(status)):
        sink.send(message(1))


def test_redirects_are_not_followed(https: RunningServer, pki: Pki) -> None:
    sink = open_sink("collector", https.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    https.script.statuses = [307]
    https.script.extra_headers = {"Location": https.url.replace("/v1/uploads", "/elsewhere")}
    with pytest.raises(SinkUnavailable, match="307"):
        sink.send(message(1))
    assert [path for path, _, _ in https.script.requests] == ["/v1/uploads"]


def test_a_huge_answer_is_read_only_up_to_the_bound(https: RunningServer, pki: Pki) -> None:
    sink = open_sink("collector", https.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    https.script.answer_bytes = 50 * 1024 * 1024
    sink.send(message(1))  # returns after 64 KiB, not after 50 MB


def test_a_silent_server_times_out(https: RunningServer, pki: Pki) -> None:
    sink = open_sink("collector", https.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key), timeout_s=0.5)
    https.script.silent = True
    with pytest.raises(SinkUnavailable, match="TimeoutError"):
        sink.send(message(1))


def test_an_untrusted_server_is_refused(https: RunningServer, pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    sink = open_sink("collector", https.url, ca_file=str(other.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    with pytest.raises(SinkUnavailable, match="does not verify"):
        sink.send(message(1))
    assert https.script.requests == []


def test_a_client_certificate_is_required_when_the_server_says_so(pki: Pki) -> None:
    server, thread = serve(pki, require_client_cert=True)
    url = f"https://127.0.0.1:{server.server_address[1]}/v1/uploads"
    try:
        for cert, key in ((None, None), (pki.stranger_cert, pki.stranger_key)):
            sink = open_sink("collector", url, ca_file=str(pki.ca), cert_file=str(cert) if cert else None,
                             key_file=str(key) if key else None)
            with pytest.raises(SinkUnavailable):
                sink.send(message(1))
        assert server.script.requests == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_nobody_listening_is_unavailable(pki: Pki) -> None:
    server, thread = serve(pki)
    url = f"https://127.0.0.1:{server.server_address[1]}/x"
    server.shutdown()
    server.server_close()
    thread.join(10)
    with pytest.raises(SinkUnavailable, match="POST failed"):
        open_sink("collector", url, ca_file=str(pki.ca)).send(message(1))


def run_uploader(tmp_path: Path, https: RunningServer, pki: Pki, numbers: range | list[int],
                 until: Callable[[Spool, list[str], list[tuple[str, str]]], bool],
                 ) -> tuple[list[str], list[tuple[str, str]], Spool]:
    """Queue ``numbers``, run an uploader until ``until(spool, delivered, dead)``, stop it; the spool stays open."""
    delivered: list[str] = []
    dead: list[tuple[str, str]] = []
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    spool = Spool.open(state)
    for number in numbers:
        spool.put(message(number))
    sink = open_sink("collector", https.url, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                     key_file=str(pki.client_key))
    uploader = Uploader(spool, {"collector": sink}, clock=SystemClock(), may_send=lambda _m: True,
                        on_delivered=lambda m: delivered.append(m.id),
                        on_dead=lambda m, reason: dead.append((m.id, reason)),
                        backoff=Backoff(base_s=0.02, cap_s=0.1), poll_s=0.05)
    uploader.start()
    try:
        assert wait_until(lambda: until(spool, delivered, dead), timeout_s=20)
    finally:
        assert uploader.stop(10)
        sink.close()
    return delivered, dead, spool


def test_5xx_is_retried_then_delivered(tmp_path: Path, https: RunningServer, pki: Pki) -> None:
    https.script.statuses = [503, 502, 500, 200]
    delivered, dead, spool = run_uploader(tmp_path, https, pki, range(2),
                                          lambda spool, *_: spool.pending_count() == 0)
    spool.close()
    assert delivered == ["m0", "m1"] and dead == []
    keys = [headers["Idempotency-Key"] for _, headers, _ in https.script.requests]
    assert keys == ["m0", "m0", "m0", "m0", "m1"]  # the same message, in order, until it went through


def test_4xx_is_dead_lettered_and_never_retried(tmp_path: Path, https: RunningServer, pki: Pki) -> None:
    https.script.statuses = [422, 200]
    delivered, dead, spool = run_uploader(tmp_path, https, pki, range(2),
                                          lambda spool, *_: spool.pending_count() == 0)
    try:
        assert delivered == ["m1"]
        assert [message_id for message_id, _ in dead] == ["m0"] and "422" in dead[0][1]
        assert [(m.id, reason) for m, reason in spool.dead_letters()] == dead
    finally:
        spool.close()
    # open again and deliver one more: the dead letter stays dead and is not sent again
    before = len(https.script.requests)
    delivered, dead, spool = run_uploader(tmp_path, https, pki, [0, 7], lambda _s, done, _d: "m7" in done)
    spool.close()
    assert [headers["Idempotency-Key"] for _, headers, _ in https.script.requests[before:]] == ["m7"]
