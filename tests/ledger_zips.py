"""Crafting zip files byte by byte, as an attacker would, for the verify-export tests (not collected).

zipfile cannot write what these tests need (declared sizes that lie, a 10 GiB member from 10 MB, a million
entries in seconds), so members are written here with ZIP64 headers throughout, streaming.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
_FULL = 0xFFFFFFFF


@dataclass
class Member:
    """One zip entry: ``chunks`` make its stored bytes; the sizes and CRC are what the headers declare."""

    name: str
    chunks: Callable[[], Iterable[bytes]]
    compress_size: int
    file_size: int
    crc: int = 0
    method: int = zipfile.ZIP_STORED
    flag_bits: int = 0x800  # names are UTF-8
    local_header: bool = True
    offset: int = field(default=0, init=False)


def stored(name: str, data: bytes) -> Member:
    return Member(name, lambda: [data], len(data), len(data), zlib.crc32(data))


def deflated(name: str, data: bytes) -> Member:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = compressor.compress(data) + compressor.flush()
    return Member(name, lambda: [raw], len(raw), len(data), zlib.crc32(data), method=zipfile.ZIP_DEFLATED)


def zeros_bomb(name: str, gib: int) -> Member:
    """A deflated member of ``gib`` GiB of zeros, about 1 KiB per MiB: one full-flushed block repeated
    (the CRC is left 0: nothing may inflate it anyway)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == first  # after a full flush the compressor starts afresh: every MiB compresses alike
    end = compressor.flush()
    blocks = gib * 1024

    def chunks() -> Iterator[bytes]:
        batch = block * 64
        for _ in range(blocks // 64):
            yield batch
        yield end

    return Member(name, chunks, len(block) * blocks + len(end), blocks * MIB, method=zipfile.ZIP_DEFLATED)


def genuine_members(export: Path) -> list[Member]:
    """Every member of a genuine export, as they are (stored or deflated again, same content)."""
    with zipfile.ZipFile(export) as archive:
        return [(deflated if info.compress_type == zipfile.ZIP_DEFLATED else stored)(info.filename,
                                                                                   archive.read(info))
                for info in archive.infolist()]


def write_zip(path: Path, members: Iterable[Member]) -> Path:
    """Write ``members`` in order, then the central directory and the ZIP64 end records."""
    written = list(members)
    with path.open("wb") as out:
        for member in written:
            member.offset = out.tell()
            if not member.local_header:
                continue
            name = member.name.encode()
            extra = struct.pack("<HHQQ", 1, 16, member.file_size, member.compress_size)
            out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, member.flag_bits, member.method, 0, 0x21,
                                  member.crc, _FULL, _FULL, len(name), len(extra)) + name + extra)
            for chunk in member.chunks():
                out.write(chunk)
        start = out.tell()
        for batch in _batches((_central_entry(member) for member in written), 4096):
            out.write(b"".join(batch))
        _write_end(out, len(written), out.tell() - start, start)
    return path


def write_many_empty_members(path: Path, count: int) -> Path:
    """A zip whose central directory lists ``count`` empty members (no local headers: opening the zip reads
    only the directory)."""
    members = (Member(f"m{index:07d}", lambda: [], 0, 0, local_header=False) for index in range(count))
    with path.open("wb") as out:
        for batch in _batches((_central_entry(member) for member in members), 65536):
            out.write(b"".join(batch))
        _write_end(out, count, out.tell(), 0)
    return path


def _central_entry(member: Member) -> bytes:
    name = member.name.encode()
    extra = struct.pack("<HHQQQ", 1, 24, member.file_size, member.compress_size, member.offset)
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, member.flag_bits, member.method, 0, 0x21,
                       member.crc, _FULL, _FULL, len(name), len(extra), 0, 0, 0, 0, _FULL) + name + extra


def _write_end(out: object, count: int, size: int, start: int) -> None:
    assert hasattr(out, "write") and hasattr(out, "tell")
    end64 = out.tell()
    out.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start))
    out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1))
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, _FULL, _FULL, 0))


def _batches(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
