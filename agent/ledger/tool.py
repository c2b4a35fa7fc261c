"""Offline ledger tools: ``privacy-agent ledger verify|export`` and ``privacy-agent verify-export``.

They work on a state dir while the daemon is stopped (the store's lock refuses one in use) and never change
it:
the store is opened read-only, so a torn tail is reported, not cut off.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from agent.errors import LogCorrupt, LogTruncated, UsageError
from agent.ledger.export import terminal_progress, verify_export
from agent.ledger.store import Ledger


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0 only when every segment, the chain and every signature verify and no torn tail is left."""
    state_dir = _state_dir(args.state_dir)
    try:
        with Ledger.open(state_dir, read_only=True) as ledger:
            report = ledger.verify()
    except LogCorrupt as exc:
        if args.json:
            missing = {"missing": exc.missing, "head_size": exc.head_size} if isinstance(exc, LogTruncated) else {}
            _print_json({"verified": False, "error": exc.message, "segment": exc.segment,
                         "offset": exc.offset, **missing})
            return 1
        raise
    tail = report.torn_tail
    if args.json:
        _print_json({"verified": tail is None, **dataclasses.asdict(report)})
    elif tail is None:
        print(f"ok: {report.records} records in {report.segments} segments verify; head {report.head}; "
              f"{report.checkpoints} signed checkpoints")
    else:
        print(f"torn tail: segment {tail.segment} offset {tail.offset} ({tail.length} bytes of an "
              f"incomplete record; the next start of the agent cuts it off); the {report.records} records "
              f"before it verify")
    return 0 if tail is None else 1


def export_command(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args.state_dir)
    out = Path(args.out)
    with Ledger.open(state_dir, read_only=True) as ledger:
        summary = ledger.export(out, overwrite=args.overwrite, progress=terminal_progress())
    print(f"wrote {summary.path}: {summary.records} records ({summary.erased_records} with erased personal "
          f"fields), {summary.bytes} bytes")
    return 0


def verify_export_command(args: argparse.Namespace) -> int:
    """Exit 0 when the export verifies (with ``--key``: signed by that key); says plainly when no key was
    pinned, since anyone can make an export that verifies with a key of their own."""
    report = verify_export(Path(args.file), key=args.key)
    if args.json:
        _print_json({"verified": True, **dataclasses.asdict(report)})
    elif report.key_pinned:
        print(f"ok: {report.records} records, chain head {report.head}, {report.checkpoints} signed "
              f"checkpoints, signed with the pinned key {report.key_fingerprint}")
    else:
        print(f"ok: {report.records} records, chain head {report.head}, {report.checkpoints} signed "
              f"checkpoints, signed with key {report.key_fingerprint}\n"
              f"warning: the key was not pinned, so this shows only that the export is intact, not that your "
              f"device made it; pass --key FINGERPRINT (privacyctl status shows your device's) to check that")
    return 0


def _state_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise UsageError(f"state dir {value} does not exist or is not a directory")
    return path


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
