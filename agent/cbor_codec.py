"""The one boundary with cbor2's decoder: whatever it raises on bad input becomes a plain ``ValueError``, which
each caller turns into its own error (the ledger's LogCorrupt, the spool's StoreError, the guard's GuardError).

Pure: bytes in, a value out; no I/O.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2


def decode(data: bytes, *, strict: bool = False) -> tuple[Any, int]:
    """The CBOR item at the start of ``data`` and the offset where it ends.

    ``strict``: definite lengths only and no repeated map key (the ledger's deterministic records).
    """
    stream = io.BytesIO(data)
    try:
        decoder = (cbor2.CBORDecoder(stream, allow_indefinite=False, allow_duplicate_keys=False) if strict
                   else cbor2.CBORDecoder(stream))
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ValueError("not valid CBOR") from exc
    return value, stream.tell()
