"""``privacy-agent replay CAPTURE --purpose NAME --config FILE``: the integrator's dry run of a policy.

Every fix of a real capture goes through the very pipeline the daemon runs (:class:`agent.pipeline.Pipeline`:
gate, time bucket, daily cap, pseudonym, coarsening, serialisation, leak check), with a ledger and a spool in a
temporary directory that is thrown away, and without a modem. It is run as if the switch were on and verified and
the user had consented to the purpose; cross-border and guardian consents are not assumed, so the gate shows where
they would be needed. One JSON line per fix and sink says what would be uploaded (the exact bytes) or why not.

The capture's own positions are never printed (only what would leave the device), and the device secret is a fresh
random one, so the coarsened positions are of the same precision as the device's but not the same points.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import UsageError
from agent.ledger import Ledger, LedgerConfig
from agent.model import Fix, SystemClock
from agent.pipeline import Pipeline
from agent.privacy.consent import grant_change
from agent.spool import Spool


def dry_run(config: Config, purpose_name: str, fixes: Iterator[Fix]) -> Iterator[dict[str, Any]]:
    """One JSON-ready object per fix and sink of ``purpose_name``."""
    purpose = config.policy.purpose(purpose_name)
    if purpose is None:
        raise UsageError(f"unknown purpose {purpose_name!r}: the policy in the config declares no such purpose")
    policy = dataclasses.replace(config.policy, purposes=(purpose,))
    with tempfile.TemporaryDirectory(prefix="privacy-agent-dry-run-") as tmp_name:
        tmp = Path(tmp_name)
        with Ledger.open(tmp, LedgerConfig(flush_thread=False)) as ledger, Spool.open(tmp) as spool:
            pipeline = Pipeline(policy, ledger, spool, secret=secrets.token_bytes(32), clock=SystemClock(),
                                gate_state=lambda: (True, True), record_incident=lambda kind, **facts: None)
            if not purpose.is_exception:
                pipeline.consents.apply(grant_change(policy, purpose.name, 0))
            for fix in fixes:
                for verdict in pipeline.on_fix(fix):
                    yield _line(fix, verdict.sink, verdict.outcome, verdict.reason, verdict.body)
                spool.purge_all()  # nothing is ever sent; the spool only proves the payload was queueable


def _line(fix: Fix, sink: str, outcome: str, reason: str, body: bytes | None) -> dict[str, Any]:
    assert fix.time is not None
    return {
        "fix_time": fix.time.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "sink": sink,
        "upload": outcome == "queued",
        "outcome": outcome,
        "why": reason,
        "payload": None if body is None else json.loads(body),
    }
