"""The simulator through pyserial's ``serial_for_url("sim://...")``: real threads, short real timeouts."""

from __future__ import annotations

import threading
import time

import pytest
import serial

from agent import sim
from agent.sim.modem import BOOT_S
from hil_tests.conftest import read_until


@pytest.fixture
def name(sim_name: str) -> str:
    return sim_name  # registered and forgotten by conftest's fixture


def url(name: str, port: str = "at", **extra: object) -> str:
    options = "".join(f"&{key}={value}" for key, value in extra.items())
    return f"sim://ec25?name={name}&port={port}{options}"


def test_register_is_explicit_idempotent_and_reversible() -> None:
    sim.unregister()
    with pytest.raises(ValueError):
        serial.serial_for_url("sim://ec25?name=unregistered")
    sim.register()
    sim.register()
    assert serial.protocol_handler_packages.count("agent.sim") == 1
    sim.unregister()
    assert "agent.sim" not in serial.protocol_handler_packages
    sim.register()


def test_ports_of_one_name_share_one_modem(name: str) -> None:
    at = serial.serial_for_url(url(name, seed=4, ttff=0), timeout=1)
    at2 = serial.serial_for_url(url(name, "at2"), timeout=1)
    at.write(b"AT+QGPS=1\r")
    assert read_until(at, b"OK\r\n") == b"AT+QGPS=1\r\r\nOK\r\n"
    at2.write(b"AT+QGPS?\r")
    assert read_until(at2, b"OK\r\n") == b"AT+QGPS?\r\r\n+QGPS: 1\r\n\r\nOK\r\n"
    modem = sim.modem_for(name)
    assert modem.seed == 4 and modem.state.gnss_on
    with pytest.raises(LookupError):
        sim.modem_for(name + "-none")


def test_read_honours_the_timeout_and_returns_short(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=0.2)
    assert port.read(10) == b""
    port.timeout = 0
    assert port.read(10) == b""
    port.write(b"AT\r")
    port.timeout = 1
    assert port.read(100) == b"AT\r\r\nOK\r\n"  # short read: everything the modem had, at the timeout


def test_a_delayed_response_wakes_the_reader_when_due(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=5)
    sim.modem_for(name).faults.delay("AT", 0.3)
    port.write(b"ATE0\r\nAT\r")
    assert read_until(port, b"OK\r\n\r\nOK\r\n") == b"ATE0\r\r\nOK\r\n\r\nOK\r\n"


def test_one_reader_thread_and_one_writer_thread(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=0.1)
    received = bytearray()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            received.extend(port.read(64))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(50):
            port.write(b"AT+CSQ\r")
        deadline = time.monotonic() + 5
        while received.count(b"OK\r\n") < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(2)
    assert received == b"AT+CSQ\r\r\n+CSQ: 24,99\r\n\r\nOK\r\n" * 50


def test_cancel_read_and_close_wake_a_blocked_reader(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=None)
    results: list[bytes] = []
    thread = threading.Thread(target=lambda: results.append(port.read(10)))
    thread.start()
    time.sleep(0.05)
    port.cancel_read()
    thread.join(2)
    assert results == [b""] and not thread.is_alive()


def test_reset_input_buffer_discards_ready_output(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=0.2)
    port.write(b"ATI\r")
    assert port.in_waiting > 0
    port.reset_input_buffer()
    assert port.in_waiting == 0 and port.read(10) == b""


def test_unplug_makes_reads_writes_and_open_fail_until_replug(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=2)
    modem = sim.modem_for(name)
    failures: list[Exception] = []

    def blocked_reader() -> None:
        try:
            port.read(10)
        except serial.SerialException as exc:
            failures.append(exc)

    thread = threading.Thread(target=blocked_reader)
    thread.start()
    time.sleep(0.05)
    modem.unplug()
    thread.join(2)
    assert len(failures) == 1 and "disconnected" in str(failures[0])
    with pytest.raises(serial.SerialException):
        port.write(b"AT\r")
    with pytest.raises(serial.SerialException):
        serial.serial_for_url(url(name))
    modem.replug()
    with pytest.raises(serial.SerialException):  # the old handle belongs to the vanished device
        port.read(1)
    again = serial.serial_for_url(url(name), timeout=1)
    again.write(b"AT\r")
    assert read_until(again, b"OK\r\n") == b"AT\r\r\nOK\r\n"


def test_cfun_reboot_drops_the_port_then_it_returns_with_the_boot_urcs(name: str) -> None:
    port = serial.serial_for_url(url(name), timeout=1)
    port.write(b"AT+CFUN=1,1\r")
    assert read_until(port, b"OK\r\n") == b"AT+CFUN=1,1\r\r\nOK\r\n"
    with pytest.raises(serial.SerialException):
        while True:
            port.read(1)
    deadline = time.monotonic() + BOOT_S + 3
    while True:
        try:
            port = serial.serial_for_url(url(name), timeout=1)
            break
        except serial.SerialException:
            assert time.monotonic() < deadline, "the port did not come back"
            time.sleep(0.05)
    assert read_until(port, b"PB DONE\r\n").startswith(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n")


def test_rogue_client_on_at2_turns_gnss_on_and_the_nmea_port_starts_talking(name: str) -> None:
    nmea = serial.serial_for_url(url(name, "nmea", ttff=0), timeout=0.2)
    assert nmea.read(100) == b""
    nmea.timeout = 1.5
    rogue = serial.serial_for_url(url(name, "at2"), timeout=1)
    rogue.write(b"AT+QGPS=1\r")
    assert read_until(rogue, b"OK\r\n").endswith(b"OK\r\n")
    data = read_until(nmea, b"$GPRMC", timeout_s=3)
    assert b"$GPGGA," in data and sim.modem_for(name).state.gnss_on


@pytest.mark.parametrize(
    "bad",
    [
        "sim://ec25?port=usb0",
        "sim://ec25?seed=x",
        "sim://ec25?ttff=-1",
        "sim://ec25?ttff=nan",
        "sim://ec25?colour=red",
        "sim://sim900?",
    ],
)
def test_bad_urls_raise_serial_exception_naming_the_problem(name: str, bad: str) -> None:
    with pytest.raises(serial.SerialException, match=r"sim://|model"):
        serial.serial_for_url(f"{bad}&name={name}")
