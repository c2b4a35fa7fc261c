"""The spool's journal as bytes (pure): its messages, the framing of one entry, and the replay and compaction
of a whole journal. The file format is described in :mod:`agent.spool`."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cbor2

from agent import cbor_codec
from agent.errors import StoreError

JOURNAL_MAGIC = b"PASPOOLJ"
_LEAD = struct.Struct(">II")  # body length, crc32 of the body
_CRC = struct.Struct(">I")  # crc32 of the lead: a damaged length is damage, not a torn tail
ENTRY_HEADER_SIZE = _LEAD.size + _CRC.size
MAX_ID_CHARS = 256
MAX_REASON_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One outbound payload for one sink.

    ``id`` is stable and chosen by the caller: receivers de-duplicate on it (delivery is at-least-once).
    ``body`` is the serialized payload, one JSON object. Times are Unix epoch milliseconds.
    """

    id: str
    sink: str
    purpose: str
    body: bytes
    created_ms: int
    attempts: int = 0
    not_before_ms: int = 0


def check_message(message: Message) -> None:
    """Caller bugs are ValueError/TypeError (see agent.errors); nothing bad reaches the disk."""
    if not isinstance(message, Message):
        raise TypeError("put() takes a Message")
    if not message.id or len(message.id) > MAX_ID_CHARS or not message.id.isprintable():
        raise ValueError("message id must be 1-256 printable characters")
    if not message.sink or not message.purpose:
        raise ValueError("message sink and purpose must not be empty")
    if not isinstance(message.body, bytes):
        raise TypeError("message body must be bytes")
    for value in (message.created_ms, message.attempts, message.not_before_ms):
        if not isinstance(value, int) or value < 0:
            raise ValueError("message times and attempts must be non-negative integers")


# --- entries: encoding and framing (pure) -----------------------------------------------------------------

def put_entry(message: Message) -> list[Any]:
    return ["put", message.id, message.sink, message.purpose, message.body, message.created_ms, message.attempts,
            message.not_before_ms]


def frame(entry: list[Any]) -> bytes:
    """One entry as it is appended to the journal."""
    body = cbor2.dumps(entry)
    lead = _LEAD.pack(len(body), zlib.crc32(body))
    return lead + _CRC.pack(zlib.crc32(lead)) + body


def _read_entry(data: bytes, offset: int) -> tuple[list[Any], int]:
    """The entry at ``offset`` and the offset after it; ValueError naming what is wrong."""
    lead = data[offset:offset + _LEAD.size]
    (lead_crc,) = _CRC.unpack_from(data, offset + _LEAD.size)
    if zlib.crc32(lead) != lead_crc:
        raise ValueError("entry header checksum mismatch")
    length, body_crc = _LEAD.unpack(lead)
    start = offset + ENTRY_HEADER_SIZE
    body = data[start:start + length]
    if zlib.crc32(body) != body_crc:
        raise ValueError("entry checksum mismatch")
    entry = decode_cbor(body, "entry does not decode")
    if not isinstance(entry, list):
        raise ValueError("entry is not an array")
    return entry, start + length


def decode_cbor(data: bytes, problem: str) -> Any:
    """One CBOR value; cbor2's errors come as ValueError from :mod:`agent.cbor_codec`, named ``problem`` here."""
    try:
        return cbor_codec.decode(data)[0]
    except ValueError as exc:
        raise ValueError(problem) from exc


def _is_torn_tail(data: bytes, offset: int) -> bool:
    """Whether the bytes from ``offset`` to the end are an append cut short by a crash: an entry whose header is
    sound but whose body runs past the end, or a header cut short, possibly followed by zeros (a file grown by
    the append before its data reached the disk). A whole header that is bad is damage, not a tail."""
    rest = memoryview(data)[offset:]
    if len(rest) < ENTRY_HEADER_SIZE:
        return True
    lead = bytes(rest[:_LEAD.size])
    (lead_crc,) = _CRC.unpack_from(rest, _LEAD.size)
    if zlib.crc32(lead) == lead_crc:
        length, _ = _LEAD.unpack(lead)
        return bool(ENTRY_HEADER_SIZE + length > len(rest))
    return len(bytes(rest).rstrip(b"\0")) < ENTRY_HEADER_SIZE


# --- the state in memory, rebuilt by applying entries (pure) -----------------------------------------------

@dataclass(frozen=True, slots=True)
class Held:
    message: Message
    seq: int  # order of first put: breaks ties between equal created_ms
    size: int  # bytes of journal this message keeps alive (its put, and its dead entry)
    reason: str | None = None


@dataclass(slots=True)
class SpoolState:
    """Queued and dead messages. Changed only by :meth:`apply`, at replay and after each durable append alike,
    so that what is in memory is exactly what the journal says."""

    queued: dict[str, Held] = field(default_factory=dict)
    dead: dict[str, Held] = field(default_factory=dict)
    live_bytes: int = 0
    next_seq: int = 1

    def apply(self, entry: list[Any], size: int) -> None:
        """Apply one entry of ``size`` journal bytes; ValueError when it is malformed or does not fit."""
        match entry:
            case ["put", str(), str(), str(), bytes(), int(), int(), int()]:
                self._put(Message(*entry[1:]), size)
            case ["ack", str() as message_id]:
                self.live_bytes -= self._queued_entry(message_id).size
                del self.queued[message_id]
            case ["retry", str() as message_id, int() as not_before_ms, int() as attempts]:
                held = self._queued_entry(message_id)
                message = replace(held.message, attempts=attempts, not_before_ms=not_before_ms)
                check_message(message)
                self.queued[message_id] = replace(held, message=message)
            case ["dead", str() as message_id, str() as reason]:
                held = self._queued_entry(message_id)
                del self.queued[message_id]
                self.dead[message_id] = replace(held, size=held.size + size, reason=reason)
                self.live_bytes += size
            case ["purge", list() as ids] if all(isinstance(message_id, str) for message_id in ids):
                for message_id in ids:
                    dropped = self.queued.pop(message_id, None) or self.dead.pop(message_id, None)
                    if dropped is None:
                        raise ValueError("entry purges a message the spool does not hold")
                    self.live_bytes -= dropped.size
            case _:
                raise ValueError("unknown or malformed entry")

    def holds(self, message_id: str) -> bool:
        return message_id in self.queued or message_id in self.dead

    def in_order(self) -> list[Held]:
        """Every queued and dead message in put order: the order a compacted journal keeps."""
        return sorted((*self.queued.values(), *self.dead.values()), key=lambda held: held.seq)

    def _put(self, message: Message, size: int) -> None:
        check_message(message)
        if self.holds(message.id):
            raise ValueError("entry puts a message the spool already holds")
        self.queued[message.id] = Held(message, self.next_seq, size)
        self.next_seq += 1
        self.live_bytes += size

    def _queued_entry(self, message_id: str) -> Held:
        held = self.queued.get(message_id)
        if held is None:
            raise ValueError("entry names a message that is not queued")
        return held


def replay(data: bytes, path: Path) -> tuple[SpoolState, int]:
    """The state a journal's bytes hold, and the offset where its whole entries end (a torn tail follows).

    StoreError naming ``path`` and the offset of any damage other than a torn tail. ``path`` is only named."""
    if not data.startswith(JOURNAL_MAGIC):
        raise damage(path, 0, "it does not start with the spool journal header")
    state = SpoolState()
    offset = len(JOURNAL_MAGIC)
    while offset < len(data) and not _is_torn_tail(data, offset):
        try:
            entry, end = _read_entry(data, offset)
            state.apply(entry, end - offset)
        except (ValueError, TypeError) as exc:
            raise damage(path, offset, str(exc)) from exc
        offset = end
    return state, offset


def compacted(state: SpoolState) -> bytes:
    """A whole journal holding ``state`` and nothing else."""
    parts = [JOURNAL_MAGIC]
    for held in state.in_order():
        parts.append(frame(put_entry(held.message)))
        if held.reason is not None:
            parts.append(frame(["dead", held.message.id, held.reason]))
    return b"".join(parts)


def damage(path: Path, offset: int, problem: str) -> StoreError:
    return StoreError(f"spool {path.name} is damaged at offset {offset}: {problem}", path=str(path), offset=offset)


