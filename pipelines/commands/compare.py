"""`extract-think compare`: the same records through two or more teachers, side by side.

Each arm is the recipe with its own overrides (backend, model, stage teachers, templates,
sampling), run on the same records (same sources, seeds and filters, `--limit` shared) into
OUT/arms/NAME, a publish of its own. The reply cache is shared, so a rerun, or an added arm,
pays only for calls not made before. The comparison (OUT/compare.json, OUT/compare.html):
- per arm: the funnel and its reasons, keep rate, teacher calls and tokens behind the data,
  seconds, cost and cost per kept record (at `teacher.price`), each filter's rejection rate;
- on synthetic sources, each arm's error rate against the scenes' ground truth: the share
  of its kept extractions that state something the scene contradicts (pipelines/sources/scenes/truth.py);
- per pair of arms: records kept by both, by one only, by neither, and for those kept by
  both how often the two extractions agree on the facts the questions ask about (each
  statement supported by both or by neither, the filters' support measure);
- a gallery of records where the arms disagree: the image beside each arm's verdict and extraction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from pipelines.config import ConfigError
from pipelines.core.secrets import scrub_override
from pipelines.core.templates import Page
from pipelines.publishing.output import protected
from pipelines.publishing.report import data_uri, iter_rows, thumbnail_png
from pipelines.support.lexical import SUPPORTED, support

ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MARKER = "compare.json"
_TEMPLATE = Page(Path(__file__).parent / "templates", "compare.html.jinja", autoescape=True)


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...] = ()


def parse_arm(spec: list[str]) -> Arm:
    """`NAME [KEY=VALUE ...]` (the CLI's --teacher) -> an Arm."""
    name, *overrides = spec
    if not ARM_NAME.fullmatch(name):
        raise ConfigError(f"--teacher {name!r}: an arm's name is letters, digits, '_', '-' and '.' (it names a folder)")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"--teacher {name}: {bad[0]!r} is not KEY=VALUE")
    return Arm(name, tuple(overrides))


def _check_out(out: Path) -> None:
    why = protected(out)
    if why or (out.exists() and not out.is_dir()):
        raise ConfigError(f"compare: --out {out} is {why or 'a file'}; name a new folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(f"compare: --out {out} holds files that are not a comparison (no {MARKER}); name a new or empty folder")


def compare(recipe, arms: list[Arm], limit: int | None = None, out_dir: str | Path = "out/compare", overrides=(),
            gallery: int = 24, progress: str = "none", progress_every: float = 30.0, say=None) -> dict:
    """Run every arm and write OUT/compare.json and OUT/compare.html; the comparison.
    `progress` as `run_recipe` takes it, per arm; `say(line)` hears which arm starts and how
    it ended."""
    from pipelines import load_recipe, run_recipe
    from pipelines.commands.plan import sample_recipe

    def run(name: str, r):
        if say:
            say(f"arm {list(recipes).index(name) + 1}/{len(recipes)} {name!r}: {limit or 'all'} records")
        outcome = run_recipe(r, progress=progress, progress_every=progress_every)
        if say:
            f = outcome.funnel
            say(f"arm {name!r}: {f.kept} kept, {f.rejected} rejected, {f.failed} failed in {f.run_seconds:.1f} s "
                f"({flowing_seconds(f):.1f} s of records flowing)")
        return outcome

    if len(arms) < 2 or len({a.name for a in arms}) < len(arms):
        raise ConfigError("compare: give at least two arms (--teacher NAME [KEY=VALUE ...]), each with its own name")
    out = Path(out_dir).expanduser().resolve()
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    recipes = {a.name: sample_recipe(load_recipe(recipe, [*overrides, *a.overrides]), limit, str(out / "arms" / a.name)) for a in arms}
    outcomes = {name: run(name, r) for name, r in recipes.items()}
    rows = {name: _rows(o.out_dir) for name, o in outcomes.items()}
    truth = Truth(next(iter(recipes.values())))
    result = {
        "recipe": next(iter(recipes.values())).name, "limit": limit,
        "arms": [_arm(a, recipes[a.name], outcomes[a.name], rows[a.name], truth) for a in arms],
        "pairs": [_pair(a.name, b.name, rows[a.name], rows[b.name]) for a, b in combinations(arms, 2)],
    }
    disputed = _disputed(rows, result["pairs"])
    result["disagreements"] = len(disputed)
    result["gallery"] = disputed[:gallery]
    (out / MARKER).write_text(json.dumps(result, indent=1) + "\n")
    (out / "compare.html").write_text(_TEMPLATE.render(c=result, cards=_cards(result["gallery"], rows, outcomes, truth)))
    return result


def _rows(folder: Path) -> dict[str, dict]:
    """Every record of a publish by id: kept ones with their extraction and statements, ended
    ones with status and reason."""
    out = {r["id"]: {**r, "status": "kept"} for r in iter_rows(folder, "extraction", ["id", "source", "origin", "extraction",
                                                                                        "statements", "questions"])}
    for r in iter_rows(folder, "rejected", ["id", "source", "origin", "status", "reason", "detail", "extraction", "statements",
                                             "questions"]):
        out[r["id"]] = r
    return out


class Truth:
    """The ground truth of a published row of a synthetic source (no other source knows it):
    the scene sketched again from the row's origin (its number), facts and questions without
    pixels, only for the rows asked about."""

    def __init__(self, recipe):
        self.sources = {s.name: s for s in recipe.sources if s.kind == "synthetic"}

    def knows(self, row: dict) -> bool:
        return row.get("source") in self.sources

    def of(self, row: dict):
        from pipelines.sources.synthetic import scene_index, sketch_record

        s = self.sources[row["source"]]
        return sketch_record(scene_index(row["origin"]), s.synthetic, s.name, s.license)


def _arm(arm: Arm, recipe, outcome, rows: dict, truth: Truth) -> dict:
    from pipelines.sources.scenes.truth import stated_errors

    f = outcome.funnel
    kept = [r for r in rows.values() if r["status"] == "kept"]
    judged = [r for r in kept if truth.knows(r)]
    wrong = [r["id"] for r in judged if stated_errors(r["extraction"], truth.of(r))]
    calls = f.teacher_requests + f.cache_hits
    return {
        "name": arm.name, "overrides": [scrub_override(o) for o in arm.overrides], "out_dir": str(outcome.out_dir),
        "teacher": {stage: f"{t.backend}:{t.model}" for stage in f.stages if (t := recipe.stage_teacher(stage))},
        "in": f.records_in, "kept": f.kept, "rejected": f.rejected, "failed": f.failed,
        "keep_rate": f.kept / f.records_in if f.records_in else None,
        "reasons": {**{f"rejected: {k}": v for k, v in f.rejected_by_reason.items()}, **{f"failed: {k}": v for k, v in f.failed_by_reason.items()}},
        "filters": {s.filter: (s.rejected / s.checked if s.checked else None) for s in f.filters},
        "teacher_calls": calls, "teacher_calls_paid": f.teacher_requests, "tokens": f.prompt_tokens + f.completion_tokens + f.cached_tokens,
        "teacher_seconds": f.teacher_seconds, "run_seconds": f.run_seconds, "flow_seconds": flowing_seconds(f),
        "cost": f.cost_with_cache, "cost_paid": f.cost, "cost_per_kept": f.per_kept(f.cost_with_cache),
        "tokens_per_kept": f.per_kept(f.prompt_tokens + f.completion_tokens + f.cached_tokens),
        "truth": {"checked": len(judged), "with_errors": len(wrong), "error_rate": len(wrong) / len(judged) if judged else None,
                  "examples": wrong[:10]},
    }


def flowing_seconds(f) -> float:
    """The seconds records flowed through an arm (first record in to last out) less its
    teacher's loading: what the arms' teachers and filters cost, without the one-time
    start-up that the first arm of a process pays (imports, Beam's runner) or publishing."""
    return round(max(0.0, f.flow_seconds - f.teacher_load_seconds), 3)


def _facts_agree(a: dict, b: dict) -> bool:
    """Whether two kept extractions agree on every fact the questions ask about: each
    statement (of either arm) supported by both extractions or by neither."""
    statements = dict.fromkeys([*(a["statements"] or []), *(b["statements"] or [])])
    return all((support(s, a["extraction"]) >= SUPPORTED) == (support(s, b["extraction"]) >= SUPPORTED) for s in statements)


def _pair(name_a: str, name_b: str, a: dict, b: dict) -> dict:
    ids = set(a) & set(b)
    kept = {i: (a[i]["status"] == "kept", b[i]["status"] == "kept") for i in ids}
    both = [i for i, (x, y) in kept.items() if x and y]
    disagree = sorted(i for i in both if not _facts_agree(a[i], b[i]))
    return {"a": name_a, "b": name_b, "records": len(ids), "both": len(both),
            "only_a": sorted(i for i, (x, y) in kept.items() if x and not y), "only_b": sorted(i for i, (x, y) in kept.items() if y and not x),
            "neither": sum(1 for x, y in kept.values() if not x and not y),
            "fact_agreement": (len(both) - len(disagree)) / len(both) if both else None, "facts_differ": disagree}


def _disputed(rows: dict[str, dict], pairs: list[dict]) -> list[str]:
    """Records the arms disagree on: kept by some and not others first, then kept by all
    with extractions that differ on the facts."""
    verdict_split = set().union(*({*p["only_a"], *p["only_b"]} for p in pairs))
    facts_split = set().union(*(set(p["facts_differ"]) for p in pairs)) - verdict_split
    return sorted(verdict_split) + sorted(facts_split)


def _cards(ids: list[str], rows: dict[str, dict], outcomes: dict, truth: Truth) -> list[dict]:
    from pipelines.sources.scenes.truth import stated_errors

    images, wanted = {}, set(ids)
    for o in outcomes.values():  # every arm publishes every record: the first arm has them all but imageless rows
        for config in ("extraction", "rejected"):
            for r in iter_rows(o.out_dir, config, ["id", "image"], batch_size=256) if wanted else ():  # a batch of images at a time
                if r["id"] in wanted and r["image"]:
                    images[r["id"]] = data_uri(thumbnail_png(r["image"]))
                    wanted.discard(r["id"])
                if not wanted:
                    break
    cards = []
    for i in ids:
        first = next(r[i] for r in rows.values() if i in r)
        arms = []
        for name, r in rows.items():
            row = r.get(i, {"status": "absent", "extraction": None})
            verdict = "kept" if row["status"] == "kept" else f"{row['status']}: {row.get('reason')}"
            errors = stated_errors(row["extraction"], truth.of(row)) if row["status"] == "kept" and truth.knows(row) else []
            arms.append({"name": name, "verdict": verdict, "kept": row["status"] == "kept", "extraction": row.get("extraction"),
                         "detail": row.get("detail"), "errors": errors})
        cards.append({"id": i, "image": images.get(i, ""), "questions": first.get("questions") or [], "arms": arms})
    return cards
