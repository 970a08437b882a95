"""`extract-think calibrate OUT`: the filters measured against reviewers' labels
(`OUT/reviews/*.jsonl`, written by `extract-think review`), and the thresholds they call for.

For every filter with a score, on the labelled records it ran on: the precision of its keep
decision (the share of records it kept that are labelled good) and its recall (the share of
good records it kept), each with a 95% Wilson interval and the counts behind it. For the
filters kept by a threshold on their score (`filters.registry.THRESHOLD_PARAM`): the lowest
threshold whose false-accept rate (the share of records labelled bad that it keeps) is at
most `max_bad` (so it keeps the most good records within that bound), the rate's interval,
what the published data would have kept at it, and a recipe patch. Statement labels (the
statements a reviewer marked unsupported) calibrate `statement_coverage` at its own level:
each statement against the extraction. With too few records labelled bad to bound the rate,
it says how many more are needed.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import yaml

from filters.consistency import backed_sentences, statement_supports
from filters.registry import THRESHOLD_PARAM
from pipelines.commands.reviews import record_labels, rejecting_filter
from pipelines.core.rates import rate
from pipelines.publishing.report import iter_rows


def bad_needed(max_bad: float, have: int) -> int:
    """More records labelled bad needed before a threshold kept none of them can show a
    false-accept rate under `max_bad` at 95% (none of n kept: the interval's top is
    1 - 0.05^(1/n), the exact rule of three)."""
    need = math.ceil(math.log(0.05) / math.log(1 - max_bad)) if 0 < max_bad < 1 else 0
    return max(0, need - have)


def _lowest(units: list[tuple[float, bool]], max_bad: float) -> float | None:
    """The lowest score t that keeps (score >= t) at most `max_bad` of the bad units."""
    bad = sum(1 for _, g in units if not g)
    bad_scores = sorted((s for s, g in units if not g), reverse=True)
    allowed = math.floor(max_bad * bad + 1e-9)  # bad units that may be kept
    # keeping `allowed` of them at most: t must be above the (allowed+1)-th highest bad score
    ceiling = bad_scores[allowed] if allowed < len(bad_scores) else None
    above = sorted({s for s, _ in units if ceiling is None or s > ceiling})
    return above[0] if above else None


def pick_threshold(units: list[tuple[float, bool]], max_bad: float, resamples: int = 200, seed: int = 0) -> dict | None:
    """Among (score, good) units: a threshold t (keep when score >= t) whose false-accept rate
    is at most `max_bad` and that keeps as many good units as that allows, chosen stably: the
    lowest such t, raised to the 75th percentile of the lowest such t over `resamples`
    bootstrap resamples (the lowest t alone sits on the few bad units at the boundary and
    lets more through on new data). None without a labelled bad unit or a good one, or when
    no score keeps any unit within the bound (bad units score as high as any)."""
    good = sum(g for _, g in units)
    bad = len(units) - good
    if not good or not bad:
        return None
    rng = random.Random(seed)
    drawn = sorted(t for t in (_lowest([rng.choice(units) for _ in units], max_bad) for _ in range(resamples)) if t is not None)
    lowest = _lowest(units, max_bad)
    if lowest is None:
        return None
    t = max(lowest, drawn[(3 * len(drawn)) // 4]) if drawn else lowest
    kept_bad = sum(1 for s, g in units if not g and s >= t)
    kept_good = sum(1 for s, g in units if g and s >= t)
    return {"threshold": round(t, 4), "false_accept": rate(kept_bad, bad, at_most=True), "recall": rate(kept_good, good),
            "bad_needed": bad_needed(max_bad, bad)}


def _rows(out: str | Path, ids: set[str]) -> list[dict]:
    columns = ["id", "scores", "statements", "extraction", "questions"]
    if (Path(out) / "extraction").is_dir() and "other_extractions" in _schema(out):
        columns.append("other_extractions")  # older publishes have no other samples
    rows = [{**r, "status": None, "rejected_by": None} for r in iter_rows(out, "extraction", columns) if r["id"] in ids]
    rows += [{**r, "rejected_by": rejecting_filter(r)} for r in iter_rows(out, "rejected", columns + ["status"]) if r["id"] in ids]
    return rows


def _would_keep(out: str | Path, thresholds: dict[str, float]) -> dict[str, dict]:
    """Per filter, at its threshold: the kept records that would stay, and the records that
    filter alone rejected that would pass it (the filters after it did not run on them); one
    pass over the published scores for all of them."""
    counts = {name: {"kept_stay": 0, "kept": 0, "rejected_would_pass": 0} for name in thresholds}
    for r in iter_rows(out, "extraction", ["scores"]):
        for name, t in thresholds.items():
            score = (r["scores"] or {}).get(name)
            counts[name]["kept"] += 1
            counts[name]["kept_stay"] += score is not None and score >= t
    for r in iter_rows(out, "rejected", ["status", "scores"]):
        by = rejecting_filter(r)
        if by in thresholds:
            score = r["scores"][by]
            counts[by]["rejected_would_pass"] += score is not None and score >= thresholds[by]
    return counts


def _schema(out: str | Path) -> set[str]:
    import pyarrow.parquet as pq

    shard = next(iter(sorted((Path(out) / "extraction").glob("*.parquet"))), None)
    return set(pq.read_schema(shard).names) if shard else set()


def _filters(out: str | Path) -> list[dict]:
    recipe = yaml.safe_load((Path(out) / "recipe.yaml").read_text()) or {}
    return [f for f in recipe.get("filters") or [] if isinstance(f, dict) and "name" in f]


def calibrate(out: str | Path, max_bad: float = 0.02) -> dict:
    """The measurement of every filter against the labels under OUT/reviews."""
    labels, reviewers = record_labels(out)
    rows = _rows(out, set(labels))
    filters = _filters(out)
    result = {"max_bad": max_bad, "labelled": len(rows), "reviewers": reviewers, "filters": {}, "patch": None, "set": []}
    kept = [labels[r["id"]]["label"] == "good" for r in rows if r["status"] is None]
    result["published_precision"] = rate(sum(kept), len(kept))
    for i, f in enumerate(filters):
        name, params = f["name"], dict(f.get("params") or {})
        ran = [r for r in rows if (r.get("scores") or {}).get(name) is not None]
        keeps = [(r, r["rejected_by"] != name) for r in ran]
        good = [(r, k) for r, k in keeps if labels[r["id"]]["label"] == "good"]
        entry = {"labelled": len(ran), "precision": rate(sum(labels[r["id"]]["label"] == "good" for r, k in keeps if k), sum(k for _, k in keeps)),
                 "recall": rate(sum(k for _, k in good), len(good))}
        param = THRESHOLD_PARAM.get(name)
        if param:
            units = [(float(r["scores"][name]), labels[r["id"]]["label"] == "good") for r in ran]
            entry["param"] = param
            entry["threshold"] = pick_threshold(units, max_bad)
            entry["would_keep"] = None
            if entry["threshold"] is not None:
                f.setdefault("params", {})[param] = entry["threshold"]["threshold"]
                result["set"].append(f"filters.{i}.params.{param}={entry['threshold']['threshold']}")
        if name == "statement_coverage":
            entry["statements"] = _statement_level(ran, labels, params.get("scorer", "lexical"), max_bad)
        if name == "extraction_agreement":
            entry["sentences"] = _sentence_level(ran, labels, params)
        result["filters"][name] = entry
    thresholds = {n: e["threshold"]["threshold"] for n, e in result["filters"].items() if e.get("threshold")}
    for name, counts in (_would_keep(out, thresholds) if thresholds else {}).items():
        result["filters"][name]["would_keep"] = counts
    if result["set"]:
        result["patch"] = yaml.safe_dump({"filters": filters}, sort_keys=False, allow_unicode=True)
    return result


def _statement_level(rows: list[dict], labels: dict, scorer: str, max_bad: float) -> dict:
    units = []
    for r in rows:
        marked = labels[r["id"]]["unsupported"]["statement"]
        good_record = labels[r["id"]]["label"] == "good"
        scores = statement_supports(r["statements"] or [], r["extraction"] or "", r["questions"] or [], scorer)
        # a statement is unsupported when marked; a bad record with nothing marked is left out (which one is unknown)
        if not good_record and not marked:
            continue
        units += [(s, j not in marked) for j, s in enumerate(scores)]
    return {"units": len(units), "threshold": pick_threshold(units, max_bad)}


def _sentence_level(rows: list[dict], labels: dict, params: dict) -> dict:
    """extraction_agreement at its own level: each sentence's backed-or-not decision against
    the reviewers' sentence marks (a sentence of a good record, or unmarked in a record with
    marks, counts as supported; a bad record without marks is left out: which sentence is
    unknown)."""
    settings = {k: params[k] for k in ("scorer", "min_weight", "novel_share", "min_support") if k in params}
    pairs = []
    for r in rows:
        marked = labels[r["id"]]["unsupported"]["sentence"]
        if not r.get("other_extractions") or labels[r["id"]]["label"] == "bad" and not marked:
            continue
        backed = backed_sentences(r["extraction"] or "", r["other_extractions"], r["statements"] or (), **settings)
        pairs += [(b, j not in marked) for j, b in enumerate(backed)]
    backed_ones = [s for b, s in pairs if b]
    supported = [b for b, s in pairs if s]
    return {"sentences": len(pairs), "precision": rate(sum(backed_ones), len(backed_ones)), "recall": rate(sum(supported), len(supported))}


def render(result: dict) -> str:
    """The calibration as text."""
    def show(r):
        return "-" if r is None or r["n"] == 0 else f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] ({r['k']}/{r['n']})"

    lines = [f"{result['labelled']} labelled records, {result['reviewers']} reviewer(s); target: at most "
             f"{result['max_bad']:.1%} of the records labelled bad kept",
             f"published set's precision on them: {show(result['published_precision'])}", "",
             f"{'filter':<22} {'labelled':>8}  {'precision of keep':<34} {'recall of good':<34}"]
    for name, e in result["filters"].items():
        lines.append(f"{name:<22} {e['labelled']:>8}  {show(e['precision']):<34} {show(e['recall']):<34}")
    for name, e in result["filters"].items():
        if "param" not in e:
            continue
        t = e["threshold"]
        if t is None:
            lines.append(f"\n{name}.{e['param']}: no threshold (the labelled records it ran on are all good or all bad, "
                         "or the bad ones score as high as any)")
            continue
        lines.append(f"\n{name}.{e['param']} = {t['threshold']}: false accepts {show(t['false_accept'])}, recall {show(t['recall'])}")
        w = e["would_keep"]
        lines.append(f"  the published data: {w['kept_stay']} of {w['kept']} kept records stay; {w['rejected_would_pass']} "
                     "records it alone rejected would pass it (the filters after it did not run on them)")
        if t["bad_needed"]:
            lines.append(f"  label {t['bad_needed']} more bad records to bound the rate under {result['max_bad']:.1%} at 95%")
        s = e.get("statements")
        if s and s["threshold"]:
            lines.append(f"  statement level ({s['units']} statements): {s['threshold']['threshold']}, false accepts "
                         f"{show(s['threshold']['false_accept'])}, recall {show(s['threshold']['recall'])}")
    agreement = result["filters"].get("extraction_agreement", {}).get("sentences")
    if agreement and agreement["sentences"]:
        lines.append(f"\nextraction_agreement per sentence ({agreement['sentences']} sentences): precision of backed "
                     f"{show(agreement['precision'])}, recall of supported {show(agreement['recall'])}")
    if result["patch"]:
        lines += ["", "recipe patch (or --set " + " --set ".join(result["set"]) + "):", result["patch"].rstrip()]
    return "\n".join(lines)


def add_arguments(sub) -> None:
    c = sub.add_parser("calibrate", help="measure the filters against the labels of `extract-think review` and suggest thresholds")
    c.add_argument("out", help="the output folder that holds reviews/ (of `extract-think run`, or `plan --out`)")
    c.add_argument("--max-bad", type=float, default=0.02, metavar="SHARE",
                   help="the most of the records labelled bad a threshold may keep (default 0.02)")
    c.add_argument("--json", action="store_true", help="print the calibration as JSON")


def command(args) -> int:
    import json
    import sys

    if not any((Path(args.out) / "reviews").glob("*.jsonl")):
        print(f"extract-think: calibrate: no labels under {Path(args.out) / 'reviews'}; label records with "
              f"`extract-think review {args.out}` first", file=sys.stderr)
        return 2
    if not 0 < args.max_bad < 1:
        print("extract-think: calibrate: --max-bad is a share between 0 and 1", file=sys.stderr)
        return 2
    from pipelines.commands.run import refresh_card

    result = calibrate(args.out, args.max_bad)
    print(json.dumps(result, indent=2) if args.json else render(result))
    if (Path(args.out) / "README.md").is_file():
        refresh_card(args.out)  # the card tells the audit
    return 0
