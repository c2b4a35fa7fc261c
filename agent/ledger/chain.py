"""Checking a sequence of records: order, hash chain, Merkle tree and signed checkpoints (pure).

The full checker runs when a store opens, in ``verify`` and in the offline export verifier, so that all
three agree on what "verifies" means. While exporting, ``LinkChecker`` checks order and the hash chain of the
records it copies (the Merkle tree and the checkpoint signatures were checked when the store opened).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import LogCorrupt, LogTruncated
from agent.ledger import codec, crypto, merkle

CHECKPOINT_CONTEXT = "quectel-privacy-agent/checkpoint/1"
SEGMENT_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the first ``count`` records end in ``head`` and have Merkle root ``root``."""

    count: int
    head: bytes
    root: bytes
    time_ms: int
    public_key: bytes
    signature: bytes

    def message(self) -> bytes:
        return checkpoint_message(self.count, self.head, self.root, self.time_ms)

    def as_fields(self) -> dict[str, Any]:
        return {"count": self.count, "head": self.head, "root": self.root, "t": self.time_ms,
                "key": self.public_key, "sig": self.signature}

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "head": self.head.hex(), "merkle_root": self.root.hex(),
                "time_ms": self.time_ms, "public_key": self.public_key.hex(),
                "signature": self.signature.hex()}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Checkpoint:
        checkpoint = cls(count=fields["count"], head=fields["head"], root=fields["root"], time_ms=fields["t"],
                         public_key=fields["key"], signature=fields["sig"])
        if not (isinstance(checkpoint.count, int) and isinstance(checkpoint.head, bytes)
                and isinstance(checkpoint.root, bytes) and isinstance(checkpoint.time_ms, int)
                and isinstance(checkpoint.public_key, bytes) and isinstance(checkpoint.signature, bytes)):
            raise TypeError("checkpoint fields have the wrong types")
        return checkpoint

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(count=int(data["count"]), head=bytes.fromhex(data["head"]),
                   root=bytes.fromhex(data["merkle_root"]), time_ms=int(data["time_ms"]),
                   public_key=bytes.fromhex(data["public_key"]), signature=bytes.fromhex(data["signature"]))

    def valid(self) -> bool:
        return crypto.signature_valid(self.public_key, self.message(), self.signature)


def checkpoint_message(count: int, head: bytes, root: bytes, time_ms: int) -> bytes:
    return codec.dumps({"ctx": CHECKPOINT_CONTEXT, "count": count, "head": head, "root": root, "t": time_ms})


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def first_seq_of(name: str) -> int | None:
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if not name.endswith(SEGMENT_SUFFIX) or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class LinkChecker:
    """Feed records in log order; a record out of place or off the hash chain raises :class:`LogCorrupt`."""

    def __init__(self) -> None:
        self.count = 0
        self.head = codec.GENESIS
        self.counts: dict[str, int] = {}
        self._segment = ""

    def start_segment(self, name: str) -> None:
        first = first_seq_of(name)
        if first is None:
            raise LogCorrupt("segment file name is not a segment name", segment=name, offset=0)
        if first != self.count:
            raise LogCorrupt("a segment is missing or out of order before this one", segment=name, offset=0,
                             expected_first_record=self.count, named_first_record=first)
        self._segment = name

    def add(self, record: codec.Record, offset: int) -> None:
        self.link(record.seq, record.prev_hash, record.hash, record.type, offset)

    def link(self, seq: int, prev_hash: bytes, digest: bytes, record_type: str, offset: int) -> None:
        """:meth:`add` for a record known by its parts (see codec.decode_parts)."""
        if seq != self.count:
            raise LogCorrupt("record out of order or missing", segment=self._segment, offset=offset,
                             expected_seq=self.count, found_seq=seq)
        if prev_hash != self.head:
            raise LogCorrupt("hash chain broken", segment=self._segment, offset=offset, seq=seq)
        self.count += 1
        self.head = digest
        self.counts[record_type] = self.counts.get(record_type, 0) + 1


class ChainChecker(LinkChecker):
    """A :class:`LinkChecker` that also keeps the Merkle tree and checks every signed checkpoint.

    ``public_key``: the device key checkpoints must be signed with; None accepts the key a checkpoint names
    (the signature is still checked, but then it only shows the log was not altered after signing).

    ``watch``: a signed head (from the head file) to look for: ``watch_seen`` once its checkpoint record is
    read, exactly as signed; ``watch_acknowledged`` once a ``recovery`` record names it as a head whose records
    were lost (see :func:`check_head`).
    """

    def __init__(self, public_key: bytes | None = None, watch: Checkpoint | None = None) -> None:
        super().__init__()
        self.public_key = public_key
        self.tree = merkle.CompactTree()
        self.checkpoints = 0
        self.last_checkpoint: Checkpoint | None = None
        self.watch = watch
        self.watch_seen = False
        self.watch_acknowledged = False

    def add(self, record: codec.Record, offset: int) -> None:
        if record.type == "checkpoint":
            self._check_checkpoint(record, offset)
        elif record.type == "recovery" and self.watch is not None and \
                record.fields.get("lost_head_sig") == self.watch.signature.hex():
            self.watch_acknowledged = True
        super().add(record, offset)
        self.tree.append_leaf(record.payload)

    def _check_checkpoint(self, record: codec.Record, offset: int) -> None:
        try:
            checkpoint = Checkpoint.from_fields(record.fields)
        except (KeyError, TypeError) as exc:
            raise LogCorrupt("checkpoint record is malformed", segment=self._segment, offset=offset) from exc
        if self.public_key is not None and checkpoint.public_key != self.public_key:
            raise LogCorrupt("checkpoint signed by another key", segment=self._segment, offset=offset)
        if not checkpoint.valid():
            raise LogCorrupt("checkpoint signature invalid", segment=self._segment, offset=offset)
        if (checkpoint.count, checkpoint.head, checkpoint.root) != (self.count, self.head, self.tree.root()):
            raise LogCorrupt("checkpoint does not match the records before it", segment=self._segment,
                             offset=offset)
        self.checkpoints += 1
        self.last_checkpoint = checkpoint
        if self.watch is not None and checkpoint.count == self.watch.count:
            self.watch_seen = checkpoint == self.watch


@dataclass(frozen=True, slots=True)
class Truncation:
    """Records lost below the newest signed head: the head vouches for ``head_size`` records (the records its
    checkpoint signs and the checkpoint record itself), the log holds ``found_size`` of them."""

    missing: int
    head_size: int
    found_size: int

    def error(self, *, segment: str, offset: int) -> LogTruncated:
        records = "record" if self.missing == 1 else "records"
        return LogTruncated(f"{self.missing} {records} missing below the signed head of {self.head_size} records "
                            f"(the log holds {self.found_size})", segment=segment, offset=offset,
                            missing=self.missing, head_size=self.head_size, found_size=self.found_size)


def check_head(checker: ChainChecker, *, segment: str, offset: int) -> Truncation | None:
    """After ``checker`` has read a whole log with a head to watch: the truncation that head shows, if any.

    A head whose loss a ``recovery`` record already states is settled (the loss stays in the log). A log that
    reaches past the head without holding its checkpoint as signed is another log: :class:`LogCorrupt` at
    ``segment``/``offset`` (where the caller found the log's end).
    """
    head = checker.watch
    if head is None or checker.watch_acknowledged:
        return None
    head_size = head.count + 1
    if checker.count < head_size:
        return Truncation(missing=head_size - checker.count, head_size=head_size, found_size=checker.count)
    if not checker.watch_seen:
        raise LogCorrupt("the log does not hold the checkpoint of its signed head (it was rewritten)",
                         segment=segment, offset=offset, head_size=head_size)
    return None
