"""Network registration and cell information: ``+CREG``, ``+CEREG`` and ``+QENG``; where URCs go: ``+QURCCFG``."""

from __future__ import annotations

from agent.sim.buffers import URC_PORTS
from agent.sim.handlers.types import Handler
from agent.sim.parser import Command
from agent.sim.power import PowerAndBoot
from agent.sim.results import CommandFailed, int_arg


def creg(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return _registration(modem, command, "+CREG", modem.identity.lac)


def cereg(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    return _registration(modem, command, "+CEREG", modem.identity.tac)


def _registration(modem: PowerAndBoot, command: Command, prefix: str, area: str) -> list[str]:
    if command.form == "test":
        return [f"{prefix}: (0-2)"]
    if command.form == "set":
        value = int_arg(command.args, 0, range(0, 3), error=50)
        if prefix == "+CREG":
            modem._creg_n = value
        else:
            modem._cereg_n = value
        return []
    if command.form != "read":
        raise CommandFailed(None)
    n = modem._creg_n if prefix == "+CREG" else modem._cereg_n
    stat = 1 if modem._registered else (2 if modem._cfun == 1 else 0)
    if n == 2 and stat == 1:
        return [f'{prefix}: 2,{stat},"{area}","{modem.identity.cell_id}",7']
    return [f"{prefix}: {n},{stat}"]


def qeng(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return ['+QENG: ("servingcell","neighbourcell")']
    if command.form != "set" or command.args[0].lower() not in ("servingcell", "neighbourcell"):
        raise CommandFailed(50)
    if command.args[0].lower() == "neighbourcell":
        return []  # no neighbours are simulated
    if not modem._registered:
        return ['+QENG: "servingcell","SEARCH"']
    ident, place = modem.identity, modem.place
    # The EC25 long form: ...,rsrp,rsrq,rssi,sinr,cqi,tx_power,srxlev (reference 3, second example).
    return [
        f'+QENG: "servingcell","NOCONN","LTE","FDD",{place.mcc},{place.mnc},{ident.cell_id},{ident.pcid},'
        f"{ident.earfcn},7,5,5,{ident.tac},-91,-8,-63,21,0,-,32"
    ]


def qurccfg(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    """``AT+QURCCFG="urcport"[,"<port>"]``: the interfaces URCs go to (reference 4)."""
    if command.form == "test":
        return ['+QURCCFG: "urcport",(' + ",".join(f'"{port}"' for port in URC_PORTS) + ")"]
    if command.form != "set" or not command.args or command.args[0].lower() != "urcport" or len(command.args) > 2:
        raise CommandFailed(50)
    if len(command.args) == 1:
        return [f'+QURCCFG: "urcport","{modem._urc_port}"']
    port = command.args[1].lower()
    if port not in URC_PORTS:
        raise CommandFailed(50)
    modem._urc_port = port
    return []


HANDLERS: dict[str, Handler] = {
    "+CREG": creg,
    "+CEREG": cereg,
    "+QENG": qeng,
    "+QURCCFG": qurccfg,
}
