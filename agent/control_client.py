"""The one client of the control socket: privacyctl, the demo, tests and rigs all send requests through here.

It stays light (the protocol module, the socket half in :mod:`agent.control_wire`, the error tree), so that
``privacyctl`` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.control_protocol import (
    FRAME_DATA,
    FRAME_END,
    decode_frame_header,
    decode_progress,
    decode_reply,
    encode_request,
    is_stream_start,
)
from agent.control_wire import ReplyTooLarge, StreamReader, exchange, open_stream
from agent.errors import AgentUnreachable, ControlError


def request(path: Path | str, op: str, args: Mapping[str, Any] | None = None,
            timeout_s: float = 15.0) -> dict[str, Any]:
    """Send one request and return its result; raises the AgentError the agent replied with.

    AgentUnreachable when there is no socket, nobody listens, or no reply arrives within ``timeout_s``
    (a busy agent is retried with backoff until then, see :func:`agent.control_wire.exchange`).
    """
    line = encode_request(op, args)
    try:
        reply = exchange(str(path), line, timeout_s)
    except TimeoutError:
        raise AgentUnreachable(f"no reply from the agent within {timeout_s:g} s") from None
    except (EOFError, ReplyTooLarge) as exc:
        raise ControlError(str(exc)) from None
    except OSError as exc:
        raise AgentUnreachable(f"cannot reach the agent at {path}: {exc.strerror or 'connection failed'}") from exc
    return decode_reply(reply)


def stream(path: Path | str, op: str, args: Mapping[str, Any] | None, sink: Callable[[bytes], None], *,
           progress: Callable[[int, int], None] | None = None,
           timeout_s: float = 60.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a streaming op (``export``); hand each piece of the body to ``sink`` as it arrives (bounded memory:
    one frame, at most 1 MiB, at a time). Returns (the header's result, the trailer's result); raises the
    AgentError the agent answered with, before the stream or in its trailer.

    ``timeout_s`` bounds each wait for bytes, not the whole transfer (the agent sends progress as it works).
    """
    line = encode_request(op, args)
    try:
        with open_stream(str(path), line, timeout_s) as (first, reader):
            if not is_stream_start(first):
                decode_reply(first)  # raises the refusal it carries
                raise ControlError("the agent answered a streaming op without a stream")
            header = decode_reply(first)
            _read_frames(reader, sink, progress)
            return header, decode_reply(reader.line())
    except TimeoutError:
        raise AgentUnreachable(f"the agent sent nothing for {timeout_s:g} s") from None
    except (EOFError, ReplyTooLarge) as exc:
        raise ControlError(str(exc)) from None
    except OSError as exc:
        raise AgentUnreachable(f"cannot reach the agent at {path}: {exc.strerror or 'connection failed'}") from exc


def _read_frames(reader: StreamReader, sink: Callable[[bytes], None],
                 progress: Callable[[int, int], None] | None) -> None:
    while True:
        kind, size = decode_frame_header(reader.frame_header())
        if kind == FRAME_END:
            return
        payload = reader.exactly(size)
        if kind == FRAME_DATA:
            sink(payload)
        elif progress is not None:
            progress(*decode_progress(payload))
