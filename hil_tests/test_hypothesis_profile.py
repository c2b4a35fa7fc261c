"""hil tests run under the same hypothesis profile as tests/ (the root conftest chooses it from CI)."""

from __future__ import annotations

import os

from hypothesis import settings


def test_the_loaded_profile_matches_the_environment() -> None:
    in_ci = os.environ.get("CI") == "true"
    assert settings.default.derandomize is in_ci
    assert (settings.default.database is None) is in_ci
