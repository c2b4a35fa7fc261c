"""What the store hands to the export: a consistent view of the log, and how a ciphertext is bound to its
record. The store makes these and the export reads them, so the export needs nothing from the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.ledger import crypto
from agent.ledger.chain import Checkpoint
from agent.ledger.keystore import KeyInfo


@dataclass(frozen=True, slots=True)
class TornTail:
    """What recovery cut off (or, read-only, would cut off) at the end of the last segment."""

    segment: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent view for verify and export: the segments, up to these sizes, hold ``count`` records."""

    directory: Path
    segments: tuple[tuple[str, int], ...]
    count: int
    head: bytes
    merkle_root: bytes
    public_key: bytes | None
    signer: crypto.Signer | None
    checkpoint: Checkpoint | None
    keys: dict[str, KeyInfo]
    torn_tail: TornTail | None
    time_ms: int
    signed_head: Checkpoint | None = None  # what the head file says (an export carries it)


def associated_data(seq: int, record_type: str) -> bytes:
    """Binds a ciphertext to its record, so that it cannot be moved to another one."""
    return seq.to_bytes(8, "big") + record_type.encode("ascii")
