"""What kind of fix a sentence reports: NMEA 0183 mode indicators and GGA quality, as ``Fix.mode`` names.

Two fields say it. GGA's quality (field 6) is a number::

    0 invalid  1 autonomous (GPS SPS)  2 differential  3 precise (PPS)  4 rtk (fixed integers)
    5 float-rtk  6 estimated (dead reckoning)  7 manual (input)  8 simulator

RMC, GLL, VTG (NMEA 2.3 and later) and GNS (one letter per constellation) carry a mode indicator::

    A autonomous  D differential  E estimated  F float-rtk  M manual  N invalid  P precise  R rtk
    S simulator

RMC and GLL also keep their older status field (A valid, V warning). NMEA 0183 says how the two go together:
"The Mode indicator field supplements the Status field. The Status field shall be set to V=invalid for all
values of Operating Mode except for A=Autonomous and D=Differential" (the RMC note of NMEA 0183 from 2.3 on,
as printed in receiver manuals' appendices: Furuno FM-8800D for 2.3; JRC NWZ-1650 for 4.x, which adds F, P
and R and gives GLL the same note). So a V beside ``E``, ``F``, ``R`` or ``P`` is the standard's own flag for
"not a plain GNSS fix", not a lost fix: when the indicator is there, it decides; V with ``A`` or ``D`` (the
receiver contradicts itself) is read as invalid; without an indicator (before 2.3) the status alone decides,
and the mode is not known (``None``).

Which modes count as positions (``Fix.valid``):

- autonomous, differential, precise, rtk, float-rtk: measured positions.
- estimated: dead reckoning (the receiver carries the last fix forward with its own motion sensors or model).
  A real position of lower quality, and nothing in the standard says otherwise: it has its own GGA quality
  (6) and mode letter, distinct from "no fix" (0, N), and its status V is the same flag RTK fixes get. It
  stays valid and is marked ``"estimated"`` so that a consumer can weigh it.
- simulator and manual: not measured where the receiver is (a simulated track, a position typed in). They
  never count as positions; the fix keeps the mode so that it can be shown.
- invalid: no fix. A value the standard does not define (GGA quality 9, an unknown letter) is read as
  invalid too: what cannot be read is never taken as a position.
"""

from __future__ import annotations

from typing import Final

AUTONOMOUS: Final = "autonomous"
DIFFERENTIAL: Final = "differential"
PRECISE: Final = "precise"
RTK: Final = "rtk"
FLOAT_RTK: Final = "float-rtk"
ESTIMATED: Final = "estimated"
MANUAL: Final = "manual"
SIMULATOR: Final = "simulator"
INVALID: Final = "invalid"

# From the finest to the coarsest. When the sentences of one epoch disagree, the finest wins: a receiver that
# speaks NMEA 2.3 has no letter for RTK and sends D in its RMC beside quality 4 in its GGA (gpsd's
# nmea-fuzzy-cases capture does exactly that).
POSITION_MODES: Final = (RTK, FLOAT_RTK, PRECISE, DIFFERENTIAL, AUTONOMOUS, ESTIMATED)
_FINENESS: Final = {mode: rank for rank, mode in enumerate(POSITION_MODES)}  # 0 the finest
NOT_MEASURED: Final = frozenset({SIMULATOR, MANUAL})

GGA_QUALITY_MODES: Final = (INVALID, AUTONOMOUS, DIFFERENTIAL, PRECISE, RTK, FLOAT_RTK, ESTIMATED, MANUAL, SIMULATOR)
INDICATOR_MODES: Final = {
    "A": AUTONOMOUS,
    "D": DIFFERENTIAL,
    "E": ESTIMATED,
    "F": FLOAT_RTK,
    "M": MANUAL,
    "N": INVALID,
    "P": PRECISE,
    "R": RTK,
    "S": SIMULATOR,
}
_STATUS_IS_ENOUGH: Final = frozenset({AUTONOMOUS, DIFFERENTIAL})  # the only modes the standard flags with A


def quality_mode(quality: int | None) -> str:
    """GGA's quality as a mode; an empty or undefined quality is invalid."""
    if quality is None or quality >= len(GGA_QUALITY_MODES):
        return INVALID
    return GGA_QUALITY_MODES[quality]


def status_mode(status: str, indicator: str | None) -> str | None:
    """RMC's or GLL's status and mode indicator as a mode. ``None``: a valid status without an indicator
    (NMEA before 2.3), a position whose mode was not said."""
    if indicator is None:
        return None if status == "A" else INVALID
    mode = INDICATOR_MODES.get(indicator, INVALID)
    if mode in _STATUS_IS_ENOUGH and status != "A":
        return INVALID
    return mode


def constellations_mode(indicators: str) -> str:
    """GNS's mode field, one letter per constellation, as the mode of the fix they make together.

    A simulated or manual letter makes the whole fix so (fail closed); otherwise the finest of the measured
    letters; no measured letter at all (``NNN``, empty, unknown letters) is invalid.
    """
    modes = {INDICATOR_MODES.get(letter, INVALID) for letter in indicators}
    for mode in (SIMULATOR, MANUAL, *POSITION_MODES):
        if mode in modes:
            return mode
    return INVALID


def is_position(mode: str | None) -> bool:
    """Whether a sentence in this mode reports a position (``None``: valid, mode not said)."""
    return mode is None or mode in _FINENESS


def finer(mode: str | None, other: str | None) -> str | None:
    """The finer of two position modes (``None`` only when neither is known)."""
    if mode is None:
        return other
    if other is None:
        return mode
    return mode if _FINENESS[mode] <= _FINENESS[other] else other
