"""Location lookups and the ASR assistance switch: ``+QWIFISCAN``, ``+QLBSCFG``, ``+QLBS``, ``+QAGPS``.

Which model has which is the profile's business (:mod:`agent.sim.profiles`); the state and the delayed results
are :mod:`agent.sim.lookups`'. Forms the reference does not show are marked (U).
"""

from __future__ import annotations

from agent.sim.handlers.types import Handler
from agent.sim.lookups import Lookups
from agent.sim.parser import Command
from agent.sim.results import CommandFailed, int_arg

# AT+QWIFISCAN=<time_ms>,<rounds>,<max_bssid>,<timeout_s>,<priority> (reference 3); any leading part may be given.
_WIFI_RANGES = (range(4000, 255001), range(1, 4), range(4, 11), range(1, 256), range(0, 2))
_WIFI_MAX_BSSID = 2  # index of <max_bssid> in the arguments
WIFI_DEFAULT_MAX_BSSID = 10  # (U) the exec form reports every access point it finds, up to the range's top
_LBS_MAX = {"token": 64, "server": 255}  # (U) longest value of each AT+QLBSCFG key


def qwifiscan(modem: Lookups, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return ["+QWIFISCAN: (4000-255000),(1-3),(4-10),(1-255),(0,1)"]
    if command.form == "exec":
        modem._start_wifi_scan(WIFI_DEFAULT_MAX_BSSID)
        return []
    if command.form != "set" or len(command.args) > len(_WIFI_RANGES):
        raise CommandFailed(501)  # (U) the read form, like a bad argument
    values = [int_arg(command.args, index, allowed, error=501) for index, allowed in
              enumerate(_WIFI_RANGES[: len(command.args)])]
    limit = values[_WIFI_MAX_BSSID] if len(values) > _WIFI_MAX_BSSID else WIFI_DEFAULT_MAX_BSSID
    modem._start_wifi_scan(limit)
    return []


def qlbscfg(modem: Lookups, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return ['+QLBSCFG: "token",<token>', '+QLBSCFG: "server",<server>']  # (U)
    if command.form != "set" or len(command.args) > 2:
        raise CommandFailed(501)
    key = command.args[0].lower()
    if key not in _LBS_MAX:
        raise CommandFailed(501)
    if len(command.args) == 1:
        return [f'+QLBSCFG: "{key}","{modem._lbs_cfg[key]}"']
    value = command.args[1]
    if len(value) > _LBS_MAX[key] or '"' in value or not value.isprintable():
        raise CommandFailed(501)
    modem._lbs_cfg[key] = value
    return []


def qlbs(modem: Lookups, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return []  # (U) a bare OK: the exec form takes no arguments
    if command.form != "exec":
        raise CommandFailed(501)
    modem._start_lbs()
    return []


def qagps(modem: Lookups, channel: str, command: Command) -> list[str]:
    if command.form == "read":
        return [f"+QAGPS: {modem._agps}"]
    if command.form == "test":
        return ["+QAGPS: (0,1)"]
    if command.form != "set" or len(command.args) != 1:
        raise CommandFailed(501)
    modem._agps = int_arg(command.args, 0, range(0, 2), error=501)
    return []


HANDLERS: dict[str, Handler] = {
    "+QWIFISCAN": qwifiscan,
    "+QLBSCFG": qlbscfg,
    "+QLBS": qlbs,
    "+QAGPS": qagps,
}
