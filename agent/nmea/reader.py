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
from agent.nmea.checksum import nmea_checksum

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
    """One checked sentence.

    ``fields[0]`` is the address (``"GNGGA"``, ``"PQGSV"``), so ``fields[n]`` is the sentence's n-th data
    field as numbered in the NMEA tables. For proprietary sentences ``talker`` is ``""`` and ``kind`` is the
    address without its ``P`` (``"QGSV"``, ``"MTK001"``).
    """

    talker: str
    kind: str
    fields: tuple[str, ...]
    proprietary: bool


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
        self, max_sentence_bytes: int = DEFAULT_MAX_SENTENCE_BYTES, *, allow_missing_checksum: bool = False
    ) -> None:
        if not 16 <= max_sentence_bytes <= 65536:
            raise UsageError("max_sentence_bytes must be between 16 and 65536", value=max_sentence_bytes)
        self.max_sentence_bytes = max_sentence_bytes
        self.allow_missing_checksum = allow_missing_checksum
        self.counters = ReaderCounters()
        self._events: deque[Sentence] = deque()
        self._in_sentence = False
        self._partial = bytearray()  # body of a sentence split across feeds; never above the bound
        self._overlong = False

    # -- input ---------------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray) -> None:
        """Take the next bytes of the stream, in any chunking; complete sentences become events."""
        data = bytes(data)
        position, end = 0, len(data)
        while position < end:
            if self._in_sentence:
                position = self._scan_sentence(data, position)
            else:
                position = self._skip_garbage(data, position)

    def feed_eof(self) -> None:
        """The stream ended (file end, port closed): a sentence still open was cut short."""
        if self._in_sentence:
            self.counters.malformed += 1
            self._start_sentence(False)

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

    def _skip_garbage(self, data: bytes, position: int) -> int:
        start = data.find(b"$", position)
        stop = len(data) if start < 0 else start
        if stop > position:
            terminators = data.count(b"\r", position, stop) + data.count(b"\n", position, stop)
            self.counters.garbage_bytes += stop - position - terminators
        if start < 0:
            return stop
        self._start_sentence(True)
        return start + 1

    def _start_sentence(self, open_one: bool) -> None:
        self._in_sentence = open_one
        self._partial.clear()
        self._overlong = False

    def _scan_sentence(self, data: bytes, position: int) -> int:
        """Consume sentence bytes from ``position``; return where scanning goes on."""
        if self._overlong:
            limit = len(data)  # everything up to the end of this sentence is dropped anyway
        else:
            room = self.max_sentence_bytes - 1 - len(self._partial)  # the '$' counts towards the bound
            limit = min(len(data), position + room + 1)
        stop = _first_delimiter(data, position, limit)
        if stop < 0:
            if self._overlong:
                return limit
            if limit == len(data) and limit - position < room + 1:
                self._partial += data[position:limit]
                return limit
            self._overlong = True  # more than the bound and still no end: drop what is kept so far
            self._partial.clear()
            return limit
        if self._overlong:
            self.counters.malformed += 1
        elif data[stop] == _DOLLAR:
            self.counters.malformed += 1  # cut short by the start of the next sentence
        elif self._partial:
            self._partial += data[position:stop]
            self._take(bytes(self._partial))
        else:
            self._take(data[position:stop])
        self._start_sentence(data[stop] == _DOLLAR)
        return stop + 1

    # -- checking ------------------------------------------------------------------------------------------

    def _take(self, frame: bytes) -> None:
        """Check one complete frame (the bytes between ``$`` and the terminator) and queue it if good."""
        counters = self.counters
        try:
            text = frame.decode("ascii")
        except UnicodeDecodeError:
            counters.malformed += 1
            return
        if not text.isprintable():
            counters.malformed += 1
            return
        star = text.find("*")
        if star < 0:
            if not self.allow_missing_checksum:
                counters.missing_checksum += 1
                return
            body = text
        else:
            expected = _HEX_PAIRS.get(frame[star + 1 :])
            if expected is None:  # '*' not followed by exactly two hex digits
                counters.malformed += 1
                return
            body = text[:star]
            if nmea_checksum(frame[:star]) != expected:
                counters.bad_checksum += 1
                return
        self._queue(body)

    def _queue(self, body: str) -> None:
        counters = self.counters
        parts = tuple(body.split(","))
        address = parts[0]
        if not address.isalnum() or not address.isascii():
            counters.malformed += 1
            return
        if address[0] == "P" and len(address) > 1:
            sentence = Sentence("", address[1:], parts, True)
            counters.proprietary += 1
        elif len(address) == 5:
            sentence = Sentence(address[:2], address[2:], parts, False)
            if sentence.kind not in DECODED_TYPES:
                counters.unknown += 1
        else:
            counters.malformed += 1
            return
        counters.accepted += 1
        self._events.append(sentence)


def _first_delimiter(data: bytes, start: int, limit: int) -> int:
    """Index of the first CR, LF or ``$`` in ``data[start:limit]``, or -1."""
    stop = data.find(b"\n", start, limit)
    if stop >= 0:
        limit = stop
    carriage_return = data.find(b"\r", start, limit)
    if carriage_return >= 0:
        stop = limit = carriage_return
    dollar = data.find(b"$", start, limit)
    return dollar if dollar >= 0 else stop
