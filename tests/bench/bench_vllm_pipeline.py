"""Throughput of the pipeline through the vllm backend against raw `LLM.chat` on the same
prompts, same model, same engine, in one run; and the cost of a fully cached rerun.

The extraction stage runs on vLLM (image + statements, the expensive call); the text
stages come from the oracle so that both sides send exactly the same extraction prompts.
The engine is started once, before timing, and shared by both sides.

    .venv/bin/python -m tests.bench.bench_vllm_pipeline [--records 96] [--max-tokens 48] [--repeats 3]

The raw call and the whole pipeline (batch_size `--batch`, requests prefetched into the
engine as the recipe's default does) alternate `--repeats` times (the engine's speed on a
shared CPU machine drifts from minute to minute); the table has each pair, and the ratio of
the sums is the figure to quote. Other batch sizes, prefetching off, and the threaded runner
run once each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="raw call + whole pipeline pairs, alternated")
    ap.add_argument("--batch", type=int, default=64, help="batch_size of the pipeline in the pairs")
    ap.add_argument("--threads", type=int, default=4, help="worker threads of the multi-threaded local runner rows")
    ap.add_argument("--enforce-eager", action="store_true", help="no torch.compile in vLLM (no per-shape compiles)")
    ap.add_argument("--prefix-caching", action="store_true",
                    help="keep vLLM's prefix cache on (off by default: every run, raw or pipeline, computes its prompts in full)")
    args = ap.parse_args()

    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe
    from pipelines.sources.synthetic import make_record
    from pipelines.teachers import load_teacher, unload_all
    from pipelines.teachers.stage import build_stages
    from tests.tiny_models import build_tiny_idefics3

    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    model = build_tiny_idefics3(work / "tiny_idefics3")

    def recipe(batch_size: int, out: str, cache: str | None, threads: int = 0, prefetch: int = 512):
        runner = ["runner.runner=DirectRunner",
                  f"runner.options=[--direct_running_mode=multi_threading, --direct_num_workers={threads}]"] if threads else []
        return read_recipe("quickstart", runner + [
            f"sources.0.synthetic.num_records={args.records}", f"sources.0.synthetic.image_size={args.image_size}",
            "teacher.oracle.error_rate=0",
            "stages.extraction.teacher.backend=vllm", f"stages.extraction.teacher.model={model}",
            f"stages.extraction.teacher.batch_size={batch_size}", f"stages.extraction.teacher.vllm.prefetch={prefetch}",
            "stages.extraction.teacher.vllm.dtype=float32",
            "stages.extraction.teacher.vllm.max_model_len=512", "stages.extraction.teacher.vllm.gpu_memory_utilization=0.1",
            f"stages.extraction.teacher.vllm.enforce_eager={str(args.enforce_eager).lower()}",
            f"stages.extraction.teacher.vllm.enable_prefix_caching={str(args.prefix_caching).lower()}",
            f"stages.extraction.sampling.max_tokens={args.max_tokens}",
            # one greedy extraction per record (the quickstart samples 3 for extraction_agreement,
            # which is therefore left out here); the other filters run as in any recipe
            "stages.extraction.sampling.n=1", "stages.extraction.sampling.temperature=0",
            "filters=[{name: degeneration}, {name: leakage}, {name: statement_count}, {name: statement_coverage}, "
            "{name: answer_correct}, {name: sufficiency, params: {min_ratio: 0.5}}, {name: self_consistency}]",
            f"output.dir={work / out}", f"cache.dir={cache}" if cache else "cache.dir=null",
            "output.min_kept=0",  # a random tiny model's extractions are all rejected: the run must publish them anyway
        ])

    base = recipe(8, "warm", None)
    stages = {s.name: s for s in build_stages(base)}
    teacher = load_teacher(base.stage_teacher("extraction"))  # engine start, outside timing
    engine = teacher.llm

    # The exact extraction requests the pipeline sends: records with the oracle's statements.
    oracle = load_teacher(base.teacher)
    requests = []
    for i in range(args.records):
        record = make_record(i, base.sources[0].synthetic)
        (st,) = stages["statements"].requests(record)
        record = stages["statements"].apply(record, [st], oracle.generate([st]))
        requests += stages["extraction"].requests(record)
    params = [teacher._params(r) for r in requests]
    # warm-up: the same call once untimed, so that the timed raw call finds the engine as warm
    # as the pipeline runs after it will (shapes compiled, caches filled)
    engine.chat([r.messages for r in requests], params, use_tqdm=False)

    def raw_call():
        t = time.perf_counter()
        out = engine.chat([r.messages for r in requests], params, use_tqdm=False)
        return time.perf_counter() - t, sum(len(o.token_ids) for r in out for o in r.outputs)

    def pipeline(batch: int, threads: int = 0, tag: str = "", prefetch: int = 512):
        r = recipe(batch, f"t{threads}b{batch}p{prefetch}{tag}", None, threads, prefetch)
        t = time.perf_counter()
        outcome = run(r)
        return time.perf_counter() - t, outcome.funnel.teacher_seconds

    # The headline pair, raw call then whole pipeline, repeated: this machine's engine speed
    # drifts by 10% and more between minutes, so one pair proves little.
    pairs = []
    for k in range(args.repeats):
        raw_s, raw_tokens = raw_call()
        pairs.append((raw_s, *pipeline(args.batch, tag=f"r{k}")))
    rows = []
    for k, (raw_s, s, engine_s) in enumerate(pairs, 1):
        rows.append((f"raw LLM.chat, one call ({k})", raw_s, 1.0, raw_s))
        rows.append((f"pipeline, batch_size={args.batch}, prefetch 512 ({k})", s, raw_s / s, engine_s))
    raw_sum, pipe_sum = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    # Other settings once each, against the pairs' mean raw time: another batch size, no
    # prefetching (one batch of every record, the best setting without it), the threaded runner.
    runs = [(0, 8, 512), (0, args.records, 0), (0, args.batch, 0), (args.threads, args.batch, 0)]  # threads never prefetch
    for threads, batch, prefetch in runs:
        s, engine_s = pipeline(batch, threads, prefetch=prefetch)
        how = f"{threads} threads, " if threads else ""
        rows.append((f"pipeline, {how}batch_size={batch}, prefetch {prefetch or 'off'}", s, raw_sum / args.repeats / s, engine_s))

    cache = str(work / "cache")
    t = time.perf_counter()
    first = run(recipe(args.batch, "c1", cache))
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    second = run(recipe(args.batch, "c2", cache))
    second_s = time.perf_counter() - t
    unload_all()

    print(f"\n{args.records} records, {args.image_size} px, extraction max_tokens={args.max_tokens}, "
          f"{raw_tokens} generated tokens, enforce_eager={args.enforce_eager}, prefix caching={args.prefix_caching}, "
          "tiny Idefics3 on vLLM CPU")
    print(f"{'':56} {'seconds':>8} {'throughput vs raw':>18} {'waiting on teacher s':>21}")
    for name, s, ratio, engine_s in rows:
        print(f"{name:56} {s:8.2f} {ratio:18.2f} {engine_s:21.2f}")
    ratios = sorted(raw_s / s for raw_s, s, _ in pairs)
    print(f"\n{args.repeats} pairs: raw {raw_sum:.2f} s, pipeline {pipe_sum:.2f} s in all: throughput vs raw "
          f"{raw_sum / pipe_sum:.2f} (pairs {', '.join(f'{r:.2f}' for r in ratios)}; median {ratios[len(ratios) // 2]:.2f})")
    print("(waiting on teacher: the time RunInference's calls took; with prefetching the engine started the requests"
          " earlier, and on the threaded runner the calls of all threads are summed, though they overlap)")
    print(f"\nfirst run with cache (batch {args.batch}): {first_s:.2f} s, {first.funnel.teacher_requests} teacher calls")
    print(f"fully cached rerun:              {second_s:.2f} s, {second.funnel.teacher_requests} teacher calls, "
          f"{second.funnel.cache_hits} cache hits = {second_s / first_s:.2f} of the first run's time")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
