"""Coarsening: the keyed grid never gets finer than the purpose's grid and gives a watcher nothing by averaging;
planar Laplace has the documented error; time buckets and the daily cap."""

from __future__ import annotations

import datetime as dt
import math
import random
import statistics
from collections import Counter

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agent.privacy.coarsen import (
    M_PER_DEG_LAT,
    Coarse,
    DailyCap,
    GridCoarsener,
    LaplaceCoarsener,
    bucket_time,
    coarsener_for,
    decimals_for,
    displace,
    lambert_w_minus1,
    laplace_radius,
)
from agent.privacy.deidentify import deidentify
from agent.privacy.pseudonym import epoch_of, pseudonym
from tests.privacy_support import SECRET, fix_at, policy

latitudes = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
longitudes = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
grids = st.sampled_from([200, 500, 1000, 2000, 5000, 100_000])
secrets = st.binary(min_size=16, max_size=32)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Local equirectangular distance, good enough for a few kilometres."""
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0
    north = (lat2 - lat1) * M_PER_DEG_LAT
    east = dlon * M_PER_DEG_LAT * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(north, east)


# -- the keyed grid --------------------------------------------------------------------------------------
@given(secrets, latitudes, longitudes, grids, st.floats(0, 1), st.floats(0, 1))
def test_every_position_in_a_cell_gives_the_cell_output(secret: bytes, lat: float, lon: float, grid_m: int,
                                                        along_lat: float, along_lon: float) -> None:
    coarsener = GridCoarsener(secret)
    cell = coarsener.cell(lat, lon, grid_m)
    other_lat = max(cell.south, -90.0) + along_lat * (min(cell.north, 90.0) - max(cell.south, -90.0))
    other_lon = (cell.west + along_lon * cell.width_deg + 180.0) % 360.0 - 180.0
    assume(coarsener.cell(other_lat, other_lon, grid_m) == cell)  # float edges of the half-open cell
    assert coarsener.coarsen(other_lat, other_lon, grid_m) == coarsener.coarsen(lat, lon, grid_m)


@given(secrets, latitudes, longitudes, grids)
def test_outputs_come_from_a_finite_per_cell_set(secret: bytes, lat: float, lon: float, grid_m: int) -> None:
    coarsener = GridCoarsener(secret)
    cell = coarsener.cell(lat, lon, grid_m)
    out = coarsener.coarsen(lat, lon, grid_m)
    point_lat, point_lon = coarsener.point(cell, grid_m)
    decimals = decimals_for(grid_m)
    assert out.lat == round(point_lat, decimals)
    assert out.lon in (round(point_lon, decimals), -180.0)
    assert -90.0 <= out.lat <= 90.0 and -180.0 <= out.lon < 180.0
    assert max(cell.south, -90.0) <= point_lat <= min(cell.north, 90.0)


@given(secrets, latitudes, longitudes, grids)
def test_cells_are_never_finer_than_the_grid(secret: bytes, lat: float, lon: float, grid_m: int) -> None:
    cell = GridCoarsener(secret).cell(lat, lon, grid_m)
    assert (cell.north - cell.south) * M_PER_DEG_LAT == pytest.approx(grid_m)
    poleward = min(90.0, max(abs(cell.south), abs(cell.north)))
    width_m = cell.width_deg * M_PER_DEG_LAT * math.cos(math.radians(poleward))
    assert width_m >= grid_m * (1 - 1e-9) or cell.width_deg == 360.0


@given(secrets, latitudes, grids)
def test_plus_and_minus_180_are_one_place(secret: bytes, lat: float, grid_m: int) -> None:
    coarsener = GridCoarsener(secret)
    assert coarsener.coarsen(lat, 180.0, grid_m) == coarsener.coarsen(lat, -180.0, grid_m)


@given(secrets, longitudes, longitudes, grids)
def test_each_pole_is_one_cell(secret: bytes, lon1: float, lon2: float, grid_m: int) -> None:
    coarsener = GridCoarsener(secret)
    for pole in (90.0, -90.0):
        assert coarsener.coarsen(pole, lon1, grid_m) == coarsener.coarsen(pole, lon2, grid_m)


def test_the_output_is_near_the_truth_and_the_accuracy_honest() -> None:
    rng = random.Random(5)
    for _ in range(500):
        lat, lon = rng.uniform(-70, 70), rng.uniform(-180, 180)
        grid_m = rng.choice([200, 2000, 10_000])
        out = GridCoarsener(rng.randbytes(32)).coarsen(lat, lon, grid_m, accuracy_m=rng.choice([None, 5.0, 3000.5]))
        # inside the cell: within its diagonal (width < 2 grids away from the poles), plus rounding
        assert distance_m(lat, lon, out.lat, out.lon) <= math.sqrt(5) * grid_m * 1.01 + 20
        assert out.accuracy_m in (grid_m, 3001, max(grid_m, 3001))
    assert GridCoarsener(SECRET).coarsen(1, 2, 2000, 3000.2).accuracy_m == 3001
    assert GridCoarsener(SECRET).coarsen(1, 2, 2000, 5.0).accuracy_m == 2000


def test_cell_boundaries_are_unknown_without_the_secret() -> None:
    """Two places half a grid apart share a cell for about half of all secrets: the boundary between them
    could be anywhere, so seeing a device cross one says nothing finer than the grid."""
    rng = random.Random(11)
    lat, lon, grid_m = 31.2304, 121.4737, 2000
    north = lat + grid_m / 2 / M_PER_DEG_LAT
    east = lon + grid_m / 2 / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
    trials = 600
    same_row = same_col = 0
    for _ in range(trials):
        coarsener = GridCoarsener(rng.randbytes(32))
        here = coarsener.cell(lat, lon, grid_m)
        same_row += coarsener.cell(north, lon, grid_m).row == here.row
        same_col += coarsener.cell(lat, east, grid_m).col == here.col
    assert 0.4 < same_row / trials < 0.6 and 0.4 < same_col / trials < 0.6


def test_a_different_secret_gives_a_different_output() -> None:
    coarseners = [GridCoarsener(bytes([seed]) * 16) for seed in range(50)]
    points = {coarsener.point(coarsener.cell(31.2304, 121.4737, 2000), 2000) for coarsener in coarseners}
    assert len(points) == 50


def test_bad_inputs_are_refused() -> None:
    coarsener = GridCoarsener(SECRET)
    for lat, lon in ((91.0, 0.0), (0.0, 180.5), (math.nan, 0.0), (0.0, math.inf)):
        with pytest.raises(ValueError, match="position out of range"):
            coarsener.coarsen(lat, lon, 2000)
    with pytest.raises(ValueError):
        GridCoarsener(b"short")
    with pytest.raises(ValueError):
        coarsener.coarsen(0.0, 0.0, 0)


# -- averaging buys an observer nothing ------------------------------------------------------------------
TRUE_LAT, TRUE_LON, GRID_M = 31.2304, 121.4737, 2000
SECRETS, REPORTS = 200, 1000
GNSS_JITTER_M = 3.0  # a stationary receiver's fixes wander by a few metres


def _estimate_errors(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """Error (m) of one report, of the reports' mean, of their median and of their most frequent value."""
    mean = (statistics.fmean(p[0] for p in points), statistics.fmean(p[1] for p in points))
    median = (statistics.median(p[0] for p in points), statistics.median(p[1] for p in points))
    mode = Counter(points).most_common(1)[0][0]
    return tuple(distance_m(TRUE_LAT, TRUE_LON, *estimate)  # type: ignore[return-value]
                 for estimate in (points[0], mean, median, mode))


def _reports(secret: bytes, rng: random.Random, times: list[dt.datetime]) -> list[tuple[float, float]]:
    purpose = policy().purpose("fleet-tracking")
    assert purpose is not None
    coarsener = GridCoarsener(secret)
    points = []
    for index, when in enumerate(times):
        lat = TRUE_LAT + rng.gauss(0, GNSS_JITTER_M) / M_PER_DEG_LAT
        lon = TRUE_LON + rng.gauss(0, GNSS_JITTER_M) / (M_PER_DEG_LAT * math.cos(math.radians(TRUE_LAT)))
        name = pseudonym(secret, purpose.name, epoch_of(when.timestamp(), 86400))
        payload = deidentify(fix_at(lat, lon, when), purpose, coarsener=coarsener, pseudonym=name,
                             message_id=f"m{index}")
        points.append((float(payload["lat"]), float(payload["lon"])))  # type: ignore[arg-type]
    return points


def _median_errors(times: list[dt.datetime]) -> tuple[float, float, float, float]:
    rng = random.Random(2024)
    per_secret = [_estimate_errors(_reports(rng.randbytes(32), rng, times)) for _ in range(SECRETS)]
    return tuple(statistics.median(errors[column] for errors in per_secret)  # type: ignore[return-value]
                 for column in range(4))


START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("times", [
    [START + dt.timedelta(minutes=1.2 * index) for index in range(REPORTS)],  # many a day, one epoch
    [START + dt.timedelta(days=1.1 * index) for index in range(REPORTS)],  # one a day for three years
], ids=["within-one-epoch", "daily-for-three-years"])
def test_averaging_a_stationary_device_buys_nothing(times: list[dt.datetime]) -> None:
    single, of_mean, of_median, of_mode = _median_errors(times)
    for error in (of_mean, of_median, of_mode):
        assert error >= 0.9 * single
        assert error >= GRID_M / 4


def _fudger_ratios(fresh_each_report: bool) -> float:
    """AOSP LocationFudger (privacy.md section 0 item 3), one report a day for 1,000 days, on a plane: an
    offset N(0, (G/4)^2) per axis, updated hourly as off = sqrt(1 - 0.03^2) off + 0.03 N(0, (G/4)^2), added to
    the true position, then snapped to a fixed grid. 24 hourly updates of this stationary AR(1) process are one
    update with weight w^24 and noise sqrt(1 - w^48). Returns the median error of the reports' mean over the
    median error of one report."""
    rng = random.Random(7)
    sigma, weight = GRID_M / 4, math.sqrt(1 - 0.03**2)
    daily_weight = weight**24
    daily_noise = math.sqrt(1 - daily_weight**2)
    single_errors, mean_errors = [], []
    for _ in range(SECRETS):
        true_x, true_y = rng.uniform(0, GRID_M), rng.uniform(0, GRID_M)
        off_x, off_y = rng.gauss(0, sigma), rng.gauss(0, sigma)
        sum_x = sum_y = 0.0
        for day in range(REPORTS):
            if fresh_each_report:
                off_x, off_y = rng.gauss(0, sigma), rng.gauss(0, sigma)
            elif day:
                off_x = daily_weight * off_x + daily_noise * rng.gauss(0, sigma)
                off_y = daily_weight * off_y + daily_noise * rng.gauss(0, sigma)
            report_x = round((true_x + off_x) / GRID_M) * GRID_M
            report_y = round((true_y + off_y) / GRID_M) * GRID_M
            if day == 0:
                single_errors.append(math.hypot(report_x - true_x, report_y - true_y))
            sum_x, sum_y = sum_x + report_x, sum_y + report_y
        mean_errors.append(math.hypot(sum_x / REPORTS - true_x, sum_y / REPORTS - true_y))
    return statistics.median(mean_errors) / statistics.median(single_errors)


def test_the_averaging_bar_catches_location_fudger() -> None:
    """The same statistic applied to AOSP's drifting dither falls well short of 0.9x, so the test above can
    fail. The issue quotes 0.54x for the drift and 0.36x for fresh noise on every report; this simulation (the
    true position uniform within the grid for each device) measures about 0.38x and 0.22x: the quoted set-up is
    not given in full, and both are far below the 0.9x bar."""
    drift = _fudger_ratios(fresh_each_report=False)
    fresh = _fudger_ratios(fresh_each_report=True)
    assert 0.25 < drift < 0.7
    assert 0.1 < fresh < drift


# -- planar Laplace --------------------------------------------------------------------------------------
@given(st.floats(min_value=-1 / math.e, max_value=-1e-300))
def test_lambert_w_minus1_inverts_w_exp_w(x: float) -> None:
    w = lambert_w_minus1(x)
    assert w <= -1.0
    assert w * math.exp(w) == pytest.approx(x, rel=1e-9, abs=1e-15)


def test_lambert_w_known_values() -> None:
    assert lambert_w_minus1(-1 / math.e) == -1.0
    assert lambert_w_minus1(-0.1) == pytest.approx(-3.577152063957297, rel=1e-12)
    assert lambert_w_minus1(-1e-10) == pytest.approx(-26.295238819246926, rel=1e-12)
    for bad in (0.0, 0.1, -0.5):
        with pytest.raises(ValueError):
            lambert_w_minus1(bad)


def test_laplace_radius_matches_the_planar_laplace_cdf() -> None:
    """Quantiles of C(r) = 1 - (1 + eps r) e^(-eps r): the inverse CDF must invert it exactly; and a fine
    uniform grid of p gives the mean 2/eps (for r = 500 m: 500 m) and the median 1.678/eps (~420 m)."""
    epsilon = 2 / 500
    for p in (0.0, 0.1, 0.5, 0.594, 0.9, 0.99, 0.999999):
        radius = laplace_radius(epsilon, p)
        assert 1 - (1 + epsilon * radius) * math.exp(-epsilon * radius) == pytest.approx(p, abs=1e-9)
    samples = sorted(laplace_radius(epsilon, (k + 0.5) / 20_000) for k in range(20_000))
    assert statistics.fmean(samples) == pytest.approx(500, rel=0.01)
    assert statistics.median(samples) == pytest.approx(1.678 / epsilon, rel=0.01)
    assert samples[int(0.9 * len(samples))] == pytest.approx(3.890 / epsilon, rel=0.01)


def test_laplace_coarsener_error_is_about_r() -> None:
    """Empirical: the distance from the cell's keyed point to the noisy output, over 4,000 independent noise
    keys, has mean ~ r and median ~ 0.839 r (r = 500 m: 500 m and 420 m; standard error ~6 m)."""
    grid_m = 500
    base = GridCoarsener(SECRET).coarsen(31.2304, 121.4737, grid_m)
    distances = [distance_m(base.lat, base.lon, noisy.lat, noisy.lon)
                 for noisy in (LaplaceCoarsener(SECRET, str(seed).encode()).coarsen(31.2304, 121.4737, grid_m)
                               for seed in range(4000))]
    assert 470 < statistics.fmean(distances) < 530
    assert 390 < statistics.median(distances) < 450


@given(secrets, latitudes, longitudes, grids)
def test_laplace_output_is_stable_per_cell(secret: bytes, lat: float, lon: float, grid_m: int) -> None:
    first = LaplaceCoarsener(secret, cache_size=2)
    out = first.coarsen(lat, lon, grid_m)
    assert -90.0 <= out.lat <= 90.0 and -180.0 <= out.lon < 180.0
    assert out.accuracy_m == math.ceil(grid_m + 3.890 * grid_m / 2)
    for other in (0.0, 45.0, -45.0):
        first.coarsen(other, other, grid_m)  # push the cell out of the small cache
    assert first.coarsen(lat, lon, grid_m) == out == LaplaceCoarsener(secret).coarsen(lat, lon, grid_m)
    cell = GridCoarsener(secret).cell(lat, lon, grid_m)
    inside = (max(cell.south, -90.0) + min(cell.north, 90.0)) / 2, cell.west + cell.width_deg / 2
    assume(GridCoarsener(secret).cell(inside[0], (inside[1] + 180) % 360 - 180, grid_m) == cell)
    assert LaplaceCoarsener(secret).coarsen(inside[0], (inside[1] + 180) % 360 - 180, grid_m) == out


@given(latitudes, longitudes, st.floats(0, 50_000), st.floats(0, 2 * math.pi))
def test_displace_stays_on_the_globe(lat: float, lon: float, distance: float, bearing: float) -> None:
    new_lat, new_lon = displace(lat, lon, distance, bearing)
    assert -90.0 <= new_lat <= 90.0 and -180.0 <= new_lon < 180.0


# -- time ------------------------------------------------------------------------------------------------
@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 1, 1),
                    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=8)),
                                               dt.timezone(dt.timedelta(hours=-5, minutes=-30))])),
       st.sampled_from([1, 60, 900, 3600, 7, 86400]))
def test_bucket_time_floors_to_the_bucket(when: dt.datetime, bucket_s: int) -> None:
    bucketed = bucket_time(when, bucket_s)
    assert bucketed.tzinfo == dt.UTC
    assert bucketed <= when < bucketed + dt.timedelta(seconds=bucket_s)
    assert int(bucketed.timestamp()) % bucket_s == 0 and bucketed.microsecond == 0


def test_bucket_time_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        bucket_time(dt.datetime(2024, 1, 1), 900)
    assert bucket_time(dt.datetime(2024, 1, 1, 0, 14, 59, tzinfo=dt.UTC), 900) == \
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_daily_cap() -> None:
    cap = DailyCap(3)
    day = dt.date(2024, 1, 2)
    assert [cap.admit("a", day) for _ in range(5)] == [True, True, True, False, False]
    assert cap.admit("b", day)
    assert cap.admit("a", day + dt.timedelta(days=1))
    assert not cap.admit("a", day)  # yesterday's count is remembered
    assert not cap.admit("c", day - dt.timedelta(days=1))  # older than yesterday: refused
    with pytest.raises(ValueError):
        DailyCap(0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3)), max_size=200), st.integers(1, 5))
def test_daily_cap_never_admits_more_than_the_cap(points: list[tuple[str, int]], cap_size: int) -> None:
    cap = DailyCap(cap_size)
    admitted: Counter[tuple[str, int]] = Counter()
    for name, day in sorted(points, key=lambda point: point[1]):
        if cap.admit(name, dt.date(2024, 1, 1) + dt.timedelta(days=day)):
            admitted[(name, day)] += 1
    assert all(count <= cap_size for count in admitted.values())
    assert Coarse(0.0, 0.0, 1) == Coarse(0.0, 0.0, 1)


def test_coarsener_for_the_policy_setting() -> None:
    assert isinstance(coarsener_for("grid", SECRET), GridCoarsener)
    assert isinstance(coarsener_for("laplace", SECRET), LaplaceCoarsener)
    with pytest.raises(ValueError):
        coarsener_for("fudge", SECRET)
