"""Fuzzing the config file surface (issue 15): ``load_config`` and ``policy render --config`` on whatever file
hypothesis draws, random bytes or random TOML documents built from the real section and key names, either
return a Config (a rendered document) or raise ConfigError; nothing else comes out."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, load_config
from agent.errors import ConfigError
from agent.policy_notice import DOCUMENTS
from agent.policy_render import render_documents

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The real schema's names, so that generated documents reach past "unknown section" into the checks behind it.
SECTIONS = ("modem", "state", "control", "ledger", "local_feed", "incidents", "rights", "policy", "subject")
ARRAY_SECTIONS = ("purpose", "sink")
KEYS = (
    "port", "nmea_port", "guard_port", "reconcile_interval_s", "verify_timeout_s", "emergency_positioning",
    "dir", "socket", "group", "group_commit_ms", "checkpoint_every", "checkpoint_interval_s", "retention_days",
    "witness", "link", "purpose", "gpsd_json", "buffer_bytes", "command", "timeout_s", "repeat_window_s",
    "version", "home_region", "pseudonym_epoch_s", "coarsening", "name", "description", "legal_basis", "fields",
    "grid_m", "time_bucket_s", "max_points_per_day", "sinks", "url", "recipient", "region", "ca_file",
    "cert_file", "key_file", "client_id", "minor", "guardian_consent",
)
# Values the checks look for, so that a good share of documents pass one check and meet the next.
PLAUSIBLE_TEXT = (
    "sim://ec25", "/dev/ttyUSB2", "/tmp/state", "relative/path", "root", "1", "CN", "EU", "consent",
    "exception:emergency", "grid", "fleet", "operator", "file:///tmp/out.jsonl", "https://fleet.example/api",
    "mqtt://broker.example/topic", "mqtts://broker.example:8883/t", "https://[::1", "127.0.0.1:2947",
    "[::1]:0", "localhost:99999", "speed", "altitude", "hdop", "laplace", "", "\u00e9", "a\u0000b", "/bin/true",
)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SMALL_INTS = st.sampled_from((0, 1, -1, 60, 1000, 1024, 3600, 86400, 2**31, 10**12))


def toml_string(text: str) -> str:
    """A TOML basic string for ``text`` (every control character escaped, as TOML requires)."""
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if key and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in key) else toml_string(key)


def toml_value(value: Any) -> str:
    """An inline TOML value: scalars, arrays and inline tables nest to any depth."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(ch in text for ch in ".e") else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_key(key)} = {toml_value(item)}" for key, item in value.items()) + "}"


SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "modem": ("port", "nmea_port", "guard_port", "reconcile_interval_s", "verify_timeout_s",
              "emergency_positioning"),
    "state": ("dir",),
    "control": ("socket", "group"),
    "ledger": ("group_commit_ms", "checkpoint_every", "checkpoint_interval_s", "retention_days", "witness"),
    "local_feed": ("link", "purpose", "gpsd_json", "buffer_bytes"),
    "incidents": ("command", "timeout_s"),
    "rights": ("repeat_window_s",),
    "policy": ("version", "home_region", "pseudonym_epoch_s", "coarsening"),
    "subject": ("minor", "guardian_consent"),
    "purpose": ("name", "description", "legal_basis", "fields", "grid_m", "time_bucket_s", "max_points_per_day",
                "retention_days", "sinks"),
    "sink": ("name", "url", "recipient", "region", "ca_file", "cert_file", "key_file", "client_id"),
}
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8))
plausible = st.one_of(st.sampled_from(PLAUSIBLE_TEXT), SMALL_INTS, st.booleans(),
                      st.lists(st.sampled_from(PLAUSIBLE_TEXT), max_size=3))
scalars = st.one_of(
    st.booleans(), INT64, SMALL_INTS, st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(PLAUSIBLE_TEXT), st.text(max_size=20), st.dates(),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
# Mostly plausible values, sometimes anything at all (one_of draws its branches evenly).
section_values = st.one_of(plausible, plausible, values)


def rarely(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 9)) == 0


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """A whole document: ``[section]`` tables and ``[[purpose]]``/``[[sink]]`` arrays of tables, in any order.
    Mostly real sections with their own keys and plausible values, so that documents get past the first checks
    to the ones behind them; now and then a foreign section, key or value."""
    lines: list[str] = []
    if rarely(draw):  # top-level keys before any table: an unknown section or a non-table one
        for key, value in draw(st.dictionaries(keys, values, max_size=2)).items():
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    names = draw(st.lists(st.sampled_from(SECTIONS), unique=True, max_size=8))
    if rarely(draw):
        names.append(draw(st.text(min_size=1, max_size=6)))
    if draw(st.integers(0, 4)) > 0:
        names = ["modem", *(name for name in names if name != "modem")]
    arrays = draw(st.lists(st.sampled_from(ARRAY_SECTIONS), max_size=4))
    if arrays and draw(st.integers(0, 4)) > 0:
        names = ["policy", *(name for name in names if name != "policy")]
    headers = [(f"[{toml_key(name)}]", name) for name in names] + [(f"[[{name}]]", name) for name in arrays]
    for header, name in draw(st.permutations(headers)):
        lines.append(header)
        own = st.sampled_from(SECTION_KEYS[name]) if name in SECTION_KEYS else keys
        table = draw(st.dictionaries(own, section_values, max_size=6))
        if name == "modem" and draw(st.integers(0, 4)) > 0:
            table["port"] = "sim://ec25"
        if rarely(draw):
            table[draw(keys)] = draw(values)
        for key, value in table.items():
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data)
    return path


def load_only_config_errors(path: Path) -> Config | None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(exc)  # a message an integrator can act on
        return None
    assert isinstance(config, Config)
    return config


def render_only_config_errors(path: Path, fmt: str, document: str) -> None:
    try:
        text = render_documents(path, fmt, document)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(text, str)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_give_a_config_or_config_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = write(tmp_path_factory.mktemp("cfg"), data)
    load_only_config_errors(path)
    render_only_config_errors(path, "text", "all")


@FUZZ
@given(document=toml_documents())
def test_random_toml_documents_give_a_config_or_config_error(
    tmp_path_factory: pytest.TempPathFactory, document: str
) -> None:
    load_only_config_errors(write(tmp_path_factory.mktemp("cfg"), document.encode()))


@FUZZ
@given(document=toml_documents(), fmt=st.sampled_from(("text", "markdown", "json")),
       which=st.sampled_from(("all", *DOCUMENTS)))
def test_policy_render_gives_a_document_or_config_error(
    tmp_path_factory: pytest.TempPathFactory, document: str, fmt: str, which: str
) -> None:
    render_only_config_errors(write(tmp_path_factory.mktemp("cfg"), document.encode()), fmt, which)


VALID = """
[modem]
port = "sim://ec25"
[policy]
version = "1"
home_region = "CN"
[[purpose]]
name = "fleet"
description = "Fleet position"
legal_basis = "consent"
fields = ["speed", "altitude"]
sinks = ["operator"]
[[sink]]
name = "operator"
url = "file:///tmp/out.jsonl"
recipient = "Example Fleet Ltd"
region = "CN"
[local_feed]
link = "/tmp/gps0"
purpose = "fleet"
gpsd_json = "127.0.0.1:2947"
[incidents]
command = ["/bin/true"]
[rights]
repeat_window_s = 60
"""


@FUZZ
@given(data=st.data())
def test_mutated_valid_config_gives_a_config_or_config_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A real, valid config with one line replaced by a key of the schema set to any value."""
    lines = VALID.strip().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    if lines[index].startswith("["):
        lines.insert(index + 1, f"{data.draw(st.sampled_from(KEYS))} = {toml_value(data.draw(values))}")
    else:
        key = lines[index].split(" = ")[0] if data.draw(st.booleans()) else data.draw(st.sampled_from(KEYS))
        lines[index] = f"{key} = {toml_value(data.draw(values))}"
    load_only_config_errors(write(tmp_path_factory.mktemp("cfg"), ("\n".join(lines) + "\n").encode()))


def test_the_valid_base_document_loads(tmp_path: Path) -> None:
    """The mutation test starts from a config that loads, so its mutations probe one check at a time."""
    config = load_only_config_errors(write(tmp_path, VALID.encode()))
    assert config is not None and config.local_feed is not None and config.incidents is not None
