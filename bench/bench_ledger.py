"""Ledger benchmarks: durable appends vs raw write+fdatasync, group-commit rate, streaming export.

Each number is compared with a baseline measured in the same run on the same disk (the machines are noisy).
The export's baseline is the least any export does with each record: ``cbor2.loads`` of its payload,
``json.dumps`` of the result and ``zlib`` compression of the line, timed over the same records.
The export runs in a child process so that its peak RSS (its ``VmHWM``) is the export's own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import cbor2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agent.ledger import (  # noqa: E402
    Ledger,
    LedgerConfig,
    codec,
)

SWITCH_FIELDS = {"desired": "off", "generation": 12345, "by_uid": 0}
FIX_FIELDS = {"purpose": "fleet", "sink": "mqtt-eu", "precision_m": 2000}
FIX_PERSONAL = {"lat_e7": 312304567, "lon_e7": 1214737890, "accuracy_m": 2000}


def _result(value: float, unit: str, baseline: float, target: str, passed: bool) -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return {"value": round(value, 3), "unit": unit, "baseline": round(baseline, 3), "ratio": ratio,
            "target": target, "pass": passed}


def bench_durable(directory: Path, rounds: int, per_round: int = 100) -> dict[str, Any]:
    """Ledger appends of a durable record and raw write+fdatasync loops of the same frame size take turns,
    ``per_round`` of each per round; the medians of the per-round rates are compared, so that a slow minute
    of the disk or the machine weighs on both sides alike."""
    # The daemon's configuration: every durable record is followed by a signed checkpoint and a head file
    # written by the ledger's thread (a burst shares one, see LedgerConfig.checkpoint_coalesce_ms).
    config = LedgerConfig()
    ledger_rates: list[float] = []
    raw_rates: list[float] = []
    with Ledger.open(directory / "durable", config) as ledger:
        ledger.append("switch", SWITCH_FIELDS)
        before = ledger.snapshot().segments[-1][1]
        ledger.append("switch", SWITCH_FIELDS)
        frame = os.urandom(ledger.snapshot().segments[-1][1] - before)
        fd = os.open(directory / "raw.bin", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(per_round):
                    ledger.append("switch", SWITCH_FIELDS)
                ledger_rates.append(per_round / (time.perf_counter() - started))
                raw_rates.append(_raw_write_sync_rate(fd, frame, per_round))
        finally:
            os.close(fd)
    ledger_rate, raw_rate = statistics.median(ledger_rates), statistics.median(raw_rates)
    ratio = ledger_rate / raw_rate
    return _result(ledger_rate, "records/s", raw_rate, ">= 0.6 x raw write+fdatasync", ratio >= 0.6)


def _raw_write_sync_rate(fd: int, frame: bytes, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        os.write(fd, frame)
        os.fdatasync(fd)
    return count / (time.perf_counter() - started)


def bench_group(directory: Path, count: int) -> tuple[dict[str, Any], int]:
    config = LedgerConfig(flush_thread=False)
    with Ledger.open(directory / "group", config) as ledger:
        before = ledger.snapshot().segments[-1][1]
        started = time.perf_counter()
        for _ in range(count):
            ledger.append("fix_access", FIX_FIELDS, personal=FIX_PERSONAL)
        ledger.flush()
        rate = count / (time.perf_counter() - started)
        frame_size = (ledger.snapshot().segments[-1][1] - before) // count
    baseline = _raw_encode_rate(count)
    return _result(rate, "records/s", baseline, ">= 10000 records/s", rate >= 10_000), frame_size


def _raw_encode_rate(count: int) -> float:
    """What the CBOR encoding and framing alone allow (no crypto, hashing or I/O)."""
    started = time.perf_counter()
    for seq in range(count):
        body = {"v": 1, "seq": seq, "t": 1_700_000_000_000, "type": "fix_access", "prev": codec.GENESIS,
                "f": FIX_FIELDS}
        codec.encode_frame(codec.dumps(body))
    return count / (time.perf_counter() - started)


def build_log(directory: Path, count: int) -> None:
    config = LedgerConfig(flush_thread=False)
    with Ledger.open(directory, config) as ledger:
        for index in range(count):
            ledger.append("fix_access", FIX_FIELDS, personal=FIX_PERSONAL)
            if index % 50_000 == 0:
                ledger.flush()


_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {bench!r})
    from processes import peak_kb
    from agent.ledger import Ledger
    state, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    with Ledger.open(state, read_only=True) as ledger:
        started = time.perf_counter()
        if mode == "export":
            summary = ledger.export(out, overwrite=True)
            records = summary.records
        else:
            records = ledger.verify().records
        elapsed = time.perf_counter() - started
    print(json.dumps({{"records": records, "seconds": elapsed, "peak_kb": peak_kb()}}))
""")


def _child(state: Path, out: Path, mode: str) -> dict[str, Any]:
    code = _CHILD.format(root=str(HERE.parent), bench=str(HERE))
    done = subprocess.run([sys.executable, "-c", code, str(state), str(out), mode], check=True,
                          capture_output=True, text=True, timeout=900)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _json_default(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(type(value).__name__)


def _decode_dump_compress_rate(state: Path) -> float:
    """Records/s of cbor2.loads + json.dumps + zlib over every record of the log at ``state``; each segment's
    payloads are read first, untimed, one segment at a time."""
    records, seconds = 0, 0.0
    for path in sorted((state / "ledger").glob("*.seg")):
        reader = codec.FrameReader(path.name)
        reader.feed(path.read_bytes())
        payloads = [payload for _, payload in reader.payloads()]
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        started = time.perf_counter()
        for payload in payloads:
            line = json.dumps(cbor2.loads(payload), ensure_ascii=False, default=_json_default) + "\n"
            compressor.compress(line.encode())
        compressor.flush()
        seconds += time.perf_counter() - started
        records += len(payloads)
    return records / seconds


def bench_export(directory: Path, count: int) -> dict[str, dict[str, Any]]:
    state = directory / "export-state"
    build_log(state, count)
    verified = _child(state, directory / "unused.zip", "verify")
    exported = _child(state, directory / "export.zip", "export")
    rate = exported["records"] / exported["seconds"]
    baseline_rate = _decode_dump_compress_rate(state)
    peak_mb = exported["peak_kb"] / 1024
    baseline_mb = verified["peak_kb"] / 1024
    return {
        f"ledger_export_rate_{count}": _result(rate, "records/s", baseline_rate,
                                               ">= 0.5 x cbor2.loads + json.dumps + zlib of the same records",
                                               rate >= 0.5 * baseline_rate),
        f"ledger_export_peak_rss_{count}": _result(peak_mb, "MB", baseline_mb, "< 100 MB", peak_mb < 100),
    }


def run(quick: bool) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-", dir=os.environ.get("BENCH_DIR")) as name:
        directory = Path(name)
        results = {"ledger_durable_append": bench_durable(directory, rounds=20 if quick else 40)}
        group, frame_size = bench_group(directory, 20_000 if quick else 200_000)
        group["unit"] = f"records/s ({frame_size}-byte records)"
        results["ledger_group_commit_append"] = group
        results.update(bench_export(directory, 100_000 if quick else 1_000_000))
        return results


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
