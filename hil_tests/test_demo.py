"""``privacy-agent demo --json`` runs the real daemon on the simulator and every step holds."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_json_every_step_ok() -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "demo", "--json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    names = [step["step"] for step in steps]
    for expected in ("start", "on", "fix", "off", "rogue", "repair", "ledger"):
        assert expected in names
    assert all(step["ok"] for step in steps)
    off = next(step for step in steps if step["step"] == "off")
    assert off["reply"]["observed"] == {"gnss": "off", "autogps": 0, "outport": "none"}
