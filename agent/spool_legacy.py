"""Migration from one file per message (the spool's format before the journal): read once, then removed."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from pathlib import Path

from agent.errors import StoreError
from agent.ledger.files import read_small, store_error, sync_dir
from agent.spool_journal import Message, SpoolState, check_message, decode_cbor, frame, put_entry

_LEGACY_MAGIC = b"PASPOOL1"
_LEGACY_HEADER = struct.Struct(">8sI")  # magic, crc32 of the payload
_LEGACY_SUFFIX = ".msg"
_LEGACY_TEMP_PREFIX = ".tmp-"
_LEGACY_FIELDS = ("id", "sink", "purpose", "body", "created_ms", "attempts", "not_before_ms")
_LEGACY_DIRS = ("queue", "dead")


def migrate_legacy(root: Path, state: SpoolState) -> bool:
    """Add the messages of ``queue/`` and ``dead/`` (if any) to ``state``; whether there were such directories.

    A message the journal holds already was migrated by an open that crashed before removing the directories:
    the journal's copy wins. A message in both old directories was being dead-lettered: the dead one wins."""
    directories = [directory for directory in (root / name for name in _LEGACY_DIRS) if _is_legacy_dir(directory)]
    if not directories:
        return False
    dead = _load_legacy_dir(root / "dead")
    queued = {message_id: found for message_id, found in _load_legacy_dir(root / "queue").items()
              if message_id not in dead}
    everything = [(seq, message, reason) for message, seq, reason in (*queued.values(), *dead.values())]
    for _, message, reason in sorted(everything, key=lambda item: item[0]):
        if state.holds(message.id):
            continue
        state.apply(put_entry(message), len(frame(put_entry(message))))
        if reason is not None:
            state.apply(["dead", message.id, reason], len(frame(["dead", message.id, reason])))
    return True


def _is_legacy_dir(directory: Path) -> bool:
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise store_error("look at", directory, exc) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{directory.name} is not a directory (symlinks are refused)", path=str(directory))
    return True


def _load_legacy_dir(directory: Path) -> dict[str, tuple[Message, int, str | None]]:
    if not _is_legacy_dir(directory):
        return {}
    found: dict[str, tuple[Message, int, str | None]] = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise store_error("list", directory, exc) from exc
    for name in names:
        path = directory / name
        if name.startswith(_LEGACY_TEMP_PREFIX):
            continue  # a write that never returned: nobody was told it was queued; removed with the directory
        if not name.endswith(_LEGACY_SUFFIX):
            raise StoreError(f"unexpected file {name} in the spool", path=str(path))
        data = read_small(path)
        if data is None:
            continue
        try:
            message, seq, reason = decode_legacy_entry(data)
        except ValueError as exc:
            raise StoreError(f"spool entry {name} is damaged: {exc}", path=str(path)) from exc
        if legacy_file_name(message.id) != name:
            raise StoreError(f"spool entry {name} is damaged: its name does not match its id", path=str(path))
        found[message.id] = (message, seq, reason)
    return found


def legacy_file_name(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:40] + _LEGACY_SUFFIX


def decode_legacy_entry(data: bytes) -> tuple[Message, int, str | None]:
    """A file of the old format: the message, its sequence number and its dead-letter reason."""
    if len(data) < _LEGACY_HEADER.size:
        raise ValueError("shorter than its header")
    magic, crc = _LEGACY_HEADER.unpack_from(data)
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a spool entry (bad magic)")
    payload = data[_LEGACY_HEADER.size:]
    if zlib.crc32(payload) != crc:
        raise ValueError("checksum mismatch")
    fields = decode_cbor(payload, "payload does not decode")
    if not isinstance(fields, dict):
        raise ValueError("payload is not a map")
    try:
        message = Message(**{name: fields[name] for name in _LEGACY_FIELDS})
        check_message(message)
        seq, reason = fields["seq"], fields.get("reason")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("missing or bad field") from exc
    if not isinstance(seq, int) or not (reason is None or isinstance(reason, str)):
        raise ValueError("missing or bad field")
    return message, seq, reason


def remove_legacy(root: Path) -> None:
    """Remove the old directories, once the journal holds their messages durably."""
    for name in _LEGACY_DIRS:
        directory = root / name
        if not _is_legacy_dir(directory):
            continue
        try:
            for entry in os.listdir(directory):
                (directory / entry).unlink()
            directory.rmdir()
        except OSError as exc:
            raise store_error("remove", directory, exc) from exc
    sync_dir(root)
