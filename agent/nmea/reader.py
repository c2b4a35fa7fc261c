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

import collections
import itertools
import operator
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

from agent.errors import UsageError
from agent.nmea.checksum import suffix_xors

# NMEA 0183 says 82, but real receivers exceed it (MTK $PMTKCHN: 190, Quectel with 6-decimal minutes: 90).
DEFAULT_MAX_SENTENCE_BYTES: Final = 256
DECODED_TYPES: Final = frozenset({"GGA", "RMC", "GNS", "GLL", "GSA", "GSV", "VTG", "ZDA"})

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
        # CR and LF both end a sentence; working on the whole chunk at once keeps the per-sentence work small.
        # CR LF becomes one LF here so that the usual input has no blank lines (see _whole_sentences).
        stream = bytes(data)
        if b"\r" in stream:
            stream = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._overlong:
            lines = stream.split(b"\n")
            lines[0] = self._finish_overlong(lines[0], ended=len(lines) > 1)
        else:
            stream, self._open = self._open + stream, b""
            end = stream.rfind(b"\n")
            batch = self._whole_sentences(stream[:end]) if end >= 0 else None
            if batch is not None:  # the common case, checked for the whole chunk at once
                last = stream[end + 1 :]
                if last:
                    self._split_line(last, [], ended=False)
                if not self._take_intact(*batch):
                    self._check_batch(*batch)
                return
            lines = stream.split(b"\n")
        last = lines.pop()  # not terminated yet
        max_bytes = self.max_sentence_bytes
        frames: list[bytes] = []
        for line in lines:
            if line[:1] == b"$" and len(line) <= max_bytes and line.find(b"$", 1) < 0:
                frames.append(line[1:])  # exactly one whole sentence on the line
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

    def take_all(self) -> list[Sentence]:
        """Every sentence complete so far, at once (cheaper than iterating when a caller wants them all)."""
        events = list(self._events)
        self._events.clear()
        return events

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

    def _whole_sentences(self, complete: bytes) -> tuple[bytes, list[str]] | None:
        """The frames of ``complete`` (terminated lines) when every line is exactly one sentence of printable
        ASCII within the bound, as ``(frames joined by LF, frames as text)``; None for any other input, which
        then takes the line-by-line path. Counting ``$`` and line breaks decides it without a Python loop."""
        lines = complete.strip(b"\n")  # a blank line inside makes the count of "\n$" fall short
        if not lines:
            return b"", []
        breaks = lines.count(b"\n")
        if lines[:1] != b"$" or lines.count(b"\n$") != breaks:  # every line starts with '$' ...
            return None
        joined = lines.replace(b"$", b"")
        if len(lines) - len(joined) != breaks + 1 or joined.translate(None, _PRINTABLE_ASCII_AND_LF):
            return None  # ... and holds no other '$' and only printable ASCII
        texts = joined.decode("ascii").split("\n")
        if max(map(len, texts)) >= self.max_sentence_bytes:  # the bound counts the '$'
            return None
        return joined, texts

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
        """Check complete frames (the bytes between ``$`` and the terminator) that did not take the fast path
        of :meth:`_whole_sentences`. A batch holding only printable ASCII is decoded at once; otherwise each
        frame is looked at, and one with other bytes is replaced by a placeholder that is malformed."""
        joined = b"\n".join(frames)
        if joined.translate(None, _PRINTABLE_ASCII):
            texts = [_printable_text(frame) for frame in frames]
        else:
            texts = joined.decode("ascii").split("\n") if frames else []
        self._check_batch(joined, texts)

    def _take_intact(self, joined: bytes, texts: list[str]) -> bool:
        """Take a batch in which every frame is intact (``<body>*HH`` with the right checksum), using only
        operations that run over the whole batch in C; return False, having changed nothing, for any other
        batch, which :meth:`_check_batch` then takes frame by frame.

        Why: a serial read holds dozens of sentences and in practice all of them are intact, so this makes
        the reader's per-sentence cost a few C-level steps. The checks are the same as in ``_check_batch``
        (tests compare the two): every frame ends in ``*`` and two hex digits (the keys of ``_FRAME_XOR``) and
        the batch holds as many ``*`` as frames, so each frame has exactly one, in the right place; checksums
        come from ``suffix_xors`` of the batch, compared for all frames at once (see ``_FRAME_XOR``).
        """
        count = len(texts)
        if not count or joined.count(b"*") != count:
            return False
        expected = list(map(_FRAME_XOR.get, map(_LAST_THREE, texts)))  # None where a frame has no "*HH" end
        # Frame k spans [begins[k], begins[k + 1] - 1) in ``joined + LF``: the XOR of the suffixes at the two
        # begins is the frame's XOR with the LF after it.
        tails = suffix_xors(joined + b"\n")
        begins = map(operator.add, itertools.accumulate(map(len, texts), initial=0), itertools.count())
        suffixes = _ITEMS(*begins)(tails)
        if list(map(operator.xor, suffixes, suffixes[1:])) != expected:
            return False
        # Each frame's key: usually its first six characters, a five-character address and a comma, checked
        # on the few distinct keys; otherwise the address itself, found frame by frame.
        keys = list(map(_FIRST_SIX, texts))
        counts = collections.Counter(keys)
        if all(key.find(",") == 5 for key in counts):
            wanted = self._count_addresses(counts, _ALL_BUT_LAST)
        else:
            keys = [text[:-3].partition(",")[0] for text in texts]
            wanted = self._count_addresses(collections.Counter(keys), str)
        if wanted:
            append = self._events.append
            new = tuple.__new__
            chosen = list(map(wanted.__contains__, keys))  # the loop below sees only the wanted ones
            pairs = zip(itertools.compress(keys, chosen), itertools.compress(texts, chosen), strict=True)
            for key, text in pairs:
                talker, kind, category = wanted[key]
                append(new(Sentence, (talker, kind, text[:-3], category is _PROPRIETARY)))
        return True

    def _count_addresses(self, counts: collections.Counter[str],
                         address_of: Callable[[str], str]) -> dict[str, tuple[str, str, str]]:
        """Count the sentences of each key (``address_of(key)`` is the address); return the keys whose
        sentences are returned, with their classification."""
        counters = self.counters
        kinds = self.kinds
        wanted = {}
        for key, count in counts.items():
            known = _known_address(address_of(key))
            category = known[2]
            if category is _MALFORMED:
                counters.malformed += count
                continue
            counters.accepted += count
            if category is _PROPRIETARY:
                counters.proprietary += count
            elif category is _UNKNOWN:
                counters.unknown += count
            if kinds is None or known[1] in kinds:
                wanted[key] = known
        return wanted

    def _check_batch(self, joined: bytes, texts: list[str]) -> None:
        """Check the frames ``texts``, joined by LF in ``joined``; queue the good ones in order."""
        tails = suffix_xors(joined)
        append = self._events.append
        allow_missing = self.allow_missing_checksum
        wanted = self.kinds
        addresses = _ADDRESSES
        hex_pairs = _HEX_TEXT_PAIRS
        new = tuple.__new__  # Sentence(...) goes through a Python-level __new__; this is the same, faster
        malformed = bad_checksum = missing_checksum = proprietary = unknown = accepted = 0
        start = 0  # where the frame begins in ``joined``
        for text in texts:
            begin, start = start, start + len(text) + 1
            star = text.find("*")
            if star < 0:
                if not allow_missing:
                    missing_checksum += 1
                    continue
                body = text
            elif star == len(text) - 3:
                sent = hex_pairs.get(text[-2:])
                if sent is None:  # '*' not followed by two hex digits
                    malformed += 1
                    continue
                if tails[begin] ^ tails[begin + star] != sent:
                    bad_checksum += 1
                    continue
                body = text[:star]
            else:  # a '*' anywhere else (or a placeholder for a frame with bad bytes)
                malformed += 1
                continue
            comma = body.find(",")
            address = body if comma < 0 else body[:comma]
            known = addresses.get(address) or _classify_address(address)
            talker, kind, category = known
            if category is _MALFORMED:
                malformed += 1
                continue
            accepted += 1
            if category is _PROPRIETARY:
                proprietary += 1
                if wanted is None or kind in wanted:
                    append(new(Sentence, ("", kind, body, True)))
                continue
            if category is _UNKNOWN:
                unknown += 1
            if wanted is None or kind in wanted:
                append(new(Sentence, (talker, kind, body, False)))
        counters = self.counters
        counters.malformed += malformed
        counters.bad_checksum += bad_checksum
        counters.missing_checksum += missing_checksum
        counters.proprietary += proprietary
        counters.unknown += unknown
        counters.accepted += accepted


_PRINTABLE_ASCII: Final = bytes(range(0x20, 0x7F))
_PRINTABLE_ASCII_AND_LF: Final = _PRINTABLE_ASCII + b"\n"
_DECODED: Final = "decoded"
_UNKNOWN: Final = "unknown"
_PROPRIETARY: Final = "proprietary"
_MALFORMED: Final = "malformed"
# A receiver uses a handful of addresses, so their classification is remembered (bounded: garbage that
# passes the checksum by chance must not grow it without limit).
_ADDRESSES: dict[str, tuple[str, str, str]] = {}
_MAX_ADDRESSES: Final = 256
_HEX_TEXT_PAIRS: Final = {pair.decode(): value for pair, value in _HEX_PAIRS.items()}
# The XOR of a frame ``<body>*HH`` and the LF after it is the body's checksum XOR ``*``, the two digits and
# LF; so a frame is intact exactly when that XOR equals this value for its two digits (either case).
_FRAME_XOR: Final = {
    "*" + pair.decode(): value ^ _STAR ^ pair[0] ^ pair[1] ^ 0x0A for pair, value in _HEX_PAIRS.items()
}
_LAST_THREE: Final = operator.itemgetter(slice(-3, None))
_FIRST_SIX: Final = operator.itemgetter(slice(6))
_ALL_BUT_LAST: Final = operator.itemgetter(slice(-1))
_ITEMS: Final = operator.itemgetter


def _printable_text(frame: bytes) -> str:
    """The frame as text. A frame holding anything but printable ASCII becomes as many ``*`` as it has
    bytes: malformed by the ``*`` rule, and as long as the frame, so the offsets into the batch still hold."""
    if frame.translate(None, _PRINTABLE_ASCII):
        return "*" * len(frame)
    return frame.decode("ascii")


def _known_address(address: str) -> tuple[str, str, str]:
    return _ADDRESSES.get(address) or _classify_address(address)


def _classify_address(address: str) -> tuple[str, str, str]:
    """``(talker, kind, category)`` of an address; remembered for the next sentence."""
    if not address.isalnum() or not address.isascii():
        known = ("", "", _MALFORMED)
    elif address[0] == "P" and len(address) > 1:
        known = ("", address[1:], _PROPRIETARY)
    elif len(address) == 5:
        kind = address[2:]
        known = (address[:2], kind, _DECODED if kind in DECODED_TYPES else _UNKNOWN)
    else:
        known = ("", "", _MALFORMED)
    if len(_ADDRESSES) < _MAX_ADDRESSES:
        _ADDRESSES[address] = known
    return known
