"""Opening a ledger directory: the device key, the segments read back with their chain checked, a torn tail
found at the end of the last one, and the head file checked against the device key."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import LogCorrupt, StoreError
from agent.ledger import codec, crypto, files
from agent.ledger.chain import ChainChecker, Checkpoint, check_head, first_seq_of
from agent.ledger.config import HEAD_FILE, HEAD_LIMIT, SIGNING_KEY_FILE
from agent.ledger.segments import SegmentScan
from agent.ledger.snapshot import TornTail


@dataclass
class LogState:
    """What the open scan learnt and appends keep up to date."""

    checker: ChainChecker
    segments: list[list[Any]] = field(default_factory=list)  # [name, size]
    last_by_type: dict[str, codec.Record] = field(default_factory=dict)  # the newest record of each type
    records_per_key: Counter[str] = field(default_factory=Counter)
    last_checkpoint_count: int = 0


def load_signer(directory: Path, *, read_only: bool) -> crypto.Signer | None:
    """The device's checkpoint key; made on first use (never for a log that already has records); None
    only read-only, when the key file is gone."""
    path = directory / SIGNING_KEY_FILE
    private = files.read_small(path, HEAD_LIMIT)  # 32 bytes; never read a huge file whole
    if private is None and not read_only:
        if segment_names(directory):  # a new key would not match the checkpoints the log already holds
            raise StoreError(f"{SIGNING_KEY_FILE} is missing but the ledger has records; restore it from a "
                             "backup", path=str(path))
        private = crypto.Signer.generate_private_bytes()
        files.atomic_write(path, private)
    return crypto.Signer(private) if private is not None else None


def segment_names(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise files.store_error("list", directory, exc) from exc
    return sorted(name for name in names if first_seq_of(name) is not None)


def scan_log(directory: Path, public_key: bytes | None,
             head: Checkpoint | None) -> tuple[LogState, TornTail | None]:
    """Read every segment, checking the chain (and watching for the head's checkpoint); a torn tail is
    allowed at the end of the last segment only."""
    state = LogState(checker=ChainChecker(public_key, watch=head))
    torn_tail = None
    names = segment_names(directory)
    for index, name in enumerate(names):
        scan = _scan_segment(directory / name, state)
        state.segments.append([name, scan.end])
        if scan.tail is None:
            continue
        if index != len(names) - 1:
            raise LogCorrupt("segment ends inside a record", segment=name, offset=scan.tail.offset)
        torn_tail = TornTail(name, scan.tail.offset, scan.tail.length)
    if state.checker.last_checkpoint is not None:
        state.last_checkpoint_count = state.checker.last_checkpoint.count + 1
    return state, torn_tail


def _scan_segment(path: Path, state: LogState) -> SegmentScan:
    with os.fdopen(files.open_for_read(path), "rb") as stream:
        scan = SegmentScan(stream, path.name)
        try:
            for record in scan.records(state.checker):
                state.last_by_type[record.type] = record
                if record.sealed is not None:
                    state.records_per_key[record.sealed.key_id] += 1
        except OSError as exc:
            raise files.store_error("read", path, exc) from exc
    return scan


def read_head(directory: Path, public_key: bytes | None) -> Checkpoint | None:
    """The head file's signed checkpoint (None when there is none), checked against the device key."""
    raw = files.read_small(directory / HEAD_FILE, HEAD_LIMIT)
    if raw is None:
        return None
    try:
        checkpoint = Checkpoint.from_fields(codec.loads(raw))
    except (KeyError, TypeError, ValueError) as exc:  # not CBOR (codec.loads), or not a checkpoint
        raise LogCorrupt("the head file is damaged", segment=HEAD_FILE, offset=0) from exc
    if public_key is None:  # read-only, and the device key is gone
        raise LogCorrupt(f"{SIGNING_KEY_FILE} is missing: the head file cannot be checked against the "
                         "device key", segment=SIGNING_KEY_FILE, offset=0)
    if checkpoint.public_key != public_key:
        raise LogCorrupt(f"the head file is signed by another key than {SIGNING_KEY_FILE}", segment=HEAD_FILE,
                         offset=0)
    if not checkpoint.valid():
        raise LogCorrupt("the head file's signature is invalid", segment=HEAD_FILE, offset=0)
    return checkpoint


def raise_head_error(checker: ChainChecker, head_missing: bool, segment: str, offset: int) -> None:
    """Raise what the head check of a whole re-read found (see Ledger.verify)."""
    truncation = check_head(checker, segment=segment, offset=offset)
    if truncation is not None:
        raise truncation.error(segment=segment, offset=offset)
    if head_missing:
        raise LogCorrupt("the head file is missing although the log holds signed checkpoints: records lost "
                         "from its end cannot be ruled out", segment=HEAD_FILE, offset=0,
                         checkpoints=checker.checkpoints)
