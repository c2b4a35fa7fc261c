"""The control protocol's framing (pure): one JSON object per line, and the frames of a streamed reply.

A streamed reply is a header line ``{"ok": true, "stream": true, "result": header}``, then frames (one kind byte
and a big-endian u32 length, then the payload: data, progress, end), then a trailer line.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import ControlError


def encode_line(message: Mapping[str, Any]) -> bytes:
    """One message on the wire: compact JSON, ASCII, one line."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


class StreamOut(Protocol):
    """Where a streaming op writes its body: bytes, and how far it has got (shown as a progress bar)."""

    def write(self, data: bytes) -> None: ...

    def progress(self, done: int, total: int) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamReply:
    """A handler's answer that is a byte stream (the export bundle) instead of one reply line.

    On the wire: a header line ``{"ok": true, "stream": true, "result": header}``, then frames (see
    :func:`encode_frame`), then an end frame and a trailer line: the ``produce`` call's result as an ordinary
    reply, or the error that stopped it. ``produce`` writes through a :class:`StreamOut`, whose ``write``
    raises ControlError once the client has gone: the producer stops, and the agent goes on unharmed."""

    header: Mapping[str, Any]
    produce: Callable[[StreamOut], dict[str, Any]]


# Stream frames: one kind byte and a big-endian u32 length, then the payload.
FRAME_HEADER = struct.Struct(">cI")
FRAME_DATA, FRAME_PROGRESS, FRAME_END = b"D", b"P", b"E"
MAX_FRAME_BYTES = 1 << 20
_PROGRESS = struct.Struct(">QQ")


def encode_stream_start(header: Mapping[str, Any]) -> bytes:
    return encode_line({"ok": True, "stream": True, "result": dict(header)})


def encode_frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame's header and payload (data frames of at most MAX_FRAME_BYTES: split larger writes)."""
    if kind not in (FRAME_DATA, FRAME_PROGRESS, FRAME_END) or len(payload) > MAX_FRAME_BYTES:
        raise ValueError("not a frame the protocol knows")
    return FRAME_HEADER.pack(kind, len(payload)) + payload


def encode_progress(done: int, total: int) -> bytes:
    return encode_frame(FRAME_PROGRESS, _PROGRESS.pack(max(0, done), max(0, total)))


def decode_frame_header(raw: bytes) -> tuple[bytes, int]:
    """(kind, payload length) of a frame header; ControlError for anything the agent never sends."""
    kind, size = FRAME_HEADER.unpack(raw)
    if kind not in (FRAME_DATA, FRAME_PROGRESS, FRAME_END) or size > MAX_FRAME_BYTES or \
            (kind == FRAME_PROGRESS and size != _PROGRESS.size) or (kind == FRAME_END and size != 0):
        raise ControlError("the agent sent a malformed stream frame")
    return kind, size


def decode_progress(payload: bytes) -> tuple[int, int]:
    done, total = _PROGRESS.unpack(payload)
    return int(done), int(total)


def is_stream_start(line: bytes) -> bool:
    """Whether a reply line opens a stream (a header line) rather than being the whole answer."""
    try:
        reply = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(reply, dict) and reply.get("ok") is True and reply.get("stream") is True
