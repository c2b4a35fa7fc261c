"""One modem connection: a reader thread, one command in flight, URCs fanned out to listeners.

Strategy:
- One reader thread owns the port's read side. It feeds the sans-I/O AT core and hands each ``Response`` to the
  caller waiting in :meth:`Session.execute`, and each URC to the listeners (called on the reader thread: they must
  be quick and never call ``execute``; the daemon's listeners only put events on a queue).
- ``execute`` serialises commands with a lock, writes the command, and waits for its response or its timeout. A
  timed-out command is cancelled in the core, so a late answer is dropped as stray instead of answering the next
  command.
- Echo is switched off (``ATE0``) and numeric errors on (``AT+CMEE=1``) before the first command after every open
  and every ``RDY``, because a rebooted module comes back with echo on.
- A vanished port is reported once (one log line, one ``disconnected`` lifecycle event), the waiting command fails
  at once with ``PortUnavailable``, and the reader reopens the port with exponential backoff. Commands sent while
  the port is down fail immediately: nothing waits on a lock that can never be released.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.at import NEED_DATA, Command, Connection, Echo, Response, Stray, Urc
from agent.errors import CommandTimeout, LocalProtocolError, PortUnavailable, RemoteProtocolError, UsageError
from agent.quectel import commands
from agent.quectel.codes import error_for
from agent.transport import Port, open_port

log = logging.getLogger(__name__)

UrcListener = Callable[[str], None]
LifecycleListener = Callable[[str], None]

CONNECTED = "connected"
DISCONNECTED = "disconnected"
REBOOTED = "rebooted"  # the module announced a boot (RDY): its volatile state is gone


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reopen delays: ``first`` seconds, doubling up to ``limit``."""

    first: float = 0.2
    limit: float = 5.0

    def delays(self) -> list[float]:
        delays, delay = [], self.first
        while delay < self.limit:
            delays.append(delay)
            delay *= 2
        return [*delays, self.limit]


class Session:
    """A connection to one modem AT port, reopened whenever it vanishes.

    Args:
        url: any pyserial URL (``/dev/ttyUSB2``, ``sim://ec25?seed=7``, ``socket://...``).
        opener: opens a port; tests inject failures through it.
        backoff: reopen delays after the port vanished or could not be opened.
    """

    def __init__(
        self,
        url: str,
        *,
        opener: Callable[[str], Port] = open_port,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.url = url
        self._opener = opener
        self._backoff = backoff
        self._core = Connection()
        self._core_lock = threading.Lock()  # the core is not thread-safe; reader and callers share it
        self._command_lock = threading.Lock()  # one command in flight
        self._answered = threading.Condition(self._core_lock)
        self._response: Response | None = None
        self._failure: BaseException | None = None
        self._port: Port | None = None
        self._needs_init = True
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._reader: threading.Thread | None = None
        self._urc_listeners: list[UrcListener] = []
        self._lifecycle_listeners: list[LifecycleListener] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the reader thread; it opens the port (retrying with backoff)."""
        if self._reader is not None:
            return
        self._reader = threading.Thread(target=self._run_reader, name=f"session-reader {self.url}", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._stopping.set()
        port = self._port
        if port is not None:
            port.cancel_read()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
            self._reader = None
        self._drop_port()

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def add_urc_listener(self, listener: UrcListener) -> None:
        self._urc_listeners.append(listener)

    def add_lifecycle_listener(self, listener: LifecycleListener) -> None:
        self._lifecycle_listeners.append(listener)

    # -- commands --------------------------------------------------------------------------------------------
    def execute(self, command: Command) -> Response:
        """Send ``command`` and return its successful response.

        Raises:
            PortUnavailable: the port is down (now or while waiting).
            CommandTimeout: no final result within ``command.timeout_s``.
            CommandError: the final result was an error (named GNSS subclasses for 501-549).
        """
        with self._command_lock:
            if self._needs_init:
                self._initialise()
            return self._execute_locked(command)

    def _initialise(self) -> None:
        # Echo first: until it is off, every reply carries the echoed command (the core strips it anyway).
        self._execute_locked(commands.ate(False))
        self._execute_locked(commands.cmee(1))
        self._needs_init = False

    def _execute_locked(self, command: Command) -> Response:
        port = self._port
        if port is None or not self._connected.is_set():
            raise PortUnavailable("modem port is not connected", port=self.url, command=command.name)
        with self._core_lock:
            self._response = None
            self._failure = None
            try:
                wire = self._core.send(command)
            except LocalProtocolError:
                # A previous command was abandoned without cancel (cannot happen through execute); recover.
                self._core.cancel()
                wire = self._core.send(command)
        try:
            port.write(wire)
        except PortUnavailable:
            self._on_port_lost(port)
            raise
        return self._await_response(command)

    def _await_response(self, command: Command) -> Response:
        with self._core_lock:
            answered = self._answered.wait_for(
                lambda: self._response is not None or self._failure is not None, timeout=command.timeout_s
            )
            if not answered:
                self._core.cancel()
                raise CommandTimeout("no final result in time", command=command.name, timeout_s=command.timeout_s)
            if self._failure is not None:
                raise PortUnavailable("modem port vanished during the command", port=self.url,
                                      command=command.name) from self._failure
            response = self._response
            assert response is not None
        if not response.ok:
            raise error_for(response)
        return response

    # -- reader thread ---------------------------------------------------------------------------------------
    def _run_reader(self) -> None:
        delays = self._backoff.delays()
        attempt = 0
        while not self._stopping.is_set():
            port = self._open_quietly(first_failure=attempt == 0)
            if port is None:
                self._stopping.wait(delays[min(attempt, len(delays) - 1)])
                attempt += 1
                continue
            attempt = 0
            self._read_until_lost(port)
            if not self._stopping.is_set():
                self._stopping.wait(delays[0])

    def _open_quietly(self, *, first_failure: bool) -> Port | None:
        try:
            port = self._opener(self.url)
        except PortUnavailable as exc:
            if first_failure:
                log.warning("modem port unavailable, retrying with backoff: %s", exc)
            return None
        except UsageError as exc:  # a URL that cannot work: say so, and keep the thread (and its backoff)
            if first_failure:
                log.error("modem port URL cannot be used, retrying with backoff: %s", exc)
            return None
        with self._core_lock:
            self._core.reset()
            self._port = port
            self._needs_init = True
        self._connected.set()
        log.info("modem port open: %s", self.url)
        self._notify_lifecycle(CONNECTED)
        return port

    def _read_until_lost(self, port: Port) -> None:
        while not self._stopping.is_set():
            try:
                data = port.read(4096)
            except PortUnavailable:
                self._on_port_lost(port)
                return
            if data:
                self._feed(data)

    def _feed(self, data: bytes) -> None:
        urcs: list[str] = []
        with self._core_lock:
            self._core.receive_data(data)
            while True:
                try:
                    event = self._core.next_event()
                except RemoteProtocolError as exc:
                    log.warning("modem sent unacceptable bytes, resynchronising: %s", exc)
                    continue
                if event is NEED_DATA:
                    break
                if isinstance(event, Response):
                    self._response = event
                    self._answered.notify_all()
                elif isinstance(event, Urc):
                    urcs.append(event.line)
                elif isinstance(event, Stray):
                    log.debug("stray final result after a timed-out command: %s", event.line)
                elif isinstance(event, Echo):
                    pass
        for line in urcs:
            self._dispatch_urc(line)

    def _dispatch_urc(self, line: str) -> None:
        if line.strip() == "RDY":
            with self._core_lock:
                self._needs_init = True
            self._notify_lifecycle(REBOOTED)
        for listener in list(self._urc_listeners):
            try:
                listener(line)
            except Exception:  # a faulty listener must not kill the reader thread
                log.exception("URC listener failed")

    def _on_port_lost(self, port: Port) -> None:
        with self._core_lock:
            if self._port is not port:
                return  # already reported
            self._port = None
            self._connected.clear()
            self._failure = PortUnavailable("port vanished", port=self.url)
            self._answered.notify_all()
            self._core.reset()
        port.close()
        log.warning("modem port vanished: %s; reopening with backoff", self.url)
        self._notify_lifecycle(DISCONNECTED)

    def _drop_port(self) -> None:
        with self._core_lock:
            port, self._port = self._port, None
            self._connected.clear()
        if port is not None:
            port.close()

    def _notify_lifecycle(self, event: str) -> None:
        for listener in list(self._lifecycle_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("lifecycle listener failed")
