"""privacyctl start-up: ``privacyctl --json location status`` wall time vs ``python3 -c pass``.

The CLI is what people type, so it must stay close to a bare interpreter start. Both run as fresh
processes, alternately (so that machine noise hits both alike), against a real ControlServer in this process
whose handler answers at once; the value is the median wall time. The CLI is started the way its console
script starts it (``from agent.cli import main``), without a pyenv/venv shim in front, which would add the
same cost to both.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agent.control import ControlServer, Peer, Request  # noqa: E402

TARGET_RATIO = 2.5
LOCATION_STATUS = {"desired": "off", "gate": "closed", "enforced": True,
                   "observed": {"gnss": "off", "autogps": 0, "outport": "none"}}
CONSOLE_SCRIPT = "import sys; from agent.cli import main; sys.exit(main())"


def _answer(request: Request, peer: Peer) -> dict[str, Any]:
    return LOCATION_STATUS


def _wall_time(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=HERE.parent)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:3]} exited {done.returncode}: {done.stderr.strip()[:200]}")
    return elapsed, done.stdout


def bench_location_status(runs: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="pa-bench-", dir="/tmp"))
    server = ControlServer(folder / "control.sock", _answer)
    server.start()
    cli_argv = [sys.executable, "-c", CONSOLE_SCRIPT, "--socket", str(server.path),
                "--json", "location", "status"]
    bare_argv = [sys.executable, "-c", "pass"]
    try:
        _, output = _wall_time(cli_argv)  # warm the page cache and check the answer once
        if json.loads(output) != LOCATION_STATUS:
            raise RuntimeError("privacyctl printed something other than the agent's answer")
        _wall_time(bare_argv)
        cli_times, bare_times = [], []
        for _ in range(runs):
            cli_times.append(_wall_time(cli_argv)[0])
            bare_times.append(_wall_time(bare_argv)[0])
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    value, baseline = statistics.median(cli_times) * 1000, statistics.median(bare_times) * 1000
    ratio = value / baseline
    return {"value": round(value, 2), "unit": "ms (median)", "baseline": round(baseline, 2), "ratio": ratio,
            "target": f"<= {TARGET_RATIO} x python3 -c pass", "pass": ratio <= TARGET_RATIO}


def run(quick: bool) -> dict[str, dict[str, Any]]:
    return {"cli_location_status_wall": bench_location_status(8 if quick else 20)}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
