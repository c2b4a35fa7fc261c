"""The privacy policy from config: purposes, sinks, the subject, and the hash of each purpose's text.

Strategy: ``parse_policy`` takes the whole parsed TOML document and reads only the ``[policy]``, ``[[purpose]]``,
``[[sink]]`` and ``[subject]`` tables (``POLICY_TABLES``); every other table belongs to someone else. Each table is
checked key by key against a small schema: unknown keys and bad values raise :class:`ConfigError` whose message
starts with the key's place (``purpose[1].grid_m: must be at least 200``; array indexes count from 0, as in the
file's array order) and never repeats the value. The result is a tree of frozen dataclasses.

A document without any of the four tables gives :data:`EMPTY_POLICY`: no purposes, so nothing can ever be
uploaded (fail closed). As soon as one of them is present, ``[policy]`` with ``version`` and ``home_region`` is
required.

An exception purpose (``legal_basis = "exception:<name>"``) never carries location: its ``fields`` may not name a
location-bearing field (:data:`LOCATION_FIELDS`), the gate refuses it any location-bearing record, and
``deidentify`` refuses to build one for it. Its ``grid_m`` and the other precision keys are accepted (and
hashed) but never used.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from agent.errors import ConfigError

POLICY_TABLES = ("policy", "purpose", "sink", "subject")

#: Extra fields a purpose may allow beyond the always-present position, time and accuracy.
ALLOWED_FIELDS = ("altitude", "speed", "course", "satellites", "hdop", "cell")
#: Fields that say where the device is or how it moves: never allowed for an exception purpose.
LOCATION_FIELDS = frozenset({"altitude", "speed", "course", "cell"})
COARSENINGS = ("grid", "laplace")
SINK_SCHEMES = ("file", "mqtt", "mqtts", "https")
TLS_SCHEMES = frozenset({"mqtts", "https"})
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "https": 443}

MIN_GRID_M = 200
MAX_GRID_M = 1_000_000  # beyond this a "cell" spans a continent and the local projection means nothing
#: Purpose and sink names: safe tokens. Regions: upper-case codes ("CN", "EU", "US-CA").
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
REGION_PATTERN = re.compile(r"[A-Z][A-Z0-9-]{1,15}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_EXCEPTION = re.compile(r"exception:([a-z0-9][a-z0-9-]{0,63})")
_MAX_TEXT = 2000


@dataclass(frozen=True)
class SinkSpec:
    """One upload destination. ``host``/``port`` are None for ``file``; ``path`` is the file path, the MQTT topic
    or the HTTPS path (with its query). TLS paths are only remembered here, never opened; the sink adapter
    takes ``url`` and the TLS options as they are."""

    name: str
    url: str
    scheme: str
    recipient: str
    region: str
    host: str | None = None
    port: int | None = None
    path: str = ""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_id: str | None = None

    @property
    def topic(self) -> str:
        """The MQTT topic (the URL's path without its leading slash)."""
        return self.path.lstrip("/")


@dataclass(frozen=True)
class Purpose:
    """A declared purpose. ``sink_terms`` are (name, recipient, region) of its sinks, in its ``sinks`` order: they
    are part of what the user consents to, so they are part of ``text_hash``."""

    name: str
    description: str
    legal_basis: str = "consent"
    fields: tuple[str, ...] = ()
    grid_m: int = 2000
    time_bucket_s: int = 900
    max_points_per_day: int = 96
    retention_days: int = 30
    sinks: tuple[str, ...] = ()
    sink_terms: tuple[tuple[str, str, str], ...] = ()
    text_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_hash", _purpose_hash(self))

    @property
    def is_exception(self) -> bool:
        """True for a declared legal-basis exception: no consent needed, and never any location."""
        return self.legal_basis.startswith("exception:")


@dataclass(frozen=True)
class Subject:
    """Who the data is about: a minor needs guardian consent (from config or a recorded consent change)."""

    minor: bool = False
    guardian_consent: bool = False


@dataclass(frozen=True)
class Policy:
    version: str
    home_region: str
    pseudonym_epoch_s: int = 86400
    coarsening: str = "grid"
    purposes: tuple[Purpose, ...] = ()
    sinks: tuple[SinkSpec, ...] = ()
    subject: Subject = Subject()

    def purpose(self, name: str) -> Purpose | None:
        return next((purpose for purpose in self.purposes if purpose.name == name), None)

    def sink(self, name: str) -> SinkSpec | None:
        return next((sink for sink in self.sinks if sink.name == name), None)

    def region_text_hash(self, region: str) -> str:
        """SHA-256 hex over the recipients in ``region`` (name, recipient, region of each sink there, sorted):
        what a cross-border consent for that region is given to, so a new recipient needs a fresh consent."""
        terms = sorted([sink.name, sink.recipient, sink.region] for sink in self.sinks if sink.region == region)
        return _sha256_json({"region": region, "recipients": terms})


EMPTY_POLICY = Policy(version="none", home_region="NONE")


def _sha256_json(value: object) -> str:
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _purpose_hash(purpose: Purpose) -> str:
    """Canonical encoding (sorted-key compact JSON) of everything the user is told about the purpose."""
    return _sha256_json({
        "name": purpose.name,
        "description": purpose.description,
        "legal_basis": purpose.legal_basis,
        "fields": sorted(purpose.fields),
        "grid_m": purpose.grid_m,
        "time_bucket_s": purpose.time_bucket_s,
        "max_points_per_day": purpose.max_points_per_day,
        "retention_days": purpose.retention_days,
        "sinks": [list(term) for term in purpose.sink_terms],
    })


# -- value checks: each takes (place, value) and returns the checked value or raises ConfigError -------------
def _fail(place: str, problem: str) -> ConfigError:
    return ConfigError(f"{place}: {problem}")


def _text(place: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(place, "must be a string")
    if not value.strip() or len(value) > _MAX_TEXT or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _fail(place, f"must be non-empty text of at most {_MAX_TEXT} characters, without control characters")
    return value


def _name(place: str, value: object) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise _fail(place, "must be a name of 1-64 characters: a-z, 0-9 and '-', starting with a letter or digit")
    return value


def _region(place: str, value: object) -> str:
    if not isinstance(value, str) or not REGION_PATTERN.fullmatch(value):
        raise _fail(place, "must be an upper-case region code such as \"CN\" or \"EU\"")
    return value


def _integer(place: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(place, "must be an integer")
    if value < low:
        raise _fail(place, f"must be at least {low}")
    if value > high:
        raise _fail(place, f"must be at most {high}")
    return value


def _boolean(place: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(place, "must be true or false")
    return value


def _choice(place: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _fail(place, "must be one of " + ", ".join(f'"{choice}"' for choice in choices))
    return str(value)


def _string_list(place: str, value: object, item: Callable[[str, object], str]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(place, "must be a list of strings")
    items = tuple(item(f"{place}[{index}]", element) for index, element in enumerate(value))
    if len(set(items)) != len(items):
        raise _fail(place, "lists the same entry twice")
    return items


def _absolute_path(place: str, value: object) -> str:
    path = _text(place, value)
    if not path.startswith("/"):
        raise _fail(place, "must be an absolute path")
    return path


def _table(place: str, value: object, known: frozenset[str], required: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(place, "must be a table")
    for key in value:
        if key not in known:
            raise _fail(f"{place}.{key}", "unknown key (known: " + ", ".join(sorted(known)) + ")")
    for key in sorted(required - value.keys()):
        raise _fail(f"{place}.{key}", "is required")
    return value


def _array_of_tables(place: str, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(place, f"must be an array of tables ([[{place}]])")
    return value


_Named = TypeVar("_Named", Purpose, SinkSpec)


# -- tables ------------------------------------------------------------------------------------------------
_POLICY_KEYS = frozenset({"version", "home_region", "pseudonym_epoch_s", "coarsening"})
_PURPOSE_KEYS = frozenset({"name", "description", "legal_basis", "fields", "grid_m", "time_bucket_s",
                           "max_points_per_day", "retention_days", "sinks"})
_SINK_KEYS = frozenset({"name", "url", "recipient", "region", "ca_file", "cert_file", "key_file", "client_id"})
_SUBJECT_KEYS = frozenset({"minor", "guardian_consent"})


def parse_policy(doc: Mapping[str, Any]) -> Policy:
    """The policy in a whole parsed TOML document; raises :class:`ConfigError` naming the first bad key."""
    if not any(table in doc for table in POLICY_TABLES):
        return EMPTY_POLICY
    if "policy" not in doc:
        raise _fail("policy", "the [policy] table is required with [[purpose]], [[sink]] or [subject]")
    head = _table("policy", doc.get("policy"), _POLICY_KEYS, frozenset({"version", "home_region"}))
    sinks = _unique("sink", [_sink(f"sink[{index}]", table)
                             for index, table in enumerate(_array_of_tables("sink", doc.get("sink", [])))])
    by_name = {sink.name: sink for sink in sinks}
    purposes = _unique("purpose", [_purpose(f"purpose[{index}]", table, by_name)
                                   for index, table in enumerate(_array_of_tables("purpose", doc.get("purpose", [])))])
    return Policy(
        version=_text("policy.version", head["version"]),
        home_region=_region("policy.home_region", head["home_region"]),
        pseudonym_epoch_s=_integer("policy.pseudonym_epoch_s", head.get("pseudonym_epoch_s", 86400), 60, 366 * 86400),
        coarsening=_choice("policy.coarsening", head.get("coarsening", "grid"), COARSENINGS),
        purposes=tuple(purposes),
        sinks=tuple(sinks),
        subject=_subject(doc.get("subject", {})),
    )


def _unique(table: str, items: list[_Named]) -> list[_Named]:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.name in seen:
            raise _fail(f"{table}[{index}].name", f"another [[{table}]] already has this name")
        seen.add(item.name)
    return items


def _purpose(place: str, value: object, sinks: Mapping[str, SinkSpec]) -> Purpose:
    table = _table(place, value, _PURPOSE_KEYS, frozenset({"name", "description", "legal_basis", "sinks"}))
    legal_basis = _legal_basis(f"{place}.legal_basis", table["legal_basis"])
    fields = _string_list(f"{place}.fields", table.get("fields", []),
                          lambda where, item: _choice(where, item, ALLOWED_FIELDS))
    if legal_basis.startswith("exception:") and LOCATION_FIELDS.intersection(fields):
        raise _fail(f"{place}.fields", "an exception purpose never carries location: remove "
                    + ", ".join(sorted(LOCATION_FIELDS.intersection(fields))))
    sink_names = _string_list(f"{place}.sinks", table["sinks"], _name)
    if not sink_names:
        raise _fail(f"{place}.sinks", "must name at least one sink")
    for index, sink_name in enumerate(sink_names):
        if sink_name not in sinks:
            raise _fail(f"{place}.sinks[{index}]", "names no [[sink]]")
    return Purpose(
        name=_name(f"{place}.name", table["name"]),
        description=_text(f"{place}.description", table["description"]),
        legal_basis=legal_basis,
        fields=fields,
        grid_m=_integer(f"{place}.grid_m", table.get("grid_m", 2000), MIN_GRID_M, MAX_GRID_M),
        time_bucket_s=_integer(f"{place}.time_bucket_s", table.get("time_bucket_s", 900), 1, 86400),
        max_points_per_day=_integer(f"{place}.max_points_per_day", table.get("max_points_per_day", 96), 1, 86400),
        retention_days=_integer(f"{place}.retention_days", table.get("retention_days", 30), 1, 3660),
        sinks=sink_names,
        sink_terms=tuple((name, sinks[name].recipient, sinks[name].region) for name in sink_names),
    )


def _legal_basis(place: str, value: object) -> str:
    if value == "consent" or (isinstance(value, str) and _EXCEPTION.fullmatch(value)):
        return str(value)
    raise _fail(place, 'must be "consent" or "exception:<name>" (a-z, 0-9 and \'-\')')


def _sink(place: str, value: object) -> SinkSpec:
    table = _table(place, value, _SINK_KEYS, frozenset({"name", "url", "recipient", "region"}))
    scheme, host, port, path = _sink_url(f"{place}.url", table["url"])
    tls = {key: _absolute_path(f"{place}.{key}", table[key]) for key in ("ca_file", "cert_file", "key_file")
           if key in table}
    if tls and scheme not in TLS_SCHEMES:
        raise _fail(f"{place}.{next(iter(tls))}", "TLS options apply only to mqtts:// and https:// sinks")
    if ("cert_file" in tls) != ("key_file" in tls):
        raise _fail(f"{place}.{'key_file' if 'cert_file' in tls else 'cert_file'}",
                    "is required with the other half of the client certificate")
    client_id = table.get("client_id")
    if client_id is not None:
        if scheme not in ("mqtt", "mqtts"):
            raise _fail(f"{place}.client_id", "applies only to mqtt:// and mqtts:// sinks")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise _fail(f"{place}.client_id", "must be 1-64 characters: letters, digits and . _ -")
    return SinkSpec(name=_name(f"{place}.name", table["name"]), url=str(table["url"]), scheme=scheme,
                    recipient=_text(f"{place}.recipient", table["recipient"]),
                    region=_region(f"{place}.region", table["region"]), host=host, port=port, path=path,
                    ca_file=tls.get("ca_file"), cert_file=tls.get("cert_file"), key_file=tls.get("key_file"),
                    client_id=client_id)


def _sink_url(place: str, value: object) -> tuple[str, str | None, int | None, str]:
    """(scheme, host, port, path) of a sink URL, or ConfigError naming what is wrong with it."""
    url = _text(place, value)
    if any(ch.isspace() for ch in url):
        raise _fail(place, "must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _fail(place, "is not a valid URL") from None
    scheme = _choice(f"{place} scheme", parts.scheme, SINK_SCHEMES)
    if "#" in url or parts.username or parts.password or (parts.query and scheme != "https"):
        raise _fail(place, "must not carry a fragment, credentials or (except https) a query")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path.endswith("/"):
            raise _fail(place, "must be file:///absolute/path/to/file")
        return scheme, None, None, parts.path
    if not parts.hostname or port == 0:
        raise _fail(place, f"must name a host and a port from 1 to 65535: {scheme}://host[:port]/...")
    if scheme != "https" and (parts.path in ("", "/") or "+" in parts.path or "\0" in parts.path):
        raise _fail(place, f"must end with a topic without wildcards: {scheme}://host[:port]/topic")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme], path


def _subject(value: object) -> Subject:
    table = _table("subject", value, _SUBJECT_KEYS, frozenset())
    return Subject(minor=_boolean("subject.minor", table.get("minor", False)),
                   guardian_consent=_boolean("subject.guardian_consent", table.get("guardian_consent", False)))
