"""Erasure by crypto-shredding, retention, and the access-request export with its offline verifier."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ExportError, LogCorrupt, UsageError
from agent.ledger import Ledger, LedgerConfig, codec, crypto, export
from agent.ledger.export import verify_export
from agent.main import main
from tests.ledger_support import CONFIG, LAT, MARKER, FakeClock, all_bytes, fill, frame_offsets, segment_paths

DAY_S = 86_400


def export_bytes(path: Path) -> bytes:
    """Every member of an export, decompressed, so that a search sees what a reader would."""
    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def plaintexts(index: int) -> list[bytes]:
    return [MARKER.encode(), cbor2.dumps(LAT + index), str(LAT + index).encode()]


def read_lines(path: Path) -> list[dict[str, object]]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(line) for line in archive.read("records.jsonl").splitlines()]


# -- erase --------------------------------------------------------------------------------------------------
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(2, 25), scope=st.sampled_from(["everything", "epoch", "time_range"]))
def test_erase_keeps_the_chain_and_leaves_no_plaintext_anywhere(tmp_path_factory: pytest.TempPathFactory,
                                                               count: int, scope: str) -> None:
    state = tmp_path_factory.mktemp("state")
    clock = FakeClock()
    with Ledger.open(state, CONFIG, clock=clock) as ledger:
        fill(ledger, count)
        ledger.export(state / "before.zip")
        assert MARKER.encode() in export_bytes(state / "before.zip")  # the search below can find it
        epoch = int(clock.now) // DAY_S
        if scope == "everything":
            summary = ledger.erase(everything=True)
        elif scope == "epoch":
            summary = ledger.erase(epoch=epoch)
        else:
            millis = int(clock.now * 1000)
            summary = ledger.erase(time_range=(millis - 1, millis + 1))
        personal_records = sum(1 for index in range(count) if index % 3 != 0)
        assert summary.records_affected == personal_records
        assert summary.keys_destroyed == (1 if personal_records else 0)
        report = ledger.verify()
        ledger.export(state / "after.zip")
    (state / "before.zip").unlink()
    everything = all_bytes(state)
    exported = export_bytes(state / "after.zip")
    for index in range(count):
        if index % 3 != 0:
            for secret in plaintexts(index)[:2]:
                assert secret not in everything
                assert secret not in exported
    assert verify_export(state / "after.zip").records == report.records
    lines = read_lines(state / "after.zip")
    erased = [line for line in lines if line["type"] == "fix_access"]
    assert all(line["personal"] == {"erased": True, "key_id": line["personal"]["key_id"]}  # type: ignore[index]
               for line in erased)
    assert lines[-1]["type"] == "key_destroyed" or summary.keys_destroyed == 0


def test_erase_by_epoch_spares_other_epochs(tmp_path: Path) -> None:
    clock = FakeClock()
    with Ledger.open(tmp_path, CONFIG, clock=clock) as ledger:
        old = ledger.append("fix_access", {}, personal={"lat_e7": 1}, epoch=7)
        new = ledger.append("fix_access", {}, personal={"lat_e7": 2}, epoch=8)
        summary = ledger.erase(epoch=7)
        assert (summary.epochs, summary.records_affected) == ((7,), 1)
        records = {record.seq: record for record in ledger.records()}
        assert ledger.open_personal(records[old.seq]) is None
        assert ledger.open_personal(records[new.seq]) == {"lat_e7": 2}
        destroyed = ledger.last_record_of_type("key_destroyed")
        assert destroyed is not None and destroyed.fields["scope"] == "epoch"
        assert destroyed.fields["epochs"] == [7]


def test_new_personal_data_after_erase_uses_a_new_key(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("fix_access", {}, personal={"lat_e7": 1})
        ledger.erase(everything=True)
        ledger.append("fix_access", {}, personal={"lat_e7": 2})
        last = ledger.last_record_of_type("fix_access")
        assert last is not None and ledger.open_personal(last) == {"lat_e7": 2}


def test_erase_needs_exactly_one_selector(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        for kwargs in ({}, {"epoch": 1, "everything": True}, {"time_range": (5, 1)}, {"time_range": (1,)},
                       {"time_range": "ab"}, {"epoch": "7"}):
            with pytest.raises(UsageError):
                ledger.erase(**kwargs)


def test_retention_destroys_old_keys_when_a_new_epoch_starts(tmp_path: Path) -> None:
    clock = FakeClock()
    config = LedgerConfig(flush_thread=False, retention_days=2)
    with Ledger.open(tmp_path, config, clock=clock) as ledger:
        ledger.append("fix_access", {}, personal={"lat_e7": 1})
        clock.now += DAY_S
        ledger.append("fix_access", {}, personal={"lat_e7": 2})
        assert ledger.last_record_of_type("key_destroyed") is None  # retired one day ago: kept
        clock.now += 3 * DAY_S
        ledger.append("fix_access", {}, personal={"lat_e7": 3})
        destroyed = ledger.last_record_of_type("key_destroyed")
        assert destroyed is not None and destroyed.fields["reason"] == "retention"
        fixes = [record for record in ledger.records() if record.type == "fix_access"]
        personal = [ledger.open_personal(record) for record in fixes]
        assert personal == [None, {"lat_e7": 2}, {"lat_e7": 3}]  # the second key retired only now
        ledger.verify()


# -- export -------------------------------------------------------------------------------------------------
@pytest.fixture
def exported(tmp_path: Path) -> Path:
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 14)
        ledger.append("consent", {"purpose": "fleet", "granted": True, "policy_version": "2024-05"})
        return Path(ledger.export(tmp_path / "export.zip").path)


def test_export_contains_the_promised_files_and_round_trips(exported: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert {"manifest.json", "manifest.sig", "records.jsonl", "README.txt"} <= names
    assert any(name.startswith("segments/") for name in names)
    assert manifest["policy_versions"] == ["2024-05"]
    assert manifest["record_counts"]["consent"] == 1
    assert manifest["checkpoint"] is not None
    assert set(manifest["files"]) == names - {"manifest.json", "manifest.sig"}
    report = verify_export(exported)
    assert report.records == manifest["records"] and report.head == manifest["chain"]["head"]
    lines = read_lines(exported)
    fix = next(line for line in lines if line["type"] == "fix_access")
    assert fix["personal"]["note"] == MARKER  # type: ignore[index]
    assert str(fix["time"]).endswith("Z")


def rewrite(source: Path, target: Path, change: dict[str, bytes], *,
            compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression=compression) as new:
        for name in old.namelist():
            new.writestr(name, change.get(name, old.read(name)))
    return target


def test_tampered_exports_are_refused(exported: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        lines = archive.read("records.jsonl")
        manifest = json.loads(archive.read("manifest.json"))
        segment = next(name for name in archive.namelist() if name.startswith("segments/"))
        raw = archive.read(segment)
    changed_line = lines.replace(b'"fleet"', b'"other"', 1)
    cases = {"line": {"records.jsonl": changed_line}}
    manifest_with_hash = dict(manifest)
    manifest_with_hash["files"] = {**manifest["files"], "records.jsonl": {
        "sha256": __import__("hashlib").sha256(changed_line).hexdigest(), "bytes": len(changed_line)}}
    cases["line with fixed hash"] = {"records.jsonl": changed_line,
                                     "manifest.json": json.dumps(manifest_with_hash).encode()}
    forged = dict(manifest)
    forged["checkpoint"] = {**manifest["checkpoint"], "signature": "00" * 64}
    cases["signature"] = {"manifest.json": json.dumps(forged).encode()}
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 4
    cases["segment"] = {segment: bytes(flipped)}
    for label, change in cases.items():
        with pytest.raises(ExportError):
            verify_export(rewrite(exported, tmp_path / f"{label}.zip", change))
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ExportError):
        verify_export(tmp_path / "junk.zip")


def test_export_refuses_existing_paths_unless_asked(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        ledger.append("switch", {})
        out = tmp_path / "out.zip"
        out.write_bytes(b"keep")
        with pytest.raises(UsageError, match="exists"):
            ledger.export(out)
        assert out.read_bytes() == b"keep"
        victim = tmp_path / "victim"
        victim.write_bytes(b"keep")
        link = tmp_path / "link.zip"
        link.symlink_to(victim)
        with pytest.raises(UsageError, match="symlink"):
            ledger.export(link)
        ledger.export(link, overwrite=True)
        assert victim.read_bytes() == b"keep" and not link.is_symlink()
        ledger.export(out, overwrite=True)
        assert verify_export(out).records == 2  # the switch and its checkpoint
        assert oct(os.stat(out).st_mode & 0o777) == oct(0o600)


def test_export_reports_progress(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with Ledger.open(tmp_path, CONFIG) as ledger:
        fill(ledger, 3000, personal=False)
        ledger.export(tmp_path / "x.zip", progress=lambda done, total: seen.append((done, total)))
        count = ledger.head()[0]
    assert seen[-1] == (count, count) and len(seen) > 2


ODD_FIELDS = [
    {"text": 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f', "unicode": "héllo ✓ 𝄞 \u2028"},
    {"list": [1, "two", {"three": b"\x03"}, [], {}], "nested": {"a": {"b": None, "c": True, "d": False}}},
    {"big": 2**64 - 1, "negative": -(2**63), "zero": 0, "bytes": b"\x00\xff", "policy_version": 7},
    {"%s": "%d", "": "", "policy_version": "2024-05"},
    {},
]


def reference_line(ledger: Ledger, record: codec.Record) -> str:
    """A line of records.jsonl as the JSON encoder writes the whole entry (what the export once did itself)."""
    entry: dict[str, object] = {"seq": record.seq, "time": export.iso_time(record.time_ms),
                                "time_ms": record.time_ms, "type": record.type,
                                "fields": export.to_json(record.fields)}
    if record.sealed is not None:
        personal = ledger.open_personal(record)
        entry["personal"] = export.to_json(personal) if personal is not None else {
            "erased": True, "key_id": record.sealed.key_id}
    entry["hash"] = record.hash.hex()
    return json.dumps(entry, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def test_records_jsonl_is_the_json_encoding_of_each_record(tmp_path: Path) -> None:
    clock = FakeClock()
    with Ledger.open(tmp_path / "state", CONFIG, clock=clock) as ledger:
        for index in range(40):
            clock.now += 0.4 if index % 5 else 3600.7  # same and new seconds, and several epochs' keys
            fields = ODD_FIELDS[index % len(ODD_FIELDS)]
            if index % 2:
                ledger.append("fix_access", fields, personal={**fields, "lat_e7": LAT + index}, epoch=index // 10)
            else:
                ledger.append("upload", fields)
        ledger.erase(epoch=1)
        out = Path(ledger.export(tmp_path / "export.zip").path)
        expected = "".join(reference_line(ledger, record) for record in ledger.records())
    with zipfile.ZipFile(out) as archive:
        assert archive.read("records.jsonl").decode() == expected
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["policy_versions"] == ["2024-05", "7"]
    assert manifest["erased_records"] == 5
    assert verify_export(out).erased_records == 5


def test_export_in_many_chunks_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "JSONL_BATCH", 2)
    monkeypatch.setattr(export, "JSONL_CHUNK", 3)  # rounded up to whole batches: chunks of 4 lines
    seen: list[int] = []
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 30)
        out = Path(ledger.export(tmp_path / "export.zip", progress=lambda done, _total: seen.append(done)).path)
        count = ledger.head()[0]
        expected = "".join(reference_line(ledger, record) for record in ledger.records())
    assert read_lines(out) == [json.loads(line) for line in expected.splitlines()]
    assert verify_export(out).records == count
    assert seen == [*range(2, count + 1, 2), count]


def writer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "ledger-export-writer"]


def test_a_failed_write_in_the_writer_thread_is_an_export_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "JSONL_BATCH", 2)
    monkeypatch.setattr(export, "JSONL_CHUNK", 2)
    real_write = zipfile._ZipWriteFile.write  # type: ignore[attr-defined]
    written: list[int] = []

    def write(self: object, data: bytes) -> int:
        if threading.current_thread() is not threading.main_thread():
            written.append(len(data))
            if len(written) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        result: int = real_write(self, data)
        return result

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", write)  # type: ignore[attr-defined]
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 30)
        with pytest.raises(ExportError, match="No space left"):
            ledger.export(tmp_path / "export.zip")
    assert len(written) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]
    assert writer_threads() == []


def test_damage_found_after_several_chunks_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "JSONL_BATCH", 2)
    monkeypatch.setattr(export, "JSONL_CHUNK", 2)
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 30)
    segment = segment_paths(tmp_path / "state")[0]
    start, _ = frame_offsets(segment)[25]
    with Ledger.open(tmp_path / "state", read_only=True) as ledger:  # checked on open; damaged after
        raw = bytearray(segment.read_bytes())
        raw[start + 20] ^= 0x10
        segment.write_bytes(bytes(raw))
        with pytest.raises(LogCorrupt) as caught:
            ledger.export(tmp_path / "export.zip")
    assert (caught.value.segment, caught.value.offset) == (segment.name, start)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]
    assert writer_threads() == []


def test_streamed_members_carry_zip64_sizes(exported: Path) -> None:
    """Streamed members cannot know their size up front, so each local header has a ZIP64 extra field."""
    with zipfile.ZipFile(exported) as archive:
        infos = [archive.getinfo(name) for name in archive.namelist() if not name.startswith("manifest.")]
    raw = exported.read_bytes()
    for info in infos:
        name_length, extra_length = struct.unpack_from("<HH", raw, info.header_offset + 26)
        extra = raw[info.header_offset + 30 + name_length:][:extra_length]
        assert extra[:2] == b"\x01\x00", info.filename


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["schema", "records", "record_counts", "chain", "checkpoint", "public_key",
                            "files", "erased_records", "created", "policy_versions", "erased_keys"]),
       value=json_values)
def test_any_malformed_manifest_is_an_export_error(tmp_path_factory: pytest.TempPathFactory, key: str,
                                                   value: object) -> None:
    directory = tmp_path_factory.mktemp("bad")
    source = directory / "good.zip"
    with Ledger.open(directory / "state", CONFIG) as ledger:
        fill(ledger, 6)
        ledger.export(source)
    with zipfile.ZipFile(source) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    if manifest.get(key) == value:
        return
    manifest[key] = value
    with pytest.raises(ExportError):
        verify_export(rewrite(source, directory / "bad.zip",
                              {"manifest.json": json.dumps(manifest).encode()}))


# -- crafted zips (found by fuzzing) -----------------------------------------------------------------------
def central_entry(raw: bytes | bytearray, name: str) -> int:
    """Offset of member ``name``'s entry in the central directory."""
    start = 0
    while (start := raw.find(b"PK\x01\x02", start)) >= 0:
        (length,) = struct.unpack_from("<H", raw, start + 28)
        if raw[start + 46:start + 46 + length] == name.encode():
            return start
        start += 4
    raise AssertionError(f"no central directory entry for {name}")


def patch_member(source: Path, target: Path, name: str, *, flag_bits: int = 0, method: int | None = None,
                 size: int | None = None, data: bytes = b"") -> Path:
    """Copy ``source`` with member ``name`` changed in place: flag bits or'ed in, the compression method or
    uncompressed size replaced (in both headers, as a crafted zip would), its first bytes overwritten."""
    raw = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        local = archive.getinfo(name).header_offset
    central = central_entry(raw, name)
    for offset, flags_at, method_at in ((local, 6, 8), (central, 8, 10)):
        struct.pack_into("<H", raw, offset + flags_at, struct.unpack_from("<H", raw, offset + flags_at)[0] | flag_bits)
        if method is not None:
            struct.pack_into("<H", raw, offset + method_at, method)
    if size is not None:
        struct.pack_into("<I", raw, central + 24, size)
        struct.pack_into("<I", raw, local + 22, size)
    name_length, extra_length = struct.unpack_from("<HH", raw, local + 26)
    start = local + 30 + name_length + extra_length
    raw[start:start + len(data)] = data
    target.write_bytes(bytes(raw))
    return target


def resigned(exported: Path, target: Path, *, manifest_prefix: bytes = b"", records: bytes | None = None) -> Path:
    """A copy of ``exported`` with the device's own key over a changed manifest.json or records.jsonl, as
    only the device (or someone with its key) could make it: every check before the change passes."""
    with zipfile.ZipFile(exported) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    change: dict[str, bytes] = {}
    if records is not None:
        manifest["files"]["records.jsonl"]["sha256"] = hashlib.sha256(records).hexdigest()
        manifest["files"]["records.jsonl"]["bytes"] = len(records)
        change["records.jsonl"] = records
    raw = manifest_prefix + json.dumps(manifest, indent=2, sort_keys=True).encode()
    signer = crypto.Signer((exported.parent / "state" / "ledger" / "signing.key").read_bytes())
    change.update({"manifest.json": raw, "manifest.sig": signer.sign(raw).hex().encode() + b"\n"})
    return rewrite(exported, target, change, compression=zipfile.ZIP_DEFLATED)


def exported_lines(exported: Path) -> list[bytes]:
    with zipfile.ZipFile(exported) as archive:
        return archive.read("records.jsonl").split(b"\n")


DEFLATE_RESERVED_BLOCK = b"\xff" * 4  # a final block of the reserved type 3: zlib refuses to inflate it
CRAFTED: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "damaged manifest data": (lambda exported, target: patch_member(
        exported, target, "manifest.json", data=DEFLATE_RESERVED_BLOCK), "cannot be inflated"),
    "damaged records data": (lambda exported, target: patch_member(
        exported, target, "records.jsonl", data=DEFLATE_RESERVED_BLOCK), "cannot be inflated"),
    "unknown compression method": (lambda exported, target: patch_member(
        exported, target, "records.jsonl", method=99), "compression method"),
    "encrypted member": (lambda exported, target: patch_member(
        exported, target, "README.txt", flag_bits=0x1), "encrypted"),
    "deeply nested manifest": (lambda exported, target: rewrite(
        exported, target, {"manifest.json": b"[" * 100_000}), "manifest.json is nested too deeply"),
    "deeply nested line": (lambda exported, target: resigned(
        exported, target, records=b"\n".join([b"[" * 100_000, *exported_lines(exported)[1:]])),
        "a line of records.jsonl is nested too deeply"),
    # JSON allows any whitespace before a value: without a bound these would verify, after reading it all
    "huge manifest": (lambda exported, target: resigned(
        exported, target, manifest_prefix=b" " * export.MANIFEST_LIMIT), "manifest.json is larger than"),
    "huge line": (lambda exported, target: resigned(
        exported, target, records=b" " * export.LINE_LIMIT + b"\n".join(exported_lines(exported))),
        "longer than any record"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_zips_are_export_errors_with_clear_messages(exported: Path, tmp_path: Path, case: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    make, message = CRAFTED[case]
    crafted = make(exported, tmp_path / "crafted.zip")
    with pytest.raises(ExportError, match=message):
        verify_export(crafted)
    assert main(["verify-export", str(crafted)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("privacy-agent: ") and message in error


def test_a_damaged_member_is_named(exported: Path, tmp_path: Path) -> None:
    for name in ("manifest.json", "records.jsonl"):
        with pytest.raises(ExportError, match="cannot be inflated") as caught:
            verify_export(patch_member(exported, tmp_path / "damaged.zip", name, data=DEFLATE_RESERVED_BLOCK))
        assert caught.value.details["file"] == name


def test_a_manifest_that_understates_its_size_is_not_read_past_it(exported: Path, tmp_path: Path) -> None:
    """The declared size passes the limit, the data inflates far beyond it: reading stops at the limit (and
    zipfile at the declared size, whose CRC then fails)."""
    with zipfile.ZipFile(exported) as archive:
        manifest = archive.read("manifest.json")
    big = rewrite(exported, tmp_path / "big.zip", {"manifest.json": b" " * (2 * export.MANIFEST_LIMIT) + manifest},
                  compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ExportError, match="larger than"):
        verify_export(big)
    with pytest.raises(ExportError):
        verify_export(patch_member(big, tmp_path / "lying.zip", "manifest.json", size=len(manifest)))


def test_the_writer_refuses_a_manifest_the_verifier_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "MANIFEST_LIMIT", 1000)
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 6)
        with pytest.raises(ExportError, match="manifest would be larger"):
            ledger.export(tmp_path / "export.zip")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]


def test_records_are_read_line_by_line_across_chunks(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines cut by chunk borders are joined again, at every border position."""
    expected = verify_export(exported)
    for chunk in (1, 7, 300):
        monkeypatch.setattr(export, "COPY_CHUNK", chunk)
        assert verify_export(exported) == expected
