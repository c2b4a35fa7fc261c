"""Policy parsing: every key works as named, every bad value is a ConfigError naming its key (never its value)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.privacy import policy as policy_module
from agent.privacy.policy import EMPTY_POLICY, POLICY_TABLES, Policy, Purpose, SinkSpec, Subject, parse_policy
from tests.privacy_support import doc, policy


def test_the_issue_example_parses_with_defaults() -> None:
    parsed = policy()
    assert POLICY_TABLES == ("policy", "purpose", "sink", "subject")
    assert (parsed.version, parsed.home_region, parsed.pseudonym_epoch_s, parsed.coarsening) == \
        ("2020-09-08", "CN", 86400, "grid")
    assert parsed.subject == Subject(minor=False, guardian_consent=False)
    fleet = parsed.purpose("fleet-tracking")
    assert isinstance(fleet, Purpose)
    assert (fleet.grid_m, fleet.time_bucket_s, fleet.max_points_per_day, fleet.retention_days) == (2000, 900, 96, 30)
    assert fleet.fields == () and fleet.sinks == ("operator", "abroad") and not fleet.is_exception
    assert fleet.sink_terms == (("operator", "Example Fleet Ltd", "CN"), ("abroad", "Example GmbH", "EU"))
    malfunction = parsed.purpose("malfunction")
    assert malfunction is not None and malfunction.is_exception and malfunction.fields == ("hdop", "satellites")
    assert parsed.purpose("nothing") is None and parsed.sink("nothing") is None


def test_sink_urls_are_split() -> None:
    parsed = policy(sink=[
        {"name": "f", "url": "file:///var/out.jsonl", "recipient": "R", "region": "CN"},
        {"name": "m", "url": "mqtt://broker:1884/a/b", "recipient": "R", "region": "CN", "client_id": "gw-1"},
        {"name": "ms", "url": "mqtts://broker/a", "recipient": "R", "region": "CN", "ca_file": "/ca.pem",
         "cert_file": "/c.pem", "key_file": "/k.pem"},
        {"name": "h", "url": "https://api.example.com/v1/up?x=1", "recipient": "R", "region": "CN"},
        {"name": "operator", "url": "https://api.example.com:8443", "recipient": "R", "region": "CN"},
        {"name": "abroad", "url": "file:///var/abroad.jsonl", "recipient": "R", "region": "EU"},
    ])
    sinks = {sink.name: sink for sink in parsed.sinks}
    assert sinks["f"] == SinkSpec("f", "file:///var/out.jsonl", "file", "R", "CN", path="/var/out.jsonl")
    assert (sinks["m"].host, sinks["m"].port, sinks["m"].topic, sinks["m"].client_id) == ("broker", 1884, "a/b", "gw-1")
    assert (sinks["ms"].port, sinks["ms"].ca_file, sinks["ms"].cert_file, sinks["ms"].key_file) == \
        (8883, "/ca.pem", "/c.pem", "/k.pem")
    assert (sinks["h"].port, sinks["h"].path) == (443, "/v1/up?x=1")
    assert (sinks["operator"].port, sinks["operator"].path) == (8443, "/")


def test_every_purpose_key_is_read() -> None:
    purpose = {"name": "p-1", "description": "Text", "legal_basis": "consent",
               "fields": ["altitude", "speed", "course", "satellites", "hdop", "cell"], "grid_m": 200,
               "time_bucket_s": 60, "max_points_per_day": 4, "retention_days": 7, "sinks": ["operator"]}
    parsed = policy(purpose=[purpose], policy={"version": "v", "home_region": "EU", "pseudonym_epoch_s": 3600,
                                              "coarsening": "laplace"},
                    subject={"minor": True, "guardian_consent": True})
    read = parsed.purposes[0]
    assert (read.name, read.description, read.legal_basis, read.grid_m, read.time_bucket_s,
            read.max_points_per_day, read.retention_days, read.sinks) == \
        ("p-1", "Text", "consent", 200, 60, 4, 7, ("operator",))
    assert read.fields == ("altitude", "speed", "course", "satellites", "hdop", "cell")
    assert (parsed.home_region, parsed.pseudonym_epoch_s, parsed.coarsening) == ("EU", 3600, "laplace")
    assert parsed.subject == Subject(minor=True, guardian_consent=True)


def test_no_policy_tables_gives_the_empty_policy() -> None:
    assert parse_policy({}) is EMPTY_POLICY
    assert parse_policy({"modem": {"port": "x"}}) is EMPTY_POLICY
    assert EMPTY_POLICY.purposes == () and EMPTY_POLICY.sinks == ()


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return mutate


BAD = [
    (_delete(("policy",)), "policy: the [policy] table is required"),
    (_set(("policy",), "2020"), "policy: must be a table"),
    (_delete(("policy", "version")), "policy.version: is required"),
    (_delete(("policy", "home_region")), "policy.home_region: is required"),
    (_set(("policy", "version"), 5), "policy.version: must be a string"),
    (_set(("policy", "version"), " "), "policy.version: must be non-empty"),
    (_set(("policy", "home_region"), "cn"), "policy.home_region: must be an upper-case region code"),
    (_set(("policy", "pseudonym_epoch_s"), 0), "policy.pseudonym_epoch_s: must be at least 60"),
    (_set(("policy", "pseudonym_epoch_s"), True), "policy.pseudonym_epoch_s: must be an integer"),
    (_set(("policy", "coarsening"), "fudge"), 'policy.coarsening: must be one of "grid", "laplace"'),
    (_set(("policy", "cross_border_consent"), True), "policy.cross_border_consent: unknown key"),
    (_set(("purpose",), {"name": "x"}), "purpose: must be an array of tables"),
    (_set(("purpose", 0, "grid_m"), 199), "purpose[0].grid_m: must be at least 200"),
    (_set(("purpose", 0, "grid_m"), 2000.0), "purpose[0].grid_m: must be an integer"),
    (_set(("purpose", 0, "grid_m"), 10**9), "purpose[0].grid_m: must be at most 1000000"),
    (_set(("purpose", 0, "time_bucket_s"), 0), "purpose[0].time_bucket_s: must be at least 1"),
    (_set(("purpose", 0, "max_points_per_day"), 0), "purpose[0].max_points_per_day: must be at least 1"),
    (_set(("purpose", 0, "retention_days"), 0), "purpose[0].retention_days: must be at least 1"),
    (_set(("purpose", 0, "name"), "Fleet"), "purpose[0].name: must be a name"),
    (_set(("purpose", 1, "name"), "fleet-tracking"), "purpose[1].name: another [[purpose]] already has this name"),
    (_set(("purpose", 0, "description"), ""), "purpose[0].description: must be non-empty"),
    (_set(("purpose", 0, "description"), "a\nb"), "purpose[0].description: must be non-empty text"),
    (_set(("purpose", 0, "legal_basis"), "contract"), 'purpose[0].legal_basis: must be "consent" or'),
    (_set(("purpose", 0, "legal_basis"), "exception:"), "purpose[0].legal_basis: must be"),
    (_set(("purpose", 0, "fields"), ["imei"]), "purpose[0].fields[0]: must be one of"),
    (_set(("purpose", 0, "fields"), "hdop"), "purpose[0].fields: must be a list of strings"),
    (_set(("purpose", 0, "fields"), ["hdop", "hdop"]), "purpose[0].fields: lists the same entry twice"),
    (_set(("purpose", 1, "fields"), ["altitude"]), "purpose[1].fields: an exception purpose never carries location"),
    (_set(("purpose", 1, "fields"), ["cell"]), "purpose[1].fields: an exception purpose never carries location"),
    (_set(("purpose", 0, "sinks"), ["nowhere"]), "purpose[0].sinks[0]: names no [[sink]]"),
    (_set(("purpose", 0, "sinks"), []), "purpose[0].sinks: must name at least one sink"),
    (_set(("purpose", 0, "sinks"), ["BAD NAME"]), "purpose[0].sinks[0]: must be a name"),
    (_set(("purpose", 0, "colour"), "red"), "purpose[0].colour: unknown key"),
    (_delete(("purpose", 0, "description")), "purpose[0].description: is required"),
    (_delete(("purpose", 0, "sinks")), "purpose[0].sinks: is required"),
    (_set(("purpose", 0), "fleet"), "purpose[0]: must be a table"),
    (_set(("sink", 1, "name"), "operator"), "sink[1].name: another [[sink]] already has this name"),
    (_set(("sink", 0, "url"), "ftp://host/x"), 'sink[0].url scheme: must be one of "file"'),
    (_set(("sink", 0, "url"), "file://host/x"), "sink[0].url: must be file:///absolute/path"),
    (_set(("sink", 0, "url"), "file:///var/dir/"), "sink[0].url: must be file:///absolute/path"),
    (_set(("sink", 0, "url"), "file:///a b"), "sink[0].url: must not contain spaces"),
    (_set(("sink", 1, "url"), "mqtts://broker:8883"), "sink[1].url: must end with a topic"),
    (_set(("sink", 1, "url"), "mqtts://broker/a/+/b"), "sink[1].url: must end with a topic"),
    (_set(("sink", 1, "url"), "mqtts://broker/a/#"), "sink[1].url: must not carry a fragment"),
    (_set(("sink", 1, "url"), "mqtts://broker:99999/t"), "sink[1].url: is not a valid URL"),
    (_set(("sink", 1, "url"), "mqtts://broker:0/t"), "sink[1].url: must name a host and a port"),
    (_set(("sink", 1, "url"), "mqtts:///t"), "sink[1].url: must name a host"),
    (_set(("sink", 1, "url"), "mqtt://b/t?q=1"), "sink[1].url: must not carry"),
    (_set(("sink", 0, "url"), "https://user:hunter2@host/x"), "sink[0].url: must not carry"),
    (_set(("sink", 0, "ca_file"), "/ca.pem"), "sink[0].ca_file: TLS options apply only"),
    (_set(("sink", 1, "ca_file"), "ca.pem"), "sink[1].ca_file: must be an absolute path"),
    (_set(("sink", 1, "cert_file"), "/c.pem"), "sink[1].key_file: is required"),
    (_set(("sink", 1, "key_file"), "/k.pem"), "sink[1].cert_file: is required"),
    (_set(("sink", 0, "client_id"), "x"), "sink[0].client_id: applies only to mqtt"),
    (_set(("sink", 1, "client_id"), "has space"), "sink[1].client_id: must be 1-64 characters"),
    (_set(("sink", 0, "region"), "china"), "sink[0].region: must be an upper-case region code"),
    (_set(("sink", 0, "recipient"), 5), "sink[0].recipient: must be a string"),
    (_set(("sink", 0, "password"), "x"), "sink[0].password: unknown key"),
    (_delete(("sink", 0, "region")), "sink[0].region: is required"),
    (_set(("sink",), [5]), "sink[0]: must be a table"),
    (_set(("subject",), {"minor": "yes"}), "subject.minor: must be true or false"),
    (_set(("subject",), {"guardian_consent": 1}), "subject.guardian_consent: must be true or false"),
    (_set(("subject",), {"age": 12}), "subject.age: unknown key"),
    (_set(("subject",), []), "subject: must be a table"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD, ids=[message for _, message in BAD])
def test_bad_values_name_their_key(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    document = doc()
    mutate(document)
    with pytest.raises(ConfigError) as raised:
        parse_policy(document)
    assert str(raised.value).startswith(message)
    assert "hunter2" not in str(raised.value) and "broker" not in str(raised.value)


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.booleans(), st.none()))
def test_grid_is_never_below_200(value: object) -> None:
    document = doc()
    document["purpose"][0]["grid_m"] = value
    try:
        parsed = parse_policy(document)
    except ConfigError as error:
        assert str(error).startswith("purpose[0].grid_m: ")
    else:
        assert isinstance(value, int) and not isinstance(value, bool)
        assert parsed.purposes[0].grid_m == value >= 200


def _hash_after(mutate: Callable[[dict[str, Any]], None]) -> str:
    document = doc()
    mutate(document)
    fleet = parse_policy(document).purpose("fleet-tracking")
    assert fleet is not None
    return fleet.text_hash


@pytest.mark.parametrize("mutate", [
    _set(("purpose", 0, "description"), "Something else"),
    _set(("purpose", 0, "legal_basis"), "exception:other"),
    _set(("purpose", 0, "fields"), ["hdop"]),
    _set(("purpose", 0, "grid_m"), 1000),
    _set(("purpose", 0, "time_bucket_s"), 60),
    _set(("purpose", 0, "max_points_per_day"), 10),
    _set(("purpose", 0, "retention_days"), 31),
    _set(("purpose", 0, "sinks"), ["operator"]),
    _set(("sink", 0, "recipient"), "Another Ltd"),
    _set(("sink", 1, "region"), "US"),
])
def test_text_hash_covers_what_the_user_consents_to(mutate: Callable[[dict[str, Any]], None]) -> None:
    original = policy().purpose("fleet-tracking")
    assert original is not None
    assert len(original.text_hash) == 64 and original.text_hash == _hash_after(lambda document: None)
    assert _hash_after(mutate) != original.text_hash


def test_text_hash_ignores_what_the_user_is_not_told() -> None:
    original = _hash_after(lambda document: None)
    assert _hash_after(_set(("sink", 0, "url"), "file:///elsewhere.jsonl")) == original
    assert _hash_after(_set(("policy", "version"), "2021-01-01")) == original
    assert _hash_after(_set(("purpose", 1, "description"), "Other purpose")) == original


def test_region_text_hash_changes_with_recipients_there() -> None:
    parsed = policy()
    changed = policy(sink=[dict(sink, recipient="New GmbH") if sink["name"] == "abroad" else sink
                           for sink in doc()["sink"]])
    assert parsed.region_text_hash("EU") != changed.region_text_hash("EU")
    assert parsed.region_text_hash("CN") == changed.region_text_hash("CN")


def test_policy_is_frozen() -> None:
    parsed = policy()
    with pytest.raises(AttributeError):
        parsed.version = "x"  # type: ignore[misc]
    assert isinstance(parsed, Policy)


def test_the_shipped_example_parses_and_shows_every_key() -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "policy.toml"
    text = path.read_text(encoding="utf-8")
    parsed = parse_policy(tomllib.loads(text))
    assert [purpose.name for purpose in parsed.purposes] == ["fleet-tracking", "malfunction"]
    assert [sink.scheme for sink in parsed.sinks] == ["file", "mqtts"]
    written = set(re.findall(r"^([a-z_]+) = ", text, flags=re.MULTILINE))
    for keys in (policy_module._POLICY_KEYS, policy_module._PURPOSE_KEYS, policy_module._SINK_KEYS,
                 policy_module._SUBJECT_KEYS):
        assert keys <= written
