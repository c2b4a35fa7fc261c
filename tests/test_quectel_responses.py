"""Reply parsers against every real reply form in the reference sheet and the transcripts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.at import NEED_DATA, Command, Connection, Final, Response
from agent.errors import CmeError, CommandError, RemoteProtocolError
from agent.model import CellInfo, ModemInfo
from agent.quectel import commands as c
from agent.quectel import responses as r
from agent.quectel.codes import GnssNotFixed, GnssSessionNotActive


def resp(command: Command, *lines: str, final: Final | None = None) -> Response:
    return Response(command, lines, final or Final("OK", None, "OK"))


def through_core(command: Command, wire: bytes) -> Response:
    """Run wire bytes through the AT core, so parsers see what the session would hand them."""
    conn = Connection()
    conn.send(command)
    conn.receive_data(wire)
    while (event := conn.next_event()) is not NEED_DATA:
        if isinstance(event, Response):
            return event
    raise AssertionError("no response")


# -- QGPS / QGPSLOC ------------------------------------------------------------------------------------------
def test_qgps_state() -> None:
    assert r.parse_qgps_state(resp(c.qgps_read(), "+QGPS: 1")) is True
    assert r.parse_qgps_state(through_core(c.qgps_read(), b"\r\n+QGPS: 0\r\n\r\nOK\r\n")) is False
    for bad in ("+QGPS: 2", "+QGPS: ", "+QGPS: on"):
        with pytest.raises(RemoteProtocolError):
            r.parse_qgps_state(resp(c.qgps_read(), bad))
    with pytest.raises(RemoteProtocolError):
        r.parse_qgps_state(resp(c.qgps_read()))


ORACLE = {  # transcript 4.7: the same fix in the three QGPSLOC modes
    0: "+QGPSLOC: 190629.0,3723.7238N,12206.1395W,1.0,16.0,2,188.18,0.0,0.0,031219,09",
    1: "+QGPSLOC: 190629.0,3723.723831,N,12206.139526,W,1.0,16.0,2,188.18,0.0,0.0,031219,09",
    2: "+QGPSLOC: 190629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219,09",
}


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_qgpsloc_modes_agree_transcript_4_7(mode: int) -> None:
    fix = r.parse_qgpsloc(resp(c.qgpsloc(mode), ORACLE[mode]), mode)
    assert fix.source == "QGPSLOC" and fix.valid
    assert fix.lat == pytest.approx(37.39540, abs=1e-5)
    assert fix.lon == pytest.approx(-122.10232, abs=1e-5)
    assert fix.time == dt.datetime(2019, 12, 3, 19, 6, 29, tzinfo=dt.UTC)
    assert (fix.hdop, fix.altitude_m, fix.fix_quality) == (1.0, 16.0, 2)
    assert (fix.satellites, fix.speed_kmh) == (9, 0.0)
    assert fix.course_deg == pytest.approx(188 + 18 / 60)


def test_qgpsloc_mode_1_is_degrees_and_minutes_not_decimal() -> None:
    fix = r.parse_qgpsloc(resp(c.qgpsloc(1), ORACLE[1]), 1)
    assert fix.lat == pytest.approx(37 + 23.723831 / 60, abs=1e-9)
    assert fix.lat != pytest.approx(37.23723831, abs=1e-3)


def test_qgpsloc_reference_examples() -> None:
    line = "+QGPSLOC: 061951.0,3150.7223N,11711.9293E,0.7,62.2,2,0.0,0.0,0.0,110513,09"
    fix = r.parse_qgpsloc(resp(c.qgpsloc(0), line), 0)
    assert fix.lat == pytest.approx(31.845372, abs=1e-6) and fix.lon == pytest.approx(117.198822, abs=1e-6)
    assert fix.time == dt.datetime(2013, 5, 11, 6, 19, 51, tzinfo=dt.UTC)
    wire = (b"\r\n+QGPSLOC: 113355.0,44.74770,-85.56527,1.2,192.0,2,277.11,0.0,0.0,250420,10\r\n\r\nOK\r\n")
    fix = r.parse_qgpsloc(through_core(c.qgpsloc(2), wire), 2)
    assert (fix.lat, fix.lon, fix.satellites, fix.hdop) == (44.74770, -85.56527, 10, 1.2)
    south_west = "+QGPSLOC: 000000.0,3350.0000S,07040.0000W,1.0,0.0,3,0.0,0.0,0.0,010124,04"
    fix = r.parse_qgpsloc(resp(c.qgpsloc(0), south_west), 0)
    assert fix.lat == pytest.approx(-33.833333, abs=1e-6) and fix.lon == pytest.approx(-70.666667, abs=1e-6)


@pytest.mark.parametrize(("hdop", "expected"), [("500.0", None), ("0.4", None), ("0.5", 0.5), ("99.9", 99.9),
                                                ("", None)])
def test_qgpsloc_hdop_outside_valid_range_is_dropped(hdop: str, expected: float | None) -> None:
    line = f"+QGPSLOC: 190629.0,37.39540,-122.10232,{hdop},16.0,3,0.0,0.0,0.0,031219,09"
    assert r.parse_qgpsloc(resp(c.qgpsloc(2), line), 2).hdop == expected


@pytest.mark.parametrize(
    ("mode", "payload"),
    [
        (2, "190629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219"),  # one field short
        (0, ORACLE[2].split(": ")[1]),  # mode 2 layout read as mode 0
        (1, ORACLE[0].split(": ")[1]),
        (2, "190629.0,97.0,-122.1,1.0,16.0,2,188.18,0.0,0.0,031219,09"),  # latitude out of range
        (2, "190629.0,37.0,-190.1,1.0,16.0,2,188.18,0.0,0.0,031219,09"),
        (2, "190629.0,nan,-122.1,1.0,16.0,2,188.18,0.0,0.0,031219,09"),
        (2, "190629.0,1e3,-122.1,1.0,16.0,2,188.18,0.0,0.0,031219,09"),
        (0, "190629.0,3763.7238N,12206.1395W,1.0,16.0,2,188.18,0.0,0.0,031219,09"),  # 63 minutes
        (0, "190629.0,3723.7238E,12206.1395W,1.0,16.0,2,188.18,0.0,0.0,031219,09"),  # wrong hemisphere
        (2, "250629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219,09"),  # hour 25
        (2, "190629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,321219,09"),  # day 32
        (2, "19:06:29,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219,09"),
        (2, "190629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219,x9"),
    ],
)
def test_qgpsloc_malformed(mode: int, payload: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        r.parse_qgpsloc(resp(c.qgpsloc(mode), "+QGPSLOC: " + payload), mode)
    assert "AT+QGPSLOC" in str(info.value)
    assert "37.39" not in str(info.value) and "3723" not in str(info.value)


def test_qgpsloc_errors_become_named_gnss_errors_transcript_4_5() -> None:
    with pytest.raises(GnssNotFixed):
        r.parse_qgpsloc(through_core(c.qgpsloc(2), b"\r\n+CME ERROR: 516\r\n"), 2)
    with pytest.raises(GnssSessionNotActive):
        r.parse_qgpsloc(resp(c.qgpsloc(2), final=Final("CME", 505, "+CME ERROR: 505")), 2)


def test_qgpsloc_mode_is_checked() -> None:
    with pytest.raises(ValueError):
        r.parse_qgpsloc(resp(c.qgpsloc(2), ORACLE[2]), 3)


def test_course_is_degrees_and_minutes_and_impossible_values_drop() -> None:
    line = "+QGPSLOC: 190629.0,37.39540,-122.10232,1.0,16.0,2,{},0.0,0.0,031219,09"
    assert r.parse_qgpsloc(resp(c.qgpsloc(2), line.format("95.45")), 2).course_deg == pytest.approx(95.75)
    assert r.parse_qgpsloc(resp(c.qgpsloc(2), line.format("95.75")), 2).course_deg is None
    assert r.parse_qgpsloc(resp(c.qgpsloc(2), line.format("")), 2).course_deg is None


# -- QGPSCFG / QGPSGNMEA -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('+QGPSCFG: "gnssconfig",4', ("gnssconfig", (4,))),  # transcript 4.2
        ('+QGPSCFG: "outport","usbnmea"', ("outport", ("usbnmea",))),
        ('+QGPSCFG: "outport","uartnmea",115200', ("outport", ("uartnmea", 115200))),
        ('+QGPSCFG: "autogps",0', ("autogps", (0,))),
        ('+QGPSCFG: "newkey",abc,"12",-3', ("newkey", ("abc", "12", -3))),
        ('+QGPSCFG: "lbsapn",1,1,"a,b"', ("lbsapn", (1, 1, "a,b"))),
        ('+QGPSCFG:"nmeasrc",1', ("nmeasrc", (1,))),
    ],
)
def test_qgpscfg(line: str, expected: tuple[str, tuple[str | int, ...]]) -> None:
    assert r.parse_qgpscfg(resp(c.qgpscfg_read(expected[0]), line)) == expected


def test_qgpscfg_malformed_and_errors() -> None:
    with pytest.raises(RemoteProtocolError):
        r.parse_qgpscfg(resp(c.qgpscfg_read("x"), '+QGPSCFG: "unclosed,1'))
    with pytest.raises(RemoteProtocolError):
        r.parse_qgpscfg(resp(c.qgpscfg_read("x"), '+QGPSCFG: ,1'))
    with pytest.raises(GnssSessionNotActive):  # transcript 4.4
        r.parse_qgpscfg(through_core(Command("AT+QGPSCFG?", "+QGPSCFG"), b"\r\n+CME ERROR: 505\r\n"))


def test_qgpsgnmea() -> None:
    lines = ("+QGPSGNMEA: $GPGSV,3,1,10,01,28,284,23,08,68,213,25,10,42,056,22,14,12,322,21,1*60",
             "+QGPSGNMEA: $GPGSV,3,2,10,21,30,100,20*70")
    assert r.parse_qgpsgnmea(resp(c.qgpsgnmea("GSV"), *lines)) == [line.split(": ", 1)[1] for line in lines]
    assert r.parse_qgpsgnmea(resp(c.qgpsgnmea("GGA"), "+QGPSGNMEA: $GPGGA,0,*66")) == ["$GPGGA,0,*66"]
    with pytest.raises(RemoteProtocolError):
        r.parse_qgpsgnmea(resp(c.qgpsgnmea("GGA"), "+QGPSGNMEA: GPGGA"))
    with pytest.raises(CmeError) as info:
        r.parse_qgpsgnmea(resp(c.qgpsgnmea("GGA"), final=Final("CME", 507, "+CME ERROR: 507")))
    assert info.value.code == 507


# -- identity ------------------------------------------------------------------------------------------------
def test_ati_transcript_4_11() -> None:
    response = through_core(c.ati(), b"ATI\r\r\nQuectel\r\nEC25\r\nRevision: EC25EFAR06A03M4G\r\n\r\nOK\r\n")
    assert r.parse_ati(response) == ModemInfo("Quectel", "EC25", "EC25EFAR06A03M4G")
    with pytest.raises(RemoteProtocolError):
        r.parse_ati(resp(c.ati(), "Quectel", "EC25"))
    with pytest.raises(RemoteProtocolError):
        r.parse_ati(resp(c.ati(), "Quectel", "EC25", "Revision:"))


def test_identifiers() -> None:
    assert r.parse_imei(through_core(c.cgsn(), b"\r\n861536030196001\r\n\r\nOK\r\n")) == "861536030196001"
    assert r.parse_imei(resp(c.cgsn(), "+CGSN: 861536030196001")) == "861536030196001"
    assert r.parse_imsi(resp(c.cimi(), "460013273321298")) == "460013273321298"
    assert r.parse_iccid(resp(c.qccid(), "+QCCID: 89860025128306012474")) == "89860025128306012474"
    assert r.parse_iccid(resp(c.qccid(), "+QCCID: 8944500102198304826F")) == "8944500102198304826F"
    assert r.parse_qgmr(resp(c.qgmr(), "EG25GGBR07A08M2G_01.003.01.003")) == "EG25GGBR07A08M2G_01.003.01.003"
    assert r.parse_cgmm(resp(c.cgmm(), "EC25")) == "EC25"


@pytest.mark.parametrize(
    ("parse", "command", "line"),
    [
        (r.parse_imei, c.cgsn(), "86153603019600X"),
        (r.parse_imei, c.cgsn(), "8615360"),
        (r.parse_imsi, c.cimi(), "46001327332129812345"),
        (r.parse_iccid, c.qccid(), "+QCCID: 8986-0025"),
        (r.parse_qgmr, c.qgmr(), "x" * 65),
    ],
)
def test_identifier_malformed_never_echoes_the_value(parse: Callable[[Response], Any], command: Command,
                                                     line: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(resp(command, line))
    assert line not in str(info.value) and "8615" not in str(info.value) and "4600" not in str(info.value)
    with pytest.raises(RemoteProtocolError):
        parse(resp(command))  # no value line at all


def test_imsi_error_when_sim_not_ready() -> None:
    with pytest.raises(CmeError) as info:
        r.parse_imsi(resp(c.cimi(), final=Final("CME", 10, "+CME ERROR: 10")))
    assert info.value.code == 10 and type(info.value) is CmeError


def test_cnum() -> None:
    assert r.parse_cnum(resp(c.cnum(), '+CNUM: ,"+639544817486",145')) == "+639544817486"
    assert r.parse_cnum(resp(c.cnum(), '+CNUM: "Me","5550100",129')) == "5550100"
    assert r.parse_cnum(resp(c.cnum())) is None
    assert r.parse_cnum(resp(c.cnum(), '+CNUM: ,"",129')) is None
    with pytest.raises(RemoteProtocolError) as info:
        r.parse_cnum(resp(c.cnum(), '+CNUM: ,"+63954abc",145'))
    assert "63954" not in str(info.value)


# -- QENG servingcell ----------------------------------------------------------------------------------------
SC = '+QENG: "servingcell",'


def qeng(*lines: str) -> CellInfo:
    return r.parse_qeng_servingcell(resp(c.qeng_servingcell(), *lines))


def test_qeng_lte_short_form_transcript_4_8() -> None:
    cell = qeng(SC + '"NOCONN","LTE","FDD",222,88,243800E,20,3350,7,5,5,3AC9,-86,-13,-52,15,-')
    assert (cell.state, cell.rat, cell.mcc, cell.mnc, cell.cell_id, cell.area) == (
        "NOCONN", "LTE", 222, 88, "243800E", "3AC9")
    assert (cell.pcid, cell.earfcn, cell.rsrp, cell.rsrq) == (20, 3350, -86, -13)
    extra = dict(cell.extra)
    assert extra["band"] == 7 and extra["rssi"] == -52 and extra["sinr"] == 15 and extra["srxlev"] is None
    assert "cqi" not in extra


def test_qeng_lte_reference_forms() -> None:
    short = qeng(SC + '"NOCONN","LTE","FDD",460,11,E0B70B,374,100,1,5,5,5F0C,-80,-6,-53,30,39')
    assert (short.cell_id, short.area, dict(short.extra)["srxlev"]) == ("E0B70B", "5F0C", 39)
    long = qeng(SC + '"NOCONN","LTE","FDD",250,02,1A8D147,258,2850,7,5,5,2364,-91,-8,-63,21,0,'
                '-,32')
    extra = dict(long.extra)
    assert (long.mnc, long.cell_id) == (2, "1A8D147")
    assert (extra["cqi"], extra["tx_power"], extra["srxlev"]) == (0, None, 32)
    catm = qeng(SC + '"CONNECT","CAT-M","FDD",310,410,A1B2C3,100,5110,12,3,3,1A2B,-95,-10,-70,5,'
                '20')
    assert (catm.rat, catm.state, catm.area) == ("CAT-M", "CONNECT", "1A2B")


def test_qeng_nr5g_nsa_multi_line_transcript_4_8() -> None:
    wire = (b'\r\n+QENG: "servingcell","NOCONN"\r\n'
            b'+QENG: "LTE","FDD",515,03,3359966,1,150,1,5,5,4AA3,-89,-13,-58,16,15,20,-\r\n'
            b'+QENG:"NR5G-NSA",515,03,832,-76,21,-11,528030,41,8,1\r\n\r\nOK\r\n')
    cell = r.parse_qeng_servingcell(through_core(c.qeng_servingcell(), wire))
    assert (cell.state, cell.rat, cell.mcc, cell.mnc, cell.cell_id, cell.area, cell.pcid) == (
        "NOCONN", "NR5G-NSA", 515, 3, "3359966", "4AA3", 1)
    extra = dict(cell.extra)
    assert (extra["nr_pcid"], extra["nr_rsrp"], extra["nr_arfcn"], extra["nr_band"]) == (832, -76, 528030, 41)


def test_qeng_nr5g_sa_transcript_4_8() -> None:
    cell = qeng(SC + '"NOCONN","NR5G-SA","FDD",310,260,939204254,24,60AA00,126490,71,1,-104,-13,'
                '11,0,-')
    assert (cell.rat, cell.mcc, cell.mnc, cell.cell_id, cell.pcid, cell.area, cell.earfcn) == (
        "NR5G-SA", 310, 260, "939204254", 24, "60AA00", 126490)
    assert (cell.rsrp, cell.rsrq, dict(cell.extra)["band"], dict(cell.extra)["sinr"]) == (-104, -13, 71, 11)


def test_qeng_gsm_zephyr_vector_with_trailing_empties() -> None:
    cell = qeng(SC + '"NOCONN","GSM",260,03,E182,AEAD,52,32,2,-68,255,255,0,38,38,1,,,,,,,,,,')
    assert (cell.rat, cell.mcc, cell.mnc, cell.area, cell.cell_id) == ("GSM", 260, 3, "E182", "AEAD")
    assert dict(cell.extra) == {"bsic": 52, "arfcn": 32, "band": 2, "rxlev": -68}
    ref = qeng(SC + '"NOCONN","GSM",250,99,DC51,B919,26,50,-,-73,255,255,0,38,38,1,-,-,-,-,-,-,-,'
               '-,-,"-"')
    assert (ref.area, ref.cell_id, dict(ref.extra)["band"]) == ("DC51", "B919", None)


def test_qeng_wcdma() -> None:
    cell = qeng(SC + '"NOCONN","WCDMA",460,01,A6D6,5D1F2E4,10713,245,1,-85,-5,-,-,-,-,-')
    assert (cell.rat, cell.area, cell.cell_id, cell.earfcn, dict(cell.extra)["psc"]) == (
        "WCDMA", "A6D6", "5D1F2E4", 10713, 245)


def test_qeng_search_and_limited_service() -> None:
    assert qeng(SC + '"SEARCH"') == CellInfo(state="SEARCH")
    assert qeng(SC + '"LIMSRV"') == CellInfo(state="LIMSRV")


def test_qeng_missing_signal_marker() -> None:
    cell = qeng(SC + '"NOCONN","LTE","FDD",222,88,243800E,20,3350,7,5,5,3AC9,-32768,-32768,-52,'
                '15,-')
    assert (cell.rsrp, cell.rsrq) == (None, None)


@pytest.mark.parametrize(
    "lines",
    [
        (),
        ('+QENG: "neighbourcell intra","LTE",3350,20,-13,-86,-52,15,-',),
        ('+QENG: "servingcell"',),
        ('+QENG: "servingcell","NOCONN","LTE","FDD",222,88',),
        ('+QENG: "servingcell","NOCONN","LTE","FDD",222,88,ZZZZ,20,3350,7,5,5,3AC9,-86,-13,-52,15,-',),
        ('+QENG: "servingcell","NOCONN","GSM",2x0,03,E182,AEAD,52,32,2,-68',),
        ('+QENG: "servingcell","NO CONN!"',),
        ('+QENG: "servingcell","NOCONN"', '+QENG:"NR5G-NSA",515'),
    ],
)
def test_qeng_malformed_never_echoes_cell_ids(lines: tuple[str, ...]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        qeng(*lines)
    message = str(info.value)
    assert "AT+QENG" in message and "243800E" not in message and "E182" not in message


# -- registration and CFUN -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parse", "line", "expected"),
    [
        (r.parse_creg, '+CREG: 2,1,"00A8","5355E8D",7', r.Registration(1, 2, "00A8", "5355E8D", 7)),  # 4.9
        (r.parse_creg, '+CREG: 1,"2D0D","1A2B3C4",7', r.Registration(1, None, "2D0D", "1A2B3C4", 7)),
        (r.parse_creg, "+CREG: 0,1", r.Registration(1, 0)),
        (r.parse_creg, "+CREG: 5", r.Registration(5)),
        (r.parse_creg, '+CREG: 2,1,"2d0d","1a2b3c4"', r.Registration(1, 2, "2D0D", "1A2B3C4")),
        (r.parse_cereg, '+CEREG: 2,1,"DE10","5A29C0B",7', r.Registration(1, 2, "DE10", "5A29C0B", 7)),
        (r.parse_cereg, '+CEREG: 1,"DE10","5A29C0B",7', r.Registration(1, None, "DE10", "5A29C0B", 7)),
        (r.parse_cereg, "+CEREG:2", r.Registration(2)),
        (r.parse_cgreg, '+CGREG: 2,5,"DE10","5A29C0B",2', r.Registration(5, 2, "DE10", "5A29C0B", 2)),
    ],
)
def test_registration_read_and_urc_forms(parse: Callable[[str], r.Registration], line: str,
                                         expected: r.Registration) -> None:
    assert parse(line) == expected
    assert parse(line).carries_location == (expected.cell_id is not None)


def test_registration_from_response_and_mode() -> None:
    response = through_core(c.creg_read(), b'\r\n+CREG: 2,1,"00A8","5355E8D",7\r\n\r\nOK\r\n')
    assert r.parse_creg(response).cell_id == "5355E8D"
    assert r.parse_registration_mode(response) == 2
    assert r.parse_registration_mode(resp(c.cereg_read(), "+CEREG: 0,1")) == 0
    with pytest.raises(RemoteProtocolError):
        r.parse_registration_mode(resp(c.cereg_read(), '+CEREG: 1,"DE10","5A29C0B",7'))
    with pytest.raises(CommandError):
        r.parse_registration_mode(resp(c.cereg_read(), final=Final("ERROR", None, "ERROR")))


@pytest.mark.parametrize(
    ("parse", "line"),
    [
        (r.parse_creg, '+CEREG: 1,"DE10","5A29C0B",7'),
        (r.parse_creg, "+CREG: "),
        (r.parse_creg, "+CREG: 1,99"),
        (r.parse_creg, "+CREG: 9,1"),
        (r.parse_creg, '+CREG: 1,"2D0Z","1A2B3C4",7'),
        (r.parse_cereg, 'RDY'),
        (r.parse_cereg, '+CEREG: 1,"DE10","5A29C0B",x'),
    ],
)
def test_registration_malformed(parse: Callable[[str], r.Registration], line: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(line)
    assert "5A29C0B" not in str(info.value) and "1A2B3C4" not in str(info.value)


def test_cfun() -> None:
    assert r.parse_cfun(resp(c.cfun_read(), "+CFUN: 1")) == 1
    assert r.parse_cfun(through_core(c.cfun_read(), b"\r\n+CFUN: 4\r\n\r\nOK\r\n")) == 4
    with pytest.raises(RemoteProtocolError):
        r.parse_cfun(resp(c.cfun_read(), "+CFUN: 300"))


def test_split_fields() -> None:
    assert r.split_fields('"a,b",1, 2 ,') == ['"a,b"', "1", "2", ""]
    assert r.unquote('"x"') == "x" and r.unquote('"') == '"'
    with pytest.raises(RemoteProtocolError):
        r.split_fields('"a,b')


# -- properties: arbitrary text gives a value or RemoteProtocolError, nothing else ---------------------------
_PARSERS: list[tuple[Callable[[Response], object], Command, str | None]] = [
    (r.parse_qgps_state, c.qgps_read(), "+QGPS: "),
    (lambda response: r.parse_qgpsloc(response, 0), c.qgpsloc(0), "+QGPSLOC: "),
    (lambda response: r.parse_qgpsloc(response, 1), c.qgpsloc(1), "+QGPSLOC: "),
    (lambda response: r.parse_qgpsloc(response, 2), c.qgpsloc(2), "+QGPSLOC: "),
    (r.parse_qgpscfg, c.qgpscfg_read("x"), "+QGPSCFG: "),
    (r.parse_qgpsgnmea, c.qgpsgnmea("GGA"), "+QGPSGNMEA: "),
    (r.parse_ati, c.ati(), None),
    (r.parse_imei, c.cgsn(), None),
    (r.parse_imsi, c.cimi(), None),
    (r.parse_iccid, c.qccid(), "+QCCID: "),
    (r.parse_cnum, c.cnum(), "+CNUM: "),
    (r.parse_qgmr, c.qgmr(), None),
    (r.parse_cgmm, c.cgmm(), None),
    (r.parse_qeng_servingcell, c.qeng_servingcell(), "+QENG: "),
    (r.parse_creg, c.creg_read(), "+CREG: "),
    (r.parse_cereg, c.cereg_read(), "+CEREG: "),
    (r.parse_registration_mode, c.creg_read(), "+CREG: "),
    (r.parse_cfun, c.cfun_read(), "+CFUN: "),
]
_FIELD = st.one_of(
    st.sampled_from(["", "-", '"', '""', "0", "1", "-32768", "09", "3723.7238N", "12206.1395W", "N", "W",
                     "37.39540", "-122.10232", "190629.0", "031219", '"servingcell"', '"NOCONN"', '"LTE"',
                     '"GSM"', '"WCDMA"', '"NR5G-SA"', '"NR5G-NSA"', '"FDD"', "3AC9", "99999999999", "1e5",
                     "nan"]),
    st.text(max_size=8),
)
_PAYLOAD = st.lists(_FIELD, max_size=28).map(",".join)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_parsers_give_a_value_or_remote_protocol_error(data: st.DataObject) -> None:
    parse, command, prefix = data.draw(st.sampled_from(_PARSERS))
    payloads = data.draw(st.lists(_PAYLOAD, min_size=0, max_size=4))
    lines = tuple((prefix or "") + payload for payload in payloads)
    try:
        parse(resp(command, *lines))
    except RemoteProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(line=st.text(max_size=60))
def test_registration_line_parsers_never_raise_anything_else(line: str) -> None:
    for parse in (r.parse_creg, r.parse_cereg, r.parse_cgreg):
        try:
            parse(line)
        except RemoteProtocolError:
            pass


def test_non_ascii_digits_are_not_numbers() -> None:
    with pytest.raises(RemoteProtocolError):
        r.parse_imei(resp(c.cgsn(), "\u0668\u0666\u0661\u0665\u0663\u0666\u0660\u0663\u0660\u0661\u0669\u0666"
                                    "\u0660\u0660\u0661"))
    with pytest.raises(RemoteProtocolError):
        r.parse_cfun(resp(c.cfun_read(), "+CFUN: \u0661"))
