"""Benchmarks for the firmware guard (firmware_shims/privacy_guard.py), run under CPython.

- ``shim_cbor_status_encode``: the guard's pure-Python CBOR encoder on a real status map, against cbor2's
  canonical encoder on the same map (baseline). The guard encodes a status only when the host asks for one.
- ``shim_status_request``: one guard tick that reads, parses and answers a STATUS request (CBOR, hex, reply
  line), against the encoder alone (baseline): the protocol around the encoder should cost little.
- ``shim_host_decode``: the host's ``decode_status`` (hex, cbor2, checks) against bare ``cbor2.loads``.
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path
from typing import Any

import cbor2

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "firmware_shims"))

import privacy_guard as pg  # noqa: E402
import privacy_guard_fakes as fakes  # noqa: E402

from agent.guard import decode_status  # noqa: E402

STATUS = {"on": False, "sim": 1, "gnss": 0, "error": None, "model": "EC200U", "proto": 1, "ticks": 123456,
          "source": "primary", "repairs": 1, "persisted": True}


def per_call_us(function: Any, number: int) -> float:
    """Best of three runs, in microseconds per call (the minimum is the least noisy estimate)."""
    return min(timeit.repeat(function, number=number, repeat=3)) / number * 1e6


def result(value: float, baseline: float, target_ratio: float) -> dict[str, Any]:
    ratio = value / baseline
    return {"value": round(value, 3), "unit": "us/op", "baseline": round(baseline, 3), "ratio": ratio,
            "target": f"ratio <= {target_ratio}", "pass": ratio <= target_ratio}


def serving_guard() -> tuple[pg.Guard, fakes.FakeUart]:
    fs = fakes.FakeFs()
    store = pg.SwitchStore(fs, fs.open, json)
    store.save(False, 1)
    uart = fakes.FakeUart()
    guard = pg.Guard(fakes.FakeGnss(), store, uart, fakes.FakeModem(), fakes.FakeSim())
    guard.boot()
    return guard, uart


def run(quick: bool) -> dict[str, dict[str, Any]]:
    number = 300 if quick else 3000
    encode_us = per_call_us(lambda: pg.cbor_encode(STATUS), number)
    cbor2_us = per_call_us(lambda: cbor2.dumps(STATUS, canonical=True), number)

    guard, uart = serving_guard()

    def one_request() -> None:
        uart.host_send(b"PG 1 STATUS\n")
        guard.tick()
        uart.host_receive()

    request_us = per_call_us(one_request, number)
    hex_text = pg.cbor_encode(STATUS).hex()
    raw = bytes.fromhex(hex_text)
    decode_us = per_call_us(lambda: decode_status(hex_text), number)
    loads_us = per_call_us(lambda: cbor2.loads(raw), number)
    return {
        # Pure Python against cbor2 (whose canonical key sorting is itself costly): a few times slower is
        # harmless at one status per request; the target catches an accidental quadratic or allocation storm.
        "shim_cbor_status_encode": result(encode_us, cbor2_us, 10.0),
        "shim_status_request": result(request_us, encode_us, 6.0),
        "shim_host_decode": result(decode_us, loads_us, 10.0),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
