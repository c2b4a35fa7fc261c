"""Events of the sans-I/O AT core: what the caller sends (``Command``) and what the core hands back.

Strategy: every event is a frozen, slotted dataclass, so events compare by value (tests compare whole
event lists across chunkings) and cannot be changed after the core emitted them. ``NEED_DATA`` is a
one-member enum so that ``event is NEED_DATA`` narrows the type for mypy.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Final as TypingFinal
from typing import Literal

FinalKind = Literal["OK", "ERROR", "CME", "CMS", "CONNECT", "NO_CARRIER"]

#: Final result kinds that mean the command succeeded (``CONNECT`` opens a data phase, which is success).
SUCCESS_KINDS: TypingFinal = frozenset({"OK", "CONNECT"})


# The command word only: AT, a basic command letter (ATE, ATI, ATD), AT&<letter>, or an extended +NAME. What
# follows (digits, '=', '?', a dial string) can be an argument, and arguments may be personal.
_COMMAND_WORD = re.compile(r"AT(?:[+^$%#][A-Z0-9_]+|&[A-Z]|[A-Z])?", re.ASCII | re.IGNORECASE)


@functools.lru_cache(maxsize=512)  # parsers ask for the name of the same few commands over and over
def _command_name(text: str) -> str:
    """The first command of ``text`` without arguments: ``AT+QGPSCFG="autogps",0`` -> ``AT+QGPSCFG``."""
    match = _COMMAND_WORD.match(text.strip())
    return match.group(0).upper() if match else "(not an AT command)"


def _prefix_of(segment: str) -> str | None:
    """The info-line prefix a sub-command of a concatenated line answers with (``+CSQ`` for ``+CSQ``)."""
    segment = segment.strip().upper().removeprefix("AT")
    if not segment.startswith("+"):
        return None
    name = _command_name("AT" + segment).removeprefix("AT")
    return name or None


@dataclass(frozen=True, slots=True)
class Command:
    """One command line to send.

    Args:
        text: the command without the terminating CR, e.g. ``AT+QGPS?``.
        prefix: the ``+X`` that info lines of the reply start with (``+QGPS``), or None for commands that
            answer with bare lines (``ATI``, ``AT+CGSN``). Compared case-insensitively.
        timeout_s: how long the caller should wait for the final result (the core itself never reads a clock).
        expects_prompt: the modem answers with a ``> `` prompt before the final result (``AT+CMGS``).
    """

    text: str
    prefix: str | None
    timeout_s: float = 3.0
    expects_prompt: bool = False

    @property
    def name(self) -> str:
        """The command without arguments, safe to log: ``AT+QGPSCFG="autogps",0`` -> ``AT+QGPSCFG``."""
        return _command_name(self.text)

    @property
    def accepted_prefixes(self) -> frozenset[str]:
        """Upper-cased prefixes whose ``+X:`` lines belong to this command's response.

        For a concatenated line (``AT+CPIN?;+CSQ``) every sub-command's own prefix is accepted too, because
        the reply carries each sub-command's info lines (in any order, see transcript 4.9).
        """
        prefixes = {self.prefix.upper()} if self.prefix else set()
        segments = self.text.split(";")
        if len(segments) > 1:
            prefixes.update(p for p in map(_prefix_of, segments) if p)
        return frozenset(prefixes)


@dataclass(frozen=True, slots=True)
class Final:
    """The final result code of a command.

    ``kind`` is one of ``OK ERROR CME CMS CONNECT NO_CARRIER``; ``code`` is the numeric CME/CMS code, None
    for the other kinds and for verbose errors (``AT+CMEE=2``); ``text`` is the line as received.
    """

    kind: FinalKind
    code: int | None
    text: str

    @property
    def ok(self) -> bool:
        return self.kind in SUCCESS_KINDS


@dataclass(frozen=True, slots=True)
class Response:
    """The complete answer to a command: its info lines (echo and URCs removed) and its final result."""

    command: Command
    lines: tuple[str, ...]
    final: Final

    @property
    def ok(self) -> bool:
        """True for ``OK`` and ``CONNECT``."""
        return self.final.ok


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited line (or a line that does not belong to the pending command)."""

    line: str


@dataclass(frozen=True, slots=True)
class Echo:
    """The modem echoed the pending command back (echo is on, e.g. after a reboot)."""

    line: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The ``> `` prompt: the modem waits for the payload (``Connection.send_data``)."""


@dataclass(frozen=True, slots=True)
class Stray:
    """A final result with no command pending, e.g. a late ``OK`` after the caller timed the command out."""

    line: str


class NeedData(enum.Enum):
    """Type of the ``NEED_DATA`` sentinel."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``Connection.next_event`` when the buffered bytes hold no complete event.
NEED_DATA: TypingFinal = NeedData.NEED_DATA

Event = Response | Urc | Echo | Prompt | Stray
