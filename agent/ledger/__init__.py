"""The ledger: an append-only, tamper-evident, crash-safe local log with export and erasure.

Use::

    from agent.ledger import Ledger, LedgerConfig

    ledger = Ledger.open(state_dir, LedgerConfig(), clock=None)      # creates <state_dir>/ledger/ (0700)
    ref = ledger.append("switch", {"desired": "off", "by_uid": 0})     # fsynced before it returns
    ref = ledger.append("fix_access", {"purpose": "fleet"},
                        personal={"lat_e7": 123, "lon_e7": 456})       # group commit (<= group_commit_ms)
    ledger.flush()                                # everything so far durable
    ledger.head()                                 # (count, head hash hex)
    ledger.last_record_of_type("switch")          # Record | None (.seq, .time_ms, .type, .fields, .sealed)
    ledger.open_personal(record)                  # decrypted personal fields, None once erased
    ledger.records()                              # every Record in order, chain-checked while read
    ledger.verify()                               # VerifyReport; raises LogCorrupt(segment=..., offset=...)
    ledger.export(out, overwrite=False, progress=None)            # ExportSummary (zip, streaming)
    ledger.erase(epoch=N) / erase(time_range=(start_ms, end_ms)) / erase(everything=True)  # EraseSummary
    ledger.checkpoint()                           # sign now (see "Signed heads" below for when it happens)
    ledger.key_fingerprint()                      # "SHA256:" + base64 (43 chars, unpadded) of SHA-256 of the
                                                  # raw 32-byte Ed25519 public key (for verify-export --key)
    ledger.close()                                # signs a last checkpoint; or: with Ledger.open(...) as ledger:

    Ledger.open(state_dir, read_only=True)        # offline tools: changes nothing, reports a torn tail

    from agent.ledger.export import verify_export
    verify_export(path, key=None)                 # ExportReport; raises ExportError / LogCorrupt / LogTruncated;
                                                  # key="SHA256:...": refuse any other signing key

Signed heads. A signed checkpoint (count, head hash, Merkle root, time) follows every record of a durable type
(switch, consent, request, incident, key_destroyed, recovery), comes at least every ``checkpoint_interval_s``
(60 s) and ``checkpoint_every`` records while records are added, and at ``close``. Each is also written to the
head file ``ledger/checkpoint.cbor`` (atomically: mkstemp, fsync, rename, directory fsync). With the
flush thread (the default), the checkpoint after a durable record is signed by that thread right after the
append returns (the record itself is durable before), at most ``checkpoint_coalesce_ms`` after the previous
one, so that a burst shares one. Records missing below the head file's head are found:

    ledger = Ledger.open(state_dir)               # never raises for a loss; instead:
    ledger.truncation                             # None, or Truncation(missing, head_size, found_size):
                                                  # head_size records were vouched for (the signed count and
                                                  # the checkpoint record), found_size remain
    ledger.head_missing                           # True: the head file is gone from a log with checkpoints
    # Opened for writing, the ledger has already appended a ``recovery`` record stating the loss
    # (reason "truncated", missing_records, head_records, found_records, lost_head_sig; or reason
    # "head_file_missing") and a checkpoint, so the head file now describes the shortened log and the loss
    # stays visible in the log; appending goes on. The daemon adds its own ``incident`` (ledger-truncated).
    # Read-only, nothing is changed, and verify() raises:
    ledger.verify()                               # LogTruncated(LogCorrupt): .missing, .head_size, named
                                                  # "3 records missing below the signed head of 120 records";
                                                  # a missing head file: LogCorrupt(segment="checkpoint.cbor")

An export carries the newest signed head (manifest ``signed_head``), so ``verify_export`` finds the same loss.
A log whose head checkpoint is not where the head says (another log) is LogCorrupt at open. What this cannot
find (root deleting segments and the head file together) is in docs/ledger.md.

Records are deterministic CBOR (text keys, no floats: E7 coordinates, integer milliseconds), framed with
length and checksums, SHA-256 chained across segments, covered by an RFC 9162 Merkle tree whose root is in
Ed25519-signed checkpoints. Durable types (consent, switch, request, incident, key_destroyed, recovery) are
fsynced before ``append`` returns; others within ``group_commit_ms``. Personal fields are AES-256-GCM
encrypted under a data key per pseudonym epoch (``epoch=`` on append, default: ``time // epoch_s``); erasing
destroys keys (crypto-shredding), so the chain, which covers ciphertext, still verifies. Opening after a crash
cuts a torn tail and appends a ``recovery`` record; any other damage raises :class:`~agent.errors.LogCorrupt`
with the place. Record times end with year 9999: a clock past it refuses appends, and a
record past it is damage (a clock before 1970 dates records 0).

Thread-safe. All failures are :class:`~agent.errors.StoreError` subclasses (or ``UsageError`` for bad
records).
"""

from agent.ledger.chain import Truncation
from agent.ledger.codec import Record
from agent.ledger.store import EraseSummary, Ledger, LedgerConfig, RecordRef, TornTail, VerifyReport

__all__ = ["EraseSummary", "Ledger", "LedgerConfig", "Record", "RecordRef", "TornTail", "Truncation",
           "VerifyReport"]
