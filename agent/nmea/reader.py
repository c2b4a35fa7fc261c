"""Sans-I/O NMEA 0183 framing: bytes in (any chunking, garbage, binary), checked sentences out, counters.

The reader never raises on bad input: every byte it cannot use is counted and dropped, and it resynchronises
at the next ``$``. The rules, which make the result independent of how the input is chunked:

- A sentence starts at ``$`` and ends at CR or LF. Bytes outside sentences are *garbage* (line terminators are
  not counted).
- A ``$`` inside a sentence means the sentence was cut short (truncated line, binary frame holding a 0x24
  byte): the cut one is *malformed* and a new one starts. The same holds for a sentence still open at
  ``feed_eof()``.
- A sentence longer than ``max_sentence_bytes`` (``$`` included, terminator excluded) is *malformed*; its
  bytes are dropped as they arrive, so no buffer ever grows past the bound.
- Bytes other than printable ASCII, a misplaced ``*``, a checksum that is not two hex digits (either case) or
  an address that is neither ``<talker 2><type 3>`` nor proprietary ``P...`` make a sentence *malformed*.
- A wrong checksum counts as *bad_checksum*. A sentence with no checksum counts as *missing_checksum* unless
  the caller allows it (``allow_missing_checksum=True``). The default refuses them: Quectel modules always
  send a checksum, a serial line has no other integrity check, and a line cut at the wrong place
  (``$GPGGA,1234``) looks exactly like a sentence without one. gpsd's MTK captures (``$POLYN``) are the case
  for allowing it.
- Every other sentence is *accepted* and returned; *proprietary* (``$P...``) and *unknown* (a standard address
  whose type has no decoder here, e.g. GLL, TXT, GST) are counted among the accepted ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

from agent.errors import UsageError
from agent.nmea.checksum import nmea_checksums

# NMEA 0183 says 82, but real receivers exceed it (MTK $PMTKCHN: 190, Quectel with 6-decimal minutes: 90).
DEFAULT_MAX_SENTENCE_BYTES: Final = 256
DECODED_TYPES: Final = frozenset({"GGA", "RMC", "GNS", "GSA", "GSV", "VTG", "ZDA"})

_DOLLAR: Final = 0x24
_STAR: Final = 0x2A
_HEX_DIGITS = "0123456789ABCDEFabcdef"
# Both digits case-insensitive, nothing else: int(x, 16) would also take " 7", "+7" and "0_7".
_HEX_PAIRS: Final = {
    f"{high}{low}".encode(): int(high + low, 16) for high in _HEX_DIGITS for low in _HEX_DIGITS
}


class Sentence(NamedTuple):
    """One checked sentence: ``body`` is the text between ``$`` and ``*`` (address included).

    For proprietary sentences ``talker`` is ``""`` and ``kind`` is the address without its ``P`` (``"QGSV"``,
    ``"MTK001"``). The body is split into fields only when asked (most sentences are never looked into).
    """

    talker: str
    kind: str
    body: str
    proprietary: bool

    @property
    def fields(self) -> tuple[str, ...]:
        """The comma-separated fields, split anew on each access. ``fields[0]`` is the address (``"GNGGA"``),
        so ``fields[n]`` is the n-th data field as numbered in the NMEA tables."""
        return tuple(self.body.split(","))


class _NeedData:
    """The type of :data:`NEED_DATA`."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(slots=True)
class ReaderCounters:
    """What the reader did with its input so far (see the module docstring for the exact rules)."""

    accepted: int = 0
    bad_checksum: int = 0
    missing_checksum: int = 0
    malformed: int = 0
    garbage_bytes: int = 0
    proprietary: int = 0
    unknown: int = 0

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


class NmeaReader:
    """Frames and checks NMEA sentences from a byte stream; see the module docstring for the rules."""

    def __init__(
        self,
        max_sentence_bytes: int = DEFAULT_MAX_SENTENCE_BYTES,
        *,
        allow_missing_checksum: bool = False,
        kinds: frozenset[str] | None = None,
    ) -> None:
        """``kinds``: return only sentences of these types (``"GGA"``, ``"QGSV"`` for ``$PQGSV``); the others
        are still checked and counted. ``None`` returns every accepted sentence."""
        if not 16 <= max_sentence_bytes <= 65536:
            raise UsageError("max_sentence_bytes must be between 16 and 65536", value=max_sentence_bytes)
        self.max_sentence_bytes = max_sentence_bytes
        self.allow_missing_checksum = allow_missing_checksum
        self.kinds = kinds
        self.counters = ReaderCounters()
        self._events: deque[Sentence] = deque()
        self._open = b""  # the sentence still open after the last feed, '$' included; within the bound
        self._overlong = False  # the open sentence passed the bound: its bytes are being dropped

    # -- input ---------------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray) -> None:
        """Take the next bytes of the stream, in any chunking; complete sentences become events."""
        if not data:
            return
        # CR and LF both end a sentence; splitting the whole chunk at once keeps the per-sentence work small.
        lines = bytes(data).replace(b"\r", b"\n").split(b"\n")
        first = lines[0]
        if self._overlong:
            first = self._finish_overlong(first, ended=len(lines) > 1)
        elif self._open:
            first = self._open + first
        self._open = b""
        lines[0] = first
        last = lines.pop()  # not terminated yet
        max_bytes = self.max_sentence_bytes
        frames: list[bytes] = []
        for line in lines:
            if line[:1] == b"$" and len(line) <= max_bytes and line.find(b"$", 1) < 0:
                frames.append(line[1:])  # the common case: exactly one whole sentence on the line
            elif line:
                self._split_line(line, frames, ended=True)
        if last:
            self._split_line(last, frames, ended=False)
        self._check_all(frames)

    def feed_eof(self) -> None:
        """The stream ended (file end, port closed): a sentence still open was cut short."""
        if self._open or self._overlong:
            self.counters.malformed += 1
        self._open = b""
        self._overlong = False

    # -- output --------------------------------------------------------------------------------------------

    def next_event(self) -> Sentence | _NeedData:
        """The next complete sentence, or :data:`NEED_DATA` when more bytes are needed."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def __iter__(self) -> Iterator[Sentence]:
        """The sentences complete so far (stops when more bytes are needed)."""
        events = self._events
        while events:
            yield events.popleft()

    # -- framing -------------------------------------------------------------------------------------------

    def _finish_overlong(self, piece: bytes, ended: bool) -> bytes:
        """Drop the rest of an over-long sentence from ``piece``; return what follows it."""
        dollar = piece.find(b"$")
        if dollar >= 0:
            self.counters.malformed += 1
            self._overlong = False
            return piece[dollar:]
        if ended:
            self.counters.malformed += 1
            self._overlong = False
        return b""

    def _split_line(self, line: bytes, frames: list[bytes], ended: bool) -> None:
        """The general case: garbage before the first ``$``, sentences cut short by a ``$``, long ones."""
        counters = self.counters
        parts = line.split(b"$")
        counters.garbage_bytes += len(parts[0])
        if len(parts) == 1:
            return
        counters.malformed += len(parts) - 2  # every sentence but the last was cut short by the next '$'
        last = parts[-1]
        fits = len(last) < self.max_sentence_bytes
        if ended:
            if fits:
                frames.append(last)
            else:
                counters.malformed += 1
        elif fits:
            self._open = b"$" + last
        else:
            self._overlong = True

    # -- checking ------------------------------------------------------------------------------------------

    def _check_all(self, frames: list[bytes]) -> None:
        """Check complete frames (the bytes between ``$`` and the terminator); queue the good ones in order.

        The hot path of the reader: one loop, local counters, and checksums computed for the whole batch.
        """
        stars = [frame.find(b"*") for frame in frames]
        sums = nmea_checksums([frame[:star] for frame, star in zip(frames, stars, strict=True)])
        append = self._events.append
        allow_missing = self.allow_missing_checksum
        wanted = self.kinds
        new = tuple.__new__  # Sentence(...) goes through a Python-level __new__; this is the same, faster
        malformed = bad_checksum = missing_checksum = proprietary = unknown = accepted = 0
        for frame, star, computed in zip(frames, stars, sums, strict=True):
            try:
                text = frame.decode("ascii")
            except UnicodeDecodeError:
                malformed += 1
                continue
            if not text.isprintable():
                malformed += 1
                continue
            if star < 0:
                if not allow_missing:
                    missing_checksum += 1
                    continue
                body = text
            else:
                sent = _HEX_PAIRS.get(frame[star + 1 :])
                if sent is None:  # '*' not followed by exactly two hex digits
                    malformed += 1
                    continue
                if computed != sent:
                    bad_checksum += 1
                    continue
                body = text[:star]
            comma = body.find(",")
            address = body if comma < 0 else body[:comma]
            if not address.isalnum():
                malformed += 1
            elif address[0] == "P" and len(address) > 1:
                proprietary += 1
                accepted += 1
                kind = address[1:]
                if wanted is None or kind in wanted:
                    append(new(Sentence, ("", kind, body, True)))
            elif len(address) == 5:
                kind = address[2:]
                if kind not in DECODED_TYPES:
                    unknown += 1
                accepted += 1
                if wanted is None or kind in wanted:
                    append(new(Sentence, (address[:2], kind, body, False)))
            else:
                malformed += 1
        counters = self.counters
        counters.malformed += malformed
        counters.bad_checksum += bad_checksum
        counters.missing_checksum += missing_checksum
        counters.proprietary += proprietary
        counters.unknown += unknown
        counters.accepted += accepted
