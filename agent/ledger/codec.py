"""Records and frames: the pure core of the ledger (bytes in, records out; no I/O, no clock).

A record is a deterministic CBOR map with text keys only and no floats, so that cbor2's ``canonical=True``
(length-first key order, RFC 8949 §4.2.3) produces the same bytes as the core rules of §4.2.1::

    {"v": 1, "seq": 42, "t": 1700000000000, "type": "switch", "prev": <32 bytes>,
     "f": {...plain fields...}, "p": {"k": "<key id>", "n": <12 bytes>, "c": <ciphertext>}}

``p`` (personal fields, AES-256-GCM) is present only when the record carries personal data. The record's
hash is SHA-256 of its payload bytes; ``prev`` is the previous record's hash (32 zero bytes for the first
record), so the chain covers ciphertext, and destroying a key never breaks it.

A frame on disk is::

    magic "QPL\\x01" | version u8 | kind u8 | length u32 LE | header CRC u32 LE | payload | payload CRC u32 LE

The CRCs are ``zlib.crc32``: they only tell a torn or damaged write from a whole one (integrity against
tampering comes from the SHA-256 chain and the signed checkpoints), and zlib is in the standard library, while
CRC32C would need a package. The header CRC matters for recovery: a damaged length field must not pass for a
torn tail.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from agent import cbor_codec
from agent.errors import LogCorrupt, UsageError

SCHEMA_VERSION = 1
MAGIC = b"QPL\x01"
FRAME_VERSION = 1
KIND_RECORD = 1
HEADER = struct.Struct("<4sBBI")  # magic, version, kind, payload length
CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + CRC.size  # 14
_HEADER_AND_CRC = struct.Struct("<6sII")  # the header read as (magic + version + kind, length, header CRC)
TRAILER_SIZE = CRC.size
MAX_PAYLOAD = 1 << 20  # 1 MiB: a record is small; anything larger is damage, not data
GENESIS = bytes(32)
# The last millisecond of year 9999: what a record's time can be shown as (datetime's range). A later time is
# damage or forgery, refused when read, and a clock that far ahead is refused when writing.
MAX_TIME_MS = 253_402_300_799_999
_PREFIX = HEADER.pack(MAGIC, FRAME_VERSION, KIND_RECORD, 0)[:6]
HASH_SIZE = 32

# Records that carry a promise to a person (invariant 5): durable before append returns.
DURABLE_TYPES = frozenset({"consent", "switch", "request", "incident", "key_destroyed", "recovery"})
KNOWN_TYPES = frozenset({"fix_access", "upload", "consent", "switch", "incident", "request", "key_destroyed",
                         "checkpoint", "recovery"})
MAX_TYPE_LENGTH = 32
_SCALARS = frozenset({str, int, bytes, bool, type(None)})
_TEXT = frozenset({str})


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
    if type(value) is dict and _TEXT.issuperset(map(type, value)) and \
            _SCALARS.issuperset(map(type, value.values())):
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
    """Deterministic CBOR (RFC 8949 §4.2: map keys sorted by length, then bytewise; shortest integers)."""
    return cbor2.dumps(value, canonical=True)


def loads(data: bytes) -> Any:
    """Decode one CBOR item (definite lengths, no duplicate map keys).

    cbor2's errors become ``ValueError("not valid CBOR")`` in :mod:`agent.cbor_codec`, the one boundary; each
    caller turns it into its own error (LogCorrupt, KeyStoreError).
    """
    return cbor_codec.decode(data, strict=True)[0]


# -- records ------------------------------------------------------------------------------------------------
def encode_record(*, seq: int, time_ms: int, record_type: str, prev_hash: bytes, fields: Mapping[str, Any],
                  sealed: Sealed | None) -> bytes:
    body: dict[str, Any] = {"v": SCHEMA_VERSION, "seq": seq, "t": time_ms, "type": record_type,
                            "prev": prev_hash, "f": dict(fields)}
    if sealed is not None:
        body["p"] = {"k": sealed.key_id, "n": sealed.nonce, "c": sealed.ciphertext}
    return dumps(body)


def record_hash(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def frame_and_hash(payload: bytes) -> tuple[bytes, bytes]:
    """``(encode_frame(payload), record_hash(payload))`` in one call, for the append path."""
    return encode_frame(payload), hashlib.sha256(payload).digest()


def decode_record(payload: bytes, *, segment: str, offset: int) -> Record:
    """Decode and check the shape of one record payload; a payload that passed its CRC but is not a record of
    this schema is corruption (or a newer schema), reported at its place."""
    seq, time_ms, record_type, prev, fields, sealed_parts, digest = decode_parts(payload, segment=segment,
                                                                                offset=offset)
    sealed = Sealed(*sealed_parts) if sealed_parts is not None else None
    return Record(seq, time_ms, record_type, prev, fields, sealed, payload, digest)


SealedParts = tuple[str, bytes, bytes]  # key_id, nonce, ciphertext
# seq, time_ms, type, prev_hash, fields, sealed (or None), hash: a Record's values but its payload
RecordParts = tuple[int, int, str, bytes, dict[str, Any], SealedParts | None, bytes]


def decode_parts(payload: bytes, *, segment: str, offset: int) -> RecordParts:
    """What :func:`decode_record` checks and finds, as a tuple, for a reader with no use for the objects: the
    export turns millions of records into lines, and making a Record and a Sealed costs about as much as
    these checks. Raises the same :class:`LogCorrupt` as decode_record, which is built on it.

    Runs once per record on every read of the log.
    """
    try:
        body = loads(payload)
    except ValueError as exc:
        raise LogCorrupt("record is not valid CBOR", segment=segment, offset=offset) from exc
    try:
        if type(body) is not dict or body["v"] != SCHEMA_VERSION:
            raise ValueError("not a record of this schema")
        seq, time_ms, record_type, prev = body["seq"], body["t"], body["type"], body["prev"]
        fields = body.get("f", {})
        # exact type checks (bool is not an int here)
        if not (type(seq) is int and type(time_ms) is int and seq >= 0 and 0 <= time_ms <= MAX_TIME_MS
                and type(record_type) is str and type(prev) is bytes and len(prev) == HASH_SIZE
                and type(fields) is dict):
            raise ValueError("record fields have the wrong types")
        sealed: SealedParts | None = None
        if "p" in body:
            raw = body["p"]
            if type(raw) is not dict:
                raise ValueError("personal part is not a map")
            sealed = raw["k"], raw["n"], raw["c"]
            if not (type(sealed[0]) is str and type(sealed[1]) is bytes and type(sealed[2]) is bytes):
                raise ValueError("personal part has the wrong types")
    except (KeyError, TypeError, ValueError) as exc:
        raise LogCorrupt(f"record does not match schema {SCHEMA_VERSION}", segment=segment,
                         offset=offset) from exc
    return seq, time_ms, record_type, prev, fields, sealed, hashlib.sha256(payload).digest()


# -- frames -------------------------------------------------------------------------------------------------
def encode_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size > MAX_PAYLOAD:
        raise UsageError("record is larger than 1 MiB")
    header = HEADER.pack(MAGIC, FRAME_VERSION, KIND_RECORD, size)
    return header + CRC.pack(zlib.crc32(header)) + payload + CRC.pack(zlib.crc32(payload))


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
        self._need = 1  # buffer length below which no new frame can be whole (nothing to parse)

    def feed(self, data: bytes) -> None:
        if self._zeros_from is not None:
            self._expect_zeros(data, self._offset)
            self._offset += len(data)
            return
        self._buffer += data

    def frames(self) -> Iterator[Frame]:
        """Every whole frame now in the buffer."""
        for offset, payload in self.payloads():
            yield Frame(offset, payload)

    def payloads(self) -> Iterator[tuple[int, bytes]]:
        """Every whole frame now in the buffer, as (offset, payload): :meth:`frames` without the objects.

        This loop is the inner loop of every read of the log (open, verify, export), so it is written flat.
        """
        buffer = self._buffer
        if self._zeros_from is not None or len(buffer) < self._need:
            return  # a frame still incomplete: not worth copying the buffer again to find that out
        # One copy of the buffer per fed chunk; each payload is then a single slice of it (slicing the
        # bytearray and converting would copy every payload twice).
        data = bytes(buffer)
        end = len(data)
        base = self._offset
        position = 0
        unpack_header, unpack_crc, crc32 = _HEADER_AND_CRC.unpack_from, CRC.unpack_from, zlib.crc32
        header_end = HEADER.size
        try:
            while position < end:
                if data[position] == 0:
                    # A frame never starts with 0; a zero run is space the filesystem allocated but a crash
                    # left unwritten.
                    self._expect_zeros(data[position:], base + position)
                    self._zeros_from = base + position
                    self._offset = base + end
                    buffer.clear()
                    return
                if end - position < HEADER_SIZE:
                    break
                prefix, length, header_crc = unpack_header(data, position)
                if crc32(data[position:position + header_end]) != header_crc:
                    raise self._corrupt("frame header checksum mismatch", base + position)
                if prefix != _PREFIX or length > MAX_PAYLOAD:  # magic, version and kind in one comparison
                    raise self._corrupt("frame header not understood", base + position)
                start = position + HEADER_SIZE
                stop = start + length
                if stop + TRAILER_SIZE > end:
                    break
                payload = data[start:stop]
                if crc32(payload) != unpack_crc(data, stop)[0]:
                    raise self._corrupt("record checksum mismatch", base + position)
                offset = base + position
                position = stop + TRAILER_SIZE  # consumed before it is handed out, as a generator may stop
                yield offset, payload
        finally:
            if self._zeros_from is None:
                del buffer[:position]
                self._offset = base + position
                self._need = self._bytes_needed(data, position)

    def _bytes_needed(self, data: bytes, position: int) -> int:
        """How long the buffer must grow before the frame at ``position`` of ``data`` can be whole."""
        left = len(data) - position
        if left < HEADER_SIZE:
            return 1 if left == 0 else HEADER_SIZE
        length = HEADER.unpack_from(data, position)[3]
        return HEADER_SIZE + length + TRAILER_SIZE if length <= MAX_PAYLOAD else 1

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

    def _expect_zeros(self, data: bytes, offset: int) -> None:
        if data.count(0) != len(data):
            start = self._zeros_from if self._zeros_from is not None else offset
            raise self._corrupt("data after a run of zero bytes", start)

    def _corrupt(self, message: str, offset: int) -> LogCorrupt:
        return LogCorrupt(message, segment=self._segment, offset=offset)
