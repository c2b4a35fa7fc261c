"""Each simulated model profile: which location paths it has, which commands answer, and with which errors."""

from __future__ import annotations

import pytest

from agent.sim import ManualClock, SimModem
from agent.sim.profiles import PROFILES


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


def common_paths_answer(modem: SimModem) -> None:
    """Registration URC modes, the SUPL server and the control-plane key answer on every Qualcomm model."""
    for prefix in ("+CREG", "+CEREG", "+CGREG"):
        assert lines(modem, f"AT{prefix}=2") == ["OK"]
        assert lines(modem, f"AT{prefix}?")[0].startswith(f"{prefix}: 2,1,")
    assert lines(modem, "AT+QGPSSUPLURL?") == ['+QGPSSUPLURL: "NULL"', "OK"]
    assert lines(modem, 'AT+QGPSSUPLURL="supl.example.net:7275"') == ["OK"]
    assert modem.state.supl_url == "supl.example.net:7275"
    assert lines(modem, 'AT+QGPSCFG="agnssprotocol"') == ['+QGPSCFG: "agnssprotocol",7', "OK"]
    assert lines(modem, 'AT+QGPSCFG="agnssprotocol",0') == ["OK"]
    assert lines(modem, "AT+QWIFISCAN=?") == ["ERROR"]  # ASR/Unisoc modules only (reference 3)


def test_ec25_has_every_qualcomm_path_and_no_wifi_scan() -> None:
    modem, _ = make("ec25")
    common_paths_answer(modem)
    assert lines(modem, "AT+QGPSXTRA=1") == ["OK"] and lines(modem, "AT+QGPSXTRA?") == ["+QGPSXTRA: 1", "OK"]
    assert lines(modem, "AT+QWIFISCAN=?") == ["ERROR"]
    assert lines(modem, 'AT+QGPSCFG="outport","uartnmea"') == ["+CME ERROR: 501"]  # BG96-class ports only
    assert "+QWIFISCAN" not in modem.supported_commands


def test_eg25_g_lists_the_captured_keys_with_the_agps_ones() -> None:
    modem, _ = make("eg25-g")
    common_paths_answer(modem)
    listed = lines(modem, "AT+QGPSCFG=?")
    assert '+QGPSCFG: "agpsposmode",(0-4294967295)' in listed  # the EG25-G capture's range (reference 1.6)
    assert '+QGPSCFG: "plane",(0-2)' in listed and '+QGPSCFG: "outport",("none","usbnmea","uartdebug")' in listed
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


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_a_rogue_on_the_second_port_re_enables_each_path(model: str) -> None:
    modem, _ = make(model)
    for line in ("AT+CREG=2", "AT+CGREG=2", 'AT+QGPSSUPLURL="supl.example.net"', 'AT+QGPSCFG="agnssprotocol",3'):
        assert send(modem, line, "at2").endswith("\r\nOK\r\n")
    state = modem.state
    assert (state.creg_mode, state.cgreg_mode, state.supl_url) == (2, 2, "supl.example.net")
    assert state.cfg["agnssprotocol"] == 3


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
