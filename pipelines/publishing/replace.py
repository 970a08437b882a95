"""Write beside, then swap: how a run (and an export) replaces its output folder NAME without
losing what was there, and how the next one mends a kill - by proof, never by name.

- One writer at a time: `.NAME.lock` beside the output, locked with flock on a local disk
  (freed by the kernel when the process dies). It holds the registry; a run that leaves
  nothing pending removes it while still holding the lock, and a run that locks checks the
  file it locked is still the one at that path (else it locks the new one): no two runs
  ever hold two different lock files of one output.
- The registry (JSON in `.NAME.lock`) lists the folders this tool made beside the output
  and has not finished with, each with a random token: the staging folder a run writes into
  (`.NAME.partial-*`) and the previous output moved aside during a swap (`.NAME.old-*`).
  Each such folder holds a marker file (`.extract-think-owner`) with its token.
- `recover` (at the start, under the lock) acts only on folders that prove they are the
  tool's: listed in the registry, a real folder (not a link), holding a regular marker file
  with the listed token. A previous output a killed swap left aside is put back; staging of
  a dead run is deleted. Any other `.NAME.old-*` or `.NAME.partial-*` is left alone with a
  warning: it may be a user's.
- `Replacement.commit` swaps: the output moves aside (marked first), the staging folder
  takes its place (two renames on a local disk, copies on object storage), the marker
  leaves the new output, and the old one is deleted.

Object storage has no locks: there the registry is a plain object, and two runs of one
output must not overlap (the last one to finish wins).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from typing import Callable

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipelines.publishing.output import OutputRefused

log = logging.getLogger(__name__)
MARK = ".extract-think-owner"
MAX_REGISTRY_BYTES = 1 << 20


def _parent_name(out: str) -> tuple[str, str]:
    parent, name = out.rsplit("/", 1)
    return parent, name


class OutputLock:
    """Held for the whole run: `.NAME.lock` beside the output (flock on a local disk), whose
    content is the registry of the folders this tool made beside the output."""

    def __init__(self, fs, out: str):
        self._fs, self._out = fs, out
        parent, name = _parent_name(out)
        self.path = f"{parent}/.{name}.lock"
        self._file = None

    def __enter__(self):
        if not isinstance(self._fs, LocalFileSystem):
            return self
        while self._file is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never a link to elsewhere
            handle = os.fdopen(fd, "r+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise OutputRefused(f"another run is writing to {self._out} (it holds {self.path}); wait for it to finish") from None
            try:
                current = os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                self._file = handle
            else:  # the run before removed this file after we opened it: lock the one at the path now
                handle.close()
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            if not self.read():  # nothing pending: the file goes, while it is still locked (see the module)
                os.unlink(self.path)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def read(self) -> dict[str, str]:
        """{folder name: token} of the registry; {} when absent or unreadable."""
        try:
            if self._file is not None:
                self._file.seek(0)
                raw = self._file.read(MAX_REGISTRY_BYTES)
            else:
                with self._fs.open(self.path, "r") as f:
                    raw = f.read(MAX_REGISTRY_BYTES)
            data = json.loads(raw) if raw.strip() else {}
        except (OSError, ValueError, RecursionError):
            return {}
        pending = data.get("pending") if isinstance(data, dict) else None
        return {k: v for k, v in pending.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(pending, dict) else {}

    def write(self, pending: dict[str, str]) -> None:
        text = json.dumps({"tool": "extract-think", "pending": pending}, indent=1) + "\n"
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())
        elif not isinstance(self._fs, LocalFileSystem):
            with self._fs.open(self.path, "w") as f:
                f.write(text)


def _proven(fs, folder: str, token: str) -> bool:
    """Whether `folder` is a real folder holding a regular marker file with `token`."""
    marker = f"{folder}/{MARK}"
    if isinstance(fs, LocalFileSystem):
        if os.path.islink(folder) or not os.path.isdir(folder) or os.path.islink(marker) or not os.path.isfile(marker):
            return False
    elif not fs.isfile(marker):
        return False
    try:
        with fs.open(marker, "r") as f:
            return secrets.compare_digest(f.read(200).strip(), token)
    except (OSError, ValueError):
        return False


def _mark(fs, folder: str, token: str) -> None:
    fs.makedirs(folder, exist_ok=True)
    with fs.open(f"{folder}/{MARK}", "w") as f:
        f.write(token + "\n")


def _unmark(fs, folder: str) -> None:
    if fs.exists(f"{folder}/{MARK}"):
        fs.rm(f"{folder}/{MARK}")


def _siblings(fs, out: str) -> list[str]:
    parent, name = _parent_name(out)
    if not fs.exists(parent):
        return []
    return sorted(p.rstrip("/") for p in fs.ls(parent, detail=False)
                  if p.rstrip("/").rsplit("/", 1)[-1].startswith((f".{name}.old-", f".{name}.partial-")))


def recover(fs, out: str, lock: OutputLock, is_output: Callable[[str], bool], quiet: bool = False) -> list[str]:
    """Mend what a killed run left beside `out` (see the module), holding `lock`; returns what
    was done, one line each (logged unless `quiet`). `is_output(folder)`: whether a folder is
    a finished output (a publish, an export), the only kind that is ever put back."""
    parent, _ = _parent_name(out)
    pending, done = lock.read(), []
    for name, token in sorted(pending.items()):
        folder = f"{parent}/{name}"
        if f"{folder}/" == f"{out}/" or not _proven(fs, folder, token):
            continue
        if ".old-" in name and not fs.exists(out) and is_output(folder):
            _move(fs, folder, out)
            _unmark(fs, out)
            done.append(f"restored the previous output at {out} from {folder} (a run was killed while replacing it)")
        else:
            fs.rm(folder, recursive=True)
            done.append(f"deleted {folder}, left by a run of this tool that did not finish")
    if fs.exists(out) and fs.exists(f"{out}/{MARK}"):  # killed right after marking the output, or after the last rename
        with fs.open(f"{out}/{MARK}", "r") as f:
            if f.read(200).strip() in pending.values():
                _unmark(fs, out)
    lock.write({})
    if not quiet:
        for other in _siblings(fs, out):
            log.warning("left %s alone: it looks like a leftover of a run, but nothing proves this tool made it", other)
        for line in done:
            log.warning(line)
    return done


def _move(fs, source: str, target: str) -> None:
    if isinstance(fs, LocalFileSystem):
        os.rename(source, target)  # one rename; never follows a link at `source`
        return
    _, root = fsspec.core.url_to_fs(source)
    files = fs.find(source)  # object stores have no folders to rename: copy each object, then delete
    fs.copy(files, [f"{target}/{f[len(root) + 1:]}" for f in files])
    fs.rm(source, recursive=True)


class Replacement:
    """`with Replacement(fs, out, is_output) as r:` write into `r.staging`, then `r.commit()`.
    On entry: the lock, `recover`, a fresh marked staging folder listed in the registry. On
    exit, `recover` once more: a staging folder not committed is deleted (a failed run changes
    nothing), a swap cut short by an error is undone; then the lock is released."""

    def __init__(self, fs, out: str, is_output: Callable[[str], bool]):
        self.fs, self.out, self._is_output = fs, out, is_output
        self._lock = OutputLock(fs, out)
        self._pending: dict[str, str] = {}
        self.recovered: list[str] = []
        self.staging = ""

    def _register(self, folder: str, token: str | None) -> None:
        name = _parent_name(folder)[1]
        if token is None:
            self._pending.pop(name, None)
        else:
            self._pending[name] = token
        self._lock.write(self._pending)

    def __enter__(self) -> "Replacement":
        self._lock.__enter__()
        try:
            self.recovered = recover(self.fs, self.out, self._lock, self._is_output)
            parent, name = _parent_name(self.out)
            token = secrets.token_hex(16)
            self.staging = f"{parent}/.{name}.partial-{token[:8]}"
            self._register(self.staging, token)  # listed before it exists: a kill now leaves nothing unproven
            if isinstance(self.fs, LocalFileSystem):
                os.mkdir(self.staging)  # a new folder, never an existing one or a link
            _mark(self.fs, self.staging, token)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def commit(self) -> None:
        """The staging folder becomes the output (see the module)."""
        fs, out = self.fs, self.out
        parent, name = _parent_name(out)
        old = None
        if fs.exists(out):
            token = secrets.token_hex(16)
            old = f"{parent}/.{name}.old-{token[:8]}"
            self._register(old, token)
            _mark(fs, out, token)
            _move(fs, out, old)
        _move(fs, self.staging, out)
        _unmark(fs, out)
        self._register(self.staging, None)
        if old is not None:
            fs.rm(old, recursive=True)
            self._register(old, None)

    def __exit__(self, *exc):
        try:  # what a next run would mend, mended now: an uncommitted staging folder, a swap cut short
            recover(self.fs, self.out, self._lock, self._is_output, quiet=True)
        finally:
            self._pending.clear()
            self._lock.__exit__(*exc)
