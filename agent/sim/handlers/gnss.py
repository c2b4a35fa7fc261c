"""GNSS commands: ``+QGPS``, ``+QGPSEND``, ``+QGPSLOC``, ``+QGPSGNMEA``, ``+QGPSCFG``, ``+QGPSXTRA``, ``+QGPSDEL``."""

from __future__ import annotations

import dataclasses

from agent.sim import nmea_out
from agent.sim.gnss_engine import CfgValue, CfgValues, MultiValue, Text
from agent.sim.handlers.types import Handler
from agent.sim.parser import Command
from agent.sim.power import PowerAndBoot
from agent.sim.results import CommandFailed, int_arg, is_number

GNMEA_TYPES = ("GGA", "RMC", "GSV", "GSA", "VTG")
_QGPS_RANGES = (range(1, 5), range(1, 256), range(0, 1001), range(0, 1001), range(1, 65536))


def qgps(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "read":
        return [f"+QGPS: {int(modem._gnss_on)}"]
    if command.form == "test":
        return ["+QGPS: (1-4),(1-255),(1-1000),(0-1000),(1-65535)"]
    if command.form != "set":
        raise CommandFailed(None)
    if command.args == ("0",) and modem._qgps_zero_off:
        return _stop(modem)  # the ASR family's "off" (reference 1.2)
    _check_qgps_args(command.args)
    if modem._emergency_active():
        raise CommandFailed(515)
    if modem._gnss_on:
        raise CommandFailed(504)
    modem._gnss_start()
    return []


def qgpsend(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form != "exec":
        raise CommandFailed(None)
    return _stop(modem)


def _stop(modem: PowerAndBoot) -> list[str]:
    if not modem._gnss_on:
        raise CommandFailed(505)
    if modem._emergency_active():
        raise CommandFailed(515)  # an emergency session cannot be ended by the host
    modem._gnss_stop()
    return []


def qgpsloc(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return [f"+QGPSLOC: {nmea_out.QGPSLOC_TEMPLATE}"]
    mode = int_arg(command.args, 0, range(0, 3), error=501) if command.form == "set" else 0
    point, wall = modem._current_fix()
    if modem.faults.hdop_outlier and modem._noise.random() < modem.faults.hdop_outlier:
        point = dataclasses.replace(point, hdop=500.0)
    return [f"+QGPSLOC: {nmea_out.qgpsloc_payload(point, wall, mode)}"]


def qgpsgnmea(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return ['+QGPSGNMEA: ("GGA","RMC","GSV","GSA","VTG")']
    if command.form != "set" or len(command.args) != 1 or command.args[0].upper() not in GNMEA_TYPES:
        raise CommandFailed(501)
    if not modem._gnss_on:
        raise CommandFailed(505)
    if modem._nv["nmeasrc"] != 1:
        raise CommandFailed(507)
    wall = modem._wall(modem._now)
    point = modem._track.at(wall) if modem._has_fix(modem._now) else None
    return [
        f"+QGPSGNMEA: {sentence}"
        for sentence in nmea_out.single_sentence(command.args[0].upper(), point, wall, modem._sky)
    ]


def qgpscfg(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return [f'+QGPSCFG: "{key}",{_describe(values)}' for key, values in modem._cfg_values.items()]
    if command.form == "read":
        # An EC25-AUT answered the bare read form with 505 while GNSS was off (transcript 4.4).
        raise CommandFailed(501 if modem._gnss_on else 505)
    if command.form != "set":
        raise CommandFailed(501)
    key = command.args[0].lower()
    allowed = modem._cfg_values.get(key)
    if allowed is None:
        raise CommandFailed(501)  # a key this model does not have
    if len(command.args) == 1:
        return [f'+QGPSCFG: "{key}",{_show(modem._nv[key])}']
    modem._nv[key] = _cfg_setting(allowed, command.args[1:])
    _after_cfg_change(modem, key)
    return []


def _after_cfg_change(modem: PowerAndBoot, key: str) -> None:
    if key == "fixfreq" and modem._gnss_on:
        modem._next_burst = modem._next_boundary()


def qgpsxtra(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "read":
        return [f"+QGPSXTRA: {modem._xtra}"]
    if command.form == "test":
        return ["+QGPSXTRA: (0,1)"]
    modem._xtra = int_arg(command.args, 0, range(0, 2), error=501)
    return []


def qgpsdel(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return ["+QGPSDEL: (0-3)"]
    int_arg(command.args, 0, range(0, 4), error=501)
    if modem._gnss_on:
        raise CommandFailed(504)  # assistance data can only be deleted with the engine off
    modem._last_fix = None
    return []


def _check_qgps_args(args: tuple[str, ...]) -> None:
    if not args or len(args) > len(_QGPS_RANGES):
        raise CommandFailed(501)
    for index, allowed in enumerate(_QGPS_RANGES[: len(args)]):
        int_arg(args, index, allowed, error=501)
    if args[0] != "1":
        raise CommandFailed(502)  # only stand-alone mode is supported on most firmwares (reference 1.2)


def _cfg_setting(allowed: CfgValues, raw: tuple[str, ...]) -> CfgValue:
    """The new setting of a key from its set arguments: all of a multi-value key's fields, or the one value."""
    if isinstance(allowed, MultiValue):
        if len(raw) != len(allowed.fields):
            raise CommandFailed(501)
        return tuple(_field_value(field, text) for field, text in zip(allowed.fields, raw, strict=True))
    if len(raw) != 1:
        raise CommandFailed(501)
    return _cfg_value(allowed, raw[0])


def _field_value(field: range | Text, raw: str) -> str | int:
    if isinstance(field, Text):
        # A quote would end the string early in the read-back; control characters have no place in an APN.
        if len(raw) > field.max_len or '"' in raw or not raw.isprintable():
            raise CommandFailed(501)
        return raw
    return _cfg_value(field, raw)


def _cfg_value(allowed: tuple[str, ...] | tuple[int, ...] | range, raw: str) -> str | int:
    if isinstance(allowed, tuple) and allowed and isinstance(allowed[0], str):
        if raw.lower() not in allowed:
            raise CommandFailed(501)
        return raw.lower()
    if not is_number(raw) or int(raw) not in allowed:
        raise CommandFailed(501)
    return int(raw)


def _show(value: CfgValue) -> str:
    """A setting as the read form prints it: strings quoted, numbers bare, a tuple's fields comma-joined."""
    if isinstance(value, tuple):
        return ",".join(_show(part) for part in value)
    return f'"{value}"' if isinstance(value, str) else str(value)


def _describe(values: CfgValues | Text) -> str:
    if isinstance(values, MultiValue):
        return ",".join(_describe(field) for field in values.fields)
    if isinstance(values, Text):
        return f"<{values.name}>"
    if isinstance(values, range):
        return (
            f"({values.start}-{values.stop - 1})"
            if len(values) > 2
            else f"({values.start},{values.stop - 1})"
        )
    return "(" + ",".join(f'"{value}"' if isinstance(value, str) else str(value) for value in values) + ")"


HANDLERS: dict[str, Handler] = {
    "+QGPS": qgps,
    "+QGPSEND": qgpsend,
    "+QGPSLOC": qgpsloc,
    "+QGPSGNMEA": qgpsgnmea,
    "+QGPSCFG": qgpscfg,
    "+QGPSXTRA": qgpsxtra,
    "+QGPSDEL": qgpsdel,
}
