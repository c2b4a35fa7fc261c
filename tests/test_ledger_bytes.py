"""Byte identity: a fixed ledger (fixed clock, fixed randomness) gives the same segment, head-file and export
bytes, record for record, so that a change to the code paths that write them cannot change what they write."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from agent.ledger import Ledger, LedgerConfig
from agent.ledger.codec import KNOWN_TYPES
from tests.ledger_support import LAT, LON, MARKER, FakeClock, ledger_dir, segment_paths

# Small segments so that the chain crosses files; every fourth record a checkpoint; no background thread.
BYTES_CONFIG = LedgerConfig(flush_thread=False, checkpoint_every=4, segment_bytes=4096)


class SeededRandom:
    """Stands in for os.urandom: the SHA-256 counter stream of a fixed seed (data keys, nonces, key ids,
    the signing key)."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.counter = 0

    def __call__(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
        return out[:size]


def build(state: Path, clock: FakeClock) -> None:
    with Ledger.open(state, BYTES_CONFIG, clock=clock) as ledger:
        for index in range(30):
            clock.now += 1.5
            kind = index % 6
            if kind == 0:
                ledger.append("switch", {"desired": "off", "generation": index, "by_uid": 0})
            elif kind == 1:
                ledger.append("fix_access", {"purpose": "fleet", "n": index},
                              personal={"lat_e7": LAT + index, "lon_e7": LON, "note": MARKER})
            elif kind == 2:
                ledger.append("upload", {"sink": "file", "n": index, "raw": b"\x00\xff", "tags": ["a", "é"]},
                              personal={"imei": "860000000000000"})
            elif kind == 3:
                ledger.append("consent", {"purpose": "fleet", "granted": True, "nested": {"x": None}})
            elif kind == 4:
                ledger.append("request", {"kind": "export", "by_uid": 1000})
            else:
                ledger.append("incident", {"code": "test", "detail": "line\nbreak \"quoted\""})
            if index == 14:
                clock.now += 86_400  # a second pseudonym epoch, so the erase below leaves one key alive
        ledger.erase(epoch=1_700_000_000 // 86_400)
        ledger.append("fix_access", {"purpose": "fleet"}, personal={"lat_e7": LAT, "lon_e7": LON})
    last = segment_paths(state)[-1]
    with last.open("ab") as stream:
        stream.write(b"QPL\x01\x01")  # a torn tail: the next open cuts it and appends a recovery record
    clock.now += 10
    with Ledger.open(state, BYTES_CONFIG, clock=clock) as ledger:
        ledger.append("upload", {"sink": "mqtt", "n": 99})
        ledger.checkpoint()
        ledger.export(state / "export.zip")
        pieces: list[bytes] = []
        ledger.export_stream(pieces.append)
        (state / "stream.zip").write_bytes(b"".join(pieces))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The SHA-256 of every file the ledger writes, and of every export member (the zip's own bytes hold the time
# it was made, so each member is pinned instead).
EXPECTED: dict[str, str] = {
    "00000000000000000000.seg": "6dcf6659f34274909dc2e5ff8a1421ff61a2889d1f198831e4f0caced257e1ee",
    "00000000000000000020.seg": "f225bb4244581219cc548cd85b871e6ccb38393adfc9f9519584c4a760fbed31",
    "00000000000000000039.seg": "30f02a865c529dfc8bffd36c5b46232bddc235fb17536df67e7480ee7188ed0d",
    "00000000000000000058.seg": "a6ba02719c212309721e315ddb3bd4daf4109b5e439b928afae84d91c41ef12f",
    "checkpoint.cbor": "5abd1e3ef78731669db9963741b2ba27a502c2c5cd7eb225ed20e7b4facc76be",
    "keys.cbor": "878db76b48f889355f053a45c2789c7060a212deef2ce34dfd1180f10581286f",
    "signing.key": "f89a3cb41c1ef2036df759c9909e20d96ab9614d9b6af6068fb55cc79df1c79d",
    "export:README.txt": "eedf4300fb38611f8ba1c64231ede85d07477715d626a35fe4b18337c5d635a6",
    "export:segments/00000000000000000000.seg": "6dcf6659f34274909dc2e5ff8a1421ff61a2889d1f198831e4f0caced257e1ee",
    "export:segments/00000000000000000020.seg": "f225bb4244581219cc548cd85b871e6ccb38393adfc9f9519584c4a760fbed31",
    "export:segments/00000000000000000039.seg": "30f02a865c529dfc8bffd36c5b46232bddc235fb17536df67e7480ee7188ed0d",
    "export:segments/00000000000000000058.seg": "a6ba02719c212309721e315ddb3bd4daf4109b5e439b928afae84d91c41ef12f",
    "export:records.jsonl": "cfe54d85171ad83b5d95307cf5b13ec804e471020f75b5fe26f94f34cb014b91",
    "export:manifest.json": "0d6d792c066faef9514922aabdfb8ff11ce1c6d77f292b6346453aa71a74ed5f",
    "export:manifest.sig": "172c49aed306726514958c9a900ec0ec3f9ddb54b66add5c313a5a52c8997d9b",
}


@pytest.fixture()
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(os, "urandom", SeededRandom(b"ledger-bytes"))
    state = tmp_path / "state"
    build(state, FakeClock())
    return state


def hashes(state: Path) -> dict[str, str]:
    found = {path.name: digest(path.read_bytes()) for path in sorted(ledger_dir(state).iterdir())
             if path.is_file() and path.name != "lock"}
    with zipfile.ZipFile(state / "export.zip") as archive:
        found.update({f"export:{name}": digest(archive.read(name)) for name in archive.namelist()})
    return found


def test_a_fixed_ledger_and_its_export_are_byte_identical(built: Path) -> None:
    found = hashes(built)
    assert sum(name.endswith(".seg") for name in found) >= 2
    with Ledger.open(built, read_only=True) as ledger:
        types = {record.type for record in ledger.records()}
    assert types == KNOWN_TYPES  # every record type is in the pinned bytes
    assert found == EXPECTED


def test_the_streamed_export_holds_the_same_bytes(built: Path) -> None:
    with zipfile.ZipFile(built / "export.zip") as saved, zipfile.ZipFile(built / "stream.zip") as streamed:
        assert streamed.namelist() == saved.namelist()
        assert all(streamed.read(name) == saved.read(name) for name in saved.namelist())
