"""The store: chain across reopen and segments, recovery of torn tails, located corruption, durability."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import stat
import threading
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_mock import MockerFixture

from agent.errors import ConfigError, LogCorrupt, LogTruncated, StoreError, UsageError
from agent.ledger import Ledger, LedgerConfig, RecordRef
from tests.ledger_support import CONFIG, FakeClock, copy_state, fill, frame_offsets, ledger_dir, segment_paths

SMALL_SEGMENTS = LedgerConfig(flush_thread=False, checkpoint_every=5, segment_bytes=4096)


def test_append_returns_sequence_and_head(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        first = ledger.append("switch", {"desired": "off", "by_uid": 0})  # and a checkpoint after it
        second = ledger.append("fix_access", {"purpose": "fleet"}, personal={"lat_e7": 1, "lon_e7": 2})
        assert (first.seq, second.seq) == (0, 2)
        assert ledger.head() == (3, second.hash)
        # built field by field for speed: the same value, as immutable, as the constructor makes
        assert second == RecordRef(2, second.hash) and repr(second) == repr(RecordRef(2, second.hash))
        with pytest.raises(dataclasses.FrozenInstanceError):
            second.seq = 5  # type: ignore[misc]
        record = ledger.last_record_of_type("fix_access")
        assert record is not None and ledger.open_personal(record) == {"lat_e7": 1, "lon_e7": 2}
        assert b"\x01" not in record.fields.get("purpose", "").encode()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.integers(0, 12), min_size=1, max_size=5))
def test_append_reopen_append_keeps_one_chain(tmp_path_factory: pytest.TempPathFactory,
                                              batches: list[int]) -> None:
    state = tmp_path_factory.mktemp("state")
    expected = 0
    for batch in batches:
        with Ledger.open(state, SMALL_SEGMENTS) as ledger:
            before = ledger.head()[0]
            fill(ledger, batch)
            assert ledger.head()[0] >= before + batch
        with Ledger.open(state, SMALL_SEGMENTS, read_only=True) as ledger:
            expected = ledger.head()[0]  # with the checkpoint of the clean stop
            assert batch == 0 or ledger.last_record_of_type("checkpoint") == list(ledger.records())[-1]
    with Ledger.open(state, SMALL_SEGMENTS) as ledger:
        report = ledger.verify()
        assert report.records == expected
        seqs = [record.seq for record in ledger.records()]
        assert seqs == list(range(expected))
        for record in ledger.records():
            assert cbor2.dumps(cbor2.loads(record.payload), canonical=True) == record.payload


def test_segments_rotate_and_chain_across_them(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, SMALL_SEGMENTS) as ledger:
        fill(ledger, 120)
    with Ledger.open(tmp_path, SMALL_SEGMENTS, read_only=True) as ledger:
        report = ledger.verify()
    assert report.segments == len(segment_paths(tmp_path)) > 2
    with Ledger.open(tmp_path, SMALL_SEGMENTS) as ledger:
        assert ledger.verify() == report


def test_last_record_of_type_survives_reopen(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("switch", {"desired": "on", "generation": 1})
        ledger.append("switch", {"desired": "off", "generation": 2})
        ledger.append("upload", {"sink": "x"})
    with Ledger.open(tmp_path, CONFIG) as ledger:
        record = ledger.last_record_of_type("switch")
        assert record is not None and record.fields == {"desired": "off", "generation": 2}
        assert ledger.last_record_of_type("consent") is None


# -- recovery -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log as a crash leaves it: its last records (the two after the last switch) come after the newest
    signed head, so cutting them is a torn tail, not a loss below the head."""
    state = tmp_path_factory.mktemp("built")
    with Ledger.open(state, CONFIG) as ledger:
        fill(ledger, 8)
        ledger.append("fix_access", {"purpose": "last"}, personal={"lat_e7": 5, "lon_e7": 6})
        ledger.flush()
        crashed = copy_state(state, tmp_path_factory.mktemp("crashed") / "s")
        assert ledger.head()[0] == ledger.last_record_of_type("checkpoint").seq + 3  # type: ignore[union-attr]
    return crashed


def test_truncation_at_every_offset_of_the_last_record_recovers_to_the_previous(
        built: Path, tmp_path: Path) -> None:
    segment = segment_paths(built)[-1]
    start, end = frame_offsets(segment)[-1]
    with Ledger.open(copy_state(built, tmp_path / "whole"), CONFIG, read_only=True) as ledger:
        count, _ = ledger.head()
        previous = [record for record in ledger.records()][-2]
    for cut in range(start, end):
        state = copy_state(built, tmp_path / f"cut{cut}")
        os.truncate(segment_paths(state)[-1], cut)
        with Ledger.open(state, CONFIG) as ledger:
            records = list(ledger.records())
            assert records[count - 2].hash == previous.hash
            if cut == start:  # ends on a frame boundary: nothing torn, nothing to record
                assert len(records) == count - 1
                continue
            recovery = records[-2]  # and a checkpoint after it
            assert (len(records), recovery.type, records[-1].type) == (count + 1, "recovery", "checkpoint")
            assert recovery.fields["offset"] == start and recovery.fields["truncated_bytes"] == cut - start
            ledger.verify()


def test_read_only_open_reports_a_torn_tail_without_cutting_it(built: Path, tmp_path: Path) -> None:
    state = copy_state(built, tmp_path / "s")
    segment = segment_paths(state)[-1]
    size = segment.stat().st_size
    os.truncate(segment, size - 3)
    with Ledger.open(state, CONFIG, read_only=True) as ledger:
        report = ledger.verify()
    assert report.torn_tail is not None and report.torn_tail.length == frame_offsets_len(built) - 3
    assert segment.stat().st_size == size - 3


def frame_offsets_len(state: Path) -> int:
    start, end = frame_offsets(segment_paths(state)[-1])[-1]
    return end - start


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_bit_flip_is_detected_at_the_frame_that_holds_it(built: Path,
                                                             tmp_path_factory: pytest.TempPathFactory,
                                                             data: st.DataObject) -> None:
    segment = segment_paths(built)[-1]
    frames = frame_offsets(segment)
    position = data.draw(st.integers(0, frames[-1][1] - 1))
    bit = data.draw(st.integers(0, 7))
    state = copy_state(built, tmp_path_factory.mktemp("flip") / "s")
    target = segment_paths(state)[-1]
    raw = bytearray(target.read_bytes())
    raw[position] ^= 1 << bit
    target.write_bytes(bytes(raw))
    holder = next(start for start, end in frames if start <= position < end)
    with pytest.raises(LogCorrupt) as caught:
        Ledger.open(state, CONFIG).close()
    assert caught.value.segment == segment.name
    assert caught.value.offset == holder
    assert str(holder) in str(caught.value)


@pytest.fixture(scope="module")
def built_segments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("segments")
    with Ledger.open(state, SMALL_SEGMENTS) as ledger:
        fill(ledger, 90)
    return state


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bit_flips_in_any_segment_or_the_checkpoint_file_are_located(built_segments: Path,
                                                                    tmp_path_factory: pytest.TempPathFactory,
                                                                    data: st.DataObject) -> None:
    names = [path.name for path in segment_paths(built_segments)] + ["checkpoint.cbor"]
    name = data.draw(st.sampled_from(names))
    size = (ledger_dir(built_segments) / name).stat().st_size
    position = data.draw(st.integers(0, size - 1))
    state = copy_state(built_segments, tmp_path_factory.mktemp("flip") / "s")
    target = ledger_dir(state) / name
    raw = bytearray(target.read_bytes())
    raw[position] ^= 1 << data.draw(st.integers(0, 7))
    target.write_bytes(bytes(raw))
    with pytest.raises(LogCorrupt) as caught:
        Ledger.open(state, SMALL_SEGMENTS).close()
    assert caught.value.segment == name
    if name.endswith(".seg"):
        frames = frame_offsets(ledger_dir(built_segments) / name)
        assert caught.value.offset == next(start for start, end in frames if start <= position < end)


def test_reordered_records_are_corruption(built: Path, tmp_path: Path) -> None:
    state = copy_state(built, tmp_path / "s")
    segment = segment_paths(state)[-1]
    raw = segment.read_bytes()
    (a0, a1), (b0, b1) = frame_offsets(segment)[2:4]
    segment.write_bytes(raw[:a0] + raw[b0:b1] + raw[a0:a1] + raw[b1:])
    with pytest.raises(LogCorrupt) as caught:
        Ledger.open(state, CONFIG)
    assert (caught.value.segment, caught.value.offset) == (segment.name, a0)


def test_a_missing_middle_segment_is_named(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, SMALL_SEGMENTS) as ledger:
        fill(ledger, 120)
    paths = segment_paths(tmp_path)
    paths[1].unlink()
    with pytest.raises(LogCorrupt) as caught:
        Ledger.open(tmp_path, SMALL_SEGMENTS)
    assert (caught.value.segment, caught.value.offset) == (paths[2].name, 0)


def test_a_missing_last_segment_is_noticed_through_the_head_file(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, SMALL_SEGMENTS) as ledger:
        fill(ledger, 120)
        total = ledger.head()[0] + 1  # and the checkpoint of the clean stop
    paths = segment_paths(tmp_path)
    lost = len(frame_offsets(paths[-1]))
    paths[-1].unlink()
    with Ledger.open(tmp_path, SMALL_SEGMENTS, read_only=True) as ledger, \
            pytest.raises(LogTruncated) as caught:
        ledger.verify()
    assert caught.value.segment == paths[-2].name
    assert caught.value.offset == paths[-2].stat().st_size
    assert (caught.value.missing, caught.value.head_size) == (lost, total)
    assert f"{lost} records missing below the signed head of {total} records" in str(caught.value)


def test_a_cut_in_a_middle_segment_is_corruption(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, SMALL_SEGMENTS) as ledger:
        fill(ledger, 120)
    first = segment_paths(tmp_path)[0]
    os.truncate(first, first.stat().st_size - 1)
    with pytest.raises(LogCorrupt) as caught:
        Ledger.open(tmp_path, SMALL_SEGMENTS)
    assert caught.value.segment == first.name


def test_a_forged_checkpoint_signature_is_corruption(built: Path, tmp_path: Path) -> None:
    state = copy_state(built, tmp_path / "s")
    other = tmp_path / "other"
    with Ledger.open(other, CONFIG) as ledger:
        ledger.append("switch", {})
    shutil.copy(ledger_dir(other) / "signing.key", ledger_dir(state) / "signing.key")
    with pytest.raises(LogCorrupt, match="another key"):
        Ledger.open(state, CONFIG)
    (ledger_dir(state) / "checkpoint.cbor").unlink()  # the checkpoints in the log are checked too
    with pytest.raises(LogCorrupt, match="another key"):
        Ledger.open(state, CONFIG)


# -- durability ---------------------------------------------------------------------------------------------
def test_durable_types_are_fsynced_before_append_returns(tmp_path: Path, mocker: MockerFixture) -> None:
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False, group_commit_ms=1000)) as ledger:
        sync = mocker.patch("os.fdatasync", wraps=os.fdatasync)
        ledger.append("fix_access", {"purpose": "fleet"}, personal={"lat_e7": 1})
        assert sync.call_count == 0
        segment = segment_paths(tmp_path)[0]
        size_before = segment.stat().st_size
        ledger.append("consent", {"purpose": "fleet", "granted": True})
        assert sync.call_count == 1
        assert segment.stat().st_size > size_before


def test_group_commit_zero_syncs_every_record(tmp_path: Path, mocker: MockerFixture) -> None:
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False, group_commit_ms=0)) as ledger:
        sync = mocker.patch("os.fdatasync", wraps=os.fdatasync)
        ledger.append("upload", {"sink": "a"})
        ledger.append("upload", {"sink": "b"})
        assert sync.call_count == 2


def test_group_commit_syncs_once_the_oldest_record_is_due(tmp_path: Path, mocker: MockerFixture) -> None:
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False, group_commit_ms=1)) as ledger:
        ledger.append("upload", {"sink": "a"})
        sync = mocker.patch("os.fdatasync", wraps=os.fdatasync)
        mocker.patch("agent.ledger.store.time.monotonic", return_value=10**9)
        ledger.append("upload", {"sink": "b"})
        assert sync.call_count == 1


def test_a_failed_fsync_is_fatal_for_the_store(tmp_path: Path, mocker: MockerFixture) -> None:
    ledger = Ledger.open(tmp_path, CONFIG)
    ledger.append("switch", {})
    failing = mocker.patch("os.fdatasync", side_effect=OSError(errno.EIO, "Input/output error"))
    with pytest.raises(StoreError, match="fsync"):
        ledger.append("switch", {})
    failing.side_effect = None  # the disk "recovers": a retry could falsely succeed, so none is allowed
    with pytest.raises(StoreError, match="must be reopened"):
        ledger.append("switch", {})
    with pytest.raises(StoreError):
        ledger.flush()
    ledger.close()


def test_a_full_disk_is_fatal_and_names_the_write(tmp_path: Path, mocker: MockerFixture) -> None:
    ledger = Ledger.open(tmp_path, CONFIG)
    ledger.append("switch", {})
    mocker.patch("os.write", side_effect=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(StoreError, match="write") as caught:
        ledger.append("switch", {})
    assert "fsync" not in str(caught.value)
    mocker.stopall()
    with pytest.raises(StoreError, match="must be reopened"):
        ledger.append("switch", {})
    ledger.close()


def test_a_short_write_is_finished_before_the_sync(tmp_path: Path, mocker: MockerFixture) -> None:
    real_write = os.write
    calls = []

    def half_then_whole(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data)[: max(1, len(data) // 2)] if len(calls) == 1 else data)

    with Ledger.open(tmp_path, CONFIG) as ledger:
        mocker.patch("os.write", new=half_then_whole)
        ledger.append("switch", {"desired": "off"})
        mocker.stopall()
    # the record and its checkpoint in one write, finished by a second; then the head file's
    assert len(calls) == 3 and calls[1] == calls[0] - calls[0] // 2
    with Ledger.open(tmp_path, CONFIG) as reopened:
        assert [record.type for record in reopened.records()] == ["switch", "checkpoint"]
        assert next(reopened.records()).fields == {"desired": "off"}


def test_close_makes_group_committed_records_durable(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        fill(ledger, 5, personal=False)
        count = ledger.head()[0]
    with Ledger.open(tmp_path, CONFIG) as ledger:
        assert ledger.head()[0] == count + 1  # and the checkpoint of the clean stop
        assert ledger.last_record_of_type("checkpoint").seq == count  # type: ignore[union-attr]


# -- bad input, permissions, locking ------------------------------------------------------------------------
def test_bad_appends_are_usage_errors_and_change_nothing(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        attempts: list[tuple[str, dict[str, object], dict[str, object] | None, int | None]] = [
            ("fix_access", {"lat": 1.5}, None, None), ("fix_access", {}, {"lat": 31.25}, None),
            ("bad type", {}, None, None), ("checkpoint", {}, None, None), ("upload", {}, {"a": 1}, -1)]
        for record_type, fields, personal, epoch in attempts:
            with pytest.raises(UsageError) as caught:
                ledger.append(record_type, fields, personal=personal, epoch=epoch)
            assert "31.25" not in str(caught.value)
        assert ledger.head()[0] == 0


def test_a_clock_past_year_9999_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    with Ledger.open(tmp_path, CONFIG, clock) as ledger:
        ledger.append("switch", {"desired": "off", "generation": 1, "by_uid": 0})
        size = segment_paths(tmp_path)[-1].stat().st_size
        clock.now = 253_402_300_800.0  # 10000-01-01T00:00:00Z
        with pytest.raises(StoreError, match="clock"):
            ledger.append("switch", {"desired": "on", "generation": 2, "by_uid": 0})
        assert ledger.head()[0] == 2  # the first switch and its checkpoint
        assert segment_paths(tmp_path)[-1].stat().st_size == size
        clock.now = 1_700_000_001.0
        ledger.append("switch", {"desired": "on", "generation": 2, "by_uid": 0})
    with Ledger.open(tmp_path, CONFIG) as reopened:
        assert [record.fields["desired"] for record in reopened.records() if record.type == "switch"] == \
            ["off", "on"]


@pytest.mark.parametrize("changes", [{"group_commit_ms": 1001}, {"checkpoint_every": 0},
                                     {"segment_bytes": 10}, {"retention_days": -1}])
def test_bad_config_is_a_config_error(changes: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        LedgerConfig(**changes)  # type: ignore[arg-type]


def test_files_are_private(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 6)
    directory = ledger_dir(tmp_path / "state")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


@pytest.mark.parametrize("name", ["signing.key", "keys.cbor", "00000000000000000000.seg"])
def test_planted_symlinks_are_refused(tmp_path: Path, name: str) -> None:
    directory = ledger_dir(tmp_path)
    directory.mkdir(parents=True, mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (directory / name).symlink_to(target)
    with pytest.raises(StoreError, match="symlink"):
        Ledger.open(tmp_path, CONFIG)
    assert target.read_bytes() == b""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("name", ["signing.key", "keys.cbor", "checkpoint.cbor", "00000000000000000000.seg"])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_directory_in_place_of_a_ledger_file_is_a_store_error(tmp_path: Path, name: str,
                                                                read_only: bool) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        fill(ledger, 6)
    path = ledger_dir(tmp_path) / name
    path.unlink()
    path.mkdir()
    before = open_fds()
    with pytest.raises(StoreError, match=f"cannot open {name}: it is not a regular file"):
        Ledger.open(tmp_path, CONFIG, read_only=read_only)
    assert open_fds() == before  # the refused file's descriptor is closed too
    assert path.is_dir() and list(path.iterdir()) == []


def test_a_fifo_in_place_of_a_segment_is_refused_without_blocking(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        fill(ledger, 6)
    segment = segment_paths(tmp_path)[0]
    segment.unlink()
    os.mkfifo(segment, 0o600)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Ledger.open(tmp_path, CONFIG, read_only=True).close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=open_it, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked opening the FIFO: a writer unblocks it, so that the thread can end
        os.close(os.open(segment, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("opening a FIFO segment blocked")
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert f"cannot open {segment.name}: it is not a regular file" in str(errors[0])


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG):
        with pytest.raises(StoreError, match="in use"):
            Ledger.open(tmp_path, CONFIG)
        with pytest.raises(StoreError, match="in use"):
            Ledger.open(tmp_path, CONFIG, read_only=True)


def test_read_only_refuses_writes_and_a_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no ledger"):
        Ledger.open(tmp_path, CONFIG, read_only=True)
    with Ledger.open(tmp_path, CONFIG) as ledger:
        ledger.append("switch", {})
    with (Ledger.open(tmp_path, CONFIG, read_only=True) as ledger,
          pytest.raises(StoreError, match="read-only")):
        ledger.append("switch", {})


def test_closed_ledger_refuses_appends(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, CONFIG)
    ledger.close()
    ledger.close()
    with pytest.raises(StoreError, match="closed"):
        ledger.append("switch", {})


def test_a_symlinked_ledger_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state").mkdir()
    ledger_dir(tmp_path / "state").symlink_to(elsewhere)
    with pytest.raises(StoreError, match="symlink"):
        Ledger.open(tmp_path / "state", CONFIG)
    assert list(elsewhere.iterdir()) == []


def test_a_missing_signing_key_is_named_and_not_replaced(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, CONFIG) as ledger:
        fill(ledger, 9)
    key = ledger_dir(tmp_path) / "signing.key"
    key.unlink()
    with pytest.raises(StoreError, match=r"signing\.key is missing but the ledger has records"):
        Ledger.open(tmp_path, CONFIG)
    assert not key.exists()  # no new key that would not match the log's signed checkpoints
    with pytest.raises(LogCorrupt, match=r"signing\.key is missing"):
        Ledger.open(tmp_path, CONFIG, read_only=True)
