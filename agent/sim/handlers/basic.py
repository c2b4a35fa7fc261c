"""Basic commands, identity, functionality and power: ``E``, ``V``, ``ATI``, ``+CMEE``, ``+CGSN``, ``+CFUN``..."""

from __future__ import annotations

from agent.sim.handlers.types import Handler
from agent.sim.parser import Command
from agent.sim.power import POWER_DOWN_URC_S, POWER_OFF_S, RESET_AFTER_S, PowerAndBoot
from agent.sim.results import CommandFailed, int_arg


def ok(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return []


def result_format(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.args not in ((), ("1",)):  # numeric result codes (V0) are not simulated
        raise CommandFailed(None)
    return []


def echo(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    value = int_arg(command.args, 0, range(0, 2), error=None) if command.args else 0
    modem._channels[channel].echo = value == 1
    return []


def ati(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return ["Quectel", modem.profile.name, f"Revision: {modem.profile.revision}"]


def cmee(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "read":
        return [f"+CMEE: {modem._cmee}"]
    if command.form == "test":
        return ["+CMEE: (0-2)"]
    modem._cmee = int_arg(command.args, 0, range(0, 3), error=None)
    return []


def manufacturer(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return ["Quectel"]


def model(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return [modem.profile.name]


def revision(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return [modem.profile.revision]


def firmware(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return [modem.profile.firmware]  # ModemManager sends AT+QGMR?; both forms answer the same


def imei(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "set" and command.args == ("1",):
        return [f"+CGSN: {modem.identity.imei}"]
    return [modem.identity.imei]


def imsi(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return [modem.identity.imsi]


def iccid(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return [f"+QCCID: {modem.identity.iccid}"]


def cnum(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return [f'+CNUM: ,"{modem.identity.msisdn}",145']


def cpin(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return ["+CPIN: READY"]


def csq(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return ["+CSQ: 24,99" if modem._registered else "+CSQ: 99,99"]


def cfun(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "read":
        return [f"+CFUN: {modem._cfun}"]
    if command.form == "test":
        return ["+CFUN: (0,1,4),(0-1)"]
    if command.form != "set" or len(command.args) > 2:
        raise CommandFailed(50)
    fun = int_arg(command.args, 0, (0, 1, 4), error=50)
    reset = int_arg(command.args, 1, range(0, 2), error=50) if len(command.args) > 1 else 0
    if reset:
        modem._schedule(RESET_AFTER_S, "reset")
        return []
    modem._set_cfun(fun)
    return []


def qpowd(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    mode = int_arg(command.args, 0, range(0, 2), error=50) if command.args else 1
    # QPOWD=0 is the immediate variant: no grace between the URC and the power going.
    modem._schedule(POWER_DOWN_URC_S if mode else 0.0, "powered_down_urc")
    modem._schedule(POWER_OFF_S if mode else POWER_OFF_S - POWER_DOWN_URC_S, "power_off")
    return []


HANDLERS: dict[str, Handler] = {
    "": ok,
    "Z": ok,
    "&W": ok,
    "&F": ok,
    "V": result_format,
    "E": echo,
    "I": ati,
    "+CMEE": cmee,
    "+GMI": manufacturer,
    "+CGMI": manufacturer,
    "+GMM": model,
    "+CGMM": model,
    "+GMR": revision,
    "+CGMR": revision,
    "+QGMR": firmware,
    "+GSN": imei,
    "+CGSN": imei,
    "+CIMI": imsi,
    "+QCCID": iccid,
    "+CNUM": cnum,
    "+CPIN": cpin,
    "+CSQ": csq,
    "+CFUN": cfun,
    "+QPOWD": qpowd,
}
