"""AT core and Quectel parser throughput, each against a baseline measured in the same run.

``at_core_vs_naive_splitter``: a cycle of real reply shapes (echoed ``ATI``, ``QGPSLOC`` with a URC inside,
the multi-line NSA ``QENG``, ``QGPSCFG``, a boot URC inside ``QGPS?``, a ``+CME ERROR``), each sent as a
command and its reply fed in 64-byte blocks as a USB serial port delivers them, through ``Connection``
(``send``, ``receive_data``, ``next_event`` until ``NEED_DATA``). Baseline: a minimal consumer in the style of
pyserial's ``at_protocol`` example on the same bytes: split on CRLF, decode, sort lines into final / info /
URC by string prefix, with no echo, prompt, bound or chunk handling. The core does strictly more work; the
target guards against it falling far behind.

``qgpsloc_parse_vs_pynmea2``: ``parse_qgpsloc`` on a mode-2 reply against ``pynmea2.parse`` of the GGA
sentence for the same fix plus its latitude, longitude and timestamp (what a pynmea2 user does per fix).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pynmea2

from agent.at import NEED_DATA, Command, Connection, Final, Response
from agent.nmea.checksum import nmea_checksum
from agent.quectel import commands as c
from agent.quectel import responses as r

BLOCK = 64
CORE_TARGET_RATIO = 0.05
PARSE_TARGET_RATIO = 0.6  # a validated Fix at no less than 60% of pynmea2's speed for a bare sentence

EXCHANGES: list[tuple[Command, bytes]] = [
    (c.ati(), b"ATI\r\r\nQuectel\r\nEC25\r\nRevision: EC25EFAR06A03M4G\r\n\r\nOK\r\n"),
    (c.qgpsloc(2), b"\r\n+QGPSLOC: 190629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219,09\r\n"
                   b"\r\n+QIND: \"csq\",20,99\r\n\r\nOK\r\n"),
    (c.qeng_servingcell(), b'\r\n+QENG: "servingcell","NOCONN"\r\n'
                           b'+QENG: "LTE","FDD",515,03,3359966,1,150,1,5,5,4AA3,-89,-13,-58,16,15,20,-\r\n'
                           b'+QENG:"NR5G-NSA",515,03,832,-76,21,-11,528030,41,8,1\r\n\r\nOK\r\n'),
    (c.qgpscfg_read("outport"), b'\r\n+QGPSCFG: "outport","usbnmea"\r\n\r\nOK\r\n'),
    (c.qgps_read(), b"\r\n+QGPS: 1\r\n\r\nRDY\r\n\r\nOK\r\n"),
    (c.qgps_on(), b"\r\n+CME ERROR: 504\r\n"),
]
QGPSLOC_REPLY = Response(
    c.qgpsloc(2), ("+QGPSLOC: 190629.0,37.39540,-122.10232,1.0,16.0,2,188.18,0.0,0.0,031219,09",),
    Final("OK", None, "OK"),
)
_GGA_BODY = "GPGGA,190629.00,3723.7238,N,12206.1395,W,1,09,1.0,16.0,M,-25.0,M,,"
GGA = f"${_GGA_BODY}*{nmea_checksum(_GGA_BODY):02X}"


def _core(exchanges: list[tuple[Command, bytes]]) -> int:
    conn = Connection()
    responses = 0
    for command, reply in exchanges:
        conn.send(command)
        for start in range(0, len(reply), BLOCK):
            conn.receive_data(reply[start : start + BLOCK])
            while (event := conn.next_event()) is not NEED_DATA:
                responses += isinstance(event, Response)
    return responses


def _naive(exchanges: list[tuple[Command, bytes]]) -> int:
    responses = 0
    for command, reply in exchanges:
        info: list[str] = []
        urcs: list[str] = []
        for raw in reply.split(b"\r\n"):
            line = raw.decode("ascii", "replace").strip()
            if not line:
                continue
            if line in ("OK", "ERROR") or line.startswith("+CME ERROR"):
                responses += 1
                break
            (info if command.prefix and line.startswith(command.prefix) else urcs).append(line)
    return responses


def _parse_qgpsloc(count: int) -> None:
    for _ in range(count):
        r.parse_qgpsloc(QGPSLOC_REPLY, 2)


def _parse_pynmea2(count: int) -> None:
    for _ in range(count):
        message = pynmea2.parse(GGA)
        _ = (message.latitude, message.longitude, message.timestamp)


def _best_seconds(function: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def _result(value: float, unit: str, baseline: float, target: float) -> dict[str, object]:
    ratio = value / baseline
    return {"value": round(value), "unit": unit, "baseline": round(baseline), "ratio": ratio,
            "target": f">= {target}", "pass": ratio >= target}


def run(quick: bool) -> dict[str, dict[str, object]]:
    exchanges = EXCHANGES * (300 if quick else 3000)
    fixes = 3000 if quick else 30000
    rounds = 3 if quick else 5
    core = len(exchanges) / _best_seconds(lambda: _core(exchanges), rounds)
    naive = len(exchanges) / _best_seconds(lambda: _naive(exchanges), rounds)
    ours = fixes / _best_seconds(lambda: _parse_qgpsloc(fixes), rounds)
    theirs = fixes / _best_seconds(lambda: _parse_pynmea2(fixes), rounds)
    return {
        "at_core_vs_naive_splitter": _result(core, "exchanges/s", naive, CORE_TARGET_RATIO),
        "qgpsloc_parse_vs_pynmea2": _result(ours, "fixes/s", theirs, PARSE_TARGET_RATIO),
    }
