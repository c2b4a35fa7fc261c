"""The shims stay inside the MicroPython subset that QuecPython firmware runs (checked on the AST, pure).

mpy-cross (hil_tests/test_shim_build.py) accepts what today's MicroPython accepts; QuecPython firmware is
built on older MicroPython releases, so these rules are stricter: no f-strings, no walrus, no annotations or
typing at runtime (types are comments; ``if TYPE_CHECKING:`` blocks are read only by mypy), and only modules
the firmware has.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHIMS = Path(__file__).resolve().parents[1] / "firmware_shims"
SHIM_FILES = sorted(SHIMS.glob("*.py"))
RUNTIME_MODULES = {"sys", "_thread", "quecgnss", "utime", "modem", "sim", "ujson", "uos", "machine",
                   "privacy_guard"}
MISSING_METHODS = {"hex", "isascii", "removeprefix", "removesuffix", "from_bytes", "to_bytes", "casefold"}


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those inside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        pending.extend(child for child in ast.iter_child_nodes(node) if not is_type_checking_block(child))
    return found


def violations(source: str) -> list[str]:
    problems = []
    for node in runtime_nodes(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.JoinedStr):
            problems.append(f"{line}: f-string")
        elif isinstance(node, ast.NamedExpr):
            problems.append(f"{line}: walrus")
        elif isinstance(node, ast.AnnAssign) or (isinstance(node, ast.arg) and node.annotation is not None):
            problems.append(f"{line}: annotation")
        elif isinstance(node, ast.FunctionDef) and node.returns is not None:
            problems.append(f"{line}: return annotation")
        elif isinstance(node, ast.Match):
            problems.append(f"{line}: match statement")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
            problems.extend(f"{line}: imports {name}" for name in names if name not in RUNTIME_MODULES)
        elif isinstance(node, ast.Attribute) and node.attr in MISSING_METHODS:
            problems.append(f"{line}: .{node.attr}() is missing from some firmware builds")
    return problems


def test_there_are_shims_to_check() -> None:
    assert {path.name for path in SHIM_FILES} >= {"main.py", "privacy_guard.py", "privacy_guard_fakes.py"}


@pytest.mark.parametrize("path", SHIM_FILES, ids=lambda path: path.name)
def test_shim_stays_in_the_micropython_subset(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize("path", SHIM_FILES, ids=lambda path: path.name)
def test_type_checking_flag_is_false_at_runtime(path: Path) -> None:
    tree = ast.parse(path.read_text())
    uses_flag = any(is_type_checking_block(node) for node in ast.walk(tree))
    assignments = [node for node in tree.body if isinstance(node, ast.Assign)]
    assigned = [node.value for node in assignments if ast.unparse(node.targets[0]) == "TYPE_CHECKING"]
    if uses_flag:
        assert len(assigned) == 1
        assert isinstance(assigned[0], ast.Constant) and assigned[0].value is False


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("x = f'{1}'", "f-string"),
        ("if (n := 1): pass", "walrus"),
        ("x: int = 1", "annotation"),
        ("def f(a: int): pass", "annotation"),
        ("def f() -> int: return 1", "return annotation"),
        ("import typing", "imports typing"),
        ("from dataclasses import dataclass", "imports dataclasses"),
        ("b'x'.hex()", ".hex()"),
        ("match x:\n    case 1: pass", "match"),
    ],
)
def test_checker_catches_what_old_firmware_lacks(source: str, problem: str) -> None:
    assert any(problem in found for found in violations(source))


def test_checker_ignores_type_checking_blocks() -> None:
    source = ("TYPE_CHECKING = False\nif TYPE_CHECKING:\n"
              "    from typing import Any\n    def f(a: int) -> int: ...\n")
    assert violations(source) == []
