"""Beam's known-harmless warnings, kept out of what a user reads.

Beam logs a few warnings on the root logger at import and on every bundle ("apitools not
found ...", "Resource module is not available ..."): they say nothing about the run and break
the progress bars. `quiet()` drops them (and only them); the CLI and the Python API call it
before Beam is imported, and `run_recipe(..., quiet=False)` keeps them.
"""

from __future__ import annotations

import logging


class BeamNoise(logging.Filter):
    NOISE = ("apitools not found", "Resource module is not available")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in str(record.msg) for n in self.NOISE)


def quiet() -> None:
    """Drop Beam's harmless warnings from the root logger (once, however often called)."""
    root = logging.getLogger()
    if not any(isinstance(f, BeamNoise) for f in root.filters):
        root.addFilter(BeamNoise())
