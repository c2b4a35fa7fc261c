"""The offline tools: ``privacy-agent ledger verify|export`` and ``privacy-agent verify-export``."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from agent.ledger import Ledger
from agent.ledger.export import terminal_progress
from agent.main import main
from tests.ledger_support import CONFIG, copy_state, fill, frame_offsets, segment_paths


@pytest.fixture
def state(tmp_path: Path) -> Path:
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        fill(ledger, 10)
    return tmp_path / "state"


def test_verify_ok_exits_zero(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "verify", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    assert main(["ledger", "verify", "--state-dir", str(state), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["records"] > 10


def test_verify_names_segment_and_offset_of_damage(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    segment = segment_paths(state)[0]
    start, _ = frame_offsets(segment)[3]
    raw = bytearray(segment.read_bytes())
    raw[start + 20] ^= 0x10
    segment.write_bytes(bytes(raw))
    assert main(["ledger", "verify", "--state-dir", str(state)]) == 1
    error = capsys.readouterr().err
    assert segment.name in error and f"offset={start}" in error
    assert main(["ledger", "verify", "--state-dir", str(state), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["verified"], report["segment"], report["offset"]) == (False, segment.name, start)


@pytest.fixture
def crashed(tmp_path: Path) -> Path:
    """A state dir as a crash leaves it: the last records come after the newest signed head."""
    with Ledger.open(tmp_path / "live", CONFIG) as ledger:
        fill(ledger, 9)
        ledger.append("upload", {"sink": "file"})
        ledger.flush()
        return copy_state(tmp_path / "live", tmp_path / "crashed")


def test_verify_reports_a_torn_tail_and_changes_nothing(crashed: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    segment = segment_paths(crashed)[-1]
    os.truncate(segment, segment.stat().st_size - 2)
    before = segment.read_bytes()
    assert main(["ledger", "verify", "--state-dir", str(crashed)]) == 1
    assert "torn tail" in capsys.readouterr().out
    assert segment.read_bytes() == before


def test_verify_names_how_many_records_are_missing_below_the_head(state: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    segment = segment_paths(state)[-1]
    frames = frame_offsets(segment)
    with Ledger.open(state, read_only=True) as ledger:
        total = ledger.head()[0]
    os.truncate(segment, frames[-3][0])
    before = segment.read_bytes()
    assert main(["ledger", "verify", "--state-dir", str(state)]) == 1
    assert f"3 records missing below the signed head of {total} records" in capsys.readouterr().err
    assert main(["ledger", "verify", "--state-dir", str(state), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["verified"], report["missing"], report["head_size"]) == (False, 3, total)
    assert segment.read_bytes() == before  # offline tools change nothing


def test_export_then_verify_export(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export.zip"
    assert main(["ledger", "export", "--state-dir", str(state), "--out", str(out)]) == 0
    assert main(["ledger", "export", "--state-dir", str(state), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["ledger", "export", "--state-dir", str(state), "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["verify-export", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    out.write_bytes(out.read_bytes()[:-40])
    assert main(["verify-export", str(out)]) == 1


def test_usage_errors_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "verify", "--state-dir", str(tmp_path / "missing")]) == 2
    assert main(["verify-export", str(tmp_path / "missing.zip")]) == 2
    assert main(["ledger", "verify", "--state-dir", str(tmp_path)]) == 1  # a dir without a ledger
    assert "no ledger" in capsys.readouterr().err


def test_a_directory_in_place_of_a_segment_is_named(state: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    segment = segment_paths(state)[0]
    segment.unlink()
    segment.mkdir()
    out = tmp_path / "export.zip"
    for argv in (["ledger", "verify", "--state-dir", str(state)],
                 ["ledger", "verify", "--state-dir", str(state), "--json"],
                 ["ledger", "export", "--state-dir", str(state), "--out", str(out)]):
        assert main(argv) == 1
        error = capsys.readouterr().err
        assert error.startswith(f"privacy-agent: cannot open {segment.name}: it is not a regular file"), argv
    assert not out.exists()


def test_tools_refuse_a_store_in_use(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Ledger.open(state, CONFIG):
        assert main(["ledger", "verify", "--state-dir", str(state)]) == 1
    assert "in use" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    assert terminal_progress(io.StringIO()) is None
    screen = _Terminal()
    show = terminal_progress(screen)
    assert show is not None
    for done in range(0, 201, 50):
        show(done, 200)
    text = screen.getvalue()
    assert "100% 200/200" in text and text.endswith("\n") and " 25% 50/200" in text
