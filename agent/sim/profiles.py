"""What each simulated model has: its location paths, the commands it answers, its ``AT+QGPSCFG`` keys.

From the fact sheet (reference 1.6, 1.7, 3): the EG25-G ``AT+QGPSCFG=?`` capture is the base list; BG96-class
modules add NMEA output ports (``uartnmea``, ``auxnmea``, ``cmux1``..``cmux4``); Wi-Fi scans (``AT+QWIFISCAN``)
exist only on ASR/Unisoc modules, so none of these models answers them. Where the sheet is silent the choice
is marked (U), a simulator assumption to check on hardware: the BG95 without XTRA (its error table lacks the
XTRA file codes 510/511), the RM500Q with the EG25-G's key list, the A-GPS defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.sim.gnss_engine import CFG_DEFAULTS, CFG_VALUES, CfgValues
from agent.sim.identity import MODEL_ALIASES

# Keys of the A-GPS paths, on every Qualcomm model of the list (reference 1.6).
_AGPS_VALUES: dict[str, CfgValues] = {
    "agpsposmode": range(0, 0x1_0000_0000),
    "agnssprotocol": range(0, 256),  # (U) a bitmask of control-plane protocols; 0 = none
}
_AGPS_DEFAULTS: dict[str, str | int] = {
    "agpsposmode": 0x0000_0001,  # (U) stand-alone only
    "agnssprotocol": 7,  # (U) control-plane protocols on: the network may ask for the position
}
_BG96_OUTPORTS = ("none", "usbnmea", "uartdebug", "uartnmea", "auxnmea", "cmux1", "cmux2", "cmux3", "cmux4")
SUPL_URL_DEFAULT = "NULL"  # (U) no SUPL server until one is configured


@dataclass(frozen=True, slots=True)
class SimProfile:
    """One model's command set and settings."""

    key: str
    missing: frozenset[str]  # command names that answer ERROR on this model
    cfg_values: dict[str, CfgValues]
    cfg_defaults: dict[str, str | int]


def _qualcomm(key: str, *, missing: frozenset[str] = frozenset(), outports: tuple[str, ...] | None = None
              ) -> SimProfile:
    values = {**CFG_VALUES, **_AGPS_VALUES}
    if outports is not None:
        values["outport"] = outports
    return SimProfile(key, frozenset({"+QWIFISCAN"}) | missing, values, {**CFG_DEFAULTS, **_AGPS_DEFAULTS})


PROFILES: dict[str, SimProfile] = {
    "ec25": _qualcomm("ec25"),
    "eg25": _qualcomm("eg25"),
    "bg96": _qualcomm("bg96", outports=_BG96_OUTPORTS),
    "bg95": _qualcomm("bg95", missing=frozenset({"+QGPSXTRA"}), outports=_BG96_OUTPORTS),
    "rm500q": _qualcomm("rm500q"),
}

def sim_profile(model: str) -> SimProfile:
    """The profile of ``model`` (an unknown one is refused earlier, by ``identity.model_profile``)."""
    key = MODEL_ALIASES.get(model.lower(), model.lower())
    return PROFILES[key]
