"""``privacy-agent run``: the daemon.

Threads (one owner per resource, everything else crosses through the supervisor's queue):
- the session's reader thread owns the AT port's read side;
- the NMEA feed's thread owns the NMEA port while location is on (and only then);
- the supervisor thread owns every modem command: reconciles, user changes and periodic checks are serialised
  there, so two reconciles never interleave;
- the control server's threads parse requests and call :meth:`Supervisor.handle`;
- the main thread handles signals and systemd notifications.

Start-up order is the privacy order: state dir, ledger, desired state (off when none), gate closed, and only then
the modem session and the control socket.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent import systemd, transport
from agent.config import Config, load_config
from agent.control import ControlServer, Peer, Request
from agent.enforcer import Enforcer, Gate, Outcome
from agent.errors import AgentError, ConfigError, StateDamaged, StoreError, UsageError
from agent.ledger import Ledger, LedgerConfig
from agent.model import Clock, DeviceIds, Fix, ModemInfo, SystemClock
from agent.nmea_feed import NmeaFeed
from agent.quectel import commands, responses
from agent.session import CONNECTED, DISCONNECTED, REBOOTED, Session
from agent.state import DEFAULT, Desired, ensure_state_dir, read_desired, write_desired

log = logging.getLogger("privacy-agent")

MAX_WAIT_S = 60.0


@dataclass
class _Ticket:
    """A caller waiting for the first reconcile that starts after it was queued."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class Supervisor:
    """Owns the desired state and every modem command; answers control requests."""

    def __init__(
        self,
        config: Config,
        session: Session,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        nmea_feed: NmeaFeed | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._ledger = ledger
        self._clock = clock or SystemClock()
        self._nmea_feed = nmea_feed
        self.gate = Gate()
        self.enforcer = Enforcer(session, self.gate, has_nmea_port=nmea_feed is not None,
                                 on_nmea=self._set_nmea_active)
        self.desired: Desired = DEFAULT
        self._desired_on_disk: Desired | None = None
        self._change_lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, _Ticket | None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: Outcome | None = None
        self._user_generation_pending: int | None = None
        self.incidents: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.fix_listeners: list[Callable[[Fix], None]] = []
        self._fixes_seen = 0
        self.modem_info: ModemInfo | None = None
        self.guard: GuardLink | None = GuardLink(config.modem.guard_port) if config.modem.guard_port else None
        self.device_ids = DeviceIds()  # kept in memory only, for leak checks; never logged or reported

    # -- start / stop ----------------------------------------------------------------------------------------
    def load_desired(self) -> Desired:
        """The newer of the state file and the ledger's last switch record; off when there is neither."""
        try:
            from_file = read_desired(self._config.state.dir)
        except StateDamaged as exc:  # the ledger's last switch (or off) decides; the file is rewritten
            log.error("%s; using the ledger's last switch record (off when there is none)", exc)
            from_file = None
        from_ledger = _last_switch(self._ledger)
        candidates = [d for d in (from_file, from_ledger) if d is not None]
        self.desired = max(candidates, key=lambda d: d.generation) if candidates else DEFAULT
        self._desired_on_disk = from_file
        return self.desired

    def start(self) -> None:
        self._session.add_lifecycle_listener(self._on_lifecycle)
        self._session.add_urc_listener(self._on_urc)
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        self.request_reconcile("start")

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._nmea_feed is not None:
            self._nmea_feed.stop()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_reconcile(self, reason: str, ticket: _Ticket | None = None) -> None:
        self._queue.put((reason, ticket))

    # -- control requests (called on control-server threads) ------------------------------------------------
    def handle(self, request: Request, peer: Peer) -> dict[str, Any]:
        op = request.op
        if op in ("status", "location.status"):
            return self.location_status() if op == "location.status" else self.status()
        if op in ("location.on", "location.off"):
            wait_s = float(request.args.get("wait_s", self._config.modem.verify_timeout_s))
            return self.set_location(op == "location.on", uid=peer.uid, wait_s=wait_s)
        if op == "incidents":
            return {"incidents": list(self.incidents)}
        if op == "log.verify":
            report = self._ledger.verify()
            return {"verified": True, "report": _plain(report)}
        raise UsageError(f"'{op}' is not supported by this agent yet")

    def set_location(self, on: bool, *, uid: int | None, wait_s: float) -> dict[str, Any]:
        """Change the switch: durable and (for off) gate closed before this returns; then wait for the modem."""
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise UsageError(f"wait_s must be between 0 and {MAX_WAIT_S:g} seconds")
        with self._change_lock:
            if not on:
                self.gate.close()  # first: nothing location-bearing passes from now on
            new = Desired(location_on=on, generation=self.desired.generation + 1,
                          changed_at_ms=int(self._clock.wall() * 1000), changed_by_uid=uid)
            self._ledger.append("switch", {"desired": new.label, "generation": new.generation,
                                           "by_uid": uid if uid is not None else -1})
            self.desired = new
            self._user_generation_pending = new.generation
            ticket = _Ticket()
            self.request_reconcile("user", ticket)
        acknowledged = {"desired": new.label, "durable": True, "gate": "open" if self.gate.is_open else "closed"}
        verified = ticket.done.wait(wait_s)
        outcome = ticket.outcome
        return {**acknowledged, **self.location_status(),
                "verified": bool(verified and outcome is not None and outcome.enforced)}

    def location_status(self) -> dict[str, Any]:
        observed = self.enforcer.observed
        return {
            "desired": self.desired.label,
            "gate": "open" if self.gate.is_open else "closed",
            "enforced": self.enforcer.enforced and self.enforcer_desired_matches(),
            "observed": observed.as_dict(),
            "modem_connected": self._session.connected,
        }

    def enforcer_desired_matches(self) -> bool:
        last = self._last
        return last is not None and last.desired_on == self.desired.location_on

    def status(self) -> dict[str, Any]:
        count, head = self._ledger.head()
        info = self.modem_info
        return {
            "location": self.location_status(),
            "modem": None if info is None else {"manufacturer": info.manufacturer, "model": info.model,
                                                "revision": info.revision},
            "incidents": len(self.incidents),
            "fixes_seen": self._fixes_seen,
            "ledger": {"records": count, "head": head},
            "guard": None if self.guard is None else self.guard.describe(),
            "port": self._config.modem.port,
            "nmea_port": self._config.modem.nmea_port,
        }

    # -- supervisor thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        # The first reconcile waits (bounded) for the port, so a modem that is merely opening is not reported as
        # unverifiable; the gate is closed meanwhile.
        self._session.wait_connected(5.0)
        interval = self._config.modem.reconcile_interval_s
        retry_after: float | None = None
        while not self._stop.is_set():
            timeout = retry_after if retry_after is not None else interval
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = ("periodic" if retry_after is None else "retry", None)
            batch = [first, *self._drain()]
            if any(reason == "stop" for reason, _ in batch):
                self._release([t for _, t in batch if t is not None])
                return
            outcome = self._reconcile_once([reason for reason, _ in batch])
            self._release([t for _, t in batch if t is not None], outcome)
            retry_after = None if outcome.enforced else min(2.0, interval)

    def _drain(self) -> list[tuple[str, _Ticket | None]]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _reconcile_once(self, reasons: list[str]) -> Outcome:
        desired = self.desired
        user_change = self._user_generation_pending == desired.generation
        self._user_generation_pending = None
        self._persist_desired(desired)
        if {DISCONNECTED, REBOOTED, CONNECTED} & set(reasons):
            self.enforcer.forget()  # nothing observed before a reboot or reopen can be trusted
        if REBOOTED in reasons:
            self.modem_info = None
        if self.modem_info is None:
            self._identify()
        outcome = self.enforcer.reconcile(desired.location_on, user_change=user_change)
        if self.guard is not None:
            if REBOOTED in reasons:
                self.guard.forget()
            guard_problem = self.guard.sync(desired)
            if guard_problem:
                outcome = replace(outcome, drift={**outcome.drift, "guard": guard_problem})
        self._last = outcome
        if outcome.drift:
            self._record_incident(outcome, reasons)
        if outcome.enforced and not self.ready.is_set():
            self.ready.set()
            systemd.notify("READY=1\nSTATUS=location " + desired.label + ", verified on the modem")
        elif not outcome.enforced:
            systemd.notify("STATUS=location " + desired.label + ", modem state not verified; gate closed")
            if not self.ready.is_set() and not desired.location_on:
                # Off and unverifiable is still safe (the gate is closed): do not hold up the boot.
                self.ready.set()
                systemd.notify("READY=1")
        return outcome

    def _identify(self) -> None:
        """Read what the module is (reported in status) and its identifiers (kept for leak checks only)."""
        execute = self._session.execute
        try:
            self.modem_info = responses.parse_ati(execute(commands.ati()))
        except AgentError as exc:
            log.warning("cannot identify the modem: %s", exc)
            return
        found: dict[str, str | None] = {}
        for key, build, parse in (("imei", commands.cgsn, responses.parse_imei),
                                  ("imsi", commands.cimi, responses.parse_imsi),
                                  ("iccid", commands.qccid, responses.parse_iccid)):
            try:
                found[key] = parse(execute(build()))
            except AgentError:
                found[key] = None  # no SIM, or not supported: nothing to search for
        self.device_ids = DeviceIds(**found)

    def _persist_desired(self, desired: Desired) -> None:
        if self._desired_on_disk == desired:
            return
        try:
            write_desired(self._config.state.dir, desired)
            self._desired_on_disk = desired
        except StoreError as exc:
            log.error("%s", exc)  # the ledger already holds the change durably

    def _record_incident(self, outcome: Outcome, reasons: list[str]) -> None:
        incident = {
            "kind": "drift",
            "desired": "on" if outcome.desired_on else "off",
            "found": outcome.drift,
            "trigger": ",".join(sorted(set(reasons))),
            "repaired": outcome.enforced,
            "time_ms": int(self._clock.wall() * 1000),
        }
        self.incidents.append(incident)
        log.warning("drift found and %s: %s", "repaired" if outcome.enforced else "NOT repaired", incident)
        try:
            self._ledger.append("incident", incident)
        except StoreError as exc:
            log.error("cannot record incident: %s", exc)

    @staticmethod
    def _release(tickets: list[_Ticket], outcome: Outcome | None = None) -> None:
        for ticket in tickets:
            ticket.outcome = outcome
            ticket.done.set()

    # -- modem events (reader threads: only enqueue) --------------------------------------------------------
    def _on_lifecycle(self, event: str) -> None:
        if event in (DISCONNECTED, REBOOTED):
            self.gate.close()  # at once, on this thread; the rest happens on the supervisor thread
        if event in (CONNECTED, REBOOTED, DISCONNECTED):
            self.request_reconcile(event)

    def _on_urc(self, line: str) -> None:
        # Registration URCs may carry cell IDs: they are never stored or forwarded, only noticed.
        if line.startswith(("+QGPSURC", "+QIND", "+CPIN")):
            log.debug("URC: %s", line.split(":", 1)[0])

    def _set_nmea_active(self, active: bool) -> None:
        if self._nmea_feed is None:
            return
        if active:
            self._nmea_feed.start()
        else:
            self._nmea_feed.stop()

    def on_fix(self, fix: Fix) -> None:
        """Called by the NMEA feed's thread; fixes pass only while the gate is open."""
        if not self.gate.is_open:
            return
        self._fixes_seen += 1
        for listener in list(self.fix_listeners):
            listener(fix)


class GuardLink:
    """Keeps the on-module guard's persisted switch in step with the host's (QuecPython modules only).

    The guard is learnt by a version query (after start and every modem reboot); a module without one is fine.
    ``sync`` returns a short problem description when a module that has the guard did not take the switch: the
    supervisor records it as an incident, and the host gate is unaffected (it depends on the modem alone).
    """

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.version: str | None = None
        self._probed = False
        self._synced_generation: int | None = None

    def forget(self) -> None:
        self._probed = False
        self._synced_generation = None

    def describe(self) -> dict[str, Any]:
        return {"port": self.url, "present": self.version is not None, "version": self.version,
                "in_step": self._synced_generation is not None}

    def sync(self, desired: Desired) -> str | None:
        from agent.guard import GuardClient

        if self._probed and (self.version is None or self._synced_generation == desired.generation):
            return None
        try:
            with GuardClient(self.url, self.timeout_s) as client:
                if not self._probed:
                    self.version = client.version()
                    self._probed = True
                if self.version is None:
                    return None
                status = client.set_switch(desired.location_on)
        except AgentError as exc:
            log.warning("on-module guard did not take the switch: %s", exc)
            return type(exc).__name__
        if bool(status.get("on")) != desired.location_on:
            return "guard reports the other state"
        self._synced_generation = desired.generation
        return None


def _last_switch(ledger: Ledger) -> Desired | None:
    record = ledger.last_record_of_type("switch")
    if record is None:
        return None
    fields = record.fields
    return Desired(location_on=fields.get("desired") == "on", generation=int(fields.get("generation", 0)),
                   changed_at_ms=int(record.time_ms))


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return {key: _plain(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


class Agent:
    """Wires the daemon's objects together; used by ``run`` and by ``demo``."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        ensure_state_dir(config.state.dir)
        self.ledger = Ledger.open(config.state.dir, LedgerConfig(
            group_commit_ms=config.ledger.group_commit_ms, checkpoint_every=config.ledger.checkpoint_every,
            retention_days=config.ledger.retention_days,
        ), clock=clock)
        self.session = Session(config.modem.port)
        self.nmea_feed = NmeaFeed(config.modem.nmea_port) if config.modem.nmea_port else None
        self.supervisor = Supervisor(config, self.session, self.ledger, clock=clock, nmea_feed=self.nmea_feed)
        if self.nmea_feed is not None:
            self.nmea_feed.on_fix = self.supervisor.on_fix
        self.supervisor.load_desired()
        self.control = ControlServer(config.control.socket, self.supervisor.handle, group=config.control.group)

    def start(self) -> None:
        self.supervisor.start()  # gate closed, reconcile queued before the port even opens
        self.session.start()
        self.control.start()

    def stop(self) -> None:
        self.control.stop()
        self.supervisor.stop()
        self.session.close()
        self.ledger.close()


def run_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    overrides = {
        "port": args.port,
        "nmea_port": args.nmea_port,
        "state_dir": str(Path(args.state_dir).resolve()) if args.state_dir else None,
        "socket": str(Path(args.socket).resolve()) if args.socket else None,
    }
    config = load_config(Path(args.config), **overrides)
    _register_simulator_if_used(config)
    _check_port_urls(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent = Agent(config)
    agent.start()
    log.info("running: port %s, desired location %s", config.modem.port, agent.supervisor.desired.label)
    try:
        _wait_with_watchdog(stop, agent.supervisor.alive)
    finally:
        systemd.notify("STOPPING=1")
        agent.stop()
    log.info("stopped")
    return 0


def _check_port_urls(config: Config) -> None:
    """A port URL that can never be opened stops the start, instead of a daemon that retries it forever."""
    for name, url in (("port", config.modem.port), ("nmea_port", config.modem.nmea_port)):
        if url is None:
            continue
        try:
            transport.check_url(url)
        except UsageError as exc:
            raise ConfigError(f"[modem] {name}: {exc.message}") from exc


def _register_simulator_if_used(config: Config) -> None:
    urls = [config.modem.port, config.modem.nmea_port or ""]
    if any(url.startswith("sim://") for url in urls):
        from agent import sim

        sim.register()


def _wait_with_watchdog(stop: threading.Event, alive: Callable[[], bool]) -> None:
    """Wait for a signal; meanwhile tell systemd's watchdog we are alive, but only while the supervisor is."""
    interval = systemd.watchdog_interval()
    tick = interval / 2 if interval else 3600.0
    while not stop.wait(tick):
        if interval and alive():
            systemd.notify("WATCHDOG=1")
