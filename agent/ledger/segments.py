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
        reader = codec.FrameReader(self.name)
        remaining = self._limit
        while remaining is None or remaining > 0:
            chunk = self._stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            reader.feed(chunk)
            yield from reader.frames()
        self.tail = reader.finish()
        self.end = reader.offset

    def records(self, checker: LinkChecker | None = None) -> Iterator[codec.Record]:
        """Decoded records, each added to ``checker`` (which raises on any break) before it is yielded."""
        if checker is not None:
            checker.start_segment(self.name)
        for frame in self.frames():
            record = codec.decode_record(frame.payload, segment=self.name, offset=frame.offset)
            if checker is not None:
                checker.add(record, frame.offset)
            yield record
