"""Coarsening of space and time: a keyed grid (default), planar Laplace (option), time buckets, a daily cap.

Strategy, and why it beats AOSP's LocationFudger. The fudger adds an offset that drifts a little every hour and
then snaps to a fixed grid: noise before quantisation is dither, and averaging a stationary device's reports over
months walks back to the true position. Here the output is a pure function of (device secret, grid, true cell):

- The grid itself is keyed. Rows are ``grid_m`` tall (111,000 m per degree of latitude) and start at an offset
  drawn from HMAC(secret, grid_m); each row is cut into a whole number of columns around the globe (so +/-180 is
  just another boundary), at least ``grid_m`` wide even at the row's poleward edge (metres / cos(latitude)), and its
  columns start at an offset keyed by the row. An observer therefore does not know where any boundary lies, so
  seeing a device cross one says nothing finer than the grid. Near a pole a row has one column: a polar cap.
- Every cell reports one point: a position inside the cell drawn from HMAC(secret, grid_m, row, column). All
  true positions in a cell give the same output, for as long as the secret lives, so watching a stationary
  device for years gives exactly what one report gives. A new pseudonym epoch does not change it (a fresh
  offset per epoch would be dither again); only a new secret (``identity reset``) does.

Planar Laplace (geo-indistinguishability, epsilon = 2 / r with r = the purpose's ``grid_m``) is the option: the
cell's keyed point moved by Laplace noise whose angle and radius come from HMAC(secret, r, cell) through the
inverse CDF, ``r = -(W_{-1}((p - 1) / e) + 1) / epsilon``. Deriving the noise from the cell instead of a random
generator makes it stable across restarts, so repeated reports from one place spend no new privacy budget: the
"output cache per location" of Location Guard is the function itself (the small LRU cache only saves the
arithmetic). Because the noise is added to the keyed point of the true cell, two places at distance d are
e^(epsilon (d + 2 diag))-indistinguishable, diag being the cell's diagonal.

Inputs are checked: latitude in [-90, 90], longitude in [-180, 180], finite; anything else is a caller bug
(ValueError). Outputs are rounded to a number of decimals fine enough for the grid (:func:`decimals_for`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import struct
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

M_PER_DEG_LAT = 111_000.0
#: The 90 % radius of planar Laplace is 3.890 / epsilon (C(r) = 1 - (1 + eps r) e^(-eps r)).
LAPLACE_R90_TIMES_EPSILON = 3.890
MIN_SECRET_BYTES = 16
MAX_DECIMALS = 4
_TWO_53 = float(1 << 53)


@dataclass(frozen=True, slots=True)
class Coarse:
    """A coarsened position in degrees, with the accuracy to report in metres."""

    lat: float
    lon: float
    accuracy_m: int


class Coarsener(Protocol):
    def coarsen(self, lat: float, lon: float, grid_m: int, accuracy_m: float | None = None) -> Coarse: ...


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of a keyed grid: its indexes and its bounds (``west`` may be below -180: it wraps)."""

    row: int
    col: int
    south: float
    north: float
    west: float
    width_deg: float


def decimals_for(grid_m: int) -> int:
    """Decimals of a degree such that one unit in the last place is at most a tenth of the grid, and never more
    than 4 (11 m): the leak check looks for the raw position's texts of 5 or more decimals, which an output can
    then never equal by chance."""
    return min(MAX_DECIMALS, max(0, math.ceil(math.log10(M_PER_DEG_LAT * 10 / grid_m))))


def _keyed_fractions(key: bytes, label: bytes, *numbers: int) -> tuple[float, float]:
    """Two numbers in [0, 1) from HMAC-SHA256(key, label | numbers as fixed-width integers)."""
    message = label + b"".join(struct.pack(">q", number) for number in numbers)
    digest = hmac.new(key, message, hashlib.sha256).digest()
    first, second = struct.unpack(">QQ", digest[:16])
    return (first >> 11) / _TWO_53, (second >> 11) / _TWO_53


def _check_position(lat: float, lon: float, grid_m: int) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError("position out of range")
    if grid_m <= 0:
        raise ValueError("grid_m must be positive")


def _wrap_lon(lon: float) -> float:
    """Longitude in [-180, 180)."""
    wrapped = (lon + 180.0) % 360.0 - 180.0
    return -180.0 if wrapped >= 180.0 else wrapped


class GridCoarsener:
    """The keyed grid: one stable output point per true cell (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the device secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def cell(self, lat: float, lon: float, grid_m: int) -> Cell:
        """The keyed cell holding (lat, lon)."""
        _check_position(lat, lon, grid_m)
        row_deg = grid_m / M_PER_DEG_LAT
        row_shift = _keyed_fractions(self._secret, b"grid-rows", grid_m)[0] * row_deg
        row = math.floor((lat + 90.0 + row_shift) / row_deg)
        south = row * row_deg - 90.0 - row_shift
        poleward_edge = min(90.0, max(abs(south), abs(south + row_deg)))
        circumference_m = 360.0 * M_PER_DEG_LAT * math.cos(math.radians(poleward_edge))
        columns = max(1, int(circumference_m // grid_m))  # whole columns, at least grid_m wide everywhere
        width = 360.0 / columns
        col_shift = _keyed_fractions(self._secret, b"grid-columns", grid_m, row)[0] * width
        col = min(columns - 1, math.floor(((lon + 180.0 + col_shift) % 360.0) / width))
        return Cell(row, col, south, south + row_deg, col * width - 180.0 - col_shift, width)

    def point(self, cell: Cell, grid_m: int) -> tuple[float, float]:
        """The cell's keyed point (unrounded): inside the cell, and inside [-90, 90] where a row passes a pole."""
        along_lat, along_lon = _keyed_fractions(self._secret, b"grid-point", grid_m, cell.row, cell.col)
        low, high = max(cell.south, -90.0), min(cell.north, 90.0)
        return low + along_lat * (high - low), _wrap_lon(cell.west + along_lon * cell.width_deg)

    def coarsen(self, lat: float, lon: float, grid_m: int, accuracy_m: float | None = None) -> Coarse:
        out_lat, out_lon = self.point(self.cell(lat, lon, grid_m), grid_m)
        return _rounded(out_lat, out_lon, grid_m, max(float(grid_m), accuracy_m or 0.0))


def _rounded(lat: float, lon: float, grid_m: int, accuracy_m: float) -> Coarse:
    decimals = decimals_for(grid_m)
    rounded_lon = round(_wrap_lon(lon), decimals)
    return Coarse(round(lat, decimals), -180.0 if rounded_lon >= 180.0 else rounded_lon, math.ceil(accuracy_m))


# -- planar Laplace --------------------------------------------------------------------------------------
def lambert_w_minus1(x: float) -> float:
    """The lower real branch W_{-1}(x) for x in [-1/e, 0): the w <= -1 solving w e^w = x (Halley's method)."""
    branch_point = -1.0 / math.e
    if not branch_point - 1e-15 <= x < 0.0:
        raise ValueError("W_{-1} is real only on [-1/e, 0)")
    if x <= branch_point:
        return -1.0
    if x < -0.25:  # near the branch point: the series in p = -sqrt(2 (1 + e x))
        p = -math.sqrt(max(0.0, 2.0 * (1.0 + math.e * x)))
        w = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p * p * p
    else:  # near zero: the asymptotic expansion
        log_x = math.log(-x)
        log_log = math.log(-log_x)
        w = log_x - log_log + log_log / log_x
    for _ in range(100):
        exp_w = math.exp(w)
        residual = w * exp_w - x
        if residual == 0.0 or w == -1.0:
            break
        step = residual / (exp_w * (w + 1.0) - (w + 2.0) * residual / (2.0 * (w + 1.0)))
        w -= step
        if abs(step) <= 1e-15 * abs(w):
            break
    return min(w, -1.0)


def laplace_radius(epsilon: float, p: float) -> float:
    """The radius at probability ``p`` in [0, 1) of planar Laplace with parameter ``epsilon`` (inverse CDF)."""
    if not 0.0 <= p < 1.0 or epsilon <= 0.0:
        raise ValueError("p must be in [0, 1) and epsilon positive")
    return max(0.0, -(lambert_w_minus1((p - 1.0) / math.e) + 1.0) / epsilon)


def displace(lat: float, lon: float, distance_m: float, bearing_rad: float) -> tuple[float, float]:
    """(lat, lon) moved ``distance_m`` along ``bearing_rad`` (0 = north) on the local equirectangular projection;
    a move past a pole comes back down the other side."""
    new_lat = lat + distance_m * math.cos(bearing_rad) / M_PER_DEG_LAT
    metres_per_deg_lon = M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-9)
    new_lon = lon + distance_m * math.sin(bearing_rad) / metres_per_deg_lon
    if new_lat > 90.0:
        new_lat, new_lon = 180.0 - new_lat, new_lon + 180.0
    elif new_lat < -90.0:
        new_lat, new_lon = -180.0 - new_lat, new_lon + 180.0
    return min(90.0, max(-90.0, new_lat)), _wrap_lon(new_lon)


class LaplaceCoarsener:
    """Planar Laplace with epsilon = 2 / grid_m, its noise keyed by the secret and the keyed cell at grid_m.

    ``rng_seed_source`` is mixed into the noise key. The noise must not come from a random generator (it would
    change at every restart and spend new budget), so this is not a seed in that sense: leave it empty in the
    agent; tests pass different values to draw independent noise from one secret.
    """

    def __init__(self, secret: bytes, rng_seed_source: bytes = b"", cache_size: int = 1024) -> None:
        self._grid = GridCoarsener(secret)
        self._noise_key = hmac.new(secret, b"laplace-noise" + rng_seed_source, hashlib.sha256).digest()
        self._cache: OrderedDict[tuple[int, int, int], tuple[float, float]] = OrderedDict()
        self._cache_size = cache_size

    def coarsen(self, lat: float, lon: float, grid_m: int, accuracy_m: float | None = None) -> Coarse:
        cell = self._grid.cell(lat, lon, grid_m)
        key = (grid_m, cell.row, cell.col)
        noisy = self._cache.get(key)
        if noisy is None:
            noisy = self._noisy_point(cell, grid_m)
            self._cache[key] = noisy
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        radius_90 = LAPLACE_R90_TIMES_EPSILON * grid_m / 2.0
        return _rounded(noisy[0], noisy[1], grid_m, max(float(grid_m), accuracy_m or 0.0) + radius_90)

    def _noisy_point(self, cell: Cell, grid_m: int) -> tuple[float, float]:
        base_lat, base_lon = self._grid.point(cell, grid_m)
        turn, probability = _keyed_fractions(self._noise_key, b"laplace", grid_m, cell.row, cell.col)
        radius = laplace_radius(2.0 / grid_m, probability)
        return displace(base_lat, base_lon, radius, 2.0 * math.pi * turn)


def coarsener_for(coarsening: str, secret: bytes) -> Coarsener:
    """The coarsener that ``[policy] coarsening`` names: "grid" or "laplace"."""
    if coarsening == "grid":
        return GridCoarsener(secret)
    if coarsening == "laplace":
        return LaplaceCoarsener(secret)
    raise ValueError("coarsening must be 'grid' or 'laplace'")


# -- time ------------------------------------------------------------------------------------------------
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def bucket_time(t: dt.datetime, bucket_s: int) -> dt.datetime:
    """``t`` floored to its ``bucket_s`` bucket (buckets counted from the Unix epoch), in UTC."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("bucket_time needs a timezone-aware datetime")
    if bucket_s <= 0:
        raise ValueError("bucket_s must be positive")
    bucket_us = bucket_s * 1_000_000
    elapsed_us = (t - _UNIX_EPOCH) // _MICROSECOND
    return _UNIX_EPOCH + (elapsed_us // bucket_us * bucket_us) * _MICROSECOND


class DailyCap:
    """At most ``max_points`` admitted per pseudonym per UTC day.

    Only the newest day and the one before are remembered (a late point from yesterday is still counted), so
    memory stays bounded however long the agent runs; a point for an older day is refused (fail closed).
    """

    def __init__(self, max_points: int) -> None:
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self._max_points = max_points
        self._counts: dict[tuple[Hashable, dt.date], int] = {}
        self._newest: dt.date | None = None

    def admit(self, pseudonym: Hashable, day: dt.date) -> bool:
        """Count one point for (pseudonym, day) and say whether it is within the cap."""
        if self._newest is None or day > self._newest:
            self._newest = day
            oldest_kept = day - dt.timedelta(days=1)
            self._counts = {key: count for key, count in self._counts.items() if key[1] >= oldest_kept}
        elif day < self._newest - dt.timedelta(days=1):
            return False
        count = self._counts.get((pseudonym, day), 0)
        if count >= self._max_points:
            return False
        self._counts[(pseudonym, day)] = count + 1
        return True
