"""Rights benchmarks: ``privacyctl export`` through the control socket against the offline ``privacy-agent ledger
export`` of the same ledger, and ``erase --all`` against one fsync.

Every process runs on its own (the log builder, the serving agent, privacyctl, the offline tool), each reporting
its own peak RSS (``VmHWM``; ``ru_maxrss`` survives exec and would report a large parent's peak). The serving
agent is the ledger, the spool and the rights service behind a real :class:`~agent.control.ControlServer`: the
modem plays no part in an export.

Targets: socket export at least 0.8x the offline export's rate, under 100 MB peak RSS on both sides; erase --all on
10^6 records bounded by key destruction (a few fsyncs and a socket round trip: under 200 fsyncs' time),
not by the size of the log.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_PRELUDE = ("import json, sys, time\nsys.path.insert(0, {root!r})\nsys.path.insert(0, {bench!r})\n"
            "from processes import peak_kb\n")


def _code(body: str) -> str:
    return _PRELUDE.format(root=str(ROOT), bench=str(HERE)) + body

_BUILD = textwrap.dedent("""
    from pathlib import Path
    from agent.ledger import Ledger, LedgerConfig
    state, count = Path(sys.argv[1]), int(sys.argv[2])
    fields = {"id": "m", "purpose": "fleet", "sink": "operator", "status": "delivered", "recipient": "Fleet Ltd",
              "region": "CN", "bytes": 96}
    with Ledger.open(state, LedgerConfig(flush_thread=False)) as ledger:
        for index in range(count):
            body = b'{"purpose":"fleet","pseudonym":"p-7f3a9c","t":"2026-12-02T10:00:00Z","lat":31.23,"lon":121.47}'
            ledger.append("upload", fields, personal={"payload": body}, epoch=1)
            if index % 50_000 == 0:
                ledger.flush()
""")

_SERVE = textwrap.dedent("""
    import signal, threading
    from pathlib import Path
    from agent.config import RightsConfig
    from agent.control import ControlServer
    from agent.ledger import Ledger, LedgerConfig
    from agent.model import SystemClock
    from agent.privacy.policy import Policy, Purpose
    from agent.rights_requests import RightsRequests
    from agent.spool import Spool
    state, sock = Path(sys.argv[1]), Path(sys.argv[2])
    policy = Policy(version="bench", home_region="CN", purposes=(Purpose(name="fleet", description="bench"),))
    ledger = Ledger.open(state, LedgerConfig())
    spool = Spool.open(state)
    rights = RightsRequests(ledger, spool, lambda: policy, RightsConfig(repeat_window_s=0), clock=SystemClock())
    server = ControlServer(sock, lambda request, peer: rights.handle(request.op, dict(request.args), peer.uid))
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop()
    spool.close()
    ledger.close()
    print(json.dumps({"peak_kb": peak_kb()}), flush=True)
""")

_TOOL = textwrap.dedent("""
    import io
    module, argv = sys.argv[1], sys.argv[2:]
    if module == "privacyctl":
        from agent.cli import main
    else:
        from agent.main import main
    started = time.perf_counter()
    out = io.StringIO()
    code = main(argv, stdout=out) if module == "privacyctl" else main(argv)
    elapsed = time.perf_counter() - started
    print(json.dumps({"code": code, "seconds": elapsed, "output": out.getvalue(),
                      "peak_kb": peak_kb()}))
""")


def _through_shell(code: str, *args: str) -> list[str]:
    """A command that starts ``python -c code args`` from a fresh shell (its own peak RSS)."""
    command = " ".join(shlex.quote(part) for part in (sys.executable, "-c", code, *args))
    return ["sh", "-c", f"exec {command}"]  # exec: signals reach python itself


def _tool(module: str, *argv: str) -> dict[str, Any]:
    done = subprocess.run(_through_shell(_code(_TOOL), module, *argv), check=True,
                          capture_output=True, text=True, timeout=1800)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise RuntimeError(f"{module} {' '.join(argv)} failed: {done.stdout} {done.stderr}")
    return result


def _result(value: float, unit: str, baseline: float, target: str, passed: bool,
            ratio: float | None = None) -> dict[str, Any]:
    if ratio is None:
        ratio = value / baseline if baseline else None
    return {"value": round(value, 3), "unit": unit, "baseline": round(baseline, 3), "ratio": ratio,
            "target": target, "pass": passed}


def _one_fsync_s(directory: Path, rounds: int = 20) -> float:
    """The median time of one small write and fsync in the same directory: the unit an erasure is measured in."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(rounds):
            os.pwrite(fd, os.urandom(128), 0)
            started = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return sorted(times)[len(times) // 2]


class _Server:
    """The serving agent (ledger, spool, rights, control socket) in its own process."""

    def __init__(self, state: Path, sock: Path) -> None:
        self.process = subprocess.Popen(_through_shell(_code(_SERVE), str(state), str(sock)),
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the serving agent did not start")

    def stop(self) -> dict[str, Any]:
        self.process.terminate()  # the shell exec'd python: the signal reaches it
        out, _ = self.process.communicate(timeout=120)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


def bench(directory: Path, count: int) -> dict[str, dict[str, Any]]:
    state = directory / "state"
    subprocess.run(_through_shell(_code(_BUILD), str(state), str(count)), check=True, timeout=1800)
    offline = _tool("privacy-agent", "ledger", "export", "--state-dir", str(state), "--out",
                    str(directory / "offline.zip"))
    sock = directory / "control.sock"
    server = _Server(state, sock)
    try:
        online = _tool("privacyctl", "--socket", str(sock), "export", "--out", str(directory / "online.zip"),
                       "--json")
        (directory / "offline.zip").unlink()
        (directory / "online.zip").unlink()
        fsync_s = _one_fsync_s(directory)
        erased = _tool("privacyctl", "--socket", str(sock), "--json", "erase", "--all")
    finally:
        served = server.stop()
    records = json.loads(online["output"])["records"]
    online_rate, offline_rate = records / online["seconds"], records / offline["seconds"]
    client_mb, server_mb, offline_mb = (online["peak_kb"] / 1024, served["peak_kb"] / 1024,
                                        offline["peak_kb"] / 1024)
    erase = json.loads(erased["output"])
    in_fsyncs = erased["seconds"] / fsync_s
    return {
        f"rights_socket_export_rate_{count}": _result(online_rate, "records/s", offline_rate,
                                                      ">= 0.8x offline export", online_rate >= 0.8 * offline_rate),
        f"rights_socket_export_client_peak_rss_{count}": _result(client_mb, "MB", offline_mb, "< 100 MB",
                                                                 client_mb < 100),
        f"rights_socket_export_agent_peak_rss_{count}": _result(server_mb, "MB", offline_mb, "< 100 MB",
                                                                server_mb < 100),
        f"rights_erase_all_{count}": _result(erased["seconds"] * 1000, f"ms ({erase['records_erased']} records "
                                             f"erased, {erase['keys_destroyed']} keys)", fsync_s * 1000,
                                             "< 200 fsyncs (bounded by key destruction)", in_fsyncs < 200,
                                             ratio=in_fsyncs),
    }


def run(quick: bool) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-rights-", dir=os.environ.get("BENCH_DIR")) as name:
        return bench(Path(name), 50_000 if quick else 1_000_000)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
