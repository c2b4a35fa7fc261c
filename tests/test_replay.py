"""``privacy-agent replay``: capture file in, JSON fixes out, through the real entry point."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from agent.errors import AgentError
from agent.main import main
from agent.nmea import with_checksum
from agent.nmea.fixes import FixDecoder
from agent.replay import BLOCK_BYTES, decoded_fixes

CORPORA = Path(__file__).parent / "corpora"


def replay(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[dict[str, object]], str]:
    code = main(["replay", str(path), "--json"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_quectel_capture(capsys: pytest.CaptureFixture[str]) -> None:
    code, records, err = replay(capsys, CORPORA / "gpsd" / "quectel.log")
    assert code == 0
    assert len(records) == 34  # one per epoch: gpsd reports fixes at the same 34 seconds
    first = records[0]
    assert first == {
        "time": "2020-10-07T02:20:21.000Z",
        "lat": -36.745989467,
        "lon": 174.734547667,
        "alt": 56.1,
        "hdop": 1.1,
        "sats": 7,
        "speed": 0.0,
        "course": 301.9,
        "quality": 1,
        "source": "RMC",
        "talker": "GP",
        "mode": "autonomous",
    }
    for record in records:
        assert isinstance(record["time"], str) and record["time"].endswith("Z")
        dt.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    assert "quectel.log: 34 fixes" in err
    assert "accepted=312" in err
    assert "Isaacson" not in err and "teknique" not in err  # the header's personal data stays in the file


def test_lf_only_and_crlf_give_the_same_fixes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    crlf = (CORPORA / "gpsd" / "quectel.log").read_bytes()
    lf_only = tmp_path / "lf.log"
    lf_only.write_bytes(crlf.replace(b"\r\n", b"\n"))
    assert replay(capsys, CORPORA / "gpsd" / "quectel.log")[1] == replay(capsys, lf_only)[1]


def test_south_and_west_are_negative(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capture = tmp_path / "sw.log"
    lines = [
        "# Name: made up",
        with_checksum("GPRMC,120000.00,A,3330.000000,S,07030.000000,W,10.0,90.0,010224,,,A"),
        with_checksum("GPGGA,120001.00,3330.000000,S,07030.000000,W,1,08,0.9,500.0,M,30.0,M,,"),
        with_checksum("GPRMC,120002.00,V,,,,,,,010224,,,N"),
    ]
    capture.write_text("\r\n".join(lines) + "\r\n")
    code, records, _ = replay(capsys, capture)
    assert code == 0
    assert [(r["time"], r["lat"], r["lon"], r["source"]) for r in records] == [
        ("2024-02-01T12:00:00.000Z", -33.5, -70.5, "RMC"),
        ("2024-02-01T12:00:01.000Z", -33.5, -70.5, "GGA"),
    ]  # the RMC at 12:00:02 says "no fix": not printed
    assert records[0]["speed"] == pytest.approx(18.52)
    assert (records[1]["alt"], records[1]["sats"], records[1]["hdop"]) == (500.0, 8, 0.9)


def test_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, records, err = replay(capsys, tmp_path / "nope.log")
    assert (code, records) == (2, [])
    assert "not found" in err and "nope.log" in err


def test_directory_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = replay(capsys, tmp_path)
    assert code == 2
    assert "directory" in err


def test_unreadable_file_is_an_agent_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = tmp_path / "locked.log"
    capture.write_bytes(b"")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    code, _, err = replay(capsys, capture)
    assert code == 1
    assert "cannot be read" in err and "locked.log" in err and "Permission denied" in err


def test_reading_is_streamed_in_blocks(tmp_path: Path) -> None:
    # A capture with no line end at all is read block by block: nothing holds more than one block.
    capture = tmp_path / "endless.log"
    capture.write_bytes(b"$GPGGA," + b"1" * (5 * BLOCK_BYTES))
    decoder = FixDecoder()
    assert list(decoded_fixes(capture, decoder)) == []
    assert decoder.reader.counters.malformed == 1


def test_errors_are_agent_errors() -> None:
    with pytest.raises(AgentError):
        list(decoded_fixes(Path("/nonexistent/capture.log"), FixDecoder()))


def test_modes_are_shown_and_only_positions_are_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capture = tmp_path / "modes.log"
    position = "3330.000000,S,07030.000000,W"
    lines = [
        with_checksum(f"GPRMC,120000.00,A,{position},10.0,90.0,010224,,,A"),
        with_checksum(f"GPRMC,120001.00,V,{position},10.0,90.0,010224,,,E"),  # dead reckoning: status V by rule
        with_checksum(f"GPRMC,120002.00,V,{position},10.0,90.0,010224,,,S"),  # simulator
        with_checksum(f"GPGGA,120003.00,{position},8,08,0.9,500.0,M,30.0,M,,"),  # simulator
        with_checksum(f"GPRMC,120004.00,V,{position},10.0,90.0,010224,,,N"),
        with_checksum(f"GNGGA,120005.00,{position},4,08,0.9,500.0,M,30.0,M,,"),
        with_checksum(f"GLGGA,120005.00,{position},1,08,0.9,500.0,M,30.0,M,,"),
    ]
    capture.write_text("\r\n".join(lines) + "\r\n")
    code, records, err = replay(capsys, capture)
    assert code == 0
    assert [(r["time"], r["mode"]) for r in records] == [
        ("2024-02-01T12:00:00.000Z", "autonomous"),
        ("2024-02-01T12:00:01.000Z", "estimated"),
        ("2024-02-01T12:00:05.000Z", "rtk"),
    ]
    assert records[2]["talker"] == "GN"
    assert "3 fixes" in err
    assert "modes: autonomous=1 estimated=1 invalid=1 rtk=1 simulator=2" in err
