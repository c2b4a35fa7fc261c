"""Builders for the Quectel AT commands the agent sends.

Strategy: every builder checks every argument first and raises ``UsageError`` before any text exists, so a
value from a config file or a request can never smuggle a second command (``;``), a line end or a stray
quote into the port. Strings are quoted, numbers are not; ranges come from the reference sheet (sections 1-4).
Each builder also fixes the reply prefix (what the AT core routes to the response) and a timeout hint.
"""

from __future__ import annotations

import re

from agent.at import Command
from agent.errors import UsageError

DEFAULT_TIMEOUT_S = 3.0
CFUN_TIMEOUT_S = 15.0  # a reset (CFUN=1,1) answers only once the radio is down; ModemManager allows 15 s
QPOWD_TIMEOUT_S = 5.0

_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f";]')
_CFG_KEY = re.compile(r"[A-Za-z0-9_./-]{1,32}")
_MAX_CFG_INT = 0xFFFFFFFF  # agpsposmode is a 32-bit mask
_MAX_CFG_TEXT = 64

NMEA_TYPES = frozenset({"GGA", "RMC", "GSV", "GSA", "VTG", "GLL", "GNS"})

# Known QGPSCFG keys and the values each accepts (reference sheet 1.6); other keys are only checked for safe
# characters, because firmwares add keys and the modem itself rejects what it does not know.
_CFG_INT_RANGES: dict[str, range | tuple[int, ...]] = {
    "nmeasrc": range(0, 2),
    "gpsnmeatype": range(0, 64),
    "glonassnmeatype": range(0, 8),
    "galileonmeatype": range(0, 2),
    "beidounmeatype": range(0, 4),
    "gsvextnmeatype": range(0, 2),
    "gnssconfig": range(0, 9),
    "odpcontrol": range(0, 3),
    "dpoenable": range(0, 3),
    "plane": range(0, 3),
    "autogps": range(0, 2),
    "suplver": range(1, 3),
    "fixfreq": (1, 2, 5, 10),
    "apflash": range(0, 2),
}
_OUTPORTS = frozenset(
    {"none", "usbnmea", "uartdebug", "uartnmea", "auxnmea", "cmux1", "cmux2", "cmux3", "cmux4"}
)


# -- argument checks -----------------------------------------------------------------------------------------
def _check_int(name: str, value: object, allowed: range | tuple[int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer", argument=name)
    if value not in allowed:
        raise UsageError(f"{name} is out of range", argument=name, allowed=_describe(allowed))
    return value


def _describe(allowed: range | tuple[int, ...]) -> str:
    if isinstance(allowed, range):
        return f"{allowed.start}..{allowed.stop - 1}"
    return ",".join(map(str, allowed))


def _check_text(name: str, value: object, *, max_len: int = _MAX_CFG_TEXT) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string", argument=name)
    if not value or len(value) > max_len:
        raise UsageError(f"{name} must be 1..{max_len} characters", argument=name)
    if _FORBIDDEN.search(value) or not value.isascii():
        raise UsageError(f"{name} holds a forbidden character (CR, LF, ';', '\"', control or non-ASCII)",
                         argument=name)
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false", argument=name)
    return value


def _quote(text: str) -> str:
    return f'"{text}"'


# -- general -------------------------------------------------------------------------------------------------
def at() -> Command:
    """``AT``: is anybody there?"""
    return Command("AT", prefix=None)


def ate(on: bool) -> Command:
    """``ATE1``/``ATE0``: command echo on or off."""
    return Command(f"ATE{int(_check_bool('on', on))}", prefix=None)


def cmee(n: int) -> Command:
    """``AT+CMEE=<n>``: 0 plain ERROR, 1 numeric ``+CME ERROR: n``, 2 verbose."""
    return Command(f"AT+CMEE={_check_int('n', n, range(0, 3))}", prefix="+CMEE")


def ati() -> Command:
    """``ATI``: manufacturer, model and revision as bare lines."""
    return Command("ATI", prefix=None)


def cgsn() -> Command:
    """``AT+CGSN``: the IMEI as a bare line (personal data)."""
    return Command("AT+CGSN", prefix=None)


def gsn() -> Command:
    """``AT+GSN``: the IMEI as a bare line (personal data)."""
    return Command("AT+GSN", prefix=None)


def cimi() -> Command:
    """``AT+CIMI``: the IMSI as a bare line (personal data)."""
    return Command("AT+CIMI", prefix=None)


def qccid() -> Command:
    """``AT+QCCID``: the SIM's ICCID (personal data)."""
    return Command("AT+QCCID", prefix="+QCCID")


def cnum() -> Command:
    """``AT+CNUM``: the subscriber number, if the SIM holds one (personal data)."""
    return Command("AT+CNUM", prefix="+CNUM")


def qgmr() -> Command:
    """``AT+QGMR``: the full firmware version as a bare line."""
    return Command("AT+QGMR", prefix=None)


def cgmm() -> Command:
    """``AT+CGMM``: the model as a bare line."""
    return Command("AT+CGMM", prefix=None)


# -- network -------------------------------------------------------------------------------------------------
def qeng_servingcell() -> Command:
    """``AT+QENG="servingcell"``: the serving cell (location-bearing)."""
    return Command('AT+QENG="servingcell"', prefix="+QENG")


def creg_read() -> Command:
    return Command("AT+CREG?", prefix="+CREG")


def cereg_read() -> Command:
    return Command("AT+CEREG?", prefix="+CEREG")


def creg_set(n: int) -> Command:
    """``AT+CREG=<n>``: 0 no URC, 1 status URCs, 2 status with LAC/cell ID (location-bearing)."""
    return Command(f"AT+CREG={_check_int('n', n, range(0, 4))}", prefix="+CREG")


def cereg_set(n: int) -> Command:
    """``AT+CEREG=<n>``: 0 no URC, 1 status URCs, 2.. status with TAC/cell ID (location-bearing)."""
    return Command(f"AT+CEREG={_check_int('n', n, range(0, 6))}", prefix="+CEREG")


def cfun_read() -> Command:
    return Command("AT+CFUN?", prefix="+CFUN")


def cfun_set(fun: int, reset: int | None = None) -> Command:
    """``AT+CFUN=<fun>[,<reset>]``: 0 minimum, 1 full, 4 RF off; ``reset=1`` reboots the module."""
    text = f"AT+CFUN={_check_int('fun', fun, (0, 1, 4))}"
    if reset is not None:
        text += f",{_check_int('reset', reset, range(0, 2))}"
    return Command(text, prefix="+CFUN", timeout_s=CFUN_TIMEOUT_S)


def qpowd(mode: int = 1) -> Command:
    """``AT+QPOWD=<mode>``: power down (1 normal, 0 immediate); ``POWERED DOWN`` follows as a URC."""
    return Command(f"AT+QPOWD={_check_int('mode', mode, range(0, 2))}", prefix="+QPOWD",
                   timeout_s=QPOWD_TIMEOUT_S)


# -- GNSS ----------------------------------------------------------------------------------------------------
def qgps_read() -> Command:
    """``AT+QGPS?``: is the GNSS engine on (``+QGPS: 1``)?"""
    return Command("AT+QGPS?", prefix="+QGPS")


def qgps_test() -> Command:
    """``AT+QGPS=?``: capability probe."""
    return Command("AT+QGPS=?", prefix="+QGPS")


# (name, allowed range, default used when a later argument is given but this one is not)
_QGPS_OPTIONS: tuple[tuple[str, range, int], ...] = (
    ("fixmaxtime", range(1, 256), 30),
    ("fixmaxdist", range(0, 1001), 50),
    ("fixcount", range(0, 1001), 0),
    ("fixrate", range(1, 65536), 1),
)


def qgps_on(
    mode: int = 1,
    fixmaxtime: int | None = None,
    fixmaxdist: int | None = None,
    fixcount: int | None = None,
    fixrate: int | None = None,
) -> Command:
    """``AT+QGPS=<mode>[,<fixmaxtime>[,<fixmaxdist>[,<fixcount>[,<fixrate>]]]]``: start the GNSS engine.

    Trailing options left at None are omitted; an option left at None before a given one gets its
    documented default, because the positional syntax cannot skip it.
    """
    given = (fixmaxtime, fixmaxdist, fixcount, fixrate)
    parts = [str(_check_int("mode", mode, range(1, 5)))]
    last = max((index for index, value in enumerate(given) if value is not None), default=-1)
    for (name, allowed, default), value in zip(_QGPS_OPTIONS[: last + 1], given, strict=False):
        parts.append(str(_check_int(name, default if value is None else value, allowed)))
    return Command(f"AT+QGPS={','.join(parts)}", prefix="+QGPS")


def qgps_end() -> Command:
    """``AT+QGPSEND``: stop the GNSS engine (``+CME ERROR: 505`` if it was not on)."""
    return Command("AT+QGPSEND", prefix="+QGPSEND")


def qgpsloc(mode: int) -> Command:
    """``AT+QGPSLOC=<mode>``: the fix; mode 0 ddmm.mmmmN, 1 ddmm.mmmmmm,N, 2 signed decimal degrees."""
    return Command(f"AT+QGPSLOC={_check_int('mode', mode, range(0, 3))}", prefix="+QGPSLOC")


def qgpscfg_read(key: str) -> Command:
    """``AT+QGPSCFG="<key>"``: read one GNSS setting."""
    return Command(f"AT+QGPSCFG={_quote(_check_cfg_key(key))}", prefix="+QGPSCFG")


def qgpscfg_set(key: str, *values: str | int) -> Command:
    """``AT+QGPSCFG="<key>",<value>...``: strings are quoted, integers are not.

    Known keys (``autogps``, ``outport``, ``nmeasrc``, ``gnssconfig``...) are checked against their ranges.
    """
    key = _check_cfg_key(key)
    if not values:
        raise UsageError("qgpscfg_set needs at least one value", argument="values", key=key)
    rendered = [_render_cfg_value(key, index, value) for index, value in enumerate(values)]
    return Command(f"AT+QGPSCFG={_quote(key)},{','.join(rendered)}", prefix="+QGPSCFG")


def _check_cfg_key(key: object) -> str:
    text = _check_text("key", key)
    if not _CFG_KEY.fullmatch(text):
        raise UsageError("key may hold letters, digits and _ . / - only", argument="key")
    return text


def _render_cfg_value(key: str, index: int, value: object) -> str:
    name = f"value {index + 1} of {key}"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UsageError(f"{name} must be a string or an integer", argument=name)
    if index == 0 and key.lower() in _CFG_INT_RANGES:
        return str(_check_int(name, value, _CFG_INT_RANGES[key.lower()]))
    unknown_port = not isinstance(value, str) or value.lower() not in _OUTPORTS
    if index == 0 and key.lower() == "outport" and unknown_port:
        raise UsageError(f"{name} is not a known NMEA output port", argument=name,
                         allowed=",".join(sorted(_OUTPORTS)))
    if isinstance(value, int):
        return str(_check_int(name, value, range(0, _MAX_CFG_INT + 1)))
    return _quote(_check_text(name, value))


def qgpsgnmea(sentence_type: str) -> Command:
    """``AT+QGPSGNMEA="<type>"``: one NMEA sentence type over AT (needs ``nmeasrc``=1 and GNSS on)."""
    text = _check_text("sentence_type", sentence_type, max_len=3).upper()
    if text not in NMEA_TYPES:
        raise UsageError("sentence_type is not a supported NMEA type", argument="sentence_type",
                         allowed=",".join(sorted(NMEA_TYPES)))
    return Command(f"AT+QGPSGNMEA={_quote(text)}", prefix="+QGPSGNMEA")
