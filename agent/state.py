"""The user's desired switch state, on disk.

The file ``desired.json`` in the state dir is written atomically (tmp, fsync, rename, fsync dir) and carries a
generation number that grows with every change. The ledger records every change too (a ``switch`` record with the
same generation). On start the newer of the two wins, so a change acknowledged after the ledger's fsync but before
this file was rewritten is never lost; with neither, the switch is **off** (privacy by default). A file that cannot
be parsed is a clear error: the daemon then refuses to guess and keeps location off.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError, StateDamaged, StoreError

FILE_NAME = "desired.json"


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


def ensure_state_dir(path: Path) -> None:
    """Create the state dir 0700 (or check an existing one is a real directory, not a symlink)."""
    if path.is_symlink():
        raise ConfigError(f"state dir {path} is a symlink; refusing to use it")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create state dir {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise ConfigError(f"state dir {path} is not a directory")


def read_desired(state_dir: Path) -> Desired | None:
    """The desired state on disk, or None when there is none yet."""
    path = state_dir / FILE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {FILE_NAME}: {exc.strerror}", path=str(path)) from exc
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


def write_desired(state_dir: Path, desired: Desired) -> None:
    """Atomically replace the desired state file (tmp, fsync, rename, fsync dir)."""
    payload = json.dumps({
        "location": desired.label,
        "generation": desired.generation,
        "changed_at_ms": desired.changed_at_ms,
        "changed_by_uid": desired.changed_by_uid,
    }, sort_keys=True).encode() + b"\n"
    target = state_dir / FILE_NAME
    tmp = state_dir / f".{FILE_NAME}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_dir(state_dir)
    except OSError as exc:
        raise StoreError(f"cannot write {FILE_NAME}: {exc.strerror}", path=str(target)) from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
