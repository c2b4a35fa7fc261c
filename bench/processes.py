"""What the benchmarks that run the daemon as a process share: starting the simulator and the daemon, waiting for
them, and reading their CPU time and memory from /proc (not a benchmark module itself: bench/run.py runs only
bench_*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Process = subprocess.Popen[bytes]


def start_simulator(directory: Path) -> tuple[Process, dict[str, Path]]:
    """``privacy-agent sim`` in its own process, its AT and NMEA ports on pty links in ``directory`` (the links
    appear once it serves them)."""
    links = {"at": directory / "ttyAT", "nmea": directory / "ttyNMEA"}
    process = subprocess.Popen([sys.executable, "-m", "agent", "sim", "--pty-link", str(links["at"]),
                                "--nmea-pty-link", str(links["nmea"]), "--ttff", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, links


def write_daemon_config(directory: Path, links: dict[str, Path], extra: str = "") -> Path:
    """A daemon config on the simulator's links, its state and control socket (``c.sock``) in ``directory``;
    ``extra`` is appended TOML (policy, purposes, sinks, the local feed)."""
    config = directory / "config.toml"
    config.write_text(f'[modem]\nport = "{links["at"]}"\nnmea_port = "{links["nmea"]}"\n'
                      f'[state]\ndir = "{directory / "state"}"\n[control]\nsocket = "{directory / "c.sock"}"\n'
                      + extra)
    return config


def start_daemon(config: Path) -> Process:
    """``privacy-agent run`` in its own process (its control socket appears once it serves)."""
    return subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_all(processes: Sequence[Process]) -> None:
    """Terminate the processes, the last started first, and wait for each."""
    for process in reversed(processes):
        process.terminate()
        process.wait(timeout=15)


def cpu_share(pid: int, seconds: float) -> float:
    """The process's CPU use over the next ``seconds``, in percent of one core."""
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before) * 100


def wait_until(predicate: Callable[[], object], timeout_s: float) -> bool:
    """Poll ``predicate`` every 10 ms until it is true (True) or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_kb() -> int:
    """This process's peak resident memory in kB (``VmHWM``).

    Not ``ru_maxrss``: Linux carries that across exec, and a child that subprocess starts with vfork inherits its
    large parent's peak through it; ``VmHWM`` belongs to the process's own memory map, new at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise OSError("no VmHWM in /proc/self/status")


def require_within(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """Like :func:`wait_until`, but a benchmark that cannot start says so instead of measuring nothing."""
    if not wait_until(predicate, timeout_s):
        raise TimeoutError(f"{what} did not come up within {timeout_s:g} s")
