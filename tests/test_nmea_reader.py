"""The NMEA reader: framing, checksums, counters, resynchronisation, bounded memory, chunking independence."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent.at
from agent.errors import UsageError
from agent.nmea import NEED_DATA, NmeaReader, ReaderCounters, Sentence, nmea_checksum, with_checksum

CORPORA = Path(__file__).parent / "corpora"
GGA = b"$GPGGA,022021.00,3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,*49\r\n"


def read_all(
    data: bytes,
    chunks: list[int] | None = None,
    *,
    max_sentence_bytes: int = 256,
    allow_missing_checksum: bool = False,
) -> tuple[list[Sentence], dict[str, int]]:
    reader = NmeaReader(max_sentence_bytes, allow_missing_checksum=allow_missing_checksum)
    sentences: list[Sentence] = []
    position = 0
    for size in chunks or []:
        reader.feed(data[position : position + size])
        sentences.extend(reader)
        position += size
    reader.feed(data[position:])
    reader.feed_eof()
    sentences.extend(reader)
    return sentences, reader.counters.as_dict()


def counters(data: bytes, max_sentence_bytes: int = 256) -> dict[str, int]:
    found = read_all(data, max_sentence_bytes=max_sentence_bytes)[1]
    return {name: value for name, value in found.items() if value}


# -- checksum ------------------------------------------------------------------------------------------------


def test_checksum_of_known_sentences() -> None:
    assert nmea_checksum("GPGGA,,,,,,0,,,,,,,,") == 0x66
    assert nmea_checksum(b"GPRMC,,V,,,,,,,,,,N") == 0x53
    assert with_checksum("GPVTG,,T,,M,,N,,K,N") == "$GPVTG,,T,,M,,N,,K,N*2C"


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_checksum_is_the_xor_of_the_bytes(first: bytes, second: bytes) -> None:
    # XOR over a concatenation is the XOR of the parts; a byte XORed with itself cancels out.
    assert nmea_checksum(first + second) == nmea_checksum(first) ^ nmea_checksum(second)
    assert nmea_checksum(first + first) == 0
    assert nmea_checksum(first[:1]) == (first[0] if first else 0)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="$*"),
               max_size=80))
def test_a_written_sentence_reads_back(fields: str) -> None:
    body = "GPTXT," + fields
    assert nmea_checksum(body) == nmea_checksum(body.encode())
    sentences, found = read_all((with_checksum(body) + "\r\n").encode())
    assert [sentence.body for sentence in sentences] == [body]
    assert (found["accepted"], found["unknown"]) == (1, 1)


# -- framing and checking ------------------------------------------------------------------------------------


def test_one_sentence_is_split_into_fields() -> None:
    reader = NmeaReader()
    reader.feed(GGA)
    sentence = reader.next_event()
    assert isinstance(sentence, Sentence)
    assert (sentence.talker, sentence.kind, sentence.proprietary) == ("GP", "GGA", False)
    assert sentence.fields[0] == "GPGGA"
    assert sentence.fields[1] == "022021.00"
    assert len(sentence.fields) == 15
    assert reader.next_event() is NEED_DATA
    assert reader.counters.as_dict()["accepted"] == 1


def test_need_data_is_the_at_core_sentinel() -> None:
    # One sentinel for both sans-I/O cores: a caller draining either compares against the same object.
    reader = NmeaReader()
    reader.feed(GGA[:20])
    event = reader.next_event()
    assert event is NEED_DATA is agent.at.NEED_DATA
    assert isinstance(event, agent.at.NeedData)


def test_lower_case_checksum_is_accepted_and_a_wrong_one_counted() -> None:
    assert counters(GGA.replace(b"*49", b"*48")) == {"bad_checksum": 1}
    lower = b"$GNRMC,103607.00,A,5327.03942,N,10214.42462,W,0.046,,060321,,,A,V*0e\r\n"
    assert counters(lower) == {"accepted": 1}
    assert counters(lower.replace(b"*0e", b"*0f")) == {"bad_checksum": 1}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"$GNVTG,,T,,M,0.145,N,0.269,K,A*3)\r\n", {"malformed": 1}),  # checksum not hex
        (b"$GPGGA,1*4\r\n", {"malformed": 1}),  # one digit only
        (b"$GPGGA,1*444\r\n", {"malformed": 1}),  # three
        (b"$GPGGA,1* 4\r\n", {"malformed": 1}),  # int(" 4", 16) would have taken it
        (b"$GPG\x01GA,1*00\r\n", {"malformed": 1}),  # control byte
        (b"$GP\xc3\xa9GA*00\r\n", {"malformed": 1}),  # not ASCII
        (b"$&bTXT,01*" + b"%02X" % nmea_checksum(b"&bTXT,01") + b"\r\n", {"malformed": 1}),  # bad address
        (
            b"$GPGGAX,1*" + b"%02X" % nmea_checksum(b"GPGGAX,1") + b"\r\n",
            {"malformed": 1},
        ),  # 6-letter address
        (b"$\r\n", {"missing_checksum": 1}),
        (b"$", {"malformed": 1}),  # a lone '$' at the end (pynmeagps badeof)
        (b"$GPGGA,1,2", {"malformed": 1}),  # truncated at the end of input
        (
            b"$GPGGA,1,2$GPGGA,1,2*" + b"%02X" % nmea_checksum(b"GPGGA,1,2") + b"\n",
            {"malformed": 1, "accepted": 1},
        ),
        (b"junk\r\n\r\n\x00\xff" + GGA, {"garbage_bytes": 6, "accepted": 1}),
        (b"\r\n\n\r", {}),  # blank lines are not garbage
    ],
)
def test_faults_are_counted_exactly(data: bytes, expected: dict[str, int]) -> None:
    assert counters(data) == expected


def test_missing_checksum_is_refused_by_default_and_allowed_on_request() -> None:
    line = b"$POLYN,TIME,RESTART_OCCURRED\r\n"
    assert counters(line) == {"missing_checksum": 1}
    sentences, found = read_all(line, allow_missing_checksum=True)
    assert found["accepted"] == found["proprietary"] == 1
    assert sentences[0].body == "POLYN,TIME,RESTART_OCCURRED"
    assert sentences[0].kind == "OLYN"


def test_proprietary_and_unknown_pass_through_and_are_counted() -> None:
    data = (with_checksum("PQGSV,4,1,13,03") + "\r\n" + with_checksum("GPTXT,01,01,01,ANTENNA OK") + "\r\n").encode()
    sentences, found = read_all(data)
    assert [(s.talker, s.kind, s.proprietary) for s in sentences] == [
        ("", "QGSV", True),
        ("GP", "TXT", False),
    ]
    assert (found["accepted"], found["proprietary"], found["unknown"]) == (2, 1, 1)


def test_cr_alone_ends_a_sentence() -> None:
    assert counters(GGA.replace(b"\r\n", b"\r") * 2) == {"accepted": 2}


def test_over_long_sentence_is_dropped_and_memory_stays_bounded() -> None:
    reader = NmeaReader(max_sentence_bytes=64)
    reader.feed(b"$GPGGA," + b"1" * 10_000)
    assert len(reader._open) <= 64
    reader.feed(b"1" * 10_000)
    assert len(reader._open) <= 64
    reader.feed(b"*00\r\n" + GGA)
    assert reader.counters.malformed == 2  # the long one, and GGA: 76 bytes is over this reader's bound too
    assert reader.counters.accepted == 0
    assert counters(GGA, max_sentence_bytes=len(GGA) - 2) == {"accepted": 1}  # '$' counts, CRLF does not
    assert counters(GGA, max_sentence_bytes=len(GGA) - 3) == {"malformed": 1}


@pytest.mark.parametrize("bound", [0, 15, 65537])
def test_bound_must_be_sensible(bound: int) -> None:
    with pytest.raises(UsageError, match="max_sentence_bytes"):
        NmeaReader(max_sentence_bytes=bound)


def test_reader_goes_on_after_end_of_input() -> None:
    reader = NmeaReader()
    reader.feed(b"$GPGGA,cut")
    reader.feed_eof()
    reader.feed(GGA)
    assert [sentence.kind for sentence in reader] == ["GGA"]
    assert (reader.counters.malformed, reader.counters.accepted) == (1, 1)


# -- a byte-at-a-time reference model of the documented rules ------------------------------------------------


def reference_model(data: bytes, bound: int, allow_missing: bool) -> tuple[list[str], dict[str, int]]:
    """The module docstring's rules, written the slow and obvious way."""
    found = ReaderCounters().as_dict()  # every counter, at zero
    bodies: list[str] = []
    current: bytearray | None = None

    def finish(frame: bytes) -> None:
        if len(frame) + 1 > bound or not all(0x20 <= byte < 0x7F for byte in frame):
            found["malformed"] += 1
            return
        text = frame.decode()
        if "*" in text:
            body, _, sent = text.partition("*")
            if len(sent) != 2 or any(c not in "0123456789abcdefABCDEF" for c in sent):
                found["malformed"] += 1
                return
            computed = 0
            for byte in body.encode():
                computed ^= byte
            if computed != int(sent, 16):
                found["bad_checksum"] += 1
                return
        elif not allow_missing:
            found["missing_checksum"] += 1
            return
        else:
            body = text
        address = body.split(",")[0]
        if not address.isalnum() or not ((address[:1] == "P" and len(address) > 1) or len(address) == 5):
            found["malformed"] += 1
            return
        found["accepted"] += 1
        if address[0] == "P":
            found["proprietary"] += 1
        elif address[2:] not in {"GGA", "RMC", "GNS", "GLL", "GSA", "GSV", "VTG", "ZDA"}:
            found["unknown"] += 1
        bodies.append(body)

    for byte in data:
        if byte == 0x24:
            if current is not None:
                found["malformed"] += 1
            current = bytearray()
        elif byte in (0x0D, 0x0A):
            if current is not None:
                finish(bytes(current))
            current = None
        elif current is None:
            found["garbage_bytes"] += 1
        else:
            current.append(byte)
    if current is not None:
        found["malformed"] += 1
    return bodies, found


NMEA_ALPHABET = b"$*,\r\nGPNRMCAQ0123456789ABCDEFabcdef.\x00\xff"
nmea_like = st.lists(
    st.one_of(
        st.sampled_from([GGA, GGA[:30], b"$POLYN,A\r\n", b"$PQGSV,1*" + b"%02X" % nmea_checksum(b"PQGSV,1")]),
        st.binary(max_size=20),
        st.lists(st.sampled_from(list(NMEA_ALPHABET)), max_size=40).map(bytes),
    ),
    max_size=12,
).map(b"".join)


def random_chunks(data: bytes, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes = []
    remaining = len(data)
    while remaining > 0:
        size = rng.randint(1, 64)
        sizes.append(size)
        remaining -= size
    return sizes


@settings(max_examples=300, deadline=None)
@given(
    data=nmea_like, seed=st.integers(0, 2**16), bound=st.sampled_from([16, 40, 82, 256]), allow=st.booleans()
)
def test_reader_matches_reference_model_in_any_chunking(
    data: bytes, seed: int, bound: int, allow: bool
) -> None:
    expected_bodies, expected_counters = reference_model(data, bound, allow)
    for chunks in (None, [1] * len(data), random_chunks(data, seed)):
        sentences, found = read_all(data, chunks, max_sentence_bytes=bound, allow_missing_checksum=allow)
        assert [sentence.body for sentence in sentences] == expected_bodies
        assert found == expected_counters


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), seed=st.integers(0, 2**16))
def test_arbitrary_bytes_never_raise_and_memory_stays_bounded(data: bytes, seed: int) -> None:
    reader = NmeaReader(max_sentence_bytes=32)
    position = 0
    for size in random_chunks(data, seed):
        reader.feed(data[position : position + size])
        position += size
        assert len(reader._open) <= 32
        list(reader)
    reader.feed_eof()
    found = reader.counters
    assert found.garbage_bytes <= len(data)
    assert found.accepted + found.malformed + found.bad_checksum + found.missing_checksum <= data.count(b"$")


def test_kinds_filter_returns_only_those_but_counts_everything() -> None:
    data = (CORPORA / "gpsd" / "quectel-eg25-g-2.log").read_bytes()
    everything, all_counters = read_all(data)
    reader = NmeaReader(kinds=frozenset({"GGA", "QGSV"}))
    reader.feed(data)
    reader.feed_eof()
    wanted = list(reader)
    assert [s for s in everything if s.kind in ("GGA", "QGSV")] == wanted
    assert {s.kind for s in wanted} == {"GGA", "QGSV"}
    assert reader.counters.as_dict() == all_counters


# Sentences with a correct checksum whose bodies vary in the ways that matter to the checks: short, long and
# proprietary addresses, commas anywhere, stray '*', no checksum at all.
def checksummed(body: str, upper: bool = True) -> str:
    return f"${body}*{nmea_checksum(body):{'02X' if upper else '02x'}}"


valid_sentence = st.one_of(
    st.builds(checksummed, st.text(alphabet="GPNRMCAQ01,.", max_size=12), st.booleans()),
    st.sampled_from(["GPGGA,7", "GNRMC,7", "PQGSV,7", "GPGSV,7", "P1,AB,7", "AB,CD,7", "PMTK001,7", "P"]).map(
        checksummed
    ),
)
faulty_sentence = st.one_of(
    st.builds(checksummed, st.text(alphabet="GPNRMCAQ01,.*", max_size=12)),
    st.sampled_from(["$GPGGA,1*", "$GPRMC,2*4", "$GNVTG,,T", "$PQGSV,1", "$GPGSV,3*ZZ"]),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.one_of(st.lists(valid_sentence, min_size=1, max_size=40),
                    st.lists(st.one_of(valid_sentence, faulty_sentence), min_size=1, max_size=40)),
    ending=st.sampled_from(["\r\n", "\n", "\r"]),
    allow=st.booleans(),
    kinds=st.sampled_from([None, frozenset({"GGA", "RMC"}), frozenset({"QGSV", "1"})]),
)
def test_reads_of_checksummed_sentences_match_the_reference_model(
    lines: list[str], ending: str, allow: bool, kinds: frozenset[str] | None
) -> None:
    data = "".join(line + ending for line in lines).encode()
    expected_bodies, expected_counters = reference_model(data, 256, allow)
    reader = NmeaReader(allow_missing_checksum=allow, kinds=kinds)
    reader.feed(data)
    sentences = list(reader)
    assert reader.counters.as_dict() == expected_counters
    wanted = [body for body in expected_bodies if kinds is None or _kind(body) in kinds]
    assert [sentence.body for sentence in sentences] == wanted
    for sentence in sentences:
        assert sentence.kind == _kind(sentence.body)
        assert sentence.proprietary == sentence.body.startswith("P")


def _kind(body: str) -> str:
    address = body.split(",")[0]
    return address[1:] if address.startswith("P") else address[2:]
