"""``privacyctl export``'s file side (entry layer): the agent streams the bundle over the control socket and this
writes it, with the caller's own permissions, to the path the caller named. The agent never writes there.

The target is checked before the agent is asked (so a refused target leaves no request behind):

- an existing file, a symlink or anything else at ``--out`` is refused unless ``--overwrite``; a directory
  always is;
- the bundle goes to a new temporary file in the same directory (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600),
  is fsynced, and only then takes the name: ``link`` (which fails if something appeared there meanwhile) or,
  with ``--overwrite``, ``rename`` (which replaces a symlink itself, never its target); then the directory is
  fsynced. Any failure removes the temporary file.

Standard library and the control client only, so that ``privacyctl`` stays quick to start.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agent.control_client import stream
from agent.errors import ExportError, UsageError

STREAM_IDLE_S = 60.0  # the agent sends progress while it works: a minute of silence is a failure


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: str
    summary: dict[str, Any]


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse what must not be replaced; UsageError naming the problem (never the caller's whole path)."""
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UsageError(f"cannot inspect {out.name}: {exc.strerror}") from exc
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise UsageError(f"{out.name} is a directory; name a file to write the export to")
        if not overwrite:
            what = "is a symlink" if stat.S_ISLNK(mode) else "already exists"
            raise UsageError(f"{out.name} {what}; refusing to replace it (pass --overwrite to replace it)")
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise UsageError(f"{out.name} is not a regular file; refusing to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"the directory for {out.name} does not exist")


def export_to(socket_path: str, out: Path, *, overwrite: bool,
              progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Ask the agent for the bundle and write it to ``out``; raises AgentError (UsageError for the target,
    ExportError for our side's writes, or what the agent answered)."""
    out = Path(os.path.abspath(out))
    check_target(out, overwrite)
    temporary = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    fd = _create(temporary, out)
    written = 0
    try:
        def sink(data: bytes) -> None:
            nonlocal written
            _write_all(fd, data)
            written += len(data)

        _header, summary = stream(socket_path, "export", {}, sink, progress=progress, timeout_s=STREAM_IDLE_S)
        if summary.get("bytes") != written:
            raise ExportError("the export arrived incomplete (fewer bytes than the agent sent)")
        _sync(fd)
        os.close(fd)
        fd = -1
        _publish(temporary, out, overwrite)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    return ExportResult(path=str(out), summary=summary)


def _create(temporary: Path, out: Path) -> int:
    try:
        return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ExportError(f"cannot create a file next to {out.name}: {exc.strerror}") from exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise ExportError(f"cannot write the export: {exc.strerror}") from exc


def _sync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise ExportError(f"cannot write the export: {exc.strerror}") from exc


def _publish(temporary: Path, out: Path, overwrite: bool) -> None:
    try:
        if overwrite:
            os.replace(temporary, out)  # replaces a symlink itself, never its target
        else:
            os.link(temporary, out, follow_symlinks=False)  # EEXIST if something appeared meanwhile
            temporary.unlink()
        directory = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except FileExistsError as exc:
        raise UsageError(f"{out.name} appeared while the export was written; refusing to replace it") from exc
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise UsageError(f"{out.name} is a directory; name a file to write the export to") from exc
        raise ExportError(f"cannot put the export in place: {exc.strerror}") from exc


def terminal_progress(stream_out: TextIO) -> Callable[[int, int], None] | None:
    """A progress bar on ``stream_out`` when it is a terminal; None (nothing shown) otherwise."""
    if not stream_out.isatty():
        return None
    shown = [-1]

    def show(done: int, total: int) -> None:
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        if percent == shown[0]:
            return
        shown[0] = percent
        end = "\n" if percent >= 100 else ""
        stream_out.write(f"\rexporting [{'#' * (percent // 4):<25}] {percent:3d}% {done}/{total} records{end}")
        stream_out.flush()

    return show


def describe_export(result: ExportResult) -> list[str]:
    summary = result.summary
    return [f"wrote {summary.get('records')} records ({summary.get('erased_records')} erased) to {result.path} "
            f"({summary.get('bytes')} bytes)",
            f"policy version: {summary.get('policy_version')}",
            f"check it offline: privacy-agent verify-export {result.path}"]
