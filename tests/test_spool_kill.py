"""SIGKILL of a process writing to the spool: every put that returned is there after reopening, every ack that
returned is gone, and the spool opens cleanly whatever the moment of the kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.spool import Spool

REPO = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import agent.spool
    from agent.spool import Message, Spool

    agent.spool.COMPACT_MIN_BYTES = int(sys.argv[2])  # small: compactions are among the moments of the kill
    spool = Spool.open(Path(sys.argv[1]))
    number = 0
    while True:
        number += 1
        spool.put(Message(id=f"m{number}", sink="s", purpose="p", body=b'{"n":%d}' % number, created_ms=number))
        print(f"put m{number}", flush=True)
        if number > 3:
            spool.ack(f"m{number - 3}")
            print(f"ack m{number - 3}", flush=True)
""")


@pytest.mark.parametrize("compact_min_bytes", [1 << 20, 700])
@pytest.mark.parametrize("lines_before_kill", [1, 7, 40, 121])
def test_every_returned_put_survives_sigkill(tmp_path: Path, lines_before_kill: int, compact_min_bytes: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(compact_min_bytes)],
                              stdout=subprocess.PIPE, env=env)
    assert writer.stdout is not None
    output = b""
    try:
        for _ in range(lines_before_kill):
            line = writer.stdout.readline()
            assert line, "the writer stopped before it was killed"
            output += line
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    # Everything printed before the kill, including lines not read yet: each is a call that returned.
    output += writer.stdout.read()
    writer.stdout.close()
    put, acked = _returned_calls(output.decode())
    with Spool.open(tmp_path) as spool:
        present = {message.id for message in spool.due(10**12)}
    put_count = len(put)
    # The one call that may have been running when the kill came: the ack after the last put, or the next put.
    ack_in_flight = {f"m{put_count - 3}"} if put_count > 3 and len(acked) < put_count - 3 else set()
    put_in_flight = {f"m{put_count + 1}"} if not ack_in_flight else set()
    assert (put - acked) - ack_in_flight <= present, "a put that returned was lost"
    assert not present & acked, "an ack that returned came back"
    assert present - (put - acked) <= put_in_flight


def _returned_calls(output: str) -> tuple[set[str], set[str]]:
    put: set[str] = set()
    acked: set[str] = set()
    for line in output.split("\n")[:-1]:  # a last line without its newline was cut short by the kill
        verb, message_id = line.split()
        (put if verb == "put" else acked).add(message_id)
    return put, acked
