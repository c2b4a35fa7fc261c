"""Incidents (pure): what each kind of incident means to the user, and a rate limit for floods.

Strategy: an incident is recorded with its facts (what the code that found it knows) plus four plain-language
fields from one table, keyed by kind, so the ledger, ``privacyctl incidents``, an export and the incident hook
all say the same thing (PIPL 57: type, cause, possible harm, measures taken, what individuals can do):

- ``cause``: what happened;
- ``impact``: what it may mean for the user's data;
- ``action``: what the agent did about it;
- ``user_can``: what the user can do.

A kind missing from the table still gets the four fields (a generic wording): no incident is ever recorded
without them.

:class:`FloodLimit` keeps a flood (e.g. unauthorised control attempts) from filling the log: at most ``burst``
incidents of one kind per ``window_s``; the ones held back are counted and the count travels with the next one
recorded. It takes the monotonic time as an argument (no clock reads here).
"""

from __future__ import annotations

from dataclasses import dataclass

UNAUTHORISED_CONTROL = "unauthorised-control"
LOOKUP_WHILE_OFF = "lookup-while-off"


@dataclass(frozen=True)
class Wording:
    cause: str
    impact: str
    action: str
    user_can: str


_CHECK_INCIDENTS = "see privacyctl incidents and privacyctl status"

WORDING: dict[str, Wording] = {
    "drift": Wording(
        cause="the modem's location state differed from the switch (another program or a module reset changed it)",
        impact="while it differed the module may have computed positions; none were uploaded (the gate was closed)",
        action="the switch's state was re-applied on the modem and read back",
        user_can="look for the program that changes the modem (privacyctl incidents shows when); "
                 "privacyctl location status --check reads the modem now"),
    "state-disagrees": Wording(
        cause="the saved switch state claimed more than the tamper-evident log recorded",
        impact="a planted or stale state file could have turned location on without you",
        action="the agent started with location off and recorded the switch",
        user_can="turn location on again if you want it: privacyctl location on"),
    "ledger-head-missing": Wording(
        cause="the log's signed head file was missing at start",
        impact="records lost from the end of the log could not be ruled out",
        action="a new signed head was written; the remaining records still verify",
        user_can="privacyctl log verify; keep exports (privacyctl export) as your own copy"),
    "ledger-truncated": Wording(
        cause="records were missing below the log's last signed head (the log was shortened)",
        impact="records of past switches, consents or uploads may be lost",
        action="location was kept off until you turn it on; the loss is recorded",
        user_can="privacyctl log verify; compare with an earlier export; turn location on again if you want it"),
    "leak-blocked": Wording(
        cause="an outgoing record contained one of this device's identifiers",
        impact="none: the record was not sent",
        action="the record was dropped before it left the device",
        user_can="nothing is needed; report it to the integrator if it repeats"),
    "emergency-positioning": Wording(
        cause="the module reported emergency positioning, which the switch cannot refuse",
        impact="the module may have computed and sent a position for an emergency call",
        action="the event was recorded; uploads stayed under the switch and the policy",
        user_can=_CHECK_INCIDENTS),
    LOOKUP_WHILE_OFF: Wording(
        cause="another program made the module run a Wi-Fi scan or a cell lookup while location was off "
              "(no modem setting turns these off; the agent never sends them)",
        impact="the program that asked got the nearby access points or a position; the agent kept none of it "
               "and uploaded nothing (the gate was closed)",
        action="the results were discarded unread and every path of the switch was read back",
        user_can="find the program on the module's other AT ports and remove it; privacyctl incidents shows when"),
    UNAUTHORISED_CONTROL: Wording(
        cause="a program without the right to change the agent's state asked to change it",
        impact="none: the request was refused",
        action="the request was refused; a flood is counted, not recorded one by one",
        user_can="find the program (the incident names its uid) and remove it, or add its user to the control "
                 "group if it should be allowed"),
}

GENERIC = Wording(cause="the agent found a problem it records as an incident",
                  impact="see the incident's facts", action="recorded", user_can=_CHECK_INCIDENTS)


def wording(kind: str) -> dict[str, str]:
    """The four plain-language fields of an incident of ``kind``."""
    found = WORDING.get(kind, GENERIC)
    return {"cause": found.cause, "impact": found.impact, "action": found.action, "user_can": found.user_can}


class FloodLimit:
    """At most ``burst`` admitted per ``window_s`` (a fixed window); the rest counted as suppressed."""

    def __init__(self, *, burst: int = 5, window_s: float = 60.0) -> None:
        if burst < 1 or window_s <= 0:
            raise ValueError("burst must be at least 1 and window_s positive")
        self._burst = burst
        self._window_s = window_s
        self._window_start = float("-inf")
        self._admitted = 0
        self._suppressed = 0

    def admit(self, now_mono: float) -> int | None:
        """None when this one is held back; else how many were held back before it (then reset to 0)."""
        if now_mono - self._window_start >= self._window_s:
            self._window_start = now_mono
            self._admitted = 0
        if self._admitted >= self._burst:
            self._suppressed += 1
            return None
        self._admitted += 1
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
