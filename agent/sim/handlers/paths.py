"""Location paths beyond the GNSS engine: ``+CGREG`` cell IDs and the ``+QGPSSUPLURL`` SUPL server.

``+CREG``/``+CEREG`` live in :mod:`agent.sim.handlers.network` and ``+QGPSXTRA`` in :mod:`agent.sim.handlers.gnss`;
the control-plane settings (``agnssprotocol``, ``agpsposmode``) are ``AT+QGPSCFG`` keys of the model's profile.
"""

from __future__ import annotations

from agent.sim.handlers.types import Handler
from agent.sim.parser import Command
from agent.sim.power import PowerAndBoot
from agent.sim.results import CommandFailed, int_arg

_MAX_URL = 128


def cgreg(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "test":
        return ["+CGREG: (0-2)"]
    if command.form == "set":
        modem._cgreg_n = int_arg(command.args, 0, range(0, 3), error=50)
        return []
    if command.form != "read":
        raise CommandFailed(None)
    stat = 1 if modem._registered else (2 if modem._cfun == 1 else 0)
    if modem._cgreg_n == 2 and stat == 1:
        return [f'+CGREG: 2,{stat},"{modem.identity.lac}","{modem.identity.cell_id}"']
    return [f"+CGREG: {modem._cgreg_n},{stat}"]


def qgpssuplurl(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    if command.form == "read":
        return [f'+QGPSSUPLURL: "{modem._suplurl}"']
    if command.form == "test":
        return ['+QGPSSUPLURL: "<url>"']
    if command.form != "set" or len(command.args) != 1 or not 0 < len(command.args[0]) <= _MAX_URL:
        raise CommandFailed(501)
    modem._suplurl = command.args[0]
    return []


HANDLERS: dict[str, Handler] = {
    "+CGREG": cgreg,
    "+QGPSSUPLURL": qgpssuplurl,
}
