"""The signed head: checkpoints after durable records, every interval and at close, the head file beside the
segments, and records lost below it found at open, by verify and by verify-export."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError, LogCorrupt, LogTruncated, StoreError
from agent.ledger import Ledger, LedgerConfig, Truncation, codec, crypto
from agent.ledger.chain import Checkpoint
from agent.ledger.export import verify_export
from tests.ledger_support import CONFIG, FakeClock, copy_state, fill, frame_offsets, ledger_dir, segment_paths

HEAD = "checkpoint.cbor"


def head_of(state: Path) -> Checkpoint:
    return Checkpoint.from_fields(codec.loads((ledger_dir(state) / HEAD).read_bytes()))


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log stopped cleanly: its last record is the checkpoint the head file names."""
    state = tmp_path_factory.mktemp("closed")
    with Ledger.open(state, CONFIG) as ledger:
        fill(ledger, 14)
        ledger.append("upload", {"sink": "file"})
    return state


def record_count(state: Path) -> int:
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        return ledger.head()[0]


# -- when checkpoints are signed ----------------------------------------------------------------------------
@pytest.mark.parametrize("record_type", ["switch", "consent", "request", "incident"])
def test_a_checkpoint_and_the_head_file_follow_every_durable_record(tmp_path: Path, record_type: str) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("upload", {"sink": "file"})
        ref = ledger.append(record_type, {"n": 1})
        records = list(ledger.records())
        assert [record.type for record in records[-2:]] == [record_type, "checkpoint"]
        head = head_of(tmp_path)
        assert (head.count, head.head.hex()) == (ref.seq + 1, ref.hash)
        assert records[-1].fields == head.as_fields()


def test_with_its_thread_the_ledger_signs_a_burst_of_durable_records_soon_after(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, LedgerConfig(checkpoint_coalesce_ms=0)) as ledger:
        refs = [ledger.append("switch", {"n": n}) for n in range(20)]
        deadline = time.monotonic() + 10  # a bound on a wait, not a timing assertion
        while time.monotonic() < deadline and not (
                (ledger_dir(tmp_path) / HEAD).exists() and head_of(tmp_path).count > refs[-1].seq):
            time.sleep(0.01)
        assert head_of(tmp_path).count == refs[-1].seq + 1
        ledger.verify()


def test_a_checkpoint_comes_at_least_every_interval_while_records_are_added(tmp_path: Path) -> None:
    clock = FakeClock()
    config = LedgerConfig(flush_thread=False, checkpoint_interval_s=60.0)
    with Ledger.open(tmp_path, config, clock) as ledger:
        ledger.append("upload", {"n": 0})
        clock.now += 59
        ledger.append("upload", {"n": 1})
        assert ledger.last_record_of_type("checkpoint") is None
        clock.now += 1
        ledger.append("upload", {"n": 2})
        checkpoint = ledger.last_record_of_type("checkpoint")
        assert checkpoint is not None and checkpoint.fields["count"] == 3 == head_of(tmp_path).count


def test_the_thread_signs_records_that_wait_past_the_interval(tmp_path: Path) -> None:
    config = LedgerConfig(checkpoint_interval_s=0.05, group_commit_ms=10)
    with Ledger.open(tmp_path, config) as ledger:
        ledger.append("upload", {"n": 0})
        deadline = time.monotonic() + 10
        while not (ledger_dir(tmp_path) / HEAD).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert head_of(tmp_path).count == 1


def test_a_clean_stop_signs_and_a_stop_with_nothing_new_adds_nothing(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("upload", {"sink": "file"})
    count = record_count(tmp_path)
    assert count == 2 and head_of(tmp_path).count == 1
    Ledger.open(tmp_path, CONFIG).close()
    assert record_count(tmp_path) == count


def test_bad_coalescing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="checkpoint_coalesce_ms"):
        LedgerConfig(checkpoint_coalesce_ms=-1)


# -- records lost below the head ----------------------------------------------------------------------------
def test_truncation_at_every_record_boundary_below_the_head_is_found(closed: Path, tmp_path: Path) -> None:
    segment = segment_paths(closed)[-1]
    frames = frame_offsets(segment)
    total = record_count(closed)
    assert head_of(closed).count + 1 == total == len(frames)
    for kept, (start, _end) in enumerate(frames):
        state = copy_state(closed, tmp_path / f"cut{kept}")
        os.truncate(segment_paths(state)[-1], start)
        missing = total - kept
        with Ledger.open(state, CONFIG, read_only=True) as ledger:
            assert ledger.truncation == Truncation(missing=missing, head_size=total, found_size=kept)
            with pytest.raises(LogTruncated) as caught:
                ledger.verify()
        assert (caught.value.missing, caught.value.head_size) == (missing, total)
        records = "record" if missing == 1 else "records"
        assert f"{missing} {records} missing below the signed head of {total} records" in str(caught.value)
        assert (caught.value.segment, caught.value.offset) == (segment.name, start)


def test_a_writer_opens_a_truncated_log_records_the_loss_and_carries_on(closed: Path, tmp_path: Path) -> None:
    total = record_count(closed)
    state = copy_state(closed, tmp_path / "s")
    os.truncate(segment_paths(state)[-1], frame_offsets(segment_paths(state)[-1])[-3][0])
    with Ledger.open(state, CONFIG) as ledger:
        assert ledger.truncation == Truncation(missing=3, head_size=total, found_size=total - 3)
        records = list(ledger.records())
        lost = records[-2]
        assert (lost.type, records[-1].type) == ("recovery", "checkpoint")
        assert lost.fields["reason"] == "truncated" and lost.fields["missing_records"] == 3
        ledger.append("incident", {"kind": "ledger-truncated", "missing": 3})
        ledger.verify()
    with Ledger.open(state, CONFIG, read_only=True) as ledger:  # the head now describes the shortened log
        assert ledger.truncation is None
        assert ledger.verify().counts["recovery"] == 1  # and the loss stays in it
    with Ledger.open(state, CONFIG) as ledger:
        assert ledger.truncation is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_cut_inside_a_record_below_the_head_is_a_torn_tail_and_a_loss(
        closed: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    frames = frame_offsets(segment_paths(closed)[-1])
    kept = data.draw(st.integers(0, len(frames) - 1))
    start, end = frames[kept]
    cut = data.draw(st.integers(start + 1, end - 1))
    state = copy_state(closed, tmp_path_factory.mktemp("torn") / "s")
    os.truncate(segment_paths(state)[-1], cut)
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        assert ledger.torn_tail is not None and ledger.torn_tail.offset == start
        with pytest.raises(LogTruncated) as caught:
            ledger.verify()
        assert caught.value.missing == len(frames) - kept
    with Ledger.open(state, CONFIG) as ledger:
        assert ledger.truncation is not None and ledger.truncation.missing == len(frames) - kept
        kinds = [(record.type, record.fields.get("reason")) for record in ledger.records()][kept:]
        assert kinds == [("recovery", None), ("recovery", "truncated"), ("checkpoint", None)]
        ledger.verify()


def test_a_truncated_log_with_an_older_head_file_is_still_found(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        fill(ledger, 7)
        older = (ledger_dir(tmp_path) / HEAD).read_bytes()
        older_size = head_of(tmp_path).count + 1
        fill(ledger, 7)
    segment = segment_paths(tmp_path)[-1]
    os.truncate(segment, frame_offsets(segment)[older_size - 2][0])  # two below the older head
    (ledger_dir(tmp_path) / HEAD).write_bytes(older)
    with Ledger.open(tmp_path, CONFIG, read_only=True) as ledger, pytest.raises(LogTruncated) as caught:
        ledger.verify()
    assert (caught.value.missing, caught.value.head_size) == (2, older_size)


def test_a_loss_already_recorded_is_not_reported_again_after_a_crash(closed: Path, tmp_path: Path) -> None:
    """A crash after the loss was recorded but before the head file was rewritten leaves the old head: the
    recovery record naming it settles it."""
    state = copy_state(closed, tmp_path / "s")
    old_head = (ledger_dir(state) / HEAD).read_bytes()
    os.truncate(segment_paths(state)[-1], frame_offsets(segment_paths(state)[-1])[-2][0])
    Ledger.open(state, CONFIG).close()
    (ledger_dir(state) / HEAD).write_bytes(old_head)
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        assert ledger.truncation is None
        ledger.verify()


def test_a_log_rewritten_past_its_head_is_corruption(closed: Path, tmp_path: Path) -> None:
    state = copy_state(closed, tmp_path / "s")
    old_head = (ledger_dir(state) / HEAD).read_bytes()
    os.truncate(segment_paths(state)[-1], frame_offsets(segment_paths(state)[-1])[-2][0])
    (ledger_dir(state) / HEAD).unlink()  # hides the loss from the writer, which then writes other records
    with Ledger.open(state, CONFIG) as ledger:
        fill(ledger, 6)
    (ledger_dir(state) / HEAD).write_bytes(old_head)
    with pytest.raises(LogCorrupt, match="rewritten"):
        Ledger.open(state, CONFIG, read_only=True)


def test_a_deleted_head_file_fails_verify_and_a_writer_records_it(closed: Path, tmp_path: Path) -> None:
    state = copy_state(closed, tmp_path / "s")
    (ledger_dir(state) / HEAD).unlink()
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        assert ledger.head_missing and ledger.truncation is None
        with pytest.raises(LogCorrupt, match="head file is missing") as caught:
            ledger.verify()
    assert caught.value.segment == HEAD
    with Ledger.open(state, CONFIG) as ledger:
        assert ledger.head_missing
        recovery = ledger.last_record_of_type("recovery")
        assert recovery is not None and recovery.fields["reason"] == "head_file_missing"
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        assert not ledger.head_missing
        ledger.verify()


def test_a_log_without_checkpoints_needs_no_head_file(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("upload", {"sink": "file"})
        ledger.flush()
        crashed = copy_state(tmp_path, tmp_path.parent / f"{tmp_path.name}-crashed")
    with Ledger.open(crashed, CONFIG, read_only=True) as ledger:
        assert not ledger.head_missing
        assert ledger.verify().records == 1


@pytest.mark.parametrize("damage", ["garbage", "flipped", "empty", "oversized", "other key"])
def test_a_damaged_head_file_is_named(closed: Path, tmp_path: Path, damage: str) -> None:
    state = copy_state(closed, tmp_path / "s")
    path = ledger_dir(state) / HEAD
    raw = bytearray(path.read_bytes())
    if damage == "garbage":
        raw = bytearray(b"\xff\x00garbage")
    elif damage == "flipped":
        raw[-5] ^= 0x01  # inside the signature
    elif damage == "empty":
        raw = bytearray()
    elif damage == "oversized":
        raw = bytearray(8192)
    else:
        fields = codec.loads(bytes(raw))
        signer = crypto.Signer(crypto.Signer.generate_private_bytes())
        checkpoint = Checkpoint.from_fields(fields)
        fields.update(key=signer.public_key, sig=signer.sign(checkpoint.message()))
        raw = bytearray(codec.dumps(fields))
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError) as caught:
        Ledger.open(state, CONFIG, read_only=True)
    assert HEAD in str(caught.value)
    with pytest.raises(StoreError):
        Ledger.open(state, CONFIG)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_head_file_that_is_not_a_regular_file_is_refused_without_blocking(closed: Path, tmp_path: Path,
                                                                          kind: str) -> None:
    state = copy_state(closed, tmp_path / "s")
    path = ledger_dir(state) / HEAD
    real = tmp_path / "real"
    shutil.move(path, real)
    if kind == "symlink":
        path.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(StoreError, match=re.escape(HEAD)):
        Ledger.open(state, CONFIG, read_only=True)


def test_the_head_file_is_written_through_an_unpredictable_temporary_name(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("upload", {})
        victim = tmp_path / "victim"
        victim.write_bytes(b"keep")
        (ledger_dir(tmp_path) / f".{HEAD}.tmp").symlink_to(victim)  # the name the old writer used
        ledger.checkpoint()
    assert victim.read_bytes() == b"keep"
    assert head_of(tmp_path).count == record_count(tmp_path) - 1
    leftovers = [path.name for path in ledger_dir(tmp_path).iterdir() if path.name.startswith(f".{HEAD}.")]
    assert leftovers == [f".{HEAD}.tmp"]


# -- the export carries the head ----------------------------------------------------------------------------
def test_an_export_of_a_truncated_log_fails_verify_export_naming_the_count(closed: Path, tmp_path: Path) -> None:
    total = record_count(closed)
    state = copy_state(closed, tmp_path / "s")
    os.truncate(segment_paths(state)[-1], frame_offsets(segment_paths(state)[-1])[-4][0])
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        out = Path(ledger.export(tmp_path / "export.zip").path)
    with pytest.raises(LogTruncated, match=f"4 records missing below the signed head of {total} records"):
        verify_export(out)
    with Ledger.open(state, CONFIG) as ledger:  # once the loss is recorded, the export verifies and shows it
        out = Path(ledger.export(tmp_path / "after.zip").path)
    report = verify_export(out)
    assert report.counts["recovery"] == 1 and report.signed_head_records == report.records


def test_an_export_made_without_the_head_file_does_not_verify(closed: Path, tmp_path: Path) -> None:
    state = copy_state(closed, tmp_path / "s")
    (ledger_dir(state) / HEAD).unlink()
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        out = Path(ledger.export(tmp_path / "export.zip").path)
    with pytest.raises(LogCorrupt, match="head file was missing"):
        verify_export(out)


def test_an_export_of_a_log_without_checkpoints_needs_no_head(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "s", CONFIG) as ledger:
        ledger.append("upload", {"sink": "file"})
        report = verify_export(Path(ledger.export(tmp_path / "export.zip").path))
    assert (report.records, report.checkpoints, report.signed_head_records) == (1, 0, None)


# -- the device key's fingerprint ---------------------------------------------------------------------------
def test_the_key_fingerprint_is_sha256_of_the_raw_public_key_in_base64(closed: Path) -> None:
    with Ledger.open(closed, CONFIG, read_only=True) as ledger:
        fingerprint = ledger.key_fingerprint()
    public_key = crypto.Signer((ledger_dir(closed) / "signing.key").read_bytes()).public_key
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint)
    assert fingerprint == crypto.key_fingerprint(public_key)
    import base64
    import hashlib
    assert base64.b64decode(fingerprint[7:] + "=") == hashlib.sha256(public_key).digest()
