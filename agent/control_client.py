"""The one client of the control socket: privacyctl, the demo, tests and rigs all send requests through here.

It stays light (the protocol module, the socket half in :mod:`agent.control_wire`, the error tree), so that
``privacyctl`` starts fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.control_protocol import decode_reply, encode_request
from agent.control_wire import ReplyTooLarge, exchange
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
