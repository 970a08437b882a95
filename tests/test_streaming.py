"""Streaming: between reading a record and writing its row nothing groups, shuffles or
flattens records, so Beam's local runner fuses the whole chain into one stage that handles
one record at a time and memory does not grow with the run (measured at 1k and 50k records
in tests/bench/bench_memory.py). Only units of work (ranges of scene numbers, file entries), copy
signatures and written file names cross stage boundaries."""

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import fn_runner

from pipelines.beam.pipeline import build_pipeline
from pipelines.config.recipe import read_recipe


def _stages(overrides):
    recipe = read_recipe("quickstart", overrides)
    runner = fn_runner.FnApiRunner()
    p = beam.Pipeline(runner=runner)
    build_pipeline(p, recipe, "/tmp/unused", "run")
    _, stages = runner.create_stages(p.to_runner_api())
    return recipe, [[t.unique_name for t in s.transforms] for s in stages]


@pytest.mark.parametrize("overrides", [
    [],  # synthetic scenes, exact dedup, the default filters
    ["sources=[{name: a, kind: synthetic}, {name: b, kind: synthetic, synthetic: {seed: 7}}]", "ingest.dedup.near=true",
     "stages.extraction.teacher.max_batch_tokens=4096"],
])
def test_read_stages_filters_and_writes_run_fused_in_one_stage(overrides):
    recipe, stages = _stages(overrides)
    names = ["ReadSources/Load", "CountIn", "Deduplicate/MarkCopies", "Filters"] + [
        f"Write[{c}][{split}]/WriteFiles" for c in ("extraction", "reasoning", "rejected") for split in ("train", "test")] + [
        f"Stage[{s}]/QueryTeacher" for s in ("statements", "focus", "extraction", "think")]
    holding = [[n for n in names if any(t.startswith(n) for t in s)] for s in stages]
    assert max(holding, key=len) == names  # every step of a record's life in a single fused stage
    # the copies are found on the second read, whose stages hold signatures, not records
    assert any(t.startswith("ReadForCopies/Load") for s in stages for t in s)
