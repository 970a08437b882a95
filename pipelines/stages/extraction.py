"""extraction: image + statements -> a fine-grained description that makes the statements
evident (N samples; the first is published, the others are what `extraction_agreement`
compares it with)."""

from __future__ import annotations

import dataclasses

from pipelines.stages.base import Prompt, StageSpec
from pipelines.stages.prompting import render


class Extraction(StageSpec):
    name, template, sampling = "extraction", "extraction/v1", {"temperature": 0.7, "max_tokens": 768, "n": 3}
    reads, writes = ("statements", "images"), ("extractions",)
    image = True
    sample = {"statements": ["The bus is red."]}

    def prompts(self, bound, record):
        return [Prompt(render(bound.template, statements=list(record.statements or ())), image=self.image)]

    def parse(self, bound, record, replies, prompts):
        return {"extractions": tuple(dataclasses.replace(o, text=o.text.strip()) for o in replies[0].outputs)}


STAGE = Extraction()
