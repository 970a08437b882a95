"""statements: the QA pairs -> one declarative sentence per pair (text only)."""

from __future__ import annotations

import re

from pipelines.stages.base import Prompt, StageSpec
from pipelines.stages.prompting import render

_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|pair \d+:?)\s*", re.IGNORECASE)


class Statements(StageSpec):
    name, template, sampling = "statements", "statements/v1", {"max_tokens": 256}
    reads, writes = ("turns",), ("statements",)
    sample = {"qa_pairs": [{"question": "What colour is the bus?", "answer": "red"}]}

    def prompts(self, bound, record):
        qa = [{"question": t.question, "answer": t.answer_text} for t in record.turns]
        return [Prompt(render(bound.template, qa_pairs=qa))]

    def parse(self, bound, record, replies, prompts):
        lines = [_NUMBERING.sub("", ln).strip() for ln in replies[0].outputs[0].text.splitlines()]
        return {"statements": tuple(ln for ln in lines if ln)}


STAGE = Statements()
