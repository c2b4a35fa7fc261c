"""``privacy-agent demo``: a bounded end-to-end run of the real daemon on the built-in simulated modem.

It starts the daemon's objects (session, supervisor, ledger, upload path, control socket) in a temporary state dir,
with one declared purpose ("fleet-tracking", 2 km grid) and a file sink, drives them through the control socket
exactly as ``privacyctl`` does, and shows what really happens:

- consent granted (a durable ledger record);
- location on: fixes, and the de-identified uploads in the file sink, the raw and the uploaded position side by
  side; ``uploads`` shows the user the same bytes;
- location off: the modem's own read-back, and uploads stop;
- consent withdrawn: the purpose's queue is purged;
- another program setting ``autogps`` behind the agent's back, a modem reboot, and the agent's repair.

Prints text, or JSON lines with ``--json``. Exits 0 only when every step behaved as promised.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import sim
from agent.config import parse_config
from agent.control import request
from agent.daemon import Agent
from agent.errors import AgentError
from agent.model import Fix

DEADLINE_S = 60.0


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.failures = 0

    def step(self, name: str, text: str, ok: bool = True, **data: Any) -> None:
        if not ok:
            self.failures += 1
        if self.as_json:
            print(json.dumps({"step": name, "ok": ok, **data}, sort_keys=True), flush=True)
        else:
            print(f"{'ok ' if ok else 'FAIL'} {text}", flush=True)


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _hardware(modem: Any) -> dict[str, Any]:
    state = modem.state
    return {"gnss_on": state.gnss_on, "autogps": state.cfg.get("autogps"), "outport": state.cfg.get("outport")}


def demo_command(args: argparse.Namespace) -> int:
    out = _Printer(bool(args.json))
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sim.register()
    name = f"demo-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory(prefix="privacy-agent-demo-") as tmp:
        agent = Agent(_demo_config(Path(tmp), name))
        try:
            agent.start()
            _run(agent, name, Path(tmp) / "control.sock", out)
        except AgentError as exc:
            out.step("error", f"demo stopped: {exc}", ok=False, error=str(exc))
        finally:
            agent.stop()
            sim.forget(name)
    if not out.as_json:
        print("demo finished: all steps behaved as promised" if out.failures == 0
              else f"demo finished with {out.failures} failed step(s)")
    return 0 if out.failures == 0 else 1


PURPOSE = "fleet-tracking"


def _demo_config(tmp: Path, name: str) -> Any:
    base = f"sim://ec25?name={name}&seed=7&ttff=2"
    return parse_config({
        "modem": {"port": f"{base}&port=at", "nmea_port": f"{base}&port=nmea", "reconcile_interval_s": 5},
        "state": {"dir": str(tmp / "state")},
        "control": {"socket": str(tmp / "control.sock")},
        "policy": {"version": "demo-1", "home_region": "CN"},
        # A 1 s time bucket so that the demo shows several uploads in a few seconds; a real purpose uses minutes.
        "purpose": [{"name": PURPOSE, "description": "Show the vehicle's approximate position to the fleet operator",
                     "legal_basis": "consent", "grid_m": 2000, "time_bucket_s": 1, "max_points_per_day": 86400,
                     "sinks": ["operator"]}],
        "sink": [{"name": "operator", "url": f"file://{tmp / 'outbox.jsonl'}", "recipient": "Example Fleet Ltd",
                  "region": "CN"}],
    })


def _outbox(agent: Agent) -> list[dict[str, Any]]:
    path = agent.config.state.dir.parent / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(agent: Agent, name: str, socket: Path, out: _Printer) -> None:
    def ask(op: str, **args: Any) -> dict[str, Any]:
        return request(socket, op, args or None, timeout_s=30.0)

    ready = _wait(lambda: agent.supervisor.enforcer.enforced, 15)
    modem = sim.modem_for(name)
    status = ask("status")
    info = status.get("modem") or {}
    out.step("start", f"agent started; modem {info.get('model', '?')} ({info.get('revision', '?')}); "
             f"first start: location {status['location']['desired']} (privacy by default)", ok=ready,
             status=status)
    out.step("hardware", f"simulated modem really: {_hardware(modem)}", ok=not modem.state.gnss_on,
             hardware=_hardware(modem))

    granted = ask("consent.grant", purpose=PURPOSE)
    out.step("consent", f"consent granted for {PURPOSE} (policy {granted['policy_version']}), durable in the ledger",
             ok=bool(granted.get("recorded")), reply=granted)

    fixes: list[Fix] = []
    agent.supervisor.fix_listeners.append(fixes.append)
    reply = ask("location.on", wait_s=10)
    out.step("on", f"location on -> verified by AT+QGPS? read-back: {reply['verified']}; gate {reply['gate']}",
             ok=reply["verified"], reply=reply)
    got_fixes = _wait(lambda: sum(fix.valid for fix in fixes) >= 3, 20)
    for fix in [f for f in fixes if f.valid][:3]:
        stamp = fix.time.isoformat() if fix.time else "?"
        out.step("fix", f"fix {stamp} lat {fix.lat:.5f} lon {fix.lon:.5f} ({fix.source})",
                 time=stamp, lat=fix.lat, lon=fix.lon)
    out.step("fixes", f"{sum(f.valid for f in fixes)} fixes passed the open gate", ok=got_fixes)
    _show_uploads(agent, ask, fixes, out)

    reply = ask("location.off", wait_s=10)
    out.step("off", f"location off -> durable and gate closed before the reply; modem confirms: "
             f"{reply['observed']}", ok=reply["verified"] and reply["gate"] == "closed", reply=reply)
    out.step("hardware", f"simulated modem really: {_hardware(modem)}",
             ok=not modem.state.gnss_on and modem.state.cfg.get("autogps") == 0, hardware=_hardware(modem))
    sent = len(_outbox(agent))
    stopped = not _wait(lambda: len(_outbox(agent)) > sent, 2.5)
    out.step("stopped", f"no upload in 2.5 s after location off ({sent} in all)", ok=stopped, uploads=sent)
    withdrawn = ask("consent.withdraw", purpose=PURPOSE)
    out.step("withdraw", f"consent withdrawn: the gate for {PURPOSE} is closed and {withdrawn['purged']} queued "
             f"record(s) were purged before the reply; queue now {agent.uploads.spool.pending_count()}",
             ok=agent.uploads.spool.pending_count() == 0 and not withdrawn["granted"], reply=withdrawn)

    modem.write("at2", b'AT+QGPSCFG="autogps",1\r')
    _wait(lambda: modem.state.cfg.get("autogps") == 1, 5)
    out.step("rogue", "another program set autogps=1 behind the agent's back; rebooting the modem",
             hardware=_hardware(modem))
    modem.reboot()
    repaired = _wait(lambda: not modem.state.gnss_on and modem.state.cfg.get("autogps") == 0
                     and bool(ask("incidents")["incidents"]), 20)
    incidents = ask("incidents")["incidents"]
    out.step("repair", f"after RDY the agent found {incidents[-1]['found'] if incidents else 'nothing'} and "
             f"repaired it; modem really: {_hardware(modem)}", ok=repaired, incidents=incidents)
    verified = ask("log.verify")
    out.step("ledger", f"ledger verifies: {verified.get('verified')}", ok=bool(verified.get("verified")))


def _show_uploads(agent: Agent, ask: Callable[..., dict[str, Any]], fixes: list[Fix], out: _Printer) -> None:
    """The raw fix and what was uploaded for it, side by side; and the user's view of the same bytes."""
    arrived = _wait(lambda: len(_outbox(agent)) >= 3, 20)
    raw = {fix.time.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"): fix for fix in fixes
           if fix.valid and fix.time is not None}
    for item in _outbox(agent)[:3]:
        fix = raw.get(item["t"])
        before = f"{fix.lat:.6f}, {fix.lon:.6f}" if fix and fix.lat is not None and fix.lon is not None else "?"
        out.step("upload", f"raw {before} -> uploaded {item['lat']}, {item['lon']} (+/- {item['accuracy_m']} m), "
                 f"t {item['t']}, pseudonym {item['pseudonym'][:8]}...", ok=True, upload=item,
                 raw={"lat": fix.lat, "lon": fix.lon} if fix else None)
    shown = ask("uploads")["uploads"]
    lines = (agent.config.state.dir.parent / "outbox.jsonl").read_text().splitlines()
    same = {item["payload"] for item in shown} >= set(lines[: len(shown)]) and len(shown) > 0
    out.step("uploads", f"{len(shown)} upload(s) in the ledger; privacyctl uploads shows the bytes that left",
             ok=arrived and same, shown=len(shown))
