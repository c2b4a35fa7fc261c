"""The gate for readers on the device itself (the local NMEA feed): may this purpose get location now?

The same rules as :func:`agent.privacy.gate.decide`, in the same order and with the same ids, except the two
about the recipient (``undeclared-sink``, ``cross-border``): a local reader is on this device, so there is no
sink and no region. An exception purpose is refused, as for uploads: the feed is nothing but location.
"""

from __future__ import annotations

from agent.privacy.consent import Consents
from agent.privacy.gate import Decision
from agent.privacy.policy import Policy

LOCAL_SINK = "local"  # the name decisions are logged under, for ``privacyctl why``

_OK = Decision(True, "ok", "Every condition holds: the switch is on and the purpose is declared and allowed.")
_REFUSALS = {
    "switch-off": "The location switch is off.",
    "observed-unknown": "The modem's real location state is not known yet, so nothing is given out.",
    "undeclared-purpose": "The policy does not declare this purpose.",
    "exception-no-location": "This purpose relies on a legal exception and may never carry location.",
    "no-consent": "This purpose has no consent for its current description.",
    "minor-without-guardian": "The user is a minor and no guardian has consented.",
}


def _refuse(rule: str) -> Decision:
    return Decision(False, rule, _REFUSALS[rule])


def decide_local(*, switch_on: bool, observed_known: bool, policy: Policy, purpose_name: str,
                 consents: Consents) -> Decision:
    """The first rule that refuses, or ``ok``."""
    if switch_on is not True:
        return _refuse("switch-off")
    if observed_known is not True:
        return _refuse("observed-unknown")
    purpose = policy.purpose(purpose_name)
    if purpose is None:
        return _refuse("undeclared-purpose")
    if purpose.is_exception:
        return _refuse("exception-no-location")
    if not consents.granted(purpose):
        return _refuse("no-consent")
    if policy.subject.minor and not (policy.subject.guardian_consent or consents.guardian()):
        return _refuse("minor-without-guardian")
    return _OK
