"""The ledger's write path: appending records, group commit and fsync, the background flusher thread,
segment rotation, and signing checkpoints into the log and the head file. :class:`~agent.ledger.store.Ledger`
builds on it (opening, erasure, reading); see store.py for the directory layout and thread safety."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.errors import StoreError, UsageError
from agent.ledger import codec, crypto, files
from agent.ledger.chain import Checkpoint, Truncation, checkpoint_message, segment_name
from agent.ledger.config import (
    HEAD_FILE,
    WRITE_BUFFER,
    EraseSummary,
    LedgerConfig,
    RecordRef,
)
from agent.ledger.keystore import KeyStore
from agent.ledger.snapshot import TornTail, associated_data
from agent.ledger.store_open import LogState
from agent.model import Clock


class LedgerWriter:
    """The state of an open ledger and how records get to disk; not used on its own (see Ledger)."""

    def __init__(self, directory: Path, config: LedgerConfig, clock: Clock, *, read_only: bool) -> None:
        self._directory = directory
        self._config = config
        self._clock = clock
        self._read_only = read_only
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._lock_fd = -1
        self._fd = -1
        self._fd_path = directory  # the open segment's path, for error messages
        self._pending = bytearray()
        self._dirty_since: float | None = None  # monotonic time of the oldest record not yet fsynced
        self._failed: StoreError | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._signer: crypto.Signer | None = None
        self._public_key: bytes | None = None
        self._keys: KeyStore
        self._state: LogState
        self.torn_tail: TornTail | None = None
        # Found at open: records lost below the head file's signed head, or the head file gone from a log
        # that holds checkpoints. Opened for writing, the ledger records either in a ``recovery`` record and
        # carries on; read-only, verify() raises.
        self.truncation: Truncation | None = None
        self.head_missing = False
        self._last_checkpoint_mono = clock.monotonic()
        self._key_generation = -1
        self._signed_head: Checkpoint | None = None  # the newest head published (or, read-only, read)
        self._head_lock = threading.Lock()  # one head-file writer at a time; taken after self._lock, if both
        self._checkpoint_due = False  # for the flusher thread to sign, right after a durable record
        self._last_signed = 0.0  # time.monotonic() of the last checkpoint made (for checkpoint_coalesce_ms)
        self._checkpoint_serial = 0  # counts checkpoints made here, so an older one never replaces a newer
        self._head_serial = 0

    # -- appending ----------------------------------------------------------------------------------------
    def append(self, record_type: str, fields: Mapping[str, Any] | None = None, *,
               personal: Mapping[str, Any] | None = None, epoch: int | None = None) -> RecordRef:
        """Append one record; durable types are fsynced before this returns, the rest within group_commit_ms.

        ``personal`` fields are encrypted under the data key of ``epoch`` (default: the current epoch).
        """
        if record_type not in codec.KNOWN_TYPES:
            codec.check_type(record_type)
        if record_type == "checkpoint":
            raise UsageError("checkpoint records are written by the ledger itself")
        fields = dict(fields or {})
        codec.check_value(fields, "fields")
        if personal is not None:
            codec.check_value(dict(personal), "personal")
        if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
            raise UsageError("epoch must be a non-negative integer")
        with self._lock:
            if self._failed is not None or self._closed or self._read_only:
                self._require_writable()
            ref = self._append_locked(record_type, fields, personal, epoch)
            if self._live_key_changed():
                self._apply_retention()
            # The checkpoint test written out here: it runs for every record, between a durable write and
            # its fsync.
            state, config = self._state, self._config
            since = state.checker.count - state.last_checkpoint_count  # at least this record
            durable = record_type in config.durable_types
            sign = durable or since >= config.checkpoint_every or \
                self._clock.monotonic() - self._last_checkpoint_mono >= config.checkpoint_interval_s
            if sign and not config.flush_thread:  # the record and its checkpoint in one write and one fsync
                self._write_head(*self._append_checkpoint())
                return ref
            if durable or config.group_commit_ms == 0:
                self._sync_locked()
            else:
                self._group_commit()
            if sign:
                self._request_checkpoint()
            return ref

    def _append_and_sync(self, record_type: str, fields: Mapping[str, Any]) -> RecordRef:
        ref = self._append_locked(record_type, fields, None, None)
        self._sync_locked()
        return ref

    def _append_locked(self, record_type: str, fields: Mapping[str, Any], personal: Mapping[str, Any] | None,
                       epoch: int | None) -> RecordRef:
        state = self._state
        if state.segments[-1][1] >= self._config.segment_bytes:
            self._rotate()  # before the record is built: rotation itself appends a checkpoint
        checker = state.checker
        time_ms = self._now_ms()
        if time_ms > codec.MAX_TIME_MS:
            raise StoreError("the system clock is past the year 9999; records cannot be dated")
        seq = checker.count
        sealed = None
        if personal is not None:
            sealed = self._seal(seq, record_type, personal, epoch, time_ms)
        payload = codec.encode_record(seq=seq, time_ms=time_ms, record_type=record_type,
                                      prev_hash=checker.head, fields=fields, sealed=sealed)
        frame, digest = codec.frame_and_hash(payload)
        self._pending += frame
        state.segments[-1][1] += len(frame)
        state.last_by_type[record_type] = codec.Record(seq, time_ms, record_type, checker.head, fields, sealed,
                                                       payload, digest)
        if sealed is not None:
            state.records_per_key[sealed.key_id] += 1
        checker.count += 1
        checker.head = digest
        checker.tree.append_leaf(payload)
        checker.counts[record_type] = checker.counts.get(record_type, 0) + 1
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        if len(self._pending) >= WRITE_BUFFER:
            self._write_pending()
        return RecordRef(seq, digest.hex())

    def _seal(self, seq: int, record_type: str, personal: Mapping[str, Any], epoch: int | None,
              time_ms: int) -> codec.Sealed:
        if epoch is None:
            epoch = time_ms // (self._config.epoch_s * 1000)
        key_id, key = self._keys.key_for_epoch(epoch, time_ms)
        nonce, ciphertext = crypto.seal(key, codec.dumps(dict(personal)), associated_data(seq, record_type))
        return codec.Sealed(key_id, nonce, ciphertext)

    def _live_key_changed(self) -> bool:
        """True once after every change of the key store (a new epoch's key, an erasure)."""
        changed = self._keys.generation != self._key_generation
        self._key_generation = self._keys.generation
        return changed

    def _now_ms(self) -> int:
        return max(0, int(self._clock.wall() * 1000))

    def _write_pending(self) -> None:
        if not self._pending:
            return
        try:
            files.write_all(self._fd, self._pending, self._fd_path)
        except StoreError as exc:
            raise self._fail(exc) from exc
        self._pending.clear()

    def _sync_locked(self) -> None:
        if self._dirty_since is None:  # every record is synced (and so none is pending)
            return
        try:
            files.write_and_sync(self._fd, self._pending, self._fd_path)
        except StoreError as exc:
            raise self._fail(exc) from exc
        self._pending.clear()
        self._dirty_since = None

    def _group_commit(self) -> None:
        """Sync now when the oldest unsynced record is due; otherwise make sure the flusher will."""
        due = self._dirty_since is not None and \
            time.monotonic() - self._dirty_since >= self._config.group_commit_ms / 1000
        if due:
            self._sync_locked()
        elif self._config.flush_thread:
            self._start_flusher()
            self._wake.notify()

    def _start_flusher(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._flusher, name="ledger-flush", daemon=True)
            self._thread.start()

    def _flusher(self) -> None:
        """The background thread: fsyncs group-committed records when due, and signs the checkpoints asked
        for (after durable records, every ``checkpoint_every`` records or ``checkpoint_interval_s``). Only
        making a checkpoint holds the store's lock: its fsync and the head file's write run outside it, so
        that a durable append never waits for them (a burst of them shares one checkpoint)."""
        while True:
            with self._lock:
                signed = self._flusher_work()
            if signed is None:
                return
            serial, checkpoint, fd = signed
            try:
                files.sync_fd(fd, self._fd_path)  # the checkpoint record is durable before the head names it
                self._write_head(serial, checkpoint)
            except StoreError as exc:
                with self._lock:
                    self._fail(exc)
                return
            finally:
                os.close(fd)

    def _flusher_work(self) -> tuple[int, Checkpoint, int] | None:
        """Wait for and do the next piece of work under the lock: a checkpoint appended and written to the
        kernel, with its serial and a duplicate of the segment's fd to fsync; None to stop."""
        while not self._closed and self._failed is None:
            try:
                wait = self._sync_when_due()
                if self._checkpoint_due:
                    gap = self._last_signed + self._config.checkpoint_coalesce_ms / 1000 - time.monotonic()
                    if gap <= 0:
                        self._checkpoint_due = False
                        serial, checkpoint = self._sign_checkpoint()
                        self._write_pending()
                        return serial, checkpoint, os.dup(self._fd)
                    wait = gap if wait is None else min(wait, gap)
            except (StoreError, OSError):
                return None  # a StoreError is recorded in self._failed; the next call reports it
            self._wake.wait(wait)
        return None

    def _sync_when_due(self) -> float | None:
        """Sync group-committed records when due, ask for a checkpoint when records waited
        ``checkpoint_interval_s`` for one; how long until the next thing is due (None: until woken)."""
        waits = []
        if self._dirty_since is not None:
            delay = self._dirty_since + self._config.group_commit_ms / 1000 - time.monotonic()
            if delay <= 0:
                self._sync_locked()
            else:
                waits.append(delay)
        if self._state.checker.count > self._state.last_checkpoint_count:  # records no checkpoint covers
            delay = self._last_checkpoint_mono + self._config.checkpoint_interval_s - self._clock.monotonic()
            if delay <= 0:
                self._checkpoint_due = True
            else:
                waits.append(delay)
        return min(waits) if waits else None

    def _request_checkpoint(self) -> None:
        self._checkpoint_due = True
        self._start_flusher()
        self._wake.notify()

    def _rotate(self) -> None:
        """Close the full segment and start the next one with a signed checkpoint, whose copy in
        checkpoint.cbor then shows when the newest segment goes missing."""
        self._write_head(*self._append_checkpoint())  # it starts the next segment itself

    def _start_next_segment(self) -> None:
        self._sync_locked()
        self._close_fd()
        self._create_segment()

    def _create_segment(self) -> None:
        name = segment_name(self._state.checker.count)
        try:
            self._fd = files.open_for_append(self._directory / name, create=True)
            files.sync_dir(self._directory)
        except StoreError as exc:
            raise self._fail(exc) from exc
        self._state.segments.append([name, 0])
        self._fd_path = self._directory / name

    def _fail(self, exc: StoreError) -> StoreError:
        if self._failed is None:
            self._failed = StoreError(f"the ledger failed and must be reopened after the disk is checked: "
                                      f"{exc.message}", **exc.details)
        return self._failed

    def _require_writable(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise StoreError("the ledger is closed")
        if self._read_only:
            raise StoreError("the ledger is open read-only")

    def checkpoint(self) -> Checkpoint:
        """Sign (count, head, Merkle root, time) now, append it durably, then write it to the head file."""
        with self._lock:
            self._require_writable()
            serial, checkpoint = self._append_checkpoint()
            self._write_head(serial, checkpoint)
            return checkpoint

    def _append_checkpoint(self) -> tuple[int, Checkpoint]:
        """Append a signed checkpoint over every record so far and fsync them; returns it with its serial."""
        signed = self._sign_checkpoint()
        self._sync_locked()
        return signed

    def _sign_checkpoint(self) -> tuple[int, Checkpoint]:
        """Append (not yet durably) a signed checkpoint over every record so far; returns it with its serial."""
        assert self._signer is not None  # a writable store always has its key
        if self._state.segments[-1][1] >= self._config.segment_bytes:
            self._start_next_segment()  # now: a rotation inside the append would move the record it signs
        checker = self._state.checker
        time_ms = self._now_ms()
        root = checker.tree.root()
        message = checkpoint_message(checker.count, checker.head, root, time_ms)
        checkpoint = Checkpoint(checker.count, checker.head, root, time_ms, self._signer.public_key,
                                self._signer.sign(message))
        self._append_locked("checkpoint", checkpoint.as_fields(), None, None)
        checker.last_checkpoint = checkpoint
        checker.checkpoints += 1
        self._state.last_checkpoint_count = checker.count
        self._last_checkpoint_mono = self._clock.monotonic()
        self._last_signed = time.monotonic()
        self._checkpoint_serial += 1
        self._signed_head = checkpoint
        return self._checkpoint_serial, checkpoint

    def _write_head(self, serial: int, checkpoint: Checkpoint) -> None:
        """Write a checkpoint that is durable in the log to the head file, unless a newer one is there.
        Under the store's lock (inline) or not (the flusher); a failure is fatal for the store."""
        with self._head_lock:
            if serial <= self._head_serial:
                return
            try:
                files.atomic_write(self._directory / HEAD_FILE, codec.dumps(checkpoint.as_fields()))
            except StoreError as exc:
                raise self._fail(exc) from exc
            self._head_serial = serial

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _apply_retention(self) -> EraseSummary | None:
        """Destroy the keys past retention: the Ledger's (erasure is not the writer's job)."""
        raise NotImplementedError
