"""Shared helpers for the ledger tests (not collected: no test_ prefix)."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.ledger import Ledger, LedgerConfig
from agent.ledger.segments import SegmentScan

# No background thread in fast tests: group commit then happens on the next append, flush or close.
CONFIG = LedgerConfig(flush_thread=False, checkpoint_every=4)
MARKER = "PLAINTEXT-MARKER-7f3a"
LAT, LON = 312304567, 1214737890


class FakeClock:
    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.now = wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


def fill(ledger: Ledger, count: int, *, personal: bool = True) -> None:
    for index in range(count):
        if index % 3 == 0:
            ledger.append("switch", {"desired": "off", "generation": index, "by_uid": 0})
        elif personal:
            ledger.append("fix_access", {"purpose": "fleet", "n": index},
                          personal={"lat_e7": LAT + index, "lon_e7": LON, "note": MARKER})
        else:
            ledger.append("upload", {"sink": "file", "n": index})


def ledger_dir(state_dir: Path) -> Path:
    return state_dir / "ledger"


def segment_paths(state_dir: Path) -> list[Path]:
    return sorted(ledger_dir(state_dir).glob("*.seg"))


def frame_offsets(path: Path) -> list[tuple[int, int]]:
    """(start, end) of every frame in a segment file."""
    with path.open("rb") as stream:
        return [(frame.offset, frame.end) for frame in SegmentScan(stream, path.name).frames()]


def copy_state(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("lock"))
    return target


def all_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())
