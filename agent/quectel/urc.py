"""Classification of unsolicited result codes (URCs) from Quectel modules.

Strategy: a pure function from one line to a small frozen value. It never raises: an unknown or malformed
line is ``OTHER`` (registration URCs that cannot be parsed keep ``registration=None``), because a URC the
agent does not understand must never stop the reader. Boot lines (reference sheet section 4) mean the
module lost its volatile state; ``RDY`` is the one that marks the reset itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.at import plus_prefix
from agent.errors import RemoteProtocolError
from agent.quectel.paths import LOOKUP_URCS
from agent.quectel.responses import Registration, parse_cereg, parse_cgreg, parse_creg


class UrcKind(enum.Enum):
    BOOT = "boot"  # RDY, APP RDY, +CFUN, +CPIN, +QUSIM, +QIND: SMS DONE/PB DONE
    POWERED_DOWN = "powered_down"  # POWERED DOWN, NORMAL POWER DOWN
    REGISTRATION = "registration"  # +CREG, +CEREG, +CGREG (may carry cell location)
    GNSS = "gnss"  # +QGPSURC
    LOOKUP = "lookup"  # +QWIFISCAN, +QLBS, +QCELLLOC: a Wi-Fi scan's or cell lookup's results
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class UrcInfo:
    """What one URC line is.

    ``name`` is the line's ``+X`` prefix or its plain text for known plain URCs (safe to log);
    ``registration`` is set for parsable registration URCs (location-bearing when ``carries_location``).
    """

    kind: UrcKind
    name: str
    registration: Registration | None = None

    @property
    def is_reset(self) -> bool:
        """True for ``RDY``: the module has just (re)booted."""
        return self.name == "RDY"

    @property
    def carries_location(self) -> bool:
        return self.registration is not None and self.registration.carries_location


_PLAIN: dict[str, UrcKind] = {
    "RDY": UrcKind.BOOT,
    "APP RDY": UrcKind.BOOT,
    "SMS DONE": UrcKind.BOOT,
    "PB DONE": UrcKind.BOOT,
    "POWERED DOWN": UrcKind.POWERED_DOWN,
    "NORMAL POWER DOWN": UrcKind.POWERED_DOWN,
}
_BOOT_PREFIXES = frozenset({"+CFUN", "+CPIN", "+QUSIM"})
_BOOT_QIND = frozenset({"SMSDONE", "PBDONE"})
_REGISTRATION_PARSERS = {"+CREG": parse_creg, "+CEREG": parse_cereg, "+CGREG": parse_cgreg}


def _qind_is_boot(line: str) -> bool:
    detail = line.split(":", 1)[1] if ":" in line else ""
    return "".join(char for char in detail.upper() if char.isalnum()) in _BOOT_QIND


def _registration(line: str, prefix: str) -> UrcInfo:
    try:
        registration: Registration | None = _REGISTRATION_PARSERS[prefix](line)
    except RemoteProtocolError:
        registration = None
    return UrcInfo(UrcKind.REGISTRATION, prefix, registration)


def classify_urc(line: str) -> UrcInfo:
    """Classify one URC line (as carried by ``agent.at.Urc``). Pure; never raises."""
    text = line.strip()
    plain = _PLAIN.get(text.upper())
    if plain is not None:
        return UrcInfo(plain, text.upper())
    prefix = plus_prefix(text)
    if prefix is None:
        return UrcInfo(UrcKind.OTHER, "")
    if prefix in _REGISTRATION_PARSERS:
        return _registration(text, prefix)
    if prefix in _BOOT_PREFIXES or (prefix == "+QIND" and _qind_is_boot(text)):
        return UrcInfo(UrcKind.BOOT, prefix)
    if prefix == "+QGPSURC":
        return UrcInfo(UrcKind.GNSS, prefix)
    if prefix in LOOKUP_URCS:
        return UrcInfo(UrcKind.LOOKUP, prefix)
    return UrcInfo(UrcKind.OTHER, prefix)
