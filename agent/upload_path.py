"""The upload path of the daemon (services): the device secret, the spool, the sinks, the uploader and the
pipeline wired together, and the user's operations on them (consent, uploads, why, identity reset).

With no ``[[purpose]]`` in the config, nothing here ever sends anything: the pipeline has no purpose to serve.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
from typing import Any

from agent import device_secret
from agent.config import Config
from agent.errors import AgentError, UsageError
from agent.ledger import Ledger
from agent.model import CellInfo, Clock, DeviceIds
from agent.pipeline import GateState, IncidentSink, Pipeline
from agent.privacy.leakcheck import LeakCheck
from agent.privacy.policy import SinkSpec
from agent.sinks import Sink, open_sink
from agent.spool import Message, Spool
from agent.uploader import Uploader

log = logging.getLogger(__name__)

MAX_LISTED = 1000  # uploads shown per request, newest first
WITNESS_PURPOSE = "ledger-witness"
WITNESS_EVERY_S = 5.0  # how often a new signed head is looked for


class UploadPath:
    def __init__(self, config: Config, ledger: Ledger, *, clock: Clock, gate_state: GateState,
                 record_incident: IncidentSink) -> None:
        self._state_dir = config.state.dir
        self._ledger = ledger
        self.spool = Spool.open(config.state.dir)
        secret = device_secret.load_or_create(config.state.dir)
        self.sinks: dict[str, Sink] = {spec.name: _open(spec, secret) for spec in config.policy.sinks}
        self.pipeline = Pipeline(config.policy, ledger, self.spool, secret=secret, clock=clock,
                                 gate_state=gate_state, record_incident=record_incident,
                                 unconditional_purposes=frozenset({WITNESS_PURPOSE}))
        self.uploader = Uploader(self.spool, self.sinks, clock=clock, may_send=self.pipeline.may_send,
                                 on_delivered=self.pipeline.on_delivered, on_dead=self.pipeline.on_dead)
        self.pipeline.on_queued = self.uploader.wake
        self.witness = config.ledger.witness
        self._published_count = -1
        self._stopping = threading.Event()
        self._witness_thread: threading.Thread | None = None

    def start(self) -> None:
        self.uploader.start()
        if self.witness is not None:
            self._witness_thread = threading.Thread(target=self._witness_loop, name="witness", daemon=True)
            self._witness_thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._witness_thread is not None:
            self._witness_thread.join(timeout=5.0)
        self.uploader.stop()
        self.pipeline.flush()
        for sink in self.sinks.values():
            sink.close()
        self.spool.close()

    def _witness_loop(self) -> None:
        while not self._stopping.wait(WITNESS_EVERY_S):
            try:
                self.publish_head()
            except AgentError as exc:
                log.error("cannot queue the ledger head for the witness: %s", exc)

    def publish_head(self) -> bool:
        """Queue the newest signed ledger head for the witness sink, once per head. The witness then holds
        evidence that the log had at least that many records, so it cannot later be shortened unnoticed."""
        checkpoint = self._ledger.snapshot().checkpoint
        if self.witness is None or checkpoint is None or checkpoint.count == self._published_count:
            return False
        head = {"type": "ledger-head", **checkpoint.as_json()}
        body = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
        message_id = f"head-{checkpoint.count}-{checkpoint.head.hex()[:16]}"
        self.spool.put(Message(id=message_id, sink=self.witness, purpose=WITNESS_PURPOSE, body=body,
                               created_ms=checkpoint.time_ms))
        self._published_count = checkpoint.count
        self.uploader.wake()
        return True

    def learn_identifiers(self, ids: DeviceIds, cell: CellInfo | None) -> None:
        """The device's own identifier values, read from the modem, for the leak check (memory only)."""
        cells = [] if cell is None else [(cell.cell_id, cell.area)]
        self.pipeline.leak_check = LeakCheck.for_device(ids, cells)

    # -- user operations -------------------------------------------------------------------------------------
    def handle(self, op: str, args: dict[str, Any], uid: int | None) -> dict[str, Any]:
        pipeline = self.pipeline
        if op == "consent.list":
            return pipeline.consent_list()
        if op == "consent.grant":
            return pipeline.grant(args["purpose"], uid=uid)
        if op == "consent.withdraw":
            return pipeline.withdraw(args["purpose"], uid=uid)
        if op == "consent.cross_border":
            return pipeline.cross_border(args["region"], bool(args["granted"]), uid=uid)
        if op == "consent.guardian":
            return pipeline.guardian(bool(args["granted"]), uid=uid)
        if op == "why":
            return pipeline.why(args.get("purpose"))
        if op == "uploads":
            return self.uploads(since_ms=args.get("since_ms"), purpose=args.get("purpose"),
                                failed=bool(args.get("failed", False)))
        if op == "identity.reset":
            return self.reset_identity()
        raise UsageError(f"'{op}' is not an upload operation")

    def uploads(self, *, since_ms: int | None, purpose: str | None, failed: bool) -> dict[str, Any]:
        """What left the device (or, with ``failed``, what a sink refused), byte for byte, newest first."""
        found = []
        for record in self._ledger.records():
            fields = record.fields
            if record.type != "upload" or (since_ms is not None and record.time_ms < since_ms):
                continue
            if (purpose is not None and fields.get("purpose") != purpose) or \
                    (fields.get("status") == "rejected") != failed:
                continue
            personal = self._ledger.open_personal(record)
            payload = None if personal is None else personal.get("payload")
            found.append({
                "time": _iso(record.time_ms), **fields,
                "payload": payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None,
                "erased": personal is None,
            })
        found.reverse()
        result: dict[str, Any] = {"uploads": found[:MAX_LISTED], "total": len(found)}
        if failed:
            result["dead_letters_queued"] = len(self.spool.dead_letters())
        return result

    def reset_identity(self) -> dict[str, Any]:
        """A new device secret (new pseudonyms, a new grid); the data linked to the old ones is crypto-shredded
        and their queued records dropped."""
        secret = device_secret.replace(self._state_dir)
        erased = self._ledger.erase(everything=True)
        purged = self.pipeline.reset_identity(secret)
        log.info("identity reset: new device secret, %s data keys destroyed", erased.keys_destroyed)
        return {"reset": True, "keys_destroyed": erased.keys_destroyed, **purged}


def _open(spec: SinkSpec, secret: bytes) -> Sink:
    return open_sink(spec.name, spec.url, ca_file=spec.ca_file, cert_file=spec.cert_file, key_file=spec.key_file,
                     client_id=spec.client_id or mqtt_client_id(secret, spec.name))


def mqtt_client_id(secret: bytes, sink_name: str) -> str:
    """A stable MQTT client id (the broker keeps the persistent session under it) that is no device identifier:
    keyed by the device secret, so it changes with ``identity reset``. The broker can still link the uploads it
    receives under one client id; see docs/privacy.md."""
    digest = hmac.new(secret, b"mqtt-client-id\0" + sink_name.encode(), hashlib.sha256).hexdigest()
    return f"pa-{digest[:20]}"


def _iso(time_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"



