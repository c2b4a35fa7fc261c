"""The device secret: the key behind pseudonyms and the keyed coarsening grid (adapter: one small file).

``device.secret`` in the state dir holds 32 random bytes (0600). It never leaves the device and is never logged.
As long as it lives, a device's pseudonyms are derivable and the coarsened output for each true grid cell stays
the same (so watching a stationary device longer reveals nothing more). ``privacyctl identity reset`` replaces it:
from then on the device has new pseudonyms and a new grid, and the data linked to the old ones is erased through
the ledger's key destruction.

The file gets the ledger's checks: a regular file only (no symlink, FIFO or device), a bounded read, a fresh
temporary file (``mkstemp``) renamed over it, and the directory fsynced.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from agent.errors import StoreError
from agent.ledger.files import atomic_write, read_small

FILE_NAME = "device.secret"
SECRET_BYTES = 32


def load_or_create(state_dir: Path) -> bytes:
    """The device secret, made on first use."""
    path = state_dir / FILE_NAME
    data = read_small(path, limit=SECRET_BYTES)
    if data is None:
        return replace(state_dir)
    if len(data) != SECRET_BYTES:
        raise StoreError(f"{FILE_NAME} is damaged: it must hold exactly {SECRET_BYTES} bytes", path=str(path))
    return data


def replace(state_dir: Path) -> bytes:
    """Make a new secret and make it durable; the old one is gone once this returns."""
    secret = secrets.token_bytes(SECRET_BYTES)
    atomic_write(state_dir / FILE_NAME, secret)
    return secret
