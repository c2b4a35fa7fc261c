"""The agent under test as a real ``privacy-agent run`` process: config file, start, SIGKILL, stop, requests.

The AT port is opened through pyserial's ``spy://`` (which dumps to stderr) and the NMEA port with
``spy://...?file=/dev/stdout``: the hex and text dump of all traffic comes back on the process's two pipes (a
pipe is never truncated when the port is reopened after a reboot, as a ``file=`` would be), beside the daemon's
log lines on stderr.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from agent.control import request

TRANSCRIPT_LINES = 400  # per stream: enough to see a failure's context, bounded for a long soak
STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def write_config(path: Path, at_port: str, nmea_port: str | None, workdir: Path, agent: Mapping[str, Any]) -> None:
    """The daemon's TOML config; with ``uploads`` a purpose whose file sink and local feed the runner watches."""
    lines = [
        "[modem]",
        f'port = "spy://{at_port}"',
        *([f'nmea_port = "spy://{nmea_port}?file=/dev/stdout"'] if nmea_port else []),
        f"reconcile_interval_s = {float(agent['reconcile_interval_s'])}",
        "verify_timeout_s = 10",
        "[state]",
        f'dir = "{workdir / "state"}"',
        "[control]",
        f'socket = "{workdir / "control.sock"}"',
    ]
    if agent["uploads"]:
        lines += [
            "[policy]", 'version = "rig-1"', 'home_region = "CN"',
            "[[purpose]]", 'name = "rig-tracking"', 'description = "Uploads the rig watches while location is off"',
            'legal_basis = "consent"', "grid_m = 2000", "time_bucket_s = 1", "max_points_per_day = 86400",
            'sinks = ["outbox"]',
            "[[sink]]", 'name = "outbox"', f'url = "file://{workdir / "outbox.jsonl"}"',
            'recipient = "Rig"', 'region = "CN"',
            "[local_feed]", f'link = "{workdir / "feed"}"', 'purpose = "rig-tracking"',
        ]
    path.write_text("\n".join(lines) + "\n")


class DaemonProcess:
    """One daemon at a time on a fixed config; SIGKILL and restart keep the same state dir and socket."""

    def __init__(self, config: Path, socket: Path) -> None:
        self.config = config
        self.socket = socket
        self.at_transcript: collections.deque[str] = collections.deque(maxlen=TRANSCRIPT_LINES)
        self.nmea_transcript: collections.deque[str] = collections.deque(maxlen=TRANSCRIPT_LINES)
        self._process: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []
        self.expected_exit = False

    def start(self) -> None:
        """Start the daemon; one left running (two restarts in a row) is killed first, never orphaned."""
        self.kill()
        self.expected_exit = False
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(self.config)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                         env=env, preexec_fn=_die_with_parent)
        assert self._process.stdout is not None and self._process.stderr is not None
        self._readers = [self._reader(self._process.stderr, self.at_transcript),
                         self._reader(self._process.stdout, self.nmea_transcript)]

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would end it."""
        if self._process is not None and self._process.poll() is None:
            self.expected_exit = True
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._join_readers()

    def stop(self) -> bool:
        """SIGTERM and wait; False when it did not exit in time (a hang; then it is killed)."""
        if self._process is None or self._process.poll() is not None:
            self._join_readers()
            return True
        self.expected_exit = True
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
            clean = True
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            clean = False
        self._join_readers()
        return clean

    def crashed(self) -> bool:
        """True when the process ended without being told to."""
        return self._process is not None and not self.expected_exit and self._process.poll() is not None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def request(self, op: str, timeout_s: float = 15.0, **args: Any) -> dict[str, Any]:
        return request(self.socket, op, args or None, timeout_s=timeout_s)

    def _reader(self, stream: IO[bytes], into: collections.deque[str]) -> threading.Thread:
        def run() -> None:
            for raw in stream:
                into.append(raw.decode("ascii", "replace").rstrip("\n"))
            stream.close()

        thread = threading.Thread(target=run, name="rig-transcript", daemon=True)
        thread.start()
        return thread

    def _join_readers(self) -> None:
        for thread in self._readers:
            thread.join(timeout=5)
        self._readers = []


def _die_with_parent() -> None:
    """In the child: SIGKILL when the rig (the thread that started it) dies. An orphaned daemon would keep
    reopening the pty links, and a later run's ptys can get the same /dev/pts numbers: it would lock them and
    fail that run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the rig then relies on its own stop()
