"""``privacy-agent replay CAPTURE --nmea --purpose NAME --config FILE``: the local feed's dry run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.main import main
from agent.nmea.checksum import nmea_checksum
from tests.privacy_support import SECRET

CORPUS = Path(__file__).resolve().parent / "corpora" / "gpsd"
CAPTURE = CORPUS / "quectel-eg25-g-2.log"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'''
[modem]
port = "sim://ec25"
[state]
dir = "{tmp_path / 'state'}"
[policy]
version = "1"
home_region = "CN"
[[purpose]]
name = "local-nav"
description = "Navigation on the gateway"
legal_basis = "consent"
grid_m = 1000
time_bucket_s = 5
fields = ["satellites"]
sinks = ["operator"]
[[sink]]
name = "operator"
url = "file:///tmp/outbox.jsonl"
recipient = "Example Ltd"
region = "CN"
''')
    return path


def test_prints_checked_coarse_sentences_on_the_device_grid(tmp_path: Path,
                                                             capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "device.secret").write_bytes(SECRET)
    argv = ["replay", str(CAPTURE), "--nmea", "--purpose", "local-nav", "--config", str(_config(tmp_path))]
    assert main(argv) == 0
    first = capsysbinary.readouterr()
    assert main(argv) == 0
    assert capsysbinary.readouterr().out == first.out  # the device's secret: the same grid every time
    lines = first.out.split(b"\r\n")[:-1]
    assert lines and all(line[:6] in (b"$GPGGA", b"$GPRMC") for line in lines)
    for line in lines:
        body, _, check = line[1:].partition(b"*")
        assert int(check, 16) == nmea_checksum(body)
        assert re.search(rb",\d{6}\.00,", line)  # whole seconds
    times = {line.split(b",")[1] for line in lines}
    assert all(int(t[4:6]) % 5 == 0 for t in times)  # cut to the 5 s bucket
    true_fields = set(re.findall(rb",(\d{4,5}\.\d{3,}),[NSEW],", CAPTURE.read_bytes()))
    assert true_fields and not any(field + b"," in first.out for field in true_fields)
    assert b"epochs (grid 1000 m, bucket 5 s)" in first.err and b"throwaway" not in first.err


def test_without_the_device_secret_says_so(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    argv = ["replay", str(CAPTURE), "--nmea", "--purpose", "local-nav", "--config", str(_config(tmp_path))]
    assert main(argv) == 0
    captured = capsysbinary.readouterr()
    assert b"throwaway secret" in captured.err and captured.out.startswith(b"$GPGGA")
    assert not (tmp_path / "state").exists()  # a dry run creates nothing


@pytest.mark.parametrize(("extra", "message"), [
    ([], b"--nmea needs --purpose NAME and --config FILE"),
    (["--purpose", "nope", "--config"], b"--purpose names no [[purpose]]"),
])
def test_usage_errors(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], extra: list[str],
                      message: bytes) -> None:
    if extra and extra[-1] == "--config":
        extra = [*extra, str(_config(tmp_path))]
    assert main(["replay", str(CAPTURE), "--nmea", *extra]) == 2
    assert message in capsysbinary.readouterr().err
