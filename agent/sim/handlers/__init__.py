"""The simulated module's command set, as the firmware's is: a table from command name to handler.

A handler takes the modem, the channel the command came on and the parsed command, and returns the
information lines of its reply; it raises :class:`agent.sim.results.CommandFailed` for an error result.
Each module of this package contributes the handlers of one area; :func:`command_table` joins them.
"""

from __future__ import annotations

from agent.sim.handlers import basic, gnss, lookups, network, paths
from agent.sim.handlers.types import Handler

__all__ = ["Handler", "command_table"]


def command_table() -> dict[str, Handler]:
    """Every command the simulated firmware knows, by name (``+QGPS``, ``E``, ``""`` for a bare ``AT``)."""
    return {**basic.HANDLERS, **network.HANDLERS, **gnss.HANDLERS, **paths.HANDLERS, **lookups.HANDLERS}
