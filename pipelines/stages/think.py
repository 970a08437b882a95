"""think: extraction + one question -> reasoning that ends in "Answer: X" (one request per
turn, M samples each). The reasoner sees the extraction and the question and nothing else
(no image, no statements, no answer): only then does reaching the gold answer show that the
extraction held what the question needs."""

from __future__ import annotations

from pipelines.core.answers import parse_final_answer
from pipelines.core.record import ThinkSample
from pipelines.stages.base import Prompt, StageSpec
from pipelines.stages.prompting import render


class Think(StageSpec):
    name, template, sampling = "think", "think/v1", {"temperature": 0.7, "max_tokens": 1024, "n": 3}
    reads, writes = ("extraction", "turns"), ("reasoning",)
    sample = {"extraction": "A red bus stands at a stop.", "question": "What colour is the bus?", "choices": []}
    allowed_inputs = frozenset({"extraction", "question", "choices"})  # what the reasoner may see

    def check_inputs(self, template, inputs):
        if inputs <= self.allowed_inputs:
            return None
        return (f"{template!r} uses {sorted(inputs - self.allowed_inputs)}; the reasoner may only see "
                f"{sorted(self.allowed_inputs)}, or the sufficiency check would be meaningless")

    def prompts(self, bound, record):
        return [Prompt(think_prompt(bound.template, record.extraction, t.question, t.option_lines()), meta={"turn": i})
                for i, t in enumerate(record.turns)]

    def parse(self, bound, record, replies, prompts):
        return {"reasoning": tuple(tuple(ThinkSample(o, parse_final_answer(o.text)) for o in r.outputs) for r in replies)}


def think_prompt(template: str, extraction: str, question: str, option_lines=()) -> str:
    """The think stage's prompt: what the teacher's traces answer, the published reasoning
    rows' `prompt`, and what train_min's reasoner reads."""
    return render(template, extraction=extraction, question=question, choices=list(option_lines))


STAGE = Think()
