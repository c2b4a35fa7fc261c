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
import time as time  # kept importable here: tests patch agent.ledger.store.time (the writer uses it)
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.errors import LogCorrupt, StoreError, UsageError
from agent.ledger import codec, crypto, files
from agent.ledger.chain import ChainChecker, Checkpoint, check_head
from agent.ledger.config import DAY_MS, HEAD_FILE, LEDGER_DIR, LOCK_FILE, SIGNING_KEY_FILE
from agent.ledger.config import EraseSummary as EraseSummary  # re-exported: the store's API, as before
from agent.ledger.config import LedgerConfig as LedgerConfig
from agent.ledger.config import RecordRef as RecordRef
from agent.ledger.config import VerifyReport as VerifyReport
from agent.ledger.export import write_export, write_export_stream
from agent.ledger.export_format import ExportSummary
from agent.ledger.keystore import KeyInfo, KeyStore
from agent.ledger.segments import SegmentScan
from agent.ledger.snapshot import Snapshot as Snapshot
from agent.ledger.snapshot import TornTail as TornTail
from agent.ledger.snapshot import associated_data as associated_data
from agent.ledger.store_open import load_signer, raise_head_error, read_head, scan_log
from agent.ledger.writer import LedgerWriter
from agent.model import Clock, SystemClock


class Ledger(LedgerWriter):
    """Append-only, hash-chained, crash-safe record store; see the package docstring for the API."""

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
        self._signer = load_signer(self._directory, read_only=self._read_only)
        self._public_key = self._signer.public_key if self._signer is not None else None
        self._keys = KeyStore.load(self._directory, read_only=self._read_only)
        head = self._signed_head = read_head(self._directory, self._public_key)
        self._state, self.torn_tail = scan_log(self._directory, self._public_key, head)
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

    def _check_head(self, head: Checkpoint | None) -> None:
        state = self._state
        name, size = state.segments[-1] if state.segments else (HEAD_FILE, 0)
        self.truncation = check_head(state.checker, segment=str(name), offset=int(size))
        self.head_missing = head is None and state.checker.checkpoints > 0

    def _open_for_writing(self) -> None:
        if self.torn_tail is not None:
            files.truncate(self._directory / self.torn_tail.segment, self.torn_tail.offset)
        if not self._state.segments:
            self._create_segment()
            return
        name = str(self._state.segments[-1][0])
        self._fd = files.open_for_append(self._directory / name, create=False)
        self._fd_path = self._directory / name

    def key_fingerprint(self) -> str:
        """The device key's fingerprint (see :func:`agent.ledger.crypto.key_fingerprint`), for pinning an
        export with ``verify-export --key``."""
        if self._public_key is None:
            raise StoreError(f"{SIGNING_KEY_FILE} is missing: the device key is unknown")
        return crypto.key_fingerprint(self._public_key)

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
        # before the snapshot, so that it never describes more than the snapshot
        head = read_head(self._directory, self._public_key)
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
        raise_head_error(checker, head is None and checker.checkpoints > 0, last[0], last[1])
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
