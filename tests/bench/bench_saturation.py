"""Teacher saturation: an OpenAI-compatible endpoint that serves C requests at once, each in
L seconds (more wait in its queue), can answer at most C/L requests per second. How close
does the pipeline come, and how do the batch and concurrency settings move it?

Throughput is the endpoint's: successful requests over the time from its first request to
its last reply (start-up and publishing excluded), against C/L.

    python -m tests.bench.bench_saturation [--capacity 16 --latency 0.2 --records 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def measure(records: int, capacity: int, latency: float, batch: int, concurrency: int, work: Path, extra=()) -> dict:
    """One run against an endpoint in its own process (as a real one is: it must not share
    the pipeline's interpreter)."""
    import subprocess
    import sys
    import urllib.request

    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe

    server = subprocess.Popen([sys.executable, "-m", "tests.fault_server", "--capacity", str(capacity), "--delay", str(latency)],
                              cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        recipe = read_recipe("quickstart", [
            f"sources.0.synthetic.num_records={records}", "sources.0.synthetic.image_size=64",
            "teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={url}",
            f"teacher.batch_size={batch}", f"teacher.openai.max_concurrency={concurrency}", "teacher.openai.timeout_s=60",
            "filters=[{name: degeneration}]", f"output.dir={work / f'out-{batch}-{concurrency}'}", "cache.dir=null", *extra,
        ])
        started = time.perf_counter()
        run(recipe)
        wall = time.perf_counter() - started
        stats = json.loads(urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/stats").read())
    finally:
        server.kill()
        server.wait()
    busy = stats["last_at"] - stats["first_at"]
    rate = stats["served"] / busy
    return {"batch": batch, "concurrency": concurrency, "requests": stats["served"], "teacher_seconds": busy, "run_seconds": wall,
            "requests_per_s": rate, "ideal": capacity / latency, "ratio": rate / (capacity / latency),
            "max_in_flight": stats["max_in_flight"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--capacity", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--settings", default="8x16,16x16,32x16,64x16,64x64,128x64",
                    help="batch x concurrency pairs: records per teacher call, requests in flight at once")
    ap.add_argument("--set", action="append", default=[], help="extra recipe overrides, e.g. runner options")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-saturation-"))
    rows = [measure(args.records, args.capacity, args.latency, *map(int, s.split("x")), work, args.set) for s in args.settings.split(",")]
    print(f"\nendpoint: {args.capacity} requests at once, {args.latency} s each: ideal {args.capacity / args.latency:.0f} requests/s; "
          f"{args.records} records (quickstart stages, 3 samples per think request)\n")
    print("| batch (records per call) | max concurrency | requests | most in flight | teacher s | requests/s | of ideal | whole run s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['concurrency']} | {r['requests']} | {r['max_in_flight']} | {r['teacher_seconds']:.1f} | "
              f"{r['requests_per_s']:.1f} | {r['ratio']:.2f} | {r['run_seconds']:.1f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
