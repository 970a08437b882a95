"""Ground truth for synthetic records: whether an extraction states something the scene
contradicts (a wrong count, colour, text) or does not hold (an invented object).

The scene's truth is every sentence its family can say about it (`describe` of the true
facts, the distractor sentence) and each question's statement with its true answer. An
extraction sentence that this truth does not support (the filters' lexical support measure,
below `min_support`) is a stated error. This judges a teacher by the scene, not by its own
filters; it is exact for the oracle's prose and a close reading for a real model's.
"""

from __future__ import annotations

from pipelines.core.record import Record
from pipelines.sources.scenes import FAMILIES
from pipelines.sources.scenes.base import distractor_sentence
from pipelines.support.lexical import SUPPORTED, support
from pipelines.support.text import sentences


def truth_text(record: Record) -> str:
    """Everything true that can be said about a synthetic record's scene."""
    family = FAMILIES[record.facts["family"]]
    lines = [family.scene_sentence, *(s for _, s in family.describe(record.facts["values"]))]
    if record.facts.get("distractors"):
        lines.append(distractor_sentence(record.facts["distractors"]))
    lines += [family.statement(t.meta["template"], t.meta["args"], t.answer, t.choices) for t in record.turns]
    return " ".join(lines)


def stated_errors(extraction: str, record: Record, min_support: float = SUPPORTED) -> list[str]:
    """The sentences of `extraction` that the record's ground truth does not support."""
    truth = truth_text(record)
    return [s for s in sentences(extraction or "") if support(s, truth) < min_support]
