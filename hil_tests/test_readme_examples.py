"""The README's privacyctl examples run as printed, and its ``--json`` example is what the command prints."""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

from agent import cli
from hil_tests.conftest import RunningAgent

README = Path(__file__).resolve().parents[1] / "README.md"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
VARIABLE = {"observed_at", "verified_at", "observed_age_s"}  # the times of the read-back, different every run


def readme_block(after: str, language: str) -> str:
    text = README.read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start:text.index("```", start)]


def run_privacyctl(running: RunningAgent, argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--socket", str(running.socket), *argv], stdout=out, stderr=io.StringIO())
    return code, out.getvalue()


def test_the_json_example_is_what_the_command_prints(running_agent: RunningAgent) -> None:
    example_text = readme_block("`privacyctl --json location status` prints", "json")
    code, printed = run_privacyctl(running_agent, ["--json", "location", "status"])
    assert code == 0
    example, actual = json.loads(example_text), json.loads(printed)
    assert list(actual) == list(example), "the keys (and their order) differ"
    for key in VARIABLE:
        if key == "observed_age_s":
            assert isinstance(actual[key], float) and isinstance(example[key], float)
        else:
            assert ISO_UTC.fullmatch(actual[key]) and ISO_UTC.fullmatch(example[key]), key
    assert {k: v for k, v in actual.items() if k not in VARIABLE} == \
        {k: v for k, v in example.items() if k not in VARIABLE}
    shaped = re.sub(r'("observed_age_s": )[0-9.]+', r"\g<1>1.2", printed)
    shaped = ISO_UTC.sub("2026-12-02T16:04:30.123Z", shaped)
    assert shaped == example_text, "the layout differs from what the command prints"


def test_every_privacyctl_example_in_the_readme_runs(running_agent: RunningAgent) -> None:
    block = readme_block("## For people on the box: `privacyctl`", "sh")
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.startswith("privacyctl")]
    assert len(commands) >= 5
    for argv in commands:
        code, printed = run_privacyctl(running_agent, argv[1:])
        assert code == 0, f"{shlex.join(argv)} exited {code}"
        assert printed.strip(), f"{shlex.join(argv)} printed nothing"
