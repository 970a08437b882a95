"""The lock file: every package of a virtualenv whose suite passed, at its exact version.

    python .ci/write_lock.py VENV_PYTHON REMOVED_TXT LOCK   write LOCK from what VENV_PYTHON's
                                                           environment holds, plus the packages
                                                           listed in REMOVED_TXT (installed on
                                                           the way, then removed by the Makefile)
    python .ci/write_lock.py --diff OLD NEW                 print which versions changed

The lock is a pip constraints file (`pip install -c .ci/lock.txt ...`): it fixes versions, not
what gets installed, so the demo's smaller install and the test install share it.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def pins(text: str) -> dict[str, str]:
    """{normalised name: version} of the `name==version` lines of a freeze or a lock."""
    out = {}
    for line in text.splitlines():
        m = PIN.match(line.strip())
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def write(python: str, removed: str, lock: str) -> None:
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout
    versions = pins(frozen)
    if Path(removed).exists():
        versions.update(pins(Path(removed).read_text()))
    info = subprocess.run([python, "-c", "import platform, sys; print(sys.version.split()[0], platform.machine())"],
                          check=True, capture_output=True, text=True).stdout.split()
    head = [
        "# The exact versions `make test` passed with; every `make` install is constrained by it.",
        f"# Written by `make lock` on {datetime.date.today()} for CPython {info[0]} on Linux {info[1]}.",
        "# Refresh with `make upgrade` (docs/environment.md); do not edit by hand.",
    ]
    Path(lock).write_text("\n".join(head + [f"{name}=={v}" for name, v in sorted(versions.items())]) + "\n")
    print(f"{lock}: {len(versions)} packages")


def diff(old: str, new: str) -> None:
    a, b = pins(Path(old).read_text()), pins(Path(new).read_text())
    changed = [(n, a.get(n), b.get(n)) for n in sorted(a.keys() | b.keys()) if a.get(n) != b.get(n)]
    for name, before, after in changed:
        print(f"  {name:32s} {before or '(none)':>18s} -> {after or '(removed)'}")
    print(f"{len(changed)} of {len(b)} packages changed")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--diff"] and len(sys.argv) == 4:
        diff(*sys.argv[2:])
    elif len(sys.argv) == 4:
        write(*sys.argv[1:])
    else:
        sys.exit(__doc__)
