"""The simulated module's ports and time: per-channel input and output buffers, and the event clock.

Every output waits in a channel's queue until the injected clock reaches its due time; events (a reset, the
network registering) wait in one heap. Nothing here knows what a command means or what GNSS is: the layers
above fill in the hooks :meth:`ModemBuffers._respond`, :meth:`ModemBuffers._handle_event` and the periodic
output (the NMEA bursts).
"""

from __future__ import annotations

import heapq
import random
import threading
from dataclasses import dataclass, field

from agent.errors import PortUnavailable
from agent.model import Clock
from agent.sim.faults import Faults

CHANNELS = ("at", "at2", "nmea")
AT_CHANNELS = ("at", "at2")
# AT+QURCCFG="urcport" (reference 4): which AT interfaces a URC reaches. uart1 is no USB interface of the simulator.
URC_PORTS: dict[str, tuple[str, ...]] = {"all": AT_CHANNELS, "usbat": ("at",), "usbmodem": ("at2",), "uart1": ()}
MAX_LINE = 1024  # a longer command line is discarded, as the module's input buffer would
MAX_BUFFER = 256 * 1024  # unread output beyond this is dropped, oldest first, like an unread USB tty


@dataclass(slots=True)
class Channel:
    """One USB interface of the module: what the host wrote so far and what waits for the host to read."""

    name: str
    unplugged: bool = False
    connected: bool = True
    generation: int = 0
    echo: bool = True
    inbuf: bytearray = field(default_factory=bytearray)
    queue: list[tuple[float, int, bytes]] = field(default_factory=list)  # heap of (due, seq, bytes)
    ready: bytearray = field(default_factory=bytearray)
    after_cr: bool = False


class ModemBuffers:
    """Channels, the event heap and the clock; the bottom layer of :class:`agent.sim.SimModem`."""

    # Set by SimModem.__init__; declared here for the layers that use them.
    _clock: Clock
    _noise: random.Random
    faults: Faults
    commands: list[tuple[str, str]]
    lock: threading.RLock
    changed: threading.Condition
    _channels: dict[str, Channel]
    _urc_port: str  # a key of URC_PORTS
    _seq: int
    _events: list[tuple[float, int, str, int]]  # heap of (due, seq, kind, epoch)
    _epoch: int  # bumped at every reset, so that events of an earlier life are ignored
    _now: float
    _target: float  # how far the current _sync goes
    _wall_offset: float
    _booted: bool

    def _init_buffers(self, clock: Clock, seed: int) -> None:
        self._clock = clock
        self._noise = random.Random(seed ^ 0x5EED)  # chunk sizes and garbage, apart from the identity stream
        self.faults = Faults()
        self.commands = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._channels = {name: Channel(name) for name in CHANNELS}
        self._seq = 0
        self._events = []
        self._epoch = 0
        self._now = self._clock.monotonic()
        self._target = self._now
        self._wall_offset = self._clock.wall() - self._now
        # "all" as seen on an EG25-G (transcript 4.1); saved by the module itself, so it survives a reset.
        self._urc_port = "all"

    # ------------------------------------------------------------------------------------------ channel API

    def write(self, channel: str, data: bytes) -> None:
        """Bytes from the host on ``channel``; commands are answered once their CR arrives."""
        with self.changed:
            self._sync()
            chan = self._connected(channel)
            if channel == "nmea" or not self._booted:
                return  # the NMEA port is output only; a booting module hears nothing
            for byte in data:
                self._feed(chan, byte)
            self.changed.notify_all()

    def read(self, channel: str, max_bytes: int = 4096) -> bytes:
        """Whatever output of ``channel`` is ready now (at most ``max_bytes``; fewer when chunking)."""
        with self.changed:
            self._sync()
            chan = self._connected(channel)
            if not chan.ready:
                return b""
            limit = max_bytes
            if self.faults.chunk_max:  # drawn only when there is data, so idle polling changes nothing
                limit = min(limit, self._noise.randint(1, self.faults.chunk_max))
            data = bytes(chan.ready[:limit])
            del chan.ready[:limit]
            return data

    def next_due(self, channel: str) -> float | None:
        """Monotonic time at which more output may be ready on ``channel``, or None if nothing is due."""
        with self.changed:
            self._sync()
            chan = self._channels[self._known(channel)]
            if chan.connected and chan.ready:
                return self._now
            times = [self._release_time(chan.queue[0][0])] if chan.queue else []
            times += [due for due, _, _, epoch in self._events if epoch == self._epoch]
            periodic = self._periodic_due(channel)
            if periodic is not None:
                times.append(self._release_time(periodic))
            return min(times) if times else None

    @property
    def clock(self) -> Clock:
        return self._clock

    def is_connected(self, channel: str) -> bool:
        with self.changed:
            self._sync()
            return self._channels[self._known(channel)].connected

    def link_generation(self, channel: str) -> int:
        """Bumped each time ``channel`` goes away, so an adapter can tell a returned port from the old one."""
        with self.changed:
            self._sync()
            return self._channels[self._known(channel)].generation

    def in_waiting(self, channel: str) -> int:
        with self.changed:
            self._sync()
            chan = self._channels[self._known(channel)]
            return len(chan.ready) if chan.connected else 0

    def discard_output(self, channel: str) -> None:
        """Forget output that is ready now (a host flushing its input buffer)."""
        with self.changed:
            self._sync()
            self._channels[self._known(channel)].ready.clear()

    # ---------------------------------------------------------------------------- hooks of the layers above

    def _handle_event(self, kind: str) -> None:
        raise NotImplementedError

    def _respond(self, chan: Channel, text: str) -> None:
        raise NotImplementedError

    def _next_periodic(self) -> float | None:
        """When the next periodic output (an NMEA burst) is generated, whether or not anyone hears it."""
        return None

    def _periodic_due(self, channel: str) -> float | None:
        """When the next periodic output reaches ``channel``, or None if none will."""
        return None

    def _emit_periodic(self, when: float) -> None:
        raise NotImplementedError

    # -------------------------------------------------------------------------------------------------- time

    def _sync(self) -> None:
        """Bring the module up to the clock: due events and periodic output, in time order.

        While one is handled, ``_now`` is its due time, so that what it schedules is timed from when it
        happened, not from when somebody looked.
        """
        target = max(self._now, self._clock.monotonic())
        self._wall_offset = self._clock.wall() - self._clock.monotonic()
        self._target = target
        while True:
            event_due = self._events[0][0] if self._events else None
            burst_due = self._next_periodic()
            event_first = burst_due is None or (event_due is not None and event_due <= burst_due)
            if event_due is not None and event_due <= target and event_first:
                _, _, kind, epoch = heapq.heappop(self._events)
                if epoch == self._epoch:
                    self._now = max(self._now, event_due)
                    self._handle_event(kind)
            elif burst_due is not None and burst_due <= target:
                self._now = max(self._now, burst_due)
                self._emit_periodic(burst_due)
            else:
                break
        self._now = target
        for chan in self._channels.values():
            while chan.queue and self._release_time(chan.queue[0][0]) <= self._now:
                chan.ready += heapq.heappop(chan.queue)[2]
            if len(chan.ready) > MAX_BUFFER:
                del chan.ready[: len(chan.ready) - MAX_BUFFER]

    def _release_time(self, due: float) -> float:
        period = self.faults.coalesce_s
        if period <= 0:
            return due
        return -(-due // period) * period  # rounded up to the next multiple: several outputs leave together

    def _schedule(self, delay_s: float, kind: str) -> None:
        self._seq += 1
        heapq.heappush(self._events, (self._now + delay_s, self._seq, kind, self._epoch))

    def _wall(self, monotonic: float) -> float:
        return monotonic + self._wall_offset

    # ----------------------------------------------------------------------------------------------- output

    def _emit(self, channel: str, data: bytes, delay_s: float = 0.0) -> None:
        chan = self._channels[channel]
        if not chan.connected:
            return  # nobody can receive it: the interface is gone
        self._seq += 1
        heapq.heappush(chan.queue, (self._now + delay_s, self._seq, data))

    def _emit_at(self, when: float, channel: str, data: bytes) -> None:
        chan = self._channels[channel]
        if chan.connected:
            self._seq += 1
            heapq.heappush(chan.queue, (when, self._seq, data))

    def _urc(self, text: str) -> None:
        for channel in URC_PORTS[self._urc_port]:
            self._emit(channel, b"\r\n" + text.encode() + b"\r\n")
        self._sync_ready()

    def _sync_ready(self) -> None:
        for chan in self._channels.values():
            while chan.queue and self._release_time(chan.queue[0][0]) <= self._now:
                chan.ready += heapq.heappop(chan.queue)[2]

    def _garbage(self) -> bytes:
        # High bytes only: line noise that breaks no CR/LF framing by itself, so results stay predictable.
        return bytes(self._noise.randrange(0x80, 0x100) for _ in range(self._noise.randint(1, 8)))

    # ------------------------------------------------------------------------------------------- input side

    def _known(self, channel: str) -> str:
        if channel not in self._channels:
            raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
        return channel

    def _connected(self, channel: str) -> Channel:
        chan = self._channels[self._known(channel)]
        if not chan.connected:
            raise PortUnavailable("simulated port is not connected", channel=channel)
        return chan

    def _feed(self, chan: Channel, byte: int) -> None:
        if byte == 0x0A and chan.after_cr:  # the LF after a CR is ignored (S4 is only for output)
            chan.after_cr = False
            return
        chan.after_cr = byte == 0x0D
        if byte == 0x0D:
            line = bytes(chan.inbuf)
            chan.inbuf.clear()
            self._line(chan, line)
        elif len(chan.inbuf) < MAX_LINE:
            chan.inbuf.append(byte)
        else:
            chan.inbuf.clear()  # an endless line: the module's buffer overflows and the line is lost

    def _line(self, chan: Channel, raw: bytes) -> None:
        if chan.echo:
            self._emit(chan.name, raw + b"\r")
        text = raw.decode("latin-1").strip()
        if not text:
            self._sync_ready()
            return
        self.commands.append((chan.name, text))
        self._respond(chan, text)
        self._sync_ready()
