"""The daemon's configuration: TOML (``tomllib``), flags override, unknown keys are errors.

Every problem is a :class:`~agent.errors.ConfigError` that names the file and the key (``[modem] port``), so an
integrator can fix it from the message alone. The shipped, documented example is ``examples/privacy-agent.toml``;
a test loads it, so the example and this schema cannot drift apart.
"""

from __future__ import annotations

import grp
import os
import stat
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.privacy.policy import EMPTY_POLICY, POLICY_TABLES, Policy, parse_policy

DEFAULT_STATE_DIR = Path("/var/lib/privacy-agent")
DEFAULT_SOCKET = Path("/run/privacy-agent/control.sock")


@dataclass(frozen=True, slots=True)
class ModemConfig:
    port: str
    nmea_port: str | None = None
    guard_port: str | None = None
    reconcile_interval_s: float = 5.0
    verify_timeout_s: float = 10.0
    emergency_positioning: bool = True  # the declared exception: an E911 session may run GNSS while off


@dataclass(frozen=True, slots=True)
class StateConfig:
    dir: Path = DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class ControlConfig:
    socket: Path = DEFAULT_SOCKET
    group: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    group_commit_ms: int = 1000
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    retention_days: int = 0  # 0: keep keys until erased
    witness: str | None = None  # a [[sink]] name: signed ledger heads are published there


@dataclass(frozen=True, slots=True)
class LocalFeedConfig:
    """``[local_feed]``: the privacy-filtered NMEA feed for programs on the gateway (see docs/local-feed.md)."""

    link: Path
    purpose: str
    gpsd_json: tuple[str, int] | None = None  # (loopback host, port)
    buffer_bytes: int = 65536


@dataclass(frozen=True, slots=True)
class IncidentsConfig:
    """``[incidents]``: a program run with each incident as JSON on stdin (see agent/incident_hook.py)."""

    command: tuple[str, ...]
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RightsConfig:
    """``[rights]``: how the user's requests are answered (see docs/rights.md)."""

    repeat_window_s: int = 3600  # an identical export inside this window is refused with its end; 0: never


@dataclass(frozen=True, slots=True)
class Config:
    modem: ModemConfig
    state: StateConfig = StateConfig()
    control: ControlConfig = ControlConfig()
    ledger: LedgerSettings = LedgerSettings()
    policy: Policy = EMPTY_POLICY  # no purposes: nothing is ever uploaded
    local_feed: LocalFeedConfig | None = None  # no [local_feed]: no local reader gets anything
    incidents: IncidentsConfig | None = None  # no [incidents] command: incidents are only recorded
    rights: RightsConfig = RightsConfig()


# section -> key -> (accepted types, check, description for errors)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "modem": {
        "port": ((str,), "a port URL such as /dev/ttyUSB2 or sim://ec25"),
        "nmea_port": ((str,), "a port URL such as /dev/ttyUSB1"),
        "guard_port": ((str,), "a port URL of the on-module guard"),
        "reconcile_interval_s": ((int, float), "seconds, 1 to 86400"),
        "verify_timeout_s": ((int, float), "seconds, 1 to 120"),
        "emergency_positioning": ((bool,), "true or false"),
    },
    "state": {"dir": ((str,), "an absolute directory path")},
    "control": {
        "socket": ((str,), "an absolute socket path"),
        "group": ((str,), "an existing group name"),
    },
    "ledger": {
        "group_commit_ms": ((int,), "milliseconds, 0 to 1000"),
        "checkpoint_every": ((int,), "records, 1 to 1000000"),
        "checkpoint_interval_s": ((int, float), "seconds, 1 to 86400"),
        "retention_days": ((int,), "days, 0 (keep) to 36500"),
        "witness": ((str,), "the name of a [[sink]] to publish signed ledger heads to"),
    },
    "local_feed": {
        "link": ((str,), "an absolute path for the feed's pty symlink"),
        "purpose": ((str,), "the name of a [[purpose]] whose precision the feed gives"),
        "gpsd_json": ((str,), "a loopback address and port such as 127.0.0.1:2947"),
        "buffer_bytes": ((int,), "bytes held for a slow reader, 1024 to 16777216"),
    },
    "incidents": {
        "command": ((list,), "a non-empty list of strings: an absolute program path and its arguments"),
        "timeout_s": ((int, float), "seconds, 0.1 to 300"),
    },
    "rights": {"repeat_window_s": ((int,), "seconds, 0 (never refuse) to 2592000")},
}

_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("modem", "reconcile_interval_s"): (1, 86400),
    ("modem", "verify_timeout_s"): (1, 120),
    ("ledger", "group_commit_ms"): (0, 1000),
    ("ledger", "checkpoint_every"): (1, 1_000_000),
    ("ledger", "checkpoint_interval_s"): (1, 86400),
    ("ledger", "retention_days"): (0, 36500),
    ("local_feed", "buffer_bytes"): (1024, 16 * 1024 * 1024),
    ("incidents", "timeout_s"): (0.1, 300),
    ("rights", "repeat_window_s"): (0, 30 * 86400),
}


MAX_CONFIG_BYTES = 1 << 20  # a real config is a few hundred bytes; a bigger "config" is the wrong file


def load_config(path: Path, **overrides: Any) -> Config:
    """Read and check ``path``; ``overrides`` (port, nmea_port, state_dir, socket) win over the file."""
    text = _read_config_text(path)
    if text.startswith("\ufeff"):
        raise ConfigError(f"config file {path} starts with a byte-order mark; save it as UTF-8 without one")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"config file {path} nests arrays or tables too deeply") from None
    return parse_config(raw, source=str(path), **overrides)


def _read_config_text(path: Path) -> str:
    """The file's text; only a regular file of at most MAX_CONFIG_BYTES (a FIFO would block, /dev/zero
    would never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"config file {path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from exc


def parse_config(raw: dict[str, Any], *, source: str = "config", **overrides: Any) -> Config:
    _check_shape(raw, source)
    modem = raw.get("modem", {})
    state = raw.get("state", {})
    control = raw.get("control", {})
    ledger = raw.get("ledger", {})
    port = overrides.get("port") or modem.get("port")
    if not port:
        raise ConfigError(f"{source}: [modem] port is required (or pass --port)")
    config = Config(
        modem=ModemConfig(
            port=port,
            nmea_port=overrides.get("nmea_port") or modem.get("nmea_port"),
            guard_port=modem.get("guard_port"),
            reconcile_interval_s=float(modem.get("reconcile_interval_s", 5.0)),
            verify_timeout_s=float(modem.get("verify_timeout_s", 10.0)),
            emergency_positioning=modem.get("emergency_positioning", True),
        ),
        state=StateConfig(dir=_absolute(overrides.get("state_dir") or state.get("dir"), DEFAULT_STATE_DIR,
                                        source, "[state] dir")),
        control=ControlConfig(
            socket=_absolute(overrides.get("socket") or control.get("socket"), DEFAULT_SOCKET, source,
                             "[control] socket"),
            group=_existing_group(control.get("group"), source),
        ),
        ledger=LedgerSettings(**ledger),
        policy=_policy(raw, source),
        rights=RightsConfig(**raw.get("rights", {})),
    )
    witness = config.ledger.witness
    if witness is not None and config.policy.sink(witness) is None:
        raise ConfigError(f"{source}: [ledger] witness names no [[sink]] ({witness!r})")
    if "local_feed" in raw:
        config = replace(config, local_feed=_local_feed(raw["local_feed"], config.policy, source))
    if "incidents" in raw:
        config = replace(config, incidents=_incidents(raw["incidents"], source))
    return config


def _incidents(table: dict[str, Any], source: str) -> IncidentsConfig | None:
    """``[incidents]``: ``command`` is an absolute program path and its arguments (no shell); none, no hook."""
    command = table.get("command")
    if command is None:
        return None
    if not command or not all(isinstance(item, str) and item and "\0" not in item for item in command):
        raise ConfigError(f"{source}: [incidents] command must be a non-empty list of non-empty strings")
    if not command[0].startswith("/"):
        raise ConfigError(f"{source}: [incidents] command must start with an absolute program path")
    return IncidentsConfig(command=tuple(command), timeout_s=float(table.get("timeout_s", 10.0)))


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _local_feed(table: dict[str, Any], policy: Policy, source: str) -> LocalFeedConfig:
    """``[local_feed]``: link and purpose are required; the purpose must be one that may carry location."""
    for key in ("link", "purpose"):
        if key not in table:
            raise ConfigError(f"{source}: [local_feed] {key} is required")
    purpose = policy.purpose(table["purpose"])
    if purpose is None:
        raise ConfigError(f"{source}: [local_feed] purpose names no [[purpose]]")
    if purpose.is_exception:
        raise ConfigError(f"{source}: [local_feed] purpose is an exception purpose, which never carries location")
    gpsd_json = None
    if "gpsd_json" in table:
        gpsd_json = _loopback_address(table["gpsd_json"], source)
    return LocalFeedConfig(link=_absolute(table["link"], DEFAULT_STATE_DIR, source, "[local_feed] link"),
                           purpose=purpose.name, gpsd_json=gpsd_json,
                           buffer_bytes=int(table.get("buffer_bytes", 65536)))


def _loopback_address(value: str, source: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) on loopback only: the feed is for this device's programs."""
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{source}: [local_feed] gpsd_json must end in a port number 1 to 65535")
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(f"{source}: [local_feed] gpsd_json must listen on loopback (127.0.0.1, ::1, localhost)")
    return host, int(port_text)


def _policy(raw: dict[str, Any], source: str) -> Policy:
    try:
        return parse_policy(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from exc


def with_overrides(config: Config, **changes: Any) -> Config:
    return replace(config, **changes)


def _check_shape(raw: dict[str, Any], source: str) -> None:
    for section, table in raw.items():
        if section in POLICY_TABLES:
            continue  # checked by agent.privacy.policy.parse_policy
        if section not in _SCHEMA:
            known = ", ".join(sorted([*_SCHEMA, *POLICY_TABLES]))
            raise ConfigError(f"{source}: unknown section [{section}] (known: {known})")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, value in table.items():
            _check_value(source, section, key, value)


def _check_value(source: str, section: str, key: str, value: Any) -> None:
    known = _SCHEMA[section]
    if key not in known:
        raise ConfigError(f"{source}: unknown key [{section}] {key} (known: {', '.join(sorted(known))})")
    types, description = known[key]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise ConfigError(f"{source}: [{section}] {key} must be {description}, not {value!r}")
    if isinstance(value, str) and (not value or any(ord(ch) < 32 for ch in value)):
        raise ConfigError(f"{source}: [{section}] {key} must be {description} (empty or control characters)")
    bounds = _RANGES.get((section, key))
    if bounds is not None and isinstance(value, int | float) and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{source}: [{section}] {key} = {value} is out of range ({description})")


def _absolute(value: str | None, default: Path, source: str, name: str) -> Path:
    if value is None:
        return default
    path = Path(value)
    if not path.is_absolute():
        raise ConfigError(f"{source}: {name} must be an absolute path, not {value!r}")
    return path


def _existing_group(name: str | None, source: str) -> str | None:
    if name is None:
        return None
    try:
        grp.getgrnam(name)
    except KeyError as exc:
        raise ConfigError(f"{source}: [control] group {name!r} does not exist on this system") from exc
    return name
