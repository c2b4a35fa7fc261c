"""The shape of a command handler."""

from __future__ import annotations

from collections.abc import Callable

from agent.sim.lookups import Lookups
from agent.sim.parser import Command

# The top layer below SimModem: a handler typed with a lower layer (PowerAndBoot) fits as well.
Handler = Callable[[Lookups, str, Command], list[str]]
