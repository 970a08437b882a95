"""The output folder of a run: what may be written there.

- `check_output`: before any work, the output must be absent, an empty folder, or a dataset
  this tool published (its README.md and a funnel.json with a run id). Anything else - a
  file, a folder with other files, `/`, the home folder, the working folder or one above
  it - is refused: a run replaces its output as a whole, so it must never be pointed at a
  user's files.
- `safe_name`, `inside`: names made from data (ids, recipe names) and the check that a file
  named from one stays in its folder.

How a finished run takes the output's place, and how a killed one is mended, is
`pipelines/publishing/replace.py`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from pipelines.config import ConfigError

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


def replace_problem(fs, out: str, is_ours, ours: str) -> str | None:
    """Why the folder `out` may not be replaced as a whole (by a run, or an export), or None:
    it is a protected local folder, a file, or holds files that are not `ours` (`is_ours(out)`)."""
    if isinstance(fs, LocalFileSystem):
        why = protected(Path(out))
        if why:
            return f"is {why}"
    if not fs.exists(out):
        return None
    if not fs.isdir(out):
        return "is a file, not a folder"
    if fs.ls(out, detail=False) and not is_ours(out):
        return f"holds files that are not {ours}"
    return None


def check_output(fs, out: str) -> None:
    """Refuse an output that is not absent, empty or a previous publish (see the module)."""
    problem = replace_problem(fs, out, lambda folder: is_publish(fs, folder), "a dataset of this tool (no README.md and funnel.json)")
    if problem:
        raise OutputRefused(f"output.dir {out} {problem}; a run replaces its output folder as a whole: name a new or empty folder")
