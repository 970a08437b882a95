"""The output folder of a run: what may be written there, and how a finished run takes its
place without losing what was there.

- `check_output`: before any work, the output must be absent, an empty folder, or a dataset
  this tool published (its README.md and a funnel.json with a run id). Anything else - a
  file, a folder with other files, `/`, the home folder, the working folder or one above
  it - is refused: a run replaces its output as a whole, so it must never be pointed at a
  user's files.
- `OutputLock`: one run at a time per output (a lock file beside it, on a local disk); a
  second run is refused rather than racing the first one's swap.
- `recover`: a run killed between the two renames of a swap leaves the previous dataset
  under `.NAME.old-*` and nothing at NAME: it is put back. Staging (`.NAME.partial-*`) and
  leftover `.old-*` folders of dead runs are deleted. Runs only while holding the lock.
- `swap`: the staging folder becomes the output (two renames on a local disk; copies on
  object storage, which has no rename).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipelines.config import ConfigError

log = logging.getLogger(__name__)
PUBLISH_FILES = ("README.md", "funnel.json")


class OutputRefused(ConfigError):
    """The output folder cannot be used; nothing was written or deleted."""


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def safe_name(value: str) -> str:
    """A file or folder name made from a value of the data (a row id, a recipe name): the value
    itself when it is short and plain (letters, digits, `.`, `_`, `-`; not starting with a dot,
    no `..`), else `h-` and a hash of it. `../x`, `/etc/x`, NUL, `\\`, look-alike Unicode and
    very long ids all become plain names; distinct values stay distinct."""
    value = str(value)
    if _SAFE_NAME.fullmatch(value) and ".." not in value:
        return value
    return "h-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, checked to lie inside `folder` once resolved; ValueError otherwise."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise ValueError(f"{name!r} would lie outside {folder}")
    return target


def output_location(directory: str) -> str:
    """A local output folder as an absolute path (workers in other processes see the same
    folder), any other fsspec URL (s3://, gs://, ...) as given."""
    if directory.startswith("file://"):
        directory = directory[len("file://"):]
    if "://" not in directory:
        return str(Path(directory).expanduser().resolve())
    if "/" not in directory.split("://", 1)[1].strip("/"):
        raise ConfigError(f"output.dir {directory!r}: name a folder inside the bucket (the run stages and swaps beside it)")
    return directory.rstrip("/")


def is_publish(fs, folder: str) -> bool:
    """Whether `folder` holds a dataset this tool published: its card and its funnel."""
    if not all(fs.isfile(f"{folder}/{name}") for name in PUBLISH_FILES):
        return False
    try:
        with fs.open(f"{folder}/funnel.json", "rb") as f:
            funnel = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(funnel, dict) and "run_id" in funnel and "in" in funnel


def protected(path: Path) -> str | None:
    """Why a local folder may never be an output, or None."""
    if path == Path(path.anchor):
        return "the root of the file system"
    home = Path.home().resolve()
    if path == home or path in home.parents:
        return "your home folder" if path == home else "a folder that holds your home folder"
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        return "the working folder" if path == cwd else "a folder that holds the working folder"
    return None


def check_output(fs, out: str) -> None:
    """Refuse an output that is not absent, empty or a previous publish (see the module)."""
    if isinstance(fs, LocalFileSystem):
        why = protected(Path(out))
        if why:
            raise OutputRefused(f"output.dir {out} is {why}; a run replaces its output folder as a whole: name a new folder")
    if not fs.exists(out):
        return
    if not fs.isdir(out):
        raise OutputRefused(f"output.dir {out} is a file, not a folder; a run would replace it: name a new folder")
    if fs.ls(out, detail=False) and not is_publish(fs, out):
        raise OutputRefused(f"output.dir {out} holds files that are not a dataset of this tool (no README.md and "
                            f"funnel.json); a run replaces its output folder as a whole: name a new or empty folder")


class OutputLock:
    """Held for the whole run: `.NAME.lock` beside a local output, locked with flock (freed
    by the kernel when the process dies). Object storage has no locks: there, two runs of
    one output must not overlap (the last one to finish wins)."""

    def __init__(self, fs, out: str):
        self._out = out
        self._path = None
        self._file = None
        if isinstance(fs, LocalFileSystem):
            parent, name = out.rsplit("/", 1)
            self._path = f"{parent}/.{name}.lock"

    def __enter__(self):
        if self._path is None:
            return self
        self._file = open(self._path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise OutputRefused(f"another run is writing to {self._out} (it holds {self._path}); "
                                "wait for it to finish") from None
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def _siblings(fs, out: str, kind: str) -> list[str]:
    parent, name = out.rsplit("/", 1)
    if not fs.exists(parent):
        return []
    prefix = f".{name}.{kind}-"
    return sorted(p.rstrip("/") for p in fs.ls(parent, detail=False) if p.rstrip("/").rsplit("/", 1)[-1].startswith(prefix))


def recover(fs, out: str) -> list[str]:
    """Put back a previous dataset a killed swap left aside, delete dead runs' leftovers;
    returns what was done, one line each. Call it only while holding the output's lock."""
    done = []
    olds = [p for p in _siblings(fs, out, "old") if is_publish(fs, p)]
    if olds and not fs.exists(out):
        _move(fs, olds[-1], out)
        done.append(f"restored the previous dataset at {out} from {olds[-1]} (a run was killed while replacing it)")
    for leftover in _siblings(fs, out, "old") + _siblings(fs, out, "partial"):
        fs.rm(leftover, recursive=True)
        done.append(f"deleted {leftover}, left by a run that did not finish")
    for line in done:
        log.warning(line)
    return done


def staging_folder(out: str, run_id: str) -> str:
    parent, name = out.rsplit("/", 1)
    return f"{parent}/.{name}.partial-{run_id}"


def swap(fs, staging: str, out: str) -> None:
    """The staging folder becomes the output. On a local disk each step is a rename, so a
    reader sees the old dataset or the new one (and `recover` mends a kill in between); on
    object storage a move copies every file (the old version is moved aside first, then
    deleted)."""
    parent, name = out.rsplit("/", 1)
    old = f"{parent}/.{name}.old-{uuid.uuid4().hex[:8]}"
    if fs.exists(out):
        _move(fs, out, old)
    _move(fs, staging, out)
    if fs.exists(old):
        fs.rm(old, recursive=True)


def _move(fs, source: str, target: str) -> None:
    if isinstance(fs, LocalFileSystem):
        fs.mv(source, target)  # one rename
        return
    _, root = fsspec.core.url_to_fs(source)
    files = fs.find(source)  # object stores have no folders to rename: copy each object, then delete
    fs.copy(files, [f"{target}/{f[len(root) + 1:]}" for f in files])
    fs.rm(source, recursive=True)
