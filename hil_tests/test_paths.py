"""Every location path through privacyctl: a rogue program on the module's second AT port re-enables it, the agent
repairs it and records an incident, and ``privacyctl location status`` lists the path's observed state.

The real daemon objects, threads, sim:// ports and control socket, on a BG96 profile (it routes NMEA to UART and
CMUX ports as well), a BG95 (no XTRA: reported not present), an EG25-G (cell lookups) and an EC200U (an ASR
module: QAGPS assistance and Wi-Fi scans). Lookups have no setting to turn off: their results seen while off are
recorded, and nothing of them is kept.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from hil_tests.conftest import RunningAgent, wait_until


@pytest.fixture
def start_agent(tmp_path: Path, sim_name: str, agents: Any) -> Callable[[str], RunningAgent]:
    from agent import sim
    from agent.config import parse_config

    def start(model: str) -> RunningAgent:
        sim.install(sim_name, sim.SimModem(model=model, seed=4, ttff_s=1.0))
        base = f"sim://{model}?name={sim_name}"
        config = parse_config({
            "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 30.0,
                      "verify_timeout_s": 10},
            "state": {"dir": str(tmp_path / "state")},
            "control": {"socket": str(tmp_path / "control.sock")},
        })
        return agents(config, sim_name)

    return start


def privacyctl(running: RunningAgent, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--socket", str(running.socket), *argv], stdout=out, stderr=io.StringIO())
    return code, out.getvalue()


def checked_paths(running: RunningAgent) -> dict[str, str]:
    code, printed = privacyctl(running, "--json", "location", "status", "--check")
    assert code == 0, printed
    status = json.loads(printed)
    assert status["enforced"] is True
    return dict(status["paths"])


def incidents(running: RunningAgent) -> list[dict[str, Any]]:
    code, printed = privacyctl(running, "--json", "incidents")
    assert code == 0
    return list(json.loads(printed)["incidents"])


ROGUES = [
    ("AT+CREG=2", "creg", "cell-urc-creg", "1", lambda s: s.creg_mode == 1),
    ("AT+CEREG=2", "cereg", "cell-urc-cereg", "1", lambda s: s.cereg_mode == 1),
    ("AT+CGREG=2", "cgreg", "cell-urc-cgreg", "1", lambda s: s.cgreg_mode == 1),
    ("AT+QGPSXTRA=1", "xtra", "xtra", "off from the next restart", lambda s: s.xtra == 0),
    ('AT+QGPSSUPLURL="supl.example.net:7275"', "supl", "supl", "off", lambda s: s.supl_url == "NULL"),
    ('AT+QGPSCFG="lbsapn",1,3,"internet"', "lbsapn", "supl", "off", lambda s: s.cfg["lbsapn"] == (1, 3, "")),
    ('AT+QGPSCFG="agnssprotocol",7,1287', "agnssprotocol", "ni-positioning", "off",
     lambda s: s.cfg["agnssprotocol"] == (0, 0)),
    ('AT+QGPSCFG="plane",2', "plane", "ni-positioning", "off", lambda s: s.cfg["plane"] == 0),
    ('AT+QGPSCFG="agpsposmode",4294967295', "agpsposmode", "ni-positioning", "off",
     lambda s: s.cfg["agpsposmode"] == 1),
    ('AT+QGPSCFG="outport","uartnmea"', "outport", "nmea-outport", "none", lambda s: s.cfg["outport"] == "none"),
    ('AT+QGPSCFG="outport","cmux3"', "outport", "nmea-outport", "none", lambda s: s.cfg["outport"] == "none"),
]


@pytest.mark.parametrize(("line", "key", "path", "shown", "repaired"), ROGUES, ids=[r[1] + ":" + r[0] for r in ROGUES])
def test_a_rogue_re_enabling_a_path_is_repaired_and_recorded(start_agent: Callable[[str], RunningAgent], line: str,
                                                             key: str, path: str, shown: str,
                                                             repaired: Callable[[Any], bool]) -> None:
    running = start_agent("bg96")
    before = len(incidents(running))
    running.rogue(line)
    assert wait_until(lambda: not repaired(running.modem.state), timeout_s=2), "the rogue did not take"
    assert checked_paths(running)[path] == shown
    assert repaired(running.modem.state)
    found = incidents(running)
    assert len(found) == before + 1 and found[0]["kind"] == "drift" and key in found[0]["found"]
    assert found[0]["repaired"] is True


def test_xtra_injected_behind_the_agents_back_is_refused_and_its_repair_waits_for_a_restart(
        start_agent: Callable[[str], RunningAgent]) -> None:
    """XTRA takes effect at a restart: a rogue enabling it cannot inject data in this boot, the agent's repair
    is shown as applying from the next restart, and after one XTRA stays off and injection is still refused."""
    running = start_agent("ec25")
    running.rogue('AT+QGPSXTRA=1;+QGPSXTRADATA="RAM:xtra2.bin"')
    assert wait_until(lambda: running.modem.state.xtra == 1, timeout_s=2)
    assert checked_paths(running)["xtra"] == "off from the next restart"
    state = running.modem.state
    assert state.xtra == 0 and state.xtra_active == 0 and not state.xtra_injected
    running.modem.reboot()
    assert wait_until(lambda: running.modem.state.booted and running.modem.state.registered, timeout_s=10)
    assert wait_until(lambda: running.request("location.status", check=True)["paths"]["xtra"] == "off", timeout_s=15)
    running.rogue('AT+QGPSXTRADATA="RAM:xtra2.bin"')
    injections = [text for channel, text in running.modem.commands if channel == "at2" and "XTRADATA" in text]
    assert len(injections) == 2  # the simulator answers a line as it arrives
    assert not running.modem.state.xtra_injected


def test_an_asr_modules_assistance_switch_is_repaired_and_recorded(start_agent: Callable[[str], RunningAgent]
                                                                 ) -> None:
    running = start_agent("ec200u")
    assert checked_paths(running)["agps"] == "off" and running.modem.state.agps == 0
    running.rogue("AT+QAGPS=1")
    assert wait_until(lambda: running.modem.state.agps == 1, timeout_s=2)
    assert checked_paths(running)["agps"] == "off" and running.modem.state.agps == 0
    found = incidents(running)[0]
    assert found["kind"] == "drift" and found["found"] == {"agps": 1} and found["repaired"] is True


def ledger_bytes(running: RunningAgent) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(running.state_dir.rglob("*")) if path.is_file())


@pytest.mark.parametrize(("model", "line", "path", "urc"), [
    ("ec200u", "AT+QWIFISCAN", "wifi-scan", "+QWIFISCAN"),
    ("eg25", "AT+QLBS", "cell-lookup", "+QLBS"),
])
def test_a_lookup_run_by_another_program_while_off_is_recorded_and_nothing_of_it_kept(
        start_agent: Callable[[str], RunningAgent], model: str, line: str, path: str, urc: str) -> None:
    running = start_agent(model)
    assert checked_paths(running)[path] == "watched (no off setting)"
    running.rogue(line)
    assert wait_until(lambda: any(item["kind"] == "lookup-while-off" for item in incidents(running)), timeout_s=10)
    found = next(item for item in incidents(running) if item["kind"] == "lookup-while-off")
    assert found["path"] == path and found["urc"] == urc and found["desired"] == "off"
    state = running.modem.state
    assert (state.wifi_scans if path == "wifi-scan" else state.lbs_lookups) == 1
    kept = ledger_bytes(running)
    for point in running.modem.wifi_access_points:  # what a scan found never reaches the agent's files
        assert point.bssid.encode() not in kept and point.bssid.replace(":", "").encode() not in kept
    true = running.modem.true_position()
    assert f"{true.lat:.4f}".encode() not in kept and f"{true.lon:.4f}".encode() not in kept
    code, printed = privacyctl(running, "--json", "location", "status")
    assert code == 0 and json.loads(printed)["gate"] == "closed"


def test_status_never_calls_a_lookup_watched_once_its_results_go_elsewhere(start_agent: Callable[[str], RunningAgent]
                                                                         ) -> None:
    running = start_agent("ec200u")
    assert checked_paths(running)["wifi-scan"] == "watched (no off setting)"
    running.rogue('AT+QURCCFG="urcport","uart1"')
    assert wait_until(lambda: running.modem.state.urc_port == "uart1", timeout_s=2)
    paths = checked_paths(running)
    assert paths["urc-port"] == "uart1" and paths["wifi-scan"] == "unwatched: results go to uart1"
    code, plain = privacyctl(running, "location", "status")
    assert code == 0 and "wifi-scan unwatched: results go to uart1" in plain


def test_a_location_bearing_registration_urc_while_off_triggers_the_repair_at_once(
        start_agent: Callable[[str], RunningAgent]) -> None:
    """The reconcile interval is 30 s here: only the URC itself can make the agent act within seconds."""
    running = start_agent("bg96")
    checked_paths(running)
    before = len(incidents(running))
    for line in ("AT+CREG=2", "AT+CFUN=4", "AT+CFUN=1"):  # re-registering sends +CREG: 1,"<lac>","<ci>",7
        running.rogue(line)
    assert wait_until(lambda: len(incidents(running)) > before, timeout_s=10)
    found = incidents(running)[0]
    assert found["kind"] == "drift" and found["found"].get("creg") == 2
    assert "cell-urc-while-off" in found["trigger"] and running.modem.state.creg_mode == 1


def test_status_lists_every_path_and_a_missing_one_is_not_present(start_agent: Callable[[str], RunningAgent]) -> None:
    running = start_agent("bg95")
    paths = checked_paths(running)
    assert paths["xtra"] == "not present" and paths["wifi-scan"] == "not present"
    assert paths["gnss"] == "off" and paths["supl"] == "off" and paths["ni-positioning"] == "off"
    assert paths["agps"] == "not present" and paths["cell-lookup"] == "not present"
    code, plain = privacyctl(running, "location", "status")
    assert code == 0
    line = next(text for text in plain.splitlines() if text.startswith("Paths:"))
    assert "gnss off" in line and "xtra not present" in line and "cell-urc-creg 0" in line


def test_emergency_positioning_is_recorded_and_opens_nothing(start_agent: Callable[[str], RunningAgent]) -> None:
    running = start_agent("bg96")
    running.modem.emergency_session(60.0)
    running.rogue("AT+QGPSXTRA=1")
    paths = checked_paths(running)
    assert paths["gnss"] == "emergency" and paths["xtra"] == "off from the next restart"
    assert paths["nmea-outport"] == "none"
    code, printed = privacyctl(running, "--json", "location", "status")
    assert code == 0 and json.loads(printed)["gate"] == "closed"
    kinds = [item["kind"] for item in incidents(running)]
    assert "emergency-positioning" in kinds and "drift" in kinds
    assert running.modem.read("nmea", 1 << 20) == b""  # no NMEA leaves while the emergency session runs


def test_while_off_the_agent_runs_no_location_lookup(start_agent: Callable[[str], RunningAgent]) -> None:
    """Cell and Wi-Fi lookups (QENG servingcell/neighbourcell, QCELLLOC, QLBS, QWIFISCAN scans) and GNSS reads
    are never sent while off, through a status check and a modem reboot alike."""
    running = start_agent("ec25")
    checked_paths(running)
    running.modem.reboot()
    assert wait_until(lambda: running.modem.state.booted and running.modem.state.registered, timeout_s=10)
    assert wait_until(lambda: running.request("location.status", check=True)["enforced"], timeout_s=15)
    sent = [text.upper() for channel, text in running.modem.commands if channel == "at"]
    lookups = ("+QENG", "+QCELLLOC", "+QLBS", "+QWIFISCAN", "+QGPSLOC", "+QGPSGNMEA")
    parts = [part for text in sent for part in text.split(";")]
    ran = [part for part in parts if any(name in part for name in lookups) and not part.endswith("=?")]
    assert not ran  # only the test forms (is the command there at all?), never a lookup itself
    tested = {part for part in parts if part.endswith("=?")}
    assert {"AT+QWIFISCAN=?", "AT+QLBSCFG=?", "AT+QCELLLOC=?"} <= tested
    assert running.modem.state.wifi_scans == running.modem.state.lbs_lookups == 0
