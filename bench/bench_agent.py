"""The session and the switch: AT round trips, gate latency, hardware-off latency, idle cost of the daemon.

Every figure is a ratio against a baseline measured in the same run on the same machine:
- ``at_roundtrip_pty``: p50 of ``Session.execute(AT)`` over a real pty against the simulator, vs a bare pyserial
  write/readline loop against the same pty. Target <= 1.5.
- ``gate_latency``: p99 of ``location off`` (and on) acknowledged = durable in the ledger and gate closed, over 200
  toggles, vs one write+fsync of a record-sized buffer on the same disk (p99). Target <= 2x fsync + 2 ms.
- ``hardware_off_latency``: median time from ``location off`` to GNSS and every location path read back off on the
  simulator (``AT+QGPS?`` 0, ``autogps``, ``outport``, ``+CREG``/``+CEREG``/``+CGREG`` modes, XTRA, QAGPS, the
  SUPL URL, APN and version, ``plane``, ``agpsposmode``, ``agnssprotocol``, the URC port, Wi-Fi scan and cell
  lookup presence),
  vs the sum of bare round trips of those commands, one by one, on the same simulator. Target <= 1.5.
- ``periodic_check_round_trips``: AT lines the periodic check sends per run (the batched read-back), against the
  number of read-backs it covers; the ratio is round trips per read-back. Target: one line per check.
- ``periodic_check_latency``: median time of one periodic check (every path, batched, through the session) vs the
  sum of bare round trips of its read-backs one by one. Target <= 1.5.
- ``daemon_idle``: the daemon (separate process) with GNSS on at 1 Hz for 60 s (15 s quick), against a simulator
  in another process: CPU share of one core (< 2 %) and RSS (< 40 MB).
- ``daemon_idle_off``: the same daemon with location off, its NMEA port open and watched and the 5 s read-back
  running: CPU share of one core (< 1 %), next to the "on" figure.
- ``drift_latency``: a rogue ``AT+QGPS=1`` on the second AT port to the agent's repaired read-back (GNSS off, read
  after the rogue), p50 and max over 20 tries (5 quick), with the default 5 s interval: without an NMEA port
  (the periodic check finds it; target max <= interval + 1 s) and with one, the rogue also turning NMEA output on
  (the NMEA watch finds it; target max <= 2 s after the first burst, which comes about 1 s after GNSS on).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import serial
from processes import cpu_share, rss_mb, start_daemon, start_simulator, stop_all, wait_until, write_daemon_config

from agent import sim
from agent.quectel import commands
from agent.session import Session
from agent.sim.modem import SimModem
from agent.sim.pty import SimPtyServer

Result = dict[str, Any]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def at_roundtrip(n: int, rounds: int = 5) -> Result:
    """The session and the bare loop take turns on the same pty, ``n // rounds`` round trips each per turn
    (they cannot share the port at once), so that a busy spell of the machine weighs on both alike."""
    per_round = max(1, n // rounds)
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "ttyAT"
        server = SimPtyServer(SimModem(seed=1), {"at": link}).start()
        try:
            for _ in range(rounds):
                ours += _session_round_trips(str(link), per_round)
                bare += _bare_round_trips(str(link), per_round)
        finally:
            server.stop()
    value, baseline = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    ratio = value / baseline
    return {"value": round(value, 3), "unit": "ms p50", "baseline": round(baseline, 3), "ratio": round(ratio, 3),
            "target": "<= 1.5", "pass": ratio <= 1.5}


def _session_round_trips(url: str, count: int) -> list[float]:
    session = Session(url)
    session.start()
    try:
        session.wait_connected(5)
        session.execute(commands.at())  # initialises: echo off
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            session.execute(commands.at())
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        session.close()


def _bare_round_trips(url: str, count: int) -> list[float]:
    samples = []
    with serial.Serial(url, timeout=1) as port:
        port.reset_input_buffer()
        for _ in range(count):
            start = time.perf_counter()
            port.write(b"AT\r")
            while port.readline().strip() != b"OK":
                pass
            samples.append(time.perf_counter() - start)
    return samples


def _fsync_p99(directory: Path, n: int) -> float:
    samples = []
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(n):
            start = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return _percentile(samples, 0.99)


def _agent(tmp: Path, name: str) -> Any:
    from agent.config import parse_config
    from agent.daemon import Agent

    base = f"sim://ec25?name={name}&seed=2&ttff=1"
    config = parse_config({"modem": {"port": f"{base}&port=at", "reconcile_interval_s": 30},
                           "state": {"dir": str(tmp / "state")}, "control": {"socket": str(tmp / "c.sock")}})
    agent = Agent(config)
    agent.start()
    wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
    return agent


def gate_latency(toggles: int) -> Result:
    sim.register()
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as tmp_name:
        tmp = Path(tmp_name)
        agent = _agent(tmp, "bench-gate")
        try:
            samples = []
            for index in range(toggles):
                start = time.perf_counter()
                agent.supervisor.set_location(index % 2 == 0, uid=0, wait_s=0)
                samples.append(time.perf_counter() - start)
        finally:
            agent.stop()
            sim.forget("bench-gate")
        fsync = _fsync_p99(tmp, toggles)
    value = _percentile(samples, 0.99) * 1000
    baseline = fsync * 1000
    target = 2 * baseline + 2
    return {"value": round(value, 3), "unit": "ms p99", "baseline": round(baseline, 3),
            "ratio": round(value / baseline, 3), "target": f"<= 2x fsync + 2 ms ({target:.2f} ms)",
            "pass": value <= target}


# Every setting an EC25 has, then what it lacks (QAGPS) and the lookups' presence tests.
_PRESENT_READS = [b"AT+CREG?", b"AT+CEREG?", b"AT+CGREG?", b"AT+QGPSXTRA?", b"AT+QGPSSUPLURL?",
                  b'AT+QGPSCFG="lbsapn"', b'AT+QGPSCFG="suplver"', b'AT+QGPSCFG="plane"',
                  b'AT+QGPSCFG="agpsposmode"', b'AT+QGPSCFG="agnssprotocol"', b'AT+QURCCFG="urcport"']
_PATH_READS = [*_PRESENT_READS, b"AT+QAGPS?", b"AT+QWIFISCAN=?", b"AT+QLBSCFG=?", b"AT+QCELLLOC=?"]
_OFF_SEQUENCE = [b"AT+QGPSEND", b'AT+QGPSCFG="autogps"', b'AT+QGPSCFG="outport"', *_PATH_READS, b"AT+QGPS?"]
_CHECK_READS = [b"AT+QGPS?", b'AT+QGPSCFG="autogps"', b'AT+QGPSCFG="outport"', *_PRESENT_READS]


def _bare_off_sequence(name: str, sequence: list[bytes] = _OFF_SEQUENCE, *, gnss_on: bool = True) -> float:
    port = serial.serial_for_url(f"sim://ec25?name={name}&seed=2&ttff=1&port=at", timeout=2)
    try:
        port.write(b"ATE0\r")
        _read_final(port)
        if gnss_on:
            port.write(b"AT+QGPS=1\r")
            _read_final(port)
        start = time.perf_counter()
        for command in sequence:
            port.write(command + b"\r")
            _read_final(port)
        return time.perf_counter() - start
    finally:
        port.close()


def periodic_check(rounds: int) -> dict[str, Result]:
    """The periodic proof on a switched-off modem: lines sent per check, and its time vs the bare reads."""
    from agent.enforcer import Enforcer, Gate

    sim.register()
    url = "sim://ec25?name=bench-check&seed=2&ttff=1&port=at"
    session = Session(url)
    session.start()
    ours, bare, lines = [], [], []
    try:
        session.wait_connected(5)
        enforcer = Enforcer(session, Gate(), has_nmea_port=True)
        assert enforcer.reconcile(False).enforced, "off was not verified"
        modem = sim.modem_for("bench-check")
        for index in range(rounds):
            sent = len(modem.commands)
            start = time.perf_counter()
            assert enforcer.check(False), "the check found drift on a quiet modem"
            ours.append(time.perf_counter() - start)
            lines.append(len(modem.commands) - sent)
            bare.append(_bare_off_sequence(f"bench-check-bare-{index}", _CHECK_READS, gnss_on=False))
            sim.forget(f"bench-check-bare-{index}")
    finally:
        session.close()
        sim.forget("bench-check")
    value, baseline = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    per_check = max(lines)
    return {
        "periodic_check_round_trips": {"value": per_check, "unit": "AT lines per check",
                                       "baseline": len(_CHECK_READS), "ratio": round(per_check / len(_CHECK_READS), 3),
                                       "target": "1 line", "pass": per_check == 1},
        "periodic_check_latency": {"value": round(value, 3), "unit": "ms p50", "baseline": round(baseline, 3),
                                   "ratio": round(value / baseline, 3), "target": "<= 1.5",
                                   "pass": value / baseline <= 1.5},
    }


def _read_final(port: Any) -> None:
    while True:
        line = port.readline()
        if not line:
            raise TimeoutError("no final result from the simulator")
        line = line.strip()
        if line in (b"OK", b"ERROR") or line.startswith(b"+CME ERROR"):
            return


def hardware_off_latency(rounds: int) -> Result:
    sim.register()
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        agent = _agent(Path(tmp_name), "bench-off")
        try:
            for index in range(rounds):  # the two take turns, so that a busy spell weighs on both alike
                agent.supervisor.set_location(True, uid=0, wait_s=10)
                start = time.perf_counter()
                reply = agent.supervisor.set_location(False, uid=0, wait_s=10)
                ours.append(time.perf_counter() - start)
                assert reply["verified"], "off was not verified"
                bare.append(_bare_off_sequence(f"bench-bare-{index}"))
                sim.forget(f"bench-bare-{index}")
        finally:
            agent.stop()
            sim.forget("bench-off")
    value, baseline = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    ratio = value / baseline
    return {"value": round(value, 3), "unit": "ms p50", "baseline": round(baseline, 3), "ratio": round(ratio, 3),
            "target": "<= 1.5", "pass": ratio <= 1.5}


def _repaired_after_rogue(agent: Any, modem: Any, *, nmea: bool) -> float:
    """Seconds from a rogue turning GNSS on to the agent's read-back showing it off again."""
    modem.write("at2", b'AT+QGPSCFG="outport","usbnmea"\r' if nmea else b"AT\r")
    time.sleep(0.05)
    start_wall, start = time.time(), time.perf_counter()
    modem.write("at2", b"AT+QGPS=1\r")

    def repaired() -> bool:
        observed = agent.supervisor.enforcer.observed
        return (not modem.state.gnss_on and observed.gnss is False and observed.read_at is not None
                and observed.read_at > start_wall and agent.supervisor.enforcer.enforced)

    if not wait_until(repaired, 30):
        raise TimeoutError("the rogue's GNSS was not repaired within 30 s")
    return time.perf_counter() - start


def _drift_samples(tries: int, *, nmea: bool) -> tuple[list[float], float]:
    """``tries`` rogue-to-repair latencies on one agent; and its reconcile interval."""
    from agent.config import parse_config
    from agent.daemon import Agent

    name = f"bench-drift-{int(nmea)}"
    base = f"sim://ec25?name={name}&seed=2&ttff=1"
    modem_cfg: dict[str, Any] = {"port": f"{base}&port=at"}
    if nmea:
        modem_cfg["nmea_port"] = f"{base}&port=nmea"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = parse_config({"modem": modem_cfg, "state": {"dir": str(tmp / "state")},
                               "control": {"socket": str(tmp / "c.sock")}})
        agent = Agent(config)
        agent.start()
        try:
            wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
            modem = sim.modem_for(name)
            samples: list[float] = []
            for _ in range(tries):
                samples.append(_repaired_after_rogue(agent, modem, nmea=nmea))
                time.sleep(0.3 + (len(samples) % 7) * 0.5)  # spread the rogue over the check period
        finally:
            agent.stop()
            sim.forget(name)
    return samples, config.modem.reconcile_interval_s


def drift_latency(tries: int) -> dict[str, Result]:
    sim.register()
    results: dict[str, Result] = {}
    for nmea in (False, True):
        samples, interval = _drift_samples(tries, nmea=nmea)
        limit = 1.0 + 2.0 if nmea else interval + 1.0
        worst, p50 = max(samples), statistics.median(samples)
        results["drift_latency_nmea" if nmea else "drift_latency_periodic"] = {
            "value": f"p50 {p50:.2f} s, max {worst:.2f} s", "unit": f"over {tries} tries",
            "baseline": interval, "ratio": round(worst / interval, 3),
            "target": f"max <= {limit:g} s", "pass": worst <= limit}
    return results


def daemon_idle(seconds: float, *, location_on: bool = True) -> dict[str, Result]:
    from agent.control import request

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        simulator, links = start_simulator(tmp)
        processes = [simulator]
        try:
            wait_until(lambda: all(path.exists() for path in links.values()), 15)
            daemon = start_daemon(write_daemon_config(tmp, links))
            processes.append(daemon)
            wait_until(lambda: (tmp / "c.sock").exists(), 15)
            time.sleep(1)
            if location_on:
                request(tmp / "c.sock", "location.on", {"wait_s": 10})
            time.sleep(2)
            cpu = cpu_share(daemon.pid, seconds)
            rss = rss_mb(daemon.pid)
            fixes = request(tmp / "c.sock", "status", None)["fixes_seen"]
        finally:
            stop_all(processes)
    if not location_on:
        return {"daemon_idle_off_cpu": {"value": round(cpu, 3), "unit": "% of one core", "baseline": 100.0,
                                        "ratio": round(cpu / 100, 5), "target": "< 1 %",
                                        "pass": cpu < 1 and fixes == 0}}
    return {
        "daemon_idle_cpu": {"value": round(cpu, 3), "unit": "% of one core", "baseline": 100.0,
                            "ratio": round(cpu / 100, 5), "target": "< 2 %", "pass": cpu < 2 and fixes > 0},
        "daemon_idle_rss": {"value": round(rss, 1), "unit": "MB", "baseline": 40.0, "ratio": round(rss / 40, 3),
                            "target": "< 40 MB", "pass": rss < 40},
    }


def run(quick: bool) -> dict[str, Result]:
    results = {
        "at_roundtrip_pty": at_roundtrip(500 if quick else 1000),
        "gate_latency": gate_latency(200),
        "hardware_off_latency": hardware_off_latency(9 if quick else 20),
        **periodic_check(9 if quick else 30),
    }
    results.update(daemon_idle(15 if quick else 60))
    results.update(daemon_idle(15 if quick else 60, location_on=False))
    results.update(drift_latency(5 if quick else 20))
    return results
