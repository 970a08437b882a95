"""Run a recipe: build the pipeline, run it, and publish the result locally.

The pipeline writes into a staging folder beside the output; only when it finished are the
card, the resolved recipe and the funnel added and the folder swapped into place, so a run
that dies leaves the previous output intact. The output may be a local folder or any fsspec
URL (s3://bucket/data, gs://...): workers write the shards there themselves.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import fsspec
from fsspec.implementations.local import LocalFileSystem
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.card import render_card
from pipelines.config import ConfigError
from filters.beam_adapter import NAMESPACE as FILTER_NAMESPACE
from pipelines.pipeline import NAMESPACE, build_pipeline
from pipelines.publish import CONFIGS
from pipelines.recipe import Recipe, dump_recipe, load_recipe
from pipelines.report import first_rows, histogram, write_charts, write_report
from pipelines.teachers.handler import NAMESPACE as TEACHER_NAMESPACE


@dataclass
class RunOutcome:
    out_dir: Path | str  # a Path for a local output, else its URL
    funnel: dict
    run_id: str


def _counters(result) -> dict[tuple[str, str], int]:
    """Counters by (namespace, name); a distribution adds its sum as (namespace, name + ".sum")."""
    out: dict[tuple[str, str], int] = {}
    metrics = result.metrics().query(MetricsFilter())
    for c in metrics["counters"]:
        key = (c.key.metric.namespace, c.key.metric.name)
        value = c.committed if c.committed is not None else c.attempted
        out[key] = out.get(key, 0) + int(value or 0)
    for d in metrics["distributions"]:
        key = (d.key.metric.namespace, d.key.metric.name + ".sum")
        value = d.committed if d.committed is not None else d.attempted
        out[key] = out.get(key, 0) + int(value.sum if value is not None else 0)
    return out


def filter_funnel(counters: dict[tuple[str, str], int], filters) -> list[dict]:
    """Per filter, in the order they ran: records checked, passed, rejected by reason."""
    got = {name: v for (ns, name), v in counters.items() if ns == FILTER_NAMESPACE}
    rows = []
    for f in filters:
        reasons = {k.split(".", 2)[2]: v for k, v in got.items() if k.startswith(f"rejected.{f.name}.")}
        rows.append({"filter": f.name, "in": got.get(f"checked.{f.name}", 0), "passed": got.get(f"passed.{f.name}", 0),
                     "rejected": sum(reasons.values()), "reasons": dict(sorted(reasons.items()))})
    return rows


def funnel_from_counters(counters: dict[tuple[str, str], int], filters=()) -> dict:
    main = {name: v for (ns, name), v in counters.items() if ns == NAMESPACE}
    teacher = {name: v for (ns, name), v in counters.items() if ns == TEACHER_NAMESPACE}
    return {
        "in": main.get("in", 0),
        "kept": main.get("kept", 0),
        "rejected": main.get("rejected", 0),
        "failed": main.get("failed", 0),
        "reasoning_rows": main.get("reasoning_rows", 0),
        "rejected_by_reason": {k.split(".", 1)[1]: v for k, v in main.items() if k.startswith("rejected.")},
        "failed_by_reason": {k.split(".", 1)[1]: v for k, v in main.items() if k.startswith("failed.")},
        "licenses": sorted(name for (ns, name) in counters if ns == f"{NAMESPACE}.licenses"),
        "teacher_requests": teacher.get("requests", 0),
        "cache_hits": teacher.get("cache_hits", 0),
        "prefetched": teacher.get("prefetched", 0),  # of the requests, those handed to the engine ahead of their batch
        "teacher_errors": teacher.get("errors", 0),
        "prompt_tokens": teacher.get("prompt_tokens", 0),
        "completion_tokens": teacher.get("completion_tokens", 0),
        "cached_tokens": teacher.get("cached_tokens", 0),
        "teacher_seconds": round(teacher.get("batch_latency_ms.sum", 0) / 1000, 3),
        "filters": filter_funnel(counters, filters),
    }


def pipeline_options(recipe: Recipe) -> PipelineOptions:
    return PipelineOptions(list(recipe.runner.options), runner=recipe.runner.runner)


def output_location(directory: str) -> str:
    """A local output folder as an absolute path (workers in other processes see the same
    folder), any other fsspec URL (s3://, gs://, ...) as given."""
    if directory.startswith("file://"):
        directory = directory[len("file://"):]
    if "://" not in directory:
        return str(Path(directory).resolve())
    if "/" not in directory.split("://", 1)[1].strip("/"):
        raise ConfigError(f"output.dir {directory!r}: name a folder inside the bucket (the run stages and swaps beside it)")
    return directory.rstrip("/")


def run(recipe: Recipe | str | Path, overrides: tuple[str, ...] = (), test_pipeline: beam.Pipeline | None = None) -> RunOutcome:
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    out = output_location(recipe.output.dir)
    fs, _ = fsspec.core.url_to_fs(out)
    parent, name = out.rsplit("/", 1)
    fs.makedirs(parent, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    staging = f"{parent}/.{name}.partial-{run_id}"
    try:
        p = test_pipeline or beam.Pipeline(options=pipeline_options(recipe))
        build_pipeline(p, recipe, staging, run_id)
        started = time.perf_counter()
        result = p.run()
        result.wait_until_finish()
        counters = _counters(result)
        funnel = funnel_from_counters(counters, recipe.filters)
        funnel["run_seconds"] = round(time.perf_counter() - started, 3)
        if funnel["in"] != funnel["kept"] + funnel["rejected"] + funnel["failed"]:
            raise RuntimeError(f"records were lost: {funnel}")
        funnel["shards"] = {c: n for c in CONFIGS if (n := len(fs.glob(f"{staging}/{c}/train-{run_id}-*.parquet")))}
        main = {name: v for (ns, name), v in counters.items() if ns == NAMESPACE}
        funnel["lengths"] = {kind: dict(histogram(main, kind)) for kind in ("extraction", "reasoning")}
        with tempfile.TemporaryDirectory() as tmp:  # the card and report, made here, then put beside the data
            meta = Path(tmp)
            (meta / "recipe.yaml").write_text(dump_recipe(recipe))
            (meta / "funnel.json").write_text(json.dumps({"run_id": run_id, **funnel}, indent=2) + "\n")
            charts = write_charts(meta, funnel, main)
            examples = first_rows(staging, "extraction", 3, ["id", "prompt", "extraction", "questions"])
            (meta / "README.md").write_text(render_card(recipe, funnel, funnel["licenses"] or ["unknown"], run_id, charts, examples))
            write_report(meta, staging, recipe.name, funnel, charts)
            for f in sorted(meta.rglob("*")):
                if f.is_file():
                    target = f"{staging}/{f.relative_to(meta).as_posix()}"
                    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                    fs.put_file(str(f), target)
        _swap(fs, staging, out)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
    return RunOutcome(Path(out) if "://" not in out else out, funnel, run_id)


def _swap(fs, staging: str, out: str) -> None:
    """The staging folder becomes the output. On a local disk each step is a rename, so a
    reader sees the old dataset or the new one; on object storage a move copies every file
    (the old version is moved aside first, then deleted)."""
    parent, name = out.rsplit("/", 1)
    old = f"{parent}/.{name}.old-{uuid.uuid4().hex[:8]}"
    if fs.exists(out):
        _move(fs, out, old)
    _move(fs, staging, out)
    if fs.exists(old):
        fs.rm(old, recursive=True)


def _move(fs, source: str, target: str) -> None:
    if isinstance(fs, LocalFileSystem):
        fs.mv(source, target)  # one rename
        return
    _, root = fsspec.core.url_to_fs(source)
    files = fs.find(source)  # object stores have no folders to rename: copy each object, then delete
    fs.copy(files, [f"{target}/{f[len(root) + 1:]}" for f in files])
    fs.rm(source, recursive=True)
