"""The scenario format: a timeline of modem events and the expectations checked against the agent (pure).

A scenario is a TOML document (``docs/rig.md`` describes every key). Parsing validates everything up front and
raises :class:`~agent.errors.UsageError` naming the problem, so a typo in a rig's file never becomes a run that
silently tests nothing. :func:`schedule` turns "at a time" and "after another event" into one sorted timeline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import UsageError

# action -> (required keys, optional keys with defaults): the arguments each event takes besides its timing.
ACTIONS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "reboot": (frozenset(), {}),
    "unplug": (frozenset({"seconds"}), {"channel": "all"}),
    "rogue": (frozenset({"line"}), {}),
    "garble": (frozenset({"seconds"}), {"channel": "nmea", "probability": 1.0}),
    "bytewise": (frozenset({"seconds"}), {"chunk_max": 1}),
    "coalesce": (frozenset({"seconds"}), {"period_s": 0.5}),
    "urc_inside": (frozenset({"command", "urc"}), {"times": 1}),
    "drop": (frozenset({"command"}), {"times": 1}),
    "delay": (frozenset({"command", "delay_s"}), {"times": 1}),
    "busy": (frozenset({"command", "code"}), {"times": 1}),
    "final": (frozenset({"command", "text"}), {"times": 1}),
    "shuffle": (frozenset({"seconds"}), {}),
    "stale_fix": (frozenset(), {}),
    "no_fix": (frozenset(), {}),
    "kill": (frozenset(), {"restart_after_s": 0.5}),
    "location": (frozenset({"state"}), {}),
}
# Actions the agent's side carries out (the daemon process, privacyctl); every other action is the modem's.
AGENT_ACTIONS = frozenset({"kill", "location"})

CHECKS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "gnss_off_within": (frozenset({"within_s"}), {}),
    "no_upload_while_off": (frozenset(), {}),
    "incident": (frozenset({"kind"}), {"min_count": 1}),
    "nothing_lost": (frozenset(), {}),
    "ledger_verifies": (frozenset(), {}),
    "daemon_up": (frozenset(), {}),
}

FAULT_CLASSES = tuple(f"F{number}" for number in range(1, 16))
_ID = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TOP_KEYS = frozenset({"name", "description", "fault_class", "duration_s", "modem", "agent", "event", "expect"})
DEFAULT_MODEL = "ec25"
_MODEM_KEYS = {"model": DEFAULT_MODEL, "seed": 0, "ttff_s": 1.0}
_AGENT_KEYS = {"location": "off", "uploads": False, "reconcile_interval_s": 1.0}
_TIMING_KEYS = frozenset({"id", "do", "at", "after"})
MAX_DURATION_S = 3600.0


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happens: ``action`` with ``args``, ``at`` seconds after the start or after event ``after``."""

    action: str
    at: float
    after: str | None = None
    id: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)

    def duration(self) -> float:
        """How long the event lasts once started (an unplug, a garbled stretch); 0 for an instant."""
        return float(self.args.get("seconds", 0.0)) + float(self.args.get("restart_after_s", 0.0))


@dataclass(frozen=True, slots=True)
class Expectation:
    check: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    fault_class: str | None
    duration_s: float
    modem: Mapping[str, Any]
    agent: Mapping[str, Any]
    events: tuple[Event, ...]
    expectations: tuple[Expectation, ...]

    def timeline(self) -> list[tuple[float, Event]]:
        return schedule(self.events)

    def scripted_wait_s(self) -> float:
        """The time the scenario itself asks for: its duration (events happen inside it)."""
        return self.duration_s


def parse_scenario(data: Mapping[str, Any]) -> Scenario:
    """A validated scenario from a parsed TOML document; UsageError names the first problem found."""
    _no_unknown(data, _TOP_KEYS, "scenario")
    name = _text(data, "name", "scenario")
    if not _ID.fullmatch(name):
        raise UsageError("scenario name must be lower-case letters, digits, '-' or '_' (at most 32)")
    fault_class = data.get("fault_class")
    if fault_class is not None and fault_class not in FAULT_CLASSES:
        raise UsageError("scenario fault_class must be one of F1 to F15")
    events = tuple(_event(raw, index) for index, raw in enumerate(_tables(data, "event")))
    _check_references(events)
    expectations = tuple(_expectation(raw) for raw in _tables(data, "expect"))
    if not expectations:
        raise UsageError("a scenario needs at least one [[expect]]: a scenario that checks nothing cannot fail")
    duration = _seconds(data, "duration_s", "scenario", default=_natural_duration(events))
    if duration > MAX_DURATION_S:
        raise UsageError("scenario duration_s is longer than an hour")
    return Scenario(
        name=name,
        description=_text(data, "description", "scenario"),
        fault_class=fault_class,
        duration_s=max(duration, _natural_duration(events)),
        modem=_settings(data.get("modem", {}), _MODEM_KEYS, "[modem]"),
        agent=_agent_settings(data.get("agent", {})),
        events=events,
        expectations=expectations,
    )


def schedule(events: tuple[Event, ...]) -> list[tuple[float, Event]]:
    """Every event with its start time in seconds from the scenario's start, in time order (stable)."""
    by_id = {event.id: event for event in events if event.id}
    starts: dict[int, float] = {}

    def start_of(event: Event, depth: int = 0) -> float:
        key = id(event)
        if key not in starts:
            if depth > len(events):
                raise UsageError("scenario events refer to each other in a cycle")
            base = 0.0
            if event.after is not None:
                anchor = by_id[event.after]
                base = start_of(anchor, depth + 1) + anchor.duration()
            starts[key] = base + event.at
        return starts[key]

    timed = [(start_of(event), index, event) for index, event in enumerate(events)]
    return [(start, event) for start, _, event in sorted(timed, key=lambda item: (item[0], item[1]))]


def _natural_duration(events: tuple[Event, ...]) -> float:
    """The end of the last event, plus time for the agent to settle (reconcile, restart)."""
    ends = [start + event.duration() for start, event in schedule(events)] if events else [0.0]
    return max(ends) + 5.0


def _event(raw: Any, index: int) -> Event:
    where = f"[[event]] {index + 1}"
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where} must be a table")
    action = raw.get("do")
    if action not in ACTIONS:
        raise UsageError(f"{where}: 'do' must be one of {', '.join(sorted(ACTIONS))}")
    required, optional = ACTIONS[action]
    args = _arguments(raw, required, optional, _TIMING_KEYS, where)
    _check_event_args(action, args, where)
    event_id = raw.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not _ID.fullmatch(event_id)):
        raise UsageError(f"{where}: id must be lower-case letters, digits, '-' or '_'")
    after = raw.get("after")
    if after is not None and not isinstance(after, str):
        raise UsageError(f"{where}: 'after' must name another event's id")
    if "at" not in raw and after is None:
        raise UsageError(f"{where}: give 'at' (seconds from the start) or 'after' (another event's id)")
    return Event(action=action, at=_seconds(raw, "at", where, default=0.0), after=after, id=event_id, args=args)


def _check_event_args(action: str, args: dict[str, Any], where: str) -> None:
    for key in ("seconds", "delay_s", "restart_after_s", "period_s"):
        if key in args:
            _seconds(args, key, where)
    for key in ("times", "chunk_max", "code"):
        if key in args and (not isinstance(args[key], int) or isinstance(args[key], bool) or args[key] < 1):
            raise UsageError(f"{where}: {key} must be a whole number, at least 1")
    for key in ("line", "command", "urc"):
        if key in args and not _printable_line(args[key]):
            raise UsageError(f"{where}: {key} must be one line of printable text")
    if "text" in args and not (isinstance(args["text"], str) and (args["text"] == "" or _printable_line(args["text"]))):
        raise UsageError(f"{where}: text must be printable text (empty leaves the final result out)")
    if action == "location" and args["state"] not in ("on", "off"):
        raise UsageError(f"{where}: state must be 'on' or 'off'")
    if args.get("channel", "all") not in ("all", "at", "at2", "nmea"):
        raise UsageError(f"{where}: channel must be all, at, at2 or nmea")
    probability = args.get("probability", 0.5)
    if not isinstance(probability, int | float) or isinstance(probability, bool) or not 0 < probability <= 1:
        raise UsageError(f"{where}: probability must be a number above 0, at most 1")


def _expectation(raw: Any) -> Expectation:
    if not isinstance(raw, Mapping):
        raise UsageError("[[expect]] must be a table")
    check = raw.get("check")
    if check not in CHECKS:
        raise UsageError(f"[[expect]]: 'check' must be one of {', '.join(sorted(CHECKS))}")
    required, optional = CHECKS[check]
    args = _arguments(raw, required, optional, frozenset({"check"}), f"[[expect]] {check}")
    if "within_s" in args:
        _seconds(args, "within_s", f"[[expect]] {check}")
    if "kind" in args and not _printable_line(args["kind"]):
        raise UsageError("[[expect]] incident: kind must be an incident kind such as 'drift'")
    if "min_count" in args and (not isinstance(args["min_count"], int) or args["min_count"] < 1):
        raise UsageError("[[expect]] incident: min_count must be a whole number, at least 1")
    return Expectation(check=check, args=args)


def _arguments(raw: Mapping[str, Any], required: frozenset[str], optional: Mapping[str, Any],
               timing: frozenset[str], where: str) -> dict[str, Any]:
    _no_unknown(raw, required | set(optional) | timing, where)
    missing = sorted(required - set(raw))
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)}")
    args = dict(optional)
    args.update({key: raw[key] for key in raw if key not in timing})
    return args


def _check_references(events: tuple[Event, ...]) -> None:
    ids = [event.id for event in events if event.id]
    if len(ids) != len(set(ids)):
        raise UsageError("two scenario events have the same id")
    for event in events:
        if event.after is not None and event.after not in ids:
            raise UsageError("an event's 'after' names no event id of this scenario")
    schedule(events)  # raises on a cycle


def _agent_settings(raw: Any) -> dict[str, Any]:
    settings = _settings(raw, _AGENT_KEYS, "[agent]")
    if settings["location"] not in ("on", "off"):
        raise UsageError("[agent] location must be 'on' or 'off'")
    if not isinstance(settings["uploads"], bool):
        raise UsageError("[agent] uploads must be true or false")
    return settings


def _settings(raw: Any, defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where} must be a table")
    _no_unknown(raw, frozenset(defaults), where)
    settings = {**defaults, **raw}
    for key, default in defaults.items():
        if isinstance(default, float):
            _seconds(settings, key, where)
        elif type(settings[key]) is not type(default):
            raise UsageError(f"{where} {key} has the wrong type")
    return settings


def _tables(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise UsageError(f"'{key}' must be an array of tables ([[{key}]])")
    return value


def _no_unknown(raw: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}")


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where} needs a non-empty '{key}'")
    return value


def _seconds(data: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{where}: {key} must be a number of seconds, not negative")
    return float(value)


def _printable_line(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable()
