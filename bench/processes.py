"""What the benchmarks that run the daemon as a process share: waiting for it, and reading its CPU time and
memory from /proc (not a benchmark module itself: bench/run.py runs only bench_*.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


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
