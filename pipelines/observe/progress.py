"""Progress of a running pipeline, for the CLI's display.

DoFns call `tick(step)` (with the record's status when it is written) and `failure(reason,
detail)` where a record fails, the teacher handler `tokens(stage, n)` for the tokens it paid
for and `endpoints(up, total)` for a fleet's health; a display installed by the CLI turns
them into progress bars (a terminal) or log lines (a file, a CI log, `--no-progress`). With
Beam's in-process runner the DoFns run in this process and the display moves live; on a
distributed runner there is no display in the workers and ticks cost nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

from pipelines.core.secrets import printable

_listener: "Display | None" = None
_lock = threading.Lock()


def set_listener(listener: "Display | None") -> None:
    global _listener
    _listener = listener


def tick(step: str, n: int = 1, status: str | None = None) -> None:
    if _listener is not None:
        with _lock:
            _listener.tick(step, n, status)


def tokens(stage: str, n: int) -> None:
    if _listener is not None and n:
        with _lock:
            _listener.tokens(stage, n)


def failure(reason: str, detail: str | None) -> None:
    """A record failed (a teacher error, a template over its limit), as it happens: the display
    counts it and shows the last reason long before the record is written."""
    if _listener is not None:
        with _lock:
            _listener.failure(reason, detail)


def endpoints(up: int, total: int) -> None:
    """A fleet's endpoints not resting after a failure, of all."""
    if _listener is not None:
        with _lock:
            _listener.endpoints_up = (up, total)


class Display:
    """What the displays share: records per step, statuses written, tokens per stage."""

    def __init__(self, steps: list[str], total: int | None):
        self.steps, self.total = steps, total
        self.done: Counter = Counter()
        self.statuses: Counter = Counter()
        self.paid_tokens: Counter = Counter()
        self.failing = 0  # records failed so far, counted where they failed
        self.last_failure: str | None = None
        self.endpoints_up: tuple[int, int] | None = None
        self.start = time.monotonic()

    def tick(self, step: str, n: int, status: str | None) -> None:
        self.done[step] += n
        if status:
            self.statuses["kept" if status == "ok" else status] += n

    def tokens(self, stage: str, n: int) -> None:
        self.paid_tokens[stage] += n

    def failure(self, reason: str, detail: str | None) -> None:
        self.failing += 1
        self.last_failure = printable(f"{reason}: {detail}" if detail else reason)[:120]

    def outcome(self) -> str:
        line = (f"kept {self.statuses['kept']}, rejected {self.statuses['rejected']}, "
                f"failed {max(self.statuses['failed'], self.failing)}")
        if self.endpoints_up:
            line += f"; endpoints up {self.endpoints_up[0]}/{self.endpoints_up[1]}"
        return line + (f"; last failure {self.last_failure}" if self.last_failure else "")

    def close(self) -> None:
        pass


class TqdmBars(Display):
    """One tqdm bar per step, all sized to `total`; the last one shows kept / rejected /
    failed, a stage's bar its teacher's tokens per second."""

    def __init__(self, steps: list[str], total: int | None):
        super().__init__(steps, total)
        from tqdm.auto import tqdm

        self._bars = {s: tqdm(total=total, desc=f"{s:>11}", unit="rec", position=i, leave=True, dynamic_ncols=True)
                      for i, s in enumerate(steps)}

    def failure(self, reason: str, detail: str | None) -> None:
        super().failure(reason, detail)
        self._bars[self.steps[-1]].set_postfix_str(self.outcome())  # the last bar says it now, not when the record is written

    def tick(self, step: str, n: int, status: str | None) -> None:
        super().tick(step, n, status)
        bar = self._bars.get(step)
        if bar is None:
            return
        if status:
            bar.set_postfix_str(self.outcome(), refresh=False)
        elif self.paid_tokens[step]:
            rate = self.paid_tokens[step] / max(time.monotonic() - self.start, 1e-9)
            bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
        bar.update(n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def bars_fit() -> bool:
    """Whether progress bars can be drawn: stderr is a terminal with a width (a pseudo-terminal
    that reports 0 columns, as some CI runners give, gets log lines instead of blank ones)."""
    import os

    if not sys.stderr.isatty():
        return False
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except OSError:
        return False


class LogLines(Display):
    """One log line per step every `every` seconds (and at the end): records done, rate,
    ETA, tokens per second; the written step with kept / rejected / failed. A timer emits
    them, so a long teacher batch still shows a sign of life."""

    def __init__(self, steps: list[str], total: int | None, every: float = 30.0, emit=None):
        super().__init__(steps, total)
        self._emit = emit or (lambda line: print(line, file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            with _lock:
                self.report()

    def _state(self) -> tuple:
        return tuple(self.done[step] for step in self.steps), self.outcome()

    def report(self) -> None:
        self._reported = self._state()
        elapsed = max(time.monotonic() - self.start, 1e-9)
        for step in self.steps:
            n = self.done[step]
            rate = n / elapsed
            line = f"{step}: {n}" + (f"/{self.total}" if self.total else "") + f" records, {rate:.1f}/s"
            if self.total and rate > 0 and n < self.total:
                line += f", ETA {_duration((self.total - n) / rate)}"
            if self.paid_tokens[step]:
                line += f", {self.paid_tokens[step] / elapsed:,.0f} tok/s"
            if step == self.steps[-1]:
                line += f"; {self.outcome()}"
            self._emit(f"[{_duration(elapsed)}] {line}")

    def close(self) -> None:
        """The last block, unless the timer just printed this very state."""
        self._stop.set()
        self._thread.join()
        if getattr(self, "_reported", None) != self._state():
            self.report()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
