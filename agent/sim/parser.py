"""Command lines as the module reads them: ``AT`` prefix, several commands joined by ``;``, four forms.

Pure text handling of the modem's own; the host's AT core is not used here, so tests stay independent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Form = Literal["exec", "read", "test", "set"]


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a line: ``name`` upper-case (``+QGPS``, ``E``, ``I``, ``""`` for a bare ``AT``)."""

    name: str
    form: Form
    args: tuple[str, ...]
    text: str


_SPACES_OUTSIDE_QUOTES = re.compile(r'\s+(?=(?:[^"]*"[^"]*")*[^"]*$)')
_EXTENDED = re.compile(r"^([+&][A-Za-z][A-Za-z0-9]*|[A-Za-z](?=\d*$)|&[A-Za-z](?=\d*$))(.*)$")


def split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_args(text: str) -> tuple[str, ...]:
    """Comma-separated arguments, quotes removed (``"outport","usbnmea"`` -> ``("outport", "usbnmea")``)."""
    return tuple(part.strip().strip('"') for part in split_outside_quotes(text, ","))


def parse_line(text: str) -> list[Command] | None:
    """The commands of one line (``AT+CPIN?;+CSQ``), or None when the line is not an AT command at all.

    Spaces outside quotes are ignored, as the module does (transcript 4.5: ``AT+QGPS LOC?`` reached QGPSLOC).
    """
    compact = _SPACES_OUTSIDE_QUOTES.sub("", text)
    if compact[:2].upper() != "AT":
        return None
    body = compact[2:]
    if not body:
        return [Command("", "exec", (), "")]
    commands = []
    for segment in split_outside_quotes(body, ";"):
        command = _parse_segment(segment)
        if command is None:
            return None
        commands.append(command)
    return commands


def _parse_segment(segment: str) -> Command | None:
    match = _EXTENDED.match(segment)
    if match is None:
        return None
    name, rest = match.group(1).upper(), match.group(2)
    text = name + rest
    if not name.startswith("+"):  # basic command: E0, I, V1, &W, Z
        return Command(name, "set" if rest else "exec", (rest,) if rest else (), text)
    if rest == "":
        return Command(name, "exec", (), text)
    if rest == "?":
        return Command(name, "read", (), text)
    if rest == "=?":
        return Command(name, "test", (), text)
    if rest.startswith("="):
        return Command(name, "set", parse_args(rest[1:]), text)
    return None
