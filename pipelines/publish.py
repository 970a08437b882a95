"""Rows of the published dataset and their declared features.

Three configs, each a folder of parquet shards whose schema carries the `datasets`
features (so `Image` columns decode to PIL images on load):
- extraction: one row per kept record: the image, the student's prompt with its focus, the
  extraction (the training target), and metadata;
- reasoning: one row per QA turn of a kept record: extraction, question, choices, the
  first reasoning trace that reached the gold answer, that answer, and the turn's metadata
  (the source's `meta` columns, annotator answers) as JSON;
- rejected: one row per rejected or failed record, with its status, reason and scores.
"""

from __future__ import annotations

import json

import datasets

from filters.correctness import published_trace
from pipelines.core.record import Record, to_jsonable
from pipelines.prompting import render

CONFIGS = ("extraction", "reasoning", "rejected")
_S = datasets.Value("string")

FEATURES = {
    "extraction": datasets.Features({
        "id": _S, "image": datasets.Image(), "prompt": _S, "focus": _S, "extraction": _S,
        "questions": datasets.List(_S), "statements": datasets.List(_S), "source": _S, "license": _S,
        "finish_reason": _S, "scores": _S, "provenance": _S, "injected": _S, "origin": _S,
        "original_size": datasets.List(datasets.Value("int32")),
    }),
    "reasoning": datasets.Features({
        "id": _S, "record_id": _S, "extraction": _S, "question": _S, "choices": datasets.List(_S),
        "answer_type": _S, "answer": _S, "reasoning": _S, "thinking": _S, "source": _S, "meta": _S,
    }),
    "rejected": datasets.Features({
        "id": _S, "image": datasets.Image(), "status": _S, "reason": _S, "detail": _S,
        "questions": datasets.List(_S), "answers": datasets.List(_S), "statements": datasets.List(_S),
        "focus": _S, "extraction": _S, "source": _S, "scores": _S, "injected": _S, "origin": _S,
    }),
}


def arrow_schema(config: str):
    return FEATURES[config].arrow_schema


def _image(record: Record) -> dict | None:
    return {"bytes": record.images[0].bytes, "path": None} if record.images else None


def _scores(record: Record) -> str:
    return json.dumps({v.filter: v.score for v in record.verdicts})


def extraction_row(record: Record, student_template: str) -> dict:
    return {
        "id": record.id,
        "image": _image(record),
        "prompt": render(student_template, focus=record.focus),
        "focus": record.focus,
        "extraction": record.extraction,
        "questions": [t.question for t in record.turns],
        "statements": list(record.statements or ()),
        "source": record.source,
        "license": record.license,
        "finish_reason": record.extractions[0].finish_reason,
        "scores": _scores(record),
        "provenance": json.dumps(to_jsonable(record.provenance), sort_keys=True),
        "injected": json.dumps(list(record.injected)),
        "origin": record.origin,
        "original_size": list(record.images[0].original_size or (record.images[0].width, record.images[0].height)),
    }


def reasoning_rows(record: Record) -> list[dict]:
    rows = []
    for i, (turn, samples) in enumerate(zip(record.turns, record.reasoning)):
        best = published_trace(turn, samples)
        rows.append({
            "id": f"{record.id}-{i}",
            "record_id": record.id,
            "extraction": record.extraction,
            "question": turn.question,
            "choices": list(turn.choices),
            "answer_type": turn.answer_type,
            "answer": turn.answer,
            "reasoning": best.output.text,
            "thinking": best.output.thinking,
            "source": record.source,
            "meta": json.dumps(to_jsonable(turn.meta), sort_keys=True),  # the source's columns (category, annotators, ...)
        })
    return rows


def rejected_row(record: Record) -> dict:
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
        "source": record.source,
        "scores": _scores(record),
        "injected": json.dumps(list(record.injected)),
        "origin": record.origin,
    }
