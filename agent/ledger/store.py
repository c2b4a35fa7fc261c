"""The ledger store: segments on disk, durability policy, recovery, checkpoints, erasure.

Layout of ``<state dir>/ledger/`` (0700, every file 0600)::

    00000000000000000000.seg   segments, named by the sequence number of their first record
    keys.cbor                  data keys and tombstones (see keystore)
    signing.key                the device's Ed25519 checkpoint key (32-byte seed)
    checkpoint.cbor            the head file: the newest signed checkpoint (also in the log), so that
                               records lost below it (a cut or deleted last segment) are noticed
    lock                       flock: one writer at a time; offline tools refuse a store in use

Thread safety: every public method takes one lock. Group-committed records are fsynced by a small background
thread within ``group_commit_ms`` (the bound on what a power cut may lose); durable records are fsynced before
:meth:`Ledger.append` returns. A failed write or fsync makes the store unusable (Linux may drop the dirty
pages and clear the error, so a retry could falsely succeed): every later call raises the same
:class:`StoreError`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.errors import ConfigError, LogCorrupt, StoreError, UsageError
from agent.ledger import codec, crypto, files
from agent.ledger.chain import (
    ChainChecker,
    Checkpoint,
    Truncation,
    check_head,
    checkpoint_message,
    first_seq_of,
    segment_name,
)
from agent.ledger.export import write_export, write_export_stream
from agent.ledger.export_format import ExportSummary
from agent.ledger.keystore import KeyInfo, KeyStore
from agent.ledger.segments import SegmentScan
from agent.ledger.snapshot import Snapshot as Snapshot
from agent.ledger.snapshot import TornTail as TornTail
from agent.ledger.snapshot import associated_data as associated_data
from agent.model import Clock, SystemClock

LEDGER_DIR = "ledger"
SIGNING_KEY_FILE = "signing.key"
CHECKPOINT_FILE = "checkpoint.cbor"  # the head file
HEAD_FILE = CHECKPOINT_FILE
HEAD_LIMIT = 4096  # a checkpoint's CBOR is under 300 bytes
LOCK_FILE = "lock"
WRITE_BUFFER = 256 * 1024  # hand group-committed bytes to the kernel in batches of this size
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """``group_commit_ms``: how much a power cut may lose of high-rate records (0: fsync every record).
    A signed checkpoint follows every record of ``durable_types`` (in the same fsync), and comes at least every
    ``checkpoint_every`` records or ``checkpoint_interval_s`` seconds while records are added, and at close.
    With ``flush_thread``, the thread signs those checkpoints, no sooner than ``checkpoint_coalesce_ms``
    after the previous one: a burst of durable records then shares one instead of paying three more fsyncs
    each (see docs/ledger.md); without it, each is signed inline, in the same fsync as its record.
    ``epoch_s``: length of a pseudonym epoch, i.e. of one data key's use. ``retention_days``: keys retired
    longer ago than this are destroyed automatically (0 keeps them until erased)."""

    group_commit_ms: int = 1000
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    checkpoint_coalesce_ms: int = 100
    segment_bytes: int = 64 << 20
    epoch_s: int = 86_400
    retention_days: int = 0
    flush_thread: bool = True  # False: group commit is enforced only on the next append or flush (tests)
    durable_types: frozenset[str] = codec.DURABLE_TYPES

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.group_commit_ms <= 1000, "group_commit_ms must be 0 to 1000"),
            (self.checkpoint_every >= 1, "checkpoint_every must be at least 1"),
            (self.checkpoint_interval_s > 0, "checkpoint_interval_s must be positive"),
            (0 <= self.checkpoint_coalesce_ms <= 1000, "checkpoint_coalesce_ms must be 0 to 1000"),
            (self.segment_bytes >= 4096, "segment_bytes must be at least 4096"),
            (self.epoch_s >= 1, "epoch_s must be at least 1"),
            (self.retention_days >= 0, "retention_days must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"ledger: {message}")


@dataclass(frozen=True, slots=True)
class RecordRef:
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    records: int
    segments: int
    head: str
    merkle_root: str
    checkpoints: int
    last_checkpoint: int | None
    counts: dict[str, int]
    torn_tail: TornTail | None = None


@dataclass(frozen=True, slots=True)
class EraseSummary:
    keys_destroyed: int
    epochs: tuple[int, ...]
    span_ms: tuple[int, int] | None
    records_affected: int
    record: RecordRef | None


@dataclass
class _State:
    """What the open scan learnt and appends keep up to date."""

    checker: ChainChecker
    segments: list[list[Any]] = field(default_factory=list)  # [name, size]
    last_by_type: dict[str, codec.Record] = field(default_factory=dict)  # the newest record of each type
    records_per_key: Counter[str] = field(default_factory=Counter)
    last_checkpoint_count: int = 0


class Ledger:
    """Append-only, hash-chained, crash-safe record store; see the package docstring for the API."""

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
        self._state: _State
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

    # -- opening ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, state_dir: Path, config: LedgerConfig | None = None, clock: Clock | None = None, *,
             read_only: bool = False) -> Ledger:
        """Open (creating when needed) the ledger in ``state_dir``; recover a torn tail; check the whole
        chain.

        ``read_only``: for offline tools: create nothing, change nothing, report a torn tail instead of
        cutting it.
        """
        ledger = cls(Path(state_dir) / LEDGER_DIR, config or LedgerConfig(), clock or SystemClock(),
                     read_only=read_only)
        try:
            ledger._open()
        except BaseException:
            ledger._release()
            raise
        return ledger

    def _open(self) -> None:
        if self._read_only:
            if not self._directory.is_dir():
                raise StoreError("no ledger in this state dir", path=str(self._directory))
        else:
            files.ensure_private_dir(self._directory.parent)
            files.ensure_private_dir(self._directory)
        self._lock_fd = files.lock_exclusive(self._directory / LOCK_FILE, shared=self._read_only)
        self._load_signer()
        self._keys = KeyStore.load(self._directory, read_only=self._read_only)
        head = self._signed_head = self._read_head()
        self._state = self._scan(head)
        self._check_head(head)
        if self._read_only:
            return
        self._open_for_writing()
        self._record_recoveries(head)
        self._apply_retention()

    def _record_recoveries(self, head: Checkpoint | None) -> None:
        """State in the log what opening found and changed, then sign the result, so that the loss stays
        visible in the log once the head file describes the shortened log."""
        if self.torn_tail is not None:
            tail = self.torn_tail
            self._append_and_sync("recovery", {"segment": tail.segment, "offset": tail.offset,
                                               "truncated_bytes": tail.length})
        if self.truncation is not None and head is not None:
            lost = self.truncation
            self._append_and_sync("recovery", {"reason": "truncated", "missing_records": lost.missing,
                                               "head_records": lost.head_size, "found_records": lost.found_size,
                                               "lost_head_sig": head.signature.hex()})
        if self.head_missing:
            self._append_and_sync("recovery", {"reason": "head_file_missing",
                                               "checkpoints": self._state.checker.checkpoints})
        if self.torn_tail is not None or self.truncation is not None or self.head_missing:
            self.checkpoint()

    def _load_signer(self) -> None:
        path = self._directory / SIGNING_KEY_FILE
        private = files.read_small(path, HEAD_LIMIT)  # 32 bytes; never read a huge file whole
        if private is None and not self._read_only:
            if self._segment_names():  # a new key would not match the checkpoints the log already holds
                raise StoreError(f"{SIGNING_KEY_FILE} is missing but the ledger has records; restore it from a "
                                 "backup", path=str(path))
            private = crypto.Signer.generate_private_bytes()
            files.atomic_write(path, private)
        if private is not None:
            self._signer = crypto.Signer(private)
            self._public_key = self._signer.public_key

    def _segment_names(self) -> list[str]:
        try:
            names = os.listdir(self._directory)
        except OSError as exc:
            raise files.store_error("list", self._directory, exc) from exc
        return sorted(name for name in names if first_seq_of(name) is not None)

    def _scan(self, head: Checkpoint | None) -> _State:
        state = _State(checker=ChainChecker(self._public_key, watch=head))
        names = self._segment_names()
        for index, name in enumerate(names):
            scan = self._scan_segment(name, state)
            state.segments.append([name, scan.end])
            if scan.tail is None:
                continue
            if index != len(names) - 1:
                raise LogCorrupt("segment ends inside a record", segment=name, offset=scan.tail.offset)
            self.torn_tail = TornTail(name, scan.tail.offset, scan.tail.length)
        if state.checker.last_checkpoint is not None:
            state.last_checkpoint_count = state.checker.last_checkpoint.count + 1
        return state

    def _scan_segment(self, name: str, state: _State) -> SegmentScan:
        path = self._directory / name
        with os.fdopen(files.open_for_read(path), "rb") as stream:
            scan = SegmentScan(stream, name)
            try:
                for record in scan.records(state.checker):
                    state.last_by_type[record.type] = record
                    if record.sealed is not None:
                        state.records_per_key[record.sealed.key_id] += 1
            except OSError as exc:
                raise files.store_error("read", path, exc) from exc
        return scan

    def _read_head(self) -> Checkpoint | None:
        """The head file's signed checkpoint (None when there is none), checked against the device key."""
        raw = files.read_small(self._directory / HEAD_FILE, HEAD_LIMIT)
        if raw is None:
            return None
        try:
            checkpoint = Checkpoint.from_fields(codec.loads(raw))
        except (KeyError, TypeError, ValueError) as exc:  # not CBOR (codec.loads), or not a checkpoint
            raise LogCorrupt("the head file is damaged", segment=HEAD_FILE, offset=0) from exc
        if self._public_key is None:  # read-only, and the device key is gone
            raise LogCorrupt(f"{SIGNING_KEY_FILE} is missing: the head file cannot be checked against the "
                             "device key", segment=SIGNING_KEY_FILE, offset=0)
        if checkpoint.public_key != self._public_key:
            raise LogCorrupt(f"the head file is signed by another key than {SIGNING_KEY_FILE}", segment=HEAD_FILE,
                             offset=0)
        if not checkpoint.valid():
            raise LogCorrupt("the head file's signature is invalid", segment=HEAD_FILE, offset=0)
        return checkpoint

    def _check_head(self, head: Checkpoint | None) -> None:
        state = self._state
        name, size = state.segments[-1] if state.segments else (HEAD_FILE, 0)
        self.truncation = check_head(state.checker, segment=str(name), offset=int(size))
        self.head_missing = head is None and state.checker.checkpoints > 0

    def _head_error(self, checker: ChainChecker, head_missing: bool, segment: str, offset: int) -> None:
        """Raise what the head check of a whole re-read found (see verify)."""
        truncation = check_head(checker, segment=segment, offset=offset)
        if truncation is not None:
            raise truncation.error(segment=segment, offset=offset)
        if head_missing:
            raise LogCorrupt("the head file is missing although the log holds signed checkpoints: records lost "
                             "from its end cannot be ruled out", segment=HEAD_FILE, offset=0,
                             checkpoints=checker.checkpoints)

    def _open_for_writing(self) -> None:
        if self.torn_tail is not None:
            files.truncate(self._directory / self.torn_tail.segment, self.torn_tail.offset)
        if not self._state.segments:
            self._create_segment()
            return
        name = str(self._state.segments[-1][0])
        self._fd = files.open_for_append(self._directory / name, create=False)
        self._fd_path = self._directory / name

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

    # -- writing and syncing ------------------------------------------------------------------------------
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

    # -- checkpoints --------------------------------------------------------------------------------------
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

    def key_fingerprint(self) -> str:
        """The device key's fingerprint (see :func:`agent.ledger.crypto.key_fingerprint`), for pinning an
        export with ``verify-export --key``."""
        if self._public_key is None:
            raise StoreError(f"{SIGNING_KEY_FILE} is missing: the device key is unknown")
        return crypto.key_fingerprint(self._public_key)

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

    # -- erasure ------------------------------------------------------------------------------------------
    def erase(self, *, epoch: int | None = None, time_range: tuple[int, int] | None = None,
              everything: bool = False, key_ids: Collection[str] | None = None) -> EraseSummary:
        """Destroy the data keys of one pseudonym epoch, of a time range (ms), or all of them; record it
        durably.

        The records stay (the chain still verifies); their personal fields can no longer be decrypted by
        anyone.
        A time range erases whole keys, so the reported ``span_ms`` may be wider than the range asked for.
        """
        if [epoch is not None, time_range is not None, everything, key_ids is not None].count(True) != 1:
            raise UsageError("erase needs exactly one of: epoch, time_range, everything, key_ids")
        if key_ids is not None:  # the keys that sealed chosen records (erase --purpose)
            chosen = frozenset(key_ids)
            return self._erase(lambda info: info.key_id in chosen, "key_ids", {})
        if time_range is not None:
            if not (isinstance(time_range, tuple | list) and len(time_range) == 2
                    and all(isinstance(value, int) for value in time_range)
                    and time_range[0] <= time_range[1]):
                raise UsageError("time_range must be two integer milliseconds, start <= end")
            start_ms, end_ms = time_range
            return self._erase(lambda info: info.overlaps(start_ms, end_ms), "time_range",
                               {"from_ms": start_ms, "to_ms": end_ms})
        if epoch is not None:
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                raise UsageError("epoch must be an integer")
            return self._erase(lambda info: info.epoch == epoch, "epoch", {"epoch": epoch})
        return self._erase(lambda info: True, "everything", {})

    def _erase(self, select: Callable[[KeyInfo], bool], scope: str, details: dict[str, Any]) -> EraseSummary:
        with self._lock:
            self._require_writable()
            return self._destroy_keys(select, {"reason": "erase_request", "scope": scope, **details})

    def apply_retention(self) -> EraseSummary | None:
        """Destroy keys retired more than ``retention_days`` ago (also done on open and at each new key)."""
        with self._lock:
            self._require_writable()
            return self._apply_retention()

    def _apply_retention(self) -> EraseSummary | None:
        if self._config.retention_days == 0:
            return None
        cutoff = self._now_ms() - self._config.retention_days * DAY_MS
        summary = self._destroy_keys(lambda info: info.retired_ms is not None and info.retired_ms < cutoff,
                                     {"reason": "retention", "retention_days": self._config.retention_days})
        return summary if summary.keys_destroyed else None

    def _destroy_keys(self, select: Callable[[KeyInfo], bool], fields: dict[str, Any]) -> EraseSummary:
        destroyed = self._keys.destroy(select, self._now_ms())
        if not destroyed and fields.get("reason") == "retention":
            return EraseSummary(0, (), None, 0, None)
        affected = sum(self._state.records_per_key[info.key_id] for info in destroyed)
        span = (min(info.created_ms for info in destroyed),
                max(info.retired_ms or info.created_ms for info in destroyed)) if destroyed else None
        epochs = tuple(sorted({info.epoch for info in destroyed}))
        record_fields = {**fields, "key_ids": [info.key_id for info in destroyed], "epochs": list(epochs),
                         "records_affected": affected}
        if span is not None:
            record_fields.update(span_from_ms=span[0], span_to_ms=span[1])
        ref = self._append_and_sync("key_destroyed", record_fields)
        self._live_key_changed()
        return EraseSummary(len(destroyed), epochs, span, affected, ref)

    # -- reading ------------------------------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """(number of records, hex hash of the last one; 64 zeros when empty)."""
        with self._lock:
            return self._state.checker.count, self._state.checker.head.hex()

    def last_record_of_type(self, record_type: str) -> codec.Record | None:
        with self._lock:
            return self._state.last_by_type.get(record_type)

    def open_personal(self, record: codec.Record) -> dict[str, Any] | None:
        """The decrypted personal fields of ``record``; None when it has none or its key was destroyed."""
        if record.sealed is None:
            return None
        with self._lock:
            key = self._keys.key(record.sealed.key_id)
        return open_sealed(record, key)

    def records(self) -> Iterator[codec.Record]:
        """Every record in log order (of a snapshot taken now), chain-checked as it is read."""
        snapshot = self.snapshot()
        checker = ChainChecker(snapshot.public_key)
        for name, size in snapshot.segments:
            path = snapshot.directory / name
            with os.fdopen(files.open_for_read(path), "rb") as stream:
                try:
                    yield from SegmentScan(stream, name, limit=size).records(checker)
                except OSError as exc:
                    raise files.store_error("read", path, exc) from exc

    def snapshot(self) -> Snapshot:
        """A consistent view (everything appended so far is written to the kernel first)."""
        with self._lock:
            if self._failed is not None:
                raise self._failed
            if not self._read_only and not self._closed:
                self._write_pending()
            checker = self._state.checker
            return Snapshot(directory=self._directory,
                            segments=tuple((str(name), int(size)) for name, size in self._state.segments),
                            count=checker.count, head=checker.head, merkle_root=checker.tree.root(),
                            public_key=self._public_key, signer=self._signer,
                            checkpoint=checker.last_checkpoint,
                            keys=self._keys.snapshot(), torn_tail=self.torn_tail, time_ms=self._now_ms(),
                            signed_head=self._signed_head)

    def verify(self) -> VerifyReport:
        """Re-read every segment and recompute the chain, the Merkle root and every checkpoint signature.

        Raises :class:`LogCorrupt` naming the segment and offset of the first problem, and
        :class:`~agent.errors.LogTruncated` (naming how many) when records are missing below the head file's
        signed head; also when the head file is gone from a log that holds checkpoints (see docs/ledger.md).
        """
        head = self._read_head()  # before the snapshot, so that it never describes more than the snapshot
        snapshot = self.snapshot()
        checker = ChainChecker(snapshot.public_key, watch=head)
        for name, size in snapshot.segments:
            path = snapshot.directory / name
            with os.fdopen(files.open_for_read(path), "rb") as stream:
                scan = SegmentScan(stream, name, limit=size)
                try:
                    for _ in scan.records(checker):
                        pass
                except OSError as exc:
                    raise files.store_error("read", path, exc) from exc
            if scan.tail is not None or scan.end != size:
                raise LogCorrupt("segment is shorter than the ledger wrote it", segment=name, offset=scan.end)
        last = snapshot.segments[-1] if snapshot.segments else (HEAD_FILE, 0)
        if (checker.count, checker.head) != (snapshot.count, snapshot.head):
            raise LogCorrupt("the log on disk differs from the one in memory", segment=last[0],
                             offset=last[1])
        self._head_error(checker, head is None and checker.checkpoints > 0, last[0], last[1])
        last_checkpoint = checker.last_checkpoint.count if checker.last_checkpoint is not None else None
        return VerifyReport(records=checker.count, segments=len(snapshot.segments), head=checker.head.hex(),
                            merkle_root=checker.tree.root().hex(), checkpoints=checker.checkpoints,
                            last_checkpoint=last_checkpoint, counts=dict(checker.counts),
                            torn_tail=snapshot.torn_tail)

    def export(self, out: Path, *, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None) -> ExportSummary:
        """Write the access-request bundle (see :mod:`agent.ledger.export`); returns its ExportSummary."""
        return write_export(self.snapshot(), Path(out), overwrite=overwrite, progress=progress)

    def export_stream(self, write: Callable[[bytes], None], *, progress: Callable[[int, int], None] | None = None,
                      notice: str | None = None) -> ExportSummary:
        """The same bundle, handed to ``write`` piece by piece (the control socket's export); no file."""
        return write_export_stream(self.snapshot(), write, progress=progress, notice=notice)

    # -- closing ------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Make every record appended so far durable."""
        with self._lock:
            self._require_writable()
            self._sync_locked()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if not self._read_only and self._failed is None:
                    self._sign_at_close()
            finally:
                self._closed = True
                self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._release()

    def _sign_at_close(self) -> None:
        """A clean stop leaves a checkpoint over every record, and the head file naming it."""
        if self._state.checker.count > self._state.last_checkpoint_count:
            self._write_head(*self._append_checkpoint())
        self._sync_locked()  # a checkpoint the flusher thread is still writing out, for one

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _release(self) -> None:
        self._close_fd()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def open_sealed(record: codec.Record, key: bytes | None) -> dict[str, Any] | None:
    if record.sealed is None or key is None:
        return None
    plaintext = crypto.unseal(key, record.sealed.nonce, record.sealed.ciphertext,
                              associated_data(record.seq, record.type))
    if plaintext is None:
        return None
    value = codec.loads(plaintext)
    return value if isinstance(value, dict) else None
