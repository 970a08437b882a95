"""A fleet of OpenAI-compatible endpoints serving one model (vLLM, SGLang or TGI replicas, one
per GPU or per node): which endpoint takes the next attempt, and which are resting.

Each attempt goes to the endpoint with the fewest requests in flight among those not resting
(ties to the one used least); an endpoint whose attempt fails for a transport reason
(connection refused or reset, timeout, 5xx, 429) rests for `cooldown_s`, doubled after each
further failure up to 8x, and is tried again after it; one success ends its rest. When
every endpoint rests, the one whose rest ends first is tried anyway: a request never waits
for a fleet that may have come back. Calls and failures are counted per endpoint.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from dataclasses import dataclass

from pipelines.core.secrets import scrub


def endpoint_label(url: str) -> str:
    """An endpoint as the funnel and the progress show it: host:port, no user info or path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


@dataclass
class Endpoint:
    url: str
    client: object = None  # the openai client of this endpoint
    in_flight: int = 0
    calls: int = 0  # attempts sent
    failures: int = 0  # attempts that failed for a transport reason
    streak: int = 0  # failures since the last success
    rests_until: float = 0.0

    @property
    def label(self) -> str:
        return endpoint_label(self.url)


class Fleet:
    def __init__(self, urls: list[str], cooldown_s: float, clock=time.monotonic):
        if not urls:
            raise ValueError("a fleet needs at least one endpoint")
        self.endpoints = [Endpoint(u) for u in dict.fromkeys(urls)]  # the same URL twice is one endpoint
        self.cooldown_s, self._clock = cooldown_s, clock
        self._lock = threading.Lock()  # attempts run on the teacher's event loop; the counts are read from Beam's threads
        self._reported: dict[str, tuple[int, int]] = {}

    def pick(self) -> Endpoint:
        """The endpoint for the next attempt (see the module), marked as having one more in flight."""
        with self._lock:
            now = self._clock()
            awake = [e for e in self.endpoints if e.rests_until <= now]
            chosen = min(awake, key=lambda e: (e.in_flight, e.calls)) if awake else min(self.endpoints, key=lambda e: e.rests_until)
            chosen.in_flight += 1
            chosen.calls += 1
            return chosen

    def done(self, endpoint: Endpoint, transport_failure: bool) -> None:
        with self._lock:
            endpoint.in_flight -= 1
            if transport_failure:
                endpoint.failures += 1
                endpoint.streak += 1
                endpoint.rests_until = self._clock() + self.cooldown_s * min(8, 2 ** (endpoint.streak - 1))
            else:
                endpoint.streak, endpoint.rests_until = 0, 0.0

    def awake(self) -> int:
        now = self._clock()
        return sum(e.rests_until <= now for e in self.endpoints)

    def stats(self) -> dict[str, tuple[int, int]]:
        """label -> (calls, failures), since the start."""
        with self._lock:
            return {scrub(e.label): (e.calls, e.failures) for e in self.endpoints}

    def take_stats(self) -> dict[str, tuple[int, int]]:
        """label -> (calls, failures) since the last take: each attempt is counted once, however
        many stages share this teacher."""
        with self._lock:
            now = {scrub(e.label): (e.calls, e.failures) for e in self.endpoints}
            delta = {k: (c - self._reported.get(k, (0, 0))[0], f - self._reported.get(k, (0, 0))[1]) for k, (c, f) in now.items()}
            self._reported = now
        return {k: v for k, v in delta.items() if v != (0, 0)}
