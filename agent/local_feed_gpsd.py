"""The local feed in gpsd's JSON protocol (adapter), for clients that talk to gpsd (``gpspipe -w``, ``cgps``).

``[local_feed] gpsd_json = "127.0.0.1:2947"`` serves the same filtered epochs as the pty, on loopback only, as
gpsd documents its protocol (gpsd_json(5)): on connect a ``VERSION`` object; requests ``?WATCH={...};``
(answered by ``DEVICES`` and ``WATCH``), ``?WATCH;``, ``?VERSION;``, ``?DEVICES;``, ``?POLL;``; while a client
watches with ``"enable":true`` and ``"json":true``, one ``TPV`` per epoch and, only when the purpose allows
satellites or HDOP, a ``SKY`` holding just those (``uSat``, ``hdop``), never a satellite list: azimuths and
elevations of the satellites in view say where the receiver is. Anything else gets an ``ERROR`` object.

The message builders are pure functions; :class:`GpsdJsonServer` is one thread and a selector. Each client has
its own bounded buffer (oldest messages dropped and counted); a client whose requests grow past
``MAX_REQUEST_BYTES`` without a ``;`` is disconnected. Before every write the feed is asked whether anything may
flow; when not, every buffer and the last fix (for ``?POLL;``) are thrown away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.bounded_buffer import DropOldestBuffer
from agent.errors import TransportError
from agent.nmea.writer import FeedEpoch

log = logging.getLogger(__name__)

RELEASE = "3.22"  # the gpsd release whose protocol this speaks
PROTO_MAJOR, PROTO_MINOR = 3, 14
MAX_REQUEST_BYTES = 4096
MAX_CLIENTS = 32
IDLE_WAIT_S = 1.0
KMH_PER_MS = 3.6


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("ascii") + b"\r\n"


def _iso(epoch: FeedEpoch) -> str:
    return epoch.time.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def version_message() -> bytes:
    return _line({"class": "VERSION", "release": RELEASE, "rev": RELEASE, "proto_major": PROTO_MAJOR,
                  "proto_minor": PROTO_MINOR})


def devices_message(device: str) -> bytes:
    return _line({"class": "DEVICES", "devices": [{"class": "DEVICE", "path": device, "driver": "NMEA0183",
                                                   "activated": "", "flags": 1, "native": 0}]})


def watch_message(enable: bool, json_on: bool) -> bytes:
    return _line({"class": "WATCH", "enable": enable, "json": json_on, "nmea": False, "raw": 0,
                  "scaled": False, "timing": False, "split24": False, "pps": False})


def error_message(text: str) -> bytes:
    return _line({"class": "ERROR", "message": text})


def tpv(epoch: FeedEpoch, device: str) -> dict[str, Any]:
    """The TPV object: mode 3 with an allowed altitude, else 2; only the allowed fields."""
    message: dict[str, Any] = {"class": "TPV", "device": device, "mode": 2 if epoch.altitude_m is None else 3,
                               "time": _iso(epoch), "lat": epoch.lat, "lon": epoch.lon}
    if epoch.altitude_m is not None:
        message["alt"] = epoch.altitude_m
    if epoch.speed_kmh is not None:
        message["speed"] = round(epoch.speed_kmh / KMH_PER_MS, 1)
    if epoch.course_deg is not None:
        message["track"] = epoch.course_deg
    return message


def sky(epoch: FeedEpoch, device: str) -> dict[str, Any] | None:
    """The SKY object, or None when the purpose allows neither satellites nor HDOP."""
    if epoch.satellites is None and epoch.hdop is None:
        return None
    message: dict[str, Any] = {"class": "SKY", "device": device, "time": _iso(epoch)}
    if epoch.hdop is not None:
        message["hdop"] = epoch.hdop
    if epoch.satellites is not None:
        message["uSat"] = epoch.satellites
    return message


def epoch_messages(epoch: FeedEpoch, device: str) -> bytes:
    found = [tpv(epoch, device), sky(epoch, device)]
    return b"".join(_line(message) for message in found if message is not None)


@dataclass
class _Client:
    sock: socket.socket
    buffer: DropOldestBuffer
    request: bytearray = field(default_factory=bytearray)
    watching: bool = False


class GpsdJsonServer:
    def __init__(self, address: tuple[str, int], *, device: str, buffer_bytes: int,
                 may_flow: Callable[[], bool]) -> None:
        self.address = address
        self.device = device
        self._buffer_bytes = buffer_bytes
        self._may_flow = may_flow
        self._lock = threading.Lock()
        self._clients: dict[int, _Client] = {}
        self._last: FeedEpoch | None = None
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped_messages = 0
        self.refused_clients = 0
        self._flowing = False

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        host, port = self.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(8)
        except OSError as exc:
            listener.close()
            raise TransportError(f"cannot listen for gpsd clients: {exc.strerror or exc}", port=port) from exc
        listener.setblocking(False)
        self._listener = listener
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="local-feed-gpsd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._lock:
            for client in list(self._clients.values()):
                self._close(client)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._selector.close()

    def send(self, epoch: FeedEpoch, nmea: bytes) -> None:
        data = epoch_messages(epoch, self.device)
        with self._lock:
            self._last = epoch
            for client in self._clients.values():
                if client.watching:
                    client.buffer.push(data)
        self._wake()

    def discard(self) -> None:
        with self._lock:
            self._last = None
            for client in self._clients.values():
                client.buffer.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            dropped = self.dropped_messages + sum(client.buffer.dropped_chunks for client in self._clients.values())
            return {"output": "gpsd-json", "clients": len(self._clients), "dropped_messages": dropped,
                    "refused_clients": self.refused_clients}

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"w")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._update_interest()
            for key, events in self._selector.select(IDLE_WAIT_S):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                else:
                    self._serve(key.fileobj, events)  # type: ignore[arg-type]
            self._discard_when_closed()

    def _discard_when_closed(self) -> None:
        """Once a second at least: when the feed may no longer flow, every held fix goes (the last one too)."""
        flowing = self._may_flow()
        if self._flowing and not flowing:
            self.discard()
        self._flowing = flowing

    def _update_interest(self) -> None:
        with self._lock:
            for client in self._clients.values():
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.buffer else 0)
                if self._selector.get_key(client.sock).events != wanted:
                    self._selector.modify(client.sock, wanted)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        with self._lock:
            if len(self._clients) >= MAX_CLIENTS:
                self.refused_clients += 1
                sock.close()
                return
            sock.setblocking(False)
            client = _Client(sock, DropOldestBuffer(self._buffer_bytes))
            client.buffer.push(version_message())
            self._clients[sock.fileno()] = client
            self._selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _serve(self, sock: socket.socket, events: int) -> None:
        with self._lock:
            client = self._clients.get(sock.fileno())
            if client is None:
                return
            if events & selectors.EVENT_READ and not self._read(client):
                self._close(client)
                return
            if events & selectors.EVENT_WRITE:
                self._write(client)

    def _read(self, client: _Client) -> bool:
        try:
            data = client.sock.recv(4096)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        client.request += data
        while b";" in client.request:
            request, _, rest = bytes(client.request).partition(b";")
            client.request = bytearray(rest)
            self._answer(client, request.strip().decode("ascii", "replace"))
        return len(client.request) <= MAX_REQUEST_BYTES

    def _answer(self, client: _Client, request: str) -> None:
        if request == "?VERSION":
            client.buffer.push(version_message())
        elif request == "?DEVICES":
            client.buffer.push(devices_message(self.device))
        elif request == "?POLL":
            last = [] if self._last is None else [tpv(self._last, self.device)]
            skies = [] if self._last is None else [s for s in [sky(self._last, self.device)] if s is not None]
            client.buffer.push(_line({"class": "POLL", "time": "" if self._last is None else _iso(self._last),
                                      "active": 1, "tpv": last, "sky": skies}))
        elif request == "?WATCH" or request.startswith("?WATCH="):
            self._watch(client, request.removeprefix("?WATCH").removeprefix("="))
        else:
            client.buffer.push(error_message("Unrecognized request"))

    def _watch(self, client: _Client, argument: str) -> None:
        if argument:
            try:
                options = json.loads(argument)
            except ValueError:
                client.buffer.push(error_message("Invalid WATCH: not JSON"))
                return
            if not isinstance(options, dict):
                client.buffer.push(error_message("Invalid WATCH: not an object"))
                return
            enable = bool(options.get("enable", True))
            json_on = bool(options.get("json", enable))
            client.watching = enable and json_on
            if enable:
                client.buffer.push(devices_message(self.device))
        client.buffer.push(watch_message(client.watching, client.watching))

    def _write(self, client: _Client) -> None:
        if not client.buffer:
            return
        if client.watching and not self._may_flow():
            # A watching client's buffer may hold fixes: all of it goes (fail closed), answers included.
            self._last = None
            client.buffer.clear()
            return
        try:
            written = client.sock.send(client.buffer.pending())
        except BlockingIOError:
            return
        except OSError:
            self._close(client)
            return
        client.buffer.consume(written)

    def _close(self, client: _Client) -> None:
        self.dropped_messages += client.buffer.dropped_chunks
        self._clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(client.sock)
        client.sock.close()
