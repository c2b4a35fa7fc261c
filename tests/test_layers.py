"""Every module of the agent is in exactly one layer of the import contract (pyproject.toml), so that
``lint-imports`` holds the whole package to "imports point down only", including modules added later."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layered] = [contract for contract in config["contracts"] if contract["type"] == "layers"]
    return [set(re.split(r"\s*[:|]\s*", layer.strip())) for layer in layered["layers"]]


def top_level_modules() -> set[str]:
    package = ROOT / "agent"
    modules = {f"agent.{path.stem}" for path in package.glob("*.py") if path.stem != "__init__"}
    packages = {f"agent.{path.name}" for path in package.iterdir() if (path / "__init__.py").exists()}
    return modules | packages


def test_every_module_is_in_exactly_one_layer() -> None:
    layers = contract_layers()
    named = [name for layer in layers for name in layer]
    assert len(named) == len(set(named)), "a module is named in two layers"
    assert set(named) == top_level_modules()
