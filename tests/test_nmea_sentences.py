"""Typed decoders and the fix assembler."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.errors import NmeaError
from agent.model import Fix
from agent.nmea import (
    FixAssembler,
    FixDecoder,
    Gga,
    Gns,
    Gsa,
    Gsv,
    NmeaReader,
    Proprietary,
    Rmc,
    Sentence,
    Unknown,
    Vtg,
    Zda,
    decode,
    with_checksum,
)
from agent.nmea.fields import (
    FieldError,
    read_dmy_date,
    read_integer,
    read_number,
    read_position,
    read_time,
)


def sentence(body: str) -> Sentence:
    reader = NmeaReader()
    reader.feed(with_checksum(body).encode() + b"\r\n")
    found = list(reader)
    assert len(found) == 1, reader.counters
    return found[0]


def fixes(*bodies: str) -> list[Fix]:
    decoder = FixDecoder()
    return (
        decoder.feed("".join(with_checksum(body) + "\r\n" for body in bodies).encode()) + decoder.feed_eof()
    )


# -- decoders ------------------------------------------------------------------------------------------------


def test_gga_with_fix() -> None:
    gga = decode(sentence("GPGGA,022021.00,3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,"))
    assert isinstance(gga, Gga)
    assert gga.talker == "GP"
    assert gga.time == dt.time(2, 20, 21)
    assert gga.lat == pytest.approx(-(36 + 44.759368 / 60), abs=1e-12)
    assert gga.lon == pytest.approx(174 + 44.072860 / 60, abs=1e-12)
    assert (gga.quality, gga.satellites, gga.hdop, gga.altitude_m, gga.geoid_separation_m) == (
        1,
        7,
        1.1,
        56.1,
        37.0,
    )


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD", "GQ"])
def test_decoders_do_not_care_about_the_talker(talker: str) -> None:
    rmc = decode(sentence(f"{talker}RMC,005524.00,A,4926.533828,N,01732.431995,W,0.0,73.2,040122,2.1,E,A,V"))
    assert isinstance(rmc, Rmc)
    assert rmc.talker == talker
    assert rmc.date == dt.date(2022, 1, 4)
    assert rmc.lon is not None and rmc.lon < 0
    assert (rmc.status, rmc.speed_knots, rmc.course_deg, rmc.mode) == ("A", 0.0, 73.2, "A")


def test_empty_sentences_of_a_receiver_without_fix() -> None:
    gga = decode(sentence("GPGGA,,,,,,0,,,,,,,,"))
    assert gga == Gga("GP", None, None, None, 0, None, None, None, None)
    rmc = decode(sentence("GPRMC,,V,,,,,,,,,,N"))
    assert isinstance(rmc, Rmc)
    assert (rmc.status, rmc.lat, rmc.lon, rmc.time, rmc.date) == ("V", None, None, None, None)
    vtg = decode(sentence("GPVTG,,T,,M,,N,,K,N"))
    assert vtg == Vtg("GP", None, None, None, None, "N")
    gsa = decode(sentence("GPGSA,A,1,,,,,,,,,,,,,,,"))
    assert gsa == Gsa("GP", "A", 1, (), None, None, None, None)


def test_gns_gsa_gsv_zda() -> None:
    gns = decode(sentence("GNGNS,051348.00,6001.336799,N,03014.169009,E,AAN,09,0.9,15.8,16.0,,,V"))
    assert isinstance(gns, Gns)
    assert (gns.mode, gns.satellites, gns.hdop, gns.altitude_m) == ("AAN", 9, 0.9, 15.8)
    gsa = decode(sentence("GNGSA,A,3,14,23,17,15,19,24,13,,,,,,1.25,0.67,1.05,1"))
    assert gsa == Gsa("GN", "A", 3, (14, 23, 17, 15, 19, 24, 13), 1.25, 0.67, 1.05, 1)
    gsv = decode(sentence("GPGSV,3,3,11,24,,,,39,,,34,46,,,49,1"))
    assert isinstance(gsv, Gsv)
    assert (gsv.total, gsv.number, gsv.in_view, gsv.signal_id) == (3, 3, 11, "1")
    assert [(sat.prn, sat.elevation_deg, sat.snr_db) for sat in gsv.satellites] == [
        (24, None, None),
        (39, None, 34),
        (46, None, 49),
    ]
    zda = decode(sentence("GNZDA,103607.00,06,03,2021,00,00"))
    assert zda == Zda("GN", dt.time(10, 36, 7), dt.date(2021, 3, 6))


def test_fractional_seconds() -> None:
    gga = decode(
        sentence("GPGGA,132820.60,4134.49821229,N,09345.03351845,W,2,09,1.0,278.020,M,-31.442,M,7.6,0133")
    )
    assert isinstance(gga, Gga)
    assert gga.time == dt.time(13, 28, 20, 600000)


def test_proprietary_and_unknown_pass_through() -> None:
    assert decode(sentence("PQGSV,4,1,13")) == Proprietary("PQGSV", ("PQGSV", "4", "1", "13"))
    assert decode(sentence("GNFOO,,")) == Unknown("GN", "FOO", ("GNFOO", "", ""))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("GNRMC,121614.00,A,5327.04173,N,00214.41443,W,X.138,,200122,,,A,V", "RMC field 7"),
        ("GPGGA,256000.00,5327.04173,N,00214.41443,W,1,07,1.1,56.1,M,37.0,M,,", "GGA field 1"),
        ("GPGGA,120000.00,5327.04173,Q,00214.41443,W,1,07,1.1,56.1,M,37.0,M,,", "GGA field 3"),
        ("GPGGA,120000.00,9327.04173,N,00214.41443,W,1,07,1.1,56.1,M,37.0,M,,", "GGA field 2"),
        ("GPGGA,120000.00,5327.04173,N,18114.41443,W,1,07,1.1,56.1,M,37.0,M,,", "GGA field 4"),
        ("GPGGA,120000.00,nan,N,00214.41443,W,1,07,1.1,56.1,M,37.0,M,,", "GGA field 2"),
        ("GPGGA,120000.00,5327.04173,N,00214.41443,W,1,07,inf,56.1,M,37.0,M,,", "GGA field 8"),
        ("GPRMC,120000.00,A,5327.04173,N,00214.41443,W,0.1,,310221,,,A", "RMC field 9"),
        ("GNZDA,103607.00,31,02,2021,00,00", "ZDA field 2"),
        ("GPGSV,x,1,11", "GSV field 1"),
    ],
)
def test_bad_fields_name_the_field_but_never_the_value(body: str, field: str) -> None:
    with pytest.raises(NmeaError, match=field) as caught:
        decode(sentence(body))
    for value in ("5327", "00214", "X.138", "9327", "18114", "256000", "nan", "inf"):
        assert value not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["GGA", "RMC", "GNS", "GLL", "GSA", "GSV", "VTG", "ZDA"]),
    fields=st.lists(st.text(alphabet="0123456789.-NSEWAV+e", max_size=12), max_size=22),
)
def test_decoders_raise_only_nmea_error(kind: str, fields: list[str]) -> None:
    checked = sentence(",".join([f"GP{kind}", *fields]))
    try:
        decode(checked)
    except NmeaError:
        pass
    assembler = FixAssembler()
    for fix in assembler.push(checked) + assembler.push(checked) + assembler.flush():
        assert isinstance(fix, Fix)
        assert fix.valid or (fix.lat, fix.lon) == (None, None)


number_text = st.one_of(
    st.sampled_from(["", "0", "07", "1.1", "56.1", "-3.5", "nan", "inf", "-inf", "1e308", "X", "\u0661", " 2"]),
    st.text(alphabet="0123456789.-e", max_size=6),
)


def field_by_field(kind: str, body: str) -> object:
    """What the field-by-field readers make of a GGA or RMC (the decoders' fast path must agree)."""
    f = body.split(",")
    f += [""] * (15 - len(f))
    try:
        if kind == "GGA":
            return Gga("GP", read_time(f, 1), *read_position(f, 2), read_integer(f, 6),
                       read_integer(f, 7), read_number(f, 8), read_number(f, 9),
                       read_number(f, 11))
        return Rmc("GP", read_time(f, 1), f[2], *read_position(f, 3), read_number(f, 7),
                   read_number(f, 8), read_dmy_date(f, 9), f[12] or None)
    except FieldError as error:
        return f"{kind} field {error.number}"


@settings(max_examples=300, deadline=None)
@given(st.lists(number_text, min_size=6, max_size=6))
def test_fast_paths_agree_with_field_by_field_reading(numbers: list[str]) -> None:
    quality, satellites, hdop, altitude, geoid, speed = numbers
    bodies = {
        "GGA": f"GPGGA,120000.00,5327.04173,N,00214.41443,W,{quality},{satellites},{hdop},{altitude},M,{geoid},M,,",
        "RMC": f"GPRMC,120000.00,A,5327.04173,N,00214.41443,W,{speed},{hdop},310221,,,A",
    }
    for kind, body in bodies.items():
        expected = field_by_field(kind, body)
        checked = Sentence("GP", kind, body, False)
        try:
            found: object = decode(checked)
        except NmeaError as error:
            found = str(error).split(" is not")[0]
        assert found == expected


# -- fix assembly --------------------------------------------------------------------------------------------


def test_no_fix_yet_gives_invalid_fixes_without_position() -> None:
    found = fixes(
        "GPGGA,,,,,,0,,,,,,,,",
        "GPRMC,,V,,,,,,,,,,N",
        "GPGGA,235946.005,8960.000000,N,00000.000000,E,0,0,,137.000,M,13.000,M,,",
        "GPRMC,235946.005,V,8960.000000,N,00000.000000,E,0.000,0.00,050180,,,N",
        "GNGNS,051348.00,6001.336799,N,03014.169009,E,NNN,00,,,,,,V",
    )
    assert [fix.source for fix in found] == ["GGA", "GGA", "GNS"]  # one per epoch
    assert found[1].time == dt.datetime(1980, 1, 5, 23, 59, 46, 5000, tzinfo=dt.UTC)
    for fix in found:
        assert not fix.valid
        assert (fix.lat, fix.lon, fix.altitude_m, fix.speed_kmh, fix.course_deg) == (None,) * 5


def test_one_fix_per_epoch_merging_gga_vtg_rmc() -> None:
    first, fix = fixes(
        "GPRMC,022020.00,A,3644.759368,S,17444.072860,E,0.0,301.9,071020,18.3,E,A,V",
        "GPGGA,022021.00,3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,",
        "GPVTG,301.9,T,283.6,M,2.0,N,3.7,K,A",
        "GPRMC,022021.00,A,3644.759371,S,17444.072860,W,1.0,301.9,071020,18.3,E,A,V",
    )
    assert first.time == dt.datetime(2020, 10, 7, 2, 20, 20, tzinfo=dt.UTC)
    assert (fix.source, fix.valid, fix.talker) == ("RMC", True, "GP")  # the latest valid position sentence
    assert fix.time == dt.datetime(2020, 10, 7, 2, 20, 21, tzinfo=dt.UTC)
    assert fix.lat == pytest.approx(-36.745989517, abs=1e-9)
    assert fix.lon == pytest.approx(-174.734547667, abs=1e-9)  # west is negative
    assert (fix.altitude_m, fix.hdop, fix.satellites, fix.fix_quality) == (56.1, 1.1, 7, 1)  # from GGA
    assert fix.speed_kmh == pytest.approx(1.852)  # RMC's own speed wins over VTG's
    assert fix.course_deg == 301.9


def test_vtg_gives_speed_when_rmc_has_none() -> None:
    (fix,) = fixes(
        "GPGGA,022021.00,3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,",
        "GPVTG,301.9,T,283.6,M,2.0,N,3.7,K,A",
    )
    assert (fix.source, fix.speed_kmh, fix.course_deg) == ("GGA", 3.7, 301.9)
    (fix,) = fixes(
        "GPGGA,022021.00,3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,",
        "GPVTG,,T,,M,,N,,K,N",
    )
    assert (fix.speed_kmh, fix.course_deg) == (None, None)


def test_fix_is_emitted_at_the_learnt_end_of_each_epoch() -> None:
    assembler = FixAssembler()

    def push(body: str) -> list[Fix]:
        return assembler.push(sentence(body))

    assert push("GPGGA,120000.00,3330.0,S,07030.0,W,1,08,0.9,500.0,M,30.0,M,,") == []
    assert push("GPRMC,120000.00,A,3330.0,S,07030.0,W,10.0,90.0,010224,,,A") == []  # ender not known yet
    (closed,) = push("GPGGA,120001.00,3330.0,S,07030.0,W,1,08,0.9,500.0,M,30.0,M,,")
    assert closed.time == dt.datetime(2024, 2, 1, 12, 0, 0, tzinfo=dt.UTC)
    (at_once,) = push("GPRMC,120001.00,A,3330.0,S,07030.0,W,10.0,90.0,010224,,,A")  # RMC ends an epoch
    assert at_once.time == dt.datetime(2024, 2, 1, 12, 0, 1, tzinfo=dt.UTC)
    assert assembler.flush() == []


def test_gga_before_any_date_has_no_time() -> None:
    (gga,) = fixes("GPGGA,022021.00,3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,")
    assert gga.valid and gga.time is None


def test_date_from_zda_and_midnight_roll_over() -> None:
    found = fixes(
        "GNZDA,235959.00,31,12,2020,00,00",
        "GNGGA,235959.00,4739.71754,N,12219.58177,W,1,17,0.8,77.5,M,-21.6,M,,",
        "GNGGA,000000.00,4739.71754,N,12219.58177,W,1,17,0.8,77.5,M,-21.6,M,,",
        "GNRMC,000001.00,A,4739.71754,N,12219.58177,W,0.00,286.35,010121,,,A,V",
        "GNGGA,000001.00,4739.71754,N,12219.58177,W,1,17,0.8,77.5,M,-21.6,M,,",
    )
    assert [fix.time for fix in found] == [
        dt.datetime(2020, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2021, 1, 1, 0, 0, 0, tzinfo=dt.UTC),  # GGA after midnight, before any new date
        dt.datetime(2021, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
    ]
    assert found[0].lon == pytest.approx(-(122 + 19.58177 / 60))


@pytest.mark.parametrize(("zda_time", "zda_date", "first", "later"), [
    ("235959.00", "31,12,9999", dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC), "000001.00"),
    ("000000.00", "01,01,0001", dt.datetime(1, 1, 1, 0, 0, 0, tzinfo=dt.UTC), "130000.00"),
])
def test_a_roll_over_off_the_calendar_loses_the_date_not_the_decoder(zda_time: str, zda_date: str,
                                                                     first: dt.datetime, later: str) -> None:
    gga = "GNGGA,{},4739.71754,N,12219.58177,W,1,17,0.8,77.5,M,-21.6,M,,"
    found = fixes(f"GNZDA,{zda_time},{zda_date},00,00", gga.format(zda_time), gga.format(later),
                  "GNZDA,120000.00,02,01,2021,00,00", gga.format("120000.00"))
    # the middle fix's day would be off the calendar: it gets no time rather than a made-up one
    assert [fix.time for fix in found] == [first, None, dt.datetime(2021, 1, 2, 12, 0, 0, tzinfo=dt.UTC)]
    assert all(fix.valid for fix in found)


def test_undecodable_sentence_is_counted_and_gives_no_fix() -> None:
    decoder = FixDecoder()
    data = with_checksum("GNRMC,121614.00,A,5327.04173,N,00214.41443,W,X.138,,200122,,,A,V") + "\r\n"
    assert decoder.feed(data.encode()) + decoder.feed_eof() == []
    assert decoder.assembler.undecodable == 1


@given(hour=st.integers(0, 25), minute=st.integers(0, 61), second=st.integers(0, 61),
       fraction=st.one_of(st.just(""), st.just("."), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)))
@example(hour=0, minute=0, second=0, fraction=".0000005")  # half a microsecond: up, to 1 us
@example(hour=12, minute=0, second=0, fraction=".0000025")  # up, not to the even 2 us
@example(hour=12, minute=0, second=0, fraction=".00000049999")  # below the half: down
@example(hour=23, minute=59, second=59, fraction=".9999995")  # rounds into the next day: not a time of day
@example(hour=12, minute=0, second=58, fraction=".9999995")  # carries into the next second
def test_gga_time_of_day_is_read_exactly(hour: int, minute: int, second: int, fraction: str) -> None:
    # The decoder's rule (agent.nmea.fields.parse_time): to the nearest microsecond, a half up, on the
    # decimal digits. The oracle is decimal arithmetic, so no float rounding can make the two disagree.
    text = f"{hour:02d}{minute:02d}{second:02d}{fraction}"
    exact = decimal.Decimal("0" + fraction) if fraction.strip(".") else decimal.Decimal(0)
    micro = int((exact * 1_000_000).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))
    expected: dt.time | None
    try:
        carry, micro = divmod(micro, 1_000_000)
        expected = dt.time(hour, minute, second + carry, micro)
    except ValueError:  # hour 24+, minute or second 60+: not a time of day
        expected = None
    gga = with_checksum(f"GPGGA,{text},3644.759368,S,17444.072860,E,1,07,1.1,56.1,M,37.0,M,,")
    reader = NmeaReader()
    reader.feed(gga.encode() + b"\r\n")
    (sentence,) = reader.take_all()
    if expected is None:
        with pytest.raises(NmeaError, match="field 1"):
            decode(sentence)
    else:
        assert decode(sentence).time == expected
