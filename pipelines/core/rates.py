"""A share of k in n with its 95% Wilson score interval: what a sample of labels says of a
rate (precision, recall, false accepts), with the counts behind it."""

from __future__ import annotations

import math

Z95 = 1.959964


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of k successes in n trials ((0, 1) for n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int, at_most: bool = False) -> dict:
    """k of n with its 95% Wilson interval; `at_most`: a bound (from 0), for a rate that is
    promised not to exceed it."""
    lo, hi = wilson(k, n)
    return {"value": round(k / n, 4) if n else None, "low": 0.0 if at_most else round(lo, 4), "high": round(hi, 4), "k": k, "n": n}
