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
  whose type has no decoder here, e.g. TXT, GST, GRS) are counted among the accepted ones.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

from agent.at.events import NEED_DATA, NeedData
from agent.errors import UsageError
from agent.nmea.checksum import nmea_checksum

# NMEA 0183 says 82, but real receivers exceed it (MTK $PMTKCHN: 190, Quectel with 6-decimal minutes: 90).
DEFAULT_MAX_SENTENCE_BYTES: Final = 256
DECODED_TYPES: Final = frozenset({"GGA", "RMC", "GNS", "GLL", "GSA", "GSV", "VTG", "ZDA"})

_HEX_DIGITS: Final = "0123456789ABCDEFabcdef"
# The checksum's two digits, either case, and nothing else: int(x, 16) would also take " 7", "+7" and "0_7".
_CHECKSUM_VALUES: Final = {high + low: int(high + low, 16) for high in _HEX_DIGITS for low in _HEX_DIGITS}


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
        self._open = b""  # the sentence still open, '$' included; never longer than the bound
        self._overlong = False  # the open sentence passed the bound: its bytes are being dropped

    # -- input ---------------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray) -> None:
        """Take the next bytes of the stream, in any chunking; complete sentences become events."""
        # CR and LF both end a sentence. The last piece has no line end yet (it is empty if the data ended
        # with one): it is kept open for the next feed.
        pieces = bytes(data).replace(b"\r", b"\n").split(b"\n")
        if self._overlong:
            pieces[0] = self._drop_overlong(pieces[0], ended=len(pieces) > 1)
        else:  # the sentence left open by the last feed goes on
            pieces[0] = self._open + pieces[0]
            self._open = b""
        last = pieces.pop()
        for line in pieces:
            self._take(line, ended=True)
        self._take(last, ended=False)

    def feed_eof(self) -> None:
        """The stream ended (file end, port closed): a sentence still open was cut short."""
        if self._open or self._overlong:
            self.counters.malformed += 1
        self._open = b""
        self._overlong = False

    # -- output --------------------------------------------------------------------------------------------

    def next_event(self) -> Sentence | NeedData:
        """The next complete sentence, or :data:`NEED_DATA` when more bytes are needed."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def take_all(self) -> list[Sentence]:
        """Every sentence complete so far, at once."""
        events = list(self._events)
        self._events.clear()
        return events

    def __iter__(self) -> Iterator[Sentence]:
        """The sentences complete so far (stops when more bytes are needed)."""
        while self._events:
            yield self._events.popleft()

    # -- framing -------------------------------------------------------------------------------------------

    def _drop_overlong(self, piece: bytes, ended: bool) -> bytes:
        """Drop the rest of an over-long sentence from ``piece``; return what follows it (from a ``$`` on)."""
        dollar = piece.find(b"$")
        if dollar >= 0 or ended:
            self.counters.malformed += 1
            self._overlong = False
        return piece[dollar:] if dollar >= 0 else b""

    def _take(self, piece: bytes, ended: bool) -> None:
        """Take bytes of one line (no CR or LF), up to its end (``ended``) or to the end of the data so far.

        Bytes before the first ``$`` are garbage; every ``$`` starts a sentence and cuts short the one
        before it; the last sentence is complete if the line ended, else it stays open. A sentence longer
        than the bound is malformed; one still open is dropped as its bytes arrive, so no buffer grows."""
        before, *sentences = piece.split(b"$")
        counters = self.counters
        counters.garbage_bytes += len(before)
        if not sentences:
            return
        counters.malformed += len(sentences) - 1  # each but the last was cut short by the next '$'
        last = sentences[-1]
        if len(last) >= self.max_sentence_bytes:  # the bound counts the '$'
            if ended:
                counters.malformed += 1
            else:
                self._overlong = True
        elif ended:
            body = self._checked_body(last)
            if body is not None:
                self._accept(body)
        else:
            self._open = b"$" + last

    # -- checking ------------------------------------------------------------------------------------------

    def _checked_body(self, frame: bytes) -> str | None:
        """The body of a complete sentence (the bytes between ``$`` and the line end) whose characters and
        checksum are right; None, the fault counted, for any other."""
        counters = self.counters
        text = frame.decode("ascii") if frame.isascii() else None
        if text is None or not text.isprintable():
            counters.malformed += 1
            return None
        body, star, written = text.partition("*")
        if not star:
            if not self.allow_missing_checksum:
                counters.missing_checksum += 1
                return None
            return body
        expected = _CHECKSUM_VALUES.get(written)
        if expected is None:  # not two hex digits (a second '*' included)
            counters.malformed += 1
            return None
        if nmea_checksum(body) != expected:
            counters.bad_checksum += 1
            return None
        return body

    def _accept(self, body: str) -> None:
        """Count a sentence with a good checksum by its address; queue it if the caller wants its kind."""
        counters = self.counters
        address = body.partition(",")[0]
        classified = _classify_address(address)
        if classified is None:
            counters.malformed += 1
            return
        talker, kind = classified
        counters.accepted += 1
        proprietary = talker == ""  # only a proprietary address has no talker
        if proprietary:
            counters.proprietary += 1
        elif kind not in DECODED_TYPES:
            counters.unknown += 1
        if self.kinds is None or kind in self.kinds:
            self._events.append(Sentence(talker, kind, body, proprietary))


# A receiver uses a handful of addresses, so their classification is remembered; the cache is bounded, as
# garbage that passes the checksum by chance must not grow it.
@functools.lru_cache(maxsize=256)
def _classify_address(address: str) -> tuple[str, str] | None:
    """``(talker, kind)`` of an address: ``("", "QGSV")`` for proprietary ``PQGSV``, ``("GN", "GGA")`` for a
    standard ``GNGGA``; None for an address that is neither."""
    if not address.isalnum():
        return None
    if address[0] == "P" and len(address) > 1:
        return "", address[1:]
    if len(address) == 5:
        return address[:2], address[2:]
    return None
