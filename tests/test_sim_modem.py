"""The simulated module against the fact sheet, bytes exact, with a manual clock (no threads, no sleeps)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from agent.errors import PortUnavailable, UsageError
from agent.nmea.checksum import nmea_checksum
from agent.sim import ManualClock, SimModem
from agent.sim.identity import TrackPoint, luhn_valid
from agent.sim.modem import (
    BOOT_S,
    BOOT_URC_DELAY_S,
    BOOT_URCS,
    MAX_CATCH_UP_S,
    POWER_DOWN_URC_S,
    POWER_OFF_S,
    REGISTER_S,
    RESET_AFTER_S,
)
from agent.sim.nmea_out import qgpsloc_payload


def make(seed: int = 0, ttff: float = 5.0, model: str = "ec25") -> tuple[SimModem, ManualClock]:
    clock = ManualClock()
    return SimModem(model=model, seed=seed, ttff_s=ttff, clock=clock), clock


def send(modem: SimModem, text: str, channel: str = "at") -> bytes:
    modem.write(channel, text.encode() + b"\r")
    return modem.read(channel, 1 << 20)


def quiet(modem: SimModem) -> SimModem:
    send(modem, "ATE0")
    return modem


def info(modem: SimModem, text: str) -> list[str]:
    """Information lines of a response that must end in OK."""
    raw = send(modem, text).decode()
    assert raw.endswith("\r\n\r\nOK\r\n") or raw == "\r\nOK\r\n", raw
    return [line for line in raw.split("\r\n") if line and line != "OK"]


# ------------------------------------------------------------------------------------------ framing and echo


def test_echo_is_on_after_boot_and_bare_at_answers_ok() -> None:
    modem, _ = make()
    assert send(modem, "AT") == b"AT\r\r\nOK\r\n"


def test_ate0_is_itself_echoed_then_echo_stops_on_that_channel_only() -> None:
    modem, _ = make()
    assert send(modem, "ATE0") == b"ATE0\r\r\nOK\r\n"
    assert send(modem, "AT") == b"\r\nOK\r\n"
    assert send(modem, "AT", "at2") == b"AT\r\r\nOK\r\n"
    assert modem.state.echo == {"at": False, "at2": True}
    assert send(modem, "ATE1") == b"\r\nOK\r\n"  # echo was still off when it arrived
    assert send(modem, "AT") == b"AT\r\r\nOK\r\n"


def test_lf_after_cr_is_ignored_and_commands_may_arrive_byte_by_byte() -> None:
    modem = quiet(make()[0])
    for byte in b"AT\r\nAT\r\n":
        modem.write("at", bytes([byte]))
    assert modem.read("at", 1000) == b"\r\nOK\r\n\r\nOK\r\n"


def test_ati_is_three_lines_with_a_blank_line_before_ok() -> None:
    modem = quiet(make()[0])
    assert send(modem, "ATI") == b"\r\nQuectel\r\n\r\nEC25\r\n\r\nRevision: EC25EFAR06A08M4G\r\n\r\nOK\r\n"


@pytest.mark.parametrize("line", ["AT+FOO", "AT+QGPSEND?", "hello", "ATV0", "AT+QGPS"])
def test_unknown_or_malformed_commands_give_error(line: str) -> None:
    modem = quiet(make()[0])
    assert send(modem, line) == b"\r\nERROR\r\n"


@pytest.mark.parametrize(
    ("cmee", "final"),
    [(0, b"ERROR"), (1, b"+CME ERROR: 505"), (2, b"+CME ERROR: Session not active")],
)
def test_cmee_selects_plain_numeric_or_verbose_errors(cmee: int, final: bytes) -> None:
    modem = quiet(make()[0])
    assert send(modem, f"AT+CMEE={cmee}") == b"\r\nOK\r\n"
    assert send(modem, "AT+QGPSEND") == b"\r\n" + final + b"\r\n"
    assert info(modem, "AT+CMEE?") == [f"+CMEE: {cmee}"]


def test_several_commands_on_one_line_share_one_final() -> None:
    modem = quiet(make()[0])
    assert send(modem, "AT+CPIN?;+CSQ") == b"\r\n+CPIN: READY\r\n\r\n+CSQ: 24,99\r\n\r\nOK\r\n"


def test_a_failing_command_stops_the_rest_of_its_line() -> None:
    modem = quiet(make()[0])
    assert send(modem, "AT+QGPSEND;+QGPS=1") == b"\r\n+CME ERROR: 505\r\n"
    assert modem.state.gnss_on is False


def test_spaces_outside_quotes_are_ignored_as_the_module_does() -> None:
    modem = quiet(make()[0])
    send(modem, "AT+QGPS=1")
    assert send(modem, "AT+QGPS LOC?") == b"\r\n+CME ERROR: 516\r\n"  # transcript 4.5


def test_commands_are_recorded_per_channel() -> None:
    modem, _ = make()
    send(modem, "AT+QGPS?")
    send(modem, 'AT+QGPSCFG="autogps",1', "at2")
    assert modem.commands == [("at", "AT+QGPS?"), ("at2", 'AT+QGPSCFG="autogps",1')]


# --------------------------------------------------------------------------------------------- GNSS machine


def test_gnss_state_machine_504_505_516() -> None:
    modem, clock = make(ttff=5)
    quiet(modem)
    assert send(modem, "AT+QGPS?") == b"\r\n+QGPS: 0\r\n\r\nOK\r\n"
    assert send(modem, "AT+QGPSLOC=0") == b"\r\n+CME ERROR: 505\r\n"
    assert send(modem, "AT+QGPSEND") == b"\r\n+CME ERROR: 505\r\n"
    assert send(modem, "AT+QGPS=1") == b"\r\nOK\r\n"
    assert send(modem, "AT+QGPS=1") == b"\r\n+CME ERROR: 504\r\n"
    assert send(modem, "AT+QGPS?") == b"\r\n+QGPS: 1\r\n\r\nOK\r\n"
    assert send(modem, "AT+QGPSLOC=2") == b"\r\n+CME ERROR: 516\r\n"
    clock.advance(4.9)
    assert send(modem, "AT+QGPSLOC=2") == b"\r\n+CME ERROR: 516\r\n"
    clock.advance(0.2)
    assert send(modem, "AT+QGPSLOC=2").startswith(b"\r\n+QGPSLOC: ")
    assert send(modem, "AT+QGPSEND") == b"\r\nOK\r\n"
    assert modem.state.gnss_on is False


def test_qgps_test_form_and_argument_checks() -> None:
    modem = quiet(make()[0])
    assert info(modem, "AT+QGPS=?") == ["+QGPS: (1-4),(1-255),(1-1000),(0-1000),(1-65535)"]
    assert send(modem, "AT+QGPS=0") == b"\r\n+CME ERROR: 501\r\n"
    assert send(modem, "AT+QGPS=1,300") == b"\r\n+CME ERROR: 501\r\n"
    assert send(modem, "AT+QGPS=2") == b"\r\n+CME ERROR: 502\r\n"
    assert send(modem, "AT+QGPS=1,30,50,0,1") == b"\r\nOK\r\n"


def test_qgpsloc_layouts_match_the_bg96_oracle_exactly() -> None:
    # Transcript 4.7: the same fix in modes 0, 1 and 2.
    point = TrackPoint(lat=37 + 23.723831 / 60, lon=-(122 + 6.139526 / 60), altitude_m=16.0, speed_kmh=0.0,
                       course_deg=188 + 18 / 60, hdop=1.0, satellites=9, fix_type=2)
    wall = dt.datetime(2019, 12, 3, 19, 6, 29, tzinfo=dt.UTC).timestamp()
    tail = "1.0,16.0,2,188.18,0.0,0.0,031219,09"
    assert qgpsloc_payload(point, wall, 0) == "190629.0,3723.7238N,12206.1395W," + tail
    assert qgpsloc_payload(point, wall, 1) == "190629.0,3723.723831,N,12206.139526,W," + tail
    assert qgpsloc_payload(point, wall, 2) == "190629.0,37.39540,-122.10232," + tail


def _degrees(field: str, hemi: str) -> float:
    head = 2 if hemi in "NS" else 3
    value = int(field[:head]) + float(field[head:]) / 60
    return -value if hemi in "SW" else value


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_three_qgpsloc_modes_report_the_same_true_position(seed: int) -> None:
    modem, clock = make(seed=seed, ttff=1)
    quiet(modem)
    send(modem, "AT+QGPS=1")
    clock.advance(2)
    mode0 = info(modem, "AT+QGPSLOC=0")[0].removeprefix("+QGPSLOC: ").split(",")
    mode1 = info(modem, "AT+QGPSLOC=1")[0].removeprefix("+QGPSLOC: ").split(",")
    mode2 = info(modem, "AT+QGPSLOC=2")[0].removeprefix("+QGPSLOC: ").split(",")
    assert (len(mode0), len(mode1), len(mode2)) == (11, 13, 11)
    lat0, lon0 = _degrees(mode0[1][:-1], mode0[1][-1]), _degrees(mode0[2][:-1], mode0[2][-1])
    lat1, lon1 = _degrees(mode1[1], mode1[2]), _degrees(mode1[3], mode1[4])
    lat2, lon2 = float(mode2[1]), float(mode2[2])
    truth = modem.true_position()
    assert truth.lat is not None and truth.lon is not None
    for lat, lon in ((lat0, lon0), (lat1, lon1), (lat2, lon2)):
        assert abs(lat - truth.lat) < 2e-5 and abs(lon - truth.lon) < 2e-5
    assert re.fullmatch(r"\d{6}\.\d", mode2[0]) and re.fullmatch(r"\d{6}", mode2[9])
    assert re.fullmatch(r"\d\d", mode2[10]) and re.fullmatch(r"\d{1,3}\.[0-5]\d", mode2[6])
    assert mode2[9] == "010126"  # the manual clock starts on 2026-01-01


def test_qgpsloc_read_form_uses_mode_0_and_test_form_gives_the_template() -> None:
    modem, _clock = make(ttff=0)
    quiet(modem)
    send(modem, "AT+QGPS=1")
    assert info(modem, "AT+QGPSLOC?") == info(modem, "AT+QGPSLOC=0")
    assert info(modem, "AT+QGPSLOC=?")[0].startswith("+QGPSLOC: <UTC>,<latitude>")
    assert send(modem, "AT+QGPSLOC=7") == b"\r\n+CME ERROR: 501\r\n"


def test_qgpsgnmea_needs_nmeasrc_and_gnss() -> None:
    modem, clock = make(ttff=2)
    quiet(modem)
    assert send(modem, 'AT+QGPSGNMEA="GGA"') == b"\r\n+CME ERROR: 505\r\n"
    send(modem, "AT+QGPS=1")
    assert send(modem, 'AT+QGPSGNMEA="GGA"') == b"\r\n+CME ERROR: 507\r\n"
    send(modem, 'AT+QGPSCFG="nmeasrc",1')
    assert send(modem, 'AT+QGPSGNMEA="GGA"') == b"\r\n+QGPSGNMEA: $GPGGA,,,,,,0,,,,,,,,*66\r\n\r\nOK\r\n"
    clock.advance(3)
    lines = info(modem, 'AT+QGPSGNMEA="GSV"')
    assert len(lines) == 3 and all(line.startswith("+QGPSGNMEA: $GPGSV,3,") for line in lines)
    assert send(modem, 'AT+QGPSGNMEA="XYZ"') == b"\r\n+CME ERROR: 501\r\n"


# ------------------------------------------------------------------------------------------------ QGPSCFG


@pytest.mark.parametrize(
    ("key", "default"),
    [("outport", '"usbnmea"'), ("nmeasrc", "0"), ("gpsnmeatype", "31"), ("glonassnmeatype", "0"),
     ("galileonmeatype", "0"), ("beidounmeatype", "0"), ("gsvextnmeatype", "0"), ("gnssconfig", "1"),
     ("odpcontrol", "0"), ("dpoenable", "1"), ("plane", "0"), ("autogps", "0"), ("fixfreq", "1")],
)
def test_qgpscfg_query_gives_the_default(key: str, default: str) -> None:
    modem = quiet(make()[0])
    assert send(modem, f'AT+QGPSCFG="{key}"') == f'\r\n+QGPSCFG: "{key}",{default}\r\n\r\nOK\r\n'.encode()


@pytest.mark.parametrize(
    "setting",
    ['"gpsnmeatype",32', '"glonassnmeatype",8', '"gnssconfig",7', '"outport","uart"', '"autogps",2',
     '"fixfreq",3', '"plane",-1', '"nosuchkey",1', '"autogps",1,2', '"nmeasrc",x'],
)
def test_qgpscfg_rejects_values_out_of_range_with_501(setting: str) -> None:
    modem = quiet(make()[0])
    before = modem.state.cfg
    assert send(modem, f"AT+QGPSCFG={setting}") == b"\r\n+CME ERROR: 501\r\n"
    assert modem.state.cfg == before


def test_qgpscfg_set_then_query_and_the_list_form() -> None:
    modem = quiet(make()[0])
    assert send(modem, 'AT+QGPSCFG="outport","none"') == b"\r\nOK\r\n"
    assert info(modem, 'AT+QGPSCFG="outport"') == ['+QGPSCFG: "outport","none"']
    lines = info(modem, "AT+QGPSCFG=?")
    assert '+QGPSCFG: "outport",("none","usbnmea","uartdebug")' in lines
    assert '+QGPSCFG: "gpsnmeatype",(0-31)' in lines and '+QGPSCFG: "autogps",(0,1)' in lines
    assert send(modem, "AT+QGPSCFG?") == b"\r\n+CME ERROR: 505\r\n"  # transcript 4.4


def test_qgpscfg_survives_reboot_and_autogps_starts_gnss_at_boot() -> None:
    modem, clock = make()
    quiet(modem)
    send(modem, 'AT+QGPSCFG="autogps",1')
    send(modem, 'AT+QGPSCFG="gnssconfig",4')
    send(modem, "AT+QGPS=1")
    modem.reboot()
    assert modem.state.gnss_on is False
    clock.advance(BOOT_S)
    assert modem.state.cfg["gnssconfig"] == 4 and modem.state.cfg["autogps"] == 1
    assert modem.state.gnss_on is True
    modem.read("at", 1 << 16)
    assert send(modem, "AT+QGPS=1") == b"AT+QGPS=1\r\r\n+CME ERROR: 504\r\n"


def test_without_autogps_gnss_is_off_after_reboot() -> None:
    modem, clock = make()
    send(modem, "AT+QGPS=1")
    modem.reboot()
    clock.advance(BOOT_S)
    assert modem.state.gnss_on is False


# ------------------------------------------------------------------------------------------------ identity


def test_identity_is_plausible_and_deterministic() -> None:
    modem = quiet(make(seed=5)[0])
    imei = info(modem, "AT+CGSN")[0]
    assert info(modem, "AT+GSN") == [imei]
    assert len(imei) == 15 and luhn_valid(imei) and imei.startswith("86153603")
    imsi = info(modem, "AT+CIMI")[0]
    assert len(imsi) == 15 and imsi.isdigit()
    iccid = info(modem, "AT+QCCID")[0].removeprefix("+QCCID: ")
    assert len(iccid) == 20 and iccid.startswith("89") and luhn_valid(iccid)
    assert re.fullmatch(r'\+CNUM: ,"\+\d{11,12}",145', info(modem, "AT+CNUM")[0])
    again = quiet(make(seed=5)[0])
    assert info(again, "AT+CGSN")[0] == imei and info(again, "AT+CIMI")[0] == imsi
    other = quiet(make(seed=6)[0])
    assert info(other, "AT+CGSN")[0] != imei


@pytest.mark.parametrize(
    ("model", "name", "revision"),
    [
        ("ec25", "EC25", "EC25EFAR06A08M4G"),
        ("EG25-G", "EG25", "EG25GGBR07A08M2G"),
        ("bg96", "BG96", "BG96MAR02A07M1G"),
    ],
)
def test_model_strings(model: str, name: str, revision: str) -> None:
    modem = quiet(make(model=model)[0])
    assert info(modem, "AT+CGMI") == ["Quectel"] == info(modem, "AT+GMI")
    assert info(modem, "AT+CGMM") == [name] == info(modem, "AT+GMM")
    assert info(modem, "AT+CGMR") == [revision] == info(modem, "AT+GMR")
    full = info(modem, "AT+QGMR")
    assert full[0].startswith(revision + "_") and info(modem, "AT+QGMR?") == full


def test_unknown_model_is_a_usage_error_and_unknown_channel_a_value_error() -> None:
    with pytest.raises(UsageError, match="unknown simulated modem model"):
        SimModem(model="sim900")
    modem, _ = make()
    with pytest.raises(ValueError, match="unknown channel"):
        modem.read("usb0", 10)
    with pytest.raises(ValueError, match="ttff_s"):
        SimModem(ttff_s=float("nan"))


# ------------------------------------------------------------------------------------------------- network


def test_creg_and_cereg_forms_with_location_when_n_is_2() -> None:
    modem = quiet(make()[0])
    ident = modem.identity
    assert info(modem, "AT+CREG?") == ["+CREG: 0,1"]
    send(modem, "AT+CREG=2")
    send(modem, "AT+CEREG=2")
    assert info(modem, "AT+CREG?") == [f'+CREG: 2,1,"{ident.lac}","{ident.cell_id}",7']
    assert info(modem, "AT+CEREG?") == [f'+CEREG: 2,1,"{ident.tac}","{ident.cell_id}",7']
    assert send(modem, "AT+CREG=3") == b"\r\n+CME ERROR: 50\r\n"


def test_registration_urcs_after_cfun_cycle_and_qeng_search_before() -> None:
    modem, clock = make()
    quiet(modem)
    send(modem, "AT+CEREG=2")
    send(modem, "AT+CREG=1")
    assert send(modem, "AT+CFUN=4") == b"\r\n+CREG: 0\r\n\r\n+CEREG: 0\r\n\r\nOK\r\n"
    assert info(modem, "AT+CFUN?") == ["+CFUN: 4"]
    assert info(modem, 'AT+QENG="servingcell"') == ['+QENG: "servingcell","SEARCH"']
    send(modem, "AT+CFUN=1")
    clock.advance(REGISTER_S)
    ident = modem.identity
    urcs = f'\r\n+CREG: 1\r\n\r\n+CEREG: 1,"{ident.tac}","{ident.cell_id}",7\r\n'
    assert modem.read("at", 1000) == urcs.encode()
    line = info(modem, 'AT+QENG="servingcell"')[0]
    fields = line.removeprefix("+QENG: ").split(",")
    assert fields[:4] == ['"servingcell"', '"NOCONN"', '"LTE"', '"FDD"'] and len(fields) == 20
    assert fields[6] == ident.cell_id and fields[12] == ident.tac


# ---------------------------------------------------------------------------------------- reboot and power


def test_cfun_1_1_answers_ok_then_drops_the_ports_then_boots_with_urcs() -> None:
    modem, clock = make()
    quiet(modem)
    send(modem, "AT+QGPS=1")
    assert send(modem, "AT+CFUN=1,1") == b"\r\nOK\r\n"
    generation = modem.link_generation("at")
    clock.advance(RESET_AFTER_S)
    assert not modem.is_connected("at") and not modem.is_connected("nmea")
    with pytest.raises(PortUnavailable):
        modem.read("at", 10)
    with pytest.raises(PortUnavailable):
        modem.write("at", b"AT\r")
    assert modem.next_due("at") == pytest.approx(clock.monotonic() + BOOT_S)
    clock.advance(BOOT_S)
    assert modem.is_connected("at") and modem.link_generation("at") == generation + 1
    assert modem.read("at", 1000) == b""  # the ports are back before the firmware prints RDY
    clock.advance(BOOT_URC_DELAY_S)
    burst = b"".join(b"\r\n" + urc.encode() + b"\r\n" for urc in BOOT_URCS)
    assert burst.startswith(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n")
    assert modem.read("at", 1000) == burst
    assert modem.read("at2", 1000) == burst
    assert send(modem, "AT") == b"AT\r\r\nOK\r\n"  # echo is back on
    assert modem.state.gnss_on is False and modem.state.cmee == 1


def test_reboot_without_port_drop_keeps_the_link_and_ignores_input_while_booting() -> None:
    modem, clock = make()
    modem.reboot(drop_ports=False)
    assert modem.is_connected("at") and modem.state.booted is False
    modem.write("at", b"AT\r")
    assert modem.read("at", 100) == b""
    clock.advance(BOOT_S + BOOT_URC_DELAY_S)
    assert modem.read("at", 1000).startswith(b"\r\nRDY\r\n")
    assert modem.link_generation("at") == 0


def test_qpowd_ok_then_powered_down_then_off_until_power_on() -> None:
    modem, clock = make()
    quiet(modem)
    assert send(modem, "AT+QPOWD=1") == b"\r\nOK\r\n"
    clock.advance(POWER_DOWN_URC_S)
    assert modem.read("at", 100) == b"\r\nPOWERED DOWN\r\n"
    clock.advance(POWER_OFF_S - POWER_DOWN_URC_S)
    assert modem.state.powered is False and not modem.is_connected("at")
    clock.advance(60)
    assert not modem.is_connected("at")
    modem.power_on()
    clock.advance(BOOT_S + BOOT_URC_DELAY_S)
    assert modem.read("at", 1000).startswith(b"\r\nRDY\r\n")


def test_unplug_and_replug_one_channel_or_all() -> None:
    modem, _ = make()
    modem.unplug("nmea")
    assert modem.is_connected("at") and not modem.is_connected("nmea")
    modem.unplug()
    with pytest.raises(PortUnavailable, match="not connected"):
        modem.write("at", b"AT\r")
    modem.replug()
    assert all(modem.state.connected.values())
    assert send(modem, "AT") == b"AT\r\r\nOK\r\n"


# ------------------------------------------------------------------------------------------------------ NMEA


def _sentences(data: bytes) -> list[str]:
    return [line for line in data.decode("ascii").split("\r\n") if line]


def _checksum_ok(sentence: str) -> bool:
    body, _, given = sentence[1:].partition("*")
    return f"{nmea_checksum(body):02X}" == given


def test_nmea_is_silent_while_gnss_is_off() -> None:
    modem, clock = make()
    clock.advance(10)
    assert modem.read("nmea", 10000) == b"" and modem.next_due("nmea") is None


def test_nmea_bursts_at_1_hz_empty_before_the_fix_then_a_fix() -> None:
    modem, clock = make(ttff=3)
    send(modem, "AT+QGPS=1")
    assert modem.next_due("nmea") == pytest.approx(clock.monotonic() + 1.0)
    clock.advance(1.0)
    first = _sentences(modem.read("nmea", 10000))
    assert first == ["$GPGGA,,,,,,0,,,,,,,,*66", "$GPVTG,,T,,M,,N,,K,N*2C", "$GPRMC,,V,,,,,,,,,,N*53",
                     "$GPGSA,A,1,,,,,,,,,,,,,,,,*32"]
    clock.advance(0.5)
    assert modem.read("nmea", 10000) == b""
    clock.advance(2.5)
    data = _sentences(modem.read("nmea", 10000))
    kinds = [sentence[1:6] for sentence in data]
    assert kinds.count("GPGGA") == 3 and "GPGSV" in kinds  # bursts at 2 s (no fix), 3 s and 4 s
    fixed = [s for s in data if s.startswith("$GPRMC") and ",A," in s]
    assert len(fixed) == 2 and fixed[0].startswith("$GPRMC,000003.00,A,")
    assert all(_checksum_ok(sentence) for sentence in data)


def test_outport_none_silences_nmea_and_gpsnmeatype_selects_sentences() -> None:
    modem, clock = make(ttff=0)
    send(modem, "AT+QGPS=1")
    send(modem, 'AT+QGPSCFG="outport","none"')
    clock.advance(3)
    assert modem.read("nmea", 10000) == b"" and modem.next_due("nmea") is None
    send(modem, 'AT+QGPSCFG="outport","usbnmea"')
    send(modem, 'AT+QGPSCFG="gpsnmeatype",2')
    clock.advance(2)
    data = _sentences(modem.read("nmea", 10000))
    assert len(data) == 2 and all(sentence.startswith("$GPRMC,") for sentence in data)


def test_fixfreq_raises_the_burst_rate() -> None:
    modem, clock = make(ttff=0)
    send(modem, 'AT+QGPSCFG="fixfreq",5')
    send(modem, 'AT+QGPSCFG="gpsnmeatype",1')
    send(modem, "AT+QGPS=1")
    clock.advance(1.0)
    assert len(_sentences(modem.read("nmea", 10000))) == 5


def test_the_track_is_a_plausible_slow_walk() -> None:
    modem, clock = make(seed=2)
    start = modem.true_position()
    assert start.lat is not None and start.lon is not None
    for _ in range(120):
        clock.advance(5)
        here = modem.true_position()
        assert here.lat is not None and here.lon is not None
        assert abs(here.lat - start.lat) < 0.006 and abs(here.lon - start.lon) < 0.008
        assert here.speed_kmh is not None and 3.0 < here.speed_kmh < 6.0
    assert here.lat != start.lat


def test_the_nmea_writer_never_drops_data_but_bounds_catch_up_after_a_long_pause() -> None:
    modem, clock = make(ttff=0)
    send(modem, 'AT+QGPSCFG="gpsnmeatype",1')  # GGA only: one sentence per 1 s burst
    send(modem, "AT+QGPS=1")

    def gga_seconds(data: bytes) -> list[dt.datetime]:
        sentences = _sentences(data)
        assert all(sentence.startswith("$GPGGA,") and _checksum_ok(sentence) for sentence in sentences)
        assert all(sentence.split(",")[6] == "1" for sentence in sentences)  # ttff 0: every burst has a fix
        day = dt.datetime.fromtimestamp(clock.wall(), dt.UTC).date()
        return [dt.datetime.combine(day, dt.datetime.strptime(s.split(",")[1], "%H%M%S.%f").time(), dt.UTC)
                for s in sentences]

    clock.advance(3600)
    now = dt.datetime.fromtimestamp(clock.wall(), dt.UTC)
    caught_up = gga_seconds(modem.read("nmea", 1 << 20))
    # The last MAX_CATCH_UP_S seconds, one burst per second without a gap, up to the present; nothing older.
    assert len(caught_up) in (int(MAX_CATCH_UP_S), int(MAX_CATCH_UP_S) + 1)
    assert caught_up[-1] == now
    assert caught_up == [now - dt.timedelta(seconds=len(caught_up) - 1 - i) for i in range(len(caught_up))]
    # and after the catch-up, every burst arrives
    following = []
    for _ in range(5):
        clock.advance(1)
        following += gga_seconds(modem.read("nmea", 1 << 20))
    assert following == [now + dt.timedelta(seconds=i) for i in range(1, 6)]


# ---------------------------------------------------------------------------------------------------- faults


def test_chunking_splits_reads_but_not_the_byte_stream() -> None:
    modem = quiet(make()[0])
    modem.faults.chunk_max = 3
    modem.write("at", b"ATI\r")
    pieces = []
    while piece := modem.read("at", 100):
        assert 1 <= len(piece) <= 3
        pieces.append(piece)
    assert b"".join(pieces) == b"\r\nQuectel\r\n\r\nEC25\r\n\r\nRevision: EC25EFAR06A08M4G\r\n\r\nOK\r\n"


def test_coalescing_releases_output_only_at_period_boundaries() -> None:
    modem, clock = make()
    quiet(modem)
    modem.faults.coalesce_s = 2.0
    clock.advance(0.1)  # off the 2 s grid
    modem.write("at", b"AT\r")
    clock.advance(0.5)
    modem.write("at", b"AT\r")
    assert modem.read("at", 100) == b""
    assert modem.next_due("at") == pytest.approx(1002.0)
    clock.advance(1.4)
    assert modem.read("at", 100) == b"\r\nOK\r\n\r\nOK\r\n"


def test_garbage_is_spliced_before_responses_and_sentences() -> None:
    modem, clock = make(ttff=0)
    quiet(modem)
    modem.faults.garbage_at = 1.0
    raw = send(modem, "AT")
    assert raw.endswith(b"\r\nOK\r\n") and 1 <= len(raw) - 6 <= 8 and all(b >= 0x80 for b in raw[:-6])
    modem.faults.garbage_nmea = 1.0
    send(modem, "AT+QGPS=1")
    clock.advance(1)
    data = modem.read("nmea", 10000)
    assert data.count(b"$GP") >= 4 and not data.startswith(b"$")


def test_dropped_response_still_echoes_and_the_command_still_acts() -> None:
    modem, _clock = make()
    modem.faults.drop("+QGPS", times=1)
    assert send(modem, "AT+QGPS=1") == b"AT+QGPS=1\r"
    assert modem.state.gnss_on is True
    assert send(modem, "AT+QGPS?") == b"AT+QGPS?\r\r\n+QGPS: 1\r\n\r\nOK\r\n"


def test_delayed_response_arrives_after_the_delay() -> None:
    modem, clock = make()
    quiet(modem)
    modem.faults.delay("+QGPS?", 2.5)
    assert send(modem, "AT+QGPS?") == b""
    assert modem.next_due("at") == pytest.approx(clock.monotonic() + 2.5)
    clock.advance(2.4)
    assert modem.read("at", 100) == b""
    clock.advance(0.1)
    assert modem.read("at", 100) == b"\r\n+QGPS: 0\r\n\r\nOK\r\n"


def test_urc_inside_a_response_sits_between_info_and_final() -> None:
    modem = quiet(make()[0])
    modem.faults.urc_inside("+QGPS?", '+QIND: "csq",24,99')
    assert send(modem, "AT+QGPS?") == b'\r\n+QGPS: 0\r\n\r\n+QIND: "csq",24,99\r\n\r\nOK\r\n'
    assert send(modem, "AT+QGPS?") == b"\r\n+QGPS: 0\r\n\r\nOK\r\n"


def test_busy_errors_n_times_then_the_command_works() -> None:
    modem = quiet(make()[0])
    modem.faults.busy("AT+QGPS=1", 503, times=2)
    assert send(modem, "AT+QGPS=1") == b"\r\n+CME ERROR: 503\r\n"
    assert send(modem, "AT+QGPS=1") == b"\r\n+CME ERROR: 503\r\n"
    assert modem.state.gnss_on is False
    assert send(modem, "AT+QGPS=1") == b"\r\nOK\r\n"


def test_stale_fix_right_after_power_up() -> None:
    modem, clock = make(ttff=5)
    quiet(modem)
    modem.faults.stale_fix = True
    send(modem, "AT+QGPS=1")
    stale = info(modem, "AT+QGPSLOC=2")[0].split(",")
    assert stale[9] != "010126"  # from days ago
    clock.advance(5)
    fresh = info(modem, "AT+QGPSLOC=2")[0].split(",")
    assert fresh[9] == "010126"


def test_hdop_outlier_reports_the_invalid_500() -> None:
    modem, _ = make(ttff=0)
    quiet(modem)
    send(modem, "AT+QGPS=1")
    modem.faults.hdop_outlier = 1.0
    assert info(modem, "AT+QGPSLOC=2")[0].split(",")[3] == "500.0"
    modem.faults.clear()
    assert info(modem, "AT+QGPSLOC=2")[0].split(",")[3] != "500.0"


def test_a_replaced_or_missing_final_result() -> None:
    modem = quiet(make()[0])
    modem.faults.final("+CPIN", "")
    assert send(modem, "AT+CPIN?") == b"\r\n+CPIN: READY\r\n"
    modem.faults.final("+CSQ", "COMMAND NOT SUPPORT")
    assert send(modem, "AT+CSQ") == b"\r\n+CSQ: 24,99\r\n\r\nCOMMAND NOT SUPPORT\r\n"
    assert send(modem, "AT+CSQ") == b"\r\n+CSQ: 24,99\r\n\r\nOK\r\n"


def test_shuffled_lines_of_a_concatenated_command_keep_every_line() -> None:
    modem = quiet(make(seed=3)[0])
    plain = info(modem, "AT+CPIN?;+CSQ;+CREG?;+CFUN?;+QGPS?")
    modem.faults.shuffle_lines = True
    orders = {tuple(info(modem, "AT+CPIN?;+CSQ;+CREG?;+CFUN?;+QGPS?")) for _ in range(8)}
    assert all(sorted(order) == sorted(plain) for order in orders) and len(orders) > 1


def test_fault_rules_need_at_least_one_time() -> None:
    modem, _ = make()
    with pytest.raises(ValueError, match="times"):
        modem.faults.busy("+QGPS", 503, times=0)


# -------------------------------------------------------------------------------------------- determinism


def _script(seed: int) -> bytes:
    modem, clock = make(seed=seed, ttff=2)
    modem.faults.chunk_max = 5
    modem.faults.garbage_nmea = 0.3
    out = bytearray()
    for line in ("ATI", "AT+CGSN", "AT+QGPS=1", "AT+QGPSLOC=0", 'AT+QENG="servingcell"'):
        modem.write("at", line.encode() + b"\r")
        clock.advance(0.7)
        while piece := modem.read("at", 64):
            out += piece
        out += modem.read("nmea", 1 << 16)
    clock.advance(4)
    out += modem.read("nmea", 1 << 16)
    return bytes(out)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    assert _script(11) == _script(11)
    assert _script(11) != _script(12)


def test_manual_clock_refuses_to_go_backwards() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError):
        clock.advance(-1)
