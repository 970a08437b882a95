"""The funnel: what happened to every record of a run, counted while it runs, read back once.

Counts are Beam metrics, so they add up across workers and cost nothing to gather. Their
names are built here and parsed here only: a name is a JSON list of its parts, so a reason
or a license that holds a dot (or anything else) reads back as it was written. The
`Funnel` read back from them is what the CLI prints, the card and the report show and
`funnel.json` holds; `in = kept + rejected + failed` always.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

RECORDS, FILTERS, TEACHER, DEDUP = "extract_think", "extract_think.filters", "extract_think.teacher", "extract_think.dedup"
BUCKETS = (25, 50, 100, 200, 400, 800, 1600)
LABELS = tuple(f"<{BUCKETS[0]}" if i == 0 else f"{BUCKETS[i - 1]}-{b - 1}" for i, b in enumerate(BUCKETS)) + (f"{BUCKETS[-1]}+",)
LENGTH_KINDS = ("extraction", "reasoning")
STAGE_COUNTS = ("requests", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "cached_completion_tokens")
# The teacher handler's and dedup's own counts (namespace TEACHER, DEDUP), written by them
# through `counter`/`distribution` with these names and read back in `read`.
CACHE_HITS, TEACHER_ERRORS, PREFETCHED = "cache_hits", "errors", "prefetched"
BATCH_LATENCY_MS, LOAD_MS, LARGE_BUCKETS = "batch_latency_ms", "load_ms", "large_buckets"


def name(*parts: str) -> str:
    return json.dumps([str(p) for p in parts], ensure_ascii=False)


def counter(namespace: str, *parts: str):
    """The Beam counter of one count (namespace: RECORDS, FILTERS, TEACHER or DEDUP)."""
    return Metrics.counter(namespace, name(*parts))


def distribution(namespace: str, *parts: str):
    return Metrics.distribution(namespace, name(*parts))


def bucket(words: int) -> str:
    """The length-histogram bucket of a text of `words` words."""
    return next((LABELS[i] for i, b in enumerate(BUCKETS) if words < b), LABELS[-1])


# What the stages count, by these helpers only.
def _clock() -> None:
    """When a record came in or ended (ms since the epoch): the distribution's min and max
    bound the time records were flowing, start-up and publishing left out."""
    distribution(RECORDS, "clock_ms").update(int(time.time() * 1000))


def count_in(record) -> None:
    counter(RECORDS, "in").inc()
    counter(RECORDS, "license", record.license).inc()
    _clock()


def count_ended(record) -> None:
    counter(RECORDS, record.status, record.reason).inc()
    _clock()


def count_kept(record) -> None:
    counter(RECORDS, "kept").inc()
    _clock()
    counter(RECORDS, "length", "extraction", bucket(len((record.extraction or "").split()))).inc()


def count_reasoning_row(row: dict) -> None:
    counter(RECORDS, "reasoning_rows").inc()
    counter(RECORDS, "length", "reasoning", bucket(len(row["reasoning"].split()))).inc()


def count_split_row(config: str, split: str) -> None:
    counter(RECORDS, "rows", config, split).inc()


def count_call(stage: str, reply, cached: bool) -> None:
    """One teacher call of a stage: paid now, or answered from the cache (what it had cost
    when paid). The prompt is processed and billed once per call, whatever its n samples."""
    prefix = "cached_" if cached else ""
    if not cached:
        counter(TEACHER, "requests", stage).inc()
    counter(TEACHER, f"{prefix}prompt_tokens", stage).inc(max((o.prompt_tokens for o in reply.outputs), default=0))
    counter(TEACHER, f"{prefix}completion_tokens", stage).inc(sum(o.completion_tokens for o in reply.outputs))


def count_endpoints(stats: dict[str, tuple[int, int]]) -> None:
    """Attempts sent to each endpoint of a fleet, and those that failed for a transport reason."""
    for label, (calls, failures) in stats.items():
        counter(TEACHER, "endpoint_calls", label).inc(calls)
        counter(TEACHER, "endpoint_failures", label).inc(failures)


def count_filter(filter_name: str, verdict) -> None:
    counter(FILTERS, "checked", filter_name).inc()
    if verdict.keep:
        counter(FILTERS, "passed", filter_name).inc()
    else:
        counter(FILTERS, "rejected", filter_name, verdict.reason).inc()


@dataclass(frozen=True)
class FilterStep:
    """One filter's share of the funnel: records it checked, passed and rejected (by reason)."""

    filter: str
    checked: int = 0
    passed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    def to_dict(self) -> dict:
        return {"filter": self.filter, "in": self.checked, "passed": self.passed, "rejected": self.rejected,
                "reasons": dict(sorted(self.reasons.items()))}


@dataclass(frozen=True)
class Funnel:
    records_in: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    reasoning_rows: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    licenses: list[str] = field(default_factory=list)
    teacher_requests: int = 0
    cache_hits: int = 0
    prefetched: int = 0  # of the requests, those handed to the engine ahead of their batch
    teacher_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # what the replies served from the cache had cost when paid
    teacher_seconds: float = 0.0  # summed batch latency
    # per stage: requests, prompt_tokens, completion_tokens (paid this run) and
    # cached_prompt_tokens, cached_completion_tokens (what the cached replies had cost)
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    cost: float | None = None  # paid this run, at the recipe's teacher prices; None: no stage has a price
    cost_with_cache: float | None = None  # the same for every reply behind the data, cached ones included
    cost_by_stage: dict[str, float] = field(default_factory=dict)  # paid this run
    unpriced_stages: list[str] = field(default_factory=list)  # stages that used tokens but have no price
    filters: list[FilterStep] = field(default_factory=list)
    lengths: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> bucket -> texts
    run_seconds: float = 0.0
    publish_seconds: float = 0.0  # the charts, card and report, after the pipeline
    flow_seconds: float = 0.0  # from the first record in to the last one out (no start-up, no publishing)
    teacher_load_seconds: float = 0.0  # loading teachers (models, engines, servers), within the flow
    shards: dict[str, int] = field(default_factory=dict)  # config -> parquet files
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> rows
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)  # a fleet's endpoint -> {calls, failures}
    run_id: str = ""

    @classmethod
    def from_counters(cls, counters: dict[tuple[str, str], int], filter_names=(), prices: dict | None = None, **extra) -> "Funnel":
        """From counters by (namespace, name) (`read_counters`), the filters in run order and
        the teacher's price per stage (`recipe.Price`, or None where unknown)."""
        parsed: dict[str, dict[tuple, int]] = {}
        for (ns, raw), value in counters.items():
            if ns in (RECORDS, FILTERS, TEACHER, DEDUP):
                parsed.setdefault(ns, {})[tuple(json.loads(raw))] = value
        main, teacher, by_filter = parsed.get(RECORDS, {}), parsed.get(TEACHER, {}), parsed.get(FILTERS, {})

        def reasons(status: str, table=main, prefix=()) -> dict[str, int]:
            n = len(prefix) + 1
            return {k[n]: v for k, v in sorted(table.items()) if len(k) == n + 1 and k[:n] == (status, *prefix)}

        stages: dict[str, dict[str, int]] = {}
        for key, value in teacher.items():
            if len(key) == 2 and key[0] in STAGE_COUNTS:
                stages.setdefault(key[1], dict.fromkeys(STAGE_COUNTS, 0))[key[0]] = value
        total = {k: sum(st[k] for st in stages.values()) for k in STAGE_COUNTS}
        return cls(
            records_in=main.get(("in",), 0), kept=main.get(("kept",), 0),
            rejected=sum(reasons("rejected").values()), failed=sum(reasons("failed").values()),
            reasoning_rows=main.get(("reasoning_rows",), 0),
            rejected_by_reason=reasons("rejected"), failed_by_reason=reasons("failed"),
            licenses=sorted(k[1] for k in main if k[0] == "license"),
            teacher_requests=total["requests"], cache_hits=teacher.get((CACHE_HITS,), 0),
            prefetched=teacher.get((PREFETCHED,), 0), teacher_errors=teacher.get((TEACHER_ERRORS,), 0),
            prompt_tokens=total["prompt_tokens"], completion_tokens=total["completion_tokens"],
            cached_tokens=total["cached_prompt_tokens"] + total["cached_completion_tokens"],
            stages=dict(sorted(stages.items())), **_costs(stages, prices or {}),
            teacher_seconds=round(teacher.get((BATCH_LATENCY_MS, "sum"), 0) / 1000, 3),
            teacher_load_seconds=round(teacher.get((LOAD_MS,), 0) / 1000, 3),
            flow_seconds=round(max(0, main.get(("clock_ms", "max"), 0) - main.get(("clock_ms", "min"), 0)) / 1000, 3),
            filters=[FilterStep(f, by_filter.get(("checked", f), 0), by_filter.get(("passed", f), 0),
                                reasons("rejected", by_filter, (f,))) for f in filter_names],
            lengths={kind: {label: main.get(("length", kind, label), 0) for label in LABELS} for kind in LENGTH_KINDS},
            splits=_splits(main),
            endpoints={k[1]: {"calls": v, "failures": teacher.get(("endpoint_failures", k[1]), 0)}
                       for k, v in sorted(teacher.items()) if len(k) == 2 and k[0] == "endpoint_calls"},
            **extra,
        )

    def per_kept(self, value: float | int | None) -> float | None:
        return None if value is None else value / max(self.kept, 1)

    @property
    def ended(self) -> int:
        return self.rejected + self.failed

    @property
    def conserved(self) -> bool:
        return self.records_in == self.kept + self.rejected + self.failed

    def config_rows(self) -> dict[str, int]:
        """Rows per published config."""
        return {"extraction": self.kept, "reasoning": self.reasoning_rows, "rejected": self.ended}

    def split_rows(self, config: str) -> dict[str, int]:
        """Rows per split of a config that has any ({} for one with none); a funnel read
        before splits were counted has all its rows in `train`."""
        if self.splits:
            counts = self.splits.get(config, {})
            return {s: counts[s] for s in sorted(counts, key=lambda name: (name != "train", name)) if counts[s]}
        n = self.config_rows()[config]
        return {"train": n} if n else {}

    def to_dict(self) -> dict:
        """The `funnel.json` form (the count of records in is `in`)."""
        out = {"run_id": self.run_id}
        out.update({("in" if f.name == "records_in" else f.name): getattr(self, f.name) for f in fields(self) if f.name != "run_id"})
        out["filters"] = [s.to_dict() for s in self.filters]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Funnel":
        known = {f.name for f in fields(cls)}
        values = {("records_in" if k == "in" else k): v for k, v in data.items()}
        values["filters"] = [FilterStep(s["filter"], s["in"], s["passed"], dict(s["reasons"])) for s in data.get("filters", [])]
        return cls(**{k: v for k, v in values.items() if k in known})


def _splits(main: dict[tuple, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, value in sorted(main.items()):
        if len(key) == 3 and key[0] == "rows" and value:
            out.setdefault(key[1], {})[key[2]] = value
    return out


def _costs(stages: dict[str, dict[str, int]], prices: dict) -> dict:
    """Cost fields from the tokens per stage and each stage's price."""
    priced = {name: prices[name] for name in stages if prices.get(name) is not None}
    unpriced = sorted(n for n, st in stages.items() if n not in priced and st["prompt_tokens"] + st["completion_tokens"]
                      + st["cached_prompt_tokens"] + st["cached_completion_tokens"])
    if not priced:
        return {"unpriced_stages": unpriced}
    by_stage = {n: round(p.of(stages[n]["prompt_tokens"], stages[n]["completion_tokens"]), 6) for n, p in priced.items()}
    with_cache = sum(p.of(stages[n]["prompt_tokens"] + stages[n]["cached_prompt_tokens"],
                          stages[n]["completion_tokens"] + stages[n]["cached_completion_tokens"]) for n, p in priced.items())
    return {"cost": round(sum(by_stage.values()), 6), "cost_with_cache": round(with_cache, 6), "cost_by_stage": by_stage,
            "unpriced_stages": unpriced}


def read_counters(result) -> dict[tuple[str, str], int]:
    """A finished Beam result's counters by (namespace, name); a distribution's sum, min and
    max are read as its name with "sum", "min" or "max" appended."""
    out: dict[tuple[str, str], int] = {}
    metrics = result.metrics().query(MetricsFilter())
    for c in metrics["counters"]:
        key = (c.key.metric.namespace, c.key.metric.name)
        value = c.committed if c.committed is not None else c.attempted
        out[key] = out.get(key, 0) + int(value or 0)
    for d in metrics["distributions"]:
        ns, raw = d.key.metric.namespace, d.key.metric.name
        value = d.committed if d.committed is not None else d.attempted
        if value is None or not value.count:
            continue
        for part, combine in (("sum", lambda a, b: a + b), ("min", min), ("max", max)):
            key = (ns, name(*json.loads(raw), part) if raw.startswith("[") else f"{raw}.{part}")
            v = int(getattr(value, part))
            out[key] = combine(out[key], v) if key in out else v
    return out
