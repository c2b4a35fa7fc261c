"""Rotating pseudonyms: one per purpose per epoch, keyed by the device secret.

``pseudonym = HMAC-SHA256(secret, "pseudonym" | len(purpose) | purpose | epoch)[:16]`` as 32 hex characters. The
purpose is length-prefixed and the epoch a fixed-width integer, so no two (purpose, epoch) pairs share an input.
Without the secret, pseudonyms of different epochs or purposes cannot be linked; a new secret (``identity reset``)
unlinks everything that came before.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

_DOMAIN = b"pseudonym"
PSEUDONYM_BYTES = 16
MIN_SECRET_BYTES = 16


def pseudonym(secret: bytes, purpose: str, epoch: int) -> str:
    """The purpose's pseudonym for ``epoch`` (see :func:`epoch_of`), 32 lower-case hex characters."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the device secret must be at least {MIN_SECRET_BYTES} bytes")
    purpose_bytes = purpose.encode("utf-8")
    message = _DOMAIN + struct.pack(">H", len(purpose_bytes)) + purpose_bytes + struct.pack(">q", epoch)
    return hmac.new(secret, message, hashlib.sha256).digest()[:PSEUDONYM_BYTES].hex()


def epoch_of(time_s: float, epoch_s: int) -> int:
    """The pseudonym epoch that ``time_s`` (seconds since the Unix epoch) falls in; epochs start at 00:00 UTC
    when ``epoch_s`` divides a day."""
    if epoch_s <= 0:
        raise ValueError("epoch_s must be positive")
    return int(time_s // epoch_s)
