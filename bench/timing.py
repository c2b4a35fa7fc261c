"""How the CPU-bound benchmarks time their sides (not a benchmark module itself: bench/run.py runs bench_*.py)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence


def best_seconds(functions: Sequence[Callable[[], object]], rounds: int) -> list[float]:
    """Best CPU time of each function over ``rounds`` rounds, the functions taking turns within each round so
    that a burst of load on a shared machine hits every side alike; the cyclic garbage collector is paused as
    ``timeit`` does (its pauses depend on whatever else the process allocated before, which only adds noise)."""
    best = [float("inf")] * len(functions)
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for index, function in enumerate(functions):
                started = time.process_time()
                function()
                best[index] = min(best[index], time.process_time() - started)
    finally:
        if collecting:
            gc.enable()
    return best
