"""Does `calibrate`'s threshold hold on data it did not see? Labelled real text
(../shared/realtext-dev/coverage.jsonl, or any file of its format; by default the copy in
tests/realtext/) becomes statement labels: each (description, statement, label) pair is one
statement of a record whose extraction is the description, scored as `statement_coverage`
scores a statement. The pairs are split by image into two halves; `calibrate`'s threshold
picker chooses on one half, and the false-accept rate it gives (with its 95% interval) is
compared with the rate measured on the other half; then the halves swap.

    python -m tests.bench.bench_calibrate [--coverage ../shared/realtext-dev/coverage.jsonl] [--max-bad 0.02]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from filters.consistency import statement_supports
from pipelines.commands.calibrate import pick_threshold
from pipelines.core.rates import rate


def coverage_units(path: str | None = None) -> list[tuple[str, float, bool]]:
    """(image, score, supported) per labelled pair: the shared format (`description` is the
    text, `qa.question`), or the tests' copy (`description` is a key, `question`)."""
    if path is None:
        from tests.realtext import coverage_pairs, descriptions

        rows = [{"text": r["text"], "statement": r["statement"], "label": r["label"], "group": descriptions()[r["description"]]["image"],
                 "question": r.get("question")} for r in coverage_pairs()]
    else:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        rows = [{"text": r["description"], "statement": r["statement"], "label": r["label"], "group": r.get("image") or r["description"],
                 "question": (r.get("qa") or {}).get("question")} for r in rows]
    return [(r["group"], statement_supports([r["statement"]], r["text"], [r["question"]])[0], r["label"] == 1) for r in rows]


def halves(units, seed: int = 0):
    def side(group):
        return int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest(), 16) % 2

    return ([(s, g) for grp, s, g in units if side(grp) == 0], [(s, g) for grp, s, g in units if side(grp) == 1])


def holdout(units, max_bad: float, seed: int = 0) -> list[dict]:
    """Per direction (A -> B, B -> A): the threshold picked on one half, its false-accept
    interval there, and the false-accept rate and recall measured on the other."""
    a, b = halves(units, seed)
    out = []
    for name, seen, unseen in (("A->B", a, b), ("B->A", b, a)):
        picked = pick_threshold(seen, max_bad)
        t = picked["threshold"]
        bad = [s for s, g in unseen if not g]
        good = [s for s, g in unseen if g]
        measured = rate(sum(s >= t for s in bad), len(bad))
        out.append({"direction": name, "threshold": t, "interval": picked["false_accept"], "recall_seen": picked["recall"],
                    "measured": measured, "recall_unseen": rate(sum(s >= t for s in good), len(good)),
                    "within": picked["false_accept"]["low"] <= measured["value"] <= picked["false_accept"]["high"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coverage", default=None, help="a coverage.jsonl of realtext-dev's format (default: tests/realtext/)")
    ap.add_argument("--max-bad", type=float, default=0.02)
    ap.add_argument("--seeds", type=int, default=3, help="splits by image, each a seed")
    args = ap.parse_args()
    start = time.perf_counter()
    units = coverage_units(args.coverage)
    print(f"{len(units)} labelled statements ({sum(g for _, _, g in units)} supported), at most {args.max_bad:.1%} false accepts\n")
    print("| split | threshold | false accepts where chosen (95%) | false accepts unseen | recall chosen | recall unseen | within |")
    print("|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        for r in holdout(units, args.max_bad, seed):
            i, m = r["interval"], r["measured"]
            print(f"| seed {seed} {r['direction']} | {r['threshold']} | {i['value']:.3f} [{i['low']:.3f}, {i['high']:.3f}] ({i['k']}/{i['n']}) "
                  f"| {m['value']:.3f} ({m['k']}/{m['n']}) | {r['recall_seen']['value']:.3f} | {r['recall_unseen']['value']:.3f} | {r['within']} |")
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
