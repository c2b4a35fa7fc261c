"""The gate for readers on the device itself (the local NMEA feed): may this purpose get location now?

:func:`agent.privacy.gate.decide` without a sink: the same rules, in the same order and with the same ids, except
the two about the recipient (``undeclared-sink``, ``cross-border``), since a local reader is on this device. An
exception purpose is refused, as for uploads: the feed is nothing but location.
"""

from __future__ import annotations

from agent.privacy.consent import Consents
from agent.privacy.gate import Decision, decide
from agent.privacy.policy import Policy

LOCAL_SINK = "local"  # the name decisions are logged under, for ``privacyctl why``


def decide_local(*, switch_on: bool, observed_known: bool, policy: Policy, purpose_name: str,
                 consents: Consents) -> Decision:
    """The first rule that refuses, or ``ok``."""
    return decide(switch_on=switch_on, observed_known=observed_known, policy=policy, purpose_name=purpose_name,
                  sink_name=None, consents=consents)
