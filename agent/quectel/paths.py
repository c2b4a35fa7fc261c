"""Commands and replies of the modem's location paths beyond the GNSS engine, and batched read-backs.

A location path is a way the module can reveal where it is: cell IDs in registration URCs, XTRA assistance
downloads, a SUPL server, network-initiated positioning over the control plane, Wi-Fi scans (reference 1.6,
1.7, 3). Each :class:`PathSpec` says how to read the path back, what value is off, and how to turn it off.
A path whose query the modem rejects as unknown or unsupported is *not present* on that model; any other
failure leaves it unknown. Nothing here sends anything: the enforcer does.

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
SUPL_URL_OFF = "NULL"  # openpilot's AT+QGPSSUPLURL="NULL" (reference 6): no SUPL server is contacted
_MAX_URL = 128


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


def qwifiscan_test() -> Command:
    """``AT+QWIFISCAN=?``: does the module scan Wi-Fi at all (ASR/Unisoc modules only, reference 3)?"""
    return Command("AT+QWIFISCAN=?", prefix="+QWIFISCAN")


def batch(parts: Sequence[Command]) -> Command:
    """One line for several commands: ``AT+QGPS?;+QGPSXTRA?``. The longest timeout of the parts applies."""
    if not parts:
        raise UsageError("a batch needs at least one command", argument="parts")
    texts = [parts[0].text] + [part.text.removeprefix("AT") for part in parts[1:]]
    if any(";" in part.text or not part.text.startswith("AT+") for part in parts):
        raise UsageError("only single extended commands can be batched", argument="parts")
    return Command(";".join(texts), prefix=parts[0].prefix, timeout_s=max(part.timeout_s for part in parts))


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
Value = int | str


@dataclass(frozen=True, slots=True)
class PathSpec:
    """One location path: how to read it, what is off, how to turn it off.

    ``name`` is what status shows (``xtra``, ``cell-urc-creg``) and ``drift_key`` what an incident names
    (``creg``); ``off`` tells whether a value read back is safe while the switch is off; ``turn_off`` builds
    the repair, None when the path has no setting that stops it (it then stays unsafe: fail closed);
    ``shows_value`` makes status print the value itself (a URC mode) rather than on/off.
    """

    name: str
    drift_key: str
    read: Callable[[], Command]
    parse: Callable[[Response], Value]
    off: Callable[[Value], bool]
    turn_off: Callable[[], Command] | None
    shows_value: bool = False


def _registration_off(value: Value) -> bool:
    return value in (0, 1)  # 2 adds LAC/TAC and cell ID; CEREG 3-5 add them too


def parse_wifiscan_test(response: Response) -> str:
    """Any successful answer to ``AT+QWIFISCAN=?``: the module can scan, and no setting proves it will not."""
    if not response.ok:
        raise error_for(response)
    return "present"


PATHS: tuple[PathSpec, ...] = (
    PathSpec("cell-urc-creg", "creg", commands.creg_read, responses.parse_registration_mode, _registration_off,
             lambda: commands.creg_set(1), shows_value=True),
    PathSpec("cell-urc-cereg", "cereg", commands.cereg_read, responses.parse_registration_mode,
             _registration_off, lambda: commands.cereg_set(1), shows_value=True),
    PathSpec("cell-urc-cgreg", "cgreg", cgreg_read, responses.parse_registration_mode, _registration_off,
             lambda: cgreg_set(1), shows_value=True),
    PathSpec("xtra", "xtra", qgpsxtra_read, parse_qgpsxtra, lambda value: value == 0,
             lambda: qgpsxtra_set(False)),
    PathSpec("supl", "supl", qgpssuplurl_read, parse_qgpssuplurl,
             lambda value: str(value).upper() in (SUPL_URL_OFF, ""), lambda: qgpssuplurl_set(SUPL_URL_OFF)),
    PathSpec("ni-positioning", "ni-positioning", lambda: commands.qgpscfg_read("agnssprotocol"), parse_cfg_int,
             lambda value: value == 0, lambda: commands.qgpscfg_set("agnssprotocol", 0)),
    PathSpec("wifi-scan", "wifi-scan", qwifiscan_test, parse_wifiscan_test, lambda value: False, None),
)
