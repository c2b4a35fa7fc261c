"""The access-request export: one zip file, written and verified in a streaming way (flat memory).

Contents::

    README.txt          what each file is, for a non-engineer
    segments/*.seg      the raw log, byte for byte (authoritative; the chain and signatures are over these)
    records.jsonl       one JSON object per record, personal fields decrypted where the key still exists and
                        marked {"erased": true} where it was destroyed
    manifest.json       schema, creation time, record counts per type, policy versions, chain head, Merkle
    root,
                        the latest signed checkpoint, the public key, and SHA-256 of every other file

:func:`verify_export` checks an export offline: file hashes, the chain across all segments, every checkpoint
signature, the manifest's head and counts, and that records.jsonl describes exactly the records of the
segments.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import os
import queue
import stat
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.errors import ExportError, LogCorrupt, UsageError
from agent.ledger import codec, crypto, files
from agent.ledger.chain import ChainChecker, Checkpoint, LinkChecker, check_head, first_seq_of
from agent.ledger.keystore import KeyInfo
from agent.ledger.segments import SegmentScan
from agent.ledger.snapshot import Snapshot, associated_data

EXPORT_SCHEMA = "quectel-privacy-agent/export/1"
MANIFEST = "manifest.json"
MANIFEST_SIGNATURE = "manifest.sig"  # Ed25519 over manifest.json's bytes, hex, by the device key
RECORDS = "records.jsonl"
README = "README.txt"
SEGMENT_DIR = "segments/"
COPY_CHUNK = 1 << 20
STREAM_BUFFER = 256 << 10  # a streamed export hands on writes of at least this much (zip headers are tiny)
JSONL_BATCH = 1024  # records per progress report
JSONL_CHUNK = 4096  # lines (at least) per chunk handed to the writer thread, about 1.3 MB: see lines()
WRITE_QUEUE = 2  # chunks waiting for the writer thread: bounds the memory the export uses
# What the verifier reads whole, and so must bound (a zip member a few KiB long can inflate to gigabytes):
# manifest.json grows by about 200 bytes per segment and per erased key, so 8 MiB is some 40,000 of them
# (2.5 TB of log at the default segment size); the writer refuses to make a larger one.
MANIFEST_LIMIT = 8 << 20
SIGNATURE_LIMIT = 4096  # manifest.sig: 128 hex digits and a newline
# A record is at most codec.MAX_PAYLOAD bytes of CBOR, and JSON spells none of them more than 13 times as long
# (an empty byte string in a list: one byte of CBOR, `{"hex": ""}, ` in JSON); a longer line is no record.
LINE_LIMIT = 16 * codec.MAX_PAYLOAD
# What the writer uses; the verifier refuses the rest (encryption, other compression methods) up front, as
# zipfile would fail on them with exceptions of its own mid-way.
_COMPRESSION_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# Bounds on a hostile zip, checked before anything is inflated. An export holds four files and its segments
# (20,000 of them are 1.2 TB of log at the default segment size); the writer refuses to make a larger one.
MAX_MEMBERS = 20_000
# zipfile reads the whole central directory in one read and makes an object per entry (some 550 bytes each):
# no read while the directory is parsed may exceed this, which bounds the entries (46 bytes at least each)
# and their memory. An export's entries take about 110 bytes each.
DIRECTORY_LIMIT = MAX_MEMBERS * 128
# Any later single read: the manifest is read whole, everything else in COPY_CHUNK pieces.
READ_LIMIT = MANIFEST_LIMIT + 2 * COPY_CHUNK
# Segments are stored and records.jsonl (whose every line holds a 64-digit hash) deflates some 5 times, so a
# genuine export inflates to about twice its size; one whose files claim more than this is a zip bomb.
INFLATE_RATIO_LIMIT = 64
INFLATE_SLACK = 64 << 20
_UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patched data, strong encryption
_JSON_SCALARS = frozenset({str, int, bool, type(None)})
Progress = Callable[[int, int], None]

README_TEXT = """\
This file is a copy of everything the privacy agent on this device has recorded about its use of your
location and identifiers, as you asked for it.

records.jsonl
    One line per event, oldest first, readable by people and by programs (JSON). Each line says what happened
    ("type"), when ("time", in UTC), and the details ("fields"). Types you may see:
      fix_access    something on the device read your location, and for which purpose
      upload        data left the device: to whom, where, and for which purpose
      consent       you gave or withdrew a permission
      switch        the location switch was turned on or off
      request       a request you made (a copy like this one, a deletion)
      incident      something went wrong that you should know about
      key_destroyed data was erased: the key that could read it was destroyed
      checkpoint    a digitally signed seal over all the events before it
      recovery      the device restarted after a crash and cut off an incomplete last entry
    Location and other personal details are under "personal". Where they were erased, you see
    {"erased": true} instead: nobody, including the device, can read them any more.

segments/
    The original log files, byte for byte. Each entry contains a fingerprint (SHA-256 hash) of the entry
    before it, so that removing or changing any entry breaks the chain. The personal parts are stored
    encrypted.

manifest.json
    A summary: when this copy was made, how many entries of each type it holds, the policy versions in force,
    the fingerprint of the last entry, the device's signing key and its latest signed seal, and a fingerprint
    of every other file in this archive so you can check nothing was changed.

manifest.sig
    The device's digital signature over manifest.json, with the signing key named in the manifest.

To check this file, run:  privacy-agent verify-export <this file>
"""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: str
    records: int
    erased_records: int
    counts: dict[str, int]
    head: str
    bytes: int


@dataclass(frozen=True, slots=True)
class ExportReport:
    """``key_pinned``: the signing key was checked against ``verify_export(key=...)``; when False, anyone
    could have made an export that verifies with a key of their own. ``signed_head_records``: how many records
    the newest signed head it carries vouches for (None: an export of a log that had none)."""

    records: int
    counts: dict[str, int]
    head: str
    merkle_root: str
    checkpoints: int
    public_key: str
    erased_records: int
    key_fingerprint: str = ""
    key_pinned: bool = False
    signed_head_records: int | None = None


# -- writing ------------------------------------------------------------------------------------------------
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


def iso_time(time_ms: int) -> str:
    seconds, millis = divmod(time_ms, 1000)
    return f"{iso_second(seconds)}.{millis:03d}Z"


def iso_second(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def to_json(value: Any) -> Any:
    """CBOR values as JSON: byte strings become {"hex": ...} (JSON has no bytes)."""
    if type(value) is dict:
        # the common case, a flat map of text and numbers: nothing to convert (a loop, not all() over a
        # generator, which costs twice as much once per record)
        for item in value.values():
            if type(item) not in _JSON_SCALARS:
                break
        else:
            return value
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


# -- verifying ----------------------------------------------------------------------------------------------
def verify_export(path: Path, *, key: str | None = None) -> ExportReport:
    """Check an export file offline; raises :class:`ExportError` (LogCorrupt for a damaged segment,
    LogTruncated when records are missing below the signed head it carries).

    ``key``: the fingerprint of the device's key (``Ledger.key_fingerprint()``, ``privacyctl status``); the
    export must be signed with it. Only regular files are read (no symlink, FIFO or device), and a zip's
    directory, member count and inflated sizes are bounded before anything is inflated.
    """
    pinned = None if key is None else _parse_fingerprint(key)
    try:
        with _open_regular(Path(path)) as handle:
            guarded = _GuardedReads(handle, DIRECTORY_LIMIT)
            with zipfile.ZipFile(guarded) as archive:
                guarded.limit = READ_LIMIT
                return _verify_archive(archive, os.fstat(handle.fileno()).st_size, pinned)
    except FileNotFoundError as exc:
        raise UsageError(f"export file not found: {Path(path).name}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ExportError(f"not a readable export zip: {exc}") from exc
    except zlib.error as exc:  # where _reading does not name the file
        raise ExportError("a file in the export is damaged: its compressed data cannot be inflated") from exc
    except NotImplementedError as exc:  # _check_members refuses what zipfile cannot read; this is a backstop
        raise ExportError("the export uses a zip feature that exports never use") from exc
    except RecursionError as exc:  # json.loads on deep nesting; where the parsers do not say which file
        raise ExportError("the export holds JSON nested too deeply to be read") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a manifest of the wrong shape
        raise ExportError("the export's manifest is malformed") from exc
    except OSError as exc:
        raise ExportError(f"cannot read the export: {exc.strerror or exc}") from exc


def _parse_fingerprint(text: str) -> str:
    body = text.removeprefix(crypto.FINGERPRINT_PREFIX)
    try:
        valid = text.startswith(crypto.FINGERPRINT_PREFIX) and \
            len(base64.b64decode(body + "=", validate=True)) == 32
    except ValueError:
        valid = False
    if not valid:
        raise UsageError("the key fingerprint must look like SHA256: followed by 43 base64 characters "
                         "(privacyctl status shows the device's)")
    return text


def _open_regular(path: Path) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file: never through a symlink, never blocking on a
    FIFO, never a device such as /dev/zero."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ExportError(f"{path.name} is a symlink; pass the export file itself") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ExportError(f"{path.name} is not a regular file (a FIFO, a device or a directory)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _GuardedReads(io.RawIOBase):
    """The export file as zipfile sees it, with no single read larger than ``limit``: zipfile reads a zip's
    whole central directory in one read, however large the zip says it is."""

    def __init__(self, handle: IO[bytes], limit: int) -> None:
        super().__init__()
        self._handle = handle
        self.limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            position = self._handle.tell()
            size = os.fstat(self._handle.fileno()).st_size - position
        if size > self.limit:
            raise ExportError("the export's zip directory or a file in it is larger than an export ever makes "
                              "it (too many files, or a crafted size)", limit=self.limit)
        return self._handle.read(size)


def _verify_archive(archive: zipfile.ZipFile, archive_size: int, pinned: str | None) -> ExportReport:
    _check_members(archive, archive_size)
    manifest = _read_manifest(archive)
    public_key = _hex_field(manifest, "public_key", 32)
    fingerprint = crypto.key_fingerprint(public_key)
    if pinned is not None and fingerprint != pinned:
        raise ExportError("the export is signed with another key than the one pinned with --key")
    _check_member_set(archive, manifest)
    _check_file_hashes(archive, manifest)
    signed_head = _signed_head(manifest, public_key)
    segments = manifest["chain"]["segments"]
    checker = ChainChecker(public_key, watch=signed_head)
    erased = 0
    name, end = MANIFEST, 0  # where the log ends, for the head check
    with archive.open(RECORDS) as lines:
        line_iter = _lines(lines)
        for name in segments:
            if first_seq_of(name) is None:
                raise ExportError("manifest names a file that is not a segment")
            with archive.open(SEGMENT_DIR + name) as stream:
                scan = SegmentScan(stream, name)  # type: ignore[arg-type]  # ZipExtFile is a binary stream
                for record in scan.records(checker):
                    erased += _check_line(next(line_iter, None), record)
                if scan.tail is not None:
                    raise LogCorrupt("segment ends inside a record", segment=name, offset=scan.tail.offset)
                end = scan.end
        if next(line_iter, None) is not None:
            raise ExportError("records.jsonl has more lines than the segments have records")
    truncation = check_head(checker, segment=name, offset=end)
    if truncation is not None:
        raise truncation.error(segment=name, offset=end)
    if "signed_head" in manifest and signed_head is None and checker.checkpoints:  # older exports lack the key
        raise LogCorrupt("the export was made while the log's head file was missing: records lost from its end "
                         "cannot be ruled out", segment=MANIFEST, offset=0)
    _check_summary(manifest, checker, erased)
    return ExportReport(records=checker.count, counts=dict(checker.counts), head=checker.head.hex(),
                        merkle_root=checker.tree.root().hex(), checkpoints=checker.checkpoints,
                        public_key=public_key.hex(), erased_records=erased, key_fingerprint=fingerprint,
                        key_pinned=pinned is not None,
                        signed_head_records=None if signed_head is None else signed_head.count + 1)


def _check_members(archive: zipfile.ZipFile, archive_size: int) -> None:
    """What can be refused from the zip's directory alone, before anything is inflated."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ExportError("the export holds more files than an export ever does", limit=MAX_MEMBERS)
    names = set()
    for info in infos:
        name = info.orig_filename
        if name != info.filename or "\x00" in name:
            raise ExportError("a file name in the export holds a NUL or a backslash; exports never do")
        if name.startswith("/") or "\\" in name or ".." in name.split("/") or ":" in name.split("/")[0]:
            raise ExportError("a file in the export has an absolute name or one with '..'; exports never do")
        if name in names:  # zipfile reads the last of them, unzip the first: a forgery hides behind either
            raise ExportError("a file name appears twice in the export", file=name)
        names.add(name)
        if info.flag_bits & _UNSUPPORTED_FLAGS:
            raise ExportError("a file in the export is encrypted or patched; exports never are",
                              file=info.filename)
        if info.compress_type not in _COMPRESSION_METHODS:
            raise ExportError("a file in the export uses a compression method that exports never use",
                              file=info.filename, method=info.compress_type)
    declared = sum(info.file_size for info in infos)
    if declared > INFLATE_RATIO_LIMIT * archive_size + INFLATE_SLACK:
        raise ExportError("the export's files claim to inflate to far more than any export does (a zip bomb)",
                          declared_bytes=declared)


def _check_member_set(archive: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    """The files are exactly those the signed manifest lists, each of the size it lists (checked before
    inflating any of them)."""
    listed = manifest["files"]
    present = {info.filename: info for info in archive.infolist()}
    if set(listed) | {MANIFEST, MANIFEST_SIGNATURE} != set(present):
        raise ExportError("the files in the export differ from those its manifest lists")
    for name, expected in listed.items():
        size = expected.get("bytes")
        if not isinstance(size, int) or isinstance(size, bool) or present[name].file_size != size:
            raise ExportError("a file in the export declares another size than its manifest lists", file=name)


def _signed_head(manifest: dict[str, Any], public_key: bytes) -> Checkpoint | None:
    raw = manifest.get("signed_head")
    if raw is None:
        return None
    try:
        head = Checkpoint.from_json(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError("the manifest's signed head is malformed") from exc
    if head.public_key != public_key or not head.valid():
        raise ExportError("the manifest's signed head does not verify with the device key")
    return head


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Name the file when zipfile lets its inflater's error through (damaged compressed data)."""
    try:
        yield
    except zlib.error as exc:
        raise ExportError("a file in the export is damaged: its compressed data cannot be inflated",
                          file=name) from exc


def _read_small(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The whole of member ``name``, refused when larger than ``limit``: by its declared size first, then by
    what it inflates to, since a crafted zip can declare any size."""
    info = archive.getinfo(name)  # KeyError when it is missing
    if info.file_size > limit:
        raise ExportError(f"{name} is larger than an export ever makes it", limit=limit)
    with _reading(name), archive.open(info) as member:
        raw = member.read(limit + 1)
    if len(raw) > limit:
        raise ExportError(f"{name} is larger than an export ever makes it", limit=limit)
    return raw


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """records.jsonl line by line (without the newline) in bounded memory: a line longer than LINE_LIMIT
    is refused before it is read whole."""
    rest = b""
    while chunk := stream.read(COPY_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        # only the first whole line can hold a previous chunk's rest: the others are shorter than one chunk
        if len(rest) > LINE_LIMIT or (lines and len(lines[0]) > LINE_LIMIT):
            raise ExportError("a line of records.jsonl is longer than any record makes it", limit=LINE_LIMIT)
        yield from lines
    if rest:
        yield rest


def _read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        raw = _read_small(archive, MANIFEST, MANIFEST_LIMIT)
        manifest = json.loads(raw)
    except KeyError as exc:
        raise ExportError("the export has no manifest.json") from exc
    except ValueError as exc:
        raise ExportError("manifest.json is not valid JSON") from exc
    except RecursionError as exc:
        raise ExportError("manifest.json is nested too deeply to be read") from exc
    required = ("schema", "records", "record_counts", "chain", "checkpoint", "public_key", "files")
    if not isinstance(manifest, dict) or any(key not in manifest for key in required):
        raise ExportError("manifest.json lacks required entries")
    if manifest["schema"] != EXPORT_SCHEMA:
        raise ExportError("manifest.json is of an unknown export schema")
    _check_manifest_signature(archive, raw, _hex_field(manifest, "public_key", 32))
    return manifest


def _check_manifest_signature(archive: zipfile.ZipFile, raw: bytes, public_key: bytes) -> None:
    try:
        text = _read_small(archive, MANIFEST_SIGNATURE, SIGNATURE_LIMIT).decode("ascii")
        signature = bytes.fromhex(text.strip())
    except KeyError as exc:
        raise ExportError("the export has no manifest.sig") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ExportError("manifest.sig is not a hex signature") from exc
    if not crypto.signature_valid(public_key, raw, signature):
        raise ExportError("manifest.json does not match its signature")


def _check_file_hashes(archive: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    for name, expected in sorted(manifest["files"].items()):
        digest = hashlib.sha256()
        with _reading(name), archive.open(name) as member:
            for chunk in iter(lambda m=member: m.read(COPY_CHUNK), b""):  # type: ignore[misc]
                digest.update(chunk)
        if digest.hexdigest() != expected.get("sha256"):
            raise ExportError("a file in the export does not match its SHA-256 in the manifest", file=name)


def _check_line(raw: bytes | None, record: codec.Record) -> int:
    if raw is None:
        raise ExportError("records.jsonl has fewer lines than the segments have records", seq=record.seq)
    try:
        entry = json.loads(raw)
        same = (entry["seq"], entry["type"], entry["hash"], entry["time_ms"]) == (
            record.seq, record.type, record.hash.hex(), record.time_ms)
        same = same and entry["fields"] == to_json(record.fields)
        has_personal = "personal" in entry
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError("a line of records.jsonl cannot be read", seq=record.seq) from exc
    except RecursionError as exc:
        raise ExportError("a line of records.jsonl is nested too deeply to be read", seq=record.seq) from exc
    if not same or has_personal != (record.sealed is not None):
        raise ExportError("records.jsonl does not match the segments", seq=record.seq)
    personal = entry.get("personal")
    return 1 if isinstance(personal, dict) and personal.get("erased") is True else 0


def _check_summary(manifest: dict[str, Any], checker: ChainChecker, erased: int) -> None:
    chain = manifest["chain"]
    if manifest["records"] != checker.count or chain.get("head") != checker.head.hex():
        raise ExportError("the manifest's record count or chain head does not match the segments")
    if chain.get("merkle_root") != checker.tree.root().hex():
        raise ExportError("the manifest's Merkle root does not match the segments")
    if manifest["record_counts"] != dict(sorted(checker.counts.items())):
        raise ExportError("the manifest's record counts do not match the segments")
    if manifest.get("erased_records", erased) != erased:
        raise ExportError("the manifest's count of erased records does not match records.jsonl")
    raw_checkpoint = manifest["checkpoint"]
    if raw_checkpoint is None:
        if checker.last_checkpoint is not None:
            raise ExportError("the manifest omits the latest checkpoint of the segments")
        return
    try:
        checkpoint = Checkpoint.from_json(raw_checkpoint)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError("the manifest's checkpoint is malformed") from exc
    if not checkpoint.valid() or checkpoint.public_key.hex() != manifest["public_key"]:
        raise ExportError("the manifest's checkpoint signature does not verify")
    last = checker.last_checkpoint
    if last is None or checkpoint != last:
        raise ExportError("the manifest's checkpoint is not the last one in the segments")


def _hex_field(manifest: dict[str, Any], name: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(manifest[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"manifest.json: {name} is missing or not hex") from exc
    if len(value) != size:
        raise ExportError(f"manifest.json: {name} has the wrong length")
    return value


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

