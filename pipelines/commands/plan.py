"""`extract-think plan`: run a recipe on its first records and extrapolate to the whole source.

The sample is a real run of the recipe (the same teacher, filters and reply cache), limited
to N records in all and published into a scratch folder, never the recipe's output. Its
funnel, scaled by (records the sources hold) / (records in the sample), estimates the whole
run: records kept, teacher calls, tokens, time and cost. Calls and tokens count the replies
behind the data, cached or paid, so a sample answered from the cache (a second `plan`) gives
the same estimate; the real run then pays only for the records past the sample.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

from pipelines.config.recipe import Recipe
from pipelines.config.source_config import SourceConfig
from pipelines.observe.funnel import Funnel


def source_size(config: SourceConfig) -> int | None:
    """How many records a source will read (its `limit` applied), or None where it cannot be
    known without reading it all (a streamed set whose card gives no split size)."""
    if config.kind == "synthetic":
        from pipelines.sources.synthetic import num_scenes

        return num_scenes(config)
    if config.kind == "hf":
        from pipelines.sources.hf import open_dataset

        ds = open_dataset(config.hf, None, config.name)
        if not config.hf.streaming:
            n = len(ds)
        else:
            split = (ds.info.splits or {}).get(config.hf.split) if ds.info else None
            n = split.num_examples if split else None
        return None if n is None else (n if config.limit is None else min(n, config.limit))
    from pipelines.sources import file_entries

    return sum(1 for _ in file_entries(config))


def sample_recipe(recipe: Recipe, limit: int | None, out_dir: str) -> Recipe:
    """The recipe limited to about `limit` records in all (shared evenly by its sources; None:
    all), written to `out_dir`, publishing whatever it keeps, whatever failed."""
    sources = recipe.sources
    if limit is not None:
        each = max(1, math.ceil(limit / len(recipe.sources)))
        sources = [dataclasses.replace(s, limit=each if s.limit is None else min(s.limit, each)) for s in recipe.sources]
    output = dataclasses.replace(recipe.output, dir=out_dir, min_kept=0, max_failed_share=1.0)
    return dataclasses.replace(recipe, sources=sources, output=output)


def estimate(sample: Funnel, total: int | None) -> dict:
    """The whole run, scaled from the sample's funnel."""
    calls = sample.teacher_requests + sample.cache_hits
    tokens = sample.prompt_tokens + sample.completion_tokens + sample.cached_tokens
    out = {"sample": {"records": sample.records_in, "kept": sample.kept, "rejected": sample.rejected, "failed": sample.failed,
                      "teacher_calls": calls, "teacher_calls_paid": sample.teacher_requests, "tokens": tokens,
                      "seconds": sample.run_seconds, "flow_seconds": sample.flow_seconds,
                      "teacher_seconds": sample.teacher_seconds, "teacher_load_seconds": sample.teacher_load_seconds,
                      "cost": sample.cost_with_cache, "cost_paid": sample.cost},
           "keep_rate": sample.kept / sample.records_in if sample.records_in else None,
           "records": total, "unpriced_stages": sample.unpriced_stages}
    if total is None or not sample.records_in:
        return out
    factor = total / sample.records_in
    if sample.cache_hits == 0:  # the sample timed the teacher for every call: scale the time records flowed
        flowing = max(0.0, sample.flow_seconds - sample.teacher_load_seconds)
        seconds = sample.run_seconds - flowing + flowing * factor  # start-up, teacher load and publishing once
        basis = "the sample's records flowing through (start-up, teacher load and publishing counted once)"
    elif sample.teacher_requests:  # some calls were cached: scale the teacher's time per call paid
        per_call = max(0.0, sample.teacher_seconds - sample.teacher_load_seconds) / sample.teacher_requests
        seconds, basis = per_call * calls * factor, "the teacher's seconds per paid call (nothing else counted)"
    else:
        seconds, basis = None, "unknown: every call of the sample came from the cache (plan again with --no-cache to time the teacher)"
    out.update({"kept": round(sample.kept * factor), "teacher_calls": round(calls * factor), "tokens": round(tokens * factor),
                "seconds": None if seconds is None else round(seconds, 1), "seconds_basis": basis,
                "cost": None if sample.cost_with_cache is None else round(sample.cost_with_cache * factor, 4)})
    return out


def plan(recipe: Recipe, limit: int, out_dir: str | Path | None = None) -> dict:
    """Run `recipe` on its first `limit` records into `out_dir` (a scratch folder when None,
    deleted after) and estimate the whole run."""
    from pipelines.commands.run import run

    totals = [source_size(s) for s in recipe.sources]
    total = None if any(t is None for t in totals) else sum(totals)
    with tempfile.TemporaryDirectory(prefix="extract-think-plan-") as scratch:
        target = str(out_dir) if out_dir else str(Path(scratch) / "sample")
        outcome = run(sample_recipe(recipe, limit, target))
    result = estimate(outcome.funnel, total)
    result["sample_dir"] = str(out_dir) if out_dir else None
    return result


def render(result: dict) -> list[str]:
    s = result["sample"]

    def fmt(v, spec="{:,}"):
        return "unknown" if v is None else spec.format(v)

    cost = (lambda v: fmt(v, "{:.4f}")) if s["cost"] is not None else (lambda v: "no price (teacher.price)")
    rate = "-" if result["keep_rate"] is None else f"{result['keep_rate']:.1%}"
    lines = [f"Sample: {s['records']} records -> {s['kept']} kept ({rate}), {s['rejected']} rejected, {s['failed']} failed; "
             f"{s['teacher_calls']} teacher calls ({s['teacher_calls_paid']} paid), {s['tokens']:,} tokens, {s['seconds']:.1f} s",
             "", "| | sample | whole run (estimate) |", "|---|---|---|",
             f"| records | {s['records']} | {fmt(result['records'])} |",
             f"| kept | {s['kept']} | {fmt(result.get('kept'))} |",
             f"| teacher calls | {s['teacher_calls']} | {fmt(result.get('teacher_calls'))} |",
             f"| teacher tokens | {s['tokens']:,} | {fmt(result.get('tokens'))} |",
             f"| time | {s['seconds']:.1f} s | {_duration(result.get('seconds'))} |",
             f"| cost | {cost(s['cost'])} | {cost(result.get('cost')) if s['cost'] is not None else cost(None)} |"]
    if result["records"] is None:
        lines.append("\nThe sources' size is unknown (a streamed set without a split size): only the sample is shown.")
    elif result.get("seconds") is None and result.get("seconds_basis"):
        lines.append(f"\nTime: {result['seconds_basis']}.")
    elif result.get("seconds_basis"):
        lines.append(f"\nTime estimated from {result['seconds_basis']}.")
    if s["cost"] is not None and result["unpriced_stages"]:
        lines.append(f"Stages without a price, not in the cost: {', '.join(result['unpriced_stages'])}.")
    if s["failed"]:
        lines.append(f"{s['failed']} of {s['records']} sample records failed: look at the teacher before the whole run.")
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
