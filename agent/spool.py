"""The durable outbound queue: messages wait here, in the state directory, until a sink has them.

Layout, under ``<state_dir>/spool/`` (0700)::

    .lock            flock'd for the life of an open Spool: one owner per spool
    queue/<h>.msg    one file per queued message
    dead/<h>.msg     one file per dead-lettered message (with the reason), kept until purged

``<h>`` is a hash of the message id, so file names are fixed-length and safe whatever the id holds.

One file per message, because it is the plainest layout that is correct at any byte of a power cut: every
write goes to a fresh ``mkstemp`` file, is fsynced, renamed over the final name and the directory fsynced, so
a reader only ever sees a whole old file or a whole new one. A leftover temporary file is a write that never
returned and is removed at open. Moving a message to the dead letters writes the dead file first and then
removes the queued one; a crash in between leaves both, and the dead letter wins at the next open.

A file is ``MAGIC, crc32(payload), payload`` with the payload a CBOR map. A file that does not decode, whose
CRC does not match or whose name is not its id's hash is damaged: :meth:`Spool.open` raises a
:class:`StoreError` naming it, and nothing is dropped silently. Foreign ``OSError``\\s become ``StoreError``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import struct
import tempfile
import threading
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cbor2

from agent.errors import StoreError
from agent.ledger.files import ensure_private_dir, read_small, store_error, sync_dir

MAGIC = b"PASPOOL1"
_HEADER = struct.Struct(">8sI")  # magic, crc32 of the payload
_SUFFIX = ".msg"
_TEMP_PREFIX = ".tmp-"
_MAX_ID_CHARS = 256
_MAX_REASON_CHARS = 1024
DEFAULT_MAX_MESSAGES = 100_000
_FIELDS = ("id", "sink", "purpose", "body", "created_ms", "attempts", "not_before_ms")


@dataclass(frozen=True, slots=True)
class Message:
    """One outbound payload for one sink.

    ``id`` is stable and chosen by the caller: receivers de-duplicate on it (delivery is at-least-once).
    ``body`` is the serialized payload, one JSON object. Times are Unix epoch milliseconds.
    """

    id: str
    sink: str
    purpose: str
    body: bytes
    created_ms: int
    attempts: int = 0
    not_before_ms: int = 0


def _check_message(message: Message) -> None:
    """Caller bugs are ValueError/TypeError (see agent.errors); nothing bad reaches the disk."""
    if not isinstance(message, Message):
        raise TypeError("put() takes a Message")
    if not message.id or len(message.id) > _MAX_ID_CHARS or not message.id.isprintable():
        raise ValueError("message id must be 1-256 printable characters")
    if not message.sink or not message.purpose:
        raise ValueError("message sink and purpose must not be empty")
    if not isinstance(message.body, bytes):
        raise TypeError("message body must be bytes")
    for value in (message.created_ms, message.attempts, message.not_before_ms):
        if not isinstance(value, int) or value < 0:
            raise ValueError("message times and attempts must be non-negative integers")


def file_name(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:40] + _SUFFIX


def encode_entry(message: Message, seq: int, reason: str | None = None) -> bytes:
    payload: dict[str, Any] = {name: getattr(message, name) for name in _FIELDS}
    payload["seq"] = seq
    if reason is not None:
        payload["reason"] = reason
    data = cbor2.dumps(payload)
    return _HEADER.pack(MAGIC, zlib.crc32(data)) + data


def decode_entry(data: bytes) -> tuple[Message, int, str | None]:
    """The message, its sequence number and its dead-letter reason; ValueError naming what is wrong."""
    if len(data) < _HEADER.size:
        raise ValueError("shorter than its header")
    magic, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a spool entry (bad magic)")
    payload = data[_HEADER.size:]
    if zlib.crc32(payload) != crc:
        raise ValueError("checksum mismatch")
    try:
        fields = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError("payload does not decode") from exc
    if not isinstance(fields, dict):
        raise ValueError("payload is not a map")
    try:
        message = Message(**{name: fields[name] for name in _FIELDS})
        _check_message(message)
        seq, reason = fields["seq"], fields.get("reason")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("missing or bad field") from exc
    if not isinstance(seq, int) or not (reason is None or isinstance(reason, str)):
        raise ValueError("missing or bad field")
    return message, seq, reason


@dataclass(frozen=True, slots=True)
class _Entry:
    message: Message
    seq: int  # order of first put: breaks ties between equal created_ms
    reason: str | None = None


class Spool:
    """The durable outbound queue. Thread-safe: the pipeline puts and purges while the uploader drains.

    Every mutating call is durable (file and directory fsynced) before it returns.
    """

    def __init__(self, root: Path, lock_fd: int, queued: dict[str, _Entry], dead: dict[str, _Entry],
                 max_messages: int) -> None:
        self._root = root
        self._max_messages = max_messages
        self._queue_dir = root / "queue"
        self._dead_dir = root / "dead"
        self._lock_fd = lock_fd
        self._queued = queued
        self._dead = dead
        self._next_seq = 1 + max((entry.seq for entry in (*queued.values(), *dead.values())), default=0)
        self._mutex = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path, *, max_messages: int = DEFAULT_MAX_MESSAGES) -> Spool:
        """Open (creating if needed) ``<state_dir>/spool``; StoreError naming any damaged entry.

        ``max_messages`` bounds the queue (every queued message is also held in memory): a put beyond it is
        refused, so that a sink that stays away for months cannot fill the gateway's disk or memory."""
        root = Path(state_dir) / "spool"
        ensure_private_dir(root)
        lock_fd = _lock(root / ".lock")
        try:
            for sub in ("queue", "dead"):
                ensure_private_dir(root / sub)
            dead = _load_dir(root / "dead")
            queued = _load_dir(root / "queue")
            _drop_dead_from_queue(root / "queue", queued, dead)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(root, lock_fd, queued, dead, max_messages)

    def put(self, message: Message) -> None:
        """Queue ``message`` durably. A message whose id is already queued or dead-lettered is left as it is
        (after an ack the id is forgotten: a later put of it queues it again). StoreError when full."""
        _check_message(message)
        with self._mutex:
            self._check_open()
            if message.id in self._queued or message.id in self._dead:
                return
            if len(self._queued) >= self._max_messages:
                raise StoreError("the spool is full: its sinks have not taken messages for too long",
                                 limit=self._max_messages)
            entry = _Entry(message, self._next_seq)
            _write_entry(self._queue_dir, entry)
            self._next_seq += 1
            self._queued[message.id] = entry

    def due(self, now_ms: int, limit: int = 100, *, sink: str | None = None) -> list[Message]:
        """Queued messages (of ``sink`` when given) whose ``not_before_ms`` has passed, oldest first."""
        with self._mutex:
            self._check_open()
            ready = [entry for entry in self._queued.values()
                     if entry.message.not_before_ms <= now_ms and (sink is None or entry.message.sink == sink)]
        ready.sort(key=lambda entry: (entry.message.created_ms, entry.seq))
        return [entry.message for entry in ready[:max(0, limit)]]

    def next_due_ms(self, now_ms: int, *, sink: str | None = None) -> int | None:
        """The earliest ``not_before_ms`` after ``now_ms`` among queued messages (of ``sink``), or None."""
        with self._mutex:
            self._check_open()
            times = [entry.message.not_before_ms for entry in self._queued.values()
                     if entry.message.not_before_ms > now_ms and (sink is None or entry.message.sink == sink)]
        return min(times, default=None)

    def ack(self, message_id: str) -> None:
        """The message was delivered: remove it durably. An unknown id is a no-op (acked already)."""
        with self._mutex:
            self._check_open()
            if self._queued.pop(message_id, None) is not None:
                _remove(self._queue_dir, [file_name(message_id)])

    def retry_later(self, message_id: str, not_before_ms: int) -> None:
        """Count a failed attempt and hold the message back until ``not_before_ms``."""
        with self._mutex:
            self._check_open()
            entry = self._queued.get(message_id)
            if entry is None:
                return
            message = replace(entry.message, attempts=entry.message.attempts + 1,
                              not_before_ms=max(0, int(not_before_ms)))
            updated = _Entry(message, entry.seq)
            _write_entry(self._queue_dir, updated)
            self._queued[message_id] = updated

    def release_held_after(self, limit_ms: int, *, sink: str | None = None) -> int:
        """Make due at once every queued message (of ``sink``) held back beyond ``limit_ms``; how many.

        No retry is ever held back longer than the backoff's cap, so such a hold means the wall clock went
        backwards (a gateway without a real-time clock booting at 1970, then setting its time): without this,
        the message would wait for the clock to catch up, possibly for years."""
        with self._mutex:
            self._check_open()
            stale = [entry for entry in self._queued.values()
                     if entry.message.not_before_ms > limit_ms and (sink is None or entry.message.sink == sink)]
            for entry in stale:
                released = _Entry(replace(entry.message, not_before_ms=0), entry.seq)
                _write_entry(self._queue_dir, released)
                self._queued[entry.message.id] = released
            return len(stale)

    def dead_letter(self, message_id: str, reason: str) -> None:
        """Move a queued message to the dead letters with ``reason``: kept, never sent again."""
        with self._mutex:
            self._check_open()
            entry = self._queued.get(message_id)
            if entry is None:
                return
            dead = _Entry(entry.message, entry.seq, reason[:_MAX_REASON_CHARS])
            _write_entry(self._dead_dir, dead)  # first: a crash before the unlink leaves both, dead wins
            _remove(self._queue_dir, [file_name(message_id)])
            del self._queued[message_id]
            self._dead[message_id] = dead

    def dead_letters(self) -> list[tuple[Message, str]]:
        """Every dead-lettered message with its reason, oldest first."""
        with self._mutex:
            self._check_open()
            entries = sorted(self._dead.values(), key=lambda entry: (entry.message.created_ms, entry.seq))
        return [(entry.message, entry.reason or "") for entry in entries]

    def purge(self, purpose: str, *, include_dead: bool = False) -> int:
        """Drop the queued (and, with ``include_dead``, dead-lettered) messages of ``purpose``; how many."""
        with self._mutex:
            self._check_open()
            dropped = self._drop(self._queue_dir, self._queued, purpose)
            if include_dead:
                dropped += self._drop(self._dead_dir, self._dead, purpose)
            return dropped

    def purge_all(self, *, include_dead: bool = False) -> int:
        """Drop every queued (and, with ``include_dead``, dead-lettered) message; how many."""
        with self._mutex:
            self._check_open()
            dropped = self._drop(self._queue_dir, self._queued, None)
            if include_dead:
                dropped += self._drop(self._dead_dir, self._dead, None)
            return dropped

    def pending_count(self) -> int:
        with self._mutex:
            return len(self._queued)

    def close(self) -> None:
        with self._mutex:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop(self, directory: Path, entries: dict[str, _Entry], purpose: str | None) -> int:
        doomed = [message_id for message_id, entry in entries.items()
                  if purpose is None or entry.message.purpose == purpose]
        _remove(directory, [file_name(message_id) for message_id in doomed])
        for message_id in doomed:
            del entries[message_id]
        return len(doomed)

    def _check_open(self) -> None:
        if self._lock_fd < 0:
            raise StoreError("the spool is closed")


def _lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise store_error("open", path, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreError("the spool is in use by another process", path=str(path)) from exc
    return fd


def _load_dir(directory: Path) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise store_error("list", directory, exc) from exc
    for name in names:
        path = directory / name
        if name.startswith(_TEMP_PREFIX):
            _remove_leftover(path)  # a write that never returned: nobody was told it was queued
            continue
        if not name.endswith(_SUFFIX):
            raise StoreError(f"unexpected file {name} in the spool", path=str(path))
        data = read_small(path)  # refuses symlinks and non-regular files with a StoreError
        if data is None:
            continue
        try:
            message, seq, reason = decode_entry(data)
        except ValueError as exc:
            raise StoreError(f"spool entry {name} is damaged: {exc}", path=str(path)) from exc
        if file_name(message.id) != name:
            raise StoreError(f"spool entry {name} is damaged: its name does not match its id", path=str(path))
        entries[message.id] = _Entry(message, seq, reason)
    return entries


def _remove_leftover(path: Path) -> None:
    try:
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            raise StoreError(f"unexpected directory {path.name} in the spool", path=str(path))
        path.unlink()
    except OSError as exc:
        raise store_error("remove", path, exc) from exc


def _drop_dead_from_queue(queue_dir: Path, queued: dict[str, _Entry], dead: dict[str, _Entry]) -> None:
    both = [message_id for message_id in queued if message_id in dead]
    _remove(queue_dir, [file_name(message_id) for message_id in both])
    for message_id in both:
        del queued[message_id]


def _write_entry(directory: Path, entry: _Entry) -> None:
    """Write one entry durably: mkstemp, write, fsync, rename over its final name, fsync the directory."""
    final = directory / file_name(entry.message.id)
    data = encode_entry(entry.message, entry.seq, entry.reason)
    try:
        fd, temporary = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
    except OSError as exc:
        raise store_error("create a file in", directory, exc) from exc
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
    except OSError as exc:
        _unlink_quietly(Path(temporary))
        raise store_error("write", final, exc) from exc
    sync_dir(directory)


def _remove(directory: Path, names: list[str]) -> None:
    if not names:
        return
    for name in names:
        try:
            (directory / name).unlink(missing_ok=True)
        except OSError as exc:
            raise store_error("remove", directory / name, exc) from exc
    sync_dir(directory)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the original error is the one worth reporting; open() removes the leftover later
