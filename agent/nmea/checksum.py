"""NMEA 0183 checksum: XOR of every byte between ``$`` (or ``!``) and ``*``, written as two hex digits."""

from __future__ import annotations


def nmea_checksum(body: bytes | str) -> int:
    """The checksum of a sentence body (the text between ``$`` and ``*``, both excluded)."""
    data = body.encode("ascii") if isinstance(body, str) else body
    value = 0
    for byte in data:
        value ^= byte
    return value


def with_checksum(body: str) -> str:
    """A complete sentence ``$<body>*HH`` (upper-case hex), without line terminator."""
    return f"${body}*{nmea_checksum(body):02X}"
