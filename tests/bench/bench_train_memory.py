"""train_min's host memory against the dataset's size: a tiny Idefics3 whose processor works
at 256 px (one example's pixels: 3 x 256 x 256 floats, 0.75 MB), 3 steps of batch 4 on the
CPU, on published sets of growing size; each run in its own process, so its peak RSS is its
own. The streamed feed (the default) should stay flat; the in-memory feed (`--feed memory`)
grows with the set.

    python -m tests.bench.bench_train_memory [--records 300,2400,100000] [--feeds stream,memory] [--memory-up-to 2400]

Sets up to `--real-up-to` records (default 2400) are real publishes of the quickstart
(oracle teacher, 256 px scenes); larger ones are made from such a publish by repeating its
rows under new ids (64 px images re-encoded, so the parquet stays small): the same schema and
the same per-example work for the trainer, without hours of drawing scenes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = """
import json, resource, sys, time
from train_min.train import TrainConfig, train
cfg = TrainConfig(**json.loads(sys.argv[1]))
start = time.perf_counter()
s = train(cfg)
print("RESULT " + json.dumps({"seconds": time.perf_counter() - start, "train_examples": s["train_examples"],
                             "self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                             "children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def publish(n: int, out: Path, image_size: int = 256) -> Path:
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe

    return run(read_recipe("quickstart", [f"sources.0.synthetic.num_records={n}", f"sources.0.synthetic.image_size={image_size}",
                                          f"output.dir={out}", f"cache.dir={out.parent / 'cache'}"])).out_dir


def replicate(source: Path, n: int, out: Path, image_size: int = 64, shard_rows: int = 20_000) -> Path:
    """`n` extraction rows made from `source`'s, cycling through them with new ids and smaller
    images, in parquet shards, with a card `datasets` reads."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(next((source / "extraction").glob("*.parquet")))
    rows = table.to_pylist()
    for r in rows:
        img = Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB").resize((image_size, image_size))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        r["image"] = {"bytes": buf.getvalue(), "path": None}
    (out / "extraction").mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, n, shard_rows)):
        chunk = [dict(rows[i % len(rows)], id=f"r{i:07d}") for i in range(start, min(n, start + shard_rows))]
        pq.write_table(pa.Table.from_pylist(chunk, schema=table.schema), out / "extraction" / f"train-{shard:05d}.parquet")
    (out / "README.md").write_text("---\nconfigs:\n- config_name: extraction\n  data_files:\n  - split: train\n"
                                   "    path: extraction/*.parquet\n---\n")
    return out


def measure(model: Path, data: Path, feed: str, out: Path, workers: int) -> dict:
    cfg = dict(task="perception", model=str(model), data=str(data), out=str(out), max_length=512, batch_size=4, steps=3, lr=1e-4,
               warmup=1, eval_fraction=0.0, eval_every=0, progress=False, device="cpu", feed=feed, workers=workers,
               report_to="none", index_cache=str(out / "index"), save_every=0, save_minutes=0)
    done = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(cfg)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", default="300,2400,100000")
    ap.add_argument("--feeds", default="stream,memory")
    ap.add_argument("--memory-up-to", type=int, default=2400, help="the in-memory feed only on sets up to this size")
    ap.add_argument("--real-up-to", type=int, default=2400, help="real publishes up to this size, replicated rows above")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from tests.tiny_models import tiny_tokenizer
    from train_min.experiment.scratch import IDEFICS3_SPECIALS, build_idefics3

    work = Path(tempfile.mkdtemp(prefix="bench-train-memory-"))
    model = build_idefics3(work / "model", tiny_tokenizer(IDEFICS3_SPECIALS), image_size=256, patch_size=16, scale_factor=4,
                           text={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                                 "num_key_value_heads": 2})
    sizes = [int(x) for x in args.records.split(",")]
    seed = None
    rows = []
    for n in sizes:
        started = time.perf_counter()
        if n <= args.real_up_to:
            data = publish(n, work / f"data{n}")
        else:
            seed = seed or publish(min(500, args.real_up_to), work / "seed")
            data = replicate(seed, n, work / f"data{n}")
        made = time.perf_counter() - started
        for feed in args.feeds.split(","):
            if feed == "memory" and n > args.memory_up_to:
                continue
            r = measure(model, data, feed, work / f"run-{n}-{feed}", args.workers)
            rows.append({"records": n, "feed": feed, "made_s": made, **r})
            print(f"{n} records, {feed}: peak RSS {r['self_mib']:.0f} MiB (workers {r['children_mib']:.0f} MiB), {r['seconds']:.0f} s",
                  flush=True)
    print("\n| records | feed | training examples | peak RSS, trainer | peak RSS, a worker | trainer + workers | run s (index + 3 steps) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        total = r["self_mib"] + (args.workers * r["children_mib"] if r["feed"] == "stream" else 0)
        print(f"| {r['records']:,} | {r['feed']} | {r['train_examples']:,} | {r['self_mib']:,.0f} MiB | "
              f"{r['children_mib']:,.0f} MiB | {total:,.0f} MiB | {r['seconds']:.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
