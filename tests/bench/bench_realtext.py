"""The text filters on real teachers' prose (tests/realtext/, see its README): per filter at
its defaults and over a threshold sweep, recall on what is truly supported / faithful /
correct and false accepts on what is not.

    .venv/bin/python -m tests.bench.bench_realtext [--sweep]

- statement_coverage: each (description, statement) pair as a record; recall on supported
  statements, false accepts on unsupported ones (all, and split: deliberately wrong
  statements - perturbed and cross-image - and true facts the description does not state).
  v2 (`lexical`, the default) beside v1 (`recall`).
- extraction_agreement: each API model's description published with the next API models'
  descriptions as the other samples (faithful), and the 25 copies with one planted false
  sentence (planted); with 2 other samples (the default n=3) and 5.
- answer matching: the filter's path (`parse_final_answer`, then `answer_matches`) against
  the hand label, on short golds (numbers, options, yes/no) and free-form MM-Vet answers.
"""

from __future__ import annotations

import argparse
import time

from filters.consistency import extraction_agreement
from pipelines.support.lexical import support
from tests.realtext import agreement_records, answer_agreement, coverage_pairs

PERTURBED = ("perturbed", "cross_image")


def coverage_scores(scorer: str) -> list[tuple[float, dict]]:
    return [(support(p["statement"], p["text"], scorer, p["question"]), p) for p in coverage_pairs()]


def coverage_row(scored, threshold: float, strict: bool = False) -> tuple[float, float, float, float]:
    pairs = [(s, p) for s, p in scored if not (strict and p["borderline"])]
    good = [s >= threshold for s, p in pairs if p["label"]]
    bad = [s >= threshold for s, p in pairs if not p["label"]]
    wrong = [s >= threshold for s, p in pairs if not p["label"] and p["origin"] in PERTURBED]
    unstated = [s >= threshold for s, p in pairs if not p["label"] and p["origin"] not in PERTURBED]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return mean(good), mean(bad), mean(wrong), mean(unstated)


def agreement_row(n_others: int, **params) -> tuple[float, float, int, int]:
    results = [(extraction_agreement(rec, **params).keep, faithful) for rec, faithful in agreement_records(n_others)]
    faithful = [kept for kept, f in results if f]
    planted = [kept for kept, f in results if not f]
    return 1 - sum(faithful) / len(faithful), 1 - sum(planted) / len(planted), len(faithful), len(planted)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true", help="also sweep each filter's threshold")
    args = ap.parse_args()
    start = time.perf_counter()
    n_cov = len(coverage_pairs())
    print(f"\nstatement_coverage on {n_cov} real (description, statement) pairs\n")
    print("| scorer | min_score | recall (supported) | false accepts (all unsupported) | deliberately wrong | true but unstated | recall, strict | false accepts, strict |")
    print("|---|---|---|---|---|---|---|---|")
    scores = {name: coverage_scores(name) for name in ("lexical", "recall")}
    defaults = {"lexical": 0.8, "recall": 0.8}
    for name, scored in scores.items():
        thresholds = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0] if args.sweep else [defaults[name]]
        for t in thresholds:
            r, fa, wrong, unstated = coverage_row(scored, t)
            rs, fas, *_ = coverage_row(scored, t, strict=True)
            mark = " (default)" if t == defaults[name] else ""
            print(f"| {'v2 lexical' if name == 'lexical' else 'v1 recall'} | {t:g}{mark} | {r:.3f} | {fa:.3f} | {wrong:.3f} | {unstated:.3f} | {rs:.3f} | {fas:.3f} |")

    print("\nextraction_agreement on real multi-model descriptions of one image (MM-Vet prompts)\n")
    print("| measure | other samples | faithful records rejected | planted hallucinations caught |")
    print("|---|---|---|---|")
    settings = [("v2 claims (default)", {})]
    if args.sweep:
        settings += [(f"v2 claims, min_weight {w}, novel_share {s}", {"min_weight": w, "novel_share": s})
                     for w, s in ((2.5, 0.8), (3.5, 0.6), (4.5, 1.01), (2.5, 1.01))]
    settings.append(("v1 sentence support (recall, 0.9)", {"scorer": "recall", "min_support": 0.9}))
    for label, params in settings:
        for n in (2, 5):
            rejected, caught, nf, npl = agreement_row(n, **params)
            print(f"| {label} | {n} | {rejected:.3f} (of {nf}) | {caught:.3f} (of {npl}) |")

    print("\nanswer matching (parse_final_answer, then answer_matches) against hand labels\n")
    print("| answers | items | agreement with the labels |\n|---|---|---|")
    for part, label in (("short", "short golds: numbers, options, yes/no (MathVista, MMMU-Pro, HallusionBench)"),
                        ("free", "free-form (MM-Vet open-ended, GPT-4V sentences)")):
        share, n, _ = answer_agreement(part)
        print(f"| {label} | {n} | {share:.3f} |")
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
