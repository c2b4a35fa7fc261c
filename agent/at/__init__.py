"""Sans-I/O AT command core, in the style of h11: bytes in, events out, no I/O, no clock.

::

    conn = Connection()
    port.write(conn.send(Command("AT+QGPS?", prefix="+QGPS")))
    conn.receive_data(port.read(4096))      # any chunking
    event = conn.next_event()               # Response | Urc | Echo | Prompt | Stray | NEED_DATA
"""

from agent.at.connection import KNOWN_PLAIN_URCS, Connection, parse_final, plus_prefix
from agent.at.events import (
    NEED_DATA,
    Command,
    Echo,
    Event,
    Final,
    FinalKind,
    NeedData,
    Prompt,
    Response,
    Stray,
    Urc,
)

__all__ = [
    "KNOWN_PLAIN_URCS",
    "NEED_DATA",
    "Command",
    "Connection",
    "Echo",
    "Event",
    "Final",
    "FinalKind",
    "NeedData",
    "Prompt",
    "Response",
    "Stray",
    "Urc",
    "parse_final",
    "plus_prefix",
]
