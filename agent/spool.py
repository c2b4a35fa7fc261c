"""The durable outbound queue: messages wait here, in the state directory, until a sink has them.

Layout, under ``<state_dir>/spool/`` (0700)::

    .lock      flock'd for the life of an open Spool: one owner per spool
    journal    append-only: a header, then one framed entry per operation

Why a journal: every operation (put, ack, retry, release, dead letter, purge) appends one entry and fdatasyncs it, so a
call costs one sync, like the ledger's durable append (a file per message cost a file fsync and a directory
fsync per call). The journal is created once (atomically, directory fsynced); after that it only grows, until
compaction replaces it.

An entry is ``length u32, crc32(body) u32, crc32(the 8 bytes before) u32, body``; the body is a CBOR array::

    ["put", id, sink, purpose, body, created_ms, attempts, not_before_ms]
    ["ack", id]
    ["retry", id, not_before_ms, attempts]
    ["dead", id, reason]
    ["purge", [id, ...]]

The header's own CRC lets a damaged length be told from a torn write: without it, a length flipped in the
middle of the file would read as "an entry that runs past the end" and everything after it would be cut off.

Recovery: :meth:`Spool.open` replays the journal into memory. Its end may be a *torn tail*, left by a crash or
power cut during an append whose call never returned: an entry whose sound header promises more bytes than there
are, or a header cut short (possibly followed by zeros: the file grew before its data reached the disk). It is
cut off. Any other damage (a bad checksum, an entry that does not decode or does not fit the state before it) is
a :class:`StoreError` naming the file and the offset: nothing is dropped silently. Foreign ``OSError``\\s become
``StoreError``.

Compaction: once the journal has grown past ``max(1 MiB, 4 x the live entries' size)``, the live state (queued
and dead messages, in their order) is written into a new journal with ``atomic_write`` and appends go on there.
Open does the same check.

Migration: spools written before the journal kept one file per message in ``queue/`` and ``dead/``. Open reads
them once, writes them into the journal, and only then removes the directories, so an upgrade loses nothing
(a crash in between finds both, and the journal's copy wins).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import struct
import threading
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cbor2

from agent.errors import StoreError
from agent.ledger.files import (
    atomic_write,
    ensure_private_dir,
    open_for_append,
    read_small,
    store_error,
    sync_dir,
    truncate,
    write_and_sync,
)

JOURNAL_MAGIC = b"PASPOOLJ"
_LEAD = struct.Struct(">II")  # body length, crc32 of the body
_CRC = struct.Struct(">I")  # crc32 of the lead: a damaged length is damage, not a torn tail
ENTRY_HEADER_SIZE = _LEAD.size + _CRC.size
COMPACT_MIN_BYTES = 1 << 20
COMPACT_FACTOR = 4
_MAX_ID_CHARS = 256
_MAX_REASON_CHARS = 1024
DEFAULT_MAX_MESSAGES = 100_000


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


# --- entries: encoding and framing (pure) -----------------------------------------------------------------

def put_entry(message: Message) -> list[Any]:
    return ["put", message.id, message.sink, message.purpose, message.body, message.created_ms, message.attempts,
            message.not_before_ms]


def frame(entry: list[Any]) -> bytes:
    """One entry as it is appended to the journal."""
    body = cbor2.dumps(entry)
    lead = _LEAD.pack(len(body), zlib.crc32(body))
    return lead + _CRC.pack(zlib.crc32(lead)) + body


def _read_entry(data: bytes, offset: int) -> tuple[list[Any], int]:
    """The entry at ``offset`` and the offset after it; ValueError naming what is wrong."""
    lead = data[offset:offset + _LEAD.size]
    (lead_crc,) = _CRC.unpack_from(data, offset + _LEAD.size)
    if zlib.crc32(lead) != lead_crc:
        raise ValueError("entry header checksum mismatch")
    length, body_crc = _LEAD.unpack(lead)
    start = offset + ENTRY_HEADER_SIZE
    body = data[start:start + length]
    if zlib.crc32(body) != body_crc:
        raise ValueError("entry checksum mismatch")
    try:
        entry = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError("entry does not decode") from exc
    if not isinstance(entry, list):
        raise ValueError("entry is not an array")
    return entry, start + length


def _is_torn_tail(data: bytes, offset: int) -> bool:
    """Whether the bytes from ``offset`` to the end are an append cut short by a crash: an entry whose header is
    sound but whose body runs past the end, or a header cut short, possibly followed by zeros (a file grown by
    the append before its data reached the disk). A whole header that is bad is damage, not a tail."""
    rest = memoryview(data)[offset:]
    if len(rest) < ENTRY_HEADER_SIZE:
        return True
    lead = bytes(rest[:_LEAD.size])
    (lead_crc,) = _CRC.unpack_from(rest, _LEAD.size)
    if zlib.crc32(lead) == lead_crc:
        length, _ = _LEAD.unpack(lead)
        return bool(ENTRY_HEADER_SIZE + length > len(rest))
    return len(bytes(rest).rstrip(b"\0")) < ENTRY_HEADER_SIZE


# --- the state in memory, rebuilt by applying entries (pure) -----------------------------------------------

@dataclass(frozen=True, slots=True)
class _Entry:
    message: Message
    seq: int  # order of first put: breaks ties between equal created_ms
    size: int  # bytes of journal this message keeps alive (its put, and its dead entry)
    reason: str | None = None


@dataclass(slots=True)
class SpoolState:
    """Queued and dead messages. Changed only by :meth:`apply`, at replay and after each durable append alike,
    so that what is in memory is exactly what the journal says."""

    queued: dict[str, _Entry] = field(default_factory=dict)
    dead: dict[str, _Entry] = field(default_factory=dict)
    live_bytes: int = 0
    next_seq: int = 1

    def apply(self, entry: list[Any], size: int) -> None:
        """Apply one entry of ``size`` journal bytes; ValueError when it is malformed or does not fit."""
        match entry:
            case ["put", str(), str(), str(), bytes(), int(), int(), int()]:
                self._put(Message(*entry[1:]), size)
            case ["ack", str() as message_id]:
                self.live_bytes -= self._queued_entry(message_id).size
                del self.queued[message_id]
            case ["retry", str() as message_id, int() as not_before_ms, int() as attempts]:
                held = self._queued_entry(message_id)
                message = replace(held.message, attempts=attempts, not_before_ms=not_before_ms)
                _check_message(message)
                self.queued[message_id] = replace(held, message=message)
            case ["dead", str() as message_id, str() as reason]:
                held = self._queued_entry(message_id)
                del self.queued[message_id]
                self.dead[message_id] = replace(held, size=held.size + size, reason=reason)
                self.live_bytes += size
            case ["purge", list() as ids] if all(isinstance(message_id, str) for message_id in ids):
                for message_id in ids:
                    dropped = self.queued.pop(message_id, None) or self.dead.pop(message_id, None)
                    if dropped is None:
                        raise ValueError("entry purges a message the spool does not hold")
                    self.live_bytes -= dropped.size
            case _:
                raise ValueError("unknown or malformed entry")

    def holds(self, message_id: str) -> bool:
        return message_id in self.queued or message_id in self.dead

    def in_order(self) -> list[_Entry]:
        """Every queued and dead message in put order: the order a compacted journal keeps."""
        return sorted((*self.queued.values(), *self.dead.values()), key=lambda held: held.seq)

    def _put(self, message: Message, size: int) -> None:
        _check_message(message)
        if self.holds(message.id):
            raise ValueError("entry puts a message the spool already holds")
        self.queued[message.id] = _Entry(message, self.next_seq, size)
        self.next_seq += 1
        self.live_bytes += size

    def _queued_entry(self, message_id: str) -> _Entry:
        held = self.queued.get(message_id)
        if held is None:
            raise ValueError("entry names a message that is not queued")
        return held


def replay(data: bytes, path: Path) -> tuple[SpoolState, int]:
    """The state a journal's bytes hold, and the offset where its whole entries end (a torn tail follows).

    StoreError naming ``path`` and the offset of any damage other than a torn tail. ``path`` is only named."""
    if not data.startswith(JOURNAL_MAGIC):
        raise _damage(path, 0, "it does not start with the spool journal header")
    state = SpoolState()
    offset = len(JOURNAL_MAGIC)
    while offset < len(data) and not _is_torn_tail(data, offset):
        try:
            entry, end = _read_entry(data, offset)
            state.apply(entry, end - offset)
        except (ValueError, TypeError) as exc:
            raise _damage(path, offset, str(exc)) from exc
        offset = end
    return state, offset


def compacted(state: SpoolState) -> bytes:
    """A whole journal holding ``state`` and nothing else."""
    parts = [JOURNAL_MAGIC]
    for held in state.in_order():
        parts.append(frame(put_entry(held.message)))
        if held.reason is not None:
            parts.append(frame(["dead", held.message.id, held.reason]))
    return b"".join(parts)


def _damage(path: Path, offset: int, problem: str) -> StoreError:
    return StoreError(f"spool {path.name} is damaged at offset {offset}: {problem}", path=str(path), offset=offset)


# --- the spool (adapter: the journal file) ------------------------------------------------------------------

class Spool:
    """The durable outbound queue. Thread-safe: the pipeline puts and purges while the uploader drains.

    Every mutating call is durable (one journal entry, fdatasynced) before it returns.
    """

    def __init__(self, journal: Path, lock_fd: int, journal_fd: int, journal_size: int, state: SpoolState,
                 max_messages: int) -> None:
        self._journal = journal
        self._lock_fd = lock_fd
        self._journal_fd = journal_fd
        self._journal_size = journal_size
        self._state = state
        self._max_messages = max_messages
        self._mutex = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path, *, max_messages: int = DEFAULT_MAX_MESSAGES) -> Spool:
        """Open (creating if needed) ``<state_dir>/spool``; StoreError naming any damage and its offset.

        ``max_messages`` bounds the queue (every queued message is also held in memory): a put beyond it is
        refused, so that a sink that stays away for months cannot fill the gateway's disk or memory."""
        root = Path(state_dir) / "spool"
        ensure_private_dir(root)
        lock_fd = _lock(root / ".lock")
        try:
            journal = root / "journal"
            _remove_compaction_leftovers(root)
            state, size = _recover(journal)
            migrated = _migrate_legacy(root, state)
            if size is None or migrated or _needs_compaction(size, state):
                size = _write_journal(journal, state)
            if migrated:
                _remove_legacy(root)
            journal_fd = open_for_append(journal, create=False)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(journal, lock_fd, journal_fd, size, state, max_messages)

    def put(self, message: Message) -> None:
        """Queue ``message`` durably. A message whose id is already queued or dead-lettered is left as it is
        (after an ack the id is forgotten: a later put of it queues it again). StoreError when full."""
        _check_message(message)
        with self._mutex:
            self._check_open()
            if self._state.holds(message.id):
                return
            if len(self._state.queued) >= self._max_messages:
                raise StoreError("the spool is full: its sinks have not taken messages for too long",
                                 limit=self._max_messages)
            self._record([put_entry(message)])

    def due(self, now_ms: int, limit: int = 100, *, sink: str | None = None) -> list[Message]:
        """Queued messages (of ``sink`` when given) whose ``not_before_ms`` has passed, oldest first."""
        with self._mutex:
            self._check_open()
            ready = [held for held in self._state.queued.values()
                     if held.message.not_before_ms <= now_ms and (sink is None or held.message.sink == sink)]
        ready.sort(key=lambda held: (held.message.created_ms, held.seq))
        return [held.message for held in ready[:max(0, limit)]]

    def next_due_ms(self, now_ms: int, *, sink: str | None = None) -> int | None:
        """The earliest ``not_before_ms`` after ``now_ms`` among queued messages (of ``sink``), or None."""
        with self._mutex:
            self._check_open()
            times = [held.message.not_before_ms for held in self._state.queued.values()
                     if held.message.not_before_ms > now_ms and (sink is None or held.message.sink == sink)]
        return min(times, default=None)

    def ack(self, message_id: str) -> None:
        """The message was delivered: remove it durably. An unknown id is a no-op (acked already)."""
        with self._mutex:
            self._check_open()
            if message_id in self._state.queued:
                self._record([["ack", message_id]])

    def retry_later(self, message_id: str, not_before_ms: int) -> None:
        """Count a failed attempt and hold the message back until ``not_before_ms``."""
        with self._mutex:
            self._check_open()
            held = self._state.queued.get(message_id)
            if held is not None:
                self._record([["retry", message_id, max(0, int(not_before_ms)), held.message.attempts + 1]])

    def release_held_after(self, limit_ms: int, *, sink: str | None = None) -> int:
        """Make due at once every queued message (of ``sink``) held back beyond ``limit_ms``; how many.

        No retry is ever held back longer than the backoff's cap, so such a hold means the wall clock went
        backwards (a gateway without a real-time clock booting at 1970, then setting its time): without this,
        the message would wait for the clock to catch up, possibly for years."""
        with self._mutex:
            self._check_open()
            stale = [held.message for held in self._state.queued.values()
                     if held.message.not_before_ms > limit_ms and (sink is None or held.message.sink == sink)]
            self._record([["retry", message.id, 0, message.attempts] for message in stale])
            return len(stale)

    def dead_letter(self, message_id: str, reason: str) -> None:
        """Move a queued message to the dead letters with ``reason``: kept, never sent again."""
        with self._mutex:
            self._check_open()
            if message_id in self._state.queued:
                self._record([["dead", message_id, reason[:_MAX_REASON_CHARS]]])

    def dead_letters(self) -> list[tuple[Message, str]]:
        """Every dead-lettered message with its reason, oldest first."""
        with self._mutex:
            self._check_open()
            entries = sorted(self._state.dead.values(), key=lambda held: (held.message.created_ms, held.seq))
        return [(held.message, held.reason or "") for held in entries]

    def purge(self, purpose: str, *, include_dead: bool = False) -> int:
        """Drop the queued (and, with ``include_dead``, dead-lettered) messages of ``purpose``; how many."""
        return self._purge(purpose, include_dead)

    def purge_all(self, *, include_dead: bool = False) -> int:
        """Drop every queued (and, with ``include_dead``, dead-lettered) message; how many."""
        return self._purge(None, include_dead)

    def purge_created_before(self, limit_ms: int, *, include_dead: bool = False) -> int:
        """Drop the queued (and dead-lettered) messages made before ``limit_ms`` (erase --before); how many."""
        with self._mutex:
            self._check_open()
            pools = (self._state.queued, self._state.dead) if include_dead else (self._state.queued,)
            doomed = [message_id for pool in pools for message_id, held in pool.items()
                      if held.message.created_ms < limit_ms]
            if doomed:
                self._record([["purge", doomed]])
            return len(doomed)

    def compact(self) -> None:
        """Rewrite the journal now with the live messages only: what was acknowledged or purged leaves the disk
        (an erasure must leave no plaintext behind; the journal otherwise keeps it until compaction is due)."""
        with self._mutex:
            self._check_open()
            self._compact()

    def pending_count(self) -> int:
        with self._mutex:
            return len(self._state.queued)

    def close(self) -> None:
        with self._mutex:
            for fd in (self._journal_fd, self._lock_fd):
                if fd >= 0:
                    os.close(fd)
            self._journal_fd = self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _purge(self, purpose: str | None, include_dead: bool) -> int:
        with self._mutex:
            self._check_open()
            pools = (self._state.queued, self._state.dead) if include_dead else (self._state.queued,)
            doomed = [message_id for pool in pools for message_id, held in pool.items()
                      if purpose is None or held.message.purpose == purpose]
            if doomed:
                self._record([["purge", doomed]])
            return len(doomed)

    def _record(self, entries: list[list[Any]]) -> None:
        """Append ``entries`` with one write and one fdatasync, then apply them: memory follows the disk."""
        if not entries:
            return
        frames = [frame(entry) for entry in entries]
        self._append(b"".join(frames))
        for entry, framed in zip(entries, frames, strict=True):
            self._state.apply(entry, len(framed))
        if _needs_compaction(self._journal_size, self._state):
            self._compact()

    def _append(self, data: bytes) -> None:
        if self._journal_fd < 0:
            raise StoreError("the spool journal is unusable after an earlier write error", path=str(self._journal))
        try:
            write_and_sync(self._journal_fd, data, self._journal)
        except StoreError:
            self._cut_back()
            raise
        self._journal_size += len(data)

    def _cut_back(self) -> None:
        """After a failed append, cut the journal back to its last whole entry: a later append must not follow a
        partial one (that would read as damage at the next open). When even that fails, refuse all writes."""
        try:
            os.ftruncate(self._journal_fd, self._journal_size)
            os.fdatasync(self._journal_fd)
        except OSError:
            os.close(self._journal_fd)
            self._journal_fd = -1

    def _compact(self) -> None:
        self._journal_size = _write_journal(self._journal, self._state)
        os.close(self._journal_fd)  # the old journal's inode: replaced, nothing more goes there
        self._journal_fd = -1
        self._journal_fd = open_for_append(self._journal, create=False)

    def _check_open(self) -> None:
        if self._lock_fd < 0:
            raise StoreError("the spool is closed")


def _needs_compaction(journal_size: int, state: SpoolState) -> bool:
    return journal_size > max(COMPACT_MIN_BYTES, COMPACT_FACTOR * state.live_bytes)


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


def _recover(journal: Path) -> tuple[SpoolState, int | None]:
    """The journal's state and size (None: there is no journal yet), a torn tail cut off durably."""
    data = read_small(journal)  # refuses symlinks and non-regular files with a StoreError
    if data is None:
        return SpoolState(), None
    state, end = replay(data, journal)
    if end < len(data):
        truncate(journal, end)  # the append that wrote the tail never returned: nobody was told it was done
    return state, end


def _remove_compaction_leftovers(root: Path) -> None:
    """Remove the temporary files of a compaction cut short by a crash (``atomic_write`` names them
    ``.journal.<random>.tmp``): the journal they were to replace is still whole."""
    try:
        names = [name for name in os.listdir(root) if name.startswith(".journal.") and name.endswith(".tmp")]
        for name in names:
            if stat.S_ISDIR(os.lstat(root / name).st_mode):
                raise StoreError(f"unexpected directory {name} in the spool", path=str(root / name))
            (root / name).unlink()
    except OSError as exc:
        raise store_error("remove a leftover in", root, exc) from exc


def _write_journal(journal: Path, state: SpoolState) -> int:
    data = compacted(state)
    atomic_write(journal, data)
    return len(data)


# --- migration from one file per message (the format before the journal) -----------------------------------

_LEGACY_MAGIC = b"PASPOOL1"
_LEGACY_HEADER = struct.Struct(">8sI")  # magic, crc32 of the payload
_LEGACY_SUFFIX = ".msg"
_LEGACY_TEMP_PREFIX = ".tmp-"
_LEGACY_FIELDS = ("id", "sink", "purpose", "body", "created_ms", "attempts", "not_before_ms")
_LEGACY_DIRS = ("queue", "dead")


def _migrate_legacy(root: Path, state: SpoolState) -> bool:
    """Add the messages of ``queue/`` and ``dead/`` (if any) to ``state``; whether there were such directories.

    A message the journal holds already was migrated by an open that crashed before removing the directories:
    the journal's copy wins. A message in both old directories was being dead-lettered: the dead one wins."""
    directories = [directory for directory in (root / name for name in _LEGACY_DIRS) if _is_legacy_dir(directory)]
    if not directories:
        return False
    dead = _load_legacy_dir(root / "dead")
    queued = {message_id: found for message_id, found in _load_legacy_dir(root / "queue").items()
              if message_id not in dead}
    everything = [(seq, message, reason) for message, seq, reason in (*queued.values(), *dead.values())]
    for _, message, reason in sorted(everything, key=lambda item: item[0]):
        if state.holds(message.id):
            continue
        state.apply(put_entry(message), len(frame(put_entry(message))))
        if reason is not None:
            state.apply(["dead", message.id, reason], len(frame(["dead", message.id, reason])))
    return True


def _is_legacy_dir(directory: Path) -> bool:
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise store_error("look at", directory, exc) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{directory.name} is not a directory (symlinks are refused)", path=str(directory))
    return True


def _load_legacy_dir(directory: Path) -> dict[str, tuple[Message, int, str | None]]:
    if not _is_legacy_dir(directory):
        return {}
    found: dict[str, tuple[Message, int, str | None]] = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise store_error("list", directory, exc) from exc
    for name in names:
        path = directory / name
        if name.startswith(_LEGACY_TEMP_PREFIX):
            continue  # a write that never returned: nobody was told it was queued; removed with the directory
        if not name.endswith(_LEGACY_SUFFIX):
            raise StoreError(f"unexpected file {name} in the spool", path=str(path))
        data = read_small(path)
        if data is None:
            continue
        try:
            message, seq, reason = decode_legacy_entry(data)
        except ValueError as exc:
            raise StoreError(f"spool entry {name} is damaged: {exc}", path=str(path)) from exc
        if legacy_file_name(message.id) != name:
            raise StoreError(f"spool entry {name} is damaged: its name does not match its id", path=str(path))
        found[message.id] = (message, seq, reason)
    return found


def legacy_file_name(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:40] + _LEGACY_SUFFIX


def decode_legacy_entry(data: bytes) -> tuple[Message, int, str | None]:
    """A file of the old format: the message, its sequence number and its dead-letter reason."""
    if len(data) < _LEGACY_HEADER.size:
        raise ValueError("shorter than its header")
    magic, crc = _LEGACY_HEADER.unpack_from(data)
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a spool entry (bad magic)")
    payload = data[_LEGACY_HEADER.size:]
    if zlib.crc32(payload) != crc:
        raise ValueError("checksum mismatch")
    try:
        fields = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError("payload does not decode") from exc
    if not isinstance(fields, dict):
        raise ValueError("payload is not a map")
    try:
        message = Message(**{name: fields[name] for name in _LEGACY_FIELDS})
        _check_message(message)
        seq, reason = fields["seq"], fields.get("reason")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("missing or bad field") from exc
    if not isinstance(seq, int) or not (reason is None or isinstance(reason, str)):
        raise ValueError("missing or bad field")
    return message, seq, reason


def _remove_legacy(root: Path) -> None:
    """Remove the old directories, once the journal holds their messages durably."""
    for name in _LEGACY_DIRS:
        directory = root / name
        if not _is_legacy_dir(directory):
            continue
        try:
            for entry in os.listdir(directory):
                (directory / entry).unlink()
            directory.rmdir()
        except OSError as exc:
            raise store_error("remove", directory, exc) from exc
    sync_dir(root)
