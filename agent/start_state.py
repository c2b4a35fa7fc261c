"""The start-state decision: the ledger's last switch record against its copy in ``desired.json``.

The ledger decides; the file is only its copy (see :meth:`agent.supervisor.Supervisor.load_desired`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.ledger import Ledger
from agent.state import Desired

DEFAULT = "default"  # neither exists (first start): off, recorded as the first switch
FAIL_CLOSED = "fail-closed"  # the file claims more than the ledger holds: off, recorded, reported
LEDGER = "ledger"  # the ledger's last switch stands


@dataclass(frozen=True)
class StartState:
    """How the supervisor starts: ``reason`` is one of the three above; ``generation`` is the one a new
    switch record (off) takes, and ``known`` the ledger's last generation (0 when it holds none)."""

    reason: str
    generation: int = 0
    known: int = 0


def decide(from_file: Desired | None, from_ledger: Desired | None) -> StartState:
    """The ledger wins; an "on" it never acknowledged is never applied."""
    if from_ledger is None and (from_file is None or not from_file.location_on):
        return StartState(DEFAULT, generation=from_file.generation if from_file else 0)
    if from_file is not None and claims_more(from_file, from_ledger):
        known = from_ledger.generation if from_ledger is not None else 0
        return StartState(FAIL_CLOSED, generation=max(from_file.generation, known) + 1, known=known)
    assert from_ledger is not None
    return StartState(LEDGER, generation=from_ledger.generation, known=from_ledger.generation)


def last_switch(ledger: Ledger) -> Desired | None:
    record = ledger.last_record_of_type("switch")
    if record is None:
        return None
    fields = record.fields
    return Desired(location_on=fields.get("desired") == "on", generation=int(fields.get("generation", 0)),
                   changed_at_ms=int(record.time_ms))


def claims_more(from_file: Desired, from_ledger: Desired | None) -> bool:
    """Whether desired.json says something the ledger never acknowledged."""
    if from_ledger is None:
        return True
    if from_file.generation != from_ledger.generation:
        return from_file.generation > from_ledger.generation
    return from_file.location_on != from_ledger.location_on



@dataclass(frozen=True)
class Loss:
    """Records the ledger may have lost: the notice for ``status`` and the incident's kind and facts."""

    notice: str
    kind: str
    facts: dict[str, Any] = field(default_factory=dict)


def ledger_losses(ledger: Ledger) -> list[Loss]:
    """Records missing below the newest signed head, as the ledger found them when it opened."""
    found = []
    if ledger.head_missing:
        found.append(Loss("the ledger's head file was missing: records lost from the end of the log could not be "
                          "ruled out (a new signed head was written)", "ledger-head-missing"))
    loss = ledger.truncation
    if loss is not None:
        found.append(Loss(f"the ledger lost {loss.missing} records below its last signed head "
                          f"({loss.found_size} of {loss.head_size} remain)", "ledger-truncated",
                          {"missing": loss.missing, "head_size": loss.head_size, "found_size": loss.found_size}))
    return found
