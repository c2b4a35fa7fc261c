"""The guard's state machine and switch store under CPython, with fake QuecPython modules.

Covers: GNSS that came on by itself at boot, drift after boot, torn/corrupt/stale switch files (the backup
wins; both bad means off), power cuts at every step of a write, flash failures, bounded work per tick, and
that identifiers are never read.
"""

from __future__ import annotations

import json
import runpy
import sys
import types
from pathlib import Path
from typing import Any

import pytest

SHIMS = Path(__file__).resolve().parents[1] / "firmware_shims"
if str(SHIMS) not in sys.path:
    sys.path.append(str(SHIMS))  # appended: never shadows installed modules

import privacy_guard as pg  # noqa: E402
import privacy_guard_fakes as fakes  # noqa: E402

PRIMARY = pg.SWITCH_PATH
BACKUP = pg.SWITCH_PATH + ".bak"


class Module:
    """A fake module as the guard sees it, with every fake's state at hand."""

    def __init__(self, *, gnss_on_at_boot: bool = False, switch: bool | None = None, gen: int = 1) -> None:
        self.fs = fakes.FakeFs()
        self.gnss = fakes.FakeGnss(on_at_boot=gnss_on_at_boot)
        self.modem = fakes.FakeModem()
        self.sim = fakes.FakeSim()
        self.uart = fakes.FakeUart()
        if switch is not None:
            self.write_record(PRIMARY, switch, gen)
            self.write_record(BACKUP, switch, gen)
        self.guard = self.new_guard()

    def new_guard(self) -> pg.Guard:
        """A fresh guard on the same flash and hardware: what a reboot looks like to the guard."""
        return pg.Guard(self.gnss, self.store(), self.uart, self.modem, self.sim)

    def store(self) -> pg.SwitchStore:
        return pg.SwitchStore(self.fs, self.fs.open, json)

    def write_record(self, path: str, on: bool, gen: int) -> None:
        self.fs.files[path] = pg.encode_record(json, on, gen).encode()

    def request(self, line: str) -> str:
        self.uart.host_send(line.encode() + b"\n")
        self.guard.tick()
        return self.uart.host_receive().decode()

    def copies(self) -> tuple[tuple[bool, int] | None, tuple[bool, int] | None]:
        return (pg.decode_record(json, self.fs.files.get(PRIMARY)),
                pg.decode_record(json, self.fs.files.get(BACKUP)))


# --- boot ---------------------------------------------------------------------------------------------------

def test_gnss_that_came_on_by_itself_is_turned_off_at_boot_before_anything_else() -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    seen_when_disabled: list[list[str]] = []
    original = module.gnss.gnssEnable

    def spy_enable(opt: int) -> int:
        seen_when_disabled.append(list(module.modem.calls) + list(module.sim.calls))
        return original(opt)

    module.gnss.gnssEnable = spy_enable  # type: ignore[method-assign]
    module.guard.boot()
    assert module.gnss.state == fakes.GNSS_OFF
    assert seen_when_disabled == [[]]  # nothing else on the module was touched first
    assert module.guard.repairs == 1
    assert module.guard.on is False


def test_switch_on_at_boot_leaves_gnss_alone() -> None:
    module = Module(gnss_on_at_boot=True, switch=True)
    module.guard.boot()
    assert module.gnss.state == fakes.GNSS_POSITIONING
    assert module.gnss.enable_calls() == []
    assert ("init", None) not in module.gnss.calls  # allowed, never forced on
    for _ in range(5):
        module.guard.tick()
    assert module.gnss.state == fakes.GNSS_POSITIONING


def test_guard_never_starts_gnss_when_switch_is_on_and_gnss_is_off() -> None:
    module = Module(switch=True)
    module.guard.boot()
    module.guard.tick()
    assert module.gnss.state == fakes.GNSS_OFF
    assert module.gnss.enable_calls() == []


def test_first_boot_without_switch_file_fails_closed_and_writes_off() -> None:
    module = Module(gnss_on_at_boot=True)
    module.guard.boot()
    assert module.gnss.state == fakes.GNSS_OFF
    assert (module.guard.on, module.guard.source, module.guard.error) == (False, "none", pg.FILE_MISSING)
    assert module.copies() == ((False, 1), (False, 1))


@pytest.mark.parametrize(
    "primary_bytes",
    [b"", b'{"gen": 3, "on": fa', b"\xff\xfe garbage", b'{"gen": 3, "on": false, "sum": 1}',
     b'{"gen": 3, "on": 0, "sum": 0}', b"[]", b'{"gen": -1, "on": false, "sum": 0}', b"null"],
    ids=["empty", "torn", "binary", "bad-sum", "on-not-bool", "not-a-map", "negative-gen", "null"],
)
def test_backup_wins_over_a_torn_or_corrupt_primary(primary_bytes: bytes) -> None:
    module = Module(gnss_on_at_boot=True, switch=True, gen=3)
    module.fs.files[PRIMARY] = primary_bytes
    module.guard.boot()
    assert (module.guard.on, module.guard.source, module.guard.error) == (True, "backup", pg.FILE_DAMAGED)
    assert module.gnss.state == fakes.GNSS_POSITIONING
    assert module.copies() == ((True, 4), (True, 4))  # healed: both valid again


def test_bit_flip_that_keeps_valid_json_is_caught_by_the_checksum() -> None:
    module = Module(switch=False, gen=2)
    module.fs.files[PRIMARY] = module.fs.files[PRIMARY].replace(b"false", b"true")
    module.guard.boot()
    assert (module.guard.on, module.guard.source) == (False, "backup")


def test_both_copies_bad_fails_closed() -> None:
    module = Module(gnss_on_at_boot=True, switch=True)
    module.fs.files[PRIMARY] = b'{"on": tr'
    module.fs.files[BACKUP] = b"\x00" * 8
    module.guard.boot()
    assert (module.guard.on, module.guard.source, module.guard.error) == (False, "none", pg.FILE_DAMAGED)
    assert module.gnss.state == fakes.GNSS_OFF
    assert module.copies() == ((False, 1), (False, 1))


def test_newest_valid_copy_wins() -> None:
    module = Module()
    module.write_record(PRIMARY, True, 5)
    module.write_record(BACKUP, False, 4)  # a power cut before the backup caught up
    module.guard.boot()
    assert (module.guard.on, module.guard.source, module.guard.gen) == (True, "primary", 6)
    assert module.copies() == ((True, 6), (True, 6))


def test_newer_backup_beats_an_older_valid_primary() -> None:
    module = Module()
    module.write_record(PRIMARY, True, 4)
    module.write_record(BACKUP, False, 5)
    module.guard.boot()
    assert (module.guard.on, module.guard.source, module.guard.error) == (False, "backup", pg.FILE_DAMAGED)
    assert module.copies() == ((False, 6), (False, 6))


def test_missing_backup_is_rewritten_from_primary() -> None:
    module = Module(switch=False, gen=7)
    del module.fs.files[BACKUP]
    module.guard.boot()
    assert (module.guard.on, module.guard.source, module.guard.error) == (False, "primary", pg.FILE_DAMAGED)
    assert module.copies() == ((False, 8), (False, 8))


def test_clean_boot_does_not_write_flash() -> None:
    module = Module(switch=False)
    module.guard.boot()
    assert module.fs.steps == 0
    assert module.guard.error is None


# --- keeping GNSS off ---------------------------------------------------------------------------------------

def test_gnss_turned_on_after_boot_is_turned_off_at_the_next_tick() -> None:
    module = Module(switch=False)
    module.guard.boot()
    module.gnss.gnssEnable(1)  # another program, or AT+QGPS=1 from the host side
    module.guard.tick()
    assert module.gnss.state == fakes.GNSS_OFF
    assert module.guard.repairs == 1


def test_gnss_firmware_update_is_not_interrupted() -> None:
    module = Module(switch=False)
    module.guard.boot()
    module.gnss.state = pg.GNSS_UPDATING
    module.guard.tick()
    assert module.gnss.enable_calls() == []


def test_unreadable_gnss_state_still_gets_a_disable() -> None:
    module = Module(switch=False)
    module.gnss.fail_state_reads = True
    module.guard.boot()
    assert module.gnss.enable_calls() == [0]
    assert module.guard.repairs == 0  # not counted: nothing was seen running


def test_receiver_that_refuses_to_stop_is_retried_every_tick() -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    module.gnss.ignore_disable = True
    module.guard.boot()
    for _ in range(3):
        module.guard.tick()
    assert module.gnss.enable_calls() == [0, 0, 0, 0]
    assert module.guard.status()["gnss"] == fakes.GNSS_POSITIONING  # reported honestly to the host


def test_raising_disable_is_recorded_not_raised() -> None:
    module = Module(gnss_on_at_boot=True, switch=False)

    def broken(opt: int) -> int:
        raise OSError(5)

    module.gnss.gnssEnable = broken  # type: ignore[method-assign]
    module.guard.boot()
    assert module.guard.error == "gnss-disable-failed"


# --- switching ----------------------------------------------------------------------------------------------

def test_set_on_then_off_persists_each_change() -> None:
    module = Module(switch=False)
    module.guard.boot()
    assert module.guard.set_switch(True) is True
    assert module.copies() == ((True, 2), (True, 2))
    module.gnss.gnssEnable(1)
    assert module.guard.set_switch(False) is True
    assert module.gnss.state == fakes.GNSS_OFF
    assert module.copies() == ((False, 3), (False, 3))


def test_repeating_the_current_switch_spares_the_flash() -> None:
    module = Module(switch=False)
    module.guard.boot()
    assert module.guard.set_switch(False) is True
    assert module.fs.steps == 0


def test_off_applies_at_once_even_when_flash_refuses() -> None:
    module = Module(switch=True)
    module.guard.boot()
    module.gnss.gnssEnable(1)
    module.fs.fail_writes = True
    reply = module.request("PG 4 SET OFF")
    assert reply == "PG 4 ERR persist-failed\r\n"
    assert module.gnss.state == fakes.GNSS_OFF
    status = module.guard.status()
    assert (status["on"], status["persisted"], status["error"]) == (False, False, "persist-failed")


def test_on_is_not_applied_when_flash_refuses() -> None:
    module = Module(switch=False)
    module.guard.boot()
    module.fs.fail_writes = True
    assert module.request("PG 5 SET ON") == "PG 5 ERR persist-failed\r\n"
    assert module.guard.on is False
    module.fs.fail_writes = False
    assert module.request("PG 6 SET ON").startswith("PG 6 ST ")
    assert module.guard.status()["error"] is None


def test_on_that_reached_only_one_copy_is_rolled_back() -> None:
    module = Module(switch=False, gen=4)
    module.guard.boot()
    steps_per_copy = 4  # open, write, close, rename
    module.fs.fail_at_step = module.fs.steps + steps_per_copy + 1  # the backup copy cannot be opened
    assert module.request("PG 1 SET ON") == "PG 1 ERR persist-failed\r\n"
    assert module.guard.on is False and module.guard.error == "persist-failed"
    rebooted = module.new_guard()
    rebooted.boot()
    assert rebooted.on is False  # the half-written ON did not win at the next boot
    assert module.copies() == ((False, 6), (False, 6))


def test_rename_over_existing_file_refused_by_filesystem() -> None:
    module = Module(switch=False)
    module.fs.rename_replaces = False
    module.guard.boot()
    assert module.guard.set_switch(True) is True
    assert module.copies() == ((True, 2), (True, 2))
    assert not any(name.endswith(".tmp") for name in module.fs.files)


def count_save_steps() -> int:
    module = Module(switch=False)
    module.guard.boot()
    module.guard.set_switch(True)
    return module.fs.steps


@pytest.mark.parametrize("cut_after", range(count_save_steps() + 1))
@pytest.mark.parametrize("new_switch", [True, False])
def test_power_cut_at_any_step_of_a_switch_write(cut_after: int, new_switch: bool) -> None:
    module = Module(switch=not new_switch, gen=4)
    module.guard.boot()
    module.fs.cut_power_after = cut_after
    acknowledged = module.guard.set_switch(new_switch)
    # reboot: power is back, flash holds whatever the cut left behind
    module.fs.cut_power_after = -1
    module.gnss.state = fakes.GNSS_POSITIONING  # autogps brings GNSS up again
    rebooted = module.new_guard()
    rebooted.boot()
    assert rebooted.on in (new_switch, not new_switch)
    if acknowledged:
        assert rebooted.on is new_switch
    assert (module.gnss.state == fakes.GNSS_OFF) is (not rebooted.on)
    primary, backup = module.copies()
    assert primary == backup and primary is not None and primary[0] is rebooted.on


# --- the channel --------------------------------------------------------------------------------------------

def test_status_reports_the_guard_state() -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    module.guard.boot()
    module.guard.tick()
    assert module.guard.status() == {
        "on": False, "sim": 1, "gnss": 0, "error": None, "model": "EC200U", "proto": 1, "ticks": 1,
        "source": "primary", "repairs": 1, "persisted": True,
    }


def test_work_per_tick_is_bounded() -> None:
    module = Module(switch=False)
    module.guard.boot()
    requests = b"".join(b"PG %d STATUS\n" % seq for seq in range(1, 21))
    module.uart.host_send(requests)
    module.guard.tick()
    first = module.uart.host_receive()
    assert first.count(b"\r\n") <= pg.MAX_REQUESTS_PER_TICK
    assert len(requests) - len(module.uart.incoming) <= pg.READ_CHUNK
    replies = first
    for _ in range(20):
        module.guard.tick()
        replies += module.uart.host_receive()
    assert [line.split(b" ")[1] for line in replies.split(b"\r\n") if line] == [
        str(seq).encode() for seq in range(1, 21)]


def test_flood_of_garbage_cannot_grow_memory() -> None:
    module = Module(switch=False)
    module.guard.boot()
    module.uart.host_send(b"\xaa" * 5000)
    for _ in range(60):
        module.guard.tick()
        assert module.guard._reader.pending() <= pg.MAX_REQUEST_LINE + pg.READ_CHUNK
    module.uart.host_send(b"\nPG 1 VER\n")
    for _ in range(3):
        module.guard.tick()
    assert module.uart.host_receive().endswith(b"PG 1 VER 1 " + pg.VERSION.encode() + b"\r\n")


def test_broken_channel_does_not_stop_enforcement() -> None:
    module = Module(switch=False)
    module.guard.boot()
    module.uart.fail = True
    module.gnss.gnssEnable(1)
    module.guard.tick()
    assert module.gnss.state == fakes.GNSS_OFF
    assert module.guard.error == "channel-error"


def test_guard_without_channel_still_enforces() -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    guard = pg.Guard(module.gnss, module.store(), None)
    guard.boot()
    guard.tick()
    assert module.gnss.state == fakes.GNSS_OFF
    assert guard.status()["model"] is None and guard.status()["sim"] is None


def test_identifiers_are_never_read_nor_sent() -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    module.guard.boot()
    requests = ("PG 1 VER", "PG 2 STATUS", "PG 3 SET ON", "PG 4 SET OFF")
    wire = "".join(module.request(line) for line in requests)
    assert set(module.modem.calls) <= {"getDevModel"}
    assert set(module.sim.calls) <= {"getStatus"}
    status_lines = [line for line in wire.split("\r\n") if " ST " in line]
    assert len(status_lines) == 3
    status_bytes = b"".join(bytes.fromhex(line.split(" ")[3]) for line in status_lines)
    for identifier in (module.modem.imei, "460001234567890", "89860012345678901234"):
        assert identifier.encode() not in status_bytes


@pytest.mark.parametrize("model", [-1, "X" * 33, None])
def test_unusable_model_answer_becomes_null(model: Any) -> None:
    module = Module(switch=False)
    module.modem.model = model
    module.guard.boot()
    assert module.guard.status()["model"] is None


# --- the loop and main.py -----------------------------------------------------------------------------------

def test_run_keeps_ticking_after_an_unexpected_error() -> None:
    module = Module(switch=False)
    module.guard.boot()
    clock = fakes.FakeClock()
    original_tick = module.guard.tick
    calls = {"n": 0}

    def flaky_tick() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        original_tick()

    module.guard.tick = flaky_tick  # type: ignore[method-assign]
    pg.run(module.guard, clock.sleep_ms, tick_ms=200, max_ticks=5)
    assert calls["n"] == 5 and clock.now_ms == 1000
    assert module.guard.error == "tick-failed"


class FakeThreads:
    def __init__(self) -> None:
        self.started: list[tuple[Any, tuple[Any, ...]]] = []

    def start_new_thread(self, function: Any, args: tuple[Any, ...]) -> int:
        self.started.append((function, args))
        return len(self.started)


def run_main(monkeypatch: pytest.MonkeyPatch, module: Module, uart_factory: Any, *,
             has_gnss: bool = True, app_dir: Path | None = None) -> FakeThreads:
    threads = FakeThreads()
    machine = types.SimpleNamespace(UART=uart_factory)
    real_modules = {"quecgnss": module.gnss if has_gnss else None, "modem": module.modem, "sim": module.sim,
                    "uos": module.fs, "ujson": json, "utime": fakes.FakeClock(), "machine": machine,
                    "_thread": threads}
    for name, fake in real_modules.items():
        monkeypatch.setitem(sys.modules, name, fake)  # None makes "import quecgnss" fail, as without GNSS
    monkeypatch.setattr(sys, "path", list(sys.path) + ([str(app_dir)] if app_dir else []))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    runpy.run_path(str(SHIMS / "main.py"), init_globals={"open": module.fs.open}, run_name="__main__")
    monkeypatch.delitem(sys.modules, "app", raising=False)
    return threads


def test_main_wires_the_real_modules_and_starts_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    threads = run_main(monkeypatch, module, lambda *args: module.uart)
    assert module.gnss.state == fakes.GNSS_OFF
    assert len(threads.started) == 1
    function, (guard, _sleep, tick_ms) = threads.started[0]
    assert function is sys.modules["privacy_guard"].run and tick_ms == 200
    module.uart.host_send(b"PG 1 STATUS\n")
    guard.tick()
    assert module.uart.host_receive().startswith(b"PG 1 ST ")


def test_main_keeps_gnss_off_when_the_guard_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    module = Module(gnss_on_at_boot=True, switch=True)

    def no_uart(*args: Any) -> Any:
        raise OSError(19)

    threads = run_main(monkeypatch, module, no_uart)
    assert module.gnss.state == fakes.GNSS_OFF  # switch unknown to a broken guard: fail closed
    started = [(function.__name__, args) for function, args in threads.started]
    assert started == [("keep_gnss_off", (module.gnss,))]


def test_main_starts_the_application_after_the_guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    marker = tmp_path / "app-ran"
    (tmp_path / "app.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    threads = run_main(monkeypatch, module, lambda *args: module.uart, app_dir=tmp_path)
    assert marker.exists() and len(threads.started) == 1


def test_main_without_builtin_gnss_only_starts_the_application(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    module = Module(gnss_on_at_boot=True, switch=False)
    marker = tmp_path / "app-ran"
    (tmp_path / "app.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    threads = run_main(monkeypatch, module, lambda *args: module.uart, has_gnss=False, app_dir=tmp_path)
    assert marker.exists() and threads.started == []
    assert module.gnss.calls == []
