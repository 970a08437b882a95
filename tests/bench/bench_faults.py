"""Teacher faults: the quickstart through the openai backend against a loopback
OpenAI-compatible endpoint that fails a share of all attempts at random, in mixed ways (429,
500, timeouts, cut-off bodies, empty texts, replies dripped a byte at a time, bodies that are
not UTF-8, token counts that are not numbers, 2 MB bodies). The run must complete and every input must end
kept, rejected or failed with a reason; the counts must add up, in the funnel and in the
published dataset.

    python -m tests.bench.bench_faults [--records 300 --fault-rate 0.3 --retries 2] [--hostile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.published import published_rows

KINDS = ("429", "500", "timeout", "malformed", "blank", "drip", "badutf8", "badusage", "huge")


def run_faults(records: int, fault_rate: float, retries: int, work: Path, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> dict:

    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe
    from tests.fault_server import FaultServer

    server = FaultServer(answer="The description settles it.\nAnswer: 4", hang_s=1.0, fault_rate=fault_rate, seed=seed,
                         random_kinds=kinds, drip_s=0.05)
    try:
        recipe = read_recipe("quickstart", [
            f"sources.0.synthetic.num_records={records}", "sources.0.synthetic.image_size=64",
            "teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={server.url}",
            f"teacher.openai.max_retries={retries}", "teacher.openai.backoff_s=0.01", "teacher.openai.backoff_max_s=0.05",
            "teacher.openai.timeout_s=0.5", "teacher.openai.max_concurrency=32", "teacher.openai.max_response_bytes=1000000",
            # the endpoint answers every prompt with the same text, which the quality filters would
            # reject; only the stages' own checks stay, so that kept rows are part of the count
            "filters=[{name: degeneration}]",
            f"output.dir={work / 'out'}", f"cache.dir={work / 'cache'}",
            "output.max_failed_share=1",  # publish whatever failed: the bench counts it
            "teacher.preflight=false",  # the endpoint faults at random from the first request on
        ])
        started = time.perf_counter()
        outcome = run(recipe)
        seconds = time.perf_counter() - started
    finally:
        server.close()
    f = outcome.funnel.to_dict()
    def rows(config):  # a config with no rows is not published
        try:
            return published_rows(str(outcome.out_dir), config)
        except ValueError:
            return []

    published = {c: len(rows(c)) for c in ("extraction", "rejected")}
    rejected_rows = rows("rejected")
    return {
        "records": records, "seconds": seconds, "attempts": sum(server.attempts.values()), "faults": dict(server.faults),
        "served": server.served, "funnel": {k: f[k] for k in ("in", "kept", "rejected", "failed")},
        "failed_by_reason": f.get("failed_by_reason", {}), "rejected_by_reason": f.get("rejected_by_reason", {}),
        "published": published, "rows_without_reason": sum(1 for r in rejected_rows if not r["reason"]),
        "row_status": dict(Counter(r["status"] for r in rejected_rows)),
        "failed_details": dict(Counter(r["detail"] for r in rejected_rows if r["status"] == "failed")),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--hostile", action="store_true", help="add the hostile reply shapes (tests/fault_server.py HOSTILE): "
                                                           "100,000-deep nesting, counts of 10^30, NaN, lone surrogates, wrong types")
    args = ap.parse_args()
    from tests.fault_server import HOSTILE

    kinds = KINDS + tuple(sorted(HOSTILE)) if args.hostile else KINDS
    r = run_faults(args.records, args.fault_rate, args.retries, Path(tempfile.mkdtemp(prefix="bench-faults-")), kinds=kinds)
    f = r["funnel"]
    faults = sum(r["faults"].values())
    print(f"\n{r['records']} records, {args.fault_rate:.0%} of attempts failed at random, {args.retries} retries; "
          f"{r['seconds']:.1f} s\n")
    print("| attempts | faults injected | " + " | ".join(sorted(r["faults"])) + " | served |")
    print("|---" * (3 + len(r["faults"])) + "|")
    print(f"| {r['attempts']} | {faults} ({faults / r['attempts']:.1%}) | " + " | ".join(str(r["faults"][k]) for k in sorted(r["faults"]))
          + f" | {r['served']} |\n")
    print("| in | kept | rejected | failed | kept+rejected+failed | published kept | published rejected+failed | rows without a reason |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {f['in']} | {f['kept']} | {f['rejected']} | {f['failed']} | {f['kept'] + f['rejected'] + f['failed']} | "
          f"{r['published']['extraction']} | {r['published']['rejected']} | {r['rows_without_reason']} |\n")
    print("failed, by reason:", r["failed_by_reason"])
    print("failed, by detail:", r["failed_details"])
    print("rejected, by reason:", r["rejected_by_reason"])
    print(json.dumps(r))


if __name__ == "__main__":
    main()
