"""gpsd-style capture files (``.log``), sans-I/O: strip what is not receiver output.

A capture is the receiver's raw output (CRLF or LF, sometimes binary) plus lines starting with ``#``: a header
(``# Name:``, ``# Submitter:``, ``# Location:`` ... which often hold personal data) and gpsfake's magic
comments. One of them matters for decoding: ``# Delay-Cookie: <c> <seconds>`` names a byte ``<c>`` that
gpsfake removes and treats as a write boundary (``tcp-torture.log`` splits sentences with ``|``).
:class:`CaptureFilter` removes comment lines and cookie bytes, so that what comes out is exactly what the
receiver sent; memory stays bounded whatever the chunking or line lengths.
"""

from __future__ import annotations

from typing import Final

_MAX_COMMENT_BYTES: Final = 256  # enough for any header line that matters; longer ones are skipped, not kept
_COOKIE_KEY: Final = b"delay-cookie:"


class CaptureFilter:
    """Feed raw capture bytes in any chunking; get back the receiver's bytes without comments and cookies."""

    def __init__(self) -> None:
        self.comment_lines = 0
        self.cookie: bytes | None = None
        self._at_line_start = True
        self._in_comment = False
        self._comment = bytearray()

    def feed(self, data: bytes | bytearray) -> bytes:
        """The receiver bytes contained in ``data``."""
        data = bytes(data)
        kept: list[bytes] = []
        position, end = 0, len(data)
        while position < end:
            if self._in_comment:
                position = self._skip_comment(data, position)
            elif self._at_line_start and data[position] == 0x23:  # '#'
                self._in_comment = True
                self.comment_lines += 1
                position += 1
            else:
                newline = data.find(b"\n", position)
                stop = end if newline < 0 else newline + 1
                kept.append(data[position:stop])
                self._at_line_start = newline >= 0
                position = stop
        payload = b"".join(kept)
        if self.cookie is not None:
            payload = payload.replace(self.cookie, b"")
        return payload

    def _skip_comment(self, data: bytes, position: int) -> int:
        newline = data.find(b"\n", position)
        stop = len(data) if newline < 0 else newline
        room = _MAX_COMMENT_BYTES - len(self._comment)
        if room > 0:
            self._comment += data[position : min(stop, position + room)]
        if newline < 0:
            return stop
        self._end_comment()
        return newline + 1

    def _end_comment(self) -> None:
        text = bytes(self._comment).strip()
        if text.lower().startswith(_COOKIE_KEY):
            value = text[len(_COOKIE_KEY) :].split()
            if value and len(value[0]) == 1 and value[0] not in (b"$", b"*", b","):
                self.cookie = value[0]
        self._comment.clear()
        self._in_comment = False
        self._at_line_start = True
