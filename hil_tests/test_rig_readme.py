"""The README's worked rig example runs as written, as an integrator would run it: its own pytest process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- rig-example -->"


def readme_example() -> str:
    text = README.read_text()
    assert MARKER in text, "the README lost its rig example"
    block = text.split(MARKER, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    return block


def test_the_example_is_about_ten_lines() -> None:
    lines = [line for line in readme_example().splitlines() if line.strip()]
    assert 5 <= len(lines) <= 12


def test_the_readme_rig_example_passes_on_the_simulator(tmp_path: Path) -> None:
    (tmp_path / "test_my_rig.py").write_text(readme_example())
    environ = {key: value for key, value in os.environ.items() if not key.startswith("HIL_")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_rig.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False, env=environ)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
