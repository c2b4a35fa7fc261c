"""Power and boot of the simulated module: resets, USB links coming and going, power off, registration.

A reset forgets everything volatile (GNSS off, echo on, URC modes 0) and keeps the ``AT+QGPSCFG`` store;
``autogps=1`` starts GNSS again at boot, as on hardware (reference 4).
"""

from __future__ import annotations

from agent.sim.buffers import AT_CHANNELS, Channel
from agent.sim.gnss_engine import GnssEngine
from agent.sim.identity import Identity, ModelProfile, Place

BOOT_S = 2.0  # ports stay away this long after a reset (USB re-enumeration)
BOOT_URC_DELAY_S = 0.5  # the ports enumerate before the firmware prints RDY: a host can open them in time
RESET_AFTER_S = 0.2  # CFUN=1,1 answers OK, then resets: long enough for the OK to be read
REGISTER_S = 1.0  # network search after boot or CFUN=1
POWER_DOWN_URC_S = 0.3  # QPOWD=1: OK, then POWERED DOWN ...
POWER_OFF_S = 1.3  # ... then the USB device disappears
BOOT_URCS = ("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE")


class PowerAndBoot(GnssEngine):
    """The module's life cycle on top of the GNSS engine; the command layer calls into it."""

    profile: ModelProfile
    place: Place
    identity: Identity
    _powered: bool
    _ports_down: bool
    _cfun: int
    _cmee: int
    _creg_n: int
    _cereg_n: int
    _cgreg_n: int
    _registered: bool

    def _init_power(self) -> None:
        self._powered = True
        self._booted = True
        self._ports_down = False
        self._cfun = 1
        self._cmee = 1
        self._creg_n = 0
        self._cereg_n = 0
        self._cgreg_n = 0
        self._registered = True  # a module that has been running for a while

    # ------------------------------------------------------------------------------- hardware-level actions

    def reboot(self, drop_ports: bool = True) -> None:
        """An unexpected reset, now: GNSS off, ports away for ``BOOT_S`` unless ``drop_ports``
        is False, then boot URCs."""
        with self.changed:
            self._sync()
            if self._powered:
                self._reset(drop_ports)
            self.changed.notify_all()

    def unplug(self, channel: str | None = None) -> None:
        """The USB device (or one interface of it) vanishes; the module keeps running."""
        with self.changed:
            self._sync()
            for chan in self._selected(channel):
                chan.unplugged = True
            self._update_links()
            self.changed.notify_all()

    def replug(self, channel: str | None = None) -> None:
        with self.changed:
            self._sync()
            for chan in self._selected(channel):
                chan.unplugged = False
            self._update_links()
            self.changed.notify_all()

    def emergency_session(self, duration_s: float = 30.0) -> None:
        """The network starts emergency (E911) positioning now: GNSS runs for ``duration_s`` whatever the host
        says; the host's GNSS commands answer ``+CME ERROR: 515`` meanwhile."""
        if not 0 < duration_s < float("inf"):
            raise ValueError("duration_s must be a positive finite number of seconds")
        with self.changed:
            self._sync()
            self._emergency_start(duration_s)
            self._schedule(duration_s, "emergency_end")
            self.changed.notify_all()

    def power_on(self) -> None:
        """Power comes back after QPOWD: the module boots as after a reset."""
        with self.changed:
            self._sync()
            if not self._powered:
                self._powered = True
                self._reset(drop_ports=True)
            self.changed.notify_all()

    # ------------------------------------------------------------------------------------------- life cycle

    def _handle_event(self, kind: str) -> None:
        if kind == "reset":
            self._reset(drop_ports=True)
        elif kind == "boot":
            self._boot_done()
        elif kind == "boot_urcs":
            self._boot_urcs()
        elif kind == "register":
            self._register()
        elif kind == "powered_down_urc":
            self._urc("POWERED DOWN")
        elif kind == "power_off":
            self._power_off()
        elif kind == "emergency_end":
            self._emergency_end()

    def _selected(self, channel: str | None) -> list[Channel]:
        if channel is None:
            return list(self._channels.values())
        return [self._channels[self._known(channel)]]

    def _update_links(self) -> None:
        for chan in self._channels.values():
            up = self._powered and not self._ports_down and not chan.unplugged
            if chan.connected and not up:
                chan.generation += 1
                chan.inbuf.clear()
                chan.queue.clear()
                chan.ready.clear()
            chan.connected = up

    def _reset(self, drop_ports: bool) -> None:
        self._epoch += 1
        self._events.clear()
        self._remember_fix()
        self._booted = False
        self._gnss_on = False
        self._emergency_until = None
        self._next_burst = None
        self._registered = False
        for chan in self._channels.values():
            chan.inbuf.clear()
            chan.queue.clear()
            chan.ready.clear()
        self._ports_down = drop_ports
        self._update_links()
        self._schedule(BOOT_S, "boot")

    def _boot_done(self) -> None:
        self._booted = True
        self._ports_down = False
        self._update_links()
        self._cfun, self._cmee, self._creg_n, self._cereg_n, self._cgreg_n = 1, 1, 0, 0, 0
        for channel in AT_CHANNELS:
            self._channels[channel].echo = True
        if self._nv["autogps"] == 1:
            self._gnss_start()
        self._xtra_active = self._xtra  # AT+QGPSXTRA takes effect at a restart (reference 1.7)
        self._schedule(BOOT_URC_DELAY_S, "boot_urcs")

    def _boot_urcs(self) -> None:
        for urc in BOOT_URCS:
            self._urc(urc)
        self._schedule(REGISTER_S, "register")

    def _power_off(self) -> None:
        self._remember_fix()
        self._epoch += 1
        self._events.clear()
        self._powered = False
        self._booted = False
        self._gnss_on = False
        self._emergency_until = None
        self._next_burst = None
        self._registered = False
        self._update_links()

    def _set_cfun(self, fun: int) -> None:
        self._cfun = fun
        if fun == 1 and not self._registered:
            self._schedule(REGISTER_S, "register")
        elif fun != 1 and self._registered:
            self._registered = False
            self._registration_urcs()

    def _register(self) -> None:
        if self._cfun != 1 or self._registered:
            return
        self._registered = True
        self._registration_urcs()

    def _registration_urcs(self) -> None:
        stat = 1 if self._registered else 0
        ident = self.identity
        if self._creg_n:
            self._urc(
                f'+CREG: {stat},"{ident.lac}","{ident.cell_id}",7'
                if self._creg_n == 2 and stat
                else f"+CREG: {stat}"
            )
        if self._cereg_n:
            self._urc(
                f'+CEREG: {stat},"{ident.tac}","{ident.cell_id}",7'
                if self._cereg_n == 2 and stat
                else f"+CEREG: {stat}"
            )
        if self._cgreg_n:
            self._urc(f'+CGREG: {stat},"{ident.lac}","{ident.cell_id}"' if self._cgreg_n == 2 and stat
                      else f"+CGREG: {stat}")
