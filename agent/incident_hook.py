"""The incident hook (adapter): ``[incidents] command = [...]`` runs with each incident as JSON on its stdin, so an
integrator can forward it (e-mail, MQTT, an LED).

Strategy: the daemon never waits for the hook. ``submit`` puts the incident on a bounded queue (the oldest is
dropped, and counted, when the hook falls behind) and returns; one thread runs the command for each incident in
its own session (process group), with stdin the incident's JSON, stdout and stderr discarded, and a deadline. A
hook that outlives the deadline is killed with its whole process group. Every failure (cannot start, non-zero
exit, killed at the deadline, incidents dropped) is handed to ``on_failure`` to be recorded, never raised: the
hook cannot affect the daemon. The hook's own failures are not incidents (a failing hook would otherwise feed
itself).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
QUEUE_LIMIT = 64

FailureSink = Callable[[dict[str, Any]], None]


def run_once(command: Sequence[str], incident: Mapping[str, Any], timeout_s: float) -> str | None:
    """Run the hook for one incident; None when it exited 0 in time, else what went wrong (no identifiers)."""
    payload = json.dumps(dict(incident), sort_keys=True, separators=(",", ":")).encode() + b"\n"
    try:
        process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError as exc:
        return f"cannot start the hook: {exc.strerror or type(exc).__name__}"
    try:
        process.communicate(payload, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return f"the hook did not finish within {timeout_s:g} s and was killed"
    except OSError:  # the hook closed stdin early: only its exit status counts
        process.wait(timeout=timeout_s)
    if process.returncode != 0:
        return f"the hook exited with status {process.returncode}"
    return None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    try:
        process.communicate(timeout=5.0)
    except (subprocess.TimeoutExpired, OSError, ValueError):
        pass


class IncidentHook:
    """Runs the hook for each submitted incident on its own thread; see the module docstring."""

    def __init__(self, command: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_failure: FailureSink, queue_limit: int = QUEUE_LIMIT) -> None:
        if not command:
            raise ValueError("the hook command must not be empty")
        self.command = tuple(command)
        self.timeout_s = timeout_s
        self._on_failure = on_failure
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._limit = queue_limit
        self._dropped = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # finished runs, successful or not (for status and tests)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="incident-hook", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 6.0)

    def submit(self, incident: Mapping[str, Any]) -> None:
        """Queue ``incident`` for the hook; never blocks, never raises."""
        with self._cond:
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(dict(incident))
            self._cond.notify()

    def _next(self) -> tuple[dict[str, Any] | None, int]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None, 0
            dropped, self._dropped = self._dropped, 0
            return self._queue.popleft(), dropped

    def _loop(self) -> None:
        while True:
            incident, dropped = self._next()
            if incident is None:
                return
            if dropped:
                self._fail({"kind": incident.get("kind", "?"), "problem": f"{dropped} incidents were dropped: "
                            "the hook fell behind"})
            problem = run_once(self.command, incident, self.timeout_s)
            self.runs += 1
            if problem is not None:
                self._fail({"kind": incident.get("kind", "?"), "problem": problem})

    def _fail(self, failure: dict[str, Any]) -> None:
        log.warning("incident hook: %s", failure["problem"])
        try:
            self._on_failure(failure)
        except Exception:  # recording the failure must not end the hook thread
            log.exception("cannot record the incident hook's failure")
