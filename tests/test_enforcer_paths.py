"""The enforcer against the pure simulator, path by path: set, read back, drift repaired, not present, emergency.

A synchronous session drives :class:`SimModem` through the AT core with a manual clock: no threads, no sleeps.
"""

from __future__ import annotations

import pytest

from agent.at import Command, Connection, Response
from agent.at.events import NEED_DATA
from agent.enforcer import Enforcer, Gate
from agent.quectel.codes import error_for
from agent.sim import ManualClock, SimModem
from agent.sim.profiles import PROFILES


class SimSession:
    """Session.execute over the simulator's first AT port, answered at once."""

    def __init__(self, modem: SimModem) -> None:
        self.modem = modem
        self.core = Connection()
        self.sent: list[str] = []
        self.connected = True
        modem.write("at", b"ATE0\r")
        modem.read("at", 1 << 20)

    def execute(self, command: Command) -> Response:
        self.sent.append(command.text)
        self.modem.write("at", self.core.send(command))
        self.core.receive_data(self.modem.read("at", 1 << 20))
        while True:
            event = self.core.next_event()
            assert event is not NEED_DATA, f"no final result for {command.text}"
            if isinstance(event, Response):
                if not event.ok:
                    raise error_for(event)
                return event


def make(model: str = "ec25", **kwargs: bool) -> tuple[SimModem, SimSession, Enforcer, Gate]:
    clock = ManualClock()
    modem = SimModem(model=model, seed=2, ttff_s=1.0, clock=clock)
    session = SimSession(modem)
    gate = Gate()
    enforcer = Enforcer(session, gate, has_nmea_port=True, clock=clock, **kwargs)  # type: ignore[arg-type]
    return modem, session, enforcer, gate


def rogue(modem: SimModem, line: str) -> None:
    modem.write("at2", line.encode() + b"\r")
    assert modem.read("at2", 1 << 20).endswith(b"OK\r\n"), line


QUALCOMM = sorted(key for key in PROFILES if key != "ec200u")


@pytest.mark.parametrize("model", QUALCOMM)
def test_off_turns_every_present_path_off_and_reads_it_back(model: str) -> None:
    modem, _, enforcer, gate = make(model)
    rogue(modem, 'AT+QGPSSUPLURL="supl.example.net:7275"')
    outcome = enforcer.reconcile(False)
    assert outcome.enforced and not gate.is_open
    state = modem.state
    assert state.supl_url == "NULL" and state.cfg["agnssprotocol"] == (0, 0) and state.cfg["outport"] == "none"
    assert state.cfg["plane"] != 2 and state.cfg["agpsposmode"] == 1 and state.cfg["lbsapn"][2] == ""
    labels = enforcer.path_labels()
    assert labels["gnss"] == "off" and labels["supl"] == "off" and labels["ni-positioning"] == "off"
    assert labels["wifi-scan"] == "not present" and labels["agps"] == "not present"
    assert labels["xtra"] == ("not present" if model == "bg95" else "off")
    assert labels["cell-lookup"] == ("watched (no off setting)" if model == "eg25" else "not present")
    assert enforcer.path_settings()["ni-protocols"] == [0, 0]  # type: ignore[index]
    assert outcome.drift == {}  # factory defaults met for the first time are repaired, not incidents


def test_an_asr_module_turns_its_assistance_off_and_watches_its_lookups() -> None:
    modem, _, enforcer, gate = make("ec200u")
    assert modem.state.agps == 1
    outcome = enforcer.reconcile(False)
    assert outcome.enforced and not gate.is_open and modem.state.agps == 0
    labels = enforcer.path_labels()
    assert labels["agps"] == "off" and labels["wifi-scan"] == "watched (no off setting)"
    assert labels["cell-lookup"] == "watched (no off setting)"
    assert labels["xtra"] == labels["supl"] == labels["ni-positioning"] == "not present"
    assert enforcer.check(False)
    rogue(modem, "AT+QAGPS=1")
    assert not enforcer.check(False)
    assert enforcer.reconcile(False).drift == {"agps": 1} and modem.state.agps == 0


@pytest.mark.parametrize(("port", "label"), [("usbat", "watched (no off setting)"),
                                             ("all", "watched (no off setting)"),
                                             ("usbmodem", "unwatched: results go to usbmodem"),
                                             ("uart1", "unwatched: results go to uart1")])
def test_status_says_a_lookup_is_watched_only_while_its_results_reach_the_agents_port(port: str, label: str) -> None:
    modem, _, enforcer, _ = make("ec200u")
    assert enforcer.reconcile(False).enforced
    rogue(modem, f'AT+QURCCFG="urcport","{port}"')
    assert enforcer.check(False)  # where URCs go is no location path: shown, never repaired
    labels = enforcer.path_labels()
    assert labels["urc-port"] == port and labels["wifi-scan"] == labels["cell-lookup"] == label


@pytest.mark.parametrize(("line", "key", "repaired"), [
    ("AT+CREG=2", "creg", lambda s: s.creg_mode == 1),
    ("AT+CEREG=2", "cereg", lambda s: s.cereg_mode == 1),
    ("AT+CGREG=2", "cgreg", lambda s: s.cgreg_mode == 1),
    ("AT+QGPSXTRA=1", "xtra", lambda s: s.xtra == 0),
    ('AT+QGPSSUPLURL="supl.example.net"', "supl", lambda s: s.supl_url == "NULL"),
    ('AT+QGPSCFG="lbsapn",2,3,"internet"', "lbsapn", lambda s: s.cfg["lbsapn"] == (2, 3, "")),
    ('AT+QGPSCFG="plane",2', "plane", lambda s: s.cfg["plane"] == 0),
    ('AT+QGPSCFG="agpsposmode",4294967295', "agpsposmode", lambda s: s.cfg["agpsposmode"] == 1),
    ('AT+QGPSCFG="agnssprotocol",0,4', "agnssprotocol", lambda s: s.cfg["agnssprotocol"] == (0, 0)),
])
def test_a_rogue_re_enabling_a_path_fails_the_check_and_is_repaired_as_drift(line: str, key: str,
                                                                              repaired: object) -> None:
    modem, _session, enforcer, _ = make("eg25")
    assert enforcer.reconcile(False).enforced
    assert enforcer.check(False)
    rogue(modem, line)
    assert not enforcer.check(False), "the periodic check missed the rogue"
    outcome = enforcer.reconcile(False)
    assert outcome.enforced and key in outcome.drift
    assert repaired(modem.state)  # type: ignore[operator]
    assert enforcer.check(False)


def test_an_xtra_repair_is_shown_as_applying_at_the_next_restart_until_one_is_seen() -> None:
    modem, _, enforcer, _ = make("ec25")
    assert enforcer.reconcile(False).enforced and enforcer.path_labels()["xtra"] == "off"
    rogue(modem, "AT+QGPSXTRA=1")
    assert enforcer.reconcile(False).enforced
    assert enforcer.path_labels()["xtra"] == "off from the next restart"
    enforcer.forget()  # the port reopened: perhaps the same boot
    assert enforcer.reconcile(False).enforced and enforcer.path_labels()["xtra"] == "off from the next restart"
    enforcer.forget(restarted=True)  # RDY: the module applied it
    assert enforcer.reconcile(False).enforced and enforcer.path_labels()["xtra"] == "off"


def test_a_rogue_changing_the_supl_version_is_shown_not_repaired() -> None:
    modem, _, enforcer, _ = make("ec25")
    assert enforcer.reconcile(False).enforced
    rogue(modem, 'AT+QGPSCFG="suplver",2')
    assert enforcer.check(False)  # no version turns SUPL on: the URL is what does
    assert enforcer.path_settings()["supl-version"] == 2  # type: ignore[index]


def test_the_periodic_check_is_one_batched_read_back_of_every_present_path() -> None:
    _modem, session, enforcer, _ = make("eg25")
    enforcer.reconcile(False)
    session.sent.clear()
    assert enforcer.check(False)
    assert len(session.sent) == 1
    line = session.sent[0]
    for part in ("+QGPS?", '+QGPSCFG="autogps"', '+QGPSCFG="outport"', "+CREG?", "+CEREG?", "+CGREG?",
                 "+QGPSXTRA?", "+QGPSSUPLURL?", '+QGPSCFG="lbsapn"', '+QGPSCFG="suplver"', '+QGPSCFG="plane"',
                 '+QGPSCFG="agpsposmode"', '+QGPSCFG="agnssprotocol"'):
        assert part in line
    assert "QWIFISCAN" not in line  # not present on this model: never batched (it would fail the line)
    assert "QLBSCFG" not in line  # a lookup the module has: learnt once, never re-read
    assert len(line) <= 256


def test_bg95_batch_leaves_out_the_missing_xtra() -> None:
    _, session, enforcer, _ = make("bg95")
    enforcer.reconcile(False)
    session.sent.clear()
    assert enforcer.check(False) and len(session.sent) == 1 and "QGPSXTRA" not in session.sent[0]


def test_nmea_routed_to_another_port_is_turned_off_on_bg96() -> None:
    modem, _, enforcer, _ = make("bg96")
    assert enforcer.reconcile(False).enforced
    rogue(modem, 'AT+QGPSCFG="outport","cmux2"')
    assert not enforcer.check(False)
    outcome = enforcer.reconcile(False)
    assert outcome.drift.get("outport") == "cmux2" and modem.state.cfg["outport"] == "none"


def test_a_path_whose_query_fails_for_another_reason_is_unknown_never_off() -> None:
    modem, _, enforcer, gate = make("ec25")
    modem.faults.busy("AT+QGPSXTRA?", 503, times=1)
    outcome = enforcer.reconcile(False)
    assert not outcome.enforced and not gate.is_open
    assert enforcer.path_labels()["xtra"] == "unknown"
    assert enforcer.reconcile(False).enforced  # the next trigger tries again


def test_on_reads_the_paths_for_status_and_leaves_them_alone() -> None:
    modem, _, enforcer, gate = make("ec25")
    rogue(modem, "AT+QGPSXTRA=1")
    outcome = enforcer.reconcile(True, user_change=True)
    assert outcome.enforced and gate.is_open
    assert enforcer.path_labels()["xtra"] == "on" and modem.state.xtra == 1
    assert enforcer.check(True)


def test_emergency_positioning_is_allowed_recorded_and_no_back_door() -> None:
    modem, _, enforcer, gate = make("ec25")
    assert enforcer.reconcile(False).enforced
    modem.emergency_session(60.0)
    rogue(modem, "AT+QGPSXTRA=1")
    outcome = enforcer.reconcile(False)
    assert outcome.observed.emergency and outcome.enforced and not gate.is_open
    assert enforcer.path_labels()["gnss"] == "emergency"
    assert modem.state.xtra == 0 and modem.state.cfg["outport"] == "none"  # every other path still off
    assert "gnss" not in outcome.drift and outcome.drift == {"xtra": 1}
    assert enforcer.check(False)


def test_emergency_not_allowed_is_not_enforced() -> None:
    modem, _, enforcer, gate = make("ec25", emergency_allowed=False)
    modem.emergency_session(60.0)
    outcome = enforcer.reconcile(False)
    assert outcome.observed.emergency and not outcome.enforced and not gate.is_open


def test_forget_learns_the_paths_again() -> None:
    _modem, session, enforcer, _ = make("ec25")
    enforcer.reconcile(False)
    enforcer.forget()
    assert enforcer.path_labels()["xtra"] == "unknown"
    session.sent.clear()
    assert enforcer.reconcile(False).enforced
    assert "AT+QGPSXTRA?" in session.sent  # read alone again, not trusted from before


def test_emergency_positioning_is_a_modem_setting_true_by_default() -> None:
    from agent.config import parse_config
    from agent.errors import ConfigError

    base = {"modem": {"port": "sim://ec25"}}
    assert parse_config(base).modem.emergency_positioning is True
    assert parse_config({"modem": {"port": "sim://ec25", "emergency_positioning": False}}).modem.emergency_positioning \
        is False
    with pytest.raises(ConfigError, match="emergency_positioning must be true or false"):
        parse_config({"modem": {"port": "sim://ec25", "emergency_positioning": 1}})


def test_while_on_a_path_that_cannot_be_read_is_unknown_and_location_still_turns_on() -> None:
    modem, _, enforcer, gate = make("ec25")
    modem.faults.busy("AT+QGPSSUPLURL?", 503, times=1)
    outcome = enforcer.reconcile(True, user_change=True)
    assert outcome.enforced and gate.is_open
    assert set(enforcer.path_labels().values()) >= {"unknown"} and enforcer.path_labels()["supl"] == "unknown"


def test_a_long_batch_is_cut_into_lines_the_modem_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.quectel import paths

    _modem, session, enforcer, _ = make("eg25")
    enforcer.reconcile(False)
    monkeypatch.setattr(paths, "MAX_BATCH_LINE", 80)
    monkeypatch.setattr(paths.batches, "__defaults__", (80,))
    session.sent.clear()
    assert enforcer.check(False)
    assert len(session.sent) > 1 and all(len(line) <= 80 for line in session.sent)


def test_closing_an_open_gate_tells_its_listeners_once_and_a_failing_one_stops_nothing() -> None:
    from agent.enforcer import Gate

    gate, heard = Gate(), []

    def broken() -> None:
        raise RuntimeError("listener bug")

    gate.on_close += [broken, lambda: heard.append("closed")]
    gate.close()
    assert heard == []  # it was never open
    gate.open()
    gate.close()
    gate.close()
    assert heard == ["closed"] and not gate.is_open
