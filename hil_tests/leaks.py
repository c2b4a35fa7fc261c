"""A hil test may not leave anything running behind it: a thread, a child process or an open file descriptor
that was not there before it started (module and session fixtures start before, so theirs do not count).

Threads and children get a short grace period to end, as a stopped daemon's do; what is still there then fails
the test that left it, naming it. Sockets are not counted among the descriptors: a module-scoped MQTT client (the
tests' subscriber) makes a new wake-up socket pair each time it reconnects, during whichever test restarts the
broker, and that is not the test's to close.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

GRACE_S = 3.0


def _threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.is_alive()}


def _children() -> set[int]:
    """Live child processes of this one (zombies already reaped by their owners are gone from /proc)."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _fds() -> dict[int, str]:
    found = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue  # the directory's own descriptor, closed again by now
        if not target.startswith("socket:"):
            found[int(entry.name)] = target
    return found


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    threads, children, fds = _threads(), _children(), _fds()
    yield
    deadline = time.monotonic() + GRACE_S
    while True:
        extra_threads = _threads() - threads
        extra_children = _children() - children
        if not (extra_threads or extra_children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    gc.collect()  # unreachable objects (a finished MQTT client and its wake-up socket pair) are not leaks
    extra_fds = {fd: target for fd, target in _fds().items() if fds.get(fd) != target}
    problems = []
    if extra_threads:
        problems.append("threads " + ", ".join(sorted(thread.name for thread in extra_threads)))
    if extra_children:
        problems.append("child processes " + ", ".join(map(str, sorted(extra_children))))
    if extra_fds:
        problems.append("file descriptors " + ", ".join(f"{fd}->{target}" for fd, target in sorted(extra_fds.items())))
    if problems:
        pytest.fail(f"{request.node.nodeid} left behind: " + "; ".join(problems), pytrace=False)
