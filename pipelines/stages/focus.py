"""focus: the questions -> a short phrase of what to look at, without the question or its
answer (text only). The student's prompt carries it."""

from __future__ import annotations

from pipelines.stages.base import Prompt, StageSpec
from pipelines.stages.prompting import render


class Focus(StageSpec):
    name, template, sampling = "focus", "focus/v1", {"max_tokens": 64}
    reads, writes = ("turns",), ("focus",)
    sample = {"questions": ["What colour is the bus?"]}

    def prompts(self, bound, record):
        return [Prompt(render(bound.template, questions=[t.question for t in record.turns]))]

    def parse(self, bound, record, replies, prompts):
        line = next((ln.strip() for ln in replies[0].outputs[0].text.splitlines() if ln.strip()), "")
        return {"focus": line.strip("\"'").rstrip(".")}


STAGE = Focus()
