"""The upload pipeline: fix to a de-identified, leak-checked, ledgered, spooled record.

``pipeline_records``: records/s through :class:`agent.pipeline.Pipeline` (gate, access record, time bucket, daily
cap, pseudonym, coarsening, serialisation, leak check, durable spool put), one upload per fix, against the bare
ledger's durable append rate (one fsynced record each) measured in the same run on the same disk; the two take
turns. Targets: at least 0.5x, and at least 100x the real 1 Hz rate.

``daemon_mqtt_cpu`` / ``daemon_mqtt_rss``: the daemon (its own process) at 1 Hz with one consented purpose whose
bucket is 1 s, uploading every fix to a real mosquitto on loopback, against a simulator in another process: CPU
share of one core (< 2 %) and RSS (< 40 MB). Skipped when mosquitto is not installed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from processes import cpu_share, rss_mb, start_daemon, start_simulator, stop_all, wait_until, write_daemon_config  # noqa: E402

from agent.ledger import Ledger, LedgerConfig  # noqa: E402
from agent.model import DeviceIds, Fix, SystemClock  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.privacy.consent import grant_change  # noqa: E402
from agent.privacy.leakcheck import LeakCheck  # noqa: E402
from agent.privacy.policy import parse_policy  # noqa: E402
from agent.spool import Spool  # noqa: E402

POLICY = parse_policy({
    "policy": {"version": "1", "home_region": "CN"},
    "purpose": [{"name": "fleet", "description": "Fleet position", "legal_basis": "consent", "time_bucket_s": 1,
                 "max_points_per_day": 86400, "sinks": ["operator"]}],
    "sink": [{"name": "operator", "url": "file:///dev/null", "recipient": "Example", "region": "CN"}],
})
IDS = DeviceIds(imei="861234567890123", imsi="460001234567890", iccid="89860012345678901234", msisdn="13800138000")
START = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


def _fixes(count: int, offset: int) -> list[Fix]:
    return [Fix(source="RMC", valid=True, time=START + dt.timedelta(seconds=offset + index),
                lat=31.2304567 + index * 1e-6, lon=121.4737890, hdop=0.9) for index in range(count)]


def _pipeline(directory: Path, ledger: Ledger) -> Pipeline:
    spool = Spool.open(directory)
    pipeline = Pipeline(POLICY, ledger, spool, secret=b"k" * 32, clock=SystemClock(),
                        gate_state=lambda: (True, True), record_incident=lambda kind, **facts: None)
    pipeline.consents.apply(grant_change(POLICY, "fleet", 0))
    pipeline.leak_check = LeakCheck.for_device(IDS, [("1A2B3C4", "5E1F")])
    return pipeline


def pipeline_records(rounds: int, per_round: int) -> dict[str, Any]:
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory(dir=".") as tmp_name:
        tmp = Path(tmp_name)
        with Ledger.open(tmp / "pipeline", LedgerConfig()) as ledger, \
                Ledger.open(tmp / "bare", LedgerConfig()) as bare_ledger:
            pipeline = _pipeline(tmp / "pipeline", ledger)
            for index in range(rounds):
                fixes = _fixes(per_round, index * per_round)
                started = time.perf_counter()
                for fix in fixes:
                    pipeline.on_fix(fix)
                ours.append(per_round / (time.perf_counter() - started))
                started = time.perf_counter()
                for _ in range(per_round):
                    bare_ledger.append("consent", {"purpose": "fleet", "granted": True})
                bare.append(per_round / (time.perf_counter() - started))
            queued = pipeline.queued
    rate, baseline = statistics.median(ours), statistics.median(bare)
    assert queued == rounds * per_round, f"only {queued} records were queued"
    ratio = rate / baseline
    return {"value": round(rate, 1), "unit": "records/s", "baseline": round(baseline, 1), "ratio": round(ratio, 3),
            "target": ">= 0.5x durable ledger append and >= 100/s", "pass": ratio >= 0.5 and rate >= 100}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(tmp: Path, links: dict[str, Path], port: int) -> Path:
    return write_daemon_config(tmp, links, (
        '[policy]\nversion = "1"\nhome_region = "CN"\n'
        '[[purpose]]\nname = "fleet"\ndescription = "Fleet position"\nlegal_basis = "consent"\n'
        'time_bucket_s = 1\nmax_points_per_day = 86400\nsinks = ["broker"]\n'
        f'[[sink]]\nname = "broker"\nurl = "mqtt://127.0.0.1:{port}/fleet/up"\nrecipient = "Fleet"\nregion = "CN"\n'))


def daemon_mqtt(seconds: float) -> dict[str, dict[str, Any]]:
    from agent.control import request

    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if mosquitto is None:
        return {"daemon_mqtt_cpu": {"value": None, "unit": "", "baseline": None, "ratio": None,
                                    "target": "mosquitto installed", "pass": False}}
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = _free_port()
        (tmp / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                                            + ("user root\n" if os.getuid() == 0 else ""))
        try:
            processes.append(subprocess.Popen([mosquitto, "-c", str(tmp / "mosquitto.conf")],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            simulator, links = start_simulator(tmp)
            processes.append(simulator)
            wait_until(lambda: all(path.exists() for path in links.values()), 15)
            daemon = start_daemon(_config(tmp, links, port))
            processes.append(daemon)
            wait_until(lambda: (tmp / "c.sock").exists(), 15)
            time.sleep(1)
            request(tmp / "c.sock", "consent.grant", {"purpose": "fleet"})
            request(tmp / "c.sock", "location.on", {"wait_s": 10})
            time.sleep(3)
            uploads_before = len(request(tmp / "c.sock", "uploads", None)["uploads"])
            cpu = cpu_share(daemon.pid, seconds)
            rss = rss_mb(daemon.pid)
            uploads = len(request(tmp / "c.sock", "uploads", None)["uploads"]) - uploads_before
        finally:
            stop_all(processes)
    delivering = uploads >= seconds * 0.5
    return {
        "daemon_mqtt_cpu": {"value": round(cpu, 3), "unit": f"% of one core ({uploads} uploads)", "baseline": 100.0,
                            "ratio": round(cpu / 100, 5), "target": "< 2 %", "pass": cpu < 2 and delivering},
        "daemon_mqtt_rss": {"value": round(rss, 1), "unit": "MB", "baseline": 40.0, "ratio": round(rss / 40, 3),
                            "target": "< 40 MB", "pass": rss < 40},
    }


def run(quick: bool) -> dict[str, dict[str, Any]]:
    results = {"pipeline_records": pipeline_records(5 if quick else 15, 100 if quick else 200)}
    results.update(daemon_mqtt(15 if quick else 60))
    return results


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
