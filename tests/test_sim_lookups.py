"""The lookups a program can ask the simulated module for (Wi-Fi scan, cell lookup), ``AT+QAGPS``, and the
ASR model that has them all (EC200U): what answers at once, what arrives later as URCs, and on which ports."""

from __future__ import annotations

import re

import pytest

from agent.sim import ManualClock, SimModem
from agent.sim.identity import luhn_valid
from agent.sim.lookups import LBS_S, WIFI_SCAN_S
from tests.test_sim_profiles import QUALCOMM, lines, make, reboot, registration_answers, send

_BSSID = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def scan_urcs(modem: SimModem) -> list[str]:
    return [f'+QWIFISCAN: (-,-,{ap.rssi},"{ap.bssid}",{ap.channel})' for ap in modem.wifi_access_points]


def urcs(modem: SimModem, channel: str = "at") -> list[str]:
    return [line for line in modem.read(channel, 1 << 20).decode().split("\r\n") if line]


# -- Wi-Fi scan ----------------------------------------------------------------------------------------------

def test_a_scan_answers_ok_at_once_and_its_results_reach_both_ports_after_the_scan_time() -> None:
    modem, clock = make("ec200u")
    assert lines(modem, "AT+QWIFISCAN=?") == ["+QWIFISCAN: (4000-255000),(1-3),(4-10),(1-255),(0,1)", "OK"]
    assert lines(modem, "AT+QWIFISCAN") == ["OK"]
    assert modem.state.wifi_scans == 1
    clock.advance(WIFI_SCAN_S - 0.1)
    assert urcs(modem) == [] and urcs(modem, "at2") == []
    clock.advance(0.1)
    expected = scan_urcs(modem)
    assert 3 <= len(expected) <= 6
    assert urcs(modem) == expected and urcs(modem, "at2") == expected
    clock.advance(10.0)
    assert urcs(modem) == []  # one result set per scan


def test_the_access_points_are_the_seeds_and_look_like_made_up_bssids() -> None:
    first = SimModem("ec200u", seed=3, clock=ManualClock()).wifi_access_points
    assert first == SimModem("ec200u", seed=3, clock=ManualClock()).wifi_access_points
    assert first == SimModem("ec25", seed=3, clock=ManualClock()).wifi_access_points  # the place's, not the model's
    sets = {SimModem("ec200u", seed=seed, clock=ManualClock()).wifi_access_points for seed in range(8)}
    assert len(sets) == 8
    for points in sets:
        bssids = [point.bssid for point in points]
        assert len(set(bssids)) == len(bssids) and 3 <= len(bssids) <= 6
        assert all(_BSSID.match(bssid) and int(bssid[:2], 16) & 0x03 == 0x02 for bssid in bssids)
        assert all(-90 <= point.rssi <= -30 and 1 <= point.channel <= 13 for point in points)
        assert [point.rssi for point in points] == sorted((point.rssi for point in points), reverse=True)


def test_the_scans_max_bssid_argument_limits_the_results() -> None:
    seed = next(seed for seed in range(100)
                if len(SimModem("ec200u", seed=seed, clock=ManualClock()).wifi_access_points) > 4)
    clock = ManualClock()
    modem = SimModem("ec200u", seed=seed, ttff_s=1.0, clock=clock)
    send(modem, "ATE0")
    assert lines(modem, "AT+QWIFISCAN=4000,1,4,10,0") == ["OK"]
    clock.advance(WIFI_SCAN_S)
    assert urcs(modem) == scan_urcs(modem)[:4]
    assert lines(modem, "AT+QWIFISCAN=12000") == ["OK"]  # the other arguments keep their defaults
    clock.advance(WIFI_SCAN_S)
    assert urcs(modem) == scan_urcs(modem)
    assert modem.state.wifi_scans == 2


@pytest.mark.parametrize("line", [
    "AT+QWIFISCAN=3999", "AT+QWIFISCAN=255001", "AT+QWIFISCAN=4000,0", "AT+QWIFISCAN=4000,4",
    "AT+QWIFISCAN=4000,1,3", "AT+QWIFISCAN=4000,1,11", "AT+QWIFISCAN=4000,1,4,0", "AT+QWIFISCAN=4000,1,4,256",
    "AT+QWIFISCAN=4000,1,4,10,2", "AT+QWIFISCAN=4000,1,4,10,0,1", "AT+QWIFISCAN=abc", "AT+QWIFISCAN=",
    "AT+QWIFISCAN?",
])
def test_a_bad_scan_request_is_501_and_scans_nothing(line: str) -> None:
    modem, clock = make("ec200u")
    assert lines(modem, line) == ["+CME ERROR: 501"]
    clock.advance(WIFI_SCAN_S * 2)
    assert urcs(modem) == [] and modem.state.wifi_scans == 0


def test_a_reset_loses_a_pending_scans_results_but_not_its_count() -> None:
    modem, clock = make("ec200u")
    assert lines(modem, "AT+QWIFISCAN;+CFUN=1,1") == ["OK"]
    clock.advance(10.0)
    assert not any(line.startswith("+QWIFISCAN") for line in urcs(modem))
    assert modem.state.wifi_scans == 1


@pytest.mark.parametrize("model", QUALCOMM)
def test_qualcomm_models_have_no_wifi_scan(model: str) -> None:
    modem, clock = make(model)
    assert lines(modem, "AT+QWIFISCAN") == ["ERROR"]
    clock.advance(WIFI_SCAN_S)
    assert urcs(modem) == [] and modem.state.wifi_scans == 0


# -- cell lookup ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["ec200u", "eg25"])
def test_a_cell_lookup_reports_the_true_position_a_second_later_on_both_ports(model: str) -> None:
    modem, clock = make(model)
    assert lines(modem, "AT+QLBS") == ["OK"]
    assert modem.state.lbs_lookups == 1
    clock.advance(LBS_S / 2)
    assert urcs(modem) == []
    clock.advance(LBS_S / 2)
    truth = modem.true_position()
    assert truth.lat is not None and truth.lon is not None
    expected = [f"+QLBS: 0,{truth.lat:.6f},{truth.lon:.6f},550"]
    assert abs(truth.lat - modem.place.lat) < 0.01  # latitude first, the device's own place
    assert urcs(modem) == expected and urcs(modem, "at2") == expected


def test_a_cell_lookup_without_the_network_fails_in_its_urc() -> None:
    modem, clock = make("ec200u")
    assert lines(modem, "AT+CFUN=4;+QLBS") == ["OK"]
    clock.advance(LBS_S)
    assert urcs(modem) == ["+QLBS: 1"]
    assert modem.state.lbs_lookups == 1


def test_the_lookup_server_settings_read_back_and_refuse_what_they_cannot_hold() -> None:
    modem, _ = make("eg25")
    assert lines(modem, "AT+QLBSCFG=?") == ['+QLBSCFG: "token",<token>', '+QLBSCFG: "server",<server>', "OK"]
    assert lines(modem, 'AT+QLBSCFG="token"') == ['+QLBSCFG: "token",""', "OK"]
    assert lines(modem, 'AT+QLBSCFG="server"') == ['+QLBSCFG: "server","www.queclocator.com"', "OK"]
    assert lines(modem, 'AT+QLBSCFG="token","0123456789ABCDEF"') == ["OK"]
    assert lines(modem, 'AT+QLBSCFG="server","lbs.example.net"') == ["OK"]
    assert lines(modem, 'AT+QLBSCFG="token"') == ['+QLBSCFG: "token","0123456789ABCDEF"', "OK"]
    assert lines(modem, 'AT+QLBSCFG="server"') == ['+QLBSCFG: "server","lbs.example.net"', "OK"]
    for line in ('AT+QLBSCFG="contextid",1', 'AT+QLBSCFG="token","' + "t" * 65 + '"', "AT+QLBSCFG?",
                 'AT+QLBSCFG="token","a","b"', "AT+QLBS=1", "AT+QLBS?"):
        assert lines(modem, line) == ["+CME ERROR: 501"], line
    assert modem.state.lbs_lookups == 0


@pytest.mark.parametrize("model", ["bg95", "bg96", "ec25", "rm500q"])
def test_only_the_eg25_and_the_ec200u_look_their_cell_up(model: str) -> None:
    modem, clock = make(model)
    for line in ("AT+QLBSCFG=?", 'AT+QLBSCFG="token"', "AT+QLBS", "AT+QCELLLOC=?", "AT+QCELLLOC"):
        assert lines(modem, line) == ["ERROR"], line
    clock.advance(LBS_S)
    assert urcs(modem) == [] and modem.state.lbs_lookups == 0


# -- the ASR model -------------------------------------------------------------------------------------------

def test_qagps_reads_sets_refuses_and_survives_a_reboot() -> None:
    modem, clock = make("ec200u")
    assert lines(modem, "AT+QAGPS?") == ["+QAGPS: 1", "OK"] and modem.state.agps == 1
    assert lines(modem, "AT+QAGPS=?") == ["+QAGPS: (0,1)", "OK"]
    for line in ("AT+QAGPS=2", "AT+QAGPS=", "AT+QAGPS=0,1", "AT+QAGPS"):
        assert lines(modem, line) == ["+CME ERROR: 501"], line
    assert lines(modem, "AT+QAGPS=0") == ["OK"]
    reboot(modem, clock)
    assert lines(modem, "AT+QAGPS?") == ["+QAGPS: 0", "OK"] and modem.state.agps == 0
    assert lines(modem, "AT+QAGPS=1") == ["OK"] and modem.state.agps == 1


def test_the_ec200u_says_who_it_is() -> None:
    modem, _ = make("ec200u-cn")
    assert lines(modem, "ATI") == ["Quectel", "EC200U", "Revision: EC200UCNAAR03A03M08", "OK"]
    assert lines(modem, "AT+QGMR") == ["EC200UCNAAR03A03M08_01.200.01.200", "OK"]
    imei = lines(modem, "AT+GSN")[0]
    assert imei.startswith("86946505") and luhn_valid(imei)
    registration_answers(modem)


def test_the_ec200u_lacks_the_qualcomm_paths_and_keys() -> None:
    modem, _ = make("ec200u")
    for line in ("AT+QGPSXTRA?", "AT+QGPSXTRA=1", "AT+QGPSSUPLURL?", 'AT+QGPSSUPLURL="supl.example.net"'):
        assert lines(modem, line) == ["ERROR"], line
    for key in ("plane", "suplver", "agpsposmode", "lbsapn", "agnssprotocol", "odpcontrol", "dpoenable"):
        assert lines(modem, f'AT+QGPSCFG="{key}"') == ["+CME ERROR: 501"], key
        assert lines(modem, f'AT+QGPSCFG="{key}",0') == ["+CME ERROR: 501"], key
        assert key not in modem.state.cfg


def test_the_ec200u_lists_the_asr_keys_with_their_defaults() -> None:
    modem, _ = make("ec200u")
    assert lines(modem, "AT+QGPSCFG=?") == [
        '+QGPSCFG: "outport",("none","usbnmea","uartnmea")', '+QGPSCFG: "nmeasrc",(0,1)',
        '+QGPSCFG: "gpsnmeatype",(0-63)', '+QGPSCFG: "gnssconfig",(0-8)', '+QGPSCFG: "autogps",(0,1)',
        '+QGPSCFG: "apflash",(0,1)', '+QGPSCFG: "fixfreq",(1,2,5,10)', "OK",
    ]
    assert modem.state.cfg == {"outport": "usbnmea", "nmeasrc": 0, "gpsnmeatype": 63, "gnssconfig": 1,
                               "autogps": 0, "apflash": 1, "fixfreq": 1}
    assert lines(modem, 'AT+QGPSCFG="gnssconfig",8') == ["OK"]
    assert lines(modem, 'AT+QGPSCFG="gnssconfig",9') == ["+CME ERROR: 501"]
    assert lines(modem, 'AT+QGPSCFG="outport","uartnmea"') == ["OK"]
    assert lines(modem, 'AT+QGPSCFG="outport","uartdebug"') == ["+CME ERROR: 501"]


def test_the_ec200u_turns_gnss_off_with_qgps_0_as_well_as_qgpsend() -> None:
    modem, clock = make("ec200u")
    assert lines(modem, "AT+QGPS=1") == ["OK"] and lines(modem, "AT+QGPS?") == ["+QGPS: 1", "OK"]
    clock.advance(2.0)
    assert b"$GPRMC" in modem.read("nmea", 1 << 20)
    assert lines(modem, "AT+QGPS=0") == ["OK"] and not modem.state.gnss_on
    assert lines(modem, "AT+QGPS=0") == ["+CME ERROR: 505"]
    assert lines(modem, "AT+QGPS=1") == ["OK"] and lines(modem, "AT+QGPSEND") == ["OK"]
    assert lines(modem, "AT+QGPS=0,30") == ["+CME ERROR: 501"]


def test_a_qualcomm_model_refuses_qgps_0() -> None:
    modem, _ = make("ec25")
    assert lines(modem, "AT+QGPS=1") == ["OK"]
    assert lines(modem, "AT+QGPS=0") == ["+CME ERROR: 501"] and modem.state.gnss_on
