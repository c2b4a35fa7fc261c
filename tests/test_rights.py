"""Rights requests without the daemon: the repeat rule (properties), the erase scope, which keys a purpose's
uploads used, the export stream's frames, and erasure with a real ledger and spool (dead letters included)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import RightsConfig
from agent.control_protocol import (
    FRAME_DATA,
    FRAME_END,
    FRAME_PROGRESS,
    StreamReply,
    decode_frame_header,
    decode_progress,
    encode_frame,
    encode_progress,
    encode_stream_start,
    is_stream_start,
)
from agent.errors import ControlError, RequestRefused, UsageError
from agent.ledger import Ledger, LedgerConfig
from agent.ledger.export import verify_export
from agent.privacy.policy import Policy, Purpose
from agent.rights_requests import RepeatGuard, RightsRequests, erase_scope, keys_of_purpose
from agent.spool import Message, Spool

POLICY = Policy(version="v1", home_region="CN", purposes=(Purpose(name="fleet", description="fleet"),
                                                          Purpose(name="maint", description="maintenance")))


class FakeClock:
    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.now = wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


# -- the repeat rule ------------------------------------------------------------------------------------------

@given(window_ms=st.integers(1, 10**9), first=st.integers(0, 10**12), later=st.integers(0, 10**9),
       uid=st.integers(0, 2**31))
def test_an_identical_export_inside_the_window_is_refused_until_its_end(window_ms: int, first: int, later: int,
                                                                       uid: int) -> None:
    guard = RepeatGuard(window_ms)
    assert guard.refusal_end(uid, first) is None
    guard.answered(uid, first)
    end = guard.refusal_end(uid, first + later)
    if later < window_ms:
        assert end == first + window_ms
    else:
        assert end is None
    assert guard.refusal_end(uid + 1, first + later) is None  # another caller asks their own question


@given(window_ms=st.integers(1, 10**9), at=st.integers(0, 10**12))
def test_a_change_in_between_or_a_failed_answer_makes_it_a_new_question(window_ms: int, at: int) -> None:
    guard = RepeatGuard(window_ms)
    guard.answered(0, at)
    guard.changed()
    assert guard.refusal_end(0, at) is None
    guard.answered(0, at)
    guard.forget(0)
    assert guard.refusal_end(0, at) is None


def test_a_window_of_zero_never_refuses() -> None:
    guard = RepeatGuard(0)
    guard.answered(0, 5)
    assert guard.refusal_end(0, 5) is None
    with pytest.raises(ValueError):
        RepeatGuard(-1)


# -- erase scope ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "fragment"), [
    ({}, "exactly one"), ({"all": True, "purpose": "fleet"}, "exactly one"),
    ({"before_ms": 5, "purpose": "fleet"}, "exactly one"), ({"purpose": "ads"}, "declares no purpose 'ads'"),
])
def test_erase_scope_refuses_none_several_or_an_unknown_purpose(args: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        erase_scope(args, POLICY)


def test_erase_scope_names_the_one_chosen() -> None:
    assert erase_scope({"all": True}, POLICY).name == "all"
    assert erase_scope({"before_ms": 0}, POLICY).name == "before"
    assert erase_scope({"purpose": "maint"}, POLICY).name == "purpose"


# -- stream frames --------------------------------------------------------------------------------------------

@given(st.binary(max_size=2048))
def test_data_frames_round_trip(payload: bytes) -> None:
    frame = encode_frame(FRAME_DATA, payload)
    assert decode_frame_header(frame[:5]) == (FRAME_DATA, len(payload)) and frame[5:] == payload


@given(st.integers(0, 2**63), st.integers(0, 2**63))
def test_progress_frames_round_trip(done: int, total: int) -> None:
    frame = encode_progress(done, total)
    assert decode_frame_header(frame[:5]) == (FRAME_PROGRESS, 16) and decode_progress(frame[5:]) == (done, total)


@pytest.mark.parametrize("header", [b"X\0\0\0\0", b"D\xff\xff\xff\xff", b"E\0\0\0\1", b"P\0\0\0\4"])
def test_frames_the_agent_never_sends_are_refused(header: bytes) -> None:
    with pytest.raises(ControlError, match="malformed stream frame"):
        decode_frame_header(header)


def test_a_stream_start_is_told_from_an_ordinary_reply() -> None:
    assert is_stream_start(encode_stream_start({"records": 3}).rstrip(b"\n"))
    assert not is_stream_start(b'{"ok":true,"result":{}}') and not is_stream_start(b"not json")
    assert encode_frame(FRAME_END) == b"E\0\0\0\0"


# -- with a real ledger and spool -----------------------------------------------------------------------------

class Collect:
    def __init__(self) -> None:
        self.data = io.BytesIO()
        self.progress_seen: list[tuple[int, int]] = []

    def write(self, data: bytes) -> None:
        self.data.write(data)

    def progress(self, done: int, total: int) -> None:
        self.progress_seen.append((done, total))


@pytest.fixture
def service(tmp_path: Path) -> Any:
    clock = FakeClock()
    ledger = Ledger.open(tmp_path, LedgerConfig(), clock=clock)
    spool = Spool.open(tmp_path)
    rights = RightsRequests(ledger, spool, lambda: POLICY, RightsConfig(repeat_window_s=60), clock=clock)
    yield rights, ledger, spool, clock
    spool.close()
    ledger.close()


def _upload(ledger: Ledger, purpose: str, body: bytes, epoch: int) -> None:
    ledger.append("upload", {"purpose": purpose, "recipient": "R", "region": "CN"}, personal={"payload": body},
                  epoch=epoch)


def test_keys_of_a_purpose_and_the_purposes_that_share_them(service: Any) -> None:
    _rights, ledger, _spool, _clock = service
    _upload(ledger, "fleet", b"a", 1)
    _upload(ledger, "maint", b"b", 1)
    _upload(ledger, "maint", b"c", 2)
    keys, shared = keys_of_purpose(ledger.records(), "fleet")
    assert len(keys) == 1 and shared == {"maint"}
    keys, shared = keys_of_purpose(ledger.records(), "maint")
    assert len(keys) == 2 and shared == {"fleet"}


def test_export_stream_verifies_and_a_repeat_is_refused_and_recorded(service: Any, tmp_path: Path) -> None:
    rights, ledger, _spool, clock = service
    _upload(ledger, "fleet", b"PAYLOAD-ONE", 1)
    reply = rights.handle("export", {}, 0)
    assert isinstance(reply, StreamReply) and reply.header["records"] >= 1
    sink = Collect()
    summary = reply.produce(sink)
    assert summary["bytes"] == len(sink.data.getvalue()) and sink.progress_seen[-1][0] == sink.progress_seen[-1][1]
    (tmp_path / "bundle.zip").write_bytes(sink.data.getvalue())
    assert verify_export(tmp_path / "bundle.zip").records == summary["records"]
    clock.now += 30
    with pytest.raises(RequestRefused, match="ask again after"):
        rights.handle("export", {}, 0)
    last = ledger.last_record_of_type("request")
    assert last is not None and last.fields["outcome"] == "refused" and last.fields["reason"] == "repeated"
    clock.now += 31  # the window has ended
    assert isinstance(rights.handle("export", {}, 0), StreamReply)


def test_a_failed_stream_is_recorded_and_is_no_repeat(service: Any) -> None:
    rights, ledger, _spool, _clock = service

    class Gone(Collect):
        def write(self, data: bytes) -> None:
            raise ControlError("the client stopped reading the stream")

    with pytest.raises(ControlError):
        rights.handle("export", {}, 0).produce(Gone())
    last = ledger.last_record_of_type("request")
    assert last is not None and last.fields["outcome"] == "failed"
    assert isinstance(rights.handle("export", {}, 0), StreamReply)


def test_erase_all_purges_queued_and_dead_letters_and_leaves_no_plaintext(service: Any, tmp_path: Path) -> None:
    rights, ledger, spool, _clock = service
    secrets = [b"SECRET-QUEUED-0001", b"SECRET-DEAD-0002", b"SECRET-SENT-0003"]
    for index, body in enumerate(secrets):
        spool.put(Message(id=f"m{index}", sink="s", purpose="fleet", body=body, created_ms=1))
        _upload(ledger, "fleet", body, 1)
    spool.dead_letter("m1", "rejected")
    spool.ack("m2")
    ledger.flush()
    assert any(secret in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()
               for secret in secrets)
    result = rights.handle("erase", {"all": True}, 0)
    assert result["queued_purged"] == 2 and result["keys_destroyed"] == 1 and result["records_erased"] == 3
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [secret for secret in secrets if secret in data], path.name
    assert spool.pending_count() == 0 and spool.dead_letters() == []
    assert all(ledger.open_personal(record) is None for record in ledger.records() if record.type == "upload")


def test_erase_before_purges_only_older_queued_messages(service: Any) -> None:
    rights, _ledger, spool, _clock = service
    spool.put(Message(id="old", sink="s", purpose="fleet", body=b"old", created_ms=1_000))
    spool.put(Message(id="new", sink="s", purpose="fleet", body=b"new", created_ms=9_000))
    result = rights.handle("erase", {"before_ms": 5_000}, 0)
    assert result["queued_purged"] == 1 and [m.id for m in spool.due(2**62)] == ["new"]


def test_log_show_is_newest_first_filtered_and_bounded(service: Any) -> None:
    rights, ledger, _spool, clock = service
    for index in range(5):
        ledger.append("switch", {"desired": "on" if index % 2 else "off"})
        clock.now += 1
    _upload(ledger, "fleet", b"\xff\xfe", 1)
    shown = rights.handle("log.show", {"type": "switch", "limit": 3}, 0)
    assert shown["matched"] == 5 and [r["seq"] for r in shown["records"]] == sorted(
        (r["seq"] for r in shown["records"]), reverse=True) and len(shown["records"]) == 3
    upload = rights.handle("log.show", {"type": "upload"}, 0)["records"][0]
    assert upload["personal"]["payload"] == {"base64": "//4="}
    with pytest.raises(UsageError, match="not a record type"):
        rights.handle("log.show", {"type": "nonsense"}, 0)


# -- the client's side of a stream ----------------------------------------------------------------------------

def _stream_bytes(pieces: list[bytes], trailer: dict[str, Any]) -> bytes:
    from agent.control_protocol import encode_result

    body = b"".join(encode_frame(FRAME_DATA, piece) + encode_progress(index, len(pieces))
                    for index, piece in enumerate(pieces))
    return encode_stream_start({"records": len(pieces)}) + body + encode_frame(FRAME_END) + encode_result(trailer)


class Trickle:
    """A connection that hands over at most ``split`` bytes per read (what a real socket may do)."""

    def __init__(self, data: bytes, split: int) -> None:
        self._data = memoryview(data)
        self._split = split

    def settimeout(self, _timeout: float) -> None:
        pass

    def recv(self, size: int) -> bytes:
        piece = bytes(self._data[:min(size, self._split)])
        self._data = self._data[len(piece):]
        return piece

    def recv_into(self, view: memoryview) -> int:
        piece = self.recv(len(view))
        view[:len(piece)] = piece
        return len(piece)


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(1, 64))
def test_the_client_reads_back_exactly_the_frames_whatever_the_reads(pieces: list[bytes], split: int) -> None:
    """Byte for byte, with the stream arriving in pieces of any size."""
    from agent.control_client import _read_frames
    from agent.control_protocol import decode_reply
    from agent.control_wire import StreamReader

    data = _stream_bytes(pieces, {"bytes": sum(map(len, pieces))})
    reader = StreamReader(Trickle(data, split), 5.0)  # type: ignore[arg-type]
    assert is_stream_start(reader.line())
    got: list[bytes] = []
    seen: list[tuple[int, int]] = []
    _read_frames(reader, got.append, lambda done, total: seen.append((done, total)))
    assert b"".join(got) == b"".join(pieces) and len(seen) == len(pieces)
    assert decode_reply(reader.line()) == {"bytes": sum(map(len, pieces))}


@given(st.integers(1, 150), st.integers(1, 64))
def test_a_stream_cut_short_is_an_error_not_a_short_file(cut: int, split: int) -> None:
    from agent.control_client import _read_frames
    from agent.control_wire import StreamReader

    data = _stream_bytes([b"x" * 100], {})
    trailer_start = data.rindex(b"E\0\0\0\0")
    reader = StreamReader(Trickle(data[:min(cut + data.index(b"\n") + 1, trailer_start)], split), 5.0)  # type: ignore[arg-type]
    reader.line()
    with pytest.raises(EOFError):
        _read_frames(reader, lambda _: None, None)


def test_the_progress_bar_only_on_a_terminal() -> None:
    from agent.export_client import terminal_progress

    assert terminal_progress(io.StringIO()) is None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    show = terminal_progress(screen)
    assert show is not None
    show(1, 4)
    show(1, 4)  # the same percentage is not drawn twice
    show(4, 4)
    assert screen.getvalue() == ("\rexporting [######                   ]  25% 1/4 records"
                                 "\rexporting [#########################] 100% 4/4 records\n")
