"""Precision and recall of the filter suite against the mistakes the oracle teacher injected.

Runs the quickstart recipe (synthetic scenes, oracle teacher, the full filter list) through
the real Beam pipeline at a chosen injected-error rate, reads the published dataset back
with `datasets`, and scores every record: an injected mistake that ended rejected is a true
positive, a clean record rejected a false positive, an injected mistake kept a miss.
Optionally an eval set of re-encoded copies of some training scenes (plus as many unrelated
held-out scenes) is written as an imagefolder, and `decontaminate` is scored on it too.

    .venv/bin/python -m tests.bench.bench_filters [--records 2000] [--error-rate 0.2] [--repeat 0] [--eval-copies 100] [--max-pixel-diff 24]
        [--judge JUDGE_ERROR_RATE [--judge-image]]

BENCH_SHOW_FALSE_ALARMS=1 also prints each clean record rejected and each injected one kept.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.published import published_rows


def write_eval_set(folder: Path, train, copies: int, heldout_seed: int, image_size: int) -> set[str]:
    """`copies` training scenes as resized JPEGs + `copies` unrelated held-out scenes; returns
    the ids of the training records that were copied."""
    from PIL import Image

    from pipelines.config.recipe import SyntheticSource
    from pipelines.sources.synthetic import make_record

    folder.mkdir(parents=True)
    rows, copied = [], set()
    for k, record in enumerate(train[:copies]):
        with Image.open(io.BytesIO(record.images[0].bytes)) as im:
            im.convert("RGB").resize((image_size * 3 // 4,) * 2).save(folder / f"copy{k}.jpg", "JPEG", quality=75)
        t = record.turns[0]
        rows.append({"file_name": f"copy{k}.jpg", "question": t.question, "answer": t.answer, "choices": list(t.choices)})
        copied.add(record.id)
    heldout = SyntheticSource(num_records=copies, image_size=image_size, seed=heldout_seed, split="heldout")
    for k in range(copies):
        record = make_record(k, heldout, "heldout")
        (folder / f"heldout{k}.png").write_bytes(record.images[0].bytes)
        t = record.turns[0]
        rows.append({"file_name": f"heldout{k}.png", "question": t.question, "answer": t.answer, "choices": list(t.choices)})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return copied


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--error-rate", type=float, default=0.2)
    ap.add_argument("--repeat", type=float, default=0.0, help="chance a further extraction sample repeats the mistake")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--eval-copies", type=int, default=0, help="also score decontamination on this many leaked scenes")
    ap.add_argument("--max-pixel-diff", type=float, default=24.0, help="decontaminate's pixel check")
    ap.add_argument("--judge", type=float, default=None, metavar="ERROR_RATE",
                    help="also run the verify stage (statements and sentences) with the oracle judging at this error "
                         "rate, and put the judged filter first, so the table shows what the judge alone catches")
    ap.add_argument("--judge-image", action="store_true", help="the judge reads the image (the scene's truth), not the text")
    args = ap.parse_args()


    from filters.registry import FILTERS
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe
    from pipelines.sources.synthetic import make_record

    work = Path(tempfile.mkdtemp(prefix="bench-filters-"))
    overrides = [f"sources.0.synthetic.num_records={args.records}", f"sources.0.synthetic.image_size={args.image_size}",
                 f"sources.0.synthetic.seed={args.seed}", f"teacher.oracle.error_rate={args.error_rate}",
                 f"teacher.oracle.seed={args.seed}", f"teacher.oracle.repeat={args.repeat}", f"output.dir={work / 'out'}", "cache.dir=null"]
    copied: set[str] = set()
    if args.eval_copies:
        base = read_recipe("quickstart", overrides)
        train = [make_record(i, base.sources[0].synthetic, base.sources[0].name) for i in range(args.eval_copies)]
        copied = write_eval_set(work / "eval", train, args.eval_copies, args.seed + 1, args.image_size)
        filters = [{"name": "decontaminate", "params": {"max_hamming": 6, "max_pixel_diff": args.max_pixel_diff}}] + [
            {"name": f.name, "params": f.params} for f in base.filters]
        overrides += [f"eval_sets=[{{kind: imagefolder, name: eval_copies, imagefolder: {{dir: '{work / 'eval'}'}}}}]",
                      f"filters={json.dumps(filters)}"]
    if args.judge is not None:
        base = read_recipe("quickstart", overrides)
        filters = [{"name": "judged", "params": {}}] + [{"name": f.name, "params": f.params} for f in base.filters]
        overrides += ["stages.verify.enabled=true", "stages.verify.sentences=true", f"teacher.oracle.judge_error_rate={args.judge}",
                      f"stages.verify.with_image={str(args.judge_image).lower()}",
                      f"filters={json.dumps(filters)}"]
    recipe = read_recipe("quickstart", overrides)
    start = time.perf_counter()
    outcome = run(recipe)
    seconds = time.perf_counter() - start

    rows = []
    for config in ("extraction", "rejected"):
        if (outcome.out_dir / config).exists():
            ds = published_rows(str(outcome.out_dir), config).remove_columns(["image"])
            for r in ds:
                kinds = [i["kind"] for i in r["injected"]]
                rows.append({"id": r["id"], "kind": kinds[0] if kinds else None, "rejected": config == "rejected",
                             "reason": r.get("reason"), "detail": r.get("detail") or ""})
                if os.environ.get("BENCH_SHOW_FALSE_ALARMS") and kinds and config == "extraction":
                    print("missed:", kinds, r["injected"], "\n  ", r.get("extraction") or r)
    assert len(rows) == args.records, (len(rows), args.records)
    if os.environ.get("BENCH_SHOW_FALSE_ALARMS"):
        for r in rows:
            if r["rejected"] and r["kind"] is None:
                print("false alarm:", r["detail"][:300])
    ingest = Counter(r["reason"] for r in rows if r["rejected"] and r["detail"].split(":", 1)[0] not in FILTERS)

    contaminated = [r for r in rows if r["reason"] == "eval_contamination"]
    # scored: what reached the filter suite (not ingest's duplicates, not decontamination's catch)
    scored = [r for r in rows if not r["rejected"] or r["detail"].split(":", 1)[0] in set(FILTERS) - {"decontaminate"}]
    by_kind: dict[str, Counter] = defaultdict(Counter)
    caught_by: dict[str, Counter] = defaultdict(Counter)
    per_filter: dict[str, Counter] = defaultdict(Counter)
    for r in scored:
        k = r["kind"] or "clean"
        by_kind[k]["n"] += 1
        by_kind[k]["rejected"] += r["rejected"]
        if r["rejected"]:
            caught_by[k][r["reason"]] += 1
            name = r["detail"].split(":", 1)[0]
            per_filter[name]["rejected"] += 1
            per_filter[name]["clean"] += r["kind"] is None
    tp = sum(c["rejected"] for k, c in by_kind.items() if k != "clean")
    fn = sum(c["n"] - c["rejected"] for k, c in by_kind.items() if k != "clean")
    fp = by_kind["clean"]["rejected"]

    print(f"\n{args.records} records, injected error rate {args.error_rate}, repeat {args.repeat}, seed {args.seed}: "
          f"run {seconds:.1f} s ({args.records / seconds:.0f} records/s); ended before the filters: {dict(ingest) or 'none'}\n")
    print("| injected | records | rejected | recall | rejected as |\n|---|---|---|---|---|")
    for k in sorted(by_kind, key=lambda k: (k == "clean", k)):
        c = by_kind[k]
        reasons = ", ".join(f"{r} {n}" for r, n in caught_by[k].most_common())
        rate = c["rejected"] / c["n"] if c["n"] else 0.0
        label = "clean (false alarms)" if k == "clean" else k
        print(f"| {label} | {c['n']} | {c['rejected']} | {'-' if k == 'clean' else f'{rate:.3f}'} | {reasons or '-'} |")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"| **all injected** | {tp + fn} | {tp} | **{recall:.3f}** | precision **{precision:.3f}** ({fp} clean records rejected) |")
    print("\n| filter | rejected | of them clean | precision |\n|---|---|---|---|")
    for name, c in sorted(per_filter.items(), key=lambda x: -x[1]["rejected"]):
        print(f"| {name} | {c['rejected']} | {c['clean']} | {1 - c['clean'] / c['rejected']:.3f} |")
    if args.eval_copies:
        # the truth: a training record shows a leaked scene when its ground truth is that
        # scene's (small synthetic fact spaces repeat: two clocks at 7:25 in green frames)
        from filters.decontamination import scene_key

        every = [make_record(i, recipe.sources[0].synthetic, recipe.sources[0].name) for i in range(args.records)]
        leaked_scenes = {scene_key(r) for r in every if r.id in copied}
        truth = {r.id for r in every if scene_key(r) in leaked_scenes}
        ids = {r["id"] for r in contaminated}
        hit = len(ids & truth)
        print(f"\n{len(copied)} scenes copied into the eval set; {len(truth)} training records show one of them")
        print("\n| decontamination | eval items | training records showing a leaked scene | rejected | precision | recall |\n|---|---|---|---|---|---|")
        print(f"| `decontaminate` (pHash <= 6 bits, pixels <= {args.max_pixel_diff:g}, question + answer) | {2 * args.eval_copies} | {len(truth)} | {len(ids)} "
              f"| {hit / len(ids) if ids else 1.0:.3f} | {hit / len(truth):.3f} |")


if __name__ == "__main__":
    main()
