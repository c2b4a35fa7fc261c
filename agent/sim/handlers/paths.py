"""Location paths beyond the GNSS engine: ``+CGREG`` cell IDs, the ``+QGPSSUPLURL`` SUPL server and XTRA injection.

``+CREG``/``+CEREG`` live in :mod:`agent.sim.handlers.network` and ``+QGPSXTRA`` in :mod:`agent.sim.handlers.gnss`;
the control-plane settings (``agnssprotocol``, ``agpsposmode``) are ``AT+QGPSCFG`` keys of the model's profile.
"""

from __future__ import annotations

import time

from agent.sim.handlers.types import Handler
from agent.sim.parser import Command
from agent.sim.power import PowerAndBoot
from agent.sim.results import CommandFailed, int_arg

_MAX_URL = 128
XTRA_VALID_MIN = 10080  # (U) a fresh file is valid for the reference's longest span, 7 days


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


def qgpsxtradata(modem: PowerAndBoot, channel: str, command: Command) -> list[str]:
    """``AT+QGPSXTRADATA="<file>"`` injects XTRA data (reference 1.7): refused with 509 while XTRA is disabled
    (the error table's "XTRA not enabled"), and only with GNSS off (504 otherwise (U)). Enabling XTRA takes effect
    at the next restart, so what counts is the setting the module booted with. Files are not modelled:
    any name stands for an uploaded one. The read form gives the validity left, 0 when nothing was injected."""
    if command.form == "test":
        return ["+QGPSXTRADATA: <xtrafilename>"]
    if command.form == "read":
        if modem._xtra_injected_at is None:
            return ['+QGPSXTRADATA: 0,"1980/01/06,00:00:00"']
        start = time.strftime("%Y/%m/%d,%H:%M:%S", time.gmtime(modem._xtra_injected_at))
        return [f'+QGPSXTRADATA: {XTRA_VALID_MIN},"{start}"']
    if command.form != "set" or len(command.args) != 1 or not command.args[0]:
        raise CommandFailed(501)
    if modem._xtra_active != 1:
        raise CommandFailed(509)
    if modem._gnss_on:
        raise CommandFailed(504)
    modem._xtra_injected_at = modem._wall(modem._now)
    return []


HANDLERS: dict[str, Handler] = {
    "+CGREG": cgreg,
    "+QGPSSUPLURL": qgpssuplurl,
    "+QGPSXTRADATA": qgpsxtradata,
}
