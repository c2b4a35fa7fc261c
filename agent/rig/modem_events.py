"""Carry out a scenario's modem events on a simulated module, through ``agent.sim``'s public API only.

Each function starts the event now and returns the follow-ups that end it (a replug after an unplug, the end
of a garbled stretch), as ``(delay_s, action)`` pairs for the player to run later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.errors import PortUnavailable
from agent.rig.scenario import Event
from agent.sim import SimModem

FollowUp = tuple[float, Callable[[], None]]
NO_FIX_TTFF_S = 1e9  # time to first fix that never comes within a run

# action -> fault class of the test-rig notes it injects (for the soak's per-class counts)
FAULT_CLASS = {
    "bytewise": "F1", "coalesce": "F1", "reboot": "F12", "garble": "F3", "unplug": "F13", "rogue": "rogue",
    "urc_inside": "F11", "drop": "F8", "delay": "F8", "busy": "F10", "final": "F9", "shuffle": "F14",
    "stale_fix": "F7", "no_fix": "F7", "kill": "kill",
}


def apply(modem: SimModem, event: Event) -> list[FollowUp]:
    """Start ``event`` (a modem action) on ``modem``; ValueError for an agent-side action."""
    handler = _HANDLERS.get(event.action)
    if handler is None:
        raise ValueError(f"{event.action} is not a modem event")
    return handler(modem, event.args)


def _reboot(modem: SimModem, args: Any) -> list[FollowUp]:
    modem.reboot()
    return []


def _unplug(modem: SimModem, args: Any) -> list[FollowUp]:
    channel = None if args["channel"] == "all" else args["channel"]
    modem.unplug(channel)
    return [(float(args["seconds"]), lambda: modem.replug(channel))]


def _rogue(modem: SimModem, args: Any) -> list[FollowUp]:
    """Another program on the module's second AT interface sends one line; its replies are read and dropped.
    While that interface is away (unplugged, rebooting) the program's write fails and nothing happens."""
    try:
        modem.write("at2", args["line"].encode("ascii") + b"\r")
    except PortUnavailable:
        return []
    return [(0.5, lambda: _drain(modem, "at2"))]


def _drain(modem: SimModem, channel: str) -> None:
    try:
        while modem.read(channel, 4096):
            pass
    except PortUnavailable:
        pass  # gone again since: its output went with it


def _garble(modem: SimModem, args: Any) -> list[FollowUp]:
    probability = float(args["probability"])
    channel = args["channel"]
    with modem.lock:
        if channel in ("nmea", "all"):
            modem.faults.garbage_nmea = probability
        if channel in ("at", "at2", "all"):
            modem.faults.garbage_at = probability

    def end() -> None:
        with modem.lock:
            modem.faults.garbage_nmea = 0.0
            modem.faults.garbage_at = 0.0

    return [(float(args["seconds"]), end)]


def _bytewise(modem: SimModem, args: Any) -> list[FollowUp]:
    with modem.lock:
        modem.faults.chunk_max = int(args["chunk_max"])

    def end() -> None:
        with modem.lock:
            modem.faults.chunk_max = None

    return [(float(args["seconds"]), end)]


def _coalesce(modem: SimModem, args: Any) -> list[FollowUp]:
    with modem.lock:
        modem.faults.coalesce_s = float(args["period_s"])

    def end() -> None:
        with modem.lock:
            modem.faults.coalesce_s = 0.0

    return [(float(args["seconds"]), end)]


def _shuffle(modem: SimModem, args: Any) -> list[FollowUp]:
    with modem.lock:
        modem.faults.shuffle_lines = True

    def end() -> None:
        with modem.lock:
            modem.faults.shuffle_lines = False

    return [(float(args["seconds"]), end)]


def _rule(kind: str) -> Callable[[SimModem, Any], list[FollowUp]]:
    def add(modem: SimModem, args: Any) -> list[FollowUp]:
        faults = modem.faults
        with modem.lock:
            if kind == "urc_inside":
                faults.urc_inside(args["command"], args["urc"], times=args["times"])
            elif kind == "drop":
                faults.drop(args["command"], times=args["times"])
            elif kind == "delay":
                faults.delay(args["command"], float(args["delay_s"]), times=args["times"])
            elif kind == "busy":
                faults.busy(args["command"], args["code"], times=args["times"])
            else:
                faults.final(args["command"], args["text"], times=args["times"])
        return []

    return add


def _stale_fix(modem: SimModem, args: Any) -> list[FollowUp]:
    with modem.lock:
        modem.faults.stale_fix = True
    return []


def _no_fix(modem: SimModem, args: Any) -> list[FollowUp]:
    """The sky is blocked: the next GNSS session never gets a fix (cold start in a car park)."""
    with modem.lock:
        modem.ttff_s = NO_FIX_TTFF_S
    return []


_HANDLERS: dict[str, Callable[[SimModem, Any], list[FollowUp]]] = {
    "reboot": _reboot,
    "unplug": _unplug,
    "rogue": _rogue,
    "garble": _garble,
    "bytewise": _bytewise,
    "coalesce": _coalesce,
    "shuffle": _shuffle,
    "urc_inside": _rule("urc_inside"),
    "drop": _rule("drop"),
    "delay": _rule("delay"),
    "busy": _rule("busy"),
    "final": _rule("final"),
    "stale_fix": _stale_fix,
    "no_fix": _no_fix,
}
