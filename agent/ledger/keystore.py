"""The data-key store: one AES-256 key per pseudonym epoch, rewritten atomically; destroying a key is erasure.

``keys.cbor`` (0600) holds live keys and tombstones of destroyed ones (id, epoch, dates, never the key), so
that an export can say "erased" instead of "missing". A key is *retired* when the next epoch's key is
created; its span of use is ``[created_ms, retired_ms]``, which is what erasure by time range and retention
work on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.errors import KeyStoreError, StoreError
from agent.ledger import codec, crypto, files

FILE_NAME = "keys.cbor"
KEY_ID_BYTES = 8
KEYS_LIMIT = 64 << 20  # about 100 bytes a key: some 600,000 epochs, far more than a device ever makes


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known about a data key; ``key`` is None once destroyed."""

    key_id: str
    epoch: int
    created_ms: int
    retired_ms: int | None
    key: bytes | None
    destroyed_ms: int | None = None

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        last_use = self.retired_ms if self.retired_ms is not None else end_ms
        return self.created_ms <= end_ms and last_use >= start_ms


class KeyStore:
    def __init__(self, path: Path, keys: dict[str, KeyInfo], *, read_only: bool) -> None:
        self._path = path
        self._keys = keys
        self._read_only = read_only
        self.generation = 0  # grows with every save, so that callers notice a new or destroyed key cheaply
        self._live = _live_by_epoch(keys)

    @classmethod
    def load(cls, directory: Path, *, read_only: bool = False) -> KeyStore:
        path = directory / FILE_NAME
        try:
            raw = files.read_small(path, KEYS_LIMIT)
        except StoreError as exc:
            raise KeyStoreError(exc.message, **exc.details) from exc
        keys = {} if raw is None else _parse(raw)
        return cls(path, keys, read_only=read_only)

    # -- reading --------------------------------------------------------------------------------------------
    def key(self, key_id: str) -> bytes | None:
        info = self._keys.get(key_id)
        return None if info is None else info.key

    def info(self, key_id: str) -> KeyInfo | None:
        return self._keys.get(key_id)

    def all(self) -> list[KeyInfo]:
        return sorted(self._keys.values(), key=lambda info: (info.created_ms, info.key_id))

    def snapshot(self) -> dict[str, KeyInfo]:
        return dict(self._keys)

    # -- writing --------------------------------------------------------------------------------------------
    def key_for_epoch(self, epoch: int, now_ms: int) -> tuple[str, bytes]:
        """The live key of ``epoch``, creating it (and retiring the previous one) when there is none."""
        live = self._live.get(epoch)
        if live is not None:
            return live
        self._require_writable()
        retired = {kid: replace(info, retired_ms=now_ms) for kid, info in self._keys.items()
                   if info.key is not None and info.retired_ms is None}
        key_id = os.urandom(KEY_ID_BYTES).hex()
        created = KeyInfo(key_id=key_id, epoch=epoch, created_ms=now_ms, retired_ms=None,
                          key=crypto.new_data_key())
        self._save({**self._keys, **retired, key_id: created})
        return key_id, created.key or b""

    def destroy(self, select: Callable[[KeyInfo], bool], now_ms: int) -> list[KeyInfo]:
        """Destroy every live key ``select`` picks; returns their tombstones (already durable)."""
        self._require_writable()
        chosen = [info for info in self._keys.values() if info.key is not None and select(info)]
        if not chosen:
            return []
        tombstones = {info.key_id: _tombstone(info, now_ms) for info in chosen}
        self._save({**self._keys, **tombstones})
        return sorted(tombstones.values(), key=lambda info: info.created_ms)

    def _save(self, keys: dict[str, KeyInfo]) -> None:
        try:
            body = {"v": 1, "keys": [_encode(info) for info in keys.values()]}
            files.atomic_write(self._path, codec.dumps(body))
        except StoreError as exc:
            raise KeyStoreError(exc.message, **exc.details) from exc
        self.generation += 1
        self._live = _live_by_epoch(keys)
        self._keys = keys  # only after the file is durable: memory never claims more than the disk holds

    def _require_writable(self) -> None:
        if self._read_only:
            raise KeyStoreError("the key store is open read-only")


def _live_by_epoch(keys: dict[str, KeyInfo]) -> dict[int, tuple[str, bytes]]:
    return {info.epoch: (info.key_id, info.key) for info in keys.values()
            if info.key is not None and info.retired_ms is None}


def _tombstone(info: KeyInfo, now_ms: int) -> KeyInfo:
    retired = info.retired_ms if info.retired_ms is not None else now_ms
    return replace(info, key=None, destroyed_ms=now_ms, retired_ms=retired)


def _encode(info: KeyInfo) -> dict[str, Any]:
    return {"id": info.key_id, "epoch": info.epoch, "created": info.created_ms, "retired": info.retired_ms,
            "key": info.key, "destroyed": info.destroyed_ms}


def _parse(raw: bytes) -> dict[str, KeyInfo]:
    try:
        body = codec.loads(raw)
        entries = body["keys"]
        keys = {}
        for entry in entries:
            info = KeyInfo(key_id=entry["id"], epoch=entry["epoch"], created_ms=entry["created"],
                           retired_ms=entry["retired"], key=entry["key"], destroyed_ms=entry["destroyed"])
            _check(info)
            keys[info.key_id] = info
        return keys
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyStoreError(f"{FILE_NAME} cannot be read: it is damaged or of another version") from exc


def _check(info: KeyInfo) -> None:
    if not isinstance(info.key_id, str) or not all(isinstance(n, int) for n in (info.epoch, info.created_ms)):
        raise ValueError("key entry has the wrong types")
    wrong_key = not isinstance(info.key, bytes) or len(info.key) != crypto.DATA_KEY_SIZE
    if info.key is not None and wrong_key:
        raise ValueError("key entry has a key of the wrong size")
