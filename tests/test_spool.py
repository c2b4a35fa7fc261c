"""The durable spool: order, idempotence, retries, dead letters, purges, reopening, damaged and foreign files."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.errors import StoreError
from agent.spool import Message, Spool, decode_entry, encode_entry, file_name


def message(number: int, *, sink: str = "operator", purpose: str = "fleet", created_ms: int | None = None) -> Message:
    return Message(id=f"m{number}", sink=sink, purpose=purpose, body=b'{"n":%d}' % number,
                   created_ms=number * 10 if created_ms is None else created_ms)


def test_open_creates_private_directories(tmp_path: Path) -> None:
    with Spool.open(tmp_path):
        pass
    for sub in ("spool", "spool/queue", "spool/dead"):
        assert stat.S_IMODE(os.lstat(tmp_path / sub).st_mode) == 0o700


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
    assert sorted(os.listdir(tmp_path / "spool" / "queue")) == [file_name("m2")]


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


def test_a_crash_between_dead_write_and_queue_removal_keeps_only_the_dead_letter(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
    queued = tmp_path / "spool" / "queue" / file_name("m1")
    saved = queued.read_bytes()
    with Spool.open(tmp_path) as spool:
        spool.dead_letter("m1", "refused")
    queued.write_bytes(saved)  # as if the unlink never happened
    with Spool.open(tmp_path) as spool:
        assert spool.pending_count() == 0
        assert [m.id for m, _ in spool.dead_letters()] == ["m1"]
    assert not queued.exists()


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


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    with Spool.open(tmp_path):
        pass
    leftover = tmp_path / "spool" / "queue" / ".tmp-abc"
    leftover.write_bytes(b"half a write")
    with Spool.open(tmp_path) as spool:
        assert spool.pending_count() == 0
    assert not leftover.exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_damaged_entry_is_named_not_dropped(tmp_path: Path, damage: str) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
    path = tmp_path / "spool" / "queue" / file_name("m1")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-3]
    elif damage == "flip":
        data[-2] ^= 0x01
    elif damage == "garbage":
        data = bytearray(b"not a spool entry at all")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=re.escape(f"spool entry {file_name('m1')} is damaged")):
        Spool.open(tmp_path)
    assert path.exists()  # never silently dropped


def test_an_entry_under_another_ids_name_is_damaged(tmp_path: Path) -> None:
    with Spool.open(tmp_path) as spool:
        spool.put(message(1))
    queue = tmp_path / "spool" / "queue"
    os.rename(queue / file_name("m1"), queue / file_name("m2"))
    with pytest.raises(StoreError, match="does not match its id"):
        Spool.open(tmp_path)


def test_symlinks_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with Spool.open(tmp_path):
        pass
    queue = tmp_path / "spool" / "queue"
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", queue / file_name("m1"))
    with pytest.raises(StoreError, match="symlink"):
        Spool.open(tmp_path)
    os.unlink(queue / file_name("m1"))
    (queue / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=re.escape("unexpected file notes.txt")):
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
        assert os.listdir(tmp_path / "spool" / "queue") == []


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


def test_entry_codec_round_trips_and_rejects_any_single_byte_change() -> None:
    original = Message(id="x", sink="s", purpose="p", body=b'{"a":1}', created_ms=1, attempts=3, not_before_ms=9)
    data = encode_entry(original, 4, "why")
    assert decode_entry(data) == (original, 4, "why")
    for index in range(len(data)):
        changed = bytearray(data)
        changed[index] ^= 0x40
        with pytest.raises(ValueError):
            decode_entry(bytes(changed))
    for length in range(len(data)):
        with pytest.raises(ValueError):
            decode_entry(data[:length])
