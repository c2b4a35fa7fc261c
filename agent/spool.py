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

This module is the store (the files, the lock, durability); the journal's bytes (framing, replay, compaction) are
:mod:`agent.spool_journal`, and the migration is :mod:`agent.spool_legacy`.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from pathlib import Path
from typing import Any

from agent.errors import StoreError
from agent.ledger.files import (
    atomic_write,
    ensure_private_dir,
    open_for_append,
    read_small,
    store_error,
    truncate,
    write_and_sync,
)
from agent.spool_journal import (
    ENTRY_HEADER_SIZE,
    JOURNAL_MAGIC,
    MAX_REASON_CHARS,
    Message,
    SpoolState,
    check_message,
    compacted,
    frame,
    put_entry,
    replay,
)
from agent.spool_legacy import decode_legacy_entry, legacy_file_name, migrate_legacy, remove_legacy

__all__ = ["COMPACT_FACTOR", "COMPACT_MIN_BYTES", "DEFAULT_MAX_MESSAGES", "ENTRY_HEADER_SIZE", "JOURNAL_MAGIC",
           "Message", "Spool", "SpoolState", "compacted", "decode_legacy_entry", "frame", "legacy_file_name",
           "put_entry", "replay"]

COMPACT_MIN_BYTES = 1 << 20
COMPACT_FACTOR = 4
DEFAULT_MAX_MESSAGES = 100_000


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
            migrated = migrate_legacy(root, state)
            if size is None or migrated or _needs_compaction(size, state):
                size = _write_journal(journal, state)
            if migrated:
                remove_legacy(root)
            journal_fd = open_for_append(journal, create=False)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(journal, lock_fd, journal_fd, size, state, max_messages)

    def put(self, message: Message) -> None:
        """Queue ``message`` durably. A message whose id is already queued or dead-lettered is left as it is
        (after an ack the id is forgotten: a later put of it queues it again). StoreError when full."""
        check_message(message)
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
                self._record([["dead", message_id, reason[:MAX_REASON_CHARS]]])

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
