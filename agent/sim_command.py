"""``privacy-agent sim``: serve the simulated module on ptys until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from agent.errors import AgentError, UsageError
from agent.sim.modem import SimModem
from agent.sim.pty import SimPtyServer

_DEFAULT_NAMES = {"at": "ttyAT", "at2": "ttyAT2", "nmea": "ttyNMEA"}


def sim_command(args: argparse.Namespace) -> int:
    """Serve until a signal; prints ``<channel>: <path>`` per line first. Returns the exit code."""
    try:
        modem = SimModem(model=args.model, seed=args.seed, ttff_s=args.ttff)
        args.loaded_scenario = _load_scenario(args.scenario) if getattr(args, "scenario", None) else None
    except (AgentError, ValueError) as exc:
        print(f"privacy-agent sim: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    # Handlers go in before the paths are printed: a client may signal as soon as it has read them.
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return _serve(modem, args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(modem: SimModem, args: argparse.Namespace, stop: threading.Event) -> int:
    with tempfile.TemporaryDirectory(prefix="privacy-agent-sim-") as tmp:
        links = _links(args, Path(tmp))
        try:
            server = SimPtyServer(modem, links).start()
        except UsageError as exc:  # a link path given by the user: missing directory, taken, unwritable
            print(f"privacy-agent sim: {exc}", file=sys.stderr)
            return 2
        except AgentError as exc:
            print(f"privacy-agent sim: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # openpty itself: no ptys left, not the user's arguments
            print(f"privacy-agent sim: cannot open a pseudo-terminal: {exc.strerror or exc}", file=sys.stderr)
            return 1
        try:
            for channel, path in links.items():
                print(f"{channel}: {path}")
            sys.stdout.flush()
            if args.loaded_scenario is not None:
                _play_scenario(args.loaded_scenario, modem, stop)
            while not stop.wait(1.0):
                pass
        finally:
            server.stop()
    return 0


def _links(args: argparse.Namespace, tmp: Path) -> dict[str, str | Path]:
    given = {"at": args.pty_link, "at2": args.at2_pty_link, "nmea": args.nmea_pty_link}
    return {channel: Path(path) if path else tmp / _DEFAULT_NAMES[channel] for channel, path in given.items()}


def _load_scenario(path: str) -> Any:
    """``--scenario FILE``, checked before any pty exists (a bad file is a usage error, exit 2)."""
    from agent.rig.loader import load_scenario

    return load_scenario(Path(path))


def _play_scenario(scenario: Any, modem: SimModem, stop: threading.Event) -> None:
    """The scenario's modem events, in real time, before serving on until signalled."""
    from agent.rig.cli import play_modem_events

    if play_modem_events(scenario, modem, stop):
        print("scenario done", flush=True)
