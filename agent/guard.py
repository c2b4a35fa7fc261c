"""Host side of the on-module privacy guard (``firmware_shims/``): the wire codec and a small client.

QuecPython modules can run a guard at boot that keeps GNSS off while the user's switch is off, before the host
agent is up. The host learns whether a module has it (``version()``) and keeps both switches in step
(``set_switch()`` writes the module's persisted switch).

Usage (the daemon calls exactly these)::

    client = GuardClient("/dev/ttyUSB3", timeout_s=2.0)   # any pyserial URL; opened on first use
    client.version()          # "1.0.0", or None when the module has no guard (no or garbage answer in time)
    client.status()           # {"on": False, "gnss": 0, "persisted": True, "repairs": 1, ...}
    client.set_switch(False)  # the status once the module has the switch on flash
    client.close()            # also a context manager

Wire protocol, version 1 (pinned by the golden vectors in ``tests/data/guard/``): one ASCII line per message::

    request   PG <seq> VER | PG <seq> STATUS | PG <seq> SET ON | PG <seq> SET OFF        (ends with LF)
    reply     PG <seq> VER <protocol> <guard version>
              PG <seq> ST <lower-case hex of a CBOR map>                                  (ends with CR LF)
              PG <seq> ERR <reason>      reason: bad-line unknown-verb bad-argument too-long persist-failed

``seq`` is 1..999999, echoed by the guard; replies with another ``seq`` (stale, after a timeout) are ignored.
The status map (deterministic CBOR, text keys) holds ``on`` (bool: GNSS allowed), ``gnss`` (``quecgnss``
state: 0 off, 1 updating, 2 positioning; null when unreadable), ``persisted`` (bool: the switch on flash
equals ``on``), ``source`` (where the switch came from at boot: ``primary``, ``backup`` or ``none``),
``repairs`` (times the guard found GNSS on while off and stopped it), ``error`` (text or null), ``model``,
``sim`` (SIM status code), ``ticks`` and ``proto``. It never holds identifiers or positions.

Errors: :class:`~agent.errors.PortUnavailable` when the port cannot be used (from :mod:`agent.transport`),
:class:`~agent.errors.GuardError` when a guard answers badly, refuses, or stops answering; bad arguments are
:class:`~agent.errors.UsageError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from agent import cbor_codec
from agent.errors import GuardError, PortUnavailable, UsageError
from agent.model import Clock, SystemClock
from agent.transport import Port, open_port

PROTOCOL = 1
MAX_REPLY_LINE = 1024  # a status reply is about 250 bytes; anything far longer is not from a guard
MAX_SEQ = 999_999
VERBS = ("VER", "STATUS", "SET")
REPLY_KINDS = {"VER": 2, "ST": 1, "ERR": 1}  # kind -> number of fields after it
STATUS_VALUE_TYPES = (bool, int, str, type(None))
REQUIRED_STATUS_KEYS: dict[str, type] = {"on": bool, "persisted": bool, "proto": int}


# --- codec (pure) -------------------------------------------------------------------------------------------

def encode_request(seq: int, verb: str, argument: str | None = None) -> bytes:
    """One request line. Raises UsageError for a ``seq`` or verb the protocol does not have."""
    if not 1 <= seq <= MAX_SEQ:
        raise UsageError("guard request sequence number out of range", seq=seq)
    if verb not in VERBS:
        raise UsageError("unknown guard request", verb=verb)
    if (verb == "SET") != (argument is not None) or argument not in (None, "ON", "OFF"):
        raise UsageError("bad argument for guard request", verb=verb)
    words = ["PG", str(seq), verb] + ([argument] if argument else [])
    return (" ".join(words) + "\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply line: ``kind`` is ``VER``, ``ST`` or ``ERR``; ``fields`` are the words after it."""

    seq: int
    kind: str
    fields: tuple[str, ...]


def parse_reply(line: bytes) -> Reply:
    """Parse one reply line (without its terminator). Raises GuardError for anything that is not one."""
    if not line or any(byte < 0x20 or byte > 0x7E for byte in line):
        raise GuardError("guard reply is not a printable ASCII line")
    words = line.decode("ascii").split(" ")
    if len(words) < 3 or words[0] != "PG" or not _is_seq(words[1]):
        raise GuardError("line is not a guard reply")
    kind, fields = words[2], tuple(words[3:])
    if REPLY_KINDS.get(kind) != len(fields) or not all(fields):
        raise GuardError("malformed guard reply", kind=kind[:8])
    return Reply(seq=int(words[1]), kind=kind, fields=fields)


def _is_seq(text: str) -> bool:
    return 1 <= len(text) <= 6 and text.isascii() and text.isdigit()


class ReplyReader:
    """Bytes in (any chunking), replies out. Lines that are not replies are counted and skipped, never raised:
    a port may carry noise, and a module without a guard answers with garbage.
    """

    def __init__(self, max_line: int = MAX_REPLY_LINE) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._skipping = False
        self.skipped_lines = 0

    def feed(self, data: bytes) -> None:
        self._buffer.extend(data)

    def replies(self) -> Iterator[Reply]:
        """Every complete reply in the buffer, in order."""
        while (line := self._maybe_extract_line()) is not None:
            try:
                yield parse_reply(line)
            except GuardError:
                self.skipped_lines += 1

    def _maybe_extract_line(self) -> bytes | None:
        while True:
            end = _first_terminator(self._buffer)
            if end < 0:
                if len(self._buffer) > self._max_line:
                    self._buffer.clear()
                    self._skipping = True
                return None
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping or len(line) > self._max_line:
                self._skipping = False
                self.skipped_lines += 1
                continue
            if line:
                return line


def _first_terminator(data: bytearray) -> int:
    found = [index for index in (data.find(b"\r"), data.find(b"\n")) if index >= 0]
    return min(found) if found else -1


def decode_status(hex_text: str) -> dict[str, Any]:
    """The status map from the hex field of an ``ST`` reply. Raises GuardError if it is not a valid status."""
    try:
        raw = bytes.fromhex(hex_text)
    except ValueError as exc:
        raise GuardError("guard status is not hex") from exc
    try:
        value, end = cbor_codec.decode(raw)
    except ValueError as exc:
        raise GuardError("guard status is not valid CBOR") from exc
    if end != len(raw):
        raise GuardError("guard status has trailing bytes")
    return _checked_status(value)


def _checked_status(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise GuardError("guard status is not a map with text keys")
    if not all(isinstance(item, STATUS_VALUE_TYPES) for item in value.values()):
        raise GuardError("guard status holds a value of an unexpected type")
    for key, expected in REQUIRED_STATUS_KEYS.items():
        item = value.get(key)
        if not isinstance(item, expected) or (expected is int and isinstance(item, bool)):
            raise GuardError("guard status lacks a required field", field=key)
    return dict(value)


# --- client (adapter) ---------------------------------------------------------------------------------------

class GuardClient:
    """Talks to a module's guard over one port. One request at a time; not thread-safe.

    Args:
        url: a pyserial URL (``/dev/ttyUSB3``, ``socket://...``, a pty path).
        timeout_s: how long to wait for each reply (a ``SET`` includes the module's flash write).
    """

    def __init__(self, url: str, timeout_s: float, *, clock: Clock | None = None) -> None:
        if not timeout_s > 0:
            raise UsageError("guard timeout must be positive", timeout_s=timeout_s)
        self.url = url
        self.timeout_s = timeout_s
        self._clock = clock or SystemClock()
        self._port: Port | None = None
        self._reader = ReplyReader()
        self._seqs = itertools.cycle(range(1, MAX_SEQ + 1))

    def version(self) -> str | None:
        """The guard's version, or None when nothing on the port answers like a guard within the timeout."""
        reply = self._exchange("VER")
        if reply is None or reply.kind != "VER":
            return None
        if reply.fields[0] != str(PROTOCOL):
            raise GuardError("guard speaks another protocol version", protocol=reply.fields[0][:8])
        return reply.fields[1]

    def status(self) -> dict[str, Any]:
        return self._status_reply(self._exchange("STATUS"))

    def set_switch(self, on: bool) -> dict[str, Any]:
        """Write the module's switch; returns the status once it is persisted there."""
        status = self._status_reply(self._exchange("SET", "ON" if on else "OFF"))
        if status["on"] is not on or status["persisted"] is not True:
            raise GuardError("guard did not apply the switch")
        return status

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def __enter__(self) -> GuardClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _status_reply(self, reply: Reply | None) -> dict[str, Any]:
        if reply is None:
            raise GuardError("guard did not answer", port=self.url, timeout_s=self.timeout_s)
        if reply.kind == "ERR":
            raise GuardError("guard refused the request", reason=reply.fields[0][:32])
        if reply.kind != "ST":
            raise GuardError("guard sent an unexpected reply", kind=reply.kind)
        return decode_status(reply.fields[0])

    def _exchange(self, verb: str, argument: str | None = None) -> Reply | None:
        """Send one request; the reply carrying its ``seq``, or None when none came in time."""
        seq = next(self._seqs)
        port = self._open()
        try:
            port.write(encode_request(seq, verb, argument))
            deadline = self._clock.monotonic() + self.timeout_s
            while self._clock.monotonic() < deadline:
                self._reader.feed(port.read(4096))
                for reply in self._reader.replies():
                    if reply.seq == seq:
                        return reply
        except PortUnavailable:
            self.close()  # the next call reopens: the module may have rebooted and re-enumerated
            raise
        return None

    def _open(self) -> Port:
        if self._port is None:
            self._port = open_port(self.url, read_timeout_s=min(0.05, self.timeout_s))
        return self._port
