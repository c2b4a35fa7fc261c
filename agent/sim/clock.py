"""A clock that only moves when a test says so, for deterministic simulator tests."""

from __future__ import annotations

# 2026-01-01T00:00:00Z: a fixed wall-clock origin, so that NMEA dates and times are the same in every run.
DEFAULT_WALL_START = 1_767_225_600.0


class ManualClock:
    """An ``agent.model.Clock`` whose time advances only through :meth:`advance`."""

    def __init__(self, start: float = 1000.0, wall_start: float = DEFAULT_WALL_START) -> None:
        self._monotonic = float(start)
        self._wall_offset = float(wall_start) - float(start)

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._monotonic + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward; a negative step would break the monotonic promise, so it is refused."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self._monotonic += seconds
