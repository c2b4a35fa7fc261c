"""The export bundle's format, shared by the writer (export.py) and the verifier (export_verify.py): member
names, the bounds the verifier enforces and the writer respects, the README, the summaries, and how CBOR
values and times are shown in JSON."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.ledger import codec

EXPORT_SCHEMA = "quectel-privacy-agent/export/1"
MANIFEST = "manifest.json"
MANIFEST_SIGNATURE = "manifest.sig"  # Ed25519 over manifest.json's bytes, hex, by the device key
RECORDS = "records.jsonl"
README = "README.txt"
SEGMENT_DIR = "segments/"
COPY_CHUNK = 1 << 20
STREAM_BUFFER = 256 << 10  # a streamed export hands on writes of at least this much (zip headers are tiny)
JSONL_BATCH = 1024  # records per progress report
JSONL_CHUNK = 4096  # lines (at least) per chunk handed to the writer thread, about 1.3 MB: see lines()
WRITE_QUEUE = 2  # chunks waiting for the writer thread: bounds the memory the export uses
# What the verifier reads whole, and so must bound (a zip member a few KiB long can inflate to gigabytes):
# manifest.json grows by about 200 bytes per segment and per erased key, so 8 MiB is some 40,000 of them
# (2.5 TB of log at the default segment size); the writer refuses to make a larger one.
MANIFEST_LIMIT = 8 << 20
SIGNATURE_LIMIT = 4096  # manifest.sig: 128 hex digits and a newline
# A record is at most codec.MAX_PAYLOAD bytes of CBOR, and JSON spells none of them more than 13 times as long
# (an empty byte string in a list: one byte of CBOR, `{"hex": ""}, ` in JSON); a longer line is no record.
LINE_LIMIT = 16 * codec.MAX_PAYLOAD
# What the writer uses; the verifier refuses the rest (encryption, other compression methods) up front, as
# zipfile would fail on them with exceptions of its own mid-way.
COMPRESSION_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# Bounds on a hostile zip, checked before anything is inflated. An export holds four files and its segments
# (20,000 of them are 1.2 TB of log at the default segment size); the writer refuses to make a larger one.
MAX_MEMBERS = 20_000
# zipfile reads the whole central directory in one read and makes an object per entry (some 550 bytes each):
# no read while the directory is parsed may exceed this, which bounds the entries (46 bytes at least each)
# and their memory. An export's entries take about 110 bytes each.
DIRECTORY_LIMIT = MAX_MEMBERS * 128
# Any later single read: the manifest is read whole, everything else in COPY_CHUNK pieces.
READ_LIMIT = MANIFEST_LIMIT + 2 * COPY_CHUNK
# Segments are stored and records.jsonl (whose every line holds a 64-digit hash) deflates some 5 times, so a
# genuine export inflates to about twice its size; one whose files claim more than this is a zip bomb.
INFLATE_RATIO_LIMIT = 64
INFLATE_SLACK = 64 << 20
UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patched data, strong encryption
JSON_SCALARS = frozenset({str, int, bool, type(None)})
Progress = Callable[[int, int], None]

README_TEXT = """\
This file is a copy of everything the privacy agent on this device has recorded about its use of your
location and identifiers, as you asked for it.

records.jsonl
    One line per event, oldest first, readable by people and by programs (JSON). Each line says what happened
    ("type"), when ("time", in UTC), and the details ("fields"). Types you may see:
      fix_access    something on the device read your location, and for which purpose
      upload        data left the device: to whom, where, and for which purpose
      consent       you gave or withdrew a permission
      switch        the location switch was turned on or off
      request       a request you made (a copy like this one, a deletion)
      incident      something went wrong that you should know about
      key_destroyed data was erased: the key that could read it was destroyed
      checkpoint    a digitally signed seal over all the events before it
      recovery      the device restarted after a crash and cut off an incomplete last entry
    Location and other personal details are under "personal". Where they were erased, you see
    {"erased": true} instead: nobody, including the device, can read them any more.

segments/
    The original log files, byte for byte. Each entry contains a fingerprint (SHA-256 hash) of the entry
    before it, so that removing or changing any entry breaks the chain. The personal parts are stored
    encrypted.

manifest.json
    A summary: when this copy was made, how many entries of each type it holds, the policy versions in force,
    the fingerprint of the last entry, the device's signing key and its latest signed seal, and a fingerprint
    of every other file in this archive so you can check nothing was changed.

manifest.sig
    The device's digital signature over manifest.json, with the signing key named in the manifest.

To check this file, run:  privacy-agent verify-export <this file>
"""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: str
    records: int
    erased_records: int
    counts: dict[str, int]
    head: str
    bytes: int


@dataclass(frozen=True, slots=True)
class ExportReport:
    """``key_pinned``: the signing key was checked against ``verify_export(key=...)``; when False, anyone
    could have made an export that verifies with a key of their own. ``signed_head_records``: how many records
    the newest signed head it carries vouches for (None: an export of a log that had none)."""

    records: int
    counts: dict[str, int]
    head: str
    merkle_root: str
    checkpoints: int
    public_key: str
    erased_records: int
    key_fingerprint: str = ""
    key_pinned: bool = False
    signed_head_records: int | None = None


def iso_time(time_ms: int) -> str:
    seconds, millis = divmod(time_ms, 1000)
    return f"{iso_second(seconds)}.{millis:03d}Z"


def iso_second(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def to_json(value: Any) -> Any:
    """CBOR values as JSON: byte strings become {"hex": ...} (JSON has no bytes)."""
    if type(value) is dict:
        # the common case, a flat map of text and numbers: nothing to convert (a loop, not all() over a
        # generator, which costs twice as much once per record)
        for item in value.values():
            if type(item) not in JSON_SCALARS:
                break
        else:
            return value
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value
