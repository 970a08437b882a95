"""Kill and resume: run a recipe as a subprocess, kill -9 it at several random points (each
rerun killed again), then let a last rerun finish. The dataset must equal an uninterrupted
run's (same ids, same content, images included), with no duplicate id and no lost record,
and the last rerun must call the teacher only for what had not finished (what is not in the
shared reply cache).

    python -m tests.bench.bench_resume [--records 2000 --kills 3 --seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.published import published_rows

REPO = Path(__file__).resolve().parents[2]


def dataset_rows(out) -> dict[str, list[dict]]:
    """Every published row by config, images as their sha256, sorted by id, loaded the way a
    user loads the dataset (its card's configs); `out` is a local folder or any fsspec URL,
    whose files are fetched first (`datasets` offline reads no URL)."""
    import datasets

    if "://" in str(out):
        import fsspec

        fs, root = fsspec.core.url_to_fs(str(out))
        with tempfile.TemporaryDirectory() as here:
            files = fs.find(root)
            local = [Path(here) / f[len(root) + 1:] for f in files]
            for path in local:
                path.parent.mkdir(parents=True, exist_ok=True)
            fs.get(files, [str(p) for p in local])
            return dataset_rows(Path(here))
    out = Path(out)
    rows = {}
    for config in ("extraction", "reasoning", "rejected"):
        if not (out / config).exists():
            continue
        ds = published_rows(str(out), config)
        if "image" in ds.column_names:
            ds = ds.cast_column("image", datasets.Image(decode=False))
        rows[config] = sorted(({k: (hashlib.sha256(v["bytes"]).hexdigest() if k == "image" and v else v) for k, v in r.items()}
                               for r in ds), key=lambda r: r["id"])
    return rows


def _command(records: int, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--no-progress",
            f"--set=sources.0.synthetic.num_records={records}", "--set=sources.0.synthetic.image_size=128",
            f"--set=output.dir={out}", f"--set=cache.dir={cache}"]


def _entries(cache: Path) -> int:
    return sum(1 for _ in cache.rglob("*.json")) if cache.exists() else 0


def run_with_kills(records: int, kills: int, work: Path, seed: int = 0) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rng = random.Random(seed)

    started = time.perf_counter()
    clean = subprocess.run(_command(records, work / "clean", work / "clean-cache"), cwd=REPO, env=env, capture_output=True, text=True)
    clean_seconds = time.perf_counter() - started
    if clean.returncode:
        raise RuntimeError(clean.stderr[-2000:])
    total_calls = _entries(work / "clean-cache")

    out, cache, killed_at = work / "resumed", work / "cache", []
    for _ in range(kills):
        delay = rng.uniform(0.15, 0.85) * clean_seconds  # somewhere in the run, start-up included
        proc = subprocess.Popen(_command(records, out, cache), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at.append({"after_s": round(delay, 1), "calls_cached": _entries(cache), "published": out.exists()})
    before_last = _entries(cache)
    last = subprocess.run(_command(records, out, cache), cwd=REPO, env=env, capture_output=True, text=True)
    if last.returncode:
        raise RuntimeError(last.stderr[-2000:])
    funnel = json.loads((out / "funnel.json").read_text())
    a, b = dataset_rows(work / "clean"), dataset_rows(out)
    ids = [r["id"] for config in ("extraction", "rejected") for r in b.get(config, [])]
    return {
        "records": records, "clean_seconds": clean_seconds, "total_calls": total_calls, "kills": killed_at,
        "cached_before_last": before_last, "last_run_calls": funnel["teacher_requests"],
        "equal": a == b, "duplicate_ids": len(ids) - len(set(ids)), "records_out": len(set(ids)),
        "rows": {c: len(v) for c, v in b.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r = run_with_kills(args.records, args.kills, Path(tempfile.mkdtemp(prefix="bench-resume-")), args.seed)
    print(f"\n{r['records']} records (quickstart, oracle teacher); uninterrupted run {r['clean_seconds']:.1f} s, "
          f"{r['total_calls']} teacher calls\n")
    print("| kill | after s | calls finished (cached) | published |\n|---|---|---|---|")
    for i, k in enumerate(r["kills"], 1):
        print(f"| {i} | {k['after_s']} | {k['calls_cached']} | {k['published']} |")
    print(f"\nlast rerun: {r['last_run_calls']} teacher calls; {r['total_calls'] - r['cached_before_last']} had not finished "
          f"({'only those' if r['last_run_calls'] == r['total_calls'] - r['cached_before_last'] else 'MORE'})")
    print(f"dataset equal to the uninterrupted run's: {r['equal']}; records out {r['records_out']} of {r['records']}; "
          f"duplicate ids {r['duplicate_ids']}; rows {r['rows']}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
