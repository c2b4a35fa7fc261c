"""The desired switch state file: atomic, versioned, damage is loud, the default is off."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError, StateDamaged, StoreError
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
    assert not (directory / f".{FILE_NAME}.tmp").exists()


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
    with pytest.raises(StoreError):
        write_desired(tmp_path, Desired(location_on=False, generation=1))
    assert victim.read_text() == "keep"
