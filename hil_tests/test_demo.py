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
    for expected in ("start", "consent", "on", "fix", "upload", "uploads", "off", "stopped", "withdraw", "rogue",
                     "repair", "ledger"):
        assert expected in names
    assert all(step["ok"] for step in steps)
    off = next(step for step in steps if step["step"] == "off")
    assert off["reply"]["observed"] == {"gnss": "off", "autogps": 0, "outport": "none"}
    uploads = [step for step in steps if step["step"] == "upload"]
    for step in uploads:
        raw, sent = step["raw"], step["upload"]
        assert (raw["lat"], raw["lon"]) != (sent["lat"], sent["lon"])
        assert abs(raw["lat"] - sent["lat"]) < 0.05 and sent["accuracy_m"] >= 2000
