"""Verifying an export offline (``privacy-agent verify-export``): the signed manifest, every file's hash,
the chain across all segments, every checkpoint signature, the signed head, and that records.jsonl describes
exactly the records of the segments. The zip itself is read through export_zip's bounds."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

from agent.errors import ExportError, LogCorrupt, UsageError
from agent.ledger import codec, crypto
from agent.ledger.chain import ChainChecker, Checkpoint, check_head, first_seq_of
from agent.ledger.export_format import (
    COPY_CHUNK,
    DIRECTORY_LIMIT,
    EXPORT_SCHEMA,
    MANIFEST,
    MANIFEST_LIMIT,
    MANIFEST_SIGNATURE,
    READ_LIMIT,
    RECORDS,
    SEGMENT_DIR,
    SIGNATURE_LIMIT,
    ExportReport,
    to_json,
)
from agent.ledger.export_zip import (
    GuardedReads,
    check_members,
    jsonl_lines,
    open_regular,
    read_small,
    reading,
)
from agent.ledger.segments import SegmentScan


def verify_export(path: Path, *, key: str | None = None) -> ExportReport:
    """Check an export file offline; raises :class:`ExportError` (LogCorrupt for a damaged segment,
    LogTruncated when records are missing below the signed head it carries).

    ``key``: the fingerprint of the device's key (``Ledger.key_fingerprint()``, ``privacyctl status``); the
    export must be signed with it. Only regular files are read (no symlink, FIFO or device), and a zip's
    directory, member count and inflated sizes are bounded before anything is inflated.
    """
    pinned = None if key is None else _parse_fingerprint(key)
    try:
        with open_regular(Path(path)) as handle:
            guarded = GuardedReads(handle, DIRECTORY_LIMIT)
            with zipfile.ZipFile(guarded) as archive:
                guarded.limit = READ_LIMIT
                return _verify_archive(archive, os.fstat(handle.fileno()).st_size, pinned)
    except FileNotFoundError as exc:
        raise UsageError(f"export file not found: {Path(path).name}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ExportError(f"not a readable export zip: {exc}") from exc
    except zlib.error as exc:  # where reading does not name the file
        raise ExportError("a file in the export is damaged: its compressed data cannot be inflated") from exc
    except NotImplementedError as exc:  # check_members refuses what zipfile cannot read; this is a backstop
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


def _verify_archive(archive: zipfile.ZipFile, archive_size: int, pinned: str | None) -> ExportReport:
    check_members(archive, archive_size)
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
        line_iter = jsonl_lines(lines)
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


def _read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        raw = read_small(archive, MANIFEST, MANIFEST_LIMIT)
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
        text = read_small(archive, MANIFEST_SIGNATURE, SIGNATURE_LIMIT).decode("ascii")
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
        with reading(name), archive.open(name) as member:
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
