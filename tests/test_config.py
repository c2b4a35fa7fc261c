"""Configuration: the shipped example loads, every bad input is named, flags override."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import DEFAULT_SOCKET, MAX_CONFIG_BYTES, load_config, parse_config
from agent.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "privacy-agent.toml"


def test_shipped_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.modem.port == "/dev/ttyUSB2"
    assert config.modem.nmea_port == "/dev/ttyUSB1"
    assert config.modem.reconcile_interval_s == 5
    assert config.control.socket == DEFAULT_SOCKET


def test_flags_override_file() -> None:
    config = load_config(EXAMPLE, port="sim://ec25", state_dir="/tmp/x", socket="/tmp/x.sock")
    assert config.modem.port == "sim://ec25"
    assert str(config.state.dir) == "/tmp/x"
    assert str(config.control.socket) == "/tmp/x.sock"


def test_minimal_config_needs_only_a_port() -> None:
    config = parse_config({"modem": {"port": "sim://ec25"}})
    assert config.modem.nmea_port is None
    assert config.modem.reconcile_interval_s == 5.0


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"modem": {"port": "/dev/x", "prot": 1}}, "[modem] prot"),
        ({"modme": {"port": "/dev/x"}}, "[modme]"),
        ({"modem": {"port": 5}}, "[modem] port"),
        ({"modem": {"port": ""}}, "[modem] port"),
        ({"modem": {"port": "/dev/x", "reconcile_interval_s": 0}}, "[modem] reconcile_interval_s"),
        ({"modem": {"port": "/dev/x", "reconcile_interval_s": True}}, "[modem] reconcile_interval_s"),
        ({"modem": {"port": "/dev/x"}, "state": {"dir": "relative/dir"}}, "[state] dir"),
        ({"modem": {"port": "/dev/x"}, "control": {"group": "no-such-group-xyz"}}, "[control] group"),
        ({"modem": {"port": "/dev/x"}, "ledger": {"group_commit_ms": 5000}}, "[ledger] group_commit_ms"),
        ({"modem": "port"}, "[modem]"),
        ({}, "[modem] port"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(raw, source="test.toml")
    assert named in str(excinfo.value)
    assert "test.toml" in str(excinfo.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[modem\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda tmp: tmp, "not a regular file"),  # a directory
    (lambda tmp: _fifo(tmp / "fifo.toml"), "not a regular file"),  # would block until a writer came
    (lambda tmp: Path("/dev/zero"), "not a regular file"),  # would never end
    (lambda tmp: _written(tmp / "big.toml", b"# " + b"x" * MAX_CONFIG_BYTES + b"\n"), "larger than"),
    (lambda tmp: _written(tmp / "deep.toml", b"a = " + b"[" * 500 + b"]" * 500 + b"\n"), "too deeply"),
    (lambda tmp: _written(tmp / "bom.toml", b'\xef\xbb\xbf[modem]\nport = "/dev/ttyUSB2"\n'), "byte-order mark"),
    (lambda tmp: _written(tmp / "latin1.toml", b'[modem]\nport = "/dev/tty\xe9"\n'), "not UTF-8 text (byte 24)"),
])
def test_files_that_are_not_a_config_are_named_without_hanging(
        tmp_path: Path, make: Callable[[Path], Path], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(make(tmp_path))


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_shipped_policy_example_loads_with_the_daemon_config(tmp_path: Path) -> None:
    combined = tmp_path / "config.toml"
    combined.write_text(EXAMPLE.read_text() + "\n" + (EXAMPLE.parent / "policy.toml").read_text())
    config = load_config(combined)
    assert config.policy.version == "2020-09-08"
    assert config.policy.purpose("fleet-tracking") is not None
    assert config.policy.sinks


def test_without_policy_tables_nothing_can_be_uploaded() -> None:
    config = parse_config({"modem": {"port": "sim://ec25"}})
    assert config.policy.purposes == () and config.ledger.witness is None


@pytest.mark.parametrize(("raw", "named"), [
    ({"policy": {"version": "1", "home_region": "CN"}, "purpose": [{"name": "x", "description": "d",
                                                                     "legal_basis": "consent", "grid_m": 100,
                                                                     "sinks": ["s"]}],
      "sink": [{"name": "s", "url": "file:///tmp/o", "recipient": "r", "region": "CN"}]}, "purpose[0].grid_m"),
    ({"policy": {"version": "1"}}, "policy.home_region"),
    ({"ledger": {"witness": "nowhere"}}, "[ledger] witness"),
    ({"ledger": {"checkpoint_interval_s": 0}}, "[ledger] checkpoint_interval_s"),
])
def test_policy_and_witness_errors_name_the_key(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"modem": {"port": "sim://ec25"}, **raw}, source="cfg.toml")
    assert named in str(caught.value) and str(caught.value).startswith("cfg.toml")
