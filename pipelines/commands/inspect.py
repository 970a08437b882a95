"""`extract-think inspect RECIPE`: read the first rows of every source, with no teacher, and
show how they were understood (question, choices, gold, answer type, metadata), why the
others were rejected, and which of those read deduplication and decontamination would drop
before the teacher (among the rows read: the whole run compares all of them); the check to
run before spending GPU hours on a new set. The recipe's teacher is never built or called."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Iterator

from pipelines.config.recipe import Recipe
from pipelines.config.source_config import SourceConfig
from pipelines.core import letters


def _first_rows(source: SourceConfig, limit: int) -> SourceConfig:
    """The source limited to its first rows; a Hub set streamed, so nothing else downloads."""
    hf = dataclasses.replace(source.hf, streaming=True) if source.kind == "hf" else source.hf
    return dataclasses.replace(source, limit=limit, hf=hf)


def _where(source: SourceConfig) -> str:
    if source.kind == "hf":
        return f"hf {source.hf.path}" + (f" ({source.hf.name})" if source.hf.name else "") + f", split {source.hf.split}"
    if source.kind == "llava":
        return f"llava {source.llava.json}"
    if source.kind == "imagefolder":
        return f"imagefolder {source.imagefolder.dir}"
    return "synthetic scenes"


def inspect_source(source: SourceConfig, recipe: Recipe, limit: int, show: int, usable: list | None = None) -> dict:
    """{name, where, read, ok, turns: [first `show` records' turns], rejected: {reason: (n, example)}};
    the usable records are appended to `usable`."""
    from pipelines.sources import iter_records

    shown, rejected, counts = [], {}, Counter()
    for record in iter_records(_first_rows(source, limit), recipe.ingest):
        counts[record.status] += 1
        if record.status == "ok":
            if usable is not None:
                usable.append(record)
            if len(shown) < show:
                shown.append({"origin": record.origin, "images": [f"{im.width}x{im.height} {im.format}" for im in record.images],
                              "turns": [{"question": t.question, "choices": list(t.choices), "gold": t.answer,
                                         "type": t.answer_type, "meta": t.meta} for t in record.turns]})
        else:
            n, example = rejected.get(record.reason, (0, None))
            rejected[record.reason] = (n + 1, example or f"{record.origin}: {record.detail}")
    return {"name": source.name, "where": _where(source), "read": sum(counts.values()), "ok": counts["ok"],
            "records": shown, "rejected": rejected}


def inspect(recipe: Recipe, limit: int = 20, show: int = 5) -> list[dict]:
    usable: list = []
    report = [inspect_source(s, recipe, limit, show, usable) for s in recipe.sources]
    dropped = would_drop(recipe, usable)
    for s in report:
        s["dropped"] = {}
        for record in usable:
            if record.source == s["name"] and (record.id, record.origin) in dropped:
                reason, detail = dropped[(record.id, record.origin)]
                n, example = s["dropped"].get(reason, (0, None))
                s["dropped"][reason] = (n + 1, example or f"{record.origin}: {detail}")
    return report


def would_drop(recipe: Recipe, records: list) -> dict:
    """{(id, origin): (reason, detail)}: what deduplication and decontamination would end of
    `records` (compared among themselves and with the whole eval sets), as a run does."""
    from filters.decontamination import EvalIndex, decontaminate, eval_entry
    from filters.registry import EVAL_FILTER, split_params
    from pipelines.sources import iter_records
    from pipelines.sources.dedup import duplicate_marks, signature

    dedup = recipe.ingest.dedup
    marks = duplicate_marks([signature(r) for r in records], dedup) if dedup.exact or dedup.near else {}
    decontam = next((f for f in recipe.filters if f.name == EVAL_FILTER), None)
    if decontam is not None:
        params, index_params = split_params(decontam.name, decontam.params)
        entries = [eval_entry(r) for s in recipe.eval_sets for r in iter_records(s, recipe.ingest) if r.status == "ok"]
        index = EvalIndex(entries, **index_params)
        for r in records:
            if (r.id, r.origin) not in marks:
                verdict = decontaminate(r, index, **params)
                if not verdict.keep:
                    marks[(r.id, r.origin)] = (verdict.reason, f"decontaminate: {verdict.detail}")
    return marks


def _gold(turn: dict) -> str:
    if turn["type"] == "choice":
        return f"{turn['gold']} = {turn['choices'][letters.index(turn['gold'])]!r}"
    return repr(turn["gold"])


def _clip(text: str, n: int = 300) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 3] + "..."


def render(report: list[dict]) -> Iterator[str]:
    for s in report:
        yield f"\nsource {s['name']!r} ({s['where']}): first {s['read']} rows -> {s['ok']} usable, {s['read'] - s['ok']} rejected"
        for r in s["records"]:
            yield f"  {r['origin']}  [{', '.join(r['images'])}]"
            for t in r["turns"]:
                yield f"    question: {_clip(t['question'])}"
                if t["choices"]:
                    yield "    choices:  " + _clip(" | ".join(letters.lettered(t["choices"])))
                yield f"    gold:     {_clip(_gold(t))}   ({t['type']})"
                if t["meta"]:
                    yield f"    meta:     {_clip(json.dumps(t['meta'], ensure_ascii=False, default=str))}"
        for title, key in (("rejected", "rejected"), ("would be dropped before the teacher", "dropped")):
            if s.get(key):
                yield f"  {title}:"
                for reason, (n, example) in sorted(s[key].items(), key=lambda kv: -kv[1][0]):
                    yield f"    {reason:<26} {n:>5}   e.g. {_clip(example, 200)}"
