"""Access and erasure with real processes: the daemon (``privacy-agent run``), the simulator on ptys, the
``privacyctl`` program and the offline ``privacy-agent verify-export``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

from hil_tests.conftest import wait_until
from hil_tests.test_daemon_process import location_status, privacyctl, simulator, start_daemon

__all__ = ["simulator"]  # the fixture, used by name


def test_export_erase_export_through_the_programs(tmp_path: Path, simulator: dict[str, Path]) -> None:
    daemon = start_daemon(tmp_path, simulator)
    try:
        assert wait_until(lambda: location_status(tmp_path) is not None, 20), "daemon did not answer"
        first = tmp_path / "first.zip"
        done = privacyctl(tmp_path, "export", "--out", str(first))
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["bytes"] == first.stat().st_size and summary["records"] >= 1
        refused = privacyctl(tmp_path, "export", "--out", str(first))  # exists, and a repeat besides
        assert refused.returncode == 2 and "already exists" in json.loads(refused.stdout)["error"]["message"]
        repeat = privacyctl(tmp_path, "export", "--out", str(tmp_path / "repeat.zip"))
        assert repeat.returncode == 1 and json.loads(repeat.stdout)["error"]["kind"] == "RequestRefused"
        erased = privacyctl(tmp_path, "erase", "--all")
        assert erased.returncode == 0 and json.loads(erased.stdout)["durable"] is True
        second = tmp_path / "second.zip"
        assert privacyctl(tmp_path, "export", "--out", str(second)).returncode == 0
        checked = subprocess.run([sys.executable, "-m", "agent", "verify-export", str(second), "--json"],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert checked.returncode == 0, checked.stderr
        with zipfile.ZipFile(second) as archive:
            lines = [json.loads(line) for line in archive.read("records.jsonl").splitlines()]
        outcomes = [(r["fields"]["op"], r["fields"]["outcome"]) for r in lines if r["type"] == "request"]
        assert outcomes == [("export", "answered"), ("export", "refused"), ("erase", "done")]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
