"""The shape of a command handler."""

from __future__ import annotations

from collections.abc import Callable

from agent.sim.parser import Command
from agent.sim.power import PowerAndBoot

Handler = Callable[[PowerAndBoot, str, Command], list[str]]
