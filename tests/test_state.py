"""The desired switch state file: atomic, versioned, damage is loud, the default is off."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError, StateDamaged
from agent.state import FILE_NAME, Desired, ensure_state_dir, read_desired, write_desired


def test_no_file_means_none(tmp_path: Path) -> None:
    assert read_desired(tmp_path) is None


@given(on=st.booleans(), generation=st.integers(0, 2**40), uid=st.one_of(st.none(), st.integers(0, 65535)))
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, on: bool, generation: int, uid: int | None) -> None:
    directory = tmp_path_factory.mktemp("state")
    desired = Desired(location_on=on, generation=generation, changed_at_ms=1234, changed_by_uid=uid)
    write_desired(directory, desired)
    assert read_desired(directory) == desired
    mode = stat.S_IMODE(os.stat(directory / FILE_NAME).st_mode)
    assert mode == 0o600
    assert not list(directory.glob(f".{FILE_NAME}*")), "a temporary file was left behind"


@pytest.mark.parametrize("content", [b"", b"{", b"[" * 100_000, b'{"location": "maybe", "generation": 1}',
                                     b'{"location": "on", "generation": -1}', b'{"generation": 1}', b"\xff\xfe"])
def test_damaged_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FILE_NAME).write_bytes(content)
    with pytest.raises(StateDamaged, match="damaged"):
        read_desired(tmp_path)


def test_state_dir_is_created_private_and_symlinks_refused(tmp_path: Path) -> None:
    target = tmp_path / "state"
    ensure_state_dir(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="symlink"):
        ensure_state_dir(link)


def test_tmp_file_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / f".{FILE_NAME}.tmp").symlink_to(victim)
    write_desired(tmp_path, Desired(location_on=False, generation=1))  # a fresh, unpredictable temporary name
    assert victim.read_text() == "keep"
    assert read_desired(tmp_path) == Desired(location_on=False, generation=1)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device", "directory"])
def test_anything_but_a_small_regular_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / FILE_NAME
    if kind == "symlink":
        outside = tmp_path / "outside.json"
        outside.write_text('{"location": "on", "generation": 99}')
        path.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(path)  # an open that blocked here would hang the test (and the daemon's start)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(StateDamaged, match="cannot be used"):
        read_desired(tmp_path)


def test_an_oversized_file_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b" " * 10_000_000)
    with pytest.raises(StateDamaged, match="larger than"):
        read_desired(tmp_path)


def test_check_state_dir_writes_nothing(tmp_path: Path) -> None:
    from agent.state import check_state_dir

    check_state_dir(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        check_state_dir(tmp_path / "file")
