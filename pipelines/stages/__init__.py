"""The teacher stages, one declared unit each (a module per stage, `pipelines.stages.base`
says what a stage declares):

- statements: the QA pairs -> one declarative sentence per pair (text only)
- focus:      the questions -> a short phrase of what to look at (text only)
- extraction: image + statements -> fine-grained description (N samples)
- verify:     (when enabled) claims + the extraction, other samples or image -> verdicts
- think:      extraction + one question -> reasoning ending in "Answer: X" (per turn, M samples)

`STAGES` is the one list: the recipe's `stages:` keys, their defaults and order, the
provenance columns and the oracle's answers all come from it. Prompt templates are rendered
by `pipelines.stages.prompting`. A stage bound to a recipe's template, sampling and teacher
(the requests it sends, the record it returns) is `pipelines.teachers.stage.Stage`.
"""

from __future__ import annotations

from pipelines.stages import extraction, focus, statements, think, verify
from pipelines.stages.base import Prompt, StageSpec
from pipelines.stages.prompting import template_inputs

STAGES: dict[str, StageSpec] = {s.name: s for s in (statements.STAGE, focus.STAGE, extraction.STAGE, verify.STAGE, think.STAGE)}
STAGE_ORDER = tuple(STAGES)

# The prompt the small model is trained with (not a teacher stage: the published `prompt`
# column of the extraction config), and its variables for one ordinary record.
STUDENT_TEMPLATE = "student/v1"
STUDENT_SAMPLE = {"focus": "the colour of the bus"}

__all__ = ["STAGES", "STAGE_ORDER", "STUDENT_SAMPLE", "STUDENT_TEMPLATE", "Prompt", "StageSpec", "stage_inputs"]


def stage_inputs(name: str, template: str, with_image: bool = False) -> tuple[str, ...]:
    """What the teacher is shown in a stage: the template's variables, plus the image."""
    return template_inputs(template) + (("image",) if STAGES[name].image or with_image else ())
