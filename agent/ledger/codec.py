"""Records and frames: the pure core of the ledger (bytes in, records out; no I/O, no clock).

A record is a deterministic CBOR map with text keys only and no floats, so that cbor2's ``canonical=True``
(length-first key order, RFC 8949 §4.2.3) produces the same bytes as the core rules of §4.2.1::

    {"v": 1, "seq": 42, "t": 1700000000000, "type": "switch", "prev": <32 bytes>,
     "f": {...plain fields...}, "p": {"k": "<key id>", "n": <12 bytes>, "c": <ciphertext>}}

``p`` (personal fields, AES-256-GCM) is present only when the record carries personal data. The record's
hash is
SHA-256 of its payload bytes; ``prev`` is the previous record's hash (32 zero bytes for the first record),
so the
chain covers ciphertext, and destroying a key never breaks it.

A frame on disk is::

    magic "QPL\\x01" | version u8 | kind u8 | length u32 LE | header CRC u32 LE | payload | payload CRC u32 LE

The CRCs are ``zlib.crc32``: they only tell a torn or damaged write from a whole one (integrity against
tampering
comes from the SHA-256 chain and the signed checkpoints), and zlib is in the standard library, while CRC32C
would
need a package. The header CRC matters for recovery: a damaged length field must not pass for a torn tail.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from agent.errors import LogCorrupt, UsageError

SCHEMA_VERSION = 1
MAGIC = b"QPL\x01"
FRAME_VERSION = 1
KIND_RECORD = 1
HEADER = struct.Struct("<4sBBI")  # magic, version, kind, payload length
CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + CRC.size  # 14
TRAILER_SIZE = CRC.size
MAX_PAYLOAD = 1 << 20  # 1 MiB: a record is small; anything larger is damage, not data
GENESIS = bytes(32)
HASH_SIZE = 32

# Records that carry a promise to a person (invariant 5): durable before append returns.
DURABLE_TYPES = frozenset({"consent", "switch", "request", "incident", "key_destroyed", "recovery"})
KNOWN_TYPES = frozenset({"fix_access", "upload", "consent", "switch", "incident", "request", "key_destroyed",
                         "checkpoint", "recovery"})
MAX_TYPE_LENGTH = 32
_SCALARS = frozenset({str, int, bytes, bool, type(None)})


@dataclass(frozen=True, slots=True)
class Sealed:
    """Personal fields encrypted under one data key."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record; ``hash`` is SHA-256 of ``payload`` (the exact bytes on disk)."""

    seq: int
    time_ms: int
    type: str
    prev_hash: bytes
    fields: Mapping[str, Any]
    sealed: Sealed | None
    payload: bytes
    hash: bytes


# -- values -------------------------------------------------------------------------------------------------
def check_value(value: Any, where: str = "fields") -> None:
    """Accept only what encodes deterministically: text keys, int, str, bytes, bool, None, lists, maps.

    Floats are refused because their shortest encoding is lossy-looking and depends on the value; coordinates
    are E7 integers and times integer milliseconds. The message names the place, never the value.
    """
    if type(value) is dict and all(type(k) is str and type(item) in _SCALARS for k, item in value.items()):
        return  # the common case: a flat map of scalars
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, float):
        raise UsageError(f"{where}: floats are not allowed (use E7 integers or integer milliseconds)")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_value(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{where}: map keys must be text")
            check_value(item, f"{where}.{key}")
        return
    raise UsageError(f"{where}: values of type {type(value).__name__} cannot be recorded")


def check_type(record_type: str) -> None:
    if record_type in KNOWN_TYPES:
        return
    if not isinstance(record_type, str) or not record_type or len(record_type) > MAX_TYPE_LENGTH:
        raise UsageError("record type must be a non-empty text of at most 32 characters")
    if not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in record_type):
        raise UsageError("record type may contain only ASCII letters, digits and '_'")


def dumps(value: Any) -> bytes:
    """Deterministic CBOR: maps are put in canonical key order here, then encoded as they are.

    Same bytes as ``cbor2.dumps(value, canonical=True)`` for the values :func:`check_value` accepts (text
    keys, no floats, definite lengths, shortest integers), at a quarter of the cost; tests check the equality.
    """
    return cbor2.dumps(_ordered(value))


def _ordered(value: Any) -> Any:
    if type(value) is dict:
        if len(value) > 1:
            return {key: _ordered(value[key]) for key in sorted(value, key=_canonical_key)}
        return {key: _ordered(item) for key, item in value.items()}
    if type(value) is list or type(value) is tuple:
        return [_ordered(item) for item in value]
    return value


def _canonical_key(key: str) -> tuple[int, bytes]:
    encoded = key.encode()
    return len(encoded), encoded  # length first, then bytewise: RFC 8949 §4.2.3, what cbor2 canonical does


def loads(data: bytes) -> Any:
    return cbor2.loads(data, allow_indefinite=False, allow_duplicate_keys=False)


# -- records ------------------------------------------------------------------------------------------------
def encode_record(*, seq: int, time_ms: int, record_type: str, prev_hash: bytes, fields: Mapping[str, Any],
                  sealed: Sealed | None) -> bytes:
    # Built in canonical key order already (f p t v seq prev type), so only the fields need ordering.
    body: dict[str, Any] = {"f": _ordered(dict(fields))}
    if sealed is not None:
        body["p"] = {"c": sealed.ciphertext, "k": sealed.key_id, "n": sealed.nonce}
    body.update(t=time_ms, v=SCHEMA_VERSION, seq=seq, prev=prev_hash, type=record_type)
    return cbor2.dumps(body)


def record_hash(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def decode_record(payload: bytes, *, segment: str, offset: int) -> Record:
    """Decode and check the shape of one record payload; a payload that passed its CRC but is not a record of
    this schema is corruption (or a newer schema), reported at its place."""
    try:
        body = loads(payload)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise LogCorrupt("record is not valid CBOR", segment=segment, offset=offset) from exc
    try:
        return _record_from(body, payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise LogCorrupt(f"record does not match schema {SCHEMA_VERSION}", segment=segment,
                         offset=offset) from exc


def _record_from(body: Any, payload: bytes) -> Record:
    if type(body) is not dict or body["v"] != SCHEMA_VERSION:
        raise ValueError("not a record of this schema")
    seq, time_ms, record_type, prev = body["seq"], body["t"], body["type"], body["prev"]
    fields = body.get("f", {})
    # exact type checks (bool is not an int here), written flat: this runs once per record on every read
    if not (type(seq) is int and type(time_ms) is int and seq >= 0 and time_ms >= 0
            and type(record_type) is str and type(prev) is bytes and len(prev) == HASH_SIZE
            and type(fields) is dict):
        raise ValueError("record fields have the wrong types")
    sealed = _sealed_from(body["p"]) if "p" in body else None
    return Record(seq, time_ms, record_type, prev, fields, sealed, payload, hashlib.sha256(payload).digest())


def _sealed_from(raw: Any) -> Sealed:
    if type(raw) is not dict:
        raise ValueError("personal part is not a map")
    key_id, nonce, ciphertext = raw["k"], raw["n"], raw["c"]
    if not (type(key_id) is str and type(nonce) is bytes and type(ciphertext) is bytes):
        raise ValueError("personal part has the wrong types")
    return Sealed(key_id, nonce, ciphertext)


# -- frames -------------------------------------------------------------------------------------------------
def encode_frame(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise UsageError("record is larger than 1 MiB")
    header = HEADER.pack(MAGIC, FRAME_VERSION, KIND_RECORD, len(payload))
    return b"".join((header, CRC.pack(zlib.crc32(header)), payload, CRC.pack(zlib.crc32(payload))))


@dataclass(frozen=True, slots=True)
class Frame:
    offset: int
    payload: bytes

    @property
    def end(self) -> int:
        return self.offset + HEADER_SIZE + len(self.payload) + TRAILER_SIZE


@dataclass(frozen=True, slots=True)
class Tail:
    """Bytes at the end of a segment that are not a whole frame: a torn write, or zeros left by a crash."""

    offset: int
    length: int


class FrameReader:
    """Sans-I/O frame parser for one segment: feed bytes in any chunking, take frames out.

    Damage raises :class:`LogCorrupt` with the segment name and the offset of the frame where it starts.
    :meth:`finish` says whether the segment ended cleanly or with a :class:`Tail` (an incomplete frame, or a
    run of zero bytes); only the caller knows whether a tail is allowed (the last segment) or is corruption.
    """

    def __init__(self, segment: str, start_offset: int = 0) -> None:
        self._segment = segment
        self._buffer = bytearray()
        self._offset = start_offset  # file offset of _buffer[0]
        self._zeros_from: int | None = None

    def feed(self, data: bytes) -> None:
        if self._zeros_from is not None:
            self._expect_zeros(data, self._offset)
            self._offset += len(data)
            return
        self._buffer += data

    def frames(self) -> Iterator[Frame]:
        """Every whole frame now in the buffer."""
        buffer = self._buffer
        position = 0
        try:
            while self._zeros_from is None:
                frame = self._frame_at(buffer, position)
                if frame is None:
                    break
                position += HEADER_SIZE + len(frame.payload) + TRAILER_SIZE
                yield frame
        finally:
            if self._zeros_from is None:
                del buffer[:position]
                self._offset += position

    def finish(self) -> Tail | None:
        """End of segment: None when it ended on a frame boundary, else the tail to truncate."""
        if self._zeros_from is not None:
            return Tail(self._zeros_from, self._offset - self._zeros_from)
        if not self._buffer:
            return None
        if not MAGIC.startswith(bytes(self._buffer[: len(MAGIC)])):
            raise self._corrupt("bad frame magic", self._offset)
        return Tail(self._offset, len(self._buffer))

    @property
    def offset(self) -> int:
        """File offset just after the last frame returned (where a tail would start)."""
        return self._zeros_from if self._zeros_from is not None else self._offset

    def _frame_at(self, buffer: bytearray, position: int) -> Frame | None:
        available = len(buffer) - position
        if available == 0:
            return None
        offset = self._offset + position
        if buffer[position] == 0:
            # A frame never starts with 0; a zero run is space the filesystem allocated but a crash left
            # unwritten.
            self._expect_zeros(bytes(buffer[position:]), offset)
            self._zeros_from = offset
            self._offset = offset + available
            buffer.clear()
            return None
        if available < HEADER_SIZE:
            return None
        magic, version, kind, length = HEADER.unpack_from(buffer, position)
        (header_crc,) = CRC.unpack_from(buffer, position + HEADER.size)
        if zlib.crc32(memoryview(buffer)[position:position + HEADER.size]) != header_crc:
            raise self._corrupt("frame header checksum mismatch", offset)
        if magic != MAGIC or version != FRAME_VERSION or kind != KIND_RECORD or length > MAX_PAYLOAD:
            raise self._corrupt("frame header not understood", offset)
        if available < HEADER_SIZE + length + TRAILER_SIZE:
            return None
        start = position + HEADER_SIZE
        payload = bytes(buffer[start:start + length])
        (payload_crc,) = CRC.unpack_from(buffer, start + length)
        if zlib.crc32(payload) != payload_crc:
            raise self._corrupt("record checksum mismatch", offset)
        return Frame(offset, payload)

    def _expect_zeros(self, data: bytes, offset: int) -> None:
        if data.count(0) != len(data):
            start = self._zeros_from if self._zeros_from is not None else offset
            raise self._corrupt("data after a run of zero bytes", start)

    def _corrupt(self, message: str, offset: int) -> LogCorrupt:
        return LogCorrupt(message, segment=self._segment, offset=offset)
