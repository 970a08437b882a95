"""Every line of issue 21's table: train_min against TRL at the SmolVLM shape (batch 16 and
64), packed against unpacked (speed, and the loss curves over 200 steps), packed with
`--attention varlen` against packed with SDPA (speed, loss curves), the default CUDA graphs
against `--compile on` (no graphs), with accumulation and with evaluation, the paper's shape
and its profile, and the reasoner path. Each run is its own process
(tests/bench/bench_train_gpu.py with `--only`), under its own time limit, so one that hangs
or runs out of memory costs only its line; the table is printed and written after every
run, so a call cut short still returns what it measured.

    python -m tests.bench.bench_train_gpu_suite --data out/bench-gpu --trl-data out/bench-gpu-trl \\
        --trl-reasoning out/bench-gpu-trl-reasoning --out results.md [--lines smolvlm16,smolvlm64,...] [--runs TRL,...]

The data is made as bench_train_gpu.py's docstring says. `--shape tiny --device cpu`
checks the suite itself on a CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# line -> (bench arguments shared by its runs, {run name: extra arguments}); "{trl_reasoning}" is --trl-reasoning
LINES = {
    # train_min runs take the default --compile auto (CUDA graphs); "no graphs" is --compile on
    # "train_min" streams its data (the default feed); "train_min memory" holds every example encoded before training
    "smolvlm16": (["--batch", "16"], {"train_min": ["--only", "train_min"], "TRL": ["--only", "trl"],
                                      "train_min memory": ["--only", "train_min", "--feed", "memory"],
                                      "train_min no graphs": ["--only", "train_min", "--compile", "on"],
                                      "train_min masked": ["--only", "train_min", "--attention", "masked"],
                                      # the same 16 examples a step as 2 micro-batches of 8: its losses follow the runs above
                                      "train_min 2x8": ["--only", "train_min", "--grad-accum", "2"],
                                      # evaluation (no grad, its own graphs) between training steps; its time counts
                                      "train_min eval": ["--only", "train_min", "--eval-every", "10"]}),
    "smolvlm64": (["--batch", "64"], {"train_min": ["--only", "train_min"], "TRL": ["--only", "trl"],
                                      "train_min memory": ["--only", "train_min", "--feed", "memory"],
                                      "train_min no graphs": ["--only", "train_min", "--compile", "on"]}),
    "packed64": (["--batch", "64"], {"train_min packed": ["--only", "train_min", "--pack", "2048"],
                                     "train_min packed varlen": ["--only", "train_min", "--pack", "2048", "--attention", "varlen"]}),
    "smolvlm128": (["--batch", "128"], {"train_min": ["--only", "train_min"]}),
    # the curve compares losses, not speed: eager, so no compile time
    "curve": (["--batch", "16", "--steps", "200", "--warmup", "20", "--compile", "off"],
              {"train_min": ["--only", "train_min"], "train_min packed": ["--only", "train_min", "--pack", "2048"]}),
    "paper16": (["--shape", "paper", "--max-length", "1100", "--batch", "16", "--steps", "30"],
                {"train_min": ["--only", "train_min"], "TRL": ["--only", "trl", "--trl-workers", "4"],
                 "train_min memory": ["--only", "train_min", "--feed", "memory"],
                 "train_min no graphs": ["--only", "train_min", "--compile", "on"]}),
    "reasoner16": (["--shape", "paper", "--task", "reasoner", "--max-length", "1024", "--batch", "16", "--steps", "30",
                    "--trl-data", "{trl_reasoning}"],
                   # at multiples of 64 this data's lengths are 3 shapes, each a ~65 s compile at 1.7B (the run missed 185 s); at 256, 2
                   # packed, every row 1024 wide: no padding, and the row count is symbolic after one recompile
                   {"train_min": ["--only", "train_min", "--pad-multiple", "256"], "TRL": ["--only", "trl"],
                    "train_min packed": ["--only", "train_min", "--pack", "1024"],
                    "train_min packed no graphs": ["--only", "train_min", "--pack", "1024", "--compile", "on"],
                    "train_min packed varlen": ["--only", "train_min", "--pack", "1024", "--attention", "varlen"]}),
    # where the paper shape's step goes: the busiest kernels and the GPU's busy share (in the run's log)
    "profile": (["--shape", "paper", "--max-length", "1100", "--batch", "16", "--steps", "16"],
                {"train_min": ["--only", "train_min", "--profile", "4"]}),
    # the SmolVLM shape at batch 16, bound by the host: the device's busy share, and what the host does
    "profile16": (["--batch", "16", "--steps", "16"], {"train_min": ["--only", "train_min", "--profile", "4"]}),
}


def run(args: list[str], timeout: float, log: Path) -> tuple[dict | None, str]:
    """One bench process: its row, or None and why. Its output goes to `log`, a cut-short run's too."""
    with log.open("w") as f:
        try:
            done = subprocess.run([sys.executable, "-m", "tests.bench.bench_train_gpu", *args], stdout=subprocess.PIPE, stderr=f,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"over its {timeout:.0f} s limit"
        f.write(done.stdout)
    last = done.stdout.strip().splitlines()[-1:] or [""]
    if done.returncode or not last[0].startswith("["):
        return None, f"exit {done.returncode}: " + " | ".join(log.read_text().strip().splitlines()[-2:])[:300]  # stderr is in the log
    return json.loads(last[0])[0], ""


def curve_gap(a: list[float], b: list[float], window: int = 10) -> float:
    """The largest relative difference between two loss curves, each a running mean over
    `window` steps (a step's loss alone is one batch's noise)."""
    def smooth(xs):
        return [sum(xs[max(0, i - window + 1) : i + 1]) / len(xs[max(0, i - window + 1) : i + 1]) for i in range(len(xs))]

    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(smooth(a), smooth(b)))


def table(results: list[dict]) -> str:
    lines = ["| line | run | batch | pack | tokens/step | s/step | tokens/s | x TRL | peak GiB | MFU | 6N MFU | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        row = r["row"] or {}
        trl = next((x["row"] for x in results if x["line"] == r["line"] and x["name"] == "TRL" and x["row"]), None)
        ratio = f"{row['tokens_per_s'] / trl['tokens_per_s']:.2f}" if row and trl else ""
        cells = ([row["batch"], row["pack"] or "-", f"{row['tokens_per_step']:.0f}", f"{row['seconds_per_step']:.3f}",
                  f"{row['tokens_per_s'] / 1e3:.1f}k", ratio, f"{row['peak_gib']:.2f}", f"{row['mfu']:.1%}", f"{row['mfu_6n']:.1%}"]
                 if row else [""] * 9)
        lines.append("| " + " | ".join(map(str, [r["line"], r["name"], *cells, r["note"]])) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--trl-data", required=True)
    ap.add_argument("--trl-reasoning", required=True, help="the TRL export of the reasoning config")
    ap.add_argument("--lines", default=",".join(LINES), help="comma-separated, of: " + ", ".join(LINES))
    ap.add_argument("--runs", default=None, help="only the runs of these names (comma-separated), e.g. 'TRL,train_min packed'")
    ap.add_argument("--out", default="bench-train-gpu-suite.md", help="the table, rewritten after every run")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per run")
    ap.add_argument("--shape", default=None, help="every line at this shape (tiny: to check the suite on a CPU)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=None, help="every run this many steps (tiny checks)")
    args = ap.parse_args()

    results, started = [], time.perf_counter()
    for line in args.lines.split(","):
        shared, runs = LINES[line]
        shared = [a.replace("{trl_reasoning}", args.trl_reasoning) for a in shared]
        base = ["--data", args.data, "--trl-data", args.trl_data, "--device", args.device, *shared]
        if args.shape:
            base += ["--shape", args.shape]
        if args.steps:
            base += ["--steps", str(args.steps), "--warmup", str(max(1, args.steps // 4))]
        for name, extra in runs.items():
            if args.runs and name not in args.runs.split(","):
                continue
            log = Path(f"{args.out}.{line}.{name.replace(' ', '_')}.log")
            row, note = run(base + extra, args.timeout, log)
            results.append({"line": line, "name": name, "row": row, "note": note})
            # the packed curve against the unpacked one; a varlen run against the same run with SDPA (same seed, same batches)
            against = "train_min" if line == "curve" else name.removesuffix(" varlen") if name.endswith(" varlen") else None
            if against and name != against and row:
                ref = next((r["row"] for r in results if r["line"] == line and r["name"] == against and r["row"]), None)
                if ref:
                    results[-1]["note"] = f"loss curve within {curve_gap(row['losses'], ref['losses']):.1%} of {against}"
            text = table(results)
            Path(args.out).write_text(text + "\n")
            print(f"\n[{time.perf_counter() - started:.0f} s] {line} {name} {'done' if row else note}\n{text}", flush=True)


if __name__ == "__main__":
    main()
