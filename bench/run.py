"""Run every benchmark: ``python bench/run.py [--quick] [--json] [--only NAME ...]``.

Each ``bench/bench_*.py`` module exposes ``run(quick: bool) -> dict[str, dict]`` returning, per benchmark name,
``{"value", "unit", "baseline", "ratio", "target", "pass"}``. Baselines are measured in the same run, because the
machines are noisy: only ratios are comparable across runs. ``--json`` prints one object mapping each name to its
result; otherwise a table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def discover() -> list[str]:
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a fast check")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", nargs="*", default=None, help="module names (bench_xxx) to run")
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    failed_modules = 0
    for module_name in discover():
        if args.only and module_name not in args.only and module_name.removeprefix("bench_") not in args.only:
            continue
        try:
            module = importlib.import_module(module_name)
            # A benchmark's own report (the soak's table) goes to stderr, so that --json prints JSON alone.
            with contextlib.redirect_stdout(sys.stderr):
                results.update(module.run(quick=args.quick))
        except Exception:  # a broken benchmark must not hide the others' numbers
            failed_modules += 1
            print(f"benchmark module {module_name} failed:", file=sys.stderr)
            traceback.print_exc()
            results[module_name] = {"value": None, "unit": "", "baseline": None, "ratio": None,
                                    "target": "runs", "pass": False}
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        width = max((len(name) for name in results), default=10)
        for name, result in results.items():
            ratio = result.get("ratio")
            ratio_text = f"{ratio:.3f}" if isinstance(ratio, float) else str(ratio)
            value = f"{result.get('value')} {result.get('unit')}"
            print(f"{name:<{width}}  value={value}  baseline={result.get('baseline')}"
                  f"  ratio={ratio_text}  target={result.get('target')}  {'PASS' if result.get('pass') else 'FAIL'}")
    return 1 if failed_modules else 0


if __name__ == "__main__":
    sys.exit(main())
