"""Simulator speed: what the simulated module costs on top of the minimum work of the same kind.

``sim_at_roundtrip``: ``ATI`` round trips per second through ``sim://`` (pyserial handler, command table,
framing), against pyserial's own ``loop://`` moving the same number of bytes per round trip (the floor of
any in-process pyserial port). ``sim_nmea_seconds``: simulated seconds of NMEA (one burst each) produced and
read per wall second with a manual clock, against formatting the same bursts alone (``nmea_out.burst``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import serial

from agent import sim
from agent.sim import ManualClock, SimModem
from agent.sim.identity import TrackPoint, make_sky
from agent.sim.nmea_out import burst

ATI_REPLY = b"ATI\r\r\nQuectel\r\n\r\nEC25\r\n\r\nRevision: EC25EFAR06A08M4G\r\n\r\nOK\r\n"
AT_TARGET = 0.05  # sim:// may be at most 20x slower than loop:// for the same bytes
NMEA_TARGET = 0.5  # the state machine around the formatting may at most double its cost


def _rate(operation: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def _at_roundtrip(count: int) -> tuple[float, float]:
    sim.register()
    port = serial.serial_for_url("sim://ec25?name=bench-sim&port=at", timeout=1)
    loop = serial.serial_for_url("loop://", timeout=1)

    def through_sim() -> None:
        port.write(b"ATI\r")
        port.read(len(ATI_REPLY))

    def through_loop() -> None:
        loop.write(ATI_REPLY)
        loop.read(len(ATI_REPLY))

    try:
        return _rate(through_sim, count), _rate(through_loop, count)
    finally:
        port.close()
        loop.close()
        sim.forget("bench-sim")


def _nmea_seconds(count: int) -> tuple[float, float]:
    clock = ManualClock()
    modem = SimModem(seed=1, ttff_s=0, clock=clock)
    modem.write("at", b"AT+QGPS=1\r")
    point = modem.true_position()

    def simulated_second() -> None:
        clock.advance(1.0)
        modem.read("nmea", 1 << 16)

    sky = make_sky(random.Random(1))
    fixed = TrackPoint(point.lat or 0.0, point.lon or 0.0, 500.0, 4.0, 90.0, 1.0, 9)
    wall = [clock.wall()]

    def format_only() -> None:
        wall[0] += 1.0
        burst(fixed, wall[0], sky, 31, True)

    return _rate(simulated_second, count), _rate(format_only, count)


def _result(value: float, baseline: float, unit: str, target: float) -> dict[str, object]:
    ratio = value / baseline if baseline else 0.0
    return {"value": round(value, 1), "unit": unit, "baseline": round(baseline, 1), "ratio": round(ratio, 3),
            "target": f">= {target}", "pass": ratio >= target}


def run(quick: bool) -> dict[str, dict[str, object]]:
    at_count, nmea_count = (300, 300) if quick else (3000, 3000)
    sim_rate, loop_rate = _at_roundtrip(at_count)
    nmea_rate, format_rate = _nmea_seconds(nmea_count)
    return {
        "sim_at_roundtrip": _result(sim_rate, loop_rate, "round trips/s", AT_TARGET),
        "sim_nmea_seconds": _result(nmea_rate, format_rate, "simulated s/s", NMEA_TARGET),
    }
