"""The control protocol (pure core): the wire format, the op table, argument checks, authorisation rules,
encoding, and connection-slot bookkeeping. No sockets, no threads, no clock: :mod:`agent.control` serves it.

This module holds the requests, the op table, parsing, authorisation and encoding; the framing (lines and
stream frames) is :mod:`agent.control_framing`, the argument checks :mod:`agent.control_args`, and the slots
:mod:`agent.control_slots`. Every name is importable from here as well.

Wire format (one request per connection, one JSON object per line, UTF-8)::

    -> {"v": 1, "op": "location.off", "args": {"wait_s": 10}}
    <- {"ok": true, "result": {...}}
    <- {"ok": false, "error": {"kind": "PermissionDenied", "message": "..."}}

``kind`` is the class name of the :mod:`agent.errors` exception that refused the request.

Who may do what: anyone who can connect (socket mode 0660, so the owner and the group) may send read ops;
mutating ops need uid 0, the uid the server runs as (it can already do anything the agent can), or membership
of the configured group. Everything a client sends is checked here, before the handler runs, in this order:
framing, size, JSON (a key given twice, at any depth, is refused: the last one would silently win), the
envelope (fields, version, a known op), then the peer's right to that op, and only then the op's arguments,
so a peer learns nothing about the arguments of an op it may not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent import errors
from agent.control_args import (
    CORRECTIONS,
    DEFAULT_WAIT_S,
    MAX_LOG_LIMIT,
    MAX_WAIT_S,
    POLICY_FORMATS,
    PURPOSE,
    PURPOSE_RULE,
    UPLOAD_ID,
    ArgCheck,
    check_correction,
    check_correction_value,
    check_flag,
    check_limit,
    check_policy_format,
    check_purpose,
    check_record_type,
    check_region,
    check_time_ms,
    check_wait_seconds,
    check_what,
)
from agent.control_framing import (
    FRAME_DATA,
    FRAME_END,
    FRAME_HEADER,
    FRAME_PROGRESS,
    MAX_FRAME_BYTES,
    StreamOut,
    StreamReply,
    decode_frame_header,
    decode_progress,
    encode_frame,
    encode_line,
    encode_progress,
    encode_stream_start,
    is_stream_start,
)
from agent.control_slots import Slots
from agent.errors import AgentError, ControlError, PermissionDenied, UsageError

__all__ = ["CORRECTIONS", "DEFAULT_WAIT_S", "FRAME_DATA", "FRAME_END", "FRAME_HEADER", "FRAME_PROGRESS",
           "MAX_FRAME_BYTES", "MAX_LOG_LIMIT", "MAX_WAIT_S", "MUTATING_OPS", "OPS", "OP_TABLE", "POLICY_FORMATS",
           "PROTOCOL_VERSION", "PURPOSE", "PURPOSE_RULE", "READ_OPS", "UPLOAD_ID", "ArgCheck", "Handler", "OpSpec",
           "Peer", "Request", "Slots", "StreamOut", "StreamReply", "authorize", "check_args", "check_correction",
           "check_limit", "check_policy_format", "check_purpose", "check_record_type", "check_region",
           "check_wait_seconds", "check_what", "decode_frame_header", "decode_progress", "decode_reply",
           "encode_error", "encode_frame", "encode_progress", "encode_request", "encode_result",
           "encode_stream_start", "error_from_reply", "is_privileged", "is_stream_start", "parse_envelope",
           "parse_request", "parse_status_groups", "read_request"]

PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class Peer:
    """The process on the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """A request that passed validation: a known op with well-typed arguments."""

    op: str
    args: Mapping[str, Any] = field(default_factory=dict)
    version: int = PROTOCOL_VERSION


Handler = Callable[[Request, Peer], "dict[str, Any] | StreamReply"]


# -- the op table: to add an op, add a line here (and serve it in the handler) -------------------------

@dataclass(frozen=True, slots=True)
class OpSpec:
    """One op: whether it changes the agent's state (then it needs privilege), and the arguments it takes."""

    mutating: bool
    args: Mapping[str, ArgCheck] = field(default_factory=dict)
    required: frozenset[str] = frozenset()


OP_TABLE: dict[str, OpSpec] = {
    "status": OpSpec(mutating=False),
    "location.status": OpSpec(mutating=False, args={"check": check_flag, "wait_s": check_wait_seconds}),
    "policy.show": OpSpec(mutating=False, args={"format": check_policy_format, "diff": check_flag}),
    "policy.accept": OpSpec(mutating=True),
    "correct": OpSpec(mutating=True, args={"what": check_what, "value": check_correction_value},
                      required=frozenset({"what", "value"})),
    "incidents": OpSpec(mutating=False, args={"since_ms": check_time_ms}),
    "consent.list": OpSpec(mutating=False),
    "log.verify": OpSpec(mutating=False),
    "uploads": OpSpec(mutating=False, args={"since_ms": check_time_ms, "purpose": check_purpose, "failed": check_flag}),
    "why": OpSpec(mutating=False, args={"purpose": check_purpose}),
    "location.on": OpSpec(mutating=True, args={"wait_s": check_wait_seconds}),
    "location.off": OpSpec(mutating=True, args={"wait_s": check_wait_seconds}),
    "consent.grant": OpSpec(mutating=True, args={"purpose": check_purpose}, required=frozenset({"purpose"})),
    "consent.withdraw": OpSpec(mutating=True, args={"purpose": check_purpose}, required=frozenset({"purpose"})),
    "consent.cross_border": OpSpec(mutating=True, args={"region": check_region, "granted": check_flag},
                                   required=frozenset({"region", "granted"})),
    "consent.guardian": OpSpec(mutating=True, args={"granted": check_flag}, required=frozenset({"granted"})),
    "identity.reset": OpSpec(mutating=True),
    # export answers with a stream (see StreamReply): the daemon never writes to a path the user names
    "export": OpSpec(mutating=True),
    "erase": OpSpec(mutating=True, args={"all": check_flag, "before_ms": check_time_ms, "purpose": check_purpose}),
    "log.show": OpSpec(mutating=False, args={"type": check_record_type, "since_ms": check_time_ms,
                                             "limit": check_limit}),
}

OPS: frozenset[str] = frozenset(OP_TABLE)
READ_OPS: frozenset[str] = frozenset(op for op, spec in OP_TABLE.items() if not spec.mutating)
MUTATING_OPS: frozenset[str] = OPS - READ_OPS


# -- pure core: parsing, validation, authorisation, encoding -------------------------------------------

def read_request(line: bytes, peer: Peer, *, group_gid: int | None, server_uid: int) -> Request:
    """What the server does with a request line: the envelope, then the peer's right to the op, then the
    op's arguments. Raises UsageError, ControlError or PermissionDenied naming the problem."""
    op, raw_args = parse_envelope(line)
    authorize(op, peer, group_gid=group_gid, server_uid=server_uid)
    return Request(op=op, args=check_args(op, raw_args))


def parse_request(line: bytes) -> Request:
    """Decode and validate one request line, without credentials; raises UsageError or ControlError."""
    op, raw_args = parse_envelope(line)
    return Request(op=op, args=check_args(op, raw_args))


def parse_envelope(line: bytes) -> tuple[str, Any]:
    """The op (known) and the arguments exactly as sent (unchecked) of one request line."""
    message = _decode_json(line)
    if not isinstance(message, dict):
        raise ControlError("request must be a JSON object")
    unknown = sorted(set(message) - {"v", "op", "args"})
    if unknown:
        raise ControlError(f"request has unknown fields: {', '.join(_clip(key) for key in unknown)}")
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ControlError(f"request version must be {PROTOCOL_VERSION}")
    op = message.get("op")
    if not isinstance(op, str):
        raise ControlError("request 'op' must be a string")
    if op not in OP_TABLE:
        raise UsageError(f"unknown op '{_clip(op)}'")
    return op, message.get("args")


def _decode_json(line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlError("request is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_object_without_repeats)
    except json.JSONDecodeError:
        raise ControlError("request is not valid JSON") from None
    except RecursionError:
        raise ControlError("request is nested too deeply") from None
    except ValueError:  # valid JSON, but an integer longer than Python converts (sys.get_int_max_str_digits)
        raise ControlError("request holds a number too long to read") from None


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of repeated keys: {"op":"status","op":"location.on"} would run location.on.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ControlError(f"request repeats the key '{_clip(key)}'")
        result[key] = value
    return result


def check_args(op: str, args: Any) -> dict[str, Any]:
    """The arguments of a known op, checked and converted; raises UsageError naming the problem."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise UsageError("request 'args' must be a JSON object")
    spec = OP_TABLE[op]
    unknown = sorted(set(args) - set(spec.args))
    if unknown:
        raise UsageError(f"op '{op}' does not take: {', '.join(_clip(key) for key in unknown)}")
    missing = sorted(spec.required - set(args))
    if missing:
        raise UsageError(f"op '{op}' needs: {', '.join(missing)}")
    return {key: spec.args[key](key, value) for key, value in args.items()}


def _clip(text: str, limit: int = 40) -> str:
    """Echo a client-sent name in an error safely: printable and short."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def is_privileged(peer: Peer, server_uid: int) -> bool:
    """Root, or the uid the agent runs as: it can already do anything the agent can."""
    return peer.uid in (0, server_uid)


def authorize(op: str, peer: Peer, *, group_gid: int | None, server_uid: int) -> None:
    """Raise PermissionDenied unless ``peer`` may send ``op`` (a known op)."""
    if not OP_TABLE[op].mutating or is_privileged(peer, server_uid):
        return
    if group_gid is not None and (peer.gid == group_gid or group_gid in peer.groups):
        return
    who = "root or members of the agent's control group" if group_gid is not None else "root"
    raise PermissionDenied(f"'{op}' changes the agent's state; only {who} may do that", uid=peer.uid)


def encode_result(result: Mapping[str, Any]) -> bytes:
    return encode_line({"ok": True, "result": result})


def encode_error(exc: AgentError) -> bytes:
    return encode_line({"ok": False, "error": {"kind": type(exc).__name__, "message": str(exc)}})


def encode_request(op: str, args: Mapping[str, Any] | None = None) -> bytes:
    """A client's request line."""
    return encode_line({"v": PROTOCOL_VERSION, "op": op, "args": dict(args or {})})



def decode_reply(line: bytes) -> dict[str, Any]:
    """The result of a reply line, or the AgentError it carries, raised."""
    try:
        reply = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ControlError("the agent sent a reply that is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError("the agent sent a malformed reply")
    if reply["ok"]:
        result = reply.get("result")
        if not isinstance(result, dict):
            raise ControlError("the agent sent a reply without a result object")
        return result
    raise error_from_reply(reply.get("error"))


def error_from_reply(error: Any) -> AgentError:
    """Rebuild the exception a reply carries (ControlError when the kind is unknown)."""
    if not isinstance(error, dict):
        return ControlError("the agent refused the request without saying why")
    kind, message = error.get("kind"), error.get("message")
    text = message if isinstance(message, str) else "the agent refused the request"
    cls = getattr(errors, kind, None) if isinstance(kind, str) else None
    if not (isinstance(cls, type) and issubclass(cls, AgentError)) or cls in _NEEDS_EXTRA_ARGS:
        cls = ControlError
    return cls(text)


_NEEDS_EXTRA_ARGS: frozenset[type] = frozenset({errors.ProtocolError, errors.LogCorrupt})


def parse_status_groups(text: str) -> tuple[int, ...]:
    for line in text.splitlines():
        if line.startswith("Groups:"):
            return tuple(int(word) for word in line.split()[1:] if word.isdigit())
    return ()
