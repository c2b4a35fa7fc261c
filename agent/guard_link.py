"""The host's side of the on-module guard: keeps its persisted switch in step with the host's."""

from __future__ import annotations

import logging
from typing import Any

from agent.errors import AgentError
from agent.state import Desired

log = logging.getLogger("privacy-agent")


class GuardLink:
    """Keeps the on-module guard's persisted switch in step with the host's (QuecPython modules only).

    The guard is learnt by a version query (after start and every modem reboot); a module without one is fine.
    ``sync`` returns a short problem description when a module that has the guard did not take the switch: the
    supervisor records it as an incident, and the host gate is unaffected (it depends on the modem alone).
    """

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.version: str | None = None
        self._probed = False
        self._synced_generation: int | None = None

    def forget(self) -> None:
        self._probed = False
        self._synced_generation = None

    def describe(self) -> dict[str, Any]:
        return {"port": self.url, "present": self.version is not None, "version": self.version,
                "in_step": self._synced_generation is not None}

    def sync(self, desired: Desired) -> str | None:
        from agent.guard import GuardClient

        if self._probed and (self.version is None or self._synced_generation == desired.generation):
            return None
        try:
            with GuardClient(self.url, self.timeout_s) as client:
                if not self._probed:
                    self.version = client.version()
                    self._probed = True
                if self.version is None:
                    return None
                status = client.set_switch(desired.location_on)
        except AgentError as exc:
            log.warning("on-module guard did not take the switch: %s", exc)
            return type(exc).__name__
        if bool(status.get("on")) != desired.location_on:
            return "guard reports the other state"
        self._synced_generation = desired.generation
        return None

