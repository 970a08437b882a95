"""A whole recipe with the extraction stage on the real vLLM engine (tiny Idefics3 on CPU),
the engine shared across the worker's processes through RunInference."""

import pytest

pytest.importorskip("vllm")

from pipelines.commands.run import run  # noqa: E402
from pipelines.config.recipe import read_recipe  # noqa: E402
from pipelines.teachers.handler import TeacherModelHandler  # noqa: E402

pytestmark = pytest.mark.slow


def test_the_extraction_stage_runs_on_the_vllm_engine_with_requests_prefetched(tiny_idefics3, tmp_path):
    """In one process the engine is called directly (no proxy) and every extraction request
    is handed to it as soon as its prompt exists, here ahead of token-weighted batches."""
    recipe = read_recipe("quickstart", [
        "sources.0.synthetic.num_records=6", "sources.0.synthetic.image_size=64", "teacher.oracle.error_rate=0",
        "stages.extraction.teacher.backend=vllm", f"stages.extraction.teacher.model={tiny_idefics3}",
        "stages.extraction.teacher.vllm.dtype=float32", "stages.extraction.teacher.vllm.max_model_len=512",
        "stages.extraction.teacher.vllm.gpu_memory_utilization=0.1", "stages.extraction.teacher.max_batch_tokens=2000",
        "stages.extraction.sampling.max_tokens=16", f"output.dir={tmp_path / 'out'}", "cache.dir=null",
        "output.min_kept=0",  # a random tiny model's extractions are all rejected
    ])
    assert not TeacherModelHandler(recipe.stage_teacher("extraction"), one_process=True).share_model_across_processes()
    outcome = run(recipe)
    f = outcome.funnel.to_dict()
    assert f["in"] == 6 == f["kept"] + f["rejected"] + f["failed"] and f["failed"] == 0
    assert f["teacher_requests"] >= 6 and f["teacher_errors"] == 0
    assert f["completion_tokens"] > 0
    assert f["prefetched"] == 6  # one extraction request per record, all sent ahead


def test_only_an_in_worker_vllm_engine_is_shared(tiny_idefics3):
    base = read_recipe("quickstart", ["teacher.backend=vllm", f"teacher.model={tiny_idefics3}"]).teacher
    from dataclasses import replace

    assert TeacherModelHandler(base).share_model_across_processes()
    assert not TeacherModelHandler(base, one_process=True).share_model_across_processes()  # nothing to share with
    assert not TeacherModelHandler(replace(base, vllm=replace(base.vllm, share_across_processes=False))).share_model_across_processes()
    assert not TeacherModelHandler(replace(base, vllm=replace(base.vllm, mode="server"))).share_model_across_processes()
    served = replace(base, backend="openai", openai=replace(base.openai, base_url="http://127.0.0.1:9/v1"))
    assert not TeacherModelHandler(served).share_model_across_processes()


def _eight_records(model) -> list[str]:
    """The quickstart's extraction on the tiny engine, two records per call (several calls
    in flight when workers run side by side)."""
    return [
        "sources.0.synthetic.num_records=8", "sources.0.synthetic.image_size=64", "teacher.oracle.error_rate=0",
        "stages.extraction.teacher.backend=vllm", f"stages.extraction.teacher.model={model}",
        "stages.extraction.teacher.vllm.dtype=float32", "stages.extraction.teacher.vllm.max_model_len=512",
        "stages.extraction.teacher.vllm.gpu_memory_utilization=0.1", "stages.extraction.teacher.batch_size=2",
        "stages.extraction.sampling.max_tokens=16", "cache.dir=null",
        "output.min_kept=0",  # a random tiny model's extractions are all rejected
    ]


def test_prefetching_changes_when_requests_start_not_what_is_published(tiny_idefics3, tmp_path):
    """Records held back until 3 requests are in the engine behind them, against no
    prefetching: the same counts and dataset. With a reply cache, a rerun sends nothing ahead
    and makes no call."""
    from tests.bench.bench_resume import dataset_rows

    base = _eight_records(tiny_idefics3) + [f"cache.dir={tmp_path / 'cache'}"]  # the later setting wins
    ahead = run(read_recipe("quickstart", base + [f"output.dir={tmp_path / 'ahead'}", "stages.extraction.teacher.vllm.prefetch=3"]))
    off = run(read_recipe("quickstart", _eight_records(tiny_idefics3) + [
        f"output.dir={tmp_path / 'off'}", "stages.extraction.teacher.vllm.prefetch=0"]))
    keys = ("in", "kept", "rejected", "failed", "teacher_requests", "teacher_errors", "completion_tokens", "rejected_by_reason")
    assert {k: ahead.funnel.to_dict()[k] for k in keys} == {k: off.funnel.to_dict()[k] for k in keys}
    assert ahead.funnel.prefetched == 8 and off.funnel.prefetched == 0 and ahead.funnel.failed == 0
    assert dataset_rows(ahead.out_dir) == dataset_rows(off.out_dir)
    again = run(read_recipe("quickstart", base + [f"output.dir={tmp_path / 'again'}", "stages.extraction.teacher.vllm.prefetch=3"]))
    assert again.funnel.teacher_requests == 0 and again.funnel.prefetched == 0
    assert dataset_rows(again.out_dir) == dataset_rows(ahead.out_dir)


def test_the_threaded_runner_feeds_one_vllm_engine_from_every_thread(tiny_idefics3, tmp_path):
    """Worker threads hand their batches to the one engine (its engine thread batches them
    together): the same records, calls and dataset as the in-process run."""
    from tests.bench.bench_resume import dataset_rows

    base = _eight_records(tiny_idefics3)
    one = run(read_recipe("quickstart", base + [f"output.dir={tmp_path / 'one'}"]))
    threads = run(read_recipe("quickstart", base + [
        f"output.dir={tmp_path / 'threads'}", "runner.runner=DirectRunner",
        "runner.options=[--direct_running_mode=multi_threading, --direct_num_workers=4]"]))
    keys = ("in", "kept", "rejected", "failed", "teacher_requests", "teacher_errors", "completion_tokens", "rejected_by_reason")
    assert {k: threads.funnel.to_dict()[k] for k in keys} == {k: one.funnel.to_dict()[k] for k in keys}
    assert threads.funnel.records_in == 8 and threads.funnel.failed == 0 and threads.funnel.teacher_errors == 0
    assert one.funnel.prefetched == 8 and threads.funnel.prefetched == 0  # the threads' batches keep it busy
    assert dataset_rows(threads.out_dir) == dataset_rows(one.out_dir)


def test_worker_processes_share_one_vllm_engine(tiny_idefics3, tmp_path):
    """Beam's multi-process local runner: the workers get proxies to one engine
    (`share_model_across_processes`), whose calls arrive on several threads at once."""
    base = _eight_records(tiny_idefics3)
    many = run(read_recipe("quickstart", base + [
        f"output.dir={tmp_path / 'many'}", "runner.runner=DirectRunner",
        "runner.options=[--direct_running_mode=multi_processing, --direct_num_workers=2]"]))
    f = many.funnel.to_dict()
    assert f["in"] == 8 == f["kept"] + f["rejected"] + f["failed"] and f["failed"] == 0 and f["teacher_errors"] == 0
    assert f["prefetched"] == 0  # a process holding only a proxy to the engine sends nothing ahead
    assert f["teacher_requests"] >= 8 and f["completion_tokens"] > 0
