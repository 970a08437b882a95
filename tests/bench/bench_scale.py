"""The pipeline at the paper's scale: the quickstart at 200,000 synthetic records (small images)
with its full filter suite, deduplication on and decontamination against 2,000 held-out
scenes, the oracle teacher waiting `--latency` seconds a call as a remote teacher would
(the machine's two cores are not the teacher), against the same at 10,000.

For each size, in its own process (`extract-think run --progress log`): records/s in windows
over the run, from the progress lines (the last tenth within 10% of the first after warm-up,
goal), peak RSS of the process tree sampled every 0.5 s (goal: at most 1.5x the 10K run's),
the time of the charts, card and report after the pipeline (`publish_seconds`; goal: under 5%
of the run), shard sizes. Then, on the big run: `plan` (a 50-record sample, scaled to the
sources) and `compare`'s analysis of two 200K publishes (every row of each read, each kept
extraction judged against its scene's ground truth, sketched from its origin), time and
memory.

    python -m tests.bench.bench_scale [--records 200000 --baseline 10000 --image-size 64 --latency 0.005]
    python -m tests.bench.bench_scale --components --records 200000   # dedup and decontamination alone, at that size
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\[(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\] written: (\d+)/\d+ records")


def recipe_file(work: Path, n: int, image_size: int, latency: float, batch: int) -> Path:
    import yaml

    base = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    base["name"] = f"scale-{n}"
    base["sources"][0]["synthetic"].update(num_records=n, image_size=image_size)
    base["teacher"]["oracle"]["latency_s"] = latency
    base["teacher"]["batch_size"] = batch
    base["eval_sets"] = [{"kind": "synthetic", "name": "heldout", "synthetic": {"num_records": 2000, "image_size": image_size,
                                                                                "split": "heldout", "seed": 0}}]
    base["filters"] = [{"name": "decontaminate"}, *base["filters"]]
    base["output"] = {"dir": str(work / f"out-{n}"), "rows_per_shard": 20000}
    base["cache"] = {"dir": None}
    path = work / f"scale-{n}.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


class PeakRSS:
    """The peak RSS of a process and all its children, sampled every 0.5 s in a thread."""

    def __init__(self, pid: int):
        import psutil

        self.root, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.wait(0.5):
            try:
                self.peak = max(self.peak, sum(p.memory_info().rss for p in [self.root, *self.root.children(recursive=True)]))
            except psutil.Error:
                pass

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def run_size(n: int, work: Path, image_size: int, latency: float, batch: int, every: float) -> dict:
    recipe = recipe_file(work, n, image_size, latency, batch)
    cmd = [sys.executable, "-m", "pipelines.commands.cli", "run", str(recipe), "--progress", "log", "--progress-every", str(every)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    rss = PeakRSS(proc.pid)
    points, tail = [], []
    for line in proc.stderr:
        tail = (tail + [line])[-20:]
        m = LINE.match(line.strip())
        if m:
            h, mi, s, done = (int(x or 0) for x in m.groups())
            points.append((3600 * h + 60 * mi + s, done))
    proc.wait()
    peak = rss.stop()
    if proc.returncode:
        raise RuntimeError("".join(tail))
    out = work / f"out-{n}"
    funnel = json.loads((out / "funnel.json").read_text())
    shards = {c: sorted(p.stat().st_size for p in (out / c).glob("*.parquet")) for c in ("extraction", "reasoning", "rejected")
              if (out / c).is_dir()}
    return {"records": n, "seconds": time.perf_counter() - started, "peak_mib": peak, "points": points, "funnel": funnel,
            "shards": shards, "out": str(out), "recipe": str(recipe)}


def windows(points: list[tuple[int, int]], parts: int = 10) -> list[float]:
    """Records/s in `parts` windows of equal time between the first and the last progress line."""
    if len(points) < 2:
        return []
    t0, t1 = points[0][0], points[-1][0]
    edges = [t0 + (t1 - t0) * i / parts for i in range(parts + 1)]

    def at(t):  # records written by time t, interpolated between progress lines
        for (ta, na), (tb, nb) in zip(points, points[1:]):
            if ta <= t <= tb:
                return na + (nb - na) * (t - ta) / max(tb - ta, 1e-9)
        return points[-1][1]

    return [(at(b) - at(a)) / max(b - a, 1e-9) for a, b in zip(edges, edges[1:])]


def timed(fn):
    """(seconds, peak RSS MiB of this process while `fn` ran, result)."""
    import psutil

    me, peak, stop = psutil.Process(), [0], threading.Event()

    def sample():
        while not stop.wait(0.2):
            peak[0] = max(peak[0], me.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    stop.set()
    thread.join()
    return seconds, peak[0] / 2**20, result


def components(recipe) -> dict:
    """Deduplication and decontamination at the recipe's full size, each on its own: the
    duplicate marks from every record's signature (the run's second read of the sources:
    scenes sketched, not drawn), and the eval sets' index with every record checked against
    it (records sketched, as the check of a synthetic scene reads its facts). (seconds, peak
    RSS MiB) of each, in this process."""
    import apache_beam as beam

    from filters.decontamination import EvalIndex, decontaminate, eval_entry
    from pipelines.commands.plan import source_size
    from pipelines.sources import iter_records
    from pipelines.sources.beam_read import ReadSources
    from pipelines.sources.dedup import DuplicateMarks
    from pipelines.sources.synthetic import sketch_record

    def dedup():
        counted = []
        with beam.Pipeline(runner="FnApiRunner") as p:
            marks = (p | ReadSources(recipe.sources, recipe.ingest, signatures=True)
                     | DuplicateMarks(recipe.ingest.dedup, recipe.sources) | beam.combiners.Count.Globally())
            marks | beam.Map(counted.append)
        return counted[0] if counted else 0

    def decontamination():
        entries = [eval_entry(r) for s in recipe.eval_sets for r in iter_records(s, recipe.ingest) if r.status == "ok"]
        index = EvalIndex(entries)
        s = recipe.sources[0]
        return sum(not decontaminate(sketch_record(i, s.synthetic, s.name, s.license), index).keep for i in range(source_size(s)))

    out = {}
    for name, fn in (("dedup", dedup), ("decontamination", decontamination)):
        seconds, mib, found = timed(fn)
        out[name] = {"seconds": seconds, "peak_mib": mib, "found": found}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--baseline", type=int, default=10_000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.005, help="seconds each oracle call waits")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between progress lines")
    ap.add_argument("--skip-after", action="store_true", help="no plan / compare after the runs")
    ap.add_argument("--components", action="store_true", help="only deduplication and decontamination at --records, on their own")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    if args.components:
        from pipelines.config.recipe import read_recipe

        c = components(read_recipe(recipe_file(work, args.records, args.image_size, args.latency, args.batch)))
        for name, r in c.items():
            print(f"{name} at {args.records:,} records: {r['seconds']:.1f} s, peak RSS {r['peak_mib']:.0f} MiB, {r['found']:,} found")
        print(json.dumps(c))
        return
    runs = [run_size(n, work, args.image_size, args.latency, args.batch, args.every) for n in (args.baseline, args.records)]
    for r in runs:
        f = r["funnel"]
        w = windows(r["points"])
        r["windows"] = w
        print(f"\n{r['records']:,} records: {r['seconds']:.0f} s, {r['records'] / r['seconds']:.1f} records/s overall, peak RSS "
              f"{r['peak_mib']:.0f} MiB; {f['kept']} kept, {f['rejected']} rejected, {f['failed']} failed; "
              f"flow {f['flow_seconds']:.0f} s, card/report {f['publish_seconds']:.2f} s ({f['publish_seconds'] / f['run_seconds']:.2%} of the run)")
        print("  records/s in tenths of the run: " + ", ".join(f"{x:.0f}" for x in w))
        print("  shard sizes (MB): " + "; ".join(f"{c} {', '.join(f'{s / 1e6:.1f}' for s in sizes)}" for c, sizes in r["shards"].items()))
    small, big = runs
    late, early = (big["windows"][-1], big["windows"][1]) if len(big["windows"]) > 2 else (None, None)
    print(f"\npeak RSS {big['peak_mib']:.0f} / {small['peak_mib']:.0f} MiB = {big['peak_mib'] / small['peak_mib']:.2f}x the baseline's"
          + (f"; the last tenth's rate {late:.0f} records/s = {late / early:.2f}x the second tenth's" if early else ""))
    after = {}
    if not args.skip_after:
        from pipelines import plan_recipe
        from pipelines.commands.compare import Arm as CompareArm
        from pipelines.commands.compare import Truth, _arm, _disputed, _pair, _rows
        from pipelines.config.recipe import read_recipe
        from pipelines.observe.funnel import Funnel

        recipe = read_recipe(big["recipe"])
        s, mib, plan = timed(lambda: plan_recipe(recipe, limit=50))
        after["plan"] = {"seconds": s, "peak_mib": mib}
        print(f"plan (50-record sample, scaled to {args.records:,}): {s:.1f} s, peak RSS {mib:.0f} MiB")

        class Outcome:
            out_dir, funnel = Path(big["out"]), Funnel.from_dict(big["funnel"])

        def analyse():  # compare's work once its arms have run: two publishes of this size, side by side
            rows = {name: _rows(Outcome.out_dir) for name in ("a", "b")}
            truth = Truth(recipe)
            arms = [_arm(CompareArm(name), recipe, Outcome, rows[name], truth) for name in ("a", "b")]
            pairs = [_pair("a", "b", rows["a"], rows["b"])]
            return arms, pairs, _disputed(rows, pairs)

        s, mib, (arms, _, _) = timed(analyse)
        after["compare"] = {"seconds": s, "peak_mib": mib, "checked": arms[0]["truth"]["checked"]}
        print(f"compare's analysis of two {args.records:,}-record publishes: {s:.1f} s, peak RSS {mib:.0f} MiB "
              f"({arms[0]['truth']['checked']:,} kept extractions judged against the ground truth per arm)")
    print(json.dumps({"runs": [{k: v for k, v in r.items() if k != "points"} for r in runs], "after": after}))


if __name__ == "__main__":
    main()
