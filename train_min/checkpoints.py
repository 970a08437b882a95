"""Checkpoints that a long run loses nothing to.

`out/checkpoints/step-00001200.pt` holds everything an exact resume needs (weights,
optimizer moments, schedule, RNG states, the data position, the history, the config). One
is written every `every` steps or every `minutes`, whichever comes first (the clock is
process 0's, read when the loop reads the device anyway, and shared with the others), each
written whole under a temporary name and then renamed, so a kill mid-write leaves the
previous one; past `keep`, the oldest go. A run resumes from the newest that loads.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch

_NAME = re.compile(r"step-(\d+)\.pt")


class Checkpoints:
    def __init__(self, out: Path, every: int, minutes: float, keep: int):
        self.folder, self.every, self.minutes, self.keep = Path(out) / "checkpoints", every, minutes, max(1, keep)
        self._since = time.monotonic()

    def paths(self) -> list[Path]:
        """The checkpoints on disk, oldest first."""
        found = [(int(m.group(1)), p) for p in self.folder.glob("step-*.pt") if (m := _NAME.fullmatch(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self, device: str) -> dict | None:
        """The newest checkpoint that loads (a damaged one is skipped), or None."""
        for path in reversed(self.paths()):
            try:
                return torch.load(path, map_location=device, weights_only=False)
            except Exception:  # noqa: BLE001 - cut off, truncated pickle, not a zip: a damaged checkpoint, skipped
                continue
        return None

    def due(self, step: int, clock_read: bool, world: int, device: str) -> bool:
        """Whether to save after `step`: every `every` steps, or (where the loop read the device,
        `clock_read`) once `minutes` have passed since the last save, by process 0's clock."""
        if self.every and step % self.every == 0:
            return True
        if not self.minutes or not clock_read:
            return False
        late = torch.tensor([time.monotonic() - self._since >= 60 * self.minutes], dtype=torch.uint8, device=device)
        if world > 1:
            torch.distributed.broadcast(late, src=0)
        return bool(late.item())

    def save(self, state: dict, step: int) -> Path:
        """Write one checkpoint (process 0 calls this), then drop the oldest past `keep`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step-{step:08d}.pt"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        self._since = time.monotonic()
        return path

    def saved(self) -> None:
        """The clock restarts on every process when a checkpoint was written."""
        self._since = time.monotonic()
