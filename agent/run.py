"""``privacy-agent run``: start the daemon in the foreground (entry layer).

Reads the config (flags override it), refuses a port URL that can never open, makes the simulator's ``sim://``
scheme known when the config names it (the only place outside tests that imports :mod:`agent.sim`), starts
:class:`agent.daemon.Agent`, and waits for SIGTERM/SIGINT while feeding systemd's watchdog, but only while the
supervisor is alive.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from agent import systemd, transport
from agent.config import Config, load_config
from agent.daemon import Agent
from agent.errors import ConfigError, UsageError

log = logging.getLogger("privacy-agent")


def run_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    overrides = {
        "port": args.port,
        "nmea_port": args.nmea_port,
        # absolute(), not resolve(): a symlinked state dir must be seen, and refused, as the config's is
        "state_dir": str(Path(args.state_dir).absolute()) if args.state_dir else None,
        "socket": str(Path(args.socket).absolute()) if args.socket else None,
    }
    config = load_config(Path(args.config), **overrides)
    _register_simulator_if_used(config)
    _check_port_urls(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent = Agent(config)
    agent.start()
    log.info("running: port %s, desired location %s", config.modem.port, agent.supervisor.desired.label)
    try:
        _wait_with_watchdog(stop, agent.supervisor.alive)
    finally:
        systemd.notify("STOPPING=1")
        agent.stop()
    log.info("stopped")
    return 0


def _check_port_urls(config: Config) -> None:
    """A port URL that can never be opened stops the start, instead of a daemon that retries it forever."""
    for name, url in (("port", config.modem.port), ("nmea_port", config.modem.nmea_port)):
        if url is None:
            continue
        try:
            transport.check_url(url)
        except UsageError as exc:
            raise ConfigError(f"[modem] {name}: {exc.message}") from exc


def _register_simulator_if_used(config: Config) -> None:
    urls = [config.modem.port, config.modem.nmea_port or ""]
    if any(url.startswith("sim://") for url in urls):
        from agent import sim

        sim.register()


def _wait_with_watchdog(stop: threading.Event, alive: Callable[[], bool]) -> None:
    """Wait for a signal; meanwhile tell systemd's watchdog we are alive, but only while the supervisor is."""
    interval = systemd.watchdog_interval()
    tick = interval / 2 if interval else 3600.0
    while not stop.wait(tick):
        if interval and alive():
            systemd.notify("WATCHDOG=1")
