"""Every location path through privacyctl: a rogue program on the module's second AT port re-enables it, the agent
repairs it and records an incident, and ``privacyctl location status`` lists the path's observed state.

The real daemon objects, threads, sim:// ports and control socket, on a BG96 profile (it routes NMEA to UART and
CMUX ports as well) and on a BG95 (no XTRA: reported not present).
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
    ("AT+QGPSXTRA=1", "xtra", "xtra", "off", lambda s: s.xtra == 0),
    ('AT+QGPSSUPLURL="supl.example.net:7275"', "supl", "supl", "off", lambda s: s.supl_url == "NULL"),
    ('AT+QGPSCFG="agnssprotocol",7', "ni-positioning", "ni-positioning", "off",
     lambda s: s.cfg["agnssprotocol"] == 0),
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


def test_status_lists_every_path_and_a_missing_one_is_not_present(start_agent: Callable[[str], RunningAgent]) -> None:
    running = start_agent("bg95")
    paths = checked_paths(running)
    assert paths["xtra"] == "not present" and paths["wifi-scan"] == "not present"
    assert paths["gnss"] == "off" and paths["supl"] == "off" and paths["ni-positioning"] == "off"
    code, plain = privacyctl(running, "location", "status")
    assert code == 0
    line = next(text for text in plain.splitlines() if text.startswith("Paths:"))
    assert "gnss off" in line and "xtra not present" in line and "cell-urc-creg 0" in line


def test_emergency_positioning_is_recorded_and_opens_nothing(start_agent: Callable[[str], RunningAgent]) -> None:
    running = start_agent("bg96")
    running.modem.emergency_session(60.0)
    running.rogue("AT+QGPSXTRA=1")
    paths = checked_paths(running)
    assert paths["gnss"] == "emergency" and paths["xtra"] == "off" and paths["nmea-outport"] == "none"
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
    lookups = ("+QENG", "+QCELLLOC", "+QLBS", "+QGPSLOC", "+QGPSGNMEA")
    assert not [text for text in sent if any(name in text for name in lookups)]
    assert all(text.endswith("+QWIFISCAN=?") for text in sent if "+QWIFISCAN" in text)  # presence only, no scan
    assert any("+QWIFISCAN=?" in text for text in sent)
