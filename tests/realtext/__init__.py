"""The real-text corpus (tests/realtext/*.jsonl, see its README) and the measures that the
tests and `tests/bench/bench_realtext.py` take on it: each filter at given settings, on
descriptions, samples and answers that real VLMs wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from filters.consistency import extraction_agreement, statement_coverage
from pipelines.core.answers import reply_matches
from pipelines.core.record import Record, TeacherOutput, Turn

HERE = Path(__file__).parent
API_MODELS = ("gpt-4o-2024-05-13", "claude-3.5-sonnet-20240620", "gemini-1.5-pro")


def _rows(name: str) -> list[dict]:
    with open(HERE / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@lru_cache(maxsize=None)
def descriptions() -> dict[str, dict]:
    return {r["key"]: r for r in _rows("descriptions.jsonl")}


@lru_cache(maxsize=None)
def coverage_pairs() -> tuple[dict, ...]:
    texts = descriptions()
    return tuple({**r, "text": texts[r["description"]]["text"]} for r in _rows("coverage.jsonl"))


@lru_cache(maxsize=None)
def agreement_sets() -> tuple[dict, ...]:
    return tuple(_rows("agreement.jsonl"))


@lru_cache(maxsize=None)
def answer_items() -> tuple[dict, ...]:
    return tuple(_rows("answers.jsonl"))


def _record(text: str, statements=(), others=(), question: str | None = None) -> Record:
    turns = (Turn(question or "Describe the image.", "x"),)
    outputs = tuple(TeacherOutput(t, "stop") for t in (text, *others))
    return Record(id="r", source="realtext", license="", images=(), turns=turns,
                  statements=tuple(statements), extractions=outputs)


@dataclass
class Rates:
    """Accepted shares: `recall` of the good items, `false_accepts` of the bad ones."""
    recall: float
    false_accepts: float
    good: int
    bad: int


def _rates(results: list[tuple[bool, bool]]) -> Rates:
    good = [kept for kept, label in results if label]
    bad = [kept for kept, label in results if not label]
    return Rates(sum(good) / max(len(good), 1), sum(bad) / max(len(bad), 1), len(good), len(bad))


def coverage_rates(strict: bool = False, **params) -> Rates:
    """`statement_coverage` on each (description, statement) pair: recall on supported
    statements, false accepts on unsupported ones (not mentioned, contradicted, partial,
    perturbed, cross-image). `strict`: borderline pairs left out."""
    out = []
    for p in coverage_pairs():
        if strict and p["borderline"]:
            continue
        record = _record(p["text"], [p["statement"]], question=p["question"])
        out.append((statement_coverage(record, **params).keep, bool(p["label"])))
    return _rates(out)


def agreement_records(n_others: int = 2) -> list[tuple[Record, bool]]:
    """(record, faithful) pairs. Faithful: each API model's description published, the
    next `n_others` API models' descriptions as the other samples (one prompt, strong
    models: what sampling a good teacher gives). Planted: the copy with one false sentence
    published, the same others."""
    base = {r["id"]: r for r in agreement_sets() if "descriptions" in r}
    out = []
    for r in base.values():
        texts = dict(zip(r["models"], r["descriptions"]))
        api = [m for m in API_MODELS if texts.get(m)]
        rest = [m for m in r["models"] if m not in api and texts.get(m)]
        for i, model in enumerate(api):
            others = (api[i + 1:] + api[:i] + rest)[:n_others]
            out.append((_record(texts[model], others=[texts[m] for m in others]), True))
    for r in agreement_sets():
        if "planted" not in r:
            continue
        b = base[r["base_id"]]
        texts = dict(zip(b["models"], b["descriptions"]))
        model = b["models"][r["planted_in_index"]]
        order = [m for m in (*API_MODELS, *b["models"]) if m != model and texts.get(m)]
        others = list(dict.fromkeys(order))[:n_others]
        out.append((_record(r["planted_text"], others=[texts[m] for m in others]), False))
    return out


def agreement_rates(n_others: int = 2, **params) -> Rates:
    """Faithful records kept (`recall`), planted hallucinations kept (`false_accepts`)."""
    return _rates([(extraction_agreement(rec, **params).keep, faithful) for rec, faithful in agreement_records(n_others)])


SHORT = ("MathVista", "MMMU-Pro", "HallusionBench")


def answer_type(item: dict) -> tuple[str, tuple[str, ...]]:
    """The corpus's answer type as the pipeline's (type, choices)."""
    kind, choices, gold = item["answer_type"], tuple(item["choices"]), item["gold"]
    if kind.startswith("multiple choice"):
        return "choice", choices if ord(gold[0]) - 65 < len(choices) else ()
    if kind.startswith("multi_choice"):
        return ("yesno", choices) if set(map(str.lower, choices)) == {"yes", "no"} else ("choice", choices)
    if kind == "yes/no":
        return "yesno", ()
    if kind.startswith("free_form"):
        return "number", ()
    return "text", ()


def answer_agreement(part: str) -> tuple[float, int, list[dict]]:
    """Share of items where `reply_matches` agrees with the hand label, the item count and
    the disagreements. `part`: "short" (MathVista, MMMU-Pro, HallusionBench: numbers,
    options, yes/no) or "free" (MM-Vet open-ended answers and GPT-4V sentences)."""
    items = [i for i in answer_items() if (i["benchmark"].split()[0] in SHORT) == (part == "short")]
    wrong = []
    for item in items:
        kind, choices = answer_type(item)
        golds = item["gold"]
        got = reply_matches(item["prediction"], golds, kind, choices)
        if got != item["correct"]:
            wrong.append({**item, "matched": got})
    return 1 - len(wrong) / len(items), len(items), wrong
