"""Fuzzing the capture file surface (issue 15): ``decoded_fixes`` and the policy's dry run over random bytes and
over the vendored gpsd captures with bits flipped, pieces cut out and pieces of other captures spliced in. Only
the project's own errors (AgentError) may come out; every fix that comes out is a Fix, and the dry run's lines
keep their shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, parse_config
from agent.dry_run import dry_run
from agent.errors import AgentError
from agent.model import Fix
from agent.nmea.fixes import FixDecoder
from agent.replay import decoded_fixes, fix_record

CORPORA = Path(__file__).resolve().parent / "corpora" / "gpsd"
CAPTURES = sorted(CORPORA.glob("*.log"))
CAPTURE_BYTES = [capture.read_bytes() for capture in CAPTURES]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

POLICY = parse_config({
    "modem": {"port": "sim://ec25"},
    "policy": {"version": "1", "home_region": "CN"},
    "purpose": [{"name": "fleet", "description": "Fleet position", "legal_basis": "consent",
                 "fields": ["speed", "altitude", "course"], "time_bucket_s": 1, "max_points_per_day": 86400,
                 "sinks": ["operator", "abroad"]}],
    "sink": [{"name": "operator", "url": "file:///tmp/unused.jsonl", "recipient": "Example Fleet Ltd",
              "region": "CN"},
             {"name": "abroad", "url": "https://fleet.example/api", "recipient": "Example Fleet GmbH",
              "region": "EU"}],
})


@st.composite
def mutated_captures(draw: st.DrawFn) -> bytes:
    """A real capture, then a few flips, cuts and splices (of another capture's bytes or random ones)."""
    data = bytearray(draw(st.sampled_from(CAPTURE_BYTES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(("flip", "cut", "splice", "random")))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            index = min(at, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:at + draw(st.integers(0, 4096))]
        elif kind == "splice":
            other = draw(st.sampled_from(CAPTURE_BYTES))
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start:start + draw(st.integers(0, 4096))]
        else:
            data[at:at] = draw(st.binary(max_size=256))
    return bytes(data)


captures = st.one_of(st.binary(max_size=4096), mutated_captures())


def replay_only_agent_errors(path: Path) -> list[Fix]:
    fixes: list[Fix] = []
    try:
        for fix in decoded_fixes(path, FixDecoder()):
            assert isinstance(fix, Fix)
            fix_record(fix)  # what `privacy-agent replay` prints: must not fail either
            fixes.append(fix)
    except AgentError:
        pass
    return fixes


def dry_run_only_agent_errors(config: Config, path: Path) -> None:
    positions = (fix for fix in decoded_fixes(path, FixDecoder()) if fix_record(fix) is not None)
    try:
        for line in dry_run(config, "fleet", positions):
            assert line["sink"] in ("operator", "abroad")
            assert line["upload"] == (line["outcome"] == "queued")
            assert line["upload"] == (line["payload"] is not None)
    except AgentError:
        pass


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "capture.log"
    path.write_bytes(data)
    return path


def test_the_real_captures_decode() -> None:
    """The mutations start from captures that hold fixes, so the fuzzing reaches the decoder's paths."""
    for capture in CAPTURES:
        assert any(fix_record(fix) is not None for fix in decoded_fixes(capture, FixDecoder())), capture.name


@FUZZ
@given(data=captures)
def test_replay_raises_only_agent_errors(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    replay_only_agent_errors(write(tmp_path_factory.mktemp("capture"), data))


@settings(FUZZ, max_examples=60)
@given(data=captures)
def test_dry_run_raises_only_agent_errors(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    dry_run_only_agent_errors(POLICY, write(tmp_path_factory.mktemp("capture"), data))
