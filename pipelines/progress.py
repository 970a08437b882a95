"""Progress of a running pipeline, for the CLI's display.

DoFns call `tick(step)`; a listener installed by the CLI turns ticks into progress bars.
With Beam's in-process runner the DoFns run in this process and the bars move live; on a
distributed runner there is no listener in the workers and ticks cost nothing.
"""

from __future__ import annotations

import threading
from typing import Callable

_listener: Callable[[str, int], None] | None = None
_lock = threading.Lock()


def set_listener(listener: Callable[[str, int], None] | None) -> None:
    global _listener
    _listener = listener


def tick(step: str, n: int = 1) -> None:
    if _listener is not None:
        with _lock:
            _listener(step, n)


class TqdmBars:
    """One tqdm bar per step, created on the step's first tick, all sized to `total`."""

    def __init__(self, steps: list[str], total: int | None):
        from tqdm.auto import tqdm

        self._bars = {s: tqdm(total=total, desc=f"{s:>11}", unit="rec", position=i, leave=True, dynamic_ncols=True)
                      for i, s in enumerate(steps)}

    def __call__(self, step: str, n: int) -> None:
        if step in self._bars:
            self._bars[step].update(n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
