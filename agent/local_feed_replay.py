"""``privacy-agent replay CAPTURE --nmea --purpose NAME --config FILE``: the filtered NMEA a local reader would get.

A dry run of the local feed (:mod:`agent.local_feed`) over a capture: each position is coarsened to the purpose's
grid, its time cut to the purpose's bucket (one epoch per bucket), only the allowed fields kept, and GGA and RMC
written anew, as if the switch were on and the purpose consented. The grid is keyed by the device secret of the
config's state dir when it can be read (the same bytes the feed would give); otherwise by a throwaway secret, said
on standard error, so the shape is right but the points are not the device's. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from agent import device_secret
from agent.errors import AgentError, UsageError
from agent.local_feed import LocalView
from agent.model import Fix
from agent.nmea.writer import sentences
from agent.privacy.coarsen import Coarsener, coarsener_for
from agent.privacy.policy import Policy, Purpose


def local_feed_purpose(policy: Policy, name: str) -> Purpose:
    purpose = policy.purpose(name)
    if purpose is None:
        raise UsageError("--purpose names no [[purpose]] of the config")
    if purpose.is_exception:
        raise UsageError("--purpose is an exception purpose, which never carries location")
    return purpose


def device_or_throwaway_secret(state_dir: Path) -> tuple[bytes, bool]:
    """(secret, whether it is the device's): the device's own when readable, never created here."""
    from agent.ledger.files import read_small

    try:
        data = read_small(state_dir / device_secret.FILE_NAME, limit=device_secret.SECRET_BYTES)
    except AgentError:
        data = None
    if data is not None and len(data) == device_secret.SECRET_BYTES:
        return data, True
    return secrets.token_bytes(device_secret.SECRET_BYTES), False


def write_feed(fixes: Iterable[Fix], purpose: Purpose, coarsener: Coarsener, out: BinaryIO) -> int:
    """Write what the feed would give for ``fixes``; the number of epochs written."""
    view = LocalView(purpose)
    written = 0
    for fix in fixes:
        epoch = view.epoch(fix, coarsener)
        if epoch is not None:
            out.write(sentences(epoch))
            written += 1
    return written


def nmea_command(args: argparse.Namespace, path: Path, fixes: Iterable[Fix]) -> int:
    from agent.config import load_config

    if not getattr(args, "purpose", None) or not getattr(args, "config", None):
        raise UsageError("--nmea needs --purpose NAME and --config FILE (the policy whose precision to give)")
    config = load_config(Path(args.config), port="sim://unused")
    purpose = local_feed_purpose(config.policy, args.purpose)
    secret, own = device_or_throwaway_secret(config.state.dir)
    if not own:
        print("replay: the device secret cannot be read; positions are on a grid keyed by a throwaway secret",
              file=sys.stderr)
    epochs = write_feed(fixes, purpose, coarsener_for(config.policy.coarsening, secret), sys.stdout.buffer)
    sys.stdout.flush()
    print(f"replay {path.name} --nmea --purpose {purpose.name}: {epochs} epochs (grid {purpose.grid_m} m, "
          f"bucket {purpose.time_bucket_s} s)", file=sys.stderr)
    return 0
