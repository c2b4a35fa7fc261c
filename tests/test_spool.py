"""The durable spool: order, idempotence, retries, dead letters, purges, reopening, one sync per operation, the
journal's torn tails, damage and compaction, and migration from one file per message."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent import spool as spool_module
from agent.errors import StoreError
from agent.spool import (
    ENTRY_HEADER_SIZE,
    JOURNAL_MAGIC,
    Message,
    Spool,
    compacted,
    frame,
    put_entry,
    replay,
)


def message(number: int, *, sink: str = "operator", purpose: str = "fleet", created_ms: int | None = None) -> Message:
    return Message(id=f"m{number}", sink=sink, purpose=purpose, body=b'{"n":%d}' % number,
                   created_ms=number * 10 if created_ms is None else created_ms)


def test_open_creates_a_private_directory_and_journal(tmp_path: Path) -> None:
    with Spool.open(tmp_path):
        pass
    assert stat.S_IMODE(os.lstat(tmp_path / "spool").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(tmp_path / "spool" / "journal").st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "spool")) == [".lock", "journal"]


def test_put_then_reopen_keeps_every_field(tmp_path: Path) -> None:
    original = Message(id="a", sink="s", purpose="p", body=b'{"x":1}', created_ms=5, attempts=2, not_before_ms=7)
    with Spool.open(tmp_path) as spool:
        spool.put(original)
    with Spool.open(tmp_path) as spool:
        assert spool.due(10) == [original]
        assert spool.pending_count() == 1


def test_due_is_oldest_first_and_skips_held_back(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(3))
        spool.put(message(1))
        spool.put(message(2, created_ms=10))  # same created_ms as m1: put order decides
        spool.retry_later("m3", not_before_ms=1000)
        assert [m.id for m in spool.due(100)] == ["m1", "m2"]
        assert [m.id for m in spool.due(1000)] == ["m1", "m2", "m3"]
        assert [m.id for m in spool.due(1000, limit=1)] == ["m1"]
        assert spool.next_due_ms(100) == 1000
        assert spool.next_due_ms(1000) is None


def test_due_filters_by_sink(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1, sink="a"))
        spool.put(message(2, sink="b"))
        assert [m.id for m in spool.due(100, sink="b")] == ["m2"]


def test_release_held_after_frees_only_holds_beyond_the_limit(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        for number in (1, 2, 3):
            spool.put(message(number, sink="b" if number == 3 else "a"))
        spool.retry_later("m1", 500)
        spool.retry_later("m2", 5000)
        spool.retry_later("m3", 5000)
        assert spool.release_held_after(1000, sink="a") == 1
    with Spool.open(tmp_path) as spool:
        assert [(m.id, m.attempts, m.not_before_ms) for m in spool.due(10**9)] == [
            ("m1", 1, 500), ("m2", 1, 0), ("m3", 1, 5000)]


def test_put_is_idempotent_on_the_id(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        spool.retry_later("m1", 50)
        spool.put(message(1))  # a second put must not reset the attempts or the hold
        [held] = spool.due(50)
        assert (held.attempts, held.not_before_ms) == (1, 50)
        assert spool.pending_count() == 1
        spool.dead_letter("m1", "refused")
        spool.put(message(1))
        assert spool.pending_count() == 0


def test_a_full_spool_refuses_new_messages_but_not_repeats(tmp_path: Path) -> None:
    with Spool.open(tmp_path, max_messages=2) as spool:
        spool.put(message(1))
        spool.put(message(2))
        spool.put(message(2))  # already there: not a new message
        with pytest.raises(StoreError, match="the spool is full"):
            spool.put(message(3))
        spool.ack("m1")
        spool.put(message(3))
        assert [m.id for m in spool.due(100)] == ["m2", "m3"]


def test_ack_removes_durably(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        spool.put(message(2))
        spool.ack("m1")
        spool.ack("m1")  # acked twice: no error
    with Spool.open(tmp_path) as spool:
        assert [m.id for m in spool.due(100)] == ["m2"]
    journal = tmp_path / "spool" / "journal"
    state, _ = replay(journal.read_bytes(), journal)
    assert list(state.queued) == ["m2"]


def test_retry_later_counts_attempts_across_reopen(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        spool.retry_later("m1", 100)
        spool.retry_later("m1", 300)
    with Spool.open(tmp_path) as spool:
        assert spool.due(299) == []
        [held] = spool.due(300)
        assert (held.attempts, held.not_before_ms) == (2, 300)


def test_dead_letters_are_kept_with_their_reason(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        spool.put(message(2))
        spool.dead_letter("m2", "HTTP 400")
        assert [m.id for m in spool.due(100)] == ["m1"]
    with Spool.open(tmp_path) as spool:
        assert [(m.id, reason) for m, reason in spool.dead_letters()] == [("m2", "HTTP 400")]
        assert spool.pending_count() == 1


def test_purge_drops_one_purpose_only(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1, purpose="fleet"))
        spool.put(message(2, purpose="weather"))
        spool.put(message(3, purpose="fleet"))
        spool.put(message(4, purpose="fleet"))
        spool.dead_letter("m4", "refused")
        assert spool.purge("fleet") == 2
        assert spool.purge("fleet") == 0
        assert len(spool.dead_letters()) == 1
        assert spool.purge("fleet", include_dead=True) == 1
    with Spool.open(tmp_path) as spool:
        assert [m.id for m in spool.due(100)] == ["m2"]
        assert spool.dead_letters() == []
        assert spool.purge_all() == 1
        assert spool.pending_count() == 0


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    with Spool.open(tmp_path), pytest.raises(StoreError, match="in use"):
        Spool.open(tmp_path)


def test_closed_spool_refuses_work(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    spool.close()
    with pytest.raises(StoreError, match="closed"):
        spool.put(message(1))


def journal_of(state_dir: Path) -> Path:
    return state_dir / "spool" / "journal"


def entry_offsets(data: bytes) -> list[int]:
    """Where each entry of a journal starts, read from the frame layout here, independently of the spool."""
    offsets, offset = [], len(JOURNAL_MAGIC)
    while offset < len(data):
        offsets.append(offset)
        (length,) = struct.unpack_from(">I", data, offset)
        offset += ENTRY_HEADER_SIZE + length
    return offsets


def ids_due(spool: Spool) -> list[str]:
    return [m.id for m in spool.due(10**12)]


def test_every_operation_costs_one_fdatasync_and_no_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(fd: int) -> None:
        syncs.append("fdatasync")
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        syncs.append("fsync")
        real_fsync(fd)

    with Spool.open(tmp_path) as spool:
        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(os, "fsync", fsync)
        operations: list[Callable[[], object]] = [
            lambda: spool.put(message(1)), lambda: spool.put(message(2)), lambda: spool.put(message(3)),
            lambda: spool.retry_later("m1", 500), lambda: spool.dead_letter("m2", "refused"),
            lambda: spool.release_held_after(0), lambda: spool.ack("m1"),
            lambda: spool.purge_all(include_dead=True)]
        for operation in operations:
            syncs.clear()
            operation()
            assert syncs == ["fdatasync"]
        syncs.clear()
        spool.ack("m1")  # nothing to do: nothing written
        assert syncs == []


def test_compaction_keeps_the_journal_bounded_and_the_state_whole(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "COMPACT_MIN_BYTES", 2000)
    sizes = []
    with Spool.open(tmp_path) as spool:
        spool.put(message(1, created_ms=0))
        spool.put(message(2, created_ms=0))
        spool.retry_later("m2", 7)
        spool.put(message(3))
        spool.dead_letter("m3", "refused")
        for number in range(10, 300):
            spool.put(message(number))
            spool.ack(f"m{number}")
            sizes.append(journal_of(tmp_path).stat().st_size)
    assert max(sizes) <= 2000 + 200  # the threshold plus the one entry that crossed it
    assert min(sizes) < 1000  # it was compacted, more than once
    assert sizes.count(min(sizes)) < len(sizes)
    with Spool.open(tmp_path) as spool:
        assert [(m.id, m.attempts, m.not_before_ms) for m in spool.due(100)] == [("m1", 0, 0), ("m2", 1, 7)]
        assert [(m.id, reason) for m, reason in spool.dead_letters()] == [("m3", "refused")]


def test_open_compacts_a_journal_that_grew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Spool.open(tmp_path) as spool:
        for number in range(50):
            spool.put(message(number))
            spool.ack(f"m{number}")
        spool.put(message(99))
    grown = journal_of(tmp_path).stat().st_size
    monkeypatch.setattr(spool_module, "COMPACT_MIN_BYTES", 100)
    with Spool.open(tmp_path) as spool:
        assert ids_due(spool) == ["m99"]
    assert journal_of(tmp_path).stat().st_size < grown / 10
    with Spool.open(tmp_path) as spool:
        assert ids_due(spool) == ["m99"]


def test_a_compaction_cut_short_leaves_nothing_behind(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
    leftover = tmp_path / "spool" / ".journal.k2j4h5.tmp"
    leftover.write_bytes(b"half a compaction")
    with Spool.open(tmp_path) as spool:
        assert ids_due(spool) == ["m1"]
    assert not leftover.exists()


def test_a_torn_last_entry_is_cut_off_at_every_byte(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        spool.put(message(2))
    data = journal_of(tmp_path).read_bytes()
    last = entry_offsets(data)[-1]
    for cut in range(last, len(data)):
        journal_of(tmp_path).write_bytes(data[:cut])
        with Spool.open(tmp_path) as spool:
            assert ids_due(spool) == ["m1"]
            spool.put(message(3))  # goes after the last whole entry, not after the torn bytes
        with Spool.open(tmp_path) as spool:
            assert ids_due(spool) == ["m1", "m3"]


@pytest.mark.parametrize("written", [0, 1, 5, ENTRY_HEADER_SIZE - 1])
def test_zeros_after_the_last_entry_are_a_torn_tail(tmp_path: Path, written: int) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
    data = journal_of(tmp_path).read_bytes()
    lost = frame(put_entry(message(2)))
    # grown by an append whose data (after its first bytes) never reached the disk before the power cut
    journal_of(tmp_path).write_bytes(data + lost[:written] + bytes(4096))
    with Spool.open(tmp_path) as spool:
        assert ids_due(spool) == ["m1"]
    assert journal_of(tmp_path).read_bytes() == data


def test_any_changed_byte_is_damage_named_with_its_entrys_offset(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        spool.retry_later("m1", 5)
        spool.put(message(2))
    data = journal_of(tmp_path).read_bytes()
    offsets = entry_offsets(data)
    assert len(offsets) == 3
    for index in range(len(data)):
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        journal_of(tmp_path).write_bytes(bytes(damaged))
        expected = max([0] + [offset for offset in offsets if offset <= index])
        with pytest.raises(StoreError, match=f"spool journal is damaged at offset {expected}:") as raised:
            Spool.open(tmp_path)
        assert raised.value.details["offset"] == expected
        assert journal_of(tmp_path).read_bytes() == bytes(damaged)  # never cut, never rewritten


@pytest.mark.parametrize(("extra", "problem"), [
    (frame(["ack", "m9"]), "entry names a message that is not queued"),
    (frame(put_entry(Message(id="m1", sink="s", purpose="p", body=b"{}", created_ms=0))),
     "entry puts a message the spool already holds"),
    (frame(["purge", ["m1", "m1"]]), "entry purges a message the spool does not hold"),
    (frame(["frobnicate", "m1"]), "unknown or malformed entry"),
    (frame(["retry", "m1", -1, 1]), "non-negative"),
    (frame({"op": "ack"}), "not an array"),  # type: ignore[arg-type]
])
def test_an_entry_that_does_not_fit_is_damage_not_skipped(tmp_path: Path, extra: bytes, problem: str) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
    data = journal_of(tmp_path).read_bytes()
    journal_of(tmp_path).write_bytes(data + extra + frame(put_entry(message(2))))
    with pytest.raises(StoreError, match=f"at offset {len(data)}: .*{problem}"):
        Spool.open(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a spool journal at all", b"PASPOOL1" + bytes(20)])
def test_a_foreign_journal_is_named_at_offset_zero(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "spool").mkdir(mode=0o700)
    journal_of(tmp_path).write_bytes(content)
    with pytest.raises(StoreError, match="damaged at offset 0: it does not start with the spool journal header"):
        Spool.open(tmp_path)
    assert journal_of(tmp_path).read_bytes() == content


def test_a_failed_append_is_cut_back_and_the_spool_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_fail(fd: int, data: bytes, path: Path) -> None:
        os.write(fd, data[:len(data) // 2])
        raise StoreError("cannot write journal: No space left on device")

    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
        monkeypatch.setattr(spool_module, "write_and_sync", half_then_fail)
        with pytest.raises(StoreError, match="No space left"):
            spool.put(message(2))
        monkeypatch.undo()
        assert ids_due(spool) == ["m1"]
        spool.put(message(3))
    with Spool.open(tmp_path) as spool:
        assert ids_due(spool) == ["m1", "m3"]


def test_symlinks_and_foreign_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir(mode=0o700)
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", journal_of(tmp_path))
    with pytest.raises(StoreError, match="symlink"):
        Spool.open(tmp_path)
    os.unlink(journal_of(tmp_path))
    journal_of(tmp_path).mkdir()
    with pytest.raises(StoreError, match="not a regular file"):
        Spool.open(tmp_path)


# --- migration from one file per message ---------------------------------------------------------------------

def write_old_file(state_dir: Path, where: str, old: Message, seq: int, reason: str | None = None) -> Path:
    """A file as the one-file-per-message spool wrote it: magic, crc32, a CBOR map (written here, by hand)."""
    fields: dict[str, object] = {"id": old.id, "sink": old.sink, "purpose": old.purpose, "body": old.body,
                                 "created_ms": old.created_ms, "attempts": old.attempts,
                                 "not_before_ms": old.not_before_ms, "seq": seq}
    if reason is not None:
        fields["reason"] = reason
    payload = cbor2.dumps(fields)
    directory = state_dir / "spool" / where
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / (hashlib.sha256(old.id.encode()).hexdigest()[:40] + ".msg")
    path.write_bytes(struct.pack(">8sI", b"PASPOOL1", zlib.crc32(payload)) + payload)
    return path


def write_old_spool(state_dir: Path) -> None:
    write_old_file(state_dir, "queue", Message(id="m1", sink="operator", purpose="fleet", body=b'{"n":1}',
                                               created_ms=10, attempts=2, not_before_ms=70), seq=3)
    write_old_file(state_dir, "queue", message(2, created_ms=10), seq=1)  # same created_ms: seq orders
    write_old_file(state_dir, "dead", message(3), seq=2, reason="HTTP 400")
    write_old_file(state_dir, "queue", message(4), seq=4)  # a dead-letter move cut short: the dead one wins
    write_old_file(state_dir, "dead", message(4), seq=4, reason="refused")
    (state_dir / "spool" / "queue" / ".tmp-abc").write_bytes(b"half a write")


def check_migrated(state_dir: Path) -> None:
    with Spool.open(state_dir) as spool:
        assert [(m.id, m.attempts, m.not_before_ms) for m in spool.due(100)] == [("m2", 0, 0), ("m1", 2, 70)]
        assert [(m.id, reason) for m, reason in spool.dead_letters()] == [("m3", "HTTP 400"), ("m4", "refused")]
        assert spool.due(100)[1].body == b'{"n":1}'
    assert sorted(os.listdir(state_dir / "spool")) == [".lock", "journal"]


def test_an_old_spool_is_migrated_into_the_journal_and_removed(tmp_path: Path) -> None:
    write_old_spool(tmp_path)
    check_migrated(tmp_path)
    check_migrated(tmp_path)  # and again, from the journal alone


def test_a_migration_cut_short_before_the_removal_is_not_doubled(tmp_path: Path) -> None:
    write_old_spool(tmp_path)
    check_migrated(tmp_path)
    write_old_spool(tmp_path)  # as if the directories had never been removed
    check_migrated(tmp_path)
    with Spool.open(tmp_path) as spool:
        assert spool.pending_count() == 2


def test_a_damaged_old_file_stops_the_migration_and_is_kept(tmp_path: Path) -> None:
    write_old_spool(tmp_path)
    path = write_old_file(tmp_path, "queue", message(5), seq=5)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(StoreError, match=re.escape(f"spool entry {path.name} is damaged")):
        Spool.open(tmp_path)
    assert path.exists() and len(os.listdir(tmp_path / "spool" / "queue")) == 5


def test_an_old_file_under_another_ids_name_is_damaged(tmp_path: Path) -> None:
    path = write_old_file(tmp_path, "queue", message(1), seq=1)
    os.rename(path, path.with_name(hashlib.sha256(b"m2").hexdigest()[:40] + ".msg"))
    with pytest.raises(StoreError, match="does not match its id"):
        Spool.open(tmp_path)


def test_foreign_files_and_symlinks_in_an_old_spool_are_refused(tmp_path: Path) -> None:
    write_old_file(tmp_path, "queue", message(1), seq=1)
    queue = tmp_path / "spool" / "queue"
    (queue / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=re.escape("unexpected file notes.txt")):
        Spool.open(tmp_path)
    os.unlink(queue / "notes.txt")
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", queue / (hashlib.sha256(b"m2").hexdigest()[:40] + ".msg"))
    with pytest.raises(StoreError, match="symlink"):
        Spool.open(tmp_path)


def test_a_symlinked_spool_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "spool")
    with pytest.raises(StoreError, match="not a directory"):
        Spool.open(tmp_path)


@pytest.mark.parametrize("bad", [
    Message(id="", sink="s", purpose="p", body=b"{}", created_ms=0),
    Message(id="a\nb", sink="s", purpose="p", body=b"{}", created_ms=0),
    Message(id="a", sink="", purpose="p", body=b"{}", created_ms=0),
    Message(id="a", sink="s", purpose="p", body=b"{}", created_ms=-1),
])
def test_bad_messages_are_refused_before_the_disk(tmp_path: Path, bad: Message) -> None:
    with Spool.open(tmp_path) as spool:
        with pytest.raises(ValueError):
            spool.put(bad)
        assert (tmp_path / "spool" / "journal").stat().st_size == len(JOURNAL_MAGIC)


class SpoolModel(RuleBasedStateMachine):
    """The spool against a dict model, with reopening in between: what was acknowledged by a return is kept."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        self.path = Path(self._dir.name)
        self.spool = Spool.open(self.path)
        self.queued: dict[str, Message] = {}
        self.dead: dict[str, str] = {}
        self.order: list[str] = []

    ids = st.sampled_from([f"id{n}" for n in range(8)])

    @rule(message_id=ids, purpose=st.sampled_from(["a", "b"]), created=st.integers(0, 5))
    def put(self, message_id: str, purpose: str, created: int) -> None:
        self.spool.put(Message(id=message_id, sink="s", purpose=purpose, body=b"{}", created_ms=created))
        if message_id not in self.queued and message_id not in self.dead:
            self.queued[message_id] = Message(id=message_id, sink="s", purpose=purpose, body=b"{}",
                                              created_ms=created)
            if message_id in self.order:  # acked or purged, then put again: a new place in the order
                self.order.remove(message_id)
            self.order.append(message_id)

    @precondition(lambda self: bool(self.queued))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        message_id = data.draw(st.sampled_from(sorted(self.queued)))
        self.spool.ack(message_id)
        del self.queued[message_id]

    @precondition(lambda self: bool(self.queued))
    @rule(data=st.data(), not_before=st.integers(0, 20))
    def retry(self, data: st.DataObject, not_before: int) -> None:
        message_id = data.draw(st.sampled_from(sorted(self.queued)))
        self.spool.retry_later(message_id, not_before)
        old = self.queued[message_id]
        self.queued[message_id] = Message(old.id, old.sink, old.purpose, old.body, old.created_ms,
                                          old.attempts + 1, not_before)

    @precondition(lambda self: bool(self.queued))
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        message_id = data.draw(st.sampled_from(sorted(self.queued)))
        self.spool.dead_letter(message_id, f"reason {message_id}")
        del self.queued[message_id]
        self.dead[message_id] = f"reason {message_id}"

    @rule(purpose=st.sampled_from(["a", "b"]))
    def purge(self, purpose: str) -> None:
        expected = [mid for mid, m in self.queued.items() if m.purpose == purpose]
        assert self.spool.purge(purpose) == len(expected)
        for message_id in expected:
            del self.queued[message_id]

    @rule()
    def compact(self) -> None:
        self.spool._compact()  # as a journal past its size threshold would

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool.open(self.path)

    @invariant()
    def matches_model(self) -> None:
        rank = {mid: index for index, mid in enumerate(self.order)}
        expected = sorted((m for m in self.queued.values() if m.not_before_ms <= 10),
                          key=lambda m: (m.created_ms, rank[m.id]))
        assert self.spool.due(10) == expected
        assert self.spool.pending_count() == len(self.queued)
        assert {m.id: reason for m, reason in self.spool.dead_letters()} == self.dead

    def teardown(self) -> None:
        self.spool.close()
        self._dir.cleanup()


SpoolModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
TestSpoolModel = SpoolModel.TestCase


def test_replay_reads_every_entry_and_rejects_any_single_byte_change() -> None:
    original = Message(id="x", sink="s", purpose="p", body=b'{"a":1}', created_ms=1, attempts=3, not_before_ms=9)
    data = JOURNAL_MAGIC + frame(put_entry(original)) + frame(["retry", "x", 11, 4]) + frame(["dead", "x", "why"])
    state, end = replay(data, Path("journal"))
    assert end == len(data) and not state.queued
    assert state.dead["x"].message == Message("x", "s", "p", b'{"a":1}', 1, 4, 11)
    assert state.dead["x"].reason == "why"
    for index in range(len(data)):
        changed = bytearray(data)
        changed[index] ^= 0x40
        with pytest.raises(StoreError, match="spool journal is damaged at offset"):
            replay(bytes(changed), Path("journal"))
    boundaries = [*entry_offsets(data), len(data)]
    for length in range(len(JOURNAL_MAGIC), len(data)):
        _, end = replay(data[:length], Path("journal"))
        assert end == max(boundary for boundary in boundaries if boundary <= length)


messages = st.builds(
    Message,
    id=st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=40),
    sink=st.text(min_size=1, max_size=10), purpose=st.text(min_size=1, max_size=10), body=st.binary(max_size=200),
    created_ms=st.integers(0, 2**63), attempts=st.integers(0, 2**31), not_before_ms=st.integers(0, 2**63))


@given(st.lists(messages, unique_by=lambda m: m.id, max_size=6))
def test_puts_round_trip_through_the_journal_in_order(puts: list[Message]) -> None:
    data = JOURNAL_MAGIC + b"".join(frame(put_entry(m)) for m in puts)
    state, end = replay(data, Path("journal"))
    assert end == len(data)
    assert [held.message for held in state.in_order()] == puts
    assert compacted(state) == data


@given(st.binary(max_size=300))
def test_any_bytes_after_the_header_replay_or_are_named_damage(tail: bytes) -> None:
    data = JOURNAL_MAGIC + tail
    try:
        _, end = replay(data, Path("journal"))
    except StoreError as exc:
        assert exc.details["offset"] >= len(JOURNAL_MAGIC)
    else:
        assert len(JOURNAL_MAGIC) <= end <= len(data)
