"""A fleet of teachers: 1, 2, 4 and 8 OpenAI-compatible endpoints, each in its own process,
each serving `--capacity` requests at once in `--latency` seconds (so at most capacity /
latency requests a second); the quickstart spreads its requests over them (`base_urls`).
Records per run and batch size grow with the fleet, so each run is as long. Throughput is the
endpoints' own: successful requests over the time from the fleet's first request to its
last reply; scaling is that throughput against N times one endpoint's (goal: >= 0.8 to 8).

Then 4 endpoints, one killed (SIGKILL) a third of the way through the run: the run must
finish with every record kept, rejected or failed with a reason, none failed for the kill.

    python -m tests.bench.bench_fleet [--sizes 1,2,4,8 --capacity 4 --latency 2.0 --records-per-endpoint 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def endpoints(n: int, capacity: int, latency: float) -> list[tuple[subprocess.Popen, str]]:
    out = []
    for _ in range(n):
        proc = subprocess.Popen([sys.executable, "-m", "tests.fault_server", "--capacity", str(capacity), "--delay", str(latency)],
                                cwd=REPO, stdout=subprocess.PIPE, text=True)
        out.append((proc, proc.stdout.readline().strip()))
    return out


def stats(url: str) -> dict | None:
    try:
        return json.loads(urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/stats", timeout=5).read())
    except OSError:
        return None


def measure(n: int, capacity: int, latency: float, per_endpoint: int, work: Path, kill_after: float | None = None) -> dict:
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe

    fleet = endpoints(n, capacity, latency)
    urls = [u for _, u in fleet]
    seen: dict[str, dict] = {}
    killer = None
    if kill_after is not None:  # the last endpoint dies mid-run; what it had served is read first
        def kill():
            time.sleep(kill_after)
            seen[urls[-1]] = stats(urls[-1]) or {}
            fleet[-1][0].kill()
        killer = threading.Thread(target=kill, daemon=True)
    try:
        recipe = read_recipe("quickstart", [
            f"sources.0.synthetic.num_records={per_endpoint * n}", "sources.0.synthetic.image_size=64",
            "teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={urls[0]}",
            f"teacher.openai.base_urls=[{', '.join(urls[1:])}]", f"teacher.batch_size={16 * n}",
            f"teacher.openai.max_concurrency={capacity}", "teacher.openai.timeout_s=60", "teacher.openai.backoff_s=0.05",
            "filters=[{name: degeneration}]", f"output.dir={work / f'out-{n}-{kill_after}'}", "cache.dir=null"])
        if killer:
            killer.start()
        started = time.perf_counter()
        outcome = run(recipe)
        wall = time.perf_counter() - started
        for url in urls:
            seen[url] = stats(url) or seen.get(url, {})
    finally:
        for proc, _ in fleet:
            proc.kill()
            proc.wait()
    live = [s for s in seen.values() if s.get("first_at")]
    served = sum(s["served"] for s in live)
    # an endpoint killed while a request was in it has a first request and maybe no reply yet
    busy = max(s["last_at"] for s in live if s.get("last_at")) - min(s["first_at"] for s in live)
    f = outcome.funnel
    return {"endpoints": n, "records": f.records_in, "kept": f.kept, "rejected": f.rejected, "failed": f.failed,
            "requests": served, "busy_s": busy, "run_s": wall, "requests_per_s": served / busy, "ideal": n * capacity / latency,
            "per_endpoint_calls": {k: v["calls"] for k, v in f.endpoints.items()},
            "per_endpoint_failures": {k: v["failures"] for k, v in f.endpoints.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,2,4,8")
    ap.add_argument("--capacity", type=int, default=4)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--records-per-endpoint", type=int, default=32)
    ap.add_argument("--kill", type=int, default=4, help="the fleet size of the kill run (0: none)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    rows = [measure(int(n), args.capacity, args.latency, args.records_per_endpoint, work) for n in args.sizes.split(",")]
    one = next((r["requests_per_s"] for r in rows if r["endpoints"] == 1), None)
    print(f"\neach endpoint: {args.capacity} requests at once, {args.latency} s each ({args.capacity / args.latency:.1f} requests/s); "
          f"{args.records_per_endpoint} records per endpoint, batch 16 per endpoint\n")
    print("| endpoints | records | requests | requests/s | of ideal | scaling vs 1 | run s | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        scaling = f"{r['requests_per_s'] / (r['endpoints'] * one):.2f}" if one else "-"
        print(f"| {r['endpoints']} | {r['records']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['requests_per_s'] / r['ideal']:.2f} | "
              f"{scaling} | {r['run_s']:.1f} | {r['failed']} |")
    if args.kill:
        base = next((r for r in rows if r["endpoints"] == args.kill), None)
        after = (base["run_s"] if base else 30.0) / 3
        k = measure(args.kill, args.capacity, args.latency, args.records_per_endpoint, work, kill_after=after)
        print(f"\n{args.kill} endpoints, one killed after {after:.1f} s: {k['records']} in, {k['kept']} kept, {k['rejected']} rejected, "
              f"{k['failed']} failed, in {k['run_s']:.1f} s; calls per endpoint {k['per_endpoint_calls']}, "
              f"transport failures {k['per_endpoint_failures']}")
        rows.append({**k, "killed_after_s": after})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
