"""NMEA 0183 checksum: XOR of every byte between ``$`` (or ``!``) and ``*``, written as two hex digits."""

from __future__ import annotations

import struct
from collections.abc import Sequence

# XOR-ing eight bytes at a time is several times faster in CPython than a loop over single bytes; the 64-bit
# result is folded down to one byte at the end (XOR is associative, so the grouping does not matter).
_WORD_STRUCTS = {count: struct.Struct(f"<{count}Q") for count in range(1, 65)}
_PADDING = tuple(bytes(size) for size in range(8))


def nmea_checksum(body: bytes | str) -> int:
    """The checksum of a sentence body (the text between ``$`` and ``*``, both excluded)."""
    data = body.encode("ascii") if isinstance(body, str) else body
    padding = -len(data) % 8
    words = (len(data) + padding) >> 3
    unpacker = _WORD_STRUCTS.get(words)
    if unpacker is None:  # longer than any real sentence: the plain loop is fine
        return _checksum_bytewise(data)
    value = 0
    for word in unpacker.unpack(data + _PADDING[padding]):
        value ^= word
    value ^= value >> 32
    value ^= value >> 16
    value ^= value >> 8
    return value & 0xFF


def _checksum_bytewise(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


_BLOCK = 128  # bytes per body in a batch; longer bodies take the one-by-one path
_BATCH = 128  # bodies per big integer: large enough to amortise, small enough to stay in cache
_FOLD_SHIFTS = (512, 256, 128, 64, 32, 16, 8)


def nmea_checksums(bodies: Sequence[bytes]) -> bytes:
    """The checksums of many bodies at once: byte ``i`` of the result is ``nmea_checksum(bodies[i])``.

    Why: the reader checks every sentence of a read at once, and this is several times faster per sentence.
    How: each body is zero-padded to 128 bytes (zeros do not change an XOR) and a batch of them becomes one
    big integer; seven shift-XOR steps then fold every 128-byte block onto its lowest byte, so the
    per-byte work happens inside CPython's integer arithmetic instead of a Python loop. Longer bodies (rare:
    the default sentence bound is 256) are done one by one.
    """
    if max(map(len, bodies), default=0) <= _BLOCK:
        return _batched(bodies)
    # Rare: a body longer than a block. Batch the others with an empty stand-in, then fill it in.
    sums = bytearray(_batched([body if len(body) <= _BLOCK else b"" for body in bodies]))
    for index, body in enumerate(bodies):
        if len(body) > _BLOCK:
            sums[index] = nmea_checksum(body)
    return bytes(sums)


def _batched(bodies: Sequence[bytes]) -> bytes:
    sums = b""
    for start in range(0, len(bodies), _BATCH):
        sums += _folded_checksums(bodies[start : start + _BATCH])
    return sums


def _folded_checksums(bodies: Sequence[bytes]) -> bytes:
    # Blocks are little-endian, so shifting right moves each block's upper bytes onto its lower ones. After a
    # fold by half a block, the lower half of every block is the XOR of its two halves; its upper half now
    # holds a neighbour's bytes, but no later step reads it: each step only reads the lower half of what the
    # previous step left clean. So no masking is needed, and byte 0 of each block ends up as its checksum.
    folded = int.from_bytes(b"".join([body.ljust(_BLOCK, b"\0") for body in bodies]), "little")
    for shift in _FOLD_SHIFTS:
        folded ^= folded >> shift
    return folded.to_bytes(len(bodies) * _BLOCK, "little")[::_BLOCK]


def with_checksum(body: str) -> str:
    """A complete sentence ``$<body>*HH`` (upper-case hex), without line terminator."""
    return f"${body}*{nmea_checksum(body):02X}"
