"""The sans-I/O AT connection: command bytes out, events in.

Strategy:
- Framing: CR and LF each end a line, so CRLF, CR alone and LF alone all work and a CR LF pair never
  needs lookahead (the LF just ends an empty line). Lines holding only spaces, tabs or NULs are skipped.
  Because no decision ever looks past a line end, the events do not depend on how the bytes were chunked.
- The ``> `` prompt is the one token without a line end; it is looked for only at the start of a line
  and only while a prompt-expecting command is pending, and a lone ``>`` waits for the next byte.
- Lines are decoded as UTF-8 with ``errors="replace"``: binary garbage becomes U+FFFD characters inside
  a line, never an exception (verbose ``+CME ERROR`` texts and operator names may be UTF-8).
- Memory is bounded: a line longer than ``max_line_bytes`` raises ``RemoteProtocolError`` once, then the
  rest of that line is discarded up to the next CR/LF. After ``next_event`` returns ``NEED_DATA`` at most
  ``max_line_bytes`` bytes stay buffered.
- Routing while a command is pending: its echo -> ``Echo``; a final result -> ``Response``; a ``+X:`` line ->
  part of the response when ``X`` is one of the command's prefixes, else ``Urc``; a plain line -> part of the
  response for prefix-less commands (``ATI``) unless it is a known plain URC (``RDY``), else ``Urc``.
  With nothing pending, a final result is ``Stray`` and anything else is ``Urc``.
"""

from __future__ import annotations

import re

from agent.at.events import (
    NEED_DATA,
    Command,
    Echo,
    Event,
    Final,
    FinalKind,
    NeedData,
    Prompt,
    Response,
    Stray,
    Urc,
)
from agent.errors import LocalProtocolError, RemoteProtocolError

#: Plain (no ``+X:``) lines that modules send unsolicited; never part of a response.
KNOWN_PLAIN_URCS = frozenset(
    {"RDY", "APP RDY", "POWERED DOWN", "NORMAL POWER DOWN", "RING", "SMS DONE", "PB DONE", "CALL READY",
     "UNDER-VOLTAGE POWER DOWN", "OVER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNING", "OVER-VOLTAGE WARNING"}
)

_PLAIN_FINALS: dict[str, FinalKind] = {
    "OK": "OK",
    "ERROR": "ERROR",
    "CONNECT": "CONNECT",
    "NO CARRIER": "NO_CARRIER",
    "COMMAND NOT SUPPORT": "ERROR",  # Huawei-style non-standard error final (test-rigs F9)
}
_NUMERIC_FINALS: dict[str, FinalKind] = {"0": "OK", "1": "CONNECT", "3": "NO_CARRIER", "4": "ERROR"}
_CODED_FINALS: tuple[tuple[str, FinalKind], ...] = (("+CME ERROR:", "CME"), ("+CMS ERROR:", "CMS"))

_LINE_END = re.compile(rb"[\r\n]")
_BLANK_RUN = re.compile(rb"[\r\n]*")
_PLUS_PREFIX = re.compile(r"(\+[A-Za-z0-9_]+)\s*:", re.ASCII)
_PADDING = " \t\v\f\x00"  # modules pad with NULs around power-up; such lines count as blank
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
_PROMPT = b"> "
_SMS_END = b"\x1a"  # Ctrl-Z ends a prompted payload
_ESCAPE = b"\x1b"  # ESC cancels it


def parse_final(line: str, *, numeric: bool = False) -> Final | None:
    """The final result ``line`` stands for, or None if it is not a final result.

    Args:
        line: a stripped line.
        numeric: also accept V0 numeric results (``0`` OK, ``1`` CONNECT, ``3`` NO CARRIER, ``4`` ERROR).
    """
    upper = line.upper()
    kind = _PLAIN_FINALS.get(upper) or (_NUMERIC_FINALS.get(upper) if numeric else None)
    if kind is None and upper.startswith("CONNECT "):
        kind = "CONNECT"  # CONNECT <rate>
    if kind is not None:
        return Final(kind, None, line)
    for marker, coded_kind in _CODED_FINALS:
        if upper.startswith(marker):
            detail = line[len(marker):].strip()
            numeric_code = detail.isascii() and detail.isdigit() and len(detail) <= 9  # no huge-int parsing
            return Final(coded_kind, int(detail) if numeric_code else None, line)
    return None


def plus_prefix(line: str) -> str | None:
    """The upper-cased ``+X`` of a ``+X:`` line (a space after the colon is optional), or None."""
    match = _PLUS_PREFIX.match(line)
    return match.group(1).upper() if match else None


def _check_command(command: Command) -> None:
    text = command.text
    if not text.upper().startswith("AT"):
        raise LocalProtocolError("a command must start with AT")
    if _NOT_PRINTABLE_ASCII.search(text):
        raise LocalProtocolError("a command may hold printable ASCII only (no CR, LF or control bytes)",
                                 command=command.name)
    if command.prefix is not None and not command.prefix.startswith("+"):
        raise LocalProtocolError("a command prefix must start with '+'", command=command.name)


class Connection:
    """The AT protocol state of one port: at most one command pending, a bounded receive buffer.

    Args:
        max_line_bytes: the longest line accepted; longer lines raise ``RemoteProtocolError`` once.
        numeric_results: also recognise V0 numeric final results (off by default: a bare ``0`` may be an info
            line of a prefix-less command).
    """

    def __init__(self, max_line_bytes: int = 4096, *, numeric_results: bool = False) -> None:
        if max_line_bytes < 2:
            raise ValueError("max_line_bytes must be at least 2")
        self.max_line_bytes = max_line_bytes
        self._numeric = numeric_results
        self._buffer = bytearray()
        self._discarding = False
        self._pending: Command | None = None
        self._prefixes: frozenset[str] = frozenset()
        self._lines: list[str] = []
        self._echo_seen = False
        self._prompt_seen = False
        self._data_allowed = False

    # -- caller side ---------------------------------------------------------------------------------------
    @property
    def pending(self) -> Command | None:
        """The command awaiting its final result, if any."""
        return self._pending

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buffer)

    def send(self, command: Command) -> bytes:
        """Make ``command`` the pending one and return the bytes to write.

        Raises:
            LocalProtocolError: a command is already pending, or the text holds CR, LF or other control bytes.
        """
        if self._pending is not None:
            raise LocalProtocolError("a command is already pending", pending=self._pending.name)
        _check_command(command)
        self._forget_command()
        self._pending = command
        self._prefixes = command.accepted_prefixes
        return command.text.encode("ascii") + b"\r"

    def send_data(self, payload: bytes, terminator: bytes = _SMS_END) -> bytes:
        """Return the bytes that answer a ``Prompt``: ``payload`` then ``terminator`` (Ctrl-Z by default).

        Raises:
            LocalProtocolError: no prompt was received for the pending command, or the payload holds a
                byte that would end (Ctrl-Z) or cancel (ESC) the input early.
        """
        if not self._data_allowed:
            raise LocalProtocolError("payload sent without a prompt from the modem")
        if terminator and (_SMS_END in payload or _ESCAPE in payload):
            raise LocalProtocolError("payload holds Ctrl-Z or ESC, which would end it early")
        self._data_allowed = False
        return bytes(payload) + terminator

    def cancel(self) -> None:
        """Forget the pending command (the caller timed it out); its late lines become ``Urc``/``Stray``."""
        self._forget_command()

    def reset(self) -> None:
        """Drop everything: buffered bytes and the pending command (port reopened, modem rebooted)."""
        self._forget_command()
        self._buffer.clear()
        self._discarding = False

    def _forget_command(self) -> None:
        self._pending = None
        self._prefixes = frozenset()
        self._lines = []
        self._echo_seen = False
        self._prompt_seen = False
        self._data_allowed = False

    # -- modem side ----------------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the port, in any chunking. Empty bytes are ignored (serial ports have no EOF)."""
        self._buffer += data

    def next_event(self) -> Event | NeedData:
        """The next event from the buffered bytes, or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: a line exceeded ``max_line_bytes`` (raised once per such line; call
                again to go on with the bytes after it).
        """
        while True:
            if self._discarding and not self._discard_rest_of_line():
                return NEED_DATA
            self._skip_line_ends()
            if self._awaiting_prompt():
                if self._buffer.startswith(_PROMPT):
                    del self._buffer[: len(_PROMPT)]
                    return self._on_prompt()
                if self._buffer == _PROMPT[:1]:
                    return NEED_DATA
            raw = self._maybe_extract_line()
            if raw is None:
                return NEED_DATA
            text = raw.decode("utf-8", errors="replace").strip(_PADDING)
            if text:
                event = self._route(text)
                if event is not None:
                    return event

    def _discard_rest_of_line(self) -> bool:
        """Drop the tail of an over-long line; True once its line end was found."""
        match = _LINE_END.search(self._buffer)
        if match is None:
            self._buffer.clear()
            return False
        del self._buffer[: match.end()]
        self._discarding = False
        return True

    def _skip_line_ends(self) -> None:
        match = _BLANK_RUN.match(self._buffer)
        if match is not None and match.end():
            del self._buffer[: match.end()]

    def _awaiting_prompt(self) -> bool:
        return self._pending is not None and self._pending.expects_prompt and not self._prompt_seen

    def _on_prompt(self) -> Prompt:
        self._prompt_seen = True
        self._data_allowed = True
        return Prompt()

    def _maybe_extract_line(self) -> bytes | None:
        limit = self.max_line_bytes
        match = _LINE_END.search(self._buffer, 0, limit + 1)
        if match is None:
            if len(self._buffer) > limit:
                del self._buffer[: limit + 1]
                self._discarding = True
                raise RemoteProtocolError("modem sent a line longer than the limit; discarding it",
                                          max_line_bytes=limit)
            return None
        line = bytes(self._buffer[: match.start()])
        del self._buffer[: match.end()]
        return line

    # -- routing -------------------------------------------------------------------------------------------
    def _route(self, text: str) -> Event | None:
        final = parse_final(text, numeric=self._numeric)
        command = self._pending
        if command is None:
            return Stray(text) if final is not None else Urc(text)
        if self._is_echo(text, command):
            self._echo_seen = True
            return Echo(text)
        if final is not None:
            return self._complete(command, final)
        if self._belongs(text, command):
            self._lines.append(text)
            return None
        return Urc(text)

    def _is_echo(self, text: str, command: Command) -> bool:
        return not self._echo_seen and not self._lines and text.upper() == command.text.strip().upper()

    def _belongs(self, text: str, command: Command) -> bool:
        prefix = plus_prefix(text)
        if prefix is not None:
            return prefix in self._prefixes
        return command.prefix is None and text.upper() not in KNOWN_PLAIN_URCS

    def _complete(self, command: Command, final: Final) -> Response:
        response = Response(command, tuple(self._lines), final)
        self._forget_command()
        return response
