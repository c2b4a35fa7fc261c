"""``privacy-agent replay CAPTURE --purpose NAME --config FILE``: the vendored gpsd captures through the real
pipeline. Their headers carry real names, e-mails and coordinates, and their sentences real positions: none of it
may come out; what comes out is what the policy lets leave, and why."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.model import Fix
from agent.nmea.fixes import FixDecoder
from agent.replay import decoded_fixes, fix_record

CORPORA = Path(__file__).resolve().parent / "corpora" / "gpsd"
CAPTURES = sorted(CORPORA.glob("*.log"))
ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[modem]
port = "sim://ec25"
[policy]
version = "1"
home_region = "CN"
[[purpose]]
name = "fleet-tracking"
description = "Show the vehicle's approximate position to the fleet operator"
legal_basis = "consent"
grid_m = 2000
time_bucket_s = 1
max_points_per_day = 86400
sinks = ["operator", "abroad"]
[[sink]]
name = "operator"
url = "file:///tmp/unused.jsonl"
recipient = "Example Fleet Ltd"
region = "CN"
[[sink]]
name = "abroad"
url = "https://fleet.example/api"
recipient = "Example Fleet GmbH"
region = "EU"
"""


def header_secrets(capture: Path) -> list[str]:
    """Names, e-mail addresses and locations from the capture's '#' header."""
    found: list[str] = []
    for raw in capture.read_bytes().splitlines():
        line = raw.decode("latin-1")
        match = re.match(r"#\s*(Submitter|Location|Name):\s*(.+?)\s*$", line)
        if not match:
            continue
        value = match.group(2).strip('"')
        found.append(value)
        found += re.findall(r"[\w.+-]+@[\w.-]+", value)  # e-mail addresses on their own
        found += re.findall(r"\d+\.\d+\s*[NSEW]", value)  # coordinates as the header writes them
        found += [word for word in re.findall(r"[A-Z][a-z]{3,}", value) if match.group(1) != "Name"]
    return found


def raw_positions(capture: Path) -> list[Fix]:
    return [fix for fix in decoded_fixes(capture, FixDecoder()) if fix_record(fix) is not None]


def exact_forms(fix: Fix) -> list[str]:
    """The raw position as a program would print it: six and more decimals, and the NMEA ddmm.mmmm form."""
    assert fix.lat is not None and fix.lon is not None
    forms = []
    for value in (fix.lat, fix.lon):
        forms += [f"{value:.6f}", f"{value:.7f}", repr(value)]
        degrees = int(abs(value))
        forms.append(f"{degrees * 100 + (abs(value) - degrees) * 60:.4f}")
    return forms


def run_dry(capture: Path, config: Path) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "agent", "replay", str(capture), "--purpose", "fleet-tracking",
                           "--config", str(config)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("capture", CAPTURES, ids=[path.name for path in CAPTURES])
def test_a_capture_replayed_through_the_policy_leaks_nothing(capture: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    lines = run_dry(capture, config)
    output = "\n".join(json.dumps(line) for line in lines)
    for secret in header_secrets(capture):
        assert secret not in output, "a header value came out"
    fixes = raw_positions(capture)
    for fix in fixes[:: max(1, len(fixes) // 200)]:
        for form in exact_forms(fix):
            assert form not in output, "a raw position came out"
    uploads = [line for line in lines if line["upload"]]
    if fixes:
        assert uploads, "a capture with positions produced no upload"
    for line in uploads:
        payload = line["payload"]
        assert isinstance(payload, dict) and line["sink"] == "operator"
        assert payload["accuracy_m"] >= 2000 and not {"altitude", "speed", "course"} & set(payload)
    assert all(line["outcome"] == "cross-border" for line in lines if line["sink"] == "abroad")


def test_an_unknown_purpose_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, "-m", "agent", "replay", str(CAPTURES[0]), "--purpose", "advertising",
                           "--config", str(config)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert done.returncode == 2 and "advertising" in done.stderr and done.stdout == ""
