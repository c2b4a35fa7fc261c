"""What the module is (reported in status) and its identifiers (kept in memory for leak checks only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.at import Command, Response
from agent.errors import AgentError
from agent.model import CellInfo, DeviceIds, ModemInfo
from agent.quectel import commands, responses

log = logging.getLogger("privacy-agent")


@dataclass(frozen=True)
class Identity:
    info: ModemInfo
    ids: DeviceIds
    cell: CellInfo | None


def identify(execute: Callable[[Command], Response], *, location_on: bool) -> Identity | None:
    """None when the module does not answer ``ATI``; the serving cell (location) is read only while on."""
    try:
        info = responses.parse_ati(execute(commands.ati()))
    except AgentError as exc:
        log.warning("cannot identify the modem: %s", exc)
        return None
    found: dict[str, str | None] = {}
    readers: tuple[tuple[str, Callable[[], Command], Callable[[Response], str | None]], ...] = (
        ("imei", commands.cgsn, responses.parse_imei), ("imsi", commands.cimi, responses.parse_imsi),
        ("iccid", commands.qccid, responses.parse_iccid), ("msisdn", commands.cnum, responses.parse_cnum))
    for key, build, parse in readers:
        try:
            found[key] = parse(execute(build()))
        except AgentError:
            found[key] = None  # no SIM, or not supported: nothing to search for
    cell = None
    if location_on:  # the serving cell is location: not read while the switch is off
        try:
            cell = responses.parse_qeng_servingcell(execute(commands.qeng_servingcell()))
        except AgentError:
            cell = None
    return Identity(info, DeviceIds(**found), cell)
