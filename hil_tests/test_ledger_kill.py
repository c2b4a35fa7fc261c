"""The ledger against real processes and threads: kill -9 mid-stream, the group-commit thread, concurrency."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pytest_mock import MockerFixture

from agent.ledger import Ledger, LedgerConfig

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20

# Appends a group-committed record and a durable one per round; prints "seq n" only after the durable append
# returned, i.e. only what the ledger has promised to keep.
WRITER = """
import sys
from pathlib import Path
from agent.ledger import Ledger, LedgerConfig
config = LedgerConfig(group_commit_ms=50, checkpoint_every=25, segment_bytes=8192)
n = int(sys.argv[2])
with Ledger.open(Path(sys.argv[1]), config) as ledger:
    while True:
        ledger.append("fix_access", {"n": n}, personal={"lat_e7": n})
        ref = ledger.append("switch", {"n": n})
        print(ref.seq, n, flush=True)
        n += 1
"""


def _run_until_killed(state: Path, start: int, acks_wanted: int, rng: random.Random) -> list[tuple[int, int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(state), str(start)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, text=True)
    acked: list[tuple[int, int]] = []
    try:
        assert process.stdout is not None
        while len(acked) < acks_wanted:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"writer died: {process.stderr.read() if process.stderr else ''}")
            seq, n = line.split()
            acked.append((int(seq), int(n)))
        time.sleep(rng.random() * 0.004)  # land the kill anywhere in the next few appends
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return acked


def test_every_acknowledged_record_survives_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20240605)
    acknowledged: list[tuple[int, int]] = []
    next_n = 0
    for _ in range(KILLS):
        acked = _run_until_killed(tmp_path, next_n, rng.randint(1, 40), rng)
        acknowledged.extend(acked)
        next_n = acked[-1][1] + 1000  # a fresh range, so a lost record could not be mistaken for a later one
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False)) as ledger:
        report = ledger.verify()
        switches = {record.seq: record.fields.get("n") for record in ledger.records()
                    if record.type == "switch"}
    for seq, n in acknowledged:
        assert switches.get(seq) == n, f"acknowledged record {seq} lost"
    assert report.records > len(acknowledged)
    assert report.counts.get("recovery", 0) <= KILLS


def test_the_flush_thread_syncs_group_commits_within_the_bound(tmp_path: Path,
                                                                mocker: MockerFixture) -> None:
    with Ledger.open(tmp_path, LedgerConfig(group_commit_ms=20)) as ledger:
        sync = mocker.patch("os.fdatasync", wraps=os.fdatasync)
        ledger.append("upload", {"sink": "a"})
        assert sync.call_count == 0
        deadline = time.monotonic() + 5.0
        while sync.call_count == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sync.call_count == 1


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    with Ledger.open(tmp_path, LedgerConfig(group_commit_ms=5, checkpoint_every=50)) as ledger:
        def work(worker: int) -> None:
            for index in range(200):
                if index % 20 == 0:
                    ledger.append("consent", {"worker": worker, "i": index})
                else:
                    ledger.append("fix_access", {"worker": worker}, personal={"lat_e7": index})

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        report = ledger.verify()
    assert report.counts["fix_access"] + report.counts["consent"] == 800
    with Ledger.open(tmp_path, LedgerConfig(flush_thread=False)) as ledger:
        records = list(ledger.records())
    # the same chain; a clean stop adds at most the checkpoint over the last records
    assert records[report.records - 1].hash.hex() == report.head
    assert len(records) - report.records <= 1 and records[-1].type == "checkpoint"
