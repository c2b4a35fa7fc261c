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
    ledger.checkpoint()                           # sign now (also every N records or T seconds)
    ledger.close()                                # or: with Ledger.open(...) as ledger:

    Ledger.open(state_dir, read_only=True)        # offline tools: changes nothing, reports a torn tail

    from agent.ledger.export import verify_export
    verify_export(path)                           # ExportReport; raises ExportError / LogCorrupt

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

from agent.ledger.codec import Record
from agent.ledger.store import EraseSummary, Ledger, LedgerConfig, RecordRef, TornTail, VerifyReport

__all__ = ["EraseSummary", "Ledger", "LedgerConfig", "Record", "RecordRef", "TornTail", "VerifyReport"]
