"""What each simulated model has: its location paths, the commands it answers, its ``AT+QGPSCFG`` keys.

From the fact sheet (reference 1.6, 1.7, 3): the EG25-G ``AT+QGPSCFG=?`` capture is the base list of the
Qualcomm models; BG96-class modules add NMEA output ports (``uartnmea``, ``auxnmea``, ``cmux1``..``cmux4``); the
EG25-G lists ``AT+QLBSCFG=?``, so it has the cell lookup ``AT+QLBS``. The EC200U is the ASR/Unisoc model: it is
the only one that scans Wi-Fi (``AT+QWIFISCAN``), it switches assistance with ``AT+QAGPS`` instead of XTRA, has
``AT+QLBS``, no SUPL server command, and the short ASR key list. No model has the old ``AT+QCELLLOC``
(EC20/MC20 only). Where the sheet is silent the choice is marked (U), a simulator assumption to check on
hardware: the BG95 without XTRA (its error table lacks the XTRA file codes 510/511), the RM500Q with the EG25-G's
key list, the A-GPS defaults, the EC200U's key list and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.sim.gnss_engine import CFG_DEFAULTS, CFG_VALUES, CfgValue, CfgValues, MultiValue, Text
from agent.sim.identity import MODEL_ALIASES

# Keys of the A-GPS paths, on every Qualcomm model of the list (reference 1.6).
_AGPS_VALUES: dict[str, CfgValues] = {
    "agpsposmode": range(0, 0x1_0000_0000),
    # The A-GPS protocol mask (bit 0 user-plane LPP, bit 1 control-plane LPP), then the A-GLONASS one
    # (0x1 CP RRLP, 0x2 CP RRC, 0x4 CP LPP, 0x100 UP RRLP, 0x400 UP LPP): the ghuvrons/quectel-ec25 gps.h.
    "agnssprotocol": MultiValue((range(0, 256), range(0, 65536))),
    # The data connection SUPL uses: PDP profile, radio technology, APN ("" = none).
    "lbsapn": MultiValue((range(0, 32), range(0, 5), Text("apn", 99))),
}
_AGPS_DEFAULTS: dict[str, CfgValue] = {
    "agpsposmode": 0x0000_0001,  # (U) stand-alone only
    "agnssprotocol": (3, 1287),  # (U) control and user plane on: the network may ask for the position
    "lbsapn": (1, 0, ""),  # (U) profile 1, no APN of its own
}
_BG96_OUTPORTS = ("none", "usbnmea", "uartdebug", "uartnmea", "auxnmea", "cmux1", "cmux2", "cmux3", "cmux4")
SUPL_URL_DEFAULT = "NULL"  # (U) no SUPL server until one is configured

# The ASR family's keys (reference 1.6: EC800M/EG800K/QuecPython); the list itself is (U) for the EC200U.
_ASR_VALUES: dict[str, CfgValues] = {
    "outport": ("none", "usbnmea", "uartnmea"),  # (U)
    "nmeasrc": range(0, 2),
    "gpsnmeatype": range(0, 64),  # GLL = 32 on top of the Qualcomm bits
    "gnssconfig": range(0, 9),  # the ASR numbering, 8 = GPS+BDS+GLO on the EG800K
    "autogps": range(0, 2),
    "apflash": range(0, 2),
    "fixfreq": (1, 2, 5, 10),
}
_ASR_DEFAULTS: dict[str, CfgValue] = {
    "outport": "usbnmea",
    "nmeasrc": 0,
    "gpsnmeatype": 63,
    "gnssconfig": 1,  # (U) GPS+BDS
    "autogps": 0,
    "apflash": 1,  # the EG800K's factory value
    "fixfreq": 1,
}
# Commands only some models have; a model without one answers ERROR, as to any unknown command.
_ASR_ONLY = frozenset({"+QWIFISCAN", "+QAGPS"})
_LBS = frozenset({"+QLBS", "+QLBSCFG"})
_QUALCOMM_ONLY = frozenset({"+QGPSXTRA", "+QGPSXTRADATA", "+QGPSSUPLURL"})


@dataclass(frozen=True, slots=True)
class SimProfile:
    """One model's command set and settings."""

    key: str
    missing: frozenset[str]  # command names that answer ERROR on this model
    cfg_values: dict[str, CfgValues]
    cfg_defaults: dict[str, CfgValue]
    agps_default: int = 0  # AT+QAGPS at the factory, on models that have it
    qgps_zero_off: bool = False  # AT+QGPS=0 turns GNSS off (ASR family, reference 1.2)


def _qualcomm(key: str, *, missing: frozenset[str] = frozenset(), outports: tuple[str, ...] | None = None,
              lbs: bool = False) -> SimProfile:
    values = {**CFG_VALUES, **_AGPS_VALUES}
    if outports is not None:
        values["outport"] = outports
    absent = _ASR_ONLY | missing | (frozenset() if lbs else _LBS)
    return SimProfile(key, absent, values, {**CFG_DEFAULTS, **_AGPS_DEFAULTS})


def _asr(key: str) -> SimProfile:
    return SimProfile(key, _QUALCOMM_ONLY, dict(_ASR_VALUES), dict(_ASR_DEFAULTS), agps_default=1,  # (U) on
                      qgps_zero_off=True)


PROFILES: dict[str, SimProfile] = {
    "ec25": _qualcomm("ec25"),
    "eg25": _qualcomm("eg25", lbs=True),
    "bg96": _qualcomm("bg96", outports=_BG96_OUTPORTS),
    "bg95": _qualcomm("bg95", missing=frozenset({"+QGPSXTRA", "+QGPSXTRADATA"}), outports=_BG96_OUTPORTS),
    "rm500q": _qualcomm("rm500q"),
    "ec200u": _asr("ec200u"),
}


def sim_profile(model: str) -> SimProfile:
    """The profile of ``model`` (an unknown one is refused earlier, by ``identity.model_profile``)."""
    key = MODEL_ALIASES.get(model.lower(), model.lower())
    return PROFILES[key]
