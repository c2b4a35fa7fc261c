"""verify-export against forged and hostile bundles: padding, foreign keys, zip bombs, huge directories,
devices and FIFOs; and a fuzz over zip structures in which only ExportError (or LogCorrupt) may come out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ExportError, LogCorrupt, UsageError
from agent.ledger import Ledger, crypto, export
from agent.ledger.export import verify_export
from agent.main import main
from tests.ledger_support import CONFIG, fill
from tests.ledger_zips import (
    Member,
    deflated,
    genuine_members,
    stored,
    write_many_empty_members,
    write_zip,
    zeros_bomb,
)

ROOT = Path(__file__).resolve().parent.parent
RSS_LIMIT_KB = 100 * 1024


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A genuine export and the fingerprint of the device key that signed it."""
    directory = tmp_path_factory.mktemp("genuine")
    with Ledger.open(directory / "state", CONFIG) as ledger:
        fill(ledger, 12)
        ledger.append("consent", {"purpose": "fleet", "granted": True})
        out = Path(ledger.export(directory / "export.zip").path)
        return out, ledger.key_fingerprint()


def member_bytes(export_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(export_path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def forged_records(original: bytes) -> bytes:
    return original.replace(b'"fleet"', b'"other"', 1)


# -- issue 16 item 2: padding ---------------------------------------------------------------------------------
def test_a_forged_member_put_before_the_genuine_one_is_refused(genuine: tuple[Path, str], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The attack as reported: a forged records.jsonl first, then every original member with the original
    manifest and signature. zipfile reads the last of two names, unzip the first."""
    original = genuine[0]
    members = genuine_members(original)
    forged = forged_records(member_bytes(original)["records.jsonl"])
    padded = write_zip(tmp_path / "padded.zip", [deflated("records.jsonl", forged), *members])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is about to hide
        with zipfile.ZipFile(padded) as archive:
            # what made the old verifier pass: it hashed the genuine copy, a reader sees the forged one
            assert archive.read("records.jsonl") == member_bytes(original)["records.jsonl"]
            assert archive.open(archive.infolist()[0]).read() == forged
            assert set(archive.namelist()) == set(member_bytes(original))
    with pytest.raises(ExportError, match="appears twice"):
        verify_export(padded)
    assert main(["verify-export", str(padded)]) == 1
    assert "appears twice" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig", "segments/00000000000000000000.seg"])
def test_any_duplicated_member_is_refused(genuine: tuple[Path, str], tmp_path: Path, name: str) -> None:
    members = genuine_members(genuine[0])
    copy = next(member for member in members if member.name == name)
    with pytest.raises(ExportError, match="appears twice"):
        verify_export(write_zip(tmp_path / "twice.zip", [*members, copy]))


@pytest.mark.parametrize("name", ["/etc/passwd", "../records.jsonl", "segments/../records.jsonl", "..",
                                  "C:/records.jsonl", "segments\\x.seg", "/records.jsonl"])
def test_absolute_and_dot_dot_names_are_refused(genuine: tuple[Path, str], tmp_path: Path, name: str) -> None:
    members = genuine_members(genuine[0])
    with pytest.raises(ExportError, match=r"absolute name|backslash"):
        verify_export(write_zip(tmp_path / "names.zip", [*members, stored(name, b"x")]))


def test_a_nul_in_a_name_is_refused(genuine: tuple[Path, str], tmp_path: Path) -> None:
    """zipfile cuts a name at a NUL: "records.jsonl\\0x" would be read as records.jsonl."""
    members = [member for member in genuine_members(genuine[0]) if member.name != "README.txt"]
    readme = member_bytes(genuine[0])["README.txt"]
    with pytest.raises(ExportError, match="NUL"):
        verify_export(write_zip(tmp_path / "nul.zip", [*members, stored("README.txt\x00.exe", readme)]))


def test_a_member_the_manifest_does_not_list_is_refused(genuine: tuple[Path, str], tmp_path: Path) -> None:
    members = genuine_members(genuine[0])
    with pytest.raises(ExportError, match="differ from those its manifest lists"):
        verify_export(write_zip(tmp_path / "extra.zip", [*members, stored("notes.txt", b"hello")]))


@pytest.mark.parametrize("missing", ["README.txt", "records.jsonl", "manifest.sig"])
def test_the_member_set_must_equal_the_manifests(genuine: tuple[Path, str], tmp_path: Path, missing: str) -> None:
    members = [member for member in genuine_members(genuine[0]) if member.name != missing]
    with pytest.raises(ExportError):
        verify_export(write_zip(tmp_path / "fewer.zip", members))


# -- pinning the key ----------------------------------------------------------------------------------------
def resigned_with_a_fresh_key(original: Path, target: Path, *, records: bytes | None = None,
                              files: dict[str, dict[str, object]] | None = None) -> tuple[Path, str]:
    """The bundle re-signed end to end with a new key: every check but a pinned key passes."""
    contents = member_bytes(original)
    manifest = json.loads(contents["manifest.json"])
    signer = crypto.Signer(crypto.Signer.generate_private_bytes())
    if records is not None:
        contents["records.jsonl"] = records
    manifest["public_key"] = signer.public_key.hex()
    manifest["signed_head"] = None
    for name, entry in (files or {}).items():
        manifest["files"][name].update(entry)
    raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
    contents["manifest.json"], contents["manifest.sig"] = raw, signer.sign(raw).hex().encode() + b"\n"
    members = [stored(name, data) for name, data in contents.items()]
    return write_zip(target, members), crypto.key_fingerprint(signer.public_key)


def test_a_pinned_key_refuses_a_bundle_signed_with_another(genuine: tuple[Path, str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A whole bundle made with a key of one's own (here: by another ledger) is consistent, and verified
    before --key existed; only a pinned key tells it from the device's."""
    device = genuine[1]
    with Ledger.open(tmp_path / "elsewhere", CONFIG) as ledger:
        fill(ledger, 12)
        forged = Path(ledger.export(tmp_path / "forged.zip").path)
    report = verify_export(forged)
    assert report.key_fingerprint != device and not report.key_pinned
    with pytest.raises(ExportError, match="another key than the one pinned"):
        verify_export(forged, key=device)
    assert main(["verify-export", str(forged), "--key", device]) == 1
    assert "pinned" in capsys.readouterr().err


def test_without_a_key_the_output_says_it_was_not_pinned(genuine: tuple[Path, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    original, device = genuine
    assert main(["verify-export", str(original)]) == 0
    out = capsys.readouterr().out
    assert "the key was not pinned" in out and device in out
    assert main(["verify-export", str(original), "--key", device]) == 0
    out = capsys.readouterr().out
    assert "not pinned" not in out and f"pinned key {device}" in out
    assert main(["verify-export", str(original), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["key_pinned"], report["key_fingerprint"]) == (False, device)
    assert verify_export(original, key=device).key_pinned


@pytest.mark.parametrize("key", ["", "SHA256:", "SHA256:abc", "sha256:" + "A" * 43, "A" * 50,
                                 "SHA256:" + "!" * 43])
def test_a_malformed_fingerprint_is_a_usage_error(genuine: tuple[Path, str], key: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="fingerprint"):
        verify_export(genuine[0], key=key)
    assert main(["verify-export", str(genuine[0]), "--key", key]) == 2


# -- issue 16 item 4: sizes before inflating ----------------------------------------------------------------
def test_a_declared_size_other_than_the_manifests_is_refused_before_inflating(genuine: tuple[Path, str],
                                                                               tmp_path: Path) -> None:
    members = genuine_members(genuine[0])
    records = next(member for member in members if member.name == "records.jsonl")
    records.file_size += 1 << 20  # more than it holds: zipfile would stop at the end of the data, at best
    with pytest.raises(ExportError, match="declares another size than its manifest"):
        verify_export(write_zip(tmp_path / "bigger.zip", members))


def test_a_forged_manifest_that_lists_a_bomb_is_refused_by_the_inflation_cap(genuine: tuple[Path, str],
                                                                              tmp_path: Path) -> None:
    bomb = zeros_bomb("records.jsonl", 1)
    forged, _ = resigned_with_a_fresh_key(genuine[0], tmp_path / "forged.zip",
                                          files={"records.jsonl": {"bytes": bomb.file_size}})
    members = [member for member in genuine_members(forged) if member.name != "records.jsonl"]
    with pytest.raises(ExportError, match="zip bomb"):
        verify_export(write_zip(tmp_path / "bomb.zip", [*members, bomb]))


def test_the_writer_refuses_more_segments_than_verify_export_accepts(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "MAX_MEMBERS", 4)
    with Ledger.open(tmp_path / "state", CONFIG) as ledger:
        ledger.append("switch", {})
        with pytest.raises(ExportError, match="more segments"):
            ledger.export(tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


# -- hostile input, measured in a child process -------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from agent.errors import AgentError
    from agent.ledger.export import verify_export
    started = time.perf_counter()
    try:
        verify_export(Path(sys.argv[1]))
        outcome, message = "verified", ""
    except AgentError as exc:
        outcome, message = type(exc).__name__, str(exc)
    except BaseException as exc:
        outcome, message = "crash " + type(exc).__name__, repr(exc)[:300]
    print(json.dumps({{"outcome": outcome, "message": message, "seconds": time.perf_counter() - started,
                       "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
""")


def verify_in_child(path: Path) -> dict[str, object]:
    """verify_export in a fresh interpreter; its peak RSS is the verifier's own (plus the interpreter's).
    The timeout bounds a hang; no duration is asserted.

    Linux keeps a process's peak RSS across exec, and a child exec'd straight from this test process (vfork)
    would report pytest's own peak. A shell started from here forks the interpreter (the command is not its
    last, so it is not exec'd in place): a fresh process, whose ru_maxrss is its own."""
    script = 'sh_child="$1"; shift; "$sh_child" "$@"; exit $?'
    done = subprocess.run(["/bin/sh", "-c", script, "sh", sys.executable, "-c", _CHILD.format(root=str(ROOT)),
                           str(path)], check=True, capture_output=True, text=True, timeout=120)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_10_gib_member_from_a_10_mb_zip_is_refused_in_bounded_memory(genuine: tuple[Path, str],
                                                                       tmp_path: Path) -> None:
    members = [member for member in genuine_members(genuine[0]) if member.name != "records.jsonl"]
    bomb = write_zip(tmp_path / "bomb.zip", [*members, zeros_bomb("records.jsonl", 10)])
    assert bomb.stat().st_size < 12 << 20
    result = verify_in_child(bomb)
    assert result["outcome"] == "ExportError" and "zip bomb" in str(result["message"])
    assert int(str(result["maxrss_kb"])) < RSS_LIMIT_KB


def test_a_million_empty_members_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    many = write_many_empty_members(tmp_path / "many.zip", 1_000_000)
    result = verify_in_child(many)
    assert result["outcome"] == "ExportError" and "too many files" in str(result["message"])
    assert int(str(result["maxrss_kb"])) < RSS_LIMIT_KB


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "symlink"])
def test_anything_but_a_regular_file_is_refused_without_blocking(genuine: tuple[Path, str], tmp_path: Path,
                                                                 kind: str) -> None:
    path = Path(kind)
    if kind == "fifo":
        path = tmp_path / "export.zip"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path / "export.zip"
        path.mkdir()
    elif kind == "symlink":
        path = tmp_path / "export.zip"
        path.symlink_to(genuine[0])
    result = verify_in_child(path)
    assert result["outcome"] == "ExportError", result
    expected = "symlink" if kind == "symlink" else "not a regular file"
    assert expected in str(result["message"])
    assert int(str(result["maxrss_kb"])) < RSS_LIMIT_KB


# -- fuzz -----------------------------------------------------------------------------------------------------
NAMES = st.sampled_from(["README.txt", "records.jsonl", "manifest.json", "manifest.sig",
                         "segments/00000000000000000000.seg", "segments/x.seg", "../x", "/abs", "a\x00b",
                         "segments/", "x" * 300])


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    return draw(st.lists(st.one_of(
        st.tuples(st.just("add"), st.tuples(NAMES, st.binary(max_size=64), st.sampled_from([0, 8]))),
        st.tuples(st.just("duplicate"), st.integers(0, 10)),
        st.tuples(st.just("drop"), st.integers(0, 10)),
        st.tuples(st.just("method"), st.tuples(st.integers(0, 10), st.sampled_from([1, 6, 9, 12, 14, 93, 99]))),
        st.tuples(st.just("size"), st.tuples(st.integers(0, 10),
                                             st.sampled_from([0, 1, -1, 1 << 20, 1 << 40, (1 << 64) - 1]))),
        st.tuples(st.just("flags"), st.tuples(st.integers(0, 10), st.sampled_from([0x1, 0x8, 0x20, 0x40]))),
        st.tuples(st.just("swap"), st.tuples(st.integers(0, 10), st.integers(0, 10))),
    ), min_size=1, max_size=4))


def mutate(members: list[Member], changes: list[tuple[str, Any]]) -> list[Member]:
    members = list(members)
    for kind, argument in changes:
        if kind == "add":
            name, data, method = argument
            members.append(deflated(name, data) if method == 8 else stored(name, data))
            continue
        if not members:
            continue
        if kind == "duplicate":
            members.append(members[int(argument) % len(members)])
        elif kind == "drop":
            members.pop(int(argument) % len(members))
        elif kind == "swap":
            first, second = (index % len(members) for index in argument)
            members[first], members[second] = members[second], members[first]
        else:
            index, value = argument
            target = members[index % len(members)]
            copy = Member(target.name, target.chunks, target.compress_size, target.file_size, target.crc,
                          target.method, target.flag_bits)
            if kind == "method":
                copy.method = value
            elif kind == "size":
                copy.file_size = max(0, min(value if value >= 0 else target.file_size - 1, (1 << 64) - 1))
            else:
                copy.flag_bits |= value
            members[index % len(members)] = copy
    return members


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=mutations())
def test_fuzzed_zip_structures_give_only_export_errors(genuine: tuple[Path, str],
                                                       tmp_path_factory: pytest.TempPathFactory,
                                                       changes: list[tuple[str, Any]]) -> None:
    members = mutate(genuine_members(genuine[0]), changes)
    path = write_zip(tmp_path_factory.mktemp("fuzz") / "fuzzed.zip", members)
    try:
        report = verify_export(path)
    except (ExportError, LogCorrupt):
        return
    # verified: then it holds exactly the genuine members' contents
    assert report.records == verify_export(genuine[0]).records
    assert member_bytes(path) == member_bytes(genuine[0])
