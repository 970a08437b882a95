"""Memory: peak resident memory of a whole run (the `extract-think run` process and every
process it starts, summed, sampled every 100 ms) on the quickstart with the oracle teacher,
at two sizes. Goal: the large run's peak under 1.5x the small run's (streaming: nothing
accumulates with the number of records).

    python -m tests.bench.bench_memory [--small 1000 --large 50000 --image-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def peak_rss(records: int, image_size: int, work: Path, extra: list[str] = ()) -> dict:
    import psutil

    cmd = [sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--no-progress",
           f"--set=sources.0.synthetic.num_records={records}", f"--set=sources.0.synthetic.image_size={image_size}",
           f"--set=output.dir={work / f'out-{records}'}", "--set=cache.dir=null", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.1)
    if proc.returncode:
        raise RuntimeError(proc.stderr.read()[-2000:])
    funnel = json.loads((work / f"out-{records}" / "funnel.json").read_text())
    return {"records": records, "peak_mib": peak / 2**20, "seconds": time.perf_counter() - started, "kept": funnel["kept"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=50000)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--set", action="append", default=[], help="extra recipe overrides for both runs")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        rows = [peak_rss(n, args.image_size, work, [f"--set={s}" for s in args.set]) for n in (args.small, args.large)]
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the 50k run's dataset is hundreds of MiB
    print(f"\nquickstart, oracle teacher, {args.image_size} px scenes, no cache\n")
    print("| records | kept | seconds | peak RSS MiB |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['records']} | {r['kept']} | {r['seconds']:.0f} | {r['peak_mib']:.0f} |")
    print(f"\nratio {rows[1]['peak_mib'] / rows[0]['peak_mib']:.2f} (goal < 1.5)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
