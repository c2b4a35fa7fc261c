"""The hypothesis profile follows the environment: derandomized under CI=true, exploring elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
# the same check in both test trees: each is run in a fresh pytest session below
PROBES = [f"{tree}/test_hypothesis_profile.py::test_the_loaded_profile_matches_the_environment"
          for tree in ("tests", "hil_tests")]


def test_the_loaded_profile_matches_the_environment() -> None:
    in_ci = os.environ.get("CI") == "true"
    assert settings.default.derandomize is in_ci
    assert (settings.default.database is None) is in_ci


@pytest.mark.parametrize(("ci", "derandomized"), [("true", True), (None, False), ("false", False), ("1", False)])
def test_a_fresh_run_picks_the_profile_from_ci(ci: str | None, derandomized: bool) -> None:
    environ = {name: value for name, value in os.environ.items() if name != "CI"}
    if ci is not None:
        environ["CI"] = ci
    probe = (
        "import sys; from hypothesis import settings; "
        "sys.exit(0 if settings.default.derandomize is " + str(derandomized) + " else 1)"
    )
    run = subprocess.run(  # a whole pytest session, so the root conftest is loaded the way CI loads it
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PROBES],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    direct = subprocess.run(  # and the profile itself says what it should
        [sys.executable, "-c", "import conftest; " + probe],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )
    assert direct.returncode == 0, direct.stdout + direct.stderr


def test_the_ci_profile_draws_the_same_examples_every_run() -> None:
    def draws() -> list[int]:
        seen: list[int] = []

        @settings(settings.get_profile("ci"), max_examples=25)
        @given(st.integers())
        def probe(value: int) -> None:
            seen.append(value)

        probe()
        return seen

    first = draws()
    assert len(set(first)) > 5
    assert draws() == first
