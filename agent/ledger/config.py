"""The store's settings, the layout of its directory, and what its calls return."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import ConfigError
from agent.ledger import codec
from agent.ledger.snapshot import TornTail

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
