"""Multi-constellation epochs, GLL, and the mode of a fix, from the NMEA 0183 rules.

The rules (see agent.nmea.modes): GGA quality 0..8 and the mode indicator letters A D E F M N P R S; the
status field of RMC and GLL is V for every mode but A and D, so the indicator decides when present. One fix
per epoch whatever the number of talkers; simulated, manual and invalid fixes are never positions.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import NmeaError
from agent.model import Fix
from agent.nmea import FixAssembler, FixDecoder, Gll, NmeaReader, Sentence, decode, modes, with_checksum

POSITION = "4739.71754,N,12219.58177,W"
LAT, LON = 47 + 39.71754 / 60, -(122 + 19.58177 / 60)


def sentence(body: str) -> Sentence:
    reader = NmeaReader()
    reader.feed(with_checksum(body).encode() + b"\r\n")
    (found,) = reader.take_all()
    return found


def fixes(*bodies: str) -> list[Fix]:
    decoder = FixDecoder()
    data = "".join(with_checksum(body) + "\r\n" for body in bodies).encode()
    return decoder.feed(data) + decoder.feed_eof()


def gga(talker: str, time: str, quality: int = 1, satellites: int = 8, position: str = POSITION) -> str:
    return f"{talker}GGA,{time},{position},{quality},{satellites:02d},0.8,77.5,M,-21.6,M,,"


def rmc(talker: str, time: str, status: str = "A", mode: str = "A", position: str = POSITION) -> str:
    return f"{talker}RMC,{time},{status},{position},1.00,286.35,010121,,,{mode},V"


def gll(talker: str, time: str, status: str = "A", mode: str = "A", position: str = POSITION) -> str:
    return f"{talker}GLL,{position},{time},{status},{mode}"


def multi_constellation_epoch(time: str) -> list[str]:
    """What a GPS + GLONASS receiver with per-constellation talkers sends for one epoch."""
    return [gga("GP", time, satellites=8), gga("GL", time, satellites=9), gga("GN", time, satellites=17),
            rmc("GN", time)]


# -- one fix per epoch, whatever the talkers -----------------------------------------------------------------


def test_several_gga_talkers_give_one_fix_per_epoch_and_keep_the_first_dated_one() -> None:
    # Before: one fix per talker, the first epoch's fixes emitted before its RMC's date (so without a time,
    # and dropped by replay), and every later RMC merged into an epoch already emitted.
    found = fixes(*multi_constellation_epoch("120000.00"), *multi_constellation_epoch("120001.00"))
    assert [fix.time for fix in found] == [
        dt.datetime(2021, 1, 1, 12, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2021, 1, 1, 12, 0, 1, tzinfo=dt.UTC),
    ]
    for fix in found:
        assert (fix.valid, fix.source, fix.talker, fix.mode) == (True, "RMC", "GN", "autonomous")
        assert fix.satellites == 17  # the combined GGA's count, not one constellation's
        assert fix.speed_kmh == pytest.approx(1.852)


def test_one_extra_glonass_gga_does_not_lose_the_epoch() -> None:
    found = fixes(gga("GP", "120000.00"), gga("GL", "120000.00"), rmc("GN", "120000.00"),
                  gga("GP", "120001.00"), rmc("GN", "120001.00"))
    assert [(fix.time, fix.source, fix.talker) for fix in found] == [
        (dt.datetime(2021, 1, 1, 12, 0, 0, tzinfo=dt.UTC), "RMC", "GN"),
        (dt.datetime(2021, 1, 1, 12, 0, 1, tzinfo=dt.UTC), "RMC", "GN"),
    ]


def test_the_learnt_ender_is_the_last_address_so_no_sentence_is_cut_off() -> None:
    assembler = FixAssembler()
    for body in multi_constellation_epoch("120000.00"):
        assert assembler.push(sentence(body)) == []  # the cycle is not known yet
    for second in (1, 2):
        *ggas, last = multi_constellation_epoch(f"12000{second}.00")
        before = [fix for body in ggas for fix in assembler.push(sentence(body))]
        assert len(before) == (1 if second == 1 else 0)  # the first epoch, closed when the second starts
        # from then on each fix comes with its epoch's last sentence (GNRMC), not with the first GGA
        (fix,) = assembler.push(sentence(last))
        assert fix.time == dt.datetime(2021, 1, 1, 12, 0, second, tzinfo=dt.UTC)
        assert fix.satellites == 17
    assert assembler.flush() == []


def test_a_single_constellation_talker_never_replaces_the_combined_one() -> None:
    elsewhere = "4800.00000,N,12300.00000,W"
    (fix,) = fixes(gga("GN", "120000.00", satellites=17), gga("GP", "120000.00", satellites=8, position=elsewhere),
                   rmc("GN", "120000.00"), rmc("GL", "120000.00", position=elsewhere))
    assert (fix.talker, fix.source, fix.satellites) == ("GN", "RMC", 17)
    assert fix.lat == pytest.approx(LAT) and fix.lon == pytest.approx(LON)


def test_a_repeated_address_starts_a_new_epoch_even_without_a_time() -> None:
    found = fixes("GPGGA,,,,,,0,,,,M,,M,,", "GPGLL,,,,,,V,N", "GPRMC,,V,,,,,,,,,,N",
                  "GPGGA,,,,,,0,,,,M,,M,,", "GPGLL,,,,,,V,N", "GPRMC,,V,,,,,,,,,,N")
    assert [(fix.valid, fix.mode) for fix in found] == [(False, "invalid")] * 2


# -- GLL -----------------------------------------------------------------------------------------------------


def test_gll_decodes_every_field() -> None:
    decoded = decode(sentence("GNGLL,4739.71890,N,12219.58362,W,055234.200,A,A"))
    assert isinstance(decoded, Gll)
    assert (decoded.talker, decoded.time, decoded.status, decoded.mode) == ("GN", dt.time(5, 52, 34, 200000), "A", "A")
    assert decoded.lat == pytest.approx(47 + 39.71890 / 60, abs=1e-12)
    assert decoded.lon == pytest.approx(-(122 + 19.58362 / 60), abs=1e-12)


def test_gll_of_older_versions_and_of_no_fix() -> None:
    assert decode(sentence("GPGLL,5050.4122,N,00420.8266,E,105153.71,A")) == Gll(
        "GP", dt.time(10, 51, 53, 710000), pytest.approx(50 + 50.4122 / 60), pytest.approx(4 + 20.8266 / 60),
        "A", None)  # NMEA 2.0: no mode indicator
    assert decode(sentence("GPGLL,,,,,,V,N")) == Gll("GP", None, None, None, "V", "N")
    assert decode(sentence("GPGLL,5050.4122,N,00420.8266,E")) == Gll(
        "GP", None, pytest.approx(50 + 50.4122 / 60), pytest.approx(4 + 20.8266 / 60), "", None)  # NMEA 1.5


@pytest.mark.parametrize(("body", "field"), [
    ("GPGLL,5050.4122,X,00420.8266,E,105153.71,A,A", "GLL field 2"),
    ("GPGLL,5050.4122,N,00420.8266,E,256153.71,A,A", "GLL field 5"),
    ("GPGLL,9150.4122,N,00420.8266,E,105153.71,A,A", "GLL field 1"),
])
def test_gll_bad_fields_are_named_without_their_value(body: str, field: str) -> None:
    with pytest.raises(NmeaError, match=field) as caught:
        decode(sentence(body))
    assert "5050" not in str(caught.value) and "9150" not in str(caught.value)


def test_gll_with_rmc_is_one_epoch() -> None:
    (fix,) = fixes(gll("GP", "120000.00"), rmc("GP", "120000.00"))
    assert (fix.source, fix.valid, fix.mode, fix.time) == (
        "RMC", True, "autonomous", dt.datetime(2021, 1, 1, 12, tzinfo=dt.UTC))


def test_gll_with_zda_and_no_rmc_gives_dated_positions() -> None:
    found = fixes("GNZDA,235959.00,31,12,2020,00,00", gll("GN", "235959.00"),
                  gll("GN", "000000.00"), "GNZDA,000000.00,01,01,2021,00,00", gll("GN", "000001.00"))
    assert [fix.time for fix in found] == [
        dt.datetime(2020, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2021, 1, 1, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2021, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
    ]
    assert all(fix.valid and fix.source == "GLL" and fix.lat == pytest.approx(LAT) for fix in found)


def test_a_gll_without_time_joins_the_epoch_in_progress() -> None:
    (fix,) = fixes(gga("GP", "120000.00"), f"GPGLL,{POSITION}", rmc("GP", "120000.00"))
    assert fix.time == dt.datetime(2021, 1, 1, 12, tzinfo=dt.UTC)


# -- modes ---------------------------------------------------------------------------------------------------

QUALITY = {0: "invalid", 1: "autonomous", 2: "differential", 3: "precise", 4: "rtk", 5: "float-rtk",
           6: "estimated", 7: "manual", 8: "simulator"}
LETTER = {"A": "autonomous", "D": "differential", "E": "estimated", "F": "float-rtk", "M": "manual",
          "N": "invalid", "P": "precise", "R": "rtk", "S": "simulator"}
IS_POSITION = {"autonomous", "differential", "precise", "rtk", "float-rtk", "estimated"}
NOT_POSITION = {"invalid", "simulator", "manual"}


@pytest.mark.parametrize(("quality", "mode"), sorted(QUALITY.items()))
def test_gga_quality_gives_the_mode_and_only_measured_ones_are_positions(quality: int, mode: str) -> None:
    (fix,) = fixes(gga("GP", "120000.00", quality))
    assert (fix.mode, fix.valid, fix.fix_quality) == (mode, mode in IS_POSITION, quality)
    if not fix.valid:
        assert (fix.lat, fix.lon, fix.altitude_m, fix.speed_kmh) == (None,) * 4


@pytest.mark.parametrize(("letter", "mode"), sorted(LETTER.items()))
@pytest.mark.parametrize("kind", ["RMC", "GLL"])
def test_mode_indicator_gives_the_mode_with_the_status_the_standard_prescribes(kind: str, letter: str,
                                                                                 mode: str) -> None:
    # NMEA 0183: status V for every mode but A and D
    status = "A" if letter in "AD" else "V"
    body = (rmc if kind == "RMC" else gll)("GP", "120000.00", status, letter)
    (fix,) = fixes(body)
    assert (fix.mode, fix.valid, fix.source) == (mode, mode in IS_POSITION, kind)
    assert fix.valid == (fix.lat is not None)


@pytest.mark.parametrize("kind", ["RMC", "GLL"])
def test_status_v_with_autonomous_or_differential_is_no_fix(kind: str) -> None:
    for letter in "AD":
        (fix,) = fixes((rmc if kind == "RMC" else gll)("GP", "120000.00", "V", letter))
        assert (fix.valid, fix.mode, fix.lat) == (False, "invalid", None)


def test_without_an_indicator_the_status_decides_and_the_mode_is_not_said() -> None:
    (valid,) = fixes(f"GPRMC,120000.00,A,{POSITION},1.0,90.0,010121,,")
    (warning,) = fixes(f"GPRMC,120000.00,V,{POSITION},1.0,90.0,010121,,")
    assert (valid.valid, valid.mode) == (True, None)
    assert (warning.valid, warning.mode) == (False, "invalid")


def test_estimated_is_a_position_marked_as_such() -> None:
    (fix,) = fixes(gga("GN", "120000.00", quality=6), rmc("GN", "120000.00", "V", "E"))
    assert (fix.valid, fix.mode) == (True, "estimated")
    assert fix.lat == pytest.approx(LAT)


def test_one_simulated_sentence_makes_the_whole_epoch_simulated() -> None:
    (fix,) = fixes(gga("GN", "120000.00", quality=1), rmc("GN", "120000.00", "V", "S"))
    assert (fix.valid, fix.mode, fix.lat, fix.lon) == (False, "simulator", None, None)


def test_the_finest_mode_of_an_epoch_wins() -> None:
    # gpsd's nmea-fuzzy-cases: an NMEA 2.3 receiver says D in RMC (2.3 has no RTK letter) beside quality 4
    (fix,) = fixes(gga("GN", "120000.00", quality=4), rmc("GN", "120000.00", "A", "D"))
    assert (fix.valid, fix.mode) == (True, "rtk")


def test_the_mode_is_that_of_the_talker_whose_position_is_used() -> None:
    (fix,) = fixes(gga("GP", "120000.00", quality=4), gga("GN", "120000.00", quality=1), rmc("GL", "120000.00",
                                                                                               mode="D"))
    assert (fix.talker, fix.mode) == ("GN", "autonomous")


@pytest.mark.parametrize(("letters", "mode", "valid"), [
    ("AAN", "autonomous", True), ("NDA", "differential", True), ("NNN", "invalid", False), ("", "invalid", False),
    ("RFA", "rtk", True), ("ENN", "estimated", True), ("ASN", "simulator", False), ("MA", "manual", False),
    ("XY", "invalid", False),
])
def test_gns_mode_is_the_finest_constellation_unless_one_is_not_measured(letters: str, mode: str,
                                                                         valid: bool) -> None:
    (fix,) = fixes(f"GNGNS,120000.00,{POSITION},{letters},09,0.9,15.8,16.0,,,V")
    assert (fix.mode, fix.valid, fix.source) == (mode, valid, "GNS")


def test_vtg_speed_is_not_used_when_its_mode_says_it_was_not_measured() -> None:
    for letter, used in (("A", True), ("E", True), ("S", False), ("M", False), ("N", False)):
        (fix,) = fixes(gga("GP", "120000.00"), f"GPVTG,301.9,T,283.6,M,2.0,N,3.7,K,{letter}")
        assert (fix.speed_kmh == 3.7) is used


def test_undefined_values_are_never_positions() -> None:
    assert modes.quality_mode(9) == modes.quality_mode(None) == "invalid"
    assert modes.status_mode("A", "X") == "invalid"
    (fix,) = fixes(gga("GP", "120000.00", quality=9))
    assert (fix.valid, fix.mode) == (False, "invalid")


# -- properties ----------------------------------------------------------------------------------------------

mode_sentences = st.one_of(
    st.builds(lambda t, q: gga(t, "120000.00", q), st.sampled_from(["GP", "GL", "GN"]), st.integers(0, 12)),
    st.builds(lambda t, s, m: rmc(t, "120000.00", s, m), st.sampled_from(["GP", "GN"]), st.sampled_from("AV"),
              st.sampled_from([*"ADEFMNPRSX", ""])),
    st.builds(lambda t, s, m: gll(t, "120000.00", s, m), st.sampled_from(["GA", "GN"]), st.sampled_from("AV"),
              st.sampled_from([*"ADEFMNPRSX", ""])),
    st.builds(lambda m: f"GNGNS,120000.00,{POSITION},{m},09,0.9,15.8,16.0,,,V",
              st.text(alphabet="ADEFMNPRSX", max_size=4)),
)


def sentence_mode(body: str) -> str | None:
    """The rules of the NMEA 0183 tables for one sentence, written out separately from agent.nmea.modes."""
    fields = body.split(",")
    kind = fields[0][2:]
    if kind == "GGA":
        return QUALITY.get(int(fields[6]), "invalid")
    if kind == "GNS":
        named = {LETTER.get(letter, "invalid") for letter in fields[6]}
        for mode in ("simulator", "manual", "rtk", "float-rtk", "precise", "differential", "autonomous",
                     "estimated"):
            if mode in named:
                return mode
        return "invalid"
    status, letter = (fields[2], fields[12]) if kind == "RMC" else (fields[6], fields[7])
    if not letter:
        return None if status == "A" else "invalid"
    mode = LETTER.get(letter, "invalid")
    return "invalid" if mode in ("autonomous", "differential") and status != "A" else mode


@settings(max_examples=300, deadline=None)
@given(st.lists(mode_sentences, min_size=1, max_size=6, unique_by=lambda body: body[:5]))
def test_an_epoch_is_a_position_only_if_a_sentence_measured_one_and_none_simulated(bodies: list[str]) -> None:
    (fix,) = fixes(*bodies)
    said = [sentence_mode(body) for body in bodies]
    not_measured = [mode for mode in said if mode in ("simulator", "manual")]
    measured = [mode for mode in said if mode is None or mode in IS_POSITION]
    assert fix.valid == (bool(measured) and not not_measured)
    if fix.valid:
        assert fix.lat == pytest.approx(LAT) and fix.lon == pytest.approx(LON)
        measuring_talkers = [body[:2] for body, mode in zip(bodies, said, strict=True) if mode not in NOT_POSITION]
        # the position is the latest valid sentence's, but never one constellation's after the combined GN
        used = "GN" if "GN" in measuring_talkers else measuring_talkers[-1]
        assert fix.talker == used
        order = ("rtk", "float-rtk", "precise", "differential", "autonomous", "estimated")
        known = [mode for body, mode in zip(bodies, said, strict=True)
                 if body[:2] == used and mode is not None and mode in order]
        assert fix.mode == (min(known, key=order.index) if known else None)
    else:
        assert (fix.lat, fix.lon, fix.altitude_m, fix.hdop, fix.speed_kmh) == (None,) * 5
        assert fix.mode == (not_measured[-1] if not_measured else "invalid")


def test_an_epoch_waits_for_its_date_when_none_is_known_yet() -> None:
    # The stream starts with an epoch whose RMC was lost: the ender learnt from it is GNGGA. The next epoch's
    # RMC, after that GNGGA, brings the first date: the epoch must wait for it instead of going out undated.
    found = fixes(gga("GP", "120000.00"), gga("GN", "120000.00"),
                  *multi_constellation_epoch("120001.00"), *multi_constellation_epoch("120002.00"))
    assert [fix.time for fix in found] == [
        None,  # no date anywhere before it ended
        dt.datetime(2021, 1, 1, 12, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2021, 1, 1, 12, 0, 2, tzinfo=dt.UTC),
    ]
    assert [fix.speed_kmh is not None for fix in found] == [False, True, True]


def packed(degrees: float, width: int) -> tuple[str, float]:
    """``degrees`` (>= 0) as NMEA's ``d..dmm.mmmmmm`` text, and the value that text stands for."""
    whole = int(degrees)
    minutes = round((degrees - whole) * 60, 6)
    if minutes >= 60:
        whole, minutes = whole + 1, 0.0
    return f"{whole:0{width}d}{minutes:09.6f}", whole + minutes / 60


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180), seconds=st.integers(0, 86_399),
       hundredths=st.integers(0, 99), status=st.sampled_from("AV"), mode=st.sampled_from([*"ADEFMNPRS", ""]))
def test_gll_reads_back_what_was_written(lat: float, lon: float, seconds: int, hundredths: int, status: str,
                                         mode: str) -> None:
    lat_text, lat_value = packed(abs(lat), 2)
    lon_text, lon_value = packed(abs(lon), 3)
    if lat_value > 90 or lon_value > 180:  # rounding the minutes went past the pole or the antimeridian
        return
    hours, rest = divmod(seconds, 3600)
    time = f"{hours:02d}{rest // 60:02d}{rest % 60:02d}.{hundredths:02d}"
    north, east = "N" if lat >= 0 else "S", "E" if lon >= 0 else "W"
    decoded = decode(sentence(f"GPGLL,{lat_text},{north},{lon_text},{east},{time},{status},{mode}"))
    assert isinstance(decoded, Gll)
    assert decoded.lat == pytest.approx(lat_value if lat >= 0 else -lat_value, abs=1e-9)
    assert decoded.lon == pytest.approx(lon_value if lon >= 0 else -lon_value, abs=1e-9)
    assert decoded.time == dt.time(hours, rest // 60, rest % 60, hundredths * 10_000)
    assert (decoded.status, decoded.mode) == (status, mode or None)
    (fix,) = fixes(f"GPGLL,{lat_text},{north},{lon_text},{east},{time},{status},{mode}")
    # NMEA 0183: A and D need status A; E, F, P, R come with status V; S, M, N are no position; without a
    # mode indicator (before 2.3) the status alone says
    measured = (mode in ("A", "D") and status == "A") or mode in ("E", "F", "P", "R") or (not mode and status == "A")
    assert fix.valid == measured
    assert (fix.lat is not None) == measured


ADDRESSES = [f"{talker}{kind}" for talker in ("GP", "GL", "GA", "GB", "GN") for kind in ("GGA", "RMC", "GLL")]


def position_sentence(address: str, time: str) -> str:
    talker, kind = address[:2], address[2:]
    return {"GGA": gga, "RMC": rmc, "GLL": gll}[kind](talker, time)


@settings(max_examples=200, deadline=None)
@given(order=st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=8, unique=True),
       present=st.lists(st.lists(st.booleans(), min_size=8, max_size=8), min_size=1, max_size=6))
def test_one_fix_per_epoch_whatever_the_talkers(order: list[str], present: list[list[bool]]) -> None:
    # A receiver sends its position sentences in a fixed order; some may be missing from an epoch (lost on
    # the line). Whatever the talkers, each epoch with a sentence left gives exactly one fix, at its time.
    bodies = ["GNZDA,115959.00,01,01,2021,00,00"]
    times = []
    for second, keep in enumerate(present):
        time = f"1200{second:02d}.00"
        kept = [address for address, wanted in zip(order, keep, strict=False) if wanted]
        if kept:
            times.append(dt.datetime(2021, 1, 1, 12, 0, second, tzinfo=dt.UTC))
        bodies += [position_sentence(address, time) for address in kept]
    found = fixes(*bodies)
    assert [fix.time for fix in found] == times
    assert all(fix.valid and fix.mode == "autonomous" for fix in found)
