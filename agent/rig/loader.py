"""Read scenario files (the only file access of the scenario format)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from agent.errors import UsageError
from agent.rig.scenario import Scenario, parse_scenario


def load_scenario(path: Path) -> Scenario:
    """Parse and validate a scenario file; UsageError names the file's problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("scenario file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError("cannot read the scenario file", path=str(path), reason=type(exc).__name__) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"scenario file is not valid TOML: {exc}", path=str(path)) from None
    try:
        return parse_scenario(data)
    except UsageError as exc:
        raise UsageError(f"{exc.message}", path=str(path)) from None


def shipped_scenarios_dir() -> Path:
    """The ``scenarios/`` directory shipped beside the package (a source checkout)."""
    return Path(__file__).resolve().parent.parent.parent / "scenarios"


def load_all(directory: Path) -> list[Scenario]:
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise UsageError("no scenario files (*.toml) in the directory", path=str(directory))
    return [load_scenario(path) for path in paths]
