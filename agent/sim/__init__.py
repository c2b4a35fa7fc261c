"""The simulated Quectel module, served in-process (``sim://``) or on ptys (``privacy-agent sim``).

Ports opened with the same ``name`` share one :class:`SimModem`; :func:`modem_for` hands it out for
inspection and fault injection. Nothing is registered with pyserial at import: call :func:`register`.

In-process, through pyserial::

    from agent import sim
    sim.register()
    at = serial.serial_for_url("sim://ec25?seed=7&ttff=5&name=bench&port=at", timeout=1)
    nmea = serial.serial_for_url("sim://ec25?name=bench&port=nmea", timeout=1)
    modem = sim.modem_for("bench")
    modem.faults.busy("AT+QGPS=1", 503, times=2)  # then look: modem.state.gnss_on, modem.commands
    modem.reboot(); modem.unplug(); modem.replug()

Pure, with a manual clock (no threads, no sleeps)::

    clock = ManualClock()
    modem = SimModem(seed=1, ttff_s=5, clock=clock)
    modem.write("at", b"AT+QGPS=1\r"); clock.advance(5); modem.read("nmea", 4096)

On ptys: ``SimPtyServer(modem, {"at": "/tmp/ttyAT", "nmea": "/tmp/ttyNMEA"})`` or ``privacy-agent sim``.
"""

from __future__ import annotations

import threading

from agent.sim.clock import ManualClock
from agent.sim.modem import SimModem, SimState

__all__ = [
    "ManualClock",
    "SimModem",
    "SimState",
    "forget",
    "install",
    "modem_for",
    "register",
    "shared_modem",
    "unregister",
]

_PACKAGE = "agent.sim"  # pyserial imports <package>.protocol_<scheme>, i.e. agent.sim.protocol_sim
_modems: dict[str, SimModem] = {}
_modems_lock = threading.Lock()


def register() -> None:
    """Make ``serial.serial_for_url`` understand ``sim://``; calling it again changes nothing."""
    import serial

    if _PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(_PACKAGE)


def unregister() -> None:
    import serial

    while _PACKAGE in serial.protocol_handler_packages:
        serial.protocol_handler_packages.remove(_PACKAGE)


def shared_modem(name: str, model: str = "ec25", seed: int = 0, ttff_s: float = 5.0) -> SimModem:
    """The modem called ``name``, created with these settings if it does not exist yet (first opener wins)."""
    with _modems_lock:
        modem = _modems.get(name)
        if modem is None:
            modem = _modems[name] = SimModem(model=model, seed=seed, ttff_s=ttff_s)
        return modem


def install(name: str, modem: SimModem) -> None:
    """Serve a modem built by the caller (another clock, preset faults) under ``name``."""
    with _modems_lock:
        _modems[name] = modem


def modem_for(name: str) -> SimModem:
    """The modem that ``sim://...&name=<name>`` ports share; LookupError if no port or install made one."""
    with _modems_lock:
        try:
            return _modems[name]
        except KeyError:
            raise LookupError(f"no simulated modem named {name!r}") from None


def forget(name: str) -> None:
    """Drop the modem called ``name`` (test isolation); ports still open keep the old object."""
    with _modems_lock:
        _modems.pop(name, None)
