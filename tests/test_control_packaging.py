"""The shipped systemd unit and sysusers snippet say what docs/deploy.md promises."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parent.parent / "packaging"


def unit_settings(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values in order; systemd allows a key more than once, so no configparser."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a setting: {line!r}"
        settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


@pytest.fixture(scope="module")
def service() -> dict[tuple[str, str], list[str]]:
    return unit_settings((PACKAGING / "privacy-agent.service").read_text())


@pytest.mark.parametrize(("key", "value"), [
    ("Type", "notify"),
    ("NotifyAccess", "main"),
    ("ExecStart", "/usr/local/bin/privacy-agent run --config /etc/privacy-agent/config.toml"),
    ("Restart", "on-failure"),
    ("StateDirectory", "privacy-agent"),
    ("StateDirectoryMode", "0700"),
    ("RuntimeDirectory", "privacy-agent"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("NoNewPrivileges", "yes"),
    ("DevicePolicy", "closed"),
    ("DeviceAllow", "char-ttyUSB rw"),
    ("User", "privacy-agent"),
])
def test_the_service_has_the_promised_setting(service: dict[tuple[str, str], list[str]], key: str,
                                              value: str) -> None:
    assert service[("Service", key)] == [value]


def test_serial_access_comes_from_dialout_and_the_control_group_is_joined(
        service: dict[tuple[str, str], list[str]]) -> None:
    [groups] = service[("Service", "SupplementaryGroups")]
    assert set(groups.split()) == {"dialout", "privacy"}


def test_a_watchdog_is_configured(service: dict[tuple[str, str], list[str]]) -> None:
    [watchdog] = service[("Service", "WatchdogSec")]
    assert watchdog.rstrip("s").isdigit() and int(watchdog.rstrip("s")) > 0


def test_nothing_hides_the_serial_ports(service: dict[tuple[str, str], list[str]]) -> None:
    assert ("Service", "PrivateDevices") not in service
    assert ("Service", "PrivateUsers") not in service


def test_the_syscall_filter_still_lets_the_agent_hand_its_socket_to_the_group(
        service: dict[tuple[str, str], list[str]]) -> None:
    filters = service[("Service", "SystemCallFilter")]
    assert filters[0] == "@system-service"  # an allow list: later entries add (plain) or remove (~)
    last_deny = max(index for index, value in enumerate(filters) if "~@privileged" in value.split())
    assert any(value == "@chown" for value in filters[last_deny + 1:])  # fchownat, used by ControlServer


def test_sysusers_creates_the_user_and_the_control_group() -> None:
    lines = [line.split() for line in (PACKAGING / "privacy-agent.sysusers").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert ["g", "privacy", "-"] in lines
    assert ["m", "privacy-agent", "privacy"] in lines
    assert ["m", "privacy-agent", "dialout"] in lines
    assert any(fields[:2] == ["u", "privacy-agent"] for fields in lines)
