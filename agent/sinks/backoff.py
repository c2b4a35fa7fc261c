"""Capped exponential backoff with full jitter (pure: the random source is passed in)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``attempt + 1``: uniform in ``[0, min(cap_s, base_s * 2**attempt)]``.

    Full jitter (rather than a fixed doubling) spreads the retries of a fleet that lost its broker at the same
    moment, so that they do not all come back at once.
    """

    base_s: float = 1.0
    cap_s: float = 300.0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.cap_s >= self.base_s):
            raise ValueError("backoff needs base_s > 0 and cap_s >= base_s")

    def ceiling_s(self, attempt: int) -> float:
        """The largest delay after ``attempt`` failed attempts (0 for the first failure)."""
        if attempt >= 64:  # 2**64 seconds is past any cap; avoid float overflow for absurd counts
            return self.cap_s
        return min(self.cap_s, self.base_s * float(2 ** max(0, attempt)))

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling_s(attempt))
