"""Settings for every test run, in tests/ and hil_tests/ alike: which hypothesis profile runs.

Under ``CI=true`` hypothesis runs the ``ci`` profile: derandomized (each test draws the same examples on every
run, from a seed derived from the test itself), with no example database and no deadline, so a red CI run
fails again the same way when re-run or run on a laptop with ``CI=true``, and a loaded CI machine cannot fail a
test by being slow. Anywhere else the ``default`` profile keeps exploring new random examples on every run
(and remembers the failing ones in ``.hypothesis/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import settings

CI_PROFILE = "ci"
LOCAL_PROFILE = "default"

settings.register_profile(CI_PROFILE, derandomize=True, database=None, deadline=None, print_blob=True)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The profile for this environment: ``ci`` exactly when ``CI`` is ``true``."""
    return CI_PROFILE if environ.get("CI") == "true" else LOCAL_PROFILE


# Loaded explicitly either way: hypothesis would load its own "ci" profile whenever a CI variable is set at all.
settings.load_profile(hypothesis_profile(os.environ))
