"""What the supervisor answers (the switch's status, why a change is not confirmed, the ledger's report) and what
it tells systemd."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from agent import systemd
from agent.enforcer import Enforcer, Outcome
from agent.incident_log import iso_utc
from agent.state import Desired


def location_view(desired: Desired, *, gate_open: bool, enforcer: Enforcer, last: Outcome | None,
                  now_mono: float, interval_s: float, modem_connected: bool) -> dict[str, Any]:
    """What the user asked, what the modem said and when, and whether that still counts as verified.

    A read-back older than the reconcile interval is never called verified: the periodic check runs well
    within the interval, so a fresh one is always on its way while the modem answers."""
    observed = enforcer.observed
    read_at = observed.read_at
    age = None if observed.read_at_mono is None else max(0.0, now_mono - observed.read_at_mono)
    fresh = age is not None and age <= interval_s
    matches = last is not None and last.desired_on == desired.location_on
    verified = enforcer.enforced and matches and fresh
    return {
        "desired": desired.label,
        "gate": "open" if gate_open else "closed",
        "enforced": verified,
        "verified_at": None if read_at is None or not verified else iso_utc(read_at),
        "observed": observed.as_dict(),
        "observed_at": None if read_at is None else iso_utc(read_at),
        "observed_age_s": None if age is None else round(age, 1),
        "modem_connected": modem_connected,
        "paths": enforcer.path_labels(),
        "path_settings": enforcer.path_settings(),
    }


def why_unconfirmed(*, modem_connected: bool, last: Outcome | None, wait_s: float) -> str:
    if not modem_connected:
        return f"the modem is unreachable; not confirmed within {wait_s:g} s"
    if last is not None and last.error is not None:
        return f"the modem did not answer; not confirmed within {wait_s:g} s"
    if last is not None and last.observed.known:
        return f"the modem still reports another state; not confirmed within {wait_s:g} s"
    return f"no answer from the modem within {wait_s:g} s"


def plain(value: Any) -> Any:
    """A report (dataclasses, bytes) as JSON-ready values."""
    if hasattr(value, "__dataclass_fields__"):
        return {key: plain(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


def tell_systemd(ready: threading.Event, outcome: Outcome, desired: Desired) -> None:
    """Ready once the switch is verified on the modem (or off, which is safe unverified); the status line."""
    if outcome.enforced and not ready.is_set():
        ready.set()
        systemd.notify("READY=1\nSTATUS=location " + desired.label + ", verified on the modem")
    elif not outcome.enforced:
        systemd.notify("STATUS=location " + desired.label + ", modem state not verified; gate closed")
        if not ready.is_set() and not desired.location_on:
            # Off and unverifiable is still safe (the gate is closed): do not hold up the boot.
            ready.set()
            systemd.notify("READY=1")
