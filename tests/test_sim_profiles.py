"""Each simulated model profile: which location paths it has, which commands answer, and with which errors."""

from __future__ import annotations

import pytest

from agent.sim import ManualClock, SimModem
from agent.sim.power import BOOT_S, BOOT_URC_DELAY_S, REGISTER_S, RESET_AFTER_S
from agent.sim.profiles import PROFILES

QUALCOMM = ("bg95", "bg96", "ec25", "eg25", "rm500q")


def make(model: str) -> tuple[SimModem, ManualClock]:
    clock = ManualClock()
    modem = SimModem(model=model, seed=1, ttff_s=1.0, clock=clock)
    send(modem, "ATE0")
    return modem, clock


def send(modem: SimModem, text: str, channel: str = "at") -> str:
    modem.write(channel, text.encode() + b"\r")
    return modem.read(channel, 1 << 20).decode()


def lines(modem: SimModem, text: str) -> list[str]:
    return [line for line in send(modem, text).split("\r\n") if line]


def reboot(modem: SimModem, clock: ManualClock) -> None:
    """``AT+CFUN=1,1``, through boot and registration; the boot URCs are read away and echo is off again."""
    assert lines(modem, "AT+CFUN=1,1") == ["OK"]
    clock.advance(RESET_AFTER_S + BOOT_S + BOOT_URC_DELAY_S + REGISTER_S + 0.1)
    assert "RDY" in modem.read("at", 1 << 20).decode()
    send(modem, "ATE0")


def registration_answers(modem: SimModem) -> None:
    for prefix in ("+CREG", "+CEREG", "+CGREG"):
        assert lines(modem, f"AT{prefix}=2") == ["OK"]
        assert lines(modem, f"AT{prefix}?")[0].startswith(f"{prefix}: 2,1,")


def common_paths_answer(modem: SimModem) -> None:
    """Registration URC modes, the SUPL server and the control-plane key answer on every Qualcomm model."""
    registration_answers(modem)
    assert lines(modem, "AT+QGPSSUPLURL?") == ['+QGPSSUPLURL: "NULL"', "OK"]
    assert lines(modem, 'AT+QGPSSUPLURL="supl.example.net:7275"') == ["OK"]
    assert modem.state.supl_url == "supl.example.net:7275"
    assert lines(modem, 'AT+QGPSCFG="agnssprotocol"') == ['+QGPSCFG: "agnssprotocol",3,1287', "OK"]
    assert lines(modem, 'AT+QGPSCFG="agnssprotocol",0,0') == ["OK"]
    assert lines(modem, 'AT+QGPSCFG="agnssprotocol"') == ['+QGPSCFG: "agnssprotocol",0,0', "OK"]
    for line in ("AT+QWIFISCAN=?", "AT+QAGPS?", "AT+QCELLLOC=?"):  # ASR/Unisoc only; old EC20/MC20 only
        assert lines(modem, line) == ["ERROR"], line


def test_ec25_has_every_qualcomm_path_and_no_wifi_scan() -> None:
    modem, _ = make("ec25")
    common_paths_answer(modem)
    assert lines(modem, "AT+QGPSXTRA=1") == ["OK"] and lines(modem, "AT+QGPSXTRA?") == ["+QGPSXTRA: 1", "OK"]
    assert lines(modem, "AT+QWIFISCAN=?") == ["ERROR"]
    assert lines(modem, 'AT+QGPSCFG="outport","uartnmea"') == ["+CME ERROR: 501"]  # BG96-class ports only
    assert "+QWIFISCAN" not in modem.supported_commands
    assert lines(modem, "AT+QLBSCFG=?") == ["ERROR"] and lines(modem, "AT+QLBS") == ["ERROR"]  # the EG25-G's only


def test_eg25_g_lists_the_captured_keys_with_the_agps_ones() -> None:
    modem, _ = make("eg25-g")
    common_paths_answer(modem)
    listed = lines(modem, "AT+QGPSCFG=?")
    assert '+QGPSCFG: "agpsposmode",(0-4294967295)' in listed  # the EG25-G capture's range (reference 1.6)
    assert '+QGPSCFG: "plane",(0-2)' in listed and '+QGPSCFG: "outport",("none","usbnmea","uartdebug")' in listed
    assert '+QGPSCFG: "agnssprotocol",(0-255),(0-65535)' in listed
    assert '+QGPSCFG: "lbsapn",(0-31),(0-4),<apn>' in listed
    assert lines(modem, "ATI")[1] == "EG25"


def test_bg96_routes_nmea_to_uart_aux_and_cmux_ports() -> None:
    modem, clock = make("bg96")
    common_paths_answer(modem)
    for port in ("uartnmea", "auxnmea", "cmux1", "cmux4"):
        assert lines(modem, f'AT+QGPSCFG="outport","{port}"') == ["OK"]
        assert lines(modem, 'AT+QGPSCFG="outport"') == [f'+QGPSCFG: "outport","{port}"', "OK"]
    assert lines(modem, "AT+QGPS=1") == ["OK"]
    clock.advance(3)
    assert modem.read("nmea", 1 << 20) == b""  # the NMEA goes to a port the host does not see: only a read-back tells


def test_bg95_has_no_xtra_and_the_query_says_so() -> None:
    modem, _ = make("bg95")
    common_paths_answer(modem)
    assert lines(modem, "AT+QGPSXTRA?") == ["ERROR"]
    assert lines(modem, "AT+QGPSXTRA=1") == ["ERROR"]
    assert "+QGPSXTRA" not in modem.supported_commands
    assert lines(modem, "AT+CGMM") == ["BG95-M3", "OK"]


def test_rm500q_answers_like_the_eg25_g_for_every_path() -> None:
    modem, _ = make("rm500q")
    common_paths_answer(modem)
    assert lines(modem, "AT+QGPSXTRA?") == ["+QGPSXTRA: 0", "OK"]
    assert lines(modem, "AT+CGMM") == ["RM500Q-GL", "OK"]


def test_the_profiles_are_the_qualcomm_models_and_one_asr_model() -> None:
    assert sorted(PROFILES) == sorted((*QUALCOMM, "ec200u"))


@pytest.mark.parametrize("model", QUALCOMM)
def test_a_rogue_on_the_second_port_re_enables_each_path(model: str) -> None:
    modem, _ = make(model)
    for line in ("AT+CREG=2", "AT+CGREG=2", 'AT+QGPSSUPLURL="supl.example.net"',
                 'AT+QGPSCFG="agnssprotocol",2,1024', 'AT+QGPSCFG="lbsapn",3,2,"supl.example"'):
        assert send(modem, line, "at2").endswith("\r\nOK\r\n"), line
    state = modem.state
    assert (state.creg_mode, state.cgreg_mode, state.supl_url) == (2, 2, "supl.example.net")
    assert state.cfg["agnssprotocol"] == (2, 1024) and state.cfg["lbsapn"] == (3, 2, "supl.example")


@pytest.mark.parametrize("model", QUALCOMM)
def test_multi_value_keys_list_their_fields_and_default_to_both_planes_and_no_apn(model: str) -> None:
    modem, _ = make(model)
    listed = lines(modem, "AT+QGPSCFG=?")
    assert '+QGPSCFG: "agnssprotocol",(0-255),(0-65535)' in listed
    assert '+QGPSCFG: "lbsapn",(0-31),(0-4),<apn>' in listed
    assert lines(modem, 'AT+QGPSCFG="lbsapn"') == ['+QGPSCFG: "lbsapn",1,0,""', "OK"]
    cfg = modem.state.cfg
    assert cfg["agnssprotocol"] == (3, 1287) and cfg["lbsapn"] == (1, 0, "")


@pytest.mark.parametrize("line", [
    'AT+QGPSCFG="agnssprotocol",1',  # one value of two
    'AT+QGPSCFG="agnssprotocol",1,2,3',
    'AT+QGPSCFG="agnssprotocol",256,0',
    'AT+QGPSCFG="agnssprotocol",0,65536',
    'AT+QGPSCFG="agnssprotocol",-1,0',
    'AT+QGPSCFG="agnssprotocol",0,x',
    'AT+QGPSCFG="agnssprotocol",3,',  # an empty mask
    'AT+QGPSCFG="lbsapn",1,0',  # no APN at all is not the empty APN
    'AT+QGPSCFG="lbsapn",1,0,"a","b"',
    'AT+QGPSCFG="lbsapn",32,0,""',
    'AT+QGPSCFG="lbsapn",1,5,""',
    'AT+QGPSCFG="lbsapn",x,0,""',
    'AT+QGPSCFG="lbsapn",1,0,"' + "a" * 100 + '"',
    'AT+QGPSCFG="plane",1,2',  # the single-value keys still take exactly one
    'AT+QGPSCFG="plane",3',
    'AT+QGPSCFG="suplver",3',
    'AT+QGPSCFG="agpsposmode",4294967296',
])
def test_a_wrong_count_or_a_value_out_of_range_is_501_and_changes_nothing(line: str) -> None:
    modem, _ = make("ec25")
    before = modem.state.cfg
    assert lines(modem, line) == ["+CME ERROR: 501"]
    assert modem.state.cfg == before


def test_multi_value_keys_read_back_exactly_what_was_set_and_survive_a_reboot() -> None:
    modem, clock = make("eg25")
    apn = "a" * 99
    for line in ('AT+QGPSCFG="agnssprotocol",255,65535', f'AT+QGPSCFG="lbsapn",31,4,"{apn}"',
                 'AT+QGPSCFG="plane",2', 'AT+QGPSCFG="suplver",2', 'AT+QGPSCFG="agpsposmode",4294967295'):
        assert lines(modem, line) == ["OK"], line
    reboot(modem, clock)
    assert lines(modem, 'AT+QGPSCFG="agnssprotocol"') == ['+QGPSCFG: "agnssprotocol",255,65535', "OK"]
    assert lines(modem, 'AT+QGPSCFG="lbsapn"') == [f'+QGPSCFG: "lbsapn",31,4,"{apn}"', "OK"]
    assert lines(modem, 'AT+QGPSCFG="agpsposmode"') == ['+QGPSCFG: "agpsposmode",4294967295', "OK"]
    cfg = modem.state.cfg
    assert (cfg["agnssprotocol"], cfg["lbsapn"], cfg["plane"], cfg["suplver"]) == ((255, 65535), (31, 4, apn), 2, 2)
    assert lines(modem, 'AT+QGPSCFG="lbsapn",0,1,""') == ["OK"]
    assert lines(modem, 'AT+QGPSCFG="lbsapn"') == ['+QGPSCFG: "lbsapn",0,1,""', "OK"]


def test_an_emergency_session_owns_the_engine_and_answers_515() -> None:
    modem, clock = make("ec25")
    modem.emergency_session(10.0)
    assert modem.state.emergency and modem.state.gnss_on
    assert lines(modem, "AT+QGPS?") == ["+QGPS: 1", "OK"]
    assert lines(modem, "AT+QGPSEND") == ["+CME ERROR: 515"]
    assert lines(modem, "AT+QGPS=1") == ["+CME ERROR: 515"]
    assert lines(modem, "AT+QGPSLOC=2") == ["+CME ERROR: 515"]
    clock.advance(10.0)
    assert not modem.state.emergency and not modem.state.gnss_on
    assert lines(modem, "AT+QGPSEND") == ["+CME ERROR: 505"]


def test_emergency_needs_a_positive_duration() -> None:
    modem, _ = make("ec25")
    with pytest.raises(ValueError, match="duration_s"):
        modem.emergency_session(0.0)


def test_cgreg_mode_is_volatile_and_its_urcs_carry_the_cell_only_at_mode_2() -> None:
    modem, clock = make("ec25")
    assert lines(modem, "AT+CGREG=2") == ["OK"]
    assert lines(modem, "AT+CFUN=4") == ["+CGREG: 0", "OK"]  # deregistered: no cell to carry
    assert lines(modem, "AT+CFUN=1") == ["OK"]
    clock.advance(1.0)
    ident = modem.identity
    assert modem.read("at", 1 << 20).decode().split() == ['+CGREG:', f'1,"{ident.lac}","{ident.cell_id}"']
    modem.reboot()
    clock.advance(5)
    assert modem.state.cgreg_mode == 0


def test_xtra_injection_needs_xtra_enabled_at_the_last_restart_and_gnss_off() -> None:
    modem, clock = make("ec25")
    inject = 'AT+QGPSXTRADATA="RAM:xtra2.bin"'
    assert lines(modem, "AT+QGPSXTRADATA?") == ['+QGPSXTRADATA: 0,"1980/01/06,00:00:00"', "OK"]
    assert lines(modem, inject) == ["+CME ERROR: 509"]  # XTRA not enabled
    assert lines(modem, "AT+QGPSXTRA=1") == ["OK"]
    assert lines(modem, inject) == ["+CME ERROR: 509"]  # enabled, but only from the next restart
    assert modem.state.xtra == 1 and modem.state.xtra_active == 0
    send(modem, "AT+CFUN=1,1")
    clock.advance(30.0)
    send(modem, "ATE0")
    assert modem.state.booted and modem.state.xtra_active == 1
    assert lines(modem, "AT+QGPS=1") == ["OK"]
    assert lines(modem, inject) == ["+CME ERROR: 504"]  # only with GNSS off
    assert lines(modem, "AT+QGPSEND") == ["OK"]
    assert lines(modem, inject) == ["OK"] and modem.state.xtra_injected
    assert lines(modem, "AT+QGPSXTRADATA?")[0].startswith("+QGPSXTRADATA: 10080,")
    assert lines(modem, 'AT+QGPSXTRADATA=""') == ["+CME ERROR: 501"]


@pytest.mark.parametrize("model", ["bg95", "ec200u"])
def test_models_without_xtra_have_no_injection_either(model: str) -> None:
    modem, _ = make(model)
    assert lines(modem, 'AT+QGPSXTRADATA="RAM:xtra2.bin"') == ["ERROR"]


@pytest.mark.parametrize(("port", "reached"), [("all", {"at", "at2"}), ("usbat", {"at"}), ("usbmodem", {"at2"}),
                                               ("uart1", set())])
def test_urcs_go_where_urcport_sends_them_and_the_setting_survives_a_reset(port: str, reached: set[str]) -> None:
    modem, clock = make("ec200u")
    send(modem, "ATE0", "at2")
    assert lines(modem, 'AT+QURCCFG="urcport"') == ['+QURCCFG: "urcport","all"', "OK"]
    assert lines(modem, f'AT+QURCCFG="urcport","{port}"') == ["OK"] and modem.state.urc_port == port
    assert lines(modem, "AT+QWIFISCAN") == ["OK"]
    clock.advance(3.0)
    got = {channel for channel in ("at", "at2") if b"+QWIFISCAN: (" in modem.read(channel, 1 << 20)}
    assert got == reached
    send(modem, "AT+CFUN=1,1", "at2")
    clock.advance(30.0)
    assert modem.state.booted and modem.state.urc_port == port
    assert lines(modem, 'AT+QURCCFG="urcport","usb"')[-1] == "+CME ERROR: 50"
