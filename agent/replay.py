"""``privacy-agent replay CAPTURE [--json]``: decode an NMEA capture file into fixes, one JSON object a line.

Reads a gpsd-style capture (``#`` comment lines, CRLF or LF, binary allowed) in fixed-size blocks, so memory
stays constant whatever the file's size. Prints one object per valid fix (one per epoch, see
:mod:`agent.nmea.fixes`) whose time is known: ``time`` (ISO 8601 UTC with ``Z``), ``lat``, ``lon`` (decimal
degrees, south and west negative), then whatever else is known (``alt``, ``hdop``, ``sats``, ``speed`` in
km/h, ``course``, ``quality``, ``source``, ``talker``, ``mode``: see :class:`agent.model.Fix`). A fix before
the first date (RMC or ZDA) has no time and is not printed; nor is an epoch that is not a position (no fix,
simulated, typed in). A summary goes to standard error: the reader's counters and how many epochs of each
mode the capture held (``modes: autonomous=30 simulator=2 invalid=5``), so simulated and invalid epochs are
shown without being printed as positions. The header comments (names, addresses, home locations) are never
printed.

With ``--purpose NAME --config FILE`` it is the policy's dry run instead (:mod:`agent.dry_run`): per fix and sink,
what would be uploaded, byte for byte, or the rule that stops it; the capture's own positions are not printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from agent.errors import AgentError, UsageError
from agent.model import Fix
from agent.nmea.capture import CaptureFilter
from agent.nmea.fixes import FixDecoder

BLOCK_BYTES = 64 * 1024


def replay_command(args: argparse.Namespace) -> int:
    path = Path(args.capture)
    if getattr(args, "nmea", False):  # the local feed's dry run: agent.local_feed_replay
        from agent.local_feed_replay import nmea_command

        return _quiet_on_broken_pipe(lambda: nmea_command(args, path, decoded_fixes(path, FixDecoder())))
    if getattr(args, "purpose", None) is not None:
        return _dry_run_command(args, path)
    decoder = FixDecoder()
    printed = 0
    epoch_modes: Counter[str] = Counter()
    try:
        for fix in decoded_fixes(path, decoder):
            epoch_modes[fix.mode or "unstated"] += 1
            record = fix_record(fix)
            if record is not None:
                print(json.dumps(record), file=sys.stdout)
                printed += 1
    except BrokenPipeError:
        # The reader went away (``| head``): not an error. Point stdout at /dev/null so that the interpreter's
        # final flush does not fail again, as the Python documentation recommends.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    _print_summary(path, decoder, printed, epoch_modes, sys.stderr)
    return 0


def _dry_run_command(args: argparse.Namespace, path: Path) -> int:
    """``--purpose NAME --config FILE``: what each fix would upload under the policy, and why."""
    from agent.config import load_config
    from agent.dry_run import dry_run

    if not args.config:
        raise UsageError("--purpose needs --config FILE (the policy to run)")
    config = load_config(Path(args.config), port="sim://unused")
    decoder = FixDecoder()
    positions = (fix for fix in decoded_fixes(path, decoder) if fix_record(fix) is not None)
    lines = uploads = 0
    try:
        for line in dry_run(config, args.purpose, positions):
            print(json.dumps(line, sort_keys=True), file=sys.stdout)
            lines += 1
            uploads += bool(line["upload"])
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    print(f"replay {path.name} --purpose {args.purpose}: {uploads} uploads in {lines} decisions", file=sys.stderr)
    return 0


def _quiet_on_broken_pipe(command: Callable[[], int]) -> int:
    """Run ``command``; a reader that went away (``| head``) is not an error (see replay_command)."""
    try:
        return command()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def decoded_fixes(path: Path, decoder: FixDecoder) -> Iterator[Fix]:
    """Every fix in the capture at ``path``, read block by block."""
    capture = CaptureFilter()
    try:
        with path.open("rb") as stream:
            while block := stream.read(BLOCK_BYTES):
                yield from decoder.feed(capture.feed(block))
    except FileNotFoundError:
        raise UsageError("capture file not found", file=str(path)) from None
    except IsADirectoryError:
        raise UsageError("capture path is a directory, not a file", file=str(path)) from None
    except OSError as exc:
        raise AgentError("capture file cannot be read", file=str(path), reason=exc.strerror) from exc
    yield from decoder.feed_eof()


def fix_record(fix: Fix) -> dict[str, object] | None:
    """The JSON object for one fix, or None if it has no position or no time."""
    if not fix.valid or fix.time is None or fix.lat is None or fix.lon is None:
        return None
    record: dict[str, object] = {
        "time": fix.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "lat": round(fix.lat, 9),
        "lon": round(fix.lon, 9),
    }
    optional: dict[str, object | None] = {
        "alt": fix.altitude_m,
        "hdop": fix.hdop,
        "sats": fix.satellites,
        "speed": None if fix.speed_kmh is None else round(fix.speed_kmh, 3),
        "course": fix.course_deg,
        "quality": fix.fix_quality,
        "source": fix.source,
        "talker": fix.talker,
        "mode": fix.mode,
    }
    record.update((key, value) for key, value in optional.items() if value is not None)
    return record


def _print_summary(
    path: Path, decoder: FixDecoder, printed: int, epoch_modes: Counter[str], stream: TextIO
) -> None:
    counters = decoder.reader.counters.as_dict()
    counters["undecodable"] = decoder.assembler.undecodable
    facts = " ".join(f"{name}={value}" for name, value in counters.items())
    modes = " ".join(f"{mode}={count}" for mode, count in sorted(epoch_modes.items()))
    print(f"replay {path.name}: {printed} fixes; {facts}; modes: {modes or 'none'}", file=stream)
