"""Records, frames and the Merkle tree: the pure core of the ledger."""

from __future__ import annotations

import dataclasses
import hashlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import LogCorrupt, UsageError
from agent.ledger import codec, merkle

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=20),
                    st.binary(max_size=20))


def _containers(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4))


values = st.recursive(scalars, _containers, max_leaves=12)
field_maps = st.dictionaries(st.text(max_size=12), values, max_size=6)


@given(fields=field_maps, seq=st.integers(0, 2**40), time_ms=st.integers(0, 2**45))
def test_records_are_deterministic_cbor_and_round_trip(fields: dict[str, object], seq: int,
                                                       time_ms: int) -> None:
    codec.check_value(fields)
    sealed = codec.Sealed("00ff", bytes(12), b"ciphertext")
    payload = codec.encode_record(seq=seq, time_ms=time_ms, record_type="fix_access", prev_hash=bytes(32),
                                  fields=fields, sealed=sealed)
    assert cbor2.dumps(cbor2.loads(payload), canonical=True) == payload
    record = codec.decode_record(payload, segment="s", offset=0)
    assert (record.seq, record.time_ms, record.type, record.fields, record.sealed) == (
        seq, time_ms, "fix_access", fields, sealed)
    assert record.hash == hashlib.sha256(payload).digest()


@given(fields=field_maps, personal=st.booleans(), seq=st.integers(0, 2**40))
def test_decoded_records_are_the_records_the_constructor_makes(fields: dict[str, object], personal: bool,
                                                                seq: int) -> None:
    """decode_record fills the frozen dataclasses' slots itself (for speed): every field must be set."""
    sealed = codec.Sealed("00ff", bytes(range(12)), b"ciphertext") if personal else None
    prev = bytes(range(32))
    payload = codec.encode_record(seq=seq, time_ms=7, record_type="fix_access", prev_hash=prev, fields=fields,
                                  sealed=sealed)
    digest = hashlib.sha256(payload).digest()
    record = codec.decode_record(payload, segment="s", offset=0)
    assert record == codec.Record(seq, 7, "fix_access", prev, fields, sealed, payload, digest)
    assert repr(record) == repr(codec.Record(seq, 7, "fix_access", prev, record.fields, sealed, payload, digest))
    parts = (sealed.key_id, sealed.nonce, sealed.ciphertext) if sealed is not None else None
    assert codec.decode_parts(payload, segment="s", offset=0) == (seq, 7, "fix_access", prev, fields, parts,
                                                                   digest)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.seq = 1  # type: ignore[misc]
    if record.sealed is not None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.sealed.key_id = "other"  # type: ignore[misc]


@given(value=values)
def test_dumps_gives_cbor2_canonical_bytes(value: object) -> None:
    assert codec.dumps(value) == cbor2.dumps(value, canonical=True)
    assert codec.loads(codec.dumps(value)) == (list(value) if isinstance(value, tuple) else value)


@pytest.mark.parametrize("bad", [{"lat": 31.2}, {"a": [1, 2.5]}, {"a": {"b": 1e3}}, {"a": {1: 2}},
                                 {"a": object()}, {"a": {3.5, 1}}])
def test_floats_and_foreign_values_are_refused_without_echoing_them(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError) as caught:
        codec.check_value(bad)
    assert "31.2" not in str(caught.value) and "1000" not in str(caught.value)


@pytest.mark.parametrize("bad", ["", "a b", "x" * 33, "fix-access", "é"])
def test_record_type_must_be_a_short_identifier(bad: str) -> None:
    with pytest.raises(UsageError):
        codec.check_type(bad)


@given(payloads=st.lists(st.binary(min_size=0, max_size=300), max_size=8), cuts=st.lists(st.integers(1, 97),
                                                                                         max_size=30))
def test_frames_parse_in_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(codec.encode_frame(payload) for payload in payloads)
    reader = codec.FrameReader("seg")
    seen: list[bytes] = []
    position = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[position:position + cut])
        position += cut
        seen.extend(frame.payload for frame in reader.frames())
    reader.feed(stream[position:])
    seen.extend(frame.payload for frame in reader.frames())
    assert seen == payloads
    assert reader.finish() is None


def test_frames_fed_a_byte_at_a_time_keep_their_offsets() -> None:
    payloads = [b"", b"a", bytes(300), b"xyz" * 50]
    stream = b"".join(codec.encode_frame(payload) for payload in payloads)
    reader = codec.FrameReader("seg")
    frames: list[codec.Frame] = []
    for index in range(len(stream)):
        reader.feed(stream[index:index + 1])
        frames.extend(reader.frames())
    assert [frame.payload for frame in frames] == payloads
    assert [frame.offset for frame in frames] == [0, *[frame.end for frame in frames[:-1]]]
    assert frames[-1].end == len(stream) and reader.finish() is None


@given(payload=st.binary(min_size=1, max_size=100), data=st.data())
def test_a_cut_frame_is_a_tail_not_an_error(payload: bytes, data: st.DataObject) -> None:
    frame = codec.encode_frame(payload)
    cut = data.draw(st.integers(1, len(frame) - 1))
    reader = codec.FrameReader("seg")
    reader.feed(frame[:cut])
    assert list(reader.frames()) == []
    assert reader.finish() == codec.Tail(0, cut)


def test_zero_fill_after_the_last_frame_is_a_tail() -> None:
    frame = codec.encode_frame(b"abc")
    reader = codec.FrameReader("seg")
    reader.feed(frame + bytes(50))
    assert [f.payload for f in reader.frames()] == [b"abc"]
    assert reader.finish() == codec.Tail(len(frame), 50)


def test_data_after_zeros_is_corruption_at_the_zero_run() -> None:
    frame = codec.encode_frame(b"abc")
    reader = codec.FrameReader("seg")
    reader.feed(frame + bytes(10) + b"\x01")
    with pytest.raises(LogCorrupt) as caught:
        list(reader.frames())
    assert (caught.value.segment, caught.value.offset) == ("seg", len(frame))


def test_garbage_is_corruption() -> None:
    reader = codec.FrameReader("seg")
    reader.feed(b"garbage that is long enough to hold a header")
    with pytest.raises(LogCorrupt):
        list(reader.frames())


def test_oversized_records_are_refused() -> None:
    with pytest.raises(UsageError):
        codec.encode_frame(bytes(codec.MAX_PAYLOAD + 1))


def test_a_valid_crc_over_a_non_record_is_corruption() -> None:
    with pytest.raises(LogCorrupt):
        codec.decode_record(cbor2.dumps([1, 2]), segment="s", offset=7)
    with pytest.raises(LogCorrupt):
        codec.decode_record(b"\xff\xff", segment="s", offset=7)


@pytest.mark.parametrize("time_ms", [-1, codec.MAX_TIME_MS + 1, 2**63])
def test_a_record_time_no_calendar_can_show_is_corruption(time_ms: int) -> None:
    body = {"f": {}, "t": time_ms, "v": 1, "seq": 0, "prev": codec.GENESIS, "type": "switch"}
    with pytest.raises(LogCorrupt, match="schema"):
        codec.decode_record(cbor2.dumps(body), segment="s", offset=7)
    body["t"] = codec.MAX_TIME_MS
    assert codec.decode_record(cbor2.dumps(body), segment="s", offset=7).time_ms == codec.MAX_TIME_MS


# -- Merkle -------------------------------------------------------------------------------------------------
def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert merkle.CompactTree().root() == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 34))
def test_compact_tree_matches_the_rfc_definition_and_proofs_verify(size: int) -> None:
    leaves = [merkle.leaf_hash(bytes([index])) for index in range(size)]
    tree = merkle.CompactTree()
    for leaf in leaves:
        tree.append_leaf_hash(leaf)
    root = merkle.root_of(leaves)
    assert tree.root() == root
    for index in range(size):
        proof = merkle.inclusion_proof(leaves, index)
        assert merkle.verify_inclusion(leaves[index], index, size, proof, root)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, size, proof, root)


# each step: add a leaf by its data (True) or by its hash (False), then maybe read the root
tree_steps = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=700)


@given(steps=tree_steps)
def test_leaves_added_by_data_hash_in_batches_to_the_same_tree(steps: list[tuple[bool, bool]]) -> None:
    tree = merkle.CompactTree()
    leaves: list[bytes] = []
    for index, (by_data, read_root) in enumerate(steps):
        data = index.to_bytes(2, "big")
        leaves.append(merkle.leaf_hash(data))
        if by_data:
            tree.append_leaf(data)
        else:
            tree.append_leaf_hash(leaves[-1])
        assert tree.size == len(leaves)
        if read_root:
            assert tree.root() == merkle.root_of(leaves)
    assert tree.root() == merkle.root_of(leaves)


@pytest.mark.parametrize("size", [merkle.CompactTree.BATCH - 1, merkle.CompactTree.BATCH,
                                  merkle.CompactTree.BATCH + 1, 3 * merkle.CompactTree.BATCH + 5])
def test_full_batches_of_leaf_data_give_the_rfc_root(size: int) -> None:
    tree = merkle.CompactTree()
    for index in range(size):
        tree.append_leaf(index.to_bytes(2, "big"))
    assert tree.root() == merkle.root_of([merkle.leaf_hash(index.to_bytes(2, "big")) for index in range(size)])


def test_rfc_split_is_largest_power_of_two_not_half() -> None:
    leaves = [merkle.leaf_hash(bytes([index])) for index in range(3)]
    expected = merkle.node_hash(merkle.node_hash(leaves[0], leaves[1]), leaves[2])
    assert merkle.root_of(leaves) == expected
