"""Extract+Think evaluation: the small perception model, then a text-only reasoner.

    python -m train_min.evaluate eval.yaml [key=value ...]

Held-out records come from any source the pipelines read (`heldout:`, a list of source
configs: synthetic `split: heldout`, LLaVA JSON, an image folder, a Hub/parquet set). For
each record:

- stage 1: the perception model writes an extraction from the image and the student prompt
  it was trained on (the template train_min kept beside it from its dataset, else
  `student/v1`; `student_template` overrides) with a focus - written from the record's questions by a teacher of the
  teacher layer (`focus.mode: teacher`, the way the training data's focus was made), the
  question itself (`question`), or one generic phrase (`none`);
- stage 2: the reasoner reads only the extraction and the question, in the prompt it was
  trained on (likewise: its dataset's think template, else `think/v1`; `think_template`
  overrides), thinks within `thinking_budget` tokens (the end of thinking is forced there)
  with reflexive words optionally blocked, and ends with `Answer: X`;
- the answer is parsed and matched against the gold one (pipelines/core/answers.py: option
  letters and texts, numbers, yes/no, VQA-style text).

Baselines in the same run: `caption_think` (stage 1 with a plain caption prompt, no focus;
the same reasoner) and `direct` (the perception model answers from the image). The table
gives accuracy per system, by source and category (the turn's metadata key `category_key`,
e.g. MMStar's `category` or `l2_category` carried by the source's `meta` columns; else the
synthetic `family`, else the answer type). An answer is right when it matches the gold, any
of a DocVQA-style list of right answers, or (VQA accuracy) three annotators. Per-item
predictions, with the turn's metadata, go to `predictions.jsonl`.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from filters.correctness import reaches_gold
from pipelines.config import ConfigError, load_yaml, to_plain
from pipelines.config.recipe import TeacherConfig
from pipelines.config.source_config import IngestConfig, SourceConfig
from pipelines.core.answers import parse_final_answer
from pipelines.core.record import Record, to_jsonable
from pipelines.stages import STAGES, STUDENT_TEMPLATE
from pipelines.stages.prompting import render
from pipelines.teachers.base import Sampling
from train_min.card import add_evaluation
from train_min.data import CAPTION_TEMPLATE, DIRECT_TEMPLATE, THINK_TEMPLATE, direct_prompt, model_template, reasoner_prompt
from train_min.infer import REFLEXIVE_WORDS, chat, load_generator, open_image, think

SYSTEMS = ("extract_think", "caption_think", "direct")


@dataclass
class FocusConfig:
    mode: Literal["teacher", "question", "none"] = "teacher"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)  # any backend of the teacher layer
    template: str = STAGES["focus"].template
    generic: str = "the objects, their colours, counts and positions, and any text"  # mode none


@dataclass
class EvalConfig:
    heldout: list[SourceConfig]
    perception: TeacherConfig  # backend transformers or vllm; model: the trained perception model
    reasoner: TeacherConfig  # backend transformers or vllm; any causal LM (train_min's reasoner, Qwen3, ...)
    focus: FocusConfig = field(default_factory=FocusConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    systems: list[Literal["extract_think", "caption_think", "direct"]] = field(default_factory=lambda: list(SYSTEMS))
    # The prompts the models were trained on: null takes the template the model keeps beside
    # its weights (train_min copies it from the dataset it trained on), else student/v1 and
    # think/v1; a template id or .jinja path here overrides both.
    student_template: str | None = None
    think_template: str | None = None
    caption_template: str = CAPTION_TEMPLATE  # the Caption+Think baseline's perception prompt (a template id or .jinja path)
    direct_template: str = DIRECT_TEMPLATE  # the direct-answer baseline's (question, options -> answer)
    extraction_tokens: int = 256
    direct_tokens: int = 32
    thinking_budget: int = 4096  # reasoner tokens before the end of thinking is forced
    answer_tokens: int = 32  # tokens for the answer after a forced end
    block_reflexive: bool = True
    reflexive_words: list[str] = field(default_factory=lambda: list(REFLEXIVE_WORDS))
    category_key: str = "category"  # the turn metadata the table's columns are grouped by
    out: str = "out/eval"
    progress: bool = True

    def __post_init__(self):
        for name in ("perception", "reasoner"):
            if getattr(self, name).backend not in ("transformers", "vllm"):
                raise ConfigError(f"{name}.backend: transformers or vllm, got {getattr(self, name).backend!r}")
        if not self.systems:
            raise ConfigError("systems: name at least one of " + ", ".join(SYSTEMS))


@dataclass
class Item:
    """One held-out question."""
    record: Record
    turn: int
    category_key: str = "category"

    @property
    def t(self):
        return self.record.turns[self.turn]

    @property
    def category(self) -> str:
        meta = self.t.meta or {}
        return str(meta.get(self.category_key) or meta.get("family") or self.t.answer_type)


def load_heldout(cfg: EvalConfig) -> tuple[list[Record], dict[str, int]]:
    """Usable held-out records, and the count of unusable ones by reason."""
    from pipelines.sources import iter_records

    records, skipped = [], defaultdict(int)
    for source in cfg.heldout:
        for record in iter_records(source, cfg.ingest):
            if record.status == "ok":
                records.append(record)
            else:
                skipped[record.reason] += 1
    return records, dict(skipped)


def write_focus(cfg: EvalConfig, records: list[Record]) -> dict[str, str | None]:
    """record id -> focus phrase (None where the focus teacher failed for that record)."""
    if cfg.focus.mode == "none":
        return {r.id: cfg.focus.generic for r in records}
    if cfg.focus.mode == "question":
        return {r.id: "; ".join(t.question for t in r.turns) for r in records}
    from pipelines.teachers import load_teacher
    from pipelines.teachers.stage import Stage

    stage = Stage("focus", cfg.focus.template, Sampling(max_tokens=64), cfg.focus.teacher)
    teacher, out = load_teacher(cfg.focus.teacher), {}
    for start in tqdm(range(0, len(records), cfg.focus.teacher.batch_size), desc="focus", disable=not cfg.progress):
        batch = records[start : start + cfg.focus.teacher.batch_size]
        requests = [stage.requests(r) for r in batch]
        replies = iter(teacher.generate([q for qs in requests for q in qs]))
        for record, reqs in zip(batch, requests):
            done = stage.apply(record, reqs, [next(replies) for _ in reqs])
            out[record.id] = done.focus if done.status == "ok" and done.focus else None
    return out


def _chunked(fn, n: int, desc: str, cfg: EvalConfig, chunk: int = 64) -> list:
    """fn(slice) over 0..n in chunks, with a progress bar; the results concatenated."""
    out = []
    for start in tqdm(range(0, n, chunk), desc=desc, disable=not cfg.progress):
        out += fn(slice(start, start + chunk))
    return out


def _complete(gen, texts, images, max_tokens, desc, cfg):
    return _chunked(lambda s: gen.complete(texts[s], images[s], max_tokens), len(texts), desc, cfg)


def student_template(cfg: EvalConfig) -> str:
    """The perception model's prompt template: the config's, else the one its training data had."""
    return cfg.student_template or model_template(cfg.perception.model, "student") or STUDENT_TEMPLATE


def think_template(cfg: EvalConfig) -> str:
    """The reasoner's prompt template: the config's, else the one its training data had."""
    return cfg.think_template or model_template(cfg.reasoner.model, "think") or THINK_TEMPLATE


def perceive(cfg: EvalConfig, records: list[Record], items: list[Item], focus: dict) -> dict:
    """Stage 1 for every system: {system: {record id or item index: text}}."""
    gen = load_generator(cfg.perception)
    try:
        images = {r.id: [open_image(im.bytes) for im in r.images] for r in records}
        got: dict[str, dict] = {}
        for system, prompt in (("extract_think", None), ("caption_think", render(cfg.caption_template))):
            if system not in cfg.systems:
                continue
            todo = [r for r in records if prompt or focus[r.id]]
            student = student_template(cfg)
            texts = [gen.render(chat(prompt or render(student, focus=focus[r.id]), True)) for r in todo]
            done = _complete(gen, texts, [images[r.id] for r in todo], cfg.extraction_tokens, system.split("_")[0], cfg)
            got[system] = {r.id: c.text.strip() for r, c in zip(todo, done)}
        if "direct" in cfg.systems:
            texts = [gen.render(chat(direct_prompt(it.t.question, it.t.choices, cfg.direct_template), True)) for it in items]
            done = _complete(gen, texts, [images[it.record.id] for it in items], cfg.direct_tokens, "direct", cfg)
            got["direct"] = {i: c.text for i, c in enumerate(done)}
        return got
    finally:
        gen.close()


def reason(cfg: EvalConfig, items: list[Item], stage1: dict) -> dict:
    """Stage 2 for the two-stage systems: {system: {item index: Thought}}."""
    systems = [s for s in ("extract_think", "caption_think") if s in cfg.systems]
    if not systems:
        return {}
    gen = load_generator(cfg.reasoner)
    bad = cfg.reflexive_words if cfg.block_reflexive else ()
    try:
        got = {}
        for system in systems:
            todo = [i for i, it in enumerate(items) if it.record.id in stage1[system]]
            template = think_template(cfg)
            texts = [gen.render(chat(reasoner_prompt(stage1[system][items[i].record.id], items[i].t.question, items[i].t.choices,
                                                     template), False))
                     for i in todo]
            thoughts = _chunked(lambda s, texts=texts: think(gen, texts[s], cfg.thinking_budget, cfg.answer_tokens, bad), len(texts),
                                f"reason ({system})", cfg)
            got[system] = dict(zip(todo, thoughts))
        return got
    finally:
        gen.close()


def score(text: str | None, turn, direct: bool = False) -> tuple[str | None, bool]:
    """(parsed answer, correct). A direct answer without an `Answer:` line is its first line."""
    parsed = parse_final_answer(text, last_line=not direct)
    if parsed is None and direct and text and text.strip():
        parsed = text.strip().splitlines()[0].strip()
    return parsed, reaches_gold(parsed, turn)


def table(rows: list[dict], systems: list[str]) -> tuple[list[str], dict]:
    """Accuracy per system and column ("source/category", then "all")."""
    sources = {r["source"] for r in rows}
    def column(r):
        return r["category"] if len(sources) == 1 else f"{r['source']}/{r['category']}"
    columns = sorted({column(r) for r in rows}) + ["all"]
    acc: dict = {s: {} for s in systems}
    for s in systems:
        for c in columns:
            mine = [r for r in rows if r["system"] == s and (c == "all" or column(r) == c)]
            acc[s][c] = {"n": len(mine), "correct": sum(r["correct"] for r in mine),
                         "accuracy": sum(r["correct"] for r in mine) / len(mine) if mine else None}
    return columns, acc


def markdown(columns: list[str], acc: dict) -> str:
    n = {c: next(iter(acc.values()))[c]["n"] for c in columns}
    lines = ["| system | " + " | ".join(f"{c} (n={n[c]})" for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for system, cells in acc.items():
        lines.append(f"| {system} | " + " | ".join("-" if cells[c]["accuracy"] is None else f"{100 * cells[c]['accuracy']:.1f}"
                                                   for c in columns) + " |")
    return "\n".join(lines)


def evaluate(cfg: EvalConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = load_heldout(cfg)
    if not records:
        raise ValueError(f"no usable held-out record (skipped: {skipped})")
    items = [Item(r, i, cfg.category_key) for r in records for i in range(len(r.turns))]
    focus = write_focus(cfg, records) if "extract_think" in cfg.systems else {}
    stage1 = perceive(cfg, records, items, focus)
    stage2 = reason(cfg, items, stage1)
    rows = []
    for i, it in enumerate(items):
        base = {"record_id": it.record.id, "turn": it.turn, "source": it.record.source, "category": it.category,
                "question": it.t.question, "choices": list(it.t.choices), "answer_type": it.t.answer_type, "gold": it.t.answer,
                "meta": to_jsonable(it.t.meta)}
        for system in cfg.systems:
            row = {**base, "system": system}
            if system == "direct":
                row["reply"] = stage1["direct"][i]
                row["parsed"], row["correct"] = score(row["reply"], it.t, direct=True)
            elif i in stage2[system]:
                thought = stage2[system][i]
                row.update(focus=focus.get(it.record.id) if system == "extract_think" else None,
                           stage1=stage1[system][it.record.id], reply=thought.text,
                           thinking_tokens=thought.thinking_tokens, forced=thought.forced)
                row["parsed"], row["correct"] = score(thought.text, it.t)
            else:  # the focus teacher failed for this record: scored wrong, counted as failed
                row.update(reply=None, parsed=None, correct=False, failed="focus_teacher_error")
            rows.append(row)
    with open(out / "predictions.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    columns, acc = table(rows, list(cfg.systems))
    summary = {"config": to_plain(cfg), "records": len(records), "items": len(items), "skipped_records": skipped,
               "failed": sum(1 for r in rows if r.get("failed")),
               "forced": {s: sum(1 for r in rows if r["system"] == s and r.get("forced")) for s in cfg.systems},
               "columns": columns, "accuracy": acc, "table": markdown(columns, acc)}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "results.md").write_text(summary["table"] + "\n")
    detail = (f"Extract+Think evaluation (`train_min.evaluate`): {summary['records']} held-out records, {summary['items']} "
              f"questions; perception model `{cfg.perception.model}`, reasoner `{cfg.reasoner.model}`; accuracy %.")
    for model in {cfg.perception.model, cfg.reasoner.model}:  # the cards of the models train_min made
        add_evaluation(Path(model), summary["table"], detail, acc, ", ".join(s.name for s in cfg.heldout))
    return summary


def load_config(path: str, overrides: list[str] = ()) -> EvalConfig:
    return load_yaml(EvalConfig, path, overrides)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return
    summary = evaluate(load_config(args[0], args[1:]))
    print(f"\n{summary['records']} held-out records, {summary['items']} questions"
          f" (skipped records: {summary['skipped_records'] or 0}, failed: {summary['failed']})\n")
    print(summary["table"])


if __name__ == "__main__":
    main()
