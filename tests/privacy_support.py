"""Shared builders for the privacy tests: a policy document, fixes, secrets."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from agent.model import Fix
from agent.privacy.policy import Policy, parse_policy

SECRET = bytes(range(32))

BASE_DOC: dict[str, Any] = {
    "modem": {"port": "sim://ec25"},  # not a policy table: parse_policy must ignore it
    "policy": {"version": "2020-09-08", "home_region": "CN"},
    "purpose": [
        {
            "name": "fleet-tracking",
            "description": "Show the vehicle's approximate position to the fleet operator",
            "legal_basis": "consent",
            "grid_m": 2000,
            "time_bucket_s": 900,
            "max_points_per_day": 96,
            "retention_days": 30,
            "sinks": ["operator", "abroad"],
        },
        {
            "name": "malfunction",
            "description": "Report modem faults",
            "legal_basis": "exception:malfunction-detection",
            "fields": ["hdop", "satellites"],
            "sinks": ["operator"],
        },
    ],
    "sink": [
        {"name": "operator", "url": "file:///var/lib/privacy-agent/outbox.jsonl", "recipient": "Example Fleet Ltd",
         "region": "CN"},
        {"name": "abroad", "url": "mqtts://broker.example.com:8883/fleet/up", "recipient": "Example GmbH",
         "region": "EU", "ca_file": "/etc/ssl/ca.pem"},
    ],
}


def doc(**changes: Any) -> dict[str, Any]:
    """A deep copy of BASE_DOC with top-level tables replaced."""
    result = copy.deepcopy(BASE_DOC)
    result.update(changes)
    return result


def policy(**changes: Any) -> Policy:
    return parse_policy(doc(**changes))


def fix_at(lat: float, lon: float, when: dt.datetime | None = None, **extra: Any) -> Fix:
    return Fix("GGA", True, when or dt.datetime(2024, 5, 1, 12, 34, 56, tzinfo=dt.UTC), lat, lon, **extra)
