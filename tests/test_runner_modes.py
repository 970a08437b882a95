"""The whole pipeline under Beam's local runner in multi-process mode, where the workers are
separate processes that share nothing but storage (the reply cache, the output files): the
same dataset and the same counts as the in-process run."""

import os

import pytest

from pipelines.beam.pipeline import worker_threads
from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from tests.bench.bench_resume import dataset_rows

pytestmark = pytest.mark.slow


def test_multi_process_workers_publish_what_the_in_process_run_publishes(tmp_path):
    base = ["sources.0.synthetic.num_records=40", "sources.0.synthetic.image_size=64"]
    one = run(read_recipe("quickstart", base + [f"output.dir={tmp_path / 'one'}", f"cache.dir={tmp_path / 'cache-one'}"]))
    many = run(read_recipe("quickstart", base + [
        f"output.dir={tmp_path / 'many'}", f"cache.dir={tmp_path / 'cache-many'}", "runner.runner=DirectRunner",
        "runner.options=[--direct_running_mode=multi_processing, --direct_num_workers=2]"]))
    keys = ("in", "kept", "rejected", "failed", "reasoning_rows", "teacher_requests", "rejected_by_reason", "filters")
    assert {k: many.funnel.to_dict()[k] for k in keys} == {k: one.funnel.to_dict()[k] for k in keys}
    assert many.funnel.records_in == 40 and many.funnel.teacher_requests > 0
    assert dataset_rows(many.out_dir) == dataset_rows(one.out_dir)
    # the workers wrote every reply to the shared cache: a rerun in multi-process mode pays nothing
    again = run(read_recipe("quickstart", base + [
        f"output.dir={tmp_path / 'again'}", f"cache.dir={tmp_path / 'cache-many'}", "runner.runner=DirectRunner",
        "runner.options=[--direct_running_mode=multi_processing, --direct_num_workers=2]"]))
    assert again.funnel.teacher_requests == 0 and dataset_rows(again.out_dir) == dataset_rows(one.out_dir)


def test_multi_threaded_workers_publish_what_the_in_process_run_publishes(tmp_path):
    """Several bundles in flight at once (the setting that keeps a remote endpoint busy)."""
    base = ["sources.0.synthetic.num_records=40", "sources.0.synthetic.image_size=64", "cache.dir=null"]
    one = run(read_recipe("quickstart", base + [f"output.dir={tmp_path / 'one'}"]))
    threads = run(read_recipe("quickstart", base + [
        f"output.dir={tmp_path / 'threads'}", "runner.runner=DirectRunner", "teacher.batch_size=4",
        "runner.options=[--direct_running_mode=multi_threading, --direct_num_workers=4]"]))
    assert threads.funnel.records_in == 40
    assert {k: threads.funnel.to_dict()[k] for k in ("kept", "rejected", "failed", "rejected_by_reason", "filters")} == \
        {k: one.funnel.to_dict()[k] for k in ("kept", "rejected", "failed", "rejected_by_reason", "filters")}
    assert dataset_rows(threads.out_dir) == dataset_rows(one.out_dir)


@pytest.mark.parametrize("runner, options, expected", [
    ("FnApiRunner", [], 1),
    ("DirectRunner", [], 1),
    ("DirectRunner", ["--direct_running_mode=multi_threading", "--direct_num_workers=4"], 4),
    ("DirectRunner", ["--direct_running_mode=multi_threading", "--direct_num_workers=0"], os.cpu_count()),
    ("DirectRunner", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"], None),
    ("FnApiRunner", ["--direct_running_mode", "multi_processing"], None),
    ("PrismRunner", [], None),  # a portable runner starts its own workers
])
def test_worker_threads_are_counted_only_when_every_worker_runs_in_this_process(runner, options, expected):
    """What decides whether an engine is shared through proxies and whether requests are
    prefetched into it."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    assert worker_threads(beam.Pipeline(options=PipelineOptions(options, runner=runner))) == expected
