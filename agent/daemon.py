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

import logging
from typing import Any

from agent import transport
from agent.config import Config
from agent.control import ControlServer, Peer, Request, check_socket_free
from agent.control_protocol import StreamReply
from agent.errors import PortBusy, PortUnavailable, UsageError
from agent.guard_link import GuardLink
from agent.incident_hook import IncidentHook
from agent.incident_log import iso_utc
from agent.ledger import Ledger, LedgerConfig
from agent.local_feed import LocalFeed, build_local_feed
from agent.model import Clock, SystemClock
from agent.nmea_feed import NmeaFeed
from agent.rights import Rights, status_extras
from agent.rights_requests import REQUEST_OPS, RightsRequests
from agent.session import Session
from agent.state import check_state_dir, ensure_state_dir
from agent.supervisor import FULL_RECONCILE_S, NMEA_WHILE_OFF, Supervisor
from agent.upload_path import UploadPath

__all__ = ["FULL_RECONCILE_S", "NMEA_WHILE_OFF", "RIGHTS_OPS", "UPLOAD_OPS", "Agent", "GuardLink", "Supervisor",
           "iso_utc", "preflight"]

log = logging.getLogger("privacy-agent")


class Agent:
    """Wires the daemon's objects together; used by ``run`` and by ``demo``.

    Every start-up check runs before anything is written: a refused start leaves no trace (no state dir, no
    key, no socket file)."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        preflight(config)
        ensure_state_dir(config.state.dir)
        clock = clock or SystemClock()
        self.ledger = Ledger.open(config.state.dir, LedgerConfig(
            group_commit_ms=config.ledger.group_commit_ms, checkpoint_every=config.ledger.checkpoint_every,
            checkpoint_interval_s=config.ledger.checkpoint_interval_s, retention_days=config.ledger.retention_days,
            epoch_s=config.policy.pseudonym_epoch_s,
        ), clock=clock)
        self.session = Session(config.modem.port)
        self.nmea_feed = NmeaFeed(config.modem.nmea_port) if config.modem.nmea_port else None
        self.supervisor = Supervisor(config, self.session, self.ledger, clock=clock, nmea_feed=self.nmea_feed)
        if config.incidents is not None:  # before the first incident can be found; its thread starts in start()
            self.supervisor.incident_hook = IncidentHook(config.incidents.command,
                                                         timeout_s=config.incidents.timeout_s,
                                                         on_failure=self.supervisor.record_hook_failure)
        self.supervisor.load_desired()
        self.supervisor.check_ledger_loss()
        self.uploads = UploadPath(config, self.ledger, clock=clock, gate_state=self.supervisor.gate_state,
                                  record_incident=self.supervisor.record_incident)
        self.supervisor.fix_listeners.append(self.uploads.pipeline.on_fix)
        self.rights = Rights(self.ledger, self.uploads.pipeline, self.uploads.spool)
        self.rights.start()  # corrections folded in, the policy archived; a material change suspends its purposes
        pipeline_now = self.uploads.pipeline
        self.requests = RightsRequests(self.ledger, self.uploads.spool, lambda: pipeline_now.policy, config.rights,
                                       clock=clock, ledger_retention_days=config.ledger.retention_days)
        self.supervisor.on_identified = self.uploads.learn_identifiers
        self.local_feed: LocalFeed | None = None  # [local_feed]: filtered NMEA for programs on this device
        if config.local_feed is not None:
            pipeline = self.uploads.pipeline
            self.local_feed = build_local_feed(config.local_feed, config.policy, self.ledger, clock=clock,
                                               local_decision=pipeline.local_decision,
                                               coarsener=lambda: pipeline.coarsener,
                                               link_record=config.state.dir / "local_feed.link")
            self.supervisor.fix_listeners.append(self.local_feed.on_fix)
            self.supervisor.gate.on_close.append(self.local_feed.drop_unread)
        self.control = ControlServer(config.control.socket, self.handle, group=config.control.group,
                                     on_denied=lambda peer: self.supervisor.record_denied(peer.uid))

    def handle(self, request: Request, peer: Peer) -> dict[str, Any] | StreamReply:
        """Route a control request: the switch and the log to the supervisor, the upload path's ops to it."""
        if request.op.startswith(UPLOAD_OPS):
            return self.uploads.handle(request.op, dict(request.args), peer.uid)
        if request.op in REQUEST_OPS:  # export (a stream), erase, log.show: agent/rights_requests.py
            return self.requests.handle(request.op, dict(request.args), peer.uid)
        if request.op == "status" and self.local_feed is not None:  # its readers' drop counters, for the user
            return {**self.handle_right(request, peer), "local_feed": self.local_feed.stats()}
        if request.op in RIGHTS_OPS:
            return self.handle_right(request, peer)
        return self.supervisor.handle(request, peer)

    def handle_right(self, request: Request, peer: Peer) -> dict[str, Any]:
        args = request.args
        if request.op == "status":
            result = self.supervisor.status()
            extras = status_extras(self.uploads.pipeline, self.rights, self.supervisor.incidents())
            return {**result, **extras, "notices": [*result["notices"], *self.rights.notices]}
        if request.op == "policy.show":
            return self.rights.policy_show(fmt=str(args.get("format", "text")), with_diff=bool(args.get("diff")))
        if request.op == "policy.accept":
            return self.rights.policy_accept(uid=peer.uid)
        return self.rights.correct(str(args.get("what")), args.get("value"), uid=peer.uid)

    def start(self) -> None:
        if self.supervisor.incident_hook is not None:
            self.supervisor.incident_hook.start()
        if self.local_feed is not None:
            self.local_feed.start()  # first: a link path it may not take stops the start before the modem is touched
        self.supervisor.start()  # gate closed, reconcile queued before the port even opens
        self.session.start()
        self.uploads.start()
        self.control.start()

    def stop(self) -> None:
        self.control.stop()
        self.supervisor.stop()
        if self.local_feed is not None:
            self.local_feed.stop()
        self.uploads.stop()
        self.session.close()
        if self.supervisor.incident_hook is not None:
            self.supervisor.incident_hook.stop()
        self.ledger.close()


UPLOAD_OPS = ("consent.", "why", "uploads", "identity.")
RIGHTS_OPS = frozenset({"status", "policy.show", "policy.accept", "correct"})  # agent/rights.py


def preflight(config: Config) -> None:
    """Refuse a start that cannot work, before anything is written.

    - the state dir must not be a symlink (nor anything but a directory);
    - the control socket must not be served by another agent;
    - no other program may hold the modem's ports: one owner per modem. Ports are opened exclusively
      (``flock``); a port that is merely missing now is fine (the modem may be plugged in later).
    """
    check_state_dir(config.state.dir)
    check_socket_free(config.control.socket)
    for name, url in (("port", config.modem.port), ("nmea_port", config.modem.nmea_port)):
        if url is None:
            continue
        try:
            transport.open_port(url).close()
        except PortBusy as exc:
            raise PortBusy(f"[modem] {name} {url} is already owned by another program (an agent, ModemManager, "
                           f"a terminal); refusing to share the modem", port=url) from exc
        except (PortUnavailable, UsageError):
            pass  # missing now, or checked by _check_port_urls: the session retries
