"""The control protocol (pure core): the wire format, the op table, argument checks, authorisation rules,
encoding, and connection-slot bookkeeping. No sockets, no threads, no clock: :mod:`agent.control` serves it.

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
import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent import errors
from agent.errors import AgentError, ControlError, PermissionDenied, UsageError

PURPOSE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
PURPOSE_RULE = "a purpose name: lowercase letters, digits, '_', '.', '-' (max 64), starting with a letter"
PROTOCOL_VERSION = 1
MAX_WAIT_S = 60.0
DEFAULT_WAIT_S = 10.0


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


Handler = Callable[[Request, Peer], "dict[str, Any] | StreamReply"]

# Stream frames: one kind byte and a big-endian u32 length, then the payload.
FRAME_HEADER = struct.Struct(">cI")
FRAME_DATA, FRAME_PROGRESS, FRAME_END = b"D", b"P", b"E"
MAX_FRAME_BYTES = 1 << 20
_PROGRESS = struct.Struct(">QQ")


def encode_stream_start(header: Mapping[str, Any]) -> bytes:
    return _line({"ok": True, "stream": True, "result": dict(header)})


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
ArgCheck = Callable[[str, Any], Any]  # (name, value as sent) -> the value the handler gets; UsageError if bad


# -- argument checks (one per kind of argument) --------------------------------------------------------

def check_wait_seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            (isinstance(value, float) and not math.isfinite(value)):
        raise UsageError(f"'{key}' must be a number of seconds")
    if not 0 <= value <= MAX_WAIT_S:  # compared as given: a huge integer has no float
        raise UsageError(f"'{key}' must be between 0 and {MAX_WAIT_S:g} seconds")
    return float(value)


def check_purpose(key: str, value: Any) -> str:
    if not isinstance(value, str) or not PURPOSE.fullmatch(value):
        raise UsageError(f"'{key}' must be {PURPOSE_RULE}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"'{key}' must be true or false")
    return value


_MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the ledger's last representable time


def _time_ms(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIME_MS:
        raise UsageError(f"'{key}' must be a time in milliseconds since 1970 (up to year 9999)")
    return value


_REGION = re.compile(r"[A-Z][A-Z0-9-]{1,15}")


def check_region(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise UsageError(f"'{key}' must be an upper-case region code such as CN or EU")
    return value


_RECORD_TYPE = re.compile(r"[a-z][a-z_]{0,31}")
MAX_LOG_LIMIT = 1000


def check_record_type(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _RECORD_TYPE.fullmatch(value):
        raise UsageError(f"'{key}' must be a record type such as switch, upload, request")
    return value


def check_limit(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOG_LIMIT:
        raise UsageError(f"'{key}' must be a whole number from 1 to {MAX_LOG_LIMIT}")
    return value


POLICY_FORMATS = ("text", "markdown", "json")


def check_policy_format(key: str, value: Any) -> str:
    if value not in POLICY_FORMATS:
        raise UsageError(f"'{key}' must be one of " + ", ".join(POLICY_FORMATS))
    return str(value)


CORRECTIONS = ("minor", "guardian", "region", "wrong-fix")  # what privacyctl correct can correct
UPLOAD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_YES_NO = {"yes": True, "no": False, "true": True, "false": False}


def check_what(key: str, value: Any) -> str:
    if value not in CORRECTIONS:
        raise UsageError(f"'{key}' must be one of " + ", ".join(CORRECTIONS))
    return str(value)


def check_correction(what: str, value: Any) -> bool | str:
    """The corrected value for ``what``, checked: yes/no for the flags, a region code, an upload id."""
    check_what("what", what)
    if what in ("minor", "guardian"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _YES_NO:
            return _YES_NO[value.lower()]
        raise UsageError(f"a correction of '{what}' takes yes or no")
    if what == "region":
        if not isinstance(value, str) or not _REGION.fullmatch(value):
            raise UsageError("a region is an upper-case code such as CN or EU")
        return value
    if not isinstance(value, str) or not UPLOAD_ID.fullmatch(value):
        raise UsageError("a wrong fix is named by its upload id, as privacyctl uploads shows it")
    return value


def _correction_value(key: str, value: Any) -> bool | str:
    """yes/no (a bool), a region code or an upload id: checked against what is corrected by the handler
    (check_correction), since one argument's rule depends on the other."""
    if isinstance(value, bool) or (isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable()):
        return value
    raise UsageError(f"'{key}' must be true, false or a short text (a region code or an upload id)")


# -- the op table: to add an op, add a line here (and serve it in the handler) -------------------------

@dataclass(frozen=True, slots=True)
class OpSpec:
    """One op: whether it changes the agent's state (then it needs privilege), and the arguments it takes."""

    mutating: bool
    args: Mapping[str, ArgCheck] = field(default_factory=dict)
    required: frozenset[str] = frozenset()


OP_TABLE: dict[str, OpSpec] = {
    "status": OpSpec(mutating=False),
    "location.status": OpSpec(mutating=False, args={"check": _flag, "wait_s": check_wait_seconds}),
    "policy.show": OpSpec(mutating=False, args={"format": check_policy_format, "diff": _flag}),
    "policy.accept": OpSpec(mutating=True),
    "correct": OpSpec(mutating=True, args={"what": check_what, "value": _correction_value},
                      required=frozenset({"what", "value"})),
    "incidents": OpSpec(mutating=False, args={"since_ms": _time_ms}),
    "consent.list": OpSpec(mutating=False),
    "log.verify": OpSpec(mutating=False),
    "uploads": OpSpec(mutating=False, args={"since_ms": _time_ms, "purpose": check_purpose, "failed": _flag}),
    "why": OpSpec(mutating=False, args={"purpose": check_purpose}),
    "location.on": OpSpec(mutating=True, args={"wait_s": check_wait_seconds}),
    "location.off": OpSpec(mutating=True, args={"wait_s": check_wait_seconds}),
    "consent.grant": OpSpec(mutating=True, args={"purpose": check_purpose}, required=frozenset({"purpose"})),
    "consent.withdraw": OpSpec(mutating=True, args={"purpose": check_purpose}, required=frozenset({"purpose"})),
    "consent.cross_border": OpSpec(mutating=True, args={"region": check_region, "granted": _flag},
                                   required=frozenset({"region", "granted"})),
    "consent.guardian": OpSpec(mutating=True, args={"granted": _flag}, required=frozenset({"granted"})),
    "identity.reset": OpSpec(mutating=True),
    # export answers with a stream (see StreamReply): the daemon never writes to a path the user names
    "export": OpSpec(mutating=True),
    "erase": OpSpec(mutating=True, args={"all": _flag, "before_ms": _time_ms, "purpose": check_purpose}),
    "log.show": OpSpec(mutating=False, args={"type": check_record_type, "since_ms": _time_ms,
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
    return _line({"ok": True, "result": result})


def encode_error(exc: AgentError) -> bytes:
    return _line({"ok": False, "error": {"kind": type(exc).__name__, "message": str(exc)}})


def encode_request(op: str, args: Mapping[str, Any] | None = None) -> bytes:
    """A client's request line."""
    return _line({"v": PROTOCOL_VERSION, "op": op, "args": dict(args or {})})


def _line(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


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


# -- connection slots (pure bookkeeping) ---------------------------------------------------------------

class Slots:
    """Who holds how many connection slots; the server calls it under its lock.

    An unprivileged uid takes a slot only while fewer than ``shared`` are held in all and it holds fewer
    than ``per_uid`` itself. Root and the agent's own uid (``privileged_uids``) take one while fewer than
    ``shared + reserved`` are held, so at least ``reserved`` slots are always left for them, whatever the
    others hold. :meth:`take` answers with the time the new connection has to send its request line.
    """

    def __init__(self, *, shared: int, per_uid: int, reserved: int, privileged_uids: frozenset[int],
                 read_timeout_s: float, crowded_read_timeout_s: float) -> None:
        if shared < 1 or per_uid < 1 or reserved < 1:
            raise ValueError("need at least one shared slot, one slot per uid and one reserved slot")
        if read_timeout_s <= 0 or crowded_read_timeout_s <= 0:
            raise ValueError("read timeouts must be positive")
        self._shared = shared
        self._per_uid = per_uid
        self._reserved = reserved
        self._privileged_uids = privileged_uids
        self._read_timeout_s = read_timeout_s
        self._crowded_read_timeout_s = min(crowded_read_timeout_s, read_timeout_s)
        self._held: dict[int, int] = {}

    @property
    def held(self) -> int:
        return sum(self._held.values())

    def held_by(self, uid: int) -> int:
        return self._held.get(uid, 0)

    def take(self, uid: int) -> float | None:
        """A slot for ``uid``: its read deadline in seconds, or None when it must be told "busy"."""
        already = self.held_by(uid)
        if uid in self._privileged_uids:
            if self.held >= self._shared + self._reserved:
                return None
            timeout_s = self._read_timeout_s
        else:
            if self.held >= self._shared or already >= self._per_uid:
                return None
            timeout_s = self._read_timeout_s if already == 0 else self._crowded_read_timeout_s
        self._held[uid] = already + 1
        return timeout_s

    def give_back(self, uid: int) -> None:
        left = self.held_by(uid) - 1
        if left < 0:
            raise ValueError("gave back a slot that was not taken")
        if left:
            self._held[uid] = left
        else:
            del self._held[uid]


def parse_status_groups(text: str) -> tuple[int, ...]:
    for line in text.splitlines():
        if line.startswith("Groups:"):
            return tuple(int(word) for word in line.split()[1:] if word.isdigit())
    return ()
