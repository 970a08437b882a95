"""What a stage declares. A stage is one teacher step over a record: its prompts (built from
the Record fields it reads), and the parse of the teacher's replies into the Record fields it
writes. Calling the teacher is not a stage's business: `pipelines.teachers.stage` binds a
declared stage to a recipe's template, sampling and teacher, and the Beam pipeline (or any
loop) sends its requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from pipelines.core.record import Record


@dataclass(frozen=True)
class Prompt:
    """One teacher request of a stage: its text, whether the record's image goes with it, and
    what the parse needs to know about it (the turn a think prompt asks, the claims a judge
    is asked about), and the JSON schema the reply must follow, where the stage asks for one."""

    text: str
    image: bool = False
    meta: dict = field(default_factory=dict)
    schema: dict | None = None


class StageSpec:
    """A stage's declaration. Subclasses (one module each) set the class attributes and
    implement `prompts` and `parse`; `bound` is the stage as a recipe configured it (its
    `template`, `teacher` and `options`)."""

    name: str
    template: str  # the bundled default template id
    sampling: dict  # the default sampling keys, over `Sampling`'s own defaults
    reads: tuple[str, ...]  # the Record fields its prompts read
    writes: tuple[str, ...]  # the Record fields its parse adds
    image: bool = False  # every prompt shows the record's image
    optional: bool = False  # runs only when the recipe enables it
    sample: dict  # the template's variables for one ordinary record: rendered once before a run

    def check_inputs(self, template: str, inputs: set[str]) -> str | None:
        """What is wrong with a template of this stage that uses the variables `inputs`, or None."""
        return None

    def prompts(self, bound: Any, record: Record) -> list[Prompt]:
        raise NotImplementedError

    def parse(self, bound: Any, record: Record, replies: Sequence, prompts: Sequence[Prompt]) -> dict:
        """The fields this stage adds, from one reply per prompt (each with its outputs)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<stage {self.name}>"
