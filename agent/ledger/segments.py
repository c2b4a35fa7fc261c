"""Reading segments from any binary stream (a segment file, a member of an export zip), in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from agent.ledger import codec
from agent.ledger.chain import LinkChecker

CHUNK = 1 << 20


class SegmentScan:
    """Iterate the records of one segment; afterwards ``tail`` says whether it ended inside a frame."""

    def __init__(self, stream: BinaryIO, name: str, *, limit: int | None = None) -> None:
        self._stream = stream
        self.name = name
        self._limit = limit
        self.tail: codec.Tail | None = None
        self.end = 0  # offset just after the last whole frame

    def frames(self) -> Iterator[codec.Frame]:
        for offset, payload in self.payloads():
            yield codec.Frame(offset, payload)

    def payloads(self) -> Iterator[tuple[int, bytes]]:
        """(offset, payload) of every whole frame: :meth:`frames` without an object per frame."""
        reader = codec.FrameReader(self.name)
        remaining = self._limit
        while remaining is None or remaining > 0:
            chunk = self._stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            reader.feed(chunk)
            yield from reader.payloads()
        self.tail = reader.finish()
        self.end = reader.offset

    def parts(self, checker: LinkChecker) -> Iterator[codec.RecordParts]:
        """:meth:`records` as codec.decode_parts tuples, for a reader that needs no Record objects."""
        name = self.name
        decode, link = codec.decode_parts, checker.link
        checker.start_segment(name)
        for offset, payload in self.payloads():
            parts = decode(payload, segment=name, offset=offset)
            link(parts[0], parts[3], parts[6], parts[2], offset)
            yield parts

    def records(self, checker: LinkChecker | None = None) -> Iterator[codec.Record]:
        """Decoded records, each added to ``checker`` (which raises on any break) before it is yielded."""
        name = self.name
        decode = codec.decode_record
        if checker is None:
            for offset, payload in self.payloads():
                yield decode(payload, segment=name, offset=offset)
            return
        checker.start_segment(name)
        add = checker.add
        for offset, payload in self.payloads():
            record = decode(payload, segment=name, offset=offset)
            add(record, offset)
            yield record
