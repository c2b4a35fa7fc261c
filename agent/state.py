"""The user's desired switch state, on disk.

The file ``desired.json`` in the state dir is the ledger's copy of the last ``switch`` record: the ledger record is
the acknowledgement, and the file is rewritten after it. The daemon compares the two at start (see
:meth:`agent.supervisor.Supervisor.load_desired`): the ledger's last switch decides, and a file that claims more than
the ledger holds makes the agent start with location off.

The file gets the same checks as the ledger's own files: a regular file only (never through a symlink, a FIFO or a
device), opened without blocking, at most :data:`MAX_BYTES` long. It is written through a temporary file with an
unpredictable name, created exclusively (``mkstemp``), fsynced, renamed over, and the directory fsynced, so a
planted ``.desired.json.tmp`` changes nothing. A file that cannot be read or parsed is a clear error
(:class:`~agent.errors.StateDamaged`): the ledger then decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError, StateDamaged, StoreError
from agent.ledger.files import atomic_write, read_small

FILE_NAME = "desired.json"
MAX_BYTES = 4096  # the real file is under 150 bytes; anything longer is not ours


@dataclass(frozen=True, slots=True)
class Desired:
    location_on: bool
    generation: int
    changed_at_ms: int = 0
    changed_by_uid: int | None = None

    @property
    def label(self) -> str:
        return "on" if self.location_on else "off"


DEFAULT = Desired(location_on=False, generation=0)


def check_state_dir(path: Path) -> None:
    """Refuse a state dir that is a symlink or not a directory; writes nothing (a missing one is fine)."""
    if path.is_symlink():
        raise ConfigError(f"state dir {path} is a symlink; refusing to use it")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"state dir {path} is not a directory")


def ensure_state_dir(path: Path) -> None:
    """Create the state dir 0700 (or check an existing one is a real directory, not a symlink)."""
    check_state_dir(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create state dir {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise ConfigError(f"state dir {path} is not a directory")


def read_desired(state_dir: Path) -> Desired | None:
    """The desired state on disk, or None when there is none yet."""
    path = state_dir / FILE_NAME
    raw = _read_bounded(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        location = data["location"]
        generation = data["generation"]
        if location not in ("on", "off") or not isinstance(generation, int) or generation < 0:
            raise ValueError("bad values")
        return Desired(location_on=location == "on", generation=generation,
                       changed_at_ms=int(data.get("changed_at_ms", 0)), changed_by_uid=data.get("changed_by_uid"))
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise StateDamaged(f"{FILE_NAME} is damaged", path=str(path)) from exc


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, None when it does not exist; StateDamaged for anything that is not a small regular
    file (a symlink, a FIFO, a device such as /dev/zero, or a file over MAX_BYTES)."""
    try:
        return read_small(path, limit=MAX_BYTES)
    except StoreError as exc:
        raise StateDamaged(f"{FILE_NAME} cannot be used: {exc.message}", path=str(path)) from exc


def write_desired(state_dir: Path, desired: Desired) -> None:
    """Atomically replace the desired state file (a fresh temporary file, fsync, rename, fsync dir)."""
    payload = json.dumps({
        "location": desired.label,
        "generation": desired.generation,
        "changed_at_ms": desired.changed_at_ms,
        "changed_by_uid": desired.changed_by_uid,
    }, sort_keys=True).encode() + b"\n"
    atomic_write(state_dir / FILE_NAME, payload)
