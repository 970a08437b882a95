"""Rows of the published dataset and their declared features.

Three configs, each a folder of parquet shards whose schema carries the `datasets`
features (so `Image` columns decode to PIL images and structs load as dicts):
- extraction: one row per kept record: the image, the student's prompt with its focus, the
  extraction (the training target), and metadata: `scores` (a struct, one float per filter
  of the recipe), `provenance` (a struct per stage: template, prompt hash, inputs, teacher,
  sampling), `injected` (the oracle's planted mistakes: a list of {kind, stage, detail});
- reasoning: one row per QA turn of a kept record: the exact `prompt` the reasoner is
  trained on (the think stage's template, rendered: what the teacher answered), the
  extraction, question, choices, the first reasoning trace that reached the gold answer,
  that answer, and the turn's metadata (the source's `meta` columns, annotator answers) as a
  typed struct (pipelines/publishing/meta.py);
- rejected: one row per rejected or failed record, with its status, reason and scores.

Which filters a run has decides the `scores` struct, so the features belong to a run:
`Layout.of(recipe)` holds what they depend on, and builds the rows and their features.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import datasets

from filters.correctness import answer_settings, published_trace
from pipelines.config.recipe import Recipe, Sampling
from pipelines.core.record import Record, StageProvenance, to_jsonable
from pipelines.core.templates import TemplateFailure
from pipelines.publishing.meta import ADDED, meta_features, meta_row, meta_schema
from pipelines.stages import STAGE_ORDER, STAGES, STUDENT_TEMPLATE
from pipelines.stages.prompting import PROMPT_FILES, render, template_source
from pipelines.stages.think import think_prompt

CONFIGS = ("extraction", "reasoning", "rejected")
_S = datasets.Value("string")
_F = datasets.Value("float64")
_SAMPLING = {f.name: _F if isinstance(getattr(Sampling(), f.name), float) else datasets.Value("int64") for f in fields(Sampling)}
_STAGE = {f.name: {"inputs": datasets.List(_S), "sampling": _SAMPLING}.get(f.name, _S) for f in fields(StageProvenance)}
PROVENANCE = {stage: _STAGE for stage in STAGE_ORDER}  # a stage that did not run is null
INJECTED = datasets.List({"kind": _S, "stage": _S, "detail": _S})
_I = datasets.Value("int32")
GOLD = {"text": _S, "letter": _S}  # a question's gold answer as words, and its option letter (null: not multiple choice)
META_ADDED = tuple(sorted(ADDED.items()))
COUNTS = {"questions": _I, "statements": _I, "extraction_words": _I}  # counts, apart from the scores in [0, 1]


def prompt_files(recipe: Recipe) -> dict[str, str]:
    """{path in the dataset folder: template text}: the templates the `prompt` columns were
    rendered with (the student's for extraction rows, the think stage's for reasoning rows),
    published with the data so that a trainer and an evaluation render the same prompt
    (train_min reads them from the dataset and keeps them beside the model)."""
    return {PROMPT_FILES["student"]: template_source(recipe.stages.student_prompt),
            PROMPT_FILES["think"]: template_source(recipe.stages.think.template)}


@dataclass(frozen=True)
class Layout:
    """What a run's rows depend on beyond the record: the filters (the `scores` struct's
    fields, in run order; no filters: no `scores` column), the student's prompt template and
    the think stage's template (the reasoning config's `prompt`), and how `answer_correct`
    matches answers (which trace is published)."""

    filters: tuple[str, ...] = ()
    student_template: str = STUDENT_TEMPLATE
    think_template: str = STAGES["think"].template
    answer: tuple[tuple[str, float], ...] = ()  # answer_settings(recipe.filters), as pairs
    meta: tuple[tuple[str, str], ...] = META_ADDED  # the `meta` struct's (field, kind) pairs: meta_schema(recipe.sources)

    @classmethod
    def of(cls, recipe: Recipe) -> "Layout":
        return cls(tuple(dict.fromkeys(f.name for f in recipe.filters)), recipe.stages.student_prompt, recipe.stages.think.template,
                   tuple(sorted(answer_settings(recipe.filters).items())), meta_schema(recipe.sources))

    def features(self, config: str) -> datasets.Features:
        scores = {"scores": {f: _F for f in self.filters}} if self.filters else {}
        if config == "extraction":
            return datasets.Features({
                "id": _S, "image": datasets.Image(), "prompt": _S, "focus": _S, "extraction": _S,
                "questions": datasets.List(_S), "golds": datasets.List(GOLD), "statements": datasets.List(_S), "source": _S, "license": _S,
                "finish_reason": _S, "other_extractions": datasets.List(_S), **scores, "counts": COUNTS, "provenance": PROVENANCE, "injected": INJECTED, "origin": _S,
                "original_size": datasets.List(datasets.Value("int32")),
            })
        if config == "reasoning":
            return datasets.Features({
                "id": _S, "record_id": _S, "prompt": _S, "extraction": _S, "question": _S, "choices": datasets.List(_S),
                "answer_type": _S, "answer": _S, "reasoning": _S, "thinking": _S, "source": _S, "meta": meta_features(self.meta),
            })
        if config == "rejected":
            return datasets.Features({
                "id": _S, "image": datasets.Image(), "status": _S, "reason": _S, "detail": _S,
                "questions": datasets.List(_S), "answers": datasets.List(_S), "statements": datasets.List(_S),
                "focus": _S, "extraction": _S, "other_extractions": datasets.List(_S), "source": _S, **scores, "counts": COUNTS,
                "injected": INJECTED, "origin": _S,
            })
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")

    def _scores(self, record: Record) -> dict:
        if not self.filters:
            return {}
        got = {v.filter: v.score for v in record.verdicts}
        return {"scores": {f: None if got.get(f) is None else float(got[f]) for f in self.filters}}

    def row_problem(self, record: Record) -> str | None:
        """Why a kept record's rows cannot be written (its student or reasoner prompt fails to
        render: a template over a limit on this record's text), or None. Checked before a
        record counts as kept, so the rows never fail."""
        try:
            render(self.student_template, focus=record.focus)
            for turn in record.turns:
                think_prompt(self.think_template, record.extraction, turn.question, turn.option_lines())
        except TemplateFailure as e:
            return str(e)
        return None

    def extraction_row(self, record: Record) -> dict:
        return {
            "id": record.id,
            "image": _image(record),
            "prompt": render(self.student_template, focus=record.focus),
            "focus": record.focus,
            "extraction": record.extraction,
            "questions": [t.question for t in record.turns],
            "golds": [{"text": t.answer_meaning, "letter": t.answer if t.answer_type == "choice" else None} for t in record.turns],
            "statements": list(record.statements or ()),
            "source": record.source,
            "license": record.license,
            "finish_reason": record.extractions[0].finish_reason,
            "other_extractions": _others(record),
            **self._scores(record),
            "counts": _counts(record),
            "provenance": {stage: to_jsonable(record.provenance.get(stage)) for stage in STAGE_ORDER},
            "injected": _injected(record),
            "origin": record.origin,
            "original_size": list(record.images[0].original_size or (record.images[0].width, record.images[0].height)),
        }

    def reasoning_rows(self, record: Record) -> list[dict]:
        rows = []
        for i, (turn, samples) in enumerate(zip(record.turns, record.reasoning)):
            best = published_trace(turn, samples, **dict(self.answer))
            rows.append({
                "id": f"{record.id}-{i}",
                "record_id": record.id,
                "prompt": think_prompt(self.think_template, record.extraction, turn.question, turn.option_lines()),
                "extraction": record.extraction,
                "question": turn.question,
                "choices": list(turn.choices),
                "answer_type": turn.answer_type,
                "answer": turn.answer,
                "reasoning": best.output.text,
                "thinking": best.output.thinking,
                "source": record.source,
                "meta": meta_row(turn.meta, self.meta),  # the source's columns (category, annotators, ...)
            })
        return rows

    def rejected_row(self, record: Record) -> dict:
        return {
            "id": record.id,
            "image": _image(record),
            "status": record.status,
            "reason": record.reason,
            "detail": record.detail,
            "questions": [t.question for t in record.turns],
            "answers": [t.answer for t in record.turns],
            "statements": list(record.statements or ()),
            "focus": record.focus,
            "extraction": record.extraction,
            "other_extractions": _others(record),
            "source": record.source,
            **self._scores(record),
            "counts": _counts(record),
            "injected": _injected(record),
            "origin": record.origin,
        }


def _others(record: Record) -> list[str]:
    """The extraction samples besides the published one: what extraction_agreement compared it with."""
    return [o.text for o in (record.extractions or ())[1:]]


def _counts(record: Record) -> dict:
    return {"questions": len(record.turns), "statements": len(record.statements or ()),
            "extraction_words": len(record.extraction.split()) if record.extraction else 0}


def _image(record: Record) -> dict | None:
    return {"bytes": record.images[0].bytes, "path": None} if record.images else None


def _injected(record: Record) -> list[dict]:
    return [{"kind": str(i.get("kind")), "stage": str(i.get("stage")), "detail": str(i.get("detail", ""))} for i in record.injected]
