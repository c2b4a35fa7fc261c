"""A bounded buffer of whole chunks for a slow reader (pure): the oldest chunks make room, and are counted.

A reader that stops reading (a stuck gpsd, a fleet app in a debugger) must never block the daemon nor grow its
memory; dropping whole chunks (sentences, JSON lines) instead of bytes keeps what the reader does get intact.
"""

from __future__ import annotations

from collections import deque


class DropOldestBuffer:
    """Whole chunks (sentences, JSON lines) waiting for a reader, at most ``limit`` bytes: the oldest chunks are
    dropped to make room, and counted (pure; the output's lock guards it)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the buffer limit must be at least one byte")
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._head_sent = 0  # bytes of the first chunk already written
        self.size = 0
        self.dropped_bytes = 0
        self.dropped_chunks = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def push(self, chunk: bytes) -> None:
        if len(chunk) > self.limit:
            self._count_drop(len(chunk))
            return
        self._chunks.append(chunk)
        self.size += len(chunk)
        # A chunk partly written is never dropped: its rest must follow, or the reader sees a broken sentence.
        while self.size > self.limit and len(self._chunks) > 1:
            index = 1 if self._head_sent else 0
            dropped = self._chunks[index]
            del self._chunks[index]
            self.size -= len(dropped)
            self._count_drop(len(dropped))

    def _count_drop(self, size: int) -> None:
        self.dropped_bytes += size
        self.dropped_chunks += 1

    def pending(self) -> bytes:
        """The bytes to write next (the rest of the first chunk and those after it, joined)."""
        joined = b"".join(self._chunks)
        return joined[self._head_sent:]

    def consume(self, written: int) -> None:
        """``written`` bytes of :meth:`pending` reached the reader."""
        while written > 0 and self._chunks:
            rest = len(self._chunks[0]) - self._head_sent
            if written < rest:
                self._head_sent += written
                self.size -= written
                return
            self._chunks.popleft()
            self._head_sent = 0
            self.size -= rest
            written -= rest

    def clear(self) -> int:
        """Throw everything away (the gate closed); the number of bytes thrown away."""
        thrown = self.size
        self._chunks.clear()
        self._head_sent = 0
        self.size = 0
        return thrown
