"""The access-request export: one zip file, written and verified in a streaming way (flat memory).

Contents::

    README.txt          what each file is, for a non-engineer
    segments/*.seg      the raw log, byte for byte (authoritative; the chain and signatures are over these)
    records.jsonl       one JSON object per record, personal fields decrypted where the key still exists and
                        marked {"erased": true} where it was destroyed
    manifest.json       schema, creation time, record counts per type, policy versions, chain head, Merkle
    root,
                        the latest signed checkpoint, the public key, and SHA-256 of every other file

:func:`verify_export` (in export_verify.py, re-exported here) checks an export offline: file hashes, the chain
across all segments, every checkpoint signature, the manifest's head and counts, and that records.jsonl
describes exactly the records of the segments. This module writes the bundle; export_format.py holds what
writer and verifier share, export_zip.py the bounds on reading a hostile zip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from agent.errors import ExportError, LogCorrupt, UsageError
from agent.ledger import codec, crypto, files
from agent.ledger.chain import LinkChecker
from agent.ledger.export_format import (
    COPY_CHUNK,
    EXPORT_SCHEMA,
    JSONL_BATCH,
    JSONL_CHUNK,
    MANIFEST,
    MANIFEST_LIMIT,
    MANIFEST_SIGNATURE,
    MAX_MEMBERS,
    README,
    README_TEXT,
    RECORDS,
    SEGMENT_DIR,
    STREAM_BUFFER,
    WRITE_QUEUE,
    ExportSummary,
    Progress,
    iso_second,
    iso_time,
    to_json,
)
from agent.ledger.export_format import LINE_LIMIT as LINE_LIMIT  # re-exported: the format's bounds, as before
from agent.ledger.export_format import ExportReport as ExportReport
from agent.ledger.export_verify import verify_export as verify_export
from agent.ledger.keystore import KeyInfo
from agent.ledger.segments import SegmentScan
from agent.ledger.snapshot import Snapshot, associated_data


def write_export(snapshot: Snapshot, out: Path, *, overwrite: bool = False,
                 progress: Progress | None = None) -> ExportSummary:
    """Write the bundle for ``snapshot`` to ``out`` (atomically: a private temporary file, then a rename)."""
    _check_target(out, overwrite)
    temporary = out.with_name(f".{out.name}.partial")
    try:
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ExportError(f"cannot create the export next to {out.name}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            result = _write_zip(snapshot, handle, progress)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temporary, out, overwrite)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ExportError(f"cannot write the export: {exc.strerror or exc}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    counts, erased = result
    return ExportSummary(path=str(out), records=snapshot.count, erased_records=erased, counts=counts,
                         head=snapshot.head.hex(), bytes=os.path.getsize(out))


def write_export_stream(snapshot: Snapshot, write: Callable[[bytes], None], *, progress: Progress | None = None,
                        notice: str | None = None) -> ExportSummary:
    """Write the bundle for ``snapshot`` as a stream of bytes handed to ``write`` (the control socket's
    export): the same zip as :func:`write_export`, made without seeking (sizes follow each file's data), in
    bounded memory. ``notice``: the plain-words answers about this device's policy, appended to README.txt.
    The summary's ``path`` is empty and ``bytes`` counts what was written."""
    sink = _StreamSink(write)
    with io.BufferedWriter(sink, buffer_size=STREAM_BUFFER) as handle:
        counts, erased = _write_zip(snapshot, handle, progress, notice)
    return ExportSummary(path="", records=snapshot.count, erased_records=erased, counts=counts,
                         head=snapshot.head.hex(), bytes=sink.written)


class _StreamSink(io.RawIOBase):
    """A write-only, unseekable file over a callback: zipfile then writes each size after its file's data."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        super().__init__()
        self._write = write
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._write(chunk)
        self.written += len(chunk)
        return len(chunk)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.is_symlink() and not overwrite:
        raise UsageError(f"{out.name} is a symlink; refusing to write through it")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise UsageError(f"{out.name} already exists (pass --overwrite to replace it)")
    if out.exists() and not out.is_file():
        raise UsageError(f"{out.name} exists and is not a file")
    if not out.parent.is_dir():
        raise UsageError(f"the directory for {out.name} does not exist")


def _publish(temporary: Path, out: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, out)  # replaces a symlink itself, never its target
    else:
        os.link(temporary, out)  # fails if something appeared at out meanwhile: no silent clobbering
        temporary.unlink()
    files.sync_dir(out.parent)


def _write_zip(snapshot: Snapshot, handle: IO[bytes], progress: Progress | None,
               notice: str | None = None) -> tuple[dict[str, int], int]:
    digests: dict[str, dict[str, Any]] = {}
    if len(snapshot.segments) + 4 > MAX_MEMBERS:  # an export that verify-export refuses is no use to anyone
        raise ExportError("the log has more segments than an export can hold", limit=MAX_MEMBERS - 4)
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as archive:
        readme = README_TEXT if notice is None else f"{notice.rstrip()}\n\n\nAbout the files\n\n{README_TEXT}"
        _write_member(archive, README, [readme.encode()], digests)
        for name, size in snapshot.segments:
            chunks = _segment_chunks(snapshot.directory / name, size)
            # segments are mostly ciphertext and hashes, which do not compress: store them as they are
            _write_member(archive, SEGMENT_DIR + name, chunks, digests, compress=False)
        builder = _JsonlBuilder(snapshot, progress)
        _write_member(archive, RECORDS, builder.lines(), digests, background=True)
        manifest = _manifest(snapshot, builder, digests)
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        if len(manifest_bytes) > MANIFEST_LIMIT:  # an export that verify-export refuses is no use to anyone
            raise ExportError("the export's manifest would be larger than verify-export accepts",
                              limit=MANIFEST_LIMIT)
        archive.writestr(MANIFEST, manifest_bytes)
        if snapshot.signer is not None:
            archive.writestr(MANIFEST_SIGNATURE, snapshot.signer.sign(manifest_bytes).hex() + "\n")
    return dict(builder.counts), builder.erased


def _write_member(archive: zipfile.ZipFile, name: str, chunks: Iterator[bytes] | list[bytes],
                  digests: dict[str, dict[str, Any]], *, compress: bool = True,
                  background: bool = False) -> None:
    """Stream ``chunks`` into a new member; ``background``: hash, compress and write them in a second thread
    while this one makes the next chunks."""
    digest = hashlib.sha256()
    size = 0
    info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o600 << 16
    with archive.open(info, "w", force_zip64=True) as member:

        def write(chunk: bytes) -> None:
            nonlocal size
            digest.update(chunk)
            size += len(chunk)
            member.write(chunk)

        if background:
            _consume_in_thread(chunks, write)
        else:
            for chunk in chunks:
                write(chunk)
    digests[name] = {"sha256": digest.hexdigest(), "bytes": size}


def _consume_in_thread(chunks: Iterable[bytes], consume: Callable[[bytes], None]) -> None:
    """Take ``chunks`` in this thread and hand each to ``consume`` in a worker thread, in order.

    SHA-256, deflate, CRC-32 and file writes release the GIL on large buffers, so for records.jsonl they run
    on a second core while this thread decodes and decrypts the next records. The queue is short, so memory
    stays bounded. An error on either side stops both, and is raised here: the worker's only after it has
    stopped, so that nothing writes to the archive once this returns.
    """
    handoff: queue.Queue[bytes | None] = queue.Queue(maxsize=WRITE_QUEUE)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            while (chunk := handoff.get()) is not None:
                consume(chunk)
        except BaseException as exc:  # handed to the producer thread, which raises it
            failure.append(exc)
            while handoff.get() is not None:  # keep taking, so that the producer never blocks on a full queue
                pass

    worker = threading.Thread(target=work, name="ledger-export-writer", daemon=True)
    worker.start()
    try:
        for chunk in chunks:
            if failure:
                break
            handoff.put(chunk)
    finally:
        handoff.put(None)
        worker.join()
    if failure:
        raise failure[0]


def _segment_chunks(path: Path, size: int) -> Iterator[bytes]:
    with os.fdopen(files.open_for_read(path), "rb") as stream:
        remaining = size
        while remaining > 0:
            chunk = stream.read(min(COPY_CHUNK, remaining))
            if not chunk:
                raise LogCorrupt("segment is shorter than the ledger wrote it", segment=path.name,
                                 offset=size - remaining)
            remaining -= len(chunk)
            yield chunk


class _JsonlBuilder:
    """Turns the snapshot's records into JSON lines, checking the chain on the way (an export never hides
    corruption)."""

    def __init__(self, snapshot: Snapshot, progress: Progress | None) -> None:
        self._snapshot = snapshot
        self._progress = progress
        # The chain's links are checked on the way (an export never hides a damaged log); the Merkle root and
        # signatures are the verifier's job, which recomputes them from the exported segments.
        self.checker = LinkChecker()
        self.erased = 0
        self.policy_versions: set[str] = set()
        self._openers: dict[str, crypto.Opener | None] = {}
        self._second = -1  # the whole second of the last record's time, and its text
        self._second_text = ""

    @property
    def counts(self) -> dict[str, int]:
        """Records per type: the checker counts every record it passes, and each of those becomes a line."""
        return self.checker.counts

    def lines(self) -> Iterator[bytes]:
        """records.jsonl in chunks of JSONL_CHUNK lines (progress every JSONL_BATCH records). The chunks are
        large because each one costs a few GIL handovers between this thread and the writer thread, which
        wait up to the 5 ms switch interval each: chunks of 1024 lines made the export a sixth slower."""
        batch: list[str] = []
        add_line, line_of = batch.append, self._line
        done = 0
        for name, size in self._snapshot.segments:
            path = self._snapshot.directory / name
            with os.fdopen(files.open_for_read(path), "rb") as stream:
                for parts in SegmentScan(stream, name, limit=size).parts(self.checker):
                    add_line(line_of(parts))
                    done += 1
                    if not done % JSONL_BATCH:
                        if len(batch) >= JSONL_CHUNK:
                            yield "".join(batch).encode()
                            batch.clear()
                        self._report(done)
        if batch:
            yield "".join(batch).encode()
        self._report(done)
        if (self.checker.count, self.checker.head) != (self._snapshot.count, self._snapshot.head):
            raise ExportError("the log changed while it was being exported")

    def _report(self, done: int) -> None:
        if self._progress is not None:
            self._progress(done, self._snapshot.count)

    def _line(self, parts: codec.RecordParts) -> str:
        """One line of records.jsonl, newline included."""
        seq, time_ms, record_type, _prev, fields, sealed, digest = parts
        if "policy_version" in fields:
            version = fields["policy_version"]
            if isinstance(version, str | int) and not isinstance(version, bool):
                self.policy_versions.add(str(version))
        seconds, millis = divmod(time_ms, 1000)
        if seconds != self._second:  # records come in bursts within a second: format each second once
            self._second_text = iso_second(seconds)
            self._second = seconds
        entry: dict[str, Any] = {"seq": seq, "time": f"{self._second_text}.{millis:03d}Z", "time_ms": time_ms,
                                 "type": record_type, "fields": to_json(fields)}
        if sealed is not None:
            entry["personal"] = self._personal(seq, record_type, sealed)
        entry["hash"] = digest.hex()
        return json.dumps(entry, ensure_ascii=False) + "\n"

    def _personal(self, seq: int, record_type: str, sealed: codec.SealedParts) -> Any:
        key_id, nonce, ciphertext = sealed
        if key_id in self._openers:
            opener = self._openers[key_id]
        else:  # one cipher object per key, not one per record
            info = self._snapshot.keys.get(key_id)
            opener = self._openers[key_id] = crypto.Opener(info.key) if info is not None and info.key else None
        if opener is None:
            self.erased += 1
            return {"erased": True, "key_id": key_id}
        plaintext = opener.open(nonce, ciphertext, associated_data(seq, record_type))
        if plaintext is None:
            return {"unreadable": True, "key_id": key_id}
        return to_json(codec.loads(plaintext))


def _manifest(snapshot: Snapshot, builder: _JsonlBuilder,
              digests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    checkpoint = snapshot.checkpoint
    return {
        "schema": EXPORT_SCHEMA,
        "record_schema": codec.SCHEMA_VERSION,
        "created": iso_time(snapshot.time_ms),
        "created_ms": snapshot.time_ms,
        "records": snapshot.count,
        "record_counts": dict(sorted(builder.counts.items())),
        "erased_records": builder.erased,
        "policy_versions": sorted(builder.policy_versions),
        "chain": {"head": snapshot.head.hex(), "merkle_root": snapshot.merkle_root.hex(),
                  "segments": [name for name, _ in snapshot.segments]},
        "checkpoint": checkpoint.as_json() if checkpoint is not None else None,
        "public_key": snapshot.public_key.hex() if snapshot.public_key is not None else None,
        "key_fingerprint": crypto.key_fingerprint(snapshot.public_key) if snapshot.public_key is not None
        else None,
        # the newest signed head (the head file's): records missing below it are found by verify-export
        "signed_head": snapshot.signed_head.as_json() if snapshot.signed_head is not None else None,
        "erased_keys": [_tombstone(info) for info in snapshot.keys.values() if info.key is None],
        "torn_tail": None if snapshot.torn_tail is None else {
            "segment": snapshot.torn_tail.segment, "offset": snapshot.torn_tail.offset,
            "bytes": snapshot.torn_tail.length},
        "files": digests,
    }


def _tombstone(info: KeyInfo) -> dict[str, Any]:
    return {"key_id": info.key_id, "epoch": info.epoch, "created": iso_time(info.created_ms),
            "destroyed": iso_time(info.destroyed_ms or 0)}


def terminal_progress(stream: IO[str] | None = None) -> Progress | None:
    """A progress bar on ``stream`` (default stderr) when it is a terminal; None (no output) otherwise."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        return None
    state = {"shown": -1}

    def show(done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        if percent == state["shown"]:
            return
        state["shown"] = percent
        bar = "#" * (percent // 4)
        end = "\n" if done >= total else ""
        stream.write(f"\rexporting [{bar:<25}] {percent:3d}% {done}/{total} records{end}")
        stream.flush()

    return show
