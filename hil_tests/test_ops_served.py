"""Every op the control protocol lists is served by the running agent: none is answered "not supported"."""

from __future__ import annotations

from typing import Any

from agent.control_protocol import OP_TABLE
from agent.errors import AgentError
from hil_tests.conftest import RunningAgent

# The smallest valid arguments of the ops that require some; the rest are sent without arguments.
ARGS: dict[str, dict[str, Any]] = {
    "consent.grant": {"purpose": "fleet-tracking"},
    "consent.withdraw": {"purpose": "fleet-tracking"},
    "consent.cross_border": {"region": "EU", "granted": False},
    "consent.guardian": {"granted": False},
    "correct": {"what": "minor", "value": "no"},
    "erase": {"all": True},
    "location.on": {"wait_s": 5},
    "location.off": {"wait_s": 5},
}
STREAMED = {"export"}  # answered with a stream, through agent.control_client.stream (hil_tests/test_rights_export)


def test_every_listed_op_is_served(running_agent: RunningAgent) -> None:
    unserved = []
    for op in sorted(set(OP_TABLE) - STREAMED):
        try:
            running_agent.request(op, **ARGS.get(op, {}))
        except AgentError as exc:  # a refusal for a reason is serving it; "not supported" is not
            if "not supported" in exc.message:
                unserved.append(op)
    assert unserved == []
