"""Commands and replies of the modem's location paths beyond the GNSS engine, and batched read-backs.

A location path is a way the module can reveal where it is: cell IDs in registration URCs, assistance downloads
(XTRA, or ``AT+QAGPS`` on ASR modules), a SUPL server (its URL, its APN, its version), network-initiated
positioning (``plane``, ``agpsposmode``, ``agnssprotocol``), and the lookups a program can ask for: Wi-Fi scans
and cell lookups (reference 1.6, 1.7, 3). Each :class:`PathSpec` is one setting of a path: how to read it back,
what value is off, how to turn it off. A setting whose query the modem rejects as unknown or unsupported is *not
present* on that model; any other failure leaves it unknown. Nothing here sends anything: the enforcer does.

Several read-backs can share one line (``AT+QGPS?;+QGPSXTRA?;...``, reference 4): :func:`batch` joins them and
:func:`split_batch` hands each sub-command its own lines, so the ordinary parsers read them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.at import Command, Final, Response, plus_prefix
from agent.errors import CmeError, CommandError, UsageError
from agent.quectel import commands, responses
from agent.quectel.codes import error_for

# CME codes that mean "this model has no such command or setting" (reference 2 and the 3GPP codes of 4):
# 3 not allowed, 4 not supported, 50 incorrect parameters, 501 invalid parameter, 502 not supported.
NOT_PRESENT_CODES = frozenset({3, 4, 50, 501, 502})
NOT_PRESENT = "not present"
URC_PORT = "urc-port"
SUPL_URL_OFF = "NULL"  # openpilot's AT+QGPSSUPLURL="NULL" (reference 6): no SUPL server is contacted
_MAX_URL = 128
_MAX_APN = 99
# ``plane``: 0 user plane, 1 user plane over SSL, 2 control plane (reference 1.6). ``agpsposmode`` bit 0 is
# stand-alone; the others are assisted modes (the ghuvrons/quectel-ec25 driver's gps.h names them all).
PLANE_USER = 0
PLANE_CONTROL = 2
AGPSPOSMODE_STANDALONE = 0x1
# A batched line longer than this is split in two: V.250 promises only a short command line, and the longest
# Quectel manuals show stay well under it.
MAX_BATCH_LINE = 256


# -- builders ------------------------------------------------------------------------------------------------
def cgreg_read() -> Command:
    return Command("AT+CGREG?", prefix="+CGREG")


def cgreg_set(n: int) -> Command:
    """``AT+CGREG=<n>``: 0 no URC, 1 status URCs, 2 status with LAC/cell ID (location-bearing)."""
    if isinstance(n, bool) or not isinstance(n, int) or n not in range(0, 3):
        raise UsageError("n is out of range", argument="n", allowed="0-2")
    return Command(f"AT+CGREG={n}", prefix="+CGREG")


def qgpsxtra_read() -> Command:
    """``AT+QGPSXTRA?``: are XTRA assistance downloads enabled (``+QGPSXTRA: 1``)?"""
    return Command("AT+QGPSXTRA?", prefix="+QGPSXTRA")


def qgpsxtra_set(enabled: bool) -> Command:
    """``AT+QGPSXTRA=<0|1>``; takes full effect at the next restart (reference 1.7)."""
    if not isinstance(enabled, bool):
        raise UsageError("enabled must be true or false", argument="enabled")
    return Command(f"AT+QGPSXTRA={int(enabled)}", prefix="+QGPSXTRA")


def qgpssuplurl_read() -> Command:
    """``AT+QGPSSUPLURL?``: the SUPL server the module would contact."""
    return Command("AT+QGPSSUPLURL?", prefix="+QGPSSUPLURL")


def qgpssuplurl_set(url: str) -> Command:
    """``AT+QGPSSUPLURL="<url>"``; ``"NULL"`` means none."""
    if not isinstance(url, str) or not url or len(url) > _MAX_URL or any(c in url for c in '";\r\n\x00'):
        raise UsageError("url must be 1-128 characters without quotes, ';' or line ends", argument="url")
    return Command(f'AT+QGPSSUPLURL="{url}"', prefix="+QGPSSUPLURL")


def qagps_read() -> Command:
    """``AT+QAGPS?``: are assistance downloads enabled on an ASR/Unisoc module (reference 1.7)?"""
    return Command("AT+QAGPS?", prefix="+QAGPS")


def qagps_set(enabled: bool) -> Command:
    """``AT+QAGPS=<0|1>`` (ASR/Unisoc modules)."""
    if not isinstance(enabled, bool):
        raise UsageError("enabled must be true or false", argument="enabled")
    return Command(f"AT+QAGPS={int(enabled)}", prefix="+QAGPS")


def lbsapn_set(current: Value, apn: str) -> Command:
    """``AT+QGPSCFG="lbsapn",<profile>,<rat>,"<apn>"``, keeping the profile and RAT read back in ``current``;
    an empty APN leaves SUPL no data connection of its own."""
    if not (isinstance(current, tuple) and len(current) == 3 and all(isinstance(v, int) for v in current[:2])):
        raise UsageError("current must be the (profile, rat, apn) read back", argument="current")
    if not isinstance(apn, str) or len(apn) > _MAX_APN or any(c in apn for c in '";\r\n\x00'):
        raise UsageError("apn must be 0-99 characters without quotes, ';' or line ends", argument="apn")
    profile, rat = current[0], current[1]
    return Command(f'AT+QGPSCFG="lbsapn",{profile},{rat},"{apn}"', prefix="+QGPSCFG")


def qurccfg_urcport_read() -> Command:
    """``AT+QURCCFG="urcport"``: which port URCs go to (``usbat``, ``usbmodem``, ``uart1``, ``all``; reference 4)."""
    return Command('AT+QURCCFG="urcport"', prefix="+QURCCFG")


def qwifiscan_test() -> Command:
    """``AT+QWIFISCAN=?``: does the module scan Wi-Fi at all (ASR/Unisoc modules only, reference 3)?"""
    return Command("AT+QWIFISCAN=?", prefix="+QWIFISCAN")


def qlbscfg_test() -> Command:
    """``AT+QLBSCFG=?``: does the module look its cell up on Quectel's server (``AT+QLBS``, reference 3)?"""
    return Command("AT+QLBSCFG=?", prefix="+QLBSCFG")


def qcellloc_test() -> Command:
    """``AT+QCELLLOC=?``: the older cell lookup (EC20/MC20 family, reference 3)."""
    return Command("AT+QCELLLOC=?", prefix="+QCELLLOC")


def batch(parts: Sequence[Command]) -> Command:
    """One line for several commands: ``AT+QGPS?;+QGPSXTRA?``. The longest timeout of the parts applies."""
    if not parts:
        raise UsageError("a batch needs at least one command", argument="parts")
    texts = [parts[0].text] + [part.text.removeprefix("AT") for part in parts[1:]]
    if any(";" in part.text or not part.text.startswith("AT+") for part in parts):
        raise UsageError("only single extended commands can be batched", argument="parts")
    return Command(";".join(texts), prefix=parts[0].prefix, timeout_s=max(part.timeout_s for part in parts))


def batches(parts: Sequence[Command], max_line: int = MAX_BATCH_LINE) -> list[list[Command]]:
    """``parts`` in order, cut into runs whose batched line stays within ``max_line`` characters."""
    runs: list[list[Command]] = []
    length = 0
    for part in parts:
        added = len(part.text) - 1  # ";" takes the place of the part's "AT"
        if runs and length + added <= max_line:
            runs[-1].append(part)
            length += added
        else:
            runs.append([part])
            length = len(part.text)
    return runs


def split_batch(response: Response, parts: Sequence[Command]) -> list[Response]:
    """Each part's own response out of a batch's, as if it had been sent alone.

    Lines are matched by prefix, and ``+QGPSCFG`` lines also by key, because a batch may read several keys.
    Only a batch that ended in OK can be split; a failed batch raises its error.
    """
    if not response.ok:
        raise error_for(response)
    final = Final("OK", None, "OK")
    return [Response(part, tuple(line for line in response.lines if _belongs(line, part)), final)
            for part in parts]


def _belongs(line: str, part: Command) -> bool:
    if part.prefix is None or plus_prefix(line) != part.prefix.upper():
        return False
    if part.prefix.upper() != "+QGPSCFG":
        return True
    key = part.text.split("=", 1)[1].split(",", 1)[0].strip('"').lower()
    return line.split(":", 1)[1].strip().split(",", 1)[0].strip('"').lower() == key


# -- parsers -------------------------------------------------------------------------------------------------
def parse_qgpsxtra(response: Response) -> int:
    """``+QGPSXTRA: <0|1>`` -> 0 or 1."""
    return _single_int(response, "+QGPSXTRA", range(0, 2))


def parse_qgpssuplurl(response: Response) -> str:
    """``+QGPSSUPLURL: "<url>"`` -> the URL (``NULL`` when none is set)."""
    payload = responses._first_payload(response, "+QGPSSUPLURL")
    return responses.unquote(payload.strip())


def parse_qagps(response: Response) -> int:
    """``+QAGPS: <0|1>`` -> 0 or 1."""
    return _single_int(response, "+QAGPS", range(0, 2))


def parse_urcport(response: Response) -> str:
    """``+QURCCFG: "urcport","<port>"`` -> the port, lower case."""
    fields = responses.split_fields(responses._first_payload(response, "+QURCCFG"), response.command.name)
    if len(fields) != 2 or responses.unquote(fields[0]).lower() != "urcport" or not responses.unquote(fields[1]):
        raise responses._malformed(response.command.name, "expected \"urcport\" and a port")
    return responses.unquote(fields[1]).lower()


def parse_present(response: Response) -> str:
    """Any successful answer to a test form (``AT+QWIFISCAN=?``): the module has the command."""
    if not response.ok:
        raise error_for(response)
    return "present"


def parse_agnssprotocol(response: Response) -> tuple[int, int]:
    """``+QGPSCFG: "agnssprotocol",<a-gps mask>,<a-glonass mask>`` -> both masks (0-255, 0-65535)."""
    _, values = responses.parse_qgpscfg(response)
    if len(values) != 2 or not all(isinstance(v, int) for v in values):
        raise responses._malformed(response.command.name, "agnssprotocol needs two integer masks")
    first, second = int(values[0]), int(values[1])
    if first not in range(0, 256) or second not in range(0, 65536):
        raise responses._malformed(response.command.name, "agnssprotocol mask out of range")
    return first, second


def parse_lbsapn(response: Response) -> tuple[int, int, str]:
    """``+QGPSCFG: "lbsapn",<profile>,<rat>,"<apn>"`` -> (profile, rat, apn); a missing APN is ``""``."""
    _, values = responses.parse_qgpscfg(response)
    if len(values) not in (2, 3) or not all(isinstance(v, int) for v in values[:2]):
        raise responses._malformed(response.command.name, "lbsapn needs a profile, a RAT and an APN")
    apn = str(values[2]) if len(values) == 3 else ""
    return int(values[0]), int(values[1]), apn


def parse_cfg_int(response: Response) -> int:
    """``+QGPSCFG: "<key>",<int>`` -> the integer."""
    _, values = responses.parse_qgpscfg(response)
    if not values or not isinstance(values[0], int):
        raise responses._malformed(response.command.name, "value is not an integer")
    return values[0]


def _single_int(response: Response, prefix: str, allowed: range) -> int:
    payload = responses._first_payload(response, prefix)
    value = responses._int(payload.split(",", 1)[0], response.command.name, "value")
    if value not in allowed:
        raise responses._malformed(response.command.name, "value out of range")
    return value


def is_not_present(error: CommandError) -> bool:
    """The modem rejected a query as unknown or unsupported: the path does not exist on this model."""
    if isinstance(error, CmeError):
        return error.code in NOT_PRESENT_CODES
    return type(error) is CommandError  # a plain ERROR: an unknown command


# -- the paths -----------------------------------------------------------------------------------------------
Value = int | str | tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class PathSpec:
    """One setting of a location path: how to read it, what is off, how to turn it off.

    ``group`` is the path status shows (``supl``, ``ni-positioning``): it reads off only when every setting of
    it reads off or is not present. ``name`` is the setting itself (``supl-apn``), ``drift_key`` what an
    incident names (``lbsapn``); ``off`` tells whether a value read back is safe while the switch is off;
    ``turn_off`` builds the repair from the value found, None when no value of the setting is unsafe.
    ``shows_value`` makes status print the value itself (a URC mode) rather than on/off. A ``lookup`` is a
    command that runs only when some program sends it (Wi-Fi scan, cell lookup): no setting turns it off, its
    read only proves the module has it; the agent never sends it and watches for its results instead.
    ``at_restart``: a change of the setting takes effect at the module's next restart (XTRA, reference 1.7).
    """

    name: str
    group: str
    drift_key: str
    read: Callable[[], Command]
    parse: Callable[[Response], Value]
    off: Callable[[Value], bool]
    turn_off: Callable[[Value], Command] | None
    shows_value: bool = False
    lookup: bool = False
    at_restart: bool = False


def _registration_off(value: Value) -> bool:
    return value in (0, 1)  # 2 adds LAC/TAC and cell ID; CEREG 3-5 add them too


def _standalone_only(value: Value) -> bool:
    """``agpsposmode`` is a bitmask of positioning modes; bit 0 is stand-alone, every other bit an assisted mode
    (MS-based or MS-assisted, over the user or the control plane) in which the network takes part."""
    return isinstance(value, int) and value & ~AGPSPOSMODE_STANDALONE == 0


def _no_apn(value: Value) -> bool:
    return isinstance(value, tuple) and value[2] == ""


def _lookup(name: str, group: str, read: Callable[[], Command]) -> PathSpec:
    return PathSpec(name, group, name, read, parse_present, lambda value: True, None, lookup=True)


PATHS: tuple[PathSpec, ...] = (
    PathSpec("cell-urc-creg", "cell-urc-creg", "creg", commands.creg_read, responses.parse_registration_mode,
             _registration_off, lambda value: commands.creg_set(1), shows_value=True),
    PathSpec("cell-urc-cereg", "cell-urc-cereg", "cereg", commands.cereg_read, responses.parse_registration_mode,
             _registration_off, lambda value: commands.cereg_set(1), shows_value=True),
    PathSpec("cell-urc-cgreg", "cell-urc-cgreg", "cgreg", cgreg_read, responses.parse_registration_mode,
             _registration_off, lambda value: cgreg_set(1), shows_value=True),
    PathSpec("xtra", "xtra", "xtra", qgpsxtra_read, parse_qgpsxtra, lambda value: value == 0,
             lambda value: qgpsxtra_set(False), at_restart=True),
    PathSpec("agps", "agps", "agps", qagps_read, parse_qagps, lambda value: value == 0,
             lambda value: qagps_set(False)),
    PathSpec("supl-url", "supl", "supl", qgpssuplurl_read, parse_qgpssuplurl,
             lambda value: str(value).upper() in (SUPL_URL_OFF, ""), lambda value: qgpssuplurl_set(SUPL_URL_OFF)),
    PathSpec("supl-apn", "supl", "lbsapn", lambda: commands.qgpscfg_read("lbsapn"), parse_lbsapn, _no_apn,
             lambda value: lbsapn_set(value, "")),
    # No version turns SUPL off (the URL does): read back and shown, never changed.
    PathSpec("supl-version", "supl", "suplver", lambda: commands.qgpscfg_read("suplver"), parse_cfg_int,
             lambda value: True, None),
    PathSpec("ni-plane", "ni-positioning", "plane", lambda: commands.qgpscfg_read("plane"), parse_cfg_int,
             lambda value: value != PLANE_CONTROL, lambda value: commands.qgpscfg_set("plane", PLANE_USER)),
    PathSpec("ni-posmode", "ni-positioning", "agpsposmode", lambda: commands.qgpscfg_read("agpsposmode"),
             parse_cfg_int, _standalone_only,
             lambda value: commands.qgpscfg_set("agpsposmode", AGPSPOSMODE_STANDALONE)),
    PathSpec("ni-protocols", "ni-positioning", "agnssprotocol", lambda: commands.qgpscfg_read("agnssprotocol"),
             parse_agnssprotocol, lambda value: value == (0, 0),
             lambda value: commands.qgpscfg_set("agnssprotocol", 0, 0)),
    # Not a path: where a lookup's results go, so that status says whether the agent can see them.
    PathSpec(URC_PORT, URC_PORT, "urcport", qurccfg_urcport_read, parse_urcport, lambda value: True, None,
             shows_value=True),
    _lookup("wifi-scan", "wifi-scan", qwifiscan_test),
    _lookup("cell-lookup-qlbs", "cell-lookup", qlbscfg_test),
    _lookup("cell-lookup-qcellloc", "cell-lookup", qcellloc_test),
)
# URC ports that reach the port the agent holds (the USB AT interface, ttyUSB2 on an EC25: reference 4).
URC_PORTS_WATCHED = frozenset({"usbat", "all"})
# Where each lookup's results arrive as URCs, so that the agent can see one run behind its back.
LOOKUP_URCS: dict[str, str] = {"+QWIFISCAN": "wifi-scan", "+QLBS": "cell-lookup", "+QCELLLOC": "cell-lookup"}
