"""The Beam pipeline of one recipe run:

sources -> checks, images, dedup -> statements -> focus -> extraction -> think -> filters -> write

Teacher calls go through RunInference with one ModelHandler per stage (`TeacherModelHandler`,
keyed by record). Rows the sources cannot use (bad images, failed record checks, duplicates) end as
rejected before any teacher call. Records that fail in a stage flow on untouched and end in
`rejected` with status "failed"; filters split the rest into kept and rejected. Counters in the
`extract_think` namespace make the funnel; in = kept + rejected + failed.
"""

from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from filters.decontamination import eval_entry
from filters.registry import SOURCE_ONLY
from pipelines.beam.filtering import ApplyFilters
from pipelines.beam.sink import WriteShards
from pipelines.config import ConfigError
from pipelines.config.recipe import Recipe
from pipelines.core.splits import SPLITS, split_of
from pipelines.observe import funnel, progress
from pipelines.publishing.rows import Layout
from pipelines.sources.beam_read import ReadSources
from pipelines.sources.dedup import Deduplicate
from pipelines.sources.files import file_problems
from pipelines.teachers.handler import KeyedTeacherHandler, Prefetch, TeacherModelHandler
from pipelines.teachers.stage import Stage, build_stages
from pipelines.teachers.tokens import token_batches


def _count_in(record):
    funnel.count_in(record)
    progress.tick("source")
    return record


def _count_ended(record):
    funnel.count_ended(record)
    progress.tick("written", status=record.status)
    return record


def _count_kept(record):
    funnel.count_kept(record)
    progress.tick("written", status="ok")
    return record


def _count_reasoning(row):
    funnel.count_reasoning_row(row)
    return row


def _split_index(row, _n, config: str, fraction: float) -> int:
    split = split_of(row, fraction)
    funnel.count_split_row(config, split)
    return SPLITS.index(split)


def _failed_here(before, after):
    if after.status == "failed" and before.status == "ok":
        progress.failure(after.reason, after.detail)
    return after


def _prepare(record, stage: Stage):
    prepared, requests = stage.prepare(record)
    return _failed_here(record, prepared), requests


def _parse(element, stage: Stage):
    record, result = element
    progress.tick(stage.name)
    return _failed_here(record, stage.apply(record, result.example, result.inference))


class RunStage(beam.PTransform):
    """Build the prompts, query the teacher, parse the replies. `threads`: the worker threads
    when every worker runs in this process (`worker_threads`): then an engine needs no
    sharing across processes, and with one thread its requests are handed to it ahead of
    their batch (`Prefetch`; several threads keep it busy with their own batches)."""

    def __init__(self, stage: Stage, cache_dir: str | None, threads: int | None = None):
        super().__init__()
        self._stage = stage
        self._cache_dir = cache_dir
        self._threads = threads

    def expand(self, records):
        stage, t = self._stage, self._stage.teacher
        handler = KeyedTeacherHandler(TeacherModelHandler(t, self._cache_dir, one_process=self._threads is not None))
        prompts = records | "BuildPrompts" >> beam.Map(_prepare, stage)
        if t.backend == "vllm" and t.vllm.mode == "engine" and t.vllm.prefetch and self._threads == 1:
            prompts = prompts | "Prefetch" >> beam.ParDo(Prefetch(t, self._cache_dir, t.vllm.prefetch))
        by_tokens = token_batches(stage.teacher)
        if by_tokens is not None:  # batches cut by estimated tokens, not record count
            prompts, handler = prompts | "BatchByTokens" >> by_tokens, handler.with_no_batching()
        return prompts | "QueryTeacher" >> RunInference(handler) | "ParseReplies" >> beam.Map(_parse, stage)


def worker_threads(p: beam.Pipeline) -> int | None:
    """How many worker threads run `p` when they all run in this process (Beam's local runners:
    one, or `direct_num_workers` with `--direct_running_mode=multi_threading`); None when
    workers may run in other processes (multi_processing, portable and remote runners)."""
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner, SwitchingDirectRunner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    if not isinstance(p.runner, (FnApiRunner, SwitchingDirectRunner, BundleBasedDirectRunner)):
        return None
    direct = p.options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_processing":
        return None
    if direct.direct_running_mode == "multi_threading":
        return direct.direct_num_workers or os.cpu_count() or 1
    return 1


def build_pipeline(p: beam.Pipeline, recipe: Recipe, out_prefix: str, run_id: str) -> None:
    """One chain from the read to the writes, without a shuffle or a flatten of records in
    between: records that end early (unusable at the source, copies, contaminated) flow on
    untouched (the stages make no call for them), the last filter step splits kept from
    ended, and workers write the shards themselves (sink.py) to `out_prefix`, any fsspec
    URL. On Beam's local runner the whole chain runs fused, record by record, so memory does
    not grow with the run; copies are found on a second read of the sources
    (`Deduplicate(keys_from=...)`), whose signatures are all that is grouped."""
    missing = [p for s in recipe.sources for p in file_problems(s)] + [p for s in recipe.eval_sets for p in file_problems(s, "eval_sets")]
    if missing:  # every source's missing files at once, before anything runs
        raise ConfigError("\n".join(missing))
    stages = build_stages(recipe)
    records = p | "ReadSources" >> ReadSources(recipe.sources, recipe.ingest) | "CountIn" >> beam.Map(_count_in)
    dedup = recipe.ingest.dedup
    if dedup.exact or dedup.near:
        keys = p | "ReadForCopies" >> ReadSources(recipe.sources, recipe.ingest, signatures=True)
        records = records | "Deduplicate" >> Deduplicate(dedup, keys_from=keys, sources=recipe.sources)
    early = [f for f in recipe.filters if f.name in SOURCE_ONLY]
    if early:  # filters that read only the sources (decontamination) run before any teacher call
        entries = None
        if recipe.eval_sets:
            entries = (p | "ReadEvalSets" >> ReadSources(recipe.eval_sets, recipe.ingest)
                       | "UsableEvalItems" >> beam.Filter(lambda r: r.status == "ok") | "EvalEntries" >> beam.Map(eval_entry))
        records = records | "EarlyFilters" >> ApplyFilters(early, entries, split=False)
    threads = worker_threads(p)
    for stage in stages:
        records = records | f"Stage[{stage.name}]" >> RunStage(stage, recipe.cache.dir, threads)
    layout = Layout.of(recipe)
    split = records | "Filters" >> ApplyFilters([f for f in recipe.filters if f.name not in SOURCE_ONLY], check=layout.row_problem)

    kept = split.kept | "CountKept" >> beam.Map(_count_kept)
    rows = {
        "extraction": kept | "ExtractionRows" >> beam.Map(layout.extraction_row),
        "reasoning": kept | "ReasoningRows" >> beam.FlatMap(layout.reasoning_rows) | "CountReasoning" >> beam.Map(_count_reasoning),
        "rejected": split.ended | "CountEnded" >> beam.Map(_count_ended) | "RejectedRows" >> beam.Map(layout.rejected_row),
    }
    fraction = recipe.output.test_fraction
    for config, pcoll in rows.items():  # the run id in the file names lets the card name exactly this run's files
        by_split = pcoll | f"Split[{config}]" >> beam.Partition(_split_index, len(SPLITS), config, fraction)
        for split, part in zip(SPLITS, by_split):
            part | f"Write[{config}][{split}]" >> WriteShards(out_prefix, config, run_id, recipe.output.rows_per_shard,
                                                              layout.features(config), split)
